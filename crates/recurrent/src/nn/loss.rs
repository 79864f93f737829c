//! The loss modules: thin wrappers over the loss ops with PyTorch's constructor arguments.

use crate::{ClassTarget, CrossEntropyOptions, Reduction, Result, Tensor};

/// `nn.BCEWithLogitsLoss(weight, reduction, pos_weight)`.
#[derive(Clone, Debug, Default)]
pub struct BceWithLogitsLoss {
    /// Rescaling weight broadcast to the input.
    pub weight: Option<Tensor>,
    /// Weight of positive examples, broadcast along the class (last) dim.
    pub pos_weight: Option<Tensor>,
    /// Reduction (default mean).
    pub reduction: Reduction,
}

impl BceWithLogitsLoss {
    /// The loss of `logits` against `targets` in `[0, 1]` (same shape).
    pub fn forward(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        logits.binary_cross_entropy_with_logits(
            targets,
            self.weight.as_ref(),
            self.pos_weight.as_ref(),
            self.reduction,
        )
    }
}

/// `nn.CrossEntropyLoss(weight, ignore_index, reduction, label_smoothing)`.
#[derive(Clone, Debug)]
pub struct CrossEntropyLoss {
    /// Per-class weights `[C]`.
    pub weight: Option<Tensor>,
    /// Target value ignored (default -100).
    pub ignore_index: i64,
    /// Reduction (default mean).
    pub reduction: Reduction,
    /// Label smoothing in `[0, 1]` (default 0).
    pub label_smoothing: f32,
}

impl Default for CrossEntropyLoss {
    fn default() -> Self {
        CrossEntropyLoss {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
        }
    }
}

impl CrossEntropyLoss {
    fn options(&self) -> CrossEntropyOptions<'_> {
        CrossEntropyOptions {
            weight: self.weight.as_ref(),
            ignore_index: self.ignore_index,
            reduction: self.reduction,
            label_smoothing: self.label_smoothing,
        }
    }

    /// The loss of `logits: [N, C]` (or `[C]`, or `[N, C, d...]`) against class indices.
    pub fn forward(&self, logits: &Tensor, targets: &[i64]) -> Result<Tensor> {
        logits.cross_entropy(ClassTarget::Indices(targets), self.options())
    }

    /// The loss against class probabilities of the logits' shape.
    pub fn forward_probs(&self, logits: &Tensor, probs: &Tensor) -> Result<Tensor> {
        logits.cross_entropy(ClassTarget::Probabilities(probs), self.options())
    }
}

/// `nn.MSELoss(reduction)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MseLoss {
    /// Reduction (default mean).
    pub reduction: Reduction,
}

impl MseLoss {
    /// `(input − target)²`, reduced.
    pub fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        input.mse_loss(target, self.reduction)
    }
}
