//! `recurrent forecast`: forecast a univariate time series (CSV) and compare with naive
//! baselines.

use super::Ctx;
use crate::forecast::{self, ForecastConfig};
use anyhow::Result;
use std::process::ExitCode;

/// `recurrent forecast`'s arguments: the forecaster's settings, and `--quiet`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ForecastConfig,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

/// Train, forecast, print the report.
pub fn run(args: Args, _ctx: &Ctx) -> Result<ExitCode> {
    let out = args.config.out.clone();
    let r = forecast::run(args.config, args.quiet)?;
    println!("{r}");
    eprintln!("Plot, forecasts and metrics in {}", out.display());
    Ok(ExitCode::SUCCESS)
}
