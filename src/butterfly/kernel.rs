//! The butterfly multiply engine.
//!
//! A batch is processed in tiles of [`LANES`] rows, transposed into a work buffer of `n` rows of
//! `LANES` lanes (`w[i][k]` = coordinate `i` of batch row `k`). A butterfly level with stride `s`
//! then touches pairs of contiguous lane rows `(a, a + s)` with one 2×2 block each, so the inner
//! loop is a broadcast multiply-add over `LANES` contiguous values whatever the stride: the
//! compiler vectorises it, and the twiddles are read once per tile instead of once per row.
//! The level loops are compiled twice, for the baseline target and for AVX2+FMA, and the faster
//! one is picked at run time.

use crate::scalar::Scalar;

/// Rows of a batch processed together (the lane width of the work buffer).
pub(crate) const LANES: usize = 16;

/// One lane row of the work buffer.
pub(crate) type Lane<T> = [T; LANES];

/// Which matrix a level applies: its 2×2 blocks `t`, `tᵀ` or `t*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Forward,
    Transpose,
    Adjoint,
}

/// One butterfly level: the stride and the `n/2 × 4` block entries (`[t00, t01, t10, t11]` per
/// pair, pairs ordered by block then offset within the stride).
#[derive(Clone, Copy)]
pub(crate) struct Level<'a, T> {
    pub stride: usize,
    pub tw: &'a [T],
}

#[inline(always)]
fn level_with<T: Scalar, F: Fn(&[T]) -> [T; 4]>(w: &mut [Lane<T>], s: usize, tw: &[T], f: F) {
    let n = w.len();
    for (blk, chunk) in w.chunks_exact_mut(2 * s).enumerate() {
        let (lo, hi) = chunk.split_at_mut(s);
        let twb = &tw[blk * s * 4..(blk + 1) * s * 4];
        for ((a, b), t) in lo.iter_mut().zip(hi.iter_mut()).zip(twb.chunks_exact(4)) {
            let c = f(t);
            for k in 0..LANES {
                let xa = a[k];
                let xb = b[k];
                a[k] = c[0] * xa + c[1] * xb;
                b[k] = c[2] * xa + c[3] * xb;
            }
        }
    }
    debug_assert_eq!(n % (2 * s), 0);
}

#[inline(always)]
fn level<T: Scalar>(w: &mut [Lane<T>], lv: Level<'_, T>, mode: Mode) {
    match mode {
        Mode::Forward => level_with(w, lv.stride, lv.tw, |t| [t[0], t[1], t[2], t[3]]),
        Mode::Transpose => level_with(w, lv.stride, lv.tw, |t| [t[0], t[2], t[1], t[3]]),
        Mode::Adjoint => level_with(w, lv.stride, lv.tw, |t| {
            [t[0].conj(), t[2].conj(), t[1].conj(), t[3].conj()]
        }),
    }
}

#[inline(always)]
fn run_levels_generic<T: Scalar>(w: &mut [Lane<T>], levels: &[Level<'_, T>], mode: Mode) {
    for lv in levels {
        level(w, *lv, mode);
    }
}

/// Backward through one level: `g` holds `∂L/∂ȳ` on entry and `∂L/∂x̄` on exit, `x` is the
/// level's input; the block gradients `g_y · x̄ᵀ` are added into `dtw`.
#[inline(always)]
fn level_backward<T: Scalar>(g: &mut [Lane<T>], x: &[Lane<T>], s: usize, tw: &[T], dtw: &mut [T]) {
    for (blk, (gc, xc)) in g
        .chunks_exact_mut(2 * s)
        .zip(x.chunks_exact(2 * s))
        .enumerate()
    {
        let (glo, ghi) = gc.split_at_mut(s);
        let (xlo, xhi) = xc.split_at(s);
        let range = blk * s * 4..(blk + 1) * s * 4;
        let twb = &tw[range.clone()];
        let dtwb = &mut dtw[range];
        for j in 0..s {
            let t = &twb[4 * j..4 * j + 4];
            let (c0, c1, c2, c3) = (t[0].conj(), t[1].conj(), t[2].conj(), t[3].conj());
            let ga = &mut glo[j];
            let gb = &mut ghi[j];
            let xa = &xlo[j];
            let xb = &xhi[j];
            let mut acc = [[T::zero(); LANES]; 4];
            for k in 0..LANES {
                let (ya, yb) = (ga[k], gb[k]);
                let (ca, cb) = (xa[k].conj(), xb[k].conj());
                acc[0][k] += ya * ca;
                acc[1][k] += ya * cb;
                acc[2][k] += yb * ca;
                acc[3][k] += yb * cb;
                ga[k] = c0 * ya + c2 * yb;
                gb[k] = c1 * ya + c3 * yb;
            }
            for (q, row) in acc.iter().enumerate() {
                dtwb[4 * j + q] += row.iter().copied().sum::<T>();
            }
        }
    }
}

/// Forward through `levels` while saving every level's input into `acts` (`levels.len()`
/// slices of `n` lane rows), then backward from `g`; level `l`'s block gradients are added
/// into `dtw[l·2n .. (l+1)·2n]`.
#[inline(always)]
fn forward_backward_generic<T: Scalar>(
    w: &mut [Lane<T>],
    acts: &mut [Lane<T>],
    g: &mut [Lane<T>],
    levels: &[Level<'_, T>],
    dtw: &mut [T],
) {
    let n = w.len();
    let level_len = n / 2 * 4;
    for (l, lv) in levels.iter().enumerate() {
        acts[l * n..(l + 1) * n].copy_from_slice(w);
        level(w, *lv, Mode::Forward);
    }
    for (l, lv) in levels.iter().enumerate().rev() {
        let d = &mut dtw[l * level_len..(l + 1) * level_len];
        level_backward(g, &acts[l * n..(l + 1) * n], lv.stride, lv.tw, d);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_levels_avx2<T: Scalar>(w: &mut [Lane<T>], levels: &[Level<'_, T>], mode: Mode) {
    run_levels_generic(w, levels, mode)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_backward_avx2<T: Scalar>(
    w: &mut [Lane<T>],
    acts: &mut [Lane<T>],
    g: &mut [Lane<T>],
    levels: &[Level<'_, T>],
    dtw: &mut [T],
) {
    forward_backward_generic(w, acts, g, levels, dtw)
}

#[inline]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Apply `levels` in order (each with its `mode` blocks) to the work buffer.
pub(crate) fn run_levels<T: Scalar>(w: &mut [Lane<T>], levels: &[Level<'_, T>], mode: Mode) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        unsafe { run_levels_avx2(w, levels, mode) };
        return;
    }
    run_levels_generic(w, levels, mode)
}

/// Forward through `levels` from `w`, then backward from `g` (left holding `∂L/∂x̄`).
pub(crate) fn forward_backward<T: Scalar>(
    w: &mut [Lane<T>],
    acts: &mut [Lane<T>],
    g: &mut [Lane<T>],
    levels: &[Level<'_, T>],
    dtw: &mut [T],
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        unsafe { forward_backward_avx2(w, acts, g, levels, dtw) };
        return;
    }
    forward_backward_generic(w, acts, g, levels, dtw)
}
