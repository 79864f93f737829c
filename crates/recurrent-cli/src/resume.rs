//! What a resumed run may change.
//!
//! A run directory stores every option that shapes the run (the model and training settings,
//! the data and how much of it, the thread count), and `--resume` restores them, so a resumed
//! run is the run that was interrupted. Options given together with `--resume` fall in two
//! groups: those that may change (more epochs, patience, threads, quiet) are applied and
//! announced; any other is an error that names the option and the value the run was started
//! with, instead of silently becoming a different experiment.

use anyhow::{bail, Result};
use clap::parser::ValueSource;
use clap::ArgMatches;
use std::path::Path;

/// An option given on the command line (or through its environment variable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Given {
    /// clap's id: the long flag with `_` for `-`.
    pub id: String,
    /// The value as written (empty for a flag).
    pub raw: String,
}

impl Given {
    /// `--long-name`.
    pub fn flag(&self) -> String {
        format!("--{}", self.id.replace('_', "-"))
    }
}

/// The options of a subcommand (`cmd`, matched as `m`) that were given explicitly, not left
/// at their defaults.
pub fn given_options(m: &ArgMatches, cmd: &clap::Command) -> Vec<Given> {
    m.ids()
        // arguments only: the matches also name the groups of flattened structs
        .filter(|id| cmd.get_arguments().any(|a| a.get_id() == *id))
        .filter(|id| {
            matches!(
                m.value_source(id.as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .map(|id| {
            let raw = m
                .get_raw(id.as_str())
                .map(|vals| {
                    vals.map(|v| v.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            Given {
                id: id.to_string(),
                raw,
            }
        })
        .collect()
}

/// Refuse every given option that is not in `may_change` or `hooks` (clap ids; the hooks are
/// test-only options, not listed in the message), naming it and the value the run in `dir`
/// was started with: `stored(id)`, `None` when it was not given then, `Some("")` for a flag
/// that was set.
pub fn refuse_changes(
    given: &[Given],
    may_change: &[&str],
    hooks: &[&str],
    stored: &dyn Fn(&str) -> Option<String>,
    dir: &Path,
) -> Result<()> {
    for g in given {
        if g.id == "resume" || may_change.contains(&g.id.as_str()) || hooks.contains(&g.id.as_str())
        {
            continue;
        }
        let now = if g.raw.is_empty() {
            g.flag()
        } else {
            format!("{} {}", g.flag(), g.raw)
        };
        let then = match stored(&g.id) {
            Some(v) if v.is_empty() => format!("was started with {}", g.flag()),
            Some(v) => format!("was started with {} {v}", g.flag()),
            None => format!("was started without {}", g.flag()),
        };
        let allowed: Vec<String> = may_change
            .iter()
            .map(|id| format!("--{}", id.replace('_', "-")))
            .collect();
        bail!(
            "{now} would make this a different run: {} {then}. On resume only {} may change; \
             to change anything else, start a new run with another --out",
            dir.display(),
            allowed.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn command() -> Command {
        Command::new("t")
            .arg(Arg::new("resume").long("resume"))
            .arg(Arg::new("epochs").long("epochs"))
            .arg(Arg::new("max_len").long("max-len").default_value("400"))
            .arg(Arg::new("quiet").long("quiet").action(ArgAction::SetTrue))
    }

    fn matches(args: &[&str]) -> ArgMatches {
        command().get_matches_from(args)
    }

    #[test]
    fn only_given_options_count_and_changes_are_named() {
        let m = matches(&["t", "--resume", "r", "--epochs", "9", "--quiet"]);
        let g = given_options(&m, &command());
        let ids: Vec<&str> = g.iter().map(|g| g.id.as_str()).collect();
        assert!(ids.contains(&"epochs") && ids.contains(&"quiet") && !ids.contains(&"max_len"));
        let stored = |id: &str| (id == "max_len").then(|| "400".to_string());
        refuse_changes(&g, &["epochs"], &["quiet"], &stored, Path::new("runs/x")).unwrap();
        let m = matches(&["t", "--resume", "r", "--max-len", "50"]);
        let e = refuse_changes(
            &given_options(&m, &command()),
            &["epochs", "quiet"],
            &[],
            &stored,
            Path::new("runs/x"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("--max-len 50 would make this a different run: runs/x was started with --max-len 400.")
                && e.contains("only --epochs, --quiet may change"),
            "{e}"
        );
    }
}
