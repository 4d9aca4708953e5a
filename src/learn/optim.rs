//! First-order optimisers and L-BFGS over flat parameter buffers, and learning-rate schedules.
//!
//! Complex parameters are optimised as pairs of reals (PyTorch's `view_as_real`): a gradient
//! `g = ∂L/∂Re θ + i ∂L/∂Im θ` is a descent direction, and Adam keeps separate second moments
//! for the real and imaginary parts.

use crate::error::{check_len, Error, Result};
use crate::scalar::Scalar;

/// The parameters' real components, interleaved `(re, im)` for complex scalars.
fn to_reals<T: Scalar>(v: &[T]) -> Vec<f64> {
    if T::IS_COMPLEX {
        v.iter()
            .flat_map(|z| {
                let c = z.to_c64();
                [c.re, c.im]
            })
            .collect()
    } else {
        v.iter().map(|z| z.to_c64().re).collect()
    }
}

fn from_reals<T: Scalar>(r: &[f64], v: &mut [T]) {
    if T::IS_COMPLEX {
        for (z, p) in v.iter_mut().zip(r.chunks_exact(2)) {
            *z = T::from_parts(p[0], p[1]);
        }
    } else {
        for (z, &p) in v.iter_mut().zip(r) {
            *z = T::from_f64(p);
        }
    }
}

fn check_lr(lr: f64) -> Result<()> {
    if !(lr.is_finite() && lr > 0.0) {
        return Err(Error::InvalidArgument {
            what: "lr",
            message: format!("expected a finite positive learning rate, got {lr}"),
        });
    }
    Ok(())
}

/// An optimiser that updates a flat parameter buffer from its gradient.
pub trait Optimizer<T: Scalar> {
    /// One update `θ ← step(θ, ∂L/∂θ)`; `params` and `grads` have the same length on every call.
    fn step(&mut self, params: &mut [T], grads: &[T]) -> Result<()>;
    /// The current learning rate.
    fn lr(&self) -> f64;
    /// Set the learning rate (schedules call this before each step).
    fn set_lr(&mut self, lr: f64);
}

/// Which parameters receive weight decay (`None`: all of them). Structured parameters such as
/// butterfly twiddles or permutation logits are usually excluded.
pub type DecayMask = Option<Vec<bool>>;

fn check_mask(mask: &DecayMask, len: usize) -> Result<()> {
    if let Some(m) = mask {
        check_len("decay mask", m.len(), len)?;
    }
    Ok(())
}

/// Stochastic gradient descent with heavy-ball momentum and (coupled, L2) weight decay:
/// `v ← μ v + g + λ θ`, `θ ← θ − lr · v` (Polyak 1964; PyTorch's `SGD`).
#[derive(Debug, Clone)]
pub struct Sgd {
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    decay_mask: DecayMask,
    velocity: Vec<f64>,
}

impl Sgd {
    /// SGD with learning rate `lr` and momentum `momentum ∈ [0, 1)`.
    pub fn new(lr: f64, momentum: f64) -> Result<Self> {
        check_lr(lr)?;
        if !(0.0..1.0).contains(&momentum) {
            return Err(Error::InvalidArgument {
                what: "momentum",
                message: format!("expected a value in [0, 1), got {momentum}"),
            });
        }
        Ok(Self {
            lr,
            momentum,
            weight_decay: 0.0,
            decay_mask: None,
            velocity: Vec::new(),
        })
    }
    /// L2 weight decay `λ ≥ 0`, applied where `mask` is true (all parameters when `None`).
    pub fn with_weight_decay(mut self, weight_decay: f64, mask: DecayMask) -> Result<Self> {
        check_decay(weight_decay)?;
        self.weight_decay = weight_decay;
        self.decay_mask = mask;
        Ok(self)
    }
}

fn check_decay(wd: f64) -> Result<()> {
    if !(wd.is_finite() && wd >= 0.0) {
        return Err(Error::InvalidArgument {
            what: "weight_decay",
            message: format!("expected a finite value ≥ 0, got {wd}"),
        });
    }
    Ok(())
}

/// Whether real component `k` (of `ncomp` per scalar) is decayed.
fn decayed(mask: &DecayMask, k: usize, ncomp: usize) -> bool {
    mask.as_ref().is_none_or(|m| m[k / ncomp])
}

impl<T: Scalar> Optimizer<T> for Sgd {
    fn step(&mut self, params: &mut [T], grads: &[T]) -> Result<()> {
        check_len("grads", grads.len(), params.len())?;
        check_mask(&self.decay_mask, params.len())?;
        let ncomp = if T::IS_COMPLEX { 2 } else { 1 };
        let mut p = to_reals(params);
        let g = to_reals(grads);
        if self.velocity.len() != p.len() {
            self.velocity = vec![0.0; p.len()];
        }
        for k in 0..p.len() {
            let mut gk = g[k];
            if self.weight_decay > 0.0 && decayed(&self.decay_mask, k, ncomp) {
                gk += self.weight_decay * p[k];
            }
            self.velocity[k] = self.momentum * self.velocity[k] + gk;
            p[k] -= self.lr * self.velocity[k];
        }
        from_reals(&p, params);
        Ok(())
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
}

/// Adam (Kingma & Ba, ICLR 2015) with decoupled weight decay (AdamW, Loshchilov & Hutter,
/// ICLR 2019): `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `θ ← θ − lr·(m̂/(√v̂ + ε) + λθ)` with bias-corrected `m̂`, `v̂`.
#[derive(Debug, Clone)]
pub struct Adam {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decay_mask: DecayMask,
    t: u64,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl Adam {
    /// Adam with learning rate `lr`, `β = (0.9, 0.999)`, `ε = 1e-8`, no weight decay.
    pub fn new(lr: f64) -> Result<Self> {
        check_lr(lr)?;
        Ok(Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decay_mask: None,
            t: 0,
            m: Vec::new(),
            v: Vec::new(),
        })
    }
    /// Set `β₁, β₂ ∈ [0, 1)` and `ε > 0`.
    pub fn with_betas(mut self, beta1: f64, beta2: f64, eps: f64) -> Result<Self> {
        for (what, b) in [("beta1", beta1), ("beta2", beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::InvalidArgument {
                    what,
                    message: format!("expected a value in [0, 1), got {b}"),
                });
            }
        }
        if !(eps.is_finite() && eps > 0.0) {
            return Err(Error::InvalidArgument {
                what: "eps",
                message: format!("expected a finite positive value, got {eps}"),
            });
        }
        (self.beta1, self.beta2, self.eps) = (beta1, beta2, eps);
        Ok(self)
    }
    /// AdamW: decoupled weight decay `λ ≥ 0`, applied where `mask` is true (all when `None`).
    pub fn with_weight_decay(mut self, weight_decay: f64, mask: DecayMask) -> Result<Self> {
        check_decay(weight_decay)?;
        self.weight_decay = weight_decay;
        self.decay_mask = mask;
        Ok(self)
    }
    /// Forget the moments (e.g. after the parameter set changes meaning, as on hardening).
    pub fn reset(&mut self) {
        self.t = 0;
        self.m.clear();
        self.v.clear();
    }
    /// The state to checkpoint: the step count `t` and the moment estimates `m`, `v` over the
    /// real components of the parameters (re, im interleaved for complex ones; empty before the
    /// first step).
    pub fn state(&self) -> (u64, &[f64], &[f64]) {
        (self.t, &self.m, &self.v)
    }
    /// Restore a state taken by [`state`](Self::state), so that resumed training takes exactly
    /// the steps an uninterrupted one would. `m` and `v` must have one entry per real component
    /// of the parameters the next [`step`](Optimizer::step) receives, `v ≥ 0`, all finite.
    pub fn set_state(&mut self, t: u64, m: Vec<f64>, v: Vec<f64>) -> Result<()> {
        check_len("Adam second moments", v.len(), m.len())?;
        if m.iter().chain(&v).any(|x| !x.is_finite()) || v.iter().any(|&x| x < 0.0) {
            return Err(Error::InvalidArgument {
                what: "Adam state",
                message: "moments must be finite and second moments ≥ 0".into(),
            });
        }
        if t == 0 && !m.is_empty() {
            return Err(Error::InvalidArgument {
                what: "Adam state",
                message: "step count 0 with non-empty moments".into(),
            });
        }
        self.t = t;
        self.m = m;
        self.v = v;
        Ok(())
    }
}

impl<T: Scalar> Optimizer<T> for Adam {
    fn step(&mut self, params: &mut [T], grads: &[T]) -> Result<()> {
        check_len("grads", grads.len(), params.len())?;
        check_mask(&self.decay_mask, params.len())?;
        let ncomp = if T::IS_COMPLEX { 2 } else { 1 };
        let mut p = to_reals(params);
        let g = to_reals(grads);
        if self.m.len() != p.len() {
            self.m = vec![0.0; p.len()];
            self.v = vec![0.0; p.len()];
            self.t = 0;
        }
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t.min(i32::MAX as u64) as i32);
        let bc2 = 1.0 - self.beta2.powi(self.t.min(i32::MAX as u64) as i32);
        for k in 0..p.len() {
            self.m[k] = self.beta1 * self.m[k] + (1.0 - self.beta1) * g[k];
            self.v[k] = self.beta2 * self.v[k] + (1.0 - self.beta2) * g[k] * g[k];
            let mhat = self.m[k] / bc1;
            let vhat = self.v[k] / bc2;
            let mut upd = mhat / (vhat.sqrt() + self.eps);
            if self.weight_decay > 0.0 && decayed(&self.decay_mask, k, ncomp) {
                upd += self.weight_decay * p[k];
            }
            p[k] -= self.lr * upd;
        }
        from_reals(&p, params);
        Ok(())
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
}

/// A learning-rate schedule: linear warm-up from 0 over `warmup` steps, then constant or a
/// cosine decay to `min_factor · lr` at `total` steps (Loshchilov & Hutter, ICLR 2017).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Steps of linear warm-up.
    pub warmup: usize,
    /// Total steps (the end of the cosine); ignored when `cosine` is false.
    pub total: usize,
    /// Cosine decay after the warm-up (constant otherwise).
    pub cosine: bool,
    /// Final learning rate as a fraction of the base rate.
    pub min_factor: f64,
}

impl Schedule {
    /// The constant schedule.
    pub fn constant() -> Self {
        Self {
            warmup: 0,
            total: 0,
            cosine: false,
            min_factor: 1.0,
        }
    }
    /// Warm-up for `warmup` steps, then cosine decay to `min_factor · lr` at step `total`.
    pub fn cosine(warmup: usize, total: usize, min_factor: f64) -> Self {
        Self {
            warmup,
            total,
            cosine: true,
            min_factor,
        }
    }
    /// The factor multiplying the base learning rate at step `step` (0-based).
    pub fn factor(&self, step: usize) -> f64 {
        if step < self.warmup {
            return (step + 1) as f64 / self.warmup as f64;
        }
        if !self.cosine || self.total <= self.warmup {
            return 1.0;
        }
        let t = ((step - self.warmup) as f64 / (self.total - self.warmup) as f64).min(1.0);
        self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// Limited-memory BFGS (Liu & Nocedal 1989) with a backtracking Armijo line search, for
/// polishing a fit to machine precision. `minimize` calls `f(θ, g)`, which returns `L(θ)` and
/// writes `∂L/∂θ` into `g`.
#[derive(Debug, Clone)]
pub struct Lbfgs {
    /// Number of stored curvature pairs.
    pub history: usize,
    /// Maximum number of iterations per `minimize` call.
    pub max_iters: usize,
    /// Stop when `‖g‖_∞` falls below this.
    pub grad_tol: f64,
    /// Stop when the loss falls below this.
    pub loss_tol: f64,
    /// Stop when the loss has not dropped by the fraction `min_decrease` over the last
    /// `patience` iterations (0: never), e.g. at the precision floor or on a plateau.
    pub patience: usize,
    /// See `patience`.
    pub min_decrease: f64,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Self {
            history: 20,
            max_iters: 500,
            grad_tol: 1e-14,
            loss_tol: 0.0,
            patience: 0,
            min_decrease: 0.1,
        }
    }
}

/// What [`Lbfgs::minimize`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct LbfgsReport {
    /// The loss after each accepted iteration (the first entry is the starting loss).
    pub losses: Vec<f64>,
    /// Number of calls of `f`.
    pub evaluations: usize,
}

impl Lbfgs {
    /// Minimise `f` from `params` (updated in place).
    pub fn minimize<T: Scalar, F>(&self, params: &mut [T], mut f: F) -> Result<LbfgsReport>
    where
        F: FnMut(&[T], &mut [T]) -> Result<f64>,
    {
        check_nonzero_usize("history", self.history)?;
        let n = params.len();
        let mut g_t = vec![T::zero(); n];
        let mut loss = f(params, &mut g_t)?;
        let mut evals = 1;
        let mut x = to_reals(params);
        let mut g = to_reals(&g_t);
        let mut s_hist: Vec<Vec<f64>> = Vec::new();
        let mut y_hist: Vec<Vec<f64>> = Vec::new();
        let mut losses = vec![loss];
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f64>();
        let mut trial_t = params.to_vec();
        for _ in 0..self.max_iters {
            if !loss.is_finite() {
                return Err(Error::Numerical(format!(
                    "L-BFGS met a non-finite loss {loss}"
                )));
            }
            let gmax = g.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            if gmax <= self.grad_tol || loss <= self.loss_tol {
                break;
            }
            // Two-loop recursion: d = −H g.
            let mut q = g.clone();
            let k = s_hist.len();
            let mut alpha = vec![0.0; k];
            for i in (0..k).rev() {
                let rho = 1.0 / dot(&y_hist[i], &s_hist[i]);
                alpha[i] = rho * dot(&s_hist[i], &q);
                for (qj, yj) in q.iter_mut().zip(&y_hist[i]) {
                    *qj -= alpha[i] * yj;
                }
            }
            let gamma = if k > 0 {
                dot(&s_hist[k - 1], &y_hist[k - 1]) / dot(&y_hist[k - 1], &y_hist[k - 1])
            } else {
                1.0 / gmax.max(1e-300) * 1e-3
            };
            for qj in q.iter_mut() {
                *qj *= gamma;
            }
            for i in 0..k {
                let rho = 1.0 / dot(&y_hist[i], &s_hist[i]);
                let beta = rho * dot(&y_hist[i], &q);
                for (qj, sj) in q.iter_mut().zip(&s_hist[i]) {
                    *qj += (alpha[i] - beta) * sj;
                }
            }
            let mut d: Vec<f64> = q.iter().map(|v| -v).collect();
            let mut slope = dot(&g, &d);
            if slope >= 0.0 {
                d = g.iter().map(|v| -v * gamma.abs().max(1e-12)).collect();
                slope = dot(&g, &d);
                s_hist.clear();
                y_hist.clear();
            }
            let mut step = 1.0;
            let mut accepted = None;
            let mut g_new_t = vec![T::zero(); n];
            for _ in 0..40 {
                let xt: Vec<f64> = x.iter().zip(&d).map(|(a, b)| a + step * b).collect();
                from_reals(&xt, &mut trial_t);
                g_new_t.iter_mut().for_each(|v| *v = T::zero());
                let l = f(&trial_t, &mut g_new_t)?;
                evals += 1;
                if l.is_finite() && l <= loss + 1e-4 * step * slope {
                    accepted = Some((xt, l));
                    break;
                }
                step *= 0.5;
            }
            let Some((xt, l)) = accepted else { break };
            let gn = to_reals(&g_new_t);
            let s: Vec<f64> = xt.iter().zip(&x).map(|(a, b)| a - b).collect();
            let y: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
            if dot(&s, &y) > 1e-300 {
                if s_hist.len() == self.history {
                    s_hist.remove(0);
                    y_hist.remove(0);
                }
                s_hist.push(s);
                y_hist.push(y);
            }
            let improved = l < loss;
            x = xt;
            g = gn;
            loss = l;
            losses.push(loss);
            from_reals(&x, params);
            let k = losses.len();
            let stalled = self.patience > 0
                && k > self.patience
                && loss > (1.0 - self.min_decrease) * losses[k - 1 - self.patience];
            if !improved || stalled {
                break;
            }
        }
        Ok(LbfgsReport {
            losses,
            evaluations: evals,
        })
    }
}

fn check_nonzero_usize(what: &'static str, v: usize) -> Result<()> {
    if v == 0 {
        return Err(Error::Zero { what });
    }
    Ok(())
}
