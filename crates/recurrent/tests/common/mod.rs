//! Helpers shared by the golden-fixture tests: the committed fixtures written by
//! `scripts/gen_fixtures.py` with PyTorch, and comparisons that report the largest difference
//! and the first mismatching indices.
#![allow(dead_code)]

use recurrent::io::load_safetensors;
use recurrent::nn::StateDict;
use recurrent::Tensor;
use serde_json::Value;
use std::path::PathBuf;

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The manifest; a missing or unreadable manifest fails the test (never a skip).
pub fn manifest() -> Value {
    let p = fixtures_dir().join("manifest.json");
    let s = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("fixture manifest {} missing: {e}", p.display()));
    serde_json::from_str(&s).expect("manifest is valid JSON")
}

/// A fixture file as a state dict; a missing file fails the test.
pub fn load(file: &str) -> StateDict {
    let p = fixtures_dir().join(file);
    load_safetensors(&p)
        .unwrap_or_else(|e| panic!("fixture {} missing or unreadable: {e}", p.display()))
}

/// The tensor `name` of a fixture; a missing one fails the test.
pub fn get(sd: &StateDict, name: &str) -> Tensor {
    sd.get(name)
        .unwrap_or_else(|| panic!("fixture tensor {name:?} is listed but missing"))
        .clone()
}

/// `|got − want| ≤ tol · (1 + |want|)` elementwise (PyTorch's `allclose` with rtol = atol = tol).
/// On failure: the largest difference and the first mismatching indices.
pub fn compare(
    what: &str,
    got: &[f32],
    got_shape: &[usize],
    want: &Tensor,
    tol: f32,
) -> Result<f32, String> {
    if got_shape != want.shape() {
        return Err(format!(
            "{what}: shape {:?}, expected {:?}",
            got_shape,
            want.shape()
        ));
    }
    let w = want.to_vec();
    let mut max_diff = 0f32;
    let mut bad = Vec::new();
    for (i, (&a, &b)) in got.iter().zip(&w).enumerate() {
        let d = (a - b).abs();
        if (d.is_nan() || d > tol * (1.0 + b.abs())) && bad.len() < 5 {
            bad.push(format!("[{i}] got {a} expected {b}"));
        }
        if d > max_diff || d.is_nan() {
            max_diff = d;
        }
    }
    if bad.is_empty() {
        Ok(max_diff)
    } else {
        Err(format!(
            "{what}: max abs diff {max_diff:e} (tol {tol:e}); first mismatches: {}",
            bad.join(", ")
        ))
    }
}

/// The largest `|got − want| / (1 + |want|)`: what [`compare`]'s tolerance bounds.
pub fn max_rel_diff(got: &Tensor, want: &Tensor) -> f32 {
    got.to_vec()
        .iter()
        .zip(&want.to_vec())
        .map(|(&a, &b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0, f32::max)
}

pub fn compare_t(what: &str, got: &Tensor, want: &Tensor, tol: f32) -> Result<f32, String> {
    compare(what, &got.to_vec(), got.shape(), want, tol)
}

pub fn grad_of(t: &Tensor) -> Tensor {
    t.grad()
        .unwrap_or_else(|| Tensor::zeros(t.shape()).unwrap())
}

/// `sum(a ⊙ g)` as a differentiable scalar.
pub fn dot(a: &Tensor, g: &Tensor) -> Tensor {
    a.mul(g).unwrap().sum().unwrap()
}
