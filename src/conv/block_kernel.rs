//! SIMD kernels for one level of the block transform: `y = (I ⊗ B) x` on complex data stored
//! interleaved (`re, im` pairs of `T`), optionally followed by an elementwise twiddle.
//!
//! * Stride levels (`x` viewed as `(a, k, j)`, the block acting on `k`, `j` contiguous):
//!   `y[a,i,j] = Σ_k B[i,k] x[a,k,j]` is computed as `A = Σ_k Re B[i,k]·x_k`,
//!   `C = Σ_k Im B[i,k]·x_k` (real-scalar × interleaved-vector FMAs) and `y = A + i·C`, over
//!   tiles of 8 complex columns that stay in registers for a pair of output rows.
//! * Row levels (the block acts on contiguous rows of `f`): `y_row = Σ_k Re x_k·Bᵀ[k] +
//!   Im x_k·(i·Bᵀ[k])`, two rows at a time.
//!
//! The arithmetic is written as whole-array loops over fixed-size arrays that the compiler
//! turns into vector instructions inside the `#[target_feature]` entry points.

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
    let rows_even = (x.len() / (2 * f)).is_multiple_of(2);
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
unsafe fn level_avx512<T: ConvFloat>(
    blk: &PreparedBlock<T>,
    mp: usize,
    x: &[T],
    y: &mut [T],
    tw: Option<PostTwiddle<'_, T>>,
    rows: (usize, usize),
) {
    level_generic::<T, Fused>(blk, mp, x, y, tw, rows)
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
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx") && std::is_x86_feature_detected!("fma") {
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has the features the function is compiled for.
                unsafe { level_avx512(blk, mp, x, y, tw, rows) };
            } else {
                // SAFETY: as above.
                unsafe { level_avx(blk, mp, x, y, tw, rows) };
            }
            return;
        }
    }
    level_generic::<T, Unfused>(blk, mp, x, y, tw, rows)
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
