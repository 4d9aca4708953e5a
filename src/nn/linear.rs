//! [`Linear`]: an affine layer `y = x Wᵀ + b` whose weight is any [`Structure`].

use super::init::{scale_to_norm, LinearInit};
use super::safetensors_io::TensorStore;
use super::structure::Structure;
use crate::butterfly::{Butterfly, ButterflyConfig, Init};
use crate::dense::Dense;
use crate::error::{check_len, Error, Result};
use crate::ldr::{Ldr, LdrConfig};
use crate::learn::{fit, FitOptions};
use crate::linear_map::{Differentiable, LinearMap};
use crate::low_rank::LowRank;
use crate::monarch::{BlockDiagonal, Monarch, MonarchShape};
use crate::pixelated_butterfly::{PixelatedButterfly, PixelflyConfig};
use crate::scalar::{RealScalar, Scalar};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::ops::Range;

#[derive(Debug, Clone, PartialEq)]
enum Inner<T: Scalar> {
    Dense(Dense<T>),
    Monarch(Monarch<T>),
    BlockDiagonal(BlockDiagonal<T>),
    Butterfly(Butterfly<T>),
    LowRank(LowRank<T>),
    Pixelfly(PixelatedButterfly<T>),
    Ldr(Ldr<T>),
}

macro_rules! dispatch {
    ($inner:expr, $m:ident => $e:expr) => {
        match $inner {
            Inner::Dense($m) => $e,
            Inner::Monarch($m) => $e,
            Inner::BlockDiagonal($m) => $e,
            Inner::Butterfly($m) => $e,
            Inner::LowRank($m) => $e,
            Inner::Pixelfly($m) => $e,
            Inner::Ldr($m) => $e,
        }
    };
}

/// A named tensor of a layer: its name suffix, logical shape and range in the flat parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Suffix after the layer's prefix (`weight`, `blkdiag1`, `twiddle`, …).
    pub name: &'static str,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Where its entries live in [`Differentiable::params`].
    pub range: Range<usize>,
}

/// An affine layer `y = x Wᵀ + b` (PyTorch's `nn.Linear`) whose weight `W` (shape
/// `(out, in)`) is the structured matrix named by its [`Structure`] — dense, Monarch
/// (Dao et al., ICML 2022), block-diagonal, butterfly (Dao et al., ICML 2019), low-rank,
/// Pixelated Butterfly (Chen et al., ICLR 2022) or low displacement rank (Thomas et al.,
/// NeurIPS 2018).
///
/// Parameters: the structure's own flat buffer (its weight parameters, laid out as its type
/// documents), then the bias if any. [`Linear::to_dense`] (the inherent method) returns the
/// dense *layer* `x ↦ x Wᵀ + b` (reverse sparsification); the trait method
/// [`LinearMap::to_dense`] returns the matrix `W`, as does [`Linear::weight`].
#[derive(Debug, Clone, PartialEq)]
pub struct Linear<T: Scalar> {
    structure: Structure,
    in_features: usize,
    out_features: usize,
    has_bias: bool,
    inner: Inner<T>,
}

/// The structure built with its own random initialisation (later rescaled by
/// [`Linear::new`]).
fn build<T: Scalar, R: Rng + ?Sized>(
    in_features: usize,
    out_features: usize,
    structure: Structure,
    bias: bool,
    rng: &mut R,
) -> Result<Inner<T>> {
    structure.validate(in_features, out_features)?;
    Ok(match structure {
        Structure::Dense => Inner::Dense(Dense::random(in_features, out_features, bias, rng)?),
        Structure::Monarch { nblocks } => {
            let shape = MonarchShape::for_layer(in_features, out_features, nblocks)?;
            Inner::Monarch(Monarch::random(shape, bias, rng)?)
        }
        Structure::BlockDiagonal { nblocks } => Inner::BlockDiagonal(BlockDiagonal::random(
            nblocks,
            out_features / nblocks,
            in_features / nblocks,
            bias,
            rng,
        )?),
        Structure::Butterfly { nblocks } => Inner::Butterfly(Butterfly::new(
            in_features,
            out_features,
            ButterflyConfig {
                nblocks,
                increasing_stride: true,
                init: Init::Randn,
                bias,
            },
            rng,
        )?),
        Structure::LowRank { rank } => {
            Inner::LowRank(LowRank::random(in_features, out_features, rank, bias, rng)?)
        }
        Structure::PixelatedButterfly {
            nblocks,
            levels,
            rank,
        } => Inner::Pixelfly(PixelatedButterfly::random(
            in_features,
            out_features,
            PixelflyConfig {
                nblocks,
                levels,
                rank,
                bias,
            },
            rng,
        )?),
        Structure::Ldr { class, rank } => Inner::Ldr(Ldr::new(
            in_features,
            out_features,
            LdrConfig { class, rank, bias },
            rng,
        )?),
    })
}

impl<T: Scalar> Linear<T> {
    /// A layer `in_features → out_features` with weight structure `structure`, a zero bias if
    /// `bias`, and weights drawn per [`LinearInit`]: every structure starts with the Frobenius
    /// norm `‖W‖_F² = out·in·σ²` that a dense layer of entry variance `σ²` has in expectation.
    pub fn new<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        structure: Structure,
        bias: bool,
        init: LinearInit,
        rng: &mut R,
    ) -> Result<Self> {
        init.validate()?;
        let mut inner = build(in_features, out_features, structure, bias, rng)?;
        let var = init.entry_variance(in_features);
        if let (Inner::Dense(d), LinearInit::Normal { std }) = (&mut inner, init) {
            let nw = in_features * out_features;
            for w in &mut d.params_mut()[..nw] {
                *w = T::randn(rng, std);
            }
        } else if !matches!(inner, Inner::Dense(_)) {
            let target = ((in_features * out_features) as f64 * var).sqrt();
            let w = dispatch!(&inner, m => m.to_dense());
            let group = linear_group(&inner);
            dispatch!(&mut inner, m => scale_to_norm(m.params_mut(), &group, w.view(), target));
        }
        Ok(Self {
            structure,
            in_features,
            out_features,
            has_bias: bias,
            inner,
        })
    }

    /// A layer of the given structure holding the flat parameters `params` (laid out as
    /// [`Linear::tensor_specs`] describes; the bias last).
    pub fn from_params(
        in_features: usize,
        out_features: usize,
        structure: Structure,
        bias: bool,
        params: &[T],
    ) -> Result<Self> {
        let mut rng = StdRng::seed_from_u64(0);
        let inner = build::<T, _>(in_features, out_features, structure, bias, &mut rng)?;
        let mut me = Self {
            structure,
            in_features,
            out_features,
            has_bias: bias,
            inner,
        };
        check_len("params", params.len(), me.params().len())?;
        me.params_mut().copy_from_slice(params);
        Ok(me)
    }

    /// The structure of `W`.
    pub fn structure(&self) -> Structure {
        self.structure
    }

    /// Whether the layer has a bias.
    pub fn has_bias(&self) -> bool {
        self.has_bias
    }

    /// The bias `b`, if any.
    pub fn bias(&self) -> Option<&[T]> {
        let p = self.params();
        self.has_bias.then(|| &p[p.len() - self.out_features..])
    }

    /// The matrix `W`, shape `(out, in)` (same as [`LinearMap::to_dense`]).
    pub fn weight(&self) -> Array2<T> {
        dispatch!(&self.inner, m => m.to_dense())
    }

    /// Number of parameters of `W` (without the bias).
    pub fn num_weight_params(&self) -> usize {
        self.params().len() - if self.has_bias { self.out_features } else { 0 }
    }

    /// The dense layer with the same map `x ↦ x Wᵀ + b` (reverse sparsification: train
    /// structured, finish dense; Dao et al., *Monarch*, §5).
    #[allow(clippy::wrong_self_convention)]
    pub fn to_dense(&self) -> Linear<T> {
        let dense = Dense::new(self.weight(), self.bias().map(<[T]>::to_vec))
            .expect("a structure's dense matrix has its layer's shape");
        Linear {
            structure: Structure::Dense,
            in_features: self.in_features,
            out_features: self.out_features,
            has_bias: self.has_bias,
            inner: Inner::Dense(dense),
        }
    }

    /// The layer of structure `structure` closest to the dense layer `(weight, bias)`; see
    /// [`Linear::project`] (Butterfly and LDR weights are fitted with
    /// `FitOptions { steps: 500, lr: 1e-2, .. }`).
    pub fn from_dense(
        weight: ArrayView2<T>,
        bias: Option<&[T]>,
        structure: Structure,
    ) -> Result<Self> {
        let opts = FitOptions {
            steps: 500,
            lr: 1e-2,
            ..FitOptions::default()
        };
        Ok(Self::project(weight, bias, structure, &opts)?.0)
    }

    /// Project the dense weight `weight` (shape `(out, in)`) onto `structure` (dense-to-sparse
    /// fine-tuning) and keep `bias` as is; returns the layer and the relative error
    /// `‖W − weight‖_F / ‖weight‖_F`.
    ///
    /// Monarch (closed form, Dao et al. 2022, Theorem 1), block-diagonal (the diagonal blocks),
    /// low-rank (truncated SVD) are optimal; Pixelated Butterfly alternates projections (a local
    /// optimum); Butterfly and LDR have no closed form and are fitted by gradient descent with
    /// `fit` (the [`crate::learn::fit`] options), starting from the init whose Frobenius norm
    /// matches `weight`'s.
    pub fn project(
        weight: ArrayView2<T>,
        bias: Option<&[T]>,
        structure: Structure,
        fit_opts: &FitOptions,
    ) -> Result<(Self, f64)> {
        let (out_features, in_features) = weight.dim();
        structure.validate(in_features, out_features)?;
        if let Some(b) = bias {
            check_len("bias", b.len(), out_features)?;
        }
        if weight.iter().any(|v| v.is_nan_value()) {
            return Err(Error::Numerical("weight has NaN entries".into()));
        }
        let norm = weight
            .iter()
            .map(|v| v.modulus_sqr().to_f64())
            .sum::<f64>()
            .sqrt();
        let weights: Vec<T> = match structure {
            Structure::Dense => weight.iter().copied().collect(),
            Structure::Monarch { nblocks } => {
                let shape = MonarchShape::for_layer(in_features, out_features, nblocks)?;
                let (m, _) = Monarch::project(weight, shape)?;
                m.params().to_vec()
            }
            Structure::BlockDiagonal { nblocks } => {
                BlockDiagonal::project(weight, nblocks)?.0.params().to_vec()
            }
            Structure::LowRank { rank } => LowRank::project(weight, rank)?.0.params().to_vec(),
            Structure::PixelatedButterfly {
                nblocks,
                levels,
                rank,
            } => {
                let cfg = PixelflyConfig {
                    nblocks,
                    levels,
                    rank,
                    bias: false,
                };
                PixelatedButterfly::project(weight, cfg, 10)?
                    .0
                    .params()
                    .to_vec()
            }
            Structure::Butterfly { .. } | Structure::Ldr { .. } => {
                let std = norm / ((in_features * out_features) as f64).sqrt();
                let init = if std > 0.0 {
                    LinearInit::Normal { std }
                } else {
                    LinearInit::Default
                };
                let mut rng = StdRng::seed_from_u64(0);
                let mut start =
                    Self::new(in_features, out_features, structure, false, init, &mut rng)?;
                dispatch!(&mut start.inner, m => fit(m, weight, fit_opts))?;
                start.params().to_vec()
            }
        };
        let mut params = weights;
        if let Some(b) = bias {
            params.extend_from_slice(b);
        }
        let layer = Self::from_params(
            in_features,
            out_features,
            structure,
            bias.is_some(),
            &params,
        )?;
        let w = layer.weight();
        let err = w
            .iter()
            .zip(weight.iter())
            .map(|(&a, &b)| (a - b).modulus_sqr().to_f64())
            .sum::<f64>()
            .sqrt();
        Ok((layer, if norm > 0.0 { err / norm } else { err }))
    }

    /// The named tensors of the layer, covering the flat parameters in order: for `Dense`
    /// `weight (out, in)`; `Monarch` `blkdiag1 (k, q, p)`, `blkdiag2 (l, s, r)`;
    /// `BlockDiagonal` `weight (nblocks, out_blk, in_blk)`; `Butterfly`
    /// `twiddle (nstacks, nblocks, log2 n, n/2, 2, 2)`; `LowRank` `u (out, r)`, `v (in, r)`;
    /// `PixelatedButterfly` `blocks (nnz_blocks, out_blk, in_blk)`, `u`, `v`; `Ldr`
    /// `g (r, n)`, `h (r, n)`, `operators (len)`; then `bias (out)`. Empty tensors are left out.
    pub fn tensor_specs(&self) -> Vec<TensorSpec> {
        let mut specs = Vec::new();
        let mut at = 0;
        let mut push = |name: &'static str, shape: Vec<usize>| {
            let len: usize = shape.iter().product();
            if len > 0 {
                specs.push(TensorSpec {
                    name,
                    shape,
                    range: at..at + len,
                });
            }
            at += len;
        };
        let (i, o) = (self.in_features, self.out_features);
        match &self.inner {
            Inner::Dense(_) => push("weight", vec![o, i]),
            Inner::Monarch(m) => {
                let s = m.shape();
                push("blkdiag1", vec![s.k, s.q, s.p]);
                push("blkdiag2", vec![s.l, s.s, s.r]);
            }
            Inner::BlockDiagonal(b) => {
                let (ob, ib) = b.block_shape();
                push("weight", vec![b.nblocks(), ob, ib]);
            }
            Inner::Butterfly(b) => push(
                "twiddle",
                vec![b.nstacks(), b.nblocks(), b.log_n(), b.n() / 2, 2, 2],
            ),
            Inner::LowRank(l) => {
                push("u", vec![o, l.rank()]);
                push("v", vec![i, l.rank()]);
            }
            Inner::Pixelfly(p) => {
                let c = p.config();
                let nnz: usize = p.pattern().iter().map(Vec::len).sum();
                push("blocks", vec![nnz, o / c.nblocks, i / c.nblocks]);
                push("u", vec![o, c.rank]);
                push("v", vec![i, c.rank]);
            }
            Inner::Ldr(l) => {
                push("g", vec![l.rank(), l.n()]);
                push("h", vec![l.rank(), l.n()]);
                push("operators", vec![l.operator_params().len()]);
            }
        }
        if self.has_bias {
            push("bias", vec![o]);
        }
        specs
    }

    /// Which parameters AdamW should decay: the weights of `W`, except butterfly twiddles
    /// (a product of `nblocks·log₂ n` factors that decay would shrink geometrically) and LDR
    /// operator entries; never the bias.
    pub fn decay_mask(&self) -> Vec<bool> {
        let mut mask = vec![false; self.params().len()];
        for spec in self.tensor_specs() {
            let decay = !matches!(spec.name, "bias" | "twiddle" | "operators");
            mask[spec.range].fill(decay);
        }
        mask
    }

    /// Store the layer's tensors as `{prefix}.{name}` and its structure, sizes and bias flag as
    /// metadata `{prefix}.structure` = `monarch:4`, `{prefix}.features` = `in,out,bias`.
    pub fn save_to(&self, store: &mut TensorStore, prefix: &str) -> Result<()> {
        let p = self.params();
        for spec in self.tensor_specs() {
            store.insert(
                &join(prefix, spec.name),
                &spec.shape,
                &p[spec.range.clone()],
            )?;
        }
        store.set_metadata(&join(prefix, "structure"), self.structure.to_string());
        store.set_metadata(
            &join(prefix, "features"),
            format!(
                "{},{},{}",
                self.in_features, self.out_features, self.has_bias as u8
            ),
        );
        Ok(())
    }

    /// The layer stored under `prefix` by [`save_to`](Self::save_to); every tensor must be
    /// present with the shape the recorded structure implies.
    pub fn load_from(store: &TensorStore, prefix: &str) -> Result<Self> {
        let structure: Structure = store
            .require_metadata(&join(prefix, "structure"))?
            .parse()?;
        let features = store.require_metadata(&join(prefix, "features"))?;
        let parsed: Vec<usize> = features
            .split(',')
            .map(|s| s.trim().parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::InvalidArgument {
                what: "checkpoint",
                message: format!(
                    "metadata `{}` = `{features}` is not `in,out,bias`",
                    join(prefix, "features")
                ),
            })?;
        if parsed.len() != 3 || parsed[2] > 1 {
            return Err(Error::InvalidArgument {
                what: "checkpoint",
                message: format!(
                    "metadata `{}` = `{features}` is not `in,out,bias`",
                    join(prefix, "features")
                ),
            });
        }
        let (i, o, bias) = (parsed[0], parsed[1], parsed[2] == 1);
        let mut rng = StdRng::seed_from_u64(0);
        let inner = build::<T, _>(i, o, structure, bias, &mut rng)?;
        let mut me = Self {
            structure,
            in_features: i,
            out_features: o,
            has_bias: bias,
            inner,
        };
        for spec in me.tensor_specs() {
            let data: Vec<T> = store.get(&join(prefix, spec.name), &spec.shape)?;
            me.params_mut()[spec.range].copy_from_slice(&data);
        }
        Ok(me)
    }

    /// Save the layer alone to a safetensors file (tensor names without prefix).
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let mut store = TensorStore::new();
        self.save_to(&mut store, "")?;
        store.save(path)
    }

    /// Load a layer saved by [`save`](Self::save).
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::load_from(&TensorStore::load(path)?, "")
    }
}

/// Parameter ranges in which `W` is linear (one factor of a product, or every term of a sum),
/// so that scaling them by `c` scales `W` by `c`.
#[allow(clippy::single_range_in_vec_init)]
fn linear_group<T: Scalar>(inner: &Inner<T>) -> Vec<Range<usize>> {
    match inner {
        Inner::Dense(d) => vec![0..d.in_features() * d.out_features()],
        Inner::Monarch(m) => {
            let (n1, n2) = m.shape().weight_lens();
            vec![n1..n1 + n2]
        }
        Inner::BlockDiagonal(b) => vec![0..b.blocks().len()],
        Inner::Butterfly(b) => {
            // The last level of the last block of every stack.
            let level = b.n() / 2 * 4;
            if b.log_n() == 0 {
                return vec![];
            }
            (0..b.nstacks())
                .map(|st| {
                    let start =
                        ((st * b.nblocks() + b.nblocks() - 1) * b.log_n() + b.log_n() - 1) * level;
                    start..start + level
                })
                .collect()
        }
        Inner::LowRank(l) => vec![0..l.out_features() * l.rank()],
        Inner::Pixelfly(p) => {
            let c = p.config();
            let nnz: usize = p.pattern().iter().map(Vec::len).sum();
            let blocks = nnz * (p.out_features() / c.nblocks) * (p.in_features() / c.nblocks);
            vec![0..blocks + p.out_features() * c.rank]
        }
        Inner::Ldr(l) => vec![0..l.rank() * l.n()],
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

impl<T: Scalar> LinearMap<T> for Linear<T> {
    fn in_features(&self) -> usize {
        self.in_features
    }
    fn out_features(&self) -> usize {
        self.out_features
    }
    fn apply_into(&self, x: ArrayView2<T>, y: ArrayViewMut2<T>) -> Result<()> {
        dispatch!(&self.inner, m => m.apply_into(x, y))
    }
    fn apply(&self, x: ArrayView2<T>) -> Result<Array2<T>> {
        dispatch!(&self.inner, m => m.apply(x))
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        dispatch!(&self.inner, m => m.apply_transpose(y))
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        dispatch!(&self.inner, m => m.apply_adjoint(y))
    }
    fn to_dense(&self) -> Array2<T> {
        self.weight()
    }
    fn num_params(&self) -> usize {
        self.params().len()
    }
    fn flops_per_row(&self) -> usize {
        dispatch!(&self.inner, m => m.flops_per_row())
    }
}

impl<T: Scalar> Differentiable<T> for Linear<T> {
    fn backward(&self, x: ArrayView2<T>, dy: ArrayView2<T>, grads: &mut [T]) -> Result<Array2<T>> {
        dispatch!(&self.inner, m => m.backward(x, dy, grads))
    }
    fn params(&self) -> &[T] {
        dispatch!(&self.inner, m => m.params())
    }
    fn params_mut(&mut self) -> &mut [T] {
        dispatch!(&mut self.inner, m => m.params_mut())
    }
}
