//! Where the IMDB corpus is looked for: `--data PATH`, then `$RECURRENT_DATA`, then the
//! platform cache directory (`~/.cache/recurrent` on Linux). When none has it, it is
//! downloaded into the cache directory (with a progress bar), if allowed: from Stanford, or
//! from the mirror in `$RECURRENT_IMDB_URL`, which must serve the official archive (its size,
//! SHA-256 and MD5 are checked either way).

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use recurrent_data::download::{self, DownloadSpec, Progress};
use recurrent_data::imdb;
use std::path::{Path, PathBuf};

/// The platform cache directory of the tool.
pub fn cache_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "recurrent")
        .map(|p| p.cache_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".recurrent-cache"))
}

/// Resolve the corpus location (see the module docs).
pub fn find_imdb(flag: Option<&Path>, allow_download: bool) -> Result<PathBuf> {
    if let Some(p) = flag {
        imdb::locate(p).with_context(|| format!("--data {}", p.display()))?;
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("RECURRENT_DATA").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        if imdb::locate(&p).is_ok() {
            return Ok(p);
        }
        // It may be a folder of datasets: try the IMDB archive inside it.
        let inner = p.join("imdb");
        if imdb::locate(&inner).is_ok() {
            return Ok(inner);
        }
        bail!(
            "$RECURRENT_DATA is {} but holds no IMDB corpus (aclImdb_v1.tar.gz or aclImdb/)",
            p.display()
        );
    }
    let cache = cache_dir();
    if imdb::locate(&cache).is_ok() {
        return Ok(cache);
    }
    if !allow_download {
        bail!(
            "the IMDB corpus is not in --data, $RECURRENT_DATA or {}: download it with `recurrent data download imdb`, \
             or put aclImdb_v1.tar.gz there, or pass --data PATH",
            cache.display()
        );
    }
    let mut spec = download::imdb();
    if let Some(url) = std::env::var("RECURRENT_IMDB_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        spec.url = url;
    }
    eprintln!(
        "The IMDB corpus is not in --data, $RECURRENT_DATA or {}: downloading it from {}.",
        cache.display(),
        spec.url
    );
    download_with_bar(&spec, &cache)
}

/// Download with a progress bar.
pub fn download_with_bar(spec: &DownloadSpec, dir: &Path) -> Result<PathBuf> {
    let bar = ProgressBar::hidden();
    let mut started = false;
    let mut cb = |p: Progress| match p {
        Progress::Start { done, total } => {
            if !started {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                started = true;
            }
            bar.set_length(total.unwrap_or(0));
            bar.set_position(done);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(if done > 0 { "resuming" } else { "downloading" });
        }
        Progress::Bytes { done } => bar.set_position(done),
        Progress::Verifying => bar.set_message("verifying"),
    };
    let r = download::download(spec, dir, &mut cb);
    bar.finish_and_clear();
    let p = r?;
    eprintln!("Saved {} (checksum verified).", p.display());
    Ok(p)
}
