//! Receipt auditing: every signed receipt the session got for its ops is kept and checked
//! against later signed heads of its topic, whether or not the session follows the topic.
//!
//! This is certificate transparency's SCT auditing (RFC 9162 section 8.1.4) for ops: a receipt
//! is the relay's promise that the op is the entry at `seq`. When a later head of the topic
//! comes in — a checkpoint the caller asked for ([`Session::request_checkpoint`]) or gossip
//! ([`Session::receive_gossip`]) — the session asks the relay for an inclusion proof of the
//! receipted entry under that head and checks it against the leaf it computes itself from its
//! own op, the receipt's seq and relay time:
//!
//! - the proof holds: the receipt is audited to that size ([`SessionEvent::ReceiptAudited`]);
//! - a head of the receipt's own size with another root: `CONFLICTING_HEADS` evidence;
//! - the proof fails: the session fetches the entry the relay logged at that seq and its proof;
//!   another op there is `RECEIPT_CONTRADICTED` evidence anyone can check, anything else (no
//!   entry, no proof, a refusal, a checkpoint taken after the receipt that is smaller than it)
//!   is [`Fault::AcknowledgedOpMissing`].
//!
//! At most [`MAX_HELD_RECEIPTS`] receipts are kept (the oldest goes first); they are part of
//! the exported state. What auditing cannot see: a relay that keeps the receipted entry out of
//! what it shows *other* readers while it never signs a larger head for them (see PROTOCOL.md
//! 8.8, "Receipt auditing").

use std::collections::VecDeque;

use crate::sorted_map::SortedMap;

use super::{Fault, Session, SessionEvent};
use crate::entry::Entry;
use crate::error::Result;
use crate::log::{
    leaf_hash, Evidence, Hash, InclusionProof, ProvenLeaf, SignedReceipt, SignedTreeHead,
};
use crate::op::SignedOp;
use crate::wire::{Body, Frame};

/// Most receipts a session keeps for auditing; past it the oldest is dropped.
pub const MAX_HELD_RECEIPTS: usize = 4096;

/// One kept receipt.
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub(super) receipt: SignedReceipt,
    /// The leaf hash of the entry the receipt promises: our op at the receipt's seq and time.
    pub(super) leaf: Hash,
    /// The largest head size it was proven included under (0: none yet).
    pub(super) proven_size: u64,
}

/// An inclusion proof asked for, or an entry fetched after one failed.
#[derive(Debug, Clone)]
struct Audit {
    topic: String,
    seq: u64,
    head: SignedTreeHead,
    /// Set once the proof failed: the proof, while the logged entry is fetched.
    failed_proof: Option<InclusionProof>,
}

/// The receipts kept and the audits in flight (these are forgotten with the connection).
#[derive(Debug, Clone, Default)]
pub(super) struct HeldReceipts {
    held: SortedMap<(String, u64), Held>,
    /// Keys of `held`, oldest first.
    order: VecDeque<(String, u64)>,
    audits: SortedMap<u32, Audit>,
}

impl HeldReceipts {
    /// Keeps the receipt of `op` (already checked to name it).
    pub(super) fn hold(&mut self, op: &SignedOp, receipt: SignedReceipt) {
        let fields = receipt.receipt();
        let entry = Entry::new(fields.seq, fields.relay_time_ms, op.clone());
        self.insert(Held {
            leaf: leaf_hash(entry.as_bytes()),
            receipt,
            proven_size: 0,
        });
    }

    /// Keeps a receipt (also when restoring state), dropping the oldest past the bound.
    pub(super) fn insert(&mut self, held: Held) {
        let key = (
            held.receipt.receipt().topic.clone(),
            held.receipt.receipt().seq,
        );
        if self.held.insert(key.clone(), held).is_none() {
            self.order.push_back(key);
        }
        while self.held.len() > MAX_HELD_RECEIPTS {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.held.remove(&oldest);
        }
    }

    /// Every kept receipt, in (topic, seq) order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Held> {
        self.held.values()
    }

    pub(super) fn len(&self) -> usize {
        self.held.len()
    }

    pub(super) fn forget_connection(&mut self) {
        self.audits.clear();
    }

    fn remove(&mut self, topic: &str, seq: u64) -> Option<Held> {
        let key = (topic.to_owned(), seq);
        self.order.retain(|k| k != &key);
        self.held.remove(&key)
    }
}

impl Session {
    /// The receipts kept for auditing, as `(topic, seq, size audited to)` (0: not yet).
    pub fn held_receipts(&self) -> Vec<(String, u64, u64)> {
        self.held
            .iter()
            .map(|h| {
                let r = h.receipt.receipt();
                (r.topic.clone(), r.seq, h.proven_size)
            })
            .collect()
    }

    /// Audits the kept receipts of the head's topic against `head` (see the module docs).
    pub(super) fn audit(&mut self, head: &SignedTreeHead) -> Result<()> {
        let topic = head.topic().to_owned();
        let size = head.tree_size();
        let due: Vec<Held> = self
            .held
            .held
            .range((topic.clone(), 0)..=(topic.clone(), u64::MAX))
            .map(|(_, h)| h.clone())
            // Not audited to this size yet, or a head smaller than the receipt's own tree.
            .filter(|h| h.proven_size < size || h.receipt.receipt().tree_size > size)
            .collect();
        for held in due {
            let receipt = held.receipt.receipt();
            let seq = receipt.seq;
            if receipt.tree_size > size {
                // Smaller than the receipt: an older head, unless it was signed after it.
                let later = match head {
                    SignedTreeHead::Checkpoint(c) => {
                        c.checkpoint().time_ms >= receipt.relay_time_ms
                    }
                    SignedTreeHead::Receipt(_) => false,
                };
                if later {
                    self.missing(&topic, seq);
                }
                continue;
            }
            if receipt.tree_size == size {
                if &receipt.root == head.root() {
                    self.audited(&topic, seq, size);
                } else {
                    self.held.remove(&topic, seq);
                    let evidence = Evidence::conflicting_heads(held.receipt.into(), head.clone());
                    self.misbehaviour(&topic, Fault::Evidence(Box::new(evidence)));
                }
                continue;
            }
            if self.phase != super::Phase::Live {
                continue;
            }
            let id = self.request_id();
            self.held.audits.insert(
                id,
                Audit {
                    topic: topic.clone(),
                    seq,
                    head: head.clone(),
                    failed_proof: None,
                },
            );
            self.send(Frame::new(
                id,
                Body::GetInclusionProof {
                    topic: topic.clone(),
                    seq,
                    tree_size: size,
                },
            ))?;
        }
        Ok(())
    }

    fn audited(&mut self, topic: &str, seq: u64, size: u64) {
        let Some(held) = self.held.held.get_mut(&(topic.to_owned(), seq)) else {
            return;
        };
        held.proven_size = held.proven_size.max(size);
        let op_id = held.receipt.receipt().op_id;
        self.events.push_back(SessionEvent::ReceiptAudited {
            topic: topic.to_owned(),
            op_id,
            seq,
            tree_size: size,
        });
    }

    /// Reports a kept receipt whose op the relay cannot show, and stops auditing it.
    fn missing(&mut self, topic: &str, seq: u64) {
        if let Some(held) = self.held.remove(topic, seq) {
            let op_id = held.receipt.receipt().op_id;
            self.misbehaviour(topic, Fault::AcknowledgedOpMissing { op_id, seq });
        }
    }

    /// The answer to an audit's inclusion proof request.
    pub(super) fn on_inclusion_proof(&mut self, request_id: u32, bytes: &[u8]) -> Result<()> {
        let Some(audit) = self.held.audits.remove(&request_id) else {
            return Ok(());
        };
        let Some(leaf) = self
            .held
            .held
            .get(&(audit.topic.clone(), audit.seq))
            .map(|h| h.leaf)
        else {
            return Ok(());
        };
        let size = audit.head.tree_size();
        let proof = match InclusionProof::decode(bytes) {
            Ok(proof) if proof.leaf_index == audit.seq && proof.tree_size == size => proof,
            _ => {
                self.missing(&audit.topic, audit.seq);
                return Ok(());
            }
        };
        if proof.verify(&leaf, audit.head.root()).is_ok() {
            self.audited(&audit.topic, audit.seq, size);
            return Ok(());
        }
        // Not our op there: fetch what the relay logged at that seq, to prove it.
        if self.phase != super::Phase::Live {
            return Ok(());
        }
        let id = self.request_id();
        let (topic, seq) = (audit.topic.clone(), audit.seq);
        self.held.audits.insert(
            id,
            Audit {
                failed_proof: Some(proof),
                ..audit
            },
        );
        self.send(Frame::new(
            id,
            Body::Subscribe {
                topic,
                from_seq: seq,
            },
        ))
    }

    /// Whether `request_id` is an audit's fetch of one entry (then the frame is handled here).
    pub(super) fn is_audit_fetch(&self, request_id: u32) -> bool {
        self.held
            .audits
            .get(&request_id)
            .is_some_and(|a| a.failed_proof.is_some())
    }

    /// The subscription answer of an audit's fetch: a log that ends at or before the seq has no
    /// entry to show.
    pub(super) fn on_audit_subscribed(&mut self, request_id: u32, head: u64) -> Result<()> {
        let Some(audit) = self.held.audits.get(&request_id) else {
            return Ok(());
        };
        if head > audit.seq {
            return Ok(());
        }
        let (topic, seq) = (audit.topic.clone(), audit.seq);
        self.held.audits.remove(&request_id);
        self.end_fetch(&topic)?;
        self.missing(&topic, seq);
        Ok(())
    }

    /// The first entry of an audit's fetch: evidence when it is another op proved at the seq.
    pub(super) fn on_audit_entry(&mut self, request_id: u32, bytes: &[u8]) -> Result<()> {
        let Some(audit) = self.held.audits.remove(&request_id) else {
            return Ok(());
        };
        self.end_fetch(&audit.topic)?;
        let Some(held) = self.held.remove(&audit.topic, audit.seq) else {
            return Ok(());
        };
        let Some(proof) = audit.failed_proof else {
            return Ok(());
        };
        let entry = ProvenLeaf {
            leaf: bytes.to_vec(),
            proof,
        };
        let evidence = Evidence::ReceiptContradicted {
            receipt: held.receipt.clone(),
            head: audit.head,
            entry,
        };
        let fault = match self.relay.map(|relay| evidence.verify(&relay)) {
            Some(Ok(_)) => Fault::Evidence(Box::new(evidence)),
            _ => Fault::AcknowledgedOpMissing {
                op_id: held.receipt.receipt().op_id,
                seq: audit.seq,
            },
        };
        self.misbehaviour(&audit.topic, fault);
        Ok(())
    }

    /// Ends an audit's one-entry subscription, unless the caller follows the topic (then the
    /// relay's subscription is the caller's, which the fetch replaced: ask again from its cursor).
    fn end_fetch(&mut self, topic: &str) -> Result<()> {
        if self.phase != super::Phase::Live {
            return Ok(());
        }
        if self.topics.get(topic).is_some_and(|t| !t.paused) {
            return self.send_subscribe(topic);
        }
        let id = self.request_id();
        self.send(Frame::new(
            id,
            Body::Unsubscribe {
                topic: topic.to_owned(),
            },
        ))
    }

    /// An error frame answering an audit request: the relay will not prove the receipted op.
    /// Returns whether `request_id` was one.
    pub(super) fn on_audit_error(&mut self, request_id: u32, _code: &str, _message: &str) -> bool {
        let Some(audit) = self.held.audits.remove(&request_id) else {
            return false;
        };
        if audit.failed_proof.is_some() {
            // The fetch failed; the caller's subscription, if any, is asked again.
            let _ = self.end_fetch(&audit.topic);
        }
        self.missing(&audit.topic, audit.seq);
        true
    }
}
