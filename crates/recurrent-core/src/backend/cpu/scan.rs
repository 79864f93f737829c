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
    } else if super::parallel::is_sequential() {
        slices.iter().for_each(|&(lo, hi)| f(lo, hi));
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

    /// Rows `r0..r0 + n` of a contiguous block (`ld == width`) as one slice.
    ///
    /// # Safety
    /// No thread may be writing those rows while the slice lives.
    #[inline]
    pub unsafe fn rows_slice(&self, r0: usize, n: usize) -> &[T] {
        assert!(r0 + n <= self.rows && self.ld == self.width);
        std::slice::from_raw_parts(self.ptr.add(r0 * self.ld), n * self.width)
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

/// The transpose `[width, rows]` of a row-major `[rows, width]` matrix, written a block of
/// rows at a time by threads that each own disjoint rows (see [`transpose`]).
///
/// Its rows are [`transposed_ld`] apart: with `rows` a power of two (a batch of 64 × 256
/// steps) the rows of the transpose would otherwise all map to the same cache sets, and each
/// store of a column would evict the previous one.
pub struct TransposedRows<'a, T> {
    ptr: *mut T,
    rows: usize,
    width: usize,
    ld: usize,
    _life: PhantomData<&'a mut [T]>,
}

// SAFETY: writes go only through `write_rows`, whose callers promise disjoint rows.
unsafe impl<T: Send> Send for TransposedRows<'_, T> {}
unsafe impl<T: Send> Sync for TransposedRows<'_, T> {}

/// The leading dimension of the `[width, rows]` transpose of a `[rows, width]` matrix: `rows`
/// rounded up to a cache line of f32, plus one line, so no two rows share cache sets.
pub fn transposed_ld(rows: usize) -> usize {
    rows.div_ceil(16) * 16 + 16
}

impl<'a, T: Copy> TransposedRows<'a, T> {
    /// `data: [width, transposed_ld(rows)]` receives the transpose.
    pub fn new(data: &'a mut [T], rows: usize, width: usize) -> Self {
        let ld = transposed_ld(rows);
        assert_eq!(data.len(), ld * width, "transposed buffer size");
        TransposedRows {
            ptr: data.as_mut_ptr(),
            rows,
            width,
            ld,
            _life: PhantomData,
        }
    }

    /// Store rows `r0..r0 + n` as columns: row `i` is `src[i * src_ld..i * src_ld + width]`.
    ///
    /// # Safety
    /// No other thread may write rows `r0..r0 + n` at the same time.
    #[inline]
    pub unsafe fn write_rows(&self, r0: usize, n: usize, src: &[T], src_ld: usize) {
        // Sixteen output rows at a time: each receives a run of `n` consecutive values while
        // the source block stays in L1.
        const COLS: usize = 16;
        assert!(r0 + n <= self.rows && src_ld >= self.width);
        assert!(n == 0 || (n - 1) * src_ld + self.width <= src.len());
        let mut j0 = 0;
        while j0 < self.width {
            let w = COLS.min(self.width - j0);
            for i in 0..n {
                let s = &src[i * src_ld + j0..i * src_ld + j0 + w];
                for (jj, &v) in s.iter().enumerate() {
                    *self.ptr.add((j0 + jj) * self.ld + r0 + i) = v;
                }
            }
            j0 += w;
        }
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

    /// All rows as a strided matrix `[rows, width]`.
    pub fn as_mat(&self) -> MatRef<'a, T> {
        let rows = if self.width == 0 {
            0
        } else {
            (self.data.len() - self.col + self.ld - self.width) / self.ld
        };
        MatRef::with_ld(&self.data[self.col..], rows, self.width, self.ld)
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

/// `h_{t-1}` of every packed row: what step `t` multiplied by `W_hh`, for `dW_hh`.
#[derive(Debug)]
pub enum PrevRows<'a, T> {
    /// A contiguous `[N, P]` copy (a batch that shrinks over time, or a state mask).
    Gathered(Vec<T>),
    /// A batch of `h0.rows()` sequences at every step: the output rows one step back (one
    /// step ahead in reverse) and `h0` at the first step. Nothing is copied.
    Shifted {
        /// `[N, P]`, this direction's output.
        out: MatRef<'a, T>,
        /// `[B, P]`.
        h0: MatRef<'a, T>,
        /// Whether the direction runs from the last step to the first.
        reverse: bool,
    },
}

/// The previous hidden states of a layer-direction (see [`PrevRows`]); `mask: [B, P]` is the
/// variational-dropout mask on the recurrent input, applied as the step applied it.
pub fn prev_rows<'a, T: Float>(
    out: &RowsRef<'a, T>,
    h0: &'a [T],
    steps: &Steps,
    reverse: bool,
    mask: Option<&[T]>,
) -> PrevRows<'a, T> {
    let b = steps.batch();
    let uniform = steps.batch_sizes().iter().all(|&n| n == b);
    if uniform && mask.is_none() {
        let p = out.width();
        return PrevRows::Shifted {
            out: out.as_mat(),
            h0: MatRef::new(&h0[..b * p], b, p),
            reverse,
        };
    }
    let mut prev = gather_prev(out, h0, steps, reverse);
    if let Some(mask) = mask {
        mask_packed_rows(&mut prev, mask, steps);
    }
    PrevRows::Gathered(prev)
}

/// The transpose of `src: [rows, cols]` (contiguous rows, any leading dimension) as
/// `[cols, transposed_ld(rows)]`, in parallel over blocks of rows.
pub fn transpose<T: Float>(src: MatRef<'_, T>) -> Vec<T> {
    const BLOCK: usize = 64;
    let (rows, cols) = (src.rows(), src.cols());
    let mut dst = vec![T::zero(); transposed_ld(rows) * cols];
    if rows == 0 || cols == 0 {
        return dst;
    }
    let w = TransposedRows::new(&mut dst, rows, cols);
    let ld = src.row_stride();
    let block = |k: usize| {
        let r0 = k * BLOCK;
        let n = BLOCK.min(rows - r0);
        // SAFETY: each task writes its own rows r0..r0 + n.
        unsafe { w.write_rows(r0, n, src.sub(r0, n, 0, cols).rows_slice(), ld) };
    };
    if super::parallel::current_threads() > 1 {
        (0..rows.div_ceil(BLOCK)).into_par_iter().for_each(block);
    } else {
        (0..rows.div_ceil(BLOCK)).for_each(block);
    }
    dst
}

/// For [`PrevRows::Shifted`] over `n` rows and a batch of `b`: `(b, body, src, first)`, where
/// the `n - b` rows from `body` on take their previous state from the output rows from `src`
/// on, and the `b` rows from `first` on start from `h0`.
fn shifted_rows(n: usize, b: usize, reverse: bool) -> (usize, usize, usize, usize) {
    let b = b.min(n);
    if reverse {
        (b, 0, b, n - b)
    } else {
        (b, b, 0, 0)
    }
}

/// A layer's input `X: [N, I]` for the products after the reverse loop. Its transpose is
/// made once, when first needed, and shared by the two directions of a bidirectional layer.
#[derive(Debug)]
pub struct LayerInput<'a, T> {
    x: MatRef<'a, T>,
    x_t: std::sync::OnceLock<Vec<T>>,
}

impl<'a, T: Float> LayerInput<'a, T> {
    /// `x` with contiguous rows.
    pub fn new(x: MatRef<'a, T>) -> Self {
        LayerInput {
            x,
            x_t: std::sync::OnceLock::new(),
        }
    }

    /// `X`.
    pub fn x(&self) -> MatRef<'a, T> {
        self.x
    }

    /// `Xᵀ: [I, N]`, stored row-major.
    fn x_t(&self) -> MatRef<'_, T> {
        let t = self.x_t.get_or_init(|| transpose(self.x));
        MatRef::with_ld(
            t,
            self.x.cols(),
            self.x.rows(),
            transposed_ld(self.x.rows()),
        )
    }
}

/// `H_prevᵀ` stored row-major (`[P, transposed_ld(N)]`): the transposed gathered rows, or
/// for [`PrevRows::Shifted`] the transposed output (the products shift it).
fn prev_transposed<T: Float>(prev: &PrevRows<'_, T>, n: usize, p: usize) -> Vec<T> {
    match prev {
        PrevRows::Gathered(v) => transpose(MatRef::new(v, n, p)),
        PrevRows::Shifted { out, .. } => transpose(*out),
    }
}

/// `dst: [P, G'] += H_prevᵀ · dG` over the packed rows, for `dG: [N, G']` (contiguous rows)
/// and `prev_t` from [`prev_transposed`].
fn add_prev_product<T: Float>(
    mut dst: MatMut<'_, T>,
    dg: MatRef<'_, T>,
    prev: &PrevRows<'_, T>,
    prev_t: &[T],
) {
    let n = dg.rows();
    let p = dst.rows();
    let h_t = MatRef::with_ld(prev_t, p, n, transposed_ld(n));
    match prev {
        PrevRows::Gathered(_) => matmul(dst, h_t, dg, true, Parallelism::Auto),
        PrevRows::Shifted { h0, reverse, .. } => {
            let (b, body, src, first) = shifted_rows(n, h0.rows(), *reverse);
            matmul(
                dst.rb(),
                h_t.sub(0, p, src, n - b),
                dg.sub(body, n - b, 0, dg.cols()),
                true,
                Parallelism::Auto,
            );
            matmul(
                dst,
                h0.t(),
                dg.sub(first, b, 0, dg.cols()),
                true,
                Parallelism::Auto,
            );
        }
    }
}

/// `dst: [G, P] += dGᵀ · H_prev` for a stored transpose `dg_t: [G, N]` of `dG`.
fn add_prev_product_t<T: Float>(
    mut dst: MatMut<'_, T>,
    dg_t: MatRef<'_, T>,
    prev: &PrevRows<'_, T>,
) {
    let n = dg_t.cols();
    match prev {
        PrevRows::Gathered(v) => {
            let p = dst.cols();
            matmul(dst, dg_t, MatRef::new(v, n, p), true, Parallelism::Auto);
        }
        PrevRows::Shifted { out, h0, reverse } => {
            let (b, body, src, first) = shifted_rows(n, h0.rows(), *reverse);
            matmul(
                dst.rb(),
                dg_t.sub(0, dg_t.rows(), body, n - b),
                out.sub(src, n - b, 0, out.cols()),
                true,
                Parallelism::Auto,
            );
            matmul(
                dst,
                dg_t.sub(0, dg_t.rows(), first, b),
                *h0,
                true,
                Parallelism::Auto,
            );
        }
    }
}

/// `acc[j] += Σ_k m[j, k]` over the rows of `m: [G, N]` (bias gradients from a transposed
/// gate gradient: each sum runs over contiguous memory).
fn add_row_sums<T: Float>(acc: &mut [T], m: MatRef<'_, T>) {
    for (j, a) in acc.iter_mut().enumerate() {
        let row = m.row(j);
        let mut lanes = [T::zero(); 8];
        let mut chunks = row.chunks_exact(8);
        for c in &mut chunks {
            for (l, &v) in lanes.iter_mut().zip(c) {
                *l += v;
            }
        }
        let mut s = chunks.remainder().iter().fold(T::zero(), |s, &v| s + v);
        for l in lanes {
            s += l;
        }
        *a += s;
    }
}

/// `dw: [G, K] += cᵀ` for `c: [K, G]`.
fn add_transposed<T: Float>(dw: &mut [T], c: &[T], g: usize) {
    let k = c.len() / g.max(1);
    for (j, row) in dw.chunks_exact_mut(k.max(1)).enumerate() {
        for (q, d) in row.iter_mut().enumerate() {
            *d += c[q * g + j];
        }
    }
}

/// The gate gradients a reverse loop leaves for the products after it.
#[derive(Clone, Copy, Debug)]
pub struct GateGrads<'a, T> {
    /// `[N, G]`: `∂L/∂` of the input-side gate pre-activations.
    pub dgx: &'a [T],
    /// `[G, transposed_ld(N)]`: the transpose of `dgx`, when the reverse loop wrote it as it
    /// went (the Elman RNN, whose `G = H` makes `dG` the narrowest operand, so the weight
    /// gradients take it instead of transposed `X` and `H_prev`). Only without `dgh_tail`.
    pub dgx_t: Option<&'a [T]>,
    /// The hidden side's gradient equals the input side's except in its columns `k..G` (the
    /// GRU's `n` gate, where `W_hn h + b_hn` sits inside `r ⊙ (…)`): `(k, [N, G - k])`.
    pub dgh_tail: Option<(usize, &'a [T])>,
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
/// The weight gradients reduce over the `N` rows. faer runs them at 134-160 GFLOP/s as
/// `Xᵀ · dG` with `Xᵀ` stored row-major, but at 97-112 as `dGᵀ · X` with `dGᵀ` a transposed
/// view (AMD Zen 3, 2 threads, `examples/gemm_layouts.rs`). So `X` and `H_prev`, narrow
/// (`I` and `P` columns against `G` = 3-4 `H` for `dG`), are transposed, the products give
/// `dWᵀ`, and that small matrix is added transposed.
pub fn input_and_weight_grads<T: Float>(
    dx: Option<&mut [T]>,
    grads: &mut RnnGrads<'_, T>,
    gg: &GateGrads<'_, T>,
    input: &LayerInput<'_, T>,
    prev: &PrevRows<'_, T>,
    w: &RnnWeights<'_, T>,
    gate_width: usize,
) {
    let x = input.x();
    let (n, i_size, g) = (x.rows(), x.cols(), gate_width);
    let dgx = MatRef::new(gg.dgx, n, g);
    if let Some(dx) = dx {
        matmul(
            MatMut::new(dx, n, i_size),
            dgx,
            MatRef::new(w.w_ih, g, i_size),
            true,
            Parallelism::Auto,
        );
    }
    if let Some(dgt) = gg.dgx_t {
        assert!(gg.dgh_tail.is_none(), "a stored dGᵀ needs dGh = dGx");
        let dgt = MatRef::with_ld(dgt, g, n, transposed_ld(n));
        if let Some(dw) = grads.w_ih.as_deref_mut() {
            matmul(MatMut::new(dw, g, i_size), dgt, x, true, Parallelism::Auto);
        }
        if let Some(dw) = grads.w_hh.as_deref_mut() {
            let p = dw.len() / g.max(1);
            add_prev_product_t(MatMut::new(dw, g, p), dgt, prev);
        }
        for db in [grads.b_ih.as_deref_mut(), grads.b_hh.as_deref_mut()]
            .into_iter()
            .flatten()
        {
            add_row_sums(db, dgt);
        }
        return;
    }
    let split = gg.dgh_tail.map_or(g, |(k, _)| k);
    if let Some(dw) = grads.w_ih.as_deref_mut() {
        let mut c = vec![T::zero(); i_size * g];
        matmul(
            MatMut::new(&mut c, i_size, g),
            input.x_t(),
            dgx,
            false,
            Parallelism::Auto,
        );
        add_transposed(dw, &c, g);
    }
    if let Some(dw) = grads.w_hh.as_deref_mut() {
        let p = dw.len() / g.max(1);
        let prev_t = prev_transposed(prev, n, p);
        let mut c = vec![T::zero(); p * g];
        {
            let mut cm = MatMut::new(&mut c, p, g);
            let head = dgx.sub(0, n, 0, split);
            add_prev_product(cm.cols_mut(0, split), head, prev, &prev_t);
            if let Some((k, t)) = gg.dgh_tail {
                let tail = MatRef::new(t, n, g - k);
                add_prev_product(cm.cols_mut(k, g - k), tail, prev, &prev_t);
            }
        }
        add_transposed(dw, &c, g);
    }
    // Σ_rows dGx once: it is db_ih, and db_hh in its first `split` columns.
    if grads.b_ih.is_some() || grads.b_hh.is_some() {
        let mut sums = vec![T::zero(); g];
        add_column_sums(&mut sums, gg.dgx);
        if let Some(db) = grads.b_ih.as_deref_mut() {
            for (d, &v) in db.iter_mut().zip(&sums) {
                *d += v;
            }
        }
        if let Some(db) = grads.b_hh.as_deref_mut() {
            for (d, &v) in db[..split].iter_mut().zip(&sums) {
                *d += v;
            }
            if let Some((k, t)) = gg.dgh_tail {
                add_column_sums(&mut db[k..], t);
            }
        }
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

    #[test]
    fn transposed_rows_written_in_blocks_form_the_transpose() {
        let (rows, width, src_ld) = (37, 21, 25);
        let src: Vec<f64> = (0..rows * src_ld).map(|k| k as f64 * 0.5 - 3.0).collect();
        let ld = transposed_ld(rows);
        assert!(ld >= rows && ld % 16 == 0 && ld > rows.next_multiple_of(16) - 1);
        let mut t = vec![f64::NAN; ld * width];
        let tr = TransposedRows::new(&mut t, rows, width);
        // blocks of rows as the slices of a reverse loop write them, out of order
        for &(r0, n) in &[(30, 7), (0, 13), (13, 17)] {
            // SAFETY: the blocks are disjoint and written by one thread.
            unsafe { tr.write_rows(r0, n, &src[r0 * src_ld..], src_ld) };
        }
        for i in 0..rows {
            for j in 0..width {
                assert_eq!(t[j * ld + i], src[i * src_ld + j], "({i}, {j})");
            }
        }
    }

    /// The products after the reverse loop against sums written out term by term, for a full
    /// batch (the shifted, copy-free `H_prev`) in both directions, a packed batch (gathered),
    /// and a hidden side that differs from the input side in its last rows (the GRU).
    #[test]
    fn weight_grads_match_the_definition() {
        let (i_size, p, g) = (3, 4, 6);
        for (sizes, reverse, tail) in [
            (vec![3, 3, 3, 3], false, false),
            (vec![3, 3, 3, 3], true, true),
            (vec![3, 2, 2, 1], false, true),
            (vec![3, 2, 2, 1], true, false),
        ] {
            let steps = Steps::new(&sizes).unwrap();
            let (n, b) = (steps.total(), steps.batch());
            let val = |k: usize, s: f64| ((k as f64 + 1.0) * s).sin();
            let dgx: Vec<f64> = (0..n * g).map(|k| val(k, 0.7)).collect();
            let x: Vec<f64> = (0..n * i_size).map(|k| val(k, 0.3)).collect();
            let out: Vec<f64> = (0..n * p).map(|k| val(k, 1.1)).collect();
            let h0: Vec<f64> = (0..b * p).map(|k| val(k, 0.9)).collect();
            let w_ih: Vec<f64> = (0..g * i_size).map(|k| val(k, 0.5)).collect();
            let w_hh = vec![0.0; g * p];
            // the hidden side: equal to dgx except in rows k.. of the transpose when `tail`
            let k_split = if tail { 4 } else { g };
            let dgh: Vec<f64> = (0..n * g)
                .map(|q| {
                    if q % g >= k_split {
                        val(q, 0.2)
                    } else {
                        dgx[q]
                    }
                })
                .collect();
            let tail_rm: Vec<f64> = (0..n)
                .flat_map(|r| dgh[r * g + k_split..(r + 1) * g].to_vec())
                .collect();
            let out_rows = RowsRef::new(&out, p);
            let prev = prev_rows(&out_rows, &h0, &steps, reverse, None);
            let uniform = sizes.iter().all(|&s| s == b);
            assert_eq!(matches!(prev, PrevRows::Shifted { .. }), uniform);
            let (mut dx, mut dwi, mut dwh, mut dbi, mut dbh) = (
                vec![1.0; n * i_size],
                vec![1.0; g * i_size],
                vec![1.0; g * p],
                vec![1.0; g],
                vec![1.0; g],
            );
            let w = RnnWeights {
                w_ih: &w_ih,
                w_hh: &w_hh,
                b_ih: None,
                b_hh: None,
                w_hr: None,
                h_mask: None,
            };
            let mut grads = RnnGrads {
                w_ih: Some(&mut dwi),
                w_hh: Some(&mut dwh),
                b_ih: Some(&mut dbi),
                b_hh: Some(&mut dbh),
                w_hr: None,
            };
            let dgx_t = {
                let mut t = vec![0.0; transposed_ld(n) * g];
                let w = TransposedRows::new(&mut t, n, g);
                // SAFETY: one thread.
                unsafe { w.write_rows(0, n, &dgx, g) };
                t
            };
            // with a stored dGᵀ where the hidden side equals the input side
            let gg = GateGrads {
                dgx: &dgx,
                dgx_t: (!tail && reverse).then_some(&dgx_t[..]),
                dgh_tail: tail.then_some((k_split, &tail_rm[..])),
            };
            let xm = MatRef::new(&x, n, i_size);
            input_and_weight_grads(
                Some(&mut dx),
                &mut grads,
                &gg,
                &LayerInput::new(xm),
                &prev,
                &w,
                g,
            );
            let close = |a: f64, b: f64| (a - b).abs() < 1e-12 * (1.0 + b.abs());
            for r in 0..n {
                for c in 0..i_size {
                    let want = 1.0
                        + (0..g)
                            .map(|j| dgx[r * g + j] * w_ih[j * i_size + c])
                            .sum::<f64>();
                    assert!(close(dx[r * i_size + c], want));
                }
            }
            // h_{t-1} of every packed row, from the definition
            let mut hprev = vec![0.0; n * p];
            for t in 0..steps.len() {
                for r in 0..steps.batch_size(t) {
                    let row = steps.offset(t) + r;
                    let src = match steps.prev_row(t, r, reverse) {
                        Some(q) => &out[q * p..(q + 1) * p],
                        None => &h0[r * p..(r + 1) * p],
                    };
                    hprev[row * p..(row + 1) * p].copy_from_slice(src);
                }
            }
            for j in 0..g {
                for c in 0..i_size {
                    let want = 1.0
                        + (0..n)
                            .map(|r| dgx[r * g + j] * x[r * i_size + c])
                            .sum::<f64>();
                    assert!(close(dwi[j * i_size + c], want));
                }
                for c in 0..p {
                    let want = 1.0
                        + (0..n)
                            .map(|r| dgh[r * g + j] * hprev[r * p + c])
                            .sum::<f64>();
                    assert!(
                        close(dwh[j * p + c], want),
                        "{sizes:?} {reverse} {tail} ({j}, {c})"
                    );
                }
                let want_bi = 1.0 + (0..n).map(|r| dgx[r * g + j]).sum::<f64>();
                let want_bh = 1.0 + (0..n).map(|r| dgh[r * g + j]).sum::<f64>();
                assert!(close(dbi[j], want_bi) && close(dbh[j], want_bh));
            }
        }
    }
}
