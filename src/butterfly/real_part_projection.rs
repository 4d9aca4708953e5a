//! A complex increasing-stride butterfly whose real part is a given real matrix, built level
//! by level from the matrix alone — the exact counterpart, for real-part targets such as the
//! DCT and DST (Dao et al., ICML 2019, §4: `Re(B P)`), of the rank-one projection in
//! [`Butterfly::project`].
//!
//! With `B = T · (B_a ⊕ B_b)` recursively, row `k` of `B` restricted to a block of `s`
//! columns is a complex multiple `z_k r` of row `c = k mod s` of that block's sub-butterfly.
//! So the real parts of the rows in class `c` span (at most) the real plane
//! `V = {Re(z r) : z ∈ ℂ}` of the vector `r`, and `r` is that plane with a complex structure.
//! A parent row `r = (r_L, ρ r_R)` of a block of `2s` columns has the children's rows of class
//! `c mod s`; its plane `V` is then the graph of a real-linear map `M` from the left child's
//! plane to the right one's (read off the target), and `M` is complex-linear, so
//! `r = (r_L, M r_L)` carries the complex structure over (`M` acting on real and imaginary
//! parts). Where a row is real (its plane a line, as the rows `0` and `s/2` of the FFT's
//! sub-transforms are), the ratio `ρ` is fitted by least squares instead; where both children
//! are lines the parent's structure is free unless the next level fixes it: the rows of
//! classes `c` and `c + 2s` there share this row, so it is an eigenvector of
//! `M_{c+2s}⁻¹ M_c` (non-real eigenvalues for a generic butterfly; `−I` along the FFT's
//! lineage, where any structure extends). The real part does not determine `B`: conjugating
//! all rows of one parity, and the FFT's free structures, give others.

use super::projection::{butterfly_from_c64, check_projectable, project_twiddles, relative_error};
use super::Butterfly;
use crate::error::{Error, Result};
use crate::linear_map::LinearMap;
use crate::scalar::Scalar;
use ndarray::{s, Array2, ArrayView2};
use num_complex::Complex64;

type C = Complex64;

/// A sub-butterfly row up to a complex factor, and whether it is real (its real span a line).
#[derive(Debug, Clone)]
struct SubRow {
    v: Vec<C>,
    line: bool,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// An orthonormal basis of (up to two directions of) the row span of `rows` by pivoted
/// Gram–Schmidt, and the span's dimension capped at 3 (directions below `tol` times the
/// largest row norm do not count).
fn row_basis(rows: &[Vec<f64>], tol: f64) -> (Vec<Vec<f64>>, usize) {
    let scale = rows.iter().map(|r| dot(r, r).sqrt()).fold(0.0f64, f64::max);
    let mut rest: Vec<Vec<f64>> = rows.to_vec();
    let mut basis = Vec::new();
    let mut rank = 0;
    while rank < 3 && scale > 0.0 {
        let (i, norm) = rest
            .iter()
            .map(|r| dot(r, r).sqrt())
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("at least one row");
        if norm <= tol * scale {
            break;
        }
        let u: Vec<f64> = rest[i].iter().map(|x| x / norm).collect();
        for r in rest.iter_mut() {
            let c = dot(r, &u);
            r.iter_mut().zip(&u).for_each(|(a, b)| *a -= c * b);
        }
        if basis.len() < 2 {
            basis.push(u);
        }
        rank += 1;
    }
    (basis, rank)
}

/// The minimum-norm solution of the symmetric 2×2 system `g x = b` (pseudo-inverse).
fn solve_sym2(g: [[f64; 2]; 2], b: [f64; 2]) -> [f64; 2] {
    let tr = g[0][0] + g[1][1];
    let half = 0.5 * (g[0][0] - g[1][1]);
    let root = (half * half + g[0][1] * g[0][1]).sqrt();
    let (big, small) = (0.5 * tr + root, 0.5 * tr - root);
    if big <= 0.0 {
        return [0.0, 0.0];
    }
    if small > 1e-12 * big {
        let det = g[0][0] * g[1][1] - g[0][1] * g[1][0];
        return [
            (g[1][1] * b[0] - g[0][1] * b[1]) / det,
            (g[0][0] * b[1] - g[1][0] * b[0]) / det,
        ];
    }
    let u1 = [g[0][1], big - g[0][0]];
    let u2 = [big - g[1][1], g[1][0]];
    let n1 = u1[0] * u1[0] + u1[1] * u1[1];
    let n2 = u2[0] * u2[0] + u2[1] * u2[1];
    let (u, nu) = if n1 >= n2 { (u1, n1) } else { (u2, n2) };
    if nu == 0.0 {
        return [b[0] / big, b[1] / big];
    }
    let c = (u[0] * b[0] + u[1] * b[1]) / (big * nu);
    [c * u[0], c * u[1]]
}

/// Least squares over real equations `Σ_j cols[e][j] x_j = rhs[e]` in two unknowns.
fn lstsq2(cols: impl Iterator<Item = ([f64; 2], f64)>) -> [f64; 2] {
    let mut g = [[0.0; 2]; 2];
    let mut b = [0.0; 2];
    for (c, r) in cols {
        for i in 0..2 {
            b[i] += c[i] * r;
            for j in 0..2 {
                g[i][j] += c[i] * c[j];
            }
        }
    }
    solve_sym2(g, b)
}

/// The complex `z` (minimum norm) with `Re(z v) ≈ a` in least squares.
fn fit_re(v: &[C], a: &[f64]) -> C {
    let x = lstsq2(v.iter().zip(a).map(|(z, &y)| ([z.re, -z.im], y)));
    C::new(x[0], x[1])
}

/// `γ₀ e₀ + γ₁ e₁` with `γ` the least-squares coordinates of `x` in the restrictions of the
/// basis `e` to `part`: the vector of the plane `span e` whose `part` is `x`, when the
/// restrictions span a plane (`None` otherwise).
fn transport(e: &[Vec<f64>], x: &[C], part: std::ops::Range<usize>) -> Option<Vec<C>> {
    let (a, b) = (&e[0][part.clone()], &e[1][part]);
    let g = [[dot(a, a), dot(a, b)], [dot(b, a), dot(b, b)]];
    if g[0][0] * g[1][1] - g[0][1] * g[1][0] <= 1e-10 {
        return None;
    }
    let re: Vec<f64> = x.iter().map(|z| z.re).collect();
    let im: Vec<f64> = x.iter().map(|z| z.im).collect();
    let gr = solve_sym2(g, [dot(a, &re), dot(b, &re)]);
    let gi = solve_sym2(g, [dot(a, &im), dot(b, &im)]);
    let (g0, g1) = (C::new(gr[0], gi[0]), C::new(gr[1], gi[1]));
    Some(
        e[0].iter()
            .zip(&e[1])
            .map(|(&p, &q)| g0 * p + g1 * q)
            .collect(),
    )
}

/// The columns `A_i = K_i (H_iᵀ H_i)⁻¹ H_iᵀ F` (two vectors) of the map from the plane with
/// basis `f` (on columns `own`) to the other half of the plane with basis `g`, of which it
/// is the graph; `None` when `g`'s restriction to `own` is not a plane.
fn graph_map(
    f: &[Vec<f64>],
    g: &[Vec<f64>],
    own: std::ops::Range<usize>,
    other: std::ops::Range<usize>,
) -> Option<[Vec<f64>; 2]> {
    let h = [&g[0][own.clone()], &g[1][own]];
    let k = [&g[0][other.clone()], &g[1][other]];
    let hh = [
        [dot(h[0], h[0]), dot(h[0], h[1])],
        [dot(h[1], h[0]), dot(h[1], h[1])],
    ];
    if hh[0][0] * hh[1][1] - hh[0][1] * hh[1][0] <= 1e-10 {
        return None;
    }
    Some(std::array::from_fn(|j| {
        let c = solve_sym2(hh, [dot(h[0], &f[j]), dot(h[1], &f[j])]);
        k[0].iter()
            .zip(k[1])
            .map(|(a, b)| c[0] * a + c[1] * b)
            .collect()
    }))
}

/// The level-by-level construction.
struct Builder<'a> {
    a: ArrayView2<'a, f64>,
    tol: f64,
}

impl Builder<'_> {
    /// The rows of class `c` (mod `size`) restricted to the columns of block `b` of `size`.
    fn class_rows(&self, b: usize, c: usize, size: usize) -> Vec<Vec<f64>> {
        let n = self.a.nrows();
        (c..n)
            .step_by(size)
            .map(|k| self.a.slice(s![k, b * size..(b + 1) * size]).to_vec())
            .collect()
    }

    /// For a row of block `b` (size `size`, class `c`) whose children are both real: the
    /// structure the next level fixes on its plane `span e` (the eigenvector of
    /// `M_{c+size}⁻¹ M_c`), or `None` when that level leaves it free.
    fn lookahead(&self, b: usize, c: usize, size: usize, e: &[Vec<f64>]) -> Option<Vec<C>> {
        let up = 2 * size;
        if 2 * up > self.a.nrows() {
            return None;
        }
        let side = b % 2;
        let own = side * size..(side + 1) * size;
        let other = (1 - side) * size..(2 - side) * size;
        let maps: Vec<[Vec<f64>; 2]> = [c, c + size]
            .into_iter()
            .map(|cc| {
                let (g, d) = row_basis(&self.class_rows(b / 2, cc, up), self.tol);
                if d == 2 {
                    graph_map(e, &g, own.clone(), other.clone())
                } else {
                    None
                }
            })
            .collect::<Option<_>>()?;
        let (a1, a2) = (&maps[0], &maps[1]);
        let aa = [
            [dot(&a2[0], &a2[0]), dot(&a2[0], &a2[1])],
            [dot(&a2[1], &a2[0]), dot(&a2[1], &a2[1])],
        ];
        if aa[0][0] * aa[1][1] - aa[0][1] * aa[1][0] <= 1e-10 * (aa[0][0] + aa[1][1]).powi(2) {
            return None;
        }
        let cols: [[f64; 2]; 2] =
            std::array::from_fn(|j| solve_sym2(aa, [dot(&a2[0], &a1[j]), dot(&a2[1], &a1[j])]));
        let m = [[cols[0][0], cols[1][0]], [cols[0][1], cols[1][1]]];
        let tr = m[0][0] + m[1][1];
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        let disc = tr * tr - 4.0 * det;
        if disc >= -1e-8 * (tr * tr + 4.0 * det.abs()) {
            return None;
        }
        let nu = C::new(0.5 * tr, 0.5 * (-disc).sqrt());
        let w1 = [C::new(m[0][1], 0.0), nu - m[0][0]];
        let w2 = [nu - m[1][1], C::new(m[1][0], 0.0)];
        let norm = |w: &[C; 2]| w[0].norm_sqr() + w[1].norm_sqr();
        let w = if norm(&w1) >= norm(&w2) { w1 } else { w2 };
        Some(
            e[0].iter()
                .zip(&e[1])
                .map(|(&p, &q)| w[0] * p + w[1] * q)
                .collect(),
        )
    }

    /// The row of class `c` of block `b` of size `2s` from its children's rows `l`, `r`.
    fn combine(&self, b: usize, c: usize, s: usize, l: &SubRow, r: &SubRow) -> SubRow {
        let size = 2 * s;
        let data = self.class_rows(b, c, size);
        let (e, d) = row_basis(&data, self.tol);
        let concat = |x: &[C], y: &[C]| -> Vec<C> { x.iter().chain(y).copied().collect() };
        if d == 0 {
            return SubRow {
                v: concat(&l.v, &r.v),
                line: l.line && r.line,
            };
        }
        if d >= 2 {
            if !l.line {
                if let Some(v) = transport(&e, &l.v, 0..s) {
                    return SubRow { v, line: false };
                }
            }
            if !r.line {
                if let Some(v) = transport(&e, &r.v, s..size) {
                    return SubRow { v, line: false };
                }
            }
            if l.line && r.line {
                let v = self.lookahead(b, c, size, &e).unwrap_or_else(|| {
                    let nl: f64 = l.v.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
                    let nr: f64 = r.v.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
                    let rho = C::new(0.0, nl / nr.max(f64::MIN_POSITIVE));
                    concat(&l.v, &r.v.iter().map(|z| z * rho).collect::<Vec<_>>())
                });
                return SubRow { v, line: false };
            }
        }
        if l.line && r.line {
            return SubRow {
                v: e[0].iter().map(|&x| C::new(x, 0.0)).collect(),
                line: true,
            };
        }
        let p: Vec<C> = data.iter().map(|x| fit_re(&l.v, &x[..s])).collect();
        let q: Vec<C> = data.iter().map(|x| fit_re(&r.v, &x[s..])).collect();
        let scaled = |x: &[C], k: C| -> Vec<C> { x.iter().map(|z| z * k).collect() };
        let v = match (l.line, r.line) {
            (true, _) => {
                // r = (σ l, r_R): Re(q_k σ) = Re(p_k).
                let x = lstsq2(q.iter().zip(&p).map(|(q, p)| ([q.re, -q.im], p.re)));
                concat(&scaled(&l.v, C::new(x[0], x[1])), &r.v)
            }
            (false, true) => {
                let x = lstsq2(p.iter().zip(&q).map(|(p, q)| ([p.re, -p.im], q.re)));
                concat(&l.v, &scaled(&r.v, C::new(x[0], x[1])))
            }
            (false, false) => {
                let num: C = p.iter().zip(&q).map(|(p, q)| p.conj() * q).sum();
                let den: f64 = p.iter().map(|p| p.norm_sqr()).sum();
                if den > 0.0 {
                    concat(&l.v, &scaled(&r.v, num / den))
                } else {
                    concat(&scaled(&l.v, C::new(0.0, 0.0)), &r.v)
                }
            }
        };
        SubRow { v, line: false }
    }

    /// The complex matrix `W` (a butterfly when the construction is consistent) with
    /// `Re W ≈ a`.
    fn build(&self) -> Array2<C> {
        let n = self.a.nrows();
        let mut cur: Vec<Vec<SubRow>> = (0..n)
            .map(|_| {
                vec![SubRow {
                    v: vec![C::new(1.0, 0.0)],
                    line: true,
                }]
            })
            .collect();
        let mut s = 1;
        while s < n {
            let size = 2 * s;
            cur = (0..n / size)
                .map(|b| {
                    (0..size)
                        .map(|c| self.combine(b, c, s, &cur[2 * b][c % s], &cur[2 * b + 1][c % s]))
                        .collect()
                })
                .collect();
            s = size;
        }
        let mut w = Array2::zeros((n, n));
        for (k, row) in cur[0].iter().enumerate() {
            let target = self.a.row(k).to_vec();
            let z = fit_re(&row.v, &target);
            for (j, v) in row.v.iter().enumerate() {
                w[(k, j)] = z * v;
            }
        }
        w
    }
}

impl<T: Scalar> Butterfly<T> {
    /// A complex increasing-stride butterfly `B` (one block, no bias, size `n × n` with `n` a
    /// power of two ≥ 2) with `Re B ≈ Re dense`, built from the real part of `dense` level by
    /// level (see the module documentation: the planes spanned by each class of rows carry
    /// the sub-butterflies' rows, passed from level to level by the maps between them), then
    /// made an exact butterfly by [`Butterfly::project`]; and the relative Frobenius error
    /// `‖Re B − Re dense‖_F / ‖Re dense‖_F`. Exact to rounding when `Re dense` is the real
    /// part of a butterfly (the FFT-like transforms: DCT and DST under the permutations of
    /// their fast algorithms, Hartley, the real part of the DFT; and generic butterflies);
    /// otherwise a starting point. Requires a complex scalar type.
    pub fn project_real_part(dense: ArrayView2<T>) -> Result<(Self, f64)> {
        check_projectable(dense.dim())?;
        if !T::IS_COMPLEX {
            return Err(Error::InvalidArgument {
                what: "T",
                message: "a real-part projection needs complex twiddles".into(),
            });
        }
        let a = dense.mapv(|v| v.to_c64().re);
        let eps = crate::scalar::RealScalar::to_f64(<T::Real as num_traits::Float>::epsilon());
        let w = Builder {
            a: a.view(),
            tol: (1e3 * eps).sqrt().max(1e-7),
        }
        .build();
        let b: Self = butterfly_from_c64(dense.nrows(), project_twiddles(w))?;
        let approx = b.to_dense();
        let rel = relative_error(
            approx
                .iter()
                .zip(a.iter())
                .map(|(x, y)| ((x.to_c64().re - y).powi(2), y * y)),
        );
        Ok((b, rel))
    }
}
