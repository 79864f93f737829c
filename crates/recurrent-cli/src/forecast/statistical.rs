//! The statistical yardsticks: exponential smoothing (ETS, from the `augurs` crates) scored on
//! exactly the rolling origins the network is scored on.
//!
//! At every origin of the held-out tail each model is refitted on the true history before
//! that origin (at most the last `--ets-history` points of it) and forecasts the horizon from
//! there, as the network does from its window: nothing after the origin is seen.
//!
//! Two models:
//!
//! - **ETS**: augurs' `AutoETS::non_seasonal()`, the automatic "ZZN" search (additive or
//!   multiplicative error; no, additive or damped additive trend; no season), the model with
//!   the lowest AICc kept. augurs' AutoETS has no seasonal models.
//! - **MSTL+ETS** (when `--season` > 0): an MSTL decomposition with that period, AutoETS on
//!   the deseasonalised series (trend plus remainder), and the last season of the seasonal
//!   component repeated over the horizon. MSTL needs two whole seasons of history.
//!
//! Both fit the series as read (not `--transform`ed): like the naive baselines they are the
//! same whatever the network's settings.
//!
//! A model that cannot be fitted at some origin (too little history, no admissible model, a
//! forecast that is not finite, even a panic inside the library) is left out of the report,
//! with a note saying where and why; the run itself goes on.

use augurs_core::{Fit, Predict};
use augurs_ets::AutoETS;
use augurs_mstl::MSTLModel;
use rayon::prelude::*;

/// A statistical model scored beside the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatModel {
    /// AutoETS without a season (augurs' "ZZN" search).
    Ets,
    /// MSTL with one period, and AutoETS on the deseasonalised series.
    MstlEts {
        /// The period (`--season`).
        season: usize,
    },
}

impl StatModel {
    /// Its name in the report: `ETS` or `MSTL+ETS`.
    pub fn name(self) -> &'static str {
        match self {
            StatModel::Ets => "ETS",
            StatModel::MstlEts { .. } => "MSTL+ETS",
        }
    }

    /// The fewest points of history it can be fitted on: 10 for ETS (augurs refuses fewer
    /// than 9 with a trend), two whole seasons for MSTL.
    pub fn min_history(self) -> usize {
        match self {
            StatModel::Ets => 10,
            StatModel::MstlEts { season } => (2 * season).max(10),
        }
    }

    /// Fit the model on `history` and forecast the next `horizon` values (point forecasts).
    /// Errors are the library's message, or say that the forecast is not finite or that the
    /// library panicked.
    pub fn forecast(self, history: &[f64], horizon: usize) -> Result<Vec<f64>, String> {
        if history.len() < self.min_history() {
            return Err(format!(
                "{} needs at least {} points of history, got {}",
                self.name(),
                self.min_history(),
                history.len()
            ));
        }
        if let StatModel::MstlEts { season } = self {
            if season < 2 {
                return Err(format!("MSTL needs a season of at least 2, got {season}"));
            }
        }
        let fit_and_predict = || -> Result<Vec<f64>, String> {
            match self {
                StatModel::Ets => {
                    let fitted = AutoETS::non_seasonal()
                        .fit(history)
                        .map_err(|e| e.to_string())?;
                    Ok(fitted
                        .predict(horizon, None)
                        .map_err(|e| e.to_string())?
                        .point)
                }
                StatModel::MstlEts { season } => {
                    let model =
                        MSTLModel::new(vec![season], AutoETS::non_seasonal().into_trend_model());
                    let fitted = model.fit(history).map_err(|e| e.to_string())?;
                    Ok(fitted
                        .predict(horizon, None)
                        .map_err(|e| e.to_string())?
                        .point)
                }
            }
        };
        // A panic inside the library is this model's failure, not the run's.
        let point = std::panic::catch_unwind(std::panic::AssertUnwindSafe(fit_and_predict))
            .map_err(|_| format!("{} panicked", self.name()))??;
        if point.len() != horizon {
            return Err(format!(
                "{} returned {} values for a horizon of {horizon}",
                self.name(),
                point.len()
            ));
        }
        if let Some(v) = point.iter().find(|v| !v.is_finite()) {
            return Err(format!("{} forecast {v}", self.name()));
        }
        Ok(point)
    }
}

/// A model's rolling-origin forecasts, or why there are none.
#[derive(Clone, Debug, PartialEq)]
pub enum Rolling {
    /// One forecast of the horizon per origin.
    Forecasts(Vec<Vec<f64>>),
    /// The model could not be fitted at some origin: this says where and why.
    Absent(String),
}

/// Forecast `horizon` values from every origin `o` in `origins` with `model` refitted on
/// `series[..o]` (its last `max_history` points when that is not 0). The origins are fitted
/// in parallel (on the global thread pool); the result does not depend on the order.
pub fn rolling(
    model: StatModel,
    series: &[f64],
    origins: &[usize],
    horizon: usize,
    max_history: usize,
) -> Rolling {
    let history = |o: usize| {
        let from = if max_history == 0 {
            0
        } else {
            o.saturating_sub(max_history)
        };
        &series[from..o]
    };
    // Too short everywhere (the first origin has the shortest history): say so once.
    if let Some(&o) = origins.first() {
        let have = history(o).len();
        if have < model.min_history() {
            let cap = if max_history > 0 && max_history < o {
                format!(" (--ets-history {max_history})")
            } else {
                String::new()
            };
            return Rolling::Absent(format!(
                "{}: left out: it needs {} points of history before each origin, and the first \
                 origin has {have}{cap}",
                model.name(),
                model.min_history()
            ));
        }
    }
    let results: Vec<Result<Vec<f64>, String>> = origins
        .par_iter()
        .map(|&o| model.forecast(history(o), horizon))
        .collect();
    let mut out = Vec::with_capacity(results.len());
    for (r, &o) in results.into_iter().zip(origins) {
        match r {
            Ok(f) => out.push(f),
            Err(e) => {
                return Rolling::Absent(format!(
                    "{}: left out: no fit at origin {o} (history of {} points): {e}",
                    model.name(),
                    history(o).len()
                ))
            }
        }
    }
    Rolling::Forecasts(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trend with a season of 12 and a little deterministic noise.
    fn seasonal(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let t = i as f64;
                100.0
                    + 0.5 * t
                    + 10.0 * (t * std::f64::consts::TAU / 12.0).sin()
                    + ((i * 7919) % 13) as f64 * 0.1
            })
            .collect()
    }

    #[test]
    fn ets_continues_a_line_and_mstl_a_season() {
        // A straight line: ETS with a trend continues it (augurs' own example).
        let line: Vec<f64> = (0..30).map(|x| x as f64).collect();
        let f = StatModel::Ets.forecast(&line, 3).unwrap();
        for (h, v) in f.iter().enumerate() {
            assert!((v - (30 + h) as f64).abs() < 1e-3, "{f:?}");
        }
        // A seasonal series: MSTL+ETS follows the season, plain ETS cannot.
        let s = seasonal(120);
        let (hist, next) = s.split_at(108);
        let rmse = |f: &[f64]| {
            (f.iter()
                .zip(next)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                / f.len() as f64)
                .sqrt()
        };
        let ets = StatModel::Ets.forecast(hist, 12).unwrap();
        let mstl = StatModel::MstlEts { season: 12 }
            .forecast(hist, 12)
            .unwrap();
        assert!(rmse(&mstl) < 2.0, "MSTL+ETS rmse {}", rmse(&mstl));
        assert!(
            rmse(&mstl) * 3.0 < rmse(&ets),
            "{} vs {}",
            rmse(&mstl),
            rmse(&ets)
        );
    }

    #[test]
    fn rolling_refits_on_the_history_before_each_origin() {
        let s = seasonal(80);
        let origins: Vec<usize> = (70..=78).collect();
        let Rolling::Forecasts(f) = rolling(StatModel::Ets, &s, &origins, 2, 0) else {
            panic!("ETS fits")
        };
        assert_eq!(f.len(), origins.len());
        // Each origin's forecast is the model fitted on exactly the points before it...
        assert_eq!(f[3], StatModel::Ets.forecast(&s[..73], 2).unwrap());
        // ...or their last `max_history`.
        let Rolling::Forecasts(g) = rolling(StatModel::Ets, &s, &origins, 2, 40) else {
            panic!("ETS fits")
        };
        assert_eq!(g[3], StatModel::Ets.forecast(&s[33..73], 2).unwrap());
    }

    #[test]
    fn too_little_history_leaves_the_model_out_with_a_note() {
        let s = seasonal(40);
        let origins: Vec<usize> = (30..=38).collect();
        // Two seasons of 20 are 40 points; the first origin has 30.
        let Rolling::Absent(note) = rolling(StatModel::MstlEts { season: 20 }, &s, &origins, 2, 0)
        else {
            panic!("MSTL cannot fit")
        };
        assert!(
            note.contains("MSTL+ETS") && note.contains("40") && note.contains("30"),
            "{note}"
        );
        let Rolling::Absent(note) = rolling(StatModel::Ets, &s, &origins, 2, 5) else {
            panic!("5 points are too few")
        };
        assert!(note.contains("--ets-history 5"), "{note}");
        assert!(StatModel::MstlEts { season: 1 }.forecast(&s, 2).is_err());
        // A constant series: a forecast or an error, never a panic.
        let flat = vec![3.0; 50];
        if let Ok(f) = StatModel::Ets.forecast(&flat, 2) {
            assert!(f.iter().all(|v| (v - 3.0).abs() < 1e-6), "{f:?}");
        }
    }
}
