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
const SECTIONS: &[&str] = &["retention", "memory", "limits", "auth", "cors", "cluster", "tls"];

/// Keys whose environment value is always taken as a plain string, never as TOML: a secret
/// such as `123456` or `"quoted"` must reach the server byte for byte.
const RAW_STRING_KEYS: &[(&str, &str)] = &[
    ("auth", "jwt_secret"),
    ("auth", "jwt_public_key"),
    ("cluster", "redis_url"),
    ("cluster", "key_prefix"),
    ("tls", "cert"),
    ("tls", "key"),
];

/// Everything `herald serve` can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (HTTP/1.1 and HTTP/2 prior knowledge; with `[tls]`, TLS with ALPN
    /// `h2` and `http/1.1`).
    pub listen: SocketAddr,
    /// Directory of the embedded store (not used in cluster mode).
    pub data_dir: PathBuf,
    /// Where the event log lives: `embedded` (durable, under `data_dir`) or `memory` (lost on
    /// restart; for tests and throwaway nodes). Ignored in cluster mode (`cluster.redis_url`),
    /// where Redis is the log.
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
    /// Milliseconds that a draining node keeps answering (`/ready` 503; a new stream gets 200,
    /// `retry:` and `herald.shutdown`, never a 5xx) before it stops accepting connections, so
    /// load balancers see it leave.
    #[serde(with = "millis")]
    pub drain_grace_ms: Duration,
    /// How much history the log keeps.
    pub retention: RetentionConfig,
    /// What the node keeps in memory besides its streams (its bound, with
    /// `limits.stream_queue_bytes` per stream: see the README's "Operating Herald").
    pub memory: MemoryConfig,
    /// Connection, request and queue limits.
    pub limits: Limits,
    /// Authentication; with neither key set, Herald is open to everyone.
    pub auth: AuthConfig,
    /// Cross-origin requests from browsers.
    pub cors: CorsConfig,
    /// Event sources inside the node: `[[sources.kubernetes]]` (see [`crate::sources`]).
    pub sources: crate::sources::Sources,
    /// Cluster mode: Redis Streams as the log shared by every node (SPEC §10).
    pub cluster: ClusterConfig,
    /// TLS on the listener (SPEC §8): HTTP/2 and HTTP/1.1 chosen by ALPN.
    pub tls: TlsConfig,
}

/// Cluster mode (SPEC §10): every node with the same Redis and key prefix shares one ordered log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host:port[/db]`: when set, a Redis Stream is the event log
    /// (`storage`, `data_dir` and `durability` are not used; how durable an answered publish is
    /// is Redis's own persistence setting). Redis 7 or later. Never logged: it may hold a
    /// password.
    pub redis_url: Option<Secret>,
    /// The prefix of Herald's Redis keys (`{prefix}:events`, `{prefix}:state`); hubs with
    /// different prefixes share a Redis without seeing each other's events.
    pub key_prefix: String,
}

/// TLS on the listener. Set both or neither.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Path of the PEM certificate chain (the server's certificate first).
    pub cert: Option<PathBuf>,
    /// Path of the PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self { redis_url: None, key_prefix: "herald".to_owned() }
    }
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

/// What the embedded log keeps in memory: together with `limits.stream_queue_bytes` times the
/// open streams, this bounds the node's memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// The most recent events kept in memory for replay without a disk read.
    pub ring_events: usize,
    /// The most bytes (payloads and encoded frames, roughly) that replay ring holds.
    pub ring_bytes: usize,
    /// Bytes of the embedded store's page cache (redb), used by replays older than the ring.
    pub store_cache_bytes: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self { ring_events: 65_536, ring_bytes: 64 << 20, store_cache_bytes: 64 << 20 }
    }
}

/// Connection, request and queue limits (SPEC §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Open streams this node accepts; beyond it, 503 with `Retry-After`. 0 (the default):
    /// derived at start from the open-file limit (`RLIMIT_NOFILE`, which Herald raises to its
    /// hard limit first). With a limit of L descriptors, R = L/8 (at least 64, at most 1024,
    /// at most L/2) are kept for the store's files, Redis, Kubernetes and the runtime; the
    /// other C = L − R are for client connections (one beyond them is answered 503 at once);
    /// and the default is C minus a tenth of C (at least 16, or C/2 when less) kept for
    /// publishers, probes and scrapers: L = 20,000 gives 17,079 streams, L = 1,024 gives 807.
    /// A value above C cannot be held and is lowered to C, with a warning at start. Without a
    /// known limit the default is 100,000.
    pub max_clients: usize,
    /// Open streams one principal may hold on this node (0: no limit); beyond it, 503 with
    /// `Retry-After`. The principal is the token's `sub`; without one (open mode, or a token
    /// without `sub`) it is the client's IP address.
    pub max_clients_per_principal: usize,
    /// Events queued for one stream before it counts as too slow and is closed.
    pub stream_queue: usize,
    /// Bytes (encoded frames) queued for one stream before it counts as too slow and is
    /// closed, whichever of this and `stream_queue` is reached first. One event larger than
    /// this is still queued on an empty queue, so no event is too big to deliver.
    pub stream_queue_bytes: usize,
    /// Seconds a stream's socket may accept no bytes while something is waiting to be written;
    /// then the stream is closed and counted as `reason="lagged"` (a client that never reads
    /// pins neither memory nor a slot for long).
    #[serde(with = "secs")]
    pub write_stall_s: Duration,
    /// How deeply a published `data` value may nest arrays and objects; a deeper one is 400.
    pub max_json_depth: usize,
    /// `POST /publish` requests per second that one principal may make (0: no limit); beyond
    /// it, 429 with `Retry-After`.
    pub publish_rate_per_s: u32,
    /// Requests a principal may make at once before `publish_rate_per_s` paces it (0: the
    /// same as `publish_rate_per_s`).
    pub publish_burst: u32,
    /// Milliseconds a client has to send a complete request head once a connection is open,
    /// or idle between requests on a kept-alive HTTP/1.1 connection; then the connection is
    /// closed (slow-loris protection).
    #[serde(with = "millis")]
    pub header_read_timeout_ms: Duration,
    /// Largest request head (request line and headers), in bytes; at least 8192. A larger
    /// HTTP/1.1 head gets 431; over HTTP/2 the header list is capped to the same size.
    pub max_header_bytes: usize,
}

/// Authentication (SPEC §6). Set `jwt_secret` or `jwt_public_key`, not both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Shared secret for HS256 tokens.
    pub jwt_secret: Option<Secret>,
    /// Public key for RS256 (RSA) or ES256 / ES384 (EC P-256 / P-384) tokens: the PEM text
    /// itself (starting `-----BEGIN`), or the path of a PEM file.
    pub jwt_public_key: Option<String>,
    /// Seconds of clock skew allowed when checking `exp` and `nbf`.
    #[serde(with = "secs")]
    pub leeway_s: Duration,
}

/// Cross-origin resource sharing for browsers (SPEC §8).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins (`scheme://host[:port]`) whose pages may call Herald, with credentials
    /// (cookies); `"*"` lets any origin in, without credentials. Empty: no CORS headers at
    /// all. From the environment, a TOML array or a comma-separated list.
    #[serde(deserialize_with = "list_or_commas")]
    pub allowed_origins: Vec<String>,
}

/// A secret that never shows in `Debug` output or a serialised configuration.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret with this text.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// A list given as a sequence, or as one comma-separated string (handy in the environment).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Many(Vec<String>),
        One(String),
    }
    Ok(match List::deserialize(d)? {
        List::Many(items) => items,
        List::One(text) => text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
    })
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
            memory: MemoryConfig::default(),
            limits: Limits::default(),
            auth: AuthConfig::default(),
            cors: CorsConfig::default(),
            sources: crate::sources::Sources::default(),
            cluster: ClusterConfig::default(),
            tls: TlsConfig::default(),
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
        Self {
            // Derived from the open-file limit at start (limits::Capacity).
            max_clients: 0,
            max_clients_per_principal: 0,
            stream_queue: 1024,
            stream_queue_bytes: 8 << 20,
            write_stall_s: Duration::from_secs(30),
            max_json_depth: 64,
            publish_rate_per_s: 0,
            publish_burst: 0,
            header_read_timeout_ms: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { jwt_secret: None, jwt_public_key: None, leeway_s: Duration::from_secs(5) }
    }
}

/// The smallest `limits.max_header_bytes`: hyper's HTTP/1.1 read buffer cannot be smaller.
pub const MIN_HEADER_BYTES: usize = 8192;

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
        let mut from_kubelet = Vec::new();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("HERALD_") else { continue };
            // A Service named `herald` (or `herald-redis`) makes kubelet set HERALD_PORT and
            // the like in every pod of its namespace: not configuration, and fatal if read
            // as such (`unknown field port`).
            if injected_by_kubelet(&name, &value) {
                from_kubelet.push(name);
                continue;
            }
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
            let value = match section {
                Some(s) if RAW_STRING_KEYS.contains(&(s, key.as_str())) => toml::Value::String(value),
                _ => env_value(&value),
            };
            target.insert(key, value);
            from_env.push(name);
        }
        if !from_kubelet.is_empty() {
            tracing::debug!(
                variables = %from_kubelet.join(", "),
                "ignoring the Service variables Kubernetes injects (set enableServiceLinks: false to drop them)"
            );
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
        if self.memory.ring_events == 0 || self.memory.ring_bytes == 0 {
            return bad("memory.ring_events and memory.ring_bytes must be at least 1");
        }
        if self.flush_ms.is_zero() {
            return bad("flush_ms must be at least 1");
        }
        if self.limits.stream_queue == 0 {
            return bad("limits.stream_queue must be at least 1");
        }
        if self.limits.stream_queue_bytes == 0 {
            return bad("limits.stream_queue_bytes must be at least 1");
        }
        if self.limits.write_stall_s.is_zero() {
            return bad("limits.write_stall_s must be at least 1");
        }
        if self.limits.max_json_depth == 0 || self.limits.max_json_depth > 1024 {
            return bad("limits.max_json_depth must be between 1 and 1024");
        }
        if self.limits.max_header_bytes < MIN_HEADER_BYTES {
            return bad(&format!("limits.max_header_bytes must be at least {MIN_HEADER_BYTES}"));
        }
        if self.limits.header_read_timeout_ms.is_zero() {
            return bad("limits.header_read_timeout_ms must be at least 1");
        }
        if self.auth.jwt_secret.is_some() && self.auth.jwt_public_key.is_some() {
            return bad("set auth.jwt_secret or auth.jwt_public_key, not both");
        }
        if self.auth.jwt_secret.as_ref().is_some_and(|s| s.expose().is_empty()) {
            return bad("auth.jwt_secret is empty");
        }
        if self.auth.jwt_public_key.as_ref().is_some_and(|k| k.trim().is_empty()) {
            return bad("auth.jwt_public_key is empty");
        }
        for origin in &self.cors.allowed_origins {
            if origin != "*" && !is_origin(origin) {
                return bad(&format!(
                    "cors.allowed_origins: {origin:?} is not an origin (scheme://host[:port], no path)"
                ));
            }
        }
        self.sources.validate().map_err(|e| Error::Invalid(e.to_string()))?;
        if let Some(url) = &self.cluster.redis_url {
            check_redis_url(url.expose())?;
        }
        let prefix = &self.cluster.key_prefix;
        if prefix.is_empty()
            || prefix.len() > 64
            || !prefix.bytes().all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}')
        {
            return bad("cluster.key_prefix must be 1-64 printable ASCII characters without spaces or braces");
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return bad("set both tls.cert and tls.key, or neither");
        }
        Ok(())
    }
}

/// Whether `name=value` is one of the variables kubelet injects into every pod for each Service
/// of its namespace ("Docker links", unless the pod sets `enableServiceLinks: false`), for a
/// Service that the manifests in `deploy/kubernetes/` create. For a Service `herald` whose first
/// port is `80/TCP` named `http`, at cluster IP `10.0.0.7`:
///
/// ```text
/// HERALD_SERVICE_HOST=10.0.0.7          HERALD_PORT=tcp://10.0.0.7:80
/// HERALD_SERVICE_PORT=80                HERALD_PORT_80_TCP=tcp://10.0.0.7:80
/// HERALD_SERVICE_PORT_HTTP=80           HERALD_PORT_80_TCP_PROTO=tcp
///                                       HERALD_PORT_80_TCP_PORT=80
///                                       HERALD_PORT_80_TCP_ADDR=10.0.0.7
/// ```
///
/// and the last four for every further port. Port names, numbers and protocols match by pattern
/// (a renamed or added port still works); the value must have kubelet's shape too, so that a
/// user's `HERALD_PORT=8080` is still refused as the unknown key it is.
fn injected_by_kubelet(name: &str, value: &str) -> bool {
    /// The shipped Services, as kubelet spells them in variable names (upper case, `-` as `_`).
    const SERVICES: &[&str] = &["HERALD", "HERALD_REDIS"];
    let is_ip = |v: &str| v.parse::<std::net::IpAddr>().is_ok();
    let is_port = |v: &str| v.parse::<u16>().is_ok_and(|p| p != 0);
    let is_proto = |p: &str| matches!(p, "TCP" | "UDP" | "SCTP");
    // `tcp://10.0.0.7:80`, `tcp://[fd00::7]:80`: the protocol in lower case, then the address.
    let is_link = |v: &str, proto: Option<&str>, port: Option<&str>| {
        let Some((scheme, addr)) = v.split_once("://") else { return false };
        let Ok(addr) = addr.parse::<SocketAddr>() else { return false };
        is_proto(&scheme.to_ascii_uppercase())
            && scheme.bytes().all(|b| b.is_ascii_lowercase())
            && proto.is_none_or(|p| p.eq_ignore_ascii_case(scheme))
            && port.is_none_or(|p| p == addr.port().to_string())
    };
    SERVICES.iter().any(|service| {
        let Some(rest) = name.strip_prefix(service).and_then(|r| r.strip_prefix('_')) else { return false };
        match rest {
            "SERVICE_HOST" => is_ip(value),
            "SERVICE_PORT" => is_port(value),
            "PORT" => is_link(value, None, None),
            _ => {
                if let Some(port_name) = rest.strip_prefix("SERVICE_PORT_") {
                    // An IANA service name: letters, digits and `-` (which kubelet writes as `_`).
                    return !port_name.is_empty()
                        && port_name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                        && is_port(value);
                }
                let Some(link) = rest.strip_prefix("PORT_") else { return false };
                let mut parts = link.splitn(3, '_');
                let (Some(port), Some(proto)) = (parts.next(), parts.next()) else { return false };
                if !is_port(port) || port.starts_with('0') || !is_proto(proto) {
                    return false;
                }
                match parts.next() {
                    None => is_link(value, Some(proto), Some(port)),
                    Some("PROTO") => value.eq_ignore_ascii_case(proto) && value.bytes().all(|b| b.is_ascii_lowercase()),
                    Some("PORT") => value == port,
                    Some("ADDR") => is_ip(value),
                    Some(_) => false,
                }
            }
        }
    })
}

/// Checks a `cluster.redis_url` without connecting; the message never repeats the URL, which may
/// hold a password.
fn check_redis_url(url: &str) -> Result<(), Error> {
    if !(url.starts_with("redis://") || url.starts_with("redis+unix://") || url.starts_with("unix://")) {
        return Err(Error::Invalid(
            "cluster.redis_url must be a redis:// URL (redis://[user:password@]host:port[/db]); \
             rediss:// (TLS to Redis) is not supported"
                .to_owned(),
        ));
    }
    redis::Client::open(url)
        .map(drop)
        .map_err(|e| Error::Invalid(format!("cluster.redis_url is not a usable Redis URL: {e}")))
}

/// Whether `s` looks like a browser `Origin`: `scheme://host[:port]`, nothing after.
fn is_origin(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else { return false };
    !scheme.is_empty()
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', ' ', '@'])
        && rest.bytes().all(|b| b.is_ascii_graphic())
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
        assert_eq!(c.limits.stream_queue_bytes, 8 << 20);
        assert_eq!(c.limits.write_stall_s, Duration::from_secs(30));
        assert_eq!(c.limits.max_json_depth, 64);
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
        assert!(err("[limits]\nmax_header_bytes = 100", &[]).contains("max_header_bytes"));
        assert!(err("[auth]\njwt_secret = \"a\"\njwt_public_key = \"b\"", &[]).contains("not both"));
        assert!(err("[cors]\nallowed_origins = [\"https://a.example/path\"]", &[]).contains("allowed_origins"));
        assert!(err("[auth]\nbogus = 1", &[]).contains("bogus"));
    }

    #[test]
    fn cluster_and_tls_keys_come_from_file_and_environment_and_are_checked() {
        let c = Config::from_toml_and_env(
            "[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"",
            env(&[("HERALD_CLUSTER_REDIS_URL", "redis://:pw@127.0.0.1:6390/0"), ("HERALD_CLUSTER_KEY_PREFIX", "hub1")]),
        )
        .unwrap();
        assert_eq!(c.cluster.redis_url.as_ref().unwrap().expose(), "redis://:pw@127.0.0.1:6390/0");
        assert_eq!(c.cluster.key_prefix, "hub1");
        assert_eq!(c.tls.cert.as_deref(), Some(Path::new("/c.pem")));
        assert!(!format!("{c:?}").contains(":pw@"), "the URL may hold a password");
        let err = |e: &[(&str, &str)]| Config::from_toml_and_env("", env(e)).unwrap_err().to_string();
        for bad in ["http://127.0.0.1:6379", "127.0.0.1:6379", "redis://:pw@host:notaport", "rediss://h:1"] {
            let msg = err(&[("HERALD_CLUSTER_REDIS_URL", bad)]);
            assert!(msg.contains("cluster.redis_url"), "{bad}: {msg}");
            assert!(!msg.contains("pw@"), "{msg}");
        }
        assert!(err(&[("HERALD_CLUSTER_KEY_PREFIX", "a b")]).contains("key_prefix"));
        assert!(err(&[("HERALD_TLS_CERT", "/c.pem")]).contains("tls.key"));
    }

    #[test]
    fn secrets_come_through_the_environment_verbatim_and_never_print() {
        let c = Config::from_toml_and_env(
            "",
            env(&[
                ("HERALD_AUTH_JWT_SECRET", "123456"),
                ("HERALD_AUTH_LEEWAY_S", "2"),
                ("HERALD_CORS_ALLOWED_ORIGINS", "https://a.example, http://localhost:5173"),
                ("HERALD_LIMITS_PUBLISH_RATE_PER_S", "10"),
            ]),
        )
        .unwrap();
        assert_eq!(c.auth.jwt_secret.as_ref().unwrap().expose(), "123456");
        assert_eq!(c.auth.leeway_s, Duration::from_secs(2));
        assert_eq!(c.cors.allowed_origins, ["https://a.example", "http://localhost:5173"]);
        assert_eq!(c.limits.publish_rate_per_s, 10);
        let quoted = Config::from_toml_and_env("", env(&[("HERALD_AUTH_JWT_SECRET", "\"q\"")])).unwrap();
        assert_eq!(quoted.auth.jwt_secret.unwrap().expose(), "\"q\"");
        assert!(!format!("{c:?}").contains("123456"));
        assert!(!toml::to_string(&c).unwrap().contains("123456"));
        let listed = Config::from_toml_and_env("[cors]\nallowed_origins = [\"https://b.example\"]", []).unwrap();
        assert_eq!(listed.cors.allowed_origins, ["https://b.example"]);
    }

    /// What kubelet sets for a Service (its `FromServices`): `ports` as (name, port, protocol).
    fn kubelet_env(service: &str, ip: &str, ports: &[(&str, u16, &str)]) -> Vec<(String, String)> {
        let prefix = service.to_uppercase().replace('-', "_");
        let host_port = |port: u16| if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
        let mut vars = vec![
            (format!("{prefix}_SERVICE_HOST"), ip.to_owned()),
            (format!("{prefix}_SERVICE_PORT"), ports[0].1.to_string()),
        ];
        for (name, port, _) in ports {
            if !name.is_empty() {
                vars.push((
                    format!("{prefix}_SERVICE_PORT_{}", name.to_uppercase().replace('-', "_")),
                    port.to_string(),
                ));
            }
        }
        vars.push((format!("{prefix}_PORT"), format!("{}://{}", ports[0].2.to_lowercase(), host_port(ports[0].1))));
        for (_, port, proto) in ports {
            let link = format!("{prefix}_PORT_{port}_{}", proto.to_uppercase());
            let lower = proto.to_lowercase();
            vars.push((link.clone(), format!("{lower}://{}", host_port(*port))));
            vars.push((format!("{link}_PROTO"), lower));
            vars.push((format!("{link}_PORT"), port.to_string()));
            vars.push((format!("{link}_ADDR"), ip.to_owned()));
        }
        vars
    }

    #[test]
    fn service_variables_kubelet_injects_are_ignored() {
        let mut vars = kubelet_env("herald", "10.96.0.17", &[("http", 80, "TCP"), ("metrics-2", 9090, "TCP")]);
        vars.extend(kubelet_env("herald-redis", "fd00::6", &[("redis", 6379, "TCP")]));
        vars.extend(kubelet_env("herald", "10.96.0.18", &[("", 8080, "UDP")]));
        vars.push(("HERALD_HEARTBEAT_S".into(), "7".into()));
        assert!(vars.iter().any(|(k, v)| k == "HERALD_PORT" && v == "tcp://10.96.0.17:80"));
        assert!(vars.iter().any(|(k, v)| k == "HERALD_REDIS_PORT_6379_TCP" && v == "tcp://[fd00::6]:6379"));
        for (name, value) in &vars[..vars.len() - 1] {
            assert!(injected_by_kubelet(name, value), "{name}={value}");
        }
        let c = Config::from_toml_and_env("", vars).unwrap();
        assert_eq!(c.heartbeat_s, Duration::from_secs(7), "real configuration still applies");
        assert_eq!(Config { heartbeat_s: Config::default().heartbeat_s, ..c }, Config::default());
    }

    #[test]
    fn other_unknown_variables_still_stop_the_start() {
        let err = |name: &str, value: &str| {
            Config::from_toml_and_env("", env(&[(name, value), ("HERALD_SERVICE_HOST", "10.0.0.1")]))
                .unwrap_err()
                .to_string()
        };
        for (name, value) in [
            // Kubelet's names with values it never writes: a user's own setting, refused.
            ("HERALD_PORT", "8080"),
            ("HERALD_SERVICE_HOST", "herald.example"),
            ("HERALD_SERVICE_PORT", "http"),
            ("HERALD_PORT_80_TCP", "tcp://10.0.0.1:81"),
            ("HERALD_PORT_80_TCP_PROTO", "udp"),
            ("HERALD_PORT_80_TCP_ADDR", "localhost"),
            // Near misses of kubelet's names.
            ("HERALD_SERVICE_HOSTS", "10.0.0.1"),
            ("HERALD_PORT_80_TCP_HOST", "10.0.0.1"),
            ("HERALD_PORT_80_HTTP", "tcp://10.0.0.1:80"),
            ("HERALD_SERVICE_PORT_", "80"),
            // Another Service's variables: not one the manifests create.
            ("HERALD_API_SERVICE_HOST", "10.0.0.1"),
            // And plain misspellings, as before.
            ("HERALD_HEARTBEAT", "5"),
        ] {
            let msg = err(name, value);
            let key = name.strip_prefix("HERALD_").unwrap().to_ascii_lowercase();
            assert!(msg.starts_with(&format!("invalid configuration: unknown field `{key}`")), "{name}: {msg}");
            assert!(msg.ends_with(&format!("(environment variables in effect: {name})")), "{name}: {msg}");
        }
        let msg = Config::from_toml_and_env("", env(&[("HERALD_LIMITS_SERVICE_HOST", "10.0.0.1")])).unwrap_err();
        assert!(msg.to_string().contains("unknown field `service_host`"), "{msg}");
    }
}
