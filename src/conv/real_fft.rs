//! The real-input trick: an `N`-point real DFT as an `N/2`-point complex one. With
//! `z[j] = x[2j] + i·x[2j+1]` and `Z = DFT_{N/2}(z)`, the even/odd half-spectra are
//! `E[k] = (Z[k] + Z̄[h−k])/2`, `O[k] = (Z[k] − Z̄[h−k])/(2i)` and `X[k] = E[k] + ω_N^k O[k]`
//! for `k = 0..=h`, `h = N/2` (the FFT texts' "two for the price of one", e.g. Press et al.,
//! *Numerical Recipes* §12.3). The half-spectra may be stored in any order (`pos_of`,
//! `freq_at`) so that the same code serves rustfft's natural order and FlashButterfly's
//! digit-reversed order; `X[h]` always lives in slot `h`.

use super::{fr, ConvFloat};
use num_complex::Complex;

/// `ω_N^k = exp(−2πik/N)` for `k = 0..=N/2`, computed in f64.
pub(crate) fn half_twiddles<T: ConvFloat>(n: usize) -> Vec<Complex<T>> {
    (0..=n / 2)
        .map(|k| {
            let a = -2.0 * std::f64::consts::PI * k as f64 / n as f64;
            Complex::new(fr::<T>(a.cos()), fr::<T>(a.sin()))
        })
        .collect()
}

/// `x` (real, length ≤ N, zero-padded) packed as `h = N/2` complex numbers.
#[inline]
pub(crate) fn pack<T: ConvFloat>(x: impl Iterator<Item = T>, z: &mut [Complex<T>]) {
    z.fill(Complex::new(T::zero(), T::zero()));
    let mut it = x;
    for zj in z.iter_mut() {
        let Some(a) = it.next() else { break };
        zj.re = a;
        match it.next() {
            Some(b) => zj.im = b,
            None => break,
        }
    }
}

/// `Z` (length `h`, slot `p` holding frequency `freq_at(p)`) → `X[0..=h]` in the same slots
/// (`X[h]` in slot `h`); `out.len() == h + 1`.
#[inline]
pub(crate) fn untangle<T: ConvFloat>(
    z: &[Complex<T>],
    out: &mut [Complex<T>],
    w: &[Complex<T>],
    freq_at: impl Fn(usize) -> usize,
    pos_of: impl Fn(usize) -> usize,
) {
    let h = z.len();
    let half = fr::<T>(0.5);
    for p in 0..h {
        let k = freq_at(p);
        let zk = z[p];
        let zc = z[pos_of((h - k) % h)].conj();
        let e = (zk + zc) * half;
        let d = (zk - zc) * half;
        // O = d / i = −i·d
        let o = Complex::new(d.im, -d.re);
        out[p] = e + w[k] * o;
    }
    let z0 = z[pos_of(0)];
    out[h] = Complex::new(z0.re - z0.im, T::zero());
}

/// The inverse of [`untangle`] times `scale`: `X[0..=h]` (same slots) → `Z` with
/// `Z[k] = scale·(E[k] + i·O[k])`, `E = (X[k] + X̄[h−k])/2`, `O = (X[k] − X̄[h−k])·ω̄_N^k/2`.
#[inline]
pub(crate) fn tangle<T: ConvFloat>(
    x: &[Complex<T>],
    z: &mut [Complex<T>],
    w: &[Complex<T>],
    scale: T,
    freq_at: impl Fn(usize) -> usize,
    pos_of: impl Fn(usize) -> usize,
) {
    let h = z.len();
    let half = fr::<T>(0.5) * scale;
    for p in 0..h {
        let k = freq_at(p);
        let xk = x[p];
        let xc = if k == 0 { x[h] } else { x[pos_of(h - k)] }.conj();
        let e = (xk + xc) * half;
        let o = (xk - xc) * w[k].conj() * half;
        z[p] = Complex::new(e.re - o.im, e.im + o.re);
    }
}

/// Unpack `z` (after an unnormalised inverse half-size FFT) into the first `out.len()` reals.
#[inline]
pub(crate) fn unpack<T: ConvFloat>(z: &[Complex<T>], out: &mut [T]) {
    for (t, o) in out.iter_mut().enumerate() {
        let c = z[t / 2];
        *o = if t % 2 == 0 { c.re } else { c.im };
    }
}

/// Adjoint of [`untangle`] (a real-linear map) for PyTorch-convention gradients: `gx`
/// (`h + 1` slots) → `gz` (`h` slots). For `X = a·Z[p] + b·conj(Z[q])` the gradient adds
/// `conj(a)·G_X` to slot `p` and `b·conj(G_X)` to slot `q`.
#[cfg(test)]
pub(crate) fn untangle_adjoint<T: ConvFloat>(
    gx: &[Complex<T>],
    gz: &mut [Complex<T>],
    w: &[Complex<T>],
    freq_at: impl Fn(usize) -> usize,
    pos_of: impl Fn(usize) -> usize,
) {
    let h = gz.len();
    let half = fr::<T>(0.5);
    gz.fill(Complex::new(T::zero(), T::zero()));
    let i = Complex::new(T::zero(), T::one());
    let one = Complex::new(T::one(), T::zero());
    for (p, &g) in gx[..=h].iter().enumerate() {
        let (k, src, own) = if p == h {
            (h, pos_of(0), pos_of(0))
        } else {
            let k = freq_at(p);
            (k, pos_of((h - k) % h), p)
        };
        let a = (one - i * w[k]) * half;
        let b = (one + i * w[k]) * half;
        gz[own] += a.conj() * g;
        gz[src] += b * g.conj();
    }
}

/// The fused spectral pass's plan for one slot order: the mirror pairs `(p, q)` (slot `p`
/// holding frequency `k`, `1 ≤ k ≤ h/2`, slot `q` frequency `h − k`, `p` ascending) and
/// `ω_N^k` as real and imaginary planes.
#[derive(Clone, Debug)]
pub(crate) struct MirrorPairs<T> {
    h: usize,
    zero_slot: usize,
    p: Vec<u32>,
    q: Vec<u32>,
    wr: Vec<T>,
    wi: Vec<T>,
}

/// Pairs per vector step of the fused pass.
const LANES: usize = 16;

impl<T: ConvFloat> MirrorPairs<T> {
    pub(crate) fn new(
        h: usize,
        w: &[Complex<T>],
        freq_at: impl Fn(usize) -> usize,
        pos_of: impl Fn(usize) -> usize,
    ) -> Self {
        let mut out = MirrorPairs {
            h,
            zero_slot: pos_of(0),
            p: Vec::new(),
            q: Vec::new(),
            wr: Vec::new(),
            wi: Vec::new(),
        };
        for p in 0..h {
            let k = freq_at(p);
            if k >= 1 && 2 * k <= h {
                out.p.push(p as u32);
                out.q.push(pos_of(h - k) as u32);
                out.wr.push(w[k].re);
                out.wi.push(w[k].im);
            }
        }
        out
    }

    /// Complex values per channel of [`layout`](Self::layout)'s spectrum.
    pub(crate) fn spec_len(&self) -> usize {
        2 + 2 * self.p.len()
    }

    /// [`untangle_adjoint`] of a gradient `gx` given in [`layout`](Self::layout), into `gz`
    /// (`h` slots): per mirror pair the adjoint of `untangle` is `tangle` (unscaled), and the
    /// real slots `X[0] = Re Z[0] + Im Z[0]`, `X[h] = Re Z[0] − Im Z[0]` give
    /// `∂L/∂Z[0] = Re G₀·(1 + i) + Re G_h·(1 − i)`.
    pub(crate) fn untangle_adjoint(&self, gx: &[Complex<T>], gz: &mut [Complex<T>]) {
        let (g0, gh) = (gx[0].re, gx[1].re);
        gz[self.zero_slot] = Complex::new(g0 + gh, g0 - gh);
        let n = self.p.len();
        let planes = &super::block_kernel::as_reals(&gx[2..])[..4 * n];
        let (pr, rest) = planes.split_at(n);
        let (pi, rest) = rest.split_at(n);
        let (qr, qi) = rest.split_at(n);
        let half = fr::<T>(0.5);
        let lanes = |v: &[T], j: usize, m: usize| {
            let mut o = [T::zero(); LANES];
            o[..m].copy_from_slice(&v[j..j + m]);
            o
        };
        let mut j = 0;
        while j < n {
            let m = LANES.min(n - j);
            let w = (&lanes(&self.wr, j, m), &lanes(&self.wi, j, m));
            let (zpr, zpi, zqr, zqi) = tangle_lanes(
                (&lanes(pr, j, m), &lanes(pi, j, m)),
                (&lanes(qr, j, m), &lanes(qi, j, m)),
                w,
                half,
            );
            for i in 0..m {
                gz[self.p[j + i] as usize] = Complex::new(zpr[i], zpi[i]);
                gz[self.q[j + i] as usize] = Complex::new(zqr[i], zqi[i]);
            }
            j += m;
        }
    }

    /// The inverse of [`layout`](Self::layout): `out` (`h + 1` slots) from the laid-out
    /// `spec` (a pair whose two slots coincide, `k = h/2`, takes the second of its values).
    #[cfg(test)]
    pub(crate) fn unlayout(&self, spec: &[Complex<T>], out: &mut [Complex<T>]) {
        out[self.zero_slot] = spec[0];
        out[self.h] = spec[1];
        let n = self.p.len();
        let planes = super::block_kernel::as_reals(&spec[2..]);
        for (j, (&p, &q)) in self.p.iter().zip(&self.q).enumerate() {
            out[p as usize] = Complex::new(planes[j], planes[n + j]);
            out[q as usize] = Complex::new(planes[2 * n + j], planes[3 * n + j]);
        }
    }

    /// A spectrum in slots (`h + 1` values) laid out for the pass: `K[0]`, `K[h]`, then the
    /// planes `Re K_p`, `Im K_p`, `Re K_q`, `Im K_q` over the pairs.
    pub(crate) fn layout(&self, kspec: &[Complex<T>], out: &mut [Complex<T>]) {
        out[0] = kspec[self.zero_slot];
        out[1] = kspec[self.h];
        let n = self.p.len();
        let planes = super::block_kernel::as_reals_mut(&mut out[2..]);
        for (j, (&p, &q)) in self.p.iter().zip(&self.q).enumerate() {
            let (a, b) = (kspec[p as usize], kspec[q as usize]);
            planes[j] = a.re;
            planes[n + j] = a.im;
            planes[2 * n + j] = b.re;
            planes[3 * n + j] = b.im;
        }
    }
}

/// [`untangle`], the product with the spectrum and [`tangle`] with `scale`, in one pass over
/// mirror pairs, from `src` into `dst` (both `h` slots); `kspec` is in
/// [`MirrorPairs::layout`]. Frequencies `k` and `h − k` depend only on `Z[k]` and `Z[h − k]`,
/// and with `ω^{h−k} = −ω̄^k`: `X[h−k] = conj(E[k] − ω^k O[k])`,
/// `Z'[h−k] = s·(conj E'[k] + i·conj O'[k])`.
pub(crate) fn untangle_mul_tangle<T: ConvFloat>(
    src: &[Complex<T>],
    dst: &mut [Complex<T>],
    kspec: &[Complex<T>],
    mp: &MirrorPairs<T>,
    scale: T,
) {
    dispatch_pairs(src, dst, kspec, None, mp, scale)
}

/// The adjoint of [`untangle_mul_tangle`] (a real-linear map) for PyTorch-convention
/// gradients, with the kernel-spectrum gradient: `gsrc = ∂L/∂Z'` → `gdst = ∂L/∂Z`, and
/// `gk += ∂L/∂K` (in [`MirrorPairs::layout`]), given the forward's input `z`. Per mirror
/// pair the adjoint of `tangle` is `s·untangle` and that of `untangle` is `tangle` (unscaled),
/// so `∂L/∂Z = tangle(conj K ⊙ s·untangle(∂L/∂Z'))` and `∂L/∂K = conj X ⊙ s·untangle(∂L/∂Z')`
/// with `X = untangle(z)`; the real slots `X[0] = Re Z[0] + Im Z[0]`,
/// `X[h] = Re Z[0] − Im Z[0]` are done apart.
pub(crate) fn untangle_mul_tangle_adjoint<T: ConvFloat>(
    gsrc: &[Complex<T>],
    gdst: &mut [Complex<T>],
    z: &[Complex<T>],
    kspec: &[Complex<T>],
    gk: &mut [Complex<T>],
    mp: &MirrorPairs<T>,
    scale: T,
) {
    dispatch_pairs(gsrc, gdst, kspec, Some((z, gk)), mp, scale)
}

type Adjoint<'a, T> = Option<(&'a [Complex<T>], &'a mut [Complex<T>])>;

fn dispatch_pairs<T: ConvFloat>(
    src: &[Complex<T>],
    dst: &mut [Complex<T>],
    kspec: &[Complex<T>],
    adj: Adjoint<'_, T>,
    mp: &MirrorPairs<T>,
    scale: T,
) {
    simd_dispatch!(
        avx512: pairs_avx512(src, dst, kspec, adj, mp, scale),
        avx: pairs_avx(src, dst, kspec, adj, mp, scale),
        generic: pairs_generic(src, dst, kspec, adj, mp, scale),
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx,fma")]
unsafe fn pairs_avx512<T: ConvFloat>(
    src: &[Complex<T>],
    dst: &mut [Complex<T>],
    kspec: &[Complex<T>],
    adj: Adjoint<'_, T>,
    mp: &MirrorPairs<T>,
    scale: T,
) {
    pairs_generic(src, dst, kspec, adj, mp, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,fma")]
unsafe fn pairs_avx<T: ConvFloat>(
    src: &[Complex<T>],
    dst: &mut [Complex<T>],
    kspec: &[Complex<T>],
    adj: Adjoint<'_, T>,
    mp: &MirrorPairs<T>,
    scale: T,
) {
    pairs_generic(src, dst, kspec, adj, mp, scale)
}

/// `(X_k, X_{h−k})` from `(a, b) = (Z[k], Z[h−k])` over the lanes, times `c` (untangle):
/// `e = (a + b̄)/2`, `o = −i(a − b̄)/2`, `X_k = c(e + ωo)`, `X_{h−k} = c·conj(e − ωo)`.
#[inline(always)]
#[allow(clippy::type_complexity)]
fn untangle_lanes<T: ConvFloat>(
    a: (&[T; LANES], &[T; LANES]),
    b: (&[T; LANES], &[T; LANES]),
    w: (&[T; LANES], &[T; LANES]),
    c: T,
) -> ([T; LANES], [T; LANES], [T; LANES], [T; LANES]) {
    let ((ar, ai), (br, bi), (wr, wi)) = (a, b, w);
    let mut out = [[T::zero(); LANES]; 4];
    for i in 0..LANES {
        let er = (ar[i] + br[i]) * c;
        let ei = (ai[i] - bi[i]) * c;
        let dr = (ar[i] - br[i]) * c;
        let di = (ai[i] + bi[i]) * c;
        let (or, oi) = (di, -dr);
        let wor = wr[i] * or - wi[i] * oi;
        let woi = wr[i] * oi + wi[i] * or;
        out[0][i] = er + wor;
        out[1][i] = ei + woi;
        out[2][i] = er - wor;
        out[3][i] = woi - ei;
    }
    (out[0], out[1], out[2], out[3])
}

/// `(Z_k, Z_{h−k})` from `(Y_k, Y_{h−k})` over the lanes, times `2c` (tangle):
/// `e = c(Y_k + Ȳ_{h−k})`, `o = c(Y_k − Ȳ_{h−k})·ω̄`, `Z_k = e + io`, `Z_{h−k} = ē + i·ō`.
#[inline(always)]
#[allow(clippy::type_complexity)]
fn tangle_lanes<T: ConvFloat>(
    yk: (&[T; LANES], &[T; LANES]),
    ym: (&[T; LANES], &[T; LANES]),
    w: (&[T; LANES], &[T; LANES]),
    c: T,
) -> ([T; LANES], [T; LANES], [T; LANES], [T; LANES]) {
    let ((ykr, yki), (ymr, ymi), (wr, wi)) = (yk, ym, w);
    let mut out = [[T::zero(); LANES]; 4];
    for i in 0..LANES {
        let e2r = (ykr[i] + ymr[i]) * c;
        let e2i = (yki[i] - ymi[i]) * c;
        let gr = (ykr[i] - ymr[i]) * c;
        let gi = (yki[i] + ymi[i]) * c;
        let o2r = gr * wr[i] + gi * wi[i];
        let o2i = gi * wr[i] - gr * wi[i];
        out[0][i] = e2r - o2i;
        out[1][i] = e2i + o2r;
        out[2][i] = e2r + o2i;
        out[3][i] = o2r - e2i;
    }
    (out[0], out[1], out[2], out[3])
}

/// `(p·q)` or `(conj(p)·q)` over the lanes, complex as planes.
#[inline(always)]
fn cmul_lanes<T: ConvFloat>(
    p: (&[T; LANES], &[T; LANES]),
    q: (&[T; LANES], &[T; LANES]),
    conj_p: bool,
) -> ([T; LANES], [T; LANES]) {
    let mut re = [T::zero(); LANES];
    let mut im = [T::zero(); LANES];
    for i in 0..LANES {
        let pi = if conj_p { -p.1[i] } else { p.1[i] };
        re[i] = p.0[i] * q.0[i] - pi * q.1[i];
        im[i] = p.0[i] * q.1[i] + pi * q.0[i];
    }
    (re, im)
}

#[inline(always)]
fn pairs_generic<T: ConvFloat>(
    src: &[Complex<T>],
    dst: &mut [Complex<T>],
    kspec: &[Complex<T>],
    mut adj: Adjoint<'_, T>,
    mp: &MirrorPairs<T>,
    scale: T,
) {
    let h = mp.h;
    debug_assert!(src.len() == h && dst.len() == h);
    let half = fr::<T>(0.5);
    let hs = half * scale;
    let zs = mp.zero_slot;
    // k = 0 and h share Z[0]: X[0] = re + im, X[h] = re − im.
    match adj.as_mut() {
        None => {
            let a = src[zs];
            let y0 = kspec[0] * (a.re + a.im);
            let ych = (kspec[1] * (a.re - a.im)).conj();
            let e = (y0 + ych) * hs;
            let o = (y0 - ych) * hs;
            dst[zs] = Complex::new(e.re - o.im, e.im + o.re);
        }
        Some((z, gk)) => {
            // Z' = s/2·((1 + i)·K₀X₀ + (1 − i)·conj(K_h X_h)).
            let (a, g) = (z[zs], src[zs]);
            let c = Complex::new(hs, -hs);
            let gy0 = c * g;
            let gyh = c * g.conj();
            gk[0] += gy0 * (a.re + a.im);
            gk[1] += gyh * (a.re - a.im);
            let g0 = (kspec[0].conj() * gy0).re;
            let gh = (kspec[1].conj() * gyh).re;
            dst[zs] = Complex::new(g0 + gh, g0 - gh);
        }
    }
    let n = mp.p.len();
    let planes = &super::block_kernel::as_reals(&kspec[2..])[..4 * n];
    let (kpr, rest) = planes.split_at(n);
    let (kpi, rest) = rest.split_at(n);
    let (kqr, kqi) = rest.split_at(n);
    let mut gkp = adj.map(|(z, gk)| {
        let gp = &mut super::block_kernel::as_reals_mut(&mut gk[2..])[..4 * n];
        (z, gp)
    });
    let lanes = |v: &[T], j: usize, m: usize| {
        let mut o = [T::zero(); LANES];
        o[..m].copy_from_slice(&v[j..j + m]);
        o
    };
    let mut j = 0;
    while j < n {
        let m = LANES.min(n - j);
        let mut ar = [T::zero(); LANES];
        let mut ai = [T::zero(); LANES];
        let mut br = [T::zero(); LANES];
        let mut bi = [T::zero(); LANES];
        for i in 0..m {
            let a = src[mp.p[j + i] as usize];
            let b = src[mp.q[j + i] as usize];
            ar[i] = a.re;
            ai[i] = a.im;
            br[i] = b.re;
            bi[i] = b.im;
        }
        let (wr, wi) = (lanes(&mp.wr, j, m), lanes(&mp.wi, j, m));
        let (pr, pi) = (lanes(kpr, j, m), lanes(kpi, j, m));
        let (qr, qi) = (lanes(kqr, j, m), lanes(kqi, j, m));
        let w = (&wr, &wi);
        let out = match gkp.as_mut() {
            None => {
                let (xkr, xki, xmr, xmi) = untangle_lanes((&ar, &ai), (&br, &bi), w, half);
                let (ykr, yki) = cmul_lanes((&xkr, &xki), (&pr, &pi), false);
                let (ymr, ymi) = cmul_lanes((&xmr, &xmi), (&qr, &qi), false);
                tangle_lanes((&ykr, &yki), (&ymr, &ymi), w, hs)
            }
            Some((z, gp)) => {
                let (gkpr, rest) = gp.split_at_mut(n);
                let (gkpi, rest) = rest.split_at_mut(n);
                let (gkqr, gkqi) = rest.split_at_mut(n);
                let (mut zar, mut zai) = ([T::zero(); LANES], [T::zero(); LANES]);
                let (mut zbr, mut zbi) = ([T::zero(); LANES], [T::zero(); LANES]);
                for i in 0..m {
                    let a = z[mp.p[j + i] as usize];
                    let b = z[mp.q[j + i] as usize];
                    zar[i] = a.re;
                    zai[i] = a.im;
                    zbr[i] = b.re;
                    zbi[i] = b.im;
                }
                let (xkr, xki, xmr, xmi) = untangle_lanes((&zar, &zai), (&zbr, &zbi), w, half);
                let (gkr, gki, gmr, gmi) = untangle_lanes((&ar, &ai), (&br, &bi), w, hs);
                let (dpr, dpi) = cmul_lanes((&xkr, &xki), (&gkr, &gki), true);
                let (dqr, dqi) = cmul_lanes((&xmr, &xmi), (&gmr, &gmi), true);
                for i in 0..m {
                    gkpr[j + i] += dpr[i];
                    gkpi[j + i] += dpi[i];
                    gkqr[j + i] += dqr[i];
                    gkqi[j + i] += dqi[i];
                }
                let (ykr, yki) = cmul_lanes((&pr, &pi), (&gkr, &gki), true);
                let (ymr, ymi) = cmul_lanes((&qr, &qi), (&gmr, &gmi), true);
                tangle_lanes((&ykr, &yki), (&ymr, &ymi), w, half)
            }
        };
        let (zpr, zpi, zqr, zqi) = out;
        for i in 0..m {
            dst[mp.p[j + i] as usize] = Complex::new(zpr[i], zpi[i]);
            dst[mp.q[j + i] as usize] = Complex::new(zqr[i], zqi[i]);
        }
        j += m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::MonarchFft;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn randc(n: usize, rng: &mut StdRng) -> Vec<Complex<f64>> {
        (0..n)
            .map(|_| <Complex<f64> as crate::Scalar>::randn(rng, 1.0))
            .collect()
    }

    /// `Re Σ conj(a)·b`, the real inner product the adjoints are taken in.
    fn dot(a: &[Complex<f64>], b: &[Complex<f64>]) -> f64 {
        a.iter().zip(b).map(|(x, y)| (x.conj() * y).re).sum()
    }

    fn plan(h: usize) -> (MonarchFft<f64>, Vec<Complex<f64>>, MirrorPairs<f64>) {
        let t = MonarchFft::<f64>::new(h).unwrap();
        let w = half_twiddles::<f64>(2 * h);
        let mp = MirrorPairs::new(
            h,
            &w,
            |p| t.freq_at(p),
            |k| (0..h).find(|&p| t.freq_at(p) == k).unwrap(),
        );
        (t, w, mp)
    }

    /// The fused pass against untangle · product · tangle in slot order, and its adjoint
    /// against the inner-product identities for the data (`⟨A z, g⟩ = ⟨z, Aᵀg⟩`) and for the
    /// kernel spectrum (through the slot order, where the forward is linear in `K`).
    #[test]
    fn fused_spectral_pass_and_its_adjoint() {
        let mut rng = StdRng::seed_from_u64(3);
        for h in [128usize, 512, 2048] {
            let (t, w, mp) = plan(h);
            let fa = |p: usize| t.freq_at(p);
            let po = |k: usize| (0..h).find(|&p| t.freq_at(p) == k).unwrap();
            let scale = 1.0 / h as f64;
            let z = randc(h, &mut rng);
            let kslots = randc(h + 1, &mut rng);
            let mut klaid = vec![Complex::new(0.0, 0.0); mp.spec_len()];
            mp.layout(&kslots, &mut klaid);
            let mut got = vec![Complex::new(0.0, 0.0); h];
            untangle_mul_tangle(&z, &mut got, &klaid, &mp, scale);
            let mut x = vec![Complex::new(0.0, 0.0); h + 1];
            untangle(&z, &mut x, &w, fa, po);
            x.iter_mut().zip(&kslots).for_each(|(a, &k)| *a *= k);
            let mut want = vec![Complex::new(0.0, 0.0); h];
            tangle(&x, &mut want, &w, scale, fa, po);
            let err: f64 = got.iter().zip(&want).map(|(a, b)| (a - b).norm()).sum();
            assert!(err < 1e-12 * h as f64, "forward h={h}: {err}");

            let g = randc(h, &mut rng);
            let mut gz = vec![Complex::new(0.0, 0.0); h];
            let mut gk = vec![Complex::new(0.0, 0.0); mp.spec_len()];
            untangle_mul_tangle_adjoint(&g, &mut gz, &z, &klaid, &mut gk, &mp, scale);
            let lhs = dot(&got, &g);
            let rhs = dot(&z, &gz);
            assert!((lhs - rhs).abs() < 1e-10 * (1.0 + lhs.abs()), "data h={h}");
            // K ↦ pass(z; K) is linear: ⟨pass(z; ΔK), g⟩ = ⟨ΔK, ∂L/∂K⟩ in slots.
            let dk = randc(h + 1, &mut rng);
            let mut dlaid = vec![Complex::new(0.0, 0.0); mp.spec_len()];
            mp.layout(&dk, &mut dlaid);
            let mut dy = vec![Complex::new(0.0, 0.0); h];
            untangle_mul_tangle(&z, &mut dy, &dlaid, &mp, scale);
            let mut gks = vec![Complex::new(0.0, 0.0); h + 1];
            mp.unlayout(&gk, &mut gks);
            let (lhs, rhs) = (dot(&dy, &g), dot(&dk, &gks));
            assert!(
                (lhs - rhs).abs() < 1e-10 * (1.0 + lhs.abs()),
                "kernel h={h}"
            );
            // The pairwise untangle adjoint against the slot-order one.
            let mut a = vec![Complex::new(0.0, 0.0); h];
            mp.untangle_adjoint(&gk, &mut a);
            let mut b = vec![Complex::new(0.0, 0.0); h];
            untangle_adjoint(&gks, &mut b, &w, fa, po);
            let err: f64 = a.iter().zip(&b).map(|(p, q)| (p - q).norm()).sum();
            assert!(err < 1e-12 * h as f64, "untangle adjoint h={h}: {err}");
        }
    }
}
