//! [`Butterfly`]: a product of butterfly factors, the Kaleidoscope hierarchy when `nblocks > 1`.

use super::init::{fill_block, Init};
use super::kernel::{self, Buf, Level, Mode, LANES};
use super::permutation::Permutation;
use crate::error::{check_apply_shapes_ok, check_cols, check_len, check_nonzero, check_shape};
use crate::error::{Error, Result};
use crate::linear_map::{Differentiable, LinearMap};
use crate::scalar::{RealScalar, Scalar};
use ndarray::{s, Array2, ArrayView2, ArrayView6, ArrayViewMut2, ArrayViewMut6, Axis};
use rand::Rng;
use rayon::prelude::*;

/// How to build a [`Butterfly`] with [`Butterfly::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ButterflyConfig {
    /// Number of butterfly blocks `B` multiplied together; blocks alternate stride direction,
    /// so `nblocks = 2k` is the Kaleidoscope hierarchy `(B B*)^k`.
    pub nblocks: usize,
    /// Stride direction of the first block: `1, 2, …, n/2` when true, `n/2, …, 1` when false.
    pub increasing_stride: bool,
    /// Twiddle initialisation.
    pub init: Init,
    /// Whether the map has a learnable bias (initialised to zero).
    pub bias: bool,
}

impl Default for ButterflyConfig {
    fn default() -> Self {
        Self {
            nblocks: 1,
            increasing_stride: true,
            init: Init::Randn,
            bias: true,
        }
    }
}

/// A butterfly matrix (Dao et al., ICML 2019) and its products (Kaleidoscope, ICLR 2020).
///
/// With `n = 2^m ≥ in_features`, one butterfly block is `B = B_m ⋯ B_1`, where level `l`
/// mixes coordinate pairs `(a, a + s_l)` by a 2×2 block (stride `s_l = 2^(l-1)` for increasing
/// stride, reversed otherwise). The map is
///
/// `y = [ Q · B^{(1)}_{nblocks} ⋯ B^{(1)}_1 · P ; … ; Q · B^{(S)} ⋯ · P ] · pad(x) + b`,
///
/// truncated to `out_features`: the input is zero-padded to `n`, optionally permuted by a
/// fixed `P`, sent through `nstacks = ⌈out/n⌉` independent stacks of `nblocks` blocks whose
/// outputs are optionally permuted by a fixed `Q` and concatenated.
///
/// Parameters: the twiddles, shape `(nstacks, nblocks, log2 n, n/2, 2, 2)` (the 2×2 block of
/// level `l`'s `p`-th pair, pairs ordered by block then offset), followed by the bias.
#[derive(Debug, Clone, PartialEq)]
pub struct Butterfly<T: Scalar> {
    in_features: usize,
    out_features: usize,
    n: usize,
    log_n: usize,
    nstacks: usize,
    nblocks: usize,
    increasing_stride: bool,
    has_bias: bool,
    params: Vec<T>,
    in_perm: Option<Permutation>,
    out_perm: Option<Permutation>,
}

/// Padded size, levels, number of stacks and number of twiddles for a map `in → out` of
/// `nblocks` blocks; sizes whose counts overflow `usize` are refused.
pub(crate) fn geometry(
    in_features: usize,
    out_features: usize,
    nblocks: usize,
) -> Result<(usize, usize, usize, usize)> {
    check_nonzero("in_features", in_features)?;
    check_nonzero("out_features", out_features)?;
    let n = in_features
        .checked_next_power_of_two()
        .ok_or_else(|| Error::InvalidArgument {
            what: "in_features",
            message: format!("{in_features} is too large to pad to a power of two"),
        })?;
    let log_n = n.trailing_zeros() as usize;
    let nstacks = out_features.div_ceil(n);
    let twiddles = [nblocks, log_n, n / 2, 4]
        .iter()
        .try_fold(nstacks, |acc, &f| acc.checked_mul(f))
        .ok_or_else(|| Error::InvalidArgument {
            what: "butterfly size",
            message: format!(
                "in_features = {in_features}, out_features = {out_features}, \
                 nblocks = {nblocks} needs more than usize::MAX twiddles"
            ),
        })?;
    Ok((n, log_n, nstacks, twiddles))
}

impl<T: Scalar> Butterfly<T> {
    /// A random (or structured, per `config.init`) butterfly map `in_features → out_features`.
    pub fn new<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        config: ButterflyConfig,
        rng: &mut R,
    ) -> Result<Self> {
        check_nonzero("nblocks", config.nblocks)?;
        let (n, log_n, nstacks, tw_len) = geometry(in_features, out_features, config.nblocks)?;
        let block_len = log_n * n / 2 * 4;
        let mut params = vec![T::zero(); tw_len];
        for (i, block) in params.chunks_exact_mut(block_len.max(1)).enumerate() {
            let b = i % config.nblocks;
            let increasing = b.is_multiple_of(2) == config.increasing_stride;
            fill_block(config.init, b == 0, increasing, n, block, rng)?;
        }
        if config.bias {
            params.extend(std::iter::repeat_n(T::zero(), out_features));
        }
        Ok(Self {
            in_features,
            out_features,
            n,
            log_n,
            nstacks,
            nblocks: config.nblocks,
            increasing_stride: config.increasing_stride,
            has_bias: config.bias,
            params,
            in_perm: None,
            out_perm: None,
        })
    }

    /// A butterfly from explicit twiddles of shape `(nstacks, nblocks, log2 n, n/2, 2, 2)`
    /// flattened row-major, with `n = in_features.next_power_of_two()` and
    /// `nstacks = ⌈out_features / n⌉`.
    pub fn from_twiddle(
        in_features: usize,
        out_features: usize,
        nblocks: usize,
        increasing_stride: bool,
        twiddle: Vec<T>,
        bias: Option<Vec<T>>,
    ) -> Result<Self> {
        check_nonzero("nblocks", nblocks)?;
        let (n, log_n, nstacks, tw_len) = geometry(in_features, out_features, nblocks)?;
        check_len("twiddle", twiddle.len(), tw_len)?;
        let mut params = twiddle;
        let has_bias = bias.is_some();
        if let Some(b) = bias {
            check_len("bias", b.len(), out_features)?;
            params.extend(b);
        }
        Ok(Self {
            in_features,
            out_features,
            n,
            log_n,
            nstacks,
            nblocks,
            increasing_stride,
            has_bias,
            params,
            in_perm: None,
            out_perm: None,
        })
    }

    /// Permute the zero-padded input by the fixed `p` (length `n`) before the first level.
    pub fn with_input_permutation(mut self, p: Permutation) -> Result<Self> {
        check_len("input permutation", p.len(), self.n)?;
        self.in_perm = if p.is_identity() { None } else { Some(p) };
        Ok(self)
    }

    /// Permute every stack's output by the fixed `q` (length `n`) after the last level.
    pub fn with_output_permutation(mut self, q: Permutation) -> Result<Self> {
        check_len("output permutation", q.len(), self.n)?;
        self.out_perm = if q.is_identity() { None } else { Some(q) };
        Ok(self)
    }

    /// The padded size `n = 2^m`.
    pub fn n(&self) -> usize {
        self.n
    }
    /// `log2 n`: levels per block.
    pub fn log_n(&self) -> usize {
        self.log_n
    }
    /// Number of independent stacks whose outputs are concatenated.
    pub fn nstacks(&self) -> usize {
        self.nstacks
    }
    /// Number of blocks per stack.
    pub fn nblocks(&self) -> usize {
        self.nblocks
    }
    /// Stride direction of the first block.
    pub fn increasing_stride(&self) -> bool {
        self.increasing_stride
    }
    /// Whether block `b` has increasing stride (blocks alternate).
    pub fn block_increasing(&self, b: usize) -> bool {
        b.is_multiple_of(2) == self.increasing_stride
    }
    /// The stride of level `l` of block `b`.
    pub fn level_stride(&self, b: usize, l: usize) -> usize {
        if self.block_increasing(b) {
            1 << l
        } else {
            self.n >> (l + 1)
        }
    }
    /// The fixed input permutation, if any.
    pub fn input_permutation(&self) -> Option<&Permutation> {
        self.in_perm.as_ref()
    }
    /// The fixed output permutation, if any.
    pub fn output_permutation(&self) -> Option<&Permutation> {
        self.out_perm.as_ref()
    }
    /// Number of twiddle entries: `nstacks · nblocks · log2 n · (n/2) · 4`.
    pub fn twiddle_len(&self) -> usize {
        self.nstacks * self.nblocks * self.log_n * self.n / 2 * 4
    }
    /// The flat twiddles (the first [`twiddle_len`](Self::twiddle_len) parameters).
    pub fn twiddle(&self) -> &[T] {
        &self.params[..self.twiddle_len()]
    }
    /// The flat twiddles, mutable.
    pub fn twiddle_mut(&mut self) -> &mut [T] {
        let len = self.twiddle_len();
        &mut self.params[..len]
    }
    fn twiddle_shape(&self) -> (usize, usize, usize, usize, usize, usize) {
        (self.nstacks, self.nblocks, self.log_n, self.n / 2, 2, 2)
    }
    /// The twiddles as an array of shape `(nstacks, nblocks, log2 n, n/2, 2, 2)`.
    pub fn twiddle_view(&self) -> ArrayView6<'_, T> {
        ArrayView6::from_shape(self.twiddle_shape(), self.twiddle()).expect("twiddle layout")
    }
    /// The twiddles as a mutable array of shape `(nstacks, nblocks, log2 n, n/2, 2, 2)`.
    pub fn twiddle_view_mut(&mut self) -> ArrayViewMut6<'_, T> {
        let shape = self.twiddle_shape();
        ArrayViewMut6::from_shape(shape, self.twiddle_mut()).expect("twiddle layout")
    }
    /// The bias, if the map has one.
    pub fn bias(&self) -> Option<&[T]> {
        self.has_bias.then(|| &self.params[self.twiddle_len()..])
    }
    /// The bias, mutable.
    pub fn bias_mut(&mut self) -> Option<&mut [T]> {
        let len = self.twiddle_len();
        self.has_bias.then(|| &mut self.params[len..])
    }
    /// Drop the bias (the map becomes linear).
    pub fn without_bias(mut self) -> Self {
        let len = self.twiddle_len();
        self.params.truncate(len);
        self.has_bias = false;
        self
    }

    /// The levels of one stack in application order.
    fn stack_levels(&self, stack: usize) -> Vec<Level<'_, T>> {
        let level_len = self.n / 2 * 4;
        let mut levels = Vec::with_capacity(self.nblocks * self.log_n);
        for b in 0..self.nblocks {
            for l in 0..self.log_n {
                let off = ((stack * self.nblocks + b) * self.log_n + l) * level_len;
                levels.push(Level {
                    stride: self.level_stride(b, l),
                    tw: &self.params[off..off + level_len],
                });
            }
        }
        levels
    }

    /// Which lane row each input column and each output column of a stack is moved to or
    /// from: input column `j` is lane row `P⁻¹[j]`, output column `j` is lane row `Q[j]`.
    fn lane_maps(&self) -> LaneMaps {
        let input = match &self.in_perm {
            None => (0..self.in_features).collect(),
            Some(p) => p.inverse().as_slice()[..self.in_features].to_vec(),
        };
        let output = match &self.out_perm {
            None => (0..self.n).collect(),
            Some(q) => q.as_slice().to_vec(),
        };
        LaneMaps {
            input,
            output,
            plain: (0..self.in_features).collect(),
        }
    }

    /// Output columns `start..end` written by stack `stack`.
    fn stack_columns(&self, stack: usize) -> (usize, usize) {
        let start = stack * self.n;
        (start, (start + self.n).min(self.out_features))
    }

    /// Load a tile of input rows into lanes: lane `k` of lane row `i` is `pad(x_k)[P[i]]`, or
    /// `pad(x_k)[i]` when `permute` is false.
    fn load_input(&self, x: ArrayView2<T>, w: &mut [T::Real], maps: &LaneMaps, permute: bool) {
        if x.nrows() < LANES || self.in_features < self.n {
            fill_zero(w);
        }
        let xs = x.as_standard_layout();
        let data = xs.as_slice().expect("standard layout");
        let rows: Vec<&[T]> = data.chunks_exact(self.in_features).collect();
        kernel::gather(&rows, if permute { &maps.input } else { &maps.plain }, w);
    }

    /// Scatter lanes back to input coordinates (the transpose of `load_input`).
    fn store_input_transpose(&self, w: &[T::Real], x: ArrayViewMut2<T>, maps: &LaneMaps) {
        write_rows(x, |rows| kernel::scatter(w, &maps.input, None, rows));
    }

    /// Write stack `stack`'s lanes to output columns `stack·n ..`: `y_k[stack·n + j] = w[Q[j]][k]`.
    fn store_output(
        &self,
        w: &[T::Real],
        stack: usize,
        y: &mut ArrayViewMut2<T>,
        bias: bool,
        maps: &LaneMaps,
    ) {
        let (start, end) = self.stack_columns(stack);
        let b = if bias {
            self.bias().map(|b| &b[start..end])
        } else {
            None
        };
        let src = &maps.output[..end - start];
        write_rows(y.slice_mut(s![.., start..end]), |rows| {
            kernel::scatter(w, src, b, rows)
        });
    }

    /// Load output columns of stack `stack` into lanes (the transpose of `store_output`).
    fn load_output_transpose(
        &self,
        y: ArrayView2<T>,
        stack: usize,
        w: &mut [T::Real],
        maps: &LaneMaps,
    ) {
        let (start, end) = self.stack_columns(stack);
        if y.nrows() < LANES || end - start < self.n {
            fill_zero(w);
        }
        let ys = y.slice(s![.., start..end]);
        let ys = ys.as_standard_layout();
        let data = ys.as_slice().expect("standard layout");
        let rows: Vec<&[T]> = data.chunks_exact(end - start).collect();
        kernel::gather(&rows, &maps.output[..end - start], w);
    }

    fn forward_into(&self, x: ArrayView2<T>, mut y: ArrayViewMut2<T>, bias: bool) {
        let n = self.n;
        let maps = self.lane_maps();
        let stacks: Vec<_> = (0..self.nstacks)
            .map(|s| kernel::prepare(&self.stack_levels(s), n, Mode::Forward))
            .collect();
        // In place when the input needs no permutation and feeds one stack; otherwise the
        // kernel fills its work tile from the loaded input, permuting on the way.
        let in_place = self.nstacks == 1 && self.in_perm.is_none();
        let perm = self.in_perm.as_ref().map(|p| p.as_slice());
        let job = |(input, work): &mut (Buf<T::Real>, Buf<T::Real>),
                   (t, mut yt): (usize, ArrayViewMut2<T>)| {
            let xt = x.slice(s![t * LANES..t * LANES + yt.nrows(), ..]);
            if in_place {
                self.load_input(xt, work, &maps, false);
            } else {
                self.load_input(xt, input, &maps, false);
            }
            for (s, levels) in stacks.iter().enumerate() {
                let src = (!in_place).then_some(kernel::Source { tile: input, perm });
                kernel::run_levels::<T>(work, src, levels);
                self.store_output(work, s, &mut yt, bias, &maps);
            }
        };
        let init = || {
            let spare = if in_place { 0 } else { n };
            (tile::<T>(spare), tile::<T>(n))
        };
        if x.nrows() <= LANES {
            y.axis_chunks_iter_mut(Axis(0), LANES)
                .enumerate()
                .for_each(|item| job(&mut init(), item));
        } else {
            y.axis_chunks_iter_mut(Axis(0), LANES)
                .into_par_iter()
                .enumerate()
                .for_each_init(init, job);
        }
    }

    fn transpose_into(&self, y: ArrayView2<T>, mut x: ArrayViewMut2<T>, mode: Mode) {
        let n = self.n;
        let maps = self.lane_maps();
        let stacks: Vec<_> = (0..self.nstacks)
            .map(|s| {
                let rev: Vec<_> = self.stack_levels(s).into_iter().rev().collect();
                kernel::prepare(&rev, n, mode)
            })
            .collect();
        let job = |(acc, work): &mut (Buf<T::Real>, Buf<T::Real>),
                   (t, xt): (usize, ArrayViewMut2<T>)| {
            let yt = y.slice(s![t * LANES..t * LANES + xt.nrows(), ..]);
            for (s, levels) in stacks.iter().enumerate() {
                let target = if s == 0 { &mut *acc } else { &mut *work };
                self.load_output_transpose(yt, s, target, &maps);
                kernel::run_levels::<T>(target, None, levels);
                if s > 0 {
                    add_lanes(acc, work);
                }
            }
            self.store_input_transpose(acc, xt, &maps);
        };
        let init = || {
            let spare = if self.nstacks > 1 { n } else { 0 };
            (tile::<T>(n), tile::<T>(spare))
        };
        if y.nrows() <= LANES {
            x.axis_chunks_iter_mut(Axis(0), LANES)
                .enumerate()
                .for_each(|item| job(&mut init(), item));
        } else {
            x.axis_chunks_iter_mut(Axis(0), LANES)
                .into_par_iter()
                .enumerate()
                .for_each_init(init, job);
        }
    }

    fn transpose_map(&self, y: ArrayView2<T>, mode: Mode) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.out_features)?;
        let mut x = Array2::zeros((y.nrows(), self.in_features));
        self.transpose_into(y, x.view_mut(), mode);
        Ok(x)
    }
}

/// Lane rows of the input columns and of one stack's output columns (see
/// `Butterfly::lane_maps`).
struct LaneMaps {
    input: Vec<usize>,
    output: Vec<usize>,
    /// Input column `j` to lane row `j` (the input permutation left to the kernel).
    plain: Vec<usize>,
}

/// Run `f` on the rows of `y` as slices, through a contiguous copy when a row is strided.
fn write_rows<T: Scalar>(mut y: ArrayViewMut2<T>, f: impl FnOnce(&mut [&mut [T]])) {
    let contiguous = y.ncols() <= 1 || y.strides()[1] == 1;
    if contiguous {
        let mut rows: Vec<&mut [T]> = y
            .rows_mut()
            .into_iter()
            .map(|r| r.into_slice().expect("contiguous row"))
            .collect();
        f(&mut rows);
    } else {
        let mut tmp = Array2::zeros(y.dim());
        {
            let data = tmp.as_slice_mut().expect("standard layout");
            let mut rows: Vec<&mut [T]> = data.chunks_exact_mut(y.ncols().max(1)).collect();
            f(&mut rows);
        }
        y.assign(&tmp);
    }
}

/// A tile of `n` lane rows from the per-thread pool (contents unspecified: every user writes
/// or zeroes what it reads).
fn tile<T: Scalar>(n: usize) -> Buf<T::Real> {
    Buf::take(n * kernel::width::<T>())
}

fn fill_zero<R: RealScalar>(w: &mut [R]) {
    w.fill(R::zero());
}

fn add_lanes<R: RealScalar>(acc: &mut [R], w: &[R]) {
    for (a, &b) in acc.iter_mut().zip(w) {
        *a += b;
    }
}

impl<T: Scalar> LinearMap<T> for Butterfly<T> {
    fn in_features(&self) -> usize {
        self.in_features
    }
    fn out_features(&self) -> usize {
        self.out_features
    }
    fn apply_into(&self, x: ArrayView2<T>, y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.in_features, self.out_features, &x, &y)?;
        self.forward_into(x, y, true);
        Ok(())
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.transpose_map(y, Mode::Transpose)
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        self.transpose_map(y, Mode::Adjoint)
    }
    fn to_dense(&self) -> Array2<T> {
        let eye = Array2::from_shape_fn((self.in_features, self.in_features), |(i, j)| {
            if i == j {
                T::one()
            } else {
                T::zero()
            }
        });
        let mut wt = Array2::zeros((self.in_features, self.out_features));
        self.forward_into(eye.view(), wt.view_mut(), false);
        wt.reversed_axes().as_standard_layout().into_owned()
    }
    fn num_params(&self) -> usize {
        self.params.len()
    }
    fn flops_per_row(&self) -> usize {
        let per_pair = if T::IS_COMPLEX { 28 } else { 6 };
        let bias = if self.has_bias {
            self.out_features * if T::IS_COMPLEX { 2 } else { 1 }
        } else {
            0
        };
        self.nstacks * self.nblocks * self.log_n * (self.n / 2) * per_pair + bias
    }
}

impl<T: Scalar> Differentiable<T> for Butterfly<T> {
    fn backward(&self, x: ArrayView2<T>, dy: ArrayView2<T>, grads: &mut [T]) -> Result<Array2<T>> {
        check_cols("x", x.dim(), self.in_features)?;
        check_shape("dy", dy.dim(), (x.nrows(), self.out_features))?;
        check_len("grads", grads.len(), self.params.len())?;
        let n = self.n;
        let nlev = self.nblocks * self.log_n;
        let stack_len = nlev * n / 2 * 4;
        let tw_len = self.twiddle_len();
        let stacks: Vec<_> = (0..self.nstacks).map(|s| self.stack_levels(s)).collect();
        let preps: Vec<_> = stacks
            .iter()
            .map(|l| kernel::prepare(l, n, Mode::Forward))
            .collect();
        let maps = self.lane_maps();
        let mut dx = Array2::zeros((x.nrows(), self.in_features));
        struct Ws<T: Scalar> {
            input: Buf<T::Real>,
            work: Buf<T::Real>,
            g: Buf<T::Real>,
            acc: Buf<T::Real>,
            acts: Buf<T::Real>,
            grads: Vec<T>,
        }
        let init = || Ws::<T> {
            input: tile::<T>(n),
            work: tile::<T>(n),
            g: tile::<T>(n),
            acc: tile::<T>(n),
            acts: tile::<T>(n * nlev),
            grads: vec![T::zero(); tw_len],
        };
        let job = |mut ws: Ws<T>, (t, dxt): (usize, ArrayViewMut2<T>)| {
            let rows = t * LANES..t * LANES + dxt.nrows();
            let xt = x.slice(s![rows.clone(), ..]);
            let dyt = dy.slice(s![rows, ..]);
            self.load_input(xt, &mut ws.input, &maps, true);
            fill_zero(&mut ws.acc);
            for (s, levels) in stacks.iter().enumerate() {
                ws.work.copy_from_slice(&ws.input);
                self.load_output_transpose(dyt, s, &mut ws.g, &maps);
                let dtw = &mut ws.grads[s * stack_len..(s + 1) * stack_len];
                let (w, a, g) = (&mut ws.work, &mut ws.acts, &mut ws.g);
                kernel::forward_backward(w, a, g, &preps[s], levels, dtw);
                add_lanes(&mut ws.acc, &ws.g);
            }
            self.store_input_transpose(&ws.acc, dxt, &maps);
            ws
        };
        let tw_grads = if x.nrows() <= LANES {
            dx.axis_chunks_iter_mut(Axis(0), LANES)
                .enumerate()
                .fold(init(), job)
                .grads
        } else {
            // Tiles in a fixed number of contiguous groups, summed in order: the gradient is
            // the same, bit for bit, whatever the thread count and the work stealing.
            const GROUPS: usize = 32;
            let per = x.nrows().div_ceil(LANES).div_ceil(GROUPS);
            let parts: Vec<Vec<T>> = dx
                .axis_chunks_iter_mut(Axis(0), LANES)
                .into_par_iter()
                .enumerate()
                .chunks(per)
                .map(|g| g.into_iter().fold(init(), job).grads)
                .collect();
            let mut total = vec![T::zero(); tw_len];
            for part in parts {
                for (u, v) in total.iter_mut().zip(part) {
                    *u += v;
                }
            }
            total
        };
        for (g, d) in grads[..tw_len].iter_mut().zip(tw_grads) {
            *g += d;
        }
        if self.has_bias {
            for row in dy.axis_iter(Axis(0)) {
                for (g, &d) in grads[tw_len..].iter_mut().zip(row.iter()) {
                    *g += d;
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalar::{C32, C64};
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// `B x + b` for one row, coordinate by coordinate in complex f64, from the definition.
    fn reference_row<T: Scalar>(b: &Butterfly<T>, x: &[C64], bias: bool) -> Vec<C64> {
        let n = b.n();
        let mut xp = vec![C64::new(0.0, 0.0); n];
        xp[..x.len()].copy_from_slice(x);
        if let Some(p) = b.input_permutation() {
            xp = p.as_slice().iter().map(|&i| xp[i]).collect();
        }
        let tw = b.twiddle_view();
        let mut y = Vec::new();
        for st in 0..b.nstacks() {
            let mut v = xp.clone();
            for blk in 0..b.nblocks() {
                for l in 0..b.log_n() {
                    let s = b.level_stride(blk, l);
                    for p in 0..n / 2 {
                        let a = (p / s) * 2 * s + p % s;
                        let t = |r: usize, c: usize| tw[(st, blk, l, p, r, c)].to_c64();
                        let (xa, xb) = (v[a], v[a + s]);
                        v[a] = t(0, 0) * xa + t(0, 1) * xb;
                        v[a + s] = t(1, 0) * xa + t(1, 1) * xb;
                    }
                }
            }
            if let Some(q) = b.output_permutation() {
                v = q.as_slice().iter().map(|&i| v[i]).collect();
            }
            y.extend(v);
        }
        y.truncate(b.out_features());
        if bias {
            if let Some(bb) = b.bias() {
                for (u, c) in y.iter_mut().zip(bb) {
                    *u += c.to_c64();
                }
            }
        }
        y
    }

    fn random_perm(n: usize, rng: &mut StdRng) -> Permutation {
        let mut v: Vec<usize> = (0..n).collect();
        rand::seq::SliceRandom::shuffle(v.as_mut_slice(), rng);
        Permutation::new(v).expect("permutation")
    }

    fn rand_array<T: Scalar>(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<T> {
        Array2::from_shape_simple_fn((rows, cols), || T::randn(rng, 1.0))
    }

    fn max_err<T: Scalar>(got: ArrayView2<T>, want: &Array2<C64>) -> f64 {
        let scale = want.iter().map(|z| z.norm()).fold(1.0, f64::max);
        let e = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a.to_c64() - b).norm())
            .fold(0.0, f64::max);
        e / scale
    }

    /// Forward, transpose, adjoint and the input gradient of a random geometry against the
    /// row-by-row reference, with strided input and output views.
    #[allow(clippy::too_many_arguments)]
    fn check_geometry<T: Scalar>(
        inp: usize,
        out: usize,
        nblocks: usize,
        increasing: bool,
        perms: (bool, bool),
        bias: bool,
        batch: usize,
        seed: u64,
        tol: f64,
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let cfg = ButterflyConfig {
            nblocks,
            increasing_stride: increasing,
            init: super::super::init::Init::Randn,
            bias,
        };
        let mut b = Butterfly::<T>::new(inp, out, cfg, &mut rng).expect("butterfly");
        if let Some(bb) = b.bias_mut() {
            for v in bb.iter_mut() {
                *v = T::randn(&mut rng, 1.0);
            }
        }
        let n = b.n();
        if perms.0 {
            b = b.with_input_permutation(random_perm(n, &mut rng)).unwrap();
        }
        if perms.1 {
            b = b.with_output_permutation(random_perm(n, &mut rng)).unwrap();
        }
        // Dense W (out × in) from the reference applied to unit vectors.
        let mut wd = Array2::<C64>::zeros((out, inp));
        for j in 0..inp {
            let mut e = vec![C64::new(0.0, 0.0); inp];
            e[j] = C64::new(1.0, 0.0);
            for (i, v) in reference_row(&b, &e, false).into_iter().enumerate() {
                wd[(i, j)] = v;
            }
        }
        // x as a transposed (column-major) view, y written through a strided view.
        let xt = rand_array::<T>(inp, batch, &mut rng);
        let x = xt.t();
        let xc = x.mapv(|v| v.to_c64());
        let mut want = xc.dot(&wd.t());
        if let Some(bb) = b.bias() {
            for mut row in want.rows_mut() {
                for (u, c) in row.iter_mut().zip(bb) {
                    *u += c.to_c64();
                }
            }
        }
        let mut ybuf = Array2::<T>::zeros((batch, 2 * out));
        b.apply_into(x, ybuf.slice_mut(s![.., ..;2])).unwrap();
        let e = max_err(ybuf.slice(s![.., ..;2]), &want);
        assert!(e < tol, "{} apply: {e}", T::NAME);
        let y = b.apply(x).unwrap();
        let e = max_err(y.view(), &want);
        assert!(e < tol, "{} apply (owned): {e}", T::NAME);

        let dy = rand_array::<T>(batch, out, &mut rng);
        let dyc = dy.mapv(|v| v.to_c64());
        let want_t = dyc.dot(&wd);
        let want_h = dyc.dot(&wd.mapv(|z| z.conj()));
        let e = max_err(b.apply_transpose(dy.view()).unwrap().view(), &want_t);
        assert!(e < tol, "{} transpose: {e}", T::NAME);
        let e = max_err(b.apply_adjoint(dy.view()).unwrap().view(), &want_h);
        assert!(e < tol, "{} adjoint: {e}", T::NAME);
        let mut grads = vec![T::zero(); b.params().len()];
        let dx = b.backward(x, dy.view(), &mut grads).unwrap();
        let e = max_err(dx.view(), &want_h);
        assert!(e < tol, "{} backward dx: {e}", T::NAME);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn every_geometry_matches_reference(
            inp in 1usize..300,
            out in 1usize..600,
            nblocks in 1usize..4,
            increasing: bool,
            perms: (bool, bool),
            bias: bool,
            batch in 1usize..40,
            seed: u64,
        ) {
            let g = (inp, out, nblocks, increasing, perms, bias, batch, seed);
            check_geometry::<f32>(g.0, g.1, g.2, g.3, g.4, g.5, g.6, g.7, 1e-4);
            check_geometry::<C32>(g.0, g.1, g.2, g.3, g.4, g.5, g.6, g.7, 1e-4);
            check_geometry::<f64>(g.0, g.1, g.2, g.3, g.4, g.5, g.6, g.7, 1e-11);
            check_geometry::<C64>(g.0, g.1, g.2, g.3, g.4, g.5, g.6, g.7, 1e-11);
        }
    }

    #[test]
    fn large_geometries_match_reference() {
        check_geometry::<f32>(2048, 2048, 1, true, (false, false), true, 35, 1, 1e-4);
        check_geometry::<C32>(1024, 1024, 2, false, (true, true), true, 20, 2, 1e-4);
        check_geometry::<C32>(1000, 3000, 1, true, (true, false), false, 17, 3, 1e-4);
    }

    /// Twiddle gradients of a size-1024 map (several fused passes) against a central difference
    /// of `L = Re Σ conj(dy) ⊙ B x` along a random direction.
    fn check_twiddle_grad<T: Scalar>(seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let cfg = ButterflyConfig {
            nblocks: 2,
            ..ButterflyConfig::default()
        };
        let b = Butterfly::<T>::new(1024, 1500, cfg, &mut rng).expect("butterfly");
        let x = rand_array::<T>(21, 1024, &mut rng);
        let dy = rand_array::<T>(21, 1500, &mut rng);
        let mut grads = vec![T::zero(); b.params().len()];
        b.backward(x.view(), dy.view(), &mut grads).unwrap();
        let dir: Vec<T> = (0..grads.len()).map(|_| T::randn(&mut rng, 1.0)).collect();
        let loss = |h: f64| -> f64 {
            let mut m = b.clone();
            for (p, d) in m.params_mut().iter_mut().zip(&dir) {
                *p += d.scale_real(<T::Real as Scalar>::from_f64(h));
            }
            let y = m.apply(x.view()).unwrap();
            y.iter()
                .zip(dy.iter())
                .map(|(a, c)| (c.to_c64().conj() * a.to_c64()).re)
                .sum()
        };
        let h = 1e-5;
        let fd = (loss(h) - loss(-h)) / (2.0 * h);
        let an: f64 = grads
            .iter()
            .zip(&dir)
            .map(|(g, d)| (g.to_c64().conj() * d.to_c64()).re)
            .sum();
        assert!(
            (fd - an).abs() < 1e-6 * an.abs().max(1.0),
            "{}: fd {fd} vs {an}",
            T::NAME
        );
    }

    #[test]
    fn twiddle_gradients_at_size_1024() {
        check_twiddle_grad::<f64>(5);
        check_twiddle_grad::<C64>(6);
    }
}
