mod common;
use common::*;
use kaleidoscope::{Dense, Differentiable, LinearMap, Scalar, C64};
use proptest::prelude::*;

fn check<T: Scalar>(inp: usize, out: usize, batch: usize, seed: u64) {
    let w = randn::<T>(out, inp, seed);
    let b: Vec<T> = randn::<T>(1, out, seed + 1).iter().copied().collect();
    let d = Dense::new(w.clone(), Some(b.clone())).unwrap();
    let x = randn::<T>(batch, inp, seed + 2);
    let mut want = matmul_xwt(x.view(), w.view());
    for mut r in want.rows_mut() {
        for (v, &bb) in r.iter_mut().zip(&b) {
            *v += bb;
        }
    }
    assert!(rel_err(d.apply(x.view()).unwrap().view(), want.view()) < 1e-12);
    // A transposed (non-contiguous) input view.
    let xt = x.t().to_owned();
    assert!(rel_err(d.apply(xt.t()).unwrap().view(), want.view()) < 1e-12);
    let y = randn::<T>(batch, out, seed + 3);
    let wt = w.t().to_owned();
    assert!(
        rel_err(
            d.apply_transpose(y.view()).unwrap().view(),
            matmul_xwt(y.view(), wt.view()).view()
        ) < 1e-12
    );
    let wh = conj_t(w.view());
    assert!(
        rel_err(
            d.apply_adjoint(y.view()).unwrap().view(),
            matmul_xwt(y.view(), wh.view()).view()
        ) < 1e-12
    );
    let mut g = vec![T::zero(); d.num_params()];
    let dx = d.backward(x.view(), y.view(), &mut g).unwrap();
    let (fdx, fdp) = finite_diff_grads(&d, &x, &y, 1e-6);
    assert!(rel_err(dx.view(), fdx.view()) < 1e-6);
    assert!(rel_err_vec(&g, &fdp) < 1e-6);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn dense_matches_reference(inp in 1usize..12, out in 1usize..12, batch in 0usize..20, seed in 0u64..1000) {
        check::<f64>(inp, out, batch, seed);
        check::<C64>(inp, out, batch, seed);
    }
}

#[test]
fn dense_rejects_bad_shapes() {
    let d = Dense::<f64>::new(ndarray::Array2::zeros((3, 4)), None).unwrap();
    assert!(matches!(
        d.apply(ndarray::Array2::zeros((2, 5)).view()),
        Err(kaleidoscope::Error::Shape { what: "x", .. })
    ));
    assert!(matches!(
        Dense::<f64>::new(ndarray::Array2::zeros((3, 4)), Some(vec![0.0; 2])),
        Err(kaleidoscope::Error::BufferLength {
            what: "bias",
            expected: 3,
            got: 2
        })
    ));
    assert!(matches!(
        Dense::<f64>::new(ndarray::Array2::zeros((0, 4)), None),
        Err(kaleidoscope::Error::Zero { .. })
    ));
}
