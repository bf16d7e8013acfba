//! A Rust client for Herald: publish events, and subscribe over SSE with automatic reconnection
//! that resumes from the last event id (so nothing is lost across a reconnect).
//!
//! Plain `http://` only for now.
//!
//! # Examples
//! ```no_run
//! # async fn example() -> Result<(), herald_client::Error> {
//! let client = herald_client::Client::new("http://127.0.0.1:8080")?;
//! let ids = client.publish(&[herald_client::Publish::new("items/1", serde_json::json!({"n": 1}))]).await?;
//! let mut sub = client.subscribe(herald_client::SubscribeOptions::new(["items/*"]));
//! let event = sub.next().await?;
//! assert_eq!(event.id.as_deref(), Some(&*ids[0]));
//! # Ok(()) }
//! ```

use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;

pub use herald_proto::sse::Message;
use herald_proto::sse::{Decoder, Item};

/// Characters left as they are in a query value: the unreserved set of RFC 3986.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// What went wrong talking to Herald.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base URL is not an `http://` URL.
    #[error("invalid URL {0:?}: expected http://host:port")]
    Url(String),
    /// The connection or the request failed.
    #[error("HTTP error: {0}")]
    Http(String),
    /// Herald answered with an error status.
    #[error("{status}: {error}: {detail}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// Herald's error code (`bad_request`, …).
        error: String,
        /// What was wrong.
        detail: String,
    },
    /// The answer was not what Herald sends.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

/// One event to publish (SPEC §5).
#[derive(Debug, Clone, Serialize)]
pub struct Publish {
    /// The topic.
    pub topic: String,
    /// The type; `message` when `None`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The payload.
    pub data: serde_json::Value,
    /// The key whose latest state this event is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Removes the key's state.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tombstone: bool,
}

impl Publish {
    /// An event of the default type with no key.
    pub fn new(topic: impl Into<String>, data: serde_json::Value) -> Self {
        Self { topic: topic.into(), kind: None, data, key: None, tombstone: false }
    }
}

/// What to subscribe to.
#[derive(Debug, Clone, Default)]
pub struct SubscribeOptions {
    /// Topic patterns (at least one).
    pub topics: Vec<String>,
    /// Resume after this id (`earliest` for everything retained).
    pub last_event_id: Option<String>,
    /// Ask for the keyed-state snapshot first.
    pub snapshot: bool,
}

impl SubscribeOptions {
    /// Live events of these patterns.
    pub fn new<S: Into<String>>(topics: impl IntoIterator<Item = S>) -> Self {
        Self { topics: topics.into_iter().map(Into::into).collect(), ..Self::default() }
    }
}

/// A handle on one Herald node.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
}

impl Client {
    /// A client for the node at `base` (`http://host:port`).
    ///
    /// # Errors
    /// [`Error::Url`] when `base` is not an `http://` URL.
    pub fn new(base: &str) -> Result<Self, Error> {
        let base = base.trim_end_matches('/').to_owned();
        let uri: Uri = base.parse().map_err(|_| Error::Url(base.clone()))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(Error::Url(base));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self { base, token: None, http })
    }

    /// Sends `token` as `Authorization: Bearer` on every request.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    fn request(&self, method: http::Method, path_and_query: &str) -> http::request::Builder {
        let mut req = Request::builder().method(method).uri(format!("{}{}", self.base, path_and_query));
        if let Some(token) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        req
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Result<http::Response<Incoming>, Error> {
        self.http.request(req).await.map_err(|e| Error::Http(error_chain(&e)))
    }

    /// Publishes `events` as one all-or-nothing batch; returns their ids.
    ///
    /// # Errors
    /// [`Error::Api`] when Herald refused the batch (then nothing was published), or a transport
    /// error.
    pub async fn publish(&self, events: &[Publish]) -> Result<Vec<String>, Error> {
        let body = serde_json::to_vec(events).map_err(|e| Error::Protocol(e.to_string()))?;
        let req = self
            .request(http::Method::POST, "/publish")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::Http(e.to_string()))?;
        let response = self.send(req).await?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| Error::Http(e.to_string()))?.to_bytes();
        if !status.is_success() {
            return Err(api_error(status, &body));
        }
        #[derive(serde::Deserialize)]
        struct Ids {
            ids: Vec<String>,
        }
        let ids: Ids = serde_json::from_slice(&body).map_err(|e| Error::Protocol(e.to_string()))?;
        Ok(ids.ids)
    }

    /// A subscription that connects on the first [`Subscriber::next`] and reconnects after
    /// every drop, resuming from the last event id it saw.
    pub fn subscribe(&self, options: SubscribeOptions) -> Subscriber {
        Subscriber {
            client: self.clone(),
            last_event_id: options.last_event_id.clone(),
            options,
            body: None,
            decoder: Decoder::default(),
            retry: Duration::from_millis(2000),
            connected_once: false,
            envelope: false,
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

fn api_error(status: StatusCode, body: &[u8]) -> Error {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    Error::Api {
        status,
        error: v["error"].as_str().unwrap_or("").to_owned(),
        detail: v["detail"].as_str().map_or_else(|| String::from_utf8_lossy(body).into_owned(), str::to_owned),
    }
}

/// A live subscription. Call [`Subscriber::next`] in a loop.
#[derive(Debug)]
pub struct Subscriber {
    client: Client,
    options: SubscribeOptions,
    last_event_id: Option<String>,
    body: Option<Incoming>,
    decoder: Decoder,
    retry: Duration,
    connected_once: bool,
    /// Ask for envelope frames (`envelope=true`).
    envelope: bool,
}

impl Subscriber {
    /// Asks for envelope frames (`envelope=true`, SPEC §2): each event's data becomes
    /// `{"topic","key","tombstone","data"}`, so a subscriber of a wildcard pattern can tell which
    /// topic and key an event is of. Control events keep their plain data.
    pub fn with_envelope(mut self, envelope: bool) -> Self {
        self.envelope = envelope;
        self
    }

    /// The id of the last event received (what a reconnect resumes after).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The next event, control events (`herald.reset`, `herald.synced`, `herald.shutdown`)
    /// included. Reconnects as needed, waiting the server's `retry:` between attempts.
    ///
    /// # Errors
    /// [`Error::Api`] for answers a retry cannot fix (400, 401, 403, 404); connection failures
    /// are retried, not returned.
    pub async fn next(&mut self) -> Result<Message, Error> {
        loop {
            match self.decoder.next_item() {
                Ok(Some(Item::Event(message))) => {
                    if let Some(id) = &message.id {
                        self.last_event_id = Some(id.clone());
                    }
                    return Ok(message);
                }
                Ok(Some(Item::Retry(ms))) => self.retry = Duration::from_millis(ms),
                Ok(Some(Item::Comment(_))) => {}
                Ok(None) => self.fill().await?,
                Err(e) => {
                    tracing::warn!(error = %e, "dropping the stream");
                    self.body = None;
                }
            }
        }
    }

    /// Reads more bytes into the decoder, (re)connecting first when there is no stream.
    async fn fill(&mut self) -> Result<(), Error> {
        let Some(body) = self.body.as_mut() else {
            if self.connected_once {
                tokio::time::sleep(self.retry).await;
            }
            self.connected_once = true;
            return self.connect().await;
        };
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    self.decoder.push(data);
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "stream dropped");
                self.body = None;
            }
            None => self.body = None,
        }
        Ok(())
    }

    async fn connect(&mut self) -> Result<(), Error> {
        let mut query = String::from("/events?");
        for topic in &self.options.topics {
            query.push_str("topic=");
            query.extend(utf8_percent_encode(topic, QUERY_VALUE));
            query.push('&');
        }
        if self.options.snapshot {
            query.push_str("snapshot=true&");
        }
        if self.envelope {
            query.push_str("envelope=true&");
        }
        if let Some(id) = &self.last_event_id {
            query.push_str("lastEventID=");
            query.extend(utf8_percent_encode(id, QUERY_VALUE));
        }
        let req = self
            .client
            .request(http::Method::GET, query.trim_end_matches('&'))
            .header(header::ACCEPT, "text/event-stream")
            .body(Full::default())
            .map_err(|e| Error::Http(e.to_string()))?;
        let response = match self.client.send(req).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "connect failed; retrying");
                return Ok(());
            }
        };
        let status = response.status();
        if status.is_success() {
            self.decoder = Decoder::default();
            self.body = Some(response.into_body());
            return Ok(());
        }
        let retry_after =
            response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let err = api_error(status, &body);
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            tracing::debug!(error = %err, "server unavailable; retrying");
            if let Some(secs) = retry_after {
                self.retry = self.retry.max(Duration::from_secs(secs));
            }
            return Ok(());
        }
        Err(err)
    }
}
