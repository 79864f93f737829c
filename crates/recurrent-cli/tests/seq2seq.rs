//! `recurrent seq2seq` as a tool for one's own pairs: train on a TSV file, keep the model,
//! translate with it (arguments, standard input, JSON, the attention heat map), and the
//! errors for bad files and wrong model directories.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run_with(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run recurrent");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(args: &[&str], stdin: &str) -> String {
    let o = run_with(args, stdin);
    assert!(
        o.status.success(),
        "recurrent {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The error message of a run that must fail cleanly (an error, not a panic).
fn fails(args: &[&str]) -> String {
    let o = run_with(args, "");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "recurrent {args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Words of a small made-up language and their "translation" (each word reversed), so that
/// a tiny model can learn the mapping in a few seconds.
fn write_pairs(path: &Path, n: usize) {
    let words = ["sol", "luna", "mar", "rio", "pan", "flor", "gato", "casa"];
    let mut s = String::from("\n");
    let mut x = 7u64;
    for _ in 0..n {
        let len = 1 + (x % 3) as usize;
        let mut src = Vec::new();
        for _ in 0..len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            src.push(words[(x >> 33) as usize % words.len()]);
        }
        let tgt: Vec<String> = src.iter().map(|w| w.chars().rev().collect()).collect();
        s += &format!("{}\t{}\n", src.join(" "), tgt.join(" "));
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn trains_on_a_pairs_file_keeps_the_model_and_translates() {
    let tmp = tempfile::tempdir().unwrap();
    let pairs = tmp.path().join("pairs.tsv");
    write_pairs(&pairs, 600);
    let model = tmp.path().join("model");
    let report = tmp.path().join("r.json");
    let p = |x: &Path| x.to_str().unwrap().to_string();
    ok(
        &[
            "seq2seq",
            "train",
            "--pairs",
            &p(&pairs),
            "--tokens",
            "word",
            "--out",
            &p(&model),
            "--epochs",
            "12",
            "--hidden",
            "32",
            "--embedding-dim",
            "16",
            "--batch-size",
            "16",
            "--lr",
            "0.01",
            "--beam",
            "2",
            "--json",
            &p(&report),
            "--quiet",
        ],
        "",
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(
        r["pairs"][0].as_u64().unwrap() + r["pairs"][1].as_u64().unwrap(),
        600
    );
    // Eight words, one to three per line: a learnable map. Chance is 1/8 per word.
    let acc = r["greedy_accuracy"].as_f64().unwrap();
    assert!(acc > 0.8, "validation exact match {acc}");
    for f in ["seq2seq.json", "model.safetensors"] {
        assert!(model.join(f).is_file(), "{f}");
    }
    // Arguments, then standard input, then JSON lines.
    let out = ok(
        &[
            "seq2seq",
            "translate",
            "--model",
            &p(&model),
            "sol luna",
            "gato",
        ],
        "",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["los anul", "otag"], "{out}");
    let out = ok(
        &["seq2seq", "translate", "--model", &p(&model), "--beam", "1"],
        "mar\ncasa flor\n",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["ram", "asac rolf"],
        "{out}"
    );
    let out = ok(
        &[
            "seq2seq",
            "translate",
            "--model",
            &p(&model),
            "--json",
            "pan",
        ],
        "",
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (v["source"].as_str(), v["translation"].as_str()),
        (Some("pan"), Some("nap"))
    );
    // The heat map of the attention.
    let png = tmp.path().join("a.png");
    ok(
        &[
            "seq2seq",
            "translate",
            "--model",
            &p(&model),
            "--attention-png",
            &p(&png),
            "rio mar",
        ],
        "",
    );
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
}

#[test]
fn bad_pair_files_and_wrong_model_directories_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let train = |pairs: &str| {
        fails(&[
            "seq2seq", "train", "--pairs", pairs, "--epochs", "1", "--quiet",
        ])
    };
    let empty = file("empty.tsv", "");
    assert!(train(&empty).contains("empty.tsv: no source<TAB>target pairs"));
    let one_col = file("one.tsv", "hello\nworld\n");
    assert!(train(&one_col).contains("one.tsv line 1: no tab"));
    let no_tab = file("notab.tsv", "a\tb\nc d\n");
    assert!(train(&no_tab).contains("notab.tsv line 2: no tab"));
    let long = file("long.tsv", &format!("a\tb\nc\t{}\n", "x".repeat(300)));
    let e = train(&long);
    assert!(
        e.contains("long.tsv line 2: the target has 300 tokens, more than --max-len 200"),
        "{e}"
    );
    let single = file("single.tsv", "a\tb\n");
    assert!(train(&single).contains("at least two"));
    let missing = tmp.path().join("nope.tsv");
    assert!(train(missing.to_str().unwrap()).contains("nope.tsv"));
    // A model directory of another subcommand, and one that does not exist.
    let other = tmp.path().join("charlm");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("config.json"), "{}").unwrap();
    let e = fails(&[
        "seq2seq",
        "translate",
        "--model",
        other.to_str().unwrap(),
        "x",
    ]);
    assert!(
        e.contains("is not a seq2seq model directory") && e.contains("config.json"),
        "{e}"
    );
    let e = fails(&["seq2seq", "translate", "--model", "/nonexistent/m", "x"]);
    assert!(e.contains("seq2seq.json does not exist"), "{e}");
    // A model file of the wrong kind, and weights that do not fit.
    let fake = tmp.path().join("fake");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(fake.join("seq2seq.json"), r#"{"kind": "forecast"}"#).unwrap();
    let e = fails(&[
        "seq2seq",
        "translate",
        "--model",
        fake.to_str().unwrap(),
        "x",
    ]);
    assert!(e.contains("not a seq2seq model file"), "{e}");
}

#[test]
fn a_model_without_attention_has_no_heat_map_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let pairs = tmp.path().join("p.tsv");
    write_pairs(&pairs, 40);
    let model = tmp.path().join("m");
    let (pairs, model_s) = (pairs.to_str().unwrap(), model.to_str().unwrap());
    ok(
        &[
            "seq2seq",
            "train",
            "--pairs",
            pairs,
            "--out",
            model_s,
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--embedding-dim",
            "4",
            "--attention",
            "false",
            "--quiet",
        ],
        "",
    );
    let png = tmp.path().join("a.png");
    let e = fails(&[
        "seq2seq",
        "translate",
        "--model",
        model_s,
        "--attention-png",
        png.to_str().unwrap(),
        "sol",
    ]);
    assert!(e.contains("--attention false"), "{e}");
    // The saved weights must match the saved settings: swap in another model's weights.
    let other = tmp.path().join("o");
    ok(
        &[
            "seq2seq",
            "train",
            "--pairs",
            pairs,
            "--out",
            other.to_str().unwrap(),
            "--epochs",
            "1",
            "--hidden",
            "12",
            "--embedding-dim",
            "4",
            "--quiet",
        ],
        "",
    );
    std::fs::copy(
        other.join("model.safetensors"),
        model.join("model.safetensors"),
    )
    .unwrap();
    let e = fails(&["seq2seq", "translate", "--model", model_s, "sol"]);
    assert!(e.contains("does not fit"), "{e}");
}
