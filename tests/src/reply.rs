//! One fully read HTTP answer ([`Reply`]) and how answers to state writes
//! are interpreted.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use serde_json::Value;

/// One HTTP answer, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub method: &'static str,
    pub url: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub retry_after: Option<String>,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// Every response header as (lower-case name, value), in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub elapsed: Duration,
}

impl Reply {
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} {} -> {} after {:.1?} (content-type {:?}): {}",
            self.method,
            self.url,
            self.status,
            self.elapsed,
            self.content_type,
            truncate(&self.body, 2000)
        )
    }

    /// The first value of header `name` (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Fails unless the status is `status`.
    pub fn expect_status(&self, status: u16) -> Result<&Self> {
        ensure!(self.status == status, "expected HTTP {status}, got {}", self.describe());
        Ok(self)
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("body is not JSON: {}", self.describe()))
    }

    /// The body parsed into `T`.
    pub fn parse<T: for<'de> Deserialize<'de>>(&self) -> Result<T> {
        serde_json::from_str(&self.body).with_context(|| format!("unexpected body shape: {}", self.describe()))
    }

    /// The error body's `message`: the body must be a JSON object whose
    /// `message` is a non-empty string.
    pub fn error_message(&self) -> Result<String> {
        let v = self.json()?;
        match v.get("message") {
            Some(Value::String(m)) if !m.trim().is_empty() => Ok(m.clone()),
            _ => bail!("error body has no non-empty string `message`: {}", self.describe()),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// The `version` of a 202 answer to a state write.
pub fn version_of(reply: &Reply) -> Result<String> {
    match reply.json()?.get("version") {
        Some(Value::String(v)) if !v.is_empty() => Ok(v.clone()),
        _ => bail!("202 without a non-empty string `version`: {}", reply.describe()),
    }
}

/// Whether an answer (or its absence) means "try again, possibly elsewhere":
/// no HTTP answer at all, or 502/503/504.
pub(crate) fn is_retryable(r: &Result<Reply>) -> bool {
    match r {
        Err(_) => true,
        Ok(reply) => matches!(reply.status, 502..=504),
    }
}
