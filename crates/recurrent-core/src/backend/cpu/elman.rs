//! The Elman RNN cell (`nn.RNN`, tanh or ReLU): its equation, its derivative, and its
//! [`CellKernel`] for the scan. Here `G = P = H`.

use super::cell::{
    add_bias, combined_bias, mat_mut, product_input, BackwardStep, CellKernel, ForwardStep,
    RnnWeights,
};
use super::float::Float;
use super::gemm::{matmul, MatRef};
use crate::rnn::RnnDims;

/// The nonlinearity of an Elman RNN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nonlinearity {
    /// `tanh` (PyTorch's default).
    Tanh,
    /// `relu`.
    Relu,
}

/// One Elman step for one sequence, as PyTorch documents it:
///
/// ```text
/// h' = act(W_ih x + b_ih + W_hh h + b_hh),   act = tanh or relu
/// ```
///
/// `a: [H]` holds the pre-activation without the bias on entry (`b_ih + b_hh` is added here)
/// and `h'` on exit.
#[inline]
pub fn elman_cell_forward<T: Float>(a: &mut [T], bias: Option<&[T]>, act: Nonlinearity) {
    add_bias(a, bias);
    match act {
        Nonlinearity::Tanh => T::tanh_slice(a),
        Nonlinearity::Relu => a.iter_mut().for_each(|v| *v = v.max(T::zero())),
    }
}

/// Backward of one Elman step for one sequence.
///
/// `y: [H]` holds `h'` on entry and `∂L/∂a` on exit (`a` the pre-activation); `dh: [H]` is
/// `∂L/∂h'` (from the next step and from the output).
/// `tanh' = 1 − h'²`; `relu' = 1 where h' > 0, else 0` (PyTorch's convention at 0).
#[inline]
pub fn elman_cell_backward<T: Float>(y: &mut [T], dh: &[T], act: Nonlinearity) {
    let one = T::one();
    for (yj, &d) in y.iter_mut().zip(dh) {
        *yj = match act {
            Nonlinearity::Tanh => d * (one - *yj * *yj),
            Nonlinearity::Relu if *yj > T::zero() => d,
            Nonlinearity::Relu => T::zero(),
        };
    }
}

/// The Elman RNN's [`CellKernel`]: made once per call from a layer-direction's weights. Its
/// gate activations are `h_t` itself, so it keeps nothing else; its weight gradients take
/// `dAᵀ`, the narrowest operand here (`G = H`), written by the scan as it goes.
#[derive(Debug)]
pub struct ElmanKernel<'a, T> {
    w: RnnWeights<'a, T>,
    dims: RnnDims,
    act: Nonlinearity,
    /// `b_ih + b_hh`, added by the cell.
    bias: Option<Vec<T>>,
}

impl<'a, T: Float> ElmanKernel<'a, T> {
    /// The kernel of a layer-direction with these weights and nonlinearity.
    pub fn new(w: RnnWeights<'a, T>, dims: RnnDims, act: Nonlinearity) -> Self {
        ElmanKernel {
            bias: combined_bias(w.b_ih, w.b_hh),
            w,
            dims,
            act,
        }
    }
}

impl<T: Float> CellKernel<T> for ElmanKernel<'_, T> {
    type ForwardScratch = ();
    type BackwardScratch = ();

    fn weights(&self) -> &RnnWeights<'_, T> {
        &self.w
    }

    fn dims(&self) -> RnnDims {
        self.dims
    }

    fn gate_width(&self) -> usize {
        self.dims.hidden_size
    }

    fn wants_dgates_transposed(&self) -> bool {
        true
    }

    fn forward_scratch(&self, _rows: usize, _training: bool) {}

    fn backward_scratch(&self, _rows: usize) {}

    fn forward_step(&self, s: ForwardStep<'_, T>, _: &mut ()) {
        let h = self.dims.hidden_size;
        let n = s.rows(h);
        let ForwardStep {
            gates,
            h: h_rows,
            h_masked,
            par,
            ..
        } = s;
        // a += h_{t-1} · W_hhᵀ   (h_{t-1} ⊙ mask with variational dropout)
        matmul(
            mat_mut(gates, n, h),
            product_input(h_rows, h_masked, n, h),
            MatRef::new(self.w.w_hh, h, h).t(),
            true,
            par,
        );
        for (a, hr) in gates.chunks_exact_mut(h).zip(h_rows.chunks_exact_mut(h)) {
            elman_cell_forward(a, self.bias.as_deref(), self.act);
            hr.copy_from_slice(a);
        }
    }

    fn backward_step(&self, s: BackwardStep<'_, T>, _: &mut ()) {
        let h = self.dims.hidden_size;
        let BackwardStep {
            rows,
            gates,
            dh,
            mask,
            par,
            ..
        } = s;
        let n = rows.n;
        for (a, d) in gates.chunks_exact_mut(h).zip(dh.chunks_exact(h)) {
            elman_cell_backward(a, d, self.act);
        }
        // ∂L/∂h_{t-1} = ∂L/∂a · W_hh   (⊙ mask)
        matmul(
            mat_mut(dh, n, h),
            MatRef::new(gates, n, h),
            MatRef::new(self.w.w_hh, h, h),
            false,
            par,
        );
        if let Some(mask) = mask {
            for (d, &k) in dh.iter_mut().zip(mask) {
                *d *= k;
            }
        }
    }
}
