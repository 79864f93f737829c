//! `recurrent pretrain`: pretrain a word-level LSTM language model on IMDB's training and
//! unlabelled reviews (or fine-tune one on the training reviews), for `train --init-from`.
//!
//! The settings come in layers: the defaults, then a TOML file (`--config`), then the flags
//! given on the command line. A resumed run takes its settings from its `run.json` and refuses
//! flags that would change it.

use super::Ctx;
use crate::pretrain::{pretrain, PretrainConfig, PretrainOptions};
use crate::resume::{refuse_changes, Given};
use anyhow::{Context, Result};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `recurrent pretrain`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Output directory: the language model (lm.json, vocab.json, model.safetensors),
    /// metrics.json, curves.png, checkpoints/ and snapshots/.
    #[arg(long, default_value = "runs/lm")]
    out: PathBuf,
    /// Continue the interrupted run in this directory.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// Start from this language model (its vocabulary and architecture): ULMFiT's LM
    /// fine-tuning, with --text imdb-train.
    #[arg(long, value_name = "LM_DIR")]
    init_from: Option<PathBuf>,
    /// The IMDB corpus: aclImdb_v1.tar.gz, an extracted aclImdb/ folder, or a folder holding one.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Never download the corpus.
    #[arg(long)]
    no_download: bool,
    /// A TOML file of settings (the keys are the long flag names with '_' for '-').
    #[arg(long)]
    config: Option<PathBuf>,
    /// Read at most N reviews (quick runs).
    #[arg(long)]
    limit: Option<usize>,
    /// No progress bar or logs (errors and per-epoch lines still print).
    #[arg(long)]
    quiet: bool,
    /// Stop as if interrupted after N steps (for testing resume).
    #[arg(long, hide = true)]
    stop_after_steps: Option<u64>,
    #[command(flatten)]
    settings: PretrainConfig,
}

/// Options that a resumed run may change.
const MAY_CHANGE: &[&str] = &["threads", "quiet", "data", "no_download"];

/// Pretrain, or resume, as `args` say.
pub fn run(args: Args, ctx: &Ctx) -> Result<ExitCode> {
    let given = ctx.given(&["pretrain"]);
    if let Some(dir) = &args.resume {
        check_resume(dir, &given)?;
    }
    let cfg = settings(&args, &given)?;
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let opts = PretrainOptions {
        out: args.resume.clone().unwrap_or(args.out.clone()),
        data: args.data.clone(),
        resume: args.resume.is_some(),
        init_from: args.init_from.clone(),
        allow_download: !args.no_download,
        limit: args.limit,
        threads: ctx.threads,
        stop_after_steps: args.stop_after_steps,
        quiet: args.quiet,
        progress,
    };
    let r = pretrain(cfg, &opts)?;
    if r.interrupted {
        return Ok(ExitCode::from(130));
    }
    eprintln!(
        "Done: {} steps, {:.0} s of training, held-out perplexity {:.1} ({:.3} nats/word). \
         Fine-tune a classifier on it: recurrent train --preset ulmfit --init-from {}",
        r.steps,
        r.train_seconds,
        r.val_perplexity,
        r.val_nats,
        opts.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The defaults, then the TOML file, then the flags given explicitly.
fn settings(args: &Args, given: &[Given]) -> Result<PretrainConfig> {
    let Some(p) = &args.config else {
        args.settings.validate()?;
        return Ok(args.settings.clone());
    };
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    let file = PretrainConfig::from_toml(&text, &PretrainConfig::default())
        .with_context(|| format!("in {}", p.display()))?;
    let mut merged = serde_json::to_value(&file)?;
    let flags = serde_json::to_value(&args.settings)?;
    for g in given {
        if let Some(v) = flags.get(&g.id) {
            merged[&g.id] = v.clone();
        }
    }
    let cfg: PretrainConfig = serde_json::from_value(merged)?;
    cfg.validate()?;
    Ok(cfg)
}

/// On `pretrain --resume DIR`, refuse options that would change the run.
fn check_resume(dir: &Path, given: &[Given]) -> Result<()> {
    let run = crate::pretrain::PretrainRun::load(dir)
        .with_context(|| format!("--resume {}", dir.display()))?;
    let settings = serde_json::to_value(&run.config)?;
    let stored = |id: &str| -> Option<String> {
        match id {
            "limit" => run.limit.map(|l| l.to_string()),
            "init_from" => run.init_from.as_ref().map(|p| p.display().to_string()),
            "config" => Some("its settings, which are in run.json".into()),
            key => settings.get(key).map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        }
    };
    refuse_changes(given, MAY_CHANGE, &["stop_after_steps"], &stored, dir)
}
