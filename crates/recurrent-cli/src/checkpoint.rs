//! Crash-safe training checkpoints.
//!
//! A checkpoint is a folder `checkpoints/<name>/` of files plus `MANIFEST.json` with each
//! file's SHA-256. It is written under a temporary name, flushed to disk, and renamed into
//! place; then `checkpoints/LATEST` is replaced atomically with its name, and older
//! checkpoints beyond the previous one are removed. A crash at any moment leaves the last
//! complete checkpoint intact. Loading verifies the manifest; a torn or corrupt checkpoint is
//! skipped (with a warning) for the newest good one.

use anyhow::{anyhow, bail, Context, Result};
use recurrent::io::{load_safetensors_bytes, safetensors_bytes, write_atomic};
use recurrent::nn::StateDict;
use recurrent::optim::OptimizerState;
use recurrent::Tensor;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

const MANIFEST: &str = "MANIFEST.json";
const LATEST: &str = "LATEST";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A checkpoint's files by name.
pub type Files = BTreeMap<String, Vec<u8>>;

/// The checkpoints folder of a run.
pub fn dir_of(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

/// Write a checkpoint named `name` (sortable, e.g. `step-000001234`) holding `files`, and make
/// it the latest. Keeps the previous checkpoint as a fallback.
pub fn save(run: &Path, name: &str, files: &[(&str, Vec<u8>)]) -> Result<PathBuf> {
    let root = dir_of(run);
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let tmp = root.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    let mut manifest = BTreeMap::new();
    for (fname, bytes) in files {
        let p = tmp.join(fname);
        let mut f = fs::File::create(&p).with_context(|| format!("writing {}", p.display()))?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()?;
        manifest.insert(fname.to_string(), sha256_hex(bytes));
    }
    let m = serde_json::to_vec_pretty(&manifest)?;
    let mut f = fs::File::create(tmp.join(MANIFEST))?;
    std::io::Write::write_all(&mut f, &m)?;
    f.sync_all()?;
    sync_dir(&tmp);
    let dest = root.join(name);
    let _ = fs::remove_dir_all(&dest);
    fs::rename(&tmp, &dest).with_context(|| format!("renaming {} into place", tmp.display()))?;
    sync_dir(&root);
    write_atomic(&root.join(LATEST), name.as_bytes())?;
    // Keep this one and the one before; remove the rest.
    let mut names = list(&root);
    names.retain(|n| n != name);
    names.sort();
    if names.len() > 1 {
        for old in &names[..names.len() - 1] {
            let _ = fs::remove_dir_all(root.join(old));
        }
    }
    Ok(dest)
}

fn list(root: &Path) -> Vec<String> {
    fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// Read and verify one checkpoint folder.
pub fn read(dir: &Path) -> Result<Files> {
    let mtext =
        fs::read(dir.join(MANIFEST)).with_context(|| format!("{}: no manifest", dir.display()))?;
    let manifest: BTreeMap<String, String> = serde_json::from_slice(&mtext)
        .with_context(|| format!("{}: corrupt manifest", dir.display()))?;
    let mut files = BTreeMap::new();
    for (name, sum) in manifest {
        if name.contains('/') || name.contains("..") {
            bail!("{}: bad file name {name:?} in manifest", dir.display());
        }
        let bytes = fs::read(dir.join(&name))
            .with_context(|| format!("{}: missing {name}", dir.display()))?;
        if sha256_hex(&bytes) != sum {
            bail!(
                "{}: {name} does not match its checksum (torn or corrupt)",
                dir.display()
            );
        }
        files.insert(name, bytes);
    }
    Ok(files)
}

/// The newest checkpoint that verifies: `(name, files)`, or `None` when there is none.
/// Corrupt ones are reported through `warn` and skipped.
pub fn load_latest(run: &Path, warn: &mut dyn FnMut(String)) -> Result<Option<(String, Files)>> {
    let root = dir_of(run);
    if !root.is_dir() {
        return Ok(None);
    }
    let mut candidates = list(&root);
    candidates.sort();
    candidates.reverse();
    if let Ok(latest) = fs::read_to_string(root.join(LATEST)) {
        let latest = latest.trim().to_string();
        candidates.retain(|n| *n != latest);
        candidates.insert(0, latest);
    }
    for name in candidates {
        match read(&root.join(&name)) {
            Ok(files) => return Ok(Some((name, files))),
            Err(e) => warn(format!("skipping checkpoint {name}: {e:#}")),
        }
    }
    Ok(None)
}

/// An optimizer state as safetensors bytes: one tensor per buffer, the learning rate and the
/// step counts in the metadata.
pub fn optimizer_state_bytes(st: &OptimizerState) -> Result<Vec<u8>> {
    let sd: StateDict = st
        .buffers
        .iter()
        .map(|(n, v)| Ok((n.clone(), Tensor::from_vec(v.clone(), &[v.len()])?)))
        .collect::<Result<_>>()?;
    let mut meta = HashMap::new();
    meta.insert("lr".to_string(), format!("{:e}", st.lr));
    meta.insert("steps".to_string(), serde_json::to_string(&st.steps)?);
    Ok(safetensors_bytes(&sd, Some(meta))?)
}

/// The inverse of [`optimizer_state_bytes`].
pub fn optimizer_state_from(bytes: &[u8]) -> Result<OptimizerState> {
    // The metadata lives in the header; read it with serde from the raw header.
    let n = u64::from_le_bytes(
        bytes
            .get(..8)
            .ok_or_else(|| anyhow!("optimizer state too short"))?
            .try_into()?,
    ) as usize;
    let header: serde_json::Value = serde_json::from_slice(
        bytes
            .get(8..8 + n)
            .ok_or_else(|| anyhow!("optimizer state header truncated"))?,
    )?;
    let meta = &header["__metadata__"];
    let lr: f64 = meta["lr"]
        .as_str()
        .ok_or_else(|| anyhow!("optimizer state without lr"))?
        .parse()?;
    let steps: Vec<(usize, u64)> = serde_json::from_str(
        meta["steps"]
            .as_str()
            .ok_or_else(|| anyhow!("optimizer state without steps"))?,
    )?;
    let sd = load_safetensors_bytes(bytes, "optimizer state")?;
    Ok(OptimizerState {
        lr,
        buffers: sd
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_vec()))
            .collect(),
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_fallback_and_pruning() {
        let run = tempfile::tempdir().unwrap();
        save(run.path(), "step-01", &[("a", b"one".to_vec())]).unwrap();
        save(run.path(), "step-02", &[("a", b"two".to_vec())]).unwrap();
        save(run.path(), "step-03", &[("a", b"three".to_vec())]).unwrap();
        let mut names = list(&dir_of(run.path()));
        names.sort();
        assert_eq!(names, ["step-02", "step-03"]);
        let (n, f) = load_latest(run.path(), &mut |_| {}).unwrap().unwrap();
        assert_eq!(
            (n.as_str(), f["a"].as_slice()),
            ("step-03", b"three".as_slice())
        );
        // Corrupt the newest: the previous one is used, with a warning.
        fs::write(dir_of(run.path()).join("step-03/a"), b"thr3e").unwrap();
        let mut warnings = Vec::new();
        let (n, f) = load_latest(run.path(), &mut |w| warnings.push(w))
            .unwrap()
            .unwrap();
        assert_eq!(
            (n.as_str(), f["a"].as_slice()),
            ("step-02", b"two".as_slice())
        );
        assert!(warnings[0].contains("checksum"), "{warnings:?}");
        // A leftover temporary folder from a crash is ignored.
        fs::create_dir_all(dir_of(run.path()).join(".step-04.tmp-1")).unwrap();
        assert_eq!(
            load_latest(run.path(), &mut |_| {}).unwrap().unwrap().0,
            "step-02"
        );
        assert!(
            load_latest(tempfile::tempdir().unwrap().path(), &mut |_| {})
                .unwrap()
                .is_none()
        );
    }
}
