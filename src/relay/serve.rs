//! The HTTP layer in front of the routes: accepting TCP connections and serving HTTP/1.1 on them
//! until they answer a request or upgrade to a WebSocket.
//!
//! `axum::serve` has no timeout before the upgrade, and its connections count toward nothing
//! until a WebSocket handler takes a slot: silent TCP connections, partial request lines or
//! headers and idle keep-alives stayed open for ever, and 1,100 of them used up a 1,024 open-file
//! limit so that `/healthz` and new WebSocket connections timed out (issue 22 item 8). Here:
//!
//! - hyper's HTTP/1 [`http1::Builder::header_read_timeout`] closes a connection whose request
//!   head is not complete within `[limits] header_read_timeout_ms`. hyper starts that clock each
//!   time it waits for a request head, so it covers a silent new connection, a partial request
//!   line or header, and an idle keep-alive connection between two requests alike;
//! - at most `[limits] max_http_connections` connections are served before their upgrade: one
//!   more evicts (closes) the oldest of them (`ants_relay_http_evicted_total`), so such
//!   connections hold a bounded number of file descriptors, and a flood of silent ones cannot
//!   lock out a new request (an honest request is answered in milliseconds; the flood's
//!   connections are older). A connection leaves the count when it upgrades (it then holds a
//!   WebSocket slot of `max_connections`) or closes;
//! - hyper's read buffer, which holds a request head, is at most [`MAX_READ_BUFFER_LEN`];
//! - a path segment longer than a file name may be ([`MAX_SEGMENT_LEN`]) is answered 404
//!   before any route sees it (the static files answered 500 for the file system's
//!   `ENAMETOOLONG`).
//!
//! Shape of axum's own `serve`: an accept loop that spawns one task per connection, each serving
//! the router through hyper with upgrades, and a graceful shutdown on a watch signal.

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use super::metrics::Metrics;
use super::Limits;

/// Longest path segment answered by a route, in bytes once percent-decoded: Linux's `NAME_MAX`,
/// the longest file name. A longer segment is answered 404.
pub const MAX_SEGMENT_LEN: usize = 255;

/// hyper's read buffer per connection, which holds a request head (its default is ~408 KiB):
/// the relay's requests are GETs with small heads, and this is memory every connection before
/// its upgrade may hold.
pub const MAX_READ_BUFFER_LEN: usize = 64 * 1024;

/// What the HTTP layer bounds (from `[limits]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpLimits {
    /// Longest wait for a complete request head (new or kept-alive connection).
    pub header_read_timeout: Duration,
    /// Most connections served before their upgrade.
    pub max_connections: usize,
}

impl HttpLimits {
    /// The HTTP layer's part of `limits`.
    pub fn new(limits: &Limits) -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_millis(limits.header_read_timeout_ms.max(1)),
            max_connections: limits.max_http_connections.max(1),
        }
    }
}

/// Serves `app` on `listener` until `stop` turns `true`: stops accepting then, and lets each
/// connection finish the request it is serving.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let app = app.layer(axum::middleware::from_fn(not_found_past_name_max));
    let waiting = Arc::new(Waiting::default());
    let mut next_id: u64 = 0;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_READ_BUFFER_LEN)
        .keep_alive(true);
    loop {
        let tcp = tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    // Out of file descriptors (EMFILE) and the like: wait for some to close
                    // rather than spin, as axum's serve does.
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        next_id += 1;
        let id = next_id;
        let evicted = waiting.admit(id, limits.max_connections, &metrics);
        // No Nagle: a subscriber only reads, so with it every small entry frame after the first
        // would wait for the peer's delayed ACK (up to 40 ms on Linux).
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(app.clone());
        let conn = builder
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        let mut stop = stop.clone();
        let metrics = metrics.clone();
        let waiting = waiting.clone();
        metrics.http_connection_opened();
        tokio::spawn(async move {
            let mut conn = pin!(conn);
            let served = tokio::select! {
                served = conn.as_mut() => served,
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    conn.as_mut().await
                }
                // Evicted by a newer connection: dropping `conn` closes the socket.
                _ = evicted => Ok(()),
            };
            if let Err(error) = served {
                tracing::debug!(%error, "HTTP connection ended");
            }
            // Out of the count before the socket closes (when `conn` drops): whoever sees the
            // close can count on the slot being free.
            waiting.remove(id);
            metrics.http_connection_closed();
        });
    }
}

/// The connections served before their upgrade, by age (ids increase), each with the switch
/// that evicts it.
#[derive(Debug, Default)]
struct Waiting(Mutex<BTreeMap<u64, oneshot::Sender<()>>>);

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, oneshot::Sender<()>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers connection `id`; at `max`, first evicts the oldest. Returns what resolves when
    /// `id` is evicted in turn.
    fn admit(&self, id: u64, max: usize, metrics: &Metrics) -> oneshot::Receiver<()> {
        let (evict, evicted) = oneshot::channel();
        let mut waiting = self.lock();
        while waiting.len() >= max {
            let Some((_, oldest)) = waiting.pop_first() else {
                break;
            };
            let _ = oldest.send(());
            metrics.http_evicted();
        }
        waiting.insert(id, evict);
        evicted
    }

    /// Connection `id` upgraded or closed.
    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }
}

/// Resolves once `stop` is `true` (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The length of `segment` once percent-decoded (`%41` is one byte).
fn decoded_len(segment: &str) -> usize {
    let bytes = segment.as_bytes();
    let mut len = 0;
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes[i] == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        i += if escaped { 3 } else { 1 };
        len += 1;
    }
    len
}

/// Answers 404 for a path with a segment over [`MAX_SEGMENT_LEN`] bytes: no file or room has
/// such a name.
async fn not_found_past_name_max(request: Request, next: Next) -> Response {
    let too_long = request
        .uri()
        .path()
        .split('/')
        .any(|segment| decoded_len(segment) > MAX_SEGMENT_LEN);
    if too_long {
        return StatusCode::NOT_FOUND.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_measured_decoded() {
        assert_eq!(decoded_len(""), 0);
        assert_eq!(decoded_len("abc"), 3);
        assert_eq!(decoded_len("%41%42"), 2);
        assert_eq!(decoded_len("%4"), 2, "not an escape");
        assert_eq!(decoded_len("%zz1"), 4, "not an escape");
        assert_eq!(decoded_len(&"%41".repeat(255)), 255);
    }
}
