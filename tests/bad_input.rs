//! Bad input to the butterfly family gets a typed `Error` naming the argument and the expected
//! value, never a panic; NaN inputs propagate to the outputs they touch and nowhere else.

mod common;
use common::*;
use kaleidoscope::butterfly::special::{Decimation, FftOptions};
use kaleidoscope::butterfly::{BoxedMap, Chain, RealPart};
use kaleidoscope::{
    Butterfly, ButterflyConfig, ButterflyUnitary, Diagonal, Differentiable, Error, Init, LinearMap,
    Permutation, Scalar, C32, C64,
};
use ndarray::Array2;

/// `r` is the error `want`, and its message contains every one of `needles`.
#[track_caller]
fn expect_err<V>(r: kaleidoscope::Result<V>, want: Error, needles: &[&str]) {
    let e = match r {
        Ok(_) => panic!("expected the error {want:?}, got Ok"),
        Err(e) => e,
    };
    assert_eq!(e, want);
    let msg = e.to_string();
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} does not mention {n:?}");
    }
}

fn shape(what: &'static str, expected: &str, got: &str) -> Error {
    Error::Shape {
        what,
        expected: expected.into(),
        got: got.into(),
    }
}

fn buffer(what: &'static str, expected: usize, got: usize) -> Error {
    Error::BufferLength {
        what,
        expected,
        got,
    }
}

fn cfg(nblocks: usize, init: Init) -> ButterflyConfig {
    ButterflyConfig {
        nblocks,
        increasing_stride: true,
        init,
        bias: true,
    }
}

/// Wrong widths and buffer lengths for every `LinearMap`/`Differentiable` method of a map with
/// `inp → out` (`inp, out ≥ 2` so that `inp - 1` and `out - 1` are wrong but not empty).
fn check_shapes<T: Scalar, M: LinearMap<T> + ?Sized>(m: &M) {
    let (inp, out) = (m.in_features(), m.out_features());
    let bad_x = Array2::<T>::zeros((3, inp + 1));
    expect_err(
        m.apply(bad_x.view()),
        shape(
            "x",
            &format!("(batch, {inp})"),
            &format!("(3, {})", inp + 1),
        ),
        &["x", &format!("(batch, {inp})")],
    );
    let empty_x = Array2::<T>::zeros((3, 0));
    expect_err(
        m.apply(empty_x.view()),
        shape("x", &format!("(batch, {inp})"), "(3, 0)"),
        &["x", &format!("(batch, {inp})")],
    );
    let x = Array2::<T>::zeros((3, inp));
    let mut y = Array2::<T>::zeros((3, out + 1));
    expect_err(
        m.apply_into(x.view(), y.view_mut()),
        shape("y", &format!("(3, {out})"), &format!("(3, {})", out + 1)),
        &["y", &format!("(3, {out})")],
    );
    let mut y = Array2::<T>::zeros((2, out));
    expect_err(
        m.apply_into(x.view(), y.view_mut()),
        shape("y", &format!("(3, {out})"), &format!("(2, {out})")),
        &["y", &format!("(3, {out})")],
    );
    let mut y = Array2::<T>::zeros((3, out));
    expect_err(
        m.apply_into(bad_x.view(), y.view_mut()),
        shape(
            "x",
            &format!("(batch, {inp})"),
            &format!("(3, {})", inp + 1),
        ),
        &["x"],
    );
    let bad_y = Array2::<T>::zeros((4, out - 1));
    for r in [
        m.apply_transpose(bad_y.view()),
        m.apply_adjoint(bad_y.view()),
    ] {
        expect_err(
            r,
            shape(
                "y",
                &format!("(batch, {out})"),
                &format!("(4, {})", out - 1),
            ),
            &["y", &format!("(batch, {out})")],
        );
    }
    // An empty batch is valid.
    let y = m.apply(Array2::<T>::zeros((0, inp)).view()).unwrap();
    assert_eq!(y.dim(), (0, out));
    let xt = m
        .apply_transpose(Array2::<T>::zeros((0, out)).view())
        .unwrap();
    assert_eq!(xt.dim(), (0, inp));
}

fn check_backward_shapes<T: Scalar, M: Differentiable<T>>(m: &M) {
    let (inp, out) = (m.in_features(), m.out_features());
    let np = m.params().len();
    let mut g = vec![T::zero(); np];
    let x = Array2::<T>::zeros((5, inp));
    let dy = Array2::<T>::zeros((5, out));
    let bad_x = Array2::<T>::zeros((5, inp - 1));
    expect_err(
        m.backward(bad_x.view(), dy.view(), &mut g),
        shape(
            "x",
            &format!("(batch, {inp})"),
            &format!("(5, {})", inp - 1),
        ),
        &["x", &format!("(batch, {inp})")],
    );
    let bad_dy = Array2::<T>::zeros((4, out));
    expect_err(
        m.backward(x.view(), bad_dy.view(), &mut g),
        shape("dy", &format!("(5, {out})"), &format!("(4, {out})")),
        &["dy", &format!("(5, {out})")],
    );
    let bad_dy = Array2::<T>::zeros((5, out + 2));
    expect_err(
        m.backward(x.view(), bad_dy.view(), &mut g),
        shape("dy", &format!("(5, {out})"), &format!("(5, {})", out + 2)),
        &["dy"],
    );
    for len in [0, np - 1, np + 1] {
        let mut bad_g = vec![T::zero(); len];
        expect_err(
            m.backward(x.view(), dy.view(), &mut bad_g),
            buffer("grads", np, len),
            &["grads", &np.to_string(), &len.to_string()],
        );
    }
    // Errors leave `grads` untouched.
    assert!(g.iter().all(|v| *v == T::zero()));
    // An empty batch is valid and adds nothing.
    let dx = m
        .backward(
            Array2::<T>::zeros((0, inp)).view(),
            Array2::<T>::zeros((0, out)).view(),
            &mut g,
        )
        .unwrap();
    assert_eq!(dx.dim(), (0, inp));
    assert!(g.iter().all(|v| *v == T::zero()));
}

fn butterfly_constructors<T: Scalar>() {
    let mut r = rng(0);
    let c = cfg(1, Init::Randn);
    expect_err(
        Butterfly::<T>::new(0, 4, c, &mut r),
        Error::Zero {
            what: "in_features",
        },
        &["in_features", "at least 1", "got 0"],
    );
    expect_err(
        Butterfly::<T>::new(4, 0, c, &mut r),
        Error::Zero {
            what: "out_features",
        },
        &["out_features", "at least 1"],
    );
    expect_err(
        Butterfly::<T>::new(4, 4, cfg(0, Init::Randn), &mut r),
        Error::Zero { what: "nblocks" },
        &["nblocks", "at least 1"],
    );
    if !T::IS_COMPLEX {
        for n in [2, 5, 8] {
            expect_err(
                Butterfly::<T>::new(n, n, cfg(2, Init::Fft), &mut r),
                Error::InvalidArgument {
                    what: "init",
                    message: format!("Init::Fft needs complex scalars, got {}", T::NAME),
                },
                &["init", "complex", T::NAME],
            );
        }
    }

    // from_twiddle: n = 8, nstacks = ⌈20/8⌉ = 3, 2 blocks: 3·2·3·4·4 = 288 twiddles.
    let good = 288;
    for len in [0, good - 1, good + 4] {
        expect_err(
            Butterfly::<T>::from_twiddle(5, 20, 2, true, vec![T::zero(); len], None),
            buffer("twiddle", good, len),
            &["twiddle", &good.to_string(), &len.to_string()],
        );
    }
    expect_err(
        Butterfly::<T>::from_twiddle(
            5,
            20,
            2,
            true,
            vec![T::zero(); good],
            Some(vec![T::zero(); 19]),
        ),
        buffer("bias", 20, 19),
        &["bias", "20", "19"],
    );
    expect_err(
        Butterfly::<T>::from_twiddle(0, 20, 2, true, vec![], None),
        Error::Zero {
            what: "in_features",
        },
        &["in_features"],
    );
    expect_err(
        Butterfly::<T>::from_twiddle(5, 0, 2, true, vec![], None),
        Error::Zero {
            what: "out_features",
        },
        &["out_features"],
    );
    expect_err(
        Butterfly::<T>::from_twiddle(5, 20, 0, true, vec![], None),
        Error::Zero { what: "nblocks" },
        &["nblocks"],
    );

    // Permutations must have length n (the padded size), not in_features.
    let b = Butterfly::<T>::new(5, 20, c, &mut r).unwrap();
    let p5 = Permutation::identity(5).unwrap();
    expect_err(
        b.clone().with_input_permutation(p5.clone()),
        buffer("input permutation", 8, 5),
        &["input permutation", "8", "5"],
    );
    expect_err(
        b.clone()
            .with_output_permutation(Permutation::identity(16).unwrap()),
        buffer("output permutation", 8, 16),
        &["output permutation", "8", "16"],
    );
}

/// Sizes whose padded size or twiddle count overflows `usize` are refused, not a panic.
fn huge_sizes<T: Scalar>() {
    let mut r = rng(0);
    let c = cfg(1, Init::Identity);
    let pad = |n: usize| Error::InvalidArgument {
        what: "in_features",
        message: format!("{n} is too large to pad to a power of two"),
    };
    let count = |i: usize, o: usize, b: usize| {
        Error::InvalidArgument {
        what: "butterfly size",
        message: format!(
            "in_features = {i}, out_features = {o}, nblocks = {b} needs more than usize::MAX twiddles"
        ),
    }
    };
    let big = usize::MAX / 2 + 2;
    expect_err(
        Butterfly::<T>::new(big, 1, c, &mut r),
        pad(big),
        &["in_features", &big.to_string()],
    );
    expect_err(
        Butterfly::<T>::from_twiddle(usize::MAX, 1, 1, true, vec![], None),
        pad(usize::MAX),
        &["in_features"],
    );
    expect_err(
        ButterflyUnitary::<T>::new(big, 3, c, &mut r),
        pad(big),
        &["in_features"],
    );
    let n = 1usize << 62;
    expect_err(
        Butterfly::<T>::new(n, 1, c, &mut r),
        count(n, 1, 1),
        &["in_features", "out_features", "nblocks", "usize::MAX"],
    );
    expect_err(
        Butterfly::<T>::new(4, 4, cfg(usize::MAX, Init::Identity), &mut r),
        count(4, 4, usize::MAX),
        &["nblocks"],
    );
    expect_err(
        Butterfly::<T>::from_twiddle(2, usize::MAX, 1 << 40, true, vec![], None),
        count(2, usize::MAX, 1 << 40),
        &["out_features"],
    );
    expect_err(
        ButterflyUnitary::<T>::from_angles(4, 4, usize::MAX, true, vec![], None),
        count(4, 4, usize::MAX),
        &["nblocks"],
    );
}

#[test]
fn huge_sizes_all_scalars() {
    huge_sizes::<f32>();
    huge_sizes::<f64>();
    huge_sizes::<C32>();
    huge_sizes::<C64>();
}

#[test]
fn butterfly_constructors_all_scalars() {
    butterfly_constructors::<f32>();
    butterfly_constructors::<f64>();
    butterfly_constructors::<C32>();
    butterfly_constructors::<C64>();
}

fn butterfly_methods<T: Scalar>() {
    let mut r = rng(1);
    for &(inp, out, nblocks) in &[(5, 20, 2), (8, 8, 1), (13, 3, 3), (2, 2, 1)] {
        let b = Butterfly::<T>::new(inp, out, cfg(nblocks, Init::Randn), &mut r).unwrap();
        check_shapes(&b);
        check_backward_shapes(&b);
        let b = b.without_bias();
        check_shapes(&b);
        check_backward_shapes(&b);
    }
}

#[test]
fn butterfly_methods_all_scalars() {
    butterfly_methods::<f32>();
    butterfly_methods::<f64>();
    butterfly_methods::<C32>();
    butterfly_methods::<C64>();
}

#[test]
fn unitary_bad_input() {
    fn run<T: Scalar>() {
        let mut r = rng(2);
        let c = cfg(2, Init::Ortho);
        expect_err(
            ButterflyUnitary::<T>::new(0, 4, c, &mut r),
            Error::Zero {
                what: "in_features",
            },
            &["in_features"],
        );
        expect_err(
            ButterflyUnitary::<T>::new(4, 0, c, &mut r),
            Error::Zero {
                what: "out_features",
            },
            &["out_features"],
        );
        expect_err(
            ButterflyUnitary::<T>::new(4, 4, cfg(0, Init::Ortho), &mut r),
            Error::Zero { what: "nblocks" },
            &["nblocks"],
        );
        if !T::IS_COMPLEX {
            for n in [1, 4, 6] {
                expect_err(
                    ButterflyUnitary::<T>::new(n, n, cfg(1, Init::Fft), &mut r),
                    Error::InvalidArgument {
                        what: "init",
                        message: format!("Init::Fft needs complex scalars, got {}", T::NAME),
                    },
                    &["init", "complex", T::NAME],
                );
            }
        }
        // n = 8, nstacks = 3, 2 blocks, 3 levels, 4 pairs, 1 or 4 angles per pair.
        let k = if T::IS_COMPLEX { 4 } else { 1 };
        let good = 3 * 2 * 3 * 4 * k;
        for len in [0, good - 1, good + 1] {
            expect_err(
                ButterflyUnitary::<T>::from_angles(
                    5,
                    20,
                    2,
                    true,
                    vec![T::Real::default(); len],
                    None,
                ),
                buffer("angles", good, len),
                &["angles", &good.to_string(), &len.to_string()],
            );
        }
        expect_err(
            ButterflyUnitary::<T>::from_angles(
                5,
                20,
                2,
                true,
                vec![T::Real::default(); good],
                Some(vec![T::zero(); 21]),
            ),
            buffer("bias", 20, 21),
            &["bias", "20", "21"],
        );
        expect_err(
            ButterflyUnitary::<T>::from_angles(5, 20, 0, true, vec![], None),
            Error::Zero { what: "nblocks" },
            &["nblocks"],
        );
        let u = ButterflyUnitary::<T>::new(5, 20, c, &mut r).unwrap();
        expect_err(
            u.clone()
                .with_input_permutation(Permutation::identity(4).unwrap()),
            buffer("input permutation", 8, 4),
            &["input permutation", "8", "4"],
        );
        expect_err(
            u.clone()
                .with_output_permutation(Permutation::identity(9).unwrap()),
            buffer("output permutation", 8, 9),
            &["output permutation", "8", "9"],
        );
        check_shapes(&u);
        check_backward_shapes(&u);
        let u = ButterflyUnitary::<T>::new(16, 16, cfg(1, Init::Identity), &mut r).unwrap();
        check_shapes(&u);
        check_backward_shapes(&u);
    }
    run::<f32>();
    run::<f64>();
    run::<C32>();
    run::<C64>();
}

#[test]
fn permutation_bad_input() {
    expect_err(
        Permutation::new(vec![]),
        Error::Zero {
            what: "permutation length",
        },
        &["permutation length", "at least 1"],
    );
    expect_err(
        Permutation::new(vec![0, 3, 1]),
        Error::NotAPermutation {
            n: 3,
            message: "entry 1 is 3, out of range".into(),
        },
        &["0..3", "entry 1", "3"],
    );
    expect_err(
        Permutation::new(vec![2, 0, 2]),
        Error::NotAPermutation {
            n: 3,
            message: "value 2 appears twice".into(),
        },
        &["0..3", "2", "twice"],
    );
    expect_err(
        Permutation::identity(0),
        Error::Zero { what: "n" },
        &["n must be at least 1"],
    );
    expect_err(
        Permutation::bit_reversal(0),
        Error::Zero { what: "n" },
        &["n must be at least 1"],
    );
    for n in [3, 6, 12, 1000] {
        expect_err(
            Permutation::bit_reversal(n),
            Error::NotPowerOfTwo { what: "n", got: n },
            &["n", "power of two", &n.to_string()],
        );
    }
    let p = Permutation::new(vec![1, 0, 2]).unwrap();
    let q = Permutation::identity(4).unwrap();
    expect_err(
        p.compose(&q),
        shape("q", "a permutation of length 3", "length 4"),
        &["q", "length 3", "length 4"],
    );
    check_shapes::<f64, _>(&Permutation::new(vec![3, 1, 0, 2]).unwrap());
    check_shapes::<C64, _>(&Permutation::bit_reversal(8).unwrap());
}

#[test]
fn diagonal_bad_input() {
    expect_err(
        Diagonal::<f64>::new(vec![]),
        Error::Zero {
            what: "diagonal length",
        },
        &["diagonal length", "at least 1"],
    );
    expect_err(
        Diagonal::<C64>::identity(0),
        Error::Zero { what: "n" },
        &["n must be at least 1"],
    );
    let d = Diagonal::new(vec![1.0f64, -2.0, 3.0, 0.5]).unwrap();
    check_shapes(&d);
    check_backward_shapes(&d);
    let d = Diagonal::<C32>::identity(7).unwrap();
    check_shapes(&d);
    check_backward_shapes(&d);
}

#[test]
fn chain_and_real_part_bad_input() {
    expect_err(
        Chain::<f64>::new(vec![]),
        Error::Zero {
            what: "number of maps in a chain",
        },
        &["number of maps in a chain"],
    );
    let mut r = rng(3);
    let b = Butterfly::<f64>::new(5, 8, cfg(1, Init::Randn), &mut r).unwrap();
    let maps: Vec<BoxedMap<f64>> = vec![
        Box::new(b.clone()),
        Box::new(Diagonal::<f64>::identity(8).unwrap()),
        Box::new(Permutation::identity(7).unwrap()),
    ];
    expect_err(
        Chain::new(maps),
        shape(
            "chain",
            "map 2 to take 8 inputs (the outputs of map 1)",
            "7",
        ),
        &["chain", "map 2", "8"],
    );
    let maps: Vec<BoxedMap<f64>> = vec![
        Box::new(b),
        Box::new(Diagonal::<f64>::identity(8).unwrap()),
        Box::new(Butterfly::<f64>::new(8, 3, cfg(2, Init::Randn), &mut r).unwrap()),
    ];
    let chain = Chain::new(maps).unwrap();
    check_shapes(&chain);

    let inner = Butterfly::<C64>::new(6, 9, cfg(2, Init::Randn), &mut r).unwrap();
    let re = RealPart::<f64>::new(Box::new(inner));
    check_shapes(&re);
}

#[test]
fn fourier_bad_input() {
    for dec in [Decimation::Time, Decimation::Frequency] {
        let opts = FftOptions {
            decimation: dec,
            ..FftOptions::default()
        };
        for n in [3usize, 6, 100] {
            expect_err(
                Butterfly::<C64>::fft(n, opts),
                Error::NotPowerOfTwo { what: "n", got: n },
                &["n", "power of two", &n.to_string()],
            );
            expect_err(
                Butterfly::<C32>::ifft(n, opts),
                Error::NotPowerOfTwo { what: "n", got: n },
                &["n", "power of two", &n.to_string()],
            );
        }
        expect_err(
            Butterfly::<C64>::fft(0, opts),
            Error::Zero { what: "n" },
            &["n must be at least 1"],
        );
        for n in [0, 8] {
            expect_err(
                Butterfly::<f64>::fft(n, opts),
                Error::InvalidArgument {
                    what: "scalar type",
                    message: "the DFT needs complex scalars, got f64".into(),
                },
                &["scalar type", "complex", "f64"],
            );
            expect_err(
                Butterfly::<f32>::ifft(n, opts),
                Error::InvalidArgument {
                    what: "scalar type",
                    message: "the DFT needs complex scalars, got f32".into(),
                },
                &["scalar type", "complex", "f32"],
            );
        }
        let f = Butterfly::<C64>::fft(16, opts).unwrap();
        check_shapes(&f);
    }
}

fn is_nan<T: Scalar>(v: &T) -> bool {
    v.is_nan_value()
}

/// A NaN at `(row, col)` of the input: `apply` does not panic, row `row` of the output is NaN
/// exactly where `nan_at(i)` says, and every other row equals the clean result; `backward`
/// with that input gives the clean `dx` (it does not depend on `x`) and NaN parameter
/// gradients where the parameters touch the NaN; a NaN in `dy` makes that row of `dx` NaN.
fn check_nan<T: Scalar, M: LinearMap<T> + ?Sized>(
    m: &M,
    row: usize,
    col: usize,
    nan_at: &dyn Fn(usize) -> bool,
) {
    let (inp, out) = (m.in_features(), m.out_features());
    let batch = 19;
    let x = randn::<T>(batch, inp, 5);
    let clean = m.apply(x.view()).unwrap();
    let mut xn = x.clone();
    xn[(row, col)] = T::from_parts(f64::NAN, 0.0);
    let y = m.apply(xn.view()).unwrap();
    for i in 0..out {
        assert_eq!(is_nan(&y[(row, i)]), nan_at(i), "output ({row}, {i})");
        if !nan_at(i) {
            assert_eq!(y[(row, i)], clean[(row, i)]);
        }
    }
    for k in (0..batch).filter(|&k| k != row) {
        assert_eq!(y.row(k), clean.row(k), "row {k} must not see the NaN");
    }
    let mut yi = Array2::<T>::zeros((batch, out));
    m.apply_into(xn.view(), yi.view_mut()).unwrap();
    assert_eq!(
        yi.iter().filter(|v| is_nan(*v)).count(),
        y.iter().filter(|v| is_nan(*v)).count()
    );
    let mut dyn_ = randn::<T>(batch, out, 6);
    dyn_[(row, 0)] = T::from_parts(f64::NAN, 0.0);
    for r in [m.apply_transpose(dyn_.view()), m.apply_adjoint(dyn_.view())] {
        let xt = r.unwrap();
        assert_eq!(xt.dim(), (batch, inp));
        assert!(xt.row(row).iter().any(is_nan));
        for k in (0..batch).filter(|&k| k != row) {
            assert!(xt.row(k).iter().all(|v| !is_nan(v)));
        }
    }
}

fn check_nan_backward<T: Scalar, M: Differentiable<T>>(m: &M, row: usize, col: usize) {
    let (inp, out) = (m.in_features(), m.out_features());
    let batch = 19;
    let x = randn::<T>(batch, inp, 7);
    let dy = randn::<T>(batch, out, 8);
    let mut g = vec![T::zero(); m.params().len()];
    let dx_clean = m.backward(x.view(), dy.view(), &mut g).unwrap();
    let mut xn = x.clone();
    xn[(row, col)] = T::from_parts(f64::NAN, 0.0);
    let mut gn = vec![T::zero(); m.params().len()];
    let dx = m.backward(xn.view(), dy.view(), &mut gn).unwrap();
    assert_eq!(dx, dx_clean, "dx does not depend on x");
    assert!(
        gn.iter().any(is_nan),
        "a parameter gradient must see the NaN"
    );
    let mut dyn_ = dy.clone();
    dyn_[(row, 0)] = T::from_parts(f64::NAN, 0.0);
    let mut g2 = vec![T::zero(); m.params().len()];
    let dx = m.backward(x.view(), dyn_.view(), &mut g2).unwrap();
    assert!(dx.row(row).iter().any(is_nan));
    for k in (0..batch).filter(|&k| k != row) {
        assert_eq!(dx.row(k), dx_clean.row(k));
    }
}

fn nan_butterflies<T: Scalar>() {
    let mut r = rng(9);
    for &(inp, out, nblocks) in &[(5, 20, 2), (8, 8, 1), (13, 3, 3)] {
        for init in [Init::Randn, Init::Identity] {
            let b = Butterfly::<T>::new(inp, out, cfg(nblocks, init), &mut r).unwrap();
            // NaN·0 = NaN, so a NaN reaches every output of a full butterfly, even through
            // zero or identity twiddles.
            check_nan(&b, 16, inp - 1, &|_| true);
            check_nan(&b, 3, 0, &|_| true);
            check_nan_backward(&b, 17, inp / 2);
            let u = ButterflyUnitary::<T>::new(inp, out, cfg(nblocks, init), &mut r).unwrap();
            check_nan(&u, 16, inp - 1, &|_| true);
            check_nan_backward(&u, 2, 0);
        }
    }
    // A NaN parameter: no panic, NaN outputs.
    let mut b = Butterfly::<T>::new(8, 8, cfg(1, Init::Randn), &mut r).unwrap();
    b.params_mut()[0] = T::from_parts(f64::NAN, 0.0);
    let y = b.apply(randn::<T>(3, 8, 1).view()).unwrap();
    assert!(y.iter().any(is_nan));
    let mut u = ButterflyUnitary::<T>::new(8, 8, cfg(1, Init::Ortho), &mut r).unwrap();
    u.params_mut()[0] = T::from_parts(f64::NAN, 0.0);
    let y = u.apply(randn::<T>(3, 8, 1).view()).unwrap();
    assert!(y.iter().any(is_nan));
    let mut g = vec![T::zero(); u.num_params()];
    u.backward(
        randn::<T>(3, 8, 2).view(),
        randn::<T>(3, 8, 3).view(),
        &mut g,
    )
    .unwrap();
    assert!(g.iter().any(is_nan));
}

#[test]
fn nan_propagates_butterfly_family() {
    nan_butterflies::<f32>();
    nan_butterflies::<f64>();
    nan_butterflies::<C32>();
    nan_butterflies::<C64>();
}

#[test]
fn nan_propagates_fixed_maps() {
    let perm = vec![3, 0, 4, 1, 2];
    let p = Permutation::new(perm.clone()).unwrap();
    check_nan::<f64, _>(&p, 4, 1, &|i| perm[i] == 1);
    check_nan::<C64, _>(&p, 0, 4, &|i| perm[i] == 4);

    let d = Diagonal::new(vec![1.0, 0.0, -2.0, 3.0]).unwrap();
    check_nan(&d, 5, 2, &|i| i == 2);
    check_nan(&d, 5, 1, &|i| i == 1);
    check_nan_backward(&d, 1, 3);

    let fft = Butterfly::<C64>::fft(16, FftOptions::default()).unwrap();
    check_nan(&fft, 18, 7, &|_| true);

    let mut r = rng(4);
    let maps: Vec<BoxedMap<C64>> = vec![
        Box::new(Butterfly::<C64>::new(5, 8, cfg(1, Init::Randn), &mut r).unwrap()),
        Box::new(Permutation::bit_reversal(8).unwrap()),
        Box::new(Butterfly::<C64>::fft(8, FftOptions::default()).unwrap()),
    ];
    let chain = Chain::new(maps).unwrap();
    check_nan(&chain, 0, 4, &|_| true);

    let inner = Butterfly::<C64>::new(6, 9, cfg(2, Init::Randn), &mut r).unwrap();
    let re = RealPart::<f64>::new(Box::new(inner));
    check_nan(&re, 10, 5, &|_| true);
}
