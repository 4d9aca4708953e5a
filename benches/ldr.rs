//! LDR multiply (`y = x Wᵀ`, f32, batch 64) against faer dense GEMM of the same size, for
//! `n = 1024 … 16384` and displacement rank `r = 1 … 16`: Toeplitz-like (FFT) at every rank,
//! learned subdiagonal with corners (divide and conquer) at `r = 1, 4`. Each group is one `n`
//! with its dense baseline. Dense at `n = 16384` (a 1 GiB matrix) is timed once, outside
//! criterion, and printed. `KALEIDOSCOPE_BENCH_QUICK=1` stops at `n = 4096`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kaleidoscope::{Dense, Ldr, LdrClass, LdrConfig, LinearMap};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::hint::black_box;
use std::time::{Duration, Instant};

const BATCH: usize = 64;
const RANKS: [usize; 5] = [1, 2, 4, 8, 16];

fn sizes() -> Vec<usize> {
    let max = if std::env::var_os("KALEIDOSCOPE_BENCH_QUICK").is_some() {
        4096
    } else {
        16384
    };
    (10..=14)
        .map(|p| 1usize << p)
        .filter(|&n| n <= max)
        .collect()
}

fn randn(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<f32> {
    use kaleidoscope::Scalar;
    Array2::from_shape_simple_fn((rows, cols), || f32::randn(rng, 1.0))
}

fn bench_ldr(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(0);
    for n in sizes() {
        let x = randn(BATCH, n, &mut rng);
        let mut y = Array2::<f32>::zeros((BATCH, n));
        let mut g = c.benchmark_group(format!("ldr_f32_n{n}_batch{BATCH}"));
        g.sample_size(10)
            .measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(300))
            .throughput(Throughput::Elements(BATCH as u64));
        if n <= 8192 {
            let d = Dense::<f32>::random(n, n, false, &mut rng).unwrap();
            g.bench_function(BenchmarkId::new("dense_faer", n), |b| {
                b.iter(|| d.apply_into(black_box(x.view()), y.view_mut()).unwrap())
            });
        } else {
            let d = Dense::<f32>::random(n, n, false, &mut rng).unwrap();
            d.apply_into(x.view(), y.view_mut()).unwrap();
            let t = Instant::now();
            d.apply_into(black_box(x.view()), y.view_mut()).unwrap();
            println!(
                "ldr_f32_n{n}_batch{BATCH}/dense_faer/{n}: one run {:.1} ms",
                t.elapsed().as_secs_f64() * 1e3
            );
        }
        for r in RANKS {
            let cfg = LdrConfig {
                class: LdrClass::ToeplitzLike { corner: true },
                rank: r,
                bias: false,
            };
            let m = Ldr::<f32>::new(n, n, cfg, &mut rng).unwrap();
            g.bench_function(BenchmarkId::new("toeplitz_like", format!("r{r}")), |b| {
                b.iter(|| m.apply_into(black_box(x.view()), y.view_mut()).unwrap())
            });
        }
        for r in [1, 4] {
            let cfg = LdrConfig {
                class: LdrClass::Subdiagonal {
                    corner: true,
                    tied: false,
                },
                rank: r,
                bias: false,
            };
            let m = Ldr::<f32>::new(n, n, cfg, &mut rng).unwrap();
            g.bench_function(BenchmarkId::new("subdiagonal", format!("r{r}")), |b| {
                b.iter(|| m.apply_into(black_box(x.view()), y.view_mut()).unwrap())
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench_ldr);
criterion_main!(benches);
