//! Property tests of the recurrent modules, and dropout's behaviour.

use proptest::prelude::*;
use recurrent::io::{load_safetensors_bytes, safetensors_bytes};
use recurrent::nn::{
    pack_padded_sequence, pack_sequence, pad_packed_sequence, CellConfig, GruConfig, LstmConfig,
    Module, RnnConfig,
};
use recurrent::{Generator, Tensor};

fn rand(shape: &[usize], g: &mut Generator) -> Tensor {
    Tensor::rand_uniform(shape, -1.0, 1.0, g).unwrap()
}

fn close(a: &Tensor, b: &Tensor, tol: f32) -> bool {
    a.shape() == b.shape()
        && a.to_vec()
            .iter()
            .zip(b.to_vec())
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Tanh,
    Lstm,
    Gru,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Tanh), Just(Kind::Lstm), Just(Kind::Gru)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A cell stepped T times computes what the one-layer module computes over T steps.
    #[test]
    fn cell_stepped_equals_layer(k in kind(), t in 1usize..6, b in 1usize..5, i in 1usize..5, h in 1usize..6, seed in 0u64..1000) {
        let mut g = Generator::new(seed);
        let x = rand(&[t, b, i], &mut g);
        let cfg = CellConfig::new(i, h);
        let (layer_out, cell_outs): (Tensor, Vec<Tensor>) = match k {
            Kind::Lstm => {
                let cell = cfg.lstm_with(&mut g).unwrap();
                let layer = LstmConfig::new(i, h).init_with(&mut g).unwrap();
                layer.load_state_dict(&rename(&cell.state_dict()), true).unwrap();
                let (out, _) = layer.forward(&x, None).unwrap();
                let mut state: Option<(Tensor, Tensor)> = None;
                let mut outs = Vec::new();
                for s in 0..t {
                    let xs = x.select(0, s).unwrap();
                    let (hh, cc) = cell.forward(&xs, state.as_ref().map(|(a, c)| (a, c))).unwrap();
                    outs.push(hh.clone());
                    state = Some((hh, cc));
                }
                (out, outs)
            }
            Kind::Gru | Kind::Tanh => {
                let is_gru = matches!(k, Kind::Gru);
                let mut outs = Vec::new();
                let mut state: Option<Tensor> = None;
                let out = if is_gru {
                    let cell = cfg.gru_with(&mut g).unwrap();
                    let layer = GruConfig::new(i, h).init_with(&mut g).unwrap();
                    layer.load_state_dict(&rename(&cell.state_dict()), true).unwrap();
                    for s in 0..t {
                        let hh = cell.forward(&x.select(0, s).unwrap(), state.as_ref()).unwrap();
                        outs.push(hh.clone());
                        state = Some(hh);
                    }
                    layer.forward(&x, None).unwrap().0
                } else {
                    let cell = cfg.rnn_with(&mut g).unwrap();
                    let layer = RnnConfig::new(i, h).init_with(&mut g).unwrap();
                    layer.load_state_dict(&rename(&cell.state_dict()), true).unwrap();
                    for s in 0..t {
                        let hh = cell.forward(&x.select(0, s).unwrap(), state.as_ref()).unwrap();
                        outs.push(hh.clone());
                        state = Some(hh);
                    }
                    layer.forward(&x, None).unwrap().0
                };
                (out, outs)
            }
        };
        let stacked = Tensor::stack(&cell_outs, 0).unwrap();
        prop_assert!(close(&stacked, &layer_out, 1e-6));
    }

    /// A packed batch gives, for every sequence, what that sequence gives run alone.
    #[test]
    fn packed_equals_each_sequence_alone(k in kind(), lens in prop::collection::vec(1usize..7, 1..5), bidir in any::<bool>(), seed in 0u64..1000) {
        let mut g = Generator::new(seed);
        let (i, h) = (3, 4);
        let seqs: Vec<Tensor> = lens.iter().map(|&l| rand(&[l, i], &mut g)).collect();
        let packed = pack_sequence(&seqs, false).unwrap();
        let run = |x: &recurrent::nn::PackedSequence| -> (Tensor, Tensor) {
            match k {
                Kind::Lstm => {
                    let m = LstmConfig::new(i, h).with_bidirectional(bidir).with_num_layers(2).init_with(&mut Generator::new(seed)).unwrap();
                    let (o, (hn, _)) = m.forward_packed(x, None).unwrap();
                    (pad_packed_sequence(&o, true, 0.0, None).unwrap().0, hn)
                }
                Kind::Gru => {
                    let m = GruConfig::new(i, h).with_bidirectional(bidir).with_num_layers(2).init_with(&mut Generator::new(seed)).unwrap();
                    let (o, hn) = m.forward_packed(x, None).unwrap();
                    (pad_packed_sequence(&o, true, 0.0, None).unwrap().0, hn)
                }
                Kind::Tanh => {
                    let m = RnnConfig::new(i, h).with_bidirectional(bidir).with_num_layers(2).init_with(&mut Generator::new(seed)).unwrap();
                    let (o, hn) = m.forward_packed(x, None).unwrap();
                    (pad_packed_sequence(&o, true, 0.0, None).unwrap().0, hn)
                }
            }
        };
        let (all_out, all_h) = run(&packed);
        for (b, s) in seqs.iter().enumerate() {
            let alone = pack_sequence(std::slice::from_ref(s), true).unwrap();
            let (o, hn) = run(&alone);
            let l = lens[b];
            let mine = all_out.select(0, b).unwrap().narrow(0, 0, l).unwrap();
            prop_assert!(close(&mine, &o.select(0, 0).unwrap(), 1e-5), "sequence {b}");
            // padding positions of the batch output are exactly zero
            if l < all_out.shape()[1] {
                let pad = all_out.select(0, b).unwrap().narrow(0, l, all_out.shape()[1] - l).unwrap();
                prop_assert!(pad.to_vec().iter().all(|&v| v == 0.0));
            }
            prop_assert!(close(&all_h.select(1, b).unwrap(), &hn.select(1, 0).unwrap(), 1e-5));
        }
    }

    /// The reverse direction of a bidirectional layer computes the forward recurrence of its own
    /// weights on the time-reversed sequence.
    #[test]
    fn reverse_direction_is_forward_on_reversed_input(t in 1usize..7, b in 1usize..4, seed in 0u64..1000) {
        let mut g = Generator::new(seed);
        let (i, h) = (2, 3);
        let x = rand(&[t, b, i], &mut g);
        let bi = LstmConfig::new(i, h).with_bidirectional(true).init_with(&mut g).unwrap();
        let uni = LstmConfig::new(i, h).init_with(&mut g).unwrap();
        let sd = bi.state_dict();
        let rev: recurrent::nn::StateDict = sd
            .iter()
            .filter_map(|(n, t)| n.strip_suffix("_reverse").map(|s| (s.to_string(), t.clone())))
            .collect();
        uni.load_state_dict(&rev, true).unwrap();
        let (out, (hn, _)) = bi.forward(&x, None).unwrap();
        let idx: Vec<usize> = (0..t).rev().collect();
        let (out_r, (hn_r, _)) = uni.forward(&x.index_select(0, &idx).unwrap(), None).unwrap();
        let bwd_half = out.narrow(2, h, h).unwrap();
        prop_assert!(close(&bwd_half, &out_r.index_select(0, &idx).unwrap(), 1e-6));
        prop_assert!(close(&hn.select(0, 1).unwrap(), &hn_r.select(0, 0).unwrap(), 1e-6));
    }

    /// Saving and loading a state dict is the identity.
    #[test]
    fn state_dict_round_trip(layers in 1usize..4, bidir in any::<bool>(), proj in 0usize..3, seed in 0u64..1000) {
        let mut g = Generator::new(seed);
        let a = LstmConfig::new(3, 4).with_num_layers(layers).with_bidirectional(bidir).with_proj_size(proj).init_with(&mut g).unwrap();
        let b = LstmConfig::new(3, 4).with_num_layers(layers).with_bidirectional(bidir).with_proj_size(proj).init_with(&mut g).unwrap();
        let bytes = safetensors_bytes(&a.state_dict(), None).unwrap();
        b.load_state_dict(&load_safetensors_bytes(&bytes, "mem").unwrap(), true).unwrap();
        for ((na, ta), (nb, tb)) in a.named_parameters().into_iter().zip(b.named_parameters()) {
            prop_assert_eq!(na, nb);
            prop_assert_eq!(ta.to_vec(), tb.to_vec());
        }
    }

}

/// Shapes: random ones, and ones near the valid shapes (`[T, B, 3]` and `[L, B, 4]`, with
/// zeros), so that both answers are exercised.
fn shape(last: usize) -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        prop::collection::vec(0usize..5, 0..5),
        (0usize..4, 0usize..4).prop_map(move |(a, b)| vec![a, b, last]),
        (0usize..4).prop_map(move |a| vec![a, last]),
        (0usize..4, 0usize..4).prop_map(move |(a, b)| vec![a.min(2), b, last + 1]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every shape gives what PyTorch gives: the output when the shapes are valid, an error
    /// when they are not (never a panic). The validity oracles below restate torch.nn's rules.
    #[test]
    fn wrong_shapes_are_errors(dims in shape(3), hdims in prop_oneof![shape(4), (1usize..3, 0usize..4).prop_map(|(l, b)| vec![l, b, 4])], bf in any::<bool>(), seed in 0u64..100) {
        let mut g = Generator::new(seed);
        let lstm = LstmConfig::new(3, 4).with_batch_first(bf).with_num_layers(2).init_with(&mut g).unwrap();
        let gru = GruConfig::new(3, 4).with_batch_first(bf).init_with(&mut g).unwrap();
        let cell = CellConfig::new(3, 4).gru_with(&mut g).unwrap();
        let x = Tensor::zeros(&dims).unwrap();
        let hx = Tensor::zeros(&hdims).unwrap();

        let r = lstm.forward(&x, Some((&hx, &hx)));
        let want = layer_output(&dims, Some(&hdims), bf, 2);
        prop_assert_eq!(r.as_ref().ok().map(|(o, _)| o.shape().to_vec()), want.clone(), "LSTM {:?} hx {:?}: {:?}", dims, hdims, r.as_ref().err());
        let r = lstm.forward(&x, None);
        prop_assert_eq!(r.as_ref().ok().map(|(o, _)| o.shape().to_vec()), layer_output(&dims, None, bf, 2), "LSTM {:?}: {:?}", dims, r.as_ref().err());
        let r = gru.forward(&x, Some(&hx));
        prop_assert_eq!(r.as_ref().ok().map(|(o, _)| o.shape().to_vec()), layer_output(&dims, Some(&hdims), bf, 1), "GRU {:?} hx {:?}: {:?}", dims, hdims, r.as_ref().err());
        let r = cell.forward(&x, Some(&hx));
        prop_assert_eq!(r.as_ref().ok().map(|o| o.shape().to_vec()), cell_output(&dims, Some(&hdims)), "GRUCell {:?} hx {:?}: {:?}", dims, hdims, r.as_ref().err());
        let r = cell.forward(&x, None);
        prop_assert_eq!(r.as_ref().ok().map(|o| o.shape().to_vec()), cell_output(&dims, None), "GRUCell {:?}: {:?}", dims, r.as_ref().err());
        // Lengths taken from the shape itself: valid only when they fit.
        let lens: Vec<usize> = dims.to_vec();
        let r = pack_padded_sequence(&x, &lens, bf, false);
        prop_assert_eq!(r.is_ok(), packable(&dims, &lens, bf), "pack {:?} lengths {:?}: {:?}", dims, lens, r.as_ref().err());
    }
}

/// The output shape torch.nn gives for an input of `dims` and hidden state of `hdims` (when
/// given) in a one-direction layer stack of hidden size 4 and input size 3, or `None` where
/// it raises.
fn layer_output(
    dims: &[usize],
    hdims: Option<&[usize]>,
    bf: bool,
    layers: usize,
) -> Option<Vec<usize>> {
    let batched = match dims.len() {
        3 => true,
        2 => false,
        _ => return None,
    };
    if dims[dims.len() - 1] != 3 {
        return None;
    }
    let (t, b) = match (batched, bf) {
        (true, true) => (dims[1], dims[0]),
        (true, false) => (dims[0], dims[1]),
        (false, _) => (dims[0], 1),
    };
    if let Some(h) = hdims {
        let want: Vec<usize> = if batched {
            vec![layers, b, 4]
        } else {
            vec![layers, 4]
        };
        if h != want.as_slice() {
            return None;
        }
    }
    if t == 0 {
        return None;
    }
    Some(match (batched, bf) {
        (true, true) => vec![b, t, 4],
        (true, false) => vec![t, b, 4],
        (false, _) => vec![t, 4],
    })
}

/// The output shape of `GRUCell(3, 4)` for an input of `dims` and a state of `hdims`.
fn cell_output(dims: &[usize], hdims: Option<&[usize]>) -> Option<Vec<usize>> {
    let batched = match dims.len() {
        2 => true,
        1 => false,
        _ => return None,
    };
    if dims[dims.len() - 1] != 3 {
        return None;
    }
    let out: Vec<usize> = if batched { vec![dims[0], 4] } else { vec![4] };
    match hdims {
        Some(h) if h != out.as_slice() => None,
        _ => Some(out),
    }
}

/// Whether `pack_padded_sequence` accepts a padded batch of `dims` with these lengths: at
/// least 2-D, one length per sequence, each in `1..=T`.
fn packable(dims: &[usize], lens: &[usize], bf: bool) -> bool {
    if dims.len() < 2 {
        return false;
    }
    let (t, b) = if bf {
        (dims[1], dims[0])
    } else {
        (dims[0], dims[1])
    };
    b > 0 && lens.len() == b && lens.iter().all(|&l| (1..=t).contains(&l))
}

/// Cell parameter names → layer-0 names.
fn rename(sd: &recurrent::nn::StateDict) -> recurrent::nn::StateDict {
    sd.iter()
        .map(|(n, t)| (format!("{n}_l0"), t.clone()))
        .collect()
}

#[test]
fn dropout_rate_scaling_eval_mode_and_backward_mask() {
    let mut g = Generator::new(7);
    let n = 100_000;
    let x = Tensor::ones(&[n]).unwrap().requires_grad();
    let p = 0.3f32;
    let y = x.dropout(p, true, &mut g).unwrap();
    let v = y.to_vec();
    let dropped = v.iter().filter(|&&a| a == 0.0).count() as f64 / n as f64;
    // binomial standard deviation is ~0.0014: 5 sigma
    assert!((dropped - 0.3).abs() < 0.0075, "drop rate {dropped}");
    let scale = 1.0 / (1.0 - p);
    assert!(v.iter().all(|&a| a == 0.0 || (a - scale).abs() < 1e-6));
    // backward uses the same mask
    y.sum().unwrap().backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec(), v);
    // evaluation: identity
    assert_eq!(x.dropout(p, false, &mut g).unwrap().to_vec(), vec![1.0; n]);
    // p = 1: everything dropped; p outside [0, 1]: error
    assert!(x
        .dropout(1.0, true, &mut g)
        .unwrap()
        .to_vec()
        .iter()
        .all(|&a| a == 0.0));
    assert!(x.dropout(1.5, true, &mut g).is_err());
    assert!(recurrent::nn::Dropout::new(-0.1).is_err());
}

#[test]
fn rnn_dropout_is_between_layers_only_and_only_in_training() {
    let mut g = Generator::new(3);
    let x = rand(&[4, 2, 3], &mut g);
    // dropout = 1: everything between the two layers is dropped in training.
    let mut m = LstmConfig::new(3, 5)
        .with_num_layers(2)
        .with_dropout(1.0)
        .init_with(&mut g)
        .unwrap();
    let (out_train, _) = m.forward(&x, None).unwrap();
    // The last layer's output is not dropped: it is what layer 1 computes from zeros.
    let top = LstmConfig::new(5, 5).init_with(&mut g).unwrap();
    let layer1: recurrent::nn::StateDict = m
        .state_dict()
        .iter()
        .filter_map(|(n, t)| {
            n.strip_suffix("_l1")
                .map(|s| (format!("{s}_l0"), t.clone()))
        })
        .collect();
    top.load_state_dict(&layer1, true).unwrap();
    let (from_zeros, _) = top
        .forward(&Tensor::zeros(&[4, 2, 5]).unwrap(), None)
        .unwrap();
    assert!(close(&out_train, &from_zeros, 1e-6));
    assert!(out_train.to_vec().iter().all(|&v| v != 0.0));
    // Evaluation: no dropout at all.
    m.set_training(false);
    let (a, _) = m.forward(&x, None).unwrap();
    let (b, _) = m.forward(&x, None).unwrap();
    assert_eq!(a.to_vec(), b.to_vec());
    assert!(!close(&a, &from_zeros, 1e-3));
}

#[test]
fn inference_mode_records_nothing() {
    let m = LstmConfig::new(3, 4).init().unwrap();
    let x = Tensor::zeros(&[5, 2, 3]).unwrap();
    let _g = recurrent::no_grad();
    let (out, (h, c)) = m.forward(&x, None).unwrap();
    assert!(!out.requires_grad_flag() && !h.requires_grad_flag() && !c.requires_grad_flag());
    assert!(out.grad_fn_name().is_none());
}

#[test]
fn variational_masks_are_per_sequence_and_off_in_evaluation() {
    use recurrent::rnn::Steps;
    let steps = Steps::new(&[3, 2, 2, 1]).unwrap();
    let m = recurrent::nn::sequence_mask(
        &steps,
        4,
        0.5,
        &mut Generator::new(1),
        recurrent::Device::Cpu,
    )
    .unwrap();
    assert_eq!(m.shape(), &[steps.total(), 4]);
    let m = m.to_vec();
    // Sequence r's mask row is the same at every step it runs.
    for t in 1..4 {
        for r in 0..steps.batch_size(t) {
            let at = |t: usize| &m[(steps.offset(t) + r) * 4..(steps.offset(t) + r + 1) * 4];
            assert_eq!(at(t), at(0));
        }
    }
    let mut g = Generator::new(2);
    let x = rand(&[6, 3, 4], &mut g);
    let plain = LstmConfig::new(4, 5)
        .with_num_layers(2)
        .init_with(&mut Generator::new(9))
        .unwrap();
    let mut var = LstmConfig::new(4, 5)
        .with_num_layers(2)
        .with_variational_dropout(0.3, 0.3, 0.3)
        .with_weight_drop(0.5)
        .init_with(&mut Generator::new(9))
        .unwrap();
    // Training: different from the plain model.
    let (a, _) = var.forward(&x, None).unwrap();
    let (b, _) = plain.forward(&x, None).unwrap();
    assert!(!close(&a, &b, 1e-3));
    // Evaluation: exactly the plain model.
    var.set_training(false);
    let (a, _) = var.forward(&x, None).unwrap();
    assert_eq!(a.to_vec(), b.to_vec());
    assert!(LstmConfig::new(4, 5).with_weight_drop(1.0).init().is_err());
    assert!(GruConfig::new(4, 5)
        .with_variational_dropout(0.0, -0.1, 0.0)
        .init()
        .is_err());
}

#[test]
fn weight_drop_gradient_flows_through_the_kept_weights_only() {
    let mut g = Generator::new(4);
    let x = rand(&[5, 2, 3], &mut g);
    let m = GruConfig::new(3, 8)
        .with_weight_drop(0.5)
        .init_with(&mut g)
        .unwrap();
    let (out, _) = m.forward(&x, None).unwrap();
    out.sum().unwrap().backward().unwrap();
    let w_hh = m
        .named_parameters()
        .into_iter()
        .find(|(n, _)| n == "weight_hh_l0")
        .unwrap()
        .1;
    let grad = w_hh.grad().unwrap().to_vec();
    let zeros = grad.iter().filter(|&&v| v == 0.0).count() as f64 / grad.len() as f64;
    assert!(
        (0.35..0.65).contains(&zeros),
        "fraction of dropped weights {zeros}"
    );
    // The input weights are not dropped.
    let w_ih = m
        .named_parameters()
        .into_iter()
        .find(|(n, _)| n == "weight_ih_l0")
        .unwrap()
        .1;
    assert!(
        w_ih.grad()
            .unwrap()
            .to_vec()
            .iter()
            .filter(|&&v| v == 0.0)
            .count()
            < 5
    );
}

#[test]
fn padding_and_unpacking_utilities() {
    use recurrent::nn::{pad_sequence, unpack_sequence, unpad_sequence, PaddingSide};
    let a = Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[3, 2]).unwrap();
    let b = Tensor::from_vec(vec![7., 8.], &[1, 2]).unwrap();
    // Right padding, time-major: [T=3, B=2, 2].
    let p = pad_sequence(&[a.clone(), b.clone()], false, -1.0, PaddingSide::Right).unwrap();
    assert_eq!(p.shape(), &[3, 2, 2]);
    assert_eq!(
        p.to_vec(),
        vec![1., 2., 7., 8., 3., 4., -1., -1., 5., 6., -1., -1.]
    );
    // Left padding, batch-first: [B=2, T=3, 2].
    let l = pad_sequence(&[a.clone(), b.clone()], true, 0.0, PaddingSide::Left).unwrap();
    assert_eq!(
        l.to_vec(),
        vec![1., 2., 3., 4., 5., 6., 0., 0., 0., 0., 7., 8.]
    );
    // unpad_sequence inverts pad_sequence.
    let back = unpad_sequence(&p, &[3, 1], false).unwrap();
    assert_eq!(
        (back[0].to_vec(), back[1].to_vec()),
        (a.to_vec(), b.to_vec())
    );
    // unpack_sequence inverts pack_sequence, in the caller's order (unsorted here).
    let packed = pack_sequence(&[b.clone(), a.clone()], false).unwrap();
    assert_eq!(packed.sorted_indices.as_deref(), Some(&[1, 0][..]));
    assert_eq!(packed.lengths(), vec![1, 3]);
    let un = unpack_sequence(&packed).unwrap();
    assert_eq!((un[0].to_vec(), un[1].to_vec()), (b.to_vec(), a.to_vec()));
    // pad_packed_sequence with total_length pads further.
    let (padded, lens) = pad_packed_sequence(&packed, true, 0.0, Some(5)).unwrap();
    assert_eq!((padded.shape(), lens), (&[2, 5, 2][..], vec![1, 3]));
    assert!(pad_sequence(&[], false, 0.0, PaddingSide::Right).is_err());
    assert!(pad_sequence(
        &[a, Tensor::zeros(&[2, 3]).unwrap()],
        false,
        0.0,
        PaddingSide::Right
    )
    .is_err());
}
