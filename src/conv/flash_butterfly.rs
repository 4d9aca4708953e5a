//! [`FlashButterfly`]: long convolution with the FFT computed as a Monarch product of small
//! dense DFT blocks, which may be learned.

use super::block_kernel::{as_reals, as_reals_mut};
use super::long_conv::{
    check_params, check_sizes, fft_len_for, random_params, ConvEngine, ConvMode, Gates,
    LongConvGrads,
};
use super::monarch_fft::{MonarchFft, MAX_LOG2, MIN_LOG2};
use super::real_fft::{untangle_mul_tangle, untangle_mul_tangle_adjoint};
use super::{fr, ConvFloat};
use crate::error::{Error, Result};
use ndarray::{s, Array1, Array2, Array3, ArrayView1, ArrayView3, Axis};
use num_complex::Complex;
use rand::Rng;
use rayon::prelude::*;
use std::sync::Mutex;

/// Gradients of a [`FlashButterfly`] call: those of the convolution and of the DFT blocks.
#[derive(Clone, Debug)]
pub struct FlashButterflyGrads<T> {
    /// `∂L/∂u`, `∂L/∂k`, `∂L/∂D` and the gates'.
    pub conv: LongConvGrads<T>,
    /// `∂L/∂B` for each forward block (PyTorch convention `∂L/∂Re + i∂L/∂Im`).
    pub dforward_blocks: Vec<Array2<Complex<T>>>,
    /// `∂L/∂B` for each inverse block.
    pub dinverse_blocks: Vec<Array2<Complex<T>>>,
}

/// FlashButterfly (Fu et al., *Simple Hardware-Efficient Long Convolutions for Sequence
/// Modeling*, ICML 2023, §3.3): the convolution of [`LongConv`](super::LongConv), with the
/// real FFT of size `N = 2^⌈log₂ 2L⌉` done as an `N/2`-point complex transform (real-input
/// trick) factored into dense DFT blocks of 16 (one first block of 2, 4 or 8 for the remainder
/// of `log₂(N/2)` mod 4) and twiddle diagonals, applied by SIMD complex block kernels with the
/// twiddles fused into the block passes,
/// `F = P (I ⊗ F_{f₁}) Pᵀ D (I ⊗ F_{N/2f₁}) P` recursively ([`MonarchFft`]): butterfly →
/// pointwise product with the kernel's spectrum (kept in the blocks' digit-reversed order) →
/// inverse butterfly.
///
/// Supported: `N` a power of two in `256 … 4M` (`65 ≤ L ≤ 2^21`); see [`MIN_LOG2`]. The
/// blocks start as the exact DFT (the convolution then equals rustfft's up to round-off) and
/// can be learned through [`fft_mut`](Self::fft_mut) and the block gradients of
/// [`backward`](Self::backward); the forward pass costs the same either way.
pub struct FlashButterfly<T: ConvFloat> {
    kernel: Array3<T>,
    d: Array1<T>,
    engine: ConvEngine<T, MonarchFft<T>>,
    /// Buffers of the backward's channel tasks, reused across calls.
    scratch: Mutex<Vec<BwdScratch<T>>>,
}

/// Per-level gradients of the forward and of the inverse blocks (`f × f` each, row-major).
type BlockGrads<T> = (Vec<Vec<Complex<T>>>, Vec<Vec<Complex<T>>>);

/// One backward task's buffers: the forward and inverse tapes (`r + 1` buffers of `h`), two
/// gradient buffers, the kernel-spectrum gradient (laid out) and two signals.
struct BwdScratch<T> {
    tape_f: Vec<Complex<T>>,
    tape_i: Vec<Complex<T>>,
    g0: Vec<Complex<T>>,
    g1: Vec<Complex<T>>,
    gk: Vec<Complex<T>>,
    v: Vec<T>,
    dz: Vec<T>,
}

impl<T: ConvFloat> BwdScratch<T> {
    fn new(h: usize, levels: usize, spec_len: usize, l: usize) -> Self {
        let z = Complex::new(T::zero(), T::zero());
        BwdScratch {
            tape_f: vec![z; (levels + 1) * h],
            tape_i: vec![z; (levels + 1) * h],
            g0: vec![z; h],
            g1: vec![z; h],
            gk: vec![z; spec_len],
            v: vec![T::zero(); l],
            dz: vec![T::zero(); l],
        }
    }
}

impl<T: ConvFloat> std::fmt::Debug for FlashButterfly<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlashButterfly")
            .field("channels", &self.channels())
            .field("seq_len", &self.seq_len())
            .field("kernel_len", &self.kernel_len())
            .field("mode", &self.mode())
            .field("fft_len", &self.fft_len())
            .field("factors", &self.engine.t.factors())
            .finish()
    }
}

impl<T: ConvFloat> Clone for FlashButterfly<T> {
    fn clone(&self) -> Self {
        let mut out = Self::with_params(
            self.kernel.clone(),
            self.d.clone(),
            self.seq_len(),
            self.mode(),
        )
        .expect("parameters of an existing FlashButterfly are valid");
        out.engine.t = self.engine.t.clone();
        out
    }
}

impl<T: ConvFloat> FlashButterfly<T> {
    /// A layer with zero kernel, zero `D` and exact DFT blocks.
    pub fn new(channels: usize, seq_len: usize, kernel_len: usize, mode: ConvMode) -> Result<Self> {
        check_sizes(channels, seq_len, kernel_len)?;
        let kernel = Array3::zeros((mode.directions(), channels, kernel_len));
        Self::with_params(kernel, Array1::zeros(channels), seq_len, mode)
    }

    /// A layer with kernel entries `N(0, 1/K)`, `D ~ N(0, 1)` and exact DFT blocks.
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

    /// A layer with the given kernel `(directions, channels, K)`, skip `D` and exact blocks.
    pub fn with_params(
        kernel: Array3<T>,
        d: Array1<T>,
        seq_len: usize,
        mode: ConvMode,
    ) -> Result<Self> {
        let (channels, kernel_len) = check_params(&kernel, &d, seq_len, mode)?;
        let n = fft_len_for(seq_len);
        if !((1 << (MIN_LOG2 + 1))..=(1 << (MAX_LOG2 + 1))).contains(&n) {
            return Err(Error::InvalidArgument {
                what: "seq_len",
                message: format!(
                    "FlashButterfly needs an FFT size 2^⌈log₂ 2L⌉ in {} ..= {} (65 ≤ L ≤ {}), got L = {seq_len} (N = {n})",
                    1usize << (MIN_LOG2 + 1),
                    1usize << (MAX_LOG2 + 1),
                    1usize << MAX_LOG2
                ),
            });
        }
        let t = MonarchFft::new(n / 2)?;
        let engine = ConvEngine::new(channels, seq_len, kernel_len, mode, n, t);
        Ok(FlashButterfly {
            kernel,
            d,
            engine,
            scratch: Mutex::new(Vec::new()),
        })
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
    pub fn kernel(&self) -> ArrayView3<'_, T> {
        self.kernel.view()
    }
    pub fn kernel_mut(&mut self) -> &mut Array3<T> {
        &mut self.kernel
    }
    pub fn d(&self) -> ArrayView1<'_, T> {
        self.d.view()
    }
    pub fn d_mut(&mut self) -> &mut Array1<T> {
        &mut self.d
    }
    /// The `N/2`-point block transform (its blocks are the learnable coefficients).
    pub fn fft(&self) -> &MonarchFft<T> {
        &self.engine.t
    }
    /// Mutable access to the blocks, e.g. [`MonarchFft::block_mut`] or
    /// [`MonarchFft::perturb`] (DFT plus noise initialisation).
    pub fn fft_mut(&mut self) -> &mut MonarchFft<T> {
        self.engine.clear_spectrum_cache();
        &mut self.engine.t
    }

    /// `y = post ⊙ (k ∗ v + D ⊙ v)`, `v = pre ⊙ u`, through the block transform.
    pub fn forward(&self, u: ArrayView3<T>, gates: Gates<'_, T>) -> Result<Array3<T>> {
        self.engine
            .forward(u, self.kernel.view(), self.d.view(), gates)
    }

    /// As [`forward`](Self::forward) with another kernel of the same shape.
    pub fn forward_with_kernel(
        &self,
        u: ArrayView3<T>,
        kernel: ArrayView3<T>,
        gates: Gates<'_, T>,
    ) -> Result<Array3<T>> {
        self.engine.forward(u, kernel, self.d.view(), gates)
    }

    /// Gradients for `u`, `k`, `D`, the gates and every block, given `dy = ∂L/∂y`; exact for
    /// any blocks (it differentiates the block pipeline itself, not the DFT identities).
    pub fn backward(
        &self,
        u: ArrayView3<T>,
        gates: Gates<'_, T>,
        dy: ArrayView3<T>,
    ) -> Result<FlashButterflyGrads<T>> {
        self.backward_with_kernel(u, self.kernel.view(), gates, dy)
    }

    /// As [`backward`](Self::backward) for [`forward_with_kernel`](Self::forward_with_kernel).
    pub fn backward_with_kernel(
        &self,
        u: ArrayView3<T>,
        kernel: ArrayView3<T>,
        gates: Gates<'_, T>,
        dy: ArrayView3<T>,
    ) -> Result<FlashButterflyGrads<T>> {
        let e = &self.engine;
        e.check_all(&u, &kernel, &self.d.view(), &gates)?;
        let (b, c, l) = u.dim();
        e.check_input("dy", &dy, b)?;
        let t = &e.t;
        let (h, n, kl, dirs) = (e.h, e.n, e.kernel_len, e.mode.directions());
        let r = t.num_levels();
        let pairs = e
            .pairs
            .as_ref()
            .expect("the block transform takes the fused spectral pass");
        let sl = pairs.spec_len();
        let spec = e.cached_spectrum(&kernel);
        let scale = T::one() / fr::<T>(h as f64);
        let z0 = Complex::new(T::zero(), T::zero());
        let half_rows = t.factors()[0] / 2;
        let d = self.d.view();
        let mut du = Array3::<T>::zeros((b, c, l));
        // Absent gates get empty arrays so that every output splits by channel alike.
        let gate_len = |g: &Option<ArrayView3<T>>| if g.is_some() { l } else { 0 };
        let mut dpre = Array3::<T>::zeros((b, c, gate_len(&gates.pre)));
        let mut dpost = Array3::<T>::zeros((b, c, gate_len(&gates.post)));
        let mut dkernel = Array3::<T>::zeros((dirs, c, kl));
        let mut dd = Array1::<T>::zeros(c);
        let block_grads: Vec<BlockGrads<T>> = du
            .axis_iter_mut(Axis(1))
            .into_par_iter()
            .zip(dpre.axis_iter_mut(Axis(1)))
            .zip(dpost.axis_iter_mut(Axis(1)))
            .zip(dkernel.axis_iter_mut(Axis(1)))
            .zip(dd.axis_iter_mut(Axis(0)))
            .enumerate()
            .map(
                |(ci, ((((mut du, mut dpre), mut dpost), mut dk), mut ddc))| {
                    let mut sc = self
                        .scratch
                        .lock()
                        .ok()
                        .and_then(|mut p| p.pop())
                        .unwrap_or_else(|| BwdScratch::new(h, r, sl, l));
                    let BwdScratch {
                        tape_f,
                        tape_i,
                        g0,
                        g1,
                        gk,
                        v,
                        dz,
                    } = &mut sc;
                    gk.fill(z0);
                    let mut df = t.zero_blocks();
                    let mut dg = t.zero_blocks();
                    let ks = &spec[ci * sl..(ci + 1) * sl];
                    let mut dd = T::zero();
                    let dc = d[ci];
                    for bi in 0..b {
                        let urow = u.slice(s![bi, ci, ..]);
                        let pre = gates.pre.as_ref().map(|g| g.slice(s![bi, ci, ..]));
                        ConvEngine::<T, MonarchFft<T>>::gated_input(urow, pre, v);
                        // Recompute the forward, keeping every level's input.
                        let x0 = as_reals_mut(&mut tape_f[..h]);
                        x0[..l].copy_from_slice(v);
                        x0[l..h].fill(T::zero());
                        t.forward_tape(tape_f, true);
                        untangle_mul_tangle(
                            &tape_f[r * h..],
                            &mut tape_i[r * h..],
                            ks,
                            pairs,
                            scale,
                        );
                        let dyrow = dy.slice(s![bi, ci, ..]);
                        match &gates.post {
                            Some(g) => {
                                t.inverse_tape(tape_i, Some(half_rows));
                                let rr = &as_reals(&tape_i[..h])[..l];
                                let grow = g.slice(s![bi, ci, ..]);
                                let mut dpr = dpost.row_mut(bi);
                                for tt in 0..l {
                                    dpr[tt] = dyrow[tt] * (rr[tt] + dc * v[tt]);
                                    dz[tt] = dyrow[tt] * grow[tt];
                                }
                            }
                            None => {
                                t.inverse_tape(tape_i, None);
                                dz.iter_mut().zip(dyrow.iter()).for_each(|(o, &x)| *o = x);
                            }
                        }
                        // Back through the inverse, the spectral pass and the forward.
                        let gr = as_reals_mut(g0);
                        gr[..l].copy_from_slice(dz);
                        gr[l..h].fill(T::zero());
                        let o =
                            t.inverse_adjoint(tape_i, [&mut g0[..], &mut g1[..]], &mut dg, true);
                        let (gs, gd) = if o == 0 {
                            (&*g0, &mut *g1)
                        } else {
                            (&*g1, &mut *g0)
                        };
                        untangle_mul_tangle_adjoint(gs, gd, &tape_f[r * h..], ks, gk, pairs, scale);
                        let bufs = if o == 0 {
                            [&mut g1[..], &mut g0[..]]
                        } else {
                            [&mut g0[..], &mut g1[..]]
                        };
                        let o2 = t.forward_adjoint(tape_f, bufs, &mut df, true);
                        let gv = &as_reals(if (o == 0) == (o2 == 0) {
                            &g1[..]
                        } else {
                            &g0[..]
                        })[..l];
                        dd += dot(dz, v);
                        let mut dur = du.row_mut(bi);
                        let dur = dur.as_slice_mut().expect("fresh array rows are contiguous");
                        dur.iter_mut()
                            .zip(gv.iter().zip(dz.iter()))
                            .for_each(|(o, (&g, &z))| *o = g + dc * z);
                        if let Some(gp) = &pre {
                            let mut dpr = dpre.row_mut(bi);
                            for ((o, p), (&x, &g)) in dur
                                .iter_mut()
                                .zip(dpr.iter_mut())
                                .zip(urow.iter().zip(gp.iter()))
                            {
                                *p = *o * x;
                                *o *= g;
                            }
                        }
                    }
                    // The kernel: ∂L/∂K → ∂L/∂Z (untangle's adjoint) → back through its transform.
                    pairs.untangle_adjoint(gk, g0);
                    let x0 = as_reals_mut(&mut tape_f[..h]);
                    x0.fill(T::zero());
                    x0.iter_mut()
                        .zip(kernel.slice(s![0, ci, ..]))
                        .for_each(|(o, &k)| *o = k);
                    if dirs == 2 {
                        x0[n - kl..]
                            .iter_mut()
                            .rev()
                            .zip(kernel.slice(s![1, ci, ..]))
                            .for_each(|(o, &k)| *o = k);
                    }
                    let low = dirs == 1;
                    t.forward_tape(tape_f, low);
                    let o = t.forward_adjoint(tape_f, [&mut g0[..], &mut g1[..]], &mut df, low);
                    let gz = as_reals(if o == 0 { &g0[..] } else { &g1[..] });
                    let mut dkf = dk.row_mut(0);
                    dkf.iter_mut().zip(gz).for_each(|(o, &g)| *o = g);
                    if dirs == 2 {
                        let mut dkb = dk.row_mut(1);
                        dkb.iter_mut()
                            .zip(gz[..n].iter().rev())
                            .for_each(|(o, &g)| *o = g);
                    }
                    ddc.fill(dd);
                    if let Ok(mut p) = self.scratch.lock() {
                        p.push(sc);
                    }
                    (df, dg)
                },
            )
            .collect();
        let mut df = t.zero_blocks();
        let mut dg = t.zero_blocks();
        for (f, g) in &block_grads {
            for (acc, x) in df.iter_mut().zip(f).chain(dg.iter_mut().zip(g)) {
                acc.iter_mut().zip(x).for_each(|(p, &q)| *p += q);
            }
        }
        let to_arrays = |v: Vec<Vec<Complex<T>>>| -> Vec<Array2<Complex<T>>> {
            v.into_iter()
                .zip(t.factors())
                .map(|(x, &f)| Array2::from_shape_vec((f, f), x).expect("f×f block"))
                .collect()
        };
        Ok(FlashButterflyGrads {
            conv: LongConvGrads {
                du,
                dkernel,
                dd,
                dpregate: gates.pre.map(|_| dpre),
                dpostgate: gates.post.map(|_| dpost),
            },
            dforward_blocks: to_arrays(df),
            dinverse_blocks: to_arrays(dg),
        })
    }
}

/// `Σ a_i b_i` in eight independent partial sums (so that it vectorises).
fn dot<T: ConvFloat>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: T = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .fold(T::zero(), |s, (&x, &y)| s + x * y);
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().fold(tail, |s, &x| s + x)
}
