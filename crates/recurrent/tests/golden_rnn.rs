//! The recurrent layers against PyTorch: every case of the fixture matrix ({RNN tanh, RNN
//! relu, LSTM, LSTM with proj_size, GRU} x {1, 2, 3 layers} x {uni, bidirectional} x
//! {batch_first} x {with, without initial state} x {padded, packed sorted, packed unsorted,
//! unbatched}, plus bias-free cases): outputs, final states and the gradients of the input,
//! the initial states and every parameter.

mod common;
use common::*;

use recurrent::nn::{
    pack_padded_sequence, GruConfig, LstmConfig, Module, Nonlinearity, PackedSequence, RnnConfig,
    StateDict,
};
use recurrent::Tensor;
use serde_json::Value;

const FWD_TOL: f32 = 1e-5;
const GRAD_TOL: f32 = 1e-4;

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
fn run_case(case: &Value, fx: &StateDict) -> Result<usize, Vec<String>> {
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
        if let Err(e) = compare_t(what, got, want, tol) {
            errors.push(e);
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
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in &cases {
        match run_case(case, &fx) {
            Ok(n) => compared += n,
            Err(e) => failures.push(format!(
                "{}:\n    {}",
                case["id"].as_str().unwrap(),
                e.join("\n    ")
            )),
        }
    }
    eprintln!("{mode}: {} cases, {compared} tensors compared", cases.len());
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
    assert_eq!(man["rnn_cases"].as_array().unwrap().len(), 490);
}
