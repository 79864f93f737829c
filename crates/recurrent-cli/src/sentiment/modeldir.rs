//! A model directory: `config.json` (architecture and settings), `vocab.json` and
//! `model.safetensors` (PyTorch parameter names). It is what `eval` and `predict` read and
//! what `scripts/torch_model.py` loads into PyTorch. Every file is written atomically, and
//! loading checks that the three agree.

use super::config::{SentimentConfig, Truncate};
use super::model::SentimentModel;
use anyhow::{bail, Context, Result};
use recurrent::io::{load_safetensors, save_safetensors, write_atomic};
use recurrent::nn::Module;
use recurrent::{Generator, Tensor};
use recurrent_data::batch::{Batch, Encoded};
use recurrent_data::vocab::Vocab;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `config.json`.
pub const CONFIG_FILE: &str = "config.json";
/// `vocab.json`.
pub const VOCAB_FILE: &str = "vocab.json";
/// `model.safetensors`.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The format tag in `config.json`.
pub const FORMAT: &str = "recurrent-sentiment/1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    format: String,
    vocab_size: usize,
    config: SentimentConfig,
}

/// Write `config.json` and `vocab.json`.
pub fn save_config(dir: &Path, cfg: &SentimentConfig, vocab: &Vocab) -> Result<()> {
    let c = ConfigFile {
        format: FORMAT.into(),
        vocab_size: vocab.len(),
        config: cfg.clone(),
    };
    write_atomic(
        &dir.join(CONFIG_FILE),
        serde_json::to_string_pretty(&c)?.as_bytes(),
    )?;
    write_atomic(&dir.join(VOCAB_FILE), vocab.to_json().as_bytes())?;
    Ok(())
}

/// Write `model.safetensors`.
pub fn save_weights(dir: &Path, model: &SentimentModel) -> Result<()> {
    save_safetensors(&dir.join(WEIGHTS_FILE), &model.state_dict(), None)?;
    Ok(())
}

/// Read `config.json` and `vocab.json`, checking that they agree.
pub fn load_config(dir: &Path) -> Result<(SentimentConfig, Vocab)> {
    let cpath = dir.join(CONFIG_FILE);
    if !cpath.is_file() {
        bail!(
            "{} is not a model directory: {CONFIG_FILE} is missing (train one with `recurrent train --out {}`)",
            dir.display(),
            dir.display()
        );
    }
    let text =
        std::fs::read_to_string(&cpath).with_context(|| format!("reading {}", cpath.display()))?;
    let c: ConfigFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid model config", cpath.display()))?;
    if c.format != FORMAT {
        bail!(
            "{}: format {:?} is not {FORMAT:?}",
            cpath.display(),
            c.format
        );
    }
    c.config
        .validate()
        .with_context(|| format!("{}", cpath.display()))?;
    let vocab = Vocab::load(&dir.join(VOCAB_FILE))?;
    if vocab.len() != c.vocab_size {
        bail!(
            "{} has {} tokens but {} says the model was trained with {}: the files do not belong together",
            dir.join(VOCAB_FILE).display(),
            vocab.len(),
            cpath.display(),
            c.vocab_size
        );
    }
    Ok((c.config, vocab))
}

/// A loaded model directory, ready to classify text.
pub struct Predictor {
    /// The model (evaluation mode).
    pub model: SentimentModel,
    /// Its vocabulary.
    pub vocab: Vocab,
    /// Its configuration.
    pub cfg: SentimentConfig,
}

impl Predictor {
    /// Load and cross-check a model directory.
    pub fn load(dir: &Path) -> Result<Predictor> {
        let (cfg, vocab) = load_config(dir)?;
        let wpath = dir.join(WEIGHTS_FILE);
        let sd =
            load_safetensors(&wpath).with_context(|| format!("loading {}", wpath.display()))?;
        if let Some(e) = sd.get("embedding.weight") {
            if e.shape().first() != Some(&vocab.len()) {
                bail!(
                    "{} has {} tokens but the embedding in {} has {} rows: the files do not belong together",
                    dir.join(VOCAB_FILE).display(),
                    vocab.len(),
                    wpath.display(),
                    e.shape().first().copied().unwrap_or(0)
                );
            }
        }
        let mut model = SentimentModel::new(&cfg, vocab.len(), &mut Generator::new(0))?;
        model.load_state_dict(&sd, true).with_context(|| {
            format!(
                "{} does not match the architecture in {CONFIG_FILE}",
                wpath.display()
            )
        })?;
        model.set_training(false);
        Ok(Predictor { model, vocab, cfg })
    }

    /// Numericalise one text (errors on empty text).
    pub fn encode(&self, text: &str) -> Result<Encoded> {
        if text.trim().is_empty() {
            bail!("empty text: nothing to classify");
        }
        let ids = encode_text(&self.cfg, &self.vocab, text);
        if ids.is_empty() {
            bail!("the text has no tokens after tokenization: nothing to classify");
        }
        Ok(Encoded { ids, label: 0.0 })
    }

    /// Positive-class probabilities of encoded texts, in their order.
    pub fn probabilities(&self, data: &[Encoded]) -> Result<Vec<f32>> {
        let _ng = recurrent::no_grad();
        let mut probs = vec![0.0f32; data.len()];
        let all: Vec<usize> = (0..data.len()).collect();
        for idx in recurrent_data::batch::bucket_batches(data, &all, 256, None) {
            let b = Batch::pack(data, &idx);
            let logits = self.model.forward(&b)?.to_vec();
            for (k, &i) in b.index.iter().enumerate() {
                probs[i] = 1.0 / (1.0 + (-logits[k]).exp());
            }
        }
        Ok(probs)
    }
}

/// Tokenize, look up and truncate a text.
pub fn encode_text(cfg: &SentimentConfig, vocab: &Vocab, text: &str) -> Vec<u32> {
    let toks = cfg.tokenizer.tokenize(text);
    let n = toks.len();
    let keep = match cfg.truncate {
        Truncate::Head => &toks[..n.min(cfg.max_len)],
        Truncate::Tail => &toks[n.saturating_sub(cfg.max_len)..],
    };
    vocab.encode(keep)
}

/// Logits for a batch (helper for tests and tools).
pub fn logits(model: &SentimentModel, batch: &Batch) -> Result<Tensor> {
    Ok(model.forward(batch)?)
}
