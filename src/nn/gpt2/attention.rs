//! Causal multi-head self-attention (Vaswani et al. 2017) on a fused `qkv` batch:
//! `softmax(q kᵀ/√d_h + causal mask) v` per sequence and head, rayon over the sequences and
//! faer GEMMs for the products.

use super::fast_math::exp_shifted_sum;
use crate::dense::gemm_conj_par;
use crate::scalar::RealScalar;
use faer::Par;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

/// Shapes of one attention call: `batch` sequences of `seq` tokens, `heads` heads of width
/// `d / heads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub d: usize,
}

impl AttnShape {
    fn head_dim(&self) -> usize {
        self.d / self.heads
    }
    /// Length of the attention-probability buffer, `batch·heads·seq²`.
    pub fn probs_len(&self) -> usize {
        self.batch * self.heads * self.seq * self.seq
    }
}

/// Forward. `qkv` is `(batch·seq, 3d)` with `q`, `k`, `v` in column blocks `[0, d)`, `[d, 2d)`,
/// `[2d, 3d)` and head `h` in columns `h·d_h..(h+1)·d_h` of each; writes the heads' outputs
/// into `out` `(batch·seq, d)` and the probabilities `P` (`(batch, heads, seq, seq)`, zero
/// above the diagonal) into `probs`.
pub fn attention_forward<T: RealScalar>(
    sh: AttnShape,
    qkv: ArrayView2<T>,
    mut out: ArrayViewMut2<T>,
    probs: &mut [T],
) {
    let (t, d, hd) = (sh.seq, sh.d, sh.head_dim());
    let scale = T::from_f64(1.0 / (hd as f64).sqrt());
    let out_rows: Vec<ArrayViewMut2<T>> = out.axis_chunks_iter_mut(ndarray::Axis(0), t).collect();
    out_rows
        .into_par_iter()
        .zip(probs.par_chunks_mut(sh.heads * t * t))
        .enumerate()
        .for_each(|(b, (mut ob, pb))| {
            let rows = b * t..(b + 1) * t;
            for h in 0..sh.heads {
                let c = h * hd;
                let q = qkv.slice(s![rows.clone(), c..c + hd]);
                let k = qkv.slice(s![rows.clone(), d + c..d + c + hd]);
                let v = qkv.slice(s![rows.clone(), 2 * d + c..2 * d + c + hd]);
                let mut p = ArrayViewMut2::from_shape((t, t), &mut pb[h * t * t..(h + 1) * t * t])
                    .expect("probs layout");
                gemm_conj_par(q, false, k.t(), false, p.view_mut(), false, Par::Seq);
                for i in 0..t {
                    let row = &mut p.row_mut(i).into_slice().expect("contiguous row")[..];
                    let (live, masked) = row.split_at_mut(i + 1);
                    let mut mx = T::neg_infinity();
                    for v in live.iter_mut() {
                        *v *= scale;
                        mx = mx.max(*v);
                    }
                    let inv = T::one() / exp_shifted_sum(live, mx);
                    for v in live.iter_mut() {
                        *v *= inv;
                    }
                    masked.fill(T::zero());
                }
                let dst = ob.slice_mut(s![.., c..c + hd]);
                gemm_conj_par(p.view(), false, v, false, dst, false, Par::Seq);
            }
        });
}

/// Backward: given `dout = ∂L/∂out`, writes `∂L/∂qkv` into `dqkv` (same layout as `qkv`):
/// `dv = Pᵀ dout`, `dP = dout vᵀ`, `dS = P ⊙ (dP − rowsum(P ⊙ dP))`, `dq = dS k/√d_h`,
/// `dk = dSᵀ q/√d_h`.
pub fn attention_backward<T: RealScalar>(
    sh: AttnShape,
    qkv: ArrayView2<T>,
    probs: &[T],
    dout: ArrayView2<T>,
    mut dqkv: ArrayViewMut2<T>,
) {
    let (t, d, hd) = (sh.seq, sh.d, sh.head_dim());
    let scale = T::from_f64(1.0 / (hd as f64).sqrt());
    let rows_out: Vec<ArrayViewMut2<T>> = dqkv.axis_chunks_iter_mut(ndarray::Axis(0), t).collect();
    rows_out
        .into_par_iter()
        .zip(probs.par_chunks(sh.heads * t * t))
        .enumerate()
        .for_each(|(b, (mut gb, pb))| {
            let rows = b * t..(b + 1) * t;
            let mut dp = Array2::<T>::zeros((t, t));
            for h in 0..sh.heads {
                let c = h * hd;
                let q = qkv.slice(s![rows.clone(), c..c + hd]);
                let k = qkv.slice(s![rows.clone(), d + c..d + c + hd]);
                let v = qkv.slice(s![rows.clone(), 2 * d + c..2 * d + c + hd]);
                let p = ArrayView2::from_shape((t, t), &pb[h * t * t..(h + 1) * t * t])
                    .expect("probs layout");
                let go = dout.slice(s![rows.clone(), c..c + hd]);
                // dv = Pᵀ dout
                let dv = gb.slice_mut(s![.., 2 * d + c..2 * d + c + hd]);
                gemm_conj_par(p.t(), false, go, false, dv, false, Par::Seq);
                // dP = dout vᵀ, then dS in place (scaled by 1/√d_h)
                gemm_conj_par(go, false, v.t(), false, dp.view_mut(), false, Par::Seq);
                for i in 0..t {
                    let pr = p.row(i);
                    let mut dr = dp.row_mut(i);
                    let mut dot = T::zero();
                    for j in 0..=i {
                        dot += pr[j] * dr[j];
                    }
                    for j in 0..=i {
                        dr[j] = pr[j] * (dr[j] - dot) * scale;
                    }
                    for j in i + 1..t {
                        dr[j] = T::zero();
                    }
                }
                let dq = gb.slice_mut(s![.., c..c + hd]);
                gemm_conj_par(dp.view(), false, k, false, dq, false, Par::Seq);
                let dk = gb.slice_mut(s![.., d + c..d + c + hd]);
                gemm_conj_par(dp.t(), false, q, false, dk, false, Par::Seq);
            }
        });
}
