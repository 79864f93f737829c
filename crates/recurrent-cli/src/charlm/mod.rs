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
//!
//! Here: the settings and the model directory's `config.json`; the model is in `model.rs`,
//! training in `train.rs`, sampling in `sample.rs`.

mod model;
mod sample;
mod train;

pub use model::{evaluate, CharModel};
pub use sample::{print_sample, sample, SampleOptions};
pub use train::{train, CharReport, CharRunFile, CharTrainOptions};

use crate::cell::Cell;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A character model's settings (saved in `config.json`), and the `charlm train` flags that
/// set them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct CharConfig {
    /// lstm or gru.
    #[arg(long, default_value_t = DEFAULT.cell, value_parser = Cell::parser(&[Cell::Lstm, Cell::Gru]))]
    pub cell: Cell,
    /// Embedding size.
    #[arg(long, default_value_t = DEFAULT.embedding_dim)]
    pub embedding_dim: usize,
    /// Hidden size.
    #[arg(long, default_value_t = DEFAULT.hidden)]
    pub hidden: usize,
    /// Layers.
    #[arg(long, default_value_t = DEFAULT.layers)]
    pub layers: usize,
    /// Dropout between layers.
    #[arg(long, default_value_t = DEFAULT.dropout)]
    pub dropout: f64,
    /// Characters per BPTT chunk.
    #[arg(long, default_value_t = DEFAULT.seq_len)]
    pub seq_len: usize,
    /// Parallel streams.
    #[arg(long, default_value_t = DEFAULT.batch_size)]
    pub batch_size: usize,
    /// Epochs.
    #[arg(long, default_value_t = DEFAULT.epochs)]
    pub epochs: usize,
    /// Learning rate.
    #[arg(long, default_value_t = DEFAULT.lr)]
    pub lr: f64,
    /// Gradient-norm clipping (not a flag).
    #[arg(skip = DEFAULT.clip)]
    pub clip: f64,
    /// Fraction of the text (its end) used for validation (not a flag).
    #[arg(skip = DEFAULT.val_fraction)]
    pub val_fraction: f64,
    /// Seed.
    #[arg(long, default_value_t = DEFAULT.seed)]
    pub seed: u64,
}

/// The default settings (the flags' defaults).
const DEFAULT: CharConfig = CharConfig {
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
};

impl Default for CharConfig {
    fn default() -> Self {
        DEFAULT
    }
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

/// A model directory's `config.json`: the settings and the character set.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    format: String,
    chars: Vec<char>,
    config: CharConfig,
}

/// The format tag of `config.json`.
const FORMAT: &str = "recurrent-charlm/1";

/// The settings of the run in `dir` as JSON (for messages that name them).
pub fn stored_settings(dir: &Path) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(load_config(dir)?.0)?)
}

/// The settings and character set of the model directory `dir`.
fn load_config(dir: &Path) -> Result<(CharConfig, Vec<char>)> {
    let p = dir.join("config.json");
    let text = std::fs::read_to_string(&p)
        .with_context(|| format!("{} is not a character model directory", dir.display()))?;
    let cf: ConfigFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid character model config", p.display()))?;
    if cf.format != FORMAT || cf.chars.is_empty() {
        bail!("{}: not a character model config", p.display());
    }
    Ok((cf.config, cf.chars))
}

/// Resolve the default text: tiny-shakespeare next to the repository, if present.
pub fn default_text() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/tinyshakespeare/input.txt");
    p.exists().then_some(p)
}
