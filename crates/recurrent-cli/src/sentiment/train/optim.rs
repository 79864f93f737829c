//! The sentiment run's optimiser and learning-rate schedule, as its settings name them.

use crate::sentiment::config::{OptimizerKind, ScheduleKind, SentimentConfig};
use anyhow::Result;
use recurrent::optim::{
    Adam, AdamConfig, Optimizer, RmsProp, RmsPropConfig, Schedule, Sgd, SgdConfig,
};
use recurrent::Tensor;

/// The optimiser of `cfg` over `params`.
pub(super) fn build_optimizer(
    cfg: &SentimentConfig,
    params: Vec<Tensor>,
) -> Result<Box<dyn Optimizer>> {
    Ok(match cfg.optimizer {
        OptimizerKind::Adamw => Box::new(Adam::new(
            params,
            AdamConfig::adamw()
                .with_lr(cfg.lr)
                .with_weight_decay(cfg.weight_decay),
        )?),
        OptimizerKind::Adam => Box::new(Adam::new(
            params,
            AdamConfig::adam()
                .with_lr(cfg.lr)
                .with_weight_decay(cfg.weight_decay),
        )?),
        OptimizerKind::Sgd => Box::new(Sgd::new(
            params,
            SgdConfig {
                lr: cfg.lr,
                momentum: 0.9,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?),
        OptimizerKind::Rmsprop => Box::new(RmsProp::new(
            params,
            RmsPropConfig {
                lr: cfg.lr,
                weight_decay: cfg.weight_decay,
                ..Default::default()
            },
        )?),
    })
}

/// The per-step schedule of a sentiment run over `total` steps.
pub fn schedule_for(cfg: &SentimentConfig, total: usize) -> Schedule {
    schedule(cfg.schedule, cfg.lr, cfg.warmup_steps, total)
}

/// The per-step schedule `kind` of peak rate `lr` over `total` steps (`warmup` steps of
/// linear warm-up for [`ScheduleKind::WarmupCosine`]); shared with `recurrent pretrain`.
///
/// ```
/// use recurrent_cli::sentiment::config::ScheduleKind;
/// use recurrent_cli::sentiment::train::schedule;
/// // ULMFiT's slanted triangle: up for 10% of the steps to the peak, then down to 1/32 of it.
/// let s = schedule(ScheduleKind::Slanted, 0.01, 0, 100);
/// assert!((s.lr(0.01, 10) - 0.01).abs() < 1e-12);
/// assert!((s.lr(0.01, 100) - 0.01 / 32.0).abs() < 1e-12);
/// ```
pub fn schedule(kind: ScheduleKind, lr: f64, warmup: usize, total: usize) -> Schedule {
    let total = total.max(1);
    match kind {
        ScheduleKind::Constant => Schedule::Constant {
            factor: 1.0,
            total_iters: 0,
        },
        ScheduleKind::Cosine => Schedule::Cosine {
            t_max: total,
            eta_min: lr * 0.01,
        },
        ScheduleKind::WarmupCosine => {
            let warm = warmup.min(total / 2).max(1);
            Schedule::Sequential {
                schedules: vec![
                    Schedule::Linear {
                        start_factor: 0.01,
                        end_factor: 1.0,
                        total_iters: warm,
                    },
                    Schedule::Cosine {
                        t_max: (total - warm).max(1),
                        eta_min: lr * 0.01,
                    },
                ],
                milestones: vec![warm],
            }
        }
        ScheduleKind::Slanted => {
            // Howard & Ruder (2018): cut_frac 0.1, ratio 32.
            let cut = (total / 10).max(1);
            Schedule::Sequential {
                schedules: vec![
                    Schedule::Linear {
                        start_factor: 1.0 / 32.0,
                        end_factor: 1.0,
                        total_iters: cut,
                    },
                    Schedule::Linear {
                        start_factor: 1.0,
                        end_factor: 1.0 / 32.0,
                        total_iters: (total - cut).max(1),
                    },
                ],
                milestones: vec![cut],
            }
        }
    }
}
