//! Exact fast transforms as butterflies (Dao et al. 2019, 2020): each constructor returns a
//! map equal to its transform up to rounding.
//!
//! | transform | constructor | returns |
//! |---|---|---|
//! | DFT / inverse DFT | [`Butterfly::fft`](crate::Butterfly::fft), [`Butterfly::ifft`](crate::Butterfly::ifft) | one butterfly block and a bit-reversal |
//! | DCT II/III/IV, DST II/III/IV (scipy's conventions) | [`Butterfly::dct`](crate::Butterfly::dct), [`Butterfly::dst`](crate::Butterfly::dst) (and `_orthonormal`) | [`RealPart`](crate::butterfly::RealPart) of one complex butterfly block with fixed permutations ([`dct_butterfly`], [`dst_butterfly`]) |
//! | discrete Hartley | [`Butterfly::hartley`](crate::Butterfly::hartley) (and `_orthonormal`) | [`RealPart`](crate::butterfly::RealPart) of `(1 + i)·F` as one complex block ([`hartley_butterfly`]) |
//! | Hadamard (Sylvester) | [`Butterfly::hadamard`](crate::Butterfly::hadamard), [`Butterfly::hadamard_orthonormal`](crate::Butterfly::hadamard_orthonormal) | one real block of `[[1, 1], [1, −1]]` |
//! | circulant, `n = 2^m ≥ 2`, complex | [`Butterfly::circulant`](crate::Butterfly::circulant) | `B·B*`: DFT block (decreasing stride) with the spectrum folded in, inverse-DFT block, no permutation |
//! | Toeplitz `m × k`, circulant of any size, any scalar | [`Butterfly::toeplitz`](crate::Butterfly::toeplitz), [`Toeplitz::new`], [`Toeplitz::circulant`] | [`Toeplitz`]: zero-pad, one complex `B·B*` of size `2^p ≥ m + k − 1`, truncate (real part for real scalars) |
//! | circular convolution, single/multi-channel | [`Conv1d::single_channel`], [`Conv1d::new`] | [`Conv1d`]: DFT butterfly per channel, channel mix per frequency, inverse-DFT butterfly per channel |
//! | ACDC `A·C·D·C⁻¹` (learnable `A`, `D`) | [`Acdc`] | diagonals and two DCT butterflies |
//! | 2-D DFT / inverse | [`Butterfly::fft2d`](crate::Butterfly::fft2d), [`Butterfly::ifft2d`](crate::Butterfly::ifft2d) | one butterfly block of size `n1·n2` (Kronecker product) and `P_br ⊗ P_br` |
//! | Haar wavelet / inverse | [`Butterfly::haar`](crate::Butterfly::haar), [`Butterfly::haar_inverse`](crate::Butterfly::haar_inverse) | one butterfly block and the wavelet ordering |
//! | Fastfood `S H G Π H B` | [`Fastfood`] | two butterfly blocks (`Π` a fixed permutation), or four as one butterfly |

mod acdc;
mod convolution;
mod fastfood;
mod fourier;
mod fourier2d;
mod hadamard;
mod trig;
mod wavelet;

pub use acdc::Acdc;
pub use convolution::{Conv1d, Toeplitz};
pub use fastfood::Fastfood;
pub use fourier::{Decimation, FftOptions};
pub use trig::{dct_butterfly, dst_butterfly, hartley_butterfly, DctType, DstType};
