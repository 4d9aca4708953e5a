//! The Sylvester–Hadamard transform as one butterfly block.

use crate::butterfly::Butterfly;
use crate::error::{check_pow2, Result};
use crate::scalar::Scalar;

fn hadamard_block<T: Scalar>(n: usize, scale: f64) -> Result<Butterfly<T>> {
    check_pow2("n", n)?;
    let log_n = n.trailing_zeros() as usize;
    let (p, m) = (T::from_f64(scale), T::from_f64(-scale));
    let tw = [p, p, p, m].repeat(log_n * n / 2);
    Butterfly::from_twiddle(n, n, 1, true, tw, None)
}

impl<T: Scalar> Butterfly<T> {
    /// The Sylvester–Hadamard matrix `H[i, j] = (−1)^{popcount(i & j)}` of size `n = 2^m`
    /// (`H_{2n} = [[H_n, H_n], [H_n, −H_n]]`), `H² = n·I`: one real butterfly block whose every
    /// 2×2 block is `[[1, 1], [1, −1]]` (Dao et al., ICML 2019, §3), for any scalar type.
    pub fn hadamard(n: usize) -> Result<Self> {
        hadamard_block(n, 1.0)
    }

    /// The orthonormal Hadamard matrix `H/√n` (blocks `[[1, 1], [1, −1]]/√2`), an involution.
    pub fn hadamard_orthonormal(n: usize) -> Result<Self> {
        hadamard_block(n, std::f64::consts::FRAC_1_SQRT_2)
    }
}
