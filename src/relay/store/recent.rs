//! The ops of the newest entries, not yet in the SQLite store's lookup tables.
//!
//! Why: the two lookups sequencing needs (an op by its id, for deps; an author's op by its
//! counter, for retries) are B-trees keyed by a random op id and by author. Inserting a group
//! commit's 8 ops into them one commit at a time rewrote about 20 B-tree pages a commit (two
//! thirds of the store's writes: BENCHMARKS.md, "write amplification"), each page a full
//! 4 KiB WAL frame for a few dozen bytes of key. So the store writes an entry's row at once and
//! its lookup keys later, many at a time: the ops of a *generation* of about
//! [`GENERATION_OPS`] entries are sorted, by op id for one table and by (topic, author,
//! counter) for the other, and written a slice per commit, so that each slice lands on a few
//! neighbouring pages and each page is written once per generation instead of once per op.
//! Until then the lookups are answered from here.
//!
//! Invariant (with `index_marks`): every stored entry of a topic at or after the topic's mark is
//! here, and every entry before it is in both lookup tables. An op leaves a map only once the
//! transaction that wrote its key committed ([`RecentOps::drained`]), so a lookup never misses
//! a stored op. After a crash the store rebuilds this from the entries at or after each mark
//! (at most two generations and a batch): it is a cache of the entries table, never state.
//!
//! Bounded: a commit writes at least twice as many keys of each table as it adds entries
//! ([`RecentOps::next_drain`]), so a generation is written before the one filling grows past
//! half its size, whatever the batches: at most 1.5 generations and four batches of
//! `commit_max_ops` (2,048 by default), about 150 bytes an op in memory, some 3 MiB. (At first
//! it wrote a fixed 256 keys a commit: under `ants-load throughput`, batches of hundreds of ops
//! outran that, and a restart after a million entries read 930,000 of them back into memory,
//! 9 s instead of 1.3.)

use std::collections::HashMap;

use crate::identity::AgentId;

/// Ops in a generation before its keys are written to the lookup tables.
pub const GENERATION_OPS: usize = 8_192;

/// Fewest keys of each lookup table written with each commit while a generation drains: a
/// generation is written in `GENERATION_OPS / DRAIN_OPS` = 32 commits of up to 128 entries
/// (1,000 commits of 8 fill one); a commit of more entries writes twice as many keys.
pub const DRAIN_OPS: usize = 256;

/// One stored op as the lookups need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentOp {
    /// The topic's row id.
    pub topic: i64,
    /// The entry's sequence number.
    pub seq: u64,
    /// The op's author.
    pub author: AgentId,
    /// The op's counter.
    pub counter: u64,
    /// The op id.
    pub op_id: [u8; 32],
}

/// What the next commit writes to the lookup tables: slices of the draining generation, and
/// the topics' new marks when the generation is done.
#[derive(Debug, Default)]
pub struct Drain<'a> {
    /// Ops whose `op_index` rows to write, in op id order.
    pub by_op: &'a [RecentOp],
    /// Ops whose `counter_index` rows to write, in (topic, author, counter) order.
    pub by_counter: &'a [RecentOp],
    /// `(topic, first seq not yet indexed)` to record, once this drain ends the generation.
    pub marks: Vec<(i64, u64)>,
}

/// The ops not yet in the lookup tables. See the module's documentation.
#[derive(Debug, Default)]
pub struct RecentOps {
    /// The newest ops, in the order they were stored.
    filling: Vec<RecentOp>,
    /// The generation being written, sorted by op id; `by_op_done` of them are in `op_index`.
    draining_by_op: Vec<RecentOp>,
    by_op_done: usize,
    /// The same generation sorted by (topic, author, counter); `by_counter_done` of them are
    /// in `counter_index`.
    draining_by_counter: Vec<RecentOp>,
    by_counter_done: usize,
    /// Each topic's first seq after the draining generation.
    draining_marks: Vec<(i64, u64)>,
    /// Every op here not yet in `op_index`: its topic and seq.
    by_op: HashMap<[u8; 32], (i64, u64)>,
    /// Every op here not yet in `counter_index`: its seq.
    by_counter: HashMap<(i64, AgentId, u64), u64>,
}

impl RecentOps {
    /// Nothing recent.
    pub fn new() -> Self {
        RecentOps::default()
    }

    /// Adds a stored op (after its transaction committed).
    pub fn push(&mut self, op: RecentOp) {
        self.by_op.insert(op.op_id, (op.topic, op.seq));
        self.by_counter
            .insert((op.topic, op.author, op.counter), op.seq);
        self.filling.push(op);
    }

    /// The topic and seq of the op with this id, if it is here.
    pub fn op(&self, op_id: &[u8; 32]) -> Option<(i64, u64)> {
        self.by_op.get(op_id).copied()
    }

    /// The seq of `author`'s op at `counter` in topic `topic`, if it is here.
    pub fn at_counter(&self, topic: i64, author: &AgentId, counter: u64) -> Option<u64> {
        self.by_counter.get(&(topic, *author, counter)).copied()
    }

    /// How many ops are here.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.filling.len() + self.draining_by_op.len()
    }

    /// What the next commit, which stores `entries` new entries, writes: the next slices of
    /// the draining generation (`DRAIN_OPS` keys, or twice `entries`), after making the filling
    /// generation the draining one if that is done and this one is full. Changes no lookup:
    /// until [`RecentOps::drained`] every op stays findable here.
    pub fn next_drain(&mut self, entries: usize) -> Drain<'_> {
        if self.draining_by_op.is_empty() && self.filling.len() >= GENERATION_OPS {
            let mut generation = std::mem::take(&mut self.filling);
            let mut marks: HashMap<i64, u64> = HashMap::new();
            for op in &generation {
                let next = marks.entry(op.topic).or_default();
                *next = (*next).max(op.seq + 1);
            }
            self.draining_marks = marks.into_iter().collect();
            self.draining_marks.sort_unstable();
            let mut by_counter = generation.clone();
            by_counter.sort_unstable_by(|a, b| {
                (a.topic, a.author.as_bytes(), a.counter).cmp(&(
                    b.topic,
                    b.author.as_bytes(),
                    b.counter,
                ))
            });
            generation.sort_unstable_by_key(|op| op.op_id);
            self.draining_by_op = generation;
            self.draining_by_counter = by_counter;
            self.by_op_done = 0;
            self.by_counter_done = 0;
        }
        let keys = DRAIN_OPS.max(entries.saturating_mul(2));
        let by_op_end = (self.by_op_done + keys).min(self.draining_by_op.len());
        let by_counter_end = (self.by_counter_done + keys).min(self.draining_by_counter.len());
        let ends = !self.draining_by_op.is_empty()
            && by_op_end == self.draining_by_op.len()
            && by_counter_end == self.draining_by_counter.len();
        Drain {
            by_op: &self.draining_by_op[self.by_op_done..by_op_end],
            by_counter: &self.draining_by_counter[self.by_counter_done..by_counter_end],
            marks: if ends {
                self.draining_marks.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// Records that the commit carrying `next_drain`'s slices (of `by_op` and `by_counter`
    /// ops) committed: those keys are in the tables now, so they leave the maps.
    pub fn drained(&mut self, by_op: usize, by_counter: usize) {
        let by_op_end = (self.by_op_done + by_op).min(self.draining_by_op.len());
        for op in &self.draining_by_op[self.by_op_done..by_op_end] {
            self.by_op.remove(&op.op_id);
        }
        self.by_op_done = by_op_end;
        let by_counter_end =
            (self.by_counter_done + by_counter).min(self.draining_by_counter.len());
        for op in &self.draining_by_counter[self.by_counter_done..by_counter_end] {
            self.by_counter.remove(&(op.topic, op.author, op.counter));
        }
        self.by_counter_done = by_counter_end;
        if self.by_op_done == self.draining_by_op.len()
            && self.by_counter_done == self.draining_by_counter.len()
        {
            self.draining_by_op = Vec::new();
            self.draining_by_counter = Vec::new();
            self.draining_marks = Vec::new();
            self.by_op_done = 0;
            self.by_counter_done = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(i: u64) -> RecentOp {
        static AUTHORS: std::sync::OnceLock<Vec<AgentId>> = std::sync::OnceLock::new();
        let authors = AUTHORS.get_or_init(|| {
            (1..=3u8)
                .map(|seed| crate::Identity::from_seed(&[seed; 32]).unwrap().agent_id())
                .collect()
        });
        let author = authors[(i % 3) as usize];
        let mut op_id = [0u8; 32];
        op_id[..8].copy_from_slice(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_be_bytes());
        RecentOp {
            topic: (i % 2) as i64 + 1,
            seq: i / 2,
            author,
            counter: i,
            op_id,
        }
    }

    #[test]
    fn every_op_is_found_until_its_keys_are_committed_then_marks_end_the_generation() {
        let mut recent = RecentOps::new();
        let total = GENERATION_OPS as u64 + 10;
        for i in 0..GENERATION_OPS as u64 {
            recent.push(op(i));
        }
        let mut indexed_by_op = Vec::new();
        let mut indexed_by_counter = Vec::new();
        let mut marks = Vec::new();
        // A drain that failed to commit changes nothing.
        let first = recent.next_drain(0);
        assert_eq!(
            (first.by_op.len(), first.by_counter.len()),
            (DRAIN_OPS, DRAIN_OPS)
        );
        assert!(first.marks.is_empty());
        // Ops stored while the generation drains join the next one.
        for i in GENERATION_OPS as u64..total {
            recent.push(op(i));
        }
        for i in 0..total {
            let o = op(i);
            assert_eq!(recent.op(&o.op_id), Some((o.topic, o.seq)));
        }
        loop {
            let drain = recent.next_drain(0);
            if drain.by_op.is_empty() && drain.by_counter.is_empty() {
                break;
            }
            assert!(drain.by_op.windows(2).all(|w| w[0].op_id < w[1].op_id));
            indexed_by_op.extend(drain.by_op.iter().cloned());
            indexed_by_counter.extend(drain.by_counter.iter().cloned());
            marks.extend(drain.marks.iter().copied());
            let (a, b) = (drain.by_op.len(), drain.by_counter.len());
            recent.drained(a, b);
        }
        // The whole first generation went to the tables, and the ten after it stayed.
        assert_eq!(indexed_by_op.len(), GENERATION_OPS);
        assert_eq!(indexed_by_counter.len(), GENERATION_OPS);
        let half = GENERATION_OPS as u64 / 2;
        assert_eq!(marks, vec![(1, half), (2, half)]);
        assert_eq!(recent.len(), 10);
        for i in 0..total {
            let o = op(i);
            let here = i >= GENERATION_OPS as u64;
            assert_eq!(recent.op(&o.op_id).is_some(), here, "{i}");
            assert_eq!(
                recent.at_counter(o.topic, &o.author, o.counter),
                here.then_some(o.seq),
                "{i}"
            );
        }
    }

    #[test]
    fn the_drain_keeps_pace_with_batches_of_any_size() {
        for batch in [1usize, 8, 300, 2_048, 5_000] {
            let mut recent = RecentOps::new();
            let mut next = 0u64;
            let bound = GENERATION_OPS + GENERATION_OPS / 2 + 4 * batch;
            // Five generations' worth of ops, and at least 40 commits.
            for _ in 0..(5 * GENERATION_OPS / batch).max(40) {
                let drain = recent.next_drain(batch);
                let (a, b) = (drain.by_op.len(), drain.by_counter.len());
                recent.drained(a, b);
                for _ in 0..batch {
                    recent.push(op(next));
                    next += 1;
                }
                assert!(
                    recent.len() <= bound,
                    "batch {batch}: {} ops held",
                    recent.len()
                );
            }
        }
    }
}
