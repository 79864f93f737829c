//! Gradient clipping (`torch.nn.utils.clip_grad_norm_`, `clip_grad_value_`).

use crate::ops::optim::{clamp_grad, grad_norm_of, scale_grad};
use crate::{Error, Result, Tensor};

/// The `norm_type`-norm of all gradients together (the norm of the per-parameter norms), as
/// `clip_grad_norm_` computes it. `f64::INFINITY` gives the max-norm. Parameters without a
/// gradient are skipped; with none at all the norm is 0.
pub fn grad_norm(params: &[Tensor], norm_type: f64) -> f64 {
    let norms: Vec<f64> = params
        .iter()
        .filter_map(|p| grad_norm_of(p, norm_type))
        .collect();
    if norm_type.is_infinite() {
        norms.iter().fold(0.0, |m, &v| m.max(v))
    } else {
        norms
            .iter()
            .map(|v| v.powf(norm_type))
            .sum::<f64>()
            .powf(1.0 / norm_type)
    }
}

/// Scale all gradients so that their total norm is at most `max_norm`; returns the norm
/// before clipping. With `error_if_nonfinite`, a NaN or infinite norm is an error and nothing
/// is changed.
pub fn clip_grad_norm(
    params: &[Tensor],
    max_norm: f64,
    norm_type: f64,
    error_if_nonfinite: bool,
) -> Result<f64> {
    let total = grad_norm(params, norm_type);
    if error_if_nonfinite && !total.is_finite() {
        return Err(Error::NonFinite {
            what: "gradients".into(),
            detail: format!(
                "the total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot be clipped"
            ),
        });
    }
    let coef = (max_norm / (total + 1e-6)).min(1.0) as f32;
    if coef < 1.0 || coef.is_nan() {
        for p in params {
            scale_grad(p, coef);
        }
    }
    Ok(total)
}

/// Clamp every gradient element to `[-clip_value, clip_value]`.
pub fn clip_grad_value(params: &[Tensor], clip_value: f32) {
    for p in params {
        clamp_grad(p, clip_value);
    }
}
