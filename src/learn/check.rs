//! An exact test of whether a dense matrix is a butterfly times a given permutation, used to
//! score hardening candidates before polishing them (Dao et al., ICML 2019, §3: a butterfly's
//! recursive 2×2 block structure makes every level a rank-one constraint).

use crate::butterfly::Permutation;
use crate::error::{check_len, check_shape, Result};
use crate::scalar::Scalar;
use ndarray::ArrayView2;
use num_complex::Complex64;

/// Relative residual `√(Σ σ_tail²) / ‖A‖_F` of `A = target` against the matrices `B · Q` with
/// `B` an increasing-stride butterfly and `Q` the gather `perm` (`(Qx)_i = x_{perm[i]}`).
///
/// Level `d` of the recursion (blocks of `n / 2^d` inputs) forces, for every block `b` and row
/// class `k mod n / 2^d`, the submatrix of rows `{k + j n / 2^d}` and columns
/// `{perm[i] : i ∈ block b}` to have rank one (its rows are multiples of one row of the
/// sub-butterfly); when only `Re(B Q)` is compared with the target (`real_part`), the real rank
/// is at most two. The residual sums the squared singular values beyond that rank over all
/// levels; it is zero when the target is reachable (computed from Gram matrices, so to about
/// `√ε ≈ 1e-8`). The test is necessary; for real parts it leaves the phases of the twiddles
/// unchecked and admits unreachable permutations (seen for the DCT-II at N = 16, 32).
pub fn butterfly_residual<T: Scalar>(
    target: ArrayView2<T>,
    perm: &Permutation,
    real_part: bool,
) -> Result<f64> {
    let n = perm.len();
    check_shape("target", target.dim(), (n, n))?;
    check_len("perm", perm.len(), target.ncols())?;
    let p = perm.as_slice();
    let rank = if real_part { 2 } else { 1 };
    let total: f64 = target
        .iter()
        .map(|a| {
            let z = a.to_c64();
            if real_part {
                z.re * z.re
            } else {
                z.norm_sqr()
            }
        })
        .sum();
    if total == 0.0 {
        return Ok(0.0);
    }
    let mut tail = 0.0;
    let mut block = n / 2;
    while block >= 1 {
        let rows = n / block;
        if rows.min(block) > rank {
            for b in 0..rows {
                let cols = &p[b * block..(b + 1) * block];
                for k in 0..block {
                    tail += tail_energy(rows, block, rank, |j, c| {
                        let z = target[(k + j * block, cols[c])].to_c64();
                        if real_part {
                            Complex64::new(z.re, 0.0)
                        } else {
                            z
                        }
                    });
                }
            }
        }
        block /= 2;
    }
    Ok((tail / total).sqrt())
}

/// `Σ_{i > rank} σ_i²` of the `r × c` matrix with entries `entry(i, j)`, from the eigenvalues
/// of its smaller Gram matrix (cyclic Jacobi on the Hermitian matrix).
fn tail_energy(r: usize, c: usize, rank: usize, entry: impl Fn(usize, usize) -> Complex64) -> f64 {
    let a: Vec<Complex64> = (0..r * c).map(|i| entry(i / c, i % c)).collect();
    let s = r.min(c);
    let mut g = vec![Complex64::new(0.0, 0.0); s * s];
    for i in 0..s {
        for j in 0..s {
            g[i * s + j] = if r <= c {
                (0..c).map(|t| a[i * c + t] * a[j * c + t].conj()).sum()
            } else {
                (0..r).map(|t| a[t * c + i].conj() * a[t * c + j]).sum()
            };
        }
    }
    let mut ev = hermitian_eigenvalues(&mut g, s);
    ev.sort_by(|x, y| y.total_cmp(x));
    ev.iter().skip(rank).map(|v| v.max(0.0)).sum()
}

/// Eigenvalues of the Hermitian `s × s` matrix `g` (row-major, overwritten) by cyclic Jacobi
/// rotations.
fn hermitian_eigenvalues(g: &mut [Complex64], s: usize) -> Vec<f64> {
    let scale: f64 = g.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
    for _sweep in 0..50 {
        let off: f64 = (0..s)
            .flat_map(|i| (0..s).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| g[i * s + j].norm_sqr())
            .sum();
        if off.sqrt() <= 1e-15 * scale || scale == 0.0 {
            break;
        }
        for p in 0..s {
            for q in p + 1..s {
                let apq = g[p * s + q];
                let m = apq.norm();
                if m == 0.0 {
                    continue;
                }
                let (app, aqq) = (g[p * s + p].re, g[q * s + q].re);
                // Rotate in the (p, q) plane: with e^{iφ} = apq / |apq| the problem is real.
                let ph = apq / m;
                let theta = 0.5 * (2.0 * m).atan2(aqq - app);
                let (c, sn) = (theta.cos(), theta.sin());
                for k in 0..s {
                    let gkp = g[k * s + p];
                    let gkq = g[k * s + q];
                    g[k * s + p] = gkp * c - gkq * ph.conj() * sn;
                    g[k * s + q] = gkp * ph * sn + gkq * c;
                }
                for k in 0..s {
                    let gpk = g[p * s + k];
                    let gqk = g[q * s + k];
                    g[p * s + k] = gpk * c - gqk * ph * sn;
                    g[q * s + k] = gpk * ph.conj() * sn + gqk * c;
                }
            }
        }
    }
    (0..s).map(|i| g[i * s + i].re).collect()
}
