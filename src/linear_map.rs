//! The core traits: a structured matrix is a [`LinearMap`] and, when it has parameters, a
//! [`Differentiable`] one.
//!
//! Batches are row-major `(batch, n)` as in PyTorch: a map with matrix `W` (shape `(out, in)`)
//! and bias `b` sends each row `x` to `y = x Wᵀ + b`.

use crate::error::{check_cols, Result};
use crate::scalar::Scalar;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// A linear (or affine, when it has a bias) map on batches of row vectors.
pub trait LinearMap<T: Scalar> {
    /// Width of an input row.
    fn in_features(&self) -> usize;
    /// Width of an output row.
    fn out_features(&self) -> usize;

    /// `y = x Wᵀ (+ b)` for `x` of shape `(batch, in)`, writing into `y` of shape `(batch, out)`.
    fn apply_into(&self, x: ArrayView2<T>, y: ArrayViewMut2<T>) -> Result<()>;

    /// `y = x Wᵀ (+ b)`: `(batch, in) → (batch, out)`.
    fn apply(&self, x: ArrayView2<T>) -> Result<Array2<T>> {
        check_cols("x", x.dim(), self.in_features())?;
        let mut y = Array2::zeros((x.nrows(), self.out_features()));
        self.apply_into(x, y.view_mut())?;
        Ok(y)
    }

    /// The transpose of the linear part: `x = y W` for `y` of shape `(batch, out)`.
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>>;

    /// The conjugate transpose of the linear part: `x = y W̄` (equals the transpose for real
    /// scalars).
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>>;

    /// The matrix `W` of the linear part, shape `(out, in)` (no bias).
    fn to_dense(&self) -> Array2<T>;

    /// Number of scalar parameters (0 for fixed maps).
    fn num_params(&self) -> usize;

    /// Real floating-point operations to apply the map to one input row (a complex multiply-add
    /// counts 8).
    fn flops_per_row(&self) -> usize;
}

/// A [`LinearMap`] with parameters and a backward pass.
pub trait Differentiable<T: Scalar>: LinearMap<T> {
    /// Given the input batch `x` and `dy = ∂L/∂y`, return `∂L/∂x` and add `∂L/∂θ` into `grads`
    /// (same layout and length as [`params`](Differentiable::params)).
    fn backward(&self, x: ArrayView2<T>, dy: ArrayView2<T>, grads: &mut [T]) -> Result<Array2<T>>;
    /// The one flat, contiguous parameter buffer.
    fn params(&self) -> &[T];
    /// The parameter buffer, mutable (for optimisers).
    fn params_mut(&mut self) -> &mut [T];
}

/// The dense matrix of any map, computed by applying its transpose to the identity
/// (`W = (I W)`), so it works for maps whose `to_dense` is built from `apply_*`.
pub fn dense_via_transpose<T: Scalar, M: LinearMap<T> + ?Sized>(map: &M) -> Result<Array2<T>> {
    let eye = Array2::from_shape_fn((map.out_features(), map.out_features()), |(i, j)| {
        if i == j {
            T::one()
        } else {
            T::zero()
        }
    });
    map.apply_transpose(eye.view())
}

/// A boxed map is the map it holds (so composites such as `Kronecker` accept boxed maps).
impl<T: Scalar, M: LinearMap<T> + ?Sized> LinearMap<T> for Box<M> {
    fn in_features(&self) -> usize {
        (**self).in_features()
    }
    fn out_features(&self) -> usize {
        (**self).out_features()
    }
    fn apply_into(&self, x: ArrayView2<T>, y: ArrayViewMut2<T>) -> Result<()> {
        (**self).apply_into(x, y)
    }
    fn apply(&self, x: ArrayView2<T>) -> Result<Array2<T>> {
        (**self).apply(x)
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        (**self).apply_transpose(y)
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        (**self).apply_adjoint(y)
    }
    fn to_dense(&self) -> Array2<T> {
        (**self).to_dense()
    }
    fn num_params(&self) -> usize {
        (**self).num_params()
    }
    fn flops_per_row(&self) -> usize {
        (**self).flops_per_row()
    }
}
