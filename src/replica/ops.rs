//! The op kinds a replica understands and their canonical bodies (PROTOCOL.md section 6.2).
//!
//! Every body starts with the version byte [`BODY_VERSION`]; integers are big-endian; strings are
//! UTF-8 with a length prefix of the width the field names; agent ids are 32 raw bytes; a
//! decoder refuses trailing bytes, unknown versions, flags other than 0/1 and unsorted lists.

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::op::OpDraft;

/// The version byte every replica op body starts with.
pub const BODY_VERSION: u8 = 1;
/// Longest resource (or task) name, in bytes of UTF-8.
pub const MAX_RESOURCE_LEN: usize = 128;
/// Most guardians one agent may register.
pub const MAX_GUARDIANS: usize = 32;
/// Longest vouch statement, in bytes of UTF-8.
pub const MAX_STATEMENT_LEN: usize = 4096;

/// Op kind names, as they appear in the op's `kind` field.
pub mod kind {
    /// A public post.
    pub const POST: &str = "post";
    /// A public statement about another agent.
    pub const VOUCH: &str = "vouch";
    /// Claim a resource.
    pub const CLAIM: &str = "claim";
    /// Give a held resource up (stake returned).
    pub const CLAIM_RELEASE: &str = "claim.release";
    /// Mark a claim done (stake returned, task reward paid).
    pub const CLAIM_COMPLETE: &str = "claim.complete";
    /// Mark a claim failed (stake slashed).
    pub const CLAIM_FAIL: &str = "claim.fail";
    /// Post a task with an escrowed reward and a deadline.
    pub const TASK_POST: &str = "task.post";
    /// Create units (issuers only).
    pub const MINT: &str = "mint";
    /// Move units to another agent.
    pub const TRANSFER: &str = "transfer";
    /// Register one's guardians.
    pub const GUARDIANS_SET: &str = "guardians.set";
    /// Ask to rotate an agent's key.
    pub const RECOVERY_REQUEST: &str = "recovery.request";
    /// A guardian's approval of a rotation.
    pub const RECOVERY_APPROVE: &str = "recovery.approve";
    /// The current key's veto of a rotation.
    pub const RECOVERY_VETO: &str = "recovery.veto";
    /// A leader-only action, fenced by its window.
    pub const LEADER_ACT: &str = "leader.act";

    /// Every kind above: the kinds whose bodies a replica reads.
    pub const ALL: [&str; 14] = [
        POST,
        VOUCH,
        CLAIM,
        CLAIM_RELEASE,
        CLAIM_COMPLETE,
        CLAIM_FAIL,
        TASK_POST,
        MINT,
        TRANSFER,
        GUARDIANS_SET,
        RECOVERY_REQUEST,
        RECOVERY_APPROVE,
        RECOVERY_VETO,
        LEADER_ACT,
    ];
}

/// A replica op body, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaOp {
    /// `post`: `v ‖ u32 len ‖ text`.
    Post {
        /// The text.
        text: String,
    },
    /// `vouch`: `v ‖ subject (32) ‖ u16 len ‖ statement`.
    Vouch {
        /// Whom the statement is about.
        subject: AgentId,
        /// What is said.
        statement: String,
    },
    /// `claim`: `v ‖ u8 len ‖ resource ‖ u64 lease_ms ‖ u64 stake ‖ u8 fenced ‖ [u64 window]`.
    Claim {
        /// What is claimed (a task name, a slot…).
        resource: String,
        /// Lease length in ms; 0 means the topic's default. Capped at the topic's maximum.
        lease_ms: u64,
        /// Units escrowed from the claimant; 0 for none.
        stake: u64,
        /// A fencing token: when present, the claim counts only if this window is current and the
        /// claimant leads it.
        fence: Option<u64>,
    },
    /// `claim.release`: `v ‖ u8 len ‖ resource`.
    Release {
        /// The resource.
        resource: String,
    },
    /// `claim.complete`: `v ‖ u8 len ‖ resource`.
    Complete {
        /// The resource.
        resource: String,
    },
    /// `claim.fail`: `v ‖ u8 len ‖ resource`.
    Fail {
        /// The resource.
        resource: String,
    },
    /// `task.post`: `v ‖ u8 len ‖ task ‖ u64 reward ‖ u64 deadline_ms`.
    TaskPost {
        /// The task's name (a resource).
        task: String,
        /// Units escrowed from the poster and paid on completion.
        reward: u64,
        /// Relay time (ms since the Unix epoch) at which the task lapses.
        deadline_ms: u64,
    },
    /// `mint`: `v ‖ to (32) ‖ u64 amount`.
    Mint {
        /// Who receives the new units.
        to: AgentId,
        /// How many (at least 1).
        amount: u64,
    },
    /// `transfer`: `v ‖ to (32) ‖ u64 amount`.
    Transfer {
        /// Who receives.
        to: AgentId,
        /// How many (at least 1).
        amount: u64,
    },
    /// `guardians.set`: `v ‖ u8 count ‖ count × agent (32), strictly ascending`.
    GuardiansSet {
        /// The guardians, strictly ascending by bytes, at most [`MAX_GUARDIANS`].
        guardians: Vec<AgentId>,
    },
    /// `recovery.request`: `v ‖ agent (32) ‖ new key (32)`.
    RecoveryRequest {
        /// The agent (account) whose key is to be replaced.
        agent: AgentId,
        /// The key that will sign for it.
        new_key: AgentId,
    },
    /// `recovery.approve`: `v ‖ agent (32) ‖ new key (32)`.
    RecoveryApprove {
        /// The agent being recovered.
        agent: AgentId,
        /// The key the approval is for.
        new_key: AgentId,
    },
    /// `recovery.veto`: `v ‖ new key (32)`; the agent is the signer.
    RecoveryVeto {
        /// The rotation being vetoed.
        new_key: AgentId,
    },
    /// `leader.act`: `v ‖ u64 window ‖ u32 len ‖ payload`.
    LeaderAct {
        /// The fencing token: the window the leader acts in.
        window: u64,
        /// Application data.
        payload: Vec<u8>,
    },
}

impl ReplicaOp {
    /// The op kind this body belongs to.
    pub fn kind(&self) -> &'static str {
        match self {
            ReplicaOp::Post { .. } => kind::POST,
            ReplicaOp::Vouch { .. } => kind::VOUCH,
            ReplicaOp::Claim { .. } => kind::CLAIM,
            ReplicaOp::Release { .. } => kind::CLAIM_RELEASE,
            ReplicaOp::Complete { .. } => kind::CLAIM_COMPLETE,
            ReplicaOp::Fail { .. } => kind::CLAIM_FAIL,
            ReplicaOp::TaskPost { .. } => kind::TASK_POST,
            ReplicaOp::Mint { .. } => kind::MINT,
            ReplicaOp::Transfer { .. } => kind::TRANSFER,
            ReplicaOp::GuardiansSet { .. } => kind::GUARDIANS_SET,
            ReplicaOp::RecoveryRequest { .. } => kind::RECOVERY_REQUEST,
            ReplicaOp::RecoveryApprove { .. } => kind::RECOVERY_APPROVE,
            ReplicaOp::RecoveryVeto { .. } => kind::RECOVERY_VETO,
            ReplicaOp::LeaderAct { .. } => kind::LEADER_ACT,
        }
    }

    /// Whether the replica interprets ops of `kind` (other kinds pass through as feed entries).
    pub fn is_known_kind(kind: &str) -> bool {
        matches!(
            kind,
            kind::POST
                | kind::VOUCH
                | kind::CLAIM
                | kind::CLAIM_RELEASE
                | kind::CLAIM_COMPLETE
                | kind::CLAIM_FAIL
                | kind::TASK_POST
                | kind::MINT
                | kind::TRANSFER
                | kind::GUARDIANS_SET
                | kind::RECOVERY_REQUEST
                | kind::RECOVERY_APPROVE
                | kind::RECOVERY_VETO
                | kind::LEADER_ACT
        )
    }

    /// The canonical body bytes. `LIMIT_EXCEEDED` / `NON_CANONICAL` / `BAD_INPUT` when a field
    /// breaks its rule (so what is encoded always decodes).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = vec![BODY_VERSION];
        match self {
            ReplicaOp::Post { text } => {
                out.put_u32(text.len() as u32);
                out.put(text.as_bytes());
            }
            ReplicaOp::Vouch { subject, statement } => {
                limit("statement", MAX_STATEMENT_LEN, statement.len())?;
                out.put(subject.as_bytes());
                out.put_u16(statement.len() as u16);
                out.put(statement.as_bytes());
            }
            ReplicaOp::Claim {
                resource,
                lease_ms,
                stake,
                fence,
            } => {
                put_resource(&mut out, resource)?;
                out.put_u64(*lease_ms);
                out.put_u64(*stake);
                match fence {
                    None => out.put_u8(0),
                    Some(window) => {
                        out.put_u8(1);
                        out.put_u64(*window);
                    }
                }
            }
            ReplicaOp::Release { resource }
            | ReplicaOp::Complete { resource }
            | ReplicaOp::Fail { resource } => put_resource(&mut out, resource)?,
            ReplicaOp::TaskPost {
                task,
                reward,
                deadline_ms,
            } => {
                put_resource(&mut out, task)?;
                out.put_u64(*reward);
                out.put_u64(*deadline_ms);
            }
            ReplicaOp::Mint { to, amount } | ReplicaOp::Transfer { to, amount } => {
                if *amount == 0 {
                    return Err(Error::BadInput("amount must be at least 1".into()));
                }
                out.put(to.as_bytes());
                out.put_u64(*amount);
            }
            ReplicaOp::GuardiansSet { guardians } => {
                limit("guardians", MAX_GUARDIANS, guardians.len())?;
                ascending(guardians)?;
                out.put_u8(guardians.len() as u8);
                for g in guardians {
                    out.put(g.as_bytes());
                }
            }
            ReplicaOp::RecoveryRequest { agent, new_key }
            | ReplicaOp::RecoveryApprove { agent, new_key } => {
                out.put(agent.as_bytes());
                out.put(new_key.as_bytes());
            }
            ReplicaOp::RecoveryVeto { new_key } => out.put(new_key.as_bytes()),
            ReplicaOp::LeaderAct { window, payload } => {
                out.put_u64(*window);
                out.put_u32(payload.len() as u32);
                out.put(payload);
            }
        }
        Ok(out)
    }

    /// An unsigned op draft carrying this body (counter, time and deps left for the caller).
    pub fn draft(&self, topic: &str) -> Result<OpDraft> {
        Ok(OpDraft {
            topic: topic.to_owned(),
            kind: self.kind().to_owned(),
            body: self.encode()?,
            ..OpDraft::default()
        })
    }

    /// Decodes the body of an op of `kind`. `BAD_KIND` for a kind the replica does not know;
    /// `MALFORMED`, `TRAILING_BYTES`, `UNSUPPORTED_VERSION`, `NON_CANONICAL`, `LIMIT_EXCEEDED`,
    /// `BAD_PUBLIC_KEY` for a body that breaks its layout.
    pub fn decode(kind: &str, body: &[u8]) -> Result<Self> {
        Self::decode_with(kind, body, &mut |bytes| AgentId::from_bytes(bytes))
    }

    /// [`ReplicaOp::decode`] with the agent-id check supplied by the caller (a replica remembers
    /// ids it already validated: checking a curve point costs far more than the rest of an op).
    pub(crate) fn decode_with(
        kind: &str,
        body: &[u8],
        ids: &mut dyn FnMut(&[u8]) -> Result<AgentId>,
    ) -> Result<Self> {
        if !Self::is_known_kind(kind) {
            return Err(Error::BadKind(format!("{kind} is not a replica op kind")));
        }
        let mut r = Reader::new("op body", body);
        let version = r.u8("version")?;
        if version != BODY_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "op body",
                version,
            });
        }
        let op = match kind {
            kind::POST => {
                let len = r.u32("text length")? as usize;
                ReplicaOp::Post {
                    text: utf8(r.take(len, "text")?)?,
                }
            }
            kind::VOUCH => {
                let subject = agent(&mut r, "subject", ids)?;
                let len = r.u16("statement length")? as usize;
                limit("statement", MAX_STATEMENT_LEN, len)?;
                ReplicaOp::Vouch {
                    subject,
                    statement: utf8(r.take(len, "statement")?)?,
                }
            }
            kind::CLAIM => {
                let resource = resource(&mut r)?;
                let lease_ms = r.u64("lease")?;
                let stake = r.u64("stake")?;
                let fence = match r.u8("fence flag")? {
                    0 => None,
                    1 => Some(r.u64("fence window")?),
                    other => {
                        return Err(Error::malformed(
                            "op body",
                            format!("fence flag {other} is neither 0 nor 1"),
                        ))
                    }
                };
                ReplicaOp::Claim {
                    resource,
                    lease_ms,
                    stake,
                    fence,
                }
            }
            kind::CLAIM_RELEASE => ReplicaOp::Release {
                resource: resource(&mut r)?,
            },
            kind::CLAIM_COMPLETE => ReplicaOp::Complete {
                resource: resource(&mut r)?,
            },
            kind::CLAIM_FAIL => ReplicaOp::Fail {
                resource: resource(&mut r)?,
            },
            kind::TASK_POST => ReplicaOp::TaskPost {
                task: resource(&mut r)?,
                reward: r.u64("reward")?,
                deadline_ms: r.u64("deadline")?,
            },
            kind::MINT | kind::TRANSFER => {
                let to = agent(&mut r, "recipient", ids)?;
                let amount = r.u64("amount")?;
                if amount == 0 {
                    return Err(Error::malformed("op body", "amount must be at least 1"));
                }
                if kind == kind::MINT {
                    ReplicaOp::Mint { to, amount }
                } else {
                    ReplicaOp::Transfer { to, amount }
                }
            }
            kind::GUARDIANS_SET => {
                let count = r.u8("guardian count")? as usize;
                limit("guardians", MAX_GUARDIANS, count)?;
                let mut guardians = Vec::with_capacity(count);
                for _ in 0..count {
                    guardians.push(agent(&mut r, "guardian", ids)?);
                }
                ascending(&guardians)?;
                ReplicaOp::GuardiansSet { guardians }
            }
            kind::RECOVERY_REQUEST | kind::RECOVERY_APPROVE => {
                let agent_id = agent(&mut r, "agent", ids)?;
                let new_key = agent(&mut r, "new key", ids)?;
                if kind == kind::RECOVERY_REQUEST {
                    ReplicaOp::RecoveryRequest {
                        agent: agent_id,
                        new_key,
                    }
                } else {
                    ReplicaOp::RecoveryApprove {
                        agent: agent_id,
                        new_key,
                    }
                }
            }
            kind::RECOVERY_VETO => ReplicaOp::RecoveryVeto {
                new_key: agent(&mut r, "new key", ids)?,
            },
            kind::LEADER_ACT => {
                let window = r.u64("window")?;
                let len = r.u32("payload length")? as usize;
                ReplicaOp::LeaderAct {
                    window,
                    payload: r.take(len, "payload")?.to_vec(),
                }
            }
            other => return Err(Error::BadKind(format!("{other} is not a replica op kind"))),
        };
        r.finish()?;
        Ok(op)
    }
}

fn limit(what: &'static str, max: usize, got: usize) -> Result<()> {
    if got > max {
        return Err(Error::LimitExceeded {
            what,
            limit: max,
            got,
        });
    }
    Ok(())
}

fn ascending(agents: &[AgentId]) -> Result<()> {
    if agents
        .windows(2)
        .any(|pair| pair[0].as_bytes() >= pair[1].as_bytes())
    {
        return Err(Error::NonCanonical {
            what: "op body",
            reason: "guardians must be strictly ascending".into(),
        });
    }
    Ok(())
}

fn put_resource(out: &mut Vec<u8>, resource: &str) -> Result<()> {
    if resource.is_empty() {
        return Err(Error::BadInput("resource name must not be empty".into()));
    }
    limit("resource length", MAX_RESOURCE_LEN, resource.len())?;
    out.put_u8(resource.len() as u8);
    out.put(resource.as_bytes());
    Ok(())
}

fn resource(r: &mut Reader<'_>) -> Result<String> {
    let len = r.u8("resource length")? as usize;
    if len == 0 {
        return Err(Error::malformed("op body", "empty resource name"));
    }
    limit("resource length", MAX_RESOURCE_LEN, len)?;
    utf8(r.take(len, "resource")?)
}

fn utf8(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::malformed("op body", "text is not UTF-8"))
}

fn agent(
    r: &mut Reader<'_>,
    field: &str,
    ids: &mut dyn FnMut(&[u8]) -> Result<AgentId>,
) -> Result<AgentId> {
    ids(r.take(32, field)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;

    fn id(n: u8) -> AgentId {
        Identity::from_seed(&[n; 32]).unwrap().agent_id()
    }

    pub(crate) fn samples() -> Vec<ReplicaOp> {
        let mut guardians = vec![id(1), id(2), id(3)];
        guardians.sort();
        vec![
            ReplicaOp::Post { text: "hi".into() },
            ReplicaOp::Vouch {
                subject: id(1),
                statement: "reliable".into(),
            },
            ReplicaOp::Claim {
                resource: "slot-9".into(),
                lease_ms: 0,
                stake: 10,
                fence: None,
            },
            ReplicaOp::Claim {
                resource: "slot-9".into(),
                lease_ms: 5,
                stake: 0,
                fence: Some(77),
            },
            ReplicaOp::Release {
                resource: "r".into(),
            },
            ReplicaOp::Complete {
                resource: "r".into(),
            },
            ReplicaOp::Fail {
                resource: "r".into(),
            },
            ReplicaOp::TaskPost {
                task: "t".into(),
                reward: 5,
                deadline_ms: 9,
            },
            ReplicaOp::Mint {
                to: id(1),
                amount: 3,
            },
            ReplicaOp::Transfer {
                to: id(2),
                amount: 3,
            },
            ReplicaOp::GuardiansSet { guardians },
            ReplicaOp::RecoveryRequest {
                agent: id(1),
                new_key: id(2),
            },
            ReplicaOp::RecoveryApprove {
                agent: id(1),
                new_key: id(2),
            },
            ReplicaOp::RecoveryVeto { new_key: id(2) },
            ReplicaOp::LeaderAct {
                window: 4,
                payload: vec![1, 2],
            },
        ]
    }

    #[test]
    fn every_kind_round_trips_and_refuses_trailing_bytes() {
        for op in samples() {
            let body = op.encode().unwrap();
            assert!(ReplicaOp::is_known_kind(op.kind()));
            assert_eq!(ReplicaOp::decode(op.kind(), &body).unwrap(), op);
            let mut long = body.clone();
            long.push(0);
            assert_eq!(
                ReplicaOp::decode(op.kind(), &long).unwrap_err().code(),
                "TRAILING_BYTES"
            );
            let mut v2 = body.clone();
            v2[0] = 2;
            assert_eq!(
                ReplicaOp::decode(op.kind(), &v2).unwrap_err().code(),
                "UNSUPPORTED_VERSION"
            );
            assert_eq!(
                ReplicaOp::decode(op.kind(), &body[..body.len() - 1])
                    .unwrap_err()
                    .code(),
                "MALFORMED"
            );
        }
        assert_eq!(
            ReplicaOp::decode("doc.update", &[1]).unwrap_err().code(),
            "BAD_KIND"
        );
    }

    #[test]
    fn field_rules() {
        let mut unsorted = vec![id(1), id(2)];
        unsorted.sort();
        unsorted.reverse();
        let op = ReplicaOp::GuardiansSet {
            guardians: unsorted,
        };
        assert_eq!(op.encode().unwrap_err().code(), "NON_CANONICAL");
        let claim = ReplicaOp::Claim {
            resource: "x".repeat(129),
            lease_ms: 0,
            stake: 0,
            fence: None,
        };
        assert_eq!(claim.encode().unwrap_err().code(), "LIMIT_EXCEEDED");
        let mut body = ReplicaOp::Claim {
            resource: "x".into(),
            lease_ms: 0,
            stake: 0,
            fence: None,
        }
        .encode()
        .unwrap();
        *body.last_mut().unwrap() = 2;
        assert_eq!(
            ReplicaOp::decode("claim", &body).unwrap_err().code(),
            "MALFORMED"
        );
    }
}
