//! Connection limits: slow or idle senders are closed, slow bodies are answered 503, and the
//! server goes on serving everyone else.

use crate::harness::TestServer;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound for "the server closed it": the configured limits are well under a second.
const BOUND: Duration = Duration::from_secs(10);

/// Read until the peer closes the connection; `None` if it is still open after `BOUND`.
async fn read_to_close(c: &mut TcpStream) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        match tokio::time::timeout_at(deadline, c.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(all),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// Read one response's head and its Content-Length body; returns (status, body).
async fn read_response(c: &mut TcpStream) -> (u16, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(BOUND, c.read(&mut buf)).await.expect("an answer in time").expect("read");
        assert!(n > 0, "connection closed before a full answer: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return (status, body.to_owned());
            }
        }
    }
}

#[tokio::test]
async fn slow_headers_and_idle_keep_alive_connections_are_closed() {
    let s = TestServer::start_with_env(&[("TESSERA_HEADER_TIMEOUT_MS", "400")]).await;
    let addr = format!("127.0.0.1:{}", s.port);

    // Headers that never end: closed, without an answer being waited for forever.
    let mut slow = TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    assert!(read_to_close(&mut slow).await.is_some(), "a connection with unfinished headers stayed open");

    // An idle keep-alive connection: served, then closed once idle past the limit.
    let mut idle = TcpStream::connect(&addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let (status, body) = read_response(&mut idle).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert!(read_to_close(&mut idle).await.is_some(), "an idle keep-alive connection stayed open");

    // Headers sent in pieces, well within the limit, are served.
    let mut pieces = TcpStream::connect(&addr).await.expect("connect");
    pieces.write_all(b"GET /healthz HTTP/1.1\r\n").await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    pieces.write_all(b"Host: x\r\n\r\n").await.expect("write");
    assert_eq!(read_response(&mut pieces).await.0, 200);

    // A request in flight for longer than the limit (its body comes late) is not cut off:
    // the limit is for connections with nothing in flight.
    let mut late = TcpStream::connect(&addr).await.expect("connect");
    let body = b"grant_type=client_credentials";
    late.write_all(
        format!(
            "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    tokio::time::sleep(Duration::from_millis(900)).await;
    late.write_all(body).await.expect("write the body");
    let (status, body) = read_response(&mut late).await;
    assert_eq!(status, 401, "the late body's request is answered (no client credentials): {body}");

    // And the server serves the rest as before.
    assert_eq!(s.http.get(format!("{}/healthz", s.base)).send().await.expect("healthz").status().as_u16(), 200);
}

#[tokio::test]
async fn a_body_that_never_arrives_is_answered_503() {
    let s = TestServer::start_with_env(&[("TESSERA_REQUEST_TIMEOUT_MS", "400")]).await;
    let mut c = TcpStream::connect(format!("127.0.0.1:{}", s.port)).await.expect("connect");
    c.write_all(
        b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 60\r\n\r\ngrant_type=",
    )
    .await
    .expect("write");
    let (status, body) = read_response(&mut c).await;
    assert_eq!(status, 503, "a request stuck in its body is answered 503 after the request timeout");
    let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON error body");
    assert_eq!(v["error"], "unavailable", "{v}");
    let (id, secret) = s.create_client("default", "client_credentials", None);
    s.cc_token("default", &id, &secret, None).await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_or_without_a_length() {
    let s = TestServer::start().await;
    let addr = format!("127.0.0.1:{}", s.port);
    let head = |path: &str, framing: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n{framing}\r\n\r\n"
        )
    };

    // Chunked, no length given: counted as it arrives; 413 once past 64 KiB.
    let mut c = TcpStream::connect(&addr).await.expect("connect");
    c.write_all(head("/oauth2/token", "Transfer-Encoding: chunked").as_bytes()).await.expect("write");
    let chunk = format!("{:x}\r\n{}\r\n", 8192, "a".repeat(8192));
    for _ in 0..9 {
        c.write_all(chunk.as_bytes()).await.expect("write");
    }
    let (status, body) = read_response(&mut c).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"error\":\"invalid_request\"") && body.contains("64 KiB"), "{body}");

    // Chunked and within the limit, in several pieces: read whole.
    let mut c = TcpStream::connect(&addr).await.expect("connect");
    c.write_all(head("/oauth2/token", "Transfer-Encoding: chunked").as_bytes()).await.expect("write");
    for piece in ["grant_type=", "nonesuch"] {
        c.write_all(format!("{:x}\r\n{piece}\r\n", piece.len()).as_bytes()).await.expect("write");
    }
    c.write_all(b"0\r\n\r\n").await.expect("write");
    let (status, body) = read_response(&mut c).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("nonesuch"), "the whole body was read: {body}");

    // The device page: 413 as a page, not as JSON or plain text.
    let mut c = TcpStream::connect(&addr).await.expect("connect");
    let big = "user_code=".to_owned() + &"a".repeat(100 * 1024);
    c.write_all(head("/device", &format!("Content-Length: {}", big.len())).as_bytes()).await.expect("write");
    let _ = c.write_all(big.as_bytes()).await;
    let (status, body) = read_response(&mut c).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("<html") && body.contains("too large"), "{body}");
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_ends() {
    let s = TestServer::start_with_env(&[("TESSERA_MAX_CONNECTIONS", "2")]).await;
    let addr = format!("127.0.0.1:{}", s.port);
    // Two connections hold both slots (served once, then kept open).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(&addr).await.expect("connect");
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
        assert_eq!(read_response(&mut c).await.0, 200);
        held.push(c);
    }
    // A third is queued, not served, while they last...
    let mut third = TcpStream::connect(&addr).await.expect("connect (the listen queue takes it)");
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(800), third.read(&mut buf)).await;
    assert!(early.is_err(), "a connection past the cap was served: {early:?}");
    // ...and served as soon as one of them ends.
    drop(held.pop());
    assert_eq!(read_response(&mut third).await.0, 200);
}
