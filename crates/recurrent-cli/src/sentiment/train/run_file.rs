//! `run.json`: what defines a sentiment run beyond its settings (the data, how much of it,
//! the thread count), and the fingerprint that ties a resumed run to the reviews it started
//! with.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where a run records the data it was started with.
pub(super) const RUN_FILE: &str = "run.json";

/// What defines a run beyond its model and training settings (which are in `config.json`):
/// written when the run starts, restored by `--resume`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunFile {
    /// The corpus the run reads (absolute path when it started).
    pub data: PathBuf,
    /// SHA-256 of the training split's labels and texts, in order: a resumed run must read
    /// the same reviews, wherever they are now. (Absent in runs made before it was recorded.)
    #[serde(default)]
    pub data_sha256: Option<String>,
    /// `--limit`: train on at most this many reviews.
    #[serde(default)]
    pub limit: Option<usize>,
    /// `--skip-nonfinite`.
    #[serde(default)]
    pub skip_nonfinite: bool,
    /// Worker threads (the batch slices, so the last bits of the results, depend on it).
    #[serde(default)]
    pub threads: Option<usize>,
}

impl RunFile {
    /// Read `run.json` of a run directory.
    pub fn load(run: &Path) -> Result<RunFile> {
        let p = run.join(RUN_FILE);
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("{} is corrupt", p.display()))
    }
}

/// SHA-256 of the labels and texts of `reviews`, in order.
pub(crate) fn corpus_fingerprint(reviews: &[recurrent_data::imdb::Review]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for r in reviews {
        h.update([r.label]);
        h.update((r.text.len() as u64).to_le_bytes());
        h.update(r.text.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
