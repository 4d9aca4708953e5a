//! Fitting a structured map to a dense target: minimise `‖W(θ) − A‖²_F / (out · in)` by
//! evaluating the map on the identity (its rows are the basis vectors) and back-propagating,
//! with a first-order optimiser and an optional L-BFGS polish (Dao et al., ICML 2019, §4).

use super::optim::{Adam, Lbfgs, Optimizer, Schedule, Sgd};
use crate::error::{check_len, check_shape, Error, Result};
use crate::linear_map::Differentiable;
use crate::scalar::Scalar;
use ndarray::{Array2, ArrayView2};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rayon::prelude::*;
use std::time::Instant;

/// The first-order optimiser of a fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Adam with `(β₁, β₂)`.
    Adam { beta1: f64, beta2: f64 },
    /// SGD with momentum.
    Sgd { momentum: f64 },
}

/// Options of [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// First-order steps (each one full pass over the identity).
    pub steps: usize,
    /// Base learning rate.
    pub lr: f64,
    /// The first-order optimiser.
    pub method: Method,
    /// Learning-rate schedule over `steps`.
    pub schedule: Schedule,
    /// Rows of the identity per backward call (the pass is split in chunks of this size and
    /// reduced in a fixed order, so a fit is deterministic for a seed).
    pub batch_rows: usize,
    /// L-BFGS iterations after the first-order steps (0: none).
    pub lbfgs_iters: usize,
    /// Stop L-BFGS once its loss has not dropped by 10 % over this many iterations (0: never);
    /// see [`Lbfgs::patience`].
    pub lbfgs_patience: usize,
    /// Stop as soon as the RMSE reaches this value.
    pub target_rmse: f64,
    /// Compare `Re W` with the target (for complex maps fitting real targets, e.g. the DCT
    /// through a complex butterfly as in the paper).
    pub real_part: bool,
    /// Parameters that stay fixed (`true`: frozen), or `None`.
    pub frozen: Option<Vec<bool>>,
    /// Rows of the identity (columns of the target) drawn without replacement for each
    /// first-order step, a stochastic estimate of the full gradient that is cheaper for
    /// large `in`; 0 (or ≥ `in`): all of them. L-BFGS always uses all of them.
    pub sample_rows: usize,
    /// Seed of the row sampling (the fit is deterministic for a seed).
    pub seed: u64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            steps: 2000,
            lr: 1e-2,
            method: Method::Adam {
                beta1: 0.9,
                beta2: 0.999,
            },
            schedule: Schedule::constant(),
            batch_rows: 32,
            lbfgs_iters: 0,
            lbfgs_patience: 20,
            target_rmse: 0.0,
            real_part: false,
            frozen: None,
            sample_rows: 0,
            seed: 0,
        }
    }
}

/// What [`fit`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    /// Final `‖W − A‖_F / √(out · in)`.
    pub rmse: f64,
    /// First-order steps taken.
    pub steps: usize,
    /// L-BFGS iterations taken.
    pub lbfgs_iters: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// RMSE before each first-order step, then after each L-BFGS iteration.
    pub losses: Vec<f64>,
}

/// `(L, ∂L/∂θ)` for `L = ‖W − A‖²_F / (out · in)` (or with `Re W` when `real_part`), the map
/// evaluated on the identity in chunks of `batch_rows` rows.
pub fn loss_and_grad<T: Scalar, M: Differentiable<T> + Sync + ?Sized>(
    model: &M,
    target: ArrayView2<T>,
    batch_rows: usize,
    real_part: bool,
) -> Result<(f64, Vec<T>)> {
    check_shape(
        "target",
        target.dim(),
        (model.out_features(), model.in_features()),
    )?;
    let cols: Vec<usize> = (0..model.in_features()).collect();
    loss_and_grad_cols(model, target, &cols, batch_rows, real_part)
}

/// The loss and gradient restricted to the columns `cols` of `W − A` (the map applied to
/// the basis vectors `e_j`, `j ∈ cols`), normalised by `out · |cols|`.
fn loss_and_grad_cols<T: Scalar, M: Differentiable<T> + Sync + ?Sized>(
    model: &M,
    target: ArrayView2<T>,
    cols: &[usize],
    batch_rows: usize,
    real_part: bool,
) -> Result<(f64, Vec<T>)> {
    let (out, inp) = (model.out_features(), model.in_features());
    if batch_rows == 0 {
        return Err(Error::Zero { what: "batch_rows" });
    }
    let scale = 1.0 / (out * cols.len()) as f64;
    let np = model.params().len();
    let chunks: Vec<&[usize]> = cols.chunks(batch_rows).collect();
    const GROUPS: usize = 8;
    let per = chunks.len().div_ceil(GROUPS).max(1);
    let results: Vec<Result<(f64, Vec<T>)>> = chunks
        .par_chunks(per)
        .map(|group| {
            let mut g = vec![T::zero(); np];
            let mut loss = 0.0;
            for chunk in group {
                let mut x = Array2::<T>::zeros((chunk.len(), inp));
                for (r, &j) in chunk.iter().enumerate() {
                    x[(r, j)] = T::one();
                }
                let y = model.apply(x.view())?;
                let mut dy = Array2::<T>::zeros(y.dim());
                for ((r, c), d) in dy.indexed_iter_mut() {
                    let mut e = y[(r, c)].to_c64() - target[(c, chunk[r])].to_c64();
                    if real_part {
                        e.im = 0.0;
                    }
                    loss += e.norm_sqr();
                    *d = T::from_parts(2.0 * scale * e.re, 2.0 * scale * e.im);
                }
                model.backward(x.view(), dy.view(), &mut g)?;
            }
            Ok((loss * scale, g))
        })
        .collect();
    let mut loss = 0.0;
    let mut grads = vec![T::zero(); np];
    for r in results {
        let (l, g) = r?;
        loss += l;
        for (a, b) in grads.iter_mut().zip(g) {
            *a += b;
        }
    }
    Ok((loss, grads))
}

/// Fit `model` to the dense `target` (shape `(out, in)`) from its current parameters; see
/// [`FitOptions`]. The model's bias, if any, is fitted too (the map is evaluated on basis
/// vectors), so fit linear targets with maps built without bias.
pub fn fit<T: Scalar, M: Differentiable<T> + Sync>(
    model: &mut M,
    target: ArrayView2<T>,
    opts: &FitOptions,
) -> Result<FitReport> {
    fit_with_progress(model, target, opts, &mut |_, _| {})
}

/// [`fit`], calling `progress(step, rmse)` after every step.
pub fn fit_with_progress<T: Scalar, M: Differentiable<T> + Sync>(
    model: &mut M,
    target: ArrayView2<T>,
    opts: &FitOptions,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<FitReport> {
    let start = Instant::now();
    check_shape(
        "target",
        target.dim(),
        (model.out_features(), model.in_features()),
    )?;
    let np = model.params().len();
    if let Some(f) = &opts.frozen {
        check_len("frozen", f.len(), np)?;
    }
    let freeze = |g: &mut [T]| {
        if let Some(f) = &opts.frozen {
            for (gi, &fz) in g.iter_mut().zip(f) {
                if fz {
                    *gi = T::zero();
                }
            }
        }
    };
    let mut opt: Box<dyn Optimizer<T>> = match opts.method {
        Method::Adam { beta1, beta2 } => {
            Box::new(Adam::new(opts.lr)?.with_betas(beta1, beta2, 1e-8)?)
        }
        Method::Sgd { momentum } => Box::new(Sgd::new(opts.lr, momentum)?),
    };
    let inp = model.in_features();
    let all: Vec<usize> = (0..inp).collect();
    let sampled = opts.sample_rows > 0 && opts.sample_rows < inp;
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut losses = Vec::new();
    let mut steps = 0;
    let mut rmse = f64::INFINITY;
    for step in 0..opts.steps {
        let cols = if sampled {
            let mut c = rand::seq::index::sample(&mut rng, inp, opts.sample_rows).into_vec();
            c.sort_unstable();
            c
        } else {
            all.clone()
        };
        let (loss, mut g) =
            loss_and_grad_cols(model, target, &cols, opts.batch_rows, opts.real_part)?;
        rmse = loss.sqrt();
        if !rmse.is_finite() {
            return Err(Error::Numerical(format!(
                "fit diverged at step {step} (RMSE {rmse}); lower FitOptions::lr"
            )));
        }
        losses.push(rmse);
        progress(step, rmse);
        if rmse <= opts.target_rmse {
            break;
        }
        freeze(&mut g);
        opt.set_lr(opts.lr * opts.schedule.factor(step));
        opt.step(model.params_mut(), &g)?;
        steps += 1;
    }
    let mut lbfgs_iters = 0;
    if opts.lbfgs_iters > 0 {
        let lb = Lbfgs {
            max_iters: opts.lbfgs_iters,
            loss_tol: opts.target_rmse * opts.target_rmse,
            patience: opts.lbfgs_patience,
            ..Lbfgs::default()
        };
        let mut p = model.params().to_vec();
        let rep = {
            let m = &mut *model;
            lb.minimize(&mut p, |theta, g| {
                m.params_mut().copy_from_slice(theta);
                let (l, gr) = loss_and_grad(&*m, target, opts.batch_rows, opts.real_part)?;
                g.copy_from_slice(&gr);
                freeze(g);
                Ok(l)
            })?
        };
        model.params_mut().copy_from_slice(&p);
        lbfgs_iters = rep.losses.len() - 1;
        losses.extend(rep.losses.iter().skip(1).map(|l| l.sqrt()));
    }
    if opts.lbfgs_iters > 0 || steps > 0 || rmse.is_infinite() {
        rmse = loss_and_grad(model, target, opts.batch_rows, opts.real_part)?
            .0
            .sqrt();
    }
    Ok(FitReport {
        rmse,
        steps,
        lbfgs_iters,
        seconds: start.elapsed().as_secs_f64(),
        losses,
    })
}
