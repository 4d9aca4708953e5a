//! Fast Krylov multiplies `K(M, v) c`, `K(M, v)ᵀ u` and the gradients of `uᵀ K(M, v) c`
//! (Thomas et al., *Learning Compressed Transforms with Low Displacement Rank*, NeurIPS 2018,
//! §3.2 and Appendix C):
//!
//! - shifts `Z_f`: `K(Z_f, v)` is the `f`-circulant with first column `v`, a product of
//!   polynomials modulo `x^n − f`, so it multiplies through one FFT pair: of length `n` after
//!   the twist `diag(δ^j)`, `δ^n = f`, for `f = ±1`, or of length `2n` (a linear
//!   convolution, truncated) for `f = 0`. Its transpose is `J K(Z_f, v) J`.
//! - subdiagonals with a corner: `K(M, v)_{ik} = v_{i−k}·s_{i−k+1}⋯s_i` (plus one wrap through
//!   the corner), so `uᵀ K(M, v) c = Σ_{m≤i} u_i c_{i−m} v_m P(m, i)` with `P(m, i)` the product
//!   of the subdiagonal between `m` and `i`. Splitting the index range in halves, the pairs
//!   that cross the middle factor as `P(m, i) = L_m R_i` and form one convolution of `c` with
//!   `v⊙L`: divide and conquer costs `O(n log² n)`; the wrap through the corner is one more
//!   such product over the doubled range; blocks of at most [`LEAF`] indices are multiplied
//!   as dense Krylov blocks (built by Horner's rule).
//! - any other tridiagonal-with-corners operator: Horner's rule, `O(n²)`
//!   ([`Band`](super::operators::Band)).

use super::fft::{cis, grow, zero, Cx, FftFloat, Plan};
use super::operators::{Band, BandGrad, HornerWs, OpKind};
use super::simd;

/// Blocks of at most this many indices are multiplied as dense Krylov blocks (a smaller leaf
/// trades dense work, `O(n·LEAF)` per vector, for recursion levels, `O(n)` each; 4 and 8
/// measured alike and about 1.5× faster than 32 at `n = 1024, 4096`, `r = 16`).
pub(crate) const LEAF: usize = 8;

/// Reusable per-thread buffers.
pub(crate) struct Ws<F: FftFloat> {
    a: Vec<Cx<F>>,
    b: Vec<Cx<F>>,
    c: Vec<Cx<F>>,
    d: Vec<Cx<F>>,
    e: Vec<Cx<F>>,
    scratch: Vec<Cx<F>>,
    horner: HornerWs<F>,
}

impl<F: FftFloat> Default for Ws<F> {
    fn default() -> Self {
        Self {
            a: vec![],
            b: vec![],
            c: vec![],
            d: vec![],
            e: vec![],
            scratch: vec![],
            horner: HornerWs::default(),
        }
    }
}

/// `K(Z_f, ·)` through the FFT: the spectral map `S` (twist then DFT of length `n` for
/// `f = ±1`; zero padding then DFT of length `2n` for `f = 0`) turns `K(Z_f, v) c` into
/// `S⁻¹(S v ⊙ S c)`.
#[derive(Clone)]
pub(crate) struct ShiftPlan<F: FftFloat> {
    pub n: usize,
    pub plan: Plan<F>,
    /// The twist `δ^j` (`δ = e^{iπ/n}` for `f = −1`, else 1).
    pub twist: Vec<Cx<F>>,
    /// `δ^{−j} / len`, undoing the twist and the unnormalised inverse DFT.
    pub back: Vec<Cx<F>>,
}

impl<F: FftFloat> ShiftPlan<F> {
    pub fn new(n: usize, f: i8) -> Self {
        let len = if f == 0 { 2 * n } else { n };
        let twist: Vec<Cx<F>> = (0..n)
            .map(|j| {
                if f == -1 {
                    cis(std::f64::consts::PI * j as f64 / n as f64)
                } else {
                    cis(0.0)
                }
            })
            .collect();
        let inv = F::of(1.0 / len as f64);
        let back = twist.iter().map(|t| t.conj() * inv).collect();
        Self {
            n,
            plan: Plan::new(len),
            twist,
            back,
        }
    }
    pub fn len(&self) -> usize {
        self.plan.len
    }
    /// `buf[..len] ← D x` (or `D J x` when `rev`), zero-padded; not yet transformed.
    #[inline]
    pub fn load(&self, x: &[Cx<F>], rev: bool, buf: &mut [Cx<F>]) {
        let n = self.n;
        if rev {
            simd::mul_rev(&mut buf[..n], &x[..n], &self.twist);
        } else {
            simd::mul(&mut buf[..n], &x[..n], &self.twist);
        }
        buf[n..self.len()].fill(zero());
    }
    /// `out += D⁻¹ buf[..n] / len` (`J`-reversed when `rev`) for an inverse-transformed `buf`.
    #[inline]
    pub fn store_add(&self, buf: &mut [Cx<F>], rev: bool, out: &mut [Cx<F>]) {
        let n = self.n;
        if rev {
            let t = &mut buf[..n];
            for (t, &b) in t.iter_mut().zip(&self.back) {
                *t *= b;
            }
            for (o, &t) in out[..n].iter_mut().zip(t.iter().rev()) {
                *o += t;
            }
        } else {
            simd::mul_acc(&mut out[..n], &buf[..n], &self.back);
        }
    }
    /// `S v`.
    pub fn spectrum(&self, v: &[Cx<F>], scratch: &mut Vec<Cx<F>>) -> Vec<Cx<F>> {
        let mut buf = vec![zero(); self.len()];
        self.load(v, false, &mut buf);
        self.plan.forward(&mut buf, scratch);
        buf
    }
}

/// Precomputed products of one divide-and-conquer level with blocks of length `len`: on the
/// left half `[lo, lo+h)` of each block `L_m = s_{m+1}⋯s_{lo+h}`, on the right half
/// `R_i = s_{lo+h+1}⋯s_i`.
struct Level<F: FftFloat> {
    len: usize,
    prods: Vec<Cx<F>>,
    /// `prods / len` (used on right halves, folding in the inverse DFT's normalisation).
    scaled: Vec<Cx<F>>,
    plan: Plan<F>,
}

/// The wrap through the corner `κ = M[0, n−1]`: `L_m = s_{m+1}⋯s_{n−1}·κ`, `R_i = s_1⋯s_i`.
struct Corner<F: FftFloat> {
    lprod: Vec<Cx<F>>,
    rprod: Vec<Cx<F>>,
    /// `rprod / len`.
    rscaled: Vec<Cx<F>>,
    plan: Plan<F>,
}

/// A subdiagonal operator (with an optional corner) prepared for divide and conquer.
pub(crate) struct SubdiagPlan<F: FftFloat> {
    n: usize,
    nn: usize,
    leaf: usize,
    /// `s[t] = M[t, t−1]` for `1 ≤ t < n`, zero elsewhere; length `nn + 1`.
    s: Vec<Cx<F>>,
    levels: Vec<Level<F>>,
    corner: Option<Corner<F>>,
    leaves: Vec<Band<F>>,
}

/// A vector `v` prepared for [`SubdiagPlan`]: `v` padded, per level the spectra of `v ⊙ L`
/// on each block's left half, and the leaves' Krylov blocks.
pub(crate) struct SubdiagVec<F: FftFloat> {
    v: Vec<Cx<F>>,
    spec: Vec<Vec<Cx<F>>>,
    /// `spec` at negated frequencies, block by block (`ŝ[(L − ω) mod L]`).
    spec_rev: Vec<Vec<Cx<F>>>,
    corner_spec: Vec<Cx<F>>,
    corner_rev: Vec<Cx<F>>,
    /// Each leaf's dense Krylov block, column-major and row-major.
    cols: Vec<Cx<F>>,
    rows: Vec<Cx<F>>,
}

impl<F: FftFloat> SubdiagPlan<F> {
    /// `sub[t] = M[t, t−1]` (length `n`, `sub[0]` ignored), the corner if any, and the block
    /// size below which Horner's rule is used (a power of two).
    pub fn new(n: usize, sub: &[Cx<F>], corner: Option<Cx<F>>, leaf: usize) -> Self {
        let nn = n.next_power_of_two();
        let leaf = leaf.min(nn).max(1);
        let mut s = vec![zero(); nn + 1];
        s[1..n].copy_from_slice(&sub[1..n]);
        let one = Cx::new(F::one(), F::zero());
        let mut levels = Vec::new();
        let mut len = nn;
        while len > leaf {
            let h = len / 2;
            let mut prods = vec![zero(); nn];
            for lo in (0..nn).step_by(len) {
                let mut acc = s[lo + h];
                prods[lo + h - 1] = acc;
                for m in (lo..lo + h - 1).rev() {
                    acc *= s[m + 1];
                    prods[m] = acc;
                }
                let mut acc = one;
                prods[lo + h] = acc;
                for i in lo + h + 1..lo + len {
                    acc *= s[i];
                    prods[i] = acc;
                }
            }
            let inv = F::of(1.0 / len as f64);
            let scaled = prods.iter().map(|&p| p * inv).collect();
            levels.push(Level {
                len,
                prods,
                scaled,
                plan: Plan::new(len),
            });
            len /= 2;
        }
        let corner = corner.map(|kappa| {
            let mut lprod = vec![zero(); n];
            let mut acc = kappa;
            lprod[n - 1] = acc;
            for m in (0..n - 1).rev() {
                acc *= s[m + 1];
                lprod[m] = acc;
            }
            let mut rprod = vec![one; n];
            for i in 1..n {
                rprod[i] = rprod[i - 1] * s[i];
            }
            let inv = F::of(1.0 / (2 * nn) as f64);
            let rscaled = rprod.iter().map(|&p| p * inv).collect();
            Corner {
                lprod,
                rprod,
                rscaled,
                plan: Plan::new(2 * nn),
            }
        });
        let leaves = (0..nn)
            .step_by(leaf)
            .take_while(|&lo| lo < n)
            .map(|lo| {
                let mut b = Band::new(leaf);
                let mut sub = vec![zero(); leaf];
                sub[1..].copy_from_slice(&s[lo + 1..lo + leaf]);
                b.sub = Some(sub);
                b
            })
            .collect();
        Self {
            n,
            nn,
            leaf,
            s,
            levels,
            corner,
            leaves,
        }
    }

    /// Estimated real flops of one multiply (`fwd` or `tr`) of one row.
    pub fn flops(&self) -> usize {
        let fft = |len: usize| 5 * len * (usize::BITS - len.leading_zeros()) as usize;
        let mut f = self.leaves.len() * 4 * self.leaf * self.leaf;
        for lev in &self.levels {
            f += (self.nn / lev.len) * (fft(lev.len) + 8 * lev.len) + fft(lev.len);
        }
        if let Some(c) = &self.corner {
            f += 2 * fft(c.plan.len) + 8 * c.plan.len;
        }
        f
    }

    fn buf_len(&self) -> usize {
        if self.corner.is_some() {
            2 * self.nn
        } else {
            self.nn
        }
    }

    pub fn prepare(&self, v: &[Cx<F>], ws: &mut Ws<F>) -> SubdiagVec<F> {
        let (n, nn, leaf) = (self.n, self.nn, self.leaf);
        let mut vp = vec![zero(); nn];
        vp[..n].copy_from_slice(&v[..n]);
        let mut spec = Vec::with_capacity(self.levels.len());
        for lev in &self.levels {
            let h = lev.len / 2;
            let mut buf = vec![zero(); nn];
            for lo in (0..nn).step_by(lev.len) {
                for m in lo..lo + h {
                    buf[m] = vp[m] * lev.prods[m];
                }
            }
            lev.plan.forward(&mut buf, &mut ws.scratch);
            spec.push(buf);
        }
        let spec_rev = spec
            .iter()
            .zip(&self.levels)
            .map(|(sp, lev)| sp.chunks(lev.len).flat_map(negated).collect())
            .collect();
        let corner_spec = match &self.corner {
            Some(c) => {
                let mut buf = vec![zero(); c.plan.len];
                for m in 0..n {
                    buf[m] = vp[m] * c.lprod[m];
                }
                c.plan.forward(&mut buf, &mut ws.scratch);
                buf
            }
            None => vec![],
        };
        // Each leaf's Krylov block K(M_leaf, v_leaf) (column k is M_leaf^k v_leaf), stored
        // column-major for `fwd` and row-major for `tr` so both loops are axpys.
        let bs = leaf * leaf;
        let mut cols = vec![zero(); self.leaves.len() * bs];
        let mut rows = vec![zero(); self.leaves.len() * bs];
        let mut q = vec![zero(); leaf];
        for (j, band) in self.leaves.iter().enumerate() {
            let cb = &mut cols[j * bs..(j + 1) * bs];
            cb[..leaf].copy_from_slice(&vp[j * leaf..(j + 1) * leaf]);
            for k in 1..leaf {
                band.apply_axpy(&cb[(k - 1) * leaf..k * leaf], zero(), &vp, &mut q);
                cb[k * leaf..(k + 1) * leaf].copy_from_slice(&q);
            }
            let rb = &mut rows[j * bs..(j + 1) * bs];
            for k in 0..leaf {
                for i in 0..leaf {
                    rb[i * leaf + k] = cb[k * leaf + i];
                }
            }
        }
        let corner_rev = negated(&corner_spec).collect();
        SubdiagVec {
            v: vp,
            spec,
            spec_rev,
            corner_spec,
            corner_rev,
            cols,
            rows,
        }
    }

    /// `dst[..buf_len] ← x` zero-padded.
    fn pad(&self, x: &[Cx<F>], dst: &mut Vec<Cx<F>>) {
        grow(dst, self.buf_len());
        dst[..self.n].copy_from_slice(&x[..self.n]);
        for d in &mut dst[self.n..self.buf_len()] {
            *d = zero();
        }
    }

    /// Blocks of a level whose right half holds an index below `n` (a prefix of the blocks).
    fn active(&self, len: usize) -> usize {
        (self.n.saturating_sub(len / 2)).div_ceil(len)
    }

    /// `out += K(M, v) c`.
    pub fn fwd(&self, pv: &SubdiagVec<F>, c: &[Cx<F>], out: &mut [Cx<F>], ws: &mut Ws<F>) {
        let (n, leaf) = (self.n, self.leaf);
        let mut ce = std::mem::take(&mut ws.e);
        self.pad(c, &mut ce);
        grow(&mut ws.a, self.buf_len());
        grow(&mut ws.b, self.buf_len());
        // Pairs inside a leaf: the lower-triangular block times c, column by column.
        for j in 0..self.leaves.len() {
            let lo = j * leaf;
            let hi = leaf.min(n - lo);
            let blk = &pv.cols[j * leaf * leaf..(j + 1) * leaf * leaf];
            let o = &mut out[lo..lo + hi];
            for (k, &ck) in ce[..hi].iter().enumerate() {
                simd::axpy(&mut o[k..], ck, &blk[k * leaf + k..k * leaf + hi]);
            }
        }
        // Pairs crossing the middle of a block: every block's convolution in one batch.
        for (lev, spec) in self.levels.iter().zip(&pv.spec) {
            let (len, h) = (lev.len, lev.len / 2);
            let k = self.active(len) * len;
            let cf = &mut ws.a[..len];
            cf.copy_from_slice(&ce[..len]);
            lev.plan.forward(cf, &mut ws.scratch);
            let t = &mut ws.b[..k];
            for (tb, sb) in t.chunks_mut(len).zip(spec.chunks(len)) {
                simd::mul(tb, cf, sb);
            }
            lev.plan.inverse(t, &mut ws.scratch);
            for lo in (0..k).step_by(len) {
                let r = lo + h..n.min(lo + len);
                simd::mul_acc(&mut out[r.clone()], &lev.scaled[r.clone()], &t[r]);
            }
        }
        // Paths through the corner.
        if let Some(cn) = &self.corner {
            let len = cn.plan.len;
            let t = &mut ws.a[..len];
            t.copy_from_slice(&ce[..len]);
            cn.plan.forward(t, &mut ws.scratch);
            let b = &mut ws.b[..len];
            simd::mul(b, t, &pv.corner_spec);
            cn.plan.inverse(b, &mut ws.scratch);
            simd::mul_acc(&mut out[..n], &cn.rscaled, &b[n..2 * n]);
        }
        ws.e = ce;
    }

    /// `out += K(M, v)ᵀ u`.
    pub fn tr(&self, pv: &SubdiagVec<F>, u: &[Cx<F>], out: &mut [Cx<F>], ws: &mut Ws<F>) {
        let (n, leaf) = (self.n, self.leaf);
        let mut ue = std::mem::take(&mut ws.e);
        self.pad(u, &mut ue);
        grow(&mut ws.a, self.buf_len());
        grow(&mut ws.b, self.buf_len());
        // Leaves: u_leafᵀ times the block, row by row (lag k = i − m).
        let acc = &mut ws.a[..leaf];
        acc.fill(zero());
        for j in 0..self.leaves.len() {
            let lo = j * leaf;
            let blk = &pv.rows[j * leaf * leaf..(j + 1) * leaf * leaf];
            for i in 0..leaf.min(n - lo) {
                simd::axpy(
                    &mut acc[..i + 1],
                    ue[lo + i],
                    &blk[i * leaf..i * leaf + i + 1],
                );
            }
        }
        for (o, &a) in out[..n.min(leaf)].iter_mut().zip(acc.iter()) {
            *o += a;
        }
        // Crossing pairs: the correlations of (v ⊙ L) with (u ⊙ R), summed over a level's
        // blocks in the frequency domain.
        for (lev, spec_rev) in self.levels.iter().zip(&pv.spec_rev) {
            let (len, h) = (lev.len, lev.len / 2);
            let k = self.active(len) * len;
            let b = &mut ws.b[..k];
            for lo in (0..k).step_by(len) {
                b[lo..lo + h].fill(zero());
                let r = lo + h..lo + len;
                simd::mul(&mut b[r.clone()], &ue[r.clone()], &lev.scaled[r]);
            }
            lev.plan.forward(b, &mut ws.scratch);
            let acc = &mut ws.a[..len];
            acc.fill(zero());
            for (bb, sp) in b.chunks(len).zip(spec_rev.chunks(len)) {
                simd::mul_acc(acc, sp, bb);
            }
            lev.plan.inverse(acc, &mut ws.scratch);
            for (o, &a) in out[1..n.min(len)].iter_mut().zip(&acc[1..]) {
                *o += a;
            }
        }
        if let Some(cn) = &self.corner {
            let len = cn.plan.len;
            let b = &mut ws.b[..len];
            b.fill(zero());
            simd::mul(&mut b[n..2 * n], &ue[..n], &cn.rscaled);
            cn.plan.forward(b, &mut ws.scratch);
            let acc = &mut ws.a[..len];
            simd::mul(acc, &pv.corner_rev, b);
            cn.plan.inverse(acc, &mut ws.scratch);
            for (o, &a) in out[1..n].iter_mut().zip(&acc[1..]) {
                *o += a;
            }
        }
        ws.e = ue;
    }

    /// `out[i·n..(i+1)·n] += K(M, vᵢ)ᵀ u` for every prepared `vᵢ` in `pvs`: [`tr`](Self::tr)
    /// for several vectors at once, transforming `u ⊙ R` once per level and corner.
    pub fn tr_multi(&self, pvs: &[&SubdiagVec<F>], u: &[Cx<F>], out: &mut [Cx<F>], ws: &mut Ws<F>) {
        let (n, leaf) = (self.n, self.leaf);
        let mut ue = std::mem::take(&mut ws.e);
        self.pad(u, &mut ue);
        grow(&mut ws.a, self.buf_len());
        grow(&mut ws.b, self.buf_len());
        for (pv, o) in pvs.iter().zip(out.chunks_mut(n)) {
            let acc = &mut ws.a[..leaf];
            acc.fill(zero());
            for j in 0..self.leaves.len() {
                let lo = j * leaf;
                let blk = &pv.rows[j * leaf * leaf..(j + 1) * leaf * leaf];
                for i in 0..leaf.min(n - lo) {
                    simd::axpy(
                        &mut acc[..i + 1],
                        ue[lo + i],
                        &blk[i * leaf..i * leaf + i + 1],
                    );
                }
            }
            for (o, &a) in o[..n.min(leaf)].iter_mut().zip(acc.iter()) {
                *o += a;
            }
        }
        for (l, lev) in self.levels.iter().enumerate() {
            let (len, h) = (lev.len, lev.len / 2);
            let k = self.active(len) * len;
            let b = &mut ws.b[..k];
            for lo in (0..k).step_by(len) {
                b[lo..lo + h].fill(zero());
                let r = lo + h..lo + len;
                simd::mul(&mut b[r.clone()], &ue[r.clone()], &lev.scaled[r]);
            }
            lev.plan.forward(b, &mut ws.scratch);
            for (pv, o) in pvs.iter().zip(out.chunks_mut(n)) {
                let acc = &mut ws.a[..len];
                acc.fill(zero());
                for (bb, sp) in b.chunks(len).zip(pv.spec_rev[l].chunks(len)) {
                    simd::mul_acc(acc, sp, bb);
                }
                lev.plan.inverse(acc, &mut ws.scratch);
                for (o, &a) in o[1..n.min(len)].iter_mut().zip(&acc[1..]) {
                    *o += a;
                }
            }
        }
        if let Some(cn) = &self.corner {
            let len = cn.plan.len;
            let b = &mut ws.b[..len];
            b.fill(zero());
            simd::mul(&mut b[n..2 * n], &ue[..n], &cn.rscaled);
            cn.plan.forward(b, &mut ws.scratch);
            for (pv, o) in pvs.iter().zip(out.chunks_mut(n)) {
                let acc = &mut ws.a[..len];
                simd::mul(acc, &pv.corner_rev, b);
                cn.plan.inverse(acc, &mut ws.scratch);
                for (o, &a) in o[1..n].iter_mut().zip(&acc[1..]) {
                    *o += a;
                }
            }
        }
        ws.e = ue;
    }

    /// `out += Σᵢ K(M, vᵢ) cᵢ` with `cᵢ = cs[i·n..(i+1)·n]`: [`fwd`](Self::fwd) for several
    /// vectors at once, summing their spectra so each level and the corner take one inverse
    /// transform.
    pub fn fwd_multi(
        &self,
        pvs: &[&SubdiagVec<F>],
        cs: &[Cx<F>],
        out: &mut [Cx<F>],
        ws: &mut Ws<F>,
    ) {
        let (n, leaf) = (self.n, self.leaf);
        let bl = self.buf_len();
        grow(&mut ws.a, bl);
        grow(&mut ws.b, bl);
        grow(&mut ws.e, bl);
        let ce = &mut ws.e[..bl];
        for (pv, c) in pvs.iter().zip(cs.chunks(n)) {
            for j in 0..self.leaves.len() {
                let lo = j * leaf;
                let hi = leaf.min(n - lo);
                let blk = &pv.cols[j * leaf * leaf..(j + 1) * leaf * leaf];
                let o = &mut out[lo..lo + hi];
                for (k, &ck) in c[..hi].iter().enumerate() {
                    simd::axpy(&mut o[k..], ck, &blk[k * leaf + k..k * leaf + hi]);
                }
            }
        }
        for (l, lev) in self.levels.iter().enumerate() {
            let (len, h) = (lev.len, lev.len / 2);
            let k = self.active(len) * len;
            let t = &mut ws.b[..k];
            t.fill(zero());
            for (pv, c) in pvs.iter().zip(cs.chunks(n)) {
                let cf = &mut ws.a[..len];
                let m = len.min(n);
                cf[..m].copy_from_slice(&c[..m]);
                cf[m..].fill(zero());
                lev.plan.forward(cf, &mut ws.scratch);
                for (tb, sb) in t.chunks_mut(len).zip(pv.spec[l].chunks(len)) {
                    simd::mul_acc(tb, cf, sb);
                }
            }
            lev.plan.inverse(t, &mut ws.scratch);
            for lo in (0..k).step_by(len) {
                let r = lo + h..n.min(lo + len);
                simd::mul_acc(&mut out[r.clone()], &lev.scaled[r.clone()], &t[r]);
            }
        }
        if let Some(cn) = &self.corner {
            let len = cn.plan.len;
            let acc = &mut ws.b[..len];
            acc.fill(zero());
            for (pv, c) in pvs.iter().zip(cs.chunks(n)) {
                ce[..n].copy_from_slice(&c[..n]);
                ce[n..len].fill(zero());
                cn.plan.forward(&mut ce[..len], &mut ws.scratch);
                simd::mul_acc(acc, &ce[..len], &pv.corner_spec);
            }
            cn.plan.inverse(acc, &mut ws.scratch);
            simd::mul_acc(&mut out[..n], &cn.rscaled, &acc[n..2 * n]);
        }
    }

    /// Gradients of `Φ = Σ_b u_bᵀ K(M, v) c_b`: `dv += ∂Φ/∂v`, `g.sub[t] += ∂Φ/∂s_t`,
    /// `g.top += ∂Φ/∂κ`.
    pub fn grad(
        &self,
        pv: &SubdiagVec<F>,
        us: &[&[Cx<F>]],
        cs: &[&[Cx<F>]],
        dv: &mut [Cx<F>],
        g: &mut BandGrad<F>,
        ws: &mut Ws<F>,
    ) {
        let (n, nn, leaf) = (self.n, self.nn, self.leaf);
        let rows = us.len();
        let bl = self.buf_len();
        // Zero-padded copies of the rows.
        let mut upad = vec![zero(); rows * bl];
        let mut cpad = vec![zero(); rows * bl];
        for b in 0..rows {
            upad[b * bl..b * bl + n].copy_from_slice(&us[b][..n]);
            cpad[b * bl..b * bl + n].copy_from_slice(&cs[b][..n]);
        }
        // Leaves: Horner's rule in reverse mode, all rows at once.
        let mut lg = BandGrad::new(leaf);
        let mut ldv = vec![zero(); leaf];
        for (j, band) in self.leaves.iter().enumerate() {
            let lo = j * leaf;
            let ul: Vec<&[Cx<F>]> = (0..rows)
                .map(|b| &upad[b * bl + lo..b * bl + lo + leaf])
                .collect();
            let cl: Vec<&[Cx<F>]> = (0..rows).map(|b| &cpad[b * bl..b * bl + leaf]).collect();
            ldv.fill(zero());
            lg.sub.fill(zero());
            band.krylov_grad(&pv.v[lo..lo + leaf], &ul, &cl, &mut ldv, &mut lg);
            for m in lo..n.min(lo + leaf) {
                dv[m] += ldv[m - lo];
            }
            for t in lo + 1..n.min(lo + leaf) {
                g.sub[t] += lg.sub[t - lo];
            }
        }
        grow(&mut ws.a, bl);
        grow(&mut ws.b, bl);
        grow(&mut ws.c, bl);
        grow(&mut ws.d, bl);
        let s = &self.s;
        let vp = &pv.v;
        for r in 0..rows {
            let ue = &upad[r * bl..(r + 1) * bl];
            let ce = &cpad[r * bl..(r + 1) * bl];
            for (lev, spec) in self.levels.iter().zip(&pv.spec) {
                let (len, h) = (lev.len, lev.len / 2);
                let inv = F::of(1.0 / len as f64);
                let cf = &mut ws.a[..len];
                cf.copy_from_slice(&ce[..len]);
                lev.plan.forward(cf, &mut ws.scratch);
                for lo in (0..nn).step_by(len) {
                    if lo + h >= n {
                        break;
                    }
                    let p = &lev.prods;
                    // b = u ⊙ R on the right half; w = corr(c, b) on the left half.
                    let b = &mut ws.b[..len];
                    b[..h].fill(zero());
                    for i in h..len {
                        b[i] = ue[lo + i] * p[lo + i];
                    }
                    lev.plan.forward(b, &mut ws.scratch);
                    let w = &mut ws.c[..len];
                    w[0] = cf[0] * b[0];
                    for k in 1..len {
                        w[k] = cf[len - k] * b[k];
                    }
                    lev.plan.inverse(w, &mut ws.scratch);
                    // z = conv(c, v ⊙ L) on the right half.
                    let z = &mut ws.d[..len];
                    for ((z, &x), &y) in z.iter_mut().zip(cf.iter()).zip(&spec[lo..lo + len]) {
                        *z = x * y;
                    }
                    lev.plan.inverse(z, &mut ws.scratch);
                    for m in lo..lo + h {
                        dv[m] += p[m] * w[m - lo] * inv;
                    }
                    let mut f = zero();
                    for t in lo + 1..=lo + h {
                        if t >= n {
                            break;
                        }
                        f = s[t - 1] * f + vp[t - 1] * w[t - 1 - lo] * inv;
                        g.sub[t] += if t < lo + h { p[t] * f } else { f };
                    }
                    let mut acc = zero();
                    for t in (lo + h + 1..n.min(lo + len)).rev() {
                        acc = ue[t] * z[t - lo] * inv + s[t + 1] * acc;
                        g.sub[t] += p[t - 1] * acc;
                    }
                }
            }
            if let Some(cn) = &self.corner {
                let len = cn.plan.len;
                let inv = F::of(1.0 / len as f64);
                let cf = &mut ws.a[..len];
                cf.copy_from_slice(&ce[..len]);
                cn.plan.forward(cf, &mut ws.scratch);
                let b = &mut ws.b[..len];
                b.fill(zero());
                for i in 0..n {
                    b[n + i] = ue[i] * cn.rprod[i];
                }
                cn.plan.forward(b, &mut ws.scratch);
                let w = &mut ws.c[..len];
                w[0] = cf[0] * b[0];
                for k in 1..len {
                    w[k] = cf[len - k] * b[k];
                }
                cn.plan.inverse(w, &mut ws.scratch);
                let z = &mut ws.d[..len];
                for ((z, &x), &y) in z.iter_mut().zip(cf.iter()).zip(&pv.corner_spec) {
                    *z = x * y;
                }
                cn.plan.inverse(z, &mut ws.scratch);
                for m in 0..n {
                    dv[m] += cn.lprod[m] * w[m] * inv;
                }
                let mut f = zero();
                for t in 1..=n {
                    f = s[t - 1] * f + vp[t - 1] * w[t - 1] * inv;
                    if t < n {
                        g.sub[t] += cn.lprod[t] * f;
                    } else {
                        g.top += f;
                    }
                }
                let mut acc = zero();
                for t in (1..n).rev() {
                    acc = ue[t] * z[n + t] * inv + s[t + 1] * acc;
                    g.sub[t] += cn.rprod[t - 1] * acc;
                }
            }
        }
    }
}

/// `out += K(Z_f, v) x` (or `K(Z_f, v)ᵀ x` when `transposed`) for a shift operator: one
/// circular product with the prepared spectrum `vs` of `v`.
fn shift_product<F: FftFloat>(
    s: &ShiftPlan<F>,
    vs: &[Cx<F>],
    x: &[Cx<F>],
    transposed: bool,
    out: &mut [Cx<F>],
    ws: &mut Ws<F>,
) {
    grow(&mut ws.a, s.len());
    let t = &mut ws.a[..s.len()];
    s.load(x, transposed, t);
    s.plan.forward(t, &mut ws.scratch);
    for (v, &y) in t.iter_mut().zip(vs) {
        *v *= y;
    }
    s.plan.inverse(t, &mut ws.scratch);
    s.store_add(t, transposed, out);
}

/// The spectrum at negated frequencies, `x̂[(L − ω) mod L]` (the spectrum of `x` reversed
/// cyclically), turning a correlation into a product.
fn negated<F: FftFloat>(x: &[Cx<F>]) -> impl Iterator<Item = Cx<F>> + '_ {
    let l = x.len();
    (0..l).map(move |w| x[(l - w) % l])
}

/// One Krylov operator prepared for a call: the algorithm is chosen by its kind.
pub(crate) enum OpPlan<F: FftFloat> {
    Shift(ShiftPlan<F>),
    Subdiag(SubdiagPlan<F>),
    Band(Band<F>),
}

/// A Krylov vector `v` prepared for an [`OpPlan`].
pub(crate) enum Prepared<F: FftFloat> {
    Spectrum(Vec<Cx<F>>),
    Subdiag(SubdiagVec<F>),
    Plain(Vec<Cx<F>>),
}

impl<F: FftFloat> OpPlan<F> {
    /// The operator of kind `kind` with entries `p`: with `Some(leaf)`, shifts through the FFT
    /// and subdiagonals longer than `leaf` by divide and conquer; with `None`, every operator
    /// by Horner's rule (`O(n²)`).
    pub fn new(kind: OpKind, n: usize, p: &[Cx<F>], leaf: Option<usize>) -> Self {
        let Some(leaf) = leaf else {
            return OpPlan::Band(kind.band(n, p));
        };
        match kind {
            OpKind::Shift(f) => OpPlan::Shift(ShiftPlan::new(n, f)),
            OpKind::Subdiagonal { corner } if n > leaf => {
                let band = kind.band(n, p);
                let sub = band.sub.as_deref().unwrap_or(&[]);
                OpPlan::Subdiag(SubdiagPlan::new(n, sub, corner.then_some(band.top), leaf))
            }
            _ => OpPlan::Band(kind.band(n, p)),
        }
    }

    pub fn prepare(&self, v: &[Cx<F>], ws: &mut Ws<F>) -> Prepared<F> {
        match self {
            OpPlan::Shift(s) => Prepared::Spectrum(s.spectrum(v, &mut ws.scratch)),
            OpPlan::Subdiag(s) => Prepared::Subdiag(s.prepare(v, ws)),
            OpPlan::Band(b) => Prepared::Plain(v[..b.n].to_vec()),
        }
    }

    /// `out += K(M, v) c`.
    pub fn fwd(&self, p: &Prepared<F>, c: &[Cx<F>], out: &mut [Cx<F>], ws: &mut Ws<F>) {
        match (self, p) {
            (OpPlan::Shift(s), Prepared::Spectrum(vs)) => shift_product(s, vs, c, false, out, ws),
            (OpPlan::Subdiag(s), Prepared::Subdiag(v)) => s.fwd(v, c, out, ws),
            (OpPlan::Band(b), Prepared::Plain(v)) => b.krylov_fwd(v, c, out, &mut ws.horner),
            _ => unreachable!("vector prepared for another operator"),
        }
    }

    /// `out += K(M, v)ᵀ u`.
    pub fn tr(&self, p: &Prepared<F>, u: &[Cx<F>], out: &mut [Cx<F>], ws: &mut Ws<F>) {
        match (self, p) {
            (OpPlan::Shift(s), Prepared::Spectrum(vs)) => shift_product(s, vs, u, true, out, ws),
            (OpPlan::Subdiag(s), Prepared::Subdiag(v)) => s.tr(v, u, out, ws),
            (OpPlan::Band(b), Prepared::Plain(v)) => b.krylov_tr(v, u, out, &mut ws.horner),
            _ => unreachable!("vector prepared for another operator"),
        }
    }

    /// Gradients of `Φ = Σ_b u_bᵀ K(M, v) c_b` with respect to `v` (into `dv`) and the
    /// operator's entries (into `g`).
    pub fn grad(
        &self,
        p: &Prepared<F>,
        us: &[&[Cx<F>]],
        cs: &[&[Cx<F>]],
        dv: &mut [Cx<F>],
        g: &mut BandGrad<F>,
        ws: &mut Ws<F>,
    ) {
        match (self, p) {
            (OpPlan::Shift(s), Prepared::Spectrum(_)) => {
                // uᵀ K(Z_f, v) c = uᵀ K(Z_f, c) v, so ∂/∂v = K(Z_f, c)ᵀ u = J K(Z_f, c) J u.
                let len = s.len();
                grow(&mut ws.a, len);
                grow(&mut ws.b, len);
                for (u, c) in us.iter().zip(cs) {
                    let t = &mut ws.a[..len];
                    s.load(c, false, t);
                    s.plan.forward(t, &mut ws.scratch);
                    let q = &mut ws.b[..len];
                    s.load(u, true, q);
                    s.plan.forward(q, &mut ws.scratch);
                    for (x, &y) in t.iter_mut().zip(q.iter()) {
                        *x *= y;
                    }
                    s.plan.inverse(t, &mut ws.scratch);
                    s.store_add(t, true, dv);
                }
            }
            (OpPlan::Subdiag(s), Prepared::Subdiag(v)) => s.grad(v, us, cs, dv, g, ws),
            (OpPlan::Band(b), Prepared::Plain(v)) => b.krylov_grad(v, us, cs, dv, g),
            _ => unreachable!("vector prepared for another operator"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ldr::operators::dot;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    type C = Cx<f64>;

    fn rvec(rng: &mut StdRng, n: usize, scale: f64) -> Vec<C> {
        (0..n)
            .map(|_| C::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)) * scale)
            .collect()
    }

    /// Entries near 1 in modulus so long products stay O(1).
    fn subdiag(rng: &mut StdRng, n: usize) -> Vec<C> {
        let mut s: Vec<C> = (0..n)
            .map(|_| C::new(rng.random_range(0.7..1.3), rng.random_range(-0.3..0.3)))
            .collect();
        s[0] = zero();
        s
    }

    /// The dense matrix of `band`.
    fn dense(b: &Band<f64>) -> Vec<Vec<C>> {
        let n = b.n;
        let mut m = vec![vec![zero(); n]; n];
        for j in 0..n {
            let mut e = vec![zero(); n];
            e[j] = C::new(1.0, 0.0);
            let mut col = vec![zero(); n];
            b.apply_axpy(&e, zero(), &e, &mut col);
            for i in 0..n {
                m[i][j] = col[i];
            }
        }
        m
    }

    /// Explicit Krylov matrix, column by column.
    fn krylov(b: &Band<f64>, v: &[C]) -> Vec<Vec<C>> {
        let n = b.n;
        let m = dense(b);
        let mut k = vec![vec![zero(); n]; n];
        let mut p = v.to_vec();
        for col in 0..n {
            for (row, &pi) in k.iter_mut().zip(&p) {
                row[col] = pi;
            }
            p = (0..n).map(|i| dot(&m[i], &p)).collect();
        }
        k
    }

    fn err(a: &[C], b: &[C]) -> f64 {
        let scale = b.iter().map(|z| z.norm()).fold(1.0, f64::max);
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).norm())
            .fold(0.0, f64::max)
            / scale
    }

    /// Φ(u, v, c) = uᵀ K(M, v) c through the explicit Krylov matrix.
    fn phi(b: &Band<f64>, u: &[C], v: &[C], c: &[C]) -> C {
        let k = krylov(b, v);
        (0..b.n)
            .map(|i| u[i] * dot(&k[i], c))
            .fold(zero(), |a, x| a + x)
    }

    fn check_op(kind: OpKind, n: usize, params: &[C], leaf: usize, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let band = kind.band(n, params);
        let plan = OpPlan::new(kind, n, params, Some(leaf));
        let mut ws = Ws::default();
        let v = rvec(&mut rng, n, 1.0);
        let c = rvec(&mut rng, n, 1.0);
        let u = rvec(&mut rng, n, 1.0);
        let pv = plan.prepare(&v, &mut ws);
        let k = krylov(&band, &v);
        let want_fwd: Vec<C> = (0..n).map(|i| dot(&k[i], &c)).collect();
        let want_tr: Vec<C> = (0..n)
            .map(|j| (0..n).map(|i| u[i] * k[i][j]).fold(zero(), |a, x| a + x))
            .collect();
        let mut got = vec![zero(); n];
        plan.fwd(&pv, &c, &mut got, &mut ws);
        assert!(
            err(&got, &want_fwd) < 1e-10,
            "{kind:?} n={n} fwd {}",
            err(&got, &want_fwd)
        );
        let mut got = vec![zero(); n];
        plan.tr(&pv, &u, &mut got, &mut ws);
        assert!(
            err(&got, &want_tr) < 1e-10,
            "{kind:?} n={n} tr {}",
            err(&got, &want_tr)
        );
        // Gradients against complex-step-free central differences of the holomorphic Φ
        // (a derivative along a real direction equals the complex derivative).
        let u2 = rvec(&mut rng, n, 1.0);
        let c2 = rvec(&mut rng, n, 1.0);
        let mut dv = vec![zero(); n];
        let mut g = BandGrad::new(n);
        plan.grad(&pv, &[&u, &u2], &[&c, &c2], &mut dv, &mut g, &mut ws);
        let total = |b: &Band<f64>, v: &[C]| phi(b, &u, v, &c) + phi(b, &u2, v, &c2);
        let h = 1e-6;
        for j in 0..n {
            let mut vp = v.clone();
            let mut vm = v.clone();
            vp[j] += h;
            vm[j] -= h;
            let fd = (total(&band, &vp) - total(&band, &vm)) / (2.0 * h);
            assert!(
                (fd - dv[j]).norm() < 1e-6 * (1.0 + fd.norm()),
                "{kind:?} n={n} dv[{j}]"
            );
        }
        let np = kind.num_params(n);
        let mut gp = vec![zero(); np];
        kind.scatter_grad(n, &g, &mut gp);
        for j in 0..np {
            let mut pp = params.to_vec();
            let mut pm = params.to_vec();
            pp[j] += h;
            pm[j] -= h;
            let fd = (total(&kind.band(n, &pp), &v) - total(&kind.band(n, &pm), &v)) / (2.0 * h);
            assert!(
                (fd - gp[j]).norm() < 1e-6 * (1.0 + fd.norm()),
                "{kind:?} n={n} leaf={leaf} dθ[{j}]: {} vs {}",
                gp[j],
                fd
            );
        }
    }

    #[test]
    fn subdiagonal_divide_and_conquer_matches_explicit_krylov() {
        let mut rng = StdRng::seed_from_u64(1);
        for &n in &[1usize, 2, 3, 5, 8, 13, 16, 33] {
            for &leaf in &[1usize, 2, 4, 32] {
                for corner in [false, true] {
                    let kind = OpKind::Subdiagonal { corner };
                    let mut p: Vec<C> = subdiag(&mut rng, n)[1..].to_vec();
                    if corner {
                        p.push(C::new(0.8, -0.4));
                    }
                    check_op(kind, n, &p, leaf, n as u64 * 7 + leaf as u64);
                }
            }
        }
    }

    /// The several-vector multiplies equal the sums of the one-vector ones (themselves checked
    /// against the explicit Krylov matrix above).
    #[test]
    fn subdiagonal_multi_vector_multiplies_match_single() {
        let mut rng = StdRng::seed_from_u64(3);
        for &n in &[2usize, 3, 5, 8, 13, 16, 33, 70] {
            for &leaf in &[1usize, 2, 4, 32] {
                for corner in [false, true] {
                    let kind = OpKind::Subdiagonal { corner };
                    let mut p: Vec<C> = subdiag(&mut rng, n)[1..].to_vec();
                    if corner {
                        p.push(C::new(-0.6, 0.3));
                    }
                    let OpPlan::Subdiag(plan) = OpPlan::new(kind, n, &p, Some(leaf)) else {
                        assert!(n <= leaf);
                        continue;
                    };
                    let mut ws = Ws::default();
                    let r = 3;
                    let vs: Vec<SubdiagVec<f64>> = (0..r)
                        .map(|_| plan.prepare(&rvec(&mut rng, n, 1.0), &mut ws))
                        .collect();
                    let pvs: Vec<&SubdiagVec<f64>> = vs.iter().collect();
                    let u = rvec(&mut rng, n, 1.0);
                    let cs = rvec(&mut rng, r * n, 1.0);
                    let mut want_tr = vec![zero(); r * n];
                    let mut want_fwd = vec![zero(); n];
                    for i in 0..r {
                        plan.tr(&vs[i], &u, &mut want_tr[i * n..(i + 1) * n], &mut ws);
                        plan.fwd(&vs[i], &cs[i * n..(i + 1) * n], &mut want_fwd, &mut ws);
                    }
                    let mut got_tr = vec![zero(); r * n];
                    plan.tr_multi(&pvs, &u, &mut got_tr, &mut ws);
                    let mut got_fwd = vec![zero(); n];
                    plan.fwd_multi(&pvs, &cs, &mut got_fwd, &mut ws);
                    assert!(err(&got_tr, &want_tr) < 1e-12, "tr n={n} leaf={leaf}");
                    assert!(err(&got_fwd, &want_fwd) < 1e-12, "fwd n={n} leaf={leaf}");
                }
            }
        }
    }

    #[test]
    fn shifts_diagonal_tridiagonal_match_explicit_krylov() {
        let mut rng = StdRng::seed_from_u64(2);
        for &n in &[1usize, 2, 3, 6, 8, 11] {
            for f in [-1i8, 0, 1] {
                check_op(OpKind::Shift(f), n, &[], LEAF, 3);
            }
            let d = rvec(&mut rng, n, 0.9);
            check_op(OpKind::Diagonal, n, &d, LEAF, 4);
            for corners in [false, true] {
                let kind = OpKind::Tridiagonal { corners };
                let p = rvec(&mut rng, kind.num_params(n), 0.6);
                check_op(kind, n, &p, LEAF, 5);
            }
        }
    }
}
