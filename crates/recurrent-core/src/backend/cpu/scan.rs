//! What the three recurrent kernels (Elman, LSTM, GRU) share: the time structure of a packed
//! batch, the split of the batch into slices that threads carry through all timesteps, and
//! row-block views that let those threads write disjoint rows of one buffer.
//!
//! Layout. Every sequence batch is *packed* (as PyTorch's `PackedSequence`): the rows of
//! step `t` are the `batch_sizes[t]` sequences still running at `t`, stored one after the
//! other, `offsets[t] = batch_sizes[0] + ... + batch_sizes[t-1]`. Sequences are sorted by
//! decreasing length, so the active rows at every step are `0..batch_sizes[t]`. A padded
//! `[T, B, *]` batch is the special case `batch_sizes = [B; T]`, with the same memory layout.
//! Rows that have finished keep their state untouched in the `[B, *]` state buffers, so at
//! the end those buffers hold each sequence's state after its own last step: `h_n`.
//!
//! Names used in the kernel comments: `T` steps, `B` batch (`batch_sizes[0]`), `N` packed rows
//! (`sum(batch_sizes)`), `I` input size, `H` hidden size, `P` output size (the projection size
//! of an LSTM with `proj_size`, else `H`), `G` gate width (`4H` LSTM, `3H` GRU, `H` Elman).

use super::float::Float;
use super::gemm::{matmul, MatMut, MatRef, Parallelism};
use rayon::prelude::*;
use std::marker::PhantomData;

/// The time structure of a packed batch: how many rows are active at each step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Steps {
    batch_sizes: Vec<usize>,
    offsets: Vec<usize>,
    total: usize,
}

impl Steps {
    /// From PyTorch-style `batch_sizes`: non-increasing, positive, at least one step.
    /// Returns `None` when they are not (callers turn that into a user-facing error).
    pub fn new(batch_sizes: &[usize]) -> Option<Steps> {
        if batch_sizes.is_empty() || batch_sizes[0] == 0 {
            return None;
        }
        if batch_sizes.windows(2).any(|w| w[1] > w[0]) || batch_sizes.contains(&0) {
            return None;
        }
        let mut offsets = Vec::with_capacity(batch_sizes.len());
        let mut total = 0;
        for &b in batch_sizes {
            offsets.push(total);
            total += b;
        }
        Some(Steps {
            batch_sizes: batch_sizes.to_vec(),
            offsets,
            total,
        })
    }

    /// `T` steps of a full batch of `B` (a padded batch with no padding).
    pub fn full(steps: usize, batch: usize) -> Option<Steps> {
        Steps::new(&vec![batch; steps])
    }

    /// Number of steps `T`.
    pub fn len(&self) -> usize {
        self.batch_sizes.len()
    }

    /// Always false: a `Steps` has at least one step.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The batch `B`, the number of sequences.
    pub fn batch(&self) -> usize {
        self.batch_sizes[0]
    }

    /// Total packed rows `N`.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Active rows at step `t`.
    #[inline]
    pub fn batch_size(&self, t: usize) -> usize {
        self.batch_sizes[t]
    }

    /// The batch sizes.
    pub fn batch_sizes(&self) -> &[usize] {
        &self.batch_sizes
    }

    /// The first packed row of step `t`.
    #[inline]
    pub fn offset(&self, t: usize) -> usize {
        self.offsets[t]
    }

    /// The steps in processing order: `0..T`, or `T-1..=0` for the reverse direction.
    pub fn order(&self, reverse: bool) -> impl DoubleEndedIterator<Item = usize> + '_ {
        let t = self.len();
        (0..t).map(move |i| if reverse { t - 1 - i } else { i })
    }

    /// The packed row that held sequence `r`'s state before step `t` (in processing order),
    /// or `None` when the state before `t` is the initial state (`h_0[r]`).
    #[inline]
    pub fn prev_row(&self, t: usize, r: usize, reverse: bool) -> Option<usize> {
        if reverse {
            let p = t + 1;
            (p < self.len() && r < self.batch_sizes[p]).then(|| self.offsets[p] + r)
        } else {
            (t > 0).then(|| self.offsets[t - 1] + r)
        }
    }

    /// Number of steps sequence `r` runs for.
    pub fn length_of(&self, r: usize) -> usize {
        self.batch_sizes.partition_point(|&b| b > r)
    }

    /// Split the batch into at most `max_slices` contiguous row ranges of roughly equal work
    /// (active rows summed over steps), each at least `min_rows` rows unless the batch is
    /// smaller. Each range is carried through all timesteps by one thread: no per-step
    /// synchronisation.
    pub fn slices(&self, max_slices: usize, min_rows: usize) -> Vec<(usize, usize)> {
        let b = self.batch();
        let n = max_slices.min(b / min_rows.max(1)).max(1);
        if n == 1 {
            return vec![(0, b)];
        }
        let work: Vec<usize> = (0..b).map(|r| self.length_of(r)).collect();
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
    } else {
        slices.par_iter().for_each(|&(lo, hi)| {
            super::denormal::ensure();
            f(lo, hi)
        });
    }
}

/// A block of `width` columns in a row-major buffer with leading dimension `ld`, shared by
/// threads that each touch only their own rows.
///
/// This is how one direction of a bidirectional layer writes its half of the `[N, 2P]`
/// output while the other direction writes the other half, and how batch slices write their
/// rows of the gate buffers.
pub struct RowBlock<'a, T> {
    ptr: *mut T,
    rows: usize,
    width: usize,
    ld: usize,
    _life: PhantomData<&'a mut [T]>,
}

// SAFETY: access is only through the unsafe row accessors, whose callers promise that no two
// threads touch the same row at once.
unsafe impl<T: Send> Send for RowBlock<'_, T> {}
unsafe impl<T: Send> Sync for RowBlock<'_, T> {}

impl<'a, T> RowBlock<'a, T> {
    /// The whole contiguous buffer as `[rows, width]`.
    pub fn new(data: &'a mut [T], width: usize) -> Self {
        let rows = data.len().checked_div(width).unwrap_or(0);
        assert_eq!(
            rows * width,
            data.len(),
            "buffer is not a whole number of rows"
        );
        RowBlock {
            ptr: data.as_mut_ptr(),
            rows,
            width,
            ld: width,
            _life: PhantomData,
        }
    }

    /// Split the columns of a `[rows, ld]` buffer into disjoint blocks of the given widths.
    pub fn split_columns(data: &'a mut [T], ld: usize, widths: &[usize]) -> Vec<RowBlock<'a, T>> {
        assert_eq!(
            widths.iter().sum::<usize>(),
            ld,
            "column widths must add up to ld"
        );
        let rows = data.len().checked_div(ld).unwrap_or(0);
        assert_eq!(
            rows * ld,
            data.len(),
            "buffer is not a whole number of rows"
        );
        let base = data.as_mut_ptr();
        let mut col = 0;
        widths
            .iter()
            .map(|&w| {
                // SAFETY: col < ld (or w == 0), so the pointer stays inside `data`.
                let ptr = unsafe { base.add(col.min(data.len())) };
                col += w;
                RowBlock {
                    ptr,
                    rows,
                    width: w,
                    ld,
                    _life: PhantomData,
                }
            })
            .collect()
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns in the block.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Distance between rows.
    pub fn ld(&self) -> usize {
        self.ld
    }

    /// Row `r` for reading.
    ///
    /// # Safety
    /// No thread may be writing row `r` at the same time.
    #[inline]
    pub unsafe fn row(&self, r: usize) -> &[T] {
        assert!(r < self.rows);
        std::slice::from_raw_parts(self.ptr.add(r * self.ld), self.width)
    }

    /// Row `r` for writing.
    ///
    /// # Safety
    /// No other reference to row `r` may exist while the returned one lives.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn row_mut(&self, r: usize) -> &mut [T] {
        assert!(r < self.rows);
        std::slice::from_raw_parts_mut(self.ptr.add(r * self.ld), self.width)
    }

    /// Rows `r0..r0 + n` as a strided matrix for a product.
    ///
    /// # Safety
    /// No other reference to those rows may exist while the view lives.
    #[inline]
    pub unsafe fn rows_mut(&self, r0: usize, n: usize) -> super::gemm::MatMut<'_, T> {
        assert!(r0 + n <= self.rows);
        super::gemm::MatMut::from_raw(self.ptr.add(r0 * self.ld), n, self.width, self.ld)
    }

    /// Rows `r0..r0 + n` as a read-only strided matrix.
    ///
    /// # Safety
    /// No thread may be writing those rows while the view lives.
    #[inline]
    pub unsafe fn rows_ref(&self, r0: usize, n: usize) -> super::gemm::MatRef<'_, T> {
        assert!(r0 + n <= self.rows);
        let len = if n == 0 {
            0
        } else {
            (n - 1) * self.ld + self.width
        };
        super::gemm::MatRef::with_ld(
            std::slice::from_raw_parts(self.ptr.add(r0 * self.ld), len),
            n,
            self.width,
            self.ld,
        )
    }
}

/// A read-only block of `width` columns in a row-major buffer with leading dimension `ld`
/// (one direction's half of a bidirectional output, or of its gradient).
#[derive(Clone, Copy, Debug)]
pub struct RowsRef<'a, T> {
    data: &'a [T],
    col: usize,
    width: usize,
    ld: usize,
}

impl<'a, T> RowsRef<'a, T> {
    /// The whole contiguous buffer as `[rows, width]`.
    pub fn new(data: &'a [T], width: usize) -> Self {
        RowsRef {
            data,
            col: 0,
            width,
            ld: width,
        }
    }

    /// Split the columns of a `[rows, ld]` buffer into blocks of the given widths.
    pub fn split_columns(data: &'a [T], ld: usize, widths: &[usize]) -> Vec<RowsRef<'a, T>> {
        assert_eq!(
            widths.iter().sum::<usize>(),
            ld,
            "column widths must add up to ld"
        );
        let mut col = 0;
        widths
            .iter()
            .map(|&width| {
                let r = RowsRef {
                    data,
                    col,
                    width,
                    ld,
                };
                col += width;
                r
            })
            .collect()
    }

    /// Row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> &'a [T] {
        let s = r * self.ld + self.col;
        &self.data[s..s + self.width]
    }

    /// Columns in the block.
    pub fn width(&self) -> usize {
        self.width
    }
}

/// Copy the previous hidden state of every packed row into a contiguous `[N, P]` matrix:
/// the `h_{t-1}` that step `t` multiplied by `W_hh`, taken from the layer output (`out`, a
/// column block) or from `h0` where the sequence starts. Used for `dW_hh` as one product.
pub fn gather_prev<T: Float>(
    out: &RowsRef<'_, T>,
    h0: &[T],
    steps: &Steps,
    reverse: bool,
) -> Vec<T> {
    let p = out.width();
    let mut prev = vec![T::zero(); steps.total() * p];
    for t in 0..steps.len() {
        let base = steps.offset(t);
        for r in 0..steps.batch_size(t) {
            let dst = &mut prev[(base + r) * p..(base + r + 1) * p];
            match steps.prev_row(t, r, reverse) {
                Some(q) => dst.copy_from_slice(out.row(q)),
                None => dst.copy_from_slice(&h0[r * p..(r + 1) * p]),
            }
        }
    }
    prev
}

/// Sum the rows of a `[N, G]` matrix into `acc: [G]` (bias gradients).
pub fn add_column_sums<T: Float>(acc: &mut [T], m: &[T]) {
    let g = acc.len();
    if g == 0 {
        return;
    }
    for row in m.chunks_exact(g) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
}

/// Rows per batch slice below which splitting the recurrence across threads does not pay.
pub const MIN_SLICE_ROWS: usize = 8;

/// Sizes of one recurrent layer-direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnnDims {
    /// `I`, features per input row.
    pub input_size: usize,
    /// `H`, the hidden (and cell) size.
    pub hidden_size: usize,
    /// LSTM `proj_size`; 0 for none.
    pub proj_size: usize,
}

impl RnnDims {
    /// `P`, the size of `h` (and of each output row): `proj_size` if set, else `H`.
    pub fn out_size(&self) -> usize {
        if self.proj_size > 0 {
            self.proj_size
        } else {
            self.hidden_size
        }
    }
}

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

/// `dst[i] = src[i] ⊙ mask[i]` for rows `lo..lo + n` of a `[B, P]` state and mask, into `[n, P]`.
#[inline]
pub fn masked_rows<T: Float>(
    dst: &mut [T],
    src: &RowBlock<'_, T>,
    mask: &[T],
    lo: usize,
    n: usize,
) {
    let p = src.width();
    for i in 0..n {
        // SAFETY: callers own rows lo..lo + n of `src` (their batch slice).
        let row = unsafe { src.row(lo + i) };
        for ((d, &s), &m) in dst[i * p..(i + 1) * p]
            .iter_mut()
            .zip(row)
            .zip(&mask[(lo + i) * p..(lo + i + 1) * p])
        {
            *d = s * m;
        }
    }
}

/// Multiply every packed row `(t, r)` of `[N, P]` by mask row `r` (for `H_prev ⊙ mask`).
pub fn mask_packed_rows<T: Float>(m: &mut [T], mask: &[T], steps: &Steps) {
    let p = mask.len() / steps.batch();
    for t in 0..steps.len() {
        let base = steps.offset(t);
        for r in 0..steps.batch_size(t) {
            for (v, &k) in m[(base + r) * p..(base + r + 1) * p]
                .iter_mut()
                .zip(&mask[r * p..(r + 1) * p])
            {
                *v *= k;
            }
        }
    }
}

/// Gradient buffers of one layer-direction's parameters. Kernels *add* into them; a `None`
/// buffer is not computed.
#[derive(Debug, Default)]
pub struct RnnGrads<'a, T> {
    /// `[G, I]`.
    pub w_ih: Option<&'a mut [T]>,
    /// `[G, P]`.
    pub w_hh: Option<&'a mut [T]>,
    /// `[G]`.
    pub b_ih: Option<&'a mut [T]>,
    /// `[G]`.
    pub b_hh: Option<&'a mut [T]>,
    /// `[P, H]`.
    pub w_hr: Option<&'a mut [T]>,
}

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

/// `row += bias` when there is one.
#[inline]
pub fn add_bias<T: Float>(row: &mut [T], bias: Option<&[T]>) {
    if let Some(b) = bias {
        for (r, &v) in row.iter_mut().zip(b) {
            *r += v;
        }
    }
}

/// The sum of two optional bias vectors.
pub fn combined_bias<T: Float>(a: Option<&[T]>, b: Option<&[T]>) -> Option<Vec<T>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.iter().zip(b).map(|(&x, &y)| x + y).collect()),
        (Some(a), None) | (None, Some(a)) => Some(a.to_vec()),
        (None, None) => None,
    }
}

/// After the reverse loop, everything that is one product over all timesteps:
///
/// ```text
/// dX    += dGx · W_ih        [N, I]
/// dW_ih += dGxᵀ · X          [G, I]
/// dW_hh += dGhᵀ · Hprev      [G, P]
/// db_ih += Σ_rows dGx        [G]
/// db_hh += Σ_rows dGh        [G]
/// ```
///
/// `dgx` is the gradient of the gates' input part, `dgh` of their hidden part; they are the
/// same matrix except for the GRU (where `b_hn` and `W_hn h` sit inside `r ⊙ (...)`).
#[allow(clippy::too_many_arguments)]
pub fn input_and_weight_grads<T: Float>(
    dx: Option<&mut [T]>,
    grads: &mut RnnGrads<'_, T>,
    dgx: &[T],
    dgh: &[T],
    x: MatRef<'_, T>,
    hprev: &[T],
    w: &RnnWeights<'_, T>,
    gate_width: usize,
    out_size: usize,
) {
    let (n, i_size, g) = (x.rows(), x.cols(), gate_width);
    let dgx_m = MatRef::new(dgx, n, g);
    let dgh_m = MatRef::new(dgh, n, g);
    if let Some(dx) = dx {
        matmul(
            MatMut::new(dx, n, i_size),
            dgx_m,
            MatRef::new(w.w_ih, g, i_size),
            true,
            Parallelism::Auto,
        );
    }
    if let Some(dw) = grads.w_ih.as_deref_mut() {
        matmul(
            MatMut::new(dw, g, i_size),
            dgx_m.t(),
            x,
            true,
            Parallelism::Auto,
        );
    }
    if let Some(dw) = grads.w_hh.as_deref_mut() {
        matmul(
            MatMut::new(dw, g, out_size),
            dgh_m.t(),
            MatRef::new(hprev, n, out_size),
            true,
            Parallelism::Auto,
        );
    }
    if let Some(db) = grads.b_ih.as_deref_mut() {
        add_column_sums(db, dgx);
    }
    if let Some(db) = grads.b_hh.as_deref_mut() {
        add_column_sums(db, dgh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_of_a_packed_batch() {
        let s = Steps::new(&[3, 2, 2, 1]).unwrap();
        assert_eq!((s.len(), s.batch(), s.total()), (4, 3, 8));
        assert_eq!(
            (0..4).map(|t| s.offset(t)).collect::<Vec<_>>(),
            vec![0, 3, 5, 7]
        );
        assert_eq!(
            (0..3).map(|r| s.length_of(r)).collect::<Vec<_>>(),
            vec![4, 3, 1]
        );
        assert_eq!(s.prev_row(0, 1, false), None);
        assert_eq!(s.prev_row(2, 1, false), Some(4));
        // reverse: sequence 2 (length 1) starts at t=0 from h0
        assert_eq!(s.prev_row(0, 2, true), None);
        assert_eq!(s.prev_row(0, 1, true), Some(4));
        assert_eq!(s.prev_row(3, 0, true), None);
        assert_eq!(s.order(true).collect::<Vec<_>>(), vec![3, 2, 1, 0]);
        assert!(Steps::new(&[2, 3]).is_none());
        assert!(Steps::new(&[2, 0]).is_none());
        assert!(Steps::new(&[]).is_none());
    }

    #[test]
    fn slices_cover_the_batch_and_balance_work() {
        let s = Steps::full(10, 64).unwrap();
        assert_eq!(s.slices(2, 8), vec![(0, 32), (32, 64)]);
        assert_eq!(s.slices(4, 32), vec![(0, 32), (32, 64)]);
        assert_eq!(s.slices(2, 100), vec![(0, 64)]);
        // packed: long sequences first, so the first slice has fewer rows
        let s = Steps::new(&[8, 8, 8, 8, 2, 2, 2, 2]).unwrap();
        let sl = s.slices(2, 1);
        assert_eq!(sl.len(), 2);
        assert_eq!(sl[0].0, 0);
        assert_eq!(sl[1].1, 8);
        assert_eq!(sl[0].1, sl[1].0);
        assert!(sl[0].1 < 4, "{sl:?}");
        for b in 1..20 {
            for k in 1..5 {
                let s = Steps::full(3, b).unwrap();
                let sl = s.slices(k, 1);
                assert_eq!(sl.first().unwrap().0, 0);
                assert_eq!(sl.last().unwrap().1, b);
                assert!(sl.windows(2).all(|w| w[0].1 == w[1].0 && w[0].0 < w[0].1));
            }
        }
    }
}
