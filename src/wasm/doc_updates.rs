//! Free functions on Yjs updates as bytes: `mergeUpdates`, `diffUpdate`, and friends.

use wasm_bindgen::prelude::*;

use super::convert::{bytes_arg, bytes_array_arg};
use crate::doc;

/// Merges v1 updates into one (`Y.mergeUpdates`).
#[wasm_bindgen(js_name = mergeUpdates)]
pub fn merge_updates(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array[]")] updates: &JsValue,
) -> Result<Vec<u8>, JsValue> {
    Ok(doc::merge_updates(&bytes_array_arg("updates", updates)?)?)
}

/// Merges v2 updates into one (`Y.mergeUpdatesV2`).
#[wasm_bindgen(js_name = mergeUpdatesV2)]
pub fn merge_updates_v2(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array[]")] updates: &JsValue,
) -> Result<Vec<u8>, JsValue> {
    Ok(doc::merge_updates_v2(&bytes_array_arg(
        "updates", updates,
    )?)?)
}

/// The part of a v1 update a peer with `stateVector` lacks (`Y.diffUpdate`).
#[wasm_bindgen(js_name = diffUpdate)]
pub fn diff_update(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] update: &JsValue,
    #[wasm_bindgen(js_name = stateVector, unchecked_param_type = "Uint8Array")]
    state_vector: &JsValue,
) -> Result<Vec<u8>, JsValue> {
    Ok(doc::diff_update(
        &bytes_arg("update", update)?,
        &bytes_arg("stateVector", state_vector)?,
    )?)
}

/// The part of a v2 update a peer with `stateVector` lacks (`Y.diffUpdateV2`).
#[wasm_bindgen(js_name = diffUpdateV2)]
pub fn diff_update_v2(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] update: &JsValue,
    #[wasm_bindgen(js_name = stateVector, unchecked_param_type = "Uint8Array")]
    state_vector: &JsValue,
) -> Result<Vec<u8>, JsValue> {
    Ok(doc::diff_update_v2(
        &bytes_arg("update", update)?,
        &bytes_arg("stateVector", state_vector)?,
    )?)
}

/// The state vector of what a v1 update contains (`Y.encodeStateVectorFromUpdate`).
#[wasm_bindgen(js_name = encodeStateVectorFromUpdate)]
pub fn encode_state_vector_from_update(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] update: &JsValue,
) -> Result<Vec<u8>, JsValue> {
    Ok(doc::state_vector_from_update(&bytes_arg(
        "update", update,
    )?)?)
}

/// Compaction: v1 updates integrated into a fresh garbage-collected document, re-encoded as one
/// snapshot (smaller than `mergeUpdates` when content was deleted).
#[wasm_bindgen(js_name = compactUpdates)]
pub fn compact_updates(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array[]")] updates: &JsValue,
) -> Result<Vec<u8>, JsValue> {
    Ok(doc::compact_updates(&bytes_array_arg("updates", updates)?)?)
}
