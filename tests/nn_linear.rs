//! `nn::Linear` over every structure: forward against `x Wᵀ + b`, gradients against central
//! finite differences (f64), initialisation scale, projection from dense layers, expansion to
//! dense, safetensors round trips and bad input.

mod common;

use common::{finite_diff_grads, matmul_xwt, randn, rel_err, rel_err_vec, rng};
use kaleidoscope::learn::FitOptions;
use kaleidoscope::nn::{Linear, LinearInit, Structure, TensorStore};
use kaleidoscope::{Differentiable, Error, LdrClass, LinearMap, Scalar, C64};
use ndarray::Array2;
use proptest::prelude::*;

/// Every structure, with sizes it accepts (in, out).
fn cases() -> Vec<(Structure, usize, usize)> {
    vec![
        (Structure::Dense, 6, 5),
        (Structure::Monarch { nblocks: 2 }, 8, 12),
        (Structure::Monarch { nblocks: 4 }, 16, 8),
        (Structure::BlockDiagonal { nblocks: 3 }, 6, 9),
        (Structure::Butterfly { nblocks: 2 }, 6, 10),
        (Structure::LowRank { rank: 2 }, 7, 5),
        (
            Structure::PixelatedButterfly {
                nblocks: 4,
                levels: 2,
                rank: 1,
            },
            8,
            8,
        ),
        (
            Structure::Ldr {
                class: LdrClass::ToeplitzLike { corner: true },
                rank: 2,
            },
            6,
            6,
        ),
        (
            Structure::Ldr {
                class: LdrClass::Subdiagonal {
                    corner: true,
                    tied: false,
                },
                rank: 1,
            },
            5,
            4,
        ),
    ]
}

fn layer<T: Scalar>(s: Structure, i: usize, o: usize, seed: u64) -> Linear<T> {
    let mut l = Linear::<T>::new(i, o, s, true, LinearInit::Default, &mut rng(seed)).unwrap();
    // A non-zero bias, so that the bias path is exercised.
    let n = l.params().len();
    for (k, p) in l.params_mut()[n - o..].iter_mut().enumerate() {
        *p = T::from_f64(0.1 * k as f64 - 0.2);
    }
    l
}

#[test]
fn forward_is_x_wt_plus_b() {
    for (s, i, o) in cases() {
        let l = layer::<f64>(s, i, o, 1);
        let x = randn::<f64>(5, i, 2);
        let y = l.apply(x.view()).unwrap();
        let mut want = matmul_xwt(x.view(), l.weight().view());
        for mut row in want.rows_mut() {
            for (v, b) in row.iter_mut().zip(l.bias().unwrap()) {
                *v += b;
            }
        }
        assert!(rel_err(y.view(), want.view()) < 1e-12, "{s}");
        assert_eq!(l.structure(), s);
        assert_eq!(l.num_params(), l.params().len());
    }
}

#[test]
fn gradients_match_finite_differences() {
    for (s, i, o) in cases() {
        let l = layer::<f64>(s, i, o, 3);
        let x = randn::<f64>(3, i, 4);
        let c = randn::<f64>(3, o, 5);
        let mut g = vec![0.0; l.params().len()];
        let dx = l.backward(x.view(), c.view(), &mut g).unwrap();
        let (fdx, fdp) = finite_diff_grads(&l, &x, &c, 1e-6);
        assert!(rel_err(dx.view(), fdx.view()) < 1e-7, "{s}: dx");
        assert!(rel_err_vec(&g, &fdp) < 1e-6, "{s}: dθ");
    }
}

#[test]
fn complex_layers_have_conjugate_gradients() {
    let l = layer::<C64>(Structure::Monarch { nblocks: 2 }, 4, 6, 6);
    let x = randn::<C64>(2, 4, 7);
    let c = randn::<C64>(2, 6, 8);
    let mut g = vec![C64::new(0.0, 0.0); l.params().len()];
    let dx = l.backward(x.view(), c.view(), &mut g).unwrap();
    let (fdx, fdp) = finite_diff_grads(&l, &x, &c, 1e-6);
    assert!(rel_err(dx.view(), fdx.view()) < 1e-7);
    assert!(rel_err_vec(&g, &fdp) < 1e-6);
}

#[test]
fn tensor_specs_partition_the_parameters() {
    for (s, i, o) in cases() {
        let l = layer::<f32>(s, i, o, 9);
        let specs = l.tensor_specs();
        let mut at = 0;
        for spec in &specs {
            assert_eq!(spec.range.start, at, "{s}: {}", spec.name);
            assert_eq!(spec.range.len(), spec.shape.iter().product::<usize>());
            at = spec.range.end;
        }
        assert_eq!(at, l.params().len(), "{s}");
        assert_eq!(specs.last().unwrap().name, "bias");
        let mask = l.decay_mask();
        assert!(
            mask[l.params().len() - o..].iter().all(|&m| !m),
            "{s}: bias decayed"
        );
        assert_eq!(
            l.num_weight_params(),
            l.params().len() - o,
            "{s}: weight count"
        );
    }
}

/// ‖W‖_F² = out·in·σ² for every structured layer (dense layers: in expectation).
#[test]
fn init_matches_the_dense_frobenius_norm() {
    for (s, i, o) in cases() {
        for init in [LinearInit::Default, LinearInit::Normal { std: 0.02 }] {
            let l = Linear::<f64>::new(i, o, s, false, init, &mut rng(11)).unwrap();
            let fro2: f64 = l.weight().iter().map(|v| v * v).sum();
            let want = (i * o) as f64 * init.entry_variance(i);
            if s.is_dense() {
                continue;
            }
            assert!(
                (fro2 / want - 1.0).abs() < 1e-9,
                "{s} {init:?}: {fro2} vs {want}"
            );
        }
    }
    // Dense: the sample mean of 100·100 entries is within a few percent of σ².
    for init in [LinearInit::Default, LinearInit::Normal { std: 0.02 }] {
        let l = Linear::<f64>::new(100, 100, Structure::Dense, false, init, &mut rng(12)).unwrap();
        let var = l.weight().iter().map(|v| v * v).sum::<f64>() / 1e4;
        assert!(
            (var / init.entry_variance(100) - 1.0).abs() < 0.05,
            "{init:?}"
        );
    }
}

#[test]
fn to_dense_keeps_the_map() {
    for (s, i, o) in cases() {
        let l = layer::<f64>(s, i, o, 13);
        let d = l.to_dense();
        assert_eq!(d.structure(), Structure::Dense);
        assert_eq!(d.params().len(), i * o + o);
        let x = randn::<f64>(4, i, 14);
        let (a, b) = (l.apply(x.view()).unwrap(), d.apply(x.view()).unwrap());
        assert!(rel_err(a.view(), b.view()) < 1e-12, "{s}");
    }
}

/// Projecting the dense matrix of a layer of the same structure recovers it (closed forms), and
/// the reported error is `‖Ŵ − W‖_F / ‖W‖_F` of the returned layer.
#[test]
fn from_dense_recovers_structured_matrices() {
    for (s, i, o) in [
        (Structure::Dense, 5, 4),
        (Structure::Monarch { nblocks: 4 }, 16, 16),
        (Structure::Monarch { nblocks: 2 }, 8, 12),
        (Structure::BlockDiagonal { nblocks: 2 }, 6, 4),
        (Structure::LowRank { rank: 3 }, 9, 7),
    ] {
        let src = layer::<f64>(s, i, o, 15);
        let w = src.weight();
        let back = Linear::from_dense(w.view(), src.bias(), s).unwrap();
        assert!(rel_err(back.weight().view(), w.view()) < 1e-9, "{s}");
        assert_eq!(back.bias(), src.bias());
        let (_, err) = Linear::project(w.view(), None, s, &FitOptions::default()).unwrap();
        assert!(err < 1e-9, "{s}: {err}");
    }
}

/// A random dense matrix projected onto each structure: the returned error is the true
/// relative Frobenius error, and for the closed forms it is no worse than a random layer of
/// the same structure scaled optimally.
#[test]
fn projection_error_is_reported_and_optimal_among_samples() {
    let w = randn::<f64>(8, 8, 16);
    let wn = w.iter().map(|v| v * v).sum::<f64>().sqrt();
    for s in [
        Structure::Monarch { nblocks: 2 },
        Structure::BlockDiagonal { nblocks: 2 },
        Structure::LowRank { rank: 2 },
        Structure::PixelatedButterfly {
            nblocks: 4,
            levels: 1,
            rank: 1,
        },
    ] {
        let (l, err) = Linear::project(w.view(), None, s, &FitOptions::default()).unwrap();
        let true_err = (&l.weight() - &w).iter().map(|v| v * v).sum::<f64>().sqrt() / wn;
        assert!((err - true_err).abs() < 1e-12, "{s}");
        assert!(err > 0.0 && err < 1.0, "{s}: {err}");
        for seed in 0..5 {
            let r = Linear::<f64>::new(8, 8, s, false, LinearInit::Default, &mut rng(seed))
                .unwrap()
                .weight();
            // The best multiple of a random layer: error √(1 − ⟨r, w⟩²/(‖r‖²‖w‖²)).
            let dot: f64 = r.iter().zip(w.iter()).map(|(a, b)| a * b).sum();
            let rn2: f64 = r.iter().map(|v| v * v).sum();
            let sample_err = (1.0 - dot * dot / (rn2 * wn * wn)).sqrt();
            assert!(err <= sample_err + 1e-12, "{s}: {err} > {sample_err}");
        }
    }
}

/// Butterfly and LDR have no closed form: `project` fits them; a target of the same structure
/// is approached far below the error of the zero matrix.
#[test]
fn fitted_projections_approach_their_targets() {
    let opts = FitOptions {
        steps: 1500,
        lr: 2e-2,
        ..FitOptions::default()
    };
    for (s, i, o) in [
        (Structure::Butterfly { nblocks: 1 }, 8, 8),
        (
            Structure::Ldr {
                class: LdrClass::ToeplitzLike { corner: true },
                rank: 2,
            },
            8,
            8,
        ),
    ] {
        let target = Linear::<f64>::new(i, o, s, false, LinearInit::Default, &mut rng(21))
            .unwrap()
            .weight();
        let (l, err) = Linear::project(target.view(), None, s, &opts).unwrap();
        assert_eq!(l.structure(), s);
        assert!(err < 0.05, "{s}: relative error {err}");
    }
}

#[test]
fn safetensors_round_trip_every_structure() {
    let dir = std::env::temp_dir().join(format!("kal_nn_linear_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (k, (s, i, o)) in cases().into_iter().enumerate() {
        let l = layer::<f32>(s, i, o, 30 + k as u64);
        let path = dir.join(format!("layer{k}.safetensors"));
        l.save(&path).unwrap();
        let back = Linear::<f32>::load(&path).unwrap();
        assert_eq!(back, l, "{s}");
        // f32 checkpoints load into f64 layers with the same values.
        let wide = Linear::<f64>::load(&path).unwrap();
        let narrow: Vec<f64> = l.params().iter().map(|&v| v as f64).collect();
        assert_eq!(wide.params(), &narrow[..]);
        // The file is plain safetensors with the documented names and shapes.
        let store = TensorStore::load(&path).unwrap();
        for spec in l.tensor_specs() {
            assert_eq!(store.shape(spec.name), Some(&spec.shape[..]), "{s}");
        }
        assert_eq!(store.metadata("structure"), Some(s.to_string().as_str()));
    }
    // Complex layers get a trailing dimension 2, as torch.view_as_real.
    let c = layer::<C64>(Structure::LowRank { rank: 2 }, 4, 3, 40);
    let mut store = TensorStore::new();
    c.save_to(&mut store, "lin").unwrap();
    assert_eq!(store.shape("lin.u"), Some(&[3usize, 2, 2][..]));
    let bytes = store.to_bytes().unwrap();
    let back = Linear::<C64>::load_from(&TensorStore::from_bytes(&bytes).unwrap(), "lin").unwrap();
    assert_eq!(back, c);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_gets_typed_errors() {
    let mut r = rng(0);
    let new = |i, o, s, r: &mut _| Linear::<f32>::new(i, o, s, true, LinearInit::Default, r);
    // nblocks not dividing a width.
    match new(6, 8, Structure::Monarch { nblocks: 4 }, &mut r) {
        Err(Error::InvalidArgument { what, message }) => {
            assert_eq!(what, "nblocks");
            assert!(message.contains("in_features = 6"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        new(8, 6, Structure::BlockDiagonal { nblocks: 4 }, &mut r),
        Err(Error::InvalidArgument {
            what: "nblocks",
            ..
        })
    ));
    assert!(matches!(
        new(8, 8, Structure::Monarch { nblocks: 0 }, &mut r),
        Err(Error::Zero { what: "nblocks" })
    ));
    assert!(matches!(
        new(8, 6, Structure::LowRank { rank: 7 }, &mut r),
        Err(Error::InvalidArgument { what: "rank", .. })
    ));
    assert!(matches!(
        new(0, 6, Structure::Dense, &mut r),
        Err(Error::Zero {
            what: "in_features"
        })
    ));
    assert!(matches!(
        Linear::<f32>::new(
            4,
            4,
            Structure::Dense,
            true,
            LinearInit::Normal { std: f64::NAN },
            &mut r
        ),
        Err(Error::InvalidArgument {
            what: "init std",
            ..
        })
    ));
    // Shapes of inputs, gradients and dense weights.
    let l = new(8, 8, Structure::Monarch { nblocks: 2 }, &mut r).unwrap();
    assert!(matches!(
        l.apply(Array2::zeros((2, 7)).view()),
        Err(Error::Shape { what: "x", .. })
    ));
    let mut g = vec![0.0f32; 3];
    assert!(matches!(
        l.backward(
            Array2::zeros((2, 8)).view(),
            Array2::zeros((2, 8)).view(),
            &mut g
        ),
        Err(Error::BufferLength { what: "grads", .. })
    ));
    assert!(matches!(
        Linear::<f32>::from_dense(
            Array2::zeros((8, 8)).view(),
            Some(&[0.0; 3]),
            Structure::Dense
        ),
        Err(Error::BufferLength { what: "bias", .. })
    ));
    assert!(matches!(
        Linear::<f32>::from_params(8, 8, Structure::Dense, false, &[0.0; 5]),
        Err(Error::BufferLength { what: "params", .. })
    ));
    // Checkpoints: missing file, not safetensors, missing tensor, wrong shape.
    let dir = std::env::temp_dir().join(format!("kal_nn_bad_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(matches!(
        Linear::<f32>::load(dir.join("missing.safetensors")),
        Err(Error::Io { .. })
    ));
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    assert!(matches!(Linear::<f32>::load(&junk), Err(Error::Io { .. })));
    let mut store = TensorStore::new();
    l.save_to(&mut store, "a").unwrap();
    let mut wrong = store.clone();
    wrong
        .insert("a.blkdiag1", &[2, 4, 3], &[0.0f32; 24])
        .unwrap();
    match Linear::<f32>::load_from(&wrong, "a") {
        Err(Error::Shape { what, expected, .. }) => {
            assert_eq!(what, "checkpoint tensor");
            assert!(expected.contains("a.blkdiag1"), "{expected}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Linear::<f32>::load_from(&store, "b"),
        Err(Error::InvalidArgument {
            what: "checkpoint",
            ..
        })
    ));
    let mut partial = TensorStore::new();
    partial.set_metadata("a.structure", "monarch:2");
    partial.set_metadata("a.features", "8,8,1");
    assert!(matches!(
        Linear::<f32>::load_from(&partial, "a"),
        Err(Error::InvalidArgument {
            what: "checkpoint",
            ..
        })
    ));
    // Saving into a folder that does not exist fails cleanly and leaves nothing behind.
    let nowhere = dir.join("no/such/dir/x.safetensors");
    assert!(matches!(l.save(&nowhere), Err(Error::Io { .. })));
    assert!(!nowhere.exists());
    std::fs::remove_dir_all(&dir).unwrap();
    // Structure spellings.
    for bad in [
        "",
        "monarch",
        "monarch:x",
        "lowrank:1:2",
        "ldr:foo:2",
        "sparse:3",
    ] {
        assert!(bad.parse::<Structure>().is_err(), "{bad}");
    }
}

fn structure_strategy() -> impl Strategy<Value = Structure> {
    prop_oneof![
        Just(Structure::Dense),
        (1usize..9).prop_map(|nblocks| Structure::Monarch { nblocks }),
        (1usize..9).prop_map(|nblocks| Structure::BlockDiagonal { nblocks }),
        (1usize..4).prop_map(|nblocks| Structure::Butterfly { nblocks }),
        (1usize..9).prop_map(|rank| Structure::LowRank { rank }),
        (0u32..4, 0usize..4, 0usize..5).prop_map(|(e, l, rank)| Structure::PixelatedButterfly {
            nblocks: 1 << e,
            levels: l.min(e as usize),
            rank
        }),
        (1usize..5).prop_map(|rank| Structure::Ldr {
            class: LdrClass::HankelLike { corner: false },
            rank
        }),
        (1usize..5).prop_map(|rank| Structure::Ldr {
            class: LdrClass::Tridiagonal {
                corners: true,
                tied: true
            },
            rank
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Display and FromStr are inverse.
    #[test]
    fn structure_spelling_round_trips(s in structure_strategy()) {
        prop_assert_eq!(s.to_string().parse::<Structure>().unwrap(), s);
    }

    /// Random structures and sizes: either a typed error from `validate`, or a layer whose
    /// forward is `x Wᵀ + b` and whose store round trip is exact.
    #[test]
    fn random_layers_forward_and_round_trip(
        s in structure_strategy(),
        i in 1usize..13,
        o in 1usize..13,
        seed in 0u64..1000,
    ) {
        match Linear::<f64>::new(i, o, s, true, LinearInit::Default, &mut rng(seed)) {
            Err(e) => prop_assert!(s.validate(i, o).is_err(), "{s} {i}→{o}: {e}"),
            Ok(l) => {
                let x = randn::<f64>(3, i, seed + 1);
                let y = l.apply(x.view()).unwrap();
                let want = matmul_xwt(x.view(), l.weight().view());
                prop_assert!(rel_err(y.view(), want.view()) < 1e-12);
                let mut store = TensorStore::new();
                l.save_to(&mut store, "p").unwrap();
                let back = Linear::<f64>::load_from(
                    &TensorStore::from_bytes(&store.to_bytes().unwrap()).unwrap(), "p").unwrap();
                prop_assert_eq!(back, l);
            }
        }
    }
}
