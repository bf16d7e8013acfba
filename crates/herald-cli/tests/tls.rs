//! TLS and HTTP/2 (SPEC §8) with a real `herald serve`: ALPN chooses `h2` or `http/1.1`, many
//! SSE streams share one HTTP/2 connection, h2c prior knowledge still works on plaintext, and
//! a bad certificate or key stops the start with a clear error.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;

use common::*;
use http_body_util::BodyExt;

fn tls_node(dir: &std::path::Path, extra: &[(&str, &str)]) -> (Node, rustls::pki_types::CertificateDer<'static>) {
    let (cert, key, root) = certificate(dir);
    let mut env = vec![
        ("HERALD_STORAGE", "memory"),
        ("HERALD_TLS_CERT", cert.to_str().unwrap()),
        ("HERALD_TLS_KEY", key.to_str().unwrap()),
    ];
    env.extend_from_slice(extra);
    let node = Node::start_with(&[], &env);
    assert!(node.log.lock().unwrap().contains("scheme=https"), "{}", node.log.lock().unwrap());
    (node, root)
}

/// Reads an SSE body until an event arrives: its id and data.
async fn first_event(body: &mut hyper::body::Incoming) -> (String, String) {
    let mut decoder = herald::sse::Decoder::new(1 << 20);
    loop {
        let frame = tokio::time::timeout(PATIENCE, body.frame()).await.unwrap().unwrap().unwrap();
        decoder.push(frame.data_ref().unwrap());
        while let Some(item) = decoder.next_item().unwrap() {
            if let herald::sse::Item::Event(m) = item {
                return (m.id.unwrap(), m.data);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_h2_carries_many_streams_on_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (node, root) = tls_node(dir.path(), &[]);
    let port = node.addr.port();
    let connector = tls_connector(&root, &["h2", "http/1.1"]);
    let mut send = h2_connect(node.addr, &connector).await.unwrap();
    let mut streams = Vec::new();
    for i in 0..12 {
        let resp = h2_get(&mut send, port, &format!("/events?topic=tls/{i}")).await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        streams.push(resp.into_body());
    }
    // All twelve are open at once on this one connection.
    let ready = h2_get(&mut send, port, "/ready").await.unwrap();
    let ready = ready.into_body().collect().await.unwrap().to_bytes();
    let ready: serde_json::Value = serde_json::from_slice(&ready).unwrap();
    assert_eq!(ready["clients"], 12, "{ready}");
    // Publish (on a second connection: the first one's sender is typed for bodiless requests);
    // each stream gets its own event.
    let events: Vec<String> = (0..12).map(|i| format!(r#"{{"topic":"tls/{i}","data":{i}}}"#)).collect();
    let mut post = hyper::client::conn::http2::handshake::<_, _, http_body_util::Full<bytes::Bytes>>(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls_connect(node.addr, &tls_connector(&root, &["h2"])).await.unwrap().0),
    )
    .await
    .unwrap();
    tokio::spawn(post.1);
    let req = http::Request::post(format!("https://localhost:{port}/publish"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(format!("[{}]", events.join(",")))))
        .unwrap();
    let resp = post.0.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    for (i, body) in streams.iter_mut().enumerate() {
        let (_, data) = first_event(body).await;
        assert_eq!(data, i.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_over_tls_and_h2c_on_plaintext_also_work() {
    let dir = tempfile::tempdir().unwrap();
    let (node, root) = tls_node(dir.path(), &[]);
    let (tls, alpn) = tls_connect(node.addr, &tls_connector(&root, &["http/1.1"])).await.unwrap();
    assert_eq!(alpn.as_deref(), Some("http/1.1"));
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/health")
        .header("host", "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!((resp.status(), resp.version()), (http::StatusCode::OK, http::Version::HTTP_11));

    // Plaintext: HTTP/2 with prior knowledge.
    let plain = Node::start_with(&[], &[("HERALD_STORAGE", "memory")]);
    let tcp = tokio::net::TcpStream::connect(plain.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://{}/health", plain.addr))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!((resp.status(), resp.version()), (http::StatusCode::OK, http::Version::HTTP_2));
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = tls_node(dir.path(), &[("HERALD_LIMITS_HEADER_READ_TIMEOUT_MS", "200")]);
    let mut tcp = std::net::TcpStream::connect(node.addr).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    // Say nothing: the node closes the connection (a read timeout here would be an error).
    let mut buf = [0; 16];
    assert_eq!(tcp.read(&mut buf).unwrap(), 0);
}

#[test]
fn unreadable_or_mismatched_certificates_stop_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = certificate(dir.path());
    let other = tempfile::tempdir().unwrap();
    let (_, other_key, _) = certificate(other.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let serve = |cert: &std::path::Path, key: &std::path::Path| {
        run_herald(
            &["serve", "--listen", "127.0.0.1:0"],
            &[
                ("HERALD_STORAGE", "memory"),
                ("HERALD_TLS_CERT", cert.to_str().unwrap()),
                ("HERALD_TLS_KEY", key.to_str().unwrap()),
            ],
        )
    };
    let missing = dir.path().join("missing.pem");
    let (ok, err) = serve(&missing, &key);
    assert!(!ok);
    assert!(err.contains("cannot read the certificate chain") && err.contains("missing.pem"), "{err}");
    let (ok, err) = serve(&garbage, &key);
    assert!(!ok);
    assert!(err.contains("holds no PEM certificate"), "{err}");
    let (ok, err) = serve(&cert, &garbage);
    assert!(!ok);
    assert!(err.contains("cannot read the private key"), "{err}");
    let (ok, err) = serve(&cert, &other_key);
    assert!(!ok);
    assert!(err.contains("cannot be used together"), "{err}");
    let (ok, err) = run_herald(
        &["serve", "--listen", "127.0.0.1:0"],
        &[("HERALD_STORAGE", "memory"), ("HERALD_TLS_CERT", cert.to_str().unwrap())],
    );
    assert!(!ok);
    assert!(err.contains("tls.key"), "{err}");
}
