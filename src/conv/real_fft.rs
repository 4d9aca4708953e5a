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

/// Adjoint of [`tangle`]: `gz` (`h` slots) → `gx` (`h + 1` slots).
pub(crate) fn tangle_adjoint<T: ConvFloat>(
    gz: &[Complex<T>],
    gx: &mut [Complex<T>],
    w: &[Complex<T>],
    scale: T,
    freq_at: impl Fn(usize) -> usize,
    pos_of: impl Fn(usize) -> usize,
) {
    let h = gz.len();
    let half = fr::<T>(0.5) * scale;
    gx.fill(Complex::new(T::zero(), T::zero()));
    let i = Complex::new(T::zero(), T::one());
    let one = Complex::new(T::one(), T::zero());
    for p in 0..h {
        let k = freq_at(p);
        let q = if k == 0 { h } else { pos_of(h - k) };
        let wc = w[k].conj();
        let a = (one + i * wc) * half;
        let b = (one - i * wc) * half;
        let g = gz[p];
        gx[p] += a.conj() * g;
        gx[q] += b * g.conj();
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
/// mirror pairs, in place on `z`; `kspec` is in [`MirrorPairs::layout`]. Frequencies `k` and
/// `h − k` depend only on `Z[k]` and `Z[h − k]`, and with `ω^{h−k} = −ω̄^k`:
/// `X[h−k] = conj(E[k] − ω^k O[k])`, `Z'[h−k] = s·(conj E'[k] + i·conj O'[k])`.
pub(crate) fn untangle_mul_tangle<T: ConvFloat>(
    z: &mut [Complex<T>],
    kspec: &[Complex<T>],
    mp: &MirrorPairs<T>,
    scale: T,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { umt_avx512(z, kspec, mp, scale) };
            return;
        }
        if std::is_x86_feature_detected!("avx") && std::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            unsafe { umt_avx(z, kspec, mp, scale) };
            return;
        }
    }
    umt_generic(z, kspec, mp, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx,fma")]
unsafe fn umt_avx512<T: ConvFloat>(
    z: &mut [Complex<T>],
    kspec: &[Complex<T>],
    mp: &MirrorPairs<T>,
    scale: T,
) {
    umt_generic(z, kspec, mp, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,fma")]
unsafe fn umt_avx<T: ConvFloat>(
    z: &mut [Complex<T>],
    kspec: &[Complex<T>],
    mp: &MirrorPairs<T>,
    scale: T,
) {
    umt_generic(z, kspec, mp, scale)
}

#[inline(always)]
fn umt_generic<T: ConvFloat>(
    z: &mut [Complex<T>],
    kspec: &[Complex<T>],
    mp: &MirrorPairs<T>,
    scale: T,
) {
    let h = mp.h;
    debug_assert_eq!(z.len(), h);
    let half = fr::<T>(0.5);
    let hs = half * scale;
    // k = 0 and h share Z[0]: X[0] = re + im, X[h] = re − im.
    let a = z[mp.zero_slot];
    let y0 = kspec[0] * (a.re + a.im);
    let ych = (kspec[1] * (a.re - a.im)).conj();
    let e = (y0 + ych) * hs;
    let o = (y0 - ych) * hs;
    z[mp.zero_slot] = Complex::new(e.re - o.im, e.im + o.re);
    let n = mp.p.len();
    let planes = &super::block_kernel::as_reals(&kspec[2..])[..4 * n];
    let (kpr, rest) = planes.split_at(n);
    let (kpi, rest) = rest.split_at(n);
    let (kqr, kqi) = rest.split_at(n);
    let mut j = 0;
    while j < n {
        let m = LANES.min(n - j);
        let mut ar = [T::zero(); LANES];
        let mut ai = [T::zero(); LANES];
        let mut br = [T::zero(); LANES];
        let mut bi = [T::zero(); LANES];
        let mut wr = [T::zero(); LANES];
        let mut wi = [T::zero(); LANES];
        let mut pr = [T::zero(); LANES];
        let mut pi = [T::zero(); LANES];
        let mut qr = [T::zero(); LANES];
        let mut qi = [T::zero(); LANES];
        for i in 0..m {
            let a = z[mp.p[j + i] as usize];
            let b = z[mp.q[j + i] as usize];
            ar[i] = a.re;
            ai[i] = a.im;
            br[i] = b.re;
            bi[i] = b.im;
        }
        wr[..m].copy_from_slice(&mp.wr[j..j + m]);
        wi[..m].copy_from_slice(&mp.wi[j..j + m]);
        pr[..m].copy_from_slice(&kpr[j..j + m]);
        pi[..m].copy_from_slice(&kpi[j..j + m]);
        qr[..m].copy_from_slice(&kqr[j..j + m]);
        qi[..m].copy_from_slice(&kqi[j..j + m]);
        let mut zpr = [T::zero(); LANES];
        let mut zpi = [T::zero(); LANES];
        let mut zqr = [T::zero(); LANES];
        let mut zqi = [T::zero(); LANES];
        for i in 0..LANES {
            // e = (a + b̄)/2, d = (a − b̄)/2, o = −i·d, wo = ω·o.
            let er = (ar[i] + br[i]) * half;
            let ei = (ai[i] - bi[i]) * half;
            let dr = (ar[i] - br[i]) * half;
            let di = (ai[i] + bi[i]) * half;
            let (or, oi) = (di, -dr);
            let wor = wr[i] * or - wi[i] * oi;
            let woi = wr[i] * oi + wi[i] * or;
            // X_k = e + wo, X_m = conj(e − wo).
            let xkr = er + wor;
            let xki = ei + woi;
            let xmr = er - wor;
            let xmi = woi - ei;
            let ykr = xkr * pr[i] - xki * pi[i];
            let yki = xkr * pi[i] + xki * pr[i];
            let ymr = xmr * qr[i] - xmi * qi[i];
            let ymi = xmr * qi[i] + xmi * qr[i];
            // e2 = (y_k + ȳ_m)·s/2, o2 = (y_k − ȳ_m)·ω̄·s/2.
            let e2r = (ykr + ymr) * hs;
            let e2i = (yki - ymi) * hs;
            let gr = (ykr - ymr) * hs;
            let gi = (yki + ymi) * hs;
            let o2r = gr * wr[i] + gi * wi[i];
            let o2i = gi * wr[i] - gr * wi[i];
            zpr[i] = e2r - o2i;
            zpi[i] = e2i + o2r;
            zqr[i] = e2r + o2i;
            zqi[i] = o2r - e2i;
        }
        for i in 0..m {
            z[mp.p[j + i] as usize] = Complex::new(zpr[i], zpi[i]);
            z[mp.q[j + i] as usize] = Complex::new(zqr[i], zqi[i]);
        }
        j += m;
    }
}
