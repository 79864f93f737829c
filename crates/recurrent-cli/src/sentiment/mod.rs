//! The IMDB sentiment lab: configuration, model, model directories, training, evaluation
//! and prediction.

pub mod config;
pub mod model;
pub mod modeldir;
pub mod train;

use crate::metrics::Confusion;
use anyhow::{bail, Context, Result};
use modeldir::Predictor;
use recurrent_data::imdb::{self, ReadOptions};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// What `eval` evaluates on.
#[derive(Clone, Debug)]
pub enum EvalSource {
    /// The test split of the corpus at this path (resolved like `train`'s `--data`).
    Corpus(Option<PathBuf>),
    /// A folder in the aclImdb layout: a corpus root (its test split) or one split folder
    /// with `pos/` and `neg/`.
    Folder(PathBuf),
    /// A `label<TAB>text` file.
    Tsv(PathBuf),
}

/// Evaluate a model directory: the confusion counts.
pub fn evaluate(
    model_dir: &Path,
    source: &EvalSource,
    allow_download: bool,
    limit: Option<usize>,
) -> Result<Confusion> {
    let pred = Predictor::load(model_dir)?;
    let mut examples: Vec<(u8, String)> = match source {
        EvalSource::Corpus(p) => {
            let path = crate::datapath::find_imdb(p.as_deref(), allow_download)?;
            let c = imdb::read(
                &path,
                &ReadOptions {
                    train: false,
                    ..Default::default()
                },
            )
            .with_context(|| format!("reading {}", path.display()))?;
            c.test.into_iter().map(|r| (r.label, r.text)).collect()
        }
        EvalSource::Folder(dir) => {
            let reviews = if dir.join("pos").is_dir() && dir.join("neg").is_dir() {
                imdb::read_labelled_folder(dir, &ReadOptions::default())?
            } else {
                imdb::read(
                    dir,
                    &ReadOptions {
                        train: false,
                        ..Default::default()
                    },
                )?
                .test
            };
            reviews.into_iter().map(|r| (r.label, r.text)).collect()
        }
        EvalSource::Tsv(p) => recurrent_data::tsv::read(p)?,
    };
    if let Some(n) = limit {
        // An even cut: positives and negatives alternate after this sort.
        examples.sort_by_key(|e| e.0);
        let (neg, pos): (Vec<_>, Vec<_>) = examples.into_iter().partition(|e| e.0 == 0);
        examples = neg
            .into_iter()
            .zip(pos)
            .flat_map(|(a, b)| [a, b])
            .take(n)
            .collect();
    }
    if examples.is_empty() {
        bail!("nothing to evaluate");
    }
    let mut encoded = Vec::with_capacity(examples.len());
    for (i, (label, text)) in examples.iter().enumerate() {
        let mut e = pred
            .encode(text)
            .with_context(|| format!("example {}", i + 1))?;
        e.label = *label as f32;
        encoded.push(e);
    }
    let probs = pred.probabilities(&encoded)?;
    let labels: Vec<u8> = examples.iter().map(|e| e.0).collect();
    Ok(Confusion::from_probs(&probs, &labels))
}

/// One prediction.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Prediction {
    /// `positive` or `negative`.
    pub label: &'static str,
    /// Probability of the positive class.
    pub probability: f32,
    /// The input text.
    pub text: String,
}

/// Classify texts (each must have words in it).
pub fn predict(model_dir: &Path, texts: &[String]) -> Result<Vec<Prediction>> {
    let pred = Predictor::load(model_dir)?;
    let mut enc = Vec::with_capacity(texts.len());
    for (i, t) in texts.iter().enumerate() {
        enc.push(pred.encode(t).with_context(|| {
            if texts.len() > 1 {
                format!("text {}", i + 1)
            } else {
                "the text".into()
            }
        })?);
    }
    let probs = pred.probabilities(&enc)?;
    Ok(texts
        .iter()
        .zip(probs)
        .map(|(t, p)| Prediction {
            label: if p >= 0.5 { "positive" } else { "negative" },
            probability: p,
            text: t.clone(),
        })
        .collect())
}

/// Read one text per line from a reader (errors name the line; blank lines are errors).
pub fn read_lines(r: impl BufRead) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (i, line) in r.split(b'\n').enumerate() {
        let bytes = line.context("reading standard input")?;
        let text = String::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "line {}: not valid UTF-8 (byte {})",
                i + 1,
                e.utf8_error().valid_up_to()
            )
        })?;
        let text = text.strip_suffix('\r').unwrap_or(&text).to_string();
        if text.trim().is_empty() {
            bail!("line {}: empty text", i + 1);
        }
        out.push(text);
    }
    if out.is_empty() {
        bail!("no text given: pass texts as arguments or one per line on standard input");
    }
    Ok(out)
}
