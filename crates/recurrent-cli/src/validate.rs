//! Checks of numeric options, shared by every subcommand, run before any work starts.
//!
//! Every message names the option as the user wrote it and says what it must be, with the
//! value given. Sizes have a ceiling far above anything that trains on a CPU and far below
//! what cannot be allocated, and [`fits_in_memory`] refuses a configuration whose weights,
//! optimiser state and activations would not fit in this machine's memory: an allocation
//! that fails aborts the process, which is worse than any error message.

use anyhow::{bail, Result};

/// The largest layer width accepted (hidden size, embedding size, input size).
pub const MAX_WIDTH: usize = 1 << 16;

/// The largest count of layers accepted.
pub const MAX_LAYERS: usize = 256;

/// `value` must be at least 1 (a count of steps, epochs, examples...).
pub fn positive(name: &str, value: usize) -> Result<()> {
    if value == 0 {
        bail!("{name} must be at least 1, got 0");
    }
    Ok(())
}

/// `value` must lie in `1..=max`.
pub fn size(name: &str, value: usize, max: usize) -> Result<()> {
    if value == 0 || value > max {
        bail!("{name} must be between 1 and {max}, got {value}");
    }
    Ok(())
}

/// `value` must lie in `0..=max`.
pub fn at_most(name: &str, value: usize, max: usize) -> Result<()> {
    if value > max {
        bail!("{name} must be at most {max}, got {value}");
    }
    Ok(())
}

/// A probability of dropping (or any fraction) in `[0, 1)`.
pub fn fraction(name: &str, value: f64) -> Result<()> {
    if !(0.0..1.0).contains(&value) {
        bail!("{name} must be in [0, 1), got {value}");
    }
    Ok(())
}

/// A probability in `[0, 1]`.
pub fn probability(name: &str, value: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&value) {
        bail!("{name} must be in [0, 1], got {value}");
    }
    Ok(())
}

/// A finite number above zero (a learning rate, a temperature).
pub fn positive_real(name: &str, value: f64) -> Result<()> {
    if !(value.is_finite() && value > 0.0) {
        bail!("{name} must be a finite number above 0, got {value}");
    }
    Ok(())
}

/// A finite number of at least zero (a weight decay, a clipping norm where 0 disables it).
pub fn non_negative_real(name: &str, value: f64) -> Result<()> {
    if !(value.is_finite() && value >= 0.0) {
        bail!("{name} must be a finite number of at least 0, got {value}");
    }
    Ok(())
}

/// Parameters of a stack of recurrent layers: `gates` blocks of `hidden` rows per layer and
/// direction (4 LSTM, 3 GRU, 1 Elman), with both biases.
pub fn rnn_parameters(
    gates: usize,
    input: usize,
    hidden: usize,
    layers: usize,
    directions: usize,
) -> u128 {
    let (g, h, d) = (
        gates as u128 * hidden as u128,
        hidden as u128,
        directions as u128,
    );
    (0..layers as u128)
        .map(|k| {
            let i = if k == 0 { input as u128 } else { d * h };
            d * (g * (i + h) + 2 * g)
        })
        .sum()
}

/// Bytes of one training step's state: each parameter with its gradient and two optimiser
/// moments (16 bytes), plus `activations` floats kept for the backward pass.
pub fn training_bytes(parameters: u128, activations: u128) -> u128 {
    16 * parameters + 4 * activations
}

/// Refuse a run that needs more memory than this machine has (`what` says which run, `hint`
/// which options to lower).
pub fn fits_in_memory(what: &str, bytes: u128, hint: &str) -> Result<()> {
    let total = total_memory();
    if bytes > total {
        bail!(
            "{what} would need about {} of memory, more than this machine's {}: lower {hint}",
            human(bytes),
            human(total)
        );
    }
    Ok(())
}

/// Physical memory (Linux: MemTotal; elsewhere 64 GiB).
fn total_memory() -> u128 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u128>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(64 << 30)
}

fn human(bytes: u128) -> String {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    if gib >= 1024.0 {
        format!("{:.1} TiB", gib / 1024.0)
    } else {
        format!("{gib:.1} GiB")
    }
}

/// Settings from a TOML file over `base`: each key of the file replaces the base's value, and
/// a key the settings do not have is an error that lists the known ones. (The caller
/// validates the values.)
///
/// ```
/// use recurrent_cli::sentiment::config::SentimentConfig;
/// use recurrent_cli::validate::toml_over;
/// let c: SentimentConfig = toml_over("hidden_size = 64", &SentimentConfig::default()).unwrap();
/// assert_eq!(c.hidden_size, 64);
/// let e = toml_over::<SentimentConfig>("hiden_size = 64", &SentimentConfig::default()).unwrap_err();
/// assert!(e.to_string().contains("unknown config key \"hiden_size\""));
/// ```
pub fn toml_over<T>(text: &str, base: &T) -> Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let overrides: toml::Table = toml::from_str(text)?;
    let mut merged = toml::Table::try_from(base)?;
    for (k, v) in overrides {
        if !merged.contains_key(&k) {
            bail!(
                "unknown config key {k:?} (known keys: {})",
                merged.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        merged.insert(k, v);
    }
    Ok(merged.try_into()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_option_and_the_value() {
        let e = |r: Result<()>| r.unwrap_err().to_string();
        assert_eq!(
            e(positive("--steps", 0)),
            "--steps must be at least 1, got 0"
        );
        assert_eq!(
            e(size("--hidden", 1 << 20, MAX_WIDTH)),
            "--hidden must be between 1 and 65536, got 1048576"
        );
        assert_eq!(
            e(fraction("--val-fraction", 1.5)),
            "--val-fraction must be in [0, 1), got 1.5"
        );
        assert!(e(fraction("--dropout", f64::NAN)).contains("NaN"));
        assert!(e(positive_real("--lr", f64::INFINITY)).contains("above 0"));
        assert!(e(positive_real("--lr", -1.0)).contains("got -1"));
        assert!(e(non_negative_real("--weight-decay", f64::NAN)).contains("at least 0"));
        assert!(probability("--teacher-forcing", 1.0).is_ok());
        assert!(probability("--teacher-forcing", 1.01).is_err());
        assert!(fraction("--dropout", 0.0).is_ok() && fraction("--dropout", 1.0).is_err());
        assert!(at_most("--top-k", 5, 4).is_err() && at_most("--top-k", 0, 4).is_ok());
    }

    #[test]
    fn parameter_counts_match_torch_nn() {
        // torch.nn.LSTM(10, 20, num_layers=2, bidirectional=True): 4*20*(10+20)+2*80 per
        // direction in layer 0, 4*20*(40+20)+2*80 in layer 1.
        assert_eq!(rnn_parameters(4, 10, 20, 2, 2), 2 * (2560 + 4960));
        assert_eq!(rnn_parameters(1, 3, 5, 1, 1), 5 * 8 + 10);
    }

    #[test]
    fn absurd_runs_do_not_fit() {
        let p = rnn_parameters(4, MAX_WIDTH, MAX_WIDTH, MAX_LAYERS, 2);
        let e = fits_in_memory("this model", training_bytes(p, 0), "--hidden")
            .unwrap_err()
            .to_string();
        assert!(e.contains("TiB") && e.contains("lower --hidden"), "{e}");
        assert!(fits_in_memory("a small model", training_bytes(1000, 1000), "x").is_ok());
    }
}
