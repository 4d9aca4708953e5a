//! The paper's recipe for a product of butterflies and learned permutations (Dao et al., ICML
//! 2019, §4): train everything with soft permutations, harden them, then polish the twiddles
//! alone (Adam, then L-BFGS) — made robust by restarting from fresh random parameters when the
//! hardened candidate does not reach the target, and keeping the best candidate.

use super::check::{butterfly_residual, complex_structure_defect};
use super::fit::{fit_with_progress, FitOptions, Method};
use super::gauss_newton::{gauss_newton, GaussNewtonOptions};
use super::grow_bpbp::tolerance;
use super::optim::Schedule;
use super::permutation::ButterflyProduct;
use crate::butterfly::{Butterfly, Init, Permutation};
use crate::error::{check_shape, Error, Result};
use crate::linear_map::{Differentiable, LinearMap};
use crate::scalar::Scalar;
use ndarray::ArrayView2;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Instant;

/// Options of [`learn_transform`].
#[derive(Debug, Clone, PartialEq)]
pub struct LearnOptions {
    /// Adam steps with soft permutations.
    pub soft_steps: usize,
    /// Learning rate of the soft phase (cosine decay to 10 %).
    pub soft_lr: f64,
    /// Rows of the identity sampled per soft step (0: all); see [`FitOptions::sample_rows`].
    pub soft_sample_rows: usize,
    /// Adam steps on the twiddles after hardening.
    pub polish_steps: usize,
    /// Learning rate of the polish phase (cosine decay to 1 %).
    pub polish_lr: f64,
    /// L-BFGS iterations at the end of the polish.
    pub lbfgs_iters: usize,
    /// Stop L-BFGS once its loss has not dropped by 10 % over this many iterations.
    pub lbfgs_patience: usize,
    /// Stop polishing once the RMSE reaches this value.
    pub target_rmse: f64,
    /// A candidate is accepted (no further restart) once its RMSE is at most this fraction of
    /// the target's RMS entry `‖A‖_F / √(out · in)`.
    pub accept_rel_rmse: f64,
    /// Most candidates tried (≥ 1): the first starts from the model's parameters, the others
    /// from fresh random ones ([`ButterflyProduct::randomize`]).
    pub restarts: usize,
    /// Twiddle initialisation of restarted candidates.
    pub init: Init,
    /// Standard deviation of the logits of restarted candidates.
    pub logit_std: f64,
    /// Seed of the restarts and of the row sampling.
    pub seed: u64,
    /// Compare `Re W` with the target (a complex product fitting a real transform).
    pub real_part: bool,
    /// Rows of the identity per backward call.
    pub batch_rows: usize,
    /// Hardening with a check: the hard settings of the this many least certain gates
    /// (smallest `|logit|`, capped so that at most about `2^26 / n²` settings are tried) are
    /// enumerated and scored by [`butterfly_residual`]; the nearest one (smallest total
    /// `|logit|` of the flipped gates) that passes is polished. 0: plain rounding, polished from
    /// the current twiddles (no search, no exact build). Only for
    /// products `B · P ⋯ P` (see [`ButterflyProduct::rounded_permutation`]). For real-part
    /// fits with complex scalars a passing setting is also built exactly
    /// ([`crate::Butterfly::project_real_part`]; its twiddles then replace the soft ones and
    /// only L-BFGS polishes), settings that build are preferred, and when none does every other
    /// setting of one whole level around the chosen rounding is tried.
    pub flip_gates: usize,
    /// When the hardened permutation passes the check but the polish misses, polish again up
    /// to this many times, each time after redrawing the twiddles that only the badly fitted
    /// outputs depend on ([`ButterflyProduct::randomize_output_class`]; a class redrawn twice
    /// without success is widened to its parent class, up to all twiddles). Real-part fits
    /// such as the DCT-II stall in local minima whose error is confined to such a class.
    pub polish_restarts: usize,
    /// Levenberg–Marquardt iterations ([`gauss_newton`]) after L-BFGS when the target RMSE
    /// is not reached but the RMSE is within `gn_start_rel_rmse` of the target's scale
    /// (0: none); only for products `B · P ⋯ P` whose permutation passes the check.
    pub gn_iters: usize,
    /// See `gn_iters` (relative to the RMS entry of the target, like `accept_rel_rmse`).
    pub gn_start_rel_rmse: f64,
    /// Wall-time budget in seconds: no new candidate or polish restart starts after it (the
    /// one under way finishes), and the best so far is returned. `None`: no limit.
    pub time_limit: Option<f64>,
}

impl Default for LearnOptions {
    fn default() -> Self {
        Self {
            soft_steps: 1500,
            soft_lr: 2e-2,
            soft_sample_rows: 0,
            polish_steps: 100,
            polish_lr: 5e-3,
            lbfgs_iters: 1000,
            lbfgs_patience: 50,
            target_rmse: 1e-12,
            accept_rel_rmse: 1e-4,
            restarts: 6,
            init: Init::Randn,
            logit_std: 1.0,
            seed: 0,
            real_part: false,
            batch_rows: 32,
            flip_gates: 10,
            polish_restarts: 10,
            gn_iters: 40,
            gn_start_rel_rmse: 1e-3,
            time_limit: None,
        }
    }
}

/// One candidate of [`learn_transform`].
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// RMSE at the end of the soft phase (estimated when rows are sampled).
    pub soft_rmse: f64,
    /// RMSE right after hardening.
    pub hardened_rmse: f64,
    /// RMSE after polishing.
    pub rmse: f64,
    /// Adam steps (soft and polish).
    pub steps: usize,
    /// L-BFGS iterations.
    pub lbfgs_iters: usize,
    /// Wall time of the soft phase, in seconds.
    pub soft_seconds: f64,
    /// Wall time of the whole candidate, in seconds.
    pub seconds: f64,
    /// [`butterfly_residual`] of the hardened permutation (`None`: not checked).
    pub residual: Option<f64>,
    /// Gates flipped from plain rounding by the check.
    pub flipped: usize,
    /// Polishes run (1 + restarts from partly fresh twiddles).
    pub polishes: usize,
    /// Levenberg–Marquardt iterations over all polishes.
    pub gn_iters: usize,
}

/// What [`learn_transform`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnReport {
    /// RMSE of the returned model at the end of its soft phase.
    pub soft_rmse: f64,
    /// RMSE of the returned model right after hardening.
    pub hardened_rmse: f64,
    /// Final RMSE `‖W − A‖_F / √(out · in)` of the returned model.
    pub rmse: f64,
    /// Adam steps over all candidates.
    pub steps: usize,
    /// L-BFGS iterations over all candidates.
    pub lbfgs_iters: usize,
    /// Levenberg–Marquardt iterations over all candidates.
    pub gn_iters: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// The hardened permutations of the returned model, in application order.
    pub permutations: Vec<Permutation>,
    /// RMSE along the way of the returned model (soft phase, then polish).
    pub losses: Vec<f64>,
    /// Every candidate tried, in order.
    pub attempts: Vec<Attempt>,
    /// Index in `attempts` of the returned model.
    pub chosen: usize,
    /// Whether [`LearnOptions::time_limit`] cut the run short.
    pub timed_out: bool,
}

/// Learn `target` (shape `(n, n)`) with `model`: for up to `restarts` candidates (the first
/// from the model's current parameters), a soft phase, hardening and a polish; stops at the
/// first candidate whose RMSE is within `accept_rel_rmse` of the target's scale and leaves the
/// best candidate in `model`. `progress(step, rmse)` is called after every Adam step, with
/// steps counted over all candidates.
pub fn learn_transform<T: Scalar>(
    model: &mut ButterflyProduct<T>,
    target: ArrayView2<T>,
    opts: &LearnOptions,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<LearnReport> {
    let start = Instant::now();
    let n = model.n();
    check_shape("target", target.dim(), (n, n))?;
    if opts.restarts == 0 {
        return Err(Error::Zero { what: "restarts" });
    }
    if let Some(t) = opts.time_limit {
        if t.is_nan() || t < 0.0 {
            return Err(Error::InvalidArgument {
                what: "time_limit",
                message: format!("expected a non-negative number of seconds, got {t}"),
            });
        }
    }
    let out_of_time = || {
        opts.time_limit
            .is_some_and(|t| start.elapsed().as_secs_f64() > t)
    };
    let mut timed_out = false;
    let scale = rms_entry(target);
    let accept = opts.accept_rel_rmse * scale;
    let adam = Method::Adam {
        beta1: 0.9,
        beta2: 0.999,
    };
    let mut attempts = Vec::new();
    let mut best: Option<(usize, ButterflyProduct<T>, Vec<f64>, f64)> = None;
    let mut offset = 0;
    let mut lbfgs_total = 0;
    for attempt in 0..opts.restarts {
        if attempt > 0 && out_of_time() {
            timed_out = true;
            break;
        }
        let t0 = Instant::now();
        if attempt > 0 {
            let mut rng = StdRng::seed_from_u64(mix(opts.seed, attempt as u64));
            model.randomize(opts.init, opts.logit_std, &mut rng)?;
        } else {
            model.soften();
        }
        let soft = FitOptions {
            steps: opts.soft_steps,
            lr: opts.soft_lr,
            method: adam,
            schedule: Schedule::cosine(0, opts.soft_steps, 0.1),
            batch_rows: opts.batch_rows,
            lbfgs_iters: 0,
            lbfgs_patience: 0,
            target_rmse: 0.0,
            real_part: opts.real_part,
            frozen: None,
            sample_rows: opts.soft_sample_rows,
            seed: mix(opts.seed ^ 0x5EED, attempt as u64),
        };
        let r1 = fit_with_progress(model, target, &soft, &mut |s, l| progress(offset + s, l))?;
        offset += r1.steps;
        let soft_seconds = t0.elapsed().as_secs_f64();
        let (residual, flipped, built) = harden_checked(model, target, opts)?;
        let polish = FitOptions {
            // From an exact construction L-BFGS only: Adam's normalised first steps would
            // throw it off.
            steps: if built { 0 } else { opts.polish_steps },
            lr: opts.polish_lr,
            method: adam,
            schedule: Schedule::cosine(0, opts.polish_steps, 0.01),
            batch_rows: opts.batch_rows,
            lbfgs_iters: opts.lbfgs_iters,
            lbfgs_patience: opts.lbfgs_patience,
            target_rmse: opts.target_rmse,
            real_part: opts.real_part,
            frozen: Some(model.logit_mask()),
            sample_rows: 0,
            seed: 0,
        };
        let passes = residual.is_some_and(|r| r <= CHECK_TOL);
        let tries = if passes { 1 + opts.polish_restarts } else { 1 };
        let gn = GaussNewtonOptions {
            max_iters: opts.gn_iters,
            target_rmse: opts.target_rmse,
            real_part: opts.real_part,
            ..GaussNewtonOptions::default()
        };
        let mut r2: Option<PolishBest<T>> = None;
        let mut hardened_rmse = f64::NAN;
        let mut polishes = 0;
        let mut gn_iters = 0;
        let mut rerolled: Vec<(usize, usize)> = Vec::new();
        let mut rng = StdRng::seed_from_u64(mix(opts.seed ^ 0x7019, attempt as u64));
        for k in 0..tries {
            if k > 0 && out_of_time() {
                timed_out = true;
                break;
            }
            if k > 0 {
                let best_params = &r2.as_ref().expect("k > 0").1 .0;
                model.params_mut().copy_from_slice(best_params);
                reroll_bad_classes(model, target, opts, &mut rerolled, &mut rng)?;
            }
            let r = fit_with_progress(model, target, &polish, &mut |s, l| progress(offset + s, l))?;
            offset += r.steps;
            lbfgs_total += r.lbfgs_iters;
            polishes += 1;
            if k == 0 {
                hardened_rmse = r.losses.first().copied().unwrap_or(r.rmse);
            }
            let (mut rmse_k, mut losses_k) = (r.rmse, r.losses);
            let near = rmse_k <= opts.gn_start_rel_rmse * scale;
            if rmse_k > opts.target_rmse && opts.gn_iters > 0 && passes && near {
                let g = gauss_newton(model, target, &gn)?;
                gn_iters += g.iters;
                rmse_k = g.rmse;
                losses_k.extend(g.losses.into_iter().skip(1));
            }
            let done = rmse_k <= accept;
            r2 = Some(match r2 {
                Some((best_r, best_p)) if best_r <= rmse_k => (best_r, best_p),
                _ => (
                    rmse_k,
                    (model.params().to_vec(), r.steps, r.lbfgs_iters, losses_k),
                ),
            });
            if done {
                break;
            }
        }
        let (rmse2, (params2, steps2, lbfgs2, losses2)) = r2.expect("tries ≥ 1");
        model.params_mut().copy_from_slice(&params2);
        attempts.push(Attempt {
            soft_rmse: r1.rmse,
            hardened_rmse,
            rmse: rmse2,
            steps: r1.steps + steps2,
            lbfgs_iters: lbfgs2,
            soft_seconds,
            seconds: t0.elapsed().as_secs_f64(),
            residual,
            flipped,
            polishes,
            gn_iters,
        });
        let r2 = (rmse2, losses2);
        let better = best
            .as_ref()
            .is_none_or(|(.., best_rmse)| r2.0 < *best_rmse);
        if better {
            let mut losses = r1.losses;
            losses.extend(r2.1);
            best = Some((attempt, model.clone(), losses, r2.0));
        }
        if r2.0 <= accept {
            break;
        }
    }
    let (chosen, chosen_model, losses, rmse) = best.expect("restarts ≥ 1");
    *model = chosen_model;
    let a = &attempts[chosen];
    Ok(LearnReport {
        soft_rmse: a.soft_rmse,
        hardened_rmse: a.hardened_rmse,
        rmse,
        steps: offset,
        lbfgs_iters: lbfgs_total,
        gn_iters: attempts.iter().map(|a| a.gn_iters).sum(),
        seconds: start.elapsed().as_secs_f64(),
        permutations: model.permutations(),
        losses,
        attempts,
        chosen,
        timed_out,
    })
}

/// `‖W − A‖_F / √(out · in)` of a map against a dense target (on `Re W` when `real_part`).
pub fn rmse<T: Scalar, M: LinearMap<T> + ?Sized>(
    model: &M,
    target: ArrayView2<T>,
    real_part: bool,
) -> Result<f64> {
    check_shape(
        "target",
        target.dim(),
        (model.out_features(), model.in_features()),
    )?;
    let d = model.to_dense();
    let s: f64 = d
        .iter()
        .zip(target.iter())
        .map(|(a, b)| {
            let mut e = a.to_c64() - b.to_c64();
            if real_part {
                e.im = 0.0;
            }
            e.norm_sqr()
        })
        .sum();
    Ok((s / d.len().max(1) as f64).sqrt())
}

/// The best polish of a candidate: RMSE, then parameters, Adam steps, L-BFGS iterations and
/// losses.
type PolishBest<T> = (f64, (Vec<T>, usize, usize, Vec<f64>));

/// Relative [`butterfly_residual`] below which a hardened permutation counts as reachable.
pub(super) const CHECK_TOL: f64 = 1e-4;

/// [`butterfly_residual`] of `perm`, and for real parts also failing (1.0) when the
/// complex-structure test ([`complex_structure_defect`]) rejects it.
pub(super) fn check_score<T: Scalar>(
    target: ArrayView2<T>,
    perm: &Permutation,
    real_part: bool,
) -> Result<f64> {
    let r = butterfly_residual(target, perm, real_part)?;
    if real_part && r <= CHECK_TOL && complex_structure_defect(target, perm.as_slice()) > J_TOL {
        return Ok(1.0);
    }
    Ok(r)
}

/// The twiddles of [`Butterfly::project_real_part`] of `target` under the gather `perm` (a
/// complex butterfly `B` with `Re(B · Q) ≈ target`) and its relative error.
pub(super) fn real_part_twiddles<T: Scalar>(
    target: ArrayView2<T>,
    perm: &Permutation,
) -> Result<(f64, Vec<T>)> {
    let p = perm.as_slice();
    let gathered = ndarray::Array2::from_shape_fn(target.dim(), |(k, i)| target[(k, p[i])]);
    let (b, err) = Butterfly::<T>::project_real_part(gathered.view())?;
    Ok((err, b.twiddle().to_vec()))
}

/// Relative discriminant above which [`complex_structure_defect`] rejects a permutation.
const J_TOL: f64 = 1e-6;

/// Harden `model`'s permutations, with the check of [`LearnOptions::flip_gates`] when the
/// structure allows it; returns the residual of the chosen setting and the gates flipped.
fn harden_checked<T: Scalar>(
    model: &mut ButterflyProduct<T>,
    target: ArrayView2<T>,
    opts: &LearnOptions,
) -> Result<Hardened> {
    let n = model.n();
    let mut params = model.params().to_vec();
    let Some(plain) = model.rounded_permutation(&params) else {
        model.harden();
        return Ok((None, 0, false));
    };
    let gates: Vec<usize> = model
        .logit_mask()
        .iter()
        .enumerate()
        .filter_map(|(i, &m)| m.then_some(i))
        .collect();
    let budget = ((1usize << 26) / (n * n).max(1)).max(1).ilog2() as usize;
    let k = opts.flip_gates.min(gates.len()).min(budget);
    let mut order = gates.clone();
    order.sort_by(|&a, &b| {
        let (la, lb) = (params[a].to_c64().re.abs(), params[b].to_c64().re.abs());
        la.total_cmp(&lb)
    });
    order.truncate(k);
    // For real parts with complex twiddles a passing setting is also built exactly
    // (`Butterfly::project_real_part`): the check is necessary only, the construction settles it.
    let build = opts.real_part && T::IS_COMPLEX && opts.flip_gates > 0;
    let exact = |q: &Permutation| -> Result<Option<Vec<T>>> {
        if !build {
            return Ok(None);
        }
        let (err, tw) = real_part_twiddles(target, q)?;
        Ok((err <= tolerance::<T>()).then_some(tw))
    };
    // Key: (fails the check, residual when failing, not built exactly, total |logit|
    // flipped, flipped gates).
    // The plain rounding is built even when the check rejects it: at large n the check's
    // tolerances can reject a reachable permutation.
    let mut twiddles = exact(&plain)?;
    let r0 = if twiddles.is_some() {
        0.0
    } else {
        check_score(target, &plain, opts.real_part)?
    };
    let mut best = (
        r0 > CHECK_TOL,
        if r0 > CHECK_TOL { r0 } else { 0.0 },
        build && twiddles.is_none(),
        0.0,
        0usize,
    );
    if k > 0 && (best.0 || best.2) {
        let mut trial = params.clone();
        for bits in 1usize..(1 << k) {
            let mut cost = 0.0;
            for (t, &g) in order.iter().enumerate() {
                let l = params[g].to_c64().re;
                trial[g] = if bits >> t & 1 == 1 {
                    cost += l.abs();
                    T::from_f64(if l > 0.0 { -l } else { l.abs().max(1e-3) })
                } else {
                    params[g]
                };
            }
            let q = model
                .rounded_permutation(&trial)
                .expect("checked structure");
            let r = check_score(target, &q, opts.real_part)?;
            let fails = r > CHECK_TOL;
            let tier = |key: &(bool, f64, bool, f64, usize)| (key.0, key.2);
            if !fails && (best.0 || (best.2 && build) || cost < best.3) {
                // Build only what could improve on the best: a passing setting that is nearer,
                // or any passing one while the best is not exact.
                let tw = exact(&q)?;
                let key = (false, 0.0, build && tw.is_none(), cost, bits);
                if tier(&key) < tier(&best) || (tier(&key) == tier(&best) && key.3 < best.3) {
                    best = key;
                    twiddles = tw;
                }
            } else if fails && best.0 && r < best.1 {
                best = (true, r, build, cost, bits);
            }
        }
    }
    let bits = best.4;
    for (t, &g) in order.iter().enumerate() {
        if bits >> t & 1 == 1 {
            let l = params[g].to_c64().re;
            params[g] = T::from_f64(if l > 0.0 { -l } else { l.abs().max(1e-3) });
        }
    }
    let mut level_params = None;
    if build && twiddles.is_none() {
        // Nothing built exactly: try every other setting of one whole level (of any learned
        // permutation) around the chosen rounding, the cheapest in flipped |logit| kept.
        // Along the DCT-II's soft phase at N = 32 the rounding is often one level away.
        let mut best_level: Option<(f64, Vec<T>, Vec<T>)> = None;
        for r in model.logit_ranges() {
            for level in r.step_by(3) {
                for setting in 0..8u8 {
                    let mut trial = params.clone();
                    let mut cost = 0.0;
                    for k in 0..3 {
                        let l = params[level + k].to_c64().re;
                        let on = setting >> k & 1 == 1;
                        if on != (l > 0.0) {
                            cost += l.abs();
                            trial[level + k] =
                                T::from_f64(if on { l.abs().max(1e-3) } else { -l.abs() });
                        }
                    }
                    if cost == 0.0 || best_level.as_ref().is_some_and(|(c, ..)| *c <= cost) {
                        continue;
                    }
                    let q = model
                        .rounded_permutation(&trial)
                        .expect("checked structure");
                    if check_score(target, &q, opts.real_part)? > CHECK_TOL {
                        continue;
                    }
                    if let Some(tw) = exact(&q)? {
                        best_level = Some((cost, trial, tw));
                    }
                }
            }
        }
        if let Some((_, trial, tw)) = best_level {
            level_params = Some(trial);
            twiddles = Some(tw);
        }
    }
    if let Some(trial) = level_params {
        params = trial;
    }
    model.params_mut().copy_from_slice(&params);
    model.harden();
    let q = model
        .rounded_permutation(model.params())
        .expect("checked structure");
    let residual = check_score(target, &q, opts.real_part)?;
    if let Some(tw) = &twiddles {
        let p = model.params_mut();
        let len = p.len();
        p[len - tw.len()..].copy_from_slice(tw);
    }
    Ok((
        Some(residual),
        bits.count_ones() as usize,
        twiddles.is_some(),
    ))
}

/// What [`harden_checked`] chose: the check residual of the hardened permutation (`None`:
/// not checked), the gates flipped, and whether the twiddles were set to an exact real-part
/// construction.
type Hardened = (Option<f64>, usize, bool);

/// Redraw the twiddles of the output classes `k ≡ r (mod 2^d)` that hold the error of
/// `model` (the coarsest classes whose rows all have an error above a tenth of the largest
/// row error); a class already redrawn twice is widened to its parent class. `rerolled`
/// records the classes redrawn so far.
fn reroll_bad_classes<T: Scalar>(
    model: &mut ButterflyProduct<T>,
    target: ArrayView2<T>,
    opts: &LearnOptions,
    rerolled: &mut Vec<(usize, usize)>,
    rng: &mut StdRng,
) -> Result<()> {
    let w = model.to_dense();
    let row_err: Vec<f64> = w
        .rows()
        .into_iter()
        .zip(target.rows())
        .map(|(a, b)| {
            a.iter()
                .zip(b.iter())
                .map(|(x, y)| {
                    let mut e = x.to_c64() - y.to_c64();
                    if opts.real_part {
                        e.im = 0.0;
                    }
                    e.norm_sqr()
                })
                .sum::<f64>()
        })
        .collect();
    let tol = 1e-2 * row_err.iter().fold(0.0f64, |a, &v| a.max(v));
    let mut classes = Vec::new();
    bad_classes(&row_err, tol, 0, 0, &mut classes);
    for (mut r, mut d) in classes {
        while d > 0 && rerolled.iter().filter(|&&c| c == (r, d)).count() >= 2 {
            d -= 1;
            r &= (1 << d) - 1;
        }
        if d == 0 {
            model.randomize_twiddles(opts.init, rng)?;
            rerolled.clear();
            return Ok(());
        }
        model.randomize_output_class(r, d, opts.init, rng)?;
        rerolled.push((r, d));
    }
    Ok(())
}

/// The coarsest classes `{k ≡ r (mod 2^d)}` inside class `(r, d)` all of whose rows have
/// `err[k] > tol`, covering every such row.
fn bad_classes(err: &[f64], tol: f64, r: usize, d: usize, out: &mut Vec<(usize, usize)>) {
    let bad: Vec<bool> = (r..err.len())
        .step_by(1 << d)
        .map(|k| err[k] > tol)
        .collect();
    if bad.iter().all(|&b| b) {
        out.push((r, d));
    } else if bad.iter().any(|&b| b) {
        bad_classes(err, tol, r, d + 1, out);
        bad_classes(err, tol, r + (1 << d), d + 1, out);
    }
}

/// A well-mixed seed for candidate `k` of a run seeded with `seed` (SplitMix64's finaliser).
/// The RMS entry `‖A‖_F / √(out · in)` of a target: the scale of [`LearnOptions::accept_rel_rmse`].
pub(super) fn rms_entry<T: Scalar>(target: ArrayView2<T>) -> f64 {
    let sq: f64 = target.iter().map(|a| a.to_c64().norm_sqr()).sum();
    (sq / target.len().max(1) as f64).sqrt()
}

pub(super) fn mix(seed: u64, k: u64) -> u64 {
    let mut z = seed ^ k.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
