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
//! An owned topic its owner made public (`topic.policy`, PROTOCOL.md 10.10, the [`Hub`]'s
//! record of the log's policies: [`TopicRules`]) needs nothing to read, not even a hello;
//! writing it stays as above.
//!
//! A link revoked in the topic (PROTOCOL.md 10.7, the [`Hub`]'s record of the `cap.revoke`
//! entries of the log) no longer counts: `CAPABILITY_REVOKED`, for every request and, through
//! [`Access::revoked_since`], for a live subscription from the revocation's seq on. A
//! `cap.revoke` op needs no write capability: the sequencer checks its authority against the
//! topic's log instead, as it checks every op of an owned topic against the log (10.8) after
//! this check against the connection's capabilities.
//!
//! A topic the operator's config closes (`[[access]]`, [`TopicPolicies`], PROTOCOL.md 10.9) is
//! checked the same way, with the policy's guarding key in the owner's place. Every other
//! topic is open, as before capabilities existed.

use std::sync::Arc;

use super::hub::{Hub, ReadState};
use super::policy::TopicPolicies;
use crate::capability::authority::kind;
use crate::capability::{
    may_use, may_use_rooted_at, revoked_since, topic_owner, Capability, RevokedLinks, Right,
    MAX_CAPABILITY_LEN,
};
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::wire::Action;

/// Most capabilities one connection may bring.
pub const MAX_CONNECTION_CAPABILITIES: usize = 16;

/// The query parameter that carries a capability, as lowercase hex.
pub const CAPABILITY_PARAM: &str = "cap";

/// The capabilities a connection holds, and the relay's policies they are weighed under. A
/// cache of decoded, verified chains, bounded by [`MAX_CONNECTION_CAPABILITIES`]; it never
/// changes after the upgrade.
#[derive(Debug, Default)]
pub(crate) struct Access {
    capabilities: Vec<Capability>,
    policies: Arc<TopicPolicies>,
}

impl Access {
    /// The capabilities of the `cap` parameters of a URL query (`None`: no query). Other
    /// parameters are ignored.
    ///
    /// Errors: `LIMIT_EXCEEDED` for more than [`MAX_CONNECTION_CAPABILITIES`] or a parameter
    /// longer than a capability can be; `BAD_INPUT` for a value that is not lowercase hex; the
    /// codes of [`Capability::decode`] for bytes that are not a valid chain.
    pub(crate) fn from_query(query: Option<&str>, policies: &Arc<TopicPolicies>) -> Result<Self> {
        let values = query.unwrap_or_default().split('&').filter_map(|pair| {
            pair.strip_prefix(CAPABILITY_PARAM)
                .and_then(|rest| rest.strip_prefix('='))
        });
        Self::from_hex(values, policies)
    }

    /// The capabilities of the lowercase hex strings `values`, with the errors of
    /// [`Access::from_query`].
    pub(crate) fn from_hex<'a>(
        values: impl IntoIterator<Item = &'a str>,
        policies: &Arc<TopicPolicies>,
    ) -> Result<Self> {
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
        Ok(Access {
            capabilities,
            policies: policies.clone(),
        })
    }

    /// Whether `agent` may use `right` on `topic` at `now_ms`: by section 10.5 for an owned
    /// topic (the links in `revoked` no longer counting), by the policy's guarding key for a
    /// topic the config closes, and always for any other.
    fn may(
        &self,
        agent: &AgentId,
        topic: &str,
        right: Right,
        now_ms: u64,
        revoked: Option<&RevokedLinks>,
    ) -> Result<()> {
        match self.policies.guard(topic, right) {
            Some(guard) => {
                may_use_rooted_at(guard, topic, agent, &self.capabilities, right, now_ms, None)
            }
            None => may_use(topic, agent, &self.capabilities, right, now_ms, revoked),
        }
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
        self.may(agent, topic, Right::Write, now_ms, revoked).err()
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
                if op.kind() == kind::REVOKE && topic_owner(op.topic()).is_some() {
                    // Revoking a link one signed needs no right on an owned topic: the
                    // sequencer decides by the chain in the body and the topic's log.
                    return None;
                }
                // The state machine only emits a publish whose author is the connection's agent.
                let revoked = topic_rules(hub, op.topic()).revoked;
                let allowed = self.may(
                    op.author(),
                    op.topic(),
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
        let rules = topic_rules(hub, topic);
        let public = rules.read == Some(ReadState::Public);
        self.read_refusal(agent, topic, now_ms, rules.revoked.as_deref(), public)
            .map(|error| (request_id, error))
    }

    /// Why the connection's agent may not read `topic` at `now_ms` (`None`: it may), with the
    /// links in `revoked` no longer counting; an owned topic whose owner made it `public`
    /// (PROTOCOL.md 10.10) needs nothing. Checked when it asks, and again before every
    /// delivery to a subscription, so that entries stop the moment the capability that let it
    /// subscribe expires.
    pub(crate) fn read_refusal(
        &self,
        agent: Option<&AgentId>,
        topic: &str,
        now_ms: u64,
        revoked: Option<&RevokedLinks>,
        public: bool,
    ) -> Option<Error> {
        // An open topic: nothing to check.
        if self.policies.guard(topic, Right::Read).is_none() {
            topic_owner(topic)?;
            if public {
                return None;
            }
        }
        let Some(agent) = agent else {
            return Some(Error::NotAuthenticated);
        };
        self.may(agent, topic, Right::Read, now_ms, revoked).err()
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

    /// For a live subscription to `topic` whose log says `rules`: the seq from which the
    /// topic's entries are no longer the agent's to read, and the error that ends the
    /// subscription once those before it are delivered. The earlier of: every capability that
    /// lets it read has a link revoked ([`Access::revoked_since`]); the owner made the topic
    /// private again at that seq (PROTOCOL.md 10.10) and the agent may not read it privately
    /// (`NOT_AUTHORIZED`, or the code its capabilities get). `None` while the topic is public.
    pub(crate) fn cut(
        &self,
        agent: Option<&AgentId>,
        topic: &str,
        now_ms: u64,
        rules: &TopicRules,
    ) -> Option<(u64, Error)> {
        let revoked = match (rules.read, &rules.revoked) {
            (Some(ReadState::Public), _) => return None,
            (_, Some(links)) => self.revoked_since(agent, topic, now_ms, links),
            (_, None) => None,
        };
        let private = match rules.read {
            Some(ReadState::PrivateSince(since)) => self
                .read_refusal(agent, topic, now_ms, None, false)
                .map(|error| match error {
                    Error::NotAuthenticated => (
                        since,
                        Error::NotAuthorized(format!(
                            "the owner made {topic:?} private at seq {since}"
                        )),
                    ),
                    other => (since, other),
                }),
            _ => None,
        };
        match (revoked, private) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// Whether a subscription to `topic` whose next entry is `cursor` is still owed entries
    /// as a reader of a public topic (PROTOCOL.md 10.10): while the topic is public, and up to
    /// the seq at which it became private again ([`Access::cut`] ends it there).
    pub(crate) fn public_at(rules: &TopicRules, cursor: u64) -> bool {
        match rules.read {
            Some(ReadState::Public) => true,
            Some(ReadState::PrivateSince(since)) => cursor <= since,
            None => false,
        }
    }
}

/// What an owned topic's log says about reading it, as the [`Hub`] follows it.
#[derive(Debug, Default)]
pub(crate) struct TopicRules {
    /// The links revoked in it (`None`: none).
    pub(crate) revoked: Option<Arc<RevokedLinks>>,
    /// Its read rule (`None`: private, and never public for any reader it has now).
    pub(crate) read: Option<ReadState>,
}

/// The revocations and read rule of `topic`: nothing unless it is owned.
pub(crate) fn topic_rules(hub: &Hub, topic: &str) -> TopicRules {
    if !topic.starts_with(crate::capability::owned::OWNED_TOPIC_SIGIL) {
        return TopicRules::default();
    }
    TopicRules {
        revoked: hub.revoked(topic),
        read: hub.read_state(topic),
    }
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
        let access =
            Access::from_query(Some(&format!("x=1&cap={hex}&cap={hex}")), &Arc::default()).unwrap();
        assert_eq!(access.capabilities.len(), 2);
        assert!(Access::from_query(None, &Arc::default())
            .unwrap()
            .capabilities
            .is_empty());
        let code = |query: String| {
            Access::from_query(Some(&query), &Arc::default())
                .unwrap_err()
                .code()
        };
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
