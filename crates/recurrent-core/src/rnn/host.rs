//! One recurrent layer (one or two directions) on host memory: its forward pass and its
//! backward pass through time, over plain slices, generic over `f32` and `f64`.
//!
//! This is what the autograd op ([`crate::ops::rnn`]) runs on CPU tensors, and what the Python
//! package runs on torch's buffers. The caller owns every buffer; shapes are in
//! [`LayerArgs`], [`layer_forward`] and [`layer_backward`].
//!
//! ```
//! use recurrent_core::rnn::host::{layer_forward, LayerArgs, RnnWeights};
//! use recurrent_core::rnn::{RnnDims, RnnMode, Steps};
//! // A GRU layer, input 2 → hidden 3, over a batch of 2 sequences of lengths 2 and 1.
//! let steps = Steps::new(&[2, 1]).unwrap();
//! let dims = RnnDims { input_size: 2, hidden_size: 3, proj_size: 0 };
//! let (w_ih, w_hh) = (vec![0.1f32; 9 * 2], vec![0.1f32; 9 * 3]);
//! let w = [RnnWeights { w_ih: &w_ih, w_hh: &w_hh, b_ih: None, b_hh: None, w_hr: None, h_mask: None }];
//! let (x, h0) = (vec![1.0f32; 3 * 2], vec![0.0f32; 2 * 3]);
//! let args = LayerArgs { mode: RnnMode::Gru, dims, steps: &steps, x: &x, h0: &h0, c0: &[], weights: &w };
//! let (mut out, mut h_n) = (vec![0.0f32; 3 * 3], vec![0.0f32; 2 * 3]);
//! let saved = layer_forward(&mut out, &mut h_n, &mut [], &args, false);
//! assert!(saved.is_none()); // inference keeps nothing
//! // Packed rows: step 0 holds both sequences (rows 0, 1), step 1 the first (row 2).
//! assert_eq!(&h_n[..3], &out[6..]); // the first sequence ends at step 1,
//! assert_eq!(&h_n[3..], &out[3..6]); // the second at step 0
//! ```

pub use crate::backend::cpu::cell::RnnWeights;
pub use crate::backend::cpu::layer::{
    layer_backward, layer_forward, LayerArgs, LayerGrads, LayerSaved,
};
pub use crate::backend::cpu::weight_grads::RnnGrads;

use super::Steps;

/// How many batch slices the CPU kernels cut a layer-direction's batch into, with the threads
/// of the current rayon pool and `directions` directions in the layer (each slice is carried
/// through time by one thread).
///
/// ```
/// use recurrent_core::rnn::{host, Steps};
/// let steps = Steps::full(5, 3).unwrap();
/// assert_eq!(host::batch_slices(&steps, 1), 1); // 3 rows: too few to split
/// ```
pub fn batch_slices(steps: &Steps, directions: usize) -> usize {
    use crate::backend::cpu::{layer, scan};
    scan::batch_slices(
        steps,
        layer::slices_per_direction(directions),
        scan::MIN_SLICE_ROWS,
    )
    .len()
}
