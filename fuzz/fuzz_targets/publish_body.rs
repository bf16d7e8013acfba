//! `POST /publish` bodies: the first byte picks the content type, the rest is the body.
//! Properties: no panic; every accepted event encodes to an SSE frame that decodes back to
//! its id and type.
#![no_main]

use herald::event::{Event, EventId};
use herald::http::publish::parse_body;
use herald::sse::{Decoder, Item};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 6] = [
    None,
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("application/x-www-form-urlencoded"),
    Some("APPLICATION/X-WWW-FORM-URLENCODED ; q=1"),
    Some("text/plain"),
];

fuzz_target!(|input: &[u8]| {
    let Some((&pick, body)) = input.split_first() else { return };
    let content_type = CONTENT_TYPES[usize::from(pick) % CONTENT_TYPES.len()];
    let Ok(drafts) = parse_body(content_type, body, herald::config::Limits::default().max_json_depth) else { return };
    assert!(!drafts.is_empty());
    for (seq, draft) in drafts.into_iter().enumerate() {
        let kind = draft.kind.to_string();
        let event = Event::new(EventId { ms: 1, seq: seq as u64 }, draft);
        let mut decoder = Decoder::default();
        decoder.push(event.frame());
        let Ok(Some(Item::Event(message))) = decoder.next_item() else {
            panic!("the frame of an accepted event does not decode: {:?}", event.frame());
        };
        assert_eq!(message.id.as_deref(), Some(event.id.to_string().as_str()));
        assert_eq!(message.kind, kind);
    }
});
