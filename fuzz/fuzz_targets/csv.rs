#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = recurrent_cli::forecast::parse_series(s, "Value", std::path::Path::new("fuzz.csv"));
        let _ = recurrent_cli::forecast::parse_series(s, "1", std::path::Path::new("fuzz.csv"));
    }
});
