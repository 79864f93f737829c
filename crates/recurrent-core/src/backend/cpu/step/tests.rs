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
