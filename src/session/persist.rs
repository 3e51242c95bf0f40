//! The session's persistable state as canonical bytes (PROTOCOL.md section 8.9).
//!
//! ```text
//! state   = version (1) = 0x01 ‖ agent (32) ‖ relay flag (1) [‖ relay (32)]
//!           ‖ count (4) ‖ { topic ‖ next counter (8) }            counters, topic order
//!           ‖ count (4) ‖ { length (4) ‖ signed op }              unacknowledged, publish order
//!           ‖ count (4) ‖ { topic-state }                         topic order
//! topic-state = topic ‖ cursor (8)
//!           ‖ replica flag (1) [‖ length (4) ‖ replica snapshot]
//!           ‖ head kind (1: 0 none, 1 receipt, 2 checkpoint) [‖ length (4) ‖ signed head]
//!           ‖ count (4) ‖ { seq (8) ‖ op id (32) }                acknowledged, awaited, seq order
//!           ‖ frontier flag (1) [‖ count (1) ‖ { hash (32) }]     version 2: the Merkle frontier
//!                                                                  of the topic's first `cursor`
//!                                                                  entries, largest subtree first
//! (version 3 only, after the topics)
//!           ‖ count (4) ‖ { length (4) ‖ signed receipt           receipts kept for auditing,
//!                           ‖ leaf hash (32) ‖ audited size (8) }  (topic, seq) order
//! topic   = length (1) ‖ UTF-8
//! ```
//!
//! Versions 1 (no frontier) and 2 (no kept receipts) are still read; version 1 topics followed
//! from a cursor above 0 resume without a log follower. With the frontier, a restored topic resumes its follower
//! ([`LogFollower::resume`]): entries and signed heads after the cursor are checked as before
//! the reload.
//!
//! The identity's secret is not part of it: [`Session::restore`] takes the identity separately
//! and refuses state exported by another agent.

use crate::sorted_map::SortedMap;

use super::audit::Held;
use super::{Awaited, Phase, Session, Topic, Unacked};
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::identity::{AgentId, Identity};
use crate::log::{Frontier, LogFollower, SignedCheckpoint, SignedReceipt, SignedTreeHead};
use crate::op::{OpId, SignedOp};
use crate::replica::Replica;
use crate::wire::take_topic;

/// Version byte of the exported state (versions 1 and 2 are still read).
pub const STATE_VERSION: u8 = 3;

/// Most topics, counters, unacknowledged ops or awaited acknowledgements in one state.
pub const MAX_STATE_ITEMS: u32 = 1 << 20;

/// A topic held by the session (validated when it was subscribed or decoded).
fn put_topic(out: &mut Vec<u8>, topic: &str) {
    out.put_u8(topic.len() as u8);
    out.put(topic.as_bytes());
}

fn put_blob(out: &mut Vec<u8>, blob: &[u8]) {
    out.put_u32(blob.len() as u32);
    out.put(blob);
}

fn take_blob<'a>(r: &mut Reader<'a>, field: &str) -> Result<&'a [u8]> {
    let len = r.u32(field)? as usize;
    r.take(len, field)
}

fn count(r: &mut Reader<'_>, what: &'static str) -> Result<u32> {
    let n = r.u32(what)?;
    if n > MAX_STATE_ITEMS {
        return Err(Error::LimitExceeded {
            what,
            limit: MAX_STATE_ITEMS as usize,
            got: n as usize,
        });
    }
    Ok(n)
}

fn noncanonical(reason: &str) -> Error {
    Error::NonCanonical {
        what: "session state",
        reason: reason.into(),
    }
}

impl Session {
    /// The state to persist (see the module docs for the bytes); [`Session::restore`] resumes
    /// from it. Connection-level state (request ids, the handshake) is not part of it.
    pub fn export_state(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.put_u8(STATE_VERSION);
        out.put(self.identity.agent_id().as_bytes());
        match &self.relay {
            Some(relay) => {
                out.put_u8(1);
                out.put(relay.as_bytes());
            }
            None => out.put_u8(0),
        }
        out.put_u32(self.counters.len() as u32);
        for (topic, counter) in &self.counters {
            put_topic(&mut out, topic);
            out.put_u64(*counter);
        }
        out.put_u32(self.unacked.len() as u32);
        for unacked in &self.unacked {
            put_blob(&mut out, unacked.op.as_bytes());
        }
        out.put_u32(self.topics.len() as u32);
        for (name, topic) in &self.topics {
            put_topic(&mut out, name);
            out.put_u64(topic.cursor);
            match &topic.replica {
                Some(replica) => {
                    out.put_u8(1);
                    put_blob(&mut out, &replica.snapshot());
                }
                None => out.put_u8(0),
            }
            match &topic.verified_head {
                None => out.put_u8(0),
                Some(SignedTreeHead::Receipt(r)) => {
                    out.put_u8(1);
                    put_blob(&mut out, r.as_bytes());
                }
                Some(SignedTreeHead::Checkpoint(c)) => {
                    out.put_u8(2);
                    put_blob(&mut out, c.as_bytes());
                }
            }
            out.put_u32(topic.awaited.len() as u32);
            for (seq, awaited) in &topic.awaited {
                out.put_u64(*seq);
                out.put(&awaited.op_id.0);
            }
            match topic.follower.as_ref().map(|f| f.log().frontier()) {
                Some(frontier) if frontier.size() == topic.cursor => {
                    out.put_u8(1);
                    out.put_u8(frontier.hashes().len() as u8);
                    for hash in frontier.hashes() {
                        out.put(hash);
                    }
                }
                _ => out.put_u8(0),
            }
        }
        out.put_u32(self.held.len() as u32);
        for held in self.held.iter() {
            put_blob(&mut out, held.receipt.as_bytes());
            out.put(&held.leaf);
            out.put_u64(held.proven_size);
        }
        out
    }

    /// A session resuming from [`Session::export_state`] bytes, disconnected. A topic whose
    /// state has its Merkle frontier resumes its log follower from it
    /// ([`LogFollower::resume`]); one without (version 1 state, or a topic first followed from
    /// a cursor above 0) resumes without one: its entries are still verified one by one, signed
    /// heads are checked again once it is followed from 0.
    ///
    /// Errors: `BAD_INPUT` when the state belongs to another agent or a frontier has the wrong
    /// number of hashes; `LOG_MISMATCH` when the verified head disagrees with the frontier;
    /// `UNSUPPORTED_VERSION`, `MALFORMED`, `TRAILING_BYTES`, `NON_CANONICAL`, `LIMIT_EXCEEDED`,
    /// `BAD_TOPIC`, and the decoding codes of ops, replica snapshots and signed heads.
    pub fn restore(identity: Identity, bytes: &[u8]) -> Result<Session> {
        let mut r = Reader::new("session state", bytes);
        let version = r.u8("version")?;
        if !(1..=STATE_VERSION).contains(&version) {
            return Err(Error::UnsupportedVersion {
                what: "session state",
                version,
            });
        }
        let agent = AgentId::from_bytes(&r.array::<32>("agent")?)?;
        if agent != identity.agent_id() {
            return Err(Error::BadInput(format!(
                "session state of agent {agent}, not {}",
                identity.agent_id()
            )));
        }
        let relay = match r.u8("relay flag")? {
            0 => None,
            1 => Some(AgentId::from_bytes(&r.array::<32>("relay")?)?),
            _ => return Err(noncanonical("relay flag is 0 or 1")),
        };
        let mut session = Session::new(identity);
        session.relay = relay;
        for _ in 0..count(&mut r, "counters")? {
            let topic = take_topic(&mut r)?;
            let counter = r.u64("counter")?;
            if session.counters.keys().next_back() >= Some(&topic) {
                return Err(noncanonical("counters out of topic order"));
            }
            session.counters.insert(topic, counter);
        }
        for _ in 0..count(&mut r, "unacknowledged ops")? {
            let op = SignedOp::decode(take_blob(&mut r, "op")?)?;
            if op.author() != &agent {
                return Err(Error::BadInput(
                    "an unacknowledged op of another author".into(),
                ));
            }
            // Its publish timeout starts with the first call that brings the time.
            session.unacked.push(Unacked::new(op, 0));
        }
        for _ in 0..count(&mut r, "topics")? {
            let name = take_topic(&mut r)?;
            if session.topics.keys().next_back() >= Some(&name) {
                return Err(noncanonical("topics out of order"));
            }
            let cursor = r.u64("cursor")?;
            let replica = match r.u8("replica flag")? {
                0 => None,
                1 => {
                    let replica = Replica::restore(take_blob(&mut r, "replica")?)?;
                    if replica.topic() != name || replica.next_seq() != cursor {
                        return Err(Error::BadInput(
                            "replica snapshot does not match the topic's cursor".into(),
                        ));
                    }
                    Some(replica)
                }
                _ => return Err(noncanonical("replica flag is 0 or 1")),
            };
            let verified_head = match r.u8("head kind")? {
                0 => None,
                1 => Some(SignedTreeHead::Receipt(SignedReceipt::decode_unverified(
                    take_blob(&mut r, "head")?,
                )?)),
                2 => Some(SignedTreeHead::Checkpoint(
                    SignedCheckpoint::decode_unverified(take_blob(&mut r, "head")?)?,
                )),
                _ => return Err(noncanonical("head kind is 0, 1 or 2")),
            };
            if let (Some(head), Some(relay)) = (&verified_head, &relay) {
                head.verify(relay)?;
            }
            let mut awaited = SortedMap::new();
            for _ in 0..count(&mut r, "awaited")? {
                let seq = r.u64("seq")?;
                let op_id = OpId(r.array("op id")?);
                if awaited.keys().next_back() >= Some(&seq) {
                    return Err(noncanonical("awaited out of seq order"));
                }
                awaited.insert(
                    seq,
                    Awaited {
                        op_id,
                        overdue_since_ms: 0,
                    },
                );
            }
            let frontier_flag = match version {
                1 => 0,
                _ => r.u8("frontier flag")?,
            };
            let frontier = match frontier_flag {
                0 => None,
                1 => {
                    let count = r.u8("frontier hashes")?;
                    let hashes = (0..count)
                        .map(|_| r.array::<32>("frontier hash"))
                        .collect::<Result<Vec<_>>>()?;
                    Some(Frontier::from_parts(cursor, hashes)?)
                }
                _ => return Err(noncanonical("frontier flag is 0 or 1")),
            };
            let follower = match (cursor, relay, frontier) {
                (0, Some(relay), _) => Some(LogFollower::new(relay, &name)?),
                (_, Some(relay), Some(frontier)) => Some(LogFollower::resume(
                    relay,
                    &name,
                    &frontier,
                    verified_head.clone(),
                )?),
                _ => None,
            };
            session.topics.insert(
                name,
                Topic {
                    cursor,
                    request_id: 0,
                    follower,
                    replica,
                    verified_head,
                    last_counter: SortedMap::new(),
                    awaited,
                    gap_retries: 0,
                    // Pausing is the caller's backpressure, not state: a restored topic follows.
                    paused: false,
                    pushed: SortedMap::new(),
                    recent_ours: SortedMap::new(),
                    first_applied: None,
                },
            );
        }
        if version >= 3 {
            let mut previous: Option<(String, u64)> = None;
            for _ in 0..count(&mut r, "kept receipts")? {
                let receipt = SignedReceipt::decode_unverified(take_blob(&mut r, "receipt")?)?;
                if let Some(relay) = &relay {
                    receipt.verify(relay)?;
                }
                let leaf = r.array::<32>("leaf hash")?;
                let proven_size = r.u64("audited size")?;
                let key = (receipt.receipt().topic.clone(), receipt.receipt().seq);
                if previous.as_ref() >= Some(&key) {
                    return Err(noncanonical("kept receipts out of (topic, seq) order"));
                }
                previous = Some(key);
                session.held.insert(Held {
                    receipt,
                    leaf,
                    proven_size,
                });
            }
        }
        r.finish()?;
        session.phase = Phase::Disconnected;
        Ok(session)
    }
}
