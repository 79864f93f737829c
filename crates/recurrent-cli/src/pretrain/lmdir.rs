//! A language-model directory: `lm.json` (format tag, settings, vocabulary size, where
//! training stood), `vocab.json` and `model.safetensors`. `pretrain` writes one (and one per
//! snapshot); `train --init-from` and `pretrain --init-from` read one, checking that the three
//! files belong together before any weight is used.

use super::model::LanguageModel;
use super::PretrainConfig;
use anyhow::{bail, Context, Result};
use recurrent::io::{load_safetensors, save_safetensors, write_atomic};
use recurrent::nn::{Module, StateDict};
use recurrent::Generator;
use recurrent_data::vocab::Vocab;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `lm.json`.
pub const LM_FILE: &str = "lm.json";
const VOCAB_FILE: &str = "vocab.json";
const WEIGHTS_FILE: &str = "model.safetensors";
const FORMAT: &str = "recurrent-lm/1";

/// `lm.json`: what a language-model directory holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmInfo {
    format: String,
    /// Entries of `vocab.json`.
    pub vocab_size: usize,
    /// The tokenizer of the text (the lab's `basic_english`).
    pub tokenizer: String,
    /// The settings it was trained with.
    pub config: PretrainConfig,
    /// Optimisation steps taken.
    pub step: u64,
    /// Seconds of training (evaluation and saving excluded) up to this model.
    pub train_seconds: f64,
    /// Held-out cross-entropy (nats per word) of this model, when measured.
    pub val_nats: Option<f64>,
}

impl LmInfo {
    /// The record of a model trained with `config` over `vocab_size` words.
    pub fn new(config: &PretrainConfig, vocab_size: usize) -> LmInfo {
        LmInfo {
            format: FORMAT.into(),
            vocab_size,
            tokenizer: "basic_english".into(),
            config: config.clone(),
            step: 0,
            train_seconds: 0.0,
            val_nats: None,
        }
    }
}

/// Write `model`, its vocabulary and `info` into `dir` (created if missing), each file
/// atomically, `lm.json` last.
pub fn save_lm(dir: &Path, model: &LanguageModel, vocab: &Vocab, info: &LmInfo) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomic(&dir.join(VOCAB_FILE), vocab.to_json().as_bytes())?;
    save_safetensors(&dir.join(WEIGHTS_FILE), &model.state_dict(), None)?;
    write_atomic(
        &dir.join(LM_FILE),
        serde_json::to_string_pretty(info)?.as_bytes(),
    )?;
    Ok(())
}

/// A language-model directory, read and checked.
pub struct LmDir {
    /// Where it is.
    pub dir: PathBuf,
    /// `lm.json`.
    pub info: LmInfo,
    /// `vocab.json`.
    pub vocab: Vocab,
    /// `model.safetensors`, checked against the settings.
    pub weights: StateDict,
}

/// Read the language-model directory `dir`: a clear error when it is not one, when its
/// vocabulary does not have the size `lm.json` and the embedding say, or when its weights do
/// not have the shapes its settings give.
pub fn load_lm(dir: &Path) -> Result<LmDir> {
    let lm_path = dir.join(LM_FILE);
    if !lm_path.is_file() {
        bail!(
            "{} is not a language-model directory: {LM_FILE} is missing (make one with `recurrent pretrain --out {}`)",
            dir.display(),
            dir.display()
        );
    }
    let text = std::fs::read_to_string(&lm_path)
        .with_context(|| format!("reading {}", lm_path.display()))?;
    let info: LmInfo = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid {LM_FILE}", lm_path.display()))?;
    if info.format != FORMAT {
        bail!(
            "{}: format {:?}, expected {FORMAT:?}",
            lm_path.display(),
            info.format
        );
    }
    info.config
        .validate()
        .with_context(|| format!("the settings in {}", lm_path.display()))?;
    let vpath = dir.join(VOCAB_FILE);
    let vocab = Vocab::load(&vpath).with_context(|| format!("reading {}", vpath.display()))?;
    if vocab.len() != info.vocab_size {
        bail!(
            "{} has {} words but {} says {}: the files do not belong together",
            vpath.display(),
            vocab.len(),
            lm_path.display(),
            info.vocab_size
        );
    }
    if vocab.token(vocab.index(super::EOS)) != Some(super::EOS) {
        bail!(
            "{} has no {} word: it is not a language model's vocabulary",
            vpath.display(),
            super::EOS
        );
    }
    let wpath = dir.join(WEIGHTS_FILE);
    let weights =
        load_safetensors(&wpath).with_context(|| format!("loading {}", wpath.display()))?;
    let rows = weights.get("embedding.weight").map(|e| e.shape()[0]);
    if rows != Some(vocab.len()) {
        bail!(
            "the embedding in {} has {} rows but {} has {} words: the weights are of another vocabulary",
            wpath.display(),
            rows.map_or("no".to_string(), |r| r.to_string()),
            vpath.display(),
            vocab.len()
        );
    }
    let lm = LmDir {
        dir: dir.to_path_buf(),
        info,
        vocab,
        weights,
    };
    lm.model()?;
    Ok(lm)
}

impl LmDir {
    /// The language model with these weights.
    pub fn model(&self) -> Result<LanguageModel> {
        let model =
            LanguageModel::new(&self.info.config, self.vocab.len(), &mut Generator::new(0))?;
        model
            .load_state_dict(&self.weights, true)
            .with_context(|| {
                format!(
                    "{} does not match the settings in {}",
                    self.dir.join(WEIGHTS_FILE).display(),
                    self.dir.join(LM_FILE).display()
                )
            })?;
        Ok(model)
    }
}
