#![no_main]
use libfuzzer_sys::fuzz_target;
use recurrent::nn::{LstmConfig, Module};

fuzz_target!(|data: &[u8]| {
    if let Ok(sd) = recurrent::io::load_safetensors_bytes(data, "fuzz") {
        for (_, t) in sd.iter() {
            assert_eq!(t.numel(), t.shape().iter().product::<usize>());
        }
        let m = LstmConfig::new(3, 4)
            .init_with(&mut recurrent::Generator::new(0))
            .unwrap();
        let _ = m.load_state_dict(&sd, true);
    }
});
