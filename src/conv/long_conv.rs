//! [`LongConv`]: FFT long convolution with skip term and gates, forward and backward.

use super::block_kernel::{as_reals, as_reals_mut};
use super::real_fft::{
    half_twiddles, pack, tangle, unpack, untangle, untangle_mul_tangle, MirrorPairs,
};
use super::{fr, ConvFloat};
use crate::error::{check_nonzero, Error, Result};
use ndarray::{s, Array1, Array3, ArrayView1, ArrayView3, ArrayViewMut1};
use num_complex::Complex;
use rand::Rng;
use rayon::prelude::*;
use rustfft::{Fft, FftPlanner};
use std::sync::{Arc, Mutex};

/// Which offsets the kernel covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvMode {
    /// `y[t] = Σ_{j<K} k[j]·u[t−j]`; the kernel array is `(1, channels, K)`.
    Causal,
    /// `y[t] = Σ_{j<K} k_f[j]·u[t−j] + Σ_{j<K} k_b[j]·u[t+1+j]`; the kernel array is
    /// `(2, channels, K)` with `k_f` first (the long-conv paper's bidirectional layer).
    Bidirectional,
}

impl ConvMode {
    /// How many kernels per channel: 1 (causal) or 2 (bidirectional).
    pub fn directions(self) -> usize {
        match self {
            ConvMode::Causal => 1,
            ConvMode::Bidirectional => 2,
        }
    }
}

/// Optional elementwise gates, each `(batch, channels, L)` like the input:
/// `y = post ⊙ (k ∗ v + D ⊙ v)` with `v = pre ⊙ u` (FlashFFTConv's `pregate`/`postgate`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Gates<'a, T> {
    pub pre: Option<ArrayView3<'a, T>>,
    pub post: Option<ArrayView3<'a, T>>,
}

impl<'a, T> Gates<'a, T> {
    /// No gating.
    pub fn none() -> Self {
        Gates {
            pre: None,
            post: None,
        }
    }
}

/// Gradients of a [`LongConv`] (or [`FlashButterfly`](super::FlashButterfly)) call.
#[derive(Clone, Debug)]
pub struct LongConvGrads<T> {
    /// `∂L/∂u`, `(batch, channels, L)`.
    pub du: Array3<T>,
    /// `∂L/∂k`, same shape as the kernel.
    pub dkernel: Array3<T>,
    /// `∂L/∂D`, `(channels,)`.
    pub dd: Array1<T>,
    /// `∂L/∂pregate` when a pregate was given.
    pub dpregate: Option<Array3<T>>,
    /// `∂L/∂postgate` when a postgate was given.
    pub dpostgate: Option<Array3<T>>,
}

/// A complex FFT of size `h` whose output is stored in a fixed order: slot `p` holds
/// frequency `freq_at(p)`; `inverse` takes that order back to natural order (unnormalised).
pub(crate) trait HalfTransform<T: ConvFloat>: Send + Sync {
    fn scratch_len(&self) -> usize;
    fn forward(&self, z: &mut [Complex<T>], scratch: &mut [Complex<T>]);
    fn inverse(&self, z: &mut [Complex<T>], scratch: &mut [Complex<T>]);
    /// [`forward`](Self::forward) of a `z` whose second half is zero.
    fn forward_low(&self, z: &mut [Complex<T>], scratch: &mut [Complex<T>]) {
        self.forward(z, scratch);
    }
    /// [`inverse`](Self::inverse) when only the first half of the output is read.
    fn inverse_low(&self, z: &mut [Complex<T>], scratch: &mut [Complex<T>]) {
        self.inverse(z, scratch);
    }
    fn freq_at(&self, p: usize) -> usize;
    fn pos_of(&self, k: usize) -> usize;
    /// Whether the forward pass fuses untangle, product and tangle into one pass over mirror
    /// pairs (worth it when the slot order is scattered, i.e. not natural order).
    fn fused_spectral(&self) -> bool {
        false
    }
}

/// rustfft's complex FFT in natural order.
pub(crate) struct RustFftHalf<T: ConvFloat> {
    fwd: Arc<dyn Fft<T>>,
    inv: Arc<dyn Fft<T>>,
}

impl<T: ConvFloat> RustFftHalf<T> {
    pub(crate) fn new(h: usize) -> Self {
        let mut planner = FftPlanner::new();
        RustFftHalf {
            fwd: planner.plan_fft_forward(h),
            inv: planner.plan_fft_inverse(h),
        }
    }
}

impl<T: ConvFloat> HalfTransform<T> for RustFftHalf<T> {
    fn scratch_len(&self) -> usize {
        self.fwd
            .get_inplace_scratch_len()
            .max(self.inv.get_inplace_scratch_len())
    }
    fn forward(&self, z: &mut [Complex<T>], scratch: &mut [Complex<T>]) {
        self.fwd.process_with_scratch(z, scratch);
    }
    fn inverse(&self, z: &mut [Complex<T>], scratch: &mut [Complex<T>]) {
        self.inv.process_with_scratch(z, scratch);
    }
    #[inline(always)]
    fn freq_at(&self, p: usize) -> usize {
        p
    }
    #[inline(always)]
    fn pos_of(&self, k: usize) -> usize {
        k
    }
}

struct Scratch<T> {
    z: Vec<Complex<T>>,
    x: Vec<Complex<T>>,
    fft: Vec<Complex<T>>,
    v: Vec<T>,
    r: Vec<T>,
}

/// A kernel (flattened) and its spectrum per channel.
type CachedSpectrum<T> = (Vec<T>, Arc<Vec<Complex<T>>>);

/// The convolution machinery shared by [`LongConv`] and `FlashButterfly`: shapes, the
/// half-size transform, the real-FFT twiddles and a pool of scratch buffers.
pub(crate) struct ConvEngine<T: ConvFloat, H: HalfTransform<T>> {
    pub(crate) channels: usize,
    pub(crate) seq_len: usize,
    pub(crate) kernel_len: usize,
    pub(crate) mode: ConvMode,
    pub(crate) n: usize,
    pub(crate) h: usize,
    pub(crate) t: H,
    pub(crate) w: Vec<Complex<T>>,
    pool: Mutex<Vec<Scratch<T>>>,
    /// The last kernel transformed and its spectrum, reused while the kernel is unchanged.
    spec_cache: Mutex<Option<CachedSpectrum<T>>>,
    /// Mirror pairs of the slot order when the transform asks for the fused spectral pass.
    pub(crate) pairs: Option<MirrorPairs<T>>,
}

fn shape3<T>(a: &ArrayView3<T>) -> String {
    format!("{:?}", a.dim())
}

impl<T: ConvFloat, H: HalfTransform<T>> ConvEngine<T, H> {
    pub(crate) fn new(
        channels: usize,
        seq_len: usize,
        kernel_len: usize,
        mode: ConvMode,
        n: usize,
        t: H,
    ) -> Self {
        let w = half_twiddles(n);
        let pairs = t
            .fused_spectral()
            .then(|| MirrorPairs::new(n / 2, &w, |p| t.freq_at(p), |k| t.pos_of(k)));
        ConvEngine {
            channels,
            seq_len,
            kernel_len,
            mode,
            n,
            h: n / 2,
            t,
            w,
            pool: Mutex::new(Vec::new()),
            spec_cache: Mutex::new(None),
            pairs,
        }
    }

    fn take(&self) -> Scratch<T> {
        let got = self.pool.lock().ok().and_then(|mut p| p.pop());
        got.unwrap_or_else(|| {
            let c0 = Complex::new(T::zero(), T::zero());
            Scratch {
                z: vec![c0; self.h],
                x: vec![c0; self.h + 1],
                fft: vec![c0; self.t.scratch_len()],
                v: vec![T::zero(); self.seq_len],
                r: vec![T::zero(); self.seq_len],
            }
        })
    }

    fn give(&self, s: Scratch<T>) {
        if let Ok(mut p) = self.pool.lock() {
            p.push(s);
        }
    }

    /// Real spectrum (`h + 1` values in the transform's slots) of `x` zero-padded to `N`.
    fn rfft(&self, x: &[T], s: &mut Scratch<T>, out: &mut [Complex<T>]) {
        pack(x.iter().copied(), &mut s.z);
        if x.len() <= self.h {
            self.t.forward_low(&mut s.z, &mut s.fft);
        } else {
            self.t.forward(&mut s.z, &mut s.fft);
        }
        let t = &self.t;
        untangle(&s.z, out, &self.w, |p| t.freq_at(p), |k| t.pos_of(k));
    }

    /// `out[t] = IDFT_N(spec)[t]` for `t < out.len()`.
    fn irfft(&self, spec: &[Complex<T>], s: &mut Scratch<T>, out: &mut [T]) {
        let t = &self.t;
        let scale = T::one() / fr::<T>(self.h as f64);
        tangle(
            spec,
            &mut s.z,
            &self.w,
            scale,
            |p| t.freq_at(p),
            |k| t.pos_of(k),
        );
        if out.len() <= self.h {
            self.t.inverse_low(&mut s.z, &mut s.fft);
        } else {
            self.t.inverse(&mut s.z, &mut s.fft);
        }
        unpack(&s.z, out);
    }

    /// `out[t] = IDFT_N(DFT_N(x)·kspec)[t]` with the spectral step fused
    /// ([`untangle_mul_tangle`]).
    fn conv_fused(
        &self,
        x: &[T],
        kspec: &[Complex<T>],
        pairs: &MirrorPairs<T>,
        s: &mut Scratch<T>,
        out: &mut [T],
    ) {
        // Packing and unpacking are copies of the reals (`z[j] = x[2j] + i·x[2j+1]`); the
        // pruned first level never reads the second half, which is left as it was.
        let low = x.len() <= self.h;
        let zr = as_reals_mut(&mut s.z);
        zr[..x.len()].copy_from_slice(x);
        zr[x.len()..if low { self.h } else { 2 * self.h }].fill(T::zero());
        if low {
            self.t.forward_low(&mut s.z, &mut s.fft);
        } else {
            self.t.forward(&mut s.z, &mut s.fft);
        }
        let scale = T::one() / fr::<T>(self.h as f64);
        let y = &mut s.fft[..self.h];
        untangle_mul_tangle(&s.z, y, kspec, pairs, scale);
        if out.len() <= self.h {
            self.t.inverse_low(y, &mut s.z);
        } else {
            self.t.inverse(y, &mut s.z);
        }
        out.copy_from_slice(&as_reals(y)[..out.len()]);
    }

    pub(crate) fn check_kernel(&self, kernel: &ArrayView3<T>) -> Result<()> {
        let want = (self.mode.directions(), self.channels, self.kernel_len);
        if kernel.dim() != want {
            return Err(Error::Shape {
                what: "kernel",
                expected: format!("{want:?} (directions, channels, kernel_len)"),
                got: shape3(kernel),
            });
        }
        Ok(())
    }

    pub(crate) fn check_input(
        &self,
        what: &'static str,
        u: &ArrayView3<T>,
        batch: usize,
    ) -> Result<()> {
        let want = (batch, self.channels, self.seq_len);
        if u.dim() != want {
            return Err(Error::Shape {
                what,
                expected: format!("{want:?} (batch, channels, L)"),
                got: shape3(u),
            });
        }
        Ok(())
    }

    pub(crate) fn check_all(
        &self,
        u: &ArrayView3<T>,
        kernel: &ArrayView3<T>,
        d: &ArrayView1<T>,
        gates: &Gates<'_, T>,
    ) -> Result<()> {
        let b = u.dim().0;
        self.check_input("u", u, b)?;
        self.check_kernel(kernel)?;
        if d.len() != self.channels {
            return Err(Error::Shape {
                what: "d",
                expected: format!("({},)", self.channels),
                got: format!("({},)", d.len()),
            });
        }
        if let Some(g) = &gates.pre {
            self.check_input("pregate", g, b)?;
        }
        if let Some(g) = &gates.post {
            self.check_input("postgate", g, b)?;
        }
        Ok(())
    }

    /// Forget the cached kernel spectrum (the transform changed).
    pub(crate) fn clear_spectrum_cache(&mut self) {
        if let Ok(c) = self.spec_cache.get_mut() {
            *c = None;
        }
    }

    /// [`kernel_spectrum`](Self::kernel_spectrum), reusing the last one when `kernel` equals
    /// the kernel it was computed from (one comparison pass instead of `channels` FFTs); with
    /// the fused spectral pass each channel is in [`MirrorPairs::layout`] instead.
    pub(crate) fn cached_spectrum(&self, kernel: &ArrayView3<T>) -> Arc<Vec<Complex<T>>> {
        if let Ok(c) = self.spec_cache.lock() {
            if let Some((k, spec)) = c.as_ref() {
                if k.len() == kernel.len() && kernel.iter().eq(k.iter()) {
                    return Arc::clone(spec);
                }
            }
        }
        let mut spec = self.kernel_spectrum(kernel);
        if let Some(mp) = &self.pairs {
            let (hp, sl) = (self.h + 1, mp.spec_len());
            let mut laid = vec![Complex::new(T::zero(), T::zero()); self.channels * sl];
            for (o, k) in laid.chunks_mut(sl).zip(spec.chunks(hp)) {
                mp.layout(k, o);
            }
            spec = laid;
        }
        let spec = Arc::new(spec);
        if let Ok(mut c) = self.spec_cache.lock() {
            *c = Some((kernel.iter().copied().collect(), Arc::clone(&spec)));
        }
        spec
    }

    /// The kernel's spectrum per channel, `(channels, h + 1)` flattened.
    pub(crate) fn kernel_spectrum(&self, kernel: &ArrayView3<T>) -> Vec<Complex<T>> {
        let hp = self.h + 1;
        let mut spec = vec![Complex::new(T::zero(), T::zero()); self.channels * hp];
        let (n, kl, bidir) = (
            self.n,
            self.kernel_len,
            self.mode == ConvMode::Bidirectional,
        );
        spec.par_chunks_mut(hp).enumerate().for_each(|(c, out)| {
            let mut s = self.take();
            let mut full = vec![T::zero(); n];
            for j in 0..kl {
                full[j] = kernel[[0, c, j]];
                if bidir {
                    full[n - 1 - j] = kernel[[1, c, j]];
                }
            }
            let used = if bidir { n } else { kl };
            self.rfft(&full[..used], &mut s, out);
            self.give(s);
        });
        spec
    }

    pub(crate) fn gated_input(u: ArrayView1<T>, pre: Option<ArrayView1<T>>, v: &mut [T]) {
        match pre {
            Some(g) => v
                .iter_mut()
                .zip(u.iter().zip(g.iter()))
                .for_each(|(o, (&a, &b))| *o = a * b),
            None => v.iter_mut().zip(u.iter()).for_each(|(o, &a)| *o = a),
        }
    }

    pub(crate) fn forward(
        &self,
        u: ArrayView3<T>,
        kernel: ArrayView3<T>,
        d: ArrayView1<T>,
        gates: Gates<'_, T>,
    ) -> Result<Array3<T>> {
        self.check_all(&u, &kernel, &d, &gates)?;
        let spec = self.cached_spectrum(&kernel);
        let (b, c, l) = u.dim();
        let mut y = Array3::<T>::zeros((b, c, l));
        let hp = self.h + 1;
        let rows = b * c;
        if rows == 0 || l == 0 {
            return Ok(y);
        }
        let ys = y.as_slice_mut().expect("fresh array is contiguous");
        let per = rows
            .div_ceil(rayon::current_num_threads().max(1) * 4)
            .max(1);
        ys.par_chunks_mut(per * l)
            .enumerate()
            .for_each(|(chunk, out)| {
                let mut s = self.take();
                let mut x = std::mem::take(&mut s.x);
                let mut v = std::mem::take(&mut s.v);
                for (i, yrow) in out.chunks_mut(l).enumerate() {
                    let row = chunk * per + i;
                    let (bi, ci) = (row / c, row % c);
                    let urow = u.slice(s![bi, ci, ..]);
                    let pre = gates.pre.as_ref().map(|g| g.slice(s![bi, ci, ..]));
                    Self::gated_input(urow, pre, &mut v);
                    match &self.pairs {
                        Some(pairs) => {
                            let sl = pairs.spec_len();
                            let ks = &spec[ci * sl..(ci + 1) * sl];
                            self.conv_fused(&v, ks, pairs, &mut s, yrow);
                        }
                        None => {
                            let ks = &spec[ci * hp..(ci + 1) * hp];
                            self.rfft(&v, &mut s, &mut x);
                            x.iter_mut().zip(ks).for_each(|(a, &k)| *a *= k);
                            self.irfft(&x, &mut s, yrow);
                        }
                    }
                    let dc = d[ci];
                    yrow.iter_mut().zip(&v).for_each(|(o, &vv)| *o += dc * vv);
                    if let Some(g) = &gates.post {
                        yrow.iter_mut()
                            .zip(g.slice(s![bi, ci, ..]).iter())
                            .for_each(|(o, &gg)| *o *= gg);
                    }
                }
                s.x = x;
                s.v = v;
                self.give(s);
            });
        Ok(y)
    }

    pub(crate) fn backward(
        &self,
        u: ArrayView3<T>,
        kernel: ArrayView3<T>,
        d: ArrayView1<T>,
        gates: Gates<'_, T>,
        dy: ArrayView3<T>,
    ) -> Result<LongConvGrads<T>> {
        self.check_all(&u, &kernel, &d, &gates)?;
        let (b, c, l) = u.dim();
        self.check_input("dy", &dy, b)?;
        // The cache holds the fused pass's layout when there is one; this needs slot order.
        let spec = if self.pairs.is_some() {
            Arc::new(self.kernel_spectrum(&kernel))
        } else {
            self.cached_spectrum(&kernel)
        };
        let hp = self.h + 1;
        let n = self.n;
        let kl = self.kernel_len;
        let dirs = self.mode.directions();
        let zero_c = Complex::new(T::zero(), T::zero());
        // One task per channel: it owns that channel's kernel gradient.
        type ChanOut<T> = (Vec<T>, Vec<T>, Vec<T>, Vec<T>, T, Vec<T>);
        let per_channel: Vec<ChanOut<T>> = (0..c)
            .into_par_iter()
            .map(|ci| {
                let mut s = self.take();
                let mut x = std::mem::take(&mut s.x);
                let mut v = std::mem::take(&mut s.v);
                let mut r = std::mem::take(&mut s.r);
                let mut dz_spec = vec![zero_c; hp];
                let mut dk_spec = vec![zero_c; hp];
                let mut dz = vec![T::zero(); l];
                let ks = &spec[ci * hp..(ci + 1) * hp];
                let mut du = vec![T::zero(); b * l];
                let mut dpre = vec![T::zero(); if gates.pre.is_some() { b * l } else { 0 }];
                let mut dpost = vec![T::zero(); if gates.post.is_some() { b * l } else { 0 }];
                let mut dd = T::zero();
                let dc = d[ci];
                for bi in 0..b {
                    let urow = u.slice(s![bi, ci, ..]);
                    let pre = gates.pre.as_ref().map(|g| g.slice(s![bi, ci, ..]));
                    Self::gated_input(urow, pre, &mut v);
                    self.rfft(&v, &mut s, &mut x);
                    let dyrow = dy.slice(s![bi, ci, ..]);
                    match &gates.post {
                        Some(g) => {
                            // z = k ∗ v + D v is needed for ∂L/∂post.
                            let mut vk = dz_spec.clone();
                            vk.iter_mut()
                                .zip(x.iter().zip(ks))
                                .for_each(|(o, (&a, &k))| *o = a * k);
                            self.irfft(&vk, &mut s, &mut r);
                            let grow = g.slice(s![bi, ci, ..]);
                            for t in 0..l {
                                let z = r[t] + dc * v[t];
                                dpost[bi * l + t] = dyrow[t] * z;
                                dz[t] = dyrow[t] * grow[t];
                            }
                        }
                        None => dz.iter_mut().zip(dyrow.iter()).for_each(|(o, &a)| *o = a),
                    }
                    self.rfft(&dz, &mut s, &mut dz_spec);
                    for ((acc, &g), &vv) in dk_spec.iter_mut().zip(&dz_spec).zip(&x) {
                        *acc += g * vv.conj();
                    }
                    for (o, &k) in x.iter_mut().zip(ks) {
                        *o = k.conj();
                    }
                    x.iter_mut().zip(&dz_spec).for_each(|(o, &g)| *o *= g);
                    self.irfft(&x, &mut s, &mut r);
                    for t in 0..l {
                        let dv = r[t] + dc * dz[t];
                        dd += dz[t] * v[t];
                        match &pre {
                            Some(g) => {
                                du[bi * l + t] = dv * g[t];
                                dpre[bi * l + t] = dv * urow[t];
                            }
                            None => du[bi * l + t] = dv,
                        }
                    }
                }
                // ∂L/∂k_full = IDFT(Σ_b DZ·V̄); undo the kernel's placement in the padded signal.
                let mut full = vec![T::zero(); n];
                self.irfft(&dk_spec, &mut s, &mut full);
                let mut dk = vec![T::zero(); dirs * kl];
                for j in 0..kl {
                    dk[j] = full[j];
                    if dirs == 2 {
                        dk[kl + j] = full[n - 1 - j];
                    }
                }
                s.x = x;
                s.v = v;
                s.r = r;
                self.give(s);
                (du, dpre, dpost, dk, dd, Vec::new())
            })
            .collect();
        let mut du = Array3::<T>::zeros((b, c, l));
        let mut dpre = gates.pre.map(|_| Array3::<T>::zeros((b, c, l)));
        let mut dpost = gates.post.map(|_| Array3::<T>::zeros((b, c, l)));
        let mut dkernel = Array3::<T>::zeros((dirs, c, kl));
        let mut dd = Array1::<T>::zeros(c);
        for (ci, (du_c, dpre_c, dpost_c, dk_c, dd_c, _)) in per_channel.into_iter().enumerate() {
            for bi in 0..b {
                let src = &du_c[bi * l..(bi + 1) * l];
                copy_row(du.slice_mut(s![bi, ci, ..]), src);
                if let Some(a) = dpre.as_mut() {
                    copy_row(a.slice_mut(s![bi, ci, ..]), &dpre_c[bi * l..(bi + 1) * l]);
                }
                if let Some(a) = dpost.as_mut() {
                    copy_row(a.slice_mut(s![bi, ci, ..]), &dpost_c[bi * l..(bi + 1) * l]);
                }
            }
            for dir in 0..dirs {
                copy_row(
                    dkernel.slice_mut(s![dir, ci, ..]),
                    &dk_c[dir * kl..(dir + 1) * kl],
                );
            }
            dd[ci] = dd_c;
        }
        Ok(LongConvGrads {
            du,
            dkernel,
            dd,
            dpregate: dpre,
            dpostgate: dpost,
        })
    }
}

fn copy_row<T: Copy>(mut dst: ArrayViewMut1<T>, src: &[T]) {
    dst.iter_mut().zip(src).for_each(|(o, &a)| *o = a);
}

/// Kernel entries `N(0, 1/K)` `(directions, channels, K)` and skip `D ~ N(0, 1)`: the random
/// initialisation of [`LongConv`] and [`FlashButterfly`](super::FlashButterfly).
pub(crate) fn random_params<T: ConvFloat, R: Rng + ?Sized>(
    channels: usize,
    kernel_len: usize,
    mode: ConvMode,
    rng: &mut R,
) -> (Array3<T>, Array1<T>) {
    let std = 1.0 / (kernel_len as f64).sqrt();
    let kernel = Array3::from_shape_simple_fn((mode.directions(), channels, kernel_len), || {
        T::randn(rng, std)
    });
    let d = Array1::from_shape_simple_fn(channels, || T::randn(rng, 1.0));
    (kernel, d)
}

/// Checks a kernel `(directions, channels, K)` and skip `D` `(channels,)` against `mode` and
/// `seq_len`; returns `(channels, K)`.
pub(crate) fn check_params<T>(
    kernel: &Array3<T>,
    d: &Array1<T>,
    seq_len: usize,
    mode: ConvMode,
) -> Result<(usize, usize)> {
    let (dirs, channels, kernel_len) = kernel.dim();
    check_sizes(channels, seq_len, kernel_len)?;
    if dirs != mode.directions() {
        return Err(Error::Shape {
            what: "kernel",
            expected: format!("({}, channels, kernel_len) for {mode:?}", mode.directions()),
            got: format!("{:?}", kernel.dim()),
        });
    }
    if d.len() != channels {
        return Err(Error::Shape {
            what: "d",
            expected: format!("({channels},)"),
            got: format!("({},)", d.len()),
        });
    }
    Ok((channels, kernel_len))
}

/// Checks shared by the constructors: positive sizes, `kernel_len ≤ seq_len`.
pub(crate) fn check_sizes(channels: usize, seq_len: usize, kernel_len: usize) -> Result<()> {
    check_nonzero("channels", channels)?;
    check_nonzero("seq_len", seq_len)?;
    check_nonzero("kernel_len", kernel_len)?;
    if kernel_len > seq_len {
        return Err(Error::InvalidArgument {
            what: "kernel_len",
            message: format!("must be at most seq_len = {seq_len}, got {kernel_len}"),
        });
    }
    Ok(())
}

/// Long convolution of `(batch, channels, L)` inputs with one learned kernel of length
/// `K ≤ L` per channel (two for [`ConvMode::Bidirectional`]) and a skip term `D`:
/// `y = post ⊙ (k ∗ v + D ⊙ v)`, `v = pre ⊙ u`, computed by real FFTs of size
/// `N = 2^⌈log₂ 2L⌉` (so the circular convolution equals the linear one on `0..L`); Fu et al.,
/// *Simple Hardware-Efficient Long Convolutions for Sequence Modeling*, ICML 2023.
///
/// The `N`-point real FFTs run as `N/2`-point complex rustfft transforms (the real-input
/// trick); plans and scratch buffers are made once and reused across calls and threads.
pub struct LongConv<T: ConvFloat> {
    kernel: Array3<T>,
    d: Array1<T>,
    engine: ConvEngine<T, RustFftHalf<T>>,
}

impl<T: ConvFloat> Clone for LongConv<T> {
    fn clone(&self) -> Self {
        LongConv::with_params(
            self.kernel.clone(),
            self.d.clone(),
            self.seq_len(),
            self.mode(),
        )
        .expect("parameters of an existing LongConv are valid")
    }
}

impl<T: ConvFloat> std::fmt::Debug for LongConv<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LongConv")
            .field("channels", &self.channels())
            .field("seq_len", &self.seq_len())
            .field("kernel_len", &self.kernel_len())
            .field("mode", &self.mode())
            .field("fft_len", &self.fft_len())
            .finish()
    }
}

/// `2^⌈log₂ 2L⌉`, the FFT size without wrap-around for both modes.
pub(crate) fn fft_len_for(seq_len: usize) -> usize {
    (2 * seq_len).next_power_of_two().max(2)
}

impl<T: ConvFloat> LongConv<T> {
    /// A layer with zero kernel and zero `D`.
    pub fn new(channels: usize, seq_len: usize, kernel_len: usize, mode: ConvMode) -> Result<Self> {
        check_sizes(channels, seq_len, kernel_len)?;
        let kernel = Array3::zeros((mode.directions(), channels, kernel_len));
        Self::with_params(kernel, Array1::zeros(channels), seq_len, mode)
    }

    /// A layer with kernel entries `N(0, 1/K)` and `D ~ N(0, 1)`.
    pub fn random<R: Rng + ?Sized>(
        channels: usize,
        seq_len: usize,
        kernel_len: usize,
        mode: ConvMode,
        rng: &mut R,
    ) -> Result<Self> {
        check_sizes(channels, seq_len, kernel_len)?;
        let (kernel, d) = random_params(channels, kernel_len, mode, rng);
        Self::with_params(kernel, d, seq_len, mode)
    }

    /// A layer with the given kernel `(directions, channels, K)` and skip `D` `(channels,)`.
    pub fn with_params(
        kernel: Array3<T>,
        d: Array1<T>,
        seq_len: usize,
        mode: ConvMode,
    ) -> Result<Self> {
        let (channels, kernel_len) = check_params(&kernel, &d, seq_len, mode)?;
        let n = fft_len_for(seq_len);
        let engine = ConvEngine::new(
            channels,
            seq_len,
            kernel_len,
            mode,
            n,
            RustFftHalf::new(n / 2),
        );
        Ok(LongConv { kernel, d, engine })
    }

    pub fn channels(&self) -> usize {
        self.engine.channels
    }
    pub fn seq_len(&self) -> usize {
        self.engine.seq_len
    }
    pub fn kernel_len(&self) -> usize {
        self.engine.kernel_len
    }
    pub fn mode(&self) -> ConvMode {
        self.engine.mode
    }
    /// The real FFT size `N`.
    pub fn fft_len(&self) -> usize {
        self.engine.n
    }
    /// The kernel, `(directions, channels, K)`.
    pub fn kernel(&self) -> ArrayView3<'_, T> {
        self.kernel.view()
    }
    pub fn kernel_mut(&mut self) -> &mut Array3<T> {
        &mut self.kernel
    }
    /// The skip term `D`, `(channels,)`.
    pub fn d(&self) -> ArrayView1<'_, T> {
        self.d.view()
    }
    pub fn d_mut(&mut self) -> &mut Array1<T> {
        &mut self.d
    }

    /// `y = post ⊙ (k ∗ v + D ⊙ v)`, `v = pre ⊙ u`, with this layer's kernel.
    pub fn forward(&self, u: ArrayView3<T>, gates: Gates<'_, T>) -> Result<Array3<T>> {
        self.engine
            .forward(u, self.kernel.view(), self.d.view(), gates)
    }

    /// As [`forward`](Self::forward) with another kernel of the same shape (e.g. a
    /// regularised one, see [`regularize`](super::regularize)).
    pub fn forward_with_kernel(
        &self,
        u: ArrayView3<T>,
        kernel: ArrayView3<T>,
        gates: Gates<'_, T>,
    ) -> Result<Array3<T>> {
        self.engine.forward(u, kernel, self.d.view(), gates)
    }

    /// Gradients of `L` given `dy = ∂L/∂y`: `du`, `dk`, `dD` and the gates'.
    pub fn backward(
        &self,
        u: ArrayView3<T>,
        gates: Gates<'_, T>,
        dy: ArrayView3<T>,
    ) -> Result<LongConvGrads<T>> {
        self.engine
            .backward(u, self.kernel.view(), self.d.view(), gates, dy)
    }

    /// As [`backward`](Self::backward) for [`forward_with_kernel`](Self::forward_with_kernel).
    pub fn backward_with_kernel(
        &self,
        u: ArrayView3<T>,
        kernel: ArrayView3<T>,
        gates: Gates<'_, T>,
        dy: ArrayView3<T>,
    ) -> Result<LongConvGrads<T>> {
        self.engine.backward(u, kernel, self.d.view(), gates, dy)
    }
}
