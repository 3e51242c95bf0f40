//! Helpers shared by the native integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Reads `tests/vectors/<name>` as JSON.
pub fn vectors(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Decodes hex from a vector file.
pub fn hex(value: &serde_json::Value) -> Vec<u8> {
    hex::decode(value.as_str().expect("hex string")).expect("valid hex")
}

/// Whether vector files should be (re)written instead of checked: `ANTS_BLESS=1`.
pub fn bless() -> bool {
    std::env::var_os("ANTS_BLESS").is_some()
}

/// Writes `tests/vectors/<name>` (only when blessing).
pub fn write_vectors(name: &str, value: &serde_json::Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    let text = serde_json::to_string_pretty(value).expect("json") + "\n";
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Capabilities, owned topics and capability URLs for the owned-topic tests.
#[cfg(all(feature = "relay", not(target_arch = "wasm32")))]
pub mod capabilities;

/// The in-process relay harness and wire-protocol test client.
#[cfg(all(feature = "relay", not(target_arch = "wasm32")))]
pub mod relay;

/// A plain Yjs client over raw frames.
#[cfg(all(feature = "relay", not(target_arch = "wasm32")))]
pub mod yjs;

/// A relay that tells one deliberate lie, on real WebSockets.
#[cfg(all(feature = "relay", not(target_arch = "wasm32")))]
pub mod lying_relay;

/// Moves frames between a WebSocket and a client `Session`.
#[cfg(all(feature = "relay", not(target_arch = "wasm32")))]
pub mod session_driver;

/// A 3-node NATS JetStream cluster on loopback.
#[cfg(all(feature = "nats", not(target_arch = "wasm32")))]
pub mod nats;

/// Relay frontends on a NATS cluster, sharing one key.
#[cfg(all(feature = "nats", not(target_arch = "wasm32")))]
pub mod cluster;

/// The real `ants-relay` binary as a cluster frontend: started, SIGKILLed, restarted.
#[cfg(all(feature = "nats", unix, not(target_arch = "wasm32")))]
pub mod frontend_process;
