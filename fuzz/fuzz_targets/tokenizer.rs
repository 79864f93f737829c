#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        for t in recurrent_data::tokenizer::basic_english(s) {
            assert!(!t.is_empty());
        }
        let _ = recurrent_data::tokenizer::Tokenizer::Char.tokenize(s);
        let _ = recurrent_data::tsv::parse(s, "fuzz");
    }
});
