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
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("last-event-id"),
            ])
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
