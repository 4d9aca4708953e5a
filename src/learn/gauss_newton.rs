//! A Levenberg–Marquardt polish for a butterfly times a fixed permutation: every entry of
//! `W = B Q` is one product of `log2 n` twiddles along a path (Dao et al., ICML 2019, §3), so
//! the Jacobian of the residual `W − A` is sparse and exact, and Gauss–Newton converges
//! quadratically to the zero-residual fits where L-BFGS crawls (real-part fits such as the
//! Hartley transform).

use super::permutation::ButterflyProduct;
use crate::error::{check_shape, Error, Result};
use crate::linear_map::Differentiable;
use crate::scalar::Scalar;
use ndarray::ArrayView2;
use num_complex::Complex64;
use rayon::prelude::*;

/// Options of [`gauss_newton`].
#[derive(Debug, Clone, PartialEq)]
pub struct GaussNewtonOptions {
    /// Most Levenberg–Marquardt iterations (accepted or rejected steps).
    pub max_iters: usize,
    /// Most conjugate-gradient iterations per step (the damped normal equations are solved
    /// matrix-free with a Jacobi preconditioner).
    pub cg_iters: usize,
    /// Stop once the RMSE reaches this value.
    pub target_rmse: f64,
    /// Compare `Re W` with the target (see [`FitOptions::real_part`](super::FitOptions)).
    pub real_part: bool,
}

impl Default for GaussNewtonOptions {
    fn default() -> Self {
        Self {
            max_iters: 50,
            cg_iters: 300,
            target_rmse: 1e-12,
            real_part: false,
        }
    }
}

/// What [`gauss_newton`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussNewtonReport {
    /// Final `‖W − A‖_F / n`.
    pub rmse: f64,
    /// Levenberg–Marquardt iterations (accepted and rejected steps).
    pub iters: usize,
    /// Conjugate-gradient iterations over all steps.
    pub cg_iters: usize,
    /// RMSE at the start and after every accepted step.
    pub losses: Vec<f64>,
}

/// The entries of `B Q` along their paths: for every `(row k, butterfly input i)`, the flat
/// twiddle index at each level and `∂W[k, q[i]]/∂t` (the product of the other twiddles).
struct Paths {
    n: usize,
    levels: usize,
    /// `n · n · levels` twiddle indices, row-major in `(k, i, level)`.
    index: Vec<u32>,
    /// Partial derivatives, same layout.
    partial: Vec<Complex64>,
    /// `W − A` at `(k, q[i])`, row-major in `(k, i)`; imaginary part dropped for real parts.
    residual: Vec<Complex64>,
}

impl Paths {
    fn new<T: Scalar>(
        tw: &[T],
        n: usize,
        q: &[usize],
        target: ArrayView2<T>,
        real_part: bool,
    ) -> Self {
        let levels = n.trailing_zeros() as usize;
        let rows: Vec<(Vec<u32>, Vec<Complex64>, Vec<Complex64>)> = (0..n)
            .into_par_iter()
            .map(|k| {
                let mut index = Vec::with_capacity(n * levels);
                let mut partial = Vec::with_capacity(n * levels);
                let mut residual = Vec::with_capacity(n);
                let mut vals = vec![Complex64::new(0.0, 0.0); levels];
                let mut prefix = vec![Complex64::new(1.0, 0.0); levels + 1];
                for i in 0..n {
                    for (l, v) in vals.iter_mut().enumerate() {
                        let t = twiddle_index(n, k, i, l);
                        index.push(t as u32);
                        *v = tw[t].to_c64();
                    }
                    for l in 0..levels {
                        prefix[l + 1] = prefix[l] * vals[l];
                    }
                    let mut suffix = Complex64::new(1.0, 0.0);
                    let start = partial.len();
                    partial.resize(start + levels, suffix);
                    for l in (0..levels).rev() {
                        partial[start + l] = prefix[l] * suffix;
                        suffix *= vals[l];
                    }
                    let mut e = prefix[levels] - target[(k, q[i])].to_c64();
                    if real_part {
                        e.im = 0.0;
                    }
                    residual.push(e);
                }
                (index, partial, residual)
            })
            .collect();
        let mut p = Paths {
            n,
            levels,
            index: Vec::with_capacity(n * n * levels),
            partial: Vec::with_capacity(n * n * levels),
            residual: Vec::with_capacity(n * n),
        };
        for (i, g, r) in rows {
            p.index.extend(i);
            p.partial.extend(g);
            p.residual.extend(r);
        }
        p
    }

    fn loss(&self) -> f64 {
        self.residual.iter().map(|e| e.norm_sqr()).sum::<f64>() / (self.n * self.n) as f64
    }

    /// `J v` (one complex value per entry; its imaginary part dropped for real parts).
    fn jv(&self, v: &[Complex64], real_part: bool) -> Vec<Complex64> {
        let l = self.levels;
        self.index
            .par_chunks(l)
            .zip(self.partial.par_chunks(l))
            .map(|(idx, g)| {
                let mut s: Complex64 = idx.iter().zip(g).map(|(&t, g)| g * v[t as usize]).sum();
                if real_part {
                    s.im = 0.0;
                }
                s
            })
            .collect()
    }

    /// `Jᵀ w`, with a parameter's real and imaginary components as one complex number.
    fn jtw(&self, w: &[Complex64], len: usize) -> Vec<Complex64> {
        let l = self.levels;
        // A split fixed by the size, not the thread count, so the sums' order (and the
        // result, bit for bit) is the same on every machine.
        const PARTS: usize = 16;
        let per = (self.n / PARTS).max(1) * self.n * l;
        let parts: Vec<Vec<Complex64>> = self
            .index
            .par_chunks(per)
            .zip(self.partial.par_chunks(per))
            .enumerate()
            .map(|(c, (idx, g))| {
                let mut acc = vec![Complex64::new(0.0, 0.0); len];
                let first = c * per / l;
                for (e, (ie, ge)) in idx.chunks(l).zip(g.chunks(l)).enumerate() {
                    let we = w[first + e];
                    for (&t, g) in ie.iter().zip(ge) {
                        acc[t as usize] += g.conj() * we;
                    }
                }
                acc
            })
            .collect();
        let mut out = vec![Complex64::new(0.0, 0.0); len];
        for p in parts {
            for (o, v) in out.iter_mut().zip(p) {
                *o += v;
            }
        }
        out
    }

    /// The diagonal of `JᵀJ`, per real component (as a complex number).
    fn diag(&self, len: usize, real_part: bool) -> Vec<Complex64> {
        let mut d = vec![Complex64::new(0.0, 0.0); len];
        for (&t, g) in self.index.iter().zip(&self.partial) {
            d[t as usize] += if real_part {
                Complex64::new(g.re * g.re, g.im * g.im)
            } else {
                Complex64::new(g.norm_sqr(), g.norm_sqr())
            };
        }
        d
    }
}

/// The flat twiddle index (layout `(log2 n, n/2, 2, 2)`) of the level-`l` factor on the path
/// from input `i` to output `k` of an increasing-stride butterfly: level `l` (stride `2^l`)
/// maps the position with bits `< l` from `k` and the others from `i` to the one that also
/// takes bit `l` from `k`.
fn twiddle_index(n: usize, k: usize, i: usize, l: usize) -> usize {
    let s = 1usize << l;
    let a_in = (k & (s - 1)) | (i & !(s - 1));
    let (r, c) = ((k >> l) & 1, (i >> l) & 1);
    let a = a_in & !s;
    let p = (a / (2 * s)) * s + a % s;
    ((l * (n / 2) + p) * 2 + r) * 2 + c
}

fn dot(a: &[Complex64], b: &[Complex64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.re * y.re + x.im * y.im)
        .sum()
}

/// Polish the twiddles of a hardened `B · P_k ⋯ P_1` (one increasing-stride butterfly of one
/// block without bias after learned permutations, see
/// [`ButterflyProduct::rounded_permutation`]) by Levenberg–Marquardt on
/// `‖W − A‖²_F` (or `‖Re W − A‖²_F`): each step solves `(JᵀJ + λ diag JᵀJ) δ = −Jᵀr` by
/// preconditioned conjugate gradients with the exact sparse Jacobian. The logits stay fixed.
pub fn gauss_newton<T: Scalar>(
    model: &mut ButterflyProduct<T>,
    target: ArrayView2<T>,
    opts: &GaussNewtonOptions,
) -> Result<GaussNewtonReport> {
    let n = model.n();
    check_shape("target", target.dim(), (n, n))?;
    let unsupported = || Error::InvalidArgument {
        what: "model",
        message: "expected a hardened product B · P ⋯ P (one increasing-stride butterfly of \
                  one block without bias, applied last)"
            .into(),
    };
    if !model.is_hard() {
        return Err(unsupported());
    }
    let q = model
        .rounded_permutation(model.params())
        .ok_or_else(unsupported)?;
    let q = q.as_slice().to_vec();
    let levels = n.trailing_zeros() as usize;
    let len = levels * n / 2 * 4;
    let off = model.params().len() - len;
    let real_part = opts.real_part;
    let scale = 1.0 / (n * n) as f64;
    let mut paths = Paths::new(&model.params()[off..], n, &q, target, real_part);
    let mut loss = paths.loss();
    let mut losses = vec![loss.sqrt()];
    let mut lambda = 1e-3;
    let (mut iters, mut cg_total) = (0, 0);
    while iters < opts.max_iters && loss.sqrt() > opts.target_rmse {
        iters += 1;
        if !loss.is_finite() {
            return Err(Error::Numerical(format!(
                "Gauss–Newton met a non-finite loss {loss}"
            )));
        }
        // Normal equations scaled by 1/n² like the loss: (JᵀJ + λD) δ = −Jᵀr.
        let b: Vec<Complex64> = paths
            .jtw(&paths.residual, len)
            .iter()
            .map(|v| -v * scale)
            .collect();
        let mut d: Vec<Complex64> = paths
            .diag(len, real_part)
            .iter()
            .map(|v| v * scale)
            .collect();
        if !T::IS_COMPLEX {
            d.iter_mut().for_each(|v| v.im = 0.0);
        }
        let dmax = d.iter().fold(0.0f64, |a, v| a.max(v.re).max(v.im));
        let floor = 1e-12 * dmax.max(f64::MIN_POSITIVE);
        let (delta, cg) = solve_damped(&paths, &b, &d, lambda, floor, real_part, opts.cg_iters);
        cg_total += cg;
        let mut trial = model.params()[off..].to_vec();
        for (t, dv) in trial.iter_mut().zip(&delta) {
            let z = t.to_c64() + dv;
            *t = T::from_parts(z.re, z.im);
        }
        let next = Paths::new(&trial, n, &q, target, real_part);
        let l2 = next.loss();
        if l2.is_finite() && l2 < loss {
            model.params_mut()[off..].copy_from_slice(&trial);
            paths = next;
            loss = l2;
            losses.push(loss.sqrt());
            lambda = (lambda / 3.0).max(1e-15);
        } else {
            lambda *= 4.0;
            if lambda > 1e12 {
                break;
            }
        }
    }
    Ok(GaussNewtonReport {
        rmse: loss.sqrt(),
        iters,
        cg_iters: cg_total,
        losses,
    })
}

/// Preconditioned CG for `(JᵀJ/n² + λ D + floor) δ = b` (D diagonal per real component);
/// returns `δ` and the iterations used.
fn solve_damped(
    paths: &Paths,
    b: &[Complex64],
    d: &[Complex64],
    lambda: f64,
    floor: f64,
    real_part: bool,
    max_iters: usize,
) -> (Vec<Complex64>, usize) {
    let len = b.len();
    let scale = 1.0 / (paths.n * paths.n) as f64;
    let shift: Vec<Complex64> = d
        .iter()
        .map(|v| Complex64::new(lambda * v.re + floor, lambda * v.im + floor))
        .collect();
    let precond: Vec<Complex64> = d
        .iter()
        .zip(&shift)
        .map(|(v, s)| Complex64::new(1.0 / (v.re + s.re), 1.0 / (v.im + s.im)))
        .collect();
    let apply = |x: &[Complex64]| -> Vec<Complex64> {
        let jx = paths.jv(x, real_part);
        let mut y = paths.jtw(&jx, len);
        for ((yi, xi), s) in y.iter_mut().zip(x).zip(&shift) {
            *yi = *yi * scale + Complex64::new(s.re * xi.re, s.im * xi.im);
        }
        y
    };
    let mul = |a: &[Complex64], p: &[Complex64]| -> Vec<Complex64> {
        a.iter()
            .zip(p)
            .map(|(v, m)| Complex64::new(v.re * m.re, v.im * m.im))
            .collect()
    };
    let mut x = vec![Complex64::new(0.0, 0.0); len];
    let mut r = b.to_vec();
    let mut z = mul(&r, &precond);
    let mut p = z.clone();
    let mut rz = dot(&r, &z);
    let b_norm = dot(b, b).sqrt();
    let mut it = 0;
    while it < max_iters && dot(&r, &r).sqrt() > 1e-8 * b_norm {
        it += 1;
        let ap = apply(&p);
        let pap = dot(&p, &ap);
        if pap <= 0.0 {
            break;
        }
        let alpha = rz / pap;
        for ((xi, ri), (pi, api)) in x.iter_mut().zip(r.iter_mut()).zip(p.iter().zip(&ap)) {
            *xi += pi * alpha;
            *ri -= api * alpha;
        }
        z = mul(&r, &precond);
        let rz2 = dot(&r, &z);
        let beta = rz2 / rz;
        rz = rz2;
        for (pi, zi) in p.iter_mut().zip(&z) {
            *pi = zi + *pi * beta;
        }
    }
    (x, it)
}
