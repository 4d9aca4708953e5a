//! Recovering fast transforms from random initialisation (Dao et al., ICML 2019): a butterfly
//! times a learned permutation (BP), trained soft, hardened and polished by
//! `learn::learn_transform` with its default options, reaches the unitary DFT (N = 8 … 64) and
//! the orthonormal Hadamard transform (N = 16, 32) to RMSE ≤ 1e-6, and the Hartley transform as
//! the real part of a complex BP (N = 16, 32) to RMSE ≤ 1e-9, in f64 for 5 fixed seeds each
//! and the DCT-II as the real part of a complex BPP (N = 16; N = 32 is an ignored test); the
//! DCT-II and DST-II at N = 32 and 64 by growing from N = 16. Targets come from their
//! definitions (the DFT checked against rustfft); the reported RMSE is checked against the
//! model's dense matrix. The Levenberg–Marquardt polish and the class-wise twiddle restarts
//! the recipe relies on are checked on their own.

mod common;

use kaleidoscope::learn::{
    gauss_newton, grow, learn_by_growing, learn_transform, rmse, ButterflyProduct, Factor,
    GaussNewtonOptions, LearnOptions, LearnReport, LogitSharing, Structure,
};
use kaleidoscope::{Differentiable, Init, LinearMap, Permutation, Scalar, C32, C64};
use ndarray::Array2;
use rustfft::FftPlanner;

const SEEDS: [u64; 5] = [0, 1, 2, 3, 4];

/// The unitary DFT `F[k, j] = e^{−2πi jk/n} / √n`, built column by column with rustfft.
fn dft(n: usize) -> Array2<C64> {
    let fft = FftPlanner::<f64>::new().plan_fft_forward(n);
    let mut out = Array2::zeros((n, n));
    for j in 0..n {
        let mut col = vec![C64::new(0.0, 0.0); n];
        col[j] = C64::new(1.0, 0.0);
        fft.process(&mut col);
        for (k, v) in col.into_iter().enumerate() {
            out[(k, j)] = v / (n as f64).sqrt();
        }
    }
    out
}

/// The orthonormal Sylvester–Hadamard matrix `H[k, j] = (−1)^{popcount(k & j)} / √n`.
fn hadamard(n: usize) -> Array2<f64> {
    Array2::from_shape_fn((n, n), |(k, j)| {
        let s = if (k & j).count_ones() % 2 == 0 {
            1.0
        } else {
            -1.0
        };
        s / (n as f64).sqrt()
    })
}

/// The Hartley transform `cas(2π jk/n)/√n = (cos + sin)(2π jk/n)/√n`.
fn hartley(n: usize) -> Array2<f64> {
    Array2::from_shape_fn((n, n), |(k, j)| {
        let a = 2.0 * std::f64::consts::PI * ((j * k) % n) as f64 / n as f64;
        (a.cos() + a.sin()) / (n as f64).sqrt()
    })
}

/// Learn `target` with BP from random initialisation (`seed`), default recipe; checks the
/// reported RMSE against the model's dense matrix and returns the report.
fn learn<T: Scalar>(
    target: &Array2<T>,
    structure: Structure,
    sharing: LogitSharing,
    seed: u64,
    real_part: bool,
) -> LearnReport {
    let n = target.nrows();
    let mut model =
        ButterflyProduct::<T>::new(n, structure, Init::Randn, sharing, &mut common::rng(seed))
            .unwrap();
    let opts = LearnOptions {
        real_part,
        seed,
        ..LearnOptions::default()
    };
    let rep = learn_transform(&mut model, target.view(), &opts, &mut |_, _| {}).unwrap();
    assert!(model.is_hard());
    let direct = rmse(&model, target.view(), real_part).unwrap();
    assert!(
        (direct - rep.rmse).abs() <= 1e-12 + 1e-6 * direct,
        "reported RMSE {} but the model is at {direct}",
        rep.rmse
    );
    rep
}

fn check(name: &str, n: usize, seed: u64, rep: &LearnReport) {
    let perm = rep.permutations[0].as_slice();
    println!(
        "{name} n={n} seed={seed}: RMSE {:.2e} after {} candidate(s), {} steps, {:.2}s; \
         hardened permutation {perm:?}",
        rep.rmse,
        rep.attempts.len(),
        rep.steps,
        rep.seconds
    );
    assert!(
        rep.rmse <= 1e-6,
        "{name} n={n} seed={seed}: RMSE {}",
        rep.rmse
    );
}

#[test]
fn dft_recovered_for_fixed_seeds() {
    for n in [8usize, 16, 32, 64] {
        let target = dft(n);
        assert!(common::rel_err(target.view(), common::unitary_dft(n).view()) < 1e-12);
        for seed in SEEDS {
            check(
                "DFT",
                n,
                seed,
                &learn(&target, Structure::Bp, LogitSharing::Shared, seed, false),
            );
        }
    }
}

#[test]
fn hadamard_recovered_for_fixed_seeds() {
    for n in [16usize, 32] {
        let target = hadamard(n);
        let gram = target.t().dot(&target);
        assert!(common::rel_err(gram.view(), Array2::eye(n).view()) < 1e-12);
        for seed in SEEDS {
            check(
                "Hadamard",
                n,
                seed,
                &learn(&target, Structure::Bp, LogitSharing::Shared, seed, false),
            );
        }
    }
}

#[test]
fn hartley_recovered_for_fixed_seeds() {
    for n in [16usize, 32] {
        let real = hartley(n);
        let square = real.dot(&real);
        assert!(common::rel_err(square.view(), Array2::eye(n).view()) < 1e-12);
        // The Hartley matrix is Re((1 − i) F̄) with F the unitary DFT: a complex BP's real part.
        let target = real.mapv(|v| C64::new(v, 0.0));
        for seed in SEEDS {
            let rep = learn(&target, Structure::Bp, LogitSharing::Shared, seed, true);
            check("Hartley", n, seed, &rep);
            assert!(
                rep.rmse <= 1e-9,
                "Hartley n={n} seed={seed}: RMSE {}",
                rep.rmse
            );
        }
    }
}

/// A hardened `B · P` with random twiddles and gates.
fn random_bp(n: usize, structure: Structure, seed: u64) -> ButterflyProduct<C64> {
    let mut m = ButterflyProduct::<C64>::new(
        n,
        structure,
        Init::Randn,
        LogitSharing::PerLevel,
        &mut common::rng(seed),
    )
    .unwrap();
    m.harden();
    m
}

#[test]
fn output_class_reroll_changes_only_that_class() {
    let mut rng = common::rng(7);
    for (n, structure) in [
        (8usize, Structure::Bp),
        (16, Structure::Bpp),
        (32, Structure::Bp),
    ] {
        let m = n.trailing_zeros() as usize;
        for d in 0..=m {
            for r in [0, (1usize << d) - 1, (1usize << d) / 2] {
                let mut model = random_bp(n, structure, (n + d + r) as u64);
                let before = model.to_dense();
                model
                    .randomize_output_class(r, d, Init::Randn, &mut rng)
                    .unwrap();
                let after = model.to_dense();
                for k in 0..n {
                    let same = before.row(k) == after.row(k);
                    let in_class = k % (1 << d) == r;
                    assert_eq!(same, !in_class, "n={n} d={d} r={r} row {k}");
                }
            }
        }
        let mut model = random_bp(n, structure, 1);
        assert!(model
            .randomize_output_class(1 << m, m, Init::Randn, &mut rng)
            .is_err());
        assert!(model
            .randomize_output_class(0, m + 1, Init::Randn, &mut rng)
            .is_err());
    }
    let mut bpbp = random_bp(8, Structure::Bpbp, 3);
    assert!(bpbp
        .randomize_output_class(0, 1, Init::Randn, &mut rng)
        .is_err());
}

/// Gauss–Newton from a perturbation of an exactly reachable target, for the complex matrix and
/// for its real part: quadratic convergence to the rounding floor, and the reported RMSE is
/// the model's.
#[test]
fn gauss_newton_converges_near_a_solution() {
    for (n, structure) in [
        (8usize, Structure::Bp),
        (16, Structure::Bpp),
        (32, Structure::Bp),
    ] {
        for real_part in [false, true] {
            let exact = random_bp(n, structure, 11 + n as u64);
            let mut target = exact.to_dense();
            if real_part {
                target.mapv_inplace(|z| C64::new(z.re, 0.0));
            }
            let mut model = exact.clone();
            let noise = common::randn::<C64>(1, model.params().len(), 5);
            let mask = model.logit_mask();
            for ((p, e), frozen) in model.params_mut().iter_mut().zip(noise.iter()).zip(mask) {
                if !frozen {
                    *p += e * 1e-2;
                }
            }
            let start = rmse(&model, target.view(), real_part).unwrap();
            let opts = GaussNewtonOptions {
                real_part,
                ..GaussNewtonOptions::default()
            };
            let rep = gauss_newton(&mut model, target.view(), &opts).unwrap();
            let direct = rmse(&model, target.view(), real_part).unwrap();
            assert!((direct - rep.rmse).abs() <= 1e-13 + 1e-6 * direct);
            assert!(
                rep.rmse <= 1e-11 && start > 1e-4,
                "n={n} real_part={real_part}: {start:.1e} -> {:.1e} in {} iterations",
                rep.rmse,
                rep.iters
            );
            assert!(rep.iters <= 20, "{} iterations", rep.iters);
            assert_eq!(model.permutations(), exact.permutations());
        }
    }
    let mut soft = ButterflyProduct::<C64>::new(
        8,
        Structure::Bp,
        Init::Randn,
        LogitSharing::Shared,
        &mut common::rng(0),
    )
    .unwrap();
    let target = soft.to_dense();
    let opts = GaussNewtonOptions::default();
    assert!(gauss_newton(&mut soft, target.view(), &opts).is_err());
    soft.harden();
    assert!(gauss_newton(&mut soft, target.slice(ndarray::s![..4, ..]), &opts).is_err());
}

/// Gauss–Newton gives the same parameters, bit for bit, on 1 and on 3 threads (its sums are
/// split by size, not by thread count; an earlier split by thread count made the DCT-II's
/// growing pick different lineages on 1 and 2 cores). N = 64, real part, from a perturbation.
#[test]
fn gauss_newton_is_independent_of_the_thread_count() {
    let exact = random_bp(64, Structure::Bpp, 77);
    let target = exact.to_dense().mapv(|z| C64::new(z.re, 0.0));
    let mut start = exact.clone();
    let noise = common::randn::<C64>(1, start.params().len(), 6);
    let mask = start.logit_mask();
    for ((p, e), frozen) in start.params_mut().iter_mut().zip(noise.iter()).zip(mask) {
        if !frozen {
            *p += e * 1e-2;
        }
    }
    let opts = GaussNewtonOptions {
        real_part: true,
        max_iters: 5,
        ..GaussNewtonOptions::default()
    };
    let run = |threads: usize| {
        common::on_threads(threads, || {
            let mut m = start.clone();
            let rep = gauss_newton(&mut m, target.view(), &opts).unwrap();
            (m.params().to_vec(), rep.rmse)
        })
    };
    let (p1, r1) = run(1);
    let (p3, r3) = run(3);
    assert!(r1 < 1e-3, "{r1:.2e}");
    assert_eq!(r1.to_bits(), r3.to_bits());
    assert!(p1
        .iter()
        .zip(&p3)
        .all(|(a, b)| a.re.to_bits() == b.re.to_bits() && a.im.to_bits() == b.im.to_bits()));
}

/// The DCT-II needs BPP (BP cannot represent it with our permutation family, checked
/// exhaustively at N = 8): e.g. Makhoul's reordering — evens, then odds reversed — followed by
/// bit reversal, with `D = diag(e^{−iπk/2N})` absorbed in the last level, fitted as the real
/// part of a complex product. At a reachable permutation the polish succeeds (class-wise
/// restarts of the twiddles that only the badly fitted outputs `k ≡ r mod 2^d` depend on, then
/// Levenberg–Marquardt); the hard part is the permutation, whose rounding is screened by the
/// rank test (`learn::butterfly_residual`) and, for real parts, the complex-structure test.
/// All 5 seeds reach 1e-12 at N = 16 and at N = 32 (the next test).
#[test]
fn dct2_recovered_for_fixed_seeds() {
    dct2_case(16);
}

/// N = 32, all 5 seeds, from random initialisation at full size. The soft phase alone lands
/// near a reachable permutation at best: before the hardening built candidates exactly,
/// seeds 0, 1 and 3 failed (RMSE 2.4e-2 … 2.8e-2 after 6 candidates, and seed 1 even with 40).
/// Their roundings are one level away from permutations that `Butterfly::project_real_part`
/// builds exactly, and the hardening's one-level search now finds them. At N = 64 seeds 1 and
/// 4 still fail this way; growing from N = 16 (`dct2_and_dst2_recovered_by_growing`) recovers
/// every seed at every size.
#[test]
fn dct2_recovered_for_fixed_seeds_32() {
    dct2_case(32);
}

fn dct2_case(n: usize) {
    let real = common::orthonormal_dct2(n);
    let gram = real.t().dot(&real);
    assert!(common::rel_err(gram.view(), Array2::eye(n).view()) < 1e-12);
    let target = real.mapv(|v| C64::new(v, 0.0));
    for seed in SEEDS {
        check(
            "DCT-II",
            n,
            seed,
            &learn(&target, Structure::Bpp, LogitSharing::PerLevel, seed, true),
        );
    }
}

/// The sizes the CI run leaves out (minutes on 2 cores).
#[test]
#[ignore]
fn dft_recovered_large() {
    for n in [128usize, 256] {
        let target = dft(n);
        for seed in SEEDS {
            check(
                "DFT",
                n,
                seed,
                &learn(&target, Structure::Bp, LogitSharing::Shared, seed, false),
            );
        }
    }
}

/// A time budget stops the restarts after the first candidate (a Gaussian target is never
/// accepted, so without the budget all three candidates run) and is reported; a negative
/// budget is an error.
#[test]
fn time_limit_stops_restarts() {
    let n = 8;
    let mut rng = common::rng(7);
    let target = Array2::from_shape_fn((n, n), |_| C64::randn(&mut rng, 1.0));
    let run = |time_limit: Option<f64>| {
        let mut model = ButterflyProduct::<C64>::new(
            n,
            Structure::Bp,
            Init::Randn,
            LogitSharing::Shared,
            &mut common::rng(3),
        )
        .unwrap();
        let opts = LearnOptions {
            soft_steps: 20,
            polish_steps: 5,
            lbfgs_iters: 5,
            polish_restarts: 0,
            restarts: 3,
            time_limit,
            ..LearnOptions::default()
        };
        learn_transform(&mut model, target.view(), &opts, &mut |_, _| {})
    };
    let free = run(None).unwrap();
    assert_eq!(free.attempts.len(), 3);
    assert!(!free.timed_out);
    let cut = run(Some(0.0)).unwrap();
    assert_eq!(cut.attempts.len(), 1);
    assert!(cut.timed_out);
    assert_eq!(cut.attempts[0].rmse, free.attempts[0].rmse);
    assert!(run(Some(-1.0)).is_err());
    assert!(run(Some(f64::NAN)).is_err());
}

/// Growing (`learn::learn_by_growing`): the DCT-II and DST-II learned at N = 16 from random
/// initialisation (the soft search alone fails from N = 32, see
/// `dct2_recovered_for_fixed_seeds_32`) and doubled level by level: every doubling builds the
/// size-2N butterfly from the target for the extended permutation
/// (`Butterfly::project_real_part`), so N = 32 … `max_n` each reach RMSE ≤ `tol` with one
/// candidate, the previous doubling's insertion. Every step's reported RMSE is checked against
/// the final model's dense matrix, and the permutations must be those of a fast algorithm
/// (the real part passes the exact rank test).
fn grow_dct2_and_dst2<T: Scalar>(seeds: &[u64], max_n: usize, tol: f64) {
    type Family = fn(usize) -> Array2<f64>;
    let cases: [(&str, Family); 2] = [
        ("DCT-II", common::orthonormal_dct2),
        ("DST-II", common::orthonormal_dst2),
    ];
    for (name, family) in cases {
        let gram = family(16).t().dot(&family(16));
        assert!(common::rel_err(gram.view(), Array2::eye(16).view()) < 1e-12);
        let target = |m: usize| Ok(family(m).mapv(|v| T::from_parts(v, 0.0)));
        for &seed in seeds {
            let opts = LearnOptions {
                real_part: true,
                seed,
                ..LearnOptions::default()
            };
            let (model, steps) =
                learn_by_growing(16, max_n, Structure::Bpp, &target, &opts, 4, &mut |_, _| {})
                    .unwrap();
            println!(
                "{name} {} seed={seed}: {:?}",
                T::NAME,
                steps
                    .iter()
                    .map(|s| (s.n, s.rmse, s.polished, s.seconds))
                    .collect::<Vec<_>>()
            );
            let sizes: Vec<usize> = steps.iter().map(|s| s.n).collect();
            let expected: Vec<usize> = (4..=max_n.trailing_zeros()).map(|b| 1 << b).collect();
            assert_eq!(sizes, expected, "{name} seed={seed}");
            assert_eq!(model.n(), max_n);
            assert!(model.is_hard());
            for s in &steps[1..] {
                assert!(s.rmse <= tol, "{name} seed={seed} n={}: {}", s.n, s.rmse);
                assert!(s.inserted.is_some());
                assert_eq!(s.polished, 1, "{name} seed={seed} n={}", s.n);
            }
            let big = target(max_n).unwrap();
            let direct = rmse(&model, big.view(), true).unwrap();
            let reported = steps.last().unwrap().rmse;
            assert!(
                (direct - reported).abs() <= 1e-3 * tol,
                "{name} seed={seed}: reported {reported} but the model is at {direct}"
            );
            let perm = model.rounded_permutation(model.params()).unwrap();
            let r = kaleidoscope::learn::butterfly_residual(big.view(), &perm, true).unwrap();
            assert!(r <= 1e-3, "{name} seed={seed}: rank test {r:.2e}");
        }
    }
}

/// CI-sized: 5 seeds to N = 256 in f64 (≤ 1e-12), one seed in f32 (≤ 1e-6).
#[test]
fn dct2_and_dst2_recovered_by_growing() {
    grow_dct2_and_dst2::<C64>(&SEEDS, 256, 1e-12);
    grow_dct2_and_dst2::<C32>(&[0], 256, 1e-6);
}

/// The sizes: to N = 1024 in f64 (≤ 1e-9) and f32 (≤ 1e-5), 5 seeds each.
#[test]
#[ignore = "about 20 s per transform and seed in release"]
fn dct2_and_dst2_recovered_by_growing_large() {
    grow_dct2_and_dst2::<C64>(&SEEDS, 1024, 1e-9);
    grow_dct2_and_dst2::<C32>(&SEEDS, 1024, 1e-5);
}

/// `grow`'s Cooley–Tukey warm start (the size-N twiddles on both halves, the top level by
/// least squares) is exact where the size-2N fast algorithm is two size-N ones and a top
/// level: the DFT (complex scalars) and the Hadamard transform (real scalars), learned at
/// N = 16 from random initialisation (BP, per-level logits), grow to 32 and 64 from the warm
/// start alone — RMSE ≤ 1e-10 before any polish step — for 3 seeds each.
#[test]
fn warm_start_grows_dft_and_hadamard_exactly() {
    fn case<T: Scalar>(name: &str, family: fn(usize) -> Array2<T>) {
        for seed in [0, 1, 2] {
            let opts = LearnOptions {
                seed,
                ..LearnOptions::default()
            };
            let mut model = ButterflyProduct::<T>::new(
                16,
                Structure::Bp,
                Init::Randn,
                LogitSharing::PerLevel,
                &mut common::rng(seed),
            )
            .unwrap();
            let rep =
                learn_transform(&mut model, family(16).view(), &opts, &mut |_, _| {}).unwrap();
            assert!(rep.rmse <= 1e-9, "{name} seed={seed} n=16: {}", rep.rmse);
            for n in [32, 64] {
                let target = family(n);
                let (big, g) = grow(&model, target.view(), &opts, None, &mut |_, _| {})
                    .unwrap()
                    .expect("a candidate passes the check");
                println!(
                    "{name} seed={seed} n={n}: warm start {:.2e}, RMSE {:.2e}, {} of {} \
                     passing polished, steps {}",
                    g.warm_rmse, g.report.rmse, g.polished, g.passing, g.report.steps
                );
                assert!(
                    g.warm_rmse <= 1e-10,
                    "{name} seed={seed} n={n}: {}",
                    g.warm_rmse
                );
                assert_eq!(
                    (g.polished, g.report.steps),
                    (1, 0),
                    "{name} seed={seed} n={n}"
                );
                let direct = rmse(&big, target.view(), false).unwrap();
                assert!(
                    (direct - g.report.rmse).abs() <= 1e-12,
                    "{name} seed={seed} n={n}"
                );
                assert!(direct <= 1e-10, "{name} seed={seed} n={n}: {direct}");
                model = big;
            }
        }
    }
    case::<C64>("DFT", dft);
    case::<f64>("Hadamard", hadamard);
}

/// `grow` and `learn_by_growing` reject what they cannot grow: a soft model, shared logits,
/// a BPBP product, a target of the wrong size, `n < n0`, zero tries, a non-power-of-two n0.
#[test]
fn growing_rejects_bad_input() {
    let target = |m: usize| Ok(common::orthonormal_dct2(m).mapv(|v| C64::new(v, 0.0)));
    let opts = LearnOptions::default();
    let soft = ButterflyProduct::<C64>::new(
        8,
        Structure::Bpp,
        Init::Randn,
        LogitSharing::PerLevel,
        &mut common::rng(1),
    )
    .unwrap();
    let t16 = target(16).unwrap();
    assert!(grow(&soft, t16.view(), &opts, None, &mut |_, _| {}).is_err());
    let mut hard = soft.clone();
    hard.harden();
    assert!(grow(
        &hard,
        target(8).unwrap().view(),
        &opts,
        None,
        &mut |_, _| {}
    )
    .is_err());
    let mut shared = ButterflyProduct::<C64>::new(
        8,
        Structure::Bp,
        Init::Randn,
        LogitSharing::Shared,
        &mut common::rng(1),
    )
    .unwrap();
    shared.harden();
    assert!(grow(&shared, t16.view(), &opts, None, &mut |_, _| {}).is_err());
    let mut bpbp = ButterflyProduct::<C64>::new(
        8,
        Structure::Bpbp,
        Init::Randn,
        LogitSharing::PerLevel,
        &mut common::rng(2),
    )
    .unwrap();
    assert!(grow(&bpbp, t16.view(), &opts, None, &mut |_, _| {}).is_err());
    bpbp.harden();
    // A BPBP grows only along the convolution's Cooley–Tukey lineage: an arbitrary one does
    // not extend to the DCT (no candidate), and real-part targets are not supported.
    assert!(grow(&bpbp, t16.view(), &opts, None, &mut |_, _| {})
        .unwrap()
        .is_none());
    let real = LearnOptions {
        real_part: true,
        ..LearnOptions::default()
    };
    assert!(grow(&bpbp, t16.view(), &real, None, &mut |_, _| {}).is_err());
    let nothing = &mut |_: usize, _: f64| {};
    assert!(learn_by_growing(16, 8, Structure::Bpp, &target, &opts, 1, nothing).is_err());
    assert!(learn_by_growing(16, 32, Structure::Bpp, &target, &opts, 0, nothing).is_err());
    assert!(learn_by_growing(12, 32, Structure::Bpp, &target, &opts, 1, nothing).is_err());
}

/// A hardened BPP `B · P₂ · P₁` of size `n` with `P₁` Makhoul's reordering (level 0: separate
/// and reverse the second half) and `P₂` the bit reversal (separate at every level), twiddles
/// drawn from `seed`: the permutations of the textbook fast DCT-II.
fn makhoul_bit_reversal_bpp(n: usize, seed: u64) -> ButterflyProduct<C64> {
    let mut model = ButterflyProduct::<C64>::new(
        n,
        Structure::Bpp,
        Init::Randn,
        LogitSharing::PerLevel,
        &mut common::rng(seed),
    )
    .unwrap();
    let ranges = model.logit_ranges();
    let logit = |on: bool| C64::new(if on { 6.0 } else { -6.0 }, 0.0);
    let p = model.params_mut();
    for (f, r) in ranges.iter().enumerate() {
        for (i, g) in p[r.clone()].chunks_mut(3).enumerate() {
            let gates = match f {
                0 if i == 0 => [true, false, true],
                0 => [false, false, false],
                _ => [true, false, false],
            };
            for (v, on) in g.iter_mut().zip(gates) {
                *v = logit(on);
            }
        }
    }
    model.harden();
    model
}

/// `base` for a real-part fit of a hardened product: no soft phase, one candidate, no flips.
fn polish_only(seed: u64, base: LearnOptions) -> LearnOptions {
    LearnOptions {
        real_part: true,
        seed,
        soft_steps: 0,
        restarts: 1,
        flip_gates: 0,
        ..base
    }
}

/// Polish only (no soft phase) from random twiddles at the textbook DCT-II permutations, with
/// `opts`' polish settings (its structure-search fields are overridden); returns the RMSE.
fn polish_dct2_at_known_permutation(n: usize, seed: u64, opts: LearnOptions) -> f64 {
    let target = common::orthonormal_dct2(n).mapv(|v| C64::new(v, 0.0));
    let mut model = makhoul_bit_reversal_bpp(n, seed);
    let perm = model.rounded_permutation(model.params()).unwrap();
    let residual = kaleidoscope::learn::butterfly_residual(target.view(), &perm, true).unwrap();
    assert!(residual <= 1e-6, "n={n}: rank test residual {residual}");
    let opts = polish_only(seed, opts);
    let rep = learn_transform(&mut model, target.view(), &opts, &mut |_, _| {}).unwrap();
    let direct = rmse(&model, target.view(), true).unwrap();
    assert!((direct - rep.rmse).abs() <= 1e-12 + 1e-6 * direct);
    println!(
        "DCT-II n={n} seed={seed}: rmse {:.2e}, polishes {}, LM iterations {}, {:.1} s",
        rep.rmse, rep.attempts[0].polishes, rep.gn_iters, rep.seconds
    );
    rep.rmse
}

/// At the textbook permutations the recipe's polish (Adam, L-BFGS, class-wise restarts,
/// Levenberg–Marquardt) reaches the DCT-II from random twiddles at N = 32 and 64 (3 seeds):
/// at these sizes what is hard for real-part targets is finding the permutation. From
/// N = 128 on, the default 10 polish restarts mostly stall at RMSE 3e-3–1e-2 and only more
/// restarts (22 and 39 at N = 512) reach it (the ignored test below; BENCHMARKS.md), so there
/// the twiddle fit is a limit as well.
#[test]
fn dct2_polished_at_the_known_permutation() {
    for n in [32, 64] {
        for seed in 0..3 {
            let r = polish_dct2_at_known_permutation(n, seed, LearnOptions::default());
            assert!(r <= 1e-9, "n={n} seed={seed}: {r:.2e}");
        }
    }
}

/// The same at larger sizes: `DCT_KNOWN_N` (default 512), `DCT_KNOWN_SEED` (default 0),
/// `DCT_KNOWN_TIME` seconds (default 540), `DCT_KNOWN_GN_ITERS` and `DCT_KNOWN_GN_START`
/// (the recipe's Levenberg–Marquardt options), `DCT_KNOWN_POLISH_RESTARTS`. Prints the
/// result; fails above 1e-9.
#[test]
#[ignore = "minutes per size; set DCT_KNOWN_N / DCT_KNOWN_SEED"]
fn dct2_polished_at_the_known_permutation_large() {
    fn env<V: std::str::FromStr>(k: &str, default: V) -> V {
        std::env::var(k).map_or(default, |v| v.parse().ok().expect(k))
    }
    let d = LearnOptions::default();
    let n = env("DCT_KNOWN_N", 512usize);
    let seed = env("DCT_KNOWN_SEED", 0u64);
    let opts = LearnOptions {
        time_limit: Some(env("DCT_KNOWN_TIME", 540.0)),
        gn_iters: env("DCT_KNOWN_GN_ITERS", d.gn_iters),
        gn_start_rel_rmse: env("DCT_KNOWN_GN_START", d.gn_start_rel_rmse),
        polish_restarts: env("DCT_KNOWN_POLISH_RESTARTS", d.polish_restarts),
        ..d
    };
    let r = polish_dct2_at_known_permutation(n, seed, opts);
    assert!(r <= 1e-9, "n={n} seed={seed}: {r:.2e}");
}

/// The permutations `grow` returns are the small ones with exactly one level inserted: the
/// inserted permutation has the reported gates at the reported level, and every other one
/// keeps its levels and gains an identity level (the finest one, or with `replicate_others`
/// the one on the whole vector). An earlier version left the other permutation's new finest
/// level at its random initial logits. DCT-II, 16 → 32 from the textbook permutations
/// (polished), 4 seeds.
#[test]
fn grow_inserts_exactly_one_level() {
    let gates = |m: &ButterflyProduct<C64>| -> Vec<Vec<[bool; 3]>> {
        m.logit_ranges()
            .into_iter()
            .map(|r| {
                m.params()[r]
                    .chunks(3)
                    .map(|c| std::array::from_fn(|k| c[k].re > 0.0))
                    .collect()
            })
            .collect()
    };
    for seed in 0..4 {
        let opts = polish_only(seed, LearnOptions::default());
        let mut small = makhoul_bit_reversal_bpp(16, seed);
        let t16 = common::orthonormal_dct2(16).mapv(|v| C64::new(v, 0.0));
        learn_transform(&mut small, t16.view(), &opts, &mut |_, _| {}).unwrap();
        let t32 = common::orthonormal_dct2(32).mapv(|v| C64::new(v, 0.0));
        let (big, report) = grow(&small, t32.view(), &opts, None, &mut |_, _| {})
            .unwrap()
            .expect("a passing extension");
        assert!(
            report.report.rmse <= 1e-9,
            "seed {seed}: {}",
            report.report.rmse
        );
        let ins = report.inserted;
        let mut expected = gates(&small);
        for (f, levels) in expected.iter_mut().enumerate() {
            if f == ins.factor {
                levels.insert(ins.level, ins.gates);
            } else if ins.replicate_others {
                levels.insert(0, [false; 3]);
            } else {
                levels.push([false; 3]);
            }
        }
        assert_eq!(gates(&big), expected, "seed {seed}: {ins:?}");
    }
}

/// A circulant `A[k, j] = h[(k − j) mod n]` with a Gaussian filter of variance `1/n`.
fn circulant(n: usize, seed: u64) -> Array2<C64> {
    let h = common::randn::<f64>(1, n, seed ^ n as u64).mapv(|v| v / (n as f64).sqrt());
    Array2::from_shape_fn((n, n), |(k, j)| C64::new(h[(0, (k + n - j) % n)], 0.0))
}

/// The dense matrix of a BPBP product from its factors (butterflies by the reference product
/// of dense levels, permutations as matrices), independent of the product's forward pass.
fn bpbp_dense(model: &ButterflyProduct<C64>) -> Array2<C64> {
    let mut m = Array2::<C64>::eye(model.n());
    for f in model.factors() {
        let d: Array2<C64> = match f {
            Factor::Butterfly(b) => common::butterfly_dense_reference(&b),
            Factor::Permutation(p) => LinearMap::<C64>::to_dense(&p.to_permutation()),
        };
        m = d.dot(&m);
    }
    m
}

/// The convolution as a BPBP (`learn_by_growing` from N = 2, default options, the size-2
/// member fitted from random initialisation then diagonalised): every doubling is exact (the
/// Cooley–Tukey step: `B₁ · P₁` diagonalises the circulant, `B₂` is projected), so a random
/// circulant is reached to RMSE ≤ 1e-12 at N = 64 for 5 seeds and at N = 1024 for one, with
/// both permutations the bit reversal (the paper's BPBP of a convolution), checked against
/// the product of the factors' dense matrices; in f32 at N = 256 to ≤ 1e-6. Targets that are
/// not circulants stop the growth at the first doubling.
#[test]
fn convolution_grown_as_bpbp() {
    let nothing = &mut |_: usize, _: f64| {};
    for (seed, n) in SEEDS.iter().map(|&s| (s, 64)).chain([(7, 1024)]) {
        let target = |m: usize| Ok(circulant(m, seed));
        let opts = LearnOptions {
            seed,
            ..LearnOptions::default()
        };
        let (model, steps) =
            learn_by_growing(2, n, Structure::Bpbp, &target, &opts, 4, nothing).unwrap();
        assert_eq!(model.n(), n, "seed={seed}: stopped at {}", model.n());
        assert!(model.is_hard());
        let br = Permutation::bit_reversal(n).unwrap();
        assert_eq!(model.permutations(), vec![br.clone(), br], "seed={seed}");
        let want = target(n).unwrap();
        let dense = bpbp_dense(&model);
        let err = (&dense - &want).mapv(|z| z.norm_sqr()).sum().sqrt() / n as f64;
        let last = steps.last().unwrap();
        println!(
            "conv seed={seed} n={n}: reported {:.2e}, factors {err:.2e}",
            last.rmse
        );
        assert!(err <= 1e-12, "seed={seed} n={n}: {err:.2e}");
        assert!((err - last.rmse).abs() <= 1e-12);
    }
    // In f32: the same lineage, to the f32 rounding of the target's scale (RMS entry 1/16).
    let target32 = |m: usize| Ok(circulant(m, 5).mapv(|z| C32::new(z.re as f32, z.im as f32)));
    let (model, _) = learn_by_growing(
        2,
        256,
        Structure::Bpbp,
        &target32,
        &LearnOptions::default(),
        4,
        nothing,
    )
    .unwrap();
    assert_eq!(model.n(), 256);
    let r = rmse(&model, target32(256).unwrap().view(), false).unwrap();
    println!("conv f32 n=256: {r:.2e}");
    assert!(r <= 1e-6, "f32: {r:.2e}");
    let gaussian = |m: usize| Ok(common::randn::<C64>(m, m, 3));
    let (model, steps) = learn_by_growing(
        2,
        16,
        Structure::Bpbp,
        &gaussian,
        &LearnOptions::default(),
        1,
        nothing,
    )
    .unwrap();
    assert_eq!(model.n(), 2);
    assert!(steps.last().unwrap().rmse.is_nan());
}
