//! The DFT and its inverse as one butterfly block plus a bit-reversal permutation.

use crate::butterfly::init::fft_twiddles;
use crate::butterfly::{Butterfly, Permutation};
use crate::error::{check_pow2, Error, Result};
use crate::scalar::Scalar;

/// Which radix-2 factorisation of the DFT a butterfly follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Decimation {
    /// Cooley–Tukey decimation in time: `F = B·P_br`, increasing stride, the bit-reversal on
    /// the input.
    #[default]
    Time,
    /// Gentleman–Sande decimation in frequency: `F = P_br·B`, decreasing stride, the
    /// bit-reversal on the output.
    Frequency,
}

/// Options of [`Butterfly::fft`] and [`Butterfly::ifft`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FftOptions {
    /// Scale by `1/√n` both ways (unitary). When false, the forward transform is unscaled and
    /// the inverse carries `1/n`, so `ifft(fft(x)) = x` (the numpy/PyTorch convention).
    pub normalized: bool,
    /// Include the bit-reversal permutation. When false the map is the butterfly alone: it
    /// expects bit-reversed input (decimation in time) or produces bit-reversed output
    /// (decimation in frequency).
    pub bit_reversal: bool,
    /// The factorisation.
    pub decimation: Decimation,
}

impl Default for FftOptions {
    fn default() -> Self {
        Self {
            normalized: false,
            bit_reversal: true,
            decimation: Decimation::Time,
        }
    }
}

fn fourier<T: Scalar>(n: usize, opts: FftOptions, inverse: bool) -> Result<Butterfly<T>> {
    if !T::IS_COMPLEX {
        return Err(Error::InvalidArgument {
            what: "scalar type",
            message: format!("the DFT needs complex scalars, got {}", T::NAME),
        });
    }
    check_pow2("n", n)?;
    let sign = if inverse { 1.0 } else { -1.0 };
    let scale = match (opts.normalized, inverse) {
        (true, _) => std::f64::consts::FRAC_1_SQRT_2,
        (false, false) => 1.0,
        (false, true) => 0.5,
    };
    let increasing = opts.decimation == Decimation::Time;
    let tw = fft_twiddles::<T>(n, increasing, sign, scale);
    let b = Butterfly::from_twiddle(n, n, 1, increasing, tw, None)?;
    if !opts.bit_reversal {
        return Ok(b);
    }
    let br = Permutation::bit_reversal(n)?;
    match opts.decimation {
        Decimation::Time => b.with_input_permutation(br),
        Decimation::Frequency => b.with_output_permutation(br),
    }
}

impl<T: Scalar> Butterfly<T> {
    /// The DFT `F[k, j] = exp(−2πi·jk/n)` of size `n = 2^m` as one butterfly block (complex
    /// scalars only): `log2 n` levels, `2n log2 n` parameters.
    pub fn fft(n: usize, opts: FftOptions) -> Result<Self> {
        fourier(n, opts, false)
    }

    /// The inverse DFT `F⁻¹[k, j] = exp(+2πi·jk/n)/n` (or `/√n` when normalised).
    pub fn ifft(n: usize, opts: FftOptions) -> Result<Self> {
        fourier(n, opts, true)
    }
}
