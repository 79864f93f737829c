//! Downloading a dataset archive: resumes a partial download (HTTP `Range`), reports progress,
//! verifies the size and checksum, and never leaves a corrupt file where a good one is
//! expected (the download goes to `<name>.part` and is renamed only once verified).

use crate::{DataError, Result};
use md5::Md5;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to download and how to check it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadSpec {
    /// Where it is published.
    pub url: String,
    /// The file name to store it under.
    pub file_name: String,
    /// The published SHA-256 (lower-case hex).
    pub sha256: String,
    /// The published MD5 (lower-case hex), checked too when given.
    pub md5: Option<String>,
    /// The published size in bytes, when known.
    pub size: Option<u64>,
}

/// The IMDB archive's file name.
pub const IMDB_FILE_NAME: &str = "aclImdb_v1.tar.gz";

/// The official IMDB archive from Stanford (SHA-256 and MD5 as published by every major
/// dataset library).
pub fn imdb() -> DownloadSpec {
    DownloadSpec {
        url: "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz".into(),
        file_name: IMDB_FILE_NAME.into(),
        sha256: "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe".into(),
        md5: Some("7c2ac02c03563afcf9b574c7e56c153a".into()),
        size: Some(84_125_825),
    }
}

/// Progress of a download, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Starting (or resuming) with `done` bytes already there, of `total` if known.
    Start {
        /// Bytes already on disk.
        done: u64,
        /// Expected size, if known.
        total: Option<u64>,
    },
    /// `done` bytes so far.
    Bytes {
        /// Bytes on disk.
        done: u64,
    },
    /// Verifying the checksum.
    Verifying,
}

/// The hex SHA-256 and MD5 of a file.
pub fn file_digests(path: &Path) -> Result<(String, String)> {
    let mut f = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut sha = Sha256::new();
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        md5.update(&buf[..n]);
    }
    Ok((hex(&sha.finalize()), hex(&md5.finalize())))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Check a downloaded file against the spec.
pub fn verify(path: &Path, spec: &DownloadSpec) -> Result<()> {
    let len = std::fs::metadata(path)
        .map_err(|e| DataError::io(path, e))?
        .len();
    if let Some(size) = spec.size {
        if len != size {
            return Err(DataError::Checksum(format!(
                "{} has {len} bytes, the published archive has {size}",
                path.display()
            )));
        }
    }
    let (sha, md5) = file_digests(path)?;
    if sha != spec.sha256 {
        return Err(DataError::Checksum(format!(
            "{} has SHA-256 {sha}, expected {}: the file is corrupt or not the official archive",
            path.display(),
            spec.sha256
        )));
    }
    if let Some(m) = &spec.md5 {
        if md5 != *m {
            return Err(DataError::Checksum(format!(
                "{} has MD5 {md5}, expected {m}",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Download `spec` into `dir` (created if needed), resuming `<name>.part` if present; returns
/// the path of the verified file. An existing verified file is returned without downloading.
pub fn download(
    spec: &DownloadSpec,
    dir: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let dest = dir.join(&spec.file_name);
    if dest.is_file() && verify(&dest, spec).is_ok() {
        return Ok(dest);
    }
    let part = dir.join(format!("{}.part", spec.file_name));
    let mut have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    if spec.size.is_some_and(|s| have > s) {
        have = 0;
    }
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(20))
        .timeout_read(Duration::from_secs(60))
        .build();
    let complete = spec.size.is_some_and(|s| have == s);
    if !complete {
        let mut req = agent.get(&spec.url);
        if have > 0 {
            req = req.set("Range", &format!("bytes={have}-"));
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(416, _)) if have > 0 => {
                // The server says the range starts at or past the end: the partial file may
                // be complete. Verification below decides.
                return finish(spec, &part, &dest, progress);
            }
            Err(ureq::Error::Status(code, _)) => {
                return Err(DataError::Download(format!("{} answered HTTP {code}", spec.url)));
            }
            Err(e) => {
                return Err(DataError::Download(format!(
                    "could not reach {}: {e}. If this machine is offline, download {} elsewhere and put it at {} (or pass --data PATH)",
                    spec.url,
                    spec.file_name,
                    dest.display()
                )))
            }
        };
        let resumed = resp.status() == 206;
        if !resumed {
            have = 0;
        }
        let remaining: Option<u64> = resp
            .header("Content-Length")
            .and_then(|v| v.trim().parse().ok());
        let total = remaining.map(|r| r + have).or(spec.size);
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&part)
            .map_err(|e| DataError::io(&part, e))?;
        file.set_len(have).map_err(|e| DataError::io(&part, e))?;
        file.seek(std::io::SeekFrom::Start(have))
            .map_err(|e| DataError::io(&part, e))?;
        progress(Progress::Start { done: have, total });
        let mut reader = resp.into_reader();
        let mut buf = vec![0u8; 1 << 16];
        let mut done = have;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = file.sync_all();
                    return Err(DataError::Download(format!(
                        "download of {} interrupted after {done} bytes ({e}); run the command again to resume",
                        spec.url
                    )));
                }
            };
            file.write_all(&buf[..n])
                .map_err(|e| DataError::io(&part, e))?;
            done += n as u64;
            if spec.size.is_some_and(|s| done > s) {
                drop(file);
                let _ = std::fs::remove_file(&part);
                return Err(DataError::Checksum(format!(
                    "{} sent more than the published {} bytes: refusing the file",
                    spec.url,
                    spec.size.unwrap_or(0)
                )));
            }
            progress(Progress::Bytes { done });
        }
        file.sync_all().map_err(|e| DataError::io(&part, e))?;
        if let Some(t) = total {
            if done < t {
                return Err(DataError::Download(format!(
                    "download of {} stopped after {done} of {t} bytes (truncated); run the command again to resume",
                    spec.url
                )));
            }
        }
    }
    finish(spec, &part, &dest, progress)
}

fn finish(
    spec: &DownloadSpec,
    part: &Path,
    dest: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<PathBuf> {
    progress(Progress::Verifying);
    if let Err(e) = verify(part, spec) {
        // A complete but wrong file cannot be resumed into a right one.
        let _ = std::fs::remove_file(part);
        return Err(e);
    }
    std::fs::rename(part, dest).map_err(|e| DataError::io(dest, e))?;
    Ok(dest.to_path_buf())
}
