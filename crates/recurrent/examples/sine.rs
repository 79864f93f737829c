//! Train a small LSTM to predict the next value of a noisy sine wave (many-to-one), with
//! Adam, gradient clipping and a cosine learning-rate schedule.
//!
//! Run: `cargo run --release -p recurrent --example sine`

use recurrent::nn::{visit_child, Linear, LinearConfig, Lstm, LstmConfig, Module};
use recurrent::optim::{clip_grad_norm, Adam, AdamConfig, LrScheduler, Optimizer, Schedule};
use recurrent::{Generator, Reduction, Result, Tensor};

/// Window of past values -> LSTM -> Linear on the last hidden state -> next value.
struct Forecaster {
    lstm: Lstm,
    head: Linear,
}

impl Module for Forecaster {
    fn visit_parameters(&self, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_child("lstm", &self.lstm, f);
        visit_child("head", &self.head, f);
    }
}

impl Forecaster {
    /// `x: [batch, window, 1]` -> `[batch]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, (h_n, _)) = self.lstm.forward(x, None)?;
        let last = h_n.select(0, h_n.shape()[0] - 1)?;
        self.head.forward(&last)?.squeeze(1)
    }
}

fn batch(g: &mut Generator, n: usize, window: usize) -> Result<(Tensor, Tensor)> {
    let mut xs = Vec::with_capacity(n * window);
    let mut ys = Vec::with_capacity(n);
    for _ in 0..n {
        let phase = g.uniform_f32() * std::f32::consts::TAU;
        let val = |t: usize| (phase + t as f32 * 0.3).sin();
        for t in 0..window {
            xs.push(val(t) + 0.02 * g.normal() as f32);
        }
        ys.push(val(window));
    }
    Ok((
        Tensor::from_vec(xs, &[n, window, 1])?,
        Tensor::from_vec(ys, &[n])?,
    ))
}

fn main() -> Result<()> {
    recurrent::manual_seed(0);
    let model = Forecaster {
        lstm: LstmConfig::new(1, 32)
            .with_num_layers(2)
            .with_batch_first(true)
            .init()?,
        head: LinearConfig::new(32, 1).init()?,
    };
    let steps = 300;
    let mut opt = Adam::new(model.parameters(), AdamConfig::adam().with_lr(1e-2))?;
    let mut sched = LrScheduler::new(
        Schedule::Cosine {
            t_max: steps,
            eta_min: 1e-4,
        },
        &mut opt,
    )?;
    let mut g = Generator::new(1);
    let (x_test, y_test) = batch(&mut Generator::new(99), 256, 20)?;
    for step in 0..=steps {
        let (x, y) = batch(&mut g, 64, 20)?;
        opt.zero_grad();
        let loss = model.forward(&x)?.mse_loss(&y, Reduction::Mean)?;
        loss.backward()?;
        clip_grad_norm(opt.params(), 1.0, 2.0, true)?;
        opt.step()?;
        sched.step(&mut opt);
        if step % 50 == 0 {
            let _ng = recurrent::no_grad();
            let test = model
                .forward(&x_test)?
                .mse_loss(&y_test, Reduction::Mean)?
                .item()?;
            println!(
                "step {step:4}  train mse {:.5}  test mse {test:.5}",
                loss.item()?
            );
        }
    }
    let _ng = recurrent::no_grad();
    let test = model
        .forward(&x_test)?
        .mse_loss(&y_test, Reduction::Mean)?
        .item()?;
    assert!(
        test < 0.01,
        "the model should have learned the sine wave (test mse {test})"
    );
    Ok(())
}
