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
//! value one season earlier) baselines, and exponential smoothing (ETS, and MSTL+ETS with a
//! season) refitted at every origin, over exactly the same targets.
//!
//! The trained network is saved into the output folder (`model.safetensors` and
//! `forecaster.json`), and `recurrent forecast predict` forecasts the horizon after the end
//! of new data with it.
//!
//! Here: the settings (which are the subcommand's flags), the preparation of the series, the
//! model and its training, and the forecasts; reading the CSV, the dates and the error
//! measures are in `series.rs`, the statistical models in `statistical.rs`, the report and its
//! files in `report.rs`, the saved model and its forecasts in `predict.rs`.

mod config;
mod predict;
mod report;
mod series;
mod statistical;

pub use config::{Dropout, ForecastConfig, Strategy, Transform};
pub use predict::{
    load_forecaster, predict, Forecaster, ForecasterFile, PredictedStep, Prediction,
    FORECASTER_FILE, KIND, MODEL_FILE,
};
pub use report::ForecastReport;
pub use series::{
    date_step, errors, next_dates, parse_labelled, parse_series, read_labelled, read_series,
    DateStep, Errors, LabelledSeries, Labels,
};
pub use statistical::{rolling, Rolling, StatModel};

use crate::training::{Checks, TrainStep};
use anyhow::{bail, Context, Result};
use recurrent::nn::{
    visit_child, Linear, LinearConfig, Module, Recurrent, RecurrentConfig, StateDict,
};
use recurrent::optim::{Adam, AdamConfig};
use recurrent::{Generator, Reduction, Tensor};

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
    /// A new network for `cfg` with `out_len` outputs, its weights drawn from `g`.
    fn new(cfg: &ForecastConfig, out_len: usize, g: &mut Generator) -> recurrent::Result<Net> {
        let v = cfg.dropout.variational();
        Ok(Net {
            rnn: RecurrentConfig::new(cfg.cell.mode(), 1, cfg.hidden)
                .with_num_layers(cfg.layers)
                .with_batch_first(true)
                .with_variational_dropout(v.input, v.state, v.output)
                .with_weight_drop(cfg.dropout.weight_drop)
                .init_with(g)?,
            head: LinearConfig::new(cfg.hidden, out_len).init_with(g)?,
        })
    }

    /// `x: [B, W, 1]` → `[B, out]`.
    fn forward(&self, x: &Tensor) -> recurrent::Result<Tensor> {
        let (_, state) = self.rnn.forward(x, None)?;
        let h_n = state.h();
        let last = h_n.select(0, h_n.shape()[0] - 1)?;
        self.head.forward(&last)
    }
}

/// The series prepared for the network: split, transformed and scaled.
struct Prepared {
    /// The values as read.
    series: Vec<f64>,
    /// The value column's header.
    column: String,
    /// The date (or label) column, when the CSV has one.
    labels: Option<Labels>,
    /// `ln(v)` or `v`: what differences are taken of.
    level: Vec<f64>,
    /// What the network sees: the transformed series, scaled by the training part's mean and
    /// standard deviation.
    scaled: Vec<f32>,
    mean: f64,
    std: f64,
    /// Points in the training and validation parts, and before the test part.
    n_train: usize,
    n_val: usize,
    rest: usize,
    /// Outputs of the head: the horizon (direct) or 1 (recursive).
    out_len: usize,
    /// The first usable index (1 when differencing: z_0 is unused).
    first: usize,
}

impl Prepared {
    /// Window ends in `lo..hi`: inputs end before index `e`, targets are `e..e+out_len`. A
    /// window belongs to the part that holds its last target; with differencing, z_0 is never
    /// an input.
    fn windows(&self, w: usize, lo: usize, hi: usize) -> Vec<usize> {
        (lo.max(w + self.first)..=hi.saturating_sub(self.out_len)).collect()
    }

    /// Inputs `[B, W, 1]` and targets `[B, out_len]` of the windows ending at `ends`.
    fn batch(&self, w: usize, ends: &[usize]) -> recurrent::Result<(Tensor, Tensor)> {
        let out_len = self.out_len;
        let mut x = Vec::with_capacity(ends.len() * w);
        let mut y = Vec::with_capacity(ends.len() * out_len);
        for &e in ends {
            x.extend_from_slice(&self.scaled[e - w..e]);
            y.extend_from_slice(&self.scaled[e..e + out_len]);
        }
        Ok((
            Tensor::from_vec(x, &[ends.len(), w, 1])?,
            Tensor::from_vec(y, &[ends.len(), out_len])?,
        ))
    }
}

/// The statistical models' rolling-origin forecasts, and how long they took.
struct Statistical {
    /// AutoETS (non-seasonal).
    ets: Rolling,
    /// MSTL+ETS, when `--season` > 0.
    mstl_ets: Option<Rolling>,
    /// Wall time of all their fits (s).
    seconds: f64,
}

/// Train, forecast the held-out tail, compare with the baselines, save the model
/// (`model.safetensors`, `forecaster.json`) and write `forecast.png`, `forecast.csv` and
/// `metrics.json` into `cfg.out`.
pub fn run(mut cfg: ForecastConfig, quiet: bool) -> Result<ForecastReport> {
    let t0 = std::time::Instant::now();
    cfg.validate()?;
    // The output folder first: a run that cannot save its results fails before training.
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    let data = read_labelled(&cfg.csv, &cfg.column)?;
    let n = data.values.len();
    let test = cfg.test.unwrap_or((n / 5).max(cfg.horizon));
    cfg.test = Some(test);
    let prep = prepare(&cfg, data, test)?;
    let (net, best_val_loss) = train(&cfg, &prep, quiet)?;
    predict::save(&cfg, &prep, &net)?;
    // Rolling-origin forecasts over the test tail.
    let _ng = recurrent::no_grad();
    let hz = cfg.horizon;
    let origins: Vec<usize> = (prep.rest..=n - hz).collect();
    let forecasts = origins
        .iter()
        .map(|&o| forecast_from(&cfg, &prep, &net, o))
        .collect::<recurrent::Result<Vec<_>>>()?;
    // The statistical models on the same origins, refitted at each.
    let t_stat = std::time::Instant::now();
    if !quiet {
        eprintln!(
            "fitting ETS{} at {} origins",
            if cfg.season > 0 { " and MSTL+ETS" } else { "" },
            origins.len()
        );
    }
    let ets = rolling(StatModel::Ets, &prep.series, &origins, hz, cfg.ets_history);
    let mstl_ets = (cfg.season > 0).then(|| {
        rolling(
            StatModel::MstlEts { season: cfg.season },
            &prep.series,
            &origins,
            hz,
            cfg.ets_history,
        )
    });
    let stat = Statistical {
        ets,
        mstl_ets,
        seconds: t_stat.elapsed().as_secs_f64(),
    };
    report::finish(&cfg, &prep, &origins, &forecasts, &stat, best_val_loss, t0)
}

/// Split, transform and scale the series (after checking it suits the settings).
fn prepare(cfg: &ForecastConfig, data: LabelledSeries, test: usize) -> Result<Prepared> {
    let LabelledSeries {
        column,
        values: series,
        lines,
        labels,
    } = data;
    let (w, hz) = (cfg.window, cfg.horizon);
    let n = series.len();
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
                "{}:{}: --transform {} needs positive values, but value {} of the series is {}",
                cfg.csv.display(),
                lines[i],
                cfg.transform.name(),
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
    Ok(Prepared {
        series,
        column,
        labels,
        level,
        scaled,
        mean,
        std,
        n_train,
        n_val,
        rest,
        out_len,
        first,
    })
}

/// Train the network; returns it with the weights of its best validation loss, and that loss.
fn train(cfg: &ForecastConfig, prep: &Prepared, quiet: bool) -> Result<(Net, f64)> {
    let w = cfg.window;
    let train_w = prep.windows(w, 0, prep.n_train);
    let val_w = prep.windows(w, prep.n_train, prep.rest);
    let mut g = Generator::new(cfg.seed);
    recurrent::manual_seed(cfg.seed);
    let mut net = Net::new(cfg, prep.out_len, &mut g)?;
    let mut opt = Adam::new(net.parameters(), AdamConfig::adam().with_lr(cfg.lr))?;
    let mut best: (f64, StateDict) = (f64::INFINITY, net.state_dict());
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
            let (x, y) = prep.batch(w, chunk)?;
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
            let (x, y) = prep.batch(w, &val_w)?;
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
    Ok((net, best.0))
}

/// The forecast of the `horizon` values from origin `o`, from the true history before it, in
/// the series' units.
fn forecast_from(
    cfg: &ForecastConfig,
    prep: &Prepared,
    net: &Net,
    o: usize,
) -> recurrent::Result<Vec<f64>> {
    let out = net_forecast(
        net,
        cfg.strategy,
        &prep.scaled[o - cfg.window..o],
        cfg.horizon,
    )?;
    Ok(unscale(
        out,
        cfg.transform,
        prep.mean,
        prep.std,
        prep.level[o - 1],
    ))
}

/// The network's forecast of the next `hz` values after `window` (scaled values, the
/// network's window), still scaled.
fn net_forecast(
    net: &Net,
    strategy: Strategy,
    window: &[f32],
    hz: usize,
) -> recurrent::Result<Vec<f64>> {
    let w = window.len();
    let mut hist: Vec<f32> = window.to_vec();
    let mut out = Vec::with_capacity(hz);
    match strategy {
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
    Ok(out)
}

/// Undo the scaling (`mean`, `std`), then the differencing (summing from `last_level`, the
/// level of the last known value), then the log.
fn unscale(out: Vec<f64>, transform: Transform, mean: f64, std: f64, last_level: f64) -> Vec<f64> {
    let mut prev = last_level;
    out.into_iter()
        .map(|v| {
            let zt = v * std + mean;
            let lv = if transform.diff() {
                prev += zt;
                prev
            } else {
                zt
            };
            if transform.log() {
                lv.exp()
            } else {
                lv
            }
        })
        .collect()
}
