//! The closed-form projection of a dense matrix onto Monarch matrices (Dao et al., *Monarch*,
//! ICML 2022, Theorem 1), generalised to rectangular matrices, any pair of block counts, and
//! slices of rank above one.

use super::monarch_matrix::Monarch;
use super::shape::MonarchShape;
use crate::error::{check_shape, Result};
use crate::linear_map::LinearMap;
use crate::scalar::{RealScalar, Scalar};
use ndarray::{Array2, ArrayView2};
use num_traits::Float;
use rayon::prelude::*;

/// One slice's factors: for each link `i`, the column of `w2` and the row of `w1`.
type SliceFactors<T> = Vec<(usize, Vec<T>, Vec<T>)>;

/// A slice's factors and its squared truncation error `Σ_{t ≥ rank} σ_t²`.
type SliceSolution<T> = (SliceFactors<T>, f64);

impl<T: Scalar> Monarch<T> {
    /// The Monarch matrix of the given geometry nearest to `dense` (shape
    /// `(out_features, in_features)`) in Frobenius norm, and the error `‖dense − M‖_F`.
    ///
    /// Entry `(i·l + j, a·p + b)` of a Monarch matrix is `Σ_{t ∈ I(a, j)} w2[j, i, t/l] ·
    /// w1[a, t − a·q, b]`, where `I(a, j)` are the intermediate indices linking input block `a`
    /// to output block `j`. Each `(a, j)` slice of `dense` is therefore an independent
    /// `s × p` matrix of rank at most `|I(a, j)|`, and its truncated SVD (Eckart–Young) is the
    /// optimum; for the square `√n`-block case `|I| = 1` and this is Theorem 1 of the paper.
    /// When `in_features < k·p` or `out_features < l·s`, the padded entries are taken as zero.
    pub fn project(dense: ArrayView2<T>, shape: MonarchShape) -> Result<(Self, f64)> {
        shape.validate()?;
        check_shape(
            "dense",
            dense.dim(),
            (shape.out_features, shape.in_features),
        )?;
        let sh = shape;
        let pairs: Vec<(usize, usize)> = (0..sh.k)
            .flat_map(|a| (0..sh.l).map(move |j| (a, j)))
            .collect();
        let solved: Vec<SliceSolution<T>> = pairs
            .par_iter()
            .map(|&(a, j)| project_slice(dense, sh, a, j))
            .collect::<Result<_>>()?;
        let (n1, n2) = sh.weight_lens();
        let mut w1 = vec![T::zero(); n1];
        let mut w2 = vec![T::zero(); n2];
        for (&(a, j), (factors, _)) in pairs.iter().zip(&solved) {
            for (t, col2, row1) in factors {
                let (tr, tq) = (t / sh.l, t - a * sh.q);
                for (i, &v) in col2.iter().enumerate() {
                    w2[(j * sh.s + i) * sh.r + tr] = v;
                }
                w1[(a * sh.q + tq) * sh.p..(a * sh.q + tq + 1) * sh.p].copy_from_slice(row1);
            }
        }
        let m = Self::from_factors(sh, w1, w2, None)?;
        let err2: f64 = if sh.in_features == sh.padded_in() && sh.out_features == sh.padded_out() {
            // The slices partition the matrix, so the error is the sum of their SVD tails.
            solved.iter().map(|(_, tail)| tail).sum()
        } else {
            m.to_dense()
                .iter()
                .zip(dense.iter())
                .map(|(x, y)| (*x - *y).modulus_sqr().to_f64())
                .sum()
        };
        Ok((m, err2.sqrt()))
    }
}

/// The truncated SVD of the `(a, j)` slice `S[i, b] = dense[i·l + j, a·p + b]`.
fn project_slice<T: Scalar>(
    dense: ArrayView2<T>,
    sh: MonarchShape,
    a: usize,
    j: usize,
) -> Result<SliceSolution<T>> {
    let links: Vec<usize> = sh.links(a, j).collect();
    let (rows, cols) = dense.dim();
    let slice = Array2::from_shape_fn((sh.s, sh.p), |(i, b)| {
        let (r, c) = (i * sh.l + j, a * sh.p + b);
        if r < rows && c < cols {
            dense[(r, c)]
        } else {
            T::zero()
        }
    });
    let (u, sigma, v) = T::thin_svd(crate::dense::faer_ref(slice.view()))?;
    let rank = links.len().min(sigma.len());
    let tail = sigma[rank..].iter().map(|v| v.to_f64().powi(2)).sum();
    let factors = (0..rank)
        .map(|t| {
            let sq = Float::sqrt(sigma[t]);
            let col2 = (0..sh.s).map(|i| u[(i, t)].scale_real(sq)).collect();
            let row1 = (0..sh.p).map(|b| v[(b, t)].conj().scale_real(sq)).collect();
            (links[t], col2, row1)
        })
        .collect();
    Ok((factors, tail))
}
