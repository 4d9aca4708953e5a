//! Neural-network building blocks over structured matrices: [`Linear`] layers whose weight is
//! any [`Structure`] (dense, Monarch, block-diagonal, butterfly, low-rank, Pixelated Butterfly,
//! LDR), their initialisation, projection from and expansion to dense layers, safetensors
//! save/load ([`TensorStore`]), and a compact GPT-2 ([`gpt2`]) with hand-written backward passes
//! for training Monarch-sparse language models on the CPU (Dao et al., *Monarch*, ICML 2022).
//!
//! ```
//! use kaleidoscope::nn::{Linear, LinearInit, Structure};
//! use kaleidoscope::LinearMap;
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let dense = Linear::<f32>::new(256, 1024, Structure::Dense, true, LinearInit::Default, &mut rng)?;
//! // Dense-to-sparse: the Frobenius-nearest Monarch layer (closed form), bias kept.
//! let monarch = Linear::from_dense(dense.weight().view(), dense.bias(), "monarch:4".parse()?)?;
//! assert!(monarch.num_params() < dense.num_params() / 3);
//! // Reverse sparsification: the dense layer with the same map.
//! let back = monarch.to_dense();
//! assert_eq!(back.structure(), Structure::Dense);
//! # Ok::<(), kaleidoscope::Error>(())
//! ```

pub mod gpt2;
mod init;
mod linear;
mod safetensors_io;
mod structure;

pub use init::LinearInit;
pub use linear::{Linear, TensorSpec};
pub use safetensors_io::TensorStore;
pub use structure::Structure;
