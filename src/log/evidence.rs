//! Misbehaviour evidence: self-contained values that prove a relay broke a rule of the log.
//!
//! Every piece of evidence holds only relay-signed tree heads ([`SignedTreeHead`]), Merkle proofs
//! against them, and leaf data; [`Evidence::verify`] needs nothing but the relay's public key and
//! never trusts whoever presents it. The rules (PROTOCOL.md section 5.6):
//!
//! - **conflicting heads**: two signed heads of one topic, same size, different roots;
//! - **split view**: two signed heads of one topic and inclusion proofs of *different* leaf
//!   hashes at the *same* index, one under each head. An honest append-only log cannot have two
//!   leaves at one index, so one head is not an extension of the other (short of a SHA-256
//!   collision). This is how a failed consistency check becomes checkable: the accuser shows the
//!   leaf that differs, with a proof under each head;
//! - **receipt contradicted**: a signed receipt for op `X` at `seq`, a signed head of the topic,
//!   and an entry proved at leaf `seq` under that head whose op id or relay time differ;
//! - **counter order**: two entries of one author proved under one head, the earlier one (lower
//!   leaf index) with a counter greater than or equal to the later one's;
//! - **deps order**: two entries proved under one head, the earlier one listing the later one's
//!   op id in its `deps`;
//! - **invalid entry**: an entry proved under a head that is not a valid v1 entry of that topic at
//!   that index (does not decode, wrong seq, wrong topic, or a bad op signature).

use core::fmt;

use crate::codec::{Reader, Writer};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::op::MAX_OP_LEN;

use super::merkle::{leaf_hash, Hash};
use super::proof::InclusionProof;
use super::statement::{SignedReceipt, SignedTreeHead};

/// The protocol version of evidence encodings.
pub const EVIDENCE_VERSION: u8 = 1;
/// Largest entry carried in evidence: an entry header (21 bytes) around the largest op.
pub const MAX_ENTRY_LEN: usize = 21 + MAX_OP_LEN;

/// The rule a piece of evidence shows broken. Codes are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Violation {
    /// Two signed heads of one topic with the same size and different roots.
    ConflictingHeads,
    /// Two signed heads whose trees hold different leaves at one index.
    SplitView,
    /// A receipted op is not the entry at its receipted sequence number.
    ReceiptContradicted,
    /// An author's ops sequenced out of the author's counter order.
    CounterOrder,
    /// An op sequenced before an op it lists in `deps`.
    DepsOrder,
    /// A leaf that is not a valid entry of the topic at its index. Code `INVALID_LEAF` (the
    /// client fault `INVALID_ENTRY` is another thing: an entry frame a client refused, which
    /// alone proves nothing about the relay's log; PROTOCOL.md section 9).
    InvalidEntry,
}

impl Violation {
    /// Every violation, in evidence kind order (kind 1 first).
    pub const ALL: [Violation; 6] = [
        Violation::ConflictingHeads,
        Violation::SplitView,
        Violation::ReceiptContradicted,
        Violation::CounterOrder,
        Violation::DepsOrder,
        Violation::InvalidEntry,
    ];
}

impl Violation {
    /// The stable code: `CONFLICTING_HEADS`, `SPLIT_VIEW`, `RECEIPT_CONTRADICTED`,
    /// `COUNTER_ORDER`, `DEPS_ORDER` or `INVALID_LEAF`.
    pub fn code(&self) -> &'static str {
        match self {
            Violation::ConflictingHeads => "CONFLICTING_HEADS",
            Violation::SplitView => "SPLIT_VIEW",
            Violation::ReceiptContradicted => "RECEIPT_CONTRADICTED",
            Violation::CounterOrder => "COUNTER_ORDER",
            Violation::DepsOrder => "DEPS_ORDER",
            Violation::InvalidEntry => "INVALID_LEAF",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Leaf data (an entry's bytes) with its inclusion proof under some head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenLeaf {
    /// The leaf data: an entry's canonical bytes as the relay logged them.
    pub leaf: Vec<u8>,
    /// Its inclusion proof (`tree_size` must be the head's size).
    pub proof: InclusionProof,
}

/// A leaf hash with its inclusion proof under a head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadLeaf {
    /// The signed tree head.
    pub head: SignedTreeHead,
    /// The leaf hash at `proof.leaf_index` in the head's tree.
    pub leaf_hash: Hash,
    /// The inclusion proof of `leaf_hash` under `head`.
    pub proof: InclusionProof,
}

/// Proof that a relay broke a rule of its log. See the module docs for each rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// Same topic and size, different roots. Canonical order: `a`'s bytes sort before `b`'s
    /// (build with [`Evidence::conflicting_heads`]).
    ConflictingHeads {
        /// One head.
        a: SignedTreeHead,
        /// The other.
        b: SignedTreeHead,
    },
    /// Different leaves at the same index under two heads of one topic.
    SplitView {
        /// One head, leaf and proof.
        a: HeadLeaf,
        /// The other.
        b: HeadLeaf,
    },
    /// The entry at a receipt's seq, proved under `head`, is not the receipted op.
    ReceiptContradicted {
        /// The relay's receipt.
        receipt: SignedReceipt,
        /// A signed head of the same topic (may be the receipt itself).
        head: SignedTreeHead,
        /// The entry at leaf `receipt.seq` with its proof under `head`.
        entry: ProvenLeaf,
    },
    /// An author's two entries under one head, the earlier not having the lower counter.
    CounterOrder {
        /// The head both proofs are for.
        head: SignedTreeHead,
        /// The entry with the lower leaf index.
        earlier: ProvenLeaf,
        /// The entry with the higher leaf index.
        later: ProvenLeaf,
    },
    /// Two entries under one head, the earlier listing the later in its deps.
    DepsOrder {
        /// The head both proofs are for.
        head: SignedTreeHead,
        /// The entry with the lower leaf index (whose op lists `later`'s op id).
        earlier: ProvenLeaf,
        /// The entry with the higher leaf index.
        later: ProvenLeaf,
    },
    /// A leaf under a head that is not a valid entry of the topic at its index.
    InvalidEntry {
        /// The head.
        head: SignedTreeHead,
        /// The leaf and its proof.
        entry: ProvenLeaf,
    },
}

fn not_evidence(reason: impl Into<String>) -> Error {
    Error::NotEvidence(reason.into())
}

/// Checks `leaf` is proved at a leaf of `head`'s tree (the head's signature is checked before,
/// with every other signature of the evidence: PROTOCOL.md section 5.6, check order).
fn check_proof(head: &SignedTreeHead, leaf: &Hash, proof: &InclusionProof) -> Result<()> {
    if proof.tree_size != head.tree_size() {
        return Err(not_evidence(format!(
            "proof is for size {}, head has size {}",
            proof.tree_size,
            head.tree_size()
        )));
    }
    proof.verify(leaf, head.root())
}

fn same_topic(a: &SignedTreeHead, b: &SignedTreeHead) -> Result<()> {
    if a.topic() != b.topic() {
        return Err(not_evidence("heads of different topics"));
    }
    Ok(())
}

/// Two entries proved in order under one head, decoded without checking op signatures (a relay
/// that logged a forged op is at fault either way).
fn ordered_pair(
    relay: &AgentId,
    head: &SignedTreeHead,
    earlier: &ProvenLeaf,
    later: &ProvenLeaf,
) -> Result<(Entry, Entry)> {
    head.verify(relay)?;
    check_proof(head, &leaf_hash(&earlier.leaf), &earlier.proof)?;
    check_proof(head, &leaf_hash(&later.leaf), &later.proof)?;
    if earlier.proof.leaf_index >= later.proof.leaf_index {
        return Err(not_evidence("earlier entry is not at a lower index"));
    }
    Ok((
        Entry::decode_unverified(&earlier.leaf)?,
        Entry::decode_unverified(&later.leaf)?,
    ))
}

impl Evidence {
    /// Conflicting-heads evidence in canonical order.
    pub fn conflicting_heads(a: SignedTreeHead, b: SignedTreeHead) -> Self {
        if a.as_bytes() <= b.as_bytes() {
            Evidence::ConflictingHeads { a, b }
        } else {
            Evidence::ConflictingHeads { a: b, b: a }
        }
    }

    /// Which rule the evidence claims is broken (without verifying it).
    pub fn claimed_violation(&self) -> Violation {
        match self {
            Evidence::ConflictingHeads { .. } => Violation::ConflictingHeads,
            Evidence::SplitView { .. } => Violation::SplitView,
            Evidence::ReceiptContradicted { .. } => Violation::ReceiptContradicted,
            Evidence::CounterOrder { .. } => Violation::CounterOrder,
            Evidence::DepsOrder { .. } => Violation::DepsOrder,
            Evidence::InvalidEntry { .. } => Violation::InvalidEntry,
        }
    }

    /// The topic whose log the evidence is about.
    pub fn topic(&self) -> &str {
        match self {
            Evidence::ConflictingHeads { a, .. } => a.topic(),
            Evidence::SplitView { a, .. } => a.head.topic(),
            Evidence::ReceiptContradicted { head, .. }
            | Evidence::CounterOrder { head, .. }
            | Evidence::DepsOrder { head, .. }
            | Evidence::InvalidEntry { head, .. } => head.topic(),
        }
    }

    /// Checks the evidence with only the relay's public key and says which rule it shows broken.
    ///
    /// Errors: `BAD_SIGNATURE` (a statement not signed by `relay`), `BAD_PROOF` (a proof that
    /// does not verify), `NOT_EVIDENCE` (everything checks out but no rule is broken, or the parts
    /// do not fit together), and the decoding codes of entries where a rule needs their fields.
    /// With several defects the first in PROTOCOL.md section 5.6's order is reported: every
    /// signature, in the order the statements appear; then every inclusion proof, in order; then
    /// the kind's rule, in the order its table row lists the conditions.
    pub fn verify(&self, relay: &AgentId) -> Result<Violation> {
        match self {
            Evidence::ConflictingHeads { a, b } => {
                a.verify(relay)?;
                b.verify(relay)?;
                same_topic(a, b)?;
                if a.as_bytes() > b.as_bytes() {
                    return Err(Error::NonCanonical {
                        what: "evidence",
                        reason: "conflicting heads must be in byte order".into(),
                    });
                }
                if a.tree_size() != b.tree_size() || a.root() == b.root() {
                    return Err(not_evidence("heads do not conflict"));
                }
            }
            Evidence::SplitView { a, b } => {
                a.head.verify(relay)?;
                b.head.verify(relay)?;
                check_proof(&a.head, &a.leaf_hash, &a.proof)?;
                check_proof(&b.head, &b.leaf_hash, &b.proof)?;
                same_topic(&a.head, &b.head)?;
                if a.proof.leaf_index != b.proof.leaf_index {
                    return Err(not_evidence("proofs are for different indices"));
                }
                if a.leaf_hash == b.leaf_hash {
                    return Err(not_evidence("the leaves are the same"));
                }
            }
            Evidence::ReceiptContradicted {
                receipt,
                head,
                entry,
            } => {
                receipt.verify(relay)?;
                head.verify(relay)?;
                check_proof(head, &leaf_hash(&entry.leaf), &entry.proof)?;
                let fields = receipt.receipt();
                if fields.topic != head.topic() {
                    return Err(not_evidence("receipt and head of different topics"));
                }
                if entry.proof.leaf_index != fields.seq {
                    return Err(not_evidence("entry is not at the receipt's seq"));
                }
                let logged = Entry::decode_unverified(&entry.leaf)?;
                if logged.op().id() == fields.op_id
                    && logged.relay_time_ms() == fields.relay_time_ms
                {
                    return Err(not_evidence("the entry matches the receipt"));
                }
            }
            Evidence::CounterOrder {
                head,
                earlier,
                later,
            } => {
                let (first, second) = ordered_pair(relay, head, earlier, later)?;
                if first.op().author() != second.op().author()
                    || first.op().counter() < second.op().counter()
                {
                    return Err(not_evidence("counters are in order"));
                }
            }
            Evidence::DepsOrder {
                head,
                earlier,
                later,
            } => {
                let (first, second) = ordered_pair(relay, head, earlier, later)?;
                if !first.op().deps().contains(&second.op().id()) {
                    return Err(not_evidence("the earlier op does not depend on the later"));
                }
            }
            Evidence::InvalidEntry { head, entry } => {
                head.verify(relay)?;
                check_proof(head, &leaf_hash(&entry.leaf), &entry.proof)?;
                if entry_is_valid(&entry.leaf, entry.proof.leaf_index, head.topic()) {
                    return Err(not_evidence("the entry is valid"));
                }
            }
        }
        Ok(self.claimed_violation())
    }

    /// The canonical bytes (PROTOCOL.md section 5.6).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        out.put_u8(EVIDENCE_VERSION);
        out.put_u8(self.kind());
        match self {
            Evidence::ConflictingHeads { a, b } => {
                a.write(&mut out);
                b.write(&mut out);
            }
            Evidence::SplitView { a, b } => {
                for side in [a, b] {
                    side.head.write(&mut out);
                    out.put(&side.leaf_hash);
                    side.proof.write(&mut out);
                }
            }
            Evidence::ReceiptContradicted {
                receipt,
                head,
                entry,
            } => {
                out.put_u16(receipt.as_bytes().len() as u16);
                out.put(receipt.as_bytes());
                head.write(&mut out);
                write_leaf(&mut out, entry);
            }
            Evidence::CounterOrder {
                head,
                earlier,
                later,
            }
            | Evidence::DepsOrder {
                head,
                earlier,
                later,
            } => {
                head.write(&mut out);
                write_leaf(&mut out, earlier);
                write_leaf(&mut out, later);
            }
            Evidence::InvalidEntry { head, entry } => {
                head.write(&mut out);
                write_leaf(&mut out, entry);
            }
        }
        out
    }

    /// Decodes canonical bytes without verifying anything (call [`Evidence::verify`]).
    ///
    /// Errors: `MALFORMED`, `TRAILING_BYTES`, `UNSUPPORTED_VERSION`, `LIMIT_EXCEEDED`,
    /// `NON_CANONICAL`, and the decoding codes of the statements inside.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new("evidence", bytes);
        let version = r.u8("version")?;
        if version != EVIDENCE_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "evidence",
                version,
            });
        }
        let evidence = match r.u8("kind")? {
            1 => {
                let a = SignedTreeHead::read(&mut r)?;
                let b = SignedTreeHead::read(&mut r)?;
                Evidence::ConflictingHeads { a, b }
            }
            2 => {
                let mut side = || -> Result<HeadLeaf> {
                    Ok(HeadLeaf {
                        head: SignedTreeHead::read(&mut r)?,
                        leaf_hash: r.array("leaf hash")?,
                        proof: InclusionProof::read(&mut r)?,
                    })
                };
                let a = side()?;
                let b = side()?;
                Evidence::SplitView { a, b }
            }
            3 => {
                let len = r.u16("receipt length")? as usize;
                let receipt = SignedReceipt::decode_unverified(r.take(len, "receipt")?)?;
                let head = SignedTreeHead::read(&mut r)?;
                let entry = read_leaf(&mut r)?;
                Evidence::ReceiptContradicted {
                    receipt,
                    head,
                    entry,
                }
            }
            kind @ (4 | 5) => {
                let head = SignedTreeHead::read(&mut r)?;
                let earlier = read_leaf(&mut r)?;
                let later = read_leaf(&mut r)?;
                if kind == 4 {
                    Evidence::CounterOrder {
                        head,
                        earlier,
                        later,
                    }
                } else {
                    Evidence::DepsOrder {
                        head,
                        earlier,
                        later,
                    }
                }
            }
            6 => {
                let head = SignedTreeHead::read(&mut r)?;
                let entry = read_leaf(&mut r)?;
                Evidence::InvalidEntry { head, entry }
            }
            other => {
                return Err(Error::malformed(
                    "evidence",
                    format!("unknown evidence kind {other}"),
                ))
            }
        };
        r.finish()?;
        if let Evidence::ConflictingHeads { a, b } = &evidence {
            if a.as_bytes() > b.as_bytes() {
                return Err(Error::NonCanonical {
                    what: "evidence",
                    reason: "conflicting heads must be in byte order".into(),
                });
            }
        }
        Ok(evidence)
    }

    fn kind(&self) -> u8 {
        match self {
            Evidence::ConflictingHeads { .. } => 1,
            Evidence::SplitView { .. } => 2,
            Evidence::ReceiptContradicted { .. } => 3,
            Evidence::CounterOrder { .. } => 4,
            Evidence::DepsOrder { .. } => 5,
            Evidence::InvalidEntry { .. } => 6,
        }
    }
}

/// Whether `leaf` is a valid v1 entry at `index` of `topic`: decodes, op signature verifies,
/// `seq == index`, and the op's topic is `topic`.
pub fn entry_is_valid(leaf: &[u8], index: u64, topic: &str) -> bool {
    match Entry::decode(leaf) {
        Ok(entry) => entry.seq() == index && entry.topic() == topic,
        Err(_) => false,
    }
}

fn write_leaf(out: &mut Vec<u8>, leaf: &ProvenLeaf) {
    out.put_u32(leaf.leaf.len() as u32);
    out.put(&leaf.leaf);
    leaf.proof.write(out);
}

fn read_leaf(r: &mut Reader<'_>) -> Result<ProvenLeaf> {
    let len = r.u32("entry length")? as usize;
    if len > MAX_ENTRY_LEN {
        return Err(Error::LimitExceeded {
            what: "entry size",
            limit: MAX_ENTRY_LEN,
            got: len,
        });
    }
    let leaf = r.take(len, "entry")?.to_vec();
    let proof = InclusionProof::read(r)?;
    Ok(ProvenLeaf { leaf, proof })
}
