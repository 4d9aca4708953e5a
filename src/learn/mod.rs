//! Learning structured matrices: optimisers over any [`Differentiable`](crate::Differentiable)
//! ([`Sgd`], [`Adam`]/AdamW, [`Lbfgs`], [`Schedule`]), [`fit`] to a dense target, and learned
//! permutations ([`LearnedPermutation`], [`ButterflyProduct`]) with the soft → hard → polish
//! recipe of Dao et al., *Learning Fast Algorithms for Linear Transforms Using Butterfly
//! Factorizations* (ICML 2019), which recovers the FFT from random initialisation.

mod check;
mod fit;
mod gauss_newton;
mod optim;
mod permutation;
mod recipe;

pub use check::butterfly_residual;
pub use fit::{fit, fit_with_progress, loss_and_grad, FitOptions, FitReport, Method};
pub use gauss_newton::{gauss_newton, GaussNewtonOptions, GaussNewtonReport};
pub use optim::{Adam, DecayMask, Lbfgs, LbfgsReport, Optimizer, Schedule, Sgd};
pub use permutation::{ButterflyProduct, Factor, LearnedPermutation, LogitSharing, Structure};
pub use recipe::{learn_transform, rmse, Attempt, LearnOptions, LearnReport};
