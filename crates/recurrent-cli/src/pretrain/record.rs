//! What a pretraining run keeps on disk: `run.json` (what `--resume` restores), the state of
//! a checkpoint and how it is restored, and the held-out measurements (`metrics.json`,
//! `curves.png`).

use super::model::LanguageModel;
use super::PretrainConfig;
use crate::checkpoint::{self, Files};
use crate::plot::{save_png, Panel, Series};
use anyhow::{anyhow, bail, Context, Result};
use recurrent::io::{load_safetensors_bytes, write_atomic};
use recurrent::nn::{Module, RnnState};
use recurrent::optim::{Adam, Optimizer};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `run.json` of a pretraining run: what `--resume` restores.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainRun {
    pub(super) format: String,
    /// The settings.
    pub config: PretrainConfig,
    /// The corpus read (absolute when it started).
    pub data: PathBuf,
    /// SHA-256 of the reviews read, in order.
    pub data_sha256: String,
    /// `--limit`.
    pub limit: Option<usize>,
    /// `--init-from`.
    pub init_from: Option<PathBuf>,
    /// Worker threads.
    pub threads: usize,
}

pub(super) const RUN_FORMAT: &str = "recurrent-pretrain-run/1";

impl PretrainRun {
    /// Read `run.json` of the pretraining run in `dir`.
    pub fn load(dir: &Path) -> Result<PretrainRun> {
        let p = dir.join("run.json");
        let text = std::fs::read_to_string(&p)
            .with_context(|| format!("{} is not a pretraining run (no run.json)", dir.display()))?;
        let r: PretrainRun = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a pretraining run's run.json", p.display()))?;
        if r.format != RUN_FORMAT {
            bail!(
                "{}: format {:?}, expected {RUN_FORMAT:?}",
                p.display(),
                r.format
            );
        }
        Ok(r)
    }
}

/// One held-out measurement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalPoint {
    /// Steps taken.
    pub step: u64,
    /// Epochs done (fractional).
    pub epoch: f64,
    /// Training seconds so far.
    pub train_seconds: f64,
    /// Mean (sampled or full) training loss since the previous point.
    pub train_loss: f64,
    /// Exact held-out cross-entropy, nats per word.
    pub val_nats: f64,
    /// `exp(val_nats)`.
    pub val_perplexity: f64,
}

/// Where a run stands: `trainer.json` of every checkpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PretrainState {
    pub(super) epoch: usize,
    /// Position in the current epoch's streams.
    pub(super) pos: usize,
    pub(super) step: u64,
    pub(super) train_seconds: f64,
    /// Training seconds at which the next snapshot is due.
    pub(super) next_snapshot: f64,
    pub(super) loss_sum: f64,
    pub(super) loss_count: u64,
    pub(super) rng: [u64; 4],
    pub(super) history: Vec<EvalPoint>,
    pub(super) finished: bool,
}

/// The model, optimiser, carried state and run state of a checkpoint.
pub(super) fn restore(
    files: &Files,
    model: &LanguageModel,
    opt: &mut Adam,
) -> Result<(PretrainState, Option<RnnState>)> {
    let get = |name: &str| {
        files
            .get(name)
            .ok_or_else(|| anyhow!("the checkpoint has no {name}"))
    };
    let sd = load_safetensors_bytes(get("model.safetensors")?, "checkpoint model")?;
    model
        .load_state_dict(&sd, true)
        .context("the checkpoint does not match the run's architecture")?;
    opt.load_state(&checkpoint::optimizer_state_from(get(
        "optimizer.safetensors",
    )?)?)?;
    let state: PretrainState = serde_json::from_slice(get("trainer.json")?)?;
    let carried = load_safetensors_bytes(get("carried.safetensors")?, "checkpoint state")?;
    let carried = match (carried.get("h"), carried.get("c")) {
        (Some(h), Some(c)) => Some(RnnState::HC(h.clone(), c.clone())),
        (None, None) => None,
        _ => bail!("the checkpoint's carried state is incomplete"),
    };
    recurrent::rng::set_global_state(state.rng);
    Ok((state, carried))
}

/// `metrics.json` and `curves.png` of the held-out measurements.
pub(super) fn write_metrics(out: &Path, history: &[EvalPoint]) -> Result<()> {
    write_atomic(
        &out.join("metrics.json"),
        serde_json::to_string_pretty(history)?.as_bytes(),
    )?;
    let pts = |f: &dyn Fn(&EvalPoint) -> f64| -> Vec<(f64, f64)> {
        history
            .iter()
            .map(|p| (p.train_seconds / 60.0, f(p)))
            .collect()
    };
    save_png(
        &out.join("curves.png"),
        &[
            Panel {
                title: "cross-entropy (nats per word)",
                x_label: "minutes of training",
                y_label: "nats",
                series: vec![
                    Series {
                        label: "train (as trained: sampled or full softmax)",
                        points: pts(&|p| p.train_loss),
                    },
                    Series {
                        label: "held-out (exact)",
                        points: pts(&|p| p.val_nats),
                    },
                ],
                log_y: false,
                x_names: None,
            },
            Panel {
                title: "held-out perplexity",
                x_label: "minutes of training",
                y_label: "perplexity",
                series: vec![Series {
                    label: "held-out",
                    points: pts(&|p| p.val_perplexity),
                }],
                log_y: true,
                x_names: None,
            },
        ],
    )
}
