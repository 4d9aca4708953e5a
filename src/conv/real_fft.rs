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
