//! Who may join a private room, and whether it may write (PROTOCOL.md 8.7.1).
//!
//! A room is **private** when the topic that guards it is owned (`@<agent id>/…`, section
//! 10.5): a plain room whose name is an owned topic is guarded by that topic, a room bridged to
//! an owned topic by the bridged topic. Every other room is open, as before.
//!
//! A stock `y-websocket` provider can send nothing but its URL, so a connection brings, as
//! query parameters (the provider's `params` option):
//!
//! - `cap=<hex>`: its capabilities, lowercase hex, as on `/ws` (10.6). The parameter may repeat
//!   or hold several values separated by `,` (a provider's `params` is an object: one value per
//!   name). At most [`MAX_CONNECTION_CAPABILITIES`].
//! - `proof=<hex>`: a [`RoomProof`] by the agent the capabilities are for, signed for the
//!   guarding topic: capabilities are not secret (the log shows every presented one), so the
//!   audience has to prove it holds its key.
//!
//! Then [`RoomAccess::decide`] is a pure function of the proof's agent, the capabilities, the
//! guarding topic's revocations (10.7) and read rule (10.10), and the time: read lets a
//! connection join, sync and see and send presence; write lets its document updates in. It is
//! decided when the connection joins, and again whenever the guarding topic has a new entry (a
//! revocation or a policy is one), when a capability held starts or expires, and when the room
//! proof expires: from then on the connection is no longer authenticated, as if it had come
//! without one.
//!
//! An owned guarding topic that its owner made public lets every connection read the room,
//! with or without a proof; writing it still needs the owner's proof, or a proof and a `write`
//! capability.

use std::sync::Arc;

use super::super::access::{Access, MAX_CONNECTION_CAPABILITIES};
use super::super::policy::TopicPolicies;
use crate::capability::{topic_owner, RevokedLinks, RoomProof};
use crate::error::{Error, Result};
use crate::identity::{decode_lower_hex, AgentId};

/// The query parameter that carries a [`RoomProof`], as lowercase hex.
pub const PROOF_PARAM: &str = "proof";

/// What a connection may do in its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allowed {
    /// Join, sync, presence and document updates.
    ReadWrite,
    /// Join, sync and presence; its document updates are dropped.
    ReadOnly,
}

/// A room connection's credentials, decoded and checked once at the upgrade.
///
/// Invariant: when the room is private (`topic` is `Some`), `agent` is `Some` only if the
/// connection's proof verified for that topic.
#[derive(Debug)]
pub(crate) struct RoomAccess {
    /// The owned topic that guards the room (`None`: an open room).
    topic: Option<String>,
    /// The agent the proof authenticated, and the proof's expiry (exclusive).
    agent: Option<(AgentId, u64)>,
    access: Access,
}

impl RoomAccess {
    /// The credentials in the raw query string `query` of a connection to a room guarded by
    /// `guard` (any topic: only an owned one makes the room private), at `now_ms`.
    ///
    /// Errors: those of [`Access::from_query`] for a `cap` that does not decode; for a proof,
    /// `BAD_INPUT` (not lowercase hex), [`RoomProof::decode`]'s, and for a private room
    /// [`RoomProof::verify`]'s (`BAD_SIGNATURE`, `NOT_AUTHENTICATED` when expired). A proof on
    /// an open room is not checked.
    pub(crate) fn from_query(
        query: Option<&str>,
        guard: Option<&str>,
        policies: &Arc<TopicPolicies>,
        now_ms: u64,
    ) -> Result<Self> {
        let mut caps: Vec<String> = Vec::new();
        let mut proof = None;
        for pair in query.unwrap_or_default().split('&') {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            if name == super::super::access::CAPABILITY_PARAM {
                if caps.len() > MAX_CONNECTION_CAPABILITIES {
                    break; // Access::from_hex reports the count.
                }
                // `,` as `y-websocket` encodes it (`encodeURIComponent`), or as typed.
                let values = value.replace("%2C", ",").replace("%2c", ",");
                caps.extend(
                    values
                        .split(',')
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned),
                );
            } else if name == PROOF_PARAM {
                proof = Some(value);
            }
        }
        let access = Access::from_hex(caps.iter().map(String::as_str), policies)?;
        let topic = guard
            .filter(|t| topic_owner(t).is_some() || policies.closes_any(t))
            .map(str::to_owned);
        let agent = match (&topic, proof) {
            (Some(topic), Some(hex)) => {
                let bytes = decode_lower_hex(hex, hex.len() / 2)
                    .filter(|_| hex.len() <= 2 * crate::capability::room_proof::ROOM_PROOF_LEN)
                    .ok_or_else(|| Error::BadInput("a proof parameter is lowercase hex".into()))?;
                let proof = RoomProof::decode(&bytes)?;
                Some((*proof.verify(topic, now_ms)?, proof.expires_ms()))
            }
            _ => None,
        };
        Ok(RoomAccess {
            topic,
            agent,
            access,
        })
    }

    /// The owned topic that guards the room (`None`: the room is open).
    pub(crate) fn topic(&self) -> Option<&str> {
        self.topic.as_deref()
    }

    /// What the connection may do at `now_ms`, the guarding topic's revoked links being
    /// `revoked`, and its owner having made it `public` or not. Errors, for a private room:
    /// `NOT_AUTHENTICATED` without a proof or once the proof has expired, unless the topic is
    /// public; else the codes of a refused read (10.5: `NOT_AUTHORIZED`, `CAPABILITY_EXPIRED`,
    /// `CAPABILITY_REVOKED`).
    pub(crate) fn decide(
        &self,
        now_ms: u64,
        revoked: Option<&RevokedLinks>,
        public: bool,
    ) -> Result<Allowed> {
        let Some(topic) = self.topic.as_deref() else {
            return Ok(Allowed::ReadWrite);
        };
        // A proof holds until its expiry, not for the connection's whole life.
        let agent = self
            .agent
            .as_ref()
            .filter(|(_, expires_ms)| now_ms < *expires_ms)
            .map(|(agent, _)| agent);
        let Some(agent) = agent else {
            return match self.access.read_refusal(None, topic, now_ms, None, public) {
                None => Ok(Allowed::ReadOnly),
                Some(_) => Err(Error::NotAuthenticated),
            };
        };
        if let Some(refusal) = self
            .access
            .read_refusal(Some(agent), topic, now_ms, revoked, public)
        {
            return Err(refusal);
        }
        Ok(
            match self.access.write_refusal(agent, topic, now_ms, revoked) {
                None => Allowed::ReadWrite,
                Some(_) => Allowed::ReadOnly,
            },
        )
    }

    /// When [`RoomAccess::decide`] may next answer otherwise without a new entry in the
    /// guarding topic: a capability's start or end, or the proof's expiry (`None`: never, or
    /// the room is open).
    pub(crate) fn next_change_after(&self, now_ms: u64) -> Option<u64> {
        self.topic.as_ref()?;
        let proof = self
            .agent
            .map(|(_, expires_ms)| expires_ms)
            .filter(|&at| at > now_ms);
        match (self.access.next_change_after(now_ms), proof) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Whether the y-protocols message `bytes` changes the document: a sync step 2 or update
/// carrying a non-empty update. Anything that does not decode is not (the room refuses it).
pub(crate) fn is_document_write(bytes: &[u8]) -> bool {
    use crate::doc::{ProtocolMessage, SyncMessage};
    match ProtocolMessage::decode(bytes) {
        Ok(ProtocolMessage::Sync(SyncMessage::Step2(update) | SyncMessage::Update(update))) => {
            update != [0, 0]
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::{Capability, Rights, Scope};
    use crate::identity::{lower_hex, Identity};

    fn cap(owner: &Identity, to: &Identity, topic: &str, rights: Rights, until: u64) -> String {
        let scope = Scope::Topic(topic.into());
        lower_hex(
            Capability::grant(owner, to.agent_id(), scope, rights, until)
                .unwrap()
                .as_bytes(),
        )
    }

    #[test]
    fn private_rooms_need_a_proof_and_a_capability() {
        let alice = Identity::from_seed(&[1; 32]).unwrap();
        let bob = Identity::from_seed(&[2; 32]).unwrap();
        let topic = format!("@{}/notes", alice.agent_id());
        let read = cap(&alice, &bob, &topic, Rights::READ, 100);
        let write = cap(&alice, &bob, &topic, Rights::READ | Rights::WRITE, 50);
        let proof = lower_hex(&RoomProof::sign(&bob, &topic, 1_000).encode());
        let decide = |query: String, now: u64| {
            RoomAccess::from_query(Some(&query), Some(&topic), &Arc::default(), now)
                .and_then(|a| a.decide(now, None, false))
        };
        let code = |r: Result<Allowed>| r.unwrap_err().code();
        assert_eq!(code(decide(format!("cap={read}"), 0)), "NOT_AUTHENTICATED");
        assert_eq!(code(decide(format!("proof={proof}"), 0)), "NOT_AUTHORIZED");
        assert_eq!(
            decide(format!("cap={read}&proof={proof}"), 0).unwrap(),
            Allowed::ReadOnly
        );
        let both = format!("cap={read}%2C{write}&proof={proof}");
        assert_eq!(decide(both.clone(), 0).unwrap(), Allowed::ReadWrite);
        assert_eq!(decide(both.clone(), 60).unwrap(), Allowed::ReadOnly);
        assert_eq!(code(decide(both.clone(), 100)), "CAPABILITY_EXPIRED");
        let access = RoomAccess::from_query(Some(&both), Some(&topic), &Arc::default(), 0).unwrap();
        assert_eq!(access.next_change_after(0), Some(50));
        assert_eq!(access.next_change_after(50), Some(100));
        // The owner needs only its proof; an open room needs nothing.
        let own = lower_hex(&RoomProof::sign(&alice, &topic, 1_000).encode());
        assert_eq!(
            decide(format!("proof={own}"), 0).unwrap(),
            Allowed::ReadWrite
        );
        let open = RoomAccess::from_query(None, Some("notes"), &Arc::default(), 0).unwrap();
        assert_eq!(open.decide(0, None, false).unwrap(), Allowed::ReadWrite);
        // Someone else's proof, a forged capability.
        let stolen = lower_hex(&RoomProof::sign(&bob, "@other", 1_000).encode());
        assert_eq!(
            code(decide(format!("cap={read}&proof={stolen}"), 0)),
            "BAD_SIGNATURE"
        );
        let mut forged = decode_lower_hex(&read, read.len() / 2).unwrap();
        *forged.last_mut().unwrap() ^= 1;
        let forged = lower_hex(&forged);
        assert_eq!(
            code(decide(format!("cap={forged}&proof={proof}"), 0)),
            "BAD_SIGNATURE"
        );
    }

    #[test]
    fn a_proof_holds_until_its_expiry_and_a_public_topic_needs_none_to_read() {
        let alice = Identity::from_seed(&[1; 32]).unwrap();
        let bob = Identity::from_seed(&[2; 32]).unwrap();
        let topic = format!("@{}/notes", alice.agent_id());
        let write = cap(&alice, &bob, &topic, Rights::READ | Rights::WRITE, 500);
        let proof = lower_hex(&RoomProof::sign(&bob, &topic, 100).encode());
        let query = format!("cap={write}&proof={proof}");
        let access =
            RoomAccess::from_query(Some(&query), Some(&topic), &Arc::default(), 0).unwrap();
        assert_eq!(access.decide(99, None, false).unwrap(), Allowed::ReadWrite);
        assert_eq!(access.next_change_after(0), Some(100));
        assert_eq!(access.next_change_after(100), Some(500));
        assert_eq!(
            access.decide(100, None, false).unwrap_err().code(),
            "NOT_AUTHENTICATED"
        );
        // Public: reading needs no proof; writing still needs one.
        assert_eq!(access.decide(100, None, true).unwrap(), Allowed::ReadOnly);
        let anonymous = RoomAccess::from_query(None, Some(&topic), &Arc::default(), 0).unwrap();
        assert_eq!(anonymous.decide(0, None, true).unwrap(), Allowed::ReadOnly);
        assert_eq!(
            anonymous.decide(0, None, false).unwrap_err().code(),
            "NOT_AUTHENTICATED"
        );
        assert_eq!(access.decide(0, None, true).unwrap(), Allowed::ReadWrite);
    }

    #[test]
    fn only_non_empty_updates_write() {
        use crate::doc::{ProtocolMessage, SyncMessage};
        let msg = |m: SyncMessage| ProtocolMessage::Sync(m).encode();
        assert!(!is_document_write(&msg(SyncMessage::Step1(vec![0]))));
        assert!(!is_document_write(&msg(SyncMessage::Step2(vec![0, 0]))));
        assert!(is_document_write(&msg(SyncMessage::Update(vec![1, 2, 3]))));
        assert!(is_document_write(&msg(SyncMessage::Step2(vec![1, 2, 3]))));
        assert!(!is_document_write(
            &ProtocolMessage::QueryAwareness.encode()
        ));
        assert!(!is_document_write(&[0xff]));
    }
}
