//! One recurrent layer (one or two directions) over a packed batch, on plain slices: the
//! forward pass and the backward pass through time, generic over the element type.
//!
//! This is the one place that picks a mode's kernels and runs the directions of a layer. The
//! autograd op ([`crate::ops::rnn`]) calls it on `f32` tensors; the Python package calls it
//! on `f32` and `f64` torch buffers. The two directions of a bidirectional layer run in
//! parallel, each on half of the threads of the current rayon pool, and write their halves of
//! the `[N, 2P]` output in place.
//!
//! Shapes use the letters of [`super::scan`], plus `D` directions (1 or 2). Inputs are
//! validated by the callers; here they are `debug_assert`ed.

use super::cell::{RnnWeights, Saved, TimeGrads};
use super::float::Float;
use super::gemm::MatRef;
use super::rows::{RowBlock, RowsRef};
use super::scan;
use super::weight_grads::{LayerInput, RnnGrads};
use crate::rnn::{RnnDims, RnnMode, Steps};

/// Bind `$k` to the kernel of `$mode` made from `$w` and `$dims` for a call of `$steps` steps,
/// and evaluate `$body`: the one
/// place where a recurrence meets its kernel (a new cell kind adds its line here).
macro_rules! with_kernel {
    ($mode:expr, $w:expr, $dims:expr, $steps:expr, |$k:ident| $body:expr) => {
        match $mode {
            $crate::rnn::RnnMode::Lstm => {
                let $k = &$crate::backend::cpu::lstm::LstmKernel::new($w, $dims, $steps);
                $body
            }
            $crate::rnn::RnnMode::Gru => {
                let $k = &$crate::backend::cpu::gru::GruKernel::new($w, $dims, $steps);
                $body
            }
            $crate::rnn::RnnMode::RnnTanh => {
                let $k = &$crate::backend::cpu::elman::ElmanKernel::new(
                    $w,
                    $dims,
                    $crate::backend::cpu::elman::Nonlinearity::Tanh,
                    $steps,
                );
                $body
            }
            $crate::rnn::RnnMode::RnnRelu => {
                let $k = &$crate::backend::cpu::elman::ElmanKernel::new(
                    $w,
                    $dims,
                    $crate::backend::cpu::elman::Nonlinearity::Relu,
                    $steps,
                );
                $body
            }
        }
    };
}

/// One layer's inputs: its mode and sizes, the packed input, the initial states and each
/// direction's weights.
#[derive(Clone, Copy, Debug)]
pub struct LayerArgs<'a, T> {
    /// The recurrence.
    pub mode: RnnMode,
    /// `I`, `H` and the LSTM projection size.
    pub dims: RnnDims,
    /// The time structure of the packed batch.
    pub steps: &'a Steps,
    /// `[N, I]`: the packed input rows.
    pub x: &'a [T],
    /// `[D, B, P]`: the initial hidden state of each direction.
    pub h0: &'a [T],
    /// `[D, B, H]`: the initial cell state (LSTM); empty otherwise.
    pub c0: &'a [T],
    /// One entry per direction; the second runs from the last step to the first.
    pub weights: &'a [RnnWeights<'a, T>],
}

impl<T> LayerArgs<'_, T> {
    fn directions(&self) -> usize {
        self.weights.len()
    }

    fn state_chunks(&self) -> (usize, usize) {
        let b = self.steps.batch();
        let c = if self.mode.has_cell_state() {
            b * self.dims.hidden_size
        } else {
            0
        };
        (b * self.dims.out_size(), c)
    }

    fn check(&self) {
        let d = self.directions();
        let (i, h, p) = (
            self.dims.input_size,
            self.dims.hidden_size,
            self.dims.out_size(),
        );
        let (n, b) = (self.steps.total(), self.steps.batch());
        let g = self.mode.gate_multiplier() * h;
        debug_assert!((1..=2).contains(&d));
        debug_assert_eq!(self.x.len(), n * i);
        debug_assert_eq!(self.h0.len(), d * b * p);
        debug_assert_eq!(self.c0.len(), d * self.state_chunks().1);
        for w in self.weights {
            debug_assert_eq!(w.w_ih.len(), g * i);
            debug_assert_eq!(w.w_hh.len(), g * p);
        }
    }
}

/// What the backward pass of one layer keeps from its forward pass (the gate activations and
/// states of every packed row, per direction). Made by [`layer_forward`] in training,
/// consumed by [`layer_backward`].
#[derive(Debug, Clone)]
pub struct LayerSaved<T> {
    directions: Vec<Saved<T>>,
}

impl<T> LayerSaved<T> {
    /// Bytes held (for memory accounting).
    pub fn bytes(&self) -> usize {
        self.directions.iter().map(Saved::elements).sum::<usize>() * std::mem::size_of::<T>()
    }
}

/// How many threads each direction's recurrence may use (batch slices carried through time
/// by separate threads). `RECURRENT_RNN_SLICES=1` forces one slice, whose per-step product is
/// then split across the threads by the GEMM instead (for measuring the two strategies).
pub(crate) fn slices_per_direction(directions: usize) -> usize {
    let threads = super::parallel::current_threads();
    let forced = std::env::var("RECURRENT_RNN_SLICES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let directions = if directions_in_parallel() {
        directions
    } else {
        1
    };
    forced
        .unwrap_or(threads / directions)
        .clamp(1, threads.max(1))
}

/// Whether the two directions of a bidirectional layer run at the same time (the default) or
/// one after the other with all threads each (`RECURRENT_BIDIR_SERIAL=1`, for measurements).
fn directions_in_parallel() -> bool {
    !matches!(std::env::var("RECURRENT_BIDIR_SERIAL").as_deref(), Ok("1"))
}

/// Run `f(k, a_k, b_k, s_k)` for the directions `k` of a layer, in parallel when there are two
/// and that is allowed; `a` and `b` are split into one chunk per direction.
fn for_each_direction<T: Send, U: Send, S: Send>(
    a: &mut [T],
    b: &mut [U],
    slots: &mut [S],
    f: impl Fn(usize, &mut [T], &mut [U], &mut S) + Sync,
) {
    let d = slots.len();
    let (ca, cb) = (a.len() / d, b.len() / d);
    if d == 2 {
        let (a0, a1) = a.split_at_mut(ca);
        let (b0, b1) = b.split_at_mut(cb);
        let (s0, s1) = slots.split_at_mut(1);
        if directions_in_parallel() {
            super::parallel::join(|| f(0, a0, b0, &mut s0[0]), || f(1, a1, b1, &mut s1[0]));
        } else {
            f(0, a0, b0, &mut s0[0]);
            f(1, a1, b1, &mut s1[0]);
        }
    } else {
        f(0, a, b, &mut slots[0]);
    }
}

/// Forward of one layer.
///
/// ```text
/// out: [N, D*P]  (written: every packed row's hidden state, directions side by side)
/// h_n: [D, B, P] (written: each sequence's state after its own last step)
/// c_n: [D, B, H] (written, LSTM; empty otherwise)
/// ```
///
/// With `training`, returns what [`layer_backward`] needs; without, keeps nothing.
pub fn layer_forward<T: Float>(
    out: &mut [T],
    h_n: &mut [T],
    c_n: &mut [T],
    layer: &LayerArgs<'_, T>,
    training: bool,
) -> Option<LayerSaved<T>> {
    layer.check();
    let d = layer.directions();
    let LayerArgs {
        mode, dims, steps, ..
    } = *layer;
    let (i_size, p) = (dims.input_size, dims.out_size());
    let (n, b) = (steps.total(), steps.batch());
    debug_assert_eq!(out.len(), n * d * p);
    debug_assert_eq!(h_n.len(), d * b * p);
    debug_assert_eq!(c_n.len(), layer.c0.len());
    let max_slices = slices_per_direction(d);
    let (h_chunk, c_chunk) = layer.state_chunks();
    let blocks = RowBlock::split_columns(out, d * p, &vec![p; d]);
    let xm = MatRef::new(layer.x, n, i_size);
    let mut saved: Vec<Option<Saved<T>>> = (0..d).map(|_| None).collect();
    for_each_direction(h_n, c_n, &mut saved, |k, h_n, c_n, slot| {
        let h0 = &layer.h0[k * h_chunk..(k + 1) * h_chunk];
        let c0 = &layer.c0[k * c_chunk..(k + 1) * c_chunk];
        *slot = with_kernel!(mode, layer.weights[k], dims, steps.len(), |kernel| {
            scan::forward(
                kernel,
                &blocks[k],
                h_n,
                c_n,
                xm,
                h0,
                c0,
                steps,
                k == 1,
                max_slices,
                training,
            )
        });
    });
    training.then(|| LayerSaved {
        directions: saved
            .into_iter()
            .map(|s| s.expect("saved in training"))
            .collect(),
    })
}

/// Where the gradients of one layer go.
#[derive(Debug)]
pub struct LayerGrads<'a, T> {
    /// `[N, I]`: `∂L/∂x` is *added* here; `None` when the input needs no gradient.
    pub dx: Option<&'a mut [T]>,
    /// `[D, B, P]`: written with `∂L/∂h_0`.
    pub dh0: &'a mut [T],
    /// `[D, B, H]` (LSTM; empty otherwise): written with `∂L/∂c_0`.
    pub dc0: &'a mut [T],
    /// One entry per direction: each parameter's gradient is *added* to its buffer.
    pub params: Vec<RnnGrads<'a, T>>,
}

/// A direction's saved state going into its reverse loop, and what the loop leaves.
type DirectionSlot<T> = (Option<Saved<T>>, Option<TimeGrads<T>>);

/// Backward of one layer: the reverse loops of both directions (in parallel), then one
/// product per gradient, direction by direction (they share `dx`).
///
/// ```text
/// dout: [N, D*P] (None: no gradient reached the output)
/// dh_n: [D, B, P], dc_n: [D, B, H] (None: zero)
/// out:  [N, D*P] the forward's output (the backward reads h_{t-1} from it)
/// ```
pub fn layer_backward<T: Float>(
    grads: LayerGrads<'_, T>,
    dout: Option<&[T]>,
    dh_n: Option<&[T]>,
    dc_n: Option<&[T]>,
    saved: LayerSaved<T>,
    out: &[T],
    layer: &LayerArgs<'_, T>,
) {
    layer.check();
    let d = layer.directions();
    let LayerArgs {
        mode, dims, steps, ..
    } = *layer;
    let (i_size, p) = (dims.input_size, dims.out_size());
    let n = steps.total();
    let max_slices = slices_per_direction(d);
    let (h_chunk, c_chunk) = layer.state_chunks();
    debug_assert_eq!(saved.directions.len(), d);
    debug_assert_eq!(out.len(), n * d * p);
    let LayerGrads {
        mut dx,
        dh0,
        dc0,
        params,
    } = grads;
    debug_assert_eq!(params.len(), d);
    let out_blocks = RowsRef::split_columns(out, d * p, &vec![p; d]);
    let dout_blocks = dout.map(|g| RowsRef::split_columns(g, d * p, &vec![p; d]));

    // Phase 1: the reverse loops.
    let mut slots: Vec<DirectionSlot<T>> = saved
        .directions
        .into_iter()
        .map(|s| (Some(s), None))
        .collect();
    for_each_direction(dh0, dc0, &mut slots, |k, dh0, dc0, slot| {
        let dout_k = dout_blocks.as_ref().map(|v| &v[k]);
        let dh_n_k = dh_n.map(|g| &g[k * h_chunk..(k + 1) * h_chunk]);
        let dc_n_k = dc_n.map(|g| &g[k * c_chunk..(k + 1) * c_chunk]);
        let h0 = &layer.h0[k * h_chunk..(k + 1) * h_chunk];
        let c0 = &layer.c0[k * c_chunk..(k + 1) * c_chunk];
        let s = slot.0.take().expect("one saved state per direction");
        slot.1 = Some(with_kernel!(
            mode,
            layer.weights[k],
            dims,
            steps.len(),
            |kernel| {
                scan::backward(
                    kernel,
                    dh0,
                    dc0,
                    dout_k,
                    dh_n_k,
                    dc_n_k,
                    s,
                    &out_blocks[k],
                    h0,
                    c0,
                    steps,
                    k == 1,
                    max_slices,
                )
            }
        ));
    });

    // Phase 2: one product per gradient, direction by direction (they share dx).
    let xm = LayerInput::new(MatRef::new(layer.x, n, i_size));
    for (k, (slot, mut rg)) in slots.into_iter().zip(params).enumerate() {
        let h0 = &layer.h0[k * h_chunk..(k + 1) * h_chunk];
        let time = slot.1.expect("reverse loop ran");
        with_kernel!(mode, layer.weights[k], dims, steps.len(), |kernel| {
            scan::weight_grads(
                kernel,
                dx.as_deref_mut(),
                &mut rg,
                &time,
                &xm,
                &out_blocks[k],
                h0,
                steps,
                k == 1,
            )
        });
    }
}
