//! RMSprop (`torch.optim.RMSprop`) with momentum and the centred variant.

use super::{check_non_negative, Buffers, Optimizer, OptimizerState};
use crate::ops::optim::{rmsprop_update, RmsPropUpdate};
use crate::{Result, Tensor};

/// `torch.optim.RMSprop`'s arguments and defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Smoothing constant (default 0.99).
    pub alpha: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// L2 penalty (default 0).
    pub weight_decay: f64,
    /// Momentum factor (default 0).
    pub momentum: f64,
    /// Normalise by the estimated variance instead of the second moment (default false).
    pub centered: bool,
    /// Maximise the objective instead (default false).
    pub maximize: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

/// RMSprop. Per step, for each parameter `p` with gradient `g`:
///
/// ```text
/// g ← g + wd · p;   s ← α s + (1 − α) g²
/// a ← √(s − ḡ²) + eps with ḡ ← α ḡ + (1 − α) g (centered), else √s + eps
/// b ← momentum · b + g / a;  p ← p − lr · b      (momentum > 0)
/// p ← p − lr · g / a                              (otherwise)
/// ```
#[derive(Debug)]
pub struct RmsProp {
    params: Vec<Tensor>,
    cfg: RmsPropConfig,
    bufs: Buffers,
}

impl RmsProp {
    /// An optimiser over `params`.
    pub fn new(params: Vec<Tensor>, cfg: RmsPropConfig) -> Result<RmsProp> {
        check_non_negative("learning rate", cfg.lr)?;
        check_non_negative("epsilon value", cfg.eps)?;
        check_non_negative("momentum value", cfg.momentum)?;
        check_non_negative("weight_decay value", cfg.weight_decay)?;
        check_non_negative("alpha value", cfg.alpha)?;
        let n = params.len();
        Ok(RmsProp {
            params,
            cfg,
            bufs: Buffers::new(n, &["square_avg", "momentum_buffer", "grad_avg"]),
        })
    }
}

impl Optimizer for RmsProp {
    fn step(&mut self) -> Result<()> {
        let c = self.cfg;
        let u = RmsPropUpdate {
            lr: c.lr,
            alpha: c.alpha,
            eps: c.eps,
            weight_decay: c.weight_decay,
            momentum: c.momentum,
            centered: c.centered,
            maximize: c.maximize,
        };
        for (i, p) in self.params.iter().enumerate() {
            if !p.has_grad() {
                continue;
            }
            let (b, step) = self.bufs.get(i, p)?;
            *step += 1;
            rmsprop_update(p, [&b[0], &b[1], &b[2]], &u)?;
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
