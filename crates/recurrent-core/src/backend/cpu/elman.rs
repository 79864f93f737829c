//! The Elman RNN cell (`nn.RNN`, tanh or ReLU): its equation, its derivative, and its
//! [`CellKernel`] for the scan. Here `G = P = H`.

use super::cell::{
    combined_bias, forward_product, mat_mut, BackwardStep, CellKernel, ForwardStep, PackedOnce,
    RnnWeights, StepWeight,
};
use super::float::Float;
use super::gemm::{matmul, MatRef};
use super::step::{self, lanes::Lanes, Epilogue, Packed, Rows, StepKernel, Store};
use crate::rnn::RnnDims;

/// The nonlinearity of an Elman RNN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nonlinearity {
    /// `tanh` (PyTorch's default).
    Tanh,
    /// `relu`.
    Relu,
}

/// One Elman step, as PyTorch documents it, for one row and a block of units (`acc[0]` holds
/// the recurrent product `W_hh h`, in lanes):
///
/// ```text
/// h' = act(W_ih x + b_ih + W_hh h + b_hh),   act = tanh or relu
/// ```
///
/// The gate rows hold `W_ih x` (no bias) on entry and, in training, `h'` on exit (the
/// derivative reads it); `bias` is `b_ih + b_hh`.
#[derive(Debug)]
struct ElmanStep<T> {
    /// `[n, H]`, or null when `acc` holds the input product too.
    gates: *mut T,
    /// `[H]` or null.
    bias: *const T,
    /// Rows `out_ld` apart: `h_t`.
    out: *mut T,
    out_ld: usize,
    hidden: usize,
    act: Nonlinearity,
    training: bool,
}

// SAFETY: the step's rows are its slice's alone; the tiles of one call write disjoint blocks.
unsafe impl<T: Sync> Sync for ElmanStep<T> {}

impl<T: Float> Epilogue<T> for ElmanStep<T> {
    #[inline(always)]
    unsafe fn block<V: Lanes<T>>(&self, row: usize, j: usize, n: usize, acc: [V; 4]) {
        // No gate rows: the input product is in `acc` already (inference only).
        let fused = self.gates.is_null();
        let x = if fused {
            self.gates
        } else {
            self.gates.add(row * self.hidden + j)
        };
        let mut a = if fused {
            acc[0]
        } else {
            acc[0] + V::load(x, n)
        };
        if !self.bias.is_null() {
            a = a + V::load(self.bias.add(j), n);
        }
        let h = match self.act {
            Nonlinearity::Tanh => a.tanh(),
            Nonlinearity::Relu => a.relu(),
        };
        h.store(self.out.add(row * self.out_ld + j), n);
        if self.training && !fused {
            h.store(x, n);
        }
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
    step: StepKernel,
    /// `W_ihᵀ` and `W_hhᵀ`, for the forward products.
    w_ih_t: PackedOnce<T>,
    w_hh_t: PackedOnce<T>,
    /// `W_hh`, for the backward product.
    w_hh: PackedOnce<T>,
}

impl<'a, T: Float> ElmanKernel<'a, T> {
    /// The kernel of a layer-direction with these weights and nonlinearity, for a call of
    /// `steps` steps.
    pub fn new(w: RnnWeights<'a, T>, dims: RnnDims, act: Nonlinearity, steps: usize) -> Self {
        Self::with_step(w, dims, act, T::step_kernel().for_steps(steps))
    }

    /// The same, with the step kernel chosen (the tests compare them).
    pub fn with_step(
        w: RnnWeights<'a, T>,
        dims: RnnDims,
        act: Nonlinearity,
        step: StepKernel,
    ) -> Self {
        ElmanKernel {
            bias: combined_bias(w.b_ih, w.b_hh),
            w,
            dims,
            act,
            step,
            w_ih_t: PackedOnce::new(),
            w_hh_t: PackedOnce::new(),
            w_hh: PackedOnce::new(),
        }
    }
}

impl<T: Float> CellKernel<T> for ElmanKernel<'_, T> {
    /// `[rows, H]`: the recurrent product (the GEMM path).
    type ForwardScratch = Vec<T>;
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

    fn fuses_input(&self) -> bool {
        matches!(self.step, StepKernel::Packed(_))
    }

    fn forward_scratch(&self, rows: usize, _training: bool) -> Vec<T> {
        match self.step {
            StepKernel::Gemm(_) => vec![T::zero(); rows * self.dims.hidden_size],
            StepKernel::Packed(_) => Vec::new(),
        }
    }

    fn backward_scratch(&self, _rows: usize) {}

    fn forward_step(&self, s: ForwardStep<'_, T>, gh: &mut Vec<T>) {
        let h = self.dims.hidden_size;
        let n = s.rows(h);
        let a = s.product_input();
        let epi = ElmanStep {
            gates: if s.x.is_some() {
                std::ptr::null_mut()
            } else {
                s.gates.as_mut_ptr()
            },
            bias: self.bias.as_deref().map_or(std::ptr::null(), <[T]>::as_ptr),
            out: s.out.ptr,
            out_ld: s.out.ld,
            hidden: h,
            act: self.act,
            training: s.training,
        };
        // h_t = act(W_ih x + b + h_{t-1} · W_hhᵀ)   (h_{t-1} ⊙ mask with variational dropout)
        let hh = StepWeight {
            w: self.w.w_hh,
            gates: 1,
            units: h,
            k: h,
            packed: &self.w_hh_t,
        };
        let ih = StepWeight {
            w: self.w.w_ih,
            gates: 1,
            units: h,
            k: self.dims.input_size,
            packed: &self.w_ih_t,
        };
        // SAFETY: the epilogue's pointers cover the step's n rows, which are this slice's.
        unsafe { forward_product(self.step, hh, a, n, s.x.map(|x| (ih, x)), gh, s.par, &epi) };
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
        match self.step {
            StepKernel::Packed(isa) => {
                let w_hh = self.w_hh.get(|| Packed::direct(isa, self.w.w_hh, h, h));
                // SAFETY: dh and gates are distinct [n, H] buffers.
                unsafe {
                    step::product(
                        w_hh,
                        Rows::new(gates, n, h, h),
                        &Store::new(dh.as_mut_ptr(), h, false).masked(mask, h),
                    )
                };
            }
            StepKernel::Gemm(_) => {
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
    }
}
