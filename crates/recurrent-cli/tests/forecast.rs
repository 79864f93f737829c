//! `recurrent forecast` end to end: the statistical rows (ETS, MSTL+ETS) on the same rolling
//! origins as the network, the saved model, `forecast predict` with the next dates, and clear
//! errors (never a panic) on bad input.

use recurrent_cli::forecast::{read_labelled, StatModel};
use serde_json::Value;
use std::path::{Path, PathBuf};
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

/// Run a command that must fail with an error message (exit code 1), not a panic; its stderr.
fn fails(args: &[&str]) -> String {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "recurrent {args:?}:\n{err}");
    assert!(
        err.starts_with("error") && !err.contains("panicked"),
        "recurrent {args:?}:\n{err}"
    );
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The airline passengers (1949-01 to 1960-12) when present, else a seasonal series with the
/// same dates written here.
fn airline(dir: &Path) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/timeseries/airline-passengers.csv");
    if p.exists() {
        return p;
    }
    eprintln!("note: ../shared/data/timeseries is absent; using a generated seasonal series");
    let p = dir.join("airline.csv");
    let mut text = String::from("Month,Passengers\n");
    for i in 0..144 {
        let v = (100.0 + i as f64 * 2.0) * (1.0 + 0.2 * ((i % 12) as f64 * 0.52).sin());
        text += &format!("{}-{:02},{v:.1}\n", 1949 + i / 12, i % 12 + 1);
    }
    std::fs::write(&p, text).unwrap();
    p
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Train a small model on `csv` into `out` with the flags `extra`.
fn train(csv: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "forecast",
        "--csv",
        s(csv),
        "--column",
        "Passengers",
        "--out",
        s(out),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

/// The statistical rows are scored on the same targets as the network, and each is what the
/// model refitted on exactly the history before the origin forecasts; the trained network is
/// saved, and `forecast predict` on the data cut at an origin reproduces the forecast of the
/// training run at that origin, and continues the dates.
#[test]
fn ets_rows_saved_model_and_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = airline(tmp.path());
    let out = tmp.path().join("run");
    let o = train(
        &csv,
        &out,
        &[
            "--window",
            "12",
            "--horizon",
            "12",
            "--season",
            "12",
            "--test",
            "24",
            "--epochs",
            "20",
            "--hidden",
            "8",
            "--transform",
            "log-diff",
        ],
    );
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("\nETS ") && table.contains("MSTL+ETS/12"),
        "{table}"
    );
    let m = json(&out.join("metrics.json"));
    for row in ["model", "naive", "seasonal_naive", "ets", "mstl_ets"] {
        for k in ["rmse", "mae", "mape"] {
            let v = m[row][k].as_f64();
            assert!(v.is_some_and(f64::is_finite), "{row}.{k}: {}", m[row]);
        }
    }
    assert_eq!(m["notes"], serde_json::json!([]));
    assert_eq!(m["date_column"], "Month");
    let rmse = |k: &str| m[k]["rmse"].as_f64().unwrap();
    // Decomposing the season is what the seasonal series needs: MSTL+ETS beats the naive
    // forecast and ETS without a season.
    assert!(
        rmse("mstl_ets") < rmse("naive") && rmse("mstl_ets") < rmse("ets"),
        "mstl_ets {} naive {} ets {}",
        rmse("mstl_ets"),
        rmse("naive"),
        rmse("ets")
    );

    // forecast.csv: the ETS and MSTL+ETS columns are the models refitted on the history before
    // each origin (checked at the first and the last origin), and the target dates.
    let series = read_labelled(&csv, "Passengers").unwrap().values;
    let text = std::fs::read_to_string(out.join("forecast.csv")).unwrap();
    let mut rows = text.lines();
    assert_eq!(
        rows.next().unwrap(),
        "origin,step,target_index,forecast,actual,naive,ets,mstl_ets,target_date"
    );
    let rows: Vec<Vec<&str>> = rows.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 13 * 12, "13 origins x 12 steps");
    assert_eq!((rows[0][0], rows[0][8]), ("120", "1959-01"));
    assert_eq!(rows.last().unwrap()[8], "1960-12");
    for origin in [120usize, 132] {
        let ets = StatModel::Ets.forecast(&series[..origin], 12).unwrap();
        let mstl = StatModel::MstlEts { season: 12 }
            .forecast(&series[..origin], 12)
            .unwrap();
        for r in rows.iter().filter(|r| r[0] == origin.to_string()) {
            let h: usize = r[1].parse().unwrap();
            let close = |a: &str, b: f64| (a.parse::<f64>().unwrap() - b).abs() < 1e-5;
            assert!(
                close(r[6], ets[h - 1]),
                "origin {origin} step {h}: {r:?} vs {ets:?}"
            );
            assert!(
                close(r[7], mstl[h - 1]),
                "origin {origin} step {h}: {r:?} vs {mstl:?}"
            );
        }
    }

    // The saved model.
    let f = json(&out.join("forecaster.json"));
    assert_eq!(f["kind"], "forecast");
    assert_eq!(
        (f["window"].as_u64(), f["horizon"].as_u64()),
        (Some(12), Some(12))
    );
    assert_eq!(
        (f["column"].as_str(), f["date_column"].as_str()),
        (Some("Passengers"), Some("Month"))
    );
    assert_eq!(f["transform"], "log_diff");
    assert!(out.join("model.safetensors").is_file());

    // `predict` on the whole file: the 12 months of 1961.
    let pj = tmp.path().join("p.json");
    let o = ok(&[
        "forecast",
        "predict",
        "--model",
        s(&out),
        "--csv",
        s(&csv),
        "--json",
        s(&pj),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 12, "{stdout}");
    for (k, l) in lines.iter().enumerate() {
        let (date, v) = l.split_once('\t').unwrap();
        assert_eq!(date, format!("1961-{:02}", k + 1));
        let v: f64 = v.parse().unwrap();
        assert!(v.is_finite() && v > 0.0, "{l}");
    }
    let p = json(&pj);
    assert_eq!(p["forecasts"].as_array().unwrap().len(), 12);
    assert_eq!(p["last_label"], "1960-12");

    // `predict` on the file cut just before the first test origin (1959-01) gives the training
    // run's forecasts from that origin: the saved weights and scaling are the ones it used.
    let all = std::fs::read_to_string(&csv).unwrap();
    let cut = tmp.path().join("cut.csv");
    std::fs::write(&cut, all.lines().take(121).collect::<Vec<_>>().join("\n")).unwrap();
    ok(&[
        "forecast",
        "predict",
        "--model",
        s(&out),
        "--csv",
        s(&cut),
        "--json",
        s(&pj),
    ]);
    let p = json(&pj);
    for (k, step) in p["forecasts"].as_array().unwrap().iter().enumerate() {
        let trained: f64 = rows[k][3].parse().unwrap();
        let v = step["value"].as_f64().unwrap();
        assert!(
            (v - trained).abs() < 1e-3 * trained.abs(),
            "step {}: {v} vs {trained}",
            k + 1
        );
        assert_eq!(step["date"], format!("1959-{:02}", k + 1));
    }
}

/// `forecast train` is the flat flags' subcommand; without a season there is no MSTL row,
/// with too short a history for two seasons the row is left out with a note; a recursive
/// model predicts the horizon too; `--ets-history` is recorded.
#[test]
fn train_subcommand_recursive_and_absent_mstl() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = airline(tmp.path());
    let out = tmp.path().join("rec");
    let o = ok(&[
        "forecast",
        "train",
        "--csv",
        s(&csv),
        "--column",
        "1",
        "--window",
        "12",
        "--horizon",
        "3",
        "--strategy",
        "recursive",
        "--test",
        "24",
        "--epochs",
        "3",
        "--hidden",
        "4",
        "--season",
        "70",
        "--ets-history",
        "60",
        "--out",
        s(&out),
        "--quiet",
    ]);
    let table = String::from_utf8_lossy(&o.stdout);
    let m = json(&out.join("metrics.json"));
    assert!(m["ets"]["rmse"].as_f64().unwrap().is_finite());
    assert!(m["mstl_ets"].is_null(), "{}", m["mstl_ets"]);
    let notes = m["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    let note = notes[0].as_str().unwrap();
    assert!(
        note.starts_with("MSTL+ETS") && note.contains("140"),
        "{note}"
    );
    assert!(table.contains(&format!("note: {note}")), "{table}");
    assert_eq!(m["config"]["ets_history"], 60);
    let f = json(&out.join("forecaster.json"));
    assert_eq!(
        (f["out_len"].as_u64(), f["column"].as_str()),
        (Some(1), Some("Passengers"))
    );
    let o = ok(&["forecast", "predict", "--model", s(&out), "--csv", s(&csv)]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let months: Vec<&str> = stdout.lines().map(|l| &l[..8]).collect();
    assert_eq!(months, ["1961-01\t", "1961-02\t", "1961-03\t"], "{stdout}");
    // The flags and a subcommand do not mix.
    let o = run(&["forecast", "--csv", s(&csv), "predict", "--model", s(&out)]);
    assert!(!o.status.success());
    // Without dates, steps are numbered.
    let nodates = tmp.path().join("nodates.csv");
    let all = std::fs::read_to_string(&csv).unwrap();
    let body: Vec<String> = all
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .collect();
    std::fs::write(&nodates, format!("Passengers\n{}\n", body.join("\n"))).unwrap();
    let o = ok(&[
        "forecast",
        "predict",
        "--model",
        s(&out),
        "--csv",
        s(&nodates),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.starts_with("+1\t") && stdout.contains("\n+3\t"),
        "{stdout}"
    );
}

/// Bad input to `forecast predict` (and a log of a non-positive value in training): an error
/// that names the file (and the line, or the numbers), exit code 1, never a panic.
#[test]
fn predict_bad_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let csv = airline(dir);
    let out = dir.join("m");
    train(
        &csv,
        &out,
        &[
            "--window",
            "12",
            "--horizon",
            "2",
            "--test",
            "12",
            "--epochs",
            "2",
            "--hidden",
            "4",
            "--transform",
            "log-diff",
        ],
    );
    let predict = |model: &Path, data: &Path, extra: &[&str]| {
        let mut a = vec!["forecast", "predict", "--model", s(model), "--csv", s(data)];
        a.extend_from_slice(extra);
        fails(&a)
    };
    // Not a forecast model folder: no forecaster.json, another kind of model, another kind.
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = predict(&empty, &csv, &[]);
    assert!(e.contains("empty/forecaster.json is missing"), "{e}");
    let other = dir.join("charlm");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(
        other.join("config.json"),
        "{\"format\": \"recurrent-charlm/1\"}",
    )
    .unwrap();
    let e = predict(&other, &csv, &[]);
    assert!(
        e.contains("charlm/forecaster.json is missing") && e.contains("another kind"),
        "{e}"
    );
    std::fs::write(other.join("forecaster.json"), "{\"kind\": \"seq2seq\"}").unwrap();
    let e = predict(&other, &csv, &[]);
    assert!(
        e.contains("charlm/forecaster.json") && e.contains("kind \"seq2seq\""),
        "{e}"
    );
    std::fs::write(other.join("forecaster.json"), "{\"kind\": \"forecast\"}").unwrap();
    let e = predict(&other, &csv, &[]);
    assert!(
        e.contains("forecaster.json is not a valid forecaster file"),
        "{e}"
    );
    let e = predict(&dir.join("nowhere"), &csv, &[]);
    assert!(e.contains("nowhere/forecaster.json is missing"), "{e}");
    // Weights that are missing.
    let broken = dir.join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::copy(out.join("forecaster.json"), broken.join("forecaster.json")).unwrap();
    let e = predict(&broken, &csv, &[]);
    assert!(e.contains("broken/model.safetensors"), "{e}");
    // Too short: the window of 12, and one more for the differences.
    let short = dir.join("short.csv");
    let all = std::fs::read_to_string(&csv).unwrap();
    std::fs::write(&short, all.lines().take(13).collect::<Vec<_>>().join("\n")).unwrap();
    let e = predict(&out, &short, &[]);
    assert!(
        e.contains(
            "short.csv: column \"Passengers\" has 12 values, but the model needs at least 13"
        ),
        "{e}"
    );
    // A value the log cannot take, on line 140 of the file.
    let zero = dir.join("zero.csv");
    let text: Vec<String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i + 1 == 140 {
                format!("{},0", l.split(',').next().unwrap())
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&zero, text.join("\n")).unwrap();
    let e = predict(&out, &zero, &[]);
    assert!(e.contains("zero.csv:140: 0 is not positive"), "{e}");
    // The same in training names the line too.
    let e = fails(&[
        "forecast",
        "--csv",
        s(&zero),
        "--column",
        "Passengers",
        "--transform",
        "log",
        "--out",
        s(&dir.join("z")),
    ]);
    assert!(
        e.contains("zero.csv:140: --transform log needs positive values"),
        "{e}"
    );
    // A missing column lists the columns.
    let e = predict(&out, &csv, &["--column", "Nope"]);
    assert!(
        e.contains("no column \"Nope\" (columns: Month, Passengers)"),
        "{e}"
    );
    // A CSV that is not there.
    let e = predict(&out, &dir.join("missing.csv"), &[]);
    assert!(e.contains("missing.csv"), "{e}");
}
