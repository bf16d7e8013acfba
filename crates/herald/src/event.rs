//! Events and their ids.
//!
//! An [`EventId`] is `<ms>-<seq>`: the publish time in Unix milliseconds and a sequence number
//! within that millisecond, the same shape as a Redis Streams id, so an id means the same thing
//! whether the embedded log or Redis (cluster mode) assigned it. Ids are totally ordered and a
//! hub assigns them in strictly increasing order, never behind an id it already gave, even when
//! the wall clock steps back ([`IdClock`]).
//!
//! A [`Draft`] is a validated publish request; an [`Event`] is a draft with its id and its SSE
//! frame, encoded once here and shared by every subscriber that receives it.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::sse;
use crate::topic::Topic;

/// The longest event type, in bytes.
pub const MAX_TYPE_LEN: usize = 128;
/// The longest key, in bytes.
pub const MAX_KEY_LEN: usize = 512;
/// The prefix reserved for Herald's own control events.
pub const RESERVED_PREFIX: &str = "herald.";
/// The type of an event published without one; its SSE frame has no `event:` line.
pub const DEFAULT_TYPE: &str = "message";

/// A position in a hub's event log: `<unix ms>-<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId {
    /// Unix time in milliseconds when the event was appended.
    pub ms: u64,
    /// Order among the events appended in the same millisecond.
    pub seq: u64,
}

/// A string that is not an [`EventId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an event id (expected <ms>-<seq>)")]
pub struct BadId;

impl EventId {
    /// The id after this one (the smallest id greater than it).
    pub fn next(self) -> Self {
        match self.seq.checked_add(1) {
            Some(seq) => Self { ms: self.ms, seq },
            None => Self { ms: self.ms + 1, seq: 0 },
        }
    }

    /// The id as 16 big-endian bytes, which sort like the ids themselves.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// The inverse of [`EventId::to_bytes`].
    pub fn from_bytes(b: [u8; 16]) -> Self {
        let mut ms = [0; 8];
        let mut seq = [0; 8];
        ms.copy_from_slice(&b[..8]);
        seq.copy_from_slice(&b[8..]);
        Self { ms: u64::from_be_bytes(ms), seq: u64::from_be_bytes(seq) }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for EventId {
    type Err = BadId;
    /// Parses `<ms>-<seq>`: decimal digits only, no sign, no spaces, at most 20 digits each.
    fn from_str(s: &str) -> Result<Self, BadId> {
        let (ms, seq) = s.split_once('-').ok_or(BadId)?;
        let num = |p: &str| -> Result<u64, BadId> {
            if p.is_empty() || p.len() > 20 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(BadId);
            }
            p.parse().map_err(|_| BadId)
        };
        Ok(Self { ms: num(ms)?, seq: num(seq)? })
    }
}

/// Hands out strictly increasing [`EventId`]s from the wall clock.
#[derive(Debug, Default)]
pub struct IdClock {
    last: EventId,
}

impl IdClock {
    /// A clock that never issues an id at or below `last`.
    pub fn after(last: EventId) -> Self {
        Self { last }
    }

    /// The next id: `now-0` if the clock moved on, else one past the last id.
    pub fn next_id(&mut self) -> EventId {
        let now = now_ms();
        let id = if now > self.last.ms { EventId { ms: now, seq: 0 } } else { self.last.next() };
        self.last = id;
        id
    }
}

/// The current Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Why a publish request was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DraftError {
    /// The topic breaks SPEC §1.
    #[error("invalid topic {topic:?}: {reason}")]
    Topic {
        /// The offending text.
        topic: String,
        /// Which rule it breaks.
        reason: crate::topic::Error,
    },
    /// The type is empty, too long, has a control character, or uses the reserved prefix.
    #[error("invalid type {0:?}: must be 1-128 printable bytes without CR, LF or NUL, not starting with \"herald.\"")]
    Type(String),
    /// The key is empty, too long or has a control character.
    #[error("invalid key {0:?}: must be 1-512 bytes without control characters")]
    Key(String),
    /// `tombstone` without a `key`.
    #[error("a tombstone needs a key")]
    TombstoneWithoutKey,
}

/// A validated event, not yet appended to a log.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Where the event is published.
    pub topic: Topic,
    /// The event type (`event:` on the wire).
    pub kind: Box<str>,
    /// The payload as compact JSON text.
    pub data: Box<RawValue>,
    /// With a key, the event is also the latest state of `(topic, key)`.
    pub key: Option<Box<str>>,
    /// Removes the state of `(topic, key)`.
    pub tombstone: bool,
}

impl Draft {
    /// Validates the parts of a publish request. `data` must be valid JSON; it is compacted.
    ///
    /// # Errors
    /// [`DraftError`] names the first part that breaks SPEC §5.
    pub fn new(
        topic: &str,
        kind: Option<&str>,
        data: &RawValue,
        key: Option<&str>,
        tombstone: bool,
    ) -> Result<Self, DraftError> {
        let topic = Topic::new(topic).map_err(|reason| DraftError::Topic { topic: topic.to_owned(), reason })?;
        let kind = kind.unwrap_or(DEFAULT_TYPE);
        if !valid_type(kind) {
            return Err(DraftError::Type(kind.to_owned()));
        }
        if let Some(key) = key {
            if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
                return Err(DraftError::Key(key.to_owned()));
            }
        }
        if tombstone && key.is_none() {
            return Err(DraftError::TombstoneWithoutKey);
        }
        Ok(Self { topic, kind: kind.into(), data: compact_json(data), key: key.map(Into::into), tombstone })
    }
}

fn valid_type(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= MAX_TYPE_LEN
        && !kind.chars().any(char::is_control)
        && !kind.starts_with(RESERVED_PREFIX)
}

/// Removes the insignificant whitespace of valid JSON text.
///
/// Done by hand rather than by parsing into `serde_json::Value` and printing it again because
/// that round trip rounds integers beyond 64 bits and reorders nothing we want reordered: this
/// keeps every token exactly as the publisher wrote it.
fn compact_json(raw: &RawValue) -> Box<RawValue> {
    let text = raw.get();
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    // The input was valid JSON and only whitespace outside strings was dropped.
    RawValue::from_string(out).unwrap_or_else(|_| raw.to_owned())
}

/// An event in a hub's log.
#[derive(Debug, Clone)]
pub struct Event {
    /// Its position in the log.
    pub id: EventId,
    /// Where it was published.
    pub topic: Topic,
    /// Its type.
    pub kind: Box<str>,
    /// Its payload as compact JSON text.
    pub data: Box<RawValue>,
    /// The key whose latest state it is, if any.
    pub key: Option<Box<str>>,
    /// Whether it removes the state of its key.
    pub tombstone: bool,
    /// The encoded SSE frame, shared by every stream that sends it.
    frame: Bytes,
    /// The frame for `envelope=true` streams, encoded the first time one needs it.
    envelope: OnceLock<Bytes>,
}

impl Event {
    /// Gives a draft its id and encodes its frame.
    pub fn new(id: EventId, draft: Draft) -> Self {
        let frame = sse::event_frame(&id.to_string(), &draft.kind, &payload_text(&draft.data));
        Self {
            id,
            topic: draft.topic,
            kind: draft.kind,
            data: draft.data,
            key: draft.key,
            tombstone: draft.tombstone,
            frame,
            envelope: OnceLock::new(),
        }
    }

    /// The event's SSE frame (`id:`, `event:`, `data:` lines and the blank line).
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// The frame for streams opened with `envelope=true`: the same id and type, with data
    /// `{"topic":…,"key":…,"tombstone":…,"data":<payload>}`, for clients (such as the
    /// dashboard's inspector) that must see where an event was published. Encoded once, on
    /// first use, and shared.
    pub fn envelope_frame(&self) -> &Bytes {
        self.envelope.get_or_init(|| {
            let envelope = serde_json::json!({
                "topic": self.topic.as_str(),
                "key": self.key.as_deref(),
                "tombstone": self.tombstone,
                "data": &*self.data,
            });
            sse::event_frame(&self.id.to_string(), &self.kind, &envelope.to_string())
        })
    }
}

/// The text sent in `data:` lines: a JSON string verbatim, any other value as compact JSON.
pub fn payload_text(data: &RawValue) -> std::borrow::Cow<'_, str> {
    let text = data.get();
    if text.starts_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(text) {
            return s.into();
        }
    }
    text.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn ids_round_trip_and_order() {
        let a: EventId = "1700000000000-0".parse().unwrap();
        let b: EventId = "1700000000000-1".parse().unwrap();
        let c: EventId = "1700000000001-0".parse().unwrap();
        assert!(a < b && b < c);
        assert_eq!(a.to_string(), "1700000000000-0");
        assert_eq!(EventId::from_bytes(b.to_bytes()), b);
        assert!(a.to_bytes() < b.to_bytes() && b.to_bytes() < c.to_bytes());
        assert_eq!(a.next(), b);
    }

    #[test]
    fn ids_reject_foreign_text() {
        for bad in ["", "1", "-1", "1-", "a-1", "1-2-3", " 1-2", "1-2\n", "+1-2", "1-99999999999999999999999"] {
            assert_eq!(bad.parse::<EventId>(), Err(BadId), "{bad:?}");
        }
    }

    #[test]
    fn clock_is_strictly_increasing_even_behind_the_wall_clock() {
        let future = EventId { ms: now_ms() + 60_000, seq: 5 };
        let mut clock = IdClock::after(future);
        let a = clock.next_id();
        let b = clock.next_id();
        assert!(future < a && a < b);
    }

    #[test]
    fn drafts_validate_type_and_key() {
        let d = raw("1");
        assert!(Draft::new("a/b", Some("item.created"), &d, Some("k"), false).is_ok());
        for bad in ["", "herald.reset", "a\nb", "a\rb", "a\0b", &"x".repeat(129)] {
            assert!(matches!(Draft::new("a", Some(bad), &d, None, false), Err(DraftError::Type(_))), "{bad:?}");
        }
        assert!(matches!(Draft::new("a", None, &d, Some("a\nb"), false), Err(DraftError::Key(_))));
        assert!(matches!(Draft::new("a", None, &d, Some(""), false), Err(DraftError::Key(_))));
        assert_eq!(Draft::new("a", None, &d, None, true).unwrap_err(), DraftError::TombstoneWithoutKey);
        assert!(matches!(Draft::new("a b", None, &d, None, false), Err(DraftError::Topic { .. })));
    }

    #[test]
    fn data_is_compacted_exactly() {
        let d = Draft::new(
            "a",
            None,
            &raw("{ \"a\" : [1, 2,\n 3], \"s\": \"x  y\\\" z\", \"n\": 123456789012345678901234567890 }"),
            None,
            false,
        )
        .unwrap();
        assert_eq!(d.data.get(), r#"{"a":[1,2,3],"s":"x  y\" z","n":123456789012345678901234567890}"#);
    }

    #[test]
    fn frames_send_strings_verbatim_and_values_compact() {
        let id = EventId { ms: 1, seq: 2 };
        let e = Event::new(id, Draft::new("a", None, &raw(r#""line1\nline2""#), None, false).unwrap());
        assert_eq!(&e.frame()[..], b"id: 1-2\ndata: line1\ndata: line2\n\n");
        let e = Event::new(id, Draft::new("a", Some("t.x"), &raw(r#"{"k": "v"}"#), None, false).unwrap());
        assert_eq!(&e.frame()[..], b"id: 1-2\nevent: t.x\ndata: {\"k\":\"v\"}\n\n");
        assert_eq!(
            &e.envelope_frame()[..],
            b"id: 1-2\nevent: t.x\ndata: {\"data\":{\"k\":\"v\"},\"key\":null,\"tombstone\":false,\"topic\":\"a\"}\n\n"
        );
    }
}
