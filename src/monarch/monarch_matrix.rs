//! [`Monarch`]: the product of two block-diagonal factors with interleaving permutations.

use super::block_diagonal::{add_bias, bias_grad, uniform};
use super::block_gemm::{self, Cols, Factor};
use super::shape::MonarchShape;
use crate::error::{check_apply_shapes_ok, check_cols, check_len, check_shape, Result};
use crate::linear_map::{Differentiable, LinearMap};
use crate::scalar::Scalar;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, CowArray, Ix2};
use rand::Rng;

/// A Monarch matrix `M = P_out · BD(w2) · P_mid · BD(w1)` (Dao et al., *Monarch: Expressive
/// Structured Matrices for Efficient and Accurate Training*, ICML 2022), with the geometry of
/// [`MonarchShape`]; the square case is `M = P L Pᵀ R`.
///
/// Applying it costs two batched GEMMs, `k·q·p + l·s·r` multiply-adds per row instead of
/// `in·out`. Parameters: `w1` `(k, q, p)`, then `w2` `(l, s, r)`, row-major, then the bias.
#[derive(Debug, Clone, PartialEq)]
pub struct Monarch<T: Scalar> {
    shape: MonarchShape,
    has_bias: bool,
    params: Vec<T>,
}

impl<T: Scalar> Monarch<T> {
    /// From explicit factors `w1` `(k, q, p)` and `w2` `(l, s, r)` flattened row-major.
    pub fn from_factors(
        shape: MonarchShape,
        w1: Vec<T>,
        w2: Vec<T>,
        bias: Option<Vec<T>>,
    ) -> Result<Self> {
        shape.validate()?;
        let (n1, n2) = shape.weight_lens();
        check_len("w1", w1.len(), n1)?;
        check_len("w2", w2.len(), n2)?;
        let mut params = w1;
        params.extend(w2);
        let has_bias = bias.is_some();
        if let Some(b) = bias {
            check_len("bias", b.len(), shape.out_features)?;
            params.extend(b);
        }
        Ok(Self {
            shape,
            has_bias,
            params,
        })
    }

    /// Random factors, each uniform in `±1/√fan_in` of its blocks (`p` for `w1`, `r` for
    /// `w2`), and a zero bias if asked.
    pub fn random<R: Rng + ?Sized>(shape: MonarchShape, bias: bool, rng: &mut R) -> Result<Self> {
        shape.validate()?;
        let (n1, n2) = shape.weight_lens();
        let b1 = 1.0 / (shape.p as f64).sqrt();
        let b2 = 1.0 / (shape.r as f64).sqrt();
        let w1 = (0..n1).map(|_| uniform::<T, R>(rng, b1)).collect();
        let w2 = (0..n2).map(|_| uniform::<T, R>(rng, b2)).collect();
        Self::from_factors(
            shape,
            w1,
            w2,
            bias.then(|| vec![T::zero(); shape.out_features]),
        )
    }

    /// The geometry.
    pub fn shape(&self) -> MonarchShape {
        self.shape
    }
    fn f1(&self) -> Factor {
        Factor {
            nblocks: self.shape.k,
            out: self.shape.q,
            inp: self.shape.p,
        }
    }
    fn f2(&self) -> Factor {
        Factor {
            nblocks: self.shape.l,
            out: self.shape.s,
            inp: self.shape.r,
        }
    }
    /// The first factor's blocks, flat `(k, q, p)`.
    pub fn w1(&self) -> &[T] {
        &self.params[..self.shape.weight_lens().0]
    }
    /// The second factor's blocks, flat `(l, s, r)`.
    pub fn w2(&self) -> &[T] {
        let (n1, n2) = self.shape.weight_lens();
        &self.params[n1..n1 + n2]
    }
    /// The bias, if any.
    pub fn bias(&self) -> Option<&[T]> {
        let (n1, n2) = self.shape.weight_lens();
        self.has_bias.then(|| &self.params[n1 + n2..])
    }

    fn padded_input<'a>(&self, x: ArrayView2<'a, T>) -> CowArray<'a, T, Ix2> {
        if x.ncols() == self.shape.padded_in() {
            return x.into();
        }
        let mut xp = Array2::zeros((x.nrows(), self.shape.padded_in()));
        xp.slice_mut(s![.., ..x.ncols()]).assign(&x);
        xp.into()
    }

    /// The intermediate `t = BD(w1)·x`, shape `(batch, k·q)`.
    fn inner(&self, x: ArrayView2<T>) -> Array2<T> {
        let xp = self.padded_input(x);
        let mut t = Array2::zeros((x.nrows(), self.shape.inner()));
        block_gemm::forward(
            self.f1(),
            self.w1(),
            xp.view(),
            Cols::Contiguous,
            t.view_mut(),
            Cols::Contiguous,
        );
        t
    }

    fn transpose_map(&self, y: ArrayView2<T>, conj: bool) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.shape.out_features)?;
        let sh = self.shape;
        let mut yp = Array2::zeros((y.nrows(), sh.padded_out()));
        yp.slice_mut(s![.., ..sh.out_features]).assign(&y);
        let mut t = Array2::zeros((y.nrows(), sh.inner()));
        block_gemm::transpose(
            self.f2(),
            self.w2(),
            yp.view(),
            Cols::Interleaved,
            t.view_mut(),
            Cols::Interleaved,
            conj,
        );
        let mut x = Array2::zeros((y.nrows(), sh.padded_in()));
        block_gemm::transpose(
            self.f1(),
            self.w1(),
            t.view(),
            Cols::Contiguous,
            x.view_mut(),
            Cols::Contiguous,
            conj,
        );
        if sh.in_features == sh.padded_in() {
            Ok(x)
        } else {
            Ok(x.slice(s![.., ..sh.in_features]).to_owned())
        }
    }
}

impl<T: Scalar> LinearMap<T> for Monarch<T> {
    fn in_features(&self) -> usize {
        self.shape.in_features
    }
    fn out_features(&self) -> usize {
        self.shape.out_features
    }
    fn apply_into(&self, x: ArrayView2<T>, mut y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.in_features(), self.out_features(), &x, &y)?;
        let sh = self.shape;
        let t = self.inner(x);
        if sh.out_features == sh.padded_out() {
            block_gemm::forward(
                self.f2(),
                self.w2(),
                t.view(),
                Cols::Interleaved,
                y.view_mut(),
                Cols::Interleaved,
            );
        } else {
            let mut yp = Array2::zeros((x.nrows(), sh.padded_out()));
            block_gemm::forward(
                self.f2(),
                self.w2(),
                t.view(),
                Cols::Interleaved,
                yp.view_mut(),
                Cols::Interleaved,
            );
            y.assign(&yp.slice(s![.., ..sh.out_features]));
        }
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
        let n = self.shape.out_features;
        let eye = Array2::from_shape_fn((n, n), |(i, j)| if i == j { T::one() } else { T::zero() });
        self.transpose_map(eye.view(), false)
            .expect("identity of the output width")
    }
    fn num_params(&self) -> usize {
        self.params.len()
    }
    fn flops_per_row(&self) -> usize {
        let (n1, n2) = self.shape.weight_lens();
        let mac = if T::IS_COMPLEX { 8 } else { 2 };
        mac * (n1 + n2)
            + if self.has_bias {
                self.shape.out_features
            } else {
                0
            }
    }
}

impl<T: Scalar> Differentiable<T> for Monarch<T> {
    fn backward(&self, x: ArrayView2<T>, dy: ArrayView2<T>, grads: &mut [T]) -> Result<Array2<T>> {
        let sh = self.shape;
        check_cols("x", x.dim(), sh.in_features)?;
        check_shape("dy", dy.dim(), (x.nrows(), sh.out_features))?;
        check_len("grads", grads.len(), self.params.len())?;
        let (n1, n2) = sh.weight_lens();
        let (g1, rest) = grads.split_at_mut(n1);
        let (g2, gb) = rest.split_at_mut(n2);
        let xp = self.padded_input(x);
        let t = self.inner(x);
        let mut dyp = Array2::zeros((x.nrows(), sh.padded_out()));
        dyp.slice_mut(s![.., ..sh.out_features]).assign(&dy);
        block_gemm::weight_grad(
            self.f2(),
            g2,
            t.view(),
            Cols::Interleaved,
            dyp.view(),
            Cols::Interleaved,
        );
        let mut dt = Array2::zeros((x.nrows(), sh.inner()));
        block_gemm::transpose(
            self.f2(),
            self.w2(),
            dyp.view(),
            Cols::Interleaved,
            dt.view_mut(),
            Cols::Interleaved,
            T::IS_COMPLEX,
        );
        block_gemm::weight_grad(
            self.f1(),
            g1,
            xp.view(),
            Cols::Contiguous,
            dt.view(),
            Cols::Contiguous,
        );
        let mut dx = Array2::zeros((x.nrows(), sh.padded_in()));
        block_gemm::transpose(
            self.f1(),
            self.w1(),
            dt.view(),
            Cols::Contiguous,
            dx.view_mut(),
            Cols::Contiguous,
            T::IS_COMPLEX,
        );
        if self.has_bias {
            bias_grad(dy, gb);
        }
        if sh.in_features == sh.padded_in() {
            Ok(dx)
        } else {
            Ok(dx.slice(s![.., ..sh.in_features]).to_owned())
        }
    }
    fn params(&self) -> &[T] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }
}
