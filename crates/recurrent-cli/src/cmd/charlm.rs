//! `recurrent charlm`: a character-level language model; `train` on a text file (or resume a
//! run), `sample` from a trained one.

use super::Ctx;
use crate::charlm::{self, CharConfig, CharRunFile, CharTrainOptions, SampleOptions};
use crate::resume::{refuse_changes, Given};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `recurrent charlm`'s subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Train on a text file (default: tiny-shakespeare when present).
    Train(Box<TrainArgs>),
    /// Generate text from a trained model.
    Sample(SampleArgs),
}

/// `recurrent charlm train`'s arguments: the model's settings, and how to run.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// The training text (UTF-8).
    #[arg(long)]
    text: Option<PathBuf>,
    /// The model directory.
    #[arg(long, default_value = "runs/charlm")]
    out: PathBuf,
    /// Continue the run in this directory.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    resume: Option<PathBuf>,
    #[command(flatten)]
    config: CharConfig,
    /// Use only the first N characters of the text (quick runs).
    #[arg(long)]
    max_chars: Option<usize>,
    /// Stop as if interrupted after N steps (for testing resume).
    #[arg(long, hide = true)]
    stop_after_steps: Option<u64>,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

/// `recurrent charlm sample`'s arguments.
#[derive(clap::Args)]
pub struct SampleArgs {
    /// The model directory.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    options: SampleOptions,
}

/// Run `charlm train` or `charlm sample`.
pub fn run(command: Command, ctx: &Ctx) -> Result<ExitCode> {
    match command {
        Command::Train(a) => train(*a, ctx),
        Command::Sample(a) => {
            charlm::print_sample(&a.model, &a.options)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Train, or resume, as `a` says.
fn train(a: TrainArgs, ctx: &Ctx) -> Result<ExitCode> {
    let given = ctx.given(&["charlm", "train"]);
    if let Some(dir) = &a.resume {
        check_resume(dir, &given)?;
    }
    let opts = a.options(ctx.threads, &given);
    let out = opts.out.clone();
    let r = charlm::train(a.config, &opts)?;
    if r.interrupted {
        return Ok(ExitCode::from(130));
    }
    println!(
        "best validation loss {:.4} nats/char ({:.3} bits/char) in {:.0} s; sample with: recurrent charlm sample --model {}",
        r.best_val_nats,
        r.best_val_bpc,
        r.seconds,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

impl TrainArgs {
    /// How to run the training (beyond the model settings).
    fn options(&self, threads: usize, given: &[Given]) -> CharTrainOptions {
        let resume = self.resume.is_some();
        CharTrainOptions {
            text: if resume {
                self.text.clone()
            } else {
                self.text.clone().or_else(charlm::default_text)
            },
            out: self.resume.clone().unwrap_or(self.out.clone()),
            resume,
            max_chars: self.max_chars,
            epochs_override: given
                .iter()
                .any(|g| g.id == "epochs")
                .then_some(self.config.epochs),
            threads,
            stop_after_steps: self.stop_after_steps,
            quiet: self.quiet,
        }
    }
}

/// Options of `charlm train` that a resumed run may change.
const MAY_CHANGE: &[&str] = &["epochs", "threads", "quiet", "text"];

/// On `charlm train --resume DIR`, refuse options that would change the run.
fn check_resume(dir: &Path, given: &[Given]) -> Result<()> {
    let settings =
        charlm::stored_settings(dir).with_context(|| format!("--resume {}", dir.display()))?;
    let run = CharRunFile::load(dir)?;
    let stored = |id: &str| -> Option<String> {
        match id {
            "max_chars" => run.max_chars.map(|m| m.to_string()),
            key => settings.get(key).map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        }
    };
    refuse_changes(given, MAY_CHANGE, &["stop_after_steps"], &stored, dir)
}
