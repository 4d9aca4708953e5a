//! [`PixelatedButterfly`]: a flat block butterfly plus a low-rank term (Chen, Dao et al.,
//! *Pixelated Butterfly: Simple and Efficient Sparse Training for Neural Network Models*, ICLR
//! 2022).

use crate::dense::gemm_conj;
use crate::error::{check_apply_shapes_ok, check_cols, check_len, check_nonzero, check_pow2};
use crate::error::{check_shape, Error, Result};
use crate::linear_map::{Differentiable, LinearMap};
use crate::low_rank::{lr_backward, lr_forward, lr_transpose};
use crate::monarch::{add_bias, bias_grad, uniform};
use crate::scalar::{RealScalar, Scalar};
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};
use rand::Rng;

/// How to build a [`PixelatedButterfly`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelflyConfig {
    /// Block rows and columns (a power of two); blocks are `(out/nblocks, in/nblocks)`.
    pub nblocks: usize,
    /// Butterfly levels kept in the support: block `(i, j)` is non-zero when `i = j` or
    /// `i ⊕ j = 2^t` with `t < levels` (at most `log2 nblocks`).
    pub levels: usize,
    /// Rank of the low-rank term (0 for none).
    pub rank: usize,
    /// Whether the map has a bias.
    pub bias: bool,
}

/// `W = S + U Vᵀ`, where `S` is block-sparse with the support of a *flat* block butterfly —
/// the union of the supports of the butterfly factors, block `(i, j)` present when `i = j` or
/// `i ⊕ j` is a power of two below `2^levels` — and `U Vᵀ` has rank `r`.
///
/// Parameters: the blocks of `S` (block row by block row, columns ascending, each
/// `(out_blk, in_blk)` row-major), then `U` `(out, r)`, `V` `(in, r)`, then the bias.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelatedButterfly<T: Scalar> {
    config: PixelflyConfig,
    in_blk: usize,
    out_blk: usize,
    pattern: Vec<Vec<usize>>,
    params: Vec<T>,
}

fn flat_butterfly_pattern(nblocks: usize, levels: usize) -> Vec<Vec<usize>> {
    (0..nblocks)
        .map(|i| {
            let mut cols: Vec<usize> = std::iter::once(i)
                .chain((0..levels).map(|t| i ^ (1 << t)))
                .collect();
            cols.sort_unstable();
            cols
        })
        .collect()
}

impl<T: Scalar> PixelatedButterfly<T> {
    /// Random blocks (uniform `±1/√(in_blk·(levels+1))`, so a row sums about as many terms as a
    /// dense row of `in_blk·(levels+1)` inputs), random low-rank factors, zero bias.
    pub fn random<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        config: PixelflyConfig,
        rng: &mut R,
    ) -> Result<Self> {
        let (in_blk, out_blk, pattern) = Self::geometry(in_features, out_features, config)?;
        let nnz: usize = pattern.iter().map(Vec::len).sum();
        let bound = 1.0 / ((in_blk * (config.levels + 1)) as f64).sqrt();
        let mut params: Vec<T> = (0..nnz * in_blk * out_blk)
            .map(|_| uniform::<T, R>(rng, bound))
            .collect();
        let r = config.rank;
        let bu = (3.0 / r.max(1) as f64).sqrt() * 0.5;
        let bv = 1.0 / (in_features as f64).sqrt();
        params.extend((0..out_features * r).map(|_| uniform::<T, R>(rng, bu)));
        params.extend((0..in_features * r).map(|_| uniform::<T, R>(rng, bv)));
        if config.bias {
            params.extend(std::iter::repeat_n(T::zero(), out_features));
        }
        Ok(Self {
            config,
            in_blk,
            out_blk,
            pattern,
            params,
        })
    }

    /// From an explicit flat parameter buffer in the documented layout.
    pub fn from_params(
        in_features: usize,
        out_features: usize,
        config: PixelflyConfig,
        params: Vec<T>,
    ) -> Result<Self> {
        let (in_blk, out_blk, pattern) = Self::geometry(in_features, out_features, config)?;
        let mut me = Self {
            config,
            in_blk,
            out_blk,
            pattern,
            params: Vec::new(),
        };
        check_len("params", params.len(), me.expected_len())?;
        me.params = params;
        Ok(me)
    }

    fn geometry(
        in_features: usize,
        out_features: usize,
        c: PixelflyConfig,
    ) -> Result<(usize, usize, Vec<Vec<usize>>)> {
        check_pow2("nblocks", c.nblocks)?;
        check_nonzero("in_features", in_features)?;
        check_nonzero("out_features", out_features)?;
        for (what, n) in [("in_features", in_features), ("out_features", out_features)] {
            if n % c.nblocks != 0 {
                return Err(Error::InvalidArgument {
                    what,
                    message: format!("{n} is not a multiple of nblocks = {}", c.nblocks),
                });
            }
        }
        let max_levels = c.nblocks.trailing_zeros() as usize;
        if c.levels > max_levels {
            return Err(Error::InvalidArgument {
                what: "levels",
                message: format!("at most log2(nblocks) = {max_levels}, got {}", c.levels),
            });
        }
        if c.rank > in_features.min(out_features) {
            return Err(Error::InvalidArgument {
                what: "rank",
                message: format!(
                    "at most min(in, out) = {}, got {}",
                    in_features.min(out_features),
                    c.rank
                ),
            });
        }
        Ok((
            in_features / c.nblocks,
            out_features / c.nblocks,
            flat_butterfly_pattern(c.nblocks, c.levels),
        ))
    }

    fn blocks_len(&self) -> usize {
        self.pattern.iter().map(Vec::len).sum::<usize>() * self.in_blk * self.out_blk
    }
    fn expected_len(&self) -> usize {
        self.blocks_len()
            + self.config.rank * (self.in_features() + self.out_features())
            + if self.config.bias {
                self.out_features()
            } else {
                0
            }
    }
    /// The configuration.
    pub fn config(&self) -> PixelflyConfig {
        self.config
    }
    /// Block columns present in each block row.
    pub fn pattern(&self) -> &[Vec<usize>] {
        &self.pattern
    }
    fn ranges(&self) -> (usize, usize, usize) {
        let a = self.blocks_len();
        let b = a + self.out_features() * self.config.rank;
        let c = b + self.in_features() * self.config.rank;
        (a, b, c)
    }
    fn u(&self) -> ArrayView2<'_, T> {
        let (a, b, _) = self.ranges();
        ArrayView2::from_shape((self.out_features(), self.config.rank), &self.params[a..b])
            .expect("layout")
    }
    fn v(&self) -> ArrayView2<'_, T> {
        let (_, b, c) = self.ranges();
        ArrayView2::from_shape((self.in_features(), self.config.rank), &self.params[b..c])
            .expect("layout")
    }
    /// The bias, if any.
    pub fn bias(&self) -> Option<&[T]> {
        let (_, _, c) = self.ranges();
        self.config.bias.then(|| &self.params[c..])
    }
    /// Each stored block with its (block row, block column), in parameter order.
    fn blocks(&self) -> impl Iterator<Item = (usize, usize, ArrayView2<'_, T>)> {
        let sz = self.in_blk * self.out_blk;
        self.pattern
            .iter()
            .enumerate()
            .flat_map(|(i, cols)| cols.iter().map(move |&j| (i, j)))
            .enumerate()
            .map(move |(n, (i, j))| {
                let w = ArrayView2::from_shape(
                    (self.out_blk, self.in_blk),
                    &self.params[n * sz..(n + 1) * sz],
                )
                .expect("layout");
                (i, j, w)
            })
    }

    fn transpose_map(&self, y: ArrayView2<T>, conj: bool) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.out_features())?;
        let mut x = Array2::zeros((y.nrows(), self.in_features()));
        let (ib, ob) = (self.in_blk, self.out_blk);
        for (i, j, w) in self.blocks() {
            let yi = y.slice(s![.., i * ob..(i + 1) * ob]);
            let xj = x.slice_mut(s![.., j * ib..(j + 1) * ib]);
            gemm_conj(yi, false, w, conj, xj, true);
        }
        if self.config.rank > 0 {
            lr_transpose(self.u(), self.v(), y, x.view_mut(), conj, true);
        }
        Ok(x)
    }
}

impl<T: Scalar> LinearMap<T> for PixelatedButterfly<T> {
    fn in_features(&self) -> usize {
        self.config.nblocks * self.in_blk
    }
    fn out_features(&self) -> usize {
        self.config.nblocks * self.out_blk
    }
    fn apply_into(&self, x: ArrayView2<T>, mut y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.in_features(), self.out_features(), &x, &y)?;
        y.fill(T::zero());
        let (ib, ob) = (self.in_blk, self.out_blk);
        for (i, j, w) in self.blocks() {
            let xj = x.slice(s![.., j * ib..(j + 1) * ib]);
            let yi = y.slice_mut(s![.., i * ob..(i + 1) * ob]);
            gemm_conj(xj, false, w.t(), false, yi, true);
        }
        if self.config.rank > 0 {
            lr_forward(self.u(), self.v(), x, y.view_mut(), true);
        }
        add_bias(&mut y, self.bias());
        Ok(())
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.transpose_map(y, false)
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.transpose_map(y, T::IS_COMPLEX)
    }
    fn to_dense(&self) -> Array2<T> {
        let mut d = Array2::zeros((self.out_features(), self.in_features()));
        let (ib, ob) = (self.in_blk, self.out_blk);
        for (i, j, w) in self.blocks() {
            d.slice_mut(s![i * ob..(i + 1) * ob, j * ib..(j + 1) * ib])
                .assign(&w);
        }
        if self.config.rank > 0 {
            gemm_conj(self.u(), false, self.v().t(), false, d.view_mut(), true);
        }
        d
    }
    fn num_params(&self) -> usize {
        self.params.len()
    }
    fn flops_per_row(&self) -> usize {
        let mac = if T::IS_COMPLEX { 8 } else { 2 };
        let lr = self.config.rank * (self.in_features() + self.out_features());
        mac * (self.blocks_len() + lr)
            + if self.config.bias {
                self.out_features()
            } else {
                0
            }
    }
}

impl<T: Scalar> Differentiable<T> for PixelatedButterfly<T> {
    fn backward(&self, x: ArrayView2<T>, dy: ArrayView2<T>, grads: &mut [T]) -> Result<Array2<T>> {
        check_cols("x", x.dim(), self.in_features())?;
        check_shape("dy", dy.dim(), (x.nrows(), self.out_features()))?;
        check_len("grads", grads.len(), self.params.len())?;
        let (a, b, c) = self.ranges();
        let sz = self.in_blk * self.out_blk;
        let (ib, ob) = (self.in_blk, self.out_blk);
        for (n, (i, j, _)) in self.blocks().enumerate() {
            let g = ArrayViewMut2::from_shape((ob, ib), &mut grads[n * sz..(n + 1) * sz])
                .expect("layout");
            let dyi = dy.slice(s![.., i * ob..(i + 1) * ob]);
            let xj = x.slice(s![.., j * ib..(j + 1) * ib]);
            gemm_conj(dyi.t(), false, xj, T::IS_COMPLEX, g, true);
        }
        let dx = self.transpose_map(dy, T::IS_COMPLEX)?;
        if self.config.rank > 0 {
            // transpose_map already added dy·(UVᵀ)̄; only the factor gradients are needed here,
            // so accumulate the input gradient into a scratch array.
            let (gu, rest) = grads[a..].split_at_mut(b - a);
            let (gv, _) = rest.split_at_mut(c - b);
            let mut scratch = Array2::zeros(dx.dim());
            lr_backward(self.u(), self.v(), x, dy, gu, gv, scratch.view_mut());
        }
        if self.config.bias {
            bias_grad(dy, &mut grads[c..]);
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

impl<T: Scalar> PixelatedButterfly<T> {
    /// Approximate `dense` (shape `(out, in)`) by a Pixelated Butterfly by alternating
    /// projections: `S ← P_Ω(dense − L)` (keep the flat-butterfly support `Ω`), then
    /// `L ← SVD_r(dense − S)` (Eckart–Young), `iterations` times. Each step can only lower
    /// `‖dense − S − L‖_F`, which is returned with the map (a local optimum, not a global one).
    pub fn project(
        dense: ArrayView2<T>,
        config: PixelflyConfig,
        iterations: usize,
    ) -> Result<(Self, f64)> {
        let (out, inp) = dense.dim();
        let cfg = PixelflyConfig {
            bias: false,
            ..config
        };
        let (in_blk, out_blk, pattern) = Self::geometry(inp, out, cfg)?;
        let mask = Array2::from_shape_fn((out, inp), |(i, j)| {
            pattern[i / out_blk].binary_search(&(j / in_blk)).is_ok()
        });
        let mut low = Array2::<T>::zeros((out, inp));
        let mut sparse = Array2::<T>::zeros((out, inp));
        let mut factors = (
            Array2::zeros((out, cfg.rank)),
            Array2::zeros((inp, cfg.rank)),
        );
        for _ in 0..iterations.max(1) {
            ndarray::Zip::from(&mut sparse)
                .and(&dense)
                .and(&low)
                .and(&mask)
                .for_each(|s, &d, &l, &m| *s = if m { d - l } else { T::zero() });
            if cfg.rank == 0 {
                break;
            }
            let residual = &dense - &sparse;
            let (lr, _) = crate::low_rank::LowRank::project(residual.view(), cfg.rank)?;
            factors = (lr.u().to_owned(), lr.v().to_owned());
            low = lr.to_dense();
        }
        let mut params = Vec::new();
        for (i, cols) in pattern.iter().enumerate() {
            for &j in cols {
                let blk = sparse.slice(s![
                    i * out_blk..(i + 1) * out_blk,
                    j * in_blk..(j + 1) * in_blk
                ]);
                params.extend(blk.iter().copied());
            }
        }
        params.extend(factors.0.iter().copied());
        params.extend(factors.1.iter().copied());
        let err2: f64 = ndarray::Zip::from(&dense)
            .and(&sparse)
            .and(&low)
            .fold(0.0, |acc, &d, &s, &l| {
                acc + (d - s - l).modulus_sqr().to_f64()
            });
        Ok((Self::from_params(inp, out, cfg, params)?, err2.sqrt()))
    }
}
