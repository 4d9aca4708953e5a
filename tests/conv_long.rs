//! `LongConv` against a direct O(L²) convolution (small L) and a plain complex-FFT
//! convolution (large L), and its backward against central finite differences in f64.

use kaleidoscope::conv::{ConvMode, Gates, LongConv};
use kaleidoscope::{Error, Scalar};
use ndarray::{Array1, Array3, ArrayView3};
use num_complex::Complex;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rustfft::FftPlanner;

fn randn3<T: Scalar>(shape: (usize, usize, usize), seed: u64) -> Array3<T> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array3::from_shape_simple_fn(shape, || T::randn(&mut rng, 1.0))
}

fn rel3(a: ArrayView3<f64>, b: ArrayView3<f64>) -> f64 {
    let num: f64 = a.iter().zip(b.iter()).map(|(x, y)| (x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(1e-300)).sqrt()
}

/// `y = post ⊙ (k ∗ v + D v)`, `v = pre ⊙ u`, by the definition.
fn direct(
    u: &Array3<f64>,
    k: &Array3<f64>,
    d: &Array1<f64>,
    pre: Option<&Array3<f64>>,
    post: Option<&Array3<f64>>,
    mode: ConvMode,
) -> Array3<f64> {
    let (b, c, l) = u.dim();
    let kl = k.dim().2;
    let mut y = Array3::zeros((b, c, l));
    for bi in 0..b {
        for ci in 0..c {
            let v: Vec<f64> = (0..l)
                .map(|t| u[[bi, ci, t]] * pre.map_or(1.0, |g| g[[bi, ci, t]]))
                .collect();
            for t in 0..l {
                let mut acc = d[ci] * v[t];
                for j in 0..kl {
                    if t >= j {
                        acc += k[[0, ci, j]] * v[t - j];
                    }
                    if mode == ConvMode::Bidirectional && t + 1 + j < l {
                        acc += k[[1, ci, j]] * v[t + 1 + j];
                    }
                }
                y[[bi, ci, t]] = acc * post.map_or(1.0, |g| g[[bi, ci, t]]);
            }
        }
    }
    y
}

fn mode_of(bidir: bool) -> ConvMode {
    if bidir {
        ConvMode::Bidirectional
    } else {
        ConvMode::Causal
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn matches_direct_convolution_f64(
        b in 1usize..3, c in 1usize..4, l in 1usize..40, kfrac in 0.0f64..1.0,
        bidir: bool, gated: bool, seed in 0u64..1000,
    ) {
        let kl = 1 + ((l - 1) as f64 * kfrac) as usize;
        let mode = mode_of(bidir);
        let k = randn3::<f64>((mode.directions(), c, kl), seed);
        let d = Array1::from_iter(randn3::<f64>((1, 1, c), seed + 1).iter().copied());
        let u = randn3::<f64>((b, c, l), seed + 2);
        let pre = randn3::<f64>((b, c, l), seed + 3);
        let post = randn3::<f64>((b, c, l), seed + 4);
        let conv = LongConv::with_params(k.clone(), d.clone(), l, mode).unwrap();
        let gates = if gated { Gates { pre: Some(pre.view()), post: Some(post.view()) } } else { Gates::none() };
        let y = conv.forward(u.view(), gates).unwrap();
        let want = direct(&u, &k, &d, gated.then_some(&pre), gated.then_some(&post), mode);
        prop_assert!(rel3(y.view(), want.view()) < 1e-12, "rel err {}", rel3(y.view(), want.view()));
    }

    #[test]
    fn matches_direct_convolution_f32(
        l in 1usize..60, bidir: bool, seed in 0u64..1000,
    ) {
        let mode = mode_of(bidir);
        let kl = l.div_ceil(2);
        let k = randn3::<f64>((mode.directions(), 3, kl), seed);
        let d = Array1::from_vec(vec![0.5, -1.0, 2.0]);
        let u = randn3::<f64>((2, 3, l), seed + 2);
        let conv = LongConv::<f32>::with_params(k.mapv(|x| x as f32), d.mapv(|x| x as f32), l, mode).unwrap();
        let y = conv.forward(u.mapv(|x| x as f32).view(), Gates::none()).unwrap();
        let want = direct(&u, &k, &d, None, None, mode);
        let err = rel3(y.mapv(|x| x as f64).view(), want.view());
        prop_assert!(err < 1e-5, "rel err {err}");
    }
}

/// Reference: complex rustfft of size 4L (zero-padded, no real-input trick).
fn fft_reference(u: &Array3<f64>, k: &Array3<f64>, mode: ConvMode) -> Array3<f64> {
    let (b, c, l) = u.dim();
    let kl = k.dim().2;
    let n = 4 * l;
    let mut planner = FftPlanner::<f64>::new();
    let f = planner.plan_fft_forward(n);
    let fi = planner.plan_fft_inverse(n);
    let mut y = Array3::zeros((b, c, l));
    for ci in 0..c {
        let mut kk = vec![Complex::new(0.0, 0.0); n];
        for j in 0..kl {
            kk[j].re = k[[0, ci, j]];
            if mode == ConvMode::Bidirectional {
                kk[n - 1 - j].re = k[[1, ci, j]];
            }
        }
        f.process(&mut kk);
        for bi in 0..b {
            let mut x: Vec<Complex<f64>> = (0..n)
                .map(|t| Complex::new(if t < l { u[[bi, ci, t]] } else { 0.0 }, 0.0))
                .collect();
            f.process(&mut x);
            x.iter_mut()
                .zip(&kk)
                .for_each(|(a, &kv)| *a *= kv / n as f64);
            fi.process(&mut x);
            for t in 0..l {
                y[[bi, ci, t]] = x[t].re;
            }
        }
    }
    y
}

#[test]
fn matches_complex_fft_convolution_large() {
    for (l, kl, mode) in [
        (3000, 3000, ConvMode::Causal),
        (4096, 1000, ConvMode::Bidirectional),
        (5001, 5001, ConvMode::Bidirectional),
    ] {
        let k = randn3::<f64>((mode.directions(), 2, kl), 7);
        let u = randn3::<f64>((2, 2, l), 8);
        let conv = LongConv::with_params(k.clone(), Array1::zeros(2), l, mode).unwrap();
        let y = conv.forward(u.view(), Gates::none()).unwrap();
        let want = fft_reference(&u, &k, mode);
        let err = rel3(y.view(), want.view());
        assert!(err < 1e-12, "L={l} {mode:?}: rel err {err}");
        let conv32 =
            LongConv::<f32>::with_params(k.mapv(|x| x as f32), Array1::zeros(2), l, mode).unwrap();
        let y32 = conv32
            .forward(u.mapv(|x| x as f32).view(), Gates::none())
            .unwrap();
        let err32 = rel3(y32.mapv(|x| x as f64).view(), want.view());
        assert!(err32 < 1e-5, "f32 L={l} {mode:?}: rel err {err32}");
    }
}

/// `L = Σ r ⊙ y` so `dy = r`; every gradient entry against a central difference.
fn check_backward(mode: ConvMode, gated: bool, seed: u64) {
    let (b, c, l, kl) = (2, 3, 11, 7);
    let k = randn3::<f64>((mode.directions(), c, kl), seed);
    let d = Array1::from_iter(randn3::<f64>((1, 1, c), seed + 1).iter().copied());
    let u = randn3::<f64>((b, c, l), seed + 2);
    let pre = randn3::<f64>((b, c, l), seed + 3);
    let post = randn3::<f64>((b, c, l), seed + 4);
    let r = randn3::<f64>((b, c, l), seed + 5);
    let loss = |u: &Array3<f64>,
                k: &Array3<f64>,
                d: &Array1<f64>,
                pre: &Array3<f64>,
                post: &Array3<f64>| {
        let conv = LongConv::with_params(k.clone(), d.clone(), l, mode).unwrap();
        let g = if gated {
            Gates {
                pre: Some(pre.view()),
                post: Some(post.view()),
            }
        } else {
            Gates::none()
        };
        (&conv.forward(u.view(), g).unwrap() * &r).sum()
    };
    let conv = LongConv::with_params(k.clone(), d.clone(), l, mode).unwrap();
    let g = if gated {
        Gates {
            pre: Some(pre.view()),
            post: Some(post.view()),
        }
    } else {
        Gates::none()
    };
    let grads = conv.backward(u.view(), g, r.view()).unwrap();
    let h = 1e-6;
    let fd3 = |f: &dyn Fn(&Array3<f64>) -> f64, x: &Array3<f64>| {
        let mut out = Array3::zeros(x.dim());
        for (idx, o) in out.indexed_iter_mut() {
            let mut xp = x.clone();
            xp[idx] += h;
            let mut xm = x.clone();
            xm[idx] -= h;
            *o = (f(&xp) - f(&xm)) / (2.0 * h);
        }
        out
    };
    let tol = 1e-7;
    let du = fd3(&|x| loss(x, &k, &d, &pre, &post), &u);
    assert!(rel3(grads.du.view(), du.view()) < tol, "du");
    let dk = fd3(&|x| loss(&u, x, &d, &pre, &post), &k);
    assert!(
        rel3(grads.dkernel.view(), dk.view()) < tol,
        "dk {}",
        rel3(grads.dkernel.view(), dk.view())
    );
    let dd: Vec<f64> = (0..c)
        .map(|i| {
            let mut dp = d.clone();
            dp[i] += h;
            let mut dm = d.clone();
            dm[i] -= h;
            (loss(&u, &k, &dp, &pre, &post) - loss(&u, &k, &dm, &pre, &post)) / (2.0 * h)
        })
        .collect();
    for (g, f) in grads.dd.iter().zip(&dd) {
        assert!((g - f).abs() < 1e-6 * (1.0 + f.abs()), "dD");
    }
    assert_eq!(grads.dd.len(), dd.len());
    if gated {
        let dpre = fd3(&|x| loss(&u, &k, &d, x, &post), &pre);
        assert!(
            rel3(grads.dpregate.as_ref().unwrap().view(), dpre.view()) < tol,
            "dpre"
        );
        let dpost = fd3(&|x| loss(&u, &k, &d, &pre, x), &post);
        assert!(
            rel3(grads.dpostgate.as_ref().unwrap().view(), dpost.view()) < tol,
            "dpost"
        );
    } else {
        assert!(grads.dpregate.is_none() && grads.dpostgate.is_none());
    }
}

#[test]
fn backward_matches_finite_differences() {
    for (i, (mode, gated)) in [
        (ConvMode::Causal, false),
        (ConvMode::Causal, true),
        (ConvMode::Bidirectional, false),
        (ConvMode::Bidirectional, true),
    ]
    .into_iter()
    .enumerate()
    {
        check_backward(mode, gated, 100 + i as u64);
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    assert!(matches!(
        LongConv::<f32>::new(4, 16, 17, ConvMode::Causal),
        Err(Error::InvalidArgument {
            what: "kernel_len",
            ..
        })
    ));
    assert!(matches!(
        LongConv::<f32>::new(0, 16, 4, ConvMode::Causal),
        Err(Error::Zero { what: "channels" })
    ));
    let conv = LongConv::<f64>::new(4, 16, 8, ConvMode::Causal).unwrap();
    let u = Array3::<f64>::zeros((2, 3, 16));
    assert!(matches!(
        conv.forward(u.view(), Gates::none()),
        Err(Error::Shape { what: "u", .. })
    ));
    let u = Array3::<f64>::zeros((2, 4, 16));
    let k = Array3::<f64>::zeros((1, 4, 9));
    assert!(matches!(
        conv.forward_with_kernel(u.view(), k.view(), Gates::none()),
        Err(Error::Shape { what: "kernel", .. })
    ));
    let g = Array3::<f64>::zeros((2, 4, 15));
    assert!(matches!(
        conv.forward(
            u.view(),
            Gates {
                pre: Some(g.view()),
                post: None
            }
        ),
        Err(Error::Shape {
            what: "pregate",
            ..
        })
    ));
    let dy = Array3::<f64>::zeros((1, 4, 16));
    assert!(matches!(
        conv.backward(u.view(), Gates::none(), dy.view()),
        Err(Error::Shape { what: "dy", .. })
    ));
    assert!(matches!(
        LongConv::<f64>::with_params(
            Array3::zeros((1, 4, 8)),
            Array1::zeros(4),
            16,
            ConvMode::Bidirectional
        ),
        Err(Error::Shape { what: "kernel", .. })
    ));
    assert!(matches!(
        LongConv::<f64>::with_params(
            Array3::zeros((1, 4, 8)),
            Array1::zeros(3),
            16,
            ConvMode::Causal
        ),
        Err(Error::Shape { what: "d", .. })
    ));
}
