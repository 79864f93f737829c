//! Bounded fuzzing of the data parsers with proptest (the cargo-fuzz targets in `fuzz/` run
//! the same entry points without a bound): arbitrary and mutated inputs never panic, hang or
//! allocate without bound; they give a value or an error.

use proptest::prelude::*;
use recurrent_data::imdb::{read_tar, ReadOptions};
use recurrent_data::tokenizer::{basic_english, is_py_space, Tokenizer};
use recurrent_data::vocab::Vocab;
use std::path::PathBuf;

fn mini_tar() -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/imdb-mini/aclImdb_v1.tar.gz");
    let gz = std::fs::read(p).unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn tokenizers_never_panic(s in any::<String>()) {
        for t in basic_english(&s) {
            prop_assert!(!t.is_empty() && !t.chars().any(is_py_space));
        }
        prop_assert_eq!(Tokenizer::Char.tokenize(&s).len(), s.chars().count());
    }

    #[test]
    fn tar_reader_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = read_tar(&bytes[..], "fuzz", &ReadOptions::default());
    }

    #[test]
    fn vocab_and_tsv_parsers_never_panic(s in any::<String>()) {
        let _ = Vocab::from_json(&s);
        let _ = recurrent_data::tsv::parse(&s, "fuzz");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Flip, overwrite or cut a real archive: an error or a corpus, never a panic.
    #[test]
    fn tar_reader_survives_mutations(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..20), cut in any::<prop::sample::Index>()) {
        let mut t = mini_tar();
        for (i, b) in edits {
            let k = i.index(t.len());
            t[k] = b;
        }
        let n = cut.index(t.len() + 1);
        let _ = read_tar(&t[..n], "fuzz", &ReadOptions::default());
    }
}
