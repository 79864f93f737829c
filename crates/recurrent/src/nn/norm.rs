//! `nn.LayerNorm` over the last dimension: `y = (x − mean) / √(var + eps) · weight + bias`,
//! with the biased variance, as PyTorch computes it.

use super::module::Module;
use crate::{Error, Result, Tensor};

/// Layer normalisation over the last dimension (`torch.nn.LayerNorm(d)`, `eps = 1e-5`).
/// Parameters: `weight: [d]` (ones) and `bias: [d]` (zeros).
///
/// ```
/// use recurrent::nn::LayerNorm;
/// use recurrent::Tensor;
/// let ln = LayerNorm::new(4).unwrap();
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 50.0], &[2, 4]).unwrap();
/// let y = ln.forward(&x).unwrap().to_vec();
/// // Each row has mean 0 and variance 1 (up to eps), whatever its scale.
/// for row in y.chunks(4) {
///     let mean: f32 = row.iter().sum::<f32>() / 4.0;
///     let var: f32 = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4.0;
///     assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3);
/// }
/// ```
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// `[d]`, initialised to ones.
    pub weight: Tensor,
    /// `[d]`, initialised to zeros.
    pub bias: Tensor,
    /// Added to the variance.
    pub eps: f32,
}

impl LayerNorm {
    /// `LayerNorm(d)` with PyTorch's defaults.
    pub fn new(d: usize) -> Result<LayerNorm> {
        if d == 0 {
            return Err(Error::invalid(
                "LayerNorm: normalized_shape must be positive",
            ));
        }
        Ok(LayerNorm {
            weight: Tensor::ones(&[d])?.requires_grad(),
            bias: Tensor::zeros(&[d])?.requires_grad(),
            eps: 1e-5,
        })
    }

    /// Normalise `x` over its last dimension, which must be `d`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let d = self.weight.shape()[0];
        if x.shape().last() != Some(&d) {
            return Err(Error::invalid(format!(
                "LayerNorm: expected input with last dimension {d}, got shape {:?}",
                x.shape()
            )));
        }
        let last = x.ndim() - 1;
        let centred = x.sub(&x.mean_dim(last, true)?)?;
        let var = centred.mul(&centred)?.mean_dim(last, true)?;
        centred
            .div(&var.add_scalar(self.eps)?.sqrt()?)?
            .mul(&self.weight)?
            .add(&self.bias)
    }
}

impl Module for LayerNorm {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        f("weight", &self.weight);
        f("bias", &self.bias);
    }
    fn type_name(&self) -> &'static str {
        "LayerNorm"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values and gradients from `torch.nn.LayerNorm(4)` (PyTorch 2.15) with this weight and
    /// bias, for the loss `sum(y * w)`.
    #[test]
    fn layer_norm_matches_pytorch_values_and_gradients() {
        let mut ln = LayerNorm::new(4).unwrap();
        ln.weight = Tensor::from_vec(vec![1.0, 0.5, -2.0, 1.5], &[4])
            .unwrap()
            .requires_grad();
        ln.bias = Tensor::from_vec(vec![0.1, 0.0, -0.3, 0.2], &[4])
            .unwrap()
            .requires_grad();
        let x = Tensor::from_vec(vec![0.5, -1.0, 2.0, 3.5, 10.0, 10.5, -4.0, 0.25], &[2, 4])
            .unwrap()
            .requires_grad();
        let w = Tensor::from_vec(vec![1.0, 2.0, -1.0, 0.5, 0.3, -0.7, 1.1, 2.0], &[2, 4]).unwrap();
        let y = ln.forward(&x).unwrap();
        y.mul(&w).unwrap().sum().unwrap().backward().unwrap();
        let close = |got: Vec<f32>, want: &[f32]| {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 2e-5, "{got:?} vs {want:?}");
            }
        };
        close(
            y.to_vec(),
            &[
                -0.347213, -0.670819, -1.194426, 2.212458, 1.030232, 0.505126, 2.320655, -0.745236,
            ],
        );
        close(
            x.grad().unwrap().to_vec(),
            &[
                -0.10435, -0.089443, 0.477027, -0.283235, -0.016152, -0.123116, -0.333982, 0.473251,
            ],
        );
        close(
            ln.weight.grad().unwrap().to_vec(),
            &[-0.168143, -3.390453, -1.888573, -0.589496],
        );
        close(ln.bias.grad().unwrap().to_vec(), &[1.3, 1.3, 0.1, 2.5]);
        assert!(ln.forward(&Tensor::zeros(&[2, 3]).unwrap()).is_err());
        assert!(LayerNorm::new(0).is_err());
    }
}
