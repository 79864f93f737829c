//! The same seed gives the same bits. Alone in its test binary: it reseeds the process-wide
//! generator (as `torch.manual_seed` does), which tests running in parallel in the same
//! process would otherwise draw from between the seeding and the draws.

use recurrent::nn::{GruConfig, Module};
use recurrent::{Generator, Tensor};

#[test]
fn same_seed_same_results_bit_for_bit() {
    let run = || {
        recurrent::manual_seed(11);
        let m = GruConfig::new(3, 8)
            .with_num_layers(2)
            .with_dropout(0.5)
            .init()
            .unwrap();
        let x = Tensor::rand_uniform(&[6, 4, 3], -1.0, 1.0, &mut Generator::new(5)).unwrap();
        let (o, _) = m.forward(&x, None).unwrap();
        o.sum().unwrap().backward().unwrap();
        let mut v = o.to_vec();
        for p in m.parameters() {
            v.extend(p.grad().unwrap().to_vec());
        }
        v
    };
    assert_eq!(run(), run());
}
