//! The forecaster's input and its yardstick: a numeric column read from CSV text, and the
//! RMSE, MAE and MAPE of forecasts.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;

/// Read a numeric column of a CSV file (header row required). Errors name the line.
pub fn read_series(path: &Path, column: &str) -> Result<Vec<f64>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_series(&text, column, path)
}

/// Parse a numeric column of CSV text (`source` names it in errors).
pub fn parse_series(text: &str, column: &str, path: &Path) -> Result<Vec<f64>> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .with_context(|| format!("{} is empty", path.display()))?;
    let cols: Vec<String> = split_csv(header)
        .into_iter()
        .map(|c| c.trim().trim_matches('"').to_string())
        .collect();
    let idx = match cols.iter().position(|c| c == column) {
        Some(i) => i,
        None => match column.parse::<usize>() {
            Ok(i) if i < cols.len() => i,
            _ => bail!(
                "{}: no column {column:?} (columns: {})",
                path.display(),
                cols.join(", ")
            ),
        },
    };
    let mut out = Vec::new();
    for (n, line) in lines {
        let fields = split_csv(line);
        let raw = fields
            .get(idx)
            .with_context(|| format!("{}:{}: only {} fields", path.display(), n + 1, fields.len()))?
            .trim()
            .trim_matches('"');
        let v: f64 = raw
            .parse()
            .with_context(|| format!("{}:{}: {raw:?} is not a number", path.display(), n + 1))?;
        if !v.is_finite() {
            bail!("{}:{}: {raw:?} is not finite", path.display(), n + 1);
        }
        out.push(v);
    }
    Ok(out)
}

fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in line.chars() {
        match ch {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    out.push(cur);
    out
}

/// RMSE, MAE and MAPE of forecasts.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Errors {
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Mean absolute percentage error (%), over targets that are not zero.
    pub mape: f64,
}

/// Errors of `pred` against `actual`.
pub fn errors(pred: &[f64], actual: &[f64]) -> Errors {
    let n = pred.len().max(1) as f64;
    let mut se = 0.0;
    let mut ae = 0.0;
    let (mut pe, mut np) = (0.0, 0usize);
    for (&p, &a) in pred.iter().zip(actual) {
        se += (p - a) * (p - a);
        ae += (p - a).abs();
        if a != 0.0 {
            pe += ((p - a) / a).abs();
            np += 1;
        }
    }
    Errors {
        rmse: (se / n).sqrt(),
        mae: ae / n,
        mape: if np > 0 {
            100.0 * pe / np as f64
        } else {
            f64::NAN
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_parsing_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(
            &p,
            "\"Month\",\"Value\"\n\"1949-01\",112\n1949-02,\"118\"\n1949-03,0.5\n",
        )
        .unwrap();
        assert_eq!(read_series(&p, "Value").unwrap(), vec![112.0, 118.0, 0.5]);
        assert_eq!(read_series(&p, "1").unwrap().len(), 3);
        assert!(read_series(&p, "Nope")
            .unwrap_err()
            .to_string()
            .contains("no column"));
        std::fs::write(&p, "a,b\n1,x\n").unwrap();
        assert!(read_series(&p, "b")
            .unwrap_err()
            .to_string()
            .contains(":2:"));
        std::fs::write(&p, "a,b\n1,?0.2\n").unwrap();
        assert!(
            read_series(&p, "b").is_err(),
            "annotated values are refused, not guessed"
        );
        let e = errors(&[2.0, 4.0], &[1.0, 4.0]);
        assert!(
            (e.rmse - (0.5f64).sqrt()).abs() < 1e-12
                && (e.mae - 0.5).abs() < 1e-12
                && (e.mape - 50.0).abs() < 1e-12
        );
    }
}
