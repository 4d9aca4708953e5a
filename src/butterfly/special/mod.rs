//! Exact fast transforms as butterflies (Dao et al. 2019, 2020): each constructor returns a
//! map equal to its transform up to rounding.
//!
//! | transform | constructor | returns |
//! |---|---|---|
//! | DFT / inverse DFT | [`Butterfly::fft`], [`Butterfly::ifft`] | one butterfly block and a bit-reversal |

mod fourier;

pub use fourier::{Decimation, FftOptions};
