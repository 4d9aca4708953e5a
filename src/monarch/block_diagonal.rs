//! [`BlockDiagonal`]: `W = diag(W_1, …, W_b)` with rectangular blocks.

use super::block_gemm::{self, Factor};
use crate::error::{check_apply_shapes_ok, check_cols, check_len, check_nonzero, check_shape};
use crate::error::{Error, Result};
use crate::linear_map::{Differentiable, LinearMap};
use crate::scalar::{RealScalar, Scalar};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rand::Rng;

/// A block-diagonal matrix `W = diag(W_1, …, W_b)`, each block of shape `(out_blk, in_blk)`:
/// `y[j·out_blk ..] = W_j x[j·in_blk ..]`. It is the `R` (and `L`) factor of a Monarch matrix
/// (Dao et al., *Monarch*, ICML 2022).
///
/// Parameters: the blocks `(nblocks, out_blk, in_blk)` row-major, then the bias if any.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockDiagonal<T: Scalar> {
    factor: Factor,
    has_bias: bool,
    params: Vec<T>,
}

impl<T: Scalar> BlockDiagonal<T> {
    /// From blocks of shape `(nblocks, out_blk, in_blk)` flattened row-major.
    pub fn from_blocks(
        nblocks: usize,
        out_blk: usize,
        in_blk: usize,
        blocks: Vec<T>,
        bias: Option<Vec<T>>,
    ) -> Result<Self> {
        check_nonzero("nblocks", nblocks)?;
        check_nonzero("out_blk", out_blk)?;
        check_nonzero("in_blk", in_blk)?;
        check_len("blocks", blocks.len(), nblocks * out_blk * in_blk)?;
        let mut params = blocks;
        let has_bias = bias.is_some();
        if let Some(b) = bias {
            check_len("bias", b.len(), nblocks * out_blk)?;
            params.extend(b);
        }
        Ok(Self {
            factor: Factor {
                nblocks,
                out: out_blk,
                inp: in_blk,
            },
            has_bias,
            params,
        })
    }

    /// Random blocks, uniform in `±1/√in_blk`, and a zero bias if asked.
    pub fn random<R: Rng + ?Sized>(
        nblocks: usize,
        out_blk: usize,
        in_blk: usize,
        bias: bool,
        rng: &mut R,
    ) -> Result<Self> {
        check_nonzero("in_blk", in_blk)?;
        let bound = 1.0 / (in_blk as f64).sqrt();
        let blocks = (0..nblocks * out_blk * in_blk)
            .map(|_| uniform::<T, R>(rng, bound))
            .collect();
        Self::from_blocks(
            nblocks,
            out_blk,
            in_blk,
            blocks,
            bias.then(|| vec![T::zero(); nblocks * out_blk]),
        )
    }

    /// The block-diagonal part of `dense` (shape `nblocks·out_blk × nblocks·in_blk`): the
    /// Frobenius-nearest block-diagonal matrix, and the Frobenius error `‖dense − W‖_F`.
    pub fn project(dense: ArrayView2<T>, nblocks: usize) -> Result<(Self, f64)> {
        check_nonzero("nblocks", nblocks)?;
        let (out, inp) = dense.dim();
        for (what, n) in [("dense rows", out), ("dense columns", inp)] {
            if n == 0 || n % nblocks != 0 {
                return Err(Error::InvalidArgument {
                    what,
                    message: format!("{n} is not a positive multiple of nblocks = {nblocks}"),
                });
            }
        }
        let (ob, ib) = (out / nblocks, inp / nblocks);
        let mut blocks = Vec::with_capacity(nblocks * ob * ib);
        let mut err2 = 0.0;
        for (i, row) in dense.axis_iter(Axis(0)).enumerate() {
            for (j, v) in row.iter().enumerate() {
                if i / ob != j / ib {
                    err2 += v.modulus_sqr().to_f64();
                }
            }
        }
        for b in 0..nblocks {
            for i in 0..ob {
                for j in 0..ib {
                    blocks.push(dense[(b * ob + i, b * ib + j)]);
                }
            }
        }
        Ok((
            Self::from_blocks(nblocks, ob, ib, blocks, None)?,
            err2.sqrt(),
        ))
    }

    /// Number of blocks.
    pub fn nblocks(&self) -> usize {
        self.factor.nblocks
    }
    /// Block shape `(out_blk, in_blk)`.
    pub fn block_shape(&self) -> (usize, usize) {
        (self.factor.out, self.factor.inp)
    }
    fn weight_len(&self) -> usize {
        self.factor.nblocks * self.factor.out * self.factor.inp
    }
    /// The blocks, flat `(nblocks, out_blk, in_blk)`.
    pub fn blocks(&self) -> &[T] {
        &self.params[..self.weight_len()]
    }
    /// Block `j` as a `(out_blk, in_blk)` view.
    pub fn block(&self, j: usize) -> ArrayView2<'_, T> {
        block_gemm::weight(self.blocks(), j, self.factor.out, self.factor.inp)
    }
    /// The bias, if any.
    pub fn bias(&self) -> Option<&[T]> {
        self.has_bias.then(|| &self.params[self.weight_len()..])
    }

    fn transpose_map(&self, y: ArrayView2<T>, conj: bool) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.out_features())?;
        let mut x = Array2::zeros((y.nrows(), self.in_features()));
        block_gemm::transpose(self.factor, self.blocks(), y, x.view_mut(), conj);
        Ok(x)
    }
}

pub(crate) fn uniform<T: Scalar, R: Rng + ?Sized>(rng: &mut R, bound: f64) -> T {
    let re = rng.random_range(-bound..=bound);
    let im = if T::IS_COMPLEX {
        rng.random_range(-bound..=bound)
    } else {
        0.0
    };
    T::from_parts(re, im)
}

pub(crate) fn add_bias<T: Scalar>(y: &mut ArrayViewMut2<T>, bias: Option<&[T]>) {
    if let Some(b) = bias {
        for mut row in y.axis_iter_mut(Axis(0)) {
            for (v, &bb) in row.iter_mut().zip(b) {
                *v += bb;
            }
        }
    }
}

pub(crate) fn bias_grad<T: Scalar>(dy: ArrayView2<T>, g: &mut [T]) {
    for row in dy.axis_iter(Axis(0)) {
        for (gi, &d) in g.iter_mut().zip(row.iter()) {
            *gi += d;
        }
    }
}

impl<T: Scalar> LinearMap<T> for BlockDiagonal<T> {
    fn in_features(&self) -> usize {
        self.factor.nblocks * self.factor.inp
    }
    fn out_features(&self) -> usize {
        self.factor.nblocks * self.factor.out
    }
    fn apply_into(&self, x: ArrayView2<T>, mut y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.in_features(), self.out_features(), &x, &y)?;
        block_gemm::forward(self.factor, self.blocks(), x, y.view_mut());
        add_bias(&mut y, self.bias());
        Ok(())
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.transpose_map(y, false)
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.transpose_map(y, T::IS_COMPLEX)
    }
    fn to_dense(&self) -> Array2<T> {
        let mut d = Array2::zeros((self.out_features(), self.in_features()));
        let (ob, ib) = self.block_shape();
        for j in 0..self.nblocks() {
            d.slice_mut(ndarray::s![j * ob..(j + 1) * ob, j * ib..(j + 1) * ib])
                .assign(&self.block(j));
        }
        d
    }
    fn num_params(&self) -> usize {
        self.params.len()
    }
    fn flops_per_row(&self) -> usize {
        let mac = if T::IS_COMPLEX { 8 } else { 2 };
        mac * self.weight_len()
            + if self.has_bias {
                self.out_features()
            } else {
                0
            }
    }
}

impl<T: Scalar> Differentiable<T> for BlockDiagonal<T> {
    fn backward(&self, x: ArrayView2<T>, dy: ArrayView2<T>, grads: &mut [T]) -> Result<Array2<T>> {
        check_cols("x", x.dim(), self.in_features())?;
        check_shape("dy", dy.dim(), (x.nrows(), self.out_features()))?;
        check_len("grads", grads.len(), self.params.len())?;
        let wl = self.weight_len();
        let (gw, gb) = grads.split_at_mut(wl);
        block_gemm::weight_grad(self.factor, gw, x, dy);
        if self.has_bias {
            bias_grad(dy, gb);
        }
        self.transpose_map(dy, T::IS_COMPLEX)
    }
    fn params(&self) -> &[T] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }
}
