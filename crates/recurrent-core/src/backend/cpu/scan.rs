//! The one time loop of every recurrent kernel: a layer-direction is a scan of a cell over
//! time. The scan owns the packed time structure, the split of the batch into slices that
//! threads carry through all timesteps, the state, gate and output buffers, the state masks
//! of variational dropout and the gradients that arrive from the output; the cell
//! ([`CellKernel`]) supplies its step math. After the reverse loop, [`weight_grads`] makes the
//! input and weight gradients one product each (see [`super::weight_grads`]).
//!
//! Shapes use the letters of [`crate::rnn::Steps`]; `D` is not involved here (one direction).

use super::cell::{BackwardStep, CellKernel, ForwardStep, OutRows, Saved, StepRows, TimeGrads};
use super::denormal;
use super::float::Float;
use super::gemm::{matmul, MatMut, MatRef, Parallelism};
use super::rows::{masked_rows, transposed_ld, RowBlock, RowsRef, TransposedRows};
use super::weight_grads::{
    input_and_weight_grads, prev_rows, GateGrads, LayerInput, PrevRows, RnnGrads,
};
use crate::rnn::Steps;
use rayon::prelude::*;

/// Rows per batch slice below which splitting the recurrence across threads does not pay.
pub const MIN_SLICE_ROWS: usize = 8;

/// Split the batch into at most `max_slices` contiguous row ranges of roughly equal work
/// (active rows summed over steps), each at least `min_rows` rows unless the batch is
/// smaller. Each range is carried through all timesteps by one thread: no per-step
/// synchronisation.
pub fn batch_slices(steps: &Steps, max_slices: usize, min_rows: usize) -> Vec<(usize, usize)> {
    let b = steps.batch();
    let n = max_slices.min(b / min_rows.max(1)).max(1);
    if n == 1 {
        return vec![(0, b)];
    }
    let work: Vec<usize> = (0..b).map(|r| steps.length_of(r)).collect();
    let total: usize = work.iter().sum();
    let mut out = Vec::with_capacity(n);
    let (mut start, mut acc) = (0, 0);
    for (r, w) in work.iter().enumerate() {
        acc += w;
        let k = out.len() + 1;
        let rows_left = b - (r + 1);
        let slices_left = n - k;
        if k < n
            && acc * n >= total * k
            && r + 1 - start >= min_rows.min(b)
            && rows_left >= slices_left
        {
            out.push((start, r + 1));
            start = r + 1;
        }
    }
    if start < b {
        out.push((start, b));
    }
    out
}

/// The parallelism of the per-step products: when the batch is carried by one slice but more
/// threads were allowed (`max_slices > 1`, a batch too small to split), the product itself may
/// use them; inside a slice it runs on the slice's own thread.
pub fn step_parallelism(slices: &[(usize, usize)], max_slices: usize) -> Parallelism {
    if slices.len() == 1 && max_slices > 1 {
        Parallelism::Auto
    } else {
        Parallelism::Sequential
    }
}

/// Run `f(lo, hi)` for every slice, in parallel when there are several.
pub fn for_each_slice(slices: &[(usize, usize)], f: impl Fn(usize, usize) + Sync) {
    if slices.len() == 1 {
        f(slices[0].0, slices[0].1);
    } else if super::parallel::is_sequential() {
        slices.iter().for_each(|&(lo, hi)| f(lo, hi));
    } else {
        slices.par_iter().for_each(|&(lo, hi)| {
            super::denormal::ensure();
            f(lo, hi)
        });
    }
}

/// Whether inference makes the input product in the steps (`W_ih x` together with `W_hh h`,
/// one pass over the tile) rather than as one product up front: when every slice keeps its
/// tiles full. With fewer rows, streaming `W_ih` through the cache at every step costs more
/// than the `[N, G]` buffer saves (see `docs/step-kernels.md`).
/// `RECURRENT_FUSE_INPUT=0` or `1` forces the choice, for measurements.
fn fuse_input(steps: &Steps, slices: &[(usize, usize)]) -> bool {
    static FORCED: std::sync::OnceLock<Option<bool>> = std::sync::OnceLock::new();
    let forced = *FORCED.get_or_init(|| match std::env::var("RECURRENT_FUSE_INPUT").as_deref() {
        Ok("0") => Some(false),
        Ok("1") => Some(true),
        _ => None,
    });
    forced.unwrap_or_else(|| {
        let smallest = slices.iter().map(|&(lo, hi)| hi - lo).min().unwrap_or(0);
        smallest >= FUSE_MIN_ROWS && steps.batch() >= FUSE_MIN_ROWS
    })
}

/// Rows per slice from which inference fuses the input product into the steps.
pub const FUSE_MIN_ROWS: usize = 8;

/// The input projection of all timesteps as one product: `[N, G] = X · W_ihᵀ`.
///
/// The biases are not added here: the cells add them while the row is in cache (adding them
/// here cost a pass over the `[N, G]` buffer and made the product accumulate into memory,
/// 35% slower at the imdb shape).
pub fn input_projection<T: Float>(x: MatRef<'_, T>, w_ih: &[T], gate_width: usize) -> Vec<T> {
    let n = x.rows();
    let mut gates = vec![T::zero(); n * gate_width];
    matmul(
        MatMut::new(&mut gates, n, gate_width),
        x,
        MatRef::new(w_ih, gate_width, x.cols()).t(),
        false,
        Parallelism::Auto,
    );
    gates
}

/// Forward of one layer-direction over a packed batch.
///
/// ```text
/// out:  [N, P] column block of the layer output (written)
/// h_n:  [B, P], c_n: [B, H] (written: each sequence's state after its last step; c_n is
///       empty for a cell without a cell state)
/// x:    [N, I];  h0: [B, P];  c0: [B, H]
/// ```
///
/// With `training`, returns what [`backward`] needs; without, keeps nothing. `reverse` runs
/// the sequence from its last step to its first; `max_slices` bounds how many threads carry
/// batch slices through time.
#[allow(clippy::too_many_arguments)]
pub fn forward<T: Float, K: CellKernel<T>>(
    cell: &K,
    out: &RowBlock<'_, T>,
    h_n: &mut [T],
    c_n: &mut [T],
    x: MatRef<'_, T>,
    h0: &[T],
    c0: &[T],
    steps: &Steps,
    reverse: bool,
    max_slices: usize,
    training: bool,
) -> Option<Saved<T>> {
    denormal::ensure();
    let dims = cell.dims();
    let (p, g, cw) = (dims.out_size(), cell.gate_width(), cell.cell_width());
    let n_rows = steps.total();
    debug_assert_eq!(x.rows(), n_rows);
    debug_assert_eq!((out.rows(), out.width()), (n_rows, p));
    debug_assert_eq!((h_n.len(), c_n.len()), (h0.len(), c0.len()));
    let mask = cell.weights().h_mask;
    let slices = batch_slices(steps, max_slices, MIN_SLICE_ROWS);
    // In inference a cell that can makes the input product in its steps: no [N, G] buffer.
    let fuse = !training && cell.fuses_input() && fuse_input(steps, &slices);
    let mut gates = if fuse {
        Vec::new()
    } else {
        input_projection(x, cell.weights().w_ih, g)
    };
    h_n.copy_from_slice(h0);
    c_n.copy_from_slice(c0);
    let widths = cell.kept_widths(training);
    let mut kept: [Vec<T>; 2] = widths.map(|w| vec![T::zero(); n_rows * w]);
    {
        let gates_b = RowBlock::new(&mut gates, g);
        let h_b = RowBlock::new(h_n, p);
        let c_b = RowBlock::new(c_n, cw);
        let [k0, k1] = &mut kept;
        let kept_b = [RowBlock::new(k0, widths[0]), RowBlock::new(k1, widths[1])];
        let par = step_parallelism(&slices, max_slices);
        for_each_slice(&slices, |lo, hi| {
            let mut scratch = cell.forward_scratch(hi - lo, training);
            let mut hm = if mask.is_some() {
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
                    let h_masked = mask.map(|m| {
                        masked_rows(&mut hm, &h_b, m, lo, n);
                        &hm[..n * p]
                    });
                    cell.forward_step(
                        ForwardStep {
                            gates: if fuse {
                                &mut []
                            } else {
                                gates_b.rows_slice_mut(base, n)
                            },
                            x: fuse.then(|| x.sub(base, n, 0, x.cols())),
                            h: h_b.rows_slice(lo, n),
                            out: OutRows {
                                ptr: out.row_ptr(base),
                                ld: out.ld(),
                            },
                            c: c_b.rows_slice_mut(lo, n),
                            h_masked,
                            kept: [
                                kept_b[0].rows_slice_mut(base, n),
                                kept_b[1].rows_slice_mut(base, n),
                            ],
                            training,
                            par,
                        },
                        &mut scratch,
                    );
                    // h_t is the next step's state
                    for i in 0..n {
                        h_b.row_mut(lo + i).copy_from_slice(out.row(base + i));
                    }
                }
            }
        });
    }
    training.then_some(Saved { gates, kept })
}

/// The reverse loop of one layer-direction's backward pass.
///
/// ```text
/// dh0: [B, P], dc0: [B, H]   written: ∂L/∂h_0, ∂L/∂c_0 (dc0 empty without a cell state)
/// dout: [N, P] column block of ∂L/∂output (None: zero)
/// dh_n: [B, P], dc_n: [B, H] (None: zero)
/// out:  [N, P] the forward's output (h_{t-1} of every row that has a previous step)
/// ```
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Float, K: CellKernel<T>>(
    cell: &K,
    dh0: &mut [T],
    dc0: &mut [T],
    dout: Option<&RowsRef<'_, T>>,
    dh_n: Option<&[T]>,
    dc_n: Option<&[T]>,
    saved: Saved<T>,
    out: &RowsRef<'_, T>,
    h0: &[T],
    c0: &[T],
    steps: &Steps,
    reverse: bool,
    max_slices: usize,
) -> TimeGrads<T> {
    denormal::ensure();
    let dims = cell.dims();
    let (p, g, cw) = (dims.out_size(), cell.gate_width(), cell.cell_width());
    let n_rows = steps.total();
    let mask = cell.weights().h_mask;
    let Saved { mut gates, kept } = saved;
    debug_assert_eq!(gates.len(), n_rows * g);
    match dh_n {
        Some(d) => dh0.copy_from_slice(d),
        None => dh0.fill(T::zero()),
    }
    match dc_n {
        Some(d) => dc0.copy_from_slice(d),
        None => dc0.fill(T::zero()),
    }
    let ew = cell.extra_grad_width();
    let mut extra = vec![T::zero(); n_rows * ew];
    let mut dgates_t = if cell.wants_dgates_transposed() {
        vec![T::zero(); transposed_ld(n_rows) * g]
    } else {
        Vec::new()
    };
    {
        let gates_b = RowBlock::new(&mut gates, g);
        let dh_b = RowBlock::new(dh0, p);
        let dc_b = RowBlock::new(dc0, cw);
        let extra_b = RowBlock::new(&mut extra, ew);
        let dg_t = (!dgates_t.is_empty()).then(|| TransposedRows::new(&mut dgates_t, n_rows, g));
        let kept_r = [&kept[0][..], &kept[1][..]];
        let slices = batch_slices(steps, max_slices, MIN_SLICE_ROWS);
        let par = step_parallelism(&slices, max_slices);
        for_each_slice(&slices, |lo, hi| {
            let mut scratch = cell.backward_scratch(hi - lo);
            for t in steps.order(reverse).rev() {
                let top = hi.min(steps.batch_size(t));
                if top <= lo {
                    continue;
                }
                let n = top - lo;
                let base = steps.offset(t) + lo;
                // SAFETY: as in the forward pass, slices own disjoint rows; `out` and the kept
                // buffers are only read, and a row's previous row is its own sequence's.
                unsafe {
                    // ∂L/∂h_t = (from step t+1) + (from the output at t)
                    if let Some(dout) = dout {
                        for i in 0..n {
                            for (a, &d) in dh_b.row_mut(lo + i).iter_mut().zip(dout.row(base + i)) {
                                *a += d;
                            }
                        }
                    }
                    cell.backward_step(
                        BackwardStep {
                            rows: StepRows {
                                steps,
                                t,
                                lo,
                                base,
                                n,
                                reverse,
                            },
                            gates: gates_b.rows_slice_mut(base, n),
                            dh: dh_b.rows_slice_mut(lo, n),
                            dc: dc_b.rows_slice_mut(lo, n),
                            extra: extra_b.rows_slice_mut(base, n),
                            kept: kept_r,
                            out,
                            h0,
                            c0,
                            mask: mask.map(|m| &m[lo * p..(lo + n) * p]),
                            par,
                        },
                        &mut scratch,
                    );
                    if let Some(dg_t) = &dg_t {
                        // dGᵀ for the weight gradients, while the rows are in cache
                        dg_t.write_rows(base, n, gates_b.rows_slice(base, n), g);
                    }
                }
            }
        });
    }
    TimeGrads {
        dgates: gates,
        dgates_t,
        extra,
        kept,
    }
}

/// The products after the reverse loop: `dX += dG · W_ih`, `dW_ih`, `dW_hh`, the bias
/// gradients, and the cell's own (see [`super::weight_grads::input_and_weight_grads`]).
///
/// `out` is this direction's column block of the layer output (for `H_prev`), `h0: [B, P]`.
#[allow(clippy::too_many_arguments)]
pub fn weight_grads<T: Float, K: CellKernel<T>>(
    cell: &K,
    dx: Option<&mut [T]>,
    grads: &mut RnnGrads<'_, T>,
    time: &TimeGrads<T>,
    x: &LayerInput<'_, T>,
    out: &RowsRef<'_, T>,
    h0: &[T],
    steps: &Steps,
    reverse: bool,
) {
    denormal::ensure();
    let w = cell.weights();
    let prev = if grads.w_hh.is_some() {
        prev_rows(out, h0, steps, reverse, w.h_mask)
    } else {
        PrevRows::Gathered(Vec::new())
    };
    let gg = GateGrads {
        dgx: &time.dgates,
        dgx_t: (!time.dgates_t.is_empty()).then_some(&time.dgates_t[..]),
        dgh_tail: cell.hidden_tail().map(|k| (k, &time.extra[..])),
    };
    input_and_weight_grads(dx, grads, &gg, x, &prev, w, cell.gate_width());
    cell.extra_weight_grads(grads, time);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_batch_and_balance_work() {
        let s = Steps::full(10, 64).unwrap();
        assert_eq!(batch_slices(&s, 2, 8), vec![(0, 32), (32, 64)]);
        assert_eq!(batch_slices(&s, 4, 32), vec![(0, 32), (32, 64)]);
        assert_eq!(batch_slices(&s, 2, 100), vec![(0, 64)]);
        // packed: long sequences first, so the first slice has fewer rows
        let s = Steps::new(&[8, 8, 8, 8, 2, 2, 2, 2]).unwrap();
        let sl = batch_slices(&s, 2, 1);
        assert_eq!(sl.len(), 2);
        assert_eq!(sl[0].0, 0);
        assert_eq!(sl[1].1, 8);
        assert_eq!(sl[0].1, sl[1].0);
        assert!(sl[0].1 < 4, "{sl:?}");
        for b in 1..20 {
            for k in 1..5 {
                let s = Steps::full(3, b).unwrap();
                let sl = batch_slices(&s, k, 1);
                assert_eq!(sl.first().unwrap().0, 0);
                assert_eq!(sl.last().unwrap().1, b);
                assert!(sl.windows(2).all(|w| w[0].1 == w[1].0 && w[0].0 < w[0].1));
            }
        }
    }
}
