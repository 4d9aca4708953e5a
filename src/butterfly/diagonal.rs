//! Diagonal matrices `D = diag(d)`: `y[i] = d[i] x[i]`.

use crate::error::{check_apply_shapes_ok, check_cols, check_len, check_nonzero, Result};
use crate::linear_map::{Differentiable, LinearMap};
use crate::scalar::Scalar;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, Zip};

/// A diagonal matrix `diag(d)`, learnable: its parameters are the entries `d`.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagonal<T: Scalar> {
    d: Vec<T>,
}

impl<T: Scalar> Diagonal<T> {
    /// `diag(d)`; `d` must be non-empty.
    pub fn new(d: Vec<T>) -> Result<Self> {
        check_nonzero("diagonal length", d.len())?;
        Ok(Self { d })
    }

    /// The identity of size `n`.
    pub fn identity(n: usize) -> Result<Self> {
        check_nonzero("n", n)?;
        Ok(Self {
            d: vec![T::one(); n],
        })
    }

    /// The diagonal entries.
    pub fn diag(&self) -> &[T] {
        &self.d
    }

    /// Size `n` of the square matrix.
    pub fn len(&self) -> usize {
        self.d.len()
    }

    /// Always false: a diagonal has at least one entry.
    pub fn is_empty(&self) -> bool {
        self.d.is_empty()
    }

    fn apply_with(&self, y: ArrayView2<T>, conj: bool) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.len())?;
        let mut x = y.to_owned();
        for mut row in x.axis_iter_mut(Axis(0)) {
            for (v, &d) in row.iter_mut().zip(&self.d) {
                *v *= if conj { d.conj() } else { d };
            }
        }
        Ok(x)
    }
}

impl<T: Scalar> LinearMap<T> for Diagonal<T> {
    fn in_features(&self) -> usize {
        self.len()
    }
    fn out_features(&self) -> usize {
        self.len()
    }
    fn apply_into(&self, x: ArrayView2<T>, mut y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.len(), self.len(), &x, &y)?;
        Zip::from(y.axis_iter_mut(Axis(0)))
            .and(x.axis_iter(Axis(0)))
            .for_each(|mut yr, xr| {
                for ((yi, &xi), &d) in yr.iter_mut().zip(xr.iter()).zip(&self.d) {
                    *yi = d * xi;
                }
            });
        Ok(())
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.apply_with(y, false)
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.apply_with(y, true)
    }
    fn to_dense(&self) -> Array2<T> {
        let n = self.len();
        let mut m = Array2::zeros((n, n));
        for (i, &d) in self.d.iter().enumerate() {
            m[(i, i)] = d;
        }
        m
    }
    fn num_params(&self) -> usize {
        self.len()
    }
    fn flops_per_row(&self) -> usize {
        self.len() * if T::IS_COMPLEX { 6 } else { 1 }
    }
}

impl<T: Scalar> Differentiable<T> for Diagonal<T> {
    fn backward(&self, x: ArrayView2<T>, dy: ArrayView2<T>, grads: &mut [T]) -> Result<Array2<T>> {
        check_cols("x", x.dim(), self.len())?;
        crate::error::check_shape("dy", dy.dim(), x.dim())?;
        check_len("grads", grads.len(), self.len())?;
        for (xr, gr) in x.axis_iter(Axis(0)).zip(dy.axis_iter(Axis(0))) {
            for ((g, &xi), &gi) in grads.iter_mut().zip(xr.iter()).zip(gr.iter()) {
                *g += gi * xi.conj();
            }
        }
        self.apply_adjoint(dy)
    }
    fn params(&self) -> &[T] {
        &self.d
    }
    fn params_mut(&mut self) -> &mut [T] {
        &mut self.d
    }
}
