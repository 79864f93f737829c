//! Bad input gives a clear error (in PyTorch's words where PyTorch has them), never a panic.

use recurrent::io::load_safetensors_bytes;
use recurrent::nn::{
    pack_padded_sequence, pad_packed_sequence, CellConfig, EmbeddingConfig, GruConfig, LstmConfig,
    Nonlinearity, RnnConfig,
};
use recurrent::optim::{Adam, AdamConfig, Sgd, SgdConfig};
use recurrent::Tensor;

fn err<T: std::fmt::Debug>(r: recurrent::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn construction_errors() {
    assert_eq!(
        err(LstmConfig::new(3, 4).with_proj_size(4).init()),
        "proj_size has to be smaller than hidden_size"
    );
    assert!(err(LstmConfig::new(3, 4).with_dropout(1.5).init())
        .starts_with("dropout should be a number in range [0, 1]"));
    assert!(err(GruConfig::new(3, 4).with_dropout(-0.1).init()).contains("range [0, 1]"));
    assert_eq!(
        err(Nonlinearity::parse("sigmoid")),
        "Unknown nonlinearity 'sigmoid'. Select from 'tanh' or 'relu'."
    );
    assert_eq!(
        err(RnnConfig::new(0, 4).init()),
        "input_size must be greater than zero"
    );
    assert_eq!(
        err(RnnConfig::new(3, 0).init()),
        "hidden_size must be greater than zero"
    );
    assert_eq!(
        err(GruConfig::new(3, 4).with_num_layers(0).init()),
        "num_layers must be greater than zero"
    );
    assert_eq!(
        err(EmbeddingConfig::new(5, 2).with_padding_idx(5).init()),
        "Padding_idx must be within num_embeddings"
    );
    assert!(err(Sgd::new(
        vec![],
        SgdConfig {
            nesterov: true,
            ..Default::default()
        }
    ))
    .contains("Nesterov"));
    assert!(err(Adam::new(
        vec![],
        AdamConfig {
            betas: (1.0, 0.9),
            ..AdamConfig::adam()
        }
    ))
    .contains("beta parameter at index 0"));
    assert!(err(Adam::new(
        vec![],
        AdamConfig {
            lr: -1.0,
            ..AdamConfig::adam()
        }
    ))
    .contains("Invalid learning rate"));
}

#[test]
fn forward_errors() {
    let lstm = LstmConfig::new(3, 4).with_num_layers(2).init().unwrap();
    let x = Tensor::zeros(&[5, 2, 7]).unwrap();
    assert_eq!(
        err(lstm.forward(&x, None)),
        "input.size(-1) must be equal to input_size. Expected 3, got 7"
    );
    let x = Tensor::zeros(&[5, 2, 3]).unwrap();
    let h = Tensor::zeros(&[2, 2, 5]).unwrap();
    let c = Tensor::zeros(&[2, 2, 4]).unwrap();
    assert_eq!(
        err(lstm.forward(&x, Some((&h, &c)))),
        "Expected hidden[0] size (2, 2, 4), got [2, 2, 5]"
    );
    let h = Tensor::zeros(&[2, 2, 4]).unwrap();
    let c = Tensor::zeros(&[1, 2, 4]).unwrap();
    assert_eq!(
        err(lstm.forward(&x, Some((&h, &c)))),
        "Expected hidden[1] size (2, 2, 4), got [1, 2, 4]"
    );
    let h2 = Tensor::zeros(&[2, 4]).unwrap();
    assert_eq!(
        err(lstm.forward(&x, Some((&h2, &h2)))),
        "For batched 3-D input, hx and cx should also be 3-D but got (2-D, 2-D) tensors"
    );
    assert_eq!(
        err(lstm.forward(&Tensor::zeros(&[3]).unwrap(), None)),
        "LSTM: Expected input to be 2D or 3D, got 1D instead"
    );
    assert_eq!(
        err(lstm.forward(&Tensor::zeros(&[0, 2, 3]).unwrap(), None)),
        "Expected sequence length to be larger than 0 in RNN"
    );
    let gru = GruConfig::new(3, 4).init().unwrap();
    assert_eq!(
        err(gru.forward(&x, Some(&Tensor::zeros(&[1, 3, 4]).unwrap()))),
        "Expected hidden size (1, 2, 4), got [1, 3, 4]"
    );
    assert_eq!(
        err(gru.forward(
            &Tensor::zeros(&[5, 3]).unwrap(),
            Some(&Tensor::zeros(&[1, 1, 4]).unwrap())
        )),
        "For unbatched 2-D input, hx should also be 2-D but got 3-D tensor"
    );
    // An empty batch is not an error (PyTorch returns empty outputs).
    let (o, h) = gru
        .forward(&Tensor::zeros(&[5, 0, 3]).unwrap(), None)
        .unwrap();
    assert_eq!((o.shape(), h.shape()), (&[5, 0, 4][..], &[1, 0, 4][..]));
    // Cells
    let cell = CellConfig::new(2, 3).lstm().unwrap();
    assert_eq!(
        err(cell.forward(&Tensor::zeros(&[4, 5]).unwrap(), None)),
        "input has inconsistent input_size: got 5 expected 2"
    );
    let hx = Tensor::zeros(&[3, 3]).unwrap();
    assert_eq!(
        err(cell.forward(&Tensor::zeros(&[4, 2]).unwrap(), Some((&hx, &hx)))),
        "Input batch size 4 doesn't match hidden0 batch size 3"
    );
    let g = CellConfig::new(2, 3).gru().unwrap();
    assert_eq!(
        err(g.forward(
            &Tensor::zeros(&[4, 2]).unwrap(),
            Some(&Tensor::zeros(&[4, 4]).unwrap())
        )),
        "hidden0 has inconsistent hidden_size: got 4, expected 3"
    );
    assert_eq!(
        err(g.forward(&Tensor::zeros(&[1, 4, 2]).unwrap(), None)),
        "GRUCell: Expected input to be 1D or 2D, got 3D instead"
    );
}

#[test]
fn packing_errors() {
    let x = Tensor::zeros(&[4, 3, 2]).unwrap();
    assert!(err(pack_padded_sequence(&x, &[2, 4, 1], false, true))
        .starts_with("`lengths` array must be sorted in decreasing order"));
    assert_eq!(
        err(pack_padded_sequence(&x, &[4, 2, 0], false, true)),
        "Length of all samples has to be greater than 0, but found an element in 'lengths' that is <= 0"
    );
    assert_eq!(
        err(pack_padded_sequence(&x, &[5, 2, 1], false, true)),
        "a sequence length (5) exceeds the padded length of the input (4)"
    );
    assert_eq!(
        err(pack_padded_sequence(&x, &[4, 2], false, true)),
        "Expected `len(lengths)` to be equal to batch_size, but got 2 (batch_size=3)"
    );
    let p = pack_padded_sequence(&x, &[3, 3, 1], false, true).unwrap();
    assert!(err(pad_packed_sequence(&p, false, 0.0, Some(2)))
        .starts_with("Expected total_length to be at least"));
    // A packed sequence with the wrong feature size reaching an RNN.
    let lstm = LstmConfig::new(3, 4).init().unwrap();
    assert!(err(lstm.forward_packed(&p, None)).contains("Expected 3, got 2"));
}

#[test]
fn corrupt_checkpoints_are_errors() {
    for bytes in [
        &b""[..],
        b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":",
        b"garbage garbage garbage",
    ] {
        assert!(load_safetensors_bytes(bytes, "test").is_err());
    }
}
