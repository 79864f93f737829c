//! Reverse-mode automatic differentiation over coarse ops.
//!
//! Every op that records gradients creates one [`Node`] holding its inputs and a
//! `BackwardOp`: the op's saved state plus its hand-written backward. A whole recurrent
//! layer over a whole sequence is one node (see `ops::rnn`), so the graph of a training step
//! has tens of nodes, not tens of thousands.
//!
//! Order: node ids grow with creation and every node's inputs exist before it, so visiting
//! the reachable nodes by decreasing id is a valid reverse topological order. Each node's
//! backward takes its saved state by value, so activations are freed as the pass proceeds
//! (PyTorch's `retain_graph=False`); a second backward through the same graph is an error.
//!
//! Inference: inside [`no_grad`] (or when no input requires gradients) ops record nothing and
//! save nothing.

use crate::error::{Error, Result};
use crate::tensor::{SharedStorage, Storage, Tensor};
use parking_lot::Mutex;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops on this thread record gradients.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Restores the previous gradient mode when dropped. Made by [`no_grad`].
#[must_use = "gradient recording resumes when the guard is dropped"]
pub struct NoGradGuard {
    previous: bool,
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Stop recording gradients on this thread until the guard is dropped (`torch.no_grad()`):
/// ops run in inference mode, with no graph and no saved activations.
///
/// ```
/// use recurrent_core::{autograd, Tensor};
/// let w = Tensor::ones(&[2]).unwrap().requires_grad();
/// {
///     let _g = autograd::no_grad();
///     let y = w.mul_scalar(3.0).unwrap();
///     assert!(!y.requires_grad_flag());
/// }
/// assert!(w.mul_scalar(3.0).unwrap().requires_grad_flag());
/// ```
pub fn no_grad() -> NoGradGuard {
    let previous = GRAD_ENABLED.with(|g| g.replace(false));
    NoGradGuard { previous }
}

/// Whether an op over these inputs must record a node.
pub fn needs_grad(inputs: &[&Tensor]) -> bool {
    is_grad_enabled() && inputs.iter().any(|t| t.requires_grad_flag())
}

/// Gradients as they flow through the graph: one per output or input of a node, `None` for
/// zero, each on its tensor's device.
pub(crate) type GradStorage = Vec<Option<Storage>>;

/// An op's backward: consumes its saved state.
pub(crate) trait BackwardOp: Send + Sync {
    /// `grads[k]` is the gradient of output `k` (`None`: no gradient reached it, i.e. zero).
    /// Returns one entry per input (in the order the op listed its inputs); `needs[i]` says whether
    /// input `i` wants one, and an entry may be `None` when it does not.
    fn backward(self: Box<Self>, grads: GradStorage, needs: &[bool]) -> Result<GradStorage>;
}

/// A recorded op.
pub struct Node {
    id: u64,
    name: &'static str,
    inputs: Vec<Tensor>,
    num_outputs: usize,
    op: Mutex<Option<Box<dyn BackwardOp>>>,
}

impl Node {
    /// The op's name, as PyTorch's `grad_fn` names (`LstmBackward`, `AddmmBackward`...).
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// Where a non-leaf tensor came from: output `index` of `node`.
#[derive(Clone)]
pub struct GradFn {
    pub(crate) node: Arc<Node>,
    pub(crate) index: usize,
}

/// Create the output tensors of an op; when `needs_grad` of the inputs, also the node that
/// links them to `inputs` with `backward`.
pub(crate) fn record(
    name: &'static str,
    inputs: &[&Tensor],
    outputs: Vec<(Vec<f32>, Vec<usize>)>,
    backward: Option<Box<dyn BackwardOp>>,
) -> Vec<Tensor> {
    let outputs = outputs
        .into_iter()
        .map(|(data, shape)| (crate::tensor::shared(data), shape))
        .collect();
    record_shared(name, inputs, outputs, backward)
}

/// [`record`] for outputs whose storage the op already shares with its backward (the
/// recurrent ops keep their output for `h_{t-1}` without copying it).
pub(crate) fn record_shared(
    name: &'static str,
    inputs: &[&Tensor],
    outputs: Vec<(SharedStorage, Vec<usize>)>,
    backward: Option<Box<dyn BackwardOp>>,
) -> Vec<Tensor> {
    match backward {
        Some(op) if needs_grad(inputs) => {
            let node = Arc::new(Node {
                id: crate::tensor::next_id(),
                name,
                inputs: inputs.iter().map(|t| (*t).clone()).collect(),
                num_outputs: outputs.len(),
                op: Mutex::new(Some(op)),
            });
            outputs
                .into_iter()
                .enumerate()
                .map(|(index, (storage, shape))| {
                    Tensor::make(
                        shape,
                        storage,
                        true,
                        Some(GradFn {
                            node: node.clone(),
                            index,
                        }),
                    )
                })
                .collect()
        }
        _ => outputs
            .into_iter()
            .map(|(storage, shape)| Tensor::make(shape, storage, false, None))
            .collect(),
    }
}

/// Single-output form of [`record`].
pub(crate) fn record1(
    name: &'static str,
    inputs: &[&Tensor],
    data: Vec<f32>,
    shape: Vec<usize>,
    backward: Option<Box<dyn BackwardOp>>,
) -> Tensor {
    record(name, inputs, vec![(data, shape)], backward)
        .pop()
        .expect("one output")
}

/// A view that shares the input's storage with a new shape; its gradient is the input's
/// gradient reshaped.
pub(crate) fn record_view(input: &Tensor, shape: Vec<usize>) -> Tensor {
    struct ViewBackward;
    impl BackwardOp for ViewBackward {
        fn backward(
            self: Box<Self>,
            mut grads: GradStorage,
            _needs: &[bool],
        ) -> Result<GradStorage> {
            Ok(vec![grads.pop().flatten()])
        }
    }
    if needs_grad(&[input]) {
        let node = Arc::new(Node {
            id: crate::tensor::next_id(),
            name: "ViewBackward",
            inputs: vec![input.clone()],
            num_outputs: 1,
            op: Mutex::new(Some(Box::new(ViewBackward))),
        });
        Tensor::make(
            shape,
            input.storage().clone(),
            true,
            Some(GradFn { node, index: 0 }),
        )
    } else {
        Tensor::make(shape, input.storage().clone(), false, None)
    }
}

fn add_into(slot: &mut Option<Storage>, g: Storage) {
    match slot {
        Some(acc) => acc.add_assign(&g),
        None => *slot = Some(g),
    }
}

/// Back-propagate from `root` (see [`Tensor::backward`]).
pub(crate) fn backward(root: &Tensor, seed: Option<Storage>) -> Result<()> {
    if !root.requires_grad_flag() {
        return Err(Error::Autograd(
            "element 0 of tensors does not require grad and does not have a grad_fn".into(),
        ));
    }
    let seed = match seed {
        Some(s) => s,
        None if root.numel() == 1 => Storage::Cpu(vec![1.0]),
        None => {
            return Err(Error::Autograd(format!(
                "grad can be implicitly created only for scalar outputs (got shape {:?})",
                root.shape()
            )))
        }
    };
    let Some(root_fn) = root.grad_fn() else {
        root.accumulate_grad(seed);
        return Ok(());
    };

    // Every node reachable from the root, by id.
    let mut nodes: HashMap<u64, Arc<Node>> = HashMap::new();
    let mut stack = vec![root_fn.node.clone()];
    while let Some(n) = stack.pop() {
        if nodes.contains_key(&n.id) {
            continue;
        }
        for t in &n.inputs {
            if let Some(g) = t.grad_fn() {
                if !nodes.contains_key(&g.node.id) {
                    stack.push(g.node.clone());
                }
            }
        }
        nodes.insert(n.id, n);
    }
    let mut order: Vec<u64> = nodes.keys().copied().collect();
    order.sort_unstable_by(|a, b| b.cmp(a));

    let mut pending: HashMap<u64, GradStorage> = HashMap::new();
    let mut root_grads = vec![None; root_fn.node.num_outputs];
    root_grads[root_fn.index] = Some(seed);
    pending.insert(root_fn.node.id, root_grads);

    for id in order {
        let node = &nodes[&id];
        let Some(grads) = pending.remove(&id) else {
            // Reachable but no gradient arrived: nothing to do (its state stays).
            continue;
        };
        let op = node.op.lock().take().ok_or_else(|| {
            Error::Autograd(format!(
                "trying to backward through the graph a second time ({} already freed its saved tensors)",
                node.name
            ))
        })?;
        let needs: Vec<bool> = node.inputs.iter().map(|t| t.requires_grad_flag()).collect();
        let input_grads = op.backward(grads, &needs)?;
        debug_assert_eq!(input_grads.len(), node.inputs.len(), "{}", node.name);
        for ((t, g), need) in node.inputs.iter().zip(input_grads).zip(needs) {
            let Some(g) = g else { continue };
            if !need {
                continue;
            }
            if g.len() != t.numel() {
                return Err(Error::Autograd(format!(
                    "{} returned a gradient of {} elements for an input of shape {:?}",
                    node.name,
                    g.len(),
                    t.shape()
                )));
            }
            match t.grad_fn() {
                Some(gf) => {
                    let slot = pending
                        .entry(gf.node.id)
                        .or_insert_with(|| vec![None; gf.node.num_outputs]);
                    add_into(&mut slot[gf.index], g);
                }
                None => t.accumulate_grad(g),
            }
        }
    }
    Ok(())
}
