//! A compact GPT-2 (Radford et al., 2019) with hand-written forward and backward passes, whose
//! MLP and attention projections can be any [`Structure`](crate::nn::Structure) — the Monarch
//! GPT-2 of Dao et al., *Monarch* (ICML 2022) — and the pieces to train it on a text file:
//! byte-level data ([`TextData`]), AdamW with warm-up and cosine decay ([`Gpt2Trainer`]),
//! safetensors checkpoints, reverse sparsification ([`Gpt2::to_dense`]) and sampling.
//!
//! Generic over `f32` (training) and `f64` (gradient checks against finite differences).

mod attention;
mod config;
mod data;
mod fast_math;
mod gelu;
mod layer_norm;
mod model;
mod train;

pub use attention::{attention_backward, attention_forward, AttnShape};
pub use config::Gpt2Config;
pub use data::{Batch, TextData};
pub use fast_math::exp_f32;
pub use gelu::{gelu_backward, gelu_forward};
pub use layer_norm::{layer_norm_backward, layer_norm_forward, LN_EPS};
pub use model::{Block, Cache, Gpt2, Gpt2Grads};
pub use train::{Gpt2Trainer, StepInfo, TrainOptions};
