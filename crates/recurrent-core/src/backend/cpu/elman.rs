//! The Elman RNN layer-direction kernel (`nn.RNN`, tanh or ReLU): forward over a whole
//! (packed) sequence batch, and its hand-derived backward through time.
//!
//! Shapes use the letters of [`super::scan`]; here `G = P = H`.

use super::denormal;
use super::float::Float;
use super::gemm::{matmul, MatRef};
use super::scan::{
    add_bias, combined_bias, for_each_slice, input_and_weight_grads, input_projection, masked_rows,
    prev_rows, step_parallelism, transposed_ld, GateGrads, LayerInput, PrevRows, RnnDims, RnnGrads,
    RnnWeights, RowBlock, RowsRef, Steps, TransposedRows, MIN_SLICE_ROWS,
};

/// The nonlinearity of an Elman RNN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nonlinearity {
    /// `tanh` (PyTorch's default).
    Tanh,
    /// `relu`.
    Relu,
}

/// What the backward pass of one Elman layer-direction needs: `[N, H]` activations `h_t`.
#[derive(Debug, Default)]
pub struct ElmanSaved<T> {
    /// `[N, H]`: `h_t` of every packed row.
    pub h: Vec<T>,
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
/// `∂L/∂h'` arriving from the next step, `dout: [H]` from the output at this step.
/// `tanh' = 1 − h'²`; `relu' = 1 where h' > 0, else 0` (PyTorch's convention at 0).
#[inline]
pub fn elman_cell_backward<T: Float>(y: &mut [T], dh: &[T], dout: Option<&[T]>, act: Nonlinearity) {
    let one = T::one();
    for j in 0..y.len() {
        let d = dh[j] + dout.map_or(T::zero(), |o| o[j]);
        y[j] = match act {
            Nonlinearity::Tanh => d * (one - y[j] * y[j]),
            Nonlinearity::Relu if y[j] > T::zero() => d,
            Nonlinearity::Relu => T::zero(),
        };
    }
}

/// Forward of one Elman layer-direction over a packed batch.
///
/// ```text
/// out: [N, H] column block (written);  h_n: [B, H] (written)
/// x: [N, I];  h0: [B, H]
/// ```
#[allow(clippy::too_many_arguments)]
pub fn elman_forward<T: Float>(
    out: &RowBlock<'_, T>,
    h_n: &mut [T],
    saved: Option<&mut ElmanSaved<T>>,
    x: MatRef<'_, T>,
    h0: &[T],
    w: &RnnWeights<'_, T>,
    dims: RnnDims,
    act: Nonlinearity,
    steps: &Steps,
    reverse: bool,
    max_slices: usize,
) {
    denormal::ensure();
    let h = dims.hidden_size;
    debug_assert_eq!(x.rows(), steps.total());
    let bias = combined_bias(w.b_ih, w.b_hh);
    let mut a = input_projection(x, w.w_ih, h);
    h_n.copy_from_slice(h0);
    {
        let a_b = RowBlock::new(&mut a, h);
        let h_b = RowBlock::new(h_n, h);
        let w_hh_t = MatRef::new(w.w_hh, h, h).t();
        let slices = steps.slices(max_slices, MIN_SLICE_ROWS);
        let step_par = step_parallelism(&slices, max_slices);
        for_each_slice(&slices, |lo, hi| {
            let mut hm = if w.h_mask.is_some() {
                vec![T::zero(); (hi - lo) * h]
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
                // SAFETY: slices own disjoint rows of every shared buffer.
                unsafe {
                    // a += h_{t-1} · W_hhᵀ   (h_{t-1} ⊙ mask with variational dropout)
                    let h_in = match w.h_mask {
                        Some(mask) => {
                            masked_rows(&mut hm, &h_b, mask, lo, n);
                            MatRef::new(&hm[..n * h], n, h)
                        }
                        None => h_b.rows_ref(lo, n),
                    };
                    matmul(a_b.rows_mut(base, n), h_in, w_hh_t, true, step_par);
                    for i in 0..n {
                        let row = a_b.row_mut(base + i);
                        elman_cell_forward(row, bias.as_deref(), act);
                        h_b.row_mut(lo + i).copy_from_slice(row);
                        out.row_mut(base + i).copy_from_slice(row);
                    }
                }
            }
        });
    }
    if let Some(s) = saved {
        s.h = a;
    }
}

/// What the Elman reverse loop leaves for the weight-gradient products.
#[derive(Debug, Default)]
pub struct ElmanTimeGrads<T> {
    /// `[N, H]`: `∂L/∂` of the pre-activations.
    pub da: Vec<T>,
    /// `[H, ld]`: its transpose (`ld` = [`transposed_ld`]`(N)`), written during the loop.
    pub da_t: Vec<T>,
}

/// The reverse loop of the Elman backward pass: the gradients of the pre-activations;
/// writes `∂L/∂h_0` into `dh0: [B, H]`.
#[allow(clippy::too_many_arguments)]
pub fn elman_backward_time<T: Float>(
    dh0: &mut [T],
    dout: Option<&RowsRef<'_, T>>,
    dh_n: Option<&[T]>,
    saved: ElmanSaved<T>,
    w: &RnnWeights<'_, T>,
    dims: RnnDims,
    act: Nonlinearity,
    steps: &Steps,
    reverse: bool,
    max_slices: usize,
) -> ElmanTimeGrads<T> {
    denormal::ensure();
    let h = dims.hidden_size;
    let ElmanSaved { h: mut acts } = saved;
    let n_rows = steps.total();
    let mut da_t = vec![T::zero(); transposed_ld(n_rows) * h];
    match dh_n {
        Some(d) => dh0.copy_from_slice(d),
        None => dh0.fill(T::zero()),
    }
    {
        let a_b = RowBlock::new(&mut acts, h);
        let da_tb = TransposedRows::new(&mut da_t, n_rows, h);
        let dh_b = RowBlock::new(dh0, h);
        let w_hh = MatRef::new(w.w_hh, h, h);
        let slices = steps.slices(max_slices, MIN_SLICE_ROWS);
        let step_par = step_parallelism(&slices, max_slices);
        for_each_slice(&slices, |lo, hi| {
            for t in steps.order(reverse).rev() {
                let top = hi.min(steps.batch_size(t));
                if top <= lo {
                    continue;
                }
                let n = top - lo;
                let base = steps.offset(t) + lo;
                // SAFETY: slices own disjoint rows.
                unsafe {
                    for i in 0..n {
                        // ∂L/∂h_t = (from the output at t) + (from step t+1), then through act
                        let dout_row = dout.map(|o| o.row(base + i));
                        elman_cell_backward(a_b.row_mut(base + i), dh_b.row(lo + i), dout_row, act);
                    }
                    // dAᵀ for the weight gradients, while the rows are in cache
                    da_tb.write_rows(base, n, a_b.rows_slice(base, n), h);
                    // ∂L/∂h_{t-1} = ∂L/∂a · W_hh
                    matmul(
                        dh_b.rows_mut(lo, n),
                        a_b.rows_ref(base, n),
                        w_hh,
                        false,
                        step_par,
                    );
                    if let Some(mask) = w.h_mask {
                        for i in 0..n {
                            let r = lo + i;
                            for (d, &k) in dh_b.row_mut(r).iter_mut().zip(&mask[r * h..(r + 1) * h])
                            {
                                *d *= k;
                            }
                        }
                    }
                }
            }
        });
    }
    ElmanTimeGrads { da: acts, da_t }
}

/// The products after the reverse loop (see [`super::scan::input_and_weight_grads`]).
#[allow(clippy::too_many_arguments)]
pub fn elman_backward_weights<T: Float>(
    dx: Option<&mut [T]>,
    grads: &mut RnnGrads<'_, T>,
    time: &ElmanTimeGrads<T>,
    x: &LayerInput<'_, T>,
    out: &RowsRef<'_, T>,
    h0: &[T],
    w: &RnnWeights<'_, T>,
    dims: RnnDims,
    steps: &Steps,
    reverse: bool,
) {
    denormal::ensure();
    let prev = if grads.w_hh.is_some() {
        prev_rows(out, h0, steps, reverse, w.h_mask)
    } else {
        PrevRows::Gathered(Vec::new())
    };
    let gg = GateGrads {
        dgx: &time.da,
        dgx_t: Some(&time.da_t),
        dgh_tail: None,
    };
    input_and_weight_grads(dx, grads, &gg, x, &prev, w, dims.hidden_size);
}
