//! `recurrent seq2seq`: sequence to sequence (many-to-many with different lengths), an
//! encoder-decoder with optional bidirectional encoder and additive (Bahdanau) attention,
//! trained with teacher forcing and decoded greedily or with beam search.
//!
//! It trains on a user's `source<TAB>target` file (character or word tokens, a validation
//! split) or on a built-in task generated reproducibly in code:
//! - `dates`: dates written in many human formats ("3rd of March 2021", "Wed, 3 Mar 2021",
//!   "03.03.2021", ...) translated to ISO dates; every format is unambiguous, so a perfect
//!   model exists;
//! - `reverse`: 20-40 random letters reversed, where attention measurably matters.
//!
//! The metric is exact match on the validation pairs (and the share of output tokens right
//! in place). The trained model is kept in a directory (`seq2seq.json` with the settings and
//! both vocabularies, `model.safetensors`) that `recurrent seq2seq translate` reads.
//!
//! Here: the settings (which are the subcommand's flags), training, evaluation and the model
//! directory; the data in `data.rs` and `dates.rs`, the network in `model.rs`, the attention
//! heat map in `heatmap.rs`.

mod data;
mod dates;
mod heatmap;
mod model;

pub use data::{parse_pairs, read_pairs, reversals, Pairs, Task, Tokens, Vocab};
pub use dates::{dates, formats_example, render, FORMATS};
pub use heatmap::save_attention_png;

use crate::cell::Cell;
use crate::training::{Checks, TrainStep};
use anyhow::{bail, Context, Result};
use model::Seq2Seq;
use recurrent::io::{load_safetensors, save_safetensors, write_atomic};
use recurrent::nn::Module;
use recurrent::optim::{Adam, AdamConfig};
use recurrent::Generator;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Settings: the `seq2seq` subcommand's flags. The hidden size is the encoder's per
/// direction, and the decoder's.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct Seq2SeqConfig {
    /// gru or lstm.
    #[arg(long, default_value = "gru", value_parser = Cell::parser(&[Cell::Gru, Cell::Lstm]))]
    pub cell: Cell,
    /// Embedding size.
    #[arg(long, default_value_t = 32)]
    pub embedding_dim: usize,
    /// Hidden size.
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Bidirectional encoder (true/false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub bidirectional: bool,
    /// Additive attention (true/false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub attention: bool,
    /// Probability of feeding the true previous character in training.
    #[arg(long, default_value_t = 1.0)]
    pub teacher_forcing: f64,
    /// Training pairs of a built-in task.
    #[arg(long, default_value_t = 20_000)]
    pub train: usize,
    /// Held-out pairs of a built-in task.
    #[arg(long, default_value_t = 2_000)]
    pub test: usize,
    /// Epochs.
    #[arg(long, default_value_t = 8)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// Beam width of the final evaluation (1: greedy only).
    #[arg(long, default_value_t = 4)]
    pub beam: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl Seq2SeqConfig {
    /// Check every setting (messages name the flag), and that the model fits in memory.
    pub fn validate(&self) -> Result<()> {
        use crate::validate::{
            fits_in_memory, positive, positive_real, probability, rnn_parameters, size,
            training_bytes, MAX_WIDTH,
        };
        size("--embedding-dim", self.embedding_dim, MAX_WIDTH)?;
        size("--hidden", self.hidden, MAX_WIDTH)?;
        probability("--teacher-forcing", self.teacher_forcing)?;
        size("--train", self.train, 10_000_000)?;
        size("--test", self.test, 10_000_000)?;
        positive("--epochs", self.epochs)?;
        size("--batch-size", self.batch_size, 1_000_000)?;
        positive_real("--lr", self.lr)?;
        size("--beam", self.beam, 1_000)?;
        let gates = self.cell.gates();
        let dirs = if self.bidirectional { 2 } else { 1 };
        let h = self.hidden as u128;
        let params = rnn_parameters(gates, self.embedding_dim, self.hidden, 1, dirs)
            + rnn_parameters(
                gates,
                self.embedding_dim + dirs * self.hidden,
                self.hidden,
                1,
                1,
            )
            + 8 * h * h;
        let activations = self.batch_size as u128 * 40 * (gates as u128 + 4) * h * 3;
        fits_in_memory(
            "this model",
            training_bytes(params, activations),
            "--hidden, --embedding-dim or --batch-size",
        )
    }
}

/// What to train on: a built-in task or a file of pairs.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct DataConfig {
    /// A built-in task: dates (default) or reverse.
    #[arg(long, value_enum, conflicts_with = "pairs")]
    pub task: Option<Task>,
    /// Train on this file: a source, a tab and a target per line (UTF-8; blank lines skipped; further
    /// columns ignored).
    #[arg(long, value_name = "FILE.tsv")]
    pub pairs: Option<PathBuf>,
    /// Tokens of a pairs file: char or word (built-in tasks use characters).
    #[arg(long, value_enum, default_value = "char")]
    pub tokens: Tokens,
    /// Share of a pairs file's lines kept for validation (shuffled with --seed).
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// The longest source or target accepted, in tokens (longer lines are an error naming
    /// the line).
    #[arg(long, default_value_t = 200)]
    pub max_len: usize,
    /// Vocabulary entries per side, most frequent first (the rest read as unknown).
    #[arg(long, default_value_t = 30_000)]
    pub max_vocab: usize,
}

impl DataConfig {
    /// Check the settings (messages name the flag).
    pub fn validate(&self) -> Result<()> {
        use crate::validate::{fraction, size};
        fraction("--val-fraction", self.val_fraction)?;
        if self.pairs.is_some() && self.val_fraction == 0.0 {
            bail!("--val-fraction must be above 0 with --pairs (the validation split picks the model)");
        }
        size("--max-len", self.max_len, 100_000)?;
        size("--max-vocab", self.max_vocab, 10_000_000)?;
        Ok(())
    }

    /// The training and validation pairs, and the tokens they are made of.
    fn load(&self, cfg: &Seq2SeqConfig) -> Result<(Pairs, Pairs, Tokens)> {
        match &self.pairs {
            Some(path) => {
                let all = read_pairs(path, self.tokens, self.max_len)?;
                let (train, val) = data::split(all, self.val_fraction, cfg.seed, path)?;
                Ok((train, val, self.tokens))
            }
            None => {
                let task = self.task.unwrap_or(Task::Dates);
                Ok((
                    task.pairs(cfg.train, cfg.seed),
                    task.pairs(cfg.test, cfg.seed ^ 0x7E57),
                    Tokens::Char,
                ))
            }
        }
    }

    /// What the data is, in words.
    fn describe(&self) -> String {
        match (&self.pairs, self.task) {
            (Some(p), _) => p.display().to_string(),
            (None, t) => format!("task {:?}", t.unwrap_or(Task::Dates)).to_lowercase(),
        }
    }
}

/// Results.
#[derive(Clone, Debug, Serialize)]
pub struct Seq2SeqReport {
    /// Settings.
    pub config: Seq2SeqConfig,
    /// What it trained on.
    pub data: DataConfig,
    /// Training and validation pairs.
    pub pairs: (usize, usize),
    /// `(epoch, mean training loss, greedy exact match on the validation pairs, seconds)`.
    pub history: Vec<(usize, f64, f64, f64)>,
    /// Exact-match accuracy, greedy decoding, of the kept model.
    pub greedy_accuracy: f64,
    /// Share of target tokens that the greedy output has right in place (the `<eos>` ending
    /// each target counted as one).
    pub token_accuracy: f64,
    /// Exact-match accuracy, beam search.
    pub beam_accuracy: f64,
    /// A few validation examples: (source, target, greedy output).
    pub examples: Vec<(String, String, String)>,
    /// Wall time (s).
    pub seconds: f64,
}

/// What `seq2seq.json` holds: the settings and both vocabularies.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelFile {
    /// Always `"seq2seq"`: tells a seq2seq model directory from other subcommands' ones.
    pub kind: String,
    /// The network's settings.
    pub config: Seq2SeqConfig,
    /// What it was trained on.
    pub data: DataConfig,
    /// The source side's vocabulary.
    pub source_vocab: Vocab,
    /// The target side's vocabulary.
    pub target_vocab: Vocab,
    /// The longest output decoding writes, in tokens.
    pub max_output: usize,
    /// Validation exact match (greedy) of the saved weights.
    pub validation_accuracy: f64,
}

/// The model file's name in a model directory.
pub const MODEL_FILE: &str = "seq2seq.json";
/// The weights' file name in a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// A trained model, loaded from its directory.
pub struct Translator {
    model: Seq2Seq,
    /// Its settings and vocabularies.
    pub file: ModelFile,
}

impl Translator {
    /// Load a model directory written by `seq2seq train --out`. A directory of another
    /// subcommand, or a damaged one, is an error naming the file.
    pub fn load(dir: &Path) -> Result<Translator> {
        let path = dir.join(MODEL_FILE);
        if !path.is_file() {
            let other = ["config.json", "forecaster.json", "run.json"]
                .iter()
                .find(|f| dir.join(f).is_file());
            match other {
                Some(f) => bail!(
                    "{} is not a seq2seq model directory: it has no {MODEL_FILE} (its {f} \
                     belongs to another subcommand's model)",
                    dir.display()
                ),
                None => bail!(
                    "{} is not a seq2seq model directory: {} does not exist (train one with \
                     `recurrent seq2seq train --out DIR`)",
                    dir.display(),
                    path.display()
                ),
            }
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", path.display()))?;
        if value["kind"] != "seq2seq" {
            bail!(
                "{}: not a seq2seq model file (kind {})",
                path.display(),
                value["kind"]
            );
        }
        let mut file: ModelFile = serde_json::from_value(value)
            .with_context(|| format!("{}: not a seq2seq model file", path.display()))?;
        // The lookup tables are not saved; rebuild them.
        file.source_vocab =
            Vocab::from_entries(file.source_vocab.tokens, file.source_vocab.entries);
        file.target_vocab =
            Vocab::from_entries(file.target_vocab.tokens, file.target_vocab.entries);
        file.config
            .validate()
            .with_context(|| format!("{}: settings out of range", path.display()))?;
        let mut g = Generator::new(0);
        let mut model = Seq2Seq::new(
            &file.config,
            file.source_vocab.len(),
            file.target_vocab.len(),
            &mut g,
        )?;
        let weights = dir.join(WEIGHTS_FILE);
        let sd = load_safetensors(&weights)
            .with_context(|| format!("reading the weights {}", weights.display()))?;
        model
            .load_state_dict(&sd, true)
            .with_context(|| format!("{} does not fit {}", weights.display(), path.display()))?;
        model.set_training(false);
        Ok(Translator { model, file })
    }

    /// Translate `source`: greedy with `beam` 1, beam search otherwise.
    pub fn translate(&self, source: &str, beam: usize) -> Result<String> {
        let _ng = recurrent::no_grad();
        let src = self.encode(source)?;
        let ids = if beam <= 1 {
            self.model
                .greedy(&[src], self.file.max_output)?
                .pop()
                .unwrap_or_default()
        } else {
            self.model.beam(&src, beam, self.file.max_output)?
        };
        Ok(self.file.target_vocab.decode(&ids))
    }

    /// Greedy translation of `source` with the attention weights of each output token (and
    /// of the final `<eos>`) over the source tokens: `(source tokens, output tokens, weights)`.
    /// An error for a model without attention.
    #[allow(clippy::type_complexity)]
    pub fn attention(&self, source: &str) -> Result<(Vec<String>, Vec<String>, Vec<Vec<f32>>)> {
        let _ng = recurrent::no_grad();
        let src = self.encode(source)?;
        let (ids, weights) = self.model.greedy_attention(&src, self.file.max_output)?;
        let Some(weights) = weights else {
            bail!("this model was trained with --attention false: it has no attention to draw");
        };
        let sv = &self.file.source_vocab;
        let tv = &self.file.target_vocab;
        let source_tokens = src.iter().map(|&i| sv.token(i).to_string()).collect();
        let mut out: Vec<String> = ids.iter().map(|&i| tv.token(i).to_string()).collect();
        if weights.len() > out.len() {
            out.push("<eos>".into());
        }
        Ok((source_tokens, out, weights))
    }

    fn encode(&self, source: &str) -> Result<Vec<usize>> {
        let src = self.file.source_vocab.encode(source);
        if src.is_empty() {
            bail!("nothing to translate: the source {source:?} has no tokens");
        }
        Ok(src)
    }
}

/// Train and evaluate; with `out`, keep the model with the best validation exact match there
/// (written after every epoch that improves it, atomically).
pub fn run(
    cfg: &Seq2SeqConfig,
    data: &DataConfig,
    out: Option<&Path>,
    quiet: bool,
) -> Result<Seq2SeqReport> {
    let t0 = std::time::Instant::now();
    cfg.validate()?;
    data.validate()?;
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let (train, test, tokens) = data.load(cfg)?;
    if !quiet {
        eprintln!(
            "{}: {} training / {} validation pairs",
            data.describe(),
            train.len(),
            test.len()
        );
    }
    let sv = Vocab::build(tokens, train.iter().map(|p| p.0.as_str()), data.max_vocab);
    let tv = Vocab::build(tokens, train.iter().map(|p| p.1.as_str()), data.max_vocab);
    let mut g = Generator::new(cfg.seed);
    recurrent::manual_seed(cfg.seed);
    let mut model = Seq2Seq::new(cfg, sv.len(), tv.len(), &mut g)?;
    let mut opt = Adam::new(model.parameters(), AdamConfig::adam().with_lr(cfg.lr))?;
    let enc_src: Vec<Vec<usize>> = train.iter().map(|p| sv.encode(&p.0)).collect();
    let enc_tgt: Vec<Vec<usize>> = train.iter().map(|p| tv.encode(&p.1)).collect();
    let test_src: Vec<Vec<usize>> = test.iter().map(|p| sv.encode(&p.0)).collect();
    // Longest output: the longest training target and a margin.
    let longest = enc_tgt.iter().map(Vec::len).max().unwrap_or(1);
    let max_len = longest + longest / 2 + 2;
    let eval_greedy = |m: &Seq2Seq| -> Result<(f64, f64, Vec<String>)> {
        let _ng = recurrent::no_grad();
        let (mut outs, mut right, mut total) = (Vec::new(), 0usize, 0usize);
        for (chunk, pairs) in test_src.chunks(256).zip(test.chunks(256)) {
            for (ids, p) in m.greedy(chunk, max_len)?.iter().zip(pairs) {
                let gold = tv.encode(&p.1);
                total += gold.len() + 1;
                right += gold.iter().zip(ids).filter(|(a, b)| a == b).count();
                right += usize::from(ids.len() == gold.len());
                outs.push(tv.decode(ids));
            }
        }
        let exact = outs.iter().zip(&test).filter(|(o, p)| **o == p.1).count();
        Ok((
            exact as f64 / test.len().max(1) as f64,
            right as f64 / total.max(1) as f64,
            outs,
        ))
    };
    let step = TrainStep {
        clip: Some(1.0),
        checks: Checks::None,
        names: &[],
    };
    let save = |m: &Seq2Seq, acc: f64| -> Result<()> {
        let Some(dir) = out else { return Ok(()) };
        save_safetensors(&dir.join(WEIGHTS_FILE), &m.state_dict(), None)?;
        let file = ModelFile {
            kind: "seq2seq".into(),
            config: cfg.clone(),
            data: data.clone(),
            source_vocab: sv.clone(),
            target_vocab: tv.clone(),
            max_output: max_len,
            validation_accuracy: acc,
        };
        write_atomic(
            &dir.join(MODEL_FILE),
            serde_json::to_string_pretty(&file)?.as_bytes(),
        )?;
        Ok(())
    };
    let mut history = Vec::new();
    let mut best = (f64::NEG_INFINITY, model.state_dict());
    for epoch in 0..cfg.epochs {
        let te = std::time::Instant::now();
        model.set_training(true);
        let mut order: Vec<usize> = (0..train.len()).collect();
        g.shuffle(&mut order);
        let (mut total, mut n) = (0.0, 0usize);
        for idx in order.chunks(cfg.batch_size.max(1)) {
            let src: Vec<Vec<usize>> = idx.iter().map(|&i| enc_src[i].clone()).collect();
            let tgt: Vec<Vec<usize>> = idx.iter().map(|&i| enc_tgt[i].clone()).collect();
            let outcome = step.run(&mut opt, || {
                Ok((model.loss(&src, &tgt, cfg.teacher_forcing, &mut g)?, ()))
            })?;
            total += outcome.loss() * idx.len() as f64;
            n += idx.len();
        }
        model.set_training(false);
        let (acc, tok, _) = eval_greedy(&model)?;
        history.push((epoch + 1, total / n as f64, acc, te.elapsed().as_secs_f64()));
        if acc > best.0 {
            best = (acc, model.state_dict());
            // Written while the run goes on: an interrupted run keeps its best epoch.
            save(&model, acc)?;
        }
        if !quiet {
            eprintln!(
                "epoch {:>3}/{}  loss {:.4}  validation exact match (greedy) {:.4}, tokens {:.4}  {:.0} s",
                epoch + 1,
                cfg.epochs,
                total / n as f64,
                acc,
                tok,
                te.elapsed().as_secs_f64()
            );
        }
    }
    model.load_state_dict(&best.1, true)?;
    let (greedy, token_accuracy, outs) = eval_greedy(&model)?;
    let beam_acc = if cfg.beam <= 1 {
        greedy
    } else {
        let _ng = recurrent::no_grad();
        let mut ok = 0;
        for (s, p) in test_src.iter().zip(&test) {
            if tv.decode(&model.beam(s, cfg.beam, max_len)?) == p.1 {
                ok += 1;
            }
        }
        ok as f64 / test.len().max(1) as f64
    };
    let examples = test
        .iter()
        .zip(&outs)
        .take(8)
        .map(|(p, o)| (p.0.clone(), p.1.clone(), o.clone()))
        .collect();
    Ok(Seq2SeqReport {
        config: cfg.clone(),
        data: data.clone(),
        pairs: (train.len(), test.len()),
        history,
        greedy_accuracy: greedy,
        token_accuracy,
        beam_accuracy: beam_acc,
        examples,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
