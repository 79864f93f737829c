//! criterion benches of the CPU kernels: the matrix products at the RNN shapes, the fused
//! activations, and one LSTM / GRU layer-direction forward and backward.
//!
//! Run: `cargo bench -p recurrent-core --bench kernels` (the side-by-side comparison with
//! PyTorch is `recurrent bench` plus `scripts/bench_compare.sh`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use recurrent_core::backend::cpu::activation::{sigmoid_slice, tanh_slice};
use recurrent_core::backend::cpu::gemm::{matmul, MatMut, MatRef, Parallelism};
use recurrent_core::backend::cpu::gru::{gru_backward_time, gru_forward, GruSaved};
use recurrent_core::backend::cpu::lstm::{lstm_backward_time, lstm_forward, LstmSaved};
use recurrent_core::backend::cpu::scan::{RnnDims, RnnWeights, RowBlock, RowsRef, Steps};
use recurrent_core::Generator;

fn rand(n: usize, g: &mut Generator) -> Vec<f32> {
    (0..n).map(|_| g.uniform_range(-0.1, 0.1)).collect()
}

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    let mut g = Generator::new(1);
    for &(name, m, n, k, par) in &[
        ("step 64x256x1024", 64usize, 1024usize, 256usize, true),
        ("step slice 32x256x1024", 32, 1024, 256, false),
        ("input projection 4096x128x1024", 4096, 1024, 128, true),
    ] {
        let a = rand(m * k, &mut g);
        let b = rand(k * n, &mut g);
        let mut out = vec![0f32; m * n];
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_function(name, |bch| {
            bch.iter(|| {
                let p = if par {
                    Parallelism::Auto
                } else {
                    Parallelism::Sequential
                };
                matmul(
                    MatMut::new(&mut out, m, n),
                    MatRef::new(&a, m, k),
                    MatRef::new(&b, n, k).t(),
                    false,
                    p,
                )
            })
        });
    }
    group.finish();
}

fn activations(c: &mut Criterion) {
    let mut group = c.benchmark_group("activations");
    let mut g = Generator::new(2);
    let x: Vec<f32> = (0..65536).map(|_| g.uniform_range(-6.0, 6.0)).collect();
    group.throughput(Throughput::Elements(x.len() as u64));
    group.bench_function("sigmoid 64k", |b| {
        b.iter_batched(
            || x.clone(),
            |mut v| sigmoid_slice(&mut v),
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("tanh 64k", |b| {
        b.iter_batched(
            || x.clone(),
            |mut v| tanh_slice(&mut v),
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("libm tanh 64k", |b| {
        b.iter_batched(
            || x.clone(),
            |mut v| v.iter_mut().for_each(|y| *y = y.tanh()),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn layers(c: &mut Criterion) {
    let mut group = c.benchmark_group("layer");
    group.sample_size(10);
    let (t, b, i, h) = (64usize, 32usize, 64usize, 128usize);
    let steps = Steps::full(t, b).unwrap();
    let dims = RnnDims {
        input_size: i,
        hidden_size: h,
        proj_size: 0,
    };
    let mut g = Generator::new(3);
    let x = rand(t * b * i, &mut g);
    let h0 = vec![0f32; b * h];
    let c0 = vec![0f32; b * h];
    for (name, gates) in [("lstm", 4usize), ("gru", 3)] {
        let w_ih = rand(gates * h * i, &mut g);
        let w_hh = rand(gates * h * h, &mut g);
        let b_ih = rand(gates * h, &mut g);
        let b_hh = rand(gates * h, &mut g);
        let w = RnnWeights {
            w_ih: &w_ih,
            w_hh: &w_hh,
            b_ih: Some(&b_ih),
            b_hh: Some(&b_hh),
            w_hr: None,
            h_mask: None,
        };
        let flops = (2 * gates * h * (i + h) * t * b) as u64;
        group.throughput(Throughput::Elements(3 * flops));
        group.bench_function(
            BenchmarkId::new(name, "forward+backward T64 B32 I64 H128"),
            |bch| {
                bch.iter(|| {
                    let mut out = vec![0f32; t * b * h];
                    let mut h_n = vec![0f32; b * h];
                    let mut dh0 = vec![0f32; b * h];
                    let dout = vec![1f32; t * b * h];
                    let xm = MatRef::new(&x, t * b, i);
                    if gates == 4 {
                        let mut c_n = vec![0f32; b * h];
                        let mut dc0 = vec![0f32; b * h];
                        let mut s = LstmSaved::default();
                        lstm_forward(
                            &RowBlock::new(&mut out, h),
                            &mut h_n,
                            &mut c_n,
                            Some(&mut s),
                            xm,
                            &h0,
                            &c0,
                            &w,
                            dims,
                            &steps,
                            false,
                            2,
                        );
                        lstm_backward_time(
                            &mut dh0,
                            &mut dc0,
                            Some(&RowsRef::new(&dout, h)),
                            None,
                            None,
                            s,
                            &c0,
                            &w,
                            dims,
                            &steps,
                            false,
                            2,
                        );
                    } else {
                        let mut s = GruSaved::default();
                        gru_forward(
                            &RowBlock::new(&mut out, h),
                            &mut h_n,
                            Some(&mut s),
                            xm,
                            &h0,
                            &w,
                            dims,
                            &steps,
                            false,
                            2,
                        );
                        gru_backward_time(
                            &mut dh0,
                            Some(&RowsRef::new(&dout, h)),
                            None,
                            s,
                            &RowsRef::new(&out, h),
                            &h0,
                            &w,
                            dims,
                            &steps,
                            false,
                            2,
                        );
                    }
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, gemm, activations, layers);
criterion_main!(benches);
