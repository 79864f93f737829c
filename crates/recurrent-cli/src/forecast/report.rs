//! What a forecasting run reports: the model's errors on the held-out tail beside the
//! baselines', and the files `forecast.csv`, `metrics.json` and `forecast.png`.

use super::series::{errors, Errors};
use super::{ForecastConfig, Prepared};
use crate::plot::{save_png, Panel, Series};
use anyhow::Result;
use serde::Serialize;
use std::time::Instant;

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

/// Score the `forecasts` (one per origin in `origins`) against the series and the baselines,
/// and write the report's files into `cfg.out`.
pub(super) fn finish(
    cfg: &ForecastConfig,
    prep: &Prepared,
    origins: &[usize],
    forecasts: &[Vec<f64>],
    best_val_loss: f64,
    t0: Instant,
) -> Result<ForecastReport> {
    let (hz, series) = (cfg.horizon, &prep.series);
    let (mut pred, mut actual, mut naive, mut snaive) = (vec![], vec![], vec![], vec![]);
    for (f, &o) in forecasts.iter().zip(origins) {
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
        points: series.len(),
        split: (prep.n_train, prep.n_val, cfg.test.unwrap_or_default()),
        model: errors(&pred, &actual),
        naive: errors(&naive, &actual),
        seasonal_naive: (cfg.season > 0).then(|| errors(&snaive, &actual)),
        best_val_loss,
        seconds: t0.elapsed().as_secs_f64(),
        config: cfg.clone(),
    };
    let mut csv = String::from("origin,step,target_index,forecast,actual,naive\n");
    let mut k = 0;
    for &o in origins {
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
    let first_path = forecasts.first().cloned().unwrap_or_default();
    plot(cfg, prep, origins, &pred, &first_path)?;
    Ok(report)
}

/// `forecast.png`: the series, the rolling one-step forecasts, the whole horizon forecast
/// from the first origin, and the start of the test part.
fn plot(
    cfg: &ForecastConfig,
    prep: &Prepared,
    origins: &[usize],
    pred: &[f64],
    first_path: &[f64],
) -> Result<()> {
    let (hz, rest, series) = (cfg.horizon, prep.rest, &prep.series);
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
    Ok(())
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
