//! Exact combinations of butterflies: products (`then`), folded diagonals, flipped stride
//! direction, Kronecker products (generic and as one butterfly). Every result is compared with
//! the dense f64 algebra of its parts.

mod common;
use common::*;
use kaleidoscope::butterfly::BoxedMap;
use kaleidoscope::{
    Butterfly, ButterflyConfig, Diagonal, Error, Init, Kronecker, LinearMap, Permutation, Scalar,
    C64,
};
use ndarray::{Array2, ArrayView2};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

const TOL: f64 = 1e-12;

fn random_perm(n: usize, r: &mut StdRng) -> Permutation {
    let mut v: Vec<usize> = (0..n).collect();
    v.shuffle(r);
    Permutation::new(v).unwrap()
}

/// A random butterfly `inp → out` with random blocks, direction, fixed permutations (each
/// with probability 1/2) and, when `bias`, a random bias.
fn random_butterfly<T: Scalar>(inp: usize, out: usize, bias: bool, r: &mut StdRng) -> Butterfly<T> {
    let cfg = ButterflyConfig {
        nblocks: r.random_range(1..=3),
        increasing_stride: r.random(),
        init: Init::Randn,
        bias,
    };
    let mut b = Butterfly::<T>::new(inp, out, cfg, r).unwrap();
    if let Some(bb) = b.bias_mut() {
        for v in bb {
            *v = T::randn(r, 1.0);
        }
    }
    let n = b.n();
    if r.random() {
        b = b.with_input_permutation(random_perm(n, r)).unwrap();
    }
    if r.random() {
        b = b.with_output_permutation(random_perm(n, r)).unwrap();
    }
    b
}

fn dot<T: Scalar>(a: ArrayView2<T>, b: ArrayView2<T>) -> Array2<T> {
    // a · b = (bᵀ aᵀ)ᵀ through the plain f64 triple loop of the helpers.
    matmul_xwt(a, b.t())
}

fn diag_dense<T: Scalar>(d: &[T]) -> Array2<T> {
    let n = d.len();
    Array2::from_shape_fn((n, n), |(i, j)| if i == j { d[i] } else { T::zero() })
}

fn kron_dense<T: Scalar>(a: &Array2<T>, b: &Array2<T>) -> Array2<T> {
    let (ra, ca) = a.dim();
    let (rb, cb) = b.dim();
    let mut k = Array2::zeros((ra * rb, ca * cb));
    for i in 0..ra {
        for j in 0..ca {
            for p in 0..rb {
                for q in 0..cb {
                    k[(i * rb + p, j * cb + q)] = a[(i, j)] * b[(p, q)];
                }
            }
        }
    }
    k
}

/// `x Wᵀ + b` from the dense reference of a butterfly.
fn affine_ref<T: Scalar>(b: &Butterfly<T>, x: ArrayView2<T>) -> Array2<T> {
    let mut y = matmul_xwt(x, butterfly_dense_reference(b).view());
    if let Some(bias) = b.bias() {
        for mut row in y.rows_mut() {
            for (v, &c) in row.iter_mut().zip(bias) {
                *v += c;
            }
        }
    }
    y
}

fn check_product<T: Scalar>(m: u32, seed: u64) {
    let mut r = rng(seed);
    let n = 1usize << m;
    let inp = r.random_range(n / 2 + 1..=n);
    let out = r.random_range(1..=3 * n);
    let b1 = random_butterfly::<T>(inp, n, false, &mut r);
    let b2 = random_butterfly::<T>(n, out, r.random(), &mut r);
    let p = b1.then(&b2).unwrap();
    let want = dot(
        butterfly_dense_reference(&b2).view(),
        butterfly_dense_reference(&b1).view(),
    );
    assert!(rel_err(butterfly_dense_reference(&p).view(), want.view()) < TOL);
    assert!(rel_err(p.to_dense().view(), want.view()) < TOL);
    let x = randn::<T>(9, inp, seed + 1);
    let y = affine_ref(&b2, b2_input(&b1, x.view()).view());
    assert!(rel_err(p.apply(x.view()).unwrap().view(), y.view()) < TOL);
    // Block count: an identity between same-direction neighbours, a Beneš pair (and its
    // connecting identities) for a middle permutation that does not cancel.
    let last1 = b1.block_increasing(b1.nblocks() - 1);
    let middle = match (b1.output_permutation(), b2.input_permutation()) {
        (None, None) => false,
        (Some(q), None) | (None, Some(q)) => !q.is_identity(),
        (Some(q), Some(p2)) => !p2.compose(q).unwrap().is_identity(),
    };
    let expected = if middle {
        // Beneš blocks run (decreasing, increasing).
        b1.nblocks() + usize::from(!last1) + 2 + usize::from(b2.increasing_stride()) + b2.nblocks()
    } else {
        b1.nblocks() + usize::from(last1 == b2.increasing_stride()) + b2.nblocks()
    };
    assert_eq!(p.nblocks(), expected);
    assert_eq!((p.in_features(), p.out_features()), (inp, out));
}

fn b2_input<T: Scalar>(b1: &Butterfly<T>, x: ArrayView2<T>) -> Array2<T> {
    matmul_xwt(x, butterfly_dense_reference(b1).view())
}

fn check_fold<T: Scalar>(m: u32, seed: u64) {
    let mut r = rng(seed);
    let n = 1usize << m;
    let inp = r.random_range(n / 2 + 1..=n);
    let out = r.random_range(1..=3 * n);
    let b = random_butterfly::<T>(inp, out, r.random(), &mut r);
    let w = butterfly_dense_reference(&b);
    let din: Vec<T> = (0..inp).map(|_| T::randn(&mut r, 1.0)).collect();
    let dout: Vec<T> = (0..out).map(|_| T::randn(&mut r, 1.0)).collect();

    let fi = b
        .fold_diagonal_input(&Diagonal::new(din.clone()).unwrap())
        .unwrap();
    let want = dot(w.view(), diag_dense(&din).view());
    assert!(rel_err(butterfly_dense_reference(&fi).view(), want.view()) < TOL);
    assert_eq!(fi.bias(), b.bias());
    assert_eq!(fi.nblocks(), b.nblocks());

    let fo = b
        .fold_diagonal_output(&Diagonal::new(dout.clone()).unwrap())
        .unwrap();
    let want = dot(diag_dense(&dout).view(), w.view());
    assert!(rel_err(butterfly_dense_reference(&fo).view(), want.view()) < TOL);
    if let Some(bias) = b.bias() {
        let scaled: Vec<T> = bias.iter().zip(&dout).map(|(&u, &v)| u * v).collect();
        assert_eq!(fo.bias().unwrap(), &scaled[..]);
    }
    // The fast path agrees, bias included.
    let x = randn::<T>(7, inp, seed + 3);
    assert!(
        rel_err(
            fo.apply(x.view()).unwrap().view(),
            affine_ref(&fo, x.view()).view()
        ) < TOL
    );
}

fn check_flip<T: Scalar>(m: u32, seed: u64) {
    let mut r = rng(seed);
    let n = 1usize << m;
    let inp = r.random_range(n / 2 + 1..=n);
    let out = r.random_range(1..=3 * n);
    let b = random_butterfly::<T>(inp, out, r.random(), &mut r);
    let f = b.flip_stride().unwrap();
    assert_eq!(f.increasing_stride(), !b.increasing_stride());
    assert!(
        rel_err(
            butterfly_dense_reference(&f).view(),
            butterfly_dense_reference(&b).view()
        ) < TOL
    );
    let x = randn::<T>(5, inp, seed + 5);
    assert!(
        rel_err(
            f.apply(x.view()).unwrap().view(),
            b.apply(x.view()).unwrap().view()
        ) < TOL
    );
    let ff = f.flip_stride().unwrap();
    assert_eq!(ff.twiddle(), b.twiddle());
    assert_eq!(ff.input_permutation(), b.input_permutation());
    assert_eq!(ff.output_permutation(), b.output_permutation());
}

fn check_butterfly_kronecker<T: Scalar>(ma: u32, mb: u32, seed: u64) {
    let mut r = rng(seed);
    let (na, nb) = (1usize << ma, 1usize << mb);
    let a = random_butterfly::<T>(na, na, false, &mut r);
    let b = random_butterfly::<T>(nb, nb, false, &mut r);
    let k = a.kronecker(&b).unwrap();
    assert_eq!(k.n(), na * nb);
    let want = kron_dense(
        &butterfly_dense_reference(&a),
        &butterfly_dense_reference(&b),
    );
    assert!(rel_err(butterfly_dense_reference(&k).view(), want.view()) < TOL);
    let x = randn::<T>(6, na * nb, seed + 7);
    let generic = Kronecker::new(a.clone(), b.clone()).unwrap();
    assert!(
        rel_err(
            k.apply(x.view()).unwrap().view(),
            generic.apply(x.view()).unwrap().view()
        ) < TOL
    );
    assert_eq!(generic.to_butterfly().unwrap(), k);
    let extra = usize::from(a.increasing_stride() != b.increasing_stride());
    assert_eq!(k.nblocks(), a.nblocks().max(b.nblocks() + extra));
}

fn check_generic_kronecker<T: Scalar>(seed: u64) {
    let mut r = rng(seed);
    let (ia, oa) = (r.random_range(1..=9), r.random_range(1..=9));
    let (ib, ob) = (r.random_range(1..=9), r.random_range(1..=9));
    let a = random_butterfly::<T>(ia, oa, false, &mut r);
    let b = random_butterfly::<T>(ib, ob, false, &mut r);
    let w = kron_dense(
        &butterfly_dense_reference(&a),
        &butterfly_dense_reference(&b),
    );
    let k = Kronecker::new(a.clone(), b.clone()).unwrap();
    assert_eq!((k.out_features(), k.in_features()), w.dim());
    assert!(rel_err(k.to_dense().view(), w.view()) < TOL);
    let x = randn::<T>(11, ia * ib, seed + 1);
    assert!(
        rel_err(
            k.apply(x.view()).unwrap().view(),
            matmul_xwt(x.view(), w.view()).view()
        ) < TOL
    );
    let y = randn::<T>(4, oa * ob, seed + 2);
    let wt = w.t().to_owned();
    assert!(
        rel_err(
            k.apply_transpose(y.view()).unwrap().view(),
            matmul_xwt(y.view(), wt.view()).view()
        ) < TOL
    );
    let wh = conj_t(w.view());
    assert!(
        rel_err(
            k.apply_adjoint(y.view()).unwrap().view(),
            matmul_xwt(y.view(), wh.view()).view()
        ) < TOL
    );
    assert_eq!(k.num_params(), a.num_params() + b.num_params());
    // Through boxes, with a diagonal and a permutation as the other factor.
    let d: Vec<T> = (0..ib).map(|_| T::randn(&mut r, 1.0)).collect();
    let boxed: Kronecker<BoxedMap<T>, BoxedMap<T>> = Kronecker::new(
        Box::new(a.clone()) as BoxedMap<T>,
        Box::new(Diagonal::new(d.clone()).unwrap()) as BoxedMap<T>,
    )
    .unwrap();
    let want = kron_dense(&butterfly_dense_reference(&a), &diag_dense(&d));
    assert!(rel_err(boxed.to_dense().view(), want.view()) < TOL);
    let p = random_perm(ib, &mut r);
    let kp = Kronecker::new::<T>(random_perm(ia, &mut r), p.clone()).unwrap();
    let x = randn::<T>(3, ia * ib, seed + 4);
    let want = kron_dense(
        &LinearMap::<T>::to_dense(kp.a()),
        &LinearMap::<T>::to_dense(&p),
    );
    assert!(
        rel_err(
            kp.apply(x.view()).unwrap().view(),
            matmul_xwt(x.view(), want.view()).view()
        ) < TOL
    );
}

#[test]
fn products_smoke() {
    for m in 0..=5 {
        for s in 0..6 {
            check_product::<f64>(m, 100 * u64::from(m) + s);
            check_product::<C64>(m, 1000 + 100 * u64::from(m) + s);
        }
    }
}

#[test]
fn folds_and_flips_smoke() {
    for m in 0..=5 {
        for s in 0..6 {
            let seed = 50 + 100 * u64::from(m) + s;
            if m > 0 {
                check_fold::<f64>(m, seed);
                check_fold::<C64>(m, seed + 7);
            }
            check_flip::<f64>(m, seed);
            check_flip::<C64>(m, seed + 7);
        }
    }
}

#[test]
fn kronecker_smoke() {
    for ma in 0..=3 {
        for mb in 0..=3 {
            check_butterfly_kronecker::<f64>(ma, mb, u64::from(10 * ma + mb));
            check_butterfly_kronecker::<C64>(ma, mb, u64::from(100 + 10 * ma + mb));
        }
    }
    for s in 0..8 {
        check_generic_kronecker::<f64>(s);
        check_generic_kronecker::<C64>(s + 100);
    }
}

#[test]
fn permutation_kronecker_is_kron_of_matrices() {
    let mut r = rng(9);
    for (na, nb) in [(1, 1), (3, 5), (4, 4), (7, 2)] {
        let (p, q) = (random_perm(na, &mut r), random_perm(nb, &mut r));
        let k = p.kronecker(&q);
        let want = kron_dense::<f64>(
            &LinearMap::<f64>::to_dense(&p),
            &LinearMap::<f64>::to_dense(&q),
        );
        assert_eq!(LinearMap::<f64>::to_dense(&k), want);
    }
}

#[test]
fn product_builds_the_kaleidoscope_hierarchy() {
    // Four alternating blocks from four one-block butterflies: no identity is inserted.
    let mut r = rng(11);
    let factors: Vec<Butterfly<f64>> = (0..4)
        .map(|i| {
            let cfg = ButterflyConfig {
                nblocks: 1,
                increasing_stride: i % 2 == 0,
                init: Init::Randn,
                bias: false,
            };
            Butterfly::new(16, 16, cfg, &mut r).unwrap()
        })
        .collect();
    let mut p = factors[0].clone();
    let mut want = butterfly_dense_reference(&factors[0]);
    for f in &factors[1..] {
        p = p.then(f).unwrap();
        want = dot(butterfly_dense_reference(f).view(), want.view());
    }
    assert_eq!(p.nblocks(), 4);
    assert!(rel_err(p.to_dense().view(), want.view()) < TOL);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let mut r = rng(5);
    let cfg = ButterflyConfig::default(); // with bias
    let mut biased = Butterfly::<f64>::new(8, 8, cfg, &mut r).unwrap();
    biased.bias_mut().unwrap()[3] = 0.5;
    let plain = biased.clone().without_bias();
    assert!(matches!(
        biased.then(&plain),
        Err(Error::InvalidArgument { what: "self", .. })
    ));
    let narrow = Butterfly::<f64>::new(8, 6, cfg, &mut r)
        .unwrap()
        .without_bias();
    assert!(matches!(
        narrow.then(&plain),
        Err(Error::InvalidArgument { what: "self", .. })
    ));
    let other = Butterfly::<f64>::new(16, 16, cfg, &mut r).unwrap();
    assert!(matches!(
        plain.then(&other),
        Err(Error::Shape { what: "next", .. })
    ));
    assert!(matches!(
        plain.fold_diagonal_input(&Diagonal::new(vec![1.0; 7]).unwrap()),
        Err(Error::BufferLength {
            what: "diagonal",
            expected: 8,
            got: 7
        })
    ));
    assert!(matches!(
        narrow.fold_diagonal_output(&Diagonal::new(vec![1.0; 8]).unwrap()),
        Err(Error::BufferLength {
            what: "diagonal",
            expected: 6,
            got: 8
        })
    ));
    let one = Butterfly::<f64>::new(1, 1, cfg, &mut r).unwrap();
    assert!(matches!(
        one.fold_diagonal_input(&Diagonal::new(vec![2.0]).unwrap()),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        biased.kronecker(&plain),
        Err(Error::InvalidArgument { what: "self", .. })
    ));
    assert!(matches!(
        plain.kronecker(&narrow),
        Err(Error::InvalidArgument { what: "other", .. })
    ));
    assert!(matches!(
        Kronecker::new(plain.clone(), biased.clone()),
        Err(Error::InvalidArgument { what: "b", .. })
    ));
    // A bias that is exactly zero is a linear map.
    let zero_bias = Butterfly::<f64>::new(8, 8, cfg, &mut r).unwrap();
    assert!(Kronecker::new(zero_bias, plain.clone()).is_ok());
    let k = Kronecker::new(plain.clone(), narrow.clone()).unwrap();
    let x = Array2::<f64>::zeros((2, 47));
    assert!(matches!(
        k.apply(x.view()),
        Err(Error::Shape { what: "x", .. })
    ));
    assert!(matches!(
        k.apply_transpose(x.view()),
        Err(Error::Shape { what: "y", .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn prop_product(m in 0u32..=6, seed in 0u64..1 << 32, complex in any::<bool>()) {
        if complex { check_product::<C64>(m, seed) } else { check_product::<f64>(m, seed) }
    }
    #[test]
    fn prop_fold(m in 1u32..=6, seed in 0u64..1 << 32, complex in any::<bool>()) {
        if complex { check_fold::<C64>(m, seed) } else { check_fold::<f64>(m, seed) }
    }
    #[test]
    fn prop_flip(m in 0u32..=6, seed in 0u64..1 << 32, complex in any::<bool>()) {
        if complex { check_flip::<C64>(m, seed) } else { check_flip::<f64>(m, seed) }
    }
    #[test]
    fn prop_butterfly_kronecker(ma in 0u32..=3, mb in 0u32..=3, seed in 0u64..1 << 32) {
        check_butterfly_kronecker::<C64>(ma, mb, seed)
    }
    #[test]
    fn prop_generic_kronecker(seed in 0u64..1 << 32, complex in any::<bool>()) {
        if complex { check_generic_kronecker::<C64>(seed) } else { check_generic_kronecker::<f64>(seed) }
    }
}
