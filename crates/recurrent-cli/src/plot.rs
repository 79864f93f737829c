//! PNG line plots (plotters, with an embedded DejaVu Sans font so that they render on machines
//! without fonts installed).

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

/// Register the embedded font (once); every drawing calls it first.
pub(crate) fn ensure_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

/// One line of a panel.
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// `(x, y)` points.
    pub points: Vec<(f64, f64)>,
}

/// A panel: a title, axis labels and lines.
pub struct Panel<'a> {
    /// Title above the panel.
    pub title: &'a str,
    /// X axis label.
    pub x_label: &'a str,
    /// Y axis label.
    pub y_label: &'a str,
    /// The lines.
    pub series: Vec<Series<'a>>,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// A name for each integer x (dates, say): the x ticks show these names instead of
    /// numbers, at the starts of years when the names are dates (`YYYY-…`).
    pub x_names: Option<&'a [String]>,
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn bounds(panel: &Panel<'_>) -> ((f64, f64), (f64, f64)) {
    let pts = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|p| p.0.is_finite() && p.1.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        if panel.log_y && y <= 0.0 {
            continue; // not drawable on a log axis
        }
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return ((0.0, 1.0), (0.0, 1.0));
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    if panel.log_y {
        if y0 > y1 {
            return ((x0, x1), (0.1, 10.0));
        }
        // Whole decades, so that the ticks are powers of ten.
        let (a, b) = (
            y0.log10().floor(),
            y1.log10().ceil().max(y0.log10().floor() + 1.0),
        );
        return ((x0, x1), (10f64.powf(a), 10f64.powf(b)));
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    ((x0, x1), (y0 - pad, y1 + pad))
}

/// The corner of the plot where the legend hides the fewest points.
fn legend_corner(panel: &Panel<'_>, xr: (f64, f64), yr: (f64, f64)) -> SeriesLabelPosition {
    let ny = |y: f64| {
        if panel.log_y {
            (y.log10() - yr.0.log10()) / (yr.1.log10() - yr.0.log10())
        } else {
            (y - yr.0) / (yr.1 - yr.0)
        }
    };
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let hidden = |right: bool, upper: bool| {
        panel
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite() && (!panel.log_y || p.1 > 0.0))
            .filter(|p| {
                let (x, y) = ((p.0 - xr.0) / (xr.1 - xr.0), ny(p.1));
                let in_x = if right { x > 0.55 } else { x < 0.45 };
                let in_y = if upper { y > 0.6 } else { y < 0.4 };
                in_x && in_y
            })
            .count()
    };
    corners
        .into_iter()
        .min_by_key(|&(_, r, u)| hidden(r, u))
        .map(|(c, _, _)| c)
        .unwrap_or(SeriesLabelPosition::UpperRight)
}

/// Tick labels: powers of ten as `1e-5` on a log axis, plain numbers without a trailing `.0`.
fn tick_label(v: &f64, log: bool) -> String {
    if log {
        format!("{v:.0e}")
    } else if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The year a name starts with (`1949-01`, `1981-01-01`), if it does.
fn name_year(name: &str) -> Option<i64> {
    let (y, rest) = name.split_at_checked(4)?;
    (y.bytes().all(|b| b.is_ascii_digit()) && rest.starts_with('-')).then(|| y.parse().ok())?
}

/// The x ticks of names that are dates: the first index of every `k`-th year (`k` the
/// smallest of 1, 2, 5, 10, 20, 50, … that leaves at most `max` ticks). `None` when the names
/// are not all dates, or no year starts within them.
fn year_ticks(names: &[String], max: usize) -> Option<Vec<f64>> {
    let years: Vec<i64> = names.iter().map(|n| name_year(n)).collect::<Option<_>>()?;
    // Where a year starts: a change of year, or the first name when it is January (1st).
    let starts: Vec<usize> = (0..years.len())
        .filter(|&i| {
            if i == 0 {
                let n = names[0].as_str();
                n.get(4..7) == Some("-01") && (n.len() == 7 || n.get(7..10) == Some("-01"))
            } else {
                years[i] != years[i - 1]
            }
        })
        .collect();
    let mut k = 1i64;
    for step in [2, 5, 10, 20, 50, 100, 200, 500, 1000]
        .into_iter()
        .chain(std::iter::once(0))
    {
        let n = starts.iter().filter(|&&i| years[i] % k == 0).count();
        if n <= max || step == 0 {
            break;
        }
        k = step;
    }
    let ticks: Vec<f64> = starts
        .into_iter()
        .filter(|&i| years[i] % k == 0)
        .map(|i| i as f64)
        .collect();
    (!ticks.is_empty()).then_some(ticks)
}

/// A linear `f64` axis with its ticks at given points (plotters' `with_key_points` has no
/// value formatter for `f64` ranges).
struct TickedAxis {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

/// The label of tick `v` on an axis whose integers are named `names`: the name at the
/// nearest index (only its year with `years`), or nothing between indices or past the ends.
fn name_label(names: &[String], v: f64, years: bool) -> String {
    let i = v.round();
    if (v - i).abs() > 1e-6 || i < 0.0 || i >= names.len() as f64 {
        return String::new();
    }
    let name = &names[i as usize];
    match (years, name_year(name)) {
        (true, Some(y)) => y.to_string(),
        _ => name.clone(),
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel<'_>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let ((x0, x1), (y0, y1)) = bounds(panel);
    let corner = legend_corner(panel, (x0, x1), (y0, y1));
    let log = panel.log_y;
    // Named x ticks: at the starts of years for dates (labelled with the year), else where
    // plotters puts them; fewer of them the longer their labels (about 9 pixels a character).
    let width = area.dim_in_pixel().0 as usize;
    let fit = |chars: usize| (width / (chars * 9 + 24)).clamp(2, 10);
    let longest = panel.x_names.map_or(0, |n| {
        n.iter().map(|s| s.chars().count()).max().unwrap_or(0)
    });
    let max_x_labels = fit(longest);
    let key_points = panel.x_names.and_then(|n| {
        let in_range = |t: &f64| *t >= x0 && *t <= x1;
        year_ticks(n, fit(4)).map(|t| t.into_iter().filter(in_range).collect::<Vec<_>>())
    });
    let years = key_points.as_ref().is_some_and(|k| !k.is_empty());
    let x_tick = |v: &f64| match panel.x_names {
        Some(names) => name_label(names, *v, years),
        None => tick_label(v, false),
    };
    let n_x_labels = if panel.x_names.is_some() {
        max_x_labels
    } else {
        10
    };
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing plot: {e:?}");
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(panel.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(64);
    macro_rules! body {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(panel.x_label)
                .y_desc(panel.y_label)
                .label_style(("sans-serif", 14))
                .x_labels(n_x_labels)
                .x_label_formatter(&x_tick)
                .y_label_formatter(&|v| tick_label(v, log))
                .draw()
                .map_err(err)?;
            for (i, s) in panel.series.iter().enumerate() {
                let c = COLORS[i % COLORS.len()];
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.0.is_finite() && p.1.is_finite())
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                    .map_err(err)?
                    .label(s.label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(corner)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(err)?;
        }};
    }
    match (key_points.filter(|k| !k.is_empty()), panel.log_y) {
        (None, true) => body!(builder
            .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
            .map_err(err)?),
        (None, false) => body!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?),
        (Some(ticks), true) => body!(builder
            .build_cartesian_2d(
                TickedAxis {
                    inner: (x0..x1).into(),
                    ticks
                },
                (y0..y1).log_scale()
            )
            .map_err(err)?),
        (Some(ticks), false) => body!(builder
            .build_cartesian_2d(
                TickedAxis {
                    inner: (x0..x1).into(),
                    ticks
                },
                y0..y1
            )
            .map_err(err)?),
    }
    Ok(())
}

/// Draw panels side by side into a PNG file (written atomically).
pub fn save_png(path: &Path, panels: &[Panel<'_>]) -> Result<()> {
    ensure_font();
    let (w, h) = (560 * panels.len().max(1) as u32, 420u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (a, p) in areas.iter().zip(panels) {
            draw_panel(a, p)?;
        }
        root.present().map_err(|e| anyhow!("{e:?}"))?;
    }
    save_rgb(path, &buf, w, h)
}

/// Write an RGB8 buffer of `w × h` pixels as a PNG file (atomically).
pub(crate) fn save_rgb(path: &Path, rgb: &[u8], w: u32, h: u32) -> Result<()> {
    let mut png = Vec::new();
    encode_png(rgb, w, h, &mut png)?;
    recurrent::io::write_atomic(path, &png)?;
    Ok(())
}

/// A small PNG encoder (RGB8, filter 0, zlib through flate2).
fn encode_png(rgb: &[u8], w: u32, h: u32, out: &mut Vec<u8>) -> Result<()> {
    use std::io::Write;
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend_from_slice(data);
        out.extend_from_slice(&c);
        out.extend_from_slice(&crc32(&c).to_be_bytes());
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    for row in rgb.chunks_exact((w * 3) as usize) {
        z.write_all(&[0])?;
        z.write_all(row)?;
    }
    let z = z.finish()?;
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(out, b"IHDR", &ihdr);
    chunk(out, b"IDAT", &z);
    chunk(out, b"IEND", &[]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.png");
        let panel = Panel {
            title: "loss",
            x_label: "epoch",
            y_label: "value",
            series: vec![Series {
                label: "train",
                points: vec![(1.0, 0.7), (2.0, 0.4), (3.0, 0.3)],
            }],
            log_y: false,
            x_names: None,
        };
        save_png(&p, &[panel]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(bytes.len() > 1000);
        // With dates as x names, on either y axis.
        let names: Vec<String> = (0..40)
            .map(|i| format!("{}-{:02}", 1949 + i / 12, i % 12 + 1))
            .collect();
        for log_y in [false, true] {
            let panel = Panel {
                title: "dates",
                x_label: "month",
                y_label: "value",
                series: vec![Series {
                    label: "v",
                    points: (0..40).map(|i| (i as f64, 1.0 + i as f64)).collect(),
                }],
                log_y,
                x_names: Some(&names),
            };
            save_png(&p, &[panel]).unwrap();
        }
    }

    #[test]
    fn date_names_tick_at_the_starts_of_years() {
        let months: Vec<String> = (0..144)
            .map(|i| format!("{}-{:02}", 1949 + i / 12, i % 12 + 1))
            .collect();
        // Twelve years: every second one fits in 6 ticks.
        assert_eq!(
            year_ticks(&months, 6).unwrap(),
            vec![12.0, 36.0, 60.0, 84.0, 108.0, 132.0]
        );
        assert_eq!(year_ticks(&months, 12).unwrap().len(), 12);
        assert_eq!(name_label(&months, 12.0, true), "1950");
        assert_eq!(name_label(&months, 13.0, false), "1950-02");
        assert_eq!(name_label(&months, 12.5, true), "");
        assert_eq!(name_label(&months, 144.0, true), "");
        // A series that starts mid-year has no tick at its start.
        assert_eq!(year_ticks(&months[6..30], 10).unwrap(), vec![6.0, 18.0]);
        let days = ["1981-01-01", "1981-01-02"].map(String::from);
        assert_eq!(year_ticks(&days, 10).unwrap(), vec![0.0]);
        // Not dates: no year ticks.
        assert!(year_ticks(&["a".to_string(), "b".to_string()], 5).is_none());
        assert!(year_ticks(&["1949-05".to_string()], 5).is_none());
    }
}
