//! Row views of row-major buffers that several threads share, each touching only its own
//! rows: how the batch slices of a layer-direction write their rows of the gate and state
//! buffers, how the two directions of a bidirectional layer write their halves of the output,
//! and how a reverse loop writes a transpose while the rows are in cache.

use super::float::Float;
use super::gemm::MatRef;
use std::marker::PhantomData;

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

    /// Elements from one row to the next.
    pub fn ld(&self) -> usize {
        self.ld
    }

    /// The address of row `r` (`r <= rows`), for a kernel that writes rows `ld` apart.
    #[inline]
    pub fn row_ptr(&self, r: usize) -> *mut T {
        assert!(r <= self.rows);
        // SAFETY: at most one past the last row, inside or one past the buffer.
        unsafe { self.ptr.add((r * self.ld).min(self.rows * self.ld)) }
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
    #[allow(dead_code)]
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

    /// Rows `r0..r0 + n` of a contiguous block (`ld == width`) as one mutable slice; empty
    /// for a block of width 0 (a buffer the caller does not keep).
    ///
    /// # Safety
    /// No other reference to those rows may exist while the slice lives.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn rows_slice_mut(&self, r0: usize, n: usize) -> &mut [T] {
        if self.width == 0 {
            return &mut [];
        }
        assert!(r0 + n <= self.rows && self.ld == self.width);
        std::slice::from_raw_parts_mut(self.ptr.add(r0 * self.ld), n * self.width)
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
    #[cfg(test)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_rows_written_in_blocks_form_the_transpose() {
        let (rows, width, src_ld) = (37, 21, 25);
        let src: Vec<f64> = (0..rows * src_ld).map(|k| k as f64 * 0.5 - 3.0).collect();
        let ld = transposed_ld(rows);
        assert!(ld >= rows && ld.is_multiple_of(16) && ld > rows.next_multiple_of(16) - 1);
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
}
