//! The IMDB lab's configuration: data, model and training settings, settable from a TOML
//! file and overridden by flags. Unknown keys are errors.
//!
//! [`SentimentConfig`] is also the `train` subcommand's settings flags (it derives
//! `clap::Args`): each field is a flag named after it (`--max-vocab`; `--hidden` and
//! `--layers` for `hidden_size` and `num_layers`), and a flag given on the command line
//! overrides the preset and the config file (see `cmd::train`).

use crate::cell::Cell;
use anyhow::{bail, Result};
use recurrent_data::tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};

/// How the recurrent outputs become one feature vector per review.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Pool {
    /// The final hidden state (both directions' when bidirectional).
    Last,
    /// The elementwise maximum over time.
    Max,
    /// The mean over time.
    Mean,
    /// ULMFiT's concat pooling: the final state, the maximum and the mean over time, side by
    /// side.
    Concat,
}

/// The optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// AdamW (decoupled weight decay).
    Adamw,
    /// Adam (L2 weight decay).
    Adam,
    /// SGD with momentum 0.9.
    Sgd,
    /// RMSprop.
    Rmsprop,
}

/// The learning-rate schedule (applied per step).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// A fixed rate.
    Constant,
    /// Cosine decay to 1% of the rate over the run.
    Cosine,
    /// Linear warm-up over `warmup_steps`, then cosine decay.
    WarmupCosine,
    /// ULMFiT's slanted triangle: a linear rise from 1/32 of the rate to the rate over the
    /// first 10% of the steps, then a linear fall back to 1/32.
    Slanted,
}

/// Which end of a long review to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Truncate {
    /// The first `max_len` tokens.
    Head,
    /// The last `max_len` tokens.
    Tail,
}

/// Everything that defines a sentiment run: the keys of its TOML config file and of a run
/// directory's `config.json`, and the `train` flags of the same names (each optional there).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct SentimentConfig {
    /// Tokenizer (`basic_english` or `char`).
    ///
    /// Not a flag of this struct: `train --tokenizer` is parsed by the tool, which names the
    /// choices in its error.
    #[arg(skip)]
    pub tokenizer: Tokenizer,
    /// Vocabulary size (not counting `<unk>` and `<pad>`).
    #[arg(long)]
    pub max_vocab: usize,
    /// Minimum token count for the vocabulary.
    #[arg(long)]
    pub min_freq: usize,
    /// Tokens kept per review.
    #[arg(long)]
    pub max_len: usize,
    /// Keep the head or the tail of long reviews.
    #[arg(long, value_enum)]
    pub truncate: Truncate,
    /// Validation fraction held out from train.
    #[arg(long)]
    pub val_fraction: f64,
    /// Recurrent cell.
    #[arg(long, value_enum)]
    pub cell: Cell,
    /// Embedding size.
    #[arg(long)]
    pub embedding_dim: usize,
    /// Hidden size.
    #[arg(id = "hidden", long = "hidden", value_name = "HIDDEN")]
    pub hidden_size: usize,
    /// LSTM projection size (0: none), as torch.nn.LSTM's proj_size.
    #[arg(long)]
    pub proj_size: usize,
    /// Recurrent layers.
    #[arg(id = "layers", long = "layers", value_name = "LAYERS")]
    pub num_layers: usize,
    /// Bidirectional recurrence (true/false).
    #[arg(long, action = clap::ArgAction::Set)]
    pub bidirectional: bool,
    /// Dropout between recurrent layers.
    #[arg(long)]
    pub dropout: f64,
    /// Dropout on embeddings.
    #[arg(long)]
    pub embed_dropout: f64,
    /// Dropout before the output layer.
    #[arg(long)]
    pub fc_dropout: f64,
    /// Layer normalisation of the pooled features before the output layer (true/false): a
    /// pretrained encoder's outputs are not of unit scale (ULMFiT normalises its head too).
    #[arg(long, action = clap::ArgAction::Set)]
    pub norm: bool,
    /// Pooling over time.
    #[arg(long, value_enum)]
    pub pool: Pool,
    /// Variational dropout on recurrent layer inputs (one mask per sequence; not in PyTorch).
    #[arg(long)]
    pub var_input: f64,
    /// Variational dropout on the recurrent state h_{t-1}.
    #[arg(long)]
    pub var_state: f64,
    /// Variational dropout on recurrent layer outputs.
    #[arg(long)]
    pub var_output: f64,
    /// DropConnect on the hidden-to-hidden weights (AWD-LSTM's weight drop).
    #[arg(long)]
    pub weight_drop: f64,
    /// Maximum epochs.
    #[arg(long)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long)]
    pub batch_size: usize,
    /// Optimiser.
    #[arg(long, value_enum)]
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: f64,
    /// Weight decay.
    #[arg(long)]
    pub weight_decay: f64,
    /// Gradient norm clipping (0 disables).
    #[arg(long)]
    pub clip_grad_norm: f64,
    /// Learning-rate schedule.
    #[arg(long, value_enum)]
    pub schedule: ScheduleKind,
    /// Warm-up steps.
    #[arg(long)]
    pub warmup_steps: usize,
    /// Early-stopping patience in epochs (0 disables).
    #[arg(long)]
    pub patience: usize,
    /// Start from the encoder of this pretrained language model (`recurrent pretrain`): its
    /// vocabulary, embedding and LSTM; the architecture settings are taken from it.
    #[arg(long, value_name = "LM_DIR")]
    pub init_from: String,
    /// Discriminative learning rates: each layer group (embedding, each recurrent layer, the
    /// output layer) trains at the rate of the group above divided by this (1: one rate;
    /// ULMFiT: 2.6). Adam or AdamW only.
    #[arg(long)]
    pub discriminative: f64,
    /// Gradual unfreezing (true/false): the first epoch trains the output layer only, each
    /// later epoch unfreezes the next layer group down. Adam or AdamW only.
    #[arg(long, action = clap::ArgAction::Set)]
    pub gradual_unfreezing: bool,
    /// Seed.
    #[arg(long)]
    pub seed: u64,
}

impl Default for SentimentConfig {
    fn default() -> Self {
        SentimentConfig {
            tokenizer: Tokenizer::BasicEnglish,
            max_vocab: 20_000,
            min_freq: 1,
            max_len: 400,
            truncate: Truncate::Head,
            val_fraction: 0.1,
            cell: Cell::Lstm,
            embedding_dim: 128,
            hidden_size: 128,
            num_layers: 1,
            bidirectional: true,
            dropout: 0.0,
            embed_dropout: 0.3,
            fc_dropout: 0.3,
            norm: false,
            pool: Pool::Max,
            var_input: 0.0,
            var_state: 0.0,
            var_output: 0.0,
            weight_drop: 0.0,
            proj_size: 0,
            init_from: String::new(),
            discriminative: 1.0,
            gradual_unfreezing: false,
            epochs: 6,
            batch_size: 64,
            optimizer: OptimizerKind::Adamw,
            lr: 2e-3,
            weight_decay: 0.01,
            clip_grad_norm: 1.0,
            schedule: ScheduleKind::WarmupCosine,
            warmup_steps: 200,
            patience: 2,
            seed: 1,
        }
    }
}

impl SentimentConfig {
    /// The course's architecture: embedding -> 2-layer LSTM -> linear on the last hidden
    /// state.
    pub fn course() -> Self {
        SentimentConfig {
            embedding_dim: 100,
            hidden_size: 256,
            num_layers: 2,
            bidirectional: false,
            dropout: 0.5,
            embed_dropout: 0.5,
            fc_dropout: 0.5,
            pool: Pool::Last,
            lr: 1e-3,
            weight_decay: 0.0,
            optimizer: OptimizerKind::Adam,
            ..SentimentConfig::default()
        }
    }

    /// ULMFiT's classifier fine-tuning (Howard & Ruder, 2018) of a pretrained encoder (give
    /// it with `init_from`): concat pooling, discriminative rates (2.6), gradual unfreezing
    /// and a slanted triangular schedule, with AWD-LSTM's dropouts in the encoder.
    pub fn ulmfit() -> Self {
        SentimentConfig {
            bidirectional: false,
            pool: Pool::Concat,
            max_len: 800,
            embed_dropout: 0.05,
            var_input: 0.1,
            var_output: 0.1,
            weight_drop: 0.1,
            fc_dropout: 0.3,
            discriminative: 2.6,
            gradual_unfreezing: true,
            optimizer: OptimizerKind::Adamw,
            lr: 5e-3,
            schedule: ScheduleKind::Slanted,
            epochs: 3,
            patience: 0,
            ..SentimentConfig::default()
        }
    }

    /// Parse TOML (unknown keys are errors) on top of `base`.
    pub fn from_toml(text: &str, base: &SentimentConfig) -> Result<SentimentConfig> {
        let cfg: SentimentConfig = crate::validate::toml_over(text, base)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check the values (each message names the config key and its flag), and that the run
    /// fits in this machine's memory.
    pub fn validate(&self) -> Result<()> {
        use crate::validate::{
            fits_in_memory, fraction, non_negative_real, positive, positive_real, rnn_parameters,
            size, training_bytes, MAX_LAYERS, MAX_WIDTH,
        };
        size("max_vocab (--max-vocab)", self.max_vocab, 100_000_000)?;
        size("max_len (--max-len)", self.max_len, 10_000_000)?;
        size(
            "embedding_dim (--embedding-dim)",
            self.embedding_dim,
            MAX_WIDTH,
        )?;
        size("hidden_size (--hidden)", self.hidden_size, MAX_WIDTH)?;
        size("num_layers (--layers)", self.num_layers, MAX_LAYERS)?;
        positive("epochs (--epochs)", self.epochs)?;
        size("batch_size (--batch-size)", self.batch_size, 1_000_000)?;
        for (name, p) in [
            ("dropout (--dropout)", self.dropout),
            ("embed_dropout (--embed-dropout)", self.embed_dropout),
            ("fc_dropout (--fc-dropout)", self.fc_dropout),
            ("var_input (--var-input)", self.var_input),
            ("var_state (--var-state)", self.var_state),
            ("var_output (--var-output)", self.var_output),
            ("weight_drop (--weight-drop)", self.weight_drop),
            ("val_fraction (--val-fraction)", self.val_fraction),
        ] {
            fraction(name, p)?;
        }
        positive_real("lr (--lr)", self.lr)?;
        non_negative_real("weight_decay (--weight-decay)", self.weight_decay)?;
        non_negative_real("clip_grad_norm (--clip-grad-norm)", self.clip_grad_norm)?;
        if !(self.discriminative.is_finite() && self.discriminative >= 1.0) {
            bail!(
                "discriminative (--discriminative) must be at least 1 (1: one rate for every layer), got {}",
                self.discriminative
            );
        }
        let per_group = self.discriminative != 1.0 || self.gradual_unfreezing;
        if per_group && !matches!(self.optimizer, OptimizerKind::Adam | OptimizerKind::Adamw) {
            bail!(
                "discriminative rates and gradual unfreezing need optimizer adam or adamw (--optimizer), not {:?}",
                self.optimizer
            );
        }
        if self.proj_size > 0 && (self.cell != Cell::Lstm || self.proj_size >= self.hidden_size) {
            bail!(
                "proj_size (--proj-size) needs an LSTM and must be below hidden_size ({}), got {}",
                self.hidden_size,
                self.proj_size
            );
        }
        let gates = self.cell.gates();
        let dirs = if self.bidirectional { 2 } else { 1 };
        let (e, h, l) = (
            self.embedding_dim as u128,
            self.hidden_size as u128,
            self.num_layers as u128,
        );
        let params = (self.max_vocab as u128 + 2) * e
            + rnn_parameters(
                gates,
                self.embedding_dim,
                self.hidden_size,
                self.num_layers,
                dirs,
            )
            + self.feature_size() as u128
            + 1;
        // Saved for the backward pass per token: the embedding, and per layer and direction
        // the gates, the cell state and the output.
        let tokens = self.batch_size as u128 * self.max_len as u128;
        let activations = tokens * (e + l * dirs as u128 * (gates as u128 + 2) * h);
        fits_in_memory(
            "this configuration",
            training_bytes(params, activations),
            "--max-vocab, --embedding-dim, --hidden, --layers, --batch-size or --max-len",
        )
    }

    /// Width of the recurrent output per direction (the projection's when there is one).
    pub fn output_size(&self) -> usize {
        if self.proj_size > 0 {
            self.proj_size
        } else {
            self.hidden_size
        }
    }

    /// Features per review after pooling.
    pub fn feature_size(&self) -> usize {
        let pools = if self.pool == Pool::Concat { 3 } else { 1 };
        self.output_size() * if self.bidirectional { 2 } else { 1 } * pools
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_and_rejects_unknown_keys() {
        let c = SentimentConfig::from_toml(
            "cell = \"gru\"\nhidden_size = 64\n",
            &SentimentConfig::default(),
        )
        .unwrap();
        assert_eq!(
            (c.cell, c.hidden_size, c.max_vocab),
            (Cell::Gru, 64, 20_000)
        );
        let e = SentimentConfig::from_toml("hiden_size = 64", &SentimentConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown config key \"hiden_size\""), "{e}");
        assert!(
            SentimentConfig::from_toml("hidden_size = \"big\"", &SentimentConfig::default())
                .is_err()
        );
        assert!(SentimentConfig::from_toml("dropout = 1.5", &SentimentConfig::default()).is_err());
        assert!(
            SentimentConfig::from_toml("pool = \"median\"", &SentimentConfig::default()).is_err()
        );
    }
}
