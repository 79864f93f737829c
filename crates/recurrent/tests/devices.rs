//! The device conformance suite: the same cases run on every device this build can use
//! ([`Device::available`]: the CPU today), each compared with the CPU's results. A backend that
//! plugs in is checked by these cases without new test code; a device this build cannot use
//! is a clear error wherever it is asked for.

use recurrent::nn::{
    pack_padded_sequence, CellConfig, EmbeddingConfig, LinearConfig, Module, RecurrentCell,
    RecurrentConfig, RnnMode, RnnState,
};
use recurrent::optim::{clip_grad_norm, Adam, AdamConfig, Optimizer};
use recurrent::{Device, Generator, Result, Tensor};

/// `#[test]`s that run their body once per available device (`$dev`), as `Result`.
macro_rules! on_every_device {
    ($(fn $name:ident($dev:ident) $body:block)*) => {$(
        #[test]
        fn $name() {
            let devices = Device::available();
            assert!(devices.contains(&Device::Cpu));
            for $dev in devices {
                let run = || -> Result<()> { $body };
                if let Err(e) = run() {
                    panic!("{} on {}: {e}", stringify!($name), $dev);
                }
            }
        }
    )*};
}

fn input(shape: &[usize], seed: u64, dev: Device) -> Result<Tensor> {
    Tensor::rand_uniform(shape, -1.0, 1.0, &mut Generator::new(seed))?.to_device(dev)
}

fn close(a: &Tensor, b: &Tensor) -> bool {
    a.shape() == b.shape()
        && a.to_vec()
            .iter()
            .zip(b.to_vec())
            .all(|(x, y)| (x - y).abs() <= 1e-6 * (1.0 + y.abs()))
}

/// Forward and backward of a model on `dev`: the output, and every parameter's gradient.
fn lstm_round(dev: Device, mode: RnnMode) -> Result<(Tensor, Vec<Tensor>)> {
    let m = RecurrentConfig::new(mode, 4, 6)
        .with_num_layers(2)
        .with_bidirectional(true)
        .with_device(dev)
        .init_with(&mut Generator::new(3))?;
    let x = input(&[5, 3, 4], 4, dev)?;
    let packed = pack_padded_sequence(&x, &[5, 4, 2], false, true)?;
    let (out, state) = m.forward_packed(&packed, None)?;
    out.data.sum()?.add(&state.h().sum()?)?.backward()?;
    let grads = m
        .parameters()
        .iter()
        .map(|p| p.grad().expect("every parameter has a gradient"))
        .collect();
    Ok((out.data, grads))
}

on_every_device! {
    fn recurrent_layers_match_the_cpu(dev) {
        for mode in [RnnMode::Lstm, RnnMode::Gru, RnnMode::RnnTanh, RnnMode::RnnRelu] {
            let (out, grads) = lstm_round(dev, mode)?;
            let (want, want_grads) = lstm_round(Device::Cpu, mode)?;
            assert_eq!(out.device(), dev);
            assert!(close(&out, &want), "{mode:?} output");
            for (g, w) in grads.iter().zip(&want_grads) {
                assert_eq!(g.device(), dev);
                assert!(close(g, w), "{mode:?} gradient");
            }
        }
        Ok(())
    }

    fn cells_match_the_cpu(dev) {
        let cfg = CellConfig::new(3, 4).with_device(dev);
        let cell = RecurrentCell::new_with(RnnMode::Lstm, &cfg, &mut Generator::new(5))?;
        let cpu = RecurrentCell::new_with(RnnMode::Lstm, &CellConfig::new(3, 4), &mut Generator::new(5))?;
        let x = input(&[2, 3], 6, dev)?;
        let s = cell.forward(&x, None)?;
        let w = cpu.forward(&x.to_device(Device::Cpu)?, None)?;
        assert!(matches!(s, RnnState::HC(..)));
        assert!(close(s.h(), w.h()) && close(s.c().unwrap(), w.c().unwrap()));
        Ok(())
    }

    fn a_training_step_runs_where_the_parameters_are(dev) {
        let step = |dev: Device| -> Result<Vec<Vec<f32>>> {
            let emb = EmbeddingConfig::new(10, 4).with_device(dev).init_with(&mut Generator::new(1))?;
            let rnn = RecurrentConfig::new(RnnMode::Gru, 4, 5)
                .with_dropout(0.0)
                .with_device(dev)
                .init_with(&mut Generator::new(2))?;
            let fc = LinearConfig::new(5, 1).with_device(dev).init_with(&mut Generator::new(3))?;
            let mut params = emb.parameters();
            params.extend(rnn.parameters());
            params.extend(fc.parameters());
            let mut opt = Adam::new(params.clone(), AdamConfig::adamw())?;
            for _ in 0..3 {
                opt.zero_grad();
                let x = emb.forward(&[1, 2, 3, 4, 5, 6], &[3, 2])?;
                let (out, _) = rnn.forward(&x, None)?;
                let loss = fc.forward(&out)?.sum()?;
                loss.backward()?;
                clip_grad_norm(opt.params(), 1.0, 2.0, true)?;
                opt.step()?;
            }
            Ok(params.iter().map(Tensor::to_vec).collect())
        };
        let got = step(dev)?;
        let want = step(Device::Cpu)?;
        assert_eq!(got, want);
        Ok(())
    }

    fn dropout_masks_are_tensors_on_the_device(dev) {
        let m = recurrent::ops::dropout::dropout_mask(&[4, 5], 0.5, &mut Generator::new(7), dev)?;
        assert_eq!((m.device(), m.shape()), (dev, &[4usize, 5][..]));
        let x = input(&[4, 5], 8, dev)?.requires_grad();
        let y = x.mul_mask(&m)?;
        y.sum()?.backward()?;
        assert_eq!(x.grad().unwrap().to_vec(), m.to_vec());
        Ok(())
    }
}

/// Asking for a device this build cannot use is an error that says so, at every door.
#[test]
fn an_unavailable_device_is_a_clear_error() {
    let cuda = Device::Cuda(0);
    if Device::available().contains(&cuda) {
        return; // a build with a working CUDA backend: nothing to refuse
    }
    let says = |r: Result<()>| {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("cuda:0") && e.contains("CUDA backend"), "{e}");
    };
    says(Tensor::zeros(&[2]).unwrap().to_device(cuda).map(drop));
    says(
        RecurrentConfig::new(RnnMode::Lstm, 3, 4)
            .with_device(cuda)
            .init()
            .map(drop),
    );
    says(LinearConfig::new(3, 4).with_device(cuda).init().map(drop));
    says(
        EmbeddingConfig::new(3, 4)
            .with_device(cuda)
            .init()
            .map(drop),
    );
    says(RecurrentCell::new(RnnMode::Gru, &CellConfig::new(3, 4).with_device(cuda)).map(drop));
    says(recurrent::ops::dropout::dropout_mask(&[2], 0.5, &mut Generator::new(1), cuda).map(drop));
}
