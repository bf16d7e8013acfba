//! Security against the real server on 127.0.0.1: tokens and where they come from, forged and
//! confused ones, roles and topic claims (403s, per-event filtering in live, replay and
//! snapshot), expiry mid-stream, per-principal and rate limits, CORS, and the request-head
//! protections of the accept loop.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use herald::config::{AuthConfig, CorsConfig, Limits, Secret};
use herald::Config;
use http::{HeaderMap, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "integration-test-secret";
const RSA_PRIVATE: &str = include_str!("keys/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("keys/rsa_public.pem");
const EC_PRIVATE: &str = include_str!("keys/ec_private.pem");
const EC_PUBLIC: &str = include_str!("keys/ec_public.pem");

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// A server that checks HS256 tokens with [`SECRET`] and no leeway.
fn secured() -> Config {
    Config {
        auth: AuthConfig { jwt_secret: Some(Secret::new(SECRET)), leeway_s: Duration::ZERO, ..AuthConfig::default() },
        ..config()
    }
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
}

/// An HS256 token with [`SECRET`], valid for a minute unless `claims` says otherwise.
fn token(claims: Value) -> String {
    let mut claims = claims;
    if claims.get("exp").is_none() {
        claims["exp"] = json!(now() + 60);
    }
    sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET.as_bytes()), &claims)
}

fn admin() -> String {
    token(json!({"sub": "root", "role": "admin"}))
}

/// A token with `alg: none` and no signature.
fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn get(server: &Server, path: &str, token: Option<&str>) -> (StatusCode, HeaderMap, Value) {
    let auth = token.map(bearer);
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let (status, headers, body) = request_with(server.addr, "GET", path, &headers, bytes::Bytes::new()).await;
    (status, headers, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn publish_as(server: &Server, token: &str, body: Value) -> (StatusCode, HeaderMap, Value) {
    let auth = bearer(token);
    let headers = [("content-type", "application/json"), ("authorization", auth.as_str())];
    let (status, headers, body) = request_with(server.addr, "POST", "/publish", &headers, body.to_string()).await;
    (status, headers, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn publish_ok_as(server: &Server, token: &str, body: Value) -> Vec<String> {
    let (status, _, answer) = publish_as(server, token, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

async fn subscribe_as(server: &Server, query: &str, token: &str) -> Stream {
    open(server.addr, query, &[("authorization", &bearer(token))]).await
}

fn assert_401(status: StatusCode, headers: &HeaderMap, body: &Value) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"herald\"");
    assert_eq!(body["error"], "unauthorized", "{body}");
    assert!(body["detail"].is_string());
}

#[tokio::test]
async fn without_a_token_protected_endpoints_are_401_and_probes_stay_open() {
    let server = start(secured()).await;
    for path in ["/events?topic=a", "/subscriptions"] {
        let (status, headers, body) = get(&server, path, None).await;
        assert_401(status, &headers, &body);
    }
    let (status, headers, body) =
        request(server.addr, "POST", "/publish", Some("application/json"), r#"{"topic":"a","data":1}"#).await;
    assert_401(status, &headers, &serde_json::from_slice(&body).unwrap());
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(get(&server, path, None).await.0, StatusCode::OK, "{path}");
    }
    // Nothing was stored by the refused publish.
    let mut s = subscribe_as(&server, "topic=**&lastEventID=earliest", &admin()).await;
    assert_eq!(s.status, StatusCode::OK);
    s.expect_quiet(Duration::from_millis(200)).await;
    server.stop().await;
}

#[tokio::test]
async fn forged_expired_premature_unsigned_and_garbage_tokens_are_401() {
    let server = start(secured()).await;
    let claims = json!({"sub": "mallory", "role": "admin", "exp": now() + 60});
    let forged = sign(Algorithm::HS256, &EncodingKey::from_secret(b"guessed"), &claims);
    let expired = token(json!({"role": "admin", "exp": now() - 30}));
    let premature = token(json!({"role": "admin", "nbf": now() + 30}));
    let none = unsigned(&claims);
    // A genuine token whose payload was swapped for one granting more.
    let genuine = token(json!({"sub": "v", "role": "viewer"}));
    let parts: Vec<&str> = genuine.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    let bad_role = token(json!({"role": "superuser"}));
    let bad_pattern = token(json!({"herald": {"subscribe": ["a/**/b"]}}));
    let cases = [
        (forged.as_str(), "signature"),
        (expired.as_str(), "expired"),
        (premature.as_str(), "nbf"),
        (none.as_str(), ""),
        (tampered.as_str(), "signature"),
        ("not-a-jwt", ""),
        ("a.b.c", ""),
        (bad_role.as_str(), "claims"),
        (bad_pattern.as_str(), "a/**/b"),
    ];
    for (token, why) in cases {
        for path in ["/events?topic=a", "/subscriptions"] {
            let (status, headers, body) = get(&server, path, Some(token)).await;
            assert_401(status, &headers, &body);
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.contains(why), "{token}: {detail}");
            assert!(!detail.contains(token), "the detail never echoes the token");
        }
        let (status, headers, body) = publish_as(&server, token, json!({"topic": "a", "data": 1})).await;
        assert_401(status, &headers, &body);
    }
    // The genuine ones pass.
    assert_eq!(get(&server, "/subscriptions", Some(&admin())).await.0, StatusCode::OK);
    assert_eq!(subscribe_as(&server, "topic=a", &genuine).await.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn numeric_dates_with_fractions_are_accepted_and_still_checked() {
    let server = start(secured()).await;
    let now = now() as f64;
    // RFC 7519 NumericDates may have fractions; some issuers (Python's time.time()) write them.
    let fractional =
        token(json!({"sub": "f", "role": "admin", "exp": now + 60.5, "nbf": now - 1.5, "iat": now - 1.25}));
    assert_eq!(get(&server, "/subscriptions", Some(&fractional)).await.0, StatusCode::OK);
    assert_eq!(subscribe_as(&server, "topic=a", &fractional).await.status, StatusCode::OK);
    publish_ok_as(&server, &fractional, json!({"topic": "a", "data": 1})).await;
    // Still checked: expired, premature, and a fraction does not rescue a bad signature or
    // `alg: none`.
    let claims = json!({"role": "admin", "exp": now + 60.5});
    let cases = [
        (token(json!({"role": "admin", "exp": now - 30.5})), "expired"),
        (token(json!({"role": "admin", "nbf": now + 30.5})), "nbf"),
        (token(json!({"role": "admin", "exp": -1.5})), "claims"),
        (sign(Algorithm::HS256, &EncodingKey::from_secret(b"guessed"), &claims), "signature"),
        (unsigned(&claims), ""),
    ];
    for (token, why) in &cases {
        let (status, headers, body) = get(&server, "/subscriptions", Some(token)).await;
        assert_401(status, &headers, &body);
        assert!(body["detail"].as_str().unwrap().contains(why), "{body}");
        let (status, headers, body) = publish_as(&server, token, json!({"topic": "a", "data": 2})).await;
        assert_401(status, &headers, &body);
    }
    server.stop().await;
}

/// Writes `request` on `socket` and reads one answer (head and `content-length` body): the
/// status, the head, and whether the server then closed the connection.
async fn exchange(socket: &mut tokio::net::TcpStream, request: &str) -> (u16, String, bool) {
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let (head, body_len) = loop {
        let n = tokio::time::timeout(PATIENCE, socket.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
            let len = head.lines().find_map(|l| l.strip_prefix("content-length: ")).map_or(0, |v| v.parse().unwrap());
            seen.drain(..end + 4);
            break (head, len);
        }
    };
    while seen.len() < body_len {
        let n = tokio::time::timeout(PATIENCE, socket.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed in the body");
        seen.extend_from_slice(&buf[..n]);
    }
    // Closed: the next read sees the end at once. Kept: it waits (for the next answer).
    let closed =
        matches!(tokio::time::timeout(Duration::from_millis(300), socket.read(&mut buf)).await, Ok(Ok(0) | Err(_)));
    (head[9..12].parse().unwrap(), head, closed)
}

#[tokio::test]
async fn answers_before_the_body_is_read_close_the_connection_others_keep_it() {
    let server = start(secured()).await;
    let paul = token(json!({"sub": "paul", "role": "viewer", "herald": {"publish": ["p/*"]}}));
    let post = |token: &str, topic: &str| {
        let body = json!({"topic": topic, "data": "x".repeat(100)}).to_string();
        format!(
            "POST /publish HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    // A 401 to a publish is given before its body is read: `Connection: close`, and closed.
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (status, head, closed) = exchange(&mut socket, &post("bad", "p/1")).await;
    assert_eq!(status, 401, "{head}");
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert!(closed, "the server closes after saying so");
    // A 200 and a 403 on publish come after the body was read: the connection is kept, and
    // serves the next request.
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (status, head, closed) = exchange(&mut socket, &post(&paul, "p/1")).await;
    assert_eq!((status, head.contains("connection: close"), closed), (200, false, false), "{head}");
    let (status, head, closed) = exchange(&mut socket, &post(&paul, "elsewhere")).await;
    assert_eq!((status, head.contains("connection: close"), closed), (403, false, false), "{head}");
    // A 401 to a stream request (no body) keeps the connection too.
    let (status, head, closed) =
        exchange(&mut socket, "GET /events?topic=a HTTP/1.1\r\nhost: x\r\nauthorization: Bearer bad\r\n\r\n").await;
    assert_eq!((status, head.contains("connection: close"), closed), (401, false, false), "{head}");
    let (status, _, _) = exchange(&mut socket, &post("bad", "p/1")).await;
    assert_eq!(status, 401, "and the same connection still answers");
    server.stop().await;
}

#[tokio::test]
async fn an_rsa_key_accepts_rs256_and_refuses_algorithm_confusion() {
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_file.path(), RSA_PUBLIC).unwrap();
    let auth = AuthConfig {
        jwt_public_key: Some(key_file.path().display().to_string()),
        leeway_s: Duration::ZERO,
        ..AuthConfig::default()
    };
    let server = start(Config { auth, ..config() }).await;
    let claims = json!({"sub": "svc", "role": "admin", "exp": now() + 60});
    let rs256 = sign(Algorithm::RS256, &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(), &claims);
    assert_eq!(get(&server, "/subscriptions", Some(&rs256)).await.0, StatusCode::OK);
    // The classic confusion: HS256 "signed" with the server's public key as the HMAC secret.
    let confused = sign(Algorithm::HS256, &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()), &claims);
    // Another family's key, and another RSA algorithm than the one configured.
    let es256 = sign(Algorithm::ES256, &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(), &claims);
    let ps256 = sign(Algorithm::PS256, &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(), &claims);
    for bad in [confused, es256, ps256, unsigned(&claims)] {
        let (status, headers, body) = get(&server, "/subscriptions", Some(&bad)).await;
        assert_401(status, &headers, &body);
    }
    server.stop().await;
}

#[tokio::test]
async fn an_ec_key_given_as_pem_text_accepts_es256_only() {
    let auth = AuthConfig { jwt_public_key: Some(EC_PUBLIC.to_owned()), ..AuthConfig::default() };
    let server = start(Config { auth, ..config() }).await;
    let claims = json!({"sub": "svc", "role": "admin", "exp": now() + 60});
    let es256 = sign(Algorithm::ES256, &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(), &claims);
    assert_eq!(get(&server, "/subscriptions", Some(&es256)).await.0, StatusCode::OK);
    let confused = sign(Algorithm::HS256, &EncodingKey::from_secret(EC_PUBLIC.as_bytes()), &claims);
    let rs256 = sign(Algorithm::RS256, &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(), &claims);
    for bad in [confused, rs256] {
        let (status, headers, body) = get(&server, "/subscriptions", Some(&bad)).await;
        assert_401(status, &headers, &body);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_bad_key_stops_the_start() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let auth = AuthConfig { jwt_public_key: Some(RSA_PRIVATE.to_owned()), ..AuthConfig::default() };
    let dir = tempfile::tempdir().unwrap();
    let config = Config { auth, data_dir: dir.path().to_owned(), ..config() };
    let err = herald::run(listener, config, std::future::pending()).await.unwrap_err();
    assert!(err.to_string().contains("private key"), "{err}");
}

#[tokio::test]
async fn tokens_come_from_the_header_then_the_cookie_then_the_query() {
    let server = start(secured()).await;
    let good = token(json!({"sub": "a", "role": "viewer"}));
    let bad = token(json!({"sub": "a", "role": "viewer", "exp": now() - 60}));
    let cookie = |t: &str| format!("theme=dark; herald_token={t}");
    let open_with = |query: String, headers: Vec<(&'static str, String)>| {
        let addr = server.addr;
        async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            open(addr, &query, &headers).await.status
        }
    };
    assert_eq!(open_with(format!("topic=a&access_token={good}"), vec![]).await, StatusCode::OK);
    assert_eq!(open_with("topic=a".into(), vec![("cookie", cookie(&good))]).await, StatusCode::OK);
    assert_eq!(open_with("topic=a".into(), vec![("authorization", bearer(&good))]).await, StatusCode::OK);
    // The first place that has a token decides; a bad one there is not rescued by a later one.
    let header_wins = vec![("authorization", bearer(&bad)), ("cookie", cookie(&good))];
    assert_eq!(open_with(format!("topic=a&access_token={good}"), header_wins).await, StatusCode::UNAUTHORIZED);
    let cookie_wins = vec![("cookie", cookie(&bad))];
    assert_eq!(open_with(format!("topic=a&access_token={good}"), cookie_wins).await, StatusCode::UNAUTHORIZED);
    let cookie_over_query = vec![("cookie", cookie(&good))];
    assert_eq!(open_with(format!("topic=a&access_token={bad}"), cookie_over_query).await, StatusCode::OK);
    // Publishing takes the cookie and the query too.
    let publisher = token(json!({"role": "publisher"}));
    let ct = ("content-type", "application/json");
    let body = r#"{"topic":"a","data":1}"#;
    let path = format!("/publish?access_token={publisher}");
    assert_eq!(request_with(server.addr, "POST", &path, &[ct], body).await.0, StatusCode::OK);
    let c = cookie(&publisher);
    assert_eq!(request_with(server.addr, "POST", "/publish", &[ct, ("cookie", &c)], body).await.0, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn roles_decide_who_may_subscribe_publish_and_list() {
    let server = start(secured()).await;
    let viewer = token(json!({"sub": "vera", "role": "viewer"}));
    let publisher = token(json!({"sub": "paul", "role": "publisher"}));
    let nobody = token(json!({"sub": "nora"}));
    // A token without a role or topic claims may do nothing.
    assert_eq!(subscribe_as(&server, "topic=a", &nobody).await.status, StatusCode::FORBIDDEN);
    let (status, _, body) = publish_as(&server, &nobody, json!({"topic": "a", "data": 1})).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    // A viewer reads everything and publishes nothing.
    let mut s = subscribe_as(&server, "topic=**", &viewer).await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(publish_as(&server, &viewer, json!({"topic": "a", "data": 1})).await.0, StatusCode::FORBIDDEN);
    // A publisher publishes anything; the viewer sees it.
    let ids = publish_ok_as(&server, &publisher, json!({"topic": "x/y", "data": 1})).await;
    assert_eq!(common::ids(&s.events(1).await), ids);
    // Only an admin lists subscriptions, which name the token's sub.
    for t in [&viewer, &publisher, &nobody] {
        let (status, _, body) = get(&server, "/subscriptions", Some(t)).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{body}");
    }
    let (status, _, list) = get(&server, "/subscriptions", Some(&admin())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["principal"], "vera", "{list}");
    server.stop().await;
}

#[tokio::test]
async fn publish_claims_are_checked_for_every_event_before_anything_is_stored() {
    let server = start(secured()).await;
    let scoped = token(json!({"sub": "p", "herald": {"publish": ["items/*"]}}));
    let mut all = subscribe_as(&server, "topic=**", &admin()).await;
    let (status, _, body) = publish_as(
        &server,
        &scoped,
        json!([{"topic": "items/1", "data": 1}, {"topic": "items/1/deep", "data": 2}, {"topic": "items/2", "data": 3}]),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["detail"].as_str().unwrap().contains("items/1/deep"), "{body}");
    all.expect_quiet(Duration::from_millis(200)).await;
    let ids =
        publish_ok_as(&server, &scoped, json!([{"topic": "items/1", "data": 1}, {"topic": "items/2", "data": 2}]))
            .await;
    assert_eq!(common::ids(&all.events(2).await), ids);
    // The replay from the start holds only the accepted batch: the refused one left no trace.
    let mut replay = subscribe_as(&server, "topic=**&lastEventID=earliest", &admin()).await;
    assert_eq!(common::ids(&replay.events(2).await), ids);
    replay.expect_quiet(Duration::from_millis(100)).await;
    server.stop().await;
}

#[tokio::test]
async fn subscribe_claims_refuse_disjoint_patterns_and_filter_live_replay_and_snapshot() {
    let server = start(secured()).await;
    let reader = token(json!({"sub": "r", "herald": {"subscribe": ["items/public/**", "news"]}}));
    // Patterns that can never meet the claims: 403, whatever the step.
    for query in ["topic=items/secret/*", "topic=items/public&topic=other/**", "topic=news/*&lastEventID=earliest"] {
        let s = subscribe_as(&server, query, &reader).await;
        assert_eq!(s.status, StatusCode::FORBIDDEN, "{query}");
    }
    let admin = admin();
    let before = publish_ok_as(
        &server,
        &admin,
        json!([
            {"topic": "items/public/a", "key": "k", "data": "public state"},
            {"topic": "items/secret/b", "key": "k", "data": "secret state"},
            {"topic": "news", "data": "news"},
            {"topic": "items/public", "data": "not below public/"},
        ]),
    )
    .await;
    // Overlapping patterns: 200, and only what the claims allow, in every step.
    let mut live = subscribe_as(&server, "topic=**", &reader).await;
    let mut replay = subscribe_as(&server, "topic=items/**&topic=news&lastEventID=earliest", &reader).await;
    let mut snapshot = subscribe_as(&server, "topic=items/*/*&snapshot=true", &reader).await;
    for s in [&live, &replay, &snapshot] {
        assert_eq!(s.status, StatusCode::OK);
    }
    let replayed = replay.events(2).await;
    assert_eq!(common::ids(&replayed), [before[0].clone(), before[2].clone()]);
    let snap = snapshot.events(2).await;
    assert_eq!((snap[0].data.as_str(), snap[1].kind.as_str()), ("public state", "herald.synced"));
    let after = publish_ok_as(
        &server,
        &admin,
        json!([
            {"topic": "items/secret/c", "data": "secret"},
            {"topic": "items/public/c", "data": "public"},
            {"topic": "news", "data": "news"},
        ]),
    )
    .await;
    assert_eq!(common::ids(&live.events(2).await), [after[1].clone(), after[2].clone()]);
    assert_eq!(common::ids(&replay.events(2).await), [after[1].clone(), after[2].clone()]);
    assert_eq!(common::ids(&snapshot.events(1).await), [after[1].clone()]);
    for s in [&mut live, &mut replay, &mut snapshot] {
        s.expect_quiet(Duration::from_millis(150)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_stream_ends_with_herald_expired_when_its_token_does() {
    let server = start(secured()).await;
    let short = token(json!({"sub": "brief", "role": "viewer", "exp": now() + 2}));
    let started = Instant::now();
    let mut s = subscribe_as(&server, "topic=t", &short).await;
    assert_eq!(s.status, StatusCode::OK);
    let id = publish_ok_as(&server, &admin(), json!({"topic": "t", "data": 1})).await;
    assert_eq!(common::ids(&s.events(1).await), id);
    let end = s.next_event().await;
    assert_eq!((end.kind.as_str(), end.data.as_str()), ("herald.expired", "{}"));
    s.expect_end().await;
    assert!(started.elapsed() <= Duration::from_secs(3), "{:?}", started.elapsed());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(metric(server.addr, "herald_clients_disconnected_total{reason=\"expired\"}").await, 1.0);
    assert_eq!(get(&server, "/ready", None).await.2["clients"], 0);
    server.stop().await;
}

#[tokio::test]
async fn streams_per_principal_are_limited_with_503_and_retry_after() {
    let limits = Limits { max_clients_per_principal: 2, ..Limits::default() };
    let server = start(Config { limits, ..secured() }).await;
    let alice = token(json!({"sub": "alice", "role": "viewer"}));
    let bob = token(json!({"sub": "bob", "role": "viewer"}));
    let a1 = subscribe_as(&server, "topic=a", &alice).await;
    let a2 = subscribe_as(&server, "topic=b", &alice).await;
    assert_eq!((a1.status, a2.status), (StatusCode::OK, StatusCode::OK));
    let (status, headers, body) = get(&server, "/events?topic=c", Some(&alice)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "too_many_streams_for_principal");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(subscribe_as(&server, "topic=a", &bob).await.status, StatusCode::OK);
    // A closed stream gives its place back.
    drop(a1);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let s = subscribe_as(&server, "topic=a", &alice).await;
        if s.status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "alice's place never came back");
        drop(s);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(a2);
    server.stop().await;
}

#[tokio::test]
async fn in_open_mode_the_per_principal_limit_counts_by_address() {
    let limits = Limits { max_clients_per_principal: 1, ..Limits::default() };
    let server = start(Config { limits, ..config() }).await;
    let first = open(server.addr, "topic=a", &[]).await;
    assert_eq!(first.status, StatusCode::OK);
    let (status, headers, _) = request(server.addr, "GET", "/events?topic=b", None, bytes::Bytes::new()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
    let (_, list) = get_json(server.addr, "/subscriptions").await;
    assert_eq!(list[0]["principal"], "anonymous");
    drop(first);
    server.stop().await;
}

#[tokio::test]
async fn publishing_over_the_rate_is_429_with_retry_after_and_stores_nothing() {
    let limits = Limits { publish_rate_per_s: 1, publish_burst: 2, ..Limits::default() };
    let server = start(Config { limits, ..secured() }).await;
    let paul = token(json!({"sub": "paul", "role": "publisher"}));
    let mut all = subscribe_as(&server, "topic=**", &admin()).await;
    publish_ok_as(&server, &paul, json!({"topic": "r", "data": 1})).await;
    publish_ok_as(&server, &paul, json!({"topic": "r", "data": 2})).await;
    let (status, headers, body) = publish_as(&server, &paul, json!({"topic": "r", "data": 3})).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_requests")));
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=1).contains(&retry), "{retry}");
    // Another principal has its own allowance.
    publish_ok_as(&server, &token(json!({"sub": "petra", "role": "publisher"})), json!({"topic": "r", "data": 4}))
        .await;
    let data: Vec<String> = all.events(3).await.into_iter().map(|m| m.data).collect();
    assert_eq!(data, ["1", "2", "4"]);
    all.expect_quiet(Duration::from_millis(100)).await;
    server.stop().await;
}

#[tokio::test]
async fn cors_answers_listed_origins_only() {
    let cors = CorsConfig { allowed_origins: vec!["https://app.example".into(), "http://localhost:5173".into()] };
    let server = start(Config { cors, ..secured() }).await;
    let preflight = |origin: &'static str| {
        let addr = server.addr;
        async move {
            let headers = [
                ("origin", origin),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "authorization, last-event-id"),
            ];
            request_with(addr, "OPTIONS", "/events?topic=a", &headers, bytes::Bytes::new()).await
        }
    };
    let (status, h, _) = preflight("https://app.example").await;
    assert!(status.is_success(), "{status}");
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-allow-credentials"], "true");
    let allowed = h["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    for name in ["authorization", "content-type", "last-event-id"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert!(h["access-control-allow-methods"].to_str().unwrap().contains("GET"));
    let cors_headers = |h: &HeaderMap| h.keys().filter(|k| k.as_str().starts_with("access-control-")).count();
    let (status, h, _) = preflight("https://evil.example").await;
    assert!(!status.is_success(), "{status}");
    assert_eq!(cors_headers(&h), 0, "{h:?}");
    // Actual requests: the listed origin may read answers, a 401 included; others get nothing.
    let (status, h, _) =
        request_with(server.addr, "GET", "/events?topic=a", &[("origin", "http://localhost:5173")], "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(h["access-control-allow-origin"], "http://localhost:5173");
    assert_eq!(h["access-control-allow-credentials"], "true");
    let (status, h, _) = request_with(server.addr, "GET", "/health", &[("origin", "https://evil.example")], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cors_headers(&h), 0, "{h:?}");
    assert!(h["vary"].to_str().unwrap().to_ascii_lowercase().contains("origin"));
    server.stop().await;
}

#[tokio::test]
async fn without_cors_configured_there_are_no_cors_headers() {
    let server = start(config()).await;
    let (_, h, _) = request_with(server.addr, "GET", "/health", &[("origin", "https://app.example")], "").await;
    assert!(!h.keys().any(|k| k.as_str().starts_with("access-control-")), "{h:?}");
    server.stop().await;
}

/// Writes `bytes` on a fresh connection and reads until the server closes it; returns what it
/// wrote back and how long that took.
async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> (String, Duration) {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    socket.write_all(bytes).await.unwrap();
    let mut seen = Vec::new();
    let _ =
        tokio::time::timeout(PATIENCE, socket.read_to_end(&mut seen)).await.expect("the server closes the connection");
    (String::from_utf8_lossy(&seen).into_owned(), started.elapsed())
}

#[tokio::test]
async fn an_oversized_request_head_is_431() {
    let limits = Limits { max_header_bytes: 8192, ..Limits::default() };
    let server = start(Config { limits, ..config() }).await;
    let big = format!("GET /health HTTP/1.1\r\nhost: x\r\nx-pad: {}\r\n\r\n", "p".repeat(20_000));
    let (answer, _) = raw_exchange(server.addr, big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // A head within the limit is served.
    let fine = format!("GET /health HTTP/1.1\r\nhost: x\r\nx-pad: {}\r\nconnection: close\r\n\r\n", "p".repeat(4000));
    let (answer, _) = raw_exchange(server.addr, fine.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn slow_or_silent_clients_are_cut_off_but_open_streams_are_not() {
    let limits = Limits { header_read_timeout_ms: Duration::from_millis(300), ..Limits::default() };
    let server = start(Config { limits, ..config() }).await;
    let mut stream = open(server.addr, "topic=t", &[]).await;
    // Half a request head, then nothing; nothing at all; half an HTTP/2 preface.
    for partial in [&b"GET /events?topic=a HTTP/1.1\r\nhost: x\r\n"[..], b"", b"PRI * HTTP/2.0\r\n"] {
        let (answer, took) = raw_exchange(server.addr, partial).await;
        assert!(!answer.contains("200"), "{answer}");
        assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "{took:?}");
    }
    // An idle kept-alive connection goes the same way after its first request.
    let (answer, took) = raw_exchange(server.addr, b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // The stream opened first is long past the timeout and still delivers.
    let id = publish_ok(server.addr, json!({"topic": "t", "data": 1})).await;
    assert_eq!(common::ids(&stream.events(1).await), id);
    server.stop().await;
}
