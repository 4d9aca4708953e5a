//! [`MonarchFft`]: the DFT of size `M = f₁·f₂⋯f_r` as a product of block-diagonal dense DFT
//! blocks and twiddle diagonals (the four-step / Monarch factorisation
//! `F_M = P (I ⊗ F_{f₁}) Pᵀ D (I ⊗ F_{M/f₁}) P`, applied recursively; Dao et al., *Monarch*,
//! ICML 2022; Fu et al., *FlashFFTConv*, 2023), computed as batched small complex GEMMs.
//!
//! The output is left in digit-reversed order (slot `p` holds frequency `freq_at(p)`), which is
//! all a convolution needs; the inverse takes that order back to natural order. The blocks are
//! plain matrices, so they can be learned (the long-conv paper's learned butterfly).

use super::block_kernel::{
    apply_level, as_reals, as_reals_mut, grad_level, twiddle_planes, PostTwiddle, PreparedBlock,
};
use super::long_conv::HalfTransform;
use super::{fr, ConvFloat};
use crate::error::{Error, Result};
use ndarray::{ArrayView2, ArrayViewMut2};
use num_complex::Complex;
use rand::Rng;
use std::sync::OnceLock;

/// Smallest and largest supported complex sizes: `2^7 … 2^21` (real convolution FFT sizes
/// `N = 2^8 … 2^22`, i.e. 256 … 4M). Below 128 a transform is one block and nothing is gained
/// over a single dense matmul or rustfft; above 2^21 points the f32 round-off of the
/// recursively multiplied twiddles no longer meets the 1e-5 accuracy target with margin, and
/// the per-signal scratch (one buffer per level) outgrows the caches this design targets.
pub const MIN_LOG2: u32 = 7;
/// See [`MIN_LOG2`].
pub const MAX_LOG2: u32 = 21;

/// Which set of blocks: those of the forward transform or of the inverse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockSet {
    Forward,
    Inverse,
}

/// The Monarch-factored complex DFT of a power-of-two size in `2^7 … 2^21`.
#[derive(Clone, Debug)]
pub struct MonarchFft<T: ConvFloat> {
    m: usize,
    factors: Vec<usize>,
    /// `M_i = f_i·f_{i+1}⋯f_r`, the sub-problem size at level `i`.
    sub: Vec<usize>,
    fwd: Vec<Vec<Complex<T>>>,
    inv: Vec<Vec<Complex<T>>>,
    /// The twiddle after each level but the last (`M_i` values), as duplicated real/imaginary
    /// planes for the kernels.
    tw_planes: Vec<(Vec<T>, Vec<T>)>,
    freq_at: Vec<u32>,
    pos_of: Vec<u32>,
    /// The blocks in the kernels' layouts; reset by every `&mut self` access to the blocks.
    prepared: OnceLock<Prepared<T>>,
}

/// Each level's forward and inverse block and their adjoints, laid out for the kernels.
#[derive(Clone, Debug)]
struct Prepared<T> {
    fwd: Vec<PreparedBlock<T>>,
    inv: Vec<PreparedBlock<T>>,
    fwd_adj: Vec<PreparedBlock<T>>,
    inv_adj: Vec<PreparedBlock<T>>,
}

/// No pruning: every row of every level.
const FULL: (usize, usize) = (usize::MAX, usize::MAX);

fn omega(num: usize, den: usize, sign: f64) -> Complex<f64> {
    let a = sign * 2.0 * std::f64::consts::PI * ((num % den) as f64) / den as f64;
    Complex::new(a.cos(), a.sin())
}

fn c<T: ConvFloat>(z: Complex<f64>) -> Complex<T> {
    Complex::new(fr::<T>(z.re), fr::<T>(z.im))
}

/// Split `e ≥ 7` (the log₂ size) into blocks of 16, with the remainder `e mod 4` as one
/// smaller block (2, 4 or 8) in second place: dense blocks cost `f` complex multiply-adds per
/// point and level, so `16` balances arithmetic (`f/log₂f` per halving) against memory passes;
/// a 16 first lets a zero-padded input skip half of the first level (and a half-needed output
/// half of the inverse's last), and the small block before the last keeps every level but
/// the last a long-stride one (SIMD along `j`); for `e = 7` the 8 is the (row) last level.
fn split_log2(e: u32) -> Vec<u32> {
    let mut v = vec![4; (e / 4) as usize];
    if !e.is_multiple_of(4) {
        v.insert(1.min(v.len()), e % 4);
    }
    v
}

impl<T: ConvFloat> MonarchFft<T> {
    /// The exact DFT of size `m` (a power of two in `2^7 … 2^21`).
    pub fn new(m: usize) -> Result<Self> {
        if !m.is_power_of_two() || !((1 << MIN_LOG2)..=(1 << MAX_LOG2)).contains(&m) {
            return Err(Error::InvalidArgument {
                what: "fft size",
                message: format!(
                    "must be a power of two in {} ..= {}, got {m}",
                    1usize << MIN_LOG2,
                    1usize << MAX_LOG2
                ),
            });
        }
        let factors: Vec<usize> = split_log2(m.trailing_zeros())
            .into_iter()
            .map(|e| 1usize << e)
            .collect();
        let r = factors.len();
        let mut sub = vec![1usize; r];
        let mut acc = 1;
        for i in (0..r).rev() {
            acc *= factors[i];
            sub[i] = acc;
        }
        let fwd: Vec<Vec<Complex<T>>> = factors
            .iter()
            .map(|&f| {
                (0..f * f)
                    .map(|idx| c(omega((idx / f) * (idx % f), f, -1.0)))
                    .collect()
            })
            .collect();
        let inv = fwd
            .iter()
            .map(|b| b.iter().map(|z| z.conj()).collect())
            .collect();
        let tw: Vec<Vec<Complex<T>>> = (0..r)
            .map(|i| {
                if i + 1 == r {
                    return Vec::new();
                }
                let mp = sub[i] / factors[i];
                (0..sub[i])
                    .map(|idx| c(omega((idx / mp) * (idx % mp), sub[i], -1.0)))
                    .collect()
            })
            .collect();
        // freq_i(k1·mp + p') = k1 + f_i·freq_{i+1}(p'), the last level in natural order.
        let mut freq: Vec<u32> = (0..factors[r - 1] as u32).collect();
        for i in (0..r - 1).rev() {
            let (f, mp) = (factors[i], sub[i] / factors[i]);
            let mut next = vec![0u32; sub[i]];
            for (p, o) in next.iter_mut().enumerate() {
                *o = (p / mp) as u32 + (f as u32) * freq[p % mp];
            }
            freq = next;
        }
        let tw_planes = tw.iter().map(|w| twiddle_planes(w)).collect();
        let mut pos_of = vec![0u32; m];
        for (p, &k) in freq.iter().enumerate() {
            pos_of[k as usize] = p as u32;
        }
        Ok(MonarchFft {
            m,
            factors,
            sub,
            fwd,
            inv,
            tw_planes,
            freq_at: freq,
            pos_of,
            prepared: OnceLock::new(),
        })
    }

    /// The transform size `M`.
    pub fn len(&self) -> usize {
        self.m
    }

    /// Never empty; present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The block sizes `f₁, …, f_r` (product `M`).
    pub fn factors(&self) -> &[usize] {
        &self.factors
    }

    /// Block `level` (`f × f`, row-major) of the forward or inverse transform.
    pub fn block(&self, set: BlockSet, level: usize) -> Option<ArrayView2<'_, Complex<T>>> {
        let f = *self.factors.get(level)?;
        let b = match set {
            BlockSet::Forward => &self.fwd[level],
            BlockSet::Inverse => &self.inv[level],
        };
        ArrayView2::from_shape((f, f), b).ok()
    }

    /// Mutable view of a block (its shape cannot change).
    pub fn block_mut(
        &mut self,
        set: BlockSet,
        level: usize,
    ) -> Option<ArrayViewMut2<'_, Complex<T>>> {
        let f = *self.factors.get(level)?;
        self.prepared = OnceLock::new();
        let b = match set {
            BlockSet::Forward => &mut self.fwd[level],
            BlockSet::Inverse => &mut self.inv[level],
        };
        ArrayViewMut2::from_shape((f, f), b).ok()
    }

    /// Add `N(0, std²)` complex noise (scaled by the block's DFT magnitude 1) to every block.
    pub fn perturb<R: Rng + ?Sized>(&mut self, std: f64, rng: &mut R) {
        self.prepared = OnceLock::new();
        for b in self.fwd.iter_mut().chain(self.inv.iter_mut()) {
            for z in b.iter_mut() {
                *z += c(<Complex<f64> as crate::Scalar>::randn(rng, std));
            }
        }
    }

    /// Number of block parameters (complex entries), forward and inverse together.
    pub fn num_block_params(&self) -> usize {
        2 * self.factors.iter().map(|f| f * f).sum::<usize>()
    }

    /// Slot `p` of the digit-reversed output holds frequency `freq_at(p)`.
    pub fn freq_at(&self, p: usize) -> usize {
        self.freq_at[p] as usize
    }

    /// The forward DFT `X[k] = Σ_n x[n] ω_M^{kn}` in natural order (through the blocks).
    pub fn forward(&self, x: &[Complex<T>]) -> Result<Vec<Complex<T>>> {
        crate::error::check_len("x", x.len(), self.m)?;
        let mut buf = x.to_vec();
        let mut tmp = vec![Complex::new(T::zero(), T::zero()); self.m];
        self.forward_permuted(&mut buf, &mut tmp);
        Ok((0..self.m).map(|k| buf[self.pos_of[k] as usize]).collect())
    }

    /// The unnormalised inverse `x[n] = Σ_k X[k] ω_M^{−kn}` from natural order.
    pub fn inverse(&self, x: &[Complex<T>]) -> Result<Vec<Complex<T>>> {
        crate::error::check_len("x", x.len(), self.m)?;
        let mut buf: Vec<Complex<T>> = (0..self.m).map(|p| x[self.freq_at(p)]).collect();
        let mut tmp = vec![Complex::new(T::zero(), T::zero()); self.m];
        self.inverse_permuted(&mut buf, &mut tmp);
        Ok(buf)
    }

    fn blocks(&self, set: BlockSet) -> &[Vec<Complex<T>>] {
        match set {
            BlockSet::Forward => &self.fwd,
            BlockSet::Inverse => &self.inv,
        }
    }

    fn prepared(&self) -> &Prepared<T> {
        self.prepared.get_or_init(|| {
            let prep = |bs: &[Vec<Complex<T>>], adj: bool| -> Vec<PreparedBlock<T>> {
                bs.iter()
                    .zip(&self.factors)
                    .map(|(b, &f)| PreparedBlock::new(b, f, adj))
                    .collect()
            };
            Prepared {
                fwd: prep(&self.fwd, false),
                inv: prep(&self.inv, false),
                fwd_adj: prep(&self.fwd, true),
                inv_adj: prep(&self.inv, true),
            }
        })
    }

    /// `mp = M_level / f_level`, the stride of the level's block index.
    fn stride(&self, level: usize) -> usize {
        self.sub[level] / self.factors[level]
    }

    /// Apply the levels `order` with blocks `blocks`, ping-ponging between `x` and `tmp` and
    /// leaving the result in `x`; `post(i)` is the twiddle after level `i` and `rows(i)` prunes
    /// level `i` (see `apply_level`).
    #[allow(clippy::too_many_arguments)]
    fn run_levels<'a>(
        &'a self,
        order: impl Iterator<Item = usize>,
        blocks: &[PreparedBlock<T>],
        post: impl Fn(usize) -> Option<PostTwiddle<'a, T>>,
        rows: impl Fn(usize) -> (usize, usize),
        x: &mut [Complex<T>],
        tmp: &mut [Complex<T>],
    ) {
        let mut in_x = true;
        for i in order {
            let (src, dst): (&[Complex<T>], &mut [Complex<T>]) = if in_x {
                (&x[..], &mut tmp[..self.m])
            } else {
                (&tmp[..self.m], &mut x[..])
            };
            apply_level(
                &blocks[i],
                self.stride(i),
                as_reals(src),
                as_reals_mut(dst),
                post(i),
                rows(i),
            );
            in_x = !in_x;
        }
        if !in_x {
            x.copy_from_slice(&tmp[..self.m]);
        }
    }

    /// Forward transform in place into digit-reversed order.
    pub(crate) fn forward_permuted(&self, x: &mut [Complex<T>], tmp: &mut [Complex<T>]) {
        let r = self.factors.len();
        let post = |i: usize| {
            (i + 1 < r).then(|| PostTwiddle {
                wr: &self.tw_planes[i].0,
                wi: &self.tw_planes[i].1,
                period: 1,
                conj: false,
            })
        };
        self.run_levels(0..r, &self.prepared().fwd, post, |_| FULL, x, tmp);
    }

    /// [`forward_permuted`](Self::forward_permuted) of an `x` whose second half is zero (a
    /// zero-padded signal): the first level reads only the first half of its block rows.
    pub(crate) fn forward_permuted_low(&self, x: &mut [Complex<T>], tmp: &mut [Complex<T>]) {
        let r = self.factors.len();
        let post = |i: usize| {
            (i + 1 < r).then(|| PostTwiddle {
                wr: &self.tw_planes[i].0,
                wi: &self.tw_planes[i].1,
                period: 1,
                conj: false,
            })
        };
        let half = self.factors[0] / 2;
        let rows = |i: usize| if i == 0 { (half, usize::MAX) } else { FULL };
        self.run_levels(0..r, &self.prepared().fwd, post, rows, x, tmp);
    }

    /// Inverse transform (unnormalised, through the inverse blocks) from digit-reversed order
    /// to natural order. The conjugate twiddle
    /// that precedes level `i − 1` is applied to level `i`'s output.
    pub(crate) fn inverse_permuted(&self, x: &mut [Complex<T>], tmp: &mut [Complex<T>]) {
        let r = self.factors.len();
        let post = |i: usize| {
            (i > 0).then(|| PostTwiddle {
                wr: &self.tw_planes[i - 1].0,
                wi: &self.tw_planes[i - 1].1,
                period: self.factors[i - 1],
                conj: true,
            })
        };
        self.run_levels((0..r).rev(), &self.prepared().inv, post, |_| FULL, x, tmp);
    }

    /// [`inverse_permuted`](Self::inverse_permuted) when only the first half of the output is
    /// needed: the last level computes only the first half of its block rows (the second half
    /// of `x` is left unspecified).
    pub(crate) fn inverse_permuted_low(&self, x: &mut [Complex<T>], tmp: &mut [Complex<T>]) {
        let r = self.factors.len();
        let post = |i: usize| {
            (i > 0).then(|| PostTwiddle {
                wr: &self.tw_planes[i - 1].0,
                wi: &self.tw_planes[i - 1].1,
                period: self.factors[i - 1],
                conj: true,
            })
        };
        let half = self.factors[0] / 2;
        let rows = |i: usize| if i == 0 { (usize::MAX, half) } else { FULL };
        self.run_levels((0..r).rev(), &self.prepared().inv, post, rows, x, tmp);
    }

    /// The forward levels with every level's input kept for the backward: `tape` holds `r + 1`
    /// buffers of `M`; buffer 0 is the input (only its first half is read when `low`, a
    /// zero-padded signal) and buffer `i + 1` receives level `i`'s twiddled output, so the
    /// transform ends in buffer `r`.
    pub(crate) fn forward_tape(&self, tape: &mut [Complex<T>], low: bool) {
        let (m, r) = (self.m, self.factors.len());
        let blocks = &self.prepared().fwd;
        for i in 0..r {
            let (src, dst) = tape[i * m..(i + 2) * m].split_at_mut(m);
            let post = (i + 1 < r).then(|| PostTwiddle {
                wr: &self.tw_planes[i].0,
                wi: &self.tw_planes[i].1,
                period: 1,
                conj: false,
            });
            let rows = if low && i == 0 {
                (self.factors[0] / 2, usize::MAX)
            } else {
                FULL
            };
            apply_level(
                &blocks[i],
                self.stride(i),
                as_reals(src),
                as_reals_mut(dst),
                post,
                rows,
            );
        }
    }

    /// The inverse levels with every level's input kept: buffer `r` of `tape` is the input
    /// (digit-reversed) and level `i` reads buffer `i + 1` and writes buffer `i`. The last level
    /// (`i = 0`) is skipped when `last` is `None` (only the tape is wanted), else it writes the
    /// output rows `< last` of its block (as in `apply_level`).
    pub(crate) fn inverse_tape(&self, tape: &mut [Complex<T>], last: Option<usize>) {
        let (m, r) = (self.m, self.factors.len());
        let blocks = &self.prepared().inv;
        for i in (0..r).rev() {
            let rows = match (i, last) {
                (0, None) => break,
                (0, Some(k)) => (usize::MAX, k),
                _ => FULL,
            };
            let (dst, src) = tape[i * m..(i + 2) * m].split_at_mut(m);
            let post = (i > 0).then(|| PostTwiddle {
                wr: &self.tw_planes[i - 1].0,
                wi: &self.tw_planes[i - 1].1,
                period: self.factors[i - 1],
                conj: true,
            });
            apply_level(
                &blocks[i],
                self.stride(i),
                as_reals(src),
                as_reals_mut(dst),
                post,
                rows,
            );
        }
    }

    /// Backward of [`forward_tape`](Self::forward_tape): `g[0]` holds `∂L/∂X` (the output) on
    /// entry; on exit `g[out]` holds `∂L/∂x` (its first half only when `low`), `out` returned,
    /// the other buffer scratch. `dblocks[i] += Σ G_i X_iᴴ` for each level's output gradient
    /// `G_i` and recorded input `X_i`. The adjoint runs the levels in reverse with the adjoint
    /// blocks and the conjugate twiddles (a transform shaped like the inverse); when `low` its
    /// last level writes only the needed half and `X_0`'s zero half is not read.
    pub(crate) fn forward_adjoint(
        &self,
        tape: &[Complex<T>],
        g: [&mut [Complex<T>]; 2],
        dblocks: &mut [Vec<Complex<T>>],
        low: bool,
    ) -> usize {
        let (m, r) = (self.m, self.factors.len());
        let adj = &self.prepared().fwd_adj;
        let [g0, g1] = g;
        let mut cur = 0;
        for i in (0..r).rev() {
            let (src, dst): (&[Complex<T>], &mut [Complex<T>]) = if cur == 0 {
                (&g0[..m], &mut g1[..m])
            } else {
                (&g1[..m], &mut g0[..m])
            };
            let (f, mp) = (self.factors[i], self.stride(i));
            let half = if low && i == 0 { f / 2 } else { f };
            grad_level(
                f,
                mp,
                as_reals(src),
                as_reals(&tape[i * m..(i + 1) * m]),
                as_reals_mut(&mut dblocks[i]),
                (f, half),
            );
            let post = (i > 0).then(|| PostTwiddle {
                wr: &self.tw_planes[i - 1].0,
                wi: &self.tw_planes[i - 1].1,
                period: self.factors[i - 1],
                conj: true,
            });
            let rows = if half < f { (usize::MAX, half) } else { FULL };
            apply_level(&adj[i], mp, as_reals(src), as_reals_mut(dst), post, rows);
            cur = 1 - cur;
        }
        cur
    }

    /// Backward of [`inverse_tape`](Self::inverse_tape) (run with its last level): `g[0]`
    /// holds `∂L/∂x` (the output; only its first half is read when `low`, the rest taken as
    /// zero) on entry; on exit `g[out]` holds `∂L/∂X` (the input), `out` returned.
    /// `dblocks[i] += Σ G_i X_iᴴ`. The adjoint is shaped like the forward transform, with the
    /// first level pruned when `low`.
    pub(crate) fn inverse_adjoint(
        &self,
        tape: &[Complex<T>],
        g: [&mut [Complex<T>]; 2],
        dblocks: &mut [Vec<Complex<T>>],
        low: bool,
    ) -> usize {
        let (m, r) = (self.m, self.factors.len());
        let adj = &self.prepared().inv_adj;
        let [g0, g1] = g;
        let mut cur = 0;
        for i in 0..r {
            let (src, dst): (&[Complex<T>], &mut [Complex<T>]) = if cur == 0 {
                (&g0[..m], &mut g1[..m])
            } else {
                (&g1[..m], &mut g0[..m])
            };
            let (f, mp) = (self.factors[i], self.stride(i));
            let half = if low && i == 0 { f / 2 } else { f };
            grad_level(
                f,
                mp,
                as_reals(src),
                as_reals(&tape[(i + 1) * m..(i + 2) * m]),
                as_reals_mut(&mut dblocks[i]),
                (half, f),
            );
            let post = (i + 1 < r).then(|| PostTwiddle {
                wr: &self.tw_planes[i].0,
                wi: &self.tw_planes[i].1,
                period: 1,
                conj: false,
            });
            let rows = if half < f { (half, usize::MAX) } else { FULL };
            apply_level(&adj[i], mp, as_reals(src), as_reals_mut(dst), post, rows);
            cur = 1 - cur;
        }
        cur
    }

    /// Zeroed gradient buffers, one `f×f` block per level.
    pub(crate) fn zero_blocks(&self) -> Vec<Vec<Complex<T>>> {
        self.factors
            .iter()
            .map(|&f| vec![Complex::new(T::zero(), T::zero()); f * f])
            .collect()
    }

    pub(crate) fn num_levels(&self) -> usize {
        self.factors.len()
    }

    #[allow(dead_code)]
    pub(crate) fn block_slices(&self, set: BlockSet) -> &[Vec<Complex<T>>] {
        self.blocks(set)
    }
}

impl<T: ConvFloat> HalfTransform<T> for MonarchFft<T> {
    fn scratch_len(&self) -> usize {
        self.m
    }
    fn forward(&self, z: &mut [Complex<T>], scratch: &mut [Complex<T>]) {
        self.forward_permuted(z, scratch);
    }
    fn inverse(&self, z: &mut [Complex<T>], scratch: &mut [Complex<T>]) {
        self.inverse_permuted(z, scratch);
    }
    fn forward_low(&self, z: &mut [Complex<T>], scratch: &mut [Complex<T>]) {
        self.forward_permuted_low(z, scratch);
    }
    fn inverse_low(&self, z: &mut [Complex<T>], scratch: &mut [Complex<T>]) {
        self.inverse_permuted_low(z, scratch);
    }
    #[inline(always)]
    fn freq_at(&self, p: usize) -> usize {
        self.freq_at[p] as usize
    }
    #[inline(always)]
    fn pos_of(&self, k: usize) -> usize {
        self.pos_of[k] as usize
    }
    fn fused_spectral(&self) -> bool {
        true
    }
}
