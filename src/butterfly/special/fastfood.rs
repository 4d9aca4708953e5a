//! Fastfood (Le, Sarlós and Smola, *Fastfood — Approximating Kernel Expansions in Loglinear
//! Time*, ICML 2013): `V = S H G Π H B` as two butterflies, the diagonals folded into their
//! levels.

use crate::butterfly::{Butterfly, Chain, Diagonal, Permutation};
use crate::error::{check_apply_shapes_ok, check_cols, check_len, check_nonzero, Error, Result};
use crate::linear_map::LinearMap;
use crate::scalar::Scalar;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{ChiSquared, Distribution, StandardNormal};

/// The Fastfood map `V = S H G Π H B` (Le, Sarlós, Smola, ICML 2013) from `d` inputs
/// (zero-padded to `n = 2^⌈log2 d⌉ ≥ 2`) to `n` outputs: `B` a diagonal (random signs), `H`
/// the unnormalised Hadamard matrix, `Π` a permutation, `G` a diagonal (Gaussian) and `S` a
/// diagonal scaling.
///
/// Stored as two butterfly blocks: `H·B` (increasing stride, `B` folded into the first level)
/// and `S·H·G` (decreasing stride, `G` in the first level, `S` in the last) with `Π` as its
/// fixed input permutation. [`Fastfood::new`] draws the parameters so that the rows of `V`
/// are distributed like `N(0, σ⁻² I)` vectors, as random features for the Gaussian kernel
/// `exp(−‖x − x'‖²/(2σ²))` take them.
#[derive(Debug, Clone, PartialEq)]
pub struct Fastfood<T: Scalar> {
    b: Vec<T>,
    perm: Permutation,
    g: Vec<T>,
    s: Vec<T>,
    first: Butterfly<T>,
    second: Butterfly<T>,
}

impl<T: Scalar> Fastfood<T> {
    /// `V = diag(s) H diag(g) Π H diag(b)` exactly: `b` of length `d = in_features`, and `perm`
    /// (the gather vector of `Π`), `g`, `s` of length `n = 2^⌈log2 d⌉`, which must be at least 2.
    pub fn from_parts(b: Vec<T>, perm: Permutation, g: Vec<T>, s: Vec<T>) -> Result<Self> {
        check_nonzero("b length", b.len())?;
        let d = b.len();
        let n = d.next_power_of_two();
        if n < 2 {
            return Err(Error::InvalidArgument {
                what: "b",
                message: "Fastfood needs at least 2 inputs, got 1".into(),
            });
        }
        check_len("permutation", perm.len(), n)?;
        check_len("g", g.len(), n)?;
        check_len("s", s.len(), n)?;
        // Every 2×2 block of the Hadamard butterfly is [[1, 1], [1, −1]], so its twiddles serve
        // either stride direction.
        let h = Butterfly::<T>::hadamard(n)?.twiddle().to_vec();
        let first = Butterfly::from_twiddle(d, n, 1, true, h.clone(), None)?
            .fold_diagonal_input(&Diagonal::new(b.clone())?)?;
        let second = Butterfly::from_twiddle(n, n, 1, false, h, None)?
            .fold_diagonal_input(&Diagonal::new(g.clone())?)?
            .fold_diagonal_output(&Diagonal::new(s.clone())?)?
            .with_input_permutation(perm.clone())?;
        Ok(Self {
            b,
            perm,
            g,
            s,
            first,
            second,
        })
    }

    /// Random Fastfood features for bandwidth `sigma`, as in the paper: `b_i = ±1`, `Π`
    /// uniform, `g_i ~ N(0, 1)`, and `s_i = c_i / (σ √n ‖g‖)` with `c_i ~ χ_n`, so that row `i`
    /// of `V` has norm `c_i/σ` (real-valued parameters, also for complex scalars).
    pub fn new<R: Rng + ?Sized>(in_features: usize, sigma: f64, rng: &mut R) -> Result<Self> {
        check_nonzero("in_features", in_features)?;
        if !(sigma.is_finite() && sigma > 0.0) {
            return Err(Error::InvalidArgument {
                what: "sigma",
                message: format!("the bandwidth must be positive and finite, got {sigma}"),
            });
        }
        let n = in_features.next_power_of_two();
        let b = (0..in_features)
            .map(|_| T::from_f64(if rng.random::<bool>() { 1.0 } else { -1.0 }))
            .collect();
        let mut perm: Vec<usize> = (0..n).collect();
        perm.shuffle(rng);
        let g64: Vec<f64> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
        let gnorm = g64.iter().map(|v| v * v).sum::<f64>().sqrt();
        let chi = ChiSquared::new(n as f64).map_err(|e| Error::InvalidArgument {
            what: "in_features",
            message: e.to_string(),
        })?;
        let scale = 1.0 / (sigma * (n as f64).sqrt() * gnorm);
        let s = (0..n)
            .map(|_| T::from_f64(chi.sample(rng).sqrt() * scale))
            .collect();
        let g = g64.into_iter().map(T::from_f64).collect();
        Self::from_parts(b, Permutation::new(perm)?, g, s)
    }

    /// The padded size `n` (the number of outputs).
    pub fn n(&self) -> usize {
        self.g.len()
    }
    /// The diagonal `B` (length `in_features`).
    pub fn b(&self) -> &[T] {
        &self.b
    }
    /// The permutation `Π`.
    pub fn permutation(&self) -> &Permutation {
        &self.perm
    }
    /// The diagonal `G`.
    pub fn g(&self) -> &[T] {
        &self.g
    }
    /// The diagonal `S`.
    pub fn s(&self) -> &[T] {
        &self.s
    }
    /// The two butterflies `(H·B, S·H·G·Π)`, applied in that order.
    pub fn butterflies(&self) -> (&Butterfly<T>, &Butterfly<T>) {
        (&self.first, &self.second)
    }
    /// `V` as a [`Chain`] of the two butterflies.
    pub fn to_chain(&self) -> Result<Chain<T>> {
        Chain::new(vec![
            Box::new(self.first.clone()),
            Box::new(self.second.clone()),
        ])
    }
    /// `V` as one butterfly with four blocks (`Π` routed as a Beneš network between the two
    /// Hadamard blocks, see [`Butterfly::then`]).
    pub fn to_butterfly(&self) -> Result<Butterfly<T>> {
        self.first.then(&self.second)
    }
}

impl<T: Scalar> LinearMap<T> for Fastfood<T> {
    fn in_features(&self) -> usize {
        self.b.len()
    }
    fn out_features(&self) -> usize {
        self.n()
    }
    fn apply_into(&self, x: ArrayView2<T>, y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.in_features(), self.out_features(), &x, &y)?;
        let z = self.first.apply(x)?;
        self.second.apply_into(z.view(), y)
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.out_features())?;
        let z = self.second.apply_transpose(y)?;
        self.first.apply_transpose(z.view())
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.out_features())?;
        let z = self.second.apply_adjoint(y)?;
        self.first.apply_adjoint(z.view())
    }
    fn to_dense(&self) -> Array2<T> {
        let w1 = self.first.to_dense();
        self.second
            .apply(w1.t())
            .expect("the first butterfly's outputs feed the second")
            .reversed_axes()
            .as_standard_layout()
            .into_owned()
    }
    fn num_params(&self) -> usize {
        self.b.len() + self.g.len() + self.s.len()
    }
    fn flops_per_row(&self) -> usize {
        self.first.flops_per_row() + self.second.flops_per_row()
    }
}
