//! The JS `SignedDoc` class and `signDocUpdate`: documents whose updates are signed ops.

use std::collections::BTreeSet;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::convert::now_arg;
use super::convert::{bytes_arg, number_arg, string_arg};
use super::doc::JsDoc;
use super::error::bad_input;
use super::identity::JsIdentity;
use crate::doc::{sign_update, SignedDoc, MAX_WRITERS};
use crate::entry::Entry;
use crate::error::Error;
use crate::identity::AgentId;

/// Signs a Yjs v1 update as a `doc.update` op of `topic`; returns the op bytes.
#[wasm_bindgen(js_name = signDocUpdate)]
pub fn sign_doc_update(
    identity: &JsIdentity,
    #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "number")] counter: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] update: &JsValue,
    #[wasm_bindgen(js_name = timeMs, unchecked_optional_param_type = "number | null")]
    time_ms: &JsValue,
) -> Result<Vec<u8>, JsValue> {
    let topic = string_arg("topic", topic)?;
    let counter = number_arg("counter", counter)?;
    if !(counter.is_finite() && counter >= 0.0 && counter.fract() == 0.0) {
        return Err(bad_input("counter must be a non-negative integer"));
    }
    let op = sign_update(
        &identity.0,
        &topic,
        counter as u64,
        now_arg("timeMs", time_ms)?,
        &bytes_arg("update", update)?,
    )?;
    Ok(op.as_bytes().to_vec())
}

/// The agent ids of `writers`: an array of strings, or `undefined`/`null` for anyone.
fn writers_arg(writers: &JsValue) -> Result<Option<BTreeSet<AgentId>>, JsValue> {
    if writers.is_undefined() || writers.is_null() {
        return Ok(None);
    }
    if !js_sys::Array::is_array(writers) {
        return Err(bad_input("writers must be an array of agent ids"));
    }
    let ids: &js_sys::Array = writers.unchecked_ref();
    // Counted before any is read: the core refuses a larger set anyway.
    if ids.length() as usize > MAX_WRITERS {
        return Err(Error::LimitExceeded {
            what: "document writers",
            limit: MAX_WRITERS,
            got: ids.length() as usize,
        }
        .into());
    }
    ids.iter()
        .enumerate()
        .map(|(i, id)| Ok(string_arg(&format!("writers[{i}]"), &id)?.parse::<AgentId>()?))
        .collect::<Result<BTreeSet<_>, JsValue>>()
        .map(Some)
}

/// A document topic's state: the merge of its verified `doc.update` ops.
#[wasm_bindgen(js_name = SignedDoc)]
pub struct JsSignedDoc(SignedDoc);

#[wasm_bindgen(js_class = SignedDoc)]
impl JsSignedDoc {
    /// A document for `topic`; with `writers` (agent ids), only their ops are accepted.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "string[] | null")] writers: &JsValue,
    ) -> Result<JsSignedDoc, JsValue> {
        let topic = string_arg("topic", topic)?;
        Ok(JsSignedDoc(SignedDoc::new(&topic, writers_arg(writers)?)?))
    }

    /// Verifies signed op bytes and merges the update; `false` if already applied. Throws
    /// (`BAD_SIGNATURE`, `NOT_A_WRITER`, `BAD_TOPIC`, `BAD_KIND`, `BAD_UPDATE`, ...) and applies
    /// nothing when any check fails.
    #[wasm_bindgen(js_name = applyOp)]
    pub fn apply_op(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] op: &JsValue,
    ) -> Result<bool, JsValue> {
        Ok(self.0.apply_bytes(&bytes_arg("op", op)?)?)
    }

    /// Merges the `doc.update` op of a delivered entry, as it comes: the entry's canonical bytes
    /// or the client's delivered entry object (`{ bytes }`, e.g. an item of
    /// `client.subscribe(topic)`). Verifies the op's signature; `false` if already applied.
    /// Throws as `applyOp`, and `MALFORMED` / `UNSUPPORTED_VERSION` for bytes that are not an
    /// entry.
    #[wasm_bindgen(js_name = applyEntry)]
    pub fn apply_entry(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array | { bytes: Uint8Array }")]
        entry: &JsValue,
    ) -> Result<bool, JsValue> {
        let bytes = if entry.is_object() && !entry.is_instance_of::<js_sys::Uint8Array>() {
            let field = js_sys::Reflect::get(entry, &JsValue::from_str("bytes"))
                .map_err(|_| bad_input("entry must be a Uint8Array or an object with bytes"))?;
            bytes_arg("entry.bytes", &field)?
        } else {
            bytes_arg("entry", entry)?
        };
        let entry = Entry::decode(&bytes)?;
        Ok(self.0.apply_entry(&entry)?)
    }

    /// The merged document (a handle sharing it; edits on it are local and unsigned).
    #[wasm_bindgen(getter)]
    pub fn doc(&self) -> JsDoc {
        JsDoc::sharing(self.0.doc())
    }

    /// The merged state as one compacted v1 update.
    pub fn compact(&self) -> Result<Vec<u8>, JsValue> {
        Ok(self.0.compact()?)
    }
}
