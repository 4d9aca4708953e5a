//! Learning structured matrices: optimisers over any [`Differentiable`](crate::Differentiable)
//! ([`Sgd`], [`Adam`]/AdamW, [`Lbfgs`], [`Schedule`]), [`fit`] to a dense target, and learned
//! permutations ([`LearnedPermutation`], [`ButterflyProduct`]) with the soft → hard → polish
//! recipe of Dao et al., *Learning Fast Algorithms for Linear Transforms Using Butterfly
//! Factorizations* (ICML 2019), which recovers the FFT from random initialisation, and
//! [`learn_by_growing`], which learns a small member of a family of transforms and doubles it
//! ([`grow`]) where the soft search fails (the DCT-II from N = 32).

mod check;
mod fit;
mod gauss_newton;
mod grow;
mod grow_bpbp;
mod optim;
mod permutation;
mod recipe;

pub use check::butterfly_residual;
pub use fit::{fit, fit_with_progress, loss_and_grad, FitOptions, FitReport, Method};
pub use gauss_newton::{gauss_newton, GaussNewtonOptions, GaussNewtonReport};
pub use grow::{grow, learn_by_growing, GrowReport, GrowthStep, Insertion};
pub use optim::{Adam, DecayMask, Lbfgs, LbfgsReport, Optimizer, Schedule, Sgd};
pub use permutation::{ButterflyProduct, Factor, LearnedPermutation, LogitSharing, Structure};
pub use recipe::{learn_transform, rmse, Attempt, LearnOptions, LearnReport};
