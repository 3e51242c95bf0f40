//! Relay configuration: command line, environment (`ANTS_RELAY_*`) and an optional TOML file.
//!
//! Precedence: command-line flag, then environment variable, then the config file, then the
//! built-in default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::error::{Error, Result};

/// Limits that protect the relay from its clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most simultaneous WebSocket connections; more are refused with HTTP 503.
    pub max_connections: usize,
    /// Largest WebSocket message accepted, in bytes (at most the protocol's frame bound).
    pub max_frame_len: usize,
    /// Frames per second one connection may send (token bucket refill rate).
    pub connection_rate: f64,
    /// Burst size of the per-connection bucket.
    pub connection_burst: f64,
    /// Publishes per second one agent may make across all its connections.
    pub agent_rate: f64,
    /// Burst size of the per-agent bucket.
    pub agent_burst: f64,
    /// Frames queued for one connection (receipts, errors, events) before it is dropped as a
    /// slow consumer.
    pub send_queue: usize,
    /// Longest time one frame may take to be written to a connection before it is dropped as a
    /// slow consumer, in milliseconds.
    pub send_timeout_ms: u64,
    /// Committed entries kept in memory per topic for live fan-out.
    pub cache_per_topic: usize,
    /// Group commit: longest wait for more publishes after the first, in microseconds.
    pub commit_window_us: u64,
    /// Group commit: most publishes in one transaction.
    pub commit_max_ops: usize,
    /// Publishes queued in front of the sequencer before publishes are refused `UNAVAILABLE`.
    pub sequencer_queue: usize,
    /// WebSocket ping interval, in seconds.
    pub ping_interval_s: u64,
    /// Entries between two stored snapshots of a topic's replica (0: only at shutdown). A
    /// restart replays at most this many entries per topic through its replica.
    pub replica_snapshot_every: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_frame_len: crate::wire::MAX_FRAME_LEN,
            connection_rate: 5_000.0,
            connection_burst: 10_000.0,
            agent_rate: 5_000.0,
            agent_burst: 10_000.0,
            send_queue: 4_096,
            send_timeout_ms: 10_000,
            cache_per_topic: 4_096,
            commit_window_us: 1_000,
            commit_max_ops: 2_048,
            sequencer_queue: 65_536,
            ping_interval_s: 20,
            replica_snapshot_every: 10_000,
        }
    }
}

impl Limits {
    /// The send timeout as a duration.
    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }
}

/// Everything the relay needs to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The data directory: database and (unless `key` says otherwise) the relay key.
    pub data: PathBuf,
    /// A directory of static files served at `/` (the demo page).
    pub www: Option<PathBuf>,
    /// The built npm package, served at `/pkg/` next to `www` so the page can import
    /// `/pkg/ants_coord.js` from the same origin. When unset and `www` is set, `pkg` beside the
    /// `www` directory is used if it exists (the repository layout: `www/` and `pkg/`).
    pub pkg: Option<PathBuf>,
    /// The relay key file (32-byte seed as 64 hex characters); created with mode 0600 if absent.
    pub key: Option<PathBuf>,
    /// Limits.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            data: PathBuf::from("relay-data"),
            www: None,
            pkg: None,
            key: None,
            limits: Limits::default(),
        }
    }
}

impl Config {
    /// The default configuration with the data directory `data`, listening on a free loopback
    /// port (what tests use).
    pub fn ephemeral(data: impl Into<PathBuf>) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data: data.into(),
            ..Config::default()
        }
    }

    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::BadInput(format!("cannot read config file {}: {e}", path.display()))
        })?;
        toml::from_str(&text)
            .map_err(|e| Error::BadInput(format!("config file {}: {e}", path.display())))
    }

    /// The directory served at `/pkg/`: `pkg` if set, else `pkg` beside `www` when that exists.
    pub fn pkg_dir(&self) -> Option<PathBuf> {
        if self.pkg.is_some() {
            return self.pkg.clone();
        }
        let www = self.www.as_ref()?;
        let beside = std::fs::canonicalize(www).ok()?.parent()?.join("pkg");
        beside.is_dir().then_some(beside)
    }

    /// The key file path: `key` if set, `<data>/relay.key` otherwise.
    pub fn key_path(&self) -> PathBuf {
        self.key
            .clone()
            .unwrap_or_else(|| self.data.join("relay.key"))
    }
}

/// `ants-relay`: the ants-coord relay.
#[derive(Debug, Parser)]
#[command(name = "ants-relay", version, about)]
pub struct Args {
    /// Address to listen on [default: 127.0.0.1:8787].
    #[arg(long, env = "ANTS_RELAY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory (database, relay key) [default: ./relay-data].
    #[arg(long, env = "ANTS_RELAY_DATA")]
    pub data: Option<PathBuf>,
    /// Directory of static files to serve at / (demo page, built package).
    #[arg(long, env = "ANTS_RELAY_WWW")]
    pub www: Option<PathBuf>,
    /// Built npm package served at /pkg/ [default: pkg beside the --www directory, if present].
    #[arg(long, env = "ANTS_RELAY_PKG")]
    pub pkg: Option<PathBuf>,
    /// Relay key file [default: <data>/relay.key].
    #[arg(long, env = "ANTS_RELAY_KEY")]
    pub key: Option<PathBuf>,
    /// TOML config file (same field names; limits under [limits]).
    #[arg(long, env = "ANTS_RELAY_CONFIG")]
    pub config: Option<PathBuf>,
}

impl Args {
    /// The configuration these arguments describe (flags and environment over the file).
    pub fn into_config(self) -> Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(data) = self.data {
            config.data = data;
        }
        if self.www.is_some() {
            config.www = self.www;
        }
        if self.pkg.is_some() {
            config.pkg = self.pkg;
        }
        if self.key.is_some() {
            config.key = self.key;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkg_is_served_from_beside_www_unless_given() {
        let dir = std::env::temp_dir().join(format!("ants-pkg-dir-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("www")).unwrap();
        let mut config = Config::ephemeral(dir.join("data"));
        assert_eq!(config.pkg_dir(), None, "no www, no pkg");
        config.www = Some(dir.join("www"));
        assert_eq!(config.pkg_dir(), None, "no pkg beside www");
        std::fs::create_dir_all(dir.join("pkg")).unwrap();
        let beside = std::fs::canonicalize(dir.join("pkg")).unwrap();
        assert_eq!(config.pkg_dir(), Some(beside));
        config.pkg = Some(PathBuf::from("elsewhere"));
        assert_eq!(config.pkg_dir(), Some(PathBuf::from("elsewhere")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_values_are_overridden_by_flags() {
        let dir = std::env::temp_dir().join(format!("ants-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("relay.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndata = \"d\"\n[limits]\nsend_queue = 7\n",
        )
        .unwrap();
        let args = Args::parse_from([
            "ants-relay",
            "--config",
            file.to_str().unwrap(),
            "--data",
            "other",
        ]);
        let config = args.into_config().unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.data, PathBuf::from("other"));
        assert_eq!(config.limits.send_queue, 7);
        std::fs::write(&file, "nonsense = 1\n").unwrap();
        assert_eq!(Config::from_file(&file).unwrap_err().code(), "BAD_INPUT");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
