//! `recurrent diagnose`: the vanishing-gradient problem, measured.
//!
//! The same task for an Elman RNN, an LSTM and a GRU of the same size and budget: a sequence
//! of `steps` random vectors whose label is the sign of the first element of the *first*
//! vector, predicted from the final hidden state. Only a gradient that survives the trip
//! back through all the steps can teach it.
//!
//! Measured for each cell type:
//! - `‖∂L/∂h_t‖` at every step `t`, at initialisation and after training. It is exact: the
//!   network is stepped with its cells (the same kernels and weights as the trained layers)
//!   and a zero "probe" tensor is added to every `h_t`; the probe's gradient is `∂L/∂h_t`,
//!   including everything that reaches `h_t` through later steps.
//! - the gradient norm of every layer's parameters during training;
//! - the accuracy reached.
//!
//! Written as `gradient_norms.csv`, `layer_norms.csv`, `summary.json` and PNG plots.

use crate::cell::Cell;
use crate::plot::{save_png, Panel, Series};
use crate::training::{Checks, TrainStep};
use anyhow::{Context, Result};
use recurrent::nn::{
    CellConfig, Linear, LinearConfig, Module, Recurrent, RecurrentCell, RecurrentConfig, RnnState,
    StateDict,
};
use recurrent::optim::{Adam, AdamConfig};
use recurrent::{Generator, Reduction, Tensor};
use serde::Serialize;
use std::path::Path;

/// Settings: the `diagnose` subcommand's flags.
#[derive(Clone, Debug, Serialize, clap::Args)]
pub struct DiagnoseConfig {
    /// Sequence length.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Input features.
    #[arg(long, default_value_t = 8)]
    pub input: usize,
    /// Hidden size.
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// Layers.
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    /// Training steps per cell type.
    #[arg(long, default_value_t = 300)]
    pub train_steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl DiagnoseConfig {
    /// Check every setting (messages name the flag), and that the models fit in memory.
    pub fn validate(&self) -> Result<()> {
        use crate::validate::{
            fits_in_memory, positive, positive_real, rnn_parameters, size, training_bytes,
            MAX_LAYERS, MAX_WIDTH,
        };
        size("--steps", self.steps, 1_000_000)?;
        size("--input", self.input, MAX_WIDTH)?;
        size("--hidden", self.hidden, MAX_WIDTH)?;
        size("--layers", self.layers, MAX_LAYERS)?;
        positive("--train-steps", self.train_steps)?;
        size("--batch", self.batch, 1_000_000)?;
        positive_real("--lr", self.lr)?;
        let params = rnn_parameters(4, self.input, self.hidden, self.layers, 1);
        let activations = (self.batch.max(256) as u128)
            * self.steps as u128
            * (self.layers as u128 * 6 * self.hidden as u128 + self.input as u128);
        fits_in_memory(
            "this diagnosis",
            training_bytes(params, activations),
            "--steps, --hidden, --layers or --batch",
        )
    }
}

/// The results for one cell type.
#[derive(Clone, Debug, Serialize)]
pub struct CellResult {
    /// `rnn`, `lstm` or `gru`.
    pub cell: String,
    /// `‖∂L/∂h_t‖` of the last layer, `t = 0..steps`, at initialisation.
    pub grad_norm_init: Vec<f64>,
    /// The same after training.
    pub grad_norm_trained: Vec<f64>,
    /// `(step, layer, norm)` of each layer's parameter gradients during training.
    pub layer_norms: Vec<(usize, usize, f64)>,
    /// Accuracy on held-out sequences after training.
    pub accuracy: f64,
    /// `‖∂L/∂h_0‖ / ‖∂L/∂h_{T-1}‖` at initialisation: how much survives the trip back.
    pub ratio_first_last_init: f64,
}

fn data(cfg: &DiagnoseConfig, n: usize, g: &mut Generator) -> Result<(Tensor, Tensor)> {
    let x = Tensor::rand_uniform(&[n, cfg.steps, cfg.input], -1.0, 1.0, g)?;
    let xd = x.to_vec();
    let y: Vec<f32> = (0..n)
        .map(|b| {
            if xd[b * cfg.steps * cfg.input] > 0.0 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    Ok((x, Tensor::from_vec(y, &[n])?))
}

/// Final hidden state of the last layer of `net`, `[B, H]`.
fn last(net: &Recurrent, x: &Tensor) -> recurrent::Result<Tensor> {
    let (_, state) = net.forward(x, None)?;
    let h = state.h();
    h.select(0, h.shape()[0] - 1)
}

/// `‖∂L/∂h_t‖` (mean over the batch of per-sequence norms) of the last layer, by stepping
/// cells that share the network's weights, with a zero probe added to every `h_t`.
fn probe(
    net: &Recurrent,
    head: &Linear,
    cfg: &DiagnoseConfig,
    x: &Tensor,
    y: &Tensor,
) -> Result<Vec<f64>> {
    let sd = net.state_dict();
    let (b, t_len, h) = (x.shape()[0], cfg.steps, cfg.hidden);
    // One cell per layer, loaded with that layer's weights.
    let mut cells = Vec::new();
    for l in 0..cfg.layers {
        let in_size = if l == 0 { cfg.input } else { h };
        let c = CellConfig::new(in_size, h);
        let layer_sd: StateDict = sd
            .iter()
            .filter_map(|(n, t)| {
                n.strip_suffix(&format!("_l{l}"))
                    .map(|s| (s.to_string(), t.clone()))
            })
            .collect();
        // Drawn from the process-wide generator, then overwritten with the layer's weights.
        let cell = RecurrentCell::new(net.mode(), &c)?;
        cell.load_state_dict(&layer_sd, true)?;
        cells.push(cell);
    }
    let mut states: Vec<Option<RnnState>> = vec![None; cfg.layers];
    let mut probes = Vec::with_capacity(t_len);
    for t in 0..t_len {
        let mut inp = x.select(1, t)?;
        for l in 0..cfg.layers {
            let mut s = cells[l].forward(&inp, states[l].as_ref())?;
            if l == cfg.layers - 1 {
                let p = Tensor::zeros(&[b, h])?.requires_grad();
                s = match s {
                    RnnState::H(h) => RnnState::H(h.add(&p)?),
                    RnnState::HC(h, c) => RnnState::HC(h.add(&p)?, c),
                };
                probes.push(p);
            }
            inp = s.h().clone();
            states[l] = Some(s);
        }
    }
    let top = states[cfg.layers - 1].as_ref().expect("at least one step");
    let logits = head.forward(top.h())?.squeeze(1)?;
    logits
        .binary_cross_entropy_with_logits(y, None, None, Reduction::Mean)?
        .backward()?;
    Ok(probes
        .iter()
        .map(|p| {
            let g = p.grad().map(|g| g.to_vec()).unwrap_or_default();
            (0..b)
                .map(|r| {
                    g[r * h..(r + 1) * h]
                        .iter()
                        .map(|&v| (v as f64).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .sum::<f64>()
                / b as f64
        })
        .collect())
}

/// Train one cell type on the task, measuring its gradients before, during and after.
fn diagnose_cell(
    cfg: &DiagnoseConfig,
    cell: Cell,
    (x_eval, y_eval): &(Tensor, Tensor),
    quiet: bool,
) -> Result<CellResult> {
    let kind = cell.name();
    let mut g = Generator::new(cfg.seed);
    let net = RecurrentConfig::new(cell.mode(), cfg.input, cfg.hidden)
        .with_num_layers(cfg.layers)
        .with_batch_first(true)
        .init_with(&mut g)?;
    let head = LinearConfig::new(cfg.hidden, 1).init_with(&mut g)?;
    let (x_probe, y_probe) = data(cfg, 32, &mut Generator::new(cfg.seed ^ 0x9B0B))?;
    let grad_init = probe(&net, &head, cfg, &x_probe, &y_probe)?;
    let mut params = net.parameters();
    params.extend(head.parameters());
    let named = net.named_parameters();
    let mut opt = Adam::new(params, AdamConfig::adam().with_lr(cfg.lr))?;
    let mut layer_norms = Vec::new();
    let mut data_rng = Generator::new(cfg.seed ^ 0xDA7A);
    let train_step = TrainStep {
        clip: Some(1.0),
        checks: Checks::None,
        names: &[],
    };
    for step in 0..cfg.train_steps {
        let (x, y) = data(cfg, cfg.batch, &mut data_rng)?;
        let forward = || {
            let logits = head.forward(&last(&net, &x)?)?.squeeze(1)?;
            Ok((
                logits.binary_cross_entropy_with_logits(&y, None, None, Reduction::Mean)?,
                (),
            ))
        };
        // Each layer's gradient norm, before clipping.
        let measure = || {
            if step % 10 == 0 || step + 1 == cfg.train_steps {
                for l in 0..cfg.layers {
                    let sq: f64 = named
                        .iter()
                        .filter(|(n, _)| n.ends_with(&format!("_l{l}")))
                        .map(|(_, p)| {
                            p.with_grad(|g| {
                                g.map_or(0.0, |g| g.iter().map(|&v| (v as f64).powi(2)).sum())
                            })
                        })
                        .sum();
                    layer_norms.push((step, l, sq.sqrt()));
                }
            }
            Ok(())
        };
        train_step.run_inspecting(&mut opt, forward, measure)?;
    }
    let accuracy = {
        let _ng = recurrent::no_grad();
        let l = head.forward(&last(&net, x_eval)?)?.to_vec();
        let y = y_eval.to_vec();
        l.iter()
            .zip(&y)
            .filter(|(&a, &b)| (a >= 0.0) == (b >= 0.5))
            .count() as f64
            / y.len() as f64
    };
    let grad_trained = probe(&net, &head, cfg, &x_probe, &y_probe)?;
    let ratio = grad_init[0] / grad_init[cfg.steps - 1].max(1e-300);
    if !quiet {
        eprintln!(
            "{kind:>4}: |dL/dh_0| / |dL/dh_T-1| at init {ratio:.2e}; after {} steps {:.2e}; accuracy {:.3}",
            cfg.train_steps,
            grad_trained[0] / grad_trained[cfg.steps - 1].max(1e-300),
            accuracy
        );
    }
    Ok(CellResult {
        cell: kind.into(),
        grad_norm_init: grad_init,
        grad_norm_trained: grad_trained,
        layer_norms,
        accuracy,
        ratio_first_last_init: ratio,
    })
}

/// Run the experiment for RNN, LSTM and GRU and write the outputs into `out`.
pub fn run(cfg: &DiagnoseConfig, out: &Path, quiet: bool) -> Result<Vec<CellResult>> {
    cfg.validate()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let eval = data(cfg, 256, &mut Generator::new(cfg.seed ^ 0xE7A1))?;
    let mut results = Vec::new();
    for cell in [Cell::Rnn, Cell::Lstm, Cell::Gru] {
        results.push(diagnose_cell(cfg, cell, &eval, quiet)?);
    }
    let mut csv = String::from("cell,phase,t,grad_norm\n");
    for r in &results {
        for (phase, v) in [
            ("init", &r.grad_norm_init),
            ("trained", &r.grad_norm_trained),
        ] {
            for (t, g) in v.iter().enumerate() {
                csv += &format!("{},{phase},{t},{g:e}\n", r.cell);
            }
        }
    }
    recurrent::io::write_atomic(&out.join("gradient_norms.csv"), csv.as_bytes())?;
    let mut csv = String::from("cell,step,layer,grad_norm\n");
    for r in &results {
        for (s, l, n) in &r.layer_norms {
            csv += &format!("{},{s},{l},{n:e}\n", r.cell);
        }
    }
    recurrent::io::write_atomic(&out.join("layer_norms.csv"), csv.as_bytes())?;
    recurrent::io::write_atomic(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&serde_json::json!({"config": cfg, "results": results}))?
            .as_bytes(),
    )?;
    let by_t = |f: &dyn Fn(&CellResult) -> &Vec<f64>| -> Vec<Series<'static>> {
        results
            .iter()
            .map(|r| Series {
                label: match r.cell.as_str() {
                    "rnn" => "RNN (tanh)",
                    "lstm" => "LSTM",
                    _ => "GRU",
                },
                points: f(r)
                    .iter()
                    .enumerate()
                    .map(|(t, &v)| (t as f64, v.max(1e-30)))
                    .collect(),
            })
            .collect()
    };
    save_png(
        &out.join("vanishing_gradient.png"),
        &[
            Panel {
                title: "||dL/dh_t|| at initialisation",
                x_label: "timestep t (the label depends on t = 0)",
                y_label: "gradient norm (log)",
                series: by_t(&|r| &r.grad_norm_init),
                log_y: true,
                x_names: None,
            },
            Panel {
                title: &format!("||dL/dh_t|| after {} training steps", cfg.train_steps),
                x_label: "timestep t",
                y_label: "gradient norm (log)",
                series: by_t(&|r| &r.grad_norm_trained),
                log_y: true,
                x_names: None,
            },
        ],
    )?;
    let labels: Vec<String> = results
        .iter()
        .flat_map(|r| (0..cfg.layers).map(move |l| format!("{} layer {l}", r.cell.to_uppercase())))
        .collect();
    let layer_series: Vec<Series<'_>> = results
        .iter()
        .flat_map(|r| (0..cfg.layers).map(move |l| (r, l)))
        .zip(&labels)
        .map(|((r, l), label)| Series {
            label,
            points: r
                .layer_norms
                .iter()
                .filter(|x| x.1 == l)
                .map(|x| (x.0 as f64, x.2.max(1e-30)))
                .collect(),
        })
        .collect();
    save_png(
        &out.join("layer_gradient_norms.png"),
        &[Panel {
            title: "gradient norm of each layer's parameters during training",
            x_label: "training step",
            y_label: "gradient norm (log)",
            series: layer_series,
            log_y: true,
            x_names: None,
        }],
    )?;
    Ok(results)
}
