//! The run-time `Recurrent` module and `RecurrentCell` are the typed modules with the kind
//! chosen at run time: the same parameters (names, shapes, values from the same seed), the
//! same outputs and states, and clear errors for a state of the wrong kind.

use recurrent::nn::{
    CellConfig, GruConfig, LstmConfig, Module, Nonlinearity, RecurrentCell, RecurrentConfig,
    RnnConfig, RnnMode, RnnState,
};
use recurrent::{Generator, Tensor};

fn same(a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape(), b.shape());
    assert_eq!(a.to_vec(), b.to_vec());
}

#[test]
fn recurrent_equals_the_typed_modules() {
    let x = Tensor::rand_uniform(&[5, 3, 4], -1.0, 1.0, &mut Generator::new(1)).unwrap();
    for mode in [
        RnnMode::Lstm,
        RnnMode::Gru,
        RnnMode::RnnTanh,
        RnnMode::RnnRelu,
    ] {
        let cfg = RecurrentConfig::new(mode, 4, 6)
            .with_num_layers(2)
            .with_bidirectional(true);
        let dynamic = cfg.init_with(&mut Generator::new(7)).unwrap();
        let (out, state) = dynamic.forward(&x, None).unwrap();
        let g = &mut Generator::new(7);
        let (typed_sd, want_out, want_h, want_c) = match mode {
            RnnMode::Lstm => {
                let m = LstmConfig::new(4, 6)
                    .with_num_layers(2)
                    .with_bidirectional(true)
                    .init_with(g)
                    .unwrap();
                let (o, (h, c)) = m.forward(&x, None).unwrap();
                (m.state_dict(), o, h, Some(c))
            }
            RnnMode::Gru => {
                let m = GruConfig::new(4, 6)
                    .with_num_layers(2)
                    .with_bidirectional(true)
                    .init_with(g)
                    .unwrap();
                let (o, h) = m.forward(&x, None).unwrap();
                (m.state_dict(), o, h, None)
            }
            _ => {
                let n = if mode == RnnMode::RnnRelu {
                    Nonlinearity::Relu
                } else {
                    Nonlinearity::Tanh
                };
                let m = RnnConfig::new(4, 6)
                    .with_num_layers(2)
                    .with_bidirectional(true)
                    .with_nonlinearity(n)
                    .init_with(g)
                    .unwrap();
                let (o, h) = m.forward(&x, None).unwrap();
                (m.state_dict(), o, h, None)
            }
        };
        let sd = dynamic.state_dict();
        assert_eq!(sd.len(), typed_sd.len(), "{mode:?}");
        for ((na, a), (nb, b)) in sd.iter().zip(typed_sd.iter()) {
            assert_eq!(na, nb);
            same(a, b);
        }
        same(&out, &want_out);
        same(state.h(), &want_h);
        match (state.c(), want_c) {
            (Some(c), Some(w)) => same(c, &w),
            (None, None) => {}
            other => panic!("{mode:?}: cell state {other:?}"),
        }
        // the state of the wrong kind is an error
        let wrong = match mode {
            RnnMode::Lstm => RnnState::H(want_h.clone()),
            _ => RnnState::HC(want_h.clone(), want_h.clone()),
        };
        let e = dynamic.forward(&x, Some(&wrong)).unwrap_err().to_string();
        assert!(e.contains("RnnState"), "{e}");
    }
}

#[test]
fn recurrent_cell_equals_the_typed_cells() {
    let x = Tensor::rand_uniform(&[3, 4], -1.0, 1.0, &mut Generator::new(2)).unwrap();
    let cfg = CellConfig::new(4, 5);
    let lstm = cfg.lstm_with(&mut Generator::new(3)).unwrap();
    let dynamic = RecurrentCell::new_with(RnnMode::Lstm, &cfg, &mut Generator::new(3)).unwrap();
    let (h, c) = lstm.forward(&x, None).unwrap();
    let s = dynamic.forward(&x, None).unwrap();
    same(s.h(), &h);
    same(s.c().unwrap(), &c);
    let relu = cfg
        .with_nonlinearity(Nonlinearity::Relu)
        .rnn_with(&mut Generator::new(4))
        .unwrap();
    let dynamic = RecurrentCell::new_with(RnnMode::RnnRelu, &cfg, &mut Generator::new(4)).unwrap();
    same(
        dynamic.forward(&x, None).unwrap().h(),
        &relu.forward(&x, None).unwrap(),
    );
    assert_eq!(dynamic.mode(), RnnMode::RnnRelu);
    assert!(dynamic
        .forward(&x, Some(&RnnState::HC(h.clone(), c.clone())))
        .is_err());
}
