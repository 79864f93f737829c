//! The GEMM ceiling: GFLOP/s of the matrix products the recurrent kernels make at the `imdb`
//! LSTM shape, measured alone (`recurrent bench --gemm`).

use recurrent::backend::cpu::gemm::{matmul, MatMut, MatRef, Parallelism};
use recurrent::Generator;
use std::time::Instant;

/// GFLOP/s of the GEMM crate at the products of the `imdb` LSTM shape: the ceiling the
/// recurrent kernels are measured against.
pub fn gemm_ceiling() -> Vec<(String, f64)> {
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
    let mut g = Generator::new(5);
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
                let t = Instant::now();
                for _ in 0..reps {
                    matmul(MatMut::new(&mut c, m, n), av, bv, false, p);
                }
                best = best.min(t.elapsed().as_secs_f64() / reps as f64);
            }
            (name.to_string(), flops / best / 1e9)
        })
        .collect()
}
