//! Long convolutions for sequence models (Fu et al., *Simple Hardware-Efficient Long
//! Convolutions for Sequence Modeling*, ICML 2023; Fu et al., *FlashFFTConv*, 2023).
//!
//! * [`LongConv`]: causal or bidirectional convolution of `(batch, channels, L)` inputs with one
//!   kernel per channel, through a real FFT of size `N ≥ 2L` (no wrap-around), with a skip term
//!   `D` and optional elementwise gates: `y = post ⊙ (k ∗ (pre ⊙ u) + D ⊙ pre ⊙ u)`.
//! * [`regularize`]: the kernel regularisers of the long-conv paper (squash, average-pool and
//!   Gaussian-frequency smoothing, kernel dropout), each with its backward.
//! * [`FlashButterfly`]: the same convolution with the FFT written as a product of small dense
//!   DFT blocks and twiddle diagonals (a Monarch/butterfly factorisation), whose blocks can be
//!   learned.

mod block_kernel;
mod flash_butterfly;
mod long_conv;
mod monarch_fft;
mod real_fft;
pub mod regularize;

pub use flash_butterfly::{FlashButterfly, FlashButterflyGrads};
pub use long_conv::{ConvMode, Gates, LongConv, LongConvGrads};
pub use monarch_fft::{BlockSet, MonarchFft, MAX_LOG2, MIN_LOG2};

use num_complex::Complex;

/// The real scalars the convolutions run on (`f32`, `f64`): a [`RealScalar`](crate::RealScalar)
/// that rustfft can transform and whose complex type has faer's GEMM.
pub trait ConvFloat: crate::RealScalar + rustfft::FftNum + num_traits::NumAssign {
    /// `dst ← op(lhs)·op(rhs)` (or `+=` when `accumulate`) on complex matrices, `op`
    /// conjugating when its flag is set.
    fn cgemm(
        dst: faer::MatMut<'_, Complex<Self>>,
        lhs: faer::MatRef<'_, Complex<Self>>,
        conj_lhs: bool,
        rhs: faer::MatRef<'_, Complex<Self>>,
        conj_rhs: bool,
        accumulate: bool,
    );
}

macro_rules! impl_conv_float {
    ($t:ty) => {
        impl ConvFloat for $t {
            #[inline]
            fn cgemm(
                dst: faer::MatMut<'_, Complex<Self>>,
                lhs: faer::MatRef<'_, Complex<Self>>,
                conj_lhs: bool,
                rhs: faer::MatRef<'_, Complex<Self>>,
                conj_rhs: bool,
                accumulate: bool,
            ) {
                <Complex<$t> as crate::Scalar>::gemm(
                    dst,
                    lhs,
                    conj_lhs,
                    rhs,
                    conj_rhs,
                    accumulate,
                    faer::Par::Seq,
                );
            }
        }
    };
}
impl_conv_float!(f32);
impl_conv_float!(f64);

/// `x` as a `T` (disambiguates `Scalar::from_f64` from `FromPrimitive::from_f64`).
#[inline(always)]
pub(crate) fn fr<T: ConvFloat>(x: f64) -> T {
    <T as crate::Scalar>::from_f64(x)
}
