//! The bench's cases: a recurrent stack on padded or packed input (`imdb`, `small`, `bidir`,
//! `packed`, `padded`), batch-1 latency as one layer call on a 1000-step sequence
//! (`cell-latency`) and as a cell stepped 1000 times (`cell-loop`), the whole lab model
//! (`lab`); each timed after two warm-up steps, with its FLOPs and resident-memory growth.

use super::Row;
use crate::cell::Cell;
use crate::sentiment::config::{OptimizerKind, Pool, SentimentConfig};
use crate::sentiment::model::SentimentModel;
use anyhow::{anyhow, Result};
use recurrent::nn::{
    pack_padded_sequence, CellConfig, Module, Recurrent, RecurrentCell, RecurrentConfig, RnnState,
};
use recurrent::optim::{Adam, AdamConfig, Optimizer};
use recurrent::{Generator, Reduction, Tensor};
use recurrent_data::batch::{Batch, Encoded};
use std::time::Instant;

/// The size of a case.
#[derive(Clone, Copy)]
pub(super) struct Shape {
    batch: usize,
    seq: usize,
    input: usize,
    hidden: usize,
    layers: usize,
    bidir: bool,
}

/// The lab's shape: batch 64, seq 256, input 128, hidden 256, 2 layers.
pub(super) const IMDB: Shape = Shape {
    batch: 64,
    seq: 256,
    input: 128,
    hidden: 256,
    layers: 2,
    bidir: false,
};
/// batch 32, seq 64, input 64, hidden 128, 1 layer.
pub(super) const SMALL: Shape = Shape {
    batch: 32,
    seq: 64,
    input: 64,
    hidden: 128,
    layers: 1,
    bidir: false,
};
/// The lab's shape as one bidirectional layer.
pub(super) const BIDIR: Shape = Shape {
    batch: 64,
    seq: 256,
    input: 128,
    hidden: 256,
    layers: 1,
    bidir: true,
};

fn gates(layer: &str) -> usize {
    match layer {
        "lstm" => 4,
        "gru" => 3,
        _ => 1,
    }
}

/// Forward FLOPs of a stacked layer over `tokens` (batch × steps) tokens.
fn forward_flops(layer: &str, s: Shape, tokens: f64) -> f64 {
    let (g, h) = (gates(layer) as f64, s.hidden as f64);
    let d = if s.bidir { 2.0 } else { 1.0 };
    (0..s.layers)
        .map(|l| {
            let i = if l == 0 { s.input as f64 } else { d * h };
            2.0 * g * h * (i + h) * d * tokens
        })
        .sum()
}

fn read_status(key: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Reset the resident-set high-water mark; returns the current resident set (MB).
fn reset_peak() -> Option<f64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    read_status("VmRSS:")
}

fn timed(repeat: usize, step: impl FnMut() -> Result<()>) -> Result<(Vec<f64>, f64)> {
    timed_from(reset_peak(), repeat, step)
}

/// [`timed`] with the memory baseline taken by the caller (before steps it ran itself).
fn timed_from(
    base: Option<f64>,
    repeat: usize,
    mut step: impl FnMut() -> Result<()>,
) -> Result<(Vec<f64>, f64)> {
    // Peak memory: resident-set growth from before the first step (warm-up included), the
    // same measure the Python scripts take.
    for _ in 0..2 {
        step()?;
    }
    let mut times = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let t = Instant::now();
        step()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let peak = match (base, read_status("VmHWM:")) {
        (Some(b), Some(p)) => (p - b).max(0.0),
        _ => f64::NAN,
    };
    Ok((times, peak))
}

fn row(layer: &str, case: &str, mode: &str, times: &[f64], flops: f64, peak: f64) -> Row {
    let mut s = times.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let median = s[s.len() / 2];
    Row {
        layer: layer.into(),
        case: case.into(),
        mode: mode.into(),
        median_ms: median,
        min_ms: s[0],
        max_ms: s[s.len() - 1],
        gflops: flops / (median * 1e-3) / 1e9,
        peak_mb: peak,
        iters: s.len(),
        first_steps_ms: None,
        framework: "recurrent".into(),
        share_of_square_gemm: None,
    }
}

/// The recurrent layers of a case: `layer` is `lstm`, `gru` or `rnn`.
fn layers(layer: &str, s: Shape, g: &mut Generator) -> Result<Recurrent> {
    let cell = Cell::parse(layer).ok_or_else(|| anyhow!("unknown layer {layer:?}"))?;
    Ok(RecurrentConfig::new(cell.mode(), s.input, s.hidden)
        .with_num_layers(s.layers)
        .with_bidirectional(s.bidir)
        .with_batch_first(true)
        .init_with(g)?)
}

/// A recurrent stack of `layer` at shape `s`, on padded input or packed with `lengths`.
pub(super) fn layer_case(
    layer: &str,
    case: &str,
    s: Shape,
    mode: &str,
    lengths: Option<&[usize]>,
    repeat: usize,
) -> Result<Row> {
    let mut g = Generator::new(1);
    let net = layers(layer, s, &mut g)?;
    let train = mode == "train";
    let x = Tensor::rand_uniform(&[s.batch, s.seq, s.input], -1.0, 1.0, &mut g)?;
    // In training the input gets a gradient too, as on PyTorch's side (oneDNN computes it
    // whether or not the input needs it): the same work on both sides.
    let x = if train { x.requires_grad() } else { x };
    let tokens = lengths.map_or((s.batch * s.seq) as f64, |l| l.iter().sum::<usize>() as f64);
    let mut params = net.parameters();
    if train {
        params.push(x.clone());
    }
    let step = || -> Result<()> {
        let _ng = (!train).then(recurrent::no_grad);
        let out = match lengths {
            Some(l) => {
                net.forward_packed(&pack_padded_sequence(&x, l, true, true)?, None)?
                    .0
                    .data
            }
            None => net.forward(&x, None)?.0,
        };
        if train {
            for p in &params {
                p.zero_grad();
            }
            out.sum()?.backward()?;
        }
        Ok(())
    };
    let (times, peak) = timed(repeat, step)?;
    let f = forward_flops(layer, s, tokens) * if train { 3.0 } else { 1.0 };
    Ok(row(layer, case, mode, &times, f, peak))
}

/// The batch-1 latency shape: 1000 steps, input 32, hidden 64, one layer.
const LATENCY: Shape = Shape {
    batch: 1,
    seq: 1000,
    input: 32,
    hidden: 64,
    layers: 1,
    bidir: false,
};

/// One `layer` layer called on a 1000-step sequence at batch 1 (inference): the latency of a
/// step, as PyTorch is measured (one `nn.LSTM` call on the sequence).
pub(super) fn cell_latency(layer: &str, repeat: usize) -> Result<Row> {
    let mut g = Generator::new(2);
    let s = LATENCY;
    let net = layers(layer, s, &mut g)?;
    let x = Tensor::rand_uniform(&[1, s.seq, s.input], -1.0, 1.0, &mut g)?;
    let _ng = recurrent::no_grad();
    let (times, peak) = timed(repeat, || {
        net.forward(&x, None)?;
        Ok(())
    })?;
    let f = forward_flops(layer, s, s.seq as f64);
    Ok(row(layer, "cell-latency", "infer", &times, f, peak))
}

/// A `layer` cell stepped 1000 times at batch 1 (inference), one call per step: what a
/// caller who steps a cell pays (PyTorch's figure is a Python loop over `nn.LSTMCell`).
pub(super) fn cell_loop(layer: &str, repeat: usize) -> Result<Row> {
    let mut g = Generator::new(2);
    let s = LATENCY;
    let cfg = CellConfig::new(s.input, s.hidden);
    let xs: Vec<Tensor> = (0..s.seq)
        .map(|_| Tensor::rand_uniform(&[1, s.input], -1.0, 1.0, &mut g))
        .collect::<recurrent::Result<_>>()?;
    let _ng = recurrent::no_grad();
    let cell = Cell::parse(layer).ok_or_else(|| anyhow!("unknown layer {layer:?}"))?;
    let c = RecurrentCell::new_with(cell.mode(), &cfg, &mut g)?;
    let (times, peak) = timed(repeat, || {
        let mut st: Option<RnnState> = None;
        for x in &xs {
            st = Some(c.forward(x, st.as_ref())?);
        }
        Ok(())
    })?;
    let f = forward_flops(layer, s, s.seq as f64);
    Ok(row(layer, "cell-loop", "infer", &times, f, peak))
}

/// The lab model's whole step (Embedding -> LSTM x2 -> Linear -> BCE -> Adam), or its
/// inference.
pub(super) fn lab(mode: &str, repeat: usize) -> Result<Row> {
    let cfg = SentimentConfig {
        cell: Cell::Lstm,
        embedding_dim: 128,
        hidden_size: 256,
        num_layers: 2,
        bidirectional: false,
        dropout: 0.0,
        embed_dropout: 0.0,
        fc_dropout: 0.0,
        pool: Pool::Last,
        optimizer: OptimizerKind::Adam,
        ..SentimentConfig::default()
    };
    let mut g = Generator::new(3);
    let (vocab, b, t) = (20_000usize, 64usize, 256usize);
    let mut model = SentimentModel::new(&cfg, vocab, &mut g)?;
    let data: Vec<Encoded> = (0..b)
        .map(|k| Encoded {
            ids: (0..t)
                .map(|_| 2 + g.below(vocab as u64 - 2) as u32)
                .collect(),
            label: (k % 2) as f32,
        })
        .collect();
    let idx: Vec<usize> = (0..b).collect();
    let batch = Batch::pack(&data, &idx);
    let y = Tensor::from_vec(batch.labels.clone(), &[b])?;
    let train = mode == "train";
    model.set_training(train);
    let mut opt = Adam::new(model.parameters(), AdamConfig::adam())?;
    let mut step = || -> Result<()> {
        if train {
            opt.zero_grad();
            let loss = model.forward(&batch)?.binary_cross_entropy_with_logits(
                &y,
                None,
                None,
                Reduction::Mean,
            )?;
            loss.backward()?;
            opt.step()?;
        } else {
            let _ng = recurrent::no_grad();
            model.forward(&batch)?;
        }
        Ok(())
    };
    // The memory baseline comes before the first steps, which allocate what the rest reuse.
    let base = reset_peak();
    let mut first = Vec::new();
    if train {
        for _ in 0..3 {
            let t0 = Instant::now();
            step()?;
            first.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    let (times, peak) = timed_from(base, repeat, step)?;
    let s = Shape {
        batch: b,
        seq: t,
        input: 128,
        hidden: 256,
        layers: 2,
        bidir: false,
    };
    let mut r = row(
        "lab",
        "lab",
        mode,
        &times,
        forward_flops("lstm", s, (b * t) as f64) * if train { 3.0 } else { 1.0 },
        peak,
    );
    r.first_steps_ms = train.then(|| first.iter().sum::<f64>() / first.len() as f64);
    Ok(r)
}
