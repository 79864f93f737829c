//! The recurrent cell a user picks (`--cell lstm|gru|rnn`, `"cell": "lstm"` in config files),
//! one enum for every subcommand, mapped to the library's run-time [`RnnMode`].
//!
//! It is not the library's [`RnnMode`] itself: the tool names its cells `lstm`, `gru` and `rnn`
//! (an Elman RNN with tanh) in flags and in the config files of run directories and model
//! directories, and those names stay. A subcommand that supports only some cells parses its
//! flag with [`Cell::parser`].

use clap::builder::{PossibleValue, TypedValueParser};
use clap::ValueEnum;
use recurrent::nn::RnnMode;
use serde::{Deserialize, Serialize};

/// A recurrent cell, by the name the tool gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// Long short-term memory.
    Lstm,
    /// Gated recurrent unit.
    Gru,
    /// Elman RNN with tanh.
    Rnn,
}

impl Cell {
    /// The library's recurrence for this cell.
    ///
    /// ```
    /// use recurrent_cli::cell::Cell;
    /// use recurrent::nn::RnnMode;
    /// assert_eq!(Cell::Rnn.mode(), RnnMode::RnnTanh);
    /// ```
    pub fn mode(self) -> RnnMode {
        match self {
            Cell::Lstm => RnnMode::Lstm,
            Cell::Gru => RnnMode::Gru,
            Cell::Rnn => RnnMode::RnnTanh,
        }
    }

    /// The name in flags and config files: `lstm`, `gru` or `rnn`.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
            Cell::Rnn => "rnn",
        }
    }

    /// Gate blocks per hidden unit (4, 3, 1), for the memory estimates.
    pub fn gates(self) -> usize {
        self.mode().gate_multiplier()
    }

    /// The cell named `name` (`lstm`, `gru` or `rnn`).
    pub fn parse(name: &str) -> Option<Cell> {
        Cell::from_str(name, false).ok()
    }

    /// A clap value parser that accepts only the cells in `allowed` (listed in that order in
    /// `--help`), for a subcommand that supports only some of them. Any other value is an error
    /// that says `must be <a> or <b>`.
    pub fn parser(allowed: &'static [Cell]) -> CellParser {
        CellParser { allowed }
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The value parser of [`Cell::parser`].
#[derive(Clone, Copy, Debug)]
pub struct CellParser {
    allowed: &'static [Cell],
}

impl TypedValueParser for CellParser {
    type Value = Cell;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Cell, clap::Error> {
        let text = value.to_string_lossy();
        match Cell::parse(&text).filter(|c| self.allowed.contains(c)) {
            Some(c) => Ok(c),
            None => {
                let names: Vec<&str> = self.allowed.iter().map(|c| c.name()).collect();
                let (last, rest) = names.split_last().expect("at least one cell");
                let list = if rest.is_empty() {
                    last.to_string()
                } else {
                    format!("{} or {last}", rest.join(", "))
                };
                let flag = arg.map_or("the cell".to_string(), |a| {
                    a.get_long()
                        .map_or(a.get_id().to_string(), |l| format!("--{l}"))
                });
                Err(clap::Error::raw(
                    clap::error::ErrorKind::InvalidValue,
                    format!("{flag} must be {list}, got {text:?}\n"),
                )
                .with_cmd(cmd))
            }
        }
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            self.allowed.iter().filter_map(|c| c.to_possible_value()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Gated {
        #[arg(long, default_value = "gru", value_parser = Cell::parser(&[Cell::Gru, Cell::Lstm]))]
        cell: Cell,
    }

    #[test]
    fn names_modes_and_restricted_parsing() {
        for c in [Cell::Lstm, Cell::Gru, Cell::Rnn] {
            assert_eq!(Cell::parse(c.name()), Some(c));
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.name())
            );
        }
        assert_eq!(Cell::Lstm.gates(), 4);
        assert_eq!(Gated::parse_from(["t"]).cell, Cell::Gru);
        assert_eq!(Gated::parse_from(["t", "--cell", "lstm"]).cell, Cell::Lstm);
        let e = Gated::try_parse_from(["t", "--cell", "rnn"])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--cell must be gru or lstm, got \"rnn\""), "{e}");
    }
}
