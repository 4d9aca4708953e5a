//! FlashButterfly: its block FFT against rustfft for every supported size (the largest
//! ignored), its convolution against `LongConv` (rustfft) and a direct convolution, and the
//! gradients of the convolution and of learned blocks against central finite differences.

use kaleidoscope::conv::{
    BlockSet, ConvMode, FlashButterfly, FlashButterflyGrads, Gates, LongConv, MonarchFft, MAX_LOG2,
    MIN_LOG2,
};
use kaleidoscope::{Error, Scalar};
use ndarray::{Array1, Array3, ArrayView3};
use num_complex::Complex;
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

fn relc(a: &[Complex<f64>], b: &[Complex<f64>]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).norm_sqr()).sum();
    let den: f64 = b.iter().map(|y| y.norm_sqr()).sum();
    (num / den).sqrt()
}

/// Forward and inverse of the block FFT of size `2^e` against rustfft, f64 and f32.
fn check_fft_size(e: u32) {
    let m = 1usize << e;
    let mut rng = StdRng::seed_from_u64(e as u64);
    let x: Vec<Complex<f64>> = (0..m)
        .map(|_| Complex::<f64>::randn(&mut rng, 1.0))
        .collect();
    let mut want = x.clone();
    FftPlanner::<f64>::new()
        .plan_fft_forward(m)
        .process(&mut want);
    let t = MonarchFft::<f64>::new(m).unwrap();
    assert_eq!(t.factors().iter().product::<usize>(), m);
    // Blocks of 16, the remainder of e mod 4 as one smaller block in second place.
    let f = t.factors();
    let small: Vec<usize> = f.iter().copied().filter(|&x| x != 16).collect();
    assert!(
        f[0] == 16
            && small.len() <= 1
            && small.iter().all(|&x| [2, 4, 8].contains(&x) && f[1] == x),
        "{f:?}"
    );
    let got = t.forward(&x).unwrap();
    let err = relc(&got, &want);
    assert!(err < 1e-12, "f64 forward 2^{e}: {err}");
    let mut back = want.clone();
    FftPlanner::<f64>::new()
        .plan_fft_inverse(m)
        .process(&mut back);
    let gi = t.inverse(&want).unwrap();
    assert!(relc(&gi, &back) < 1e-12, "f64 inverse 2^{e}");
    let t32 = MonarchFft::<f32>::new(m).unwrap();
    let x32: Vec<Complex<f32>> = x
        .iter()
        .map(|z| Complex::new(z.re as f32, z.im as f32))
        .collect();
    let g32: Vec<Complex<f64>> = t32
        .forward(&x32)
        .unwrap()
        .iter()
        .map(|z| Complex::new(z.re as f64, z.im as f64))
        .collect();
    let err32 = relc(&g32, &want);
    assert!(err32 < 1e-5, "f32 forward 2^{e}: {err32}");
}

#[test]
fn block_fft_matches_rustfft_up_to_2_16() {
    for e in MIN_LOG2..=16 {
        check_fft_size(e);
    }
}

#[test]
#[ignore = "large sizes: run with --ignored"]
fn block_fft_matches_rustfft_2_17_to_max() {
    for e in 17..=MAX_LOG2 {
        check_fft_size(e);
    }
}

/// Convolution through the blocks against LongConv (rustfft), `(batch, channels) = (2, 3)`.
fn check_conv(l: usize, kl: usize, mode: ConvMode) {
    let k = randn3::<f64>((mode.directions(), 3, kl), l as u64);
    let d = Array1::from_vec(vec![0.3, -0.7, 1.1]);
    let u = randn3::<f64>((2, 3, l), 1 + l as u64);
    let pre = randn3::<f64>((2, 3, l), 2 + l as u64);
    let post = randn3::<f64>((2, 3, l), 3 + l as u64);
    let gates = Gates {
        pre: Some(pre.view()),
        post: Some(post.view()),
    };
    let want = LongConv::with_params(k.clone(), d.clone(), l, mode)
        .unwrap()
        .forward(u.view(), gates)
        .unwrap();
    let fb = FlashButterfly::with_params(k.clone(), d.clone(), l, mode).unwrap();
    let got = fb.forward(u.view(), gates).unwrap();
    let err = rel3(got.view(), want.view());
    assert!(err < 1e-12, "f64 L={l} {mode:?}: {err}");
    let fb32 =
        FlashButterfly::<f32>::with_params(k.mapv(|x| x as f32), d.mapv(|x| x as f32), l, mode)
            .unwrap();
    let (p32, q32) = (pre.mapv(|x| x as f32), post.mapv(|x| x as f32));
    let g32 = fb32
        .forward(
            u.mapv(|x| x as f32).view(),
            Gates {
                pre: Some(p32.view()),
                post: Some(q32.view()),
            },
        )
        .unwrap();
    let err32 = rel3(g32.mapv(|x| x as f64).view(), want.view());
    assert!(err32 < 1e-5, "f32 L={l} {mode:?}: {err32}");
}

#[test]
fn convolution_matches_rustfft_convolution() {
    for (l, kl, mode) in [
        (65, 65, ConvMode::Causal),
        (100, 37, ConvMode::Bidirectional),
        (128, 128, ConvMode::Bidirectional),
        (1000, 1000, ConvMode::Causal),
        (4096, 2048, ConvMode::Bidirectional),
        (20000, 20000, ConvMode::Causal),
    ] {
        check_conv(l, kl, mode);
    }
}

#[test]
fn convolution_matches_direct_small() {
    let (l, kl) = (70, 30);
    let k = randn3::<f64>((1, 2, kl), 5);
    let u = randn3::<f64>((1, 2, l), 6);
    let fb = FlashButterfly::with_params(k.clone(), Array1::zeros(2), l, ConvMode::Causal).unwrap();
    let y = fb.forward(u.view(), Gates::none()).unwrap();
    let mut want = Array3::zeros((1, 2, l));
    for c in 0..2 {
        for t in 0..l {
            want[[0, c, t]] = (0..kl.min(t + 1))
                .map(|j| k[[0, c, j]] * u[[0, c, t - j]])
                .sum();
        }
    }
    assert!(rel3(y.view(), want.view()) < 1e-12);
}

#[test]
#[ignore = "large: run with --ignored"]
fn convolution_matches_rustfft_convolution_large() {
    for l in [1 << 17, 1 << 20, 1 << 21] {
        check_conv(l, l / 2, ConvMode::Causal);
    }
}

/// A gradient-check case: random input, kernel, gates and output weights `r` of the loss
/// `Σ r ⊙ y`, a layer with skip `d` and blocks perturbed by `noise`, and its backward.
struct GradCase {
    fb: FlashButterfly<f64>,
    u: Array3<f64>,
    k: Array3<f64>,
    pre: Array3<f64>,
    post: Array3<f64>,
    r: Array3<f64>,
    grads: FlashButterflyGrads<f64>,
}

fn grad_case(
    mode: ConvMode,
    (b, l, kl): (usize, usize, usize),
    d: &[f64],
    noise: f64,
    seed: u64,
) -> GradCase {
    let c = d.len();
    let k = randn3::<f64>((mode.directions(), c, kl), seed);
    let u = randn3::<f64>((b, c, l), seed + 1);
    let pre = randn3::<f64>((b, c, l), seed + 2);
    let post = randn3::<f64>((b, c, l), seed + 3);
    let r = randn3::<f64>((b, c, l), seed + 4);
    let mut fb =
        FlashButterfly::with_params(k.clone(), Array1::from_vec(d.to_vec()), l, mode).unwrap();
    if noise > 0.0 {
        fb.fft_mut()
            .perturb(noise, &mut StdRng::seed_from_u64(seed + 5));
    }
    let g = Gates {
        pre: Some(pre.view()),
        post: Some(post.view()),
    };
    let grads = fb.backward(u.view(), g, r.view()).unwrap();
    GradCase {
        fb,
        u,
        k,
        pre,
        post,
        r,
        grads,
    }
}

/// The loss `Σ r ⊙ y` of `fb` with kernel `k` and gates `pre`, `post`.
fn gated_loss(
    fb: &FlashButterfly<f64>,
    u: &Array3<f64>,
    k: &Array3<f64>,
    pre: &Array3<f64>,
    post: &Array3<f64>,
    r: &Array3<f64>,
) -> f64 {
    let g = Gates {
        pre: Some(pre.view()),
        post: Some(post.view()),
    };
    (&fb.forward_with_kernel(u.view(), k.view(), g).unwrap() * r).sum()
}

/// Loss `Σ r ⊙ y` with gates and (optionally perturbed) blocks; gradients by central
/// differences for u, k, D, gates and a sample of block entries (real and imaginary parts).
fn check_grads(mode: ConvMode, noise: f64, seed: u64) {
    let c = 2;
    let GradCase {
        fb,
        u,
        k,
        pre,
        post,
        r,
        grads,
    } = grad_case(mode, (2, 65, 40), &[0.4, -1.3], noise, seed);
    let loss = |fb: &FlashButterfly<f64>,
                u: &Array3<f64>,
                k: &Array3<f64>,
                pre: &Array3<f64>,
                post: &Array3<f64>| gated_loss(fb, u, k, pre, post, &r);
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
    let tol = 1e-6;
    let e = rel3(
        grads.conv.du.view(),
        fd3(&|x| loss(&fb, x, &k, &pre, &post), &u).view(),
    );
    assert!(e < tol, "du {e}");
    let e = rel3(
        grads.conv.dkernel.view(),
        fd3(&|x| loss(&fb, &u, x, &pre, &post), &k).view(),
    );
    assert!(e < tol, "dk {e}");
    let e = rel3(
        grads.conv.dpregate.as_ref().unwrap().view(),
        fd3(&|x| loss(&fb, &u, &k, x, &post), &pre).view(),
    );
    assert!(e < tol, "dpre {e}");
    let e = rel3(
        grads.conv.dpostgate.as_ref().unwrap().view(),
        fd3(&|x| loss(&fb, &u, &k, &pre, x), &post).view(),
    );
    assert!(e < tol, "dpost {e}");
    for ci in 0..c {
        let mut p = fb.clone();
        p.d_mut()[ci] += h;
        let mut m = fb.clone();
        m.d_mut()[ci] -= h;
        let fd = (loss(&p, &u, &k, &pre, &post) - loss(&m, &u, &k, &pre, &post)) / (2.0 * h);
        assert!(
            (grads.conv.dd[ci] - fd).abs() < 1e-6 * (1.0 + fd.abs()),
            "dD"
        );
    }
    // Block entries: ∂L/∂Re + i∂L/∂Im.
    let levels = fb.fft().factors().to_vec();
    let mut checked = 0;
    for (set, dblocks) in [
        (BlockSet::Forward, &grads.dforward_blocks),
        (BlockSet::Inverse, &grads.dinverse_blocks),
    ] {
        for (lv, &f) in levels.iter().enumerate() {
            assert_eq!(dblocks[lv].dim(), (f, f));
            for (a, bcol) in [(0, 0), (1, 2), (f - 1, f / 2), (f / 3, f - 1)] {
                let mut fd = [0.0; 2];
                for (part, unit) in [(0, Complex::new(h, 0.0)), (1, Complex::new(0.0, h))] {
                    let mut p = fb.clone();
                    p.fft_mut().block_mut(set, lv).unwrap()[[a, bcol]] += unit;
                    let mut m = fb.clone();
                    m.fft_mut().block_mut(set, lv).unwrap()[[a, bcol]] -= unit;
                    fd[part] =
                        (loss(&p, &u, &k, &pre, &post) - loss(&m, &u, &k, &pre, &post)) / (2.0 * h);
                }
                let got = dblocks[lv][[a, bcol]];
                let scale = 1.0 + fd[0].abs() + fd[1].abs();
                assert!(
                    (got.re - fd[0]).abs() < 1e-6 * scale && (got.im - fd[1]).abs() < 1e-6 * scale,
                    "{set:?} block {lv} [{a},{bcol}]: {got} vs {fd:?}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 8);
}

#[test]
fn gradients_match_finite_differences_exact_blocks() {
    check_grads(ConvMode::Causal, 0.0, 10);
    check_grads(ConvMode::Bidirectional, 0.0, 20);
}

#[test]
fn gradients_match_finite_differences_learned_blocks() {
    check_grads(ConvMode::Causal, 0.05, 30);
    check_grads(ConvMode::Bidirectional, 0.05, 40);
}

#[test]
fn exact_blocks_give_the_same_gradients_as_long_conv() {
    let (l, kl) = (300, 300);
    let k = randn3::<f64>((2, 3, kl), 1);
    let d = Array1::from_vec(vec![1.0, 2.0, 3.0]);
    let u = randn3::<f64>((2, 3, l), 2);
    let dy = randn3::<f64>((2, 3, l), 3);
    let a = LongConv::with_params(k.clone(), d.clone(), l, ConvMode::Bidirectional).unwrap();
    let b = FlashButterfly::with_params(k, d, l, ConvMode::Bidirectional).unwrap();
    let ga = a.backward(u.view(), Gates::none(), dy.view()).unwrap();
    let gb = b.backward(u.view(), Gates::none(), dy.view()).unwrap();
    assert!(rel3(gb.conv.du.view(), ga.du.view()) < 1e-12);
    assert!(rel3(gb.conv.dkernel.view(), ga.dkernel.view()) < 1e-12);
    for c in 0..3 {
        assert!((gb.conv.dd[c] - ga.dd[c]).abs() < 1e-9 * (1.0 + ga.dd[c].abs()));
    }
}

#[test]
fn perturbed_blocks_change_the_output() {
    let l = 100;
    let k = randn3::<f64>((1, 1, l), 1);
    let u = randn3::<f64>((1, 1, l), 2);
    let mut fb = FlashButterfly::with_params(k, Array1::zeros(1), l, ConvMode::Causal).unwrap();
    let y0 = fb.forward(u.view(), Gates::none()).unwrap();
    fb.fft_mut().perturb(0.01, &mut StdRng::seed_from_u64(3));
    let y1 = fb.forward(u.view(), Gates::none()).unwrap();
    let e = rel3(y1.view(), y0.view());
    assert!(e > 1e-4 && e < 0.5, "{e}");
}

#[test]
fn bad_input_is_a_typed_error() {
    assert!(matches!(
        FlashButterfly::<f32>::new(4, 64, 8, ConvMode::Causal),
        Err(Error::InvalidArgument {
            what: "seq_len",
            ..
        })
    ));
    assert!(matches!(
        FlashButterfly::<f32>::new(4, (1 << 21) + 1, 8, ConvMode::Causal),
        Err(Error::InvalidArgument {
            what: "seq_len",
            ..
        })
    ));
    assert!(matches!(
        FlashButterfly::<f32>::new(4, 100, 101, ConvMode::Causal),
        Err(Error::InvalidArgument {
            what: "kernel_len",
            ..
        })
    ));
    for m in [100, 64, 1 << 22] {
        assert!(matches!(
            MonarchFft::<f64>::new(m),
            Err(Error::InvalidArgument {
                what: "fft size",
                ..
            })
        ));
    }
    let t = MonarchFft::<f64>::new(256).unwrap();
    assert!(matches!(
        t.forward(&[Complex::new(0.0, 0.0); 255]),
        Err(Error::BufferLength { what: "x", .. })
    ));
    let fb = FlashButterfly::<f64>::new(4, 100, 10, ConvMode::Causal).unwrap();
    let u = Array3::<f64>::zeros((2, 5, 100));
    assert!(matches!(
        fb.forward(u.view(), Gates::none()),
        Err(Error::Shape { what: "u", .. })
    ));
}

/// Gradients at sizes whose transforms have the row level of 16, the small middle blocks
/// (4, 2) and several stride levels, with gates, learned (perturbed) blocks and pruned
/// first/last levels: each gradient against a central difference of the loss along a random
/// direction of its whole argument, `(L(θ + hΔ) − L(θ − hΔ))/2h = Re Σ conj(∂L/∂θ)·Δ`.
#[test]
fn gradients_at_larger_sizes_match_directional_differences() {
    for (l, kl, mode, seed) in [
        (600, 600, ConvMode::Causal, 50),
        (3000, 1000, ConvMode::Bidirectional, 60),
        (5000, 200, ConvMode::Causal, 70),
    ] {
        let GradCase {
            fb,
            u,
            k,
            pre,
            post,
            r,
            grads,
        } = grad_case(mode, (2, l, kl), &[0.7, -0.2], 0.05, seed);
        let loss = |fb: &FlashButterfly<f64>,
                    u: &Array3<f64>,
                    k: &Array3<f64>,
                    pre: &Array3<f64>,
                    post: &Array3<f64>| gated_loss(fb, u, k, pre, post, &r);
        let h = 1e-6;
        let check = |what: &str, fd: f64, want: f64| {
            assert!(
                (fd - want).abs() < 1e-6 * (1.0 + want.abs()),
                "L={l} {mode:?} {what}: finite difference {fd} vs gradient {want}"
            );
        };
        let dir3 = |x: &Array3<f64>, s: u64| (randn3::<f64>(x.dim(), s), x.clone());
        let inner = |a: &Array3<f64>, b: &Array3<f64>| (a * b).sum();
        let (du, _) = dir3(&u, seed + 6);
        let fd = (loss(&fb, &(&u + &(&du * h)), &k, &pre, &post)
            - loss(&fb, &(&u - &(&du * h)), &k, &pre, &post))
            / (2.0 * h);
        check("du", fd, inner(&grads.conv.du, &du));
        let (dk, _) = dir3(&k, seed + 7);
        let fd = (loss(&fb, &u, &(&k + &(&dk * h)), &pre, &post)
            - loss(&fb, &u, &(&k - &(&dk * h)), &pre, &post))
            / (2.0 * h);
        check("dk", fd, inner(&grads.conv.dkernel, &dk));
        let (dp, _) = dir3(&pre, seed + 8);
        let fd = (loss(&fb, &u, &k, &(&pre + &(&dp * h)), &post)
            - loss(&fb, &u, &k, &(&pre - &(&dp * h)), &post))
            / (2.0 * h);
        check(
            "dpre",
            fd,
            inner(grads.conv.dpregate.as_ref().unwrap(), &dp),
        );
        let (dq, _) = dir3(&post, seed + 9);
        let fd = (loss(&fb, &u, &k, &pre, &(&post + &(&dq * h)))
            - loss(&fb, &u, &k, &pre, &(&post - &(&dq * h))))
            / (2.0 * h);
        check(
            "dpost",
            fd,
            inner(grads.conv.dpostgate.as_ref().unwrap(), &dq),
        );
        // Every block entry of both sets at once.
        let levels = fb.fft().factors().to_vec();
        let mut rng = StdRng::seed_from_u64(seed + 10);
        let dirs: Vec<Vec<Complex<f64>>> = (0..2 * levels.len())
            .map(|i| {
                let f = levels[i % levels.len()];
                (0..f * f)
                    .map(|_| Complex::<f64>::randn(&mut rng, 1.0))
                    .collect()
            })
            .collect();
        let shifted = |sign: f64| {
            let mut p = fb.clone();
            for (i, dir) in dirs.iter().enumerate() {
                let set = if i < levels.len() {
                    BlockSet::Forward
                } else {
                    BlockSet::Inverse
                };
                let mut blk = p.fft_mut().block_mut(set, i % levels.len()).unwrap();
                blk.iter_mut()
                    .zip(dir)
                    .for_each(|(x, &dx)| *x += dx * (sign * h));
            }
            loss(&p, &u, &k, &pre, &post)
        };
        let fd = (shifted(1.0) - shifted(-1.0)) / (2.0 * h);
        let want: f64 = grads
            .dforward_blocks
            .iter()
            .chain(&grads.dinverse_blocks)
            .zip(&dirs)
            .map(|(g, dir)| {
                g.iter()
                    .zip(dir)
                    .map(|(gg, dd)| (gg.conj() * dd).re)
                    .sum::<f64>()
            })
            .sum();
        check("blocks", fd, want);
    }
}

/// The f32 path (its own SIMD kernels where the CPU has them) against the f64 one, forward
/// and every gradient, with gates and learned blocks, at sizes with pruned levels, the row
/// level of 16 and the small middle blocks (the f64 gradients are checked against finite
/// differences above).
#[test]
fn f32_backward_matches_f64() {
    for (l, kl, mode, seed) in [
        (100, 100, ConvMode::Bidirectional, 80),
        (600, 600, ConvMode::Causal, 81),
        (3000, 1500, ConvMode::Bidirectional, 82),
        (5000, 5000, ConvMode::Causal, 83),
    ] {
        let (b, c) = (2, 3);
        let k = randn3::<f64>((mode.directions(), c, kl), seed);
        let d = Array1::from_vec(vec![0.5, -1.0, 0.25]);
        let u = randn3::<f64>((b, c, l), seed + 1);
        let pre = randn3::<f64>((b, c, l), seed + 2);
        let post = randn3::<f64>((b, c, l), seed + 3);
        let dy = randn3::<f64>((b, c, l), seed + 4);
        let mut f64m = FlashButterfly::with_params(k.clone(), d.clone(), l, mode).unwrap();
        f64m.fft_mut()
            .perturb(0.05, &mut StdRng::seed_from_u64(seed + 5));
        let mut f32m =
            FlashButterfly::<f32>::with_params(k.mapv(|x| x as f32), d.mapv(|x| x as f32), l, mode)
                .unwrap();
        for set in [BlockSet::Forward, BlockSet::Inverse] {
            for lv in 0..f64m.fft().factors().len() {
                let src = f64m.fft().block(set, lv).unwrap().to_owned();
                let mut dst = f32m.fft_mut().block_mut(set, lv).unwrap();
                dst.iter_mut()
                    .zip(src.iter())
                    .for_each(|(a, z)| *a = Complex::new(z.re as f32, z.im as f32));
            }
        }
        let g64 = Gates {
            pre: Some(pre.view()),
            post: Some(post.view()),
        };
        let (p32, q32) = (pre.mapv(|x| x as f32), post.mapv(|x| x as f32));
        let g32 = Gates {
            pre: Some(p32.view()),
            post: Some(q32.view()),
        };
        let (u32_, dy32) = (u.mapv(|x| x as f32), dy.mapv(|x| x as f32));
        let to64 = |a: &Array3<f32>| a.mapv(|x| x as f64);
        let y64 = f64m.forward(u.view(), g64).unwrap();
        let y32 = f32m.forward(u32_.view(), g32).unwrap();
        let e = rel3(to64(&y32).view(), y64.view());
        assert!(e < 1e-5, "L={l} forward {e}");
        let a = f64m.backward(u.view(), g64, dy.view()).unwrap();
        let bb = f32m.backward(u32_.view(), g32, dy32.view()).unwrap();
        for (what, x, y) in [
            ("du", &bb.conv.du, &a.conv.du),
            ("dk", &bb.conv.dkernel, &a.conv.dkernel),
            (
                "dpre",
                bb.conv.dpregate.as_ref().unwrap(),
                a.conv.dpregate.as_ref().unwrap(),
            ),
            (
                "dpost",
                bb.conv.dpostgate.as_ref().unwrap(),
                a.conv.dpostgate.as_ref().unwrap(),
            ),
        ] {
            let e = rel3(to64(x).view(), y.view());
            assert!(e < 1e-5, "L={l} {mode:?} {what}: {e}");
        }
        let e = rel3(
            bb.conv
                .dd
                .mapv(|x| x as f64)
                .insert_axis(ndarray::Axis(0))
                .insert_axis(ndarray::Axis(0))
                .view(),
            a.conv
                .dd
                .clone()
                .insert_axis(ndarray::Axis(0))
                .insert_axis(ndarray::Axis(0))
                .view(),
        );
        assert!(e < 1e-5, "L={l} dD: {e}");
        for (x, y) in bb
            .dforward_blocks
            .iter()
            .chain(&bb.dinverse_blocks)
            .zip(a.dforward_blocks.iter().chain(&a.dinverse_blocks))
        {
            let xs: Vec<Complex<f64>> = x
                .iter()
                .map(|z| Complex::new(z.re as f64, z.im as f64))
                .collect();
            let ys: Vec<Complex<f64>> = y.iter().copied().collect();
            let e = relc(&xs, &ys);
            assert!(e < 1e-5, "L={l} {mode:?} block gradient: {e}");
        }
    }
}
