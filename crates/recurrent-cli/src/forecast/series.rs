//! The forecaster's input and its yardstick: a numeric column read from CSV text (with the
//! date or label column beside it, when there is one), calendar steps of such dates, and the
//! RMSE, MAE and MAPE of forecasts.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;

/// Read a numeric column of a CSV file (header row required). Errors name the line.
pub fn read_series(path: &Path, column: &str) -> Result<Vec<f64>> {
    Ok(read_labelled(path, column)?.values)
}

/// Parse a numeric column of CSV text (`path` names it in errors).
pub fn parse_series(text: &str, column: &str, path: &Path) -> Result<Vec<f64>> {
    Ok(parse_labelled(text, column, path)?.values)
}

/// A value column read from a CSV file, with the line of each value and, when the file has
/// one, its date (or other label) column.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledSeries {
    /// The value column's header.
    pub column: String,
    /// The values, in file order.
    pub values: Vec<f64>,
    /// The 1-based file line of each value (for error messages).
    pub lines: Vec<usize>,
    /// The date or label column, when there is one (see `label_column`).
    pub labels: Option<Labels>,
}

/// A date or label column: one text per value (empty where a row has no such field).
#[derive(Clone, Debug, PartialEq)]
pub struct Labels {
    /// Its header.
    pub column: String,
    /// Its texts, unquoted and trimmed.
    pub values: Vec<String>,
}

/// Header words that mark a date column.
const DATE_WORDS: &[&str] = &["date", "month", "time", "day", "week", "year", "timestamp"];

/// Read a numeric column of a CSV file with its date or label column (see [`parse_labelled`]).
pub fn read_labelled(path: &Path, column: &str) -> Result<LabelledSeries> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_labelled(&text, column, path)
}

/// Parse the numeric column `column` (a header or a 0-based index) of CSV text, with its label
/// column: the first other column whose header contains a date word (date, month, time, day,
/// week, year, timestamp; any case), or else the first other column with a value that is not
/// a number. Errors name `path` and the line; a missing column lists the columns.
pub fn parse_labelled(text: &str, column: &str, path: &Path) -> Result<LabelledSeries> {
    parse_table(text, column, None, path)
}

/// [`parse_labelled`], with the label column `prefer` when the file has a column of that name
/// (other than the value column).
pub(super) fn parse_table(
    text: &str,
    column: &str,
    prefer: Option<&str>,
    path: &Path,
) -> Result<LabelledSeries> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .with_context(|| format!("{} is empty", path.display()))?;
    let cols: Vec<String> = split_csv(header).iter().map(|c| unquote(c)).collect();
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
    let rows: Vec<(usize, Vec<String>)> = lines
        .map(|(n, l)| (n + 1, split_csv(l).iter().map(|f| unquote(f)).collect()))
        .collect();
    let mut values = Vec::with_capacity(rows.len());
    let mut numbers = Vec::with_capacity(rows.len());
    for (n, fields) in &rows {
        let raw = fields
            .get(idx)
            .with_context(|| format!("{}:{n}: only {} fields", path.display(), fields.len()))?;
        let v: f64 = raw
            .parse()
            .with_context(|| format!("{}:{n}: {raw:?} is not a number", path.display()))?;
        if !v.is_finite() {
            bail!("{}:{n}: {raw:?} is not finite", path.display());
        }
        values.push(v);
        numbers.push(*n);
    }
    let preferred = prefer.and_then(|p| cols.iter().position(|c| c == p).filter(|&j| j != idx));
    let labels = preferred
        .or_else(|| label_column(&cols, idx, &rows))
        .map(|j| Labels {
            column: cols[j].clone(),
            values: rows
                .iter()
                .map(|(_, f)| f.get(j).cloned().unwrap_or_default())
                .collect(),
        });
    Ok(LabelledSeries {
        column: cols[idx].clone(),
        values,
        lines: numbers,
        labels,
    })
}

/// The label column of a table with header `cols` and value column `value`: the first other
/// column whose header contains a date word, or else the first other column holding a field
/// that is not a number.
fn label_column(cols: &[String], value: usize, rows: &[(usize, Vec<String>)]) -> Option<usize> {
    let others = || (0..cols.len()).filter(move |&j| j != value);
    others()
        .find(|&j| {
            let h = cols[j].to_lowercase();
            DATE_WORDS.iter().any(|w| h.contains(w))
        })
        .or_else(|| {
            others().find(|&j| {
                rows.iter().any(|(_, f)| {
                    f.get(j)
                        .is_some_and(|s| !s.is_empty() && s.parse::<f64>().is_err())
                })
            })
        })
}

fn unquote(field: &str) -> String {
    field.trim().trim_matches('"').to_string()
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

/// A calendar date read from a label: `YYYY-MM` (a month) or `YYYY-MM-DD` (a day).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CalDate {
    Month(i64, u32),
    Day(i64, u32, u32),
}

/// Parse `YYYY-MM` or `YYYY-MM-DD` (a real calendar date; nothing else).
fn parse_date(s: &str) -> Option<CalDate> {
    let parts: Vec<&str> = s.trim().split('-').collect();
    let num = |p: &str, len: usize| -> Option<u32> {
        (p.len() == len && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let y = num(parts.first()?, 4)? as i64;
    let m = num(parts.get(1)?, 2)?;
    if !(1..=12).contains(&m) {
        return None;
    }
    match parts.len() {
        2 => Some(CalDate::Month(y, m)),
        3 => {
            let d = num(parts[2], 2)?;
            (d >= 1 && d <= days_in_month(y, m)).then_some(CalDate::Day(y, m, d))
        }
        _ => None,
    }
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// The step between consecutive dates of a label column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateStep {
    /// One calendar month (`YYYY-MM`, or `YYYY-MM-DD` on the same day of every month).
    Monthly,
    /// One day (`YYYY-MM-DD`).
    Daily,
}

/// The regular step of `labels`, if there is one: at least two dates of one form (`YYYY-MM`
/// or `YYYY-MM-DD`), each exactly one month (or one day) after the one before.
pub fn date_step(labels: &[String]) -> Option<DateStep> {
    let dates: Vec<CalDate> = labels
        .iter()
        .map(|s| parse_date(s))
        .collect::<Option<_>>()?;
    if dates.len() < 2 {
        return None;
    }
    let month_no = |y: i64, m: u32| y * 12 + m as i64 - 1;
    let pairs = || dates.windows(2).map(|p| (p[0], p[1]));
    if pairs().all(|(a, b)| match (a, b) {
        (CalDate::Month(y0, m0), CalDate::Month(y1, m1)) => {
            month_no(y1, m1) == month_no(y0, m0) + 1
        }
        _ => false,
    }) {
        return Some(DateStep::Monthly);
    }
    if pairs().all(|(a, b)| match (a, b) {
        (CalDate::Day(y0, m0, d0), CalDate::Day(y1, m1, d1)) => {
            days_from_civil(y1, m1, d1) == days_from_civil(y0, m0, d0) + 1
        }
        _ => false,
    }) {
        return Some(DateStep::Daily);
    }
    if pairs().all(|(a, b)| match (a, b) {
        (CalDate::Day(y0, m0, d0), CalDate::Day(y1, m1, d1)) => {
            d0 == d1 && d0 <= 28 && month_no(y1, m1) == month_no(y0, m0) + 1
        }
        _ => false,
    }) {
        return Some(DateStep::Monthly);
    }
    None
}

/// The `n` dates after the last of `labels`, in their format, when `labels` step regularly
/// (see [`date_step`]); `None` otherwise.
///
/// ```
/// use recurrent_cli::forecast::next_dates;
/// let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
/// assert_eq!(next_dates(&l(&["1960-11", "1960-12"]), 2).unwrap(), l(&["1961-01", "1961-02"]));
/// assert_eq!(next_dates(&l(&["2000-02-27", "2000-02-28"]), 2).unwrap(), l(&["2000-02-29", "2000-03-01"]));
/// assert!(next_dates(&l(&["1960-11", "1961-01"]), 1).is_none());
/// ```
pub fn next_dates(labels: &[String], n: usize) -> Option<Vec<String>> {
    let step = date_step(labels)?;
    let last = parse_date(labels.last()?)?;
    (1..=n as i64)
        .map(|k| match (step, last) {
            (DateStep::Monthly, CalDate::Month(y, m)) => {
                let t = y * 12 + m as i64 - 1 + k;
                Some(format!(
                    "{:04}-{:02}",
                    t.div_euclid(12),
                    t.rem_euclid(12) + 1
                ))
            }
            (DateStep::Monthly, CalDate::Day(y, m, d)) => {
                let t = y * 12 + m as i64 - 1 + k;
                Some(format!(
                    "{:04}-{:02}-{d:02}",
                    t.div_euclid(12),
                    t.rem_euclid(12) + 1
                ))
            }
            (DateStep::Daily, CalDate::Day(y, m, d)) => {
                let (y, m, d) = civil_from_days(days_from_civil(y, m, d) + k);
                Some(format!("{y:04}-{m:02}-{d:02}"))
            }
            // `date_step` finds a daily step only between days.
            (DateStep::Daily, CalDate::Month(..)) => None,
        })
        .collect()
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

    fn parse(text: &str, column: &str) -> LabelledSeries {
        parse_labelled(text, column, Path::new("t.csv")).unwrap()
    }

    #[test]
    fn the_label_column_is_found_by_header_or_by_content() {
        // By header: a date word in any case, whatever the order of the columns.
        let s = parse(
            "Passengers,Month\n112,1949-01\n\n118,1949-02\n",
            "Passengers",
        );
        let l = s.labels.unwrap();
        assert_eq!(
            (l.column.as_str(), &l.values[..]),
            ("Month", &["1949-01".to_string(), "1949-02".to_string()][..])
        );
        assert_eq!(s.lines, vec![2, 4], "blank lines are skipped but counted");
        for header in ["DATE", "Timestamp", "week_no", "Year", "day"] {
            let s = parse(&format!("v,{header}\n1,2\n"), "v");
            assert_eq!(s.labels.unwrap().column, header);
        }
        // A date word wins over an earlier text column; the value column is never its own label.
        let s = parse("name,when_date,v\na,1,2\n", "v");
        assert_eq!(s.labels.unwrap().column, "when_date");
        let s = parse("date\n1\n2\n", "date");
        assert!(s.labels.is_none());
        // By content: the first other column with a field that is not a number.
        let s = parse("x,id,v\n1,a7,2\n2,b8,3\n", "v");
        assert_eq!(s.labels.unwrap().column, "id");
        // Only numbers and no date word: no labels.
        assert!(parse("t,v\n0,1\n1,2\n", "v").labels.is_none());
        assert_eq!(parse("t,v\n0,1\n", "1").column, "v");
        // A missing column lists the columns.
        let e = parse_labelled("Month,Passengers\n1949-01,1\n", "Pass", Path::new("a.csv"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a.csv: no column \"Pass\" (columns: Month, Passengers)"),
            "{e}"
        );
    }

    #[test]
    fn dates_step_by_calendar_months_and_days() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            date_step(&l(&["1949-11", "1949-12", "1950-01"])),
            Some(DateStep::Monthly)
        );
        assert_eq!(
            next_dates(&l(&["1960-11", "1960-12"]), 3).unwrap(),
            l(&["1961-01", "1961-02", "1961-03"])
        );
        assert_eq!(
            date_step(&l(&["1990-12-30", "1990-12-31"])),
            Some(DateStep::Daily)
        );
        assert_eq!(
            next_dates(&l(&["1990-12-30", "1990-12-31"]), 2).unwrap(),
            l(&["1991-01-01", "1991-01-02"])
        );
        // Leap years, including the century rules.
        assert_eq!(
            next_dates(&l(&["1900-02-27", "1900-02-28"]), 1).unwrap(),
            l(&["1900-03-01"])
        );
        assert_eq!(
            next_dates(&l(&["2000-02-27", "2000-02-28"]), 2).unwrap(),
            l(&["2000-02-29", "2000-03-01"])
        );
        assert_eq!(
            next_dates(&l(&["2023-02-28", "2023-03-01"]), 1).unwrap(),
            l(&["2023-03-02"])
        );
        // Monthly dates written as days: the same day of every month.
        assert_eq!(
            next_dates(&l(&["2020-11-01", "2020-12-01"]), 2).unwrap(),
            l(&["2021-01-01", "2021-02-01"])
        );
        // Not regular, not dates, mixed forms, too few: no step.
        for bad in [
            &["1949-01", "1949-03"][..],
            &["1988-12-30", "1989-01-01"],
            &["1949-01", "1949-02-01"],
            &["1949-13", "1950-01"],
            &["2001-02-29", "2001-03-01"],
            &["a", "b"],
            &["1949-01"],
            &["49-01", "49-02"],
        ] {
            assert_eq!(date_step(&l(bad)), None, "{bad:?}");
            assert!(next_dates(&l(bad), 1).is_none());
        }
        // The day count round-trips over four centuries.
        for z in (-200_000..200_000).step_by(97) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
            assert!(d <= days_in_month(y, m));
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
    }
}
