//! Relay frontends on a [`super::nats::NatsCluster`]: one logical relay, several processes'
//! worth of frontends in this test process, sharing one relay key.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ants_coord::relay::{self, Config, RelayHandle};
use ants_coord::wire::Body;
use ants_coord::SignedOp;

use super::relay::{code_of, http_get_any, Client};

/// The relay key every test frontend shares (a key file holds the seed as 64 hex characters).
pub const SHARED_KEY: &str = "0707070707070707070707070707070707070707070707070707070707070707";

/// How long a cluster-wide condition may take before a test fails (a hang guard: the loops
/// poll and return as soon as it holds).
pub const CLUSTER_WAIT: Duration = Duration::from_secs(120);

/// Writes the shared key into `data` (as an operator copies the key file to each frontend).
pub fn share_key(data: &Path) {
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(data.join("relay.key"), format!("{SHARED_KEY}\n")).unwrap();
}

/// Starts a frontend over `data` (with the shared key) on the cluster at `url`, retrying while
/// a freshly started cluster's JetStream still settles (`UNAVAILABLE`).
pub async fn start_frontend(url: &str, data: PathBuf) -> RelayHandle {
    // The relay's log in the test output, filtered by ANTS_RELAY_LOG (off by default).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ANTS_RELAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
    share_key(&data);
    let mut config = Config::ephemeral(data);
    config.store = Some(url.to_owned());
    let started = Instant::now();
    loop {
        match relay::start(config.clone()).await {
            Ok(frontend) => return frontend,
            Err(error) => {
                assert_eq!(error.code(), "UNAVAILABLE", "{error}");
                assert!(
                    started.elapsed() < CLUSTER_WAIT,
                    "frontend never started: {error}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Publishes `op` until it gets a receipt, retrying the same bytes after each `UNAVAILABLE`
/// (what a client does); returns the receipt's seq and the number of refusals.
pub async fn publish_retrying(client: &mut Client, op: &SignedOp) -> (u64, usize) {
    let started = Instant::now();
    let mut refused = 0;
    loop {
        let answer = client.publish(op).await;
        match answer.body {
            Body::Receipt { seq, op_id, .. } => {
                assert_eq!(op_id, op.id());
                return (seq, refused);
            }
            _ => {
                assert_eq!(code_of(&answer), "UNAVAILABLE", "{answer:?}");
                refused += 1;
                assert!(
                    started.elapsed() < CLUSTER_WAIT,
                    "no receipt within {CLUSTER_WAIT:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The `/healthz` status line's code.
pub async fn health_status(addr: std::net::SocketAddr) -> u16 {
    let response = http_get_any(addr, "/healthz").await;
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Polls `/healthz` until it answers `status`; returns the body.
pub async fn wait_for_health(addr: std::net::SocketAddr, status: u16) -> String {
    let started = Instant::now();
    loop {
        let response = http_get_any(addr, "/healthz").await;
        if response.split_whitespace().nth(1) == Some(&status.to_string()) {
            return response;
        }
        assert!(
            started.elapsed() < CLUSTER_WAIT,
            "/healthz never answered {status}: {response}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every entry of `topic` from seq 0 up to `count` entries, as a fresh subscriber of the
/// frontend at `url` receives them (canonical bytes).
pub async fn read_log(url: &str, topic: &str, count: u64) -> Vec<Vec<u8>> {
    let mut reader = Client::connect(url).await;
    reader.subscribe(topic, 0).await;
    let mut entries = Vec::new();
    for seq in 0..count {
        let entry = reader.next_entry().await;
        assert_eq!(entry.seq(), seq);
        entries.push(entry.as_bytes().to_vec());
    }
    reader.close().await;
    entries
}
