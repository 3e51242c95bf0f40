//! Owned topics: `@<agent id>/…` belongs to that agent (PROTOCOL.md section 10.5).
//!
//! The owner may always read and write its topics; another agent may only with a [`Capability`]
//! whose chain is rooted at the owner (the owner signed the first link) and that authorizes the
//! right for the topic at the time of the check. Owned topics are private: reading needs a
//! capability too. Every other topic is open, as before capabilities existed.
//!
//! These are pure functions of their arguments: the relay, a replica or a client asking the same
//! question with the same capabilities and time gets the same answer.

use super::{Authorization, Capability, RevokedLinks, Right};
use crate::error::{Error, Result};
use crate::identity::{decode_lower_hex, AgentId};

/// The first character of an owned topic.
pub const OWNED_TOPIC_SIGIL: char = '@';

/// The owner of `topic`: `Some(agent)` when the topic is `@` followed by the agent id (64
/// lowercase hex characters of a valid key) and then `/` or nothing; `None` for every other
/// topic (which is open).
///
/// `@<id>` alone is owned too, so that no topic that looks like an agent's own is writable by
/// everyone. An `@` followed by anything else (upper-case hex, a short id, a small-order key)
/// names no owner.
pub fn topic_owner(topic: &str) -> Option<AgentId> {
    AgentId::from_bytes(&named_owner(topic)?).ok()
}

/// The 32 bytes an owned topic's name spells, before they are checked to be a valid key: what
/// [`topic_owner`] decompresses. Comparing them with a key known to be valid (an authenticated
/// agent, a verified chain's issuer) answers "owned by that key?" without decompressing.
fn named_owner(topic: &str) -> Option<Vec<u8>> {
    let rest = topic.strip_prefix(OWNED_TOPIC_SIGIL)?;
    let id = rest.get(..64)?;
    match &rest[64..] {
        "" => {}
        after if after.starts_with('/') => {}
        _ => return None,
    }
    decode_lower_hex(id, 32)
}

/// Whether `author` may publish to `topic` at `now_ms` holding `capabilities`.
///
/// Errors: `NOT_AUTHORIZED` when the topic is owned by another agent and no capability rooted at
/// the owner grants `write` on it to `author`; `CAPABILITY_EXPIRED` when the only ones that
/// would have have expired.
pub fn may_write(
    topic: &str,
    author: &AgentId,
    capabilities: &[Capability],
    now_ms: u64,
) -> Result<()> {
    may_use(topic, author, capabilities, Right::Write, now_ms, None)
}

/// Whether `reader` may subscribe to, replay, or ask proofs and checkpoints of `topic` at
/// `now_ms` holding `capabilities`. Errors as [`may_write`], for `read`.
pub fn may_read(
    topic: &str,
    reader: &AgentId,
    capabilities: &[Capability],
    now_ms: u64,
) -> Result<()> {
    may_use(topic, reader, capabilities, Right::Read, now_ms, None)
}

/// Whether `agent` may use `right` on `topic` at `now_ms` holding `capabilities`, when the
/// links in `revoked` (the topic's revocations, PROTOCOL.md 10.7) no longer count.
///
/// Errors, when no capability rooted at the owner grants it: `CAPABILITY_REVOKED` when one
/// would but a link of it is revoked; else `CAPABILITY_EXPIRED` when one would but has expired;
/// else `NOT_AUTHORIZED`.
pub fn may_use(
    topic: &str,
    agent: &AgentId,
    capabilities: &[Capability],
    right: Right,
    now_ms: u64,
    revoked: Option<&RevokedLinks>,
) -> Result<()> {
    let Some(named) = named_owner(topic) else {
        return Ok(());
    };
    // `agent` and the issuers of decoded chains are valid keys, so a topic naming one of them is
    // owned by it: decided without decompressing the name (the check runs on every publish).
    if agent.as_bytes()[..] == named[..] {
        return Ok(());
    }
    let mut rooted = capabilities
        .iter()
        .filter(|c| c.issuer().as_bytes()[..] == named[..])
        .peekable();
    let Some(first) = rooted.peek() else {
        // No chain of that key: owned (refused) only if the name is a valid key at all.
        return match topic_owner(topic) {
            None => Ok(()),
            Some(owner) => Err(not_authorized(agent, &owner, right, topic)),
        };
    };
    let owner = *first.issuer();
    let (mut revoked_error, mut expired) = (None, None);
    for capability in rooted {
        match capability.authorization(agent, topic, right, now_ms) {
            Authorization::Granted => match revoked.and_then(|r| r.revoked_at(capability)) {
                None => return Ok(()),
                Some(seq) => revoked_error = Some(seq),
            },
            Authorization::Expired => expired = Some(capability.expires_ms()),
            Authorization::Refused => {}
        }
    }
    // The words of the one refusal reported, formatted once.
    Err(match (revoked_error, expired) {
        (Some(seq), _) => Error::CapabilityRevoked(format!(
            "a link of {}'s capability on {topic:?} was revoked at seq {seq}",
            agent.short()
        )),
        (None, Some(expires_ms)) => Error::CapabilityExpired { expires_ms, now_ms },
        (None, None) => not_authorized(agent, &owner, right, topic),
    })
}

/// When every capability that lets `agent` use `right` on `topic` at `now_ms` has a link in
/// `revoked`: the seq from which it may not any more (the latest of their revocations: entries
/// before it were still its to read). `None` when the agent owns the topic, the topic is open,
/// one of them is not revoked, or none authorizes it at all (not a matter of revocation).
pub fn revoked_since(
    topic: &str,
    agent: &AgentId,
    capabilities: &[Capability],
    right: Right,
    now_ms: u64,
    revoked: &RevokedLinks,
) -> Option<u64> {
    let named = named_owner(topic)?;
    if agent.as_bytes()[..] == named[..] {
        return None;
    }
    let mut since = None;
    for capability in capabilities
        .iter()
        .filter(|c| c.issuer().as_bytes()[..] == named[..])
    {
        if capability.authorization(agent, topic, right, now_ms) == Authorization::Granted {
            let seq = revoked.revoked_at(capability)?;
            since = since.max(Some(seq));
        }
    }
    since
}

fn not_authorized(agent: &AgentId, owner: &AgentId, right: Right, topic: &str) -> Error {
    Error::NotAuthorized(format!(
        "{} holds no capability of the owner {} to {right} {topic:?}",
        agent.short(),
        owner.short()
    ))
}
