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

mod cases;

/// GFLOP/s of the GEMM crate at the products of the `imdb` LSTM shape (see
/// [`recurrent::runtime::gemm_ceiling`]).
pub use recurrent::runtime::gemm_ceiling;

use anyhow::{bail, Result};
use cases::{cell_latency, cell_loop, lab, layer_case, BIDIR, IMDB, SMALL};
use serde::Serialize;

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
    /// `gflops` as a share of the square-GEMM rate measured in the same run (`--gemm`).
    pub share_of_square_gemm: Option<f64>,
}

/// Which cases to run (the `bench` subcommand's flags; empty lists mean all).
#[derive(Clone, Debug, clap::Args)]
pub struct BenchOptions {
    /// Cases: imdb, small, bidir, packed (and padded), cell-latency, cell-loop, lab (default:
    /// all).
    #[arg(long, value_delimiter = ',')]
    pub cases: Vec<String>,
    /// Layers: lstm, gru, rnn, lab (default: all).
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<String>,
    /// Modes: train, infer (default: both).
    #[arg(long, value_delimiter = ',')]
    pub modes: Vec<String>,
    /// Timed steps per case (after two warm-up steps).
    #[arg(long, default_value_t = 7)]
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
                    "cell-loop",
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
    let text = include_str!("../../../../fixtures/bench_lengths.json");
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
        if want(&opts.cases, "cell-loop") && want(&opts.modes, "infer") {
            push(cell_loop(layer, opts.repeat)?, &mut rows);
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

/// A text table of rows (with each case's share of the square-GEMM rate when measured).
pub fn table(rows: &[Row]) -> String {
    let share = rows.iter().any(|r| r.share_of_square_gemm.is_some());
    let mut s = format!(
        "{:<5} {:<13} {:<6} {:>10} {:>10} {:>10} {:>9} {:>9}{}\n",
        "layer",
        "case",
        "mode",
        "median ms",
        "min ms",
        "max ms",
        "GFLOP/s",
        "peak MB",
        if share { "  of GEMM" } else { "" }
    );
    for r in rows {
        s += &format!(
            "{:<5} {:<13} {:<6} {:>10.2} {:>10.2} {:>10.2} {:>9.1} {:>9.1}{}{}\n",
            r.layer,
            r.case,
            r.mode,
            r.median_ms,
            r.min_ms,
            r.max_ms,
            r.gflops,
            r.peak_mb,
            match r.share_of_square_gemm {
                Some(f) => format!(" {:>8.0}%", 100.0 * f),
                None if share => format!(" {:>9}", "-"),
                None => String::new(),
            },
            match (r.case.as_str(), r.first_steps_ms) {
                ("cell-latency" | "cell-loop", _) => format!("   ({:.2} us/step)", r.median_ms),
                (_, Some(f)) => format!("   (first 3 steps: {f:.0} ms)"),
                _ => String::new(),
            }
        );
    }
    s
}
