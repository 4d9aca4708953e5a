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
    assert!(
        f32_kind::<T>().is_some() && per * std::mem::size_of::<f32>() == std::mem::size_of::<T>()
    );
    // SAFETY: T is f32 or Complex<f32> (repr(C) pair of f32), checked above.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len() * per) }
}

fn reals_mut<T: Scalar>(s: &mut [T]) -> &mut [f32] {
    let per = std::mem::size_of::<T>() / std::mem::size_of::<f32>();
    assert!(
        f32_kind::<T>().is_some() && per * std::mem::size_of::<f32>() == std::mem::size_of::<T>()
    );
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
    //! A block of `v` batch rows × `v` reals (`v` = 16 with AVX-512, 8 with AVX2) is
    //! transposed in registers; [`LANES`] rows take `LANES / v` such blocks. For complex scalars the `v` reals of a row are `v/2`
    //! interleaved values, so the transposed registers are alternately the real and the
    //! imaginary parts of a lane row: no separate de-interleaving is needed.

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

    /// Where transposed register `i` of a block starting at column `j0` goes in the tile, as
    /// (column, offset within the lane row): register `i` is column `j0 + i` for real
    /// scalars, the real (even `i`) or imaginary (odd `i`) part of column `j0 + i/2` for
    /// complex ones.
    #[inline(always)]
    fn place(i: usize, j0: usize, complex: bool) -> (usize, usize) {
        if complex {
            (j0 + i / 2, (i % 2) * LANES)
        } else {
            (j0 + i, 0)
        }
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
        let (wd, per) = if complex { (2 * LANES, 2) } else { (LANES, 1) };
        let cols = 16 / per;
        let full = dst.len() / cols * cols;
        let wp = w.as_mut_ptr();
        for j0 in (0..full).step_by(cols) {
            // Lanes 16h .. 16h + 16 from rows 16h .. 16h + 16.
            for (h, rows) in rows.chunks(16).enumerate() {
                let mut r = [_mm512_setzero_ps(); 16];
                for (k, row) in rows.iter().enumerate() {
                    // SAFETY: the block's reals per·j0 .. per·j0 + 16 lie in the row.
                    r[k] = unsafe { _mm512_loadu_ps(row.as_ptr().add(per * j0)) };
                }
                transpose16(&mut r);
                for (i, v) in r.iter().enumerate() {
                    let (j, off) = place(i, j0, complex);
                    // SAFETY: dst[j] indexes a lane row of wd reals; off + 16h + 16 ≤ wd.
                    unsafe { _mm512_storeu_ps(wp.add(dst[j] * wd + off + 16 * h), *v) };
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
        let (wd, per) = if complex { (2 * LANES, 2) } else { (LANES, 1) };
        let cols = 16 / per;
        let full = src.len() / cols * cols;
        let wp = w.as_ptr();
        let mut stage = Stage::new();
        for c0 in (0..full).step_by(STAGE_REALS / per) {
            let c1 = (c0 + STAGE_REALS / per).min(full);
            for j0 in (c0..c1).step_by(cols) {
                // SAFETY: the block's reals per·j0 .. per·j0 + 16 lie in the bias.
                let b = bias.map(|b| unsafe { _mm512_loadu_ps(b.as_ptr().add(per * j0)) });
                for h in 0..rows.len().div_ceil(16) {
                    let mut r = [_mm512_setzero_ps(); 16];
                    for (i, v) in r.iter_mut().enumerate() {
                        let (j, off) = place(i, j0, complex);
                        // SAFETY: src[j] indexes a lane row of wd reals; off + 16h + 16 ≤ wd.
                        *v = unsafe { _mm512_loadu_ps(wp.add(src[j] * wd + off + 16 * h)) };
                    }
                    transpose16(&mut r);
                    let ks = 16 * h..rows.len().min(16 * h + 16);
                    for (&v, k) in r.iter().zip(ks) {
                        let v = b.map_or(v, |b| _mm512_add_ps(v, b));
                        // SAFETY: the stage row has room for 16 reals at the block's offset.
                        unsafe { _mm512_storeu_ps(stage.row(k, per * (j0 - c0)), v) };
                    }
                }
            }
            stage.flush(rows, per * c0, per * (c1 - c0));
        }
        full
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
        let (wd, per) = if complex { (2 * LANES, 2) } else { (LANES, 1) };
        let cols = 8 / per;
        let full = dst.len() / cols * cols;
        let wp = w.as_mut_ptr();
        for j0 in (0..full).step_by(cols) {
            // Lanes 8h .. 8h + 8 from rows 8h .. 8h + 8.
            for (h, rows) in rows.chunks(8).enumerate() {
                let mut r = [_mm256_setzero_ps(); 8];
                for (k, row) in rows.iter().enumerate() {
                    // SAFETY: the block's reals per·j0 .. per·j0 + 8 lie in the row.
                    r[k] = unsafe { _mm256_loadu_ps(row.as_ptr().add(per * j0)) };
                }
                transpose8(&mut r);
                for (i, v) in r.iter().enumerate() {
                    let (j, off) = place(i, j0, complex);
                    // SAFETY: dst[j] indexes a lane row of wd reals; off + 8h + 8 ≤ wd.
                    unsafe { _mm256_storeu_ps(wp.add(dst[j] * wd + off + 8 * h), *v) };
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
        let (wd, per) = if complex { (2 * LANES, 2) } else { (LANES, 1) };
        let cols = 8 / per;
        let full = src.len() / cols * cols;
        let wp = w.as_ptr();
        let mut stage = Stage::new();
        for c0 in (0..full).step_by(STAGE_REALS / per) {
            let c1 = (c0 + STAGE_REALS / per).min(full);
            for j0 in (c0..c1).step_by(cols) {
                // SAFETY: the block's reals per·j0 .. per·j0 + 8 lie in the bias.
                let b = bias.map(|b| unsafe { _mm256_loadu_ps(b.as_ptr().add(per * j0)) });
                for half in 0..rows.len().div_ceil(8) {
                    let mut r = [_mm256_setzero_ps(); 8];
                    for (i, v) in r.iter_mut().enumerate() {
                        let (j, off) = place(i, j0, complex);
                        // SAFETY: src[j] indexes a lane row of wd reals; off + 8·half + 8 ≤ wd.
                        *v = unsafe { _mm256_loadu_ps(wp.add(src[j] * wd + off + 8 * half)) };
                    }
                    transpose8(&mut r);
                    let ks = 8 * half..rows.len().min(8 * half + 8);
                    for (v, k) in r.iter().zip(ks) {
                        let v = b.map_or(*v, |b| _mm256_add_ps(*v, b));
                        // SAFETY: the stage row has room for 8 reals at the block's offset.
                        unsafe { _mm256_storeu_ps(stage.row(k, per * (j0 - c0)), v) };
                    }
                }
            }
            stage.flush(rows, per * c0, per * (c1 - c0));
        }
        full
    }

    /// Reals of one batch row staged per chunk.
    const STAGE_REALS: usize = 256;
    /// Distance between staged rows: padded so that the rows do not share L1 sets.
    const STAGE_STRIDE: usize = STAGE_REALS + 16;

    /// Transposed blocks are written to this small row-major buffer and then copied out row by
    /// row: writing the rows themselves block by block touches `LANES` rows at once whose
    /// distance is often a multiple of 4 KiB, so that every store of a block falls in the same
    /// L1 set, which is several times slower. (Staging the gather the same way measured no
    /// faster.)
    struct Stage {
        buf: [f32; LANES * STAGE_STRIDE],
    }

    impl Stage {
        fn new() -> Self {
            Self {
                buf: [0.0; LANES * STAGE_STRIDE],
            }
        }

        /// Where real `off` (< `STAGE_REALS`, room for one block after it) of staged row `k` is.
        #[inline(always)]
        fn row(&mut self, k: usize, off: usize) -> *mut f32 {
            self.buf[k * STAGE_STRIDE + off..(k + 1) * STAGE_STRIDE].as_mut_ptr()
        }

        /// Copy reals `0..len` of every staged row to reals `at..at + len` of its batch row.
        #[inline(always)]
        fn flush(&self, rows: &mut [&mut [f32]], at: usize, len: usize) {
            for (k, row) in rows.iter_mut().enumerate() {
                let s = k * STAGE_STRIDE;
                row[at..at + len].copy_from_slice(&self.buf[s..s + len]);
            }
        }
    }
}
