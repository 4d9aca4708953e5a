//! Twiddle initialisations and the exact FFT twiddles.

use crate::error::{Error, Result};
use crate::scalar::Scalar;
use rand::Rng;

/// How a [`Butterfly`](super::Butterfly)'s twiddles start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Init {
    /// Gaussian entries with variance 1/2, so every level preserves the expected squared norm
    /// of its input (`E‖B x‖² = ‖x‖²`).
    #[default]
    Randn,
    /// Each 2×2 block a random orthogonal matrix (a rotation or a reflection with a uniform
    /// angle), or for complex scalars a Haar-random element of U(2): the butterfly is unitary.
    Ortho,
    /// Each block the 2×2 identity.
    Identity,
    /// The first block holds the exact unnormalised DFT factors in its stride direction
    /// (decimation in time for increasing stride, which expects bit-reversed input; decimation
    /// in frequency for decreasing stride, which leaves the output bit-reversed); later
    /// blocks are the identity. Complex scalars only.
    Fft,
}

/// Fill the twiddles of one block (`log_n` levels of `n/2` blocks of 4 entries).
pub(crate) fn fill_block<T: Scalar, R: Rng + ?Sized>(
    init: Init,
    first_block: bool,
    increasing: bool,
    n: usize,
    tw: &mut [T],
    rng: &mut R,
) -> Result<()> {
    match init {
        Init::Randn => {
            let std = std::f64::consts::FRAC_1_SQRT_2;
            for t in tw.iter_mut() {
                *t = T::randn(rng, std);
            }
        }
        Init::Ortho => {
            for t in tw.chunks_exact_mut(4) {
                t.copy_from_slice(&random_unitary_2x2::<T, R>(rng));
            }
        }
        Init::Identity => fill_identity(tw),
        Init::Fft => {
            if !T::IS_COMPLEX {
                return Err(Error::InvalidArgument {
                    what: "init",
                    message: format!("Init::Fft needs complex scalars, got {}", T::NAME),
                });
            }
            if first_block {
                tw.copy_from_slice(&fft_twiddles::<T>(n, increasing, -1.0, 1.0));
            } else {
                fill_identity(tw);
            }
        }
    }
    Ok(())
}

pub(crate) fn fill_identity<T: Scalar>(tw: &mut [T]) {
    for t in tw.chunks_exact_mut(4) {
        t.copy_from_slice(&[T::one(), T::zero(), T::zero(), T::one()]);
    }
}

/// A random 2×2 orthogonal (real) or Haar-random unitary (complex) matrix, row-major.
fn random_unitary_2x2<T: Scalar, R: Rng + ?Sized>(rng: &mut R) -> [T; 4] {
    use std::f64::consts::PI;
    if T::IS_COMPLEX {
        // (α, β) uniform on the unit sphere of C², times a uniform phase: Haar measure on U(2).
        let g: [f64; 4] = std::array::from_fn(|_| T::randn(rng, 1.0).to_c64().re);
        let norm = g
            .iter()
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt()
            .max(f64::MIN_POSITIVE);
        let (ar, ai, br, bi) = (g[0] / norm, g[1] / norm, g[2] / norm, g[3] / norm);
        let phi = rng.random::<f64>() * 2.0 * PI;
        let e = num_complex::Complex::new(phi.cos(), phi.sin());
        let a = num_complex::Complex::new(ar, ai);
        let b = num_complex::Complex::new(br, bi);
        let m = [e * a, -e * b.conj(), e * b, e * a.conj()];
        m.map(|z| T::from_parts(z.re, z.im))
    } else {
        let theta = rng.random::<f64>() * 2.0 * PI;
        let (s, c) = theta.sin_cos();
        if rng.random::<bool>() {
            [c, -s, s, c].map(T::from_f64)
        } else {
            [c, s, s, -c].map(T::from_f64)
        }
    }
}

/// The exact radix-2 DFT factors of size `n` as butterfly twiddles (`log2 n` levels), with
/// roots `exp(sign·2πi/m)` and every block scaled by `scale`.
///
/// Increasing stride is decimation in time: `F = B·P_br`. Decreasing stride is decimation in
/// frequency: `F = P_br·B`. With `scale = 1/√2` the product is the unitary DFT.
pub(crate) fn fft_twiddles<T: Scalar>(n: usize, increasing: bool, sign: f64, scale: f64) -> Vec<T> {
    let log_n = n.trailing_zeros() as usize;
    let half = n / 2;
    let mut tw = vec![T::zero(); log_n * half * 4];
    for l in 0..log_n {
        let s = if increasing { 1 << l } else { n >> (l + 1) };
        let level = &mut tw[l * half * 4..(l + 1) * half * 4];
        for blk in 0..n / (2 * s) {
            for j in 0..s {
                let angle = sign * 2.0 * std::f64::consts::PI * j as f64 / (2 * s) as f64;
                let (wi, wr) = angle.sin_cos();
                let w = T::from_parts(wr * scale, wi * scale);
                let one = T::from_f64(scale);
                let p = blk * s + j;
                let t = if increasing {
                    [one, w, one, -w]
                } else {
                    [one, one, w, -w]
                };
                level[4 * p..4 * p + 4].copy_from_slice(&t);
            }
        }
    }
    tw
}
