//! `recurrent charlm`: a character-level language model (one-to-many generation).
//!
//! Training uses truncated backpropagation through time: the text is cut into `batch_size`
//! parallel streams, each stream is read in consecutive chunks of `seq_len` characters, and
//! the hidden state is carried from one chunk to the next (detached, so gradients stop at the
//! chunk boundary). The first `1 - val_fraction` of the file trains, the rest validates; the
//! validation loss is reported in nats and in bits per character. The best model is kept;
//! each epoch is checkpointed atomically and `--resume` continues exactly.
//!
//! Sampling feeds the prompt through the network, then draws characters one at a time from
//! the softmax of `logits / temperature` (optionally only among the `top_k` most likely),
//! streaming each as it comes.

use crate::cell::Cell;
use crate::checkpoint;
use crate::training::{Checks, StepOutcome, TrainStep};
use anyhow::{anyhow, bail, Context, Result};
use recurrent::io::{
    load_safetensors, load_safetensors_bytes, safetensors_bytes, save_safetensors, write_atomic,
};
use recurrent::nn::{
    visit_child, Embedding, EmbeddingConfig, Linear, LinearConfig, Module, Recurrent,
    RecurrentConfig, RnnState,
};
use recurrent::optim::{Adam, AdamConfig, Optimizer};
use recurrent::{ClassTarget, CrossEntropyOptions, Generator, Tensor};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A character model's settings (saved in `config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CharConfig {
    /// Cell.
    pub cell: Cell,
    /// Embedding size.
    pub embedding_dim: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Layers.
    pub layers: usize,
    /// Dropout between layers.
    pub dropout: f64,
    /// Characters per chunk (the truncation length of BPTT).
    pub seq_len: usize,
    /// Parallel streams.
    pub batch_size: usize,
    /// Epochs.
    pub epochs: usize,
    /// Learning rate (Adam, cosine-free constant).
    pub lr: f64,
    /// Gradient-norm clipping.
    pub clip: f64,
    /// Fraction of the text (its end) used for validation.
    pub val_fraction: f64,
    /// Seed.
    pub seed: u64,
}

impl CharConfig {
    /// Check every setting (messages name the flag), and that the model fits in memory.
    pub fn validate(&self) -> Result<()> {
        use crate::validate::{
            fits_in_memory, fraction, positive, positive_real, rnn_parameters, size,
            training_bytes, MAX_LAYERS, MAX_WIDTH,
        };
        size("--embedding-dim", self.embedding_dim, MAX_WIDTH)?;
        size("--hidden", self.hidden, MAX_WIDTH)?;
        size("--layers", self.layers, MAX_LAYERS)?;
        fraction("--dropout", self.dropout)?;
        size("--seq-len", self.seq_len, 1_000_000)?;
        size("--batch-size", self.batch_size, 1_000_000)?;
        positive("--epochs", self.epochs)?;
        positive_real("--lr", self.lr)?;
        crate::validate::non_negative_real("clip", self.clip)?;
        fraction("val_fraction", self.val_fraction)?;
        let gates = self.cell.gates();
        // A character vocabulary is at most a few thousand symbols.
        let params = rnn_parameters(gates, self.embedding_dim, self.hidden, self.layers, 1)
            + 4096 * (self.embedding_dim as u128 + self.hidden as u128 + 1);
        let tokens = self.batch_size as u128 * self.seq_len as u128;
        let activations =
            tokens * (self.layers as u128 * (gates + 2) as u128 * self.hidden as u128 + 4096);
        fits_in_memory(
            "this model",
            training_bytes(params, activations),
            "--hidden, --layers, --batch-size or --seq-len",
        )
    }
}

impl Default for CharConfig {
    fn default() -> Self {
        CharConfig {
            cell: Cell::Lstm,
            embedding_dim: 64,
            hidden: 256,
            layers: 2,
            dropout: 0.1,
            seq_len: 100,
            batch_size: 64,
            epochs: 10,
            lr: 2e-3,
            clip: 1.0,
            val_fraction: 0.1,
            seed: 1,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    format: String,
    chars: Vec<char>,
    config: CharConfig,
}

/// Embedding → RNN → Linear over characters.
pub struct CharModel {
    embedding: Embedding,
    rnn: Recurrent,
    fc: Linear,
    training: bool,
}

impl Module for CharModel {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("embedding", &self.embedding, f);
        visit_child("rnn", &self.rnn, f);
        visit_child("fc", &self.fc, f);
    }
    fn set_training(&mut self, t: bool) {
        self.training = t;
        self.rnn.set_training(t);
    }
    fn type_name(&self) -> &'static str {
        "CharModel"
    }
}

impl CharModel {
    /// A fresh model over `vocab` characters.
    pub fn new(cfg: &CharConfig, vocab: usize, g: &mut Generator) -> Result<CharModel> {
        let embedding = EmbeddingConfig::new(vocab, cfg.embedding_dim).init_with(g)?;
        let rnn = RecurrentConfig::new(cfg.cell.mode(), cfg.embedding_dim, cfg.hidden)
            .with_num_layers(cfg.layers)
            .with_dropout(cfg.dropout)
            .init_with(g)?;
        let fc = LinearConfig::new(cfg.hidden, vocab).init_with(g)?;
        Ok(CharModel {
            embedding,
            rnn,
            fc,
            training: true,
        })
    }

    /// Logits `[T*B, V]` for ids laid out `[T, B]` (time-major), starting from `state` (zeros
    /// if `None`), and the final state.
    pub fn forward(
        &self,
        ids: &[usize],
        t: usize,
        b: usize,
        state: Option<&RnnState>,
    ) -> Result<(Tensor, RnnState)> {
        let e = self.embedding.forward(ids, &[t, b])?;
        let (out, st) = self.rnn.forward(&e, state)?;
        let hsz = out.shape()[2];
        let logits = self.fc.forward(&out.reshape(&[t * b, hsz])?)?;
        Ok((logits, st))
    }
}

/// `[T, B]` inputs and targets of chunk `k` of `B` streams of `stream_len` characters.
fn chunk(streams: &[Vec<usize>], k: usize, t: usize) -> (Vec<usize>, Vec<i64>, usize) {
    let b = streams.len();
    let start = k * t;
    let len = t.min(streams[0].len() - 1 - start);
    let mut x = Vec::with_capacity(len * b);
    let mut y = Vec::with_capacity(len * b);
    for s in 0..len {
        for stream in streams {
            x.push(stream[start + s]);
            y.push(stream[start + s + 1] as i64);
        }
    }
    (x, y, len)
}

fn make_streams(ids: &[usize], b: usize) -> Vec<Vec<usize>> {
    let per = ids.len() / b;
    (0..b)
        .map(|k| ids[k * per..(k + 1) * per].to_vec())
        .collect()
}

/// Mean cross-entropy (nats) of the model on `ids` read as `b` streams.
pub fn evaluate(model: &CharModel, ids: &[usize], b: usize, t: usize) -> Result<f64> {
    let _ng = recurrent::no_grad();
    let b = b.min(ids.len() / (t + 1)).max(1);
    let streams = make_streams(ids, b);
    let chunks = (streams[0].len() - 1).div_ceil(t);
    let (mut total, mut count) = (0.0, 0usize);
    let mut state: Option<RnnState> = None;
    for k in 0..chunks {
        let (x, y, len) = chunk(&streams, k, t);
        if len == 0 {
            break;
        }
        let (logits, st) = model.forward(&x, len, b, state.as_ref())?;
        state = Some(st);
        let loss = logits
            .cross_entropy(ClassTarget::Indices(&y), CrossEntropyOptions::default())?
            .item()? as f64;
        total += loss * y.len() as f64;
        count += y.len();
    }
    Ok(total / count.max(1) as f64)
}

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

/// Train (or, with `opts.resume`, continue) a character model into `opts.out`.
pub fn train(cfg: CharConfig, opts: &CharTrainOptions) -> Result<CharReport> {
    let t0 = Instant::now();
    let out = opts.out.as_path();
    let quiet = opts.quiet;
    let resume = opts.resume;
    if let Some(m) = opts.max_chars {
        crate::validate::positive("--max-chars", m)?;
    }
    // A new run's directory is made once the text is known to suit the settings.
    let mut pending_setup: Option<(ConfigFile, CharRunFile)> = None;
    let (cfg, chars, text, run_file) = if resume {
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
        (cfg, chars, text, run_file)
    } else {
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
            format: "recurrent-charlm/1".into(),
            chars: chars.clone(),
            config: cfg.clone(),
        };
        let run_file = CharRunFile {
            text: std::fs::canonicalize(p)?,
            text_sha256: sha256_hex(text.as_bytes()),
            max_chars: opts.max_chars,
            threads: Some(opts.threads),
        };
        pending_setup = Some((cf, run_file.clone()));
        (cfg, chars, text, run_file)
    };
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
        crate::rundir::create(out, |dir| {
            write_atomic(
                &dir.join("config.json"),
                serde_json::to_string_pretty(&cf)?.as_bytes(),
            )?;
            write_atomic(
                &dir.join("run.json"),
                serde_json::to_string_pretty(&rf)?.as_bytes(),
            )?;
            Ok(())
        })?;
    }
    let mut g = Generator::new(cfg.seed);
    let mut model = CharModel::new(&cfg, chars.len(), &mut g)?;
    let mut opt = Adam::new(model.parameters(), AdamConfig::adam().with_lr(cfg.lr))?;
    let mut st = State2 {
        best_val: f64::INFINITY,
        ..Default::default()
    };
    recurrent::manual_seed(cfg.seed ^ 0xC4A2);
    let latest = if resume {
        checkpoint::load_latest(out, &mut |w| eprintln!("warning: {w}"))?
    } else {
        None
    };
    if resume && latest.is_none() && !quiet {
        eprintln!(
            "{} has no checkpoint yet: starting it from the beginning",
            out.display()
        );
    }
    if let Some((name, files)) = latest {
        if !quiet {
            eprintln!("Resuming from {name}");
        }
        model.load_state_dict(
            &load_safetensors_bytes(&files["model.safetensors"], "checkpoint")?,
            true,
        )?;
        opt.load_state(&crate::checkpoint::optimizer_state_from(
            &files["optimizer.safetensors"],
        )?)?;
        st = serde_json::from_slice(&files["trainer.json"])?;
        recurrent::rng::set_global_state(st.rng);
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
            if crate::interrupt::requested() || opts.stop_after_steps == Some(steps_done) {
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
                    crate::checkpoint::optimizer_state_bytes(&opt.state())?,
                ),
                ("trainer.json", serde_json::to_vec(&st)?),
            ],
        )?;
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

/// The settings of the run in `dir` as JSON (for messages that name them).
pub fn stored_settings(dir: &Path) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(load_config(dir)?.0)?)
}

fn load_config(dir: &Path) -> Result<(CharConfig, Vec<char>)> {
    let p = dir.join("config.json");
    let text = std::fs::read_to_string(&p)
        .with_context(|| format!("{} is not a character model directory", dir.display()))?;
    let cf: ConfigFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid character model config", p.display()))?;
    if cf.format != "recurrent-charlm/1" || cf.chars.is_empty() {
        bail!("{}: not a character model config", p.display());
    }
    Ok((cf.config, cf.chars))
}

/// Sampling settings.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    /// Text to start from (fed through the model first).
    pub prompt: String,
    /// Characters to generate.
    pub length: usize,
    /// Softmax temperature (> 0).
    pub temperature: f64,
    /// Keep only the k most likely characters (0: all).
    pub top_k: usize,
    /// Seed.
    pub seed: u64,
}

/// Generate text from a trained model directory, calling `emit` for each character.
pub fn sample(dir: &Path, o: &SampleOptions, emit: &mut dyn FnMut(char)) -> Result<String> {
    if !(o.temperature > 0.0 && o.temperature.is_finite()) {
        bail!("--temperature must be positive, got {}", o.temperature);
    }
    let (cfg, chars) = load_config(dir)?;
    let mut model = CharModel::new(&cfg, chars.len(), &mut Generator::new(0))?;
    model
        .load_state_dict(&load_safetensors(&dir.join("model.safetensors"))?, true)
        .context("model.safetensors does not match config.json")?;
    model.set_training(false);
    let _ng = recurrent::no_grad();
    let mut g = Generator::new(o.seed);
    let prompt: Vec<usize> = o
        .prompt
        .chars()
        .map(|c| {
            chars
                .binary_search(&c)
                .map_err(|_| anyhow!("the prompt has {c:?}, which the model never saw"))
        })
        .collect::<Result<_>>()?;
    let start = if prompt.is_empty() {
        vec![g.below(chars.len() as u64) as usize]
    } else {
        prompt
    };
    let (mut logits, mut state) = model.forward(&start, start.len(), 1, None)?;
    let mut out = String::new();
    for _ in 0..o.length {
        let v = chars.len();
        let l = logits.to_vec();
        let last = &l[l.len() - v..];
        let mut idx: Vec<usize> = (0..v).collect();
        if o.top_k > 0 && o.top_k < v {
            idx.sort_by(|&a, &b| last[b].total_cmp(&last[a]));
            idx.truncate(o.top_k);
        }
        let m = idx
            .iter()
            .map(|&i| last[i] as f64)
            .fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = idx
            .iter()
            .map(|&i| ((last[i] as f64 - m) / o.temperature).exp())
            .collect();
        let total: f64 = w.iter().sum();
        let mut r = g.uniform_f64() * total;
        let mut pick = idx[idx.len() - 1];
        for (k, &wi) in w.iter().enumerate() {
            if r < wi {
                pick = idx[k];
                break;
            }
            r -= wi;
        }
        let c = chars[pick];
        emit(c);
        out.push(c);
        let (lg, st) = model.forward(&[pick], 1, 1, Some(&state))?;
        logits = lg;
        state = st;
    }
    Ok(out)
}

/// Print a sample, streaming characters to standard output.
pub fn print_sample(dir: &Path, o: &SampleOptions) -> Result<()> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    write!(lock, "{}", o.prompt)?;
    sample(dir, o, &mut |c| {
        let _ = write!(lock, "{c}");
        let _ = lock.flush();
    })?;
    writeln!(lock)?;
    Ok(())
}

/// Resolve the default text: tiny-shakespeare next to the repository, if present.
pub fn default_text() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/tinyshakespeare/input.txt");
    p.exists().then_some(p)
}
