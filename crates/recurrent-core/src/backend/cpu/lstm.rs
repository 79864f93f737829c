//! The LSTM cell: its equations, their derivative, and its [`CellKernel`] for the scan.
//!
//! A step multiplies the slice's `h_{t-1}` by `W_hhᵀ` and applies the cell to each tile of
//! the product with the input projection ([`super::step`]), and with `proj_size` projects
//! `m_t` by `W_hrᵀ` into `h_t`. The backward step runs the cell's derivative and multiplies
//! the gate gradients by `W_hh` back to `∂L/∂h_{t-1}`. Shapes use the letters of
//! [`crate::rnn::Steps`].

use super::cell::{
    combined_bias, forward_product, mat_mut, BackwardStep, CellKernel, ForwardStep, PackedOnce,
    RnnWeights, StepWeight, TimeGrads,
};
use super::float::Float;
use super::gemm::{matmul, MatMut, MatRef, Parallelism};
use super::step::{self, lanes::Lanes, Epilogue, Packed, Rows, StepKernel, Store};
use super::weight_grads::RnnGrads;
use crate::rnn::RnnDims;

/// One LSTM step, as PyTorch documents it, for one row and a block of units (`acc` holds
/// the recurrent product `W_h· h` of each gate, in lanes):
///
/// ```text
/// i  = σ(W_ii x + b_ii + W_hi h + b_hi)
/// f  = σ(W_if x + b_if + W_hf h + b_hf)
/// g  = tanh(W_ig x + b_ig + W_hg h + b_hg)
/// o  = σ(W_io x + b_io + W_ho h + b_ho)
/// c' = f ⊙ c + i ⊙ g
/// m  = o ⊙ tanh(c')
/// h' = m                  (with proj_size: h' = W_hr m, a product after the step)
/// ```
///
/// The gate rows hold `W_i· x` (no bias) on entry and, in training, the activations
/// `[i | f | g | o]` on exit; `bias` is `b_ih + b_hh`.
#[derive(Debug)]
struct LstmStep<T> {
    /// `[n, 4H]`, or null when `acc` holds the input product too.
    gates: *mut T,
    /// `[4H]` or null.
    bias: *const T,
    /// `[n, H]`: `c` in, `c'` out.
    c: *mut T,
    /// Rows `m_ld` apart: `m`.
    m: *mut T,
    m_ld: usize,
    /// `[n, H]` or null: a copy of `c'` for the backward pass.
    c_kept: *mut T,
    hidden: usize,
    training: bool,
}

// SAFETY: the step's rows are its slice's alone; the tiles of one call write disjoint blocks.
unsafe impl<T: Sync> Sync for LstmStep<T> {}

impl<T: Float> Epilogue<T> for LstmStep<T> {
    #[inline(always)]
    unsafe fn block<V: Lanes<T>>(&self, row: usize, j: usize, n: usize, acc: [V; 4]) {
        let h = self.hidden;
        // No gate rows: the input product is in `acc` already (inference only).
        let fused = self.gates.is_null();
        let x = if fused {
            self.gates
        } else {
            self.gates.add(row * 4 * h + j)
        };
        let pre = |q: usize| {
            let a = if fused {
                acc[q]
            } else {
                acc[q] + V::load(x.add(q * h), n)
            };
            if self.bias.is_null() {
                a
            } else {
                a + V::load(self.bias.add(q * h + j), n)
            }
        };
        let (i, f, g, o) = (
            pre(0).sigmoid(),
            pre(1).sigmoid(),
            pre(2).tanh(),
            pre(3).sigmoid(),
        );
        let c = self.c.add(row * h + j);
        let c_new = f * V::load(c, n) + i * g;
        let m = o * c_new.tanh();
        c_new.store(c, n);
        m.store(self.m.add(row * self.m_ld + j), n);
        if self.training && !fused {
            for (q, v) in [i, f, g, o].into_iter().enumerate() {
                v.store(x.add(q * h), n);
            }
            if !self.c_kept.is_null() {
                c_new.store(self.c_kept.add(row * h + j), n);
            }
        }
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
    step: StepKernel,
    /// `W_ihᵀ` and `W_hhᵀ` by gates, for the forward products.
    w_ih_t: PackedOnce<T>,
    w_hh_t: PackedOnce<T>,
    /// `W_hh`, for the backward product.
    w_hh: PackedOnce<T>,
    /// `W_hrᵀ` and `W_hr`, for the projection and its backward.
    w_hr_t: PackedOnce<T>,
    w_hr: PackedOnce<T>,
}

impl<'a, T: Float> LstmKernel<'a, T> {
    /// The kernel of a layer-direction with these weights, for a call of `steps` steps.
    pub fn new(w: RnnWeights<'a, T>, dims: RnnDims, steps: usize) -> Self {
        Self::with_step(w, dims, T::step_kernel().for_steps(steps))
    }

    /// The same, with the step kernel chosen (the tests compare them).
    pub fn with_step(w: RnnWeights<'a, T>, dims: RnnDims, step: StepKernel) -> Self {
        LstmKernel {
            bias: combined_bias(w.b_ih, w.b_hh),
            w,
            dims,
            step,
            w_ih_t: PackedOnce::new(),
            w_hh_t: PackedOnce::new(),
            w_hh: PackedOnce::new(),
            w_hr_t: PackedOnce::new(),
            w_hr: PackedOnce::new(),
        }
    }

    fn proj(&self) -> bool {
        self.w.w_hr.is_some()
    }
}

/// Per-slice buffers of the LSTM's forward steps.
#[derive(Debug)]
pub struct LstmForwardScratch<T> {
    /// `[rows, H]`: `m_t` when projecting and not training (training keeps it in `kept[1]`).
    m: Vec<T>,
    /// `[rows, 4H]`: the recurrent product (the GEMM path).
    gh: Vec<T>,
}

impl<T: Float> CellKernel<T> for LstmKernel<'_, T> {
    type ForwardScratch = LstmForwardScratch<T>;
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

    fn fuses_input(&self) -> bool {
        matches!(self.step, StepKernel::Packed(_))
    }

    fn forward_scratch(&self, rows: usize, training: bool) -> LstmForwardScratch<T> {
        let h = self.dims.hidden_size;
        LstmForwardScratch {
            m: if self.proj() && !training {
                vec![T::zero(); rows * h]
            } else {
                Vec::new()
            },
            gh: match self.step {
                StepKernel::Gemm(_) => vec![T::zero(); rows * 4 * h],
                StepKernel::Packed(_) => Vec::new(),
            },
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

    fn forward_step(&self, s: ForwardStep<'_, T>, scratch: &mut LstmForwardScratch<T>) {
        let (h, p) = (self.dims.hidden_size, self.dims.out_size());
        let n = s.rows(p);
        let a = s.product_input();
        let [c_kept, m_kept] = s.kept;
        // m_t goes to h_t directly, or with a projection to the kept rows (training) or
        // scratch, and then h_t = m_t · W_hrᵀ.
        let m: &mut [T] = match (self.proj(), m_kept.is_empty()) {
            (false, _) => &mut [],
            (true, true) => &mut scratch.m[..n * h],
            (true, false) => m_kept,
        };
        let (m_ptr, m_ld) = if self.proj() {
            (m.as_mut_ptr(), h)
        } else {
            (s.out.ptr, s.out.ld)
        };
        let epi = LstmStep {
            gates: if s.x.is_some() {
                std::ptr::null_mut()
            } else {
                s.gates.as_mut_ptr()
            },
            bias: self.bias.as_deref().map_or(std::ptr::null(), <[T]>::as_ptr),
            c: s.c.as_mut_ptr(),
            m: m_ptr,
            m_ld,
            c_kept: if c_kept.is_empty() {
                std::ptr::null_mut()
            } else {
                c_kept.as_mut_ptr()
            },
            hidden: h,
            training: s.training,
        };
        // gates = cell(W_ih x + h_{t-1} · W_hhᵀ)   (h_{t-1} ⊙ mask with variational dropout)
        let hh = StepWeight {
            w: self.w.w_hh,
            gates: 4,
            units: h,
            k: p,
            packed: &self.w_hh_t,
        };
        let ih = StepWeight {
            w: self.w.w_ih,
            gates: 4,
            units: h,
            k: self.dims.input_size,
            packed: &self.w_ih_t,
        };
        // SAFETY: the epilogue's pointers cover the step's n rows, which are this slice's.
        unsafe {
            forward_product(
                self.step,
                hh,
                a,
                n,
                s.x.map(|x| (ih, x)),
                &mut scratch.gh,
                s.par,
                &epi,
            )
        };
        if let Some(w_hr) = self.w.w_hr {
            // h_t = m · W_hrᵀ
            // SAFETY: `out` holds the step's n rows of P, this slice's alone.
            unsafe {
                match self.step {
                    StepKernel::Packed(isa) => {
                        let w_hr_t = self.w_hr_t.get(|| Packed::transposed(isa, w_hr, 1, p, h));
                        step::product(
                            w_hr_t,
                            Rows::new(m, n, h, h),
                            &Store::new(s.out.ptr, s.out.ld, false),
                        );
                    }
                    StepKernel::Gemm(_) => matmul(
                        MatMut::from_raw(s.out.ptr, n, p, s.out.ld),
                        MatRef::new(m, n, h),
                        MatRef::new(w_hr, p, h).t(),
                        false,
                        s.par,
                    ),
                }
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
            let dm = &mut dm[..n * h];
            match self.step {
                StepKernel::Packed(isa) => {
                    let w_hr = self.w_hr.get(|| Packed::direct(isa, w_hr, p, h));
                    // SAFETY: dm is [n, H], dh [n, P]; they do not overlap.
                    unsafe {
                        step::product(
                            w_hr,
                            Rows::new(dh, n, p, p),
                            &Store::new(dm.as_mut_ptr(), h, false),
                        )
                    };
                }
                StepKernel::Gemm(_) => matmul(
                    mat_mut(dm, n, h),
                    MatRef::new(dh, n, p),
                    MatRef::new(w_hr, p, h),
                    false,
                    par,
                ),
            }
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
        match self.step {
            StepKernel::Packed(isa) => {
                let w_hh = self.w_hh.get(|| Packed::direct(isa, self.w.w_hh, g, p));
                // SAFETY: dh is [n, P], gates [n, G]; they do not overlap.
                unsafe {
                    step::product(
                        w_hh,
                        Rows::new(gates, n, g, g),
                        &Store::new(dh.as_mut_ptr(), p, false).masked(mask, p),
                    )
                };
            }
            StepKernel::Gemm(_) => {
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
