//! What a sentiment run records as it goes: each epoch's numbers, the running sums of the
//! epoch in progress (checkpointed with it), and the files they are written to
//! (`metrics.csv`, `metrics.json`, `curves.png`).

use crate::plot::{save_png, Panel, Series};
use anyhow::Result;
use recurrent::io::write_atomic;
use recurrent::Tensor;
use recurrent_data::batch::Batch;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One epoch's numbers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (with dropout on).
    pub train_acc: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_acc: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Wall time of the epoch's training steps.
    pub seconds: f64,
    /// Training throughput.
    pub seq_per_s: f64,
    /// Mean gradient norm before clipping.
    pub grad_norm: f64,
    /// Steps skipped for non-finite values.
    pub skipped_steps: u64,
}

/// The running sums of the epoch in progress.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Accum {
    pub(super) loss_sum: f64,
    pub(super) correct: u64,
    pub(super) count: u64,
    pub(super) seconds: f64,
    pub(super) grad_norm_sum: f64,
    pub(super) steps: u64,
    pub(super) skipped: u64,
}

impl Accum {
    /// Add a step that updated the model: its loss, gradient norm and logits on `batch`.
    pub(super) fn add_step(&mut self, loss: f64, grad_norm: f64, logits: &Tensor, batch: &Batch) {
        self.grad_norm_sum += grad_norm;
        let preds = logits.to_vec();
        self.correct += preds
            .iter()
            .zip(&batch.labels)
            .filter(|(&l, &y)| (l >= 0.0) == (y >= 0.5))
            .count() as u64;
        self.loss_sum += loss * batch.len() as f64;
        self.count += batch.len() as u64;
        self.steps += 1;
    }

    /// The progress bar's message: running loss, accuracy, gradient norm, throughput.
    pub(super) fn message(&self) -> String {
        format!(
            "loss {:.4} acc {:.3} |g| {:.3} {:.0} seq/s",
            self.loss_sum / self.count.max(1) as f64,
            self.correct as f64 / self.count.max(1) as f64,
            self.grad_norm_sum / self.steps.max(1) as f64,
            self.count as f64 / self.seconds.max(1e-9)
        )
    }

    /// The finished epoch's numbers, with its validation results and final learning rate.
    pub(super) fn metrics(
        &self,
        epoch: usize,
        val_loss: f64,
        val_acc: f64,
        lr: f64,
    ) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: self.loss_sum / self.count.max(1) as f64,
            train_acc: self.correct as f64 / self.count.max(1) as f64,
            val_loss,
            val_acc,
            lr,
            seconds: self.seconds,
            seq_per_s: self.count as f64 / self.seconds.max(1e-9),
            grad_norm: self.grad_norm_sum / self.steps.max(1) as f64,
            skipped_steps: self.skipped,
        }
    }
}

/// Write `metrics.csv`, `metrics.json` and `curves.png` of `history` into `run`.
pub(super) fn write_metrics(run: &Path, history: &[EpochMetrics]) -> Result<()> {
    let mut csv = String::from("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,seq_per_s,grad_norm,skipped_steps\n");
    for m in history {
        csv += &format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.6e},{:.2},{:.1},{:.4},{}\n",
            m.epoch,
            m.train_loss,
            m.train_acc,
            m.val_loss,
            m.val_acc,
            m.lr,
            m.seconds,
            m.seq_per_s,
            m.grad_norm,
            m.skipped_steps
        );
    }
    write_atomic(&run.join("metrics.csv"), csv.as_bytes())?;
    write_atomic(
        &run.join("metrics.json"),
        serde_json::to_string_pretty(history)?.as_bytes(),
    )?;
    let pts = |f: &dyn Fn(&EpochMetrics) -> f64| {
        history
            .iter()
            .map(|m| (m.epoch as f64, f(m)))
            .collect::<Vec<_>>()
    };
    save_png(
        &run.join("curves.png"),
        &[
            Panel {
                title: "loss (binary cross-entropy)",
                x_label: "epoch",
                y_label: "loss",
                series: vec![
                    Series {
                        label: "train",
                        points: pts(&|m| m.train_loss),
                    },
                    Series {
                        label: "validation",
                        points: pts(&|m| m.val_loss),
                    },
                ],
                log_y: false,
                x_names: None,
            },
            Panel {
                title: "accuracy",
                x_label: "epoch",
                y_label: "accuracy",
                series: vec![
                    Series {
                        label: "train",
                        points: pts(&|m| m.train_acc),
                    },
                    Series {
                        label: "validation",
                        points: pts(&|m| m.val_acc),
                    },
                ],
                log_y: false,
                x_names: None,
            },
        ],
    )?;
    Ok(())
}
