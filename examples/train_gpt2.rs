//! Train a small GPT-2 on any UTF-8 text file (byte-level tokens) on the CPU, with dense or
//! structured (Monarch, block-diagonal, butterfly, low-rank, …) MLP and attention projections,
//! optionally switching every structured layer to its dense product late in training (reverse
//! sparsification, Dao et al., *Monarch*, ICML 2022, §5).
//!
//! ```sh
//! # dense baseline, Monarch MLP, Monarch MLP finished dense for the last 10% of steps
//! cargo run --release --example train_gpt2 -- --data input.txt --name dense --summary runs.csv
//! cargo run --release --example train_gpt2 -- --data input.txt --mlp monarch:4 --name monarch --summary runs.csv
//! cargo run --release --example train_gpt2 -- --data input.txt --mlp monarch:4 --sparse-to-dense-at 0.9 \
//!     --name monarch-s2d --summary runs.csv
//! # one PNG with the three validation curves, and the comparison table
//! cargo run --release --example train_gpt2 -- --plot-only --compare dense.csv,monarch.csv,monarch-s2d.csv \
//!     --summary runs.csv --plot curves.png
//! # a smoke run in seconds
//! cargo run --release --example train_gpt2 -- --data input.txt --quick
//! ```

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kaleidoscope::nn::gpt2::{Gpt2, Gpt2Config, Gpt2Trainer, TextData, TrainOptions};
use kaleidoscope::nn::{Structure, TensorStore};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Train a byte-level GPT-2 with structured (or dense) linear layers on a text file.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
struct Args {
    /// The training text (any UTF-8 file; byte-level tokens).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Transformer blocks.
    #[arg(long, default_value_t = 4)]
    layers: usize,
    /// Width of the residual stream.
    #[arg(long, default_value_t = 256)]
    d_model: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Context length (tokens per training sequence).
    #[arg(long, default_value_t = 128)]
    ctx: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Training steps.
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Peak learning rate (AdamW, linear warm-up then cosine decay to lr·min_lr_factor).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Warm-up steps (default: 5% of --steps).
    #[arg(long)]
    warmup: Option<usize>,
    /// Learning-rate multiplier of the structured (non-dense) linear layers. A Monarch block
    /// has nblocks× smaller fan-in than the dense layer, so (as in µP) it learns slower at the
    /// same rate: nblocks (4 for monarch:4) closed most of the gap to dense in 1500-step runs,
    /// not in 3000-step runs (BENCHMARKS.md).
    #[arg(long, default_value_t = 1.0)]
    structured_lr_scale: f64,
    /// Learning-rate multiplier of the layers --sparse-to-dense-at switched to dense (they
    /// restart with fresh AdamW moments late in the cosine, where the shared rate is low).
    #[arg(long, default_value_t = 1.0)]
    switched_lr_scale: f64,
    /// Final learning rate as a fraction of --lr.
    #[arg(long, default_value_t = 0.1)]
    min_lr_factor: f64,
    /// AdamW's decoupled weight decay.
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f64,
    /// Clip the global gradient norm (0: off).
    #[arg(long, default_value_t = 1.0)]
    clip: f64,
    /// Random seed (initialisation and the training batches: runs with the same seed, data,
    /// --batch and --ctx see the same tokens).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Structure of the MLP's fc1/fc2: dense, monarch:N, blockdiag:N, butterfly[:N], lowrank:R,
    /// pixelfly:N[:LEVELS[:R]], ldr:CLASS:R.
    #[arg(long, default_value = "dense")]
    mlp: Structure,
    /// Structure of the attention's qkv and output projections (same spellings as --mlp).
    #[arg(long, default_value = "dense")]
    attn_proj: Structure,
    /// MLP hidden width as a multiple of --d-model.
    #[arg(long, default_value_t = 4)]
    mlp_ratio: usize,
    /// Switch every structured layer to its dense product at this fraction of the steps
    /// (reverse sparsification), e.g. 0.9.
    #[arg(long)]
    sparse_to_dense_at: Option<f64>,
    /// Fraction of the text held out for validation (its end).
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// Evaluate the validation loss every this many steps (and at the end).
    #[arg(long, default_value_t = 100)]
    eval_every: usize,
    /// Validation batches per evaluation (fixed windows, the same for every run).
    #[arg(long, default_value_t = 16)]
    eval_batches: usize,
    /// Name of the run in the summary (default: from the structures).
    #[arg(long)]
    name: Option<String>,
    /// CSV log of every step (default: NAME.csv).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Append a one-line summary of the run to this CSV (and with --plot-only, print it).
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Write a PNG of the training and validation loss curves.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Other runs' CSV logs whose validation curves join the plot (comma-separated).
    #[arg(long, value_delimiter = ',')]
    compare: Vec<PathBuf>,
    /// Do not train: draw --plot from the --compare logs and print the --summary table.
    #[arg(long)]
    plot_only: bool,
    /// Save a checkpoint (safetensors) here at the end and every --save-every steps.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Checkpoint interval in steps (0: only at the end).
    #[arg(long, default_value_t = 0)]
    save_every: usize,
    /// Resume from this checkpoint (same sizes and --steps; its step count, structures, data
    /// position and AdamW's moments carry on, so the run continues exactly).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Stop cleanly once this many seconds of training have passed, saving --checkpoint
    /// (required) to --resume from later with the same arguments.
    #[arg(long)]
    time_limit: Option<f64>,
    /// Stop cleanly after this step, saving --checkpoint (required): branch several runs
    /// that share their first steps, e.g. resume one checkpoint with different
    /// --switched-lr-scale values.
    #[arg(long)]
    stop_at: Option<usize>,
    /// Tokens of the sample generated at the end (0: none).
    #[arg(long, default_value_t = 300)]
    sample_len: usize,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    /// Prompt of the sample.
    #[arg(long, default_value = "\n")]
    prompt: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// A tiny configuration for a smoke run (2 layers, d 64, ctx 64, 60 steps).
    #[arg(long)]
    quick: bool,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn default_name(a: &Args) -> String {
    let mut n = format!("mlp-{}", a.mlp);
    if !a.attn_proj.is_dense() {
        n.push_str(&format!("_attn-{}", a.attn_proj));
    }
    if let Some(f) = a.sparse_to_dense_at {
        n.push_str(&format!("_s2d-{f}"));
    }
    n.replace(':', "")
}

fn run(mut a: Args) -> BoxResult<()> {
    if let Some(t) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()?;
        faer::set_global_parallelism(faer::Par::rayon(t));
    }
    if a.plot_only {
        return plot_only(&a);
    }
    if a.quick {
        (a.layers, a.d_model, a.heads, a.ctx, a.batch, a.steps) = (2, 64, 4, 64, 8, 60);
        (a.eval_every, a.eval_batches, a.sample_len) = (20, 4, 80);
    }
    if let Some(f) = a.sparse_to_dense_at {
        if !(f > 0.0 && f <= 1.0) {
            return Err(format!("--sparse-to-dense-at must be in (0, 1], got {f}").into());
        }
    }
    for (what, v) in [
        ("--steps", a.steps),
        ("--batch", a.batch),
        ("--eval-every", a.eval_every),
        ("--eval-batches", a.eval_batches),
    ] {
        if v == 0 {
            return Err(format!("{what} must be at least 1").into());
        }
    }
    let data_path = a
        .data
        .clone()
        .ok_or("--data PATH is required (any UTF-8 text file)")?;
    let data = TextData::from_file(&data_path, a.val_fraction)?;
    data.check_seq(a.ctx)?;
    let config = Gpt2Config {
        vocab_size: data.vocab_size(),
        ctx: a.ctx,
        d_model: a.d_model,
        heads: a.heads,
        layers: a.layers,
        mlp_ratio: a.mlp_ratio,
        mlp: a.mlp,
        attn: a.attn_proj,
    };
    config.validate()?;
    let name = a.name.clone().unwrap_or_else(|| default_name(&a));
    let csv_path = a
        .csv
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}.csv")));

    let mut rng = StdRng::seed_from_u64(a.seed);
    let mut model = Gpt2::<f32>::new(config, &mut rng)?;
    let mut start_step = 0;
    let mut resumed_from = None;
    if let Some(path) = &a.resume {
        let store = TensorStore::load(path)?;
        model = Gpt2::load_matching(&store, &config)?;
        start_step = store
            .require_metadata("train.step")?
            .parse()
            .map_err(|_| format!("{}: bad train.step metadata", path.display()))?;
        if start_step >= a.steps {
            return Err(format!(
                "{}: checkpoint is at step {start_step}, nothing left to train for --steps {}",
                path.display(),
                a.steps
            )
            .into());
        }
        resumed_from = Some(store);
    }
    if let Some(t) = a.time_limit {
        if !(t.is_finite() && t > 0.0) {
            return Err(
                format!("--time-limit must be a positive number of seconds, got {t}").into(),
            );
        }
        if a.checkpoint.is_none() {
            return Err("--time-limit needs --checkpoint PATH to save the run to".into());
        }
    }
    if let Some(s) = a.stop_at {
        if a.checkpoint.is_none() {
            return Err("--stop-at needs --checkpoint PATH to save the run to".into());
        }
        if s <= start_step || s >= a.steps {
            return Err(format!(
                "--stop-at {s} must lie after the start step {start_step} and before --steps {}",
                a.steps
            )
            .into());
        }
    }
    let initial_params = (model.num_params(), model.mlp_params(), model.attn_params());
    let switch_step = a
        .sparse_to_dense_at
        .map(|f| ((f * a.steps as f64).round() as usize).min(a.steps));
    let opts = TrainOptions {
        lr: a.lr,
        weight_decay: a.weight_decay,
        betas: (0.9, 0.95),
        warmup: a.warmup.unwrap_or(a.steps / 20),
        total_steps: a.steps,
        min_lr_factor: a.min_lr_factor,
        clip: a.clip,
        structured_lr_scale: a.structured_lr_scale,
        switched_lr_scale: a.switched_lr_scale,
    };
    let mut trainer = Gpt2Trainer::new(&model, opts)?;
    trainer.set_step_count(start_step);
    let mut best_val = f64::INFINITY;
    if let Some(store) = &resumed_from {
        if trainer.load_from(&model, store)? {
            if trainer.step_count() != start_step {
                return Err(format!(
                    "checkpoint: optimiser at step {}, weights at step {start_step}",
                    trainer.step_count()
                )
                .into());
            }
        } else {
            println!("checkpoint has no optimiser state: AdamW's moments restart from zero");
        }
        if let Some(b) = store.metadata("train.best_val") {
            best_val = b
                .parse()
                .map_err(|_| format!("checkpoint: bad train.best_val metadata `{b}`"))?;
        }
    }

    println!(
        "{name}: {} layers, d {}, {} heads, ctx {}, batch {}, {} steps; mlp {}, attn {}{}",
        a.layers,
        a.d_model,
        a.heads,
        a.ctx,
        a.batch,
        a.steps,
        config.mlp,
        config.attn,
        switch_step.map_or(String::new(), |s| format!(", dense from step {s}"))
    );
    println!(
        "data {}: {} training and {} validation tokens; {} threads",
        data_path.display(),
        data.train().len(),
        data.val().len(),
        rayon::current_num_threads()
    );
    println!(
        "parameters: {} total, {} MLP, {} attention projections{}",
        initial_params.0,
        initial_params.1,
        initial_params.2,
        if start_step > 0 {
            format!(" (resumed at step {start_step})")
        } else {
            String::new()
        }
    );

    let new_csv = start_step == 0 || !csv_path.exists();
    let mut csv = OpenOptions::new()
        .create(true)
        .write(true)
        .append(!new_csv)
        .truncate(new_csv)
        .open(&csv_path)
        .map_err(|e| format!("{}: {e}", csv_path.display()))?;
    if new_csv {
        writeln!(
            csv,
            "step,train_loss,val_loss,lr,grad_norm,step_ms,tokens_per_s,phase"
        )?;
    }

    let bar = ProgressBar::new(a.steps as u64).with_style(ProgressStyle::with_template(
        "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
    )?);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_position(start_step as u64);
    let mut cache = model.cache(a.batch, a.ctx);
    let mut grads = model.zero_grads();
    let tokens_per_step = (a.batch * a.ctx) as f64;
    let mut step_secs = Vec::new();
    let mut recent: Vec<f64> = Vec::new();
    let mut last_val = f64::NAN;
    let mut dense_params = None;
    let run_start = Instant::now();
    for step in start_step..a.steps {
        if switch_step.is_some_and(|s| step >= s) && model.is_structured() {
            model = model.to_dense();
            trainer.sync(&model)?;
            grads = model.zero_grads();
            dense_params = Some(model.num_params());
            say(
                &bar,
                format!(
                    "step {step}: switched to dense layers ({} parameters)",
                    model.num_params()
                ),
            );
        }
        let mut batch_rng =
            StdRng::seed_from_u64(a.seed ^ (step as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let batch = data.train_batch(a.batch, a.ctx, &mut batch_rng)?;
        let t0 = Instant::now();
        let loss = model.forward_backward(&batch, &mut cache, &mut grads)?;
        let info = trainer.step(&mut model, &mut grads)?;
        let dt = t0.elapsed().as_secs_f64();
        step_secs.push(dt);
        recent.push(loss);
        if recent.len() > 50 {
            recent.remove(0);
        }
        let done = step + 1;
        let mut val_field = String::new();
        if done % a.eval_every == 0 || done == a.steps {
            last_val = evaluate(&model, &data, &a, &mut cache)?;
            best_val = best_val.min(last_val);
            val_field = format!("{last_val:.5}");
            say(
                &bar,
                format!(
                    "step {done:>6}: train {:.4}  val {last_val:.4}  ({:.1} ms/step)",
                    mean(&recent),
                    1e3 * mean(&step_secs[step_secs.len().saturating_sub(a.eval_every)..])
                ),
            );
        }
        writeln!(
            csv,
            "{done},{loss:.5},{val_field},{:.3e},{:.4},{:.2},{:.0},{}",
            info.lr,
            info.grad_norm,
            dt * 1e3,
            tokens_per_step / dt,
            if model.is_structured() {
                "structured"
            } else {
                "dense"
            }
        )?;
        bar.set_message(format!(
            "loss {:.4} | val {last_val:.4} | {:.0} tok/s",
            mean(&recent),
            tokens_per_step / dt
        ));
        bar.inc(1);
        if let Some(path) = &a.checkpoint {
            if a.save_every > 0 && done % a.save_every == 0 && done < a.steps {
                save_checkpoint(&model, &trainer, path, done, &name, best_val)?;
            }
        }
        if let Some(path) = &a.checkpoint {
            let out_of_time = a
                .time_limit
                .is_some_and(|limit| run_start.elapsed().as_secs_f64() >= limit);
            let why = if a.stop_at == Some(done) {
                Some("--stop-at")
            } else if out_of_time {
                Some("time limit")
            } else {
                None
            };
            if let (Some(why), true) = (why, done < a.steps) {
                bar.finish_and_clear();
                save_checkpoint(&model, &trainer, path, done, &name, best_val)?;
                println!(
                    "{why}: stopped after step {done} of {} ({:.0} s, {:.1} ms/step); \
                     continue with --resume {}",
                    a.steps,
                    run_start.elapsed().as_secs_f64(),
                    1e3 * mean(&step_secs),
                    path.display()
                );
                return Ok(());
            }
        }
    }
    bar.finish_and_clear();
    let wall = run_start.elapsed().as_secs_f64();
    if let Some(path) = &a.checkpoint {
        save_checkpoint(&model, &trainer, path, a.steps, &name, best_val)?;
        println!("checkpoint: {}", path.display());
    }
    if last_val.is_nan() {
        last_val = evaluate(&model, &data, &a, &mut cache)?;
        best_val = best_val.min(last_val);
    }

    if a.sample_len > 0 {
        let prompt: Vec<usize> = if a.prompt.is_empty() {
            vec![b'\n' as usize]
        } else {
            a.prompt.bytes().map(usize::from).collect()
        };
        let mut srng = StdRng::seed_from_u64(a.seed.wrapping_add(1));
        let out = model.generate(&prompt, a.sample_len, a.temperature, &mut srng)?;
        let bytes: Vec<u8> = prompt.iter().chain(&out).map(|&t| t as u8).collect();
        println!(
            "\nsample (temperature {}):\n{}\n",
            a.temperature,
            String::from_utf8_lossy(&bytes)
        );
    }

    // Step time over the structured phase (the comparison's measure) and overall.
    let structured_steps = switch_step.map_or(step_secs.len(), |s| {
        s.saturating_sub(start_step).min(step_secs.len())
    });
    let mean_step = mean(&step_secs);
    let mean_structured = mean(&step_secs[..structured_steps.max(1).min(step_secs.len())]);
    println!("{:<32} {:>12}", "run", name);
    let rows: Vec<(&str, String)> = vec![
        ("parameters", initial_params.0.to_string()),
        ("MLP parameters", initial_params.1.to_string()),
        (
            "attention-projection parameters",
            initial_params.2.to_string(),
        ),
        (
            "parameters after switch to dense",
            dense_params.map_or("-".into(), |p| p.to_string()),
        ),
        ("mean step time (ms)", format!("{:.1}", 1e3 * mean_step)),
        (
            "mean step time before switch (ms)",
            format!("{:.1}", 1e3 * mean_structured),
        ),
        ("tokens / s", format!("{:.0}", tokens_per_step / mean_step)),
        ("wall time (s)", format!("{wall:.0}")),
        (
            "final train loss (last 50)",
            format!("{:.4}", mean(&recent)),
        ),
        ("final validation loss", format!("{last_val:.4}")),
        ("best validation loss", format!("{best_val:.4}")),
        ("validation perplexity", format!("{:.3}", last_val.exp())),
    ];
    for (k, v) in &rows {
        println!("{k:<32} {v:>12}");
    }
    println!("log: {}", csv_path.display());
    if let Some(path) = &a.summary {
        let new = !path.exists();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if new {
            writeln!(f, "name,mlp,attn,s2d,layers,d_model,ctx,batch,steps,threads,params,mlp_params,attn_params,step_ms,step_ms_structured,final_val,best_val")?;
        }
        writeln!(
            f,
            "{name},{},{},{},{},{},{},{},{},{},{},{},{},{:.2},{:.2},{last_val:.5},{best_val:.5}",
            config.mlp,
            config.attn,
            a.sparse_to_dense_at.map_or("-".into(), |v| v.to_string()),
            a.layers,
            a.d_model,
            a.ctx,
            a.batch,
            a.steps,
            rayon::current_num_threads(),
            initial_params.0,
            initial_params.1,
            initial_params.2,
            1e3 * mean_step,
            1e3 * mean_structured
        )?;
    }
    if let Some(path) = &a.plot {
        let mut runs = vec![(name.clone(), csv_path.clone())];
        runs.extend(a.compare.iter().map(|p| (stem(p), p.clone())));
        plot(&runs, path)?;
        println!("plot: {}", path.display());
    }
    Ok(())
}

/// Print above the progress bar, or plainly when the bar is hidden (output not a terminal).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn stem(p: &Path) -> String {
    p.file_stem().map_or_else(
        || p.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

fn evaluate(
    model: &Gpt2<f32>,
    data: &TextData,
    a: &Args,
    cache: &mut kaleidoscope::nn::gpt2::Cache<f32>,
) -> BoxResult<f64> {
    let mut total = 0.0;
    for i in 0..a.eval_batches {
        let b = data.val_batch(i, a.eval_batches, a.batch, a.ctx)?;
        total += model.loss(&b, cache)?;
    }
    Ok(total / a.eval_batches as f64)
}

fn save_checkpoint(
    model: &Gpt2<f32>,
    trainer: &Gpt2Trainer,
    path: &Path,
    step: usize,
    name: &str,
    best_val: f64,
) -> BoxResult<()> {
    let mut store = TensorStore::new();
    model.save_to(&mut store)?;
    trainer.save_to(model, &mut store)?;
    store.set_metadata("train.step", step.to_string());
    store.set_metadata("train.name", name);
    if best_val.is_finite() {
        store.set_metadata("train.best_val", best_val.to_string());
    }
    store.save(path)?;
    Ok(())
}

/// `(step, train_loss, val_loss)` rows of a CSV log.
type Curve = Vec<(f64, f64, Option<f64>)>;

fn read_log(path: &Path) -> BoxResult<Curve> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 3 {
            return Err(format!("{}:{}: not a train_gpt2 log line", path.display(), i + 1).into());
        }
        let parse = |s: &str| s.parse::<f64>().ok();
        let (Some(step), Some(train)) = (parse(f[0]), parse(f[1])) else {
            return Err(format!("{}:{}: not a train_gpt2 log line", path.display(), i + 1).into());
        };
        rows.push((step, train, parse(f[2])));
    }
    if rows.is_empty() {
        return Err(format!("{}: empty log", path.display()).into());
    }
    Ok(rows)
}

/// Validation curves of every run (thick, with markers) and their training losses (an
/// exponential moving average, thin, same colour).
fn plot(runs: &[(String, PathBuf)], path: &Path) -> BoxResult<()> {
    use plotters::prelude::*;
    let curves: Vec<(String, Curve)> = runs
        .iter()
        .map(|(n, p)| Ok((n.clone(), read_log(p)?)))
        .collect::<BoxResult<_>>()?;
    let xmax = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|r| r.0))
        .fold(1.0, f64::max);
    let emas: Vec<Vec<(f64, f64)>> = curves
        .iter()
        .map(|(_, c)| {
            let mut ema = c.first().map_or(0.0, |r| r.1);
            c.iter()
                .map(|r| {
                    ema = 0.95 * ema + 0.05 * r.1;
                    (r.0, ema)
                })
                .collect()
        })
        .collect();
    let vals: Vec<f64> = curves
        .iter()
        .flat_map(|(_, c)| c.iter().filter_map(|r| r.2))
        .collect();
    let ymin = vals
        .iter()
        .cloned()
        .chain(emas.iter().flatten().map(|p| p.1))
        .fold(f64::INFINITY, f64::min);
    let ymin = if ymin.is_finite() { ymin * 0.95 } else { 0.0 };
    let ymax = vals.iter().cloned().fold(ymin + 0.5, f64::max) * 1.05;
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("GPT-2 on the CPU: loss vs step", ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..xmax, ymin..ymax)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("cross-entropy (nats/byte)")
        .draw()?;
    for (i, (name, c)) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        {
            let pts: Vec<(f64, f64)> = emas[i]
                .iter()
                .map(|&(x, y)| (x, y.clamp(ymin, ymax)))
                .collect();
            chart
                .draw_series(LineSeries::new(pts, color.mix(0.4).stroke_width(1)))?
                .label(format!("{name} (train, EMA)"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.mix(0.4).stroke_width(1))
                });
        }
        let pts: Vec<(f64, f64)> = c
            .iter()
            .filter_map(|r| r.2.map(|v| (r.0, v.clamp(ymin, ymax))))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(format!("{name} (validation)"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn plot_only(a: &Args) -> BoxResult<()> {
    if let Some(path) = &a.summary {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().ok_or("empty summary")?.split(',').collect();
        let col = |n: &str| header.iter().position(|h| *h == n);
        let (Some(ci), Some(cp), Some(cm), Some(cs), Some(cv)) = (
            col("name"),
            col("params"),
            col("mlp_params"),
            col("step_ms_structured"),
            col("final_val"),
        ) else {
            return Err(format!("{}: not a train_gpt2 summary", path.display()).into());
        };
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        let base = rows.first().ok_or("summary has no runs")?;
        let num = |r: &Vec<&str>, c: usize| {
            r.get(c)
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        println!(
            "{:<24} {:>10} {:>11} {:>9} {:>10} {:>9} {:>10} {:>9}",
            "run", "params", "MLP params", "MLP ×", "step (ms)", "time ×", "val loss", "val Δ"
        );
        for r in &rows {
            println!(
                "{:<24} {:>10} {:>11} {:>9.3} {:>10.1} {:>9.3} {:>10.4} {:>8.2}%",
                r.get(ci).unwrap_or(&"?"),
                r.get(cp).unwrap_or(&"?"),
                r.get(cm).unwrap_or(&"?"),
                num(r, cm) / num(base, cm),
                num(r, cs),
                num(r, cs) / num(base, cs),
                num(r, cv),
                100.0 * (num(r, cv) / num(base, cv) - 1.0)
            );
        }
        println!(
            "(ratios and Δ relative to the first run, {})",
            base.get(ci).unwrap_or(&"?")
        );
    }
    if let Some(path) = &a.plot {
        if a.compare.is_empty() {
            return Err("--plot-only needs --compare LOG.csv[,LOG.csv…]".into());
        }
        let runs: Vec<(String, PathBuf)> = a.compare.iter().map(|p| (stem(p), p.clone())).collect();
        plot(&runs, path)?;
        println!("plot: {}", path.display());
    }
    Ok(())
}
