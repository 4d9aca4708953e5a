//! Shared helpers for the integration tests: random data, error measures, dense references
//! and central finite differences.
#![allow(dead_code)]

use kaleidoscope::{Butterfly, Differentiable, LinearMap, Scalar};
use ndarray::{Array2, ArrayView2};
use num_complex::Complex;
use rand::rngs::StdRng;
use rand::SeedableRng;

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn randn<T: Scalar>(rows: usize, cols: usize, seed: u64) -> Array2<T> {
    let mut r = rng(seed);
    Array2::from_shape_simple_fn((rows, cols), || T::randn(&mut r, 1.0))
}

/// max |a - b| / max(1, max |b|), in f64.
pub fn rel_err<T: Scalar>(a: ArrayView2<T>, b: ArrayView2<T>) -> f64 {
    assert_eq!(a.dim(), b.dim(), "shapes differ");
    let scale = b.iter().map(|v| v.to_c64().norm()).fold(1.0f64, f64::max);
    let diff = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| (x.to_c64() - y.to_c64()).norm())
        .fold(0.0f64, f64::max);
    diff / scale
}

/// `x Wᵀ` with a plain triple loop in complex f64.
pub fn matmul_xwt<T: Scalar>(x: ArrayView2<T>, w: ArrayView2<T>) -> Array2<T> {
    let (b, k) = x.dim();
    let (o, k2) = w.dim();
    assert_eq!(k, k2);
    Array2::from_shape_fn((b, o), |(i, j)| {
        let mut s = Complex::new(0.0, 0.0);
        for t in 0..k {
            s += x[(i, t)].to_c64() * w[(j, t)].to_c64();
        }
        T::from_parts(s.re, s.im)
    })
}

pub fn conj_t<T: Scalar>(w: ArrayView2<T>) -> Array2<T> {
    w.t().mapv(|v| v.conj())
}

/// The butterfly as an explicit product of dense factors (independent of the fast kernel).
pub fn butterfly_dense_reference<T: Scalar>(b: &Butterfly<T>) -> Array2<T> {
    let n = b.n();
    let tw = b.twiddle_view();
    let mut rows: Vec<Array2<Complex<f64>>> = Vec::new();
    for s in 0..b.nstacks() {
        let mut m = Array2::<Complex<f64>>::eye(n);
        for blk in 0..b.nblocks() {
            for l in 0..b.log_n() {
                let st = b.level_stride(blk, l);
                let mut f = Array2::<Complex<f64>>::zeros((n, n));
                for p in 0..n / 2 {
                    let a = (p / st) * 2 * st + p % st;
                    let c = a + st;
                    let t = |r: usize, q: usize| tw[(s, blk, l, p, r, q)].to_c64();
                    f[(a, a)] = t(0, 0);
                    f[(a, c)] = t(0, 1);
                    f[(c, a)] = t(1, 0);
                    f[(c, c)] = t(1, 1);
                }
                m = f.dot(&m);
            }
        }
        if let Some(p) = b.input_permutation() {
            let pm: Array2<Complex<f64>> = LinearMap::<Complex<f64>>::to_dense(p);
            m = m.dot(&pm);
        }
        if let Some(q) = b.output_permutation() {
            let qm: Array2<Complex<f64>> = LinearMap::<Complex<f64>>::to_dense(q);
            m = qm.dot(&m);
        }
        rows.push(m);
    }
    let out = b.out_features();
    let inp = b.in_features();
    Array2::from_shape_fn((out, inp), |(i, j)| {
        let z = rows[i / n][(i % n, j)];
        T::from_parts(z.re, z.im)
    })
}

/// Real loss `L = Re Σ conj(c) ⊙ f(x)` and its gradient by central differences with respect to
/// every real and imaginary part of `x` and of the parameters, returned as `(dx, dθ)` in the
/// crate's convention (`∂L/∂Re + i ∂L/∂Im`).
pub fn finite_diff_grads<T: Scalar, M: Differentiable<T> + Clone>(
    model: &M,
    x: &Array2<T>,
    c: &Array2<T>,
    h: f64,
) -> (Array2<T>, Vec<T>) {
    let loss = |m: &M, x: &Array2<T>| -> f64 {
        let y = m.apply(x.view()).unwrap();
        y.iter()
            .zip(c.iter())
            .map(|(a, b)| (b.to_c64().conj() * a.to_c64()).re)
            .sum()
    };
    let parts: &[Complex<f64>] = if T::IS_COMPLEX {
        &[Complex::new(1.0, 0.0), Complex::new(0.0, 1.0)]
    } else {
        &[Complex::new(1.0, 0.0)]
    };
    let mut dx = Array2::<T>::zeros(x.dim());
    for idx in 0..x.len() {
        let mut g = Complex::new(0.0, 0.0);
        for &e in parts {
            let mut xp = x.clone();
            let mut xm = x.clone();
            let v = xp.as_slice_mut().unwrap()[idx].to_c64();
            xp.as_slice_mut().unwrap()[idx] = T::from_parts((v + e * h).re, (v + e * h).im);
            xm.as_slice_mut().unwrap()[idx] = T::from_parts((v - e * h).re, (v - e * h).im);
            let d = (loss(model, &xp) - loss(model, &xm)) / (2.0 * h);
            g += e * d;
        }
        dx.as_slice_mut().unwrap()[idx] = T::from_parts(g.re, g.im);
    }
    let np = model.params().len();
    let mut dp = vec![T::zero(); np];
    for (j, dpj) in dp.iter_mut().enumerate() {
        let mut g = Complex::new(0.0, 0.0);
        for &e in parts {
            let mut mp = model.clone();
            let mut mm = model.clone();
            let v = model.params()[j].to_c64();
            mp.params_mut()[j] = T::from_parts((v + e * h).re, (v + e * h).im);
            mm.params_mut()[j] = T::from_parts((v - e * h).re, (v - e * h).im);
            g += e * ((loss(&mp, x) - loss(&mm, x)) / (2.0 * h));
        }
        *dpj = T::from_parts(g.re, g.im);
    }
    (dx, dp)
}

/// Relative error between two flat vectors, in f64.
pub fn rel_err_vec<T: Scalar>(a: &[T], b: &[T]) -> f64 {
    let scale = b
        .iter()
        .map(|v| v.to_c64().norm())
        .fold(1e-300f64, f64::max);
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x.to_c64() - y.to_c64()).norm())
        .fold(0.0f64, f64::max);
    diff / scale
}

/// Checks a map against its dense matrix `reference` (and `bias`): `to_dense`, `apply`,
/// transpose, adjoint, and `backward` against central finite differences (f64 tolerances).
pub fn check_map<T: Scalar, M: Differentiable<T> + Clone>(
    m: &M,
    reference: &Array2<T>,
    bias: Option<&[T]>,
    batch: usize,
    seed: u64,
) {
    let x = randn::<T>(batch, m.in_features(), seed);
    let mut want = matmul_xwt(x.view(), reference.view());
    if let Some(b) = bias {
        for mut r in want.rows_mut() {
            for (v, &bb) in r.iter_mut().zip(b) {
                *v += bb;
            }
        }
    }
    assert!(rel_err(m.to_dense().view(), reference.view()) < 1e-12);
    assert!(rel_err(m.apply(x.view()).unwrap().view(), want.view()) < 1e-12);
    let y = randn::<T>(batch, m.out_features(), seed + 1);
    let rt = reference.t().to_owned();
    assert!(
        rel_err(
            m.apply_transpose(y.view()).unwrap().view(),
            matmul_xwt(y.view(), rt.view()).view()
        ) < 1e-12
    );
    let rh = conj_t(reference.view());
    assert!(
        rel_err(
            m.apply_adjoint(y.view()).unwrap().view(),
            matmul_xwt(y.view(), rh.view()).view()
        ) < 1e-12
    );
    let mut g = vec![T::zero(); m.params().len()];
    let dx = m.backward(x.view(), y.view(), &mut g).unwrap();
    let (fdx, fdp) = finite_diff_grads(m, &x, &y, 1e-6);
    assert!(
        rel_err(dx.view(), fdx.view()) < 1e-6,
        "dx {}",
        rel_err(dx.view(), fdx.view())
    );
    assert!(rel_err_vec(&g, &fdp) < 1e-6, "dθ {}", rel_err_vec(&g, &fdp));
}

/// The unitary DFT `F[k, j] = e^{−2πi jk/n} / √n` from its definition (exact angle reduction
/// `jk mod n`).
pub fn unitary_dft(n: usize) -> Array2<Complex<f64>> {
    Array2::from_shape_fn((n, n), |(k, j)| {
        let a = -2.0 * std::f64::consts::PI * ((j * k) % n) as f64 / n as f64;
        Complex::new(a.cos(), a.sin()) / (n as f64).sqrt()
    })
}

/// The orthonormal DCT-II `C[k, j] = s_k cos(πk(2j + 1)/(2n))`, `s_0 = √(1/n)`, else `√(2/n)`.
pub fn orthonormal_dct2(n: usize) -> Array2<f64> {
    Array2::from_shape_fn((n, n), |(k, j)| {
        let s = if k == 0 { 1.0 } else { 2.0 } / n as f64;
        s.sqrt() * (std::f64::consts::PI * (k * (2 * j + 1)) as f64 / (2 * n) as f64).cos()
    })
}

/// The orthonormal DST-II `S[k, j] = s_k sin(π (k + 1)(2j + 1) / 2n)`, `s_{n−1} = √(1/n)`,
/// else `√(2/n)`.
pub fn orthonormal_dst2(n: usize) -> Array2<f64> {
    Array2::from_shape_fn((n, n), |(k, j)| {
        let s = if k == n - 1 { 1.0 } else { 2.0 };
        (s / n as f64).sqrt()
            * (std::f64::consts::PI * ((k + 1) * (2 * j + 1)) as f64 / (2 * n) as f64).sin()
    })
}

/// `f` run on a rayon pool of `threads` threads (for checks that results do not depend on the
/// thread count).
pub fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
        .install(f)
}
