//! Where low displacement rank beats dense: times `y = x Wᵀ` (f32, a batch of rows) for a
//! Toeplitz-like LDR matrix (FFT multiply, `O(r n log n)` per row), a learned-subdiagonal LDR
//! matrix (divide-and-conquer Krylov multiply, `O(r n log² n)`) and faer's dense GEMM, for
//! `n = 1024 … 16384` and displacement ranks `r = 1 … 16`, then prints for each `r` the
//! crossover: the smallest `n` from which LDR is faster than dense at every larger measured
//! size. A second table compares the subdiagonal multiply with Horner's rule (`O(r n²)`,
//! [`Ldr::apply_horner`]) on the same matrix.
//!
//! ```sh
//! cargo run --release --example ldr_crossover              # full run, a few minutes
//! cargo run --release --example ldr_crossover -- --quick   # n ≤ 4096, under a minute
//! taskset -c 0 cargo run --release --example ldr_crossover -- --threads 1
//! ```

use clap::Parser;
use kaleidoscope::{Dense, Ldr, LdrClass, LdrConfig, LinearMap, Scalar};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::hint::black_box;
use std::time::Instant;

/// Time LDR multiplies against dense GEMM and print the crossover size for each rank.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Sizes n up to 4096, ranks 1, 4, 16, two timed repetitions.
    #[arg(long)]
    quick: bool,
    /// Sizes n (comma-separated; default 1024,2048,4096,8192,16384).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Displacement ranks (comma-separated; default 1,2,4,8,16).
    #[arg(long, value_delimiter = ',')]
    ranks: Option<Vec<usize>>,
    /// Ranks of the learned-subdiagonal class (comma-separated; default 1,4,16).
    #[arg(long, value_delimiter = ',')]
    subdiagonal_ranks: Option<Vec<usize>>,
    /// Rows per multiply.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Timed repetitions per measurement (the median is reported); dense at n ≥ 16384 and
    /// Horner's rule are timed `min(reps, 2)` times.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Largest n for the Horner comparison (its cost grows as n²).
    #[arg(long, default_value_t = 4096)]
    horner_max_n: usize,
    /// Rows per multiply in the Horner comparison.
    #[arg(long, default_value_t = 8)]
    horner_batch: usize,
    /// Worker threads for LDR and faer (default: rayon's default, all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// Median wall time of `reps` runs after one warm-up run.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut v: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time_map(map: &dyn LinearMap<f32>, x: &Array2<f32>, reps: usize) -> f64 {
    let mut y = Array2::zeros((x.nrows(), map.out_features()));
    time(reps, || {
        map.apply_into(black_box(x.view()), y.view_mut())
            .expect("shapes")
    })
}

const SUBDIAGONAL: LdrClass = LdrClass::Subdiagonal {
    corner: true,
    tied: false,
};

/// The smallest size from which `faster(n)` holds at every larger measured size.
fn crossover(sizes: &[usize], faster: impl Fn(usize) -> Option<bool>) -> String {
    let mut from = None;
    for &n in sizes.iter().rev() {
        match faster(n) {
            Some(true) => from = Some(n),
            Some(false) => break,
            None => {}
        }
    }
    match from {
        Some(n) if Some(&n) == sizes.first() => format!("≤ {n}"),
        Some(n) => format!("{n}"),
        None => format!("> {}", sizes.last().copied().unwrap_or(0)),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()?;
        faer::set_global_parallelism(if t == 1 {
            faer::Par::Seq
        } else {
            faer::Par::rayon(t)
        });
    }
    let sizes = args.sizes.clone().unwrap_or_else(|| {
        let max = if args.quick { 4096 } else { 16384 };
        (10..=14).map(|p| 1 << p).filter(|&n| n <= max).collect()
    });
    let ranks = args.ranks.clone().unwrap_or_else(|| {
        if args.quick {
            vec![1, 4, 16]
        } else {
            vec![1, 2, 4, 8, 16]
        }
    });
    let sub_ranks = args
        .subdiagonal_ranks
        .clone()
        .unwrap_or_else(|| vec![1, 4, 16]);
    let reps = if args.quick { 2 } else { args.reps };
    let batch = args.batch;
    println!(
        "y = x Wᵀ, f32, batch {batch}, {} threads, median of {reps} runs (ms)\n",
        rayon::current_num_threads()
    );
    let mut rng = StdRng::seed_from_u64(0);
    let mut dense_ms = Vec::new();
    let mut tl_ms: Vec<Vec<f64>> = Vec::new();
    let mut sd_ms: Vec<Vec<f64>> = Vec::new();
    print!("{:>6} {:>10}", "n", "dense");
    for r in &ranks {
        print!(" {:>10}", format!("TL r={r}"));
    }
    for r in &sub_ranks {
        print!(" {:>10}", format!("SD r={r}"));
    }
    println!();
    for &n in &sizes {
        let x = Array2::from_shape_simple_fn((batch, n), || f32::randn(&mut rng, 1.0));
        let d = Dense::<f32>::random(n, n, false, &mut rng)?;
        let dense = time_map(&d, &x, if n >= 16384 { reps.min(2) } else { reps });
        drop(d);
        print!("{n:>6} {:>10.3}", dense * 1e3);
        dense_ms.push(dense * 1e3);
        let mut tl = Vec::new();
        for &r in &ranks {
            let cfg = LdrConfig {
                class: LdrClass::ToeplitzLike { corner: true },
                rank: r,
                bias: false,
            };
            let m = Ldr::<f32>::new(n, n, cfg, &mut rng)?;
            let t = time_map(&m, &x, reps) * 1e3;
            print!(" {t:>10.3}");
            tl.push(t);
        }
        let mut sd = Vec::new();
        for &r in &sub_ranks {
            let cfg = LdrConfig {
                class: SUBDIAGONAL,
                rank: r,
                bias: false,
            };
            let m = Ldr::<f32>::new(n, n, cfg, &mut rng)?;
            let t = time_map(&m, &x, reps) * 1e3;
            print!(" {t:>10.3}");
            sd.push(t);
        }
        println!();
        tl_ms.push(tl);
        sd_ms.push(sd);
    }

    println!("\nspeed-up over dense (dense time / LDR time)\n");
    print!("{:>6}", "n");
    for r in &ranks {
        print!(" {:>10}", format!("TL r={r}"));
    }
    for r in &sub_ranks {
        print!(" {:>10}", format!("SD r={r}"));
    }
    println!();
    for (i, &n) in sizes.iter().enumerate() {
        print!("{n:>6}");
        for t in tl_ms[i].iter().chain(&sd_ms[i]) {
            print!(" {:>9.2}x", dense_ms[i] / t);
        }
        println!();
    }

    println!("\ncrossover: LDR faster than dense from n = (at every larger measured n)\n");
    println!("{:>4} {:>14} {:>14}", "r", "Toeplitz-like", "subdiagonal");
    let mut all: Vec<usize> = ranks.iter().chain(&sub_ranks).copied().collect();
    all.sort_unstable();
    all.dedup();
    for r in all {
        let at = |list: &[usize], ms: &[Vec<f64>], n: usize| {
            let i = sizes.iter().position(|&s| s == n)?;
            let j = list.iter().position(|&q| q == r)?;
            Some(ms[i][j] < dense_ms[i])
        };
        let tl = if ranks.contains(&r) {
            crossover(&sizes, |n| at(&ranks, &tl_ms, n))
        } else {
            "-".into()
        };
        let sd = if sub_ranks.contains(&r) {
            crossover(&sizes, |n| at(&sub_ranks, &sd_ms, n))
        } else {
            "-".into()
        };
        println!("{r:>4} {tl:>14} {sd:>14}");
    }
    println!(
        "targets (issue 3): faster than dense from n = 2048 at r ≤ 4, from n = 8192 at r = 16"
    );

    let horner_sizes: Vec<usize> = [256, 512, 1024, 2048, 4096, 8192]
        .into_iter()
        .filter(|&n| n <= args.horner_max_n)
        .collect();
    if horner_sizes.is_empty() {
        return Ok(());
    }
    let hb = args.horner_batch;
    println!(
        "\nlearned subdiagonal with corners, r = 1, batch {hb}: divide and conquer \
         (O(n log² n)) vs Horner's rule (O(n²)), ms\n"
    );
    println!("{:>6} {:>12} {:>12} {:>9}", "n", "fast", "Horner", "ratio");
    for n in horner_sizes {
        let cfg = LdrConfig {
            class: SUBDIAGONAL,
            rank: 1,
            bias: false,
        };
        let m = Ldr::<f32>::new(n, n, cfg, &mut rng)?;
        let x = Array2::from_shape_simple_fn((hb, n), || f32::randn(&mut rng, 1.0));
        let fast = time_map(&m, &x, reps) * 1e3;
        let slow = time(reps.min(2), || {
            black_box(m.apply_horner(black_box(x.view())).expect("shapes"));
        }) * 1e3;
        println!("{n:>6} {fast:>12.3} {slow:>12.3} {:>8.1}x", slow / fast);
    }
    Ok(())
}
