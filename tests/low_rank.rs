mod common;
use common::*;
use kaleidoscope::{
    Differentiable, Error, LinearMap, LowRank, PixelatedButterfly, PixelflyConfig, Scalar, C64,
};
use ndarray::Array2;
use proptest::prelude::*;

fn with_random_bias<T: Scalar, M: Differentiable<T>>(m: &mut M, out: usize, seed: u64) {
    let n = m.params().len();
    let mut r = rng(seed);
    for v in &mut m.params_mut()[n - out..] {
        *v = T::randn(&mut r, 1.0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20))]
    #[test]
    fn low_rank_matches_dense(inp in 1usize..9, out in 1usize..9, rank_frac in 0.0f64..1.0, batch in 0usize..6, seed in 0u64..1000) {
        let rank = 1 + ((inp.min(out) - 1) as f64 * rank_frac) as usize;
        let mut r = rng(seed);
        let mut m = LowRank::<C64>::random(inp, out, rank, true, &mut r).unwrap();
        with_random_bias(&mut m, out, seed);
        let d = matmul_xwt(m.u(), m.v());
        check_map(&m, &d, m.bias().map(|b| b.to_vec()).as_deref(), batch, seed);
        let m = LowRank::<f64>::random(inp, out, rank, false, &mut r).unwrap();
        let d = matmul_xwt(m.u(), m.v());
        check_map(&m, &d, None, batch, seed);
    }

    #[test]
    fn pixelfly_matches_dense(log_nb in 0u32..4, ib in 1usize..4, ob in 1usize..4, lv in 0usize..4, rank in 0usize..3, bias in any::<bool>(), batch in 0usize..5, seed in 0u64..1000) {
        let nb = 1usize << log_nb;
        let levels = lv.min(log_nb as usize);
        let (inp, out) = (nb * ib, nb * ob);
        let rank = rank.min(inp.min(out));
        let cfg = PixelflyConfig { nblocks: nb, levels, rank, bias };
        let mut r = rng(seed);
        let mut m = PixelatedButterfly::<C64>::random(inp, out, cfg, &mut r).unwrap();
        if bias {
            with_random_bias(&mut m, out, seed);
        }
        // Reference: rebuild from the documented parameter layout.
        let p = m.params().to_vec();
        let mut d = Array2::<C64>::zeros((out, inp));
        let mut off = 0;
        for i in 0..nb {
            let mut cols: Vec<usize> = (0..nb).filter(|&j| j == i || ((i ^ j).is_power_of_two() && (i ^ j) < (1 << levels))).collect();
            cols.sort();
            prop_assert_eq!(&cols, &m.pattern()[i]);
            for j in cols {
                for a in 0..ob {
                    for b in 0..ib {
                        d[(i * ob + a, j * ib + b)] += p[off + a * ib + b];
                    }
                }
                off += ib * ob;
            }
        }
        let u = Array2::from_shape_vec((out, rank), p[off..off + out * rank].to_vec()).unwrap();
        off += out * rank;
        let v = Array2::from_shape_vec((inp, rank), p[off..off + inp * rank].to_vec()).unwrap();
        d += &matmul_xwt(u.view(), v.view());
        check_map(&m, &d, m.bias().map(|b| b.to_vec()).as_deref(), batch, seed);
    }
}

#[test]
fn low_rank_projection_is_truncated_svd() {
    let target = randn::<f64>(12, 9, 3);
    let mut last = f64::INFINITY;
    for rank in 1..=9 {
        let (m, err) = LowRank::project(target.view(), rank).unwrap();
        let d = m.to_dense();
        let direct = d
            .iter()
            .zip(target.iter())
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(
            (direct - err).abs() < 1e-10,
            "reported {err}, actual {direct}"
        );
        assert!(err <= last + 1e-12);
        last = err;
    }
    assert!(last < 1e-10);
    // A rank-2 matrix is recovered exactly at rank 2.
    let m = LowRank::<C64>::random(7, 5, 2, false, &mut rng(4)).unwrap();
    let (p, err) = LowRank::project(m.to_dense().view(), 2).unwrap();
    assert!(err < 1e-10 && rel_err(p.to_dense().view(), m.to_dense().view()) < 1e-10);
}

#[test]
fn bad_ranks_and_blocks_are_typed_errors() {
    let mut r = rng(0);
    assert!(matches!(
        LowRank::<f64>::random(4, 3, 0, false, &mut r),
        Err(Error::InvalidArgument { what: "rank", .. })
    ));
    assert!(matches!(
        LowRank::<f64>::random(4, 3, 4, false, &mut r),
        Err(Error::InvalidArgument { what: "rank", .. })
    ));
    assert!(matches!(
        LowRank::<f64>::project(Array2::zeros((3, 3)).view(), 5),
        Err(Error::InvalidArgument { what: "rank", .. })
    ));
    let cfg = PixelflyConfig {
        nblocks: 3,
        levels: 0,
        rank: 0,
        bias: false,
    };
    assert!(matches!(
        PixelatedButterfly::<f64>::random(6, 6, cfg, &mut r),
        Err(Error::NotPowerOfTwo {
            what: "nblocks",
            ..
        })
    ));
    let cfg = PixelflyConfig {
        nblocks: 4,
        levels: 3,
        rank: 0,
        bias: false,
    };
    assert!(matches!(
        PixelatedButterfly::<f64>::random(8, 8, cfg, &mut r),
        Err(Error::InvalidArgument { what: "levels", .. })
    ));
    let cfg = PixelflyConfig {
        nblocks: 4,
        levels: 1,
        rank: 0,
        bias: false,
    };
    assert!(matches!(
        PixelatedButterfly::<f64>::random(6, 8, cfg, &mut r),
        Err(Error::InvalidArgument {
            what: "in_features",
            ..
        })
    ));
}

#[test]
fn pixelfly_projection_is_consistent_and_improves_with_iterations() {
    let cfg = PixelflyConfig {
        nblocks: 8,
        levels: 2,
        rank: 3,
        bias: false,
    };
    // Exact on a sparse-only Pixelated Butterfly.
    let sparse_only = PixelflyConfig { rank: 0, ..cfg };
    let m = PixelatedButterfly::<f64>::random(32, 24, sparse_only, &mut rng(1)).unwrap();
    let (p, err) = PixelatedButterfly::project(m.to_dense().view(), sparse_only, 1).unwrap();
    assert!(err < 1e-12 && rel_err(p.to_dense().view(), m.to_dense().view()) < 1e-12);
    // On a random target: the reported error is the real one and does not grow with iterations.
    let target = randn::<f64>(24, 32, 2);
    let mut last = f64::INFINITY;
    for iters in [1, 2, 5, 20] {
        let (p, err) = PixelatedButterfly::project(target.view(), cfg, iters).unwrap();
        let d = p.to_dense();
        let direct = d
            .iter()
            .zip(target.iter())
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(
            (direct - err).abs() < 1e-9 * direct.max(1.0),
            "reported {err}, actual {direct}"
        );
        assert!(err <= last + 1e-9, "{iters} iterations: {err} > {last}");
        last = err;
    }
}
