//! What a Herald client and the server share, and nothing more: the Server-Sent Events codec
//! ([`sse`]) and the default event type. Split off the `herald` crate (which re-exports it as
//! `herald::sse`) so that a client, `herald-client` above all, does not build the server's
//! store, Redis client, TLS stack and HTTP server to read a stream.
//!
//! # Examples
//! ```
//! use herald_proto::sse::{Decoder, Item};
//! let mut decoder = Decoder::default();
//! decoder.push(&herald_proto::sse::event_frame("1-0", "item.created", "{\"qty\":3}"));
//! let Ok(Some(Item::Event(message))) = decoder.next_item() else { panic!("one event") };
//! assert_eq!((message.id.as_deref(), message.kind.as_str()), (Some("1-0"), "item.created"));
//! ```

pub mod sse;

/// The type of an event published without one; its frames carry no `event:` line (SPEC §2).
pub const DEFAULT_TYPE: &str = "message";
