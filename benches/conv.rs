//! Long convolution, batch 4 × 64 channels, causal, kernel length = L, f32, for
//! L = 256 … 65536: FlashButterfly (exact DFT blocks and learned = perturbed blocks; the same
//! code path) against the rustfft convolution (`LongConv`) and, where it finishes, the direct
//! O(L²) convolution; forward, and forward + backward. Each L is one criterion group so that
//! the ratios come from one run; a table of `median / median(rustfft)` is printed at the end
//! (from criterion's estimates). `KALEIDOSCOPE_BENCH_QUICK=1` runs a smoke-sized version.

use criterion::{BenchmarkId, Criterion, Throughput};
use kaleidoscope::conv::{ConvMode, FlashButterfly, Gates, LongConv};
use kaleidoscope::Scalar;
use ndarray::{Array3, ArrayView3};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

fn quick() -> bool {
    std::env::var_os("KALEIDOSCOPE_BENCH_QUICK").is_some()
}

/// `(batch, channels, lengths, largest L for the direct convolution)`.
fn config() -> (usize, usize, Vec<usize>, usize) {
    if quick() {
        (2, 16, vec![1024, 4096, 16384], 1024)
    } else {
        (4, 64, (8..=16).map(|e| 1usize << e).collect(), 2048)
    }
}

fn randn3(shape: (usize, usize, usize), rng: &mut StdRng) -> Array3<f32> {
    Array3::from_shape_simple_fn(shape, || f32::randn(rng, 1.0))
}

/// `y[b, c, t] = Σ_{j ≤ t} k[c, j]·u[b, c, t − j]`.
fn direct(u: ArrayView3<f32>, k: ArrayView3<f32>, y: &mut Array3<f32>) {
    let (b, c, l) = u.dim();
    let kl = k.dim().2;
    for bi in 0..b {
        for ci in 0..c {
            let ur = u.slice(ndarray::s![bi, ci, ..]);
            let ur = ur.as_slice().expect("contiguous");
            let kr = k.slice(ndarray::s![0, ci, ..]);
            let kr = kr.as_slice().expect("contiguous");
            let mut yr = y.slice_mut(ndarray::s![bi, ci, ..]);
            let yr = yr.as_slice_mut().expect("contiguous");
            yr.fill(0.0);
            for (j, &kj) in kr.iter().enumerate().take(kl) {
                for (o, &x) in yr[j..].iter_mut().zip(&ur[..l - j]) {
                    *o += kj * x;
                }
            }
        }
    }
}

fn bench_conv(c: &mut Criterion, results: &mut Vec<(usize, String)>) {
    let (batch, channels, lens, direct_max) = config();
    let mut rng = StdRng::seed_from_u64(0);
    for l in lens {
        let mode = ConvMode::Causal;
        let long = LongConv::<f32>::random(channels, l, l, mode, &mut rng).unwrap();
        let fixed =
            FlashButterfly::with_params(long.kernel().to_owned(), long.d().to_owned(), l, mode)
                .unwrap();
        let mut learned = fixed.clone();
        learned.fft_mut().perturb(0.01, &mut rng);
        let u = randn3((batch, channels, l), &mut rng);
        let dy = randn3((batch, channels, l), &mut rng);
        let name = format!("conv_b{batch}_c{channels}_L{l}");
        let mut g = c.benchmark_group(&name);
        let big = l >= 16384;
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(if quick() { 100 } else { 500 }))
            .measurement_time(Duration::from_millis(if quick() {
                300
            } else if big {
                4000
            } else {
                2000
            }))
            .throughput(Throughput::Elements((batch * channels * l) as u64));
        let mut ids = Vec::new();
        let mut run = |pass: &str, imp: &str, f: &mut dyn FnMut()| {
            g.bench_function(BenchmarkId::new(pass, imp), |b| b.iter(&mut *f));
            ids.push(format!("{pass}/{imp}"));
        };
        run("forward", "rustfft", &mut || {
            black_box(long.forward(black_box(u.view()), Gates::none()).unwrap());
        });
        run("forward", "flash_fixed", &mut || {
            black_box(fixed.forward(black_box(u.view()), Gates::none()).unwrap());
        });
        run("forward", "flash_learned", &mut || {
            black_box(learned.forward(black_box(u.view()), Gates::none()).unwrap());
        });
        if l <= direct_max {
            let mut y = Array3::zeros((batch, channels, l));
            let k = long.kernel();
            run("forward", "direct", &mut || {
                direct(black_box(u.view()), k, &mut y);
            });
        }
        run("forward_backward", "rustfft", &mut || {
            black_box(long.forward(u.view(), Gates::none()).unwrap());
            black_box(long.backward(u.view(), Gates::none(), dy.view()).unwrap());
        });
        run("forward_backward", "flash_learned", &mut || {
            black_box(learned.forward(u.view(), Gates::none()).unwrap());
            black_box(
                learned
                    .backward(u.view(), Gates::none(), dy.view())
                    .unwrap(),
            );
        });
        g.finish();
        results.extend(ids.into_iter().map(|id| (l, format!("{name}/{id}"))));
    }
}

/// Where criterion writes its estimates (`CRITERION_HOME`, else `<target>/criterion`).
fn criterion_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(h);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // The bench binary lives in <target>/<profile>/deps/.
            std::env::current_exe()
                .ok()
                .and_then(|p| p.ancestors().nth(3).map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("target"))
        });
    target.join("criterion")
}

/// The median point estimate (ns) from criterion's `new/estimates.json`.
fn median_ns(id: &str) -> Option<f64> {
    let text = std::fs::read_to_string(criterion_dir().join(id).join("new/estimates.json")).ok()?;
    let after = &text[text.find("\"median\"")?..];
    let pe = &after[after.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = pe.find([',', '}'])?;
    pe[..end].trim().parse().ok()
}

fn print_ratios(results: &[(usize, String)]) {
    println!("\nmedian time and ratio to the rustfft convolution of the same pass:");
    println!(
        "{:>7}  {:<34} {:>12} {:>8}",
        "L", "benchmark", "median ms", "ratio"
    );
    for (l, id) in results {
        let base = if id.contains("forward_backward/") {
            "forward_backward/rustfft"
        } else {
            "forward/rustfft"
        };
        let base_id = format!(
            "{}/{base}",
            id.rsplit_once('/').unwrap().0.rsplit_once('/').unwrap().0
        );
        let (Some(t), Some(b)) = (median_ns(id), median_ns(&base_id)) else {
            println!(
                "{l:>7}  {id:<34} (no estimate found under {:?})",
                criterion_dir()
            );
            continue;
        };
        let short = id.split_once('/').map_or(id.as_str(), |x| x.1);
        println!("{l:>7}  {short:<34} {:>12.3} {:>8.2}", t / 1e6, t / b);
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut results = Vec::new();
    bench_conv(&mut c, &mut results);
    c.final_summary();
    print_ratios(&results);
}
