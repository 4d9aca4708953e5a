//! Every permutation as an exact Beneš butterfly (`Permutation::to_butterfly`).

mod common;
use common::*;
use kaleidoscope::{Butterfly, LinearMap, Permutation, C64};
use ndarray::Array2;
use proptest::prelude::*;
use rand::seq::SliceRandom;

fn random_perm(n: usize, seed: u64) -> Permutation {
    let mut v: Vec<usize> = (0..n).collect();
    v.shuffle(&mut rng(seed));
    Permutation::new(v).unwrap()
}

/// The dense permutation matrix from the gather vector, written out directly.
fn dense_perm(p: &Permutation) -> Array2<f64> {
    let n = p.len();
    Array2::from_shape_fn(
        (n, n),
        |(i, j)| {
            if p.as_slice()[i] == j {
                1.0
            } else {
                0.0
            }
        },
    )
}

/// Every check on one permutation: structure of the butterfly, exact dense equality (through
/// the factor-by-factor reference and the fast kernel), apply/transpose on a batch.
fn check(p: &Permutation, seed: u64) {
    let len = p.len();
    let b = p.to_butterfly::<f64>().unwrap();
    let n = len.next_power_of_two();
    let m = n.trailing_zeros() as usize;
    assert_eq!((b.in_features(), b.out_features(), b.n()), (len, len, n));
    assert_eq!((b.nblocks(), b.nstacks()), (2, 1));
    assert!(!b.increasing_stride());
    assert!(b.bias().is_none() && b.input_permutation().is_none());
    assert!(b.output_permutation().is_none());
    let tw = b.twiddle_view();
    for blk in 0..2 {
        for l in 0..m {
            for q in 0..n / 2 {
                let t = [
                    tw[(0, blk, l, q, 0, 0)],
                    tw[(0, blk, l, q, 0, 1)],
                    tw[(0, blk, l, q, 1, 0)],
                    tw[(0, blk, l, q, 1, 1)],
                ];
                assert!(
                    t == [1.0, 0.0, 0.0, 1.0] || t == [0.0, 1.0, 1.0, 0.0],
                    "block {t:?} is not a switch"
                );
                // 2m − 1 stages: the first block's stride-1 level never switches.
                if blk == 0 && l + 1 == m {
                    assert_eq!(t, [1.0, 0.0, 0.0, 1.0]);
                }
            }
        }
    }
    let want = dense_perm(p);
    assert_eq!(
        butterfly_dense_reference(&b),
        want,
        "perm {:?}",
        p.as_slice()
    );
    assert_eq!(b.to_dense(), want);
    let x = randn::<f64>(5, len, seed);
    let y = b.apply(x.view()).unwrap();
    let y_ref = LinearMap::<f64>::apply(p, x.view()).unwrap();
    assert_eq!(y, y_ref);
    let back = b.apply_transpose(y.view()).unwrap();
    assert_eq!(back, x);
}

#[test]
fn small_sizes_exhaustive() {
    // Every permutation of 1..=4 elements and of 5 (non-power of two, padded to 8).
    fn perms(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in perms(n - 1) {
            for pos in 0..n {
                let mut q = p.clone();
                q.insert(pos, n - 1);
                out.push(q);
            }
        }
        out
    }
    for n in 1..=5 {
        for v in perms(n) {
            check(&Permutation::new(v).unwrap(), 1);
        }
    }
}

#[test]
fn structured_permutations() {
    for n in [2, 4, 8, 64, 256] {
        check(&Permutation::bit_reversal(n).unwrap(), 2);
        check(&Permutation::identity(n).unwrap(), 3);
        let rev = Permutation::new((0..n).rev().collect()).unwrap();
        check(&rev, 4);
        let shift = Permutation::new((0..n).map(|i| (i + 1) % n).collect()).unwrap();
        check(&shift, 5);
    }
}

#[test]
fn complex_and_adjoint() {
    let p = random_perm(23, 7);
    let b = p.to_butterfly::<C64>().unwrap();
    let x = randn::<C64>(17, 23, 8);
    let y = b.apply(x.view()).unwrap();
    assert_eq!(y, LinearMap::<C64>::apply(&p, x.view()).unwrap());
    let inv = p.inverse();
    assert_eq!(
        b.apply_adjoint(x.view()).unwrap(),
        LinearMap::<C64>::apply(&inv, x.view()).unwrap()
    );
    // The butterfly of the inverse is the transpose.
    let bi: Butterfly<C64> = inv.to_butterfly().unwrap();
    assert_eq!(bi.to_dense(), b.to_dense().t().to_owned());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn permutation_butterflies_equal_their_permutation(len in 1usize..=100, seed in 0u64..1 << 32) {
        check(&random_perm(len, seed), seed + 1);
    }
}

#[test]
#[ignore = "large sizes; run with --ignored"]
fn large_random_permutations() {
    for (i, len) in [1000usize, 1024, 1500, 2048].into_iter().enumerate() {
        for s in 0..4 {
            let p = random_perm(len, 100 * i as u64 + s);
            let b = p.to_butterfly::<f64>().unwrap();
            let x = randn::<f64>(3, len, s);
            assert_eq!(
                b.apply(x.view()).unwrap(),
                LinearMap::<f64>::apply(&p, x.view()).unwrap()
            );
            assert_eq!(b.to_dense(), dense_perm(&p));
        }
    }
}
