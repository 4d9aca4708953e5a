//! [`Monarch`]: the product of two block-diagonal factors with interleaving permutations.

use super::block_diagonal::{bias_grad, uniform};
use super::block_gemm;
use super::shape::MonarchShape;
use crate::dense::gemm_conj_par;
use crate::error::{check_apply_shapes_ok, check_cols, check_len, check_shape, Result};
use crate::linear_map::{Differentiable, LinearMap};
use crate::scalar::Scalar;
use faer::Par;
use ndarray::{
    s, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, CowArray, Ix2, Zip,
};
use rand::Rng;
use rayon::prelude::*;

/// A Monarch matrix `M = P_out · BD(w2) · P_mid · BD(w1)` (Dao et al., *Monarch: Expressive
/// Structured Matrices for Efficient and Accurate Training*, ICML 2022), with the geometry of
/// [`MonarchShape`]; the square case is `M = P L Pᵀ R`.
///
/// Applying it costs two batched GEMMs, `k·q·p + l·s·r` multiply-adds per row instead of
/// `in·out`. Parameters: `w1` `(k, q, p)`, then `w2` `(l, s, r)`, row-major, then the bias.
#[derive(Debug, Clone, PartialEq)]
pub struct Monarch<T: Scalar> {
    shape: MonarchShape,
    has_bias: bool,
    params: Vec<T>,
}

impl<T: Scalar> Monarch<T> {
    /// From explicit factors `w1` `(k, q, p)` and `w2` `(l, s, r)` flattened row-major.
    pub fn from_factors(
        shape: MonarchShape,
        w1: Vec<T>,
        w2: Vec<T>,
        bias: Option<Vec<T>>,
    ) -> Result<Self> {
        shape.validate()?;
        let (n1, n2) = shape.weight_lens();
        check_len("w1", w1.len(), n1)?;
        check_len("w2", w2.len(), n2)?;
        let mut params = w1;
        params.extend(w2);
        let has_bias = bias.is_some();
        if let Some(b) = bias {
            check_len("bias", b.len(), shape.out_features)?;
            params.extend(b);
        }
        Ok(Self {
            shape,
            has_bias,
            params,
        })
    }

    /// Random factors, each uniform in `±1/√fan_in` of its blocks (`p` for `w1`, `r` for
    /// `w2`), and a zero bias if asked.
    pub fn random<R: Rng + ?Sized>(shape: MonarchShape, bias: bool, rng: &mut R) -> Result<Self> {
        shape.validate()?;
        let (n1, n2) = shape.weight_lens();
        let b1 = 1.0 / (shape.p as f64).sqrt();
        let b2 = 1.0 / (shape.r as f64).sqrt();
        let w1 = (0..n1).map(|_| uniform::<T, R>(rng, b1)).collect();
        let w2 = (0..n2).map(|_| uniform::<T, R>(rng, b2)).collect();
        Self::from_factors(
            shape,
            w1,
            w2,
            bias.then(|| vec![T::zero(); shape.out_features]),
        )
    }

    /// The geometry.
    pub fn shape(&self) -> MonarchShape {
        self.shape
    }
    /// The first factor's blocks, flat `(k, q, p)`.
    pub fn w1(&self) -> &[T] {
        &self.params[..self.shape.weight_lens().0]
    }
    /// The second factor's blocks, flat `(l, s, r)`.
    pub fn w2(&self) -> &[T] {
        let (n1, n2) = self.shape.weight_lens();
        &self.params[n1..n1 + n2]
    }
    /// The bias, if any.
    pub fn bias(&self) -> Option<&[T]> {
        let (n1, n2) = self.shape.weight_lens();
        self.has_bias.then(|| &self.params[n1 + n2..])
    }

    /// For each intermediate index `c = a·q + qq` of the first factor's output, its position
    /// `(c mod l)·r + c / l` in the layout where every block of the second factor reads its `r`
    /// inputs contiguously.
    fn mid_positions(&self) -> Vec<usize> {
        let sh = self.shape;
        (0..sh.inner())
            .map(|c| (c % sh.l) * sh.r + c / sh.l)
            .collect()
    }

    /// The intermediate `t` of a row chunk, in the second factor's block-contiguous order.
    fn inner_chunk(&self, xp: ArrayView2<T>, mid: &[usize], par: Par) -> Array2<T> {
        let sh = self.shape;
        let mut t = Array2::zeros((xp.nrows(), sh.inner()));
        for a in 0..sh.k {
            let xa = xp.slice(s![.., a * sh.p..(a + 1) * sh.p]);
            let w1 = block_gemm::weight(self.w1(), a, sh.q, sh.p);
            let dst = t.slice_mut(s![.., a * sh.q..(a + 1) * sh.q]);
            gemm_conj_par(xa, false, w1.t(), false, dst, false, par);
        }
        permute_cols(t.view(), mid, false)
    }

    fn forward_chunk(&self, x: ArrayView2<T>, mut y: ArrayViewMut2<T>, mid: &[usize], par: Par) {
        let sh = self.shape;
        let xp = pad_cols(x, sh.padded_in());
        let tp = self.inner_chunk(xp.view(), mid, par);
        let mut yp = Array2::zeros((x.nrows(), sh.padded_out()));
        for j in 0..sh.l {
            let tj = tp.slice(s![.., j * sh.r..(j + 1) * sh.r]);
            let w2 = block_gemm::weight(self.w2(), j, sh.s, sh.r);
            let dst = yp.slice_mut(s![.., j * sh.s..(j + 1) * sh.s]);
            gemm_conj_par(tj, false, w2.t(), false, dst, false, par);
        }
        let bias = self.bias();
        for (mut yr, ypr) in y.rows_mut().into_iter().zip(yp.rows()) {
            let ypr = ypr.to_slice().expect("fresh array");
            match yr.as_slice_mut() {
                Some(yr) => unshuffle_row(ypr, yr, sh.l, sh.s),
                None => {
                    for (o, v) in yr.iter_mut().enumerate() {
                        *v = ypr[(o % sh.l) * sh.s + o / sh.l];
                    }
                }
            }
            if let Some(b) = bias {
                yr.iter_mut().zip(b).for_each(|(v, &bb)| *v += bb);
            }
        }
    }

    /// Output rows in the second factor's block-contiguous order, zero-padded to `l·s`.
    fn gather_output(&self, y: ArrayView2<T>) -> Array2<T> {
        let sh = self.shape;
        let mut yp = Array2::zeros((y.nrows(), sh.padded_out()));
        for (mut ypr, yr) in yp.rows_mut().into_iter().zip(y.rows()) {
            let ypr = ypr.as_slice_mut().expect("fresh array");
            match yr.to_slice() {
                Some(yr) => shuffle_row(yr, ypr, sh.l, sh.s),
                None => {
                    for (o, &v) in yr.iter().enumerate() {
                        ypr[(o % sh.l) * sh.s + o / sh.l] = v;
                    }
                }
            }
        }
        yp
    }

    fn transpose_chunk(
        &self,
        y: ArrayView2<T>,
        mut x: ArrayViewMut2<T>,
        conj: bool,
        mid: &[usize],
        par: Par,
    ) {
        let sh = self.shape;
        let yp = self.gather_output(y);
        let mut tp = Array2::zeros((y.nrows(), sh.inner()));
        for j in 0..sh.l {
            let yj = yp.slice(s![.., j * sh.s..(j + 1) * sh.s]);
            let w2 = block_gemm::weight(self.w2(), j, sh.s, sh.r);
            let dst = tp.slice_mut(s![.., j * sh.r..(j + 1) * sh.r]);
            gemm_conj_par(yj, false, w2, conj, dst, false, par);
        }
        let t = permute_cols(tp.view(), mid, true);
        let mut xp = Array2::zeros((y.nrows(), sh.padded_in()));
        for a in 0..sh.k {
            let ta = t.slice(s![.., a * sh.q..(a + 1) * sh.q]);
            let w1 = block_gemm::weight(self.w1(), a, sh.q, sh.p);
            let dst = xp.slice_mut(s![.., a * sh.p..(a + 1) * sh.p]);
            gemm_conj_par(ta, false, w1, conj, dst, false, par);
        }
        x.assign(&xp.slice(s![.., ..sh.in_features]));
    }

    fn transpose_map(&self, y: ArrayView2<T>, conj: bool) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.shape.out_features)?;
        let mut x = Array2::zeros((y.nrows(), self.shape.in_features));
        let mid = self.mid_positions();
        for_chunks(y, x.view_mut(), |yc, xc, par| {
            self.transpose_chunk(yc, xc, conj, &mid, par)
        });
        Ok(x)
    }
}

/// Column block `j` of `a`: `width` contiguous columns from `j·width` when `stride` is 1, else
/// the columns `j, j + stride, j + 2·stride, …`.
fn col_block<T>(a: ArrayView2<'_, T>, j: usize, width: usize, stride: usize) -> ArrayView2<'_, T> {
    if stride == 1 {
        a.slice_move(s![.., j * width..(j + 1) * width])
    } else {
        a.slice_move(s![.., j..;stride])
    }
}

/// `y[i·l + j] = yp[j·s + i]` for the outputs `o = i·l + j < y.len()`: the second factor's
/// block-contiguous row back in output order.
#[inline]
fn unshuffle_row<T: Copy>(yp: &[T], y: &mut [T], l: usize, s: usize) {
    for (i, out) in y.chunks_mut(l).enumerate() {
        for (j, v) in out.iter_mut().enumerate() {
            *v = yp[j * s + i];
        }
    }
}

/// The inverse of [`unshuffle_row`]: `yp[j·s + i] = y[i·l + j]`.
#[inline]
fn shuffle_row<T: Copy>(y: &[T], yp: &mut [T], l: usize, s: usize) {
    for (i, inp) in y.chunks(l).enumerate() {
        for (j, &v) in inp.iter().enumerate() {
            yp[j * s + i] = v;
        }
    }
}

/// `dst[:, pos[c]] = src[:, c]` (or the inverse, `dst[:, c] = src[:, pos[c]]`), row by row.
fn permute_cols<T: Scalar>(src: ArrayView2<T>, pos: &[usize], inverse: bool) -> Array2<T> {
    let mut dst = Array2::zeros(src.dim());
    let permute_row = |mut d: ArrayViewMut1<T>, r: ArrayView1<T>| {
        let d = d.as_slice_mut().expect("fresh array");
        match inverse {
            false => pos.iter().zip(r.iter()).for_each(|(&p, &v)| d[p] = v),
            true => d.iter_mut().zip(pos).for_each(|(v, &p)| *v = r[p]),
        }
    };
    if src.len() >= 1 << 16 {
        Zip::from(dst.rows_mut())
            .and(src.rows())
            .par_for_each(permute_row);
    } else {
        Zip::from(dst.rows_mut())
            .and(src.rows())
            .for_each(permute_row);
    }
    dst
}

/// Most rows per job: a job's buffers stay in cache.
const MAX_CHUNK: usize = 256;
/// Fewest rows per job: below this the block GEMMs are too small to be efficient.
const MIN_CHUNK: usize = 32;

/// Rows per job for a batch of `rows`: as even a split over the threads as `MAX_CHUNK` allows
/// (a multiple of the thread count of jobs), never below `MIN_CHUNK`.
fn chunk_rows(rows: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let jobs = threads * rows.div_ceil(threads * MAX_CHUNK).max(1);
    rows.div_ceil(jobs).max(MIN_CHUNK)
}

fn pad_cols<T: Scalar>(x: ArrayView2<'_, T>, width: usize) -> CowArray<'_, T, Ix2> {
    if x.ncols() == width {
        return x.into();
    }
    let mut xp = Array2::zeros((x.nrows(), width));
    xp.slice_mut(s![.., ..x.ncols()]).assign(&x);
    xp.into()
}

/// Run `f` on matching row chunks of `a` and `b` ([`chunk_rows`]) in parallel, each with
/// single-threaded GEMMs; a batch of one chunk runs with multi-threaded GEMMs.
fn for_chunks<T: Scalar, F>(a: ArrayView2<T>, mut b: ArrayViewMut2<T>, f: F)
where
    F: Fn(ArrayView2<T>, ArrayViewMut2<T>, Par) + Sync,
{
    let chunk = chunk_rows(a.nrows());
    if a.nrows() > chunk {
        a.axis_chunks_iter(Axis(0), chunk)
            .into_par_iter()
            .zip(b.axis_chunks_iter_mut(Axis(0), chunk))
            .for_each(|(ac, bc)| f(ac, bc, Par::Seq));
    } else if a.nrows() > 0 {
        f(a, b.view_mut(), faer::get_global_parallelism());
    }
}

/// Jobs of the weight gradient: blocks × row ranges (independent of the thread count, so the
/// sums — and training runs — are the same on any number of threads).
const GRAD_JOBS: usize = 16;
/// Fewest rows of a row range of the weight gradient.
const GRAD_ROWS: usize = 256;

/// `dW_b += dy_bᵀ · conj(x_b)` for every `(out, inp)` block `b` of the flat buffer `dw`, where
/// `dy_b = dy_block(b)` and `x_b` are the `b`-th column blocks of the whole batch. The jobs are
/// the blocks, each split over row ranges (partial sums added in order afterwards) when there
/// are fewer than `GRAD_JOBS` blocks; every GEMM is single-threaded.
fn block_weight_grads<'a, T: Scalar>(
    dw: &mut [T],
    out: usize,
    inp: usize,
    dy_block: impl Fn(usize) -> ArrayView2<'a, T> + Sync,
    x: ArrayView2<T>,
) {
    let size = out * inp;
    if size == 0 {
        return;
    }
    let nblocks = dw.len() / size;
    let rows = x.nrows();
    let grad = |b: usize, lo: usize, hi: usize, g: &mut [T]| {
        let g = ArrayViewMut2::from_shape((out, inp), g).expect("block layout");
        let dyb = dy_block(b).slice_move(s![lo..hi, ..]);
        let xb = x.slice(s![lo..hi, b * inp..(b + 1) * inp]);
        gemm_conj_par(dyb.t(), false, xb, T::IS_COMPLEX, g, true, Par::Seq);
    };
    let splits = if nblocks >= GRAD_JOBS {
        1
    } else {
        (GRAD_JOBS / nblocks.max(1)).min(rows / GRAD_ROWS).max(1)
    };
    if splits == 1 {
        dw.par_chunks_mut(size)
            .enumerate()
            .for_each(|(b, g)| grad(b, 0, rows, g));
        return;
    }
    let span = rows.div_ceil(splits);
    let partials: Vec<Vec<T>> = (0..nblocks * splits)
        .into_par_iter()
        .map(|i| {
            let (b, c) = (i / splits, i % splits);
            let mut g = vec![T::zero(); size];
            grad(b, (c * span).min(rows), ((c + 1) * span).min(rows), &mut g);
            g
        })
        .collect();
    dw.par_chunks_mut(size)
        .zip(partials.par_chunks(splits))
        .for_each(|(g, parts)| {
            for part in parts {
                g.iter_mut().zip(part).for_each(|(a, &v)| *a += v);
            }
        });
}

impl<T: Scalar> LinearMap<T> for Monarch<T> {
    fn in_features(&self) -> usize {
        self.shape.in_features
    }
    fn out_features(&self) -> usize {
        self.shape.out_features
    }
    fn apply_into(&self, x: ArrayView2<T>, y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.in_features(), self.out_features(), &x, &y)?;
        let mid = self.mid_positions();
        for_chunks(x, y, |xc, yc, par| self.forward_chunk(xc, yc, &mid, par));
        Ok(())
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.transpose_map(y, false)
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.transpose_map(y, T::IS_COMPLEX)
    }
    fn to_dense(&self) -> Array2<T> {
        let n = self.shape.out_features;
        let eye = Array2::from_shape_fn((n, n), |(i, j)| if i == j { T::one() } else { T::zero() });
        self.transpose_map(eye.view(), false)
            .expect("identity of the output width")
    }
    fn num_params(&self) -> usize {
        self.params.len()
    }
    fn flops_per_row(&self) -> usize {
        let (n1, n2) = self.shape.weight_lens();
        let mac = if T::IS_COMPLEX { 8 } else { 2 };
        mac * (n1 + n2)
            + if self.has_bias {
                self.shape.out_features
            } else {
                0
            }
    }
}

impl<T: Scalar> Differentiable<T> for Monarch<T> {
    fn backward(&self, x: ArrayView2<T>, dy: ArrayView2<T>, grads: &mut [T]) -> Result<Array2<T>> {
        let sh = self.shape;
        check_cols("x", x.dim(), sh.in_features)?;
        check_shape("dy", dy.dim(), (x.nrows(), sh.out_features))?;
        check_len("grads", grads.len(), self.params.len())?;
        let (n1, n2) = sh.weight_lens();
        let mid = self.mid_positions();
        let c = T::IS_COMPLEX;
        let rows = x.nrows();
        let xp = pad_cols(x, sh.padded_in());
        let mut tp = Array2::zeros((rows, sh.inner()));
        for_chunks(xp.view(), tp.view_mut(), |xc, mut tc, par| {
            tc.assign(&self.inner_chunk(xc, &mid, par))
        });
        // Block j of the second factor's output is the column set {i·l + j} of dy: a strided
        // view when there is no output padding, a gathered copy otherwise.
        let dyp = (sh.padded_out() != sh.out_features).then(|| self.gather_output(dy));
        let (src, stride) = match &dyp {
            Some(d) => (d.view(), 1),
            None => (dy, sh.l),
        };
        let mut dtp = Array2::zeros((rows, sh.inner()));
        for_chunks(src, dtp.view_mut(), |dyc, mut dtc, par| {
            for j in 0..sh.l {
                let w2 = block_gemm::weight(self.w2(), j, sh.s, sh.r);
                let dst = dtc.slice_mut(s![.., j * sh.r..(j + 1) * sh.r]);
                gemm_conj_par(
                    col_block(dyc, j, sh.s, stride),
                    false,
                    w2,
                    c,
                    dst,
                    false,
                    par,
                );
            }
        });
        let (g1, rest) = grads.split_at_mut(n1);
        // dW2_j += dy_jᵀ · conj(t_j) and dW1_a += dt_aᵀ · conj(x_a), each one GEMM over the
        // whole batch.
        block_weight_grads(
            &mut rest[..n2],
            sh.s,
            sh.r,
            |j| col_block(src, j, sh.s, stride),
            tp.view(),
        );
        let dt = permute_cols(dtp.view(), &mid, true);
        block_weight_grads(
            g1,
            sh.q,
            sh.p,
            |a| dt.slice(s![.., a * sh.q..(a + 1) * sh.q]),
            xp.view(),
        );
        let mut dx = Array2::zeros((rows, sh.in_features));
        for_chunks(dt.view(), dx.view_mut(), |dtc, mut dxc, par| {
            let mut dxp = Array2::zeros((dtc.nrows(), sh.padded_in()));
            for a in 0..sh.k {
                let w1 = block_gemm::weight(self.w1(), a, sh.q, sh.p);
                let src = dtc.slice(s![.., a * sh.q..(a + 1) * sh.q]);
                let dst = dxp.slice_mut(s![.., a * sh.p..(a + 1) * sh.p]);
                gemm_conj_par(src, false, w1, c, dst, false, par);
            }
            dxc.assign(&dxp.slice(s![.., ..sh.in_features]));
        });
        if self.has_bias {
            bias_grad(dy, &mut grads[n1 + n2..]);
        }
        Ok(dx)
    }
    fn params(&self) -> &[T] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }
}
