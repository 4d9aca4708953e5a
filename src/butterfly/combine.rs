//! Exact algebra on butterflies (Dao et al., ICML 2019; *Kaleidoscope*, ICLR 2020): the product
//! of two butterflies as one butterfly with more blocks, a diagonal folded into the first or
//! last level, and the stride direction flipped by conjugating with the bit reversal.

use super::init::fill_identity;
use super::{Butterfly, Diagonal, Permutation};
use crate::error::{check_len, Error, Result};
use crate::linear_map::LinearMap;
use crate::scalar::Scalar;

/// Twiddle length of one block of one stack: `log2 n · n/2 · 4`.
fn block_len<T: Scalar>(b: &Butterfly<T>) -> usize {
    b.log_n() * b.n() / 2 * 4
}

/// A sequence of butterfly blocks being assembled into one [`Butterfly`]: each entry is the
/// stride direction and either the identity or block `k` of an existing butterfly (its stack
/// `s` for a multi-stack source, its only stack otherwise).
struct Assembly<'a, T: Scalar> {
    blocks: Vec<(bool, Option<BlockRef<'a, T>>)>,
}

/// Block `k` of a butterfly.
type BlockRef<'a, T> = (&'a Butterfly<T>, usize);

impl<'a, T: Scalar> Assembly<'a, T> {
    fn new() -> Self {
        Self { blocks: Vec::new() }
    }

    /// Append a block; an identity block of the opposite direction goes first when the
    /// previous block has the same direction (blocks of one butterfly alternate).
    fn push(&mut self, increasing: bool, block: Option<BlockRef<'a, T>>) {
        if let Some(&(last, _)) = self.blocks.last() {
            if last == increasing {
                self.blocks.push((!increasing, None));
            }
        }
        self.blocks.push((increasing, block));
    }

    fn push_all(&mut self, b: &'a Butterfly<T>) {
        for k in 0..b.nblocks() {
            self.push(b.block_increasing(k), Some((b, k)));
        }
    }

    /// The flat twiddles `(nstacks, blocks, log2 n, n/2, 2, 2)`.
    fn twiddle(&self, nstacks: usize, blen: usize) -> Vec<T> {
        let mut tw = Vec::with_capacity(nstacks * self.blocks.len() * blen);
        for s in 0..nstacks {
            for &(_, block) in &self.blocks {
                match block {
                    None => {
                        let start = tw.len();
                        tw.resize(start + blen, T::zero());
                        fill_identity(&mut tw[start..]);
                    }
                    Some((b, k)) => {
                        let stack = if b.nstacks() == 1 { 0 } else { s };
                        let off = (stack * b.nblocks() + k) * blen;
                        tw.extend_from_slice(&b.twiddle()[off..off + blen]);
                    }
                }
            }
        }
        tw
    }
}

/// `p` followed by `q` in application order (`q·p`), `None` standing for the identity.
fn then_perm(p: Option<&Permutation>, q: Option<&Permutation>) -> Result<Option<Permutation>> {
    Ok(match (p, q) {
        (None, None) => None,
        (Some(p), None) => Some(p.clone()),
        (None, Some(q)) => Some(q.clone()),
        (Some(p), Some(q)) => Some(q.compose(p)?),
    })
}

fn attach<T: Scalar>(
    mut b: Butterfly<T>,
    input: Option<Permutation>,
    output: Option<Permutation>,
) -> Result<Butterfly<T>> {
    if let Some(p) = input {
        b = b.with_input_permutation(p)?;
    }
    if let Some(q) = output {
        b = b.with_output_permutation(q)?;
    }
    Ok(b)
}

fn no_levels(what: &'static str) -> Error {
    Error::InvalidArgument {
        what,
        message: "a butterfly of size n = 1 has no levels to fold a diagonal into".into(),
    }
}

impl<T: Scalar> Butterfly<T> {
    /// The product `next · self` (apply `self`, then `next`) as one butterfly with the blocks of
    /// `self` followed by those of `next` (Kaleidoscope, ICLR 2020: `(BB*)^k` is closed under
    /// products).
    ///
    /// Exact in every case: when `next`'s first block has the same stride direction as
    /// `self`'s last, an identity block of the opposite direction is inserted between them;
    /// when `self`'s output permutation and `next`'s input permutation do not cancel, their
    /// product is routed as a Beneš butterfly ([`Permutation::to_butterfly`], two more blocks).
    /// The result keeps `self`'s input permutation, `next`'s output permutation, stacks and
    /// bias.
    ///
    /// Requires `self` to map onto all `n` coordinates (`out_features = n`, one stack, no
    /// bias) and `next.in_features() = n`.
    pub fn then(&self, next: &Butterfly<T>) -> Result<Butterfly<T>> {
        let n = self.n();
        if self.nstacks() != 1 || self.out_features() != n {
            return Err(Error::InvalidArgument {
                what: "self",
                message: format!(
                    "the first factor must map onto all n = {n} coordinates (out_features = {n}), \
                     got out_features = {}",
                    self.out_features()
                ),
            });
        }
        if self.bias().is_some() {
            return Err(Error::InvalidArgument {
                what: "self",
                message: "the first factor of a product must have no bias (see without_bias)"
                    .into(),
            });
        }
        if next.in_features() != n {
            return Err(Error::Shape {
                what: "next",
                expected: format!("in_features = {n} (the outputs of self)"),
                got: format!("in_features = {}", next.in_features()),
            });
        }
        let middle = then_perm(self.output_permutation(), next.input_permutation())?
            .filter(|p| !p.is_identity())
            .map(|p| p.to_butterfly::<T>())
            .transpose()?;
        let mut asm = Assembly::new();
        asm.push_all(self);
        if let Some(b) = &middle {
            asm.push_all(b);
        }
        asm.push_all(next);
        let tw = asm.twiddle(next.nstacks(), block_len(self));
        let out = Butterfly::from_twiddle(
            self.in_features(),
            next.out_features(),
            asm.blocks.len(),
            self.increasing_stride(),
            tw,
            next.bias().map(<[T]>::to_vec),
        )?;
        attach(
            out,
            self.input_permutation().cloned(),
            next.output_permutation().cloned(),
        )
    }

    /// `self · diag(d)` (the diagonal applied to the input first) as one butterfly: the
    /// diagonal, moved through the fixed input permutation, scales the columns of the first
    /// level's 2×2 blocks. `d` has length `in_features`.
    pub fn fold_diagonal_input(&self, d: &Diagonal<T>) -> Result<Butterfly<T>> {
        check_len("diagonal", d.len(), self.in_features())?;
        if self.log_n() == 0 {
            return Err(no_levels("self"));
        }
        let n = self.n();
        let padded = |i: usize| d.diag().get(i).copied().unwrap_or_else(T::one);
        let e: Vec<T> = match self.input_permutation() {
            None => (0..n).map(padded).collect(),
            Some(p) => p.as_slice().iter().map(|&i| padded(i)).collect(),
        };
        let s = self.level_stride(0, 0);
        let mut out = self.clone();
        let mut tw = out.twiddle_view_mut();
        for st in 0..tw.dim().0 {
            for p in 0..n / 2 {
                let a = (p / s) * 2 * s + p % s;
                for r in 0..2 {
                    tw[(st, 0, 0, p, r, 0)] *= e[a];
                    tw[(st, 0, 0, p, r, 1)] *= e[a + s];
                }
            }
        }
        Ok(out)
    }

    /// `diag(d) · self` (the diagonal applied to the output last) as one butterfly: every
    /// stack's last level has the rows of its 2×2 blocks scaled (through the fixed output
    /// permutation), and the bias, if any, becomes `d ⊙ b`. `d` has length `out_features`.
    pub fn fold_diagonal_output(&self, d: &Diagonal<T>) -> Result<Butterfly<T>> {
        check_len("diagonal", d.len(), self.out_features())?;
        if self.log_n() == 0 {
            return Err(no_levels("self"));
        }
        let n = self.n();
        let (nb, nl) = (self.nblocks() - 1, self.log_n() - 1);
        let s = self.level_stride(nb, nl);
        let qinv = self.output_permutation().map(Permutation::inverse);
        let mut out = self.clone();
        let mut tw = out.twiddle_view_mut();
        for st in 0..tw.dim().0 {
            // Lane `c` of stack `st` lands in output column `st·n + Q⁻¹[c]`.
            let f = |c: usize| {
                let j = qinv.as_ref().map_or(c, |q| q.as_slice()[c]);
                d.diag().get(st * n + j).copied().unwrap_or_else(T::one)
            };
            for p in 0..n / 2 {
                let a = (p / s) * 2 * s + p % s;
                let (fa, fb) = (f(a), f(a + s));
                for c in 0..2 {
                    tw[(st, nb, nl, p, 0, c)] *= fa;
                    tw[(st, nb, nl, p, 1, c)] *= fb;
                }
            }
        }
        if let Some(b) = out.bias_mut() {
            for (v, &di) in b.iter_mut().zip(d.diag()) {
                *v *= di;
            }
        }
        Ok(out)
    }

    /// The same map with every block's stride direction reversed: a block of one direction
    /// equals `R B' R` with `R` the bit reversal and `B'` of the other direction, level `l` of
    /// `B'` holding level `l`'s 2×2 blocks re-indexed by `R` (pair `(a, a + s)` becomes
    /// `(R a, R a + n/(2s))`). Since `R² = I`, a whole stack `Q B P` becomes `(Q R) B' (R P)`: the
    /// bit reversal is folded into the fixed permutations, so the map is unchanged. Applying it
    /// twice returns the original butterfly.
    pub fn flip_stride(&self) -> Result<Butterfly<T>> {
        let n = self.n();
        let m = self.log_n() as u32;
        let rev = |i: usize| {
            if m == 0 {
                0
            } else {
                i.reverse_bits() >> (usize::BITS - m)
            }
        };
        let src = self.twiddle_view();
        let (nstacks, nblocks, log_n, half, _, _) = src.dim();
        let mut tw = vec![T::zero(); self.twiddle_len()];
        for st in 0..nstacks {
            for b in 0..nblocks {
                for l in 0..log_n {
                    let s = self.level_stride(b, l);
                    let s2 = n / (2 * s);
                    let base = ((st * nblocks + b) * log_n + l) * half;
                    for p in 0..half {
                        let a = rev((p / s) * 2 * s + p % s);
                        let q = (a / (2 * s2)) * s2 + a % s2;
                        for (r, c) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                            tw[(base + q) * 4 + 2 * r + c] = src[(st, b, l, p, r, c)];
                        }
                    }
                }
            }
        }
        let flipped = Butterfly::from_twiddle(
            self.in_features(),
            self.out_features(),
            nblocks,
            !self.increasing_stride(),
            tw,
            self.bias().map(<[T]>::to_vec),
        )?;
        let r = Permutation::bit_reversal(n)?;
        let input = then_perm(self.input_permutation(), Some(&r))?;
        let output = then_perm(Some(&r), self.output_permutation())?;
        attach(flipped, input, output)
    }
}
