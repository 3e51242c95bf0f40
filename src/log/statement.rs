//! What a relay signs about its logs: a **receipt** for every accepted op and **checkpoints**.
//!
//! Both commit the relay to a tree head `(topic, size, root)` of the topic's log; a receipt also
//! says which op it sequenced where. Each has one canonical encoding (version byte first,
//! big-endian integers, trailing bytes refused) and is signed with Ed25519 over
//! `domain ‖ every byte before the signature`, so neither can be mistaken for the other or for an
//! op. Layouts (version 1):
//!
//! | receipt field | size | checkpoint field | size |
//! |---|---|---|---|
//! | version `0x01` | 1 | version `0x01` | 1 |
//! | topic length, topic | 1 + T | topic length, topic | 1 + T |
//! | seq | 8 | tree size | 8 |
//! | op id | 32 | root | 32 |
//! | relay time (ms) | 8 | time (ms) | 8 |
//! | tree size | 8 | signature | 64 |
//! | root | 32 | | |
//! | signature | 64 | | |
//!
//! A receipt's tree size is at least `seq + 1` (the tree right after appending, or a later one
//! when the relay commits in groups); every tree size is at most 2^63.
//!
//! **Batch-signed receipts (version 2).** A relay that commits ops in groups signs each group's
//! receipts with one signature: the receipts' fields (version `0x02`, then as above up to the
//! root) are the leaves of a Merkle tree (RFC 6962 hashing, as for logs), and the relay signs
//! `ants-coord/receipt-batch/v1\0 ‖ batch size (2) ‖ batch root (32)`. Each receipt carries its
//! place and audit path after the root: `batch index (2) ‖ batch size (2) ‖ count (1) ‖ count ×
//! hash (32)`, then the signature. It states exactly what a version-1 receipt states; verifying
//! it costs a few hashes more, and signing a group of `n` costs one signature instead of `n`.

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::identity::{AgentId, Identity, SIGNATURE_LEN};
use crate::op::{validate_topic, OpId};

use super::merkle::{leaf_hash, Hash, MerkleLog, MAX_TREE_SIZE};
use super::proof::inclusion_root;

/// The protocol version of receipts and checkpoints.
pub const STATEMENT_VERSION: u8 = 1;
/// The version of batch-signed receipts.
pub const RECEIPT_BATCH_VERSION: u8 = 2;
/// Most receipts one batch signature covers (a longer batch is signed in several).
pub const MAX_RECEIPT_BATCH: usize = 4096;
/// Longest audit path in a batch-signed receipt (`log2` of [`MAX_RECEIPT_BATCH`]).
const MAX_BATCH_PATH: usize = 12;
/// Domain-separation prefix of receipt signatures.
pub const RECEIPT_DOMAIN: &[u8] = b"ants-coord/receipt/v1\x00";
/// Domain-separation prefix of batch signatures over receipts (version 2).
pub const RECEIPT_BATCH_DOMAIN: &[u8] = b"ants-coord/receipt-batch/v1\x00";
/// Domain-separation prefix of checkpoint signatures.
pub const CHECKPOINT_DOMAIN: &[u8] = b"ants-coord/checkpoint/v1\x00";

/// The relay's acknowledgement of one op, before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The topic (log) the op was sequenced in.
    pub topic: String,
    /// The entry's sequence number = its leaf index.
    pub seq: u64,
    /// The sequenced op.
    pub op_id: OpId,
    /// The relay time stamped on the entry (ms since the Unix epoch).
    pub relay_time_ms: u64,
    /// Size of the tree the entry is committed in (`> seq`).
    pub tree_size: u64,
    /// Root of that tree.
    pub root: Hash,
}

/// A relay's statement of a topic's tree head, before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The topic (log).
    pub topic: String,
    /// Number of entries.
    pub tree_size: u64,
    /// The Merkle root over them.
    pub root: Hash,
    /// When the relay signed it (ms since the Unix epoch).
    pub time_ms: u64,
}

/// A signed [`Receipt`], signed alone (version 1) or in a batch (version 2). Invariant: `bytes`
/// is its canonical encoding ending in the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedReceipt {
    receipt: Receipt,
    bytes: Vec<u8>,
    /// Version 2: where the receipt sits in its signed batch.
    batch: Option<BatchPlace>,
}

/// A version-2 receipt's place in its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BatchPlace {
    /// Length of the fields that are the receipt's leaf (version through root).
    fields_len: usize,
    index: u16,
    size: u16,
    path: Vec<Hash>,
}

/// A signed [`Checkpoint`]. Invariant: `bytes` is its canonical encoding ending in `signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    checkpoint: Checkpoint,
    bytes: Vec<u8>,
}

impl Receipt {
    fn encode_unsigned(&self) -> Result<Vec<u8>> {
        self.encode_fields(STATEMENT_VERSION)
    }

    /// `version ‖ topic ‖ seq ‖ op id ‖ relay time ‖ tree size ‖ root`, the rules checked.
    fn encode_fields(&self, version: u8) -> Result<Vec<u8>> {
        validate_topic(&self.topic)?;
        check_head(self.tree_size)?;
        if self.seq >= self.tree_size {
            return Err(Error::malformed(
                "receipt",
                format!("seq {} is not below tree size {}", self.seq, self.tree_size),
            ));
        }
        let mut out = Vec::with_capacity(90 + self.topic.len() + SIGNATURE_LEN);
        out.put_u8(version);
        out.put_u8(self.topic.len() as u8);
        out.put(self.topic.as_bytes());
        out.put_u64(self.seq);
        out.put(&self.op_id.0);
        out.put_u64(self.relay_time_ms);
        out.put_u64(self.tree_size);
        out.put(&self.root);
        Ok(out)
    }
}

impl Checkpoint {
    fn encode_unsigned(&self) -> Result<Vec<u8>> {
        validate_topic(&self.topic)?;
        check_head(self.tree_size)?;
        let mut out = Vec::with_capacity(50 + self.topic.len() + SIGNATURE_LEN);
        out.put_u8(STATEMENT_VERSION);
        out.put_u8(self.topic.len() as u8);
        out.put(self.topic.as_bytes());
        out.put_u64(self.tree_size);
        out.put(&self.root);
        out.put_u64(self.time_ms);
        Ok(out)
    }
}

fn check_head(tree_size: u64) -> Result<()> {
    if tree_size > MAX_TREE_SIZE {
        return Err(Error::BadInput(format!(
            "tree size {tree_size} is over the limit of 2^63"
        )));
    }
    Ok(())
}

fn read_header<'a>(what: &'static str, bytes: &'a [u8]) -> Result<(Reader<'a>, &'a [u8])> {
    read_header_of(what, bytes, &[STATEMENT_VERSION]).map(|(r, topic, _)| (r, topic))
}

/// Reads the version (one of `versions`) and the topic's bytes. The topic's rules are checked
/// by [`topic_of`] once the whole statement has been read (PROTOCOL.md section 5.3, check
/// order), as for ops.
fn read_header_of<'a>(
    what: &'static str,
    bytes: &'a [u8],
    versions: &[u8],
) -> Result<(Reader<'a>, &'a [u8], u8)> {
    let mut r = Reader::new(what, bytes);
    let version = r.u8("version")?;
    if !versions.contains(&version) {
        return Err(Error::UnsupportedVersion { what, version });
    }
    let topic_len = r.u8("topic length")? as usize;
    let topic = r.take(topic_len, "topic")?;
    Ok((r, topic, version))
}

/// A topic read by [`read_header_of`], its rules checked (`BAD_TOPIC`).
fn topic_of(bytes: &[u8]) -> Result<String> {
    let topic = std::str::from_utf8(bytes).map_err(|_| Error::BadTopic("not UTF-8".into()))?;
    validate_topic(topic)?;
    Ok(topic.to_owned())
}

fn signed_message(domain: &[u8], bytes: &[u8]) -> Vec<u8> {
    [domain, &bytes[..bytes.len() - SIGNATURE_LEN]].concat()
}

impl SignedReceipt {
    /// Signs a receipt as the relay `identity`.
    ///
    /// Errors: `BAD_TOPIC`, `BAD_INPUT` (tree size over 2^63), `MALFORMED` (`seq ≥ tree_size`).
    pub fn sign(identity: &Identity, receipt: Receipt) -> Result<Self> {
        let mut bytes = receipt.encode_unsigned()?;
        let signature = identity.sign_in_domain(RECEIPT_DOMAIN, &bytes);
        bytes.put(&signature);
        Ok(SignedReceipt {
            receipt,
            bytes,
            batch: None,
        })
    }

    /// Decodes a receipt and verifies it is signed by `relay`.
    pub fn decode(bytes: &[u8], relay: &AgentId) -> Result<Self> {
        let receipt = Self::decode_unverified(bytes)?;
        receipt.verify(relay)?;
        Ok(receipt)
    }

    /// Signs receipts as the relay `identity` with one signature per [`MAX_RECEIPT_BATCH`]
    /// of them (version 2); returns them in order.
    ///
    /// Errors: as [`SignedReceipt::sign`], for the first receipt that breaks a rule (nothing is
    /// signed then).
    pub fn sign_batch(identity: &Identity, receipts: Vec<Receipt>) -> Result<Vec<Self>> {
        let mut signed = Vec::with_capacity(receipts.len());
        for batch in receipts.chunks(MAX_RECEIPT_BATCH) {
            let fields = batch
                .iter()
                .map(|r| r.encode_fields(RECEIPT_BATCH_VERSION))
                .collect::<Result<Vec<_>>>()?;
            let mut tree = MerkleLog::new();
            for leaf in &fields {
                tree.append(leaf)?;
            }
            let size = batch.len() as u16;
            let signature =
                identity.sign_in_domain(RECEIPT_BATCH_DOMAIN, &batch_statement(size, &tree.root()));
            for (index, (receipt, mut bytes)) in (0u16..).zip(batch.iter().zip(fields)) {
                let path = tree
                    .inclusion_proof(u64::from(index), u64::from(size))?
                    .hashes;
                let fields_len = bytes.len();
                bytes.put_u16(index);
                bytes.put_u16(size);
                bytes.put_u8(path.len() as u8);
                for hash in &path {
                    bytes.put(hash);
                }
                bytes.put(&signature);
                signed.push(SignedReceipt {
                    receipt: receipt.clone(),
                    bytes,
                    batch: Some(BatchPlace {
                        fields_len,
                        index,
                        size,
                        path,
                    }),
                });
            }
        }
        Ok(signed)
    }

    /// Decodes a receipt (version 1 or 2) without checking its signature.
    ///
    /// Errors: `MALFORMED` (also for a batch place out of range), `TRAILING_BYTES`,
    /// `UNSUPPORTED_VERSION`, `BAD_TOPIC`, `BAD_INPUT`.
    pub fn decode_unverified(bytes: &[u8]) -> Result<Self> {
        let (mut r, topic, version) = read_header_of(
            "receipt",
            bytes,
            &[STATEMENT_VERSION, RECEIPT_BATCH_VERSION],
        )?;
        let mut receipt = Receipt {
            topic: String::new(),
            seq: r.u64("seq")?,
            op_id: OpId(r.array("op id")?),
            relay_time_ms: r.u64("relay time")?,
            tree_size: r.u64("tree size")?,
            root: r.array("root")?,
        };
        let batch = if version == RECEIPT_BATCH_VERSION {
            let fields_len = bytes.len() - r.remaining();
            let index = r.u16("batch index")?;
            let size = r.u16("batch size")?;
            let count = r.u8("path length")? as usize;
            if index >= size || usize::from(size) > MAX_RECEIPT_BATCH || count > MAX_BATCH_PATH {
                return Err(Error::malformed(
                    "receipt",
                    format!("batch place {index} of {size} with a path of {count}"),
                ));
            }
            let path = (0..count)
                .map(|_| r.array("batch path"))
                .collect::<Result<Vec<Hash>>>()?;
            Some(BatchPlace {
                fields_len,
                index,
                size,
                path,
            })
        } else {
            None
        };
        r.take(SIGNATURE_LEN, "signature")?;
        r.finish()?;
        receipt.topic = topic_of(topic)?;
        // Re-encoding checks the other field rules, in field order: tree size ≤ 2^63, then
        // seq < tree size.
        receipt.encode_unsigned()?;
        Ok(SignedReceipt {
            receipt,
            bytes: bytes.to_vec(),
            batch,
        })
    }

    /// Checks the signature against the relay's key (`BAD_SIGNATURE`; for version 2 also when
    /// the audit path does not lead from this receipt to a signed batch root).
    pub fn verify(&self, relay: &AgentId) -> Result<()> {
        let Some(place) = &self.batch else {
            return relay.verify(
                &signed_message(RECEIPT_DOMAIN, &self.bytes),
                self.signature(),
            );
        };
        let leaf = leaf_hash(&self.bytes[..place.fields_len]);
        let root = inclusion_root(
            &leaf,
            u64::from(place.index),
            u64::from(place.size),
            &place.path,
        )
        .map_err(|_| Error::BadSignature)?;
        relay.verify(
            &[
                RECEIPT_BATCH_DOMAIN,
                &batch_statement(place.size, &root)[..],
            ]
            .concat(),
            self.signature(),
        )
    }

    /// The receipt's version: 1 (signed alone) or 2 (signed in a batch).
    pub fn version(&self) -> u8 {
        self.bytes[0]
    }

    /// The signed fields.
    pub fn receipt(&self) -> &Receipt {
        &self.receipt
    }
    /// The 64-byte signature (version 2: over the batch root).
    pub fn signature(&self) -> &[u8] {
        &self.bytes[self.bytes.len() - SIGNATURE_LEN..]
    }
    /// The canonical signed bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// What a batch signature signs after its domain: `batch size (2) ‖ batch root (32)`.
fn batch_statement(size: u16, root: &Hash) -> [u8; 34] {
    let mut out = [0u8; 34];
    out[..2].copy_from_slice(&size.to_be_bytes());
    out[2..].copy_from_slice(root);
    out
}

impl SignedCheckpoint {
    /// Signs a checkpoint as the relay `identity`.
    ///
    /// Errors: `BAD_TOPIC`, `BAD_INPUT` (tree size over 2^63).
    pub fn sign(identity: &Identity, checkpoint: Checkpoint) -> Result<Self> {
        let mut bytes = checkpoint.encode_unsigned()?;
        let signature = identity.sign_in_domain(CHECKPOINT_DOMAIN, &bytes);
        bytes.put(&signature);
        Ok(SignedCheckpoint { checkpoint, bytes })
    }

    /// Decodes a checkpoint and verifies it is signed by `relay`.
    pub fn decode(bytes: &[u8], relay: &AgentId) -> Result<Self> {
        let checkpoint = Self::decode_unverified(bytes)?;
        checkpoint.verify(relay)?;
        Ok(checkpoint)
    }

    /// Decodes a checkpoint without checking its signature.
    ///
    /// Errors: `MALFORMED`, `TRAILING_BYTES`, `UNSUPPORTED_VERSION`, `BAD_TOPIC`, `BAD_INPUT`.
    pub fn decode_unverified(bytes: &[u8]) -> Result<Self> {
        let (mut r, topic) = read_header("checkpoint", bytes)?;
        let tree_size = r.u64("tree size")?;
        let root = r.array("root")?;
        let time_ms = r.u64("time")?;
        r.take(SIGNATURE_LEN, "signature")?;
        r.finish()?;
        let checkpoint = Checkpoint {
            topic: topic_of(topic)?,
            tree_size,
            root,
            time_ms,
        };
        check_head(checkpoint.tree_size)?;
        Ok(SignedCheckpoint {
            checkpoint,
            bytes: bytes.to_vec(),
        })
    }

    /// Checks the signature against the relay's key (`BAD_SIGNATURE`).
    pub fn verify(&self, relay: &AgentId) -> Result<()> {
        relay.verify(
            &signed_message(CHECKPOINT_DOMAIN, &self.bytes),
            self.signature(),
        )
    }

    /// The signed fields.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
    /// The 64-byte signature.
    pub fn signature(&self) -> &[u8] {
        &self.bytes[self.bytes.len() - SIGNATURE_LEN..]
    }
    /// The canonical signed bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A relay-signed tree head: either statement commits the relay to `(topic, size, root)`.
///
/// Encoded inside evidence as `kind (1) ‖ length (2) ‖ statement bytes`, kind 1 = receipt,
/// 2 = checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedTreeHead {
    /// A receipt: the tree `(tree_size, root)` it names.
    Receipt(SignedReceipt),
    /// A checkpoint.
    Checkpoint(SignedCheckpoint),
}

impl From<SignedReceipt> for SignedTreeHead {
    fn from(receipt: SignedReceipt) -> Self {
        SignedTreeHead::Receipt(receipt)
    }
}

impl From<SignedCheckpoint> for SignedTreeHead {
    fn from(checkpoint: SignedCheckpoint) -> Self {
        SignedTreeHead::Checkpoint(checkpoint)
    }
}

impl SignedTreeHead {
    /// The topic.
    pub fn topic(&self) -> &str {
        match self {
            SignedTreeHead::Receipt(r) => &r.receipt.topic,
            SignedTreeHead::Checkpoint(c) => &c.checkpoint.topic,
        }
    }
    /// The tree size.
    pub fn tree_size(&self) -> u64 {
        match self {
            SignedTreeHead::Receipt(r) => r.receipt.tree_size,
            SignedTreeHead::Checkpoint(c) => c.checkpoint.tree_size,
        }
    }
    /// The root.
    pub fn root(&self) -> &Hash {
        match self {
            SignedTreeHead::Receipt(r) => &r.receipt.root,
            SignedTreeHead::Checkpoint(c) => &c.checkpoint.root,
        }
    }
    /// Checks the signature against the relay's key (`BAD_SIGNATURE`).
    pub fn verify(&self, relay: &AgentId) -> Result<()> {
        match self {
            SignedTreeHead::Receipt(r) => r.verify(relay),
            SignedTreeHead::Checkpoint(c) => c.verify(relay),
        }
    }
    /// The signed statement's canonical bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            SignedTreeHead::Receipt(r) => r.as_bytes(),
            SignedTreeHead::Checkpoint(c) => c.as_bytes(),
        }
    }
    fn kind(&self) -> u8 {
        match self {
            SignedTreeHead::Receipt(_) => 1,
            SignedTreeHead::Checkpoint(_) => 2,
        }
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.put_u8(self.kind());
        out.put_u16(self.as_bytes().len() as u16);
        out.put(self.as_bytes());
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let kind = r.u8("tree head kind")?;
        let len = r.u16("tree head length")? as usize;
        let bytes = r.take(len, "tree head")?;
        match kind {
            1 => Ok(SignedTreeHead::Receipt(SignedReceipt::decode_unverified(
                bytes,
            )?)),
            2 => Ok(SignedTreeHead::Checkpoint(
                SignedCheckpoint::decode_unverified(bytes)?,
            )),
            other => Err(Error::malformed(
                "evidence",
                format!("unknown tree head kind {other}"),
            )),
        }
    }
}
