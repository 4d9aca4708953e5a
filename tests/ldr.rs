//! Low displacement rank matrices: every fast multiply against the explicit Krylov
//! construction `W = Σ K(A, gᵢ) K(B, hᵢ)ᵀ` built here from the documented parameter layout,
//! gradients against finite differences, the displacement equation, exact Toeplitz matrices,
//! and typed errors.

mod common;
use common::*;
use kaleidoscope::{
    Differentiable, Error, Ldr, LdrClass, LdrConfig, LinearMap, LowRank, Scalar, C64,
};
use ndarray::{s, Array1, Array2};
use proptest::prelude::*;

const CLASSES: [LdrClass; 10] = [
    LdrClass::ToeplitzLike { corner: true },
    LdrClass::ToeplitzLike { corner: false },
    LdrClass::HankelLike { corner: true },
    LdrClass::HankelLike { corner: false },
    LdrClass::VandermondeLike,
    LdrClass::Subdiagonal {
        corner: false,
        tied: false,
    },
    LdrClass::Subdiagonal {
        corner: true,
        tied: false,
    },
    LdrClass::Subdiagonal {
        corner: true,
        tied: true,
    },
    LdrClass::Tridiagonal {
        corners: false,
        tied: false,
    },
    LdrClass::Tridiagonal {
        corners: true,
        tied: true,
    },
];

type M = Array2<C64>;

/// `Z_f`: ones on the subdiagonal, `f` at `(0, n−1)`.
fn shift(n: usize, f: f64) -> M {
    let mut z = M::zeros((n, n));
    for i in 1..n {
        z[(i, i - 1)] = C64::new(1.0, 0.0);
    }
    z[(0, n - 1)] += C64::new(f, 0.0);
    z
}

/// A learned subdiagonal or tridiagonal from its documented layout; returns the entries used.
fn learned(n: usize, p: &[C64], tri: bool, corners: bool) -> (M, usize) {
    let mut m = M::zeros((n, n));
    for t in 1..n {
        m[(t, t - 1)] = p[t - 1];
    }
    let mut used = n - 1;
    if tri {
        for t in 0..n {
            m[(t, t)] += p[n - 1 + t];
        }
        for t in 1..n {
            m[(t - 1, t)] += p[2 * n - 1 + t - 1];
        }
        used = 3 * n - 2;
        if corners {
            m[(0, n - 1)] += p[used];
            m[(n - 1, 0)] += p[used + 1];
            used += 2;
        }
    } else if corners {
        m[(0, n - 1)] += p[used];
        used += 1;
    }
    (m, used)
}

/// The Krylov operators `(A, B)` of `class` from the operator parameters `p`.
fn operators(class: LdrClass, n: usize, p: &[C64]) -> (M, M) {
    match class {
        LdrClass::ToeplitzLike { corner } | LdrClass::HankelLike { corner } => {
            let (a, b) = if corner { (1.0, -1.0) } else { (0.0, 0.0) };
            assert!(p.is_empty());
            (shift(n, a), shift(n, b))
        }
        LdrClass::VandermondeLike => {
            assert_eq!(p.len(), n);
            (M::from_diag(&Array1::from(p.to_vec())), shift(n, 0.0))
        }
        LdrClass::Subdiagonal { corner, tied }
        | LdrClass::Tridiagonal {
            corners: corner,
            tied,
        } => {
            let tri = matches!(class, LdrClass::Tridiagonal { .. });
            let (a, used) = learned(n, p, tri, corner);
            if tied {
                assert_eq!(p.len(), used);
                (a.clone(), a)
            } else {
                let (b, used_b) = learned(n, &p[used..], tri, corner);
                assert_eq!(p.len(), used + used_b);
                (a, b)
            }
        }
    }
}

/// `K(M, v) = [v, M v, …, M^{n−1} v]`.
fn krylov(m: &M, v: &[C64]) -> M {
    let n = v.len();
    let mut k = M::zeros((n, n));
    let mut p = Array1::from(v.to_vec());
    for j in 0..n {
        k.column_mut(j).assign(&p);
        p = m.dot(&p);
    }
    k
}

/// The explicit `out × in` matrix of `m`, from its public generators and operator entries.
fn reference<T: Scalar>(m: &Ldr<T>) -> Array2<T> {
    let n = m.n();
    let c = |v: &T| v.to_c64();
    let ops: Vec<C64> = m.operator_params().iter().map(c).collect();
    let (a, b) = operators(m.class(), n, &ops);
    let mut w = M::zeros((n, n));
    for i in 0..m.rank() {
        let g: Vec<C64> = m.g().row(i).iter().map(c).collect();
        let h: Vec<C64> = m.h().row(i).iter().map(c).collect();
        w = w + krylov(&a, &g).dot(&krylov(&b, &h).t());
    }
    if matches!(m.class(), LdrClass::HankelLike { .. }) {
        w.invert_axis(ndarray::Axis(0));
    }
    w.slice(s![..m.out_features(), ..m.in_features()])
        .mapv(|z| T::from_parts(z.re, z.im))
}

/// A random map with every parameter perturbed: operator entries near their initial values
/// (subdiagonals near 1, the rest near 0, noise `0.3` for `n ≤ 16` and `0.05` above, so that
/// the powers `M^k` stay moderate), and a random bias.
fn random_ldr<T: Scalar>(
    inp: usize,
    out: usize,
    class: LdrClass,
    rank: usize,
    bias: bool,
    seed: u64,
) -> Ldr<T> {
    let mut r = rng(seed);
    let cfg = LdrConfig { class, rank, bias };
    let mut m = Ldr::<T>::new(inp, out, cfg, &mut r).unwrap();
    let n = m.n();
    let gh = 2 * rank * n;
    let nops = m.operator_params().len();
    let p = m.params_mut();
    for v in &mut p[..gh] {
        *v = T::randn(&mut r, 1.0);
    }
    let noise = if n <= 16 { 0.3 } else { 0.05 };
    for v in &mut p[gh..gh + nops] {
        *v += T::randn(&mut r, noise);
    }
    for v in &mut p[gh + nops..] {
        *v = T::randn(&mut r, 1.0);
    }
    m
}

/// `apply`, `apply_transpose`, `apply_adjoint`, `to_dense` and `krylov_operators` against the
/// explicit construction.
fn check_products<T: Scalar>(m: &Ldr<T>, batch: usize, seed: u64, tol: f64) {
    let w = reference(m);
    let d = m.to_dense();
    assert!(
        rel_err(d.view(), w.view()) < tol,
        "to_dense {}",
        rel_err(d.view(), w.view())
    );
    let x = randn::<T>(batch, m.in_features(), seed);
    let mut want = matmul_xwt(x.view(), w.view());
    if let Some(b) = m.bias() {
        for mut row in want.rows_mut() {
            row.iter_mut().zip(b).for_each(|(v, &bb)| *v += bb);
        }
    }
    let got = m.apply(x.view()).unwrap();
    assert!(
        rel_err(got.view(), want.view()) < tol,
        "apply {}",
        rel_err(got.view(), want.view())
    );
    let y = randn::<T>(batch, m.out_features(), seed + 1);
    let wt = w.t().to_owned();
    let got = m.apply_transpose(y.view()).unwrap();
    let want = matmul_xwt(y.view(), wt.view());
    assert!(
        rel_err(got.view(), want.view()) < tol,
        "transpose {}",
        rel_err(got.view(), want.view())
    );
    let wh = conj_t(w.view());
    let got = m.apply_adjoint(y.view()).unwrap();
    let want = matmul_xwt(y.view(), wh.view());
    assert!(
        rel_err(got.view(), want.view()) < tol,
        "adjoint {}",
        rel_err(got.view(), want.view())
    );
}

/// The quadratic Horner multiply agrees with the fast one and with the explicit matrix.
fn check_horner<T: Scalar>(m: &Ldr<T>, batch: usize, seed: u64) {
    let x = randn::<T>(batch, m.in_features(), seed + 5);
    let fast = m.apply(x.view()).unwrap();
    let slow = m.apply_horner(x.view()).unwrap();
    assert!(
        rel_err(slow.view(), fast.view()) < 1e-10,
        "horner vs fast {}",
        rel_err(slow.view(), fast.view())
    );
    let mut want = matmul_xwt(x.view(), reference(m).view());
    if let Some(b) = m.bias() {
        for mut row in want.rows_mut() {
            row.iter_mut().zip(b).for_each(|(v, &bb)| *v += bb);
        }
    }
    assert!(rel_err(slow.view(), want.view()) < 1e-10);
}

/// The operators the map reports are the ones the layout describes.
fn check_operators<T: Scalar>(m: &Ldr<T>) {
    let ops: Vec<C64> = m.operator_params().iter().map(|v| v.to_c64()).collect();
    let (a, b) = operators(m.class(), m.n(), &ops);
    let (ga, gb) = m.krylov_operators();
    let cast = |x: &M| x.mapv(|z| T::from_parts(z.re, z.im));
    assert!(rel_err(ga.view(), cast(&a).view()) == 0.0);
    assert!(rel_err(gb.view(), cast(&b).view()) == 0.0);
}

/// Backward against central finite differences of `L = Re Σ c̄ ⊙ y`.
fn check_backward_fd<T: Scalar>(m: &Ldr<T>, batch: usize, seed: u64) {
    let x = randn::<T>(batch, m.in_features(), seed);
    let c = randn::<T>(batch, m.out_features(), seed + 2);
    let mut g = vec![T::zero(); m.params().len()];
    let dx = m.backward(x.view(), c.view(), &mut g).unwrap();
    let (fdx, fdp) = finite_diff_grads(m, &x, &c, 1e-6);
    assert!(
        rel_err(dx.view(), fdx.view()) < 1e-6,
        "dx {}",
        rel_err(dx.view(), fdx.view())
    );
    assert!(rel_err_vec(&g, &fdp) < 1e-6, "dθ {}", rel_err_vec(&g, &fdp));
}

/// Backward at larger sizes: `dx = dy W̄` against the explicit matrix, and the parameter
/// gradient against a five-point central difference along a random direction (the loss is a
/// polynomial of degree up to `n` in the operator entries, so the three-point rule's `O(ε²)`
/// error would be too large).
fn check_backward_directional<T: Scalar>(m: &Ldr<T>, batch: usize, seed: u64) {
    let x = randn::<T>(batch, m.in_features(), seed);
    let c = randn::<T>(batch, m.out_features(), seed + 2);
    let mut g = vec![T::zero(); m.params().len()];
    let dx = m.backward(x.view(), c.view(), &mut g).unwrap();
    let wh = conj_t(reference(m).view());
    let want = matmul_xwt(c.view(), wh.view());
    assert!(
        rel_err(dx.view(), want.view()) < 1e-9,
        "dx {}",
        rel_err(dx.view(), want.view())
    );
    let loss = |mm: &Ldr<T>| -> f64 {
        let y = mm.apply(x.view()).unwrap();
        y.iter()
            .zip(c.iter())
            .map(|(a, b)| (b.to_c64().conj() * a.to_c64()).re)
            .sum()
    };
    let mut r = rng(seed + 3);
    let dir: Vec<T> = (0..g.len()).map(|_| T::randn(&mut r, 1.0)).collect();
    let eps = 1e-5;
    let at = |k: f64| {
        let mut mk = m.clone();
        for (p, &d) in mk.params_mut().iter_mut().zip(&dir) {
            *p += d * T::from_f64(k * eps);
        }
        loss(&mk)
    };
    let fd = (8.0 * (at(1.0) - at(-1.0)) - (at(2.0) - at(-2.0))) / (12.0 * eps);
    let pred: f64 = g
        .iter()
        .zip(&dir)
        .map(|(a, d)| (a.to_c64().conj() * d.to_c64()).re)
        .sum();
    assert!(
        (fd - pred).abs() < 1e-7 * (1.0 + fd.abs()),
        "directional {fd} vs {pred}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Small shapes: every class, rectangular, with and without bias; f64 and complex; the
    /// products against the explicit construction and backward against finite differences.
    #[test]
    fn small_maps_match_krylov_construction_and_finite_differences(
        ci in 0usize..10, inp in 1usize..10, out in 1usize..10, rank_frac in 0.0f64..1.0,
        bias in any::<bool>(), batch in 0usize..5, seed in 0u64..10_000,
    ) {
        let class = CLASSES[ci];
        let n = inp.max(out);
        let rank = 1 + ((n.min(3) - 1) as f64 * rank_frac) as usize;
        let m = random_ldr::<f64>(inp, out, class, rank, bias, seed);
        check_operators(&m);
        check_products(&m, batch, seed, 1e-12);
        check_horner(&m, batch, seed);
        check_backward_fd(&m, batch.max(1), seed);
        let m = random_ldr::<C64>(inp, out, class, rank, bias, seed + 1);
        check_operators(&m);
        check_products(&m, batch, seed, 1e-12);
        check_backward_fd(&m, batch.max(1), seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Sizes where the subdiagonal multiply divides and conquers (leaves of 8 indices) and shifts
    /// use FFTs of awkward lengths; odd batches exercise the pairing of real rows.
    #[test]
    fn larger_maps_match_krylov_construction(
        ci in 0usize..10, inp in 20usize..140, out in 20usize..140, rank in 1usize..4,
        batch in 1usize..6, seed in 0u64..10_000,
    ) {
        let class = CLASSES[ci];
        let m = random_ldr::<f64>(inp, out, class, rank, true, seed);
        check_products(&m, batch, seed, 1e-10);
        check_horner(&m, batch, seed);
        check_backward_directional(&m, batch, seed);
        let m = random_ldr::<C64>(inp, out, class, rank, false, seed + 1);
        check_products(&m, batch, seed, 1e-10);
        check_horner(&m, batch, seed);
        check_backward_directional(&m, batch, seed);
    }
}

#[test]
fn single_precision_matches_double() {
    for (i, &class) in CLASSES.iter().enumerate() {
        let m64 = random_ldr::<f64>(70, 90, class, 2, true, i as u64);
        let m32 = Ldr::<f32>::from_params(
            70,
            90,
            LdrConfig {
                class,
                rank: 2,
                bias: true,
            },
            m64.params().iter().map(|&v| v as f32).collect(),
        )
        .unwrap();
        let x = randn::<f64>(5, 70, 9);
        let y64 = m64.apply(x.view()).unwrap();
        let y32 = m32.apply(x.mapv(|v| v as f32).view()).unwrap();
        let e = rel_err(y32.mapv(|v| v as f64).view(), y64.view());
        assert!(e < 1e-4, "{class:?}: {e}");
    }
}

/// The displacement equation of a Toeplitz-like matrix: `Z_1 W − W Z_{-1} =
/// −2 Σ gᵢ (Z_{-1}ᵀ hᵢ)ᵀ`, of rank exactly `r` for random generators; for Hankel-like
/// `Z_1ᵀ W − W Z_{-1} = −2 Σ (J gᵢ)(Z_{-1}ᵀ hᵢ)ᵀ`; without corners (`Z_0`) the Sylvester
/// displacement has rank at most `2r`.
#[test]
fn toeplitz_like_dense_satisfies_displacement_equation() {
    for (n, r) in [(2usize, 1usize), (7, 2), (16, 3), (33, 5)] {
        for hankel in [false, true] {
            let class = if hankel {
                LdrClass::HankelLike { corner: true }
            } else {
                LdrClass::ToeplitzLike { corner: true }
            };
            let m = random_ldr::<C64>(n, n, class, r, false, n as u64);
            let w = m.to_dense();
            let z1 = shift(n, 1.0);
            let zm = shift(n, -1.0);
            let a = if hankel { z1.t().to_owned() } else { z1 };
            let disp = a.dot(&w) - w.dot(&zm);
            let mut want = M::zeros((n, n));
            for i in 0..r {
                let mut g = m.g().row(i).to_owned();
                if hankel {
                    g.invert_axis(ndarray::Axis(0));
                }
                let zh = zm.t().dot(&m.h().row(i));
                for p in 0..n {
                    for q in 0..n {
                        want[(p, q)] -= 2.0 * g[p] * zh[q];
                    }
                }
            }
            assert!(
                rel_err(disp.view(), want.view()) < 1e-12,
                "n={n} hankel={hankel}"
            );
            let (_, err_r) = LowRank::project(disp.view(), r).unwrap();
            assert!(err_r < 1e-10, "displacement rank above {r}: {err_r}");
            if r > 1 && n >= r {
                let (_, err_less) = LowRank::project(disp.view(), r - 1).unwrap();
                assert!(err_less > 1e-3, "displacement rank below {r}");
            }
        }
    }
    let (n, r) = (12, 2);
    let m = random_ldr::<f64>(n, n, LdrClass::ToeplitzLike { corner: false }, r, false, 5);
    let w = m.to_dense().mapv(|v| C64::new(v, 0.0));
    let z = shift(n, 0.0);
    let disp = z.dot(&w) - w.dot(&z);
    let (_, err) = LowRank::project(disp.view(), 2 * r).unwrap();
    assert!(err < 1e-10, "Z_0-displacement rank above 2r: {err}");
}

fn toeplitz_dense<T: Scalar>(col: &[T], row: &[T]) -> Array2<T> {
    Array2::from_shape_fn((col.len(), row.len()), |(i, j)| {
        if i >= j {
            col[i - j]
        } else {
            row[j - i]
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(30))]

    /// Any Toeplitz matrix, square or rectangular, is a Toeplitz-like LDR matrix of rank 2.
    #[test]
    fn rank_two_toeplitz_like_represents_any_toeplitz(m in 1usize..40, k in 1usize..40, seed in 0u64..10_000) {
        let col = randn::<f64>(1, m, seed).into_raw_vec_and_offset().0;
        let mut row = randn::<f64>(1, k, seed + 1).into_raw_vec_and_offset().0;
        row[0] = col[0];
        let t = Ldr::toeplitz(&col, &row).unwrap();
        prop_assert_eq!(t.rank(), if m.max(k) == 1 { 1 } else { 2 });
        prop_assert_eq!(t.class(), LdrClass::ToeplitzLike { corner: true });
        let want = toeplitz_dense(&col, &row);
        prop_assert!(rel_err(t.to_dense().view(), want.view()) < 1e-12);
        prop_assert!(rel_err(reference(&t).view(), want.view()) < 1e-12);
        let x = randn::<f64>(3, k, seed + 2);
        let y = t.apply(x.view()).unwrap();
        prop_assert!(rel_err(y.view(), matmul_xwt(x.view(), want.view()).view()) < 1e-12);

        let colc = randn::<C64>(1, m, seed).into_raw_vec_and_offset().0;
        let mut rowc = randn::<C64>(1, k, seed + 1).into_raw_vec_and_offset().0;
        rowc[0] = colc[0];
        let t = Ldr::toeplitz(&colc, &rowc).unwrap();
        prop_assert!(rel_err(t.to_dense().view(), toeplitz_dense(&colc, &rowc).view()) < 1e-12);
    }
}

/// The classes `from_displacement` accepts (their operators can be `Z_1`, `Z_{-1}`).
const DISPLACEMENT_CLASSES: [LdrClass; 4] = [
    LdrClass::ToeplitzLike { corner: true },
    LdrClass::HankelLike { corner: true },
    LdrClass::Subdiagonal {
        corner: true,
        tied: false,
    },
    LdrClass::Tridiagonal {
        corners: true,
        tied: false,
    },
];

/// `Z_1 W − W Z_{-1}`.
fn displacement(w: &M) -> M {
    let n = w.nrows();
    shift(n, 1.0).dot(w) - w.dot(&shift(n, -1.0))
}

fn frob(a: &M) -> f64 {
    a.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(30))]

    /// A square matrix of displacement rank `r` (a random Toeplitz-like or Hankel-like LDR
    /// matrix) is recovered exactly at rank `r`; at rank `r − 1` the displacement of the
    /// result is the best rank-`r − 1` approximation of the target's (Eckart–Young, checked
    /// against `LowRank::project`), the reported error is `‖dense − W‖_F`, and the operators
    /// are `Z_1`, `Z_{-1}` for every accepted class.
    #[test]
    fn from_displacement_recovers_displacement_rank_r(
        n in 1usize..40, rank_frac in 0.0f64..1.0, ci in 0usize..4, complex in any::<bool>(),
        seed in 0u64..10_000,
    ) {
        let class = DISPLACEMENT_CLASSES[ci];
        let r = 1 + ((n.min(5) - 1) as f64 * rank_frac) as usize;
        let src = if matches!(class, LdrClass::HankelLike { .. }) {
            LdrClass::HankelLike { corner: true }
        } else {
            LdrClass::ToeplitzLike { corner: true }
        };
        let (w, fit, err, fit_less, err_less) = if complex {
            let w = random_ldr::<C64>(n, n, src, r, false, seed).to_dense();
            let (m, e) = Ldr::from_displacement(w.view(), class, r).unwrap();
            let less = (r > 1).then(|| Ldr::from_displacement(w.view(), class, r - 1).unwrap());
            check_operators(&m);
            let (ml, el) = less.map(|(m, e)| (Some(m.to_dense()), e)).unwrap_or((None, 0.0));
            (w, m.to_dense(), e, ml, el)
        } else {
            let w = random_ldr::<f64>(n, n, src, r, false, seed).to_dense();
            let (m, e) = Ldr::from_displacement(w.view(), class, r).unwrap();
            check_operators(&m);
            prop_assert_eq!(m.rank(), r);
            prop_assert_eq!(m.class(), class);
            let (a, b) = m.krylov_operators();
            let c = |x: &Array2<f64>| x.mapv(|v| C64::new(v, 0.0));
            prop_assert!(rel_err(c(&a).view(), shift(n, 1.0).view()) == 0.0);
            prop_assert!(rel_err(c(&b).view(), shift(n, -1.0).view()) == 0.0);
            let less = (r > 1).then(|| Ldr::from_displacement(w.view(), class, r - 1).unwrap());
            let (ml, el) = less
                .map(|(m, e)| (Some(c(&m.to_dense())), e))
                .unwrap_or((None, 0.0));
            (c(&w), c(&m.to_dense()), e, ml, el)
        };
        let scale = frob(&w);
        prop_assert!(frob(&(&fit - &w)) < 1e-9 * scale, "rank {} not exact", r);
        prop_assert!((err - frob(&(&fit - &w))).abs() < 1e-9 * scale);
        if let Some(fl) = fit_less {
            // The displacement's residual is the SVD tail; J-reverse rows for Hankel-like.
            let flip = |x: &M| {
                let mut y = x.clone();
                if matches!(class, LdrClass::HankelLike { .. }) {
                    y.invert_axis(ndarray::Axis(0));
                }
                y
            };
            let dw = displacement(&flip(&w));
            let resid = frob(&(displacement(&flip(&fl)) - &dw));
            let (_, tail) = LowRank::project(dw.view(), r - 1).unwrap();
            prop_assert!((resid - tail).abs() < 1e-9 * scale, "{} vs {}", resid, tail);
            prop_assert!((err_less - frob(&(&fl - &w))).abs() < 1e-9 * scale);
            prop_assert!(err_less > 1e-6 * scale, "rank {} should not be exact", r - 1);
        }
    }

    /// Rectangular targets, any values: the reported error is the true one, and at full rank
    /// `n = max(out, in)` the fit is exact.
    #[test]
    fn from_displacement_rectangular_full_rank_is_exact(
        out in 1usize..30, inp in 1usize..30, ci in 0usize..4, seed in 0u64..10_000,
    ) {
        let class = DISPLACEMENT_CLASSES[ci];
        let w = randn::<f64>(out, inp, seed);
        let n = out.max(inp);
        let (m, e) = Ldr::from_displacement(w.view(), class, n).unwrap();
        prop_assert_eq!((m.out_features(), m.in_features()), (out, inp));
        prop_assert!(rel_err(m.to_dense().view(), w.view()) < 1e-10);
        prop_assert!(e < 1e-10 * (1.0 + w.iter().map(|v| v * v).sum::<f64>().sqrt()));
        let r = 1 + seed as usize % n;
        let (m, e) = Ldr::from_displacement(w.view(), class, r).unwrap();
        let d = &m.to_dense() - &w;
        let true_err = d.iter().map(|v| v * v).sum::<f64>().sqrt();
        prop_assert!((e - true_err).abs() <= 1e-12 * (1.0 + true_err));
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let mut r = rng(0);
    let cfg = |rank| LdrConfig {
        class: LdrClass::Subdiagonal {
            corner: true,
            tied: false,
        },
        rank,
        bias: true,
    };
    assert!(matches!(
        Ldr::<f64>::new(4, 6, cfg(0), &mut r),
        Err(Error::InvalidArgument { what: "rank", .. })
    ));
    let e = Ldr::<f64>::new(4, 6, cfg(7), &mut r).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { what: "rank", .. }));
    assert!(e.to_string().contains("1..=6"), "{e}");
    assert!(Ldr::<f64>::new(4, 6, cfg(6), &mut r).is_ok());
    assert!(matches!(
        Ldr::<f64>::new(0, 6, cfg(1), &mut r),
        Err(Error::Zero {
            what: "in_features"
        })
    ));
    assert!(matches!(
        Ldr::<f64>::new(3, 0, cfg(1), &mut r),
        Err(Error::Zero {
            what: "out_features"
        })
    ));
    // Subdiagonal with corner, n = 6, rank 2: G, H (24) + two operators (6 each) + bias (6).
    let m = Ldr::<f64>::new(4, 6, cfg(2), &mut r).unwrap();
    assert_eq!(m.num_params(), 24 + 12 + 6);
    assert_eq!(
        Ldr::<f64>::from_params(4, 6, cfg(2), vec![0.0; 41]).unwrap_err(),
        Error::BufferLength {
            what: "params",
            expected: 42,
            got: 41
        }
    );
    let g = Array2::<f64>::zeros((2, 6));
    let h5 = Array2::<f64>::zeros((2, 5));
    let class = LdrClass::ToeplitzLike { corner: true };
    assert!(matches!(
        Ldr::from_generators(4, 6, class, g.view(), h5.view(), &[], None),
        Err(Error::Shape { what: "h", .. })
    ));
    assert!(matches!(
        Ldr::from_generators(4, 6, class, g.view(), g.view(), &[1.0], None),
        Err(Error::BufferLength {
            what: "operators",
            expected: 0,
            got: 1
        })
    ));
    assert!(matches!(
        Ldr::from_generators(4, 6, class, g.view(), g.view(), &[], Some(&[0.0; 4])),
        Err(Error::BufferLength {
            what: "bias",
            expected: 6,
            got: 4
        })
    ));
    let g7 = Array2::<f64>::zeros((7, 6));
    assert!(matches!(
        Ldr::from_generators(4, 6, class, g7.view(), g7.view(), &[], None),
        Err(Error::InvalidArgument { what: "rank", .. })
    ));
    assert!(matches!(
        Ldr::toeplitz(&[1.0, 2.0], &[3.0]),
        Err(Error::InvalidArgument { what: "row", .. })
    ));
    assert!(matches!(
        Ldr::<f64>::toeplitz(&[], &[1.0]),
        Err(Error::Zero { .. })
    ));
    let w = Array2::<f64>::zeros((5, 3));
    for class in [
        LdrClass::ToeplitzLike { corner: false },
        LdrClass::VandermondeLike,
        LdrClass::Subdiagonal {
            corner: true,
            tied: true,
        },
        LdrClass::Tridiagonal {
            corners: false,
            tied: false,
        },
    ] {
        assert!(matches!(
            Ldr::from_displacement(w.view(), class, 2),
            Err(Error::InvalidArgument { what: "class", .. })
        ));
    }
    assert!(matches!(
        Ldr::from_displacement(w.view(), class, 0),
        Err(Error::InvalidArgument { what: "rank", .. })
    ));
    assert!(matches!(
        Ldr::from_displacement(w.view(), class, 6),
        Err(Error::InvalidArgument { what: "rank", .. })
    ));
    assert!(matches!(
        Ldr::from_displacement(Array2::<f64>::zeros((0, 3)).view(), class, 1),
        Err(Error::Zero {
            what: "out_features"
        })
    ));
    let x = Array2::<f64>::zeros((3, 5));
    assert!(matches!(
        m.apply(x.view()),
        Err(Error::Shape { what: "x", .. })
    ));
    let mut y = Array2::<f64>::zeros((2, 6));
    assert!(matches!(
        m.apply_into(Array2::zeros((3, 4)).view(), y.view_mut()),
        Err(Error::Shape { what: "y", .. })
    ));
    assert!(matches!(
        m.apply_horner(x.view()),
        Err(Error::Shape { what: "x", .. })
    ));
    assert!(matches!(
        m.apply_transpose(x.view()),
        Err(Error::Shape { what: "y", .. })
    ));
    assert!(matches!(
        m.apply_adjoint(x.view()),
        Err(Error::Shape { what: "y", .. })
    ));
    let x = Array2::<f64>::zeros((3, 4));
    let dy = Array2::<f64>::zeros((3, 6));
    let mut g = vec![0.0; 41];
    assert_eq!(
        m.backward(x.view(), dy.view(), &mut g).unwrap_err(),
        Error::BufferLength {
            what: "grads",
            expected: 42,
            got: 41
        }
    );
    let mut g = vec![0.0; 42];
    assert!(matches!(
        m.backward(x.view(), Array2::zeros((2, 6)).view(), &mut g),
        Err(Error::Shape { what: "dy", .. })
    ));
}

/// Sizes of a real layer, where the subdiagonal recursion has five levels: against the
/// explicit construction (slow, so not part of the default run).
#[test]
#[ignore]
fn large_maps_match_krylov_construction() {
    for (i, &class) in CLASSES.iter().enumerate() {
        let m = random_ldr::<f64>(700, 1030, class, 3, true, 100 + i as u64);
        check_products(&m, 3, 7, 1e-9);
        check_backward_directional(&m, 3, 8);
    }
}

#[test]
fn gradients_accumulate_and_empty_batches_are_fine() {
    let m = random_ldr::<f64>(
        5,
        7,
        LdrClass::Subdiagonal {
            corner: true,
            tied: true,
        },
        2,
        true,
        1,
    );
    let x = randn::<f64>(3, 5, 2);
    let dy = randn::<f64>(3, 7, 3);
    let mut g1 = vec![0.0; m.num_params()];
    m.backward(x.view(), dy.view(), &mut g1).unwrap();
    let mut g2 = g1.clone();
    m.backward(x.view(), dy.view(), &mut g2).unwrap();
    let twice: Vec<f64> = g1.iter().map(|v| 2.0 * v).collect();
    assert!(rel_err_vec(&g2, &twice) < 1e-14);
    let e = Array2::<f64>::zeros((0, 5));
    assert_eq!(m.apply(e.view()).unwrap().dim(), (0, 7));
    let mut g = vec![0.0; m.num_params()];
    let dx = m
        .backward(e.view(), Array2::zeros((0, 7)).view(), &mut g)
        .unwrap();
    assert_eq!(dx.dim(), (0, 5));
    assert!(g.iter().all(|&v| v == 0.0));
}
