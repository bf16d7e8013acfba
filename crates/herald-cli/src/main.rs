//! The `herald` binary: wires the library and the client to a command line, nothing more.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use herald_client::{Client, Publish, SubscribeOptions};

mod bench;

/// Herald: a real-time push hub over Server-Sent Events.
#[derive(Debug, Parser)]
#[command(version, about)]
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
    /// Load generator for BENCHMARKS.md (loopback only; bounded in count and time).
    Bench {
        #[command(subcommand)]
        scenario: bench::Scenario,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,herald=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve { config, listen, data_dir } => serve(config, listen, data_dir).await,
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
        Command::Subscribe { url, topics, last_event_id, snapshot, token, count } => {
            let client = Client::new(&url)?.with_token(token);
            let mut sub = client.subscribe(SubscribeOptions { topics, last_event_id, snapshot });
            let mut seen = 0;
            loop {
                let message = tokio::select! {
                    m = sub.next() => m?,
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                };
                let data = serde_json::from_str(&message.data).unwrap_or(serde_json::Value::String(message.data));
                println!("{}", serde_json::json!({ "id": message.id, "type": message.kind, "data": data }));
                seen += 1;
                if count != 0 && seen >= count {
                    return Ok(());
                }
            }
        }
    }
}

async fn serve(config: Option<PathBuf>, listen: Option<SocketAddr>, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let path = config.or_else(|| Some(PathBuf::from("herald.toml")).filter(|p| p.exists()));
    let mut config = herald::Config::load(path.as_deref(), std::env::vars())?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => bail!("cannot listen on {}: {e}", config.listen),
    };
    herald::run(listener, config, stop_signal()).await?;
    Ok(())
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
