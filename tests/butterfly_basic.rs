mod common;
use common::*;
use kaleidoscope::{Butterfly, ButterflyConfig, Differentiable, Init, LinearMap, Scalar, C32, C64};
use ndarray::Array2;

fn check_dense<T: Scalar>(inp: usize, out: usize, nblocks: usize, inc: bool, seed: u64) {
    let mut r = rng(seed);
    let cfg = ButterflyConfig {
        nblocks,
        increasing_stride: inc,
        init: Init::Randn,
        bias: true,
    };
    let mut b = Butterfly::<T>::new(inp, out, cfg, &mut r).unwrap();
    for v in b.bias_mut().unwrap() {
        *v = T::randn(&mut r, 1.0);
    }
    let w = butterfly_dense_reference(&b);
    assert!(rel_err(b.to_dense().view(), w.view()) < 1e-12);
    let x = randn::<T>(37, inp, seed + 1);
    let mut want = matmul_xwt(x.view(), w.view());
    for mut row in want.rows_mut() {
        for (v, &bb) in row.iter_mut().zip(b.bias().unwrap()) {
            *v += bb;
        }
    }
    assert!(rel_err(b.apply(x.view()).unwrap().view(), want.view()) < 1e-12);
    let y = randn::<T>(21, out, seed + 2);
    let wt = w.t().to_owned();
    assert!(
        rel_err(
            b.apply_transpose(y.view()).unwrap().view(),
            matmul_xwt(y.view(), wt.view()).view()
        ) < 1e-12
    );
    let wh = conj_t(w.view());
    assert!(
        rel_err(
            b.apply_adjoint(y.view()).unwrap().view(),
            matmul_xwt(y.view(), wh.view()).view()
        ) < 1e-12
    );
}

#[test]
fn dense_agreement_smoke() {
    for &(i, o, nb, inc) in &[
        (8, 8, 1, true),
        (5, 13, 2, false),
        (16, 3, 3, true),
        (1, 3, 1, true),
        (33, 70, 2, true),
    ] {
        check_dense::<f64>(i, o, nb, inc, 7);
        check_dense::<C64>(i, o, nb, inc, 9);
    }
}

#[test]
fn gradients_smoke() {
    let mut r = rng(3);
    let cfg = ButterflyConfig {
        nblocks: 2,
        increasing_stride: false,
        init: Init::Randn,
        bias: true,
    };
    let b = Butterfly::<C64>::new(6, 11, cfg, &mut r).unwrap();
    let x = randn::<C64>(19, 6, 4);
    let c = randn::<C64>(19, 11, 5);
    let mut g = vec![C64::new(0.0, 0.0); b.params().len()];
    let dx = b.backward(x.view(), c.view(), &mut g).unwrap();
    let (fdx, fdp) = finite_diff_grads(&b, &x, &c, 1e-6);
    assert!(
        rel_err(dx.view(), fdx.view()) < 1e-6,
        "{}",
        rel_err(dx.view(), fdx.view())
    );
    assert!(rel_err_vec(&g, &fdp) < 1e-6, "{}", rel_err_vec(&g, &fdp));
}

#[test]
fn fft_matches_definition_smoke() {
    use kaleidoscope::butterfly::special::{Decimation, FftOptions};
    for &n in &[1usize, 2, 8, 64] {
        for dec in [Decimation::Time, Decimation::Frequency] {
            for normalized in [false, true] {
                let opts = FftOptions {
                    normalized,
                    bit_reversal: true,
                    decimation: dec,
                };
                let f = Butterfly::<C64>::fft(n, opts).unwrap().to_dense();
                let fi = Butterfly::<C64>::ifft(n, opts).unwrap().to_dense();
                let s = if normalized {
                    1.0 / (n as f64).sqrt()
                } else {
                    1.0
                };
                let si = if normalized { s } else { 1.0 / n as f64 };
                for j in 0..n {
                    for k in 0..n {
                        let a = -2.0 * std::f64::consts::PI * (j * k) as f64 / n as f64;
                        let w = C64::new(a.cos(), a.sin());
                        assert!((f[(j, k)] - w * s).norm() < 1e-12);
                        assert!((fi[(j, k)] - w.conj() * si).norm() < 1e-12);
                    }
                }
            }
        }
    }
}

/// `Butterfly::project` recovers a random increasing-stride butterfly from its dense matrix
/// (the reference product of dense factors) to rounding, real and complex, n = 2 … 128, and
/// reports a large error for a dense Gaussian matrix (not a butterfly from n = 4 on).
#[test]
fn projection_recovers_butterflies() {
    fn case<T: Scalar>(n: usize, seed: u64) {
        let cfg = ButterflyConfig {
            nblocks: 1,
            increasing_stride: true,
            init: Init::Randn,
            bias: false,
        };
        let b = Butterfly::<T>::new(n, n, cfg, &mut rng(seed)).unwrap();
        let w = butterfly_dense_reference(&b);
        let (p, err) = Butterfly::<T>::project(w.view()).unwrap();
        let back = butterfly_dense_reference(&p);
        let direct = rel_err(back.view(), w.view());
        assert!(
            err <= 1e-12 && direct <= 1e-12,
            "{} n={n}: {err:.2e} {direct:.2e}",
            T::NAME
        );
        assert!((err - direct).abs() <= 1e-12);
        if n >= 4 {
            let g = randn::<T>(n, n, seed + 7);
            let (_, e) = Butterfly::<T>::project(g.view()).unwrap();
            assert!(
                e > 0.1,
                "{} n={n}: a Gaussian matrix projected to {e:.2e}",
                T::NAME
            );
        }
    }
    for (i, n) in [2, 4, 8, 16, 32, 64, 128].into_iter().enumerate() {
        case::<f64>(n, 100 + i as u64);
        case::<C64>(n, 200 + i as u64);
    }
    let z = ndarray::Array2::<f64>::zeros((8, 8));
    assert_eq!(Butterfly::<f64>::project(z.view()).unwrap().1, 0.0);
    assert!(Butterfly::<f64>::project(ndarray::Array2::zeros((8, 4)).view()).is_err());
    assert!(Butterfly::<f64>::project(ndarray::Array2::zeros((6, 6)).view()).is_err());
    assert!(Butterfly::<f64>::project(ndarray::Array2::zeros((1, 1)).view()).is_err());
}

/// The twiddle gradient of a batch larger than one tile is the same, bit for bit, on 1 and on
/// 3 threads (tiles are summed in fixed groups, not in rayon's work-stealing order).
#[test]
fn backward_is_independent_of_the_thread_count() {
    let cfg = ButterflyConfig {
        nblocks: 2,
        increasing_stride: true,
        init: Init::Randn,
        bias: false,
    };
    let b = Butterfly::<C64>::new(64, 64, cfg, &mut rng(3)).unwrap();
    let x = randn::<C64>(1000, 64, 4);
    let dy = randn::<C64>(1000, 64, 5);
    let run = |threads: usize| {
        on_threads(threads, || {
            let mut g = vec![C64::new(0.0, 0.0); b.params().len()];
            let dx = b.backward(x.view(), dy.view(), &mut g).unwrap();
            (g, dx)
        })
    };
    let (g1, dx1) = run(1);
    let (g3, dx3) = run(3);
    let bits = |v: &[C64]| -> Vec<(u64, u64)> {
        v.iter().map(|z| (z.re.to_bits(), z.im.to_bits())).collect()
    };
    assert_eq!(bits(&g1), bits(&g3));
    assert_eq!(dx1, dx3);
    assert!(g1.iter().any(|z| z.norm() > 0.0));
}

/// `f(k, q[i])` at `(k, i)`: a real transform with its columns gathered by `q`.
fn gathered<T: Scalar>(n: usize, q: &[usize], f: &dyn Fn(usize, usize) -> f64) -> Array2<T> {
    Array2::from_shape_fn((n, n), |(k, i)| T::from_f64(f(k, q[i])))
}

fn bit_reversal(n: usize) -> Vec<usize> {
    kaleidoscope::Permutation::bit_reversal(n)
        .unwrap()
        .as_slice()
        .to_vec()
}

/// Bit reversal after Makhoul's reordering (`v_j = x_{2j}`, `v_{n−1−j} = x_{2j+1}`): the
/// input permutation of the DCT-II's fast algorithm `Re(D · F · P)`, as a gather.
fn makhoul_bit_reversal(n: usize) -> Vec<usize> {
    let mut m = vec![0; n];
    for j in 0..n / 2 {
        m[j] = 2 * j;
        m[n - 1 - j] = 2 * j + 1;
    }
    bit_reversal(n).into_iter().map(|r| m[r]).collect()
}

/// `‖Re B − Re A‖_F / ‖Re A‖_F` against the dense reference of `b`.
fn real_part_error<T: Scalar>(b: &Butterfly<T>, a: &Array2<T>) -> f64 {
    let w = butterfly_dense_reference(b);
    let (mut e, mut t) = (0.0, 0.0);
    for (x, y) in w.iter().zip(a.iter()) {
        e += (x.to_c64().re - y.to_c64().re).powi(2);
        t += y.to_c64().re.powi(2);
    }
    (e / t).sqrt()
}

/// The real part of a random complex butterfly, the DCT-II (orthonormal, under its fast
/// algorithm's input permutation), the DST-II (its reversal after the same permutation with
/// the columns' signs) and the Hartley transform (under bit reversal) are rebuilt exactly
/// from their real parts alone; a Gaussian matrix is not the real part of a butterfly.
#[test]
fn real_part_projection_recovers_real_parts_of_butterflies() {
    use std::f64::consts::PI;
    let cfg = ButterflyConfig {
        nblocks: 1,
        increasing_stride: true,
        init: Init::Randn,
        bias: false,
    };
    fn check<T: Scalar>(what: &str, a: &Array2<T>, tol: f64) {
        let (b, err) = Butterfly::<T>::project_real_part(a.view()).unwrap();
        let direct = real_part_error(&b, a);
        assert!(
            err <= tol && (err - direct).abs() <= tol,
            "{what} ({}): reported {err:.2e}, measured {direct:.2e}",
            T::NAME
        );
    }
    for (i, n) in [2usize, 4, 8, 16, 32, 64, 128, 256].into_iter().enumerate() {
        let seed = 300 + i as u64;
        let b = Butterfly::<C64>::new(n, n, cfg, &mut rng(seed)).unwrap();
        let re = butterfly_dense_reference(&b).mapv(|z| C64::new(z.re, 0.0));
        check(&format!("random n={n}"), &re, 1e-12);
        let nf = n as f64;
        let dct = |k: usize, j: usize| {
            let s = if k == 0 { 1.0 / nf } else { 2.0 / nf }.sqrt();
            s * (PI * (k * (2 * j + 1)) as f64 / (2.0 * nf)).cos()
        };
        let q = makhoul_bit_reversal(n);
        check(
            &format!("DCT-II n={n}"),
            &gathered::<C64>(n, &q, &dct),
            1e-12,
        );
        check(
            &format!("DCT-II n={n}"),
            &gathered::<C32>(n, &q, &dct),
            1e-5,
        );
        // DST-II[k, j] = (−1)^j DCT-II[n−1−k, j]: rows reversed, columns signed.
        let dst = |k: usize, j: usize| {
            let s = if k == n - 1 { 1.0 / nf } else { 2.0 / nf }.sqrt();
            s * (PI * ((k + 1) * (2 * j + 1)) as f64 / (2.0 * nf)).sin()
        };
        check(
            &format!("DST-II n={n}"),
            &gathered::<C64>(n, &q, &dst),
            1e-12,
        );
        let hartley = |k: usize, j: usize| {
            let a = 2.0 * PI * ((j * k) % n) as f64 / nf;
            (a.cos() + a.sin()) / nf.sqrt()
        };
        let br = bit_reversal(n);
        check(
            &format!("Hartley n={n}"),
            &gathered::<C64>(n, &br, &hartley),
            1e-12,
        );
        if n >= 8 {
            let g = randn::<f64>(n, n, seed + 100).mapv(|x| C64::new(x, 0.0));
            let (_, e) = Butterfly::<C64>::project_real_part(g.view()).unwrap();
            assert!(e > 0.1, "n={n}: a Gaussian matrix projected to {e:.2e}");
        }
    }
    let z = Array2::<C64>::zeros((8, 8));
    assert_eq!(
        Butterfly::<C64>::project_real_part(z.view()).unwrap().1,
        0.0
    );
    for (r, c) in [(8, 4), (6, 6), (1, 1)] {
        let z = Array2::<C64>::zeros((r, c));
        assert!(Butterfly::<C64>::project_real_part(z.view()).is_err());
    }
    let real = Array2::<f64>::eye(8);
    assert!(Butterfly::<f64>::project_real_part(real.view()).is_err());
}
