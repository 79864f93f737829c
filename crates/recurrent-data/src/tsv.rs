//! Labelled text as TSV: one `label<TAB>text` per line, label `1`/`0`, `pos`/`neg` or
//! `positive`/`negative`. Used by `eval` for data outside the aclImdb layout.

use crate::{DataError, Result};
use std::path::Path;

/// Parse TSV text; errors name the line.
pub fn parse(content: &str, source: &str) -> Result<Vec<(u8, String)>> {
    let mut out = Vec::new();
    for (n, line) in content.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let (label, text) = line.split_once('\t').ok_or_else(|| {
            DataError::Invalid(format!("{source}:{}: expected label<TAB>text", n + 1))
        })?;
        let label = match label.trim().to_ascii_lowercase().as_str() {
            "1" | "pos" | "positive" => 1,
            "0" | "neg" | "negative" => 0,
            other => {
                return Err(DataError::Invalid(format!(
                    "{source}:{}: label {other:?} is not one of 1/0, pos/neg, positive/negative",
                    n + 1
                )))
            }
        };
        if text.trim().is_empty() {
            return Err(DataError::Invalid(format!(
                "{source}:{}: empty text",
                n + 1
            )));
        }
        out.push((label, text.to_string()));
    }
    if out.is_empty() {
        return Err(DataError::Invalid(format!("{source}: no labelled lines")));
    }
    Ok(out)
}

/// Read a TSV file (must be UTF-8).
pub fn read(path: &Path) -> Result<Vec<(u8, String)>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let s = String::from_utf8(bytes).map_err(|e| {
        DataError::Invalid(format!(
            "{}: not valid UTF-8 (byte offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    parse(&s, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_errors() {
        let v = parse("pos\tgreat\n0\tbad film\r\n\nNEGATIVE\tmeh\n", "t").unwrap();
        assert_eq!(
            v,
            vec![
                (1, "great".into()),
                (0, "bad film".into()),
                (0, "meh".into())
            ]
        );
        assert!(parse("maybe\tx", "t")
            .unwrap_err()
            .to_string()
            .contains("t:1"));
        assert!(parse("1 no tab", "t").is_err());
        assert!(parse("1\t   ", "t").is_err());
        assert!(parse("", "t").is_err());
    }
}
