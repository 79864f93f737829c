//! The products after the reverse loop of a layer-direction: the input gradient and every
//! weight gradient as one product over all timesteps each, and the bias gradients as row sums.
//! The previous hidden states `H_prev` that `dW_hh` needs are read from the layer output,
//! shifted by a step (no copy) for a full batch, gathered for a packed one.

use super::cell::RnnWeights;
use super::float::Float;
use super::gemm::{matmul, MatMut, MatRef, Parallelism};
use super::rows::{transposed_ld, RowsRef, TransposedRows};
use crate::rnn::Steps;
use rayon::prelude::*;

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

    /// The transpose's speed at the weight-gradient sizes (a measurement, not a test):
    /// `cargo test --release -p recurrent-core transpose_rate -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn transpose_rate() {
        for &(n, c) in &[(16384usize, 128usize), (16384, 256)] {
            let x: Vec<f32> = (0..n * c).map(|k| k as f32).collect();
            let mut best = f64::MAX;
            for _ in 0..20 {
                let t0 = std::time::Instant::now();
                let t = transpose(MatRef::new(&x, n, c));
                best = best.min(t0.elapsed().as_secs_f64());
                std::hint::black_box(t);
            }
            println!(
                "{n}x{c}: {:.2} ms, {:.1} GB/s",
                best * 1e3,
                2.0 * (n * c * 4) as f64 / best / 1e9
            );
        }
    }
}
