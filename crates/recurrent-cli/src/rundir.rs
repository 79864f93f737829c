//! Creating a run directory atomically.
//!
//! A run's setup files (its settings, vocabulary, data location) are written into a hidden
//! staging directory beside it, `.<name>.setup-<pid>`, which is renamed into place once they
//! are all on disk. So a run directory either does not exist or holds its whole setup: a run
//! killed during setup leaves only the hidden staging folder, which the next run of the same
//! name removes, and a run that fails before setup (a failed download, a bad option) leaves
//! nothing at all.

use anyhow::{bail, Context, Result};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// Create `run` (which must not exist, or be an empty directory) with the files that `setup`
/// writes into the staging directory it is given.
pub fn create(run: &Path, setup: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = match run.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = run
        .file_name()
        .with_context(|| format!("{} is not a directory name", run.display()))?
        .to_string_lossy()
        .into_owned();
    fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    remove_stale_staging(&parent, &name);
    let staging = parent.join(format!(".{name}.setup-{}", std::process::id()));
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    }
    fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let finish = || -> Result<()> {
        setup(&staging)?;
        sync(&staging);
        if run.exists() {
            // Checked empty by the caller; `remove_dir` refuses anything else.
            fs::remove_dir(run).with_context(|| {
                format!("{} exists and is not an empty directory", run.display())
            })?;
        }
        fs::rename(&staging, run)
            .with_context(|| format!("moving the new run into {}", run.display()))?;
        sync(&parent);
        Ok(())
    };
    let r = finish();
    if r.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    r
}

/// Whether `dir` does not exist or is an empty directory.
pub fn is_absent_or_empty(dir: &Path) -> Result<bool> {
    if !dir.exists() {
        return Ok(true);
    }
    if !dir.is_dir() {
        bail!("{} exists and is not a directory", dir.display());
    }
    Ok(fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .next()
        .is_none())
}

fn sync(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Remove the staging folders of `name` left by runs killed during setup (on Linux, those
/// whose process is gone; elsewhere none, as a process cannot be checked).
fn remove_stale_staging(parent: &Path, name: &str) {
    let prefix = format!(".{name}.setup-");
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file.strip_prefix(&prefix) else {
            continue;
        };
        let gone = cfg!(target_os = "linux")
            && pid.parse::<u32>().is_ok()
            && !Path::new("/proc").join(pid).exists();
        if gone {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_appears_whole_or_not_at_all() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("r");
        // A setup that fails leaves nothing.
        let e = create(&run, |d| {
            fs::write(d.join("a"), "1")?;
            bail!("disk full")
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "disk full");
        assert!(!run.exists());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
        // A successful one moves every file in; an empty directory may be there already.
        fs::create_dir(&run).unwrap();
        create(&run, |d| {
            fs::write(d.join("a"), "1")?;
            fs::write(d.join("b"), "2")?;
            Ok(())
        })
        .unwrap();
        assert_eq!(fs::read_to_string(run.join("b")).unwrap(), "2");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
        // A non-empty run is refused and kept.
        assert!(create(&run, |_| Ok(())).is_err());
        assert!(run.join("a").exists());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn staging_left_by_a_dead_process_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        // pid 4194304 is above Linux's maximum, so never running.
        let dead = tmp.path().join(".r.setup-4194304");
        let other = tmp.path().join(".s.setup-4194304");
        for d in [&dead, &other] {
            fs::create_dir(d).unwrap();
        }
        create(&tmp.path().join("r"), |_| Ok(())).unwrap();
        assert!(!dead.exists(), "the dead run's staging is removed");
        assert!(other.exists(), "another run's name is left alone");
    }
}
