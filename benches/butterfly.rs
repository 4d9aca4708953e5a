//! The butterfly multiply against its baselines, each pair in one criterion group so that a
//! ratio comes from one run:
//!
//! - `multiply_f32`, `multiply_c32`: `y = x Bᵀ` by a butterfly (one block, no bias) against faer's
//!   dense GEMM `y = x Wᵀ` of the same shape, batch 256, n = 256 … 8192, all threads (rayon's
//!   global pool for the butterfly, `Par::rayon(0)` for faer).
//! - `fft_1024_one_thread`: the exact-FFT butterfly (`Butterfly::fft`, bit reversal included)
//!   against rustfft's planned FFT, 256 rows of 1024 points, both on one thread.
//!
//! `cargo bench --bench butterfly` runs everything in a few minutes;
//! `KALEIDOSCOPE_BENCH_QUICK=1` keeps n ≤ 1024 with short measurements (a smoke run), and
//! `cargo test --benches` runs every case once.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode};
use kaleidoscope::butterfly::special::FftOptions;
use kaleidoscope::{Butterfly, ButterflyConfig, LinearMap, Scalar, C32};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rustfft::FftPlanner;
use std::hint::black_box;
use std::time::Duration;

const BATCH: usize = 256;

fn quick() -> bool {
    std::env::var_os("KALEIDOSCOPE_BENCH_QUICK").is_some()
}

fn sizes() -> Vec<usize> {
    if quick() {
        vec![256, 1024]
    } else {
        vec![256, 512, 1024, 2048, 4096, 8192]
    }
}

fn times(c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    if quick() {
        c.warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(300));
    } else {
        c.warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
    }
    c.sample_size(10).sampling_mode(SamplingMode::Flat);
}

fn randn<T: Scalar>(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<T> {
    Array2::from_shape_simple_fn((rows, cols), || T::randn(rng, 1.0))
}

fn multiply<T: Scalar>(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("multiply_{}", T::NAME));
    times(&mut group);
    let mut rng = StdRng::seed_from_u64(7);
    for n in sizes() {
        let cfg = ButterflyConfig {
            bias: false,
            ..ButterflyConfig::default()
        };
        let b = Butterfly::<T>::new(n, n, cfg, &mut rng).expect("butterfly");
        let x = randn::<T>(BATCH, n, &mut rng);
        let mut y = Array2::<T>::zeros((BATCH, n));
        group.bench_with_input(BenchmarkId::new("butterfly", n), &n, |bench, _| {
            bench.iter(|| {
                b.apply_into(black_box(x.view()), y.view_mut())
                    .expect("apply")
            })
        });
        let w = randn::<T>(n, n, &mut rng);
        let (xs, ws) = (x.as_slice().expect("x"), w.as_slice().expect("w"));
        group.bench_with_input(BenchmarkId::new("faer_gemm", n), &n, |bench, _| {
            bench.iter(|| {
                let lhs = faer::MatRef::from_row_major_slice(black_box(xs), BATCH, n);
                let rhs = faer::MatRef::from_row_major_slice(ws, n, n).transpose();
                let ys = y.as_slice_mut().expect("y");
                let dst = faer::MatMut::from_row_major_slice_mut(ys, BATCH, n);
                T::gemm(dst, lhs, false, rhs, false, false, faer::Par::rayon(0));
            })
        });
    }
    group.finish();
}

fn fft_one_thread(c: &mut Criterion) {
    let n = 1024;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool");
    let mut group = c.benchmark_group("fft_1024_one_thread");
    times(&mut group);
    let mut rng = StdRng::seed_from_u64(8);
    let x = randn::<C32>(BATCH, n, &mut rng);
    let b = Butterfly::<C32>::fft(n, FftOptions::default()).expect("fft");
    let mut y = Array2::<C32>::zeros((BATCH, n));
    group.bench_function(BenchmarkId::new("butterfly_fft", n), |bench| {
        pool.install(|| bench.iter(|| b.apply_into(black_box(x.view()), y.view_mut())))
    });
    let fft = FftPlanner::<f32>::new().plan_fft_forward(n);
    let mut scratch = vec![C32::new(0.0, 0.0); fft.get_inplace_scratch_len()];
    let xs = x.as_slice().expect("x");
    group.bench_function(BenchmarkId::new("rustfft", n), |bench| {
        // In place on a fresh copy of x each time (the copy is not timed).
        bench.iter_batched_ref(
            || xs.to_vec(),
            |buf| fft.process_with_scratch(buf, &mut scratch),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    multiply::<f32>(c);
    multiply::<C32>(c);
    fft_one_thread(c);
}

criterion_group!(butterfly, benches);
criterion_main!(butterfly);
