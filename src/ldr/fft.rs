//! FFT plumbing for the Krylov multiplies: one process-wide rustfft planner per float type (so a
//! size is planned once and its plan reused), batched in-place transforms, and conversions
//! between the crate's scalars and `Complex<F>`.

use crate::scalar::Scalar;
use num_complex::Complex;
use rustfft::{Fft, FftNum, FftPlanner};
use std::sync::{Arc, Mutex, OnceLock};

/// A complex number over the FFT's float type.
pub(crate) type Cx<F> = Complex<F>;

/// The float types rustfft runs on (`f32`, `f64`), with the crate-wide planner of each.
pub(crate) trait FftFloat:
    FftNum + num_traits::Float + num_traits::NumAssign + Default + Send + Sync
{
    fn planner() -> &'static Mutex<FftPlanner<Self>>;
    fn of(x: f64) -> Self;
    fn to64(self) -> f64;
}

impl FftFloat for f32 {
    fn planner() -> &'static Mutex<FftPlanner<f32>> {
        static P: OnceLock<Mutex<FftPlanner<f32>>> = OnceLock::new();
        P.get_or_init(|| Mutex::new(FftPlanner::new()))
    }
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to64(self) -> f64 {
        self as f64
    }
}

impl FftFloat for f64 {
    fn planner() -> &'static Mutex<FftPlanner<f64>> {
        static P: OnceLock<Mutex<FftPlanner<f64>>> = OnceLock::new();
        P.get_or_init(|| Mutex::new(FftPlanner::new()))
    }
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to64(self) -> f64 {
        self
    }
}

/// The forward and inverse (unnormalised) transforms of one length.
#[derive(Clone)]
pub(crate) struct Plan<F: FftFloat> {
    pub len: usize,
    fwd: Arc<dyn Fft<F>>,
    inv: Arc<dyn Fft<F>>,
}

impl<F: FftFloat> Plan<F> {
    pub fn new(len: usize) -> Self {
        let mut p = F::planner().lock().unwrap_or_else(|e| e.into_inner());
        let fwd = p.plan_fft_forward(len);
        let inv = p.plan_fft_inverse(len);
        Self { len, fwd, inv }
    }
    /// Scratch length either direction needs.
    pub fn scratch_len(&self) -> usize {
        self.fwd
            .get_inplace_scratch_len()
            .max(self.inv.get_inplace_scratch_len())
    }
    /// In-place forward DFT of every consecutive `len`-chunk of `buf`.
    pub fn forward(&self, buf: &mut [Cx<F>], scratch: &mut Vec<Cx<F>>) {
        grow(scratch, self.scratch_len());
        self.fwd.process_with_scratch(buf, scratch);
    }
    /// In-place unnormalised inverse DFT of every consecutive `len`-chunk of `buf`.
    pub fn inverse(&self, buf: &mut [Cx<F>], scratch: &mut Vec<Cx<F>>) {
        grow(scratch, self.scratch_len());
        self.inv.process_with_scratch(buf, scratch);
    }
}

/// Make `v` at least `len` long (zero-filled growth).
#[inline]
pub(crate) fn grow<F: FftFloat>(v: &mut Vec<Cx<F>>, len: usize) {
    if v.len() < len {
        v.resize(len, Cx::new(F::zero(), F::zero()));
    }
}

#[inline(always)]
pub(crate) fn zero<F: FftFloat>() -> Cx<F> {
    Cx::new(F::zero(), F::zero())
}

/// `t` as `Complex<F>`.
#[inline(always)]
pub(crate) fn to_cx<T: Scalar, F: FftFloat>(t: T) -> Cx<F> {
    let z = t.to_c64();
    Cx::new(F::of(z.re), F::of(z.im))
}

/// `z` as `T` (the real part for real `T`).
#[inline(always)]
pub(crate) fn from_cx<T: Scalar, F: FftFloat>(z: Cx<F>) -> T {
    T::from_parts(z.re.to64(), z.im.to64())
}

/// `e^{iθ}` computed in `f64`.
#[inline]
pub(crate) fn cis<F: FftFloat>(theta: f64) -> Cx<F> {
    Cx::new(F::of(theta.cos()), F::of(theta.sin()))
}
