//! Monarch forward and forward+backward against faer dense GEMM of the same shape, and the
//! projection of a 4096×4096 matrix. `KALEIDOSCOPE_BENCH_QUICK=1` shrinks the token count for a
//! smoke run.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kaleidoscope::{Dense, Differentiable, LinearMap, Monarch, MonarchShape};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::hint::black_box;
use std::time::Duration;

fn tokens() -> usize {
    if std::env::var_os("KALEIDOSCOPE_BENCH_QUICK").is_some() {
        256
    } else {
        4096
    }
}

fn randn(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<f32> {
    use kaleidoscope::Scalar;
    Array2::from_shape_simple_fn((rows, cols), || f32::randn(rng, 1.0))
}

fn shapes() -> Vec<(String, usize, usize, usize)> {
    let mut v = vec![
        ("768x3072_nb4".to_string(), 768, 3072, 4),
        ("3072x768_nb4".to_string(), 3072, 768, 4),
    ];
    for nb in [4, 16, 64] {
        v.push((format!("4096x4096_nb{nb}"), 4096, 4096, nb));
    }
    v
}

fn bench_monarch(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(0);
    let t = tokens();
    for (name, inp, out, nb) in shapes() {
        let shape = MonarchShape::for_layer(inp, out, nb).unwrap();
        let m = Monarch::<f32>::random(shape, false, &mut rng).unwrap();
        let d = Dense::<f32>::random(inp, out, false, &mut rng).unwrap();
        let x = randn(t, inp, &mut rng);
        let dy = randn(t, out, &mut rng);
        let mut y = Array2::<f32>::zeros((t, out));
        let mut g = c.benchmark_group(format!("monarch_{name}"));
        g.sample_size(10)
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_millis(500))
            .throughput(Throughput::Elements(t as u64));
        g.bench_function(BenchmarkId::new("forward", "monarch"), |b| {
            b.iter(|| m.apply_into(black_box(x.view()), y.view_mut()).unwrap())
        });
        g.bench_function(BenchmarkId::new("forward", "dense_faer"), |b| {
            b.iter(|| d.apply_into(black_box(x.view()), y.view_mut()).unwrap())
        });
        let mut gm = vec![0.0f32; m.num_params()];
        let mut gd = vec![0.0f32; d.num_params()];
        g.bench_function(BenchmarkId::new("forward_backward", "monarch"), |b| {
            b.iter(|| {
                m.apply_into(black_box(x.view()), y.view_mut()).unwrap();
                m.backward(x.view(), dy.view(), &mut gm).unwrap()
            })
        });
        g.bench_function(BenchmarkId::new("forward_backward", "dense_faer"), |b| {
            b.iter(|| {
                d.apply_into(black_box(x.view()), y.view_mut()).unwrap();
                d.backward(x.view(), dy.view(), &mut gd).unwrap()
            })
        });
        g.finish();
    }
}

fn bench_projection(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let n = 4096;
    let dense = Array2::from_shape_simple_fn((n, n), || {
        use kaleidoscope::Scalar;
        f64::randn(&mut rng, 1.0)
    });
    let shape = MonarchShape::square(n, 64).unwrap();
    let mut g = c.benchmark_group("monarch_projection_4096_nb64");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("project_f64", |b| {
        b.iter(|| Monarch::project(black_box(dense.view()), shape).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_monarch, bench_projection);
criterion_main!(benches);
