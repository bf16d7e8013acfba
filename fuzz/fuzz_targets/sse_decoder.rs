//! The SSE decoder (what the client and `herald subscribe` parse server output with). The first
//! byte sets a chunk size; the rest is fed once whole and once in chunks of that size.
//! Properties: no panic; the items, and the last event id, do not depend on how the bytes
//! were split (unless a line was too long, where only "no panic" is asked).
#![no_main]

use herald::sse::{Decoder, Item};
use libfuzzer_sys::fuzz_target;

const MAX_LINE: usize = 512;

fn decode(chunks: impl Iterator<Item = impl AsRef<[u8]>>) -> Option<(Vec<Item>, String)> {
    let mut decoder = Decoder::new(MAX_LINE);
    let mut items = Vec::new();
    for chunk in chunks {
        decoder.push(chunk.as_ref());
        loop {
            match decoder.next_item() {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(_) => return None,
            }
        }
    }
    Some((items, decoder.last_event_id().to_owned()))
}

fuzz_target!(|input: &[u8]| {
    let Some((&size, bytes)) = input.split_first() else { return };
    let size = usize::from(size % 16) + 1;
    let whole = decode(std::iter::once(bytes));
    let chunked = decode(bytes.chunks(size));
    if let (Some(whole), Some(chunked)) = (whole, chunked) {
        assert_eq!(whole, chunked, "chunks of {size} decode differently");
    }
});
