//! The seam between the time loop and a cell's math: [`CellKernel`].
//!
//! A layer-direction is a scan of a cell over time (PyTorch's own factoring). The scan
//! ([`super::scan`]) owns the packed time loop, the batch slices and their threads, the state
//! and gate buffers, the output, dropout masks on the state and the gradients that arrive from
//! the output. A cell kind supplies only what is its own: for the rows of one batch slice at
//! one step, the recurrent product and the cell equations ([`CellKernel::forward_step`]), their
//! derivative ([`CellKernel::backward_step`]), and any weight gradient beyond the common ones.
//! A kernel value is made once per call from the layer's weights, so whatever its steps need
//! prepared (transposed views, a summed bias) is prepared once.
//!
//! Adding a cell kind: a file with its equations and a `CellKernel` impl, a variant of
//! [`crate::rnn::RnnMode`], and its line in [`super::layer::with_kernel`].

use super::float::Float;
use super::gemm::{matmul, MatMut, MatRef, Parallelism};
use super::rows::RowsRef;
use super::step::{self, Epilogue, Packed, Rows, StepKernel};
use super::weight_grads::RnnGrads;
use crate::rnn::{RnnDims, Steps};
use std::sync::OnceLock;

/// The parameters of one layer-direction, in PyTorch's layout.
#[derive(Clone, Copy, Debug)]
pub struct RnnWeights<'a, T> {
    /// `weight_ih`: `[G, I]`.
    pub w_ih: &'a [T],
    /// `weight_hh`: `[G, P]`.
    pub w_hh: &'a [T],
    /// `bias_ih`: `[G]`.
    pub b_ih: Option<&'a [T]>,
    /// `bias_hh`: `[G]`.
    pub b_hh: Option<&'a [T]>,
    /// `weight_hr` (LSTM projection): `[P, H]`.
    pub w_hr: Option<&'a [T]>,
    /// Variational dropout on the recurrent input: `[B, P]`, one mask row per sequence, the
    /// same at every step. The product with `W_hh` then reads `h_{t-1} ⊙ mask` (the GRU's
    /// direct `z ⊙ h_{t-1}` term keeps the unmasked state).
    pub h_mask: Option<&'a [T]>,
}

/// The sum of two optional bias vectors.
pub fn combined_bias<T: Float>(a: Option<&[T]>, b: Option<&[T]>) -> Option<Vec<T>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.iter().zip(b).map(|(&x, &y)| x + y).collect()),
        (Some(a), None) | (None, Some(a)) => Some(a.to_vec()),
        (None, None) => None,
    }
}

/// `dst += src ⊙ mask`, row by row (a state mask applied to the recurrent product's part of
/// `∂L/∂h_{t-1}`).
#[inline]
pub fn add_masked<T: Float>(dst: &mut [T], src: &[T], mask: &[T]) {
    for ((d, &v), &k) in dst.iter_mut().zip(src).zip(mask) {
        *d += v * k;
    }
}

/// What the forward pass of one layer-direction keeps for its backward pass.
#[derive(Debug, Default, Clone)]
pub struct Saved<T> {
    /// `[N, G]`: the gate activations of every packed row.
    pub gates: Vec<T>,
    /// Up to two more per-row buffers, `[N, w]` for the widths of
    /// [`CellKernel::kept_widths`], whose meaning is the cell's (LSTM: `c_t` and `m_t`; GRU:
    /// `W_hn h_{t-1} + b_hn`).
    pub kept: [Vec<T>; 2],
}

impl<T> Saved<T> {
    /// Elements held.
    pub fn elements(&self) -> usize {
        self.gates.len() + self.kept.iter().map(Vec::len).sum::<usize>()
    }
}

/// What the reverse loop of one layer-direction leaves for the weight gradients.
#[derive(Debug, Default)]
pub struct TimeGrads<T> {
    /// `[N, G]`: `∂L/∂` of the gate pre-activations (the input side).
    pub dgates: Vec<T>,
    /// `[G, transposed_ld(N)]`: `dgatesᵀ`, written by the loop when the cell wants it
    /// ([`CellKernel::wants_dgates_transposed`]); empty otherwise.
    pub dgates_t: Vec<T>,
    /// `[N, w]` for [`CellKernel::extra_grad_width`]: what the cell's steps wrote for its own
    /// weight gradients (LSTM with a projection: `∂L/∂h_t`; GRU: `∂L/∂(W_hn h + b_hn)`).
    pub extra: Vec<T>,
    /// The forward's kept buffers, handed on (the LSTM projection's gradient reads `m_t`).
    pub kept: [Vec<T>; 2],
}

/// Rows `ld` elements apart where a step writes `h_t`: this step's rows of the layer output
/// (a column block of `[N, D·P]` in a bidirectional layer).
#[derive(Clone, Copy, Debug)]
pub struct OutRows<T> {
    /// The first row.
    pub ptr: *mut T,
    /// Elements from one row to the next.
    pub ld: usize,
}

// SAFETY: the scan hands each step rows that no other thread touches during the step.
unsafe impl<T: Send> Send for OutRows<T> {}

impl<T> OutRows<T> {
    /// Row `i`, `width` elements.
    ///
    /// # Safety
    /// Row `i` is one of the step's rows, and no other reference to it exists.
    #[cfg(test)]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn row(&self, i: usize, width: usize) -> &mut [T] {
        std::slice::from_raw_parts_mut(self.ptr.add(i * self.ld), width)
    }
}

/// One step of the forward pass for the `n` rows of a batch slice.
#[derive(Debug)]
pub struct ForwardStep<'a, T> {
    /// `[n, G]`: the rows' input projections `W_ih x` (no bias) in; in training, the gate
    /// activations out. Empty when the cell makes the input product itself (`x`).
    pub gates: &'a mut [T],
    /// `[n, I]`: the rows' inputs, when the scan left the input product to the step
    /// ([`CellKernel::fuses_input`]; inference only).
    pub x: Option<MatRef<'a, T>>,
    /// `[n, P]`: `h_{t-1}`.
    pub h: &'a [T],
    /// `[n, P]` at `ld` apart: where `h_t` goes (the scan makes it the next step's state).
    pub out: OutRows<T>,
    /// `[n, H]` for a cell with a cell state: `c_{t-1}` in, `c_t` out; empty otherwise.
    pub c: &'a mut [T],
    /// `[n, P]`: `h_{t-1} ⊙ mask` under variational dropout on the state; `None`: the product
    /// reads `h` itself.
    pub h_masked: Option<&'a [T]>,
    /// `[n, w]` rows of the kept buffers, to write (empty when not training or of width 0).
    pub kept: [&'a mut [T]; 2],
    /// Whether the backward pass will run: the gate activations must be kept.
    pub training: bool,
    /// Whether the step's products may use the thread pool (the GEMM path).
    pub par: Parallelism,
}

impl<'a, T> ForwardStep<'a, T> {
    /// The rows in the step.
    pub fn rows(&self, out_size: usize) -> usize {
        self.h.len() / out_size.max(1)
    }

    /// The left operand of the recurrent product: `h_{t-1}`, masked under state dropout.
    pub fn product_input(&self) -> &'a [T] {
        self.h_masked.unwrap_or(self.h)
    }
}

/// Where the rows of a step are: which step, and which state rows and packed rows.
#[derive(Clone, Copy, Debug)]
pub struct StepRows<'a> {
    /// The time structure.
    pub steps: &'a Steps,
    /// The step.
    pub t: usize,
    /// The first state row (sequence) of the slice.
    pub lo: usize,
    /// The first packed row of the step's rows.
    pub base: usize,
    /// Rows in the step.
    pub n: usize,
    /// Whether the direction runs from the last step to the first.
    pub reverse: bool,
}

impl StepRows<'_> {
    /// For row `i` of the step: the packed row that held its state before this step, or
    /// `Err(state row)` when it started from the initial state.
    #[inline]
    pub fn prev(&self, i: usize) -> Result<usize, usize> {
        self.steps
            .prev_row(self.t, self.lo + i, self.reverse)
            .ok_or(self.lo + i)
    }
}

/// One step of the backward pass (through time) for the `n` rows of a batch slice.
#[derive(Debug)]
pub struct BackwardStep<'a, T> {
    /// Where the rows are.
    pub rows: StepRows<'a>,
    /// `[n, G]`: the gate activations in; `∂L/∂` of the input-side pre-activations out.
    pub gates: &'a mut [T],
    /// `[n, P]`: `∂L/∂h_t` in (what came back from step `t + 1` plus what came from the
    /// output at `t`); `∂L/∂h_{t-1}` out.
    pub dh: &'a mut [T],
    /// `[n, H]` for a cell with a cell state: `∂L/∂c_t` in, `∂L/∂c_{t-1}` out.
    pub dc: &'a mut [T],
    /// `[n, w]` rows of [`TimeGrads::extra`], to write.
    pub extra: &'a mut [T],
    /// The forward's kept buffers, all rows (a step reads its own and its previous rows).
    pub kept: [&'a [T]; 2],
    /// The layer-direction's output, all rows: `h_{t-1}` of a row whose previous step exists.
    pub out: &'a RowsRef<'a, T>,
    /// `[B, P]` and `[B, H]`: the initial states, for rows that start at this step.
    pub h0: &'a [T],
    /// See `h0`.
    pub c0: &'a [T],
    /// `[n, P]` rows of the state mask (variational dropout), which scales the recurrent
    /// product's part of `∂L/∂h_{t-1}`.
    pub mask: Option<&'a [T]>,
    /// Whether the step's products may use the thread pool.
    pub par: Parallelism,
}

/// A cell kind's math, for the scan. Made once per call from a layer-direction's weights.
pub trait CellKernel<T: Float>: Sync {
    /// Buffers a slice's forward steps reuse (allocated once per call and slice).
    type ForwardScratch: Send;
    /// Buffers a slice's backward steps reuse.
    type BackwardScratch: Send;

    /// The weights the kernel was made from.
    fn weights(&self) -> &RnnWeights<'_, T>;
    /// The layer-direction's sizes.
    fn dims(&self) -> RnnDims;
    /// `G`, gate pre-activations per row (4H LSTM, 3H GRU, H Elman).
    fn gate_width(&self) -> usize;
    /// Width of the cell state `c` (`H` for an LSTM; 0 for cells that carry only `h`).
    fn cell_width(&self) -> usize {
        0
    }
    /// Widths of the per-row buffers the forward keeps beyond the gates ([`Saved::kept`]).
    fn kept_widths(&self, _training: bool) -> [usize; 2] {
        [0, 0]
    }
    /// Width of the per-row buffer the backward steps write ([`TimeGrads::extra`]).
    fn extra_grad_width(&self) -> usize {
        0
    }
    /// Whether the weight gradients take `dGᵀ`, which the scan then writes as it goes.
    fn wants_dgates_transposed(&self) -> bool {
        false
    }
    /// When the hidden side's gate gradient differs from the input side's in its columns
    /// `k..G`: `Some(k)`, and the backward steps write those columns into `extra`.
    fn hidden_tail(&self) -> Option<usize> {
        None
    }

    /// Whether the forward steps can make the input product `W_ih x` themselves, in the same
    /// pass as the recurrent one (then inference needs no `[N, G]` buffer of input
    /// projections).
    fn fuses_input(&self) -> bool {
        false
    }

    /// Scratch for a slice of `rows` rows.
    fn forward_scratch(&self, rows: usize, training: bool) -> Self::ForwardScratch;
    /// Scratch for a slice of `rows` rows.
    fn backward_scratch(&self, rows: usize) -> Self::BackwardScratch;

    /// One forward step: the recurrent product and the cell equations, for `s`'s rows.
    fn forward_step(&self, s: ForwardStep<'_, T>, scratch: &mut Self::ForwardScratch);
    /// One backward step: the cell equations' derivative and the product back to
    /// `∂L/∂h_{t-1}`, for `s`'s rows.
    fn backward_step(&self, s: BackwardStep<'_, T>, scratch: &mut Self::BackwardScratch);
    /// Weight gradients of the cell's own beyond `W_ih`, `W_hh` and the biases (the LSTM's
    /// projection), added into `grads`.
    fn extra_weight_grads(&self, _grads: &mut RnnGrads<'_, T>, _time: &TimeGrads<T>) {}
}

/// A contiguous `[rows, cols]` block as a matrix to write.
#[inline]
pub fn mat_mut<T>(data: &mut [T], rows: usize, cols: usize) -> MatMut<'_, T> {
    MatMut::new(data, rows, cols)
}

/// A weight packed for the step kernels the first time a step needs it (by whichever batch
/// slice gets there first; the others wait for it), then shared by every step of the call.
#[derive(Debug, Default)]
pub struct PackedOnce<T>(OnceLock<Packed<T>>);

impl<T: Float> PackedOnce<T> {
    /// Empty: nothing packed yet.
    pub fn new() -> Self {
        PackedOnce(OnceLock::new())
    }

    /// The packed weight, packing it with `f` on first use.
    pub fn get(&self, f: impl FnOnce() -> Packed<T>) -> &Packed<T> {
        self.0.get_or_init(f)
    }
}

/// A weight of a step product in PyTorch's layout, `W: [gates·units, k]`, with the packing the
/// step kernels read it in (made on first use).
#[derive(Clone, Copy)]
pub struct StepWeight<'a, T> {
    /// The weight as stored.
    pub w: &'a [T],
    /// Gates `G` and units `U` of its `G·U` rows, and `K` columns.
    pub gates: usize,
    /// Units per gate.
    pub units: usize,
    /// Columns (the inner dimension of the product).
    pub k: usize,
    /// Its packing for the packed kernels.
    pub packed: &'a PackedOnce<T>,
}

impl<T: Float> StepWeight<'_, T> {
    fn packed_for(&self, isa: step::Isa) -> &Packed<T> {
        self.packed
            .get(|| Packed::transposed(isa, self.w, self.gates, self.units, self.k))
    }
}

/// A forward step's product with its cell's equations on every tile: `epi` gets
/// `h_{t-1} · W_hhᵀ` for the `n` rows of `a` (`K` apart), plus `x_t · W_ihᵀ` when `x` is
/// given (the fused input product: packed kernels only). With the GEMM path the product goes
/// through the GEMM crate into `buf` (`n·G·U` elements) first.
///
/// # Safety
/// As [`step::product`]: `epi` writes only this step's rows.
#[allow(clippy::too_many_arguments)]
pub unsafe fn forward_product<T: Float, E: Epilogue<T>>(
    kernel: StepKernel,
    hh: StepWeight<'_, T>,
    a: &[T],
    n: usize,
    x: Option<(StepWeight<'_, T>, MatRef<'_, T>)>,
    buf: &mut [T],
    par: Parallelism,
    epi: &E,
) {
    match kernel {
        StepKernel::Packed(isa) => {
            let a = Rows::new(a, n, hh.k, hh.k);
            match x {
                None => step::product(hh.packed_for(isa), a, epi),
                Some((ih, x)) => step::product2(
                    ih.packed_for(isa),
                    Rows::new(x.rows_slice(), n, ih.k, x.row_stride()),
                    hh.packed_for(isa),
                    a,
                    epi,
                ),
            }
        }
        StepKernel::Gemm(isa) => {
            debug_assert!(
                x.is_none(),
                "the GEMM path takes the input product up front"
            );
            let g = hh.gates * hh.units;
            let prod = &mut buf[..n * g];
            matmul(
                mat_mut(prod, n, g),
                MatRef::new(a, n, hh.k),
                MatRef::new(hh.w, g, hh.k).t(),
                false,
                par,
            );
            step::apply(isa, Rows::new(prod, n, g, g), hh.units, hh.gates, epi);
        }
    }
}
