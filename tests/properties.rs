//! Property tests for the butterfly family: every fast path against a dense f64 reference, and
//! every backward pass against central finite differences, over random shapes and values.
//!
//! `KALEIDOSCOPE_HEAVY=1 cargo test --test properties` runs ten times as many cases.

mod common;
use common::*;
use kaleidoscope::butterfly::{BoxedMap, Chain, RealPart};
use kaleidoscope::{
    Butterfly, ButterflyConfig, ButterflyUnitary, Diagonal, Differentiable, Init, LinearMap,
    Permutation, Scalar, C32, C64,
};
use ndarray::{s, Array2, ArrayView2};
use num_complex::Complex;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rand::seq::SliceRandom;
use rand::Rng;

type TestResult = Result<(), TestCaseError>;

/// Batch sizes around the kernel's 16-row tile (and the empty batch).
const BATCHES: [usize; 6] = [0, 1, 15, 16, 17, 40];
/// Largest batch whose gradients are checked by finite differences (larger batches are checked
/// for additivity over row splits instead).
const FD_MAX_BATCH: usize = 17;

fn cases(light: u32) -> ProptestConfig {
    let heavy = std::env::var("KALEIDOSCOPE_HEAVY").is_ok_and(|v| v == "1");
    ProptestConfig::with_cases(if heavy { light * 10 } else { light })
}

fn ok<V>(r: kaleidoscope::Result<V>) -> Result<V, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(format!("unexpected error: {e}")))
}

fn random_perm<R: Rng>(n: usize, rng: &mut R) -> Permutation {
    let mut v: Vec<usize> = (0..n).collect();
    v.shuffle(rng);
    Permutation::new(v).expect("a shuffle is a permutation")
}

/// `x Wᵀ + b` in complex f64.
fn affine<T: Scalar>(x: ArrayView2<T>, w: ArrayView2<T>, bias: Option<&[T]>) -> Array2<T> {
    let mut y = matmul_xwt(x, w);
    if let Some(b) = bias {
        for mut row in y.rows_mut() {
            for (v, &bb) in row.iter_mut().zip(b) {
                *v += bb;
            }
        }
    }
    y
}

/// `A B` in complex f64.
fn matmul<T: Scalar>(a: ArrayView2<T>, b: ArrayView2<T>) -> Array2<T> {
    let bt = b.t().to_owned();
    matmul_xwt(a, bt.view())
}

fn sentinel<T: Scalar>() -> T {
    T::from_parts(12345.0, -678.0)
}

/// Every `LinearMap` method of `m` against the dense matrix `w` (and bias `bias`): `to_dense`,
/// `apply`, `apply_into` into a transposed and into a column-strided output (leaving the other
/// columns untouched), a transposed (non-contiguous) input, `apply_transpose`, `apply_adjoint`.
fn check_linear_map<T: Scalar, M: LinearMap<T> + ?Sized>(
    m: &M,
    w: &Array2<T>,
    bias: Option<&[T]>,
    batch: usize,
    seed: u64,
    tol: f64,
) -> TestResult {
    let (out, inp) = w.dim();
    prop_assert_eq!((m.out_features(), m.in_features()), (out, inp));
    let e = rel_err(m.to_dense().view(), w.view());
    prop_assert!(e < tol, "to_dense: rel err {e}");

    let x = randn::<T>(batch, inp, seed);
    let want = affine(x.view(), w.view(), bias);
    let y = ok(m.apply(x.view()))?;
    let e = rel_err(y.view(), want.view());
    prop_assert!(e < tol, "apply (batch {batch}): rel err {e}");

    let xt = x.t().to_owned();
    let e = rel_err(ok(m.apply(xt.t()))?.view(), want.view());
    prop_assert!(e < tol, "apply on a transposed input: rel err {e}");

    let mut store = Array2::from_elem((out, batch), sentinel::<T>());
    ok(m.apply_into(x.view(), store.view_mut().reversed_axes()))?;
    let e = rel_err(store.t(), want.view());
    prop_assert!(e < tol, "apply_into a transposed output: rel err {e}");

    let mut big = Array2::from_elem((batch, 2 * out + 1), sentinel::<T>());
    ok(m.apply_into(x.view(), big.slice_mut(s![.., 1..;2])))?;
    let e = rel_err(big.slice(s![.., 1..;2]), want.view());
    prop_assert!(e < tol, "apply_into a strided output: rel err {e}");
    prop_assert!(
        big.slice(s![.., ..;2])
            .iter()
            .all(|&v| v == sentinel::<T>()),
        "apply_into wrote outside its view"
    );

    let yb = randn::<T>(batch, out, seed ^ 0x5555);
    let wt = w.t().to_owned();
    let e = rel_err(
        ok(m.apply_transpose(yb.view()))?.view(),
        matmul_xwt(yb.view(), wt.view()).view(),
    );
    prop_assert!(e < tol, "apply_transpose: rel err {e}");
    let wh = conj_t(w.view());
    let e = rel_err(
        ok(m.apply_adjoint(yb.view()))?.view(),
        matmul_xwt(yb.view(), wh.view()).view(),
    );
    prop_assert!(e < tol, "apply_adjoint: rel err {e}");
    Ok(())
}

/// `backward` against central finite differences (input and every parameter, rel < 1e-6) for
/// batches up to [`FD_MAX_BATCH`], against `dy W̄` always, and that it adds into `grads`; for
/// larger batches the parameter gradient must equal the sum over two row blocks.
fn check_backward<T: Scalar, M: Differentiable<T> + Clone>(
    m: &M,
    w: &Array2<T>,
    batch: usize,
    seed: u64,
) -> TestResult {
    let (out, inp) = w.dim();
    let x = randn::<T>(batch, inp, seed ^ 0xabc);
    let dy = randn::<T>(batch, out, seed ^ 0xdef);
    let np = m.params().len();
    prop_assert_eq!(np, m.num_params());

    let mut g = vec![T::zero(); np];
    let dx = ok(m.backward(x.view(), dy.view(), &mut g))?;
    let wh = conj_t(w.view());
    let e = rel_err(dx.view(), matmul_xwt(dy.view(), wh.view()).view());
    prop_assert!(e < 1e-12, "dx against dy·conj(W): rel err {e}");

    let start: Vec<T> = (0..np)
        .map(|i| T::from_parts(i as f64 * 0.25 - 3.0, 1.5))
        .collect();
    let mut g2 = start.clone();
    ok(m.backward(x.view(), dy.view(), &mut g2))?;
    let added: Vec<T> = g2.iter().zip(&start).map(|(&a, &b)| a - b).collect();
    let e = rel_err_vec(&added, &g);
    prop_assert!(e < 1e-10, "backward must add into grads: rel err {e}");

    if batch <= FD_MAX_BATCH {
        let (fdx, fdp) = finite_diff_grads(m, &x, &dy, 1e-6);
        let e = rel_err(dx.view(), fdx.view());
        prop_assert!(e < 1e-6, "dx against finite differences: rel err {e}");
        let e = rel_err_vec(&g, &fdp);
        prop_assert!(e < 1e-6, "dθ against finite differences: rel err {e}");
    } else {
        let cut = 16;
        let mut gs = vec![T::zero(); np];
        ok(m.backward(x.slice(s![..cut, ..]), dy.slice(s![..cut, ..]), &mut gs))?;
        ok(m.backward(x.slice(s![cut.., ..]), dy.slice(s![cut.., ..]), &mut gs))?;
        let e = rel_err_vec(&gs, &g);
        prop_assert!(e < 1e-11, "dθ not additive over row blocks: rel err {e}");
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct Case {
    inp: usize,
    out: usize,
    nblocks: usize,
    increasing: bool,
    init: usize,
    bias: bool,
    in_perm: bool,
    out_perm: bool,
    batch: usize,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1usize..=40, 1usize..=40, 1usize..=3, any::<bool>()),
        (0usize..4, any::<bool>(), any::<bool>(), any::<bool>()),
        (prop::sample::select(BATCHES.to_vec()), any::<u64>()),
    )
        .prop_map(
            |((inp, out, nblocks, increasing), (init, bias, in_perm, out_perm), (batch, seed))| {
                Case {
                    inp,
                    out,
                    nblocks,
                    increasing,
                    init,
                    bias,
                    in_perm,
                    out_perm,
                    batch,
                    seed,
                }
            },
        )
}

/// The initialisations valid for `T` (`Init::Fft` needs complex scalars).
fn init_for<T: Scalar>(i: usize) -> Init {
    let all = [Init::Randn, Init::Ortho, Init::Identity, Init::Fft];
    if T::IS_COMPLEX {
        all[i % 4]
    } else {
        all[i % 3]
    }
}

impl Case {
    fn config<T: Scalar>(&self) -> ButterflyConfig {
        ButterflyConfig {
            nblocks: self.nblocks,
            increasing_stride: self.increasing,
            init: init_for::<T>(self.init),
            bias: self.bias,
        }
    }

    /// A butterfly for this case, with a random bias and the permutations the case asks for.
    fn butterfly<T: Scalar>(&self) -> Result<Butterfly<T>, TestCaseError> {
        let mut r = rng(self.seed);
        let mut b = ok(Butterfly::<T>::new(
            self.inp,
            self.out,
            self.config::<T>(),
            &mut r,
        ))?;
        if let Some(bias) = b.bias_mut() {
            for v in bias {
                *v = T::randn(&mut r, 1.0);
            }
        }
        if self.in_perm {
            let p = random_perm(b.n(), &mut r);
            b = ok(b.with_input_permutation(p))?;
        }
        if self.out_perm {
            let p = random_perm(b.n(), &mut r);
            b = ok(b.with_output_permutation(p))?;
        }
        Ok(b)
    }

    fn unitary<T: Scalar>(&self) -> Result<ButterflyUnitary<T>, TestCaseError> {
        let mut r = rng(self.seed);
        let mut u = ok(ButterflyUnitary::<T>::new(
            self.inp,
            self.out,
            self.config::<T>(),
            &mut r,
        ))?;
        if let Some(bias) = u.bias_mut() {
            for v in bias {
                *v = T::randn(&mut r, 1.0);
            }
        }
        if self.in_perm {
            let p = random_perm(u.n(), &mut r);
            u = ok(u.with_input_permutation(p))?;
        }
        if self.out_perm {
            let p = random_perm(u.n(), &mut r);
            u = ok(u.with_output_permutation(p))?;
        }
        Ok(u)
    }
}

fn check_butterfly<T: Scalar>(c: &Case) -> TestResult {
    let b = c.butterfly::<T>()?;
    prop_assert_eq!(b.n(), c.inp.next_power_of_two());
    prop_assert_eq!(b.nstacks(), c.out.div_ceil(b.n()));
    let w = butterfly_dense_reference(&b);
    check_linear_map(&b, &w, b.bias(), c.batch, c.seed ^ 1, 1e-12)?;
    check_backward(&b, &w, c.batch, c.seed ^ 2)
}

proptest! {
    #![proptest_config(cases(48))]

    #[test]
    fn butterfly_f64(c in case()) {
        check_butterfly::<f64>(&c)?;
    }

    #[test]
    fn butterfly_c64(c in case()) {
        check_butterfly::<C64>(&c)?;
    }
}

/// An f32 (or c32) map against the same map in f64: forward, transposes and backward agree to
/// single-precision accuracy.
fn check_single<T: Scalar, D: Scalar>(c: &Case) -> TestResult {
    let b = c.butterfly::<T>()?;
    let tw: Vec<D> = b
        .twiddle()
        .iter()
        .map(|v| D::from_parts(v.to_c64().re, v.to_c64().im))
        .collect();
    let bias: Option<Vec<D>> = b.bias().map(|bb| {
        bb.iter()
            .map(|v| D::from_parts(v.to_c64().re, v.to_c64().im))
            .collect()
    });
    let mut d = ok(Butterfly::<D>::from_twiddle(
        c.inp,
        c.out,
        c.nblocks,
        c.increasing,
        tw,
        bias,
    ))?;
    if let Some(p) = b.input_permutation() {
        d = ok(d.with_input_permutation(p.clone()))?;
    }
    if let Some(q) = b.output_permutation() {
        d = ok(d.with_output_permutation(q.clone()))?;
    }
    let w = butterfly_dense_reference(&d);
    let wt: Array2<T> = w.mapv(|v| T::from_parts(v.to_c64().re, v.to_c64().im));
    let bt: Option<Vec<T>> = b.bias().map(<[T]>::to_vec);
    check_linear_map(&b, &wt, bt.as_deref(), c.batch, c.seed ^ 3, 1e-4)?;

    let x = randn::<T>(c.batch, c.inp, c.seed ^ 4);
    let dy = randn::<T>(c.batch, c.out, c.seed ^ 5);
    let up = |a: &Array2<T>| a.mapv(|v| D::from_parts(v.to_c64().re, v.to_c64().im));
    let mut g = vec![T::zero(); b.num_params()];
    let dx = ok(b.backward(x.view(), dy.view(), &mut g))?;
    let mut gd = vec![D::zero(); d.num_params()];
    let dxd = ok(d.backward(up(&x).view(), up(&dy).view(), &mut gd))?;
    let e = rel_err(up(&dx).view(), dxd.view());
    prop_assert!(e < 1e-4, "single-precision dx: rel err {e}");
    let g_up: Vec<D> = g
        .iter()
        .map(|v| D::from_parts(v.to_c64().re, v.to_c64().im))
        .collect();
    let scale = gd.iter().map(|v| v.to_c64().norm()).fold(1.0, f64::max);
    let e = g_up
        .iter()
        .zip(&gd)
        .map(|(a, b)| (a.to_c64() - b.to_c64()).norm())
        .fold(0.0, f64::max)
        / scale;
    prop_assert!(e < 1e-4, "single-precision dθ: rel err {e}");
    Ok(())
}

proptest! {
    #![proptest_config(cases(24))]

    #[test]
    fn butterfly_single_precision(c in case()) {
        check_single::<f32, f64>(&c)?;
        check_single::<C32, C64>(&c)?;
    }
}

/// The dense matrix of a unitary butterfly computed from its angles by the formulas of the
/// parameterisation, factor by factor (independent of the crate's twiddle builder).
fn unitary_reference<T: Scalar>(u: &ButterflyUnitary<T>) -> Array2<T> {
    let k = if T::IS_COMPLEX { 4 } else { 1 };
    let mut tw = Vec::new();
    for a in u.angles().chunks_exact(k) {
        let th = a[0].to_c64().re;
        let block: [Complex<f64>; 4] = if T::IS_COMPLEX {
            let (al, ps, ch) = (a[1].to_c64().re, a[2].to_c64().re, a[3].to_c64().re);
            let ph = |p: f64| Complex::new(p.cos(), p.sin());
            [
                ph(al) * ph(ps) * th.cos(),
                ph(al) * ph(ch) * th.sin(),
                -(ph(al) * ph(-ch) * th.sin()),
                ph(al) * ph(-ps) * th.cos(),
            ]
        } else {
            [th.cos(), -th.sin(), th.sin(), th.cos()].map(|v| Complex::new(v, 0.0))
        };
        tw.extend(block.map(|z| T::from_parts(z.re, z.im)));
    }
    let mut b = Butterfly::from_twiddle(
        u.in_features(),
        u.out_features(),
        u.nblocks(),
        u.increasing_stride(),
        tw,
        None,
    )
    .expect("same geometry");
    if let Some(p) = u.input_permutation() {
        b = b.with_input_permutation(p.clone()).expect("same n");
    }
    if let Some(q) = u.output_permutation() {
        b = b.with_output_permutation(q.clone()).expect("same n");
    }
    butterfly_dense_reference(&b)
}

fn check_unitary<T: Scalar>(c: &Case) -> TestResult {
    let u = c.unitary::<T>()?;
    prop_assert_eq!(
        u.num_params(),
        u.nstacks() * u.nblocks() * u.log_n() * u.n() / 2 * if T::IS_COMPLEX { 4 } else { 1 }
            + if c.bias { c.out } else { 0 }
    );
    let w = unitary_reference(&u);
    let as_butterfly = u.to_butterfly();
    let e = rel_err(butterfly_dense_reference(&as_butterfly).view(), w.view());
    prop_assert!(e < 1e-12, "to_butterfly: rel err {e}");
    prop_assert_eq!(as_butterfly.bias(), u.bias());
    check_linear_map(&u, &w, u.bias(), c.batch, c.seed ^ 6, 1e-12)?;
    check_backward(&u, &w, c.batch, c.seed ^ 7)?;
    // Changing the angles through `params_mut` must not leave a stale cached butterfly.
    let mut moved = u.clone();
    for a in moved.params_mut().iter_mut().take(u.angles().len()) {
        *a += T::from_f64(0.5);
    }
    let e = rel_err(moved.to_dense().view(), unitary_reference(&moved).view());
    prop_assert!(e < 1e-12, "after params_mut: rel err {e}");
    if T::IS_COMPLEX {
        let im = u.angles().iter().map(|a| a.to_c64().im.abs()).sum::<f64>();
        prop_assert!(im == 0.0, "angles must be stored with zero imaginary part");
        let mut g = vec![T::zero(); u.num_params()];
        let x = randn::<T>(3, c.inp, c.seed ^ 8);
        let dy = randn::<T>(3, c.out, c.seed ^ 9);
        ok(u.backward(x.view(), dy.view(), &mut g))?;
        let im = g[..u.angles().len()]
            .iter()
            .map(|a| a.to_c64().im.abs())
            .sum::<f64>();
        prop_assert!(im == 0.0, "angle gradients must have zero imaginary part");
    }
    // The FFT initialisation: the first block is the DFT factors scaled by 1/√2 per level.
    if c.config::<T>().init == Init::Fft {
        let mut r = rng(0);
        let cfg = ButterflyConfig {
            bias: false,
            ..c.config::<T>()
        };
        let ud = ok(ButterflyUnitary::<T>::new(c.inp, c.out, cfg, &mut r))?.to_dense();
        let bd = ok(Butterfly::<T>::new(c.inp, c.out, cfg, &mut r))?.to_dense();
        let sqrt_n = T::from_f64((c.inp.next_power_of_two() as f64).sqrt());
        let e = rel_err(ud.mapv(|v| v * sqrt_n).view(), bd.view());
        prop_assert!(e < 1e-12, "Init::Fft: rel err {e}");
    }
    Ok(())
}

/// `W W* = I` and `W* W = I` for a square power-of-two unitary butterfly, whatever its angles.
fn check_unitarity<T: Scalar>(c: &Case, log_n: usize, scale: f64) -> TestResult {
    let n = 1 << log_n;
    let c = Case {
        inp: n,
        out: n,
        ..c.clone()
    };
    let mut u = c.unitary::<T>()?;
    let mut r = rng(c.seed ^ 10);
    for a in u.angles_mut() {
        *a = T::from_f64(r.random_range(-scale..scale));
    }
    let w = u.to_dense();
    let eye = Array2::<T>::from_shape_fn((n, n), |(i, j)| T::from_f64((i == j) as u8 as f64));
    let wh = conj_t(w.view());
    let e = rel_err(matmul(w.view(), wh.view()).view(), eye.view());
    prop_assert!(e < 1e-12, "W W* = I: err {e}");
    let e = rel_err(matmul(wh.view(), w.view()).view(), eye.view());
    prop_assert!(e < 1e-12, "W* W = I: err {e}");
    Ok(())
}

proptest! {
    #![proptest_config(cases(32))]

    #[test]
    fn unitary_f64(c in case()) {
        check_unitary::<f64>(&c)?;
    }

    #[test]
    fn unitary_c64(c in case()) {
        check_unitary::<C64>(&c)?;
    }

    #[test]
    fn unitary_is_unitary(c in case(), log_n in 0usize..=6, scale in 0.1f64..100.0) {
        check_unitarity::<f64>(&c, log_n, scale)?;
        check_unitarity::<C64>(&c, log_n, scale)?;
    }

    #[test]
    fn unitary_single_precision(c in case()) {
        let u = c.unitary::<C32>()?;
        let w = unitary_reference(&u);
        check_linear_map(&u, &w, u.bias(), c.batch, c.seed, 1e-4)?;
        let u = c.unitary::<f32>()?;
        let w = unitary_reference(&u);
        check_linear_map(&u, &w, u.bias(), c.batch, c.seed, 1e-4)?;
    }
}

fn check_diagonal<T: Scalar>(n: usize, batch: usize, seed: u64) -> TestResult {
    let d: Vec<T> = randn::<T>(1, n, seed).into_raw_vec_and_offset().0;
    let m = ok(Diagonal::new(d.clone()))?;
    let w = Array2::from_shape_fn((n, n), |(i, j)| if i == j { d[i] } else { T::zero() });
    check_linear_map(&m, &w, None, batch, seed ^ 1, 1e-12)?;
    check_backward(&m, &w, batch, seed ^ 2)
}

fn check_permutation<T: Scalar>(
    perm: &[usize],
    other: &[usize],
    batch: usize,
    seed: u64,
) -> TestResult {
    let n = perm.len();
    let p = ok(Permutation::new(perm.to_vec()))?;
    // The definition: row i of P has its one in column perm[i].
    let w = Array2::from_shape_fn((n, n), |(i, j)| T::from_f64((perm[i] == j) as u8 as f64));
    check_linear_map::<T, _>(&p, &w, None, batch, seed, 1e-15)?;
    let x = randn::<T>(batch, n, seed ^ 3);
    let y = ok(LinearMap::<T>::apply(&p, x.view()))?;
    for (xr, yr) in x.rows().into_iter().zip(y.rows()) {
        for i in 0..n {
            prop_assert_eq!(yr[i], xr[perm[i]]);
        }
    }
    let inv: Array2<T> = LinearMap::<T>::to_dense(&p.inverse());
    prop_assert_eq!(inv, w.t().to_owned());
    let q = ok(Permutation::new(other.to_vec()))?;
    let pq: Array2<T> = LinearMap::<T>::to_dense(&ok(p.compose(&q))?);
    let qd: Array2<T> = LinearMap::<T>::to_dense(&q);
    prop_assert_eq!(pq, matmul(w.view(), qd.view()));
    let mut buf = vec![0usize; n];
    let src: Vec<usize> = (100..100 + n).collect();
    p.gather_slice(&src, &mut buf);
    prop_assert!(buf.iter().zip(perm).all(|(&b, &j)| b == 100 + j));
    let mut back = vec![0usize; n];
    p.scatter_slice(&buf, &mut back);
    prop_assert_eq!(back, src);
    Ok(())
}

fn perm_strategy() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (1usize..=40).prop_flat_map(|n| {
        let v: Vec<usize> = (0..n).collect();
        (Just(v.clone()).prop_shuffle(), Just(v).prop_shuffle())
    })
}

proptest! {
    #![proptest_config(cases(48))]

    #[test]
    fn diagonal(n in 1usize..=40, batch in prop::sample::select(BATCHES.to_vec()), seed in any::<u64>()) {
        check_diagonal::<f64>(n, batch, seed)?;
        check_diagonal::<C64>(n, batch, seed)?;
    }

    #[test]
    fn permutation((perm, other) in perm_strategy(), batch in prop::sample::select(BATCHES.to_vec()), seed in any::<u64>()) {
        check_permutation::<f64>(&perm, &other, batch, seed)?;
        check_permutation::<C64>(&perm, &other, batch, seed)?;
    }

    #[test]
    fn bit_reversal(log_n in 0u32..=10) {
        let n = 1usize << log_n;
        let p = ok(Permutation::bit_reversal(n))?;
        for (i, &j) in p.as_slice().iter().enumerate() {
            let mut r = 0;
            for bit in 0..log_n {
                r |= ((i >> bit) & 1) << (log_n - 1 - bit);
            }
            prop_assert_eq!(j, r);
        }
        prop_assert!(ok(p.compose(&p))?.is_identity());
    }
}

/// A random chain `W_4 W_3 W_2 W_1` of a butterfly, a diagonal, a permutation and a butterfly,
/// each butterfly with a bias; `apply` is the composition of the maps' own `apply`s and the
/// linear part is the product of their dense matrices.
fn check_chain<T: Scalar>(c: &Case, mid: usize) -> TestResult {
    let mut r = rng(c.seed ^ 11);
    let first = Case {
        out: mid,
        bias: true,
        ..c.clone()
    };
    let last = Case {
        inp: mid,
        bias: true,
        seed: c.seed ^ 12,
        ..c.clone()
    };
    let b1 = first.butterfly::<T>()?;
    let d: Vec<T> = randn::<T>(1, mid, c.seed ^ 13).into_raw_vec_and_offset().0;
    let diag = ok(Diagonal::new(d))?;
    let p = random_perm(mid, &mut r);
    let b2 = last.butterfly::<T>()?;
    let maps: Vec<BoxedMap<T>> = vec![
        Box::new(b1.clone()),
        Box::new(diag.clone()),
        Box::new(p.clone()),
        Box::new(b2.clone()),
    ];
    let chain = ok(Chain::new(maps))?;
    let mut w = b1.to_dense();
    w = matmul(diag.to_dense().view(), w.view());
    w = matmul(LinearMap::<T>::to_dense(&p).view(), w.view());
    w = matmul(b2.to_dense().view(), w.view());
    prop_assert_eq!(chain.num_params(), b1.num_params() + mid + b2.num_params());

    let e = rel_err(chain.to_dense().view(), w.view());
    prop_assert!(e < 1e-12, "chain to_dense: rel err {e}");
    // The affine composition, step by step.
    let x = randn::<T>(c.batch, c.inp, c.seed ^ 14);
    let mut want = ok(b1.apply(x.view()))?;
    want = ok(diag.apply(want.view()))?;
    want = ok(LinearMap::<T>::apply(&p, want.view()))?;
    want = ok(b2.apply(want.view()))?;
    let e = rel_err(ok(chain.apply(x.view()))?.view(), want.view());
    prop_assert!(e < 1e-12, "chain apply: rel err {e}");
    let mut store = Array2::from_elem((c.out, c.batch), sentinel::<T>());
    ok(chain.apply_into(x.view(), store.view_mut().reversed_axes()))?;
    let e = rel_err(store.t(), want.view());
    prop_assert!(e < 1e-12, "chain apply_into: rel err {e}");

    // The same chain with bias-free butterflies against the dense product.
    let maps: Vec<BoxedMap<T>> = vec![
        Box::new(b1.without_bias()),
        Box::new(diag),
        Box::new(p),
        Box::new(b2.without_bias()),
    ];
    let chain = ok(Chain::new(maps))?;
    check_linear_map(&chain, &w, None, c.batch, c.seed ^ 15, 1e-12)
}

fn check_real_part(c: &Case) -> TestResult {
    let a = c.butterfly::<C64>()?;
    let wa = butterfly_dense_reference(&a);
    let w = wa.mapv(|v| v.re);
    let bias: Option<Vec<f64>> = a.bias().map(|b| b.iter().map(|v| v.re).collect());
    let m = RealPart::<f64>::new(Box::new(a));
    check_linear_map(&m, &w, bias.as_deref(), c.batch, c.seed ^ 16, 1e-12)
}

proptest! {
    #![proptest_config(cases(24))]

    #[test]
    fn chain(c in case(), mid in 1usize..=40) {
        check_chain::<f64>(&c, mid)?;
        check_chain::<C64>(&c, mid)?;
    }

    #[test]
    fn real_part(c in case()) {
        check_real_part(&c)?;
    }
}

/// Heavier sizes (up to 256) for the forward checks; run with `--ignored`.
#[test]
#[ignore]
fn butterfly_large_sizes() {
    for (i, &(inp, out)) in [(256, 256), (200, 300), (129, 64), (255, 3)]
        .iter()
        .enumerate()
    {
        for nblocks in [1, 2, 4] {
            for init in 0..4 {
                let c = Case {
                    inp,
                    out,
                    nblocks,
                    increasing: i % 2 == 0,
                    init,
                    bias: true,
                    in_perm: nblocks % 2 == 0,
                    out_perm: init % 2 == 0,
                    batch: 40,
                    seed: (i * 100 + nblocks * 10 + init) as u64,
                };
                for t in [false, true] {
                    let res = if t {
                        c.butterfly::<C64>().and_then(|b| {
                            let w = butterfly_dense_reference(&b);
                            check_linear_map(&b, &w, b.bias(), c.batch, c.seed, 1e-12)
                        })
                    } else {
                        c.butterfly::<f64>().and_then(|b| {
                            let w = butterfly_dense_reference(&b);
                            check_linear_map(&b, &w, b.bias(), c.batch, c.seed, 1e-12)
                        })
                    };
                    res.unwrap_or_else(|e| panic!("{c:?}: {e}"));
                }
            }
        }
    }
}
