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
//!
//! The stages, one method each: [`train`] opens the run (`Setup::open`: a new directory, or a
//! resumed run's settings and last checkpoint), reads the data (`Setup::data`), builds the
//! model and optimiser (`Trainer::new`), then runs `Trainer::epoch` (one `Trainer::step` per
//! batch) and `Trainer::end_of_epoch` (validation, best model, metrics) until the epochs are
//! done, early stopping says so, or Ctrl-C; `Trainer::checkpoint` saves where it stands.

mod data;
mod optim;
mod record;
mod run_file;
mod setup;

use self::data::TrainData;
use self::optim::build_optimizer;
pub use self::optim::{schedule, schedule_for};
pub use self::record::EpochMetrics;
use self::record::{write_metrics, Accum};
pub(crate) use self::run_file::corpus_fingerprint;
pub use self::run_file::RunFile;
use self::setup::{Opened, Setup};
use super::config::SentimentConfig;
use super::model::SentimentModel;
use super::modeldir::save_weights;
use crate::checkpoint::{self, Files};
use crate::interrupt;
use crate::metrics::Confusion;
use crate::pretrain::{layer_group, LmDir};
use crate::training::{Checks, StepOutcome, TrainStep};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use recurrent::io::{load_safetensors_bytes, safetensors_bytes};
use recurrent::nn::Module;
use recurrent::optim::{LrScheduler, Optimizer};
use recurrent::{Generator, Reduction, Tensor};
use recurrent_data::batch::{bucket_batches, Batch, Encoded, Loader};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

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

impl TrainOptions {
    /// Print a log line, unless quiet.
    fn log(&self, line: String) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }
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

/// Where a run stands: saved in every checkpoint as `trainer.json`.
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

impl TrainerState {
    fn summary(&self, interrupted: bool, seconds: f64) -> TrainSummary {
        TrainSummary {
            history: self.history.clone(),
            best_val_acc: self.best_val_acc,
            best_epoch: self.best_epoch,
            interrupted,
            seconds,
        }
    }
}

/// Train (or resume) a sentiment model; see the module docs.
pub fn train(cfg: SentimentConfig, opts: &TrainOptions) -> Result<TrainSummary> {
    let started = Instant::now();
    let mut setup = match Setup::open(cfg, opts)? {
        Opened::Ready(setup) => *setup,
        Opened::Finished(summary) => return Ok(summary),
    };
    let data = setup.data()?;
    let mut trainer = Trainer::new(setup, data)?;
    let mut interrupted = false;
    while trainer.state.epoch < trainer.cfg.epochs {
        if trainer.epoch()? {
            interrupted = true;
            break;
        }
        if trainer.end_of_epoch()? {
            break;
        }
    }
    Ok(trainer
        .state
        .summary(interrupted, started.elapsed().as_secs_f64()))
}

/// A run with its data, model, optimiser and schedule: the training loop, stage by stage.
struct Trainer<'a> {
    cfg: SentimentConfig,
    opts: &'a TrainOptions,
    run_file: RunFile,
    state: TrainerState,
    data: TrainData,
    model: SentimentModel,
    opt: Box<dyn Optimizer>,
    sched: LrScheduler,
    /// The parameters' names, in the optimiser's order.
    names: Vec<String>,
    /// Batches per epoch.
    per_epoch: usize,
}

impl<'a> Trainer<'a> {
    /// The model stage: build the model and optimiser (restored from the checkpoint on
    /// resume), seed the dropout generator, and set up the learning-rate schedule.
    fn new(setup: Setup<'a>, data: TrainData) -> Result<Trainer<'a>> {
        let Setup {
            cfg,
            opts,
            run_file,
            state,
            checkpoint,
            lm,
        } = setup;
        let model = SentimentModel::new(&cfg, data.vocab_len, &mut Generator::new(cfg.seed))?;
        let mut opt = build_optimizer(&cfg, model.parameters())?;
        match &checkpoint {
            Some(files) => restore(files, &model, opt.as_mut(), state.rng)?,
            None => recurrent::manual_seed(cfg.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xD20),
        }
        if let (Some(lm), None) = (&lm, &checkpoint) {
            load_encoder(&model, lm)?;
        }
        opts.log(format!(
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
        let per_epoch = data.train.len().div_ceil(cfg.batch_size);
        let sched = LrScheduler::resume(
            schedule_for(&cfg, per_epoch * cfg.epochs),
            cfg.lr,
            state.global_step as usize,
            opt.as_mut(),
        )?;
        let names = model
            .named_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        Ok(Trainer {
            cfg,
            opts,
            run_file,
            state,
            data,
            model,
            opt,
            sched,
            names,
            per_epoch,
        })
    }

    /// The layer groups that train in `epoch` and their rates: ULMFiT's gradual unfreezing
    /// (the output layer alone first, then one group more each epoch) and discriminative
    /// rates (each group below the top at the rate above it divided by `discriminative`).
    /// Sets the optimiser's factors and freezes the encoder when it does not train at all;
    /// returns the frozen parameters.
    fn layer_rates(&mut self, epoch: usize) -> Result<Vec<Tensor>> {
        let layers = self.cfg.num_layers;
        let top = layers + 1;
        let params = self.opt.params().to_vec();
        let mut frozen = Vec::new();
        let mut factors = Vec::with_capacity(params.len());
        for (name, p) in self.names.iter().zip(&params) {
            let group = layer_group(name, layers).unwrap_or(top);
            let trains = !self.cfg.gradual_unfreezing || group + epoch >= top;
            factors.push(if trains {
                self.cfg.discriminative.powi(-((top - group) as i32))
            } else {
                frozen.push(p.clone());
                0.0
            });
        }
        self.opt.set_lr_factors(&factors)?;
        self.model
            .set_encoder_frozen(self.cfg.gradual_unfreezing && epoch == 0);
        Ok(frozen)
    }

    /// Train the current epoch (what is left of it on resume). Returns `true` when it was
    /// interrupted (Ctrl-C or the `--stop-after-steps` hook), with a checkpoint saved.
    fn epoch(&mut self) -> Result<bool> {
        let epoch = self.state.epoch;
        let frozen = self.layer_rates(epoch)?;
        let mut g = Generator::new(
            self.cfg.seed ^ ((epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        );
        let all: Vec<usize> = (0..self.data.train.len()).collect();
        let plan = bucket_batches(&self.data.train, &all, self.cfg.batch_size, Some(&mut g));
        let skip = self.state.batch_in_epoch.min(plan.len());
        let loader = Loader::new(self.data.train.clone(), plan[skip..].to_vec(), 4);
        let bar = self.progress_bar(epoch, skip);
        self.model.set_training(true);
        let mut t_mark = Instant::now();
        for batch in loader {
            self.step(&batch, &bar, &frozen)?;
            let now = Instant::now();
            self.state.partial.seconds += (now - t_mark).as_secs_f64();
            t_mark = now;
            bar.inc(1);
            if self.state.batch_in_epoch.is_multiple_of(5)
                || self.state.batch_in_epoch == self.per_epoch
            {
                bar.set_message(self.state.partial.message());
            }
            let stop_now = self
                .opts
                .stop_after_steps
                .is_some_and(|s| self.state.global_step >= s);
            if interrupt::requested() || stop_now {
                bar.abandon();
                self.checkpoint()?;
                eprintln!(
                    "Interrupted at epoch {} step {}: checkpoint saved. Continue with `recurrent train --resume {}`.",
                    epoch + 1,
                    self.state.global_step,
                    self.opts.out.display()
                );
                return Ok(true);
            }
        }
        bar.finish_and_clear();
        Ok(false)
    }

    /// One optimisation step on `batch` (or a skipped one, with `--skip-nonfinite`), its
    /// numbers, and the schedule's step.
    fn step(&mut self, batch: &Batch, bar: &ProgressBar, frozen: &[Tensor]) -> Result<()> {
        let step_no = self.state.global_step + 1;
        let fault = self.opts.fault_nan_steps.contains(&step_no);
        let model = &self.model;
        let step = TrainStep {
            clip: (self.cfg.clip_grad_norm > 0.0).then_some(self.cfg.clip_grad_norm),
            checks: Checks::All,
            names: &self.names,
        };
        // Frozen parameters have no gradient, as in PyTorch: none in the clipped norm.
        let unfreeze = || {
            frozen.iter().for_each(Tensor::zero_grad);
            Ok(())
        };
        let outcome = step.run_inspecting(
            self.opt.as_mut(),
            || {
                let logits = model.forward(batch)?;
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
            },
            unfreeze,
        )?;
        let epoch = self.state.epoch + 1;
        match outcome {
            StepOutcome::Updated {
                loss,
                grad_norm,
                output: logits,
            } => self.state.partial.add_step(loss, grad_norm, &logits, batch),
            StepOutcome::Skipped { what, .. } => {
                if !self.run_file.skip_nonfinite {
                    bar.abandon();
                    bail!(
                        "non-finite value in {what} at epoch {epoch} step {step_no}: stopping (the last checkpoint and the best model are intact; \
                         lower --lr, or pass --skip-nonfinite to skip such steps)"
                    );
                }
                self.state.partial.skipped += 1;
            }
            StepOutcome::Diverged { parameter } => {
                bar.abandon();
                bail!(
                    "non-finite parameters: {parameter} became non-finite after step {step_no} of epoch {epoch} (the learning rate is too high?); \
                     stopping without saving (the last checkpoint and the best model are intact)"
                );
            }
        }
        self.sched.step(self.opt.as_mut());
        self.state.global_step += 1;
        self.state.batch_in_epoch += 1;
        Ok(())
    }

    /// The end of an epoch: validate, record the epoch, keep the best model, write the
    /// metrics, checkpoint. Returns `true` when early stopping ends the run.
    fn end_of_epoch(&mut self) -> Result<bool> {
        self.model.set_training(false);
        let (val_loss, conf) = evaluate(&self.model, &self.data.val)?;
        let p = std::mem::take(&mut self.state.partial);
        let m = p.metrics(
            self.state.epoch + 1,
            val_loss,
            conf.accuracy(),
            self.opt.lr(),
        );
        eprintln!(
            "epoch {:>2}/{}  train loss {:.4} acc {:.4}  val loss {:.4} acc {:.4}  {:.0} s ({:.0} seq/s)",
            m.epoch, self.cfg.epochs, m.train_loss, m.train_acc, m.val_loss, m.val_acc, m.seconds, m.seq_per_s
        );
        let state = &mut self.state;
        state.history.push(m.clone());
        state.epoch += 1;
        state.batch_in_epoch = 0;
        if m.val_acc > state.best_val_acc {
            state.best_val_acc = m.val_acc;
            state.best_epoch = m.epoch;
            state.epochs_since_best = 0;
            save_weights(&self.opts.out, &self.model)?;
        } else {
            state.epochs_since_best += 1;
        }
        write_metrics(&self.opts.out, &state.history)?;
        let stop = self.cfg.patience > 0 && state.epochs_since_best >= self.cfg.patience;
        state.finished = stop || state.epoch >= self.cfg.epochs;
        self.checkpoint()?;
        if stop {
            self.opts.log(format!(
                "Early stopping: no better validation accuracy for {} epochs.",
                self.cfg.patience
            ));
        }
        Ok(stop)
    }

    /// Save a checkpoint: the model, the optimiser, and where the run stands (with the dropout
    /// generator's state).
    fn checkpoint(&self) -> Result<()> {
        let mut st = self.state.clone();
        st.rng = recurrent::rng::global_state();
        checkpoint::save(
            &self.opts.out,
            &format!("step-{:010}", st.global_step),
            &[
                (
                    "model.safetensors",
                    safetensors_bytes(&self.model.state_dict(), None)?,
                ),
                (
                    "optimizer.safetensors",
                    checkpoint::optimizer_state_bytes(&self.opt.state())?,
                ),
                ("trainer.json", serde_json::to_vec_pretty(&st)?),
            ],
        )?;
        Ok(())
    }

    /// The epoch's progress bar (hidden unless drawing to a terminal).
    fn progress_bar(&self, epoch: usize, skip: usize) -> ProgressBar {
        let bar = if !self.opts.progress {
            ProgressBar::hidden()
        } else {
            ProgressBar::with_draw_target(Some(self.per_epoch as u64), ProgressDrawTarget::stderr())
        };
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, self.cfg.epochs));
        bar.set_position(skip as u64);
        bar
    }
}

/// Copy the pretrained encoder (`embedding.*`, `rnn.*`) of `lm` into `model`, checking every
/// name and shape.
fn load_encoder(model: &SentimentModel, lm: &LmDir) -> Result<()> {
    for (name, p) in model.named_parameters() {
        if !(name.starts_with("embedding.") || name.starts_with("rnn.")) {
            continue;
        }
        let src = lm.weights.get(&name).ok_or_else(|| {
            anyhow!(
                "the language model in {} has no {name}: it does not fit this classifier",
                lm.dir.display()
            )
        })?;
        if src.shape() != p.shape() {
            bail!(
                "{name} is {:?} in the language model in {} but {:?} in the classifier",
                src.shape(),
                lm.dir.display(),
                p.shape()
            );
        }
        p.copy_from(&src.to_vec())?;
    }
    Ok(())
}

/// Restore the model, the optimiser and the dropout generator from a checkpoint's files.
fn restore(
    files: &Files,
    model: &SentimentModel,
    opt: &mut dyn Optimizer,
    rng: [u64; 4],
) -> Result<()> {
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
    recurrent::rng::set_global_state(rng);
    Ok(())
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
