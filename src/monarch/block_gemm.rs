//! Batched block GEMMs on column blocks of row-major batches, the engine of block-diagonal and
//! Monarch products.

use crate::dense::gemm_conj;
use crate::scalar::Scalar;
use ndarray::{s, ArrayView2, ArrayViewMut2};

fn block<'a, T>(a: &'a ArrayView2<'_, T>, b: usize, w: usize) -> ArrayView2<'a, T> {
    a.slice(s![.., b * w..(b + 1) * w])
}

fn block_mut<'a, T>(a: &'a mut ArrayViewMut2<'_, T>, b: usize, w: usize) -> ArrayViewMut2<'a, T> {
    a.slice_mut(s![.., b * w..(b + 1) * w])
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
pub(crate) fn forward<T: Scalar>(f: Factor, w: &[T], x: ArrayView2<T>, mut y: ArrayViewMut2<T>) {
    for b in 0..f.nblocks {
        let xb = block(&x, b, f.inp);
        let yb = block_mut(&mut y, b, f.out);
        gemm_conj(xb, false, weight(w, b, f.out, f.inp).t(), false, yb, false);
    }
}

/// `x_b ← y_b · op(W_b)` for every block: the transpose (`conj = false`) or adjoint map.
pub(crate) fn transpose<T: Scalar>(
    f: Factor,
    w: &[T],
    y: ArrayView2<T>,
    mut x: ArrayViewMut2<T>,
    conj: bool,
) {
    for b in 0..f.nblocks {
        let yb = block(&y, b, f.out);
        let xb = block_mut(&mut x, b, f.inp);
        gemm_conj(yb, false, weight(w, b, f.out, f.inp), conj, xb, false);
    }
}

/// `dW_b += dy_bᵀ · x̄_b` for every block.
pub(crate) fn weight_grad<T: Scalar>(f: Factor, dw: &mut [T], x: ArrayView2<T>, dy: ArrayView2<T>) {
    for b in 0..f.nblocks {
        let xb = block(&x, b, f.inp);
        let dyb = block(&dy, b, f.out);
        let g = weight_mut(dw, b, f.out, f.inp);
        gemm_conj(dyb.t(), false, xb, T::IS_COMPLEX, g, true);
    }
}
