//! Cross-origin requests from browsers (SPEC §8), with tower-http's CORS layer.
//!
//! Only a request whose `Origin` is in `cors.allowed_origins` goes through the layer: its
//! preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered, and its answers carry
//! `Access-Control-Allow-Origin: <origin>` and `Access-Control-Allow-Credentials: true`. Any
//! other origin gets no `Access-Control-*` header at all (its preflight falls through to the
//! routes and is refused there), so the browser blocks it. With `"*"` in the list every origin
//! is let in, without credentials, unless it is also listed by name.
//!
//! Every answer of a node with CORS configured says `Vary: Origin`, so a shared cache never
//! hands one origin's answer to another.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsConfig;

/// The request headers a preflight allows (SPEC §8): the token, a publish body's type, and what
/// `EventSource` and its polyfills send on a stream request (`Last-Event-ID` on reconnects;
/// `Cache-Control` from react-native-sse and older `eventsource` builds, `X-Requested-With`
/// from others). A preflight asking for one more is refused by the browser, and the page's
/// stream with it, so the list errs on the side of what clients are seen to send.
const ALLOWED_HEADERS: [header::HeaderName; 5] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    header::HeaderName::from_static("last-event-id"),
    header::CACHE_CONTROL,
    header::HeaderName::from_static("x-requested-with"),
];

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS policy of one node; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Cors(Option<Arc<Policy>>);

#[derive(Debug)]
struct Policy {
    /// Origins allowed by name, with credentials.
    listed: Vec<HeaderValue>,
    listed_layer: CorsLayer,
    /// The layer for any other origin, when `"*"` is configured.
    any_layer: Option<CorsLayer>,
}

impl Cors {
    /// The policy `config` describes; with no origins, none (no CORS headers).
    pub fn new(config: &CorsConfig) -> Self {
        if config.allowed_origins.is_empty() {
            return Self(None);
        }
        // Validated at load (config.rs), so every named origin is a valid header value.
        let listed: Vec<HeaderValue> =
            config.allowed_origins.iter().filter(|o| *o != "*").filter_map(|o| HeaderValue::from_str(o).ok()).collect();
        let base = CorsLayer::new()
            .allow_methods([Method::GET, Method::POST])
            .allow_headers(ALLOWED_HEADERS)
            .expose_headers([header::RETRY_AFTER])
            .max_age(PREFLIGHT_MAX_AGE);
        let listed_layer = base.clone().allow_origin(AllowOrigin::list(listed.clone())).allow_credentials(true);
        let any_layer = config.allowed_origins.iter().any(|o| o == "*").then(|| base.allow_origin(AllowOrigin::any()));
        Self(Some(Arc::new(Policy { listed, listed_layer, any_layer })))
    }
}

/// The middleware: sends requests from allowed origins through the CORS layer.
pub async fn apply(State(cors): State<Cors>, request: Request, next: Next) -> Response {
    let Some(policy) = cors.0.as_deref() else { return next.run(request).await };
    let layer = match request.headers().get(header::ORIGIN) {
        Some(origin) if policy.listed.contains(origin) => Some(&policy.listed_layer),
        Some(_) => policy.any_layer.as_ref(),
        None => None,
    };
    let mut response = match layer {
        Some(layer) => match layer.layer(next).oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => next.run(request).await,
    };
    if !response.headers().contains_key(header::VARY) {
        response.headers_mut().insert(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;

    /// A preflight for every header EventSource polyfills send, from a listed origin and from
    /// any origin under `"*"`.
    #[tokio::test]
    async fn preflight_allows_what_event_source_polyfills_send() {
        let config = CorsConfig { allowed_origins: vec!["https://app.example".into(), "*".into()] };
        let app = axum::Router::new()
            .route("/events", get(|| async { "" }))
            .layer(axum::middleware::from_fn_with_state(Cors::new(&config), apply));
        let asked = "authorization, content-type, last-event-id, cache-control, x-requested-with";
        for origin in ["https://app.example", "https://other.example"] {
            let preflight = Request::builder()
                .method(Method::OPTIONS)
                .uri("/events?topic=a")
                .header(header::ORIGIN, origin)
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
                .header(header::ACCESS_CONTROL_REQUEST_HEADERS, asked)
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(preflight).await.unwrap();
            assert!(response.status().is_success(), "{origin}: {}", response.status());
            let h = response.headers();
            assert_eq!(
                h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
                if origin == "https://other.example" { "*" } else { origin }
            );
            let allowed = h[header::ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap().to_ascii_lowercase();
            let allowed: Vec<&str> = allowed.split(',').map(str::trim).collect();
            for name in asked.split(", ") {
                assert!(allowed.contains(&name), "{origin}: {name} not in {allowed:?}");
            }
        }
    }
}
