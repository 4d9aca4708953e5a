//! Learn a fast transform from random initialisation (Dao et al., *Learning Fast Algorithms for
//! Linear Transforms Using Butterfly Factorizations*, ICML 2019): a product of complex
//! butterflies and learned permutations (BP, BPP or BPBP) is trained with soft permutations,
//! hardened and polished (`learn::learn_transform`), and compared with the dense target
//! (for real targets, the real part of the product).
//!
//! ```text
//! cargo run --release --example learn_transform -- --transform dft --n 64
//! cargo run --release --example learn_transform -- --transform dft,hadamard --sweep --max-n 1024 --out table.md
//! cargo run --release --example learn_transform -- --transform conv --n 256 --plot
//! ```

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use kaleidoscope::learn::{
    learn_by_growing, learn_transform, rmse, ButterflyProduct, Factor, LearnOptions, LearnReport,
    LogitSharing, Structure,
};
use kaleidoscope::{Differentiable, Init, LinearMap, Permutation, Scalar, C32, C64};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::f64::consts::PI;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transform {
    /// Unitary DFT `e^{−2πi jk/n}/√n`.
    Dft,
    /// Orthonormal DCT-II.
    Dct,
    /// Orthonormal DST-II.
    Dst,
    /// Orthonormal Sylvester–Hadamard.
    Hadamard,
    /// Hartley `cas(2π jk/n)/√n`.
    Hartley,
    /// Circular convolution with a random Gaussian filter (scaled by 1/√n).
    Conv,
    /// Legendre polynomials `P_k` at the midpoints of `n` cells of [−1, 1], rows normalised.
    Legendre,
    /// A Gaussian matrix with entries `N(0, 1/n)` (no fast algorithm: a baseline).
    Randn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Precision {
    F32,
    F64,
    /// Learned in f64, then the twiddles rounded to f32; the RMSE is the f32 product's.
    F32FromF64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StructureArg {
    Bp,
    Bpp,
    Bpbp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SharingArg {
    Shared,
    PerLevel,
}

/// Learn fast transforms as products of butterflies and learned permutations.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Transform(s) to learn (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "dft")]
    transform: Vec<Transform>,
    /// Size (a power of two); ignored with --sweep.
    #[arg(long, default_value_t = 64)]
    n: usize,
    /// Structure; default: bp, except bpp for dct/dst and bpbp for conv.
    #[arg(long, value_enum)]
    structure: Option<StructureArg>,
    /// Logit sharing of the learned permutations; default: shared for bp, per-level otherwise.
    #[arg(long, value_enum)]
    sharing: Option<SharingArg>,
    /// Floating-point precision of the learned product.
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    precision: Precision,
    /// Seed of the initialisation, restarts and row sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write PNGs of |learned − target| and of the learned twiddles into --plot-dir.
    #[arg(long)]
    plot: bool,
    /// Folder of the PNGs.
    #[arg(long, default_value = ".")]
    plot_dir: PathBuf,
    /// Run N = 8, 16, …, --max-n for every transform and print the whole table.
    #[arg(long)]
    sweep: bool,
    /// Largest N of --sweep.
    #[arg(long, default_value_t = 1024)]
    max_n: usize,
    /// Also write the table as markdown to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Most candidates (soft phase → hardening → polish) per run.
    #[arg(long, default_value_t = 6)]
    restarts: usize,
    /// Adam steps of the soft phase.
    #[arg(long, default_value_t = 1500)]
    soft_steps: usize,
    /// Rows of the identity sampled per soft step (0: all; default min(n, 256)).
    #[arg(long)]
    soft_rows: Option<usize>,
    /// Wall-time budget per run in seconds: no new candidate or polish starts after it and the
    /// best candidate so far is reported (marked "time limit").
    #[arg(long)]
    time_limit: Option<f64>,
    /// Learn the transform at this size first and double it level by level up to --n
    /// (`learn::learn_by_growing`): what recovers the DCT-II/DST-II (BPP) beyond N = 16, where
    /// the soft search fails; they grow from N = 16 by default, each doubling built exactly
    /// from the target (`Butterfly::project_real_part`). The convolution (BPBP) grows from
    /// N = 2 by default, each doubling exact (the Cooley–Tukey step). `--grow-from N` with
    /// N = --n learns at full size from random initialisation instead.
    #[arg(long)]
    grow_from: Option<usize>,
    /// With --grow-from: seeds of the starting size, each doubled three times; the lineage
    /// that got furthest with the fewest candidates polished is grown further.
    #[arg(long, default_value_t = 4)]
    grow_tries: usize,
    /// Run the Levenberg–Marquardt polish on a candidate whose RMSE after L-BFGS is within
    /// this fraction of the target's RMS entry (`LearnOptions::gn_start_rel_rmse`).
    #[arg(long, default_value_t = 1e-3)]
    gn_start: f64,
    /// Levenberg–Marquardt iterations per polish (0: none).
    #[arg(long, default_value_t = 40)]
    gn_iters: usize,
    /// Polishes from partly redrawn twiddles after a candidate's first one misses
    /// (`LearnOptions::polish_restarts`).
    #[arg(long, default_value_t = 10)]
    polish_restarts: usize,
}

struct Row {
    transform: Transform,
    n: usize,
    structure: StructureArg,
    precision: Precision,
    seed: u64,
    rep: LearnReport,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let sizes: Vec<usize> = if args.sweep {
        (3..=args.max_n.max(8).ilog2())
            .map(|k| 1usize << k)
            .collect()
    } else {
        vec![args.n]
    };
    let mut rows = Vec::new();
    for &t in &args.transform {
        for &n in &sizes {
            let row = match args.precision {
                Precision::F32 => run::<C32>(&args, t, n)?.0,
                Precision::F64 => run::<C64>(&args, t, n)?.0,
                Precision::F32FromF64 => run_f32_from_f64(&args, t, n)?,
            };
            println!("{}", line(&row));
            rows.push(row);
        }
    }
    let table = markdown(&rows);
    println!("\n{table}");
    if let Some(path) = &args.out {
        std::fs::write(path, &table)?;
        println!("table written to {}", path.display());
    }
    Ok(())
}

fn default_structure(t: Transform) -> StructureArg {
    match t {
        Transform::Dct | Transform::Dst => StructureArg::Bpp,
        Transform::Conv => StructureArg::Bpbp,
        _ => StructureArg::Bp,
    }
}

/// The structure argument, the structure and the logit sharing of a run.
fn structure_of(args: &Args, t: Transform) -> (StructureArg, Structure, LogitSharing) {
    let structure = args.structure.unwrap_or(default_structure(t));
    let sharing = match args.sharing {
        Some(SharingArg::Shared) => LogitSharing::Shared,
        Some(SharingArg::PerLevel) => LogitSharing::PerLevel,
        None if structure == StructureArg::Bp => LogitSharing::Shared,
        None => LogitSharing::PerLevel,
    };
    let s = match structure {
        StructureArg::Bp => Structure::Bp,
        StructureArg::Bpp => Structure::Bpp,
        StructureArg::Bpbp => Structure::Bpbp,
    };
    (structure, s, sharing)
}

/// Hadamard and convolution are exactly complex BP/BPBP products with zero imaginary part,
/// so they are fitted as complex matrices; the others only as the real part of one.
fn is_real_part(t: Transform) -> bool {
    matches!(
        t,
        Transform::Dct
            | Transform::Dst
            | Transform::Hartley
            | Transform::Legendre
            | Transform::Randn
    )
}

/// Learn in f64, round every parameter to f32 (the hardened permutations are unchanged) and
/// report the f32 product's RMSE against the f32 target.
fn run_f32_from_f64(
    args: &Args,
    t: Transform,
    n: usize,
) -> Result<Row, Box<dyn std::error::Error>> {
    let (mut row, m64) = run::<C64>(args, t, n)?;
    let (_, s, sharing) = structure_of(args, t);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut m32 = ButterflyProduct::<C32>::new(n, s, Init::Randn, sharing, &mut rng)?;
    for (a, b) in m32.params_mut().iter_mut().zip(m64.params()) {
        *a = kaleidoscope::scalar::cast(*b);
    }
    m32.harden();
    if m32.permutations() != m64.permutations() {
        return Err("rounding to f32 changed a hardened permutation".into());
    }
    let target32 = target(t, n, args.seed)?.mapv(|z| C32::new(z.re as f32, z.im as f32));
    row.rep.rmse = rmse(&m32, target32.view(), is_real_part(t))?;
    row.precision = Precision::F32FromF64;
    Ok(row)
}

fn run<T: Scalar>(
    args: &Args,
    t: Transform,
    n: usize,
) -> Result<(Row, ButterflyProduct<T>), Box<dyn std::error::Error>> {
    let (structure, s, sharing) = structure_of(args, t);
    let target64 = target(t, n, args.seed)?;
    let target = target64.mapv(|z| T::from_parts(z.re, z.im));
    let real_part = is_real_part(t);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut model = ButterflyProduct::<T>::new(n, s, Init::Randn, sharing, &mut rng)?;
    let opts = LearnOptions {
        soft_steps: args.soft_steps,
        soft_sample_rows: args.soft_rows.unwrap_or(n.min(256)),
        restarts: args.restarts,
        seed: args.seed,
        real_part,
        time_limit: args.time_limit,
        gn_start_rel_rmse: args.gn_start,
        gn_iters: args.gn_iters,
        polish_restarts: args.polish_restarts,
        target_rmse: match args.precision {
            Precision::F32 => 1e-7,
            Precision::F64 | Precision::F32FromF64 => 1e-12,
        },
        ..LearnOptions::default()
    };
    let per = (opts.soft_steps + opts.polish_steps) as u64;
    let bar = ProgressBar::new(per).with_style(
        ProgressStyle::with_template("{prefix:>16} {bar:40} {pos}/{len} {msg} [{elapsed}]")
            .expect("template"),
    );
    bar.set_prefix(format!("{t:?} N={n}"));
    let mut on_step = |step: usize, rmse: f64| {
        if step as u64 >= bar.length().unwrap_or(0) {
            bar.inc_length(per);
        }
        bar.set_position(step as u64 + 1);
        if step.is_multiple_of(10) {
            bar.set_message(format!("RMSE {rmse:.2e}"));
        }
    };
    // The convolution's BPBP is grown from N = 2 unless told otherwise: the soft search
    // fails from N = 16, and doubling needs the Cooley–Tukey factorisation at the start.
    let grow_from = args.grow_from.or(match (t, s) {
        (Transform::Conv, Structure::Bpbp) => Some(2),
        (Transform::Dct | Transform::Dst, Structure::Bpp) => Some(16),
        _ => None,
    });
    let rep = match grow_from {
        Some(n0) if n0 < n => {
            let family = |m: usize| -> Result<Array2<T>, kaleidoscope::Error> {
                let t64 = self::target(t, m, args.seed).map_err(|e| {
                    kaleidoscope::Error::InvalidArgument {
                        what: "transform",
                        message: e.to_string(),
                    }
                })?;
                Ok(t64.mapv(|z| T::from_parts(z.re, z.im)))
            };
            let t0 = std::time::Instant::now();
            let (grown, steps) =
                learn_by_growing(n0, n, s, &family, &opts, args.grow_tries, &mut on_step)?;
            for st in &steps {
                bar.suspend(|| {
                    println!(
                        "  N={}: RMSE {:.2e} (polish started at {:.2e}), {} candidate(s) polished, {:.1}s{}",
                        st.n,
                        st.rmse,
                        st.report.as_ref().map_or(f64::NAN, |r| r.hardened_rmse),
                        st.polished,
                        st.seconds,
                        st.inserted
                            .map(|i| format!(
                                ", inserted level {} of permutation {} with gates {:?}{}{}",
                                i.level,
                                i.factor,
                                i.gates,
                                if i.replicate_others { " (others replicated)" } else { "" },
                                i.inner_gates
                                    .map(|g| format!(" and level 0 of permutation 0 with {g:?}"))
                                    .unwrap_or_default()
                            ))
                            .unwrap_or_default()
                    )
                });
            }
            if grown.n() != n {
                return Err(format!(
                    "growing from N = {n0} stopped at N = {} (see the lines above)",
                    grown.n()
                )
                .into());
            }
            model = grown;
            let last = steps
                .last()
                .and_then(|st| st.report.clone())
                .ok_or("no report")?;
            LearnReport {
                seconds: t0.elapsed().as_secs_f64(),
                steps: steps
                    .iter()
                    .filter_map(|st| st.report.as_ref())
                    .map(|r| r.steps)
                    .sum(),
                permutations: model.permutations(),
                soft_rmse: f64::NAN,
                ..last
            }
        }
        _ => learn_transform(&mut model, target.view(), &opts, &mut on_step)?,
    };
    bar.finish_and_clear();
    if args.plot {
        let name = format!("{t:?}_{n}").to_lowercase();
        plot_error(
            &model.to_dense().mapv(|z| z.to_c64()),
            &target64,
            real_part,
            &args.plot_dir.join(format!("learn_{name}_error.png")),
        )?;
        plot_twiddles(
            &model,
            &args.plot_dir.join(format!("learn_{name}_twiddles.png")),
        )?;
    }
    let row = Row {
        transform: t,
        n,
        structure,
        precision: args.precision,
        seed: args.seed,
        rep,
    };
    Ok((row, model))
}

/// The dense target, complex (real transforms have zero imaginary part).
fn target(t: Transform, n: usize, seed: u64) -> Result<Array2<C64>, Box<dyn std::error::Error>> {
    if !n.is_power_of_two() || n < 2 {
        return Err(format!("--n must be a power of two ≥ 2, got {n}").into());
    }
    let nf = n as f64;
    let real = |f: &dyn Fn(usize, usize) -> f64| {
        Array2::from_shape_fn((n, n), |(k, j)| C64::new(f(k, j), 0.0))
    };
    let m = match t {
        Transform::Dft => Array2::from_shape_fn((n, n), |(k, j)| {
            let a = -2.0 * PI * ((j * k) % n) as f64 / nf;
            C64::new(a.cos(), a.sin()) / nf.sqrt()
        }),
        Transform::Dct => real(&|k, j| {
            let s = if k == 0 { 1.0 / nf } else { 2.0 / nf }.sqrt();
            s * (PI * (k * (2 * j + 1)) as f64 / (2.0 * nf)).cos()
        }),
        Transform::Dst => real(&|k, j| {
            let s = if k == n - 1 { 1.0 / nf } else { 2.0 / nf }.sqrt();
            s * (PI * ((k + 1) * (2 * j + 1)) as f64 / (2.0 * nf)).sin()
        }),
        Transform::Hadamard => real(&|k, j| {
            let s = if (k & j).count_ones() % 2 == 0 {
                1.0
            } else {
                -1.0
            };
            s / nf.sqrt()
        }),
        Transform::Hartley => real(&|k, j| {
            let a = 2.0 * PI * ((j * k) % n) as f64 / nf;
            (a.cos() + a.sin()) / nf.sqrt()
        }),
        Transform::Conv => {
            let mut rng = StdRng::seed_from_u64(seed ^ 0xC0_4E);
            let h: Vec<f64> = (0..n)
                .map(|_| f64::randn(&mut rng, 1.0 / nf.sqrt()))
                .collect();
            real(&|k, j| h[(k + n - j) % n])
        }
        Transform::Legendre => {
            let mut p = Array2::<f64>::zeros((n, n));
            for j in 0..n {
                let x = -1.0 + (2 * j + 1) as f64 / nf;
                let (mut a, mut b) = (1.0, x);
                p[(0, j)] = 1.0;
                if n > 1 {
                    p[(1, j)] = x;
                }
                for k in 2..n {
                    let c = ((2 * k - 1) as f64 * x * b - (k - 1) as f64 * a) / k as f64;
                    (a, b) = (b, c);
                    p[(k, j)] = c;
                }
            }
            for mut row in p.rows_mut() {
                let norm = row.dot(&row).sqrt();
                row.mapv_inplace(|v| v / norm);
            }
            p.mapv(|v| C64::new(v, 0.0))
        }
        Transform::Randn => {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5A4D);
            real(&|_, _| 0.0).mapv(|_| C64::new(f64::randn(&mut rng, 1.0 / nf.sqrt()), 0.0))
        }
    };
    Ok(m)
}

fn perm_label(p: &Permutation) -> String {
    let n = p.len();
    if p.is_identity() {
        return "identity".into();
    }
    if Permutation::bit_reversal(n).is_ok_and(|b| &b == p) {
        return "bit-reversal".into();
    }
    let s = p.as_slice();
    let shown: Vec<String> = s.iter().take(16).map(|v| v.to_string()).collect();
    let more = if n > 16 { ", …" } else { "" };
    format!("[{}{more}]", shown.join(", "))
}

fn perms(rep: &LearnReport) -> String {
    rep.permutations
        .iter()
        .map(perm_label)
        .collect::<Vec<_>>()
        .join(" · ")
}

fn line(r: &Row) -> String {
    format!(
        "{:?} N={} {:?} {:?} seed={}: RMSE {:.2e} (soft phase {:.2e}), {} steps + {} L-BFGS + {} GN, \
         {} candidate(s), {:.1}s{}; P = {}",
        r.transform,
        r.n,
        r.structure,
        r.precision,
        r.seed,
        r.rep.rmse,
        r.rep.soft_rmse,
        r.rep.steps,
        r.rep.lbfgs_iters,
        r.rep.gn_iters,
        r.rep.attempts.len(),
        r.rep.seconds,
        limit_mark(&r.rep),
        perms(&r.rep)
    )
}

fn limit_mark(rep: &LearnReport) -> &'static str {
    if rep.timed_out {
        " (time limit)"
    } else {
        ""
    }
}

fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| transform | N | structure | precision | seed | RMSE | steps | L-BFGS | GN | candidates | seconds | learned permutation |\n\
         |---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {:?} | {} | {:?} | {:?} | {} | {:.2e} | {} | {} | {} | {} | {:.1}{} | {} |",
            r.transform,
            r.n,
            r.structure,
            r.precision,
            r.seed,
            r.rep.rmse,
            r.rep.steps,
            r.rep.lbfgs_iters,
            r.rep.gn_iters,
            r.rep.attempts.len(),
            r.rep.seconds,
            limit_mark(&r.rep),
            perms(&r.rep)
        );
    }
    s
}

/// A heat map of `values` (rows × cols) on a log10 colour scale.
fn heatmap(
    values: &Array2<f64>,
    title: &str,
    path: &PathBuf,
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let (h, w) = values.dim();
    let root = BitMapBackend::new(path, (900, 900 * h.max(1) as u32 / w.max(1) as u32 + 60))
        .into_drawing_area();
    root.fill(&WHITE)?;
    let lo = values
        .iter()
        .filter(|v| **v > 0.0)
        .fold(f64::INFINITY, |a, &v| a.min(v))
        .max(1e-17)
        .log10();
    let hi = values.iter().fold(1e-300f64, |a, &v| a.max(v)).log10();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{title} (log10 from {lo:.1} to {hi:.1})"),
            ("sans-serif", 20),
        )
        .margin(10)
        .build_cartesian_2d(0..w, 0..h)?;
    chart.draw_series(values.indexed_iter().map(|((i, j), &v)| {
        let t = if hi > lo {
            ((v.max(1e-300).log10() - lo) / (hi - lo)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let c = HSLColor(0.7 * (1.0 - t), 0.9, 0.3 + 0.3 * t);
        Rectangle::new([(j, h - 1 - i), (j + 1, h - i)], c.filled())
    }))?;
    root.present()?;
    println!("wrote {}", path.display());
    Ok(())
}

fn plot_error(
    learned: &Array2<C64>,
    target: &Array2<C64>,
    real_part: bool,
    path: &PathBuf,
) -> Result<(), Box<dyn std::error::Error>> {
    let err = Array2::from_shape_fn(target.dim(), |ij| {
        let mut e = learned[ij] - target[ij];
        if real_part {
            e.im = 0.0;
        }
        e.norm()
    });
    heatmap(&err, "|learned − target|", path)
}

/// |twiddle| of every butterfly factor: one row per level, the 2×2 blocks side by side.
fn plot_twiddles<T: Scalar>(
    model: &ButterflyProduct<T>,
    path: &PathBuf,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for f in model.factors() {
        if let Factor::Butterfly(b) = f {
            let tw = b.twiddle_view();
            let (_, nb, levels, pairs, _, _) = tw.dim();
            for blk in 0..nb {
                for l in 0..levels {
                    let mut row = Vec::with_capacity(pairs * 4);
                    for p in 0..pairs {
                        for (a, c) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                            row.push(tw[(0, blk, l, p, a, c)].to_c64().norm());
                        }
                    }
                    rows.push(row);
                }
            }
        }
    }
    let w = rows.first().map_or(0, Vec::len);
    let values = Array2::from_shape_fn((rows.len(), w), |(i, j)| rows[i][j]);
    heatmap(
        &values,
        "|twiddles| (rows: levels; columns: 2×2 blocks)",
        path,
    )
}
