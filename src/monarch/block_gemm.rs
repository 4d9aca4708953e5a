//! Batched block GEMMs on column blocks of row-major batches, the engine of block-diagonal and
//! Monarch products.

use crate::dense::gemm_conj;
use crate::scalar::Scalar;
use ndarray::{s, ArrayView2, ArrayViewMut2};

/// Which columns of a batch form block `b` of `nblocks` blocks of width `w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cols {
    /// Columns `b·w .. (b+1)·w`.
    Contiguous,
    /// Columns `b, b + nblocks, b + 2·nblocks, …` (`w` of them).
    Interleaved,
}

pub(crate) fn block<'a, T>(
    a: &'a ArrayView2<'_, T>,
    b: usize,
    nblocks: usize,
    w: usize,
    cols: Cols,
) -> ArrayView2<'a, T> {
    match cols {
        Cols::Contiguous => a.slice(s![.., b * w..(b + 1) * w]),
        Cols::Interleaved => a.slice(s![.., b..;nblocks]),
    }
}

pub(crate) fn block_mut<'a, T>(
    a: &'a mut ArrayViewMut2<'_, T>,
    b: usize,
    nblocks: usize,
    w: usize,
    cols: Cols,
) -> ArrayViewMut2<'a, T> {
    match cols {
        Cols::Contiguous => a.slice_mut(s![.., b * w..(b + 1) * w]),
        Cols::Interleaved => a.slice_mut(s![.., b..;nblocks]),
    }
}

/// The `(out, in)` weight of block `b` in a flat `(nblocks, out, in)` buffer.
pub(crate) fn weight<T>(w: &[T], b: usize, out: usize, inp: usize) -> ArrayView2<'_, T> {
    ArrayView2::from_shape((out, inp), &w[b * out * inp..(b + 1) * out * inp])
        .expect("block layout")
}

fn weight_mut<T>(w: &mut [T], b: usize, out: usize, inp: usize) -> ArrayViewMut2<'_, T> {
    ArrayViewMut2::from_shape((out, inp), &mut w[b * out * inp..(b + 1) * out * inp])
        .expect("block layout")
}

/// The geometry of one block-diagonal factor: `nblocks` blocks of shape `(out, inp)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Factor {
    pub nblocks: usize,
    pub out: usize,
    pub inp: usize,
}

/// `y_b ← x_b · op(W_b)ᵀ` for every block (`op` conjugates when `conj`).
pub(crate) fn forward<T: Scalar>(
    f: Factor,
    w: &[T],
    x: ArrayView2<T>,
    xcols: Cols,
    mut y: ArrayViewMut2<T>,
    ycols: Cols,
) {
    for b in 0..f.nblocks {
        let xb = block(&x, b, f.nblocks, f.inp, xcols);
        let yb = block_mut(&mut y, b, f.nblocks, f.out, ycols);
        gemm_conj(xb, false, weight(w, b, f.out, f.inp).t(), false, yb, false);
    }
}

/// `x_b ← y_b · op(W_b)` for every block: the transpose (`conj = false`) or adjoint map.
pub(crate) fn transpose<T: Scalar>(
    f: Factor,
    w: &[T],
    y: ArrayView2<T>,
    ycols: Cols,
    mut x: ArrayViewMut2<T>,
    xcols: Cols,
    conj: bool,
) {
    for b in 0..f.nblocks {
        let yb = block(&y, b, f.nblocks, f.out, ycols);
        let xb = block_mut(&mut x, b, f.nblocks, f.inp, xcols);
        gemm_conj(yb, false, weight(w, b, f.out, f.inp), conj, xb, false);
    }
}

/// `dW_b += dy_bᵀ · x̄_b` for every block.
pub(crate) fn weight_grad<T: Scalar>(
    f: Factor,
    dw: &mut [T],
    x: ArrayView2<T>,
    xcols: Cols,
    dy: ArrayView2<T>,
    ycols: Cols,
) {
    for b in 0..f.nblocks {
        let xb = block(&x, b, f.nblocks, f.inp, xcols);
        let dyb = block(&dy, b, f.nblocks, f.out, ycols);
        let g = weight_mut(dw, b, f.out, f.inp);
        gemm_conj(dyb.t(), false, xb, T::IS_COMPLEX, g, true);
    }
}
