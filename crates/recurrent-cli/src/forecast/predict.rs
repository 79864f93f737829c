//! The trained forecaster as files, and its forecasts of new data.
//!
//! A training run saves into its output folder `model.safetensors` (the network's state dict,
//! PyTorch's parameter names: `rnn.weight_ih_l0`, …, `head.weight`, `head.bias`) and
//! `forecaster.json` (`"kind": "forecast"`, the settings, and what the forecasts need besides
//! the weights: the scaling's mean and standard deviation, the transform, the window, the
//! horizon and the network's number of outputs, the value column and the date column).
//! `recurrent forecast predict` reads them back, takes the last window of a CSV file's
//! column and forecasts the horizon after it, with the dates of those steps when the file's
//! dates step by a regular month or day.

use super::series::{next_dates, parse_table};
use super::{net_forecast, unscale, ForecastConfig, Net, Prepared, Strategy, Transform};
use anyhow::{bail, Context, Result};
use recurrent::io::{load_safetensors, save_safetensors, write_atomic};
use recurrent::nn::Module;
use recurrent::Generator;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The weights' file in a forecast model folder.
pub const MODEL_FILE: &str = "model.safetensors";
/// The description's file in a forecast model folder.
pub const FORECASTER_FILE: &str = "forecaster.json";
/// The `"kind"` of a forecaster file.
pub const KIND: &str = "forecast";

/// `forecaster.json`: what, beside the weights, turns a window of new data into forecasts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForecasterFile {
    /// Always `"forecast"` (model folders of other kinds have other files).
    pub kind: String,
    /// The training run's settings.
    pub config: ForecastConfig,
    /// The mean the transformed series was centred by (fitted on the training part).
    pub mean: f64,
    /// The standard deviation it was divided by.
    pub std: f64,
    /// The transform applied before scaling.
    pub transform: Transform,
    /// The network's outputs: the horizon (`direct`) or 1 (`recursive`).
    pub out_len: usize,
    /// Past values per window.
    pub window: usize,
    /// Steps forecast.
    pub horizon: usize,
    /// The value column's header in the training CSV.
    pub column: String,
    /// The date (or label) column's header in the training CSV, if it had one.
    pub date_column: Option<String>,
}

impl ForecasterFile {
    /// Check that the file's parts agree (`path` names it in errors).
    fn check(&self, path: &Path) -> Result<()> {
        let c = &self.config;
        let bad = |what: String| anyhow::anyhow!("{}: inconsistent: {what}", path.display());
        c.validate()
            .with_context(|| format!("{}: invalid settings", path.display()))?;
        if (self.window, self.horizon, self.transform) != (c.window, c.horizon, c.transform) {
            return Err(bad(format!(
                "window {}, horizon {} and transform {} against the settings' {}, {} and {}",
                self.window,
                self.horizon,
                self.transform.name(),
                c.window,
                c.horizon,
                c.transform.name()
            )));
        }
        let expect = match c.strategy {
            Strategy::Direct => self.horizon,
            Strategy::Recursive => 1,
        };
        if self.out_len != expect {
            return Err(bad(format!(
                "out_len {} where the {:?} strategy with horizon {} has {expect}",
                self.out_len, c.strategy, self.horizon
            )));
        }
        if !(self.mean.is_finite() && self.std.is_finite() && self.std > 0.0) {
            return Err(bad(format!(
                "the scaling's mean {} and std {} must be finite, the std above 0",
                self.mean, self.std
            )));
        }
        Ok(())
    }
}

/// Save the trained network and its description into `cfg.out` (each file atomically).
pub(super) fn save(cfg: &ForecastConfig, prep: &Prepared, net: &Net) -> Result<()> {
    save_safetensors(&cfg.out.join(MODEL_FILE), &net.state_dict(), None)?;
    let file = ForecasterFile {
        kind: KIND.into(),
        config: cfg.clone(),
        mean: prep.mean,
        std: prep.std,
        transform: cfg.transform,
        out_len: prep.out_len,
        window: cfg.window,
        horizon: cfg.horizon,
        column: prep.column.clone(),
        date_column: prep.labels.as_ref().map(|l| l.column.clone()),
    };
    write_atomic(
        &cfg.out.join(FORECASTER_FILE),
        serde_json::to_string_pretty(&file)?.as_bytes(),
    )?;
    Ok(())
}

/// A trained forecaster, loaded.
pub struct Forecaster {
    /// Its description.
    pub file: ForecasterFile,
    net: Net,
}

/// Load the forecaster saved in `dir`. Errors name the file: a folder without
/// `forecaster.json` (or with one of another kind) is not a forecast model folder.
pub fn load_forecaster(dir: &Path) -> Result<Forecaster> {
    let path = dir.join(FORECASTER_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let other = if dir.join("config.json").is_file() {
                " (it has config.json: a model of another kind)"
            } else if !dir.is_dir() {
                " (there is no such folder)"
            } else {
                ""
            };
            bail!(
                "{} is not a forecast model folder: {} is missing{other}; train one with \
                 `recurrent forecast --csv FILE --column NAME --out {}`",
                dir.display(),
                path.display(),
                dir.display()
            );
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    match value.get("kind").and_then(|k| k.as_str()) {
        Some(KIND) => {}
        Some(other) => bail!(
            "{}: the model is of kind {other:?}, not {KIND:?}: not a forecast model",
            path.display()
        ),
        None => bail!(
            "{}: no \"kind\": {KIND:?}: not a forecast model",
            path.display()
        ),
    }
    let file: ForecasterFile = serde_json::from_value(value)
        .with_context(|| format!("{} is not a valid forecaster file", path.display()))?;
    file.check(&path)?;
    let wpath = dir.join(MODEL_FILE);
    let weights =
        load_safetensors(&wpath).with_context(|| format!("loading {}", wpath.display()))?;
    let mut net = Net::new(&file.config, file.out_len, &mut Generator::new(0))?;
    net.load_state_dict(&weights, true)
        .with_context(|| format!("{} does not match {}", wpath.display(), path.display()))?;
    net.set_training(false);
    Ok(Forecaster { file, net })
}

/// One forecast step.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PredictedStep {
    /// 1 for the value right after the data, 2 for the next, …
    pub step: usize,
    /// Its date, when the data's dates step regularly (see [`super::next_dates`]).
    pub date: Option<String>,
    /// The forecast, in the series' units.
    pub value: f64,
}

/// The forecast of the horizon after the end of a CSV file's column.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    /// The model folder.
    pub model: PathBuf,
    /// The CSV file.
    pub csv: PathBuf,
    /// The value column.
    pub column: String,
    /// The date (or label) column used for the dates, if any.
    pub date_column: Option<String>,
    /// Values in the column.
    pub points: usize,
    /// The values the forecast starts from (the window, and one more when differencing).
    pub used: usize,
    /// The file line of the last value.
    pub last_line: usize,
    /// The label of the last value, if the file has a label column.
    pub last_label: Option<String>,
    /// The last value.
    pub last_value: f64,
    /// The forecasts, one per step of the horizon.
    pub forecasts: Vec<PredictedStep>,
}

/// Forecast the horizon after the last value of `column` (default: the training column) of
/// `csv` with the model saved in `model`, from the last window of values.
pub fn predict(model: &Path, csv: &Path, column: Option<&str>) -> Result<Prediction> {
    let f = load_forecaster(model)?;
    f.predict(model, csv, column)
}

impl Forecaster {
    /// See [`predict`]; `model` is the folder it was loaded from (for the report).
    pub fn predict(&self, model: &Path, csv: &Path, column: Option<&str>) -> Result<Prediction> {
        let file = &self.file;
        let column = column.unwrap_or(&file.column);
        let text =
            std::fs::read_to_string(csv).with_context(|| format!("reading {}", csv.display()))?;
        let data = parse_table(&text, column, file.date_column.as_deref(), csv)?;
        let n = data.values.len();
        let t = file.transform;
        let used = file.window + usize::from(t.diff());
        if n < used {
            bail!(
                "{}: column {:?} has {n} values, but the model needs at least {used} (its window \
                 of {}{})",
                csv.display(),
                data.column,
                file.window,
                if t.diff() {
                    ", and one more for the differences"
                } else {
                    ""
                }
            );
        }
        let tail = n - used;
        let values = &data.values[tail..];
        if t.log() {
            if let Some(i) = values.iter().position(|&v| v <= 0.0) {
                bail!(
                    "{}:{}: {} is not positive, and the model takes logs (--transform {})",
                    csv.display(),
                    data.lines[tail + i],
                    values[i],
                    t.name()
                );
            }
        }
        let level: Vec<f64> = if t.log() {
            values.iter().map(|v| v.ln()).collect()
        } else {
            values.to_vec()
        };
        let z: Vec<f64> = if t.diff() {
            level.windows(2).map(|p| p[1] - p[0]).collect()
        } else {
            level.clone()
        };
        let scaled: Vec<f32> = z
            .iter()
            .map(|v| ((v - file.mean) / file.std) as f32)
            .collect();
        let out = {
            let _ng = recurrent::no_grad();
            net_forecast(&self.net, file.config.strategy, &scaled, file.horizon)?
        };
        let last_level = level[level.len() - 1];
        let forecast = unscale(out, t, file.mean, file.std, last_level);
        // Dates: from the labels of the rows used (at least the last two), when regular.
        let dates = data.labels.as_ref().and_then(|l| {
            let from = n.saturating_sub(used.max(2));
            next_dates(&l.values[from..], file.horizon)
        });
        let forecasts = forecast
            .into_iter()
            .enumerate()
            .map(|(k, value)| PredictedStep {
                step: k + 1,
                date: dates.as_ref().map(|d| d[k].clone()),
                value,
            })
            .collect();
        Ok(Prediction {
            model: model.to_path_buf(),
            csv: csv.to_path_buf(),
            column: data.column.clone(),
            date_column: data.labels.as_ref().map(|l| l.column.clone()),
            points: n,
            used,
            last_line: data.lines[n - 1],
            last_label: data.labels.as_ref().map(|l| l.values[n - 1].clone()),
            last_value: data.values[n - 1],
            forecasts,
        })
    }
}

impl std::fmt::Display for Prediction {
    /// One line per step: its date (or `+k`), a tab, the forecast.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for s in &self.forecasts {
            match &s.date {
                Some(d) => writeln!(f, "{d}\t{:.4}", s.value)?,
                None => writeln!(f, "+{}\t{:.4}", s.step, s.value)?,
            }
        }
        Ok(())
    }
}
