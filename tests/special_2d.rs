//! fft2d/ifft2d (against rustfft on rows and columns), the Haar wavelet (against a direct
//! recursive transform) and Fastfood (against the dense product `S H G Π H B`), all in f64.

mod common;
use common::*;
use kaleidoscope::butterfly::special::{Decimation, Fastfood, FftOptions};
use kaleidoscope::{Butterfly, Error, LinearMap, Permutation, C64};
use ndarray::{Array2, ArrayView2};
use num_complex::Complex;
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::Rng;
use rustfft::FftPlanner;

const TOL: f64 = 1e-12;

/// The 2-D DFT of every row of `x`, read as a row-major `(n1, n2)` image: rustfft along each
/// image row, then along each image column, then the scaling.
fn dft2_ref(x: ArrayView2<C64>, n1: usize, n2: usize, inverse: bool, scale: f64) -> Array2<C64> {
    let mut planner = FftPlanner::<f64>::new();
    let (f1, f2) = if inverse {
        (planner.plan_fft_inverse(n1), planner.plan_fft_inverse(n2))
    } else {
        (planner.plan_fft_forward(n1), planner.plan_fft_forward(n2))
    };
    let mut out = x.to_owned();
    for mut row in out.rows_mut() {
        let mut img: Vec<Complex<f64>> = row.iter().copied().collect();
        for r in img.chunks_exact_mut(n2) {
            f2.process(r);
        }
        for c in 0..n2 {
            let mut col: Vec<Complex<f64>> = (0..n1).map(|r| img[r * n2 + c]).collect();
            f1.process(&mut col);
            for (r, v) in col.into_iter().enumerate() {
                img[r * n2 + c] = v;
            }
        }
        for (o, v) in row.iter_mut().zip(img) {
            *o = v * scale;
        }
    }
    out
}

fn check_fft2d(m1: u32, m2: u32, normalized: bool, bit_reversal: bool, dif: bool, seed: u64) {
    let (n1, n2) = (1usize << m1, 1usize << m2);
    let n = n1 * n2;
    let opts = FftOptions {
        normalized,
        bit_reversal,
        decimation: if dif {
            Decimation::Frequency
        } else {
            Decimation::Time
        },
    };
    let f = Butterfly::<C64>::fft2d(n1, n2, opts).unwrap();
    let fi = Butterfly::<C64>::ifft2d(n1, n2, opts).unwrap();
    assert_eq!((f.n(), f.nblocks(), f.nstacks()), (n, 1, 1));
    let x = randn::<C64>(6, n, seed);
    let nf = n as f64;
    let fwd_scale = if normalized { 1.0 / nf.sqrt() } else { 1.0 };
    let inv_scale = if normalized {
        1.0 / nf.sqrt()
    } else {
        1.0 / nf
    };
    let want = dft2_ref(x.view(), n1, n2, false, fwd_scale);
    let want_inv = dft2_ref(x.view(), n1, n2, true, inv_scale);
    let br = |v: Array2<C64>, to_natural: bool| -> Array2<C64> {
        // Without the bit reversal, DIT expects bit-reversed input and DIF leaves the output
        // bit-reversed: both are the permutation P_br(n1) ⊗ P_br(n2).
        if bit_reversal || to_natural != dif {
            return v;
        }
        let p = Permutation::bit_reversal(n1)
            .unwrap()
            .kronecker(&Permutation::bit_reversal(n2).unwrap());
        LinearMap::<C64>::apply(&p, v.view()).unwrap()
    };
    let got = br(f.apply(br(x.clone(), false).view()).unwrap(), true);
    assert!(
        rel_err(got.view(), want.view()) < TOL,
        "fft2d {n1}x{n2} {opts:?}"
    );
    let got = br(fi.apply(br(x.clone(), false).view()).unwrap(), true);
    assert!(
        rel_err(got.view(), want_inv.view()) < TOL,
        "ifft2d {n1}x{n2} {opts:?}"
    );
    if bit_reversal {
        // Round trip, and the dense form through the independent factor-by-factor reference.
        let back = fi.apply(f.apply(x.view()).unwrap().view()).unwrap();
        assert!(rel_err(back.view(), x.view()) < TOL);
        if n <= 128 {
            let w = butterfly_dense_reference(&f);
            assert!(rel_err(matmul_xwt(x.view(), w.view()).view(), want.view()) < TOL);
        }
        // Adjoint of the unitary transform is its inverse.
        if normalized {
            let a = f.apply_adjoint(x.view()).unwrap();
            assert!(rel_err(a.view(), want_inv.view()) < TOL);
        }
    }
}

#[test]
fn fft2d_all_options_smoke() {
    for (m1, m2) in [
        (0, 0),
        (0, 3),
        (3, 0),
        (1, 1),
        (2, 3),
        (3, 2),
        (4, 4),
        (5, 3),
        (1, 6),
    ] {
        for normalized in [false, true] {
            for bit_reversal in [false, true] {
                for dif in [false, true] {
                    check_fft2d(
                        m1,
                        m2,
                        normalized,
                        bit_reversal,
                        dif,
                        u64::from(m1 * 8 + m2),
                    );
                }
            }
        }
    }
}

/// The orthonormal Haar transform by its definition: average and difference the pairs, recurse
/// on the averages, output `[approximation, coarsest details, …, finest details]`.
fn haar_ref(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    if n == 1 {
        return x.to_vec();
    }
    let r = std::f64::consts::FRAC_1_SQRT_2;
    let a: Vec<f64> = (0..n / 2).map(|i| (x[2 * i] + x[2 * i + 1]) * r).collect();
    let d = (0..n / 2).map(|i| (x[2 * i] - x[2 * i + 1]) * r);
    let mut out = haar_ref(&a);
    out.extend(d);
    out
}

fn check_haar(m: u32, seed: u64) {
    let n = 1usize << m;
    let h = Butterfly::<f64>::haar(n).unwrap();
    let hi = Butterfly::<f64>::haar_inverse(n).unwrap();
    let x = randn::<f64>(5, n, seed);
    let mut want = x.clone();
    for mut row in want.rows_mut() {
        let v = haar_ref(row.as_slice().unwrap());
        row.assign(&ndarray::Array1::from(v));
    }
    let y = h.apply(x.view()).unwrap();
    assert!(rel_err(y.view(), want.view()) < TOL, "haar n = {n}");
    // The inverse undoes it, and it is the transpose.
    assert!(rel_err(hi.apply(y.view()).unwrap().view(), x.view()) < TOL);
    if n <= 128 {
        let w = butterfly_dense_reference(&h);
        assert!(rel_err(matmul_xwt(x.view(), w.view()).view(), want.view()) < TOL);
        let wt = w.t().to_owned();
        assert!(rel_err(hi.to_dense().view(), wt.view()) < TOL);
    }
    assert!(rel_err(h.apply_transpose(y.view()).unwrap().view(), x.view()) < TOL);
}

#[test]
fn haar_smoke() {
    for m in 0..=7 {
        check_haar(m, 40 + u64::from(m));
    }
    // A hand example: n = 4, x = [1, 2, 3, 4].
    let h = Butterfly::<f64>::haar(4).unwrap();
    let y = h.apply(
        Array2::from_shape_vec((1, 4), vec![1.0, 2.0, 3.0, 4.0])
            .unwrap()
            .view(),
    );
    let r = std::f64::consts::FRAC_1_SQRT_2;
    let want = [5.0, -2.0, -r, -r];
    for (a, b) in y.unwrap().iter().zip(want) {
        assert!((a - b).abs() < TOL);
    }
}

/// Unnormalised Hadamard matrix by Sylvester's recursion.
fn hadamard_dense(n: usize) -> Array2<f64> {
    let mut h = Array2::from_elem((1, 1), 1.0);
    while h.nrows() < n {
        let k = h.nrows();
        h = Array2::from_shape_fn((2 * k, 2 * k), |(i, j)| {
            let s = if i >= k && j >= k { -1.0 } else { 1.0 };
            s * h[(i % k, j % k)]
        });
    }
    h
}

/// `S H G Π H B` restricted to the first `d` columns, as dense f64 products.
fn fastfood_dense(b: &[f64], perm: &Permutation, g: &[f64], s: &[f64]) -> Array2<f64> {
    let n = g.len();
    let h = hadamard_dense(n);
    let diag = |v: &[f64]| Array2::from_shape_fn((n, n), |(i, j)| if i == j { v[i] } else { 0.0 });
    let mut bp = b.to_vec();
    bp.resize(n, 0.0);
    let pi: Array2<f64> = LinearMap::<f64>::to_dense(perm);
    let v = diag(s)
        .dot(&h)
        .dot(&diag(g))
        .dot(&pi)
        .dot(&h)
        .dot(&diag(&bp));
    v.slice(ndarray::s![.., ..b.len()]).to_owned()
}

fn check_fastfood(d: usize, seed: u64) {
    let mut r = rng(seed);
    let n = d.next_power_of_two();
    let b: Vec<f64> = (0..d).map(|_| r.random_range(-2.0..2.0)).collect();
    let mut pv: Vec<usize> = (0..n).collect();
    pv.shuffle(&mut r);
    let perm = Permutation::new(pv).unwrap();
    let g: Vec<f64> = (0..n).map(|_| r.random_range(-2.0..2.0)).collect();
    let s: Vec<f64> = (0..n).map(|_| r.random_range(-2.0..2.0)).collect();
    let f = Fastfood::from_parts(b.clone(), perm.clone(), g.clone(), s.clone()).unwrap();
    let want = fastfood_dense(&b, &perm, &g, &s);
    assert_eq!((f.out_features(), f.in_features()), (n, d));
    assert!(rel_err(f.to_dense().view(), want.view()) < TOL);
    let x = randn::<f64>(7, d, seed + 1);
    let y = f.apply(x.view()).unwrap();
    assert!(rel_err(y.view(), matmul_xwt(x.view(), want.view()).view()) < TOL);
    let yt = randn::<f64>(3, n, seed + 2);
    let wt = want.t().to_owned();
    assert!(
        rel_err(
            f.apply_transpose(yt.view()).unwrap().view(),
            matmul_xwt(yt.view(), wt.view()).view()
        ) < TOL
    );
    let chain = f.to_chain().unwrap();
    assert!(rel_err(chain.apply(x.view()).unwrap().view(), y.view()) < TOL);
    let one = f.to_butterfly().unwrap();
    // H·B, then Π as a Beneš pair (absent when Π is the identity), then S·H·G.
    let blocks = if perm.is_identity() { 2 } else { 4 };
    assert_eq!(one.nblocks(), blocks);
    assert!(rel_err(butterfly_dense_reference(&one).view(), want.view()) < TOL);
    assert!(rel_err(one.apply(x.view()).unwrap().view(), y.view()) < TOL);
}

#[test]
fn fastfood_smoke() {
    for d in [2, 3, 4, 5, 8, 13, 16, 31, 64] {
        check_fastfood(d, d as u64);
    }
}

#[test]
fn fastfood_random_features_have_gaussian_row_norms() {
    let (n, sigma) = (512usize, 1.7);
    let f = Fastfood::<f64>::new(n, sigma, &mut rng(3)).unwrap();
    assert!(f.b().iter().all(|&v| v == 1.0 || v == -1.0));
    let w = f.to_dense();
    let gnorm = f.g().iter().map(|v| v * v).sum::<f64>().sqrt();
    let mut mean_sq = 0.0;
    for (row, &si) in w.rows().into_iter().zip(f.s()) {
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        // ‖row i‖ = |s_i| √n ‖g‖ for any S, G (H Π H B has orthogonal rows of norm √n·…).
        assert!((norm - si.abs() * (n as f64).sqrt() * gnorm).abs() < 1e-9 * norm);
        mean_sq += norm * norm / n as f64;
    }
    // Rows distributed like N(0, σ⁻² I): E‖row‖² = n/σ² (relative standard deviation √2/n).
    let ratio = mean_sq * sigma * sigma / n as f64;
    assert!((ratio - 1.0).abs() < 0.02, "E|row|^2 σ²/n = {ratio}");
}

#[test]
fn bad_inputs_are_typed_errors() {
    let opts = FftOptions::default();
    assert!(matches!(
        Butterfly::<C64>::fft2d(6, 4, opts),
        Err(Error::NotPowerOfTwo { what: "n1", got: 6 })
    ));
    assert!(matches!(
        Butterfly::<C64>::ifft2d(4, 0, opts),
        Err(Error::Zero { what: "n2" })
    ));
    assert!(matches!(
        Butterfly::<f64>::fft2d(4, 4, opts),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Butterfly::<f64>::haar(12),
        Err(Error::NotPowerOfTwo { what: "n", got: 12 })
    ));
    assert!(matches!(
        Butterfly::<f64>::haar_inverse(0),
        Err(Error::Zero { .. })
    ));
    let p = Permutation::identity(8).unwrap();
    assert!(matches!(
        Fastfood::from_parts(vec![1.0; 5], p.clone(), vec![1.0; 8], vec![1.0; 7]),
        Err(Error::BufferLength {
            what: "s",
            expected: 8,
            got: 7
        })
    ));
    assert!(matches!(
        Fastfood::from_parts(vec![1.0; 9], p, vec![1.0; 16], vec![1.0; 16]),
        Err(Error::BufferLength {
            what: "permutation",
            expected: 16,
            got: 8
        })
    ));
    assert!(matches!(
        Fastfood::<f64>::new(8, 0.0, &mut rng(1)),
        Err(Error::InvalidArgument { what: "sigma", .. })
    ));
    assert!(matches!(
        Fastfood::<f64>::new(1, 1.0, &mut rng(1)),
        Err(Error::InvalidArgument { what: "b", .. })
    ));
    let f = Fastfood::<f64>::new(6, 1.0, &mut rng(1)).unwrap();
    let x = Array2::<f64>::zeros((2, 8));
    assert!(matches!(
        f.apply(x.view()),
        Err(Error::Shape { what: "x", .. })
    ));
    assert!(matches!(
        f.apply_transpose(Array2::<f64>::zeros((2, 6)).view()),
        Err(Error::Shape { what: "y", .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn prop_fft2d(m1 in 0u32..=5, m2 in 0u32..=5, normalized in any::<bool>(),
                  bit_reversal in any::<bool>(), dif in any::<bool>(), seed in 0u64..1 << 32) {
        check_fft2d(m1, m2, normalized, bit_reversal, dif, seed);
    }
    #[test]
    fn prop_haar(m in 0u32..=9, seed in 0u64..1 << 32) {
        check_haar(m, seed);
    }
    #[test]
    fn prop_fastfood(d in 2usize..=80, seed in 0u64..1 << 32) {
        check_fastfood(d, seed);
    }
}
