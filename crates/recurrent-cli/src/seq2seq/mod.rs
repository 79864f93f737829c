//! `recurrent seq2seq`: sequence to sequence (many-to-many with different lengths), an
//! encoder-decoder with optional bidirectional encoder and additive (Bahdanau) attention,
//! trained with teacher forcing and decoded greedily or with beam search.
//!
//! The task is generated reproducibly in code: dates written in many human formats
//! ("3rd of March 2021", "Wed, Mar 3 2021", "03.03.2021", "MAR 3 2021", ...) translated to
//! ISO dates ("2021-03-03"). Every format is unambiguous (day-first formats use dots,
//! month-first ones slashes), so a perfect model exists; the metric is exact-match accuracy
//! on held-out dates.
//!
//! Here: the settings (which are the subcommand's flags), training and evaluation; the task
//! is in `dates.rs`, the model in `model.rs`.

mod dates;
mod model;

pub use dates::{dates, formats_example, render, CharVocab, FORMATS};

use crate::cell::Cell;
use crate::training::{Checks, TrainStep};
use anyhow::Result;
use model::Seq2Seq;
use recurrent::nn::Module;
use recurrent::optim::{Adam, AdamConfig};
use recurrent::Generator;
use serde::Serialize;

/// Settings: the `seq2seq` subcommand's flags. The hidden size is the encoder's per
/// direction, and the decoder's.
#[derive(Clone, Debug, Serialize, clap::Args)]
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
    /// Training pairs.
    #[arg(long, default_value_t = 20_000)]
    pub train: usize,
    /// Held-out pairs.
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
    /// Beam width.
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

/// Results.
#[derive(Clone, Debug, Serialize)]
pub struct Seq2SeqReport {
    /// Settings.
    pub config: Seq2SeqConfig,
    /// `(epoch, mean training loss, greedy accuracy on held-out dates, seconds)`.
    pub history: Vec<(usize, f64, f64, f64)>,
    /// Exact-match accuracy, greedy decoding.
    pub greedy_accuracy: f64,
    /// Exact-match accuracy, beam search.
    pub beam_accuracy: f64,
    /// A few held-out examples: (source, target, greedy output).
    pub examples: Vec<(String, String, String)>,
    /// Wall time (s).
    pub seconds: f64,
}

/// Train and evaluate on generated dates.
pub fn run(cfg: &Seq2SeqConfig, quiet: bool) -> Result<Seq2SeqReport> {
    let t0 = std::time::Instant::now();
    cfg.validate()?;
    let train = dates(cfg.train, cfg.seed);
    let test = dates(cfg.test, cfg.seed ^ 0x7E57);
    let sv = CharVocab::new(train.iter().map(|p| p.0.as_str()));
    let tv = CharVocab::new(train.iter().map(|p| p.1.as_str()));
    let mut g = Generator::new(cfg.seed);
    recurrent::manual_seed(cfg.seed);
    let model = Seq2Seq::new(cfg, sv.len(), tv.len(), &mut g)?;
    let mut opt = Adam::new(model.parameters(), AdamConfig::adam().with_lr(cfg.lr))?;
    let enc_src: Vec<Vec<usize>> = train.iter().map(|p| sv.encode(&p.0)).collect();
    let enc_tgt: Vec<Vec<usize>> = train.iter().map(|p| tv.encode(&p.1)).collect();
    let test_src: Vec<Vec<usize>> = test.iter().map(|p| sv.encode(&p.0)).collect();
    let max_len = 12;
    let eval_greedy = |m: &Seq2Seq| -> Result<(f64, Vec<String>)> {
        let _ng = recurrent::no_grad();
        let mut outs = Vec::new();
        for chunk in test_src.chunks(256) {
            outs.extend(m.greedy(chunk, max_len)?.iter().map(|ids| tv.decode(ids)));
        }
        let acc =
            outs.iter().zip(&test).filter(|(o, p)| **o == p.1).count() as f64 / test.len() as f64;
        Ok((acc, outs))
    };
    let step = TrainStep {
        clip: Some(1.0),
        checks: Checks::None,
        names: &[],
    };
    let mut history = Vec::new();
    for epoch in 0..cfg.epochs {
        let te = std::time::Instant::now();
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
        let (acc, _) = eval_greedy(&model)?;
        history.push((epoch + 1, total / n as f64, acc, te.elapsed().as_secs_f64()));
        if !quiet {
            eprintln!(
                "epoch {:>3}/{}  loss {:.4}  held-out exact match (greedy) {:.4}  {:.0} s",
                epoch + 1,
                cfg.epochs,
                total / n as f64,
                acc,
                te.elapsed().as_secs_f64()
            );
        }
    }
    let (greedy, outs) = eval_greedy(&model)?;
    let beam_acc = {
        let _ng = recurrent::no_grad();
        let mut ok = 0;
        for (s, p) in test_src.iter().zip(&test) {
            if tv.decode(&model.beam(s, cfg.beam.max(1), max_len)?) == p.1 {
                ok += 1;
            }
        }
        ok as f64 / test.len() as f64
    };
    let examples = test
        .iter()
        .zip(&outs)
        .take(8)
        .map(|(p, o)| (p.0.clone(), p.1.clone(), o.clone()))
        .collect();
    Ok(Seq2SeqReport {
        config: cfg.clone(),
        history,
        greedy_accuracy: greedy,
        beam_accuracy: beam_acc,
        examples,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
