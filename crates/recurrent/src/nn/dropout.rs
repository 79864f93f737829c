//! `nn.Dropout`: zero elements with probability `p` in training, scale survivors by
//! `1/(1-p)`; the identity in evaluation.

use super::module::Module;
use crate::ops::dropout::check_dropout_p;
use crate::rng::with_global;
use crate::{Result, Tensor};

/// A dropout layer.
#[derive(Clone, Debug)]
pub struct Dropout {
    p: f32,
    training: bool,
}

impl Dropout {
    /// `Dropout(p)`, in training mode. Errors unless `0 <= p <= 1`.
    pub fn new(p: f32) -> Result<Dropout> {
        check_dropout_p(p as f64)?;
        Ok(Dropout { p, training: true })
    }

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }

    /// Apply (masks from the process-wide generator).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !self.training || self.p == 0.0 {
            return Ok(x.clone());
        }
        with_global(|g| x.dropout(self.p, true, g))
    }
}

impl Module for Dropout {
    fn visit_parameters(&self, _f: &mut dyn FnMut(&str, &Tensor)) {}
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
    fn type_name(&self) -> &'static str {
        "Dropout"
    }
}
