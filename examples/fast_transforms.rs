//! Every exact fast transform of `kaleidoscope::butterfly::special` at one size: how close it is
//! to its definition, how many parameters and flops it takes, and how fast it applies, each
//! against the dense matrix of the same transform (faer GEMM).
//!
//! ```sh
//! cargo run --release --example fast_transforms -- --n 1024 --batch 256
//! ```

use clap::Parser;
use kaleidoscope::butterfly::special::{Acdc, Conv1d, DctType, DstType, Fastfood, FftOptions};
use kaleidoscope::dense::gemm_xwt;
use kaleidoscope::{Butterfly, LinearMap, Permutation, Scalar, C64};
use ndarray::Array2;
use num_complex::Complex;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
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

/// A real matrix from its entry formula.
fn real(n: usize, m: usize, f: impl Fn(usize, usize) -> f64) -> Array2<f64> {
    Array2::from_shape_fn((n, m), |(i, j)| f(i, j))
}

fn hadamard(n: usize) -> Array2<f64> {
    real(n, n, |i, j| {
        if (i & j).count_ones() % 2 == 0 {
            1.0
        } else {
            -1.0
        }
    })
}

/// Orthonormal DCT-II, `C[k, j] = c_k cos(π k (2j + 1) / 2n)`.
fn dct2_orthonormal(n: usize) -> Array2<f64> {
    real(n, n, |k, j| {
        let c = if k == 0 {
            (1.0 / n as f64).sqrt()
        } else {
            (2.0 / n as f64).sqrt()
        };
        c * (PI * k as f64 * (2 * j + 1) as f64 / (2 * n) as f64).cos()
    })
}

/// The multi-level orthonormal Haar transform of the identity, coefficients ordered
/// `[a_m, d_m, …, d_1]`, computed by the recursion.
fn haar(n: usize) -> Array2<f64> {
    let mut rows = Vec::new();
    for c in 0..n {
        let mut a: Vec<f64> = (0..n).map(|i| if i == c { 1.0 } else { 0.0 }).collect();
        let mut details: Vec<Vec<f64>> = Vec::new();
        while a.len() > 1 {
            let h = std::f64::consts::FRAC_1_SQRT_2;
            details.push(a.chunks(2).map(|p| (p[0] - p[1]) * h).collect());
            a = a.chunks(2).map(|p| (p[0] + p[1]) * h).collect();
        }
        let mut col = a;
        for d in details.iter().rev() {
            col.extend(d);
        }
        rows.push(col);
    }
    real(n, n, |i, j| rows[j][i])
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
    let (n1, n2) = (
        1usize << (n.trailing_zeros() / 2),
        n >> (n.trailing_zeros() / 2),
    );
    let f2 = {
        let (a, b) = (dft(n1, -1.0, 1.0), dft(n2, -1.0, 1.0));
        Array2::from_shape_fn((n, n), |(i, j)| a[(i / n2, j / n2)] * b[(i % n2, j % n2)])
    };
    rows.push(measure(
        &format!("2-D DFT {n1}x{n2}"),
        &Butterfly::<C64>::fft2d(n1, n2, plain)?,
        &f2,
        &args,
        &mut rng,
    )?);

    // cos(π·num/den) and sin(π·num/den) with the angle reduced exactly in integers.
    let cosm = |num: usize, den: usize| (PI * (num % (2 * den)) as f64 / den as f64).cos();
    let sinm = |num: usize, den: usize| (PI * (num % (2 * den)) as f64 / den as f64).sin();
    let dct2 = real(n, n, |k, j| 2.0 * cosm(k * (2 * j + 1), 2 * n));
    rows.push(measure(
        "DCT-II",
        &Butterfly::<f64>::dct(n, DctType::II)?,
        &dct2,
        &args,
        &mut rng,
    )?);
    let dct3 = real(n, n, |k, j| {
        if j == 0 {
            1.0
        } else {
            2.0 * cosm(j * (2 * k + 1), 2 * n)
        }
    });
    rows.push(measure(
        "DCT-III",
        &Butterfly::<f64>::dct(n, DctType::III)?,
        &dct3,
        &args,
        &mut rng,
    )?);
    let dct4 = real(n, n, |k, j| 2.0 * cosm((2 * k + 1) * (2 * j + 1), 4 * n));
    rows.push(measure(
        "DCT-IV",
        &Butterfly::<f64>::dct(n, DctType::IV)?,
        &dct4,
        &args,
        &mut rng,
    )?);
    let dst2 = real(n, n, |k, j| 2.0 * sinm((k + 1) * (2 * j + 1), 2 * n));
    rows.push(measure(
        "DST-II",
        &Butterfly::<f64>::dst(n, DstType::II)?,
        &dst2,
        &args,
        &mut rng,
    )?);
    let dst4 = real(n, n, |k, j| 2.0 * sinm((2 * k + 1) * (2 * j + 1), 4 * n));
    rows.push(measure(
        "DST-IV",
        &Butterfly::<f64>::dst(n, DstType::IV)?,
        &dst4,
        &args,
        &mut rng,
    )?);
    let hart = real(n, n, |k, j| {
        let a = 2.0 * PI * ((k * j) % n) as f64 / n as f64;
        a.cos() + a.sin()
    });
    rows.push(measure(
        "Hartley",
        &Butterfly::<f64>::hartley(n)?,
        &hart,
        &args,
        &mut rng,
    )?);
    rows.push(measure(
        "Hadamard",
        &Butterfly::<f64>::hadamard(n)?,
        &hadamard(n),
        &args,
        &mut rng,
    )?);
    rows.push(measure(
        "Haar wavelet",
        &Butterfly::<f64>::haar(n)?,
        &haar(n),
        &args,
        &mut rng,
    )?);

    let col: Vec<C64> = (0..n).map(|_| C64::randn(&mut rng, 1.0)).collect();
    let circ = Array2::from_shape_fn((n, n), |(i, j)| col[(i + n - j) % n]);
    rows.push(measure(
        "circulant (complex)",
        &Butterfly::<C64>::circulant(&col)?,
        &circ,
        &args,
        &mut rng,
    )?);
    let (m, k) = (n - n / 4, n + n / 4);
    let tc: Vec<f64> = (0..m).map(|_| f64::randn(&mut rng, 1.0)).collect();
    let mut tr: Vec<f64> = (0..k).map(|_| f64::randn(&mut rng, 1.0)).collect();
    tr[0] = tc[0];
    let toep = real(m, k, |i, j| if i >= j { tc[i - j] } else { tr[j - i] });
    rows.push(measure(
        &format!("Toeplitz {m}x{k}"),
        &Butterfly::<f64>::toeplitz(&tc, &tr)?,
        &toep,
        &args,
        &mut rng,
    )?);
    let kern: Vec<f64> = (0..n / 8).map(|_| f64::randn(&mut rng, 1.0)).collect();
    let conv = real(n, n, |i, j| {
        kern.get((i + n - j) % n).copied().unwrap_or(0.0)
    });
    rows.push(measure(
        "circular conv1d",
        &Conv1d::single_channel(&kern, n)?,
        &conv,
        &args,
        &mut rng,
    )?);

    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut rng);
    let p = Permutation::new(perm.clone())?;
    let pd = real(n, n, |i, j| if perm[i] == j { 1.0 } else { 0.0 });
    rows.push(measure(
        "permutation (BB*)",
        &p.to_butterfly::<f64>()?,
        &pd,
        &args,
        &mut rng,
    )?);

    let ff = Fastfood::<f64>::new(n, 1.0, &mut rng)?;
    let h = hadamard(n);
    let diag = |v: &[f64]| Array2::from_diag(&ndarray::arr1(v));
    let pm = real(n, n, |i, j| {
        if ff.permutation().as_slice()[i] == j {
            1.0
        } else {
            0.0
        }
    });
    let ffd = diag(ff.s())
        .dot(&h)
        .dot(&diag(ff.g()))
        .dot(&pm)
        .dot(&h)
        .dot(&diag(ff.b()));
    rows.push(measure("Fastfood SHGΠHB", &ff, &ffd, &args, &mut rng)?);

    let acdc = Acdc::<f64>::random(n, 1.0, &mut rng)?;
    let c = dct2_orthonormal(n);
    let acdcd = c.t().dot(&diag(acdc.d())).dot(&c).dot(&diag(acdc.a()));
    rows.push(measure("ACDC", &acdc, &acdcd, &args, &mut rng)?);

    println!(
        "\nExact transforms as butterflies, n = {n}, batch {} (median of {} runs)\n",
        args.batch, args.reps
    );
    println!(
        "{:<24} {:>10} {:>9} {:>10} {:>10} {:>11} {:>11} {:>9}",
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
            "{:<24} {:>10.2e} {:>9} {:>9.2}% {:>9.2}% {:>11.3} {:>11.3} {:>8.1}x",
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
    println!("\nmax error: max |butterfly(x) − dense(x)| / max |dense(x)| over the batch, in f64 (complex f64 for the DFTs and the complex circulant);");
    println!("dense: the matrix built from its definition, applied with faer GEMM; params of fixed transforms are their butterfly twiddles.");
    Ok(())
}
