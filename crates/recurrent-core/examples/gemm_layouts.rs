//! Measures one GEMM shape in every storage layout (row/column-major for each operand and the
//! destination) through faer, on 1 or 2 threads: the experiment behind the layout choices of
//! the weight-gradient and step products in `backend::cpu`.
//!
//! `cargo run --release -p recurrent-core --example gemm_layouts -- M N K [threads] [kchunk]`
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("numbers"))
        .collect();
    let (m, n, k) = (args[0], args[1], args[2]);
    let threads = args.get(3).copied().unwrap_or(2);
    let kchunk = args.get(4).copied().unwrap_or(k);
    let a: Vec<f32> = (0..m * k).map(|i| ((i % 97) as f32) * 0.01).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i % 89) as f32) * 0.01).collect();
    let mut c = vec![0f32; m * n];
    let par = if threads > 1 {
        faer::Par::rayon(threads)
    } else {
        faer::Par::Seq
    };
    let flops = 2.0 * (m * n * k) as f64;
    for &(ac, bc, cc) in &[
        (false, false, false),
        (true, false, false),
        (false, true, false),
        (true, true, false),
        (false, false, true),
        (true, false, true),
        (false, true, true),
        (true, true, true),
    ] {
        let mut best = f64::MAX;
        for _ in 0..7 {
            let t0 = Instant::now();
            let mut p = 0;
            while p < k {
                let kc = kchunk.min(k - p);
                // SAFETY: every view lies inside its buffer.
                unsafe {
                    // a: [m, k]; column-major means element (i, j) at i + j*m.
                    let av = if ac {
                        faer::MatRef::from_raw_parts(a.as_ptr().add(p * m), m, kc, 1, m as isize)
                    } else {
                        faer::MatRef::from_raw_parts(a.as_ptr().add(p), m, kc, k as isize, 1)
                    };
                    let bv = if bc {
                        faer::MatRef::from_raw_parts(b.as_ptr().add(p), kc, n, 1, k as isize)
                    } else {
                        faer::MatRef::from_raw_parts(b.as_ptr().add(p * n), kc, n, n as isize, 1)
                    };
                    let cv = if cc {
                        faer::MatMut::from_raw_parts_mut(c.as_mut_ptr(), m, n, 1, m as isize)
                    } else {
                        faer::MatMut::from_raw_parts_mut(c.as_mut_ptr(), m, n, n as isize, 1)
                    };
                    let acc = if p == 0 {
                        faer::Accum::Replace
                    } else {
                        faer::Accum::Add
                    };
                    faer::linalg::matmul::matmul(cv, acc, av, bv, 1.0f32, par);
                }
                p += kc;
            }
            best = best.min(t0.elapsed().as_secs_f64());
        }
        println!(
            "a {} b {} c {}: {:6.1} GFLOP/s",
            if ac { "col" } else { "row" },
            if bc { "col" } else { "row" },
            if cc { "col" } else { "row" },
            flops / best / 1e9
        );
    }
}
