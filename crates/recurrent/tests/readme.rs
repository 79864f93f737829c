//! The library example of the README, compiled and run (with the file written to a temporary
//! folder).

use recurrent::nn::{pack_padded_sequence, LstmConfig, Module};
use recurrent::optim::{Adam, AdamConfig, Optimizer};
use recurrent::Tensor;

#[test]
fn readme_library_example() -> Result<(), recurrent::Error> {
    let dir = tempfile::tempdir().unwrap();
    recurrent::manual_seed(0);
    let lstm = LstmConfig::new(8, 16)
        .with_num_layers(2)
        .with_bidirectional(true)
        .with_batch_first(true)
        .init()?;
    let x = Tensor::randn(&[4, 10, 8], 0.0, 1.0, &mut recurrent::Generator::new(1))?; // [batch, time, features]
    let packed = pack_padded_sequence(&x, &[10, 7, 7, 3], true, false)?; // lengths, batch_first, enforce_sorted
    let (out, (h_n, c_n)) = lstm.forward_packed(&packed, None)?; // h_n: [4, 4, 16] in the caller's order
    assert_eq!(h_n.shape(), &[4, 4, 16]);
    assert_eq!(c_n.shape(), &[4, 4, 16]);
    assert_eq!(out.data.shape(), &[27, 32]);
    let mut opt = Adam::new(lstm.parameters(), AdamConfig::adam())?;
    out.data.sum()?.backward()?;
    opt.step()?;
    recurrent::io::save_safetensors(
        &dir.path().join("lstm.safetensors"),
        &lstm.state_dict(),
        None,
    )?; // loads in PyTorch
    Ok(())
}
