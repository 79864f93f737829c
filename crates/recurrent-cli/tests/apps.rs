//! The other applications end to end on tiny settings (CI): forecasting on the real airline
//! series, a character model on a small text (train, resume, sample), sequence to sequence
//! on generated dates, and the vanishing-gradient diagnosis.

use std::path::PathBuf;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(args)
        .output()
        .expect("run recurrent")
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

fn fails(args: &[&str]) -> String {
    let o = run(args);
    assert!(!o.status.success(), "recurrent {args:?} should have failed");
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn shared(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel);
    p.exists().then_some(p)
}

/// A small series: the airline passengers when present, else a seasonal series written here.
fn series(dir: &std::path::Path) -> PathBuf {
    if let Some(p) = shared("timeseries/airline-passengers.csv") {
        return p;
    }
    eprintln!("note: ../shared/data/timeseries is absent; using a generated seasonal series");
    let p = dir.join("s.csv");
    let mut s = String::from("Month,Passengers\n");
    for i in 0..144 {
        s += &format!(
            "m{i},{}\n",
            100.0 + i as f64 * 2.0 + 30.0 * ((i % 12) as f64 * 0.52).sin()
        );
    }
    std::fs::write(&p, s).unwrap();
    p
}

/// On the airline series (or a generated seasonal one), the LSTM with the log-difference
/// transform forecasts better than both baselines, by a wide margin (RMSE 24-27 against 48
/// for seasonal naive and 87 for naive, measured), with either strategy.
#[test]
fn forecast_beats_the_baselines_and_writes_its_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = series(tmp.path());
    let out = tmp.path().join("f");
    for strategy in ["direct", "recursive"] {
        let o = ok(&[
            "forecast",
            "--csv",
            csv.to_str().unwrap(),
            "--column",
            "Passengers",
            "--window",
            "12",
            "--horizon",
            "3",
            "--strategy",
            strategy,
            "--season",
            "12",
            "--epochs",
            "100",
            "--transform",
            "log-diff",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("RMSE") && text.contains("naive") && text.contains("seasonal naive/12"),
            "{text}"
        );
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
        let rmse = |k: &str| m[k]["rmse"].as_f64().unwrap();
        assert!(
            rmse("model") < 0.8 * rmse("seasonal_naive") && rmse("model") < 0.8 * rmse("naive"),
            "{strategy}: model {} against naive {} and seasonal naive {}",
            rmse("model"),
            rmse("naive"),
            rmse("seasonal_naive")
        );
        assert_eq!(
            &std::fs::read(out.join("forecast.png")).unwrap()[..4],
            b"\x89PNG"
        );
        assert!(
            std::fs::read_to_string(out.join("forecast.csv"))
                .unwrap()
                .lines()
                .count()
                > 10
        );
    }
    // Bad input.
    let e = fails(&[
        "forecast",
        "--csv",
        csv.to_str().unwrap(),
        "--column",
        "Nope",
    ]);
    assert!(e.contains("no column \"Nope\""), "{e}");
    let e = fails(&[
        "forecast",
        "--csv",
        csv.to_str().unwrap(),
        "--column",
        "Passengers",
        "--horizon",
        "50",
        "--test",
        "10",
    ]);
    assert!(e.contains("--test must be at least the horizon"), "{e}");
    assert!(
        fails(&["forecast", "--csv", "/nonexistent.csv", "--column", "x"])
            .contains("/nonexistent.csv")
    );
    // Numeric options out of range: a message naming the option, before any work (these
    // panicked or trained on nonsense before).
    for (flag, value, says) in [
        (
            "--val-fraction",
            "1.5",
            "--val-fraction must be in [0, 1), got 1.5",
        ),
        (
            "--val-fraction",
            "NaN",
            "--val-fraction must be in [0, 1), got NaN",
        ),
        ("--window", "0", "--window must be between 1 and"),
        ("--lr", "-1", "--lr must be a finite number above 0, got -1"),
        ("--hidden", "0", "--hidden must be between 1 and"),
        ("--test", "0", "--test must be at least 1"),
        ("--var-state", "1", "--var-state must be in [0, 1)"),
    ] {
        let e = fails(&[
            "forecast",
            "--csv",
            csv.to_str().unwrap(),
            "--column",
            "Passengers",
            "--out",
            tmp.path().join("bad").to_str().unwrap(),
            &format!("{flag}={value}"),
        ]);
        assert!(e.contains(says), "{flag} {value}: {e}");
    }
}

/// On an exponential trend, `log-diff` turns the series into a constant (scaled to zero), so
/// whatever the network outputs the forecast is the exact continuation: this checks that the
/// transform is undone correctly (summed back from the last value, then exponentiated). Without
/// the transform the network cannot leave the range it was trained on.
#[test]
fn forecast_transforms_are_undone_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("exp.csv");
    let mut s = String::from("t,v\n");
    for i in 0..120 {
        s += &format!("{i},{}\n", 100.0 * 1.02f64.powi(i));
    }
    std::fs::write(&csv, s).unwrap();
    let rmse = |transform: &str| -> f64 {
        let out = tmp.path().join(transform);
        ok(&[
            "forecast",
            "--csv",
            csv.to_str().unwrap(),
            "--column",
            "v",
            "--window",
            "8",
            "--horizon",
            "4",
            "--test",
            "12",
            "--epochs",
            "3",
            "--hidden",
            "8",
            "--transform",
            transform,
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
        assert_eq!(m["config"]["transform"], transform.replace('-', "_"));
        m["model"]["rmse"].as_f64().unwrap()
    };
    let exact = rmse("log-diff");
    assert!(exact < 1e-3, "log-diff on an exponential: rmse {exact}");
    let plain = rmse("none");
    assert!(
        plain > 100.0 * exact.max(1e-3),
        "none {plain} vs log-diff {exact}"
    );
    // A log needs positive values.
    let zeros: String = (0..30).map(|i| format!("{i},{}\n", i % 5)).collect();
    std::fs::write(&csv, format!("t,v\n{zeros}")).unwrap();
    let e = fails(&[
        "forecast",
        "--csv",
        csv.to_str().unwrap(),
        "--column",
        "v",
        "--window",
        "2",
        "--test",
        "4",
        "--transform",
        "log",
    ]);
    assert!(e.contains("needs positive values"), "{e}");
}

#[test]
fn charlm_trains_resumes_and_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("t.txt");
    let body =
        "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
            .repeat(40);
    std::fs::write(&text, &body).unwrap();
    let out = tmp.path().join("lm");
    let args = |epochs: &str| -> Vec<String> {
        [
            "charlm",
            "train",
            "--text",
            text.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--hidden",
            "32",
            "--layers",
            "1",
            "--embedding-dim",
            "8",
            "--seq-len",
            "20",
            "--batch-size",
            "8",
            "--epochs",
            epochs,
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let a: Vec<String> = args("20");
    ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    // The text's unigram entropy is what a model that learned only the character frequencies
    // reaches (2.9 nats here); the text repeats, so a model that learned anything of its order
    // does much better (0.49 nats after 20 epochs, a second, measured).
    let entropy = {
        let mut counts = std::collections::HashMap::new();
        for c in body.chars() {
            *counts.entry(c).or_insert(0usize) += 1;
        }
        let n = body.chars().count() as f64;
        counts
            .values()
            .map(|&k| -(k as f64 / n) * (k as f64 / n).ln())
            .sum::<f64>()
    };
    let best = m["best_val_nats"].as_f64().unwrap();
    assert!(
        best < 0.5 * entropy,
        "best {best} nats against the unigram entropy {entropy}: {m}"
    );
    // Training into the same folder again is refused; resuming is not.
    assert!(fails(&a.iter().map(String::as_str).collect::<Vec<_>>()).contains("already exists"));
    ok(&[
        "charlm",
        "train",
        "--resume",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    // Sampling: seeded, so repeatable; the prompt is echoed.
    let s1 = ok(&[
        "charlm",
        "sample",
        "--model",
        out.to_str().unwrap(),
        "--prompt",
        "To be",
        "--length",
        "40",
        "--seed",
        "3",
    ]);
    let s2 = ok(&[
        "charlm",
        "sample",
        "--model",
        out.to_str().unwrap(),
        "--prompt",
        "To be",
        "--length",
        "40",
        "--seed",
        "3",
    ]);
    assert_eq!(s1.stdout, s2.stdout);
    let t = String::from_utf8_lossy(&s1.stdout);
    assert!(t.starts_with("To be") && t.chars().count() >= 45, "{t}");
    let k = ok(&[
        "charlm",
        "sample",
        "--model",
        out.to_str().unwrap(),
        "--length",
        "20",
        "--top-k",
        "1",
        "--temperature",
        "0.5",
    ]);
    assert!(!k.stdout.is_empty());
    // A prompt with characters the model never saw, and a bad temperature.
    assert!(fails(&[
        "charlm",
        "sample",
        "--model",
        out.to_str().unwrap(),
        "--prompt",
        "Ω"
    ])
    .contains("never saw"));
    assert!(fails(&[
        "charlm",
        "sample",
        "--model",
        out.to_str().unwrap(),
        "--temperature",
        "0"
    ])
    .contains("temperature"));
}

#[test]
fn seq2seq_learns_dates() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("r.json");
    let o = ok(&[
        "seq2seq",
        "--train",
        "3000",
        "--test",
        "200",
        "--epochs",
        "3",
        "--hidden",
        "64",
        "--beam",
        "3",
        "--json",
        json.to_str().unwrap(),
        "--quiet",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("validation exact match"), "{text}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let greedy = r["greedy_accuracy"].as_f64().unwrap();
    let beam = r["beam_accuracy"].as_f64().unwrap();
    // Three short epochs already translate most dates; chance is ~0.
    assert!(greedy > 0.3, "greedy accuracy {greedy}");
    assert!(beam >= greedy - 0.05, "beam {beam} vs greedy {greedy}");
    // Without attention, and with an LSTM, it still runs.
    ok(&[
        "seq2seq",
        "--train",
        "300",
        "--test",
        "20",
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--attention",
        "false",
        "--cell",
        "lstm",
        "--quiet",
    ]);
    assert!(
        fails(&["seq2seq", "--cell", "tcn", "--train", "10", "--test", "2", "--epochs", "1"])
            .contains("gru or lstm")
    );
}

#[test]
fn diagnose_shows_the_vanishing_gradient() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("d");
    ok(&[
        "diagnose",
        "--steps",
        "30",
        "--hidden",
        "16",
        "--layers",
        "2",
        "--train-steps",
        "20",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let ratio = |cell: &str| -> f64 {
        s["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["cell"] == cell)
            .unwrap()["ratio_first_last_init"]
            .as_f64()
            .unwrap()
    };
    // At initialisation the gradient reaching the first step is a tiny fraction of the last
    // step's for the Elman RNN, and much larger for the gated cells.
    assert!(ratio("rnn") < 1e-2, "rnn ratio {}", ratio("rnn"));
    assert!(
        ratio("lstm") > 10.0 * ratio("rnn"),
        "lstm {} vs rnn {}",
        ratio("lstm"),
        ratio("rnn")
    );
    assert!(
        ratio("gru") > 10.0 * ratio("rnn"),
        "gru {} vs rnn {}",
        ratio("gru"),
        ratio("rnn")
    );
    for f in [
        "vanishing_gradient.png",
        "layer_gradient_norms.png",
        "gradient_norms.csv",
        "layer_norms.csv",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let csv = std::fs::read_to_string(out.join("gradient_norms.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 * 2 * 30);
    // Empty shapes were a panic on an empty tensor; now each is a message naming the option.
    for (flag, says) in [
        ("--steps", "--steps must be between 1 and"),
        ("--input", "--input must be between 1 and"),
        ("--hidden", "--hidden must be between 1 and"),
        ("--batch", "--batch must be between 1 and"),
        ("--train-steps", "--train-steps must be at least 1"),
    ] {
        let e = fails(&["diagnose", flag, "0", "--out", out.to_str().unwrap()]);
        assert!(e.contains(says), "{flag} 0: {e}");
    }
}

#[test]
fn dropout_variants_train_through_the_cli() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/imdb-mini/aclImdb_v1.tar.gz");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("v");
    ok(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--embedding-dim",
        "16",
        "--max-vocab",
        "1000",
        "--var-input",
        "0.2",
        "--var-state",
        "0.3",
        "--var-output",
        "0.2",
        "--weight-drop",
        "0.4",
        "--quiet",
    ]);
    // The variants are part of the run's settings, and they change what is trained: the same
    // run without them (same seed) reaches other weights.
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    let c = &cfg["config"];
    assert_eq!(
        (
            c["var_input"].as_f64(),
            c["var_state"].as_f64(),
            c["var_output"].as_f64(),
            c["weight_drop"].as_f64()
        ),
        (Some(0.2), Some(0.3), Some(0.2), Some(0.4)),
        "{cfg}"
    );
    let plain = tmp.path().join("plain");
    ok(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        plain.to_str().unwrap(),
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--embedding-dim",
        "16",
        "--max-vocab",
        "1000",
        "--quiet",
    ]);
    let weights = |d: &std::path::Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_ne!(
        weights(&out),
        weights(&plain),
        "the dropout variants changed nothing"
    );
    assert!(fails(&[
        "train",
        "--var-state",
        "1.5",
        "--out",
        tmp.path().join("w").to_str().unwrap()
    ])
    .contains("var_state"));
}
