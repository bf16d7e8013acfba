//! Topic and pattern parsing, and the pattern algebra authorisation relies on. The input is
//! split on its first NUL into two patterns (and, after a second NUL, a topic).
//! Properties: no panic; a topic both patterns match means they intersect; a pattern that
//! covers another matches every topic the other does; both relations agree with themselves
//! when swapped or repeated.
#![no_main]

use herald::topic::{Pattern, Topic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else { return };
    let mut parts = text.splitn(3, '\0');
    let a = parts.next().unwrap_or("");
    let b = parts.next().unwrap_or(a);
    let t = parts.next().unwrap_or(b);
    let _ = Topic::new(a);
    let (Ok(pa), Ok(pb)) = (Pattern::new(a), Pattern::new(b)) else { return };
    assert_eq!(pa.as_str(), a);
    assert_eq!(pa.to_string().parse::<Pattern>().as_ref(), Ok(&pa));
    assert!(pa.intersects(&pa) && pa.covers(&pa));
    assert_eq!(pa.intersects(&pb), pb.intersects(&pa));
    if pa.covers(&pb) {
        assert!(pa.intersects(&pb), "{pa} covers {pb} yet they do not meet");
    }
    if pa.covers(&pb) && pb.covers(&pa) {
        assert_eq!(pa, pb, "two different patterns cover each other");
    }
    // A topic made from the pattern by filling in its wildcards must match it.
    let filled = a.split('/').map(|s| if s.starts_with('*') { "x" } else { s }).collect::<Vec<_>>().join("/");
    if let Ok(topic) = Topic::new(&filled) {
        assert!(pa.matches(&topic), "{pa} does not match its own instance {topic}");
    }
    if let Ok(topic) = Topic::new(t) {
        if pa.matches(&topic) && pb.matches(&topic) {
            assert!(pa.intersects(&pb), "{pa} and {pb} both match {topic} yet do not meet");
        }
        if pa.covers(&pb) && pb.matches(&topic) {
            assert!(pa.matches(&topic), "{pa} covers {pb}, which matches {topic}, but {pa} does not");
        }
    }
});
