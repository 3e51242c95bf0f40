//! Checkpoint gossip and publishing one signed op to several relays.
//!
//! A relay that shows two histories of one topic to two clients signs two heads that cannot both
//! be true. Neither client can see it alone; they catch it by passing each other the heads they
//! verified, through a channel the relay does not control (another relay, usually). A gossip
//! message is the body of an op of kind [`GOSSIP_KIND`], published on the topic it speaks of:
//!
//! ```text
//! version u8 = 1 ‖ relay key [32] ‖ head kind u8 (1 receipt, 2 checkpoint) ‖ u32 len ‖ statement
//! ```
//!
//! The statement is the relay-signed receipt or checkpoint (PROTOCOL.md section 5). A session
//! that receives gossip about the relay it follows feeds the head to the topic's
//! [`crate::log::LogFollower`]: a head of a size it holds is checked against its own tree at once
//! (two heads of one size with different roots are evidence that anyone can check), a larger one
//! when its tree reaches that size.

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::log::{SignedCheckpoint, SignedReceipt, SignedTreeHead};
use crate::op::{OpId, SignedOp};

use super::{Session, Unacked};

/// The op kind that carries checkpoint gossip.
pub const GOSSIP_KIND: &str = "ants.checkpoint";

/// Version byte of a gossip body.
pub const GOSSIP_VERSION: u8 = 1;

/// Most ops kept unacknowledged by one session; publishing more is `LIMIT_EXCEEDED`.
pub const MAX_UNACKNOWLEDGED: usize = 65_536;

const HEAD_RECEIPT: u8 = 1;
const HEAD_CHECKPOINT: u8 = 2;

/// A signed head of one relay, as carried by gossip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gossip {
    /// The relay that signed the head.
    pub relay: AgentId,
    /// The head (its signature verified against `relay` by [`Gossip::decode`]).
    pub head: SignedTreeHead,
}

impl Gossip {
    /// The canonical body (see the module docs).
    pub fn encode(relay: &AgentId, head: &SignedTreeHead) -> Vec<u8> {
        let statement = head.as_bytes();
        let mut out = Vec::with_capacity(38 + statement.len());
        out.put_u8(GOSSIP_VERSION);
        out.put(relay.as_bytes());
        out.put_u8(match head {
            SignedTreeHead::Receipt(_) => HEAD_RECEIPT,
            SignedTreeHead::Checkpoint(_) => HEAD_CHECKPOINT,
        });
        out.put_u32(statement.len() as u32);
        out.put(statement);
        out
    }

    /// Decodes a gossip body and checks the head's signature against the relay key it names.
    ///
    /// Errors: `UNSUPPORTED_VERSION`, `MALFORMED` / `TRAILING_BYTES` for bad framing,
    /// `BAD_INPUT` for an unknown head kind, the statement decoding codes and `BAD_SIGNATURE`.
    pub fn decode(bytes: &[u8]) -> Result<Gossip> {
        let mut reader = Reader::new("gossip", bytes);
        let version = reader.u8("version")?;
        if version != GOSSIP_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "gossip",
                version,
            });
        }
        let relay = AgentId::from_bytes(&reader.array::<32>("relay")?)?;
        let kind = reader.u8("head kind")?;
        let len = reader.u32("statement length")? as usize;
        let statement = reader.take(len, "statement")?;
        reader.finish()?;
        let head = match kind {
            HEAD_RECEIPT => SignedTreeHead::Receipt(SignedReceipt::decode(statement, &relay)?),
            HEAD_CHECKPOINT => {
                SignedTreeHead::Checkpoint(SignedCheckpoint::decode(statement, &relay)?)
            }
            other => return Err(Error::BadInput(format!("gossip head kind {other}"))),
        };
        Ok(Gossip { relay, head })
    }
}

impl Session {
    /// The gossip body for the latest head of `topic` this session verified against its own
    /// tree, if any: publish it as an op of kind [`GOSSIP_KIND`] (through other relays) so that
    /// other clients can compare it with what they were shown.
    pub fn gossip(&self, topic: &str) -> Option<Vec<u8>> {
        let relay = self.relay.as_ref()?;
        let head = self.topics.get(topic)?.verified_head.as_ref()?;
        Some(Gossip::encode(relay, head))
    }

    /// Takes a gossip body received from anywhere. Returns `Ok(false)` when it is about another
    /// relay, or a topic this session neither follows from seq 0 nor holds receipts of (nothing
    /// to compare with), and `Ok(true)` when the head was checked, kept for when the tree
    /// reaches its size, or used to audit our receipts (`session::audit`); anything it proves
    /// about the relay comes out as [`super::SessionEvent::Misbehaviour`].
    ///
    /// Errors: those of [`Gossip::decode`]; nothing changes then.
    pub fn receive_gossip(&mut self, bytes: &[u8]) -> Result<bool> {
        let gossip = Gossip::decode(bytes)?;
        if self.relay.as_ref() != Some(&gossip.relay) {
            return Ok(false);
        }
        let name = gossip.head.topic().to_owned();
        // Our kept receipts of the topic are audited against the head, followed or not.
        let audited = self
            .held_receipts()
            .iter()
            .any(|(topic, _, _)| *topic == name);
        self.audit(&gossip.head)?;
        let Some(follower) = self
            .topics
            .get_mut(&name)
            .and_then(|topic| topic.follower.as_mut())
        else {
            return Ok(audited);
        };
        let events = follower.push_head(gossip.head)?;
        self.follower_events(&name, events)?;
        Ok(true)
    }

    /// Queues an op this session's identity signed elsewhere (e.g. once for several relays, so
    /// every relay gets the same op id) exactly as [`Session::publish`] queues its own.
    ///
    /// Errors: `BAD_INPUT` when the op is not signed by this session's identity or its body is
    /// one replicas cannot read ([`super::check_publish_body`]), `LIMIT_EXCEEDED` past
    /// [`MAX_UNACKNOWLEDGED`].
    pub fn publish_signed(&mut self, op: SignedOp) -> Result<OpId> {
        if op.author() != &self.identity.agent_id() {
            return Err(Error::BadInput(
                "the op is signed by another identity than the session's".into(),
            ));
        }
        super::check_publish_body(op.kind(), op.body())?;
        self.check_unacknowledged_room()?;
        let id = op.id();
        if self.unacked.iter().any(|u| u.op.id() == id) {
            return Ok(id);
        }
        let next = self.counters.entry(op.topic().to_owned()).or_insert(0);
        *next = (*next).max(op.counter() + 1);
        self.unacked.push(Unacked::new(op, self.clock_ms));
        self.send_due()?;
        Ok(id)
    }

    pub(super) fn check_unacknowledged_room(&self) -> Result<()> {
        if self.unacked.len() >= MAX_UNACKNOWLEDGED {
            return Err(Error::LimitExceeded {
                what: "unacknowledged ops",
                limit: MAX_UNACKNOWLEDGED,
                got: self.unacked.len() + 1,
            });
        }
        Ok(())
    }
}
