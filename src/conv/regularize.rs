//! Kernel regularisers of the long-convolution paper (Fu et al., *Simple Hardware-Efficient
//! Long Convolutions for Sequence Modeling*, ICML 2023, §3.2): squashing (soft thresholding),
//! smoothing (average pooling in time, or a Gaussian low-pass in frequency) and kernel
//! dropout. Each acts on a kernel array `(directions, channels, K)` along its last axis and has
//! a backward that maps `∂L/∂k'` to `∂L/∂k`.

use super::{fr, ConvFloat};
use crate::error::{Error, Result};
use ndarray::{Array3, ArrayView3, Zip};
use num_complex::Complex;
use rand::{Rng, SeedableRng};
use rustfft::FftPlanner;

fn check_lambda(lambda: f64) -> Result<()> {
    if !(lambda >= 0.0 && lambda.is_finite()) {
        return Err(Error::InvalidArgument {
            what: "lambda",
            message: format!("must be finite and ≥ 0, got {lambda}"),
        });
    }
    Ok(())
}

fn check_same(
    what: &'static str,
    a: &ArrayView3<impl Copy>,
    shape: (usize, usize, usize),
) -> Result<()> {
    if a.dim() != shape {
        return Err(Error::Shape {
            what,
            expected: format!("{shape:?}"),
            got: format!("{:?}", a.dim()),
        });
    }
    Ok(())
}

/// Squash: `k' = sign(k)·relu(|k| − λ)` (soft thresholding, which drives small kernel weights
/// to exactly zero). `λ` must be finite and `≥ 0`.
pub fn squash<T: ConvFloat>(k: ArrayView3<T>, lambda: f64) -> Result<Array3<T>> {
    check_lambda(lambda)?;
    let l = fr::<T>(lambda);
    Ok(k.mapv(|x| {
        let m = x.abs() - l;
        if m > T::zero() {
            m * x.signum()
        } else {
            T::zero()
        }
    }))
}

/// Backward of [`squash`]: `∂L/∂k = ∂L/∂k'` where `|k| > λ`, else 0.
pub fn squash_backward<T: ConvFloat>(
    k: ArrayView3<T>,
    lambda: f64,
    dk_out: ArrayView3<T>,
) -> Result<Array3<T>> {
    check_lambda(lambda)?;
    check_same("dk_out", &dk_out, k.dim())?;
    let l = fr::<T>(lambda);
    let mut out = Array3::zeros(k.dim());
    Zip::from(&mut out)
        .and(&k)
        .and(&dk_out)
        .for_each(|o, &x, &g| *o = if x.abs() > l { g } else { T::zero() });
    Ok(out)
}

fn check_window(window: usize) -> Result<()> {
    if window == 0 || window.is_multiple_of(2) {
        return Err(Error::InvalidArgument {
            what: "window",
            message: format!("must be an odd positive integer, got {window}"),
        });
    }
    Ok(())
}

/// Average pooling with an odd window `w = 2r + 1`, stride 1 and zero padding `r`:
/// `k'[j] = (1/w)·Σ_{|i−j|≤r} k[i]` (PyTorch's `avg_pool1d` with `count_include_pad`).
pub fn avg_pool<T: ConvFloat>(k: ArrayView3<T>, window: usize) -> Result<Array3<T>> {
    check_window(window)?;
    let r = window / 2;
    let (a, b, len) = k.dim();
    let inv = T::one() / fr::<T>(window as f64);
    let mut out = Array3::zeros((a, b, len));
    for i in 0..a {
        for j in 0..b {
            // Running window sum over the zero-padded row.
            let row = k.slice(ndarray::s![i, j, ..]);
            let mut acc = T::zero();
            for t in 0..r.min(len) {
                acc += row[t];
            }
            for t in 0..len {
                if t + r < len {
                    acc += row[t + r];
                }
                out[[i, j, t]] = acc * inv;
                if t >= r {
                    acc -= row[t - r];
                }
            }
        }
    }
    Ok(out)
}

/// Backward of [`avg_pool`]: the pooling matrix is symmetric, so `∂L/∂k = avg_pool(∂L/∂k')`.
pub fn avg_pool_backward<T: ConvFloat>(dk_out: ArrayView3<T>, window: usize) -> Result<Array3<T>> {
    avg_pool(dk_out, window)
}

/// Gaussian smoothing in frequency: `k' = IDFT_K(g ⊙ DFT_K(k))` with
/// `g[f] = exp(−f̃²/(2σ²))`, `f̃ = min(f, K − f)/K` the frequency in cycles per sample — a
/// low-pass filter (circular along the kernel). `σ` must be finite and `> 0`.
pub fn gaussian_smooth<T: ConvFloat>(k: ArrayView3<T>, sigma: f64) -> Result<Array3<T>> {
    if !(sigma > 0.0 && sigma.is_finite()) {
        return Err(Error::InvalidArgument {
            what: "sigma",
            message: format!("must be finite and > 0, got {sigma}"),
        });
    }
    let (a, b, len) = k.dim();
    let mut out = Array3::zeros((a, b, len));
    if len == 0 {
        return Ok(out);
    }
    let mut planner = FftPlanner::<T>::new();
    let fwd = planner.plan_fft_forward(len);
    let inv = planner.plan_fft_inverse(len);
    let g: Vec<T> = (0..len)
        .map(|f| {
            let ft = f.min(len - f) as f64 / len as f64;
            fr::<T>((-(ft * ft) / (2.0 * sigma * sigma)).exp() / len as f64)
        })
        .collect();
    let mut buf = vec![Complex::new(T::zero(), T::zero()); len];
    for i in 0..a {
        for j in 0..b {
            for (t, z) in buf.iter_mut().enumerate() {
                *z = Complex::new(k[[i, j, t]], T::zero());
            }
            fwd.process(&mut buf);
            buf.iter_mut().zip(&g).for_each(|(z, &gg)| *z *= gg);
            inv.process(&mut buf);
            for t in 0..len {
                out[[i, j, t]] = buf[t].re;
            }
        }
    }
    Ok(out)
}

/// Backward of [`gaussian_smooth`]: the filter is real and even in frequency, hence a
/// symmetric matrix, so `∂L/∂k = gaussian_smooth(∂L/∂k')`.
pub fn gaussian_smooth_backward<T: ConvFloat>(
    dk_out: ArrayView3<T>,
    sigma: f64,
) -> Result<Array3<T>> {
    gaussian_smooth(dk_out, sigma)
}

/// Kernel dropout: each weight is kept with probability `1 − p` and scaled by `1/(1 − p)`
/// (inverted dropout), with the mask drawn from a seeded generator so that forward and
/// backward (and reruns) agree.
#[derive(Clone, Debug)]
pub struct KernelDropout<T> {
    mask: Array3<T>,
}

impl<T: ConvFloat> KernelDropout<T> {
    /// Draw a mask of the given shape with drop probability `p ∈ [0, 1)` from `seed`.
    pub fn new(shape: (usize, usize, usize), p: f64, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::InvalidArgument {
                what: "p",
                message: format!("drop probability must lie in [0, 1), got {p}"),
            });
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let keep = fr::<T>(1.0 / (1.0 - p));
        let mask = Array3::from_shape_simple_fn(shape, || {
            if rng.random::<f64>() < p {
                T::zero()
            } else {
                keep
            }
        });
        Ok(KernelDropout { mask })
    }

    /// The mask: 0 for dropped weights, `1/(1 − p)` for kept ones.
    pub fn mask(&self) -> ArrayView3<'_, T> {
        self.mask.view()
    }

    /// `k' = mask ⊙ k`.
    pub fn forward(&self, k: ArrayView3<T>) -> Result<Array3<T>> {
        check_same("k", &k, self.mask.dim())?;
        Ok(&k * &self.mask)
    }

    /// `∂L/∂k = mask ⊙ ∂L/∂k'`.
    pub fn backward(&self, dk_out: ArrayView3<T>) -> Result<Array3<T>> {
        check_same("dk_out", &dk_out, self.mask.dim())?;
        Ok(&dk_out * &self.mask)
    }
}
