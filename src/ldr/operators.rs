//! Displacement operators and their Krylov matrices `K(M, v) = [v, M v, M² v, …, M^{n−1} v]`
//! (Thomas, Gu, Dao, Rudra, Ré, *Learning Compressed Transforms with Low Displacement Rank*,
//! NeurIPS 2018, §3).
//!
//! Every operator used here is tridiagonal with two corners ([`Band`]): the `f`-unit-circulant
//! shift `Z_f` (ones on the subdiagonal, `f` in the top-right corner), a diagonal, a learned
//! subdiagonal (with an optional top-right corner) and a learned tridiagonal (with optional
//! corners). [`Band`] also holds the plain `O(n²)` Krylov multiplies (Horner's rule and power
//! iteration) that are the reference for the fast ones in `krylov.rs` and the algorithm for the
//! diagonal and tridiagonal operators.

use super::fft::{zero, Cx, FftFloat};
use crate::scalar::Scalar;
use rand::Rng;

/// The operator classes of an [`Ldr`](super::Ldr) matrix `W = Σᵢ K(A, gᵢ) K(B, hᵢ)ᵀ`
/// (Thomas et al., NeurIPS 2018, Table 1 and §3), naming the two Krylov operators `A` and `B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LdrClass {
    /// `A = Z_1`, `B = Z_{-1}` with `corner` (`W` then satisfies `Z_1 W − W Z_{-1} =
    /// −2 Σᵢ gᵢ (Z_{-1}ᵀ hᵢ)ᵀ`, rank ≤ r), or `A = B = Z_0` without (`W = Σ L(gᵢ) L(hᵢ)ᵀ` with
    /// `L` lower-triangular Toeplitz). Fixed operators; multiplied through the FFT.
    ToeplitzLike { corner: bool },
    /// The Toeplitz-like matrix with its rows reversed: `W = J Σᵢ K(A, gᵢ) K(B, hᵢ)ᵀ`, `J` the
    /// reversal, same operators as [`ToeplitzLike`](LdrClass::ToeplitzLike).
    HankelLike { corner: bool },
    /// `A = diag(d)` with a learned `d`, `B = Z_0`: `K(A, g) = diag(g)·V(d)` with the
    /// Vandermonde matrix `V(d)_{jk} = d_j^k`. Multiplied in `O(n²)` per row and rank.
    VandermondeLike,
    /// `A`, `B` learned subdiagonals (`M[t, t−1] = s_t`), each with a learned top-right corner
    /// `M[0, n−1]` if `corner`; `tied` uses one operator for both (`B = A`). Multiplied by
    /// divide and conquer in `O(n log² n)` per row and rank.
    Subdiagonal { corner: bool, tied: bool },
    /// `A`, `B` learned tridiagonals, each with learned corners `M[0, n−1]`, `M[n−1, 0]` if
    /// `corners`; `tied` uses one operator for both. Multiplied in `O(n²)` per row and rank.
    Tridiagonal { corners: bool, tied: bool },
}

impl LdrClass {
    /// The Krylov operators `(A, B)`, whether the output is reversed, whether `B` is `A`.
    pub(crate) fn kinds(self) -> (OpKind, OpKind, bool, bool) {
        use OpKind::*;
        match self {
            LdrClass::ToeplitzLike { corner } | LdrClass::HankelLike { corner } => {
                let (a, b) = if corner { (1, -1) } else { (0, 0) };
                let flip = matches!(self, LdrClass::HankelLike { .. });
                (Shift(a), Shift(b), flip, false)
            }
            LdrClass::VandermondeLike => (Diagonal, Shift(0), false, false),
            LdrClass::Subdiagonal { corner, tied } => {
                (Subdiagonal { corner }, Subdiagonal { corner }, false, tied)
            }
            LdrClass::Tridiagonal { corners, tied } => (
                Tridiagonal { corners },
                Tridiagonal { corners },
                false,
                tied,
            ),
        }
    }
}

/// One Krylov operator's kind; its learned entries live in the parameter buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpKind {
    /// The fixed `Z_f`, `f ∈ {−1, 0, 1}`.
    Shift(i8),
    /// `diag(d)`: parameters `d_0..d_{n−1}`.
    Diagonal,
    /// Parameters `s_1..s_{n−1}` (`M[t, t−1] = s_t`), then the corner `M[0, n−1]` if any.
    Subdiagonal { corner: bool },
    /// Parameters `sub_1..sub_{n−1}` (`M[t, t−1]`), `diag_0..diag_{n−1}`, `sup_1..sup_{n−1}`
    /// (`M[t−1, t]`), then `M[0, n−1]`, `M[n−1, 0]` if `corners`.
    Tridiagonal { corners: bool },
}

impl OpKind {
    pub fn num_params(self, n: usize) -> usize {
        match self {
            OpKind::Shift(_) => 0,
            OpKind::Diagonal => n,
            OpKind::Subdiagonal { corner } => n - 1 + corner as usize,
            OpKind::Tridiagonal { corners } => 3 * n - 2 + 2 * corners as usize,
        }
    }

    /// Initial entries: subdiagonals 1, diagonals, superdiagonals and corners 0 (so a learned
    /// subdiagonal or tridiagonal starts as `Z_0`), and a Vandermonde diagonal uniform in
    /// `(−0.7, 0.7)`.
    pub fn init<T: Scalar, R: Rng + ?Sized>(self, n: usize, rng: &mut R) -> Vec<T> {
        let (o, z) = (T::one(), T::zero());
        match self {
            OpKind::Shift(_) => vec![],
            OpKind::Diagonal => (0..n)
                .map(|_| T::from_f64(rng.random_range(-0.7..0.7)))
                .collect(),
            OpKind::Subdiagonal { corner } => {
                let mut p = vec![o; n - 1];
                if corner {
                    p.push(z);
                }
                p
            }
            OpKind::Tridiagonal { corners } => {
                let mut p = vec![o; n - 1];
                p.extend(std::iter::repeat_n(z, 2 * n - 1 + 2 * corners as usize));
                p
            }
        }
    }

    /// The operator with entries `p` (laid out as [`OpKind`] documents).
    pub fn band<F: FftFloat>(self, n: usize, p: &[Cx<F>]) -> Band<F> {
        let one = Cx::new(F::one(), F::zero());
        let shifted = |s: &[Cx<F>]| {
            let mut v = Vec::with_capacity(n);
            v.push(zero());
            v.extend_from_slice(s);
            v
        };
        let mut b = Band::new(n);
        match self {
            OpKind::Shift(f) => {
                let mut s = vec![one; n];
                s[0] = zero();
                b.sub = Some(s);
                b.top = Cx::new(F::of(f as f64), F::zero());
            }
            OpKind::Diagonal => b.diag = Some(p[..n].to_vec()),
            OpKind::Subdiagonal { corner } => {
                b.sub = Some(shifted(&p[..n - 1]));
                if corner {
                    b.top = p[n - 1];
                }
            }
            OpKind::Tridiagonal { corners } => {
                b.sub = Some(shifted(&p[..n - 1]));
                b.diag = Some(p[n - 1..2 * n - 1].to_vec());
                b.sup = Some(shifted(&p[2 * n - 1..3 * n - 2]));
                if corners {
                    b.top = p[3 * n - 2];
                    b.bottom = p[3 * n - 1];
                }
            }
        }
        b
    }

    /// Add the entry gradients `g` into `out` (laid out as the parameters).
    pub fn scatter_grad<F: FftFloat>(self, n: usize, g: &BandGrad<F>, out: &mut [Cx<F>]) {
        match self {
            OpKind::Shift(_) => {}
            OpKind::Diagonal => add(&mut out[..n], &g.diag),
            OpKind::Subdiagonal { corner } => {
                add(&mut out[..n - 1], &g.sub[1..]);
                if corner {
                    out[n - 1] += g.top;
                }
            }
            OpKind::Tridiagonal { corners } => {
                add(&mut out[..n - 1], &g.sub[1..]);
                add(&mut out[n - 1..2 * n - 1], &g.diag);
                add(&mut out[2 * n - 1..3 * n - 2], &g.sup[1..]);
                if corners {
                    out[3 * n - 2] += g.top;
                    out[3 * n - 1] += g.bottom;
                }
            }
        }
    }
}

fn add<F: FftFloat>(dst: &mut [Cx<F>], src: &[Cx<F>]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// A tridiagonal operator with corners: `M[t, t−1] = sub[t]`, `M[t, t] = diag[t]`,
/// `M[t−1, t] = sup[t]` (`t ≥ 1`), plus `top` at `(0, n−1)` and `bottom` at `(n−1, 0)` (added
/// to whatever band entry sits there when `n ≤ 2`). Absent bands are zero.
#[derive(Clone, Debug)]
pub(crate) struct Band<F: FftFloat> {
    pub n: usize,
    pub sub: Option<Vec<Cx<F>>>,
    pub diag: Option<Vec<Cx<F>>>,
    pub sup: Option<Vec<Cx<F>>>,
    pub top: Cx<F>,
    pub bottom: Cx<F>,
}

/// Gradients of a real-valued function with respect to every entry a [`Band`] may hold.
#[derive(Clone, Debug)]
pub(crate) struct BandGrad<F: FftFloat> {
    pub sub: Vec<Cx<F>>,
    pub diag: Vec<Cx<F>>,
    pub sup: Vec<Cx<F>>,
    pub top: Cx<F>,
    pub bottom: Cx<F>,
}

impl<F: FftFloat> BandGrad<F> {
    pub fn new(n: usize) -> Self {
        Self {
            sub: vec![zero(); n],
            diag: vec![zero(); n],
            sup: vec![zero(); n],
            top: zero(),
            bottom: zero(),
        }
    }
    pub fn add_assign(&mut self, o: &Self) {
        add(&mut self.sub, &o.sub);
        add(&mut self.diag, &o.diag);
        add(&mut self.sup, &o.sup);
        self.top += o.top;
        self.bottom += o.bottom;
    }
}

/// The row-by-row reusable buffers of the Horner multiplies.
#[derive(Default)]
pub(crate) struct HornerWs<F: FftFloat> {
    a: Vec<Cx<F>>,
    b: Vec<Cx<F>>,
}

impl<F: FftFloat> Band<F> {
    pub fn new(n: usize) -> Self {
        Self {
            n,
            sub: None,
            diag: None,
            sup: None,
            top: zero(),
            bottom: zero(),
        }
    }

    /// `out = M y + α v`.
    pub fn apply_axpy(&self, y: &[Cx<F>], alpha: Cx<F>, v: &[Cx<F>], out: &mut [Cx<F>]) {
        let n = self.n;
        for (o, &vi) in out[..n].iter_mut().zip(&v[..n]) {
            *o = alpha * vi;
        }
        if let Some(d) = &self.diag {
            for i in 0..n {
                out[i] += d[i] * y[i];
            }
        }
        if let Some(s) = &self.sub {
            for i in 1..n {
                out[i] += s[i] * y[i - 1];
            }
        }
        if let Some(s) = &self.sup {
            for i in 1..n {
                out[i - 1] += s[i] * y[i];
            }
        }
        out[0] += self.top * y[n - 1];
        out[n - 1] += self.bottom * y[0];
    }

    /// `out = Mᵀ y + α v`.
    pub fn apply_t_axpy(&self, y: &[Cx<F>], alpha: Cx<F>, v: &[Cx<F>], out: &mut [Cx<F>]) {
        let n = self.n;
        for (o, &vi) in out[..n].iter_mut().zip(&v[..n]) {
            *o = alpha * vi;
        }
        if let Some(d) = &self.diag {
            for i in 0..n {
                out[i] += d[i] * y[i];
            }
        }
        if let Some(s) = &self.sub {
            for i in 1..n {
                out[i - 1] += s[i] * y[i];
            }
        }
        if let Some(s) = &self.sup {
            for i in 1..n {
                out[i] += s[i] * y[i - 1];
            }
        }
        out[n - 1] += self.top * y[0];
        out[0] += self.bottom * y[n - 1];
    }

    /// `g += ∂(aᵀ M b)/∂M` on the entries `M` holds.
    fn outer_grad(&self, a: &[Cx<F>], b: &[Cx<F>], g: &mut BandGrad<F>) {
        let n = self.n;
        if self.diag.is_some() {
            for i in 0..n {
                g.diag[i] += a[i] * b[i];
            }
        }
        if self.sub.is_some() {
            for t in 1..n {
                g.sub[t] += a[t] * b[t - 1];
            }
        }
        if self.sup.is_some() {
            for t in 1..n {
                g.sup[t] += a[t - 1] * b[t];
            }
        }
        g.top += a[0] * b[n - 1];
        g.bottom += a[n - 1] * b[0];
    }

    /// `out += K(M, v) c = Σ_k c_k M^k v` by Horner's rule (`O(n)` per step, `n` steps).
    pub fn krylov_fwd(&self, v: &[Cx<F>], c: &[Cx<F>], out: &mut [Cx<F>], ws: &mut HornerWs<F>) {
        let n = self.n;
        resize(&mut ws.a, n);
        resize(&mut ws.b, n);
        for (y, &vi) in ws.a.iter_mut().zip(&v[..n]) {
            *y = c[n - 1] * vi;
        }
        for k in (0..n - 1).rev() {
            self.apply_axpy(&ws.a, c[k], v, &mut ws.b);
            std::mem::swap(&mut ws.a, &mut ws.b);
        }
        for (o, &y) in out[..n].iter_mut().zip(&ws.a) {
            *o += y;
        }
    }

    /// `out += K(M, v)ᵀ u`, i.e. `out_k += uᵀ M^k v`, by power iteration.
    pub fn krylov_tr(&self, v: &[Cx<F>], u: &[Cx<F>], out: &mut [Cx<F>], ws: &mut HornerWs<F>) {
        let n = self.n;
        resize(&mut ws.a, n);
        resize(&mut ws.b, n);
        ws.a.copy_from_slice(&v[..n]);
        for (k, o) in out[..n].iter_mut().enumerate() {
            *o += dot(&u[..n], &ws.a);
            if k + 1 < n {
                self.apply_axpy(&ws.a, zero(), v, &mut ws.b);
                std::mem::swap(&mut ws.a, &mut ws.b);
            }
        }
    }

    /// Gradients of `Φ = Σ_b u_bᵀ K(M, v) c_b`: `dv += ∂Φ/∂v = Σ_b Σ_k c_{bk} (Mᵀ)^k u_b` and
    /// `g += ∂Φ/∂M = Σ_b Σ_l z_{b,l+1} (M^l v)ᵀ` with `z_{b,l} = Σ_{k≥l} c_{bk} (Mᵀ)^{k−l} u_b`
    /// (reverse-mode Horner; the powers `M^l v` are recomputed from `√n` checkpoints).
    pub fn krylov_grad(
        &self,
        v: &[Cx<F>],
        us: &[&[Cx<F>]],
        cs: &[&[Cx<F>]],
        dv: &mut [Cx<F>],
        g: &mut BandGrad<F>,
    ) {
        let n = self.n;
        let rows = us.len();
        if n == 1 {
            for (u, c) in us.iter().zip(cs) {
                dv[0] += u[0] * c[0];
            }
            return;
        }
        // z_{b, n−1} = c_{b, n−1} u_b
        let mut z: Vec<Cx<F>> = Vec::with_capacity(rows * n);
        for (u, c) in us.iter().zip(cs) {
            z.extend(u[..n].iter().map(|&ui| c[n - 1] * ui));
        }
        let mut tmp = vec![zero(); n];
        let m = ((n - 1) as f64).sqrt().ceil().max(1.0) as usize;
        // Checkpoints p_{jm} = M^{jm} v for jm ≤ n − 2.
        let nblocks = (n - 1).div_ceil(m);
        let mut cps: Vec<Vec<Cx<F>>> = Vec::with_capacity(nblocks);
        let mut p = v[..n].to_vec();
        for l in 0..n - 1 {
            if l % m == 0 {
                cps.push(p.clone());
            }
            self.apply_axpy(&p, zero(), v, &mut tmp);
            std::mem::swap(&mut p, &mut tmp);
        }
        let mut block: Vec<Vec<Cx<F>>> = vec![vec![zero(); n]; m];
        for j in (0..nblocks).rev() {
            let lo = j * m;
            let hi = (lo + m).min(n - 1);
            block[0].copy_from_slice(&cps[j]);
            for l in 1..hi - lo {
                let (prev, next) = block.split_at_mut(l);
                self.apply_axpy(&prev[l - 1], zero(), v, &mut next[0]);
            }
            for l in (lo..hi).rev() {
                let pl = &block[l - lo];
                for b in 0..rows {
                    let zb = &mut z[b * n..(b + 1) * n];
                    self.outer_grad(zb, pl, g);
                    self.apply_t_axpy(zb, cs[b][l], us[b], &mut tmp);
                    zb.copy_from_slice(&tmp);
                }
            }
        }
        for b in 0..rows {
            for (d, &zi) in dv[..n].iter_mut().zip(&z[b * n..(b + 1) * n]) {
                *d += zi;
            }
        }
    }
}

#[inline]
fn resize<F: FftFloat>(v: &mut Vec<Cx<F>>, n: usize) {
    v.resize(n, zero());
}

/// `Σ a_i b_i` (no conjugation).
#[inline]
pub(crate) fn dot<F: FftFloat>(a: &[Cx<F>], b: &[Cx<F>]) -> Cx<F> {
    let mut s = zero();
    for (&x, &y) in a.iter().zip(b) {
        s += x * y;
    }
    s
}
