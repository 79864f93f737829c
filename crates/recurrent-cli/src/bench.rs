//! `recurrent bench`: the speed cases of the side-by-side comparison with PyTorch and Keras
//! (`scripts/bench_torch.py`, `scripts/bench_keras.py` run the same cases; `scripts/
//! bench_compare.sh` runs all three and prints the ratios).
//!
//! Cases (batch-first, f32), each for LSTM, GRU and RNN(tanh), training step (forward +
//! backward of `sum(output)`) and inference:
//! - `imdb`: batch 64, seq 256, input 128, hidden 256, 2 layers;
//! - `small`: batch 32, seq 64, input 64, hidden 128, 1 layer;
//! - `bidir`: the imdb shape as one bidirectional layer;
//! - `packed`: the imdb shape with lengths from the real IMDB distribution (truncated at
//!   256), packed; `padded` is the same batch padded, for comparison;
//! - `cell-latency`: a cell stepped 1000 times at batch 1, input 32, hidden 64 (inference);
//! - `lab`: the whole lab model step Embedding(20000,128) -> LSTM(256) x2 -> Linear -> BCE ->
//!   Adam (its first steps are reported separately: the denormal slowdown shows there).
//!
//! FLOPs: forward `2·G·H·(I+H)` per layer, direction, step and sample (`G` = 4, 3, 1);
//! training counts 3x forward. Peak memory is the growth of the process's resident set from
//! just before the first step (warm-up included) to its high-water mark (Linux `VmHWM`, reset
//! through `/proc/self/clear_refs`); the Python scripts measure it the same way. Each case
//! runs in a fresh model, but memory freed by earlier cases may be reused, so run one case per
//! process (`--cases X --layers Y`) for exact figures; `scripts/bench_compare.sh` does.

use crate::cell::Cell;
use crate::sentiment::config::{OptimizerKind, Pool, SentimentConfig};
use crate::sentiment::model::SentimentModel;
use anyhow::{anyhow, bail, Result};
use recurrent::backend::cpu::gemm::{matmul, MatMut, MatRef, Parallelism};
use recurrent::nn::{
    pack_padded_sequence, CellConfig, Module, Recurrent, RecurrentCell, RecurrentConfig, RnnState,
};
use recurrent::optim::{Adam, AdamConfig, Optimizer};
use recurrent::{Generator, Reduction, Tensor};
use recurrent_data::batch::{Batch, Encoded};
use serde::Serialize;
use std::time::Instant;

/// One result row (the JSON fields other tools read).
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `lstm`, `gru`, `rnn` or `lab`.
    pub layer: String,
    /// The case name.
    pub case: String,
    /// `train` or `infer`.
    pub mode: String,
    /// Median time of one step (ms).
    pub median_ms: f64,
    /// Fastest step (ms).
    pub min_ms: f64,
    /// Slowest step (ms).
    pub max_ms: f64,
    /// Useful FLOPs per second at the median.
    pub gflops: f64,
    /// Resident-memory growth during the timed steps (MB).
    pub peak_mb: f64,
    /// Timed steps.
    pub iters: usize,
    /// Mean of the first three steps from initialisation (lab only), ms.
    pub first_steps_ms: Option<f64>,
    /// The framework (`recurrent`).
    pub framework: String,
}

/// Which cases to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Case names (empty: all).
    pub cases: Vec<String>,
    /// Layers (empty: all).
    pub layers: Vec<String>,
    /// Modes (empty: both).
    pub modes: Vec<String>,
    /// Timed steps per case.
    pub repeat: usize,
}

impl BenchOptions {
    /// Known names only, and a repeat count in `1..=10000`.
    pub fn validate(&self) -> Result<()> {
        crate::validate::size("--repeat", self.repeat, 10_000)?;
        for (flag, list, known) in [
            (
                "--cases",
                &self.cases,
                &[
                    "imdb",
                    "small",
                    "bidir",
                    "packed",
                    "padded",
                    "cell-latency",
                    "lab",
                ][..],
            ),
            ("--layers", &self.layers, &["lstm", "gru", "rnn", "lab"][..]),
            ("--modes", &self.modes, &["train", "infer"][..]),
        ] {
            if let Some(bad) = list.iter().find(|v| !known.contains(&v.as_str())) {
                bail!("{flag}: unknown name {bad:?} (known: {})", known.join(", "));
            }
        }
        Ok(())
    }
}

/// The lengths of the `packed` case, read from the committed fixture (a clear error if
/// missing).
pub fn packed_lengths() -> Result<Vec<usize>> {
    let text = include_str!("../../../fixtures/bench_lengths.json");
    let v: serde_json::Value = serde_json::from_str(text)?;
    let l: Vec<usize> = v["lengths"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as usize)
                .collect()
        })
        .unwrap_or_default();
    if l.len() != 64 {
        bail!("fixtures/bench_lengths.json must hold 64 lengths");
    }
    Ok(l)
}

#[derive(Clone, Copy)]
struct Shape {
    batch: usize,
    seq: usize,
    input: usize,
    hidden: usize,
    layers: usize,
    bidir: bool,
}

const IMDB: Shape = Shape {
    batch: 64,
    seq: 256,
    input: 128,
    hidden: 256,
    layers: 2,
    bidir: false,
};
const SMALL: Shape = Shape {
    batch: 32,
    seq: 64,
    input: 64,
    hidden: 128,
    layers: 1,
    bidir: false,
};
const BIDIR: Shape = Shape {
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

fn layer_case(
    layer: &str,
    case: &str,
    s: Shape,
    mode: &str,
    lengths: Option<&[usize]>,
    repeat: usize,
) -> Result<Row> {
    let mut g = Generator::new(1);
    let net = layers(layer, s, &mut g)?;
    let x = Tensor::rand_uniform(&[s.batch, s.seq, s.input], -1.0, 1.0, &mut g)?;
    let tokens = lengths.map_or((s.batch * s.seq) as f64, |l| l.iter().sum::<usize>() as f64);
    let train = mode == "train";
    let params = net.parameters();
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

fn cell_latency(layer: &str, repeat: usize) -> Result<Row> {
    let mut g = Generator::new(2);
    let (t, i, h) = (1000, 32, 64);
    let cfg = CellConfig::new(i, h);
    let xs: Vec<Tensor> = (0..t)
        .map(|_| Tensor::rand_uniform(&[1, i], -1.0, 1.0, &mut g))
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
    let s = Shape {
        batch: 1,
        seq: t,
        input: i,
        hidden: h,
        layers: 1,
        bidir: false,
    };
    Ok(row(
        layer,
        "cell-latency",
        "infer",
        &times,
        forward_flops(layer, s, t as f64),
        peak,
    ))
}

fn lab(mode: &str, repeat: usize) -> Result<Row> {
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

/// Run the selected cases; `progress` gets each row as it finishes.
pub fn run(opts: &BenchOptions, progress: &mut dyn FnMut(&Row)) -> Result<Vec<Row>> {
    opts.validate()?;
    let want = |list: &[String], x: &str| list.is_empty() || list.iter().any(|v| v == x);
    let lengths = packed_lengths()?;
    let mut rows = Vec::new();
    let mut push = |r: Row, rows: &mut Vec<Row>| {
        progress(&r);
        rows.push(r);
    };
    for layer in ["lstm", "gru", "rnn"] {
        if !want(&opts.layers, layer) {
            continue;
        }
        for (case, shape, lens) in [
            ("imdb", IMDB, None),
            ("small", SMALL, None),
            ("bidir", BIDIR, None),
            ("packed", IMDB, Some(lengths.as_slice())),
            ("padded", IMDB, None),
        ] {
            if !want(&opts.cases, case)
                || (case == "padded" && !want(&opts.cases, "packed") && opts.cases.is_empty())
            {
                continue;
            }
            for mode in ["train", "infer"] {
                if want(&opts.modes, mode) {
                    push(
                        layer_case(layer, case, shape, mode, lens, opts.repeat)?,
                        &mut rows,
                    );
                }
            }
        }
        if want(&opts.cases, "cell-latency") && want(&opts.modes, "infer") {
            push(cell_latency(layer, opts.repeat)?, &mut rows);
        }
    }
    if want(&opts.cases, "lab") && (opts.layers.is_empty() || want(&opts.layers, "lab")) {
        for mode in ["train", "infer"] {
            if want(&opts.modes, mode) {
                push(lab(mode, opts.repeat)?, &mut rows);
            }
        }
    }
    Ok(rows)
}

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

/// A text table of rows.
pub fn table(rows: &[Row]) -> String {
    let mut s = format!(
        "{:<5} {:<13} {:<6} {:>10} {:>10} {:>10} {:>9} {:>9}\n",
        "layer", "case", "mode", "median ms", "min ms", "max ms", "GFLOP/s", "peak MB"
    );
    for r in rows {
        s += &format!(
            "{:<5} {:<13} {:<6} {:>10.2} {:>10.2} {:>10.2} {:>9.1} {:>9.1}{}\n",
            r.layer,
            r.case,
            r.mode,
            r.median_ms,
            r.min_ms,
            r.max_ms,
            r.gflops,
            r.peak_mb,
            match (r.case.as_str(), r.first_steps_ms) {
                ("cell-latency", _) => format!("   ({:.2} us/step)", r.median_ms),
                (_, Some(f)) => format!("   (first 3 steps: {f:.0} ms)"),
                _ => String::new(),
            }
        );
    }
    s
}
