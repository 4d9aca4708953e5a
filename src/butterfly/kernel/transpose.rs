//! Moving a tile of batch rows in and out of lane rows.
//!
//! `gather` writes column `j` of up to [`LANES`] batch rows into lane row `dst[j]` of the tile;
//! `scatter` writes lane row `src[j]` (plus `bias[j]`) back into column `j` of the rows. Index
//! arrays carry the fixed permutations, so permuting costs nothing beyond the transpose. For
//! `f32` and `Complex<f32>` full blocks of 16 (AVX-512) or 8 (AVX2) columns are transposed in
//! registers; other scalars, and the last columns of a row, go element by element.

use super::{get, isa, set, width, Isa, LANES};
use crate::scalar::Scalar;
use num_complex::Complex;
use std::any::TypeId;

/// Column `j` of `rows` (each at least `dst.len()` long) into lane row `dst[j]`, lane `k` from
/// `rows[k]`; lanes `k ≥ rows.len()` and lane rows not named in `dst` are left as they are.
pub(crate) fn gather<T: Scalar>(rows: &[&[T]], dst: &[usize], w: &mut [T::Real]) {
    debug_assert!(rows.len() <= LANES);
    let done = gather_simd(rows, dst, w);
    for j0 in (done..dst.len()).step_by(64) {
        let j1 = (j0 + 64).min(dst.len());
        for (k, row) in rows.iter().enumerate() {
            for j in j0..j1 {
                set(w, dst[j], k, row[j]);
            }
        }
    }
}

/// Column `j` of `rows` (each at least `src.len()` long) from lane row `src[j]` plus `bias[j]`:
/// `rows[k][j] = lane k of w[src[j]] + bias[j]`.
pub(crate) fn scatter<T: Scalar>(
    w: &[T::Real],
    src: &[usize],
    bias: Option<&[T]>,
    rows: &mut [&mut [T]],
) {
    debug_assert!(rows.len() <= LANES);
    let done = scatter_simd(w, src, bias, rows);
    for j0 in (done..src.len()).step_by(64) {
        let j1 = (j0 + 64).min(src.len());
        for (k, row) in rows.iter_mut().enumerate() {
            for j in j0..j1 {
                let v = get::<T>(w, src[j], k);
                row[j] = match bias {
                    Some(b) => v + b[j],
                    None => v,
                };
            }
        }
    }
}

/// Whether `T` is `f32` (false) or `Complex<f32>` (true); `None` for other scalars.
fn f32_kind<T: Scalar>() -> Option<bool> {
    let t = TypeId::of::<T>();
    if t == TypeId::of::<f32>() {
        Some(false)
    } else if t == TypeId::of::<Complex<f32>>() {
        Some(true)
    } else {
        None
    }
}

/// The reals of an `f32` or `Complex<f32>` slice (checked by `f32_kind`).
fn reals<T: Scalar>(s: &[T]) -> &[f32] {
    let per = std::mem::size_of::<T>() / std::mem::size_of::<f32>();
    assert!(f32_kind::<T>().is_some() && per * std::mem::size_of::<f32>() == std::mem::size_of::<T>());
    // SAFETY: T is f32 or Complex<f32> (repr(C) pair of f32), checked above.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len() * per) }
}

fn reals_mut<T: Scalar>(s: &mut [T]) -> &mut [f32] {
    let per = std::mem::size_of::<T>() / std::mem::size_of::<f32>();
    assert!(f32_kind::<T>().is_some() && per * std::mem::size_of::<f32>() == std::mem::size_of::<T>());
    // SAFETY: as in `reals`.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<f32>(), s.len() * per) }
}

/// The tile of an `f32` or `Complex<f32>` batch (its reals are `f32`).
fn tile_f32<R: 'static>(w: &[R]) -> &[f32] {
    assert_eq!(TypeId::of::<R>(), TypeId::of::<f32>());
    // SAFETY: R is f32, checked above.
    unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<f32>(), w.len()) }
}

fn tile_f32_mut<R: 'static>(w: &mut [R]) -> &mut [f32] {
    assert_eq!(TypeId::of::<R>(), TypeId::of::<f32>());
    // SAFETY: R is f32, checked above.
    unsafe { std::slice::from_raw_parts_mut(w.as_mut_ptr().cast::<f32>(), w.len()) }
}

/// Gather the leading full blocks with SIMD; returns how many columns were done.
fn gather_simd<T: Scalar>(rows: &[&[T]], dst: &[usize], w: &mut [T::Real]) -> usize {
    let Some(complex) = f32_kind::<T>() else {
        return 0;
    };
    let ncols = dst.len();
    let nlane = w.len() / width::<T>();
    assert!(rows.iter().all(|r| r.len() >= ncols) && dst.iter().all(|&d| d < nlane));
    let rows: Vec<&[f32]> = rows.iter().map(|r| reals(r)).collect();
    let w = tile_f32_mut(w);
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is available; rows hold ncols values and dst indexes lane rows of w
        // (asserted above).
        Isa::Avx512 => unsafe { x86::gather_avx512(&rows, dst, w, complex) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 is available; bounds as above.
        Isa::Avx2 => unsafe { x86::gather_avx2(&rows, dst, w, complex) },
        Isa::Baseline => 0,
    }
}

/// Scatter the leading full blocks with SIMD; returns how many columns were done.
fn scatter_simd<T: Scalar>(
    w: &[T::Real],
    src: &[usize],
    bias: Option<&[T]>,
    rows: &mut [&mut [T]],
) -> usize {
    let Some(complex) = f32_kind::<T>() else {
        return 0;
    };
    let ncols = src.len();
    let nlane = w.len() / width::<T>();
    assert!(rows.iter().all(|r| r.len() >= ncols) && src.iter().all(|&d| d < nlane));
    assert!(bias.is_none_or(|b| b.len() >= ncols));
    let mut rows: Vec<&mut [f32]> = rows.iter_mut().map(|r| reals_mut(r)).collect();
    let bias = bias.map(reals);
    let w = tile_f32(w);
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is available; rows and bias hold ncols values and src indexes lane
        // rows of w (asserted above).
        Isa::Avx512 => unsafe { x86::scatter_avx512(w, src, bias, &mut rows, complex) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 is available; bounds as above.
        Isa::Avx2 => unsafe { x86::scatter_avx2(w, src, bias, &mut rows, complex) },
        Isa::Baseline => 0,
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::LANES;
    use std::arch::x86_64::*;

    /// Transpose 16×16: `r[k]` lane `j` becomes `r[j]` lane `k`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn transpose16(r: &mut [__m512; 16]) {
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // u[4g + m], 128-bit lane L: column 4L + m of rows 4g .. 4g + 4.
        let mut u = [_mm512_setzero_ps(); 16];
        for g in 0..4 {
            let b = 4 * g;
            u[b] = _mm512_shuffle_ps::<0x44>(t[b], t[b + 2]);
            u[b + 1] = _mm512_shuffle_ps::<0xEE>(t[b], t[b + 2]);
            u[b + 2] = _mm512_shuffle_ps::<0x44>(t[b + 1], t[b + 3]);
            u[b + 3] = _mm512_shuffle_ps::<0xEE>(t[b + 1], t[b + 3]);
        }
        for m in 0..4 {
            let v0 = _mm512_shuffle_f32x4::<0x88>(u[m], u[4 + m]);
            let v1 = _mm512_shuffle_f32x4::<0xDD>(u[m], u[4 + m]);
            let w0 = _mm512_shuffle_f32x4::<0x88>(u[8 + m], u[12 + m]);
            let w1 = _mm512_shuffle_f32x4::<0xDD>(u[8 + m], u[12 + m]);
            r[m] = _mm512_shuffle_f32x4::<0x88>(v0, w0);
            r[4 + m] = _mm512_shuffle_f32x4::<0x88>(v1, w1);
            r[8 + m] = _mm512_shuffle_f32x4::<0xDD>(v0, w0);
            r[12 + m] = _mm512_shuffle_f32x4::<0xDD>(v1, w1);
        }
    }

    const EVEN: [i32; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30];
    const ODD: [i32; 16] = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31];
    const LO: [i32; 16] = [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23];
    const HI: [i32; 16] = [8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31];

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn idx(v: &[i32; 16]) -> __m512i {
        // SAFETY: reads 16 i32 from a 16-element array.
        unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
    }

    /// # Safety
    /// AVX-512F available; every row holds `dst.len()` values (`2·dst.len()` reals when
    /// `complex`); every `dst[j]` indexes a lane row of `w`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gather_avx512(
        rows: &[&[f32]],
        dst: &[usize],
        w: &mut [f32],
        complex: bool,
    ) -> usize {
        let wd = if complex { 2 * LANES } else { LANES };
        let full = dst.len() / 16 * 16;
        let (even, odd) = (idx(&EVEN), idx(&ODD));
        let wp = w.as_mut_ptr();
        for j0 in (0..full).step_by(16) {
            let mut re = [_mm512_setzero_ps(); 16];
            let mut im = [_mm512_setzero_ps(); 16];
            for (k, row) in rows.iter().enumerate() {
                if complex {
                    // SAFETY: columns j0..j0+16 are reals 2·j0 .. 2·j0 + 32 of the row.
                    let p = unsafe { row.as_ptr().add(2 * j0) };
                    let (a, b) = unsafe { (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16))) };
                    re[k] = _mm512_permutex2var_ps(a, even, b);
                    im[k] = _mm512_permutex2var_ps(a, odd, b);
                } else {
                    // SAFETY: columns j0..j0+16 lie in the row.
                    re[k] = unsafe { _mm512_loadu_ps(row.as_ptr().add(j0)) };
                }
            }
            transpose16(&mut re);
            if complex {
                transpose16(&mut im);
            }
            for c in 0..16 {
                // SAFETY: dst[j0 + c] indexes a lane row of wd reals.
                unsafe {
                    let o = wp.add(dst[j0 + c] * wd);
                    _mm512_storeu_ps(o, re[c]);
                    if complex {
                        _mm512_storeu_ps(o.add(LANES), im[c]);
                    }
                }
            }
        }
        full
    }

    /// # Safety
    /// AVX-512F available; every row (and `bias`) holds `src.len()` values (`2·src.len()`
    /// reals when `complex`); every `src[j]` indexes a lane row of `w`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn scatter_avx512(
        w: &[f32],
        src: &[usize],
        bias: Option<&[f32]>,
        rows: &mut [&mut [f32]],
        complex: bool,
    ) -> usize {
        let wd = if complex { 2 * LANES } else { LANES };
        let full = src.len() / 16 * 16;
        let (lo, hi) = (idx(&LO), idx(&HI));
        let wp = w.as_ptr();
        for j0 in (0..full).step_by(16) {
            let mut re = [_mm512_setzero_ps(); 16];
            let mut im = [_mm512_setzero_ps(); 16];
            for c in 0..16 {
                // SAFETY: src[j0 + c] indexes a lane row of wd reals.
                unsafe {
                    let p = wp.add(src[j0 + c] * wd);
                    re[c] = _mm512_loadu_ps(p);
                    if complex {
                        im[c] = _mm512_loadu_ps(p.add(LANES));
                    }
                }
            }
            transpose16(&mut re);
            if complex {
                transpose16(&mut im);
            }
            for (k, row) in rows.iter_mut().enumerate() {
                if complex {
                    let mut a = _mm512_permutex2var_ps(re[k], lo, im[k]);
                    let mut b = _mm512_permutex2var_ps(re[k], hi, im[k]);
                    // SAFETY: columns j0..j0+16 are reals 2·j0 .. 2·j0 + 32 of the row and bias.
                    unsafe {
                        if let Some(bias) = bias {
                            let q = bias.as_ptr().add(2 * j0);
                            a = _mm512_add_ps(a, _mm512_loadu_ps(q));
                            b = _mm512_add_ps(b, _mm512_loadu_ps(q.add(16)));
                        }
                        let p = row.as_mut_ptr().add(2 * j0);
                        _mm512_storeu_ps(p, a);
                        _mm512_storeu_ps(p.add(16), b);
                    }
                } else {
                    let mut a = re[k];
                    // SAFETY: columns j0..j0+16 lie in the row and the bias.
                    unsafe {
                        if let Some(bias) = bias {
                            a = _mm512_add_ps(a, _mm512_loadu_ps(bias.as_ptr().add(j0)));
                        }
                        _mm512_storeu_ps(row.as_mut_ptr().add(j0), a);
                    }
                }
            }
        }
        full
    }

    /// Transpose 8×8: `r[k]` lane `j` becomes `r[j]` lane `k`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn transpose8(r: &mut [__m256; 8]) {
        let mut t = [_mm256_setzero_ps(); 8];
        for i in 0..4 {
            t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let mut u = [_mm256_setzero_ps(); 8];
        for g in 0..2 {
            let b = 4 * g;
            u[b] = _mm256_shuffle_ps::<0x44>(t[b], t[b + 2]);
            u[b + 1] = _mm256_shuffle_ps::<0xEE>(t[b], t[b + 2]);
            u[b + 2] = _mm256_shuffle_ps::<0x44>(t[b + 1], t[b + 3]);
            u[b + 3] = _mm256_shuffle_ps::<0xEE>(t[b + 1], t[b + 3]);
        }
        for m in 0..4 {
            r[m] = _mm256_permute2f128_ps::<0x20>(u[m], u[4 + m]);
            r[4 + m] = _mm256_permute2f128_ps::<0x31>(u[m], u[4 + m]);
        }
    }

    /// Real and imaginary parts of 8 interleaved complex values `[a | b]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn deinterleave8(a: __m256, b: __m256) -> (__m256, __m256) {
        let re = _mm256_shuffle_ps::<0x88>(a, b);
        let im = _mm256_shuffle_ps::<0xDD>(a, b);
        let fix = |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(v)));
        (fix(re), fix(im))
    }

    /// 8 interleaved complex values from their real and imaginary parts, as `(a, b)`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn interleave8(re: __m256, im: __m256) -> (__m256, __m256) {
        let lo = _mm256_unpacklo_ps(re, im);
        let hi = _mm256_unpackhi_ps(re, im);
        (
            _mm256_permute2f128_ps::<0x20>(lo, hi),
            _mm256_permute2f128_ps::<0x31>(lo, hi),
        )
    }

    /// # Safety
    /// As [`gather_avx512`], with AVX2 available.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn gather_avx2(
        rows: &[&[f32]],
        dst: &[usize],
        w: &mut [f32],
        complex: bool,
    ) -> usize {
        let wd = if complex { 2 * LANES } else { LANES };
        let full = dst.len() / 8 * 8;
        let wp = w.as_mut_ptr();
        for j0 in (0..full).step_by(8) {
            // Lanes 0..8 from rows 0..8, lanes 8..16 from rows 8..16.
            for (half, rows) in rows.chunks(8).enumerate() {
                let mut re = [_mm256_setzero_ps(); 8];
                let mut im = [_mm256_setzero_ps(); 8];
                for (k, row) in rows.iter().enumerate() {
                    if complex {
                        // SAFETY: columns j0..j0+8 are reals 2·j0 .. 2·j0 + 16 of the row.
                        let p = unsafe { row.as_ptr().add(2 * j0) };
                        let (a, b) = unsafe { (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) };
                        (re[k], im[k]) = deinterleave8(a, b);
                    } else {
                        // SAFETY: columns j0..j0+8 lie in the row.
                        re[k] = unsafe { _mm256_loadu_ps(row.as_ptr().add(j0)) };
                    }
                }
                transpose8(&mut re);
                if complex {
                    transpose8(&mut im);
                }
                for c in 0..8 {
                    // SAFETY: dst[j0 + c] indexes a lane row of wd reals.
                    unsafe {
                        let o = wp.add(dst[j0 + c] * wd + 8 * half);
                        _mm256_storeu_ps(o, re[c]);
                        if complex {
                            _mm256_storeu_ps(o.add(LANES), im[c]);
                        }
                    }
                }
            }
        }
        full
    }

    /// # Safety
    /// As [`scatter_avx512`], with AVX2 available.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn scatter_avx2(
        w: &[f32],
        src: &[usize],
        bias: Option<&[f32]>,
        rows: &mut [&mut [f32]],
        complex: bool,
    ) -> usize {
        let wd = if complex { 2 * LANES } else { LANES };
        let full = src.len() / 8 * 8;
        let wp = w.as_ptr();
        for j0 in (0..full).step_by(8) {
            for (half, rows) in rows.chunks_mut(8).enumerate() {
                let mut re = [_mm256_setzero_ps(); 8];
                let mut im = [_mm256_setzero_ps(); 8];
                for c in 0..8 {
                    // SAFETY: src[j0 + c] indexes a lane row of wd reals.
                    unsafe {
                        let p = wp.add(src[j0 + c] * wd + 8 * half);
                        re[c] = _mm256_loadu_ps(p);
                        if complex {
                            im[c] = _mm256_loadu_ps(p.add(LANES));
                        }
                    }
                }
                transpose8(&mut re);
                if complex {
                    transpose8(&mut im);
                }
                for (k, row) in rows.iter_mut().enumerate() {
                    if complex {
                        let (mut a, mut b) = interleave8(re[k], im[k]);
                        // SAFETY: columns j0..j0+8 are reals 2·j0 .. 2·j0 + 16 of the row and
                        // the bias.
                        unsafe {
                            if let Some(bias) = bias {
                                let q = bias.as_ptr().add(2 * j0);
                                a = _mm256_add_ps(a, _mm256_loadu_ps(q));
                                b = _mm256_add_ps(b, _mm256_loadu_ps(q.add(8)));
                            }
                            let p = row.as_mut_ptr().add(2 * j0);
                            _mm256_storeu_ps(p, a);
                            _mm256_storeu_ps(p.add(8), b);
                        }
                    } else {
                        let mut a = re[k];
                        // SAFETY: columns j0..j0+8 lie in the row and the bias.
                        unsafe {
                            if let Some(bias) = bias {
                                a = _mm256_add_ps(a, _mm256_loadu_ps(bias.as_ptr().add(j0)));
                            }
                            _mm256_storeu_ps(row.as_mut_ptr().add(j0), a);
                        }
                    }
                }
            }
        }
        full
    }
}
