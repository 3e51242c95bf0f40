//! Free functions of the transparency log: roots, proof verification, and decoding/verifying the
//! relay's receipts, checkpoints, checkpoint notes and misbehaviour evidence.
//!
//! A proof that does not verify gives `false`; arguments that are not well formed (not a
//! `Uint8Array`, a hash that is not 32 bytes, a size that is not a safe integer) throw with
//! `BAD_INPUT` or `BAD_LENGTH`. Sizes and indices are JS numbers (safe integers); 64-bit fields
//! of decoded statements are numbers up to `Number.MAX_SAFE_INTEGER`, BigInts above.

use js_sys::{Array, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::convert::{
    bytes_arg, bytes_array_arg, safe_u64, serialize_bytes, serialize_u64, string_arg, to_js,
};
use super::error::bad_input;
use crate::error::Error;
use crate::identity::AgentId;
use crate::log::{
    self, merkle_root, verify_checkpoint_note, Evidence, Hash, SignedCheckpoint, SignedReceipt,
};

#[wasm_bindgen(typescript_custom_section)]
const LOG_OBJECTS: &str = r#"
/** A relay's receipt for a sequenced op (PROTOCOL.md section 5.3). */
export interface Receipt {
  topic: string;
  /** The entry's sequence number = leaf index. */
  seq: number | bigint;
  /** The op id, 64 lowercase hex. */
  opId: string;
  relayTimeMs: number | bigint;
  /** Size of the tree the entry is committed in (> seq). */
  treeSize: number | bigint;
  /** 32-byte Merkle root of that tree. */
  root: Uint8Array;
  /** 64-byte Ed25519 signature: version 1 over `ants-coord/receipt/v1\0 ‖ bytes before it`,
   * version 2 over its batch's root (`ants-coord/receipt-batch/v1\0 ‖ batch size ‖ root`). */
  signature: Uint8Array;
  /** 1: signed alone; 2: signed in a batch, with its audit path (PROTOCOL.md 5.3). */
  version: number;
}

/** A relay's checkpoint of a topic's log (PROTOCOL.md section 5.4). */
export interface Checkpoint {
  topic: string;
  treeSize: number | bigint;
  /** 32-byte Merkle root. */
  root: Uint8Array;
  timeMs: number | bigint;
  /** 64-byte Ed25519 signature over `ants-coord/checkpoint/v1\0 ‖ bytes before it`. */
  signature: Uint8Array;
}

/** What a verified C2SP checkpoint note says. */
export interface NoteCheckpoint {
  topic: string;
  treeSize: number | bigint;
  root: Uint8Array;
}

/** Misbehaviour evidence (PROTOCOL.md section 5.6). `violation` is one of `CONFLICTING_HEADS`,
 * `SPLIT_VIEW`, `RECEIPT_CONTRADICTED`, `COUNTER_ORDER`, `DEPS_ORDER`, `INVALID_LEAF`: the rule
 * it claims (from `decodeEvidence`) or proves (from `verifyEvidence`). */
export interface EvidenceSummary {
  violation: string;
  topic: string;
}
"#;

fn hash_arg(what: &str, value: &JsValue) -> Result<Hash, JsValue> {
    let Some(bytes) = value.dyn_ref::<Uint8Array>() else {
        return Err(bad_input(format!("{what} must be a Uint8Array")));
    };
    let got = bytes.length() as usize;
    if got != 32 {
        return Err(Error::BadLength {
            what: "hash",
            expected: 32,
            got,
        }
        .into());
    }
    let mut hash = [0u8; 32];
    bytes.copy_to(&mut hash);
    Ok(hash)
}

/// Proof hashes: an array of 32-byte `Uint8Array`s (what `inclusionProof` returns), or their
/// concatenation in one `Uint8Array` (a multiple of 32 bytes; one boundary crossing instead of
/// one per hash). Each hash is copied straight into a fixed array, without an allocation.
fn hashes_arg(what: &str, value: &JsValue) -> Result<Vec<Hash>, JsValue> {
    let bad_length = |got: usize| -> JsValue {
        Error::BadLength {
            what: "proof hash",
            expected: 32,
            got,
        }
        .into()
    };
    if let Some(flat) = value.dyn_ref::<Uint8Array>() {
        let bytes = flat.to_vec();
        if bytes.len() % 32 != 0 {
            return Err(bad_length(bytes.len() % 32));
        }
        return Ok(bytes
            .chunks_exact(32)
            .map(|chunk| {
                let mut hash = [0u8; 32];
                hash.copy_from_slice(chunk);
                hash
            })
            .collect());
    }
    if !Array::is_array(value) {
        return Err(bad_input(format!(
            "{what} must be an array of Uint8Array or one Uint8Array"
        )));
    }
    let array: &Array = value.unchecked_ref();
    let mut hashes = Vec::with_capacity(array.length() as usize);
    for (index, item) in array.iter().enumerate() {
        let Some(bytes) = item.dyn_ref::<Uint8Array>() else {
            return Err(bad_input(format!("{what}[{index}] must be a Uint8Array")));
        };
        let len = bytes.length() as usize;
        if len != 32 {
            return Err(bad_length(len));
        }
        let mut hash = [0u8; 32];
        bytes.copy_to(&mut hash);
        hashes.push(hash);
    }
    Ok(hashes)
}

/// A relay key argument: 32 bytes or the agent id text.
fn relay_arg(value: &JsValue) -> Result<AgentId, JsValue> {
    if let Some(text) = value.as_string() {
        return Ok(text.parse::<AgentId>()?);
    }
    if value.dyn_ref::<Uint8Array>().is_some() {
        return Ok(AgentId::from_bytes(&bytes_arg("relayKey", value)?)?);
    }
    Err(bad_input(
        "relayKey must be a 32-byte Uint8Array or an agent id string",
    ))
}

fn verdict(result: crate::Result<()>) -> Result<bool, JsValue> {
    match result {
        Ok(()) => Ok(true),
        Err(Error::ProofFailed { .. }) => Ok(false),
        Err(other) => Err(other.into()),
    }
}

/// The RFC 6962 root over leaf data (`SHA-256("")` for none).
#[wasm_bindgen(js_name = merkleRoot)]
pub fn merkle_root_js(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array[]")] leaves: &JsValue,
) -> Result<Vec<u8>, JsValue> {
    let leaves = bytes_array_arg("leaves", leaves)?;
    let refs: Vec<&[u8]> = leaves.iter().map(Vec::as_slice).collect();
    Ok(merkle_root(&refs).to_vec())
}

/// The RFC 6962 leaf hash `SHA-256(0x00 ‖ leaf)`.
#[wasm_bindgen(js_name = leafHash)]
pub fn leaf_hash_js(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] leaf: &JsValue,
) -> Result<Vec<u8>, JsValue> {
    Ok(log::leaf_hash(&bytes_arg("leaf", leaf)?).to_vec())
}

/// Whether `leaf` (leaf data, e.g. entry bytes) is leaf `index` of the tree of `size` leaves
/// with root `root`, by RFC 9162 §2.1.3.2. `proof` is what `inclusionProof` returns, or the
/// concatenation of its hashes in one `Uint8Array`.
#[wasm_bindgen(js_name = verifyInclusion)]
pub fn verify_inclusion_js(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] leaf: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "number")] index: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "number")] size: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "Uint8Array[] | Uint8Array")] proof: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] root: &JsValue,
) -> Result<bool, JsValue> {
    let leaf = log::leaf_hash(&bytes_arg("leaf", leaf)?);
    let (index, size) = (safe_u64("index", index)?, safe_u64("size", size)?);
    let proof = hashes_arg("proof", proof)?;
    let root = hash_arg("root", root)?;
    verdict(log::verify_inclusion(&leaf, index, size, &proof, &root))
}

/// Whether the tree of `oldSize` leaves (root `oldRoot`) is a prefix of the tree of `newSize`
/// leaves (root `newRoot`), by RFC 9162 §2.1.4.2.
#[wasm_bindgen(js_name = verifyConsistency)]
pub fn verify_consistency_js(
    #[wasm_bindgen(js_name = oldSize, unchecked_param_type = "number")] old_size: &JsValue,
    #[wasm_bindgen(js_name = oldRoot, unchecked_param_type = "Uint8Array")] old_root: &JsValue,
    #[wasm_bindgen(js_name = newSize, unchecked_param_type = "number")] new_size: &JsValue,
    #[wasm_bindgen(js_name = newRoot, unchecked_param_type = "Uint8Array")] new_root: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "Uint8Array[] | Uint8Array")] proof: &JsValue,
) -> Result<bool, JsValue> {
    let old_size = safe_u64("oldSize", old_size)?;
    let new_size = safe_u64("newSize", new_size)?;
    let old_root = hash_arg("oldRoot", old_root)?;
    let new_root = hash_arg("newRoot", new_root)?;
    let proof = hashes_arg("proof", proof)?;
    verdict(log::verify_consistency(
        old_size, &old_root, new_size, &new_root, &proof,
    ))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReceiptView {
    topic: String,
    #[serde(serialize_with = "serialize_u64")]
    seq: u64,
    op_id: String,
    #[serde(serialize_with = "serialize_u64")]
    relay_time_ms: u64,
    #[serde(serialize_with = "serialize_u64")]
    tree_size: u64,
    #[serde(serialize_with = "serialize_bytes")]
    root: Vec<u8>,
    #[serde(serialize_with = "serialize_bytes")]
    signature: Vec<u8>,
    version: u8,
}

fn receipt_view(receipt: &SignedReceipt) -> ReceiptView {
    let r = receipt.receipt();
    ReceiptView {
        topic: r.topic.clone(),
        seq: r.seq,
        op_id: r.op_id.to_string(),
        relay_time_ms: r.relay_time_ms,
        tree_size: r.tree_size,
        root: r.root.to_vec(),
        signature: receipt.signature().to_vec(),
        version: receipt.version(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckpointView {
    topic: String,
    #[serde(serialize_with = "serialize_u64")]
    tree_size: u64,
    #[serde(serialize_with = "serialize_bytes")]
    root: Vec<u8>,
    #[serde(serialize_with = "serialize_u64")]
    time_ms: u64,
    #[serde(serialize_with = "serialize_bytes")]
    signature: Vec<u8>,
}

fn checkpoint_view(checkpoint: &SignedCheckpoint) -> CheckpointView {
    let c = checkpoint.checkpoint();
    CheckpointView {
        topic: c.topic.clone(),
        tree_size: c.tree_size,
        root: c.root.to_vec(),
        time_ms: c.time_ms,
        signature: checkpoint.signature().to_vec(),
    }
}

/// Decodes a receipt without checking its signature.
#[wasm_bindgen(js_name = decodeReceipt, unchecked_return_type = "Receipt")]
pub fn decode_receipt_js(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
) -> Result<JsValue, JsValue> {
    let receipt = SignedReceipt::decode_unverified(&bytes_arg("bytes", bytes)?)?;
    to_js(&receipt_view(&receipt))
}

/// Decodes a receipt and verifies it is signed by the relay (`BAD_SIGNATURE` otherwise).
#[wasm_bindgen(js_name = verifyReceipt, unchecked_return_type = "Receipt")]
pub fn verify_receipt_js(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
    #[wasm_bindgen(js_name = relayKey, unchecked_param_type = "Uint8Array | string")]
    relay_key: &JsValue,
) -> Result<JsValue, JsValue> {
    let relay = relay_arg(relay_key)?;
    let receipt = SignedReceipt::decode(&bytes_arg("bytes", bytes)?, &relay)?;
    to_js(&receipt_view(&receipt))
}

/// Decodes a checkpoint without checking its signature.
#[wasm_bindgen(js_name = decodeCheckpoint, unchecked_return_type = "Checkpoint")]
pub fn decode_checkpoint_js(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
) -> Result<JsValue, JsValue> {
    let checkpoint = SignedCheckpoint::decode_unverified(&bytes_arg("bytes", bytes)?)?;
    to_js(&checkpoint_view(&checkpoint))
}

/// Decodes a checkpoint and verifies it is signed by the relay (`BAD_SIGNATURE` otherwise).
#[wasm_bindgen(js_name = verifyCheckpoint, unchecked_return_type = "Checkpoint")]
pub fn verify_checkpoint_js(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
    #[wasm_bindgen(js_name = relayKey, unchecked_param_type = "Uint8Array | string")]
    relay_key: &JsValue,
) -> Result<JsValue, JsValue> {
    let relay = relay_arg(relay_key)?;
    let checkpoint = SignedCheckpoint::decode(&bytes_arg("bytes", bytes)?, &relay)?;
    to_js(&checkpoint_view(&checkpoint))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NoteView {
    topic: String,
    #[serde(serialize_with = "serialize_u64")]
    tree_size: u64,
    #[serde(serialize_with = "serialize_bytes")]
    root: Vec<u8>,
}

/// Reads a C2SP checkpoint note (text form) and verifies the relay's signature on it.
#[wasm_bindgen(js_name = verifyCheckpointNote, unchecked_return_type = "NoteCheckpoint")]
pub fn verify_checkpoint_note_js(
    #[wasm_bindgen(unchecked_param_type = "string")] note: &JsValue,
    #[wasm_bindgen(js_name = relayKey, unchecked_param_type = "Uint8Array | string")]
    relay_key: &JsValue,
) -> Result<JsValue, JsValue> {
    let relay = relay_arg(relay_key)?;
    let read = verify_checkpoint_note(&string_arg("note", note)?, &relay)?;
    to_js(&NoteView {
        topic: read.topic,
        tree_size: read.tree_size,
        root: read.root.to_vec(),
    })
}

#[derive(Serialize)]
struct EvidenceView {
    violation: &'static str,
    topic: String,
}

/// Decodes evidence without verifying it: the rule it claims and the topic.
#[wasm_bindgen(js_name = decodeEvidence, unchecked_return_type = "EvidenceSummary")]
pub fn decode_evidence_js(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
) -> Result<JsValue, JsValue> {
    let evidence = Evidence::decode(&bytes_arg("bytes", bytes)?)?;
    to_js(&EvidenceView {
        violation: evidence.claimed_violation().code(),
        topic: evidence.topic().to_owned(),
    })
}

/// Verifies evidence with only the relay's key: the rule it proves broken. Throws
/// `BAD_SIGNATURE`, `BAD_PROOF` or `NOT_EVIDENCE` when it proves nothing.
#[wasm_bindgen(js_name = verifyEvidence, unchecked_return_type = "EvidenceSummary")]
pub fn verify_evidence_js(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
    #[wasm_bindgen(js_name = relayKey, unchecked_param_type = "Uint8Array | string")]
    relay_key: &JsValue,
) -> Result<JsValue, JsValue> {
    let relay = relay_arg(relay_key)?;
    let evidence = Evidence::decode(&bytes_arg("bytes", bytes)?)?;
    let violation = evidence.verify(&relay)?;
    to_js(&EvidenceView {
        violation: violation.code(),
        topic: evidence.topic().to_owned(),
    })
}
