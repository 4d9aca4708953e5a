//! [`ButterflyUnitary`]: a butterfly whose 2×2 blocks are parameterised by angles, so every
//! factor is orthogonal (real) or unitary (complex) for any parameter values.

use super::butterfly_matrix::{geometry, Butterfly, ButterflyConfig};
use super::init::{fft_twiddles, Init};
use super::permutation::Permutation;
use crate::error::{check_cols, check_len, check_nonzero, check_shape, Error, Result};
use crate::linear_map::{Differentiable, LinearMap};
use crate::scalar::Scalar;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use num_complex::Complex;
use rand::Rng;
use std::f64::consts::PI;
use std::sync::{Arc, Mutex, PoisonError};

/// A butterfly matrix with unitary 2×2 blocks: the orthogonal/unitary butterfly of Dao et al.
/// (*Learning Fast Algorithms for Linear Transforms Using Butterfly Factorizations*, ICML 2019;
/// *Kaleidoscope*, ICLR 2020).
///
/// Real scalars: each block is the rotation `[[cos θ, −sin θ], [sin θ, cos θ]]` (one angle;
/// reflections, of determinant −1, are not reached).
/// Complex scalars: each block is the U(2) element
/// `e^{iα} [[e^{iψ} cos θ, e^{iχ} sin θ], [−e^{−iχ} sin θ, e^{−iψ} cos θ]]` (angles
/// `[θ, α, ψ, χ]`, every element of U(2) is reached).
///
/// The geometry is that of [`Butterfly`] (zero-padding to `n = 2^m`, `nstacks = ⌈out/n⌉`,
/// `nblocks` blocks of alternating stride, optional fixed permutations, optional bias), so for
/// `in = out = n` the linear part is unitary: `W W* = I`. Otherwise each stack's rows of `W`
/// are rows of an `n × n` unitary matrix restricted to its first `in` columns.
///
/// Parameters: the angles, shape `(nstacks, nblocks, log2 n, n/2)` for real scalars and
/// `(nstacks, nblocks, log2 n, n/2, 4)` for complex ones, followed by the bias. For complex
/// scalars the angles are stored as complex numbers whose imaginary part is ignored, and
/// [`backward`](Differentiable::backward) returns their gradients with zero imaginary part, so a
/// gradient step keeps them real.
///
/// The twiddles of the equivalent [`Butterfly`] are cached: every call compares the parameters
/// with the snapshot the cache was built from (a cheap `O(n log n)` read) and rebuilds the
/// twiddles (`O(n log n)` sines and cosines) only when they changed, since
/// [`params_mut`](Differentiable::params_mut) can change them at any time.
pub struct ButterflyUnitary<T: Scalar> {
    in_features: usize,
    out_features: usize,
    n: usize,
    log_n: usize,
    nstacks: usize,
    nblocks: usize,
    increasing_stride: bool,
    has_bias: bool,
    params: Vec<T>,
    in_perm: Option<Permutation>,
    out_perm: Option<Permutation>,
    cache: Mutex<Option<Cached<T>>>,
}

/// The parameters a cached butterfly was built from, and the butterfly.
type Cached<T> = (Vec<T>, Arc<Butterfly<T>>);

impl<T: Scalar> ButterflyUnitary<T> {
    /// Angles per 2×2 block: 1 (real scalars) or 4 (complex scalars).
    pub const ANGLES_PER_BLOCK: usize = if T::IS_COMPLEX { 4 } else { 1 };

    /// A unitary butterfly `in_features → out_features`. `config.init` selects the angles:
    /// [`Init::Randn`] and [`Init::Ortho`] draw Haar-random blocks (uniform θ on SO(2); Haar
    /// measure on U(2) for complex scalars), [`Init::Identity`] sets every block to `I`, and
    /// [`Init::Fft`] (complex only) makes the first block the unitary DFT factors
    /// (each level scaled by `1/√2`) and later blocks the identity. The bias starts at zero.
    pub fn new<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        config: ButterflyConfig,
        rng: &mut R,
    ) -> Result<Self> {
        let mut u = Self::empty(
            in_features,
            out_features,
            config.nblocks,
            config.increasing_stride,
        )?;
        if config.init == Init::Fft && !T::IS_COMPLEX {
            return Err(Error::InvalidArgument {
                what: "init",
                message: format!("Init::Fft needs complex scalars, got {}", T::NAME),
            });
        }
        let k = Self::ANGLES_PER_BLOCK;
        let half = u.n / 2;
        let level_angles = half * k;
        let mut angles = vec![T::zero(); u.angle_len()];
        let fft = if config.init == Init::Fft && u.log_n > 0 {
            fft_twiddles::<Complex<f64>>(
                u.n,
                config.increasing_stride,
                -1.0,
                std::f64::consts::FRAC_1_SQRT_2,
            )
        } else {
            Vec::new()
        };
        for (i, level) in angles.chunks_exact_mut(level_angles.max(1)).enumerate() {
            let b = (i / u.log_n) % u.nblocks;
            match config.init {
                Init::Randn | Init::Ortho => {
                    for a in level.chunks_exact_mut(k) {
                        random_angles(a, rng);
                    }
                }
                Init::Identity => {}
                Init::Fft => {
                    if b == 0 {
                        let l = i % u.log_n;
                        let tw = &fft[l * half * 4..(l + 1) * half * 4];
                        for (a, t) in level.chunks_exact_mut(k).zip(tw.chunks_exact(4)) {
                            let [th, al, ps, ch] = unitary_angles([t[0], t[1], t[2], t[3]]);
                            a.copy_from_slice(&[th, al, ps, ch].map(T::from_f64));
                        }
                    }
                }
            }
        }
        u.params = angles;
        if config.bias {
            u.params
                .extend(std::iter::repeat_n(T::zero(), out_features));
            u.has_bias = true;
        }
        Ok(u)
    }

    /// A unitary butterfly from explicit angles, flattened row-major from shape
    /// `(nstacks, nblocks, log2 n, n/2)` (real) or `(nstacks, nblocks, log2 n, n/2, 4)` with
    /// `[θ, α, ψ, χ]` per block (complex), where `n = in_features.next_power_of_two()` and
    /// `nstacks = ⌈out_features / n⌉`.
    pub fn from_angles(
        in_features: usize,
        out_features: usize,
        nblocks: usize,
        increasing_stride: bool,
        angles: Vec<T::Real>,
        bias: Option<Vec<T>>,
    ) -> Result<Self> {
        let mut u = Self::empty(in_features, out_features, nblocks, increasing_stride)?;
        check_len("angles", angles.len(), u.angle_len())?;
        if let Some(b) = &bias {
            check_len("bias", b.len(), out_features)?;
        }
        u.params = angles.into_iter().map(T::from_real).collect();
        if let Some(b) = bias {
            u.params.extend(b);
            u.has_bias = true;
        }
        Ok(u)
    }

    fn empty(
        in_features: usize,
        out_features: usize,
        nblocks: usize,
        increasing_stride: bool,
    ) -> Result<Self> {
        check_nonzero("nblocks", nblocks)?;
        let (n, log_n, nstacks, _) = geometry(in_features, out_features, nblocks)?;
        Ok(Self {
            in_features,
            out_features,
            n,
            log_n,
            nstacks,
            nblocks,
            increasing_stride,
            has_bias: false,
            params: Vec::new(),
            in_perm: None,
            out_perm: None,
            cache: Mutex::new(None),
        })
    }

    /// Permute the zero-padded input by the fixed `p` (length `n`) before the first level.
    pub fn with_input_permutation(mut self, p: Permutation) -> Result<Self> {
        check_len("input permutation", p.len(), self.n)?;
        self.in_perm = if p.is_identity() { None } else { Some(p) };
        self.cache = Mutex::new(None);
        Ok(self)
    }

    /// Permute every stack's output by the fixed `q` (length `n`) after the last level.
    pub fn with_output_permutation(mut self, q: Permutation) -> Result<Self> {
        check_len("output permutation", q.len(), self.n)?;
        self.out_perm = if q.is_identity() { None } else { Some(q) };
        self.cache = Mutex::new(None);
        Ok(self)
    }

    /// The padded size `n = 2^m`.
    pub fn n(&self) -> usize {
        self.n
    }
    /// `log2 n`: levels per block.
    pub fn log_n(&self) -> usize {
        self.log_n
    }
    /// Number of independent stacks whose outputs are concatenated.
    pub fn nstacks(&self) -> usize {
        self.nstacks
    }
    /// Number of blocks per stack.
    pub fn nblocks(&self) -> usize {
        self.nblocks
    }
    /// Stride direction of the first block.
    pub fn increasing_stride(&self) -> bool {
        self.increasing_stride
    }
    /// The fixed input permutation, if any.
    pub fn input_permutation(&self) -> Option<&Permutation> {
        self.in_perm.as_ref()
    }
    /// The fixed output permutation, if any.
    pub fn output_permutation(&self) -> Option<&Permutation> {
        self.out_perm.as_ref()
    }
    /// Number of angles: `nstacks · nblocks · log2 n · (n/2) · ANGLES_PER_BLOCK`.
    pub fn angle_len(&self) -> usize {
        self.nstacks * self.nblocks * self.log_n * self.n / 2 * Self::ANGLES_PER_BLOCK
    }
    /// The angles (the first [`angle_len`](Self::angle_len) parameters; for complex scalars
    /// only their real parts are used).
    pub fn angles(&self) -> &[T] {
        &self.params[..self.angle_len()]
    }
    /// The angles, mutable.
    pub fn angles_mut(&mut self) -> &mut [T] {
        let len = self.angle_len();
        &mut self.params[..len]
    }
    /// The bias, if the map has one.
    pub fn bias(&self) -> Option<&[T]> {
        self.has_bias.then(|| &self.params[self.angle_len()..])
    }
    /// The bias, mutable.
    pub fn bias_mut(&mut self) -> Option<&mut [T]> {
        let len = self.angle_len();
        self.has_bias.then(|| &mut self.params[len..])
    }

    /// The equivalent [`Butterfly`]: same geometry, permutations and bias, with the twiddles
    /// these angles define.
    pub fn to_butterfly(&self) -> Butterfly<T> {
        (*self.inner()).clone()
    }

    /// The cached equivalent butterfly, rebuilt when the parameters changed since it was built.
    fn inner(&self) -> Arc<Butterfly<T>> {
        let mut slot = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((snapshot, b)) = slot.as_ref() {
            if snapshot.as_slice() == self.params.as_slice() {
                return Arc::clone(b);
            }
        }
        let b = Arc::new(self.build());
        *slot = Some((self.params.clone(), Arc::clone(&b)));
        b
    }

    fn build(&self) -> Butterfly<T> {
        let k = Self::ANGLES_PER_BLOCK;
        let mut tw = Vec::with_capacity(self.angle_len() / k * 4);
        for a in self.angles().chunks_exact(k) {
            tw.extend(block_twiddle::<T>(a).map(|z| T::from_parts(z.re, z.im)));
        }
        let bias = self.bias().map(<[T]>::to_vec);
        let mut b = Butterfly::from_twiddle(
            self.in_features,
            self.out_features,
            self.nblocks,
            self.increasing_stride,
            tw,
            bias,
        )
        .expect("geometry and lengths checked at construction");
        if let Some(p) = &self.in_perm {
            b = b
                .with_input_permutation(p.clone())
                .expect("length checked at construction");
        }
        if let Some(q) = &self.out_perm {
            b = b
                .with_output_permutation(q.clone())
                .expect("length checked at construction");
        }
        b
    }
}

/// Haar-random angles for one block.
fn random_angles<T: Scalar, R: Rng + ?Sized>(a: &mut [T], rng: &mut R) {
    if T::IS_COMPLEX {
        // |t00|² = cos²θ uniform on [0, 1] and three independent uniform phases: the Haar
        // measure on U(2).
        let u: f64 = rng.random::<f64>();
        let theta = u.sqrt().acos();
        let phases: [f64; 3] = std::array::from_fn(|_| rng.random::<f64>() * 2.0 * PI);
        a.copy_from_slice(&[theta, phases[0], phases[1], phases[2]].map(T::from_f64));
    } else {
        a[0] = T::from_f64(rng.random::<f64>() * 2.0 * PI);
    }
}

/// The 2×2 block `[t00, t01, t10, t11]` of one block's angles (real parts only).
fn block_twiddle<T: Scalar>(a: &[T]) -> [Complex<f64>; 4] {
    let theta = a[0].to_c64().re;
    let (s, c) = theta.sin_cos();
    if T::IS_COMPLEX {
        let (al, ps, ch) = (a[1].to_c64().re, a[2].to_c64().re, a[3].to_c64().re);
        let e = |phi: f64| Complex::from_polar(1.0, phi);
        [
            e(al + ps) * c,
            e(al + ch) * s,
            -e(al - ch) * s,
            e(al - ps) * c,
        ]
    } else {
        [c, -s, s, c].map(|v| Complex::new(v, 0.0))
    }
}

/// `∂L/∂φ = Re Σ conj(g_k) ∂t_k/∂φ` for each angle `φ` of one block, where `g` is the
/// twiddle gradient `∂L/∂Re t + i ∂L/∂Im t`.
fn angle_grads<T: Scalar>(a: &[T], g: &[T], out: &mut [T]) {
    let g: [Complex<f64>; 4] = std::array::from_fn(|q| g[q].to_c64());
    let theta = a[0].to_c64().re;
    let (s, c) = theta.sin_cos();
    let dot = |d: [Complex<f64>; 4]| -> f64 { (0..4).map(|q| (g[q].conj() * d[q]).re).sum() };
    if T::IS_COMPLEX {
        let (al, ps, ch) = (a[1].to_c64().re, a[2].to_c64().re, a[3].to_c64().re);
        let e = |phi: f64| Complex::from_polar(1.0, phi);
        let (ea, eb, ec, ed) = (e(al + ps), e(al + ch), e(al - ch), e(al - ps));
        let t = [ea * c, eb * s, -ec * s, ed * c];
        let i = Complex::<f64>::i();
        let zero = Complex::new(0.0, 0.0);
        let d_theta = [-ea * s, eb * c, -ec * c, -ed * s];
        let d_alpha = t.map(|v| i * v);
        let d_psi = [i * t[0], zero, zero, -i * t[3]];
        let d_chi = [zero, i * t[1], -i * t[2], zero];
        for (o, d) in out.iter_mut().zip([d_theta, d_alpha, d_psi, d_chi]) {
            *o += T::from_f64(dot(d));
        }
    } else {
        let d = [-s, -c, c, -s].map(|v| Complex::new(v, 0.0));
        out[0] += T::from_f64(dot(d));
    }
}

/// Angles `[θ, α, ψ, χ]` of a unitary 2×2 block `[t00, t01, t10, t11]`.
fn unitary_angles(t: [Complex<f64>; 4]) -> [f64; 4] {
    let theta = t[1].norm().atan2(t[0].norm());
    let det = t[0] * t[3] - t[1] * t[2];
    let alpha = det.arg() / 2.0;
    [theta, alpha, t[0].arg() - alpha, t[1].arg() - alpha]
}

impl<T: Scalar> Clone for ButterflyUnitary<T> {
    fn clone(&self) -> Self {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Self {
            in_features: self.in_features,
            out_features: self.out_features,
            n: self.n,
            log_n: self.log_n,
            nstacks: self.nstacks,
            nblocks: self.nblocks,
            increasing_stride: self.increasing_stride,
            has_bias: self.has_bias,
            params: self.params.clone(),
            in_perm: self.in_perm.clone(),
            out_perm: self.out_perm.clone(),
            cache: Mutex::new(cache),
        }
    }
}

impl<T: Scalar> PartialEq for ButterflyUnitary<T> {
    fn eq(&self, other: &Self) -> bool {
        self.in_features == other.in_features
            && self.out_features == other.out_features
            && self.nblocks == other.nblocks
            && self.increasing_stride == other.increasing_stride
            && self.has_bias == other.has_bias
            && self.params == other.params
            && self.in_perm == other.in_perm
            && self.out_perm == other.out_perm
    }
}

impl<T: Scalar> std::fmt::Debug for ButterflyUnitary<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ButterflyUnitary")
            .field("in_features", &self.in_features)
            .field("out_features", &self.out_features)
            .field("n", &self.n)
            .field("nstacks", &self.nstacks)
            .field("nblocks", &self.nblocks)
            .field("increasing_stride", &self.increasing_stride)
            .field("has_bias", &self.has_bias)
            .field("params", &self.params)
            .field("in_perm", &self.in_perm)
            .field("out_perm", &self.out_perm)
            .finish()
    }
}

impl<T: Scalar> LinearMap<T> for ButterflyUnitary<T> {
    fn in_features(&self) -> usize {
        self.in_features
    }
    fn out_features(&self) -> usize {
        self.out_features
    }
    fn apply_into(&self, x: ArrayView2<T>, y: ArrayViewMut2<T>) -> Result<()> {
        self.inner().apply_into(x, y)
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.inner().apply_transpose(y)
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.inner().apply_adjoint(y)
    }
    fn to_dense(&self) -> Array2<T> {
        self.inner().to_dense()
    }
    fn num_params(&self) -> usize {
        self.params.len()
    }
    fn flops_per_row(&self) -> usize {
        let per_pair = if T::IS_COMPLEX { 28 } else { 6 };
        let bias = if self.has_bias {
            self.out_features * if T::IS_COMPLEX { 2 } else { 1 }
        } else {
            0
        };
        self.nstacks * self.nblocks * self.log_n * (self.n / 2) * per_pair + bias
    }
}

impl<T: Scalar> Differentiable<T> for ButterflyUnitary<T> {
    fn backward(&self, x: ArrayView2<T>, dy: ArrayView2<T>, grads: &mut [T]) -> Result<Array2<T>> {
        check_cols("x", x.dim(), self.in_features)?;
        check_shape("dy", dy.dim(), (x.nrows(), self.out_features))?;
        check_len("grads", grads.len(), self.params.len())?;
        let inner = self.inner();
        let mut inner_grads = vec![T::zero(); inner.num_params()];
        let dx = inner.backward(x, dy, &mut inner_grads)?;
        let k = Self::ANGLES_PER_BLOCK;
        let angle_len = self.angle_len();
        let tw_len = inner.twiddle_len();
        let (g_angles, g_bias) = grads.split_at_mut(angle_len);
        for ((a, g), out) in self
            .angles()
            .chunks_exact(k)
            .zip(inner_grads[..tw_len].chunks_exact(4))
            .zip(g_angles.chunks_exact_mut(k))
        {
            angle_grads(a, g, out);
        }
        for (o, &g) in g_bias.iter_mut().zip(&inner_grads[tw_len..]) {
            *o += g;
        }
        Ok(dx)
    }
    fn params(&self) -> &[T] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }
}
