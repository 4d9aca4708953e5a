//! Growing a learned `B₂ · P₂ · B₁ · P₁` product (the BPBP structure of Dao et al., ICML 2019,
//! which fits convolutions) to twice its size.
//!
//! A circulant is `A = F⁻¹ Λ F`, and with the Cooley–Tukey step `F₂ₙ = T_W (Fₙ ⊕ Fₙ) S` (`S`
//! the even/odd separation, `T_W` the level of stride `n` with the twiddles `W`) every
//! factorisation `A_n = (B₂ P₂)(B₁ P₁)` whose inner map `M_n = B₁ P₁` is an FFT up to an output
//! diagonal extends exactly: with `M₂ₙ = (M_n ⊕ M_n) S` (the size-`n` twiddles on both halves,
//! an identity top level, a separation inserted on the whole vector of `P₁`), `A₂ₙ M₂ₙ⁻¹ =
//! F⁻¹ Λ T_W (D⁻¹ ⊕ D⁻¹)`, and as `F⁻¹ = conj(B_F) R / 2n` (`R` the bit reversal, which turns
//! the stride-`n` level into a stride-1 level) this is a butterfly times a permutation `P₂`
//! that extends the size-`n` one by one level. So a doubling needs no twiddle search: the
//! candidates for the two inserted levels are scored by how well `A₂ₙ M₂ₙ⁻¹ P₂⁻¹` projects
//! onto a butterfly ([`Butterfly::project`], exact for a butterfly), and the best one gives
//! `B₂` directly; a short polish (L-BFGS) finishes it.

use super::grow::{GrowReport, Insertion};
use super::permutation::{ButterflyProduct, Factor, LearnedPermutation, LogitSharing, Structure};
use super::recipe::{learn_transform, rmse, LearnOptions};
use crate::butterfly::{Butterfly, Permutation};
use crate::error::{check_shape, Error, Result};
use crate::linear_map::{Differentiable, LinearMap};
use crate::scalar::Scalar;
use faer::linalg::solvers::Solve;
use ndarray::{Array2, ArrayView2};
use num_complex::Complex64;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Instant;

/// Projection error (relative) below which a candidate's `B₂` counts as a butterfly, and
/// coupling outside the pairs below which `B₁ · P₁` counts as diagonalising (f64; for `f32`
/// models `1e3 ε` of the scalar when that is larger).
const PROJECTION_TOL: f64 = 1e-6;

pub(super) fn tolerance<T: Scalar>() -> f64 {
    PROJECTION_TOL
        .max(1e3 * crate::scalar::RealScalar::to_f64(<T::Real as num_traits::Float>::epsilon()))
}

/// `opts` for polishing an exact start: L-BFGS only (Adam's normalised first steps would throw
/// it — in f32, short of a 1e-12 target — off the lineage), one candidate, no restarts, with
/// the time left since `start`.
pub(super) fn lbfgs_only(opts: &LearnOptions, start: Instant) -> LearnOptions {
    LearnOptions {
        soft_steps: 0,
        restarts: 1,
        flip_gates: 0,
        polish_restarts: 0,
        gn_iters: 0,
        polish_steps: 0,
        time_limit: opts
            .time_limit
            .map(|t| (t - start.elapsed().as_secs_f64()).max(0.0)),
        ..opts.clone()
    }
}

/// Logit magnitude of a hard gate.
const HARD_LOGIT: f64 = 6.0;

/// The hard permutation of size `n` selected by `gates` (per level, coarsest first).
fn permutation_from_gates(n: usize, gates: &[[bool; 3]]) -> Result<Permutation> {
    let mut rng = StdRng::seed_from_u64(0);
    let mut p = LearnedPermutation::<f64>::new(n, LogitSharing::PerLevel, 0.0, &mut rng)?;
    set_logits(p.params_mut(), gates);
    p.harden();
    Ok(p.to_permutation())
}

fn set_logits<T: Scalar>(logits: &mut [T], gates: &[[bool; 3]]) {
    for (c, level) in logits.chunks_mut(3).zip(gates) {
        for (v, &on) in c.iter_mut().zip(level) {
            *v = T::from_f64(if on { HARD_LOGIT } else { -HARD_LOGIT });
        }
    }
}

/// Hard gates of a hardened permutation's logits.
fn gates_of<T: Scalar>(logits: &[T]) -> Vec<[bool; 3]> {
    logits
        .chunks(3)
        .map(|c| std::array::from_fn(|k| c[k].to_c64().re > 0.0))
        .collect()
}

/// The twiddles of a size-`2·half` increasing-stride butterfly whose inner levels are
/// `small`'s (size `half`) on both halves and whose top level (stride `half`) is the identity.
pub(super) fn doubled_inner<V: Copy>(small: &[V], half: usize, zero: V, one: V) -> Vec<V> {
    let n = 2 * half;
    let m = half.trailing_zeros() as usize;
    let mut tw = vec![zero; (m + 1) * (n / 2) * 4];
    for l in 0..m {
        for q in 0..n / 2 {
            let src = (l * (half / 2) + q % (half / 2)) * 4;
            let dst = (l * (n / 2) + q) * 4;
            tw[dst..dst + 4].copy_from_slice(&small[src..src + 4]);
        }
    }
    for q in 0..n / 2 {
        let t = &mut tw[(m * (n / 2) + q) * 4..(m * (n / 2) + q) * 4 + 4];
        t[0] = one;
        t[3] = one;
    }
    tw
}

type Mat = faer::Mat<Complex64>;

fn to_faer(a: &Array2<Complex64>) -> Mat {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)])
}

/// `A M⁻¹` for square `a`, `m` (through the LU factorisation of `Mᵀ`).
fn right_divide(a: &Mat, m: &Mat) -> Mat {
    let kt = m.transpose().partial_piv_lu().solve(a.transpose());
    kt.transpose().to_owned()
}

/// Relative energy of `c` outside the pairs `(i, i)`, `(i, i ± half)`.
fn off_pair_energy(c: &Mat, half: usize) -> f64 {
    let n = c.nrows();
    let (mut off, mut total) = (0.0, 0.0);
    for j in 0..n {
        for i in 0..n {
            let e = c[(i, j)].norm_sqr();
            total += e;
            if i % half != j % half {
                off += e;
            }
        }
    }
    if total == 0.0 {
        0.0
    } else {
        (off / total).sqrt()
    }
}

/// The top level `T` (stride `half`, flat 2×2 blocks per pair as in [`Butterfly`]) that makes
/// `M₂ₙ = T · M` diagonalise the target, and `A M₂ₙ⁻¹ = k T⁻¹`, from `k = A M⁻¹`: with
/// `M = (M_n ⊕ M_n) S` and `M_n` an FFT up to row scaling and order, `C = M A M⁻¹` only
/// couples the pairs `(i, i + half)`, and the rows of `T`'s block `i` are the left
/// eigenvectors of `C`'s 2×2 block `i`, ordered so that the first has `y₁/y₀` with argument
/// in `(−π, 0]` (the DFT's twiddle `e^{−2πi·i/2n}` of frequency `i`; the other is `−` it, the
/// frequency `i + half`). `None` when `C` is not of that form.
fn diagonalizing_top(m: &Mat, k: &Mat, half: usize, tol: f64) -> Option<(Vec<Complex64>, Mat)> {
    let n = 2 * half;
    let c = m * k;
    if off_pair_energy(&c, half) > tol {
        return None;
    }
    let mut top = vec![Complex64::new(0.0, 0.0); half * 4];
    let mut kt = k.clone();
    for i in 0..half {
        let (c00, c01, c10, c11) = (
            c[(i, i)],
            c[(i, i + half)],
            c[(i + half, i)],
            c[(i + half, i + half)],
        );
        let tr = c00 + c11;
        let det = c00 * c11 - c01 * c10;
        let disc = (tr * tr - det * 4.0).sqrt();
        let lambdas = [(tr + disc) / 2.0, (tr - disc) / 2.0];
        let scale = (c00.norm_sqr() + c01.norm_sqr() + c10.norm_sqr() + c11.norm_sqr()).sqrt();
        if disc.norm() <= 1e-8 * scale {
            return None;
        }
        // Left eigenvectors y C = λ y: y ∝ (c10, λ − c00) or (λ − c11, c01).
        let mut rows = lambdas.map(|l| {
            let (a, b) = (c10, l - c00);
            let (a2, b2) = (l - c11, c01);
            let (y0, y1) = if a.norm_sqr() + b.norm_sqr() >= a2.norm_sqr() + b2.norm_sqr() {
                (a, b)
            } else {
                (a2, b2)
            };
            let norm = (y0.norm_sqr() + y1.norm_sqr()).sqrt();
            [y0 / norm, y1 / norm]
        });
        let arg = |r: &[Complex64; 2]| (r[1] / r[0]).arg();
        let first_is_top = |r: &[Complex64; 2]| {
            let a = arg(r);
            a <= 0.0 && a > -std::f64::consts::PI
        };
        if !first_is_top(&rows[0]) && first_is_top(&rows[1]) {
            rows.swap(0, 1);
        }
        let t = [rows[0][0], rows[0][1], rows[1][0], rows[1][1]];
        top[4 * i..4 * i + 4].copy_from_slice(&t);
        // k T⁻¹ on columns i, i + half.
        let det_t = t[0] * t[3] - t[1] * t[2];
        if det_t.norm() <= 1e-12 {
            return None;
        }
        let inv = [t[3] / det_t, -t[1] / det_t, -t[2] / det_t, t[0] / det_t];
        for r in 0..n {
            let (x, y) = (k[(r, i)], k[(r, i + half)]);
            kt[(r, i)] = x * inv[0] + y * inv[2];
            kt[(r, i + half)] = x * inv[1] + y * inv[3];
        }
    }
    Some((top, kt))
}

/// Grow `small` — a hardened BPBP product (per-level logits, increasing-stride butterflies of
/// one block without bias) fitting the size-`n` member of a family of convolutions — to a
/// model of size `2n` for `target` (see the [module docs](self)). The candidate levels
/// (8 gate settings on the whole vector of `P₁`, every position and gate setting of `P₂`; the
/// previous doubling's `hint` first, then `P₂`'s level on the whole vector) are screened:
/// `P₁`'s by whether `B₁ · P₁` with the diagonalising top level turns the target diagonal,
/// `P₂`'s by the projection error of `B₂`. The first within 1e-6 (f64; `1e3 ε` for f32), or
/// else the best, is completed by [`Butterfly::project`] and polished by [`learn_transform`]
/// (L-BFGS only). Returns `None` when no candidate projects within 1 % (the target is not a
/// circulant of the size-`n` model's lineage).
pub(super) fn grow_bpbp<T: Scalar>(
    small: &ButterflyProduct<T>,
    target: ArrayView2<T>,
    opts: &LearnOptions,
    hint: Option<Insertion>,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<Option<(ButterflyProduct<T>, GrowReport)>> {
    let start = Instant::now();
    let half = small.n();
    let n = 2 * half;
    check_shape("target", target.dim(), (n, n))?;
    let unsupported = || Error::InvalidArgument {
        what: "small",
        message: "expected a hardened BPBP product (per-level logits, increasing-stride \
                  butterflies of one block without bias) fitting the complex target"
            .into(),
    };
    if opts.real_part {
        return Err(unsupported());
    }
    let factors = small.factors();
    let (p1, b1, p2) = match factors.as_slice() {
        [Factor::Permutation(p1), Factor::Butterfly(b1), Factor::Permutation(p2), Factor::Butterfly(b2)]
            if [b1, b2]
                .iter()
                .all(|b| b.nblocks() == 1 && b.increasing_stride() && b.bias().is_none())
                && p1.sharing() == LogitSharing::PerLevel
                && p2.sharing() == LogitSharing::PerLevel
                && p1.is_hard()
                && p2.is_hard() =>
        {
            (p1, b1, p2)
        }
        _ => return Err(unsupported()),
    };
    let (g1, g2) = (gates_of(p1.params()), gates_of(p2.params()));
    let mut inner_tw = doubled_inner(
        &b1.twiddle().iter().map(|v| v.to_c64()).collect::<Vec<_>>(),
        half,
        Complex64::new(0.0, 0.0),
        Complex64::new(1.0, 0.0),
    );
    let a_faer = faer::Mat::<Complex64>::from_fn(n, n, |i, j| target[(i, j)].to_c64());
    let tol = tolerance::<T>();
    let all_gates: Vec<[bool; 3]> = (0..8u8)
        .map(|bits| std::array::from_fn(|k| bits >> k & 1 == 1))
        .collect();
    // Candidates for P₁'s level on the whole vector, the hinted one first.
    let mut first: Vec<[bool; 3]> = all_gates.clone();
    if let Some(g) = hint.and_then(|h| h.inner_gates) {
        first.retain(|x| *x != g);
        first.insert(0, g);
    }
    // Candidates for P₂'s insertion: the hinted one, then on the whole vector, then the rest.
    let mut second: Vec<(usize, [bool; 3])> = (0..=g2.len())
        .flat_map(|l| all_gates.iter().map(move |&g| (l, g)))
        .collect();
    if let Some(h) = hint.filter(|h| h.inner_gates.is_some() && h.level <= g2.len()) {
        second.retain(|x| *x != (h.level, h.gates));
        second.insert(0, (h.level, h.gates));
    }
    let mut candidates = 0;
    let mut passing = 0;
    let mut best: Option<(f64, Insertion, Vec<Complex64>, Butterfly<T>)> = None;
    let mut seen_inner: Vec<Permutation> = Vec::new();
    'search: for gi in &first {
        let mut g1_big = g1.clone();
        g1_big.insert(0, *gi);
        let q1 = permutation_from_gates(n, &g1_big)?;
        if seen_inner.contains(&q1) {
            continue;
        }
        seen_inner.push(q1.clone());
        let inner = Butterfly::<Complex64>::from_twiddle(n, n, 1, true, inner_tw.clone(), None)?
            .with_input_permutation(q1)?;
        let m = to_faer(&inner.to_dense());
        let k = right_divide(&a_faer, &m);
        if !(0..n).all(|j| (0..n).all(|i| k[(i, j)].re.is_finite() && k[(i, j)].im.is_finite())) {
            continue;
        }
        let Some((top, k)) = diagonalizing_top(&m, &k, half, tol) else {
            continue;
        };
        let mut seen_outer: Vec<Permutation> = Vec::new();
        for &(level, g) in &second {
            let mut g2_big = g2.clone();
            g2_big.insert(level, g);
            let q2 = permutation_from_gates(n, &g2_big)?;
            candidates += 1;
            if seen_outer.contains(&q2) {
                continue;
            }
            let gathered = {
                let q = q2.as_slice();
                Array2::from_shape_fn((n, n), |(r, i)| {
                    let z = k[(r, q[i])];
                    T::from_parts(z.re, z.im)
                })
            };
            seen_outer.push(q2);
            let (b2, err) = Butterfly::<T>::project(gathered.view())?;
            let ins = Insertion {
                factor: 1,
                level,
                gates: g,
                replicate_others: false,
                inner_gates: Some(*gi),
            };
            let pass = err <= tol;
            passing += usize::from(pass);
            if best.as_ref().is_none_or(|(e, ..)| err < *e) {
                best = Some((err, ins, top.clone(), b2));
            }
            if pass {
                break 'search;
            }
        }
    }
    let Some((_, ins, top, b2)) = best.filter(|(e, ..)| *e <= 1e-2) else {
        return Ok(None);
    };
    let m = half.trailing_zeros() as usize;
    inner_tw[m * half * 4..].copy_from_slice(&top);
    let mut g1_big = g1.clone();
    g1_big.insert(0, ins.inner_gates.expect("set above"));
    let mut g2_big = g2.clone();
    g2_big.insert(ins.level, ins.gates);
    let mut rng = StdRng::seed_from_u64(0);
    let mut big = ButterflyProduct::<T>::new(
        n,
        Structure::Bpbp,
        opts.init,
        LogitSharing::PerLevel,
        &mut rng,
    )?;
    let ranges = big.logit_ranges();
    {
        let p = big.params_mut();
        set_logits(&mut p[ranges[0].clone()], &g1_big);
        set_logits(&mut p[ranges[1].clone()], &g2_big);
        for (dst, z) in p[ranges[0].end..ranges[1].start].iter_mut().zip(&inner_tw) {
            *dst = T::from_parts(z.re, z.im);
        }
        p[ranges[1].end..].copy_from_slice(b2.twiddle());
    }
    big.harden();
    let warm_rmse = rmse(&big, target, false)?;
    let report = learn_transform(&mut big, target, &lbfgs_only(opts, start), progress)?;
    Ok(Some((
        big,
        GrowReport {
            candidates,
            passing,
            polished: 1,
            inserted: ins,
            report,
            seconds: start.elapsed().as_secs_f64(),
            warm_rmse,
        },
    )))
}

/// Sets the butterflies of a BPBP `model` of size 2 (whose permutations are empty) to the
/// factorisation `A = (A T⁻¹) · T` with `T` the diagonaliser of the 2×2 `target` ordered as the
/// size-2 DFT (the first [`grow_bpbp`] step from size 1), so that doubling it with
/// [`grow_bpbp`] follows the Cooley–Tukey lineage: a BPBP fitted from random initialisation
/// at a small size factors the target through an arbitrary inner map (at N = 2 … 8 there are
/// more twiddles than entries), which does not extend. Returns the RMSE of the result, or
/// `None` (model unchanged) when `target` has a repeated eigenvalue or is not diagonalisable.
pub(super) fn diagonalize_base<T: Scalar>(
    model: &mut ButterflyProduct<T>,
    target: ArrayView2<T>,
) -> Result<Option<f64>> {
    check_shape("target", target.dim(), (2, 2))?;
    if model.n() != 2
        || model
            .factors()
            .iter()
            .filter(|f| matches!(f, Factor::Butterfly(_)))
            .count()
            != 2
    {
        return Err(Error::InvalidArgument {
            what: "model",
            message: "expected a BPBP product of size 2".into(),
        });
    }
    let a = Mat::from_fn(2, 2, |i, j| target[(i, j)].to_c64());
    let Some((top, k)) = diagonalizing_top(&Mat::identity(2, 2), &a, 1, tolerance::<T>()) else {
        return Ok(None);
    };
    let ranges = model.logit_ranges();
    let p = model.params_mut();
    for (dst, z) in p[ranges[0].end..ranges[1].start].iter_mut().zip(&top) {
        *dst = T::from_parts(z.re, z.im);
    }
    let outer = [k[(0, 0)], k[(0, 1)], k[(1, 0)], k[(1, 1)]];
    for (dst, z) in p[ranges[1].end..].iter_mut().zip(&outer) {
        *dst = T::from_parts(z.re, z.im);
    }
    Ok(Some(rmse(&*model, target, false)?))
}
