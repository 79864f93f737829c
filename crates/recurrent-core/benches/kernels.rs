//! criterion benches of the CPU kernels through the public API: a matrix product at the RNN
//! shapes (the tensor op), the fused activations, and one layer forward and backward of each
//! recurrence (the same code for every mode).
//!
//! Run: `cargo bench -p recurrent-core --bench kernels` (the side-by-side comparison with
//! PyTorch is `recurrent bench` plus `scripts/bench_compare.sh`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use recurrent_core::rnn::host::{
    layer_backward, layer_forward, LayerArgs, LayerGrads, RnnGrads, RnnWeights,
};
use recurrent_core::rnn::{RnnDims, RnnMode, Steps};
use recurrent_core::{Float, Generator, Tensor};

fn rand(n: usize, g: &mut Generator) -> Vec<f32> {
    (0..n).map(|_| g.uniform_range(-0.1, 0.1)).collect()
}

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    let mut g = Generator::new(1);
    for &(name, m, n, k) in &[
        ("step 64x256x1024", 64usize, 1024usize, 256usize),
        ("input projection 4096x128x1024", 4096, 1024, 128),
    ] {
        let a = Tensor::from_vec(rand(m * k, &mut g), &[m, k]).unwrap();
        let b = Tensor::from_vec(rand(k * n, &mut g), &[k, n]).unwrap();
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_function(name, |bch| bch.iter(|| a.matmul(&b).unwrap()));
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
            |mut v| f32::sigmoid_slice(&mut v),
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("tanh 64k", |b| {
        b.iter_batched(
            || x.clone(),
            |mut v| f32::tanh_slice(&mut v),
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
    for mode in [RnnMode::Lstm, RnnMode::Gru, RnnMode::RnnTanh] {
        let gates = mode.gate_multiplier();
        let c0 = vec![0f32; if mode.has_cell_state() { b * h } else { 0 }];
        let w_ih = rand(gates * h * i, &mut g);
        let w_hh = rand(gates * h * h, &mut g);
        let b_ih = rand(gates * h, &mut g);
        let b_hh = rand(gates * h, &mut g);
        let w = [RnnWeights {
            w_ih: &w_ih,
            w_hh: &w_hh,
            b_ih: Some(&b_ih),
            b_hh: Some(&b_hh),
            w_hr: None,
            h_mask: None,
        }];
        let args = LayerArgs {
            mode,
            dims,
            steps: &steps,
            x: &x,
            h0: &h0,
            c0: &c0,
            weights: &w,
        };
        let flops = (2 * gates * h * (i + h) * t * b) as u64;
        group.throughput(Throughput::Elements(3 * flops));
        group.bench_function(
            BenchmarkId::new(mode.name(), "forward+backward T64 B32 I64 H128"),
            |bch| {
                bch.iter(|| {
                    let mut out = vec![0f32; t * b * h];
                    let mut h_n = vec![0f32; b * h];
                    let mut c_n = vec![0f32; c0.len()];
                    let saved = layer_forward(&mut out, &mut h_n, &mut c_n, &args, true)
                        .expect("training keeps state");
                    let (mut dh0, mut dc0) = (vec![0f32; b * h], vec![0f32; c0.len()]);
                    let (mut gw_ih, mut gw_hh) = (vec![0f32; w_ih.len()], vec![0f32; w_hh.len()]);
                    let dout = vec![1f32; t * b * h];
                    let grads = LayerGrads {
                        dx: None,
                        dh0: &mut dh0,
                        dc0: &mut dc0,
                        params: vec![RnnGrads {
                            w_ih: Some(&mut gw_ih),
                            w_hh: Some(&mut gw_hh),
                            ..Default::default()
                        }],
                    };
                    layer_backward(grads, Some(&dout), None, None, saved, &out, &args);
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, gemm, activations, layers);
criterion_main!(benches);
