//! Vouch-quorum key recovery: the one place that needs real agreement (PROTOCOL.md section 6.4.5).
//!
//! An agent's id never changes; the key that signs for it can. The agent registers guardians
//! (`guardians.set`); when its key is lost, a guardian (or the agent) requests a rotation to a new
//! key and guardians approve. At [`threshold`]`(n) = ceil(2n/3)` approvals of its `n` registered
//! guardians the rotation is scheduled `recovery_delay_ms` later; until then the current key may
//! veto. When it takes effect, the old key is retired: ops it signs are refused (`KEY_ROTATED`)
//! and the new key signs for the agent, with all its balances and claims.
//!
//! One key never acts as two agents. A new key must be *free* when the rotation is requested
//! (else `KEY_IN_USE`) and again when it fires: if by then it became the current or a retired key
//! of another agent (an earlier-firing rotation to the same key, say), or acquired guardians,
//! claims or tasks of its own, the rotation is cancelled ([`Event::RecoveryCancelled`]) and the
//! agent keeps its key.

use std::collections::BTreeSet;

use super::claims::Claims;
use super::escrow::Ledger;
use super::events::{Event, RejectCode};
use super::ops::MAX_GUARDIANS;
use super::timers::{TimerKind, Timers};
use super::{Reject, Step};
use crate::identity::AgentId;
use crate::sorted_map::SortedMap;

/// Approvals a recovery needs from `guardians` registered guardians: `ceil(2n/3)`, computed as
/// `(2n + 2) div 3` in integers. 7 guardians → 5, 3 → 2, 1 → 1, 0 → 0 (and no recovery possible).
pub fn threshold(guardians: usize) -> u32 {
    (2 * guardians).div_ceil(3) as u32
}

/// A rotation waiting for approvals or for its delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecovery {
    /// The key that will sign for the agent.
    pub new_key: AgentId,
    /// Guardians who approved (agent ids, ascending).
    pub approvals: BTreeSet<AgentId>,
    /// Set once the threshold was reached: when the key rotates unless vetoed.
    pub effective_at_ms: Option<u64>,
}

/// Keys, guardians and pending rotations of every agent in a topic.
///
/// Invariants (`Recovery::check`): `key_owner` is exactly the inverse of `keys` (one current
/// key per rotated agent, one agent per current key); a key is in at most one of `key_owner` and
/// `retired`; a rotated agent's own id is retired for itself. So every key resolves to exactly
/// one agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Agent → current key, for agents whose key has rotated.
    pub(crate) keys: SortedMap<AgentId, AgentId>,
    /// Current key → agent (derived from `keys`).
    pub(crate) key_owner: SortedMap<AgentId, AgentId>,
    /// Retired key → the agent it used to sign for.
    pub(crate) retired: SortedMap<AgentId, AgentId>,
    /// Agent → its guardians (ascending, never empty).
    pub(crate) guardians: SortedMap<AgentId, Vec<AgentId>>,
    /// Agent → its pending rotation.
    pub(crate) pending: SortedMap<AgentId, PendingRecovery>,
}

impl Recovery {
    /// The agent an op signed by `key` acts for; `KEY_ROTATED` if the key was retired.
    pub(crate) fn signer(&self, key: &AgentId) -> Result<AgentId, Reject> {
        if let Some(agent) = self.key_owner.get(key) {
            return Ok(*agent);
        }
        if let Some(agent) = self.retired.get(key) {
            return Err(Reject::new(
                RejectCode::KeyRotated,
                format!("key {key} of agent {agent} was retired by recovery"),
            ));
        }
        Ok(*key)
    }

    /// The agent an id names when it is the object of an op (recipient, guardian, subject):
    /// a current or retired key names its agent, anything else names itself.
    pub fn agent_of(&self, id: &AgentId) -> AgentId {
        self.key_owner
            .get(id)
            .or_else(|| self.retired.get(id))
            .copied()
            .unwrap_or(*id)
    }

    /// The key that currently signs for `agent`.
    pub fn current_key(&self, agent: &AgentId) -> AgentId {
        let agent = self.agent_of(agent);
        self.keys.get(&agent).copied().unwrap_or(agent)
    }

    /// The guardians of `agent` (empty if none are registered).
    pub fn guardians(&self, agent: &AgentId) -> &[AgentId] {
        self.guardians
            .get(&self.agent_of(agent))
            .map_or(&[], Vec::as_slice)
    }

    /// The pending rotation of `agent`, if any.
    pub fn pending(&self, agent: &AgentId) -> Option<&PendingRecovery> {
        self.pending.get(&self.agent_of(agent))
    }

    /// `guardians.set`: replaces `who`'s guardians and cancels its pending rotation.
    pub(crate) fn set_guardians(
        &mut self,
        step: &Step<'_>,
        who: AgentId,
        guardians: &[AgentId],
        events: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let mut resolved: Vec<AgentId> = guardians.iter().map(|g| self.agent_of(g)).collect();
        resolved.sort_unstable();
        resolved.dedup();
        if resolved.contains(&who) {
            return Err(Reject::new(
                RejectCode::SelfGuardian,
                "an agent cannot guard itself",
            ));
        }
        debug_assert!(resolved.len() <= MAX_GUARDIANS);
        self.pending.remove(&who);
        let threshold = threshold(resolved.len());
        if resolved.is_empty() {
            self.guardians.remove(&who);
        } else {
            self.guardians.insert(who, resolved.clone());
        }
        events.push(Event::GuardiansSet {
            seq: step.seq,
            agent: who,
            guardians: resolved,
            threshold,
        });
        Ok(())
    }

    /// Why `key` cannot become `agent`'s key now, or `None` if it is free (PROTOCOL.md 6.4.5):
    /// it must not be the agent itself, nor a current or retired key (which resolve to an agent:
    /// a rotated agent's own id is retired), nor an agent with guardians (and so possibly a
    /// pending rotation of its own), a held claim or an open task. A balance does not count:
    /// anyone can send units to any key, so a balance must not block a rotation (it is merged).
    fn unfree(&self, claims: &Claims, agent: &AgentId, key: &AgentId) -> Option<String> {
        if key == agent {
            return Some(format!("{key} is the agent itself"));
        }
        if let Some(owner) = self.key_owner.get(key) {
            return Some(format!("{key} is the current key of {owner}"));
        }
        if let Some(owner) = self.retired.get(key) {
            return Some(format!("{key} is a retired key of {owner}"));
        }
        if self.guardians.contains_key(key) {
            return Some(format!("{key} has guardians of its own"));
        }
        if claims.involves(key) {
            return Some(format!("{key} holds a claim or posted an open task"));
        }
        None
    }

    /// `recovery.request`: by the agent or one of its guardians (whose request counts as its
    /// approval); replaces a pending rotation that is not yet scheduled.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn request(
        &mut self,
        step: &Step<'_>,
        ledger: &Ledger,
        claims: &Claims,
        timers: &mut Timers,
        who: AgentId,
        agent: AgentId,
        new_key: AgentId,
        events: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let agent = self.agent_of(&agent);
        let guardians = self.guardians.get(&agent).ok_or_else(|| {
            Reject::new(RejectCode::NoGuardians, format!("{agent} has no guardians"))
        })?;
        let is_guardian = guardians.binary_search(&who).is_ok();
        if !is_guardian && who != agent {
            return Err(not_guardian(&who, &agent));
        }
        let in_use = self
            .unfree(claims, &agent, &new_key)
            .or_else(|| (ledger.balance(&new_key) > 0).then(|| format!("{new_key} has a balance")));
        if let Some(reason) = in_use {
            return Err(Reject::new(RejectCode::KeyInUse, reason));
        }
        if let Some(PendingRecovery {
            effective_at_ms: Some(at),
            ..
        }) = self.pending.get(&agent)
        {
            return Err(Reject::new(
                RejectCode::RecoveryScheduled,
                format!("a rotation of {agent} takes effect at {at}"),
            ));
        }
        let threshold = threshold(guardians.len());
        let approvals: BTreeSet<AgentId> = if is_guardian {
            [who].into()
        } else {
            BTreeSet::new()
        };
        events.push(Event::RecoveryRequested {
            seq: step.seq,
            agent,
            new_key,
            approvals: approvals.len() as u32,
            threshold,
        });
        self.pending.insert(
            agent,
            PendingRecovery {
                new_key,
                approvals,
                effective_at_ms: None,
            },
        );
        self.schedule_if_ready(step, timers, agent, threshold, events);
        Ok(())
    }

    /// `recovery.approve`: a guardian approves the pending rotation to `new_key`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn approve(
        &mut self,
        step: &Step<'_>,
        timers: &mut Timers,
        who: AgentId,
        agent: AgentId,
        new_key: AgentId,
        events: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let agent = self.agent_of(&agent);
        let threshold = match self.guardians.get(&agent) {
            Some(guardians) if guardians.binary_search(&who).is_ok() => threshold(guardians.len()),
            _ => return Err(not_guardian(&who, &agent)),
        };
        let pending = match self.pending.get_mut(&agent) {
            Some(p) if p.new_key == new_key => p,
            _ => return Err(no_pending(&agent, &new_key)),
        };
        pending.approvals.insert(who);
        events.push(Event::RecoveryApproved {
            seq: step.seq,
            agent,
            new_key,
            guardian: who,
            approvals: pending.approvals.len() as u32,
            threshold,
        });
        self.schedule_if_ready(step, timers, agent, threshold, events);
        Ok(())
    }

    fn schedule_if_ready(
        &mut self,
        step: &Step<'_>,
        timers: &mut Timers,
        agent: AgentId,
        threshold: u32,
        events: &mut Vec<Event>,
    ) {
        let Some(pending) = self.pending.get_mut(&agent) else {
            return;
        };
        if pending.effective_at_ms.is_some() || (pending.approvals.len() as u32) < threshold {
            return;
        }
        let at = step.now.saturating_add(step.config.recovery_delay_ms);
        pending.effective_at_ms = Some(at);
        timers.schedule(at, TimerKind::Recovery, agent.as_bytes());
        events.push(Event::RecoveryScheduled {
            seq: step.seq,
            agent,
            new_key: pending.new_key,
            effective_at_ms: at,
        });
    }

    /// `recovery.veto`: the agent's current key cancels its pending rotation to `new_key`.
    pub(crate) fn veto(
        &mut self,
        step: &Step<'_>,
        who: AgentId,
        new_key: AgentId,
        events: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        match self.pending.get(&who) {
            Some(p) if p.new_key == new_key => {}
            _ => return Err(no_pending(&who, &new_key)),
        }
        self.pending.remove(&who);
        events.push(Event::RecoveryVetoed {
            seq: step.seq,
            agent: who,
            new_key,
        });
        Ok(())
    }

    /// A recovery timer fired: rotates `agent`'s key if its rotation is still due at `due` and
    /// the new key is still free; cancels the rotation if the key is no longer free. Free balance
    /// the new key held as an agent of its own is merged into `agent`'s.
    pub(crate) fn activate(
        &mut self,
        seq: u64,
        ledger: &mut Ledger,
        claims: &Claims,
        agent: &AgentId,
        due: u64,
        events: &mut Vec<Event>,
    ) {
        match self.pending.get(agent) {
            Some(p) if p.effective_at_ms == Some(due) => {}
            _ => return,
        }
        let Some(pending) = self.pending.remove(agent) else {
            return;
        };
        let new_key = pending.new_key;
        if self.unfree(claims, agent, &new_key).is_some() {
            events.push(Event::RecoveryCancelled {
                seq,
                agent: *agent,
                new_key,
                code: RejectCode::KeyInUse,
            });
            return;
        }
        let old_key = self.keys.get(agent).copied().unwrap_or(*agent);
        let stray = ledger.balance(&new_key);
        ledger.transfer(&new_key, agent, stray);
        self.key_owner.remove(&old_key);
        self.retired.insert(old_key, *agent);
        self.keys.insert(*agent, new_key);
        self.key_owner.insert(new_key, *agent);
        events.push(Event::KeyRotated {
            seq,
            agent: *agent,
            old_key,
            new_key,
        });
    }

    /// Checks that every key resolves to exactly one agent: `key_owner` inverts `keys`, no key
    /// is both current and retired, and a rotated agent's own id is retired for itself.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.key_owner.len() != self.keys.len()
            || self
                .keys
                .iter()
                .any(|(agent, key)| self.key_owner.get(key) != Some(agent))
        {
            return Err("two agents share a current key".into());
        }
        if let Some(key) = self.key_owner.keys().find(|k| self.retired.contains_key(k)) {
            return Err(format!("{key} is both a current and a retired key"));
        }
        if let Some(agent) = self.keys.keys().find(|a| self.retired.get(a) != Some(a)) {
            return Err(format!("rotated agent {agent} is not retired for itself"));
        }
        Ok(())
    }

    /// Re-creates the timers of scheduled rotations (after a restore).
    pub(crate) fn schedule_all(&self, timers: &mut Timers) {
        for (agent, pending) in &self.pending {
            if let Some(at) = pending.effective_at_ms {
                timers.schedule(at, TimerKind::Recovery, agent.as_bytes());
            }
        }
    }
}

fn not_guardian(who: &AgentId, agent: &AgentId) -> Reject {
    Reject::new(
        RejectCode::NotGuardian,
        format!("{who} is not a guardian of {agent}"),
    )
}

fn no_pending(agent: &AgentId, new_key: &AgentId) -> Reject {
    Reject::new(
        RejectCode::NoPendingRecovery,
        format!("no pending rotation of {agent} to {new_key}"),
    )
}

#[cfg(test)]
mod tests {
    use super::threshold;

    #[test]
    fn threshold_is_ceil_two_thirds() {
        let expect = [0, 1, 2, 2, 3, 4, 4, 5, 6, 6, 7];
        for (n, want) in expect.iter().enumerate() {
            assert_eq!(threshold(n), *want, "n = {n}");
            assert!(3 * threshold(n) as usize >= 2 * n);
        }
    }
}
