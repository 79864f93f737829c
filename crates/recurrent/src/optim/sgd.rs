//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay
//! (`torch.optim.SGD`).

use super::{check_non_negative, Buffers, Optimizer, OptimizerState};
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
        let (lr, mom, damp, wd) = (
            c.lr as f32,
            c.momentum as f32,
            c.dampening as f32,
            c.weight_decay as f32,
        );
        for (i, p) in self.params.iter().enumerate() {
            let Some(mut g) = p.with_grad(|g| g.map(<[f32]>::to_vec)) else {
                continue;
            };
            if c.maximize {
                g.iter_mut().for_each(|v| *v = -*v);
            }
            let first = !self.bufs.is_initialised(i);
            p.update_data(|w| {
                if wd != 0.0 {
                    g.iter_mut().zip(w.iter()).for_each(|(g, &w)| *g += wd * w);
                }
                if mom != 0.0 {
                    let (b, _) = self.bufs.get(i, w.len());
                    let buf = &mut b[0];
                    if first {
                        buf.copy_from_slice(&g);
                    } else {
                        buf.iter_mut()
                            .zip(&g)
                            .for_each(|(b, &g)| *b = *b * mom + (1.0 - damp) * g);
                    }
                    if c.nesterov {
                        g.iter_mut()
                            .zip(buf.iter())
                            .for_each(|(g, &b)| *g += mom * b);
                    } else {
                        g.copy_from_slice(buf);
                    }
                }
                w.iter_mut().zip(&g).for_each(|(w, &g)| *w += -lr * g);
            })?;
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
