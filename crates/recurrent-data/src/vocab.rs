//! The vocabulary: the most frequent tokens of the training split, with `<unk>` (index 0) and
//! `<pad>` (index 1) first, as the course's torchtext vocabulary. Ties in frequency are broken
//! by the token's text (byte order), so the same data always gives the same vocabulary.

use crate::{DataError, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The unknown-token symbol.
pub const UNK: &str = "<unk>";
/// The padding symbol.
pub const PAD: &str = "<pad>";

/// A token ↔ index map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    itos: Vec<String>,
    stoi: HashMap<String, u32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabFile {
    itos: Vec<String>,
    unk_index: u32,
    pad_index: u32,
}

impl Vocab {
    /// Build from tokenised texts: keep tokens seen at least `min_freq` times, the
    /// `max_size` most frequent of them (not counting the two specials).
    pub fn build<'a, I, T>(texts: I, max_size: usize, min_freq: usize) -> Vocab
    where
        I: IntoIterator<Item = T>,
        T: IntoIterator<Item = &'a String>,
    {
        let mut counts: HashMap<&'a str, usize> = HashMap::new();
        for text in texts {
            for tok in text {
                *counts.entry(tok.as_str()).or_insert(0) += 1;
            }
        }
        let mut items: Vec<(&str, usize)> = counts
            .into_iter()
            .filter(|&(t, c)| c >= min_freq.max(1) && t != UNK && t != PAD)
            .collect();
        items.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        items.truncate(max_size);
        let itos: Vec<String> = [UNK, PAD]
            .iter()
            .map(|s| s.to_string())
            .chain(items.into_iter().map(|(t, _)| t.to_string()))
            .collect();
        Vocab::from_itos(itos).expect("specials are first and tokens unique")
    }

    /// From an index → token list whose first two entries are `<unk>` and `<pad>`.
    pub fn from_itos(itos: Vec<String>) -> Result<Vocab> {
        if itos.len() < 2 || itos[0] != UNK || itos[1] != PAD {
            return Err(DataError::Invalid(
                "a vocabulary must start with <unk>, <pad>".into(),
            ));
        }
        let mut stoi = HashMap::with_capacity(itos.len());
        for (i, t) in itos.iter().enumerate() {
            if stoi.insert(t.clone(), i as u32).is_some() {
                return Err(DataError::Invalid(format!(
                    "token {t:?} appears twice in the vocabulary"
                )));
            }
        }
        Ok(Vocab { itos, stoi })
    }

    /// Number of entries, specials included.
    pub fn len(&self) -> usize {
        self.itos.len()
    }

    /// Always false (the specials are always there).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Index of `<unk>`.
    pub fn unk_index(&self) -> u32 {
        0
    }

    /// Index of `<pad>`.
    pub fn pad_index(&self) -> u32 {
        1
    }

    /// The index of a token (`<unk>`'s when unknown).
    pub fn index(&self, tok: &str) -> u32 {
        self.stoi.get(tok).copied().unwrap_or(0)
    }

    /// The token at an index.
    pub fn token(&self, i: u32) -> Option<&str> {
        self.itos.get(i as usize).map(String::as_str)
    }

    /// Tokens to indices.
    pub fn encode<S: AsRef<str>>(&self, tokens: &[S]) -> Vec<u32> {
        tokens.iter().map(|t| self.index(t.as_ref())).collect()
    }

    /// The index → token list.
    pub fn itos(&self) -> &[String] {
        &self.itos
    }

    /// Serialise as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&VocabFile {
            itos: self.itos.clone(),
            unk_index: 0,
            pad_index: 1,
        })
        .expect("serialisable")
    }

    /// Parse the JSON written by [`Vocab::to_json`].
    pub fn from_json(s: &str) -> Result<Vocab> {
        let f: VocabFile = serde_json::from_str(s)
            .map_err(|e| DataError::Invalid(format!("vocabulary file: {e}")))?;
        if f.unk_index != 0 || f.pad_index != 1 {
            return Err(DataError::Invalid(
                "vocabulary file: <unk> must be 0 and <pad> 1".into(),
            ));
        }
        Vocab::from_itos(f.itos)
    }

    /// Load from a JSON file.
    pub fn load(path: &Path) -> Result<Vocab> {
        let s = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        Vocab::from_json(&s).map_err(|e| DataError::Invalid(format!("{}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_frequent_first_ties_by_text_and_limits() {
        let texts: Vec<Vec<String>> = vec![
            "b a c a b a d".split(' ').map(String::from).collect(),
            "e e c".split(' ').map(String::from).collect(),
        ];
        let v = Vocab::build(&texts, 10, 1);
        assert_eq!(v.itos(), ["<unk>", "<pad>", "a", "b", "c", "e", "d"]);
        let v = Vocab::build(&texts, 3, 1);
        assert_eq!(v.itos(), ["<unk>", "<pad>", "a", "b", "c"]);
        let v = Vocab::build(&texts, 10, 2);
        assert_eq!(v.len(), 6);
        assert_eq!(v.encode(&["a", "zzz"]), vec![2, 0]);
        let back = Vocab::from_json(&v.to_json()).unwrap();
        assert_eq!(back, v);
        assert!(
            Vocab::from_json("{\"itos\": [\"a\"], \"unk_index\": 0, \"pad_index\": 1}").is_err()
        );
        assert!(Vocab::from_json(
            "{\"itos\": [\"<unk>\", \"<pad>\", \"x\", \"x\"], \"unk_index\": 0, \"pad_index\": 1}"
        )
        .is_err());
        assert!(Vocab::from_json("not json").is_err());
    }
}
