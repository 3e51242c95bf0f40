//! Yjs rooms: `ws://HOST:PORT/yjs/<room>` speaks y-protocols (sync step 1/2, update, awareness,
//! query awareness) as the `y-websocket` server does, so a stock `WebsocketProvider` connects
//! with `new WebsocketProvider('ws://HOST:PORT/yjs', room, doc)` and no other change.
//!
//! - Parsing and document logic are the core's ([`crate::doc::ProtocolMessage`],
//!   [`crate::doc::DocSync`]); this module only routes bytes between connections and a room task
//!   (`room.rs`), which owns the document.
//! - Rooms are durable ([`store`]): every accepted update is committed before anything derived
//!   from it is sent to anyone, and a room reopens from its snapshot plus the updates since.
//! - Room names: 1 to [`MAX_ROOM_NAME_LEN`] bytes of `A-Z a-z 0-9 - _ . ~ : @ +`. Anything else
//!   is closed at once with code 1008 and reason `BAD_INPUT: …`.
//! - Messages: binary, at most [`MAX_ROOM_MESSAGE_LEN`] bytes. A text message closes with 1003;
//!   a message that does not decode or that yrs refuses closes with 1007 and the error code
//!   (`MALFORMED`, `TRAILING_BYTES`, `LIMIT_EXCEEDED`, `BAD_UPDATE`) as the reason; the room is
//!   unchanged. A frame the WebSocket layer refuses closes with 1002 (1007 for a text message
//!   that is not UTF-8) and `MALFORMED`, as on `/ws`. Rate limit as for `/ws`, pings included
//!   (close 1008 `RATE_LIMITED`); a connection whose send queue overflows, in messages
//!   (`[limits] send_queue`) or in bytes (`yjs_send_queue_bytes`), is closed with 1008
//!   `SLOW_CONSUMER`, at once even while a write to it is stuck.
//! - Room size: an update that would take the room's document past `[limits] yjs_room_len`
//!   (at most [`MAX_ROOM_DOC_LEN`] bytes of snapshot) closes its connection with 1009
//!   `LIMIT_EXCEEDED`; the room is unchanged. An update must fill its length prefix exactly
//!   (`TRAILING_BYTES`, 1007): yrs ignores bytes after the delete set, which would otherwise be
//!   stored and forwarded past the room's size limit.
//! - Presence: a connection owns at most `[limits] yjs_awareness_per_connection` awareness ids
//!   (by default [`MAX_CONNECTION_AWARENESS_CLIENTS`]; more closes it with 1008 `LIMIT_EXCEEDED`), so present states are bounded per connection
//!   and a room cannot be filled against newcomers. Awareness goes back to its sender too, as
//!   from the y-websocket server: a lone stock client hears its own 15 s renewal and so does
//!   not drop its socket as silent after 30 s.
//! - Rooms open: at most `[limits] yjs_rooms` (a connection to another room closes with 1013
//!   `LIMIT_EXCEEDED`); a room unloads when its last connection leaves. Loads take turns
//!   ([`store::ROOM_READERS`] at once, on read connections) and the writes of every room are
//!   group-committed on the one writer, so a storm of rooms neither fills the blocking pool nor
//!   makes an open room wait for more than one commit before its own.
//!
//! - Bridge (`bridge.rs`): `/yjs/<room>?topic=<topic>` joins the document of an ants-coord topic
//!   instead: signed `doc.update` entries flow into the room, plain clients' updates are
//!   published to the topic signed by the relay's key. Every room bridged to one topic shares one
//!   document, whose durable record is the topic.
//! - Private rooms (`access.rs`): a room named by an owned topic (`/yjs/@<agent id>/…`), or
//!   bridged to one, admits only a connection whose URL carries a room proof of an agent that
//!   may read the topic (`?cap=<hex>&proof=<hex>`); its document updates count only if it may
//!   write. Refused: the y-protocols permission-denied message, then close 4401 or 4403
//!   ([`access_close_code`]) and the code.
//!   A capability that expires or is revoked while connected closes the connection the same
//!   way. On a cluster a private plain room's record is a topic the relay owns
//!   ([`cluster_private_room_topic`]), not the open `yjs/…` of other plain rooms.
//!
//! Open rooms' clients are not authenticated: a room is as trustworthy as the relay (see
//! PROTOCOL.md 8.7).

mod access;
mod bridge;
mod room;
pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, RawQuery, State};
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::rate::TokenBucket;
use super::{Config, Shared};
use crate::error::{Error, Result};
use crate::identity::AgentId;
use room::{ConnId, Outbound, Outlet, RoomInput};
use store::{RoomStore, RoomWrite};

pub use room::{
    COMPACT_EVERY, MAX_BATCH, MAX_CONNECTION_AWARENESS_CLIENTS, MAX_ROOM_AWARENESS_CLIENTS,
};
pub use store::YJS_DB_FILE;

/// Carries the awareness (presence) messages of rooms between the frontends of a cluster: a
/// frontend sends what its own connections announce and hears what the others' announce.
/// Best effort, like awareness itself: a message that cannot be carried is dropped (a
/// client's 15 s renewal sends its state again).
pub trait AwarenessBus: Send + Sync + std::fmt::Debug {
    /// Sends an awareness message of the room kept in `topic` to the other frontends.
    fn send(&self, topic: &str, message: Bytes);
    /// The awareness messages the other frontends send for the room kept in `topic`, until
    /// the receiver is dropped.
    fn follow(&self, topic: &str) -> mpsc::Receiver<Bytes>;
}

/// The path prefix of Yjs rooms: a room is served at `/yjs/<room>`.
pub const YJS_PATH: &str = "/yjs";
/// Longest room name, in bytes.
pub const MAX_ROOM_NAME_LEN: usize = 128;
/// Largest WebSocket message accepted on a room connection.
pub const MAX_ROOM_MESSAGE_LEN: usize = 16 * 1024 * 1024;
/// Largest a room's document may grow, in bytes of its encoded snapshot: half of what one
/// update may be ([`crate::doc::MAX_UPDATE_LEN`]), so that a stored room always loads again.
pub const MAX_ROOM_DOC_LEN: usize = crate::doc::MAX_UPDATE_LEN / 2;
/// Inputs queued per room before connections wait to hand over more.
const ROOM_QUEUE: usize = 1024;
/// Longest WebSocket close reason (RFC 6455: 125 bytes of payload, 2 of them the code).
const MAX_CLOSE_REASON: usize = 123;

/// Checks a room name: 1 to [`MAX_ROOM_NAME_LEN`] bytes of `A-Z a-z 0-9 - _ . ~ : @ +`, and `/`
/// after the first 65 bytes of an owned topic's name (`@<agent id>/…`: a private room, guarded
/// by that topic). Error: `BAD_INPUT`.
pub fn validate_room_name(name: &str) -> Result<()> {
    let owned = crate::capability::topic_owner(name).is_some();
    if name.is_empty() || name.len() > MAX_ROOM_NAME_LEN {
        return Err(Error::BadInput(format!(
            "room name must be 1 to {MAX_ROOM_NAME_LEN} bytes, got {}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.~:@+".contains(*c) || (owned && *c == '/')))
    {
        return Err(Error::BadInput(format!(
            "room name: {c:?} not allowed (A-Z a-z 0-9 - _ . ~ : @ +, and / in an owned topic)"
        )));
    }
    Ok(())
}

/// `CODE: message`, cut to fit a WebSocket close frame.
pub(crate) fn close_reason(error: &Error) -> String {
    let mut reason = format!("{}: {error}", error.code());
    if reason.len() > MAX_CLOSE_REASON {
        let mut end = MAX_CLOSE_REASON;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

/// A room's write waiting for a group commit, and where to say how it went.
type QueuedWrite = (
    (String, RoomWrite),
    tokio::sync::oneshot::Sender<Result<()>>,
);

#[derive(Debug)]
struct OpenRoom {
    input: mpsc::Sender<RoomInput>,
    /// Connections that joined and have not left (counted here, under the registry lock, so a
    /// room task never ends while a joiner is on its way).
    members: usize,
    generation: u64,
}

/// Every open room, their store, and the room tasks' bookkeeping.
#[derive(Debug)]
pub(crate) struct Rooms {
    store: Arc<RoomStore>,
    /// Room loads in flight (one per read connection of the store), so that a storm of rooms
    /// opening at once queues here in order instead of filling the blocking thread pool.
    loads: tokio::sync::Semaphore,
    /// Room writes waiting for the next group commit, with whom to tell.
    queued_writes: Mutex<Vec<QueuedWrite>>,
    /// The turn to commit: the store has one writer. Whoever holds it commits every queued
    /// write of every room in one transaction (one fsync), so a room waits for at most one
    /// commit in progress and its own, however many rooms write.
    commit_turn: tokio::sync::Mutex<()>,
    /// Largest a room's document may grow, in bytes of its snapshot.
    doc_len_limit: usize,
    metrics: Arc<super::Metrics>,
    open: Mutex<HashMap<String, OpenRoom>>,
    next_id: AtomicU64,
    tasks: AtomicUsize,
    stopping: AtomicBool,
}

impl Rooms {
    /// Opens the room database in `data`; rooms' documents may grow to `doc_len_limit` bytes
    /// (at most [`MAX_ROOM_DOC_LEN`]).
    pub(crate) fn open(
        data: &std::path::Path,
        doc_len_limit: usize,
        metrics: Arc<super::Metrics>,
    ) -> Result<Self> {
        Ok(Rooms {
            store: Arc::new(RoomStore::open(&data.join(YJS_DB_FILE))?),
            loads: tokio::sync::Semaphore::new(store::ROOM_READERS),
            queued_writes: Mutex::new(Vec::new()),
            commit_turn: tokio::sync::Mutex::new(()),
            doc_len_limit: doc_len_limit.min(MAX_ROOM_DOC_LEN),
            metrics,
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            tasks: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, OpenRoom>>> {
        self.open
            .lock()
            .map_err(|_| Error::Unavailable("room registry poisoned".into()))
    }

    /// Joins room `name` (the registry key: the room name, or `?topic=<topic>` for every room
    /// bridged to that topic, which share one document), starting its task if it is not open.
    /// Returns the connection's id, the room's input and the room task's generation (for
    /// [`Rooms::leave`]). `LIMIT_EXCEEDED` when the room is not open and `max_rooms` are.
    fn join(
        self: &Arc<Self>,
        name: &str,
        bridge: Option<(Arc<Shared>, String)>,
        limits: &super::Limits,
    ) -> Result<(ConnId, mpsc::Sender<RoomInput>, u64)> {
        let max_rooms = limits.yjs_rooms;
        let mut open = self.lock()?;
        if self.stopping.load(Ordering::Acquire) {
            return Err(Error::Unavailable("the relay is shutting down".into()));
        }
        if open.len() >= max_rooms && !open.contains_key(name) {
            return Err(Error::LimitExceeded {
                what: "yjs rooms open",
                limit: max_rooms,
                got: open.len() + 1,
            });
        }
        let conn = self.next_id.fetch_add(1, Ordering::Relaxed);
        let room = open.entry(name.to_owned()).or_insert_with(|| {
            let (input, receiver) = mpsc::channel(ROOM_QUEUE);
            let generation = self.next_id.fetch_add(1, Ordering::Relaxed);
            self.tasks.fetch_add(1, Ordering::AcqRel);
            tokio::spawn(room::run(
                name.to_owned(),
                generation,
                self.clone(),
                receiver,
                bridge,
                limits.yjs_awareness_per_connection.max(1),
            ));
            OpenRoom {
                input,
                members: 0,
                generation,
            }
        });
        room.members += 1;
        Ok((conn, room.input.clone(), room.generation))
    }

    /// A connection of room task `generation` is leaving (called before its `Leave` is sent).
    fn leave(&self, name: &str, generation: u64) {
        if let Ok(mut open) = self.lock() {
            if let Some(room) = open.get_mut(name) {
                if room.generation == generation {
                    room.members = room.members.saturating_sub(1);
                }
            }
        }
    }

    /// Called by an idle room task: unregisters it unless a connection is joining. `true`: the
    /// task may end.
    fn release_if_idle(&self, name: &str, generation: u64) -> bool {
        let Ok(mut open) = self.lock() else {
            return true;
        };
        match open.get(name) {
            Some(room) if room.generation == generation => {
                if room.members == 0 {
                    open.remove(name);
                    if open.is_empty() {
                        self.store.close_idle_readers();
                    }
                    true
                } else {
                    false
                }
            }
            _ => true,
        }
    }

    /// Unregisters room task `generation` of `name` (failure or shutdown).
    fn remove(&self, name: &str, generation: u64) {
        if let Ok(mut open) = self.lock() {
            if open.get(name).is_some_and(|r| r.generation == generation) {
                open.remove(name);
            }
        }
    }

    /// Runs `f` on the room store in the blocking pool, once a room load's turn comes.
    async fn load<T: Send + 'static>(
        &self,
        f: impl FnOnce(&RoomStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _turn = self
            .loads
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("room store loads closed".into()))?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|_| Error::Unavailable("room store load task failed".into()))?
    }

    /// Makes `write` for room `room`, durably, in the next group commit of every room's writes.
    async fn write(&self, room: &str, write: RoomWrite) -> Result<()> {
        let (done, committed) = tokio::sync::oneshot::channel();
        self.queued_writes
            .lock()
            .map_err(|_| Error::Unavailable("room write queue poisoned".into()))?
            .push(((room.to_owned(), write), done));
        {
            let _turn = self.commit_turn.lock().await;
            let queued = match self.queued_writes.lock() {
                Ok(mut queued) => std::mem::take(&mut *queued),
                Err(_) => Vec::new(),
            };
            // Empty when an earlier turn took this write with its own.
            if !queued.is_empty() {
                let (writes, waiting): (Vec<_>, Vec<_>) = queued.into_iter().unzip();
                let store = self.store.clone();
                let result = tokio::task::spawn_blocking(move || store.write_all(&writes))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Error::Unavailable("room store write task failed".into()))
                    });
                for done in waiting {
                    let _ = done.send(result.clone());
                }
            }
        }
        committed
            .await
            .map_err(|_| Error::Unavailable("room write dropped".into()))?
    }

    fn task_ended(&self) {
        self.tasks.fetch_sub(1, Ordering::AcqRel);
    }

    /// Stops every room: each commits what it has queued, compacts and ends. Waits up to
    /// `patience` for the room tasks.
    pub(crate) async fn shutdown(&self, patience: Duration) {
        let inputs: Vec<mpsc::Sender<RoomInput>> = match self.lock() {
            Ok(open) => {
                self.stopping.store(true, Ordering::Release);
                open.values().map(|r| r.input.clone()).collect()
            }
            Err(_) => Vec::new(),
        };
        for input in inputs {
            let _ = tokio::time::timeout(patience, input.send(RoomInput::Shutdown)).await;
        }
        let deadline = Instant::now() + patience;
        while self.tasks.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// `GET /yjs/<room>`: upgrades to a room connection (a bad name is refused on the socket, with a
/// close reason a browser can read).
pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    room: Option<Path<String>>,
    Query(query): Query<RoomQuery>,
    RawQuery(raw_query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(refused) = shared.take_slot_or_refuse() {
        return refused;
    }
    let name = room.map(|Path(name)| name).unwrap_or_default();
    ws.max_message_size(MAX_ROOM_MESSAGE_LEN)
        .max_frame_size(MAX_ROOM_MESSAGE_LEN)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(super::socket::WRITE_BUFFER_LEN)
        .max_write_buffer_size(super::socket::max_write_buffer_len(MAX_ROOM_MESSAGE_LEN))
        .on_upgrade(move |socket| async move {
            shared.metrics.connection_opened();
            serve(socket, &shared, name, query.topic, raw_query).await;
            shared.metrics.connection_closed();
            shared.release_slot();
        })
}

/// The query string of a room URL: `topic` bridges the room to a document topic; `cap` and
/// `proof` (read from the raw query, see `access.rs`) open a private room; anything else
/// (y-websocket `params`) is ignored.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct RoomQuery {
    topic: Option<String>,
}

/// The prefix of the topics that hold the plain rooms of a cluster ([`cluster_room_topic`]).
pub const CLUSTER_ROOM_PREFIX: &str = "yjs/";

/// The topic that holds plain room `name` on a cluster (`--store nats://…`): `yjs/<name>`, or,
/// for a name too long for that to be a topic, `yjs#` and the name's SHA-256 in hex.
///
/// Every frontend of a cluster serves a plain room as a room bridged to this topic: its updates
/// are sequenced in the replicated log, so two frontends' connections to one room share one
/// document, and the room outlives any frontend. Rooms of the embedded store are unchanged.
pub fn cluster_room_topic(name: &str) -> String {
    if CLUSTER_ROOM_PREFIX.len() + name.len() <= crate::op::MAX_TOPIC_LEN {
        format!("{CLUSTER_ROOM_PREFIX}{name}")
    } else {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(name.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("yjs#{hex}")
    }
}

/// The topic that holds *private* plain room `name` on a cluster: a topic the relay's own key
/// `relay` owns (PROTOCOL.md 10.5), `@<relay>/yjs/<name>`, or, when that is longer than a topic
/// may be, `@<relay>/yjs#` and the first 24 bytes of the name's SHA-256 in hex (the most that
/// fits a topic after the relay's id). Owned by the relay, it is private to
/// every reader of the log (no capability rooted at the relay's key is ever issued) and the
/// relay writes it without one; who may use the room is decided by the room's own name, as on
/// one relay (PROTOCOL.md 8.7.1).
pub fn cluster_private_room_topic(relay: &AgentId, name: &str) -> String {
    let owned = format!("{}{relay}/", crate::capability::owned::OWNED_TOPIC_SIGIL);
    let topic = format!("{owned}{}", cluster_room_topic(name));
    if topic.len() <= crate::op::MAX_TOPIC_LEN {
        return topic;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    let hex: String = digest[..24].iter().map(|b| format!("{b:02x}")).collect();
    format!("{owned}yjs#{hex}")
}

/// The registry key of a room: its name, or `?topic=<topic>` when bridged (every room bridged
/// to one topic is that topic's document). `BRIDGE_NOT_ALLOWED` for a topic the configuration
/// does not let rooms bridge to.
fn room_key(name: &str, topic: Option<&str>, config: &Config) -> Result<String> {
    validate_room_name(name)?;
    match topic {
        None => Ok(name.to_owned()),
        Some(topic) => {
            crate::op::validate_topic(topic)?;
            if !config.may_bridge(topic) {
                return Err(Error::BridgeNotAllowed(topic.to_owned()));
            }
            Ok(format!("?topic={topic}"))
        }
    }
}

/// The registry key and the bridged topic of a connection to room `name` with `?topic=` value
/// `topic`. On a cluster a plain room is bridged to its [`cluster_room_topic`], which needs no
/// `yjs_bridge` permission: it is the room's own record, not a topic the user named.
fn room_of(name: &str, topic: Option<String>, shared: &Shared) -> Result<(String, Option<String>)> {
    match topic {
        None if shared.cluster.is_some() => {
            validate_room_name(name)?;
            // A private room's record must not be an open topic (`yjs/@…` would be readable by
            // every reader of the log): it goes in a topic the relay owns.
            let private =
                crate::capability::topic_owner(name).is_some() || shared.policies.closes_any(name);
            let topic = if private {
                cluster_private_room_topic(&shared.identity.agent_id(), name)
            } else {
                cluster_room_topic(name)
            };
            Ok((format!("?topic={topic}"), Some(topic)))
        }
        topic => Ok((room_key(name, topic.as_deref(), &shared.config)?, topic)),
    }
}

async fn serve(
    socket: WebSocket,
    shared: &Arc<Shared>,
    name: String,
    topic: Option<String>,
    query: Option<String>,
) {
    let (mut sink, mut stream) = socket.split();
    // The topic that decides who may join: the bridged one, else the room's own name.
    let guard_topic = topic.clone().unwrap_or_else(|| name.clone());
    let room = room_of(&name, topic, shared);
    let mut guard = match room
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|_| Guard::admit(shared, query.as_deref(), &guard_topic))
    {
        Ok(guard) => guard,
        Err(error) => {
            if room.is_ok() {
                refuse(&mut sink, &mut stream, shared, &error).await;
            } else {
                close_refused(&mut sink, &mut stream, shared, &error).await;
            }
            return;
        }
    };
    let joined = room.and_then(|(key, topic)| {
        let bridge = topic.map(|topic| (shared.clone(), topic));
        shared
            .yjs
            .join(&key, bridge, &shared.config.limits)
            .map(|joined| (key, joined))
    });
    let (name, (conn, input, generation)) = match joined {
        Ok(joined) => joined,
        Err(error) => {
            if let Some(guard) = &guard {
                guard.release(shared);
            }
            close_refused(&mut sink, &mut stream, shared, &error).await;
            return;
        }
    };
    let limits = &shared.config.limits;
    let (outbound_tx, outbound) = mpsc::channel(limits.send_queue.max(1));
    let queued = Arc::new(AtomicUsize::new(0));
    let (dropped_tx, dropped) = tokio::sync::oneshot::channel();
    let join = RoomInput::Join {
        conn,
        outbound: Outlet {
            sender: outbound_tx,
            queued: queued.clone(),
            max_bytes: limits.yjs_send_queue_bytes,
            _dropped: dropped_tx,
        },
    };
    let end = if input.send(join).await.is_err() {
        Some(End::Close(1011, "UNAVAILABLE".to_owned()))
    } else {
        let mut outbound = Inlet {
            receiver: outbound,
            queued,
            dropped,
        };
        let mut link = Link {
            conn,
            input: &input,
            sink: &mut sink,
            stream: &mut stream,
        };
        relay_messages(shared, &mut link, &mut outbound, guard.as_mut()).await
    };
    if let Some(guard) = &guard {
        guard.release(shared);
    }
    shared.yjs.leave(&name, generation);
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        input.send(RoomInput::Leave { conn }),
    )
    .await;
    match end {
        None => {}
        Some(End::Close(code, reason)) => close(&mut sink, &mut stream, shared, code, reason).await,
        Some(End::Refused(error)) => refuse(&mut sink, &mut stream, shared, &error).await,
    }
}

/// The close code of a connection refused before it joins its room.
fn refusal_code(error: &Error) -> u16 {
    match error {
        Error::BadInput(_)
        | Error::BadTopic(_)
        | Error::BridgeNotAllowed(_)
        | Error::NotAuthorized(_)
        | Error::Unavailable(_) => 1008,
        // Too many rooms open: RFC 6455 7.4.1 "try again later"; a stock provider does.
        Error::LimitExceeded { .. } => 1013,
        _ => 1011,
    }
}

/// Longest a private room's connection waits to decide again for a capability's start or
/// expiry (a later one is waited for in steps of this).
const MAX_RECHECK_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A private room's check on one connection: its credentials, what they allow now, and the
/// wake-up of the guarding topic's new entries (a revocation is one).
struct Guard {
    access: access::RoomAccess,
    topic: String,
    wake: Arc<tokio::sync::Notify>,
    allowed: access::Allowed,
    /// Whether the connection was told that its document updates are dropped.
    told_read_only: bool,
}

impl Guard {
    /// Checks the credentials in `query` for a room guarded by `topic`: `None` for an open
    /// room; the refusal for a private room the connection may not read.
    fn admit(shared: &Shared, query: Option<&str>, topic: &str) -> Result<Option<Guard>> {
        let access =
            access::RoomAccess::from_query(query, Some(topic), &shared.policies, super::now_ms())?;
        let Some(topic) = access.topic().map(str::to_owned) else {
            return Ok(None);
        };
        let mut guard = Guard {
            access,
            topic,
            wake: Arc::new(tokio::sync::Notify::new()),
            allowed: access::Allowed::ReadOnly,
            told_read_only: false,
        };
        // Decided before watching, so that a refused connection leaves nothing in the hub;
        // then again once watching, so that no revocation slips in between.
        guard.recheck(shared)?;
        shared.hub.watch(&guard.topic, &guard.wake);
        match guard.recheck(shared) {
            Ok(()) => Ok(Some(guard)),
            Err(error) => {
                guard.release(shared);
                Err(error)
            }
        }
    }

    /// Decides again, at the relay's clock, with the topic's revocations and read rule.
    fn recheck(&mut self, shared: &Shared) -> Result<()> {
        let rules = super::access::topic_rules(&shared.hub, &self.topic);
        let public = rules.read == Some(super::hub::ReadState::Public);
        self.allowed = self
            .access
            .decide(super::now_ms(), rules.revoked.as_deref(), public)?;
        Ok(())
    }

    /// When to decide again without a new entry (a capability starts or expires): at most
    /// [`MAX_RECHECK_WAIT`] ahead, so that a far-off time never overflows the clock.
    fn next_change(&self) -> Option<tokio::time::Instant> {
        let now = super::now_ms();
        let at = self.access.next_change_after(now)?;
        let wait = Duration::from_millis(at - now).min(MAX_RECHECK_WAIT);
        Some(tokio::time::Instant::now() + wait)
    }

    fn release(&self, shared: &Shared) {
        shared.hub.unwatch(&self.topic, &self.wake);
    }
}

/// The close code of a connection refused access to a private room: 4401 without a valid room
/// proof (`NOT_AUTHENTICATED`), else 4403. The 4400–4499 range is y-websocket's convention
/// (3.x, `shouldReconnect`) for "reconnecting cannot fix this": a stock provider stops and
/// emits `closed` with the code and reason, instead of retrying the same URL forever; the app
/// sets fresh `params` and calls `connect()`.
pub const fn access_close_code(error: &Error) -> u16 {
    match error {
        Error::NotAuthenticated => 4401,
        _ => 4403,
    }
}

/// Refuses a connection to a private room: the y-protocols permission-denied message (which a
/// stock provider reports), then a close with [`access_close_code`] and the code as the reason.
async fn refuse(
    sink: &mut Sink,
    stream: &mut SplitStream<WebSocket>,
    shared: &Shared,
    error: &Error,
) {
    let reason = close_reason(error);
    let denied = crate::doc::ProtocolMessage::PermissionDenied(reason.clone()).encode();
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        sink.send(Message::Binary(denied.into())),
    )
    .await;
    close(sink, stream, shared, access_close_code(error), reason).await;
}

/// How a connection ends, when it has something to tell its peer.
enum End {
    Close(u16, String),
    /// Refused by its room's guard ([`refuse`]).
    Refused(Error),
}

type Sink = SplitSink<WebSocket, Message>;

/// A connection's end of its queue ([`Outlet`] is the room's): it subtracts what it takes.
struct Inlet {
    receiver: mpsc::Receiver<Outbound>,
    queued: Arc<AtomicUsize>,
    /// Resolves when the room drops the connection's outlet.
    dropped: tokio::sync::oneshot::Receiver<()>,
}

impl Inlet {
    /// Why the room let the connection go: the close it queued, else it did not keep up.
    fn let_go(&mut self) -> Step {
        while let Ok(out) = self.receiver.try_recv() {
            if let Outbound::Close(code, reason) = out {
                return Step::Close(code, reason);
            }
        }
        Step::Close(1008, "SLOW_CONSUMER".into())
    }
}

/// What one turn of the connection loop decided.
enum Step {
    Continue,
    /// The peer went away: nothing to tell it.
    Gone,
    Close(u16, String),
    /// The room's guard must decide again (a new entry in its topic, or a capability's time).
    Recheck,
    /// A document update of a read-only connection was dropped.
    Dropped,
}

/// A connection's two ends: the room's input and the socket.
struct Link<'a> {
    conn: ConnId,
    input: &'a mpsc::Sender<RoomInput>,
    sink: &'a mut Sink,
    stream: &'a mut SplitStream<WebSocket>,
}

/// Moves messages between the socket and the room until one side ends; returns how to end
/// (`None`: the peer is gone). `guard`, for a private room, is decided again on every new entry
/// of its topic and whenever a capability starts or expires.
async fn relay_messages(
    shared: &Arc<Shared>,
    link: &mut Link<'_>,
    outbound: &mut Inlet,
    mut guard: Option<&mut Guard>,
) -> Option<End> {
    let limits = &shared.config.limits;
    let mut bucket = TokenBucket::new(
        limits.connection_rate,
        limits.connection_burst,
        Instant::now(),
    );
    let mut shutdown = shared.closing.subscribe();
    let mut ping = tokio::time::interval(Duration::from_secs(limits.ping_interval_s.max(1)));
    ping.tick().await;
    let send_timeout = limits.send_timeout();
    let wake = guard.as_ref().map(|g| g.wake.clone());
    loop {
        let read_only = guard
            .as_ref()
            .is_some_and(|g| g.allowed == access::Allowed::ReadOnly);
        let next_change = guard.as_ref().and_then(|g| g.next_change());
        let step = tokio::select! {
            biased;
            _ = shutdown.changed() => Step::Close(1001, "SHUTTING_DOWN".into()),
            () = async {
                match &wake {
                    Some(wake) => wake.notified().await,
                    None => std::future::pending().await,
                }
            } => Step::Recheck,
            () = async {
                match next_change {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => Step::Recheck,
            out = outbound.receiver.recv() => match out {
                Some(Outbound::Message(bytes)) => {
                    outbound.queued.fetch_sub(bytes.len(), Ordering::AcqRel);
                    let send = tokio::time::timeout(send_timeout, link.sink.send(Message::Binary(bytes)));
                    // A peer that does not read holds this write up; the room may drop the
                    // connection meanwhile (its queue over the bound), which ends the wait.
                    tokio::select! {
                        sent = send => match sent {
                            Ok(Ok(())) => Step::Continue,
                            Ok(Err(_)) => Step::Gone,
                            Err(_) => Step::Close(1008, "SLOW_CONSUMER".into()),
                        },
                        _ = &mut outbound.dropped => outbound.let_go(),
                    }
                }
                Some(Outbound::Close(code, reason)) => Step::Close(code, reason),
                // The room dropped this connection: its queue overflowed.
                None => Step::Close(1008, "SLOW_CONSUMER".into()),
            },
            message = link.stream.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    if !bucket.take(Instant::now()) {
                        Step::Close(1008, "RATE_LIMITED".into())
                    } else if read_only && access::is_document_write(&bytes) {
                        Step::Dropped
                    } else if link.input.send(RoomInput::Message { conn: link.conn, bytes }).await.is_err() {
                        Step::Close(1011, "UNAVAILABLE".into())
                    } else {
                        Step::Continue
                    }
                }
                Some(Ok(Message::Text(_))) => {
                    Step::Close(1003, "BAD_INPUT: y-protocols messages are binary".into())
                }
                // Pings spend the frame budget too (see `socket.rs`).
                Some(Ok(Message::Ping(_))) => {
                    if bucket.take(Instant::now()) {
                        Step::Continue
                    } else {
                        Step::Close(1008, "RATE_LIMITED".into())
                    }
                }
                Some(Ok(Message::Pong(_))) => Step::Continue,
                Some(Err(error)) if super::over_message_bound(&error) => {
                    Step::Close(1009, "LIMIT_EXCEEDED: message over the relay's bound".into())
                }
                Some(Err(error)) => match super::socket::refusal(&error) {
                    Some((code, reason)) => Step::Close(code, reason.into()),
                    None => Step::Gone,
                },
                Some(Ok(Message::Close(_))) | None => Step::Gone,
            },
            _ = ping.tick() => {
                match tokio::time::timeout(send_timeout, link.sink.send(Message::Ping(Bytes::new()))).await {
                    Ok(Ok(())) => Step::Continue,
                    Ok(Err(_)) => Step::Gone,
                    Err(_) => Step::Close(1008, "SLOW_CONSUMER".into()),
                }
            }
        };
        match step {
            Step::Continue => {}
            Step::Gone => return None,
            Step::Close(code, reason) => return Some(End::Close(code, reason)),
            Step::Recheck => {
                if let Some(guard) = guard.as_mut() {
                    if let Err(error) = guard.recheck(shared) {
                        return Some(End::Refused(error));
                    }
                }
            }
            Step::Dropped => {
                // Said once: a stock provider reports it, and keeps its connection (closing
                // would make it reconnect and send the same update again, forever).
                if let Some(guard) = guard.as_mut().filter(|g| !g.told_read_only) {
                    guard.told_read_only = true;
                    let denied = crate::doc::ProtocolMessage::PermissionDenied(
                        "NOT_AUTHORIZED: read-only: document updates from this connection are dropped".into(),
                    )
                    .encode();
                    let send = link.sink.send(Message::Binary(denied.into()));
                    match tokio::time::timeout(send_timeout, send).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return None,
                        Err(_) => return Some(End::Close(1008, "SLOW_CONSUMER".into())),
                    }
                }
            }
        }
    }
}

/// Closes a Yjs connection with `code` and `reason`, counted by the reason's code (the part
/// before any `:`) in `ants_relay_yjs_closed_total`, whoever decided it: the endpoint or the room.
/// Closes a connection the relay refused to seat in a room, with `error`'s close code and reason.
async fn close_refused(
    sink: &mut Sink,
    stream: &mut SplitStream<WebSocket>,
    shared: &Shared,
    error: &Error,
) {
    close(
        sink,
        stream,
        shared,
        refusal_code(error),
        close_reason(error),
    )
    .await;
}

async fn close(
    sink: &mut Sink,
    stream: &mut SplitStream<WebSocket>,
    shared: &Shared,
    code: u16,
    reason: String,
) {
    let reason_code = reason.split(':').next().unwrap_or_default();
    shared.metrics.room_closed_connection(reason_code);
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let sent = tokio::time::timeout(
        Duration::from_secs(1),
        sink.send(Message::Close(Some(frame))),
    )
    .await;
    if matches!(sent, Ok(Ok(()))) {
        super::socket::linger(stream).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_private_plain_room_on_a_cluster_is_kept_in_a_topic_the_relay_owns() {
        let relay = crate::identity::Identity::from_seed(&[4; 32])
            .unwrap()
            .agent_id();
        let owner = crate::identity::Identity::from_seed(&[5; 32])
            .unwrap()
            .agent_id();
        // A short name (one an operator policy closes) is kept whole.
        let topic = cluster_private_room_topic(&relay, "team/notes");
        assert_eq!(topic, format!("@{relay}/yjs/team/notes"));
        // An owned topic's name does not fit after the relay's id: its hash does.
        let room = format!("@{owner}/notes");
        let hashed = cluster_private_room_topic(&relay, &room);
        assert!(hashed.starts_with(&format!("@{relay}/yjs#")), "{hashed}");
        assert_ne!(
            hashed,
            cluster_private_room_topic(&relay, &format!("{room}x"))
        );
        for topic in [&topic, &hashed] {
            crate::op::validate_topic(topic).unwrap();
            assert_eq!(crate::capability::topic_owner(topic), Some(relay));
        }
    }

    use super::*;

    #[test]
    fn room_names() {
        for good in [
            "a",
            "notes-2026",
            "team:doc.v1",
            "A_b~c@d+e",
            &"x".repeat(128),
        ] {
            assert!(validate_room_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "a b", "é", "a?b", "%2F", &"x".repeat(129)] {
            assert_eq!(
                validate_room_name(bad).unwrap_err().code(),
                "BAD_INPUT",
                "{bad}"
            );
        }
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let reason = close_reason(&Error::BadInput("é".repeat(200)));
        assert!(reason.len() <= MAX_CLOSE_REASON);
        assert!(reason.starts_with("BAD_INPUT: "));
    }
}
