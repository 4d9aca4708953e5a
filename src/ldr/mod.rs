//! Matrices of low displacement rank (Thomas, Gu, Dao, Rudra, Ré, *Learning Compressed
//! Transforms with Low Displacement Rank*, NeurIPS 2018): `W = Σᵢ K(A, gᵢ) K(B, hᵢ)ᵀ` with
//! Krylov matrices `K(M, v) = [v, M v, …, M^{n−1} v]` of structured operators `A`, `B`
//! (shifts, diagonals, learned subdiagonals and tridiagonals), multiplied fast through the
//! FFT (shifts) or divide and conquer (subdiagonals).

mod fft;
mod krylov;
mod ldr_matrix;
mod operators;
mod simd;

pub use ldr_matrix::{Ldr, LdrConfig};
pub use operators::LdrClass;
