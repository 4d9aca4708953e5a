//! Layer normalisation (Ba, Kiros, Hinton 2016) over the last axis of a `(rows, d)` batch:
//! `y = (x − μ) / √(σ² + ε) · γ + β`.

use crate::scalar::RealScalar;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

/// `ε` of GPT-2's layer norms.
pub const LN_EPS: f64 = 1e-5;

/// Forward: writes `y`, and the normalised `x̂` and `1/σ` per row for the backward pass.
/// `params` is `[γ (d); β (d)]`.
pub fn layer_norm_forward<T: RealScalar>(
    x: ArrayView2<T>,
    params: &[T],
    mut y: ArrayViewMut2<T>,
    mut xhat: ArrayViewMut2<T>,
    rstd: &mut [T],
) {
    let d = x.ncols();
    let (gamma, beta) = params.split_at(d);
    let eps = T::from_f64(LN_EPS);
    let inv_d = T::from_f64(1.0 / d as f64);
    y.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(xhat.axis_iter_mut(Axis(0)))
        .zip(x.axis_iter(Axis(0)))
        .zip(rstd.par_iter_mut())
        .for_each(|(((mut yr, mut hr), xr), rs)| {
            let mean = xr.iter().copied().sum::<T>() * inv_d;
            let var = xr.iter().map(|&v| (v - mean) * (v - mean)).sum::<T>() * inv_d;
            let r = T::one() / (var + eps).sqrt();
            *rs = r;
            for j in 0..d {
                let h = (xr[j] - mean) * r;
                hr[j] = h;
                yr[j] = h * gamma[j] + beta[j];
            }
        });
}

/// Backward: `dx = (1/σ)(ĝ − mean(ĝ) − x̂·mean(ĝ ⊙ x̂))` with `ĝ = dy ⊙ γ`, written to `dx`;
/// `∂L/∂γ = Σ dy ⊙ x̂` and `∂L/∂β = Σ dy` are added into `grads` (`[γ; β]`).
pub fn layer_norm_backward<T: RealScalar>(
    dy: ArrayView2<T>,
    xhat: ArrayView2<T>,
    rstd: &[T],
    params: &[T],
    grads: &mut [T],
    mut dx: ArrayViewMut2<T>,
) {
    let d = dy.ncols();
    let gamma = &params[..d];
    let inv_d = T::from_f64(1.0 / d as f64);
    dx.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(dy.axis_iter(Axis(0)))
        .zip(xhat.axis_iter(Axis(0)))
        .zip(rstd.par_iter())
        .for_each(|(((mut dxr, dyr), hr), &r)| {
            let mut m1 = T::zero();
            let mut m2 = T::zero();
            for j in 0..d {
                let g = dyr[j] * gamma[j];
                m1 += g;
                m2 += g * hr[j];
            }
            m1 *= inv_d;
            m2 *= inv_d;
            for j in 0..d {
                dxr[j] = r * (dyr[j] * gamma[j] - m1 - hr[j] * m2);
            }
        });
    let (gg, gb) = grads.split_at_mut(d);
    for (dyr, hr) in dy.axis_iter(Axis(0)).zip(xhat.axis_iter(Axis(0))) {
        for j in 0..d {
            gg[j] += dyr[j] * hr[j];
            gb[j] += dyr[j];
        }
    }
}
