//! [`MonarchShape`]: the block geometry of a two-factor Monarch product.

use crate::error::{check_nonzero, Error, Result};

/// The geometry of `y = P_out · BD(w2) · P_mid · BD(w1) · x` (Dao et al., *Monarch*, 2022):
///
/// - `w1`: `k` blocks of shape `(q, p)`, acting on contiguous input chunks (`k·p` inputs);
/// - the `k·q` intermediate values are read by the second factor with stride `l`: block `j` of
///   `w2` takes intermediate entries `j, j + l, j + 2l, …` (`r` of them, so `l·r = k·q`);
/// - `w2`: `l` blocks of shape `(s, r)`, whose outputs are interleaved: output `i·l + j` is entry
///   `i` of block `j` (`l·s` outputs).
///
/// The square Monarch matrix `M = P L Pᵀ R` with `√n × √n` blocks is `k = l = q = p = r = s = √n`.
/// `in_features ≤ k·p` and `out_features ≤ l·s` allow ragged sizes: the input is zero-padded
/// and the output truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonarchShape {
    pub k: usize,
    pub q: usize,
    pub p: usize,
    pub l: usize,
    pub s: usize,
    pub r: usize,
    pub in_features: usize,
    pub out_features: usize,
}

impl MonarchShape {
    /// The general shape; `k·q` must equal `l·r`. Features are `k·p` in and `l·s` out.
    pub fn new(k: usize, q: usize, p: usize, l: usize, s: usize, r: usize) -> Result<Self> {
        let shape = Self {
            k,
            q,
            p,
            l,
            s,
            r,
            in_features: k * p,
            out_features: l * s,
        };
        shape.validate()?;
        Ok(shape)
    }

    /// A square `n × n` Monarch with `nblocks` blocks per factor (blocks `n/nblocks` square).
    pub fn square(n: usize, nblocks: usize) -> Result<Self> {
        check_nonzero("n", n)?;
        check_nonzero("nblocks", nblocks)?;
        if !n.is_multiple_of(nblocks) {
            return Err(Error::InvalidArgument {
                what: "nblocks",
                message: format!("{nblocks} does not divide n = {n}"),
            });
        }
        let b = n / nblocks;
        Self::new(nblocks, b, b, nblocks, b, b)
    }

    /// A layer `in_features → out_features` with `nblocks` blocks per factor: blocks of
    /// `p = ⌈in/nblocks⌉` inputs and `s = ⌈out/nblocks⌉` outputs, inner width
    /// `q = r = min(p, s)` (so expanding and contracting layers keep the smaller width inside).
    /// Sizes that `nblocks` does not divide are zero-padded and truncated.
    pub fn for_layer(in_features: usize, out_features: usize, nblocks: usize) -> Result<Self> {
        check_nonzero("in_features", in_features)?;
        check_nonzero("out_features", out_features)?;
        check_nonzero("nblocks", nblocks)?;
        let p = in_features.div_ceil(nblocks);
        let s = out_features.div_ceil(nblocks);
        let q = p.min(s);
        let mut shape = Self::new(nblocks, q, p, nblocks, s, q)?;
        shape.in_features = in_features;
        shape.out_features = out_features;
        Ok(shape)
    }

    /// The same blocks with `in_features ≤ k·p` and `out_features ≤ l·s` (padding/truncation).
    pub fn with_features(mut self, in_features: usize, out_features: usize) -> Result<Self> {
        self.in_features = in_features;
        self.out_features = out_features;
        self.validate()?;
        Ok(self)
    }

    /// Check every constraint, naming the first that fails.
    pub fn validate(&self) -> Result<()> {
        for (what, v) in [
            ("k", self.k),
            ("q", self.q),
            ("p", self.p),
            ("l", self.l),
            ("s", self.s),
            ("r", self.r),
            ("in_features", self.in_features),
            ("out_features", self.out_features),
        ] {
            check_nonzero(what, v)?;
        }
        if self.k * self.q != self.l * self.r {
            return Err(Error::InvalidArgument {
                what: "MonarchShape",
                message: format!(
                    "the factors must meet: k·q = {}·{} = {} but l·r = {}·{} = {}",
                    self.k,
                    self.q,
                    self.k * self.q,
                    self.l,
                    self.r,
                    self.l * self.r
                ),
            });
        }
        if self.in_features > self.k * self.p {
            return Err(Error::InvalidArgument {
                what: "in_features",
                message: format!("{} exceeds k·p = {}", self.in_features, self.k * self.p),
            });
        }
        if self.out_features > self.l * self.s {
            return Err(Error::InvalidArgument {
                what: "out_features",
                message: format!("{} exceeds l·s = {}", self.out_features, self.l * self.s),
            });
        }
        Ok(())
    }

    /// Padded input width `k·p`.
    pub fn padded_in(&self) -> usize {
        self.k * self.p
    }
    /// Intermediate width `k·q = l·r`.
    pub fn inner(&self) -> usize {
        self.k * self.q
    }
    /// Padded output width `l·s`.
    pub fn padded_out(&self) -> usize {
        self.l * self.s
    }
    /// Number of entries of `w1` and `w2`.
    pub fn weight_lens(&self) -> (usize, usize) {
        (self.k * self.q * self.p, self.l * self.s * self.r)
    }
    /// Number of rank-one terms linking input block `kb` to output block `lb`: the
    /// intermediate entries `i` with `i / q = kb` and `i mod l = lb`.
    pub(crate) fn links(&self, kb: usize, lb: usize) -> impl Iterator<Item = usize> + '_ {
        (kb * self.q..(kb + 1) * self.q).filter(move |i| i % self.l == lb)
    }
}
