//! The replica: one topic's coordination state as a pure function of the relay's ordered log.
//!
//! [`Replica::apply`] folds one sequenced [`Entry`] and returns the [`Event`]s it caused. The only
//! clock is the relay time of the entries (the largest seen so far, so it never runs backwards);
//! leases, task deadlines and scheduled key rotations that fall due at or before an entry's time
//! take effect before that entry's op. An op that breaks a rule is recorded as
//! [`Event::Rejected`] and changes nothing else; only an entry of another topic or out of
//! sequence is refused with an error (and changes nothing at all).
//!
//! Two replicas that applied the same entries have the same [`Replica::snapshot`] bytes and so
//! the same [`Replica::state_hash`] (PROTOCOL.md section 6).

pub mod claims;
pub mod config;
pub mod escrow;
pub mod events;
pub mod ops;
pub mod recovery;
mod state;
mod timers;

use std::collections::VecDeque;

use sha2::{Digest, Sha256};

use crate::capability::authority::{Admission, Authority};
use crate::capability::topic_owner;
use crate::election::{self, Election};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::op::{validate_topic, OpId, SignedOp};
use claims::{Claim, Claims, Task};
use escrow::{Ledger, Supply};
use recovery::{PendingRecovery, Recovery};

pub use config::{ReplicaConfig, SlashPolicy};
pub use events::{Event, LossReason, RejectCode, SlashedTo};
pub use ops::ReplicaOp;

use timers::{TimerKind, Timers};

/// A rule broken by an op: recorded as [`Event::Rejected`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reject {
    pub(crate) code: RejectCode,
    pub(crate) reason: String,
}

impl Reject {
    pub(crate) fn new(code: RejectCode, reason: impl Into<String>) -> Self {
        Reject {
            code,
            reason: reason.into(),
        }
    }
}

/// The entry being applied, as the rules see it.
pub(crate) struct Step<'a> {
    pub(crate) seq: u64,
    pub(crate) now: u64,
    pub(crate) config: &'a ReplicaConfig,
}

/// One item of the public feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    /// The entry.
    pub seq: u64,
    /// The agent who signed it.
    pub author: AgentId,
    /// What it says.
    pub content: FeedContent,
}

/// What a feed item says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedContent {
    /// A `post`.
    Post {
        /// The text.
        text: String,
    },
    /// A `vouch`.
    Vouch {
        /// The agent spoken about.
        subject: AgentId,
        /// The statement.
        statement: String,
    },
    /// An op of a kind the replica does not interpret (e.g. `doc.update`).
    Other {
        /// Its kind.
        kind: String,
        /// Its op id (the body is not kept).
        op_id: OpId,
    },
}

/// The coordination state of one topic.
///
/// Invariants: `next_seq` entries (0..next_seq) have been applied; `now_ms` is the largest relay
/// time among them; the ledger balances against the escrow held by claims and tasks; the feed
/// holds at most `config.feed_capacity` items, oldest first.
#[derive(Debug, Clone)]
pub struct Replica {
    topic: String,
    config: ReplicaConfig,
    next_seq: u64,
    now_ms: u64,
    ledger: Ledger,
    claims: Claims,
    recovery: Recovery,
    feed: VecDeque<FeedItem>,
    timers: Timers,
    known_ids: KnownIds,
    /// For a topic with an owner (`@<agent id>/…`): the capabilities presented and the links
    /// revoked in it (PROTOCOL.md 10.7, 10.8); `None` for an open topic.
    authority: Option<Authority>,
}

/// Agent ids already validated as public keys: a cache (never state) that spares re-checking a
/// curve point for every op naming a known agent. Bounded: it is cleared when full.
#[derive(Debug, Clone, Default)]
struct KnownIds(std::collections::HashMap<[u8; 32], AgentId>);

impl KnownIds {
    const CAPACITY: usize = 1 << 16;

    fn remember(&mut self, id: &AgentId) {
        if self.0.len() >= Self::CAPACITY {
            self.0.clear();
        }
        self.0.entry(*id.as_bytes()).or_insert(*id);
    }

    fn check(&mut self, bytes: &[u8]) -> Result<AgentId> {
        if let Ok(key) = <[u8; 32]>::try_from(bytes) {
            if let Some(id) = self.0.get(&key) {
                return Ok(*id);
            }
        }
        let id = AgentId::from_bytes(bytes)?;
        self.remember(&id);
        Ok(id)
    }
}

impl Replica {
    /// An empty replica of `topic` with `config` (made canonical). `BAD_TOPIC`, `BAD_INPUT`,
    /// `LIMIT_EXCEEDED` for an invalid topic or config.
    pub fn new(topic: &str, config: ReplicaConfig) -> Result<Self> {
        validate_topic(topic)?;
        Ok(Replica {
            topic: topic.to_owned(),
            config: config.canonical()?,
            next_seq: 0,
            now_ms: 0,
            ledger: Ledger::default(),
            claims: Claims::default(),
            recovery: Recovery::default(),
            feed: VecDeque::new(),
            timers: Timers::default(),
            known_ids: KnownIds::default(),
            authority: topic_owner(topic).map(Authority::new),
        })
    }

    /// Folds the next entry. `WRONG_TOPIC` or `OUT_OF_ORDER` (nothing changed) if it is not the
    /// next entry of this topic; otherwise the events it caused, timed ones first.
    pub fn apply(&mut self, entry: &Entry) -> Result<Vec<Event>> {
        if entry.topic() != self.topic {
            return Err(Error::WrongTopic {
                expected: self.topic.clone(),
                got: entry.topic().to_owned(),
            });
        }
        if entry.seq() != self.next_seq {
            return Err(Error::OutOfOrder {
                expected: self.next_seq,
                got: entry.seq(),
            });
        }
        let seq = entry.seq();
        self.next_seq += 1;
        self.now_ms = self.now_ms.max(entry.relay_time_ms());
        let mut events = Vec::new();
        self.fire_timers(seq, &mut events);
        let kind = entry.op().kind();
        if let Err(reject) = self.apply_op(seq, entry, &mut events) {
            events.push(Event::Rejected {
                seq,
                kind: kind.to_owned(),
                code: reject.code,
                reason: reject.reason,
            });
        }
        Ok(events)
    }

    fn fire_timers(&mut self, seq: u64, events: &mut Vec<Event>) {
        while let Some((due, kind, key)) = self.timers.pop_due(self.now_ms) {
            match kind {
                TimerKind::Lease => {
                    if let Ok(resource) = std::str::from_utf8(&key) {
                        self.claims
                            .expire_lease(seq, &mut self.ledger, resource, due, events);
                    }
                }
                TimerKind::Deadline => {
                    if let Ok(task) = std::str::from_utf8(&key) {
                        self.claims.expire_task(
                            seq,
                            &self.config,
                            &mut self.ledger,
                            task,
                            due,
                            events,
                        );
                    }
                }
                TimerKind::Recovery => {
                    if let Ok(agent) = AgentId::from_bytes(&key) {
                        self.recovery.activate(
                            seq,
                            &mut self.ledger,
                            &self.claims,
                            &agent,
                            due,
                            events,
                        );
                    }
                }
            }
        }
    }

    fn apply_op(&mut self, seq: u64, entry: &Entry, events: &mut Vec<Event>) -> Result<(), Reject> {
        let op = entry.op();
        self.known_ids.remember(op.author());
        let who = self.recovery.signer(op.author())?;
        // An owned topic counts only what its owner, or a holder of a capability presented in
        // it, writes; `cap.present`, `cap.revoke` and the owner's `topic.policy` change its
        // authority and nothing else.
        if let Some(authority) = self.authority.as_mut() {
            let admission = authority
                .check(&self.topic, &who, op.kind(), op.body(), self.now_ms)
                .map_err(authority_reject)?;
            if let Some(event) = authority_event(&admission, seq, who) {
                authority.admit(admission, seq, self.now_ms);
                events.push(event);
                return Ok(());
            }
        }
        if !ReplicaOp::is_known_kind(op.kind()) {
            events.push(Event::Recorded {
                seq,
                kind: op.kind().to_owned(),
                author: who,
            });
            self.push_feed(FeedItem {
                seq,
                author: who,
                content: FeedContent::Other {
                    kind: op.kind().to_owned(),
                    op_id: op.id(),
                },
            });
            return Ok(());
        }
        let known_ids = &mut self.known_ids;
        let body = ReplicaOp::decode_with(op.kind(), op.body(), &mut |b| known_ids.check(b))
            .map_err(|e| Reject::new(RejectCode::MalformedBody, e.to_string()))?;
        let step = Step {
            seq,
            now: self.now_ms,
            config: &self.config,
        };
        match body {
            ReplicaOp::Post { text } => {
                events.push(Event::Posted {
                    seq,
                    author: who,
                    text: text.clone(),
                });
                self.push_feed(FeedItem {
                    seq,
                    author: who,
                    content: FeedContent::Post { text },
                });
            }
            ReplicaOp::Vouch { subject, statement } => {
                let subject = self.recovery.agent_of(&subject);
                events.push(Event::Vouched {
                    seq,
                    author: who,
                    subject,
                    statement: statement.clone(),
                });
                self.push_feed(FeedItem {
                    seq,
                    author: who,
                    content: FeedContent::Vouch { subject, statement },
                });
            }
            ReplicaOp::Claim {
                resource,
                lease_ms,
                stake,
                fence,
            } => {
                if let Some(window) = fence {
                    self.check_fence(&who, window)?;
                }
                self.claims.claim(
                    &step,
                    &mut self.ledger,
                    &mut self.timers,
                    who,
                    resource,
                    lease_ms,
                    stake,
                    events,
                )?;
            }
            ReplicaOp::Release { resource } => {
                self.claims
                    .release(&step, &mut self.ledger, who, resource, events)?;
            }
            ReplicaOp::Complete { resource } => {
                self.claims
                    .complete(&step, &mut self.ledger, who, resource, events)?;
            }
            ReplicaOp::Fail { resource } => {
                self.claims
                    .fail(&step, &mut self.ledger, who, resource, events)?;
            }
            ReplicaOp::TaskPost {
                task,
                reward,
                deadline_ms,
            } => {
                self.claims.post_task(
                    &step,
                    &mut self.ledger,
                    &mut self.timers,
                    who,
                    task,
                    reward,
                    deadline_ms,
                    events,
                )?;
            }
            ReplicaOp::Mint { to, amount } => {
                if !self.config.is_issuer(&who) {
                    return Err(Reject::new(
                        RejectCode::NotIssuer,
                        format!("{who} is not an issuer of this topic"),
                    ));
                }
                let to = self.recovery.agent_of(&to);
                if !self.ledger.mint(&to, amount) {
                    return Err(Reject::new(
                        RejectCode::SupplyOverflow,
                        "minting would overflow the supply",
                    ));
                }
                events.push(Event::Minted { seq, to, amount });
            }
            ReplicaOp::Transfer { to, amount } => {
                let to = self.recovery.agent_of(&to);
                if !self.ledger.transfer(&who, &to, amount) {
                    return Err(Reject::new(
                        RejectCode::InsufficientBalance,
                        format!(
                            "{who} has {} of the {amount} needed",
                            self.ledger.balance(&who)
                        ),
                    ));
                }
                events.push(Event::Transferred {
                    seq,
                    from: who,
                    to,
                    amount,
                });
            }
            ReplicaOp::GuardiansSet { guardians } => {
                self.recovery
                    .set_guardians(&step, who, &guardians, events)?;
            }
            ReplicaOp::RecoveryRequest { agent, new_key } => {
                self.recovery.request(
                    &step,
                    &self.ledger,
                    &self.claims,
                    &mut self.timers,
                    who,
                    agent,
                    new_key,
                    events,
                )?;
            }
            ReplicaOp::RecoveryApprove { agent, new_key } => {
                self.recovery
                    .approve(&step, &mut self.timers, who, agent, new_key, events)?;
            }
            ReplicaOp::RecoveryVeto { new_key } => {
                self.recovery.veto(&step, who, new_key, events)?;
            }
            ReplicaOp::LeaderAct { window, payload } => {
                self.check_fence(&who, window)?;
                events.push(Event::LeaderActed {
                    seq,
                    leader: who,
                    window,
                    payload,
                });
            }
        }
        Ok(())
    }

    /// Whether an honest relay may sequence `op` next, at relay time `now_ms`: `Err` with the
    /// code the owned-topic rules (PROTOCOL.md 10.7, 10.8) would reject it with at the next
    /// entry (`NOT_AUTHORIZED`, `CAPABILITY_EXPIRED`, `CAPABILITY_REVOKED`, `LIMIT_EXCEEDED`
    /// for a full table, or the body's decoding code for a `cap.present` / `cap.revoke`).
    /// Always `Ok` for an open topic and for an op the replica would reject `KEY_ROTATED`
    /// first. The relay asks this before it sequences, so that what it logs counts everywhere.
    pub fn authorize(&self, op: &SignedOp, now_ms: u64) -> Result<()> {
        let Some(authority) = &self.authority else {
            return Ok(());
        };
        let Ok(who) = self.recovery.signer(op.author()) else {
            return Ok(());
        };
        let now_ms = self.now_ms.max(now_ms);
        authority
            .check(&self.topic, &who, op.kind(), op.body(), now_ms)
            .map(drop)
    }

    /// A leader-only op in `window` by `who`: the window must be current and `who` its leader.
    fn check_fence(&self, who: &AgentId, window: u64) -> Result<(), Reject> {
        let current = self.now_ms / self.config.election_window_ms;
        if window != current {
            return Err(Reject::new(
                RejectCode::StaleFence,
                format!("fence {window} but the current window is {current}"),
            ));
        }
        let leader = self.leader_in_window(window).ok_or_else(|| {
            Reject::new(
                RejectCode::NoCandidates,
                "no election candidates configured",
            )
        })?;
        if leader != *who {
            return Err(Reject::new(
                RejectCode::NotLeader,
                format!("{leader} leads window {window}"),
            ));
        }
        Ok(())
    }

    fn leader_in_window(&self, window: u64) -> Option<AgentId> {
        let ranking = election::rank(
            &self.topic,
            &self.config.candidates,
            window,
            self.config.election_mode,
            Some(1),
        )
        .ok()?;
        ranking.first().filter(|s| s.weight > 0).map(|s| s.agent)
    }

    fn push_feed(&mut self, item: FeedItem) {
        let capacity = self.config.feed_capacity as usize;
        if capacity == 0 {
            return;
        }
        while self.feed.len() >= capacity {
            self.feed.pop_front();
        }
        self.feed.push_back(item);
    }

    // ---- queries ----

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// The configuration (canonical form).
    pub fn config(&self) -> &ReplicaConfig {
        &self.config
    }
    /// The seq of the next entry to apply (= entries applied so far).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
    /// The replica's clock: the largest relay time applied so far.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }
    /// The election among the configured candidates at `now_ms` (any time, not only the
    /// replica's clock). `NO_CANDIDATES` if none are configured.
    pub fn leader(&self, now_ms: u64) -> Result<Election> {
        election::elect(
            &self.topic,
            &self.config.candidates,
            now_ms,
            self.config.election_window_ms,
            self.config.election_mode,
            None,
        )
    }
    /// The claim on `resource` as of the last entry (a lease past due lapses at the next entry).
    pub fn claim(&self, resource: &str) -> Option<&Claim> {
        self.claims.get(resource)
    }
    /// The holder of `resource`, if held.
    pub fn claim_holder(&self, resource: &str) -> Option<AgentId> {
        self.claims.get(resource).map(|c| c.holder)
    }
    /// Every held claim, by resource name (ascending).
    pub fn claims(&self) -> impl Iterator<Item = (&str, &Claim)> {
        self.claims.held.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// The open task `name`.
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.claims.task(name)
    }
    /// The free balance of the agent `id` names (an agent id, or a current or retired key).
    pub fn balance(&self, id: &AgentId) -> u64 {
        self.ledger.balance(&self.recovery.agent_of(id))
    }
    /// Every non-zero free balance, by agent (ascending).
    pub fn balances(&self) -> impl Iterator<Item = (&AgentId, u64)> {
        self.ledger.balances.iter().map(|(k, v)| (k, *v))
    }
    /// Minted, burned, circulating and escrowed totals.
    pub fn supply(&self) -> Supply {
        self.ledger.supply()
    }
    /// Checks the state's invariants: no zero balances, escrow matches claims and tasks,
    /// circulating + escrowed = minted − burned, and every key resolves to exactly one agent
    /// (never current for two, never current and retired at once). `Err` says which one broke.
    pub fn audit(&self) -> std::result::Result<(), String> {
        self.ledger.audit(self.claims.escrowed())?;
        self.recovery.check()
    }
    /// The guardians of the agent `id` names.
    pub fn guardians(&self, id: &AgentId) -> &[AgentId] {
        self.recovery.guardians(id)
    }
    /// The key that signs for the agent `id` names now.
    pub fn current_key(&self, id: &AgentId) -> AgentId {
        self.recovery.current_key(id)
    }
    /// The agent `id` names (itself unless it is a current or retired key of another agent).
    pub fn agent_of(&self, id: &AgentId) -> AgentId {
        self.recovery.agent_of(id)
    }
    /// The pending key rotation of the agent `id` names.
    pub fn pending_recovery(&self, id: &AgentId) -> Option<&PendingRecovery> {
        self.recovery.pending(id)
    }
    /// The feed (posts, vouches, unknown kinds), oldest first.
    pub fn feed(&self) -> impl Iterator<Item = &FeedItem> {
        self.feed.iter()
    }
    /// The authority of an owned topic (capabilities presented, links revoked); `None` for an
    /// open topic.
    pub fn authority(&self) -> Option<&Authority> {
        self.authority.as_ref()
    }

    // ---- state bytes ----

    /// The canonical bytes of the whole state (PROTOCOL.md section 6.6).
    pub fn snapshot(&self) -> Vec<u8> {
        state::encode(self)
    }

    /// Rebuilds a replica from [`Replica::snapshot`] bytes; refuses every other spelling
    /// (`NON_CANONICAL`, `MALFORMED`, `TRAILING_BYTES`, `UNSUPPORTED_VERSION`…) and states
    /// whose ledger does not balance.
    pub fn restore(bytes: &[u8]) -> Result<Self> {
        let (replica, version) = state::decode(bytes)?;
        // An older version's bytes are checked in their own spelling; the replica's own
        // snapshot is the current version's from then on.
        if state::encode_as(&replica, version) != bytes {
            return Err(Error::NonCanonical {
                what: "replica snapshot",
                reason: "not in canonical form".into(),
            });
        }
        replica.audit().map_err(|reason| Error::NonCanonical {
            what: "replica snapshot",
            reason,
        })?;
        Ok(replica)
    }

    /// SHA-256 of [`Replica::snapshot`]: equal on every replica that applied the same entries.
    pub fn state_hash(&self) -> [u8; 32] {
        Sha256::digest(self.snapshot()).into()
    }
}

/// The rejection of an op the owned-topic rules refuse ([`Authority::check`]'s error).
fn authority_reject(error: Error) -> Reject {
    let code = match &error {
        Error::NotAuthorized(_) => RejectCode::NotAuthorized,
        Error::CapabilityExpired { .. } => RejectCode::CapabilityExpired,
        Error::CapabilityRevoked(_) => RejectCode::CapabilityRevoked,
        Error::LimitExceeded { .. } => RejectCode::AuthorityFull,
        _ => RejectCode::MalformedBody,
    };
    Reject::new(code, error.to_string())
}

/// The event of an admitted presentation or revocation (`None` for an ordinary write).
fn authority_event(admission: &Admission, seq: u64, who: AgentId) -> Option<Event> {
    match admission {
        Admission::Write => None,
        Admission::Present(capability) => Some(Event::CapabilityPresented {
            seq,
            agent: *capability.audience(),
            capability: capability.id(),
            expires_ms: capability.expires_ms(),
        }),
        Admission::Revoke { link_hash, .. } => Some(Event::CapabilityRevoked {
            seq,
            by: who,
            link: *link_hash,
        }),
        Admission::Policy(policy) => Some(Event::TopicPolicySet {
            seq,
            read: policy.read,
        }),
    }
}
