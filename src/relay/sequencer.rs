//! The sequencer: one thread that owns the database's write connection, numbers verified ops
//! per topic and commits them in groups.
//!
//! Group commit: the thread blocks for the first pending publish and takes every publish queued
//! behind it (up to the batch size); a publish that found the thread idle, with nothing queued
//! behind it, waits up to the configured window for company. It sequences the whole batch
//! inside one transaction, signs the receipts on another thread while it writes and commits
//! the batch, and hands the batch's entries, answers and events to the durability thread
//! ([`super::durable`]), which announces them only once a sync of the WAL covers the batch.
//! Meanwhile the sequencer goes on with the next batch. A receipt therefore never precedes
//! durability, and a crash at any point loses only ops nobody was told were accepted.
//!
//! In front of it, the verifier thread checks op signatures in batches: it takes every publish
//! queued while it was busy (across all connections, up to [`VERIFY_BATCH_MAX`]), checks them
//! with one batch equation ([`crate::op::verify_ops`]) and hands them on in arrival order. When
//! a batch fails, each op of it is checked alone, so only the forged ones are refused, with
//! `BAD_SIGNATURE`. The two threads form a pipeline: one batch is verified while the previous
//! one is sequenced and committed.
//!
//! Each topic's replica is snapshotted into the database (table `replica_snapshots`, inside
//! the batch's transaction) once it has moved [`GroupCommit::snapshot_every`] entries past its
//! last snapshot, and again when the sequencer stops. At startup a replica is restored from its
//! snapshot and fed only the entries after it, instead of every entry of the topic.
//!
//! Per (topic, author) the counter must strictly increase; gaps are allowed (an author may
//! abandon an op it never managed to publish). A counter at or below the author's last one is
//! a retry when the op is byte-identical to the one stored at that counter (a receipt of the
//! original entry is returned, nothing is stored), `COUNTER_REUSED` when another op is stored
//! there, and `COUNTER_STALE` when nothing is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};
use tokio::sync::{mpsc, Notify};

use super::config::ReplicaRules;
use super::durable::{Announcement, Answer, Audience, Durability, Syncer, WalSyncer};
use super::hub::{CachedEntry, Hub};
use super::metrics::{Metrics, Phase};
use super::store::{self, storage, to_sql, RecoveredTopic, SqlHashes};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::identity::{AgentId, Identity};
use crate::log::{empty_root, leaf_hash, Frontier, Hash, Receipt, SignedReceipt};
use crate::op::{OpId, SignedOp};
use crate::replica::{Event, Replica, ReplicaConfig};
use crate::wire::{Body, Frame};

/// Where the sequencer sends a connection its answers: a bounded queue of encoded frames. A
/// connection that lets it fill up is a slow consumer: it is flagged and woken, and closes.
#[derive(Debug, Clone)]
pub struct ReplyTo {
    /// The connection's outbound queue.
    pub frames: mpsc::Sender<Vec<u8>>,
    /// Set when a frame could not be queued.
    pub overflowed: Arc<AtomicBool>,
    /// Wakes the connection.
    pub wake: Arc<Notify>,
}

impl ReplyTo {
    /// Queues `frame` without waiting; flags the connection as a slow consumer if it is full.
    pub fn send(&self, frame: &Frame) {
        let bytes = match frame.encode() {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(%error, "could not encode an answer");
                return;
            }
        };
        match self.frames.try_send(bytes) {
            Ok(()) => {}
            Err(TrySendError_::Full(_)) => {
                self.overflowed.store(true, Ordering::Release);
                self.wake.notify_one();
            }
            Err(TrySendError_::Closed(_)) => {}
        }
    }
}

use tokio::sync::mpsc::error::TrySendError as TrySendError_;

/// The answer queues of every authenticated connection, by agent: where replica events for an
/// agent (a compensation for a lost claim) are pushed.
#[derive(Debug, Default)]
pub struct AgentConnections(Mutex<HashMap<AgentId, Vec<ReplyTo>>>);

impl AgentConnections {
    /// Registers a connection authenticated as `agent`.
    pub fn register(&self, agent: AgentId, reply: ReplyTo) {
        if let Ok(mut map) = self.0.lock() {
            map.entry(agent).or_default().push(reply);
        }
    }

    /// Forgets a connection (identified by its queue).
    pub fn unregister(&self, agent: &AgentId, reply: &ReplyTo) {
        if let Ok(mut map) = self.0.lock() {
            if let Some(list) = map.get_mut(agent) {
                list.retain(|r| !Arc::ptr_eq(&r.overflowed, &reply.overflowed));
                if list.is_empty() {
                    map.remove(agent);
                }
            }
        }
    }

    /// Queues `frame` on every connection authenticated as `agent`.
    pub(crate) fn send(&self, agent: &AgentId, frame: &Frame) {
        let targets: Vec<ReplyTo> = self
            .0
            .lock()
            .map(|map| map.get(agent).cloned().unwrap_or_default())
            .unwrap_or_default();
        for reply in targets {
            reply.send(frame);
        }
    }
}

/// Most publishes whose signatures are checked in one batch equation.
pub const VERIFY_BATCH_MAX: usize = 256;

/// One op waiting to be verified and sequenced.
#[derive(Debug)]
pub struct PublishRequest {
    /// The op: decoded, author authenticated, signature checked by the verifier thread before
    /// the sequencer sees it.
    pub op: SignedOp,
    /// The request to answer.
    pub request_id: u32,
    /// Where to answer.
    pub reply: ReplyTo,
    /// When the relay received it (for the latency metric).
    pub received_at: Instant,
}

/// What the sequencer thread is asked to do. (Nearly every command is a publish, so boxing it
/// would cost an allocation per op for nothing.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Command {
    Publish(PublishRequest),
    /// Answer with a topic's replica state hash, after committing what came before.
    StateHash {
        /// The topic.
        topic: String,
        /// Where to answer (`None`: no such topic).
        answer: std::sync::mpsc::Sender<Option<[u8; 32]>>,
    },
    /// Commit what came before, snapshot every replica, then stop.
    Stop,
}

/// The sending side of the queue in front of the verifier and sequencer threads.
#[derive(Debug, Clone)]
pub struct SequencerQueue {
    tx: SyncSender<Command>,
    /// Raised when nothing more can be acknowledged: a WAL sync failed, or the sequencer
    /// thread panicked.
    failed: Arc<AtomicBool>,
}

impl SequencerQueue {
    /// Asks the sequencer to verify and commit everything queued before this call and stop
    /// (blocks while the queue is full).
    pub fn stop(&self) {
        let _ = self.tx.send(Command::Stop);
    }

    /// Whether the write path failed (a WAL sync failed, or the sequencer thread panicked):
    /// every publish is refused `UNAVAILABLE` until the relay restarts.
    pub fn write_path_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The replica state hash of `topic` once everything queued before this call is committed
    /// (`None` for a topic with no entries). Blocks.
    pub fn replica_state_hash(&self, topic: &str) -> Result<Option<[u8; 32]>> {
        let (answer, result) = std::sync::mpsc::channel();
        self.tx
            .send(Command::StateHash {
                topic: topic.to_owned(),
                answer,
            })
            .map_err(|_| Error::Unavailable("the relay is shutting down".into()))?;
        result
            .recv()
            .map_err(|_| Error::Unavailable("the relay is shutting down".into()))
    }

    /// Queues a publish without blocking. A full queue is `UNAVAILABLE` (retrying is safe).
    pub fn submit(&self, request: PublishRequest) -> Result<()> {
        match self.tx.try_send(Command::Publish(request)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                Err(Error::Unavailable("the sequencer is saturated".into()))
            }
            Err(TrySendError::Disconnected(_)) if self.write_path_failed() => Err(
                Error::Unavailable("the relay's write path failed; restart it".into()),
            ),
            Err(TrySendError::Disconnected(_)) => {
                Err(Error::Unavailable("the relay is shutting down".into()))
            }
        }
    }
}

/// Group-commit tuning.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommit {
    /// Longest wait for more publishes after a first one that found the sequencer idle.
    pub window: Duration,
    /// Most publishes in one transaction.
    pub max_ops: usize,
    /// Capacity of the queue in front of the sequencer.
    pub queue: usize,
    /// Entries between two replica snapshots of a topic (0: snapshot only when stopping).
    pub snapshot_every: u64,
}

#[derive(Debug)]
struct TopicState {
    id: i64,
    size: u64,
    last_time_ms: u64,
    last_counters: HashMap<AgentId, u64>,
    /// The right edge of the topic's Merkle tree (its complete subtrees are in `node_hashes`).
    frontier: Frontier,
    /// The topic's replica, fed every entry as it is sequenced.
    replica: Replica,
    /// The `next_seq` of the replica's latest stored snapshot (0: none).
    snapshot_seq: u64,
}

impl TopicState {
    /// Stores a snapshot of the replica in `tx` when it has moved at least `min_advance`
    /// entries past the stored one; says whether it did. (`snapshot_seq` moves with it; the
    /// caller reloads it from storage if `tx` does not commit.)
    fn snapshot_if_moved(&mut self, tx: &rusqlite::Transaction, min_advance: u64) -> Result<bool> {
        let next_seq = self.replica.next_seq();
        if next_seq < self.snapshot_seq.saturating_add(min_advance.max(1)) {
            return Ok(false);
        }
        store::put_replica_snapshot(tx, self.id, next_seq, &self.replica.snapshot())?;
        self.snapshot_seq = next_seq;
        Ok(true)
    }
}

/// The replica of topic `name` rebuilt from storage: its latest snapshot, if it is usable
/// (same topic and configuration, not past the stored entries), plus the entries after it;
/// otherwise every stored entry. Returns the replica and the snapshot's `next_seq` (0: none).
pub fn rebuild_replica(
    conn: &Connection,
    topic_id: i64,
    name: &str,
    config: &ReplicaConfig,
    size: u64,
) -> Result<(Replica, u64)> {
    let fresh = Replica::new(name, config.clone())?;
    let (mut replica, snapshot_seq) = match store::replica_snapshot(conn, topic_id)? {
        Some((next_seq, state)) => match Replica::restore(&state) {
            Ok(restored)
                if restored.topic() == name
                    && restored.config() == fresh.config()
                    && restored.next_seq() == next_seq
                    && next_seq <= size =>
            {
                (restored, next_seq)
            }
            Ok(_) => {
                tracing::warn!(topic = name, "replica snapshot does not match; replaying");
                (fresh, 0)
            }
            Err(error) => {
                tracing::warn!(topic = name, %error, "replica snapshot unreadable; replaying");
                (fresh, 0)
            }
        },
        None => (fresh, 0),
    };
    let mut stmt = conn
        .prepare("SELECT entry FROM entries WHERE topic = ?1 AND seq >= ?2 ORDER BY seq")
        .map_err(storage("rebuild replica"))?;
    let mut rows = stmt
        .query(params![topic_id, to_sql(replica.next_seq())])
        .map_err(storage("rebuild replica"))?;
    while let Some(row) = rows.next().map_err(storage("rebuild replica"))? {
        let bytes: Vec<u8> = row.get(0).map_err(storage("rebuild replica"))?;
        // Stored entries were verified when sequenced.
        let entry = Entry::decode_unverified(&bytes)?;
        replica.apply(&entry)?;
    }
    Ok((replica, snapshot_seq))
}

/// Every topic's state as stored, with its Merkle frontier rebuilt from the hash table and its
/// replica (with the rules `rules` give it) from its snapshot and the entries after it.
fn load_topics(conn: &Connection, rules: &ReplicaRules) -> Result<HashMap<String, TopicState>> {
    let mut topics = HashMap::new();
    for t in store::recover(conn)? {
        let frontier = Frontier::from_store(&SqlHashes::new(conn, t.id), t.size)?;
        let (replica, snapshot_seq) =
            rebuild_replica(conn, t.id, &t.name, &rules.for_topic(&t.name), t.size)?;
        let RecoveredTopic {
            id,
            name,
            size,
            last_time_ms,
            last_counters,
        } = t;
        topics.insert(
            name,
            TopicState {
                id,
                size,
                last_time_ms,
                last_counters,
                frontier,
                replica,
                snapshot_seq,
            },
        );
    }
    Ok(topics)
}

/// The outcome of sequencing one op.
enum Outcome {
    /// Newly sequenced.
    New { seq: u64, receipt: ReceiptBytes },
    /// A retry of an op already sequenced.
    Retry { seq: u64, receipt: ReceiptBytes },
}

/// The receipt of an op: as stored by an older relay, to sign again (a retry of an op from an
/// earlier batch), or one of this batch's receipts, signed while the batch commits.
enum ReceiptBytes {
    Stored(Vec<u8>),
    Unsigned(Receipt),
    Pending(usize),
}

/// The receipt of a stored op, for a retry: the stored bytes if an older relay kept them,
/// otherwise the receipt rebuilt from the row and the topic's stored hashes, to be signed again
/// (the same statement as the original; signed alone, as version 1, where the original was
/// signed in its batch).
fn stored_receipt(
    conn: &Connection,
    topic: &str,
    topic_id: i64,
    stored: store::StoredOp,
) -> Result<ReceiptBytes> {
    if !stored.receipt.is_empty() {
        return Ok(ReceiptBytes::Stored(stored.receipt));
    }
    let entry = Entry::decode_unverified(&stored.entry)?;
    let tree_size = stored.seq + 1;
    let frontier = Frontier::from_store(&SqlHashes::new(conn, topic_id), tree_size)?;
    Ok(ReceiptBytes::Unsigned(Receipt {
        topic: topic.to_owned(),
        seq: stored.seq,
        op_id: OpId(stored.op_id),
        relay_time_ms: entry.relay_time_ms(),
        tree_size,
        root: frontier.root(),
    }))
}

/// An entry sequenced in the current batch, not yet written: its row is inserted while the
/// receipts of the whole batch are signed on other threads.
struct PendingEntry {
    topic_id: i64,
    author: AgentId,
    counter: u64,
    op_id: OpId,
    entry: Arc<[u8]>,
    receipt: Receipt,
    hashes: Vec<(u32, u64, crate::log::Hash)>,
}

/// What the current batch sequenced so far: retries and deps within a batch are resolved
/// here, since its rows are written only once the whole batch is sequenced.
#[derive(Default)]
struct BatchLog {
    pending: Vec<PendingEntry>,
    by_counter: HashMap<(i64, AgentId, u64), usize>,
    op_ids: std::collections::HashSet<OpId>,
}

/// The sequencer thread's state.
struct Sequencer {
    conn: Connection,
    topics: HashMap<String, TopicState>,
    /// Makes each committed batch durable, then announces it (hub, answers, pushed events).
    durability: Durability,
    metrics: Arc<Metrics>,
    identity: Arc<Identity>,
    snapshot_every: u64,
    rules: ReplicaRules,
    /// Keeps the checkpoint thread running while the sequencer runs (`None` in unit tests).
    _checkpointer: Option<std::sync::mpsc::Sender<()>>,
}

/// Opens the database at `db_path` for writing, recovers state from it, restores the hub and
/// starts the verifier, sequencer and checkpoint threads. They
/// end after every [`SequencerQueue`] clone is dropped and the queue is drained.
pub fn start(
    db_path: std::path::PathBuf,
    identity: Arc<Identity>,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    agents: Arc<AgentConnections>,
    tuning: GroupCommit,
    rules: ReplicaRules,
) -> Result<(SequencerQueue, std::thread::JoinHandle<()>)> {
    let conn = store::open_writer(&db_path)?;
    store::bind_relay_key(&conn, &identity.agent_id())?;
    // Entries a crashed relay committed without syncing them survive in the page cache and
    // are about to be recovered; sync them before any is served, or a power loss could still
    // take back what subscribers were shown. (No WAL file: everything is in the database
    // file, which SQLite syncs when it checkpoints.)
    let mut syncer = WalSyncer::new(&db_path);
    match syncer.sync() {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::Unavailable(format!("cannot sync the WAL: {error}")));
        }
        _ => {}
    }
    let topics = load_topics(&conn, &rules)?;
    for (name, topic) in &topics {
        hub.restore(name, topic.size, topic.frontier.root());
        metrics.entries_restored(topic.size);
    }
    let (checkpointer_alive, alive) = std::sync::mpsc::channel();
    store::spawn_checkpointer(&conn, db_path.clone(), alive)?;
    let (tx, rx) = std::sync::mpsc::sync_channel(tuning.queue.max(1));
    let (verified_tx, verified_rx) = std::sync::mpsc::sync_channel(tuning.queue.max(1));
    let verifier_metrics = metrics.clone();
    let durability = Durability::start(
        syncer,
        Audience {
            hub,
            agents,
            metrics: metrics.clone(),
        },
    )?;
    let failed = durability.failure_flag();
    let panicked = failed.clone();
    let mut sequencer = Sequencer {
        conn,
        topics,
        durability,
        metrics,
        identity,
        snapshot_every: tuning.snapshot_every,
        rules,
        _checkpointer: Some(checkpointer_alive),
    };
    let handle = std::thread::Builder::new()
        .name("ants-sequencer".into())
        .spawn(move || raise_on_panic(&panicked, move || sequencer.run(verified_rx, tuning)))
        .map_err(|e| Error::Unavailable(format!("cannot start the sequencer thread: {e}")))?;
    std::thread::Builder::new()
        .name("ants-verifier".into())
        .spawn(move || run_verifier(&rx, &verified_tx, &verifier_metrics))
        .map_err(|e| Error::Unavailable(format!("cannot start the verifier thread: {e}")))?;
    Ok((SequencerQueue { tx, failed }, handle))
}

/// Runs `body`; should it panic, raises `failed` instead of letting the panic end the thread
/// unnoticed. (The panic hook has printed where; the sequencer's queue closes as it drops, so
/// every later publish is refused, and the health check says why.)
fn raise_on_panic(failed: &AtomicBool, body: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_err() {
        failed.store(true, Ordering::Release);
        tracing::error!("the sequencer panicked: refusing every publish until restart");
    }
}

/// The verifier thread: batches of publishes in, verified publishes out, in arrival order.
/// Ends after forwarding a stop (or when every sender is gone); the sequencer then stops too.
fn run_verifier(rx: &Receiver<Command>, out: &SyncSender<Command>, metrics: &Metrics) {
    use std::sync::mpsc::TryRecvError;
    let mut batch: Vec<PublishRequest> = Vec::with_capacity(VERIFY_BATCH_MAX);
    let mut keys = crate::identity::KeyCache::default();
    loop {
        // A command other than a publish ends the batch and is forwarded right behind it.
        let mut after = None;
        match rx.recv() {
            Ok(Command::Publish(first)) => batch.push(first),
            Ok(other) => after = Some(other),
            Err(_) => return,
        }
        // No waiting: whatever queued up while the previous batch was checked is the batch.
        while after.is_none() && batch.len() < VERIFY_BATCH_MAX {
            match rx.try_recv() {
                Ok(Command::Publish(request)) => batch.push(request),
                Ok(other) => after = Some(other),
                Err(TryRecvError::Disconnected) => after = Some(Command::Stop),
                Err(TryRecvError::Empty) => break,
            }
        }
        for request in verify_batch(&mut keys, std::mem::take(&mut batch), metrics) {
            if out.send(Command::Publish(request)).is_err() {
                return;
            }
        }
        if let Some(command) = after {
            let stop = matches!(command, Command::Stop);
            if out.send(command).is_err() || stop {
                return;
            }
        }
    }
}

/// Checks the signatures of `batch` with one batch equation; on failure checks each alone and
/// refuses the forged ones (`BAD_SIGNATURE` to their connection). Returns the genuine ones in
/// their original order.
fn verify_batch(
    keys: &mut crate::identity::KeyCache,
    batch: Vec<PublishRequest>,
    metrics: &Metrics,
) -> Vec<PublishRequest> {
    if batch.is_empty() {
        return batch;
    }
    metrics.verify_batch(batch.len());
    if crate::op::verify_ops_cached(keys, batch.iter().map(|r| &r.op)).is_ok() {
        return batch;
    }
    batch
        .into_iter()
        .filter(|request| {
            let op = &request.op;
            match op.author().verify(&op.signed_message(), op.signature()) {
                Ok(()) => true,
                Err(error) => {
                    metrics.refused(error.code());
                    request
                        .reply
                        .send(&Frame::error(request.request_id, &error));
                    false
                }
            }
        })
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Sequencer {
    fn run(&mut self, rx: Receiver<Command>, tuning: GroupCommit) {
        let max_ops = tuning.max_ops.max(1);
        let mut batch = Vec::with_capacity(max_ops);
        let mut stopping = false;
        while !stopping {
            let mut query = None;
            match rx.recv() {
                Ok(Command::Publish(first)) => batch.push(first),
                Ok(Command::StateHash { topic, answer }) => {
                    let _ = answer.send(self.state_hash(&topic));
                    continue;
                }
                Ok(Command::Stop) | Err(_) => break,
            }
            // Take the backlog that queued while the last batch was committed. Only an op that
            // found the sequencer idle (nothing behind it) waits the window for company.
            let mut deadline = None;
            while batch.len() < max_ops {
                let next = match rx.try_recv() {
                    Ok(command) => Ok(command),
                    Err(_) => {
                        let deadline = match deadline {
                            Some(deadline) => deadline,
                            None if batch.len() == 1 => {
                                *deadline.insert(Instant::now() + tuning.window)
                            }
                            None => break,
                        };
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        rx.recv_timeout(deadline - now)
                    }
                };
                match next {
                    Ok(Command::Publish(request)) => batch.push(request),
                    Ok(Command::StateHash { topic, answer }) => {
                        query = Some((topic, answer));
                        break;
                    }
                    Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                        stopping = true;
                        break;
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                }
            }
            self.commit_batch(std::mem::take(&mut batch));
            if let Some((topic, answer)) = query {
                let _ = answer.send(self.state_hash(&topic));
            }
        }
        self.snapshot_all();
        tracing::info!("sequencer drained and stopped");
    }

    fn state_hash(&self, topic: &str) -> Option<[u8; 32]> {
        self.topics.get(topic).map(|t| t.replica.state_hash())
    }

    /// Stores a snapshot of every replica that moved since its last one (when stopping).
    fn snapshot_all(&mut self) {
        let topics = &mut self.topics;
        let result = (|| -> Result<usize> {
            let tx = self
                .conn
                .transaction()
                .map_err(storage("begin transaction"))?;
            let mut stored = 0;
            for topic in topics.values_mut() {
                if topic.snapshot_if_moved(&tx, 1)? {
                    stored += 1;
                }
            }
            tx.commit().map_err(storage("commit"))?;
            Ok(stored)
        })();
        match result {
            Ok(stored) => {
                tracing::info!(topics = stored, "replica snapshots stored");
                if stored > 0 {
                    // Nothing to announce, but the snapshots' commit is synced like a batch's.
                    self.durability.hand_over(Announcement::default());
                }
            }
            Err(error) => tracing::error!(%error, "could not store replica snapshots"),
        }
    }

    fn commit_batch(&mut self, batch: Vec<PublishRequest>) {
        let started = Instant::now();
        if self.durability.failed() {
            // A sync failed: nothing written from now on could be promised durable.
            self.refuse(batch, &super::durable::unavailable());
            return;
        }
        let mut outcomes: Vec<Result<Outcome>> = Vec::with_capacity(batch.len());
        let mut fresh: Vec<(String, CachedEntry)> = Vec::new();
        let mut pushes: Vec<(AgentId, Frame)> = Vec::new();
        let mut log = BatchLog::default();
        let mut signed: Vec<Vec<u8>> = Vec::new();
        let result = (|| -> Result<()> {
            let tx = self
                .conn
                .transaction()
                .map_err(storage("begin transaction"))?;
            for request in &batch {
                let outcome = sequence_one(
                    &tx,
                    &mut self.topics,
                    &self.rules,
                    &request.op,
                    &mut fresh,
                    &mut pushes,
                    &mut log,
                );
                // A storage failure aborts the whole batch; a refusal concerns one op only.
                if let Err(Error::Unavailable(reason)) = &outcome {
                    return Err(Error::Unavailable(reason.clone()));
                }
                outcomes.push(outcome);
            }
            self.metrics.phase(Phase::Sequence, started.elapsed());
            // One signature for the whole batch (receipt version 2): cheaper here than handing
            // the batch to another thread and waiting for it. Signed before the commit, so
            // that a failure leaves nothing committed. Receipts are not stored (see
            // `store::SCHEMA`), and none is sent before the durability thread's sync.
            let signing = Instant::now();
            let receipts = log.pending.iter().map(|p| p.receipt.clone()).collect();
            signed = SignedReceipt::sign_batch(&self.identity, receipts)?
                .into_iter()
                .map(|receipt| receipt.as_bytes().to_vec())
                .collect();
            self.metrics.phase(Phase::Sign, signing.elapsed());
            write_and_commit(
                tx,
                &log.pending,
                &fresh,
                &mut self.topics,
                self.snapshot_every,
                &self.metrics,
            )
        })();
        if let Err(error) = result {
            tracing::error!(%error, ops = batch.len(), "batch not committed");
            // In-memory state may have advanced for ops that were rolled back: reload it.
            self.reload();
            self.refuse(batch, &error);
            return;
        }
        let answer_started = Instant::now();
        // The batch is committed but not yet durable: the durability thread announces it once
        // a sync covers it. Entries go per topic, in sequence order, with the root after them.
        let committed_at = Instant::now();
        let mut entries: Vec<(String, Vec<CachedEntry>, Hash)> = Vec::new();
        for (topic, mut entry) in fresh {
            entry.committed_at = Some(committed_at);
            match entries.iter_mut().find(|(t, _, _)| *t == topic) {
                Some((_, run, _)) => run.push(entry),
                None => entries.push((topic, vec![entry], empty_root())),
            }
        }
        for (topic, _, root) in &mut entries {
            if let Some(state) = self.topics.get(topic.as_str()) {
                *root = state.frontier.root();
            }
        }
        let answers = batch
            .into_iter()
            .zip(outcomes)
            .map(|(request, outcome)| {
                let op_id = request.op.id();
                let outcome = outcome.and_then(|outcome| {
                    let (Outcome::New { seq, receipt } | Outcome::Retry { seq, receipt }) = outcome;
                    let receipt = match receipt {
                        ReceiptBytes::Stored(bytes) => bytes,
                        ReceiptBytes::Unsigned(receipt) => {
                            SignedReceipt::sign(&self.identity, receipt)?
                                .as_bytes()
                                .to_vec()
                        }
                        ReceiptBytes::Pending(i) => signed.get(i).cloned().unwrap_or_default(),
                    };
                    Ok((seq, op_id, receipt))
                });
                Answer {
                    reply: request.reply,
                    request_id: request.request_id,
                    outcome,
                    received_at: request.received_at,
                }
            })
            .collect();
        self.durability.hand_over(Announcement {
            entries,
            answers,
            pushes,
            started: Some(started),
        });
        self.metrics.phase(Phase::Answer, answer_started.elapsed());
    }

    /// Refuses every publish of `batch` with `error`, through the durability thread so that
    /// each connection still gets its answers in order.
    fn refuse(&self, batch: Vec<PublishRequest>, error: &Error) {
        let answers = batch
            .into_iter()
            .map(|request| Answer {
                reply: request.reply,
                request_id: request.request_id,
                outcome: Err(error.clone()),
                received_at: request.received_at,
            })
            .collect();
        self.durability.hand_over(Announcement {
            answers,
            ..Announcement::default()
        });
    }

    fn reload(&mut self) {
        match load_topics(&self.conn, &self.rules) {
            Ok(topics) => self.topics = topics,
            Err(error) => tracing::error!(%error, "could not reload state after a failed commit"),
        }
    }
}

/// Writes the rows of a sequenced batch (entries, completed subtree hashes, replica
/// snapshots due) into `tx` and commits it: a write to the WAL, which the durability thread
/// then syncs.
fn write_and_commit(
    tx: rusqlite::Transaction<'_>,
    pending: &[PendingEntry],
    fresh: &[(String, CachedEntry)],
    topics: &mut HashMap<String, TopicState>,
    snapshot_every: u64,
    metrics: &Metrics,
) -> Result<()> {
    let write_started = Instant::now();
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO entries (topic, seq, author, counter, op_id, entry, receipt) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, x'')",
        )
        .map_err(storage("insert entry"))?;
    for entry in pending {
        store::put_hashes(&tx, entry.topic_id, &entry.hashes)?;
        insert
            .execute(params![
                entry.topic_id,
                to_sql(entry.receipt.seq),
                &entry.author.as_bytes()[..],
                to_sql(entry.counter),
                &entry.op_id.0[..],
                &entry.entry[..],
            ])
            .map_err(storage("insert entry"))?;
    }
    drop(insert);
    // Snapshot the replicas this batch moved far enough, in the same transaction: a stored
    // snapshot always matches the stored entries.
    if snapshot_every > 0 {
        let mut touched: Vec<&str> = fresh.iter().map(|(t, _)| t.as_str()).collect();
        touched.sort_unstable();
        touched.dedup();
        for name in touched {
            if let Some(topic) = topics.get_mut(name) {
                topic.snapshot_if_moved(&tx, snapshot_every)?;
            }
        }
    }
    metrics.phase(Phase::Write, write_started.elapsed());
    let commit_started = Instant::now();
    tx.commit().map_err(storage("commit"))?;
    metrics.commit_latency(commit_started.elapsed());
    metrics.phase(Phase::Commit, commit_started.elapsed());
    Ok(())
}

fn sequence_one(
    tx: &rusqlite::Transaction<'_>,
    topics: &mut HashMap<String, TopicState>,
    rules: &ReplicaRules,
    op: &SignedOp,
    fresh: &mut Vec<(String, CachedEntry)>,
    pushes: &mut Vec<(AgentId, Frame)>,
    log: &mut BatchLog,
) -> Result<Outcome> {
    let topic_name = op.topic();
    if !topics.contains_key(topic_name) {
        tx.execute("INSERT INTO topics (name) VALUES (?1)", params![topic_name])
            .map_err(storage("create topic"))?;
        let id = tx.last_insert_rowid();
        topics.insert(
            topic_name.to_owned(),
            TopicState {
                id,
                size: 0,
                last_time_ms: 0,
                last_counters: HashMap::new(),
                frontier: Frontier::new(),
                replica: Replica::new(topic_name, rules.for_topic(topic_name))?,
                snapshot_seq: 0,
            },
        );
    }
    let Some(topic) = topics.get_mut(topic_name) else {
        return Err(Error::Unavailable("topic state vanished".into()));
    };
    let author = *op.author();
    let counter = op.counter();
    if let Some(&last) = topic.last_counters.get(&author) {
        if counter <= last {
            if let Some(&i) = log.by_counter.get(&(topic.id, author, counter)) {
                let pending = &log.pending[i];
                return if pending.op_id == op.id() {
                    Ok(Outcome::Retry {
                        seq: pending.receipt.seq,
                        receipt: ReceiptBytes::Pending(i),
                    })
                } else {
                    Err(Error::CounterReused {
                        topic: topic_name.to_owned(),
                        counter,
                    })
                };
            }
            return match store::op_at_counter(tx, topic.id, &author, counter)? {
                Some(stored) if OpId(stored.op_id) == op.id() => Ok(Outcome::Retry {
                    seq: stored.seq,
                    receipt: stored_receipt(tx, topic_name, topic.id, stored)?,
                }),
                Some(_) => Err(Error::CounterReused {
                    topic: topic_name.to_owned(),
                    counter,
                }),
                None => Err(Error::CounterStale {
                    topic: topic_name.to_owned(),
                    counter,
                    last,
                }),
            };
        }
    }
    // Every dep must already be sequenced (here or in another topic): sequencing an op before
    // one it depends on would be a DEPS_ORDER violation any follower can prove.
    for dep in op.deps() {
        if !log.op_ids.contains(dep) && !store::op_is_sequenced(tx, &dep.0)? {
            return Err(Error::DepsMissing {
                dep: dep.to_string(),
            });
        }
    }
    let seq = topic.size;
    // Relay time never goes backwards within a topic, whatever the wall clock does.
    let time = now_ms().max(topic.last_time_ms);
    let entry = Entry::new(seq, time, op.clone());
    // Append to a copy of the frontier: nothing changes if a later step fails.
    let mut frontier = topic.frontier.clone();
    let mut completed = Vec::with_capacity(4);
    frontier.append_hash(leaf_hash(entry.as_bytes()), |level, index, hash| {
        completed.push((level, index, *hash))
    })?;
    let bytes: Arc<[u8]> = Arc::from(entry.as_bytes());
    let index = log.pending.len();
    log.pending.push(PendingEntry {
        topic_id: topic.id,
        author,
        counter,
        op_id: op.id(),
        entry: bytes.clone(),
        receipt: Receipt {
            topic: topic_name.to_owned(),
            seq,
            op_id: op.id(),
            relay_time_ms: time,
            tree_size: seq + 1,
            root: frontier.root(),
        },
        hashes: completed,
    });
    log.by_counter.insert((topic.id, author, counter), index);
    log.op_ids.insert(op.id());
    // The replica sees the entry now, so a lost claim is known before the batch commits. (If
    // the batch fails, `reload` rebuilds every replica from storage.)
    match topic.replica.apply(&entry) {
        Ok(events) => {
            for event in events {
                if let Event::Compensation { loser, .. } = &event {
                    let bytes = serde_json::to_vec(&event).unwrap_or_default();
                    let frame = Frame::new(
                        0,
                        Body::Event {
                            topic: topic_name.to_owned(),
                            seq,
                            event: bytes,
                        },
                    );
                    pushes.push((*loser, frame));
                }
            }
        }
        Err(error) => tracing::error!(%error, seq, "replica refused a sequenced entry"),
    }
    topic.size += 1;
    topic.frontier = frontier;
    topic.last_time_ms = time;
    topic.last_counters.insert(author, counter);
    fresh.push((
        topic_name.to_owned(),
        CachedEntry {
            seq,
            bytes,
            committed_at: Some(Instant::now()),
        },
    ));
    Ok(Outcome::New {
        seq,
        receipt: ReceiptBytes::Pending(index),
    })
}

/// A connection's reply side for the tests, and the frames it receives.
#[cfg(test)]
fn reply_channel(capacity: usize) -> (ReplyTo, mpsc::Receiver<Vec<u8>>) {
    let (frames, answers) = mpsc::channel(capacity);
    let reply = ReplyTo {
        frames,
        overflowed: Arc::default(),
        wake: Arc::default(),
    };
    (reply, answers)
}

#[cfg(test)]
mod verify_tests {
    use super::*;
    use crate::op::OpDraft;

    #[test]
    fn a_failed_batch_refuses_only_its_forged_ops_and_keeps_the_order() {
        let (reply, mut answers) = reply_channel(16);
        let alice = Identity::from_seed(&[7; 32]).unwrap();
        let requests: Vec<PublishRequest> = (0..6u32)
            .map(|i| {
                let op = SignedOp::sign(
                    &alice,
                    OpDraft {
                        topic: "t".into(),
                        kind: "post".into(),
                        counter: u64::from(i),
                        time_ms: 0,
                        deps: vec![],
                        body: vec![1, 2, 3],
                    },
                )
                .unwrap();
                let op = if i % 3 == 1 {
                    let mut bytes = op.as_bytes().to_vec();
                    let last = bytes.len() - 1;
                    bytes[last] ^= 1;
                    SignedOp::decode_unverified(&bytes).unwrap()
                } else {
                    op
                };
                PublishRequest {
                    op,
                    request_id: i,
                    reply: reply.clone(),
                    received_at: Instant::now(),
                }
            })
            .collect();
        let metrics = Metrics::default();
        let mut keys = crate::identity::KeyCache::default();
        let kept = verify_batch(&mut keys, requests, &metrics);
        let ids: Vec<u32> = kept.iter().map(|r| r.request_id).collect();
        assert_eq!(ids, [0, 2, 3, 5]);
        for expected in [1, 4] {
            let frame = Frame::decode(&answers.try_recv().unwrap()).unwrap();
            assert_eq!(frame.request_id, expected);
            assert!(
                matches!(&frame.body, Body::Error { code, .. } if code == "BAD_SIGNATURE"),
                "{frame:?}"
            );
        }
        assert!(answers.try_recv().is_err());
        // A genuine batch passes whole.
        assert_eq!(verify_batch(&mut keys, kept, &metrics).len(), 4);
        assert!(metrics
            .render()
            .contains("ants_relay_verify_batch_ops_total 10"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::OpDraft;

    fn post(author: &Identity, counter: u64) -> SignedOp {
        SignedOp::sign(
            author,
            OpDraft {
                topic: "t".into(),
                kind: "post".into(),
                counter,
                time_ms: counter,
                deps: vec![],
                body: format!("post {counter}").into_bytes(),
            },
        )
        .unwrap()
    }

    fn full_replay(conn: &Connection) -> Replica {
        let mut replica = Replica::new("t", ReplicaConfig::default()).unwrap();
        let mut stmt = conn
            .prepare("SELECT entry FROM entries ORDER BY seq")
            .unwrap();
        let entries: Vec<Vec<u8>> = stmt
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for bytes in entries {
            replica
                .apply(&Entry::decode_unverified(&bytes).unwrap())
                .unwrap();
        }
        replica
    }

    fn sequencer(path: &std::path::Path) -> Sequencer {
        Sequencer {
            conn: store::open_writer(path).unwrap(),
            topics: HashMap::new(),
            durability: Durability::start(
                WalSyncer::new(path),
                Audience {
                    hub: Arc::new(Hub::new(16)),
                    agents: Arc::default(),
                    metrics: Arc::default(),
                },
            )
            .unwrap(),
            metrics: Arc::default(),
            identity: Arc::new(Identity::from_seed(&[1; 32]).unwrap()),
            snapshot_every: 0,
            rules: ReplicaRules::default(),
            _checkpointer: None,
        }
    }

    fn draft(counter: u64, deps: Vec<OpId>, body: &[u8]) -> OpDraft {
        OpDraft {
            topic: "t".into(),
            kind: "post".into(),
            counter,
            time_ms: 0,
            deps,
            body: body.to_vec(),
        }
    }

    #[test]
    fn a_panic_in_the_sequencer_raises_the_failure_flag() {
        let failed = AtomicBool::new(false);
        raise_on_panic(&failed, || {});
        assert!(
            !failed.load(Ordering::Acquire),
            "a normal end is not a failure"
        );
        raise_on_panic(&failed, || panic!("a bug met on the write path"));
        assert!(failed.load(Ordering::Acquire));
    }

    #[test]
    fn retries_and_deps_within_one_batch_and_receipts_signed_in_batches() {
        let dir = std::env::temp_dir().join(format!("ants-seq-batch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut first_run = sequencer(&dir.join(store::DB_FILE));
        let relay = first_run.identity.agent_id();
        let (reply, mut answers) = reply_channel(1024);
        let alice = Identity::from_seed(&[7; 32]).unwrap();
        let first = SignedOp::sign(&alice, draft(0, vec![], b"a")).unwrap();
        let reused = SignedOp::sign(&alice, draft(0, vec![], b"other")).unwrap();
        let dependent = SignedOp::sign(&alice, draft(1, vec![first.id()], b"c")).unwrap();
        let missing = SignedOp::sign(&alice, draft(2, vec![OpId([9; 32])], b"d")).unwrap();
        let mut ops = vec![first.clone(), first, reused, dependent, missing];
        // Enough more for the receipts to be signed on several threads.
        ops.extend((3..100).map(|c| SignedOp::sign(&alice, draft(c, vec![], b"x")).unwrap()));
        let batch = ops
            .iter()
            .enumerate()
            .map(|(i, op)| PublishRequest {
                op: op.clone(),
                request_id: i as u32,
                reply: reply.clone(),
                received_at: Instant::now(),
            })
            .collect();
        first_run.commit_batch(batch);
        let mut answer = |request_id: u32| {
            let frame = crate::relay::durable::next_frame(&mut answers);
            assert_eq!(frame.request_id, request_id);
            frame.body
        };
        let receipt_of = |body: Body| match body {
            Body::Receipt { seq, receipt, .. } => {
                let signed = SignedReceipt::decode(&receipt, &relay).unwrap();
                assert_eq!(signed.receipt().seq, seq);
                (seq, signed.receipt().clone())
            }
            other => panic!("{other:?}"),
        };
        let code_of = |body: Body| match body {
            Body::Error { code, .. } => code,
            other => panic!("{other:?}"),
        };
        let original = receipt_of(answer(0));
        assert_eq!(original.0, 0);
        assert_eq!(receipt_of(answer(1)), original, "a retry in the same batch");
        assert_eq!(code_of(answer(2)), "COUNTER_REUSED");
        assert_eq!(
            receipt_of(answer(3)).0,
            1,
            "its dep is earlier in the batch"
        );
        assert_eq!(code_of(answer(4)), "DEPS_MISSING");
        let mut sent = vec![original.clone()];
        for (i, seq) in (5..ops.len() as u32).zip(2..) {
            let receipt = receipt_of(answer(i));
            assert_eq!(receipt.0, seq);
            sent.push(receipt);
        }
        // Receipts are not stored but signed again for a retry in a later batch, and again
        // after a restart: the same statement as the one first sent, whatever the tree size.
        let retry = |sequencer: &mut Sequencer, request_id: u32, op: &SignedOp| {
            sequencer.commit_batch(vec![PublishRequest {
                op: op.clone(),
                request_id,
                reply: reply.clone(),
                received_at: Instant::now(),
            }]);
        };
        retry(&mut first_run, 200, &ops[0]);
        assert_eq!(receipt_of(answer(200)), original);
        drop(first_run);
        let mut restarted = sequencer(&dir.join(store::DB_FILE));
        restarted.topics = load_topics(&restarted.conn, &restarted.rules).unwrap();
        // Seqs 0, 2 and 50: trees of 1, 3 and 51 entries, rebuilt from the stored hashes.
        for (request_id, op, seq) in [(201, &ops[0], 0), (202, &ops[5], 2), (203, &ops[53], 50)] {
            retry(&mut restarted, request_id, op);
            let again = receipt_of(answer(request_id));
            assert_eq!(again.0, seq);
            assert!(sent.contains(&again), "seq {seq}: a different receipt");
        }
        drop(restarted);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_database_refuses_the_batch_with_unavailable_and_changes_nothing() {
        let dir = std::env::temp_dir().join(format!("ants-seq-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut sequencer = sequencer(&dir.join(store::DB_FILE));
        let (reply, mut answers) = reply_channel(1024);
        let alice = Identity::from_seed(&[7; 32]).unwrap();
        let ops: Vec<SignedOp> = (0..40)
            .map(|c| SignedOp::sign(&alice, draft(c, vec![], &[c as u8; 3_000])).unwrap())
            .collect();
        let publish = |sequencer: &mut Sequencer, ops: &[SignedOp], first_id: u32| {
            let batch = (first_id..)
                .zip(ops)
                .map(|(request_id, op)| PublishRequest {
                    op: op.clone(),
                    request_id,
                    reply: reply.clone(),
                    received_at: Instant::now(),
                })
                .collect();
            sequencer.commit_batch(batch);
        };
        let mut answer = |request_id: u32| {
            let frame = crate::relay::durable::next_frame(&mut answers);
            assert_eq!(frame.request_id, request_id);
            frame.body
        };
        publish(&mut sequencer, &ops[..10], 0);
        for request_id in 0..10 {
            assert!(
                matches!(answer(request_id), Body::Receipt { seq, .. } if seq == u64::from(request_id))
            );
        }
        let root = sequencer.topics["t"].frontier.root();
        let state = sequencer.topics["t"].replica.state_hash();

        // The disk is full: the database may not grow by a page.
        let pages: i64 = sequencer
            .conn
            .query_row("PRAGMA page_count", [], |row| row.get(0))
            .unwrap();
        sequencer
            .conn
            .pragma_update(None, "max_page_count", pages)
            .unwrap();
        publish(&mut sequencer, &ops[10..30], 100);
        for request_id in 100..120 {
            match answer(request_id) {
                Body::Error { code, .. } => assert_eq!(code, "UNAVAILABLE"),
                other => panic!("{other:?}"),
            }
        }
        let topic = &sequencer.topics["t"];
        assert_eq!(topic.frontier.size(), 10, "nothing sequenced");
        assert_eq!(topic.frontier.root(), root);
        assert_eq!(topic.replica.state_hash(), state);
        let stored: i64 = sequencer
            .conn
            .query_row("SELECT COUNT(*) FROM entries", [], |row| row.get(0))
            .unwrap();
        assert_eq!(stored, 10);

        // Space again: the refused ops are taken with the next seqs, no gap and no repeat.
        sequencer
            .conn
            .pragma_update(None, "max_page_count", 1_000_000_000)
            .unwrap();
        publish(&mut sequencer, &ops[10..], 200);
        for (request_id, seq) in (200..230).zip(10..) {
            assert!(matches!(answer(request_id), Body::Receipt { seq: s, .. } if s == seq));
        }
        assert_eq!(
            full_replay(&sequencer.conn).state_hash(),
            sequencer.topics["t"].replica.state_hash()
        );
        drop(sequencer);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn replicas_restart_from_their_snapshot_plus_the_tail_as_from_a_full_replay() {
        let dir = std::env::temp_dir().join(format!("ants-seq-snapshot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(store::DB_FILE);
        let (reply, mut answers) = reply_channel(1024);
        let alice = Identity::from_seed(&[7; 32]).unwrap();
        let mut sequencer = Sequencer {
            snapshot_every: 10,
            ..sequencer(&path)
        };
        let ops: Vec<SignedOp> = (0..27).map(|c| post(&alice, c)).collect();
        for chunk in ops.chunks(4) {
            let batch = chunk
                .iter()
                .map(|op| PublishRequest {
                    op: op.clone(),
                    request_id: 1,
                    reply: reply.clone(),
                    received_at: Instant::now(),
                })
                .collect();
            sequencer.commit_batch(batch);
        }
        for _ in 0..27 {
            let frame = crate::relay::durable::next_frame(&mut answers);
            assert!(matches!(frame.body, Body::Receipt { .. }), "{frame:?}");
        }
        let live = sequencer.topics["t"].replica.state_hash();
        // Dropped without stopping: no shutdown snapshot, as after a crash.
        drop(sequencer);

        let conn = store::open_writer(&path).unwrap();
        let topic_id: i64 = conn
            .query_row("SELECT id FROM topics WHERE name = 't'", [], |row| {
                row.get(0)
            })
            .unwrap();
        let (snapshot_seq, _) = store::replica_snapshot(&conn, topic_id).unwrap().unwrap();
        assert_eq!(
            snapshot_seq, 24,
            "batches end at 4, 8, …: snapshots at 12 and 24"
        );
        let rules = ReplicaRules::default();
        let topics = load_topics(&conn, &rules).unwrap();
        assert_eq!(topics["t"].snapshot_seq, 24);
        assert_eq!(
            topics["t"].replica.next_seq(),
            27,
            "snapshot plus a tail of 3"
        );
        assert_eq!(topics["t"].replica.state_hash(), live);
        assert_eq!(full_replay(&conn).state_hash(), live);

        // A damaged or foreign snapshot is ignored: every entry is replayed.
        conn.execute("UPDATE replica_snapshots SET state = x'0102'", [])
            .unwrap();
        let topics = load_topics(&conn, &rules).unwrap();
        assert_eq!(topics["t"].snapshot_seq, 0);
        assert_eq!(topics["t"].replica.state_hash(), live);
        let other = Replica::new("u", ReplicaConfig::default()).unwrap();
        store::put_replica_snapshot(&conn, topic_id, 0, &other.snapshot()).unwrap();
        let topics = load_topics(&conn, &rules).unwrap();
        assert_eq!(topics["t"].snapshot_seq, 0);
        assert_eq!(topics["t"].replica.state_hash(), live);
        // Other rules for the topic: the snapshot (made under the old ones) is not used.
        let tables = [crate::relay::config::TopicReplicaConfig {
            prefix: "t".into(),
            feed_capacity: Some(5),
            ..Default::default()
        }];
        let rules = ReplicaRules::new(&tables).unwrap();
        let topics = load_topics(&conn, &rules).unwrap();
        assert_eq!(topics["t"].replica.config().feed_capacity, 5);
        assert_eq!(topics["t"].replica.next_seq(), 27);
        drop(conn);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
