//! Who may read and write owned topics on this relay (PROTOCOL.md sections 8.2 and 10.5).
//!
//! A connection brings its capabilities on the WebSocket URL (`/ws?cap=<hex>&cap=<hex>`); the
//! relay decodes them once, at the upgrade, and refuses the upgrade (`400`, the code as the
//! body) when one does not decode. Then, for every action the connection's state machine asks
//! for, [`Access::refusal`] decides, as a pure function of the action, the authenticated agent,
//! the capabilities and the time, whether the relay must refuse it instead:
//!
//! - publishing to an owned topic needs the owner's key or a `write` capability rooted at the
//!   owner: otherwise `NOT_AUTHORIZED` / `CAPABILITY_EXPIRED`, and nothing is sequenced;
//! - subscribing to, and asking checkpoints and proofs of, an owned topic needs a hello
//!   (`NOT_AUTHENTICATED`) and the owner's key or a `read` capability: owned topics are private.
//!
//! A link revoked in the topic (PROTOCOL.md 10.7, the [`Hub`]'s record of the `cap.revoke`
//! entries of the log) no longer counts: `CAPABILITY_REVOKED`, for every request and, through
//! [`Access::revoked_since`], for a live subscription from the revocation's seq on. A
//! `cap.revoke` op needs no write capability: the sequencer checks its authority against the
//! topic's log instead, as it checks every op of an owned topic against the log (10.8) after
//! this check against the connection's capabilities.
//!
//! Every other topic is open, as before capabilities existed.

use super::hub::Hub;
use crate::capability::authority::kind;
use crate::capability::{
    may_use, revoked_since, topic_owner, Capability, RevokedLinks, Right, MAX_CAPABILITY_LEN,
};
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::wire::Action;

/// Most capabilities one connection may bring.
pub const MAX_CONNECTION_CAPABILITIES: usize = 16;

/// The query parameter that carries a capability, as lowercase hex.
pub const CAPABILITY_PARAM: &str = "cap";

/// The capabilities a connection holds. A cache of decoded, verified chains, bounded by
/// [`MAX_CONNECTION_CAPABILITIES`]; it never changes after the upgrade.
#[derive(Debug, Default)]
pub(crate) struct Access {
    capabilities: Vec<Capability>,
}

impl Access {
    /// The capabilities of the `cap` parameters of a URL query (`None`: no query). Other
    /// parameters are ignored.
    ///
    /// Errors: `LIMIT_EXCEEDED` for more than [`MAX_CONNECTION_CAPABILITIES`] or a parameter
    /// longer than a capability can be; `BAD_INPUT` for a value that is not lowercase hex; the
    /// codes of [`Capability::decode`] for bytes that are not a valid chain.
    pub(crate) fn from_query(query: Option<&str>) -> Result<Self> {
        let values = query.unwrap_or_default().split('&').filter_map(|pair| {
            pair.strip_prefix(CAPABILITY_PARAM)
                .and_then(|rest| rest.strip_prefix('='))
        });
        Self::from_hex(values)
    }

    /// The capabilities of the lowercase hex strings `values`, with the errors of
    /// [`Access::from_query`].
    pub(crate) fn from_hex<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut capabilities = Vec::new();
        for hex in values {
            if capabilities.len() == MAX_CONNECTION_CAPABILITIES {
                return Err(Error::LimitExceeded {
                    what: "capabilities per connection",
                    limit: MAX_CONNECTION_CAPABILITIES,
                    got: MAX_CONNECTION_CAPABILITIES + 1,
                });
            }
            if hex.len() > 2 * MAX_CAPABILITY_LEN {
                return Err(Error::LimitExceeded {
                    what: "capability parameter length",
                    limit: 2 * MAX_CAPABILITY_LEN,
                    got: hex.len(),
                });
            }
            let bytes = crate::identity::decode_lower_hex(hex, hex.len() / 2)
                .ok_or_else(|| Error::BadInput("a cap parameter is lowercase hex".into()))?;
            capabilities.push(Capability::decode(&bytes)?);
        }
        Ok(Access { capabilities })
    }

    /// Why `agent` may not write `topic` at `now_ms` (`None`: it may), with the links in
    /// `revoked` no longer counting.
    pub(crate) fn write_refusal(
        &self,
        agent: &AgentId,
        topic: &str,
        now_ms: u64,
        revoked: Option<&RevokedLinks>,
    ) -> Option<Error> {
        may_use(
            topic,
            agent,
            &self.capabilities,
            Right::Write,
            now_ms,
            revoked,
        )
        .err()
    }

    /// The first instant after `now_ms` at which a capability held starts or ends: when a
    /// decision made at `now_ms` may next change without a revocation (`None`: never).
    pub(crate) fn next_change_after(&self, now_ms: u64) -> Option<u64> {
        self.capabilities
            .iter()
            .flat_map(|c| [c.not_before_ms(), c.expires_ms()])
            .filter(|&at| at > now_ms)
            .min()
    }

    /// The refusal the relay must answer instead of carrying out `action`, with the request id
    /// to answer; `None` when the action may go ahead. `agent` is the connection's
    /// authenticated agent, `now_ms` the relay's clock, `hub` holds the topics' revocations.
    pub(crate) fn refusal(
        &self,
        agent: Option<&AgentId>,
        action: &Action,
        now_ms: u64,
        hub: &Hub,
    ) -> Option<(u32, Error)> {
        let (request_id, topic) = match action {
            Action::Publish { request_id, op } | Action::PublishUnverified { request_id, op } => {
                if op.kind() == kind::REVOKE {
                    // Revoking a link one signed needs no right on the topic: the sequencer
                    // decides by the chain in the body and the topic's log.
                    return None;
                }
                // The state machine only emits a publish whose author is the connection's agent.
                let revoked = revocations(hub, op.topic());
                let allowed = may_use(
                    op.topic(),
                    op.author(),
                    &self.capabilities,
                    Right::Write,
                    now_ms,
                    revoked.as_deref(),
                );
                return allowed.err().map(|error| (*request_id, error));
            }
            Action::Send(_) => return None,
            Action::Subscribe {
                request_id, topic, ..
            }
            | Action::Checkpoint { request_id, topic }
            | Action::InclusionProof {
                request_id, topic, ..
            }
            | Action::ConsistencyProof {
                request_id, topic, ..
            } => (*request_id, topic),
        };
        let revoked = revocations(hub, topic);
        self.read_refusal(agent, topic, now_ms, revoked.as_deref())
            .map(|error| (request_id, error))
    }

    /// Why the connection's agent may not read `topic` at `now_ms` (`None`: it may), with the
    /// links in `revoked` no longer counting. Checked when it asks, and again before every
    /// delivery to a subscription, so that entries stop the moment the capability that let it
    /// subscribe expires.
    pub(crate) fn read_refusal(
        &self,
        agent: Option<&AgentId>,
        topic: &str,
        now_ms: u64,
        revoked: Option<&RevokedLinks>,
    ) -> Option<Error> {
        // An open topic: nothing to check.
        topic_owner(topic)?;
        let Some(agent) = agent else {
            return Some(Error::NotAuthenticated);
        };
        let read = Right::Read;
        may_use(topic, agent, &self.capabilities, read, now_ms, revoked).err()
    }

    /// For a live subscription to `topic`: when every capability that lets the agent read it
    /// has a link in `revoked`, the seq from which its entries are no longer the agent's to
    /// read, and the error that ends the subscription (`CAPABILITY_REVOKED`).
    pub(crate) fn revoked_since(
        &self,
        agent: Option<&AgentId>,
        topic: &str,
        now_ms: u64,
        revoked: &RevokedLinks,
    ) -> Option<(u64, Error)> {
        let agent = agent?;
        let read = Right::Read;
        let since = revoked_since(topic, agent, &self.capabilities, read, now_ms, revoked)?;
        let error = Error::CapabilityRevoked(format!(
            "the capability that let {} read {topic:?} was revoked at seq {since}",
            agent.short()
        ));
        Some((since, error))
    }
}

/// The links revoked in `topic`, if it is owned and has any.
pub(crate) fn revocations(hub: &Hub, topic: &str) -> Option<std::sync::Arc<RevokedLinks>> {
    if !topic.starts_with(crate::capability::owned::OWNED_TOPIC_SIGIL) {
        return None;
    }
    hub.revoked(topic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::{Rights, Scope};
    use crate::identity::lower_hex;
    use crate::identity::Identity;

    #[test]
    fn the_query_is_bounded_and_checked() {
        let alice = Identity::from_seed(&[1; 32]).unwrap();
        let bob = Identity::from_seed(&[2; 32]).unwrap().agent_id();
        let topic = format!("@{}/x", alice.agent_id());
        let cap = Capability::grant(&alice, bob, Scope::Topic(topic), Rights::READ, 10).unwrap();
        let hex = lower_hex(cap.as_bytes());
        let access = Access::from_query(Some(&format!("x=1&cap={hex}&cap={hex}"))).unwrap();
        assert_eq!(access.capabilities.len(), 2);
        assert!(Access::from_query(None).unwrap().capabilities.is_empty());
        let code = |query: String| Access::from_query(Some(&query)).unwrap_err().code();
        let many = vec![format!("cap={hex}"); MAX_CONNECTION_CAPABILITIES + 1].join("&");
        assert_eq!(code(many), "LIMIT_EXCEEDED");
        assert_eq!(
            code(format!("cap={}", "00".repeat(MAX_CAPABILITY_LEN + 1))),
            "LIMIT_EXCEEDED"
        );
        assert_eq!(code(format!("cap={}", hex.to_uppercase())), "BAD_INPUT");
        assert_eq!(code("cap=0".into()), "BAD_INPUT");
        let mut forged = cap.as_bytes().to_vec();
        *forged.last_mut().unwrap() ^= 1;
        assert_eq!(code(format!("cap={}", lower_hex(&forged))), "BAD_SIGNATURE");
    }
}
