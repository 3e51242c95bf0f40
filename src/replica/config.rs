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
    /// (a repeated candidate keeps its first weight). Then the rules of PROTOCOL.md 6.1, in
    /// layout order: `LIMIT_EXCEEDED` for more than 255 issuers, `BAD_CONFIG` for a broken lease
    /// or window rule, `LIMIT_EXCEEDED` for more than 4096 candidates.
    pub fn canonical(mut self) -> Result<Self> {
        self.issuers.sort_unstable();
        self.issuers.dedup();
        self.candidates.sort_by_key(|c| c.agent);
        self.candidates
            .dedup_by(|later, earlier| later.agent == earlier.agent);
        self.check()?;
        Ok(self)
    }

    /// The value rules, in layout order (the order [`ReplicaConfig::decode`] meets them).
    fn check(&self) -> Result<()> {
        check_count("issuers", self.issuers.len(), MAX_ISSUERS)?;
        check_leases(self.default_lease_ms, Some(self.max_lease_ms))?;
        check_window(self.election_window_ms)?;
        check_count("candidates", self.candidates.len(), MAX_CANDIDATES)
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

    /// Decodes canonical config bytes. Reads the fields in layout order and refuses at the first
    /// defect (PROTOCOL.md 6.1): `UNSUPPORTED_VERSION`, `MALFORMED` (cut short, or an enum byte
    /// not listed), `BAD_PUBLIC_KEY`, `NON_CANONICAL` (an id not strictly above the one before),
    /// `BAD_CONFIG` (a lease or window rule), `LIMIT_EXCEEDED` (candidate count); then
    /// `TRAILING_BYTES`.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(WHAT, bytes);
        let version = r.u8("version")?;
        if version != CONFIG_VERSION {
            return Err(Error::UnsupportedVersion {
                what: WHAT,
                version,
            });
        }
        let issuer_count = r.u8("issuer count")? as usize;
        let mut issuers: Vec<AgentId> = Vec::with_capacity(issuer_count);
        for _ in 0..issuer_count {
            let issuer = AgentId::from_bytes(r.take(32, "issuer")?)?;
            ascending("issuers", issuers.last(), &issuer)?;
            issuers.push(issuer);
        }
        let default_lease_ms = r.u64("default lease")?;
        check_leases(default_lease_ms, None)?;
        let max_lease_ms = r.u64("max lease")?;
        check_leases(default_lease_ms, Some(max_lease_ms))?;
        let recovery_delay_ms = r.u64("recovery delay")?;
        let slash_policy = match r.u8("slash policy")? {
            0 => SlashPolicy::Burn,
            1 => SlashPolicy::Poster,
            other => return Err(Error::malformed(WHAT, format!("slash policy {other}"))),
        };
        let election_window_ms = r.u64("election window")?;
        check_window(election_window_ms)?;
        let election_mode = match r.u8("election mode")? {
            0 => ElectionMode::Priority,
            1 => ElectionMode::Weighted,
            other => return Err(Error::malformed(WHAT, format!("election mode {other}"))),
        };
        let candidate_count = r.u16("candidate count")? as usize;
        check_count("candidates", candidate_count, MAX_CANDIDATES)?;
        let mut candidates: Vec<WeightedCandidate> = Vec::with_capacity(candidate_count);
        for _ in 0..candidate_count {
            let agent = AgentId::from_bytes(r.take(32, "candidate")?)?;
            ascending("candidates", candidates.last().map(|c| &c.agent), &agent)?;
            let weight = r.u64("weight")?;
            candidates.push(WeightedCandidate { agent, weight });
        }
        let feed_capacity = r.u32("feed capacity")?;
        r.finish()?;
        Ok(ReplicaConfig {
            issuers,
            default_lease_ms,
            max_lease_ms,
            recovery_delay_ms,
            slash_policy,
            election_window_ms,
            election_mode,
            candidates,
            feed_capacity,
        })
    }

    /// Whether `agent` may mint.
    pub fn is_issuer(&self, agent: &AgentId) -> bool {
        self.issuers.binary_search(agent).is_ok()
    }
}

const WHAT: &str = "replica config";

/// `default_lease_ms ≥ 1` and, once read, `max_lease_ms ≥ default_lease_ms` (`BAD_CONFIG`).
fn check_leases(default_lease_ms: u64, max_lease_ms: Option<u64>) -> Result<()> {
    if default_lease_ms == 0 {
        return Err(Error::BadConfig(
            "default_lease_ms must be at least 1".into(),
        ));
    }
    match max_lease_ms {
        Some(max) if max < default_lease_ms => Err(Error::BadConfig(format!(
            "max_lease_ms {max} is below default_lease_ms {default_lease_ms}"
        ))),
        _ => Ok(()),
    }
}

/// `election_window_ms ≥ 1` (`BAD_CONFIG`).
fn check_window(election_window_ms: u64) -> Result<()> {
    if election_window_ms == 0 {
        return Err(Error::BadConfig(
            "election_window_ms must be at least 1".into(),
        ));
    }
    Ok(())
}

fn check_count(what: &'static str, got: usize, limit: usize) -> Result<()> {
    if got > limit {
        return Err(Error::LimitExceeded { what, limit, got });
    }
    Ok(())
}

/// An id of a list that must be strictly ascending (`NON_CANONICAL` otherwise).
fn ascending(what: &str, previous: Option<&AgentId>, id: &AgentId) -> Result<()> {
    match previous {
        Some(previous) if previous >= id => Err(Error::NonCanonical {
            what: WHAT,
            reason: format!("{what} must be strictly ascending"),
        }),
        _ => Ok(()),
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
        assert_eq!(bad.encode().unwrap_err().code(), "BAD_CONFIG");
    }
}
