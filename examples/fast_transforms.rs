//! Every exact fast transform of `kaleidoscope::butterfly::special` at one size: how close it is
//! to its definition, how many parameters and flops it takes, and how fast it applies, each
//! against the dense matrix of the same transform (faer GEMM).
//!
//! ```sh
//! cargo run --release --example fast_transforms -- --n 1024 --batch 256
//! ```

use clap::Parser;
use kaleidoscope::butterfly::special::FftOptions;
use kaleidoscope::dense::gemm_xwt;
use kaleidoscope::{Butterfly, LinearMap, Scalar, C64};
use ndarray::Array2;
use num_complex::Complex;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::f64::consts::PI;
use std::time::Instant;

/// Build each exact transform as a butterfly at size n, check it against its definition and
/// time it against the dense matrix.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Transform size (a power of two).
    #[arg(long, default_value_t = 1024)]
    n: usize,
    /// Rows in the timed batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 7)]
    reps: usize,
    /// Random seed for the inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

struct Row {
    name: String,
    max_err: f64,
    params: usize,
    dense_params: usize,
    flops: usize,
    dense_flops: usize,
    time_s: f64,
    dense_time_s: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Error against the reference matrix on random rows, then timings of the map and of the dense
/// product with the same batch.
fn measure<T: Scalar>(
    name: &str,
    map: &dyn LinearMap<T>,
    reference: &Array2<T>,
    args: &Args,
    rng: &mut StdRng,
) -> kaleidoscope::Result<Row> {
    let (out, inp) = reference.dim();
    let x = Array2::from_shape_simple_fn((args.batch, inp), || T::randn(rng, 1.0));
    let fast = map.apply(x.view())?;
    let mut dense = Array2::zeros((args.batch, out));
    let time = |f: &mut dyn FnMut()| {
        f();
        median(
            (0..args.reps)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .collect(),
        )
    };
    let dense_time_s = time(&mut || gemm_xwt(x.view(), reference.view(), dense.view_mut(), false));
    let scale = dense
        .iter()
        .map(|v| v.modulus().to_f64())
        .fold(1e-300, f64::max);
    let max_err = fast
        .iter()
        .zip(dense.iter())
        .map(|(a, b)| (*a - *b).modulus().to_f64())
        .fold(0.0, f64::max)
        / scale;
    let mut y = Array2::zeros((args.batch, out));
    let time_s = time(&mut || map.apply_into(x.view(), y.view_mut()).expect("shapes"));
    Ok(Row {
        name: name.to_string(),
        max_err,
        params: map.num_params(),
        dense_params: out * inp,
        flops: map.flops_per_row(),
        dense_flops: inp * out * if T::IS_COMPLEX { 8 } else { 2 },
        time_s,
        dense_time_s,
    })
}

trait ToF64 {
    fn to_f64(self) -> f64;
}
impl<R: kaleidoscope::RealScalar> ToF64 for R {
    fn to_f64(self) -> f64 {
        kaleidoscope::RealScalar::to_f64(self)
    }
}

fn dft(n: usize, sign: f64, scale: f64) -> Array2<C64> {
    Array2::from_shape_fn((n, n), |(k, j)| {
        let a = sign * 2.0 * PI * ((j * k) % n) as f64 / n as f64;
        Complex::new(a.cos() * scale, a.sin() * scale)
    })
}

fn main() -> kaleidoscope::Result<()> {
    let args = Args::parse();
    let n = args.n;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut rows = Vec::new();
    let plain = FftOptions::default();
    let unitary = FftOptions {
        normalized: true,
        ..plain
    };
    let s = 1.0 / (n as f64).sqrt();

    rows.push(measure(
        "DFT",
        &Butterfly::<C64>::fft(n, plain)?,
        &dft(n, -1.0, 1.0),
        &args,
        &mut rng,
    )?);
    rows.push(measure(
        "DFT (unitary)",
        &Butterfly::<C64>::fft(n, unitary)?,
        &dft(n, -1.0, s),
        &args,
        &mut rng,
    )?);
    rows.push(measure(
        "inverse DFT",
        &Butterfly::<C64>::ifft(n, plain)?,
        &dft(n, 1.0, 1.0 / n as f64),
        &args,
        &mut rng,
    )?);

    println!(
        "\nExact transforms as butterflies, n = {n}, batch {} (median of {} runs)\n",
        args.batch, args.reps
    );
    println!(
        "{:<22} {:>10} {:>9} {:>10} {:>10} {:>11} {:>11} {:>9}",
        "transform",
        "max error",
        "params",
        "params %",
        "flops %",
        "time (ms)",
        "dense (ms)",
        "speed-up"
    );
    for r in &rows {
        println!(
            "{:<22} {:>10.2e} {:>9} {:>9.2}% {:>9.2}% {:>11.3} {:>11.3} {:>8.1}x",
            r.name,
            r.max_err,
            r.params,
            100.0 * r.params as f64 / r.dense_params as f64,
            100.0 * r.flops as f64 / r.dense_flops as f64,
            r.time_s * 1e3,
            r.dense_time_s * 1e3,
            r.dense_time_s / r.time_s
        );
    }
    println!("\nmax error: max |butterfly(x) − dense(x)| / max |dense(x)| over the batch, in f64.");
    Ok(())
}
