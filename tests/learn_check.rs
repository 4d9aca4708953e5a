//! The exact butterfly-structure test that scores hardening candidates
//! (`learn::butterfly_residual`) and the `ButterflyProduct` helpers the checked recipe uses.
//! Reachable matrices are built as dense products of a random butterfly (the independent
//! factor-by-factor reference) and a permutation matrix.

mod common;

use kaleidoscope::learn::{butterfly_residual, ButterflyProduct, LogitSharing, Structure};
use kaleidoscope::{Butterfly, ButterflyConfig, Differentiable, Init, Permutation, C64};
use ndarray::Array2;
use rand::seq::SliceRandom;

/// The dense `B Q` for the gather `q` (`(Qx)_i = x_{q[i]}`): column `q[i]` of `B Q` is column
/// `i` of `B`.
fn times_perm(b: &Array2<C64>, q: &Permutation) -> Array2<C64> {
    let mut out = Array2::zeros(b.dim());
    for (i, &j) in q.as_slice().iter().enumerate() {
        out.column_mut(j).assign(&b.column(i));
    }
    out
}

fn random_butterfly(n: usize, seed: u64) -> Array2<C64> {
    let cfg = ButterflyConfig {
        nblocks: 1,
        increasing_stride: true,
        init: Init::Randn,
        bias: false,
    };
    let b = Butterfly::<C64>::new(n, n, cfg, &mut common::rng(seed)).unwrap();
    common::butterfly_dense_reference(&b)
}

fn random_perm(n: usize, seed: u64) -> Permutation {
    let mut p: Vec<usize> = (0..n).collect();
    p.shuffle(&mut common::rng(seed));
    Permutation::new(p).unwrap()
}

fn dft(n: usize) -> Array2<C64> {
    common::unitary_dft(n)
}

fn dct2(n: usize) -> Array2<C64> {
    common::orthonormal_dct2(n).mapv(|v| C64::new(v, 0.0))
}

#[test]
fn residual_vanishes_exactly_on_butterfly_times_permutation() {
    for n in [8usize, 16, 32] {
        for seed in 0..4 {
            let b = random_butterfly(n, seed);
            let q = random_perm(n, 100 + seed);
            let m = times_perm(&b, &q);
            let right = butterfly_residual(m.view(), &q, false).unwrap();
            assert!(right <= 1e-7, "n={n} seed={seed}: residual {right}");
            // The real part of a complex butterfly product passes the real-part test.
            let re = m.mapv(|z| C64::new(z.re, 0.0));
            let right_re = butterfly_residual(re.view(), &q, true).unwrap();
            assert!(
                right_re <= 1e-7,
                "n={n} seed={seed}: real-part residual {right_re}"
            );
            let wrong = butterfly_residual(m.view(), &random_perm(n, 200 + seed), false).unwrap();
            assert!(
                wrong >= 1e-3,
                "n={n} seed={seed}: wrong permutation passes ({wrong})"
            );
        }
    }
}

#[test]
fn residual_identifies_the_fft_and_dct_orderings() {
    for n in [8usize, 16, 32, 64] {
        let br = Permutation::bit_reversal(n).unwrap();
        let id = Permutation::new((0..n).collect()).unwrap();
        assert!(butterfly_residual(dft(n).view(), &br, false).unwrap() <= 1e-7);
        assert!(butterfly_residual(dft(n).view(), &id, false).unwrap() >= 0.1);
    }
    for n in [16usize, 32] {
        // DCT-II = Re(D F P_dct) (Makhoul): even samples, then odd ones reversed, then the
        // FFT's bit reversal.
        let mut pd: Vec<usize> = (0..n).step_by(2).collect();
        pd.extend((1..n).step_by(2).rev());
        let q: Vec<usize> = Permutation::bit_reversal(n)
            .unwrap()
            .as_slice()
            .iter()
            .map(|&i| pd[i])
            .collect();
        let q = Permutation::new(q).unwrap();
        let br = Permutation::bit_reversal(n).unwrap();
        let c = dct2(n);
        assert!(butterfly_residual(c.view(), &q, true).unwrap() <= 1e-6);
        assert!(butterfly_residual(c.view(), &br, true).unwrap() >= 0.1);
        // Not a complex butterfly product: only its real part is reachable.
        assert!(butterfly_residual(c.view(), &q, false).unwrap() >= 0.1);
    }
}

#[test]
fn residual_rejects_bad_shapes() {
    let t = Array2::<C64>::zeros((8, 4));
    assert!(butterfly_residual(t.view(), &Permutation::bit_reversal(8).unwrap(), false).is_err());
    let t = Array2::<C64>::zeros((8, 8));
    assert!(butterfly_residual(t.view(), &Permutation::bit_reversal(4).unwrap(), false).is_err());
}

#[test]
fn rounded_permutation_is_the_composite_of_the_hardened_factors() {
    for structure in [Structure::Bp, Structure::Bpp] {
        for seed in 0..4 {
            let n = 16;
            let mut m = ButterflyProduct::<C64>::new(
                n,
                structure,
                Init::Randn,
                LogitSharing::PerLevel,
                &mut common::rng(seed),
            )
            .unwrap();
            let q = m.rounded_permutation(m.params()).unwrap();
            m.harden();
            let mut composite: Vec<usize> = (0..n).collect();
            for p in m.permutations() {
                composite = p.as_slice().iter().map(|&i| composite[i]).collect();
            }
            assert_eq!(q.as_slice(), &composite[..]);
            // The dense product is the butterfly factor times Q.
            let factors = m.factors();
            let Some(kaleidoscope::learn::Factor::Butterfly(b)) = factors.last() else {
                panic!("last factor is the butterfly");
            };
            let expect = times_perm(&common::butterfly_dense_reference(b), &q);
            let got = kaleidoscope::LinearMap::to_dense(&m);
            assert!(common::rel_err(got.view(), expect.view()) <= 1e-12);
        }
    }
    let m = ButterflyProduct::<C64>::new(
        8,
        Structure::Bpbp,
        Init::Randn,
        LogitSharing::Shared,
        &mut common::rng(0),
    )
    .unwrap();
    assert!(m.rounded_permutation(m.params()).is_none());
}

#[test]
fn randomize_twiddles_keeps_the_permutations() {
    let mut m = ButterflyProduct::<C64>::new(
        16,
        Structure::Bpp,
        Init::Randn,
        LogitSharing::PerLevel,
        &mut common::rng(3),
    )
    .unwrap();
    m.harden();
    let before = m.params().to_vec();
    let perms = m.permutations();
    m.randomize_twiddles(Init::Randn, &mut common::rng(9))
        .unwrap();
    assert!(m.is_hard());
    assert_eq!(m.permutations(), perms);
    let mask = m.logit_mask();
    let mut changed = 0;
    for ((a, b), &is_logit) in before.iter().zip(m.params()).zip(&mask) {
        if is_logit {
            assert_eq!(a, b);
        } else if a != b {
            changed += 1;
        }
    }
    assert_eq!(changed, mask.iter().filter(|&&l| !l).count());
}
