//! The GRU layer-direction kernel: forward over a whole (packed) sequence batch, and its
//! hand-derived backward through time. Exactly PyTorch's GRU, where `b_hn` sits inside the
//! reset gate's product: `n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))`.
//!
//! Shapes use the letters of [`super::scan`]; here `P = H` (no projection).

use super::denormal;
use super::float::Float;
use super::gemm::{matmul, MatMut, MatRef};
use super::scan::{
    add_bias, for_each_slice, input_and_weight_grads, input_projection, masked_rows, prev_rows,
    step_parallelism, GateGrads, LayerInput, PrevRows, RnnDims, RnnGrads, RnnWeights, RowBlock,
    RowsRef, Steps, MIN_SLICE_ROWS,
};

/// What the backward pass of one GRU layer-direction needs from its forward pass.
#[derive(Debug, Default)]
pub struct GruSaved<T> {
    /// `[N, 3H]`: the gate activations `r, z, n`.
    pub gates: Vec<T>,
    /// `[N, H]`: `W_hn h_{t-1} + b_hn`, the hidden part of the candidate before the reset gate.
    pub ghn: Vec<T>,
}

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

/// Forward of one GRU layer-direction over a packed batch.
///
/// ```text
/// out: [N, H] column block (written);  h_n: [B, H] (written)
/// x: [N, I];  h0: [B, H]
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gru_forward<T: Float>(
    out: &RowBlock<'_, T>,
    h_n: &mut [T],
    saved: Option<&mut GruSaved<T>>,
    x: MatRef<'_, T>,
    h0: &[T],
    w: &RnnWeights<'_, T>,
    dims: RnnDims,
    steps: &Steps,
    reverse: bool,
    max_slices: usize,
) {
    denormal::ensure();
    let h = dims.hidden_size;
    let g = 3 * h;
    let n_rows = steps.total();
    debug_assert_eq!(x.rows(), n_rows);
    debug_assert_eq!(out.width(), h);
    let saving = saved.is_some();
    let mut gates = input_projection(x, w.w_ih, g);
    h_n.copy_from_slice(h0);
    let mut ghn_all = if saving {
        vec![T::zero(); n_rows * h]
    } else {
        Vec::new()
    };
    {
        let gates_b = RowBlock::new(&mut gates, g);
        let h_b = RowBlock::new(h_n, h);
        let ghn_b = RowBlock::new(&mut ghn_all, h);
        let w_hh_t = MatRef::new(w.w_hh, g, h).t();
        let slices = steps.slices(max_slices, MIN_SLICE_ROWS);
        let step_par = step_parallelism(&slices, max_slices);
        for_each_slice(&slices, |lo, hi| {
            let mut gh = vec![T::zero(); (hi - lo) * g];
            let gh_b = RowBlock::new(&mut gh, g);
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
                    // gh = h_{t-1} · W_hhᵀ + b_hh
                    for i in 0..n {
                        match w.b_hh {
                            Some(b) => gh_b.row_mut(i).copy_from_slice(b),
                            None => gh_b.row_mut(i).fill(T::zero()),
                        }
                    }
                    // (h_{t-1} ⊙ mask with variational dropout)
                    let h_in = match w.h_mask {
                        Some(mask) => {
                            masked_rows(&mut hm, &h_b, mask, lo, n);
                            MatRef::new(&hm[..n * h], n, h)
                        }
                        None => h_b.rows_ref(lo, n),
                    };
                    matmul(gh_b.rows_mut(0, n), h_in, w_hh_t, true, step_par);
                    for i in 0..n {
                        let ghr = gh_b.row(i);
                        gru_cell_forward(
                            gates_b.row_mut(base + i),
                            w.b_ih,
                            ghr,
                            h_b.row_mut(lo + i),
                        );
                        if saving {
                            ghn_b.row_mut(base + i).copy_from_slice(&ghr[2 * h..]);
                        }
                        out.row_mut(base + i).copy_from_slice(h_b.row(lo + i));
                    }
                }
            }
        });
    }
    if let Some(s) = saved {
        s.gates = gates;
        s.ghn = ghn_all;
    }
}

/// What the reverse loop leaves for the weight-gradient products.
#[derive(Debug, Default)]
pub struct GruTimeGrads<T> {
    /// `[N, 3H]`: `∂L/∂` of the input-side pre-activations.
    pub dgx: Vec<T>,
    /// `[N, H]`: `∂L/∂(W_hn h + b_hn)` (`= ∂L/∂a_n ⊙ r`). The hidden side's `r` and `z`
    /// columns equal the input side's.
    pub dghn: Vec<T>,
}

/// The reverse loop of the GRU backward pass for one layer-direction.
///
/// `out` (this direction's output column block) and `h0` give `h_{t-1}`; `dh0: [B, H]` is
/// written with `∂L/∂h_0`.
#[allow(clippy::too_many_arguments)]
pub fn gru_backward_time<T: Float>(
    dh0: &mut [T],
    dout: Option<&RowsRef<'_, T>>,
    dh_n: Option<&[T]>,
    saved: GruSaved<T>,
    out: &RowsRef<'_, T>,
    h0: &[T],
    w: &RnnWeights<'_, T>,
    dims: RnnDims,
    steps: &Steps,
    reverse: bool,
    max_slices: usize,
) -> GruTimeGrads<T> {
    denormal::ensure();
    let h = dims.hidden_size;
    let g = 3 * h;
    let n_rows = steps.total();
    let GruSaved { mut gates, ghn } = saved;
    match dh_n {
        Some(d) => dh0.copy_from_slice(d),
        None => dh0.fill(T::zero()),
    }
    let mut dghn = vec![T::zero(); n_rows * h];
    {
        let gates_b = RowBlock::new(&mut gates, g);
        let dghn_b = RowBlock::new(&mut dghn, h);
        let dh_b = RowBlock::new(dh0, h);
        let w_hh = MatRef::new(w.w_hh, g, h);
        let slices = steps.slices(max_slices, MIN_SLICE_ROWS);
        let step_par = step_parallelism(&slices, max_slices);
        for_each_slice(&slices, |lo, hi| {
            // ∂L/∂gh of the slice's rows at the current step
            let mut dgh = vec![T::zero(); (hi - lo) * g];
            let mut dh_t = vec![T::zero(); h];
            let mut rec = if w.h_mask.is_some() {
                vec![T::zero(); (hi - lo) * h]
            } else {
                Vec::new()
            };
            for t in steps.order(reverse).rev() {
                let top = hi.min(steps.batch_size(t));
                if top <= lo {
                    continue;
                }
                let n = top - lo;
                let base = steps.offset(t) + lo;
                // SAFETY: slices own disjoint rows; `out` is only read.
                unsafe {
                    for i in 0..n {
                        let r = base + i;
                        // ∂L/∂h_t = (from the output at t) + (from step t+1)
                        dh_t.copy_from_slice(dh_b.row(lo + i));
                        if let Some(dout) = dout {
                            for (a, &d) in dh_t.iter_mut().zip(dout.row(r)) {
                                *a += d;
                            }
                        }
                        let h_prev = match steps.prev_row(t, lo + i, reverse) {
                            Some(q) => out.row(q),
                            None => &h0[(lo + i) * h..(lo + i + 1) * h],
                        };
                        gru_cell_backward(
                            gates_b.row_mut(r),
                            &ghn[r * h..(r + 1) * h],
                            h_prev,
                            &dh_t,
                            &mut dgh[i * g..(i + 1) * g],
                            dh_b.row_mut(lo + i),
                        );
                    }
                    for i in 0..n {
                        dghn_b
                            .row_mut(base + i)
                            .copy_from_slice(&dgh[i * g + 2 * h..(i + 1) * g]);
                    }
                    let dgh_m = MatRef::new(&dgh[..n * g], n, g);
                    // ∂L/∂h_{t-1} = dh ⊙ z + (∂L/∂gh · W_hh) ⊙ mask
                    match w.h_mask {
                        None => matmul(dh_b.rows_mut(lo, n), dgh_m, w_hh, true, step_par),
                        Some(mask) => {
                            matmul(
                                MatMut::new(&mut rec[..n * h], n, h),
                                dgh_m,
                                w_hh,
                                false,
                                step_par,
                            );
                            for i in 0..n {
                                let r = lo + i;
                                let src = &rec[i * h..(i + 1) * h];
                                for ((d, &v), &k) in dh_b
                                    .row_mut(r)
                                    .iter_mut()
                                    .zip(src)
                                    .zip(&mask[r * h..(r + 1) * h])
                                {
                                    *d += v * k;
                                }
                            }
                        }
                    }
                }
            }
        });
    }
    GruTimeGrads { dgx: gates, dghn }
}

/// The products after the reverse loop (see [`super::scan::input_and_weight_grads`]).
#[allow(clippy::too_many_arguments)]
pub fn gru_backward_weights<T: Float>(
    dx: Option<&mut [T]>,
    grads: &mut RnnGrads<'_, T>,
    time: &GruTimeGrads<T>,
    x: &LayerInput<'_, T>,
    out: &RowsRef<'_, T>,
    h0: &[T],
    w: &RnnWeights<'_, T>,
    dims: RnnDims,
    steps: &Steps,
    reverse: bool,
) {
    denormal::ensure();
    let h = dims.hidden_size;
    let prev = if grads.w_hh.is_some() {
        prev_rows(out, h0, steps, reverse, w.h_mask)
    } else {
        PrevRows::Gathered(Vec::new())
    };
    let gg = GateGrads {
        dgx: &time.dgx,
        dgx_t: None,
        dgh_tail: Some((2 * h, &time.dghn)),
    };
    input_and_weight_grads(dx, grads, &gg, x, &prev, w, 3 * h);
}
