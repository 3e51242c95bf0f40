//! Client-side verification of one topic's log: the state a relay client keeps per subscription.
//!
//! [`LogFollower`] is sans-IO. It is fed the entries of one topic in sequence order and the
//! relay's signed tree heads (receipts and checkpoints), in any interleaving, and answers with
//! [`FollowerEvent`]s: entries to deliver, gaps to fetch, heads verified or contradicted, and
//! [`Evidence`] of misbehaviour ready to publish.
//!
//! It recomputes the tree itself from the entries (its own [`MerkleLog`]), so every signed head
//! is checked by recomputation rather than by a relay-supplied proof: a head of size `n` must
//! equal the follower's own root at `n`. Since the follower's tree only grows, two heads that both
//! match it are consistent, which is stronger than checking a consistency proof between them.
//!
//! What it can and cannot prove: entries are not signed by the relay, so a head that disagrees
//! with the entries served is reported as [`FollowerEvent::Mismatch`] (the client should stop
//! trusting the relay) but is not evidence. Evidence needs relay signatures on both sides: two
//! heads of one size ([`Evidence::ConflictingHeads`]), a relay-supplied inclusion proof that
//! contradicts a verified head ([`LogFollower::push_inclusion_proof`], giving
//! [`Evidence::SplitView`]), and rule violations among entries once a verified head covers them.

use std::collections::{HashMap, HashSet};

use crate::sorted_map::SortedMap;

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::op::{validate_topic, OpId};

use super::evidence::{entry_is_valid, Evidence, HeadLeaf, ProvenLeaf};
use super::merkle::{Frontier, Hash, HashStore, MemoryHashes, MerkleLog};
use super::proof::InclusionProof;
use super::statement::{SignedReceipt, SignedTreeHead};

/// How many of the latest entries a follower keeps, to check receipts that arrive after their
/// entry.
pub const RECENT_ENTRIES: usize = 1024;

/// How many signed heads a follower keeps (one per tree size, to prove a later head of that size
/// wrong). Past it the smallest sizes already checked go first, then the farthest future ones.
pub const MAX_HEADS: usize = 4096;

/// What a follower tells its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowerEvent {
    /// A valid entry, next in sequence: deliver it to the replica.
    Entry(Entry),
    /// The relay logged an entry that is not valid for this topic (bad signature, wrong topic or
    /// seq). It is part of the tree but must not be delivered; evidence follows once a verified
    /// head covers it.
    InvalidEntry {
        /// Its sequence number.
        seq: u64,
    },
    /// Entries `from..to` are missing: fetch them.
    Gap {
        /// First missing seq.
        from: u64,
        /// One past the last missing seq.
        to: u64,
    },
    /// A signed head matched the follower's own tree at its size.
    Verified {
        /// The head's size.
        tree_size: u64,
    },
    /// A signed head disagrees with the entries served (unprovable: stop trusting the relay).
    Mismatch {
        /// The head's size.
        tree_size: u64,
    },
    /// Proof of misbehaviour, checkable by anyone with the relay's key.
    Evidence(Evidence),
}

/// A rule violation seen among entries, waiting for a verified head that covers them.
#[derive(Debug, Clone)]
enum Suspect {
    Invalid(u64, Vec<u8>),
    Counter((u64, Vec<u8>), (u64, Vec<u8>)),
    Deps((u64, Vec<u8>), (u64, Vec<u8>)),
    Receipt(SignedReceipt, u64, Vec<u8>),
}

impl Suspect {
    fn last_seq(&self) -> u64 {
        match self {
            Suspect::Invalid(seq, _) | Suspect::Receipt(_, seq, _) => *seq,
            Suspect::Counter(_, (seq, _)) | Suspect::Deps(_, (seq, _)) => *seq,
        }
    }
}

/// Verified state of one topic's log as seen by a client.
///
/// Invariants: `log` holds exactly the leaves `0..size()` the relay served, in order; `heads`
/// holds the first signed head seen for each size, all signed by `relay` for `topic`;
/// `verified` is the largest head that matched `log`.
#[derive(Debug, Clone)]
pub struct LogFollower<S = MemoryHashes> {
    relay: AgentId,
    topic: String,
    log: MerkleLog<S>,
    heads: SortedMap<u64, SignedTreeHead>,
    verified: Option<SignedTreeHead>,
    receipts: SortedMap<u64, SignedReceipt>,
    recent: SortedMap<u64, Vec<u8>>,
    last_by_author: HashMap<AgentId, (u64, u64, Vec<u8>)>,
    sequenced: HashSet<OpId>,
    awaited_deps: HashMap<OpId, (u64, Vec<u8>)>,
    suspects: Vec<Suspect>,
    /// The size the follower resumed at ([`LogFollower::resume`]); 0 for one from the start.
    resumed_from: u64,
}

impl LogFollower<MemoryHashes> {
    /// A follower of `topic` on the relay `relay`, from the empty log.
    pub fn new(relay: AgentId, topic: &str) -> Result<Self> {
        validate_topic(topic)?;
        Ok(LogFollower {
            relay,
            topic: topic.to_owned(),
            log: MerkleLog::new(),
            heads: SortedMap::new(),
            verified: None,
            receipts: SortedMap::new(),
            recent: SortedMap::new(),
            last_by_author: HashMap::new(),
            sequenced: HashSet::new(),
            awaited_deps: HashMap::new(),
            suspects: Vec::new(),
            resumed_from: 0,
        })
    }

    /// A follower of `topic` resuming after `frontier.size()` entries: the right edge of the
    /// tree a follower had built (persisted by a client, [`MerkleLog::frontier`]), with the
    /// largest head it had verified, if any.
    ///
    /// It checks every later entry, and every head of at least the frontier's size, exactly as a
    /// follower from the start would. What it cannot check without the earlier entries: heads of
    /// smaller sizes (two of one size that differ are still evidence), entries re-sent below the
    /// frontier, and proofs about them; those are ignored. Order rules (author counters, deps)
    /// are checked among the entries after the frontier.
    ///
    /// Errors: `BAD_TOPIC`; `BAD_SIGNATURE` or `BAD_INPUT` for a `verified` head not signed by
    /// `relay` for `topic`, or larger than the frontier; `LOG_MISMATCH` for one of the
    /// frontier's size with another root.
    pub fn resume(
        relay: AgentId,
        topic: &str,
        frontier: &Frontier,
        verified: Option<SignedTreeHead>,
    ) -> Result<Self> {
        let mut follower = LogFollower::new(relay, topic)?;
        follower.log = MerkleLog::resume(frontier);
        follower.resumed_from = frontier.size();
        if let Some(head) = verified {
            head.verify(&relay)?;
            if head.topic() != topic || head.tree_size() > frontier.size() {
                return Err(Error::BadInput(format!(
                    "the verified head (topic {:?}, size {}) is not one of topic {topic:?} \
                     within {} entries",
                    head.topic(),
                    head.tree_size(),
                    frontier.size()
                )));
            }
            if head.tree_size() == frontier.size() && *head.root() != frontier.root() {
                return Err(Error::LogMismatch(format!(
                    "the verified head of size {} has another root than the frontier",
                    head.tree_size()
                )));
            }
            follower.heads.insert(head.tree_size(), head.clone());
            follower.verified = Some(head);
        }
        Ok(follower)
    }
}

impl<S: HashStore> LogFollower<S> {
    /// Number of entries received in order (the next expected seq).
    pub fn size(&self) -> u64 {
        self.log.size()
    }

    /// The root of the entries received.
    pub fn root(&self) -> Hash {
        self.log.root()
    }

    /// How many signed heads it keeps (at most [`MAX_HEADS`]).
    pub fn heads_kept(&self) -> usize {
        self.heads.len()
    }

    /// The largest signed head that matched the entries received.
    pub fn verified_head(&self) -> Option<&SignedTreeHead> {
        self.verified.as_ref()
    }

    /// The entries known to exist but not received: `size()..` the largest signed head's size.
    pub fn missing(&self) -> Option<(u64, u64)> {
        let largest = *self.heads.keys().next_back()?;
        (largest > self.size()).then_some((self.size(), largest))
    }

    /// The follower's own Merkle log (for proofs of entries it received).
    pub fn log(&self) -> &MerkleLog<S> {
        &self.log
    }

    /// Feeds the canonical bytes of the next entry.
    ///
    /// An entry ahead of `size()` is not taken (a [`FollowerEvent::Gap`] says what to fetch); an
    /// entry already received is ignored if it is the same bytes.
    ///
    /// Errors: the decoding codes of [`Entry::decode_unverified`] for bytes that are not an entry;
    /// `LOG_MISMATCH` for a different entry at a seq already received.
    pub fn push_entry(&mut self, bytes: &[u8]) -> Result<Vec<FollowerEvent>> {
        self.push(bytes, false)
    }

    /// Like [`LogFollower::push_entry`], for an entry whose op signature the caller has already
    /// verified (e.g. in one batch with [`crate::op::verify_ops`]): the signature is not checked
    /// again, every other rule is. Passing an entry whose signature was not verified makes the
    /// follower accept a forgery, so only a verifier may call this.
    pub fn push_verified_entry(&mut self, bytes: &[u8]) -> Result<Vec<FollowerEvent>> {
        self.push(bytes, true)
    }

    /// [`LogFollower::push_verified_entry`] for an entry the caller has already decoded, so it
    /// is not decoded again. The same warning holds: its signature must have been verified.
    pub fn push_verified(&mut self, entry: &Entry) -> Result<Vec<FollowerEvent>> {
        self.push_decoded(entry.clone(), true)
    }

    fn push(&mut self, bytes: &[u8], signature_verified: bool) -> Result<Vec<FollowerEvent>> {
        self.push_decoded(Entry::decode_unverified(bytes)?, signature_verified)
    }

    fn push_decoded(
        &mut self,
        entry: Entry,
        signature_verified: bool,
    ) -> Result<Vec<FollowerEvent>> {
        let bytes = entry.as_bytes();
        let seq = entry.seq();
        let mut events = Vec::new();
        if seq < self.resumed_from {
            // Below a resumed follower's frontier: nothing to compare it with.
            return Ok(events);
        }
        if seq < self.size() {
            if self.log.leaf_hash_at(seq)? != super::merkle::leaf_hash(bytes) {
                return Err(Error::LogMismatch(format!(
                    "entry {seq} differs from the one received before"
                )));
            }
            return Ok(events);
        }
        if seq > self.size() {
            events.push(FollowerEvent::Gap {
                from: self.size(),
                to: seq,
            });
            return Ok(events);
        }
        self.log.append(bytes)?;
        self.recent.insert(seq, bytes.to_vec());
        if self.recent.len() > RECENT_ENTRIES {
            self.recent.pop_first();
        }
        let valid = if signature_verified {
            entry.topic() == self.topic
        } else {
            entry_is_valid(bytes, seq, &self.topic)
        };
        if valid {
            self.track_rules(&entry, bytes);
        } else {
            self.suspects.push(Suspect::Invalid(seq, bytes.to_vec()));
        }
        if let Some(receipt) = self.receipts.remove(&seq) {
            self.check_receipt(receipt, seq, bytes);
        }
        events.push(if valid {
            FollowerEvent::Entry(entry)
        } else {
            FollowerEvent::InvalidEntry { seq }
        });
        if let Some(head) = self.heads.get(&self.size()).cloned() {
            self.check_head(head, &mut events)?;
        }
        Ok(events)
    }

    /// Feeds a signed receipt or checkpoint of this topic.
    ///
    /// Errors: `BAD_SIGNATURE` if not signed by the relay, `BAD_INPUT` for another topic.
    pub fn push_head(&mut self, head: SignedTreeHead) -> Result<Vec<FollowerEvent>> {
        head.verify(&self.relay)?;
        if head.topic() != self.topic {
            return Err(Error::BadInput(format!(
                "head is for topic {:?}, not {:?}",
                head.topic(),
                self.topic
            )));
        }
        let mut events = Vec::new();
        if let SignedTreeHead::Receipt(receipt) = &head {
            let seq = receipt.receipt().seq;
            if seq >= self.size() {
                self.receipts.insert(seq, receipt.clone());
            } else if let Some(bytes) = self.recent.get(&seq).cloned() {
                self.check_receipt(receipt.clone(), seq, &bytes);
            }
        }
        let size = head.tree_size();
        match self.heads.get(&size) {
            Some(seen) if seen.root() != head.root() => {
                events.push(FollowerEvent::Evidence(Evidence::conflicting_heads(
                    seen.clone(),
                    head.clone(),
                )));
            }
            Some(_) => {}
            None => {
                self.heads.insert(size, head.clone());
                self.bound_heads();
            }
        }
        if size < self.resumed_from {
            // Not recomputable after a resume (a conflicting head of its size is caught above).
        } else if size <= self.size() {
            self.check_head(head, &mut events)?;
        } else {
            events.push(FollowerEvent::Gap {
                from: self.size(),
                to: size,
            });
        }
        Ok(events)
    }

    /// Feeds a relay-served inclusion proof of `leaf_hash` under a signed head. If the leaf
    /// differs from the one the follower received at that index (and a verified head covers it),
    /// the two views are evidence of a split view.
    ///
    /// Errors: `BAD_SIGNATURE`, `BAD_INPUT` (another topic, or a proof for another size),
    /// `BAD_PROOF`.
    pub fn push_inclusion_proof(
        &mut self,
        head: SignedTreeHead,
        leaf_hash: Hash,
        proof: InclusionProof,
    ) -> Result<Vec<FollowerEvent>> {
        head.verify(&self.relay)?;
        if head.topic() != self.topic || proof.tree_size != head.tree_size() {
            return Err(Error::BadInput(
                "proof is not for a head of this topic".into(),
            ));
        }
        proof.verify(&leaf_hash, head.root())?;
        let index = proof.leaf_index;
        let mut events = Vec::new();
        let Some(verified) = self.verified.clone() else {
            return Ok(events);
        };
        if index < self.resumed_from
            || index >= verified.tree_size()
            || self.log.leaf_hash_at(index)? == leaf_hash
        {
            return Ok(events);
        }
        let ours = HeadLeaf {
            leaf_hash: self.log.leaf_hash_at(index)?,
            proof: self.log.inclusion_proof(index, verified.tree_size())?,
            head: verified,
        };
        let theirs = HeadLeaf {
            head,
            leaf_hash,
            proof,
        };
        events.push(FollowerEvent::Evidence(Evidence::SplitView {
            a: ours,
            b: theirs,
        }));
        Ok(events)
    }

    fn bound_heads(&mut self) {
        while self.heads.len() > MAX_HEADS {
            let verified = self.verified.as_ref().map(SignedTreeHead::tree_size);
            let oldest = self
                .heads
                .keys()
                .copied()
                .find(|&size| size < self.size() && Some(size) != verified);
            let evict = oldest.or_else(|| self.heads.keys().next_back().copied());
            match evict {
                Some(size) => self.heads.remove(&size),
                None => return,
            };
        }
    }

    fn check_head(&mut self, head: SignedTreeHead, events: &mut Vec<FollowerEvent>) -> Result<()> {
        let size = head.tree_size();
        if self.log.root_at(size)? != *head.root() {
            events.push(FollowerEvent::Mismatch { tree_size: size });
            return Ok(());
        }
        events.push(FollowerEvent::Verified { tree_size: size });
        if self
            .verified
            .as_ref()
            .map_or(true, |v| v.tree_size() < size)
        {
            self.verified = Some(head);
        }
        self.resolve_suspects(events)
    }

    fn check_receipt(&mut self, receipt: SignedReceipt, seq: u64, bytes: &[u8]) {
        let matches = Entry::decode_unverified(bytes).is_ok_and(|entry| {
            entry.op().id() == receipt.receipt().op_id
                && entry.relay_time_ms() == receipt.receipt().relay_time_ms
        });
        if !matches {
            self.suspects
                .push(Suspect::Receipt(receipt, seq, bytes.to_vec()));
        }
    }

    fn track_rules(&mut self, entry: &Entry, bytes: &[u8]) {
        let op = entry.op();
        let seq = entry.seq();
        match self.last_by_author.get(op.author()) {
            Some((counter, last_seq, last_bytes)) if *counter >= op.counter() => {
                self.suspects.push(Suspect::Counter(
                    (*last_seq, last_bytes.clone()),
                    (seq, bytes.to_vec()),
                ));
            }
            _ => {
                self.last_by_author
                    .insert(*op.author(), (op.counter(), seq, bytes.to_vec()));
            }
        }
        if let Some(waiting) = self.awaited_deps.remove(&op.id()) {
            self.suspects
                .push(Suspect::Deps(waiting, (seq, bytes.to_vec())));
        }
        for dep in op.deps() {
            if !self.sequenced.contains(dep) {
                self.awaited_deps
                    .entry(*dep)
                    .or_insert_with(|| (seq, bytes.to_vec()));
            }
        }
        self.sequenced.insert(op.id());
    }

    fn resolve_suspects(&mut self, events: &mut Vec<FollowerEvent>) -> Result<()> {
        let Some(head) = self.verified.clone() else {
            return Ok(());
        };
        let size = head.tree_size();
        let (ready, waiting): (Vec<Suspect>, Vec<Suspect>) = std::mem::take(&mut self.suspects)
            .into_iter()
            .partition(|suspect| suspect.last_seq() < size);
        self.suspects = waiting;
        let prove = |seq: u64, leaf: Vec<u8>| -> Result<ProvenLeaf> {
            Ok(ProvenLeaf {
                leaf,
                proof: self.log.inclusion_proof(seq, size)?,
            })
        };
        for suspect in ready {
            let evidence = match suspect {
                Suspect::Invalid(seq, leaf) => Evidence::InvalidEntry {
                    head: head.clone(),
                    entry: prove(seq, leaf)?,
                },
                Suspect::Counter((a, earlier), (b, later)) => Evidence::CounterOrder {
                    head: head.clone(),
                    earlier: prove(a, earlier)?,
                    later: prove(b, later)?,
                },
                Suspect::Deps((a, earlier), (b, later)) => Evidence::DepsOrder {
                    head: head.clone(),
                    earlier: prove(a, earlier)?,
                    later: prove(b, later)?,
                },
                Suspect::Receipt(receipt, seq, leaf) => Evidence::ReceiptContradicted {
                    receipt,
                    head: head.clone(),
                    entry: prove(seq, leaf)?,
                },
            };
            events.push(FollowerEvent::Evidence(evidence));
        }
        Ok(())
    }
}
