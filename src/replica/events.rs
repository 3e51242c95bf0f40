//! What applying an entry caused: the events a replica returns (PROTOCOL.md section 6.5).
//!
//! Events are outputs, not state: the state hash never covers them. Their JSON view (serde, tag
//! `type`, camelCase fields, agent ids as lowercase hex) is what the JS bindings hand out and
//! what `tests/vectors/replica.json` records.

use serde::{Serialize, Serializer};

use crate::identity::AgentId;

/// Why an op was recorded without effect. The code strings are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum RejectCode {
    /// The body does not decode for its kind.
    MalformedBody,
    /// Signed by a key that has been rotated away by recovery.
    KeyRotated,
    /// Not enough free balance for a transfer, stake or reward.
    InsufficientBalance,
    /// A mint by an agent that is not a configured issuer.
    NotIssuer,
    /// Minting would overflow the total supply (2^64 − 1).
    SupplyOverflow,
    /// A release / complete / fail by an agent that does not hold the resource.
    NotHolder,
    /// Release / complete / fail of a resource nobody holds.
    NotClaimed,
    /// A task complete by someone other than the task's poster.
    NotPoster,
    /// A task name already in use by an open task.
    TaskExists,
    /// A task posted with a deadline not after the current relay time. (Never a claim: a task
    /// whose deadline passed was closed by its timer before the claim was applied.)
    DeadlinePassed,
    /// A fenced claim or leader op whose window is not the current one.
    StaleFence,
    /// A fenced claim or leader op by an agent that does not lead the window.
    NotLeader,
    /// A fenced claim or leader op in a topic with no election candidates configured.
    NoCandidates,
    /// Guardians that include the agent itself.
    SelfGuardian,
    /// A recovery for an agent without guardians.
    NoGuardians,
    /// A recovery request or approval by an agent that is neither a guardian nor the agent.
    NotGuardian,
    /// A recovery naming a new key that is not free (PROTOCOL.md 6.4.5); also the code of a
    /// [`Event::RecoveryCancelled`] rotation.
    KeyInUse,
    /// A recovery request while another one has reached its threshold and waits out its delay.
    RecoveryScheduled,
    /// An approval or veto with no matching pending recovery.
    NoPendingRecovery,
    /// In an owned topic: an op by an agent that is not the owner and presented no capability
    /// that lets it write the topic; a presentation of a capability that does not; a
    /// revocation by an agent that neither owns the topic nor signed the link (PROTOCOL.md
    /// 10.7, 10.8). Same meaning as the error code.
    NotAuthorized,
    /// In an owned topic: the only presented capability that would let the author write has
    /// expired at the entry's relay time. Same meaning as the error code.
    CapabilityExpired,
    /// In an owned topic: the only presented capability that would let the author write has a
    /// link revoked earlier in the topic. Same meaning as the error code.
    CapabilityRevoked,
    /// In an owned topic: a presentation or revocation while the topic's table of presented
    /// capabilities or revoked links is full (PROTOCOL.md 10.7).
    AuthorityFull,
}

impl RejectCode {
    /// The stable UPPER_SNAKE code.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::MalformedBody => "MALFORMED_BODY",
            RejectCode::KeyRotated => "KEY_ROTATED",
            RejectCode::InsufficientBalance => "INSUFFICIENT_BALANCE",
            RejectCode::NotIssuer => "NOT_ISSUER",
            RejectCode::SupplyOverflow => "SUPPLY_OVERFLOW",
            RejectCode::NotHolder => "NOT_HOLDER",
            RejectCode::NotClaimed => "NOT_CLAIMED",
            RejectCode::NotPoster => "NOT_POSTER",
            RejectCode::TaskExists => "TASK_EXISTS",
            RejectCode::DeadlinePassed => "DEADLINE_PASSED",
            RejectCode::StaleFence => "STALE_FENCE",
            RejectCode::NotLeader => "NOT_LEADER",
            RejectCode::NoCandidates => "NO_CANDIDATES",
            RejectCode::SelfGuardian => "SELF_GUARDIAN",
            RejectCode::NoGuardians => "NO_GUARDIANS",
            RejectCode::NotGuardian => "NOT_GUARDIAN",
            RejectCode::KeyInUse => "KEY_IN_USE",
            RejectCode::RecoveryScheduled => "RECOVERY_SCHEDULED",
            RejectCode::NoPendingRecovery => "NO_PENDING_RECOVERY",
            RejectCode::NotAuthorized => "NOT_AUTHORIZED",
            RejectCode::CapabilityExpired => "CAPABILITY_EXPIRED",
            RejectCode::CapabilityRevoked => "CAPABILITY_REVOKED",
            RejectCode::AuthorityFull => "AUTHORITY_FULL",
        }
    }
}

/// Why a claimant lost a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LossReason {
    /// Someone claimed it earlier in sequence order (with at least the same stake).
    Conflict,
    /// A later claim staked strictly more and took it over.
    Outbid,
}

/// Where slashed units went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SlashedTo {
    /// Destroyed: total supply shrank.
    Burned,
    /// Paid to the task's poster.
    Poster,
}

/// A `u64` as an exact integer: as `u64` up to 2^53 − 1 (a JSON / JS number), as `u128` above
/// (serde-wasm-bindgen makes that a `BigInt`; JSON writes the digits), so no view loses precision.
fn number<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
    if *value < 1 << 53 {
        s.serialize_u64(*value)
    } else {
        s.serialize_u128(u128::from(*value))
    }
}

fn hex<S: Serializer>(id: &AgentId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

fn hex_opt<S: Serializer>(id: &Option<AgentId>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.collect_str(id),
        None => s.serialize_none(),
    }
}

fn hex_list<S: Serializer>(ids: &[AgentId], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ids.iter().map(ToString::to_string))
}

/// One consequence of applying an entry. `seq` is always the entry being applied (for timed
/// events: the entry whose relay time made them due).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum Event {
    /// The op broke a rule and changed nothing.
    Rejected {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The op kind.
        kind: String,
        /// The stable reason code.
        code: RejectCode,
        /// Details for people.
        reason: String,
    },
    /// An op of a kind the replica does not interpret, recorded in the feed.
    Recorded {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The op kind.
        kind: String,
        /// The signer's agent.
        #[serde(serialize_with = "hex")]
        author: AgentId,
    },
    /// A post, recorded in the feed.
    Posted {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The agent.
        #[serde(serialize_with = "hex")]
        author: AgentId,
        /// The text.
        text: String,
    },
    /// A vouch, recorded in the feed.
    Vouched {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The agent speaking.
        #[serde(serialize_with = "hex")]
        author: AgentId,
        /// The agent spoken about.
        #[serde(serialize_with = "hex")]
        subject: AgentId,
        /// What was said.
        statement: String,
    },
    /// New units.
    Minted {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The recipient.
        #[serde(serialize_with = "hex")]
        to: AgentId,
        /// How many.
        #[serde(serialize_with = "number")]
        amount: u64,
    },
    /// Units moved.
    Transferred {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The sender.
        #[serde(serialize_with = "hex")]
        from: AgentId,
        /// The recipient.
        #[serde(serialize_with = "hex")]
        to: AgentId,
        /// How many.
        #[serde(serialize_with = "number")]
        amount: u64,
    },
    /// A task opened, its reward escrowed from the poster.
    TaskPosted {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The task name.
        task: String,
        /// The poster.
        #[serde(serialize_with = "hex")]
        poster: AgentId,
        /// The escrowed reward.
        #[serde(serialize_with = "number")]
        reward: u64,
        /// When it lapses.
        #[serde(serialize_with = "number")]
        deadline_ms: u64,
    },
    /// A resource now held (its stake, if any, escrowed).
    Claimed {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The resource.
        resource: String,
        /// The new holder.
        #[serde(serialize_with = "hex")]
        holder: AgentId,
        /// The escrowed stake.
        #[serde(serialize_with = "number")]
        stake: u64,
        /// When the lease runs out.
        #[serde(serialize_with = "number")]
        lease_until_ms: u64,
    },
    /// The holder claimed again: the lease was extended, nothing else changed.
    ClaimRenewed {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The resource.
        resource: String,
        /// The holder.
        #[serde(serialize_with = "hex")]
        holder: AgentId,
        /// The new end of the lease.
        #[serde(serialize_with = "number")]
        lease_until_ms: u64,
    },
    /// A claimant lost: its compensation handler should undo what it did optimistically.
    Compensation {
        /// The entry that decided.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The kind of the losing op (`claim`).
        kind: String,
        /// The resource.
        resource: String,
        /// Who lost.
        #[serde(serialize_with = "hex")]
        loser: AgentId,
        /// Who holds the resource now.
        #[serde(serialize_with = "hex")]
        winner: AgentId,
        /// The seq of the winning claim.
        #[serde(serialize_with = "number")]
        winning_seq: u64,
        /// The seq of the losing claim.
        #[serde(serialize_with = "number")]
        losing_seq: u64,
        /// Earlier claim, or outbid by a higher stake.
        reason: LossReason,
        /// Stake returned to the loser (0 when none was escrowed).
        #[serde(serialize_with = "number")]
        refunded: u64,
    },
    /// The holder gave the resource up; stake returned.
    Released {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The resource.
        resource: String,
        /// The former holder.
        #[serde(serialize_with = "hex")]
        holder: AgentId,
        /// Stake returned.
        #[serde(serialize_with = "number")]
        refunded: u64,
    },
    /// The lease ran out; stake returned.
    LeaseExpired {
        /// The entry whose relay time passed the lease.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The resource.
        resource: String,
        /// The former holder.
        #[serde(serialize_with = "hex")]
        holder: AgentId,
        /// Stake returned.
        #[serde(serialize_with = "number")]
        refunded: u64,
    },
    /// Done: stake returned and, for a task, the reward paid.
    Completed {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The resource.
        resource: String,
        /// The holder who did it.
        #[serde(serialize_with = "hex")]
        holder: AgentId,
        /// Stake returned.
        #[serde(serialize_with = "number")]
        refunded: u64,
        /// Reward paid (0 for a plain resource).
        #[serde(serialize_with = "number")]
        reward: u64,
    },
    /// Failed: the stake is slashed; a task stays open until its deadline.
    Failed {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The resource.
        resource: String,
        /// The holder who failed.
        #[serde(serialize_with = "hex")]
        holder: AgentId,
        /// Units slashed.
        #[serde(serialize_with = "number")]
        slashed: u64,
        /// Where they went.
        slashed_to: SlashedTo,
    },
    /// A task's deadline passed: a holder's stake is slashed, the reward returns to the poster.
    TaskExpired {
        /// The entry whose relay time passed the deadline.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The task.
        task: String,
        /// Who held it then, if anyone.
        #[serde(serialize_with = "hex_opt")]
        holder: Option<AgentId>,
        /// Units slashed from the holder.
        #[serde(serialize_with = "number")]
        slashed: u64,
        /// Where they went.
        slashed_to: SlashedTo,
        /// Reward returned to the poster.
        #[serde(serialize_with = "number")]
        refunded: u64,
    },
    /// An agent registered its guardians; pending recoveries were cancelled.
    GuardiansSet {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The agent.
        #[serde(serialize_with = "hex")]
        agent: AgentId,
        /// The guardians, ascending.
        #[serde(serialize_with = "hex_list")]
        guardians: Vec<AgentId>,
        /// Approvals a recovery now needs: ceil(2n/3).
        threshold: u32,
    },
    /// A recovery began (replacing any unscheduled one).
    RecoveryRequested {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The agent being recovered.
        #[serde(serialize_with = "hex")]
        agent: AgentId,
        /// The proposed key.
        #[serde(serialize_with = "hex")]
        new_key: AgentId,
        /// Approvals so far (a requesting guardian approves).
        approvals: u32,
        /// Approvals needed.
        threshold: u32,
    },
    /// A guardian approved.
    RecoveryApproved {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The agent being recovered.
        #[serde(serialize_with = "hex")]
        agent: AgentId,
        /// The proposed key.
        #[serde(serialize_with = "hex")]
        new_key: AgentId,
        /// The approving guardian.
        #[serde(serialize_with = "hex")]
        guardian: AgentId,
        /// Approvals so far.
        approvals: u32,
        /// Approvals needed.
        threshold: u32,
    },
    /// The threshold was reached: the rotation takes effect at `effective_at_ms` unless vetoed.
    RecoveryScheduled {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The agent being recovered.
        #[serde(serialize_with = "hex")]
        agent: AgentId,
        /// The proposed key.
        #[serde(serialize_with = "hex")]
        new_key: AgentId,
        /// Relay time at which the key rotates.
        #[serde(serialize_with = "number")]
        effective_at_ms: u64,
    },
    /// A pending recovery was cancelled by the agent's current key.
    RecoveryVetoed {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The agent.
        #[serde(serialize_with = "hex")]
        agent: AgentId,
        /// The key that will not take over.
        #[serde(serialize_with = "hex")]
        new_key: AgentId,
    },
    /// A scheduled rotation fell due but its new key was no longer free (it had become the
    /// current or a retired key of another agent, or gained guardians, a claim or a task of its
    /// own): the rotation is dropped and the agent keeps its key. A new request may follow.
    RecoveryCancelled {
        /// The entry whose relay time reached the effective time.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The agent that keeps its key.
        #[serde(serialize_with = "hex")]
        agent: AgentId,
        /// The key that will not take over.
        #[serde(serialize_with = "hex")]
        new_key: AgentId,
        /// Why: `KEY_IN_USE`, the code a request naming that key would get.
        code: RejectCode,
    },
    /// The agent's key changed: ops signed by the old key are refused from now on.
    KeyRotated {
        /// The entry whose relay time reached the effective time.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The agent (its id never changes).
        #[serde(serialize_with = "hex")]
        agent: AgentId,
        /// The retired key.
        #[serde(serialize_with = "hex")]
        old_key: AgentId,
        /// The key that signs for the agent now.
        #[serde(serialize_with = "hex")]
        new_key: AgentId,
    },
    /// The leader of the window acted (fencing token checked).
    LeaderActed {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The leader.
        #[serde(serialize_with = "hex")]
        leader: AgentId,
        /// The window (fencing token).
        #[serde(serialize_with = "number")]
        window: u64,
        /// Its payload.
        #[serde(serialize_with = "bytes_hex")]
        payload: Vec<u8>,
    },
    /// In an owned topic, an agent presented a capability rooted at the owner that lets it
    /// write the topic: its later ops count while it holds (PROTOCOL.md 10.8).
    CapabilityPresented {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// The agent it lets write (the capability's audience; the owner may present it for
        /// the audience).
        #[serde(serialize_with = "hex")]
        agent: AgentId,
        /// The capability id, `H(capability)`.
        #[serde(serialize_with = "hash_hex")]
        capability: [u8; 32],
        /// When it stops authorizing.
        #[serde(serialize_with = "number")]
        expires_ms: u64,
    },
    /// In an owned topic, a link was revoked: from the next entry on, no capability that
    /// contains it authorizes anything in the topic (PROTOCOL.md 10.7).
    CapabilityRevoked {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// Who revoked it: the owner, or the link's issuer.
        #[serde(serialize_with = "hex")]
        by: AgentId,
        /// The link's hash, `H(link)`.
        #[serde(serialize_with = "hash_hex")]
        link: [u8; 32],
    },
    /// In an owned topic, the owner set who may read it from this entry on (PROTOCOL.md 10.10).
    TopicPolicySet {
        /// The entry.
        #[serde(serialize_with = "number")]
        seq: u64,
        /// `"public"`: every agent; `"private"`: the owner and its `read` capability holders.
        read: crate::capability::ReadRule,
    },
}

fn hash_hex<S: Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&crate::identity::lower_hex(hash))
}

fn bytes_hex<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&crate::identity::lower_hex(bytes))
}

impl Event {
    /// The seq of the entry whose application produced this event.
    pub fn seq(&self) -> u64 {
        match self {
            Event::Rejected { seq, .. }
            | Event::Recorded { seq, .. }
            | Event::Posted { seq, .. }
            | Event::Vouched { seq, .. }
            | Event::Minted { seq, .. }
            | Event::Transferred { seq, .. }
            | Event::TaskPosted { seq, .. }
            | Event::Claimed { seq, .. }
            | Event::ClaimRenewed { seq, .. }
            | Event::Compensation { seq, .. }
            | Event::Released { seq, .. }
            | Event::LeaseExpired { seq, .. }
            | Event::Completed { seq, .. }
            | Event::Failed { seq, .. }
            | Event::TaskExpired { seq, .. }
            | Event::GuardiansSet { seq, .. }
            | Event::RecoveryRequested { seq, .. }
            | Event::RecoveryApproved { seq, .. }
            | Event::RecoveryScheduled { seq, .. }
            | Event::RecoveryVetoed { seq, .. }
            | Event::RecoveryCancelled { seq, .. }
            | Event::KeyRotated { seq, .. }
            | Event::LeaderActed { seq, .. }
            | Event::CapabilityPresented { seq, .. }
            | Event::CapabilityRevoked { seq, .. }
            | Event::TopicPolicySet { seq, .. } => *seq,
        }
    }

    /// The reject code, if this is a rejection.
    pub fn reject_code(&self) -> Option<RejectCode> {
        match self {
            Event::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }
}
