//! [`LowRank`] (`W = U Vᵀ`) and [`PixelatedButterfly`](crate::PixelatedButterfly) (flat block butterfly plus low rank).

use crate::dense::gemm_conj;
use crate::error::{check_apply_shapes_ok, check_cols, check_len, check_nonzero, check_shape};
use crate::error::{Error, Result};
use crate::linear_map::{Differentiable, LinearMap};
use crate::monarch::{add_bias, bias_grad, uniform};
use crate::scalar::{RealScalar, Scalar};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use num_traits::Float;
use rand::Rng;

/// A rank-`r` matrix `W = U Vᵀ` with `U` of shape `(out, r)` and `V` of shape `(in, r)`:
/// `y = (x V) Uᵀ + b`, `r·(in + out)` multiply-adds per row.
///
/// Parameters: `U` row-major, `V` row-major, then the bias.
#[derive(Debug, Clone, PartialEq)]
pub struct LowRank<T: Scalar> {
    in_features: usize,
    out_features: usize,
    rank: usize,
    has_bias: bool,
    params: Vec<T>,
}

impl<T: Scalar> LowRank<T> {
    /// From `u` `(out, rank)` and `v` `(in, rank)`.
    pub fn from_factors(u: Array2<T>, v: Array2<T>, bias: Option<Vec<T>>) -> Result<Self> {
        let (out_features, rank) = u.dim();
        let in_features = v.nrows();
        check_nonzero("out_features", out_features)?;
        check_nonzero("in_features", in_features)?;
        check_nonzero("rank", rank)?;
        check_shape("v", v.dim(), (in_features, rank))?;
        let mut params: Vec<T> = u.iter().chain(v.iter()).copied().collect();
        let has_bias = bias.is_some();
        if let Some(b) = bias {
            check_len("bias", b.len(), out_features)?;
            params.extend(b);
        }
        Ok(Self {
            in_features,
            out_features,
            rank,
            has_bias,
            params,
        })
    }

    /// Random factors, `U` uniform in `±√(3/r)` and `V` uniform in `±1/√in`, so that `W` has
    /// the entry variance of PyTorch's default `Linear` init (`1/(3·in)`); a zero bias if asked.
    /// `rank` must be at most `min(in, out)`.
    pub fn random<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        rank: usize,
        bias: bool,
        rng: &mut R,
    ) -> Result<Self> {
        check_rank(rank, in_features, out_features)?;
        let bu = (3.0 / rank as f64).sqrt();
        let bv = (1.0 / in_features as f64).sqrt();
        let u = Array2::from_shape_simple_fn((out_features, rank), || uniform::<T, R>(rng, bu));
        let v = Array2::from_shape_simple_fn((in_features, rank), || uniform::<T, R>(rng, bv));
        Self::from_factors(u, v, bias.then(|| vec![T::zero(); out_features]))
    }

    /// The best rank-`rank` approximation of `dense` (truncated SVD, Eckart–Young) and the
    /// Frobenius error `‖dense − U Vᵀ‖_F = (Σ_{i ≥ rank} σ_i²)^{1/2}`.
    pub fn project(dense: ArrayView2<T>, rank: usize) -> Result<(Self, f64)> {
        let (out, inp) = dense.dim();
        check_rank(rank, inp, out)?;
        let (u, sigma, v) = T::thin_svd(crate::dense::faer_ref(dense))?;
        let uf = Array2::from_shape_fn((out, rank), |(i, j)| {
            u[(i, j)].scale_real(Float::sqrt(sigma[j]))
        });
        let vf = Array2::from_shape_fn((inp, rank), |(i, j)| {
            v[(i, j)].conj().scale_real(Float::sqrt(sigma[j]))
        });
        let err = sigma[rank..]
            .iter()
            .map(|s| s.to_f64().powi(2))
            .sum::<f64>()
            .sqrt();
        Ok((Self::from_factors(uf, vf, None)?, err))
    }

    /// The rank `r`.
    pub fn rank(&self) -> usize {
        self.rank
    }
    /// `U`, shape `(out, r)`.
    pub fn u(&self) -> ArrayView2<'_, T> {
        let n = self.out_features * self.rank;
        ArrayView2::from_shape((self.out_features, self.rank), &self.params[..n]).expect("layout")
    }
    /// `V`, shape `(in, r)`.
    pub fn v(&self) -> ArrayView2<'_, T> {
        let a = self.out_features * self.rank;
        let b = a + self.in_features * self.rank;
        ArrayView2::from_shape((self.in_features, self.rank), &self.params[a..b]).expect("layout")
    }
    fn factor_len(&self) -> usize {
        (self.in_features + self.out_features) * self.rank
    }
    /// The bias, if any.
    pub fn bias(&self) -> Option<&[T]> {
        self.has_bias.then(|| &self.params[self.factor_len()..])
    }
}

/// `y ← x (U Vᵀ)ᵀ = (x V) Uᵀ`, accumulating if asked.
pub(crate) fn lr_forward<T: Scalar>(
    u: ArrayView2<T>,
    v: ArrayView2<T>,
    x: ArrayView2<T>,
    y: ArrayViewMut2<T>,
    accumulate: bool,
) {
    let mut t = Array2::zeros((x.nrows(), u.ncols()));
    gemm_conj(x, false, v, false, t.view_mut(), false);
    gemm_conj(t.view(), false, u.t(), false, y, accumulate);
}

/// `x ← y op(U Vᵀ) = (y op(U)) op(V)ᵀ`, `op` conjugating when `conj`, accumulating if asked.
pub(crate) fn lr_transpose<T: Scalar>(
    u: ArrayView2<T>,
    v: ArrayView2<T>,
    y: ArrayView2<T>,
    x: ArrayViewMut2<T>,
    conj: bool,
    accumulate: bool,
) {
    let mut t = Array2::zeros((y.nrows(), u.ncols()));
    gemm_conj(y, false, u, conj, t.view_mut(), false);
    gemm_conj(t.view(), false, v.t(), conj, x, accumulate);
}

/// Adds `∂L/∂U`, `∂L/∂V` into `gu` `(out, r)`, `gv` `(in, r)` and `dy W̄` into `dx`.
pub(crate) fn lr_backward<T: Scalar>(
    u: ArrayView2<T>,
    v: ArrayView2<T>,
    x: ArrayView2<T>,
    dy: ArrayView2<T>,
    gu: &mut [T],
    gv: &mut [T],
    dx: ArrayViewMut2<T>,
) {
    let c = T::IS_COMPLEX;
    let mut t = Array2::zeros((x.nrows(), u.ncols()));
    gemm_conj(x, false, v, false, t.view_mut(), false);
    // dU = dyᵀ t̄ ; dt = dy Ū ; dV = x̄ᵀ dt ; dx += dt V̄ᵀ
    let gu = ArrayViewMut2::from_shape(u.dim(), gu).expect("layout");
    gemm_conj(dy.t(), false, t.view(), c, gu, true);
    let mut dt = Array2::zeros((x.nrows(), u.ncols()));
    gemm_conj(dy, false, u, c, dt.view_mut(), false);
    let gv = ArrayViewMut2::from_shape(v.dim(), gv).expect("layout");
    gemm_conj(x.t(), c, dt.view(), false, gv, true);
    gemm_conj(dt.view(), false, v.t(), c, dx, true);
}

pub(crate) fn check_rank(rank: usize, inp: usize, out: usize) -> Result<()> {
    check_nonzero("in_features", inp)?;
    check_nonzero("out_features", out)?;
    if rank == 0 || rank > inp.min(out) {
        return Err(Error::InvalidArgument {
            what: "rank",
            message: format!("must be in 1..={} (min(in, out)), got {rank}", inp.min(out)),
        });
    }
    Ok(())
}

impl<T: Scalar> LinearMap<T> for LowRank<T> {
    fn in_features(&self) -> usize {
        self.in_features
    }
    fn out_features(&self) -> usize {
        self.out_features
    }
    fn apply_into(&self, x: ArrayView2<T>, mut y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.in_features, self.out_features, &x, &y)?;
        lr_forward(self.u(), self.v(), x, y.view_mut(), false);
        add_bias(&mut y, self.bias());
        Ok(())
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.out_features)?;
        let mut x = Array2::zeros((y.nrows(), self.in_features));
        lr_transpose(self.u(), self.v(), y, x.view_mut(), false, false);
        Ok(x)
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.out_features)?;
        let mut x = Array2::zeros((y.nrows(), self.in_features));
        lr_transpose(self.u(), self.v(), y, x.view_mut(), T::IS_COMPLEX, false);
        Ok(x)
    }
    fn to_dense(&self) -> Array2<T> {
        let mut d = Array2::zeros((self.out_features, self.in_features));
        gemm_conj(self.u(), false, self.v().t(), false, d.view_mut(), false);
        d
    }
    fn num_params(&self) -> usize {
        self.params.len()
    }
    fn flops_per_row(&self) -> usize {
        let mac = if T::IS_COMPLEX { 8 } else { 2 };
        mac * self.factor_len() + if self.has_bias { self.out_features } else { 0 }
    }
}

impl<T: Scalar> Differentiable<T> for LowRank<T> {
    fn backward(&self, x: ArrayView2<T>, dy: ArrayView2<T>, grads: &mut [T]) -> Result<Array2<T>> {
        check_cols("x", x.dim(), self.in_features)?;
        check_shape("dy", dy.dim(), (x.nrows(), self.out_features))?;
        check_len("grads", grads.len(), self.params.len())?;
        let (gu, rest) = grads.split_at_mut(self.out_features * self.rank);
        let (gv, gb) = rest.split_at_mut(self.in_features * self.rank);
        let mut dx = Array2::zeros((x.nrows(), self.in_features));
        lr_backward(self.u(), self.v(), x, dy, gu, gv, dx.view_mut());
        if self.has_bias {
            bias_grad(dy, gb);
        }
        Ok(dx)
    }
    fn params(&self) -> &[T] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }
}
