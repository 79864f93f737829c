//! The pretraining loop: open (or resume) the run, read the text, then truncated BPTT steps
//! until the epochs or `max_steps` are done or Ctrl-C; held-out perplexity at the end of each
//! epoch (and every `eval_every` steps), snapshots every `snapshot_minutes`, a checkpoint at
//! every epoch's end and on interruption.

use super::corpus::{LmCorpus, Sampler};
use super::lmdir::{load_lm, save_lm, LmInfo};
use super::model::{evaluate, LanguageModel};
use super::record::{restore, write_metrics, EvalPoint, PretrainRun, PretrainState, RUN_FORMAT};
use super::steps::{layer_group, plan, samples_of};
use super::{LmText, PretrainConfig};
use crate::checkpoint;
use crate::datapath::find_imdb;
use crate::interrupt;
use crate::sentiment::train::{corpus_fingerprint, schedule};
use crate::tbptt::{chunk_at, make_streams};
use crate::training::{Checks, StepOutcome, TrainStep};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use recurrent::io::{safetensors_bytes, write_atomic};
use recurrent::nn::{Module, RnnState, StateDict};
use recurrent::optim::{Adam, AdamConfig, LrScheduler, Optimizer};
use recurrent::Generator;
use recurrent_data::imdb::{self, ReadOptions};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// How to run `pretrain` (beyond the settings).
#[derive(Clone, Debug, Default)]
pub struct PretrainOptions {
    /// The output directory.
    pub out: PathBuf,
    /// `--data PATH`: the IMDB corpus.
    pub data: Option<PathBuf>,
    /// Continue the run in `out`.
    pub resume: bool,
    /// Start from this language-model directory (its vocabulary and architecture).
    pub init_from: Option<PathBuf>,
    /// Download the corpus when it is nowhere to be found.
    pub allow_download: bool,
    /// Read at most this many reviews (quick runs and tests).
    pub limit: Option<usize>,
    /// Worker threads (recorded; the last bits of the results depend on them).
    pub threads: usize,
    /// Behave as if interrupted after this many steps (tests of resume).
    pub stop_after_steps: Option<u64>,
    /// No log lines.
    pub quiet: bool,
    /// Draw a progress bar.
    pub progress: bool,
}

impl PretrainOptions {
    fn log(&self, line: String) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Serialize)]
pub struct PretrainReport {
    /// Steps taken in all.
    pub steps: u64,
    /// Training seconds in all (evaluation and saving excluded).
    pub train_seconds: f64,
    /// The final held-out cross-entropy (nats per word).
    pub val_nats: f64,
    /// Its perplexity.
    pub val_perplexity: f64,
    /// Whether it stopped early on Ctrl-C (resumable).
    pub interrupted: bool,
}

/// Pretrain (or resume) a language model into `opts.out`; see the module docs.
pub fn pretrain(cfg: PretrainConfig, opts: &PretrainOptions) -> Result<PretrainReport> {
    let mut run = Run::open(cfg, opts)?;
    let mut interrupted = false;
    while !run.state.finished {
        if run.epoch()? {
            interrupted = true;
            break;
        }
    }
    let last = run.state.history.last().cloned().unwrap_or_default();
    Ok(PretrainReport {
        steps: run.state.step,
        train_seconds: run.state.train_seconds,
        val_nats: last.val_nats,
        val_perplexity: last.val_perplexity,
        interrupted,
    })
}

/// A run with its text, model and optimiser.
struct Run<'a> {
    cfg: PretrainConfig,
    opts: &'a PretrainOptions,
    corpus: LmCorpus,
    sampler: Sampler,
    model: LanguageModel,
    opt: Adam,
    sched: LrScheduler,
    names: Vec<String>,
    /// The BPTT length of every step of the run, in order.
    lengths: Vec<usize>,
    /// Steps per epoch.
    epoch_steps: Vec<usize>,
    /// The state carried into the next chunk.
    carried: Option<RnnState>,
    state: PretrainState,
}

impl<'a> Run<'a> {
    /// Set up a new run, or restore the one in `opts.out`.
    fn open(cfg: PretrainConfig, opts: &'a PretrainOptions) -> Result<Run<'a>> {
        let out = &opts.out;
        let (cfg, stored) = if opts.resume {
            let r = PretrainRun::load(out)?;
            (r.config.clone(), Some(r))
        } else {
            if !crate::rundir::is_absent_or_empty(out)? {
                bail!(
                    "{} already exists and is not empty: choose another --out, or continue it with `recurrent pretrain --resume {}`",
                    out.display(),
                    out.display()
                );
            }
            (cfg, None)
        };
        let init_from = stored
            .as_ref()
            .map_or(opts.init_from.clone(), |r| r.init_from.clone());
        let init = init_from
            .as_deref()
            .map(|d| load_lm(d).with_context(|| format!("--init-from {}", d.display())))
            .transpose()?;
        // With --init-from the architecture and the vocabulary are the pretrained model's.
        let cfg = match &init {
            Some(lm) => PretrainConfig {
                max_vocab: lm.info.config.max_vocab,
                min_freq: lm.info.config.min_freq,
                embedding_dim: lm.info.config.embedding_dim,
                hidden: lm.info.config.hidden,
                layers: lm.info.config.layers,
                tie_weights: lm.info.config.tie_weights,
                ..cfg
            },
            None => cfg,
        };
        cfg.validate()?;
        let data_flag = opts.data.clone().or_else(|| {
            stored
                .as_ref()
                .map(|r| r.data.clone())
                .filter(|p| p.exists())
        });
        let data_path = find_imdb(data_flag.as_deref(), opts.allow_download)?;
        let t0 = Instant::now();
        let corpus = imdb::read(
            &data_path,
            &ReadOptions {
                include_unsup: cfg.text == LmText::Imdb,
                test: false,
                ..Default::default()
            },
        )
        .with_context(|| format!("reading the IMDB corpus at {}", data_path.display()))?;
        let mut reviews = corpus.train;
        reviews.extend(corpus.unsup);
        let limit = stored.as_ref().map_or(opts.limit, |r| r.limit);
        if let Some(n) = limit {
            crate::validate::positive("--limit", n)?;
            Generator::new(cfg.seed ^ 0x11A17).shuffle(&mut reviews);
            reviews.truncate(n);
        }
        let fingerprint = corpus_fingerprint(&reviews);
        if let Some(r) = &stored {
            if r.data_sha256 != fingerprint {
                bail!(
                    "the corpus at {} does not hold the reviews this run started with (it was {}): pass --data with that corpus",
                    data_path.display(),
                    r.data.display()
                );
            }
        }
        let texts: Vec<&str> = reviews.iter().map(|r| r.text.as_str()).collect();
        let corpus = LmCorpus::new(
            &texts,
            cfg.val_fraction,
            cfg.max_vocab,
            cfg.min_freq,
            cfg.seed,
            init.as_ref().map(|lm| lm.vocab.clone()),
        )?;
        drop(reviews);
        let tokens = corpus.train_tokens();
        let per_stream = tokens / cfg.batch_size;
        let held_out: usize = corpus.val.iter().map(Vec::len).sum();
        if per_stream < 2 || held_out < 2 {
            bail!(
                "the text is too short for --batch-size {}: {tokens} training tokens, {held_out} held out",
                cfg.batch_size
            );
        }
        opts.log(format!(
            "Read {} reviews in {:.1} s: {} training tokens, {} held out; vocabulary {} words",
            corpus.train.len() + corpus.val.len(),
            t0.elapsed().as_secs_f64(),
            tokens,
            held_out,
            corpus.vocab.len()
        ));
        if stored.is_none() {
            let run = PretrainRun {
                format: RUN_FORMAT.into(),
                config: cfg.clone(),
                data: std::fs::canonicalize(&data_path).unwrap_or(data_path.clone()),
                data_sha256: fingerprint,
                limit,
                init_from: init_from.clone(),
                threads: opts.threads,
            };
            crate::rundir::create(out, |dir| {
                write_atomic(
                    &dir.join("run.json"),
                    serde_json::to_string_pretty(&run)?.as_bytes(),
                )?;
                write_atomic(&dir.join("vocab.json"), corpus.vocab.to_json().as_bytes())?;
                Ok(())
            })?;
        }
        let model = match &init {
            Some(lm) => {
                let m = lm.model()?;
                // The pretrained weights with this run's dropout settings.
                let fresh = LanguageModel::new(&cfg, corpus.vocab.len(), &mut Generator::new(0))?;
                fresh.load_state_dict(&m.state_dict(), true)?;
                fresh
            }
            None => LanguageModel::new(&cfg, corpus.vocab.len(), &mut Generator::new(cfg.seed))?,
        };
        let adam = if cfg.weight_decay > 0.0 {
            AdamConfig::adamw().with_weight_decay(cfg.weight_decay)
        } else {
            AdamConfig::adam()
        };
        let mut opt = Adam::new(model.parameters(), adam.with_lr(cfg.lr))?;
        let names: Vec<String> = model
            .named_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let top = cfg.layers + 1;
        let factors: Vec<f64> = names
            .iter()
            .map(|n| {
                cfg.discriminative
                    .powi(-((top - layer_group(n, cfg.layers).unwrap_or(top)) as i32))
            })
            .collect();
        opt.set_lr_factors(&factors)?;
        let (lengths, epoch_steps) = plan(&cfg, per_stream);
        let mut state = PretrainState {
            next_snapshot: cfg.snapshot_minutes * 60.0,
            ..Default::default()
        };
        let mut carried = None;
        recurrent::manual_seed(cfg.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x1A);
        if opts.resume {
            match checkpoint::load_latest(out, &mut |w| eprintln!("warning: {w}"))? {
                Some((name, files)) => {
                    (state, carried) = restore(&files, &model, &mut opt)?;
                    opts.log(format!(
                        "Resuming from checkpoint {name} (step {})",
                        state.step
                    ));
                }
                None => opts.log(format!(
                    "{} has no checkpoint yet: starting it from the beginning",
                    out.display()
                )),
            }
        }
        let sched = LrScheduler::resume(
            schedule(cfg.schedule, cfg.lr, cfg.warmup_steps, lengths.len()),
            cfg.lr,
            state.step as usize,
            &mut opt,
        )?;
        let sampler = Sampler::new(&corpus.counts(), cfg.samples);
        opts.log(format!(
            "Model: {} parameters (LSTM {}x{}{}, embedding {}, {} output); {} steps over {} epoch(s)",
            model.num_parameters(),
            cfg.layers,
            cfg.hidden,
            match cfg.proj_size() {
                0 => String::new(),
                p => format!(" projected to {p}"),
            },
            cfg.embedding_dim,
            if cfg.tie_weights { "tied" } else { "untied" },
            lengths.len(),
            epoch_steps.len()
        ));
        Ok(Run {
            cfg,
            opts,
            corpus,
            sampler,
            model,
            opt,
            sched,
            names,
            lengths,
            epoch_steps,
            carried,
            state,
        })
    }

    /// Train what is left of the current epoch. Returns `true` when interrupted (with a
    /// checkpoint saved).
    fn epoch(&mut self) -> Result<bool> {
        let epoch = self.state.epoch;
        let stream = self.corpus.epoch_stream(self.cfg.seed, epoch);
        let streams = make_streams(&stream, self.cfg.batch_size);
        drop(stream);
        let first = self.epoch_steps[..epoch].iter().sum::<usize>() as u64;
        let end = first + self.epoch_steps[epoch] as u64;
        let bar = self.progress_bar(epoch, (self.state.step - first) as usize);
        self.model.set_training(true);
        let names = self.names.clone();
        let step_cfg = TrainStep {
            clip: (self.cfg.clip_grad_norm > 0.0).then_some(self.cfg.clip_grad_norm),
            checks: Checks::All,
            names: &names,
        };
        while self.state.step < end {
            let t_step = Instant::now();
            let step = self.state.step;
            let (x, y, len) = chunk_at(&streams, self.state.pos, self.lengths[step as usize]);
            let samples = samples_of(&self.cfg, &self.sampler, step);
            // AWD-LSTM: the rate scales with the length drawn.
            let lr = self.sched.last_lr() * len as f64 / self.cfg.bptt as f64;
            self.opt.set_lr(lr);
            let (model, sampler, carried) = (&self.model, &self.sampler, &self.carried);
            let b = self.cfg.batch_size;
            let outcome = step_cfg.run(&mut self.opt, || {
                let (h, st) = model.hidden(&x, len, b, carried.as_ref())?;
                Ok((model.train_loss(&h, &y, sampler, &samples)?, st))
            })?;
            match outcome {
                StepOutcome::Updated { loss, output, .. } => {
                    self.carried = Some(output.detach());
                    self.state.loss_sum += loss;
                    self.state.loss_count += 1;
                }
                StepOutcome::Skipped { what, .. } => {
                    bar.abandon();
                    bail!(
                        "non-finite value in {what} at step {}: stopping (the last checkpoint is intact; lower --lr or --clip-grad-norm)",
                        step + 1
                    );
                }
                StepOutcome::Diverged { parameter } => {
                    bar.abandon();
                    bail!(
                        "{parameter} became non-finite at step {}: stopping without saving (the last checkpoint is intact; lower --lr)",
                        step + 1
                    );
                }
            }
            self.sched.step(&mut self.opt);
            self.state.step += 1;
            self.state.pos += len;
            self.state.train_seconds += t_step.elapsed().as_secs_f64();
            bar.inc(1);
            // A line every 2% of the epoch when there is no bar to draw (a log file).
            let log_every = (self.epoch_steps[epoch] / 50).max(1) as u64;
            let log_now =
                !self.opts.progress && (self.state.step - first).is_multiple_of(log_every);
            if self.state.step.is_multiple_of(10) || log_now {
                let line = format!(
                    "loss {:.3} ({:.0} tok/s)",
                    self.state.loss_sum / self.state.loss_count.max(1) as f64,
                    (len * b) as f64 / t_step.elapsed().as_secs_f64()
                );
                if log_now {
                    self.opts.log(format!(
                        "step {}/{} of epoch {}: {line}, {:.0} s of training",
                        self.state.step - first,
                        self.epoch_steps[epoch],
                        epoch + 1,
                        self.state.train_seconds
                    ));
                }
                bar.set_message(line);
            }
            let every = self.cfg.eval_every as u64;
            if every > 0 && self.state.step.is_multiple_of(every) && self.state.step < end {
                self.measure()?;
            }
            if self.cfg.snapshot_minutes > 0.0
                && self.state.train_seconds >= self.state.next_snapshot
            {
                self.snapshot()?;
            }
            let stop_now = self
                .opts
                .stop_after_steps
                .is_some_and(|s| self.state.step >= s);
            if interrupt::requested() || stop_now {
                bar.abandon();
                self.checkpoint()?;
                eprintln!(
                    "Interrupted at step {}: checkpoint saved. Continue with `recurrent pretrain --resume {}`.",
                    self.state.step,
                    self.opts.out.display()
                );
                return Ok(true);
            }
        }
        bar.finish_and_clear();
        // The end of an epoch (or of max_steps): measure, save the model, checkpoint.
        self.state.epoch += 1;
        self.state.pos = 0;
        self.carried = None;
        self.state.finished = self.state.epoch >= self.epoch_steps.len();
        let point = self.measure()?;
        eprintln!(
            "epoch {}/{}  step {}  train loss {:.3}  held-out {:.3} nats/word (perplexity {:.1})  {:.0} s of training",
            self.state.epoch,
            self.epoch_steps.len(),
            point.step,
            point.train_loss,
            point.val_nats,
            point.val_perplexity,
            point.train_seconds
        );
        save_lm(
            &self.opts.out,
            &self.model,
            &self.corpus.vocab,
            &self.info(Some(point.val_nats)),
        )?;
        self.checkpoint()?;
        Ok(false)
    }

    /// Held-out perplexity now: recorded, written to `metrics.json` and `curves.png`.
    fn measure(&mut self) -> Result<EvalPoint> {
        self.model.set_training(false);
        let val = evaluate(
            &self.model,
            &self.corpus.val_stream(),
            self.cfg.batch_size,
            self.cfg.bptt,
        )?;
        self.model.set_training(true);
        let total: usize = self.epoch_steps.iter().sum();
        let st = &mut self.state;
        let done_before: usize = self.epoch_steps[..st.epoch.min(self.epoch_steps.len())]
            .iter()
            .sum();
        let epoch = if st.pos == 0 {
            st.epoch as f64
        } else {
            st.epoch as f64
                + (st.step as usize - done_before) as f64 / self.epoch_steps[st.epoch].max(1) as f64
        };
        let point = EvalPoint {
            step: st.step,
            epoch,
            train_seconds: st.train_seconds,
            train_loss: st.loss_sum / st.loss_count.max(1) as f64,
            val_nats: val,
            val_perplexity: val.exp(),
        };
        st.loss_sum = 0.0;
        st.loss_count = 0;
        st.history.push(point.clone());
        self.opts.log(format!(
            "step {}/{}: held-out {:.3} nats/word, perplexity {:.1}",
            point.step, total, point.val_nats, point.val_perplexity
        ));
        write_metrics(&self.opts.out, &self.state.history)?;
        Ok(point)
    }

    /// A snapshot LM directory, `snapshots/step-N`, with its held-out perplexity, and a
    /// checkpoint.
    fn snapshot(&mut self) -> Result<()> {
        let point = self.measure()?;
        let dir = self
            .opts
            .out
            .join("snapshots")
            .join(format!("step-{:08}", self.state.step));
        save_lm(
            &dir,
            &self.model,
            &self.corpus.vocab,
            &self.info(Some(point.val_nats)),
        )?;
        self.state.next_snapshot += self.cfg.snapshot_minutes * 60.0;
        // A snapshot is also a checkpoint: a killed run resumes from here.
        self.checkpoint()
    }

    fn info(&self, val_nats: Option<f64>) -> LmInfo {
        let mut info = LmInfo::new(&self.cfg, self.corpus.vocab.len());
        info.step = self.state.step;
        info.train_seconds = self.state.train_seconds;
        info.val_nats = val_nats;
        info
    }

    /// Save a checkpoint: the model, the optimiser, the carried state and where the run
    /// stands (with the dropout generator's state).
    fn checkpoint(&self) -> Result<()> {
        let mut st = self.state.clone();
        st.rng = recurrent::rng::global_state();
        let mut carried = StateDict::new();
        if let Some(s) = &self.carried {
            carried.insert("h", s.h().deep_clone());
            if let Some(c) = s.c() {
                carried.insert("c", c.deep_clone());
            }
        }
        checkpoint::save(
            &self.opts.out,
            &format!("step-{:010}", st.step),
            &[
                (
                    "model.safetensors",
                    safetensors_bytes(&self.model.state_dict(), None)?,
                ),
                (
                    "optimizer.safetensors",
                    checkpoint::optimizer_state_bytes(&self.opt.state())?,
                ),
                ("carried.safetensors", safetensors_bytes(&carried, None)?),
                ("trainer.json", serde_json::to_vec_pretty(&st)?),
            ],
        )?;
        Ok(())
    }

    fn progress_bar(&self, epoch: usize, done: usize) -> ProgressBar {
        let bar = if self.opts.progress {
            ProgressBar::with_draw_target(
                Some(self.epoch_steps[epoch] as u64),
                ProgressDrawTarget::stderr(),
            )
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, self.epoch_steps.len()));
        bar.set_position(done as u64);
        bar
    }
}
