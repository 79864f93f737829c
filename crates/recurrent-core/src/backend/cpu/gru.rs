//! The GRU cell: its equations, their derivative, and its [`CellKernel`] for the scan.
//! Exactly PyTorch's GRU, where `b_hn` sits inside the reset gate's product:
//! `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`. Here `P = H` (no projection).

use super::cell::{
    add_masked, forward_product, mat_mut, BackwardStep, CellKernel, ForwardStep, PackedOnce,
    RnnWeights, StepWeight,
};
use super::float::Float;
use super::gemm::{matmul, MatRef};
use super::step::{self, lanes::Lanes, Epilogue, Packed, Rows, StepKernel, Store};
use crate::rnn::RnnDims;

/// One GRU step, as PyTorch documents it, for one row and a block of units (`acc` holds the
/// recurrent products `W_h· h` of the three gates, in lanes):
///
/// ```text
/// r  = σ(W_ir x + b_ir + W_hr h + b_hr)
/// z  = σ(W_iz x + b_iz + W_hz h + b_hz)
/// n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
/// h' = (1 − z) ⊙ n + z ⊙ h
/// ```
///
/// The gate rows hold `W_i· x` (no bias) on entry and, in training, `[r | z | n]` on exit;
/// `W_hn h + b_hn` is kept for the backward pass. `h` here is the unmasked state even under
/// variational dropout (only the product reads it masked).
#[derive(Debug)]
struct GruStep<T> {
    /// `[n, 3H]`.
    gates: *mut T,
    /// `[3H]` each, or null.
    b_ih: *const T,
    b_hh: *const T,
    /// `[n, H]`: `h_{t-1}`.
    h_prev: *const T,
    /// Rows `out_ld` apart: `h_t`.
    out: *mut T,
    out_ld: usize,
    /// `[n, H]` or null: `W_hn h + b_hn`.
    ghn_kept: *mut T,
    hidden: usize,
    training: bool,
}

// SAFETY: the step's rows are its slice's alone; the tiles of one call write disjoint blocks.
unsafe impl<T: Sync> Sync for GruStep<T> {}

impl<T: Float> Epilogue<T> for GruStep<T> {
    #[inline(always)]
    unsafe fn block<V: Lanes<T>>(&self, row: usize, j: usize, n: usize, acc: [V; 4]) {
        let h = self.hidden;
        let x = self.gates.add(row * 3 * h + j);
        let bias = |b: *const T, q: usize| {
            if b.is_null() {
                V::zero()
            } else {
                V::load(b.add(q * h + j), n)
            }
        };
        let input = |q: usize| V::load(x.add(q * h), n) + bias(self.b_ih, q);
        let hidden = |q: usize| acc[q] + bias(self.b_hh, q);
        let r = (input(0) + hidden(0)).sigmoid();
        let z = (input(1) + hidden(1)).sigmoid();
        let ghn = hidden(2);
        let n_gate = (input(2) + r * ghn).tanh();
        let h_prev = V::load(self.h_prev.add(row * h + j), n);
        // (1 − z) ⊙ n + z ⊙ h
        let h_new = n_gate + z * (h_prev - n_gate);
        h_new.store(self.out.add(row * self.out_ld + j), n);
        if self.training {
            r.store(x, n);
            z.store(x.add(h), n);
            n_gate.store(x.add(2 * h), n);
            if !self.ghn_kept.is_null() {
                ghn.store(self.ghn_kept.add(row * h + j), n);
            }
        }
    }
}

/// Backward of one GRU step for one sequence.
///
/// In: `gates: [3H]` the activations `r, z, n`; `ghn: [H]` = `W_hn h + b_hn`; `h_prev: [H]`;
/// `dh = ∂L/∂h': [H]`. Out: `gates` ← `∂L/∂` of the input-side pre-activations
/// (`dGx`), `dgh: [3H]` ← `∂L/∂` of the hidden-side ones (`dGh`), `dh_prev` ← the direct part
/// `dh ⊙ z` of `∂L/∂h` (the caller adds `dGh · W_hh`).
#[inline]
pub fn gru_cell_backward<T: Float>(
    gates: &mut [T],
    ghn: &[T],
    h_prev: &[T],
    dh: &[T],
    dgh: &mut [T],
    dh_prev: &mut [T],
) {
    let hs = h_prev.len();
    let one = T::one();
    let (gr, rest) = gates.split_at_mut(hs);
    let (gz, gn) = rest.split_at_mut(hs);
    let (dhr, rest) = dgh.split_at_mut(hs);
    let (dhz, dhn) = rest.split_at_mut(hs);
    for j in 0..hs {
        let (r, z, n) = (gr[j], gz[j], gn[j]);
        // h' = (1 − z) n + z h
        let dn = dh[j] * (one - z);
        let dz = dh[j] * (h_prev[j] - n);
        dh_prev[j] = dh[j] * z;
        // n = tanh(a_n),  a_n = x_n + r ⊙ ghn
        let dan = dn * (one - n * n);
        let dr = dan * ghn[j];
        // σ' = σ(1 − σ)
        let dar = dr * r * (one - r);
        let daz = dz * z * (one - z);
        (gr[j], gz[j], gn[j]) = (dar, daz, dan);
        (dhr[j], dhz[j], dhn[j]) = (dar, daz, dan * r);
    }
}

/// The GRU's [`CellKernel`]: made once per call from a layer-direction's weights.
///
/// Kept for the backward: `W_hn h_{t-1} + b_hn` (`kept[0]`, `[N, H]`). The hidden side's gate
/// gradient equals the input side's except in the `n` columns, which the backward steps write
/// into `extra` (`[N, H]`, `∂L/∂(W_hn h + b_hn)`).
#[derive(Debug)]
pub struct GruKernel<'a, T> {
    w: RnnWeights<'a, T>,
    dims: RnnDims,
    step: StepKernel,
    /// `W_hhᵀ` by gates, for the forward product.
    w_hh_t: PackedOnce<T>,
    /// `W_hh`, for the backward product.
    w_hh: PackedOnce<T>,
}

impl<'a, T: Float> GruKernel<'a, T> {
    /// The kernel of a layer-direction with these weights, for a call of `steps` steps.
    pub fn new(w: RnnWeights<'a, T>, dims: RnnDims, steps: usize) -> Self {
        Self::with_step(w, dims, T::step_kernel().for_steps(steps))
    }

    /// The same, with the step kernel chosen (the tests compare them).
    pub fn with_step(w: RnnWeights<'a, T>, dims: RnnDims, step: StepKernel) -> Self {
        GruKernel {
            w,
            dims,
            step,
            w_hh_t: PackedOnce::new(),
            w_hh: PackedOnce::new(),
        }
    }
}

/// Per-slice buffers of the backward steps.
#[derive(Debug)]
pub struct GruBackwardScratch<T> {
    /// `[rows, 3H]`: `∂L/∂gh` of the slice's rows at the current step.
    dgh: Vec<T>,
    /// `[H]`: one row's `∂L/∂h_t`.
    dh_t: Vec<T>,
    /// `[rows, H]`: the recurrent product before the state mask (the GEMM path, with
    /// variational dropout).
    rec: Vec<T>,
}

impl<T: Float> CellKernel<T> for GruKernel<'_, T> {
    /// `[rows, 3H]`: `gh = h_{t-1} · W_hhᵀ + b_hh` of the slice's rows.
    type ForwardScratch = Vec<T>;
    type BackwardScratch = GruBackwardScratch<T>;

    fn weights(&self) -> &RnnWeights<'_, T> {
        &self.w
    }

    fn dims(&self) -> RnnDims {
        self.dims
    }

    fn gate_width(&self) -> usize {
        3 * self.dims.hidden_size
    }

    fn kept_widths(&self, training: bool) -> [usize; 2] {
        [if training { self.dims.hidden_size } else { 0 }, 0]
    }

    fn extra_grad_width(&self) -> usize {
        self.dims.hidden_size
    }

    fn hidden_tail(&self) -> Option<usize> {
        Some(2 * self.dims.hidden_size)
    }

    fn forward_scratch(&self, rows: usize, _training: bool) -> Vec<T> {
        match self.step {
            StepKernel::Gemm(_) => vec![T::zero(); rows * 3 * self.dims.hidden_size],
            StepKernel::Packed(_) => Vec::new(),
        }
    }

    fn backward_scratch(&self, rows: usize) -> GruBackwardScratch<T> {
        let h = self.dims.hidden_size;
        GruBackwardScratch {
            dgh: vec![T::zero(); rows * 3 * h],
            dh_t: vec![T::zero(); h],
            rec: match (self.w.h_mask, self.step) {
                (Some(_), StepKernel::Gemm(_)) => vec![T::zero(); rows * h],
                _ => Vec::new(),
            },
        }
    }

    fn forward_step(&self, s: ForwardStep<'_, T>, gh: &mut Vec<T>) {
        let h = self.dims.hidden_size;
        let n = s.rows(h);
        let a = s.product_input();
        let [ghn_kept, _] = s.kept;
        let null = std::ptr::null();
        let epi = GruStep {
            gates: s.gates.as_mut_ptr(),
            b_ih: self.w.b_ih.map_or(null, <[T]>::as_ptr),
            b_hh: self.w.b_hh.map_or(null, <[T]>::as_ptr),
            h_prev: s.h.as_ptr(),
            out: s.out.ptr,
            out_ld: s.out.ld,
            ghn_kept: if ghn_kept.is_empty() {
                std::ptr::null_mut()
            } else {
                ghn_kept.as_mut_ptr()
            },
            hidden: h,
            training: s.training,
        };
        // gh = h_{t-1} · W_hhᵀ   (h_{t-1} ⊙ mask with variational dropout), then the cell
        // SAFETY: the epilogue's pointers cover the step's n rows, which are this slice's.
        unsafe {
            forward_product(
                self.step,
                StepWeight {
                    w: self.w.w_hh,
                    gates: 3,
                    units: h,
                    k: h,
                    packed: &self.w_hh_t,
                },
                a,
                n,
                None,
                gh,
                s.par,
                &epi,
            )
        };
    }

    fn backward_step(&self, s: BackwardStep<'_, T>, scratch: &mut GruBackwardScratch<T>) {
        let h = self.dims.hidden_size;
        let g = 3 * h;
        let BackwardStep {
            rows,
            gates,
            dh,
            extra,
            kept: [ghn, _],
            out,
            h0,
            mask,
            par,
            ..
        } = s;
        let n = rows.n;
        let GruBackwardScratch { dgh, dh_t, rec } = scratch;
        for i in 0..n {
            let r = rows.base + i;
            let h_prev = match rows.prev(i) {
                Ok(q) => out.row(q),
                Err(row) => &h0[row * h..(row + 1) * h],
            };
            dh_t.copy_from_slice(&dh[i * h..(i + 1) * h]);
            gru_cell_backward(
                &mut gates[i * g..(i + 1) * g],
                &ghn[r * h..(r + 1) * h],
                h_prev,
                dh_t,
                &mut dgh[i * g..(i + 1) * g],
                &mut dh[i * h..(i + 1) * h],
            );
            extra[i * h..(i + 1) * h].copy_from_slice(&dgh[i * g + 2 * h..(i + 1) * g]);
        }
        // ∂L/∂h_{t-1} = dh ⊙ z + (∂L/∂gh · W_hh) ⊙ mask
        if let StepKernel::Packed(isa) = self.step {
            let w_hh = self.w_hh.get(|| Packed::direct(isa, self.w.w_hh, g, h));
            // SAFETY: dh is [n, H], dgh [n, 3H]; they do not overlap.
            unsafe {
                step::product(
                    w_hh,
                    Rows::new(dgh, n, g, g),
                    &Store::new(dh.as_mut_ptr(), h, true).masked(mask, h),
                )
            };
            return;
        }
        let dgh_m = MatRef::new(&dgh[..n * g], n, g);
        let w_hh = MatRef::new(self.w.w_hh, g, h);
        match mask {
            None => matmul(mat_mut(dh, n, h), dgh_m, w_hh, true, par),
            Some(mask) => {
                matmul(mat_mut(&mut rec[..n * h], n, h), dgh_m, w_hh, false, par);
                add_masked(dh, &rec[..n * h], mask);
            }
        }
    }
}
