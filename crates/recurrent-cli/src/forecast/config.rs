//! The forecaster's settings: the `forecast` subcommand's flags, how a horizon is forecast,
//! the transform of the series and the dropout variants.

use crate::cell::Cell;
use anyhow::Result;
use recurrent::nn::VariationalDropout;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How a horizon is forecast.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
    /// Whether it takes logs (`log`, `log-diff`).
    pub fn log(self) -> bool {
        matches!(self, Transform::Log | Transform::LogDiff)
    }
    /// Whether it takes first differences (`diff`, `log-diff`).
    pub fn diff(self) -> bool {
        matches!(self, Transform::Diff | Transform::LogDiff)
    }
    /// Its flag value: `none`, `log`, `diff` or `log-diff`.
    pub fn name(self) -> &'static str {
        match self {
            Transform::None => "none",
            Transform::Log => "log",
            Transform::Diff => "diff",
            Transform::LogDiff => "log-diff",
        }
    }
}

/// Dropout variants of the recurrent layers (all off by default). Serialised as
/// `"variational": {input, state, output}, "weight_drop"` in `metrics.json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, clap::Args)]
pub struct Dropout {
    /// Variational dropout on recurrent layer inputs (one mask per sequence; not in PyTorch).
    #[arg(long, default_value_t = 0.0)]
    pub var_input: f64,
    /// Variational dropout on the recurrent state h_{t-1}.
    #[arg(long, default_value_t = 0.0)]
    pub var_state: f64,
    /// Variational dropout on recurrent layer outputs.
    #[arg(long, default_value_t = 0.0)]
    pub var_output: f64,
    /// DropConnect on the hidden-to-hidden weights (AWD-LSTM's weight drop).
    #[arg(long, default_value_t = 0.0)]
    pub weight_drop: f64,
}

impl Dropout {
    /// The variational part, as the library takes it.
    pub fn variational(&self) -> VariationalDropout {
        VariationalDropout {
            input: self.var_input,
            state: self.var_state,
            output: self.var_output,
        }
    }
}

/// How [`Dropout`] is written in `metrics.json` and `forecaster.json`.
#[derive(Serialize, Deserialize)]
struct DropoutFields {
    variational: VariationalDropout,
    weight_drop: f64,
}

impl Serialize for Dropout {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DropoutFields {
            variational: self.variational(),
            weight_drop: self.weight_drop,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Dropout {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = DropoutFields::deserialize(d)?;
        Ok(Dropout {
            var_input: f.variational.input,
            var_state: f.variational.state,
            var_output: f.variational.output,
            weight_drop: f.weight_drop,
        })
    }
}

/// Settings of a forecasting run: the `forecast` subcommand's flags.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct ForecastConfig {
    /// The CSV file (with a header row).
    #[arg(long)]
    pub csv: PathBuf,
    /// The value column (name or 0-based index).
    #[arg(long)]
    pub column: String,
    /// Past values per window.
    #[arg(long, default_value_t = 12)]
    pub window: usize,
    /// Steps ahead to forecast.
    #[arg(long, default_value_t = 1)]
    pub horizon: usize,
    /// direct (one output per step) or recursive (feed forecasts back).
    #[arg(long, value_enum, default_value = "direct")]
    pub strategy: Strategy,
    /// Held-out points at the end (default: a fifth of the series).
    #[arg(long)]
    pub test: Option<usize>,
    /// Fraction of the remaining points used for validation.
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Season length for the seasonal-naive and MSTL+ETS baselines (e.g. 12 for monthly
    /// data; 0: none).
    #[arg(long, default_value_t = 0)]
    pub season: usize,
    /// Fit ETS and MSTL+ETS at each origin on at most the last N points before it (0: the
    /// whole history). They are refitted at every origin; a cap keeps long series fast.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_ETS_HISTORY)]
    #[serde(default)]
    pub ets_history: usize,
    /// Transform before scaling (undone on the forecasts): none, log, diff or log-diff.
    #[arg(long, value_enum, default_value = "none")]
    pub transform: Transform,
    /// Recurrent cell.
    #[arg(long, value_enum, default_value = "lstm")]
    pub cell: Cell,
    /// Hidden size.
    #[arg(long, default_value_t = 32)]
    pub hidden: usize,
    /// Layers.
    #[arg(long, default_value_t = 1)]
    pub layers: usize,
    /// Epochs.
    #[arg(long, default_value_t = 200)]
    pub epochs: usize,
    /// Windows per batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 5e-3)]
    pub lr: f64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder (plot, forecasts, metrics).
    #[arg(long, default_value = "runs/forecast")]
    pub out: PathBuf,
    /// Dropout of the recurrent layers (off by default).
    #[command(flatten)]
    #[serde(flatten)]
    pub dropout: Dropout,
}

/// The default of `--ets-history`: 0, the whole history before each origin, as the naive
/// baselines and the network's training see it.
///
/// Measured on 2 cores, refitting at every origin stays affordable with the whole history:
/// 13 s for ETS and MSTL+ETS at the 359 origins of the daily temperatures (3285 to 3643 points
/// each), 6 s at the 253 origins of the monthly sunspots, 0.02 s on the airline series. A cap
/// is a trade: `--ets-history 1000` takes the temperatures' fits to 5 s, but MSTL then sees
/// fewer years of seasons, and its RMSE rises from 2.99 to 3.37 °C.
pub const DEFAULT_ETS_HISTORY: usize = 0;

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
        fraction("--var-input", self.dropout.var_input)?;
        fraction("--var-state", self.dropout.var_state)?;
        fraction("--var-output", self.dropout.var_output)?;
        fraction("--weight-drop", self.dropout.weight_drop)?;
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
