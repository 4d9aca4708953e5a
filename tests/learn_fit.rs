//! `learn::fit` on every structure (Butterfly, Kaleidoscope BB*, Monarch warm-started from its
//! projection, low-rank, LDR): fitting a random member of the structure's class from another
//! random start lowers the error to a tolerance. Also: the loss and gradient of `fit` and the
//! learned permutations against central finite differences, hardening against the exact
//! permutation, determinism, row sampling, and typed errors.

mod common;

use kaleidoscope::learn::{
    fit, loss_and_grad, rmse, ButterflyProduct, Factor, FitOptions, LearnedPermutation,
    LogitSharing, Method, Schedule, Structure,
};
use kaleidoscope::{
    Butterfly, ButterflyConfig, Differentiable, Error, Init, Ldr, LdrClass, LdrConfig, LinearMap,
    LowRank, Monarch, MonarchShape, Permutation, Scalar, C64,
};
use ndarray::Array2;

/// `‖W − A‖_F / ‖A‖_F`.
fn rel<T: Scalar, M: LinearMap<T>>(m: &M, a: &Array2<T>) -> f64 {
    common::rel_err(m.to_dense().view(), a.view())
}

fn polish(steps: usize, lr: f64, lbfgs: usize) -> FitOptions {
    FitOptions {
        steps,
        lr,
        schedule: Schedule::cosine(0, steps, 0.01),
        lbfgs_iters: lbfgs,
        lbfgs_patience: 50,
        ..FitOptions::default()
    }
}

fn bfly_cfg(nblocks: usize) -> ButterflyConfig {
    ButterflyConfig {
        nblocks,
        increasing_stride: true,
        init: Init::Randn,
        bias: false,
    }
}

#[test]
fn fit_butterfly_to_a_butterfly() {
    for (n, seed) in [(8usize, 2u64), (16, 1)] {
        let target = Butterfly::<f64>::new(n, n, bfly_cfg(1), &mut common::rng(seed))
            .unwrap()
            .to_dense();
        let mut model =
            Butterfly::<f64>::new(n, n, bfly_cfg(1), &mut common::rng(seed + 100)).unwrap();
        let before = rel(&model, &target);
        let rep = fit(&mut model, target.view(), &polish(1500, 1e-2, 500)).unwrap();
        let after = rel(&model, &target);
        println!(
            "butterfly n={n}: {before:.2e} -> {after:.2e} ({} + {} its)",
            rep.steps, rep.lbfgs_iters
        );
        // Non-convex (a random butterfly from another random start): a tolerance, not exactness.
        assert!(after < 1e-3, "n={n}: relative error {after}");
        assert!((rep.rmse - rmse(&model, target.view(), false).unwrap()).abs() < 1e-12);
    }
}

#[test]
fn fit_kaleidoscope_to_a_kaleidoscope() {
    let n = 16;
    let target = Butterfly::<C64>::new(n, n, bfly_cfg(2), &mut common::rng(3))
        .unwrap()
        .to_dense();
    let mut model = Butterfly::<C64>::new(n, n, bfly_cfg(2), &mut common::rng(4)).unwrap();
    let before = rel(&model, &target);
    fit(&mut model, target.view(), &polish(2000, 1e-2, 1000)).unwrap();
    let after = rel(&model, &target);
    println!("kaleidoscope BB* n={n}: {before:.2e} -> {after:.2e}");
    // BB* from random start is harder (non-convex, two blocks): a looser tolerance.
    assert!(
        after < 5e-2 && after < 0.05 * before,
        "relative error {after}"
    );
}

#[test]
fn fit_monarch_from_its_projection() {
    let shape = MonarchShape::square(16, 4).unwrap();
    let target = Monarch::<f64>::random(shape, false, &mut common::rng(5))
        .unwrap()
        .to_dense();
    // Warm start: the optimal Monarch of a noisy copy of the target.
    let noise = common::randn::<f64>(16, 16, 6) * 0.1;
    let (mut model, _) = Monarch::project((&target + &noise).view(), shape).unwrap();
    let before = rel(&model, &target);
    fit(&mut model, target.view(), &polish(300, 1e-3, 500)).unwrap();
    let after = rel(&model, &target);
    println!("monarch: {before:.2e} -> {after:.2e}");
    assert!(before > 1e-2);
    assert!(after < 1e-8, "relative error {after}");
}

#[test]
fn fit_low_rank_to_a_low_rank() {
    let target = LowRank::<C64>::random(24, 20, 3, false, &mut common::rng(7))
        .unwrap()
        .to_dense();
    let mut model = LowRank::<C64>::random(24, 20, 3, false, &mut common::rng(8)).unwrap();
    let before = rel(&model, &target);
    fit(&mut model, target.view(), &polish(1000, 1e-2, 500)).unwrap();
    let after = rel(&model, &target);
    println!("low rank: {before:.2e} -> {after:.2e}");
    assert!(after < 1e-8, "relative error {after}");
}

#[test]
fn fit_ldr_to_an_ldr() {
    let cfg = LdrConfig {
        class: LdrClass::ToeplitzLike { corner: true },
        rank: 2,
        bias: false,
    };
    let target = Ldr::<f64>::new(16, 16, cfg, &mut common::rng(9))
        .unwrap()
        .to_dense();
    let mut model = Ldr::<f64>::new(16, 16, cfg, &mut common::rng(10)).unwrap();
    let before = rel(&model, &target);
    fit(&mut model, target.view(), &polish(2000, 1e-2, 1000)).unwrap();
    let after = rel(&model, &target);
    println!("LDR Toeplitz-like r=2: {before:.2e} -> {after:.2e}");
    assert!(after < 1e-6, "relative error {after}");
}

#[test]
fn loss_and_grad_match_finite_differences() {
    let n = 8;
    let target = common::randn::<C64>(n, n, 11);
    let model = ButterflyProduct::<C64>::new(
        n,
        Structure::Bpbp,
        Init::Randn,
        LogitSharing::PerLevel,
        &mut common::rng(12),
    )
    .unwrap();
    for real_part in [false, true] {
        let (l, g) = loss_and_grad(&model, target.view(), 3, real_part).unwrap();
        let r = rmse(&model, target.view(), real_part).unwrap();
        assert!((l - r * r).abs() < 1e-12 * (1.0 + l));
        let h = 1e-6;
        let mut fd = vec![C64::new(0.0, 0.0); g.len()];
        for (j, f) in fd.iter_mut().enumerate() {
            for e in [C64::new(1.0, 0.0), C64::new(0.0, 1.0)] {
                let (mut mp, mut mm) = (model.clone(), model.clone());
                mp.params_mut()[j] += e * h;
                mm.params_mut()[j] -= e * h;
                let lp = loss_and_grad(&mp, target.view(), 8, real_part).unwrap().0;
                let lm = loss_and_grad(&mm, target.view(), 8, real_part).unwrap().0;
                *f += e * ((lp - lm) / (2.0 * h));
            }
        }
        let err = common::rel_err_vec(&g, &fd);
        assert!(err < 1e-6, "real_part={real_part}: gradient error {err}");
    }
}

#[test]
fn learned_permutation_backward_matches_finite_differences() {
    for sharing in [LogitSharing::Shared, LogitSharing::PerLevel] {
        for n in [4usize, 16] {
            let p = LearnedPermutation::<f64>::new(n, sharing, 1.0, &mut common::rng(13)).unwrap();
            let x = common::randn::<f64>(5, n, 14);
            let c = common::randn::<f64>(5, n, 15);
            let mut g = vec![0.0; p.params().len()];
            let dx = p.backward(x.view(), c.view(), &mut g).unwrap();
            let (fdx, fdp) = common::finite_diff_grads(&p, &x, &c, 1e-6);
            assert!(common::rel_err(dx.view(), fdx.view()) < 1e-7);
            assert!(common::rel_err_vec(&g, &fdp) < 1e-6, "{sharing:?} n={n}");
            // The transpose map is the adjoint of the forward map.
            let y = p.apply(x.view()).unwrap();
            let xt = p.apply_transpose(c.view()).unwrap();
            let (a, b) = ((&y * &c).sum(), (&x * &xt).sum());
            assert!((a - b).abs() < 1e-12 * (1.0 + a.abs()));
        }
    }
}

#[test]
fn hardening_gives_the_exact_permutation() {
    for seed in 0..8 {
        let n = 32;
        let mut p =
            LearnedPermutation::<f64>::new(n, LogitSharing::PerLevel, 3.0, &mut common::rng(seed))
                .unwrap();
        let rounded = p.to_permutation();
        p.harden();
        assert!(p.is_hard());
        assert_eq!(p.to_permutation(), rounded);
        let x = common::randn::<f64>(3, n, seed + 50);
        let y = p.apply(x.view()).unwrap();
        let expect = rounded.apply(x.view()).unwrap();
        assert_eq!(y, expect);
        // Every gate on at every level is the bit-reversal.
        for v in p.params_mut() {
            *v = 5.0;
        }
        let mut q = p.clone();
        q.soften();
        q.params_mut().iter_mut().for_each(|v| *v = -5.0);
        assert!(q.to_permutation().is_identity());
    }
    let mut sep =
        LearnedPermutation::<f64>::new(16, LogitSharing::Shared, 0.0, &mut common::rng(0)).unwrap();
    sep.params_mut().copy_from_slice(&[5.0, -5.0, -5.0]);
    assert_eq!(sep.to_permutation(), Permutation::bit_reversal(16).unwrap());
}

#[test]
fn product_matches_its_factors() {
    let n = 16;
    let prod = ButterflyProduct::<C64>::new(
        n,
        Structure::Bpbp,
        Init::Randn,
        LogitSharing::PerLevel,
        &mut common::rng(16),
    )
    .unwrap();
    let mut dense = Array2::<C64>::eye(n);
    for f in prod.factors() {
        let d = match f {
            Factor::Butterfly(b) => b.to_dense(),
            Factor::Permutation(p) => p.to_dense(),
        };
        dense = d.dot(&dense);
    }
    assert!(common::rel_err(prod.to_dense().view(), dense.view()) < 1e-13);
    let x = common::randn::<C64>(3, n, 17);
    let c = common::randn::<C64>(3, n, 18);
    let mut g = vec![C64::new(0.0, 0.0); prod.params().len()];
    let dx = prod.backward(x.view(), c.view(), &mut g).unwrap();
    let (fdx, fdp) = common::finite_diff_grads(&prod, &x, &c, 1e-6);
    assert!(common::rel_err(dx.view(), fdx.view()) < 1e-7);
    assert!(common::rel_err_vec(&g, &fdp) < 1e-6);
}

#[test]
fn fit_is_deterministic_and_sampling_lowers_the_error() {
    let n = 32;
    let target = Butterfly::<f64>::new(n, n, bfly_cfg(1), &mut common::rng(19))
        .unwrap()
        .to_dense();
    let start = Butterfly::<f64>::new(n, n, bfly_cfg(1), &mut common::rng(20)).unwrap();
    let opts = FitOptions {
        steps: 300,
        lr: 1e-2,
        sample_rows: 8,
        seed: 3,
        ..FitOptions::default()
    };
    let (mut a, mut b) = (start.clone(), start.clone());
    let ra = fit(&mut a, target.view(), &opts).unwrap();
    let rb = fit(&mut b, target.view(), &opts).unwrap();
    assert_eq!(a, b);
    assert_eq!(ra.losses, rb.losses);
    let before = rel(&start, &target);
    let after = rel(&a, &target);
    assert!(after < 0.5 * before, "{before} -> {after}");
    let sgd = FitOptions {
        method: Method::Sgd { momentum: 0.9 },
        lr: 20.0,
        steps: 300,
        ..FitOptions::default()
    };
    let mut s = start.clone();
    fit(&mut s, target.view(), &sgd).unwrap();
    let after_sgd = rel(&s, &target);
    println!("sgd: {before:.3e} -> {after_sgd:.3e}");
    assert!(after_sgd < 0.5 * before);
}

#[test]
fn bad_fit_input_is_an_error() {
    let mut m = Butterfly::<f64>::new(8, 8, bfly_cfg(1), &mut common::rng(0)).unwrap();
    let wrong = Array2::<f64>::zeros((8, 4));
    assert!(matches!(
        fit(&mut m, wrong.view(), &FitOptions::default()),
        Err(Error::Shape { what: "target", .. })
    ));
    let t = Array2::<f64>::zeros((8, 8));
    let zero_batch = FitOptions {
        batch_rows: 0,
        steps: 1,
        ..FitOptions::default()
    };
    assert!(matches!(
        fit(&mut m, t.view(), &zero_batch),
        Err(Error::Zero { what: "batch_rows" })
    ));
    let frozen = FitOptions {
        frozen: Some(vec![false; 3]),
        ..FitOptions::default()
    };
    assert!(matches!(
        fit(&mut m, t.view(), &frozen),
        Err(Error::BufferLength { what: "frozen", .. })
    ));
    let diverge = FitOptions {
        lr: 1e12,
        steps: 50,
        method: Method::Sgd { momentum: 0.0 },
        ..FitOptions::default()
    };
    let big = common::randn::<f64>(8, 8, 1);
    assert!(matches!(
        fit(&mut m, big.view(), &diverge),
        Err(Error::Numerical(_))
    ));
    assert!(matches!(
        LearnedPermutation::<f64>::new(12, LogitSharing::Shared, 1.0, &mut common::rng(0)),
        Err(Error::NotPowerOfTwo { .. })
    ));
    assert!(matches!(
        "bq".parse::<Structure>(),
        Err(Error::InvalidArgument {
            what: "structure",
            ..
        })
    ));
}
