//! The LSTM layer-direction kernel: forward over a whole (packed) sequence batch, and its
//! hand-derived backward through time.
//!
//! Forward: one product `X · W_ihᵀ` for all timesteps, then per step one product
//! `h · W_hhᵀ` (plus `m · W_hrᵀ` with a projection) and the fused cell below. Backward: the
//! reverse loop turns the saved gate activations into gate gradients in place; then `dX`,
//! `dW_ih`, `dW_hh` (and `dW_hr`) are one product each. Shapes use the letters of
//! [`super::scan`]: `N` packed rows, `B` batch, `I` input, `H` hidden, `P` output size.

use super::denormal;
use super::float::Float;
use super::gemm::{matmul, MatRef, Parallelism};
use super::scan::{
    add_bias, combined_bias, for_each_slice, input_and_weight_grads, input_projection, masked_rows,
    prev_rows, step_parallelism, GateGrads, LayerInput, PrevRows, RnnDims, RnnGrads, RnnWeights,
    RowBlock, RowsRef, Steps, MIN_SLICE_ROWS,
};

/// What the backward pass of one LSTM layer-direction needs from its forward pass.
#[derive(Debug, Default)]
pub struct LstmSaved<T> {
    /// `[N, 4H]`: the gate activations `i, f, g, o` of every packed row.
    pub gates: Vec<T>,
    /// `[N, H]`: the cell state `c_t` after every packed row's step.
    pub c: Vec<T>,
    /// `[N, H]`: `m_t = o ⊙ tanh(c_t)` before the projection (empty without `proj_size`).
    pub m: Vec<T>,
}

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

/// Forward of one LSTM layer-direction over a packed batch.
///
/// ```text
/// out:  [N, P] column block of the layer output (written)
/// h_n:  [B, P], c_n: [B, H] (written: each sequence's state after its last step)
/// x:    [N, I];  h0: [B, P];  c0: [B, H]
/// ```
///
/// With `saved`, fills it for [`lstm_backward_time`]; without (inference) nothing is kept.
/// `reverse` runs the sequence from its last step to its first. `max_slices` bounds how
/// many threads carry batch slices through time.
#[allow(clippy::too_many_arguments)]
pub fn lstm_forward<T: Float>(
    out: &RowBlock<'_, T>,
    h_n: &mut [T],
    c_n: &mut [T],
    saved: Option<&mut LstmSaved<T>>,
    x: MatRef<'_, T>,
    h0: &[T],
    c0: &[T],
    w: &RnnWeights<'_, T>,
    dims: RnnDims,
    steps: &Steps,
    reverse: bool,
    max_slices: usize,
) {
    denormal::ensure();
    let (h, p) = (dims.hidden_size, dims.out_size());
    let g = 4 * h;
    let n_rows = steps.total();
    let b = steps.batch();
    debug_assert_eq!(x.rows(), n_rows);
    debug_assert_eq!(
        (h_n.len(), c_n.len(), h0.len(), c0.len()),
        (b * p, b * h, b * p, b * h)
    );
    debug_assert_eq!(out.rows(), n_rows);
    debug_assert_eq!(out.width(), p);
    let saving = saved.is_some();
    let proj = w.w_hr.is_some();

    let bias = combined_bias(w.b_ih, w.b_hh);
    let mut gates = input_projection(x, w.w_ih, g);
    h_n.copy_from_slice(h0);
    c_n.copy_from_slice(c0);
    let mut c_all = if saving {
        vec![T::zero(); n_rows * h]
    } else {
        Vec::new()
    };
    let mut m_all = if saving && proj {
        vec![T::zero(); n_rows * h]
    } else {
        Vec::new()
    };
    {
        let gates_b = RowBlock::new(&mut gates, g);
        let h_b = RowBlock::new(h_n, p);
        let c_b = RowBlock::new(c_n, h);
        let c_all_b = RowBlock::new(&mut c_all, h);
        let m_all_b = RowBlock::new(&mut m_all, h);
        let w_hh_t = MatRef::new(w.w_hh, g, p).t();
        let w_hr_t = w.w_hr.map(|m| MatRef::new(m, p, h).t());
        let slices = steps.slices(max_slices, MIN_SLICE_ROWS);
        let step_par = step_parallelism(&slices, max_slices);
        for_each_slice(&slices, |lo, hi| {
            // Scratch for m when it is not kept: one allocation per call, none per step.
            let mut m_scratch = if proj && !saving {
                vec![T::zero(); (hi - lo) * h]
            } else {
                Vec::new()
            };
            let m_scratch_b = RowBlock::new(&mut m_scratch, h);
            let mut hm = if w.h_mask.is_some() {
                vec![T::zero(); (hi - lo) * p]
            } else {
                Vec::new()
            };
            for t in steps.order(reverse) {
                let top = hi.min(steps.batch_size(t));
                if top <= lo {
                    continue;
                }
                let n = top - lo;
                let base = steps.offset(t) + lo;
                // SAFETY: this slice alone touches rows lo..hi of the state buffers and rows
                // base..base+n of the packed buffers; slices are disjoint.
                unsafe {
                    // gates += h_{t-1} · W_hhᵀ   (h_{t-1} ⊙ mask with variational dropout)
                    let h_in = match w.h_mask {
                        Some(mask) => {
                            masked_rows(&mut hm, &h_b, mask, lo, n);
                            MatRef::new(&hm[..n * p], n, p)
                        }
                        None => h_b.rows_ref(lo, n),
                    };
                    matmul(gates_b.rows_mut(base, n), h_in, w_hh_t, true, step_par);
                    for i in 0..n {
                        let c = c_b.row_mut(lo + i);
                        let m = if !proj {
                            h_b.row_mut(lo + i)
                        } else if saving {
                            m_all_b.row_mut(base + i)
                        } else {
                            m_scratch_b.row_mut(i)
                        };
                        lstm_cell_forward(gates_b.row_mut(base + i), bias.as_deref(), c, m);
                        if saving {
                            c_all_b.row_mut(base + i).copy_from_slice(c);
                        }
                    }
                    if let Some(w_hr_t) = w_hr_t {
                        // h = m · W_hrᵀ
                        let m_rows = if saving {
                            m_all_b.rows_ref(base, n)
                        } else {
                            m_scratch_b.rows_ref(0, n)
                        };
                        matmul(h_b.rows_mut(lo, n), m_rows, w_hr_t, false, step_par);
                    }
                    for i in 0..n {
                        out.row_mut(base + i).copy_from_slice(h_b.row(lo + i));
                    }
                }
            }
        });
    }
    if let Some(s) = saved {
        s.gates = gates;
        s.c = c_all;
        s.m = m_all;
    }
}

/// What the reverse loop leaves for the weight-gradient products.
#[derive(Debug, Default)]
pub struct LstmTimeGrads<T> {
    /// `[N, 4H]`: gradients of the gate pre-activations.
    pub dgates: Vec<T>,
    /// `[N, P]`: total `∂L/∂h_t` of every packed row (kept only with a projection, for `dW_hr`).
    pub dh: Vec<T>,
    /// `[N, H]`: `m_t` (moved from the saved state; only with a projection).
    pub m: Vec<T>,
}

/// The reverse loop of the LSTM backward pass for one layer-direction.
///
/// ```text
/// dh0: [B, P], dc0: [B, H]   written: ∂L/∂h_0, ∂L/∂c_0
/// dout: [N, P] column block of ∂L/∂output (None: zero)
/// dh_n: [B, P], dc_n: [B, H] (None: zero)
/// ```
#[allow(clippy::too_many_arguments)]
pub fn lstm_backward_time<T: Float>(
    dh0: &mut [T],
    dc0: &mut [T],
    dout: Option<&RowsRef<'_, T>>,
    dh_n: Option<&[T]>,
    dc_n: Option<&[T]>,
    saved: LstmSaved<T>,
    c0: &[T],
    w: &RnnWeights<'_, T>,
    dims: RnnDims,
    steps: &Steps,
    reverse: bool,
    max_slices: usize,
) -> LstmTimeGrads<T> {
    denormal::ensure();
    let (h, p) = (dims.hidden_size, dims.out_size());
    let g = 4 * h;
    let n_rows = steps.total();
    let proj = w.w_hr.is_some();
    let LstmSaved { mut gates, c, m } = saved;
    debug_assert_eq!(gates.len(), n_rows * g);
    match dh_n {
        Some(d) => dh0.copy_from_slice(d),
        None => dh0.fill(T::zero()),
    }
    match dc_n {
        Some(d) => dc0.copy_from_slice(d),
        None => dc0.fill(T::zero()),
    }
    let mut dh_all = if proj {
        vec![T::zero(); n_rows * p]
    } else {
        Vec::new()
    };
    {
        let gates_b = RowBlock::new(&mut gates, g);
        let dh_b = RowBlock::new(dh0, p);
        let dc_b = RowBlock::new(dc0, h);
        let dh_all_b = RowBlock::new(&mut dh_all, p);
        let w_hh = MatRef::new(w.w_hh, g, p);
        let w_hr = w.w_hr.map(|m| MatRef::new(m, p, h));
        let slices = steps.slices(max_slices, MIN_SLICE_ROWS);
        let step_par = step_parallelism(&slices, max_slices);
        for_each_slice(&slices, |lo, hi| {
            let mut dm_scratch = if proj {
                vec![T::zero(); (hi - lo) * h]
            } else {
                Vec::new()
            };
            let dm_b = RowBlock::new(&mut dm_scratch, h);
            let mut tc = vec![T::zero(); h];
            for t in steps.order(reverse).rev() {
                let top = hi.min(steps.batch_size(t));
                if top <= lo {
                    continue;
                }
                let n = top - lo;
                let base = steps.offset(t) + lo;
                // SAFETY: as in the forward pass, slices own disjoint rows.
                unsafe {
                    // ∂L/∂h_t = (from the output at t) + (from step t+1 through W_hh)
                    if let Some(dout) = dout {
                        for i in 0..n {
                            for (a, &d) in dh_b.row_mut(lo + i).iter_mut().zip(dout.row(base + i)) {
                                *a += d;
                            }
                        }
                    }
                    if let Some(w_hr) = w_hr {
                        // h = m · W_hrᵀ  ⇒  ∂L/∂m = ∂L/∂h · W_hr
                        for i in 0..n {
                            dh_all_b.row_mut(base + i).copy_from_slice(dh_b.row(lo + i));
                        }
                        matmul(
                            dm_b.rows_mut(0, n),
                            dh_b.rows_ref(lo, n),
                            w_hr,
                            false,
                            step_par,
                        );
                    }
                    for i in 0..n {
                        let r = base + i;
                        let c_prev = match steps.prev_row(t, lo + i, reverse) {
                            Some(q) => &c[q * h..(q + 1) * h],
                            None => &c0[(lo + i) * h..(lo + i + 1) * h],
                        };
                        let dm = if proj { dm_b.row(i) } else { dh_b.row(lo + i) };
                        lstm_cell_backward(
                            gates_b.row_mut(r),
                            &c[r * h..(r + 1) * h],
                            c_prev,
                            dm,
                            dc_b.row_mut(lo + i),
                            &mut tc,
                        );
                    }
                    // ∂L/∂h_{t-1} = ∂L/∂gates · W_hh
                    matmul(
                        dh_b.rows_mut(lo, n),
                        gates_b.rows_ref(base, n),
                        w_hh,
                        false,
                        step_par,
                    );
                    if let Some(mask) = w.h_mask {
                        // h_{t-1} entered the product as h_{t-1} ⊙ mask
                        for i in 0..n {
                            let r = lo + i;
                            for (d, &k) in dh_b.row_mut(r).iter_mut().zip(&mask[r * p..(r + 1) * p])
                            {
                                *d *= k;
                            }
                        }
                    }
                }
            }
        });
    }
    LstmTimeGrads {
        dgates: gates,
        dh: dh_all,
        m,
    }
}

/// The products after the reverse loop: `dX += dG · W_ih`, `dW_ih += dGᵀ X`,
/// `dW_hh += dGᵀ H_prev`, `dW_hr += dHᵀ M`, and the bias sums.
///
/// `out` is this direction's column block of the layer output (for `H_prev`), `h0: [B, P]`.
#[allow(clippy::too_many_arguments)]
pub fn lstm_backward_weights<T: Float>(
    dx: Option<&mut [T]>,
    grads: &mut RnnGrads<'_, T>,
    time: &LstmTimeGrads<T>,
    x: &LayerInput<'_, T>,
    out: &RowsRef<'_, T>,
    h0: &[T],
    w: &RnnWeights<'_, T>,
    dims: RnnDims,
    steps: &Steps,
    reverse: bool,
) {
    denormal::ensure();
    let (h, p) = (dims.hidden_size, dims.out_size());
    let prev = if grads.w_hh.is_some() {
        prev_rows(out, h0, steps, reverse, w.h_mask)
    } else {
        PrevRows::Gathered(Vec::new())
    };
    let gg = GateGrads {
        dgx: &time.dgates,
        dgx_t: None,
        dgh_tail: None,
    };
    input_and_weight_grads(dx, grads, &gg, x, &prev, w, 4 * h);
    if let Some(dw) = grads.w_hr.as_deref_mut() {
        let n = steps.total();
        // dW_hr += dHᵀ · M   [P, N] · [N, H]
        matmul(
            super::gemm::MatMut::new(dw, p, h),
            MatRef::new(&time.dh, n, p).t(),
            MatRef::new(&time.m, n, h),
            true,
            Parallelism::Auto,
        );
    }
}
