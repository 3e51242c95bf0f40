//! Conversions shared by the replica and election bindings.

use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};

use super::error::bad_input;
use crate::identity::{decode_lower_hex, AgentId};

/// Largest integer a JS number holds exactly.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A `u64` from a JS number (a non-negative safe integer) or a `BigInt`.
pub(crate) fn u64_arg(what: &str, value: &JsValue) -> Result<u64, JsValue> {
    serde_wasm_bindgen::from_value::<u64>(value.clone())
        .map_err(|_| bad_input(format!("{what} must be a non-negative integer below 2^64")))
}

/// A `u64` as a JS number when safe, a `BigInt` otherwise.
pub(crate) fn u64_value(value: u64) -> JsValue {
    if value <= MAX_SAFE_INTEGER {
        JsValue::from_f64(value as f64)
    } else {
        JsValue::from(value)
    }
}

/// A validated agent id from its text form (`BAD_AGENT_ID`, `BAD_PUBLIC_KEY`).
pub(crate) fn agent_arg(text: &str) -> Result<AgentId, JsValue> {
    Ok(text.parse::<AgentId>()?)
}

/// 32 id bytes from 64 lowercase hex characters, not checked to be a curve point.
pub(crate) fn id_bytes(what: &str, text: &str) -> Result<[u8; 32], JsValue> {
    let bytes = decode_lower_hex(text, 32)
        .ok_or_else(|| bad_input(format!("{what} must be 64 lowercase hex characters")))?;
    let mut id = [0u8; 32];
    id.copy_from_slice(&bytes);
    Ok(id)
}

/// A plain JS object (or array) for a serializable value: `null` for `None`, plain objects for
/// maps, numbers for safe integers and `BigInt` above.
pub(crate) fn plain<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| bad_input(format!("cannot convert to JS: {e}")))
}

/// Refuses an object argument with keys outside `allowed` (serde-wasm-bindgen reads only the
/// fields it knows, so a misspelt option would otherwise be ignored silently).
pub(crate) fn only_keys(what: &str, object: &JsValue, allowed: &[&str]) -> Result<(), JsValue> {
    let keys = js_sys::Object::keys(object.unchecked_ref::<js_sys::Object>());
    for key in keys.iter() {
        let key = key.as_string().unwrap_or_default();
        if !allowed.contains(&key.as_str()) {
            return Err(bad_input(format!(
                "{what}: unknown field {key:?}, expected one of {allowed:?}"
            )));
        }
    }
    Ok(())
}
