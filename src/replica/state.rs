//! The canonical snapshot bytes of a replica (PROTOCOL.md section 6.6).
//!
//! Layout, integers big-endian, every map in ascending key-byte order:
//!
//! ```text
//! u8 version = 1 for a topic without an owner, 2 for an owned topic
//! u32 config length ‖ config bytes (section 6.1)
//! u8 topic length ‖ topic
//! u64 next_seq ‖ u64 now_ms ‖ u64 minted ‖ u64 burned
//! u32 n ‖ n × (agent 32 ‖ u64 balance > 0)                                  balances
//! u32 n ‖ n × (u8 len ‖ name ‖ poster 32 ‖ u64 reward ‖ u64 deadline ‖ u64 seq)   tasks
//! u32 n ‖ n × (u8 len ‖ resource ‖ holder 32 ‖ u64 stake ‖ u64 seq ‖ u64 lease_until)  claims
//! u32 n ‖ n × (agent 32 ‖ key 32)                                            rotated keys
//! u32 n ‖ n × (key 32 ‖ agent 32)                                            retired keys
//! u32 n ‖ n × (agent 32 ‖ u8 m ≥ 1 ‖ m × guardian 32 ascending)              guardians
//! u32 n ‖ n × (agent 32 ‖ new key 32 ‖ u8 scheduled ‖ [u64 effective_at] ‖
//!              u8 m ‖ m × guardian 32 ascending)                             pending recoveries
//! u32 n ‖ n × (u64 seq ‖ author 32 ‖ u8 tag ‖ content)                       feed, oldest first
//!     tag 0 post:  u32 len ‖ text
//!     tag 1 vouch: subject 32 ‖ u16 len ‖ statement
//!     tag 2 other: u8 len ‖ kind ‖ op id 32
//! (owned topics only, PROTOCOL.md 10.8:)
//! u32 n ‖ n × (u16 len ‖ capability)          presented, by (audience, capability id)
//! u32 n ‖ n × (link hash 32 ‖ u64 seq ‖ u64 expires_ms ‖ u8 by_owner)   revoked links
//! u8 read                                      0 private, 1 public (PROTOCOL.md 10.10)
//! ```
//!
//! An owned topic's snapshot written before topic policies existed is version 1: the same
//! without the `read` byte (its read rule is then private). It still decodes, in its own
//! spelling, and the replica's snapshots are version 2 from then on. A topic without an owner
//! has no `read` byte in either version and is written as version 1, so its snapshot bytes and
//! state hash are those of every earlier build.

use std::collections::{BTreeSet, VecDeque};

use super::claims::{Claim, Claims, Task};
use super::escrow::Ledger;
use super::recovery::{PendingRecovery, Recovery};
use crate::capability::authority::Authority;
use crate::capability::topic_owner;
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::op::{validate_topic, OpId};

use super::config::ReplicaConfig;
use super::timers::Timers;
use super::{FeedContent, FeedItem, Replica};

/// The version byte of the snapshots this build writes for owned topics.
pub const SNAPSHOT_VERSION: u8 = 2;
/// The version before owned topics had a policy (PROTOCOL.md 10.10): still read, and still
/// written for topics without an owner, whose layout did not change.
const SNAPSHOT_VERSION_1: u8 = 1;

const WHAT: &str = "replica snapshot";

pub(super) fn encode(replica: &Replica) -> Vec<u8> {
    let version = match replica.authority {
        Some(_) => SNAPSHOT_VERSION,
        None => SNAPSHOT_VERSION_1,
    };
    encode_as(replica, version)
}

/// The snapshot in the spelling of `version` (1 or 2): what [`decode`] of such bytes must
/// reproduce for them to be canonical.
pub(super) fn encode_as(replica: &Replica, version: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.put_u8(version);
    // The config is canonical by construction, so encoding cannot fail; fall back to nothing.
    let config = replica.config.encode().unwrap_or_default();
    out.put_u32(config.len() as u32);
    out.put(&config);
    out.put_u8(replica.topic.len() as u8);
    out.put(replica.topic.as_bytes());
    out.put_u64(replica.next_seq);
    out.put_u64(replica.now_ms);
    out.put_u64(replica.ledger.minted);
    out.put_u64(replica.ledger.burned);

    out.put_u32(replica.ledger.balances.len() as u32);
    for (agent, balance) in &replica.ledger.balances {
        out.put(agent.as_bytes());
        out.put_u64(*balance);
    }
    out.put_u32(replica.claims.tasks.len() as u32);
    for (name, task) in &replica.claims.tasks {
        put_name(&mut out, name);
        out.put(task.poster.as_bytes());
        out.put_u64(task.reward);
        out.put_u64(task.deadline_ms);
        out.put_u64(task.seq);
    }
    out.put_u32(replica.claims.held.len() as u32);
    for (name, claim) in &replica.claims.held {
        put_name(&mut out, name);
        out.put(claim.holder.as_bytes());
        out.put_u64(claim.stake);
        out.put_u64(claim.seq);
        out.put_u64(claim.lease_until_ms);
    }
    let recovery = &replica.recovery;
    out.put_u32(recovery.keys.len() as u32);
    for (agent, key) in &recovery.keys {
        out.put(agent.as_bytes());
        out.put(key.as_bytes());
    }
    out.put_u32(recovery.retired.len() as u32);
    for (key, agent) in &recovery.retired {
        out.put(key.as_bytes());
        out.put(agent.as_bytes());
    }
    out.put_u32(recovery.guardians.len() as u32);
    for (agent, guardians) in &recovery.guardians {
        out.put(agent.as_bytes());
        out.put_u8(guardians.len() as u8);
        for g in guardians {
            out.put(g.as_bytes());
        }
    }
    out.put_u32(recovery.pending.len() as u32);
    for (agent, pending) in &recovery.pending {
        out.put(agent.as_bytes());
        out.put(pending.new_key.as_bytes());
        match pending.effective_at_ms {
            None => out.put_u8(0),
            Some(at) => {
                out.put_u8(1);
                out.put_u64(at);
            }
        }
        out.put_u8(pending.approvals.len() as u8);
        for g in &pending.approvals {
            out.put(g.as_bytes());
        }
    }
    out.put_u32(replica.feed.len() as u32);
    for item in &replica.feed {
        out.put_u64(item.seq);
        out.put(item.author.as_bytes());
        match &item.content {
            FeedContent::Post { text } => {
                out.put_u8(0);
                out.put_u32(text.len() as u32);
                out.put(text.as_bytes());
            }
            FeedContent::Vouch { subject, statement } => {
                out.put_u8(1);
                out.put(subject.as_bytes());
                out.put_u16(statement.len() as u16);
                out.put(statement.as_bytes());
            }
            FeedContent::Other { kind, op_id } => {
                out.put_u8(2);
                put_name(&mut out, kind);
                out.put(&op_id.0);
            }
        }
    }
    if let Some(authority) = &replica.authority {
        authority.encode(&mut out, version >= SNAPSHOT_VERSION);
    }
    out
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    out.put_u8(name.len() as u8);
    out.put(name.as_bytes());
}

fn name(r: &mut Reader<'_>, field: &str) -> Result<String> {
    let len = r.u8(field)? as usize;
    text(r.take(len, field)?)
}

fn text(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::malformed(WHAT, "text is not UTF-8"))
}

fn agent(r: &mut Reader<'_>, field: &str) -> Result<AgentId> {
    AgentId::from_bytes(r.take(32, field)?)
}

fn count(r: &mut Reader<'_>, field: &str) -> Result<usize> {
    let n = r.u32(field)? as usize;
    // Every item takes at least 32 bytes: a count beyond that is a lie, refuse before allocating.
    if n > r.remaining() / 32 + 1 {
        return Err(Error::malformed(
            WHAT,
            format!("{field} {n} exceeds the data"),
        ));
    }
    Ok(n)
}

/// The replica of snapshot `bytes` and the snapshot's version.
pub(super) fn decode(bytes: &[u8]) -> Result<(Replica, u8)> {
    let mut r = Reader::new(WHAT, bytes);
    let version = r.u8("version")?;
    if version != SNAPSHOT_VERSION && version != SNAPSHOT_VERSION_1 {
        return Err(Error::UnsupportedVersion {
            what: WHAT,
            version,
        });
    }
    let config_len = r.u32("config length")? as usize;
    let config = ReplicaConfig::decode(r.take(config_len, "config")?)?;
    let topic = name(&mut r, "topic")?;
    validate_topic(&topic)?;
    let next_seq = r.u64("next seq")?;
    let now_ms = r.u64("now")?;
    let mut ledger = Ledger {
        minted: r.u64("minted")?,
        burned: r.u64("burned")?,
        ..Ledger::default()
    };
    for _ in 0..count(&mut r, "balance count")? {
        let who = agent(&mut r, "balance agent")?;
        ledger.balances.insert(who, r.u64("balance")?);
    }
    let mut claims = Claims::default();
    for _ in 0..count(&mut r, "task count")? {
        let task_name = name(&mut r, "task name")?;
        let task = Task {
            poster: agent(&mut r, "poster")?,
            reward: r.u64("reward")?,
            deadline_ms: r.u64("deadline")?,
            seq: r.u64("task seq")?,
        };
        claims.tasks.insert(task_name, task);
    }
    for _ in 0..count(&mut r, "claim count")? {
        let resource = name(&mut r, "resource")?;
        let claim = Claim {
            holder: agent(&mut r, "holder")?,
            stake: r.u64("stake")?,
            seq: r.u64("claim seq")?,
            lease_until_ms: r.u64("lease until")?,
        };
        claims.held.insert(resource, claim);
    }
    ledger.escrowed =
        u64::try_from(claims.escrowed()).map_err(|_| Error::malformed(WHAT, "escrow overflows"))?;
    let mut recovery = Recovery::default();
    for _ in 0..count(&mut r, "key count")? {
        let who = agent(&mut r, "agent")?;
        let key = agent(&mut r, "key")?;
        recovery.keys.insert(who, key);
        recovery.key_owner.insert(key, who);
    }
    for _ in 0..count(&mut r, "retired count")? {
        let key = agent(&mut r, "retired key")?;
        recovery.retired.insert(key, agent(&mut r, "agent")?);
    }
    for _ in 0..count(&mut r, "guardian count")? {
        let who = agent(&mut r, "agent")?;
        let m = r.u8("guardians")? as usize;
        let mut guardians = Vec::with_capacity(m);
        for _ in 0..m {
            guardians.push(agent(&mut r, "guardian")?);
        }
        if guardians.is_empty()
            || guardians.windows(2).any(|pair| pair[0] >= pair[1])
            || guardians.contains(&who)
        {
            return Err(Error::NonCanonical {
                what: WHAT,
                reason: "guardians must be non-empty, strictly ascending, not the agent".into(),
            });
        }
        recovery.guardians.insert(who, guardians);
    }
    for _ in 0..count(&mut r, "pending count")? {
        let who = agent(&mut r, "agent")?;
        let new_key = agent(&mut r, "new key")?;
        let effective_at_ms = match r.u8("scheduled")? {
            0 => None,
            1 => Some(r.u64("effective at")?),
            other => return Err(Error::malformed(WHAT, format!("scheduled flag {other}"))),
        };
        let m = r.u8("approvals")? as usize;
        let mut approvals = BTreeSet::new();
        for _ in 0..m {
            approvals.insert(agent(&mut r, "approval")?);
        }
        recovery.pending.insert(
            who,
            PendingRecovery {
                new_key,
                approvals,
                effective_at_ms,
            },
        );
    }
    let mut feed = VecDeque::new();
    for _ in 0..count(&mut r, "feed count")? {
        let seq = r.u64("feed seq")?;
        let author = agent(&mut r, "author")?;
        let content = match r.u8("feed tag")? {
            0 => {
                let len = r.u32("text length")? as usize;
                FeedContent::Post {
                    text: text(r.take(len, "text")?)?,
                }
            }
            1 => {
                let subject = agent(&mut r, "subject")?;
                let len = r.u16("statement length")? as usize;
                FeedContent::Vouch {
                    subject,
                    statement: text(r.take(len, "statement")?)?,
                }
            }
            2 => FeedContent::Other {
                kind: name(&mut r, "kind")?,
                op_id: OpId(r.array("op id")?),
            },
            other => return Err(Error::malformed(WHAT, format!("feed tag {other}"))),
        };
        feed.push_back(FeedItem {
            seq,
            author,
            content,
        });
    }
    // Owned topics end with their authority (PROTOCOL.md 6.6, 10.8).
    let authority = match topic_owner(&topic) {
        Some(owner) => Some(Authority::decode(
            &mut r,
            owner,
            version >= SNAPSHOT_VERSION,
        )?),
        None => None,
    };
    r.finish()?;
    if feed.len() > config.feed_capacity as usize {
        return Err(Error::malformed(WHAT, "feed longer than its capacity"));
    }
    // Key invariants (one agent per key) are checked by `Replica::restore`'s audit.
    let mut timers = Timers::default();
    claims.schedule_all(&mut timers);
    recovery.schedule_all(&mut timers);
    let replica = Replica {
        topic,
        config,
        next_seq,
        now_ms,
        ledger,
        claims,
        recovery,
        feed,
        timers,
        known_ids: Default::default(),
        authority,
    };
    Ok((replica, version))
}
