//! `recurrent forecast`: forecast a univariate time series (CSV) and compare with naive and
//! statistical baselines (`train`, also what the flags alone do), or forecast the horizon
//! after new data with a trained model (`predict`).

use super::Ctx;
use crate::forecast::{self, ForecastConfig};
use anyhow::{Context, Result};
use clap::{ArgMatches, FromArgMatches};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `recurrent forecast`'s arguments: `train` or `predict`, or the training flags without a
/// subcommand (`recurrent forecast --csv …` trains, as `recurrent forecast train --csv …`).
///
/// clap's derive cannot express "a subcommand, or else these flags" when the flags have
/// required options, so the parsing is written out: the flags of `train` and the subcommands
/// go on the same command, which refuses the flags beside a subcommand
/// (`args_conflicts_with_subcommands`) and requires `--csv` and `--column` only without one
/// (`subcommand_negates_reqs`).
pub struct Args {
    command: Command,
}

/// `recurrent forecast`'s subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Train on a CSV column, score on its held-out tail against naive, seasonal-naive, ETS
    /// and MSTL+ETS forecasts, and save the model (the default without a subcommand).
    Train(Box<TrainArgs>),
    /// Forecast the horizon after the end of a CSV column with a trained model.
    Predict(PredictArgs),
}

/// `recurrent forecast train`'s arguments: the forecaster's settings, and `--quiet`.
#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    config: ForecastConfig,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

/// `recurrent forecast predict`'s arguments.
#[derive(clap::Args)]
pub struct PredictArgs {
    /// The model folder (a training run's --out).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// The CSV file (with a header row): the forecast starts after its last value.
    #[arg(long)]
    csv: PathBuf,
    /// The value column (name or 0-based index; default: the one the model was trained on).
    #[arg(long)]
    column: Option<String>,
    /// Also write the forecasts as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

impl FromArgMatches for Args {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let command = if m.subcommand_name().is_some() {
            Command::from_arg_matches(m)?
        } else {
            Command::Train(Box::new(TrainArgs::from_arg_matches(m)?))
        };
        Ok(Args { command })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Args::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for Args {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        use clap::Subcommand;
        Command::augment_subcommands(TrainArgs::augment_args(cmd))
            .args_conflicts_with_subcommands(true)
            .subcommand_negates_reqs(true)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// Run `forecast [train]` or `forecast predict`.
pub fn run(args: Args, _ctx: &Ctx) -> Result<ExitCode> {
    match args.command {
        Command::Train(a) => train(*a),
        Command::Predict(a) => predict(a),
    }
}

/// Train, forecast, print the report.
fn train(args: TrainArgs) -> Result<ExitCode> {
    let out = args.config.out.clone();
    let r = forecast::run(args.config, args.quiet)?;
    println!("{r}");
    eprintln!(
        "Plot, forecasts and metrics in {}; forecast new data with: recurrent forecast predict --model {} --csv FILE",
        out.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Forecast after the end of the CSV column; one line per step on stdout.
fn predict(a: PredictArgs) -> Result<ExitCode> {
    let p = forecast::predict(&a.model, &a.csv, a.column.as_deref())?;
    eprintln!(
        "{} steps of {} after line {} of {}{} (value {}), from its last {} values:",
        p.forecasts.len(),
        p.column,
        p.last_line,
        p.csv.display(),
        p.last_label
            .as_ref()
            .map_or(String::new(), |l| format!(", {l}")),
        p.last_value,
        p.used
    );
    if let Some(path) = &a.json {
        recurrent::io::write_atomic(path, serde_json::to_string_pretty(&p)?.as_bytes())
            .with_context(|| format!("--json {}", path.display()))?;
    }
    // A reader that stops early (`| head -3`) is not an error.
    match write!(std::io::stdout().lock(), "{p}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the forecasts")?
        }
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}
