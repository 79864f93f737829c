//! `recurrent pretrain` and `recurrent train --init-from` end to end on the mini corpus
//! (`fixtures/imdb-mini`: 302 training, 21 unlabelled and 152 test reviews): a language model
//! is pretrained, fine-tuned into a classifier with ULMFiT's schedule (gradual unfreezing
//! checked on the weights), resumed bit for bit, and refused with a clear error when its
//! files do not belong together.

use recurrent::io::{load_safetensors, load_safetensors_bytes};
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

/// The error of a run that must fail cleanly (exit status 1, no panic).
fn error(args: &[&str]) -> String {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "recurrent {args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A tiny language model's settings: seconds on the mini corpus.
const TINY: &[&str] = &[
    "--hidden",
    "24",
    "--embedding-dim",
    "12",
    "--max-vocab",
    "400",
    "--min-freq",
    "1",
    "--samples",
    "50",
    "--bptt",
    "12",
    "--batch-size",
    "4",
    "--val-fraction",
    "0.05",
    "--quiet",
];

fn pretrain(out: &Path, extra: &[&str]) -> Output {
    let data = mini();
    let out = out.to_string_lossy().into_owned();
    let mut args = vec!["pretrain", "--data", &data, "--out", &out];
    args.extend_from_slice(TINY);
    args.extend_from_slice(extra);
    run(&args)
}

/// The model of a run's newest checkpoint.
fn checkpoint_model(run: &Path) -> Vec<u8> {
    let ck = run.join("checkpoints");
    let name = std::fs::read_to_string(ck.join("LATEST")).expect("a checkpoint");
    std::fs::read(ck.join(name.trim()).join("model.safetensors")).unwrap()
}

fn tensor(bytes: &[u8], name: &str) -> Vec<f32> {
    load_safetensors_bytes(bytes, "model")
        .unwrap()
        .get(name)
        .unwrap()
        .to_vec()
}

#[test]
fn pretrain_then_fine_tune_with_gradual_unfreezing() {
    let tmp = tempfile::tempdir().unwrap();
    let lm = tmp.path().join("lm");
    let o = pretrain(&lm, &["--epochs", "2", "--lr", "0.01"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "lm.json",
        "vocab.json",
        "model.safetensors",
        "metrics.json",
        "curves.png",
        "run.json",
    ] {
        assert!(lm.join(f).is_file(), "{f} missing");
    }
    // Two epochs measured; the model beats the uniform distribution over its vocabulary and
    // learns across the epochs.
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lm.join("metrics.json")).unwrap()).unwrap();
    let nats: Vec<f64> = metrics
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["val_nats"].as_f64().unwrap())
        .collect();
    assert_eq!(nats.len(), 2);
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lm.join("lm.json")).unwrap()).unwrap();
    let vocab = info["vocab_size"].as_u64().unwrap() as f64;
    assert!(
        nats[1] < vocab.ln() - 1.0,
        "held-out {nats:?} nats vs uniform {}",
        vocab.ln()
    );
    assert!(nats[1] < nats[0], "{nats:?}");
    let lm_weights = load_safetensors(&lm.join("model.safetensors")).unwrap();

    // The first stage of gradual unfreezing trains the output layer alone.
    let data = mini();
    let lm_arg = lm.to_string_lossy().into_owned();
    let classifier = |out: &Path, extra: &[&str]| {
        let out = out.to_string_lossy().into_owned();
        let mut args = vec![
            "train",
            "--data",
            &data,
            "--out",
            &out,
            "--preset",
            "ulmfit",
            "--init-from",
            &lm_arg,
            "--max-len",
            "64",
            "--batch-size",
            "16",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let early = tmp.path().join("early");
    let o = classifier(&early, &["--stop-after-steps", "3"]);
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let m = checkpoint_model(&early);
    for name in [
        "embedding.weight",
        "rnn.weight_hh_l0",
        "rnn.weight_hr_l0",
        "rnn.bias_ih_l0",
    ] {
        assert_eq!(
            tensor(&m, name),
            lm_weights.get(name).unwrap().to_vec(),
            "{name} moved in stage 1"
        );
    }
    // The second unfreezes the LSTM; the embedding, a group lower, waits for the third.
    let clf = tmp.path().join("clf");
    let o = classifier(&clf, &["--epochs", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = checkpoint_model(&clf);
    assert_eq!(
        tensor(&m, "embedding.weight"),
        lm_weights.get("embedding.weight").unwrap().to_vec()
    );
    assert_ne!(
        tensor(&m, "rnn.weight_hh_l0"),
        lm_weights.get("rnn.weight_hh_l0").unwrap().to_vec()
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(clf.join("config.json")).unwrap()).unwrap();
    let c = &cfg["config"];
    assert_eq!(
        (c["hidden_size"].as_u64(), c["proj_size"].as_u64()),
        (Some(24), Some(12))
    );
    assert_eq!(
        (c["pool"].as_str(), c["bidirectional"].as_bool()),
        (Some("concat"), Some(false))
    );
    // The classifier directory is a model like any other: it evaluates on the test split.
    let clf_arg = clf.to_string_lossy().into_owned();
    let o = ok(&["eval", "--model", &clf_arg, "--data", &data, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let acc = report["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{report}");
}

#[test]
fn pretraining_resumes_bit_for_bit_across_an_epoch_boundary() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = ["--limit", "60", "--epochs", "2", "--var-state", "0.1"];
    let whole = tmp.path().join("whole");
    let o = pretrain(&whole, &settings);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("metrics.json")).unwrap())
            .unwrap();
    let first_epoch = run_json[0]["step"].as_u64().unwrap();
    assert!(first_epoch > 20, "{first_epoch} steps in the first epoch");

    // Stopped in the middle of the first epoch (a carried state), then in the second.
    let parts = tmp.path().join("parts");
    let mid = (first_epoch / 2).to_string();
    let o = pretrain(
        &parts,
        &[&settings[..], &["--stop-after-steps", &mid]].concat(),
    );
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let p = parts.to_string_lossy().into_owned();
    let later = (first_epoch + 7).to_string();
    let o = run(&[
        "pretrain",
        "--resume",
        &p,
        "--stop-after-steps",
        &later,
        "--quiet",
    ]);
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    ok(&["pretrain", "--resume", &p, "--quiet"]);
    assert_eq!(
        std::fs::read(whole.join("model.safetensors")).unwrap(),
        std::fs::read(parts.join("model.safetensors")).unwrap(),
        "the resumed run reached other weights"
    );
    assert_eq!(checkpoint_model(&whole), checkpoint_model(&parts));
    // A resumed run keeps its settings: changing one is refused by name.
    let err = error(&["pretrain", "--resume", &p, "--hidden", "32"]);
    assert!(err.contains("--hidden"), "{err}");
}

#[test]
fn a_language_model_that_does_not_fit_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let lm = tmp.path().join("lm");
    // Snapshots every 0.06 ms of training: one after each step, each a complete LM directory.
    let o = pretrain(&lm, &["--max-steps", "5", "--snapshot-minutes", "0.000001"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snapshots: Vec<_> = std::fs::read_dir(lm.join("snapshots")).unwrap().collect();
    assert_eq!(snapshots.len(), 5);
    assert!(lm.join("snapshots/step-00000003/lm.json").is_file());
    let data = mini();
    let both = |dir: &Path| -> Vec<String> {
        let d = dir.to_string_lossy().into_owned();
        let out1 = tmp.path().join("c").to_string_lossy().into_owned();
        let out2 = tmp.path().join("l").to_string_lossy().into_owned();
        vec![
            error(&[
                "train",
                "--data",
                &data,
                "--out",
                &out1,
                "--init-from",
                &d,
                "--quiet",
            ]),
            error(&[
                "pretrain",
                "--data",
                &data,
                "--out",
                &out2,
                "--init-from",
                &d,
                "--quiet",
            ]),
        ]
    };
    let copy = |name: &str| -> PathBuf {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["lm.json", "vocab.json", "model.safetensors"] {
            std::fs::copy(lm.join(f), dir.join(f)).unwrap();
        }
        dir
    };
    let edit_json = |path: &Path, f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(path, serde_json::to_string(&v).unwrap()).unwrap();
    };

    // Not a language-model directory at all (a folder without lm.json).
    for e in both(&tmp.path().join("nothing-here")) {
        assert!(e.contains("is not a language-model directory"), "{e}");
    }
    // A vocabulary of another size than lm.json says.
    let short = copy("short-vocab");
    edit_json(&short.join("vocab.json"), &|v| {
        v["itos"].as_array_mut().unwrap().truncate(100);
    });
    for e in both(&short) {
        assert!(e.contains("the files do not belong together"), "{e}");
    }
    // ... and with lm.json agreeing: the embedding is of another vocabulary.
    edit_json(&short.join("lm.json"), &|v| v["vocab_size"] = 100.into());
    for e in both(&short) {
        assert!(e.contains("the weights are of another vocabulary"), "{e}");
    }
    // Settings that do not match the weights' shapes.
    let wide = copy("wide");
    edit_json(&wide.join("lm.json"), &|v| {
        v["config"]["hidden"] = 32.into()
    });
    for e in both(&wide) {
        assert!(e.contains("does not match the settings"), "{e}");
        assert!(
            e.contains("rnn.weight_hh_l0"),
            "the error names the tensor: {e}"
        );
    }
}
