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

/// The per-step schedule over `total` steps.
pub fn schedule_for(cfg: &SentimentConfig, total: usize) -> Schedule {
    let total = total.max(1);
    match cfg.schedule {
        ScheduleKind::Constant => Schedule::Constant {
            factor: 1.0,
            total_iters: 0,
        },
        ScheduleKind::Cosine => Schedule::Cosine {
            t_max: total,
            eta_min: cfg.lr * 0.01,
        },
        ScheduleKind::WarmupCosine => {
            let warm = cfg.warmup_steps.min(total / 2).max(1);
            Schedule::Sequential {
                schedules: vec![
                    Schedule::Linear {
                        start_factor: 0.01,
                        end_factor: 1.0,
                        total_iters: warm,
                    },
                    Schedule::Cosine {
                        t_max: (total - warm).max(1),
                        eta_min: cfg.lr * 0.01,
                    },
                ],
                milestones: vec![warm],
            }
        }
    }
}
