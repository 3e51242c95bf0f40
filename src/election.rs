//! Leader election by hash priority: "who does it?" without a vote (PROTOCOL.md section 6.3).
//!
//! Time is cut into windows of `window_ms`; window `w = floor(now_ms / window_ms)` covers
//! `[w·window_ms, (w+1)·window_ms)`. In each window every candidate has a **priority**
//!
//! ```text
//! prefix   = ELECTION_DOMAIN ‖ u8 topic length ‖ topic ‖ zero bytes up to a multiple of 64
//! priority = SHA-256(prefix ‖ agent id (32) ‖ u64 window)
//! ```
//!
//! and the candidate with the highest priority (the 32 bytes compared as a big-endian number)
//! leads; equal priorities are broken by the smaller agent id. The ranking below the leader is the
//! ordered list of backups for failover. Anyone who knows the candidate set and the clock computes
//! the same answer: nothing is exchanged.
//!
//! The **weighted** variant is weighted rendezvous hashing (score `-w / ln u`), computed with
//! integers only so that every language reproduces it bit for bit: `u = (2h + 1) / 2^65` where
//! `h` is the first 8 bytes of the priority, [`neg_log2_q32`] gives `L = -log2 u` in fixed point
//! with 32 fractional bits by the exact procedure documented there, and the sort key is
//! [`weighted_key`] `= floor(w · 2^64 / L)`; the largest key leads, ties again by the smaller
//! agent id. A candidate of weight 2 leads about twice as often as one of weight 1; weight 0
//! never leads while anyone of positive weight is present.
//!
//! The topic prefix is zero-padded to a whole 64-byte SHA-256 block so that an implementation
//! hashes it once per topic and each candidate costs a single compression.
//!
//! The window index doubles as a **fencing token**: a leader-only op names the window it was
//! issued in, and the replica refuses it unless that window is current and the author leads it.

use core::cmp::Ordering;

use sha2::digest::generic_array::GenericArray;

use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::op::validate_topic;

/// Domain-separation prefix of every election priority hash.
pub const ELECTION_DOMAIN: &[u8] = b"ants-coord/election/v1\x00";

/// Fractional bits of [`neg_log2_q32`].
pub const WEIGHT_FRACTION_BITS: u32 = 32;

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
///
/// Because the prefix fills whole SHA-256 blocks, each priority is a single compression of one
/// block (`id ‖ window ‖ SHA-256 padding`) starting from the prefix's chaining value.
#[derive(Clone)]
pub struct PriorityHasher {
    /// The SHA-256 chaining value after the prefix blocks.
    midstate: [u32; 8],
    /// The last block, with the padding and message length already in place.
    block: [u8; 64],
}

/// The SHA-256 initial hash value (FIPS 180-4, section 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

impl PriorityHasher {
    /// Hashes the prefix `ELECTION_DOMAIN ‖ u8 topic length ‖ topic ‖ zero padding to a multiple
    /// of 64 bytes`. `BAD_TOPIC` for an invalid topic.
    pub fn new(topic: &str) -> Result<Self> {
        validate_topic(topic)?;
        let prefix = Self::prefix_bytes(topic);
        let mut midstate = SHA256_IV;
        let blocks: Vec<GenericArray<u8, _>> = prefix
            .chunks_exact(64)
            .map(GenericArray::clone_from_slice)
            .collect();
        sha2::compress256(&mut midstate, &blocks);
        let mut block = [0u8; 64];
        block[40] = 0x80;
        let bits = (prefix.len() as u64 + 40) * 8;
        block[56..].copy_from_slice(&bits.to_be_bytes());
        Ok(PriorityHasher { midstate, block })
    }

    /// The padded prefix bytes of `topic` (no validation).
    pub fn prefix_bytes(topic: &str) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(ELECTION_DOMAIN.len() + 1 + topic.len() + 64);
        bytes.extend_from_slice(ELECTION_DOMAIN);
        bytes.push(topic.len() as u8);
        bytes.extend_from_slice(topic.as_bytes());
        bytes.resize(bytes.len().div_ceil(64) * 64, 0);
        bytes
    }

    /// The priority of `agent` in `window`.
    pub fn priority(&self, agent: &AgentId, window: u64) -> [u8; 32] {
        self.priority_of_bytes(agent.as_bytes(), window)
    }

    /// The priority of the candidate with id bytes `id` in `window`.
    pub fn priority_of_bytes(&self, id: &[u8; 32], window: u64) -> [u8; 32] {
        let mut block = self.block;
        block[..32].copy_from_slice(id);
        block[32..40].copy_from_slice(&window.to_be_bytes());
        let mut state = self.midstate;
        sha2::compress256(&mut state, &[GenericArray::from(block)]);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

/// The priority of `agent` in `window` of `topic` (see the module docs for the exact bytes).
pub fn priority(topic: &str, agent: &AgentId, window: u64) -> Result<[u8; 32]> {
    Ok(PriorityHasher::new(topic)?.priority(agent, window))
}

/// `-log2(u)` for `u = (2h + 1) / 2^65`, `h` = the first 8 bytes of `priority` (big-endian), as
/// an unsigned fixed-point number with [`WEIGHT_FRACTION_BITS`] (32) fractional bits. Always ≥ 1.
///
/// The exact procedure (unsigned integers only, every step truncating):
/// 1. `x = 2h + 1` (a 65-bit integer, odd, so never 0 and below `2^65`).
/// 2. `e = floor(log2 x)` (the index of the highest set bit, 0..=64).
/// 3. `m = x >> (e − 31)` if `e ≥ 31`, else `x << (31 − e)`: a 32-bit mantissa with its top bit
///    set, read as a number in `[1, 2)` with 31 fractional bits.
/// 4. `f = 0`; 32 times: `m = (m · m) >> 31` (a 64-bit product); `f = 2f`; if `m ≥ 2^32` then
///    `f = f + 1` and `m = m >> 1`.
/// 5. `log2 x ≈ (e << 32) | f`; the result is `(65 << 32) − ((e << 32) | f)`.
pub fn neg_log2_q32(priority: &[u8; 32]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&priority[..8]);
    let h = u64::from_be_bytes(head);
    let x = 2 * u128::from(h) + 1;
    let e = 127 - x.leading_zeros();
    let mut m = (if e >= 31 {
        x >> (e - 31)
    } else {
        x << (31 - e)
    }) as u64;
    let mut f: u64 = 0;
    for _ in 0..WEIGHT_FRACTION_BITS {
        m = (m * m) >> 31;
        // Branch-free form of "if m >= 2^32 { f += 1; m >>= 1 }" (the bits are random, so a
        // branch would be mispredicted half the time).
        let carry = m >> 32;
        f = (f << 1) | carry;
        m >>= carry;
    }
    let log2_x = (u64::from(e) << WEIGHT_FRACTION_BITS) | f;
    (65u64 << WEIGHT_FRACTION_BITS) - log2_x
}

/// The weighted sort key `floor(weight · 2^64 / L)` with `L` = [`neg_log2_q32`]: the candidate
/// with the largest key leads (weighted rendezvous hashing, `-w / ln u` up to a constant factor).
pub fn weighted_key(weight: u64, neg_log2_u: u64) -> u128 {
    (u128::from(weight) << 64) / u128::from(neg_log2_u.max(1))
}

/// A candidate for a weighted election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightedCandidate {
    /// Who.
    pub agent: AgentId,
    /// Its weight (e.g. its stake); 0 never leads while a positive weight is present.
    pub weight: u64,
}

/// One candidate's standing in a window, as ranked. `A` names the candidate: an [`AgentId`]
/// for [`rank`], the candidate's index in the input for [`rank_ids`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing<A = AgentId> {
    /// Who.
    pub agent: A,
    /// Its 32 id bytes (what is hashed; ties go to the smaller).
    pub id: [u8; 32],
    /// Its priority hash in the window.
    pub priority: [u8; 32],
    /// Its weight (1 in an unweighted election).
    pub weight: u64,
    /// `L = -log2 u` in Q32 ([`neg_log2_q32`]); 0 in an unweighted election.
    pub neg_log2_u: u64,
    /// The sort key: [`weighted_key`]`(weight, L)` in a weighted election, the first 16 bytes of
    /// the priority (big-endian) in an unweighted one.
    pub key: u128,
}

impl<A> Standing<A> {
    /// The weighted score `w / -log2(u)` as a float, for display only (ranking uses integers).
    pub fn weighted_score(&self) -> f64 {
        self.weight as f64 * (1u64 << WEIGHT_FRACTION_BITS) as f64 / self.neg_log2_u.max(1) as f64
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

fn priority_order<A>(a: &Standing<A>, b: &Standing<A>) -> Ordering {
    // `key` holds the first 16 priority bytes: the full comparison is needed only on a tie.
    b.key
        .cmp(&a.key)
        .then_with(|| b.priority.cmp(&a.priority))
        .then_with(|| a.id.cmp(&b.id))
}

fn weighted_order<A>(a: &Standing<A>, b: &Standing<A>) -> Ordering {
    b.key.cmp(&a.key).then_with(|| a.id.cmp(&b.id))
}

/// The standings of `candidates` in `window`, best first, truncated to `k` entries when `k` is
/// given. A repeated agent counts once, with its best standing (in weighted mode: its largest
/// weight).
pub fn rank(
    topic: &str,
    candidates: &[WeightedCandidate],
    window: u64,
    mode: ElectionMode,
    k: Option<usize>,
) -> Result<Vec<Standing>> {
    rank_generic(
        topic,
        candidates
            .iter()
            .map(|c| (c.agent, *c.agent.as_bytes(), c.weight)),
        window,
        mode,
        k,
    )
}

/// [`rank`] over raw 32-byte ids (not checked to be public keys: only their bytes are hashed),
/// with optional weights (`Some` → weighted mode, one weight per id). Standings name candidates
/// by their index in `ids`. `BAD_INPUT` if the weights do not match the ids in number.
pub fn rank_ids(
    topic: &str,
    ids: &[[u8; 32]],
    weights: Option<&[u64]>,
    window: u64,
    k: Option<usize>,
) -> Result<Vec<Standing<usize>>> {
    match weights {
        None => rank_generic(
            topic,
            ids.iter().enumerate().map(|(i, id)| (i, *id, 1)),
            window,
            ElectionMode::Priority,
            k,
        ),
        Some(weights) if weights.len() == ids.len() => rank_generic(
            topic,
            ids.iter()
                .zip(weights)
                .enumerate()
                .map(|(i, (id, w))| (i, *id, *w)),
            window,
            ElectionMode::Weighted,
            k,
        ),
        Some(weights) => Err(Error::BadInput(format!(
            "{} weights for {} candidates",
            weights.len(),
            ids.len()
        ))),
    }
}

fn rank_generic<A: Copy>(
    topic: &str,
    candidates: impl Iterator<Item = (A, [u8; 32], u64)>,
    window: u64,
    mode: ElectionMode,
    k: Option<usize>,
) -> Result<Vec<Standing<A>>> {
    let hasher = PriorityHasher::new(topic)?;
    let mut standings: Vec<Standing<A>> = candidates
        .map(|(agent, id, weight)| {
            let priority = hasher.priority_of_bytes(&id, window);
            match mode {
                ElectionMode::Priority => {
                    let mut head = [0u8; 16];
                    head.copy_from_slice(&priority[..16]);
                    Standing {
                        agent,
                        id,
                        priority,
                        weight: 1,
                        neg_log2_u: 0,
                        key: u128::from_be_bytes(head),
                    }
                }
                ElectionMode::Weighted => {
                    let neg_log2_u = neg_log2_q32(&priority);
                    Standing {
                        agent,
                        id,
                        priority,
                        weight,
                        neg_log2_u,
                        key: weighted_key(weight, neg_log2_u),
                    }
                }
            }
        })
        .collect();
    let order = match mode {
        ElectionMode::Priority => priority_order,
        ElectionMode::Weighted => weighted_order,
    };
    // A repeated id counts once, with its best standing: walk in rank order, keep first sights.
    let dedup = |standings: &mut Vec<Standing<A>>| {
        let mut seen = std::collections::HashSet::with_capacity_and_hasher(
            standings.len(),
            core::hash::BuildHasherDefault::<KeyHasher>::default(),
        );
        standings.retain(|s| seen.insert(s.id));
    };
    match k {
        Some(0) => standings.clear(),
        Some(k) if k < standings.len() => {
            standings.select_nth_unstable_by(k - 1, order);
            let top = &mut standings[..k];
            top.sort_unstable_by(order);
            if top.windows(2).all(|pair| pair[0].id != pair[1].id)
                && (k < 3 || {
                    let mut ids: Vec<[u8; 32]> = top.iter().map(|s| s.id).collect();
                    ids.sort_unstable();
                    ids.windows(2).all(|pair| pair[0] != pair[1])
                })
            {
                standings.truncate(k);
            } else {
                // Repeats among the best (rare): rank everything, then drop them.
                standings.sort_unstable_by(order);
                dedup(&mut standings);
                standings.truncate(k);
            }
        }
        _ => {
            standings.sort_unstable_by(order);
            dedup(&mut standings);
        }
    }
    Ok(standings)
}

/// A hasher for public keys, which are already uniformly distributed: it keeps the first 8 bytes
/// written (used only to spot repeated candidates; an adversarial collision costs time, never
/// correctness).
#[derive(Default)]
struct KeyHasher(u64, u8);

impl core::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.1 < 8 {
                self.0 = (self.0 << 8) | u64::from(b);
                self.1 += 1;
            }
        }
    }
    fn write_usize(&mut self, _: usize) {}
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
            let fixed = neg_log2_q32(&p) as f64 / (1u64 << 32) as f64;
            let u = (2.0 * h as f64 + 1.0) / 2f64.powi(65);
            let exact = -u.log2();
            assert!((fixed - exact).abs() < 1e-8, "h={h}: {fixed} vs {exact}");
            assert!(neg_log2_q32(&p) >= 1);
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
    fn one_block_compression_equals_plain_sha256() {
        use sha2::{Digest, Sha256};
        for topic in [
            "t",
            "a-topic-name-long-enough-to-need-two-prefix-blocks-of-sixty-four-bytes",
        ] {
            let hasher = PriorityHasher::new(topic).unwrap();
            for (i, agent) in agents(3).iter().enumerate() {
                let window = 1u64 << (20 * i);
                let mut input = PriorityHasher::prefix_bytes(topic);
                input.extend_from_slice(agent.as_bytes());
                input.extend_from_slice(&window.to_be_bytes());
                let expected: [u8; 32] = Sha256::digest(&input).into();
                assert_eq!(hasher.priority(agent, window), expected);
            }
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
        // A repeated agent counts once, with its best standing, in every path.
        let many = equal_weights(&agents(8));
        let mut doubled = many.clone();
        doubled.extend(many.iter().map(|c| WeightedCandidate {
            agent: c.agent,
            weight: 9,
        }));
        for window in 0..20 {
            let full = rank("t", &doubled, window, ElectionMode::Weighted, None).unwrap();
            assert_eq!(full.len(), 8);
            assert!(full.iter().all(|s| s.weight == 9));
            for k in 1..=8 {
                let top = rank("t", &doubled, window, ElectionMode::Weighted, Some(k)).unwrap();
                assert_eq!(&top[..], &full[..k]);
            }
        }
        let dup = [set[0], set[0], set[1]];
        assert_eq!(
            rank("t", &dup, 0, ElectionMode::Priority, None)
                .unwrap()
                .len(),
            2
        );
    }
}
