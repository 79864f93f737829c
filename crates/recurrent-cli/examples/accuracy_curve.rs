//! Draw the README's curve of test accuracy against pretraining time from a CSV of
//! `label,minutes,accuracy` rows (a header line first), one line per label.
//!
//! ```sh
//! cargo run --release --example accuracy_curve -- docs/pretraining_curve.csv docs/pretraining_curve.png
//! ```

use anyhow::{bail, Context, Result};
use recurrent_cli::plot::{save_png, Panel, Series};
use std::path::Path;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [csv, png] = args.as_slice() else {
        bail!("usage: accuracy_curve POINTS.csv OUT.png");
    };
    let text = std::fs::read_to_string(csv).with_context(|| format!("reading {csv}"))?;
    let mut lines: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (k, row) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = row.split(',').map(str::trim).collect();
        let [label, minutes, acc] = f.as_slice() else {
            bail!("{csv}:{}: expected label,minutes,accuracy", k + 1);
        };
        let point = (minutes.parse::<f64>()?, 100.0 * acc.parse::<f64>()?);
        match lines.iter_mut().find(|(l, _)| l == label) {
            Some((_, pts)) => pts.push(point),
            None => lines.push((label.to_string(), vec![point])),
        }
    }
    save_png(
        Path::new(png),
        &[Panel {
            title: "IMDB test accuracy against pretraining time (2 cores)",
            x_label: "minutes of language-model pretraining",
            y_label: "test accuracy (%)",
            series: lines
                .iter()
                .map(|(label, points)| Series {
                    label,
                    points: points.clone(),
                })
                .collect(),
            log_y: false,
            x_names: None,
        }],
    )
}
