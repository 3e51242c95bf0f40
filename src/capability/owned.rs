//! Owned topics: `@<agent id>/…` belongs to that agent (PROTOCOL.md section 10.5).
//!
//! The owner may always read and write its topics; another agent may only with a [`Capability`]
//! whose chain is rooted at the owner (the owner signed the first link) and that authorizes the
//! right for the topic at the time of the check. Owned topics are private: reading needs a
//! capability too. Every other topic is open, as before capabilities existed.
//!
//! These are pure functions of their arguments: the relay, a replica or a client asking the same
//! question with the same capabilities and time gets the same answer.

use super::{Capability, Right};
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
    may(topic, author, capabilities, Right::Write, now_ms)
}

/// Whether `reader` may subscribe to, replay, or ask proofs and checkpoints of `topic` at
/// `now_ms` holding `capabilities`. Errors as [`may_write`], for `read`.
pub fn may_read(
    topic: &str,
    reader: &AgentId,
    capabilities: &[Capability],
    now_ms: u64,
) -> Result<()> {
    may(topic, reader, capabilities, Right::Read, now_ms)
}

fn may(
    topic: &str,
    agent: &AgentId,
    capabilities: &[Capability],
    right: Right,
    now_ms: u64,
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
    let mut expired = None;
    for capability in rooted {
        match capability.authorizes(agent, topic, right, now_ms) {
            Ok(()) => return Ok(()),
            Err(error @ Error::CapabilityExpired { .. }) => expired = Some(error),
            Err(_) => {}
        }
    }
    Err(expired.unwrap_or_else(|| not_authorized(agent, &owner, right, topic)))
}

fn not_authorized(agent: &AgentId, owner: &AgentId, right: Right, topic: &str) -> Error {
    Error::NotAuthorized(format!(
        "{} holds no capability of the owner {} to {right} {topic:?}",
        agent.short(),
        owner.short()
    ))
}
