//! The cells, the losses, the optimisers (five steps each on a small LSTM model), the
//! learning-rate schedules, and a whole IMDB-lab-shaped model's state dict, against PyTorch.

mod common;
use common::*;

use recurrent::io::{load_safetensors, save_safetensors};
use recurrent::nn::{
    pack_padded_sequence, visit_child, CellConfig, Embedding, EmbeddingConfig, Linear,
    LinearConfig, Lstm, LstmConfig, Module, Nonlinearity, StateDict,
};
use recurrent::optim::{
    clip_grad_norm, Adam, AdamConfig, LrScheduler, Optimizer, RmsProp, RmsPropConfig, Schedule,
    Sgd, SgdConfig,
};
use recurrent::{ClassTarget, CrossEntropyOptions, Reduction, Tensor};
use serde_json::Value;

fn finish(what: &str, failures: Vec<String>, total: usize) {
    eprintln!("{what}: {total} cases");
    assert!(
        failures.is_empty(),
        "{} {what} cases differ from PyTorch:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn cells_match_pytorch() {
    let man = manifest();
    let fx = load("cells.safetensors");
    let cases = man["cell_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 24);
    let mut failures = Vec::new();
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let key = |s: &str| format!("{id}.{s}");
        let kind = case["kind"].as_str().unwrap();
        let cfg = CellConfig::new(3, 4).with_bias(!kind.ends_with("nobias"));
        let x = get(&fx, &key("input")).requires_grad();
        let with_state = case["with_state"].as_bool().unwrap();
        let h0 = with_state.then(|| get(&fx, &key("h0")).requires_grad());
        let lstm = kind.starts_with("lstm");
        let c0 = (with_state && lstm).then(|| get(&fx, &key("c0")).requires_grad());
        let (module, h1, c1): (Box<dyn Module>, Tensor, Option<Tensor>) = {
            let load = |m: &dyn Module| {
                let sd: StateDict = m
                    .named_parameters()
                    .into_iter()
                    .map(|(n, _)| (n.clone(), get(&fx, &key(&format!("param.{n}")))))
                    .collect();
                m.load_state_dict(&sd, true).unwrap();
            };
            if lstm {
                let m = cfg.lstm().unwrap();
                load(&m);
                let (h, c) = m.forward(&x, h0.as_ref().zip(c0.as_ref())).unwrap();
                (Box::new(m), h, Some(c))
            } else if kind.starts_with("gru") {
                let m = cfg.gru().unwrap();
                load(&m);
                let h = m.forward(&x, h0.as_ref()).unwrap();
                (Box::new(m), h, None)
            } else {
                let nl = if kind.ends_with("relu") {
                    Nonlinearity::Relu
                } else {
                    Nonlinearity::Tanh
                };
                let m = cfg.with_nonlinearity(nl).rnn().unwrap();
                load(&m);
                let h = m.forward(&x, h0.as_ref()).unwrap();
                (Box::new(m), h, None)
            }
        };
        let mut errs = Vec::new();
        let mut check = |what: &str, got: &Tensor, want: &Tensor, tol: f32| {
            if let Err(e) = compare_t(what, got, want, tol) {
                errs.push(e)
            }
        };
        check("h1", &h1, &get(&fx, &key("h1")), 1e-5);
        let mut loss = dot(&h1, &get(&fx, &key("g_h1")));
        if let Some(c) = &c1 {
            check("c1", c, &get(&fx, &key("c1")), 1e-5);
            loss = loss.add(&dot(c, &get(&fx, &key("g_c1")))).unwrap();
        }
        loss.backward().unwrap();
        check(
            "grad input",
            &grad_of(&x),
            &get(&fx, &key("grad.input")),
            1e-4,
        );
        if let Some(h) = &h0 {
            check("grad h0", &grad_of(h), &get(&fx, &key("grad.h0")), 1e-4);
        }
        if let Some(c) = &c0 {
            check("grad c0", &grad_of(c), &get(&fx, &key("grad.c0")), 1e-4);
        }
        for (n, p) in module.named_parameters() {
            check(
                &format!("grad {n}"),
                &grad_of(&p),
                &get(&fx, &key(&format!("grad.{n}"))),
                1e-4,
            );
        }
        if !errs.is_empty() {
            failures.push(format!("{id}: {}", errs.join("; ")));
        }
    }
    finish("cell", failures, cases.len());
}

fn reduction(case: &Value) -> Reduction {
    Reduction::parse(case["reduction"].as_str().unwrap()).unwrap()
}

#[test]
fn losses_match_pytorch() {
    let man = manifest();
    let fx = load("losses.safetensors");
    let cases = man["loss_cases"].as_array().unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let key = |s: &str| format!("{id}.{s}");
        let x = get(&fx, &key("input0")).requires_grad();
        let red = reduction(case);
        let floats = |v: &Value| -> Option<Tensor> {
            v.as_array().map(|a| {
                let d: Vec<f32> = a.iter().map(|x| x.as_f64().unwrap() as f32).collect();
                let n = d.len();
                Tensor::from_vec(d, &[n]).unwrap()
            })
        };
        let out = match case["loss"].as_str().unwrap() {
            "bce" => {
                let y = get(&fx, &key("target"));
                let pw = floats(&case["pos_weight"]);
                let w = case["weight"]
                    .as_bool()
                    .unwrap_or(false)
                    .then(|| get(&fx, &format!("{id}.weight")));
                x.binary_cross_entropy_with_logits(&y, w.as_ref(), pw.as_ref(), red)
            }
            kind @ ("ce" | "ce_probs") => {
                let w = floats(&case["weight"]);
                let opts = CrossEntropyOptions {
                    weight: w.as_ref(),
                    ignore_index: case["ignore_index"].as_i64().unwrap_or(-100),
                    reduction: red,
                    label_smoothing: case["label_smoothing"].as_f64().unwrap_or(0.0) as f32,
                };
                if kind == "ce" {
                    let t: Vec<i64> = get(&fx, &key("target"))
                        .to_vec()
                        .iter()
                        .map(|&v| v as i64)
                        .collect();
                    x.cross_entropy(ClassTarget::Indices(&t), opts)
                } else {
                    let p = get(&fx, &format!("{id}.probs"));
                    x.cross_entropy(ClassTarget::Probabilities(&p), opts)
                }
            }
            "mse" => x.mse_loss(&get(&fx, &key("target")), red),
            other => panic!("unknown loss {other}"),
        };
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{id}: {e}"));
                continue;
            }
        };
        let scalar = case["output_scalar"].as_bool().unwrap();
        let out_flat = if scalar {
            out.reshape(&[1]).unwrap()
        } else {
            out
        };
        let mut errs = Vec::new();
        if let Err(e) = compare_t("output", &out_flat, &get(&fx, &key("output")), 1e-5) {
            errs.push(e);
        }
        dot(&out_flat, &get(&fx, &key("g_output")))
            .backward()
            .unwrap();
        if let Err(e) = compare_t(
            "grad input",
            &grad_of(&x),
            &get(&fx, &key("grad.input0")),
            1e-4,
        ) {
            errs.push(e);
        }
        if !errs.is_empty() {
            failures.push(format!("{id}: {}", errs.join("; ")));
        }
    }
    assert!(cases.len() >= 27);
    finish("loss", failures, cases.len());
}

/// LSTM(3, 4, batch_first) -> Linear(4, 1) on the last hidden state.
struct TinyModel {
    lstm: Lstm,
    fc: Linear,
}

impl Module for TinyModel {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("lstm", &self.lstm, f);
        visit_child("fc", &self.fc, f);
    }
}

impl TinyModel {
    fn new() -> TinyModel {
        TinyModel {
            lstm: LstmConfig::new(3, 4).with_batch_first(true).init().unwrap(),
            fc: LinearConfig::new(4, 1).init().unwrap(),
        }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        let (_, (h, _)) = self.lstm.forward(x, None).unwrap();
        self.fc
            .forward(&h.select(0, 0).unwrap())
            .unwrap()
            .squeeze(1)
            .unwrap()
    }
}

#[test]
fn optimisers_match_pytorch_over_five_steps() {
    let man = manifest();
    let fx = load("optim.safetensors");
    let x = get(&fx, "optim.x");
    let y = get(&fx, "optim.y");
    let cases = man["optim_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    let mut failures = Vec::new();
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let model = TinyModel::new();
        let sd: StateDict = model
            .named_parameters()
            .into_iter()
            .map(|(n, _)| (n.clone(), get(&fx, &format!("{id}.init.{n}"))))
            .collect();
        model.load_state_dict(&sd, true).unwrap();
        let f = |k: &str, d: f64| case[k].as_f64().unwrap_or(d);
        let params = model.parameters();
        let mut opt: Box<dyn Optimizer> = match case["opt"].as_str().unwrap() {
            "sgd" => Box::new(
                Sgd::new(
                    params,
                    SgdConfig {
                        lr: f("lr", 1e-3),
                        momentum: f("momentum", 0.0),
                        dampening: f("dampening", 0.0),
                        weight_decay: f("weight_decay", 0.0),
                        nesterov: case["nesterov"].as_bool().unwrap_or(false),
                        maximize: false,
                    },
                )
                .unwrap(),
            ),
            o @ ("adam" | "adamw") => {
                let mut c = if o == "adam" {
                    AdamConfig::adam()
                } else {
                    AdamConfig::adamw()
                };
                c.lr = f("lr", c.lr);
                c.weight_decay = f("weight_decay", c.weight_decay);
                if let Some(b) = case["betas"].as_array() {
                    c.betas = (b[0].as_f64().unwrap(), b[1].as_f64().unwrap());
                }
                c.amsgrad = case["amsgrad"].as_bool().unwrap_or(false);
                Box::new(Adam::new(params, c).unwrap())
            }
            "rmsprop" => Box::new(
                RmsProp::new(
                    params,
                    RmsPropConfig {
                        lr: f("lr", 1e-2),
                        alpha: f("alpha", 0.99),
                        momentum: f("momentum", 0.0),
                        centered: case["centered"].as_bool().unwrap_or(false),
                        weight_decay: f("weight_decay", 0.0),
                        ..Default::default()
                    },
                )
                .unwrap(),
            ),
            other => panic!("unknown optimiser {other}"),
        };
        let mut errs = Vec::new();
        for step in 0..5 {
            opt.zero_grad();
            let loss = model.forward(&x).mse_loss(&y, Reduction::Mean).unwrap();
            if let Err(e) = compare_t(
                &format!("step {step} loss"),
                &loss.reshape(&[1]).unwrap(),
                &get(&fx, &format!("{id}.step{step}.loss")),
                1e-5,
            ) {
                errs.push(e);
            }
            loss.backward().unwrap();
            if let Some(max) = case["clip_grad_norm"].as_f64() {
                clip_grad_norm(opt.params(), max, 2.0, false).unwrap();
            }
            opt.step().unwrap();
            for (n, p) in model.named_parameters() {
                if let Err(e) = compare_t(
                    &format!("step {step} {n}"),
                    &p,
                    &get(&fx, &format!("{id}.step{step}.{n}")),
                    1e-5,
                ) {
                    errs.push(e);
                }
            }
        }
        if !errs.is_empty() {
            failures.push(format!("{id}: {}", errs.join("; ")));
        }
    }
    finish("optimiser", failures, cases.len());
}

struct DummyOpt(f64);
impl Optimizer for DummyOpt {
    fn step(&mut self) -> recurrent::Result<()> {
        Ok(())
    }
    fn params(&self) -> &[Tensor] {
        &[]
    }
    fn lr(&self) -> f64 {
        self.0
    }
    fn set_lr(&mut self, lr: f64) {
        self.0 = lr;
    }
    fn state(&self) -> recurrent::optim::OptimizerState {
        Default::default()
    }
    fn load_state(&mut self, _: &recurrent::optim::OptimizerState) -> recurrent::Result<()> {
        Ok(())
    }
}

#[test]
fn learning_rate_schedules_match_pytorch() {
    let man = manifest();
    let cases = man["scheduler_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let s = &case["spec"];
        let u = |k: &str| s[k].as_u64().unwrap() as usize;
        let fl = |k: &str| s[k].as_f64().unwrap();
        let schedule = match s["kind"].as_str().unwrap() {
            "step" => Schedule::Step {
                step_size: u("step_size"),
                gamma: fl("gamma"),
            },
            "multistep" => Schedule::MultiStep {
                milestones: s["milestones"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as usize)
                    .collect(),
                gamma: fl("gamma"),
            },
            "exponential" => Schedule::Exponential { gamma: fl("gamma") },
            "cosine" => Schedule::Cosine {
                t_max: u("t_max"),
                eta_min: fl("eta_min"),
            },
            "linear" => Schedule::Linear {
                start_factor: fl("start_factor"),
                end_factor: fl("end_factor"),
                total_iters: u("total_iters"),
            },
            "warmup_cosine" => Schedule::Sequential {
                schedules: vec![
                    Schedule::Linear {
                        start_factor: fl("start_factor"),
                        end_factor: 1.0,
                        total_iters: u("warmup"),
                    },
                    Schedule::Cosine {
                        t_max: u("t_max"),
                        eta_min: fl("eta_min"),
                    },
                ],
                milestones: vec![u("warmup")],
            },
            other => panic!("unknown schedule {other}"),
        };
        let mut opt = DummyOpt(0.1);
        let mut sched = LrScheduler::new(schedule, &mut opt).unwrap();
        let mut got = vec![opt.lr()];
        for _ in 0..12 {
            sched.step(&mut opt);
            got.push(opt.lr());
        }
        let want: Vec<f64> = case["lrs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for (e, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-9 + 1e-7 * b.abs(),
                "{}: epoch {e}: {a} vs PyTorch {b}",
                case["id"]
            );
        }
    }
}

/// The IMDB lab's model shape: Embedding -> 2-layer LSTM -> Linear, as in the fixture script.
struct LabModel {
    embedding: Embedding,
    lstm: Lstm,
    fc: Linear,
}

impl Module for LabModel {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("embedding", &self.embedding, f);
        visit_child("lstm", &self.lstm, f);
        visit_child("fc", &self.fc, f);
    }
}

impl LabModel {
    fn new() -> LabModel {
        LabModel {
            embedding: EmbeddingConfig::new(50, 6)
                .with_padding_idx(1)
                .init()
                .unwrap(),
            lstm: LstmConfig::new(6, 5)
                .with_num_layers(2)
                .with_batch_first(true)
                .init()
                .unwrap(),
            fc: LinearConfig::new(5, 1).init().unwrap(),
        }
    }
    fn forward(&self, ids: &[usize], batch: usize, steps: usize, lengths: &[usize]) -> Tensor {
        let e = self.embedding.forward(ids, &[batch, steps]).unwrap();
        let packed = pack_padded_sequence(&e, lengths, true, false).unwrap();
        let (_, (h, _)) = self.lstm.forward_packed(&packed, None).unwrap();
        self.fc
            .forward(&h.select(0, 1).unwrap())
            .unwrap()
            .squeeze(1)
            .unwrap()
    }
}

#[test]
fn a_pytorch_state_dict_loads_and_gives_pytorch_logits_and_ours_has_pytorch_names() {
    let man = manifest();
    let spec = &man["lab_model"];
    let sd = load("lab_model.safetensors");
    let io = load("lab_model_io.safetensors");
    let model = LabModel::new();
    model.load_state_dict(&sd, true).unwrap();
    let ids_t = get(&io, "ids");
    let ids: Vec<usize> = ids_t.to_vec().iter().map(|&v| v as usize).collect();
    let lengths: Vec<usize> = spec["lengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let logits = model.forward(&ids, ids_t.shape()[0], ids_t.shape()[1], &lengths);
    compare_t("logits", &logits, &get(&io, "logits"), 1e-5).unwrap();

    // One training step's loss and the gradient of every parameter, the embedding's included
    // (its padding row gets none), against PyTorch's BCEWithLogitsLoss (mean).
    assert_eq!(spec["loss"], "bce_with_logits_mean");
    let loss = logits
        .binary_cross_entropy_with_logits(&get(&io, "targets"), None, None, Reduction::Mean)
        .unwrap();
    compare("loss", &loss.to_vec(), &[1], &get(&io, "loss"), 1e-5).unwrap();
    loss.backward().unwrap();
    let grad_names: Vec<&str> = spec["param_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let params = model.named_parameters();
    assert_eq!(
        params.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        grad_names,
        "parameters"
    );
    let mut errs = Vec::new();
    let mut max_grad = 0f32;
    for (n, p) in &params {
        let want = get(&io, &format!("grad.{n}"));
        match compare_t(&format!("grad {n}"), &grad_of(p), &want, 1e-4) {
            // These gradients are small (the embedding's are ~1e-3), so also hold each within
            // 1e-3 of its own largest value: a scaled or partial gradient would pass 1e-4 alone.
            Ok(d) => {
                let scale = want.to_vec().iter().fold(0f32, |m, v| m.max(v.abs()));
                if d > 1e-3 * scale {
                    errs.push(format!(
                        "grad {n}: max abs diff {d:e}, largest value {scale:e}"
                    ));
                }
                max_grad = max_grad.max(d);
            }
            Err(e) => errs.push(e),
        }
    }
    assert!(errs.is_empty(), "lab model gradients:\n{}", errs.join("\n"));
    eprintln!(
        "lab model: logits, loss and {} parameter gradients match PyTorch (largest gradient \
         difference {max_grad:e})",
        params.len()
    );

    // Saved here: exactly PyTorch's names and shapes (what load_state_dict(strict=True)
    // checks), and the values survive the round trip. (Safetensors files list tensors sorted by
    // name, PyTorch's too; registration order is checked through named_parameters.)
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ours.safetensors");
    save_safetensors(&path, &model.state_dict(), None).unwrap();
    let back = load_safetensors(&path).unwrap();
    let mut names: Vec<&str> = back.names();
    names.sort_unstable();
    let mut want: Vec<&str> = spec["state_dict_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let registration: Vec<String> = model
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(registration, want, "registration order");
    want.sort_unstable();
    assert_eq!(names, want);
    for (n, t) in back.iter() {
        let shape: Vec<usize> = spec["shapes"][n]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape(), &shape[..], "{n}");
        assert_eq!(t.to_vec(), sd.get(n).unwrap().to_vec(), "{n}");
    }
    // For scripts/check_interop.py: a model initialised here, its state dict and its logits,
    // which PyTorch must load with strict=True and reproduce.
    let ours = LabModel::new();
    let ours_logits = ours.forward(&ids, ids_t.shape()[0], ids_t.shape()[1], &lengths);
    let out_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    save_safetensors(
        &out_dir.join("lab_model_ours.safetensors"),
        &ours.state_dict(),
        None,
    )
    .unwrap();
    let mut io_ours = StateDict::new();
    io_ours.insert("ids", ids_t.clone());
    io_ours.insert("logits", ours_logits);
    save_safetensors(
        &out_dir.join("lab_model_ours_io.safetensors"),
        &io_ours,
        None,
    )
    .unwrap();

    // A state dict with a wrong tensor is refused, naming it, and nothing is loaded.
    let fresh = LabModel::new();
    let before = fresh.state_dict();
    let mut bad = sd.clone();
    bad.insert("lstm.weight_hh_l1", Tensor::zeros(&[20, 4]).unwrap());
    bad.insert("fc.extra", Tensor::zeros(&[1]).unwrap());
    let err = fresh.load_state_dict(&bad, true).unwrap_err().to_string();
    assert!(
        err.contains("size mismatch for lstm.weight_hh_l1") && err.contains("fc.extra"),
        "{err}"
    );
    for (n, t) in fresh.state_dict().iter() {
        assert_eq!(
            t.to_vec(),
            before.get(n).unwrap().to_vec(),
            "{n} changed by a failed load"
        );
    }
}
