//! Projection of a dense matrix onto increasing-stride butterflies by the recursive rank-one
//! factorisation of the butterfly's 2×2 block structure (Dao et al., ICML 2019, §3; the
//! hierarchical identification of Zheng, Riccietti and Gribonval, *Efficient identification
//! of butterfly sparse matrix factorizations*, 2023).
//!
//! An increasing-stride butterfly of size `n` is `B = T · (B_a ⊕ B_b)`, with `T` the level of
//! stride `n/2` (a 2×2 block per pair `(i, i + n/2)`) and `B_a`, `B_b` butterflies of size
//! `n/2`. So rows `i` and `i + n/2` of the left half of `B` are multiples `t₀₀, t₁₀` of row
//! `i` of `B_a` (the right half likewise with `t₀₁, t₁₁` and `B_b`): a rank-one `2 × n/2`
//! block. Taking the best rank-one approximation of each such block level by level gives the
//! twiddles; it is exact (to rounding) for a matrix that is a butterfly and a greedy
//! approximation otherwise.

use super::Butterfly;
use crate::error::{check_pow2, check_shape, Result};
use crate::linear_map::LinearMap;
use crate::scalar::Scalar;
use ndarray::{s, Array2, ArrayView2};
use num_complex::Complex64;

/// The best rank-one approximation `u · r` (`‖u‖ = 1`) of the `2 × c` matrix with rows `x0`,
/// `x1`: `u` the leading eigenvector of the 2×2 Gram matrix, `r = uᴴ X`.
fn rank_one(x0: &[Complex64], x1: &[Complex64]) -> ([Complex64; 2], Vec<Complex64>) {
    let g00: f64 = x0.iter().map(|z| z.norm_sqr()).sum();
    let g11: f64 = x1.iter().map(|z| z.norm_sqr()).sum();
    let g01: Complex64 = x0.iter().zip(x1).map(|(a, b)| a * b.conj()).sum();
    let zero = Complex64::new(0.0, 0.0);
    let u = if g01.norm() <= 1e-300 {
        if g00 >= g11 {
            [Complex64::new(1.0, 0.0), zero]
        } else {
            [zero, Complex64::new(1.0, 0.0)]
        }
    } else {
        let half = 0.5 * (g00 - g11);
        let lambda = 0.5 * (g00 + g11) + (half * half + g01.norm_sqr()).sqrt();
        // (G − λ I) u = 0 with G = [[g00, g01], [conj g01, g11]]: u ∝ (g01, λ − g00).
        let (a, b) = (g01, Complex64::new(lambda - g00, 0.0));
        let norm = (a.norm_sqr() + b.norm_sqr()).sqrt();
        [a / norm, b / norm]
    };
    let r = x0
        .iter()
        .zip(x1)
        .map(|(a, b)| u[0].conj() * a + u[1].conj() * b)
        .collect();
    (u, r)
}

/// The twiddles (layout of [`Butterfly::from_twiddle`], one block, increasing stride) of the
/// recursive rank-one projection of the `n × n` matrix `dense` (see [`Butterfly::project`]).
pub(crate) fn project_twiddles(dense: Array2<Complex64>) -> Vec<Complex64> {
    let n = dense.nrows();
    let log_n = n.trailing_zeros() as usize;
    let mut tw = vec![Complex64::new(0.0, 0.0); log_n * n / 2 * 4];
    // Blocks still to factor: (offset, size-s sub-butterfly as a dense matrix).
    let mut blocks = vec![(0usize, dense)];
    while let Some((off, m)) = blocks.pop() {
        let size = m.nrows();
        let h = size / 2;
        let level = h.trailing_zeros() as usize;
        let mut halves = [Array2::zeros((h, h)), Array2::zeros((h, h))];
        for i in 0..h {
            let p = off / 2 + i;
            let t = &mut tw[(level * n / 2 + p) * 4..(level * n / 2 + p) * 4 + 4];
            for (side, half) in halves.iter_mut().enumerate() {
                let cols = side * h..(side + 1) * h;
                let (r0, r1) = (m.slice(s![i, cols.clone()]), m.slice(s![i + h, cols]));
                let (x0, x1) = (
                    r0.as_slice().expect("rows of an owned matrix"),
                    r1.as_slice().expect("rows of an owned matrix"),
                );
                if h == 1 {
                    t[side] = x0[0];
                    t[2 + side] = x1[0];
                    continue;
                }
                let (u, r) = rank_one(x0, x1);
                t[side] = u[0];
                t[2 + side] = u[1];
                half.row_mut(i).assign(&ndarray::ArrayView1::from(&r));
            }
        }
        if h > 1 {
            let [a, b] = halves;
            blocks.push((off, a));
            blocks.push((off + h, b));
        }
    }
    tw
}

/// The size `n` of a square `dim` that a projection onto one-block butterflies accepts: a
/// power of two ≥ 2.
pub(super) fn check_projectable(dim: (usize, usize)) -> Result<usize> {
    let n = dim.0;
    check_pow2("n", n)?;
    check_shape("dense", dim, (n, n))?;
    if n < 2 {
        return Err(crate::Error::InvalidArgument {
            what: "dense",
            message: "expected at least a 2 × 2 matrix".into(),
        });
    }
    Ok(n)
}

/// The one-block increasing-stride butterfly of size `n` with twiddles `tw`.
pub(super) fn butterfly_from_c64<T: Scalar>(n: usize, tw: Vec<Complex64>) -> Result<Butterfly<T>> {
    let twiddle = tw.into_iter().map(|z| T::from_parts(z.re, z.im)).collect();
    Butterfly::from_twiddle(n, n, 1, true, twiddle, None)
}

/// `√(Σ e / Σ t)` over the `(e, t)` = (squared error, squared target entry) pairs; 0 for a zero
/// target.
pub(super) fn relative_error(terms: impl Iterator<Item = (f64, f64)>) -> f64 {
    let (err, total) = terms.fold((0.0, 0.0), |(e, t), (de, dt)| (e + de, t + dt));
    if total == 0.0 {
        0.0
    } else {
        (err / total).sqrt()
    }
}

impl<T: Scalar> Butterfly<T> {
    /// The increasing-stride butterfly (one block, no bias, size `n × n` with `n` a power of
    /// two ≥ 2) obtained from `dense` by a recursive rank-one projection (with
    /// `B = T · (B_a ⊕ B_b)`, rows `i` and `i + n/2` of each half of `B` are multiples of one
    /// row of `B_a` or `B_b`: the best rank-one fit of each such `2 × n/2` block gives `T`'s
    /// 2×2 block and the rows of the halves, factored in turn), and the relative Frobenius
    /// error `‖B − dense‖_F / ‖dense‖_F` (0 for a zero matrix). Exact to rounding when `dense` is such a butterfly; otherwise a greedy
    /// projection (a starting point for fitting, not the best butterfly approximation). For a
    /// real `T` the twiddles are real.
    pub fn project(dense: ArrayView2<T>) -> Result<(Self, f64)> {
        let n = check_projectable(dense.dim())?;
        let tw = project_twiddles(dense.mapv(|v| v.to_c64()));
        let b: Self = butterfly_from_c64(n, tw)?;
        let approx = b.to_dense();
        let rel = relative_error(approx.iter().zip(dense.iter()).map(|(x, y)| {
            let y = y.to_c64();
            ((x.to_c64() - y).norm_sqr(), y.norm_sqr())
        }));
        Ok((b, rel))
    }
}
