//! What a forecasting run reports: the model's errors on the held-out tail beside the
//! baselines' (naive, seasonal naive, ETS, MSTL+ETS), and the files `forecast.csv`,
//! `metrics.json` and `forecast.png`.

use super::series::{errors, Errors};
use super::statistical::Rolling;
use super::{ForecastConfig, Prepared, Statistical};
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
    /// AutoETS (non-seasonal), refitted at every origin; absent when it could not be fitted
    /// (see `notes`).
    pub ets: Option<Errors>,
    /// MSTL with the season and AutoETS on the deseasonalised series, refitted at every
    /// origin (when `season > 0` and it could be fitted; see `notes`).
    pub mstl_ets: Option<Errors>,
    /// Why a statistical model is absent.
    pub notes: Vec<String>,
    /// Wall time of the statistical models' fits (s), included in `seconds`.
    pub statistical_seconds: f64,
    /// The CSV's date (or label) column, if it has one.
    pub date_column: Option<String>,
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
    stat: &Statistical,
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
    // The statistical models' forecasts, flattened like `pred`, or the note on their absence.
    let mut notes = Vec::new();
    let mut flat = |r: Option<&Rolling>| -> Option<Vec<f64>> {
        match r? {
            Rolling::Forecasts(f) => Some(f.iter().flat_map(|v| v[..hz].iter().copied()).collect()),
            Rolling::Absent(note) => {
                notes.push(note.clone());
                None
            }
        }
    };
    let ets = flat(Some(&stat.ets));
    let mstl_ets = flat(stat.mstl_ets.as_ref());
    let labels = prep.labels.as_ref();
    let report = ForecastReport {
        points: series.len(),
        split: (prep.n_train, prep.n_val, cfg.test.unwrap_or_default()),
        model: errors(&pred, &actual),
        naive: errors(&naive, &actual),
        seasonal_naive: (cfg.season > 0).then(|| errors(&snaive, &actual)),
        ets: ets.as_ref().map(|p| errors(p, &actual)),
        mstl_ets: mstl_ets.as_ref().map(|p| errors(p, &actual)),
        notes,
        statistical_seconds: stat.seconds,
        date_column: labels.map(|l| l.column.clone()),
        best_val_loss,
        seconds: t0.elapsed().as_secs_f64(),
        config: cfg.clone(),
    };
    let mut csv =
        String::from("origin,step,target_index,forecast,actual,naive,ets,mstl_ets,target_date\n");
    let cell = |p: &Option<Vec<f64>>, k: usize| {
        p.as_ref().map_or(String::new(), |v| format!("{:.6}", v[k]))
    };
    let mut k = 0;
    for &o in origins {
        for h in 0..hz {
            let date = labels.map_or("", |l| l.values[o + h].as_str());
            csv += &format!(
                "{o},{},{},{:.6},{:.6},{:.6},{},{},{}\n",
                h + 1,
                o + h,
                pred[k],
                actual[k],
                naive[k],
                cell(&ets, k),
                cell(&mstl_ets, k),
                csv_field(date)
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
    plot(cfg, prep, origins, &pred, ets.as_deref(), &first_path)?;
    Ok(report)
}

/// A CSV field: quoted when it holds a comma or a quote.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `forecast.png`: the series, the rolling one-step forecasts of the network and of ETS, the
/// whole horizon forecast from the first origin, and the start of the test part; dates on
/// the x axis when the CSV has a date column.
fn plot(
    cfg: &ForecastConfig,
    prep: &Prepared,
    origins: &[usize],
    pred: &[f64],
    ets: Option<&[f64]>,
    first_path: &[f64],
) -> Result<()> {
    let (hz, rest, series) = (cfg.horizon, prep.rest, &prep.series);
    let one_step_of = |p: &[f64]| -> Vec<(f64, f64)> {
        origins
            .iter()
            .enumerate()
            .map(|(k, &o)| (o as f64, p[k * hz]))
            .collect()
    };
    let one_step = one_step_of(pred);
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
    let x_label = prep
        .labels
        .as_ref()
        .map_or("time index", |l| l.column.as_str());
    let path_label = format!("{hz}-step forecast from the test start");
    let mut lines = vec![
        Series {
            label: "actual",
            points: history,
        },
        Series {
            label: "1-step forecast (rolling)",
            points: one_step,
        },
        Series {
            label: &path_label,
            points: path,
        },
        Series {
            label: "train | test",
            points: split_line,
        },
    ];
    if let Some(e) = ets {
        lines.push(Series {
            label: "ETS 1-step (rolling)",
            points: one_step_of(e),
        });
    }
    save_png(
        &cfg.out.join("forecast.png"),
        &[Panel {
            title: &format!(
                "{} forecast ({:?}, horizon {hz})",
                prep.column, cfg.strategy
            ),
            x_label,
            y_label: &prep.column,
            series: lines,
            log_y: false,
            x_names: prep.labels.as_ref().map(|l| &l.values[..]),
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
        writeln!(f, "{:<18} {:>10} {:>10} {:>9}", "", "RMSE", "MAE", "MAPE %")?;
        let line = |f: &mut std::fmt::Formatter<'_>, name: &str, e: &Errors| {
            writeln!(
                f,
                "{name:<18} {:>10.3} {:>10.3} {:>9.2}",
                e.rmse, e.mae, e.mape
            )
        };
        line(f, self.config.cell.name(), &self.model)?;
        line(f, "naive", &self.naive)?;
        if let Some(s) = &self.seasonal_naive {
            line(f, &format!("seasonal naive/{}", self.config.season), s)?;
        }
        if let Some(e) = &self.ets {
            line(f, "ETS", e)?;
        }
        if let Some(e) = &self.mstl_ets {
            line(f, &format!("MSTL+ETS/{}", self.config.season), e)?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        write!(
            f,
            "({:.1} s, of which {:.1} s fitting the statistical models",
            self.seconds, self.statistical_seconds
        )?;
        match self.config.ets_history {
            0 => write!(f, ")"),
            h => write!(f, " on at most {h} points each)"),
        }
    }
}
