//! Configuration: `herald.toml`, overlaid by `HERALD_<SECTION>_<KEY>` environment variables,
//! overlaid by command-line flags; validated once, at load.
//!
//! Every field's doc comment is the user's documentation of that key (the README's reference is
//! written from them). Durations are typed: the key's suffix (`_s`, `_ms`) says the unit.
//!
//! # Examples
//! ```
//! let config = herald::config::Config::from_toml_and_env(
//!     "heartbeat_s = 15\n[limits]\nmax_clients = 10",
//!     [("HERALD_RETRY_MS".to_owned(), "500".to_owned())],
//! )
//! .unwrap();
//! assert_eq!(config.heartbeat_s.as_secs(), 15);
//! assert_eq!(config.retry_ms.as_millis(), 500);
//! assert_eq!(config.limits.max_clients, 10);
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The sections of the file; an environment variable `HERALD_<SECTION>_<KEY>` sets
/// `<section>.<key>`, any other `HERALD_<KEY>` a top-level key.
const SECTIONS: &[&str] = &["retention", "limits"];

/// Everything `herald serve` can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (HTTP/1.1 and HTTP/2 prior knowledge).
    pub listen: SocketAddr,
    /// Directory of the embedded store.
    pub data_dir: PathBuf,
    /// Where the event log lives: `embedded` (durable, under `data_dir`) or `memory` (lost on
    /// restart; for tests and throwaway nodes).
    pub storage: Storage,
    /// When `POST /publish` answers: `always` once the events are fsynced (concurrent publishers
    /// share one fsync), or `batched` at once, with an fsync at least every `flush_ms`.
    pub durability: Durability,
    /// With `durability = "batched"`, the longest time, in milliseconds, between fsyncs.
    #[serde(with = "millis")]
    pub flush_ms: Duration,
    /// The `retry:` hint, in milliseconds, that opens every stream.
    #[serde(with = "millis")]
    pub retry_ms: Duration,
    /// Seconds of silence on a stream before a heartbeat is written.
    #[serde(with = "secs")]
    pub heartbeat_s: Duration,
    /// `comment` (`: heartbeat`) or `event` (`event: heartbeat` + `data: {}`).
    pub heartbeat_style: HeartbeatStyle,
    /// Largest `POST /publish` body, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Seconds to wait, after SIGTERM, for streams and requests to finish before exiting anyway.
    #[serde(with = "secs")]
    pub shutdown_timeout_s: Duration,
    /// Milliseconds that a draining node keeps answering (`/ready` 503, new streams 503) before
    /// it stops accepting connections, so load balancers see it leave.
    #[serde(with = "millis")]
    pub drain_grace_ms: Duration,
    /// How much history the log keeps.
    pub retention: RetentionConfig,
    /// Connection and queue limits.
    pub limits: Limits,
}

/// How much history the log keeps (SPEC §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Keep at most this many events.
    pub max_events: usize,
    /// Drop events older than this many seconds.
    #[serde(with = "secs")]
    pub max_age_s: Duration,
}

/// Connection and queue limits (SPEC §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Open streams this node accepts; beyond it, 503 with `Retry-After`.
    pub max_clients: usize,
    /// Events queued for one stream before it counts as too slow and is closed.
    pub stream_queue: usize,
}

/// Where the event log lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// The crash-safe embedded store under `data_dir`.
    Embedded,
    /// In memory: gone on restart.
    Memory,
}

/// When a publish is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// After the events are fsynced.
    Always,
    /// At once; fsynced within `flush_ms`.
    Batched,
}

/// How a heartbeat looks on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeartbeatStyle {
    /// `: heartbeat` — invisible to `EventSource` listeners.
    Comment,
    /// `event: heartbeat` + `data: {}` — visible, for clients that want to watch liveness.
    Event,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./herald-data"),
            storage: Storage::Embedded,
            durability: Durability::Always,
            flush_ms: Duration::from_millis(50),
            retry_ms: Duration::from_millis(2000),
            heartbeat_s: Duration::from_secs(30),
            heartbeat_style: HeartbeatStyle::Comment,
            max_body_bytes: 1024 * 1024,
            shutdown_timeout_s: Duration::from_secs(10),
            drain_grace_ms: Duration::from_millis(1000),
            retention: RetentionConfig::default(),
            limits: Limits::default(),
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { max_events: 1_000_000, max_age_s: Duration::from_secs(7 * 24 * 3600) }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_clients: 100_000, stream_queue: 1024 }
    }
}

/// A configuration that cannot be used, with what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file, an environment variable, or their combination does not fit the schema.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// A value is of the right type but out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads `path` (when given), overlays `HERALD_*` variables from `env`, and validates.
    ///
    /// # Errors
    /// [`Error`] names the file, variable or key at fault.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, Error> {
        let text = match path {
            Some(path) => {
                std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_owned(), source })?
            }
            None => String::new(),
        };
        Self::from_toml_and_env(&text, env)
    }

    /// Parses TOML text, overlays `HERALD_*` variables from `env`, and validates.
    ///
    /// # Errors
    /// [`Error`] names the variable or key at fault.
    pub fn from_toml_and_env(text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, Error> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::Parse(e.to_string()))?;
        let mut from_env = Vec::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("HERALD_") else { continue };
            let rest = rest.to_ascii_lowercase();
            let (section, key) = match SECTIONS.iter().find(|s| rest.starts_with(&format!("{s}_"))) {
                Some(s) => (Some(*s), rest[s.len() + 1..].to_owned()),
                None => (None, rest),
            };
            let target = match section {
                Some(s) => table
                    .entry(s)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .ok_or_else(|| Error::Parse(format!("{s} must be a table")))?,
                None => &mut table,
            };
            target.insert(key, env_value(&value));
            from_env.push(name);
        }
        let config: Config = Config::deserialize(toml::Value::Table(table)).map_err(|e| {
            let mut msg = e.to_string().trim().to_owned();
            if !from_env.is_empty() {
                msg.push_str(&format!(" (environment variables in effect: {})", from_env.join(", ")));
            }
            Error::Parse(msg)
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges that the types alone cannot.
    ///
    /// # Errors
    /// [`Error::Invalid`] names the key.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |msg: &str| Err(Error::Invalid(msg.to_owned()));
        if self.retry_ms.is_zero() {
            return bad("retry_ms must be at least 1");
        }
        if self.heartbeat_s.is_zero() {
            return bad("heartbeat_s must be at least 1");
        }
        if self.max_body_bytes == 0 {
            return bad("max_body_bytes must be at least 1");
        }
        if self.retention.max_events == 0 {
            return bad("retention.max_events must be at least 1");
        }
        if self.retention.max_age_s.is_zero() {
            return bad("retention.max_age_s must be at least 1");
        }
        if self.flush_ms.is_zero() {
            return bad("flush_ms must be at least 1");
        }
        if self.limits.stream_queue == 0 {
            return bad("limits.stream_queue must be at least 1");
        }
        Ok(())
    }
}

/// An environment value as TOML when it parses as a scalar or array (`30`, `true`, `["a"]`),
/// otherwise as a plain string (`127.0.0.1:9000`, `./data`).
fn env_value(value: &str) -> toml::Value {
    format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}

macro_rules! duration_unit {
    ($name:ident, $from:ident, $as:ident, $unit:literal) => {
        mod $name {
            use serde::{Deserialize, Deserializer, Serializer};
            use std::time::Duration;

            pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u64(d.$as() as u64)
            }

            pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
                u64::deserialize(d)
                    .map(Duration::$from)
                    .map_err(|e| serde::de::Error::custom(format!("{e} (a whole number of {})", $unit)))
            }
        }
    };
}
duration_unit!(secs, from_secs, as_secs, "seconds");
duration_unit!(millis, from_millis, as_millis, "milliseconds");

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::from_toml_and_env("", []).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.retry_ms, Duration::from_millis(2000));
        assert_eq!(c.heartbeat_s, Duration::from_secs(30));
        assert_eq!(c.max_body_bytes, 1 << 20);
        assert_eq!(c.shutdown_timeout_s, Duration::from_secs(10));
    }

    #[test]
    fn env_overrides_file_by_section() {
        let c = Config::from_toml_and_env(
            "heartbeat_s = 5\nheartbeat_style = \"event\"\n[limits]\nmax_clients = 3",
            env(&[
                ("HERALD_HEARTBEAT_S", "7"),
                ("HERALD_LIMITS_MAX_CLIENTS", "9"),
                ("HERALD_RETENTION_MAX_EVENTS", "11"),
                ("HERALD_LISTEN", "127.0.0.1:9000"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.heartbeat_s, Duration::from_secs(7));
        assert_eq!(c.heartbeat_style, HeartbeatStyle::Event);
        assert_eq!(c.limits.max_clients, 9);
        assert_eq!(c.retention.max_events, 11);
        assert_eq!(c.listen.port(), 9000);
    }

    #[test]
    fn bad_values_are_named() {
        let err = |toml: &str, e: &[(&str, &str)]| Config::from_toml_and_env(toml, env(e)).unwrap_err().to_string();
        assert!(err("", &[("HERALD_HEARTBEAT_S", "soon")]).contains("HERALD_HEARTBEAT_S"));
        assert!(err("heartbeat_s = 0", &[]).contains("heartbeat_s"));
        assert!(err("nonsense = 1", &[]).contains("nonsense"));
        assert!(err("", &[("HERALD_LIMITS_MAX_CLIENTS", "-1")]).contains("max_clients"));
        assert!(err("heartbeat_style = \"loud\"", &[]).contains("loud"));
        assert!(
            err("listen = \"nowhere\"", &[]).contains("listen") || err("listen = \"nowhere\"", &[]).contains("address")
        );
        assert!(err("[limits]\nstream_queue = 0", &[]).contains("stream_queue"));
    }
}
