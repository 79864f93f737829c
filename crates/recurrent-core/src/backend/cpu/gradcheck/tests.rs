//! The finite-difference checks of every cell, the test-only cell kind, and the packed step
//! kernels against the GEMM path.

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
            let close = |x: &[f64], y: &[f64]| x.iter().zip(y).all(|(u, v)| (u - v).abs() < 1e-12);
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
            let p = Problem::random(Kind::RnnTanh, dims, bs, reverse, true, 41).with_state_mask(3);
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
