#![no_main]
use libfuzzer_sys::fuzz_target;
use recurrent_cli::sentiment::config::SentimentConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = SentimentConfig::from_toml(s, &SentimentConfig::default());
    }
});
