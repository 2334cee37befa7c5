//! Where a setting's value comes from (flag, file, environment, in that
//! order) and the parsers and errors every setting shares.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;

/// Why the configuration was rejected: `field` is the flag (`--partitions`),
/// TOML key (`partitions`) or env var (`KEEL_PARTITIONS`) that supplied the bad
/// value, so the operator knows exactly which source to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Offending flag, TOML key, env var, `--config` (file problems) or `args` (clap).
    pub field: String,
    /// Human-readable reason.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

pub(super) fn err(field: impl Into<String>, message: impl fmt::Display) -> ConfigError {
    ConfigError { field: field.into(), message: message.to_string() }
}

/// A value as the winning source spelled it: flag/env text or a TOML value.
pub(super) enum Raw {
    Text(String),
    Toml(toml::Value),
}

/// A resolved value and the name (flag/key/env var) it came from, so later
/// cross-field checks can still blame the right source.
pub(super) struct Val<T> {
    pub(super) value: T,
    pub(super) field: String,
}

impl<T> Val<T> {
    pub(super) fn check(&self, ok: impl FnOnce(&T) -> bool, message: impl fmt::Display) -> Result<(), ConfigError> {
        if ok(&self.value) { Ok(()) } else { Err(err(&self.field, message)) }
    }
}

/// The three non-default sources; `find` encodes their precedence.
pub(super) struct Sources<'a> {
    pub(super) flags: BTreeMap<&'static str, String>,
    pub(super) file: toml::Table,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

impl Sources<'_> {
    /// Applies the precedence order: flag > file > env.
    fn find(&self, key: &str) -> Option<(String, Raw)> {
        if let Some(s) = self.flags.get(key) {
            return Some((format!("--{}", key.replace('_', "-")), Raw::Text(s.clone())));
        }
        if let Some(v) = self.file.get(key) {
            return Some((key.to_string(), Raw::Toml(v.clone())));
        }
        let name = format!("KEEL_{}", key.to_ascii_uppercase());
        (self.env)(&name).filter(|s| !s.trim().is_empty()).map(|s| (name, Raw::Text(s)))
    }

    pub(super) fn get<T: DeserializeOwned>(
        &self,
        key: &str,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<Option<Val<T>>, ConfigError> {
        let Some((field, raw)) = self.find(key) else { return Ok(None) };
        let parsed = match raw {
            Raw::Text(s) | Raw::Toml(toml::Value::String(s)) => parse(s.trim()),
            Raw::Toml(v) => v.try_into::<T>().map_err(|e| e.message().to_string()),
        };
        match parsed {
            Ok(value) => Ok(Some(Val { value, field })),
            Err(message) => Err(err(field, message)),
        }
    }

    pub(super) fn value<T: DeserializeOwned>(
        &self,
        key: &str,
        parse: fn(&str) -> Result<T, String>,
        default: T,
    ) -> Result<Val<T>, ConfigError> {
        Ok(self.get(key, parse)?.unwrap_or(Val { value: default, field: key.to_string() }))
    }

    pub(super) fn peers(&self) -> Result<Option<Val<BTreeMap<u64, String>>>, ConfigError> {
        let Some((field, raw)) = self.find("peers") else { return Ok(None) };
        let parsed = match &raw {
            Raw::Text(s) | Raw::Toml(toml::Value::String(s)) => peer_map(
                s.split(',')
                    .filter(|e| !e.trim().is_empty())
                    .map(|e| e.split_once('=').ok_or_else(|| format!("entry {:?} is not ID=HOST:PORT", e.trim()))),
            ),
            Raw::Toml(toml::Value::Table(t)) => peer_map(t.iter().map(|(id, addr)| match addr {
                toml::Value::String(a) => Ok((id.as_str(), a.as_str())),
                other => Err(format!("address of peer {id} must be a string, not {}", other.type_str())),
            })),
            Raw::Toml(other) => Err(format!("expected \"ID=HOST:PORT,...\" or a table, not {}", other.type_str())),
        };
        parsed.map(|value| Some(Val { value, field: field.clone() })).map_err(|m| err(field, m))
    }
}

pub(super) fn num<T: FromStr<Err: fmt::Display>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: T::Err| e.to_string())
}

pub(super) fn boolean(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("expected true, false, 1 or 0, got {s:?}")),
    }
}

/// Validates a dialable `host:port` (hostnames allowed, unlike `SocketAddr`).
pub(super) fn host_port(s: &str) -> Result<String, String> {
    let s = s.trim();
    match s.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok_and(|p| p != 0) =>
        {
            Ok(s.to_string())
        }
        _ => Err(format!("{s:?} is not a HOST:PORT address")),
    }
}

fn peer_map<'a>(
    entries: impl Iterator<Item = Result<(&'a str, &'a str), String>>,
) -> Result<BTreeMap<u64, String>, String> {
    let mut peers = BTreeMap::new();
    for entry in entries {
        let (id, addr) = entry?;
        let id: u64 = id.trim().parse().map_err(|e| format!("peer id {:?}: {e}", id.trim()))?;
        if id == 0 {
            return Err("peer ids must be at least 1".into());
        }
        let addr = host_port(addr).map_err(|e| format!("peer {id}: {e}"))?;
        if peers.insert(id, addr).is_some() {
            return Err(format!("peer {id} is listed twice"));
        }
    }
    Ok(peers)
}
