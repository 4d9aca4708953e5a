//! GELU with GPT-2's tanh approximation (Hendrycks & Gimpel 2016):
//! `g(x) = x/2 · (1 + tanh(u))`, `u = √(2/π)(x + 0.044715 x³)`, evaluated through the identity
//! `(1 + tanh u)/2 = σ(2u)` (one exponential instead of a `tanh`).

use super::fast_math::{as_f32, as_f32_mut, exp_f32};
use crate::scalar::RealScalar;
use rayon::prelude::*;

const C: f64 = 0.044_715;
const S: f64 = 0.797_884_560_802_865_4; // √(2/π)
const CHUNK: usize = 8192;

/// `(σ(2u), 2u'(x))` given `e^{−2u}` through `exp`.
#[inline(always)]
fn parts<T: RealScalar>(v: T, exp: impl Fn(T) -> T) -> (T, T) {
    let (c, s2) = (T::from_f64(C), T::from_f64(2.0 * S));
    let c3 = T::from_f64(3.0 * C);
    let v2 = v * v;
    let two_u = s2 * (v + c * v2 * v);
    let sig = T::one() / (T::one() + exp(-two_u));
    (sig, s2 * (T::one() + c3 * v2))
}

fn forward_chunk<T: RealScalar>(xc: &[T], yc: &mut [T]) {
    if let (Some(xf), Some(yf)) = (as_f32(xc), as_f32_mut(yc)) {
        for (o, &v) in yf.iter_mut().zip(xf) {
            *o = v * parts(v, exp_f32).0;
        }
    } else {
        for (o, &v) in yc.iter_mut().zip(xc) {
            *o = v * parts(v, T::exp).0;
        }
    }
}

fn backward_chunk<T: RealScalar>(xc: &[T], dc: &mut [T]) {
    if let (Some(xf), Some(df)) = (as_f32(xc), as_f32_mut(dc)) {
        for (d, &v) in df.iter_mut().zip(xf) {
            let (sig, du2) = parts(v, exp_f32);
            *d *= sig + v * sig * (1.0 - sig) * du2;
        }
    } else {
        for (d, &v) in dc.iter_mut().zip(xc) {
            let (sig, du2) = parts(v, T::exp);
            *d *= sig + v * sig * (T::one() - sig) * du2;
        }
    }
}

/// `y = g(x)` elementwise.
pub fn gelu_forward<T: RealScalar>(x: &[T], y: &mut [T]) {
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(yc, xc)| forward_chunk(xc, yc));
}

/// `dx = g'(x) ⊙ dy` with `g'(x) = σ(2u) + x σ(2u)(1 − σ(2u))·2u'`, in place in `dy`.
pub fn gelu_backward<T: RealScalar>(x: &[T], dy: &mut [T]) {
    dy.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(dc, xc)| backward_chunk(xc, dc));
}
