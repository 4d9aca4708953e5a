//! Real trigonometric transforms — DCT and DST of types II, III and IV, and the discrete Hartley
//! transform — each the real part of one complex butterfly with fixed input and output
//! permutations (Dao et al., ICML 2019, §3 and appendix; the reorderings of Makhoul, *A fast
//! cosine transform in one and two dimensions*, IEEE TASSP 1980).
//!
//! Conventions are scipy.fft's (`norm=None` and `norm="ortho"`), for `n = 2^m`:
//!
//! | type | `y[k]` (unnormalised) | orthonormal |
//! |---|---|---|
//! | DCT-II | `2 Σ_j x_j cos(πk(2j+1)/2n)` | `y_0·√(1/4n)`, `y_k·√(1/2n)` |
//! | DCT-III | `x_0 + 2 Σ_{j≥1} x_j cos(π(2k+1)j/2n)` | the transpose of the orthonormal DCT-II |
//! | DCT-IV | `2 Σ_j x_j cos(π(2k+1)(2j+1)/4n)` | `·√(1/2n)` |
//! | DST-II | `2 Σ_j x_j sin(π(k+1)(2j+1)/2n)` | `y_{n−1}·√(1/4n)`, others `·√(1/2n)` |
//! | DST-III | `(−1)^k x_{n−1} + 2 Σ_{j<n−1} x_j sin(π(2k+1)(j+1)/2n)` | the transpose of the orthonormal DST-II |
//! | DST-IV | `2 Σ_j x_j sin(π(2k+1)(2j+1)/4n)` | `·√(1/2n)` |
//! | Hartley | `Σ_j x_j cas(2πjk/n)`, `cas = cos + sin` | `·√(1/n)` |
//!
//! Each matrix `C` is written `C = Re(M)` with `M = Q·B·P` for a butterfly block `B` (all
//! diagonal factors folded into its first or last level) and fixed permutations `P`, `Q`; on
//! real inputs `C x = Re(M x)`, which is what [`RealPart`] computes.

use crate::butterfly::init::fft_twiddles;
use crate::butterfly::{Butterfly, Diagonal, Permutation, RealPart};
use crate::error::{check_pow2, Error, Result};
use crate::scalar::{RealScalar, Scalar, C64};
use num_complex::Complex;
use std::f64::consts::PI;

/// Which discrete cosine transform (scipy's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DctType {
    /// `y_k = 2 Σ_j x_j cos(πk(2j+1)/2n)` (the "DCT").
    II,
    /// `y_k = x_0 + 2 Σ_{j≥1} x_j cos(π(2k+1)j/2n)` (the unnormalised inverse of type II, up to `2n`).
    III,
    /// `y_k = 2 Σ_j x_j cos(π(2k+1)(2j+1)/4n)`.
    IV,
}

/// Which discrete sine transform (scipy's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DstType {
    /// `y_k = 2 Σ_j x_j sin(π(k+1)(2j+1)/2n)`.
    II,
    /// `y_k = (−1)^k x_{n−1} + 2 Σ_{j<n−1} x_j sin(π(2k+1)(j+1)/2n)`.
    III,
    /// `y_k = 2 Σ_j x_j sin(π(2k+1)(2j+1)/4n)`.
    IV,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trig {
    Dct(DctType),
    Dst(DstType),
    Hartley,
}

/// The gather vector of the bit-reversal on `n = 2^m` points.
pub(super) fn bit_reversal(n: usize) -> Result<Vec<usize>> {
    Ok(Permutation::bit_reversal(n)?.as_slice().to_vec())
}

/// The pair `(a, a + s)` that pair `p` of a level with stride `s` mixes.
fn pair(p: usize, s: usize) -> (usize, usize) {
    let a = (p / s) * 2 * s + p % s;
    (a, a + s)
}

/// Multiply the columns of level `level` (stride `s`) of a one-block twiddle table by `d`:
/// the level becomes `L·diag(d)`.
pub(super) fn scale_level_inputs(tw: &mut [C64], n: usize, level: usize, s: usize, d: &[C64]) {
    let half = n / 2;
    for (p, t) in tw[level * half * 4..(level + 1) * half * 4]
        .chunks_exact_mut(4)
        .enumerate()
    {
        let (a, b) = pair(p, s);
        t[0] *= d[a];
        t[2] *= d[a];
        t[1] *= d[b];
        t[3] *= d[b];
    }
}

/// Multiply the rows of level `level` (stride `s`) of a one-block twiddle table by `d`: the
/// level becomes `diag(d)·L`.
pub(super) fn scale_level_outputs(tw: &mut [C64], n: usize, level: usize, s: usize, d: &[C64]) {
    let half = n / 2;
    for (p, t) in tw[level * half * 4..(level + 1) * half * 4]
        .chunks_exact_mut(4)
        .enumerate()
    {
        let (a, b) = pair(p, s);
        t[0] *= d[a];
        t[1] *= d[a];
        t[2] *= d[b];
        t[3] *= d[b];
    }
}

/// One butterfly block (in `f64`) with its fixed permutations: the map `Q·B·P`.
struct Plan {
    n: usize,
    increasing: bool,
    tw: Vec<C64>,
    in_perm: Vec<usize>,
    out_perm: Vec<usize>,
}

impl Plan {
    fn into_butterfly<T: Scalar>(self) -> Result<Butterfly<T>> {
        let tw = self.tw.iter().map(|z| T::from_parts(z.re, z.im)).collect();
        Butterfly::from_twiddle(self.n, self.n, 1, self.increasing, tw, None)?
            .with_input_permutation(Permutation::new(self.in_perm)?)?
            .with_output_permutation(Permutation::new(self.out_perm)?)
    }
}

/// `M = Q·diag(dout)·F·diag(din)·P` as one block, `F` the unnormalised DFT of size `n ≥ 2` with
/// kernel `exp(−2πi·jk/n)`; `P`, `Q` are gather vectors (`(P x)[i] = x[p[i]]`) and `din`,
/// `dout` are indexed in the DFT's natural (time, frequency) order.
fn dft_sandwich(
    n: usize,
    increasing: bool,
    p: &[usize],
    din: &[C64],
    q: &[usize],
    dout: &[C64],
) -> Result<Plan> {
    let log_n = n.trailing_zeros() as usize;
    let br = bit_reversal(n)?;
    let mut tw = fft_twiddles::<C64>(n, increasing, -1.0, 1.0);
    // Decimation in time is F = B·P_br, in frequency F = P_br·B; move the diagonals through P_br.
    let (in_perm, din, out_perm, dout): (Vec<_>, Vec<_>, Vec<_>, Vec<_>) = if increasing {
        (
            br.iter().map(|&b| p[b]).collect(),
            br.iter().map(|&b| din[b]).collect(),
            q.to_vec(),
            dout.to_vec(),
        )
    } else {
        (
            p.to_vec(),
            din.to_vec(),
            q.iter().map(|&k| br[k]).collect(),
            br.iter().map(|&b| dout[b]).collect(),
        )
    };
    let stride = |l: usize| if increasing { 1 << l } else { n >> (l + 1) };
    scale_level_inputs(&mut tw, n, 0, stride(0), &din);
    scale_level_outputs(&mut tw, n, log_n - 1, stride(log_n - 1), &dout);
    Ok(Plan {
        n,
        increasing,
        tw,
        in_perm,
        out_perm,
    })
}

/// DCT-IV (or DST-IV `= J·C_IV·Σ`, `J` the reversal, `Σ = diag((−1)^j)`) of size `n ≥ 2` as one
/// decreasing-stride block. With `h = n/2` and `v_r = x_{2r} + i·x_{n−1−2r}`,
/// `u_k = y_{2k} − i·y_{n−1−2k} = 2e^{−iπ/4n}·e^{−iπk/n}·Σ_r v_r e^{−iπr/n} e^{−2πi·rk/h}`:
/// the first level (stride `h`) forms `a_r v_r` and `i·a_r v_r`, the remaining levels are a
/// size-`h` DFT by decimation in frequency on each half, and the last level takes the output
/// twiddle; `y_{2k} = Re u_k`, `y_{n−1−2k} = Re(i·u_k)`.
fn type_iv(n: usize, orthonormal: bool, sine: bool) -> Result<Plan> {
    let h = n / 2;
    let log_n = n.trailing_zeros() as usize;
    let i = C64::new(0.0, 1.0);
    let mut tw = fft_twiddles::<C64>(n, false, -1.0, 1.0);
    for (r, t) in tw[..h * 4].chunks_exact_mut(4).enumerate() {
        let a = C64::from_polar(1.0, -PI * r as f64 / n as f64);
        t.copy_from_slice(&[a, i * a, i * a, -a]);
    }
    let mut in_perm = vec![0; n];
    for r in 0..h {
        in_perm[r] = 2 * r;
        in_perm[r + h] = n - 1 - 2 * r;
    }
    if sine {
        let sign: Vec<C64> = in_perm
            .iter()
            .map(|&j| C64::new(if j % 2 == 0 { 1.0 } else { -1.0 }, 0.0))
            .collect();
        scale_level_inputs(&mut tw, n, 0, h, &sign);
    }
    let brh = bit_reversal(h)?;
    let scale = if orthonormal {
        (0.5 / n as f64).sqrt()
    } else {
        1.0
    };
    let g =
        |k: usize| C64::from_polar(2.0 * scale, -PI / (4 * n) as f64 - PI * k as f64 / n as f64);
    let mut dout = vec![C64::new(0.0, 0.0); n];
    let mut out_perm = vec![0; n];
    for r in 0..h {
        dout[r] = g(brh[r]);
        dout[h + r] = g(brh[r]);
        out_perm[2 * r] = brh[r];
        out_perm[n - 1 - 2 * r] = h + brh[r];
    }
    scale_level_outputs(&mut tw, n, log_n - 1, 1, &dout);
    if sine {
        out_perm.reverse();
    }
    Ok(Plan {
        n,
        increasing: false,
        tw,
        in_perm,
        out_perm,
    })
}

/// The complex block `M` (with `Re(M)` the transform) of size `n ≥ 2`.
fn plan(n: usize, t: Trig, orthonormal: bool) -> Result<Plan> {
    let nf = n as f64;
    let id: Vec<usize> = (0..n).collect();
    let ones = vec![C64::new(1.0, 0.0); n];
    let rev: Vec<usize> = (0..n).rev().collect();
    // Makhoul's reordering v = P x: v_r = x_{2r}, v_{n−1−r} = x_{2r+1}.
    let mak: Vec<usize> = (0..n)
        .map(|r| if r < n / 2 { 2 * r } else { 2 * n - 2 * r - 1 })
        .collect();
    let mut mak_inv = vec![0; n];
    for (r, &j) in mak.iter().enumerate() {
        mak_inv[j] = r;
    }
    let sign = |j: usize| C64::new(if j.is_multiple_of(2) { 1.0 } else { -1.0 }, 0.0);
    // DCT-II = Re(diag(2e^{−iπk/2n})·F·P_mak); its orthonormal row scales.
    let o2 = |k: usize| match (orthonormal, k) {
        (false, _) => 1.0,
        (true, 0) => (0.25 / nf).sqrt(),
        (true, _) => (0.5 / nf).sqrt(),
    };
    let d2 = |k: usize, w: f64| C64::from_polar(2.0 * w, -PI * k as f64 / (2.0 * nf));
    // Types III are transposes of types II: Re(Mᵀ) = Re(M)ᵀ, and F is symmetric. The
    // unnormalised type III halves the weight of the input the transpose counts twice.
    let w3 = |j: usize| match (orthonormal, j) {
        (true, _) => o2(j),
        (false, 0) => 0.5,
        (false, _) => 1.0,
    };
    match t {
        Trig::Dct(DctType::II) => {
            let dout: Vec<_> = (0..n).map(|k| d2(k, o2(k))).collect();
            dft_sandwich(n, false, &mak, &ones, &id, &dout)
        }
        Trig::Dct(DctType::III) => {
            let din: Vec<_> = (0..n).map(|j| d2(j, w3(j))).collect();
            dft_sandwich(n, true, &id, &din, &mak_inv, &ones)
        }
        Trig::Dst(DstType::II) => {
            // DST-II = J·DCT-II·Σ.
            let din: Vec<_> = mak.iter().map(|&j| sign(j)).collect();
            let dout: Vec<_> = (0..n).map(|k| d2(k, o2(k))).collect();
            dft_sandwich(n, false, &mak, &din, &rev, &dout)
        }
        Trig::Dst(DstType::III) => {
            // DST-III = (DST-II)ᵀ·W = Σ·P_makᵀ·F·diag(d)·J·W.
            let din: Vec<_> = (0..n).map(|j| d2(j, w3(j))).collect();
            let dout: Vec<_> = mak.iter().map(|&k| sign(k)).collect();
            dft_sandwich(n, true, &rev, &din, &mak_inv, &dout)
        }
        Trig::Dct(DctType::IV) => type_iv(n, orthonormal, false),
        Trig::Dst(DstType::IV) => type_iv(n, orthonormal, true),
        Trig::Hartley => {
            // cas(θ) = Re((1 + i)·e^{−iθ}).
            let s = if orthonormal { 1.0 / nf.sqrt() } else { 1.0 };
            let dout = vec![C64::new(s, s); n];
            dft_sandwich(n, true, &id, &ones, &id, &dout)
        }
    }
}

/// The 1×1 transform: `n = 1` has no butterfly level to carry the scale.
fn size_one(t: Trig, orthonormal: bool) -> f64 {
    if orthonormal {
        return 1.0;
    }
    match t {
        Trig::Dct(DctType::II) | Trig::Dst(DstType::II) => 2.0,
        Trig::Dct(DctType::IV) | Trig::Dst(DstType::IV) => std::f64::consts::SQRT_2,
        Trig::Dct(DctType::III) | Trig::Dst(DstType::III) | Trig::Hartley => 1.0,
    }
}

fn complex_block<T: Scalar>(n: usize, t: Trig, orthonormal: bool) -> Result<Butterfly<T>> {
    if !T::IS_COMPLEX {
        return Err(Error::InvalidArgument {
            what: "scalar type",
            message: format!(
                "the complex butterfly of a real transform needs complex scalars, got {}",
                T::NAME
            ),
        });
    }
    check_pow2("n", n)?;
    if n == 1 {
        return Err(Error::InvalidArgument {
            what: "n",
            message: "must be at least 2: a size-1 butterfly has no level to hold the transform's \
                      scale (Butterfly::dct and friends handle n = 1)"
                .into(),
        });
    }
    plan(n, t, orthonormal)?.into_butterfly()
}

fn real_transform<R: RealScalar>(n: usize, t: Trig, orthonormal: bool) -> Result<RealPart<R>>
where
    Complex<R>: Scalar<Real = R>,
{
    check_pow2("n", n)?;
    if n == 1 {
        let d = Diagonal::new(vec![Complex::new(
            R::from_f64(size_one(t, orthonormal)),
            R::zero(),
        )])?;
        return Ok(RealPart::new(Box::new(d)));
    }
    let b: Butterfly<Complex<R>> = plan(n, t, orthonormal)?.into_butterfly()?;
    Ok(RealPart::new(Box::new(b)))
}

/// The complex butterfly `M = Q·B·P` (one block, fixed permutations) whose real part is the
/// DCT of `kind` on `n = 2^m ≥ 2` points (scipy's convention, see [`DctType`]): for
/// real `x`, `DCT(x) = Re(M x)`. A starting point for learning; [`Butterfly::dct`] wraps it.
pub fn dct_butterfly<T: Scalar>(
    n: usize,
    kind: DctType,
    orthonormal: bool,
) -> Result<Butterfly<T>> {
    complex_block(n, Trig::Dct(kind), orthonormal)
}

/// The complex butterfly `M` with `DST(x) = Re(M x)` for real `x` (see [`dct_butterfly`]).
pub fn dst_butterfly<T: Scalar>(
    n: usize,
    kind: DstType,
    orthonormal: bool,
) -> Result<Butterfly<T>> {
    complex_block(n, Trig::Dst(kind), orthonormal)
}

/// The complex butterfly `M = (1 + i)·F` (decimation in time, scale folded into the last
/// level) with the discrete Hartley transform `Re(M x)` for real `x`.
pub fn hartley_butterfly<T: Scalar>(n: usize, orthonormal: bool) -> Result<Butterfly<T>> {
    complex_block(n, Trig::Hartley, orthonormal)
}

impl<R: RealScalar> Butterfly<R>
where
    Complex<R>: Scalar<Real = R>,
{
    /// The unnormalised DCT of type `kind` on `n = 2^m` real points (scipy's `dct(x, type)`),
    /// as `x ↦ Re(M x)` for one complex butterfly `M` with fixed permutations (Makhoul's
    /// reordering for types II/III; a half-size DFT on two halves for type IV).
    pub fn dct(n: usize, kind: DctType) -> Result<RealPart<R>> {
        real_transform(n, Trig::Dct(kind), false)
    }

    /// The orthonormal DCT (scipy's `norm="ortho"`): type II scales `y_0` by `√(1/4n)` and
    /// the rest by `√(1/2n)`, type III is its transpose (and inverse), type IV is scaled by
    /// `√(1/2n)`.
    pub fn dct_orthonormal(n: usize, kind: DctType) -> Result<RealPart<R>> {
        real_transform(n, Trig::Dct(kind), true)
    }

    /// The unnormalised DST of type `kind` on `n = 2^m` real points (scipy's `dst(x, type)`):
    /// `DST-II = J·DCT-II·Σ`, `DST-IV = J·DCT-IV·Σ` with `J` the reversal and
    /// `Σ = diag((−1)^j)`, folded into the same butterfly.
    pub fn dst(n: usize, kind: DstType) -> Result<RealPart<R>> {
        real_transform(n, Trig::Dst(kind), false)
    }

    /// The orthonormal DST (scipy's `norm="ortho"`): type II scales `y_{n−1}` by `√(1/4n)` and
    /// the rest by `√(1/2n)`, type III is its transpose (and inverse), type IV is scaled by
    /// `√(1/2n)`.
    pub fn dst_orthonormal(n: usize, kind: DstType) -> Result<RealPart<R>> {
        real_transform(n, Trig::Dst(kind), true)
    }

    /// The discrete Hartley transform `H[k, j] = cas(2πjk/n) = cos + sin` on `n = 2^m` real
    /// points (Bracewell 1983), as `Re((1 + i)·F x)`; `H² = n·I`.
    pub fn hartley(n: usize) -> Result<RealPart<R>> {
        real_transform(n, Trig::Hartley, false)
    }

    /// The orthonormal Hartley transform `H/√n`, an involution.
    pub fn hartley_orthonormal(n: usize) -> Result<RealPart<R>> {
        real_transform(n, Trig::Hartley, true)
    }
}
