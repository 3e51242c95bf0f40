//! The relay's sequencing decisions for one batch of verified ops, sans-IO.
//!
//! Given a topic's head ([`TopicHead`]: its Merkle frontier and the relay time of its last
//! entry), its replica, a verified op, the relay's clock reading and a read-only view of what
//! is already sequenced ([`SequencedOps`]), [`Batch::decide`] says what the relay does with the
//! op:
//!
//! - **append** it: a new [`Sequenced`] entry with the receipt to sign, the complete subtree
//!   hashes to store and the replica events it caused; the head and replica move past it;
//! - **answer a retry**: the op is byte-identical to one already sequenced (in an earlier batch
//!   or earlier in this one), so the original entry's receipt is returned and nothing changes;
//! - **refuse** it with a stable code: `COUNTER_REUSED`, `COUNTER_STALE`, `DEPS_MISSING`
//!   (PROTOCOL 8). `UNAVAILABLE` comes only from the lookup (storage) and concerns the whole
//!   batch, not the op.
//!
//! The rules (PROTOCOL 4 and 5):
//!
//! - per (topic, author) the counter strictly increases; gaps are allowed (an author may abandon
//!   an op it never managed to publish). A counter at or below the author's last one is a retry
//!   when the op stored at that counter has the same op id, `COUNTER_REUSED` when another op is
//!   stored there and `COUNTER_STALE` when none is;
//! - every dep is already sequenced, in any topic, earlier in this batch included: sequencing an
//!   op before one it depends on would be a `DEPS_ORDER` violation any follower can prove;
//! - the relay time of an entry is `max(clock, the topic's last entry time)`: it never goes
//!   backwards within a topic, whatever the wall clock does.
//!
//! A [`Batch`] keeps what it decided so far, because the store sees a batch's entries only once
//! the whole batch is written: a retry of, a counter after, or a dep on an op earlier in the
//! same batch is resolved here. The caller persists [`Batch::entries`] in order and reports
//! nothing as accepted before the store says they are durable. If persisting fails, the heads
//! and replicas this batch moved are ahead of the store: the caller reloads them from it.
//!
//! Nothing here does I/O or reads a clock; the relay (`src/relay/sequencer.rs`) runs it on its
//! sequencer thread and persists the result through its store.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::log::{leaf_hash, Frontier, Hash, Receipt};
use crate::op::{OpId, SignedOp};
use crate::replica::{Event, Replica};

/// What sequencing needs of a topic's log to append to it.
///
/// Invariant: `frontier` is the right edge of the tree of the topic's stored entries (plus
/// those of the current batch), `frontier.size()` is the next sequence number, and
/// `last_time_ms` is the relay time of the last of them (0 when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicHead {
    /// The right edge of the topic's Merkle tree.
    pub frontier: Frontier,
    /// The relay time of the topic's last entry (0 when empty).
    pub last_time_ms: u64,
}

impl TopicHead {
    /// The number of entries (the next sequence number).
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }
}

/// An op already sequenced by one author at one counter, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOp {
    /// Its sequence number in its topic.
    pub seq: u64,
    /// Its op id.
    pub op_id: OpId,
    /// The relay time of its entry.
    pub relay_time_ms: u64,
    /// The signed receipt sent when it was sequenced, if the store kept it (older relays did);
    /// `None`: the receipt is stated again and signed anew.
    pub signed_receipt: Option<Vec<u8>>,
}

/// A read-only view of what is already sequenced and stored, before the current batch.
///
/// Any error is a storage failure: it aborts the whole batch (`UNAVAILABLE`), never refuses
/// one op.
pub trait SequencedOps {
    /// The highest counter `author` has sequenced in `topic` (`None`: none yet).
    fn last_counter(&self, topic: &str, author: &AgentId) -> Result<Option<u64>>;
    /// The op `author` sequenced at `counter` in `topic`, if any.
    fn op_at_counter(
        &self,
        topic: &str,
        author: &AgentId,
        counter: u64,
    ) -> Result<Option<StoredOp>>;
    /// Whether an op with this id is sequenced, in any topic.
    fn is_sequenced(&self, op_id: &OpId) -> Result<bool>;
    /// The root of `topic`'s tree of its first `tree_size` entries (for a retry's receipt).
    fn root_at(&self, topic: &str, tree_size: u64) -> Result<Hash>;
}

/// A newly sequenced entry: what the caller stores, signs and announces.
#[derive(Debug, Clone)]
pub struct Sequenced {
    /// The topic.
    pub topic: String,
    /// The op's author.
    pub author: AgentId,
    /// The op's counter.
    pub counter: u64,
    /// The op's id.
    pub op_id: OpId,
    /// The entry's canonical bytes (seq, relay time, op).
    pub entry: Arc<[u8]>,
    /// The receipt to sign: the tree after this entry.
    pub receipt: Receipt,
    /// The subtrees this entry completed, `(level, index, hash)`, the leaf first: the caller
    /// stores them with the entry.
    pub hashes: Vec<(u32, u64, Hash)>,
    /// What the topic's replica did with the entry (a compensation to push to a losing
    /// claimant…), or why it refused it (the entry stands: the log is the truth, and every
    /// replica refuses it alike).
    pub events: Result<Vec<Event>>,
}

impl Sequenced {
    /// The entry's sequence number.
    pub fn seq(&self) -> u64 {
        self.receipt.seq
    }
}

/// The receipt that answers a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryReceipt {
    /// The receipt of entry `i` of this batch's [`Batch::entries`], signed with them.
    InBatch(usize),
    /// As signed when the op was sequenced, kept by the store.
    Signed(Vec<u8>),
    /// The statement of the original receipt, to sign again (the same statement: seq, op id,
    /// relay time, and the tree just after the entry).
    Unsigned(Receipt),
}

/// What the relay does with one op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Appended as entry `i` of [`Batch::entries`].
    Append(usize),
    /// Already sequenced at `seq`: answer with the original receipt.
    Retry {
        /// Its sequence number.
        seq: u64,
        /// Its receipt.
        receipt: RetryReceipt,
    },
}

/// The decisions of one batch so far.
///
/// Invariant: `entries` are in the order decided; for each topic and author, `by_author` lists
/// the indexes of that author's entries in that topic, in increasing counter order; `op_ids`
/// holds every entry's op id.
#[derive(Debug, Default)]
pub struct Batch {
    entries: Vec<Sequenced>,
    /// By topic, then author (looked up by `&str`: no allocation per op).
    by_author: HashMap<String, HashMap<AgentId, Vec<usize>>>,
    op_ids: HashSet<OpId>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entries appended so far, in order.
    pub fn entries(&self) -> &[Sequenced] {
        &self.entries
    }

    /// Takes the entries out, leaving the batch empty.
    pub fn into_entries(self) -> Vec<Sequenced> {
        self.entries
    }

    /// Decides what to do with `op`, a verified op of the topic whose head and replica are
    /// given, at relay clock reading `now_ms`; `stored` is what was sequenced before this batch.
    /// On [`Decision::Append`] the head and replica have moved past the new entry; otherwise
    /// nothing changed.
    ///
    /// Errors: `COUNTER_REUSED`, `COUNTER_STALE`, `DEPS_MISSING`, and in an owned topic
    /// [`Replica::authorize`]'s codes (`NOT_AUTHORIZED`, `CAPABILITY_EXPIRED`,
    /// `CAPABILITY_REVOKED`, …) refuse the op; `UNAVAILABLE`
    /// (from `stored`) fails the batch; `BAD_INPUT` when the tree is full.
    pub fn decide(
        &mut self,
        head: &mut TopicHead,
        replica: &mut Replica,
        op: &SignedOp,
        now_ms: u64,
        stored: &impl SequencedOps,
    ) -> Result<Decision> {
        let topic = op.topic();
        let author = *op.author();
        let counter = op.counter();
        let op_id = op.id();
        let in_batch = self
            .by_author
            .get(topic)
            .and_then(|authors| authors.get(&author));
        let last_in_batch = in_batch
            .and_then(|indexes| indexes.last())
            .map(|&i| self.entries[i].counter);
        let last = match last_in_batch {
            Some(last) => Some(last),
            None => stored.last_counter(topic, &author)?,
        };
        if let Some(last) = last.filter(|&last| counter <= last) {
            return self.repeated(topic, &author, counter, op_id, last, in_batch, stored);
        }
        for dep in op.deps() {
            if !self.op_ids.contains(dep) && !stored.is_sequenced(dep)? {
                return Err(Error::DepsMissing {
                    dep: dep.to_string(),
                });
            }
        }
        let seq = head.size();
        let time = now_ms.max(head.last_time_ms);
        // An owned topic's rules (PROTOCOL.md 10.7, 10.8): what every replica would reject for
        // want of authority is refused here, so what the relay logs counts everywhere.
        replica.authorize(op, time)?;
        let entry = Entry::new(seq, time, op.clone());
        // Append to a copy of the frontier: nothing changes if this fails.
        let mut frontier = head.frontier.clone();
        let mut hashes = Vec::with_capacity(4);
        frontier.append_hash(leaf_hash(entry.as_bytes()), |level, index, hash| {
            hashes.push((level, index, *hash));
        })?;
        // The replica sees the entry now, so a lost claim is known before the batch commits.
        let events = replica.apply(&entry);
        let receipt = Receipt {
            topic: topic.to_owned(),
            seq,
            op_id,
            relay_time_ms: time,
            tree_size: seq + 1,
            root: frontier.root(),
        };
        head.frontier = frontier;
        head.last_time_ms = time;
        let index = self.entries.len();
        self.entries.push(Sequenced {
            topic: topic.to_owned(),
            author,
            counter,
            op_id,
            entry: Arc::from(entry.as_bytes()),
            receipt,
            hashes,
            events,
        });
        match self.by_author.get_mut(topic) {
            Some(authors) => authors.entry(author).or_default().push(index),
            None => {
                let authors = HashMap::from([(author, vec![index])]);
                self.by_author.insert(topic.to_owned(), authors);
            }
        }
        self.op_ids.insert(op_id);
        Ok(Decision::Append(index))
    }

    /// The answer to an op whose counter is at or below its author's last one (`last`).
    #[allow(clippy::too_many_arguments)]
    fn repeated(
        &self,
        topic: &str,
        author: &AgentId,
        counter: u64,
        op_id: OpId,
        last: u64,
        in_batch: Option<&Vec<usize>>,
        stored: &impl SequencedOps,
    ) -> Result<Decision> {
        let pending = in_batch.and_then(|indexes| {
            indexes
                .binary_search_by_key(&counter, |&i| self.entries[i].counter)
                .ok()
                .map(|at| indexes[at])
        });
        if let Some(i) = pending {
            let entry = &self.entries[i];
            return if entry.op_id == op_id {
                Ok(Decision::Retry {
                    seq: entry.seq(),
                    receipt: RetryReceipt::InBatch(i),
                })
            } else {
                Err(Error::CounterReused {
                    topic: topic.to_owned(),
                    counter,
                })
            };
        }
        match stored.op_at_counter(topic, author, counter)? {
            Some(original) if original.op_id == op_id => {
                let receipt = match original.signed_receipt {
                    Some(bytes) => RetryReceipt::Signed(bytes),
                    None => RetryReceipt::Unsigned(Receipt {
                        topic: topic.to_owned(),
                        seq: original.seq,
                        op_id,
                        relay_time_ms: original.relay_time_ms,
                        tree_size: original.seq + 1,
                        root: stored.root_at(topic, original.seq + 1)?,
                    }),
                };
                Ok(Decision::Retry {
                    seq: original.seq,
                    receipt,
                })
            }
            Some(_) => Err(Error::CounterReused {
                topic: topic.to_owned(),
                counter,
            }),
            None => Err(Error::CounterStale {
                topic: topic.to_owned(),
                counter,
                last,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::log::MerkleLog;
    use crate::op::OpDraft;
    use crate::replica::ReplicaConfig;

    /// What a store holds before the batch, in memory.
    #[derive(Default)]
    struct Stored {
        counters: HashMap<(String, AgentId), u64>,
        ops: HashMap<(String, AgentId, u64), StoredOp>,
        ids: HashSet<OpId>,
        roots: HashMap<(String, u64), Hash>,
        down: bool,
    }

    impl Stored {
        fn check(&self) -> Result<()> {
            if self.down {
                return Err(Error::Unavailable("storage: down".into()));
            }
            Ok(())
        }

        /// Records the entries of a batch as a store would once it committed them.
        fn commit(&mut self, batch: Batch, log: &mut MerkleLog) {
            for e in batch.into_entries() {
                let time = Entry::decode_unverified(&e.entry).unwrap().relay_time_ms();
                self.counters.insert((e.topic.clone(), e.author), e.counter);
                log.append(&e.entry).unwrap();
                self.roots.insert((e.topic.clone(), log.size()), log.root());
                self.ids.insert(e.op_id);
                let stored = StoredOp {
                    seq: e.seq(),
                    op_id: e.op_id,
                    relay_time_ms: time,
                    signed_receipt: None,
                };
                self.ops.insert((e.topic, e.author, e.counter), stored);
            }
        }
    }

    impl SequencedOps for Stored {
        fn last_counter(&self, topic: &str, author: &AgentId) -> Result<Option<u64>> {
            self.check()?;
            Ok(self.counters.get(&(topic.to_owned(), *author)).copied())
        }
        fn op_at_counter(
            &self,
            topic: &str,
            author: &AgentId,
            counter: u64,
        ) -> Result<Option<StoredOp>> {
            self.check()?;
            Ok(self.ops.get(&(topic.to_owned(), *author, counter)).cloned())
        }
        fn is_sequenced(&self, op_id: &OpId) -> Result<bool> {
            self.check()?;
            Ok(self.ids.contains(op_id))
        }
        fn root_at(&self, topic: &str, tree_size: u64) -> Result<Hash> {
            self.check()?;
            self.roots
                .get(&(topic.to_owned(), tree_size))
                .copied()
                .ok_or_else(|| Error::Unavailable("no such root".into()))
        }
    }

    fn op(author: &Identity, counter: u64, deps: Vec<OpId>, body: &[u8]) -> SignedOp {
        let draft = OpDraft {
            topic: "t".into(),
            kind: "post".into(),
            counter,
            time_ms: 0,
            deps,
            body: body.to_vec(),
        };
        SignedOp::sign(author, draft).unwrap()
    }

    struct Topic {
        head: TopicHead,
        replica: Replica,
        stored: Stored,
        log: MerkleLog,
    }

    fn topic() -> Topic {
        Topic {
            head: TopicHead::default(),
            replica: Replica::new("t", ReplicaConfig::default()).unwrap(),
            stored: Stored::default(),
            log: MerkleLog::new(),
        }
    }

    impl Topic {
        fn decide(&mut self, batch: &mut Batch, op: &SignedOp, now: u64) -> Result<Decision> {
            batch.decide(&mut self.head, &mut self.replica, op, now, &self.stored)
        }

        fn commit(&mut self, batch: Batch) {
            self.stored.commit(batch, &mut self.log);
        }
    }

    fn code(result: Result<Decision>) -> &'static str {
        result.unwrap_err().code()
    }

    #[test]
    fn entries_are_numbered_and_hashed_as_the_log_and_time_never_goes_back() {
        let alice = Identity::from_seed(&[7; 32]).unwrap();
        let mut t = topic();
        let mut batch = Batch::new();
        let mut log = MerkleLog::new();
        for (counter, now) in [(0, 100), (1, 90), (5, 200)] {
            let decision = t.decide(&mut batch, &op(&alice, counter, vec![], b"x"), now);
            let i = batch.entries().len() - 1;
            assert_eq!(decision.unwrap(), Decision::Append(i));
            let e = &batch.entries()[i];
            log.append(&e.entry).unwrap();
            assert_eq!(e.seq(), i as u64);
            assert_eq!(
                (e.receipt.tree_size, e.receipt.root),
                (log.size(), log.root())
            );
            assert_eq!(e.hashes[0], (0, e.seq(), leaf_hash(&e.entry)));
            assert_eq!(
                e.events.as_ref().map(Vec::len).ok(),
                Some(1),
                "a post event"
            );
        }
        let times: Vec<u64> = batch
            .entries()
            .iter()
            .map(|e| e.receipt.relay_time_ms)
            .collect();
        assert_eq!(times, [100, 100, 200], "max(clock, last entry time)");
        assert_eq!(t.head.size(), 3);
        assert_eq!(t.head.frontier.root(), log.root());
        assert_eq!((t.head.last_time_ms, t.replica.next_seq()), (200, 3));
    }

    #[test]
    fn counters_below_the_last_are_retries_reuses_or_stale() {
        let alice = Identity::from_seed(&[7; 32]).unwrap();
        let mut t = topic();
        let mut first = Batch::new();
        let sent: Vec<SignedOp> = [0, 2, 5].map(|c| op(&alice, c, vec![], b"a")).to_vec();
        for o in &sent {
            t.decide(&mut first, o, 50).unwrap();
        }
        let receipts: Vec<Receipt> = first.entries().iter().map(|e| e.receipt.clone()).collect();
        t.commit(first);
        let before = t.head.clone();
        let state = t.replica.state_hash();
        let mut batch = Batch::new();
        // A retry of a stored op: the same statement as the original receipt, signed anew.
        assert_eq!(
            t.decide(&mut batch, &sent[1], 999).unwrap(),
            Decision::Retry {
                seq: 1,
                receipt: RetryReceipt::Unsigned(receipts[1].clone())
            }
        );
        assert_eq!(
            code(t.decide(&mut batch, &op(&alice, 2, vec![], b"b"), 9)),
            "COUNTER_REUSED"
        );
        assert_eq!(
            code(t.decide(&mut batch, &op(&alice, 1, vec![], b"a"), 9)),
            "COUNTER_STALE"
        );
        assert_eq!(
            code(t.decide(&mut batch, &op(&alice, 5, vec![], b"c"), 9)),
            "COUNTER_REUSED"
        );
        assert!(batch.entries().is_empty());
        assert_eq!(t.head, before, "refusals and retries change nothing");
        assert_eq!(t.replica.state_hash(), state);
        // A receipt an older relay kept is answered as kept.
        let key = ("t".to_owned(), alice.agent_id(), 0);
        t.stored.ops.get_mut(&key).unwrap().signed_receipt = Some(vec![1, 2, 3]);
        assert_eq!(
            t.decide(&mut batch, &sent[0], 9).unwrap(),
            Decision::Retry {
                seq: 0,
                receipt: RetryReceipt::Signed(vec![1, 2, 3])
            }
        );
        // Gaps are allowed; another author counts on its own.
        assert_eq!(
            t.decide(&mut batch, &op(&alice, 9, vec![], b"d"), 9)
                .unwrap(),
            Decision::Append(0)
        );
        let bob = Identity::from_seed(&[8; 32]).unwrap();
        assert_eq!(
            t.decide(&mut batch, &op(&bob, 0, vec![], b"e"), 9).unwrap(),
            Decision::Append(1)
        );
        assert_eq!(batch.entries()[0].seq(), 3);
    }

    #[test]
    fn retries_counters_and_deps_resolve_within_a_batch() {
        let alice = Identity::from_seed(&[7; 32]).unwrap();
        let mut t = topic();
        let stored_op = op(&alice, 0, vec![], b"s");
        let mut first = Batch::new();
        t.decide(&mut first, &stored_op, 1).unwrap();
        t.commit(first);
        let mut batch = Batch::new();
        let a = op(&alice, 1, vec![], b"a");
        assert_eq!(t.decide(&mut batch, &a, 2).unwrap(), Decision::Append(0));
        let retry = t.decide(&mut batch, &a, 2).unwrap();
        let in_batch = RetryReceipt::InBatch(0);
        assert_eq!(
            retry,
            Decision::Retry {
                seq: 1,
                receipt: in_batch
            }
        );
        assert_eq!(
            code(t.decide(&mut batch, &op(&alice, 1, vec![], b"b"), 2)),
            "COUNTER_REUSED"
        );
        // A counter skipped inside the batch is stale; one before the batch is looked up.
        let c = op(&alice, 3, vec![a.id()], b"c");
        assert_eq!(
            t.decide(&mut batch, &c, 2).unwrap(),
            Decision::Append(1),
            "dep in batch"
        );
        assert_eq!(
            code(t.decide(&mut batch, &op(&alice, 2, vec![], b"x"), 2)),
            "COUNTER_STALE"
        );
        assert!(matches!(
            t.decide(&mut batch, &stored_op, 2),
            Ok(Decision::Retry { seq: 0, .. })
        ));
        // Deps: stored, in this batch, or missing.
        let bob = Identity::from_seed(&[8; 32]).unwrap();
        let d = op(&bob, 0, vec![stored_op.id(), c.id()], b"d");
        assert_eq!(t.decide(&mut batch, &d, 2).unwrap(), Decision::Append(2));
        let missing = op(&bob, 1, vec![OpId([9; 32])], b"m");
        assert_eq!(code(t.decide(&mut batch, &missing, 2)), "DEPS_MISSING");
        assert_eq!(t.head.size(), 4, "the refused op took no seq");
        let seqs: Vec<u64> = batch.entries().iter().map(Sequenced::seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
    }

    #[test]
    fn a_storage_failure_fails_the_batch_not_the_op() {
        let alice = Identity::from_seed(&[7; 32]).unwrap();
        let mut t = topic();
        t.stored.down = true;
        let mut batch = Batch::new();
        assert_eq!(
            code(t.decide(&mut batch, &op(&alice, 0, vec![], b"a"), 1)),
            "UNAVAILABLE"
        );
        assert_eq!(t.head.size(), 0);
    }
}
