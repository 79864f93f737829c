//! A resumed run is the same run: every option that shapes training is stored in the run
//! directory and restored by `--resume`, so an interrupted run that is resumed reaches the
//! same final weights, bit for bit, as an uninterrupted one, whatever options it was started
//! with. Options given with `--resume` that would change the run are refused by name; those
//! that may change are applied and announced.
//!
//! Test hook used here: `--stop-after-steps N` (hidden from `--help`) makes a run behave as if
//! Ctrl-C had been pressed after N optimisation steps.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mini() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/imdb-mini/aclImdb_v1.tar.gz")
        .to_string_lossy()
        .into_owned()
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(["--threads", "2"])
        .args(args)
        .env_remove("RECURRENT_DATA")
        .env_remove("RECURRENT_THREADS")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> Output {
    let o = run(args);
    assert!(
        o.status.success(),
        "recurrent {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The model of the newest checkpoint.
fn final_model(run: &Path) -> Vec<u8> {
    let ck = run.join("checkpoints");
    let name = std::fs::read_to_string(ck.join("LATEST")).expect("a checkpoint");
    std::fs::read(ck.join(name.trim()).join("model.safetensors")).unwrap()
}

/// The long options of a subcommand that take a value or are flags, from its `--help`.
fn options(sub: &[&str]) -> Vec<String> {
    let o = Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(sub)
        .arg("--help")
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix("--")?;
            Some(rest.split([' ', ',']).next().unwrap_or(rest).to_string())
        })
        .filter(|o| o != "help")
        .collect()
}

/// Every option of `sub` not in `exempt` appears in one of the option sets: so an option added
/// later without being stored and tested fails here.
fn assert_every_option_is_covered(sub: &[&str], sets: &[&[&str]], exempt: &[&str]) {
    for opt in options(sub) {
        if exempt.contains(&opt.as_str()) {
            continue;
        }
        let flag = format!("--{opt}");
        assert!(
            sets.iter().any(|s| s.contains(&flag.as_str())),
            "{flag} is not exercised by the resume test: add it to an option set (with a non-default value), or exempt it with a reason"
        );
    }
}

/// Options of `train` that are not part of the run's definition: where the run goes, how it
/// reports, or what may change on resume (each tested below).
const TRAIN_EXEMPT: &[&str] = &[
    "out",
    "resume",
    "data",
    "no-download",
    "config",
    "preset",
    "quiet",
    "threads",
    "epochs",
    "patience",
];

/// Two sets of non-default values that together set every stored option of `train`.
const TRAIN_SETS: &[&[&str]] = &[
    &[
        "--limit",
        "150",
        "--tokenizer",
        "char",
        "--max-vocab",
        "40",
        "--min-freq",
        "2",
        "--max-len",
        "60",
        "--truncate",
        "tail",
        "--val-fraction",
        "0.2",
        "--cell",
        "gru",
        "--embedding-dim",
        "12",
        "--hidden",
        "10",
        "--layers",
        "2",
        "--bidirectional",
        "false",
        "--dropout",
        "0.1",
        "--embed-dropout",
        "0.2",
        "--fc-dropout",
        "0.1",
        "--pool",
        "mean",
        "--var-input",
        "0.1",
        "--var-state",
        "0.1",
        "--var-output",
        "0.1",
        "--weight-drop",
        "0.1",
        "--batch-size",
        "12",
        "--optimizer",
        "adam",
        "--lr",
        "0.003",
        "--weight-decay",
        "0.001",
        "--clip-grad-norm",
        "0.5",
        "--warmup-steps",
        "7",
        "--seed",
        "7",
        "--skip-nonfinite",
    ],
    &[
        "--limit",
        "120",
        "--cell",
        "rnn",
        "--hidden",
        "8",
        "--embedding-dim",
        "8",
        "--max-vocab",
        "500",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
        "--schedule",
        "cosine",
        "--pool",
        "last",
        "--batch-size",
        "10",
        "--seed",
        "9",
    ],
    &[
        "--optimizer",
        "rmsprop",
        "--schedule",
        "constant",
        "--hidden",
        "8",
        "--max-vocab",
        "300",
        "--limit",
        "100",
        "--batch-size",
        "16",
        "--embedding-dim",
        "8",
        "--proj-size",
        "4",
        "--norm",
        "true",
    ],
    // ULMFiT's fine-tuning of a pretrained encoder (LM_DIR: made by the test), stopped in
    // the second epoch, where the LSTM is unfrozen and the embedding still frozen.
    &[
        "--init-from",
        "LM_DIR",
        "--limit",
        "100",
        "--batch-size",
        "12",
        "--max-len",
        "50",
        "--pool",
        "concat",
        "--gradual-unfreezing",
        "true",
        "--discriminative",
        "2.6",
        "--schedule",
        "slanted",
        "--optimizer",
        "adamw",
    ],
];

#[test]
fn train_resumes_to_the_same_weights_with_every_stored_option() {
    let all: Vec<&[&str]> = TRAIN_SETS.to_vec();
    let mut exempt = TRAIN_EXEMPT.to_vec();
    // Test hooks, not options a user gives.
    exempt.extend([
        "stop-after-steps",
        "fault-nan-steps",
        "fault-abort-in-setup",
    ]);
    assert_every_option_is_covered(&["train"], &all, &exempt);
    let tmp = tempfile::tempdir().unwrap();
    let data = mini();
    let lm = tmp.path().join("lm");
    let lm = lm.to_str().unwrap();
    ok(&[
        "pretrain",
        "--data",
        &data,
        "--out",
        lm,
        "--hidden",
        "16",
        "--embedding-dim",
        "8",
        "--max-vocab",
        "300",
        "--min-freq",
        "1",
        "--samples",
        "30",
        "--bptt",
        "10",
        "--batch-size",
        "4",
        "--max-steps",
        "20",
        "--quiet",
    ]);
    for (k, set) in TRAIN_SETS.iter().enumerate() {
        let base = |out: &Path, extra: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = [
                "train",
                "--data",
                &data,
                "--out",
                out.to_str().unwrap(),
                "--epochs",
                "3",
                "--patience",
                "0",
                "--quiet",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            v.extend(
                set.iter()
                    .map(|s| if *s == "LM_DIR" { lm } else { s })
                    .map(|s| s.to_string()),
            );
            v.extend(extra.iter().map(|s| s.to_string()));
            v
        };
        let reference = tmp.path().join(format!("ref{k}"));
        ok(&strs(&base(&reference, &[])));
        let stopped = tmp.path().join(format!("stopped{k}"));
        // In the second epoch: the limit keeps 100-150 reviews, 7-15 steps an epoch.
        let o = run(&strs(&base(&stopped, &["--stop-after-steps", "14"])));
        assert_eq!(o.status.code(), Some(130), "set {k}: {}", stderr(&o));
        // Resume with nothing but the directory: every option comes back from it.
        ok(&["train", "--resume", stopped.to_str().unwrap(), "--quiet"]);
        assert_eq!(
            final_model(&reference),
            final_model(&stopped),
            "set {k}: the resumed run reached other weights"
        );
        let read = |p: &Path, f: &str| std::fs::read_to_string(p.join(f)).unwrap();
        assert_eq!(read(&reference, "vocab.json"), read(&stopped, "vocab.json"));
        assert_eq!(
            read(&reference, "config.json"),
            read(&stopped, "config.json")
        );
    }
}

#[test]
fn train_resume_refuses_changes_by_name_and_announces_allowed_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let data = mini();
    let dir = tmp.path().join("r");
    let d = dir.to_str().unwrap();
    let o = run(&[
        "train",
        "--data",
        &data,
        "--out",
        d,
        "--limit",
        "200",
        "--hidden",
        "10",
        "--embedding-dim",
        "8",
        "--max-vocab",
        "500",
        "--epochs",
        "2",
        "--quiet",
        "--stop-after-steps",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    for (args, says) in [
        (
            vec!["--limit", "100"],
            "--limit 100 would make this a different run",
        ),
        (vec!["--hidden", "32"], "was started with --hidden 10"),
        (vec!["--cell", "gru"], "was started with --cell lstm"),
        (
            vec!["--skip-nonfinite"],
            "was started without --skip-nonfinite",
        ),
        (vec!["--lr", "0.01"], "was started with --lr 0.002"),
        (
            vec!["--preset", "course"],
            "--preset course would make this a different run",
        ),
    ] {
        let mut a = vec!["train", "--resume", d];
        a.extend(&args);
        let o = run(&a);
        let e = stderr(&o);
        assert!(!o.status.success() && e.contains(says), "{args:?}: {e}");
        assert!(
            e.contains("only --epochs, --patience, --threads, --quiet"),
            "{e}"
        );
    }
    // What may change is applied and said.
    let o = Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(["--threads", "1", "train", "--resume", d])
        .args(["--epochs", "3", "--patience", "1"])
        .output()
        .unwrap();
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("--epochs 3: the run was started with 2"), "{e}");
    assert!(e.contains("--patience 1: the run was started with"), "{e}");
    assert!(e.contains("--threads 1: the run was started with 2"), "{e}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
    assert!(m.as_array().unwrap().len() <= 3);
    // The corpus it was started with, wherever it is now; another corpus is refused.
    let copy = tmp.path().join("moved.tar.gz");
    std::fs::copy(&data, &copy).unwrap();
    ok(&[
        "train",
        "--resume",
        d,
        "--data",
        copy.to_str().unwrap(),
        "--quiet",
    ]);
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let f = std::fs::File::open(&data).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(f))
        .unpack(&other)
        .unwrap();
    let first = std::fs::read_dir(other.join("aclImdb/train/pos"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&first, "a different review").unwrap();
    let o = run(&[
        "train",
        "--resume",
        d,
        "--epochs",
        "4",
        "--data",
        other.to_str().unwrap(),
    ]);
    let e = stderr(&o);
    assert!(
        !o.status.success() && e.contains("does not hold the reviews this run started with"),
        "{e}"
    );
}

/// `charlm train`'s stored options (its `--help` options but the exempt ones).
const CHARLM_EXEMPT: &[&str] = &["out", "resume", "text", "quiet", "threads", "epochs"];

#[test]
fn charlm_resumes_to_the_same_weights_with_every_stored_option() {
    let set: &[&str] = &[
        "--cell",
        "gru",
        "--embedding-dim",
        "6",
        "--hidden",
        "12",
        "--layers",
        "2",
        "--dropout",
        "0.2",
        "--seq-len",
        "12",
        "--batch-size",
        "4",
        "--lr",
        "0.004",
        "--max-chars",
        "1500",
        "--seed",
        "5",
    ];
    let mut exempt = CHARLM_EXEMPT.to_vec();
    exempt.push("stop-after-steps");
    assert_every_option_is_covered(&["charlm", "train"], &[set], &exempt);
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("t.txt");
    std::fs::write(
        &text,
        "It was the best of times, it was the worst of times, it was the age of wisdom.\n"
            .repeat(40),
    )
    .unwrap();
    let args = |out: &Path, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "charlm",
            "train",
            "--text",
            text.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "3",
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(set.iter().map(|s| s.to_string()));
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let reference = tmp.path().join("ref");
    ok(&strs(&args(&reference, &[])));
    let stopped = tmp.path().join("stopped");
    // Each epoch has 1200 / 4 / 12 = 25 steps: stop inside the second.
    let o = run(&strs(&args(&stopped, &["--stop-after-steps", "30"])));
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    ok(&[
        "charlm",
        "train",
        "--resume",
        stopped.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(
        final_model(&reference),
        final_model(&stopped),
        "the resumed character model reached other weights"
    );
    // --max-chars was stored (it was silently dropped on resume before), and changes are named.
    let run_file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stopped.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_file["max_chars"], 1500);
    let o = run(&[
        "charlm",
        "train",
        "--resume",
        stopped.to_str().unwrap(),
        "--max-chars",
        "900",
    ]);
    let e = stderr(&o);
    assert!(
        !o.status.success() && e.contains("was started with --max-chars 1500"),
        "{e}"
    );
    let o = run(&[
        "charlm",
        "train",
        "--resume",
        stopped.to_str().unwrap(),
        "--hidden",
        "64",
    ]);
    assert!(
        stderr(&o).contains("was started with --hidden 12"),
        "{}",
        stderr(&o)
    );
}
