//! The `herald` binary: wires the library and the client to a command line, nothing more.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use herald_client::{Client, Publish, SubscribeOptions};

mod bench;
mod sources;

/// `herald --version`: the release and the git revision it was built from (build.rs; `unknown`
/// when built outside a git checkout).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("GIT_REVISION"), ")");

/// Herald: a real-time push hub over Server-Sent Events.
#[derive(Debug, Parser)]
#[command(name = "herald", version = VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a Herald node.
    Serve {
        /// Configuration file (default: ./herald.toml when it exists).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (overrides `listen`).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Directory of the embedded store (overrides `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Cluster mode: Redis URL of the log shared by every node (overrides
        /// `cluster.redis_url`), such as `redis://127.0.0.1:6379`.
        #[arg(long, value_name = "URL")]
        redis: Option<String>,
        /// Also run a SIMULATED Argo CD (demo applications in namespaces demo-*, moving through
        /// deployments every few seconds), to try the board and the Argo CD API without a cluster.
        #[arg(long)]
        demo: bool,
    },
    /// Publish one event and print its id.
    Publish {
        /// The node's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The event type.
        #[arg(long = "type")]
        kind: Option<String>,
        /// The key whose latest state the event is.
        #[arg(long)]
        key: Option<String>,
        /// Remove the key's state.
        #[arg(long, requires = "key")]
        tombstone: bool,
        /// A JWT to send as `Authorization: Bearer`.
        #[arg(long)]
        token: Option<String>,
        /// Send DATA as a JSON string even when it parses as JSON.
        #[arg(long)]
        string: bool,
        /// The payload: JSON, or text (sent as a JSON string); `-` reads standard input.
        data: String,
    },
    /// Print events as JSON lines, reconnecting with the last id until interrupted.
    Subscribe {
        /// The node's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Topic patterns.
        #[arg(long = "topic", required = true, num_args = 1..)]
        topics: Vec<String>,
        /// Resume after this id (`earliest` for everything retained).
        #[arg(long)]
        last_event_id: Option<String>,
        /// Start with the keyed-state snapshot.
        #[arg(long)]
        snapshot: bool,
        /// A JWT to send as `Authorization: Bearer`.
        #[arg(long)]
        token: Option<String>,
        /// Exit after this many events (0: never).
        #[arg(long, default_value_t = 0)]
        count: u64,
    },
    /// Mint an HS256 token for a node configured with `auth.jwt_secret`, and print it.
    Token {
        /// The node's `auth.jwt_secret`.
        #[arg(long, env = "HERALD_AUTH_JWT_SECRET", hide_env_values = true)]
        secret: String,
        /// `viewer` (subscribe to everything), `publisher` (and publish anything) or `admin`
        /// (everything, including /subscriptions).
        #[arg(long, value_parser = ["viewer", "publisher", "admin"])]
        role: Option<String>,
        /// A pattern whose topics the token may receive (repeatable).
        #[arg(long = "subscribe", value_name = "PATTERN", value_parser = pattern)]
        subscribe: Vec<String>,
        /// A pattern whose topics the token may publish to (repeatable).
        #[arg(long = "publish", value_name = "PATTERN", value_parser = pattern)]
        publish: Vec<String>,
        /// How long the token is valid: `90s`, `15m`, `1h`, `7d`...
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
        /// The principal (`sub`): shown in /subscriptions, and what per-principal limits count.
        #[arg(long)]
        sub: Option<String>,
    },
    /// Load generator for BENCHMARKS.md (loopback only; bounded in count and time).
    Bench {
        #[command(subcommand)]
        scenario: bench::Scenario,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // h2 warns once per connection it closes for flooding (the HTTP/2 rapid-reset pattern):
    // megabytes a minute under attack. The server logs those at a bounded rate instead.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,herald=info,h2=error".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve { config, listen, data_dir, redis, demo } => serve(config, listen, data_dir, redis, demo).await,
        Command::Publish { url, topic, kind, key, tombstone, token, string, data } => {
            let data = if data == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s).context("reading standard input")?;
                s
            } else {
                data
            };
            let data = match serde_json::from_str(&data) {
                Ok(value) if !string => value,
                _ => serde_json::Value::String(data),
            };
            let client = Client::new(&url)?.with_token(token);
            let event = Publish { topic, kind, data, key, tombstone };
            let ids = client.publish(&[event]).await?;
            println!("{}", serde_json::json!({ "ids": ids }));
            Ok(())
        }
        Command::Bench { scenario } => bench::run(scenario).await,
        Command::Token { secret, role, subscribe, publish, ttl, sub } => {
            println!("{}", token(&secret, role.as_deref(), subscribe, publish, ttl, sub)?);
            Ok(())
        }
        Command::Subscribe { url, topics, last_event_id, snapshot, token, count } => {
            let client = Client::new(&url)?.with_token(token);
            // Envelope frames carry each event's topic and key, which plain frames do not: with
            // `items/*` a line must tell `items/A01` from `items/A02`.
            let mut sub = client.subscribe(SubscribeOptions { topics, last_event_id, snapshot }).with_envelope(true);
            let mut seen = 0;
            loop {
                let message = tokio::select! {
                    m = sub.next() => m?,
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                };
                // Control events are shown (a reset or a shutdown is worth seeing) but are not
                // what `--count` waits for.
                let control = message.kind.starts_with("herald.");
                println!("{}", subscribe_line(message));
                if !control {
                    seen += 1;
                    if count != 0 && seen >= count {
                        return Ok(());
                    }
                }
            }
        }
    }
}

async fn serve(
    config: Option<PathBuf>,
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    redis: Option<String>,
    demo: bool,
) -> anyhow::Result<()> {
    // Every connection is a descriptor: the soft limit (often 1024) would cap the node far
    // below what the hard limit allows. The hub derives its capacity from the raised limit.
    if let Err(e) = herald::limits::raise_open_file_limit() {
        tracing::warn!(error = %e, "cannot raise the open-file limit to its hard limit");
    }
    let path = config.or_else(|| Some(PathBuf::from("herald.toml")).filter(|p| p.exists()));
    let mut config = herald::Config::load(path.as_deref(), std::env::vars())?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    if let Some(url) = redis {
        config.cluster.redis_url = Some(herald::config::Secret::new(url));
        config.validate()?;
    }
    let listener = match bind(config.listen) {
        Ok(l) => l,
        Err(e) => bail!("cannot listen on {}: {e}", config.listen),
    };
    let hub = herald::Hub::open(config).await?;
    let sources = sources::Sources::start(&hub, demo).await?;
    // Sources stop when the drain begins, so nothing is published into a closing log.
    let draining = tokio_util::sync::CancellationToken::new();
    let deadline = hub.config.shutdown_timeout_s;
    let stopper = tokio::spawn({
        let draining = draining.clone();
        async move {
            draining.cancelled().await;
            sources.shutdown(deadline).await;
        }
    });
    let mut signal = Box::pin({
        let draining = draining.clone();
        async move {
            stop_signal().await;
            draining.cancel();
        }
    });
    // The signal handlers are installed on the future's first poll: poll it now, before the
    // node says it listens, so that a signal sent right then is not fatal.
    let _ = futures_util::FutureExt::now_or_never(&mut signal);
    let served = herald::serve(listener, hub, signal).await;
    draining.cancel();
    let _ = stopper.await;
    served?;
    Ok(())
}

/// One line of `herald subscribe` (SPEC §11): `{"id","type","topic","key","data"}`, from an
/// envelope frame. A control event has no envelope: its topic and key are `null` and its data is
/// its own. Data that is not JSON (no envelope where one was expected) is printed as a string.
fn subscribe_line(message: herald_client::Message) -> serde_json::Value {
    use serde_json::Value;
    let mut data = serde_json::from_str(&message.data).unwrap_or(Value::String(message.data));
    let (mut topic, mut key) = (Value::Null, Value::Null);
    if !message.kind.starts_with("herald.") {
        if let Value::Object(envelope) = &mut data {
            topic = envelope.remove("topic").unwrap_or_default();
            key = envelope.remove("key").unwrap_or_default();
            data = envelope.remove("data").unwrap_or_default();
        }
    }
    serde_json::json!({ "id": message.id, "type": message.kind, "topic": topic, "key": key, "data": data })
}

/// A topic pattern, checked as the server will check it.
fn pattern(text: &str) -> Result<String, String> {
    herald::topic::Pattern::new(text).map(|_| text.to_owned()).map_err(|e| format!("pattern {e}"))
}

/// Signs the claims of `herald token`.
fn token(
    secret: &str,
    role: Option<&str>,
    subscribe: Vec<String>,
    publish: Vec<String>,
    ttl: std::time::Duration,
    sub: Option<String>,
) -> anyhow::Result<String> {
    use herald::auth::{mint_hs256, Claims, Role, TopicClaims};
    if secret.is_empty() {
        bail!("--secret is empty");
    }
    let role = match role {
        None => None,
        Some("viewer") => Some(Role::Viewer),
        Some("publisher") => Some(Role::Publisher),
        Some("admin") => Some(Role::Admin),
        Some(other) => bail!("unknown role {other:?}"),
    };
    if role.is_none() && subscribe.is_empty() && publish.is_empty() {
        bail!("the token would allow nothing: give --role, --subscribe or --publish");
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let herald = (!subscribe.is_empty() || !publish.is_empty()).then_some(TopicClaims { subscribe, publish });
    let claims = Claims { sub, exp: Some(now.saturating_add(ttl.as_secs())), iat: Some(now), nbf: None, role, herald };
    Ok(mint_hs256(secret.as_bytes(), &claims)?)
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Connections the kernel may hold complete but not yet accepted (capped by
/// `net.core.somaxconn`). tokio's `TcpListener::bind` asks for 1024; when thousands of clients
/// reconnect at once (a node restarted, a proxy reloaded), a full queue drops handshakes and the
/// clients wait for SYN retransmits, seconds each (seen as ~13 s to open 18,000 streams in
/// `herald bench idle`, with `ListenOverflows` counted by the kernel).
const LISTEN_BACKLOG: u32 = 16384;

fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
