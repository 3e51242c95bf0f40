//! A room bridged to a signed document topic (`/yjs/<room>?topic=<topic>`): plain Yjs clients
//! and ants-coord clients see one document.
//!
//! - Topic → room: every `doc.update` entry of the topic (any author: the relay knows no writer
//!   set; signed readers apply their own) is applied to the room's document and forwarded to the
//!   room's connections. The room starts from the topic's entries from seq 0 (or from its last
//!   checkpoint of this log, [`Bridge::resume`]: the document folded up to a seq, written to the
//!   room store every [`super::room::CHECKPOINT_EVERY`] entries and when the room goes idle),
//!   then follows the topic live through the hub.
//! - Room → topic: an update from a plain client is published to the topic as a `doc.update` op
//!   **signed by the relay's key** (the relay cannot sign for a plain client). It is forwarded to
//!   the room only once its receipt says it is sequenced and stored; the topic is the room's
//!   durable record, so a bridged room has no rows in the room store.
//! - Several frontends of a cluster sign the room's ops with the one relay key, so two of them
//!   may pick the same counter, or one a counter below what the other just sequenced. Such an op
//!   is refused (`COUNTER_REUSED`, `COUNTER_STALE`) and nothing of it is stored: the bridge
//!   signs the update again with a counter above every relay counter it has seen in the topic
//!   and the clock, and publishes it again ([`MAX_COUNTER_RACES`] times at most).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};

use super::room::guarded;
use super::store::BridgedCheckpoint;
use crate::doc::{decode_update_body, sign_update, Doc, MAX_SIGNED_UPDATE_LEN, UPDATE_KIND};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::log::Frontier;
use crate::op::OpId;
use crate::relay::reply::{ReplyTo, SendBudget};
use crate::relay::sequencer::PublishRequest;
use crate::relay::{now_ms, Shared};
use crate::wire::{Body, Frame};

/// Entries read per step when following the topic.
const READ_BATCH: usize = 256;
/// Most times one update is signed again after losing a counter race to another frontend.
pub(crate) const MAX_COUNTER_RACES: u32 = 40;
/// The pause before the first retry of a lost counter race; it doubles up to
/// [`COUNTER_RACE_PAUSE_MAX`], so that the other frontend's entry can reach this one's hub.
const COUNTER_RACE_PAUSE: Duration = Duration::from_millis(2);
const COUNTER_RACE_PAUSE_MAX: Duration = Duration::from_millis(500);

/// The topic side of a bridged room.
pub(crate) struct Bridge {
    shared: Arc<Shared>,
    topic: String,
    /// Woken by the hub when the topic has new entries.
    pub(crate) wake: Arc<Notify>,
    /// The next seq of the topic to apply.
    cursor: u64,
    /// Ops this room published and has not yet seen come back.
    own: HashSet<OpId>,
    /// The highest relay counter this bridge used or saw in the topic.
    counter: u64,
    /// The relay's agent id (the author of the ops this bridge publishes).
    relay: AgentId,
    /// The seq of the checkpoint the room resumed from (0: it replayed from seq 0).
    resumed_from: u64,
    reply: ReplyTo,
    answers: mpsc::Receiver<Vec<u8>>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("topic", &self.topic)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

/// Largest update a plain client may send to a bridged room (it must fit one signed op).
pub(crate) const MAX_BRIDGED_UPDATE_LEN: usize = MAX_SIGNED_UPDATE_LEN;

impl Bridge {
    /// Follows `topic` from seq 0 (call [`Bridge::catch_up`] to apply what is stored).
    pub(crate) fn new(shared: Arc<Shared>, topic: String) -> Self {
        let wake = Arc::new(Notify::new());
        let _ = shared.hub.watch(&topic, &wake);
        let relay = shared.identity.agent_id();
        let (frames, answers) = mpsc::channel(1024);
        let reply = ReplyTo::new(frames, Arc::new(Notify::new()), SendBudget::unbounded());
        Bridge {
            shared,
            topic,
            wake,
            cursor: 0,
            own: HashSet::new(),
            counter: 0,
            relay,
            resumed_from: 0,
            reply,
            answers,
        }
    }

    /// Applies every entry of the topic from the cursor to the head to `doc`; returns the
    /// updates that came from others (to forward to the room).
    pub(crate) async fn catch_up(&mut self, doc: &Doc) -> Result<Vec<Vec<u8>>> {
        let mut forward = Vec::new();
        loop {
            let entries = self.read().await?;
            if entries.is_empty() {
                return Ok(forward);
            }
            for (seq, bytes) in entries {
                self.cursor = seq + 1;
                let Ok(entry) = Entry::decode_unverified(&bytes) else {
                    continue;
                };
                let op = entry.op();
                if *op.author() == self.relay {
                    self.counter = self.counter.max(op.counter());
                }
                if op.kind() != UPDATE_KIND {
                    continue;
                }
                if self.own.remove(&op.id()) {
                    continue; // already applied and forwarded when it was published
                }
                // Any author may publish any body under this kind: decoding is a yrs call too.
                let Some(Ok(update)) = guarded(|| decode_update_body(op.body())) else {
                    continue;
                };
                match guarded(|| doc.apply_update(update)) {
                    Some(Ok(())) => forward.push(update.to_vec()),
                    Some(Err(error)) => {
                        tracing::debug!(topic = %self.topic, seq, %error, "update entry skipped");
                    }
                    None => tracing::warn!(topic = %self.topic, seq, "update entry panicked yrs"),
                }
            }
        }
    }

    /// The room's document from `checkpoint`, when the checkpoint is of this very log: its seq
    /// is durable here and the topic's Merkle root there is the checkpoint's. Then
    /// [`Bridge::catch_up`] goes on from its seq. `None`: not used (a storage error counts as
    /// not used; the room then replays from seq 0 into a new document).
    pub(crate) async fn resume(&mut self, checkpoint: &BridgedCheckpoint) -> Option<Doc> {
        if checkpoint.next_seq == 0 || checkpoint.next_seq > self.shared.hub.head(&self.topic) {
            return None;
        }
        match self.root_at(checkpoint.next_seq).await {
            Ok(Some(root)) if root == checkpoint.root => {}
            _ => return None,
        }
        let doc = Doc::new();
        if !matches!(
            guarded(|| doc.apply_update(&checkpoint.snapshot)),
            Some(Ok(()))
        ) {
            return None;
        }
        self.cursor = checkpoint.next_seq;
        self.resumed_from = checkpoint.next_seq;
        self.counter = self.counter.max(checkpoint.counter);
        Some(doc)
    }

    /// The seq of the checkpoint the room resumed from (0: none).
    pub(crate) fn resumed_from(&self) -> u64 {
        self.resumed_from
    }

    /// The topic the room is bridged to.
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// `doc` as a checkpoint at the cursor, if it is exactly the fold of the entries before it:
    /// none of this room's own updates is still on its way to the topic.
    pub(crate) async fn checkpoint(&self, doc: &Doc) -> Option<BridgedCheckpoint> {
        if !self.own.is_empty() || self.cursor == 0 {
            return None;
        }
        let snapshot = match guarded(|| doc.encode_update(None)) {
            Some(Ok(snapshot)) => snapshot,
            _ => return None,
        };
        let root = self.root_at(self.cursor).await.ok()??;
        Some(BridgedCheckpoint {
            next_seq: self.cursor,
            root,
            counter: self.counter,
            snapshot,
        })
    }

    /// Where the topic's cursor is.
    pub(crate) fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The topic's Merkle root over its first `size` entries, from storage (`None`: not stored).
    async fn root_at(&self, size: u64) -> Result<Option<[u8; 32]>> {
        let topic = self.topic.clone();
        self.shared
            .reader
            .read(move |pool| {
                pool.with_hashes(&topic, |hashes| {
                    Ok(Frontier::from_store(&hashes, size)?.root())
                })
            })
            .await
    }

    async fn read(&self) -> Result<Vec<(u64, Arc<[u8]>)>> {
        read_topic(&self.shared, &self.topic, self.cursor).await
    }

    /// Publishes `updates` to the topic, signed by the relay, and waits until every one is
    /// sequenced and stored (its receipt). An update that lost a counter race to another
    /// frontend is signed again with a higher counter and published again.
    pub(crate) async fn publish(&mut self, updates: &[Vec<u8>]) -> Result<()> {
        let mut waiting: Vec<usize> = (0..updates.len()).collect();
        let mut pause = COUNTER_RACE_PAUSE;
        for race in 0..=MAX_COUNTER_RACES {
            if self
                .shared
                .stopping
                .load(std::sync::atomic::Ordering::Acquire)
            {
                return Err(Error::Unavailable("the relay is shutting down".into()));
            }
            if race > 0 {
                // Let the winner's entry reach this frontend, then count above it.
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(COUNTER_RACE_PAUSE_MAX);
                self.counter = self.counter.max(self.last_relay_counter().await?);
            }
            waiting = self.publish_once(updates, &waiting).await?;
            if waiting.is_empty() {
                return Ok(());
            }
            tracing::debug!(topic = %self.topic, lost = waiting.len(), race, "counter race lost");
        }
        Err(Error::Unavailable(format!(
            "publishing to the topic failed: {} updates lost {MAX_COUNTER_RACES} counter races",
            waiting.len()
        )))
    }

    /// Signs and publishes `updates[i]` for each `i` of `which`, then waits for every answer;
    /// returns the indexes refused for their counter (nothing of them was stored).
    async fn publish_once(&mut self, updates: &[Vec<u8>], which: &[usize]) -> Result<Vec<usize>> {
        let mut sent = Vec::with_capacity(which.len());
        for &i in which {
            // Counters must increase across restarts too: wall-clock microseconds, or the next.
            self.counter = (self.counter + 1).max(now_ms().saturating_mul(1000));
            let identity = self.shared.identity.clone();
            let (topic, counter) = (self.topic.clone(), self.counter);
            let op = guarded(|| sign_update(&identity, &topic, counter, now_ms(), &updates[i]))
                .unwrap_or_else(|| Err(Error::BadUpdate("signing panicked".into())))?;
            let id = op.id();
            self.own.insert(id);
            sent.push(id);
            self.shared.sequencer.submit(PublishRequest {
                op,
                request_id: i as u32,
                reply: self.reply.clone(),
                received_at: Instant::now(),
            })?;
        }
        let mut lost = Vec::new();
        let mut failure = None;
        for _ in which {
            let bytes = self
                .answers
                .recv()
                .await
                .ok_or_else(|| Error::Unavailable("the sequencer went away".into()))?;
            let frame = Frame::decode(&bytes)?;
            let i = frame.request_id as usize;
            match frame.body {
                Body::Receipt { .. } => {}
                Body::Error { code, .. }
                    if matches!(code.as_str(), "COUNTER_REUSED" | "COUNTER_STALE") =>
                {
                    if let Some(at) = which.iter().position(|&w| w == i) {
                        self.own.remove(&sent[at]);
                        lost.push(i);
                    }
                }
                // An owned topic counts only the writes its log authorizes (PROTOCOL.md 8.7.1,
                // 10.8): the relay's key needs a presented `write` capability, and retrying
                // cannot give it one.
                Body::Error { code, message }
                    if matches!(
                        code.as_str(),
                        "NOT_AUTHORIZED" | "CAPABILITY_EXPIRED" | "CAPABILITY_REVOKED"
                    ) =>
                {
                    failure.get_or_insert_with(|| {
                        Error::NotAuthorized(format!(
                            "the relay's key may not write the bridged topic: {code}: {message}"
                        ))
                    });
                }
                Body::Error { code, message } => {
                    failure.get_or_insert_with(|| {
                        Error::Unavailable(format!(
                            "publishing to the topic failed: {code}: {message}"
                        ))
                    });
                }
                other => {
                    failure.get_or_insert_with(|| {
                        Error::Unavailable(format!(
                            "unexpected answer from the sequencer: {other:?}"
                        ))
                    });
                }
            }
        }
        match failure {
            Some(error) => Err(error),
            None => {
                lost.sort_unstable();
                Ok(lost)
            }
        }
    }

    /// The highest counter of the relay's ops in the topic past the cursor (not yet applied),
    /// as far as this frontend holds them.
    async fn last_relay_counter(&self) -> Result<u64> {
        let mut highest = 0;
        let mut at = self.cursor;
        loop {
            let entries = read_topic(&self.shared, &self.topic, at).await?;
            let Some((last, _)) = entries.last() else {
                return Ok(highest);
            };
            at = last + 1;
            for (_, bytes) in &entries {
                if let Ok(entry) = Entry::decode_unverified(bytes) {
                    let op = entry.op();
                    if *op.author() == self.relay {
                        highest = highest.max(op.counter());
                    }
                }
            }
        }
    }
}

/// Up to [`READ_BATCH`] entries of `topic` from seq `from`, as far as they are durable.
async fn read_topic(shared: &Arc<Shared>, topic: &str, from: u64) -> Result<Vec<(u64, Arc<[u8]>)>> {
    match shared.hub.read(topic, from, READ_BATCH) {
        Ok((entries, _)) => Ok(entries.into_iter().map(|e| (e.seq, e.bytes)).collect()),
        Err(head) => {
            // Only below the hub's head: storage may hold committed entries not yet durable,
            // which nothing may show before they are.
            // In turn with replay and proofs: the pool bounds storage reads.
            let topic = topic.to_owned();
            let limit = head.saturating_sub(from).min(READ_BATCH as u64) as usize;
            let rows = shared
                .reader
                .read(move |pool| pool.entries(&topic, from, limit))
                .await?;
            Ok(rows
                .into_iter()
                .map(|(seq, bytes)| (seq, Arc::from(bytes)))
                .collect())
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.shared.hub.unwatch(&self.topic, &self.wake);
    }
}
