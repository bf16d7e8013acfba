//! Herald: a real-time push hub over Server-Sent Events.
//!
//! Publishers `POST /publish` events to topics; subscribers `GET /events?topic=PATTERN` and
//! receive, over SSE, every event whose topic matches, in id order, resuming after a disconnect
//! from their last event id. The contract is the project's `SPEC.md`.
//!
//! # Layout
//! - [`topic`]: topic names and `*` / `**` patterns.
//! - [`event`]: events, their ids, and validated drafts of them.
//! - [`sse`]: the wire format: encoder, and a decoder for clients and tests (the `herald-proto`
//!   crate, re-exported, so that clients need not build the server).
//! - [`hub`]: the router: subscriptions in a pattern trie, fan-out, queues bounded in events and
//!   bytes, the write-stall sweep.
//! - [`log`]: the event log trait; the durable embedded store (redb, with the journal that makes
//!   `batched` survive a process crash, and recovery from a full disk), an in-memory one, and
//!   the cluster log on Redis Streams.
//! - [`state`]: keyed latest state and snapshots.
//! - [`auth`]: JWTs, their claims, and what they allow (open mode without a key).
//! - [`http`]: one module per endpoint group: events, publish, ops; the CORS layer.
//! - [`config`], [`shutdown`], [`telemetry`]: configuration, lifecycle (and stream admission),
//!   metrics.
//! - [`limits`]: the per-principal publish rate limit; what the open-file limit lets the node
//!   hold; the rate limit of client-caused log lines.
//! - [`sources`]: `[[sources.kubernetes]]` configuration, topic templates, readiness gates (the
//!   watchers themselves are in the `herald-kube` crate).
//! - [`server`]: the [`Hub`] that ties these together, and [`run`] (the accept loop, TLS).
//! - [`direct`]: streams on plaintext HTTP/1.1 written without hyper's per-connection buffers,
//!   and JSON for hyper's own error answers.
//!
//! # Examples
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! herald::run(listener, herald::Config::default(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod config;
pub mod direct;
pub mod event;
pub mod http;
pub mod hub;
pub mod limits;
pub mod log;
pub mod server;
pub mod shutdown;
pub mod sources;
pub mod state;
pub mod telemetry;
pub mod topic;

/// The wire format: the `herald-proto` crate's codec, which clients use without this crate.
pub use herald_proto::sse;

pub use config::Config;
pub use server::{run, serve, Hub};
