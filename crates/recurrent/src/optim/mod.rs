//! Optimisers with PyTorch's update rules and defaults (`SGD`, `Adam`, `AdamW`, `RMSprop`),
//! gradient clipping, and learning-rate schedules.
//!
//! An optimiser holds handles to the parameters (as `torch.optim` does) and updates them in
//! place from their accumulated gradients; parameters without a gradient are skipped. One
//! parameter group per optimiser (PyTorch's per-group options are not supported: build one
//! optimiser per group instead). The state buffers are tensors on each parameter's device,
//! and the updates are ops (`recurrent_core::ops::optim`), so an optimiser runs wherever its
//! parameters live.

pub mod adam;
pub mod clip;
pub mod rmsprop;
pub mod scheduler;
pub mod sgd;

pub use adam::{Adam, AdamConfig};
pub use clip::{clip_grad_norm, clip_grad_value, grad_norm};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use scheduler::{LrScheduler, Schedule};
pub use sgd::{Sgd, SgdConfig};

use crate::{Error, Result, Tensor};

/// The saved state of an optimiser: per-parameter buffers by name (`"{index}.{buffer}"`),
/// step counts and the current learning rate. Stored in checkpoints so that a resumed run
/// continues exactly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    /// Current learning rate.
    pub lr: f64,
    /// `(name, values)` of every buffer.
    pub buffers: Vec<(String, Vec<f32>)>,
    /// `(parameter index, steps taken)`.
    pub steps: Vec<(usize, u64)>,
}

/// What every optimiser offers.
pub trait Optimizer {
    /// Update every parameter that has a gradient.
    fn step(&mut self) -> Result<()>;
    /// The parameters (handles).
    fn params(&self) -> &[Tensor];
    /// Clear all gradients (`set_to_none=True`).
    fn zero_grad(&self) {
        for p in self.params() {
            p.zero_grad();
        }
    }
    /// The learning rate.
    fn lr(&self) -> f64;
    /// Set the learning rate (schedulers do this).
    fn set_lr(&mut self, lr: f64);
    /// The state to save in a checkpoint.
    fn state(&self) -> OptimizerState;
    /// Restore a saved state (buffers must match the parameters' sizes).
    fn load_state(&mut self, state: &OptimizerState) -> Result<()>;
    /// Give each parameter its own rate, `factors[i] · lr` (0 freezes it), as PyTorch's
    /// parameter groups do. Optimisers without it accept only factors of 1.
    ///
    /// ```
    /// use recurrent::optim::{Optimizer, Sgd, SgdConfig};
    /// use recurrent::Tensor;
    /// let mut sgd = Sgd::new(vec![Tensor::ones(&[1]).unwrap()], SgdConfig::default()).unwrap();
    /// assert!(sgd.set_lr_factors(&[1.0]).is_ok());
    /// assert!(sgd.set_lr_factors(&[0.5]).is_err());
    /// ```
    fn set_lr_factors(&mut self, factors: &[f64]) -> Result<()> {
        if factors.iter().any(|&f| f != 1.0) {
            return Err(Error::invalid(
                "per-parameter learning rates need Adam or AdamW",
            ));
        }
        Ok(())
    }
}

pub(crate) fn check_non_negative(what: &str, v: f64) -> Result<()> {
    if v.is_nan() || v < 0.0 {
        return Err(Error::invalid(format!("Invalid {what}: {v}")));
    }
    Ok(())
}

/// Per-parameter buffers that are created on the first step (as PyTorch's lazy state): tensors
/// of the parameter's shape on its device.
#[derive(Clone, Debug, Default)]
pub(crate) struct Buffers {
    names: Vec<&'static str>,
    /// `bufs[param][k]` for buffer name `names[k]`; empty until the first step.
    bufs: Vec<Vec<Tensor>>,
    steps: Vec<u64>,
}

impl Buffers {
    pub(crate) fn new(n_params: usize, names: &[&'static str]) -> Self {
        Buffers {
            names: names.to_vec(),
            bufs: vec![Vec::new(); n_params],
            steps: vec![0; n_params],
        }
    }

    /// Buffers of parameter `p` (index `i`; created zeroed on its device if absent) and its
    /// step count.
    pub(crate) fn get(&mut self, i: usize, p: &Tensor) -> Result<(&[Tensor], &mut u64)> {
        if self.bufs[i].is_empty() {
            self.bufs[i] = (0..self.names.len())
                .map(|_| Tensor::zeros(p.shape())?.to_device(p.device()))
                .collect::<Result<_>>()?;
        }
        Ok((&self.bufs[i], &mut self.steps[i]))
    }

    pub(crate) fn is_initialised(&self, i: usize) -> bool {
        !self.bufs[i].is_empty()
    }

    pub(crate) fn state(&self, lr: f64) -> OptimizerState {
        let mut st = OptimizerState {
            lr,
            ..Default::default()
        };
        for (i, bs) in self.bufs.iter().enumerate() {
            if bs.is_empty() {
                continue;
            }
            for (k, b) in bs.iter().enumerate() {
                st.buffers
                    .push((format!("{i}.{}", self.names[k]), b.to_vec()));
            }
            st.steps.push((i, self.steps[i]));
        }
        st
    }

    pub(crate) fn load(&mut self, st: &OptimizerState, params: &[Tensor]) -> Result<()> {
        let mut fresh = Buffers::new(params.len(), &self.names);
        for (name, values) in &st.buffers {
            let (idx, buf) = name.split_once('.').ok_or_else(|| {
                Error::corrupt("optimizer state", format!("bad buffer name {name:?}"))
            })?;
            let i: usize = idx.parse().map_err(|_| {
                Error::corrupt("optimizer state", format!("bad buffer name {name:?}"))
            })?;
            let k = self.names.iter().position(|n| *n == buf).ok_or_else(|| {
                Error::corrupt("optimizer state", format!("unknown buffer {name:?}"))
            })?;
            let p = params.get(i).ok_or_else(|| {
                Error::corrupt(
                    "optimizer state",
                    format!("buffer {name:?} for a missing parameter"),
                )
            })?;
            if values.len() != p.numel() {
                return Err(Error::corrupt(
                    "optimizer state",
                    format!(
                        "buffer {name:?} has {} values, parameter has {}",
                        values.len(),
                        p.numel()
                    ),
                ));
            }
            fresh.get(i, p)?.0[k].copy_from(values)?;
        }
        for &(i, s) in &st.steps {
            if i >= params.len() {
                return Err(Error::corrupt(
                    "optimizer state",
                    format!("step count for missing parameter {i}"),
                ));
            }
            fresh.steps[i] = s;
        }
        *self = fresh;
        Ok(())
    }
}
