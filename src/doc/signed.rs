//! Signed document updates: every change has an author the relay cannot forge.
//!
//! A `doc.update` op (PROTOCOL.md section 7) carries one Yjs v1 update in its body behind a
//! one-byte version header. A document topic's state is the merge of its verified updates, in
//! any order: Yjs updates commute, so relay order is not needed for convergence (it is still how
//! replicas receive them). A topic may restrict writers to a set of agent ids; the rule is checked
//! on verify, by every replica, not by a server token.
//!
//! Refusal is all-or-nothing: an op that fails any check (signature, encoding, kind, topic, writer,
//! update bytes) changes nothing.

use std::collections::{BTreeSet, HashSet};

use yrs::updates::decoder::Decode;
use yrs::Update;

use super::document::Doc;
use super::updates::compact_updates;
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::identity::{AgentId, Identity};
use crate::op::{OpDraft, OpId, SignedOp, MAX_BODY_LEN};

/// Op kind of a signed document update.
pub const UPDATE_KIND: &str = "doc.update";
/// Version byte of a `doc.update` body: `0x01` = the rest is a Yjs update in format v1.
pub const UPDATE_BODY_VERSION: u8 = 1;
/// Largest Yjs update one op carries (the op body limit minus the header).
pub const MAX_SIGNED_UPDATE_LEN: usize = MAX_BODY_LEN - 1;
/// Most agents a document's writer set may name.
pub const MAX_WRITERS: usize = 4096;

/// Refuses `author` when a writer set is given and does not contain it (`NOT_A_WRITER`).
pub(crate) fn check_writer(writers: Option<&BTreeSet<AgentId>>, author: &AgentId) -> Result<()> {
    match writers {
        Some(set) if !set.contains(author) => Err(Error::NotAWriter(author.to_string())),
        _ => Ok(()),
    }
}

/// The body of a `doc.update` op: `0x01 ‖ update`.
pub fn encode_update_body(update: &[u8]) -> Result<Vec<u8>> {
    if update.len() > MAX_SIGNED_UPDATE_LEN {
        return Err(Error::LimitExceeded {
            what: "signed update length",
            limit: MAX_SIGNED_UPDATE_LEN,
            got: update.len(),
        });
    }
    let mut body = Vec::with_capacity(1 + update.len());
    body.push(UPDATE_BODY_VERSION);
    body.extend_from_slice(update);
    Ok(body)
}

/// The Yjs update inside a `doc.update` body, checked to decode. Errors: `MALFORMED` (empty),
/// `UNSUPPORTED_VERSION`, `BAD_UPDATE`.
pub fn decode_update_body(body: &[u8]) -> Result<&[u8]> {
    let (&version, update) = body
        .split_first()
        .ok_or_else(|| Error::malformed("doc.update body", "empty"))?;
    if version != UPDATE_BODY_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "doc.update body",
            version,
        });
    }
    Update::decode_v1(update).map_err(|e| Error::BadUpdate(e.to_string()))?;
    Ok(update)
}

/// Signs a Yjs v1 update as a `doc.update` op of `topic`.
pub fn sign_update(
    identity: &Identity,
    topic: &str,
    counter: u64,
    time_ms: u64,
    update: &[u8],
) -> Result<SignedOp> {
    Update::decode_v1(update).map_err(|e| Error::BadUpdate(e.to_string()))?;
    SignedOp::sign(
        identity,
        OpDraft {
            topic: topic.to_owned(),
            kind: UPDATE_KIND.into(),
            counter,
            time_ms,
            deps: vec![],
            body: encode_update_body(update)?,
        },
    )
}

/// A document topic's state: the merge of its verified `doc.update` ops.
pub struct SignedDoc {
    topic: String,
    writers: Option<BTreeSet<AgentId>>,
    doc: Doc,
    applied: HashSet<OpId>,
}

impl core::fmt::Debug for SignedDoc {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SignedDoc")
            .field("topic", &self.topic)
            .field("writers", &self.writers.as_ref().map(BTreeSet::len))
            .field("applied", &self.applied.len())
            .finish_non_exhaustive()
    }
}

impl SignedDoc {
    /// An empty document for `topic`. With `writers`, only ops by those agents are accepted.
    ///
    /// Errors: `BAD_TOPIC`; `LIMIT_EXCEEDED` for more than [`MAX_WRITERS`] writers.
    pub fn new(topic: &str, writers: Option<BTreeSet<AgentId>>) -> Result<Self> {
        crate::op::validate_topic(topic)?;
        let count = writers.as_ref().map_or(0, BTreeSet::len);
        if count > MAX_WRITERS {
            return Err(Error::LimitExceeded {
                what: "document writers",
                limit: MAX_WRITERS,
                got: count,
            });
        }
        Ok(SignedDoc {
            topic: topic.to_owned(),
            writers,
            doc: Doc::new(),
            applied: HashSet::new(),
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The writer set, if the topic has one.
    pub fn writers(&self) -> Option<&BTreeSet<AgentId>> {
        self.writers.as_ref()
    }

    /// The merged document (read it; edits made on it directly are local and unsigned until
    /// published with [`sign_update`]).
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// Checks a verified op without applying it: kind, topic, writer set, body. Returns the Yjs
    /// update it carries.
    pub fn check<'a>(&self, op: &'a SignedOp) -> Result<&'a [u8]> {
        if op.kind() != UPDATE_KIND {
            return Err(Error::BadKind(format!(
                "expected {UPDATE_KIND}, got {}",
                op.kind()
            )));
        }
        if op.topic() != self.topic {
            return Err(Error::BadTopic(format!(
                "op for {:?} given to document {:?}",
                op.topic(),
                self.topic
            )));
        }
        check_writer(self.writers.as_ref(), op.author())?;
        decode_update_body(op.body())
    }

    /// Verifies op bytes (signature included) and merges the update. `Ok(false)` for an op
    /// already applied. On any error nothing is applied.
    pub fn apply_bytes(&mut self, op_bytes: &[u8]) -> Result<bool> {
        let op = SignedOp::decode(op_bytes)?;
        self.apply(&op)
    }

    /// Merges the update of an op whose signature was verified (a [`SignedOp`] always is).
    pub fn apply(&mut self, op: &SignedOp) -> Result<bool> {
        let update = self.check(op)?;
        if self.applied.contains(&op.id()) {
            return Ok(false);
        }
        let decoded = Update::decode_v1(update).map_err(|e| Error::BadUpdate(e.to_string()))?;
        self.doc.apply_decoded(decoded)?;
        self.applied.insert(op.id());
        Ok(true)
    }

    /// Merges the op of a relay entry (its signature was verified when the entry was decoded).
    pub fn apply_entry(&mut self, entry: &Entry) -> Result<bool> {
        self.apply(entry.op())
    }

    /// How many distinct updates have been merged.
    pub fn update_count(&self) -> usize {
        self.applied.len()
    }

    /// Compaction: the merged history as one garbage-collected v1 update (a snapshot a new
    /// replica can load instead of replaying every op; it is unsigned, so a replica that needs
    /// authorship must still verify the ops or trust whoever signed the snapshot).
    pub fn compact(&self) -> Result<Vec<u8>> {
        compact_updates(&[self.doc.encode_update(None)?])
    }
}
