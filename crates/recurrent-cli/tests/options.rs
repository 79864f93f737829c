//! Every option of every subcommand, given extreme values (0, negative, huge, NaN, infinite,
//! fractions above 1, empty, words) and random ones, ends in a clear error or a normal run:
//! never a panic, never an abort.
//!
//! The options are read from each subcommand's `--help`, and the subcommands from the
//! top-level `--help`, so an option or a subcommand added later is covered without editing
//! this file. Each run gets base arguments that make it stop right after the options are
//! checked (a missing data file, an output folder that cannot be made), so a value that is
//! valid costs no training.

use proptest::prelude::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The values every option is given.
const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "1.5",
    "NaN",
    "inf",
    "1e308",
    "18446744073709551615",
    "",
];

/// Each subcommand with arguments that end the run just after its options are checked.
///
/// Where the option under test is the one that ends the run early, another stopper is added
/// (an invalid value of another option), so that no valid value starts the real job.
fn base_args_for(sub: &[&str], tmp: &Path, option: &str) -> Vec<String> {
    let mut v = base_args(sub, tmp);
    let extra: &[&str] = match (sub, option) {
        (["seq2seq", "train"], "--json") => &["--epochs", "0"],
        (["diagnose"], "--out") => &["--steps", "0"],
        (["bench"], "--cases") => &["--repeat", "0"],
        _ => &[],
    };
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn base_args(sub: &[&str], tmp: &Path) -> Vec<String> {
    let t = |p: &str| tmp.join(p).to_string_lossy().into_owned();
    let v: Vec<String> = match sub {
        ["train"] => vec![
            "--no-download".into(),
            "--data".into(),
            t("missing-corpus"),
            "--out".into(),
            t("runs/train"),
        ],
        ["pretrain"] => vec![
            "--no-download".into(),
            "--data".into(),
            t("missing-corpus"),
            "--out".into(),
            t("runs/lm"),
        ],
        ["eval"] => vec!["--no-download".into(), "--model".into(), t("missing-model")],
        ["predict"] => vec!["--model".into(), t("missing-model"), "a text".into()],
        ["data", "download"] => vec![
            "imdb".into(),
            // a folder that cannot be made: the download stops before any connection
            "--dir".into(),
            "/dev/null/dl".into(),
            // and nothing listens on the discard port: the connection is refused at once
            "--url".into(),
            "http://127.0.0.1:9/aclImdb_v1.tar.gz".into(),
        ],
        ["data", "info"] => vec!["--data".into(), t("missing-corpus")],
        ["bench"] => vec!["--cases".into(), "no-such-case".into()],
        ["forecast"] | ["forecast", "train"] => vec![
            "--csv".into(),
            t("missing.csv"),
            "--column".into(),
            "v".into(),
            "--out".into(),
            "/dev/null/forecast".into(),
        ],
        ["forecast", "predict"] => vec![
            "--model".into(),
            t("missing-model"),
            "--csv".into(),
            t("missing.csv"),
        ],
        ["charlm", "train"] => vec![
            "--text".into(),
            t("missing.txt"),
            "--out".into(),
            t("runs/lm"),
        ],
        ["charlm", "sample"] => vec!["--model".into(), t("missing-model")],
        ["seq2seq", "train"] => vec!["--json".into(), t("missing-folder/report.json")],
        ["seq2seq", "translate"] => vec!["--model".into(), t("missing-model"), "x".into()],
        ["diagnose"] => vec!["--out".into(), "/dev/null/diagnose".into()],
        other => panic!(
            "no base arguments for `recurrent {}`: add them to tests/options.rs",
            other.join(" ")
        ),
    };
    v
}

fn help(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?} --help failed");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The names under "Commands:" in a help text (without `help`).
fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

/// Every leaf subcommand, as its path of words.
fn subcommands() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for c in commands(&help(&[])) {
        let nested = commands(&help(&[&c]));
        if nested.is_empty() {
            out.push(vec![c]);
        } else {
            out.extend(nested.into_iter().map(|n| vec![c.clone(), n]));
        }
    }
    out
}

/// The long options of a subcommand that take a value.
fn value_options(sub: &[String]) -> Vec<String> {
    let args: Vec<&str> = sub.iter().map(String::as_str).collect();
    help(&args)
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l
                .strip_prefix("-")
                .and_then(|r| r.split_once(", "))
                .map_or(l, |(_, r)| r);
            let rest = l.strip_prefix("--")?;
            let (name, after) = rest.split_once(' ')?;
            after.starts_with('<').then(|| format!("--{name}"))
        })
        .filter(|o| o != "--help")
        .collect()
}

/// Run `recurrent <sub> <base args, without `option`> <option>=<value>`; panic with the
/// command line on a panic, an abort or a hang.
fn run_one(sub: &[String], option: &str, value: &str, tmp: &Path) {
    let words: Vec<&str> = sub.iter().map(String::as_str).collect();
    let mut args = base_args_for(&words, tmp, option);
    // Drop the base's own value of this option, so it is given once.
    strip(&mut args, option);
    check(sub, &args, option, value, tmp);
}

/// Run `recurrent <sub> <args> <option>=<value>` in `cwd`; panic with the command line on a
/// panic, an abort, a hang, or a failure without an error message.
fn check(sub: &[String], args: &[String], option: &str, value: &str, cwd: &Path) {
    let words: Vec<&str> = sub.iter().map(String::as_str).collect();
    let tmp = cwd;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_recurrent"));
    cmd.args(&words)
        .args(args)
        .arg(format!("{option}={value}"))
        .current_dir(cwd)
        .env("HOME", tmp)
        .env("XDG_CACHE_HOME", tmp.join("cache"))
        .env_remove("RECURRENT_DATA")
        .env_remove("RECURRENT_THREADS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let shown = format!(
        "recurrent {} {} {option}={value:?}",
        words.join(" "),
        args.join(" ")
    );
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{shown}: still running after 120 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        status.code().is_some(),
        "{shown}: killed by a signal ({status}):\n{err}"
    );
    assert!(
        status.code() != Some(101) && !err.contains("panicked"),
        "{shown}: panicked:\n{err}"
    );
    if !status.success() {
        assert!(
            err.starts_with("error") && err.trim().lines().count() >= 1,
            "{shown}: failed without an error message:\n{err}"
        );
    }
}

#[test]
fn every_subcommand_is_covered() {
    let subs = subcommands();
    assert!(subs.len() >= 10, "{subs:?}");
    let tmp = tempfile::tempdir().unwrap();
    for s in &subs {
        let words: Vec<&str> = s.iter().map(String::as_str).collect();
        let _ = base_args(&words, tmp.path()); // panics for a subcommand without base args
        assert!(!value_options(s).is_empty(), "{s:?} has no options?");
    }
}

#[test]
fn extreme_values_of_every_option_are_errors_or_runs_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for sub in subcommands() {
        for option in value_options(&sub) {
            for value in EXTREMES {
                cases.push((sub.clone(), option.clone(), value.to_string()));
            }
        }
    }
    assert!(cases.len() > 500, "only {} cases", cases.len());
    // Four at a time: most runs are a process start and an error.
    let chunk = cases.len().div_ceil(4);
    std::thread::scope(|s| {
        for part in cases.chunks(chunk) {
            let tmp = tmp.path();
            s.spawn(move || {
                for (sub, option, value) in part {
                    run_one(sub, option, value, tmp);
                }
            });
        }
    });
}

/// Small real inputs for the subcommands that run in a fraction of a second on them: here a
/// value that passes the checks runs the real job, so a value that slips through and breaks
/// something later (a NaN learning rate, a fraction that underflows a count) shows.
fn real_args(sub: &[&str], dir: &Path) -> Option<Vec<String>> {
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let words: &[&str] = match sub {
        ["forecast", "predict"] => &["--model", "fcm", "--csv", "series.csv"],
        ["forecast"] | ["forecast", "train"] => &[
            "--csv",
            "series.csv",
            "--column",
            "v",
            "--window",
            "4",
            "--horizon",
            "2",
            "--test",
            "6",
            "--epochs",
            "2",
            "--hidden",
            "4",
            "--out",
            "fc",
            "--quiet",
        ],
        ["diagnose"] => &[
            "--steps",
            "4",
            "--input",
            "2",
            "--hidden",
            "4",
            "--layers",
            "1",
            "--train-steps",
            "2",
            "--batch",
            "4",
            "--out",
            "dg",
            "--quiet",
        ],
        ["seq2seq", "translate"] => &["--model", "s2s", "--beam", "2", "ab"],
        ["seq2seq", "train"] => &[
            "--train",
            "16",
            "--test",
            "4",
            "--epochs",
            "1",
            "--hidden",
            "4",
            "--embedding-dim",
            "4",
            "--batch-size",
            "8",
            "--beam",
            "2",
            "--quiet",
        ],
        ["charlm", "train"] => &[
            "--text",
            "text.txt",
            "--out",
            "lm",
            "--hidden",
            "4",
            "--layers",
            "1",
            "--embedding-dim",
            "4",
            "--seq-len",
            "8",
            "--batch-size",
            "2",
            "--epochs",
            "1",
            "--quiet",
        ],
        ["charlm", "sample"] => &["--model", "model", "--length", "20"],
        _ => return None,
    };
    Some(
        words
            .iter()
            .map(|w| match *w {
                "series.csv" | "text.txt" | "model" | "s2s" | "fcm" => p(w),
                other => other.to_string(),
            })
            .collect(),
    )
}

/// Options whose large valid values mean a long job (more epochs, more text): the real runs
/// give them only the values that keep the job short.
const LONG_RUN_OPTIONS: &[&str] = &["--epochs", "--train-steps", "--length", "--train", "--test"];

#[test]
fn extreme_values_in_real_runs_are_errors_or_results_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let series: String = (0..40)
        .map(|i| format!("{i},{}\n", 10.0 + (i as f64 * 0.7).sin()))
        .collect();
    std::fs::write(dir.join("series.csv"), format!("t,v\n{series}")).unwrap();
    std::fs::write(
        dir.join("text.txt"),
        "to be or not to be, that is the question. ".repeat(20),
    )
    .unwrap();
    // A model to sample from.
    let mut train = real_args(&["charlm", "train"], dir).unwrap();
    strip(&mut train, "--out");
    let o = Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(["charlm", "train"])
        .args(train)
        .args(["--out", "model"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A forecaster to predict with.
    let mut train = real_args(&["forecast", "train"], dir).unwrap();
    strip(&mut train, "--out");
    let o = Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(["forecast", "train"])
        .args(train)
        .args(["--out", "fcm"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A model to translate with.
    let o = Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(["seq2seq", "train"])
        .args(real_args(&["seq2seq", "train"], dir).unwrap())
        .args(["--out", "s2s"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut cases = Vec::new();
    for sub in subcommands() {
        let words: Vec<&str> = sub.iter().map(String::as_str).collect();
        if real_args(&words, dir).is_none() {
            continue;
        }
        for option in value_options(&sub) {
            for value in EXTREMES {
                let big = matches!(*value, "18446744073709551615" | "1e308" | "inf");
                if !(big && LONG_RUN_OPTIONS.contains(&option.as_str())) {
                    cases.push((sub.clone(), option.clone(), value.to_string()));
                }
            }
        }
    }
    assert!(cases.len() > 200, "only {} cases", cases.len());
    let chunk = cases.len().div_ceil(4);
    std::thread::scope(|s| {
        for (k, part) in cases.chunks(chunk).enumerate() {
            s.spawn(move || {
                for (i, (sub, option, value)) in part.iter().enumerate() {
                    // Each run in a folder of its own (the outputs are relative paths).
                    let own = dir.join(format!("run-{k}-{i}"));
                    std::fs::create_dir(&own).unwrap();
                    for f in ["series.csv", "text.txt"] {
                        std::fs::copy(dir.join(f), own.join(f)).unwrap();
                    }
                    let words: Vec<&str> = sub.iter().map(String::as_str).collect();
                    let mut base = real_args(&words, dir).unwrap();
                    strip(&mut base, option);
                    check(sub, &base, option, value, &own);
                }
            });
        }
    });
}

/// Remove `option` and its value from `args`.
fn strip(args: &mut Vec<String>, option: &str) {
    if let Some(i) = args.iter().position(|a| a == option) {
        args.drain(i..(i + 2).min(args.len()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Random numbers and words in every option.
    #[test]
    fn random_values_of_every_option_never_panic(
        pick in any::<prop::sample::Index>(),
        value in prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| v.to_string()),
            (0u32..40).prop_map(|e| format!("1e{e}")),
            "[a-z,.-]{0,8}",
        ],
    ) {
        static ALL: std::sync::OnceLock<Vec<(Vec<String>, String)>> = std::sync::OnceLock::new();
        let all = ALL.get_or_init(|| {
            subcommands()
                .into_iter()
                .flat_map(|s| value_options(&s).into_iter().map(move |o| (s.clone(), o)))
                .collect()
        });
        let (sub, option) = &all[pick.index(all.len())];
        let tmp = tempfile::tempdir().unwrap();
        run_one(sub, option, &value, tmp.path());
    }
}
