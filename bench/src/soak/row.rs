//! One interval of a soak as a row: printed as a markdown table line while
//! the soak runs (ready to paste into BENCHMARKS.md), and written as a CSV
//! line so that `soak-chart` can redraw the charts later from the files
//! alone. The CSV is plain comma-separated numbers with a fixed header; it
//! is read back only by this module, so no CSV crate is needed.

use super::MIX;
use anyhow::{Context, Result, bail, ensure};
use std::path::Path;

/// What one interval measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// End of the interval, minutes since the load started.
    pub minute: f64,
    /// Successful requests per second, all kinds.
    pub per_s: f64,
    /// Successful requests per second of each kind, in the order of `MIX`.
    pub per_kind: [f64; MIX.len()],
    /// Latency percentiles over the successful requests of all kinds, ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Requests that failed (wrong status or transport error).
    pub errors: u64,
    /// Server process RSS at the end of the interval, MiB.
    pub rss_mib: f64,
    /// Data directory size at the end of the interval, MiB.
    pub data_mib: f64,
}

impl Row {
    /// The CSV header line; the per-kind columns are named after the scenarios.
    pub fn csv_header() -> String {
        let kinds: Vec<String> = MIX.iter().map(|s| format!("{}_per_s", s.name().replace('-', "_"))).collect();
        format!("minute,requests_per_s,{},p50_ms,p99_ms,errors,rss_mib,data_dir_mib", kinds.join(","))
    }

    pub fn to_csv(&self) -> String {
        let kinds: Vec<String> = self.per_kind.iter().map(|v| format!("{v:.1}")).collect();
        format!(
            "{:.3},{:.1},{},{:.3},{:.3},{},{:.1},{:.1}",
            self.minute,
            self.per_s,
            kinds.join(","),
            self.p50_ms,
            self.p99_ms,
            self.errors,
            self.rss_mib,
            self.data_mib
        )
    }

    fn from_csv(line: &str) -> Result<Row> {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        ensure!(fields.len() == 7 + MIX.len(), "expected {} fields, got {}", 7 + MIX.len(), fields.len());
        let num = |i: usize| -> Result<f64> {
            fields[i].parse().with_context(|| format!("field {} ({:?}) is not a number", i + 1, fields[i]))
        };
        let k = MIX.len();
        let mut per_kind = [0.0; MIX.len()];
        for (i, v) in per_kind.iter_mut().enumerate() {
            *v = num(2 + i)?;
        }
        Ok(Row {
            minute: num(0)?,
            per_s: num(1)?,
            per_kind,
            p50_ms: num(2 + k)?,
            p99_ms: num(3 + k)?,
            errors: fields[4 + k].parse().with_context(|| format!("errors field {:?}", fields[4 + k]))?,
            rss_mib: num(5 + k)?,
            data_mib: num(6 + k)?,
        })
    }

    /// The header of the markdown table the soak prints.
    pub fn markdown_header() -> String {
        let kinds: Vec<&str> = MIX.iter().map(|s| s.name()).collect();
        format!(
            "| minute | req/s | {} | p50 ms | p99 ms | errors | RSS MiB | data dir MiB |\n|{}",
            kinds.join(" | "),
            "---|".repeat(7 + MIX.len())
        )
    }

    pub fn to_markdown(&self) -> String {
        let kinds: Vec<String> = self.per_kind.iter().map(|v| format!("{v:.0}")).collect();
        format!(
            "| {:.1} | {:.0} | {} | {:.1} | {:.1} | {} | {:.0} | {:.0} |",
            self.minute,
            self.per_s,
            kinds.join(" | "),
            self.p50_ms,
            self.p99_ms,
            self.errors,
            self.rss_mib,
            self.data_mib
        )
    }
}

/// Reads a CSV written by the soak (header first, then one row per line).
pub fn read_csv(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    match lines.next() {
        Some(header) if header.trim() == Row::csv_header() => {}
        other => bail!("{}: expected the header {:?}, found {other:?}", path.display(), Row::csv_header()),
    }
    lines
        .enumerate()
        .map(|(i, l)| Row::from_csv(l).with_context(|| format!("{} line {}", path.display(), i + 2)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(minute: f64) -> Row {
        Row {
            minute,
            per_s: 1234.5,
            per_kind: [500.0, 300.5, 100.0, 334.0],
            p50_ms: 7.125,
            p99_ms: 41.5,
            errors: 3,
            rss_mib: 93.4,
            data_mib: 250.1,
        }
    }

    #[test]
    fn header_names_every_kind() {
        assert_eq!(
            Row::csv_header(),
            "minute,requests_per_s,noop_per_s,counter_per_s,workflow_per_s,idem_send_per_s,\
             p50_ms,p99_ms,errors,rss_mib,data_dir_mib"
        );
    }

    #[test]
    fn csv_round_trips() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("soak.csv");
        let text = format!("{}\n{}\n{}\n", Row::csv_header(), row(1.0).to_csv(), row(2.0).to_csv());
        std::fs::write(&path, text)?;
        assert_eq!(read_csv(&path)?, vec![row(1.0), row(2.0)]);
        Ok(())
    }

    #[test]
    fn csv_with_another_header_or_a_short_line_is_refused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("soak.csv");
        std::fs::write(&path, format!("minute,x\n{}\n", row(1.0).to_csv()))?;
        assert!(read_csv(&path).is_err());
        std::fs::write(&path, format!("{}\n1.0,2.0\n", Row::csv_header()))?;
        assert!(read_csv(&path).is_err());
        Ok(())
    }

    #[test]
    fn markdown_line_has_a_cell_per_header_column() {
        let header = Row::markdown_header();
        let columns = header.lines().next().map_or(0, |l| l.matches('|').count());
        assert_eq!(row(1.0).to_markdown().matches('|').count(), columns);
        assert_eq!(header.lines().nth(1).map_or(0, |l| l.matches('|').count()), columns);
    }
}
