//! Circulant and Toeplitz matrices and circular convolutions as `B·B*` butterfly products
//! (Kaleidoscope, Dao et al., ICLR 2020, §2: a circulant is `F⁻¹·diag(F c)·F`, a DFT block of
//! decreasing stride, the spectrum, and an inverse-DFT block of increasing stride, whose
//! bit-reversals cancel).

use super::trig::{bit_reversal, scale_level_outputs};
use crate::butterfly::init::fft_twiddles;
use crate::butterfly::Butterfly;
use crate::error::{check_apply_shapes_ok, check_cols, check_nonzero, check_pow2, Error, Result};
use crate::linear_map::LinearMap;
use crate::scalar::{Scalar, C64};
use ndarray::{Array2, ArrayView2, ArrayView3, ArrayViewMut2, Axis};
use num_complex::Complex;
use num_traits::Zero;
use rustfft::FftPlanner;
use std::marker::PhantomData;

/// `v` as `Complex<T::Real>`.
#[inline]
fn to_cx<T: Scalar>(v: T) -> Complex<T::Real> {
    Complex::new(v.re(), v.im())
}

/// `z` as `T` (the real part for real `T`).
#[inline]
fn from_cx<T: Scalar>(z: Complex<T::Real>) -> T {
    if T::IS_COMPLEX {
        T::from_real(z.re) + T::from_real(z.im) * T::from_parts(0.0, 1.0)
    } else {
        T::from_real(z.re)
    }
}

/// The unnormalised DFT of `e`, in `f64`.
fn spectrum(e: &[C64]) -> Vec<C64> {
    let mut buf = e.to_vec();
    FftPlanner::<f64>::new()
        .plan_fft_forward(buf.len())
        .process(&mut buf);
    buf
}

/// Twiddles of the circulant with first column `e` (length `L = 2^p ≥ 2`) as two blocks:
/// `B_dif` (the DFT by decimation in frequency, bit-reversed output) with `diag(λ_br/L)`
/// folded into its last level, then `B_dit` (the unnormalised inverse DFT by decimation in
/// time, bit-reversed input): `circ(e) = F⁻¹·diag(λ)·F = B_dit·diag(λ_br/L)·B_dif`.
fn circulant_twiddles(e: &[C64]) -> Result<Vec<C64>> {
    let l = e.len();
    let log_l = l.trailing_zeros() as usize;
    let lambda = spectrum(e);
    let br = bit_reversal(l)?;
    let d: Vec<C64> = br.iter().map(|&b| lambda[b] / l as f64).collect();
    let mut tw = fft_twiddles::<C64>(l, false, -1.0, 1.0);
    scale_level_outputs(&mut tw, l, log_l - 1, 1, &d);
    tw.extend(fft_twiddles::<C64>(l, true, 1.0, 1.0));
    Ok(tw)
}

fn cast_vec<U: Scalar>(v: &[C64]) -> Vec<U> {
    v.iter().map(|z| U::from_parts(z.re, z.im)).collect()
}

/// The first column of a circulant of size `l ≥ m + k − 1` whose top-left `m × k` block is the
/// Toeplitz matrix with first column `col` and first row `row` (`row[0]` unused).
fn embed(col: &[C64], row: &[C64], l: usize) -> Vec<C64> {
    let mut e = vec![C64::new(0.0, 0.0); l];
    e[..col.len()].copy_from_slice(col);
    for (j, &r) in row.iter().enumerate().skip(1) {
        e[l - j] = r;
    }
    e
}

/// Size of the circulant embedding of an `m × k` Toeplitz matrix.
fn embedding_size(m: usize, k: usize) -> usize {
    (m + k - 1).next_power_of_two().max(2)
}

/// The first row of the circulant with first column `c`: `[c_0, c_{n−1}, …, c_1]`.
fn circulant_row<T: Copy>(c: &[T]) -> Vec<T> {
    std::iter::once(c[0])
        .chain(c[1..].iter().rev().copied())
        .collect()
}

fn complex_only<T: Scalar>(what: &'static str) -> Result<()> {
    if !T::IS_COMPLEX {
        return Err(Error::InvalidArgument {
            what: "scalar type",
            message: format!(
                "{what} as a plain butterfly needs complex scalars, got {} (use Toeplitz::circulant \
                 for real scalars: the real part of a complex BB*)",
                T::NAME
            ),
        });
    }
    Ok(())
}

impl<T: Scalar> Butterfly<T> {
    /// The circulant `C[i, j] = c[(i − j) mod n]` (`y = c ⊛ x`, circular convolution) for
    /// complex scalars and `n = 2^m ≥ 2`, as one `B·B*` butterfly with no permutation:
    /// `C = F⁻¹·diag(F c)·F`, a decreasing-stride DFT block with the spectrum folded into its
    /// last level, then an increasing-stride inverse-DFT block (Kaleidoscope, ICLR 2020).
    /// [`Toeplitz::circulant`] takes any size and real scalars.
    pub fn circulant(col: &[T]) -> Result<Self> {
        complex_only::<T>("a circulant")?;
        check_pow2("col length", col.len())?;
        if col.len() == 1 {
            return Err(Error::InvalidArgument {
                what: "col length",
                message: "must be at least 2: a size-1 butterfly has no level to hold the scalar \
                          (Toeplitz::circulant takes any size)"
                    .into(),
            });
        }
        let e: Vec<C64> = col.iter().map(|v| v.to_c64()).collect();
        let n = e.len();
        Butterfly::from_twiddle(n, n, 2, false, cast_vec(&circulant_twiddles(&e)?), None)
    }
}

impl<T: Scalar> Butterfly<T>
where
    Complex<T::Real>: Scalar<Real = T::Real>,
{
    /// The `m × k` Toeplitz matrix with first column `col` (length `m`) and first row `row`
    /// (length `k`, `row[0] == col[0]`); see [`Toeplitz::new`].
    pub fn toeplitz(col: &[T], row: &[T]) -> Result<Toeplitz<T>> {
        Toeplitz::new(col, row)
    }
}

/// An `m × k` Toeplitz matrix `T[i, j] = t_{i−j}` (first column `col = (t_0, …, t_{m−1})`,
/// first row `row = (t_0, t_{−1}, …, t_{1−k})`), applied as the top-left block of a circulant
/// of size `L = 2^p ≥ m + k − 1` (`L = m` for a circulant of size `m = 2^p ≥ 2`): the input is
/// zero-padded to `L`, sent through one complex `B·B*` butterfly (see
/// [`Butterfly::circulant`]), and truncated to `m`. For real scalars the butterfly is complex
/// and the output its real part.
#[derive(Debug, Clone, PartialEq)]
pub struct Toeplitz<T: Scalar>
where
    Complex<T::Real>: Scalar<Real = T::Real>,
{
    rows: usize,
    cols: usize,
    butterfly: Butterfly<Complex<T::Real>>,
    _scalar: PhantomData<T>,
}

impl<T: Scalar> Toeplitz<T>
where
    Complex<T::Real>: Scalar<Real = T::Real>,
{
    /// The `m × k` Toeplitz matrix with first column `col` (`m ≥ 1` entries) and first row
    /// `row` (`k ≥ 1` entries); `row[0]` must equal `col[0]`.
    pub fn new(col: &[T], row: &[T]) -> Result<Self> {
        check_nonzero("col length", col.len())?;
        check_nonzero("row length", row.len())?;
        if row[0] != col[0] {
            return Err(Error::InvalidArgument {
                what: "row",
                message: format!(
                    "row[0] must equal col[0] = {} (the shared diagonal), got {}",
                    col[0], row[0]
                ),
            });
        }
        let (m, k) = (col.len(), row.len());
        let l = embedding_size(m, k);
        let c: Vec<C64> = col.iter().map(|v| v.to_c64()).collect();
        let r: Vec<C64> = row.iter().map(|v| v.to_c64()).collect();
        Self::from_embedding(&embed(&c, &r, l), m, k)
    }

    /// The circulant `C[i, j] = c[(i − j) mod n]` of any size `n ≥ 1` (`y = c ⊛ x`, circular
    /// convolution): exactly a `B·B*` butterfly when `n = 2^m ≥ 2`, otherwise the `n × n`
    /// Toeplitz block of a power-of-two circulant of size `≥ 2n − 1`.
    pub fn circulant(col: &[T]) -> Result<Self> {
        check_nonzero("col length", col.len())?;
        let n = col.len();
        if n.is_power_of_two() && n >= 2 {
            let e: Vec<C64> = col.iter().map(|v| v.to_c64()).collect();
            return Self::from_embedding(&e, n, n);
        }
        Self::new(col, &circulant_row(col))
    }

    fn from_embedding(e: &[C64], m: usize, k: usize) -> Result<Self> {
        let l = e.len();
        let inp = if k.next_power_of_two() == l { k } else { l };
        let tw = cast_vec(&circulant_twiddles(e)?);
        let butterfly = Butterfly::from_twiddle(inp, m, 2, false, tw, None)?;
        Ok(Self {
            rows: m,
            cols: k,
            butterfly,
            _scalar: PhantomData,
        })
    }

    /// Number of rows `m` (the length of `col`).
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of columns `k` (the length of `row`).
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Size `L` of the circulant the matrix is embedded in (the butterfly's size).
    pub fn embedding_size(&self) -> usize {
        self.butterfly.n()
    }
    /// The complex `B·B*` butterfly (two blocks of opposite stride, no permutation) of the
    /// embedding circulant, truncated to `m` outputs.
    pub fn butterfly(&self) -> &Butterfly<Complex<T::Real>> {
        &self.butterfly
    }

    /// `x` (batch, k) as complex rows of the butterfly's input width (zero-padded).
    fn pad_input(&self, x: ArrayView2<T>) -> Array2<Complex<T::Real>> {
        let mut z = Array2::zeros((x.nrows(), self.butterfly.in_features()));
        z.slice_mut(ndarray::s![.., ..self.cols])
            .zip_mut_with(&x, |a, &b| *a = to_cx(b));
        z
    }

    fn backwards(&self, y: ArrayView2<T>, adjoint: bool) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.rows)?;
        let yc = y.mapv(to_cx);
        let xc = if adjoint && T::IS_COMPLEX {
            self.butterfly.apply_adjoint(yc.view())?
        } else {
            self.butterfly.apply_transpose(yc.view())?
        };
        Ok(xc.slice(ndarray::s![.., ..self.cols]).mapv(from_cx))
    }
}

impl<T: Scalar> LinearMap<T> for Toeplitz<T>
where
    Complex<T::Real>: Scalar<Real = T::Real>,
{
    fn in_features(&self) -> usize {
        self.cols
    }
    fn out_features(&self) -> usize {
        self.rows
    }
    fn apply_into(&self, x: ArrayView2<T>, mut y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.cols, self.rows, &x, &y)?;
        let z = self.butterfly.apply(self.pad_input(x).view())?;
        y.zip_mut_with(&z, |a, &b| *a = from_cx(b));
        Ok(())
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.backwards(y, false)
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.backwards(y, true)
    }
    fn to_dense(&self) -> Array2<T> {
        self.butterfly
            .to_dense()
            .slice(ndarray::s![.., ..self.cols])
            .mapv(from_cx)
    }
    fn num_params(&self) -> usize {
        0
    }
    fn flops_per_row(&self) -> usize {
        self.butterfly.flops_per_row()
    }
}

/// Multi-channel circular convolution `y_o = Σ_i h_{o,i} ⊛ x_i` (`(h ⊛ x)[t] =
/// Σ_s h[s]·x[(t − s) mod n]`) on rows laid out channel-major, `(batch, in_ch·n) →
/// (batch, out_ch·n)`: each input channel goes through one DFT butterfly (decreasing stride,
/// output left bit-reversed), each frequency mixes channels by the `out_ch × in_ch` matrix of
/// kernel spectra, and each output channel goes through one inverse-DFT butterfly (increasing
/// stride, bit-reversed input), so no permutation is ever applied. For `n` not a power of two
/// (or `n = 1`) each circulant is embedded in one of size `2^p ≥ 2n − 1`.
///
/// This is the mathematical convolution; PyTorch's `Conv1d(padding_mode="circular")` computes
/// the cross-correlation, which is this with the kernel reversed (`h[s] = w[−s mod n]`) and
/// shifted by its padding.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv1d<T: Scalar>
where
    Complex<T::Real>: Scalar<Real = T::Real>,
{
    n: usize,
    in_ch: usize,
    out_ch: usize,
    fft: Butterfly<Complex<T::Real>>,
    ifft: Butterfly<Complex<T::Real>>,
    /// `(L, out_ch, in_ch)`: the kernel spectra `F h_{o,i} / L`, frequencies in bit-reversed
    /// order.
    spectra: Vec<Complex<T::Real>>,
    _scalar: PhantomData<T>,
}

impl<T: Scalar> Conv1d<T>
where
    Complex<T::Real>: Scalar<Real = T::Real>,
{
    /// The convolution with `kernel` of shape `(out_ch, in_ch, klen)`, `1 ≤ klen ≤ n`, on
    /// signals of length `n` (kernels shorter than `n` are zero-padded).
    pub fn new(kernel: ArrayView3<T>, n: usize) -> Result<Self> {
        let (out_ch, in_ch, klen) = kernel.dim();
        check_nonzero("out_channels (kernel axis 0)", out_ch)?;
        check_nonzero("in_channels (kernel axis 1)", in_ch)?;
        check_nonzero("kernel length (kernel axis 2)", klen)?;
        check_nonzero("n", n)?;
        if klen > n {
            return Err(Error::InvalidArgument {
                what: "kernel length (kernel axis 2)",
                message: format!("must be at most the signal length n = {n}, got {klen}"),
            });
        }
        let l = if n.is_power_of_two() && n >= 2 {
            n
        } else {
            embedding_size(n, n)
        };
        let br = bit_reversal(l)?;
        let mut spectra = vec![Complex::new(T::Real::zero(), T::Real::zero()); l * out_ch * in_ch];
        for o in 0..out_ch {
            for i in 0..in_ch {
                let mut c = vec![C64::new(0.0, 0.0); n];
                for (cs, h) in c.iter_mut().zip(kernel.slice(ndarray::s![o, i, ..])) {
                    *cs = h.to_c64();
                }
                let e = if l == n {
                    c
                } else {
                    embed(&c, &circulant_row(&c), l)
                };
                let lambda = spectrum(&e);
                for (f, &b) in br.iter().enumerate() {
                    let z = lambda[b] / l as f64;
                    spectra[(f * out_ch + o) * in_ch + i] =
                        <Complex<T::Real> as Scalar>::from_parts(z.re, z.im);
                }
            }
        }
        let fin = if n.next_power_of_two() == l { n } else { l };
        let fft = Butterfly::from_twiddle(
            fin,
            l,
            1,
            false,
            cast_vec(&fft_twiddles::<C64>(l, false, -1.0, 1.0)),
            None,
        )?;
        let ifft = Butterfly::from_twiddle(
            l,
            n,
            1,
            true,
            cast_vec(&fft_twiddles::<C64>(l, true, 1.0, 1.0)),
            None,
        )?;
        Ok(Self {
            n,
            in_ch,
            out_ch,
            fft,
            ifft,
            spectra,
            _scalar: PhantomData,
        })
    }

    /// Single-channel circular convolution `y = h ⊛ x` on signals of length `n` (the circulant
    /// of `h` zero-padded to `n`).
    pub fn single_channel(kernel: &[T], n: usize) -> Result<Self> {
        let k = ndarray::ArrayView3::from_shape((1, 1, kernel.len()), kernel).map_err(|_| {
            Error::InvalidArgument {
                what: "kernel",
                message: "could not view as (1, 1, len)".into(),
            }
        })?;
        Self::new(k, n)
    }

    /// Signal length `n`.
    pub fn len(&self) -> usize {
        self.n
    }
    /// Always false: signals have at least one sample.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// Number of input channels.
    pub fn in_channels(&self) -> usize {
        self.in_ch
    }
    /// Number of output channels.
    pub fn out_channels(&self) -> usize {
        self.out_ch
    }
    /// The per-channel DFT butterfly (decreasing stride, bit-reversed output, no permutation).
    pub fn fft_butterfly(&self) -> &Butterfly<Complex<T::Real>> {
        &self.fft
    }
    /// The per-channel inverse-DFT butterfly (increasing stride, bit-reversed input).
    pub fn ifft_butterfly(&self) -> &Butterfly<Complex<T::Real>> {
        &self.ifft
    }

    /// `(batch, ch·w)` rows → `(batch·ch, width)` complex rows, zero-padded.
    fn split_channels(
        x: ArrayView2<T>,
        ch: usize,
        w: usize,
        width: usize,
    ) -> Array2<Complex<T::Real>> {
        let b = x.nrows();
        let mut z = Array2::zeros((b * ch, width));
        for (r, xr) in x.axis_iter(Axis(0)).enumerate() {
            for c in 0..ch {
                let mut zr = z.row_mut(r * ch + c);
                for (j, v) in zr.iter_mut().take(w).enumerate() {
                    *v = to_cx(xr[c * w + j]);
                }
            }
        }
        z
    }

    /// `(batch·ch, ≥ w)` complex rows → `(batch, ch·w)`.
    fn merge_channels(
        z: ArrayView2<Complex<T::Real>>,
        ch: usize,
        w: usize,
        mut y: ArrayViewMut2<T>,
    ) {
        for (mut yr, zc) in y
            .axis_iter_mut(Axis(0))
            .zip(z.axis_chunks_iter(Axis(0), ch))
        {
            for (c, zr) in zc.axis_iter(Axis(0)).enumerate() {
                for j in 0..w {
                    yr[c * w + j] = from_cx(zr[j]);
                }
            }
        }
    }

    /// Per frequency `f`, `out[(b, p), f] = Σ_q S_f[p, q]·inp[(b, q), f]` with `S_f` the
    /// spectra (`transpose`: `S_fᵀ`; `conj`: conjugated).
    fn mix(
        &self,
        inp: &Array2<Complex<T::Real>>,
        transpose: bool,
        conj: bool,
    ) -> Array2<Complex<T::Real>> {
        let (pc, qc) = if transpose {
            (self.in_ch, self.out_ch)
        } else {
            (self.out_ch, self.in_ch)
        };
        let l = inp.ncols();
        let batch = inp.nrows() / qc;
        let mut out = Array2::zeros((batch * pc, l));
        for b in 0..batch {
            for f in 0..l {
                let s =
                    &self.spectra[f * self.out_ch * self.in_ch..(f + 1) * self.out_ch * self.in_ch];
                for p in 0..pc {
                    let mut acc = Complex::new(T::Real::zero(), T::Real::zero());
                    for q in 0..qc {
                        let (o, i) = if transpose { (q, p) } else { (p, q) };
                        let sv = s[o * self.in_ch + i];
                        let sv = if conj { sv.conj() } else { sv };
                        acc += sv * inp[(b * qc + q, f)];
                    }
                    out[(b * pc + p, f)] = acc;
                }
            }
        }
        out
    }

    fn backwards(&self, y: ArrayView2<T>, adjoint: bool) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.out_ch * self.n)?;
        let adjoint = adjoint && T::IS_COMPLEX;
        let yc = Self::split_channels(y, self.out_ch, self.n, self.n);
        let g = if adjoint {
            self.ifft.apply_adjoint(yc.view())?
        } else {
            self.ifft.apply_transpose(yc.view())?
        };
        let h = self.mix(&g, true, adjoint);
        let xc = if adjoint {
            self.fft.apply_adjoint(h.view())?
        } else {
            self.fft.apply_transpose(h.view())?
        };
        let mut x = Array2::zeros((y.nrows(), self.in_ch * self.n));
        Self::merge_channels(xc.view(), self.in_ch, self.n, x.view_mut());
        Ok(x)
    }
}

impl<T: Scalar> LinearMap<T> for Conv1d<T>
where
    Complex<T::Real>: Scalar<Real = T::Real>,
{
    fn in_features(&self) -> usize {
        self.in_ch * self.n
    }
    fn out_features(&self) -> usize {
        self.out_ch * self.n
    }
    fn apply_into(&self, x: ArrayView2<T>, y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.in_features(), self.out_features(), &x, &y)?;
        let xc = Self::split_channels(x, self.in_ch, self.n, self.fft.in_features());
        let xf = self.fft.apply(xc.view())?;
        let yf = self.mix(&xf, false, false);
        let yc = self.ifft.apply(yf.view())?;
        Self::merge_channels(yc.view(), self.out_ch, self.n, y);
        Ok(())
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.backwards(y, false)
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.backwards(y, true)
    }
    fn to_dense(&self) -> Array2<T> {
        let k = self.in_features();
        let eye = Array2::from_shape_fn((k, k), |(i, j)| if i == j { T::one() } else { T::zero() });
        self.apply(eye.view())
            .expect("identity has in_features columns")
            .reversed_axes()
            .as_standard_layout()
            .into_owned()
    }
    fn num_params(&self) -> usize {
        0
    }
    fn flops_per_row(&self) -> usize {
        let l = self.fft.n();
        self.in_ch * self.fft.flops_per_row()
            + l * self.out_ch * self.in_ch * 8
            + self.out_ch * self.ifft.flops_per_row()
    }
}
