//! The attention heat map: one row per output token, one column per source token, each cell
//! shaded by the weight the decoder gave that source token when it wrote that output token.

use crate::plot::{ensure_font, save_rgb};
use anyhow::{anyhow, bail, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Pixels per cell.
const CELL: i32 = 18;
/// Room for the labels and the title.
const LEFT: i32 = 70;
const TOP: i32 = 80;
const MARGIN: i32 = 16;

/// Write the heat map of `weights` (`[outputs][sources]`, rows summing to 1) as a PNG file.
pub fn save_attention_png(
    path: &Path,
    title: &str,
    source: &[String],
    output: &[String],
    weights: &[Vec<f32>],
) -> Result<()> {
    if weights.len() != output.len() || weights.iter().any(|r| r.len() != source.len()) {
        bail!(
            "attention weights of {} rows for {} output tokens and {} source tokens",
            weights.len(),
            output.len(),
            source.len()
        );
    }
    ensure_font();
    let (cols, rows) = (source.len() as i32, output.len() as i32);
    let w = (LEFT + cols * CELL + 2 * MARGIN).max(360) as u32;
    let h = (TOP + rows * CELL + MARGIN) as u32;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let err = |e: DrawingAreaErrorKind<_>| anyhow!("drawing the heat map: {e:?}");
        root.fill(&WHITE).map_err(err)?;
        root.draw(&Text::new(
            title.to_string(),
            (MARGIN, 8),
            ("sans-serif", 16).into_font(),
        ))
        .map_err(err)?;
        let label = ("sans-serif", 13).into_font();
        for (c, tok) in source.iter().enumerate() {
            // Vertical, reading upwards, ending just above its column.
            let x = LEFT + c as i32 * CELL + CELL / 2;
            let style = label
                .clone()
                .transform(FontTransform::Rotate270)
                .color(&BLACK)
                .pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(shown(tok), (x, TOP - 4), style))
                .map_err(err)?;
        }
        for (r, tok) in output.iter().enumerate() {
            let y = TOP + r as i32 * CELL + CELL / 2;
            let style = label
                .clone()
                .color(&BLACK)
                .pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(shown(tok), (LEFT - 6, y), style))
                .map_err(err)?;
        }
        for (r, row) in weights.iter().enumerate() {
            for (c, &a) in row.iter().enumerate() {
                let (x, y) = (LEFT + c as i32 * CELL, TOP + r as i32 * CELL);
                root.draw(&Rectangle::new(
                    [(x, y), (x + CELL, y + CELL)],
                    shade(a).filled(),
                ))
                .map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    save_rgb(path, &buf, w, h)
}

/// White (0) to dark blue (1).
fn shade(a: f32) -> RGBColor {
    let a = a.clamp(0.0, 1.0);
    let mix = |lo: f32, hi: f32| (lo + (hi - lo) * a).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

/// A token as a label: a space as `␣`.
fn shown(tok: &str) -> String {
    if tok == " " {
        "␣".to_string()
    } else {
        tok.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_map_is_a_png_whose_cells_follow_the_weights() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a.png");
        let s: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let o: Vec<String> = ["b", "a", "<eos>"].map(String::from).to_vec();
        let wts = vec![vec![0.0, 1.0], vec![1.0, 0.0], vec![0.5, 0.5]];
        save_attention_png(&p, "t", &s, &o, &wts).unwrap();
        assert_eq!(&std::fs::read(&p).unwrap()[..4], b"\x89PNG");
        assert_eq!(shade(0.0), RGBColor(255, 255, 255));
        assert_eq!(shade(1.0), RGBColor(8, 48, 107));
        assert!(save_attention_png(&p, "t", &s, &o[..2], &wts).is_err());
    }
}
