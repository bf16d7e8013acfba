//! The Server-Sent Events wire format: an encoder for the server and a [`Decoder`] for clients
//! and tests.
//!
//! Frames follow SPEC §2: `id:` (omitted for control events, so a client's last event id only
//! ever names a real event), `event:` (omitted for the default type `message`), one `data:` line
//! per line of the payload (`\r\n`, `\r` and `\n` all break lines), and a blank line.
//!
//! The decoder follows the HTML Living Standard's "interpret an event stream" algorithm, with one
//! addition: a line longer than the decoder's limit is an error instead of unbounded growth.

use bytes::{BufMut, Bytes, BytesMut};

/// The comment written as a heartbeat (the default `heartbeat_style = "comment"`).
pub const HEARTBEAT_COMMENT: &[u8] = b": heartbeat\n\n";

/// Encodes one event. `id` and `kind` must not contain CR, LF or NUL (validated upstream).
pub fn event_frame(id: &str, kind: &str, data: &str) -> Bytes {
    encode(Some(id), kind, data)
}

/// Encodes a control event: no `id:` line, so it never moves a client's last event id.
pub fn control_frame(kind: &str, data: &str) -> Bytes {
    encode(None, kind, data)
}

/// Encodes a frame of `data:` lines alone (no `id:`, no `event:`), as Argo CD's stream sends.
pub fn data_frame(data: &str) -> Bytes {
    encode(None, crate::DEFAULT_TYPE, data)
}

/// The `retry:` line that opens every stream.
pub fn retry_frame(ms: u64) -> Bytes {
    Bytes::from(format!("retry: {ms}\n\n"))
}

fn encode(id: Option<&str>, kind: &str, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + kind.len() + 40);
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.as_bytes());
        out.put_u8(b'\n');
    }
    if kind != crate::DEFAULT_TYPE {
        out.put_slice(b"event: ");
        out.put_slice(kind.as_bytes());
        out.put_u8(b'\n');
    }
    for line in lines(data) {
        out.put_slice(b"data: ");
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.freeze()
}

/// Splits on `\r\n`, `\r` and `\n`; always yields at least one (possibly empty) line, so an
/// empty payload still dispatches an event in the browser.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(s)
            }
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
        }
    })
}

/// What a [`Decoder`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A dispatched event.
    Event(Message),
    /// A `retry:` field with a valid number.
    Retry(u64),
    /// A comment line (without the leading `:`), such as a heartbeat.
    Comment(String),
}

/// One event as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The `id:` field of this event, if it had one.
    pub id: Option<String>,
    /// The event type; `message` when the frame had no `event:` line.
    pub kind: String,
    /// The data lines joined with `\n`.
    pub data: String,
}

/// The decoder met a line longer than its limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SSE line longer than {0} bytes")]
pub struct LineTooLong(pub usize);

/// An incremental SSE parser: feed it bytes as they arrive, take items as they complete.
///
/// Lines are scanned in place: consumed bytes are dropped from the buffer once per [`push`],
/// not once per line, so a burst of small events costs no per-line buffer shuffling.
///
/// [`push`]: Decoder::push
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    /// Where the unconsumed bytes of `buf` start.
    start: usize,
    /// Where to resume scanning for a line end (`start <= scanned`).
    scanned: usize,
    /// The previous line ended in `\r` at the end of the buffer: a leading `\n` belongs to it.
    skip_lf: bool,
    bom_checked: bool,
    max_line: usize,
    id: Option<String>,
    kind: Option<String>,
    data: String,
    has_data: bool,
    last_event_id: String,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(16 * 1024 * 1024)
    }
}

impl Decoder {
    /// A decoder that refuses lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            start: 0,
            scanned: 0,
            skip_lf: false,
            bom_checked: false,
            max_line,
            id: None,
            kind: None,
            data: String::new(),
            has_data: false,
            last_event_id: String::new(),
        }
    }

    /// The last event id the stream set, as `EventSource.lastEventId` would report it.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            let _ = self.buf.split_to(self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete item, if the bytes so far hold one.
    ///
    /// # Errors
    /// [`LineTooLong`] when a line grows past the limit; the decoder should then be dropped.
    pub fn next_item(&mut self) -> Result<Option<Item>, LineTooLong> {
        loop {
            if self.skip_lf && self.start < self.buf.len() {
                if self.buf[self.start] == b'\n' {
                    self.start += 1;
                    self.scanned = self.scanned.max(self.start);
                }
                self.skip_lf = false;
            }
            if !self.bom_checked {
                let head = &self.buf[self.start..];
                if head.len() < 3 && b"\xEF\xBB\xBF".starts_with(head) {
                    // Too short to tell whether a byte-order mark is coming.
                    return Ok(None);
                }
                if head.starts_with(b"\xEF\xBB\xBF") {
                    self.start += 3;
                    self.scanned = self.scanned.max(self.start);
                }
                self.bom_checked = true;
            }
            let Some(pos) =
                self.buf[self.scanned..].iter().position(|&b| b == b'\n' || b == b'\r').map(|p| p + self.scanned)
            else {
                self.scanned = self.buf.len();
                if self.buf.len() - self.start > self.max_line {
                    return Err(LineTooLong(self.max_line));
                }
                return Ok(None);
            };
            let line_start = self.start;
            self.start = pos + 1;
            if self.buf[pos] == b'\r' {
                // CRLF: the LF may not have arrived yet.
                if self.start == self.buf.len() {
                    self.skip_lf = true;
                } else if self.buf[self.start] == b'\n' {
                    self.start += 1;
                }
            }
            self.scanned = self.start;
            let buf = std::mem::take(&mut self.buf);
            let item = self.line(&buf[line_start..pos]);
            self.buf = buf;
            if let Some(item) = item {
                return Ok(Some(item));
            }
        }
    }

    fn line(&mut self, line: &[u8]) -> Option<Item> {
        // Valid UTF-8 (what Herald sends) borrows; anything else is repaired, as browsers do.
        let line = match std::str::from_utf8(line) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(line),
        };
        if line.is_empty() {
            return self.dispatch();
        }
        if let Some(comment) = line.strip_prefix(':') {
            return Some(Item::Comment(comment.strip_prefix(' ').unwrap_or(comment).to_owned()));
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (&*line, ""),
        };
        match field {
            "event" => self.kind = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => {
                self.id = Some(value.to_owned());
                self.last_event_id = value.to_owned();
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                return value.parse().ok().map(Item::Retry);
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<Item> {
        let id = self.id.take();
        let kind = self.kind.take();
        if !self.has_data {
            self.data.clear();
            return None;
        }
        self.has_data = false;
        Some(Item::Event(Message {
            id,
            kind: kind.filter(|k| !k.is_empty()).unwrap_or_else(|| "message".to_owned()),
            data: std::mem::take(&mut self.data),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<Item> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for c in chunks {
            d.push(c);
            while let Some(item) = d.next_item().unwrap() {
                out.push(item);
            }
        }
        out
    }

    fn msg(id: Option<&str>, kind: &str, data: &str) -> Item {
        Item::Event(Message { id: id.map(str::to_owned), kind: kind.to_owned(), data: data.to_owned() })
    }

    #[test]
    fn encodes_per_spec() {
        assert_eq!(&event_frame("1-0", "message", "x")[..], b"id: 1-0\ndata: x\n\n");
        assert_eq!(
            &event_frame("1-0", "a.b", "x\r\ny\rz\n")[..],
            b"id: 1-0\nevent: a.b\ndata: x\ndata: y\ndata: z\ndata: \n\n"
        );
        assert_eq!(&event_frame("1-0", "message", "")[..], b"id: 1-0\ndata: \n\n");
        assert_eq!(&control_frame("herald.synced", "{}")[..], b"event: herald.synced\ndata: {}\n\n");
        assert_eq!(&data_frame("{\"a\":1}")[..], b"data: {\"a\":1}\n\n");
        assert_eq!(&retry_frame(2000)[..], b"retry: 2000\n\n");
    }

    #[test]
    fn decodes_every_line_ending_and_split() {
        let items =
            decode_all(&[b"\xEF\xBB", b"\xBFretry: 10\r", b"\n: hi\rid: 7\nevent: t\ndata: a\r\ndata:b\n\ndata\n\n"]);
        assert_eq!(
            items,
            vec![Item::Retry(10), Item::Comment("hi".into()), msg(Some("7"), "t", "a\nb"), msg(None, "message", "")]
        );
    }

    #[test]
    fn ignores_ids_with_nul_and_events_without_data() {
        let mut d = Decoder::default();
        d.push(b"id: 5\n\nid: a\0b\ndata: x\n\n");
        assert_eq!(d.next_item().unwrap(), Some(msg(None, "message", "x")));
        assert_eq!(d.last_event_id(), "5");
    }

    #[test]
    fn refuses_endless_lines() {
        let mut d = Decoder::new(8);
        d.push(b"data: 0123456789");
        assert_eq!(d.next_item(), Err(LineTooLong(8)));
    }

    proptest! {
        #[test]
        fn round_trip(
            id in "[0-9]{1,13}-[0-9]{1,5}",
            kind in "[a-z][a-z.]{0,20}",
            data in "(?s).{0,200}",
            split in any::<prop::sample::Index>(),
        ) {
            let frame = event_frame(&id, &kind, &data);
            let at = split.index(frame.len() + 1);
            let items = decode_all(&[&frame[..at], &frame[at..]]);
            let expected = data.replace("\r\n", "\n").replace('\r', "\n");
            prop_assert_eq!(items, vec![msg(Some(&id), &kind, &expected)]);
        }

        #[test]
        fn many_frames_in_arbitrary_chunks(
            events in prop::collection::vec(("[a-z]{1,8}", "(?s).{0,60}"), 1..12),
            cuts in prop::collection::vec(1usize..40, 0..30),
        ) {
            let mut stream = Vec::new();
            stream.extend_from_slice(&retry_frame(5));
            for (i, (kind, data)) in events.iter().enumerate() {
                stream.extend_from_slice(&event_frame(&i.to_string(), kind, data));
                stream.extend_from_slice(HEARTBEAT_COMMENT);
            }
            let mut chunks = Vec::new();
            let mut rest = &stream[..];
            for cut in cuts {
                let (head, tail) = rest.split_at(cut.min(rest.len()));
                chunks.push(head);
                rest = tail;
            }
            chunks.push(rest);
            let items = decode_all(&chunks);
            let mut want = vec![Item::Retry(5)];
            for (i, (kind, data)) in events.iter().enumerate() {
                want.push(msg(Some(&i.to_string()), kind, &data.replace("\r\n", "\n").replace('\r', "\n")));
                want.push(Item::Comment("heartbeat".into()));
            }
            prop_assert_eq!(items, want);
        }
    }
}
