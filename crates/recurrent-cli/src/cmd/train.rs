//! `recurrent train`: train (or resume) an IMDB sentiment classifier.
//!
//! The settings come in layers: a preset, then a TOML config file, then the flags given on
//! the command line (the fields of [`SentimentConfig`], each optional here). A resumed run
//! takes its settings from its directory and refuses flags that would change it.

use super::Ctx;
use crate::resume::{refuse_changes, Given};
use crate::sentiment::config::SentimentConfig;
use crate::sentiment::modeldir::load_config;
use crate::sentiment::train::{train, RunFile, TrainOptions};
use anyhow::{Context, Result};
use clap::{ArgMatches, Command, FromArgMatches};
use recurrent_data::tokenizer::Tokenizer;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A starting point for the settings.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Preset {
    /// The tuned default (bidirectional LSTM, max pooling).
    Default,
    /// The course's architecture: embedding -> 2-layer LSTM -> linear on the last hidden state.
    Course,
    /// ULMFiT's fine-tuning of a pretrained encoder (with --init-from LM_DIR): concat pooling,
    /// discriminative rates, gradual unfreezing, a slanted triangular schedule.
    Ulmfit,
}

/// `recurrent train`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Run directory (model, vocabulary, metrics, plots, checkpoints).
    #[arg(long, default_value = "runs/imdb")]
    out: PathBuf,
    /// Continue the interrupted run in this directory.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// The IMDB corpus: aclImdb_v1.tar.gz, an extracted aclImdb/ folder, or a folder holding one.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Never download the corpus.
    #[arg(long)]
    no_download: bool,
    /// A TOML file of settings (the keys are the long flag names with '_' for '-').
    #[arg(long)]
    config: Option<PathBuf>,
    /// Start from a preset, before the config file and flags.
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Train on at most N reviews (quick experiments).
    #[arg(long)]
    limit: Option<usize>,
    /// Skip steps whose loss or gradient is not finite (default: stop with an error).
    #[arg(long)]
    skip_nonfinite: bool,
    /// No progress bars or logs (errors and per-epoch lines still print).
    #[arg(long)]
    quiet: bool,
    /// Stop as if interrupted after N steps (for testing resume).
    #[arg(long, hide = true)]
    stop_after_steps: Option<u64>,
    /// Replace the loss of these steps by NaN (for testing the non-finite guards).
    #[arg(long, hide = true, value_delimiter = ',')]
    fault_nan_steps: Vec<u64>,
    /// Abort after this many setup steps of the run directory (for testing a kill in setup).
    #[arg(long, hide = true)]
    fault_abort_in_setup: Option<usize>,
    /// Tokenizer: basic_english or char.
    #[arg(long)]
    tokenizer: Option<String>,
    #[command(flatten)]
    settings: Settings,
}

/// The settings flags: [`SentimentConfig`]'s own clap arguments, every one optional here.
/// Those given on the command line override the preset and the config file.
#[derive(Clone, Debug, Default)]
pub struct Settings(ArgMatches);

impl FromArgMatches for Settings {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Settings(m.clone()))
    }
    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        self.0 = m.clone();
        Ok(())
    }
}

impl clap::Args for Settings {
    fn augment_args(cmd: Command) -> Command {
        optional(<SentimentConfig as clap::Args>::augment_args(cmd))
    }
    fn augment_args_for_update(cmd: Command) -> Command {
        optional(<SentimentConfig as clap::Args>::augment_args_for_update(
            cmd,
        ))
    }
}

/// `cmd` with [`SentimentConfig`]'s arguments made optional (the preset and the config file
/// give the values not on the command line).
fn optional(cmd: Command) -> Command {
    let settings = <SentimentConfig as clap::Args>::augment_args(Command::new("settings"));
    settings
        .get_arguments()
        .fold(cmd, |cmd, a| cmd.mut_arg(a.get_id(), |a| a.required(false)))
}

impl Settings {
    /// Apply the tokenizer flag and the settings flags given to `cfg`, and check the result.
    fn apply(&self, tokenizer: Option<&str>, cfg: &mut SentimentConfig) -> Result<()> {
        if let Some(t) = tokenizer {
            cfg.tokenizer = Tokenizer::parse(t)
                .with_context(|| format!("unknown tokenizer {t:?} (basic_english or char)"))?;
        }
        cfg.update_from_arg_matches(&self.0)?;
        cfg.validate()
    }

    /// The value of the settings flag `id`, if given.
    fn given<T: Clone + Send + Sync + 'static>(&self, id: &str) -> Option<T> {
        self.0.get_one::<T>(id).cloned()
    }
}

/// Options of `train` that a resumed run may change (see `recurrent_cli::resume`).
const MAY_CHANGE: &[&str] = &[
    "epochs",
    "patience",
    "threads",
    "quiet",
    "data",
    "no_download",
];
/// Test hooks of `train`, allowed on resume.
const HOOKS: &[&str] = &[
    "stop_after_steps",
    "fault_nan_steps",
    "fault_abort_in_setup",
];

/// Train, or resume, as `args` say.
pub fn run(args: Args, ctx: &Ctx) -> Result<ExitCode> {
    let given = ctx.given(&["train"]);
    if let Some(l) = args.limit {
        crate::validate::positive("--limit", l)?;
    }
    let mut cfg = match args.preset {
        Some(Preset::Course) => SentimentConfig::course(),
        Some(Preset::Ulmfit) => SentimentConfig::ulmfit(),
        _ => SentimentConfig::default(),
    };
    if let Some(dir) = &args.resume {
        check_resume(dir, &given)?;
    }
    if let Some(p) = &args.config {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        cfg = SentimentConfig::from_toml(&text, &cfg)
            .with_context(|| format!("in {}", p.display()))?;
    }
    args.settings.apply(args.tokenizer.as_deref(), &mut cfg)?;
    let opts = args.options(ctx.threads);
    let s = train(cfg, &opts)?;
    if s.interrupted {
        return Ok(ExitCode::from(130));
    }
    eprintln!(
        "Done in {:.0} s: best validation accuracy {:.4} (epoch {}). The model is in {}.\n\
         Evaluate it on the test split: recurrent eval --model {}",
        s.seconds,
        s.best_val_acc,
        s.best_epoch,
        opts.out.display(),
        opts.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

impl Args {
    /// How to run the training (beyond the settings).
    fn options(&self, threads: usize) -> TrainOptions {
        let resume = self.resume.is_some();
        TrainOptions {
            out: self.resume.clone().unwrap_or(self.out.clone()),
            data: self.data.clone(),
            resume,
            allow_download: !self.no_download,
            limit: self.limit,
            epochs_override: resume.then(|| self.settings.given("epochs")).flatten(),
            patience_override: resume.then(|| self.settings.given("patience")).flatten(),
            threads,
            stop_after_steps: self.stop_after_steps,
            skip_nonfinite: self.skip_nonfinite,
            fault_nan_steps: self.fault_nan_steps.clone(),
            abort_in_setup: self.fault_abort_in_setup,
            quiet: self.quiet,
            progress: !self.quiet && std::io::stderr().is_terminal(),
        }
    }
}

/// On `train --resume DIR`, refuse options that would change the run, naming what it was
/// started with.
fn check_resume(dir: &Path, given: &[Given]) -> Result<()> {
    let (cfg, _) = load_config(dir).with_context(|| format!("--resume {}", dir.display()))?;
    let run = RunFile::load(dir).with_context(|| format!("--resume {}", dir.display()))?;
    let settings = serde_json::to_value(&cfg)?;
    let stored = |id: &str| -> Option<String> {
        match id {
            "limit" => run.limit.map(|l| l.to_string()),
            "skip_nonfinite" => run.skip_nonfinite.then(String::new),
            "config" | "preset" => Some("its settings, which are in config.json".into()),
            _ => {
                let key = match id {
                    "hidden" => "hidden_size",
                    "layers" => "num_layers",
                    other => other,
                };
                settings.get(key).map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            }
        }
    };
    refuse_changes(given, MAY_CHANGE, HOOKS, &stored, dir)
}
