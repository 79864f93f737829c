//! Bounded fuzzing of the configuration (TOML) and time-series (CSV) parsers: never a panic.

use proptest::prelude::*;
use recurrent_cli::sentiment::config::SentimentConfig;
use std::path::Path;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn config_and_csv_parsers_never_panic(s in any::<String>(), col in "[A-Za-z0-9]{0,6}") {
        let _ = SentimentConfig::from_toml(&s, &SentimentConfig::default());
        let _ = recurrent_cli::forecast::parse_series(&s, &col, Path::new("fuzz.csv"));
    }

    #[test]
    fn config_values_of_the_wrong_kind_are_errors(key in "[a-z_]{1,16}", v in any::<i64>()) {
        let _ = SentimentConfig::from_toml(&format!("{key} = {v}\n"), &SentimentConfig::default());
        let _ = SentimentConfig::from_toml(&format!("{key} = \"{v}\"\n"), &SentimentConfig::default());
    }
}
