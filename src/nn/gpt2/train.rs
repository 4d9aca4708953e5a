//! [`Gpt2Trainer`]: AdamW with linear warm-up and cosine decay, and global gradient-norm
//! clipping, over a [`Gpt2`]'s parameter groups.

use super::model::{Gpt2, Gpt2Grads};
use crate::error::{check_len, Error, Result};
use crate::learn::{Adam, Optimizer, Schedule};
use crate::nn::TensorStore;
use crate::scalar::RealScalar;

/// Hyper-parameters of [`Gpt2Trainer`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainOptions {
    /// Peak learning rate.
    pub lr: f64,
    /// Decoupled weight decay `λ` (AdamW), on embeddings and linear weights.
    pub weight_decay: f64,
    /// Adam's `β₁`, `β₂`.
    pub betas: (f64, f64),
    /// Linear warm-up steps.
    pub warmup: usize,
    /// Total steps (end of the cosine).
    pub total_steps: usize,
    /// Final learning rate as a fraction of `lr`.
    pub min_lr_factor: f64,
    /// Clip the global gradient norm to this value (`0`: no clipping).
    pub clip: f64,
    /// Learning-rate multiplier of the structured linear layers' groups.
    pub structured_lr_scale: f64,
    /// Learning-rate multiplier of the groups that were structured and have been switched to
    /// their dense product ([`Gpt2::to_dense`], reverse sparsification) since the trainer was
    /// created; they restart with fresh moments late in the schedule, where the shared rate
    /// has decayed.
    pub switched_lr_scale: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            weight_decay: 0.1,
            betas: (0.9, 0.95),
            warmup: 100,
            total_steps: 1000,
            min_lr_factor: 0.1,
            clip: 1.0,
            structured_lr_scale: 1.0,
            switched_lr_scale: 1.0,
        }
    }
}

/// What one [`Gpt2Trainer::step`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f64,
}

/// AdamW (Loshchilov & Hutter, ICLR 2019) per parameter group with a shared warm-up + cosine
/// schedule (`lr_t = lr · Schedule::cosine(warmup, total, min).factor(t)`) and clipping of the
/// global gradient norm `‖g‖₂ ≤ clip` (Pascanu et al. 2013).
#[derive(Debug, Clone)]
pub struct Gpt2Trainer {
    opts: TrainOptions,
    schedule: Schedule,
    adams: Vec<Adam>,
    lens: Vec<usize>,
    kinds: Vec<GroupKind>,
    step: usize,
}

/// Which learning-rate multiplier a parameter group takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupKind {
    Plain,
    Structured,
    Switched,
}

impl GroupKind {
    fn lr_scale(self, opts: &TrainOptions) -> f64 {
        match self {
            GroupKind::Plain => 1.0,
            GroupKind::Structured => opts.structured_lr_scale,
            GroupKind::Switched => opts.switched_lr_scale,
        }
    }
}

impl Gpt2Trainer {
    /// A trainer for `model`'s groups.
    pub fn new<T: RealScalar>(model: &Gpt2<T>, opts: TrainOptions) -> Result<Self> {
        if !(opts.clip.is_finite() && opts.clip >= 0.0) {
            return Err(Error::InvalidArgument {
                what: "clip",
                message: format!("expected a finite value ≥ 0, got {}", opts.clip),
            });
        }
        for (what, v) in [
            ("structured_lr_scale", opts.structured_lr_scale),
            ("switched_lr_scale", opts.switched_lr_scale),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::InvalidArgument {
                    what,
                    message: format!("expected a finite value > 0, got {v}"),
                });
            }
        }
        if !(0.0..=1.0).contains(&opts.min_lr_factor) {
            return Err(Error::InvalidArgument {
                what: "min_lr_factor",
                message: format!("expected a value in [0, 1], got {}", opts.min_lr_factor),
            });
        }
        let mut me = Self {
            opts,
            schedule: Schedule::cosine(opts.warmup, opts.total_steps, opts.min_lr_factor),
            adams: Vec::new(),
            lens: Vec::new(),
            kinds: Vec::new(),
            step: 0,
        };
        me.sync(model)?;
        Ok(me)
    }

    fn make_adam(&self, mask: Vec<bool>) -> Result<Adam> {
        Adam::new(self.opts.lr)?
            .with_betas(self.opts.betas.0, self.opts.betas.1, 1e-8)?
            .with_weight_decay(self.opts.weight_decay, Some(mask))
    }

    /// Re-create the optimiser state of every group whose size changed (after
    /// [`Gpt2::to_dense`]: the dense layers start with fresh moments, at the rate
    /// `lr · switched_lr_scale`).
    pub fn sync<T: RealScalar>(&mut self, model: &Gpt2<T>) -> Result<()> {
        let masks = model.decay_masks();
        let lens: Vec<usize> = masks.iter().map(Vec::len).collect();
        let structured = model.structured_groups();
        check_len("structured groups", structured.len(), masks.len())?;
        let mut adams = Vec::with_capacity(masks.len());
        let mut kinds = Vec::with_capacity(masks.len());
        for (i, (mask, s)) in masks.into_iter().zip(structured).enumerate() {
            let same = self.lens.get(i) == Some(&mask.len());
            let was = self.kinds.get(i).copied();
            kinds.push(match (s, was) {
                (true, _) => GroupKind::Structured,
                (false, Some(GroupKind::Structured)) if !same => GroupKind::Switched,
                (false, Some(k)) if same => k,
                (false, _) => GroupKind::Plain,
            });
            if same {
                adams.push(self.adams[i].clone());
            } else {
                adams.push(self.make_adam(mask)?);
            }
        }
        self.lens = lens;
        self.adams = adams;
        self.kinds = kinds;
        Ok(())
    }

    /// Number of groups that were switched from a structured layer to a dense one since the
    /// trainer was created (or in the run a checkpoint restored by
    /// [`load_from`](Self::load_from) came from).
    pub fn switched_groups(&self) -> usize {
        self.kinds
            .iter()
            .filter(|&&k| k == GroupKind::Switched)
            .count()
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> usize {
        self.step
    }

    /// Set the step counter (when resuming from a checkpoint without optimiser state; the
    /// moments restart from zero). [`load_from`](Self::load_from) sets it too.
    pub fn set_step_count(&mut self, step: usize) {
        self.step = step;
    }

    /// Write the optimiser state into `store`, beside `model`'s weights: per parameter group
    /// `g` (named as [`Gpt2::group_names`]) the tensors `optim.{g}.exp_avg` and
    /// `optim.{g}.exp_avg_sq` (AdamW's first and second moments, F64, the group's flat length)
    /// and the metadata `optim.{g}.t`; the trainer's step as `optim.step`; `optim.{g}.switched`
    /// = `true` for the groups switched from structured to dense (they keep
    /// `switched_lr_scale` when resumed). Groups that have not taken a step yet are left out.
    pub fn save_to<T: RealScalar>(&self, model: &Gpt2<T>, store: &mut TensorStore) -> Result<()> {
        let names = model.group_names();
        check_len("parameter groups", names.len(), self.adams.len())?;
        store.set_metadata("optim.step", self.step.to_string());
        for (name, kind) in names.iter().zip(&self.kinds) {
            if *kind == GroupKind::Switched {
                store.set_metadata(&format!("optim.{name}.switched"), "true".to_string());
            }
        }
        for (name, adam) in names.iter().zip(&self.adams) {
            let (t, m, v) = adam.state();
            if t == 0 || m.is_empty() {
                continue;
            }
            store.insert(&format!("optim.{name}.exp_avg"), &[m.len()], m)?;
            store.insert(&format!("optim.{name}.exp_avg_sq"), &[v.len()], v)?;
            store.set_metadata(&format!("optim.{name}.t"), t.to_string());
        }
        Ok(())
    }

    /// Restore a state written by [`save_to`](Self::save_to) for `model` (the model the
    /// trainer was created or [`sync`](Self::sync)ed for). Returns `false`, changing nothing,
    /// when `store` holds no optimiser state (a weights-only checkpoint). Groups without saved
    /// moments (not stepped when saved) start fresh; saved moments of another length than their
    /// group are an [`Error::Shape`], and on any error the trainer is unchanged.
    pub fn load_from<T: RealScalar>(
        &mut self,
        model: &Gpt2<T>,
        store: &TensorStore,
    ) -> Result<bool> {
        let Some(step) = store.metadata("optim.step") else {
            return Ok(false);
        };
        let step: usize = step.parse().map_err(|_| Error::InvalidArgument {
            what: "optim.step",
            message: format!("expected a step count, got `{step}`"),
        })?;
        let names = model.group_names();
        check_len("parameter groups", names.len(), self.adams.len())?;
        let mut restored = self.adams.clone();
        let mut kinds = self.kinds.clone();
        for (name, kind) in names.iter().zip(&mut kinds) {
            let key = format!("optim.{name}.switched");
            match store.metadata(&key) {
                None => {}
                Some("true") if *kind != GroupKind::Structured => *kind = GroupKind::Switched,
                Some(v) => {
                    return Err(Error::InvalidArgument {
                        what: "optim.*.switched",
                        message: format!(
                            "{key} = `{v}`: expected `true` on a group that is dense now"
                        ),
                    })
                }
            }
        }
        for ((name, adam), &len) in names.iter().zip(&mut restored).zip(&self.lens) {
            let key = format!("optim.{name}.t");
            let Some(t) = store.metadata(&key) else {
                adam.reset();
                continue;
            };
            let t: u64 = t.parse().map_err(|_| Error::InvalidArgument {
                what: "optim.*.t",
                message: format!("{key}: expected a step count, got `{t}`"),
            })?;
            let m = store.get::<f64>(&format!("optim.{name}.exp_avg"), &[len])?;
            let v = store.get::<f64>(&format!("optim.{name}.exp_avg_sq"), &[len])?;
            adam.set_state(t, m, v)?;
        }
        self.adams = restored;
        self.kinds = kinds;
        self.step = step;
        Ok(true)
    }

    /// The learning rate of step `step`.
    pub fn lr_at(&self, step: usize) -> f64 {
        self.opts.lr * self.schedule.factor(step)
    }

    /// Clip `grads`, take one AdamW step on every group at the scheduled rate, zero `grads`.
    pub fn step<T: RealScalar>(
        &mut self,
        model: &mut Gpt2<T>,
        grads: &mut Gpt2Grads<T>,
    ) -> Result<StepInfo> {
        check_len("grads groups", grads.bufs.len(), self.adams.len())?;
        let grad_norm = grads.global_norm();
        if !grad_norm.is_finite() {
            return Err(Error::Numerical(format!(
                "gradient norm is {grad_norm} at step {}",
                self.step
            )));
        }
        if self.opts.clip > 0.0 && grad_norm > self.opts.clip {
            grads.scale(self.opts.clip / grad_norm);
        }
        let lr = self.lr_at(self.step);
        for (((adam, p), g), kind) in self
            .adams
            .iter_mut()
            .zip(model.groups_mut())
            .zip(&grads.bufs)
            .zip(&self.kinds)
        {
            Optimizer::<T>::set_lr(adam, lr * kind.lr_scale(&self.opts));
            adam.step(p, g)?;
        }
        grads.zero();
        self.step += 1;
        Ok(StepInfo { grad_norm, lr })
    }
}
