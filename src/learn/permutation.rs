//! Learned permutations (Dao et al., *Learning Fast Algorithms for Linear Transforms Using
//! Butterfly Factorizations*, ICML 2019, §3.2) and products of butterflies with them.
//!
//! A learned permutation of size `n = 2^m` is `P = P_{m−1} ⋯ P_1`, where level `l` acts on each
//! contiguous block of size `n / 2^{l−1}` (from `n` down to 4) by three gated steps, each a
//! convex combination `x ↦ (1 − p) x + p Π x` with `p = σ(logit)`: `Π` is the even/odd
//! separation, then the reversal of the first half, then the reversal of the second half.
//! With every `p ∈ {0, 1}` it is an exact permutation; separations at every level give the
//! bit-reversal of the FFT.

use crate::butterfly::{Butterfly, ButterflyConfig, Init, Permutation};
use crate::error::{check_apply_shapes_ok, check_cols, check_len, check_pow2, Error, Result};
use crate::linear_map::{Differentiable, LinearMap};
use crate::scalar::Scalar;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rand::Rng;
use rayon::prelude::*;

/// How the logits of a [`LearnedPermutation`] are tied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogitSharing {
    /// One triple of logits (separation, reverse first half, reverse second half) for all
    /// levels: 3 parameters.
    Shared,
    /// One triple per level: `3 (log2 n − 1)` parameters.
    #[default]
    PerLevel,
}

/// A soft permutation `P = P_{m−1} ⋯ P_1` gated by sigmoids of its logits (see the module
/// docs), a convex combination of permutations that [`harden`](Self::harden) rounds to one.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnedPermutation<T: Scalar> {
    n: usize,
    sharing: LogitSharing,
    /// Per level, the gather indices of the three steps over the whole vector.
    steps: Vec<[Vec<usize>; 3]>,
    logits: Vec<T>,
    hard: Option<Vec<bool>>,
    /// Once hardened, the selected permutation as one gather.
    hard_perm: Option<Vec<usize>>,
}

/// The gather indices of one step applied to every block of size `b` of a length-`n` vector.
fn step_indices(n: usize, b: usize, kind: usize) -> Vec<usize> {
    let h = b / 2;
    (0..n)
        .map(|i| {
            let (base, j) = (i - i % b, i % b);
            base + match kind {
                0 if j < h => 2 * j,
                0 => 2 * (j - h) + 1,
                1 if j < h => h - 1 - j,
                2 if j >= h => b - 1 - (j - h),
                _ => j,
            }
        })
        .collect()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl<T: Scalar> LearnedPermutation<T> {
    /// A learned permutation of size `n` (a power of two) with logits drawn from `N(0, std²)`
    /// (`std = 0` starts every gate at `p = 1/2`).
    pub fn new<R: Rng + ?Sized>(
        n: usize,
        sharing: LogitSharing,
        std: f64,
        rng: &mut R,
    ) -> Result<Self> {
        check_pow2("n", n)?;
        if !(std.is_finite() && std >= 0.0) {
            return Err(Error::InvalidArgument {
                what: "std",
                message: format!("expected a finite value ≥ 0, got {std}"),
            });
        }
        let levels = (n.trailing_zeros() as usize).saturating_sub(1);
        let steps = (0..levels)
            .map(|l| std::array::from_fn(|k| step_indices(n, n >> l, k)))
            .collect();
        let count = match sharing {
            LogitSharing::Shared if levels > 0 => 3,
            LogitSharing::Shared => 0,
            LogitSharing::PerLevel => 3 * levels,
        };
        let logits = (0..count)
            .map(|_| T::from_f64(T::randn(rng, std).to_c64().re))
            .collect();
        Ok(Self {
            n,
            sharing,
            steps,
            logits,
            hard: None,
            hard_perm: None,
        })
    }

    /// The size `n`.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Number of levels (`log2 n − 1`; blocks of size `n, n/2, …, 4`).
    pub fn levels(&self) -> usize {
        self.steps.len()
    }
    /// How the logits are tied.
    pub fn sharing(&self) -> LogitSharing {
        self.sharing
    }
    /// Whether the gates have been rounded to 0/1.
    pub fn is_hard(&self) -> bool {
        self.hard.is_some()
    }

    fn logit_index(&self, level: usize, k: usize) -> usize {
        match self.sharing {
            LogitSharing::Shared => k,
            LogitSharing::PerLevel => 3 * level + k,
        }
    }

    /// The gate probabilities `p[level][step]` for the given logits.
    fn probs(&self, logits: &[T]) -> Vec<[f64; 3]> {
        (0..self.levels())
            .map(|l| {
                std::array::from_fn(|k| {
                    let i = self.logit_index(l, k);
                    match &self.hard {
                        Some(h) => f64::from(u8::from(h[i])),
                        None => sigmoid(logits[i].to_c64().re),
                    }
                })
            })
            .collect()
    }

    /// The gate probabilities `σ(logit)` per level and step (0 or 1 once hardened).
    pub fn probabilities(&self) -> Vec<[f64; 3]> {
        self.probs(&self.logits)
    }

    /// Round every gate to 0 or 1 (`logit > 0`); the logits stop receiving gradients and the
    /// map becomes the single gather [`to_permutation`](Self::to_permutation).
    pub fn harden(&mut self) {
        let h: Vec<bool> = self.logits.iter().map(|l| l.to_c64().re > 0.0).collect();
        self.hard = Some(h);
        self.hard_perm = Some(self.compose_hard());
    }

    /// Back to soft gates `σ(logit)` (undoes [`harden`](Self::harden)).
    pub fn soften(&mut self) {
        self.hard = None;
        self.hard_perm = None;
    }

    /// Round with the given logits (used by products that own the parameter buffer).
    fn harden_with(&mut self, logits: &[T]) {
        self.logits.copy_from_slice(logits);
        self.harden();
    }

    /// The gather indices of the permutation selected by the hard gates.
    fn compose_hard(&self) -> Vec<usize> {
        let probs = self.probs(&self.logits);
        let mut perm: Vec<usize> = (0..self.n).collect();
        for (l, steps) in self.steps.iter().enumerate() {
            for (k, idx) in steps.iter().enumerate() {
                if probs[l][k] == 1.0 {
                    perm = idx.iter().map(|&j| perm[j]).collect();
                }
            }
        }
        perm
    }

    /// The exact permutation the gates select once hardened (as a gather, `y[i] = x[perm[i]]`);
    /// before hardening, the one selected by rounding the current gates.
    pub fn to_permutation(&self) -> Permutation {
        let perm = match &self.hard_perm {
            Some(p) => p.clone(),
            None => {
                let mut q = self.clone();
                q.harden();
                q.compose_hard()
            }
        };
        Permutation::new(perm).expect("a composition of permutations")
    }

    /// `x ← P x` for one row (`tmp` is scratch of length `n`), recording the input of every
    /// step into `record` (length `3 · levels · n`) when given.
    fn row_forward(
        &self,
        probs: &[[f64; 3]],
        x: &mut [T],
        tmp: &mut [T],
        mut record: Option<&mut [T]>,
    ) {
        let n = self.n;
        for (l, steps) in self.steps.iter().enumerate() {
            for (k, idx) in steps.iter().enumerate() {
                if let Some(r) = record.as_deref_mut() {
                    let s = 3 * l + k;
                    r[s * n..(s + 1) * n].copy_from_slice(x);
                }
                let p = probs[l][k];
                if p == 0.0 {
                    continue;
                }
                for (t, &j) in tmp.iter_mut().zip(idx) {
                    *t = x[j];
                }
                if p == 1.0 {
                    x.copy_from_slice(tmp);
                } else {
                    let (a, b) = (T::from_f64(1.0 - p), T::from_f64(p));
                    for (xi, &ti) in x.iter_mut().zip(tmp.iter()) {
                        *xi = a * *xi + b * ti;
                    }
                }
            }
        }
    }

    /// `y ← Pᵀ y` for one row (`tmp` is scratch of length `n`).
    fn row_transpose(&self, probs: &[[f64; 3]], y: &mut [T], tmp: &mut [T]) {
        for (l, steps) in self.steps.iter().enumerate().rev() {
            for (k, idx) in steps.iter().enumerate().rev() {
                let p = probs[l][k];
                if p == 0.0 {
                    continue;
                }
                tmp.iter_mut().for_each(|t| *t = T::zero());
                for (&yi, &j) in y.iter().zip(idx) {
                    tmp[j] += yi;
                }
                let (a, b) = (T::from_f64(1.0 - p), T::from_f64(p));
                for (yi, &ti) in y.iter_mut().zip(tmp.iter()) {
                    *yi = a * *yi + b * ti;
                }
            }
        }
    }

    /// `dx` for one row (overwriting `dy`), adding `∂L/∂p` per (level, step) into `dp`;
    /// `rec` (length `3 · levels · n`) and `tmp`, `xs` (length `n`) are scratch.
    #[allow(clippy::too_many_arguments)]
    fn row_backward(
        &self,
        probs: &[[f64; 3]],
        x: &[T],
        dy: &mut [T],
        dp: &mut [[f64; 3]],
        rec: &mut [T],
        tmp: &mut [T],
        xs: &mut [T],
    ) {
        let n = self.n;
        xs.copy_from_slice(x);
        self.row_forward(probs, xs, tmp, Some(rec));
        for (l, steps) in self.steps.iter().enumerate().rev() {
            for (k, idx) in steps.iter().enumerate().rev() {
                let s = 3 * l + k;
                let xin = &rec[s * n..(s + 1) * n];
                let p = probs[l][k];
                let mut g = 0.0;
                for ((d, &xi), &j) in dy.iter().zip(xin).zip(idx) {
                    g += (d.to_c64().conj() * (xin[j] - xi).to_c64()).re;
                }
                dp[l][k] += g;
                if p == 0.0 {
                    continue;
                }
                tmp.iter_mut().for_each(|t| *t = T::zero());
                for (&di, &j) in dy.iter().zip(idx) {
                    tmp[j] += di;
                }
                let (a, b) = (T::from_f64(1.0 - p), T::from_f64(p));
                for (di, &ti) in dy.iter_mut().zip(tmp.iter()) {
                    *di = a * *di + b * ti;
                }
            }
        }
    }

    /// `y = x Pᵀ` (each row permuted) with the given logits.
    fn forward_with(&self, logits: &[T], x: ArrayView2<T>) -> Array2<T> {
        let mut y = x.as_standard_layout().into_owned();
        if let Some(perm) = &self.hard_perm {
            y.axis_iter_mut(Axis(0))
                .into_par_iter()
                .zip(x.axis_iter(Axis(0)))
                .for_each(|(mut row, xr)| {
                    for (yi, &j) in row.iter_mut().zip(perm) {
                        *yi = xr[j];
                    }
                });
            return y;
        }
        let probs = self.probs(logits);
        y.axis_iter_mut(Axis(0)).into_par_iter().for_each_init(
            || vec![T::zero(); self.n],
            |tmp, mut row| {
                let r = row.as_slice_mut().expect("standard layout");
                self.row_forward(&probs, r, tmp, None);
            },
        );
        y
    }

    /// `x = y P` (the transpose map) with the given logits.
    fn transpose_with(&self, logits: &[T], y: ArrayView2<T>) -> Array2<T> {
        if let Some(perm) = &self.hard_perm {
            let mut x = Array2::zeros(y.dim());
            x.axis_iter_mut(Axis(0))
                .into_par_iter()
                .zip(y.axis_iter(Axis(0)))
                .for_each(|(mut row, yr)| {
                    for (&yi, &j) in yr.iter().zip(perm) {
                        row[j] = yi;
                    }
                });
            return x;
        }
        let probs = self.probs(logits);
        let mut x = y.as_standard_layout().into_owned();
        x.axis_iter_mut(Axis(0)).into_par_iter().for_each_init(
            || vec![T::zero(); self.n],
            |tmp, mut row| {
                let r = row.as_slice_mut().expect("standard layout");
                self.row_transpose(&probs, r, tmp);
            },
        );
        x
    }

    /// `dx`, adding `∂L/∂logit` into `grads` (nothing once hardened); rows are reduced in a
    /// fixed order.
    fn backward_with(
        &self,
        logits: &[T],
        x: ArrayView2<T>,
        dy: ArrayView2<T>,
        grads: &mut [T],
    ) -> Array2<T> {
        if self.hard_perm.is_some() {
            return self.transpose_with(logits, dy);
        }
        let probs = self.probs(logits);
        let n = self.n;
        let mut dx = dy.as_standard_layout().into_owned();
        let xs = x.as_standard_layout();
        const CHUNK: usize = 16;
        let partial: Vec<Vec<[f64; 3]>> = dx
            .axis_chunks_iter_mut(Axis(0), CHUNK)
            .into_par_iter()
            .enumerate()
            .map(|(c, mut rows)| {
                let mut dp = vec![[0.0; 3]; self.levels()];
                let mut rec = vec![T::zero(); 3 * self.levels() * n];
                let (mut tmp, mut xbuf) = (vec![T::zero(); n], vec![T::zero(); n]);
                for (r, mut row) in rows.axis_iter_mut(Axis(0)).enumerate() {
                    let xr = xs.row(c * CHUNK + r);
                    let d = row.as_slice_mut().expect("standard layout");
                    let xr = xr.as_slice().expect("standard layout");
                    self.row_backward(&probs, xr, d, &mut dp, &mut rec, &mut tmp, &mut xbuf);
                }
                dp
            })
            .collect();
        for dp in partial {
            for (l, pl) in dp.iter().enumerate() {
                for k in 0..3 {
                    let p = probs[l][k];
                    let i = self.logit_index(l, k);
                    grads[i] += T::from_f64(pl[k] * p * (1.0 - p));
                }
            }
        }
        dx
    }
}

impl<T: Scalar> LinearMap<T> for LearnedPermutation<T> {
    fn in_features(&self) -> usize {
        self.n
    }
    fn out_features(&self) -> usize {
        self.n
    }
    fn apply_into(&self, x: ArrayView2<T>, mut y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.n, self.n, &x, &y)?;
        y.assign(&self.forward_with(&self.logits, x));
        Ok(())
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.n)?;
        Ok(self.transpose_with(&self.logits, y))
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.apply_transpose(y)
    }
    fn to_dense(&self) -> Array2<T> {
        self.forward_with(&self.logits, Array2::eye(self.n).view())
            .reversed_axes()
            .as_standard_layout()
            .into_owned()
    }
    fn num_params(&self) -> usize {
        self.logits.len()
    }
    fn flops_per_row(&self) -> usize {
        let c = if T::IS_COMPLEX { 2 } else { 1 };
        3 * self.levels() * self.n * 3 * c
    }
}

impl<T: Scalar> Differentiable<T> for LearnedPermutation<T> {
    fn backward(&self, x: ArrayView2<T>, dy: ArrayView2<T>, grads: &mut [T]) -> Result<Array2<T>> {
        check_cols("x", x.dim(), self.n)?;
        crate::error::check_shape("dy", dy.dim(), (x.nrows(), self.n))?;
        check_len("grads", grads.len(), self.logits.len())?;
        Ok(self.backward_with(&self.logits, x, dy, grads))
    }
    fn params(&self) -> &[T] {
        &self.logits
    }
    fn params_mut(&mut self) -> &mut [T] {
        &mut self.logits
    }
}

/// A factor of a [`ButterflyProduct`].
#[derive(Debug, Clone, PartialEq)]
pub enum Factor<T: Scalar> {
    /// A square butterfly (any configuration; its parameters are learned).
    Butterfly(Butterfly<T>),
    /// A learned permutation.
    Permutation(LearnedPermutation<T>),
}

impl<T: Scalar> Factor<T> {
    fn len(&self) -> usize {
        match self {
            Factor::Butterfly(b) => b.params().len(),
            Factor::Permutation(p) => p.params().len(),
        }
    }
}

/// The structures of the 2019 paper, written left to right as matrices (the rightmost factor
/// is applied first): `BP` (a butterfly after a learned permutation), `BPP`, and `BPBP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Structure {
    /// `B · P`.
    #[default]
    Bp,
    /// `B · P₂ · P₁`.
    Bpp,
    /// `B₂ · P₂ · B₁ · P₁`.
    Bpbp,
}

impl std::str::FromStr for Structure {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "bp" => Ok(Structure::Bp),
            "bpp" => Ok(Structure::Bpp),
            "bpbp" => Ok(Structure::Bpbp),
            _ => Err(Error::InvalidArgument {
                what: "structure",
                message: format!("expected bp, bpp or bpbp, got {s:?}"),
            }),
        }
    }
}

/// A product `F_k ⋯ F_1` of square butterflies and learned permutations of one size `n`
/// (Dao et al., ICML 2019), differentiable in all twiddles and logits, which live in one flat
/// buffer laid out factor by factor in application order (`F_1` first).
#[derive(Debug, Clone, PartialEq)]
pub struct ButterflyProduct<T: Scalar> {
    n: usize,
    factors: Vec<Factor<T>>,
    offsets: Vec<usize>,
    params: Vec<T>,
}

impl<T: Scalar> ButterflyProduct<T> {
    /// The product of `factors`, listed in application order (`factors[0]` acts first). Every
    /// factor must be square of the same size `n` (butterflies: `in = out = n`, a power of two).
    pub fn from_factors(factors: Vec<Factor<T>>) -> Result<Self> {
        let first = factors.first().ok_or(Error::Zero { what: "factors" })?;
        let n = match first {
            Factor::Butterfly(b) => b.in_features(),
            Factor::Permutation(p) => p.n(),
        };
        check_pow2("n", n)?;
        let mut offsets = vec![0];
        let mut params = Vec::new();
        for f in &factors {
            let (i, o, p) = match f {
                Factor::Butterfly(b) => (b.in_features(), b.out_features(), b.params()),
                Factor::Permutation(q) => (q.n(), q.n(), q.params()),
            };
            if i != n || o != n {
                return Err(Error::Shape {
                    what: "factor",
                    expected: format!("({n}, {n})"),
                    got: format!("({o}, {i})"),
                });
            }
            params.extend_from_slice(p);
            offsets.push(params.len());
        }
        Ok(Self {
            n,
            factors,
            offsets,
            params,
        })
    }

    /// `structure` of size `n` from random initialisation: butterflies with increasing stride,
    /// no bias and `init`; permutations with logits `N(0, 1)` tied by `sharing`.
    pub fn new<R: Rng + ?Sized>(
        n: usize,
        structure: Structure,
        init: Init,
        sharing: LogitSharing,
        rng: &mut R,
    ) -> Result<Self> {
        check_pow2("n", n)?;
        let cfg = ButterflyConfig {
            nblocks: 1,
            increasing_stride: true,
            init,
            bias: false,
        };
        let bfly = |rng: &mut R| -> Result<Factor<T>> {
            Ok(Factor::Butterfly(Butterfly::new(n, n, cfg, rng)?))
        };
        let perm = |rng: &mut R| -> Result<Factor<T>> {
            Ok(Factor::Permutation(LearnedPermutation::new(
                n, sharing, 1.0, rng,
            )?))
        };
        let factors = match structure {
            Structure::Bp => vec![perm(rng)?, bfly(rng)?],
            Structure::Bpp => vec![perm(rng)?, perm(rng)?, bfly(rng)?],
            Structure::Bpbp => vec![perm(rng)?, bfly(rng)?, perm(rng)?, bfly(rng)?],
        };
        Self::from_factors(factors)
    }

    /// The size `n`.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The factors in application order, with their current parameters.
    pub fn factors(&self) -> Vec<Factor<T>> {
        let mut out = self.factors.clone();
        for (i, f) in out.iter_mut().enumerate() {
            let p = &self.params[self.offsets[i]..self.offsets[i + 1]];
            match f {
                Factor::Butterfly(b) => b.params_mut().copy_from_slice(p),
                Factor::Permutation(q) => q.params_mut().copy_from_slice(p),
            }
        }
        out
    }

    /// The parameter ranges of the learned permutations' logits.
    pub fn logit_ranges(&self) -> Vec<std::ops::Range<usize>> {
        self.factors
            .iter()
            .enumerate()
            .filter(|(_, f)| matches!(f, Factor::Permutation(_)))
            .map(|(i, _)| self.offsets[i]..self.offsets[i + 1])
            .collect()
    }

    /// Whether parameter `i` is a permutation logit (for masks: weight decay, frozen sets).
    pub fn logit_mask(&self) -> Vec<bool> {
        let mut m = vec![false; self.params.len()];
        for r in self.logit_ranges() {
            m[r].iter_mut().for_each(|v| *v = true);
        }
        m
    }

    /// Round every learned permutation to an exact one (see [`LearnedPermutation::harden`]).
    pub fn harden(&mut self) {
        for (i, f) in self.factors.iter_mut().enumerate() {
            if let Factor::Permutation(q) = f {
                q.harden_with(&self.params[self.offsets[i]..self.offsets[i + 1]]);
            }
        }
    }

    /// Back to soft gates in every learned permutation.
    pub fn soften(&mut self) {
        for f in &mut self.factors {
            if let Factor::Permutation(q) = f {
                q.soften();
            }
        }
    }

    /// Fresh random parameters, keeping the structure: every butterfly redrawn with `init`
    /// (same blocks and stride order, zero bias), every logit from `N(0, logit_std²)`, all
    /// permutations soft again.
    pub fn randomize<R: Rng + ?Sized>(
        &mut self,
        init: Init,
        logit_std: f64,
        rng: &mut R,
    ) -> Result<()> {
        self.soften();
        for (i, f) in self.factors.iter().enumerate() {
            let fresh: Vec<T> = match f {
                Factor::Butterfly(b) => {
                    let cfg = ButterflyConfig {
                        nblocks: b.nblocks(),
                        increasing_stride: b.increasing_stride(),
                        init,
                        bias: b.bias().is_some(),
                    };
                    Butterfly::<T>::new(b.in_features(), b.out_features(), cfg, rng)?
                        .params()
                        .to_vec()
                }
                Factor::Permutation(q) => {
                    LearnedPermutation::<T>::new(q.n(), q.sharing(), logit_std, rng)?
                        .params()
                        .to_vec()
                }
            };
            self.params[self.offsets[i]..self.offsets[i + 1]].copy_from_slice(&fresh);
        }
        Ok(())
    }

    /// Fresh random twiddles for every butterfly (drawn with `init`, zero bias), keeping the
    /// permutations' logits and hardness: a restart of the polish at a fixed permutation.
    pub fn randomize_twiddles<R: Rng + ?Sized>(&mut self, init: Init, rng: &mut R) -> Result<()> {
        for (i, f) in self.factors.iter().enumerate() {
            if let Factor::Butterfly(b) = f {
                let cfg = ButterflyConfig {
                    nblocks: b.nblocks(),
                    increasing_stride: b.increasing_stride(),
                    init,
                    bias: b.bias().is_some(),
                };
                let fresh = Butterfly::<T>::new(b.in_features(), b.out_features(), cfg, rng)?;
                self.params[self.offsets[i]..self.offsets[i + 1]].copy_from_slice(fresh.params());
            }
        }
        Ok(())
    }

    /// For a product `B · P_k ⋯ P_1` (see [`rounded_permutation`](Self::rounded_permutation)),
    /// fresh random twiddles (drawn with `init`) for the rows that only the outputs
    /// `k ≡ r (mod 2^d)` depend on: in an increasing-stride butterfly, level `l` fixes bit `l`
    /// of the output index, so a 2×2 block's row at level `l ≥ d − 1` whose output position
    /// is `≡ r (mod 2^d)` feeds no other output. `d = 0` redraws every twiddle. A restart of
    /// the polish that keeps the outputs already fitted.
    pub fn randomize_output_class<R: Rng + ?Sized>(
        &mut self,
        r: usize,
        d: usize,
        init: Init,
        rng: &mut R,
    ) -> Result<()> {
        let n = self.n;
        let m = n.trailing_zeros() as usize;
        if d > m {
            return Err(Error::InvalidArgument {
                what: "d",
                message: format!("expected at most log2 n = {m}, got {d}"),
            });
        }
        if r >= 1 << d {
            return Err(Error::InvalidArgument {
                what: "r",
                message: format!("expected a residue below 2^d = {}, got {r}", 1usize << d),
            });
        }
        let Some(Factor::Butterfly(b)) = self.factors.last() else {
            return Err(self.not_bp());
        };
        if self.rounded_permutation(&self.params).is_none() {
            return Err(self.not_bp());
        }
        let cfg = ButterflyConfig {
            nblocks: 1,
            increasing_stride: true,
            init,
            bias: false,
        };
        let fresh = Butterfly::<T>::new(b.in_features(), b.out_features(), cfg, rng)?;
        let off = self.offsets[self.factors.len() - 1];
        let mask = (1usize << d) - 1;
        for l in d.saturating_sub(1)..m {
            let s = 1usize << l;
            for p in 0..n / 2 {
                let a = (p / s) * 2 * s + p % s;
                for (row, pos) in [(0usize, a), (1, a + s)] {
                    if pos & mask == r {
                        let t = ((l * (n / 2) + p) * 2 + row) * 2;
                        self.params[off + t..off + t + 2]
                            .copy_from_slice(&fresh.params()[t..t + 2]);
                    }
                }
            }
        }
        Ok(())
    }

    fn not_bp(&self) -> Error {
        Error::InvalidArgument {
            what: "model",
            message: "expected a product B · P ⋯ P (one increasing-stride butterfly of one \
                      block without bias, applied last)"
                .into(),
        }
    }

    /// For a product `B · P_k ⋯ P_1` (learned permutations first, then one increasing-stride
    /// butterfly of one block without bias), the composite permutation `P_k ⋯ P_1` (as a
    /// gather) that rounding the logits in `params` selects; `None` for other structures.
    pub fn rounded_permutation(&self, params: &[T]) -> Option<Permutation> {
        let (last, perms) = self.factors.split_last()?;
        match last {
            Factor::Butterfly(b)
                if b.nblocks() == 1 && b.increasing_stride() && b.bias().is_none() => {}
            _ => return None,
        }
        let mut q: Vec<usize> = (0..self.n).collect();
        for (i, f) in perms.iter().enumerate() {
            let Factor::Permutation(p) = f else {
                return None;
            };
            let mut p = p.clone();
            p.harden_with(&params[self.offsets[i]..self.offsets[i + 1]]);
            let g = p.hard_perm.as_ref().expect("hardened");
            q = g.iter().map(|&j| q[j]).collect();
        }
        Permutation::new(q).ok()
    }

    /// Whether every learned permutation is hardened.
    pub fn is_hard(&self) -> bool {
        self.factors.iter().all(|f| match f {
            Factor::Permutation(q) => q.is_hard(),
            Factor::Butterfly(_) => true,
        })
    }

    /// The exact permutations selected (in application order), rounding soft gates.
    pub fn permutations(&self) -> Vec<Permutation> {
        self.factors()
            .iter()
            .filter_map(|f| match f {
                Factor::Permutation(q) => Some(q.to_permutation()),
                Factor::Butterfly(_) => None,
            })
            .collect()
    }

    fn factor_params(&self, i: usize) -> &[T] {
        &self.params[self.offsets[i]..self.offsets[i + 1]]
    }

    fn butterfly_with(&self, b: &Butterfly<T>, i: usize) -> Butterfly<T> {
        let mut b = b.clone();
        b.params_mut().copy_from_slice(self.factor_params(i));
        b
    }

    fn forward(
        &self,
        x: ArrayView2<T>,
        mut record: Option<&mut Vec<Array2<T>>>,
    ) -> Result<Array2<T>> {
        let mut cur = x.to_owned();
        for (i, f) in self.factors.iter().enumerate() {
            let next = match f {
                Factor::Butterfly(b) => self.butterfly_with(b, i).apply(cur.view())?,
                Factor::Permutation(q) => q.forward_with(self.factor_params(i), cur.view()),
            };
            if let Some(r) = record.as_deref_mut() {
                r.push(cur);
            }
            cur = next;
        }
        Ok(cur)
    }
}

impl<T: Scalar> LinearMap<T> for ButterflyProduct<T> {
    fn in_features(&self) -> usize {
        self.n
    }
    fn out_features(&self) -> usize {
        self.n
    }
    fn apply_into(&self, x: ArrayView2<T>, mut y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.n, self.n, &x, &y)?;
        y.assign(&self.forward(x, None)?);
        Ok(())
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.n)?;
        let mut cur = y.to_owned();
        for (i, f) in self.factors.iter().enumerate().rev() {
            cur = match f {
                Factor::Butterfly(b) => self.butterfly_with(b, i).apply_transpose(cur.view())?,
                Factor::Permutation(q) => q.transpose_with(self.factor_params(i), cur.view()),
            };
        }
        Ok(cur)
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.n)?;
        let mut cur = y.to_owned();
        for (i, f) in self.factors.iter().enumerate().rev() {
            cur = match f {
                Factor::Butterfly(b) => self.butterfly_with(b, i).apply_adjoint(cur.view())?,
                Factor::Permutation(q) => q.transpose_with(self.factor_params(i), cur.view()),
            };
        }
        Ok(cur)
    }
    fn to_dense(&self) -> Array2<T> {
        self.forward(Array2::eye(self.n).view(), None)
            .expect("shapes checked at construction")
            .reversed_axes()
            .as_standard_layout()
            .into_owned()
    }
    fn num_params(&self) -> usize {
        self.params.len()
    }
    fn flops_per_row(&self) -> usize {
        self.factors()
            .iter()
            .map(|f| match f {
                Factor::Butterfly(b) => b.flops_per_row(),
                Factor::Permutation(q) => q.flops_per_row(),
            })
            .sum()
    }
}

impl<T: Scalar> Differentiable<T> for ButterflyProduct<T> {
    fn backward(&self, x: ArrayView2<T>, dy: ArrayView2<T>, grads: &mut [T]) -> Result<Array2<T>> {
        check_cols("x", x.dim(), self.n)?;
        crate::error::check_shape("dy", dy.dim(), (x.nrows(), self.n))?;
        check_len("grads", grads.len(), self.params.len())?;
        let mut inputs = Vec::with_capacity(self.factors.len());
        self.forward(x, Some(&mut inputs))?;
        let mut g = dy.to_owned();
        for (i, f) in self.factors.iter().enumerate().rev() {
            let gr = &mut grads[self.offsets[i]..self.offsets[i + 1]];
            let xin = inputs[i].view();
            g = match f {
                Factor::Butterfly(b) => self.butterfly_with(b, i).backward(xin, g.view(), gr)?,
                Factor::Permutation(q) => q.backward_with(self.factor_params(i), xin, g.view(), gr),
            };
        }
        Ok(g)
    }
    fn params(&self) -> &[T] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }
}

impl<T: Scalar> Factor<T> {
    /// Number of parameters of the factor.
    pub fn num_params(&self) -> usize {
        self.len()
    }
}
