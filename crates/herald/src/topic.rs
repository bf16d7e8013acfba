//! Topic names and subscription patterns (SPEC §1).
//!
//! A [`Topic`] is 1–256 bytes of `/`-separated segments, each non-empty and drawn from
//! `A-Z a-z 0-9 _ . : @ ~ -`. A [`Pattern`] is a topic in which a whole segment may be `*`
//! (exactly one segment) and the last segment may be `**` (one or more remaining segments).
//!
//! Both types are validated on construction, so a value of either type is always well-formed.
//!
//! # Examples
//! ```
//! use herald::topic::{Pattern, Topic};
//! let p: Pattern = "apps/*".parse().unwrap();
//! assert!(p.matches(&"apps/a".parse::<Topic>().unwrap()));
//! assert!(!p.matches(&"apps/a/b".parse::<Topic>().unwrap()));
//! ```

use std::fmt;
use std::str::FromStr;

/// The longest topic or pattern, in bytes.
pub const MAX_LEN: usize = 256;

/// Why a topic or pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Empty, or longer than [`MAX_LEN`] bytes.
    #[error("must be 1 to {MAX_LEN} bytes long")]
    Length,
    /// A segment between two `/` (or at either end) is empty.
    #[error("has an empty segment")]
    EmptySegment,
    /// A byte outside `A-Z a-z 0-9 _ . : @ ~ -` (and `*` in patterns).
    #[error("segment {0:?} has a character outside A-Z a-z 0-9 _ . : @ ~ -")]
    BadChar(String),
    /// `*` or `**` used as part of a segment, or `**` not last.
    #[error("wildcard misplaced in {0:?}: `*` must be a whole segment and `**` the last one")]
    Wildcard(String),
}

fn is_segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'@' | b'~' | b'-')
}

fn check_len(s: &str) -> Result<(), Error> {
    if s.is_empty() || s.len() > MAX_LEN {
        return Err(Error::Length);
    }
    Ok(())
}

fn check_literal(segment: &str) -> Result<(), Error> {
    if segment.is_empty() {
        return Err(Error::EmptySegment);
    }
    if !segment.bytes().all(is_segment_byte) {
        if segment.contains('*') {
            return Err(Error::Wildcard(segment.to_owned()));
        }
        return Err(Error::BadChar(segment.to_owned()));
    }
    Ok(())
}

/// A validated topic name such as `argocd/applications/prod/web`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Box<str>);

impl Topic {
    /// Parses and validates a topic.
    ///
    /// # Errors
    /// [`Error`] says which rule of SPEC §1 the text breaks.
    pub fn new(s: &str) -> Result<Self, Error> {
        check_len(s)?;
        for segment in s.split('/') {
            check_literal(segment)?;
        }
        Ok(Self(s.into()))
    }

    /// The topic's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The topic's segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.split('/')
    }
}

impl FromStr for Topic {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One segment of a [`Pattern`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches exactly this text.
    Literal(Box<str>),
    /// `*`: matches any one segment.
    One,
    /// `**`: matches one or more remaining segments; only ever last.
    Rest,
}

/// A validated subscription pattern such as `apps/*/web` or `argocd/applications/**`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    text: Box<str>,
    segments: Box<[Segment]>,
}

impl Pattern {
    /// Parses and validates a pattern.
    ///
    /// # Errors
    /// [`Error`] says which rule of SPEC §1 the text breaks.
    pub fn new(s: &str) -> Result<Self, Error> {
        check_len(s)?;
        let parts: Vec<&str> = s.split('/').collect();
        let last = parts.len() - 1;
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            segments.push(match *part {
                "*" => Segment::One,
                "**" if i == last => Segment::Rest,
                "**" => return Err(Error::Wildcard((*part).to_owned())),
                literal => {
                    check_literal(literal)?;
                    Segment::Literal(literal.into())
                }
            });
        }
        Ok(Self { text: s.into(), segments: segments.into() })
    }

    /// The pattern's text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The pattern's parsed segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether `topic` matches this pattern.
    pub fn matches(&self, topic: &Topic) -> bool {
        let mut names = topic.segments();
        for segment in self.segments.iter() {
            match segment {
                Segment::Rest => return names.next().is_some(),
                Segment::One => {
                    if names.next().is_none() {
                        return false;
                    }
                }
                Segment::Literal(lit) => {
                    if names.next() != Some(lit) {
                        return false;
                    }
                }
            }
        }
        names.next().is_none()
    }

    /// Whether some topic matches both this pattern and `other`.
    ///
    /// Authorisation uses it to refuse (403) a subscription that could never deliver anything
    /// the subscriber may read. Segments are independent (a `*` or `**` can stand for any
    /// literal), so two patterns overlap exactly when they agree position by position and
    /// their lengths fit: a `**` absorbs the other's remaining segments, at least one of them.
    pub fn intersects(&self, other: &Pattern) -> bool {
        let (a, b) = (&*self.segments, &*other.segments);
        for i in 0.. {
            match (a.get(i), b.get(i)) {
                (None, None) => return true,
                // One pattern ends where the other still needs at least one more segment
                // (a trailing `**` needs one too).
                (None, Some(_)) | (Some(_), None) => return false,
                (Some(Segment::Rest), Some(_)) | (Some(_), Some(Segment::Rest)) => return true,
                (Some(Segment::Literal(x)), Some(Segment::Literal(y))) if x != y => return false,
                (Some(_), Some(_)) => {}
            }
        }
        unreachable!("the loop returns once either pattern ends")
    }

    /// Whether every topic that `other` matches also matches this pattern.
    ///
    /// When the claims' patterns cover each pattern of a subscription, its events need no
    /// per-event check against the claims.
    pub fn covers(&self, other: &Pattern) -> bool {
        let (wide, narrow) = (&*self.segments, &*other.segments);
        for i in 0.. {
            match (wide.get(i), narrow.get(i)) {
                (None, None) => return true,
                (None, Some(_)) | (Some(_), None) => return false,
                // `**` takes any one-or-more tail, and the narrow pattern has at least one.
                (Some(Segment::Rest), Some(_)) => return true,
                // The narrow side allows tails of any length, the wide side a fixed one.
                (Some(_), Some(Segment::Rest)) => return false,
                (Some(Segment::One), Some(_)) => {}
                (Some(Segment::Literal(x)), Some(Segment::Literal(y))) if x == y => {}
                (Some(Segment::Literal(_)), Some(_)) => return false,
            }
        }
        unreachable!("the loop returns once either pattern ends")
    }
}

impl FromStr for Pattern {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Topic {
        Topic::new(s).unwrap()
    }

    #[test]
    fn topics_accept_the_spec_alphabet() {
        for ok in ["a", "items/A01-0002", "argocd/applications/prod/web", "x_y.z:w@v~u-1"] {
            assert!(Topic::new(ok).is_ok(), "{ok}");
        }
        assert!(Topic::new(&"a".repeat(256)).is_ok());
    }

    #[test]
    fn topics_reject_bad_text() {
        assert_eq!(Topic::new(""), Err(Error::Length));
        assert_eq!(Topic::new(&"a".repeat(257)), Err(Error::Length));
        assert_eq!(Topic::new("a//b"), Err(Error::EmptySegment));
        assert_eq!(Topic::new("/a"), Err(Error::EmptySegment));
        assert_eq!(Topic::new("a/"), Err(Error::EmptySegment));
        assert!(matches!(Topic::new("a b"), Err(Error::BadChar(_))));
        assert!(matches!(Topic::new("a\nb"), Err(Error::BadChar(_))));
        assert!(matches!(Topic::new("é"), Err(Error::BadChar(_))));
        assert!(matches!(Topic::new("a/*"), Err(Error::Wildcard(_))));
    }

    #[test]
    fn patterns_reject_misplaced_wildcards() {
        assert!(matches!(Pattern::new("**/a"), Err(Error::Wildcard(_))));
        assert!(matches!(Pattern::new("a/b*"), Err(Error::Wildcard(_))));
        assert!(matches!(Pattern::new("a/***"), Err(Error::Wildcard(_))));
        assert_eq!(Pattern::new("a//*"), Err(Error::EmptySegment));
        assert_eq!(Pattern::new(""), Err(Error::Length));
    }

    #[test]
    fn matching_table() {
        let table: &[(&str, &str, bool)] = &[
            ("apps/*", "apps/a", true),
            ("apps/*", "apps/a/b", false),
            ("apps/*", "apps", false),
            ("apps/**", "apps/a", true),
            ("apps/**", "apps/a/b", true),
            ("apps/**", "apps", false),
            ("apps/**", "other/a", false),
            ("**", "apps", true),
            ("**", "a/b/c/d", true),
            ("*", "a", true),
            ("*", "a/b", false),
            ("*/b", "a/b", true),
            ("*/b", "a/c", false),
            ("a/*/c", "a/x/c", true),
            ("a/*/c", "a/x/y/c", false),
            ("a/*/**", "a/x/y", true),
            ("a/*/**", "a/x", false),
            ("items/A01-0002", "items/A01-0002", true),
            ("items/A01-0002", "items/A01-0003", false),
            ("items", "items/a", false),
            ("items/a", "items", false),
        ];
        for (pattern, topic, want) in table {
            let got = Pattern::new(pattern).unwrap().matches(&t(topic));
            assert_eq!(got, *want, "{pattern} vs {topic}");
        }
    }

    fn p(s: &str) -> Pattern {
        Pattern::new(s).unwrap()
    }

    #[test]
    fn intersection_table() {
        // (a, b, some topic matches both); checked both ways round.
        let table: &[(&str, &str, bool)] = &[
            ("a", "a", true),
            ("a", "b", false),
            ("a", "*", true),
            ("a", "**", true),
            ("a/b", "*", false),
            ("a/b", "**", true),
            ("a/b", "a/*", true),
            ("a/b", "*/b", true),
            ("a/b", "*/c", false),
            ("a/b", "a/**", true),
            ("a", "a/**", false),
            ("a/**", "a/**", true),
            ("a/**", "b/**", false),
            ("a/**", "*/x", true),
            ("a/**", "*", false),
            ("a/**", "**", true),
            ("**", "**", true),
            ("*", "**", true),
            ("*/*", "a/**", true),
            ("*/*", "*", false),
            ("*/*/c", "a/**", true),
            ("*/*/c", "a/b/d", false),
            ("*/*/c", "a/b/c/d", false),
            ("a/*/c", "*/b/*", true),
            ("a/*/c", "*/b/*/d", false),
            ("a/*/**", "a/b", false),
            ("a/*/**", "a/b/c", true),
            ("a/*/**", "*/b/**", true),
            ("a/b/**", "a/c/**", false),
            ("items/A01", "items/A02", false),
            ("x/y/z", "x/**", true),
            ("x/y/z", "x/y/z/**", false),
        ];
        for (a, b, want) in table {
            assert_eq!(p(a).intersects(&p(b)), *want, "{a} ∩ {b}");
            assert_eq!(p(b).intersects(&p(a)), *want, "{b} ∩ {a}");
        }
    }

    #[test]
    fn coverage_table() {
        // (wide, narrow, every topic of narrow matches wide)
        let table: &[(&str, &str, bool)] = &[
            ("a", "a", true),
            ("a", "b", false),
            ("*", "a", true),
            ("a", "*", false),
            ("**", "a", true),
            ("**", "a/b/**", true),
            ("**", "*", true),
            ("**", "**", true),
            ("*", "**", false),
            ("a/**", "a/b", true),
            ("a/**", "a/*/c", true),
            ("a/**", "a/**", true),
            ("a/**", "a", false),
            ("a/**", "b/c", false),
            ("a/**", "*/c", false),
            ("a/*", "a/**", false),
            ("a/*", "a/b", true),
            ("a/*", "a/b/c", false),
            ("*/*", "a/*", true),
            ("a/*", "*/*", false),
            ("a/*/**", "a/b/**", true),
            ("a/*/**", "a/**", false),
            ("a/b/**", "a/*/**", false),
        ];
        for (wide, narrow, want) in table {
            assert_eq!(p(wide).covers(&p(narrow)), *want, "{wide} ⊇ {narrow}");
        }
    }

    #[test]
    fn intersection_and_coverage_agree_with_matching() {
        // Every pattern of up to three segments over {a, b, *, **}, against every topic of up to
        // four segments over {a, b, c}: enough for a `**` to show a tail of one and of two, and
        // for `*` to meet a literal no pattern names. The algebra must agree with brute force.
        fn all(alphabet: &[&str], max_len: usize) -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            let mut layer = vec![String::new()];
            for _ in 0..max_len {
                layer = layer
                    .iter()
                    .flat_map(|prefix| {
                        alphabet
                            .iter()
                            .map(move |s| if prefix.is_empty() { s.to_string() } else { format!("{prefix}/{s}") })
                    })
                    .collect();
                out.extend(layer.iter().cloned());
            }
            out
        }
        let patterns: Vec<Pattern> =
            all(&["a", "b", "*", "**"], 3).iter().filter_map(|s| Pattern::new(s).ok()).collect();
        let topics: Vec<Topic> = all(&["a", "b", "c"], 4).iter().map(|s| t(s)).collect();
        assert!(patterns.len() > 50 && topics.len() == 120);
        for a in &patterns {
            for b in &patterns {
                let brute_common = topics.iter().any(|t| a.matches(t) && b.matches(t));
                assert_eq!(a.intersects(b), brute_common, "{a} ∩ {b}");
                let brute_cover = topics.iter().all(|t| !b.matches(t) || a.matches(t));
                assert_eq!(a.covers(b), brute_cover, "{a} ⊇ {b}");
            }
        }
    }
}
