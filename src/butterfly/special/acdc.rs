//! ACDC: a learnable diagonal–cosine–diagonal–inverse-cosine layer (Moczulski, Denil, Appleyard,
//! de Freitas, *ACDC: A Structured Efficient Linear Layer*, ICLR 2016), its DCTs computed by
//! complex butterflies.

use super::trig::{dct_butterfly, DctType};
use crate::butterfly::Butterfly;
use crate::error::{check_apply_shapes_ok, check_cols, check_len, check_pow2, check_shape, Result};
use crate::linear_map::{Differentiable, LinearMap};
use crate::scalar::{RealScalar, Scalar};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use num_complex::Complex;
use rand::Rng;

/// The ACDC map `y = x·A·C·D·C⁻¹` on row vectors `x` (the paper's notation): scale by the
/// diagonal `A`, take the orthonormal DCT-II `C`, scale by the diagonal `D`, and invert the DCT.
/// As a matrix on columns, `W = C⁻¹·D·C·A` with `C⁻¹ = Cᵀ`, the orthonormal DCT-III.
///
/// `O(n)` parameters (`a` then `d` in one buffer) and `O(n log n)` work; both DCTs are the real
/// parts of complex butterflies ([`dct_butterfly`]). `n` must be a power of two.
#[derive(Debug, Clone, PartialEq)]
pub struct Acdc<R: RealScalar>
where
    Complex<R>: Scalar<Real = R>,
{
    n: usize,
    params: Vec<R>,
    /// `C = Re(M)` on real inputs; `None` for `n = 1`, where `C = 1`.
    dct: Option<Butterfly<Complex<R>>>,
    /// `C⁻¹ = Re(M')`; `None` for `n = 1`.
    idct: Option<Butterfly<Complex<R>>>,
}

/// `Re(M x)` (or `Re(Mᵀ x)`) for real rows `x`; the identity when `m` is `None`.
fn real_part_apply<R: RealScalar>(
    m: &Option<Butterfly<Complex<R>>>,
    x: ArrayView2<R>,
    transpose: bool,
) -> Result<Array2<R>>
where
    Complex<R>: Scalar<Real = R>,
{
    let Some(m) = m else {
        return Ok(x.to_owned());
    };
    let z = x.mapv(|v| Complex::new(v, R::zero()));
    let out = if transpose {
        m.apply_transpose(z.view())?
    } else {
        m.apply(z.view())?
    };
    Ok(out.mapv(|v| v.re))
}

fn scale_cols<R: RealScalar>(mut x: Array2<R>, s: &[R]) -> Array2<R> {
    for mut row in x.axis_iter_mut(Axis(0)) {
        for (v, &d) in row.iter_mut().zip(s) {
            *v *= d;
        }
    }
    x
}

impl<R: RealScalar> Acdc<R>
where
    Complex<R>: Scalar<Real = R>,
{
    /// ACDC with diagonals `a` and `d` (equal lengths `n = 2^m`).
    pub fn new(a: Vec<R>, d: Vec<R>) -> Result<Self> {
        let n = a.len();
        check_pow2("a length", n)?;
        check_len("d", d.len(), n)?;
        let (dct, idct) = if n == 1 {
            (None, None)
        } else {
            (
                Some(dct_butterfly(n, DctType::II, true)?),
                Some(dct_butterfly(n, DctType::III, true)?),
            )
        };
        let mut params = a;
        params.extend(d);
        Ok(Self {
            n,
            params,
            dct,
            idct,
        })
    }

    /// `A = D = I`: the identity map.
    pub fn identity(n: usize) -> Result<Self> {
        check_pow2("n", n)?;
        Self::new(vec![R::one(); n], vec![R::one(); n])
    }

    /// Diagonal entries drawn from `N(1, std²)`, the near-identity initialisation the paper
    /// recommends for deep cascades.
    pub fn random<G: Rng + ?Sized>(n: usize, std: f64, rng: &mut G) -> Result<Self> {
        check_pow2("n", n)?;
        let mut draw = || {
            (0..n)
                .map(|_| R::one() + R::randn(rng, std))
                .collect::<Vec<R>>()
        };
        let a = draw();
        let d = draw();
        Self::new(a, d)
    }

    /// Size `n`.
    pub fn len(&self) -> usize {
        self.n
    }
    /// Always false: `n ≥ 1`.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// The diagonal `A` (applied first).
    pub fn a(&self) -> &[R] {
        &self.params[..self.n]
    }
    /// The diagonal `D` (applied between the DCT and its inverse).
    pub fn d(&self) -> &[R] {
        &self.params[self.n..]
    }

    /// `C·(A x)`: the activations between `C` and `D`.
    fn inner(&self, x: ArrayView2<R>) -> Result<Array2<R>> {
        real_part_apply(&self.dct, scale_cols(x.to_owned(), self.a()).view(), false)
    }
}

impl<R: RealScalar> LinearMap<R> for Acdc<R>
where
    Complex<R>: Scalar<Real = R>,
{
    fn in_features(&self) -> usize {
        self.n
    }
    fn out_features(&self) -> usize {
        self.n
    }
    fn apply_into(&self, x: ArrayView2<R>, mut y: ArrayViewMut2<R>) -> Result<()> {
        check_apply_shapes_ok(self.n, self.n, &x, &y)?;
        let w = scale_cols(self.inner(x)?, self.d());
        y.assign(&real_part_apply(&self.idct, w.view(), false)?);
        Ok(())
    }
    fn apply_transpose(&self, y: ArrayView2<R>) -> Result<Array2<R>> {
        check_cols("y", y.dim(), self.n)?;
        let g = scale_cols(real_part_apply(&self.idct, y, true)?, self.d());
        Ok(scale_cols(
            real_part_apply(&self.dct, g.view(), true)?,
            self.a(),
        ))
    }
    fn apply_adjoint(&self, y: ArrayView2<R>) -> Result<Array2<R>> {
        self.apply_transpose(y)
    }
    fn to_dense(&self) -> Array2<R> {
        let eye =
            Array2::from_shape_fn(
                (self.n, self.n),
                |(i, j)| {
                    if i == j {
                        R::one()
                    } else {
                        R::zero()
                    }
                },
            );
        self.apply(eye.view())
            .expect("identity has n columns")
            .reversed_axes()
            .as_standard_layout()
            .into_owned()
    }
    fn num_params(&self) -> usize {
        2 * self.n
    }
    fn flops_per_row(&self) -> usize {
        let b = self.dct.as_ref().map_or(0, |b| b.flops_per_row());
        2 * b + 2 * self.n
    }
}

impl<R: RealScalar> Differentiable<R> for Acdc<R>
where
    Complex<R>: Scalar<Real = R>,
{
    fn backward(&self, x: ArrayView2<R>, dy: ArrayView2<R>, grads: &mut [R]) -> Result<Array2<R>> {
        check_cols("x", x.dim(), self.n)?;
        check_shape("dy", dy.dim(), x.dim())?;
        check_len("grads", grads.len(), 2 * self.n)?;
        let n = self.n;
        let v = self.inner(x)?;
        let dw = real_part_apply(&self.idct, dy, true)?;
        for (vr, gr) in v.axis_iter(Axis(0)).zip(dw.axis_iter(Axis(0))) {
            for ((g, &vi), &gi) in grads[n..].iter_mut().zip(vr.iter()).zip(gr.iter()) {
                *g += gi * vi;
            }
        }
        let du = real_part_apply(&self.dct, scale_cols(dw, self.d()).view(), true)?;
        for (xr, gr) in x.axis_iter(Axis(0)).zip(du.axis_iter(Axis(0))) {
            for ((g, &xi), &gi) in grads[..n].iter_mut().zip(xr.iter()).zip(gr.iter()) {
                *g += gi * xi;
            }
        }
        Ok(scale_cols(du, self.a()))
    }
    fn params(&self) -> &[R] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [R] {
        &mut self.params
    }
}
