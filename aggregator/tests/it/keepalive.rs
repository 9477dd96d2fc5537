//! Keep-alive clients on a raw socket: an answer sent before the request body was read says
//! `connection: close` (the server then closes), and an answer after a body read to its end
//! keeps the connection for the next request.

use crate::helpers::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one response head and its `content-length` body; returns the head, lowercased.
async fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(n > 0, "closed before answering");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + length {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed inside the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    head
}

fn guest_request(content_type: &str, body_len: usize) -> String {
    format!(
        "POST /api/auth/guest HTTP/1.1\r\nhost: test\r\ncontent-type: {content_type}\r\ncontent-length: {body_len}\r\n\r\n"
    )
}

/// Whether the server closed the socket (EOF) within a few seconds.
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// `413` for a body larger than allowed, and `415` for a body of another type, are answered
/// before the body is read: both say `connection: close`, and the server does close.
#[tokio::test]
async fn an_answer_before_the_body_was_read_says_connection_close() {
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // (content type, declared length, bytes sent: past the 4 KiB limit, or half, answer)
    let cases = [
        ("application/json", 64 * 1024, 6 * 1024, "413"),
        ("text/plain", 100, 50, "415"),
    ];
    for (content_type, len, sent, status) in cases {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(guest_request(content_type, len).as_bytes())
            .await
            .unwrap();
        // Only part of the body: the server answers without waiting for the rest.
        s.write_all(&vec![b' '; sent]).await.unwrap();
        let head = read_response(&mut s).await;
        assert!(head.starts_with(&format!("http/1.1 {status}")), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        assert!(
            closed(&mut s).await,
            "the server keeps a connection it said it would close"
        );
    }
}

/// A request whose body was read keeps the connection: a second request on the same socket
/// is answered.
#[tokio::test]
async fn a_body_read_to_its_end_keeps_the_connection() {
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let body = r#"{"name":"Keepalive"}"#;
    s.write_all(format!("{}{body}", guest_request("application/json", body.len())).as_bytes())
        .await
        .unwrap();
    let head = read_response(&mut s).await;
    assert!(head.starts_with("http/1.1 201"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    s.write_all(b"GET /health/live HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let head = read_response(&mut s).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
}
