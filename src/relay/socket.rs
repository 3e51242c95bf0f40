//! The socket loop of one ants-coord WebSocket connection. It only moves bytes: protocol
//! decisions are [`RelayConnection`]'s, sequencing is the sequencer's, fan-out is the hub's.
//!
//! Shape (axum's websockets example): split the socket, one `select!` over incoming messages,
//! the outbound queue the sequencer fills, wake-ups from the hub, the ping ticker and shutdown.
//!
//! Bounds (issue 22): pings spend the frame budget like frames; what the WebSocket layer holds
//! unsent is bounded ([`max_write_buffer_len`]; past it only the latest pong is kept); entries
//! go out in slices of about [`SLICE_BYTES`]; a frame the WebSocket layer refuses gets a close
//! frame ([`refusal`]), and every close the relay sends is followed by a short wait for the
//! peer's ([`linger`]), so that it is not lost to a reset.
//!
//! History yields to live traffic (issue 22 item 3): entries older than the hub's cache are
//! read from storage through the relay's bounded read pool (`[limits] storage_readers` reads
//! at once, turns first come first served), one slice per turn and at most one read in flight
//! per connection ([`Replay`]). Proofs take turns at the same pool, up to 16 waiting per
//! connection ([`PROOFS_IN_FLIGHT`]). The loop keeps serving receipts, live topics and pings
//! while those reads wait for their turn.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{FuturesOrdered, SplitSink, SplitStream, StreamExt};
use futures_util::SinkExt;
use tokio::sync::{mpsc, Notify};

use super::access::{topic_rules, Access};
use super::hub::CachedEntry;
use super::rate::TokenBucket;
use super::reply::{ReplyTo, SendBudget};
use super::sequencer::PublishRequest;
use super::store::SqlHashes;
use super::Shared;
use crate::error::Error;
use crate::log::{Checkpoint, MerkleLog, SignedCheckpoint};
use crate::wire::{Action, Body, Frame, RelayConnection};

/// Close code and reason for a peer that does not keep up (RFC 6455 1008, policy violation).
const SLOW_CONSUMER: (u16, &str) = (1008, "SLOW_CONSUMER");
/// Close code and reason at shutdown (1001, going away).
const GOING_AWAY: (u16, &str) = (1001, "SHUTTING_DOWN");
/// Close code and reason for a WebSocket message over the frame bound.
const TOO_BIG: (u16, &str) = (1009, "LIMIT_EXCEEDED");
/// Close code and reason for a frame the WebSocket layer refuses (RFC 6455 7.4.1, 1002).
const PROTOCOL_ERROR: (u16, &str) = (1002, "MALFORMED");
/// Close code and reason for a text message that is not UTF-8 (RFC 6455 8.1, 1007).
const NOT_UTF8: (u16, &str) = (1007, "MALFORMED");
/// Close code and reason for a peer over its frame budget with pings (RFC 6455 1008).
pub(crate) const PINGS_RATE_LIMITED: (u16, &str) = (1008, "RATE_LIMITED");
/// Most entries pumped per topic per wake-up, so one busy topic cannot starve the rest.
const PUMP_BATCH: usize = 256;
/// Entries pumped per topic per wake-up at first (see [`Slice`]).
const FIRST_SLICE: usize = 16;
/// Bytes of entries one pump of one topic aims at: what a connection holds in entries read
/// (from storage) and framed at once.
const SLICE_BYTES: usize = 1024 * 1024;

/// How many entries one pump of one topic takes: from [`FIRST_SLICE`], doubled after a full
/// slice under half of [`SLICE_BYTES`] up to [`PUMP_BATCH`], halved after one over it. So a
/// replay of small entries soon moves 256 at a time, and one of 256 KiB ops holds a few MiB
/// rather than 64 (256 of them read and framed at once).
#[derive(Debug, Clone, Copy)]
struct Slice(usize);

impl Slice {
    /// Adapts to a pump that took `count` entries of `bytes` bytes in all.
    fn took(&mut self, count: usize, bytes: usize) {
        if bytes > SLICE_BYTES {
            self.0 = (self.0 / 2).max(1);
        } else if count == self.0 && bytes < SLICE_BYTES / 2 {
            self.0 = (self.0 * 2).min(PUMP_BATCH);
        }
    }
}
/// Bytes the WebSocket layer gathers before it writes to the socket.
pub(crate) const WRITE_BUFFER_LEN: usize = 16 * 1024;

/// The most bytes the WebSocket layer may hold unwritten for one connection whose largest
/// outbound message is `max_message` bytes: its write buffer, the message being written, and as
/// much again for pongs. Past it, tungstenite keeps only the latest pong (RFC 6455 5.5.3 allows
/// answering only the most recent ping), so a peer that pings and never reads cannot make the
/// relay queue pongs without bound (it is unlimited by default).
pub(crate) fn max_write_buffer_len(max_message: usize) -> usize {
    WRITE_BUFFER_LEN + 2 * (max_message + 16)
}

type Sink = SplitSink<WebSocket, Message>;

/// Why the loop ended.
enum End {
    PeerGone,
    Close(u16, &'static str),
    SlowConsumer,
}

/// How to close a connection whose read failed in the WebSocket layer: the close code and
/// reason for a message the layer refused (RFC 6455 7.4.1: 1009 over the size bound, 1002 a
/// protocol error such as an unmasked frame, a reserved bit, an unknown opcode or a control
/// frame over 125 bytes, 1007 a text message that is not UTF-8), `None` when the peer is gone
/// and there is nobody to tell.
pub(crate) fn refusal(error: &axum::Error) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<WsError>() {
            return match refused {
                WsError::Capacity(_) => Some(TOO_BIG),
                WsError::Utf8(_) => Some(NOT_UTF8),
                WsError::Protocol(
                    ProtocolError::ResetWithoutClosingHandshake
                    | ProtocolError::SendAfterClosing
                    | ProtocolError::ReceivedAfterClosing,
                ) => None,
                WsError::Protocol(_) => Some(PROTOCOL_ERROR),
                _ => None,
            };
        }
        source = cause.source();
    }
    None
}

/// Longest the relay keeps reading a connection it sent a close frame to.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// After the relay sent a close frame: reads and discards what the peer still sends, until its
/// close frame or the end of the stream, for at most [`CLOSE_LINGER`]. Closing a socket with
/// unread bytes makes the kernel reset the connection and drop what it has not sent yet, the
/// close frame among them; RFC 6455 7.1.1 has the server close TCP after the closing handshake.
/// (tungstenite answers no ping once a close frame is sent.)
pub(crate) async fn linger(stream: &mut SplitStream<WebSocket>) {
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Close(_) = message {
                break;
            }
        }
    })
    .await;
}

pub(crate) async fn run(socket: WebSocket, shared: Arc<Shared>, access: Access) {
    shared.metrics.connection_opened();
    serve(socket, &shared, access).await;
    shared.metrics.connection_closed();
    shared.release_slot();
}

struct Conn<'a> {
    shared: &'a Arc<Shared>,
    state: RelayConnection,
    sink: Sink,
    reply: ReplyTo,
    bucket: TokenBucket,
    send_timeout: Duration,
    access: Access,
    slice: Slice,
    /// The storage read of history in flight, if any (at most one per connection).
    replay: Option<Replay>,
    /// Proof requests being answered (each waits for its turn at the read pool), oldest first,
    /// at most [`PROOFS_IN_FLIGHT`].
    proofs: FuturesOrdered<ProofAnswer>,
}

/// Proof requests one connection may have waiting for storage at once; one more waits for the
/// oldest to be answered first.
const PROOFS_IN_FLIGHT: usize = 16;

/// The answer frame to a proof request, once read.
type ProofAnswer = Pin<Box<dyn Future<Output = Frame> + Send>>;

/// The answer to proof request `request_id`: `make` run over the topic's log as committed
/// with `tree_size` entries (which must not exceed the committed size), with a read connection
/// of the pool once it is this request's turn (so proofs share the bounded storage readers with
/// replay), or the refusal.
fn proof(
    shared: &Arc<Shared>,
    request_id: u32,
    topic: String,
    tree_size: u64,
    make: impl FnOnce(&MerkleLog<SqlHashes<'_>>) -> Result<Body, Error> + Send + 'static,
) -> ProofAnswer {
    let head = shared.hub.head(&topic);
    let reader = shared.reader.clone();
    Box::pin(async move {
        let body = if tree_size > head {
            Err(Error::BadInput(format!(
                "tree size {tree_size} is beyond the topic's {head} entries"
            )))
        } else {
            reader
                .read(move |pool| {
                    pool.with_hashes(&topic, |hashes| {
                        let log = MerkleLog::open(hashes, tree_size)?;
                        make(&log)
                    })
                })
                .await
                .and_then(|read| {
                    read.ok_or_else(|| Error::BadInput("the topic has no entries".into()))
                })
        };
        match body {
            Ok(body) => Frame::new(request_id, body),
            Err(error) => Frame::error(request_id, &error),
        }
    })
}

/// Waits for the oldest proof in flight, if any (never resolves without one).
async fn proven(proofs: &mut FuturesOrdered<ProofAnswer>) -> Frame {
    match proofs.next().await {
        Some(frame) => frame,
        None => std::future::pending().await,
    }
}

/// One slice of a topic's history being read from storage for this connection: it waits for
/// its turn at the read pool, then runs on a blocking thread. Dropping it (the connection
/// ends) gives up the turn.
struct Replay {
    /// The topic whose entries are read.
    topic: String,
    read: Pin<Box<dyn Future<Output = Result<Vec<CachedEntry>, Error>> + Send>>,
}

/// Waits for the read in flight, if any (never resolves without one).
async fn replayed(replay: &mut Option<Replay>) -> Result<Vec<CachedEntry>, Error> {
    match replay {
        Some(replay) => replay.read.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn serve(socket: WebSocket, shared: &Arc<Shared>, access: Access) -> End {
    let mut nonce = [0u8; 32];
    if getrandom::getrandom(&mut nonce).is_err() {
        return End::PeerGone;
    }
    let limits = &shared.config.limits;
    let (sink, mut stream) = socket.split();
    let (frames, mut outbound) = mpsc::channel::<Vec<u8>>(limits.send_queue.max(1));
    let wake = Arc::new(Notify::new());
    let budget = Arc::new(SendBudget::new(limits.send_queue_bytes));
    let reply = ReplyTo::new(frames, wake.clone(), budget);
    let mut conn = Conn {
        shared,
        state: {
            // Op signatures are checked by the verifier thread, in batches across connections.
            let mut state = RelayConnection::new(shared.identity.agent_id(), nonce);
            state.defer_op_signatures();
            state
        },
        sink,
        reply,
        bucket: TokenBucket::new(
            limits.connection_rate,
            limits.connection_burst,
            Instant::now(),
        ),
        send_timeout: limits.send_timeout(),
        access,
        slice: Slice(FIRST_SLICE),
        replay: None,
        proofs: FuturesOrdered::new(),
    };
    let mut shutdown = shared.closing.subscribe();
    let mut ping = tokio::time::interval(Duration::from_secs(limits.ping_interval_s.max(1)));
    ping.tick().await;
    let challenge = conn.state.challenge();
    let end = match conn.send_frame(&challenge).await {
        Err(end) => end,
        Ok(()) => loop {
            if conn.reply.overflowed.load(Ordering::Acquire) {
                break End::SlowConsumer;
            }
            let step = tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    // Flush answers already queued (receipts of committed ops), then leave.
                    while let Ok(bytes) = outbound.try_recv() {
                        conn.reply.budget.taken(bytes.len());
                        if let Err(end) = conn.send(Message::Binary(bytes.into())).await {
                            return conn.finish(end, &wake, &mut stream).await;
                        }
                    }
                    Err(End::Close(GOING_AWAY.0, GOING_AWAY.1))
                }
                Some(bytes) = outbound.recv() => conn.send_queued(bytes, &mut outbound).await,
                message = stream.next() => match message {
                    Some(Ok(Message::Binary(bytes))) => conn.receive(&bytes, &wake).await,
                    Some(Ok(Message::Text(_))) => {
                        let error = Error::BadInput("frames are binary WebSocket messages".into());
                        conn.refuse(0, &error).await
                    }
                    // Pings spend the frame budget: tungstenite answers each, so a flood of
                    // them would be work and memory the bucket does not see otherwise.
                    Some(Ok(Message::Ping(_))) => conn.ping_received(),
                    Some(Ok(Message::Pong(_))) => Ok(()),
                    Some(Err(error)) => match refusal(&error) {
                        Some((code, reason)) => Err(End::Close(code, reason)),
                        None => Err(End::PeerGone),
                    },
                    Some(Ok(Message::Close(_))) | None => Err(End::PeerGone),
                },
                () = wake.notified() => conn.pump(&wake).await,
                read = replayed(&mut conn.replay) => conn.replayed(read, &wake).await,
                frame = proven(&mut conn.proofs) => conn.send_frame(&frame).await,
                _ = ping.tick() => conn.send(Message::Ping(Vec::new().into())).await,
            };
            if let Err(end) = step {
                break end;
            }
        },
    };
    conn.finish(end, &wake, &mut stream).await
}

impl Conn<'_> {
    async fn finish(
        mut self,
        end: End,
        wake: &Arc<Notify>,
        stream: &mut SplitStream<WebSocket>,
    ) -> End {
        if let End::SlowConsumer = end {
            // Counted now, not once the closing handshake is over.
            self.shared.metrics.slow_consumer();
        }
        if let Some(agent) = self.state.agent() {
            self.shared.agents.unregister(agent, &self.reply);
        }
        let topics: Vec<String> = self.state.cursors().map(|(t, _)| t.to_owned()).collect();
        for topic in topics {
            self.shared.hub.unwatch(&topic, wake);
        }
        let close = match end {
            End::Close(code, reason) => Some((code, reason)),
            End::SlowConsumer => Some(SLOW_CONSUMER),
            End::PeerGone => None,
        };
        if let Some((code, reason)) = close {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let sent = tokio::time::timeout(
                Duration::from_secs(1),
                self.sink.send(Message::Close(Some(frame))),
            )
            .await;
            if matches!(sent, Ok(Ok(()))) {
                linger(stream).await;
            }
        }
        end
    }

    async fn send(&mut self, message: Message) -> Result<(), End> {
        match tokio::time::timeout(self.send_timeout, self.sink.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::PeerGone),
            Err(_) => Err(End::SlowConsumer),
        }
    }

    /// Writes `message` into the socket's buffer without flushing (see [`Conn::flush`]).
    async fn feed(&mut self, message: Message) -> Result<(), End> {
        match tokio::time::timeout(self.send_timeout, self.sink.feed(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::PeerGone),
            Err(_) => Err(End::SlowConsumer),
        }
    }

    async fn flush(&mut self) -> Result<(), End> {
        match tokio::time::timeout(self.send_timeout, self.sink.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::PeerGone),
            Err(_) => Err(End::SlowConsumer),
        }
    }

    /// Sends `first` and whatever else is queued for the peer (receipts, errors, events) with
    /// one flush: under load one socket write carries many answers.
    async fn send_queued(
        &mut self,
        first: Vec<u8>,
        queue: &mut mpsc::Receiver<Vec<u8>>,
    ) -> Result<(), End> {
        self.reply.budget.taken(first.len());
        self.feed(Message::Binary(first.into())).await?;
        for _ in 0..PUMP_BATCH {
            match queue.try_recv() {
                Ok(bytes) => {
                    self.reply.budget.taken(bytes.len());
                    self.feed(Message::Binary(bytes.into())).await?;
                }
                Err(_) => break,
            }
        }
        self.flush().await
    }

    async fn send_frame(&mut self, frame: &Frame) -> Result<(), End> {
        if let Body::Error { code, .. } = &frame.body {
            self.shared.metrics.refused(code);
        }
        match frame.encode() {
            Ok(bytes) => self.send(Message::Binary(bytes.into())).await,
            Err(error) => {
                tracing::error!(%error, "could not encode a frame");
                Ok(())
            }
        }
    }

    /// A ping from the peer takes a token of the frame budget; without one, the connection
    /// closes 1008 `RATE_LIMITED` (a ping has no request id to answer an error frame to).
    fn ping_received(&mut self) -> Result<(), End> {
        if self.bucket.take(Instant::now()) {
            return Ok(());
        }
        self.shared.metrics.refused(PINGS_RATE_LIMITED.1);
        Err(End::Close(PINGS_RATE_LIMITED.0, PINGS_RATE_LIMITED.1))
    }

    async fn refuse(&mut self, request_id: u32, error: &Error) -> Result<(), End> {
        self.send_frame(&Frame::error(request_id, error)).await
    }

    async fn receive(&mut self, bytes: &[u8], wake: &Arc<Notify>) -> Result<(), End> {
        let now = Instant::now();
        if !self.bucket.take(now) {
            let request_id = match bytes {
                [_, _, a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
                _ => 0,
            };
            return self
                .refuse(
                    request_id,
                    &Error::RateLimited("too many frames on this connection"),
                )
                .await;
        }
        let action = self.state.receive(bytes);
        // Owned topics (PROTOCOL.md 10.5): refused here, before anything is read or sequenced.
        let agent = self.state.agent();
        let now_ms = super::now_ms();
        if let Some((request_id, error)) =
            self.access
                .refusal(agent, &action, now_ms, &self.shared.hub)
        {
            self.state.cancel_subscription(&action);
            return self.refuse(request_id, &error).await;
        }
        match action {
            Action::Send(frame) => {
                match &frame.body {
                    Body::Unsubscribed { topic } => self.shared.hub.unwatch(topic, wake),
                    Body::Welcome { agent } => {
                        self.shared.agents.register(*agent, self.reply.clone());
                    }
                    _ => {}
                }
                self.send_frame(&frame).await
            }
            Action::Publish { request_id, op } | Action::PublishUnverified { request_id, op } => {
                if self.shared.stopping.load(Ordering::Acquire) {
                    let error = Error::Unavailable("the relay is shutting down".into());
                    return self.refuse(request_id, &error).await;
                }
                if !self.shared.agent_buckets.take(op.author(), now) {
                    let error = Error::RateLimited("too many publishes by this agent");
                    return self.refuse(request_id, &error).await;
                }
                let request = PublishRequest {
                    op,
                    request_id,
                    reply: self.reply.clone(),
                    received_at: now,
                };
                // On a cluster, a publish for a topic another frontend owns goes there.
                let request = match &self.shared.cluster {
                    Some(cluster) => match cluster.route(request) {
                        Some(here) => here,
                        None => return Ok(()),
                    },
                    None => request,
                };
                match self.shared.sequencer.submit(request) {
                    Ok(()) => Ok(()),
                    Err(error) => self.refuse(request_id, &error).await,
                }
            }
            Action::Subscribe {
                request_id, topic, ..
            } => {
                let head = self.shared.hub.watch(&topic, wake);
                match self.state.subscribed(&topic, request_id, head) {
                    Some(frame) => {
                        self.send_frame(&frame).await?;
                        wake.notify_one();
                        Ok(())
                    }
                    None => Ok(()),
                }
            }
            Action::Checkpoint { request_id, topic } => {
                let (tree_size, root) = self.shared.hub.tree_head(&topic);
                let checkpoint = Checkpoint {
                    topic,
                    tree_size,
                    root,
                    time_ms: super::now_ms(),
                };
                let frame = SignedCheckpoint::sign(&self.shared.identity, checkpoint).map(|c| {
                    Frame::new(
                        request_id,
                        Body::Checkpoint {
                            checkpoint: c.as_bytes().to_vec(),
                        },
                    )
                });
                self.answer(request_id, frame).await
            }
            Action::InclusionProof {
                request_id,
                topic,
                seq,
                tree_size,
            } => {
                let answer = proof(self.shared, request_id, topic, tree_size, move |log| {
                    let proof = log.inclusion_proof(seq, tree_size)?;
                    Ok(Body::InclusionProof {
                        proof: proof.encode(),
                    })
                });
                self.prove(answer).await
            }
            Action::ConsistencyProof {
                request_id,
                topic,
                old_size,
                new_size,
            } => {
                let answer = proof(self.shared, request_id, topic, new_size, move |log| {
                    let proof = log.consistency_proof(old_size, new_size)?;
                    Ok(Body::ConsistencyProof {
                        proof: proof.encode(),
                    })
                });
                self.prove(answer).await
            }
        }
    }

    async fn answer(&mut self, request_id: u32, frame: Result<Frame, Error>) -> Result<(), End> {
        match frame {
            Ok(frame) => self.send_frame(&frame).await,
            Err(error) => self.refuse(request_id, &error).await,
        }
    }

    /// Queues a proof's answer: it is sent when read, while the loop goes on serving receipts
    /// and entries. With [`PROOFS_IN_FLIGHT`] already waiting, the oldest is answered first.
    async fn prove(&mut self, answer: ProofAnswer) -> Result<(), End> {
        if self.proofs.len() >= PROOFS_IN_FLIGHT {
            if let Some(frame) = self.proofs.next().await {
                self.send_frame(&frame).await?;
            }
        }
        self.proofs.push_back(answer);
        Ok(())
    }

    /// Sends every subscribed topic the entries it is owed from the hub's cache, a bounded
    /// number per topic, and starts a storage read for the first topic owed older entries
    /// (unless one is in flight); wakes itself again when more cached entries remain.
    async fn pump(&mut self, wake: &Arc<Notify>) -> Result<(), End> {
        let cursors: Vec<(String, u64)> = self
            .state
            .cursors()
            .map(|(t, c)| (t.to_owned(), c))
            .collect();
        let mut more = false;
        let now_ms = super::now_ms();
        for (topic, cursor) in cursors {
            // A capability that let the connection subscribe to an owned topic may have expired
            // since: then the subscription ends here, before anything more is read for it.
            // Entries owed from before a revocation or the topic's return to private are
            // `deliver`'s to send, and its cut's to end.
            let agent = self.state.agent();
            let public = Access::public_at(&topic_rules(&self.shared.hub, &topic), cursor);
            if let Some(error) = self
                .access
                .read_refusal(agent, &topic, now_ms, None, public)
            {
                self.shared.hub.unwatch(&topic, wake);
                if let Some(request_id) = self.state.end_subscription(&topic) {
                    self.send_frame(&Frame::error(request_id, &error)).await?;
                }
                continue;
            }
            let limit = self.slice.0;
            match self.shared.hub.read(&topic, cursor, limit) {
                Ok((entries, head)) => {
                    let ended = self.deliver(&topic, cursor, &entries, now_ms, wake).await?;
                    if !ended && self.state.cursor(&topic).is_some_and(|next| next < head) {
                        more = true;
                    }
                }
                // Older than the cache: storage, in turn; `replayed` wakes the pump again.
                Err(head) => self.replay(&topic, cursor, head, limit),
            }
        }
        // One flush for everything fed above.
        self.flush().await?;
        if more {
            wake.notify_one();
        }
        Ok(())
    }

    /// Feeds the entries of `topic` among `entries` that are owed next (the subscription's
    /// cursor was `cursor` when they were read), as few `entries` frames as fit, without
    /// flushing. Returns whether the subscription ended: a revocation in the topic, or its
    /// owner's return to private, took the connection's read right (PROTOCOL.md 10.7, 10.10).
    async fn deliver(
        &mut self,
        topic: &str,
        cursor: u64,
        entries: &[CachedEntry],
        now_ms: u64,
        wake: &Arc<Notify>,
    ) -> Result<bool, End> {
        // A revocation or policy in the topic is recorded before its entry reaches the hub, so
        // it is known here for every entry just read: none from its seq on goes out, and the
        // subscription ends once those before it are delivered.
        let rules = topic_rules(&self.shared.hub, topic);
        let cut = self.access.cut(self.state.agent(), topic, now_ms, &rules);
        let entries = match &cut {
            Some((since, _)) => &entries[..entries.partition_point(|e| e.seq < *since)],
            None => entries,
        };
        let bytes = entries.iter().map(|e| e.bytes.len()).sum();
        self.slice.took(entries.len(), bytes);
        // Several entries owed at once go out in one `entries` frame: one message for the
        // peer to take in instead of one per entry.
        let frames = self
            .state
            .deliver_run(topic, entries.iter().map(|e| (e.seq, &e.bytes[..])))
            .map_err(|error| {
                tracing::error!(%error, "could not frame entries");
                End::Close(1011, "LIMIT_EXCEEDED")
            })?;
        // Fan-out lag: one clock reading, one observation per run of entries committed
        // together (a hundred subscribers of a busy topic make this per-entry work).
        let end = self.state.cursor(topic).unwrap_or(cursor);
        let delivered =
            entries.partition_point(|e| e.seq < cursor)..entries.partition_point(|e| e.seq < end);
        let now = Instant::now();
        for run in entries[delivered].chunk_by(|a, b| a.committed_at == b.committed_at) {
            if let Some(committed_at) = run[0].committed_at {
                let lag = now.saturating_duration_since(committed_at);
                self.shared.metrics.fanout_lag(lag, run.len() as u64);
            }
        }
        for bytes in frames {
            self.feed(Message::Binary(bytes.into())).await?;
        }
        if let Some((since, error)) = cut {
            if self.state.cursor(topic).is_some_and(|next| next >= since) {
                self.shared.hub.unwatch(topic, wake);
                if let Some(request_id) = self.state.end_subscription(topic) {
                    self.send_frame(&Frame::error(request_id, &error)).await?;
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Starts reading up to `limit` entries of `topic` from `cursor` on, older than the hub's
    /// cache, from storage (unless a read is in flight already): only below `head`, the hub's
    /// head, since storage may already hold committed entries not yet durable (announced).
    fn replay(&mut self, topic: &str, cursor: u64, head: u64, limit: usize) {
        let limit = head.saturating_sub(cursor).min(limit as u64) as usize;
        if self.replay.is_some() || limit == 0 {
            return;
        }
        let pool = self.shared.reader.clone();
        let owned = topic.to_owned();
        let read = async move {
            let rows = pool
                .read(move |pool| pool.entries(&owned, cursor, limit))
                .await?;
            Ok(rows
                .into_iter()
                .map(|(seq, bytes)| CachedEntry {
                    seq,
                    bytes: Arc::from(bytes),
                    committed_at: None,
                })
                .collect())
        };
        self.replay = Some(Replay {
            topic: topic.to_owned(),
            read: Box::pin(read),
        });
    }

    /// The read in flight ended with `read`: delivers what is owed of it and wakes the pump to
    /// go on (another slice, or another topic's history).
    async fn replayed(
        &mut self,
        read: Result<Vec<CachedEntry>, Error>,
        wake: &Arc<Notify>,
    ) -> Result<(), End> {
        let Some(Replay { topic, .. }) = self.replay.take() else {
            return Ok(());
        };
        let entries = read.map_err(|error| {
            tracing::error!(%error, "replay failed");
            End::Close(1011, "UNAVAILABLE")
        })?;
        // The subscription may have ended or been replaced since: `deliver` sends only what
        // is owed now.
        let Some(cursor) = self.state.cursor(&topic) else {
            wake.notify_one();
            return Ok(());
        };
        self.deliver(&topic, cursor, &entries, super::now_ms(), wake)
            .await?;
        self.flush().await?;
        // Nothing read (storage behind the hub's head) waits for the topic's next entry
        // rather than asking again at once.
        if !entries.is_empty() {
            wake.notify_one();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_grow_for_small_entries_and_shrink_for_large_ones() {
        let mut slice = Slice(FIRST_SLICE);
        for _ in 0..10 {
            slice.took(slice.0, slice.0 * 300);
        }
        assert_eq!(slice.0, PUMP_BATCH);
        slice.took(10, 3_000); // not a full slice: the topic had no more
        assert_eq!(slice.0, PUMP_BATCH);
        for _ in 0..20 {
            slice.took(slice.0, slice.0 * 256 * 1024);
        }
        assert_eq!(slice.0, 4, "four 256 KiB entries make the slice's bytes");
        assert!(slice.0 * 256 * 1024 <= SLICE_BYTES);
    }
}
