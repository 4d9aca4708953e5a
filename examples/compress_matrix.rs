//! Compress a dense matrix into structured ones at equal parameter budgets and compare: the
//! relative Frobenius error of each projection and how fast the result applies to a batch.
//!
//! ```sh
//! cargo run --release --example compress_matrix -- --matrix kernel --n 1024 --plot compress.png
//! cargo run --release --example compress_matrix -- --npy weights.npy
//! ```

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use kaleidoscope::dense::gemm_xwt;
use kaleidoscope::learn::{Adam, Optimizer};
use kaleidoscope::{
    BlockDiagonal, Differentiable, Ldr, LdrClass, LinearMap, LowRank, Monarch, MonarchShape,
    PixelatedButterfly, PixelflyConfig, RealScalar, Scalar, C64,
};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Source {
    /// Gaussian entries: no structure to find (the worst case).
    Random,
    /// The unitary DFT (complex): exactly Monarch after a permutation, and full rank.
    Dft,
    /// A smooth Gaussian kernel matrix `exp(−(i−j)²/(2σ²))`, σ = n/16: numerically low rank.
    Kernel,
}

/// Project a dense matrix onto Monarch, block-diagonal, low-rank and Pixelated Butterfly
/// matrices at matched parameter budgets, and fit low displacement rank (LDR) matrices at the
/// budgets of small displacement rank; print the error and the apply speed-up.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Which built-in matrix to compress (ignored with --npy).
    #[arg(long, value_enum, default_value_t = Source::Kernel)]
    matrix: Source,
    /// Size of the built-in matrix (n × n).
    #[arg(long, default_value_t = 1024)]
    n: usize,
    /// A 2-D float64 or float32 .npy file (e.g. a layer's weight, shape (out, in)) to compress.
    #[arg(long)]
    npy: Option<PathBuf>,
    /// Rows in the timed batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Alternating-projection iterations for the Pixelated Butterfly.
    #[arg(long, default_value_t = 8)]
    iterations: usize,
    /// Write a PNG of relative error against parameters here.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// LDR rows only for budgets whose displacement rank is at most this (LDR is fast for
    /// small ranks; its fit and apply cost grow with the rank). If no budget qualifies, the
    /// smallest budget's row is fitted at this rank.
    #[arg(long, default_value_t = 64)]
    ldr_max_rank: usize,
    /// Largest rank of the learned-subdiagonal LDR row (one row, at the smallest budget; its
    /// divide-and-conquer multiply costs far more than the Toeplitz-like FFT one).
    #[arg(long, default_value_t = 16)]
    ldr_subdiagonal_rank: usize,
    /// Seconds of Adam refinement per LDR row (0: the displacement SVD only).
    #[arg(long, default_value_t = 2.0)]
    ldr_seconds: f64,
    /// Adam learning rate of that refinement, relative to the RMS of the initial parameters.
    #[arg(long, default_value_t = 1e-2)]
    ldr_lr: f64,
    /// Adam steps of the learned-butterfly row (`learn::fit` from random initialisation, two
    /// butterfly blocks; each step samples 256 columns of the identity). 0: no such row.
    #[arg(long, default_value_t = 40)]
    butterfly_steps: usize,
}

struct Row {
    family: &'static str,
    detail: String,
    params: usize,
    rel_err: f64,
    time_s: f64,
}

fn median_time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut v: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time_map<T: Scalar>(map: &dyn LinearMap<T>, x: &Array2<T>) -> f64 {
    let mut y = Array2::zeros((x.nrows(), map.out_features()));
    median_time(5, || {
        map.apply_into(x.view(), y.view_mut()).expect("shapes")
    })
}

fn frob<T: Scalar>(a: &Array2<T>) -> f64 {
    a.iter()
        .map(|v| v.modulus_sqr().to_f64())
        .sum::<f64>()
        .sqrt()
}

fn compress<T: Scalar>(target: Array2<T>, args: &Args) -> kaleidoscope::Result<(Vec<Row>, f64)> {
    let (out, inp) = target.dim();
    let norm = frob(&target).max(f64::MIN_POSITIVE);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let x = Array2::from_shape_simple_fn((args.batch, inp), || T::randn(&mut rng, 1.0));
    let mut y = Array2::zeros((args.batch, out));
    let dense_time = median_time(5, || gemm_xwt(x.view(), target.view(), y.view_mut(), false));

    let block_counts: Vec<usize> = [2usize, 4, 8, 16, 32]
        .into_iter()
        .filter(|&b| inp % b == 0 && out % b == 0 && b * b <= inp.min(out))
        .collect();
    let ldr_budgets: Vec<usize> = {
        let n = inp.max(out);
        let b: Vec<usize> = block_counts
            .iter()
            .map(|nb| 2 * inp * out / nb)
            .filter(|&budget| budget / (2 * n) <= args.ldr_max_rank)
            .collect();
        match (b.is_empty(), block_counts.last()) {
            (true, Some(&nb)) => vec![(2 * inp * out / nb).min(2 * n * args.ldr_max_rank.max(1))],
            _ => b,
        }
    };
    let total = block_counts.len() * 4 + ldr_budgets.len() + 3;
    let bar = ProgressBar::new(total as u64)
        .with_style(ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").expect("template"));
    let mut rows = Vec::new();
    let n = inp.max(out);
    for &nb in &block_counts {
        bar.set_message(format!("Monarch, {nb} blocks"));
        let shape = MonarchShape::for_layer(inp, out, nb)?;
        let (m, err) = Monarch::project(target.view(), shape)?;
        let budget = m.num_params();
        rows.push(Row {
            family: "Monarch",
            detail: format!("{nb} blocks"),
            params: budget,
            rel_err: err / norm,
            time_s: time_map(&m, &x),
        });
        bar.inc(1);

        bar.set_message(format!("block-diagonal at {budget} params"));
        let nbd = (inp * out / budget).max(1);
        let nbd = (1..=nbd)
            .rev()
            .find(|b| inp % b == 0 && out % b == 0)
            .unwrap_or(1);
        let (bd, err) = BlockDiagonal::project(target.view(), nbd)?;
        rows.push(Row {
            family: "block-diagonal",
            detail: format!("{nbd} blocks"),
            params: bd.num_params(),
            rel_err: err / norm,
            time_s: time_map(&bd, &x),
        });
        bar.inc(1);

        bar.set_message(format!("low rank at {budget} params"));
        let rank = (budget / (inp + out)).clamp(1, inp.min(out));
        let (lr, err) = LowRank::project(target.view(), rank)?;
        rows.push(Row {
            family: "low rank",
            detail: format!("rank {rank}"),
            params: lr.num_params(),
            rel_err: err / norm,
            time_s: time_map(&lr, &x),
        });
        bar.inc(1);

        bar.set_message(format!("Pixelated Butterfly at {budget} params"));
        // Half the budget on the flat block butterfly (blocks of about 32), half on the rank.
        let pb = (inp.min(out) / 32)
            .max(1)
            .next_power_of_two()
            .min(inp.min(out));
        let pb = (0..=pb.trailing_zeros())
            .rev()
            .map(|t| 1usize << t)
            .find(|b| inp % b == 0 && out % b == 0)
            .unwrap_or(1);
        let per_level = inp * out / pb;
        let levels = ((budget / 2) / per_level)
            .saturating_sub(1)
            .min(pb.trailing_zeros() as usize);
        let rank =
            (budget.saturating_sub(per_level * (levels + 1)) / (inp + out)).min(inp.min(out));
        let cfg = PixelflyConfig {
            nblocks: pb,
            levels,
            rank,
            bias: false,
        };
        let (pf, err) = PixelatedButterfly::project(target.view(), cfg, args.iterations)?;
        rows.push(Row {
            family: "Pixelated Butterfly",
            detail: format!("{pb} blocks, {levels} levels, rank {rank}"),
            params: pf.num_params(),
            rel_err: err / norm,
            time_s: time_map(&pf, &x),
        });
        bar.inc(1);
    }
    let subdiagonal = LdrClass::Subdiagonal {
        corner: true,
        tied: false,
    };
    let last = ldr_budgets.last().map(|&b| (b, true));
    for (budget, with_sub) in ldr_budgets.iter().map(|&b| (b, false)).chain(last) {
        // G and H hold 2rn parameters; the fixed shifts Z_1, Z_{-1} none; the two learned
        // subdiagonals with corners 2n.
        let (family, class, rank) = if with_sub {
            let r = budget.saturating_sub(2 * n) / (2 * n);
            (
                "LDR subdiagonal",
                subdiagonal,
                r.min(args.ldr_subdiagonal_rank),
            )
        } else {
            (
                "LDR Toeplitz-like",
                LdrClass::ToeplitzLike { corner: true },
                budget / (2 * n),
            )
        };
        let rank = rank.clamp(1, n);
        bar.set_message(format!("{family}, rank {rank}"));
        let fit = fit_ldr(&target, class, rank, args)?;
        rows.push(Row {
            family,
            detail: format!(
                "rank {rank}, {}",
                if fit.kept {
                    format!("{} Adam steps", fit.steps)
                } else {
                    "displ. SVD".into()
                }
            ),
            params: fit.map.num_params(),
            rel_err: fit.err / norm,
            time_s: time_map(&fit.map, &x),
        });
        bar.inc(1);
    }
    if inp == out && inp.is_power_of_two() && inp >= 2 {
        bar.set_message("butterfly projection");
        let (b, _) = kaleidoscope::Butterfly::<T>::project(target.view())?;
        let err = frob(&(b.to_dense() - &target));
        rows.push(Row {
            family: "butterfly projection",
            detail: "1 block, no training".into(),
            params: b.num_params(),
            rel_err: err / norm,
            time_s: time_map(&b, &x),
        });
        bar.inc(1);
    }
    if args.butterfly_steps > 0 {
        bar.set_message("learned butterfly");
        let cfg = kaleidoscope::ButterflyConfig {
            nblocks: 2,
            increasing_stride: false,
            init: kaleidoscope::Init::Randn,
            bias: false,
        };
        let mut b = kaleidoscope::Butterfly::<T>::new(inp, out, cfg, &mut rng)?;
        let opts = kaleidoscope::learn::FitOptions {
            steps: args.butterfly_steps,
            lr: 2e-2,
            schedule: kaleidoscope::learn::Schedule::cosine(0, args.butterfly_steps, 0.1),
            sample_rows: 256,
            seed: args.seed,
            ..Default::default()
        };
        kaleidoscope::learn::fit(&mut b, target.view(), &opts)?;
        let err = frob(&(b.to_dense() - &target));
        rows.push(Row {
            family: "learned butterfly",
            detail: format!("2 blocks, {} Adam steps", args.butterfly_steps),
            params: b.num_params(),
            rel_err: err / norm,
            time_s: time_map(&b, &x),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((rows, dense_time))
}

struct LdrFit<T: Scalar> {
    map: Ldr<T>,
    err: f64,
    steps: usize,
    kept: bool,
}

/// An LDR matrix of `class` fitted to `target`: the displacement-SVD solution
/// ([`Ldr::from_displacement`], operators `Z_1`, `Z_{-1}`) times the best scalar, then Adam
/// on the sketched loss `‖X (W − A)ᵀ‖²_F / (b · out)` with a fresh Gaussian `X` of `b` rows
/// each step (an unbiased estimate of `‖W − A‖²_F / out`) for `--ldr-seconds`, kept only if
/// it lowers the exact error.
fn fit_ldr<T: Scalar>(
    target: &Array2<T>,
    class: LdrClass,
    rank: usize,
    args: &Args,
) -> kaleidoscope::Result<LdrFit<T>> {
    let (out, inp) = target.dim();
    let (mut init, _) = Ldr::from_displacement(target.view(), class, rank)?;
    // W is linear in G: scale G by α = ⟨W, A⟩ / ‖W‖², the best multiple of W.
    let w = init.to_dense();
    let (mut num, mut den) = (C64::new(0.0, 0.0), 0.0);
    for (&a, &b) in w.iter().zip(target.iter()) {
        num += a.to_c64().conj() * b.to_c64();
        den += a.to_c64().norm_sqr();
    }
    let alpha = if den > 0.0 {
        num / den
    } else {
        C64::new(0.0, 0.0)
    };
    let alpha = T::from_parts(alpha.re, alpha.im);
    let ng = init.g().len();
    for p in &mut init.params_mut()[..ng] {
        *p *= alpha;
    }
    let err0 = frob(&(&init.to_dense() - target));
    let mut m = init.clone();
    let rms = (m
        .params()
        .iter()
        .map(|p| p.to_c64().norm_sqr())
        .sum::<f64>()
        / m.params().len() as f64)
        .sqrt();
    let mut opt = Adam::new(args.ldr_lr * rms.max(1e-12))?;
    let mut rng = StdRng::seed_from_u64(args.seed + 7);
    let b = 32;
    let start = Instant::now();
    let mut steps = 0;
    while start.elapsed().as_secs_f64() < args.ldr_seconds {
        let x = Array2::from_shape_simple_fn((b, inp), || T::randn(&mut rng, 1.0));
        let mut dy = m.apply(x.view())?;
        let mut want = Array2::zeros((b, out));
        gemm_xwt(x.view(), target.view(), want.view_mut(), false);
        let scale = T::from_f64(2.0 / (b * out) as f64);
        dy.zip_mut_with(&want, |d, &w| *d = (*d - w) * scale);
        let mut g = vec![T::zero(); m.num_params()];
        m.backward(x.view(), dy.view(), &mut g)?;
        opt.step(m.params_mut(), &g)?;
        steps += 1;
    }
    let err = frob(&(&m.to_dense() - target));
    Ok(if steps > 0 && err.is_finite() && err < err0 {
        LdrFit {
            map: m,
            err,
            steps,
            kept: true,
        }
    } else {
        LdrFit {
            map: init,
            err: err0,
            steps,
            kept: false,
        }
    })
}

fn plot(
    rows: &[Row],
    dense_params: usize,
    path: &PathBuf,
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let xmax = rows
        .iter()
        .map(|r| r.params)
        .max()
        .unwrap_or(1)
        .max(dense_params) as f64;
    let xmin = rows.iter().map(|r| r.params).min().unwrap_or(1).max(1) as f64;
    let ymin = rows
        .iter()
        .map(|r| r.rel_err)
        .fold(1.0, f64::min)
        .max(1e-16);
    let mut chart = ChartBuilder::on(&root)
        .caption("relative Frobenius error vs parameters", ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (xmin * 0.8..xmax * 1.2).log_scale(),
            (ymin * 0.5..1.5f64).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("parameters")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .y_desc("‖W − Ŵ‖ / ‖W‖")
        .draw()?;
    let families = [
        "Monarch",
        "block-diagonal",
        "low rank",
        "Pixelated Butterfly",
        "LDR Toeplitz-like",
        "LDR subdiagonal",
    ];
    for (i, fam) in families.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.family == *fam)
            .map(|r| (r.params as f64, r.rel_err.max(ymin)))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(*fam)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn report<T: Scalar>(
    name: &str,
    target: Array2<T>,
    args: &Args,
) -> Result<(), Box<dyn std::error::Error>> {
    let (out, inp) = target.dim();
    let dense_params = out * inp;
    let (rows, dense_time) = compress(target, args)?;
    println!(
        "\n{name}: {out} × {inp} ({}), batch {}\n",
        T::NAME,
        args.batch
    );
    println!(
        "{:<20} {:<28} {:>9} {:>9} {:>11} {:>10} {:>9}",
        "structure", "shape", "params", "params %", "rel. error", "time (ms)", "speed-up"
    );
    println!(
        "{:<20} {:<28} {:>9} {:>8.1}% {:>11} {:>10.3} {:>8.1}x",
        "dense",
        "",
        dense_params,
        100.0,
        "0",
        dense_time * 1e3,
        1.0
    );
    for r in &rows {
        println!(
            "{:<20} {:<28} {:>9} {:>8.1}% {:>11.3e} {:>10.3} {:>8.1}x",
            r.family,
            r.detail,
            r.params,
            100.0 * r.params as f64 / dense_params as f64,
            r.rel_err,
            r.time_s * 1e3,
            dense_time / r.time_s
        );
    }
    println!("\nrel. error: ‖W − Ŵ‖_F / ‖W‖_F of the projection (closed form for Monarch, block-diagonal and low rank;");
    println!(
        "alternating projections for the Pixelated Butterfly; for LDR the best rank-r displacement"
    );
    println!("Z_1 W − W Z_-1 by truncated SVD (exact at displacement rank ≤ r, e.g. Toeplitz: r = 2), scaled,");
    println!("then --ldr-seconds of Adam on a sketched loss ‖X(W − A)ᵀ‖²; LDR rows only for ranks ≤ --ldr-max-rank).");
    println!("The butterfly projection (square power-of-two sizes) fits each level's 2×2 blocks by rank-one");
    println!("approximations, top level first: exact for a butterfly, greedy otherwise (the DFT needs its");
    println!("bit-reversal permutation first, which this row does not search for).");
    if let Some(path) = &args.plot {
        plot(&rows, dense_params, path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn load_npy(path: &PathBuf) -> Result<Array2<f64>, Box<dyn std::error::Error>> {
    use ndarray_npy::ReadNpyExt;
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    if let Ok(a) = Array2::<f64>::read_npy(&bytes[..]) {
        return Ok(a);
    }
    let a = Array2::<f32>::read_npy(&bytes[..]).map_err(|e| {
        format!(
            "{}: expected a 2-D float64 or float32 array: {e}",
            path.display()
        )
    })?;
    Ok(a.mapv(f64::from))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(path) = &args.npy {
        let w = load_npy(path)?;
        return report(&path.display().to_string(), w, &args);
    }
    let n = args.n;
    match args.matrix {
        Source::Random => {
            let mut rng = StdRng::seed_from_u64(args.seed + 1);
            let w = Array2::from_shape_simple_fn((n, n), || f64::randn(&mut rng, 1.0));
            report("random Gaussian", w, &args)
        }
        Source::Kernel => {
            let sigma = n as f64 / 16.0;
            let w = Array2::from_shape_fn((n, n), |(i, j)| {
                let d = i as f64 - j as f64;
                (-d * d / (2.0 * sigma * sigma)).exp()
            });
            report("Gaussian kernel", w, &args)
        }
        Source::Dft => {
            let s = 1.0 / (n as f64).sqrt();
            let w = Array2::from_shape_fn((n, n), |(u, v)| {
                let a = -2.0 * std::f64::consts::PI * ((u * v) % n) as f64 / n as f64;
                C64::new(a.cos() * s, a.sin() * s)
            });
            report("unitary DFT", w, &args)?;
            println!(
                "(The DFT is exactly Monarch once its input is permuted, a·n2 + b ↦ a + n1·b; in"
            );
            println!("natural order it is not, hence the errors above. tests/monarch.rs checks the exact case.)");
            Ok(())
        }
    }
}
