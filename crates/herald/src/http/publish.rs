//! `POST /publish` (SPEC §5): JSON (one object or an all-or-nothing array) or a form.
//!
//! Every item is validated, and checked against the token's publish claims, before anything is
//! appended, so a rejected request (400, 403, 413, 415, 429) changes nothing.
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
    fn into_draft(self) -> Result<Draft, crate::event::DraftError> {
        Draft::new(&self.topic, self.kind.as_deref(), &self.data, self.key.as_deref(), self.tombstone)
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
    let drafts = parse_body(content_type, &bytes)?;
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
/// drafts.
///
/// # Errors
/// 400 for a malformed body, topic, type or key; 415 for a content type other than JSON or a
/// form.
pub fn parse_body(content_type: Option<&str>, bytes: &[u8]) -> Result<Vec<Draft>, ApiError> {
    let content_type = content_type.map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match content_type.as_deref() {
        Some("application/json") | None => parse_json(bytes),
        Some("application/x-www-form-urlencoded") => Ok(vec![parse_form(bytes)?]),
        Some(other) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("content type {other:?}: send application/json or application/x-www-form-urlencoded"),
        )),
    }
}

fn parse_json(bytes: &[u8]) -> Result<Vec<Draft>, ApiError> {
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
            item.into_draft()
                .map_err(|e| ApiError::bad_request(if batch { format!("event {i}: {e}") } else { e.to_string() }))
        })
        .collect()
}

fn parse_form(bytes: &[u8]) -> Result<Draft, ApiError> {
    let mut topic = None;
    let mut data = None;
    let mut kind = None;
    let mut key = None;
    for (name, value) in form_urlencoded::parse(bytes) {
        let slot = match &*name {
            "topic" => &mut topic,
            "data" => &mut data,
            "type" => &mut kind,
            "key" => &mut key,
            other => return Err(ApiError::bad_request(format!("unknown form field {other:?}"))),
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(ApiError::bad_request(format!("form field {name:?} given twice")));
        }
    }
    let topic = topic.ok_or_else(|| ApiError::bad_request("missing form field \"topic\""))?;
    let data = data.ok_or_else(|| ApiError::bad_request("missing form field \"data\""))?;
    let data = serde_json::value::to_raw_value(&data).map_err(|e| ApiError::internal(e.to_string()))?;
    Draft::new(&topic, kind.as_deref(), &data, key.as_deref(), false).map_err(|e| ApiError::bad_request(e.to_string()))
}
