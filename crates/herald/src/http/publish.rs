//! `POST /publish` (SPEC §5): JSON (one object or an all-or-nothing array) or a form.
//!
//! Every item is validated, and checked against the token's publish claims, before anything is
//! appended, so a rejected request (400, 403, 413, 415, 429) changes nothing.
//!
//! Validation is what every stream format needs to carry an event unchanged: `data` must be JSON
//! text per RFC 8259 (serde_json checks the grammar and UTF-8; [`Draft::with_max_depth`] what it
//! does not: lone surrogate escapes, and nesting beyond `limits.max_json_depth`), and a form
//! body must be UTF-8 once percent-decoded. Nothing accepted is later parsed again on its way to
//! a subscriber, so nothing accepted can break a stream.
//!
//! [`parse_body`] is the parser of untrusted bodies on its own, for the fuzz target.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::ApiError;
use crate::auth::Access;
use crate::event::Draft;
use crate::server::Hub;

/// One event as a publisher writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    topic: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    data: Box<RawValue>,
    key: Option<String>,
    #[serde(default)]
    tombstone: bool,
}

impl Item {
    fn into_draft(self, max_depth: usize) -> Result<Draft, crate::event::DraftError> {
        Draft::with_max_depth(
            &self.topic,
            self.kind.as_deref(),
            &self.data,
            self.key.as_deref(),
            self.tombstone,
            max_depth,
        )
    }
}

/// Handles `POST /publish`.
///
/// # Errors
/// 400 for a malformed body, topic, type or key; 401 without a valid token; 403 when an event's
/// topic is outside the token's publish claims; 413 over `max_body_bytes`; 415 for a content
/// type other than JSON or a form; 429 over the principal's publish rate.
pub async fn publish(
    State(hub): State<Arc<Hub>>,
    access: Access,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    if let Some(rate) = &hub.publish_rate {
        if let Err(wait) = rate.check(&access.limit_key) {
            // Whole seconds, rounded up: `Retry-After: 0` would invite an immediate retry.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(ApiError::too_many_requests(
                format!(
                    "over limits.publish_rate_per_s ({}/s) for this principal",
                    hub.config.limits.publish_rate_per_s
                ),
                secs.max(1),
            ));
        }
    }
    let max = hub.config.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than max_body_bytes ({max} bytes)"),
        )
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(too_large());
    }
    let bytes = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(too_large()),
        Err(e) => return Err(ApiError::bad_request(format!("could not read the body: {e}"))),
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let drafts = parse_body(content_type, &bytes, hub.config.limits.max_json_depth)?;
    if let Some(denied) = drafts.iter().find(|d| !access.may_publish(&d.topic)) {
        return Err(ApiError::forbidden(format!(
            "the token does not allow publishing to {:?}; nothing was published",
            denied.topic.as_str()
        )));
    }
    let events = hub.publish(drafts).await?;
    let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    Ok(Json(json!({ "ids": ids })))
}

/// Parses a publish body of `content_type` (the header's value; `None` is JSON) into validated
/// drafts, whose data nests at most `max_json_depth` levels (`limits.max_json_depth`).
///
/// # Errors
/// 400 for a malformed body, topic, type, key or data; 415 for a content type other than JSON
/// or a form.
pub fn parse_body(content_type: Option<&str>, bytes: &[u8], max_json_depth: usize) -> Result<Vec<Draft>, ApiError> {
    let content_type = content_type.map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match content_type.as_deref() {
        Some("application/json") | None => parse_json(bytes, max_json_depth),
        Some("application/x-www-form-urlencoded") => Ok(vec![parse_form(bytes)?]),
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("content type {other:?}: send application/json or application/x-www-form-urlencoded"),
        )),
    }
}

fn parse_json(bytes: &[u8], max_depth: usize) -> Result<Vec<Draft>, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let items: Vec<Item> = match first {
        Some(b'[') => {
            serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?
        }
        Some(b'{') => {
            vec![serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?]
        }
        _ => return Err(ApiError::bad_request("the body must be a JSON object or an array of objects")),
    };
    if items.is_empty() {
        return Err(ApiError::bad_request("the batch is empty"));
    }
    let batch = items.len() > 1;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            item.into_draft(max_depth)
                .map_err(|e| ApiError::bad_request(if batch { format!("event {i}: {e}") } else { e.to_string() }))
        })
        .collect()
}

fn parse_form(bytes: &[u8]) -> Result<Draft, ApiError> {
    let mut topic = None;
    let mut data = None;
    let mut kind = None;
    let mut key = None;
    for (name, value) in form_pairs(bytes)? {
        let slot = match &*name {
            "topic" => &mut topic,
            "data" => &mut data,
            "type" => &mut kind,
            "key" => &mut key,
            other => return Err(ApiError::bad_request(format!("unknown form field {other:?}"))),
        };
        if slot.replace(value).is_some() {
            return Err(ApiError::bad_request(format!("form field {name:?} given twice")));
        }
    }
    let topic = topic.ok_or_else(|| ApiError::bad_request("missing form field \"topic\""))?;
    let data = data.ok_or_else(|| ApiError::bad_request("missing form field \"data\""))?;
    let data = serde_json::value::to_raw_value(&data).map_err(|e| ApiError::internal(e.to_string()))?;
    Draft::new(&topic, kind.as_deref(), &data, key.as_deref(), false).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The `name=value` pairs of a form body, percent-decoded (`+` is a space), each of which must
/// be UTF-8.
///
/// By hand rather than with `form_urlencoded::parse`, which replaces invalid UTF-8 with U+FFFD:
/// a publish would then store text that differs from what was sent, silently. Otherwise the
/// same rules: empty pairs are skipped, a `%` not followed by two hex digits is kept as it is.
fn form_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let decode = |part: &[u8]| -> Result<String, ApiError> {
        let mut out = Vec::with_capacity(part.len());
        let mut i = 0;
        while let Some(&b) = part.get(i) {
            let hex = |at: usize| part.get(at).and_then(|&h| char::from(h).to_digit(16));
            match (b, hex(i + 1), hex(i + 2)) {
                (b'%', Some(high), Some(low)) => {
                    // Two hex digits: the value is below 256.
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                (b'+', ..) => out.push(b' '),
                _ => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).map_err(|e| {
            ApiError::bad_request(format!(
                "the form body is not UTF-8 (byte {} of a field, once percent-decoded); nothing was published",
                e.utf8_error().valid_up_to()
            ))
        })
    };
    bytes
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DataError, Event, Format};
    use crate::sse::{Decoder, Item, Message};
    use crate::topic::Pattern;
    use proptest::prelude::*;

    const JSON: Option<&str> = Some("application/json");
    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    fn refused(content_type: Option<&str>, body: &[u8]) -> String {
        match parse_body(content_type, body, 64) {
            Ok(drafts) => panic!("accepted {:?}: {drafts:?}", String::from_utf8_lossy(body)),
            Err(e) => {
                assert_eq!((e.status, e.error), (StatusCode::BAD_REQUEST, "bad_request"), "{}", e.detail);
                e.detail
            }
        }
    }

    #[test]
    fn poison_is_refused_with_a_reason() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let cases: Vec<(String, &str)> = vec![
            (r#"{"topic":"a","data":"\ud800"}"#.into(), "surrogate"),
            (r#"{"topic":"a","data":"\udc00"}"#.into(), "surrogate"),
            (r#"{"topic":"a","data":"\ud800x"}"#.into(), "surrogate"),
            (r#"{"topic":"a","data":{"k":["\ud83d\u0041"]}}"#.into(), "surrogate"),
            (r#"{"topic":"a","data":{"\udbff":1}}"#.into(), "surrogate"),
            (format!(r#"{{"topic":"a","data":{}}}"#, nested(65)), "deep"),
            (format!(r#"{{"topic":"a","data":{}}}"#, nested(200)), "deep"),
            (r#"{"topic":"a","type":"a\nb","data":1}"#.into(), "type"),
            (r#"{"topic":"a","type":"a\rb","data":1}"#.into(), "type"),
            (r#"{"topic":"a","key":"a\r\nb","data":1}"#.into(), "key"),
            (r#"{"topic":"a","key":"a\u0000b","data":1}"#.into(), "key"),
            (r#"{"topic":"a\nb","data":1}"#.into(), "topic"),
            // One bad event fails the whole batch, which names it.
            (r#"[{"topic":"a","data":1},{"topic":"a","data":"\ud800"}]"#.into(), "event 1"),
        ];
        for (body, why) in cases {
            let detail = refused(JSON, body.as_bytes());
            assert!(detail.contains(why), "{body:.80}: {detail}");
        }
        // Invalid UTF-8 in a JSON body, in data and elsewhere.
        refused(JSON, b"{\"topic\":\"a\",\"data\":\"\xff\"}");
        refused(JSON, b"{\"topic\":\"a\",\"data\":{\"\xc3\":1}}");
        refused(JSON, b"{\"topic\":\"\xe2\x82\",\"data\":1}");
        // Exactly the limit is fine, and valid surrogate pairs are.
        let ok = format!(r#"{{"topic":"a","data":{}}}"#, nested(64));
        assert!(parse_body(JSON, ok.as_bytes(), 64).is_ok());
        assert!(parse_body(JSON, ok.as_bytes(), 63).is_err());
        let pair = br#"{"topic":"a","data":{"\ud83d\ude00":"\uD83D\uDE00"}}"#;
        assert_eq!(parse_body(JSON, pair, 64).unwrap()[0].data.get(), r#"{"\ud83d\ude00":"\uD83D\uDE00"}"#);
        let deep = DataError::TooDeep { limit: 64 }.to_string();
        assert!(refused(JSON, format!(r#"{{"topic":"a","data":{}}}"#, nested(65)).as_bytes()).contains(&deep));
    }

    #[test]
    fn form_bodies_must_be_utf8_once_decoded() {
        for body in [
            &b"topic=a&data=%FF"[..],
            b"topic=a&data=caf%C3",
            b"topic=a&data=\xff",
            b"topic=a&d%FFta=x",
            b"topic=a&data=%ED%A0%80",
        ] {
            let detail = refused(FORM, body);
            assert!(detail.contains("UTF-8"), "{detail}");
        }
        for body in [&b"topic=a&data=x&type=a%0Ab"[..], b"topic=a&data=x&key=a%0D%0Ab", b"topic=a&data=x&key=%00"] {
            refused(FORM, body);
        }
        let drafts = parse_body(FORM, b"&topic=a%2Fb&data=caf%C3%A9+%zz%4&&type=t.x&key=k%20", 64).unwrap();
        let draft = &drafts[0];
        assert_eq!((draft.topic.as_str(), &*draft.kind, draft.key.as_deref()), ("a/b", "t.x", Some("k ")));
        assert_eq!(draft.data.get(), r#""café %zz%4""#);
        assert_eq!(parse_body(FORM, b"topic=a&data=", 64).unwrap()[0].data.get(), r#""""#);
    }

    /// JSON number text, as publishers write it: long decimals, exponents, `-0`, integers past
    /// 64 bits, and what the usual printers produce.
    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,40})?([eE][-+]?[0-9]{1,3})?",
            Just("-0".to_owned()),
            Just("0.10600388718287379".to_owned()),
            Just("1e400".to_owned()),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| serde_json::to_string(&f).unwrap()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u128>().prop_map(|n| n.to_string()),
        ]
    }

    /// JSON string text: any characters (escaped where JSON needs it), every short escape,
    /// `\u` escapes of either case, and valid surrogate pairs.
    fn string() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            any::<char>().prop_map(|c| {
                let quoted = serde_json::to_string(&c.to_string()).unwrap();
                quoted[1..quoted.len() - 1].to_owned()
            }),
            prop::sample::select(vec!["\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\r\n"])
                .prop_map(|e| if e == "\r\n" { "\\r\\n".to_owned() } else { e.to_owned() }),
            (prop_oneof![0u32..0xD800, 0xE000u32..0x10000], any::<bool>()).prop_map(|(c, upper)| {
                if upper {
                    format!("\\u{c:04X}")
                } else {
                    format!("\\u{c:04x}")
                }
            }),
            (0x10000u32..0x110000).prop_map(|c| {
                let c = c - 0x10000;
                format!("\\u{:04x}\\u{:04X}", 0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF))
            }),
        ];
        prop::collection::vec(piece, 0..12).prop_map(|pieces| format!("\"{}\"", pieces.concat()))
    }

    /// Compact JSON text built from those numbers and strings.
    fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![number(), string(), Just("true".into()), Just("false".into()), Just("null".into())];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec((string(), inner), 0..6).prop_map(|members| {
                    let members: Vec<String> = members.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    fn decode(frame: &[u8]) -> Message {
        let mut decoder = Decoder::default();
        decoder.push(frame);
        match decoder.next_item() {
            Ok(Some(Item::Event(message))) => message,
            other => panic!("{other:?} from {frame:?}"),
        }
    }

    /// What a plain stream's client reads for `data`: a string's text (line breaks as the SSE
    /// decoder gives them back), any other value's JSON text.
    fn plain(data: &str) -> String {
        match serde_json::from_str::<String>(data) {
            Ok(text) if data.starts_with('"') => text.replace("\r\n", "\n").replace('\r', "\n"),
            _ => data.to_owned(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// What is published comes back byte for byte in every format and every step: live,
        /// replay and snapshot (read back from the embedded store), plain, envelope, Argo CD.
        #[test]
        fn payloads_are_the_published_bytes_in_every_format(values in prop::collection::vec(value(), 1..5)) {
            let mut body = Vec::new();
            for (i, v) in values.iter().enumerate() {
                body.push(format!(r#"{{"topic":"p/x","key":"k{i}","data":{v}}}"#));
                body.push(format!(
                    r#"{{"topic":"argocd/objects/ns/a{i}","key":"ns/a{i}","type":"application.added","data":{}}}"#,
                    app(i, v)
                ));
            }
            let drafts = parse_body(JSON, format!("[{}]", body.join(",")).as_bytes(), 64).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (live, replay, snapshot) = runtime.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let config = crate::Config { data_dir: dir.path().to_owned(), ..crate::Config::default() };
                let hub = crate::Hub::open(config).await.unwrap();
                let live = hub.publish(drafts).await.unwrap();
                let replay = hub.log.read_after(None, 100).await.unwrap();
                let snapshot = hub.log.snapshot(&[Pattern::new("**").unwrap()]).await.unwrap().events;
                (live, replay, snapshot)
            });
            for events in [live, replay, snapshot] {
                prop_assert_eq!(events.len(), 2 * values.len());
                for (pair, v) in events.chunks(2).zip(&values) {
                    let [event, application]: &[std::sync::Arc<Event>; 2] = pair.try_into().unwrap();
                    let i = event.key.as_deref().unwrap().strip_prefix('k').unwrap().to_owned();
                    prop_assert_eq!(event.data.get(), v.as_str());
                    prop_assert_eq!(decode(event.encoded(Format::Plain).unwrap()).data, plain(v));
                    prop_assert_eq!(
                        decode(event.encoded(Format::Envelope).unwrap()).data,
                        format!(r#"{{"topic":"p/x","key":"k{i}","tombstone":false,"data":{v}}}"#)
                    );
                    let i: usize = i.parse().unwrap();
                    let argocd = crate::http::argocd::watch_frame(application).unwrap();
                    prop_assert_eq!(
                        decode(&argocd).data,
                        format!(r#"{{"result":{{"type":"ADDED","application":{}}}}}"#, app(i, v))
                    );
                }
            }
        }
    }

    fn app(i: usize, v: &str) -> String {
        format!(r#"{{"metadata":{{"name":"a{i}","namespace":"ns"}},"v":{v}}}"#)
    }
}
