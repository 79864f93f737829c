//! The GRU cell: its equations, their derivative, and its [`CellKernel`] for the scan.
//! Exactly PyTorch's GRU, where `b_hn` sits inside the reset gate's product:
//! `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`. Here `P = H` (no projection).

use super::cell::{
    add_bias, add_masked, mat_mut, product_input, BackwardStep, CellKernel, ForwardStep, RnnWeights,
};
use super::float::Float;
use super::gemm::{matmul, MatRef};
use crate::rnn::RnnDims;

/// One GRU step for one sequence, as PyTorch documents it:
///
/// ```text
/// r  = σ(W_ir x + b_ir + W_hr h + b_hr)
/// z  = σ(W_iz x + b_iz + W_hz h + b_hz)
/// n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
/// h' = (1 − z) ⊙ n + z ⊙ h
/// ```
///
/// `gx: [3H]` holds the input parts `W_i· x` on entry (`b_ih` is added here) and `[r | z | n]`
/// on exit;
/// `gh: [3H]` holds the hidden parts `W_h· h + b_h·`; `h: [H]` holds `h` on entry and `h'` on
/// exit.
#[inline]
pub fn gru_cell_forward<T: Float>(gx: &mut [T], b_ih: Option<&[T]>, gh: &[T], h: &mut [T]) {
    let hs = h.len();
    add_bias(gx, b_ih);
    let one = T::one();
    let (xrz, xn) = gx.split_at_mut(2 * hs);
    let (hrz, hn) = gh.split_at(2 * hs);
    for (a, &b) in xrz.iter_mut().zip(hrz) {
        *a += b;
    }
    T::sigmoid_slice(xrz); // r, z
    let (r, z) = xrz.split_at(hs);
    for j in 0..hs {
        xn[j] += r[j] * hn[j];
    }
    T::tanh_slice(xn); // n
    for j in 0..hs {
        h[j] = (one - z[j]) * xn[j] + z[j] * h[j];
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
}

impl<'a, T: Float> GruKernel<'a, T> {
    /// The kernel of a layer-direction with these weights.
    pub fn new(w: RnnWeights<'a, T>, dims: RnnDims) -> Self {
        GruKernel { w, dims }
    }
}

/// Per-slice buffers of the backward steps.
#[derive(Debug)]
pub struct GruBackwardScratch<T> {
    /// `[rows, 3H]`: `∂L/∂gh` of the slice's rows at the current step.
    dgh: Vec<T>,
    /// `[H]`: one row's `∂L/∂h_t`.
    dh_t: Vec<T>,
    /// `[rows, H]`: the recurrent product before the state mask (with variational dropout).
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
        vec![T::zero(); rows * 3 * self.dims.hidden_size]
    }

    fn backward_scratch(&self, rows: usize) -> GruBackwardScratch<T> {
        let h = self.dims.hidden_size;
        GruBackwardScratch {
            dgh: vec![T::zero(); rows * 3 * h],
            dh_t: vec![T::zero(); h],
            rec: if self.w.h_mask.is_some() {
                vec![T::zero(); rows * h]
            } else {
                Vec::new()
            },
        }
    }

    fn forward_step(&self, s: ForwardStep<'_, T>, gh: &mut Vec<T>) {
        let h = self.dims.hidden_size;
        let g = 3 * h;
        let n = s.rows(h);
        let ForwardStep {
            gates,
            h: h_rows,
            h_masked,
            kept: [ghn_kept, _],
            par,
            ..
        } = s;
        let gh = &mut gh[..n * g];
        // gh = h_{t-1} · W_hhᵀ + b_hh   (h_{t-1} ⊙ mask with variational dropout)
        for row in gh.chunks_exact_mut(g) {
            match self.w.b_hh {
                Some(b) => row.copy_from_slice(b),
                None => row.fill(T::zero()),
            }
        }
        matmul(
            mat_mut(gh, n, g),
            product_input(h_rows, h_masked, n, h),
            MatRef::new(self.w.w_hh, g, h).t(),
            true,
            par,
        );
        for i in 0..n {
            let ghr = &gh[i * g..(i + 1) * g];
            gru_cell_forward(
                &mut gates[i * g..(i + 1) * g],
                self.w.b_ih,
                ghr,
                &mut h_rows[i * h..(i + 1) * h],
            );
            if !ghn_kept.is_empty() {
                ghn_kept[i * h..(i + 1) * h].copy_from_slice(&ghr[2 * h..]);
            }
        }
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
        let dgh_m = MatRef::new(&dgh[..n * g], n, g);
        let w_hh = MatRef::new(self.w.w_hh, g, h);
        // ∂L/∂h_{t-1} = dh ⊙ z + (∂L/∂gh · W_hh) ⊙ mask
        match mask {
            None => matmul(mat_mut(dh, n, h), dgh_m, w_hh, true, par),
            Some(mask) => {
                matmul(mat_mut(&mut rec[..n * h], n, h), dgh_m, w_hh, false, par);
                add_masked(dh, &rec[..n * h], mask);
            }
        }
    }
}
