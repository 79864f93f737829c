//! Crash safety, interruption, numeric guards and determinism of `recurrent train`, on the
//! mini corpus.
//!
//! - SIGKILL at random moments (a bounded number of trials, some of them after the first
//!   checkpoint by construction): whatever was saved loads, and `--resume` reaches the same
//!   final weights, bit for bit, as an uninterrupted run.
//! - A kill inside the setup of the run directory (through the hidden test flag
//!   `--fault-abort-in-setup N`, which aborts the process after the N-th setup step) leaves no
//!   run directory, and a new run with the same name starts cleanly.
//! - SIGINT (Ctrl-C): a checkpoint at the next batch boundary, exit code 130, exact resume.
//! - A diverging run stops at once, naming the step and the tensor, without touching what was
//!   saved; `--skip-nonfinite` skips such steps instead.
//! - The same seed and thread count give bit-identical checkpoints.
//!
//! Test hooks used here (hidden from `--help`): `train --fault-nan-steps 3,5` replaces the
//! loss of those steps by NaN (a bad batch), and `train --fault-abort-in-setup N` aborts the
//! process after the N-th step of the run directory's setup (a kill at an exact point).

use recurrent::Generator;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn mini() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/imdb-mini/aclImdb_v1.tar.gz")
        .to_string_lossy()
        .into_owned()
}

fn train_cmd(out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_recurrent"));
    let epochs = if extra.contains(&"--epochs") {
        vec![]
    } else {
        vec!["--epochs", "3"]
    };
    c.args([
        "--threads",
        "2",
        "train",
        "--data",
        &mini(),
        "--out",
        out.to_str().unwrap(),
        "--hidden",
        "16",
        "--embedding-dim",
        "16",
        "--max-vocab",
        "2000",
        "--batch-size",
        "16",
        "--patience",
        "0",
        "--seed",
        "5",
        "--quiet",
    ]);
    c.args(epochs);
    c.args(extra);
    c.env_remove("RECURRENT_DATA");
    c
}

fn resume(out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args([
            "--threads",
            "2",
            "train",
            "--resume",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .output()
        .unwrap()
}

fn final_model(run: &Path) -> Vec<u8> {
    let ck = run.join("checkpoints");
    let name = std::fs::read_to_string(ck.join("LATEST")).expect("a checkpoint");
    std::fs::read(ck.join(name.trim()).join("model.safetensors")).unwrap()
}

fn reference(tmp: &Path) -> (PathBuf, Vec<u8>, f64) {
    let r = tmp.join("ref");
    let t = Instant::now();
    let o = train_cmd(&r, &[]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (r.clone(), final_model(&r), t.elapsed().as_secs_f64())
}

#[test]
fn same_seed_same_threads_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, a, _) = reference(tmp.path());
    let b = tmp.path().join("b");
    assert!(train_cmd(&b, &[]).output().unwrap().status.success());
    assert_eq!(a, final_model(&b));
    assert_eq!(
        std::fs::read(tmp.path().join("ref/model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );
}

#[test]
fn sigkill_at_random_moments_loses_nothing_saved() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, want, secs) = reference(tmp.path());
    let mut g = Generator::new(20261127);
    let trials = 6;
    // The last trials wait for the first checkpoint before they kill, so that resuming from a
    // checkpoint is always among the cases (random moments alone may all fall before it).
    let after_checkpoint = 2;
    let mut resumed_from_checkpoint = 0;
    for k in 0..trials {
        let run = tmp.path().join(format!("k{k}"));
        let mut child = train_cmd(&run, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let at = if k >= trials - after_checkpoint {
            while !run.join("checkpoints/LATEST").exists() {
                assert!(
                    start.elapsed().as_secs_f64() < secs * 4.0 + 30.0,
                    "trial {k}: no checkpoint appeared"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            // somewhere in the rest of the run
            let rest = (secs - start.elapsed().as_secs_f64()).max(0.0);
            std::thread::sleep(Duration::from_secs_f64(rest * 0.8 * g.uniform_f64()));
            start.elapsed()
        } else {
            let at = Duration::from_secs_f64(secs * (0.1 + 0.85 * g.uniform_f64()));
            std::thread::sleep(at);
            at
        };
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Whatever was saved is intact: the best model loads, and the checkpoints verify.
        if run.join("model.safetensors").exists() {
            let o = Command::new(env!("CARGO_BIN_EXE_recurrent"))
                .args(["predict", "--model", run.to_str().unwrap(), "a fine film"])
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "trial {k}: saved model unreadable: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        if run.join("config.json").exists() {
            if run.join("checkpoints/LATEST").exists() {
                resumed_from_checkpoint += 1;
            }
            let o = resume(&run);
            assert!(
                o.status.success(),
                "trial {k}: resume failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        } else {
            // Killed before the run directory was set up: there is none, and a new run starts.
            assert!(!run.exists(), "trial {k}: partial run directory");
            assert!(train_cmd(&run, &[]).output().unwrap().status.success());
        }
        assert_eq!(
            final_model(&run),
            want,
            "trial {k} (killed after {at:?}) reached different weights"
        );
    }
    assert!(
        resumed_from_checkpoint >= after_checkpoint,
        "only {resumed_from_checkpoint} of {trials} trials resumed from a checkpoint"
    );
    eprintln!(
        "{trials} SIGKILL trials passed ({resumed_from_checkpoint} resumed from a checkpoint)"
    );
}

#[test]
fn a_kill_inside_setup_leaves_no_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, want, _) = reference(tmp.path());
    for step in ["1", "2"] {
        let run = tmp.path().join(format!("setup{step}"));
        let o = train_cmd(&run, &["--fault-abort-in-setup", step])
            .output()
            .unwrap();
        assert!(!o.status.success(), "the hook did not abort");
        assert!(
            !run.exists(),
            "after step {step}: a half-made run directory"
        );
        let staging: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(|e| {
                let n = e.unwrap().file_name().to_string_lossy().into_owned();
                n.starts_with(&format!(".setup{step}.setup-")).then_some(n)
            })
            .collect();
        assert_eq!(staging.len(), 1, "{staging:?}");
        // `--resume` has nothing to resume; a new run takes the name, and cleans up.
        assert!(!resume(&run).status.success());
        let o = train_cmd(&run, &[]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(!tmp.path().join(&staging[0]).exists(), "stale staging kept");
        assert_eq!(final_model(&run), want);
    }
}

#[test]
fn sigint_checkpoints_at_a_batch_boundary_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, want, secs) = reference(tmp.path());
    let run = tmp.path().join("int");
    let child = train_cmd(&run, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt as soon as training has started (the run directory exists): the handler is
    // installed before that, and the run has three epochs of batches left, so the signal
    // always lands inside training and is acted on at the next batch boundary.
    let t = Instant::now();
    while !run.join("config.json").exists() {
        assert!(
            t.elapsed().as_secs_f64() < secs * 2.0 + 10.0,
            "training never started"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(
        err.contains("checkpoint saved") && err.contains("--resume"),
        "{err}"
    );
    assert!(resume(&run).status.success());
    assert_eq!(final_model(&run), want);
}

#[test]
fn divergence_stops_with_a_message_and_keeps_what_was_saved() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("nan");
    // One sane epoch first, so there is a best model to protect.
    assert!(train_cmd(&run, &["--epochs", "1"])
        .output()
        .unwrap()
        .status
        .success());
    let before = std::fs::read(run.join("model.safetensors")).unwrap();
    let before_ckpt = final_model(&run);
    // A second run that diverges: a huge learning rate.
    let run2 = tmp.path().join("nan2");
    let o = train_cmd(
        &run2,
        &[
            "--lr",
            "1e30",
            "--clip-grad-norm",
            "0",
            "--schedule",
            "constant",
        ],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a diverging run must stop");
    assert!(err.contains("non-finite") && err.contains("step"), "{err}");
    if let Ok(bytes) = std::fs::read(run2.join("model.safetensors")) {
        // Any saved best model holds finite numbers.
        let sd = recurrent::io::load_safetensors_bytes(&bytes, "best").unwrap();
        assert!(sd
            .iter()
            .all(|(_, t)| t.to_vec().iter().all(|v| v.is_finite())));
    }
    // The first run's files are untouched.
    assert_eq!(
        std::fs::read(run.join("model.safetensors")).unwrap(),
        before
    );
    assert_eq!(final_model(&run), before_ckpt);
    // A bad batch (a NaN loss at steps 3 and 5) stops a run, naming the step...
    let run3 = tmp.path().join("bad");
    let o = train_cmd(&run3, &["--epochs", "1", "--fault-nan-steps", "3,5"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("non-finite value in the loss at epoch 1 step 3"),
        "{err}"
    );
    // ... or, with --skip-nonfinite, is skipped and counted.
    let run4 = tmp.path().join("skip");
    let o = train_cmd(
        &run4,
        &[
            "--epochs",
            "1",
            "--fault-nan-steps",
            "3,5",
            "--skip-nonfinite",
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run4.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m[0]["skipped_steps"].as_u64(), Some(2), "{m}");
}

#[test]
fn a_million_character_review_is_truncated_not_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("m");
    assert!(train_cmd(&run, &["--epochs", "1"])
        .output()
        .unwrap()
        .status
        .success());
    let long = "a great and wonderful film ".repeat(40_000);
    assert!(long.len() >= 1_000_000);
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_recurrent"))
        .args(["predict", "--model", run.to_str().unwrap(), "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        format!("{long}\n").as_bytes(),
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1);
    assert!(t.elapsed() < Duration::from_secs(30));
}
