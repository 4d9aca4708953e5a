//! LDR multiply (`y = x Wᵀ`, f32, batch 64) against faer dense GEMM of the same size, for
//! `n = 1024 … 16384` and displacement rank `r = 1 … 16`: Toeplitz-like (FFT,
//! `O(r n log n)`) at every rank, learned subdiagonal with corners (divide and conquer,
//! `O(r n log² n)`) at `r = 1, 4, 16`. Each group `ldr_f32_n{n}_batch64` is one `n` with its
//! dense baseline; dense at `n = 16384` (a 1 GiB matrix) is timed once, outside criterion, and
//! printed. The group `ldr_subdiagonal_vs_horner_r1_batch8` compares the divide-and-conquer
//! multiply with Horner's rule (`O(r n²)`, `Ldr::apply_horner`) for `n = 256 … 4096`.
//! Select groups with criterion's filter, e.g. `cargo bench --bench ldr -- n1024`; the
//! crossover table per rank comes from `cargo run --release --example ldr_crossover`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kaleidoscope::{Dense, Ldr, LdrClass, LdrConfig, LinearMap};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::hint::black_box;
use std::time::{Duration, Instant};

const BATCH: usize = 64;
const RANKS: [usize; 5] = [1, 2, 4, 8, 16];

const SUBDIAGONAL: LdrClass = LdrClass::Subdiagonal {
    corner: true,
    tied: false,
};

fn randn(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<f32> {
    use kaleidoscope::Scalar;
    Array2::from_shape_simple_fn((rows, cols), || f32::randn(rng, 1.0))
}

fn bench_ldr(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(0);
    for n in (10..=14).map(|p| 1usize << p) {
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
        for r in [1, 4, 16] {
            let cfg = LdrConfig {
                class: SUBDIAGONAL,
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

fn bench_horner(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let batch = 8;
    let mut g = c.benchmark_group(format!("ldr_subdiagonal_vs_horner_r1_batch{batch}"));
    g.sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300))
        .throughput(Throughput::Elements(batch as u64));
    for n in (8..=12).map(|p| 1usize << p) {
        let cfg = LdrConfig {
            class: SUBDIAGONAL,
            rank: 1,
            bias: false,
        };
        let m = Ldr::<f32>::new(n, n, cfg, &mut rng).unwrap();
        let x = randn(batch, n, &mut rng);
        let mut y = Array2::<f32>::zeros((batch, n));
        g.bench_function(BenchmarkId::new("divide_and_conquer", n), |b| {
            b.iter(|| m.apply_into(black_box(x.view()), y.view_mut()).unwrap())
        });
        g.bench_function(BenchmarkId::new("horner", n), |b| {
            b.iter(|| m.apply_horner(black_box(x.view())).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench_ldr, bench_horner);
criterion_main!(benches);
