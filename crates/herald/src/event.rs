//! Events and their ids.
//!
//! An [`EventId`] is `<ms>-<seq>`: the publish time in Unix milliseconds and a sequence number
//! within that millisecond, the same shape as a Redis Streams id, so an id means the same thing
//! whether the embedded log or Redis (cluster mode) assigned it. Ids are totally ordered and a
//! hub assigns them in strictly increasing order, never behind an id it already gave, even when
//! the wall clock steps back ([`IdClock`]).
//!
//! A [`Draft`] is a validated publish request; an [`Event`] is a draft with its id and its SSE
//! frames, encoded once here and shared by every subscriber that receives it.
//!
//! # Payloads
//! An event's `data` is kept as the publisher's JSON text, compacted (insignificant whitespace
//! dropped, every token kept as written), and every stream format embeds those bytes as they
//! are: nothing on the way to a subscriber parses and prints a payload again, which would round
//! numbers (`0.10600388718287379` would become `0.1060038871828738`) and could fail on text a
//! parser refuses. What publish accepts ([`Draft::with_max_depth`]) is therefore what every
//! format can carry: valid JSON per RFC 8259 (no lone UTF-16 surrogate escape, which no UTF-8
//! text can hold) nested no deeper than a limit.
//!
//! # Events that cannot be encoded
//! A stored event may still hold what publish refuses today (written by an older version, or by
//! another node of a cluster). Encoding never panics: a format that cannot carry an event
//! yields an [`EncodeError`] (logged once, where it is encoded), and streams skip that event
//! instead of ending, so one bad event never takes other subscribers' streams down.

use std::borrow::Cow;
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
/// The type of an event published without one; its SSE frame has no `event:` line (one
/// definition, shared with the codec in `herald-proto`).
pub use herald_proto::DEFAULT_TYPE;
/// The deepest nesting of arrays and objects in any draft's data ([`Draft::new`]); publishers
/// are held to `limits.max_json_depth`, which configuration keeps at or below this.
pub const MAX_JSON_DEPTH: usize = 1024;

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
    /// The data is JSON that not every stream format can carry.
    #[error("invalid data: {0}")]
    Data(#[from] DataError),
}

/// What is wrong with a draft's `data` beyond its JSON grammar (which serde_json checks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// Arrays and objects nest deeper than the limit.
    #[error("arrays and objects nest more than {limit} levels deep (limits.max_json_depth)")]
    TooDeep {
        /// The limit that applied.
        limit: usize,
    },
    /// A `\uD800`-`\uDFFF` escape that is not half of a surrogate pair: not valid JSON text
    /// (RFC 8259 §8.2) and not representable in UTF-8, so no subscriber could be sent it as text.
    #[error("lone UTF-16 surrogate escape {escape} at byte {at} of the data (RFC 8259 §8.2)")]
    LoneSurrogate {
        /// The escape as written, such as `\ud800`.
        escape: String,
        /// Its byte offset in the data as published.
        at: usize,
    },
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
    /// Validates the parts of an event, with data nested at most [`MAX_JSON_DEPTH`] deep (for
    /// sources; `POST /publish` uses [`Draft::with_max_depth`] with `limits.max_json_depth`).
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
        Self::with_max_depth(topic, kind, data, key, tombstone, MAX_JSON_DEPTH)
    }

    /// Validates the parts of a publish request. `data` is already JSON by its grammar (a
    /// [`RawValue`]); it must also hold no lone surrogate escape and nest arrays and objects at
    /// most `max_depth` levels deep. It is compacted.
    ///
    /// # Errors
    /// [`DraftError`] names the first part that breaks SPEC §5.
    pub fn with_max_depth(
        topic: &str,
        kind: Option<&str>,
        data: &RawValue,
        key: Option<&str>,
        tombstone: bool,
        max_depth: usize,
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
        let data = compact_checked(data, max_depth)?;
        Ok(Self { topic, kind: kind.into(), data, key: key.map(Into::into), tombstone })
    }
}

fn valid_type(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= MAX_TYPE_LEN
        && !kind.chars().any(char::is_control)
        && !kind.starts_with(RESERVED_PREFIX)
}

/// Removes the insignificant whitespace of valid JSON text, and checks what its grammar does not
/// say: no lone surrogate escape, and nesting at most `max_depth` deep.
///
/// Done by hand, in one pass over the bytes and without recursion, because serde_json's
/// `RawValue` checks only the grammar (it skips `\u` escapes without pairing them and nests
/// without a limit) and a parse into `serde_json::Value` would both stop at 128 levels and
/// round numbers when printed again: this keeps every token exactly as the publisher wrote it.
/// It relies on `raw` being valid JSON (escapes complete, strings closed), and still never
/// indexes out of bounds when it is not.
fn compact_checked(raw: &RawValue, max_depth: usize) -> Result<Box<RawValue>, DataError> {
    let text = raw.get();
    let bytes = text.as_bytes();
    let mut out = String::new();
    // Where the run of bytes not yet copied to `out` starts; `out` stays empty (and `raw` is
    // returned as it is) while no whitespace has been dropped.
    let mut copied = 0;
    let mut depth = 0usize;
    let mut in_string = false;
    // The offset of a high surrogate escape still waiting for its low half.
    let mut high: Option<usize> = None;
    let lone = |at: usize| DataError::LoneSurrogate { escape: text.get(at..at + 6).unwrap_or("\\u").to_owned(), at };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if b == b'\\' && bytes.get(i + 1) == Some(&b'u') {
                let unit = text.get(i + 2..i + 6).and_then(|hex| u16::from_str_radix(hex, 16).ok());
                let unit = unit.ok_or_else(|| lone(i))?;
                match (high.take(), unit) {
                    (Some(_), 0xDC00..=0xDFFF) => {}
                    (Some(at), _) => return Err(lone(at)),
                    (None, 0xD800..=0xDBFF) => high = Some(i),
                    (None, 0xDC00..=0xDFFF) => return Err(lone(i)),
                    (None, _) => {}
                }
                i += 6;
                continue;
            }
            // Anything else between a high surrogate and its low half leaves the high one lone.
            if let Some(at) = high {
                return Err(lone(at));
            }
            match b {
                // The escaped character cannot end the string; skip it.
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max_depth {
                        return Err(DataError::TooDeep { limit: max_depth });
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                b' ' | b'\t' | b'\n' | b'\r' => {
                    // Whitespace is ASCII, so `copied..i` lies on character boundaries.
                    out.push_str(text.get(copied..i).unwrap_or_default());
                    copied = i + 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    if let Some(at) = high {
        return Err(lone(at));
    }
    if copied == 0 {
        return Ok(raw.to_owned());
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    // The input was valid JSON and only whitespace outside strings was dropped.
    Ok(RawValue::from_string(out).unwrap_or_else(|_| raw.to_owned()))
}

/// The formats an event is written in on `GET /events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `data:` is the payload itself (SPEC §2).
    Plain,
    /// `data:` is `{"topic","key","tombstone","data"}` (`envelope=true`).
    Envelope,
}

impl Format {
    /// The format's name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Envelope => "envelope",
        }
    }
}

/// Why an event cannot be written in some format. Nothing `POST /publish` accepts causes one;
/// a stored event written before today's checks can (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The type holds CR, LF or NUL, which would break the frame's `event:` line.
    #[error("the type has CR, LF or NUL")]
    Type,
    /// The payload is a JSON string that does not decode to text (a lone surrogate escape).
    #[error("the payload is a JSON string that is not valid text")]
    Payload,
    /// The format needs a JSON object and the payload is not one (Argo CD's applications).
    #[error("the payload is not a JSON object")]
    NotAnObject,
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
    frame: Result<Bytes, EncodeError>,
    /// The frame for `envelope=true` streams, encoded the first time one needs it.
    envelope: OnceLock<Result<Bytes, EncodeError>>,
}

/// What [`Event::frame`] lends for an event without a plain frame.
static NO_FRAME: Bytes = Bytes::new();

impl Event {
    /// Gives a draft its id and encodes its frame.
    pub fn new(id: EventId, draft: Draft) -> Self {
        let frame = check_type(&draft.kind)
            .and_then(|()| payload_text(&draft.data))
            .map(|text| sse::event_frame(&id.to_string(), &draft.kind, &text));
        if let Err(e) = frame {
            cannot_encode(id, &draft.topic, Format::Plain, e);
        }
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

    /// The event's SSE frame (`id:`, `event:`, `data:` lines and the blank line), or no bytes
    /// at all for an event that has none (streams use [`Event::encoded`], which says why).
    pub fn frame(&self) -> &Bytes {
        self.frame.as_ref().unwrap_or(&NO_FRAME)
    }

    /// The event's frame in `format`: shared bytes, encoded once (the envelope on first use).
    ///
    /// The envelope (for `envelope=true` streams: clients, such as the dashboard's inspector,
    /// that must see where an event was published) keeps the same id and type, with data
    /// `{"topic":…,"key":…,"tombstone":…,"data":<payload>}`, the payload embedded as the
    /// stored bytes.
    ///
    /// # Errors
    /// [`EncodeError`] when the event cannot be written in this format; it was logged once
    /// already, and the stream should skip the event.
    pub fn encoded(&self, format: Format) -> Result<&Bytes, EncodeError> {
        let frame = match format {
            Format::Plain => &self.frame,
            Format::Envelope => self.envelope.get_or_init(|| {
                let frame = check_type(&self.kind)
                    .map(|()| sse::event_frame(&self.id.to_string(), &self.kind, &self.envelope_text()));
                if let Err(e) = frame {
                    cannot_encode(self.id, &self.topic, Format::Envelope, e);
                }
                frame
            }),
        };
        frame.as_ref().map_err(|e| *e)
    }

    /// `{"topic":…,"key":…,"tombstone":…,"data":…}`, written directly: the payload is the
    /// stored JSON text, never parsed and printed again.
    fn envelope_text(&self) -> String {
        let data = self.data.get();
        let key_len = self.key.as_deref().map_or(4, str::len);
        let mut out = String::with_capacity(data.len() + self.topic.as_str().len() + key_len + 48);
        out.push_str("{\"topic\":");
        push_json_string(&mut out, self.topic.as_str());
        out.push_str(",\"key\":");
        match self.key.as_deref() {
            Some(key) => push_json_string(&mut out, key),
            None => out.push_str("null"),
        }
        out.push_str(if self.tombstone { ",\"tombstone\":true" } else { ",\"tombstone\":false" });
        out.push_str(",\"data\":");
        out.push_str(data);
        out.push('}');
        out
    }
}

/// Logs, once where the frame is encoded (not once per stream), that an event cannot be sent in
/// `format`. The payload is never logged: it is whatever a publisher sent.
fn cannot_encode(id: EventId, topic: &Topic, format: Format, error: EncodeError) {
    tracing::error!(
        event.id = %id,
        topic = topic.as_str(),
        format = format.as_str(),
        %error,
        "an event cannot be encoded in this format; streams skip it"
    );
}

/// Whether `kind` can go on an `event:` line: publish refuses CR, LF and NUL in a type, but a
/// stored event is checked again, as a frame that broke its line would inject fields.
fn check_type(kind: &str) -> Result<(), EncodeError> {
    if kind.contains(['\r', '\n', '\0']) {
        Err(EncodeError::Type)
    } else {
        Ok(())
    }
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it (`"`, `\` and the control
/// characters), by hand because this cannot fail where serde_json's writer returns a `Result`.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut copied = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0C => "\\f",
            0x00..=0x1F => "",
            _ => continue,
        };
        // `b` is ASCII, so `copied..i` lies on character boundaries.
        out.push_str(s.get(copied..i).unwrap_or_default());
        copied = i + 1;
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        } else {
            out.push_str(escape);
        }
    }
    out.push_str(s.get(copied..).unwrap_or_default());
    out.push('"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The text sent in `data:` lines: a JSON string verbatim, any other value as compact JSON.
///
/// # Errors
/// [`EncodeError::Payload`] for a JSON string that is not valid text (a lone surrogate escape,
/// which publish refuses but an older stored event may hold).
pub fn payload_text(data: &RawValue) -> Result<Cow<'_, str>, EncodeError> {
    let text = data.get();
    if text.starts_with('"') {
        return serde_json::from_str::<String>(text).map(Cow::Owned).map_err(|_| EncodeError::Payload);
    }
    Ok(text.into())
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
            &e.encoded(Format::Envelope).unwrap()[..],
            b"id: 1-2\nevent: t.x\ndata: {\"topic\":\"a\",\"key\":null,\"tombstone\":false,\"data\":{\"k\":\"v\"}}\n\n"
        );
        assert_eq!(e.encoded(Format::Plain).unwrap(), e.frame());
    }

    fn check(data: &str, max_depth: usize) -> Result<Box<RawValue>, DataError> {
        compact_checked(&raw(data), max_depth)
    }

    #[test]
    fn lone_surrogate_escapes_are_refused_anywhere() {
        let lone = [
            (r#""\ud800""#, 1),
            (r#""\udc00""#, 1),
            (r#""\uDBFF""#, 1),
            (r#""x\ud800y""#, 2),
            (r#""\ud800\u0041""#, 1),
            (r#""\ud800\n""#, 1),
            (r#""\ud800\ud800""#, 1),
            (r#""\udc00\ud800""#, 1),
            (r#""\ud800 \udc00""#, 1),
            (r#"{"\ud800":1}"#, 2),
            (r#"{"a":{"k\udfff":null}}"#, 8),
            (r#"[1,"ok","\udfff"]"#, 9),
        ];
        for (data, at) in lone {
            match check(data, 64) {
                Err(DataError::LoneSurrogate { at: got, escape }) => {
                    assert_eq!(got, at, "{data}");
                    assert_eq!(escape.len(), 6, "{data}");
                    assert!(escape.starts_with("\\u"), "{data}");
                }
                other => panic!("{data}: {other:?}"),
            }
        }
        let fine = [
            r#""\ud83d\ude00""#,
            r#""\uD83D\uDE00""#,
            r#"{"\ud83d\ude00":"\u00e9\u0000\uffff\ue000"}"#,
            r#""\\ud800""#,
            r#""\"\\udc00\\""#,
            r#""ok""#,
        ];
        for data in fine {
            assert_eq!(check(data, 64).unwrap().get(), data);
        }
        let e = Draft::new("a", None, &raw(r#"{"k":"\ud800"}"#), None, false).unwrap_err();
        assert!(matches!(e, DraftError::Data(DataError::LoneSurrogate { .. })), "{e}");
        assert!(e.to_string().contains("\\ud800"), "{e}");
    }

    #[test]
    fn nesting_is_limited_and_brackets_in_strings_do_not_count() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(check(&nested(64), 64).is_ok());
        assert_eq!(check(&nested(65), 64).unwrap_err(), DataError::TooDeep { limit: 64 });
        assert_eq!(check(&nested(200), 64).unwrap_err(), DataError::TooDeep { limit: 64 });
        let objects = |n: usize| format!("{}0{}", r#"{"a":"#.repeat(n), "}".repeat(n));
        assert!(check(&objects(3), 3).is_ok());
        assert!(check(&objects(4), 3).is_err());
        assert!(check(r#"[[1],[2],{"a":3}]"#, 2).is_ok());
        assert!(check(r#"["[[[[{{{{","]]]]"]"#, 1).is_ok());
        assert!(check("1", 1).is_ok());
        assert!(Draft::new("a", None, &raw(&nested(MAX_JSON_DEPTH)), None, false).is_ok());
        let e = Draft::with_max_depth("a", None, &raw(&nested(65)), None, false, 64).unwrap_err();
        assert_eq!(e, DraftError::Data(DataError::TooDeep { limit: 64 }));
    }

    #[test]
    fn compaction_keeps_every_token_as_written() {
        for data in ["0.10600388718287379", "-0", "1E+400", r#"{"v":-0.0e-7,"s":"\u00e9 \t"}"#] {
            assert_eq!(check(data, 64).unwrap().get(), data);
        }
        assert_eq!(check("[ 0.10600388718287379 ,\r\n\t-0 ]", 64).unwrap().get(), "[0.10600388718287379,-0]");
    }

    /// A stored event as a log would hand it back, unchecked.
    fn stored(kind: &str, data: &str) -> Event {
        let draft = Draft {
            topic: Topic::new("a/b").unwrap(),
            kind: kind.into(),
            data: raw(data),
            key: None,
            tombstone: false,
        };
        Event::new(EventId { ms: 1, seq: 0 }, draft)
    }

    #[test]
    fn stored_events_publish_would_refuse_are_errors_not_panics() {
        // A lone surrogate as the whole payload: there is no text to send plainly.
        let e = stored("message", r#""\ud800""#);
        assert_eq!(e.encoded(Format::Plain), Err(EncodeError::Payload));
        assert!(e.frame().is_empty());
        let envelope = e.encoded(Format::Envelope).unwrap();
        assert!(std::str::from_utf8(envelope).unwrap().contains(r#","data":"\ud800"}"#));
        // Inside a value, and nested past any parser's limit: embedded as stored, in both.
        let deep = format!(r#"{}"\udc00"{}"#, "[".repeat(300), "]".repeat(300));
        let e = stored("message", &deep);
        assert!(std::str::from_utf8(e.encoded(Format::Plain).unwrap()).unwrap().contains(&deep));
        assert!(std::str::from_utf8(e.encoded(Format::Envelope).unwrap()).unwrap().contains(&deep));
        // A type that would break its line.
        for kind in ["a\nb", "a\rdata: x", "a\0"] {
            let e = stored(kind, "1");
            assert_eq!(e.encoded(Format::Plain), Err(EncodeError::Type));
            assert_eq!(e.encoded(Format::Envelope), Err(EncodeError::Type));
        }
    }

    #[test]
    fn envelopes_escape_keys_and_embed_the_data() {
        let data = r#"{"v":0.10600388718287379,"n":123456789012345678901234567890}"#;
        // Control characters cannot be published in a key, but a stored one is still escaped.
        let key = "k \"q\" \\ \n\t\u{1}\u{7f}é😀";
        let draft = Draft {
            topic: Topic::new("a/b").unwrap(),
            kind: DEFAULT_TYPE.into(),
            data: raw(data),
            key: Some(key.into()),
            tombstone: true,
        };
        let e = Event::new(EventId { ms: 1, seq: 2 }, draft);
        let frame = std::str::from_utf8(e.encoded(Format::Envelope).unwrap()).unwrap().to_owned();
        let text = frame.strip_prefix("id: 1-2\ndata: ").and_then(|t| t.strip_suffix("\n\n")).unwrap();
        let want = format!(
            r#"{{"topic":"a/b","key":{},"tombstone":true,"data":{data}}}"#,
            serde_json::to_string(key).unwrap()
        );
        assert_eq!(text, want);
    }

    proptest::proptest! {
        #[test]
        fn json_strings_are_escaped_as_serde_json_escapes_them(s in "(?s).{0,64}") {
            let mut out = String::new();
            push_json_string(&mut out, &s);
            proptest::prop_assert_eq!(out, serde_json::to_string(&s).unwrap());
        }
    }
}
