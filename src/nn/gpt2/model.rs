//! [`Gpt2`]: a compact GPT-2 with hand-written forward and backward passes.

use super::attention::{attention_backward, attention_forward, AttnShape};
use super::config::Gpt2Config;
use super::data::Batch;
use super::fast_math::exp_shifted_sum;
use super::gelu::{gelu_backward, gelu_forward};
use super::layer_norm::{layer_norm_backward, layer_norm_forward};
use crate::dense::{gemm_conj, gemm_xwt};
use crate::error::{check_len, Error, Result};
use crate::linear_map::{Differentiable, LinearMap};
use crate::nn::{Linear, LinearInit, Structure, TensorStore};
use crate::scalar::RealScalar;
use ndarray::{Array2, ArrayView2, Axis, Zip};
use rand::Rng;
use rayon::prelude::*;

/// One pre-LayerNorm transformer block: `x ← x + proj(attn(qkv(LN₁ x)))`, then
/// `x ← x + fc2(GELU(fc1(LN₂ x)))`.
#[derive(Debug, Clone, PartialEq)]
pub struct Block<T: RealScalar> {
    /// `[γ; β]` of the first layer norm.
    pub ln1: Vec<T>,
    /// `d → 3d`: queries, keys and values.
    pub qkv: Linear<T>,
    /// `d → d`: the attention's output projection.
    pub proj: Linear<T>,
    /// `[γ; β]` of the second layer norm.
    pub ln2: Vec<T>,
    /// `d → ratio·d`.
    pub fc1: Linear<T>,
    /// `ratio·d → d`.
    pub fc2: Linear<T>,
}

/// GPT-2 (Radford et al., 2019) with learned token and position embeddings, pre-LayerNorm
/// blocks of causal multi-head attention and a GELU MLP, a final layer norm and an LM head
/// tied to the token embedding: `logits = LN_f(x_L) · W_teᵀ`. The loss is the mean
/// next-token cross-entropy. Linear layers may be structured ([`Gpt2Config::mlp`],
/// [`Gpt2Config::attn`]), as the Monarch GPT-2 of Dao et al. (ICML 2022).
///
/// Parameters come in groups (see [`Gpt2::group_names`]): `wte` `(vocab, d)`, `wpe`
/// `(ctx, d)`, per block `ln_1`, `c_attn`, `c_proj`, `ln_2`, `c_fc`, `mlp.c_proj`, then `ln_f`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpt2<T: RealScalar> {
    config: Gpt2Config,
    wte: Vec<T>,
    wpe: Vec<T>,
    blocks: Vec<Block<T>>,
    lnf: Vec<T>,
}

/// Gradients of a [`Gpt2`], one buffer per parameter group.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpt2Grads<T: RealScalar> {
    pub bufs: Vec<Vec<T>>,
}

impl<T: RealScalar> Gpt2Grads<T> {
    /// Set every gradient to zero.
    pub fn zero(&mut self) {
        for b in &mut self.bufs {
            b.fill(T::zero());
        }
    }
    /// `‖g‖₂` over all groups.
    pub fn global_norm(&self) -> f64 {
        self.bufs
            .iter()
            .flat_map(|b| b.iter())
            .map(|v| {
                let x = f64_of(*v);
                x * x
            })
            .sum::<f64>()
            .sqrt()
    }
    /// Multiply every gradient by `c`.
    pub fn scale(&mut self, c: f64) {
        let c = T::from_f64(c);
        for b in &mut self.bufs {
            for v in b.iter_mut() {
                *v *= c;
            }
        }
    }
}

struct BlockCache<T> {
    ln1_out: Array2<T>,
    ln1_hat: Array2<T>,
    ln1_rstd: Vec<T>,
    qkv: Array2<T>,
    probs: Vec<T>,
    att: Array2<T>,
    xmid: Array2<T>,
    ln2_out: Array2<T>,
    ln2_hat: Array2<T>,
    ln2_rstd: Vec<T>,
    h1: Array2<T>,
    g1: Array2<T>,
}

/// Activations of one forward pass, kept for the backward pass and reused between steps of
/// the same batch shape.
pub struct Cache<T: RealScalar> {
    batch: usize,
    seq: usize,
    inputs: Vec<usize>,
    xs: Vec<Array2<T>>,
    blocks: Vec<BlockCache<T>>,
    lnf_out: Array2<T>,
    lnf_hat: Array2<T>,
    lnf_rstd: Vec<T>,
    logits: Array2<T>,
}

impl<T: RealScalar> Cache<T> {
    fn new(c: &Gpt2Config, batch: usize, seq: usize) -> Self {
        let n = batch * seq;
        let d = c.d_model;
        let z = |w| Array2::zeros((n, w));
        let sh = AttnShape {
            batch,
            seq,
            heads: c.heads,
            d,
        };
        Self {
            batch,
            seq,
            inputs: vec![0; n],
            xs: (0..=c.layers).map(|_| z(d)).collect(),
            blocks: (0..c.layers)
                .map(|_| BlockCache {
                    ln1_out: z(d),
                    ln1_hat: z(d),
                    ln1_rstd: vec![T::zero(); n],
                    qkv: z(3 * d),
                    probs: vec![T::zero(); sh.probs_len()],
                    att: z(d),
                    xmid: z(d),
                    ln2_out: z(d),
                    ln2_hat: z(d),
                    ln2_rstd: vec![T::zero(); n],
                    h1: z(c.hidden()),
                    g1: z(c.hidden()),
                })
                .collect(),
            lnf_out: z(d),
            lnf_hat: z(d),
            lnf_rstd: vec![T::zero(); n],
            logits: z(c.vocab_size),
        }
    }

    /// The logits of the last forward pass, `(batch·seq, vocab)`.
    pub fn logits(&self) -> ArrayView2<'_, T> {
        self.logits.view()
    }
}

fn normal_vec<T: RealScalar, R: Rng + ?Sized>(n: usize, std: f64, rng: &mut R) -> Vec<T> {
    (0..n).map(|_| T::randn(rng, std)).collect()
}

fn ln_init<T: RealScalar>(d: usize) -> Vec<T> {
    let mut v = vec![T::one(); d];
    v.extend(std::iter::repeat_n(T::zero(), d));
    v
}

impl<T: RealScalar> Gpt2<T> {
    /// A model with GPT-2's initialisation: embeddings and linear weights `N(0, 0.02²)` (the
    /// residual projections `c_proj` with `0.02/√(2·layers)`), structured layers at the same
    /// Frobenius norm ([`LinearInit`]), zero biases, unit layer-norm gains.
    pub fn new<R: Rng + ?Sized>(config: Gpt2Config, rng: &mut R) -> Result<Self> {
        config.validate()?;
        let (d, h) = (config.d_model, config.hidden());
        let std = 0.02;
        let proj_std = std / (2.0 * config.layers as f64).sqrt();
        let normal = |s: f64| LinearInit::Normal { std: s };
        let wte = normal_vec(config.vocab_size * d, std, rng);
        let wpe = normal_vec(config.ctx * d, std, rng);
        let mut blocks = Vec::with_capacity(config.layers);
        for _ in 0..config.layers {
            blocks.push(Block {
                ln1: ln_init(d),
                qkv: Linear::new(d, 3 * d, config.attn, true, normal(std), rng)?,
                proj: Linear::new(d, d, config.attn, true, normal(proj_std), rng)?,
                ln2: ln_init(d),
                fc1: Linear::new(d, h, config.mlp, true, normal(std), rng)?,
                fc2: Linear::new(h, d, config.mlp, true, normal(proj_std), rng)?,
            });
        }
        Ok(Self {
            config,
            wte,
            wpe,
            blocks,
            lnf: ln_init(d),
        })
    }

    /// The sizes and structures.
    pub fn config(&self) -> Gpt2Config {
        self.config
    }

    /// The blocks.
    pub fn blocks(&self) -> &[Block<T>] {
        &self.blocks
    }

    /// The token embedding `(vocab, d)` (also the LM head).
    pub fn wte(&self) -> ArrayView2<'_, T> {
        ArrayView2::from_shape((self.config.vocab_size, self.config.d_model), &self.wte)
            .expect("wte layout")
    }

    /// The position embedding `(ctx, d)`.
    pub fn wpe(&self) -> ArrayView2<'_, T> {
        ArrayView2::from_shape((self.config.ctx, self.config.d_model), &self.wpe)
            .expect("wpe layout")
    }

    /// `[γ; β]` of the final layer norm.
    pub fn ln_f(&self) -> &[T] {
        &self.lnf
    }

    /// Names of the parameter groups, in the order of [`groups`](Self::groups).
    pub fn group_names(&self) -> Vec<String> {
        let mut v = vec!["transformer.wte".to_string(), "transformer.wpe".to_string()];
        for l in 0..self.blocks.len() {
            for n in [
                "ln_1",
                "attn.c_attn",
                "attn.c_proj",
                "ln_2",
                "mlp.c_fc",
                "mlp.c_proj",
            ] {
                v.push(format!("transformer.h.{l}.{n}"));
            }
        }
        v.push("transformer.ln_f".to_string());
        v
    }

    /// The parameter groups' flat buffers.
    pub fn groups(&self) -> Vec<&[T]> {
        let mut v: Vec<&[T]> = vec![&self.wte, &self.wpe];
        for b in &self.blocks {
            v.extend([
                &b.ln1[..],
                b.qkv.params(),
                b.proj.params(),
                &b.ln2[..],
                b.fc1.params(),
                b.fc2.params(),
            ]);
        }
        v.push(&self.lnf);
        v
    }

    /// The parameter groups' flat buffers, mutable.
    pub fn groups_mut(&mut self) -> Vec<&mut [T]> {
        let mut v: Vec<&mut [T]> = vec![&mut self.wte, &mut self.wpe];
        for b in &mut self.blocks {
            v.push(&mut b.ln1);
            v.push(b.qkv.params_mut());
            v.push(b.proj.params_mut());
            v.push(&mut b.ln2);
            v.push(b.fc1.params_mut());
            v.push(b.fc2.params_mut());
        }
        v.push(&mut self.lnf);
        v
    }

    /// Per group, which entries AdamW decays: embeddings and linear weights (as
    /// [`Linear::decay_mask`]), not biases or layer-norm parameters.
    pub fn decay_masks(&self) -> Vec<Vec<bool>> {
        let mut v = vec![vec![true; self.wte.len()], vec![true; self.wpe.len()]];
        for b in &self.blocks {
            v.push(vec![false; b.ln1.len()]);
            v.push(b.qkv.decay_mask());
            v.push(b.proj.decay_mask());
            v.push(vec![false; b.ln2.len()]);
            v.push(b.fc1.decay_mask());
            v.push(b.fc2.decay_mask());
        }
        v.push(vec![false; self.lnf.len()]);
        v
    }

    /// Zero gradients shaped like the groups.
    pub fn zero_grads(&self) -> Gpt2Grads<T> {
        Gpt2Grads {
            bufs: self
                .groups()
                .iter()
                .map(|g| vec![T::zero(); g.len()])
                .collect(),
        }
    }

    /// Number of parameters (the tied head counted once).
    pub fn num_params(&self) -> usize {
        self.groups().iter().map(|g| g.len()).sum()
    }

    /// Parameters of the MLPs' `fc1` and `fc2` (weights and biases).
    pub fn mlp_params(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| b.fc1.num_params() + b.fc2.num_params())
            .sum()
    }

    /// Parameters of the attention projections `qkv` and `proj`.
    pub fn attn_params(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| b.qkv.num_params() + b.proj.num_params())
            .sum()
    }

    /// The same model with every structured layer replaced by its dense product
    /// ([`Linear::to_dense`]): reverse sparsification (Dao et al., *Monarch*, §5).
    #[allow(clippy::wrong_self_convention)]
    pub fn to_dense(&self) -> Self {
        let mut m = self.clone();
        for b in &mut m.blocks {
            b.qkv = b.qkv.to_dense();
            b.proj = b.proj.to_dense();
            b.fc1 = b.fc1.to_dense();
            b.fc2 = b.fc2.to_dense();
        }
        m.config.mlp = Structure::Dense;
        m.config.attn = Structure::Dense;
        m
    }

    /// Per group (in the order of [`groups`](Self::groups)), whether it is a structured
    /// (non-dense) linear layer.
    pub fn structured_groups(&self) -> Vec<bool> {
        let mut v = vec![false, false];
        for b in &self.blocks {
            v.extend([
                false,
                !b.qkv.structure().is_dense(),
                !b.proj.structure().is_dense(),
                false,
                !b.fc1.structure().is_dense(),
                !b.fc2.structure().is_dense(),
            ]);
        }
        v.push(false);
        v
    }

    /// Whether any linear layer is structured.
    pub fn is_structured(&self) -> bool {
        !(self.config.mlp.is_dense() && self.config.attn.is_dense())
    }

    fn check_tokens(
        &self,
        what: &'static str,
        tokens: &[usize],
        batch: usize,
        seq: usize,
    ) -> Result<()> {
        if batch == 0 {
            return Err(Error::Zero { what: "batch" });
        }
        if seq == 0 {
            return Err(Error::Zero { what: "seq" });
        }
        if seq > self.config.ctx {
            return Err(Error::InvalidArgument {
                what: "seq",
                message: format!(
                    "{seq} exceeds the model's context ctx = {}",
                    self.config.ctx
                ),
            });
        }
        check_len(what, tokens.len(), batch * seq)?;
        if let Some(&t) = tokens.iter().find(|&&t| t >= self.config.vocab_size) {
            return Err(Error::InvalidArgument {
                what,
                message: format!(
                    "token {t} is outside the vocabulary 0..{}",
                    self.config.vocab_size
                ),
            });
        }
        Ok(())
    }

    /// A cache for batches of `batch` sequences of `seq` tokens.
    pub fn cache(&self, batch: usize, seq: usize) -> Cache<T> {
        Cache::new(&self.config, batch, seq)
    }

    /// The forward pass over `tokens` (`(batch, seq)` row-major), filling `cache` (reshaped
    /// if its batch shape differs) with the activations and logits.
    pub fn forward(
        &self,
        tokens: &[usize],
        batch: usize,
        seq: usize,
        cache: &mut Cache<T>,
    ) -> Result<()> {
        self.check_tokens("tokens", tokens, batch, seq)?;
        if cache.batch != batch || cache.seq != seq || cache.blocks.len() != self.blocks.len() {
            *cache = self.cache(batch, seq);
        }
        let c = &self.config;
        let d = c.d_model;
        cache.inputs.copy_from_slice(tokens);
        let wte = self.wte();
        let wpe = self.wpe();
        Zip::indexed(cache.xs[0].rows_mut()).par_for_each(|r, mut row| {
            let tok = tokens[r];
            let t = r % seq;
            for j in 0..d {
                row[j] = wte[(tok, j)] + wpe[(t, j)];
            }
        });
        let sh = AttnShape {
            batch,
            seq,
            heads: c.heads,
            d,
        };
        for (l, blk) in self.blocks.iter().enumerate() {
            let (xs_lo, xs_hi) = cache.xs.split_at_mut(l + 1);
            let x = xs_lo[l].view();
            let xnext = &mut xs_hi[0];
            let bc = &mut cache.blocks[l];
            layer_norm_forward(
                x,
                &blk.ln1,
                bc.ln1_out.view_mut(),
                bc.ln1_hat.view_mut(),
                &mut bc.ln1_rstd,
            );
            blk.qkv.apply_into(bc.ln1_out.view(), bc.qkv.view_mut())?;
            attention_forward(sh, bc.qkv.view(), bc.att.view_mut(), &mut bc.probs);
            blk.proj.apply_into(bc.att.view(), bc.xmid.view_mut())?;
            bc.xmid += &x;
            layer_norm_forward(
                bc.xmid.view(),
                &blk.ln2,
                bc.ln2_out.view_mut(),
                bc.ln2_hat.view_mut(),
                &mut bc.ln2_rstd,
            );
            blk.fc1.apply_into(bc.ln2_out.view(), bc.h1.view_mut())?;
            gelu_forward(
                bc.h1.as_slice().expect("contiguous"),
                bc.g1.as_slice_mut().expect("contiguous"),
            );
            blk.fc2.apply_into(bc.g1.view(), xnext.view_mut())?;
            *xnext += &bc.xmid;
        }
        layer_norm_forward(
            cache.xs[c.layers].view(),
            &self.lnf,
            cache.lnf_out.view_mut(),
            cache.lnf_hat.view_mut(),
            &mut cache.lnf_rstd,
        );
        gemm_xwt(cache.lnf_out.view(), wte, cache.logits.view_mut(), false);
        Ok(())
    }

    /// Logits `(batch·seq, vocab)` for `tokens` (`(batch, seq)` row-major).
    pub fn logits(&self, tokens: &[usize], batch: usize, seq: usize) -> Result<Array2<T>> {
        let mut cache = self.cache(batch, seq);
        self.forward(tokens, batch, seq, &mut cache)?;
        Ok(cache.logits)
    }

    /// Mean next-token cross-entropy of the logits in `cache` against `targets`.
    pub fn cross_entropy(&self, cache: &Cache<T>, targets: &[usize]) -> Result<f64> {
        self.check_tokens("targets", targets, cache.batch, cache.seq)?;
        let total: f64 = cache
            .logits
            .axis_iter(Axis(0))
            .into_par_iter()
            .zip(targets.par_iter())
            .map(|(row, &t)| {
                let mx = row.iter().fold(f64::NEG_INFINITY, |m, v| m.max(f64_of(*v)));
                let lse = mx
                    + row
                        .iter()
                        .map(|v| (f64_of(*v) - mx).exp())
                        .sum::<f64>()
                        .ln();
                lse - f64_of(row[t])
            })
            .sum();
        Ok(total / targets.len() as f64)
    }

    /// Mean next-token cross-entropy on a batch (no gradients).
    pub fn loss(&self, batch: &Batch, cache: &mut Cache<T>) -> Result<f64> {
        self.forward(&batch.inputs, batch.batch, batch.seq, cache)?;
        self.cross_entropy(cache, &batch.targets)
    }

    /// The loss on `batch` and its gradient, added into `grads`.
    pub fn forward_backward(
        &self,
        batch: &Batch,
        cache: &mut Cache<T>,
        grads: &mut Gpt2Grads<T>,
    ) -> Result<f64> {
        self.forward(&batch.inputs, batch.batch, batch.seq, cache)?;
        let loss = self.cross_entropy(cache, &batch.targets)?;
        self.backward(cache, &batch.targets, grads)?;
        Ok(loss)
    }

    /// Back-propagate the mean cross-entropy against `targets` through the activations of the
    /// last [`forward`](Self::forward) (which this consumes: the logits are overwritten),
    /// adding the parameter gradients into `grads`.
    pub fn backward(
        &self,
        cache: &mut Cache<T>,
        targets: &[usize],
        grads: &mut Gpt2Grads<T>,
    ) -> Result<()> {
        self.check_tokens("targets", targets, cache.batch, cache.seq)?;
        let groups = self.groups();
        check_len("grads groups", grads.bufs.len(), groups.len())?;
        for (g, p) in grads.bufs.iter().zip(&groups) {
            check_len("grads", g.len(), p.len())?;
        }
        let c = &self.config;
        let (d, n) = (c.d_model, cache.batch * cache.seq);
        let seq = cache.seq;
        let inv_n = T::from_f64(1.0 / n as f64);
        // dlogits = (softmax − onehot) / N, in place.
        cache
            .logits
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(targets.par_iter())
            .for_each(|(mut row, &t)| {
                let mx = row.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
                let sum = exp_shifted_sum(row.as_slice_mut().expect("contiguous row"), mx);
                let inv = inv_n / sum;
                for v in row.iter_mut() {
                    *v *= inv;
                }
                row[t] -= inv_n;
            });
        let (g_wte, rest) = grads.bufs.split_first_mut().expect("groups");
        let (g_wpe, rest) = rest.split_first_mut().expect("groups");
        let (g_lnf, g_blocks) = rest.split_last_mut().expect("groups");
        // dwte += dlogitsᵀ · lnf_out ; dh = dlogits · wte
        {
            let gw = ndarray::ArrayViewMut2::from_shape((c.vocab_size, d), &mut g_wte[..])
                .expect("wte layout");
            gemm_conj(
                cache.logits.t(),
                false,
                cache.lnf_out.view(),
                false,
                gw,
                true,
            );
        }
        let mut dh = Array2::<T>::zeros((n, d));
        gemm_conj(
            cache.logits.view(),
            false,
            self.wte(),
            false,
            dh.view_mut(),
            false,
        );
        let mut dx = Array2::<T>::zeros((n, d));
        layer_norm_backward(
            dh.view(),
            cache.lnf_hat.view(),
            &cache.lnf_rstd,
            &self.lnf,
            g_lnf,
            dx.view_mut(),
        );
        let sh = AttnShape {
            batch: cache.batch,
            seq,
            heads: c.heads,
            d,
        };
        let mut dqkv = Array2::<T>::zeros((n, 3 * d));
        let mut tmp = Array2::<T>::zeros((n, d));
        for (l, blk) in self.blocks.iter().enumerate().rev() {
            let bc = &cache.blocks[l];
            let gb = &mut g_blocks[6 * l..6 * l + 6];
            // MLP: x_{l+1} = xmid + fc2(gelu(fc1(LN₂ xmid)))
            let mut dg1 = blk.fc2.backward(bc.g1.view(), dx.view(), &mut gb[5])?;
            gelu_backward(
                bc.h1.as_slice().expect("contiguous"),
                dg1.as_slice_mut().expect("contiguous"),
            );
            let dln2 = blk
                .fc1
                .backward(bc.ln2_out.view(), dg1.view(), &mut gb[4])?;
            layer_norm_backward(
                dln2.view(),
                bc.ln2_hat.view(),
                &bc.ln2_rstd,
                &blk.ln2,
                &mut gb[3],
                tmp.view_mut(),
            );
            dx += &tmp;
            // Attention: xmid = x_l + proj(attn(qkv(LN₁ x_l)))
            let datt = blk.proj.backward(bc.att.view(), dx.view(), &mut gb[2])?;
            attention_backward(sh, bc.qkv.view(), &bc.probs, datt.view(), dqkv.view_mut());
            let dln1 = blk
                .qkv
                .backward(bc.ln1_out.view(), dqkv.view(), &mut gb[1])?;
            layer_norm_backward(
                dln1.view(),
                bc.ln1_hat.view(),
                &bc.ln1_rstd,
                &blk.ln1,
                &mut gb[0],
                tmp.view_mut(),
            );
            dx += &tmp;
        }
        for (r, row) in dx.axis_iter(Axis(0)).enumerate() {
            let tok = cache.inputs[r];
            let t = r % seq;
            let (a, b) = (
                &mut g_wte[tok * d..(tok + 1) * d],
                &mut g_wpe[t * d..(t + 1) * d],
            );
            for j in 0..d {
                a[j] += row[j];
                b[j] += row[j];
            }
        }
        Ok(())
    }

    /// Continue `prompt` by `count` tokens sampled from `softmax(logits / temperature)` (greedy
    /// when `temperature` is 0), the context cut to the last `ctx` tokens.
    pub fn generate<R: Rng + ?Sized>(
        &self,
        prompt: &[usize],
        count: usize,
        temperature: f64,
        rng: &mut R,
    ) -> Result<Vec<usize>> {
        if prompt.is_empty() {
            return Err(Error::Zero {
                what: "prompt length",
            });
        }
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(Error::InvalidArgument {
                what: "temperature",
                message: format!("expected a finite value ≥ 0, got {temperature}"),
            });
        }
        let mut toks = prompt.to_vec();
        let mut cache = self.cache(1, 1);
        for _ in 0..count {
            let start = toks.len().saturating_sub(self.config.ctx);
            let window = &toks[start..];
            self.forward(window, 1, window.len(), &mut cache)?;
            let last = cache.logits.row(window.len() - 1);
            let next = if temperature == 0.0 {
                last.iter()
                    .enumerate()
                    .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, v)| {
                        if f64_of(*v) > bv {
                            (i, f64_of(*v))
                        } else {
                            (bi, bv)
                        }
                    })
                    .0
            } else {
                let mx = last
                    .iter()
                    .fold(f64::NEG_INFINITY, |m, v| m.max(f64_of(*v)));
                let w: Vec<f64> = last
                    .iter()
                    .map(|v| ((f64_of(*v) - mx) / temperature).exp())
                    .collect();
                let total: f64 = w.iter().sum();
                let mut u = rng.random_range(0.0..total);
                let mut pick = w.len() - 1;
                for (i, &wi) in w.iter().enumerate() {
                    if u < wi {
                        pick = i;
                        break;
                    }
                    u -= wi;
                }
                pick
            };
            toks.push(next);
        }
        Ok(toks[prompt.len()..].to_vec())
    }

    /// Store every tensor under nanoGPT's names (`transformer.wte.weight`,
    /// `transformer.h.0.attn.c_attn.weight`, … with `nn.Linear`'s `(out, in)` layout for dense
    /// layers; structured layers as [`Linear::save_to`]) and the sizes as metadata
    /// `gpt2.config`.
    pub fn save_to(&self, store: &mut TensorStore) -> Result<()> {
        let c = &self.config;
        let d = c.d_model;
        store.insert("transformer.wte.weight", &[c.vocab_size, d], &self.wte)?;
        store.insert("transformer.wpe.weight", &[c.ctx, d], &self.wpe)?;
        let ln = |store: &mut TensorStore, name: &str, p: &[T]| -> Result<()> {
            store.insert(&format!("{name}.weight"), &[d], &p[..d])?;
            store.insert(&format!("{name}.bias"), &[d], &p[d..])
        };
        for (l, b) in self.blocks.iter().enumerate() {
            let p = format!("transformer.h.{l}");
            ln(store, &format!("{p}.ln_1"), &b.ln1)?;
            b.qkv.save_to(store, &format!("{p}.attn.c_attn"))?;
            b.proj.save_to(store, &format!("{p}.attn.c_proj"))?;
            ln(store, &format!("{p}.ln_2"), &b.ln2)?;
            b.fc1.save_to(store, &format!("{p}.mlp.c_fc"))?;
            b.fc2.save_to(store, &format!("{p}.mlp.c_proj"))?;
        }
        ln(store, "transformer.ln_f", &self.lnf)?;
        store.set_metadata("gpt2.config", c.dims_string());
        Ok(())
    }

    /// A model read from a store written by [`save_to`](Self::save_to); each linear layer keeps
    /// the structure it was saved with.
    pub fn load_from(store: &TensorStore) -> Result<Self> {
        let dims = store.require_metadata("gpt2.config")?;
        let mut config = Gpt2Config::default().with_dims_string(dims)?;
        let d = config.d_model;
        let get_ln = |name: &str| -> Result<Vec<T>> {
            let mut v: Vec<T> = store.get(&format!("{name}.weight"), &[d])?;
            v.extend(store.get::<T>(&format!("{name}.bias"), &[d])?);
            Ok(v)
        };
        let wte = store.get("transformer.wte.weight", &[config.vocab_size, d])?;
        let wpe = store.get("transformer.wpe.weight", &[config.ctx, d])?;
        let mut blocks = Vec::with_capacity(config.layers);
        let h = config.hidden();
        for l in 0..config.layers {
            let p = format!("transformer.h.{l}");
            let lin = |name: &str, i: usize, o: usize| -> Result<Linear<T>> {
                let full = format!("{p}.{name}");
                let layer = Linear::<T>::load_from(store, &full)?;
                if layer.in_features() != i || layer.out_features() != o {
                    return Err(Error::Shape {
                        what: "checkpoint layer",
                        expected: format!("`{full}` {i} → {o}"),
                        got: format!("{} → {}", layer.in_features(), layer.out_features()),
                    });
                }
                Ok(layer)
            };
            blocks.push(Block {
                ln1: get_ln(&format!("{p}.ln_1"))?,
                qkv: lin("attn.c_attn", d, 3 * d)?,
                proj: lin("attn.c_proj", d, d)?,
                ln2: get_ln(&format!("{p}.ln_2"))?,
                fc1: lin("mlp.c_fc", d, h)?,
                fc2: lin("mlp.c_proj", h, d)?,
            });
        }
        if let Some(b) = blocks.first() {
            config.mlp = b.fc1.structure();
            config.attn = b.qkv.structure();
        }
        let lnf = get_ln("transformer.ln_f")?;
        config.validate()?;
        Ok(Self {
            config,
            wte,
            wpe,
            blocks,
            lnf,
        })
    }

    /// [`load_from`](Self::load_from), refusing a checkpoint whose sizes differ from
    /// `expected`'s (its structures may differ: a checkpoint taken after the switch to dense
    /// layers resumes dense).
    pub fn load_matching(store: &TensorStore, expected: &Gpt2Config) -> Result<Self> {
        let dims = store.require_metadata("gpt2.config")?;
        let want = expected.dims_string();
        if dims != want {
            return Err(Error::InvalidArgument {
                what: "checkpoint",
                message: format!("was saved from a model of another shape: it has `{dims}`, this run expects `{want}`"),
            });
        }
        Self::load_from(store)
    }

    /// Save to a safetensors file (atomically).
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let mut store = TensorStore::new();
        self.save_to(&mut store)?;
        store.save(path)
    }

    /// Load from a safetensors file written by [`save`](Self::save).
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::load_from(&TensorStore::load(path)?)
    }
}

#[inline]
fn f64_of<T: RealScalar>(v: T) -> f64 {
    RealScalar::to_f64(v)
}
