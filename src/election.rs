//! Leader election by hash priority: "who does it?" without a vote (PROTOCOL.md section 6.3).
//!
//! Time is cut into windows of `window_ms`; window `w = floor(now_ms / window_ms)` covers
//! `[w·window_ms, (w+1)·window_ms)`. In each window every candidate has a **priority**
//!
//! ```text
//! priority = SHA-256(ELECTION_DOMAIN ‖ u8 topic length ‖ topic ‖ agent id (32) ‖ u64 window)
//! ```
//!
//! and the candidate with the highest priority (the 32 bytes compared as a big-endian number)
//! leads; equal priorities are broken by the smaller agent id. The ranking below the leader is the
//! ordered list of backups for failover. Anyone who knows the candidate set and the clock computes
//! the same answer: nothing is exchanged.
//!
//! The **weighted** variant is weighted rendezvous hashing (score `-w / ln u`), computed with
//! integers only so that every language reproduces it bit for bit: `u = (2h + 1) / 2^65` where
//! `h` is the first 8 bytes of the priority, and [`neg_log2_q48`] gives `-log2 u` in fixed point
//! with 48 fractional bits, by the exact procedure documented there. Candidate `a` ranks above `b`
//! when `w_a · L_b > w_b · L_a` (128-bit products), ties again by the smaller agent id. A
//! candidate of weight 2 leads about twice as often as one of weight 1; weight 0 never leads
//! while anyone of positive weight is present.
//!
//! The window index doubles as a **fencing token**: a leader-only op names the window it was
//! issued in, and the replica refuses it unless that window is current and the author leads it.

use core::cmp::Ordering;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::op::validate_topic;

/// Domain-separation prefix of every election priority hash.
pub const ELECTION_DOMAIN: &[u8] = b"ants-coord/election/v1\x00";

/// Fractional bits of [`neg_log2_q48`].
pub const WEIGHT_FRACTION_BITS: u32 = 48;

/// The window containing `now_ms`: `floor(now_ms / window_ms)`. `BAD_INPUT` if `window_ms` is 0.
pub fn window_of(now_ms: u64, window_ms: u64) -> Result<u64> {
    if window_ms == 0 {
        return Err(Error::BadInput(
            "election window must be at least 1 ms".into(),
        ));
    }
    Ok(now_ms / window_ms)
}

/// The priority hashes of one topic, with the common prefix hashed once.
#[derive(Clone)]
pub struct PriorityHasher {
    prefix: Sha256,
}

impl PriorityHasher {
    /// Prepares `ELECTION_DOMAIN ‖ u8 topic length ‖ topic`. `BAD_TOPIC` for an invalid topic.
    pub fn new(topic: &str) -> Result<Self> {
        validate_topic(topic)?;
        let mut prefix = Sha256::new();
        prefix.update(ELECTION_DOMAIN);
        prefix.update([topic.len() as u8]);
        prefix.update(topic.as_bytes());
        Ok(PriorityHasher { prefix })
    }

    /// The priority of `agent` in `window`.
    pub fn priority(&self, agent: &AgentId, window: u64) -> [u8; 32] {
        let mut hasher = self.prefix.clone();
        hasher.update(agent.as_bytes());
        hasher.update(window.to_be_bytes());
        hasher.finalize().into()
    }
}

/// The priority of `agent` in `window` of `topic` (see the module docs for the exact bytes).
pub fn priority(topic: &str, agent: &AgentId, window: u64) -> Result<[u8; 32]> {
    Ok(PriorityHasher::new(topic)?.priority(agent, window))
}

/// `-log2(u)` for `u = (2h + 1) / 2^65`, `h` = the first 8 bytes of `priority` (big-endian), as
/// an unsigned fixed-point number with [`WEIGHT_FRACTION_BITS`] fractional bits. Always ≥ 1.
///
/// The exact procedure (integers only, every step truncating):
/// 1. `x = 2h + 1` (a 65-bit integer, odd, so never 0 and below `2^65`).
/// 2. `e = floor(log2 x)` (the index of the highest set bit, 0..=64).
/// 3. `m = x >> (e − 63)` if `e ≥ 63`, else `x << (63 − e)`: a 64-bit mantissa with its top bit
///    set, read as a number in `[1, 2)` with 63 fractional bits.
/// 4. `f = 0`; 48 times: `m = (m · m) >> 63` (128-bit product); `f = 2f`; if `m ≥ 2^64` then
///    `f = f + 1` and `m = m >> 1`.
/// 5. `log2 x ≈ (e << 48) | f`; the result is `(65 << 48) − ((e << 48) | f)`.
pub fn neg_log2_q48(priority: &[u8; 32]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&priority[..8]);
    let h = u64::from_be_bytes(head);
    let x = 2 * u128::from(h) + 1;
    let e = 127 - x.leading_zeros();
    let mut m: u128 = if e >= 63 {
        x >> (e - 63)
    } else {
        x << (63 - e)
    };
    let mut f: u64 = 0;
    for _ in 0..WEIGHT_FRACTION_BITS {
        m = (m * m) >> 63;
        f <<= 1;
        if m >= 1 << 64 {
            f |= 1;
            m >>= 1;
        }
    }
    let log2_x = (u64::from(e) << WEIGHT_FRACTION_BITS) | f;
    (65u64 << WEIGHT_FRACTION_BITS) - log2_x
}

/// A candidate for a weighted election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightedCandidate {
    /// Who.
    pub agent: AgentId,
    /// Its weight (e.g. its stake); 0 never leads while a positive weight is present.
    pub weight: u64,
}

/// One candidate's standing in a window, as ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Who.
    pub agent: AgentId,
    /// Its priority hash in the window.
    pub priority: [u8; 32],
    /// Its weight (1 in an unweighted election).
    pub weight: u64,
    /// `-log2 u` in Q48 ([`neg_log2_q48`]); used only by the weighted order.
    pub neg_log2_u: u64,
}

impl Standing {
    /// The weighted score `w / -log2(u)` as a float, for display only (ranking uses integers).
    pub fn weighted_score(&self) -> f64 {
        self.weight as f64 * (1u64 << WEIGHT_FRACTION_BITS) as f64 / self.neg_log2_u as f64
    }
}

/// Which order an election uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionMode {
    /// Highest priority hash first.
    Priority,
    /// Weighted rendezvous hashing, highest `w / -log2 u` first.
    Weighted,
}

fn priority_order(a: &Standing, b: &Standing) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| a.agent.as_bytes().cmp(b.agent.as_bytes()))
}

fn weighted_order(a: &Standing, b: &Standing) -> Ordering {
    // a before b when w_a / L_a > w_b / L_b, i.e. w_a·L_b > w_b·L_a.
    let left = u128::from(a.weight) * u128::from(b.neg_log2_u);
    let right = u128::from(b.weight) * u128::from(a.neg_log2_u);
    right
        .cmp(&left)
        .then_with(|| a.agent.as_bytes().cmp(b.agent.as_bytes()))
}

/// The standings of `candidates` (duplicates of an agent keep the first weight) in `window`,
/// best first, truncated to `k` entries when `k` is given.
pub fn rank(
    topic: &str,
    candidates: &[WeightedCandidate],
    window: u64,
    mode: ElectionMode,
    k: Option<usize>,
) -> Result<Vec<Standing>> {
    let hasher = PriorityHasher::new(topic)?;
    let mut standings: Vec<Standing> = candidates
        .iter()
        .map(|c| {
            let priority = hasher.priority(&c.agent, window);
            Standing {
                agent: c.agent,
                priority,
                weight: match mode {
                    ElectionMode::Priority => 1,
                    ElectionMode::Weighted => c.weight,
                },
                neg_log2_u: match mode {
                    ElectionMode::Priority => 0,
                    ElectionMode::Weighted => neg_log2_q48(&priority),
                },
            }
        })
        .collect();
    // Drop repeated agents: keep the first occurrence, deterministically.
    if standings.len() > 1 {
        let mut seen = std::collections::HashSet::with_capacity(standings.len());
        standings.retain(|s| seen.insert(s.agent));
    }
    let order = match mode {
        ElectionMode::Priority => priority_order,
        ElectionMode::Weighted => weighted_order,
    };
    match k {
        Some(k) if k < standings.len() => {
            if k > 0 {
                standings.select_nth_unstable_by(k - 1, order);
            }
            standings.truncate(k);
            standings.sort_unstable_by(order);
        }
        _ => standings.sort_unstable_by(order),
    }
    Ok(standings)
}

/// The outcome of an election at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Election {
    /// The leader of the window.
    pub leader: AgentId,
    /// The window index (also the fencing token).
    pub window: u64,
    /// When the window began, ms since the Unix epoch.
    pub starts_at_ms: u64,
    /// When the window ends (exclusive) and leadership moves on, ms since the Unix epoch.
    pub ends_at_ms: u64,
    /// The standings, leader first, then the ordered backups (all, or the top `k`).
    pub ranking: Vec<Standing>,
}

/// Elects among `candidates` at `now_ms`: the leader, its window, when it ends, the ranking.
///
/// Errors: `BAD_INPUT` (window 0), `BAD_TOPIC`, `NO_CANDIDATES` (empty set, or in weighted mode
/// no positive weight).
pub fn elect(
    topic: &str,
    candidates: &[WeightedCandidate],
    now_ms: u64,
    window_ms: u64,
    mode: ElectionMode,
    k: Option<usize>,
) -> Result<Election> {
    let window = window_of(now_ms, window_ms)?;
    let ranking = rank(topic, candidates, window, mode, k.map(|k| k.max(1)))?;
    let first = ranking.first().ok_or(Error::NoCandidates)?;
    if first.weight == 0 {
        return Err(Error::NoCandidates);
    }
    Ok(Election {
        leader: first.agent,
        window,
        starts_at_ms: window.saturating_mul(window_ms),
        ends_at_ms: window.saturating_add(1).saturating_mul(window_ms),
        ranking,
    })
}

/// The leader among equal-weight `agents` in `window` (no allocation beyond the hashes).
pub fn leader_of(topic: &str, agents: &[AgentId], window: u64) -> Result<AgentId> {
    let hasher = PriorityHasher::new(topic)?;
    agents
        .iter()
        .map(|a| (hasher.priority(a, window), a))
        .min_by(|(pa, a), (pb, b)| pb.cmp(pa).then_with(|| a.as_bytes().cmp(b.as_bytes())))
        .map(|(_, a)| *a)
        .ok_or(Error::NoCandidates)
}

/// Equal-weight candidates (weight 1 each), for the unweighted calls.
pub fn equal_weights(agents: &[AgentId]) -> Vec<WeightedCandidate> {
    agents
        .iter()
        .map(|&agent| WeightedCandidate { agent, weight: 1 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;

    fn agents(n: u8) -> Vec<AgentId> {
        (0..n)
            .map(|i| Identity::from_seed(&[i + 1; 32]).unwrap().agent_id())
            .collect()
    }

    #[test]
    fn neg_log2_matches_float_closely() {
        for h in [
            0u64,
            1,
            7,
            1 << 20,
            1 << 40,
            u64::MAX / 3,
            u64::MAX / 2,
            u64::MAX - 5,
            u64::MAX,
        ] {
            let mut p = [0u8; 32];
            p[..8].copy_from_slice(&h.to_be_bytes());
            let fixed = neg_log2_q48(&p) as f64 / (1u64 << 48) as f64;
            let u = (2.0 * h as f64 + 1.0) / 2f64.powi(65);
            let exact = -u.log2();
            assert!((fixed - exact).abs() < 1e-9, "h={h}: {fixed} vs {exact}");
            assert!(neg_log2_q48(&p) >= 1);
        }
    }

    #[test]
    fn leader_is_first_of_ranking_and_deterministic() {
        let set = agents(9);
        let cands = equal_weights(&set);
        for window in 0..50 {
            let r = rank("t", &cands, window, ElectionMode::Priority, None).unwrap();
            assert_eq!(r.len(), 9);
            assert!(r.windows(2).all(|w| w[0].priority > w[1].priority));
            assert_eq!(leader_of("t", &set, window).unwrap(), r[0].agent);
            let top3 = rank("t", &cands, window, ElectionMode::Priority, Some(3)).unwrap();
            assert_eq!(&top3[..], &r[..3]);
            let wr = rank("t", &cands, window, ElectionMode::Weighted, Some(4)).unwrap();
            assert_eq!(
                wr.iter().map(|s| s.agent).collect::<Vec<_>>(),
                r[..4].iter().map(|s| s.agent).collect::<Vec<_>>(),
                "equal weights order like plain priorities"
            );
        }
    }

    #[test]
    fn window_bounds_and_errors() {
        let set = equal_weights(&agents(3));
        let e = elect("t", &set, 10_500, 1_000, ElectionMode::Priority, None).unwrap();
        assert_eq!(
            (e.window, e.starts_at_ms, e.ends_at_ms),
            (10, 10_000, 11_000)
        );
        assert_eq!(
            elect("t", &[], 0, 1_000, ElectionMode::Priority, None)
                .unwrap_err()
                .code(),
            "NO_CANDIDATES"
        );
        assert_eq!(window_of(1, 0).unwrap_err().code(), "BAD_INPUT");
        let zero = vec![WeightedCandidate {
            agent: set[0].agent,
            weight: 0,
        }];
        assert_eq!(
            elect("t", &zero, 0, 1, ElectionMode::Weighted, None)
                .unwrap_err()
                .code(),
            "NO_CANDIDATES"
        );
        let dup = [set[0], set[0], set[1]];
        assert_eq!(
            rank("t", &dup, 0, ElectionMode::Priority, None)
                .unwrap()
                .len(),
            2
        );
    }
}
