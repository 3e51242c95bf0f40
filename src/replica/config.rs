//! The rules of one topic's replica, as canonical bytes (PROTOCOL.md section 6.1).
//!
//! The configuration is part of the state (and so of the state hash): two replicas with different
//! rules never claim to agree.
//!
//! Layout (version 1): `v ‖ u8 issuer count ‖ issuers (32 each, strictly ascending) ‖
//! u64 default_lease_ms ‖ u64 max_lease_ms ‖ u64 recovery_delay_ms ‖ u8 slash policy
//! (0 burn, 1 poster) ‖ u64 election_window_ms ‖ u8 election mode (0 priority, 1 weighted) ‖
//! u16 candidate count ‖ candidates (agent 32 ‖ u64 weight, strictly ascending by agent) ‖
//! u32 feed_capacity`.

use crate::codec::{Reader, Writer};
use crate::election::{ElectionMode, WeightedCandidate};
use crate::error::{Error, Result};
use crate::identity::AgentId;

/// The version byte of an encoded [`ReplicaConfig`].
pub const CONFIG_VERSION: u8 = 1;
/// Most issuers a topic may configure.
pub const MAX_ISSUERS: usize = 255;
/// Most election candidates a topic may configure.
pub const MAX_CANDIDATES: usize = 4096;

/// Where a slashed stake goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlashPolicy {
    /// Burned: the total supply shrinks. The default, because a poster who profits from a slash
    /// would gain by failing honest workers.
    #[default]
    Burn,
    /// Paid to the poster of the task (a slash on a plain resource, without a poster, burns).
    Poster,
}

/// The rules one topic's replicas share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// Agents allowed to mint (sorted and de-duplicated by [`ReplicaConfig::canonical`]).
    pub issuers: Vec<AgentId>,
    /// Lease of a claim that names 0 ms (at least 1).
    pub default_lease_ms: u64,
    /// Longest lease a claim may ask for (at least `default_lease_ms`); longer asks are capped.
    pub max_lease_ms: u64,
    /// How long a recovery that reached its threshold waits for a veto before the key rotates.
    pub recovery_delay_ms: u64,
    /// Where slashed stakes go.
    pub slash_policy: SlashPolicy,
    /// The election window (at least 1 ms).
    pub election_window_ms: u64,
    /// Plain priority or stake-weighted election.
    pub election_mode: ElectionMode,
    /// Who may lead (fenced claims, `leader.act`); empty means no leader-only ops.
    pub candidates: Vec<WeightedCandidate>,
    /// How many feed items (posts, vouches, unknown kinds) the state keeps; older ones drop.
    pub feed_capacity: u32,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            issuers: Vec::new(),
            default_lease_ms: 60_000,
            max_lease_ms: 3_600_000,
            recovery_delay_ms: 86_400_000,
            slash_policy: SlashPolicy::Burn,
            election_window_ms: 30_000,
            election_mode: ElectionMode::Priority,
            candidates: Vec::new(),
            feed_capacity: 1_000,
        }
    }
}

impl ReplicaConfig {
    /// The canonical form: issuers and candidates sorted by agent id bytes, repeats dropped
    /// (a repeated candidate keeps its first weight). `BAD_INPUT` / `LIMIT_EXCEEDED` when a rule
    /// is broken.
    pub fn canonical(mut self) -> Result<Self> {
        self.issuers.sort_unstable();
        self.issuers.dedup();
        self.candidates.sort_by_key(|c| c.agent);
        self.candidates
            .dedup_by(|later, earlier| later.agent == earlier.agent);
        self.check()?;
        Ok(self)
    }

    fn check(&self) -> Result<()> {
        if self.issuers.len() > MAX_ISSUERS {
            return Err(Error::LimitExceeded {
                what: "issuers",
                limit: MAX_ISSUERS,
                got: self.issuers.len(),
            });
        }
        if self.candidates.len() > MAX_CANDIDATES {
            return Err(Error::LimitExceeded {
                what: "candidates",
                limit: MAX_CANDIDATES,
                got: self.candidates.len(),
            });
        }
        if self.default_lease_ms == 0 || self.max_lease_ms < self.default_lease_ms {
            return Err(Error::BadInput(
                "leases: need 1 <= default_lease_ms <= max_lease_ms".into(),
            ));
        }
        if self.election_window_ms == 0 {
            return Err(Error::BadInput(
                "election_window_ms must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The canonical bytes (of the canonical form).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let config = self.clone().canonical()?;
        let mut out = Vec::with_capacity(64 + 32 * config.issuers.len());
        out.put_u8(CONFIG_VERSION);
        out.put_u8(config.issuers.len() as u8);
        for issuer in &config.issuers {
            out.put(issuer.as_bytes());
        }
        out.put_u64(config.default_lease_ms);
        out.put_u64(config.max_lease_ms);
        out.put_u64(config.recovery_delay_ms);
        out.put_u8(match config.slash_policy {
            SlashPolicy::Burn => 0,
            SlashPolicy::Poster => 1,
        });
        out.put_u64(config.election_window_ms);
        out.put_u8(match config.election_mode {
            ElectionMode::Priority => 0,
            ElectionMode::Weighted => 1,
        });
        out.put_u16(config.candidates.len() as u16);
        for c in &config.candidates {
            out.put(c.agent.as_bytes());
            out.put_u64(c.weight);
        }
        out.put_u32(config.feed_capacity);
        Ok(out)
    }

    /// Decodes canonical config bytes; refuses any other spelling (`NON_CANONICAL` for unsorted
    /// or repeated ids, `MALFORMED` for unknown enum bytes, `TRAILING_BYTES`…).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new("replica config", bytes);
        let version = r.u8("version")?;
        if version != CONFIG_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "replica config",
                version,
            });
        }
        let issuer_count = r.u8("issuer count")? as usize;
        let mut issuers = Vec::with_capacity(issuer_count);
        for _ in 0..issuer_count {
            issuers.push(AgentId::from_bytes(r.take(32, "issuer")?)?);
        }
        let default_lease_ms = r.u64("default lease")?;
        let max_lease_ms = r.u64("max lease")?;
        let recovery_delay_ms = r.u64("recovery delay")?;
        let slash_policy = match r.u8("slash policy")? {
            0 => SlashPolicy::Burn,
            1 => SlashPolicy::Poster,
            other => {
                return Err(Error::malformed(
                    "replica config",
                    format!("slash policy {other}"),
                ))
            }
        };
        let election_window_ms = r.u64("election window")?;
        let election_mode = match r.u8("election mode")? {
            0 => ElectionMode::Priority,
            1 => ElectionMode::Weighted,
            other => {
                return Err(Error::malformed(
                    "replica config",
                    format!("election mode {other}"),
                ))
            }
        };
        let candidate_count = r.u16("candidate count")? as usize;
        let mut candidates = Vec::with_capacity(candidate_count.min(MAX_CANDIDATES));
        for _ in 0..candidate_count {
            let agent = AgentId::from_bytes(r.take(32, "candidate")?)?;
            let weight = r.u64("weight")?;
            candidates.push(WeightedCandidate { agent, weight });
        }
        let feed_capacity = r.u32("feed capacity")?;
        r.finish()?;
        let config = ReplicaConfig {
            issuers,
            default_lease_ms,
            max_lease_ms,
            recovery_delay_ms,
            slash_policy,
            election_window_ms,
            election_mode,
            candidates,
            feed_capacity,
        };
        if config.encode()? != bytes {
            return Err(Error::NonCanonical {
                what: "replica config",
                reason: "issuers and candidates must be strictly ascending".into(),
            });
        }
        Ok(config)
    }

    /// Whether `agent` may mint.
    pub fn is_issuer(&self, agent: &AgentId) -> bool {
        self.issuers.binary_search(agent).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;

    #[test]
    fn round_trips_canonically() {
        let a = Identity::from_seed(&[1; 32]).unwrap().agent_id();
        let b = Identity::from_seed(&[2; 32]).unwrap().agent_id();
        let config = ReplicaConfig {
            issuers: vec![b, a, b],
            candidates: vec![
                WeightedCandidate {
                    agent: b,
                    weight: 2,
                },
                WeightedCandidate {
                    agent: a,
                    weight: 1,
                },
            ],
            slash_policy: SlashPolicy::Poster,
            election_mode: ElectionMode::Weighted,
            ..ReplicaConfig::default()
        };
        let bytes = config.encode().unwrap();
        let decoded = ReplicaConfig::decode(&bytes).unwrap();
        assert_eq!(decoded, config.clone().canonical().unwrap());
        assert_eq!(decoded.issuers.len(), 2);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            ReplicaConfig::decode(&trailing).unwrap_err().code(),
            "TRAILING_BYTES"
        );
        // Swap the two issuers: same set, not canonical.
        let mut swapped = bytes.clone();
        let (x, y) = (swapped[2..34].to_vec(), swapped[34..66].to_vec());
        swapped[2..34].copy_from_slice(&y);
        swapped[34..66].copy_from_slice(&x);
        assert_eq!(
            ReplicaConfig::decode(&swapped).unwrap_err().code(),
            "NON_CANONICAL"
        );
        let bad = ReplicaConfig {
            election_window_ms: 0,
            ..ReplicaConfig::default()
        };
        assert_eq!(bad.encode().unwrap_err().code(), "BAD_INPUT");
    }
}
