//! Loss functions with PyTorch's semantics: `binary_cross_entropy_with_logits` (with
//! `weight` and `pos_weight`), `cross_entropy` (class indices with `weight`, `ignore_index`,
//! `label_smoothing`; or class probabilities), `nll_loss` and `mse_loss`, each with the
//! reductions `none`, `mean` and `sum`.

use super::{backward_fn, take_grad};
use crate::autograd::{needs_grad, record1};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// How per-element losses are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// Keep one loss per element / sample.
    None,
    /// Average (PyTorch's default; weighted average for weighted class losses).
    #[default]
    Mean,
    /// Sum.
    Sum,
}

impl Reduction {
    /// Parse PyTorch's names `"none" | "mean" | "sum"`.
    pub fn parse(s: &str) -> Result<Reduction> {
        match s {
            "none" => Ok(Reduction::None),
            "mean" => Ok(Reduction::Mean),
            "sum" => Ok(Reduction::Sum),
            other => Err(Error::invalid(format!(
                "{other} is not a valid value for reduction"
            ))),
        }
    }
}

/// Values of `t` broadcast (NumPy rules) to `shape`, or an error naming `what`.
fn expand_to(t: &Tensor, shape: &[usize], what: &str) -> Result<Vec<f32>> {
    let zeros = Tensor::zeros(shape)?;
    let e = crate::autograd::no_grad();
    let r = zeros.add(t).map_err(|_| {
        Error::invalid(format!(
            "{what} of shape {:?} cannot be broadcast to the input shape {shape:?}",
            t.shape()
        ))
    })?;
    drop(e);
    if r.shape() != shape {
        return Err(Error::invalid(format!(
            "{what} of shape {:?} cannot be broadcast to the input shape {shape:?}",
            t.shape()
        )));
    }
    Ok(r.to_vec())
}

/// `softplus(x) = log(1 + e^x)`, computed stably.
fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Reduce per-element losses; returns the output values, shape and the per-element scale of
/// the upstream gradient.
fn reduce(
    losses: Vec<f32>,
    shape: &[usize],
    reduction: Reduction,
    mean_denominator: f64,
) -> (Vec<f32>, Vec<usize>, f32) {
    match reduction {
        Reduction::None => (losses, shape.to_vec(), 1.0),
        Reduction::Sum => (
            vec![losses.iter().map(|&v| v as f64).sum::<f64>() as f32],
            vec![],
            1.0,
        ),
        Reduction::Mean => {
            let s: f64 = losses.iter().map(|&v| v as f64).sum();
            (
                vec![(s / mean_denominator) as f32],
                vec![],
                (1.0 / mean_denominator) as f32,
            )
        }
    }
}

/// The upstream gradient of element `i` after [`reduce`].
fn upstream(g: &[f32], i: usize, reduction: Reduction, scale: f32) -> f32 {
    match reduction {
        Reduction::None => g[i],
        _ => g[0] * scale,
    }
}

/// Targets of [`Tensor::cross_entropy`].
#[derive(Clone, Copy, Debug)]
pub enum ClassTarget<'a> {
    /// One class index per sample (`[N]` or `[N, d1, ...]`); `ignore_index` allowed.
    Indices(&'a [i64]),
    /// Class probabilities of the input's shape.
    Probabilities(&'a Tensor),
}

/// Options of [`Tensor::cross_entropy`] and [`Tensor::nll_loss`] (PyTorch's defaults).
#[derive(Clone, Copy, Debug)]
pub struct CrossEntropyOptions<'a> {
    /// Per-class weights `[C]`.
    pub weight: Option<&'a Tensor>,
    /// Target value that contributes nothing (default -100).
    pub ignore_index: i64,
    /// How to combine per-sample losses.
    pub reduction: Reduction,
    /// Mix the target with the uniform distribution by this much (in `[0, 1]`).
    pub label_smoothing: f32,
}

impl Default for CrossEntropyOptions<'_> {
    fn default() -> Self {
        CrossEntropyOptions {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
        }
    }
}

impl Tensor {
    /// `binary_cross_entropy_with_logits(self, target, weight, pos_weight, reduction)`:
    ///
    /// ```text
    /// ℓ = w ⊙ [ (1 − y) ⊙ x + (1 + (pos_weight − 1) ⊙ y) ⊙ softplus(−x) ]
    /// ```
    ///
    /// `weight` broadcasts to the input; `pos_weight` broadcasts along the last (class) dim.
    pub fn binary_cross_entropy_with_logits(
        &self,
        target: &Tensor,
        weight: Option<&Tensor>,
        pos_weight: Option<&Tensor>,
        reduction: Reduction,
    ) -> Result<Tensor> {
        if target.shape() != self.shape() {
            return Err(Error::invalid(format!(
                "Target size ({:?}) must be the same as input size ({:?})",
                target.shape(),
                self.shape()
            )));
        }
        let n = self.numel();
        let w = weight
            .map(|w| expand_to(w, self.shape(), "weight"))
            .transpose()?;
        let pw = pos_weight
            .map(|p| expand_to(p, self.shape(), "pos_weight"))
            .transpose()?;
        let (x, y) = (self.to_vec(), target.to_vec());
        let losses: Vec<f32> = (0..n)
            .map(|i| {
                let lw = 1.0 + (pw.as_ref().map_or(1.0, |p| p[i]) - 1.0) * y[i];
                let l = (1.0 - y[i]) * x[i] + lw * softplus(-x[i]);
                l * w.as_ref().map_or(1.0, |w| w[i])
            })
            .collect();
        let (out, shape, scale) = reduce(losses, self.shape(), reduction, n as f64);
        let backward = needs_grad(&[self, target]).then(|| {
            backward_fn(move |g, needs| {
                let g = take_grad(g, if reduction == Reduction::None { n } else { 1 });
                let mut dx = needs[0].then(|| vec![0.0; n]);
                let mut dy = needs[1].then(|| vec![0.0; n]);
                for i in 0..n {
                    let u = upstream(&g, i, reduction, scale) * w.as_ref().map_or(1.0, |w| w[i]);
                    let p = pw.as_ref().map_or(1.0, |p| p[i]);
                    let lw = 1.0 + (p - 1.0) * y[i];
                    // ∂ℓ/∂x = (1 − y) − lw · σ(−x)
                    if let Some(dx) = dx.as_mut() {
                        let s = 1.0 / (1.0 + x[i].exp());
                        dx[i] = u * ((1.0 - y[i]) - lw * s);
                    }
                    // ∂ℓ/∂y = −x + (pos_weight − 1) · softplus(−x)
                    if let Some(dy) = dy.as_mut() {
                        dy[i] = u * (-x[i] + (p - 1.0) * softplus(-x[i]));
                    }
                }
                Ok(vec![dx, dy])
            })
        });
        Ok(record1(
            "BinaryCrossEntropyWithLogitsBackward",
            &[self, target],
            out,
            shape,
            backward,
        ))
    }

    /// `cross_entropy(self, target, ...)`: log-softmax over the class dim (dim 1, or dim 0 for
    /// an unbatched `[C]` input) followed by the negative log-likelihood, with PyTorch's
    /// `weight`, `ignore_index`, `label_smoothing` and reductions.
    pub fn cross_entropy(
        &self,
        target: ClassTarget<'_>,
        opts: CrossEntropyOptions<'_>,
    ) -> Result<Tensor> {
        let class_dim = if self.ndim() == 1 { 0 } else { 1 };
        if self.ndim() == 0 {
            return Err(Error::invalid(
                "cross_entropy: input must have at least one dimension",
            ));
        }
        let log_probs = self.log_softmax(class_dim)?;
        class_loss(&log_probs, target, opts, "CrossEntropyLossBackward")
    }

    /// `nll_loss(self, target, ...)` on log-probabilities (class dim 1, or 0 when 1-d).
    pub fn nll_loss(&self, target: &[i64], opts: CrossEntropyOptions<'_>) -> Result<Tensor> {
        if opts.label_smoothing != 0.0 {
            return Err(Error::invalid(
                "nll_loss has no label_smoothing; use cross_entropy",
            ));
        }
        class_loss(self, ClassTarget::Indices(target), opts, "NllLossBackward")
    }

    /// `mse_loss(self, target, reduction)`: `(x − y)²`, broadcasting as PyTorch does.
    pub fn mse_loss(&self, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
        let d = self.sub(target)?;
        let sq = d.mul(&d)?;
        match reduction {
            Reduction::None => Ok(sq),
            Reduction::Sum => sq.sum(),
            Reduction::Mean => sq.mean(),
        }
    }
}

/// Class losses written as `ℓ_i = −Σ_c A_ic · logp_ic`: the coefficient matrix `A` holds the
/// target (one-hot times weight, smoothed, or probabilities); the gradient with respect to
/// the log-probabilities is `−A` (scaled by the reduction).
fn class_loss(
    log_probs: &Tensor,
    target: ClassTarget<'_>,
    opts: CrossEntropyOptions<'_>,
    name: &'static str,
) -> Result<Tensor> {
    let shape = log_probs.shape().to_vec();
    let class_dim = if shape.len() == 1 { 0 } else { 1 };
    let c = shape[class_dim];
    let batch = if shape.len() == 1 { 1 } else { shape[0] };
    let inner: usize = shape[class_dim + 1..].iter().product();
    let rows = batch * inner;
    let eps = opts.label_smoothing;
    if !(0.0..=1.0).contains(&eps) {
        return Err(Error::invalid(format!(
            "label_smoothing must be between 0.0 and 1.0. Got: {eps}"
        )));
    }
    let weight = match opts.weight {
        Some(w) if w.shape() != [c] => {
            return Err(Error::invalid(format!(
                "weight tensor should be defined either for all {c} classes or no classes but got weight tensor of shape: {:?}",
                w.shape()
            )))
        }
        Some(w) => Some(w.to_vec()),
        None => None,
    };
    let wc = |k: usize| weight.as_ref().map_or(1.0, |w| w[k]);
    // A[row, class], rows in (sample, position) order; `at` maps to the flat input index.
    let at = move |row: usize, k: usize| (row / inner * c + k) * inner + row % inner;
    let mut a = vec![0.0f32; rows * c];
    let mut denominator = 0.0f64;
    let mut out_shape: Vec<usize> = shape.clone();
    out_shape.remove(class_dim);
    match target {
        ClassTarget::Indices(t) => {
            if t.len() != rows {
                let mut expected = out_shape.clone();
                if expected.is_empty() {
                    expected.push(1);
                }
                return Err(Error::invalid(format!(
                    "Expected target of shape {expected:?} (one class index per sample), got {} indices",
                    t.len()
                )));
            }
            for (row, &ti) in t.iter().enumerate() {
                if ti == opts.ignore_index {
                    continue;
                }
                if ti < 0 || ti as usize >= c {
                    return Err(Error::invalid(format!(
                        "Target {ti} is out of bounds (number of classes {c})."
                    )));
                }
                let ti = ti as usize;
                denominator += wc(ti) as f64;
                a[row * c + ti] += (1.0 - eps) * wc(ti);
                if eps > 0.0 {
                    for k in 0..c {
                        a[row * c + k] += eps / c as f32 * wc(k);
                    }
                }
            }
        }
        ClassTarget::Probabilities(p) => {
            if p.shape() != shape.as_slice() {
                return Err(Error::invalid(format!(
                    "Expected target probabilities of shape {shape:?}, got {:?}",
                    p.shape()
                )));
            }
            let pd = p.data();
            for row in 0..rows {
                for k in 0..c {
                    let y = pd[at(row, k)] * (1.0 - eps) + eps / c as f32;
                    a[row * c + k] = y * wc(k);
                }
            }
            denominator = rows as f64;
        }
    }
    let lp = log_probs.data();
    let losses: Vec<f32> = (0..rows)
        .map(|row| -(0..c).map(|k| a[row * c + k] * lp[at(row, k)]).sum::<f32>())
        .collect();
    drop(lp);
    let (out, oshape, scale) = reduce(losses, &out_shape, opts.reduction, denominator);
    let reduction = opts.reduction;
    let n = log_probs.numel();
    let backward = needs_grad(&[log_probs]).then(|| {
        backward_fn(move |g, _| {
            let g = take_grad(
                g,
                if reduction == Reduction::None {
                    rows
                } else {
                    1
                },
            );
            let mut d = vec![0.0; n];
            for row in 0..rows {
                let u = upstream(&g, row, reduction, scale);
                for k in 0..c {
                    d[at(row, k)] = -u * a[row * c + k];
                }
            }
            Ok(vec![Some(d)])
        })
    });
    Ok(record1(name, &[log_probs], out, oshape, backward))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bce_with_logits_matches_the_formula_and_is_stable() {
        let x = Tensor::from_vec(vec![0.5, -100.0, 100.0], &[3])
            .unwrap()
            .requires_grad();
        let y = Tensor::from_vec(vec![1.0, 0.0, 1.0], &[3]).unwrap();
        let l = x
            .binary_cross_entropy_with_logits(&y, None, None, Reduction::None)
            .unwrap()
            .to_vec();
        assert!((l[0] - (1.0 + (-0.5f32).exp()).ln()).abs() < 1e-6);
        assert!(l[1].abs() < 1e-6 && l[2].abs() < 1e-6);
        let m = x
            .binary_cross_entropy_with_logits(&y, None, None, Reduction::Mean)
            .unwrap();
        m.backward().unwrap();
        let g = x.grad().unwrap().to_vec();
        let s = 1.0 / (1.0 + (-0.5f32).exp());
        assert!((g[0] - (s - 1.0) / 3.0).abs() < 1e-6);
        let pw = Tensor::from_vec(vec![3.0], &[1]).unwrap();
        let l2 = x
            .binary_cross_entropy_with_logits(&y, None, Some(&pw), Reduction::None)
            .unwrap()
            .to_vec();
        assert!((l2[0] - 3.0 * l[0]).abs() < 1e-5);
        assert!(x
            .binary_cross_entropy_with_logits(&pw, None, None, Reduction::Mean)
            .is_err());
    }

    #[test]
    fn cross_entropy_ignore_index_and_errors() {
        let x = Tensor::from_vec(vec![1., 2., 3., 1., 1., 1.], &[2, 3])
            .unwrap()
            .requires_grad();
        let opts = CrossEntropyOptions::default();
        let l = x
            .cross_entropy(ClassTarget::Indices(&[2, -100]), opts)
            .unwrap()
            .item()
            .unwrap();
        let lse = (1f32.exp() + 2f32.exp() + 3f32.exp()).ln();
        assert!((l - (lse - 3.0)).abs() < 1e-6);
        assert!(x
            .cross_entropy(ClassTarget::Indices(&[3, 0]), opts)
            .is_err());
        assert!(x.cross_entropy(ClassTarget::Indices(&[0]), opts).is_err());
    }
}
