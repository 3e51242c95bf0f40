//! The client side of the relay protocol as a sans-IO state machine.
//!
//! A [`Session`] is what a web app, an edge function or an agent keeps while it talks to one
//! relay. It does no I/O and reads no clock: the transport tells it when a connection opened
//! ([`Session::connected`]) or dropped ([`Session::disconnected`]) and hands it every received
//! binary message ([`Session::receive`], or [`Session::receive_batch`] for several at once) with
//! the current time; the session answers with frames to send ([`Session::take_outgoing`]) and
//! [`SessionEvent`]s ([`Session::take_events`]).
//!
//! What it guarantees to its caller:
//!
//! - **Authentication.** It answers the relay's challenge with a hello signed by its identity,
//!   and pins the relay key of the first challenge: a later connection that presents another key
//!   is refused (nothing is sent) and reported.
//! - **Verified delivery.** An entry is surfaced as [`SessionEvent::Entry`] only after its author
//!   signature verified (batched with [`crate::op::verify_ops`] when several arrive together), its
//!   topic and seq are the subscription's and it is exactly the next seq (no gap, no duplicate).
//!   Entries of a topic followed from seq 0 also go through the topic's [`LogFollower`], which
//!   recomputes the Merkle tree and checks every signed receipt and checkpoint against it; its
//!   [`crate::log::Evidence`] comes out as [`SessionEvent::Misbehaviour`].
//! - **Replica.** Verified entries of a topic followed from seq 0 are applied to the topic's
//!   [`Replica`]; its events (among them compensations) come out as [`SessionEvent::Replica`].
//! - **Exactly-once publishing.** Each op gets the next counter of its author in its topic and is
//!   kept until the relay acknowledges it; after a reconnect every unacknowledged op is sent again
//!   with the *same* bytes (same counter), which the relay answers with the original receipt, so
//!   an op is never sequenced twice. A refusal with a retryable code ([`RETRYABLE_CODES`]) is
//!   retried with backoff, with the same bytes, on the live connection; every op settles: it is
//!   acknowledged, refused for good, or given up after the publish timeout
//!   ([`Session::set_publish_timeout_ms`], [`SessionEvent::TimedOut`]).
//! - **Per-topic order.** Ops of one topic go to the relay in counter order: an op waiting for
//!   its retry holds back the later ops of its topic, and after a retryable refusal the topic
//!   sends one op at a time until a receipt arrives. The relay refuses a counter below the
//!   author's last sequenced one (`COUNTER_STALE`), so a later op overtaking a refused one
//!   would make the refused one impossible to publish with its bytes.
//! - **Resumption.** [`Session::export_state`] gives canonical bytes (cursors, replica snapshots,
//!   the last verified signed head, unacknowledged ops, counters, the pinned relay key) from which
//!   [`Session::restore`] resumes after a page reload, subscribing again from each cursor; the
//!   state keeps each topic's Merkle frontier, so signed heads are still checked after it.

mod audit;
mod bodies;
mod compare;
mod events;
mod gossip;
mod persist;
mod publish;
mod pushed;
mod receive;

pub use audit::MAX_HELD_RECEIPTS;
pub use bodies::check_publish_body;
pub use compare::{Divergence, RelayComparison, MAX_COMPARED_OPS, MAX_COMPARED_RELAYS};
pub use events::{Fault, SessionEvent};
pub use gossip::{Gossip, GOSSIP_KIND, GOSSIP_VERSION, MAX_UNACKNOWLEDGED};
pub use persist::{MAX_STATE_ITEMS, STATE_VERSION};
pub use publish::{
    DEFAULT_PUBLISH_TIMEOUT_MS, RETRYABLE_CODES, RETRY_MAX_DELAY_MS, RETRY_MIN_DELAY_MS,
};
pub use pushed::MAX_RECENT_EVENTS;

use std::collections::VecDeque;

use crate::sorted_map::{SortedMap, SortedSet};

use crate::error::{Error, Result};
use crate::identity::{AgentId, Identity, KeyCache};
use crate::log::{LogFollower, SignedTreeHead};
use crate::op::{validate_topic, OpDraft, OpId, SignedOp};
use crate::replica::{Replica, ReplicaConfig};
use crate::wire::{Body, Frame};

/// How long an acknowledged op may stay absent from a subscribed topic whose served log has
/// passed its seq before it is reported (see [`Session::tick`]), in milliseconds.
pub const DEFAULT_ACK_DEADLINE_MS: u64 = 30_000;

/// How many times a subscription is restarted from the same cursor after a gap.
pub const MAX_GAP_RETRIES: u32 = 3;

/// Where the session is in the connection handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No transport.
    Disconnected,
    /// Connected, waiting for the relay's challenge.
    AwaitingChallenge,
    /// Hello sent, waiting for the welcome.
    AwaitingWelcome,
    /// Authenticated: subscriptions and publishes flow.
    Live,
    /// The relay presented another key than the pinned one; nothing is sent on this connection.
    Refused,
}

/// An op of ours waiting for its receipt.
#[derive(Debug, Clone)]
struct Unacked {
    op: SignedOp,
    /// The request id of its latest publish frame on the live connection (0: not sent yet).
    request_id: u32,
    /// When the session took it, on its clock (0: not known yet; set by the next call that
    /// brings the time). The publish timeout counts from here.
    since_ms: u64,
    /// Retryable refusals so far.
    attempts: u32,
    /// After a retryable refusal: not sent again before this time.
    retry_at_ms: Option<u64>,
    /// The last retryable refusal: code and message.
    last_refusal: Option<(String, String)>,
}

impl Unacked {
    fn new(op: SignedOp, since_ms: u64) -> Self {
        Unacked {
            op,
            request_id: 0,
            since_ms,
            attempts: 0,
            retry_at_ms: None,
            last_refusal: None,
        }
    }
}

/// An acknowledged op not yet seen in the topic's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Awaited {
    op_id: OpId,
    /// When the session first saw the served log pass its seq without it (0: not yet).
    overdue_since_ms: u64,
}

/// One followed topic.
#[derive(Debug, Clone)]
struct Topic {
    /// The next seq owed (everything before was verified and delivered).
    cursor: u64,
    /// The request id of the live subscription (0: none on this connection).
    request_id: u32,
    /// Present when the topic is followed from seq 0.
    follower: Option<LogFollower>,
    /// Present when the caller asked for a replica.
    replica: Option<Replica>,
    /// The largest head verified so far (possibly restored).
    verified_head: Option<SignedTreeHead>,
    /// Last counter per author seen since the session followed this topic.
    last_counter: SortedMap<AgentId, u64>,
    /// Our acknowledged ops by seq, until their entry is seen.
    awaited: SortedMap<u64, Awaited>,
    /// Subscriptions restarted at this cursor after a gap.
    gap_retries: u32,
    /// Paused by the caller ([`Session::pause`]): kept, but not subscribed on the relay.
    paused: bool,
    /// Pushed events ([`pushed`]) of entries the replica has not reached, by seq.
    pushed: SortedMap<u64, Vec<Vec<u8>>>,
    /// Our compensations the replica produced, by seq, over the last entries it applied.
    recent_ours: SortedMap<u64, Vec<Vec<u8>>>,
    /// The first seq the replica applied in this session (`recent_ours` starts there).
    first_applied: Option<u64>,
}

impl Topic {
    fn new(
        topic: &str,
        from: u64,
        replica: Option<ReplicaConfig>,
        relay: Option<AgentId>,
    ) -> Result<Self> {
        let follower = match (from, relay) {
            (0, Some(relay)) => Some(LogFollower::new(relay, topic)?),
            _ => None,
        };
        let replica = match replica {
            Some(config) if from == 0 => Some(Replica::new(topic, config)?),
            _ => None,
        };
        Ok(Topic {
            cursor: from,
            request_id: 0,
            follower,
            replica,
            verified_head: None,
            last_counter: SortedMap::new(),
            awaited: SortedMap::new(),
            gap_retries: 0,
            paused: false,
            pushed: SortedMap::new(),
            recent_ours: SortedMap::new(),
            first_applied: None,
        })
    }
}

/// The client side of one relay relationship (see the module docs).
#[derive(Debug)]
pub struct Session {
    identity: Identity,
    relay: Option<AgentId>,
    phase: Phase,
    next_request_id: u32,
    topics: SortedMap<String, Topic>,
    /// Next counter per topic for our own ops.
    counters: SortedMap<String, u64>,
    /// Our unacknowledged ops, in publishing order.
    unacked: Vec<Unacked>,
    /// Topics that had a retryable refusal and no receipt since: one op in flight at a time.
    careful: SortedSet<String>,
    /// Ops given up after the publish timeout while in flight on this connection, by request
    /// id: a late receipt is still reported (bounded, forgotten with the connection).
    abandoned: SortedMap<u32, (String, OpId)>,
    /// The latest time the caller gave (0: none yet).
    clock_ms: u64,
    publish_timeout_ms: u64,
    /// Receipts of our ops kept for auditing against later heads ([`audit`]).
    held: audit::HeldReceipts,
    /// Request ids of checkpoint requests in flight, by topic.
    checkpoint_requests: SortedMap<u32, String>,
    ack_deadline_ms: u64,
    outgoing: VecDeque<Vec<u8>>,
    events: VecDeque<SessionEvent>,
    /// Decompressed keys of the authors seen, for batch verification (a cache, not state).
    author_keys: KeyCache,
}

impl Session {
    /// A fresh session for `identity`, trusting the first relay key it meets.
    pub fn new(identity: Identity) -> Self {
        Session {
            identity,
            relay: None,
            phase: Phase::Disconnected,
            next_request_id: 1,
            topics: SortedMap::new(),
            counters: SortedMap::new(),
            unacked: Vec::new(),
            careful: SortedSet::new(),
            abandoned: SortedMap::new(),
            clock_ms: 0,
            publish_timeout_ms: DEFAULT_PUBLISH_TIMEOUT_MS,
            held: audit::HeldReceipts::default(),
            checkpoint_requests: SortedMap::new(),
            ack_deadline_ms: DEFAULT_ACK_DEADLINE_MS,
            outgoing: VecDeque::new(),
            events: VecDeque::new(),
            author_keys: KeyCache::default(),
        }
    }

    /// A fresh session that only talks to the relay `relay`.
    pub fn with_relay(identity: Identity, relay: AgentId) -> Self {
        let mut session = Session::new(identity);
        session.relay = Some(relay);
        session
    }

    /// Sets how long an acknowledged op may be missing before [`Session::tick`] reports it.
    pub fn set_ack_deadline_ms(&mut self, ms: u64) {
        self.ack_deadline_ms = ms;
    }

    /// Sets how long an op may wait for its receipt before the session gives it up
    /// ([`SessionEvent::TimedOut`]), counted from when it was published or, for ops restored
    /// from state, from the first call after the restore that brings the time. Default:
    /// [`DEFAULT_PUBLISH_TIMEOUT_MS`].
    pub fn set_publish_timeout_ms(&mut self, ms: u64) {
        self.publish_timeout_ms = ms;
    }

    /// Our agent id.
    pub fn agent(&self) -> AgentId {
        self.identity.agent_id()
    }

    /// The pinned relay key, once known.
    pub fn relay(&self) -> Option<&AgentId> {
        self.relay.as_ref()
    }

    /// Where the handshake is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The next seq owed on `topic` (everything before it was verified).
    pub fn cursor(&self, topic: &str) -> Option<u64> {
        self.topics.get(topic).map(|t| t.cursor)
    }

    /// The topic's replica, when it has one.
    pub fn replica(&self, topic: &str) -> Option<&Replica> {
        self.topics.get(topic)?.replica.as_ref()
    }

    /// The largest signed head verified for `topic`.
    pub fn verified_head(&self, topic: &str) -> Option<&SignedTreeHead> {
        self.topics.get(topic)?.verified_head.as_ref()
    }

    /// The ids of our ops not yet acknowledged, in publishing order.
    pub fn unacknowledged(&self) -> Vec<OpId> {
        self.unacked.iter().map(|u| u.op.id()).collect()
    }

    /// Frames to send, in order (drains them).
    pub fn take_outgoing(&mut self) -> Vec<Vec<u8>> {
        self.outgoing.drain(..).collect()
    }

    /// Events, in order (drains them).
    pub fn take_events(&mut self) -> Vec<SessionEvent> {
        self.events.drain(..).collect()
    }

    /// A transport connected: the relay's challenge is expected next.
    pub fn connected(&mut self) {
        self.phase = Phase::AwaitingChallenge;
        self.outgoing.clear();
        self.forget_connection();
    }

    /// The transport dropped. Unacknowledged ops are kept and sent again on the next connection.
    pub fn disconnected(&mut self) {
        self.phase = Phase::Disconnected;
        self.outgoing.clear();
        self.forget_connection();
    }

    fn forget_connection(&mut self) {
        for topic in self.topics.values_mut() {
            topic.request_id = 0;
        }
        for unacked in &mut self.unacked {
            unacked.request_id = 0;
        }
        self.abandoned.clear();
        self.checkpoint_requests.clear();
        self.held.forget_connection();
    }

    /// Follows `topic` from seq `from` (ignored when the topic is already followed: it resumes
    /// from its cursor, also after [`Session::pause`]). With `replica`, verified entries are
    /// applied to a replica of the topic, which needs the whole log: `from` must then be 0.
    ///
    /// Errors: `BAD_TOPIC`; `BAD_INPUT` for a replica asked from a seq other than 0.
    pub fn subscribe(&mut self, topic: &str, from: u64, replica: bool) -> Result<()> {
        let config = replica.then(ReplicaConfig::default);
        self.subscribe_with(topic, from, config)
    }

    /// Like [`Session::subscribe`], with the topic's replica built from `config` (its issuers,
    /// election candidates, leases…) when one is given: every participant of a topic must use
    /// the same config to reach the same state.
    ///
    /// Errors: `BAD_TOPIC`; `BAD_INPUT` for a replica asked from a seq other than 0; the
    /// replica's config errors.
    pub fn subscribe_with(
        &mut self,
        topic: &str,
        from: u64,
        replica: Option<ReplicaConfig>,
    ) -> Result<()> {
        validate_topic(topic)?;
        if replica.is_some() && from != 0 {
            return Err(Error::BadInput(
                "a replica folds the whole log: subscribe from seq 0".into(),
            ));
        }
        match self.topics.get_mut(topic) {
            Some(followed) => followed.paused = false,
            None => {
                let followed = Topic::new(topic, from, replica, self.relay)?;
                self.topics.insert(topic.to_owned(), followed);
            }
        }
        if self.phase == Phase::Live {
            self.send_subscribe(topic)?;
        }
        Ok(())
    }

    /// Stops the relay sending `topic`'s entries while keeping everything the session knows of
    /// it (cursor, replica, Merkle tree): backpressure for a caller that cannot keep up.
    /// Entries already on their way are dropped unseen; [`Session::resume`] asks again from the
    /// cursor, so none is lost. A paused topic stays paused across reconnections. Nothing
    /// happens for a topic that is not followed or already paused.
    ///
    /// Errors: `BAD_TOPIC`.
    pub fn pause(&mut self, topic: &str) -> Result<()> {
        validate_topic(topic)?;
        let Some(followed) = self.topics.get_mut(topic) else {
            return Ok(());
        };
        if followed.paused {
            return Ok(());
        }
        followed.paused = true;
        let subscribed = std::mem::take(&mut followed.request_id) != 0;
        if subscribed && self.phase == Phase::Live {
            let id = self.request_id();
            let topic = topic.to_owned();
            self.send(Frame::new(id, Body::Unsubscribe { topic }))?;
        }
        Ok(())
    }

    /// Follows a paused topic again from its cursor. Nothing happens for a topic that is not
    /// followed or not paused.
    ///
    /// Errors: `BAD_TOPIC`.
    pub fn resume(&mut self, topic: &str) -> Result<()> {
        validate_topic(topic)?;
        let Some(followed) = self.topics.get_mut(topic) else {
            return Ok(());
        };
        if !followed.paused {
            return Ok(());
        }
        followed.paused = false;
        if self.phase == Phase::Live {
            self.send_subscribe(topic)?;
        }
        Ok(())
    }

    /// Whether `topic` is followed and paused ([`Session::pause`]).
    pub fn is_paused(&self, topic: &str) -> bool {
        self.topics.get(topic).is_some_and(|t| t.paused)
    }

    /// Stops following `topic` (its state is dropped).
    ///
    /// Errors: `BAD_TOPIC`.
    pub fn unsubscribe(&mut self, topic: &str) -> Result<()> {
        validate_topic(topic)?;
        if self.topics.remove(topic).is_some() && self.phase == Phase::Live {
            let id = self.request_id();
            self.send(Frame::new(
                id,
                Body::Unsubscribe {
                    topic: topic.to_owned(),
                },
            ))?;
        }
        Ok(())
    }

    /// Signs an op with the next counter of this topic and queues it for publishing (sent now
    /// when live, else on the next connection). The counter is `max(last + 1, now_ms)`, so a
    /// session that lost its state still never reuses a counter (as long as the clock does not
    /// run backwards past the last one).
    ///
    /// Errors: `BAD_INPUT` for a body replicas cannot read under a replica kind or `doc.update`
    /// ([`check_publish_body`]; nothing is signed or queued); the op-signing codes of
    /// [`SignedOp::sign`]; `LIMIT_EXCEEDED` past [`MAX_UNACKNOWLEDGED`] ops awaiting their
    /// receipt.
    pub fn publish(
        &mut self,
        topic: &str,
        kind: &str,
        body: &[u8],
        deps: Vec<OpId>,
        now_ms: u64,
    ) -> Result<SignedOp> {
        check_publish_body(kind, body)?;
        self.check_unacknowledged_room()?;
        self.advance_clock(now_ms);
        let counter = self.counters.get(topic).copied().unwrap_or(0).max(now_ms);
        let op = SignedOp::sign(
            &self.identity,
            OpDraft {
                topic: topic.to_owned(),
                kind: kind.to_owned(),
                counter,
                time_ms: now_ms,
                deps,
                body: body.to_vec(),
            },
        )?;
        self.counters.insert(topic.to_owned(), counter + 1);
        self.unacked.push(Unacked::new(op.clone(), now_ms));
        self.send_due()?;
        Ok(op)
    }

    /// Asks the relay for the topic's latest signed checkpoint (checked when it arrives).
    ///
    /// Errors: `BAD_TOPIC`.
    pub fn request_checkpoint(&mut self, topic: &str) -> Result<()> {
        validate_topic(topic)?;
        if self.phase == Phase::Live {
            let id = self.request_id();
            self.checkpoint_requests.insert(id, topic.to_owned());
            self.send(Frame::new(
                id,
                Body::GetCheckpoint {
                    topic: topic.to_owned(),
                },
            ))?;
        }
        Ok(())
    }

    /// Time passes: sends ops whose retry is due, gives up ops past the publish timeout and
    /// reports acknowledged ops absent from their topic past the deadline.
    pub fn tick(&mut self, now_ms: u64) {
        self.advance_clock(now_ms);
        self.expire_unacked(now_ms);
        // Encoding a publish frame of an op that decoded cannot fail; if it did, the op stays
        // queued and goes out on the next connection.
        let _ = self.send_due();
        let deadline = self.ack_deadline_ms;
        let mut faults = Vec::new();
        for (name, topic) in &mut self.topics {
            let cursor = topic.cursor;
            let mut overdue = Vec::new();
            for (seq, awaited) in topic.awaited.iter_mut() {
                if *seq >= cursor {
                    continue;
                }
                // The served log passed `seq` without our op (an entry that matched removed it).
                if awaited.overdue_since_ms == 0 {
                    awaited.overdue_since_ms = now_ms.max(1);
                }
                if now_ms.saturating_sub(awaited.overdue_since_ms) >= deadline {
                    overdue.push(*seq);
                }
            }
            for seq in overdue {
                if let Some(awaited) = topic.awaited.remove(&seq) {
                    faults.push((
                        name.clone(),
                        Fault::AcknowledgedOpMissing {
                            op_id: awaited.op_id,
                            seq,
                        },
                    ));
                }
            }
        }
        for (topic, fault) in faults {
            self.events
                .push_back(SessionEvent::Misbehaviour { topic, fault });
        }
    }

    fn misbehaviour(&mut self, topic: &str, fault: Fault) {
        self.events.push_back(SessionEvent::Misbehaviour {
            topic: topic.to_owned(),
            fault,
        });
    }

    /// Asks again from the cursor after a gap, a few times per cursor (a relay that keeps
    /// skipping is reported each time and then left alone until the next connection).
    fn gap_retry(&mut self, name: &str) -> Result<()> {
        let Some(topic) = self.topics.get_mut(name) else {
            return Ok(());
        };
        if topic.gap_retries >= MAX_GAP_RETRIES || self.phase != Phase::Live {
            return Ok(());
        }
        topic.gap_retries += 1;
        self.send_subscribe(name)
    }

    fn send_subscribe(&mut self, name: &str) -> Result<()> {
        let id = self.request_id();
        let Some(topic) = self.topics.get_mut(name) else {
            return Ok(());
        };
        topic.request_id = id;
        let from_seq = topic.cursor;
        self.send(Frame::new(
            id,
            Body::Subscribe {
                topic: name.to_owned(),
                from_seq,
            },
        ))
    }

    fn send(&mut self, frame: Frame) -> Result<()> {
        self.outgoing.push_back(frame.encode()?);
        Ok(())
    }

    fn request_id(&mut self) -> u32 {
        let id = self.next_request_id;
        self.next_request_id = self.next_request_id.checked_add(1).unwrap_or(1);
        id
    }
}

#[cfg(test)]
mod tests;
