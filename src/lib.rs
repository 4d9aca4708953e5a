//! # kaleidoscope
//!
//! Structured matrices for machine learning and fast transforms.
//!
//! A *butterfly* matrix of size `n = 2^m` is a product of `m` sparse factors, each mixing
//! coordinate pairs `(i, i + s)` by a 2×2 block; it costs `O(n log n)` to apply and store, yet
//! the FFT, DCT, Hadamard and every permutation are products of a few of them (Dao et al.,
//! *Learning Fast Algorithms for Linear Transforms Using Butterfly Factorizations*, ICML 2019;
//! *Kaleidoscope*, ICLR 2020).
//!
//! Every structure is a [`LinearMap`] on row-major batches (`y = x Wᵀ + b`, like PyTorch), and
//! the learnable ones are [`Differentiable`]: they return input gradients and accumulate
//! parameter gradients into one flat buffer.
//!
//! ```
//! use kaleidoscope::{Butterfly, ButterflyConfig, LinearMap};
//! use ndarray::Array2;
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let layer = Butterfly::<f32>::new(1024, 1024, ButterflyConfig::default(), &mut rng)?;
//! let x = Array2::<f32>::ones((8, 1024));
//! let y = layer.apply(x.view())?;
//! assert_eq!(y.dim(), (8, 1024));
//! assert_eq!(layer.num_params(), 1024 / 2 * 10 * 4 + 1024);
//! # Ok::<(), kaleidoscope::Error>(())
//! ```

pub mod butterfly;
pub mod conv;
pub mod dense;
pub mod error;
pub mod ldr;
pub mod learn;
pub mod linear_map;
pub mod low_rank;
pub mod monarch;
pub mod nn;
pub mod pixelated_butterfly;
pub mod scalar;

pub use butterfly::ButterflyUnitary;
pub use butterfly::Kronecker;
pub use butterfly::{Butterfly, ButterflyConfig, Diagonal, Init, Permutation};
pub use dense::Dense;
pub use error::{Error, Result};
pub use ldr::{Ldr, LdrClass, LdrConfig};
pub use linear_map::{Differentiable, LinearMap};
pub use low_rank::LowRank;
pub use monarch::{BlockDiagonal, Monarch, MonarchShape};
pub use pixelated_butterfly::{PixelatedButterfly, PixelflyConfig};
pub use scalar::{RealScalar, Scalar, C32, C64};

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
