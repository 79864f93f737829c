//! `recurrent seq2seq`: an encoder-decoder with attention on a generated date-translation
//! task.

use super::Ctx;
use crate::seq2seq::{self, Seq2SeqConfig};
use anyhow::{bail, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// `recurrent seq2seq`'s arguments: the model and training settings, the report file,
/// `--quiet`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: Seq2SeqConfig,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

/// Train, evaluate, print examples and the accuracies.
pub fn run(args: Args, _ctx: &Ctx) -> Result<ExitCode> {
    let cfg = args.config;
    cfg.validate()?;
    if let Some(p) = &args.json {
        // Fail before training when the report could not be written.
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(d) = dir.filter(|d| !d.is_dir()) {
            bail!(
                "--json {}: the folder {} does not exist",
                p.display(),
                d.display()
            );
        }
    }
    let r = seq2seq::run(&cfg, args.quiet)?;
    for (src, tgt, got) in &r.examples {
        println!("{src:<32} -> {got:<10} (expected {tgt})");
    }
    println!(
        "held-out exact match: greedy {:.4}, beam {} {:.4} ({:.0} s)",
        r.greedy_accuracy, cfg.beam, r.beam_accuracy, r.seconds
    );
    if let Some(p) = args.json {
        recurrent::io::write_atomic(&p, serde_json::to_string_pretty(&r)?.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}
