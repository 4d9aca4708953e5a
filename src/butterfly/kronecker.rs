//! The Kronecker (tensor) product `A ⊗ B` of two linear maps, and of two butterflies as one
//! butterfly (Dao et al., *Kaleidoscope*, ICLR 2020: the BB* hierarchy is closed under
//! Kronecker products).

use super::init::fill_identity;
use super::{Butterfly, Permutation};
use crate::error::{check_apply_shapes_ok, check_cols, Error, Result};
use crate::linear_map::LinearMap;
use crate::scalar::Scalar;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// `A ⊗ B` on rows read as row-major `(n_A, n_B)` matrices: `(A ⊗ B) vec(X) = vec(A X Bᵀ)`, i.e.
/// `W[(i·o_B + j), (k·i_B + l)] = A[i, k] · B[j, l]`. Applied as `B` on every row of `X`, then
/// `A` on every column: `o_A·o_B` outputs for `i_A·i_B` inputs, at the cost of
/// `i_A` applications of `B` and `o_B` of `A` per row.
///
/// `A` and `B` are any linear maps (owned, borrowed through a `Box`, …); maps with a nonzero
/// bias are refused, since `A ⊗ B` of affine maps is not defined by their matrices.
#[derive(Debug, Clone, PartialEq)]
pub struct Kronecker<A, B> {
    a: A,
    b: B,
}

/// Refuse an affine map: its image of the zero row must be zero.
fn check_linear<T: Scalar, M: LinearMap<T>>(what: &'static str, m: &M) -> Result<()> {
    let zero = Array2::<T>::zeros((1, m.in_features()));
    if m.apply(zero.view())?.iter().any(|v| *v != T::zero()) {
        return Err(Error::InvalidArgument {
            what,
            message: "the Kronecker product needs linear maps; this one has a nonzero bias".into(),
        });
    }
    Ok(())
}

/// `vec(A X Bᵀ)` for every row of `x` read as a row-major `(ia, ib)` matrix, with `fb` sending
/// `(rows, ib) → (rows, ob)` and `fa` sending `(rows, ia) → (rows, oa)`.
fn along_axes<T, FA, FB>(
    x: ArrayView2<T>,
    (ia, ib): (usize, usize),
    (oa, ob): (usize, usize),
    fa: FA,
    fb: FB,
) -> Result<Array2<T>>
where
    T: Scalar,
    FA: Fn(ArrayView2<T>) -> Result<Array2<T>>,
    FB: Fn(ArrayView2<T>) -> Result<Array2<T>>,
{
    let batch = x.nrows();
    let xs = x.as_standard_layout();
    let rows = xs
        .view()
        .into_shape_with_order((batch * ia, ib))
        .expect("standard layout reshapes");
    let z = fb(rows)?
        .into_shape_with_order((batch, ia, ob))
        .expect("standard layout reshapes");
    let cols = z
        .permuted_axes([0, 2, 1])
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((batch * ob, ia))
        .expect("standard layout reshapes");
    let w = fa(cols.view())?
        .into_shape_with_order((batch, ob, oa))
        .expect("standard layout reshapes");
    Ok(w.permuted_axes([0, 2, 1])
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((batch, oa * ob))
        .expect("standard layout reshapes"))
}

impl<A, B> Kronecker<A, B> {
    /// `a ⊗ b`; both must be linear (no bias).
    pub fn new<T: Scalar>(a: A, b: B) -> Result<Self>
    where
        A: LinearMap<T>,
        B: LinearMap<T>,
    {
        check_linear("a", &a)?;
        check_linear("b", &b)?;
        Ok(Self { a, b })
    }
    /// The factor acting on the slow (row) index.
    pub fn a(&self) -> &A {
        &self.a
    }
    /// The factor acting on the fast (column) index.
    pub fn b(&self) -> &B {
        &self.b
    }
    /// The two factors.
    pub fn into_parts(self) -> (A, B) {
        (self.a, self.b)
    }
}

impl<T: Scalar, A: LinearMap<T>, B: LinearMap<T>> LinearMap<T> for Kronecker<A, B> {
    fn in_features(&self) -> usize {
        self.a.in_features() * self.b.in_features()
    }
    fn out_features(&self) -> usize {
        self.a.out_features() * self.b.out_features()
    }
    fn apply_into(&self, x: ArrayView2<T>, mut y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.in_features(), self.out_features(), &x, &y)?;
        let r = along_axes(
            x,
            (self.a.in_features(), self.b.in_features()),
            (self.a.out_features(), self.b.out_features()),
            |v| self.a.apply(v),
            |v| self.b.apply(v),
        )?;
        y.assign(&r);
        Ok(())
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.out_features())?;
        along_axes(
            y,
            (self.a.out_features(), self.b.out_features()),
            (self.a.in_features(), self.b.in_features()),
            |v| self.a.apply_transpose(v),
            |v| self.b.apply_transpose(v),
        )
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.out_features())?;
        along_axes(
            y,
            (self.a.out_features(), self.b.out_features()),
            (self.a.in_features(), self.b.in_features()),
            |v| self.a.apply_adjoint(v),
            |v| self.b.apply_adjoint(v),
        )
    }
    fn to_dense(&self) -> Array2<T> {
        let (da, db) = (self.a.to_dense(), self.b.to_dense());
        let (ob, ib) = db.dim();
        Array2::from_shape_fn((self.out_features(), self.in_features()), |(r, c)| {
            da[(r / ob, c / ib)] * db[(r % ob, c % ib)]
        })
    }
    fn num_params(&self) -> usize {
        self.a.num_params() + self.b.num_params()
    }
    fn flops_per_row(&self) -> usize {
        self.a.in_features() * self.b.flops_per_row()
            + self.b.out_features() * self.a.flops_per_row()
    }
}

impl<T: Scalar> Kronecker<Butterfly<T>, Butterfly<T>> {
    /// The product as one butterfly of size `n_A · n_B` ([`Butterfly::kronecker`]).
    pub fn to_butterfly(&self) -> Result<Butterfly<T>> {
        self.a.kronecker(&self.b)
    }
}

impl Permutation {
    /// `self ⊗ other` on row-major `(n_self, n_other)` indices: output `(i, j)` takes input
    /// `(self[i], other[j])`.
    pub fn kronecker(&self, other: &Permutation) -> Permutation {
        let nb = other.len();
        let perm = self
            .as_slice()
            .iter()
            .flat_map(|&p| other.as_slice().iter().map(move |&q| p * nb + q))
            .collect();
        Permutation::new(perm).expect("the Kronecker product of permutations is a permutation")
    }
}

/// The blocks of a butterfly padded with identity blocks (`None`) to `len` blocks, the first
/// `lead` of them identities.
fn padded_blocks(lead: usize, nblocks: usize, len: usize) -> Vec<Option<usize>> {
    (0..len)
        .map(|k| (k >= lead && k - lead < nblocks).then(|| k - lead))
        .collect()
}

fn check_square_full<T: Scalar>(what: &'static str, b: &Butterfly<T>) -> Result<()> {
    if b.in_features() != b.n() || b.out_features() != b.n() || b.bias().is_some() {
        return Err(Error::InvalidArgument {
            what,
            message: format!(
                "a Kronecker factor must be a square butterfly on all n coordinates with no \
                 bias (in = out = n = {}), got in = {}, out = {}, bias: {}",
                b.n(),
                b.in_features(),
                b.out_features(),
                b.bias().is_some()
            ),
        });
    }
    Ok(())
}

impl<T: Scalar> Butterfly<T> {
    /// `self ⊗ other` (on row-major `(n_self, n_other)` indices) as one butterfly of size
    /// `N = n_self · n_other`: `other`'s levels keep their strides `s` and act on the fast index
    /// (pair `i·n_other/2 + p`), `self`'s levels get strides `s·n_other` and act on the slow one
    /// (pair `n_other·p + j`). In an increasing block the `N` strides `1, …, N/2` are `other`'s
    /// then `self`'s; in a decreasing block the reverse, so block by block
    /// `(A_k ⋯ A_1) ⊗ (B_k ⋯ B_1) = (A_k ⊗ B_k) ⋯ (A_1 ⊗ B_1)`. Block counts and directions are
    /// matched exactly with identity blocks; fixed permutations become `P_self ⊗ P_other`.
    ///
    /// Both factors must be square butterflies on all their `n` coordinates with no bias.
    pub fn kronecker(&self, other: &Butterfly<T>) -> Result<Butterfly<T>> {
        check_square_full("self", self)?;
        check_square_full("other", other)?;
        let (na, nb) = (self.n(), other.n());
        let (ma, mb) = (self.log_n(), other.log_n());
        let n = na * nb;
        let m = ma + mb;
        let (lead_a, lead_b) = match (self.increasing_stride(), other.increasing_stride()) {
            (x, y) if x == y => (0, 0),
            _ => (0, 1),
        };
        let len = (self.nblocks() + lead_a).max(other.nblocks() + lead_b);
        let ka = padded_blocks(lead_a, self.nblocks(), len);
        let kb = padded_blocks(lead_b, other.nblocks(), len);
        let (ta, tb) = (self.twiddle_view(), other.twiddle_view());
        let half = n / 2;
        let mut tw = vec![T::zero(); len * m * half * 4];
        fill_identity(&mut tw);
        let increasing = self.increasing_stride();
        for k in 0..len {
            let inc = (k % 2 == 0) == increasing;
            for lvl in 0..m {
                let base = (k * m + lvl) * half;
                // Which factor owns this level, and its level index there.
                let a_level = if inc {
                    lvl.checked_sub(mb)
                } else {
                    (lvl < ma).then_some(lvl)
                };
                match a_level {
                    Some(l) => {
                        let Some(blk) = ka[k] else { continue };
                        for pa in 0..na / 2 {
                            for j in 0..nb {
                                let q = base + nb * pa + j;
                                for (e, v) in tw[4 * q..4 * q + 4].iter_mut().enumerate() {
                                    *v = ta[(0, blk, l, pa, e / 2, e % 2)];
                                }
                            }
                        }
                    }
                    None => {
                        let Some(blk) = kb[k] else { continue };
                        let l = if inc { lvl } else { lvl - ma };
                        for i in 0..na {
                            for pb in 0..nb / 2 {
                                let q = base + i * (nb / 2) + pb;
                                for (e, v) in tw[4 * q..4 * q + 4].iter_mut().enumerate() {
                                    *v = tb[(0, blk, l, pb, e / 2, e % 2)];
                                }
                            }
                        }
                    }
                }
            }
        }
        let out = Butterfly::from_twiddle(n, n, len, increasing, tw, None)?;
        let kron = |p: Option<&Permutation>, q: Option<&Permutation>| -> Result<_> {
            Ok(match (p, q) {
                (None, None) => None,
                (p, q) => {
                    let p = p.cloned().map_or_else(|| Permutation::identity(na), Ok)?;
                    let q = q.cloned().map_or_else(|| Permutation::identity(nb), Ok)?;
                    Some(p.kronecker(&q))
                }
            })
        };
        let input = kron(self.input_permutation(), other.input_permutation())?;
        let output = kron(self.output_permutation(), other.output_permutation())?;
        let out = match input {
            Some(p) => out.with_input_permutation(p)?,
            None => out,
        };
        match output {
            Some(q) => out.with_output_permutation(q),
            None => Ok(out),
        }
    }
}
