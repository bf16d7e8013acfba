//! Where a stream resumes: `EventId` parsing, the `GET /events` query string, and the
//! `lastEventID` / `Last-Event-ID` choice. The input is split on its first NUL into the query
//! string and the header's bytes.
//! Properties: no panic; an id that parses prints back to itself when canonical and always
//! re-parses to the same id; a query that parses names at least one pattern.
#![no_main]

use herald::event::EventId;
use herald::http::events::{parse_query, start_of, Start};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let (query, header) = match input.iter().position(|&b| b == 0) {
        Some(i) => (&input[..i], Some(&input[i + 1..])),
        None => (input, None),
    };
    let query = String::from_utf8_lossy(query);
    if let Ok(id) = query.parse::<EventId>() {
        let printed = id.to_string();
        assert_eq!(printed.parse::<EventId>(), Ok(id));
        if !query.contains("-0") && !query.starts_with('0') {
            assert_eq!(printed, *query, "a canonical id prints back unchanged");
        }
        assert_eq!(EventId::from_bytes(id.to_bytes()), id);
    }
    let header = header.and_then(|h| HeaderValue::from_bytes(h).ok());
    let Ok(parsed) = parse_query(Some(&query)) else { return };
    assert!(!parsed.patterns.is_empty());
    match start_of(&parsed, header.as_ref()) {
        Start::After(id) => assert_eq!(id.to_string().parse::<EventId>(), Ok(id)),
        Start::Live | Start::Earliest | Start::Foreign => {}
    }
});
