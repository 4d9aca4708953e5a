//! [`FlashButterfly`]: long convolution with the FFT computed as a Monarch product of small
//! dense DFT blocks, which may be learned.

use super::long_conv::{
    check_params, check_sizes, fft_len_for, random_params, ConvEngine, ConvMode, Gates,
    LongConvGrads,
};
use super::monarch_fft::{MonarchFft, MAX_LOG2, MIN_LOG2};
use super::real_fft::{pack, tangle, tangle_adjoint, unpack, untangle, untangle_adjoint};
use super::{fr, ConvFloat};
use crate::error::{Error, Result};
use ndarray::{s, Array1, Array2, Array3, ArrayView1, ArrayView3};
use num_complex::Complex;
use rand::Rng;
use rayon::prelude::*;

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
        Ok(FlashButterfly { kernel, d, engine })
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
        let hp = h + 1;
        let r = t.num_levels();
        let w = &e.w;
        let scale = T::one() / fr::<T>(h as f64);
        let z0 = Complex::new(T::zero(), T::zero());
        let fa = |p: usize| t.freq_at(p);
        let po = |k: usize| super::long_conv::HalfTransform::pos_of(t, k);
        let d = self.d.view();
        struct Out<T> {
            du: Vec<T>,
            dpre: Vec<T>,
            dpost: Vec<T>,
            dk: Vec<T>,
            dd: T,
            df: Vec<Vec<Complex<T>>>,
            dg: Vec<Vec<Complex<T>>>,
        }
        let outs: Vec<Out<T>> = (0..c)
            .into_par_iter()
            .map(|ci| {
                let mut tmp = vec![z0; h];
                let mut rec_k = vec![vec![z0; h]; r];
                let mut rec_f = vec![vec![z0; h]; r];
                let mut rec_i = vec![vec![z0; h]; r];
                let mut df = t.zero_blocks();
                let mut dg = t.zero_blocks();
                // The kernel's spectrum, recording the block inputs for its gradient.
                let mut full = vec![T::zero(); n];
                for j in 0..kl {
                    full[j] = kernel[[0, ci, j]];
                    if dirs == 2 {
                        full[n - 1 - j] = kernel[[1, ci, j]];
                    }
                }
                let mut zk = vec![z0; h];
                pack(full.iter().copied(), &mut zk);
                t.forward_permuted(&mut zk, &mut tmp, Some(&mut rec_k));
                let mut kspec = vec![z0; hp];
                untangle(&zk, &mut kspec, w, fa, po);
                let mut gk = vec![z0; hp];
                let mut a = vec![z0; h];
                let mut xs = vec![z0; hp];
                let mut ys = vec![z0; hp];
                let mut gy = vec![z0; hp];
                let mut v = vec![T::zero(); l];
                let mut rr = vec![T::zero(); l];
                let mut dz = vec![T::zero(); l];
                let mut du = vec![T::zero(); b * l];
                let mut dpre = vec![T::zero(); if gates.pre.is_some() { b * l } else { 0 }];
                let mut dpost = vec![T::zero(); if gates.post.is_some() { b * l } else { 0 }];
                let mut dd = T::zero();
                let dc = d[ci];
                for bi in 0..b {
                    let urow = u.slice(s![bi, ci, ..]);
                    let pre = gates.pre.as_ref().map(|g| g.slice(s![bi, ci, ..]));
                    ConvEngine::<T, MonarchFft<T>>::gated_input(urow, pre, &mut v);
                    pack(v.iter().copied(), &mut a);
                    t.forward_permuted(&mut a, &mut tmp, Some(&mut rec_f));
                    untangle(&a, &mut xs, w, fa, po);
                    ys.iter_mut()
                        .zip(xs.iter().zip(&kspec))
                        .for_each(|(o, (&x, &k))| *o = x * k);
                    tangle(&ys, &mut a, w, scale, fa, po);
                    t.inverse_permuted(&mut a, &mut tmp, Some(&mut rec_i));
                    unpack(&a, &mut rr);
                    let dyrow = dy.slice(s![bi, ci, ..]);
                    match &gates.post {
                        Some(g) => {
                            let grow = g.slice(s![bi, ci, ..]);
                            for tt in 0..l {
                                dpost[bi * l + tt] = dyrow[tt] * (rr[tt] + dc * v[tt]);
                                dz[tt] = dyrow[tt] * grow[tt];
                            }
                        }
                        None => dz.iter_mut().zip(dyrow.iter()).for_each(|(o, &x)| *o = x),
                    }
                    pack(dz.iter().copied(), &mut a);
                    t.inverse_backward(&rec_i, &mut a, &mut dg, &mut tmp);
                    tangle_adjoint(&a, &mut gy, w, scale, fa, po);
                    for p in 0..hp {
                        gk[p] += xs[p].conj() * gy[p];
                        ys[p] = kspec[p].conj() * gy[p];
                    }
                    untangle_adjoint(&ys, &mut a, w, fa, po);
                    t.forward_backward(&rec_f, &mut a, &mut df, &mut tmp);
                    for tt in 0..l {
                        let g = a[tt / 2];
                        let dv = if tt % 2 == 0 { g.re } else { g.im } + dc * dz[tt];
                        dd += dz[tt] * v[tt];
                        match &pre {
                            Some(gp) => {
                                du[bi * l + tt] = dv * gp[tt];
                                dpre[bi * l + tt] = dv * urow[tt];
                            }
                            None => du[bi * l + tt] = dv,
                        }
                    }
                }
                untangle_adjoint(&gk, &mut zk, w, fa, po);
                t.forward_backward(&rec_k, &mut zk, &mut df, &mut tmp);
                let mut dk = vec![T::zero(); dirs * kl];
                for j in 0..kl {
                    let g = zk[j / 2];
                    dk[j] = if j % 2 == 0 { g.re } else { g.im };
                    if dirs == 2 {
                        let m = n - 1 - j;
                        let g = zk[m / 2];
                        dk[kl + j] = if m % 2 == 0 { g.re } else { g.im };
                    }
                }
                Out {
                    du,
                    dpre,
                    dpost,
                    dk,
                    dd,
                    df,
                    dg,
                }
            })
            .collect();
        let mut du = Array3::<T>::zeros((b, c, l));
        let mut dpre = gates.pre.map(|_| Array3::<T>::zeros((b, c, l)));
        let mut dpost = gates.post.map(|_| Array3::<T>::zeros((b, c, l)));
        let mut dkernel = Array3::<T>::zeros((dirs, c, kl));
        let mut dd = Array1::<T>::zeros(c);
        let mut df = t.zero_blocks();
        let mut dg = t.zero_blocks();
        for (ci, o) in outs.into_iter().enumerate() {
            for bi in 0..b {
                let rng = bi * l..(bi + 1) * l;
                du.slice_mut(s![bi, ci, ..])
                    .iter_mut()
                    .zip(&o.du[rng.clone()])
                    .for_each(|(x, &y)| *x = y);
                if let Some(a) = dpre.as_mut() {
                    a.slice_mut(s![bi, ci, ..])
                        .iter_mut()
                        .zip(&o.dpre[rng.clone()])
                        .for_each(|(x, &y)| *x = y);
                }
                if let Some(a) = dpost.as_mut() {
                    a.slice_mut(s![bi, ci, ..])
                        .iter_mut()
                        .zip(&o.dpost[rng])
                        .for_each(|(x, &y)| *x = y);
                }
            }
            for dir in 0..dirs {
                for j in 0..kl {
                    dkernel[[dir, ci, j]] = o.dk[dir * kl + j];
                }
            }
            dd[ci] = o.dd;
            for (acc, x) in df.iter_mut().zip(&o.df) {
                acc.iter_mut().zip(x).for_each(|(p, &q)| *p += q);
            }
            for (acc, x) in dg.iter_mut().zip(&o.dg) {
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
                dpregate: dpre,
                dpostgate: dpost,
            },
            dforward_blocks: to_arrays(df),
            dinverse_blocks: to_arrays(dg),
        })
    }
}
