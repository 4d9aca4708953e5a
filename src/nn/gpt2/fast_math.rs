//! A vectorisable `exp` for `f32` (Cody–Waite range reduction `x = n ln 2 + r`, `|r| ≤ ln2/2`,
//! and the degree-7 Taylor polynomial of `e^r`: relative error below `2·10⁻⁷`), used by the
//! softmaxes and the GELU; other scalars use their own `exp`.

use crate::scalar::RealScalar;
use std::any::TypeId;

/// `e^x` for `f32`, flushing below `e^−87` and saturating above `e^88`.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5·2²³ rounds to the nearest integer in the low mantissa bits (no libm call,
    // so the loop vectorises).
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let k = x * std::f32::consts::LOG2_E + MAGIC;
    let n = k - MAGIC;
    let ni = k.to_bits() as i32 - MAGIC.to_bits() as i32;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    p * f32::from_bits(((ni + 127) as u32) << 23)
}

/// The slice as `f32`s when `T` is `f32`.
#[inline]
pub(crate) fn as_f32<T: RealScalar>(v: &[T]) -> Option<&[f32]> {
    (TypeId::of::<T>() == TypeId::of::<f32>())
        // SAFETY: `T` is `f32`, so the layouts are identical.
        .then(|| unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len()) })
}

/// The slice as mutable `f32`s when `T` is `f32`.
#[inline]
pub(crate) fn as_f32_mut<T: RealScalar>(v: &mut [T]) -> Option<&mut [f32]> {
    (TypeId::of::<T>() == TypeId::of::<f32>())
        // SAFETY: `T` is `f32`, so the layouts are identical.
        .then(|| unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<f32>(), v.len()) })
}

/// `v ← exp(v − shift)` elementwise; returns `Σ v`.
#[inline]
pub(crate) fn exp_shifted_sum<T: RealScalar>(v: &mut [T], shift: T) -> T {
    if let Some(f) = as_f32_mut(v) {
        let s = RealScalar::to_f64(shift) as f32;
        let mut sum = 0.0f32;
        for x in f.iter_mut() {
            *x = exp_f32(*x - s);
            sum += *x;
        }
        T::from_f64(sum as f64)
    } else {
        let mut sum = T::zero();
        for x in v.iter_mut() {
            *x = (*x - shift).exp();
            sum += *x;
        }
        sum
    }
}
