//! Every exact transform of `butterfly::special` against an independent reference: rustfft for
//! the DFT, the defining formula summed directly in f64 for the rest (DCT/DST/Hartley/Hadamard,
//! circulant, Toeplitz, circular convolution, ACDC), at sizes from 1 to 4096.

mod common;
use common::*;
use kaleidoscope::butterfly::special::{
    dct_butterfly, dst_butterfly, hartley_butterfly, Acdc, Conv1d, DctType, Decimation, DstType,
    FftOptions, Toeplitz,
};
use kaleidoscope::{Butterfly, Differentiable, Error, LinearMap, Scalar, C32, C64};
use ndarray::{Array2, Array3, ArrayView2};
use num_complex::Complex;
use proptest::prelude::*;
use rustfft::FftPlanner;

/// Powers of two 1 … 4096.
fn pow2_sizes() -> impl Iterator<Item = usize> {
    (0..=12).map(|p| 1usize << p)
}

/// A few rows at small sizes, fewer at large ones (the references are O(n²) per row).
fn rows_for(n: usize) -> usize {
    if n <= 256 {
        3
    } else {
        2
    }
}

fn bitrev(n: usize) -> Vec<usize> {
    let m = n.trailing_zeros();
    (0..n)
        .map(|i| {
            if m == 0 {
                0
            } else {
                i.reverse_bits() >> (usize::BITS - m)
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// DFT
// ---------------------------------------------------------------------------------------------

/// rustfft on each row (`inverse`: kernel e^{+2πi jk/n}), times `scale`.
fn rustfft_rows(x: &Array2<C64>, inverse: bool, scale: f64) -> Array2<C64> {
    let n = x.ncols();
    let mut planner = FftPlanner::<f64>::new();
    let plan = if inverse {
        planner.plan_fft_inverse(n)
    } else {
        planner.plan_fft_forward(n)
    };
    let mut out = x.clone();
    for mut row in out.rows_mut() {
        let mut buf = row.to_vec();
        plan.process(&mut buf);
        for (o, v) in row.iter_mut().zip(buf) {
            *o = v * scale;
        }
    }
    out
}

fn permute_cols(x: &Array2<C64>, perm: &[usize]) -> Array2<C64> {
    Array2::from_shape_fn(x.dim(), |(r, i)| x[(r, perm[i])])
}

#[test]
fn fft_and_ifft_match_rustfft_for_every_power_of_two() {
    let mut worst = 0.0f64;
    for n in pow2_sizes() {
        let br = bitrev(n);
        let x = randn::<C64>(rows_for(n), n, n as u64);
        for inverse in [false, true] {
            for decimation in [Decimation::Time, Decimation::Frequency] {
                for normalized in [false, true] {
                    for bit_reversal in [true, false] {
                        let opts = FftOptions {
                            normalized,
                            bit_reversal,
                            decimation,
                        };
                        let b = if inverse {
                            Butterfly::<C64>::ifft(n, opts).unwrap()
                        } else {
                            Butterfly::<C64>::fft(n, opts).unwrap()
                        };
                        let scale = match (normalized, inverse) {
                            (true, _) => 1.0 / (n as f64).sqrt(),
                            (false, false) => 1.0,
                            (false, true) => 1.0 / n as f64,
                        };
                        // Without the bit-reversal, decimation in time is F·P_br (it expects
                        // bit-reversed input) and decimation in frequency is P_br·F.
                        let want = match (bit_reversal, decimation) {
                            (true, _) => rustfft_rows(&x, inverse, scale),
                            (false, Decimation::Time) => {
                                rustfft_rows(&permute_cols(&x, &br), inverse, scale)
                            }
                            (false, Decimation::Frequency) => {
                                permute_cols(&rustfft_rows(&x, inverse, scale), &br)
                            }
                        };
                        let got = b.apply(x.view()).unwrap();
                        let e = rel_err(got.view(), want.view());
                        assert!(e < 1e-12, "n={n} {opts:?} inverse={inverse}: {e:e}");
                        worst = worst.max(e);
                    }
                }
            }
        }
    }
    eprintln!("fft/ifft worst relative error (n ≤ 4096): {worst:e}");
}

#[test]
fn fft_f32_smoke() {
    let n = 512;
    let x = randn::<C64>(2, n, 1);
    let x32 = x.mapv(|v| C32::new(v.re as f32, v.im as f32));
    let b = Butterfly::<C32>::fft(n, FftOptions::default()).unwrap();
    let got = b.apply(x32.view()).unwrap().mapv(|v| v.to_c64());
    let want = rustfft_rows(&x, false, 1.0);
    let e = rel_err(got.view(), want.view());
    assert!(e < 1e-5, "{e:e}");
}

// ---------------------------------------------------------------------------------------------
// DCT / DST / Hartley
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Dct(DctType),
    Dst(DstType),
    Hartley,
}

const KINDS: [Kind; 7] = [
    Kind::Dct(DctType::II),
    Kind::Dct(DctType::III),
    Kind::Dct(DctType::IV),
    Kind::Dst(DstType::II),
    Kind::Dst(DstType::III),
    Kind::Dst(DstType::IV),
    Kind::Hartley,
];

/// `cos(2πm/period)` and `sin(2πm/period)` for `m = 0 .. period` (angles reduced exactly).
fn trig_table(period: usize) -> (Vec<f64>, Vec<f64>) {
    let ang = |m: usize| 2.0 * std::f64::consts::PI * m as f64 / period as f64;
    (
        (0..period).map(|m| ang(m).cos()).collect(),
        (0..period).map(|m| ang(m).sin()).collect(),
    )
}

/// The transform of one real row, by its defining formula (scipy's conventions), in f64.
fn trig_reference(kind: Kind, ortho: bool, x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let nf = n as f64;
    let mut y = vec![0.0; n];
    match kind {
        Kind::Dct(DctType::II) => {
            let (c, _) = trig_table(4 * n);
            for (k, yk) in y.iter_mut().enumerate() {
                let s: f64 = (0..n).map(|j| x[j] * c[(k * (2 * j + 1)) % (4 * n)]).sum();
                let f = match (ortho, k) {
                    (false, _) => 1.0,
                    (true, 0) => (1.0 / (4.0 * nf)).sqrt(),
                    (true, _) => (1.0 / (2.0 * nf)).sqrt(),
                };
                *yk = 2.0 * s * f;
            }
        }
        Kind::Dct(DctType::III) => {
            let (c, _) = trig_table(4 * n);
            for (k, yk) in y.iter_mut().enumerate() {
                let s: f64 = (1..n).map(|j| x[j] * c[((2 * k + 1) * j) % (4 * n)]).sum();
                *yk = if ortho {
                    x[0] / nf.sqrt() + (2.0 / nf).sqrt() * s
                } else {
                    x[0] + 2.0 * s
                };
            }
        }
        Kind::Dct(DctType::IV) | Kind::Dst(DstType::IV) => {
            let (c, s) = trig_table(8 * n);
            let t = if matches!(kind, Kind::Dct(_)) { c } else { s };
            let f = if ortho {
                (1.0 / (2.0 * nf)).sqrt()
            } else {
                1.0
            };
            for (k, yk) in y.iter_mut().enumerate() {
                let s: f64 = (0..n)
                    .map(|j| x[j] * t[((2 * k + 1) * (2 * j + 1)) % (8 * n)])
                    .sum();
                *yk = 2.0 * s * f;
            }
        }
        Kind::Dst(DstType::II) => {
            let (_, sn) = trig_table(4 * n);
            for (k, yk) in y.iter_mut().enumerate() {
                let s: f64 = (0..n)
                    .map(|j| x[j] * sn[((k + 1) * (2 * j + 1)) % (4 * n)])
                    .sum();
                let f = match (ortho, k == n - 1) {
                    (false, _) => 1.0,
                    (true, true) => (1.0 / (4.0 * nf)).sqrt(),
                    (true, false) => (1.0 / (2.0 * nf)).sqrt(),
                };
                *yk = 2.0 * s * f;
            }
        }
        Kind::Dst(DstType::III) => {
            let (_, sn) = trig_table(4 * n);
            for (k, yk) in y.iter_mut().enumerate() {
                let s: f64 = (0..n - 1)
                    .map(|j| x[j] * sn[((2 * k + 1) * (j + 1)) % (4 * n)])
                    .sum();
                let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
                *yk = if ortho {
                    sign * x[n - 1] / nf.sqrt() + (2.0 / nf).sqrt() * s
                } else {
                    sign * x[n - 1] + 2.0 * s
                };
            }
        }
        Kind::Hartley => {
            let (c, sn) = trig_table(n);
            let f = if ortho { 1.0 / nf.sqrt() } else { 1.0 };
            for (k, yk) in y.iter_mut().enumerate() {
                let s: f64 = (0..n)
                    .map(|j| {
                        let m = (j * k) % n;
                        x[j] * (c[m] + sn[m])
                    })
                    .sum();
                *yk = s * f;
            }
        }
    }
    y
}

fn reference_rows(kind: Kind, ortho: bool, x: &Array2<f64>) -> Array2<f64> {
    let mut y = Array2::zeros(x.dim());
    for (xr, mut yr) in x.rows().into_iter().zip(y.rows_mut()) {
        let v = trig_reference(kind, ortho, &xr.to_vec());
        yr.assign(&ndarray::Array1::from(v));
    }
    y
}

/// The dense matrix `W` (out, in) of the reference, column by column.
fn reference_dense(kind: Kind, ortho: bool, n: usize) -> Array2<f64> {
    let eye = Array2::<f64>::eye(n);
    reference_rows(kind, ortho, &eye).reversed_axes()
}

fn build<R: kaleidoscope::scalar::RealScalar>(
    kind: Kind,
    ortho: bool,
    n: usize,
) -> kaleidoscope::Result<kaleidoscope::butterfly::RealPart<R>>
where
    Complex<R>: Scalar<Real = R>,
{
    match (kind, ortho) {
        (Kind::Dct(t), false) => Butterfly::<R>::dct(n, t),
        (Kind::Dct(t), true) => Butterfly::<R>::dct_orthonormal(n, t),
        (Kind::Dst(t), false) => Butterfly::<R>::dst(n, t),
        (Kind::Dst(t), true) => Butterfly::<R>::dst_orthonormal(n, t),
        (Kind::Hartley, false) => Butterfly::<R>::hartley(n),
        (Kind::Hartley, true) => Butterfly::<R>::hartley_orthonormal(n),
    }
}

#[test]
fn dct_dst_hartley_match_their_formulas_for_every_power_of_two() {
    let mut worst = 0.0f64;
    for n in pow2_sizes() {
        let x = randn::<f64>(rows_for(n), n, 100 + n as u64);
        for kind in KINDS {
            for ortho in [false, true] {
                let t = build::<f64>(kind, ortho, n).unwrap();
                let got = t.apply(x.view()).unwrap();
                let want = reference_rows(kind, ortho, &x);
                let e = rel_err(got.view(), want.view());
                assert!(e < 1e-12, "n={n} {kind:?} ortho={ortho}: {e:e}");
                worst = worst.max(e);
            }
        }
    }
    eprintln!("DCT/DST/Hartley worst relative error (n ≤ 4096): {worst:e}");
}

#[test]
fn complex_trig_butterflies_have_the_transform_as_real_part() {
    for n in [2, 8, 64, 1024] {
        let x = randn::<f64>(2, n, 7 + n as u64);
        let xc = x.mapv(|v| C64::new(v, 0.0));
        for kind in KINDS {
            for ortho in [false, true] {
                let m: Butterfly<C64> = match kind {
                    Kind::Dct(t) => dct_butterfly(n, t, ortho).unwrap(),
                    Kind::Dst(t) => dst_butterfly(n, t, ortho).unwrap(),
                    Kind::Hartley => hartley_butterfly(n, ortho).unwrap(),
                };
                assert_eq!(m.nblocks(), 1, "{kind:?}: one butterfly block");
                assert!(m.bias().is_none());
                let got = m.apply(xc.view()).unwrap().mapv(|v| v.re);
                let want = reference_rows(kind, ortho, &x);
                let e = rel_err(got.view(), want.view());
                assert!(e < 1e-12, "n={n} {kind:?} ortho={ortho}: {e:e}");
            }
        }
    }
}

#[test]
fn trig_dense_transpose_adjoint_and_orthogonality() {
    for n in [1, 2, 4, 8, 16, 32] {
        let y = randn::<f64>(3, n, 5);
        for kind in KINDS {
            for ortho in [false, true] {
                let t = build::<f64>(kind, ortho, n).unwrap();
                let w = reference_dense(kind, ortho, n);
                let ctx = format!("n={n} {kind:?} ortho={ortho}");
                assert!(rel_err(t.to_dense().view(), w.view()) < 1e-12, "{ctx}");
                let wt = w.t().to_owned();
                let want = matmul_xwt(y.view(), wt.view());
                assert!(
                    rel_err(t.apply_transpose(y.view()).unwrap().view(), want.view()) < 1e-12,
                    "{ctx} transpose"
                );
                assert!(
                    rel_err(t.apply_adjoint(y.view()).unwrap().view(), want.view()) < 1e-12,
                    "{ctx} adjoint"
                );
                if ortho {
                    let wwt = w.dot(&wt);
                    let e = rel_err(wwt.view(), Array2::<f64>::eye(n).view());
                    assert!(e < 1e-12, "{ctx}: not orthogonal ({e:e})");
                }
            }
        }
        // Types III invert types II (orthonormal), Hartley is an involution.
        let x = randn::<f64>(3, n, 6);
        let pairs = [
            (Kind::Dct(DctType::II), Kind::Dct(DctType::III)),
            (Kind::Dst(DstType::II), Kind::Dst(DstType::III)),
            (Kind::Dct(DctType::IV), Kind::Dct(DctType::IV)),
            (Kind::Dst(DstType::IV), Kind::Dst(DstType::IV)),
            (Kind::Hartley, Kind::Hartley),
        ];
        for (fwd, inv) in pairs {
            let f = build::<f64>(fwd, true, n).unwrap();
            let g = build::<f64>(inv, true, n).unwrap();
            let back = g.apply(f.apply(x.view()).unwrap().view()).unwrap();
            assert!(rel_err(back.view(), x.view()) < 1e-12, "n={n} {fwd:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hadamard
// ---------------------------------------------------------------------------------------------

fn hadamard_reference<T: Scalar>(x: ArrayView2<T>, scale: f64) -> Array2<T> {
    let n = x.ncols();
    Array2::from_shape_fn(x.dim(), |(r, i)| {
        let mut s = C64::new(0.0, 0.0);
        for j in 0..n {
            let v = x[(r, j)].to_c64();
            if (i & j).count_ones() % 2 == 0 {
                s += v;
            } else {
                s -= v;
            }
        }
        s *= scale;
        T::from_parts(s.re, s.im)
    })
}

#[test]
fn hadamard_matches_sylvester_formula_for_every_power_of_two() {
    for n in pow2_sizes() {
        let x = randn::<f64>(rows_for(n), n, 3 + n as u64);
        let scale = 1.0 / (n as f64).sqrt();
        let h = Butterfly::<f64>::hadamard(n).unwrap();
        let e = rel_err(
            h.apply(x.view()).unwrap().view(),
            hadamard_reference(x.view(), 1.0).view(),
        );
        assert!(e < 1e-12, "n={n}: {e:e}");
        let ho = Butterfly::<f64>::hadamard_orthonormal(n).unwrap();
        let e = rel_err(
            ho.apply(x.view()).unwrap().view(),
            hadamard_reference(x.view(), scale).view(),
        );
        assert!(e < 1e-12, "n={n} orthonormal: {e:e}");
        if n <= 256 {
            let xc = randn::<C64>(2, n, 4);
            let hc = Butterfly::<C64>::hadamard_orthonormal(n).unwrap();
            let e = rel_err(
                hc.apply(xc.view()).unwrap().view(),
                hadamard_reference(xc.view(), scale).view(),
            );
            assert!(e < 1e-12, "n={n} complex: {e:e}");
        }
        if n <= 32 {
            // H is symmetric: its transpose (and adjoint) is itself.
            let y = randn::<f64>(2, n, 5);
            let want = hadamard_reference(y.view(), 1.0);
            assert!(rel_err(h.apply_transpose(y.view()).unwrap().view(), want.view()) < 1e-12);
            assert!(rel_err(h.apply_adjoint(y.view()).unwrap().view(), want.view()) < 1e-12);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Circulant, Toeplitz, convolution
// ---------------------------------------------------------------------------------------------

/// The dense Toeplitz matrix `T[i, j] = col[i − j]` (i ≥ j) or `row[j − i]`, in f64.
fn toeplitz_dense<T: Scalar>(col: &[T], row: &[T]) -> Array2<T> {
    Array2::from_shape_fn((col.len(), row.len()), |(i, j)| {
        if i >= j {
            col[i - j]
        } else {
            row[j - i]
        }
    })
}

/// `y_i = Σ_j T[i, j] x_j` summed directly in complex f64, without forming the matrix.
fn toeplitz_direct<T: Scalar>(col: &[T], row: &[T], x: ArrayView2<T>) -> Array2<T> {
    let (m, k) = (col.len(), row.len());
    Array2::from_shape_fn((x.nrows(), m), |(r, i)| {
        let mut s = C64::new(0.0, 0.0);
        for j in 0..k {
            let t = if i >= j { col[i - j] } else { row[j - i] };
            s += t.to_c64() * x[(r, j)].to_c64();
        }
        T::from_parts(s.re, s.im)
    })
}

/// Circular convolution `y[t] = Σ_s c[s] x[(t − s) mod n]`, directly.
fn circular_direct<T: Scalar>(c: &[T], x: ArrayView2<T>) -> Array2<T> {
    let n = x.ncols();
    Array2::from_shape_fn(x.dim(), |(r, t)| {
        let mut s = C64::new(0.0, 0.0);
        for (q, cq) in c.iter().enumerate() {
            s += cq.to_c64() * x[(r, (t + n - q) % n)].to_c64();
        }
        T::from_parts(s.re, s.im)
    })
}

fn vec_randn<T: Scalar>(len: usize, seed: u64) -> Vec<T> {
    randn::<T>(1, len, seed).into_raw_vec_and_offset().0
}

#[test]
fn circulant_butterfly_is_a_bb_star_equal_to_circular_convolution() {
    let mut worst = 0.0f64;
    for n in pow2_sizes().skip(1) {
        let c = vec_randn::<C64>(n, 11 + n as u64);
        let b = Butterfly::<C64>::circulant(&c).unwrap();
        assert_eq!(b.nblocks(), 2);
        assert!(
            !b.increasing_stride(),
            "DFT block first (decreasing stride)"
        );
        assert!(b.input_permutation().is_none() && b.output_permutation().is_none());
        let x = randn::<C64>(rows_for(n), n, 12);
        let e = rel_err(
            b.apply(x.view()).unwrap().view(),
            circular_direct(&c, x.view()).view(),
        );
        assert!(e < 1e-12, "n={n}: {e:e}");
        worst = worst.max(e);
        if n <= 32 {
            let w = toeplitz_dense(
                &c,
                &[&c[..1], &c[1..].iter().rev().copied().collect::<Vec<_>>()].concat(),
            );
            let y = randn::<C64>(2, n, 13);
            let wt = w.t().to_owned();
            assert!(rel_err(b.to_dense().view(), w.view()) < 1e-12);
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
    }
    eprintln!("complex circulant butterfly worst relative error: {worst:e}");
}

fn check_toeplitz<T: Scalar>(m: usize, k: usize, seed: u64, tol: f64)
where
    Complex<T::Real>: Scalar<Real = T::Real>,
{
    let col = vec_randn::<T>(m, seed);
    let mut row = vec_randn::<T>(k, seed + 1);
    row[0] = col[0];
    let t = Butterfly::<T>::toeplitz(&col, &row).unwrap();
    assert_eq!((t.rows(), t.cols()), (m, k));
    assert!(t.embedding_size() >= m + k - 1 && t.embedding_size().is_power_of_two());
    let x = randn::<T>(rows_for(m.max(k)), k, seed + 2);
    let e = rel_err(
        t.apply(x.view()).unwrap().view(),
        toeplitz_direct(&col, &row, x.view()).view(),
    );
    assert!(e < tol, "{} m={m} k={k}: {e:e}", T::NAME);
}

#[test]
fn toeplitz_matches_direct_sum_any_shape() {
    let shapes = [
        (1, 1),
        (1, 7),
        (7, 1),
        (2, 2),
        (3, 5),
        (5, 3),
        (16, 16),
        (17, 9),
        (100, 37),
        (37, 100),
        (513, 200),
        (1000, 1000),
        (4096, 4096),
        (1, 4096),
        (4096, 3),
    ];
    for (s, &(m, k)) in shapes.iter().enumerate() {
        check_toeplitz::<f64>(m, k, 20 + s as u64, 1e-12);
        check_toeplitz::<C64>(m, k, 40 + s as u64, 1e-12);
    }
}

#[test]
fn circulant_of_any_size_matches_circular_convolution() {
    for n in [1, 2, 3, 5, 7, 12, 64, 100, 1000, 3000, 4096] {
        let x = randn::<f64>(rows_for(n), n, 60 + n as u64);
        let c = vec_randn::<f64>(n, 61 + n as u64);
        let t = Toeplitz::<f64>::circulant(&c).unwrap();
        if n.is_power_of_two() && n >= 2 {
            assert_eq!(t.embedding_size(), n, "no padding for n = 2^m");
        }
        let e = rel_err(
            t.apply(x.view()).unwrap().view(),
            circular_direct(&c, x.view()).view(),
        );
        assert!(e < 1e-12, "real n={n}: {e:e}");
        let xc = randn::<C64>(rows_for(n), n, 62 + n as u64);
        let cc = vec_randn::<C64>(n, 63 + n as u64);
        let tc = Toeplitz::<C64>::circulant(&cc).unwrap();
        let e = rel_err(
            tc.apply(xc.view()).unwrap().view(),
            circular_direct(&cc, xc.view()).view(),
        );
        assert!(e < 1e-12, "complex n={n}: {e:e}");
    }
}

fn check_toeplitz_dense<T: Scalar>(m: usize, k: usize, seed: u64) -> Result<(), TestCaseError>
where
    Complex<T::Real>: Scalar<Real = T::Real>,
{
    let col = vec_randn::<T>(m, seed);
    let mut row = vec_randn::<T>(k, seed + 1);
    row[0] = col[0];
    let t = Toeplitz::new(&col, &row).unwrap();
    let w = toeplitz_dense(&col, &row);
    prop_assert!(rel_err(t.to_dense().view(), w.view()) < 1e-12);
    let x = randn::<T>(3, k, seed + 2);
    prop_assert!(
        rel_err(
            t.apply(x.view()).unwrap().view(),
            matmul_xwt(x.view(), w.view()).view()
        ) < 1e-12
    );
    let y = randn::<T>(2, m, seed + 3);
    let wt = w.t().to_owned();
    prop_assert!(
        rel_err(
            t.apply_transpose(y.view()).unwrap().view(),
            matmul_xwt(y.view(), wt.view()).view()
        ) < 1e-12
    );
    let wh = conj_t(w.view());
    prop_assert!(
        rel_err(
            t.apply_adjoint(y.view()).unwrap().view(),
            matmul_xwt(y.view(), wh.view()).view()
        ) < 1e-12
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn toeplitz_dense_transpose_adjoint_random_shapes(
        m in 1usize..70, k in 1usize..70, seed in 0u64..1_000_000, complex in any::<bool>()
    ) {
        if complex {
            check_toeplitz_dense::<C64>(m, k, seed)?;
        } else {
            check_toeplitz_dense::<f64>(m, k, seed)?;
        }
    }

    #[test]
    fn conv1d_random_shapes_match_direct_sum(
        n in 1usize..40, cin in 1usize..4, cout in 1usize..4, klen_frac in 0.0f64..1.0,
        seed in 0u64..1_000_000, complex in any::<bool>()
    ) {
        let klen = 1 + ((n - 1) as f64 * klen_frac) as usize;
        if complex {
            check_conv::<C64>(n, cin, cout, klen, seed, 1e-12)?;
        } else {
            check_conv::<f64>(n, cin, cout, klen, seed, 1e-12)?;
        }
    }
}

/// `y_o[t] = Σ_i Σ_s h[o, i, s]·x_i[(t − s) mod n]` directly, channel-major rows.
fn conv_direct<T: Scalar>(h: &Array3<T>, n: usize, x: ArrayView2<T>) -> Array2<T> {
    let (cout, cin, klen) = h.dim();
    Array2::from_shape_fn((x.nrows(), cout * n), |(r, col)| {
        let (o, t) = (col / n, col % n);
        let mut s = C64::new(0.0, 0.0);
        for i in 0..cin {
            for q in 0..klen {
                s += h[(o, i, q)].to_c64() * x[(r, i * n + (t + n - q) % n)].to_c64();
            }
        }
        T::from_parts(s.re, s.im)
    })
}

fn check_conv<T: Scalar>(
    n: usize,
    cin: usize,
    cout: usize,
    klen: usize,
    seed: u64,
    tol: f64,
) -> Result<(), TestCaseError>
where
    Complex<T::Real>: Scalar<Real = T::Real>,
{
    let h =
        Array3::from_shape_vec((cout, cin, klen), vec_randn::<T>(cout * cin * klen, seed)).unwrap();
    let conv = Conv1d::new(h.view(), n).unwrap();
    prop_assert_eq!(conv.in_features(), cin * n);
    prop_assert_eq!(conv.out_features(), cout * n);
    let x = randn::<T>(rows_for(n), cin * n, seed + 1);
    let e = rel_err(
        conv.apply(x.view()).unwrap().view(),
        conv_direct(&h, n, x.view()).view(),
    );
    prop_assert!(
        e < tol,
        "{} n={} cin={} cout={} klen={}: {:e}",
        T::NAME,
        n,
        cin,
        cout,
        klen,
        e
    );
    if cin * n <= 64 && cout * n <= 64 {
        // The dense matrix, column by column from the direct sum, and its (conjugate) transpose.
        let eye = Array2::<T>::from_shape_fn((cin * n, cin * n), |(i, j)| {
            if i == j {
                T::one()
            } else {
                T::zero()
            }
        });
        let w = conv_direct(&h, n, eye.view()).reversed_axes();
        prop_assert!(rel_err(conv.to_dense().view(), w.view()) < tol);
        let y = randn::<T>(2, cout * n, seed + 2);
        let wt = w.t().to_owned();
        prop_assert!(
            rel_err(
                conv.apply_transpose(y.view()).unwrap().view(),
                matmul_xwt(y.view(), wt.view()).view()
            ) < tol
        );
        let wh = conj_t(w.view());
        prop_assert!(
            rel_err(
                conv.apply_adjoint(y.view()).unwrap().view(),
                matmul_xwt(y.view(), wh.view()).view()
            ) < tol
        );
    }
    Ok(())
}

#[test]
fn conv1d_single_and_multi_channel_match_direct_sum() {
    let cases = [
        // (n, in_ch, out_ch, klen)
        (1, 1, 1, 1),
        (2, 1, 1, 2),
        (3, 2, 3, 3),
        (5, 3, 2, 2),
        (8, 4, 4, 8),
        (12, 2, 3, 5),
        (64, 3, 2, 64),
        (100, 2, 2, 9),
        (1024, 2, 3, 1024),
        (3000, 1, 1, 3000),
        (4096, 1, 1, 4096),
    ];
    for (s, &(n, cin, cout, klen)) in cases.iter().enumerate() {
        check_conv::<f64>(n, cin, cout, klen, 80 + s as u64, 1e-12).unwrap();
        if n <= 1024 {
            check_conv::<C64>(n, cin, cout, klen, 90 + s as u64, 1e-12).unwrap();
        }
    }
    // Single channel is the circulant of the zero-padded kernel.
    let h = vec_randn::<f64>(5, 3);
    let conv = Conv1d::single_channel(&h, 12).unwrap();
    let mut c = h.clone();
    c.resize(12, 0.0);
    let circ = Toeplitz::circulant(&c).unwrap();
    assert!(rel_err(conv.to_dense().view(), circ.to_dense().view()) < 1e-12);
}

// ---------------------------------------------------------------------------------------------
// ACDC
// ---------------------------------------------------------------------------------------------

/// `W = C⁻¹·D·C·A` from the DCT-II formula (orthonormal, so `C⁻¹ = Cᵀ`).
fn acdc_dense(a: &[f64], d: &[f64]) -> Array2<f64> {
    let n = a.len();
    let c = reference_dense(Kind::Dct(DctType::II), true, n);
    let da = Array2::from_diag(&ndarray::Array1::from(a.to_vec()));
    let dd = Array2::from_diag(&ndarray::Array1::from(d.to_vec()));
    c.t().dot(&dd).dot(&c).dot(&da)
}

#[test]
fn acdc_matches_dense_product_and_finite_differences() {
    for n in [1, 2, 8, 64, 512] {
        let mut r = rng(n as u64);
        let acdc = Acdc::<f64>::random(n, 0.5, &mut r).unwrap();
        let w = acdc_dense(acdc.a(), acdc.d());
        let x = randn::<f64>(3, n, 1);
        let e = rel_err(
            acdc.apply(x.view()).unwrap().view(),
            matmul_xwt(x.view(), w.view()).view(),
        );
        assert!(e < 1e-12, "n={n}: {e:e}");
        let y = randn::<f64>(2, n, 2);
        let wt = w.t().to_owned();
        let want = matmul_xwt(y.view(), wt.view());
        assert!(rel_err(acdc.apply_transpose(y.view()).unwrap().view(), want.view()) < 1e-12);
        assert!(rel_err(acdc.apply_adjoint(y.view()).unwrap().view(), want.view()) < 1e-12);
        if n <= 64 {
            assert!(rel_err(acdc.to_dense().view(), w.view()) < 1e-12);
        }
        let id = Acdc::<f64>::identity(n).unwrap();
        assert!(rel_err(id.apply(x.view()).unwrap().view(), x.view()) < 1e-12);
    }
    for n in [1, 4, 8] {
        let mut r = rng(10 + n as u64);
        let acdc = Acdc::<f64>::random(n, 0.5, &mut r).unwrap();
        let x = randn::<f64>(3, n, 3);
        let c = randn::<f64>(3, n, 4);
        let mut g = vec![0.0; acdc.params().len()];
        let dx = acdc.backward(x.view(), c.view(), &mut g).unwrap();
        let (fdx, fdp) = finite_diff_grads(&acdc, &x, &c, 1e-6);
        assert!(rel_err(dx.view(), fdx.view()) < 1e-6, "n={n} dx");
        assert!(
            rel_err_vec(&g, &fdp) < 1e-6,
            "n={n} dθ: {}",
            rel_err_vec(&g, &fdp)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// f32 smoke checks
// ---------------------------------------------------------------------------------------------

fn to_f32(x: &Array2<f64>) -> Array2<f32> {
    x.mapv(|v| v as f32)
}

#[test]
fn f32_smoke() {
    let n = 256;
    let x = randn::<f64>(2, n, 9);
    for kind in KINDS {
        let t = build::<f32>(kind, true, n).unwrap();
        let got = t.apply(to_f32(&x).view()).unwrap().mapv(f64::from);
        let e = rel_err(got.view(), reference_rows(kind, true, &x).view());
        assert!(e < 1e-5, "{kind:?}: {e:e}");
    }
    let h = Butterfly::<f32>::hadamard_orthonormal(n).unwrap();
    let got = h.apply(to_f32(&x).view()).unwrap().mapv(f64::from);
    let want = hadamard_reference(x.view(), 1.0 / (n as f64).sqrt());
    assert!(rel_err(got.view(), want.view()) < 1e-5);
    let col: Vec<f64> = vec_randn(100, 1);
    let mut row: Vec<f64> = vec_randn(37, 2);
    row[0] = col[0];
    let t = Toeplitz::<f32>::new(
        &col.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        &row.iter().map(|&v| v as f32).collect::<Vec<_>>(),
    )
    .unwrap();
    let x = randn::<f64>(2, 37, 3);
    let got = t.apply(to_f32(&x).view()).unwrap().mapv(f64::from);
    let e = rel_err(got.view(), toeplitz_direct(&col, &row, x.view()).view());
    assert!(e < 1e-5, "toeplitz f32: {e:e}");
    let xc = randn::<C64>(2, 64, 4);
    let cc = vec_randn::<C64>(64, 5);
    let b = Butterfly::<C32>::circulant(
        &cc.iter()
            .map(|v| C32::new(v.re as f32, v.im as f32))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let got = b
        .apply(xc.mapv(|v| C32::new(v.re as f32, v.im as f32)).view())
        .unwrap()
        .mapv(|v| v.to_c64());
    let e = rel_err(got.view(), circular_direct(&cc, xc.view()).view());
    assert!(e < 1e-5, "circulant c32: {e:e}");
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_input_gives_typed_errors() {
    assert!(matches!(
        Butterfly::<f64>::dct(0, DctType::II),
        Err(Error::Zero { what: "n" })
    ));
    assert!(matches!(
        Butterfly::<f64>::dst_orthonormal(12, DstType::IV),
        Err(Error::NotPowerOfTwo { what: "n", got: 12 })
    ));
    assert!(matches!(
        Butterfly::<f32>::hartley(6),
        Err(Error::NotPowerOfTwo { what: "n", got: 6 })
    ));
    assert!(matches!(
        dct_butterfly::<f64>(8, DctType::II, false),
        Err(Error::InvalidArgument {
            what: "scalar type",
            ..
        })
    ));
    assert!(matches!(
        dst_butterfly::<C64>(1, DstType::II, false),
        Err(Error::InvalidArgument { what: "n", .. })
    ));
    assert!(matches!(
        Butterfly::<f64>::hadamard(6),
        Err(Error::NotPowerOfTwo { what: "n", got: 6 })
    ));
    assert!(matches!(
        Butterfly::<C64>::circulant(&[]),
        Err(Error::Zero { what: "col length" })
    ));
    let c3 = vec_randn::<C64>(3, 1);
    assert!(matches!(
        Butterfly::<C64>::circulant(&c3),
        Err(Error::NotPowerOfTwo {
            what: "col length",
            got: 3
        })
    ));
    assert!(matches!(
        Butterfly::<C64>::circulant(&c3[..1]),
        Err(Error::InvalidArgument {
            what: "col length",
            ..
        })
    ));
    assert!(matches!(
        Butterfly::<f64>::circulant(&[1.0, 2.0]),
        Err(Error::InvalidArgument {
            what: "scalar type",
            ..
        })
    ));
    assert!(matches!(
        Toeplitz::<f64>::new(&[1.0, 2.0], &[3.0, 4.0]),
        Err(Error::InvalidArgument { what: "row", .. })
    ));
    assert!(matches!(
        Toeplitz::<f64>::new(&[], &[1.0]),
        Err(Error::Zero { what: "col length" })
    ));
    assert!(matches!(
        Toeplitz::<f64>::new(&[1.0], &[]),
        Err(Error::Zero { what: "row length" })
    ));
    assert!(matches!(
        Toeplitz::<C64>::circulant(&[]),
        Err(Error::Zero { what: "col length" })
    ));
    assert!(matches!(
        Conv1d::<f64>::new(Array3::zeros((0, 1, 3)).view(), 8),
        Err(Error::Zero { .. })
    ));
    assert!(matches!(
        Conv1d::<f64>::new(Array3::zeros((1, 1, 9)).view(), 8),
        Err(Error::InvalidArgument {
            what: "kernel length (kernel axis 2)",
            ..
        })
    ));
    assert!(matches!(
        Conv1d::<f64>::single_channel(&[1.0], 0),
        Err(Error::Zero { what: "n" })
    ));
    assert!(matches!(
        Acdc::<f64>::new(vec![1.0; 4], vec![1.0; 3]),
        Err(Error::BufferLength {
            what: "d",
            expected: 4,
            got: 3
        })
    ));
    assert!(matches!(
        Acdc::<f64>::identity(6),
        Err(Error::NotPowerOfTwo { what: "n", got: 6 })
    ));

    // Wrong widths are shape errors, not panics.
    let x = Array2::<f64>::zeros((2, 5));
    let dct = Butterfly::<f64>::dct(8, DctType::II).unwrap();
    assert!(matches!(dct.apply(x.view()), Err(Error::Shape { .. })));
    let t = Toeplitz::<f64>::new(&[1.0, 2.0, 3.0], &[1.0, 4.0]).unwrap();
    assert!(matches!(
        t.apply(x.view()),
        Err(Error::Shape { what: "x", .. })
    ));
    assert!(matches!(
        t.apply_transpose(x.view()),
        Err(Error::Shape { what: "y", .. })
    ));
    let mut y = Array2::<f64>::zeros((2, 2));
    assert!(matches!(
        t.apply_into(Array2::zeros((3, 2)).view(), y.view_mut()),
        Err(Error::Shape { what: "y", .. })
    ));
    let conv = Conv1d::<f64>::new(Array3::zeros((2, 3, 2)).view(), 4).unwrap();
    assert!(matches!(
        conv.apply(x.view()),
        Err(Error::Shape { what: "x", .. })
    ));
    assert!(matches!(
        conv.apply_adjoint(x.view()),
        Err(Error::Shape { what: "y", .. })
    ));
    let acdc = Acdc::<f64>::identity(8).unwrap();
    assert!(matches!(
        acdc.apply(x.view()),
        Err(Error::Shape { what: "x", .. })
    ));
    let x8 = Array2::<f64>::zeros((2, 8));
    let mut g = vec![0.0; 3];
    assert!(matches!(
        acdc.backward(x8.view(), x8.view(), &mut g),
        Err(Error::BufferLength { what: "grads", .. })
    ));
    assert!(matches!(
        acdc.backward(x8.view(), Array2::zeros((3, 8)).view(), &mut [0.0; 16]),
        Err(Error::Shape { what: "dy", .. })
    ));
}
