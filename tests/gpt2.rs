//! The GPT-2 of `nn::gpt2`: logits against a plain loop-by-loop reference, the whole model's
//! gradients against central finite differences (f64, tiny configs), causality, one training
//! step lowering the loss, save → load → identical logits, reverse sparsification, and bad
//! input (data files, context, checkpoints of another shape).

mod common;

use common::rng;
use kaleidoscope::nn::gpt2::{Batch, Gpt2, Gpt2Config, Gpt2Trainer, TextData, TrainOptions};
use kaleidoscope::nn::{Structure, TensorStore};
use kaleidoscope::{Error, LinearMap};
use ndarray::Array2;

fn tiny(mlp: Structure, attn: Structure) -> Gpt2Config {
    Gpt2Config {
        vocab_size: 7,
        ctx: 5,
        d_model: 8,
        heads: 2,
        layers: 2,
        mlp_ratio: 2,
        mlp,
        attn,
    }
}

fn batch_of(inputs: Vec<usize>, targets: Vec<usize>, batch: usize, seq: usize) -> Batch {
    Batch {
        inputs,
        targets,
        batch,
        seq,
    }
}

fn random_batch(vocab: usize, batch: usize, seq: usize, seed: u64) -> Batch {
    use rand::Rng;
    let mut r = rng(seed);
    let inputs = (0..batch * seq).map(|_| r.random_range(0..vocab)).collect();
    let targets = (0..batch * seq).map(|_| r.random_range(0..vocab)).collect();
    batch_of(inputs, targets, batch, seq)
}

/// Perturb the model's parameters so that biases and layer-norm parameters are not at their
/// special initial values (zero, one), which would hide errors in their gradients.
fn perturbed(model: &mut Gpt2<f64>, seed: u64) {
    use rand::Rng;
    let mut r = rng(seed);
    for g in model.groups_mut() {
        for v in g.iter_mut() {
            *v += r.random_range(-0.3..0.3);
        }
    }
}

fn layer_norm_ref(x: &[f64], p: &[f64]) -> Vec<f64> {
    let d = x.len();
    let mean = x.iter().sum::<f64>() / d as f64;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
    (0..d)
        .map(|j| (x[j] - mean) / (var + 1e-5).sqrt() * p[j] + p[d + j])
        .collect()
}

fn gelu_ref(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
}

/// GPT-2's logits by plain loops, one sequence at a time, with the layers applied through
/// their dense matrices.
fn reference_logits(m: &Gpt2<f64>, tokens: &[usize], batch: usize, seq: usize) -> Array2<f64> {
    let c = m.config();
    let (d, heads) = (c.d_model, c.heads);
    let hd = d / heads;
    let affine = |l: &kaleidoscope::nn::Linear<f64>, x: &[f64]| -> Vec<f64> {
        let w = l.weight();
        (0..l.out_features())
            .map(|o| {
                (0..l.in_features()).map(|i| w[(o, i)] * x[i]).sum::<f64>()
                    + l.bias().map_or(0.0, |b| b[o])
            })
            .collect()
    };
    let mut out = Array2::zeros((batch * seq, c.vocab_size));
    for b in 0..batch {
        let mut xs: Vec<Vec<f64>> = (0..seq)
            .map(|t| {
                let tok = tokens[b * seq + t];
                (0..d)
                    .map(|j| m.wte()[(tok, j)] + m.wpe()[(t, j)])
                    .collect()
            })
            .collect();
        for blk in m.blocks() {
            let qkv: Vec<Vec<f64>> = xs
                .iter()
                .map(|x| affine(&blk.qkv, &layer_norm_ref(x, &blk.ln1)))
                .collect();
            let mut att = vec![vec![0.0; d]; seq];
            for h in 0..heads {
                for i in 0..seq {
                    let scores: Vec<f64> = (0..=i)
                        .map(|j| {
                            (0..hd)
                                .map(|e| qkv[i][h * hd + e] * qkv[j][d + h * hd + e])
                                .sum::<f64>()
                                / (hd as f64).sqrt()
                        })
                        .collect();
                    let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = scores.iter().map(|s| (s - mx).exp()).sum();
                    for (j, s) in scores.iter().enumerate() {
                        let p = (s - mx).exp() / z;
                        for e in 0..hd {
                            att[i][h * hd + e] += p * qkv[j][2 * d + h * hd + e];
                        }
                    }
                }
            }
            for t in 0..seq {
                let a = affine(&blk.proj, &att[t]);
                let xm: Vec<f64> = xs[t].iter().zip(&a).map(|(x, y)| x + y).collect();
                let h1: Vec<f64> = affine(&blk.fc1, &layer_norm_ref(&xm, &blk.ln2))
                    .into_iter()
                    .map(gelu_ref)
                    .collect();
                let f = affine(&blk.fc2, &h1);
                xs[t] = xm.iter().zip(&f).map(|(x, y)| x + y).collect();
            }
        }
        for t in 0..seq {
            let hf = layer_norm_ref(&xs[t], m.ln_f());
            for v in 0..c.vocab_size {
                out[(b * seq + t, v)] = (0..d).map(|j| hf[j] * m.wte()[(v, j)]).sum();
            }
        }
    }
    out
}

fn loss_of(m: &Gpt2<f64>, b: &Batch) -> f64 {
    let mut cache = m.cache(b.batch, b.seq);
    m.loss(b, &mut cache).unwrap()
}

#[test]
fn logits_match_the_reference() {
    for (mlp, attn) in [
        (Structure::Dense, Structure::Dense),
        (
            Structure::Monarch { nblocks: 2 },
            Structure::LowRank { rank: 3 },
        ),
    ] {
        let mut m = Gpt2::<f64>::new(tiny(mlp, attn), &mut rng(1)).unwrap();
        perturbed(&mut m, 2);
        let b = random_batch(7, 3, 5, 3);
        let got = m.logits(&b.inputs, 3, 5).unwrap();
        let want = reference_logits(&m, &b.inputs, 3, 5);
        let err = (&got - &want).iter().fold(0.0f64, |a, v| a.max(v.abs()));
        assert!(err < 1e-12, "{mlp}/{attn}: {err}");
        // The loss is the mean of −log softmax at the targets.
        let mut ce = 0.0;
        for (r, &t) in b.targets.iter().enumerate() {
            let row = want.row(r);
            let z: f64 = row.iter().map(|v| v.exp()).sum();
            ce += z.ln() - row[t];
        }
        assert!((loss_of(&m, &b) - ce / 15.0).abs() < 1e-12);
    }
}

/// Central differences of the mean cross-entropy for every parameter of tiny models.
#[test]
fn whole_model_gradients_match_finite_differences() {
    for (mlp, attn, seq) in [
        (Structure::Dense, Structure::Dense, 5),
        (Structure::Monarch { nblocks: 2 }, Structure::Dense, 4),
        (
            Structure::BlockDiagonal { nblocks: 2 },
            Structure::Monarch { nblocks: 2 },
            3,
        ),
    ] {
        let mut m = Gpt2::<f64>::new(tiny(mlp, attn), &mut rng(4)).unwrap();
        perturbed(&mut m, 5);
        let b = random_batch(7, 2, seq, 6);
        let mut grads = m.zero_grads();
        let mut cache = m.cache(2, seq);
        let loss = m.forward_backward(&b, &mut cache, &mut grads).unwrap();
        assert!((loss - loss_of(&m, &b)).abs() < 1e-14);
        let h = 1e-5;
        let names = m.group_names();
        for (gi, name) in names.iter().enumerate() {
            let len = m.groups()[gi].len();
            let mut worst = 0.0f64;
            let scale = grads.bufs[gi].iter().fold(1e-3f64, |a, v| a.max(v.abs()));
            for k in 0..len {
                let mut mp = m.clone();
                mp.groups_mut()[gi][k] += h;
                let mut mm = m.clone();
                mm.groups_mut()[gi][k] -= h;
                let fd = (loss_of(&mp, &b) - loss_of(&mm, &b)) / (2.0 * h);
                worst = worst.max((fd - grads.bufs[gi][k]).abs());
            }
            assert!(
                worst / scale < 1e-6,
                "{mlp}/{attn} {name}: {worst} (scale {scale})"
            );
        }
    }
}

/// Changing a token changes no logit at an earlier position.
#[test]
fn attention_is_causal() {
    let m = Gpt2::<f64>::new(tiny(Structure::Dense, Structure::Dense), &mut rng(7)).unwrap();
    let b = random_batch(7, 1, 5, 8);
    let base = m.logits(&b.inputs, 1, 5).unwrap();
    for t in 0..5 {
        let mut toks = b.inputs.clone();
        toks[t] = (toks[t] + 1) % 7;
        let l = m.logits(&toks, 1, 5).unwrap();
        for r in 0..5 {
            let same = l.row(r) == base.row(r);
            assert_eq!(same, r < t, "position {r}, changed token {t}");
        }
    }
}

/// One AdamW step (no warm-up) on a fixed batch lowers that batch's loss, for dense and
/// structured models, in f32.
#[test]
fn one_training_step_lowers_the_loss() {
    for (mlp, attn) in [
        (Structure::Dense, Structure::Dense),
        (Structure::Monarch { nblocks: 4 }, Structure::Dense),
        (
            Structure::Butterfly { nblocks: 1 },
            Structure::LowRank { rank: 4 },
        ),
    ] {
        let cfg = Gpt2Config {
            vocab_size: 32,
            ctx: 16,
            d_model: 32,
            heads: 4,
            layers: 2,
            mlp_ratio: 4,
            mlp,
            attn,
        };
        let mut m = Gpt2::<f32>::new(cfg, &mut rng(9)).unwrap();
        let b = random_batch(32, 4, 16, 10);
        let mut cache = m.cache(4, 16);
        let mut grads = m.zero_grads();
        let opts = TrainOptions {
            lr: 1e-3,
            warmup: 0,
            total_steps: 10,
            ..TrainOptions::default()
        };
        let mut trainer = Gpt2Trainer::new(&m, opts).unwrap();
        let before = m.forward_backward(&b, &mut cache, &mut grads).unwrap();
        let info = trainer.step(&mut m, &mut grads).unwrap();
        assert!(info.grad_norm > 0.0 && (info.lr - 1e-3).abs() < 1e-12);
        assert!(grads.bufs.iter().all(|g| g.iter().all(|&v| v == 0.0)));
        let after = m.loss(&b, &mut cache).unwrap();
        assert!(after < before, "{mlp}/{attn}: {before} -> {after}");
    }
}

/// A hundred steps on a short periodic text drive the validation loss below the text's
/// unigram entropy (1.50 nats: the model uses its context), far below `ln 256`.
#[test]
fn short_training_run_learns_a_repeated_text() {
    let data = TextData::from_text(&"abcabcabd ".repeat(40), 0.1).unwrap();
    let cfg = Gpt2Config {
        vocab_size: 256,
        ctx: 16,
        d_model: 32,
        heads: 2,
        layers: 1,
        mlp_ratio: 4,
        mlp: Structure::Monarch { nblocks: 2 },
        attn: Structure::Dense,
    };
    let mut m = Gpt2::<f32>::new(cfg, &mut rng(11)).unwrap();
    let opts = TrainOptions {
        lr: 1e-2,
        warmup: 5,
        total_steps: 120,
        ..TrainOptions::default()
    };
    let mut trainer = Gpt2Trainer::new(&m, opts).unwrap();
    let mut cache = m.cache(8, 16);
    let mut grads = m.zero_grads();
    let mut r = rng(12);
    for _ in 0..120 {
        let b = data.train_batch(8, 16, &mut r).unwrap();
        m.forward_backward(&b, &mut cache, &mut grads).unwrap();
        trainer.step(&mut m, &mut grads).unwrap();
    }
    let val = data.val_batch(0, 1, 2, 16).unwrap();
    let loss = m.loss(&val, &mut cache).unwrap();
    assert!(
        loss < 1.0,
        "validation loss {loss} (uniform: {})",
        256f64.ln()
    );
    let sample = m.generate(&[b'a' as usize], 8, 0.0, &mut r).unwrap();
    assert_eq!(sample.len(), 8);
    assert!(sample.iter().all(|&t| t < 256));
}

/// Every entry of group `i` moved from `m0` `want(i)` times as far in `fast` as in `slow`.
fn assert_steps_scaled(
    m0: &Gpt2<f64>,
    slow: &Gpt2<f64>,
    fast: &Gpt2<f64>,
    want: impl Fn(usize) -> f64,
) {
    for i in 0..m0.groups().len() {
        let (p0, p1, p2) = (m0.groups()[i], slow.groups()[i], fast.groups()[i]);
        for k in 0..p0.len() {
            let (d1, d2) = (p1[k] - p0[k], p2[k] - p0[k]);
            assert!(
                (d2 - want(i) * d1).abs() <= 1e-12 * d1.abs() + 1e-14 * p0[k].abs(),
                "group {i} entry {k}: {d1} vs {d2}"
            );
        }
    }
}

/// A trainer with `opts` is refused with `InvalidArgument { what }` for each bad value.
fn assert_scale_refused(m: &Gpt2<f64>, what: &str, bad: &[TrainOptions]) {
    for &o in bad {
        match Gpt2Trainer::new(m, o) {
            Err(Error::InvalidArgument { what: w, .. }) if w == what => {}
            other => panic!("{what}: expected InvalidArgument, got {other:?}"),
        }
    }
}

/// `structured_lr_scale` multiplies exactly the structured layers' steps: from equal models and
/// gradients, the first AdamW step (no decay) of a trainer with scale 3 moves the structured
/// groups 3× as far as one with scale 1 and every other group the same; a non-positive scale
/// is refused.
#[test]
fn structured_lr_scale_scales_only_structured_groups() {
    let cfg = Gpt2Config {
        mlp: Structure::Monarch { nblocks: 2 },
        attn: Structure::LowRank { rank: 2 },
        ..tiny(Structure::Dense, Structure::Dense)
    };
    let m0 = Gpt2::<f64>::new(cfg, &mut rng(31)).unwrap();
    let b = random_batch(7, 2, 5, 32);
    let opts = TrainOptions {
        lr: 1e-2,
        warmup: 0,
        total_steps: 10,
        weight_decay: 0.0,
        clip: 0.0,
        ..TrainOptions::default()
    };
    let step = |scale: f64| {
        let mut m = m0.clone();
        let mut t = Gpt2Trainer::new(
            &m,
            TrainOptions {
                structured_lr_scale: scale,
                ..opts
            },
        )
        .unwrap();
        let mut cache = m.cache(2, 5);
        let mut grads = m.zero_grads();
        m.forward_backward(&b, &mut cache, &mut grads).unwrap();
        t.step(&mut m, &mut grads).unwrap();
        m
    };
    let (one, three) = (step(1.0), step(3.0));
    let structured = m0.structured_groups();
    assert_eq!(
        structured.iter().filter(|&&s| s).count(),
        2 * cfg.layers * 2
    );
    assert_steps_scaled(&m0, &one, &three, |i| if structured[i] { 3.0 } else { 1.0 });
    let bad = [0.0, -1.0, f64::NAN].map(|v| TrainOptions {
        structured_lr_scale: v,
        ..opts
    });
    assert_scale_refused(&m0, "structured_lr_scale", &bad);
}

/// After [`Gpt2::to_dense`] and [`Gpt2Trainer::sync`], `switched_lr_scale` multiplies exactly
/// the steps of the groups that were structured (their fresh AdamW moments make the first step
/// scale exactly), the others continue as before; the switched groups are remembered through a
/// checkpoint, so a resumed trainer takes bit-identical steps, and a trainer created on the
/// dense model without that checkpoint has none.
#[test]
fn switched_lr_scale_scales_only_switched_groups_and_survives_resume() {
    let cfg = Gpt2Config {
        mlp: Structure::Monarch { nblocks: 2 },
        ..tiny(Structure::Dense, Structure::Dense)
    };
    let b = random_batch(7, 2, 5, 41);
    let b2 = random_batch(7, 2, 5, 42);
    let opts = TrainOptions {
        lr: 1e-2,
        warmup: 0,
        total_steps: 10,
        weight_decay: 0.0,
        clip: 0.0,
        structured_lr_scale: 2.0,
        ..TrainOptions::default()
    };
    let step = |m: &mut Gpt2<f64>, t: &mut Gpt2Trainer, b: &Batch| {
        let mut cache = m.cache(2, 5);
        let mut grads = m.zero_grads();
        m.forward_backward(b, &mut cache, &mut grads).unwrap();
        t.step(m, &mut grads).unwrap();
    };
    let switched_after_one_step = |scale: f64| {
        let mut m = Gpt2::<f64>::new(cfg, &mut rng(40)).unwrap();
        let mut t = Gpt2Trainer::new(
            &m,
            TrainOptions {
                switched_lr_scale: scale,
                ..opts
            },
        )
        .unwrap();
        step(&mut m, &mut t, &b);
        assert_eq!(t.switched_groups(), 0);
        let structured = m.structured_groups();
        m = m.to_dense();
        t.sync(&m).unwrap();
        (m, t, structured)
    };
    let (m0, _, structured) = switched_after_one_step(1.0);
    let (mut one, mut t_one, _) = switched_after_one_step(1.0);
    let (mut five, mut t_five, _) = switched_after_one_step(5.0);
    assert_eq!(t_five.switched_groups(), 2 * cfg.layers);
    assert_eq!(structured.iter().filter(|&&s| s).count(), 2 * cfg.layers);
    step(&mut one, &mut t_one, &b2);
    step(&mut five, &mut t_five, &b2);
    assert_steps_scaled(&m0, &one, &five, |i| if structured[i] { 5.0 } else { 1.0 });

    let mut store = TensorStore::new();
    five.save_to(&mut store).unwrap();
    t_five.save_to(&five, &mut store).unwrap();
    let store = TensorStore::from_bytes(&store.to_bytes().unwrap()).unwrap();
    let five_opts = TrainOptions {
        switched_lr_scale: 5.0,
        ..opts
    };
    let dense_cfg = Gpt2Config {
        mlp: Structure::Dense,
        ..cfg
    };
    let mut resumed = Gpt2::<f64>::load_matching(&store, &dense_cfg).unwrap();
    let mut t_resumed = Gpt2Trainer::new(&resumed, five_opts).unwrap();
    assert_eq!(t_resumed.switched_groups(), 0);
    assert!(t_resumed.load_from(&resumed, &store).unwrap());
    assert_eq!(t_resumed.switched_groups(), 2 * cfg.layers);
    let b3 = random_batch(7, 2, 5, 43);
    step(&mut resumed, &mut t_resumed, &b3);
    step(&mut five, &mut t_five, &b3);
    assert_eq!(resumed, five);

    let bad = [0.0, -2.0, f64::INFINITY].map(|v| TrainOptions {
        switched_lr_scale: v,
        ..opts
    });
    assert_scale_refused(&m0, "switched_lr_scale", &bad);
}

/// Training 6 steps, checkpointing weights and optimiser state through safetensors bytes and
/// training 6 more from the restored copy ends at exactly the parameters of 12 uninterrupted
/// steps; a weights-only checkpoint reports no optimiser state, and moments of another length
/// are refused.
#[test]
fn resume_from_a_checkpoint_continues_exactly() {
    let cfg = Gpt2Config {
        vocab_size: 13,
        ctx: 8,
        d_model: 16,
        heads: 2,
        layers: 2,
        mlp_ratio: 4,
        mlp: Structure::Monarch { nblocks: 4 },
        attn: Structure::Dense,
    };
    let opts = TrainOptions {
        lr: 3e-3,
        warmup: 3,
        total_steps: 12,
        ..TrainOptions::default()
    };
    let train = |m: &mut Gpt2<f32>, t: &mut Gpt2Trainer, steps: std::ops::Range<u64>| {
        let mut cache = m.cache(3, 8);
        let mut grads = m.zero_grads();
        for s in steps {
            let b = random_batch(13, 3, 8, 100 + s);
            m.forward_backward(&b, &mut cache, &mut grads).unwrap();
            t.step(m, &mut grads).unwrap();
        }
    };
    let mut straight = Gpt2::<f32>::new(cfg, &mut rng(21)).unwrap();
    let mut t_straight = Gpt2Trainer::new(&straight, opts).unwrap();
    train(&mut straight, &mut t_straight, 0..12);

    let mut first = Gpt2::<f32>::new(cfg, &mut rng(21)).unwrap();
    let mut t_first = Gpt2Trainer::new(&first, opts).unwrap();
    train(&mut first, &mut t_first, 0..6);
    let mut store = TensorStore::new();
    first.save_to(&mut store).unwrap();
    t_first.save_to(&first, &mut store).unwrap();
    let store = TensorStore::from_bytes(&store.to_bytes().unwrap()).unwrap();
    assert_eq!(
        store.shape("optim.transformer.h.0.mlp.c_fc.exp_avg"),
        Some(&[first.groups()[6].len()][..])
    );
    let mut resumed = Gpt2::<f32>::load_matching(&store, &cfg).unwrap();
    let mut t_resumed = Gpt2Trainer::new(&resumed, opts).unwrap();
    assert!(t_resumed.load_from(&resumed, &store).unwrap());
    assert_eq!(t_resumed.step_count(), 6);
    train(&mut resumed, &mut t_resumed, 6..12);
    assert_eq!(resumed, straight);

    // Restarting the moments (the old behaviour) gives a different model.
    let mut restarted = Gpt2::<f32>::load_matching(&store, &cfg).unwrap();
    let mut t_restarted = Gpt2Trainer::new(&restarted, opts).unwrap();
    t_restarted.set_step_count(6);
    train(&mut restarted, &mut t_restarted, 6..12);
    assert_ne!(restarted, straight);

    // Weights only: no optimiser state, nothing changed.
    let mut weights_only = TensorStore::new();
    first.save_to(&mut weights_only).unwrap();
    let mut t = Gpt2Trainer::new(&first, opts).unwrap();
    assert!(!t.load_from(&first, &weights_only).unwrap());
    assert_eq!(t.step_count(), 0);

    // Moments saved for a model of another width do not fit this one.
    let wide = Gpt2Config { d_model: 32, ..cfg };
    let mut wm = Gpt2::<f32>::new(wide, &mut rng(22)).unwrap();
    let mut wt = Gpt2Trainer::new(
        &wm,
        TrainOptions {
            total_steps: 12,
            ..opts
        },
    )
    .unwrap();
    train(&mut wm, &mut wt, 0..1);
    let mut wstore = TensorStore::new();
    wt.save_to(&wm, &mut wstore).unwrap();
    let mut t = Gpt2Trainer::new(&first, opts).unwrap();
    assert!(matches!(
        t.load_from(&first, &wstore),
        Err(Error::Shape { .. })
    ));
    assert_eq!(t.step_count(), 0);
}

#[test]
fn save_load_gives_identical_logits() {
    let dir = std::env::temp_dir().join(format!("kal_gpt2_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = Gpt2Config {
        vocab_size: 11,
        ctx: 6,
        d_model: 16,
        heads: 2,
        layers: 2,
        mlp_ratio: 4,
        mlp: Structure::Monarch { nblocks: 4 },
        attn: Structure::LowRank { rank: 4 },
    };
    let m = Gpt2::<f32>::new(cfg, &mut rng(13)).unwrap();
    let b = random_batch(11, 2, 6, 14);
    let path = dir.join("model.safetensors");
    m.save(&path).unwrap();
    let back = Gpt2::<f32>::load(&path).unwrap();
    assert_eq!(back, m);
    assert_eq!(
        back.logits(&b.inputs, 2, 6).unwrap(),
        m.logits(&b.inputs, 2, 6).unwrap()
    );
    // nanoGPT's names for the dense tensors.
    let store = TensorStore::load(&path).unwrap();
    assert_eq!(
        store.shape("transformer.wte.weight"),
        Some(&[11usize, 16][..])
    );
    assert_eq!(
        store.shape("transformer.h.1.ln_2.bias"),
        Some(&[16usize][..])
    );
    assert_eq!(
        store.shape("transformer.h.0.mlp.c_fc.blkdiag1"),
        Some(&[4usize, 4, 4][..])
    );
    // Reverse sparsification keeps the function; its checkpoint loads as a dense model.
    let dense = m.to_dense();
    assert!(!dense.is_structured());
    let (a, c) = (
        m.logits(&b.inputs, 2, 6).unwrap(),
        dense.logits(&b.inputs, 2, 6).unwrap(),
    );
    assert!((&a - &c).iter().all(|v| v.abs() < 1e-5));
    dense.save(&path).unwrap();
    let back = Gpt2::<f32>::load_matching(&TensorStore::load(&path).unwrap(), &cfg).unwrap();
    assert_eq!(back, dense);
    assert_eq!(
        store.shape("transformer.h.0.attn.c_proj.u"),
        Some(&[16usize, 4][..])
    );
    // A checkpoint of another shape is refused by name.
    let other = Gpt2Config { d_model: 8, ..cfg };
    match Gpt2::<f32>::load_matching(&TensorStore::load(&path).unwrap(), &other) {
        Err(Error::InvalidArgument { what, message }) => {
            assert_eq!(what, "checkpoint");
            assert!(message.contains("d_model=16"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_gets_typed_errors() {
    let dir = std::env::temp_dir().join(format!("kal_gpt2_bad_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Data files: missing, empty, not UTF-8, shorter than the context.
    assert!(matches!(
        TextData::from_file(dir.join("missing.txt"), 0.1),
        Err(Error::Io { .. })
    ));
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    match TextData::from_file(&empty, 0.1) {
        Err(Error::Io { message, .. }) => assert!(message.contains("empty"), "{message}"),
        other => panic!("{other:?}"),
    }
    let binary = dir.join("binary.txt");
    std::fs::write(&binary, [0xffu8, 0xfe, 0x00]).unwrap();
    assert!(matches!(
        TextData::from_file(&binary, 0.1),
        Err(Error::Io { .. })
    ));
    let short = TextData::from_text("hello world, hello", 0.5).unwrap();
    assert!(matches!(
        short.train_batch(2, 16, &mut rng(0)),
        Err(Error::InvalidArgument { what: "ctx", .. })
    ));
    assert!(matches!(
        TextData::from_text("abc", 1.0),
        Err(Error::InvalidArgument {
            what: "val_fraction",
            ..
        })
    ));
    // Configurations.
    let bad_heads = Gpt2Config {
        heads: 3,
        ..tiny(Structure::Dense, Structure::Dense)
    };
    assert!(matches!(
        Gpt2::<f32>::new(bad_heads, &mut rng(0)),
        Err(Error::InvalidArgument { what: "heads", .. })
    ));
    let bad_blocks = tiny(Structure::Monarch { nblocks: 3 }, Structure::Dense);
    assert!(matches!(
        Gpt2::<f32>::new(bad_blocks, &mut rng(0)),
        Err(Error::InvalidArgument {
            what: "nblocks",
            ..
        })
    ));
    // Token batches.
    let m = Gpt2::<f32>::new(tiny(Structure::Dense, Structure::Dense), &mut rng(0)).unwrap();
    assert!(matches!(
        m.logits(&[0; 12], 2, 6),
        Err(Error::InvalidArgument { what: "seq", .. })
    ));
    assert!(matches!(
        m.logits(&[0, 1, 9], 1, 3),
        Err(Error::InvalidArgument { what: "tokens", .. })
    ));
    assert!(matches!(
        m.logits(&[0, 1], 1, 3),
        Err(Error::BufferLength { what: "tokens", .. })
    ));
    let mut wrong = m.zero_grads();
    wrong.bufs.pop();
    let b = random_batch(7, 1, 3, 1);
    let mut cache = m.cache(1, 3);
    assert!(matches!(
        m.forward_backward(&b, &mut cache, &mut wrong),
        Err(Error::BufferLength { .. })
    ));
    // A checkpoint with a tensor of the wrong shape, and a missing checkpoint.
    let mut store = TensorStore::new();
    m.save_to(&mut store).unwrap();
    store
        .insert("transformer.wpe.weight", &[4, 8], &[0.0f32; 32])
        .unwrap();
    assert!(matches!(
        Gpt2::<f32>::load_from(&store),
        Err(Error::Shape {
            what: "checkpoint tensor",
            ..
        })
    ));
    assert!(matches!(
        Gpt2::<f32>::load(dir.join("nothing.safetensors")),
        Err(Error::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The vectorisable `exp` of the f32 path against `f64::exp`, over the whole range it serves.
#[test]
fn fast_exp_is_accurate() {
    use kaleidoscope::nn::gpt2::exp_f32;
    let mut worst = 0.0f64;
    for k in 0..=200_000 {
        let x = -87.0 + 175.0 * k as f64 / 200_000.0;
        let xf = x as f32;
        let want = (xf as f64).exp();
        worst = worst.max(((exp_f32(xf) as f64) - want).abs() / want);
    }
    assert!(worst < 3e-7, "relative error {worst}");
    assert_eq!(exp_f32(0.0), 1.0);
    assert!(exp_f32(-1000.0) < 1e-37 && exp_f32(1000.0).is_finite());
}

/// The f32 model (fast exp, f32 GEMMs) agrees with the f64 model holding the same parameters.
#[test]
fn f32_and_f64_models_agree() {
    let cfg = tiny(Structure::Monarch { nblocks: 2 }, Structure::Dense);
    let m64 = Gpt2::<f64>::new(cfg, &mut rng(15)).unwrap();
    let mut store = TensorStore::new();
    m64.save_to(&mut store).unwrap();
    let m32 = Gpt2::<f32>::load_from(&store).unwrap();
    let b = random_batch(7, 2, 5, 16);
    let (a, c) = (
        m64.logits(&b.inputs, 2, 5).unwrap(),
        m32.logits(&b.inputs, 2, 5).unwrap(),
    );
    let err = a
        .iter()
        .zip(c.iter())
        .fold(0.0f64, |e, (x, y)| e.max((x - *y as f64).abs()));
    assert!(err < 1e-5, "{err}");
    let g = |v: Vec<f64>| {
        let mut y = vec![0.0; v.len()];
        kaleidoscope::nn::gpt2::gelu_forward(&v, &mut y);
        y
    };
    let xs: Vec<f64> = (-400..=400).map(|k| k as f64 / 40.0).collect();
    let y64 = g(xs.clone());
    let xs32: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
    let mut y32 = vec![0.0f32; xs.len()];
    kaleidoscope::nn::gpt2::gelu_forward(&xs32, &mut y32);
    for (p, q) in y64.iter().zip(&y32) {
        assert!((p - *q as f64).abs() < 1e-6, "{p} vs {q}");
    }
}
