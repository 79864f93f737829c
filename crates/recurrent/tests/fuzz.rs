//! Bounded fuzzing of the safetensors / state-dict loader (see `fuzz/` for the unbounded
//! cargo-fuzz target): arbitrary and mutated files give an error or a consistent state dict;
//! loading them into a model never panics and never half-loads.

use proptest::prelude::*;
use recurrent::io::{load_safetensors_bytes, safetensors_bytes};
use recurrent::nn::{LstmConfig, Module};

fn valid() -> Vec<u8> {
    let m = LstmConfig::new(3, 4)
        .with_num_layers(2)
        .init_with(&mut recurrent::Generator::new(1))
        .unwrap();
    safetensors_bytes(&m.state_dict(), None).unwrap()
}

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(sd) = load_safetensors_bytes(bytes, "fuzz") {
        for (_, t) in sd.iter() {
            prop_assert_eq!(t.numel(), t.shape().iter().product::<usize>());
        }
        let m = LstmConfig::new(3, 4)
            .with_num_layers(2)
            .init_with(&mut recurrent::Generator::new(2))
            .unwrap();
        let before = m.state_dict();
        if m.load_state_dict(&sd, true).is_err() {
            // Nothing was loaded.
            for ((_, a), (_, b)) in before.iter().zip(m.state_dict().iter()) {
                prop_assert_eq!(a.to_vec(), b.to_vec());
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes)?;
    }

    #[test]
    fn mutated_files(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let mut b = valid();
        for (i, v) in edits {
            let k = i.index(b.len());
            b[k] = v;
        }
        let n = cut.index(b.len() + 1).max(b.len() / 2);
        check(&b[..n])?;
    }

    /// A header that claims huge tensors or offsets past the end.
    #[test]
    fn lying_headers(dim in 1u64..u64::MAX / 4, off in 0u64..u64::MAX / 2) {
        let header = format!(r#"{{"w":{{"dtype":"F32","shape":[{dim},{dim}],"data_offsets":[0,{off}]}}}}"#);
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(&[0u8; 64]);
        prop_assert!(load_safetensors_bytes(&b, "fuzz").is_err() || (dim * dim * 4 == off && off <= 64));
    }
}
