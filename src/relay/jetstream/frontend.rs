//! A relay frontend on a JetStream cluster (`ants-relay --store nats://…`): the composition
//! that [`crate::relay::start`] uses for a `nats://` store.
//!
//! Several frontends on one cluster are one logical relay:
//!
//! - **one key**: every frontend signs with the relay key in its `--data` directory (or
//!   `--key`); the operator copies the same key file to each (README "Cluster mode"). Receipts
//!   and checkpoints from any frontend are the relay's.
//! - **one log**: each frontend's sequencer ([`crate::relay::sequencer`]) numbers publishes on
//!   a [`JetStreamStore`]; a receipt is signed and sent only after the cluster acknowledged the
//!   append. Two frontends sequencing one topic at once are fenced by the store: the loser
//!   reloads its heads from the stream and decides the batch once more (an op sequenced
//!   elsewhere then gets its original entry's receipt); losing again, it refuses the batch
//!   `UNAVAILABLE` (clients retry with the same bytes). Such races are rare: a frontend
//!   forwards a publish for a topic another live frontend owns to that one
//!   ([`super::forward`]), unless the store URL says `forward=off`.
//! - **one order**: each frontend's [`Follower`] reads the stream into its read mirror (kept
//!   across restarts: a restart reads only what was appended meanwhile) and hub; the hub has no other source ([`FanOut::Followed`]), and a receipt waits (at most
//!   [`RECEIPT_PATIENCE`]) until the follower applied its entry.
//!
//! Yjs rooms are shared: a plain room is served bridged to its topic `yjs/<room>`
//! ([`crate::relay::yjs::cluster_room_topic`]), so every frontend's connections to a room edit
//! one document, kept in the log.

use std::sync::Arc;
use std::time::Duration;

use super::awareness::NatsAwareness;
use super::follower::Follower;
use super::forward::Forwarding;
use super::mirror::{read_mirrored, Mirror, MIRROR_FILE};
use super::pushes::NatsPushes;
use super::{JetStreamConfig, JetStreamStore};
use crate::error::{Error, Result};
use crate::relay::durable::{Audience, FanOut, PushBus};
use crate::relay::sequencer::{self, PublishRequest};
use crate::relay::store::{ReadPool, Store};
use crate::relay::yjs::AwarenessBus;
use crate::relay::{key, listen, ClusterLink, Config, Parts, RelayHandle, Started};

/// The longest a batch's receipts wait for this frontend's follower to apply its entries.
pub const RECEIPT_PATIENCE: Duration = Duration::from_secs(10);

/// What a frontend's server holds of its cluster: the follower (its health says the
/// frontend's) and the bus that carries room awareness between frontends.
#[derive(Debug)]
struct FrontendLink {
    follower: Follower,
    awareness: Arc<NatsAwareness>,
    /// Sends publishes to their topic's owner (`None`: `forward=off`).
    forwarding: Option<Arc<Forwarding>>,
}

impl ClusterLink for FrontendLink {
    fn problem(&self) -> Option<String> {
        self.follower.status().problem()
    }

    fn connected(&self) -> bool {
        self.follower.status().connected()
    }

    fn stop(&self) {
        if let Some(forwarding) = &self.forwarding {
            forwarding.stop();
        }
        self.follower.stop();
    }

    fn awareness(&self) -> Option<Arc<dyn AwarenessBus>> {
        Some(self.awareness.clone())
    }

    fn route(&self, request: PublishRequest) -> Option<PublishRequest> {
        match &self.forwarding {
            Some(forwarding) => forwarding.route(request),
            None => Some(request),
        }
    }

    fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let status = self.follower.status();
        for (name, help, value) in [
            (
                "ants_relay_mirror_applied_seq",
                "The stream sequence of the last log message this frontend's read mirror applied.",
                status.applied(),
            ),
            (
                "ants_relay_mirror_started_at_seq",
                "The stream sequence this frontend's follower started reading at: 1 when its read \
                 mirror was built from the whole stream, more when it resumed a mirror kept from \
                 its last run.",
                status.started_at(),
            ),
        ] {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            );
        }
        if let Some(forwarding) = &self.forwarding {
            forwarding.render(out);
        }
    }
}

/// Reads every topic's head from the stream into `store` (what the sequencer's start reads
/// again, then only catching up), trying again while the cluster does not answer in time: a
/// request timing out on a busy or settling cluster should not fail a frontend's start.
/// `UNAVAILABLE` after [`START_ATTEMPTS`] tries (also for a damaged log, whose error is the
/// same code); other codes at once.
fn load_heads(store: &mut JetStreamStore) -> Result<()> {
    for attempt in 1.. {
        match store.heads() {
            Ok(_) => return Ok(()),
            Err(error) if error.code() == "UNAVAILABLE" && attempt < START_ATTEMPTS => {
                tracing::warn!(%error, attempt, "reading the topics' heads; trying again");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(error) => return Err(error),
        }
    }
    unreachable!("the last attempt returns")
}

/// How many times a frontend's start reads the stream before it gives up.
const START_ATTEMPTS: u32 = 5;

/// Starts a frontend on the cluster `url` names: the relay key (checked against the cluster's
/// before a missing key file could be made anew), the read mirror in `config.data` caught up
/// with the stream, the sequencer on the stream, then serves.
///
/// Errors: `BAD_INPUT` for a bad URL or configuration; `UNAVAILABLE` when the cluster does not
/// answer or the mirror cannot be written.
pub(crate) async fn start(config: Config, url: &str) -> Result<RelayHandle> {
    let cluster = JetStreamConfig::from_url(url)?;
    std::fs::create_dir_all(&config.data).map_err(|e| {
        Error::Unavailable(format!("data directory {}: {e}", config.data.display()))
    })?;
    let key_path = config.key_path();
    // The key is checked against the cluster before anything else: a frontend whose key file
    // is missing must not make a new key (and leave it behind) for a log signed by another.
    let (store, identity) = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || {
            let store = JetStreamStore::connect(cluster)?;
            if !key_path.exists() {
                if let Some(owner) = store.recorded_relay_key()? {
                    return Err(Error::BadInput(format!(
                        "relay key file {} does not exist, and this cluster's log is signed by \
                         relay key {owner}: copy that key file to this frontend",
                        key_path.display()
                    )));
                }
            }
            let identity = Arc::new(key::load_or_create(&key_path)?);
            store.bind_relay_key(&identity.agent_id())?;
            Ok::<_, Error>((store, identity))
        })
        .await
        .map_err(|e| Error::Unavailable(format!("frontend start: {e}")))??
    };
    let Parts {
        metrics,
        rooms,
        hub,
        tuning,
        agents,
        rules,
        storage,
    } = Parts::new(&config)?;
    let awareness = NatsAwareness::connect(&cluster).await?;
    let pushes: Arc<dyn PushBus> = NatsPushes::connect(&cluster, agents.clone()).await?;
    let forward = cluster.forward.then(|| cluster.clone());
    let mirror_path = config.data.join(MIRROR_FILE);
    let started = std::time::Instant::now();
    let audience = Audience {
        fan_out: FanOut::Followed {
            patience: RECEIPT_PATIENCE,
        },
        hub: hub.clone(),
        agents: agents.clone(),
        pushes: Some(pushes),
        metrics: metrics.clone(),
    };
    // Blocking: the follower and the store run their own runtimes.
    let (follower, (queue, sequencer)) = {
        let (identity, hub, storage, path) = (
            identity.clone(),
            hub.clone(),
            storage.clone(),
            mirror_path.clone(),
        );
        tokio::task::spawn_blocking(move || {
            // Each phase's time, for the log: where a slow start goes.
            let mut phase = std::time::Instant::now();
            let mut lap = || {
                let ms = phase.elapsed().as_millis() as u64;
                phase = std::time::Instant::now();
                ms
            };
            let mirror = Mirror::open(&path, &identity.agent_id(), storage)?;
            let open_ms = lap();
            let follower = Follower::start(cluster, mirror, hub)?;
            let follow_ms = lap();
            let mut store = store;
            // What the mirror holds need not come from the stream again.
            if let Err(error) = read_mirrored(&path, &mut |topic| store.seed(topic)) {
                tracing::warn!(%error, "sequencer store not seeded from the mirror");
            }
            store.read_older_entries_from(ReadPool::with_readers(path.clone(), 1));
            let seed_ms = lap();
            load_heads(&mut store)?;
            let heads_ms = lap();
            let sequencer = sequencer::start(store, identity, audience, tuning, rules)?;
            tracing::info!(
                open_ms,
                follow_ms,
                seed_ms,
                heads_ms,
                sequencer_ms = lap(),
                "frontend start phases: mirror opened, caught up with the stream, sequencer \
                 store seeded from the mirror, its heads caught up, sequencer started"
            );
            Ok::<_, Error>((follower, sequencer))
        })
        .await
        .map_err(|e| Error::Unavailable(format!("frontend start: {e}")))??
    };
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        from = follower.status().started_at(),
        applied = follower.status().applied(),
        "read mirror caught up with the stream; frontend ready"
    );
    let forwarding = match forward {
        Some(cluster) => Some(Forwarding::start(&cluster, queue.clone(), hub.clone()).await?),
        None => None,
    };
    let started = Started {
        identity,
        metrics,
        rooms,
        hub,
        reader: Arc::new(ReadPool::new(mirror_path)),
        queue,
        sequencer,
        storage,
        agents,
        cluster: Some(Arc::new(FrontendLink {
            follower,
            awareness,
            forwarding,
        })),
    };
    listen(config, started).await
}
