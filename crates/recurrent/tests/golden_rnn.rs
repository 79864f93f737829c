//! The recurrent layers against PyTorch: every case of the fixture matrix ({RNN tanh, RNN
//! relu, LSTM, LSTM with proj_size, GRU} x {1, 2, 3 layers} x {uni, bidirectional} x
//! {batch_first} x {with, without initial state} x {padded, packed sorted, packed unsorted,
//! unbatched}, plus bias-free cases), and 2-layer cases with batches of 19 and 17 rows (uni
//! and bidirectional, padded and packed unsorted, with initial states) that the kernels split
//! into slices carried by separate threads: outputs, final states and the gradients of the
//! input, the initial states and every parameter.
//!
//! The tests run on a rayon pool of [`THREADS`] threads, whatever the machine's core count, so
//! that the large batches are split into slices (in both directions of a bidirectional layer)
//! and the multi-slice paths meet PyTorch; each large case checks that it is split.

mod common;
use common::*;

use recurrent::nn::{
    pack_padded_sequence, GruConfig, LstmConfig, Module, Nonlinearity, PackedSequence, RnnConfig,
    StateDict,
};
use recurrent::rnn::{host, Steps};
use recurrent::runtime::current_threads;
use recurrent::Tensor;
use serde_json::Value;
use std::sync::Once;

const FWD_TOL: f32 = 1e-5;
const GRAD_TOL: f32 = 1e-4;

/// Threads of the rayon pool the tests run on: two per direction of a bidirectional layer.
const THREADS: usize = 4;

/// A case whose batch the kernels split into slices (the small cases have batch 3).
const BIG_BATCH: u64 = 16;

/// Build rayon's global pool with [`THREADS`] threads before any kernel runs (every test calls
/// this first), and check that the kernels see them.
fn setup_threads() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Err(e) = recurrent::init_thread_pool(Some(THREADS)) {
            eprintln!("{e}");
        }
    });
    assert!(
        current_threads() >= THREADS,
        "the kernels see {} threads, the large-batch cases need {THREADS}",
        current_threads()
    );
}

fn is_big(case: &Value) -> bool {
    case["batch"].as_u64().is_some_and(|b| b >= BIG_BATCH)
}

/// How many slices the kernels cut a case's batch into, per direction (recurrent-core's own
/// rule, for the threads the test runs on).
fn slices_of(case: &Value, steps: usize, batch: usize) -> usize {
    let batch_sizes: Vec<usize> = match case["lengths"].as_array() {
        Some(l) => {
            let l: Vec<usize> = l.iter().map(|v| v.as_u64().unwrap() as usize).collect();
            let max = *l.iter().max().unwrap();
            (0..max)
                .map(|t| l.iter().filter(|&&n| n > t).count())
                .collect()
        }
        None => vec![batch; steps],
    };
    let dirs = if case["bidirectional"].as_bool().unwrap() {
        2
    } else {
        1
    };
    host::batch_slices(&Steps::new(&batch_sizes).unwrap(), dirs)
}

/// The largest differences seen, forward and on gradients: absolute, and relative to
/// `1 + |PyTorch's value|` (what the tolerances bound).
#[derive(Default, Clone, Copy)]
struct MaxDiff {
    forward: f32,
    gradient: f32,
    forward_rel: f32,
    gradient_rel: f32,
}

impl std::fmt::Display for MaxDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "largest differences {:.1e} forward, {:.1e} gradients (relative {:.1e}, {:.1e})",
            self.forward, self.gradient, self.forward_rel, self.gradient_rel
        )
    }
}

enum Model {
    Rnn(recurrent::nn::Rnn),
    Lstm(recurrent::nn::Lstm),
    Gru(recurrent::nn::Gru),
}

impl Model {
    fn module(&self) -> &dyn Module {
        match self {
            Model::Rnn(m) => m,
            Model::Lstm(m) => m,
            Model::Gru(m) => m,
        }
    }
}

fn build(case: &Value) -> Model {
    let (i, h) = (
        case["input_size"].as_u64().unwrap() as usize,
        case["hidden_size"].as_u64().unwrap() as usize,
    );
    let layers = case["num_layers"].as_u64().unwrap() as usize;
    let bidir = case["bidirectional"].as_bool().unwrap();
    let bf = case["batch_first"].as_bool().unwrap();
    let bias = case["bias"].as_bool().unwrap();
    match case["mode"].as_str().unwrap() {
        m @ ("rnn_tanh" | "rnn_relu") => Model::Rnn(
            RnnConfig::new(i, h)
                .with_nonlinearity(if m == "rnn_relu" {
                    Nonlinearity::Relu
                } else {
                    Nonlinearity::Tanh
                })
                .with_num_layers(layers)
                .with_bidirectional(bidir)
                .with_batch_first(bf)
                .with_bias(bias)
                .init()
                .unwrap(),
        ),
        "lstm" | "lstm_proj" => Model::Lstm(
            LstmConfig::new(i, h)
                .with_proj_size(case["proj_size"].as_u64().unwrap() as usize)
                .with_num_layers(layers)
                .with_bidirectional(bidir)
                .with_batch_first(bf)
                .with_bias(bias)
                .init()
                .unwrap(),
        ),
        "gru" => Model::Gru(
            GruConfig::new(i, h)
                .with_num_layers(layers)
                .with_bidirectional(bidir)
                .with_batch_first(bf)
                .with_bias(bias)
                .init()
                .unwrap(),
        ),
        other => panic!("unknown mode {other}"),
    }
}

/// Run one case; returns the number of tensors compared, or the mismatches.
fn run_case(case: &Value, fx: &StateDict, max: &mut MaxDiff) -> Result<usize, Vec<String>> {
    let id = case["id"].as_str().unwrap();
    let key = |s: &str| format!("{id}.{s}");
    let model = build(case);
    let m = model.module();
    let mut errors = Vec::new();
    let mut compared = 0;

    // Registration order and names are PyTorch's.
    let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    let want: Vec<String> = case["param_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    if names != want {
        errors.push(format!("parameter names {names:?}, PyTorch has {want:?}"));
        return Err(errors);
    }
    let sd: StateDict = names
        .iter()
        .map(|n| (n.clone(), get(fx, &key(&format!("param.{n}")))))
        .collect();
    m.load_state_dict(&sd, true)
        .map_err(|e| vec![e.to_string()])?;

    let x = get(fx, &key("input")).requires_grad();
    let init = case["init_state"].as_bool().unwrap();
    let lstm = matches!(model, Model::Lstm(_));
    let h0 = init.then(|| get(fx, &key("h0")).requires_grad());
    let c0 = (init && lstm).then(|| get(fx, &key("c0")).requires_grad());
    let kind = case["input_kind"].as_str().unwrap();
    let bf = case["batch_first"].as_bool().unwrap();
    if kind != "unbatched" {
        let (steps, batch) = if bf {
            (x.shape()[1], x.shape()[0])
        } else {
            (x.shape()[0], x.shape()[1])
        };
        if case["batch"].as_u64() != Some(batch as u64) {
            errors.push(format!(
                "input batch {batch}, the manifest says {}",
                case["batch"]
            ));
        }
        if is_big(case) && slices_of(case, steps, batch) < 2 {
            errors.push(format!(
                "batch {batch} is not split into slices with {} threads: \
                 the case does not test the multi-slice paths",
                current_threads()
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
    }

    let run =
        |input: Option<&PackedSequence>| -> recurrent::Result<(Tensor, Tensor, Option<Tensor>)> {
            Ok(match (&model, input) {
                (Model::Rnn(r), None) => {
                    let (o, h) = r.forward(&x, h0.as_ref())?;
                    (o, h, None)
                }
                (Model::Gru(r), None) => {
                    let (o, h) = r.forward(&x, h0.as_ref())?;
                    (o, h, None)
                }
                (Model::Lstm(r), None) => {
                    let (o, (h, c)) = r.forward(&x, h0.as_ref().zip(c0.as_ref()))?;
                    (o, h, Some(c))
                }
                (Model::Rnn(r), Some(p)) => {
                    let (o, h) = r.forward_packed(p, h0.as_ref())?;
                    (o.data, h, None)
                }
                (Model::Gru(r), Some(p)) => {
                    let (o, h) = r.forward_packed(p, h0.as_ref())?;
                    (o.data, h, None)
                }
                (Model::Lstm(r), Some(p)) => {
                    let (o, (h, c)) = r.forward_packed(p, h0.as_ref().zip(c0.as_ref()))?;
                    (o.data, h, Some(c))
                }
            })
        };
    let packed = match kind {
        "packed_sorted" | "packed_unsorted" => {
            let lengths: Vec<usize> = case["lengths"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let p = pack_padded_sequence(&x, &lengths, bf, kind == "packed_sorted")
                .map_err(|e| vec![e.to_string()])?;
            if kind == "packed_unsorted" {
                let want: Vec<usize> = get(fx, &key("sorted_indices"))
                    .to_vec()
                    .iter()
                    .map(|&v| v as usize)
                    .collect();
                if p.sorted_indices.as_ref() != Some(&want) {
                    errors.push(format!(
                        "sorted_indices {:?}, PyTorch {want:?}",
                        p.sorted_indices
                    ));
                }
            }
            Some(p)
        }
        _ => None,
    };
    let (out, h_n, c_n) = run(packed.as_ref()).map_err(|e| vec![e.to_string()])?;
    let mut check = |what: &str, got: &Tensor, want: &Tensor, tol: f32| {
        compared += 1;
        match compare_t(what, got, want, tol) {
            Ok(d) if tol == FWD_TOL => {
                max.forward = max.forward.max(d);
                max.forward_rel = max.forward_rel.max(max_rel_diff(got, want));
            }
            Ok(d) => {
                max.gradient = max.gradient.max(d);
                max.gradient_rel = max.gradient_rel.max(max_rel_diff(got, want));
            }
            Err(e) => errors.push(e),
        }
    };
    check("output", &out, &get(fx, &key("output")), FWD_TOL);
    check("h_n", &h_n, &get(fx, &key("h_n")), FWD_TOL);
    if let Some(c) = &c_n {
        check("c_n", c, &get(fx, &key("c_n")), FWD_TOL);
    }

    let mut loss = dot(&out, &get(fx, &key("g_output")))
        .add(&dot(&h_n, &get(fx, &key("g_h_n"))))
        .unwrap();
    if let Some(c) = &c_n {
        loss = loss.add(&dot(c, &get(fx, &key("g_c_n")))).unwrap();
    }
    loss.backward().map_err(|e| vec![e.to_string()])?;
    check(
        "grad input",
        &grad_of(&x),
        &get(fx, &key("grad.input")),
        GRAD_TOL,
    );
    if let Some(h) = &h0 {
        check("grad h0", &grad_of(h), &get(fx, &key("grad.h0")), GRAD_TOL);
    }
    if let Some(c) = &c0 {
        check("grad c0", &grad_of(c), &get(fx, &key("grad.c0")), GRAD_TOL);
    }
    for (n, p) in m.named_parameters() {
        check(
            &format!("grad {n}"),
            &grad_of(&p),
            &get(fx, &key(&format!("grad.{n}"))),
            GRAD_TOL,
        );
    }
    if errors.is_empty() {
        Ok(compared)
    } else {
        Err(errors)
    }
}

fn run_mode(mode: &str) {
    setup_threads();
    let man = manifest();
    let file = man["rnn_files"][mode]
        .as_str()
        .unwrap_or_else(|| panic!("manifest lists no file for {mode}"));
    let fx = load(file);
    let cases: Vec<&Value> = man["rnn_cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["mode"] == mode)
        .collect();
    assert!(
        cases.len() >= 96,
        "{mode}: only {} cases in the manifest",
        cases.len()
    );
    // The large batches: uni and bidirectional, padded and packed unsorted, batch 19 and 17.
    let big: Vec<&&Value> = cases.iter().filter(|c| is_big(c)).collect();
    for (bidir, kind) in [
        (false, "padded"),
        (true, "padded"),
        (false, "packed_unsorted"),
        (true, "packed_unsorted"),
    ] {
        assert!(
            big.iter().any(|c| c["bidirectional"] == bidir
                && c["input_kind"] == kind
                && c["batch"] == 19
                && c["init_state"] == true
                && c["num_layers"] == 2),
            "{mode}: no batch-19 case with bidirectional={bidir}, {kind}"
        );
    }
    assert!(
        big.iter().any(|c| c["batch"] == 17),
        "{mode}: no batch-17 case"
    );
    let mut failures = Vec::new();
    let (mut compared, mut compared_big) = (0, 0);
    let (mut max, mut max_big) = (MaxDiff::default(), MaxDiff::default());
    for case in &cases {
        let big = is_big(case);
        let m = if big { &mut max_big } else { &mut max };
        match run_case(case, &fx, m) {
            Ok(n) if big => compared_big += n,
            Ok(n) => compared += n,
            Err(e) => failures.push(format!(
                "{}:\n    {}",
                case["id"].as_str().unwrap(),
                e.join("\n    ")
            )),
        }
    }
    eprintln!(
        "{mode}: {} cases, {} tensors compared; batch <= 3: {} cases, {compared} tensors, \
         {max}; batch >= {BIG_BATCH} on {} threads: {} cases, {compared_big} tensors, {max_big}",
        cases.len(),
        compared + compared_big,
        cases.len() - big.len(),
        current_threads(),
        big.len(),
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from PyTorch:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn rnn_tanh_matches_pytorch() {
    run_mode("rnn_tanh");
}

#[test]
fn rnn_relu_matches_pytorch() {
    run_mode("rnn_relu");
}

#[test]
fn lstm_matches_pytorch() {
    run_mode("lstm");
}

#[test]
fn lstm_with_projection_matches_pytorch() {
    run_mode("lstm_proj");
}

#[test]
fn gru_matches_pytorch() {
    run_mode("gru");
}

#[test]
fn every_mode_in_the_manifest_is_tested() {
    let man = manifest();
    let modes: Vec<&str> = man["rnn_files"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = modes.clone();
    sorted.sort();
    assert_eq!(sorted, ["gru", "lstm", "lstm_proj", "rnn_relu", "rnn_tanh"]);
    assert_eq!(man["rnn_cases"].as_array().unwrap().len(), 515);
    let big = man["rnn_cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| is_big(c))
        .count();
    assert_eq!(big, 25, "large-batch cases");
}
