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
mod tests;
