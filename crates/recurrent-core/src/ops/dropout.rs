//! Dropout (`F.dropout`): in training, each element is zeroed with probability `p` and the
//! survivors scaled by `1 / (1 - p)`; the backward applies the same mask. In evaluation it
//! is the identity. Masks come from the seeded [`Generator`]; they cannot match PyTorch's.

use super::{backward_fn, take_grad};
use crate::autograd::{needs_grad, record1};
use crate::backend::Device;
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

/// The values of a dropout mask of `n` elements: `0` for dropped, `1 / (1 - p)` for kept.
fn mask_values(n: usize, p: f32, rng: &mut Generator) -> Vec<f32> {
    if p >= 1.0 {
        return vec![0.0; n];
    }
    let scale = 1.0 / (1.0 - p);
    (0..n)
        .map(|_| if rng.uniform_f32() < p { 0.0 } else { scale })
        .collect()
}

/// A dropout mask of `shape` on `device`: `0` for dropped elements, `1 / (1 - p)` for kept
/// ones, drawn from `rng` (elements in row-major order).
///
/// ```
/// use recurrent_core::ops::dropout::dropout_mask;
/// use recurrent_core::{Device, Generator};
/// let m = dropout_mask(&[2, 3], 0.5, &mut Generator::new(1), Device::Cpu).unwrap();
/// assert!(m.to_vec().iter().all(|&v| v == 0.0 || v == 2.0));
/// ```
pub fn dropout_mask(
    shape: &[usize],
    p: f32,
    rng: &mut Generator,
    device: Device,
) -> Result<Tensor> {
    check_dropout_p(p as f64)?;
    let n = shape.iter().product();
    Tensor::from_vec(mask_values(n, p, rng), shape)?.to_device(device)
}

impl Tensor {
    /// Dropout with probability `p` (identity unless `training`).
    pub fn dropout(&self, p: f32, training: bool, rng: &mut Generator) -> Result<Tensor> {
        check_dropout_p(p as f64)?;
        if !training || p == 0.0 {
            return Ok(self.clone());
        }
        let mask = dropout_mask(self.shape(), p, rng, self.device())?;
        self.mul_mask(&mask)
    }

    /// Multiply by a fixed mask of the same number of elements (its gradient uses the same
    /// mask; no gradient flows to the mask). The building block of dropout variants that
    /// reuse one mask.
    pub fn mul_mask(&self, mask: &Tensor) -> Result<Tensor> {
        if mask.numel() != self.numel() {
            return Err(Error::shape("dropout mask", self.shape(), mask.shape()));
        }
        if mask.device() != self.device() {
            return Err(Error::invalid(format!(
                "a dropout mask on {} for a tensor on {}",
                mask.device(),
                self.device()
            )));
        }
        let out: Vec<f32> = self
            .data()
            .iter()
            .zip(mask.data().iter())
            .map(|(&x, &m)| x * m)
            .collect();
        let backward = needs_grad(&[self]).then(|| {
            let mask = mask.detach();
            backward_fn(move |g, _| {
                let g = take_grad(g, mask.numel());
                let m = mask.data();
                Ok(vec![Some(
                    g.iter().zip(m.iter()).map(|(&g, &m)| g * m).collect(),
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
