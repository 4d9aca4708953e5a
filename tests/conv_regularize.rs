//! Kernel regularisers (squash, average pooling, Gaussian frequency smoothing, kernel dropout)
//! against their definitions written out entry by entry, their backwards against central
//! finite differences in f64, and their bad input.

use kaleidoscope::conv::regularize::{
    avg_pool, avg_pool_backward, gaussian_smooth, gaussian_smooth_backward, squash,
    squash_backward, KernelDropout,
};
use kaleidoscope::{Error, Scalar};
use ndarray::{Array3, ArrayView3};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn randn3(shape: (usize, usize, usize), seed: u64) -> Array3<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array3::from_shape_simple_fn(shape, || f64::randn(&mut rng, 1.0))
}

fn max_abs_diff(a: ArrayView3<f64>, b: ArrayView3<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// `f` is linear or piecewise linear: the gradient of `Σ r ⊙ f(k)` by central differences.
fn fd_grad(
    f: &dyn Fn(&Array3<f64>) -> Array3<f64>,
    k: &Array3<f64>,
    r: &Array3<f64>,
) -> Array3<f64> {
    let h = 1e-6;
    let mut out = Array3::zeros(k.dim());
    for (idx, o) in out.indexed_iter_mut() {
        let mut kp = k.clone();
        kp[idx] += h;
        let mut km = k.clone();
        km[idx] -= h;
        *o = ((&f(&kp) * r).sum() - (&f(&km) * r).sum()) / (2.0 * h);
    }
    out
}

/// `Σ_{|i−j|≤r, 0≤i<K} k[i] / w` by the definition.
fn avg_pool_reference(k: &Array3<f64>, w: usize) -> Array3<f64> {
    let r = (w / 2) as isize;
    let (a, b, len) = k.dim();
    Array3::from_shape_fn((a, b, len), |(i, j, t)| {
        let t = t as isize;
        (t - r..=t + r)
            .filter(|&s| s >= 0 && (s as usize) < len)
            .map(|s| k[[i, j, s as usize]])
            .sum::<f64>()
            / w as f64
    })
}

/// `Re IDFT_K(g ⊙ DFT_K(k))` with `g[f] = exp(−f̃²/2σ²)`, `f̃ = min(f, K−f)/K`, by O(K²) sums.
fn gaussian_reference(k: &Array3<f64>, sigma: f64) -> Array3<f64> {
    let (a, b, len) = k.dim();
    let n = len as f64;
    let g = |f: usize| {
        let ft = f.min(len - f) as f64 / n;
        (-(ft * ft) / (2.0 * sigma * sigma)).exp()
    };
    Array3::from_shape_fn((a, b, len), |(i, j, t)| {
        let mut acc = 0.0;
        for f in 0..len {
            // Σ_s k[s] cos(2π f (t − s)/K): the real part of the inverse of the filtered DFT.
            let mut re = 0.0;
            for s in 0..len {
                let ang = 2.0 * std::f64::consts::PI * (f * ((t + len - s) % len)) as f64 / n;
                re += k[[i, j, s]] * ang.cos();
            }
            acc += g(f) * re;
        }
        acc / n
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn squash_matches_its_definition(
        a in 1usize..3, c in 1usize..4, len in 1usize..50, lambda in 0.0f64..1.5, seed in 0u64..1000,
    ) {
        let k = randn3((a, c, len), seed);
        let got = squash(k.view(), lambda).unwrap();
        for (idx, &x) in k.indexed_iter() {
            let want = (x.abs() - lambda).max(0.0) * x.signum();
            prop_assert_eq!(got[idx], want);
            if x.abs() <= lambda {
                prop_assert_eq!(got[idx], 0.0);
            }
        }
        let k32 = k.mapv(|x| x as f32);
        let got32 = squash(k32.view(), lambda).unwrap();
        for (idx, &x) in k32.indexed_iter() {
            let want = (x.abs() - lambda as f32).max(0.0) * x.signum();
            prop_assert_eq!(got32[idx], want);
        }
    }

    #[test]
    fn avg_pool_matches_its_definition(
        a in 1usize..3, c in 1usize..4, len in 1usize..40, half in 0usize..25, seed in 0u64..1000,
    ) {
        let w = 2 * half + 1;
        let k = randn3((a, c, len), seed);
        let got = avg_pool(k.view(), w).unwrap();
        let want = avg_pool_reference(&k, w);
        prop_assert!(max_abs_diff(got.view(), want.view()) < 1e-13);
    }

    #[test]
    fn gaussian_smooth_matches_its_definition(
        c in 1usize..3, len in 1usize..30, sigma in 0.01f64..2.0, seed in 0u64..1000,
    ) {
        let k = randn3((2, c, len), seed);
        let got = gaussian_smooth(k.view(), sigma).unwrap();
        let want = gaussian_reference(&k, sigma);
        prop_assert!(max_abs_diff(got.view(), want.view()) < 1e-12);
        let got32 = gaussian_smooth(k.mapv(|x| x as f32).view(), sigma).unwrap();
        prop_assert!(max_abs_diff(got32.mapv(|x| x as f64).view(), want.view()) < 1e-5);
    }
}

#[test]
fn squash_backward_matches_finite_differences() {
    let lambda = 0.4;
    // Keep every entry away from the kinks |k| = λ so that central differences are exact.
    let k = randn3((2, 3, 17), 1).mapv(|x| {
        if (x.abs() - lambda).abs() < 1e-3 {
            x + 0.01
        } else {
            x
        }
    });
    let r = randn3((2, 3, 17), 2);
    let got = squash_backward(k.view(), lambda, r.view()).unwrap();
    let want = fd_grad(&|x| squash(x.view(), lambda).unwrap(), &k, &r);
    assert!(max_abs_diff(got.view(), want.view()) < 1e-8);
    assert!(got.iter().any(|&g| g == 0.0) && got.iter().any(|&g| g != 0.0));
}

#[test]
fn avg_pool_backward_matches_finite_differences() {
    for (len, w) in [(1, 1), (9, 3), (20, 7), (6, 13)] {
        let k = randn3((2, 2, len), len as u64);
        let r = randn3((2, 2, len), 100 + len as u64);
        let got = avg_pool_backward(r.view(), w).unwrap();
        let want = fd_grad(&|x| avg_pool(x.view(), w).unwrap(), &k, &r);
        assert!(
            max_abs_diff(got.view(), want.view()) < 1e-8,
            "len {len} window {w}"
        );
    }
}

#[test]
fn gaussian_smooth_backward_matches_finite_differences() {
    for (len, sigma) in [(1, 0.3), (8, 0.1), (15, 0.05), (32, 1.0)] {
        let k = randn3((1, 3, len), len as u64);
        let r = randn3((1, 3, len), 7 + len as u64);
        let got = gaussian_smooth_backward(r.view(), sigma).unwrap();
        let want = fd_grad(&|x| gaussian_smooth(x.view(), sigma).unwrap(), &k, &r);
        assert!(
            max_abs_diff(got.view(), want.view()) < 1e-8,
            "len {len} sigma {sigma}"
        );
    }
}

#[test]
fn gaussian_smooth_is_a_low_pass_filter() {
    // A pure high-frequency kernel is damped, a constant one is kept.
    let len = 64;
    let alt = Array3::from_shape_fn((1, 1, len), |(_, _, t)| if t % 2 == 0 { 1.0 } else { -1.0 });
    let out = gaussian_smooth(alt.view(), 0.1).unwrap();
    let g_half = (-(0.5f64 * 0.5) / (2.0 * 0.1 * 0.1)).exp();
    assert!(max_abs_diff(out.view(), (&alt * g_half).view()) < 1e-12);
    let ones = Array3::from_elem((1, 1, len), 1.0);
    let out = gaussian_smooth(ones.view(), 0.1).unwrap();
    assert!(max_abs_diff(out.view(), ones.view()) < 1e-12);
}

#[test]
fn kernel_dropout_is_seeded_scaled_and_exact() {
    let shape = (2, 8, 500);
    let p = 0.3;
    let a = KernelDropout::<f64>::new(shape, p, 42).unwrap();
    let b = KernelDropout::<f64>::new(shape, p, 42).unwrap();
    let c = KernelDropout::<f64>::new(shape, p, 43).unwrap();
    assert_eq!(a.mask(), b.mask());
    assert_ne!(a.mask(), c.mask());
    let keep = 1.0 / (1.0 - p);
    let mut dropped = 0usize;
    for &m in a.mask().iter() {
        assert!(m == 0.0 || m == keep, "mask value {m}");
        dropped += usize::from(m == 0.0);
    }
    // 8000 Bernoulli(0.3) draws: the fraction is within 5 standard deviations of p.
    let n = (shape.0 * shape.1 * shape.2) as f64;
    let frac = dropped as f64 / n;
    assert!(
        (frac - p).abs() < 5.0 * (p * (1.0 - p) / n).sqrt(),
        "{frac}"
    );
    let k = randn3(shape, 5);
    let y = a.forward(k.view()).unwrap();
    for (idx, &v) in y.indexed_iter() {
        assert_eq!(v, k[idx] * a.mask()[idx]);
    }
    let small = (1, 2, 9);
    let d = KernelDropout::<f64>::new(small, 0.5, 7).unwrap();
    let k = randn3(small, 8);
    let r = randn3(small, 9);
    let got = d.backward(r.view()).unwrap();
    let want = fd_grad(&|x| d.forward(x.view()).unwrap(), &k, &r);
    assert!(max_abs_diff(got.view(), want.view()) < 1e-8);
    let none = KernelDropout::<f32>::new(small, 0.0, 1).unwrap();
    assert!(none.mask().iter().all(|&m| m == 1.0));
}

#[test]
fn bad_input_is_a_typed_error() {
    let k = randn3((1, 2, 8), 0);
    for lambda in [-0.1, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            squash(k.view(), lambda),
            Err(Error::InvalidArgument { what: "lambda", .. })
        ));
        assert!(matches!(
            squash_backward(k.view(), lambda, k.view()),
            Err(Error::InvalidArgument { what: "lambda", .. })
        ));
    }
    let wrong = randn3((1, 2, 7), 0);
    assert!(matches!(
        squash_backward(k.view(), 0.1, wrong.view()),
        Err(Error::Shape { what: "dk_out", .. })
    ));
    for w in [0, 2, 8] {
        assert!(matches!(
            avg_pool(k.view(), w),
            Err(Error::InvalidArgument { what: "window", .. })
        ));
        assert!(matches!(
            avg_pool_backward(k.view(), w),
            Err(Error::InvalidArgument { what: "window", .. })
        ));
    }
    for sigma in [0.0, -1.0, f64::NAN] {
        assert!(matches!(
            gaussian_smooth(k.view(), sigma),
            Err(Error::InvalidArgument { what: "sigma", .. })
        ));
        assert!(matches!(
            gaussian_smooth_backward(k.view(), sigma),
            Err(Error::InvalidArgument { what: "sigma", .. })
        ));
    }
    for p in [-0.1, 1.0, 1.5, f64::NAN] {
        assert!(matches!(
            KernelDropout::<f64>::new((1, 2, 8), p, 0),
            Err(Error::InvalidArgument { what: "p", .. })
        ));
    }
    let d = KernelDropout::<f64>::new((1, 2, 8), 0.2, 0).unwrap();
    assert!(matches!(
        d.forward(wrong.view()),
        Err(Error::Shape { what: "k", .. })
    ));
    assert!(matches!(
        d.backward(wrong.view()),
        Err(Error::Shape { what: "dk_out", .. })
    ));
}
