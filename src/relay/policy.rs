//! The operator's access policies for topic prefixes (`[[access]]` tables of the config file,
//! PROTOCOL.md 10.9): a prefix whose reads or writes are closed, and the key that guards it.
//!
//! An owned topic (`@<agent id>/…`) is its owner's alone: no policy applies to it. Any other
//! topic takes the policy of the longest configured prefix it starts with, if any; without one
//! it is open, as before policies existed. A closed right is granted, as on an owned topic, to
//! the guarding key itself and to agents holding a capability rooted at it (PROTOCOL.md 10.4),
//! checked by the relay only: replicas know nothing of a relay's configuration, and revocation
//! (10.7) applies to owned topics only, so such a capability ends at its expiry.

use serde::Deserialize;

use crate::capability::{topic_owner, Right};
use crate::error::{Error, Result};
use crate::identity::AgentId;

/// Whether a right on a prefix's topics needs a capability.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Openness {
    /// Every agent may (the default).
    #[default]
    Open,
    /// Only the guarding key and holders of its capabilities may.
    Closed,
}

/// One `[[access]]` table of the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicAccessConfig {
    /// The topics it covers: those whose name starts with it (`""`: every topic not owned).
    pub prefix: String,
    /// The guarding key (64 lowercase hex characters): it may read and write the prefix's
    /// topics, and capabilities rooted at it grant closed rights to others.
    pub guard: String,
    /// Reading (subscribe, replay, proofs, checkpoints; joining a Yjs room by that name or
    /// bridged to such a topic).
    #[serde(default)]
    pub read: Openness,
    /// Writing (publishing; a Yjs room's document updates).
    #[serde(default)]
    pub write: Openness,
}

#[derive(Debug, Clone)]
struct TopicPolicy {
    prefix: String,
    guard: AgentId,
    read: Openness,
    write: Openness,
}

/// The relay's access policies, longest prefix first. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct TopicPolicies(Vec<TopicPolicy>);

/// Most `[[access]]` tables a config may hold.
pub const MAX_POLICIES: usize = 1024;

impl TopicPolicies {
    /// The policies of `tables`.
    ///
    /// Errors: `BAD_INPUT` naming the table for a guard that is not an agent id, a prefix that
    /// starts with `@` (owned topics are their owners'), a prefix given twice, or more than
    /// [`MAX_POLICIES`] tables.
    pub fn new(tables: &[TopicAccessConfig]) -> Result<Self> {
        if tables.len() > MAX_POLICIES {
            return Err(Error::BadInput(format!(
                "at most {MAX_POLICIES} [[access]] tables, got {}",
                tables.len()
            )));
        }
        let mut policies = Vec::with_capacity(tables.len());
        for table in tables {
            let context = |why: String| {
                Error::BadInput(format!("[[access]] prefix {:?}: {why}", table.prefix))
            };
            if table
                .prefix
                .starts_with(crate::capability::owned::OWNED_TOPIC_SIGIL)
            {
                return Err(context(
                    "an owned topic (@<agent id>/…) is its owner's; no policy applies".into(),
                ));
            }
            if policies
                .iter()
                .any(|p: &TopicPolicy| p.prefix == table.prefix)
            {
                return Err(context("given twice".into()));
            }
            let guard = table
                .guard
                .parse::<AgentId>()
                .map_err(|e| context(format!("guard: {e}")))?;
            policies.push(TopicPolicy {
                prefix: table.prefix.clone(),
                guard,
                read: table.read,
                write: table.write,
            });
        }
        policies.sort_by_key(|p| std::cmp::Reverse(p.prefix.len()));
        Ok(TopicPolicies(policies))
    }

    /// The key whose capability `right` on `topic` needs under these policies: `None` when
    /// the topic is owned (section 10.5 decides) or the right is open on it.
    pub fn guard(&self, topic: &str, right: Right) -> Option<&AgentId> {
        let policy = self.0.iter().find(|p| topic.starts_with(&p.prefix))?;
        // No prefix starts with `@`, so only `""` covers a name that may be owned; the check
        // (a key decompression) runs only then, not on every publish of an owned topic.
        if topic.starts_with(crate::capability::owned::OWNED_TOPIC_SIGIL)
            && topic_owner(topic).is_some()
        {
            return None;
        }
        let openness = match right {
            Right::Read => policy.read,
            // Delegating is decided by the chain's own links (10.3), never by the relay.
            Right::Write | Right::Delegate => policy.write,
        };
        (openness == Openness::Closed).then_some(&policy.guard)
    }

    /// Whether a policy closes reading or writing `topic`: a Yjs room guarded by it is then
    /// private (its connections need a room proof, PROTOCOL.md 8.7.1).
    pub fn closes_any(&self, topic: &str) -> bool {
        self.guard(topic, Right::Read).is_some() || self.guard(topic, Right::Write).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn table(prefix: &str, guard: &AgentId, read: Openness, write: Openness) -> TopicAccessConfig {
        TopicAccessConfig {
            prefix: prefix.into(),
            guard: guard.to_string(),
            read,
            write,
        }
    }

    #[test]
    fn the_longest_prefix_decides_and_owned_topics_are_never_covered() {
        let ops = Identity::from_seed(&[1; 32]).unwrap().agent_id();
        let audit = Identity::from_seed(&[2; 32]).unwrap().agent_id();
        let policies = TopicPolicies::new(&[
            table("", &ops, Openness::Open, Openness::Closed),
            table("ops/", &ops, Openness::Closed, Openness::Closed),
            table("ops/public/", &audit, Openness::Open, Openness::Closed),
        ])
        .unwrap();
        assert_eq!(policies.guard("ops/x", Right::Read), Some(&ops));
        assert_eq!(policies.guard("ops/public/x", Right::Read), None);
        assert_eq!(policies.guard("ops/public/x", Right::Write), Some(&audit));
        assert_eq!(policies.guard("chat", Right::Read), None);
        assert_eq!(policies.guard("chat", Right::Write), Some(&ops));
        let owned = format!("@{ops}/notes");
        assert_eq!(policies.guard(&owned, Right::Write), None);
        // `@` followed by no agent id is no owned topic: the catch-all covers it.
        assert_eq!(policies.guard("@nobody", Right::Write), Some(&ops));
        assert!(policies.closes_any("ops/y") && policies.closes_any("chat"));
        assert!(!TopicPolicies::default().closes_any("ops/y"));
        assert_eq!(TopicPolicies::default().guard("ops/x", Right::Read), None);
    }

    #[test]
    fn bad_tables_are_refused_with_their_prefix() {
        let ops = Identity::from_seed(&[1; 32]).unwrap().agent_id();
        let code = |tables: &[TopicAccessConfig]| TopicPolicies::new(tables).unwrap_err();
        let mut bad_guard = table("x/", &ops, Openness::Closed, Openness::Open);
        bad_guard.guard = "AB".into();
        assert!(code(&[bad_guard]).to_string().contains("\"x/\""));
        let owned = table(&format!("@{ops}/"), &ops, Openness::Closed, Openness::Open);
        assert_eq!(code(&[owned]).code(), "BAD_INPUT");
        let twice = table("x/", &ops, Openness::Closed, Openness::Open);
        assert_eq!(code(&[twice.clone(), twice]).code(), "BAD_INPUT");
    }
}
