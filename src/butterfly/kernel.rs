//! The butterfly multiply engine.
//!
//! A batch is processed in tiles of [`LANES`] rows, transposed into a work buffer of `n` *lane
//! rows* (`w[i]` holds coordinate `i` of every batch row of the tile). A complex lane row is
//! stored split, `LANES` real parts then `LANES` imaginary parts, so all arithmetic is on
//! contiguous real vectors. A level with stride `s` mixes lane rows `(a, a + s)` by one 2×2
//! block broadcast over the lanes: the inner loop is a fused multiply-add over contiguous
//! values whatever the stride, and each twiddle is read once per tile instead of once per row.
//!
//! Levels are fused into *passes* so that a tile crosses the cache hierarchy only once per
//! pass: a run of levels whose strides are `2^p, …, 2^(q-1)` only mixes rows that agree outside
//! bits `p..q` of their index, so the tile splits into independent groups of `2^(q-p)` rows
//! (times `c` neighbouring rows, which share the same pattern) that stay in L1 while every
//! level of the pass is applied to them.
//!
//! The loops are compiled three times — for the baseline target, for AVX2+FMA and for
//! AVX-512 — and the widest one the CPU supports is picked at run time.

use crate::scalar::{RealScalar, Scalar};

mod transpose;
pub(crate) use transpose::{gather, scatter};

/// Rows of a batch processed together (the lane count of the work buffer).
pub(crate) const LANES: usize = 32;

/// Reals in one lane row: `LANES` for real scalars, `2·LANES` (real parts, then imaginary
/// parts) for complex ones.
pub(crate) const fn width<T: Scalar>() -> usize {
    if T::IS_COMPLEX {
        2 * LANES
    } else {
        LANES
    }
}

/// Bytes of a group's working set during a fused pass: about L1d, rounded to lane rows by a
/// power of two (on a Zen 5 with 48 KiB L1d, 64 KiB measured faster than 16 and 32 KiB for
/// n ≥ 4096 and no slower below: fewer passes over L2 outweigh some L1 misses).
const L1_BUDGET: usize = 64 * 1024;

/// A buffer of reals taken from a per-thread pool and returned to it when dropped, so that
/// repeated calls reuse warm memory instead of faulting in fresh pages for every tile. Its
/// contents start unspecified (zero when newly allocated).
pub(crate) struct Buf<R: RealScalar> {
    v: Vec<R>,
}

thread_local! {
    static POOL: std::cell::RefCell<Vec<Box<dyn std::any::Any>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Buffers kept per thread.
const POOL_SIZE: usize = 8;

impl<R: RealScalar> Buf<R> {
    /// A buffer of `len` reals.
    pub(crate) fn take(len: usize) -> Self {
        let found = POOL.with(|p| {
            let mut p = p.borrow_mut();
            let i = p.iter().position(|b| {
                b.downcast_ref::<Vec<R>>()
                    .is_some_and(|v| v.capacity() >= len)
            })?;
            p.swap_remove(i).downcast::<Vec<R>>().ok()
        });
        let mut v = found.map_or_else(Vec::new, |b| *b);
        v.resize(len, R::zero());
        Self { v }
    }
}

impl<R: RealScalar> Drop for Buf<R> {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.v);
        if v.capacity() > 0 {
            // A thread being torn down has no pool left; the buffer is then simply freed.
            let _ = POOL.try_with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < POOL_SIZE {
                    p.push(Box::new(v));
                }
            });
        }
    }
}

impl<R: RealScalar> std::ops::Deref for Buf<R> {
    type Target = [R];
    fn deref(&self) -> &[R] {
        &self.v
    }
}

impl<R: RealScalar> std::ops::DerefMut for Buf<R> {
    fn deref_mut(&mut self) -> &mut [R] {
        &mut self.v
    }
}

/// Value of lane `k` of lane row `i`.
#[inline(always)]
pub(crate) fn get<T: Scalar>(w: &[T::Real], i: usize, k: usize) -> T {
    let wd = width::<T>();
    let re = w[i * wd + k];
    if T::IS_COMPLEX {
        T::from_parts(re.to_f64(), w[i * wd + LANES + k].to_f64())
    } else {
        T::from_real(re)
    }
}

/// Set lane `k` of lane row `i`.
#[inline(always)]
pub(crate) fn set<T: Scalar>(w: &mut [T::Real], i: usize, k: usize, v: T) {
    let wd = width::<T>();
    w[i * wd + k] = v.re();
    if T::IS_COMPLEX {
        w[i * wd + LANES + k] = v.im();
    }
}

/// Which matrix a level applies: its 2×2 blocks `t`, `tᵀ` or `t*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Forward,
    Transpose,
    Adjoint,
}

/// One butterfly level: the stride and the `n/2 × 4` block entries (`[t00, t01, t10, t11]` per
/// pair, pairs ordered by block then offset within the stride).
pub(crate) struct Level<'a, T> {
    pub stride: usize,
    pub tw: &'a [T],
}

impl<T> Clone for Level<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Level<'_, T> {}

/// Index of the pair whose first row is `a` in a level of stride `s` (a power of two):
/// `⌊a / 2s⌋·s + a mod s`.
#[inline(always)]
fn pair_index(a: usize, s: usize) -> usize {
    ((a >> 1) & !(s - 1)) | (a & (s - 1))
}

/// Reals per pair in a prepared level: the four block entries, as `(re, im)` for complex
/// scalars. (A three-multiplication complex product, `k = cr(xr + xi)`,
/// `c·x = (k − xi(cr + ci)) + i(k + xr(ci − cr))`, was measured slower here: the FMA units are
/// not the bottleneck, the extra coefficient loads are.)
const fn coefs(complex: bool) -> usize {
    if complex {
        8
    } else {
        4
    }
}

/// The levels of a map with their blocks in the form the kernel reads: the mode applied once
/// per call instead of once per tile, complex entries in the three-multiplication form.
pub(crate) struct Prepared<R: RealScalar> {
    strides: Vec<usize>,
    coef: Buf<R>,
    per_level: usize,
}

/// Prepare `levels` (of a size-`n` butterfly) for [`run_levels`] with `mode` blocks.
pub(crate) fn prepare<T: Scalar>(
    levels: &[Level<'_, T>],
    n: usize,
    mode: Mode,
) -> Prepared<T::Real> {
    let e = coefs(T::IS_COMPLEX);
    let per_level = n / 2 * e;
    let mut coef = Buf::take(per_level * levels.len());
    let out = coef.chunks_exact_mut(e);
    for (t, o) in levels.iter().flat_map(|lv| lv.tw.chunks_exact(4)).zip(out) {
        let c = match mode {
            Mode::Forward => [t[0], t[1], t[2], t[3]],
            Mode::Transpose => [t[0], t[2], t[1], t[3]],
            Mode::Adjoint => [t[0].conj(), t[2].conj(), t[1].conj(), t[3].conj()],
        };
        if T::IS_COMPLEX {
            for (o, z) in o.chunks_exact_mut(2).zip(c) {
                o[0] = z.re();
                o[1] = z.im();
            }
        } else {
            for (o, z) in o.iter_mut().zip(c) {
                *o = z.re();
            }
        }
    }
    Prepared {
        strides: levels.iter().map(|l| l.stride).collect(),
        coef,
        per_level,
    }
}

impl<R: RealScalar> Prepared<R> {
    fn level(&self, l: usize) -> PLevel<'_, R> {
        PLevel {
            stride: self.strides[l],
            coef: &self.coef[l * self.per_level..(l + 1) * self.per_level],
        }
    }

    fn levels(&self) -> Vec<PLevel<'_, R>> {
        (0..self.strides.len()).map(|l| self.level(l)).collect()
    }
}

/// One prepared level.
struct PLevel<'a, R> {
    stride: usize,
    coef: &'a [R],
}

impl<R> Clone for PLevel<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for PLevel<'_, R> {}

impl<'a, R> PLevel<'a, R> {
    /// The prepared blocks of the `count` pairs starting with the one whose first row is `a`.
    #[inline(always)]
    fn run<const C: bool>(self, a: usize, count: usize) -> &'a [R] {
        let e = coefs(C);
        let i = pair_index(a, self.stride);
        &self.coef[e * i..e * (i + count)]
    }
}

/// `a·b + c`, fused (one rounding) where the instruction set has FMA, plain otherwise.
trait MulAdd {
    fn mul_add<R: RealScalar>(a: R, b: R, c: R) -> R;
}

struct Fused;
struct Unfused;

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add<R: RealScalar>(a: R, b: R, c: R) -> R {
        num_traits::Float::mul_add(a, b, c)
    }
}

impl MulAdd for Unfused {
    #[inline(always)]
    fn mul_add<R: RealScalar>(a: R, b: R, c: R) -> R {
        a * b + c
    }
}

// The lane arithmetic below is written as whole-lane-row operations with trivial loops, which
// the compiler turns into one vector instruction each; every helper must be inlined into the
// `#[target_feature]` entry points (a call that is not would run without FMA).

/// The lanes of one lane row (or of its real or imaginary half).
type Lanes<R> = [R; LANES];

/// Split complex lanes: real parts, imaginary parts.
type CLanes<R> = (Lanes<R>, Lanes<R>);

/// `s·x` lane by lane.
#[inline(always)]
fn lmul<R: RealScalar>(s: R, x: &Lanes<R>) -> Lanes<R> {
    let mut y = *x;
    for v in y.iter_mut() {
        *v = s * *v;
    }
    y
}

/// `s·x + acc` lane by lane.
#[inline(always)]
fn lfma<R: RealScalar, A: MulAdd>(s: R, x: &Lanes<R>, mut acc: Lanes<R>) -> Lanes<R> {
    for (v, &u) in acc.iter_mut().zip(x) {
        *v = A::mul_add(s, u, *v);
    }
    acc
}

/// `(c0 a + c1 b, c2 a + c3 b)` on real lanes.
#[inline(always)]
fn bf_real<R: RealScalar, A: MulAdd>(c: &[R], a: &Lanes<R>, b: &Lanes<R>) -> (Lanes<R>, Lanes<R>) {
    (
        lfma::<R, A>(c[0], a, lmul(c[1], b)),
        lfma::<R, A>(c[2], a, lmul(c[3], b)),
    )
}

/// `(c0 a + c1 b, c2 a + c3 b)` on split complex lanes, `c = [c0r, c0i, …, c3r, c3i]`.
#[inline(always)]
fn bf_complex<R: RealScalar, A: MulAdd>(
    c: &[R],
    a: &CLanes<R>,
    b: &CLanes<R>,
) -> (CLanes<R>, CLanes<R>) {
    (cdot::<R, A>(&c[..4], a, b), cdot::<R, A>(&c[4..8], a, b))
}

/// `u·a + v·b` on split complex lanes, `c = [ur, ui, vr, vi]`.
#[inline(always)]
fn cdot<R: RealScalar, A: MulAdd>(c: &[R], a: &CLanes<R>, b: &CLanes<R>) -> CLanes<R> {
    let re = lmul(c[0], &a.0);
    let re = lfma::<R, A>(-c[1], &a.1, re);
    let re = lfma::<R, A>(c[2], &b.0, re);
    let re = lfma::<R, A>(-c[3], &b.1, re);
    let im = lmul(c[0], &a.1);
    let im = lfma::<R, A>(c[1], &a.0, im);
    let im = lfma::<R, A>(c[2], &b.1, im);
    let im = lfma::<R, A>(c[3], &b.0, im);
    (re, im)
}

#[inline(always)]
fn load_real<R: RealScalar>(x: &[R]) -> Lanes<R> {
    x.try_into().expect("lane row")
}

#[inline(always)]
fn load_complex<R: RealScalar>(x: &[R]) -> CLanes<R> {
    let (re, im) = x.split_at(LANES);
    (
        re.try_into().expect("lane row"),
        im.try_into().expect("lane row"),
    )
}

#[inline(always)]
fn store_real<R: RealScalar>(x: &mut [R], v: &Lanes<R>) {
    x.copy_from_slice(v);
}

#[inline(always)]
fn store_complex<R: RealScalar>(x: &mut [R], v: &CLanes<R>) {
    let (re, im) = x.split_at_mut(LANES);
    re.copy_from_slice(&v.0);
    im.copy_from_slice(&v.1);
}

/// The prepared blocks `coef` on the `count` lane-row pairs `(ra + j, rb + j)`.
#[inline(always)]
fn pairs<R: RealScalar, const C: bool, A: MulAdd>(
    w: &mut [R],
    ra: usize,
    rb: usize,
    count: usize,
    coef: &[R],
) {
    let wd = if C { 2 * LANES } else { LANES };
    let e = coefs(C);
    let (lo, hi) = w.split_at_mut(rb * wd);
    let a = &mut lo[ra * wd..(ra + count) * wd];
    let b = &mut hi[..count * wd];
    for ((a, b), c) in a
        .chunks_exact_mut(wd)
        .zip(b.chunks_exact_mut(wd))
        .zip(coef.chunks_exact(e))
    {
        if C {
            let (ya, yb) = bf_complex::<R, A>(c, &load_complex(a), &load_complex(b));
            store_complex(a, &ya);
            store_complex(b, &yb);
        } else {
            let (ya, yb) = bf_real::<R, A>(c, &load_real(a), &load_real(b));
            store_real(a, &ya);
            store_real(b, &yb);
        }
    }
}

/// Levels `l1`, `l2` (strides `s1 ≠ s2`) on the `count` quads of lane rows
/// `(a, a + s1, a + s2, a + s1 + s2) + j`, `j < count ≤ min(s1, s2)`, kept in registers between
/// the two levels.
#[inline(always)]
fn quads<R: RealScalar, const C: bool, A: MulAdd>(
    w: &mut [R],
    a: usize,
    l1: PLevel<'_, R>,
    l2: PLevel<'_, R>,
    count: usize,
) {
    let wd = if C { 2 * LANES } else { LANES };
    let e = coefs(C);
    let (s1, s2) = (l1.stride, l2.stride);
    let (lo, hi) = (s1.min(s2), s1.max(s2));
    // Rows in memory order: a, a + lo, a + hi, a + lo + hi.
    let (r0, rest) = w[a * wd..].split_at_mut(lo * wd);
    let (r1, rest) = rest.split_at_mut((hi - lo) * wd);
    let (r2, r3) = rest.split_at_mut(lo * wd);
    let (m0, m3) = (&mut r0[..count * wd], &mut r3[..count * wd]);
    let (mlo, mhi) = (&mut r1[..count * wd], &mut r2[..count * wd]);
    // (x0, x1, x2, x3) = (a, a + s1, a + s2, a + s1 + s2).
    let (m1, m2) = if s1 < s2 { (mlo, mhi) } else { (mhi, mlo) };
    let (ta, tb) = (l1.run::<C>(a, count), l1.run::<C>(a + s2, count));
    let (tc, td) = (l2.run::<C>(a, count), l2.run::<C>(a + s1, count));
    for j in 0..count {
        let t = e * j..e * (j + 1);
        let (ca, cb, cc, cd) = (&ta[t.clone()], &tb[t.clone()], &tc[t.clone()], &td[t]);
        let r = j * wd..(j + 1) * wd;
        let (x0, x1) = (&mut m0[r.clone()], &mut m1[r.clone()]);
        let (x2, x3) = (&mut m2[r.clone()], &mut m3[r]);
        if C {
            let (y0, y1) = bf_complex::<R, A>(ca, &load_complex(x0), &load_complex(x1));
            let (y2, y3) = bf_complex::<R, A>(cb, &load_complex(x2), &load_complex(x3));
            let (z0, z2) = bf_complex::<R, A>(cc, &y0, &y2);
            let (z1, z3) = bf_complex::<R, A>(cd, &y1, &y3);
            store_complex(x0, &z0);
            store_complex(x1, &z1);
            store_complex(x2, &z2);
            store_complex(x3, &z3);
        } else {
            let (y0, y1) = bf_real::<R, A>(ca, &load_real(x0), &load_real(x1));
            let (y2, y3) = bf_real::<R, A>(cb, &load_real(x2), &load_real(x3));
            let (z0, z2) = bf_real::<R, A>(cc, &y0, &y2);
            let (z1, z3) = bf_real::<R, A>(cd, &y1, &y3);
            store_real(x0, &z0);
            store_real(x1, &z1);
            store_real(x2, &z2);
            store_real(x3, &z3);
        }
    }
}

/// A run of consecutive levels whose strides lie in `2^p .. 2^q`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pass {
    start: usize,
    end: usize,
    p: usize,
    q: usize,
}

/// Cut levels with these `strides` into passes whose groups of `2^(q-p)` rows fit in
/// `2^group_log` lane rows, with spans balanced across passes.
fn plan_passes(strides: &[usize], log_n: usize, group_log: usize) -> Vec<Pass> {
    if strides.is_empty() {
        return Vec::new();
    }
    let bits: Vec<usize> = strides
        .iter()
        .map(|s| s.trailing_zeros() as usize)
        .collect();
    let span_cap = if log_n <= group_log {
        log_n.max(1)
    } else {
        let npass = log_n.div_ceil(group_log.max(1));
        log_n.div_ceil(npass)
    };
    let mut passes = Vec::new();
    let mut start = 0;
    let (mut lo, mut hi) = (bits[0], bits[0]);
    for (i, &b) in bits.iter().enumerate().skip(1) {
        let (nlo, nhi) = (lo.min(b), hi.max(b));
        if nhi - nlo < span_cap {
            (lo, hi) = (nlo, nhi);
        } else {
            passes.push(Pass {
                start,
                end: i,
                p: lo,
                q: hi + 1,
            });
            start = i;
            (lo, hi) = (b, b);
        }
    }
    passes.push(Pass {
        start,
        end: bits.len(),
        p: lo,
        q: hi + 1,
    });
    passes
}

/// The levels of a pass taken two at a time (as quads) where consecutive strides differ.
type Step<'a, R> = (PLevel<'a, R>, Option<PLevel<'a, R>>);

fn steps<'a, R>(levels: &[PLevel<'a, R>]) -> Vec<Step<'a, R>> {
    let mut out = Vec::with_capacity(levels.len());
    let mut i = 0;
    while i < levels.len() {
        match levels.get(i + 1) {
            Some(&l2) if l2.stride != levels[i].stride => {
                out.push((levels[i], Some(l2)));
                i += 2;
            }
            _ => {
                out.push((levels[i], None));
                i += 1;
            }
        }
    }
    out
}

/// Where a tile's input comes from when it is not already in the work tile: lane row `i`
/// starts as lane row `perm[i]` (or `i`) of `tile`. Filling each group of the first pass just
/// before it is processed keeps the permuted copy in L1 (scattered stores into a tile larger
/// than L1 are several times slower).
#[derive(Clone, Copy)]
pub(crate) struct Source<'a, R> {
    pub tile: &'a [R],
    pub perm: Option<&'a [usize]>,
}

impl<R: RealScalar> Source<'_, R> {
    /// Fill lane rows `rows` of `w` (rows of `wd` reals).
    #[inline(always)]
    fn fill(&self, w: &mut [R], rows: std::ops::Range<usize>, wd: usize) {
        match self.perm {
            None => {
                let r = rows.start * wd..rows.end * wd;
                w[r.clone()].copy_from_slice(&self.tile[r]);
            }
            Some(p) => {
                for i in rows {
                    let j = p[i];
                    w[i * wd..(i + 1) * wd].copy_from_slice(&self.tile[j * wd..(j + 1) * wd]);
                }
            }
        }
    }
}

#[inline(always)]
fn run_pass<R: RealScalar, const C: bool, A: MulAdd>(
    w: &mut [R],
    n: usize,
    levels: &[PLevel<'_, R>],
    pass: Pass,
    group_rows: usize,
    src: Option<Source<'_, R>>,
) {
    let wd = if C { 2 * LANES } else { LANES };
    let Pass { p, q, .. } = pass;
    let steps = steps(levels);
    if p == 0 {
        // Groups are contiguous blocks of 2^q rows.
        let gsize = 1usize << q;
        for base in (0..n).step_by(gsize) {
            if let Some(src) = src {
                src.fill(w, base..base + gsize, wd);
            }
            for &(l1, l2) in &steps {
                match l2 {
                    None => {
                        let s = l1.stride;
                        for a in (base..base + gsize).step_by(2 * s) {
                            pairs::<R, C, A>(w, a, a + s, s, l1.run::<C>(a, s));
                        }
                    }
                    Some(l2) => {
                        let lo = l1.stride.min(l2.stride);
                        let hi = l1.stride.max(l2.stride);
                        for h in (base..base + gsize).step_by(2 * hi) {
                            for a in (h..h + hi).step_by(2 * lo) {
                                quads::<R, C, A>(w, a, l1, l2, lo);
                            }
                        }
                    }
                }
            }
        }
    } else {
        // Groups are rows hi·2^q + m·2^p + c0 + c (m < 2^(q-p), c < cw): the cw neighbouring
        // rows of each m share twiddle pattern and are contiguous in memory.
        let mcount = 1usize << (q - p);
        let cw = (group_rows >> (q - p)).clamp(1, 1 << p);
        for hi in (0..n).step_by(1 << q) {
            for c0 in (0..1usize << p).step_by(cw) {
                if let Some(src) = src {
                    for m in 0..mcount {
                        let a = hi + (m << p) + c0;
                        src.fill(w, a..a + cw, wd);
                    }
                }
                for &(l1, l2) in &steps {
                    match l2 {
                        None => {
                            let s = l1.stride;
                            let sm = s >> p;
                            for mb in (0..mcount).step_by(2 * sm) {
                                for m in mb..mb + sm {
                                    let a = hi + (m << p) + c0;
                                    pairs::<R, C, A>(w, a, a + s, cw, l1.run::<C>(a, cw));
                                }
                            }
                        }
                        Some(l2) => {
                            let lo = l1.stride.min(l2.stride) >> p;
                            let him = l1.stride.max(l2.stride) >> p;
                            for h in (0..mcount).step_by(2 * him) {
                                for mb in (h..h + him).step_by(2 * lo) {
                                    for m in mb..mb + lo {
                                        let a = hi + (m << p) + c0;
                                        quads::<R, C, A>(w, a, l1, l2, cw);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// log2 of the lane rows of a pass's group: as many as fit in [`L1_BUDGET`].
fn group_log<T: Scalar>() -> usize {
    let row_bytes = width::<T>() * std::mem::size_of::<T::Real>();
    (L1_BUDGET / row_bytes).max(2).ilog2() as usize
}

#[inline(always)]
fn run_prepared<R: RealScalar, const C: bool, A: MulAdd>(
    w: &mut [R],
    src: Option<Source<'_, R>>,
    prep: &Prepared<R>,
    group_log: usize,
) {
    let wd = if C { 2 * LANES } else { LANES };
    let n = w.len() / wd;
    let log_n = n.trailing_zeros() as usize;
    let levels = prep.levels();
    let passes = plan_passes(&prep.strides, log_n, group_log);
    if passes.is_empty() {
        if let Some(src) = src {
            src.fill(w, 0..n, wd);
        }
    }
    for (i, pass) in passes.into_iter().enumerate() {
        let lv = &levels[pass.start..pass.end];
        let src = if i == 0 { src } else { None };
        run_pass::<R, C, A>(w, n, lv, pass, 1 << group_log, src);
    }
}

#[inline(always)]
fn run_levels_generic<T: Scalar, A: MulAdd>(
    w: &mut [T::Real],
    src: Option<Source<'_, T::Real>>,
    prep: &Prepared<T::Real>,
    group_log: usize,
) {
    if T::IS_COMPLEX {
        run_prepared::<T::Real, true, A>(w, src, prep, group_log)
    } else {
        run_prepared::<T::Real, false, A>(w, src, prep, group_log)
    }
}

/// Backward through one level: `g` holds `∂L/∂ȳ` on entry and `∂L/∂x̄` on exit, `x` is the
/// level's input; the block gradients `g_y · x̄ᵀ` are added into `dtw`.
#[inline(always)]
fn level_backward<T: Scalar, A: MulAdd>(
    g: &mut [T::Real],
    x: &[T::Real],
    s: usize,
    tw: &[T],
    dtw: &mut [T],
) {
    let wd = width::<T>();
    let zero = <T::Real as num_traits::Zero>::zero();
    for (blk, (gc, xc)) in g
        .chunks_exact_mut(2 * s * wd)
        .zip(x.chunks_exact(2 * s * wd))
        .enumerate()
    {
        let (glo, ghi) = gc.split_at_mut(s * wd);
        let (xlo, xhi) = xc.split_at(s * wd);
        let pairs = glo
            .chunks_exact_mut(wd)
            .zip(ghi.chunks_exact_mut(wd))
            .zip(xlo.chunks_exact(wd).zip(xhi.chunks_exact(wd)));
        for (j, ((ga, gb), (xa, xb))) in pairs.enumerate() {
            let pi = blk * s + j;
            let t = &tw[4 * pi..4 * pi + 4];
            let d = &mut dtw[4 * pi..4 * pi + 4];
            if T::IS_COMPLEX {
                let c = [t[0], t[1], t[2], t[3]].map(|z| (z.re(), z.im()));
                // Per-lane partial sums of g·x̄ for the four entries, real then imaginary.
                let mut acc = [[zero; LANES]; 8];
                for k in 0..LANES {
                    let (gar, gai, gbr, gbi) = (ga[k], ga[LANES + k], gb[k], gb[LANES + k]);
                    let (xar, xai, xbr, xbi) = (xa[k], xa[LANES + k], xb[k], xb[LANES + k]);
                    let prods = [
                        (gar, gai, xar, xai),
                        (gar, gai, xbr, xbi),
                        (gbr, gbi, xar, xai),
                        (gbr, gbi, xbr, xbi),
                    ];
                    for (q, (gr, gi, xr, xi)) in prods.into_iter().enumerate() {
                        acc[q][k] = A::mul_add(gi, xi, A::mul_add(gr, xr, acc[q][k]));
                        acc[4 + q][k] = A::mul_add(-gr, xi, A::mul_add(gi, xr, acc[4 + q][k]));
                    }
                    // x̄-gradient: conj(tᵀ) g.
                    let cm = |u: (T::Real, T::Real), v: (T::Real, T::Real)| {
                        let re = A::mul_add(
                            v.1,
                            gbi,
                            A::mul_add(v.0, gbr, A::mul_add(u.1, gai, u.0 * gar)),
                        );
                        let im = A::mul_add(
                            -v.1,
                            gbr,
                            A::mul_add(v.0, gbi, A::mul_add(-u.1, gar, u.0 * gai)),
                        );
                        (re, im)
                    };
                    let (nar, nai) = cm(c[0], c[2]);
                    let (nbr, nbi) = cm(c[1], c[3]);
                    ga[k] = nar;
                    ga[LANES + k] = nai;
                    gb[k] = nbr;
                    gb[LANES + k] = nbi;
                }
                for q in 0..4 {
                    let re: T::Real = acc[q].iter().copied().sum();
                    let im: T::Real = acc[4 + q].iter().copied().sum();
                    d[q] += T::from_parts(re.to_f64(), im.to_f64());
                }
            } else {
                let c = [t[0], t[1], t[2], t[3]].map(|z| z.re());
                let mut acc = [[zero; LANES]; 4];
                for k in 0..LANES {
                    let (ya, yb) = (ga[k], gb[k]);
                    let (ua, ub) = (xa[k], xb[k]);
                    acc[0][k] = A::mul_add(ya, ua, acc[0][k]);
                    acc[1][k] = A::mul_add(ya, ub, acc[1][k]);
                    acc[2][k] = A::mul_add(yb, ua, acc[2][k]);
                    acc[3][k] = A::mul_add(yb, ub, acc[3][k]);
                    ga[k] = A::mul_add(c[0], ya, c[2] * yb);
                    gb[k] = A::mul_add(c[1], ya, c[3] * yb);
                }
                for q in 0..4 {
                    d[q] += T::from_real(acc[q].iter().copied().sum());
                }
            }
        }
    }
}

/// Forward through the levels (prepared in `prep` for the forward mode, raw in `levels`) while
/// saving every level's input into `acts` (`levels.len()` tiles), then backward from `g`; level
/// `l`'s block gradients are added into `dtw[l·2n .. (l+1)·2n]`.
#[inline(always)]
fn forward_backward_generic<T: Scalar, A: MulAdd>(
    w: &mut [T::Real],
    acts: &mut [T::Real],
    g: &mut [T::Real],
    prep: &Prepared<T::Real>,
    levels: &[Level<'_, T>],
    dtw: &mut [T],
) {
    let len = w.len();
    let n = len / width::<T>();
    let level_len = n / 2 * 4;
    let log_n = n.trailing_zeros() as usize;
    let whole = Pass {
        start: 0,
        end: 1,
        p: 0,
        q: log_n,
    };
    for l in 0..levels.len() {
        acts[l * len..(l + 1) * len].copy_from_slice(w);
        let lv = [prep.level(l)];
        if T::IS_COMPLEX {
            run_pass::<T::Real, true, A>(w, n, &lv, whole, n, None);
        } else {
            run_pass::<T::Real, false, A>(w, n, &lv, whole, n, None);
        }
    }
    for (l, lv) in levels.iter().enumerate().rev() {
        let d = &mut dtw[l * level_len..(l + 1) * level_len];
        level_backward::<T, A>(g, &acts[l * len..(l + 1) * len], lv.stride, lv.tw, d);
    }
}

macro_rules! dispatch {
    ($generic:ident, $avx2:ident, $avx512:ident, ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx2<T: Scalar>($($arg: $ty),*) {
            $generic::<T, Fused>($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn $avx512<T: Scalar>($($arg: $ty),*) {
            $generic::<T, Fused>($($arg),*)
        }
    };
}

dispatch!(
    run_levels_generic,
    run_levels_avx2,
    run_levels_avx512,
    (
        w: &mut [T::Real],
        src: Option<Source<'_, T::Real>>,
        prep: &Prepared<T::Real>,
        group_log: usize
    )
);
dispatch!(
    forward_backward_generic,
    forward_backward_avx2,
    forward_backward_avx512,
    (
        w: &mut [T::Real],
        acts: &mut [T::Real],
        g: &mut [T::Real],
        prep: &Prepared<T::Real>,
        levels: &[Level<'_, T>],
        dtw: &mut [T]
    )
);

/// The widest instruction set the CPU supports among those the kernel is compiled for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Isa {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

#[inline]
fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        let fma = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        if fma && std::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if fma {
            return Isa::Avx2;
        }
    }
    Isa::Baseline
}

/// Apply the prepared levels in order to the tile `w` (`n` lane rows of [`width`] reals),
/// taking its input from `src` when given (else from `w` itself).
pub(crate) fn run_levels<T: Scalar>(
    w: &mut [T::Real],
    src: Option<Source<'_, T::Real>>,
    prep: &Prepared<T::Real>,
) {
    run_levels_grouped::<T>(w, src, prep, group_log::<T>())
}

/// [`run_levels`] with passes whose groups hold at most `2^group_log` lane rows.
fn run_levels_grouped<T: Scalar>(
    w: &mut [T::Real],
    src: Option<Source<'_, T::Real>>,
    prep: &Prepared<T::Real>,
    group_log: usize,
) {
    if let Some(s) = src {
        assert!(
            s.tile.len() == w.len() && s.perm.is_none_or(|p| p.len() * width::<T>() == w.len())
        );
    }
    match isa() {
        // SAFETY: the CPU supports the instruction sets the variant is compiled for.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { run_levels_avx512::<T>(w, src, prep, group_log) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { run_levels_avx2::<T>(w, src, prep, group_log) },
        Isa::Baseline => run_levels_generic::<T, Unfused>(w, src, prep, group_log),
    }
}

/// Forward through `levels` from `w`, then backward from `g` (left holding `∂L/∂x̄`); `prep`
/// holds the same levels prepared for [`Mode::Forward`], `acts` room for `levels.len()` tiles.
pub(crate) fn forward_backward<T: Scalar>(
    w: &mut [T::Real],
    acts: &mut [T::Real],
    g: &mut [T::Real],
    prep: &Prepared<T::Real>,
    levels: &[Level<'_, T>],
    dtw: &mut [T],
) {
    match isa() {
        // SAFETY: the CPU supports the instruction sets the variant is compiled for.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { forward_backward_avx512(w, acts, g, prep, levels, dtw) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { forward_backward_avx2(w, acts, g, prep, levels, dtw) },
        Isa::Baseline => forward_backward_generic::<T, Unfused>(w, acts, g, prep, levels, dtw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalar::{C32, C64};
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// The levels of `nblocks` alternating blocks on `n = 2^log_n`, with random twiddles.
    fn random_levels<T: Scalar>(
        log_n: usize,
        nblocks: usize,
        increasing: bool,
        rng: &mut StdRng,
    ) -> Vec<(usize, Vec<T>)> {
        let n = 1usize << log_n;
        let mut out = Vec::new();
        for b in 0..nblocks {
            for l in 0..log_n {
                let s = if (b % 2 == 0) == increasing {
                    1 << l
                } else {
                    n >> (l + 1)
                };
                out.push((s, (0..2 * n).map(|_| T::randn(rng, 0.7)).collect()));
            }
        }
        out
    }

    fn random_tile<T: Scalar>(n: usize, rng: &mut StdRng) -> Vec<T::Real> {
        let mut w = vec![<T::Real as num_traits::Zero>::zero(); n * width::<T>()];
        for i in 0..n {
            for k in 0..LANES {
                set(&mut w, i, k, T::randn(rng, 1.0));
            }
        }
        w
    }

    /// Level by level, pair by pair, in complex f64: `v[i][k]`.
    fn reference<T: Scalar>(
        w: &[T::Real],
        levels: &[(usize, Vec<T>)],
        mode: Mode,
    ) -> Vec<Vec<C64>> {
        let n = w.len() / width::<T>();
        let mut v: Vec<Vec<C64>> = (0..n)
            .map(|i| (0..LANES).map(|k| get::<T>(w, i, k).to_c64()).collect())
            .collect();
        for (s, tw) in levels {
            for p in 0..n / 2 {
                let a = (p / s) * 2 * s + p % s;
                let b = a + s;
                let t: Vec<C64> = tw[4 * p..4 * p + 4].iter().map(|z| z.to_c64()).collect();
                let c = match mode {
                    Mode::Forward => [t[0], t[1], t[2], t[3]],
                    Mode::Transpose => [t[0], t[2], t[1], t[3]],
                    Mode::Adjoint => [t[0], t[2], t[1], t[3]].map(|z| z.conj()),
                };
                let (lo, hi) = v.split_at_mut(b);
                for (ya, yb) in lo[a].iter_mut().zip(hi[0].iter_mut()) {
                    let (xa, xb) = (*ya, *yb);
                    *ya = c[0] * xa + c[1] * xb;
                    *yb = c[2] * xa + c[3] * xb;
                }
            }
        }
        v
    }

    /// Largest |fast − reference| over the tile, relative to the largest reference value.
    fn tile_err<T: Scalar>(w: &[T::Real], want: &[Vec<C64>]) -> f64 {
        let scale = want.iter().flatten().map(|z| z.norm()).fold(1.0, f64::max);
        let mut err = 0.0f64;
        for (i, row) in want.iter().enumerate() {
            for (k, z) in row.iter().enumerate() {
                err = err.max((get::<T>(w, i, k).to_c64() - z).norm());
            }
        }
        err / scale
    }

    /// Passes with groups of at most `2^group_log` rows, on every instruction set variant
    /// this CPU has and on the baseline one, against the level-by-level reference.
    fn check_levels<T: Scalar>(
        log_n: usize,
        nblocks: usize,
        increasing: bool,
        mode: Mode,
        group_log: usize,
        seed: u64,
        tol: f64,
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let lv = random_levels::<T>(log_n, nblocks, increasing, &mut rng);
        let levels: Vec<Level<'_, T>> = lv.iter().map(|(s, tw)| Level { stride: *s, tw }).collect();
        let w0 = random_tile::<T>(1 << log_n, &mut rng);
        let want = reference::<T>(&w0, &lv, mode);
        let prep = prepare(&levels, 1 << log_n, mode);
        let mut w = w0.clone();
        run_levels_grouped::<T>(&mut w, None, &prep, group_log);
        let e = tile_err::<T>(&w, &want);
        assert!(
            e < tol,
            "dispatched: {} n=2^{log_n} group 2^{group_log}: {e}",
            T::NAME
        );
        let mut w = w0.clone();
        run_levels_generic::<T, Unfused>(&mut w, None, &prep, group_log);
        let e = tile_err::<T>(&w, &want);
        assert!(
            e < tol,
            "baseline: {} n=2^{log_n} group 2^{group_log}: {e}",
            T::NAME
        );
        // The same from a permuted source tile: lane row i starts as source row perm[i].
        let n = 1usize << log_n;
        let mut perm: Vec<usize> = (0..n).collect();
        rand::seq::SliceRandom::shuffle(perm.as_mut_slice(), &mut rng);
        let wd = width::<T>();
        let mut shuffled = w0.clone();
        for (i, &j) in perm.iter().enumerate() {
            shuffled[j * wd..(j + 1) * wd].copy_from_slice(&w0[i * wd..(i + 1) * wd]);
        }
        let zero = <T::Real as num_traits::Zero>::zero();
        for (src_perm, tile) in [(Some(perm.as_slice()), &shuffled), (None, &w0)] {
            let mut w = vec![zero; w0.len()];
            let src = Source {
                tile,
                perm: src_perm,
            };
            run_levels_grouped::<T>(&mut w, Some(src), &prep, group_log);
            let e = tile_err::<T>(&w, &want);
            assert!(
                e < tol,
                "from source: {} n=2^{log_n} group 2^{group_log}: {e}",
                T::NAME
            );
        }
    }

    fn mode_of(m: u8) -> Mode {
        [Mode::Forward, Mode::Transpose, Mode::Adjoint][m as usize % 3]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn fused_passes_match_level_by_level(
            log_n in 0usize..9,
            nblocks in 1usize..4,
            increasing: bool,
            mode in 0u8..3,
            group_log in 1usize..10,
            seed: u64,
        ) {
            let mode = mode_of(mode);
            check_levels::<f64>(log_n, nblocks, increasing, mode, group_log, seed, 1e-12);
            check_levels::<C64>(log_n, nblocks, increasing, mode, group_log, seed, 1e-12);
            check_levels::<f32>(log_n, nblocks, increasing, mode, group_log, seed, 1e-4);
            check_levels::<C32>(log_n, nblocks, increasing, mode, group_log, seed, 1e-4);
        }

        #[test]
        fn passes_cover_levels_within_budget(
            log_n in 1usize..14,
            nblocks in 1usize..4,
            increasing: bool,
            group_log in 1usize..10,
        ) {
            let mut rng = StdRng::seed_from_u64(0);
            let lv = random_levels::<f32>(log_n, nblocks, increasing, &mut rng);
            let levels: Vec<Level<'_, f32>> = lv
                .iter()
                .map(|(s, tw)| Level { stride: *s, tw })
                .collect();
            let strides: Vec<usize> = levels.iter().map(|l| l.stride).collect();
            let passes = plan_passes(&strides, log_n, group_log);
            prop_assert_eq!(passes[0].start, 0);
            prop_assert_eq!(passes.last().map(|p| p.end), Some(levels.len()));
            for w in passes.windows(2) {
                prop_assert_eq!(w[0].end, w[1].start);
            }
            for p in &passes {
                prop_assert!(p.start < p.end);
                prop_assert!(p.q - p.p <= group_log.max(1) || log_n <= group_log);
                for l in &levels[p.start..p.end] {
                    let b = l.stride.trailing_zeros() as usize;
                    prop_assert!(p.p <= b && b < p.q);
                }
            }
        }
    }

    #[test]
    fn fused_passes_at_full_size() {
        for (log_n, nblocks, inc) in [(12, 1, true), (13, 2, false), (11, 3, true)] {
            check_levels::<f32>(
                log_n,
                nblocks,
                inc,
                Mode::Forward,
                group_log::<f32>(),
                1,
                2e-4,
            );
            check_levels::<C32>(
                log_n,
                nblocks,
                inc,
                Mode::Adjoint,
                group_log::<C32>(),
                2,
                2e-4,
            );
        }
        check_levels::<C64>(10, 2, true, Mode::Transpose, group_log::<C64>(), 3, 1e-12);
    }

    /// `gather` then `scatter` against element-by-element moves, for `rows` batch rows,
    /// `ncols` columns and a tile of `nlane` lane rows.
    fn check_transposes<T: Scalar>(rows: usize, ncols: usize, extra: usize, bias: bool, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let nlane = ncols + extra;
        let mut order: Vec<usize> = (0..nlane).collect();
        rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rng);
        let map = &order[..ncols];
        let x: Vec<Vec<T>> = (0..rows)
            .map(|_| (0..ncols).map(|_| T::randn(&mut rng, 1.0)).collect())
            .collect();
        let zero = <T::Real as num_traits::Zero>::zero();
        let mut w = vec![zero; nlane * width::<T>()];
        let refs: Vec<&[T]> = x.iter().map(|r| r.as_slice()).collect();
        gather(&refs, map, &mut w);
        for i in 0..nlane {
            for k in 0..LANES {
                let want = match map.iter().position(|&d| d == i) {
                    Some(j) => x.get(k).map_or(T::zero(), |r| r[j]),
                    None => T::zero(),
                };
                assert_eq!(
                    get::<T>(&w, i, k),
                    want,
                    "gather {} lane row {i} lane {k}",
                    T::NAME
                );
            }
        }
        let w = random_tile::<T>(nlane, &mut rng);
        let b: Option<Vec<T>> = bias.then(|| (0..ncols).map(|_| T::randn(&mut rng, 1.0)).collect());
        let mut y: Vec<Vec<T>> = vec![vec![T::zero(); ncols]; rows];
        let mut outs: Vec<&mut [T]> = y.iter_mut().map(|r| r.as_mut_slice()).collect();
        scatter(&w, map, b.as_deref(), &mut outs);
        for (k, row) in y.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let u = get::<T>(&w, map[j], k);
                let want = b.as_ref().map_or(u, |b| u + b[j]);
                assert_eq!(v, want, "scatter {} row {k} column {j}", T::NAME);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn transposes_move_every_value(
            rows in 1usize..=LANES,
            ncols in 1usize..80,
            extra in 0usize..20,
            bias: bool,
            seed: u64,
        ) {
            check_transposes::<f32>(rows, ncols, extra, bias, seed);
            check_transposes::<C32>(rows, ncols, extra, bias, seed);
            check_transposes::<f64>(rows, ncols, extra, bias, seed);
            check_transposes::<C64>(rows, ncols, extra, bias, seed);
        }
    }
}
