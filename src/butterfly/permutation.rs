//! Fixed permutations: bit reversal, arbitrary permutation vectors, their inverses and dense
//! forms.

use crate::error::{check_apply_shapes_ok, check_cols, check_pow2, Error, Result};
use crate::linear_map::LinearMap;
use crate::scalar::Scalar;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, Zip};

/// A permutation matrix `P` on `n` coordinates, stored as the gather vector `perm`:
/// `(P x)[i] = x[perm[i]]`, so a batch row `x` maps to `y[i] = x[perm[i]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permutation {
    perm: Vec<usize>,
}

impl Permutation {
    /// The permutation with gather vector `perm`, checked to be a permutation of `0..perm.len()`.
    pub fn new(perm: Vec<usize>) -> Result<Self> {
        let n = perm.len();
        if n == 0 {
            return Err(Error::Zero {
                what: "permutation length",
            });
        }
        let mut seen = vec![false; n];
        for (i, &p) in perm.iter().enumerate() {
            if p >= n {
                return Err(Error::NotAPermutation {
                    n,
                    message: format!("entry {i} is {p}, out of range"),
                });
            }
            if seen[p] {
                return Err(Error::NotAPermutation {
                    n,
                    message: format!("value {p} appears twice"),
                });
            }
            seen[p] = true;
        }
        Ok(Self { perm })
    }

    /// The identity on `n` coordinates.
    pub fn identity(n: usize) -> Result<Self> {
        crate::error::check_nonzero("n", n)?;
        Ok(Self {
            perm: (0..n).collect(),
        })
    }

    /// The bit-reversal permutation on `n = 2^m` coordinates (its own inverse).
    pub fn bit_reversal(n: usize) -> Result<Self> {
        check_pow2("n", n)?;
        let m = n.trailing_zeros();
        let perm = (0..n)
            .map(|i| {
                if m == 0 {
                    0
                } else {
                    i.reverse_bits() >> (usize::BITS - m)
                }
            })
            .collect();
        Ok(Self { perm })
    }

    /// Number of coordinates.
    pub fn len(&self) -> usize {
        self.perm.len()
    }

    /// Always false: a permutation has at least one coordinate.
    pub fn is_empty(&self) -> bool {
        self.perm.is_empty()
    }

    /// The gather vector: output `i` takes input `perm[i]`.
    pub fn as_slice(&self) -> &[usize] {
        &self.perm
    }

    /// `P⁻¹ = Pᵀ`.
    pub fn inverse(&self) -> Self {
        let mut inv = vec![0; self.perm.len()];
        for (i, &p) in self.perm.iter().enumerate() {
            inv[p] = i;
        }
        Self { perm: inv }
    }

    /// Whether this is the identity.
    pub fn is_identity(&self) -> bool {
        self.perm.iter().enumerate().all(|(i, &p)| i == p)
    }

    /// `P Q` as one permutation (apply `Q` first, then `P`).
    pub fn compose(&self, q: &Permutation) -> Result<Self> {
        if q.len() != self.len() {
            return Err(Error::Shape {
                what: "q",
                expected: format!("a permutation of length {}", self.len()),
                got: format!("length {}", q.len()),
            });
        }
        Ok(Self {
            perm: self.perm.iter().map(|&p| q.perm[p]).collect(),
        })
    }

    /// `y[i] = x[perm[i]]` on one vector.
    pub fn gather_slice<T: Copy>(&self, x: &[T], y: &mut [T]) {
        for (yi, &p) in y.iter_mut().zip(&self.perm) {
            *yi = x[p];
        }
    }

    /// `y[perm[i]] = x[i]` (the transpose) on one vector.
    pub fn scatter_slice<T: Copy>(&self, x: &[T], y: &mut [T]) {
        for (xi, &p) in x.iter().zip(&self.perm) {
            y[p] = *xi;
        }
    }
}

impl<T: Scalar> LinearMap<T> for Permutation {
    fn in_features(&self) -> usize {
        self.len()
    }
    fn out_features(&self) -> usize {
        self.len()
    }
    fn apply_into(&self, x: ArrayView2<T>, mut y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.len(), self.len(), &x, &y)?;
        Zip::from(y.axis_iter_mut(Axis(0)))
            .and(x.axis_iter(Axis(0)))
            .for_each(|mut yr, xr| {
                for (yi, &p) in yr.iter_mut().zip(&self.perm) {
                    *yi = xr[p];
                }
            });
        Ok(())
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.len())?;
        let mut x = Array2::zeros(y.dim());
        Zip::from(x.axis_iter_mut(Axis(0)))
            .and(y.axis_iter(Axis(0)))
            .for_each(|mut xr, yr| {
                for (yi, &p) in yr.iter().zip(&self.perm) {
                    xr[p] = *yi;
                }
            });
        Ok(x)
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        LinearMap::<T>::apply_transpose(self, y)
    }
    fn to_dense(&self) -> Array2<T> {
        let n = self.len();
        let mut d = Array2::zeros((n, n));
        for (i, &p) in self.perm.iter().enumerate() {
            d[(i, p)] = T::one();
        }
        d
    }
    fn num_params(&self) -> usize {
        0
    }
    fn flops_per_row(&self) -> usize {
        0
    }
}
