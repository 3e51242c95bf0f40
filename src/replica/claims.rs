//! Optimistic claims with compensation, tasks, stakes and slashing (PROTOCOL.md section 6.4).
//!
//! An agent claims a resource and acts at once; the relay's order decides. The first claim in
//! sequence order holds the resource; a later claim by someone else either loses (and its author
//! gets a [`Event::Compensation`] to undo what it did optimistically) or, if it stakes strictly
//! more than the holder, takes the resource over (the old holder is refunded and compensated).
//! Leases end by relay time. A task is a resource with a reward escrowed from its poster and a
//! deadline; completing it pays the holder its stake back plus the reward, failing it or letting
//! the deadline pass slashes the stake (see [`SlashPolicy`]).

use super::config::{ReplicaConfig, SlashPolicy};
use super::escrow::Ledger;
use super::events::{Event, LossReason, RejectCode, SlashedTo};
use super::timers::{TimerKind, Timers};
use super::{Reject, Step};
use crate::identity::AgentId;

/// A held resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The agent holding it.
    pub holder: AgentId,
    /// Units escrowed from the holder.
    pub stake: u64,
    /// The seq of the claim that won it.
    pub seq: u64,
    /// Relay time at which the lease ends (the claim lapses at the first entry at or after it).
    pub lease_until_ms: u64,
}

/// An open task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Who posted it (and pays the reward).
    pub poster: AgentId,
    /// The escrowed reward.
    pub reward: u64,
    /// Relay time at which it lapses.
    pub deadline_ms: u64,
    /// The seq of the `task.post`.
    pub seq: u64,
}

/// Every held claim and open task of a topic, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    pub(crate) held: std::collections::BTreeMap<String, Claim>,
    pub(crate) tasks: std::collections::BTreeMap<String, Task>,
}

fn slash_target(config: &ReplicaConfig, task: Option<&Task>) -> (SlashedTo, Option<AgentId>) {
    match (config.slash_policy, task) {
        (SlashPolicy::Poster, Some(task)) => (SlashedTo::Poster, Some(task.poster)),
        _ => (SlashedTo::Burned, None),
    }
}

fn slash(ledger: &mut Ledger, amount: u64, to: Option<AgentId>) {
    match to {
        Some(poster) => ledger.pay_out(&poster, amount),
        None => ledger.burn_escrowed(amount),
    }
}

impl Claims {
    /// The claim on `resource`, if held.
    pub fn get(&self, resource: &str) -> Option<&Claim> {
        self.held.get(resource)
    }

    /// The open task `name`, if any.
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.tasks.get(name)
    }

    /// Whether `agent` holds a claim or posted an open task.
    pub(crate) fn involves(&self, agent: &AgentId) -> bool {
        self.held.values().any(|c| c.holder == *agent)
            || self.tasks.values().any(|t| t.poster == *agent)
    }

    /// Units held in escrow by claims and tasks.
    pub fn escrowed(&self) -> u128 {
        let stakes: u128 = self.held.values().map(|c| u128::from(c.stake)).sum();
        let rewards: u128 = self.tasks.values().map(|t| u128::from(t.reward)).sum();
        stakes + rewards
    }

    /// `claim`: see the module docs for the rules.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn claim(
        &mut self,
        step: &Step<'_>,
        ledger: &mut Ledger,
        timers: &mut Timers,
        who: AgentId,
        resource: String,
        lease_ms: u64,
        stake: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let config = step.config;
        let lease = match lease_ms {
            0 => config.default_lease_ms,
            asked => asked.min(config.max_lease_ms),
        };
        let mut lease_until_ms = step.now.saturating_add(lease);
        // An open task's deadline is after the clock: its deadline timer fired before this op
        // otherwise (and closed it). A task is held until it is completed, failed, released or
        // its deadline passes: a lease that ran out first would let an idle holder dodge the
        // slash.
        if let Some(task) = self.tasks.get(&resource) {
            lease_until_ms = task.deadline_ms;
        }
        let claimed = |resource: String| Event::Claimed {
            seq: step.seq,
            resource,
            holder: who,
            stake,
            lease_until_ms,
        };
        match self.held.get_mut(&resource) {
            None => {
                if !ledger.escrow(&who, stake) {
                    return Err(insufficient(ledger, &who, stake));
                }
                timers.schedule(lease_until_ms, TimerKind::Lease, resource.as_bytes());
                self.held.insert(
                    resource.clone(),
                    Claim {
                        holder: who,
                        stake,
                        seq: step.seq,
                        lease_until_ms,
                    },
                );
                events.push(claimed(resource));
            }
            Some(current) if current.holder == who => {
                current.lease_until_ms = current.lease_until_ms.max(lease_until_ms);
                timers.schedule(
                    current.lease_until_ms,
                    TimerKind::Lease,
                    resource.as_bytes(),
                );
                events.push(Event::ClaimRenewed {
                    seq: step.seq,
                    lease_until_ms: current.lease_until_ms,
                    resource,
                    holder: who,
                });
            }
            Some(current) if stake > current.stake => {
                if !ledger.escrow(&who, stake) {
                    return Err(insufficient(ledger, &who, stake));
                }
                let outbid = std::mem::replace(
                    current,
                    Claim {
                        holder: who,
                        stake,
                        seq: step.seq,
                        lease_until_ms,
                    },
                );
                ledger.pay_out(&outbid.holder, outbid.stake);
                timers.schedule(lease_until_ms, TimerKind::Lease, resource.as_bytes());
                events.push(claimed(resource.clone()));
                events.push(Event::Compensation {
                    seq: step.seq,
                    kind: super::ops::kind::CLAIM.into(),
                    resource,
                    loser: outbid.holder,
                    winner: who,
                    winning_seq: step.seq,
                    losing_seq: outbid.seq,
                    reason: LossReason::Outbid,
                    refunded: outbid.stake,
                });
            }
            Some(current) => {
                events.push(Event::Compensation {
                    seq: step.seq,
                    kind: super::ops::kind::CLAIM.into(),
                    resource,
                    loser: who,
                    winner: current.holder,
                    winning_seq: current.seq,
                    losing_seq: step.seq,
                    reason: LossReason::Conflict,
                    refunded: 0,
                });
            }
        }
        Ok(())
    }

    fn held_by(&self, resource: &str, who: &AgentId) -> Result<&Claim, Reject> {
        let claim = self
            .held
            .get(resource)
            .ok_or_else(|| not_claimed(resource))?;
        if claim.holder != *who {
            return Err(Reject::new(
                RejectCode::NotHolder,
                format!("{resource} is held by {}", claim.holder),
            ));
        }
        Ok(claim)
    }

    /// `claim.release`: the holder gives the resource up, its stake returned.
    pub(crate) fn release(
        &mut self,
        step: &Step<'_>,
        ledger: &mut Ledger,
        who: AgentId,
        resource: String,
        events: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let stake = self.held_by(&resource, &who)?.stake;
        self.held.remove(&resource);
        ledger.pay_out(&who, stake);
        events.push(Event::Released {
            seq: step.seq,
            resource,
            holder: who,
            refunded: stake,
        });
        Ok(())
    }

    /// `claim.complete`: by the task's poster for a task, by the holder otherwise; the holder
    /// gets its stake back plus the task's reward and the task closes.
    pub(crate) fn complete(
        &mut self,
        step: &Step<'_>,
        ledger: &mut Ledger,
        who: AgentId,
        resource: String,
        events: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let claim = self
            .held
            .get(&resource)
            .ok_or_else(|| not_claimed(&resource))?;
        let holder = claim.holder;
        match self.tasks.get(&resource) {
            Some(task) if task.poster != who => {
                return Err(Reject::new(
                    RejectCode::NotPoster,
                    format!("only the poster {} completes task {resource}", task.poster),
                ))
            }
            Some(_) => {}
            None => {
                self.held_by(&resource, &who)?;
            }
        }
        let stake = claim.stake;
        self.held.remove(&resource);
        let reward = self.tasks.remove(&resource).map_or(0, |t| t.reward);
        ledger.pay_out(&holder, stake);
        ledger.pay_out(&holder, reward);
        events.push(Event::Completed {
            seq: step.seq,
            resource,
            holder,
            refunded: stake,
            reward,
        });
        Ok(())
    }

    /// `claim.fail`: by the holder, or the task's poster; the stake is slashed and a task stays
    /// open for others until its deadline.
    pub(crate) fn fail(
        &mut self,
        step: &Step<'_>,
        ledger: &mut Ledger,
        who: AgentId,
        resource: String,
        events: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let claim = self
            .held
            .get(&resource)
            .ok_or_else(|| not_claimed(&resource))?;
        let task = self.tasks.get(&resource);
        let by_poster = task.is_some_and(|t| t.poster == who);
        if claim.holder != who && !by_poster {
            return Err(Reject::new(
                RejectCode::NotHolder,
                format!("{resource} is held by {}", claim.holder),
            ));
        }
        let (slashed_to, target) = slash_target(step.config, task);
        let (holder, stake) = (claim.holder, claim.stake);
        self.held.remove(&resource);
        slash(ledger, stake, target);
        events.push(Event::Failed {
            seq: step.seq,
            resource,
            holder,
            slashed: stake,
            slashed_to,
        });
        Ok(())
    }

    /// `task.post`: opens a task, escrowing its reward from the poster.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn post_task(
        &mut self,
        step: &Step<'_>,
        ledger: &mut Ledger,
        timers: &mut Timers,
        poster: AgentId,
        name: String,
        reward: u64,
        deadline_ms: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        if self.tasks.contains_key(&name) {
            return Err(Reject::new(
                RejectCode::TaskExists,
                format!("task {name} is open"),
            ));
        }
        if deadline_ms <= step.now {
            return Err(Reject::new(
                RejectCode::DeadlinePassed,
                format!("deadline {deadline_ms} is not after {}", step.now),
            ));
        }
        if !ledger.escrow(&poster, reward) {
            return Err(insufficient(ledger, &poster, reward));
        }
        timers.schedule(deadline_ms, TimerKind::Deadline, name.as_bytes());
        self.tasks.insert(
            name.clone(),
            Task {
                poster,
                reward,
                deadline_ms,
                seq: step.seq,
            },
        );
        events.push(Event::TaskPosted {
            seq: step.seq,
            task: name,
            poster,
            reward,
            deadline_ms,
        });
        Ok(())
    }

    /// A lease timer fired: the claim lapses (stake returned) if it still ends at `due`.
    pub(crate) fn expire_lease(
        &mut self,
        seq: u64,
        ledger: &mut Ledger,
        resource: &str,
        due: u64,
        events: &mut Vec<Event>,
    ) {
        if self.held.get(resource).map(|c| c.lease_until_ms) != Some(due) {
            return;
        }
        if let Some(claim) = self.held.remove(resource) {
            ledger.pay_out(&claim.holder, claim.stake);
            events.push(Event::LeaseExpired {
                seq,
                resource: resource.to_owned(),
                holder: claim.holder,
                refunded: claim.stake,
            });
        }
    }

    /// A deadline timer fired: the task closes if it still lapses at `due`; a holder's stake is
    /// slashed, the reward goes back to the poster.
    pub(crate) fn expire_task(
        &mut self,
        seq: u64,
        config: &ReplicaConfig,
        ledger: &mut Ledger,
        name: &str,
        due: u64,
        events: &mut Vec<Event>,
    ) {
        if self.tasks.get(name).map(|t| t.deadline_ms) != Some(due) {
            return;
        }
        let Some(task) = self.tasks.remove(name) else {
            return;
        };
        let (slashed_to, target) = slash_target(config, Some(&task));
        let claim = self.held.remove(name);
        let slashed = claim.as_ref().map_or(0, |c| c.stake);
        slash(ledger, slashed, target);
        ledger.pay_out(&task.poster, task.reward);
        events.push(Event::TaskExpired {
            seq,
            task: name.to_owned(),
            holder: claim.map(|c| c.holder),
            slashed,
            slashed_to,
            refunded: task.reward,
        });
    }

    /// Re-creates the timers of every claim and task (after a restore).
    pub(crate) fn schedule_all(&self, timers: &mut Timers) {
        for (name, claim) in &self.held {
            timers.schedule(claim.lease_until_ms, TimerKind::Lease, name.as_bytes());
        }
        for (name, task) in &self.tasks {
            timers.schedule(task.deadline_ms, TimerKind::Deadline, name.as_bytes());
        }
    }
}

fn not_claimed(resource: &str) -> Reject {
    Reject::new(RejectCode::NotClaimed, format!("{resource} is not held"))
}

fn insufficient(ledger: &Ledger, who: &AgentId, need: u64) -> Reject {
    Reject::new(
        RejectCode::InsufficientBalance,
        format!("{who} has {} of the {need} needed", ledger.balance(who)),
    )
}
