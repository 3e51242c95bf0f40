//! Relay configuration: command line, environment (`ANTS_RELAY_*`) and an optional TOML file.
//!
//! Precedence: command-line flag, then environment variable, then the config file, then the
//! built-in default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::election::{ElectionMode, WeightedCandidate};
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::replica::{ReplicaConfig, SlashPolicy};

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
    /// Bytes of answers queued for one connection before it is dropped as a slow consumer
    /// (1008 `SLOW_CONSUMER`); an empty queue takes any one answer.
    pub send_queue_bytes: usize,
    /// Longest time one frame may take to be written to a connection before it is dropped as a
    /// slow consumer, in milliseconds.
    pub send_timeout_ms: u64,
    /// Committed entries kept in memory per topic for live fan-out.
    pub cache_per_topic: usize,
    /// Bytes of committed entries kept in memory per topic (older ones are read back from
    /// storage).
    pub cache_bytes_per_topic: usize,
    /// Bytes of committed entries kept in memory over all topics: past it, the topics caching
    /// the most give up their oldest entries.
    pub cache_bytes: usize,
    /// Group commit: longest wait for more publishes after one that found the sequencer idle
    /// (nothing queued behind it), in microseconds. A busy sequencer takes its backlog at once.
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
    /// Free space, in MiB, the relay keeps on its data directory's file system: below it,
    /// publishes are refused `UNAVAILABLE` and `/healthz` answers 503, until space is freed.
    /// Room for what SQLite writes besides entries (a WAL checkpoint grows the database file).
    pub storage_reserve_mib: u64,
    /// Largest a Yjs room's document may grow, in bytes of its encoded snapshot: an update that
    /// would take it past this closes its connection with 1009 `LIMIT_EXCEEDED`. Capped at
    /// [`crate::relay::yjs::MAX_ROOM_DOC_LEN`], so that a stored room always loads again.
    pub yjs_room_len: usize,
    /// Most Yjs rooms open (loaded) at once: a connection to a room that is not open is closed
    /// with 1013 `LIMIT_EXCEEDED` while this many are. A room unloads when its last
    /// connection leaves.
    pub yjs_rooms: usize,
    /// Most awareness (presence) client ids one Yjs connection may own in its room: a stock
    /// provider has one. A message that would make it own more closes it with 1008
    /// `LIMIT_EXCEEDED`, so a room's presence grows with its connections and cannot be filled
    /// against newcomers.
    pub yjs_awareness_per_connection: usize,
    /// Bytes of room messages queued for one Yjs connection before it is dropped as a slow
    /// consumer (1008 `SLOW_CONSUMER`); an empty queue takes any one message (a sync answer
    /// may be a whole document).
    pub yjs_send_queue_bytes: usize,
    /// Longest wait for a complete HTTP request head, in milliseconds: a new connection that
    /// sends nothing or part of a request, or a kept-alive one idle between requests, is closed
    /// after it.
    pub header_read_timeout_ms: u64,
    /// Most TCP connections served HTTP before their WebSocket upgrade (or while fetching
    /// `/healthz`, `/metrics` or files); one more closes the oldest of them. Upgraded
    /// connections count toward `max_connections` instead.
    pub max_http_connections: usize,
    /// Most storage reads (history replay to subscribers behind the entry cache, inclusion and
    /// consistency proofs) running at once, and most read connections open to the database:
    /// further reads wait their turn, first come first served, so replaying history to many
    /// subscribers takes a bounded share of threads, file handles and memory, and live fan-out
    /// from the cache never waits for it (at least 1).
    pub storage_readers: usize,
    /// Seconds after which memory kept only for speed is given back: a topic with no new
    /// entry for this long drops its cached entries (a subscriber still owed them reads them
    /// from storage), and a sequencer without a publish for this long empties the SQLite
    /// writer's page cache. 0: never.
    pub idle_release_s: u64,
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
            send_queue_bytes: 4 * 1024 * 1024,
            send_timeout_ms: 10_000,
            cache_per_topic: 4_096,
            cache_bytes_per_topic: 16 * 1024 * 1024,
            cache_bytes: 256 * 1024 * 1024,
            commit_window_us: 1_000,
            commit_max_ops: 2_048,
            sequencer_queue: 65_536,
            ping_interval_s: 20,
            replica_snapshot_every: 10_000,
            storage_reserve_mib: 64,
            yjs_room_len: crate::relay::yjs::MAX_ROOM_DOC_LEN,
            yjs_rooms: 4_096,
            yjs_awareness_per_connection: crate::relay::yjs::MAX_CONNECTION_AWARENESS_CLIENTS,
            yjs_send_queue_bytes: 64 * 1024 * 1024,
            header_read_timeout_ms: 10_000,
            max_http_connections: 512,
            storage_readers: crate::relay::store::DEFAULT_READERS,
            idle_release_s: 10,
        }
    }
}

impl Limits {
    /// What the entry cache may hold.
    pub fn cache_limits(&self) -> crate::relay::hub::CacheLimits {
        crate::relay::hub::CacheLimits {
            entries_per_topic: self.cache_per_topic,
            bytes_per_topic: self.cache_bytes_per_topic,
            bytes: self.cache_bytes,
        }
    }

    /// `idle_release_s` as a duration (`None` for 0: never).
    pub fn idle_release(&self) -> Option<Duration> {
        (self.idle_release_s > 0).then(|| Duration::from_secs(self.idle_release_s))
    }

    /// The send timeout as a duration.
    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }
}

/// The replica rules of the topics whose name starts with `prefix` (a `[[replica]]` table of
/// the config file). Fields left out keep [`ReplicaConfig::default`]'s values; agent ids are
/// 64 lowercase hex characters. The longest matching prefix wins; topics no prefix matches
/// use the defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicReplicaConfig {
    /// Topic name prefix (`""` matches every topic).
    pub prefix: String,
    /// Agents allowed to mint.
    pub issuers: Vec<String>,
    /// Lease of a claim that names 0 ms.
    pub default_lease_ms: Option<u64>,
    /// Longest lease a claim may ask for.
    pub max_lease_ms: Option<u64>,
    /// Veto delay of a recovery.
    pub recovery_delay_ms: Option<u64>,
    /// `"burn"` or `"poster"`.
    pub slash_policy: Option<String>,
    /// The election window.
    pub election_window_ms: Option<u64>,
    /// `"priority"` or `"weighted"`.
    pub election_mode: Option<String>,
    /// Who may lead, with weights.
    pub candidates: Vec<CandidateConfig>,
    /// Feed items kept.
    pub feed_capacity: Option<u32>,
}

/// One election candidate of a [`TopicReplicaConfig`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateConfig {
    /// The agent (64 lowercase hex characters).
    pub agent: String,
    /// Its weight.
    pub weight: u64,
}

impl TopicReplicaConfig {
    /// The core configuration these fields describe, made canonical. `BAD_INPUT` (naming the
    /// prefix) for an unknown policy or mode, a bad agent id or a broken rule.
    pub fn to_replica_config(&self) -> Result<ReplicaConfig> {
        let context =
            |e: Error| Error::BadInput(format!("replica config for prefix {:?}: {e}", self.prefix));
        let agent = |hex: &str| hex.parse::<AgentId>().map_err(context);
        let defaults = ReplicaConfig::default();
        let config = ReplicaConfig {
            issuers: self
                .issuers
                .iter()
                .map(|hex| agent(hex))
                .collect::<Result<_>>()?,
            default_lease_ms: self.default_lease_ms.unwrap_or(defaults.default_lease_ms),
            max_lease_ms: self.max_lease_ms.unwrap_or(defaults.max_lease_ms),
            recovery_delay_ms: self.recovery_delay_ms.unwrap_or(defaults.recovery_delay_ms),
            slash_policy: match self.slash_policy.as_deref() {
                None => defaults.slash_policy,
                Some("burn") => SlashPolicy::Burn,
                Some("poster") => SlashPolicy::Poster,
                Some(other) => {
                    return Err(context(Error::BadInput(format!(
                        "slash_policy {other:?} (burn or poster)"
                    ))))
                }
            },
            election_window_ms: self
                .election_window_ms
                .unwrap_or(defaults.election_window_ms),
            election_mode: match self.election_mode.as_deref() {
                None => defaults.election_mode,
                Some("priority") => ElectionMode::Priority,
                Some("weighted") => ElectionMode::Weighted,
                Some(other) => {
                    return Err(context(Error::BadInput(format!(
                        "election_mode {other:?} (priority or weighted)"
                    ))))
                }
            },
            candidates: self
                .candidates
                .iter()
                .map(|c| {
                    Ok(WeightedCandidate {
                        agent: agent(&c.agent)?,
                        weight: c.weight,
                    })
                })
                .collect::<Result<_>>()?,
            feed_capacity: self.feed_capacity.unwrap_or(defaults.feed_capacity),
        };
        config.canonical().map_err(context)
    }
}

/// Replica rules by topic prefix, checked: what the sequencer consults for every topic.
#[derive(Debug, Clone, Default)]
pub struct ReplicaRules(Vec<(String, ReplicaConfig)>);

impl ReplicaRules {
    /// The rules of `tables` (longest prefix first). `BAD_INPUT` for a broken table or a
    /// prefix given twice.
    pub fn new(tables: &[TopicReplicaConfig]) -> Result<Self> {
        let mut rules = Vec::with_capacity(tables.len());
        for table in tables {
            if rules.iter().any(|(p, _): &(String, _)| *p == table.prefix) {
                return Err(Error::BadInput(format!(
                    "replica config: prefix {:?} given twice",
                    table.prefix
                )));
            }
            rules.push((table.prefix.clone(), table.to_replica_config()?));
        }
        rules.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(ReplicaRules(rules))
    }

    /// The configuration of `topic`: the longest matching prefix's, else the default.
    pub fn for_topic(&self, topic: &str) -> ReplicaConfig {
        self.0
            .iter()
            .find(|(prefix, _)| topic.starts_with(prefix.as_str()))
            .map_or_else(ReplicaConfig::default, |(_, config)| config.clone())
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
    /// Per-topic replica rules (`[[replica]]` tables), by topic prefix.
    pub replica: Vec<TopicReplicaConfig>,
    /// Topic prefixes that plain Yjs rooms may be bridged to (`/yjs/<room>?topic=<topic>`).
    /// The relay publishes a bridged room's edits as `doc.update` ops signed with its own key,
    /// so this is off (empty) unless the operator names the topics; other topics are refused
    /// with `BRIDGE_NOT_ALLOWED`. `""` allows every topic.
    pub yjs_bridge: Vec<String>,
    /// Where the log is stored: absent or `sqlite` for the embedded SQLite store in `data`;
    /// `nats://host:port,host:port,…` for a NATS JetStream cluster (feature `nats`), which
    /// makes this relay one frontend of a cluster. See [`Config::store_kind`].
    pub store: Option<String>,
}

/// Which store a relay runs on, as [`Config::store`] names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded SQLite store in the data directory (the default).
    Sqlite,
    /// A NATS JetStream cluster: the server list as given (`nats://h:p,h:p` or
    /// `nats://h:p,nats://h:p`), for [`crate::relay::jetstream::JetStreamConfig::from_url`].
    Nats(String),
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
            replica: Vec::new(),
            yjs_bridge: Vec::new(),
            store: None,
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

    /// Whether a Yjs room may be bridged to `topic` (see [`Config::yjs_bridge`]).
    pub fn may_bridge(&self, topic: &str) -> bool {
        self.yjs_bridge
            .iter()
            .any(|prefix| topic.starts_with(prefix.as_str()))
    }

    /// The store [`Config::store`] names. `BAD_INPUT` for anything but `sqlite` or a
    /// `nats://` URL with at least one address (whether this build can run a `nats://` store
    /// is checked when the relay starts).
    pub fn store_kind(&self) -> Result<StoreKind> {
        match self.store.as_deref().map(str::trim) {
            None | Some("" | "sqlite") => Ok(StoreKind::Sqlite),
            Some(url) if url.starts_with("nats://") => {
                let addresses = url
                    .split(',')
                    .map(|a| a.trim().trim_start_matches("nats://"))
                    .filter(|a| !a.is_empty())
                    .count();
                if addresses == 0 {
                    return Err(Error::BadInput(format!(
                        "store {url:?} names no NATS server address"
                    )));
                }
                Ok(StoreKind::Nats(url.to_owned()))
            }
            Some(other) => Err(Error::BadInput(format!(
                "store {other:?}: expected `sqlite` or `nats://host:port,host:port,…`"
            ))),
        }
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
    /// Relay key file (default: relay.key in the --data directory).
    #[arg(long, env = "ANTS_RELAY_KEY")]
    pub key: Option<PathBuf>,
    /// TOML config file (same field names; limits in a `[limits]` table and replica rules in
    /// `[[replica]]` tables, which only the file sets: README lists them). Log level: the
    /// ANTS_RELAY_LOG environment variable (a tracing filter; default info).
    #[arg(long, env = "ANTS_RELAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Topic prefix plain Yjs rooms may be bridged to (repeat it, or comma-separate in the
    /// environment; none by default: the relay signs bridged edits with its own key).
    #[arg(
        long = "yjs-bridge",
        env = "ANTS_RELAY_YJS_BRIDGE",
        value_delimiter = ','
    )]
    pub yjs_bridge: Vec<String>,
    /// Where the log is stored: `sqlite` (the default: the database in --data) or
    /// `nats://host:port,host:port,…`, a NATS JetStream cluster (this relay is then one
    /// frontend of a cluster: every frontend needs the same relay key; README "Cluster mode").
    #[arg(long, env = "ANTS_RELAY_STORE")]
    pub store: Option<String>,
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
        if !self.yjs_bridge.is_empty() {
            config.yjs_bridge = self.yjs_bridge;
        }
        if self.store.is_some() {
            config.store = self.store;
        }
        config.store_kind()?;
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
    fn the_readme_lists_every_limit_with_its_default() {
        let readme = include_str!("../../README.md");
        let rows: Vec<(&str, &str)> = readme
            .lines()
            .skip_while(|line| !line.starts_with("| `[limits]` key |"))
            .skip(2)
            .take_while(|line| line.starts_with("| `"))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                (cells[1].trim_matches('`'), cells[2])
            })
            .collect();
        // Each row's key with its documented default reads back as the built-in default.
        let defaults = format!("{:?}", Limits::default());
        for (key, default) in &rows {
            let config: Config = toml::from_str(&format!("[limits]\n{key} = {default}\n"))
                .unwrap_or_else(|e| panic!("README's [limits] row {key}: {e}"));
            assert_eq!(
                format!("{:?}", config.limits),
                defaults,
                "README's default of {key}"
            );
        }
        // And no field is left out: as many rows as `Limits` has fields.
        let source = include_str!("config.rs");
        let fields = source
            .split("pub struct Limits {")
            .nth(1)
            .and_then(|rest| rest.split("\n}").next())
            .map(|body| body.matches("    pub ").count())
            .unwrap();
        assert_eq!(rows.len(), fields, "README's [limits] table: {rows:?}");
    }

    #[test]
    fn replica_rules_go_by_the_longest_prefix() {
        let issuer = crate::Identity::from_seed(&[3; 32]).unwrap().agent_id();
        let config: Config = toml::from_str(&format!(
            "[[replica]]\nprefix = \"market/\"\nissuers = [\"{issuer}\"]\nmax_lease_ms = 120000\n\
             [[replica]]\nprefix = \"market/eu/\"\nslash_policy = \"poster\"\nelection_mode = \"weighted\"\n\
             candidates = [{{ agent = \"{issuer}\", weight = 5 }}]\n"
        ))
        .unwrap();
        let rules = ReplicaRules::new(&config.replica).unwrap();
        let market = rules.for_topic("market/us");
        assert_eq!(market.issuers, vec![issuer]);
        assert_eq!(market.max_lease_ms, 120_000);
        let eu = rules.for_topic("market/eu/1");
        assert_eq!(eu.slash_policy, SlashPolicy::Poster);
        assert_eq!(eu.election_mode, ElectionMode::Weighted);
        assert_eq!(eu.candidates.len(), 1);
        assert!(eu.issuers.is_empty(), "the longest prefix wins, whole");
        assert_eq!(rules.for_topic("chat"), ReplicaConfig::default());
        for bad in [
            "[[replica]]\nprefix = \"a\"\nslash_policy = \"keep\"\n",
            "[[replica]]\nprefix = \"a\"\nissuers = [\"zz\"]\n",
            "[[replica]]\nprefix = \"a\"\ndefault_lease_ms = 0\n",
            "[[replica]]\nprefix = \"a\"\n[[replica]]\nprefix = \"a\"\n",
        ] {
            let config: Config = toml::from_str(bad).unwrap();
            let error = ReplicaRules::new(&config.replica).unwrap_err();
            assert_eq!(error.code(), "BAD_INPUT", "{bad}: {error}");
        }
    }

    #[test]
    fn yjs_bridging_is_off_unless_prefixes_are_given() {
        let none = Args::parse_from(["ants-relay"]).into_config().unwrap();
        assert!(!none.may_bridge("doc-notes"));
        let flags = Args::parse_from([
            "ants-relay",
            "--yjs-bridge",
            "doc-",
            "--yjs-bridge",
            "wiki/",
        ]);
        let config = flags.into_config().unwrap();
        assert!(config.may_bridge("doc-notes") && config.may_bridge("wiki/home"));
        assert!(!config.may_bridge("tasks"));
        let file: Config = toml::from_str("yjs_bridge = [\"\"]\n").unwrap();
        assert!(
            file.may_bridge("anything"),
            "the empty prefix allows every topic"
        );
    }

    #[test]
    fn the_store_is_sqlite_unless_a_nats_url_is_given() {
        let default = Args::parse_from(["ants-relay"]).into_config().unwrap();
        assert_eq!(default.store_kind().unwrap(), StoreKind::Sqlite);
        let named: Config = toml::from_str("store = \"sqlite\"\n").unwrap();
        assert_eq!(named.store_kind().unwrap(), StoreKind::Sqlite);
        let file: Config = toml::from_str("store = \"nats://a:1,b:2\"\n").unwrap();
        assert_eq!(
            file.store_kind().unwrap(),
            StoreKind::Nats("nats://a:1,b:2".into())
        );
        let flag = Args::parse_from(["ants-relay", "--store", "nats://a:1,nats://b:2"]);
        assert_eq!(
            flag.into_config().unwrap().store_kind().unwrap(),
            StoreKind::Nats("nats://a:1,nats://b:2".into())
        );
        for bad in ["postgres://x", "nats://", "nats://,", "a:1"] {
            let args = Args::parse_from(["ants-relay", "--store", bad]);
            assert_eq!(args.into_config().unwrap_err().code(), "BAD_INPUT", "{bad}");
        }
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
