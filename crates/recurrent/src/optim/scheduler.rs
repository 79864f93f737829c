//! Learning-rate schedules (`torch.optim.lr_scheduler`): step, multi-step, exponential,
//! cosine annealing, linear (warm-up), constant, and sequential composition, in closed form.
//!
//! As in PyTorch, creating a scheduler sets the optimiser's learning rate for epoch 0, and
//! each [`LrScheduler::step`] advances one epoch (or one iteration, if called per batch).

use super::Optimizer;
use crate::{Error, Result};
use std::f64::consts::PI;

/// A learning-rate multiplier as a function of the epoch.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// `StepLR`: `γ^⌊epoch / step_size⌋`.
    Step {
        /// Epochs per decay.
        step_size: usize,
        /// Decay factor.
        gamma: f64,
    },
    /// `MultiStepLR`: `γ^(number of milestones ≤ epoch)`.
    MultiStep {
        /// Increasing epochs at which to decay.
        milestones: Vec<usize>,
        /// Decay factor.
        gamma: f64,
    },
    /// `ExponentialLR`: `γ^epoch`.
    Exponential {
        /// Decay factor.
        gamma: f64,
    },
    /// `CosineAnnealingLR`: `η_min + (base − η_min)(1 + cos(π · epoch / T_max)) / 2`.
    Cosine {
        /// Half-period in epochs.
        t_max: usize,
        /// Minimum learning rate (absolute).
        eta_min: f64,
    },
    /// `LinearLR`: factor from `start_factor` to `end_factor` over `total_iters`, then flat.
    Linear {
        /// Factor at epoch 0.
        start_factor: f64,
        /// Factor from `total_iters` on.
        end_factor: f64,
        /// Length of the ramp.
        total_iters: usize,
    },
    /// `ConstantLR`: `factor` until `total_iters`, then 1.
    Constant {
        /// Factor during the first `total_iters` epochs.
        factor: f64,
        /// Length of the constant phase.
        total_iters: usize,
    },
    /// `SequentialLR`: schedule `k` runs from `milestones[k-1]` (restarting at its epoch 0).
    Sequential {
        /// The schedules in order.
        schedules: Vec<Schedule>,
        /// Epochs at which to switch (one fewer than schedules).
        milestones: Vec<usize>,
    },
}

impl Schedule {
    /// Check the arguments with PyTorch's rules.
    pub fn validate(&self) -> Result<()> {
        match self {
            Schedule::Step { step_size, .. } if *step_size == 0 => {
                Err(Error::invalid("StepLR: step_size must be positive"))
            }
            Schedule::MultiStep { milestones, .. }
                if milestones.windows(2).any(|w| w[1] < w[0]) =>
            {
                Err(Error::invalid("MultiStepLR: milestones must be increasing"))
            }
            Schedule::Cosine { t_max, .. } if *t_max == 0 => {
                Err(Error::invalid("CosineAnnealingLR: T_max must be positive"))
            }
            Schedule::Linear {
                start_factor,
                end_factor,
                total_iters,
            } => {
                if !(*start_factor > 0.0 && *start_factor <= 1.0) {
                    return Err(Error::invalid(
                        "Starting multiplicative factor expected to be greater than 0 and less or equal to 1.",
                    ));
                }
                if !(0.0..=1.0).contains(end_factor) {
                    return Err(Error::invalid(
                        "Ending multiplicative factor expected to be between 0 and 1.",
                    ));
                }
                if *total_iters == 0 {
                    return Err(Error::invalid("LinearLR: total_iters must be positive"));
                }
                Ok(())
            }
            Schedule::Constant { factor, .. } if !(0.0..=1.0).contains(factor) => Err(
                Error::invalid("Constant multiplicative factor expected to be between 0 and 1."),
            ),
            Schedule::Sequential {
                schedules,
                milestones,
            } => {
                if schedules.len() != milestones.len() + 1 {
                    return Err(Error::invalid(format!(
                        "Sequential Schedulers expects number of schedulers provided to be one more than the number of milestone points, but got number of schedulers {} and the number of milestones to be equal to {}",
                        schedules.len(),
                        milestones.len()
                    )));
                }
                schedules.iter().try_for_each(Schedule::validate)
            }
            _ => Ok(()),
        }
    }

    /// The learning rate at `epoch` for a base rate `base`.
    pub fn lr(&self, base: f64, epoch: usize) -> f64 {
        match self {
            Schedule::Step { step_size, gamma } => base * gamma.powi((epoch / step_size) as i32),
            Schedule::MultiStep { milestones, gamma } => {
                base * gamma.powi(milestones.iter().filter(|&&m| m <= epoch).count() as i32)
            }
            Schedule::Exponential { gamma } => base * gamma.powi(epoch as i32),
            Schedule::Cosine { t_max, eta_min } => {
                eta_min + (base - eta_min) * (1.0 + (PI * epoch as f64 / *t_max as f64).cos()) / 2.0
            }
            Schedule::Linear {
                start_factor,
                end_factor,
                total_iters,
            } => {
                let e = epoch.min(*total_iters) as f64;
                base * (start_factor + (end_factor - start_factor) * e / *total_iters as f64)
            }
            Schedule::Constant {
                factor,
                total_iters,
            } => {
                if epoch < *total_iters {
                    base * factor
                } else {
                    base
                }
            }
            Schedule::Sequential {
                schedules,
                milestones,
            } => {
                let k = milestones.iter().filter(|&&m| m <= epoch).count();
                let start = if k == 0 { 0 } else { milestones[k - 1] };
                schedules[k].lr(base, epoch - start)
            }
        }
    }
}

/// Drives an optimiser's learning rate along a [`Schedule`].
#[derive(Clone, Debug)]
pub struct LrScheduler {
    schedule: Schedule,
    base_lr: f64,
    epoch: usize,
}

impl LrScheduler {
    /// Start the schedule: sets the optimiser's rate to the epoch-0 value.
    pub fn new(schedule: Schedule, opt: &mut dyn Optimizer) -> Result<LrScheduler> {
        schedule.validate()?;
        let s = LrScheduler {
            base_lr: opt.lr(),
            schedule,
            epoch: 0,
        };
        opt.set_lr(s.schedule.lr(s.base_lr, 0));
        Ok(s)
    }

    /// Resume a schedule at `epoch` with the original base rate.
    pub fn resume(
        schedule: Schedule,
        base_lr: f64,
        epoch: usize,
        opt: &mut dyn Optimizer,
    ) -> Result<LrScheduler> {
        schedule.validate()?;
        let s = LrScheduler {
            schedule,
            base_lr,
            epoch,
        };
        opt.set_lr(s.schedule.lr(base_lr, epoch));
        Ok(s)
    }

    /// Advance one epoch and set the optimiser's rate.
    pub fn step(&mut self, opt: &mut dyn Optimizer) {
        self.epoch += 1;
        opt.set_lr(self.schedule.lr(self.base_lr, self.epoch));
    }

    /// The rate set by the last call (`get_last_lr`).
    pub fn last_lr(&self) -> f64 {
        self.schedule.lr(self.base_lr, self.epoch)
    }

    /// Epochs stepped so far.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The base rate the schedule multiplies.
    pub fn base_lr(&self) -> f64 {
        self.base_lr
    }
}
