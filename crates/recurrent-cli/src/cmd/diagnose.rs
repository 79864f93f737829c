//! `recurrent diagnose`: measure the vanishing gradient, `||dL/dh_t||` over time for RNN, LSTM
//! and GRU.

use super::Ctx;
use crate::diagnose::{self, DiagnoseConfig};
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// `recurrent diagnose`'s arguments: the experiment's settings, where to write, `--quiet`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: DiagnoseConfig,
    /// Output folder.
    #[arg(long, default_value = "runs/diagnose")]
    out: PathBuf,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

/// Run the experiment and print the table.
pub fn run(args: Args, _ctx: &Ctx) -> Result<ExitCode> {
    let rs = diagnose::run(&args.config, &args.out, args.quiet)?;
    println!(
        "{:<5} {:>22} {:>22} {:>9}",
        "cell", "|dL/dh_0|/|dL/dh_T| init", "after training", "accuracy"
    );
    for r in &rs {
        let t = r.grad_norm_trained.len() - 1;
        println!(
            "{:<5} {:>22.3e} {:>22.3e} {:>9.3}",
            r.cell,
            r.ratio_first_last_init,
            r.grad_norm_trained[0] / r.grad_norm_trained[t].max(1e-300),
            r.accuracy
        );
    }
    eprintln!("Plots and CSV in {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
