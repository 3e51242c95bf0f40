//! Free functions over signed ops: `signOp`, `decodeOp`, `opId`.
//!
//! Drafts and decoded ops are plain JS objects (TypeScript `OpDraft` and `DecodedOp`, see
//! `types.rs`): drafts read field by field, decoded ops written with `serde-wasm-bindgen`. 64-bit integers (`counter`, `timeMs`) are
//! accepted as a number (a safe integer) or a `BigInt`, and returned as a number when they are at
//! most `Number.MAX_SAFE_INTEGER`, as a `BigInt` otherwise.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::convert::{bytes_arg, serialize_bytes, serialize_u64, to_js, Fields};
use super::error::bad_input;
use crate::identity::Identity;
use crate::op::{OpDraft, OpId, SignedOp, OP_VERSION};

/// The JS `OpDraft` object.
pub(crate) struct OpDraftInput {
    topic: String,
    kind: String,
    counter: u64,
    body: Vec<u8>,
    deps: Vec<String>,
    time_ms: Option<u64>,
}

/// The fields of an `OpDraft` object.
const DRAFT_FIELDS: [&str; 6] = ["topic", "kind", "counter", "body", "deps", "timeMs"];

/// Reads an `OpDraft` object, field by field ([`Fields`]): unknown fields are refused (a
/// misspelt `time_ms` must not silently become "now"), a wrong shape is `BAD_INPUT`.
pub(crate) fn draft_from_js(draft: JsValue) -> Result<OpDraftInput, JsValue> {
    let fields = Fields::new("op draft", &draft, &DRAFT_FIELDS)?;
    Ok(OpDraftInput {
        topic: fields.string("topic")?,
        kind: fields.string("kind")?,
        counter: fields.u64("counter")?,
        body: fields.bytes("body")?,
        deps: fields.strings("deps")?,
        time_ms: fields.opt_u64("timeMs")?,
    })
}

/// Signs a draft as `identity`; `timeMs` defaults to `Date.now()`.
pub(crate) fn sign_draft(identity: &Identity, draft: OpDraftInput) -> Result<Vec<u8>, JsValue> {
    let deps = draft
        .deps
        .iter()
        .map(|dep| dep.parse::<OpId>())
        .collect::<crate::Result<Vec<_>>>()?;
    let time_ms = match draft.time_ms {
        Some(time_ms) => time_ms,
        // Date.now() is a non-negative integer number of milliseconds.
        None => js_sys::Date::now() as u64,
    };
    let op = SignedOp::sign(
        identity,
        OpDraft {
            topic: draft.topic,
            kind: draft.kind,
            counter: draft.counter,
            time_ms,
            deps,
            body: draft.body,
        },
    )?;
    Ok(op.as_bytes().to_vec())
}

#[wasm_bindgen]
extern "C" {
    /// Any JS value passed where an `Identity` is expected.
    #[wasm_bindgen(typescript_type = "Identity")]
    pub type IdentityArg;

    #[wasm_bindgen(method, catch, js_name = signOp)]
    fn sign_op(this: &IdentityArg, draft: JsValue) -> Result<Vec<u8>, JsValue>;
}

/// Signs `draft` as `identity`: the canonical signed op bytes.
///
/// Errors: `BAD_INPUT` (not a live `Identity`, a draft of the wrong shape, a malformed dep id),
/// `BAD_TOPIC`, `BAD_KIND`, `LIMIT_EXCEEDED`.
#[wasm_bindgen(js_name = signOp)]
pub fn sign_op(
    identity: &IdentityArg,
    #[wasm_bindgen(unchecked_param_type = "OpDraft")] draft: JsValue,
) -> Result<Vec<u8>, JsValue> {
    // A live Identity object carries a non-zero pointer into wasm memory; a freed one has 0.
    let pointer = js_sys::Reflect::get(identity, &JsValue::from_str("__wbg_ptr"))
        .ok()
        .and_then(|pointer| pointer.as_f64());
    if !identity.is_object() || matches!(pointer, None | Some(0.0)) {
        return Err(bad_input("identity must be a live Identity (not freed)"));
    }
    identity.sign_op(draft)
}

/// The JS `DecodedOp` object.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DecodedOp {
    id: String,
    version: u8,
    author: String,
    topic: String,
    kind: String,
    #[serde(serialize_with = "serialize_u64")]
    counter: u64,
    #[serde(serialize_with = "serialize_u64")]
    time_ms: u64,
    deps: Vec<String>,
    #[serde(serialize_with = "serialize_bytes")]
    body: Vec<u8>,
    #[serde(serialize_with = "serialize_bytes")]
    signature: [u8; 64],
}

/// Decodes canonical op bytes and verifies the signature; a plain object with every field.
///
/// Errors: `BAD_INPUT`, `MALFORMED`, `TRAILING_BYTES`, `UNSUPPORTED_VERSION`, `BAD_TOPIC`,
/// `BAD_KIND`, `LIMIT_EXCEEDED`, `NON_CANONICAL`, `BAD_PUBLIC_KEY`, `BAD_SIGNATURE`.
#[wasm_bindgen(js_name = decodeOp, unchecked_return_type = "DecodedOp")]
pub fn decode_op(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
) -> Result<JsValue, JsValue> {
    let op = SignedOp::decode(&bytes_arg("bytes", bytes)?)?;
    let decoded = DecodedOp {
        id: op.id().to_string(),
        version: OP_VERSION,
        author: op.author().to_string(),
        topic: op.topic().to_owned(),
        kind: op.kind().to_owned(),
        counter: op.counter(),
        time_ms: op.time_ms(),
        deps: op.deps().iter().map(OpId::to_string).collect(),
        body: op.body().to_vec(),
        signature: *op.signature(),
    };
    to_js(&decoded)
}

/// The id (64 lowercase hex characters) of canonical op bytes. Checks the encoding, not the
/// signature: use `decodeOp` to verify.
///
/// Errors: those of `decodeOp` except `BAD_SIGNATURE`.
#[wasm_bindgen(js_name = opId)]
pub fn op_id(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
) -> Result<String, JsValue> {
    Ok(SignedOp::decode_unverified(&bytes_arg("bytes", bytes)?)?
        .id()
        .to_string())
}
