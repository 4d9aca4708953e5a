//! The orthonormal multi-level Haar wavelet transform (Mallat, *A Wavelet Tour of Signal
//! Processing*) as one butterfly block (Dao et al., *Kaleidoscope*, ICLR 2020).

use crate::butterfly::{Butterfly, Permutation};
use crate::error::{check_pow2, Result};
use crate::scalar::Scalar;

/// Twiddles of the in-place Haar butterfly (increasing stride, `log2 n` levels): at level `k`
/// (stride `s = 2^k`) the pairs `(a, a + s)` with `a` a multiple of `2s` carry
/// `[[1, 1], [1, −1]]/√2`, every other pair the identity. With `forward = false` the levels
/// are listed in reverse order, for the decreasing-stride inverse.
fn haar_twiddles<T: Scalar>(n: usize, forward: bool) -> Vec<T> {
    let log_n = n.trailing_zeros() as usize;
    let half = n / 2;
    let r = std::f64::consts::FRAC_1_SQRT_2;
    let haar = [r, r, r, -r].map(T::from_f64);
    let id = [T::one(), T::zero(), T::zero(), T::one()];
    let mut tw = Vec::with_capacity(log_n * half * 4);
    for l in 0..log_n {
        let s = if forward { 1 << l } else { n >> (l + 1) };
        for p in 0..half {
            tw.extend_from_slice(if p % s == 0 { &haar } else { &id });
        }
    }
    tw
}

/// Output order of the wavelet coefficients: after the in-place butterfly the approximation
/// sits at lane 0 and the `i`-th detail of level `j` at lane `i·2^j + 2^(j−1)`; the gather
/// vector puts them in the order `[a_m, d_m, d_{m−1}, …, d_1]`.
fn haar_permutation(n: usize) -> Result<Permutation> {
    let log_n = n.trailing_zeros() as usize;
    let mut perm = vec![0; n];
    for j in 1..=log_n {
        let start = n >> j;
        for i in 0..start {
            perm[start + i] = (i << j) + (1 << (j - 1));
        }
    }
    Permutation::new(perm)
}

impl<T: Scalar> Butterfly<T> {
    /// The orthonormal Haar transform of size `n = 2^m`. With `a⁰ = x` and, for `j = 1..m`,
    /// `a^j_i = (a^{j−1}_{2i} + a^{j−1}_{2i+1})/√2`, `d^j_i = (a^{j−1}_{2i} − a^{j−1}_{2i+1})/√2`,
    /// the output is `[a^m_0, d^m_0, d^{m−1}_0, d^{m−1}_1, …, d^1_0, …, d^1_{n/2−1}]`
    /// (approximation, then details coarsest to finest; the order of `pywt.wavedec`).
    ///
    /// One increasing-stride block (level `k` transforms the pairs of level-`k` approximation
    /// coefficients, which sit `2^k` apart) and a fixed output permutation to that order.
    pub fn haar(n: usize) -> Result<Self> {
        check_pow2("n", n)?;
        Butterfly::from_twiddle(n, n, 1, true, haar_twiddles(n, true), None)?
            .with_output_permutation(haar_permutation(n)?)
    }

    /// The inverse of [`Butterfly::haar`] (its transpose, the transform being orthogonal): the
    /// inverse permutation on the input, then one decreasing-stride block with the levels in
    /// reverse order.
    pub fn haar_inverse(n: usize) -> Result<Self> {
        check_pow2("n", n)?;
        Butterfly::from_twiddle(n, n, 1, false, haar_twiddles(n, false), None)?
            .with_input_permutation(haar_permutation(n)?.inverse())
    }
}
