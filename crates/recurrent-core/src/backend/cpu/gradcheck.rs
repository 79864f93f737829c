//! Finite-difference checks of every recurrent backward kernel, in `f64` (as PyTorch's
//! `gradcheck`): for a random upstream gradient on all outputs, the analytic gradient of
//! every input, initial state and parameter must match central differences.
//!
//! Also here: the same kernels give the same result whether the batch is carried by one
//! thread or split into slices, and a layer-direction run forward equals the reverse
//! direction run on the reversed sequence.

use super::cell::{CellKernel, RnnWeights};
use super::elman::{ElmanKernel, Nonlinearity};
use super::float::Float;
use super::gemm::MatRef;
use super::gru::GruKernel;
use super::lstm::LstmKernel;
use super::rows::{RowBlock, RowsRef};
use super::scan;
use super::step::{Isa, StepKernel};
use super::weight_grads::{LayerInput, RnnGrads};
use crate::rng::Generator;
use crate::rnn::{RnnDims, RnnMode as Kind, Steps};

/// Inputs of one layer-direction: x, h0, c0 and the five parameter tensors.
#[derive(Clone, Debug)]
pub(crate) struct Problem<T = f64> {
    pub kind: Kind,
    pub dims: RnnDims,
    pub steps: Steps,
    pub reverse: bool,
    pub x: Vec<T>,
    pub h0: Vec<T>,
    pub c0: Vec<T>,
    /// w_ih, w_hh, b_ih, b_hh, w_hr (empty when absent)
    pub params: [Vec<T>; 5],
    /// Variational dropout mask on the recurrent input `[B, P]` (empty: none).
    pub h_mask: Vec<T>,
    /// The step kernel the problem runs with.
    pub step: StepKernel,
}

/// Outputs of one layer-direction.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outputs<T = f64> {
    pub out: Vec<T>,
    pub h_n: Vec<T>,
    pub c_n: Vec<T>,
}

impl<T: Float> Outputs<T> {
    /// The same outputs in another element type.
    pub fn cast<U: Float>(&self) -> Outputs<U> {
        let c = |v: &[T]| {
            v.iter()
                .map(|&x| U::from_f64(x.to_f64()))
                .collect::<Vec<U>>()
        };
        Outputs {
            out: c(&self.out),
            h_n: c(&self.h_n),
            c_n: c(&self.c_n),
        }
    }
}

/// Gradients of everything in a [`Problem`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Grads<T = f64> {
    pub x: Vec<T>,
    pub h0: Vec<T>,
    pub c0: Vec<T>,
    pub params: [Vec<T>; 5],
}

fn rand_vec(g: &mut Generator, n: usize, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|_| (g.uniform_f64() * 2.0 - 1.0) * scale)
        .collect()
}

impl Problem {
    pub fn random(
        kind: Kind,
        dims: RnnDims,
        batch_sizes: &[usize],
        reverse: bool,
        bias: bool,
        seed: u64,
    ) -> Problem {
        let mut g = Generator::new(seed);
        let steps = Steps::new(batch_sizes).unwrap();
        let (i, h, p) = (dims.input_size, dims.hidden_size, dims.out_size());
        let gw = kind.gate_multiplier() * h;
        let b = steps.batch();
        let k = 1.0 / (h as f64).sqrt();
        let params = [
            rand_vec(&mut g, gw * i, k),
            rand_vec(&mut g, gw * p, k),
            if bias {
                rand_vec(&mut g, gw, k)
            } else {
                vec![]
            },
            if bias {
                rand_vec(&mut g, gw, k)
            } else {
                vec![]
            },
            if dims.proj_size > 0 {
                rand_vec(&mut g, p * h, k)
            } else {
                vec![]
            },
        ];
        Problem {
            kind,
            dims,
            x: rand_vec(&mut g, steps.total() * i, 1.0),
            h0: rand_vec(&mut g, b * p, 0.5),
            c0: if kind.has_cell_state() {
                rand_vec(&mut g, b * h, 0.5)
            } else {
                vec![]
            },
            steps,
            reverse,
            params,
            h_mask: Vec::new(),
            step: StepKernel::Gemm(Isa::Portable),
        }
    }

    /// The same problem run with another step kernel.
    pub fn with_step(mut self, step: StepKernel) -> Problem {
        self.step = step;
        self
    }

    /// The same problem with a fixed dropout mask (keep probability 1/2, scale 2) on `h_{t-1}`.
    pub fn with_state_mask(mut self, seed: u64) -> Problem {
        let mut g = Generator::new(seed);
        let n = self.steps.batch() * self.dims.out_size();
        self.h_mask = (0..n)
            .map(|_| if g.uniform_f64() < 0.5 { 0.0 } else { 2.0 })
            .collect();
        self
    }
}

impl<T: Float> Problem<T> {
    /// The same problem in another element type.
    pub fn cast<U: Float>(&self) -> Problem<U> {
        let c = |v: &[T]| {
            v.iter()
                .map(|&x| U::from_f64(x.to_f64()))
                .collect::<Vec<U>>()
        };
        Problem {
            kind: self.kind,
            dims: self.dims,
            steps: self.steps.clone(),
            reverse: self.reverse,
            x: c(&self.x),
            h0: c(&self.h0),
            c0: c(&self.c0),
            params: std::array::from_fn(|k| c(&self.params[k])),
            h_mask: c(&self.h_mask),
            step: self.step,
        }
    }

    fn weights(&self) -> RnnWeights<'_, T> {
        fn opt<T>(v: &[T]) -> Option<&[T]> {
            (!v.is_empty()).then_some(v)
        }
        RnnWeights {
            w_ih: &self.params[0],
            w_hh: &self.params[1],
            b_ih: opt(&self.params[2]),
            b_hh: opt(&self.params[3]),
            w_hr: opt(&self.params[4]),
            h_mask: opt(&self.h_mask),
        }
    }

    /// Run forward (and, with upstream gradients, backward) with `max_slices` threads, with
    /// the kernel of the problem's mode.
    pub fn run(&self, upstream: Option<&Outputs<T>>, max_slices: usize) -> (Outputs<T>, Grads<T>) {
        let (w, d, s) = (self.weights(), self.dims, self.step);
        let (up, m) = (upstream, max_slices);
        match self.kind {
            Kind::Lstm => self.run_kernel(&LstmKernel::with_step(w, d, s), up, m),
            Kind::Gru => self.run_kernel(&GruKernel::with_step(w, d, s), up, m),
            Kind::RnnTanh => {
                self.run_kernel(&ElmanKernel::with_step(w, d, Nonlinearity::Tanh, s), up, m)
            }
            Kind::RnnRelu => {
                self.run_kernel(&ElmanKernel::with_step(w, d, Nonlinearity::Relu, s), up, m)
            }
        }
    }

    /// [`Problem::run`] with any kernel (the problem's mode then only sizes the weights).
    pub fn run_kernel<K: CellKernel<T>>(
        &self,
        kernel: &K,
        upstream: Option<&Outputs<T>>,
        max_slices: usize,
    ) -> (Outputs<T>, Grads<T>) {
        let (i, h, p) = (
            self.dims.input_size,
            self.dims.hidden_size,
            self.dims.out_size(),
        );
        let n = self.steps.total();
        let b = self.steps.batch();
        let x = MatRef::new(&self.x, n, i);
        let mut out = vec![T::zero(); n * p];
        let mut h_n = vec![T::zero(); b * p];
        let mut c_n = vec![T::zero(); if kernel.cell_width() > 0 { b * h } else { 0 }];
        let want_grad = upstream.is_some();
        let mut gx = vec![T::zero(); n * i];
        let mut gp: [Vec<T>; 5] = std::array::from_fn(|k| vec![T::zero(); self.params[k].len()]);
        let mut dh0 = vec![T::zero(); b * p];
        let mut dc0 = vec![T::zero(); c_n.len()];
        {
            let [g0, g1, g2, g3, g4] = &mut gp;
            fn opt<T>(v: &mut [T]) -> Option<&mut [T]> {
                (!v.is_empty()).then_some(v)
            }
            let mut rg = RnnGrads {
                w_ih: opt(g0),
                w_hh: opt(g1),
                b_ih: opt(g2),
                b_hh: opt(g3),
                w_hr: opt(g4),
            };
            let reverse = self.reverse;
            let saved = scan::forward(
                kernel,
                &RowBlock::new(&mut out, p),
                &mut h_n,
                &mut c_n,
                x,
                &self.h0,
                &self.c0,
                &self.steps,
                reverse,
                max_slices,
                want_grad,
            );
            if let Some(up) = upstream {
                let dout = RowsRef::new(&up.out, p);
                let out_r = RowsRef::new(&out, p);
                let time = scan::backward(
                    kernel,
                    &mut dh0,
                    &mut dc0,
                    Some(&dout),
                    Some(&up.h_n),
                    Some(&up.c_n).filter(|c| !c.is_empty()).map(|c| &c[..]),
                    saved.expect("saved in training"),
                    &out_r,
                    &self.h0,
                    &self.c0,
                    &self.steps,
                    reverse,
                    max_slices,
                );
                scan::weight_grads(
                    kernel,
                    Some(&mut gx),
                    &mut rg,
                    &time,
                    &LayerInput::new(x),
                    &out_r,
                    &self.h0,
                    &self.steps,
                    reverse,
                );
            }
        }
        let grads = if want_grad {
            Grads {
                x: gx,
                h0: dh0,
                c0: dc0,
                params: gp,
            }
        } else {
            Grads::default()
        };
        (Outputs { out, h_n, c_n }, grads)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn loss(o: &Outputs, up: &Outputs) -> f64 {
    dot(&o.out, &up.out) + dot(&o.h_n, &up.h_n) + dot(&o.c_n, &up.c_n)
}

/// Compare analytic and central-difference gradients of every element; returns the number
/// of elements checked.
pub(crate) fn check(problem: &Problem, max_slices: usize) -> usize {
    check_with(problem, max_slices, &|p, up, s| p.run(up, s))
}

/// A way of running a problem: `run(problem, upstream, max_slices)`.
pub(crate) type Runner<'a> = &'a dyn Fn(&Problem, Option<&Outputs>, usize) -> (Outputs, Grads);

/// [`check`] with any way of running a problem.
pub(crate) fn check_with(problem: &Problem, max_slices: usize, run: Runner<'_>) -> usize {
    let mut g = Generator::new(99);
    let (fwd, _) = run(problem, None, max_slices);
    let up = Outputs {
        out: rand_vec(&mut g, fwd.out.len(), 1.0),
        h_n: rand_vec(&mut g, fwd.h_n.len(), 1.0),
        c_n: rand_vec(&mut g, fwd.c_n.len(), 1.0),
    };
    let (_, grads) = run(problem, Some(&up), max_slices);
    let eps = 1e-6;
    let mut checked = 0;
    let mut compare = |name: &str, idx: usize, analytic: f64, set: &dyn Fn(&mut Problem, f64)| {
        let mut pp = problem.clone();
        set(&mut pp, eps);
        let lp = loss(&run(&pp, None, max_slices).0, &up);
        let mut pm = problem.clone();
        set(&mut pm, -eps);
        let lm = loss(&run(&pm, None, max_slices).0, &up);
        let numeric = (lp - lm) / (2.0 * eps);
        let err = (numeric - analytic).abs() / (1e-6 + numeric.abs().max(analytic.abs()));
        assert!(
            err < 1e-5 || (numeric - analytic).abs() < 1e-8,
            "{:?} {name}[{idx}]: analytic {analytic}, numeric {numeric} (problem {:?}, reverse {})",
            problem.kind,
            problem.dims,
            problem.reverse
        );
        checked += 1;
    };
    for k in 0..problem.x.len() {
        compare("x", k, grads.x[k], &|p, e| p.x[k] += e);
    }
    for k in 0..problem.h0.len() {
        compare("h0", k, grads.h0[k], &|p, e| p.h0[k] += e);
    }
    for k in 0..problem.c0.len() {
        compare("c0", k, grads.c0[k], &|p, e| p.c0[k] += e);
    }
    for t in 0..5 {
        for k in 0..problem.params[t].len() {
            compare(
                ["w_ih", "w_hh", "b_ih", "b_hh", "w_hr"][t],
                k,
                grads.params[t][k],
                &|p, e| p.params[t][k] += e,
            );
        }
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds() -> Vec<(Kind, usize)> {
        vec![
            (Kind::Lstm, 0),
            (Kind::Lstm, 2),
            (Kind::Gru, 0),
            (Kind::RnnTanh, 0),
            (Kind::RnnRelu, 0),
        ]
    }

    /// Both ways to run a step in `f64`: the GEMM crate's product and the packed tile kernel
    /// (portable lanes), each followed by the cell's equations.
    fn steps() -> [StepKernel; 2] {
        [
            StepKernel::Gemm(Isa::Portable),
            StepKernel::Packed(Isa::Portable),
        ]
    }

    #[test]
    fn finite_differences_match_every_backward_kernel() {
        let mut total = 0;
        for (kind, proj) in kinds() {
            for &reverse in &[false, true] {
                for (bs, bias) in [
                    (&[3usize, 3, 2, 1][..], true),
                    (&[2, 2, 2][..], false),
                    (&[1][..], true),
                ] {
                    let dims = RnnDims {
                        input_size: 3,
                        hidden_size: 4,
                        proj_size: proj,
                    };
                    for step in steps() {
                        let p = Problem::random(kind, dims, bs, reverse, bias, 1 + total as u64)
                            .with_step(step);
                        total += check(&p, 1);
                    }
                }
            }
        }
        eprintln!("finite-difference checks: {total} gradient elements");
        assert!(total > 2000, "{total}");
    }

    #[test]
    fn finite_differences_with_a_variational_state_mask() {
        let mut total = 0;
        for (kind, proj) in kinds() {
            for &reverse in &[false, true] {
                let dims = RnnDims {
                    input_size: 2,
                    hidden_size: 3,
                    proj_size: proj,
                };
                for step in steps() {
                    let p = Problem::random(kind, dims, &[3, 3, 2, 1], reverse, true, 31)
                        .with_state_mask(7)
                        .with_step(step);
                    total += check(&p, 1);
                    // the same with batch slices
                    let p = Problem::random(kind, dims, &[16, 16, 12, 9, 3], reverse, true, 32)
                        .with_state_mask(8)
                        .with_step(step);
                    total += check(&p, 2);
                }
            }
        }
        assert!(total > 1600, "{total}");
    }

    #[test]
    fn finite_differences_with_batch_slices() {
        // 16 sequences of mixed lengths, carried by two threads.
        let bs = [16usize, 16, 12, 9, 3];
        for (kind, proj) in kinds() {
            let dims = RnnDims {
                input_size: 2,
                hidden_size: 3,
                proj_size: proj,
            };
            let p = Problem::random(kind, dims, &bs, true, true, 5);
            assert!(check(&p, 2) > 100);
        }
    }

    #[test]
    fn slices_give_the_same_result_as_one_thread() {
        let bs = [40usize, 40, 33, 20, 20, 7, 1];
        for (kind, proj) in kinds() {
            for &reverse in &[false, true] {
                let dims = RnnDims {
                    input_size: 5,
                    hidden_size: 6,
                    proj_size: proj,
                };
                let p = Problem::random(kind, dims, &bs, reverse, true, 9);
                let mut g = Generator::new(3);
                let (o1, _) = p.run(None, 1);
                let up = Outputs {
                    out: rand_vec(&mut g, o1.out.len(), 1.0),
                    h_n: rand_vec(&mut g, o1.h_n.len(), 1.0),
                    c_n: rand_vec(&mut g, o1.c_n.len(), 1.0),
                };
                let (a, ga) = p.run(Some(&up), 1);
                let (b, gb) = p.run(Some(&up), 4);
                let close =
                    |x: &[f64], y: &[f64]| x.iter().zip(y).all(|(u, v)| (u - v).abs() < 1e-12);
                assert!(close(&a.out, &b.out) && close(&a.h_n, &b.h_n) && close(&a.c_n, &b.c_n));
                assert!(close(&ga.x, &gb.x) && close(&ga.h0, &gb.h0) && close(&ga.c0, &gb.c0));
                for k in 0..5 {
                    assert!(close(&ga.params[k], &gb.params[k]), "{kind:?} param {k}");
                }
            }
        }
    }

    #[test]
    fn reverse_direction_equals_forward_on_reversed_sequence() {
        // Unpacked batch: reversing time for every sequence is reversing the step order.
        let (t, b) = (5, 3);
        for (kind, proj) in kinds() {
            let dims = RnnDims {
                input_size: 3,
                hidden_size: 4,
                proj_size: proj,
            };
            let bs = vec![b; t];
            let fwd = Problem::random(kind, dims, &bs, false, true, 21);
            let mut rev = fwd.clone();
            rev.reverse = true;
            let i = dims.input_size;
            for s in 0..t {
                let src = &fwd.x[(t - 1 - s) * b * i..(t - s) * b * i];
                rev.x[s * b * i..(s + 1) * b * i].copy_from_slice(src);
            }
            let (of, _) = fwd.run(None, 1);
            let (or, _) = rev.run(None, 1);
            let p = dims.out_size();
            for s in 0..t {
                let a = &of.out[s * b * p..(s + 1) * b * p];
                let c = &or.out[(t - 1 - s) * b * p..(t - s) * b * p];
                assert!(
                    a.iter().zip(c).all(|(u, v)| (u - v).abs() < 1e-12),
                    "{kind:?}"
                );
            }
            assert_eq!(of.h_n, or.h_n);
        }
    }

    /// Every packed step kernel this CPU runs gives the GEMM path's results in `f32`: outputs,
    /// final states and every gradient, for each cell, odd sizes (a unit tail shorter than a
    /// vector), the projection, batch 1, packed batches in slices, both directions and a
    /// state mask. In training and in inference (which takes another epilogue branch).
    #[test]
    fn packed_kernels_match_the_gemm_path_in_f32() {
        let mut compared = 0;
        let batches: [(&[usize], usize); 3] = [
            (&[1, 1, 1, 1, 1], 1),
            (&[3, 3, 2, 1], 1),
            (&[19, 19, 17, 12, 5, 1], 2),
        ];
        for (kind, proj) in [
            (Kind::Lstm, 0),
            (Kind::Lstm, 7),
            (Kind::Gru, 0),
            (Kind::RnnTanh, 0),
            (Kind::RnnRelu, 0),
        ] {
            for reverse in [false, true] {
                for (bs, slices) in batches {
                    for mask in [false, true] {
                        let dims = RnnDims {
                            input_size: 5,
                            hidden_size: 21,
                            proj_size: proj,
                        };
                        let mut p = Problem::random(kind, dims, bs, reverse, true, 7 + compared);
                        if mask {
                            p = p.with_state_mask(3);
                        }
                        let gemm = p
                            .clone()
                            .with_step(StepKernel::Gemm(Isa::Portable))
                            .cast::<f32>();
                        let (fwd, _) = gemm.run(None, slices);
                        let mut g = Generator::new(5);
                        let up = Outputs {
                            out: rand_vec(&mut g, fwd.out.len(), 1.0),
                            h_n: rand_vec(&mut g, fwd.h_n.len(), 1.0),
                            c_n: rand_vec(&mut g, fwd.c_n.len(), 1.0),
                        }
                        .cast::<f32>();
                        let (want_o, want_g) = gemm.run(Some(&up), slices);
                        for isa in Isa::all_available() {
                            let q = p.clone().with_step(StepKernel::Packed(isa)).cast::<f32>();
                            let (infer, _) = q.run(None, slices);
                            let (o, gr) = q.run(Some(&up), slices);
                            let what = format!(
                                "{kind:?} proj {proj} reverse {reverse} {bs:?} mask {mask} {isa:?}"
                            );
                            for (name, a, b) in [
                                ("out", &o.out, &want_o.out),
                                ("out (inference)", &infer.out, &want_o.out),
                                ("h_n", &o.h_n, &want_o.h_n),
                                ("c_n", &o.c_n, &want_o.c_n),
                                ("dx", &gr.x, &want_g.x),
                                ("dh0", &gr.h0, &want_g.h0),
                                ("dc0", &gr.c0, &want_g.c0),
                                ("dw_ih", &gr.params[0], &want_g.params[0]),
                                ("dw_hh", &gr.params[1], &want_g.params[1]),
                                ("db_ih", &gr.params[2], &want_g.params[2]),
                                ("db_hh", &gr.params[3], &want_g.params[3]),
                                ("dw_hr", &gr.params[4], &want_g.params[4]),
                            ] {
                                assert_eq!(a.len(), b.len(), "{what} {name}");
                                for (k, (&x, &y)) in a.iter().zip(b.iter()).enumerate() {
                                    assert!(
                                        (x - y).abs() <= 2e-5 * (1.0 + y.abs()),
                                        "{what} {name}[{k}]: packed {x} vs gemm {y}"
                                    );
                                }
                                compared += a.len() as u64;
                            }
                        }
                    }
                }
            }
        }
        assert!(compared > 100_000, "{compared}");
    }

    /// A cell kind that exists only here, to show the seam: a leaky-integrator RNN,
    /// `h' = (1 − α) h + α tanh(a)` with `a = W_ih x + b_ih + W_hh h + b_hh`. It supplies only
    /// its step math, and passes the same finite-difference check as the real cells (with
    /// batch slices, in both directions, with a state mask).
    mod leaky {
        use super::super::super::cell::{
            combined_bias, mat_mut, BackwardStep, CellKernel, ForwardStep, RnnWeights,
        };
        use super::super::super::float::Float;
        use super::super::super::gemm::{matmul, MatRef};
        use crate::rnn::RnnDims;

        pub(crate) struct LeakyKernel<'a> {
            pub w: RnnWeights<'a, f64>,
            pub dims: RnnDims,
            pub alpha: f64,
        }

        impl CellKernel<f64> for LeakyKernel<'_> {
            type ForwardScratch = ();
            type BackwardScratch = Vec<f64>;

            fn weights(&self) -> &RnnWeights<'_, f64> {
                &self.w
            }
            fn dims(&self) -> RnnDims {
                self.dims
            }
            fn gate_width(&self) -> usize {
                self.dims.hidden_size
            }
            fn forward_scratch(&self, _rows: usize, _training: bool) {}
            fn backward_scratch(&self, rows: usize) -> Vec<f64> {
                vec![0.0; rows * self.dims.hidden_size]
            }

            fn forward_step(&self, s: ForwardStep<'_, f64>, _: &mut ()) {
                let h = self.dims.hidden_size;
                let n = s.rows(h);
                let x = s.product_input();
                // a = W_ih x + b_ih + b_hh + h · W_hhᵀ; gates keep tanh(a)
                matmul(
                    mat_mut(s.gates, n, h),
                    MatRef::new(x, n, h),
                    MatRef::new(self.w.w_hh, h, h).t(),
                    true,
                    s.par,
                );
                let bias = combined_bias(self.w.b_ih, self.w.b_hh);
                for (i, a) in s.gates.chunks_exact_mut(h).enumerate() {
                    if let Some(b) = &bias {
                        a.iter_mut().zip(b).for_each(|(a, &b)| *a += b);
                    }
                    f64::tanh_slice(a);
                    // SAFETY: the step's output rows are this slice's alone.
                    let out = unsafe { s.out.row(i, h) };
                    for (j, o) in out.iter_mut().enumerate() {
                        *o = (1.0 - self.alpha) * s.h[i * h + j] + self.alpha * a[j];
                    }
                }
            }

            fn backward_step(&self, s: BackwardStep<'_, f64>, rec: &mut Vec<f64>) {
                let h = self.dims.hidden_size;
                let BackwardStep {
                    rows,
                    gates,
                    dh,
                    mask,
                    par,
                    ..
                } = s;
                let n = rows.n;
                // ∂L/∂a = ∂L/∂h' · α (1 − tanh²(a))
                for (g, &d) in gates.iter_mut().zip(dh.iter()) {
                    *g = d * self.alpha * (1.0 - *g * *g);
                }
                // ∂L/∂h = (1 − α) ∂L/∂h' + (∂L/∂a · W_hh) ⊙ mask
                let rec = &mut rec[..n * h];
                matmul(
                    mat_mut(rec, n, h),
                    MatRef::new(gates, n, h),
                    MatRef::new(self.w.w_hh, h, h),
                    false,
                    par,
                );
                for (k, d) in dh.iter_mut().enumerate() {
                    let m = mask.map_or(1.0, |m| m[k]);
                    *d = (1.0 - self.alpha) * *d + rec[k] * m;
                }
            }
        }
    }

    #[test]
    fn a_new_cell_kind_plugs_into_the_scan_with_its_step_math_alone() {
        let mut total = 0;
        for &reverse in &[false, true] {
            for (bs, slices) in [(&[3usize, 3, 2, 1][..], 1), (&[16, 16, 12, 9, 3][..], 2)] {
                let dims = RnnDims {
                    input_size: 2,
                    hidden_size: 3,
                    proj_size: 0,
                };
                // Sized as an Elman layer (one gate block); run with the leaky kernel.
                let p =
                    Problem::random(Kind::RnnTanh, dims, bs, reverse, true, 41).with_state_mask(3);
                total += check_with(&p, slices, &|p, up, s| {
                    let k = leaky::LeakyKernel {
                        w: p.weights(),
                        dims: p.dims,
                        alpha: 0.3,
                    };
                    p.run_kernel(&k, up, s)
                });
            }
        }
        assert!(total > 200, "{total}");
    }
}
