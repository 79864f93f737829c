//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay
//! (`torch.optim.SGD`).

use super::{check_non_negative, Buffers, Optimizer, OptimizerState};
use crate::ops::optim::{sgd_update, SgdUpdate};
use crate::{Error, Result, Tensor};

/// `torch.optim.SGD`'s arguments and defaults (`lr` 1e-3).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (default 0).
    pub momentum: f64,
    /// Dampening for momentum (default 0).
    pub dampening: f64,
    /// L2 penalty (default 0).
    pub weight_decay: f64,
    /// Nesterov momentum (default false).
    pub nesterov: bool,
    /// Maximise the objective instead (default false).
    pub maximize: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

/// SGD. Per step, for each parameter `p` with gradient `g`:
///
/// ```text
/// g ← g + weight_decay · p
/// b ← g (first step) or momentum · b + (1 − dampening) · g
/// g ← g + momentum · b (nesterov) or b (momentum > 0)
/// p ← p − lr · g
/// ```
#[derive(Debug)]
pub struct Sgd {
    params: Vec<Tensor>,
    cfg: SgdConfig,
    bufs: Buffers,
}

impl Sgd {
    /// An optimiser over `params`.
    pub fn new(params: Vec<Tensor>, cfg: SgdConfig) -> Result<Sgd> {
        check_non_negative("learning rate", cfg.lr)?;
        check_non_negative("momentum value", cfg.momentum)?;
        check_non_negative("weight_decay value", cfg.weight_decay)?;
        if cfg.nesterov && (cfg.momentum <= 0.0 || cfg.dampening != 0.0) {
            return Err(Error::invalid(
                "Nesterov momentum requires a momentum and zero dampening",
            ));
        }
        let n = params.len();
        Ok(Sgd {
            params,
            cfg,
            bufs: Buffers::new(n, &["momentum_buffer"]),
        })
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        let c = self.cfg;
        for (i, p) in self.params.iter().enumerate() {
            if !p.has_grad() {
                continue;
            }
            let first = !self.bufs.is_initialised(i);
            let u = SgdUpdate {
                lr: c.lr,
                momentum: c.momentum,
                dampening: c.dampening,
                weight_decay: c.weight_decay,
                nesterov: c.nesterov,
                maximize: c.maximize,
                first,
            };
            // The momentum buffer exists only with momentum (as PyTorch's state).
            let buf = if c.momentum != 0.0 {
                Some(self.bufs.get(i, p)?.0[0].clone())
            } else {
                None
            };
            sgd_update(p, buf.as_ref(), &u)?;
        }
        Ok(())
    }
    fn params(&self) -> &[Tensor] {
        &self.params
    }
    fn lr(&self) -> f64 {
        self.cfg.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }
    fn state(&self) -> OptimizerState {
        self.bufs.state(self.cfg.lr)
    }
    fn load_state(&mut self, s: &OptimizerState) -> Result<()> {
        self.bufs.load(s, &self.params)?;
        self.cfg.lr = s.lr;
        Ok(())
    }
}
