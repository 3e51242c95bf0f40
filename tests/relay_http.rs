//! The HTTP layer before the WebSocket upgrade (issue 22 item 8): silent, partial and idle
//! connections are closed after the header read timeout, connections not yet upgraded count
//! toward a bound, and an over-long path segment is a 404.
#![cfg(all(feature = "relay", not(target_arch = "wasm32")))]

mod common;

use std::net::SocketAddr;

use common::relay::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads from `stream` until the relay closes it (end of stream or a reset) and returns what
/// came before. Fails if the relay keeps it open longer than the hang guard.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("the relay kept the connection open");
        match read {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// The value of the metric line `name` (`None` if absent).
fn metric(relay: &ants_coord::relay::RelayHandle, name: &str) -> Option<u64> {
    relay.metrics().lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.parse().ok())?
    })
}

/// Waits until the relay serves exactly `count` connections before their upgrade.
async fn until_http_connections(relay: &ants_coord::relay::RelayHandle, count: u64) {
    tokio::time::timeout(PATIENCE, async {
        while metric(relay, "ants_relay_http_connections") != Some(count) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never {count} HTTP connections"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_partial_and_idle_connections_are_closed_after_the_header_timeout() {
    let relay = start_relay_with(temp_dir("http-timeout"), |config| {
        config.limits.header_read_timeout_ms = 300;
    })
    .await;
    let addr: SocketAddr = relay.local_addr();
    // Nothing at all.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Part of a request line; part of the headers.
    let mut line = TcpStream::connect(addr).await.unwrap();
    line.write_all(b"GET /heal").await.unwrap();
    let mut headers = TcpStream::connect(addr).await.unwrap();
    headers
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // A whole request answered, then an idle keep-alive.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    for (name, stream) in [
        ("silent", &mut silent),
        ("partial line", &mut line),
        ("partial headers", &mut headers),
    ] {
        let got = read_until_closed(stream).await;
        assert!(!got.contains("200 OK"), "{name}: {got}");
    }
    let got = read_until_closed(&mut idle).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert_eq!(got.matches("HTTP/1.1").count(), 1, "{got}");
    until_http_connections(&relay, 0).await;
    // The relay still answers.
    http_get(addr, "/healthz").await;
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_bound_a_new_connection_evicts_the_oldest_waiting_one() {
    let relay = start_relay_with(temp_dir("http-bound"), |config| {
        config.limits.max_http_connections = 4;
    })
    .await;
    let addr = relay.local_addr();
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    until_http_connections(&relay, 4).await;
    // A health check is answered: the oldest silent connection made room for it.
    http_get(addr, "/healthz").await;
    assert_eq!(read_until_closed(&mut silent[0]).await, "");
    assert_eq!(metric(&relay, "ants_relay_http_evicted_total"), Some(1));
    until_http_connections(&relay, 3).await;
    // Upgraded connections do not count: with 3 waiting, a WebSocket connection and then a
    // health check evict nobody.
    let mut client = Client::connect_as(&relay.url(), &identity(1)).await;
    until_http_connections(&relay, 3).await;
    http_get(addr, "/healthz").await;
    assert_eq!(metric(&relay, "ants_relay_http_evicted_total"), Some(1));
    drop(silent);
    until_http_connections(&relay, 0).await;
    assert_eq!(
        client.publish_ok(&op(&identity(1), "t", 0, b"")).await,
        0,
        "the WebSocket connection works"
    );
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_segment_longer_than_a_file_name_is_not_found() {
    let data = temp_dir("http-long-path");
    let www = data.join("www");
    std::fs::create_dir_all(www.join("pkg")).unwrap();
    std::fs::write(www.join("index.html"), "<p>hi</p>").unwrap();
    let relay = start_relay_with(data.join("relay"), |config| {
        config.www = Some(www.clone());
        config.pkg = Some(www.join("pkg"));
    })
    .await;
    let addr = relay.local_addr();
    let long = "a".repeat(256);
    for path in [
        format!("/{long}"),
        format!("/dir/{long}/x.js"),
        format!("/pkg/{long}"),
        format!("/yjs/{long}"),
        format!("/{}", "%61".repeat(256)),
    ] {
        let response = http_get_any(addr, &path).await;
        assert!(response.starts_with("HTTP/1.1 404"), "{path}: {response}");
    }
    // A name of 255 bytes is an ordinary missing file; the page is still served.
    let response = http_get_any(addr, &format!("/{}", "a".repeat(255))).await;
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    assert!(http_get(addr, "/index.html").await.contains("<p>hi</p>"));
    relay.shutdown().await.unwrap();
}
