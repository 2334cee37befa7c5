//! Aggregation of one interval. Workers record every answer into the open
//! window; at the end of each interval the reporter swaps in a fresh one and
//! turns the closed one into a `Row`. Percentiles are over that interval's
//! latencies only, so a slow minute shows as a slow minute instead of being
//! averaged into the run.

use super::MIX;
use super::probe::Sample;
use super::row::Row;
use crate::{ms, percentile};
use std::time::Duration;

/// The answers of one interval.
#[derive(Default)]
pub struct Window {
    /// Latencies of the successful requests, all kinds.
    latencies: Vec<Duration>,
    /// Successful requests per kind (index into `MIX`).
    ok: [u64; MIX.len()],
    errors: u64,
    /// The interval's first failure, to print: one line per interval at most.
    first_error: Option<String>,
}

impl Window {
    /// Records the answer to a request of kind `kind` (index into `MIX`).
    pub fn record(&mut self, kind: usize, outcome: Result<Duration, String>) {
        match outcome {
            Ok(latency) => {
                self.latencies.push(latency);
                self.ok[kind] += 1;
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    /// Closes the window: it ended `minute` minutes into the load and lasted
    /// `seconds`; `sample` is the server's footprint at its end. Also hands
    /// back the interval's first error, if any.
    pub fn close(mut self, minute: f64, seconds: f64, sample: Sample) -> (Row, Option<String>) {
        self.latencies.sort_unstable();
        let seconds = seconds.max(f64::EPSILON);
        let row = Row {
            minute,
            per_s: self.latencies.len() as f64 / seconds,
            per_kind: self.ok.map(|n| n as f64 / seconds),
            p50_ms: ms(percentile(&self.latencies, 0.5)),
            p99_ms: ms(percentile(&self.latencies, 0.99)),
            errors: self.errors,
            rss_mib: sample.rss_mib,
            data_mib: sample.data_mib,
        };
        (row, self.first_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: Sample = Sample { rss_mib: 90.0, data_mib: 12.5 };

    #[test]
    fn rates_and_percentiles_are_per_interval() {
        let mut w = Window::default();
        // 100 requests: 1..=100 ms, spread over the kinds 0, 1, 2, 3, 0, 1, ...
        for i in 0..100u64 {
            w.record((i % 4) as usize, Ok(Duration::from_millis(i + 1)));
        }
        w.record(2, Err("first".into()));
        w.record(3, Err("second".into()));
        let (row, error) = w.close(2.0, 10.0, SAMPLE);
        assert_eq!(row.minute, 2.0);
        assert_eq!(row.per_s, 10.0);
        assert_eq!(row.per_kind, [2.5, 2.5, 2.5, 2.5]);
        assert_eq!(row.p50_ms, 51.0);
        assert_eq!(row.p99_ms, 99.0);
        assert_eq!(row.errors, 2);
        assert_eq!((row.rss_mib, row.data_mib), (90.0, 12.5));
        assert_eq!(error.as_deref(), Some("first"));
    }

    #[test]
    fn unsorted_input_gives_the_same_percentiles() {
        let mut w = Window::default();
        for ms in [90, 10, 50, 30, 70, 20, 80, 40, 60, 100] {
            w.record(0, Ok(Duration::from_millis(ms)));
        }
        let (row, _) = w.close(1.0, 1.0, SAMPLE);
        assert_eq!(row.p50_ms, 60.0);
        assert_eq!(row.p99_ms, 100.0);
        assert_eq!(row.per_kind, [10.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn an_interval_without_answers_is_zero_not_nan() {
        let (row, error) = Window::default().close(1.0, 0.0, SAMPLE);
        assert_eq!((row.per_s, row.p50_ms, row.p99_ms, row.errors), (0.0, 0.0, 0.0, 0));
        assert!(error.is_none());
    }
}
