//! Durations as Restate's APIs write them: input in "friendly" form
//! (`10s`, `1h 30m`, `5 hours`, via humantime) or ISO-8601 (`PT10S`,
//! `P1DT2H`); output compact with days as the largest unit (`1d 12h 4m 2s`).
//!
//! Every duration a client sends (a delay, a timeout, a retention) goes
//! through [`parse_duration`], which refuses what cannot be meant: negative,
//! non-finite or overflowing values, and anything above [`MAX_DURATION`].
//! Past that check the value is small enough that `now + d` in milliseconds
//! cannot overflow a `u64` for the next few hundred million years, but the
//! arithmetic below saturates anyway so no client value can make it panic.

use crate::error::ApiError;
use std::time::Duration;

/// The longest duration accepted anywhere: 100 years of 365 days. Longer
/// delays, retentions or timeouts are almost certainly mistakes (a unit
/// typo, an attempt to overflow a timestamp) and are refused with a 400
/// instead of being clamped, so the client learns of it.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parses a friendly or ISO-8601 duration of at most [`MAX_DURATION`].
///
/// Never panics: the ISO-8601 parser yields `f32` components that may be
/// negative (`PT-1S`) or huge (`PT1E20S`), which `Duration::from_secs_f32`
/// would panic on, so they are checked here first.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let d = if text.starts_with('P') || text.starts_with('p') {
        parse_iso(text)?
    } else {
        humantime::parse_duration(text).map_err(|e| format!("invalid duration '{text}': {e}"))?
    };
    if d > MAX_DURATION {
        return Err(format!("duration '{text}' is longer than the maximum of {}", format_duration(MAX_DURATION)));
    }
    Ok(d)
}

fn parse_iso(text: &str) -> Result<Duration, String> {
    let iso = iso8601_duration::Duration::parse(&text.to_ascii_uppercase())
        .map_err(|_| format!("invalid ISO-8601 duration '{text}'"))?;
    let parts = [iso.year, iso.month, iso.day, iso.hour, iso.minute, iso.second];
    if parts.iter().any(|p| !p.is_finite() || *p < 0.0) {
        return Err(format!("duration '{text}' must be a finite, non-negative duration"));
    }
    if iso.year != 0.0 || iso.month != 0.0 {
        return Err(format!("duration '{text}' uses years or months, whose length is ambiguous; use days"));
    }
    // f64 holds every sum of finite f32 components without overflow.
    let secs = f64::from(iso.day) * 86_400.0
        + f64::from(iso.hour) * 3_600.0
        + f64::from(iso.minute) * 60.0
        + f64::from(iso.second);
    Duration::try_from_secs_f64(secs).map_err(|_| format!("duration '{text}' is out of range"))
}

/// Parses the client-sent duration `field` (a query parameter, a header
/// preference, a JSON field): a 400 naming the field if it is malformed or
/// out of range.
pub(crate) fn client_duration(field: &str, text: &str) -> Result<Duration, ApiError> {
    parse_duration(text).map_err(|e| ApiError::bad_request(format!("bad {field}: {e}")))
}

/// `d` in whole milliseconds, saturating (a `Duration` holds up to 2⁶⁴ s).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Now plus `d`, in ms since the Unix epoch, saturating rather than
/// overflowing (`SystemTime + Duration` panics on overflow).
pub(crate) fn ms_after_now(d: Duration) -> u64 {
    now_ms().saturating_add(millis(d))
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
    fn refuses_negative_overflowing_and_absurd_durations() {
        for bad in [
            "PT-1S",
            "P-1D",
            "P-1M",
            "PT1E20S",
            "PT1e38S",
            "P1000000000000D",
            "10000000000000000000s",
            "99999999999999999999999s",
            "101years",
            "P36600D",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("P36500D"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("PT0.5S"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(millis(Duration::MAX), u64::MAX);
        assert_eq!(ms_after_now(Duration::MAX), u64::MAX);
        assert!(ms_after_now(Duration::from_secs(1)) > now_ms());
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
