//! `recurrent eval`: accuracy, precision, recall, F1 and the confusion matrix of a trained
//! sentiment model, on the corpus's test split, a labelled folder or a TSV file.

use super::Ctx;
use crate::sentiment::{self, EvalSource};
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// `recurrent eval`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The model directory (written by `train`).
    #[arg(long)]
    model: PathBuf,
    /// The IMDB corpus (its test split is used).
    #[arg(long, conflicts_with_all = ["folder", "tsv"])]
    data: Option<PathBuf>,
    /// A labelled folder in the aclImdb layout (a corpus root, or one folder with pos/ and neg/).
    #[arg(long, conflicts_with = "tsv")]
    folder: Option<PathBuf>,
    /// A TSV file of `label<TAB>text` lines.
    #[arg(long)]
    tsv: Option<PathBuf>,
    /// Evaluate on at most N examples (balanced).
    #[arg(long)]
    limit: Option<usize>,
    /// Never download the corpus.
    #[arg(long)]
    no_download: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Evaluate and print the results.
pub fn run(args: Args, _ctx: &Ctx) -> Result<ExitCode> {
    if let Some(l) = args.limit {
        crate::validate::positive("--limit", l)?;
    }
    let source = match (args.folder, args.tsv) {
        (Some(f), _) => EvalSource::Folder(f),
        (_, Some(t)) => EvalSource::Tsv(t),
        _ => EvalSource::Corpus(args.data),
    };
    let c = sentiment::evaluate(&args.model, &source, !args.no_download, args.limit)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&c.to_json())?);
    } else {
        println!("{c}");
    }
    Ok(ExitCode::SUCCESS)
}
