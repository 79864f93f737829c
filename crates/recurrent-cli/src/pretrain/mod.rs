//! `recurrent pretrain`: a word-level LSTM language model on IMDB's own reviews (the 25,000
//! training reviews and the 50,000 of `train/unsup`; never the test split), whose encoder
//! `recurrent train --init-from` then fine-tunes into the sentiment classifier (ULMFiT's
//! recipe, without Wikipedia).
//!
//! The model is AWD-LSTM's, in the library's terms: an embedding with embedding dropout
//! (whole words dropped for a batch), a stacked LSTM with variational dropout on its inputs,
//! states and outputs and DropConnect on `W_hh` (`RecurrentConfig::with_variational_dropout`,
//! `with_weight_drop`), and an output layer tied to the embedding: when the hidden size is
//! not the embedding size, the LSTM's `proj_size` projects its output back to it. At a vocabulary
//! of tens of thousands of words the softmax would cost more than the LSTM, so training uses
//! a sampled softmax (`softmax = "sampled"`: the true word against `samples` words drawn from
//! the unigram distribution to the power 0.75, corrected by their log expected counts, as
//! Jean et al. 2015); held-out perplexity is always the exact full softmax.
//!
//! Training is truncated BPTT over the shuffled reviews joined by `<eos>`, cut into
//! `batch_size` streams, with AWD-LSTM's variable length (`bptt` with probability 0.95, else
//! half of it, plus Gaussian noise of deviation 5; the rate scaled by the length drawn). The
//! lengths are a function of (seed, step), each epoch's review order of (seed, epoch), and
//! the carried state is saved in every checkpoint, so `--resume` reaches the same weights,
//! bit for bit, as a run that was never stopped.
//!
//! The output directory is a language-model directory: `lm.json` (the settings and where
//! training stood), `vocab.json`, `model.safetensors` (PyTorch names: `embedding.weight`,
//! `rnn.weight_ih_l0`, ..., `decoder.bias`), `metrics.json` and `curves.png`; `snapshots/`
//! holds complete LM directories taken every `snapshot_minutes` of training, for a curve of
//! fine-tuned accuracy against pretraining time.

mod corpus;
mod lmdir;
mod model;
mod record;
mod steps;
mod train;

pub use corpus::{LmCorpus, Sampler, EOS};
pub use lmdir::{load_lm, LmDir, LM_FILE};
pub use model::LanguageModel;
pub use record::{EvalPoint, PretrainRun};
pub use steps::layer_group;
pub use train::{pretrain, PretrainOptions, PretrainReport};

use crate::sentiment::config::ScheduleKind;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Which text the language model reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LmText {
    /// The 25,000 training reviews and the 50,000 unlabelled ones (`train/unsup`).
    Imdb,
    /// The 25,000 training reviews only: ULMFiT's language-model fine-tuning on the task's
    /// own text (with `--init-from`).
    ImdbTrain,
}

/// The output layer's softmax during training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Softmax {
    /// The true word against `samples` sampled words (cheap at a large vocabulary).
    Sampled,
    /// The exact softmax over the whole vocabulary.
    Full,
}

/// A language model's settings: the keys of `pretrain --config FILE.toml`, of `lm.json`, and
/// the `pretrain` flags of the same names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    /// The text: imdb (train + unsup) or imdb-train.
    #[arg(long, value_enum, default_value_t = DEFAULT.text)]
    pub text: LmText,
    /// Vocabulary size (not counting the unknown and padding entries; the end-of-review word is one).
    #[arg(long, default_value_t = DEFAULT.max_vocab)]
    pub max_vocab: usize,
    /// Minimum count of a word in the vocabulary.
    #[arg(long, default_value_t = DEFAULT.min_freq)]
    pub min_freq: usize,
    /// Fraction of the reviews held out for perplexity.
    #[arg(long, default_value_t = DEFAULT.val_fraction)]
    pub val_fraction: f64,
    /// Embedding size (the tied output dimension).
    #[arg(long, default_value_t = DEFAULT.embedding_dim)]
    pub embedding_dim: usize,
    /// LSTM hidden size (projected to the embedding size when tied and different).
    #[arg(long, default_value_t = DEFAULT.hidden)]
    pub hidden: usize,
    /// LSTM layers.
    #[arg(long, default_value_t = DEFAULT.layers)]
    pub layers: usize,
    /// Tie the output layer to the embedding (true/false).
    #[arg(long, action = clap::ArgAction::Set, default_value_t = DEFAULT.tie_weights)]
    pub tie_weights: bool,
    /// Embedding dropout: the probability that a word is dropped from a whole batch.
    #[arg(long, default_value_t = DEFAULT.embed_dropout)]
    pub embed_dropout: f64,
    /// Variational dropout on the LSTM's inputs.
    #[arg(long, default_value_t = DEFAULT.var_input)]
    pub var_input: f64,
    /// Variational dropout on the recurrent state h_{t-1}.
    #[arg(long, default_value_t = DEFAULT.var_state)]
    pub var_state: f64,
    /// Variational dropout on each layer's output.
    #[arg(long, default_value_t = DEFAULT.var_output)]
    pub var_output: f64,
    /// DropConnect on W_hh (AWD-LSTM's weight drop).
    #[arg(long, default_value_t = DEFAULT.weight_drop)]
    pub weight_drop: f64,
    /// Training softmax: sampled or full.
    #[arg(long, value_enum, default_value_t = DEFAULT.softmax)]
    pub softmax: Softmax,
    /// Sampled words per step (shared by the batch).
    #[arg(long, default_value_t = DEFAULT.samples)]
    pub samples: usize,
    /// Mean BPTT length (varied per step as AWD-LSTM does).
    #[arg(long, default_value_t = DEFAULT.bptt)]
    pub bptt: usize,
    /// Parallel streams.
    #[arg(long, default_value_t = DEFAULT.batch_size)]
    pub batch_size: usize,
    /// Epochs over the text.
    #[arg(long, default_value_t = DEFAULT.epochs)]
    pub epochs: usize,
    /// Stop after this many steps (0: no limit); the schedule ends there.
    #[arg(long, default_value_t = DEFAULT.max_steps)]
    pub max_steps: usize,
    /// Peak learning rate (Adam).
    #[arg(long, default_value_t = DEFAULT.lr)]
    pub lr: f64,
    /// Weight decay (AdamW, decoupled).
    #[arg(long, default_value_t = DEFAULT.weight_decay)]
    pub weight_decay: f64,
    /// Gradient norm clipping (0 disables).
    #[arg(long, default_value_t = DEFAULT.clip_grad_norm)]
    pub clip_grad_norm: f64,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = DEFAULT.schedule)]
    pub schedule: ScheduleKind,
    /// Warm-up steps (warmup_cosine).
    #[arg(long, default_value_t = DEFAULT.warmup_steps)]
    pub warmup_steps: usize,
    /// Discriminative rates: each layer group below the top trains at the rate of the one
    /// above divided by this (1: one rate; ULMFiT: 2.6).
    #[arg(long, default_value_t = DEFAULT.discriminative)]
    pub discriminative: f64,
    /// Held-out perplexity every N steps as well as at the end of each epoch (0: epochs only).
    #[arg(long, default_value_t = DEFAULT.eval_every)]
    pub eval_every: usize,
    /// Save a snapshot LM directory every this many minutes of training (0: none).
    #[arg(long, default_value_t = DEFAULT.snapshot_minutes)]
    pub snapshot_minutes: f64,
    /// Seed.
    #[arg(long, default_value_t = DEFAULT.seed)]
    pub seed: u64,
}

/// The default settings (the flags' defaults), sized for about an hour on 2 cores.
const DEFAULT: PretrainConfig = PretrainConfig {
    text: LmText::Imdb,
    max_vocab: 30_000,
    min_freq: 3,
    val_fraction: 0.01,
    embedding_dim: 256,
    hidden: 512,
    layers: 1,
    tie_weights: true,
    embed_dropout: 0.05,
    var_input: 0.1,
    var_state: 0.0,
    var_output: 0.1,
    weight_drop: 0.1,
    softmax: Softmax::Sampled,
    samples: 1024,
    bptt: 70,
    batch_size: 64,
    epochs: 1,
    max_steps: 0,
    lr: 2e-3,
    weight_decay: 0.0,
    clip_grad_norm: 0.5,
    schedule: ScheduleKind::WarmupCosine,
    warmup_steps: 200,
    discriminative: 1.0,
    eval_every: 0,
    snapshot_minutes: 0.0,
    seed: 1,
};

impl Default for PretrainConfig {
    fn default() -> Self {
        DEFAULT
    }
}

impl PretrainConfig {
    /// The LSTM's `proj_size`: the embedding size when tied and different from the hidden
    /// size, else 0 (none).
    ///
    /// ```
    /// use recurrent_cli::pretrain::PretrainConfig;
    /// let c = PretrainConfig { embedding_dim: 256, hidden: 1024, ..Default::default() };
    /// assert_eq!(c.proj_size(), 256);
    /// assert_eq!(PretrainConfig { hidden: 256, ..c }.proj_size(), 0);
    /// ```
    pub fn proj_size(&self) -> usize {
        if self.tie_weights && self.hidden != self.embedding_dim {
            self.embedding_dim
        } else {
            0
        }
    }

    /// The width of the LSTM's output (what the decoder and the classifier see).
    pub fn output_size(&self) -> usize {
        match self.proj_size() {
            0 => self.hidden,
            p => p,
        }
    }

    /// Parse TOML (unknown keys are errors) on top of `base`.
    pub fn from_toml(text: &str, base: &PretrainConfig) -> Result<PretrainConfig> {
        let cfg: PretrainConfig = crate::validate::toml_over(text, base)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check every setting (messages name the flag), and that training fits in memory.
    pub fn validate(&self) -> Result<()> {
        use crate::validate::{
            fits_in_memory, fraction, non_negative_real, positive, positive_real, rnn_parameters,
            size, training_bytes, MAX_LAYERS, MAX_WIDTH,
        };
        size("--max-vocab", self.max_vocab, 10_000_000)?;
        size("--embedding-dim", self.embedding_dim, MAX_WIDTH)?;
        size("--hidden", self.hidden, MAX_WIDTH)?;
        size("--layers", self.layers, MAX_LAYERS)?;
        size("--samples", self.samples, 10_000_000)?;
        size("--bptt", self.bptt, 100_000)?;
        size("--batch-size", self.batch_size, 100_000)?;
        positive("--epochs", self.epochs)?;
        for (name, p) in [
            ("--embed-dropout", self.embed_dropout),
            ("--var-input", self.var_input),
            ("--var-state", self.var_state),
            ("--var-output", self.var_output),
            ("--weight-drop", self.weight_drop),
        ] {
            fraction(name, p)?;
        }
        if !(self.val_fraction > 0.0 && self.val_fraction < 1.0) {
            bail!(
                "--val-fraction must be above 0 and below 1 (perplexity needs held-out reviews), got {}",
                self.val_fraction
            );
        }
        positive_real("--lr", self.lr)?;
        non_negative_real("--weight-decay", self.weight_decay)?;
        non_negative_real("--clip-grad-norm", self.clip_grad_norm)?;
        non_negative_real("--snapshot-minutes", self.snapshot_minutes)?;
        if !(self.discriminative.is_finite() && self.discriminative >= 1.0) {
            bail!(
                "--discriminative must be at least 1 (1: one rate for every layer), got {}",
                self.discriminative
            );
        }
        let v = self.max_vocab as u128 + 3;
        let (e, out) = (self.embedding_dim as u128, self.output_size() as u128);
        let lstm = rnn_parameters(4, self.embedding_dim, self.hidden, self.layers, 1)
            + (self.layers as u128) * (self.proj_size() as u128) * (self.hidden as u128);
        let decoder = if self.tie_weights { v } else { v * (out + 1) };
        let tokens = self.batch_size as u128 * (self.bptt as u128 + 20);
        let logits = match self.softmax {
            Softmax::Sampled => self.samples as u128 + 1,
            Softmax::Full => v,
        };
        let activations = tokens * (e + self.layers as u128 * 6 * self.hidden as u128 + 2 * logits);
        fits_in_memory(
            "this language model",
            training_bytes(v * e + lstm + decoder, activations),
            "--max-vocab, --hidden, --layers, --batch-size, --bptt or --samples",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_and_rejects_unknown_keys() {
        let c = PretrainConfig::from_toml("hidden = 512\nsoftmax = \"full\"\n", &DEFAULT).unwrap();
        assert_eq!((c.hidden, c.softmax, c.bptt), (512, Softmax::Full, 70));
        let e = PretrainConfig::from_toml("hiden = 5", &DEFAULT)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown config key \"hiden\""), "{e}");
        assert!(PretrainConfig::from_toml("val_fraction = 0.0", &DEFAULT).is_err());
        assert!(PretrainConfig::from_toml("discriminative = 0.5", &DEFAULT).is_err());
        assert!(PretrainConfig::from_toml("text = \"imdb-test\"", &DEFAULT).is_err());
    }
}
