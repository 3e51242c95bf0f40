//! One open Yjs room: a task that owns the room's document ([`DocSync`] over a [`Doc`]) and its
//! connections, and handles their messages one at a time.
//!
//! The task takes whatever messages are queued (up to [`MAX_BATCH`]), handles them against the
//! document, **appends the updates they carried to the store in one transaction and waits for
//! the commit**, and only then sends the batch's answers and fan-out. So nothing a client
//! receives (a broadcast update, a sync step 2) reflects an update that is not yet durable, and
//! a batch of concurrent edits costs one fsync. Rooms writing at the same time share that
//! transaction (group commit, [`Rooms`]): a room waits for at most the commit in progress and
//! its own, however many other rooms write.
//!
//! A message that does not decode or that yrs refuses closes its connection and changes nothing.
//! Every call into yrs with client bytes runs under [`std::panic::catch_unwind`]; after a panic
//! the document is rebuilt from the store plus the batch's accepted updates, since its state
//! after an interrupted integration is unknown.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::mpsc;

use super::bridge::{Bridge, MAX_BRIDGED_UPDATE_LEN};
use super::store::{RoomStore, RoomWrite};
use super::{close_reason, AwarenessBus, Rooms};
use crate::doc::{
    AwarenessEntry, AwarenessUpdate, Doc, DocSync, ProtocolMessage, MESSAGE_AWARENESS,
};
use crate::error::{Error, Result};
use crate::relay::{now_ms, Shared};

/// Messages handled per batch (one store transaction at most per batch).
pub const MAX_BATCH: usize = 256;
/// Update rows after which a room is compacted into one snapshot row.
pub const COMPACT_EVERY: usize = 500;
/// A bridged room writes a checkpoint of its document every this many entries of its topic
/// (and when it goes idle), so that opening it again replays only what came after.
pub const CHECKPOINT_EVERY: u64 = 1_000;
/// Most awareness client ids one connection may bring into a room by default (`[limits]
/// yjs_awareness_per_connection`): a stock provider has one (its document's client id). A message that would make a connection hold more closes it
/// with 1008 `LIMIT_EXCEEDED`. Present clients of a room are thus at most this many per
/// connection, and no group of connections can fill a room so that a newcomer is refused.
pub const MAX_CONNECTION_AWARENESS_CLIENTS: usize = 4;
/// Departed awareness clients (their last clock, no state) a room keeps before it forgets them
/// all; present clients are bounded per connection ([`MAX_CONNECTION_AWARENESS_CLIENTS`]).
pub const MAX_ROOM_AWARENESS_CLIENTS: usize = 2048;
/// How often awareness states are checked for expiry.
const AWARENESS_TICK: Duration = Duration::from_secs(5);

/// A connection's id, unique within the relay process.
pub(crate) type ConnId = u64;

/// What a room sends to one of its connections.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A y-protocols message.
    Message(Bytes),
    /// Close the connection with this code and reason.
    Close(u16, String),
}

/// What a room receives.
#[derive(Debug)]
pub(crate) enum RoomInput {
    /// A connection joined; the room sends it sync step 1 and the awareness states.
    Join { conn: ConnId, outbound: Outlet },
    /// A binary WebSocket message from a connection.
    Message { conn: ConnId, bytes: Bytes },
    /// A connection left; its awareness states are removed.
    Leave { conn: ConnId },
    /// The relay is stopping: commit, compact and end.
    Shutdown,
}

/// A connection's queue as its room sees it: bounded in messages (the channel's capacity,
/// `[limits] send_queue`) and in bytes (`yjs_send_queue_bytes`), since one room message may be
/// a whole document.
#[derive(Debug)]
pub(crate) struct Outlet {
    /// The connection's queue.
    pub sender: mpsc::Sender<Outbound>,
    /// Bytes of the messages queued and not yet taken by the connection (it subtracts what it
    /// takes).
    pub queued: Arc<AtomicUsize>,
    /// Most bytes queued; an empty queue takes any one message.
    pub max_bytes: usize,
    /// Dropped with the outlet, when the room lets the connection go: tells a connection
    /// blocked writing to its peer to stop (its `Inlet` holds the other end).
    pub _dropped: tokio::sync::oneshot::Sender<()>,
}

impl Outlet {
    /// Queues `bytes` unless the queue is full, in messages or in bytes (`false`: the
    /// connection does not keep up).
    fn offer(&self, bytes: &Bytes) -> bool {
        let len = bytes.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        let fits = before == 0 || before + len <= self.max_bytes;
        if fits
            && self
                .sender
                .try_send(Outbound::Message(bytes.clone()))
                .is_ok()
        {
            return true;
        }
        self.queued.fetch_sub(len, Ordering::AcqRel);
        false
    }
}

struct Member {
    outbound: Outlet,
    /// Awareness client ids this connection announced (removed when it leaves).
    controlled: BTreeSet<u64>,
}

enum Target {
    Only(ConnId),
    AllBut(ConnId),
    All,
}

/// Runs `f` (a call into yrs with untrusted bytes) so that a panic inside becomes `None`.
pub(crate) fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Option<Result<T>> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

/// Whether `update` is the empty v1 update (no structs, empty delete set), as a client with an
/// empty document sends in its sync step 2: nothing to store or forward.
fn is_empty_update(update: &[u8]) -> bool {
    update == [0, 0]
}

/// The length of `doc`'s snapshot; the limit itself when it cannot be encoded, so that the room
/// takes nothing more until it can be measured.
fn snapshot_len(doc: &Doc) -> usize {
    match guarded(|| doc.encode_update(None)) {
        Some(Ok(snapshot)) => snapshot.len(),
        _ => super::MAX_ROOM_DOC_LEN,
    }
}

/// Builds the room's document from what the store holds, plus `extra` updates on top.
fn load_doc(store: &RoomStore, name: &str, extra: &[Vec<u8>]) -> Result<(Doc, usize)> {
    let stored = store.load(name)?;
    let doc = Doc::new();
    for update in stored
        .snapshot
        .iter()
        .chain(stored.updates.iter())
        .chain(extra.iter())
    {
        match guarded(|| doc.apply_update(update)) {
            Some(Ok(())) => {}
            Some(Err(error)) => tracing::warn!(room = name, %error, "stored update skipped"),
            None => tracing::error!(room = name, "stored update panicked yrs; skipped"),
        }
    }
    Ok((doc, stored.updates.len()))
}

struct Room {
    name: String,
    /// Set for a room bridged to a document topic: the topic is its durable record.
    bridge: Option<Bridge>,
    generation: u64,
    rooms: Arc<Rooms>,
    sync: DocSync,
    members: BTreeMap<ConnId, Member>,
    /// Updates applied in this batch and not yet committed.
    pending: Vec<Vec<u8>>,
    /// Update rows stored since the last snapshot.
    since_snapshot: usize,
    /// For a bridged room: the topic's seq its last checkpoint folds in (0: none).
    checkpointed: u64,
    /// At least the length of the document's snapshot: measured when the room opens or
    /// compacts (or nears its limit), plus every update accepted since.
    doc_len: usize,
    /// Awareness client ids the room's awareness store holds (an upper bound).
    awareness_clients: usize,
    /// Most awareness client ids one connection may own (`[limits]
    /// yjs_awareness_per_connection`).
    awareness_per_connection: usize,
    /// Messages to send once the batch is committed.
    out: Vec<(Target, Bytes)>,
    /// On a cluster: the bus to the other frontends' connections to this room, and the topic
    /// that keeps the room.
    bus: Option<(Arc<dyn AwarenessBus>, String)>,
}

/// Opens a stored room, or a bridged room from its topic's entries.
async fn open(
    rooms: &Rooms,
    name: &str,
    bridge: Option<(Arc<Shared>, String)>,
) -> Result<(Doc, usize, Option<Bridge>)> {
    match bridge {
        None => {
            let name = name.to_owned();
            let (doc, rows) = rooms.load(move |store| load_doc(store, &name, &[])).await?;
            Ok((doc, rows, None))
        }
        Some((shared, topic)) => {
            let mut bridge = Bridge::new(shared, topic.clone());
            // The last checkpoint of this log, if any: only the entries after it are replayed.
            let resumed = match rooms.load(move |store| store.bridged(&topic)).await {
                Ok(Some(checkpoint)) => {
                    let doc = bridge.resume(&checkpoint).await;
                    if doc.is_none() {
                        tracing::debug!(room = name, "bridged room checkpoint not of this log");
                    }
                    doc
                }
                Ok(None) => None,
                Err(error) => {
                    tracing::warn!(room = name, %error, "bridged room checkpoint unread");
                    None
                }
            };
            let doc = resumed.unwrap_or_else(Doc::new);
            let from = bridge.cursor();
            bridge.catch_up(&doc).await?;
            rooms
                .metrics
                .bridged_entries_replayed(bridge.cursor() - from);
            Ok((doc, 0, Some(bridge)))
        }
    }
}

/// The room task: loads the room, then serves its inputs until it is idle or the relay stops.
/// `bridge`: the document topic a bridged room follows; `awareness_per_connection`: the most
/// awareness clients one connection may own.
pub(crate) async fn run(
    name: String,
    generation: u64,
    rooms: Arc<Rooms>,
    mut input: mpsc::Receiver<RoomInput>,
    bridge: Option<(Arc<Shared>, String)>,
    awareness_per_connection: usize,
) {
    let bus = bridge.as_ref().and_then(|(shared, topic)| {
        let bus = shared.cluster.as_ref()?.awareness()?;
        Some((bus, topic.clone()))
    });
    let mut remote = bus.as_ref().map(|(bus, topic)| bus.follow(topic));
    let (doc, since_snapshot, bridge) = match open(&rooms, &name, bridge).await {
        Ok(found) => found,
        Err(error) => {
            tracing::error!(room = %name, %error, "cannot open the room");
            rooms.remove(&name, generation);
            // Whoever already joined learns why; later joiners open a fresh room task.
            while let Ok(message) = input.try_recv() {
                if let RoomInput::Join { outbound, .. } = message {
                    let _ = outbound
                        .sender
                        .try_send(Outbound::Close(1011, close_reason(&error)));
                }
            }
            rooms.task_ended();
            return;
        }
    };
    tracing::debug!(room = %name, "room opened");
    rooms.metrics.room_opened();
    let doc_len = snapshot_len(&doc);
    let topic_wake = bridge.as_ref().map(|b| b.wake.clone());
    let checkpointed = bridge.as_ref().map_or(0, Bridge::resumed_from);
    let mut room = Room {
        name,
        checkpointed,
        bridge,
        generation,
        sync: DocSync::new(&doc),
        rooms,
        members: BTreeMap::new(),
        pending: Vec::new(),
        since_snapshot,
        doc_len,
        awareness_clients: 0,
        awareness_per_connection,
        out: Vec::new(),
        bus,
    };
    let mut tick = tokio::time::interval(AWARENESS_TICK);
    tick.tick().await;
    loop {
        let first = tokio::select! {
            message = input.recv() => match message {
                Some(message) => message,
                None => break,
            },
            _ = tick.tick() => {
                let _ = room.sync.tick(now_ms());
                continue;
            }
            message = remote_awareness(&mut remote) => {
                room.receive_remote(&message);
                room.deliver();
                continue;
            }
            () = topic_entries(&topic_wake) => {
                if !room.follow_topic().await {
                    room.rooms.remove(&room.name, room.generation);
                    break;
                }
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match input.try_recv() {
                Ok(message) => batch.push(message),
                Err(_) => break,
            }
        }
        let mut stopping = false;
        for message in batch {
            match message {
                RoomInput::Join { conn, outbound } => room.join(conn, outbound),
                RoomInput::Message { conn, bytes } => room.receive(conn, &bytes).await,
                RoomInput::Leave { conn } => room.leave(conn),
                RoomInput::Shutdown => stopping = true,
            }
        }
        if !room.flush().await {
            room.rooms.remove(&room.name, room.generation);
            break;
        }
        if room.since_snapshot >= COMPACT_EVERY {
            room.compact().await;
        }
        room.checkpoint(false).await;
        if stopping || room.members.is_empty() {
            if room.since_snapshot > 0 {
                room.compact().await;
            }
            room.checkpoint(true).await;
            if stopping {
                room.rooms.remove(&room.name, room.generation);
                break;
            }
            if room.rooms.release_if_idle(&room.name, room.generation) {
                break;
            }
        }
    }
    tracing::debug!(room = %room.name, "room closed");
    room.rooms.metrics.room_closed();
    room.rooms.task_ended();
}

/// The next awareness message from the other frontends of a cluster (never without a bus, nor
/// after the bus stopped).
async fn remote_awareness(remote: &mut Option<mpsc::Receiver<Bytes>>) -> Bytes {
    if let Some(receiver) = remote {
        if let Some(message) = receiver.recv().await {
            return message;
        }
    }
    *remote = None;
    std::future::pending().await
}

/// Resolves when the bridged topic has new entries (never for a plain room).
async fn topic_entries(wake: &Option<Arc<tokio::sync::Notify>>) {
    match wake {
        Some(wake) => wake.notified().await,
        None => std::future::pending().await,
    }
}

impl Room {
    /// Applies and forwards the bridged topic's new entries. `false`: the topic could not be
    /// read; every connection was closed.
    async fn follow_topic(&mut self) -> bool {
        let Some(bridge) = self.bridge.as_mut() else {
            return true;
        };
        match bridge.catch_up(self.sync.doc()).await {
            Ok(updates) => {
                for update in updates {
                    let message = DocSync::update_message(&update);
                    self.out.push((Target::All, Bytes::from(message)));
                }
                self.deliver();
                true
            }
            Err(error) => {
                tracing::error!(room = %self.name, %error, "cannot follow the topic");
                self.close_all(&error);
                false
            }
        }
    }

    /// Closes every connection with 1011 and `error` (the room is ending).
    fn close_all(&mut self, error: &Error) {
        self.out.clear();
        let reason = close_reason(error);
        // A bridged owned topic refusing the relay's writes: reconnecting cannot fix that, so
        // the 44xx close a stock provider does not retry (PROTOCOL.md 8.7.1); else 1011.
        let code = match error {
            Error::NotAuthorized(_) => super::access_close_code(error),
            _ => 1011,
        };
        for (_, member) in std::mem::take(&mut self.members) {
            let _ = member
                .outbound
                .sender
                .try_send(Outbound::Close(code, reason.clone()));
        }
    }

    fn join(&mut self, conn: ConnId, outbound: Outlet) {
        self.members.insert(
            conn,
            Member {
                outbound,
                controlled: BTreeSet::new(),
            },
        );
        match guarded(|| self.sync.start()) {
            Some(Ok(messages)) => {
                for message in messages {
                    self.out.push((Target::Only(conn), Bytes::from(message)));
                }
            }
            Some(Err(error)) => self.expel(conn, 1011, close_reason(&error)),
            None => self.expel(conn, 1011, "UNAVAILABLE".into()),
        }
    }

    async fn receive(&mut self, conn: ConnId, bytes: &[u8]) {
        if !self.members.contains_key(&conn) {
            return; // expelled earlier in this batch
        }
        let is_update = matches!(bytes, [0, 1 | 2, ..]);
        if self.bridge.is_some() && is_update && bytes.len() > MAX_BRIDGED_UPDATE_LEN + 16 {
            let error = Error::LimitExceeded {
                what: "update in a bridged room (one signed op)",
                limit: MAX_BRIDGED_UPDATE_LEN,
                got: bytes.len(),
            };
            self.expel(conn, 1009, close_reason(&error));
            return;
        }
        if is_update && !self.admit_update(bytes.len()) {
            let error = Error::LimitExceeded {
                what: "bytes of the room's document",
                limit: self.rooms.doc_len_limit,
                got: self.doc_len + bytes.len(),
            };
            self.expel(conn, 1009, close_reason(&error));
            return;
        }
        if matches!(bytes, [1, ..]) {
            if let Err(got) = self.admit_awareness(conn, bytes) {
                let error = Error::LimitExceeded {
                    what: "awareness clients of one connection",
                    limit: self.awareness_per_connection,
                    got,
                };
                self.expel(conn, 1008, close_reason(&error));
                return;
            }
        }
        let now = now_ms();
        let sync = &mut self.sync;
        let outcome = match guarded(|| sync.receive(bytes, now)) {
            Some(Ok(outcome)) => outcome,
            Some(Err(error)) => {
                tracing::debug!(room = %self.name, %error, "message refused");
                self.expel(conn, 1007, close_reason(&error));
                return;
            }
            None => {
                tracing::warn!(room = %self.name, "a message panicked yrs; rebuilding the room");
                self.expel(
                    conn,
                    1007,
                    close_reason(&Error::BadUpdate("the update could not be applied".into())),
                );
                self.rebuild().await;
                return;
            }
        };
        for reply in outcome.replies {
            self.out.push((Target::Only(conn), Bytes::from(reply)));
        }
        let empty = outcome
            .applied_update
            .as_deref()
            .is_some_and(is_empty_update);
        if let Some(update) = outcome.applied_update {
            if !empty {
                self.doc_len += update.len();
                self.pending.push(update);
            }
        }
        // Only what changed here goes to the other frontends: a stock client sends back the
        // states it hears of, and those echoes must not travel between frontends again.
        let changed_awareness = !outcome.awareness.is_empty();
        if !empty {
            for message in outcome.broadcast {
                // Awareness goes back to its sender too, as the y-websocket server sends it:
                // a stock client closes a socket that hears nothing for 30 s and counts on the
                // echo of its own 15 s awareness renewal to hear something when alone.
                let awareness = message.first().map(|b| u64::from(*b)) == Some(MESSAGE_AWARENESS);
                let target = if awareness {
                    Target::All
                } else {
                    Target::AllBut(conn)
                };
                let message = Bytes::from(message);
                if awareness && changed_awareness {
                    self.share(&message);
                }
                self.out.push((target, message));
            }
        }
        if let Some(member) = self.members.get_mut(&conn) {
            // As the y-websocket server: a connection controls the clients it brought in. (A
            // stock client sends back the changes it hears of; those are not new here.)
            let changes = &outcome.awareness;
            member.controlled.extend(changes.added.iter());
            for id in &changes.removed {
                member.controlled.remove(id);
            }
        }
    }

    /// Whether the document can take an update message of `len` bytes without its snapshot
    /// passing the room's limit (an update adds at most its own length). Near the limit the
    /// snapshot is measured again, since deletions and merging make it shorter than the sum.
    fn admit_update(&mut self, len: usize) -> bool {
        let limit = self.rooms.doc_len_limit;
        if self.doc_len + len > limit {
            self.doc_len = snapshot_len(self.sync.doc());
        }
        self.doc_len + len <= limit
    }

    /// Whether connection `conn` may send this awareness message: the clients it would bring
    /// in (a state for a client not present in the room), with those it holds, must stay within
    /// `awareness_per_connection`; `Err` gives how many it would hold. Clients the
    /// room never saw are counted, and past [`MAX_ROOM_AWARENESS_CLIENTS`] the departed ones
    /// are forgotten first. Undecodable messages pass here and are refused by `DocSync`.
    fn admit_awareness(&mut self, conn: ConnId, bytes: &[u8]) -> std::result::Result<(), usize> {
        let Ok(ProtocolMessage::Awareness(update)) = ProtocolMessage::decode(bytes) else {
            return Ok(());
        };
        let Some(member) = self.members.get(&conn) else {
            return Ok(());
        };
        let ids: BTreeSet<u64> = update.entries.iter().map(|e| e.client_id).collect();
        let ids: Vec<u64> = ids.into_iter().collect();
        // The room's clock and presence of each id in the message.
        let known: BTreeMap<u64, (u64, bool)> = self
            .sync
            .awareness()
            .encode(Some(&ids))
            .entries
            .into_iter()
            .map(|entry| (entry.client_id, (entry.clock, entry.state.is_some())))
            .collect();
        // What the message would add (a state, a newer clock, for an id not present): a stale
        // echo of a client that just left, or whose state expired, adds nothing and counts
        // for nothing, so an honest client echoing what it heard is never closed for it.
        let mut holds = member.controlled.clone();
        for entry in &update.entries {
            let (clock, present) = known.get(&entry.client_id).copied().unwrap_or((0, false));
            if entry.state.is_some() && !present && entry.clock > clock {
                holds.insert(entry.client_id);
            }
        }
        if holds.len() > self.awareness_per_connection {
            return Err(holds.len());
        }
        let new = ids.len().saturating_sub(known.len());
        if self.awareness_clients + new > MAX_ROOM_AWARENESS_CLIENTS {
            self.forget_departed();
        }
        self.awareness_clients += new;
        Ok(())
    }

    /// Drops the clocks of departed awareness clients (keeps the present ones).
    fn forget_departed(&mut self) {
        let mut present = self.sync.awareness().encode(None);
        present.entries.retain(|entry| entry.state.is_some());
        self.awareness_clients = present.entries.len();
        let mut fresh = DocSync::new(self.sync.doc());
        let _ = fresh.apply_awareness(&present, now_ms());
        self.sync = fresh;
    }

    fn leave(&mut self, conn: ConnId) {
        if let Some(member) = self.members.remove(&conn) {
            self.remove_awareness(&member.controlled);
        }
    }

    /// Removes a connection with a close code and reason (best effort: a full queue gets none).
    fn expel(&mut self, conn: ConnId, code: u16, reason: String) {
        if let Some(member) = self.members.remove(&conn) {
            let _ = member
                .outbound
                .sender
                .try_send(Outbound::Close(code, reason));
            self.remove_awareness(&member.controlled);
        }
    }

    /// Marks the given awareness clients as gone (next clock, `null` state), as the y-websocket
    /// server does when their connection closes, and tells everyone.
    fn remove_awareness(&mut self, clients: &BTreeSet<u64>) {
        if clients.is_empty() {
            return;
        }
        let ids: Vec<u64> = clients.iter().copied().collect();
        let entries: Vec<AwarenessEntry> = self
            .sync
            .awareness()
            .encode(Some(&ids))
            .entries
            .into_iter()
            .filter(|entry| entry.state.is_some())
            .map(|entry| AwarenessEntry {
                client_id: entry.client_id,
                clock: entry.clock.saturating_add(1),
                state: None,
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        let update = AwarenessUpdate { entries };
        let _ = self.sync.apply_awareness(&update, now_ms());
        let message = Bytes::from(ProtocolMessage::Awareness(update).encode());
        self.share(&message);
        self.out.push((Target::All, message));
    }

    /// Sends an awareness message of this frontend's connections to the other frontends.
    fn share(&self, message: &Bytes) {
        if let Some((bus, topic)) = &self.bus {
            bus.send(topic, message.clone());
        }
    }

    /// A message from another frontend's connections to this room: their awareness changes
    /// (applied, within the room's bound on awareness clients, and sent to every connection
    /// here), or a query for the states of this frontend's connections (answered on the bus).
    fn receive_remote(&mut self, bytes: &[u8]) {
        match ProtocolMessage::decode(bytes) {
            Ok(ProtocolMessage::QueryAwareness) => {
                let ids: BTreeSet<u64> = self
                    .members
                    .values()
                    .flat_map(|member| member.controlled.iter().copied())
                    .collect();
                if ids.is_empty() {
                    return;
                }
                let ids: Vec<u64> = ids.into_iter().collect();
                let mut states = self.sync.awareness().encode(Some(&ids));
                states.entries.retain(|entry| entry.state.is_some());
                if !states.entries.is_empty() {
                    self.share(&Bytes::from(ProtocolMessage::Awareness(states).encode()));
                }
            }
            Ok(ProtocolMessage::Awareness(update)) => {
                let ids: Vec<u64> = update.entries.iter().map(|e| e.client_id).collect();
                let known = self.sync.awareness().encode(Some(&ids)).entries.len();
                let new = ids.len().saturating_sub(known);
                if self.awareness_clients + new > MAX_ROOM_AWARENESS_CLIENTS {
                    self.forget_departed();
                }
                if self.awareness_clients + new > MAX_ROOM_AWARENESS_CLIENTS {
                    tracing::debug!(room = %self.name, "remote awareness over the room's bound");
                    return;
                }
                self.awareness_clients += new;
                if !self.sync.apply_awareness(&update, now_ms()).is_empty() {
                    self.out.push((Target::All, Bytes::copy_from_slice(bytes)));
                }
            }
            _ => tracing::debug!(room = %self.name, "not an awareness message from the bus"),
        }
    }

    /// After a panic inside yrs: the document again from the store plus this batch's accepted
    /// updates; awareness carried over.
    async fn rebuild(&mut self) {
        if self.bridge.is_some() {
            // The topic's entries are the record; the room reopens from them on the next join.
            tracing::error!(room = %self.name, "closing the bridged room after a yrs panic");
            self.close_all(&Error::Unavailable(
                "room closed after an internal error".into(),
            ));
            return;
        }
        let name = self.name.clone();
        let pending = self.pending.clone();
        let rebuilt = self
            .rooms
            .load(move |store| load_doc(store, &name, &pending).map(|(d, _)| d))
            .await;
        match rebuilt {
            Ok(doc) => {
                let mut sync = DocSync::new(&doc);
                let states = self.sync.awareness().encode(None);
                let _ = sync.apply_awareness(&states, now_ms());
                self.sync = sync;
            }
            _ => {
                tracing::error!(room = %self.name, "rebuilding the room failed; closing it");
                let ids: Vec<ConnId> = self.members.keys().copied().collect();
                for conn in ids {
                    self.expel(conn, 1011, "UNAVAILABLE".into());
                }
            }
        }
    }

    /// Commits the batch's updates, then sends its messages. `false`: storage failed, every
    /// connection was closed and the room must end (its document holds uncommitted updates).
    async fn flush(&mut self) -> bool {
        if !self.pending.is_empty() {
            let updates = std::mem::take(&mut self.pending);
            let count = updates.len();
            let committed = match self.bridge.as_mut() {
                Some(bridge) => bridge.publish(&updates).await.map(|()| 0),
                None => self
                    .rooms
                    .write(&self.name, RoomWrite::Append(updates))
                    .await
                    .map(|()| count),
            };
            match committed {
                Ok(rows) => {
                    self.since_snapshot += rows;
                    self.rooms.metrics.room_updates(count);
                }
                Err(error) => {
                    tracing::error!(room = %self.name, %error, "room updates not stored");
                    self.close_all(&error);
                    return false;
                }
            }
        }
        self.deliver();
        true
    }

    /// Sends the queued messages; a connection whose queue is full is dropped (its task then
    /// closes it as a slow consumer), which may queue awareness removals, sent in turn.
    fn deliver(&mut self) {
        while !self.out.is_empty() {
            let out = std::mem::take(&mut self.out);
            let mut slow = BTreeSet::new();
            for (target, bytes) in out {
                for (id, member) in &self.members {
                    let wanted = match target {
                        Target::Only(conn) => *id == conn,
                        Target::AllBut(conn) => *id != conn,
                        Target::All => true,
                    };
                    if wanted && !slow.contains(id) && !member.outbound.offer(&bytes) {
                        slow.insert(*id);
                    }
                }
            }
            for conn in slow {
                if let Some(member) = self.members.remove(&conn) {
                    self.remove_awareness(&member.controlled);
                }
            }
        }
    }

    /// Folds the stored updates into one snapshot row.
    /// For a bridged room, writes a checkpoint of its document at the topic's cursor
    /// ([`Bridge::checkpoint`]) once it is [`CHECKPOINT_EVERY`] entries past the last one, or
    /// when `idle` and past it at all, so that the room opens again from there.
    async fn checkpoint(&mut self, idle: bool) {
        let Some(bridge) = self.bridge.as_ref() else {
            return;
        };
        let behind = bridge.cursor().saturating_sub(self.checkpointed);
        if behind == 0 || (!idle && behind < CHECKPOINT_EVERY) {
            return;
        }
        let Some(checkpoint) = bridge.checkpoint(self.sync.doc()).await else {
            return;
        };
        let (topic, next_seq) = (bridge.topic().to_owned(), checkpoint.next_seq);
        match self
            .rooms
            .write(&topic, RoomWrite::Checkpoint(checkpoint))
            .await
        {
            Ok(()) => self.checkpointed = next_seq,
            Err(error) => {
                tracing::warn!(room = %self.name, %error, "bridged room checkpoint failed")
            }
        }
    }

    async fn compact(&mut self) {
        let snapshot = match guarded(|| self.sync.doc().encode_update(None)) {
            Some(Ok(snapshot)) => snapshot,
            Some(Err(error)) => {
                tracing::warn!(room = %self.name, %error, "room snapshot failed");
                return;
            }
            None => {
                tracing::error!(room = %self.name, "room snapshot panicked yrs");
                return;
            }
        };
        let len = snapshot.len();
        match self
            .rooms
            .write(&self.name, RoomWrite::Compact(snapshot))
            .await
        {
            Ok(()) => {
                self.since_snapshot = 0;
                self.doc_len = len;
            }
            Err(error) => tracing::warn!(room = %self.name, %error, "room compaction failed"),
        }
    }
}
