//! `recurrent predict`: classify texts (arguments, or one per line on standard input) with a
//! trained sentiment model.

use super::Ctx;
use crate::sentiment;
use anyhow::Result;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// `recurrent predict`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The model directory (written by `train`).
    #[arg(long)]
    model: PathBuf,
    /// Texts to classify; without any, one text per line is read from standard input.
    texts: Vec<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// Classify and print one line per text.
pub fn run(args: Args, _ctx: &Ctx) -> Result<ExitCode> {
    let texts = if args.texts.is_empty() {
        if std::io::stdin().is_terminal() {
            eprintln!("Reading texts from standard input, one per line (Ctrl-D to end).");
        }
        sentiment::read_lines(std::io::stdin().lock())?
    } else {
        args.texts
    };
    for p in sentiment::predict(&args.model, &texts)? {
        if args.json {
            println!("{}", serde_json::to_string(&p)?);
        } else {
            let preview: String = p.text.chars().take(60).collect();
            let more = if p.text.chars().count() > 60 {
                "..."
            } else {
                ""
            };
            println!("{}\t{:.4}\t{preview}{more}", p.label, p.probability);
        }
    }
    Ok(ExitCode::SUCCESS)
}
