//! Durations as Restate's APIs write them: input in "friendly" form
//! (`10s`, `1h 30m`, `5 hours`, via humantime) or ISO-8601 (`PT10S`,
//! `P1DT2H`); output compact with days as the largest unit (`1d 12h 4m 2s`).

use std::time::Duration;

/// Parses a friendly or ISO-8601 duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.starts_with('P') || text.starts_with('p') {
        let iso = iso8601_duration::Duration::parse(&text.to_ascii_uppercase())
            .map_err(|_| format!("invalid ISO-8601 duration '{text}'"))?;
        return iso
            .to_std()
            .ok_or_else(|| format!("duration '{text}' uses years or months, whose length is ambiguous; use days"));
    }
    humantime::parse_duration(text).map_err(|e| format!("invalid duration '{text}': {e}"))
}

/// Formats like Restate's admin API: `1d 12h 4m 2s`, `500ms`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        let n = ms / size;
        ms %= size;
        if n > 0 {
            parts.push(format!("{n}{unit}"));
        }
    }
    if parts.is_empty() { "0s".to_string() } else { parts.join(" ") }
}

/// Wall-clock time in ms since the Unix epoch, for timestamps the HTTP layer
/// stamps on commands (creation and purge times).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Formats a millisecond count (as stored in manifests and the catalog).
pub fn format_ms(ms: u64) -> String {
    format_duration(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_friendly_and_iso() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("5 hours"), Ok(Duration::from_secs(18_000)));
        assert_eq!(parse_duration("2days"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("PT10S"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("P1DT2H"), Ok(Duration::from_secs(93_600)));
        assert!(parse_duration("ten seconds").is_err());
        assert!(parse_duration("P1M").unwrap_err().contains("ambiguous"));
        assert!(parse_duration("PXT").is_err());
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format_ms(86_400_000), "1d");
        assert_eq!(format_ms(60_000), "1m");
        assert_eq!(format_ms(600_000), "10m");
        assert_eq!(format_ms(86_400_000 + 12 * 3_600_000 + 4 * 60_000 + 2_000), "1d 12h 4m 2s");
        assert_eq!(format_ms(500), "500ms");
        assert_eq!(format_ms(0), "0s");
    }
}
