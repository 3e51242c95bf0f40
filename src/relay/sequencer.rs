//! The sequencer: one thread that numbers verified ops per topic and commits them in groups
//! to the store.
//!
//! Group commit: the thread blocks for the first pending publish and takes every publish queued
//! behind it (up to the batch size); a publish that found the thread idle, with nothing queued
//! behind it, waits up to the configured window for company. The sequencing decisions for the
//! whole batch are the core's ([`crate::log::sequencing`]); the thread signs the batch's
//! receipts, appends the batch to the store ([`super::store::Store::append`]: written, not yet
//! durable) and hands the batch's entries, answers and events to the durability thread
//! ([`super::durable`]), which announces them only once the store says the batch is durable.
//! Meanwhile the sequencer goes on with the next batch. A receipt therefore never precedes
//! durability, and a crash at any point loses only ops nobody was told were accepted.
//!
//! In front of it, the verifier thread ([`super::verifier`]) checks op signatures in batches.
//! What the sequencer holds of each topic (head, replica, snapshots) is `relay::topics`'s.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::config::ReplicaRules;
use super::durable::{Announcement, Answer, Audience, Durability};
use super::hub::CachedEntry;
use super::metrics::{Metrics, Phase};
use super::reply::ReplyTo;
use super::store::{Acks, Append, AppendError, Store, BATCH_ENTRY_OVERHEAD};
use super::topics::{load_topic, load_topics, TopicState};
use crate::error::{Error, Result};
use crate::identity::{AgentId, Identity};
use crate::log::sequencing::{Batch, Decision, RetryReceipt};
use crate::log::{Hash, SignedReceipt};
use crate::op::SignedOp;
use crate::replica::Event;
use crate::wire::{Body, Frame};

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
pub(crate) enum Command {
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
    /// After this long without a publish the store gives back memory it only keeps to be
    /// fast ([`Store::release_memory`]); `None`: never.
    pub release_after: Option<Duration>,
}

/// The sequencer thread's state.
struct Sequencer<S: Store> {
    store: S,
    topics: HashMap<String, TopicState>,
    /// Waits until each appended batch is durable, then announces it (hub, answers, events).
    durability: Durability<S::Acks>,
    metrics: Arc<Metrics>,
    identity: Arc<Identity>,
    snapshot_every: u64,
    rules: ReplicaRules,
}

/// Recovers every topic from `store`, restores the hub and starts the verifier and sequencer
/// threads (and the store's durability thread). They end after every [`SequencerQueue`] clone
/// is dropped and the queue is drained.
///
/// Errors: `UNAVAILABLE` when the store cannot be recovered or a thread cannot start.
pub fn start<S: Store>(
    mut store: S,
    identity: Arc<Identity>,
    audience: Audience,
    tuning: GroupCommit,
    rules: ReplicaRules,
) -> Result<(SequencerQueue, std::thread::JoinHandle<()>)> {
    let topics = load_topics(&mut store, &rules)?;
    for (name, topic) in &topics {
        // A follower that feeds the hub has restored it already, maybe further.
        if audience.fan_out == super::durable::FanOut::Announce {
            audience
                .hub
                .restore(name, topic.head.size(), topic.head.frontier.root());
        }
        audience.metrics.entries_restored(topic.head.size());
        // The revocations and the read rule in the log, as the replica rebuilt them: live
        // connections check them before every delivery (PROTOCOL.md 10.7, 10.10).
        if let Some(authority) = topic.replica.authority() {
            audience.hub.set_revoked(name, authority.revoked());
            audience.hub.set_read_rule(name, authority.read_rule());
        }
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(tuning.queue.max(1));
    let (verified_tx, verified_rx) = std::sync::mpsc::sync_channel(tuning.queue.max(1));
    let verifier_metrics = audience.metrics.clone();
    let metrics = audience.metrics.clone();
    let durability = Durability::start(store.acks()?, audience)?;
    let failed = durability.failure_flag();
    let panicked = failed.clone();
    let mut sequencer = Sequencer {
        store,
        topics,
        durability,
        metrics,
        identity,
        snapshot_every: tuning.snapshot_every,
        rules,
    };
    let handle = std::thread::Builder::new()
        .name("ants-sequencer".into())
        .spawn(move || raise_on_panic(&panicked, move || sequencer.run(verified_rx, tuning)))
        .map_err(|e| Error::Unavailable(format!("cannot start the sequencer thread: {e}")))?;
    std::thread::Builder::new()
        .name("ants-verifier".into())
        .spawn(move || super::verifier::run_verifier(&rx, &verified_tx, &verifier_metrics))
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The entries of a batch for the hub: per topic, in sequence order, with the root after them.
type TopicRuns = Vec<(String, Vec<CachedEntry>, Hash)>;

impl<S: Store> Sequencer<S> {
    fn run(&mut self, rx: Receiver<Command>, tuning: GroupCommit) {
        let max_ops = tuning.max_ops.max(1);
        let max_bytes = self.store.max_batch_bytes().unwrap_or(usize::MAX);
        let cost = |request: &PublishRequest| request.op.as_bytes().len() + BATCH_ENTRY_OVERHEAD;
        let mut batch = Vec::with_capacity(max_ops);
        // A publish that did not fit the last batch's bytes: the first of the next.
        let mut carried: Option<PublishRequest> = None;
        let mut stopping = false;
        // Whether the store was told to release memory since the last batch.
        let mut released = false;
        while !stopping {
            let mut query = None;
            let first = match (carried.take(), tuning.release_after) {
                (Some(request), _) => Ok(Command::Publish(request)),
                (None, Some(idle)) if !released => match rx.recv_timeout(idle) {
                    Ok(command) => Ok(command),
                    Err(RecvTimeoutError::Timeout) => {
                        self.store.release_memory();
                        released = true;
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                (None, _) => rx.recv().map_err(|_| ()),
            };
            match first {
                Ok(Command::Publish(first)) => batch.push(first),
                Ok(Command::StateHash { topic, answer }) => {
                    let _ = answer.send(self.state_hash(&topic));
                    continue;
                }
                Ok(Command::Stop) | Err(_) => break,
            }
            let mut bytes = batch.iter().map(cost).sum::<usize>();
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
                    Ok(Command::Publish(request)) if bytes + cost(&request) > max_bytes => {
                        carried = Some(request);
                        break;
                    }
                    Ok(Command::Publish(request)) => {
                        bytes += cost(&request);
                        batch.push(request);
                    }
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
            released = false;
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
        let snapshots: Vec<_> = self
            .topics
            .iter()
            .filter_map(|(name, topic)| topic.snapshot_due(name, 1))
            .collect();
        let append = Append {
            entries: &[],
            snapshots: &snapshots,
        };
        match self.store.append(append) {
            Ok(ticket) => {
                tracing::info!(topics = snapshots.len(), "replica snapshots stored");
                // Nothing to announce, but the snapshots are made durable like a batch.
                self.durability
                    .hand_over(Announcement::default(), Some(ticket));
            }
            Err(error) => tracing::error!(?error, "could not store replica snapshots"),
        }
    }

    fn commit_batch(&mut self, batch: Vec<PublishRequest>) {
        let started = Instant::now();
        if self.durability.failed() {
            // Storage is broken: nothing written from now on could be promised durable.
            self.refuse(batch, &super::durable::unavailable());
            return;
        }
        if self.durability.take_reload() {
            // A batch was not stored after all: the heads are ahead of the store.
            self.reload();
        }
        let mut log = Batch::new();
        let mut decided = self.decide(&batch, &mut log);
        self.metrics.phase(Phase::Sequence, started.elapsed());
        let mut decided_again = false;
        let (decisions, signed, ticket) = loop {
            let mut conflict = false;
            let result = decided.and_then(|decisions| {
                let signed = self.sign(&log)?;
                let ticket = self.persist(&log).map_err(|error| {
                    conflict = matches!(error, AppendError::Conflict { .. });
                    Error::from(error)
                })?;
                Ok((decisions, signed, ticket))
            });
            match result {
                Ok(done) => break done,
                Err(error) => {
                    // In-memory state advanced for ops that are not stored: reload it. A
                    // conflict touches only the batch's topics (the store recorded the ones it
                    // appended; another frontend appended to the others): only they are read
                    // again, not every topic this frontend holds.
                    if conflict {
                        self.metrics.append_conflict();
                        self.reload_topics(&batch);
                    } else {
                        self.reload();
                    }
                    if conflict && !decided_again {
                        // Another frontend appended to a topic of this batch (a replicated
                        // store): nothing of that topic's part is stored, so decide the batch
                        // once more on the reloaded heads instead of refusing it (its ops the
                        // store did append, in other topics, and any op the other frontend
                        // sequenced, are then answered as retries, with their entries' receipts).
                        tracing::debug!(%error, ops = batch.len(), "batch decided again");
                        decided_again = true;
                        log = Batch::new();
                        decided = self.decide(&batch, &mut log);
                        continue;
                    }
                    tracing::error!(%error, ops = batch.len(), "batch not committed");
                    self.refuse(batch, &error);
                    return;
                }
            }
        };
        let answer_started = Instant::now();
        let (entries, pushes) = self.fan_out(log);
        let answers = batch
            .into_iter()
            .zip(decisions)
            .map(|(request, decision)| {
                let op_id = request.op.id();
                let retry = matches!(decision, Ok(Decision::Retry { .. }));
                let outcome = decision.and_then(|decision| {
                    let (seq, receipt) = match decision {
                        Decision::Append(i) => (None, RetryReceipt::InBatch(i)),
                        Decision::Retry { seq, receipt } => (Some(seq), receipt),
                    };
                    let (seq, bytes) = match receipt {
                        RetryReceipt::InBatch(i) => match signed.get(i) {
                            Some((seq, bytes)) => (*seq, bytes.clone()),
                            None => return Err(Error::Unavailable("receipt lost".into())),
                        },
                        RetryReceipt::Signed(bytes) => (seq.unwrap_or_default(), bytes),
                        RetryReceipt::Unsigned(receipt) => (
                            receipt.seq,
                            SignedReceipt::sign(&self.identity, receipt)?
                                .as_bytes()
                                .to_vec(),
                        ),
                    };
                    Ok((seq, op_id, bytes))
                });
                Answer {
                    topic: request.op.topic().to_owned(),
                    reply: request.reply,
                    request_id: request.request_id,
                    outcome,
                    received_at: request.received_at,
                    retry,
                }
            })
            .collect();
        self.durability.hand_over(
            Announcement {
                entries,
                answers,
                pushes,
                started: Some(started),
            },
            Some(ticket),
        );
        self.metrics.phase(Phase::Answer, answer_started.elapsed());
    }

    /// The core's decision for each publish of `batch`, in order. A storage failure (from a
    /// lookup) fails the whole batch; any other error refuses its op only.
    fn decide(
        &mut self,
        batch: &[PublishRequest],
        log: &mut Batch,
    ) -> Result<Vec<Result<Decision>>> {
        let mut decisions = Vec::with_capacity(batch.len());
        for request in batch {
            let name = request.op.topic();
            if !self.topics.contains_key(name) {
                match TopicState::new(name, &self.rules) {
                    Ok(topic) => {
                        self.topics.insert(name.to_owned(), topic);
                    }
                    Err(error) => {
                        decisions.push(Err(error));
                        continue;
                    }
                }
            }
            let Some(topic) = self.topics.get_mut(name) else {
                return Err(Error::Unavailable("topic state vanished".into()));
            };
            let decision = log.decide(
                &mut topic.head,
                &mut topic.replica,
                &request.op,
                now_ms(),
                &self.store,
            );
            if let Err(Error::Unavailable(reason)) = &decision {
                return Err(Error::Unavailable(reason.clone()));
            }
            decisions.push(decision);
        }
        Ok(decisions)
    }

    /// Signs the receipts of the batch's new entries with one signature (receipt version 2):
    /// cheaper here than handing the batch to another thread and waiting for it. Signed before
    /// the append, so that a failure leaves nothing stored; none is sent before the batch is
    /// durable. Returns each entry's `(seq, signed receipt)`.
    fn sign(&self, log: &Batch) -> Result<Vec<(u64, Vec<u8>)>> {
        let signing = Instant::now();
        let receipts = log.entries().iter().map(|e| e.receipt.clone()).collect();
        let signed = SignedReceipt::sign_batch(&self.identity, receipts)?
            .into_iter()
            .map(|receipt| (receipt.receipt().seq, receipt.as_bytes().to_vec()))
            .collect();
        self.metrics.phase(Phase::Sign, signing.elapsed());
        Ok(signed)
    }

    /// Appends the batch's entries to the store, with the snapshots of the replicas it moved
    /// far enough (in the same append: a stored snapshot always matches the stored entries).
    fn persist(
        &mut self,
        log: &Batch,
    ) -> std::result::Result<<S::Acks as Acks>::Ticket, AppendError> {
        let mut snapshots = Vec::new();
        if self.snapshot_every > 0 {
            let mut touched: Vec<&str> = log.entries().iter().map(|e| e.topic.as_str()).collect();
            touched.sort_unstable();
            touched.dedup();
            for name in touched {
                if let Some(topic) = self.topics.get(name) {
                    snapshots.extend(topic.snapshot_due(name, self.snapshot_every));
                }
            }
        }
        let ticket = self.store.append(Append {
            entries: log.entries(),
            snapshots: &snapshots,
        })?;
        for snapshot in snapshots {
            if let Some(topic) = self.topics.get_mut(&snapshot.topic) {
                topic.snapshot_seq = snapshot.next_seq;
            }
        }
        Ok(ticket)
    }

    /// The batch's entries per topic for the hub, and the replica events to push to agents (a
    /// compensation to the claimant who lost).
    fn fan_out(&self, log: Batch) -> (TopicRuns, Vec<(AgentId, Frame)>) {
        let committed_at = Instant::now();
        let mut runs: TopicRuns = Vec::new();
        let mut pushes = Vec::new();
        for sequenced in log.into_entries() {
            let seq = sequenced.seq();
            match &sequenced.events {
                Ok(events) => {
                    for event in events {
                        if let Event::Compensation { loser, .. } = event {
                            let bytes = serde_json::to_vec(event).unwrap_or_default();
                            let body = Body::Event {
                                topic: sequenced.topic.clone(),
                                seq,
                                event: bytes,
                            };
                            pushes.push((*loser, Frame::new(0, body)));
                        }
                    }
                }
                Err(error) => tracing::error!(%error, seq, "replica refused a sequenced entry"),
            }
            let entry = CachedEntry {
                seq,
                bytes: sequenced.entry,
                committed_at: Some(committed_at),
            };
            match runs.iter_mut().find(|(t, _, _)| *t == sequenced.topic) {
                Some((_, run, _)) => run.push(entry),
                None => runs.push((sequenced.topic, vec![entry], crate::log::empty_root())),
            }
        }
        for (topic, _, root) in &mut runs {
            if let Some(state) = self.topics.get(topic.as_str()) {
                *root = state.head.frontier.root();
            }
        }
        (runs, pushes)
    }

    /// Refuses every publish of `batch` with `error`, through the durability thread so that
    /// each connection still gets its answers in order.
    fn refuse(&self, batch: Vec<PublishRequest>, error: &Error) {
        let answers = batch
            .into_iter()
            .map(|request| Answer {
                topic: request.op.topic().to_owned(),
                reply: request.reply,
                request_id: request.request_id,
                outcome: Err(error.clone()),
                received_at: request.received_at,
                retry: false,
            })
            .collect();
        let announcement = Announcement {
            answers,
            ..Announcement::default()
        };
        self.durability.hand_over(announcement, None);
    }

    fn reload(&mut self) {
        match load_topics(&mut self.store, &self.rules) {
            Ok(topics) => self.topics = topics,
            Err(error) => tracing::error!(%error, "could not reload state after a failed commit"),
        }
    }

    /// Reloads the topics `batch` publishes to (all of them, when one fails to load).
    fn reload_topics(&mut self, batch: &[PublishRequest]) {
        let names: HashSet<&str> = batch.iter().map(|r| r.op.topic()).collect();
        for name in names {
            match load_topic(&mut self.store, name, &self.rules) {
                Ok(Some(state)) => {
                    self.topics.insert(name.to_owned(), state);
                }
                Ok(None) => {
                    self.topics.remove(name);
                }
                Err(error) => {
                    tracing::warn!(%error, topic = name, "topic reload failed; reloading all");
                    self.reload();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Entry;
    use crate::op::{OpDraft, OpId};
    use crate::relay::hub::Hub;
    use crate::relay::reply::{next_frame, reply_channel};
    use crate::relay::store::{sql, SqliteStore, StorageHealth, DB_FILE};
    use crate::replica::{Replica, ReplicaConfig};

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

    fn full_replay(conn: &rusqlite::Connection) -> Replica {
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

    fn open(path: &std::path::Path) -> SqliteStore {
        let relay = Identity::from_seed(&[1; 32]).unwrap().agent_id();
        let health = StorageHealth::new(path.parent().unwrap().to_owned(), 0);
        SqliteStore::open(path, &relay, Arc::default(), Arc::new(health)).unwrap()
    }

    /// A sequencer over the store at `path`, its topics recovered.
    fn sequencer(path: &std::path::Path) -> Sequencer<SqliteStore> {
        let mut store = open(path);
        let rules = ReplicaRules::default();
        let topics = load_topics(&mut store, &rules).unwrap();
        Sequencer {
            durability: Durability::start(
                store.acks().unwrap(),
                Audience {
                    fan_out: crate::relay::durable::FanOut::Announce,
                    hub: Arc::new(Hub::new(16)),
                    agents: Arc::default(),
                    pushes: None,
                    metrics: Arc::default(),
                },
            )
            .unwrap(),
            store,
            topics,
            metrics: Arc::default(),
            identity: Arc::new(Identity::from_seed(&[1; 32]).unwrap()),
            snapshot_every: 0,
            rules,
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
        let mut first_run = sequencer(&dir.join(DB_FILE));
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
            let frame = next_frame(&mut answers);
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
        let retry = |sequencer: &mut Sequencer<SqliteStore>, request_id: u32, op: &SignedOp| {
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
        let mut restarted = sequencer(&dir.join(DB_FILE));
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
        let mut sequencer = sequencer(&dir.join(DB_FILE));
        let (reply, mut answers) = reply_channel(1024);
        let alice = Identity::from_seed(&[7; 32]).unwrap();
        let ops: Vec<SignedOp> = (0..40)
            .map(|c| SignedOp::sign(&alice, draft(c, vec![], &[c as u8; 3_000])).unwrap())
            .collect();
        let publish = |sequencer: &mut Sequencer<SqliteStore>, ops: &[SignedOp], first_id: u32| {
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
            let frame = next_frame(&mut answers);
            assert_eq!(frame.request_id, request_id);
            frame.body
        };
        publish(&mut sequencer, &ops[..10], 0);
        for request_id in 0..10 {
            assert!(
                matches!(answer(request_id), Body::Receipt { seq, .. } if seq == u64::from(request_id))
            );
        }
        let root = sequencer.topics["t"].head.frontier.root();
        let state = sequencer.topics["t"].replica.state_hash();

        // The disk is full: the database may not grow by a page.
        let pages: i64 = sequencer
            .store
            .conn()
            .query_row("PRAGMA page_count", [], |row| row.get(0))
            .unwrap();
        sequencer
            .store
            .conn()
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
        assert_eq!(topic.head.frontier.size(), 10, "nothing sequenced");
        assert_eq!(topic.head.frontier.root(), root);
        assert_eq!(topic.replica.state_hash(), state);
        let stored: i64 = sequencer
            .store
            .conn()
            .query_row("SELECT COUNT(*) FROM entries", [], |row| row.get(0))
            .unwrap();
        assert_eq!(stored, 10);

        // Space again: the refused ops are taken with the next seqs, no gap and no repeat.
        sequencer
            .store
            .conn()
            .pragma_update(None, "max_page_count", 1_000_000_000)
            .unwrap();
        publish(&mut sequencer, &ops[10..], 200);
        for (request_id, seq) in (200..230).zip(10..) {
            assert!(matches!(answer(request_id), Body::Receipt { seq: s, .. } if s == seq));
        }
        assert_eq!(
            full_replay(sequencer.store.conn()).state_hash(),
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
        let path = dir.join(DB_FILE);
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
            let frame = next_frame(&mut answers);
            assert!(matches!(frame.body, Body::Receipt { .. }), "{frame:?}");
        }
        let live = sequencer.topics["t"].replica.state_hash();
        // Dropped without stopping: no shutdown snapshot, as after a crash.
        drop(sequencer);

        let mut store = open(&path);
        let conn = store.conn();
        let topic_id: i64 = conn
            .query_row("SELECT id FROM topics WHERE name = 't'", [], |row| {
                row.get(0)
            })
            .unwrap();
        let (snapshot_seq, _) = sql::replica_snapshot(conn, topic_id).unwrap().unwrap();
        assert_eq!(
            snapshot_seq, 24,
            "batches end at 4, 8, …: snapshots at 12 and 24"
        );
        let rules = ReplicaRules::default();
        let topics = load_topics(&mut store, &rules).unwrap();
        assert_eq!(topics["t"].snapshot_seq, 24);
        assert_eq!(
            topics["t"].replica.next_seq(),
            27,
            "snapshot plus a tail of 3"
        );
        assert_eq!(topics["t"].replica.state_hash(), live);
        assert_eq!(full_replay(store.conn()).state_hash(), live);

        // A damaged or foreign snapshot is ignored: every entry is replayed.
        store
            .conn()
            .execute("UPDATE replica_snapshots SET state = x'0102'", [])
            .unwrap();
        let topics = load_topics(&mut store, &rules).unwrap();
        assert_eq!(topics["t"].snapshot_seq, 0);
        assert_eq!(topics["t"].replica.state_hash(), live);
        let other = Replica::new("u", ReplicaConfig::default()).unwrap();
        sql::put_replica_snapshot(store.conn(), topic_id, 0, &other.snapshot()).unwrap();
        let topics = load_topics(&mut store, &rules).unwrap();
        assert_eq!(topics["t"].snapshot_seq, 0);
        assert_eq!(topics["t"].replica.state_hash(), live);
        // Other rules for the topic: the snapshot (made under the old ones) is not used.
        let tables = [crate::relay::config::TopicReplicaConfig {
            prefix: "t".into(),
            feed_capacity: Some(5),
            ..Default::default()
        }];
        let rules = ReplicaRules::new(&tables).unwrap();
        let topics = load_topics(&mut store, &rules).unwrap();
        assert_eq!(topics["t"].replica.config().feed_capacity, 5);
        assert_eq!(topics["t"].replica.next_seq(), 27);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(all(test, feature = "nats"))]
#[path = "jetstream/sequencer_tests.rs"]
mod jetstream_tests;
