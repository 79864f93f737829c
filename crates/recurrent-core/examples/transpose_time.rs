//! Times `scan::transpose` at the sizes of the weight-gradient products.
use recurrent_core::backend::cpu::gemm::MatRef;
use recurrent_core::backend::cpu::scan::transpose;
use std::time::Instant;
fn main() {
    for &(n, c) in &[(16384usize, 128usize), (16384, 256)] {
        let x: Vec<f32> = (0..n * c).map(|k| k as f32).collect();
        let mut best = f64::MAX;
        for _ in 0..20 {
            let t0 = Instant::now();
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
