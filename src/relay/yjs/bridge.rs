//! A room bridged to a signed document topic (`/yjs/<room>?topic=<topic>`): plain Yjs clients
//! and ants-coord clients see one document.
//!
//! - Topic → room: every `doc.update` entry of the topic (any author: the relay knows no writer
//!   set; signed readers apply their own) is applied to the room's document and forwarded to the
//!   room's connections. The room starts from the topic's entries from seq 0, then follows the
//!   topic live through the hub.
//! - Room → topic: an update from a plain client is published to the topic as a `doc.update` op
//!   **signed by the relay's key** (the relay cannot sign for a plain client). It is forwarded to
//!   the room only once its receipt says it is sequenced and stored; the topic is the room's
//!   durable record, so a bridged room has no rows in the room store.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, Notify};

use super::room::guarded;
use crate::doc::{decode_update_body, sign_update, Doc, MAX_SIGNED_UPDATE_LEN, UPDATE_KIND};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::op::OpId;
use crate::relay::reply::ReplyTo;
use crate::relay::sequencer::PublishRequest;
use crate::relay::{now_ms, Shared};
use crate::wire::{Body, Frame};

/// Entries read per step when following the topic.
const READ_BATCH: usize = 256;

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
    /// The relay's last counter in this topic.
    counter: u64,
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
        let (frames, answers) = mpsc::channel(1024);
        let reply = ReplyTo {
            frames,
            overflowed: Arc::new(AtomicBool::new(false)),
            wake: Arc::new(Notify::new()),
        };
        Bridge {
            shared,
            topic,
            wake,
            cursor: 0,
            own: HashSet::new(),
            counter: 0,
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

    async fn read(&self) -> Result<Vec<(u64, Arc<[u8]>)>> {
        match self.shared.hub.read(&self.topic, self.cursor, READ_BATCH) {
            Ok((entries, _)) => Ok(entries.into_iter().map(|e| (e.seq, e.bytes)).collect()),
            Err(head) => {
                // Only below the hub's head: storage may hold committed entries not yet
                // durable, which nothing may show before they are.
                let pool = self.shared.reader.clone();
                let topic = self.topic.clone();
                let cursor = self.cursor;
                let limit = head.saturating_sub(cursor).min(READ_BATCH as u64) as usize;
                let rows = tokio::task::spawn_blocking(move || pool.entries(&topic, cursor, limit))
                    .await
                    .map_err(|e| Error::Unavailable(format!("topic read task: {e}")))??;
                Ok(rows
                    .into_iter()
                    .map(|(seq, bytes)| (seq, Arc::from(bytes)))
                    .collect())
            }
        }
    }

    /// Publishes `updates` to the topic, signed by the relay, and waits until every one is
    /// sequenced and stored (its receipt).
    pub(crate) async fn publish(&mut self, updates: &[Vec<u8>]) -> Result<()> {
        if self
            .shared
            .stopping
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(Error::Unavailable("the relay is shutting down".into()));
        }
        for (i, update) in updates.iter().enumerate() {
            // Counters must increase across restarts too: wall-clock microseconds, or the next.
            self.counter = (self.counter + 1).max(now_ms().saturating_mul(1000));
            let identity = self.shared.identity.clone();
            let (topic, counter) = (self.topic.clone(), self.counter);
            let op = guarded(|| sign_update(&identity, &topic, counter, now_ms(), update))
                .unwrap_or_else(|| Err(Error::BadUpdate("signing panicked".into())))?;
            self.own.insert(op.id());
            self.shared.sequencer.submit(PublishRequest {
                op,
                request_id: i as u32,
                reply: self.reply.clone(),
                received_at: Instant::now(),
            })?;
        }
        for _ in updates {
            let bytes = self
                .answers
                .recv()
                .await
                .ok_or_else(|| Error::Unavailable("the sequencer went away".into()))?;
            match Frame::decode(&bytes)?.body {
                Body::Receipt { .. } => {}
                Body::Error { code, message } => {
                    return Err(Error::Unavailable(format!(
                        "publishing to the topic failed: {code}: {message}"
                    )))
                }
                other => {
                    return Err(Error::Unavailable(format!(
                        "unexpected answer from the sequencer: {other:?}"
                    )))
                }
            }
        }
        Ok(())
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.shared.hub.unwatch(&self.topic, &self.wake);
    }
}
