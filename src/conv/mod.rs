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

/// Run the first of `avx512` and `avx` (unsafe calls of functions compiled with those target
/// features, AVX-512F / AVX + FMA) whose features this CPU has, else `generic`; returns from the
/// enclosing function.
macro_rules! simd_dispatch {
    (avx512: $a:expr, avx: $b:expr, generic: $g:expr $(,)?) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx") && std::is_x86_feature_detected!("fma") {
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features the function is compiled for.
                    return unsafe { $a };
                }
                // SAFETY: as above.
                return unsafe { $b };
            }
        }
        $g
    }};
}

mod block_kernel;
mod flash_butterfly;
mod long_conv;
mod monarch_fft;
mod real_fft;
pub mod regularize;

pub use flash_butterfly::{FlashButterfly, FlashButterflyGrads};
pub use long_conv::{ConvMode, Gates, LongConv, LongConvGrads};
pub use monarch_fft::{BlockSet, MonarchFft, MAX_LOG2, MIN_LOG2};

/// The real scalars the convolutions run on (`f32`, `f64`): a [`RealScalar`](crate::RealScalar)
/// that rustfft can transform.
pub trait ConvFloat: crate::RealScalar + rustfft::FftNum + num_traits::NumAssign {}

impl ConvFloat for f32 {}
impl ConvFloat for f64 {}

/// `x` as a `T` (disambiguates `Scalar::from_f64` from `FromPrimitive::from_f64`).
#[inline(always)]
pub(crate) fn fr<T: ConvFloat>(x: f64) -> T {
    <T as crate::Scalar>::from_f64(x)
}
