//! Adam and AdamW (`torch.optim.Adam`, `torch.optim.AdamW`), with `amsgrad` and `maximize`.

use super::{check_non_negative, Buffers, Optimizer, OptimizerState};
use crate::ops::optim::{adam_update, AdamUpdate};
use crate::{Error, Result, Tensor};

/// The arguments of Adam/AdamW with PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Coefficients of the running averages of the gradient and its square (0.9, 0.999).
    pub betas: (f64, f64),
    /// Added to the denominator (1e-8).
    pub eps: f64,
    /// Weight decay: L2 penalty for Adam (default 0), decoupled for AdamW (default 1e-2).
    pub weight_decay: f64,
    /// Use the maximum of past squared-gradient averages (default false).
    pub amsgrad: bool,
    /// Maximise the objective instead (default false).
    pub maximize: bool,
    /// Decoupled weight decay: true for AdamW.
    pub decoupled_weight_decay: bool,
}

impl AdamConfig {
    /// `torch.optim.Adam`'s defaults.
    pub fn adam() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
            decoupled_weight_decay: false,
        }
    }

    /// `torch.optim.AdamW`'s defaults.
    pub fn adamw() -> Self {
        AdamConfig {
            weight_decay: 1e-2,
            decoupled_weight_decay: true,
            ..Self::adam()
        }
    }

    /// Set `lr`.
    ///
    /// ```
    /// use recurrent::optim::AdamConfig;
    /// assert_eq!(AdamConfig::adamw().with_lr(3e-4).lr, 3e-4);
    /// ```
    pub fn with_lr(mut self, lr: f64) -> Self {
        self.lr = lr;
        self
    }

    /// Set `weight_decay`.
    ///
    /// ```
    /// use recurrent::optim::AdamConfig;
    /// let c = AdamConfig::adam().with_weight_decay(0.01); // an L2 term; AdamConfig::adamw() decouples it
    /// assert!(!c.decoupled_weight_decay && c.weight_decay == 0.01);
    /// ```
    pub fn with_weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self::adam()
    }
}

/// Adam / AdamW. Per step `t`, for each parameter `p` with gradient `g`:
///
/// ```text
/// p ← p · (1 − lr · wd)              (AdamW)      g ← g + wd · p     (Adam)
/// m ← β1 m + (1 − β1) g              v ← β2 v + (1 − β2) g²
/// v̂ ← max(v̂, v) (amsgrad) or v
/// p ← p − lr / (1 − β1ᵗ) · m / (√v̂ / √(1 − β2ᵗ) + eps)
/// ```
#[derive(Debug)]
pub struct Adam {
    params: Vec<Tensor>,
    cfg: AdamConfig,
    bufs: Buffers,
    /// Each parameter's learning rate as a multiple of `cfg.lr` (all 1 unless set).
    lr_factors: Vec<f64>,
}

impl Adam {
    /// An optimiser over `params`.
    pub fn new(params: Vec<Tensor>, cfg: AdamConfig) -> Result<Adam> {
        check_non_negative("learning rate", cfg.lr)?;
        check_non_negative("epsilon value", cfg.eps)?;
        check_non_negative("weight_decay value", cfg.weight_decay)?;
        for (i, b) in [cfg.betas.0, cfg.betas.1].into_iter().enumerate() {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::invalid(format!(
                    "Invalid beta parameter at index {i}: {b}"
                )));
            }
        }
        let n = params.len();
        Ok(Adam {
            params,
            cfg,
            bufs: Buffers::new(n, &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
            lr_factors: vec![1.0; n],
        })
    }

    /// Give each parameter its own learning rate, `factors[i] · lr`, as PyTorch's parameter
    /// groups do (ULMFiT's discriminative rates). A factor of 0 freezes the parameter: it is
    /// skipped as a parameter without a gradient is, its moments and step count untouched.
    /// The schedule still sets the one `lr` the factors multiply.
    ///
    /// ```
    /// use recurrent::optim::{Adam, AdamConfig, Optimizer};
    /// use recurrent::Tensor;
    /// let (a, b) = (Tensor::ones(&[2]).unwrap().requires_grad(), Tensor::ones(&[2]).unwrap().requires_grad());
    /// let mut opt = Adam::new(vec![a.clone(), b.clone()], AdamConfig::adam().with_lr(0.1)).unwrap();
    /// opt.set_lr_factors(&[1.0, 0.0]).unwrap(); // b is frozen
    /// a.mul(&b).unwrap().sum().unwrap().backward().unwrap();
    /// opt.step().unwrap();
    /// assert!(a.to_vec()[0] < 1.0 && b.to_vec() == [1.0, 1.0]);
    /// ```
    pub fn set_lr_factors(&mut self, factors: &[f64]) -> Result<()> {
        if factors.len() != self.params.len() {
            return Err(Error::invalid(format!(
                "set_lr_factors: {} factors for {} parameters",
                factors.len(),
                self.params.len()
            )));
        }
        for &f in factors {
            check_non_negative("learning-rate factor", f)?;
        }
        self.lr_factors = factors.to_vec();
        Ok(())
    }

    /// The factors [`Adam::set_lr_factors`] set (all 1 by default).
    pub fn lr_factors(&self) -> &[f64] {
        &self.lr_factors
    }
}

impl Optimizer for Adam {
    fn step(&mut self) -> Result<()> {
        let c = self.cfg;
        for (i, p) in self.params.iter().enumerate() {
            let factor = self.lr_factors[i];
            if !p.has_grad() || factor == 0.0 {
                continue;
            }
            let (b, step) = self.bufs.get(i, p)?;
            *step += 1;
            let u = AdamUpdate {
                lr: c.lr * factor,
                betas: c.betas,
                eps: c.eps,
                weight_decay: c.weight_decay,
                decoupled_weight_decay: c.decoupled_weight_decay,
                amsgrad: c.amsgrad,
                maximize: c.maximize,
                step: *step,
            };
            adam_update(p, [&b[0], &b[1], &b[2]], &u)?;
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
    fn set_lr_factors(&mut self, factors: &[f64]) -> Result<()> {
        Adam::set_lr_factors(self, factors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A factor is a parameter group's rate: the same steps as an optimiser at `lr · factor`.
    #[test]
    fn a_learning_rate_factor_is_the_rate_times_the_factor() {
        let grads = [[0.5f32, -2.0], [1.5, 0.25], [-0.75, 1.0]];
        let run = |lr: f64, factor: f64| -> Vec<f32> {
            let p = Tensor::from_vec(vec![1.0, -1.0], &[2])
                .unwrap()
                .requires_grad();
            let mut opt = Adam::new(vec![p.clone()], AdamConfig::adamw().with_lr(lr)).unwrap();
            opt.set_lr_factors(&[factor]).unwrap();
            for g in grads {
                p.set_grad(Some(g.to_vec())).unwrap();
                opt.step().unwrap();
            }
            p.to_vec()
        };
        assert_eq!(run(0.01, 0.25), run(0.0025, 1.0));
        assert_eq!(run(0.01, 0.0), vec![1.0, -1.0]);
        let mut opt = Adam::new(vec![Tensor::ones(&[1]).unwrap()], AdamConfig::adam()).unwrap();
        assert!(opt.set_lr_factors(&[1.0, 1.0]).is_err());
        assert!(opt.set_lr_factors(&[-1.0]).is_err());
    }
}
