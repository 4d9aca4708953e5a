//! Growing a learned product to twice its size. A learned permutation of size `2n` has one
//! level more than one of size `n` (Dao et al., ICML 2019, §3.2): the fast algorithms of the
//! DFT, DCT, DST, … at `2n` are those at `n` with one more level of even/odd separations or
//! reversals (bit reversal gains a separation; Makhoul's reordering keeps its top level). So a
//! permutation recovered at `n` is extended by inserting one level, in every position and
//! every gate setting, into one of its permutations (the others gain an identity level: their
//! finest, or the one on the whole vector so that they act on both halves); the candidates
//! that pass the exact
//! reachability check are polished until one reaches the target — first from the
//! Cooley–Tukey warm start (the size-`n` twiddles on both halves, a least-squares top level),
//! then from random twiddles. This
//! replaces the soft phase, whose search is what fails for real-part targets such as the
//! DCT-II from N = 32 on. For those (`Re(B P)` with complex twiddles) no polish is needed:
//! each extension's permutation is tried by building the butterfly from the target
//! ([`crate::Butterfly::project_real_part`], exact when the permutation is that of a fast
//! algorithm), so a doubling costs one construction along the lineage.

use super::grow_bpbp::{diagonalize_base, doubled_inner, grow_bpbp, lbfgs_only, tolerance};
use super::permutation::{ButterflyProduct, Factor, LogitSharing, Structure};
use super::recipe::{
    check_score, learn_transform, mix, real_part_twiddles, rms_entry, rmse, LearnOptions,
    LearnReport, CHECK_TOL,
};
use crate::error::{check_shape, Error, Result};
use crate::linear_map::{Differentiable, LinearMap};
use crate::scalar::Scalar;
use faer::linalg::solvers::SolveLstsq;
use ndarray::ArrayView2;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Instant;

/// The level [`grow`] inserted: into learned permutation `factor` (in application order) at
/// level index `level` (0: the level on the whole vector), with gates `[separate, reverse
/// first half, reverse second half]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insertion {
    /// Index among the learned permutations.
    pub factor: usize,
    /// Level index after insertion.
    pub level: usize,
    /// The inserted level's gates.
    pub gates: [bool; 3],
    /// How the other permutations grow: `false` keeps their levels on the same relative
    /// block sizes (level `i` of size `n` becomes level `i` of size `2n`, the new finest level
    /// the identity); `true` (only with `level == 0`) applies them to both halves (an identity
    /// level on the whole vector, the old levels one step finer), as the inserted permutation's
    /// own levels are.
    pub replicate_others: bool,
    /// BPBP products only ([`grow`] of a `B₂ · P₂ · B₁ · P₁`): the gates of the level inserted
    /// on the whole vector of `P₁` (its old levels one step finer, so `B₁ · P₁` acts as the
    /// size-`n` one on both halves); `factor`, `level` and `gates` then describe `P₂`'s level.
    pub inner_gates: Option<[bool; 3]>,
}

impl Insertion {
    /// Whether this insertion applies to permutations with these gates.
    fn fits(&self, gates: &Gates) -> bool {
        self.factor < gates.len()
            && self.level <= gates[self.factor].len()
            && (!self.replicate_others || self.level == 0)
    }

    /// The gates of the grown permutations.
    fn apply(&self, gates: &Gates) -> Gates {
        let mut g = gates.clone();
        for (f, levels) in g.iter_mut().enumerate() {
            if f == self.factor {
                levels.insert(self.level, self.gates);
            } else if let (0, Some(g)) = (f, self.inner_gates) {
                levels.insert(0, g);
            } else if self.replicate_others {
                levels.insert(0, [false; 3]);
            } else {
                levels.push([false; 3]);
            }
        }
        g
    }
}

/// What [`grow`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct GrowReport {
    /// Permutation settings of size `2n` that extend the hardened ones by one level and were
    /// examined (1 when the previous doubling's insertion was accepted at once).
    pub candidates: usize,
    /// Of those, how many pass the reachability check.
    pub passing: usize,
    /// Passing candidates polished (in order of their check residual) until one was accepted.
    pub polished: usize,
    /// The level inserted in the returned model.
    pub inserted: Insertion,
    /// The polish of the returned model (its `attempts` has one entry).
    pub report: LearnReport,
    /// Wall time in seconds, checks included.
    pub seconds: f64,
    /// The smallest RMSE of the Cooley–Tukey warm starts, before any polish (0 for a family
    /// whose fast algorithm is exactly the doubled half-size one, such as the DFT).
    pub warm_rmse: f64,
}

/// Hard gates `[separate, reverse first half, reverse second half]` per level, per learned
/// permutation.
type Gates = Vec<Vec<[bool; 3]>>;

/// Logit magnitude of a hard gate in a grown model.
const HARD_LOGIT: f64 = 6.0;

/// The previous doubling's insertion gets this many times the polish restarts of the others.
const HINT_POLISH_FACTOR: usize = 3;

/// Doublings of each try of [`learn_by_growing`] before the lineages are compared.
const LINEAGE_DOUBLINGS: u32 = 3;

/// Passing candidates polished from the warm start ([`warm_start_from_half`]), in order of its
/// RMSE, before the polishes from random twiddles.
const WARM_POLISHES: usize = 3;

/// Grow `small` — a hardened `B · P ⋯ P` product (BP or BPP, per-level logits) that fits the
/// size-`n` member of a family of transforms — to a model of size `2n` for `target` (the
/// family's size-`2n` member). A BPBP `small` (a convolution) is grown by the exact
/// Cooley–Tukey doubling instead (its inner factor `B₁ · P₁` on both halves, a top level
/// that diagonalises the target, `B₂` projected onto a butterfly; complex targets only,
/// `None` when `small`'s inner factor does not diagonalise the target). First `hint` (the
/// insertion of the previous doubling) alone: if it passes the check and its Cooley–Tukey
/// warm start polishes to the target, it is returned. (For real-part fits with complex
/// scalars, `opts.real_part`, every extension, `hint` first, is tried instead by
/// [`crate::Butterfly::project_real_part`] of the target under its permutation; the first
/// within the relative tolerance `max(1e-6, 1e3 ε)` is returned after an L-BFGS polish, and
/// the search below runs only when none is.) Otherwise every extension of its
/// permutations by one level (any position, any gate setting, into one permutation) is
/// scored by the exact check (rank test, and for `opts.real_part` the
/// complex-structure test), and the passing ones are polished (Adam, L-BFGS,
/// Levenberg–Marquardt and class-wise restarts, as in [`learn_transform`] after hardening):
/// first the three with the best Cooley–Tukey warm start (`small`'s twiddles on both halves,
/// the top level by least squares), from it; then all of them from random twiddles — first
/// those like `hint` (the insertion of the previous doubling: the same permutation and gates,
/// nearest level first), then by check residual — until one reaches `opts.accept_rel_rmse`
/// of the target's scale (or `opts.time_limit` runs out). Returns the best polished model;
/// `None` when no candidate passes the check.
pub fn grow<T: Scalar>(
    small: &ButterflyProduct<T>,
    target: ArrayView2<T>,
    opts: &LearnOptions,
    hint: Option<Insertion>,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<Option<(ButterflyProduct<T>, GrowReport)>> {
    let butterflies = small
        .factors()
        .iter()
        .filter(|f| matches!(f, Factor::Butterfly(_)))
        .count();
    if butterflies == 2 {
        return grow_bpbp(small, target, opts, hint, progress);
    }
    let start = Instant::now();
    let n = 2 * small.n();
    check_shape("target", target.dim(), (n, n))?;
    if !small.is_hard() {
        return Err(Error::InvalidArgument {
            what: "small",
            message: "expected a hardened product (learn it first)".into(),
        });
    }
    let factors = small.factors();
    let mut sharing = None;
    let mut gates: Gates = Vec::new();
    let ranges = small.logit_ranges();
    for (f, r) in factors
        .iter()
        .filter_map(|f| match f {
            Factor::Permutation(p) => Some(p),
            Factor::Butterfly(_) => None,
        })
        .zip(&ranges)
    {
        sharing.get_or_insert(f.sharing());
        gates.push(
            small.params()[r.clone()]
                .chunks(3)
                .map(|c| std::array::from_fn(|k| c[k].to_c64().re > 0.0))
                .collect(),
        );
    }
    let unsupported = || Error::InvalidArgument {
        what: "small",
        message: "expected a BP or BPP product with per-level logits".into(),
    };
    let structure = match gates.len() {
        1 => Structure::Bp,
        2 => Structure::Bpp,
        _ => return Err(unsupported()),
    };
    if sharing != Some(LogitSharing::PerLevel)
        || small.rounded_permutation(small.params()).is_none()
    {
        return Err(unsupported());
    }
    let mut rng = StdRng::seed_from_u64(mix(opts.seed, 0x6120));
    let mut big =
        ButterflyProduct::<T>::new(n, structure, opts.init, LogitSharing::PerLevel, &mut rng)?;
    let big_ranges = big.logit_ranges();
    let set_gates = |params: &mut [T], g: &Gates| {
        for (r, levels) in big_ranges.iter().zip(g) {
            for (i, level) in levels.iter().enumerate() {
                for (k, &on) in level.iter().enumerate() {
                    params[r.start + 3 * i + k] =
                        T::from_f64(if on { HARD_LOGIT } else { -HARD_LOGIT });
                }
            }
        }
    };
    if opts.real_part && T::IS_COMPLEX {
        // Exact doubling for real-part targets: each extension's permutation is tried in turn
        // (the previous doubling's first) by building the butterfly from the target.
        let order = hint
            .filter(|h| h.fits(&gates))
            .into_iter()
            .chain(extensions(&gates).into_iter().filter(|i| Some(*i) != hint));
        let tol = tolerance::<T>();
        let mut seen: Vec<crate::butterfly::Permutation> = Vec::new();
        let mut examined = 0;
        let mut found = None;
        for ins in order {
            set_gates(big.params_mut(), &ins.apply(&gates));
            let q = big
                .rounded_permutation(big.params())
                .ok_or_else(unsupported)?;
            examined += 1;
            if seen.contains(&q) {
                continue;
            }
            let (err, tw) = real_part_twiddles(target, &q)?;
            if err <= tol {
                found = Some((ins, tw));
                break;
            }
            seen.push(q);
        }
        // `big` holds the gates of the extension found.
        if let Some((ins, tw)) = found {
            let p = big.params_mut();
            let len = p.len();
            p[len - tw.len()..].copy_from_slice(&tw);
            big.soften();
            big.harden();
            let warm_rmse = rmse(&big, target, true)?;
            let exact = lbfgs_only(opts, start);
            let report = learn_transform(&mut big, target, &exact, &mut |s, l| progress(s, l))?;
            return Ok(Some((
                big,
                GrowReport {
                    candidates: examined,
                    passing: 1,
                    polished: 1,
                    inserted: ins,
                    report,
                    seconds: start.elapsed().as_secs_f64(),
                    warm_rmse,
                },
            )));
        }
    }
    let polish = LearnOptions {
        soft_steps: 0,
        restarts: 1,
        flip_gates: 0,
        ..opts.clone()
    };
    let scale = rms_entry(target);
    let accept = opts.accept_rel_rmse * scale;
    let remaining = || LearnOptions {
        time_limit: opts
            .time_limit
            .map(|t| (t - start.elapsed().as_secs_f64()).max(0.0)),
        ..polish.clone()
    };
    let mut offset = 0;
    // The previous doubling's insertion first, alone: along a fast algorithm's lineage its
    // warm start polishes to the target, and scoring every extension (a minute at N = 1024)
    // is only needed when it does not.
    let mut hinted: Option<(ButterflyProduct<T>, Insertion, LearnReport, f64)> = None;
    if let Some(h) = hint.filter(|h| h.fits(&gates)) {
        let g = h.apply(&gates);
        set_gates(big.params_mut(), &g);
        let q = big
            .rounded_permutation(big.params())
            .ok_or_else(unsupported)?;
        if check_score(target, &q, opts.real_part)? <= CHECK_TOL {
            let warm_rmse = warm_start_from_half(&mut big, small, target, opts.real_part)?;
            let o = LearnOptions {
                polish_restarts: opts.polish_restarts * HINT_POLISH_FACTOR,
                ..remaining()
            };
            let rep = learn_transform(&mut big, target, &o, &mut |s, l| progress(s, l))?;
            offset += rep.steps;
            if rep.rmse <= accept {
                return Ok(Some((
                    big,
                    GrowReport {
                        candidates: 1,
                        passing: 1,
                        polished: 1,
                        inserted: h,
                        report: rep,
                        seconds: start.elapsed().as_secs_f64(),
                        warm_rmse,
                    },
                )));
            }
            hinted = Some((big.clone(), h, rep, warm_rmse));
        }
    }
    // Every extension, scored; distinct composite permutations only.
    let mut scored: Vec<(f64, Insertion, Gates)> = Vec::new();
    let mut seen = Vec::new();
    let mut candidates = 0;
    let mut params = big.params().to_vec();
    for ins in extensions(&gates) {
        let g = ins.apply(&gates);
        set_gates(&mut params, &g);
        let q = big.rounded_permutation(&params).ok_or_else(unsupported)?;
        candidates += 1;
        if seen.contains(&q) {
            continue;
        }
        let r = check_score(target, &q, opts.real_part)?;
        seen.push(q);
        if r <= CHECK_TOL {
            scored.push((r, ins, g));
        }
    }
    let key = |ins: &Insertion| match hint {
        Some(h)
            if h.factor == ins.factor
                && h.gates == ins.gates
                && h.replicate_others == ins.replicate_others =>
        {
            (0, h.level.abs_diff(ins.level))
        }
        _ => (1, 0),
    };
    scored.sort_by(|a, b| key(&a.1).cmp(&key(&b.1)).then(a.0.total_cmp(&b.0)));
    let passing = scored.len();
    let mut warm_rmse = f64::INFINITY;
    let mut best: Option<(ButterflyProduct<T>, Insertion, LearnReport)> = None;
    let mut polished = 0;
    if let Some((model, h, rep, r)) = hinted {
        warm_rmse = r;
        best = Some((model, h, rep));
        polished = 1;
    }
    let mut warm = Vec::with_capacity(scored.len());
    for (i, (_, ins, g)) in scored.iter().enumerate() {
        set_gates(big.params_mut(), g);
        let r = warm_start_from_half(&mut big, small, target, opts.real_part)?;
        warm_rmse = warm_rmse.min(r);
        if hint != Some(*ins) {
            warm.push((r, i, big.params().to_vec()));
        }
    }
    if warm_rmse.is_infinite() {
        warm_rmse = f64::NAN;
    }
    warm.sort_by(|a, b| a.0.total_cmp(&b.0));
    warm.truncate(WARM_POLISHES);
    let starts = warm
        .into_iter()
        .map(|(_, i, params)| (i, Some(params)))
        .chain((0..scored.len()).map(|i| (i, None)));
    for (i, warm_params) in starts {
        let elapsed = start.elapsed().as_secs_f64();
        let first_random = warm_params.is_none() && i == 0;
        if polished > 0 && !first_random && opts.time_limit.is_some_and(|t| elapsed > t) {
            if warm_params.is_some() {
                continue;
            }
            break;
        }
        let (_, ins, g) = &scored[i];
        match warm_params {
            Some(params) => big.params_mut().copy_from_slice(&params),
            None => {
                let mut rng = StdRng::seed_from_u64(mix(opts.seed, i as u64 + 1));
                big.randomize(opts.init, opts.logit_std, &mut rng)?;
                set_gates(big.params_mut(), g);
            }
        }
        let rep = learn_transform(&mut big, target, &remaining(), &mut |s, l| {
            progress(offset + s, l)
        })?;
        offset += rep.steps;
        polished += 1;
        let done = rep.rmse <= accept;
        if best.as_ref().is_none_or(|(.., b)| rep.rmse < b.rmse) {
            best = Some((big.clone(), *ins, rep));
        }
        if done {
            break;
        }
    }
    Ok(best.map(|(model, inserted, report)| {
        (
            model,
            GrowReport {
                inserted,
                candidates,
                passing,
                polished,
                report,
                seconds: start.elapsed().as_secs_f64(),
                warm_rmse,
            },
        )
    }))
}

/// Every extension of `gates` by one level: any position and gate setting in one permutation
/// (the others keeping their relative block sizes, or for a level on the whole vector also
/// applied to both halves).
fn extensions(gates: &Gates) -> Vec<Insertion> {
    let mut out = Vec::new();
    for f in 0..gates.len() {
        for pos in 0..=gates[f].len() {
            for bits in 0..8u8 {
                for replicate_others in [false, true] {
                    if replicate_others && (gates.len() == 1 || pos != 0) {
                        continue;
                    }
                    out.push(Insertion {
                        factor: f,
                        level: pos,
                        gates: std::array::from_fn(|k| bits >> k & 1 == 1),
                        replicate_others,
                        inner_gates: None,
                    });
                }
            }
        }
    }
    out
}

/// The Cooley–Tukey warm start of a grown model: with an increasing-stride butterfly, a
/// size-`2n` butterfly is `T · (I₂ ⊗ B_n)` for a top level `T` (stride `n`), and the fast
/// algorithms of the FFT-like families are exactly of this form with `B_n` the size-`n`
/// butterfly up to an output diagonal, which `T` absorbs. So the inner levels of `big`'s
/// butterfly are copied from `small`'s (the same twiddles in both halves), and each output
/// row of the top level is the least-squares fit of the target row (of `Re` when
/// `real_part`) by the two inner rows it mixes. `big` must be a `B · P ⋯ P` product of twice
/// `small`'s size with its permutations set. Returns the RMSE reached.
fn warm_start_from_half<T: Scalar>(
    big: &mut ButterflyProduct<T>,
    small: &ButterflyProduct<T>,
    target: ArrayView2<T>,
    real_part: bool,
) -> Result<f64> {
    let half = small.n();
    let n = big.n();
    let m = half.trailing_zeros() as usize;
    let small_tw = {
        let p = small.params();
        p[p.len() - m * (half / 2) * 4..].to_vec()
    };
    let top = m * (n / 2) * 4;
    {
        let p = big.params_mut();
        let len = p.len();
        p[len - (m + 1) * (n / 2) * 4..].copy_from_slice(&doubled_inner(
            &small_tw,
            half,
            T::zero(),
            T::one(),
        ));
    }
    big.soften();
    big.harden();
    let inner = big.to_dense();
    let parts = if T::IS_COMPLEX { 2 } else { 1 };
    let eqs = if T::IS_COMPLEX && !real_part { 2 } else { 1 };
    for q in 0..n / 2 {
        let rows = [q, q + half];
        let mut solved = [T::zero(); 4];
        for (r, &out) in rows.iter().enumerate() {
            let a = faer::Mat::<f64>::from_fn(eqs * n, 2 * parts, |e, k| {
                let (j, im_eq) = (e % n, e >= n);
                let y = inner[[rows[k / parts], j]].to_c64();
                let y = if k % parts == 1 {
                    y * num_complex::Complex::<f64>::i()
                } else {
                    y
                };
                if im_eq {
                    y.im
                } else {
                    y.re
                }
            });
            let b = faer::Mat::<f64>::from_fn(eqs * n, 1, |e, _| {
                let c = target[[out, e % n]].to_c64();
                if e >= n {
                    c.im
                } else {
                    c.re
                }
            });
            let x = a.col_piv_qr().solve_lstsq(&b);
            for k in 0..2 {
                solved[2 * r + k] = if T::IS_COMPLEX {
                    T::from_parts(x[(2 * k, 0)], x[(2 * k + 1, 0)])
                } else {
                    T::from_f64(x[(k, 0)])
                };
            }
        }
        let p = big.params_mut();
        let off = p.len() - (n / 2) * 4 * (m + 1) + top + 4 * q;
        p[off..off + 4].copy_from_slice(&solved);
    }
    rmse(&*big, target, real_part)
}

/// A grown model, its report, and where its polish started relative to the target's RMS entry.
type Grown<T> = (ButterflyProduct<T>, GrowReport, f64);

/// How far a lineage got (larger first), candidates polished, relative start of its last polish.
type LineageScore = (std::cmp::Reverse<usize>, usize, f64);

/// One size of [`learn_by_growing`].
#[derive(Debug, Clone, PartialEq)]
pub struct GrowthStep {
    /// The size.
    pub n: usize,
    /// RMSE reached at this size.
    pub rmse: f64,
    /// Wall time of this size in seconds.
    pub seconds: f64,
    /// The level inserted (`None` at the starting size, learned by [`learn_transform`]).
    pub inserted: Option<Insertion>,
    /// Candidates polished at this size ([`GrowReport::polished`]; at the starting size the
    /// candidates of [`learn_transform`]).
    pub polished: usize,
    /// The report of the best model at this size (`None` when no candidate passed the check).
    pub report: Option<LearnReport>,
}

/// Learn a family of transforms at size `n` by learning its size-`n0` member with
/// [`learn_transform`] (from random initialisation, `structure` with per-level logits, seeded
/// by `opts.seed`) and doubling with [`grow`] (each doubling hinted by the previous one) up to
/// `n`. The size-`n0` member is learned from `tries` seeds (`opts.seed`, then derived ones)
/// and each is doubled three times (or up to `n`); the lineage continued is the one that got
/// furthest with the fewest candidates polished (the tries stop at the first whose every
/// doubling was accepted with its first candidate), then the one whose last doubling started
/// closest to the target (along a fast algorithm's lineage every doubling repeats the
/// previous insertion and is accepted at once from its Cooley–Tukey warm start).
/// `target(m)` is the family's size-`m` member. For BPBP (convolutions) use `n0 = 2`: the
/// size-2 fit is then replaced by the target's diagonalisation, the start of the exact
/// Cooley–Tukey lineage that [`grow`] doubles (a BPBP fitted at a small size from random
/// initialisation factors through an arbitrary inner map, which does not extend). Returns the
/// largest model that reached the target (of size `n` when every doubling succeeded; the last
/// step records a failed doubling) and the [`GrowthStep`]s of that lineage (when no first
/// doubling succeeded, those of the last try that got furthest).
pub fn learn_by_growing<T: Scalar>(
    n0: usize,
    n: usize,
    structure: Structure,
    target: &dyn Fn(usize) -> Result<ndarray::Array2<T>>,
    opts: &LearnOptions,
    tries: usize,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<(ButterflyProduct<T>, Vec<GrowthStep>)> {
    crate::error::check_pow2("n0", n0)?;
    crate::error::check_pow2("n", n)?;
    if n < n0 {
        return Err(Error::InvalidArgument {
            what: "n",
            message: format!("expected at least n0 = {n0}, got {n}"),
        });
    }
    if tries == 0 {
        return Err(Error::Zero { what: "tries" });
    }
    let start = Instant::now();
    let remaining = |o: &LearnOptions| LearnOptions {
        time_limit: opts
            .time_limit
            .map(|t| (t - start.elapsed().as_secs_f64()).max(0.0)),
        ..o.clone()
    };
    let accepts =
        |t: &ndarray::Array2<T>, rmse: f64| rmse <= opts.accept_rel_rmse * rms_entry(t.view());
    let mut offset = 0;
    // One doubling of `model` (of size `size`): the grown model when it reached the target,
    // and the step's record.
    let double = |model: &ButterflyProduct<T>,
                  size: usize,
                  hint: Option<Insertion>,
                  offset: &mut usize,
                  progress: &mut dyn FnMut(usize, f64)|
     -> Result<(Option<Grown<T>>, GrowthStep)> {
        let t1 = Instant::now();
        let big_target = target(2 * size)?;
        let grown = grow(
            model,
            big_target.view(),
            &remaining(opts),
            hint,
            &mut |s, l| progress(*offset + s, l),
        )?;
        let Some((big, g)) = grown else {
            let step = GrowthStep {
                n: 2 * size,
                rmse: f64::NAN,
                seconds: t1.elapsed().as_secs_f64(),
                inserted: None,
                polished: 0,
                report: None,
            };
            return Ok((None, step));
        };
        *offset += g.report.steps;
        let step = GrowthStep {
            n: 2 * size,
            rmse: g.report.rmse,
            seconds: t1.elapsed().as_secs_f64(),
            inserted: Some(g.inserted),
            polished: g.polished,
            report: Some(g.report.clone()),
        };
        let ok = accepts(&big_target, g.report.rmse);
        let start = g.report.hardened_rmse / rms_entry(big_target.view());
        Ok((ok.then_some((big, g, start)), step))
    };
    // Each try: the size-`n0` member and its first `LINEAGE_DOUBLINGS` doublings. The
    // lineage kept is the one that got furthest with the fewest candidates polished (then the
    // closest start of its last accepted polish): along a fast algorithm's lineage each
    // doubling is the previous one's insertion again, accepted at once from its warm start.
    type Lineage<T> = (
        ButterflyProduct<T>,
        Vec<GrowthStep>,
        Option<Insertion>,
        bool,
    );
    let mut chosen: Option<(LineageScore, Lineage<T>)> = None;
    let mut fallback: Option<(ButterflyProduct<T>, Vec<GrowthStep>)> = None;
    for t in 0..tries {
        if t > 0
            && opts
                .time_limit
                .is_some_and(|l| start.elapsed().as_secs_f64() > l)
        {
            break;
        }
        let seed = if t == 0 {
            opts.seed
        } else {
            mix(opts.seed, 0x6000 + t as u64)
        };
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut model =
            ButterflyProduct::<T>::new(n0, structure, opts.init, LogitSharing::PerLevel, &mut rng)?;
        let small = target(n0)?;
        let o = remaining(&LearnOptions {
            seed,
            ..opts.clone()
        });
        let mut rep = learn_transform(&mut model, small.view(), &o, &mut |s, l| {
            progress(offset + s, l)
        })?;
        offset += rep.steps;
        if structure == Structure::Bpbp && n0 == 2 && !opts.real_part {
            if let Some(r) = diagonalize_base(&mut model, small.view())? {
                rep.rmse = r;
            }
        }
        let mut steps = vec![GrowthStep {
            n: n0,
            rmse: rep.rmse,
            seconds: t0.elapsed().as_secs_f64(),
            inserted: None,
            polished: rep.attempts.len(),
            report: Some(rep.clone()),
        }];
        if !accepts(&small, rep.rmse) {
            fallback.get_or_insert((model, steps));
            continue;
        }
        if n == n0 {
            return Ok((model, steps));
        }
        let mut size = n0;
        let mut hint = None;
        let mut polished = 0;
        let mut last_start = f64::INFINITY;
        while size < n && size < n0 << LINEAGE_DOUBLINGS {
            let (grown, step) = double(&model, size, hint, &mut offset, &mut *progress)?;
            polished += step.polished;
            steps.push(step);
            let Some((big, g, start)) = grown else {
                break;
            };
            last_start = start;
            model = big;
            hint = Some(g.inserted);
            size *= 2;
        }
        if size == n0 {
            fallback = Some((model, steps));
            continue;
        }
        let stuck = steps.last().is_some_and(|st| st.n > size);
        let score = (std::cmp::Reverse(size), polished, last_start);
        // Every doubling accepted with its first candidate, as far as the tries go: no later
        // try can get further with fewer candidates.
        let doublings = (size / n0).trailing_zeros() as usize;
        let unbeatable = !stuck && size == n.min(n0 << LINEAGE_DOUBLINGS) && polished == doublings;
        if chosen
            .as_ref()
            .is_none_or(|(best, _)| score.partial_cmp(best) == Some(std::cmp::Ordering::Less))
        {
            chosen = Some((score, (model, steps, hint, stuck)));
        }
        if unbeatable {
            break;
        }
    }
    let Some((_, (mut model, mut steps, mut hint, stuck))) = chosen else {
        return Ok(fallback.expect("tries ≥ 1"));
    };
    if stuck {
        return Ok((model, steps));
    }
    let mut size = model.n();
    while size < n {
        let (grown, step) = double(&model, size, hint, &mut offset, &mut *progress)?;
        steps.push(step);
        let Some((big, g, _)) = grown else {
            break;
        };
        model = big;
        hint = Some(g.inserted);
        size *= 2;
    }
    Ok((model, steps))
}
