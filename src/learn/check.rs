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
/// unchecked and admits unreachable permutations (seen for the DCT-II at N = 8 … 32; the
/// recipe adds a complex-structure test for real parts, see `complex_structure_defect`).
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

/// For a real-part fit `Re(B · Q) = A`, the largest relative discriminant
/// `(tr N)² − 4 det N` over the sibling pairs of the recursion; `≤ 0` (up to rounding) when the
/// test passes. At a block of `s` columns, row classes `c` and `c + s/2` (mod `s`) span real
/// planes `V_c`, `V_{c+s/2}` that are graphs of maps `M_c`, `M_{c+s/2}` from the plane of the
/// left half to that of the right half; both are complex-linear for the complex structure
/// that the twiddles induce on the left plane, so `N = M_c M_{c+s/2}⁻¹` commutes with it and
/// has non-real eigenvalues (or is a multiple of the identity). A necessary condition beyond
/// the rank test of [`butterfly_residual`] (exact at N = 8 for the DCT-II; at N = 16 it still
/// admits permutations the polish cannot reach). Pairs with a degenerate plane are skipped.
pub(crate) fn complex_structure_defect<T: Scalar>(target: ArrayView2<T>, perm: &[usize]) -> f64 {
    let n = perm.len();
    let mut worst = f64::NEG_INFINITY;
    // Row classes of a block of `s` columns need two rows (`n / s ≥ 2`) to span a plane.
    let mut s = n / 2;
    while s >= 4 {
        let h = s / 2;
        for b in 0..n / s {
            let cols = &perm[b * s..(b + 1) * s];
            for c0 in 0..h {
                let class = |c: usize| -> Vec<Vec<f64>> {
                    (c..n)
                        .step_by(s)
                        .map(|k| cols.iter().map(|&j| target[(k, j)].to_c64().re).collect())
                        .collect()
                };
                let (x1, x2) = (class(c0), class(c0 + h));
                let (Some(u1), Some(u2)) = (plane(&x1), plane(&x2)) else {
                    continue;
                };
                let halves = |lo: usize, hi: usize| -> Vec<Vec<f64>> {
                    x1.iter().chain(&x2).map(|r| r[lo..hi].to_vec()).collect()
                };
                let (Some(pl), Some(pr)) = (plane(&halves(0, h)), plane(&halves(h, s))) else {
                    continue;
                };
                let graph = |u: &[Vec<f64>; 2]| -> Option<[[f64; 2]; 2]> {
                    let coords = |v: &[f64], p: &[Vec<f64>; 2]| [dot(v, &p[0]), dot(v, &p[1])];
                    let e = [coords(&u[0][..h], &pl), coords(&u[1][..h], &pl)];
                    let f = [coords(&u[0][h..], &pr), coords(&u[1][h..], &pr)];
                    Some(mul2(&inv2(&e)?, &f))
                };
                let (Some(m1), Some(m2)) = (graph(&u1), graph(&u2)) else {
                    continue;
                };
                let Some(m2i) = inv2(&m2) else { continue };
                let nm = mul2(&m1, &m2i);
                let tr = nm[0][0] + nm[1][1];
                let det = nm[0][0] * nm[1][1] - nm[0][1] * nm[1][0];
                let disc =
                    (tr * tr - 4.0 * det) / (tr * tr + 4.0 * det.abs()).max(f64::MIN_POSITIVE);
                worst = worst.max(disc);
            }
        }
        s /= 2;
    }
    worst
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// An orthonormal basis of the row span of `rows` when it is a plane (pivoted Gram–Schmidt);
/// `None` when its rank is below two.
fn plane(rows: &[Vec<f64>]) -> Option<[Vec<f64>; 2]> {
    let norm = |v: &[f64]| dot(v, v).sqrt();
    let largest = |vs: &[Vec<f64>]| {
        vs.iter()
            .map(|v| norm(v))
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
    };
    let (i1, n1) = largest(rows)?;
    if n1 == 0.0 {
        return None;
    }
    let u1: Vec<f64> = rows[i1].iter().map(|x| x / n1).collect();
    let rest: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| {
            let c = dot(r, &u1);
            r.iter().zip(&u1).map(|(a, b)| a - c * b).collect()
        })
        .collect();
    let (i2, n2) = largest(&rest)?;
    if n2 <= 1e-6 * n1 {
        return None;
    }
    let u2 = rest[i2].iter().map(|x| x / n2).collect();
    Some([u1, u2])
}

fn inv2(m: &[[f64; 2]; 2]) -> Option<[[f64; 2]; 2]> {
    let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    let scale = m.iter().flatten().fold(0.0f64, |a, v| a.max(v.abs()));
    if det.abs() <= 1e-8 * scale * scale || scale == 0.0 {
        return None;
    }
    Some([
        [m[1][1] / det, -m[0][1] / det],
        [-m[1][0] / det, m[0][0] / det],
    ])
}

fn mul2(a: &[[f64; 2]; 2], b: &[[f64; 2]; 2]) -> [[f64; 2]; 2] {
    std::array::from_fn(|i| std::array::from_fn(|j| a[i][0] * b[0][j] + a[i][1] * b[1][j]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Butterfly, ButterflyConfig, Init, LinearMap, C64};
    use ndarray::Array2;
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    /// `Re(B Q)` for a random complex butterfly `B` and gather permutation `q`.
    fn real_part_of_bq(n: usize, seed: u64) -> (Array2<f64>, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let cfg = ButterflyConfig {
            nblocks: 1,
            increasing_stride: true,
            init: Init::Randn,
            bias: false,
        };
        let b = Butterfly::<C64>::new(n, n, cfg, &mut rng)
            .unwrap()
            .to_dense();
        let mut q: Vec<usize> = (0..n).collect();
        q.shuffle(&mut rng);
        let mut t = Array2::zeros((n, n));
        for (i, &j) in q.iter().enumerate() {
            t.column_mut(j).assign(&b.column(i).mapv(|z| z.re));
        }
        (t, q)
    }

    /// Real parts of butterfly products pass both tests; random real matrices (and the
    /// reachable target under a wrong permutation) fail the complex-structure test.
    #[test]
    fn complex_structure_defect_separates_reachable_real_parts() {
        for n in [8usize, 16, 32] {
            for seed in 0..4 {
                let (t, q) = real_part_of_bq(n, seed);
                let perm = Permutation::new(q.clone()).unwrap();
                assert!(butterfly_residual(t.view(), &perm, true).unwrap() <= 1e-8);
                let d = complex_structure_defect(t.view(), &q);
                assert!(d <= 1e-8, "n={n} seed={seed}: defect {d:.2e}");

                let mut rng = StdRng::seed_from_u64(1000 + seed);
                let g = Array2::from_shape_fn((n, n), |_| f64::randn(&mut rng, 1.0));
                let d = complex_structure_defect(g.view(), &q);
                assert!(d > 1e-2, "random n={n} seed={seed}: defect {d:.2e}");
            }
        }
    }
}
