//! `recurrent forecast`: univariate time-series forecasting with an LSTM/GRU/RNN (many-to-one
//! for one step, many-to-many for a horizon).
//!
//! The series is split by time (never shuffled across the split): the last `test` points are
//! held out, the `val_fraction` before them validates, the rest trains. Scaling (z-score) is
//! fitted on the training part only. Windows of `window` past values predict the next
//! `horizon` values, either all at once (`direct`: the head outputs `horizon` values) or one
//! at a time fed back (`recursive`). On the held-out tail, every origin with a full horizon
//! ahead is forecast from the true history before it (rolling origin), and RMSE, MAE and MAPE
//! are reported in the series' units next to the naive (last value) and seasonal-naive (the
//! value one season earlier) baselines over exactly the same targets.

use crate::cell::Cell;
use crate::plot::{save_png, Panel, Series};
use crate::training::{Checks, TrainStep};
use anyhow::{bail, Context, Result};
use recurrent::nn::{visit_child, Linear, LinearConfig, Module, Recurrent, RecurrentConfig};
use recurrent::optim::{Adam, AdamConfig};
use recurrent::{Generator, Reduction, Tensor};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// How a horizon is forecast.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// One model output per step of the horizon (many-to-many head).
    Direct,
    /// One-step model applied repeatedly, feeding its forecasts back.
    Recursive,
}

/// A transform applied to the series before scaling, and undone on the forecasts.
///
/// Networks with bounded activations cannot extrapolate a trend past the range they were
/// trained on; differencing removes the trend and the log makes multiplicative seasonality
/// additive (the classic treatment of the airline series).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// The values as they are.
    None,
    /// `ln(v)` (the values must be positive).
    Log,
    /// First differences `v_t - v_{t-1}`; forecasts are summed back from the last known value.
    Diff,
    /// First differences of `ln(v)`.
    LogDiff,
}

impl Transform {
    fn log(self) -> bool {
        matches!(self, Transform::Log | Transform::LogDiff)
    }
    fn diff(self) -> bool {
        matches!(self, Transform::Diff | Transform::LogDiff)
    }
}

/// Settings of a forecasting run.
#[derive(Clone, Debug, Serialize)]
pub struct ForecastConfig {
    /// The CSV file.
    pub csv: PathBuf,
    /// The value column (name or 0-based index).
    pub column: String,
    /// Past values per window.
    pub window: usize,
    /// Steps forecast.
    pub horizon: usize,
    /// Direct or recursive.
    pub strategy: Strategy,
    /// Held-out points at the end (`None`: a fifth of the series, at least the horizon).
    pub test: Option<usize>,
    /// Fraction of the remaining points (the end of them) used for validation.
    pub val_fraction: f64,
    /// Season length for the seasonal-naive baseline (0: none).
    pub season: usize,
    /// Transform of the series before scaling.
    pub transform: Transform,
    /// Cell.
    pub cell: Cell,
    /// Hidden size.
    pub hidden: usize,
    /// Layers.
    pub layers: usize,
    /// Epochs.
    pub epochs: usize,
    /// Windows per batch.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Seed.
    pub seed: u64,
    /// Where to write the plot, metrics and forecasts.
    pub out: PathBuf,
    /// Variational dropout (off by default).
    pub variational: recurrent::nn::VariationalDropout,
    /// DropConnect on `W_hh` (off by default).
    pub weight_drop: f64,
}

impl ForecastConfig {
    /// Check every numeric setting (messages name the flag), and that the model fits in
    /// memory.
    pub fn validate(&self) -> Result<()> {
        use crate::validate::{
            fits_in_memory, fraction, positive, positive_real, rnn_parameters, size,
            training_bytes, MAX_LAYERS, MAX_WIDTH,
        };
        size("--window", self.window, 1_000_000)?;
        size("--horizon", self.horizon, 1_000_000)?;
        if let Some(t) = self.test {
            positive("--test", t)?;
        }
        fraction("--val-fraction", self.val_fraction)?;
        size("--hidden", self.hidden, MAX_WIDTH)?;
        size("--layers", self.layers, MAX_LAYERS)?;
        positive("--epochs", self.epochs)?;
        size("--batch-size", self.batch_size, 1_000_000)?;
        positive_real("--lr", self.lr)?;
        fraction("--var-input", self.variational.input)?;
        fraction("--var-state", self.variational.state)?;
        fraction("--var-output", self.variational.output)?;
        fraction("--weight-drop", self.weight_drop)?;
        let gates = self.cell.gates();
        let params = rnn_parameters(gates, 1, self.hidden, self.layers, 1)
            + (self.hidden as u128 + 1) * self.horizon as u128;
        let activations = self.batch_size as u128
            * self.window as u128
            * self.layers as u128
            * (gates + 2) as u128
            * self.hidden as u128;
        fits_in_memory(
            "this forecaster",
            training_bytes(params, activations),
            "--hidden, --layers, --window or --batch-size",
        )
    }
}

/// Read a numeric column of a CSV file (header row required). Errors name the line.
pub fn read_series(path: &Path, column: &str) -> Result<Vec<f64>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_series(&text, column, path)
}

/// Parse a numeric column of CSV text (`source` names it in errors).
pub fn parse_series(text: &str, column: &str, path: &Path) -> Result<Vec<f64>> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .with_context(|| format!("{} is empty", path.display()))?;
    let cols: Vec<String> = split_csv(header)
        .into_iter()
        .map(|c| c.trim().trim_matches('"').to_string())
        .collect();
    let idx = match cols.iter().position(|c| c == column) {
        Some(i) => i,
        None => match column.parse::<usize>() {
            Ok(i) if i < cols.len() => i,
            _ => bail!(
                "{}: no column {column:?} (columns: {})",
                path.display(),
                cols.join(", ")
            ),
        },
    };
    let mut out = Vec::new();
    for (n, line) in lines {
        let fields = split_csv(line);
        let raw = fields
            .get(idx)
            .with_context(|| format!("{}:{}: only {} fields", path.display(), n + 1, fields.len()))?
            .trim()
            .trim_matches('"');
        let v: f64 = raw
            .parse()
            .with_context(|| format!("{}:{}: {raw:?} is not a number", path.display(), n + 1))?;
        if !v.is_finite() {
            bail!("{}:{}: {raw:?} is not finite", path.display(), n + 1);
        }
        out.push(v);
    }
    Ok(out)
}

fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in line.chars() {
        match ch {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    out.push(cur);
    out
}

/// RMSE, MAE and MAPE of forecasts.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Errors {
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Mean absolute percentage error (%), over targets that are not zero.
    pub mape: f64,
}

/// Errors of `pred` against `actual`.
pub fn errors(pred: &[f64], actual: &[f64]) -> Errors {
    let n = pred.len().max(1) as f64;
    let mut se = 0.0;
    let mut ae = 0.0;
    let (mut pe, mut np) = (0.0, 0usize);
    for (&p, &a) in pred.iter().zip(actual) {
        se += (p - a) * (p - a);
        ae += (p - a).abs();
        if a != 0.0 {
            pe += ((p - a) / a).abs();
            np += 1;
        }
    }
    Errors {
        rmse: (se / n).sqrt(),
        mae: ae / n,
        mape: if np > 0 {
            100.0 * pe / np as f64
        } else {
            f64::NAN
        },
    }
}

/// The recurrent layers and a linear head on the last layer's final state.
struct Net {
    rnn: Recurrent,
    head: Linear,
}

impl Module for Net {
    fn set_training(&mut self, t: bool) {
        self.rnn.set_training(t);
    }
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("rnn", &self.rnn, f);
        visit_child("head", &self.head, f);
    }
}

impl Net {
    /// `x: [B, W, 1]` → `[B, out]`.
    fn forward(&self, x: &Tensor) -> recurrent::Result<Tensor> {
        let (_, state) = self.rnn.forward(x, None)?;
        let h_n = state.h();
        let last = h_n.select(0, h_n.shape()[0] - 1)?;
        self.head.forward(&last)
    }
}

/// What a run produced.
#[derive(Clone, Debug, Serialize)]
pub struct ForecastReport {
    /// Settings.
    pub config: ForecastConfig,
    /// Points in the series, and in each part.
    pub points: usize,
    /// Training / validation / test points.
    pub split: (usize, usize, usize),
    /// The model on the held-out tail.
    pub model: Errors,
    /// Last value repeated.
    pub naive: Errors,
    /// The value one season earlier (when `season > 0`).
    pub seasonal_naive: Option<Errors>,
    /// Best validation loss (MSE on scaled values).
    pub best_val_loss: f64,
    /// Wall time (s).
    pub seconds: f64,
}

/// Train, forecast the held-out tail, compare with the baselines, write `forecast.png`,
/// `forecast.csv` and `metrics.json` into `cfg.out`.
pub fn run(mut cfg: ForecastConfig, quiet: bool) -> Result<ForecastReport> {
    let t0 = std::time::Instant::now();
    cfg.validate()?;
    // The output folder first: a run that cannot save its results fails before training.
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    let series = read_series(&cfg.csv, &cfg.column)?;
    let (w, hz) = (cfg.window, cfg.horizon);
    let n = series.len();
    let test = cfg.test.unwrap_or((n / 5).max(hz));
    cfg.test = Some(test);
    if test < hz || test >= n {
        bail!(
            "--test must be at least the horizon ({hz}) and below the series length ({n}), got {test}"
        );
    }
    let rest = n - test;
    if cfg.season > rest {
        bail!(
            "--season {} is longer than the history before the test part ({rest} points): the \
             seasonal-naive baseline needs one whole season before every forecast",
            cfg.season
        );
    }
    let n_val = ((rest as f64) * cfg.val_fraction).round() as usize;
    let n_train = rest - n_val;
    let out_len = if cfg.strategy == Strategy::Direct {
        hz
    } else {
        1
    };
    if n_train < w + out_len + 1 + usize::from(cfg.transform.diff()) {
        bail!(
            "the training part ({n_train} points) is too short for --window {w} and --horizon {hz}"
        );
    }
    // The transform: `level` is the series the differences are taken of (ln(v) or v), `z` what
    // the network sees (z_t = level_t - level_{t-1} when differencing; z_0 is unused).
    if cfg.transform.log() {
        if let Some(i) = series.iter().position(|&v| v <= 0.0) {
            bail!(
                "--transform {:?} needs positive values, but value {} of the series is {}",
                cfg.transform,
                i + 1,
                series[i]
            );
        }
    }
    let level: Vec<f64> = if cfg.transform.log() {
        series.iter().map(|v| v.ln()).collect()
    } else {
        series.clone()
    };
    let z: Vec<f64> = if cfg.transform.diff() {
        (0..n)
            .map(|t| if t == 0 { 0.0 } else { level[t] - level[t - 1] })
            .collect()
    } else {
        level.clone()
    };
    let first = usize::from(cfg.transform.diff());
    // Scaling from the training part only.
    let train_part = &z[first..n_train];
    let mean = train_part.iter().sum::<f64>() / train_part.len() as f64;
    let std = (train_part
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum::<f64>()
        / train_part.len() as f64)
        .sqrt()
        .max(1e-12);
    let scaled: Vec<f32> = z.iter().map(|v| ((v - mean) / std) as f32).collect();
    // Windows: inputs end before index `e`, targets are e..e+out_len. A window belongs to the
    // part that holds its last target; with differencing, z_0 is never an input.
    let windows = |lo: usize, hi: usize| -> Vec<usize> {
        (lo.max(w + first)..=hi.saturating_sub(out_len)).collect()
    };
    let train_w = windows(0, n_train);
    let val_w = windows(n_train, rest);
    let make_batch = |ends: &[usize]| -> recurrent::Result<(Tensor, Tensor)> {
        let mut x = Vec::with_capacity(ends.len() * w);
        let mut y = Vec::with_capacity(ends.len() * out_len);
        for &e in ends {
            x.extend_from_slice(&scaled[e - w..e]);
            y.extend_from_slice(&scaled[e..e + out_len]);
        }
        Ok((
            Tensor::from_vec(x, &[ends.len(), w, 1])?,
            Tensor::from_vec(y, &[ends.len(), out_len])?,
        ))
    };
    let mut g = Generator::new(cfg.seed);
    recurrent::manual_seed(cfg.seed);
    let rnn = RecurrentConfig::new(cfg.cell.mode(), 1, cfg.hidden)
        .with_num_layers(cfg.layers)
        .with_batch_first(true)
        .with_variational_dropout(
            cfg.variational.input,
            cfg.variational.state,
            cfg.variational.output,
        )
        .with_weight_drop(cfg.weight_drop)
        .init_with(&mut g)?;
    let net = Net {
        rnn,
        head: LinearConfig::new(cfg.hidden, out_len).init_with(&mut g)?,
    };
    let mut opt = Adam::new(net.parameters(), AdamConfig::adam().with_lr(cfg.lr))?;
    let mut best = (f64::INFINITY, net.state_dict());
    let mut net = net;
    let step = TrainStep {
        clip: Some(1.0),
        checks: Checks::None,
        names: &[],
    };
    for epoch in 0..cfg.epochs {
        net.set_training(true);
        let mut order = train_w.clone();
        g.shuffle(&mut order);
        let mut total = 0.0;
        for chunk in order.chunks(cfg.batch_size.max(1)) {
            let (x, y) = make_batch(chunk)?;
            let outcome = step.run(&mut opt, || {
                Ok((net.forward(&x)?.mse_loss(&y, Reduction::Mean)?, ()))
            })?;
            total += outcome.loss() * chunk.len() as f64;
        }
        net.set_training(false);
        let val = if val_w.is_empty() {
            total / train_w.len() as f64
        } else {
            let _ng = recurrent::no_grad();
            let (x, y) = make_batch(&val_w)?;
            net.forward(&x)?.mse_loss(&y, Reduction::Mean)?.item()? as f64
        };
        if val < best.0 {
            best = (val, net.state_dict());
        }
        if !quiet && (epoch + 1) % (cfg.epochs / 10).max(1) == 0 {
            eprintln!(
                "epoch {:>4}/{}  train mse {:.5}  val mse {val:.5}",
                epoch + 1,
                cfg.epochs,
                total / train_w.len() as f64
            );
        }
    }
    net.load_state_dict(&best.1, true)?;

    // Rolling-origin forecasts over the test tail.
    let _ng = recurrent::no_grad();
    let origins: Vec<usize> = (rest..=n - hz).collect();
    let forecast_from = |o: usize| -> recurrent::Result<Vec<f64>> {
        let mut hist: Vec<f32> = scaled[o - w..o].to_vec();
        let mut out = Vec::with_capacity(hz);
        match cfg.strategy {
            Strategy::Direct => {
                let y = net.forward(&Tensor::from_vec(hist, &[1, w, 1])?)?.to_vec();
                out.extend(y.iter().map(|&v| v as f64));
            }
            Strategy::Recursive => {
                for _ in 0..hz {
                    let y = net
                        .forward(&Tensor::from_vec(
                            hist[hist.len() - w..].to_vec(),
                            &[1, w, 1],
                        )?)?
                        .to_vec()[0];
                    out.push(y as f64);
                    hist.push(y);
                }
            }
        }
        // Undo the scaling, then the differencing (summing from the last known level), then
        // the log.
        let mut prev = level[o - 1];
        Ok(out
            .into_iter()
            .map(|v| {
                let zt = v * std + mean;
                let lv = if cfg.transform.diff() {
                    prev += zt;
                    prev
                } else {
                    zt
                };
                if cfg.transform.log() {
                    lv.exp()
                } else {
                    lv
                }
            })
            .collect())
    };
    let (mut pred, mut actual, mut naive, mut snaive) = (vec![], vec![], vec![], vec![]);
    let mut first_path = Vec::new();
    for (k, &o) in origins.iter().enumerate() {
        let f = forecast_from(o)?;
        if k == 0 {
            first_path = f.clone();
        }
        for h in 0..hz {
            pred.push(f[h]);
            actual.push(series[o + h]);
            naive.push(series[o - 1]);
            if cfg.season > 0 {
                let back = cfg.season * (h / cfg.season + 1);
                snaive.push(series[o + h - back]);
            }
        }
    }
    let report = ForecastReport {
        points: n,
        split: (n_train, n_val, test),
        model: errors(&pred, &actual),
        naive: errors(&naive, &actual),
        seasonal_naive: (cfg.season > 0).then(|| errors(&snaive, &actual)),
        best_val_loss: best.0,
        seconds: t0.elapsed().as_secs_f64(),
        config: cfg.clone(),
    };
    let mut csv = String::from("origin,step,target_index,forecast,actual,naive\n");
    let mut k = 0;
    for &o in &origins {
        for h in 0..hz {
            csv += &format!(
                "{o},{},{},{:.6},{:.6},{:.6}\n",
                h + 1,
                o + h,
                pred[k],
                actual[k],
                naive[k]
            );
            k += 1;
        }
    }
    recurrent::io::write_atomic(&cfg.out.join("forecast.csv"), csv.as_bytes())?;
    recurrent::io::write_atomic(
        &cfg.out.join("metrics.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    let one_step: Vec<(f64, f64)> = origins
        .iter()
        .enumerate()
        .map(|(k, &o)| (o as f64, pred[k * hz]))
        .collect();
    let path: Vec<(f64, f64)> = first_path
        .iter()
        .enumerate()
        .map(|(h, &v)| ((rest + h) as f64, v))
        .collect();
    let history: Vec<(f64, f64)> = series
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as f64, v))
        .collect();
    let split_line = vec![
        (
            rest as f64 - 0.5,
            series.iter().cloned().fold(f64::INFINITY, f64::min),
        ),
        (
            rest as f64 - 0.5,
            series.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        ),
    ];
    save_png(
        &cfg.out.join("forecast.png"),
        &[Panel {
            title: &format!("{} forecast ({:?}, horizon {hz})", cfg.column, cfg.strategy),
            x_label: "time index",
            y_label: &cfg.column,
            series: vec![
                Series {
                    label: "actual",
                    points: history,
                },
                Series {
                    label: "1-step forecast (rolling)",
                    points: one_step,
                },
                Series {
                    label: &format!("{hz}-step forecast from the test start"),
                    points: path,
                },
                Series {
                    label: "train | test",
                    points: split_line,
                },
            ],
            log_y: false,
        }],
    )?;
    Ok(report)
}

impl std::fmt::Display for ForecastReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} points: train {}, validation {}, test {} ({} origins x horizon {})",
            self.points,
            self.split.0,
            self.split.1,
            self.split.2,
            self.split.2 + 1 - self.config.horizon,
            self.config.horizon
        )?;
        writeln!(f, "{:<16} {:>10} {:>10} {:>9}", "", "RMSE", "MAE", "MAPE %")?;
        let line = |f: &mut std::fmt::Formatter<'_>, name: &str, e: &Errors| {
            writeln!(
                f,
                "{name:<16} {:>10.3} {:>10.3} {:>9.2}",
                e.rmse, e.mae, e.mape
            )
        };
        line(f, self.config.cell.name(), &self.model)?;
        line(f, "naive", &self.naive)?;
        if let Some(s) = &self.seasonal_naive {
            line(f, &format!("seasonal naive/{}", self.config.season), s)?;
        }
        write!(f, "({:.1} s)", self.seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_parsing_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(
            &p,
            "\"Month\",\"Value\"\n\"1949-01\",112\n1949-02,\"118\"\n1949-03,0.5\n",
        )
        .unwrap();
        assert_eq!(read_series(&p, "Value").unwrap(), vec![112.0, 118.0, 0.5]);
        assert_eq!(read_series(&p, "1").unwrap().len(), 3);
        assert!(read_series(&p, "Nope")
            .unwrap_err()
            .to_string()
            .contains("no column"));
        std::fs::write(&p, "a,b\n1,x\n").unwrap();
        assert!(read_series(&p, "b")
            .unwrap_err()
            .to_string()
            .contains(":2:"));
        std::fs::write(&p, "a,b\n1,?0.2\n").unwrap();
        assert!(
            read_series(&p, "b").is_err(),
            "annotated values are refused, not guessed"
        );
        let e = errors(&[2.0, 4.0], &[1.0, 4.0]);
        assert!(
            (e.rmse - (0.5f64).sqrt()).abs() < 1e-12
                && (e.mae - 0.5).abs() < 1e-12
                && (e.mape - 50.0).abs() < 1e-12
        );
    }
}
