//! Differentiable operations on [`crate::Tensor`], one file per family.
//!
//! Each op validates its arguments (returning `Err`, never panicking on user input), computes
//! its output through the device kernels, and, when gradients are needed, records one
//! autograd node whose backward is written out by hand next to the forward.
//!
//! Dimensions are `usize` (no negative indexing); shapes in the docs are written `[N, C]`.

pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod loss;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod rnn;
pub mod shape;

use crate::autograd::{BackwardOp, GradStorage};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Gradients in, gradients out, in host memory: what the backward of a CPU op computes with
/// (see [`BackwardOp::backward`], which passes them as device storage).
pub(crate) type Grads = Vec<Option<Vec<f32>>>;

/// The gradients of a node, as the CPU ops compute with them.
pub(crate) fn host_grads(grads: GradStorage) -> Grads {
    grads
        .into_iter()
        .map(|g| g.map(crate::tensor::Storage::into_host))
        .collect()
}

/// CPU gradients, as the graph carries them.
pub(crate) fn storage_grads(grads: Grads) -> GradStorage {
    grads
        .into_iter()
        .map(|g| g.map(crate::tensor::Storage::Cpu))
        .collect()
}

struct FnBackward<F>(F);

impl<F> BackwardOp for FnBackward<F>
where
    F: FnOnce(Grads, &[bool]) -> Result<Grads> + Send + Sync,
{
    fn backward(self: Box<Self>, grads: GradStorage, needs: &[bool]) -> Result<GradStorage> {
        (self.0)(host_grads(grads), needs).map(storage_grads)
    }
}

/// Box a closure as an op's backward.
pub(crate) fn backward_fn<F>(f: F) -> Box<dyn BackwardOp>
where
    F: FnOnce(Grads, &[bool]) -> Result<Grads> + Send + Sync + 'static,
{
    Box::new(FnBackward(f))
}

/// The gradient of a single-output op's output (zeros when none arrived).
pub(crate) fn take_grad(mut grads: Grads, numel: usize) -> Vec<f32> {
    grads.swap_remove(0).unwrap_or_else(|| vec![0.0; numel])
}

/// Check that `dim < ndim`.
pub(crate) fn check_dim(t: &Tensor, dim: usize, op: &str) -> Result<()> {
    if dim >= t.ndim() {
        return Err(Error::invalid(format!(
            "{op}: dimension out of range (expected to be in range of [0, {}], but got {dim})",
            t.ndim().saturating_sub(1)
        )));
    }
    Ok(())
}

/// `(outer, size, inner)` of a shape around `dim`: the tensor viewed as `[outer, size, inner]`.
pub(crate) fn split_at_dim(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    let outer = shape[..dim].iter().product();
    let inner = shape[dim + 1..].iter().product();
    (outer, shape[dim], inner)
}
