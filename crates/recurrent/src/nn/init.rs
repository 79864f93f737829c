//! PyTorch's default initialisations, drawn from a seeded [`Generator`].
//!
//! The *distributions* are PyTorch's; the numbers are not (PyTorch's generator differs). To
//! start from PyTorch's exact weights, load its state dict.

use crate::{Generator, Result, Tensor};

/// `U(-bound, bound)` as a leaf that requires gradients.
pub fn uniform(shape: &[usize], bound: f32, rng: &mut Generator) -> Result<Tensor> {
    Ok(Tensor::rand_uniform(shape, -bound, bound, rng)?.requires_grad())
}

/// The recurrent family's default: every parameter `U(-1/√H, 1/√H)`.
pub fn rnn_uniform(shape: &[usize], hidden_size: usize, rng: &mut Generator) -> Result<Tensor> {
    let bound = if hidden_size > 0 {
        1.0 / (hidden_size as f32).sqrt()
    } else {
        0.0
    };
    uniform(shape, bound, rng)
}

/// `kaiming_uniform_(w, a=√5)` for a `[fan_out, fan_in]` weight, as `nn.Linear` does:
/// `bound = gain · √(3 / fan_in)` with `gain = √(2 / (1 + a²))`, which is `1/√fan_in`.
pub fn kaiming_uniform_linear(
    out_features: usize,
    in_features: usize,
    rng: &mut Generator,
) -> Result<Tensor> {
    let a: f32 = 5f32.sqrt();
    let gain = (2.0 / (1.0 + a * a)).sqrt();
    let bound = if in_features > 0 {
        gain * (3.0 / in_features as f32).sqrt()
    } else {
        0.0
    };
    uniform(&[out_features, in_features], bound, rng)
}

/// `nn.Linear`'s bias: `U(-1/√fan_in, 1/√fan_in)`.
pub fn linear_bias(out_features: usize, in_features: usize, rng: &mut Generator) -> Result<Tensor> {
    let bound = if in_features > 0 {
        1.0 / (in_features as f32).sqrt()
    } else {
        0.0
    };
    uniform(&[out_features], bound, rng)
}

/// `N(0, 1)`, as `nn.Embedding`, with the padding row (if any) zeroed.
pub fn embedding_normal(
    num: usize,
    dim: usize,
    padding_idx: Option<usize>,
    rng: &mut Generator,
) -> Result<Tensor> {
    let t = Tensor::randn(&[num, dim], 0.0, 1.0, rng)?;
    if let Some(p) = padding_idx {
        t.update_data(|d| d[p * dim..(p + 1) * dim].fill(0.0))?;
    }
    Ok(t.requires_grad())
}
