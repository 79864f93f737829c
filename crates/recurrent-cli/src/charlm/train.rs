//! `recurrent charlm train`: truncated backpropagation through time over parallel streams of
//! the text, the best model kept, each epoch checkpointed, `--resume` exact (see the module
//! docs of `charlm`).

use super::model::evaluate;
use super::{load_config, CharConfig, CharModel, ConfigFile, FORMAT};
use crate::checkpoint;
use crate::interrupt;
use crate::tbptt::{chunk, make_streams};
use crate::training::{Checks, StepOutcome, TrainStep};
use anyhow::{anyhow, bail, Context, Result};
use recurrent::io::{load_safetensors_bytes, safetensors_bytes, save_safetensors, write_atomic};
use recurrent::nn::{Module, RnnState};
use recurrent::optim::{Adam, AdamConfig, Optimizer};
use recurrent::{ClassTarget, CrossEntropyOptions, Generator};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where a run stands: saved in every checkpoint as `trainer.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State2 {
    epoch: usize,
    best_val: f64,
    rng: [u64; 4],
    history: Vec<(usize, f64, f64, f64)>,
}

/// What training did.
#[derive(Clone, Debug, Serialize)]
pub struct CharReport {
    /// `(epoch, train nats, validation nats, seconds)`.
    pub history: Vec<(usize, f64, f64, f64)>,
    /// Best validation loss in nats per character.
    pub best_val_nats: f64,
    /// The same in bits per character.
    pub best_val_bpc: f64,
    /// Total wall time (s).
    pub seconds: f64,
    /// Stopped by Ctrl-C (or the `--stop-after-steps` hook) with the last epoch checkpointed.
    #[serde(skip)]
    pub interrupted: bool,
}

/// How to run `charlm train` beyond the model settings.
#[derive(Clone, Debug, Default)]
pub struct CharTrainOptions {
    /// The text (required for a new run; on resume, where it is now, when it moved).
    pub text: Option<PathBuf>,
    /// The run directory.
    pub out: PathBuf,
    /// Continue the run in `out` with the settings it was started with.
    pub resume: bool,
    /// Use only the first N characters of the text.
    pub max_chars: Option<usize>,
    /// With `resume`: change the number of epochs.
    pub epochs_override: Option<usize>,
    /// The worker threads of this process (recorded, compared on resume).
    pub threads: usize,
    /// Behave as if interrupted after this many steps (a test hook).
    pub stop_after_steps: Option<u64>,
    /// No progress lines.
    pub quiet: bool,
}

/// What defines a character-model run beyond `config.json`: written when it starts,
/// restored by `--resume`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CharRunFile {
    /// The text file (absolute path when the run started).
    pub text: PathBuf,
    /// SHA-256 of the text: a resumed run must read the same text, wherever it is now.
    pub text_sha256: String,
    /// `--max-chars`.
    pub max_chars: Option<usize>,
    /// Worker threads.
    pub threads: Option<usize>,
}

impl CharRunFile {
    /// Read `run.json`, or for runs made before it existed, `source.txt`.
    pub fn load(dir: &Path) -> Result<CharRunFile> {
        let p = dir.join("run.json");
        if let Ok(bytes) = std::fs::read(&p) {
            return serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is corrupt", p.display()));
        }
        let src = std::fs::read_to_string(dir.join("source.txt"))
            .with_context(|| format!("{} does not record its text file", dir.display()))?;
        Ok(CharRunFile {
            text: PathBuf::from(src.trim()),
            ..Default::default()
        })
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read_text(p: &Path) -> Result<String> {
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow!(
            "{}: not valid UTF-8 (byte {})",
            p.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// A run's settings, text and character set, as opened (and, for a new run, the run
/// directory's files, written once the text is known to suit the settings).
struct Opened {
    cfg: CharConfig,
    chars: Vec<char>,
    text: String,
    run_file: CharRunFile,
    pending_setup: Option<(ConfigFile, CharRunFile)>,
}

/// Open the run in `opts.out`: a resumed run's settings and text, or a new run's.
fn open(cfg: CharConfig, opts: &CharTrainOptions) -> Result<Opened> {
    let out = opts.out.as_path();
    if opts.resume {
        let (mut cfg, chars) = load_config(out)?;
        cfg.validate()
            .with_context(|| format!("{}/config.json", out.display()))?;
        let run_file = CharRunFile::load(out)?;
        let path = opts.text.clone().unwrap_or_else(|| run_file.text.clone());
        let text = read_text(&path)?;
        if !run_file.text_sha256.is_empty() && sha256_hex(text.as_bytes()) != run_file.text_sha256 {
            bail!(
                "{} is not the text this run started with ({}): pass --text with that text",
                path.display(),
                run_file.text.display()
            );
        }
        if let Some(e) = opts.epochs_override.filter(|&e| e != cfg.epochs) {
            eprintln!("--epochs {e}: the run was started with {}", cfg.epochs);
            cfg.epochs = e;
        }
        if let Some(t) = run_file.threads.filter(|&t| t != opts.threads) {
            eprintln!(
                "--threads {}: the run was started with {t}; the results may differ in their last bits from an uninterrupted run",
                opts.threads
            );
        }
        return Ok(Opened {
            cfg,
            chars,
            text,
            run_file,
            pending_setup: None,
        });
    }
    cfg.validate()?;
    let p = opts
        .text
        .as_deref()
        .ok_or_else(|| anyhow!("--text FILE is required"))?;
    let text = read_text(p)?;
    if !crate::rundir::is_absent_or_empty(out)? {
        bail!("{} already exists and is not empty: use --resume, or another --out (nothing was overwritten)", out.display());
    }
    let mut chars: Vec<char> = text.chars().collect();
    chars.sort_unstable();
    chars.dedup();
    let cf = ConfigFile {
        format: FORMAT.into(),
        chars: chars.clone(),
        config: cfg.clone(),
    };
    let run_file = CharRunFile {
        text: std::fs::canonicalize(p)?,
        text_sha256: sha256_hex(text.as_bytes()),
        max_chars: opts.max_chars,
        threads: Some(opts.threads),
    };
    Ok(Opened {
        cfg,
        chars,
        text,
        pending_setup: Some((cf, run_file.clone())),
        run_file,
    })
}

/// Create a new run's directory with its `config.json` and `run.json`.
fn create_run_dir(out: &Path, cf: &ConfigFile, rf: &CharRunFile) -> Result<()> {
    crate::rundir::create(out, |dir| {
        write_atomic(
            &dir.join("config.json"),
            serde_json::to_string_pretty(cf)?.as_bytes(),
        )?;
        write_atomic(
            &dir.join("run.json"),
            serde_json::to_string_pretty(rf)?.as_bytes(),
        )?;
        Ok(())
    })
}

/// Restore the model, the optimiser and the trainer's state from the run's last checkpoint,
/// if it has one.
fn restore(
    out: &Path,
    quiet: bool,
    model: &CharModel,
    opt: &mut Adam,
    st: &mut State2,
) -> Result<()> {
    let latest = checkpoint::load_latest(out, &mut |w| eprintln!("warning: {w}"))?;
    let Some((name, files)) = latest else {
        if !quiet {
            eprintln!(
                "{} has no checkpoint yet: starting it from the beginning",
                out.display()
            );
        }
        return Ok(());
    };
    if !quiet {
        eprintln!("Resuming from {name}");
    }
    model.load_state_dict(
        &load_safetensors_bytes(&files["model.safetensors"], "checkpoint")?,
        true,
    )?;
    opt.load_state(&checkpoint::optimizer_state_from(
        &files["optimizer.safetensors"],
    )?)?;
    *st = serde_json::from_slice(&files["trainer.json"])?;
    recurrent::rng::set_global_state(st.rng);
    Ok(())
}

/// Train (or, with `opts.resume`, continue) a character model into `opts.out`.
pub fn train(cfg: CharConfig, opts: &CharTrainOptions) -> Result<CharReport> {
    let t0 = Instant::now();
    let out = opts.out.as_path();
    let quiet = opts.quiet;
    if let Some(m) = opts.max_chars {
        crate::validate::positive("--max-chars", m)?;
    }
    let Opened {
        cfg,
        chars,
        text,
        run_file,
        pending_setup,
    } = open(cfg, opts)?;
    let mut ids: Vec<usize> = {
        let index = |c: char| {
            chars
                .binary_search(&c)
                .map_err(|_| anyhow!("character {c:?} is not in the model's vocabulary"))
        };
        text.chars().map(index).collect::<Result<_>>()?
    };
    if let Some(m) = run_file.max_chars {
        ids.truncate(m);
    }
    let n_val = ((ids.len() as f64) * cfg.val_fraction) as usize;
    let (train_ids, val_ids) = ids.split_at(ids.len() - n_val);
    let (b, t) = (cfg.batch_size.max(1), cfg.seq_len.max(1));
    if train_ids.len() < b * (t + 1) || val_ids.len() < t + 1 {
        bail!(
            "the text is too short for --batch-size {b} and --seq-len {t} ({} characters)",
            ids.len()
        );
    }
    if let Some((cf, rf)) = pending_setup {
        create_run_dir(out, &cf, &rf)?;
    }
    let mut g = Generator::new(cfg.seed);
    let mut model = CharModel::new(&cfg, chars.len(), &mut g)?;
    let mut opt = Adam::new(model.parameters(), AdamConfig::adam().with_lr(cfg.lr))?;
    let mut st = State2 {
        best_val: f64::INFINITY,
        ..Default::default()
    };
    recurrent::manual_seed(cfg.seed ^ 0xC4A2);
    if opts.resume {
        restore(out, quiet, &model, &mut opt, &mut st)?;
    }
    if !quiet {
        eprintln!(
            "{} characters ({} distinct): {} train, {} validation; model {} parameters",
            ids.len(),
            chars.len(),
            train_ids.len(),
            val_ids.len(),
            model.num_parameters()
        );
    }
    let streams = make_streams(train_ids, b);
    let chunks = (streams[0].len() - 1) / t;
    let mut steps_done = 0u64;
    let mut interrupted = false;
    let step = TrainStep {
        clip: Some(cfg.clip),
        checks: Checks::Loss,
        names: &[],
    };
    'epochs: while st.epoch < cfg.epochs {
        let te = Instant::now();
        model.set_training(true);
        let mut state: Option<RnnState> = None;
        let (mut total, mut count) = (0.0, 0usize);
        for k in 0..chunks {
            let (x, y, len) = chunk(&streams, k, t);
            let outcome = step.run(&mut opt, || {
                let carried = state.as_ref().map(RnnState::detach);
                let (logits, s) = model.forward(&x, len, b, carried.as_ref())?;
                let loss = logits
                    .cross_entropy(ClassTarget::Indices(&y), CrossEntropyOptions::default())?;
                Ok((loss, s))
            })?;
            let StepOutcome::Updated {
                loss: lv,
                output: s,
                ..
            } = outcome
            else {
                bail!(
                    "non-finite loss at epoch {} chunk {k}: lower --lr",
                    st.epoch + 1
                );
            };
            state = Some(s);
            total += lv * y.len() as f64;
            count += y.len();
            steps_done += 1;
            if interrupt::requested() || opts.stop_after_steps == Some(steps_done) {
                // The state inside an epoch (the streams' hidden states) is not saved: the
                // run resumes from the start of this epoch, to the same weights.
                eprintln!(
                    "Interrupted: the last completed epoch is checkpointed; continue with `recurrent charlm train --resume {}`",
                    out.display()
                );
                interrupted = true;
                break 'epochs;
            }
        }
        model.set_training(false);
        let val = evaluate(&model, val_ids, 16, t)?;
        let train_loss = total / count.max(1) as f64;
        st.epoch += 1;
        st.history
            .push((st.epoch, train_loss, val, te.elapsed().as_secs_f64()));
        if !quiet {
            eprintln!(
                "epoch {:>3}/{}  train {:.4} nats  val {:.4} nats ({:.3} bits/char)  {:.0} s",
                st.epoch,
                cfg.epochs,
                train_loss,
                val,
                val / std::f64::consts::LN_2,
                te.elapsed().as_secs_f64()
            );
        }
        if val < st.best_val {
            st.best_val = val;
            save_safetensors(&out.join("model.safetensors"), &model.state_dict(), None)?;
        }
        save_checkpoint(out, &model, &opt, &mut st)?;
    }
    let report = CharReport {
        history: st.history.clone(),
        best_val_nats: st.best_val,
        best_val_bpc: st.best_val / std::f64::consts::LN_2,
        seconds: t0.elapsed().as_secs_f64(),
        interrupted,
    };
    write_atomic(
        &out.join("metrics.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    Ok(report)
}

/// Checkpoint the end of an epoch (with the dropout generator's state).
fn save_checkpoint(out: &Path, model: &CharModel, opt: &Adam, st: &mut State2) -> Result<()> {
    st.rng = recurrent::rng::global_state();
    checkpoint::save(
        out,
        &format!("epoch-{:06}", st.epoch),
        &[
            (
                "model.safetensors",
                safetensors_bytes(&model.state_dict(), None)?,
            ),
            (
                "optimizer.safetensors",
                checkpoint::optimizer_state_bytes(&opt.state())?,
            ),
            ("trainer.json", serde_json::to_vec(&st)?),
        ],
    )?;
    Ok(())
}
