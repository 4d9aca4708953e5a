//! The paper's recipe for a product of butterflies and learned permutations: train everything
//! with soft permutations, harden them, then polish the twiddles alone (Adam, then L-BFGS).

use super::fit::{fit_with_progress, FitOptions, Method};
use super::optim::Schedule;
use super::permutation::ButterflyProduct;
use crate::butterfly::Permutation;
use crate::error::Result;
use crate::scalar::Scalar;
use ndarray::ArrayView2;
use std::time::Instant;

/// Options of [`learn_transform`].
#[derive(Debug, Clone, PartialEq)]
pub struct LearnOptions {
    /// Adam steps with soft permutations.
    pub soft_steps: usize,
    /// Learning rate of the soft phase (cosine decay to 10 %).
    pub soft_lr: f64,
    /// Adam steps on the twiddles after hardening.
    pub polish_steps: usize,
    /// Learning rate of the polish phase.
    pub polish_lr: f64,
    /// L-BFGS iterations at the end.
    pub lbfgs_iters: usize,
    /// Stop once the RMSE reaches this value.
    pub target_rmse: f64,
    /// Compare `Re W` with the target.
    pub real_part: bool,
    /// Rows of the identity per backward call.
    pub batch_rows: usize,
}

impl Default for LearnOptions {
    fn default() -> Self {
        Self {
            soft_steps: 1500,
            soft_lr: 2e-2,
            polish_steps: 500,
            polish_lr: 5e-3,
            lbfgs_iters: 300,
            target_rmse: 1e-12,
            real_part: false,
            batch_rows: 32,
        }
    }
}

/// What [`learn_transform`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnReport {
    /// RMSE at the end of the soft phase (before hardening).
    pub soft_rmse: f64,
    /// RMSE right after hardening.
    pub hardened_rmse: f64,
    /// Final RMSE.
    pub rmse: f64,
    /// Adam steps in both phases.
    pub steps: usize,
    /// L-BFGS iterations.
    pub lbfgs_iters: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// The hardened permutations, in application order.
    pub permutations: Vec<Permutation>,
    /// RMSE along the way (both phases).
    pub losses: Vec<f64>,
}

/// Learn `target` with `model` from its current parameters: soft phase, hardening, polish.
/// `progress(step, rmse)` is called after every step of either phase.
pub fn learn_transform<T: Scalar>(
    model: &mut ButterflyProduct<T>,
    target: ArrayView2<T>,
    opts: &LearnOptions,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<LearnReport> {
    let start = Instant::now();
    let adam = Method::Adam {
        beta1: 0.9,
        beta2: 0.999,
    };
    let soft = FitOptions {
        steps: opts.soft_steps,
        lr: opts.soft_lr,
        method: adam,
        schedule: Schedule::cosine(0, opts.soft_steps, 0.1),
        batch_rows: opts.batch_rows,
        lbfgs_iters: 0,
        target_rmse: 0.0,
        real_part: opts.real_part,
        frozen: None,
    };
    let r1 = fit_with_progress(model, target, &soft, progress)?;
    model.harden();
    let frozen = Some(model.logit_mask());
    let offset = r1.steps;
    let polish = FitOptions {
        steps: opts.polish_steps,
        lr: opts.polish_lr,
        method: adam,
        schedule: Schedule::cosine(0, opts.polish_steps, 0.01),
        batch_rows: opts.batch_rows,
        lbfgs_iters: opts.lbfgs_iters,
        target_rmse: opts.target_rmse,
        real_part: opts.real_part,
        frozen,
    };
    let r2 = fit_with_progress(model, target, &polish, &mut |s, l| progress(offset + s, l))?;
    let hardened_rmse = r2.losses.first().copied().unwrap_or(r2.rmse);
    let mut losses = r1.losses;
    losses.extend(r2.losses);
    Ok(LearnReport {
        soft_rmse: r1.rmse,
        hardened_rmse,
        rmse: r2.rmse,
        steps: r1.steps + r2.steps,
        lbfgs_iters: r2.lbfgs_iters,
        seconds: start.elapsed().as_secs_f64(),
        permutations: model.permutations(),
        losses,
    })
}
