//! The optimisers of `learn`: SGD with momentum, Adam/AdamW and L-BFGS minimise convex
//! quadratics `L(θ) = ½ Σᵢ aᵢ |θᵢ − cᵢ|²` (and L-BFGS the Rosenbrock function) to tolerance,
//! for real and complex parameters; updates match their textbook formulas; runs are
//! deterministic; schedules have their closed-form values; bad arguments are typed errors.

mod common;

use kaleidoscope::learn::{Adam, Lbfgs, Optimizer, Schedule, Sgd};
use kaleidoscope::{Error, Scalar, C64};
use proptest::prelude::*;

/// `(L, ∇L)` of `½ Σ aᵢ |θᵢ − cᵢ|²`; the gradient is `∂L/∂Re + i ∂L/∂Im = aᵢ (θᵢ − cᵢ)`.
fn quad<T: Scalar>(a: &[f64], c: &[T], theta: &[T]) -> (f64, Vec<T>) {
    let mut l = 0.0;
    let g = theta
        .iter()
        .zip(c)
        .zip(a)
        .map(|((t, c), &a)| {
            let d = t.to_c64() - c.to_c64();
            l += 0.5 * a * d.norm_sqr();
            T::from_parts(a * d.re, a * d.im)
        })
        .collect();
    (l, g)
}

fn problem<T: Scalar>(n: usize, seed: u64) -> (Vec<f64>, Vec<T>) {
    let mut rng = common::rng(seed);
    // Curvatures in [0.5, 4]: condition number 8.
    let a = (0..n).map(|i| 0.5 + 3.5 * i as f64 / n as f64).collect();
    let c = (0..n).map(|_| T::randn(&mut rng, 1.0)).collect();
    (a, c)
}

fn run<T: Scalar>(opt: &mut dyn Optimizer<T>, a: &[f64], c: &[T], steps: usize) -> Vec<T> {
    let mut theta = vec![T::zero(); c.len()];
    for _ in 0..steps {
        let (_, g) = quad(a, c, &theta);
        opt.step(&mut theta, &g).unwrap();
    }
    theta
}

fn dist<T: Scalar>(a: &[T], b: &[T]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x.to_c64() - y.to_c64()).norm_sqr())
        .sum::<f64>()
        .sqrt()
}

#[test]
fn sgd_momentum_minimises_quadratic() {
    let (a, c) = problem::<f64>(20, 1);
    let theta = run(&mut Sgd::new(0.1, 0.9).unwrap(), &a, &c, 400);
    assert!(dist(&theta, &c) < 1e-8, "{}", dist(&theta, &c));
    let (a, c) = problem::<C64>(20, 2);
    let theta = run(&mut Sgd::new(0.1, 0.9).unwrap(), &a, &c, 400);
    assert!(dist(&theta, &c) < 1e-8, "{}", dist(&theta, &c));
}

#[test]
fn adam_minimises_quadratic_with_cosine_schedule() {
    for seed in 0..3 {
        let (a, c) = problem::<C64>(30, seed);
        let mut opt = Adam::new(0.05).unwrap();
        let sched = Schedule::cosine(20, 2000, 0.0);
        let mut theta = vec![C64::new(0.0, 0.0); c.len()];
        for step in 0..2000 {
            let (_, g) = quad(&a, &c, &theta);
            Optimizer::<C64>::set_lr(&mut opt, 0.05 * sched.factor(step));
            opt.step(&mut theta, &g).unwrap();
        }
        assert!(dist(&theta, &c) < 1e-6, "seed {seed}: {}", dist(&theta, &c));
    }
}

#[test]
fn sgd_and_adam_first_steps_match_formulas() {
    // SGD: v₁ = g, θ₁ = θ₀ − lr g; v₂ = μ v₁ + g', θ₂ = θ₁ − lr v₂ (with L2 decay λθ in g).
    let mut sgd = Sgd::new(0.1, 0.5)
        .unwrap()
        .with_weight_decay(0.2, None)
        .unwrap();
    let mut th = vec![1.0f64, -2.0];
    sgd.step(&mut th, &[0.5, 1.0]).unwrap();
    let v1 = [0.5 + 0.2 * 1.0, 1.0 + 0.2 * -2.0];
    let e1 = [1.0 - 0.1 * v1[0], -2.0 - 0.1 * v1[1]];
    assert!(dist(&th, &e1) < 1e-15);
    sgd.step(&mut th, &[0.0, 0.0]).unwrap();
    let v2 = [0.5 * v1[0] + 0.2 * e1[0], 0.5 * v1[1] + 0.2 * e1[1]];
    let e2 = [e1[0] - 0.1 * v2[0], e1[1] - 0.1 * v2[1]];
    assert!(dist(&th, &e2) < 1e-15);

    // Adam's first step is −lr·sign(g) (bias correction), plus decoupled decay where masked in.
    let mut adam = Adam::new(0.01)
        .unwrap()
        .with_weight_decay(0.1, Some(vec![true, false]))
        .unwrap();
    let mut th = vec![2.0f64, 3.0];
    adam.step(&mut th, &[4.0, -0.25]).unwrap();
    let m = [4.0 / (4.0 + 1e-8), -0.25 / (0.25 + 1e-8)];
    let e = [2.0 - 0.01 * (m[0] + 0.1 * 2.0), 3.0 - 0.01 * m[1]];
    assert!(dist(&th, &e) < 1e-15, "{th:?} vs {e:?}");
}

#[test]
fn lbfgs_minimises_quadratic_and_rosenbrock() {
    let (a, c) = problem::<C64>(50, 3);
    let mut theta = vec![C64::new(0.0, 0.0); c.len()];
    let rep = Lbfgs::default()
        .minimize(&mut theta, |t, g| {
            let (l, gr) = quad(&a, &c, t);
            g.copy_from_slice(&gr);
            Ok(l)
        })
        .unwrap();
    assert!(dist(&theta, &c) < 1e-10, "{}", dist(&theta, &c));
    assert!(rep.losses.len() < 100, "{} iterations", rep.losses.len());
    assert!(rep.losses.windows(2).all(|w| w[1] <= w[0]));

    // Rosenbrock (1 − x)² + 100 (y − x²)² from (−1.2, 1): minimum at (1, 1).
    let mut p = vec![-1.2f64, 1.0];
    Lbfgs {
        max_iters: 500,
        ..Lbfgs::default()
    }
    .minimize(&mut p, |t, g| {
        let (x, y) = (t[0], t[1]);
        g[0] = -2.0 * (1.0 - x) - 400.0 * x * (y - x * x);
        g[1] = 200.0 * (y - x * x);
        Ok((1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2))
    })
    .unwrap();
    assert!(
        (p[0] - 1.0).abs() < 1e-8 && (p[1] - 1.0).abs() < 1e-8,
        "{p:?}"
    );
}

#[test]
fn lbfgs_patience_stops_on_a_plateau() {
    // |θ| has a kink at 0: line searches keep succeeding by tiny amounts near it.
    let mut p = vec![3.0f64];
    let rep = Lbfgs {
        max_iters: 10_000,
        patience: 5,
        min_decrease: 0.5,
        ..Lbfgs::default()
    }
    .minimize(&mut p, |t, g| {
        g[0] = t[0].signum() + 1e-3 * t[0];
        Ok(t[0].abs() + 0.5e-3 * t[0] * t[0])
    })
    .unwrap();
    assert!(rep.losses.len() < 1000, "{}", rep.losses.len());
    let k = rep.losses.len();
    if k > 6 {
        // Stopped because the last 5 iterations did not halve the loss, or converged.
        assert!(rep.losses[k - 1] > 0.5 * rep.losses[k - 6] || rep.losses[k - 1] < 1e-12);
    }
}

#[test]
fn schedules_have_closed_form_values() {
    let s = Schedule::cosine(10, 110, 0.1);
    assert!((s.factor(0) - 0.1).abs() < 1e-15);
    assert!((s.factor(4) - 0.5).abs() < 1e-15);
    assert!((s.factor(9) - 1.0).abs() < 1e-15);
    assert!((s.factor(10) - 1.0).abs() < 1e-15);
    assert!((s.factor(60) - 0.55).abs() < 1e-15);
    assert!((s.factor(110) - 0.1).abs() < 1e-15);
    assert!((s.factor(1000) - 0.1).abs() < 1e-15);
    let c = Schedule::constant();
    assert!((0..50).all(|i| c.factor(i) == 1.0));
}

#[test]
fn optimisers_are_deterministic() {
    let (a, c) = problem::<C64>(16, 7);
    let t1 = run(&mut Adam::new(0.03).unwrap(), &a, &c, 50);
    let t2 = run(&mut Adam::new(0.03).unwrap(), &a, &c, 50);
    assert_eq!(t1, t2);
    let s1 = run(&mut Sgd::new(0.05, 0.8).unwrap(), &a, &c, 50);
    let s2 = run(&mut Sgd::new(0.05, 0.8).unwrap(), &a, &c, 50);
    assert_eq!(s1, s2);
}

#[test]
fn bad_arguments_are_errors() {
    assert!(matches!(
        Sgd::new(0.0, 0.5),
        Err(Error::InvalidArgument { what: "lr", .. })
    ));
    assert!(matches!(
        Sgd::new(f64::NAN, 0.5),
        Err(Error::InvalidArgument { what: "lr", .. })
    ));
    assert!(matches!(
        Sgd::new(0.1, 1.0),
        Err(Error::InvalidArgument {
            what: "momentum",
            ..
        })
    ));
    assert!(matches!(
        Adam::new(0.1).unwrap().with_betas(1.0, 0.9, 1e-8),
        Err(Error::InvalidArgument { what: "beta1", .. })
    ));
    assert!(matches!(
        Adam::new(0.1).unwrap().with_betas(0.9, 0.9, 0.0),
        Err(Error::InvalidArgument { what: "eps", .. })
    ));
    assert!(matches!(
        Adam::new(0.1).unwrap().with_weight_decay(-1.0, None),
        Err(Error::InvalidArgument {
            what: "weight_decay",
            ..
        })
    ));
    let mut adam = Adam::new(0.1).unwrap();
    let mut th = vec![0.0f64; 3];
    assert!(matches!(
        adam.step(&mut th, &[1.0, 2.0]),
        Err(Error::BufferLength { .. })
    ));
    let mut masked = Adam::new(0.1)
        .unwrap()
        .with_weight_decay(0.1, Some(vec![true; 2]))
        .unwrap();
    assert!(matches!(
        masked.step(&mut th, &[1.0; 3]),
        Err(Error::BufferLength { .. })
    ));
    let lb = Lbfgs {
        history: 0,
        ..Lbfgs::default()
    };
    assert!(matches!(
        lb.minimize(&mut th, |_, _| Ok(0.0)),
        Err(Error::Zero { what: "history" })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// Adam and SGD converge on random well-conditioned quadratics of random size.
    #[test]
    fn random_quadratics_are_minimised(n in 1usize..40, seed in 0u64..1000) {
        let (a, c) = problem::<f64>(n, seed);
        let th = run(&mut Sgd::new(0.2, 0.8).unwrap(), &a, &c, 600);
        prop_assert!(dist(&th, &c) < 1e-8);
        let mut opt = Adam::new(0.1).unwrap();
        let mut theta = vec![0.0; n];
        let sched = Schedule::cosine(0, 3000, 0.0);
        for step in 0..3000 {
            let (_, g) = quad(&a, &c, &theta);
            Optimizer::<f64>::set_lr(&mut opt, 0.1 * sched.factor(step));
            opt.step(&mut theta, &g).unwrap();
        }
        prop_assert!(dist(&theta, &c) < 1e-5, "{}", dist(&theta, &c));
    }
}

/// Adam's state round-trips: an optimiser restored from another's `state` takes the same next
/// steps; malformed states are refused without changing the optimiser.
#[test]
fn adam_state_restores_the_same_trajectory() {
    let (a, c) = problem::<C64>(5, 31);
    let mut first = Adam::new(0.05).unwrap();
    let mut theta = run(&mut first, &a, &c, 7);
    let (t, m, v) = first.state();
    assert_eq!((t, m.len(), v.len()), (7, 10, 10));
    let mut second = Adam::new(0.05).unwrap();
    second.set_state(t, m.to_vec(), v.to_vec()).unwrap();
    let mut theta2 = theta.clone();
    for _ in 0..5 {
        let (_, g) = quad(&a, &c, &theta);
        Optimizer::<C64>::step(&mut first, &mut theta, &g).unwrap();
        let (_, g2) = quad(&a, &c, &theta2);
        Optimizer::<C64>::step(&mut second, &mut theta2, &g2).unwrap();
    }
    assert_eq!(theta, theta2);

    let mut fresh = Adam::new(0.05).unwrap();
    for (t, m, v) in [
        (3, vec![0.0; 4], vec![0.0; 3]),
        (3, vec![0.0; 3], vec![-1.0, 0.0, 0.0]),
        (3, vec![f64::NAN, 0.0, 0.0], vec![0.0; 3]),
        (0, vec![0.0; 3], vec![0.0; 3]),
    ] {
        assert!(fresh.set_state(t, m, v).is_err());
    }
    assert_eq!(fresh.state().0, 0);
    assert!(fresh.state().1.is_empty());
}
