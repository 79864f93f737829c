#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(v) = recurrent_data::vocab::Vocab::from_json(s) {
            assert_eq!(v.index("<pad>"), 1);
        }
    }
});
