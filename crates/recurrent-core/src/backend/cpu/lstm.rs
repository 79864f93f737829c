//! The LSTM cell: its equations, their derivative, and its [`CellKernel`] for the scan.
//!
//! A step multiplies the slice's `h_{t-1}` by `W_hhᵀ` into the gate rows (which hold the input
//! projection), applies the cell, and with `proj_size` projects `m_t` by `W_hrᵀ` into `h_t`.
//! The backward step runs the cell's derivative and multiplies the gate gradients by `W_hh`
//! back to `∂L/∂h_{t-1}`. Shapes use the letters of [`crate::rnn::Steps`].

use super::cell::{
    add_bias, combined_bias, mat_mut, product_input, BackwardStep, CellKernel, ForwardStep,
    RnnWeights, TimeGrads,
};
use super::float::Float;
use super::gemm::{matmul, MatMut, MatRef, Parallelism};
use super::weight_grads::RnnGrads;
use crate::rnn::RnnDims;

/// One LSTM step for one sequence, as PyTorch documents it:
///
/// ```text
/// i  = σ(W_ii x + b_ii + W_hi h + b_hi)
/// f  = σ(W_if x + b_if + W_hf h + b_hf)
/// g  = tanh(W_ig x + b_ig + W_hg h + b_hg)
/// o  = σ(W_io x + b_io + W_ho h + b_ho)
/// c' = f ⊙ c + i ⊙ g
/// m  = o ⊙ tanh(c')
/// h' = m                  (with proj_size: h' = W_hr m, done by the caller as a product)
/// ```
///
/// `gates: [4H]` holds the pre-activations `[i | f | g | o]` without the bias on entry (the
/// bias `b_ih + b_hh` is added here) and the activations on exit; `c: [H]` holds `c` on entry
/// and `c'` on exit; `m: [H]` receives `m`.
#[inline]
pub fn lstm_cell_forward<T: Float>(gates: &mut [T], bias: Option<&[T]>, c: &mut [T], m: &mut [T]) {
    let h = c.len();
    add_bias(gates, bias);
    let (if_, rest) = gates.split_at_mut(2 * h);
    let (gg, go) = rest.split_at_mut(h);
    T::sigmoid_slice(if_);
    T::tanh_slice(gg);
    T::sigmoid_slice(go);
    let (gi, gf) = if_.split_at(h);
    for j in 0..h {
        c[j] = gf[j] * c[j] + gi[j] * gg[j];
        m[j] = c[j];
    }
    T::tanh_slice(m);
    for j in 0..h {
        m[j] *= go[j];
    }
}

/// Backward of one LSTM step for one sequence.
///
/// In: the gate activations `gates: [4H]`, `c_t: [H]` (after the step), `c_prev: [H]`
/// (before it), `dm = ∂L/∂m: [H]`, and `dc = ∂L/∂c_t: [H]` arriving from the next step;
/// `tc: [H]` is scratch. Out: `gates` ← `∂L/∂` of the four pre-activations,
/// `dc` ← `∂L/∂c_prev`.
#[inline]
pub fn lstm_cell_backward<T: Float>(
    gates: &mut [T],
    c_t: &[T],
    c_prev: &[T],
    dm: &[T],
    dc: &mut [T],
    tc: &mut [T],
) {
    let h = c_t.len();
    let one = T::one();
    tc.copy_from_slice(c_t);
    T::tanh_slice(tc);
    let (gi, rest) = gates.split_at_mut(h);
    let (gf, rest) = rest.split_at_mut(h);
    let (gg, go) = rest.split_at_mut(h);
    for j in 0..h {
        let (i, f, g, o) = (gi[j], gf[j], gg[j], go[j]);
        // m = o ⊙ tanh(c_t):  ∂m/∂o = tanh(c_t),  ∂m/∂c_t = o ⊙ (1 − tanh²(c_t))
        let dct = dc[j] + dm[j] * o * (one - tc[j] * tc[j]);
        let d_o = dm[j] * tc[j];
        // c_t = f ⊙ c_prev + i ⊙ g
        let di = dct * g;
        let df = dct * c_prev[j];
        let dg = dct * i;
        dc[j] = dct * f;
        // σ' = σ(1 − σ),  tanh' = 1 − tanh²
        gi[j] = di * i * (one - i);
        gf[j] = df * f * (one - f);
        gg[j] = dg * (one - g * g);
        go[j] = d_o * o * (one - o);
    }
}

/// The LSTM's [`CellKernel`]: made once per call from a layer-direction's weights.
///
/// Kept for the backward: `c_t` (`kept[0]`, `[N, H]`) and, with a projection, `m_t`
/// (`kept[1]`, `[N, H]`). The backward steps write `∂L/∂h_t` into `extra` (`[N, P]`, with a
/// projection) for `dW_hr`.
#[derive(Debug)]
pub struct LstmKernel<'a, T> {
    w: RnnWeights<'a, T>,
    dims: RnnDims,
    /// `b_ih + b_hh`, added by the cell.
    bias: Option<Vec<T>>,
}

impl<'a, T: Float> LstmKernel<'a, T> {
    /// The kernel of a layer-direction with these weights.
    pub fn new(w: RnnWeights<'a, T>, dims: RnnDims) -> Self {
        LstmKernel {
            bias: combined_bias(w.b_ih, w.b_hh),
            w,
            dims,
        }
    }

    fn proj(&self) -> bool {
        self.w.w_hr.is_some()
    }
}

impl<T: Float> CellKernel<T> for LstmKernel<'_, T> {
    /// `[rows, H]`: `m_t` when projecting and not training (training keeps it in `kept[1]`).
    type ForwardScratch = Vec<T>;
    /// `∂L/∂m` (`[rows, H]`, with a projection) and one row of `tanh(c_t)`.
    type BackwardScratch = (Vec<T>, Vec<T>);

    fn weights(&self) -> &RnnWeights<'_, T> {
        &self.w
    }

    fn dims(&self) -> RnnDims {
        self.dims
    }

    fn gate_width(&self) -> usize {
        4 * self.dims.hidden_size
    }

    fn cell_width(&self) -> usize {
        self.dims.hidden_size
    }

    fn kept_widths(&self, training: bool) -> [usize; 2] {
        let h = self.dims.hidden_size;
        match (training, self.proj()) {
            (false, _) => [0, 0],
            (true, false) => [h, 0],
            (true, true) => [h, h],
        }
    }

    fn extra_grad_width(&self) -> usize {
        if self.proj() {
            self.dims.out_size()
        } else {
            0
        }
    }

    fn forward_scratch(&self, rows: usize, training: bool) -> Vec<T> {
        if self.proj() && !training {
            vec![T::zero(); rows * self.dims.hidden_size]
        } else {
            Vec::new()
        }
    }

    fn backward_scratch(&self, rows: usize) -> (Vec<T>, Vec<T>) {
        let h = self.dims.hidden_size;
        let dm = if self.proj() {
            vec![T::zero(); rows * h]
        } else {
            Vec::new()
        };
        (dm, vec![T::zero(); h])
    }

    fn forward_step(&self, s: ForwardStep<'_, T>, m_scratch: &mut Vec<T>) {
        let (h, p) = (self.dims.hidden_size, self.dims.out_size());
        let g = 4 * h;
        let n = s.rows(p);
        let ForwardStep {
            gates,
            h: h_rows,
            c,
            h_masked,
            kept: [c_kept, m_kept],
            par,
        } = s;
        // gates += h_{t-1} · W_hhᵀ   (h_{t-1} ⊙ mask with variational dropout)
        let w_hh_t = MatRef::new(self.w.w_hh, g, p).t();
        matmul(
            mat_mut(gates, n, g),
            product_input(h_rows, h_masked, n, p),
            w_hh_t,
            true,
            par,
        );
        // The cell on every row; m_t goes to h_t directly, or with a projection to the kept
        // rows (training) or scratch, and then h_t = m_t · W_hrᵀ.
        let cells = |m_rows: &mut [T], gates: &mut [T], c: &mut [T], c_kept: &mut [T]| {
            for i in 0..n {
                let ci = &mut c[i * h..(i + 1) * h];
                lstm_cell_forward(
                    &mut gates[i * g..(i + 1) * g],
                    self.bias.as_deref(),
                    ci,
                    &mut m_rows[i * h..(i + 1) * h],
                );
                if !c_kept.is_empty() {
                    c_kept[i * h..(i + 1) * h].copy_from_slice(ci);
                }
            }
        };
        match self.w.w_hr {
            None => cells(h_rows, gates, c, c_kept),
            Some(w_hr) => {
                let m_rows: &mut [T] = if m_kept.is_empty() {
                    &mut m_scratch[..n * h]
                } else {
                    m_kept
                };
                cells(m_rows, gates, c, c_kept);
                // h = m · W_hrᵀ
                matmul(
                    MatMut::new(h_rows, n, p),
                    MatRef::new(m_rows, n, h),
                    MatRef::new(w_hr, p, h).t(),
                    false,
                    par,
                );
            }
        }
    }

    fn backward_step(&self, s: BackwardStep<'_, T>, scratch: &mut (Vec<T>, Vec<T>)) {
        let (h, p) = (self.dims.hidden_size, self.dims.out_size());
        let g = 4 * h;
        let BackwardStep {
            rows,
            gates,
            dh,
            dc,
            extra,
            kept: [c_all, _],
            c0,
            mask,
            par,
            ..
        } = s;
        let n = rows.n;
        let (dm, tc) = scratch;
        if let Some(w_hr) = self.w.w_hr {
            // h = m · W_hrᵀ  ⇒  ∂L/∂m = ∂L/∂h · W_hr (and ∂L/∂h_t is kept for dW_hr)
            extra.copy_from_slice(dh);
            matmul(
                mat_mut(&mut dm[..n * h], n, h),
                MatRef::new(dh, n, p),
                MatRef::new(w_hr, p, h),
                false,
                par,
            );
        }
        for i in 0..n {
            let r = rows.base + i;
            let c_prev = match rows.prev(i) {
                Ok(q) => &c_all[q * h..(q + 1) * h],
                Err(row) => &c0[row * h..(row + 1) * h],
            };
            let dmi = if self.proj() {
                &dm[i * h..(i + 1) * h]
            } else {
                &dh[i * p..(i + 1) * p]
            };
            lstm_cell_backward(
                &mut gates[i * g..(i + 1) * g],
                &c_all[r * h..(r + 1) * h],
                c_prev,
                dmi,
                &mut dc[i * h..(i + 1) * h],
                tc,
            );
        }
        // ∂L/∂h_{t-1} = ∂L/∂gates · W_hh   (⊙ mask: h_{t-1} entered the product masked)
        matmul(
            mat_mut(dh, n, p),
            MatRef::new(gates, n, g),
            MatRef::new(self.w.w_hh, g, p),
            false,
            par,
        );
        if let Some(mask) = mask {
            for (d, &k) in dh.iter_mut().zip(mask) {
                *d *= k;
            }
        }
    }

    fn extra_weight_grads(&self, grads: &mut RnnGrads<'_, T>, time: &TimeGrads<T>) {
        if let Some(dw) = grads.w_hr.as_deref_mut() {
            let (h, p) = (self.dims.hidden_size, self.dims.out_size());
            let n = time.extra.len() / p;
            // dW_hr += dHᵀ · M   [P, N] · [N, H]
            matmul(
                MatMut::new(dw, p, h),
                MatRef::new(&time.extra, n, p).t(),
                MatRef::new(&time.kept[1], n, h),
                true,
                Parallelism::Auto,
            );
        }
    }
}
