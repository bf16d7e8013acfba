//! The HTTP API: one module per endpoint group, and the one error type they all answer with.
//!
//! - [`events`]: `GET /events`, the SSE stream.
//! - [`publish`]: `POST /publish`.
//! - [`ops`]: `/health`, `/ready`, `/metrics`, `/subscriptions`.
//! - [`argocd`]: Argo CD's `/api/v1/stream/applications` and `/api/v1/applications`.
//! - [`cors`]: the CORS layer around all of them.
//!
//! Authentication is an extractor, [`Access`](crate::auth::Access): a handler that takes one is
//! protected, one that does not is open. Open today: `/health`, `/ready`, `/metrics` and the
//! static UI.
//!
//! # Answers before the body
//! An HTTP/1 answer given before the request's body was read to its end (a 401 or 429 before a
//! publish body is looked at, a 413 on its declared length, a 404 to a `POST` with a body)
//! carries `Connection: close` (SPEC §7). hyper cannot keep such a connection (the unread body
//! stands where the next request would start) and closes it after the answer; the header tells
//! the client so, and a keep-alive client opens a new connection for its next request instead of
//! writing it into one being closed. Which answers need it is decided by watching the body, not
//! by status: a 403 on publish comes after the body was read and keeps the connection, and a
//! 401 to a `GET /events` (no body) keeps it too: nothing is left unread, so the connection is
//! as good as after a 200, and an `EventSource` retrying with a fresh token saves a handshake.
//! HTTP/2 needs none of this (each request is its own stream).

pub mod argocd;
pub mod cors;
pub mod events;
pub mod ops;
pub mod publish;
pub mod ui;

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use bytes::Bytes;
use hyper::body::{Body as _, Frame, SizeHint};

use crate::server::Hub;

/// The routes of one hub.
pub fn router(hub: Arc<Hub>) -> axum::Router {
    axum::Router::new()
        .route("/events", get(events::subscribe))
        .route("/publish", post(publish::publish))
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/subscriptions", get(ops::subscriptions))
        .route("/api/v1/applications", get(argocd::list))
        .route("/api/v1/stream/applications", get(argocd::stream))
        .route("/", get(ui::dashboard))
        .route("/ui/{*path}", get(ui::asset))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed here")
        })
        .with_state(hub.clone())
        .layer(axum::middleware::from_fn(close_if_body_unread))
        // Outermost, so that every answer (a 401 and a 404 included) carries the CORS headers
        // a listed origin's page needs to read it.
        .layer(axum::middleware::from_fn_with_state(cors::Cors::new(&hub.config.cors), cors::apply))
}

/// Adds `Connection: close` to an HTTP/1 answer given before the request's body was read to
/// its end (see the module docs).
async fn close_if_body_unread(request: Request, next: Next) -> Response {
    if request.version() > Version::HTTP_11 || request.body().is_end_stream() {
        return next.run(request).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| Body::new(Watched { body, read: read.clone() }));
    let mut response = next.run(request).await;
    if !read.load(Ordering::Acquire) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that says when it has been read to its end.
struct Watched {
    body: Body,
    read: Arc<AtomicBool>,
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.body.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// An error answer: always JSON `{"error": <code>, "detail": <text>}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code, such as `bad_request`.
    pub error: &'static str,
    /// What was wrong, for a person.
    pub detail: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and detail.
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        Self { status, error, detail: detail.into(), retry_after: None }
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    /// 401: no valid token; answered with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403: the token does not allow this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 429 with `Retry-After`.
    pub fn too_many_requests(detail: impl Into<String>, retry_after: u64) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", detail) }
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(error: &'static str, detail: impl Into<String>, retry_after: u64) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, error, detail) }
    }

    /// 500: something on our side failed.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.error, "detail": self.detail });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"herald\""));
        }
        response
    }
}

impl From<crate::log::Error> for ApiError {
    fn from(e: crate::log::Error) -> Self {
        match e {
            crate::log::Error::Closed => Self::unavailable("draining", "the node is shutting down", 1),
            crate::log::Error::Unavailable(detail) => Self::unavailable("log_unavailable", detail, 1),
            crate::log::Error::Full(detail) => Self::new(StatusCode::INSUFFICIENT_STORAGE, "log_full", detail),
            other => Self::internal(other.to_string()),
        }
    }
}
