//! Quick timings of the butterfly multiply against its baselines (faer dense GEMM, rustfft),
//! without criterion: the fastest (or median) of a few repetitions per case, printed as a table.
//!
//! ```text
//! cargo run --release --example bench_butterfly -- [--n 256,1024,4096] [--batch 256]
//!     [--reps 15] [--threads 0] [--only f32|c32|fft] [--no-dense] [--min]
//! ```
//! `--threads 0` uses all cores (rayon's default pool); the FFT comparison always runs on one
//! thread, like `benches/butterfly.rs`.

use clap::{Parser, ValueEnum};
use kaleidoscope::butterfly::special::FftOptions;
use kaleidoscope::{Butterfly, ButterflyConfig, LinearMap, Scalar, C32};
use ndarray::Array2;
use rand::SeedableRng;
use rustfft::FftPlanner;
use std::time::{Duration, Instant};

/// Quick timings of the butterfly multiply against faer dense GEMM and of the FFT butterfly
/// against rustfft (median of repeated runs after a warm-up).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Sizes n (comma-separated).
    #[arg(long = "n", value_delimiter = ',', default_values_t = [256usize, 512, 1024, 2048, 4096, 8192])]
    ns: Vec<usize>,
    /// Rows per batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Timed repetitions per case.
    #[arg(long, default_value_t = 15)]
    reps: usize,
    /// Threads for the multiply comparison (0: all cores); the FFT comparison uses one.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Run only one comparison.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Skip the dense GEMM baseline.
    #[arg(long)]
    no_dense: bool,
    /// Report the minimum instead of the median.
    #[arg(long)]
    min: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Only {
    F32,
    C32,
    Fft,
}

/// Statistic of the repeated timings: the median, or with `--min` the minimum (the least
/// disturbed by other processes on a shared machine).
fn pick(mut t: Vec<Duration>, min: bool) -> Duration {
    t.sort();
    if min {
        t[0]
    } else {
        t[t.len() / 2]
    }
}

/// Wall time of `reps` calls after one warm-up call (see [`pick`]).
fn timed(reps: usize, min: bool, mut f: impl FnMut()) -> Duration {
    f();
    pick(
        (0..reps.max(1))
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed()
            })
            .collect(),
        min,
    )
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn butterfly_vs_dense<T: Scalar>(a: &Args, pool: &rayon::ThreadPool) {
    println!(
        "{:>6} {:>5} {:>6} {:>14} {:>14} {:>9}",
        "n", "type", "batch", "butterfly µs", "dense GEMM µs", "speed-up"
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for &n in &a.ns {
        let cfg = ButterflyConfig {
            bias: false,
            ..ButterflyConfig::default()
        };
        let b = Butterfly::<T>::new(n, n, cfg, &mut rng).expect("butterfly");
        let x = Array2::from_shape_simple_fn((a.batch, n), || T::randn(&mut rng, 1.0));
        let mut y = Array2::<T>::zeros((a.batch, n));
        let tb = pool.install(|| {
            timed(a.reps, a.min, || {
                b.apply_into(x.view(), y.view_mut()).expect("apply");
            })
        });
        let td = if !a.no_dense {
            let w = Array2::from_shape_simple_fn((n, n), || T::randn(&mut rng, 1.0));
            let xs = x.as_slice().expect("contiguous");
            let ws = w.as_slice().expect("contiguous");
            let par = if a.threads == 1 {
                faer::Par::Seq
            } else {
                faer::Par::rayon(a.threads)
            };
            let reps = if n >= 4096 { 3 } else { a.reps };
            Some(pool.install(|| {
                timed(reps, a.min, || {
                    let ys = y.as_slice_mut().expect("contiguous");
                    let lhs = faer::MatRef::from_row_major_slice(xs, a.batch, n);
                    let rhs = faer::MatRef::from_row_major_slice(ws, n, n).transpose();
                    let dst = faer::MatMut::from_row_major_slice_mut(ys, a.batch, n);
                    T::gemm(dst, lhs, false, rhs, false, false, par);
                })
            }))
        } else {
            None
        };
        match td {
            Some(td) => println!(
                "{:>6} {:>5} {:>6} {:>14.1} {:>14.1} {:>8.1}×",
                n,
                T::NAME,
                a.batch,
                us(tb),
                us(td),
                us(td) / us(tb)
            ),
            None => println!(
                "{:>6} {:>5} {:>6} {:>14.1} {:>14} {:>9}",
                n,
                T::NAME,
                a.batch,
                us(tb),
                "-",
                "-"
            ),
        }
    }
}

fn fft_vs_rustfft(a: &Args) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool");
    println!(
        "{:>6} {:>6} {:>18} {:>12} {:>7}   (one thread)",
        "n", "batch", "FFT butterfly µs", "rustfft µs", "ratio"
    );
    let n = 1024;
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let b = Butterfly::<C32>::fft(n, FftOptions::default()).expect("fft");
    let x = Array2::from_shape_simple_fn((a.batch, n), || C32::randn(&mut rng, 1.0));
    let mut y = Array2::<C32>::zeros((a.batch, n));
    let tb = pool.install(|| {
        timed(a.reps, a.min, || {
            b.apply_into(x.view(), y.view_mut()).expect("apply");
        })
    });
    let fft = FftPlanner::<f32>::new().plan_fft_forward(n);
    let mut buf = x.as_slice().expect("contiguous").to_vec();
    let mut scratch = vec![C32::new(0.0, 0.0); fft.get_inplace_scratch_len()];
    // Each repetition transforms a fresh copy of x; the copy is not timed.
    let tr = pick(
        (0..a.reps.max(1) + 1)
            .map(|_| {
                buf.copy_from_slice(x.as_slice().expect("contiguous"));
                let s = Instant::now();
                fft.process_with_scratch(&mut buf, &mut scratch);
                s.elapsed()
            })
            .skip(1)
            .collect(),
        a.min,
    );
    println!(
        "{:>6} {:>6} {:>18.1} {:>12.1} {:>6.2}×",
        n,
        a.batch,
        us(tb),
        us(tr),
        us(tb) / us(tr)
    );
}

fn main() {
    let a = Args::parse();
    let mut builder = rayon::ThreadPoolBuilder::new();
    if a.threads > 0 {
        builder = builder.num_threads(a.threads);
    }
    let pool = builder.build().expect("thread pool");
    let want = |k: Only| a.only.is_none_or(|o| o == k);
    if want(Only::F32) {
        butterfly_vs_dense::<f32>(&a, &pool);
    }
    if want(Only::C32) {
        butterfly_vs_dense::<C32>(&a, &pool);
    }
    if want(Only::Fft) {
        fft_vs_rustfft(&a);
    }
}
