//! Bounded fuzzing of the configuration (TOML) and time-series (CSV) parsers: never a panic.

use proptest::prelude::*;
use recurrent_cli::sentiment::config::SentimentConfig;
use std::path::Path;

/// The keys of the sentiment config.
fn known_key() -> impl Strategy<Value = String> {
    let keys: Vec<String> = toml::Table::try_from(SentimentConfig::default())
        .unwrap()
        .keys()
        .cloned()
        .collect();
    prop::sample::select(keys)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn config_and_csv_parsers_never_panic(s in any::<String>(), col in "[A-Za-z0-9]{0,6}") {
        let _ = SentimentConfig::from_toml(&s, &SentimentConfig::default());
        let _ = recurrent_cli::forecast::parse_series(&s, &col, Path::new("fuzz.csv"));
    }

    /// A key and an integer value: an unknown key is an error naming it; a known key either
    /// takes the value (which then reads back, and passes validation) or is an error that names
    /// the key (or says the run would not fit in memory). A number in quotes is taken only by
    /// the one path-valued key.
    #[test]
    fn config_values_are_taken_exactly_or_refused_by_name(key in prop_oneof![known_key(), "[a-z_]{1,16}"], v in prop_oneof![any::<i64>(), -3i64..70_000]) {
        let base = SentimentConfig::default();
        let known = toml::Table::try_from(&base).unwrap().contains_key(&key);
        match SentimentConfig::from_toml(&format!("{key} = {v}\n"), &base) {
            Ok(c) => {
                prop_assert!(known, "unknown key {key} accepted");
                let back = toml::Table::try_from(&c).unwrap();
                let got = &back[&key];
                prop_assert!(got.as_integer() == Some(v) || got.as_float() == Some(v as f64), "{key} = {v} read back as {got}");
                prop_assert!(c.validate().is_ok());
            }
            Err(e) => {
                let msg = format!("{e:#}");
                if known {
                    // The key is named, or the run would not fit in memory (that message names
                    // the options to lower).
                    prop_assert!(msg.contains(&key) || msg.contains("of memory"), "{key} = {v}: {msg}");
                } else {
                    prop_assert!(msg.contains("unknown config key"), "{key}: {msg}");
                }
            }
        }
        // A number in quotes is a string: no typed key takes it. `init_from` is a path, and
        // any string is one (it is checked when the run opens it).
        let quoted = SentimentConfig::from_toml(&format!("{key} = \"{v}\"\n"), &base);
        prop_assert!(quoted.is_err() || key == "init_from", "{key} = \"{v}\" accepted");
    }
}
