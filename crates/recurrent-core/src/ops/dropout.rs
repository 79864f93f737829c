//! Dropout (`F.dropout`): in training, each element is zeroed with probability `p` and the
//! survivors scaled by `1 / (1 - p)`; the backward applies the same mask. In evaluation it
//! is the identity. Masks come from the seeded [`Generator`]; they cannot match PyTorch's.

use super::{backward_fn, take_grad};
use crate::autograd::{needs_grad, record1};
use crate::error::{Error, Result};
use crate::rng::Generator;
use crate::tensor::Tensor;

/// Check a dropout probability with PyTorch's message.
pub fn check_dropout_p(p: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&p) || p.is_nan() {
        return Err(Error::invalid(format!(
            "dropout probability has to be between 0 and 1, but got {p}"
        )));
    }
    Ok(())
}

/// A dropout mask of `n` elements: `0` for dropped, `1 / (1 - p)` for kept.
pub fn dropout_mask(n: usize, p: f32, rng: &mut Generator) -> Vec<f32> {
    if p >= 1.0 {
        return vec![0.0; n];
    }
    let scale = 1.0 / (1.0 - p);
    (0..n)
        .map(|_| if rng.uniform_f32() < p { 0.0 } else { scale })
        .collect()
}

impl Tensor {
    /// Dropout with probability `p` (identity unless `training`).
    pub fn dropout(&self, p: f32, training: bool, rng: &mut Generator) -> Result<Tensor> {
        check_dropout_p(p as f64)?;
        if !training || p == 0.0 {
            return Ok(self.clone());
        }
        let mask = dropout_mask(self.numel(), p, rng);
        self.mul_mask(&mask)
    }

    /// Multiply by a fixed mask of the same number of elements (its gradient uses the same
    /// mask). The building block of dropout variants that reuse one mask.
    pub fn mul_mask(&self, mask: &[f32]) -> Result<Tensor> {
        if mask.len() != self.numel() {
            return Err(Error::shape("dropout mask", self.shape(), &[mask.len()]));
        }
        let out: Vec<f32> = self.data().iter().zip(mask).map(|(&x, &m)| x * m).collect();
        let backward = needs_grad(&[self]).then(|| {
            let mask = mask.to_vec();
            backward_fn(move |g, _| {
                let g = take_grad(g, mask.len());
                Ok(vec![Some(
                    g.iter().zip(&mask).map(|(&g, &m)| g * m).collect(),
                )])
            })
        });
        Ok(record1(
            "DropoutBackward",
            &[self],
            out,
            self.shape().to_vec(),
            backward,
        ))
    }
}
