//! `recurrent data`: download the IMDB corpus into the cache (resumable, checksum-verified),
//! or show where it is found and what it holds.

use super::Ctx;
use crate::datapath;
use anyhow::{bail, Result};
use recurrent_data::download::DownloadSpec;
use std::path::PathBuf;
use std::process::ExitCode;

/// `recurrent data`'s subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Download a dataset into the cache directory (resumable, checksum-verified).
    Download(DownloadArgs),
    /// Show where the IMDB corpus is found and what it holds.
    Info {
        /// The IMDB corpus location to check.
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

/// `recurrent data download`'s arguments.
#[derive(clap::Args)]
pub struct DownloadArgs {
    /// The dataset: imdb.
    dataset: String,
    /// Target directory (default: the cache directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Download from a mirror instead of Stanford. The file must be the official archive: its
    /// size, SHA-256 and MD5 are checked, unless --sha256 names another file.
    #[arg(long)]
    url: Option<String>,
    /// The SHA-256 of a mirror's file that is not the official archive (a repackaged copy):
    /// that SHA-256 and the archive's layout are checked instead.
    #[arg(long, requires = "url")]
    sha256: Option<String>,
}

/// Run `data download` or `data info`.
pub fn run(command: Command, _ctx: &Ctx) -> Result<ExitCode> {
    match command {
        Command::Download(a) => download(a),
        Command::Info { data } => {
            let p = datapath::find_imdb(data.as_deref(), false)?;
            let c = recurrent_data::imdb::read(
                &p,
                &recurrent_data::imdb::ReadOptions {
                    include_unsup: true,
                    ..Default::default()
                },
            )?
            .counts();
            println!("{}: {c}", p.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Download the dataset (from a mirror when asked) and print what it holds.
fn download(a: DownloadArgs) -> Result<ExitCode> {
    if a.dataset != "imdb" {
        bail!("unknown dataset {:?} (available: imdb)", a.dataset);
    }
    let mut spec = recurrent_data::download::imdb();
    if let Some(url) = a.url {
        spec.url = url;
    }
    if let Some(sha) = a.sha256 {
        let sha = sha.to_ascii_lowercase();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("--sha256 must be 64 hexadecimal digits, got {sha:?}");
        }
        if sha != spec.sha256 {
            eprintln!(
                "note: --sha256 names a file other than the official archive: its SHA-256 \
                 and its layout are checked; the official size and MD5 do not apply"
            );
            spec = DownloadSpec {
                sha256: sha,
                md5: None,
                size: None,
                ..spec
            };
        }
    }
    let dir = a.dir.unwrap_or_else(datapath::cache_dir);
    let p = datapath::download_with_bar(&spec, &dir)?;
    let c = recurrent_data::imdb::read(&p, &Default::default())?.counts();
    println!("{}: {c}", p.display());
    Ok(ExitCode::SUCCESS)
}
