//! Following one topic on several relays and comparing what each acknowledges and shows.
//!
//! Each relay numbers the topic on its own, so relays are compared by op id, not by seq: an op
//! that one relay acknowledged or showed must show up in every other relay's feed of the topic
//! within a deadline. Which ops are expected everywhere is the caller's call: always the ones it
//! published to every relay itself ([`RelayComparison::published`]); every op seen anywhere when
//! all writers of the topic publish to all its relays ([`RelayComparison::new`] with
//! `expect_all`). Per-relay order (author counters, deps) and forks are checked by each relay's
//! [`super::Session`] and by checkpoint gossip ([`super::Gossip`]).

use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::error::{Error, Result};
use crate::op::OpId;

/// Most ops a comparison keeps at once; past it the ones waiting longest are dropped unreported.
pub const MAX_COMPARED_OPS: usize = 100_000;

/// Most relays compared at once.
pub const MAX_COMPARED_RELAYS: usize = 16;

/// An op one relay has and another has not shown past the deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The op.
    pub op_id: OpId,
    /// The relay (index) that has not shown it.
    pub missing_on: usize,
    /// A relay (index) that acknowledged or showed it.
    pub seen_on: usize,
    /// How long since it was first seen, in milliseconds.
    pub waited_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sighting {
    /// When a relay first acknowledged or showed it (None: published, no relay has it yet).
    since_ms: Option<u64>,
    /// The first relay that had it.
    first: usize,
    /// Bit r: relay r showed it in its feed.
    shown: u16,
    /// Bit r: reported missing on relay r already.
    reported: u16,
    /// Expected on every relay (ours, or `expect_all`).
    expected: bool,
}

/// Compares what several relays acknowledge and show of one topic (see the module docs).
#[derive(Debug, Clone)]
pub struct RelayComparison {
    relays: usize,
    deadline_ms: u64,
    expect_all: bool,
    ops: BTreeMap<OpId, Sighting>,
    /// Ops shown by every relay (the latest [`MAX_COMPARED_OPS`]): a receipt that arrives after
    /// the entries must not start the comparison again. Only asked "is it there" (the order is
    /// `settled_order`'s), so a hash set: the same type as the log follower's, one copy of code.
    settled: HashSet<OpId>,
    settled_order: VecDeque<OpId>,
}

impl RelayComparison {
    /// Compares `relays` relays (2 to [`MAX_COMPARED_RELAYS`]); an op is reported missing on a
    /// relay `deadline_ms` after another relay first had it.
    ///
    /// Errors: `BAD_INPUT` for fewer than 2 or more than [`MAX_COMPARED_RELAYS`] relays.
    pub fn new(relays: usize, deadline_ms: u64, expect_all: bool) -> Result<Self> {
        if !(2..=MAX_COMPARED_RELAYS).contains(&relays) {
            return Err(Error::BadInput(format!(
                "{relays} relays: compare 2 to {MAX_COMPARED_RELAYS}"
            )));
        }
        Ok(RelayComparison {
            relays,
            deadline_ms,
            expect_all,
            ops: BTreeMap::new(),
            settled: HashSet::new(),
            settled_order: VecDeque::new(),
        })
    }

    /// How many ops are being followed.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no op is being followed.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// We published `op_id` to every relay: it is expected on each.
    pub fn published(&mut self, op_id: OpId) {
        if !self.settled.contains(&op_id) {
            self.sighting(op_id, None, None).expected = true;
        }
    }

    /// Relay `relay` acknowledged `op_id` (a verified receipt).
    ///
    /// Errors: `BAD_INPUT` for a relay index out of range.
    pub fn acknowledged(&mut self, relay: usize, op_id: OpId, now_ms: u64) -> Result<()> {
        self.check(relay)?;
        if !self.settled.contains(&op_id) {
            self.sighting(op_id, Some(relay), Some(now_ms));
        }
        Ok(())
    }

    /// Relay `relay` showed `op_id` in its (verified) feed of the topic.
    ///
    /// Errors: `BAD_INPUT` for a relay index out of range.
    pub fn shown(&mut self, relay: usize, op_id: OpId, now_ms: u64) -> Result<()> {
        self.check(relay)?;
        if self.settled.contains(&op_id) {
            return Ok(());
        }
        let all = (1u16 << self.relays) - 1;
        let sighting = self.sighting(op_id, Some(relay), Some(now_ms));
        sighting.shown |= 1 << relay;
        if sighting.shown == all {
            self.ops.remove(&op_id);
            self.settled.insert(op_id);
            self.settled_order.push_back(op_id);
            if self.settled_order.len() > MAX_COMPARED_OPS {
                if let Some(old) = self.settled_order.pop_front() {
                    self.settled.remove(&old);
                }
            }
        }
        Ok(())
    }

    /// Time passes: every expected op that some relay had for `deadline_ms` and another relay
    /// has not shown, reported once per relay.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Divergence> {
        let mut found = Vec::new();
        for (op_id, sighting) in &mut self.ops {
            let Some(since) = sighting.since_ms else {
                continue;
            };
            let waited_ms = now_ms.saturating_sub(since);
            if !(sighting.expected || self.expect_all) || waited_ms < self.deadline_ms {
                continue;
            }
            for relay in 0..self.relays {
                let bit = 1 << relay;
                if sighting.shown & bit == 0 && sighting.reported & bit == 0 {
                    sighting.reported |= bit;
                    found.push(Divergence {
                        op_id: *op_id,
                        missing_on: relay,
                        seen_on: sighting.first,
                        waited_ms,
                    });
                }
            }
        }
        found
    }

    fn check(&self, relay: usize) -> Result<()> {
        if relay >= self.relays {
            return Err(Error::BadInput(format!(
                "relay {relay} of {} compared",
                self.relays
            )));
        }
        Ok(())
    }

    fn sighting(
        &mut self,
        op_id: OpId,
        relay: Option<usize>,
        now_ms: Option<u64>,
    ) -> &mut Sighting {
        if !self.ops.contains_key(&op_id) && self.ops.len() >= MAX_COMPARED_OPS {
            self.evict_oldest();
        }
        let sighting = self.ops.entry(op_id).or_insert(Sighting {
            since_ms: None,
            first: 0,
            shown: 0,
            reported: 0,
            expected: false,
        });
        if let (None, Some(relay), Some(now)) = (sighting.since_ms, relay, now_ms) {
            sighting.since_ms = Some(now);
            sighting.first = relay;
        }
        sighting
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .ops
            .iter()
            .min_by_key(|(_, s)| s.since_ms.unwrap_or(u64::MAX))
            .map(|(id, _)| *id);
        if let Some(id) = oldest {
            self.ops.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> OpId {
        OpId([n; 32])
    }

    #[test]
    fn an_op_missing_on_one_relay_is_reported_once_after_the_deadline() {
        let mut cmp = RelayComparison::new(3, 1_000, false).unwrap();
        cmp.published(id(1));
        cmp.acknowledged(0, id(1), 10).unwrap();
        cmp.shown(0, id(1), 20).unwrap();
        cmp.shown(2, id(1), 30).unwrap();
        assert!(cmp.tick(1_009).is_empty(), "not before the deadline");
        let found = cmp.tick(1_010);
        assert_eq!(
            found,
            vec![Divergence {
                op_id: id(1),
                missing_on: 1,
                seen_on: 0,
                waited_ms: 1_000
            }]
        );
        assert!(cmp.tick(5_000).is_empty(), "reported once");
        cmp.shown(1, id(1), 5_001).unwrap();
        assert!(cmp.is_empty(), "shown everywhere: forgotten");
        // A receipt that comes after the entries does not start it again.
        cmp.acknowledged(0, id(1), 5_002).unwrap();
        cmp.published(id(1));
        assert!(cmp.is_empty());
        assert!(cmp.tick(100_000).is_empty());
    }

    #[test]
    fn others_ops_count_only_with_expect_all() {
        let mut mine = RelayComparison::new(2, 100, false).unwrap();
        let mut all = RelayComparison::new(2, 100, true).unwrap();
        for cmp in [&mut mine, &mut all] {
            cmp.shown(0, id(7), 0).unwrap();
        }
        assert!(mine.tick(1_000).is_empty());
        assert_eq!(all.tick(1_000).len(), 1);
    }

    #[test]
    fn published_but_seen_nowhere_is_not_a_divergence() {
        let mut cmp = RelayComparison::new(2, 100, true).unwrap();
        cmp.published(id(3));
        assert!(cmp.tick(10_000).is_empty());
    }

    #[test]
    fn bad_relay_counts_and_indices_are_refused() {
        assert_eq!(
            RelayComparison::new(1, 0, false).unwrap_err().code(),
            "BAD_INPUT"
        );
        assert_eq!(
            RelayComparison::new(17, 0, false).unwrap_err().code(),
            "BAD_INPUT"
        );
        let mut cmp = RelayComparison::new(2, 0, false).unwrap();
        assert_eq!(cmp.shown(2, id(1), 0).unwrap_err().code(), "BAD_INPUT");
        assert!(cmp.is_empty(), "a refused call changes nothing");
    }

    #[test]
    fn the_number_of_ops_followed_is_bounded() {
        let mut cmp = RelayComparison::new(2, 0, true).unwrap();
        for i in 0..(MAX_COMPARED_OPS as u32 + 10) {
            let mut bytes = [0; 32];
            bytes[..4].copy_from_slice(&i.to_be_bytes());
            cmp.acknowledged(0, OpId(bytes), u64::from(i)).unwrap();
        }
        assert_eq!(cmp.len(), MAX_COMPARED_OPS);
    }
}
