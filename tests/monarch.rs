mod common;
use common::*;
use kaleidoscope::{BlockDiagonal, Differentiable, LinearMap, Monarch, MonarchShape, Scalar, C64};
use ndarray::Array2;
use proptest::prelude::*;

/// The Monarch matrix entry by entry from its definition (independent of the GEMM path).
fn monarch_reference<T: Scalar>(m: &Monarch<T>) -> Array2<T> {
    let sh = m.shape();
    let (w1, w2) = (m.w1(), m.w2());
    let mut full = Array2::<T>::zeros((sh.l * sh.s, sh.k * sh.p));
    for t in 0..sh.k * sh.q {
        let (a, qq) = (t / sh.q, t % sh.q);
        let (j, rr) = (t % sh.l, t / sh.l);
        for i in 0..sh.s {
            for b in 0..sh.p {
                full[(i * sh.l + j, a * sh.p + b)] +=
                    w2[(j * sh.s + i) * sh.r + rr] * w1[(a * sh.q + qq) * sh.p + b];
            }
        }
    }
    full.slice(ndarray::s![..sh.out_features, ..sh.in_features])
        .to_owned()
}

fn random_shape() -> impl Strategy<Value = MonarchShape> {
    (1usize..4, 1usize..4, 1usize..4, 1usize..4, 1usize..4).prop_flat_map(|(k, p, l, s, r)| {
        // k·q = l·r: take q = l·r / gcd-compatible by choosing q = l·c, r = k·c.
        let c = r;
        let shape = MonarchShape::new(k, l * c, p, l, s, k * c).unwrap();
        (Just(shape), 1..=shape.padded_in(), 1..=shape.padded_out())
            .prop_map(|(sh, i, o)| sh.with_features(i, o).unwrap())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn monarch_matches_reference(shape in random_shape(), batch in 0usize..7, seed in 0u64..1000, bias in any::<bool>()) {
        let mut r = rng(seed);
        let m = Monarch::<f64>::random(shape, bias, &mut r).unwrap();
        let mut m = m;
        let np = m.num_params();
        for (i, v) in m.params_mut().iter_mut().enumerate().skip(np - if bias { shape.out_features } else { 0 }) {
            *v = i as f64 * 0.1;
        }
        check_map(&m, &monarch_reference(&m), m.bias().map(|b| b.to_vec()).as_deref(), batch, seed);
        let mc = Monarch::<C64>::random(shape, bias, &mut r).unwrap();
        check_map(&mc, &monarch_reference(&mc), mc.bias().map(|b| b.to_vec()).as_deref(), batch, seed);
    }

    #[test]
    fn block_diagonal_matches_reference(nb in 1usize..5, ob in 1usize..5, ib in 1usize..5, batch in 0usize..6, seed in 0u64..1000) {
        let mut r = rng(seed);
        let b = BlockDiagonal::<C64>::random(nb, ob, ib, true, &mut r).unwrap();
        let mut d = Array2::<C64>::zeros((nb * ob, nb * ib));
        for j in 0..nb {
            d.slice_mut(ndarray::s![j * ob..(j + 1) * ob, j * ib..(j + 1) * ib]).assign(&b.block(j));
        }
        check_map(&b, &d, b.bias().map(|v| v.to_vec()).as_deref(), batch, seed);
    }

    #[test]
    fn projection_recovers_monarch(shape in random_shape(), seed in 0u64..1000) {
        let mut r = rng(seed);
        let m = Monarch::<f64>::random(shape.with_features(shape.padded_in(), shape.padded_out()).unwrap(), false, &mut r).unwrap();
        let d = m.to_dense();
        let (p, err) = Monarch::project(d.view(), m.shape()).unwrap();
        let scale = d.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-300);
        prop_assert!(err / scale < 1e-10, "relative error {}", err / scale);
        prop_assert!(rel_err(p.to_dense().view(), d.view()) < 1e-10);
    }
}

#[test]
fn projection_is_optimal_against_perturbations() {
    let shape = MonarchShape::square(16, 4).unwrap();
    let target = randn::<f64>(16, 16, 11);
    let (m, err) = Monarch::project(target.view(), shape).unwrap();
    let mut r = rng(12);
    for _ in 0..50 {
        let mut w1 = m.w1().to_vec();
        let mut w2 = m.w2().to_vec();
        for v in w1.iter_mut().chain(w2.iter_mut()) {
            *v += 1e-3 * f64::randn(&mut r, 1.0);
        }
        let pert = Monarch::from_factors(shape, w1, w2, None)
            .unwrap()
            .to_dense();
        let e: f64 = pert
            .iter()
            .zip(target.iter())
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(e >= err - 1e-12, "perturbation improved: {e} < {err}");
    }
}

#[test]
fn projection_error_does_not_increase_with_rank() {
    // Slices of rank c = q / l: larger q (wider inner blocks) allows higher rank.
    let target = randn::<f64>(16, 16, 21);
    let mut last = f64::INFINITY;
    for c in 1..=4 {
        let shape = MonarchShape::new(4, 4 * c, 4, 4, 4, 4 * c).unwrap();
        let (_, err) = Monarch::project(target.view(), shape).unwrap();
        assert!(err <= last + 1e-12, "rank {c}: {err} > {last}");
        last = err;
    }
    assert!(last < 1e-10, "full-rank slices must be exact, got {last}");
}

#[test]
fn rectangular_projection_is_exact_on_rectangular_monarch() {
    for &(i, o, nb) in &[
        (12, 20, 4),
        (20, 12, 4),
        (9, 30, 3),
        (768 / 16, 3072 / 16, 4),
    ] {
        let shape = MonarchShape::for_layer(i, o, nb).unwrap();
        let m = Monarch::<C64>::random(shape, false, &mut rng(1)).unwrap();
        let d = m.to_dense();
        let (_, err) = Monarch::project(d.view(), shape).unwrap();
        let scale = d.iter().map(|v| v.norm_sqr()).sum::<f64>().sqrt();
        assert!(err / scale < 1e-10, "({i}, {o}, {nb}): {}", err / scale);
    }
}

/// The DFT with its input permuted by `a·n2 + b ↦ a + n1·b` is a Monarch matrix with `n1`
/// blocks of `n2` inputs and rank-one slices (Cooley–Tukey), so its projection is exact.
#[test]
fn permuted_dft_projects_exactly() {
    for &(n1, n2) in &[(3usize, 5usize), (6, 6), (14, 14), (3, 9), (6, 8), (16, 32)] {
        let n = n1 * n2;
        let f = Array2::from_shape_fn((n, n), |(u, c)| {
            let (a, b) = (c / n2, c % n2);
            let v = a + n1 * b;
            let ang = -2.0 * std::f64::consts::PI * ((u * v) % n) as f64 / n as f64;
            C64::new(ang.cos(), ang.sin())
        });
        let shape = MonarchShape::new(n1, n2, n2, n2, n1, n1).unwrap();
        let (m, err) = Monarch::project(f.view(), shape).unwrap();
        let scale = n as f64; // ‖F‖_F = n
        assert!(
            err / scale < 1e-12,
            "n = {n}: relative error {}",
            err / scale
        );
        assert!(rel_err(m.to_dense().view(), f.view()) < 1e-12);
    }
}

/// Batches large enough for the parallel row-chunk path agree with the dense reference, and its
/// parameter gradients with the sum of small-batch gradients — with a padded output (37 of 40)
/// and without (40 of 40: the backward reads `dy`'s column blocks in place, strided).
#[test]
fn large_batches_take_the_parallel_path_correctly() {
    for out in [37, 40] {
        large_batch_case(out);
    }
}

fn large_batch_case(out: usize) {
    let shape = MonarchShape::for_layer(24, 40, 4)
        .unwrap()
        .with_features(22, out)
        .unwrap();
    let mut m = Monarch::<f64>::random(shape, true, &mut rng(5)).unwrap();
    let np = m.num_params();
    for (i, v) in m.params_mut()[np - out..].iter_mut().enumerate() {
        *v = 0.01 * i as f64;
    }
    let w = monarch_reference(&m);
    let batch = 1100;
    let x = randn::<f64>(batch, 22, 6);
    let dy = randn::<f64>(batch, out, 7);
    let mut want = matmul_xwt(x.view(), w.view());
    for mut r in want.rows_mut() {
        for (v, &b) in r.iter_mut().zip(m.bias().unwrap()) {
            *v += b;
        }
    }
    assert!(rel_err(m.apply(x.view()).unwrap().view(), want.view()) < 1e-12);
    let wt = w.t().to_owned();
    assert!(
        rel_err(
            m.apply_transpose(dy.view()).unwrap().view(),
            matmul_xwt(dy.view(), wt.view()).view()
        ) < 1e-12
    );
    let mut g = vec![0.0; np];
    let dx = m.backward(x.view(), dy.view(), &mut g).unwrap();
    assert!(rel_err(dx.view(), matmul_xwt(dy.view(), wt.view()).view()) < 1e-12);
    let mut g_small = vec![0.0; np];
    for start in (0..batch).step_by(100) {
        let rows = ndarray::s![start..(start + 100).min(batch), ..];
        m.backward(x.slice(rows), dy.slice(rows), &mut g_small)
            .unwrap();
    }
    assert!(rel_err_vec(&g, &g_small) < 1e-12);
}

/// The row chunks of the products and the row ranges of the weight gradient do not depend on
/// the thread count, so the outputs and gradients are bit-identical on 1, 3 and 7 threads
/// (uneven chunks of a 1100-row batch; 4 blocks, so the gradient sums partial row ranges).
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let shape = MonarchShape::for_layer(64, 96, 4).unwrap();
    let m = Monarch::<f32>::random(shape, true, &mut rng(8)).unwrap();
    let x = randn::<f32>(1100, 64, 9);
    let dy = randn::<f32>(1100, 96, 10);
    let run = |threads: usize| {
        on_threads(threads, || {
            let y = m.apply(x.view()).unwrap();
            let mut g = vec![0.0f32; m.num_params()];
            let dx = m.backward(x.view(), dy.view(), &mut g).unwrap();
            (y, dx, g)
        })
    };
    let (y1, dx1, g1) = run(1);
    let w = monarch_reference(&m).mapv(f64::from);
    let want = matmul_xwt(x.mapv(f64::from).view(), w.view());
    let mut got = y1.mapv(f64::from);
    for mut r in got.rows_mut() {
        for (v, &b) in r.iter_mut().zip(m.bias().unwrap()) {
            *v -= f64::from(b);
        }
    }
    assert!(rel_err(got.view(), want.view()) < 1e-5);
    for threads in [3, 7] {
        let (y, dx, g) = run(threads);
        assert_eq!(y, y1, "{threads} threads: outputs");
        assert_eq!(dx, dx1, "{threads} threads: input gradient");
        assert_eq!(g, g1, "{threads} threads: parameter gradients");
    }
}
