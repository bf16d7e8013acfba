//! `POST /publish` bodies through every stream format: the first byte picks the content type,
//! the rest is the body, validated exactly as publish validates it (`parse_body` with the
//! default `limits.max_json_depth`).
//! Properties: no panic; every accepted event encodes in the plain and envelope formats (and in
//! Argo CD's whenever its data is an object), each frame decodes with the SSE decoder to one
//! event, and the payload comes back byte for byte: the stored JSON text (a string's text in
//! plain frames, line breaks as SSE reads them), embedded unchanged in envelopes and Argo CD
//! events.
#![no_main]

use std::collections::BTreeMap;

use herald::config::Limits;
use herald::event::{payload_text, Event, EventId, Format};
use herald::http::argocd::watch_frame;
use herald::http::publish::parse_body;
use herald::sse::{Decoder, Item, Message};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

const CONTENT_TYPES: [Option<&str>; 4] = [
    None,
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("application/json; charset=utf-8"),
];

/// The one event a frame holds.
fn decode(frame: &[u8]) -> Message {
    let mut decoder = Decoder::default();
    decoder.push(frame);
    let Ok(Some(Item::Event(message))) = decoder.next_item() else {
        panic!("a frame does not decode to an event: {frame:?}");
    };
    assert_eq!(decoder.next_item(), Ok(None), "a frame holds more than one event: {frame:?}");
    message
}

/// The members of a JSON object, raw (serde_json reads raw values without recursing, so this
/// holds however deep the payload nests).
fn members(text: &str) -> BTreeMap<String, Box<RawValue>> {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not a JSON object ({e}): {text:?}"))
}

fuzz_target!(|input: &[u8]| {
    let Some((&pick, body)) = input.split_first() else { return };
    let content_type = CONTENT_TYPES[usize::from(pick) % CONTENT_TYPES.len()];
    let Ok(drafts) = parse_body(content_type, body, Limits::default().max_json_depth) else { return };
    for (seq, draft) in drafts.into_iter().enumerate() {
        let event = Event::new(EventId { ms: 1, seq: seq as u64 }, draft);
        let data = event.data.get();
        let id = event.id.to_string();

        let plain = decode(event.encoded(Format::Plain).expect("an accepted event has a plain frame"));
        assert_eq!((plain.id.as_deref(), plain.kind.as_str()), (Some(id.as_str()), &*event.kind));
        let text = payload_text(&event.data).expect("an accepted payload has text");
        assert_eq!(plain.data, text.replace("\r\n", "\n").replace('\r', "\n"));
        if !data.starts_with('"') {
            assert_eq!(plain.data, data);
        }

        let envelope = decode(event.encoded(Format::Envelope).expect("an accepted event has an envelope"));
        assert_eq!((envelope.id.as_deref(), envelope.kind.as_str()), (Some(id.as_str()), &*event.kind));
        let json = |s: &str| serde_json::to_string(s).expect("a string prints as JSON");
        let key = event.key.as_deref().map_or_else(|| "null".to_owned(), json);
        let want = format!(
            r#"{{"topic":{},"key":{key},"tombstone":{},"data":{data}}}"#,
            json(event.topic.as_str()),
            event.tombstone
        );
        assert_eq!(envelope.data, want);
        assert_eq!(members(&envelope.data)["data"].get(), data);

        match watch_frame(&event) {
            Ok(frame) => {
                let watch = decode(&frame);
                assert_eq!((watch.id, watch.kind.as_str()), (None, "message"));
                let result = members(members(&watch.data)["result"].get());
                assert!(matches!(result["type"].get(), r#""ADDED""# | r#""MODIFIED""# | r#""DELETED""#));
                assert_eq!(result["application"].get(), data);
            }
            Err(_) => assert!(!data.starts_with('{'), "an object was refused as an application: {data:?}"),
        }
    }
});
