//! Matrix products: the one place where a GEMM crate is called.
//!
//! Every product in the library goes through [`matmul`], so the crate behind it can change in
//! one place. It is faer 0.24 (with its AVX-512 paths on), chosen by measurement at the RNN
//! shapes on the 2-core AVX-512 development machine (GFLOP/s, best of runs on a noisy host):
//!
//! | product                                   | faer | gemm 0.19 x86-v4 |
//! |-------------------------------------------|-----:|-----------------:|
//! | step, 1 thread, 32x256 · 256x1024         | 66-78| 39-40            |
//! | step backward, 1 thread, 32x1024 · 1024x256| 68-73| 53-57           |
//! | input projection, 2 threads, 16384x128 · 128x1024 | 143-157 | 82-139 |
//! | weight gradient, 2 threads, 128x16384 · 16384x1024 | 100-106 | 88-112 |
//! | batch 1, 1x64 · 64x256 (microseconds)     | 1.2  | 1.2-1.4          |
//!
//! The views here are plain strided descriptions of row-major buffers; a transposed operand
//! is a view with swapped strides (no copy). Which orientation is fast is the caller's choice
//! (the RNN kernels keep transposed copies of the weights where that wins).

use super::float::Float;
use std::marker::PhantomData;

/// Whether a product may use the rayon thread pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    /// On the calling thread only (for products inside a parallel region, and small ones).
    Sequential,
    /// Use the rayon pool when the product is large enough to gain from it.
    Auto,
}

/// Below this many floating-point operations a product runs on one thread: measured, a
/// 32x128 · 128x512 product (4.2 MFLOP) is slower on two threads than on one.
const PARALLEL_MIN_FLOPS: usize = 16_000_000;

/// Rows of the left operand per call into faer for tall products (see [`faer_matmul`]).
const ROW_BLOCK: usize = 2048;

/// A read-only strided matrix view: element `(i, j)` is at `ptr[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    ptr: *const T,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
    _life: PhantomData<&'a T>,
}

// SAFETY: a MatRef is a shared borrow of `T` data; it is Send/Sync exactly when `&[T]` is.
unsafe impl<T: Sync> Send for MatRef<'_, T> {}
unsafe impl<T: Sync> Sync for MatRef<'_, T> {}

impl<'a, T> MatRef<'a, T> {
    /// A contiguous row-major `[rows, cols]` matrix. Panics if `data` is too short (a bug in
    /// the caller, never reachable from user input: shapes are validated before kernels run).
    #[inline]
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self::with_ld(data, rows, cols, cols)
    }

    /// A row-major `[rows, cols]` matrix whose rows start `ld` elements apart.
    #[inline]
    pub fn with_ld(data: &'a [T], rows: usize, cols: usize, ld: usize) -> Self {
        assert!(
            ld >= cols || rows <= 1,
            "leading dimension {ld} < cols {cols}"
        );
        if rows > 0 && cols > 0 {
            assert!(
                (rows - 1) * ld + cols <= data.len(),
                "matrix view out of bounds"
            );
        }
        MatRef {
            ptr: data.as_ptr(),
            rows,
            cols,
            rs: ld as isize,
            cs: 1,
            _life: PhantomData,
        }
    }

    /// The transpose (a view with swapped strides).
    #[inline]
    pub fn t(self) -> Self {
        MatRef {
            ptr: self.ptr,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            _life: PhantomData,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The block of rows `r0..r0 + nr` and columns `c0..c0 + nc`.
    #[inline]
    pub fn sub(self, r0: usize, nr: usize, c0: usize, nc: usize) -> Self {
        assert!(
            r0 + nr <= self.rows && c0 + nc <= self.cols,
            "sub-matrix out of bounds"
        );
        let off = r0 as isize * self.rs + c0 as isize * self.cs;
        MatRef {
            // SAFETY: (r0, c0) lies inside the view (or the block is empty and the offset is
            // at most one past its end), which the constructor bounds-checked.
            ptr: if nr == 0 || nc == 0 {
                self.ptr
            } else {
                unsafe { self.ptr.offset(off) }
            },
            rows: nr,
            cols: nc,
            rs: self.rs,
            cs: self.cs,
            _life: PhantomData,
        }
    }

    /// The distance between the starts of consecutive rows.
    pub fn row_stride(&self) -> usize {
        self.rs as usize
    }

    /// The elements from the first row's start to the last row's end, for a view whose rows
    /// are contiguous (`[(rows - 1) * row_stride + cols]`).
    #[inline]
    pub fn rows_slice(&self) -> &'a [T] {
        assert!(self.cs == 1 || self.cols <= 1, "rows are not contiguous");
        let len = if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.rs as usize + self.cols
        };
        // SAFETY: the span lies inside the bounds-checked view.
        unsafe { std::slice::from_raw_parts(self.ptr, len) }
    }

    /// Row `r` of a view whose rows are contiguous (a row-major view, not a transposed one).
    #[inline]
    pub fn row(&self, r: usize) -> &'a [T] {
        assert!(
            r < self.rows && (self.cs == 1 || self.cols <= 1),
            "not a contiguous row"
        );
        // SAFETY: the row lies inside the bounds-checked view and its elements are adjacent.
        unsafe { std::slice::from_raw_parts(self.ptr.offset(r as isize * self.rs), self.cols) }
    }
}

/// A mutable strided matrix view (row-major with leading dimension).
#[derive(Debug)]
pub struct MatMut<'a, T> {
    ptr: *mut T,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
    _life: PhantomData<&'a mut T>,
}

// SAFETY: a MatMut is an exclusive borrow of `T` data.
unsafe impl<T: Send> Send for MatMut<'_, T> {}

impl<'a, T> MatMut<'a, T> {
    /// A contiguous row-major `[rows, cols]` matrix.
    #[inline]
    pub fn new(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        Self::with_ld(data, rows, cols, cols)
    }

    /// A row-major `[rows, cols]` matrix whose rows start `ld` elements apart.
    #[inline]
    pub fn with_ld(data: &'a mut [T], rows: usize, cols: usize, ld: usize) -> Self {
        assert!(
            ld >= cols || rows <= 1,
            "leading dimension {ld} < cols {cols}"
        );
        if rows > 0 && cols > 0 {
            assert!(
                (rows - 1) * ld + cols <= data.len(),
                "matrix view out of bounds"
            );
        }
        MatMut {
            ptr: data.as_mut_ptr(),
            rows,
            cols,
            rs: ld as isize,
            cs: 1,
            _life: PhantomData,
        }
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Columns `c0..c0 + nc` (a view for one product at a time).
    #[inline]
    pub fn cols_mut(&mut self, c0: usize, nc: usize) -> MatMut<'_, T> {
        assert!(c0 + nc <= self.cols, "column block out of bounds");
        MatMut {
            // SAFETY: column c0 lies inside the view (or is one past it, with nc == 0).
            ptr: if nc == 0 {
                self.ptr
            } else {
                unsafe { self.ptr.offset(c0 as isize * self.cs) }
            },
            rows: self.rows,
            cols: nc,
            rs: self.rs,
            cs: self.cs,
            _life: PhantomData,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// A shorter-lived view of the same block (to use it for several products in turn).
    #[inline]
    pub fn rb(&mut self) -> MatMut<'_, T> {
        MatMut {
            ptr: self.ptr,
            rows: self.rows,
            cols: self.cols,
            rs: self.rs,
            cs: self.cs,
            _life: PhantomData,
        }
    }

    /// A view from a raw pointer, for kernels that hand disjoint row blocks of one buffer to
    /// several threads.
    ///
    /// # Safety
    /// `ptr` must be valid for writes of the whole `[rows, cols]` block with leading dimension
    /// `ld` for `'a`, and no other live reference may overlap that block.
    #[inline]
    pub unsafe fn from_raw(ptr: *mut T, rows: usize, cols: usize, ld: usize) -> Self {
        MatMut {
            ptr,
            rows,
            cols,
            rs: ld as isize,
            cs: 1,
            _life: PhantomData,
        }
    }
}

/// `dst = a * b` (or `dst += a * b` with `accumulate`), `dst: [M, N]`, `a: [M, K]`,
/// `b: [K, N]`.
///
/// Panics when the dimensions disagree: kernels call it with validated shapes.
#[inline]
pub fn matmul<T: Float>(
    dst: MatMut<'_, T>,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    accumulate: bool,
    par: Parallelism,
) {
    T::gemm(dst, a, b, accumulate, par)
}

pub(super) fn faer_matmul<T: Float + faer::traits::ComplexField>(
    dst: MatMut<'_, T>,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    accumulate: bool,
    par: Parallelism,
) {
    let (m, n, k) = (dst.rows, dst.cols, a.cols);
    assert!(
        a.rows == m && b.rows == k && b.cols == n,
        "matmul dimensions disagree"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    // SAFETY: (i, j) is inside the view, which the constructor bounds-checked.
                    unsafe {
                        *dst.ptr.offset(i as isize * dst.rs + j as isize * dst.cs) = T::zero()
                    };
                }
            }
        }
        return;
    }
    let flops = 2 * m * n * k;
    let par = match par {
        Parallelism::Auto
            if flops >= PARALLEL_MIN_FLOPS && super::parallel::current_threads() > 1 =>
        {
            faer::Par::rayon(0)
        }
        _ => faer::Par::Seq,
    };
    let accum = if accumulate {
        faer::Accum::Add
    } else {
        faer::Accum::Replace
    };
    // faer's x86 kernel packs the left operand, `[m, min(k, 512)]` at a time, into a buffer
    // that each calling thread keeps for the life of the process, so its resident size grows
    // to the largest `m` ever seen: 32 MB for the 16,384-row products of a sequence. Row
    // blocks bound it at 4 MB per thread, with no measurable cost in speed.
    let block = if a.cs == 1 && m > 2 * ROW_BLOCK {
        ROW_BLOCK
    } else {
        m
    };
    let mut r0 = 0;
    while r0 < m {
        let rows = block.min(m - r0);
        // SAFETY: the views were bounds-checked on construction (or promised by the caller
        // of `MatMut::from_raw`), rows `r0..r0 + rows` lie inside them, and the lifetimes
        // keep the buffers alive for this call.
        unsafe {
            let dst = faer::MatMut::from_raw_parts_mut(
                dst.ptr.offset(r0 as isize * dst.rs),
                rows,
                n,
                dst.rs,
                dst.cs,
            );
            let a =
                faer::MatRef::from_raw_parts(a.ptr.offset(r0 as isize * a.rs), rows, k, a.rs, a.cs);
            let b = faer::MatRef::from_raw_parts(b.ptr, k, n, b.rs, b.cs);
            faer::linalg::matmul::matmul(dst, accum, a, b, T::one(), par);
        }
        r0 += rows;
    }
    clear_upper_vector_state();
}

/// Execute `vzeroupper` after a product.
///
/// The GEMM kernels use 256/512-bit registers and may return with their upper halves dirty.
/// In that state every legacy-SSE instruction (the scalar code of a baseline x86-64 build,
/// such as the pointwise cell loops) pays a transition penalty on Intel cores: measured here,
/// LSTM inference ran 5-7x slower until this was added.
#[inline]
fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS_AVX: OnceLock<bool> = OnceLock::new();
        if *HAS_AVX.get_or_init(|| std::arch::is_x86_feature_detected!("avx")) {
            #[target_feature(enable = "avx")]
            unsafe fn zeroupper() {
                std::arch::x86_64::_mm256_zeroupper();
            }
            // SAFETY: AVX support was just checked at run time.
            unsafe { zeroupper() };
        }
    }
}

/// GFLOP/s of the GEMM crate at the products of the `imdb` LSTM shape: the ceiling the
/// recurrent kernels are measured against.
pub fn ceiling() -> Vec<(String, f64)> {
    // (name, m, n, k, a transposed, b transposed, parallel): `a` is [m, k] (stored [k, m] when
    // transposed), `b` is [k, n] (stored [n, k] when transposed), as the kernels use them.
    let shapes: [(&str, usize, usize, usize, bool, bool, bool); 10] = [
        (
            "step h.W_hh^T 64x256 . 256x1024 (2 threads)",
            64,
            1024,
            256,
            false,
            true,
            true,
        ),
        (
            "step h.W_hh^T 32x256 . 256x1024 (1 thread, a slice)",
            32,
            1024,
            256,
            false,
            true,
            false,
        ),
        (
            "step back dG.W_hh 32x1024 . 1024x256 (1 thread)",
            32,
            256,
            1024,
            false,
            false,
            false,
        ),
        (
            "input projection X.W_ih^T 16384x128 . 128x1024",
            16384,
            1024,
            128,
            false,
            true,
            true,
        ),
        (
            "input gradient dG.W_ih 16384x1024 . 1024x128",
            16384,
            128,
            1024,
            false,
            false,
            true,
        ),
        (
            "LSTM/GRU weight gradient X^T.dG 128x16384 . 16384x1024 (X^T stored)",
            128,
            1024,
            16384,
            false,
            false,
            true,
        ),
        (
            "LSTM/GRU weight gradient H^T.dG 256x16384 . 16384x1024 (H^T stored)",
            256,
            1024,
            16384,
            false,
            false,
            true,
        ),
        (
            "RNN weight gradient dG^T.H 256x16384 . 16384x256 (dG^T stored)",
            256,
            256,
            16384,
            false,
            false,
            true,
        ),
        (
            "weight gradient dG^T.H as a transposed view of dG (not used)",
            1024,
            256,
            16384,
            true,
            false,
            true,
        ),
        ("square 1024", 1024, 1024, 1024, false, false, true),
    ];
    let mut g = crate::rng::Generator::new(5);
    shapes
        .iter()
        .map(|&(name, m, n, k, ta, tb, par)| {
            let a: Vec<f32> = (0..m * k).map(|_| g.uniform_range(-1.0, 1.0)).collect();
            let b: Vec<f32> = (0..k * n).map(|_| g.uniform_range(-1.0, 1.0)).collect();
            let mut c = vec![0f32; m * n];
            let p = if par {
                Parallelism::Auto
            } else {
                Parallelism::Sequential
            };
            let av = if ta {
                MatRef::new(&a, k, m).t()
            } else {
                MatRef::new(&a, m, k)
            };
            let bv = if tb {
                MatRef::new(&b, n, k).t()
            } else {
                MatRef::new(&b, k, n)
            };
            let flops = 2.0 * (m * n * k) as f64;
            let reps = ((4e9 / flops) as usize).clamp(3, 2000);
            let mut best = f64::MAX;
            for _ in 0..3 {
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    matmul(MatMut::new(&mut c, m, n), av, bv, false, p);
                }
                best = best.min(t.elapsed().as_secs_f64() / reps as f64);
            }
            (name.to_string(), flops / best / 1e9)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, n: usize, k: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn products_in_every_orientation_match_naive() {
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (17, 9, 33), (64, 48, 40), (2, 3, 0)] {
            let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
            let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
            let want = naive(&a, &b, m, n, k);
            // a^T stored [k, m], b^T stored [n, k]
            let mut at = vec![0.0; m * k];
            for i in 0..m {
                for p in 0..k {
                    at[p * m + i] = a[i * k + p];
                }
            }
            let mut bt = vec![0.0; k * n];
            for p in 0..k {
                for j in 0..n {
                    bt[j * k + p] = b[p * n + j];
                }
            }
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let av = if ta {
                    MatRef::new(&at, k, m).t()
                } else {
                    MatRef::new(&a, m, k)
                };
                let bv = if tb {
                    MatRef::new(&bt, n, k).t()
                } else {
                    MatRef::new(&b, k, n)
                };
                let mut c = vec![1.0; m * n];
                matmul(MatMut::new(&mut c, m, n), av, bv, false, Parallelism::Auto);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-12, "{m}x{n}x{k} {ta} {tb}");
                }
                matmul(
                    MatMut::new(&mut c, m, n),
                    av,
                    bv,
                    true,
                    Parallelism::Sequential,
                );
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - 2.0 * y).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn tall_products_in_row_blocks_match_naive() {
        // more than two row blocks, and a last block that is not full
        let (m, n, k) = (2 * ROW_BLOCK + 37, 5, 9);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.013).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.7).cos()).collect();
        let want = naive(&a, &b, m, n, k);
        for acc in [false, true] {
            let mut c = vec![1.0; m * n];
            matmul(
                MatMut::new(&mut c, m, n),
                MatRef::new(&a, m, k),
                MatRef::new(&b, k, n),
                acc,
                Parallelism::Auto,
            );
            let base = if acc { 1.0 } else { 0.0 };
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y - base).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn strided_destination_leaves_other_columns_alone() {
        let a = [1.0f32, 2.0, 3.0, 4.0]; // [2,2]
        let b = [1.0f32, 0.0, 0.0, 1.0];
        let mut c = [9.0f32; 8]; // [2,4], write columns 1..3
        matmul(
            MatMut::with_ld(&mut c[1..], 2, 2, 4),
            MatRef::new(&a, 2, 2),
            MatRef::new(&b, 2, 2),
            false,
            Parallelism::Sequential,
        );
        assert_eq!(c, [9.0, 1.0, 2.0, 9.0, 9.0, 3.0, 4.0, 9.0]);
    }
}
