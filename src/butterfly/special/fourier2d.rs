//! The 2-D DFT and its inverse as one butterfly: `F_{n1} ⊗ F_{n2}` through the butterfly
//! Kronecker product (Dao et al., ICML 2019; *Kaleidoscope*, ICLR 2020).

use super::FftOptions;
use crate::butterfly::Butterfly;
use crate::error::{check_pow2, Result};
use crate::scalar::Scalar;

fn fourier2d<T: Scalar>(
    n1: usize,
    n2: usize,
    opts: FftOptions,
    inverse: bool,
) -> Result<Butterfly<T>> {
    check_pow2("n1", n1)?;
    check_pow2("n2", n2)?;
    let (f1, f2) = if inverse {
        (Butterfly::ifft(n1, opts)?, Butterfly::ifft(n2, opts)?)
    } else {
        (Butterfly::fft(n1, opts)?, Butterfly::fft(n2, opts)?)
    };
    f1.kronecker(&f2)
}

impl<T: Scalar> Butterfly<T> {
    /// The 2-D DFT of an `(n1, n2)` image stored row-major in a row of length `n1·n2`:
    /// `Y[k1, k2] = Σ X[j1, j2] exp(−2πi (j1 k1/n1 + j2 k2/n2))`, i.e. `F_{n1} ⊗ F_{n2}`, as one
    /// butterfly block of size `n1·n2` (complex scalars, powers of two). With the bit reversal
    /// (`opts.bit_reversal`) it is the fixed permutation `P_br(n1) ⊗ P_br(n2)` on the input
    /// (decimation in time) or on the output (decimation in frequency); `opts.normalized`
    /// scales by `1/√(n1 n2)`.
    pub fn fft2d(n1: usize, n2: usize, opts: FftOptions) -> Result<Self> {
        fourier2d(n1, n2, opts, false)
    }

    /// The inverse 2-D DFT, `F_{n1}⁻¹ ⊗ F_{n2}⁻¹` (scaled by `1/(n1 n2)`, or `1/√(n1 n2)` when
    /// normalised), as one butterfly block of size `n1·n2`.
    pub fn ifft2d(n1: usize, n2: usize, opts: FftOptions) -> Result<Self> {
        fourier2d(n1, n2, opts, true)
    }
}
