//! `recurrent train`: the IMDB sentiment lab's training loop.
//!
//! Reads the training split, holds out a stratified validation split, builds the vocabulary
//! from the training part only, trains with BCE-with-logits, gradient clipping and a per-step
//! learning-rate schedule, validates after every epoch, keeps the best model (by validation
//! accuracy) at the top of the run directory, stops early, and checkpoints atomically after
//! every epoch and on interruption.
//!
//! Resuming: a checkpoint holds the epoch, the position inside it, the step, the model, the
//! optimiser state, the dropout generator's state and the history; each epoch's batch order
//! is a function of (seed, epoch). So `--resume` continues exactly where the run stopped and
//! reaches the same weights, bit for bit, as an uninterrupted run with the same seed and
//! thread count.

use super::config::{OptimizerKind, ScheduleKind, SentimentConfig, Truncate};
use super::model::SentimentModel;
use super::modeldir::{load_config, save_config, save_weights};
use crate::checkpoint;
use crate::datapath::find_imdb;
use crate::metrics::Confusion;
use crate::plot::{save_png, Panel, Series};
use crate::training::{Checks, StepOutcome, TrainStep};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use recurrent::io::{load_safetensors_bytes, safetensors_bytes, write_atomic};
use recurrent::nn::Module;
use recurrent::optim::{
    Adam, AdamConfig, LrScheduler, Optimizer, RmsProp, RmsPropConfig, Schedule, Sgd, SgdConfig,
};
use recurrent::{Generator, Reduction, Tensor};
use recurrent_data::batch::{bucket_batches, Batch, Encoded, Loader};
use recurrent_data::imdb::{self, ReadOptions};
use recurrent_data::split::stratified_split;
use recurrent_data::vocab::Vocab;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Where a run records the data it was started with.
const RUN_FILE: &str = "run.json";

/// What defines a run beyond its model and training settings (which are in `config.json`):
/// written when the run starts, restored by `--resume`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunFile {
    /// The corpus the run reads (absolute path when it started).
    pub data: PathBuf,
    /// SHA-256 of the training split's labels and texts, in order: a resumed run must read
    /// the same reviews, wherever they are now. (Absent in runs made before it was recorded.)
    #[serde(default)]
    pub data_sha256: Option<String>,
    /// `--limit`: train on at most this many reviews.
    #[serde(default)]
    pub limit: Option<usize>,
    /// `--skip-nonfinite`.
    #[serde(default)]
    pub skip_nonfinite: bool,
    /// Worker threads (the batch slices, so the last bits of the results, depend on it).
    #[serde(default)]
    pub threads: Option<usize>,
}

impl RunFile {
    /// Read `run.json` of a run directory.
    pub fn load(run: &Path) -> Result<RunFile> {
        let p = run.join(RUN_FILE);
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("{} is corrupt", p.display()))
    }
}

/// SHA-256 of the labels and texts of `reviews`, in order.
fn corpus_fingerprint(reviews: &[recurrent_data::imdb::Review]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for r in reviews {
        h.update([r.label]);
        h.update((r.text.len() as u64).to_le_bytes());
        h.update(r.text.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// How to run `train` (beyond the model and training settings).
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// The run directory.
    pub out: PathBuf,
    /// `--data PATH`.
    pub data: Option<PathBuf>,
    /// Continue the run in `out`.
    pub resume: bool,
    /// Download the corpus when it is nowhere to be found.
    pub allow_download: bool,
    /// Train on at most this many reviews (quick runs; a resumed run keeps its own).
    pub limit: Option<usize>,
    /// With `resume`: change the number of epochs.
    pub epochs_override: Option<usize>,
    /// With `resume`: change the early-stopping patience.
    pub patience_override: Option<usize>,
    /// The worker threads this process runs (recorded, and compared on resume).
    pub threads: usize,
    /// Behave as if interrupted after this many optimisation steps (tests of resume).
    pub stop_after_steps: Option<u64>,
    /// Stop with an error on a non-finite loss or gradient (the default), or skip the step.
    pub skip_nonfinite: bool,
    /// Steps (1-based) whose loss is replaced by NaN, to test the guards (a bad batch).
    pub fault_nan_steps: Vec<u64>,
    /// Abort the process after this many of the run directory's setup steps (a test of a
    /// kill during setup; 1 or 2).
    pub abort_in_setup: Option<usize>,
    /// No log lines (per-epoch lines and errors still print).
    pub quiet: bool,
    /// Draw progress bars (on a terminal).
    pub progress: bool,
}

/// One epoch's numbers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (with dropout on).
    pub train_acc: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_acc: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Wall time of the epoch's training steps.
    pub seconds: f64,
    /// Training throughput.
    pub seq_per_s: f64,
    /// Mean gradient norm before clipping.
    pub grad_norm: f64,
    /// Steps skipped for non-finite values.
    pub skipped_steps: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Accum {
    loss_sum: f64,
    correct: u64,
    count: u64,
    seconds: f64,
    grad_norm_sum: f64,
    steps: u64,
    skipped: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainerState {
    /// Completed epochs.
    epoch: usize,
    /// Batches done in the current epoch.
    batch_in_epoch: usize,
    global_step: u64,
    best_val_acc: f64,
    best_epoch: usize,
    epochs_since_best: usize,
    rng: [u64; 4],
    history: Vec<EpochMetrics>,
    partial: Accum,
    finished: bool,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    /// Per-epoch metrics.
    pub history: Vec<EpochMetrics>,
    /// Best validation accuracy and its epoch.
    pub best_val_acc: f64,
    /// The epoch of `best_val_acc`.
    pub best_epoch: usize,
    /// Whether the run stopped because it was interrupted (and can be resumed).
    pub interrupted: bool,
    /// Total wall time of this invocation.
    pub seconds: f64,
}

fn build_optimizer(cfg: &SentimentConfig, params: Vec<Tensor>) -> Result<Box<dyn Optimizer>> {
    Ok(match cfg.optimizer {
        OptimizerKind::Adamw => Box::new(Adam::new(
            params,
            AdamConfig::adamw()
                .with_lr(cfg.lr)
                .with_weight_decay(cfg.weight_decay),
        )?),
        OptimizerKind::Adam => Box::new(Adam::new(
            params,
            AdamConfig::adam()
                .with_lr(cfg.lr)
                .with_weight_decay(cfg.weight_decay),
        )?),
        OptimizerKind::Sgd => Box::new(Sgd::new(
            params,
            SgdConfig {
                lr: cfg.lr,
                momentum: 0.9,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?),
        OptimizerKind::Rmsprop => Box::new(RmsProp::new(
            params,
            RmsPropConfig {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?),
    })
}

/// The per-step schedule over `total` steps.
pub fn schedule_for(cfg: &SentimentConfig, total: usize) -> Schedule {
    let total = total.max(1);
    match cfg.schedule {
        ScheduleKind::Constant => Schedule::Constant {
            factor: 1.0,
            total_iters: 0,
        },
        ScheduleKind::Cosine => Schedule::Cosine {
            t_max: total,
            eta_min: cfg.lr * 0.01,
        },
        ScheduleKind::WarmupCosine => {
            let warm = cfg.warmup_steps.min(total / 2).max(1);
            Schedule::Sequential {
                schedules: vec![
                    Schedule::Linear {
                        start_factor: 0.01,
                        end_factor: 1.0,
                        total_iters: warm,
                    },
                    Schedule::Cosine {
                        t_max: (total - warm).max(1),
                        eta_min: cfg.lr * 0.01,
                    },
                ],
                milestones: vec![warm],
            }
        }
    }
}

/// Mean loss and confusion counts of `model` on `data` (evaluation mode, no gradients).
pub fn evaluate(model: &SentimentModel, data: &[Encoded]) -> Result<(f64, Confusion)> {
    let _ng = recurrent::no_grad();
    let all: Vec<usize> = (0..data.len()).collect();
    let mut loss_sum = 0.0;
    let mut probs = vec![0.0f32; data.len()];
    for idx in bucket_batches(data, &all, 256, None) {
        let b = Batch::pack(data, &idx);
        let logits = model.forward(&b)?;
        let y = Tensor::from_vec(b.labels.clone(), &[b.len()])?;
        loss_sum += logits
            .binary_cross_entropy_with_logits(&y, None, None, Reduction::Sum)?
            .item()? as f64;
        for (k, &l) in logits.to_vec().iter().enumerate() {
            probs[b.index[k]] = 1.0 / (1.0 + (-l).exp());
        }
    }
    let labels: Vec<u8> = data.iter().map(|e| e.label as u8).collect();
    Ok((
        loss_sum / data.len().max(1) as f64,
        Confusion::from_probs(&probs, &labels),
    ))
}

fn write_metrics(run: &Path, history: &[EpochMetrics]) -> Result<()> {
    let mut csv = String::from("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,seq_per_s,grad_norm,skipped_steps\n");
    for m in history {
        csv += &format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.6e},{:.2},{:.1},{:.4},{}\n",
            m.epoch,
            m.train_loss,
            m.train_acc,
            m.val_loss,
            m.val_acc,
            m.lr,
            m.seconds,
            m.seq_per_s,
            m.grad_norm,
            m.skipped_steps
        );
    }
    write_atomic(&run.join("metrics.csv"), csv.as_bytes())?;
    write_atomic(
        &run.join("metrics.json"),
        serde_json::to_string_pretty(history)?.as_bytes(),
    )?;
    let pts = |f: &dyn Fn(&EpochMetrics) -> f64| {
        history
            .iter()
            .map(|m| (m.epoch as f64, f(m)))
            .collect::<Vec<_>>()
    };
    save_png(
        &run.join("curves.png"),
        &[
            Panel {
                title: "loss (binary cross-entropy)",
                x_label: "epoch",
                y_label: "loss",
                series: vec![
                    Series {
                        label: "train",
                        points: pts(&|m| m.train_loss),
                    },
                    Series {
                        label: "validation",
                        points: pts(&|m| m.val_loss),
                    },
                ],
                log_y: false,
            },
            Panel {
                title: "accuracy",
                x_label: "epoch",
                y_label: "accuracy",
                series: vec![
                    Series {
                        label: "train",
                        points: pts(&|m| m.train_acc),
                    },
                    Series {
                        label: "validation",
                        points: pts(&|m| m.val_acc),
                    },
                ],
                log_y: false,
            },
        ],
    )?;
    Ok(())
}

fn encode_all(
    cfg: &SentimentConfig,
    vocab: &Vocab,
    tokens: &[Vec<String>],
    labels: &[u8],
) -> Vec<Encoded> {
    tokens
        .par_iter()
        .zip(labels.par_iter())
        .map(|(t, &y)| {
            let n = t.len();
            let keep = match cfg.truncate {
                Truncate::Head => &t[..n.min(cfg.max_len)],
                Truncate::Tail => &t[n.saturating_sub(cfg.max_len)..],
            };
            let mut ids = vocab.encode(keep);
            if ids.is_empty() {
                ids.push(vocab.unk_index()); // an empty review still has one step
            }
            Encoded {
                ids,
                label: y as f32,
            }
        })
        .collect()
}

/// A test hook (`--fault-abort-in-setup N`): abort the process, as a kill would, after the
/// `at`-th setup file, to test that a run killed during setup leaves no run directory.
fn fault_point(abort_after: Option<usize>, at: usize) {
    if abort_after == Some(at) {
        std::process::abort();
    }
}

/// Train (or resume) a sentiment model; see the module docs.
pub fn train(cfg: SentimentConfig, opts: &TrainOptions) -> Result<TrainSummary> {
    let started = Instant::now();
    let run = &opts.out;
    let log = |s: String| {
        if !opts.quiet {
            eprintln!("{s}");
        }
    };
    let mut run_file = RunFile {
        limit: opts.limit,
        skip_nonfinite: opts.skip_nonfinite,
        threads: Some(opts.threads),
        ..RunFile::default()
    };
    let (cfg, ckpt) = if opts.resume {
        let (mut cfg, _) =
            load_config(run).with_context(|| format!("--resume {}", run.display()))?;
        // Everything that defines the run comes back from the run directory; the options
        // that may change are applied and announced.
        run_file = RunFile::load(run).with_context(|| format!("--resume {}", run.display()))?;
        if let Some(e) = opts.epochs_override.filter(|&e| e != cfg.epochs) {
            eprintln!(
                "--epochs {e}: the run was started with {}; the learning-rate schedule now spans {e} epochs from here on",
                cfg.epochs
            );
            cfg.epochs = e;
        }
        if let Some(p) = opts.patience_override.filter(|&p| p != cfg.patience) {
            eprintln!("--patience {p}: the run was started with {}", cfg.patience);
            cfg.patience = p;
        }
        match run_file.threads {
            Some(t) if t != opts.threads => eprintln!(
                "--threads {}: the run was started with {t}; the results may differ in their last bits from an uninterrupted run (the batch slices depend on the thread count)",
                opts.threads
            ),
            _ => {}
        }
        // With settings but no checkpoint yet, the run starts from the beginning.
        match checkpoint::load_latest(run, &mut |w| eprintln!("warning: {w}"))? {
            Some(ck) => {
                log(format!(
                    "Resuming {} from checkpoint {}",
                    run.display(),
                    ck.0
                ));
                (cfg, Some(ck.1))
            }
            None => {
                log(format!(
                    "{} has no checkpoint yet: starting it from the beginning",
                    run.display()
                ));
                (cfg, None)
            }
        }
    } else {
        if !crate::rundir::is_absent_or_empty(run)? {
            bail!(
                "{} already exists and is not empty: resume it with `recurrent train --resume {}`, or choose another --out (nothing was overwritten)",
                run.display(),
                run.display()
            );
        }
        // The directory itself is made with its setup files, once the data is read.
        (cfg, None)
    };
    cfg.validate()?;
    let mut state: TrainerState = match &ckpt {
        Some(files) => serde_json::from_slice(
            files
                .get("trainer.json")
                .ok_or_else(|| anyhow!("checkpoint without trainer.json"))?,
        )
        .context("corrupt trainer state")?,
        None => TrainerState::default(),
    };
    if state.finished && state.epoch >= cfg.epochs {
        log(format!(
            "{} is already finished ({} epochs); pass --epochs to train longer",
            run.display(),
            state.epoch
        ));
        return Ok(TrainSummary {
            history: state.history.clone(),
            best_val_acc: state.best_val_acc,
            best_epoch: state.best_epoch,
            interrupted: false,
            seconds: 0.0,
        });
    }
    state.finished = false;

    // ---- data ---------------------------------------------------------------------------
    // A resumed run reads the data it started with, unless told where it is now.
    let remembered: Option<PathBuf> = if opts.resume && opts.data.is_none() {
        Some(run_file.data.clone()).filter(|p| p.exists())
    } else {
        None
    };
    let data_path = find_imdb(
        opts.data.as_deref().or(remembered.as_deref()),
        opts.allow_download,
    )?;
    let t0 = Instant::now();
    let corpus = imdb::read(
        &data_path,
        &ReadOptions {
            test: false,
            ..Default::default()
        },
    )
    .with_context(|| format!("reading the IMDB corpus at {}", data_path.display()))?;
    log(format!(
        "Read {} reviews from {} in {:.1} s",
        corpus.train.len(),
        data_path.display(),
        t0.elapsed().as_secs_f64()
    ));
    let fingerprint = corpus_fingerprint(&corpus.train);
    if let Some(want) = run_file.data_sha256.as_ref().filter(|_| opts.resume) {
        if *want != fingerprint {
            bail!(
                "the corpus at {} does not hold the reviews this run started with (it was {}): \
                 pass --data with that corpus",
                data_path.display(),
                run_file.data.display()
            );
        }
    }
    let labels: Vec<u8> = corpus.train.iter().map(|r| r.label).collect();
    let (mut train_idx, val_idx) = stratified_split(&labels, cfg.val_fraction, cfg.seed);
    if let Some(limit) = run_file.limit {
        let mut g = Generator::new(cfg.seed ^ 0x11A17);
        g.shuffle(&mut train_idx);
        train_idx.truncate(limit);
        train_idx.sort_unstable();
    }
    if train_idx.is_empty() {
        bail!("no training reviews left (check --limit and val_fraction)");
    }
    let tokenize = |idx: &[usize]| -> Vec<Vec<String>> {
        idx.par_iter()
            .map(|&i| cfg.tokenizer.tokenize(&corpus.train[i].text))
            .collect()
    };
    let train_tokens = tokenize(&train_idx);
    let val_tokens = tokenize(&val_idx);
    let vocab = if opts.resume {
        load_config(run)?.1
    } else {
        let v = Vocab::build(&train_tokens, cfg.max_vocab, cfg.min_freq);
        // The run directory appears here, whole (settings, vocabulary, data location): a run
        // that failed or was killed earlier leaves none, and from here on it is resumable.
        run_file.data = std::fs::canonicalize(&data_path).unwrap_or_else(|_| data_path.clone());
        run_file.data_sha256 = Some(fingerprint);
        crate::rundir::create(run, |dir| {
            write_atomic(
                &dir.join(RUN_FILE),
                serde_json::to_string_pretty(&run_file)?.as_bytes(),
            )?;
            fault_point(opts.abort_in_setup, 1);
            save_config(dir, &cfg, &v)?;
            fault_point(opts.abort_in_setup, 2);
            Ok(())
        })?;
        v
    };
    let pick = |idx: &[usize]| idx.iter().map(|&i| labels[i]).collect::<Vec<u8>>();
    let train_data = Arc::new(encode_all(&cfg, &vocab, &train_tokens, &pick(&train_idx)));
    let val_data = encode_all(&cfg, &vocab, &val_tokens, &pick(&val_idx));
    let mean_len =
        train_data.iter().map(|e| e.ids.len()).sum::<usize>() as f64 / train_data.len() as f64;
    log(format!(
        "{} training / {} validation reviews, vocabulary {} tokens, mean length {:.0} tokens (max_len {})",
        train_data.len(),
        val_data.len(),
        vocab.len(),
        mean_len,
        cfg.max_len
    ));

    // ---- model and optimiser ------------------------------------------------------------
    let mut model = SentimentModel::new(&cfg, vocab.len(), &mut Generator::new(cfg.seed))?;
    let mut opt = build_optimizer(&cfg, model.parameters())?;
    match &ckpt {
        Some(files) => {
            let sd = load_safetensors_bytes(
                files
                    .get("model.safetensors")
                    .ok_or_else(|| anyhow!("checkpoint without model"))?,
                "checkpoint model",
            )?;
            model
                .load_state_dict(&sd, true)
                .context("the checkpoint does not match the run's architecture")?;
            opt.load_state(&checkpoint::optimizer_state_from(
                files
                    .get("optimizer.safetensors")
                    .ok_or_else(|| anyhow!("checkpoint without optimizer state"))?,
            )?)?;
            recurrent::rng::set_global_state(state.rng);
        }
        None => recurrent::manual_seed(cfg.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xD20),
    }
    log(format!(
        "Model: {} parameters ({:?} {}x{}{}, pool {:?})",
        model.num_parameters(),
        cfg.cell,
        cfg.num_layers,
        cfg.hidden_size,
        if cfg.bidirectional {
            " bidirectional"
        } else {
            ""
        },
        cfg.pool
    ));
    let per_epoch = train_data.len().div_ceil(cfg.batch_size);
    let total_steps = per_epoch * cfg.epochs;
    let mut sched = LrScheduler::resume(
        schedule_for(&cfg, total_steps),
        cfg.lr,
        state.global_step as usize,
        opt.as_mut(),
    )?;
    let names: Vec<String> = model
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let step = TrainStep {
        clip: (cfg.clip_grad_norm > 0.0).then_some(cfg.clip_grad_norm),
        checks: Checks::All,
        names: &names,
    };

    let save_ckpt =
        |state: &TrainerState, model: &SentimentModel, opt: &dyn Optimizer| -> Result<()> {
            let mut st = state.clone();
            st.rng = recurrent::rng::global_state();
            checkpoint::save(
                run,
                &format!("step-{:010}", st.global_step),
                &[
                    (
                        "model.safetensors",
                        safetensors_bytes(&model.state_dict(), None)?,
                    ),
                    (
                        "optimizer.safetensors",
                        checkpoint::optimizer_state_bytes(&opt.state())?,
                    ),
                    ("trainer.json", serde_json::to_vec_pretty(&st)?),
                ],
            )?;
            Ok(())
        };

    let mut interrupted = false;
    'epochs: while state.epoch < cfg.epochs {
        let epoch = state.epoch;
        let mut g =
            Generator::new(cfg.seed ^ ((epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let all: Vec<usize> = (0..train_data.len()).collect();
        let plan = bucket_batches(&train_data, &all, cfg.batch_size, Some(&mut g));
        let skip = state.batch_in_epoch.min(plan.len());
        let loader = Loader::new(train_data.clone(), plan[skip..].to_vec(), 4);
        let bar = if !opts.progress {
            ProgressBar::hidden()
        } else {
            ProgressBar::with_draw_target(Some(per_epoch as u64), ProgressDrawTarget::stderr())
        };
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, cfg.epochs));
        bar.set_position(skip as u64);
        model.set_training(true);
        let mut t_mark = Instant::now();
        for batch in loader {
            let step_no = state.global_step + 1;
            let fault = opts.fault_nan_steps.contains(&step_no);
            let outcome = step.run(opt.as_mut(), || {
                let logits = model.forward(&batch)?;
                let y = Tensor::from_vec(batch.labels.clone(), &[batch.len()])?;
                let loss =
                    logits.binary_cross_entropy_with_logits(&y, None, None, Reduction::Mean)?;
                // `--fault-nan-steps`: this step's loss is NaN, as a bad batch's would be.
                Ok((
                    if fault {
                        Tensor::scalar(f32::NAN)
                    } else {
                        loss
                    },
                    logits,
                ))
            })?;
            match outcome {
                StepOutcome::Updated {
                    loss: lv,
                    grad_norm: gn,
                    output: logits,
                } => {
                    state.partial.grad_norm_sum += gn;
                    let preds = logits.to_vec();
                    state.partial.correct += preds
                        .iter()
                        .zip(&batch.labels)
                        .filter(|(&l, &y)| (l >= 0.0) == (y >= 0.5))
                        .count() as u64;
                    state.partial.loss_sum += lv * batch.len() as f64;
                    state.partial.count += batch.len() as u64;
                    state.partial.steps += 1;
                }
                StepOutcome::Skipped { what, .. } => {
                    if !run_file.skip_nonfinite {
                        bar.abandon();
                        bail!(
                            "non-finite value in {what} at epoch {} step {step_no}: stopping (the last checkpoint and the best model are intact; \
                             lower --lr, or pass --skip-nonfinite to skip such steps)",
                            epoch + 1
                        );
                    }
                    state.partial.skipped += 1;
                }
                StepOutcome::Diverged { parameter } => {
                    bar.abandon();
                    bail!(
                        "non-finite parameters: {parameter} became non-finite after step {step_no} of epoch {} (the learning rate is too high?); \
                         stopping without saving (the last checkpoint and the best model are intact)",
                        epoch + 1
                    );
                }
            }
            sched.step(opt.as_mut());
            state.global_step += 1;
            state.batch_in_epoch += 1;
            let now = Instant::now();
            state.partial.seconds += (now - t_mark).as_secs_f64();
            t_mark = now;
            bar.inc(1);
            if state.batch_in_epoch % 5 == 0 || state.batch_in_epoch == per_epoch {
                let p = &state.partial;
                bar.set_message(format!(
                    "loss {:.4} acc {:.3} |g| {:.3} {:.0} seq/s",
                    p.loss_sum / p.count.max(1) as f64,
                    p.correct as f64 / p.count.max(1) as f64,
                    p.grad_norm_sum / p.steps.max(1) as f64,
                    p.count as f64 / p.seconds.max(1e-9)
                ));
            }
            let stop_now = opts
                .stop_after_steps
                .is_some_and(|s| state.global_step >= s);
            if crate::interrupt::requested() || stop_now {
                bar.abandon();
                save_ckpt(&state, &model, opt.as_ref())?;
                eprintln!(
                    "Interrupted at epoch {} step {}: checkpoint saved. Continue with `recurrent train --resume {}`.",
                    epoch + 1,
                    state.global_step,
                    run.display()
                );
                interrupted = true;
                break 'epochs;
            }
        }
        bar.finish_and_clear();

        // ---- end of epoch: validate, record, keep the best, checkpoint -------------------
        model.set_training(false);
        let (val_loss, conf) = evaluate(&model, &val_data)?;
        let p = std::mem::take(&mut state.partial);
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss: p.loss_sum / p.count.max(1) as f64,
            train_acc: p.correct as f64 / p.count.max(1) as f64,
            val_loss,
            val_acc: conf.accuracy(),
            lr: opt.lr(),
            seconds: p.seconds,
            seq_per_s: p.count as f64 / p.seconds.max(1e-9),
            grad_norm: p.grad_norm_sum / p.steps.max(1) as f64,
            skipped_steps: p.skipped,
        };
        eprintln!(
            "epoch {:>2}/{}  train loss {:.4} acc {:.4}  val loss {:.4} acc {:.4}  {:.0} s ({:.0} seq/s)",
            m.epoch, cfg.epochs, m.train_loss, m.train_acc, m.val_loss, m.val_acc, m.seconds, m.seq_per_s
        );
        state.history.push(m.clone());
        state.epoch += 1;
        state.batch_in_epoch = 0;
        if m.val_acc > state.best_val_acc {
            state.best_val_acc = m.val_acc;
            state.best_epoch = m.epoch;
            state.epochs_since_best = 0;
            save_weights(run, &model)?;
        } else {
            state.epochs_since_best += 1;
        }
        write_metrics(run, &state.history)?;
        let stop = cfg.patience > 0 && state.epochs_since_best >= cfg.patience;
        state.finished = stop || state.epoch >= cfg.epochs;
        save_ckpt(&state, &model, opt.as_ref())?;
        if stop {
            log(format!(
                "Early stopping: no better validation accuracy for {} epochs.",
                cfg.patience
            ));
            break;
        }
    }
    Ok(TrainSummary {
        history: state.history.clone(),
        best_val_acc: state.best_val_acc,
        best_epoch: state.best_epoch,
        interrupted,
        seconds: started.elapsed().as_secs_f64(),
    })
}
