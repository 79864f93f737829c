//! The tile kernels against a naive triple loop, on random shapes: odd sizes, unit tails
//! shorter than a vector, one row, every instruction set this CPU runs.

use super::*;
use crate::rng::Generator;
use proptest::prelude::*;

/// `out[r, c] = Σ_k a[r, k] · b[k, c]` in `f64`.
fn naive(a: &[f32], rows: usize, k: usize, lda: usize, b: &[f32], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; rows * n];
    for r in 0..rows {
        for c in 0..n {
            out[r * n + c] = (0..k)
                .map(|kk| a[r * lda + kk] as f64 * b[kk * n + c] as f64)
                .sum();
        }
    }
    out
}

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut g = Generator::new(seed);
    (0..len).map(|_| g.uniform_range(-1.0, 1.0)).collect()
}

/// Every way a product can be asked for, compared with [`naive`]: `B = Wᵀ` packed by gates
/// and `B = W` packed plainly, stored, masked and accumulated.
fn check(isa: Isa, rows: usize, k: usize, units: usize, gates: usize, pad: usize, seed: u64) {
    let n = gates * units;
    let lda = k + pad;
    let a = random(rows * lda, seed);
    // W as PyTorch stores it, [n, k]; B = Wᵀ is [k, n]
    let w = random(n * k, seed + 1);
    let bt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
    let want = naive(&a, rows, k, lda, &bt, n);
    let tol = |x: f64| 1e-5 * (1.0 + x.abs()) * (k as f64).sqrt();

    // transposed and gate-interleaved, plain store
    let packed = Packed::transposed(isa, &w, gates, units, k);
    let mut out = vec![f32::NAN; rows * n];
    // The store epilogue writes gate 0 only: run it per gate through a wrapper.
    struct Gates<'a> {
        out: *mut f32,
        n: usize,
        units: usize,
        gates: usize,
        _life: std::marker::PhantomData<&'a mut [f32]>,
    }
    unsafe impl Sync for Gates<'_> {}
    impl Epilogue<f32> for Gates<'_> {
        unsafe fn block<V: Lanes<f32>>(&self, row: usize, unit: usize, n: usize, acc: [V; 4]) {
            for (q, v) in acc.iter().enumerate().take(self.gates) {
                v.store(self.out.add(row * self.n + q * self.units + unit), n);
            }
        }
    }
    let epi = Gates {
        out: out.as_mut_ptr(),
        n,
        units,
        gates,
        _life: std::marker::PhantomData,
    };
    unsafe { product(&packed, Rows::new(&a, rows, k, lda), &epi) };
    for (i, (&o, &x)) in out.iter().zip(&want).enumerate() {
        assert!(
            (o as f64 - x).abs() <= tol(x),
            "{isa:?} transposed rows {rows} k {k} units {units} gates {gates}: [{i}] {o} vs {x}"
        );
    }

    // direct B = bt [k, n], masked and accumulated onto a known start
    let packed = Packed::direct(isa, &bt, k, n);
    let mask = random(rows * n, seed + 2);
    let start = random(rows * n, seed + 3);
    let mut out = start.clone();
    let store = Store::new(out.as_mut_ptr(), n, true).masked(Some(&mask), n);
    unsafe { product(&packed, Rows::new(&a, rows, k, lda), &store) };
    for i in 0..rows * n {
        let x = start[i] as f64 + want[i] * mask[i] as f64;
        assert!(
            (out[i] as f64 - x).abs() <= tol(x),
            "{isa:?} direct masked rows {rows} k {k} n {n}: [{i}] {} vs {x}",
            out[i]
        );
    }
}

#[test]
fn fixed_shapes_including_tails_and_one_row() {
    for isa in Isa::all_available() {
        for &(rows, k, units, gates) in &[
            (1, 1, 1, 1),
            (1, 64, 64, 4),
            (1, 32, 64, 3),
            (7, 33, 17, 4),
            (9, 5, 15, 3),
            (13, 70, 65, 1),
            (32, 256, 40, 4),
        ] {
            check(isa, rows, k, units, gates, 0, 7);
            check(isa, rows, k, units, gates, 3, 8);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_shapes_match_a_naive_loop(
        rows in 1usize..20,
        k in 1usize..80,
        units in 1usize..70,
        gates in prop::sample::select(vec![1usize, 3, 4]),
        pad in 0usize..3,
        seed in 0u64..1000,
    ) {
        for isa in Isa::all_available() {
            check(isa, rows, k, units, gates, pad, seed);
        }
    }
}

/// The `f64` portable kernel is exact up to summation order.
#[test]
fn f64_portable_product() {
    let (rows, k, units) = (5, 9, 7);
    let a: Vec<f64> = (0..rows * k).map(|i| (i as f64 * 0.37).sin()).collect();
    let w: Vec<f64> = (0..4 * units * k)
        .map(|i| (i as f64 * 0.11).cos())
        .collect();
    let packed = Packed::transposed(Isa::Avx512, &w, 1, 4 * units, k);
    assert_eq!(
        packed.isa(),
        Isa::Portable,
        "f64 has only the portable kernel"
    );
    let mut out = vec![0.0f64; rows * 4 * units];
    let store = Store::new(out.as_mut_ptr(), 4 * units, false);
    unsafe { product(&packed, Rows::new(&a, rows, k, k), &store) };
    for r in 0..rows {
        for c in 0..4 * units {
            let x: f64 = (0..k).map(|kk| a[r * k + kk] * w[c * k + kk]).sum();
            assert!((out[r * 4 * units + c] - x).abs() < 1e-12);
        }
    }
}

/// GFLOP/s of the tile kernel against the GEMM crate at the step shapes, one thread
/// (`cargo test --release -p recurrent-core step_rate -- --ignored --nocapture`).
#[test]
#[ignore]
fn step_rate() {
    use super::super::gemm::{matmul, MatMut, MatRef, Parallelism};
    use std::time::Instant;
    struct Nop;
    impl Epilogue<f32> for Nop {
        #[inline(always)]
        unsafe fn block<V: Lanes<f32>>(&self, _: usize, _: usize, _: usize, acc: [V; 4]) {
            std::hint::black_box(acc);
        }
    }
    for &(rows, k, units, gates, label) in &[
        (
            32usize,
            256usize,
            256usize,
            4usize,
            "fwd slice 32x256.256x1024",
        ),
        (64, 256, 256, 4, "fwd 64x256.256x1024"),
        (32, 1024, 256, 1, "bwd slice 32x1024.1024x256"),
        (1, 64, 64, 4, "batch 1 64.64x256"),
        (8, 128, 128, 4, "batch 8 128.128x512"),
        (32, 128, 128, 3, "gru 32x128.128x384"),
    ] {
        let n = gates * units;
        let a = random(rows * k, 1);
        let w = random(n * k, 2);
        let flops = 2.0 * (rows * k * n) as f64;
        let reps = ((2e9 / flops) as usize).clamp(10, 200_000);
        let mut line = format!("{label:32}");
        for isa in Isa::all_available() {
            let packed = Packed::transposed(isa, &w, gates, units, k);
            let t = Instant::now();
            for _ in 0..reps {
                unsafe { product(&packed, Rows::new(&a, rows, k, k), &Nop) };
            }
            let s = t.elapsed().as_secs_f64();
            line += &format!("  {}: {:6.1}", isa.name(), flops * reps as f64 / s / 1e9);
        }
        let mut out = vec![0f32; rows * n];
        let t = Instant::now();
        for _ in 0..reps {
            matmul(
                MatMut::new(&mut out, rows, n),
                MatRef::new(&a, rows, k),
                MatRef::new(&w, n, k).t(),
                false,
                Parallelism::Sequential,
            );
        }
        let s = t.elapsed().as_secs_f64();
        line += &format!("  faer: {:6.1} GFLOP/s", flops * reps as f64 / s / 1e9);
        println!("{line}");
    }
}

/// Where the recurrent weights live with two cores: µs per step of the forward product
/// `h_t = W_hh h_{t-1}` (the epilogue stores the tile, so each step reads the last) over a
/// sequence, with
/// - **one thread**: the latency path;
/// - **batch slices**: each core carries half the rows through every step and reads all of
///   `W_hh` (today's scan);
/// - **column split**: each core keeps the panels of half the units (all gates of a unit, so
///   the cell's equations stay local) and computes them for every row; a spinning barrier
///   per step, since the next step reads every unit.
///
/// `cargo test --release -p recurrent-core where_weights_live -- --ignored --nocapture`;
/// the numbers are in `docs/step-kernels.md`.
#[test]
#[ignore]
fn where_weights_live() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    /// `out[row, unit..unit+n] = acc[0]`: keeps the product's data dependence step to step.
    struct Sink {
        out: *mut f32,
        ld: usize,
        gates_ld: usize,
    }
    unsafe impl Sync for Sink {}
    impl Epilogue<f32> for Sink {
        #[inline(always)]
        unsafe fn block<V: Lanes<f32>>(&self, row: usize, unit: usize, n: usize, acc: [V; 4]) {
            let _ = self.gates_ld;
            acc[0].store(self.out.add(row * self.ld + unit), n);
        }
    }
    /// Spinning barrier for two threads (a futex wake costs more than a small step).
    struct Spin {
        count: AtomicUsize,
        generation: AtomicUsize,
    }
    impl Spin {
        fn wait(&self, parties: usize) {
            let gen = self.generation.load(Ordering::Acquire);
            if self.count.fetch_add(1, Ordering::AcqRel) + 1 == parties {
                self.count.store(0, Ordering::Relaxed);
                self.generation.fetch_add(1, Ordering::Release);
            } else {
                while self.generation.load(Ordering::Acquire) == gen {
                    std::hint::spin_loop();
                }
            }
        }
    }
    struct Shared(*mut f32);
    unsafe impl Sync for Shared {}
    unsafe impl Send for Shared {}

    let isa = Isa::all_available()[0];
    let gates = 4;
    println!(
        "{:28} {:>10} {:>10} {:>10}",
        "LSTM step (us)", "1 thread", "slices", "columns"
    );
    for &(batch, units) in &[
        (64usize, 256usize),
        (32, 256),
        (16, 256),
        (8, 256),
        (8, 128),
        (1, 512),
        (1, 256),
        (1, 64),
    ] {
        let k = units;
        let n = gates * units;
        let w = random(n * k, 3);
        let flops = 2.0 * (batch * k * n) as f64;
        let steps = ((4e8 / flops) as usize).clamp(200, 200_000);
        // h is [batch, units], double-buffered: step t reads buffer t % 2, writes the other.
        let mut h = [random(batch * units, 4), vec![0f32; batch * units]];
        let time = |f: &mut dyn FnMut()| {
            f();
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6 / steps as f64
        };
        let packed = Packed::transposed(isa, &w, gates, units, k);
        let run_rows = |h: &mut [Vec<f32>; 2], lo: usize, hi: usize| {
            let [a, b] = h;
            for t in 0..steps {
                let (src, dst) = if t % 2 == 0 {
                    (&*a, &mut *b)
                } else {
                    (&*b, &mut *a)
                };
                let sink = Sink {
                    out: dst[lo * units..].as_mut_ptr(),
                    ld: units,
                    gates_ld: n,
                };
                unsafe {
                    product(
                        &packed,
                        Rows::new(&src[lo * units..], hi - lo, k, units),
                        &sink,
                    )
                };
            }
        };
        let one = time(&mut || run_rows(&mut h, 0, batch));
        let slices = if batch >= 2 {
            let half = batch / 2;
            time(&mut || {
                let [a, b] = &mut h;
                let (a0, a1) = a.split_at_mut(half * units);
                let (b0, b1) = b.split_at_mut(half * units);
                std::thread::scope(|s| {
                    for (a, b, rows) in [(a0, b0, half), (a1, b1, batch - half)] {
                        let packed = &packed;
                        s.spawn(move || {
                            for t in 0..steps {
                                let (src, dst) = if t % 2 == 0 {
                                    (&*a, &mut *b)
                                } else {
                                    (&*b, &mut *a)
                                };
                                let sink = Sink {
                                    out: dst.as_mut_ptr(),
                                    ld: units,
                                    gates_ld: n,
                                };
                                unsafe { product(packed, Rows::new(src, rows, k, units), &sink) };
                            }
                        });
                    }
                });
            })
        } else {
            f64::NAN
        };
        // Column split: core j keeps the rows of W for units j·U/2..(j+1)·U/2 of every gate.
        let half = units / 2;
        let parts: Vec<Packed<f32>> = (0..2)
            .map(|j| {
                let (lo, hi) = (j * half, if j == 0 { half } else { units });
                let mut part = Vec::with_capacity(gates * (hi - lo) * k);
                for g in 0..gates {
                    part.extend_from_slice(&w[(g * units + lo) * k..(g * units + hi) * k]);
                }
                Packed::transposed(isa, &part, gates, hi - lo, k)
            })
            .collect();
        let columns = time(&mut || {
            let spin = Spin {
                count: AtomicUsize::new(0),
                generation: AtomicUsize::new(0),
            };
            let bufs = [Shared(h[0].as_mut_ptr()), Shared(h[1].as_mut_ptr())];
            std::thread::scope(|s| {
                for (j, part) in parts.iter().enumerate() {
                    let (spin, bufs) = (&spin, &bufs);
                    s.spawn(move || {
                        let lo = j * half;
                        for t in 0..steps {
                            let (src, dst) = (bufs[t % 2].0, bufs[(t + 1) % 2].0);
                            let sink = Sink {
                                out: unsafe { dst.add(lo) },
                                ld: units,
                                gates_ld: n,
                            };
                            let rows = unsafe {
                                Rows::new(
                                    std::slice::from_raw_parts(src, batch * units),
                                    batch,
                                    k,
                                    units,
                                )
                            };
                            unsafe { product(part, rows, &sink) };
                            spin.wait(2);
                        }
                    });
                }
            });
        });
        println!(
            "{:28} {:>10.2} {:>10.2} {:>10.2}",
            format!("batch {batch}, hidden {units}"),
            one,
            slices,
            columns
        );
    }
}

/// A call of fewer than `PACK_MIN_STEPS` steps does not pack its weights (unless the
/// environment asks for a packed kernel): a cell stepped from a loop goes through the GEMM
/// path with the same instruction set for its equations.
#[test]
fn short_calls_take_the_gemm_path() {
    if requested() != Requested::Auto {
        return; // RECURRENT_STEP_KERNEL forces a kernel for every call.
    }
    for isa in Isa::all_available() {
        let packed = StepKernel::Packed(isa);
        assert_eq!(packed.for_steps(1), StepKernel::Gemm(isa));
        assert_eq!(packed.for_steps(PACK_MIN_STEPS - 1), StepKernel::Gemm(isa));
        assert_eq!(packed.for_steps(PACK_MIN_STEPS), packed);
        assert_eq!(StepKernel::Gemm(isa).for_steps(1000), StepKernel::Gemm(isa));
    }
}
