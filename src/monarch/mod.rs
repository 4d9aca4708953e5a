//! Block-diagonal and Monarch matrices (Dao et al., *Monarch*, ICML 2022): products of
//! block-diagonal factors and fixed interleaving permutations, applied as batched GEMMs, with
//! the closed-form projection from dense matrices.

mod block_diagonal;
mod block_gemm;
mod monarch_matrix;
mod projection;
mod shape;

pub use block_diagonal::BlockDiagonal;
pub use monarch_matrix::Monarch;
pub use shape::MonarchShape;

pub(crate) use block_diagonal::{add_bias, bias_grad, uniform};
