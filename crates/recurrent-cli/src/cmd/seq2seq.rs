//! `recurrent seq2seq`: an encoder-decoder with attention. `train` on a file of pairs or a
//! built-in task (plain `recurrent seq2seq` trains too, on the dates task by default),
//! `translate` with a trained model.

use super::Ctx;
use crate::seq2seq::{self, DataConfig, Seq2SeqConfig, Translator};
use anyhow::{bail, Context, Result};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `recurrent seq2seq`'s arguments: a subcommand, or the training arguments.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: TrainArgs,
}

/// `recurrent seq2seq`'s subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Train on a file of tab-separated source and target pairs, or a built-in task (dates, reverse).
    Train(Box<TrainArgs>),
    /// Translate with a trained model: the arguments, or each line of standard input.
    Translate(TranslateArgs),
}

/// `recurrent seq2seq train`'s arguments: what to train on, the model and training settings,
/// where to keep the model, the report file, `--quiet`.
#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataConfig,
    #[command(flatten)]
    config: Seq2SeqConfig,
    /// Keep the trained model in this directory (for `seq2seq translate`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

/// `recurrent seq2seq translate`'s arguments.
#[derive(clap::Args)]
pub struct TranslateArgs {
    /// The model directory (`seq2seq train --out`).
    #[arg(long)]
    model: PathBuf,
    /// Texts to translate (none: each line of standard input).
    texts: Vec<String>,
    /// Beam width (1: greedy decoding).
    #[arg(long, default_value_t = 4)]
    beam: usize,
    /// One JSON object per line: {"source": ..., "translation": ...}.
    #[arg(long)]
    json: bool,
    /// Draw the attention of the first text's greedy translation as a heat map (PNG).
    #[arg(long, value_name = "FILE.png")]
    attention_png: Option<PathBuf>,
}

/// Run `seq2seq [train]` or `seq2seq translate`.
pub fn run(args: Args, _ctx: &Ctx) -> Result<ExitCode> {
    match args.command {
        Some(Command::Train(a)) => train(*a),
        Some(Command::Translate(a)) => translate(a),
        None => train(args.train),
    }
}

/// Fail before training when a file could not be written.
fn check_parent(flag: &str, p: &Path) -> Result<()> {
    let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir.filter(|d| !d.is_dir()) {
        bail!(
            "{flag} {}: the folder {} does not exist",
            p.display(),
            d.display()
        );
    }
    Ok(())
}

fn train(args: TrainArgs) -> Result<ExitCode> {
    let cfg = args.config;
    cfg.validate()?;
    args.data.validate()?;
    if let Some(p) = &args.json {
        check_parent("--json", p)?;
    }
    if let Some(dir) = &args.out {
        if dir.join("config.json").is_file() || dir.join("forecaster.json").is_file() {
            bail!(
                "--out {}: the directory holds another subcommand's model; choose another",
                dir.display()
            );
        }
    }
    let r = seq2seq::run(&cfg, &args.data, args.out.as_deref(), args.quiet)?;
    for (src, tgt, got) in &r.examples {
        println!("{src:<32} -> {got:<10} (expected {tgt})");
    }
    println!(
        "validation exact match: greedy {:.4}, beam {} {:.4}; tokens in place {:.4} ({:.0} s)",
        r.greedy_accuracy, cfg.beam, r.beam_accuracy, r.token_accuracy, r.seconds
    );
    if let Some(dir) = &args.out {
        eprintln!("Model in {}", dir.display());
    }
    if let Some(p) = args.json {
        recurrent::io::write_atomic(&p, serde_json::to_string_pretty(&r)?.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn translate(args: TranslateArgs) -> Result<ExitCode> {
    crate::validate::size("--beam", args.beam, 1_000)?;
    if let Some(p) = &args.attention_png {
        check_parent("--attention-png", p)?;
    }
    let t = Translator::load(&args.model)?;
    let texts: Vec<String> = if args.texts.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<std::io::Result<_>>()
            .context("reading standard input")?
    } else {
        args.texts.clone()
    };
    if let Some(p) = &args.attention_png {
        let Some(first) = texts.iter().find(|s| !s.trim().is_empty()) else {
            bail!("--attention-png: there is no text to translate");
        };
        let (src, out, w) = t.attention(first)?;
        let title = "attention (rows: output, columns: source)";
        seq2seq::save_attention_png(p, title, &src, &out, &w)?;
        eprintln!("Attention heat map in {}", p.display());
    }
    for s in &texts {
        if s.trim().is_empty() {
            println!();
            continue;
        }
        let out = t.translate(s, args.beam)?;
        if args.json {
            println!("{}", serde_json::json!({"source": s, "translation": out}));
        } else {
            println!("{out}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
