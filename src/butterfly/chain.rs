//! Composite maps: a product of maps ([`Chain`]) and a real map computed through a complex one
//! ([`RealPart`]).

use crate::error::{check_apply_shapes_ok, check_cols, Error, Result};
use crate::linear_map::LinearMap;
use crate::scalar::{RealScalar, Scalar};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use num_complex::Complex;

/// A boxed map that can be shared across threads.
pub type BoxedMap<T> = Box<dyn LinearMap<T> + Send + Sync>;

/// The product `W = W_k ⋯ W_2 W_1` of fixed maps, applied first to last: `y = W_k(⋯W_1(x))`.
pub struct Chain<T: Scalar> {
    maps: Vec<BoxedMap<T>>,
}

impl<T: Scalar> Chain<T> {
    /// The product of `maps` (applied in order); consecutive widths must agree.
    pub fn new(maps: Vec<BoxedMap<T>>) -> Result<Self> {
        if maps.is_empty() {
            return Err(Error::Zero {
                what: "number of maps in a chain",
            });
        }
        for (i, w) in maps.windows(2).enumerate() {
            if w[0].out_features() != w[1].in_features() {
                return Err(Error::Shape {
                    what: "chain",
                    expected: format!(
                        "map {} to take {} inputs (the outputs of map {i})",
                        i + 1,
                        w[0].out_features()
                    ),
                    got: format!("{}", w[1].in_features()),
                });
            }
        }
        Ok(Self { maps })
    }

    /// The factors, in application order.
    pub fn maps(&self) -> &[BoxedMap<T>] {
        &self.maps
    }

    fn backwards(&self, y: ArrayView2<T>, adjoint: bool) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.out_features())?;
        let mut cur = y.to_owned();
        for m in self.maps.iter().rev() {
            cur = if adjoint {
                m.apply_adjoint(cur.view())?
            } else {
                m.apply_transpose(cur.view())?
            };
        }
        Ok(cur)
    }
}

impl<T: Scalar> LinearMap<T> for Chain<T> {
    fn in_features(&self) -> usize {
        self.maps[0].in_features()
    }
    fn out_features(&self) -> usize {
        self.maps[self.maps.len() - 1].out_features()
    }
    fn apply_into(&self, x: ArrayView2<T>, mut y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.in_features(), self.out_features(), &x, &y)?;
        let (last, rest) = self.maps.split_last().expect("non-empty chain");
        let mut cur = x.to_owned();
        for m in rest {
            cur = m.apply(cur.view())?;
        }
        last.apply_into(cur.view(), y.view_mut())
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.backwards(y, false)
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.backwards(y, true)
    }
    fn to_dense(&self) -> Array2<T> {
        // Through the transposes, which carry no bias: `apply` would add the factors' biases.
        crate::linear_map::dense_via_transpose(self)
            .expect("consecutive widths checked at construction")
    }
    fn num_params(&self) -> usize {
        self.maps.iter().map(|m| m.num_params()).sum()
    }
    fn flops_per_row(&self) -> usize {
        self.maps.iter().map(|m| m.flops_per_row()).sum()
    }
}

/// The real map `x ↦ Re(A x)` of a complex map `A`, for real inputs: its matrix is `Re(A)`.
/// Used for real transforms (DCT, DST, real circulants) computed through complex butterflies.
pub struct RealPart<R: RealScalar> {
    inner: BoxedMap<Complex<R>>,
}

impl<R: RealScalar> RealPart<R>
where
    Complex<R>: Scalar<Real = R>,
{
    /// `x ↦ Re(inner(x))`.
    pub fn new(inner: BoxedMap<Complex<R>>) -> Self {
        Self { inner }
    }
    /// The complex map underneath.
    pub fn inner(&self) -> &BoxedMap<Complex<R>> {
        &self.inner
    }
}

fn complexify<R: RealScalar>(x: ArrayView2<R>) -> Array2<Complex<R>> {
    x.mapv(|v| Complex::new(v, R::zero()))
}

impl<R: RealScalar> LinearMap<R> for RealPart<R>
where
    Complex<R>: Scalar<Real = R>,
{
    fn in_features(&self) -> usize {
        self.inner.in_features()
    }
    fn out_features(&self) -> usize {
        self.inner.out_features()
    }
    fn apply_into(&self, x: ArrayView2<R>, mut y: ArrayViewMut2<R>) -> Result<()> {
        check_apply_shapes_ok(self.in_features(), self.out_features(), &x, &y)?;
        let z = self.inner.apply(complexify(x).view())?;
        y.zip_mut_with(&z, |a, b| *a = b.re);
        Ok(())
    }
    fn apply_transpose(&self, y: ArrayView2<R>) -> Result<Array2<R>> {
        check_cols("y", y.dim(), self.out_features())?;
        Ok(self
            .inner
            .apply_transpose(complexify(y).view())?
            .mapv(|v| v.re))
    }
    fn apply_adjoint(&self, y: ArrayView2<R>) -> Result<Array2<R>> {
        self.apply_transpose(y)
    }
    fn to_dense(&self) -> Array2<R> {
        self.inner.to_dense().mapv(|v| v.re)
    }
    fn num_params(&self) -> usize {
        self.inner.num_params()
    }
    fn flops_per_row(&self) -> usize {
        self.inner.flops_per_row()
    }
}
