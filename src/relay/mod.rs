//! The relay: a WebSocket server that verifies, sequences, durably stores and fans out signed
//! ops (feature `relay`, native only).
//!
//! The same core the browser runs, behind a socket loop:
//!
//! - [`crate::wire::RelayConnection`] decides what every received frame means (handshake,
//!   verification, subscription cursors);
//! - the verifier thread ([`verifier`]) checks op signatures in batches; the sequencer thread
//!   ([`sequencer`]) numbers ops per topic by the core's rules ([`crate::log::sequencing`]) and
//!   group-commits them to a [`store::Store`] (SQLite by default, [`store::sqlite`]; with
//!   `--store nats://…` and feature `nats`, a JetStream cluster, this process being one
//!   frontend of several: `jetstream`); **a receipt is sent only after the store says its
//!   entry is durable** ([`durable`]);
//! - the hub ([`hub`]) wakes subscribers, who pull what they are owed;
//! - Yjs rooms at `/yjs/<room>` ([`yjs`]): y-protocols for stock `y-websocket` clients, rooms
//!   persisted in their own database;
//! - `/healthz`, `/metrics` (Prometheus text) and, with `--www`, static files: the `--www`
//!   directory at `/` and the built npm package at `/pkg/` (`--pkg`, by default `pkg/` beside
//!   the `--www` directory), so the demo page imports `/pkg/ants_coord.js` from its own origin.
//!
//! Start it with [`serve`] (waits for SIGINT/SIGTERM) or, in tests, [`start`], which returns a
//! [`RelayHandle`] bound to the configured address (port 0 picks a free one).

mod access;
mod assets;
pub mod config;
pub mod durable;
pub mod hub;
#[cfg(feature = "nats")]
pub mod jetstream;
pub mod key;
pub mod metrics;
pub mod rate;
pub mod reply;
pub mod sequencer;
mod serve;
mod socket;
pub mod store;
mod topics;
pub mod verifier;
pub mod yjs;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

pub use config::{Args, Config, Limits};

use crate::error::{Error, Result};
use crate::identity::{AgentId, Identity};
use hub::Hub;
use metrics::Metrics;
use rate::AgentBuckets;
use sequencer::{GroupCommit, SequencerQueue};
use store::ReadPool;

/// The WebSocket path of the ants-coord protocol.
pub const WS_PATH: &str = "/ws";

/// State shared by every connection.
#[derive(Debug)]
pub(crate) struct Shared {
    config: Config,
    identity: Arc<Identity>,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    reader: Arc<ReadPool>,
    sequencer: SequencerQueue,
    /// Free space and write failures of the data directory.
    storage: Arc<store::StorageHealth>,
    agents: Arc<reply::AgentConnections>,
    agent_buckets: AgentBuckets,
    /// Open Yjs rooms.
    yjs: Arc<yjs::Rooms>,
    /// Connection slots in use.
    slots: AtomicUsize,
    /// Set once shutdown began: new publishes are refused.
    stopping: AtomicBool,
    /// Flipped to `true` to make every connection flush and close.
    closing: watch::Sender<bool>,
    /// A cluster frontend's link to its cluster (`None`: the embedded store).
    cluster: Option<Arc<dyn ClusterLink>>,
}

/// What a cluster frontend reports of its cluster, and how it lets go of it
/// ([`jetstream::follower::Follower`] with feature `nats`).
pub(crate) trait ClusterLink: Send + Sync + std::fmt::Debug {
    /// Why the frontend cannot acknowledge publishes or serve the latest log now, if so.
    fn problem(&self) -> Option<String>;
    /// Whether the connection to the cluster is up.
    fn connected(&self) -> bool;
    /// Stops following the cluster (at shutdown, after the sequencer drained).
    fn stop(&self);
    /// What carries Yjs room awareness to the other frontends (`None`: it stays on this one).
    fn awareness(&self) -> Option<Arc<dyn yjs::AwarenessBus>> {
        None
    }
    /// Takes a publish to send it to the frontend owning its topic (`None`), or gives it back
    /// to be sequenced here (`jetstream::forward`).
    fn route(&self, request: sequencer::PublishRequest) -> Option<sequencer::PublishRequest> {
        Some(request)
    }
    /// Appends the link's own metrics to `/metrics`.
    fn render_metrics(&self, _out: &mut String) {}
}

/// Whether a read failed because the peer's message was over `max_message_size`/`max_frame_size`.
pub(crate) fn over_message_bound(error: &axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(WsError::Capacity(_)) = cause.downcast_ref::<WsError>() {
            return true;
        }
        source = cause.source();
    }
    false
}

impl Shared {
    /// Takes a connection slot; when the relay is full or stopping, the `503` answer instead.
    pub(crate) fn take_slot_or_refuse(&self) -> Option<Response> {
        if self.stopping.load(Ordering::Acquire) || !self.take_slot() {
            self.metrics.connection_refused();
            return Some(
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    if self.stopping.load(Ordering::Acquire) {
                        "shutting down\n"
                    } else {
                        "connection limit reached\n"
                    },
                )
                    .into_response(),
            );
        }
        None
    }

    fn take_slot(&self) -> bool {
        let max = self.config.limits.max_connections;
        self.slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < max).then_some(used + 1)
            })
            .is_ok()
    }

    pub(crate) fn release_slot(&self) {
        self.slots.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A running relay.
#[derive(Debug)]
pub struct RelayHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop_accepting: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    sequencer: std::thread::JoinHandle<()>,
}

impl RelayHandle {
    /// The address the relay listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of Yjs rooms (`ws://host:port/yjs`): give it to `y-websocket`'s
    /// `WebsocketProvider` as the server URL; the room is `<url>/<room>`.
    pub fn yjs_url(&self) -> String {
        format!("ws://{}{}", self.addr, yjs::YJS_PATH)
    }

    /// The ants-coord WebSocket URL (`ws://host:port/ws`).
    pub fn url(&self) -> String {
        format!("ws://{}{WS_PATH}", self.addr)
    }

    /// The relay's public key (what it signs receipts and checkpoints with).
    pub fn relay_id(&self) -> AgentId {
        self.shared.identity.agent_id()
    }

    /// The current metrics, rendered as Prometheus text.
    pub fn metrics(&self) -> String {
        self.shared.metrics.render()
    }

    /// The state hash ([`crate::replica::Replica::state_hash`]) of the relay's replica of
    /// `topic`, after every publish queued before this call (`None`: no entries in `topic`).
    pub async fn replica_state_hash(&self, topic: &str) -> Result<Option<[u8; 32]>> {
        let queue = self.shared.sequencer.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || queue.replica_state_hash(&topic))
            .await
            .map_err(|e| Error::Unavailable(format!("state hash: {e}")))?
    }

    /// Graceful shutdown: stop accepting connections, refuse new publishes, commit every
    /// queued publish and send its receipt, then close every connection (1001).
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop_accepting.send(true);
        self.shared.stopping.store(true, Ordering::Release);
        let queue = self.shared.sequencer.clone();
        let sequencer = self.sequencer;
        tokio::task::spawn_blocking(move || {
            queue.stop();
            sequencer.join()
        })
        .await
        .map_err(|e| Error::Unavailable(format!("sequencer join: {e}")))?
        .map_err(|_| Error::Unavailable("the sequencer thread panicked".into()))?;
        if let Some(cluster) = self.shared.cluster.clone() {
            let _ = tokio::task::spawn_blocking(move || cluster.stop()).await;
        }
        let _ = self.shared.closing.send(true);
        // Give connections a moment to flush receipts and close.
        for _ in 0..50 {
            if self.shared.slots.load(Ordering::Acquire) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Rooms commit what their connections handed over, compact and end.
        self.shared.yjs.shutdown(Duration::from_secs(5)).await;
        self.server.abort();
        tracing::info!("relay stopped");
        Ok(())
    }
}

/// Starts a relay: opens (or creates) the data directory and key, recovers every topic from
/// storage, binds `config.listen` and serves until [`RelayHandle::shutdown`].
///
/// With a `nats://` store ([`Config::store`]) the relay is one frontend of a cluster
/// (`jetstream::frontend`, feature `nats`); without that feature such a store is `BAD_INPUT`.
pub async fn start(config: Config) -> Result<RelayHandle> {
    if let config::StoreKind::Nats(url) = config.store_kind()? {
        return start_frontend(config, url).await;
    }
    std::fs::create_dir_all(&config.data).map_err(|e| {
        Error::Unavailable(format!("data directory {}: {e}", config.data.display()))
    })?;
    let db_path = config.data.join(store::DB_FILE);
    let key_path = config.key_path();
    if !key_path.exists() {
        // A missing key file over an existing log: making a new key would only be refused
        // by `store::bind_relay_key`, after leaving that key file behind.
        if let Some(owner) = store::recorded_relay_key(&db_path)? {
            return Err(Error::BadInput(format!(
                "relay key file {} does not exist, and this data directory's log is signed by \
                 relay key {owner}: restore that key file, or start with a new data directory",
                key_path.display()
            )));
        }
    }
    let identity = Arc::new(key::load_or_create(&key_path)?);
    // Before the sequencer thread starts, so a failure here leaves nothing running.
    let Parts {
        metrics,
        rooms,
        hub,
        tuning,
        agents,
        rules,
        storage,
    } = Parts::new(&config)?;
    // Recovery (indexes, the hash table, replica snapshots and their tails) runs before
    // anything is served.
    let recovery_started = std::time::Instant::now();
    let store = store::SqliteStore::open(
        &db_path,
        &identity.agent_id(),
        metrics.clone(),
        storage.clone(),
    )?;
    let audience = durable::Audience {
        fan_out: durable::FanOut::Announce,
        hub: hub.clone(),
        agents: agents.clone(),
        pushes: None,
        metrics: metrics.clone(),
    };
    let (queue, sequencer) = sequencer::start(store, identity.clone(), audience, tuning, rules)?;
    tracing::info!(
        elapsed_ms = recovery_started.elapsed().as_millis() as u64,
        "storage recovered"
    );
    let started = Started {
        identity,
        metrics,
        rooms,
        hub,
        reader: Arc::new(ReadPool::with_readers(
            db_path,
            config.limits.storage_readers,
        )),
        queue,
        sequencer,
        storage,
        agents,
        cluster: None,
    };
    listen(config, started).await
}

/// What every relay builds from its configuration before its store, whichever the store: the
/// embedded one ([`start`]) and a cluster frontend (`jetstream::frontend`) alike.
pub(crate) struct Parts {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) rooms: Arc<yjs::Rooms>,
    /// The fan-out hub, its entry cache bounded as `[limits]` says.
    pub(crate) hub: Arc<Hub>,
    pub(crate) tuning: GroupCommit,
    pub(crate) agents: Arc<reply::AgentConnections>,
    pub(crate) rules: config::ReplicaRules,
    pub(crate) storage: Arc<store::StorageHealth>,
}

impl Parts {
    /// Opens the Yjs rooms in `config.data` and sets up the rest from `config.limits` and
    /// `config.replica`. Errors: `BAD_INPUT` for bad replica rules; `UNAVAILABLE` when the rooms
    /// cannot be opened.
    pub(crate) fn new(config: &Config) -> Result<Self> {
        let metrics = Arc::new(Metrics::default());
        let rooms = Arc::new(yjs::Rooms::open(
            &config.data,
            config.limits.yjs_room_len,
            metrics.clone(),
        )?);
        let hub = Arc::new(Hub::with_limits(
            config.limits.cache_limits(),
            Some(metrics.clone()),
        ));
        let tuning = GroupCommit {
            window: Duration::from_micros(config.limits.commit_window_us),
            max_ops: config.limits.commit_max_ops,
            queue: config.limits.sequencer_queue,
            snapshot_every: config.limits.replica_snapshot_every,
            release_after: config.limits.idle_release(),
        };
        let storage = Arc::new(store::StorageHealth::new(
            config.data.clone(),
            config
                .limits
                .storage_reserve_mib
                .saturating_mul(1024 * 1024),
        ));
        Ok(Parts {
            metrics,
            rooms,
            hub,
            tuning,
            agents: Arc::new(reply::AgentConnections::default()),
            rules: config::ReplicaRules::new(&config.replica)?,
            storage,
        })
    }
}

#[cfg(feature = "nats")]
async fn start_frontend(config: Config, url: String) -> Result<RelayHandle> {
    jetstream::frontend::start(config, &url).await
}

#[cfg(not(feature = "nats"))]
async fn start_frontend(_config: Config, url: String) -> Result<RelayHandle> {
    Err(Error::BadInput(format!(
        "store {url:?}: this ants-relay was built without feature `nats`; rebuild it with \
         `--features nats`, or use the default store (sqlite)"
    )))
}

/// What a store path has started, for [`listen`] to serve.
pub(crate) struct Started {
    pub(crate) identity: Arc<Identity>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) rooms: Arc<yjs::Rooms>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) reader: Arc<ReadPool>,
    pub(crate) queue: SequencerQueue,
    pub(crate) sequencer: std::thread::JoinHandle<()>,
    pub(crate) storage: Arc<store::StorageHealth>,
    pub(crate) agents: Arc<reply::AgentConnections>,
    pub(crate) cluster: Option<Arc<dyn ClusterLink>>,
}

/// Binds `config.listen` and serves what `started` holds until [`RelayHandle::shutdown`].
pub(crate) async fn listen(config: Config, started: Started) -> Result<RelayHandle> {
    let Started {
        identity,
        metrics,
        rooms,
        hub,
        reader,
        queue,
        sequencer,
        storage,
        agents,
        cluster,
    } = started;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Unavailable(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Unavailable(format!("local address: {e}")))?;
    // Whichever store path made the read pool, it takes `[limits] storage_readers` (a pool
    // opens its connections lazily, so none is open yet).
    let readers = config.limits.storage_readers.max(1);
    let reader = if reader.readers() == readers {
        reader
    } else {
        Arc::new(ReadPool::with_readers(reader.path().to_owned(), readers))
    };
    let (closing, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        yjs: rooms,
        agent_buckets: AgentBuckets::new(config.limits.agent_rate, config.limits.agent_burst),
        reader,
        config,
        identity,
        hub,
        metrics,
        sequencer: queue,
        storage,
        agents,
        slots: AtomicUsize::new(0),
        stopping: AtomicBool::new(false),
        closing,
        cluster,
    });
    if let Some(idle) = shared.config.limits.idle_release() {
        tokio::spawn(release_idle_caches(
            shared.hub.clone(),
            idle,
            shared.closing.subscribe(),
        ));
    }
    let app = router(shared.clone());
    let (stop_accepting, stop_rx) = watch::channel(false);
    let server = tokio::spawn(serve::serve(
        listener,
        app,
        serve::HttpLimits::new(&shared.config.limits),
        shared.metrics.clone(),
        stop_rx,
    ));
    tracing::info!(%addr, relay = %shared.identity.agent_id(), "relay listening");
    Ok(RelayHandle {
        addr,
        shared,
        stop_accepting,
        server,
        sequencer,
    })
}

/// Every half of `idle` until the relay closes: drops the cached entries of topics idle for
/// `idle` ([`Hub::release_idle`]).
async fn release_idle_caches(hub: Arc<Hub>, idle: Duration, mut closing: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(idle / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let released = hub.release_idle(idle);
                if released > 0 {
                    tracing::debug!(released, "cached entries of idle topics released");
                }
            }
            _ = closing.changed() => return,
        }
    }
}

/// Runs a relay until SIGINT or SIGTERM, then shuts it down gracefully.
pub async fn serve(config: Config) -> Result<()> {
    let handle = start(config).await?;
    wait_for_signal().await;
    tracing::info!("shutdown requested");
    handle.shutdown().await
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let www = shared.config.www.clone();
    let pkg = shared.config.pkg_dir();
    let mut app = Router::new()
        .route(WS_PATH, get(upgrade))
        .route(yjs::YJS_PATH, get(yjs::upgrade))
        .route("/yjs/", get(yjs::upgrade))
        .route("/yjs/{*room}", get(yjs::upgrade))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics_text))
        .with_state(shared);
    if let Some(dir) = pkg {
        app = app.nest_service("/pkg", assets::package(&dir));
    }
    match www {
        Some(dir) => app.fallback_service(assets::page(&dir)),
        None => app,
    }
}

/// `200 ok` while the relay can acknowledge publishes; `503` once its write path failed (a WAL
/// sync failed, or the sequencer panicked), which only a restart clears, and while storage is
/// degraded (free space under the reserve, or the last write failed), which clears by itself
/// once writes succeed again.
async fn health(State(shared): State<Arc<Shared>>) -> Response {
    if shared.sequencer.write_path_failed() {
        let why =
            "write path failed: every publish is refused until the relay restarts (see its log)\n";
        return (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    }
    if let Some(reason) = shared.storage.degraded() {
        let why = format!("storage degraded, publishes are refused: {reason}\n");
        return (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    }
    if let Some(reason) = shared.cluster.as_ref().and_then(|c| c.problem()) {
        let why = format!("cluster unavailable, publishes are refused: {reason}\n");
        return (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    }
    "ok\n".into_response()
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> Response {
    let mut text = shared.metrics.render();
    shared.storage.render(&mut text);
    shared.reader.render(&mut text);
    let failed = u8::from(shared.sequencer.write_path_failed());
    let _ = write!(
        text,
        "# HELP ants_relay_write_path_failed 1 once nothing more can be acknowledged until restart.\n\
         # TYPE ants_relay_write_path_failed gauge\nants_relay_write_path_failed {failed}\n"
    );
    if let Some(resident) = resident_bytes() {
        let _ = write!(
            text,
            "# HELP process_resident_memory_bytes Resident memory of the relay process, to set \
             against the memory budget of its [limits] (README).\n\
             # TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {resident}\n"
        );
    }
    if let Some(cluster) = &shared.cluster {
        let connected = u8::from(cluster.connected());
        let _ = write!(
            text,
            "# HELP ants_relay_nats_connected 1 while this frontend's NATS connection is up.\n\
             # TYPE ants_relay_nats_connected gauge\nants_relay_nats_connected {connected}\n"
        );
        cluster.render_metrics(&mut text);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// This process's resident memory, in bytes (`None` where `/proc/self/statm` cannot tell).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = rustix::param::page_size() as u64;
    Some(pages * page)
}

async fn upgrade(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    // Capabilities on the URL (`?cap=<hex>`), decoded once: a bad one refuses the upgrade.
    let access = match access::Access::from_query(query.as_deref()) {
        Ok(access) => access,
        Err(error) => {
            return (StatusCode::BAD_REQUEST, format!("{}\n", error.code())).into_response()
        }
    };
    if let Some(refused) = shared.take_slot_or_refuse() {
        return refused;
    }
    let max = shared
        .config
        .limits
        .max_frame_len
        .min(crate::wire::MAX_FRAME_LEN);
    // Small buffers: tungstenite's default 128 KiB read buffer per connection would dominate
    // the memory of idle connections, and it zero-fills the buffer's free room (up to
    // `read_buffer_size`) each time the socket is polled, which a subscriber is on every
    // commit. 1 KiB holds a few publishes; buffers still grow for large frames.
    // (`ants-load idle`: 9.8 → 6.8 KiB per connection against 4 KiB.)
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(1024)
        .write_buffer_size(socket::WRITE_BUFFER_LEN)
        .max_write_buffer_size(socket::max_write_buffer_len(crate::wire::MAX_FRAME_LEN))
        .on_upgrade(move |socket| socket::run(socket, shared, access))
}
