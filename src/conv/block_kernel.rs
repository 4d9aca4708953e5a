//! SIMD kernels for one level of the block transform: `y = (I ⊗ B) x` on complex data stored
//! interleaved (`re, im` pairs of `T`), optionally followed by an elementwise twiddle, and the
//! level's block gradient `dB += Σ G Xᴴ`.
//!
//! * Stride levels (`x` viewed as `(a, k, j)`, the block acting on `k`, `j` contiguous):
//!   `y[a,i,j] = Σ_k B[i,k] x[a,k,j]` is computed as `A = Σ_k Re B[i,k]·x_k`,
//!   `C = Σ_k Im B[i,k]·x_k` (real-scalar × interleaved-vector FMAs) and `y = A + i·C`, over
//!   tiles of 8 complex columns that stay in registers for a pair of output rows.
//! * Row levels (the block acts on contiguous rows of `f`): `y_row = Σ_k Re x_k·Bᵀ[k] +
//!   Im x_k·(i·Bᵀ[k])`, two rows at a time.
//! * With AVX-512 and `f32`, both shapes go through `gauss512` instead: three real products
//!   per complex one (Gauss), written with intrinsics.
//! * Block gradients ([`grad_level`]): lane accumulators over `j` reduced once per tile for
//!   stride levels, register-tiled outer products for the row level (`grad512` with AVX-512
//!   and `f32`).
//!
//! The generic arithmetic is written as whole-array loops over fixed-size arrays that the
//! compiler turns into vector instructions inside the `#[target_feature]` entry points.

use super::ConvFloat;
use num_complex::Complex;

/// `a·b + c`, fused (one rounding, needs hardware FMA) or not.
trait MulAdd {
    fn ma<T: ConvFloat>(a: T, b: T, c: T) -> T;
}

struct Fused;
impl MulAdd for Fused {
    #[inline(always)]
    fn ma<T: ConvFloat>(a: T, b: T, c: T) -> T {
        num_traits::Float::mul_add(a, b, c)
    }
}

struct Unfused;
impl MulAdd for Unfused {
    #[inline(always)]
    fn ma<T: ConvFloat>(a: T, b: T, c: T) -> T {
        a * b + c
    }
}

/// Reals per column tile of the stride kernel (8 complex numbers).
const JT: usize = 16;
/// The largest block the stride kernel takes (its tile buffer is `MAX_STRIDE_F × JT`).
const MAX_STRIDE_F: usize = 32;

/// A block in the layouts the kernels read: real and imaginary planes of `B` (row-major) and
/// the interleaved columns `Bᵀ[k]` and `i·Bᵀ[k]`.
#[derive(Clone, Debug)]
pub(crate) struct PreparedBlock<T> {
    f: usize,
    re: Vec<T>,
    im: Vec<T>,
    bt: Vec<T>,
    bti: Vec<T>,
    /// `B` row-major, interleaved `(Re, Im)`, and `Re B + Im B` row-major (stride kernel).
    bc: Vec<T>,
    bs: Vec<T>,
    /// Planes of `Bᵀ`: `Re`, `Im` and `Re + Im` (row kernel).
    tr: Vec<T>,
    ti: Vec<T>,
    ts: Vec<T>,
}

impl<T: ConvFloat> PreparedBlock<T> {
    /// From a row-major `f × f` block, or its conjugate transpose when `adjoint`.
    pub(crate) fn new(b: &[Complex<T>], f: usize, adjoint: bool) -> Self {
        let at = |i: usize, k: usize| {
            if adjoint {
                b[k * f + i].conj()
            } else {
                b[i * f + k]
            }
        };
        let mut p = PreparedBlock {
            f,
            re: vec![T::zero(); f * f],
            im: vec![T::zero(); f * f],
            bt: vec![T::zero(); 2 * f * f],
            bti: vec![T::zero(); 2 * f * f],
            bc: vec![T::zero(); 2 * f * f],
            bs: vec![T::zero(); f * f],
            tr: vec![T::zero(); f * f],
            ti: vec![T::zero(); f * f],
            ts: vec![T::zero(); f * f],
        };
        for i in 0..f {
            for k in 0..f {
                let z = at(i, k);
                p.re[i * f + k] = z.re;
                p.im[i * f + k] = z.im;
                p.bt[k * 2 * f + 2 * i] = z.re;
                p.bt[k * 2 * f + 2 * i + 1] = z.im;
                p.bti[k * 2 * f + 2 * i] = -z.im;
                p.bti[k * 2 * f + 2 * i + 1] = z.re;
                p.bc[2 * (i * f + k)] = z.re;
                p.bc[2 * (i * f + k) + 1] = z.im;
                p.bs[i * f + k] = z.re + z.im;
                p.tr[k * f + i] = z.re;
                p.ti[k * f + i] = z.im;
                p.ts[k * f + i] = z.re + z.im;
            }
        }
        p
    }
}

/// An elementwise twiddle applied to a level's output: chunk `a` (of the level's sub-problem
/// size) is multiplied by `w[(a % period)·chunk ..]` (conjugated when `conj`), `w` given as
/// real and imaginary planes with each value duplicated (`wr[2m] = wr[2m+1]`).
#[derive(Clone, Copy)]
pub(crate) struct PostTwiddle<'a, T> {
    pub(crate) wr: &'a [T],
    pub(crate) wi: &'a [T],
    pub(crate) period: usize,
    pub(crate) conj: bool,
}

/// Twiddle planes (duplicated) of a complex twiddle vector.
pub(crate) fn twiddle_planes<T: ConvFloat>(w: &[Complex<T>]) -> (Vec<T>, Vec<T>) {
    let wr = w.iter().flat_map(|z| [z.re, z.re]).collect();
    let wi = w.iter().flat_map(|z| [z.im, z.im]).collect();
    (wr, wi)
}

/// `y = p + i·q` for interleaved `p`, `q`, written to `out`.
#[inline(always)]
fn combine<T: ConvFloat, const N: usize>(p: &[T; N], q: &[T; N], out: &mut [T]) {
    let out: &mut [T; N] = (&mut out[..N]).try_into().expect("tile");
    for m in 0..N / 2 {
        out[2 * m] = p[2 * m] - q[2 * m + 1];
        out[2 * m + 1] = p[2 * m + 1] + q[2 * m];
    }
}

/// Store the tile `A + i·C`, times the twiddle when given.
#[inline(always)]
fn store_tile<T: ConvFloat, const N: usize>(
    a: &[T; N],
    c: &[T; N],
    tw: Option<(&[T], &[T], bool)>,
    out: &mut [T],
) {
    match tw {
        None => combine(a, c, out),
        Some((wr, wi, conj)) => {
            let wr: &[T; N] = wr[..N].try_into().expect("tile");
            let wi: &[T; N] = wi[..N].try_into().expect("tile");
            let mut p = [T::zero(); N];
            let mut q = [T::zero(); N];
            // (wr + i·wi)(A + iC) = (wr·A − wi·C) + i(wr·C + wi·A).
            for t in 0..N {
                let s = if conj { -wi[t] } else { wi[t] };
                p[t] = wr[t] * a[t] - s * c[t];
                q[t] = wr[t] * c[t] + s * a[t];
            }
            combine(&p, &q, out);
        }
    }
}

/// Stride level: `f` even, `2·mp` a multiple of [`JT`]; only input rows `k < rows.0` are read
/// (the rest are taken as zero) and output rows `i < rows.1` (rounded up to even) written.
#[inline(always)]
fn stride_level<T: ConvFloat, A: MulAdd>(
    blk: &PreparedBlock<T>,
    mp: usize,
    x: &[T],
    y: &mut [T],
    tw: Option<PostTwiddle<'_, T>>,
    rows: (usize, usize),
) {
    let f = blk.f;
    let (k_end, i_end) = (rows.0.min(f), (rows.1.min(f) + 1) & !1);
    let row = 2 * mp;
    let chunk = f * row;
    for (a, (xs, ys)) in x
        .chunks_exact(chunk)
        .zip(y.chunks_exact_mut(chunk))
        .enumerate()
    {
        let tws = tw.map(|t| {
            let off = (a % t.period) * chunk;
            (&t.wr[off..off + chunk], &t.wi[off..off + chunk], t.conj)
        });
        for jt in (0..row).step_by(JT) {
            // The tile's rows lie a power of two apart and would evict each other from L1
            // (set conflicts) while the output rows are computed: copy them together once.
            let mut xt = [T::zero(); MAX_STRIDE_F * JT];
            for k in 0..k_end {
                xt[k * JT..(k + 1) * JT].copy_from_slice(&xs[k * row + jt..k * row + jt + JT]);
            }
            for i in (0..i_end).step_by(2) {
                let mut a0 = [T::zero(); JT];
                let mut c0 = [T::zero(); JT];
                let mut a1 = [T::zero(); JT];
                let mut c1 = [T::zero(); JT];
                for k in 0..k_end {
                    let xk: &[T; JT] = xt[k * JT..(k + 1) * JT].try_into().expect("tile");
                    let (r0, i0) = (blk.re[i * f + k], blk.im[i * f + k]);
                    let (r1, i1) = (blk.re[(i + 1) * f + k], blk.im[(i + 1) * f + k]);
                    for t in 0..JT {
                        a0[t] = A::ma(r0, xk[t], a0[t]);
                        c0[t] = A::ma(i0, xk[t], c0[t]);
                        a1[t] = A::ma(r1, xk[t], a1[t]);
                        c1[t] = A::ma(i1, xk[t], c1[t]);
                    }
                }
                for (ii, (aa, cc)) in [(i, (&a0, &c0)), (i + 1, (&a1, &c1))] {
                    let off = ii * row + jt;
                    let t = tws.map(|(wr, wi, cj)| (&wr[off..], &wi[off..], cj));
                    store_tile(aa, cc, t, &mut ys[off..]);
                }
            }
        }
    }
}

/// Row level with block size `F` (rows of `F` complex numbers), two rows at a time; the row
/// count must be even.
#[inline(always)]
fn row_level<T: ConvFloat, A: MulAdd, const F: usize, const F2: usize>(
    blk: &PreparedBlock<T>,
    x: &[T],
    y: &mut [T],
    tw: Option<PostTwiddle<'_, T>>,
) {
    for (s2, (xs, ys)) in x
        .chunks_exact(2 * F2)
        .zip(y.chunks_exact_mut(2 * F2))
        .enumerate()
    {
        let mut acc0 = [T::zero(); F2];
        let mut acc1 = [T::zero(); F2];
        for k in 0..F {
            let bt: &[T; F2] = blk.bt[k * F2..(k + 1) * F2].try_into().expect("row");
            let bti: &[T; F2] = blk.bti[k * F2..(k + 1) * F2].try_into().expect("row");
            let (xr0, xi0) = (xs[2 * k], xs[2 * k + 1]);
            let (xr1, xi1) = (xs[F2 + 2 * k], xs[F2 + 2 * k + 1]);
            for t in 0..F2 {
                acc0[t] = A::ma(xr0, bt[t], acc0[t]);
                acc0[t] = A::ma(xi0, bti[t], acc0[t]);
                acc1[t] = A::ma(xr1, bt[t], acc1[t]);
                acc1[t] = A::ma(xi1, bti[t], acc1[t]);
            }
        }
        for (r, acc) in [(0usize, &acc0), (1, &acc1)] {
            let out = &mut ys[r * F2..(r + 1) * F2];
            match tw {
                None => out.copy_from_slice(acc),
                Some(t) => {
                    let off = ((2 * s2 + r) % t.period) * F2;
                    let wr = &t.wr[off..off + F2];
                    let wi = &t.wi[off..off + F2];
                    for m in 0..F {
                        let s = if t.conj { -wi[2 * m] } else { wi[2 * m] };
                        let (re, im) = (acc[2 * m], acc[2 * m + 1]);
                        out[2 * m] = wr[2 * m] * re - s * im;
                        out[2 * m + 1] = wr[2 * m] * im + s * re;
                    }
                }
            }
        }
    }
}

/// Any level, plainly: the fallback for shapes the vector kernels do not take (`rows` as in
/// [`stride_level`]).
fn level_plain<T: ConvFloat>(
    blk: &PreparedBlock<T>,
    mp: usize,
    x: &[T],
    y: &mut [T],
    tw: Option<PostTwiddle<'_, T>>,
    rows: (usize, usize),
) {
    let f = blk.f;
    let (k_end, i_end) = (rows.0.min(f), rows.1.min(f));
    let chunk = 2 * f * mp;
    for (a, (xs, ys)) in x
        .chunks_exact(chunk)
        .zip(y.chunks_exact_mut(chunk))
        .enumerate()
    {
        for i in 0..i_end {
            for j in 0..mp {
                let mut acc = Complex::new(T::zero(), T::zero());
                for k in 0..k_end {
                    let b = Complex::new(blk.re[i * f + k], blk.im[i * f + k]);
                    let p = 2 * (k * mp + j);
                    acc += b * Complex::new(xs[p], xs[p + 1]);
                }
                let q = 2 * (i * mp + j);
                if let Some(t) = tw {
                    let off = (a % t.period) * chunk + q;
                    let w = Complex::new(t.wr[off], t.wi[off]);
                    acc *= if t.conj { w.conj() } else { w };
                }
                ys[q] = acc.re;
                ys[q + 1] = acc.im;
            }
        }
    }
}

#[inline(always)]
fn level_generic<T: ConvFloat, A: MulAdd>(
    blk: &PreparedBlock<T>,
    mp: usize,
    x: &[T],
    y: &mut [T],
    tw: Option<PostTwiddle<'_, T>>,
    rows: (usize, usize),
) {
    let f = blk.f;
    let nrows = x.len() / (2 * f);
    let rows_even = nrows.is_multiple_of(2);
    if mp == 1 && rows_even && rows.0 >= f && rows.1 >= f {
        match f {
            16 => return row_level::<T, A, 16, 32>(blk, x, y, tw),
            8 => return row_level::<T, A, 8, 16>(blk, x, y, tw),
            32 => return row_level::<T, A, 32, 64>(blk, x, y, tw),
            _ => {}
        }
    }
    if f.is_multiple_of(2) && f <= MAX_STRIDE_F && (2 * mp).is_multiple_of(JT) {
        return stride_level::<T, A>(blk, mp, x, y, tw, rows);
    }
    level_plain(blk, mp, x, y, tw, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,fma")]
unsafe fn level_avx<T: ConvFloat>(
    blk: &PreparedBlock<T>,
    mp: usize,
    x: &[T],
    y: &mut [T],
    tw: Option<PostTwiddle<'_, T>>,
    rows: (usize, usize),
) {
    level_generic::<T, Fused>(blk, mp, x, y, tw, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx,fma")]
unsafe fn level_avx512_any<T: ConvFloat>(
    blk: &PreparedBlock<T>,
    mp: usize,
    x: &[T],
    y: &mut [T],
    tw: Option<PostTwiddle<'_, T>>,
    rows: (usize, usize),
) {
    level_generic::<T, Fused>(blk, mp, x, y, tw, rows)
}

/// The AVX-512 level: the Gauss kernels of [`gauss512`] for `f32` where the shape fits,
/// else the generic kernels.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx,fma")]
unsafe fn level_avx512<T: ConvFloat>(
    blk: &PreparedBlock<T>,
    mp: usize,
    x: &[T],
    y: &mut [T],
    tw: Option<PostTwiddle<'_, T>>,
    rows: (usize, usize),
) {
    use std::any::TypeId;
    let f = blk.f;
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: `T` is `f32`, so the casts are identities.
        let cast =
            |v: &[T]| unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len()) };
        let blk32 = unsafe { &*(blk as *const PreparedBlock<T>).cast::<PreparedBlock<f32>>() };
        let tw32 = tw.map(|t| PostTwiddle {
            wr: cast(t.wr),
            wi: cast(t.wi),
            period: t.period,
            conj: t.conj,
        });
        let x32 = cast(x);
        let y32 = unsafe { std::slice::from_raw_parts_mut(y.as_mut_ptr().cast::<f32>(), y.len()) };
        if mp == 1 && f == 16 && rows.0 >= f && rows.1 >= f {
            return unsafe { gauss512::row16(blk32, x32, y32, tw32) };
        }
        if mp > 1 && mp.is_multiple_of(16) && f.is_multiple_of(2) && f <= MAX_STRIDE_F {
            return unsafe { gauss512::stride(blk32, mp, x32, y32, tw32, rows) };
        }
    }
    unsafe { level_avx512_any(blk, mp, x, y, tw, rows) }
}

/// `f32` AVX-512 level kernels with three real products per complex one (Gauss's trick:
/// `(a + ib)(c + id) = (ac − bd) + i((a + b)(c + d) − ac − bd)`), a quarter fewer FMAs than
/// the four-product kernels, which run at the FMA throughput.
///
/// * Stride levels, over tiles of 16 complex columns (two interleaved vectors `x_a`, `x_b`):
///   `P = Σ_k (Re B, Im B)·x` (lanes `Re B·Re x`, `Im B·Im x`) and
///   `Q = Σ_k (Re B + Im B)·(Re x + Im x)` (planar), then `Re y = P_re − P_im`,
///   `Im y = Q − P_re − P_im`; four output rows at a time.
/// * The row level of 16, planar over the output index: `t₁ = Σ_k Re x_k·Re Bᵀ[k]`,
///   `t₂ = Σ_k Im x_k·Im Bᵀ[k]`, `t₃ = Σ_k (Re x_k + Im x_k)·(Re + Im)Bᵀ[k]`; four rows at a
///   time.
#[cfg(target_arch = "x86_64")]
mod gauss512 {
    use super::{PostTwiddle, PreparedBlock};
    use std::arch::x86_64::*;

    type Tw = Option<(*const f32, *const f32, bool)>;

    /// `[x₁, x₀, x₃, x₂, …]`.
    #[inline(always)]
    unsafe fn swap(x: __m512) -> __m512 {
        _mm512_permute_ps::<0xB1>(x)
    }

    /// Store `y`, times the (duplicated-plane) twiddle when given:
    /// `w·y = Re w·y ∓ Im w·swap(y)` by lanes (`fmaddsub`).
    #[inline(always)]
    unsafe fn store(y: __m512, tw: Tw, out: *mut f32) {
        match tw {
            None => _mm512_storeu_ps(out, y),
            Some((wr, wi, conj)) => {
                let wr = _mm512_loadu_ps(wr);
                let mut wi = _mm512_loadu_ps(wi);
                if conj {
                    wi = _mm512_sub_ps(_mm512_setzero_ps(), wi);
                }
                let t = _mm512_mul_ps(wi, swap(y));
                _mm512_storeu_ps(out, _mm512_fmaddsub_ps(wr, y, t));
            }
        }
    }

    /// Output rows `i0 .. i0 + R` of one tile (see the module doc).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn stride_rows<const R: usize>(
        blk: &PreparedBlock<f32>,
        k_end: usize,
        i0: usize,
        tile: &[[__m512; 3]],
        ys: *mut f32,
        off0: usize,
        row: usize,
        tw: Tw,
    ) {
        let f = blk.f;
        let (bc, bs) = (blk.bc.as_ptr(), blk.bs.as_ptr());
        let mut pa = [_mm512_setzero_ps(); R];
        let mut pb = [_mm512_setzero_ps(); R];
        let mut q = [_mm512_setzero_ps(); R];
        for (k, &[va, vb, sk]) in tile.iter().enumerate().take(k_end) {
            for rr in 0..R {
                let o = (i0 + rr) * f + k;
                let c =
                    _mm512_castpd_ps(_mm512_set1_pd(bc.add(2 * o).cast::<f64>().read_unaligned()));
                let b = _mm512_set1_ps(*bs.add(o));
                pa[rr] = _mm512_fmadd_ps(c, va, pa[rr]);
                pb[rr] = _mm512_fmadd_ps(c, vb, pb[rr]);
                q[rr] = _mm512_fmadd_ps(b, sk, q[rr]);
            }
        }
        let dup_lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        let dup_hi = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
        for rr in 0..R {
            let off = off0 + (i0 + rr) * row;
            for (p, qq, h) in [
                (pa[rr], _mm512_permutexvar_ps(dup_lo, q[rr]), 0),
                (pb[rr], _mm512_permutexvar_ps(dup_hi, q[rr]), 16),
            ] {
                let sw = swap(p);
                let re = _mm512_sub_ps(p, sw);
                let im = _mm512_sub_ps(qq, _mm512_add_ps(p, sw));
                let yv = _mm512_mask_blend_ps(0xAAAA, re, im);
                let t = tw.map(|(wr, wi, c)| (wr.add(off + h), wi.add(off + h), c));
                store(yv, t, ys.add(off + h));
            }
        }
    }

    /// A stride level (`mp` a multiple of 16, `f` even, `f ≤ 32`); `rows` as in
    /// `apply_level`.
    #[target_feature(enable = "avx512f,avx,fma")]
    pub(super) unsafe fn stride(
        blk: &PreparedBlock<f32>,
        mp: usize,
        x: &[f32],
        y: &mut [f32],
        tw: Option<PostTwiddle<'_, f32>>,
        rows: (usize, usize),
    ) {
        let f = blk.f;
        let (k_end, i_end) = (rows.0.min(f), (rows.1.min(f) + 1) & !1);
        let row = 2 * mp;
        let chunk = f * row;
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let mut tile = [[_mm512_setzero_ps(); 3]; super::MAX_STRIDE_F];
        for a in 0..x.len() / chunk {
            let xs = x.as_ptr().add(a * chunk);
            let ys = y.as_mut_ptr().add(a * chunk);
            let tws: Tw = tw.map(|t| {
                let off = (a % t.period) * chunk;
                (
                    t.wr[off..off + chunk].as_ptr(),
                    t.wi[off..off + chunk].as_ptr(),
                    t.conj,
                )
            });
            for jt in (0..row).step_by(32) {
                for (k, tk) in tile.iter_mut().enumerate().take(k_end) {
                    let p = xs.add(k * row + jt);
                    let (va, vb) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
                    let sa = _mm512_add_ps(va, swap(va));
                    let sb = _mm512_add_ps(vb, swap(vb));
                    *tk = [va, vb, _mm512_permutex2var_ps(sa, even, sb)];
                }
                let mut i0 = 0;
                while i0 + 4 <= i_end {
                    stride_rows::<4>(blk, k_end, i0, &tile, ys, jt, row, tws);
                    i0 += 4;
                }
                while i0 < i_end {
                    stride_rows::<2>(blk, k_end, i0, &tile, ys, jt, row, tws);
                    i0 += 2;
                }
            }
        }
    }

    /// Rows `s .. s + R` of the row level of 16.
    #[inline(always)]
    unsafe fn rows16<const R: usize>(
        blk: &PreparedBlock<f32>,
        xp: *const f32,
        yp: *mut f32,
        s: usize,
        tw: Option<PostTwiddle<'_, f32>>,
    ) {
        let ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let mut xr = [[0f32; 16]; R];
        let mut xi = [[0f32; 16]; R];
        let mut xsum = [[0f32; 16]; R];
        for rr in 0..R {
            let p = xp.add((s + rr) * 32);
            let (x0, x1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
            let vr = _mm512_permutex2var_ps(x0, ie, x1);
            let vi = _mm512_permutex2var_ps(x0, io, x1);
            _mm512_storeu_ps(xr[rr].as_mut_ptr(), vr);
            _mm512_storeu_ps(xi[rr].as_mut_ptr(), vi);
            _mm512_storeu_ps(xsum[rr].as_mut_ptr(), _mm512_add_ps(vr, vi));
        }
        let (tr, ti, ts) = (blk.tr.as_ptr(), blk.ti.as_ptr(), blk.ts.as_ptr());
        let mut t1 = [_mm512_setzero_ps(); R];
        let mut t2 = [_mm512_setzero_ps(); R];
        let mut t3 = [_mm512_setzero_ps(); R];
        for k in 0..16 {
            let br = _mm512_loadu_ps(tr.add(16 * k));
            let bi = _mm512_loadu_ps(ti.add(16 * k));
            let bs = _mm512_loadu_ps(ts.add(16 * k));
            for rr in 0..R {
                t1[rr] = _mm512_fmadd_ps(_mm512_set1_ps(xr[rr][k]), br, t1[rr]);
                t2[rr] = _mm512_fmadd_ps(_mm512_set1_ps(xi[rr][k]), bi, t2[rr]);
                t3[rr] = _mm512_fmadd_ps(_mm512_set1_ps(xsum[rr][k]), bs, t3[rr]);
            }
        }
        let il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let ih = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        for rr in 0..R {
            let re = _mm512_sub_ps(t1[rr], t2[rr]);
            let im = _mm512_sub_ps(t3[rr], _mm512_add_ps(t1[rr], t2[rr]));
            let out = yp.add((s + rr) * 32);
            let t: Tw = tw.map(|t| {
                let off = ((s + rr) % t.period) * 32;
                (
                    t.wr[off..off + 32].as_ptr(),
                    t.wi[off..off + 32].as_ptr(),
                    t.conj,
                )
            });
            let t_hi = t.map(|(wr, wi, c)| (wr.add(16), wi.add(16), c));
            store(_mm512_permutex2var_ps(re, il, im), t, out);
            store(_mm512_permutex2var_ps(re, ih, im), t_hi, out.add(16));
        }
    }

    /// The row level of 16 (every row, no pruning).
    #[target_feature(enable = "avx512f,avx,fma")]
    pub(super) unsafe fn row16(
        blk: &PreparedBlock<f32>,
        x: &[f32],
        y: &mut [f32],
        tw: Option<PostTwiddle<'_, f32>>,
    ) {
        let n = x.len() / 32;
        let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
        let mut s = 0;
        while s + 4 <= n {
            rows16::<4>(blk, xp, yp, s, tw);
            s += 4;
        }
        while s < n {
            rows16::<1>(blk, xp, yp, s, tw);
            s += 1;
        }
    }
}

/// `y = (I ⊗ B) x` (then the twiddle) for `x` of `len/(f·mp)` sub-problems `(f, mp)`, complex
/// interleaved; `x` and `y` have the same length, a multiple of `2·f·mp`. Pruning: input rows
/// `k ≥ rows.0` of each sub-problem are taken as zero (not read) and only output rows
/// `i < rows.1` are guaranteed to be written; `(f, f)` (or more) is the full product.
pub(crate) fn apply_level<T: ConvFloat>(
    blk: &PreparedBlock<T>,
    mp: usize,
    x: &[T],
    y: &mut [T],
    tw: Option<PostTwiddle<'_, T>>,
    rows: (usize, usize),
) {
    debug_assert_eq!(x.len(), y.len());
    debug_assert!(x.len().is_multiple_of(2 * blk.f * mp));
    simd_dispatch!(
        avx512: level_avx512(blk, mp, x, y, tw, rows),
        avx: level_avx(blk, mp, x, y, tw, rows),
        generic: level_generic::<T, Unfused>(blk, mp, x, y, tw, rows),
    )
}

/// The reals of a complex slice (`Complex<T>` is `repr(C)`: `re` then `im`).
pub(crate) fn as_reals<T: ConvFloat>(z: &[Complex<T>]) -> &[T] {
    // SAFETY: `Complex<T>` is `#[repr(C)]` with two `T` fields and no padding.
    unsafe { std::slice::from_raw_parts(z.as_ptr().cast::<T>(), 2 * z.len()) }
}

/// Mutable [`as_reals`].
pub(crate) fn as_reals_mut<T: ConvFloat>(z: &mut [Complex<T>]) -> &mut [T] {
    // SAFETY: as in `as_reals`; the borrow is exclusive.
    unsafe { std::slice::from_raw_parts_mut(z.as_mut_ptr().cast::<T>(), 2 * z.len()) }
}

/// Block-gradient tile of a stride level: `KT` columns `k0..k0+KT` of `dB` for the two rows
/// `i0, i0+1`, as `Σ_{a,j} G[a,i,j]·conj(X[a,k,j])`. The lanes keep `P = G ⊙ X` (whose pair
/// sums are the real parts) and `Q = G ⊙ swap(X)` (odd minus even lanes: the imaginary parts)
/// and are reduced once at the end.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn grad_stride_tile<T: ConvFloat, A: MulAdd, const KT: usize>(
    f: usize,
    row: usize,
    g: &[T],
    x: &[T],
    db: &mut [T],
    i0: usize,
    k0: usize,
    two_rows: bool,
) {
    let chunk = f * row;
    let mut p0 = [[T::zero(); JT]; KT];
    let mut q0 = [[T::zero(); JT]; KT];
    let mut p1 = [[T::zero(); JT]; KT];
    let mut q1 = [[T::zero(); JT]; KT];
    for (gs, xs) in g.chunks_exact(chunk).zip(x.chunks_exact(chunk)) {
        let g0r = &gs[i0 * row..(i0 + 1) * row];
        let g1r = &gs[(i0 + two_rows as usize) * row..(i0 + 1 + two_rows as usize) * row];
        let xr: [&[T]; KT] = std::array::from_fn(|kk| &xs[(k0 + kk) * row..(k0 + kk + 1) * row]);
        for jt in (0..row).step_by(JT) {
            let g0: &[T; JT] = g0r[jt..jt + JT].try_into().expect("tile");
            let g1: &[T; JT] = g1r[jt..jt + JT].try_into().expect("tile");
            for kk in 0..KT {
                let xk: &[T; JT] = xr[kk][jt..jt + JT].try_into().expect("tile");
                let mut xw = [T::zero(); JT];
                for t in 0..JT / 2 {
                    xw[2 * t] = xk[2 * t + 1];
                    xw[2 * t + 1] = xk[2 * t];
                }
                for t in 0..JT {
                    p0[kk][t] = A::ma(g0[t], xk[t], p0[kk][t]);
                    q0[kk][t] = A::ma(g0[t], xw[t], q0[kk][t]);
                    p1[kk][t] = A::ma(g1[t], xk[t], p1[kk][t]);
                    q1[kk][t] = A::ma(g1[t], xw[t], q1[kk][t]);
                }
            }
        }
    }
    type Lanes<T, const KT: usize> = [[T; JT]; KT];
    let rows: &[(usize, &Lanes<T, KT>, &Lanes<T, KT>)] = if two_rows {
        &[(i0, &p0, &q0), (i0 + 1, &p1, &q1)]
    } else {
        &[(i0, &p0, &q0)]
    };
    for &(i, p, q) in rows {
        for kk in 0..KT {
            let (mut re, mut im) = (T::zero(), T::zero());
            for t in 0..JT / 2 {
                re += p[kk][2 * t] + p[kk][2 * t + 1];
                im += q[kk][2 * t + 1] - q[kk][2 * t];
            }
            let o = 2 * (i * f + k0 + kk);
            db[o] += re;
            db[o + 1] += im;
        }
    }
}

/// Block gradient of a stride level (`2·mp` a multiple of [`JT`]); rows as in
/// [`grad_level`].
#[inline(always)]
fn grad_stride<T: ConvFloat, A: MulAdd>(
    f: usize,
    mp: usize,
    g: &[T],
    x: &[T],
    db: &mut [T],
    rows: (usize, usize),
) {
    let row = 2 * mp;
    let (i_end, k_end) = (rows.0.min(f), rows.1.min(f));
    for i0 in (0..i_end).step_by(2) {
        let two = i0 + 1 < i_end;
        let mut k0 = 0;
        while k0 + 4 <= k_end {
            grad_stride_tile::<T, A, 4>(f, row, g, x, db, i0, k0, two);
            k0 += 4;
        }
        while k0 < k_end {
            grad_stride_tile::<T, A, 1>(f, row, g, x, db, i0, k0, two);
            k0 += 1;
        }
    }
}

/// Block gradient of a row level with block size `F` (`F2 = 2F` reals a row):
/// `dB[:, k] += Σ_s G[s, :]·conj(X[s, k])`, the columns of `dB` accumulated as interleaved
/// vectors over `i` (`G·conj(x) = Re x·G − Im x·(i·G)`), `KT` columns at a time.
#[inline(always)]
fn grad_row<T: ConvFloat, A: MulAdd, const F: usize, const F2: usize, const KT: usize>(
    g: &[T],
    x: &[T],
    db: &mut [T],
) {
    for k0 in (0..F).step_by(KT) {
        let mut acc = [[T::zero(); F2]; KT];
        for (gs, xs) in g.chunks_exact(F2).zip(x.chunks_exact(F2)) {
            let gs: &[T; F2] = gs.try_into().expect("row");
            let mut ig = [T::zero(); F2];
            for m in 0..F {
                ig[2 * m] = -gs[2 * m + 1];
                ig[2 * m + 1] = gs[2 * m];
            }
            for (kk, a) in acc.iter_mut().enumerate() {
                let (xr, xi) = (xs[2 * (k0 + kk)], -xs[2 * (k0 + kk) + 1]);
                for t in 0..F2 {
                    a[t] = A::ma(xr, gs[t], a[t]);
                    a[t] = A::ma(xi, ig[t], a[t]);
                }
            }
        }
        for (kk, a) in acc.iter().enumerate() {
            for i in 0..F {
                let o = 2 * (i * F + k0 + kk);
                db[o] += a[2 * i];
                db[o + 1] += a[2 * i + 1];
            }
        }
    }
}

/// Any level's block gradient, plainly (the fallback).
fn grad_plain<T: ConvFloat>(
    f: usize,
    mp: usize,
    g: &[T],
    x: &[T],
    db: &mut [T],
    rows: (usize, usize),
) {
    let (i_end, k_end) = (rows.0.min(f), rows.1.min(f));
    let chunk = 2 * f * mp;
    for (gs, xs) in g.chunks_exact(chunk).zip(x.chunks_exact(chunk)) {
        for i in 0..i_end {
            for k in 0..k_end {
                let mut acc = Complex::new(T::zero(), T::zero());
                for j in 0..mp {
                    let (pg, px) = (2 * (i * mp + j), 2 * (k * mp + j));
                    acc += Complex::new(gs[pg], gs[pg + 1]) * Complex::new(xs[px], -xs[px + 1]);
                }
                db[2 * (i * f + k)] += acc.re;
                db[2 * (i * f + k) + 1] += acc.im;
            }
        }
    }
}

#[inline(always)]
fn grad_generic<T: ConvFloat, A: MulAdd>(
    f: usize,
    mp: usize,
    g: &[T],
    x: &[T],
    db: &mut [T],
    rows: (usize, usize),
) {
    if mp == 1 && f == 16 && rows.0 >= f && rows.1 >= f {
        return grad_row::<T, A, 16, 32, 8>(g, x, db);
    }
    if (2 * mp).is_multiple_of(JT) {
        return grad_stride::<T, A>(f, mp, g, x, db, rows);
    }
    grad_plain(f, mp, g, x, db, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,fma")]
unsafe fn grad_avx<T: ConvFloat>(
    f: usize,
    mp: usize,
    g: &[T],
    x: &[T],
    db: &mut [T],
    rows: (usize, usize),
) {
    grad_generic::<T, Fused>(f, mp, g, x, db, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx,fma")]
unsafe fn grad_avx512<T: ConvFloat>(
    f: usize,
    mp: usize,
    g: &[T],
    x: &[T],
    db: &mut [T],
    rows: (usize, usize),
) {
    use std::any::TypeId;
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: `T` is `f32`, so the casts are identities.
        let cast =
            |v: &[T]| unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len()) };
        let db32 =
            unsafe { std::slice::from_raw_parts_mut(db.as_mut_ptr().cast::<f32>(), db.len()) };
        let (g32, x32) = (cast(g), cast(x));
        if mp == 1 && f == 16 && rows.0 >= f && rows.1 >= f {
            return unsafe { grad512::row16(g32, x32, db32) };
        }
        if mp > 1 && mp.is_multiple_of(8) {
            return unsafe { grad512::stride(f, mp, g32, x32, db32, rows) };
        }
    }
    grad_generic::<T, Fused>(f, mp, g, x, db, rows)
}

/// `f32` AVX-512 block-gradient kernels, `dB[i,k] += Σ G[·,i,·]·conj(X[·,k,·])`.
///
/// * Stride levels: tiles of two rows `i` × four columns `k` keep `P = G ⊙ X` and
///   `Q = G ⊙ swap(X)` by lanes over 8 complex columns `j`; at the end the pair sums of `P`
///   (real parts) and the odd-minus-even lanes of `Q` (imaginary parts) are folded into one
///   vector and reduced together.
/// * The row level of 16: `dB[:, k] += Re x_k·G + Im x_k·(Im G, −Re G)` over the rows, eight
///   columns `k` (sixteen vectors) at a time, no reduction.
#[cfg(target_arch = "x86_64")]
mod grad512 {
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn swap(x: __m512) -> __m512 {
        _mm512_permute_ps::<0xB1>(x)
    }

    /// `(Σ_pairs P, Σ (Q_odd − Q_even))` of one tile entry.
    #[inline(always)]
    unsafe fn reduce(p: __m512, q: __m512) -> (f32, f32) {
        let a = _mm512_add_ps(p, swap(p));
        let b = _mm512_sub_ps(q, swap(q));
        let c = _mm512_mask_blend_ps(0xAAAA, a, b);
        let lo = _mm512_castps512_ps256(c);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(c)));
        let s = _mm256_add_ps(lo, hi);
        let s = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let mut out = [0f32; 4];
        _mm_storeu_ps(out.as_mut_ptr(), s);
        // Lane 0 holds the real parts (even lanes), lane 1 the imaginary ones (odd lanes).
        (out[0], out[1])
    }

    /// One tile: rows `i0, i0 + 1` (the second only when `two`) × columns `k0 .. k0 + K`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn stride_tile<const K: usize>(
        f: usize,
        row: usize,
        g: &[f32],
        x: &[f32],
        db: &mut [f32],
        i0: usize,
        k0: usize,
        two: bool,
    ) {
        let chunk = f * row;
        let i1 = if two { i0 + 1 } else { i0 };
        let mut p0 = [_mm512_setzero_ps(); K];
        let mut q0 = [_mm512_setzero_ps(); K];
        let mut p1 = [_mm512_setzero_ps(); K];
        let mut q1 = [_mm512_setzero_ps(); K];
        for a in 0..g.len() / chunk {
            let gp = g.as_ptr().add(a * chunk);
            let xp = x.as_ptr().add(a * chunk);
            let (g0p, g1p) = (gp.add(i0 * row), gp.add(i1 * row));
            for jt in (0..row).step_by(16) {
                let g0 = _mm512_loadu_ps(g0p.add(jt));
                let g1 = _mm512_loadu_ps(g1p.add(jt));
                for kk in 0..K {
                    let xk = _mm512_loadu_ps(xp.add((k0 + kk) * row + jt));
                    let xw = swap(xk);
                    p0[kk] = _mm512_fmadd_ps(g0, xk, p0[kk]);
                    q0[kk] = _mm512_fmadd_ps(g0, xw, q0[kk]);
                    p1[kk] = _mm512_fmadd_ps(g1, xk, p1[kk]);
                    q1[kk] = _mm512_fmadd_ps(g1, xw, q1[kk]);
                }
            }
        }
        for kk in 0..K {
            let (re, im) = reduce(p0[kk], q0[kk]);
            let o = 2 * (i0 * f + k0 + kk);
            db[o] += re;
            db[o + 1] += im;
            if two {
                let (re, im) = reduce(p1[kk], q1[kk]);
                let o = 2 * (i1 * f + k0 + kk);
                db[o] += re;
                db[o + 1] += im;
            }
        }
    }

    /// A stride level (`mp` a multiple of 8); `rows` as in `grad_level`.
    #[target_feature(enable = "avx512f,avx,fma")]
    pub(super) unsafe fn stride(
        f: usize,
        mp: usize,
        g: &[f32],
        x: &[f32],
        db: &mut [f32],
        rows: (usize, usize),
    ) {
        let row = 2 * mp;
        let (i_end, k_end) = (rows.0.min(f), rows.1.min(f));
        for i0 in (0..i_end).step_by(2) {
            let two = i0 + 1 < i_end;
            let mut k0 = 0;
            while k0 + 4 <= k_end {
                stride_tile::<4>(f, row, g, x, db, i0, k0, two);
                k0 += 4;
            }
            while k0 < k_end {
                stride_tile::<1>(f, row, g, x, db, i0, k0, two);
                k0 += 1;
            }
        }
    }

    /// The row level of 16 (every row).
    #[target_feature(enable = "avx512f,avx,fma")]
    pub(super) unsafe fn row16(g: &[f32], x: &[f32], db: &mut [f32]) {
        let n = g.len() / 32;
        let sign = _mm512_setr_ps(
            1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0,
        );
        for k0 in [0usize, 8] {
            let mut acc = [[_mm512_setzero_ps(); 2]; 8];
            for s in 0..n {
                let gp = g.as_ptr().add(32 * s);
                let xp = x.as_ptr().add(32 * s + 2 * k0);
                let (g0, g1) = (_mm512_loadu_ps(gp), _mm512_loadu_ps(gp.add(16)));
                let (w0, w1) = (_mm512_mul_ps(swap(g0), sign), _mm512_mul_ps(swap(g1), sign));
                for (kk, a) in acc.iter_mut().enumerate() {
                    let xr = _mm512_set1_ps(*xp.add(2 * kk));
                    let xi = _mm512_set1_ps(*xp.add(2 * kk + 1));
                    a[0] = _mm512_fmadd_ps(xr, g0, a[0]);
                    a[0] = _mm512_fmadd_ps(xi, w0, a[0]);
                    a[1] = _mm512_fmadd_ps(xr, g1, a[1]);
                    a[1] = _mm512_fmadd_ps(xi, w1, a[1]);
                }
            }
            for (kk, a) in acc.iter().enumerate() {
                let mut col = [0f32; 32];
                _mm512_storeu_ps(col.as_mut_ptr(), a[0]);
                _mm512_storeu_ps(col.as_mut_ptr().add(16), a[1]);
                for i in 0..16 {
                    let o = 2 * (i * 16 + k0 + kk);
                    db[o] += col[2 * i];
                    db[o + 1] += col[2 * i + 1];
                }
            }
        }
    }
}

/// The block gradient of one level `y = (I ⊗ B) x` (sub-problems `(f, mp)`, complex
/// interleaved): `dB += Σ_a G_a X_aᴴ`, i.e. `dB[i,k] += Σ_{a,j} G[a,i,j]·conj(X[a,k,j])` for
/// `G = ∂L/∂y` (PyTorch convention), `dB` row-major `f × f` complex interleaved. Rows
/// `i ≥ rows.0` of `G` and `k ≥ rows.1` of `X` are taken as zero (not read), so their entries
/// of `dB` get nothing.
pub(crate) fn grad_level<T: ConvFloat>(
    f: usize,
    mp: usize,
    g: &[T],
    x: &[T],
    db: &mut [T],
    rows: (usize, usize),
) {
    debug_assert_eq!(g.len(), x.len());
    debug_assert!(g.len().is_multiple_of(2 * f * mp));
    debug_assert_eq!(db.len(), 2 * f * f);
    simd_dispatch!(
        avx512: grad_avx512(f, mp, g, x, db, rows),
        avx: grad_avx(f, mp, g, x, db, rows),
        generic: grad_generic::<T, Unfused>(f, mp, g, x, db, rows),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn randv(n: usize, rng: &mut StdRng) -> Vec<f64> {
        (0..n)
            .map(|_| <f64 as crate::Scalar>::randn(rng, 1.0))
            .collect()
    }

    /// `dB[i,k] = Σ_{a,j} G[a,i,j]·conj(X[a,k,j])` by the definition, complex arithmetic.
    fn reference(f: usize, mp: usize, g: &[f64], x: &[f64], rows: (usize, usize)) -> Vec<f64> {
        let c = |v: &[f64], a: usize, r: usize, j: usize| {
            let p = 2 * ((a * f + r) * mp + j);
            num_complex::Complex::new(v[p], v[p + 1])
        };
        let mut db = vec![0.0; 2 * f * f];
        for a in 0..g.len() / (2 * f * mp) {
            for i in 0..rows.0.min(f) {
                for k in 0..rows.1.min(f) {
                    for j in 0..mp {
                        let z = c(g, a, i, j) * c(x, a, k, j).conj();
                        db[2 * (i * f + k)] += z.re;
                        db[2 * (i * f + k) + 1] += z.im;
                    }
                }
            }
        }
        db
    }

    #[test]
    fn block_gradient_kernels_match_the_definition() {
        let mut rng = StdRng::seed_from_u64(7);
        // (f, mp, sub-problems, rows): stride levels (tiles of 4 and 1 columns, one or two
        // rows, pruned either way), the row level of 16 and the plain fallback.
        let cases = [
            (16, 8, 1, (16, 16)),
            (16, 64, 1, (16, 8)),
            (16, 64, 1, (8, 16)),
            (16, 16, 3, (5, 7)),
            (4, 16, 2, (4, 4)),
            (2, 32, 4, (2, 2)),
            (8, 16, 2, (8, 8)),
            (16, 1, 24, (16, 16)),
            (8, 1, 6, (8, 8)),
            (4, 2, 5, (4, 3)),
        ];
        for &(f, mp, subs, rows) in &cases {
            let len = 2 * f * mp * subs;
            let g = randv(len, &mut rng);
            let x = randv(len, &mut rng);
            let start = randv(2 * f * f, &mut rng);
            let mut got = start.clone();
            grad_level(f, mp, &g, &x, &mut got, rows);
            let want = reference(f, mp, &g, &x, rows);
            for (idx, ((&a, &b), &s0)) in got.iter().zip(&want).zip(&start).enumerate() {
                assert!(
                    (a - s0 - b).abs() < 1e-12 * (1.0 + b.abs()),
                    "f={f} mp={mp} rows={rows:?} entry {idx}: {} vs {b}",
                    a - s0
                );
            }
            // The f32 kernels (their own SIMD code where the CPU has it).
            let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let (g32, x32) = (to32(&g), to32(&x));
            let mut got32 = to32(&start);
            grad_level(f, mp, &g32, &x32, &mut got32, rows);
            let want32 = reference(
                f,
                mp,
                &to32(&g).iter().map(|&a| a as f64).collect::<Vec<_>>(),
                &x32.iter().map(|&a| a as f64).collect::<Vec<_>>(),
                rows,
            );
            let num: f64 = got32
                .iter()
                .zip(&want32)
                .zip(&start)
                .map(|((&a, &b), &s0)| (a as f64 - s0 as f32 as f64 - b).powi(2))
                .sum();
            let den: f64 = want32.iter().map(|b| b * b).sum();
            assert!(
                (num / den).sqrt() < 1e-5,
                "f32 f={f} mp={mp} rows={rows:?}: {}",
                (num / den).sqrt()
            );
        }
    }
}
