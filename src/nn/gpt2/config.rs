//! [`Gpt2Config`]: the sizes and layer structures of a [`Gpt2`](super::Gpt2).

use crate::error::{Error, Result};
use crate::nn::Structure;

/// Sizes of a GPT-2 (Radford et al., *Language Models are Unsupervised Multitask Learners*,
/// 2019) and the [`Structure`] of its MLP (`fc1`, `fc2`) and attention (`qkv`, `proj`)
/// projections, as in Dao et al., *Monarch* (ICML 2022), §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gpt2Config {
    /// Number of token ids (256 for bytes).
    pub vocab_size: usize,
    /// Longest sequence (number of learned positions).
    pub ctx: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Attention heads (`d_model` must be a multiple).
    pub heads: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Hidden width of the MLP as a multiple of `d_model` (4 in GPT-2).
    pub mlp_ratio: usize,
    /// Structure of `fc1` (`d → ratio·d`) and `fc2` (`ratio·d → d`).
    pub mlp: Structure,
    /// Structure of the attention's `qkv` (`d → 3d`) and output `proj` (`d → d`).
    pub attn: Structure,
}

impl Default for Gpt2Config {
    fn default() -> Self {
        Self {
            vocab_size: 256,
            ctx: 128,
            d_model: 256,
            heads: 4,
            layers: 4,
            mlp_ratio: 4,
            mlp: Structure::Dense,
            attn: Structure::Dense,
        }
    }
}

impl Gpt2Config {
    /// Check every size and that the structures fit their layers, naming the first problem.
    pub fn validate(&self) -> Result<()> {
        for (what, v) in [
            ("vocab_size", self.vocab_size),
            ("ctx", self.ctx),
            ("d_model", self.d_model),
            ("heads", self.heads),
            ("layers", self.layers),
            ("mlp_ratio", self.mlp_ratio),
        ] {
            if v == 0 {
                return Err(Error::Zero { what });
            }
        }
        if !self.d_model.is_multiple_of(self.heads) {
            return Err(Error::InvalidArgument {
                what: "heads",
                message: format!(
                    "{} heads do not divide d_model = {}",
                    self.heads, self.d_model
                ),
            });
        }
        let (d, h) = (self.d_model, self.hidden());
        self.mlp.validate(d, h)?;
        self.mlp.validate(h, d)?;
        self.attn.validate(d, 3 * d)?;
        self.attn.validate(d, d)?;
        Ok(())
    }

    /// Hidden width of the MLP.
    pub fn hidden(&self) -> usize {
        self.mlp_ratio * self.d_model
    }

    /// The sizes as `key=value` pairs separated by `;` (checkpoint metadata).
    pub fn dims_string(&self) -> String {
        format!(
            "vocab_size={};ctx={};d_model={};heads={};layers={};mlp_ratio={}",
            self.vocab_size, self.ctx, self.d_model, self.heads, self.layers, self.mlp_ratio
        )
    }

    /// Parse [`dims_string`](Self::dims_string) (structures left as in `self`).
    pub fn with_dims_string(mut self, s: &str) -> Result<Self> {
        let bad = |m: String| Error::InvalidArgument {
            what: "checkpoint",
            message: m,
        };
        for kv in s.split(';') {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(format!("bad config entry `{kv}`")))?;
            let v: usize = v
                .parse()
                .map_err(|_| bad(format!("bad config value `{kv}`")))?;
            match k {
                "vocab_size" => self.vocab_size = v,
                "ctx" => self.ctx = v,
                "d_model" => self.d_model = v,
                "heads" => self.heads = v,
                "layers" => self.layers = v,
                "mlp_ratio" => self.mlp_ratio = v,
                _ => return Err(bad(format!("unknown config key `{k}`"))),
            }
        }
        Ok(self)
    }
}
