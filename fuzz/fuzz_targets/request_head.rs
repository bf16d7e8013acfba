//! The first bytes of a plaintext connection, as the accept loop sees them before it decides
//! whether `herald::direct` or hyper answers (`direct::classify`).
//! Properties: no panic; every prefix of a head taken as a stream was itself partial or taken
//! (never refused), so reading a head in pieces decides the same as reading it whole; a taken
//! head is a `GET` of a streaming path whose length is the whole input; a head answered with an
//! error (400, 431) stays refused, for the same reason, whatever bytes follow it.
#![no_main]

use herald::direct::{classify, Head, STREAM_PATHS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    if let Head::Rejected(rejection) = classify(input) {
        let more = [input, b"\r\n\r\nGET /events HTTP/1.1\r\n\r\n"].concat();
        assert!(matches!(classify(&more), Head::Rejected(r) if r == rejection), "{rejection:?} not kept");
        return;
    }
    let Head::Stream(request, len) = classify(input) else { return };
    assert_eq!(len, input.len());
    assert_eq!(request.method(), http::Method::GET);
    assert!(STREAM_PATHS.contains(&request.uri().path()), "{}", request.uri());
    // Every cut of a short head; 256 spread over a long one (checking all is quadratic).
    let step = (input.len() / 256).max(1);
    for cut in (0..input.len()).step_by(step) {
        assert!(
            matches!(classify(&input[..cut]), Head::Partial),
            "a prefix of {} bytes of a taken head was decided early",
            cut
        );
    }
});
