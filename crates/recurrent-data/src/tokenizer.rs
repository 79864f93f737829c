//! Tokenizers: torchtext's `basic_english` (the default) and a character tokenizer.
//!
//! `basic_english` reproduces torchtext's `_basic_english_normalize` exactly: lower-case,
//! then, in this order, `'` → `" '  "`, `"` removed, `.` → `" . "`, `<br />` → `" "`,
//! `,` → `" , "`, `(` `)` `!` `?` spaced out, `;` and `:` → `" "`, whitespace runs → `" "`,
//! then split on whitespace. The replacements are applied one after the other over the whole
//! text as Python's `re.sub` calls are (one replacement can create a match for a later one:
//! `<br "/>` becomes `<br />` and is then removed). "Whitespace" is Python's: Unicode
//! whitespace plus the separators U+001C..U+001F.

use serde::{Deserialize, Serialize};

/// How text becomes tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tokenizer {
    /// torchtext's `basic_english`.
    #[default]
    BasicEnglish,
    /// One token per Unicode scalar value (case kept).
    Char,
}

impl Tokenizer {
    /// Parse `"basic_english"` or `"char"`.
    pub fn parse(s: &str) -> Option<Tokenizer> {
        match s {
            "basic_english" => Some(Tokenizer::BasicEnglish),
            "char" => Some(Tokenizer::Char),
            _ => None,
        }
    }

    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            Tokenizer::BasicEnglish => "basic_english",
            Tokenizer::Char => "char",
        }
    }

    /// Split `text` into tokens.
    pub fn tokenize(self, text: &str) -> Vec<String> {
        match self {
            Tokenizer::BasicEnglish => basic_english(text),
            Tokenizer::Char => text.chars().map(String::from).collect(),
        }
    }
}

/// Python's `str.isspace`.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// torchtext's `basic_english` tokenizer.
///
/// ```
/// use recurrent_data::tokenizer::basic_english;
/// assert_eq!(basic_english("Don't stop!<br />It's GREAT."), ["don", "'", "t", "stop", "!", "it", "'", "s", "great", "."]);
/// ```
pub fn basic_english(text: &str) -> Vec<String> {
    let mut s = text.to_lowercase();
    for (pat, rep) in [
        ("'", " '  "),
        ("\"", ""),
        (".", " . "),
        ("<br />", " "),
        (",", " , "),
        ("(", " ( "),
        (")", " ) "),
        ("!", " ! "),
        ("?", " ? "),
        (";", " "),
        (":", " "),
    ] {
        if s.contains(pat) {
            s = s.replace(pat, rep);
        }
    }
    s.split(is_py_space)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_english_edge_cases() {
        assert_eq!(basic_english(""), Vec::<String>::new());
        assert_eq!(basic_english("  \t\n "), Vec::<String>::new());
        assert_eq!(basic_english("a<br \"/>b"), ["a", "b"]);
        assert_eq!(basic_english("x;y:z"), ["x", "y", "z"]);
        assert_eq!(basic_english("a\u{1f}b"), ["a", "b"]);
        assert_eq!(
            basic_english("(Wow)...?!"),
            ["(", "wow", ")", ".", ".", ".", "?", "!"]
        );
        assert_eq!(Tokenizer::Char.tokenize("Ab c"), ["A", "b", " ", "c"]);
    }
}
