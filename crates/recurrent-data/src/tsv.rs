//! Labelled text as TSV: one `label<TAB>text` per line, label `1`/`0`, `pos`/`neg` or
//! `positive`/`negative`. A first line that names the columns (`label<TAB>text`, or
//! `sentiment`/`review`, as spreadsheets and pandas write them) is a header and is skipped.
//! Used by `eval` for data outside the aclImdb layout.

use crate::{DataError, Result};
use std::path::Path;

/// Column names accepted in a header line, first the label's, then the text's.
const LABEL_HEADERS: [&str; 4] = ["label", "labels", "sentiment", "target"];
const TEXT_HEADERS: [&str; 5] = ["text", "review", "sentence", "content", "document"];

/// Whether a line names the two columns instead of holding an example.
fn is_header(label: &str, text: &str) -> bool {
    let norm = |s: &str| s.trim().to_ascii_lowercase();
    LABEL_HEADERS.contains(&norm(label).as_str()) && TEXT_HEADERS.contains(&norm(text).as_str())
}

/// Parse TSV text; errors name the line.
pub fn parse(content: &str, source: &str) -> Result<Vec<(u8, String)>> {
    let mut out = Vec::new();
    let mut first = true;
    for (n, line) in content.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = if n == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        if line.trim().is_empty() {
            continue;
        }
        if std::mem::take(&mut first) {
            if let Some((l, t)) = line.split_once('\t') {
                if is_header(l, t) {
                    continue;
                }
            }
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

    #[test]
    fn a_header_line_is_skipped_only_first() {
        for header in [
            "label\ttext",
            "Label\tText",
            "sentiment\treview",
            "\u{feff}label\ttext",
        ] {
            let v = parse(&format!("{header}\npos\tgreat\n"), "t").unwrap();
            assert_eq!(v, vec![(1, "great".into())], "{header:?}");
        }
        // after the first line it is an error like any other bad label
        let e = parse("pos\tgreat\nlabel\ttext\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t:2") && e.contains("\"label\""), "{e}");
        // a header alone holds no examples
        assert!(parse("label\ttext\n", "t")
            .unwrap_err()
            .to_string()
            .contains("no labelled lines"));
    }
}
