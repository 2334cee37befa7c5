//! `keel-bench soak-chart`: one PNG per metric, one line per system, minutes
//! on the x axis, drawn from the soak's CSVs so a chart can be redrawn (or
//! restyled) without running the soak again.
//!
//! Text is rendered by plotters' `ab_glyph` feature from a TrueType file the
//! tool reads itself (`--font`, by default DejaVu Sans from Debian's
//! `fonts-dejavu-core`), instead of plotters' default `ttf` feature, which
//! looks fonts up through fontconfig and fails on machines without it.

use super::row::{Row, read_csv};
use anyhow::{Context, Result, anyhow, bail};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Where Debian's `fonts-dejavu-core` puts DejaVu Sans.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// The font family name the charts use; `load_font` registers it.
const FAMILY: &str = "sans-serif";

/// Line colours, one per system in the order given (keel first).
const COLORS: [RGBColor; 4] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44), BLACK];

/// One chart: file name, title, y-axis label and the value it plots.
struct Metric {
    file: &'static str,
    title: &'static str,
    unit: &'static str,
    value: fn(&Row) -> f64,
}

const METRICS: [Metric; 5] = [
    Metric { file: "soak-throughput.png", title: "Throughput, mixed load", unit: "requests/s", value: |r| r.per_s },
    Metric { file: "soak-p50.png", title: "p50 latency, mixed load", unit: "ms", value: |r| r.p50_ms },
    Metric { file: "soak-p99.png", title: "p99 latency, mixed load", unit: "ms", value: |r| r.p99_ms },
    Metric { file: "soak-rss.png", title: "Server RSS", unit: "MiB", value: |r| r.rss_mib },
    Metric { file: "soak-data-dir.png", title: "Data directory size", unit: "MiB", value: |r| r.data_mib },
];

/// The rows of one system.
pub struct Series {
    pub label: String,
    pub rows: Vec<Row>,
}

impl Series {
    /// Reads `LABEL=PATH` (a CSV written by `keel-bench soak`).
    pub fn load(spec: &str) -> Result<Series> {
        let (label, path) = spec.split_once('=').ok_or_else(|| anyhow!("expected LABEL=CSV, got {spec:?}"))?;
        Ok(Series { label: label.to_string(), rows: read_csv(Path::new(path))? })
    }
}

/// Registers the font once per process. plotters keeps fonts for the whole
/// process and wants `'static` bytes, hence the leak (a few hundred KiB).
pub fn load_font(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading the font {}", path.display()))?;
    register_font(FAMILY, FontStyle::Normal, Box::leak(bytes.into_boxed_slice()))
        .map_err(|_| anyhow!("{} is not a TrueType/OpenType font", path.display()))
}

/// Draws every metric of `series` into `out_dir`; returns the files written.
pub fn draw_all(series: &[Series], out_dir: &Path) -> Result<Vec<PathBuf>> {
    if series.len() > COLORS.len() {
        bail!("at most {} series per chart", COLORS.len());
    }
    let mut written = Vec::new();
    for metric in &METRICS {
        let path = out_dir.join(metric.file);
        draw(&path, metric, series).with_context(|| format!("drawing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn draw(path: &Path, metric: &Metric, series: &[Series]) -> Result<()> {
    let lines: Vec<Vec<(f64, f64)>> =
        series.iter().map(|s| s.rows.iter().map(|r| (r.minute, (metric.value)(r))).collect()).collect();
    let points = || lines.iter().flatten();
    let x = axis_range(points().map(|p| p.0));
    let y = axis_range(points().map(|p| p.1));
    let y_top = y.end;

    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(metric.title, (FAMILY, 24))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc("minutes")
        .y_desc(metric.unit)
        .y_label_formatter(&|v| tick_label(*v, y_top))
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 16))
        .draw()?;
    for ((s, line), color) in series.iter().zip(&lines).zip(COLORS) {
        let style = color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(line.iter().copied(), style).point_size(3))?
            .label(s.label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FAMILY, 16))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// An axis from 0 to a quarter above the largest value, so that lines start
/// from a common floor and the legend (top left) has room above them; a flat
/// zero series still gets a visible axis.
fn axis_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let max = values.filter(|v| v.is_finite()).fold(0.0, f64::max);
    if max <= 0.0 { 0.0..1.0 } else { 0.0..max * 1.25 }
}

/// A y tick label: whole numbers on an axis that reaches 20 or more (no
/// "1500.0"), one decimal on a small one (latencies of a few ms).
fn tick_label(v: f64, axis_top: f64) -> String {
    if axis_top >= 20.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_covers_the_largest_value_with_headroom() {
        let r = axis_range([3.0, 250.0, 17.0].into_iter());
        assert_eq!(r.start, 0.0);
        assert!(r.end > 250.0 && r.end < 320.0, "{r:?}");
    }

    #[test]
    fn tick_labels_keep_a_decimal_only_on_small_axes() {
        assert_eq!(tick_label(1500.0, 1900.0), "1500");
        assert_eq!(tick_label(2.5, 6.0), "2.5");
    }

    #[test]
    fn axis_of_nothing_or_zeros_is_not_empty() {
        assert_eq!(axis_range(std::iter::empty()), 0.0..1.0);
        assert_eq!(axis_range([0.0, 0.0].into_iter()), 0.0..1.0);
        assert_eq!(axis_range([f64::NAN, 2.0].into_iter()).start, 0.0);
    }

    /// Draws real PNGs with the default font (installed on the project's
    /// machines): every chart is written and holds more than a blank canvas.
    #[test]
    fn charts_are_written() -> Result<()> {
        load_font(Path::new(DEFAULT_FONT))?;
        let dir = tempfile::tempdir()?;
        let row = |minute: f64, per_s: f64| Row {
            minute,
            per_s,
            per_kind: [per_s / 4.0; 4],
            p50_ms: 5.0,
            p99_ms: 30.0,
            errors: 0,
            rss_mib: 90.0 + minute,
            data_mib: 10.0 * minute,
        };
        let series = [
            Series { label: "keel".into(), rows: vec![row(1.0, 1500.0), row(2.0, 1400.0)] },
            Series { label: "Restate".into(), rows: vec![row(1.0, 700.0), row(2.0, 650.0)] },
        ];
        let written = draw_all(&series, dir.path())?;
        assert_eq!(written.len(), METRICS.len());
        for path in written {
            let bytes = std::fs::read(&path)?;
            assert!(bytes.starts_with(b"\x89PNG"), "{}", path.display());
            assert!(bytes.len() > 5_000, "{}: {} bytes", path.display(), bytes.len());
        }
        Ok(())
    }

    #[test]
    fn series_spec_needs_a_label() {
        assert!(Series::load("bench/results/soak-keel.csv").is_err());
    }
}
