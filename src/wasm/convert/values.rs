//! Rust values into JS values, by the package's one convention (see the module above): records
//! are plain objects, bytes `Uint8Array`s, 64-bit integers numbers up to
//! `Number.MAX_SAFE_INTEGER` and `BigInt`s above, a missing value `null`.

use js_sys::{Array, Uint8Array};
use serde::ser::Serializer;
use serde::Serialize;
use wasm_bindgen::JsValue;

use super::super::error::bad_input;

/// A Rust value as a JS value, the one way every binding converts a result: maps and structs
/// become plain objects (not `Map`s), `None` and `()` become `null`, fields marked
/// `serialize_with = "serialize_bytes"` become `Uint8Array`s and those marked
/// `serialize_with = "serialize_u64"` numbers or `BigInt`s (a bare `u64` past 2^53 is an error
/// here, never a rounded number).
pub(crate) fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
    let serializer = serde_wasm_bindgen::Serializer::new()
        .serialize_maps_as_objects(true)
        .serialize_missing_as_null(true);
    value
        .serialize(&serializer)
        .map_err(|e| bad_input(format!("cannot convert to JS: {e}")))
}

/// A `u64` as a JS number when safe, a `BigInt` otherwise (for values set field by field).
pub(crate) fn u64_value(value: u64) -> JsValue {
    if value <= MAX_SAFE_INTEGER {
        JsValue::from_f64(value as f64)
    } else {
        JsValue::from(value)
    }
}

/// Byte strings as a JS array of `Uint8Array`s.
pub(crate) fn byte_arrays<B: AsRef<[u8]>>(items: &[B]) -> Array {
    items
        .iter()
        .map(|bytes| JsValue::from(Uint8Array::from(bytes.as_ref())))
        .collect()
}

/// Largest integer a JS number holds exactly (`Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Serializes a `u64` as a JS number when it is a safe integer, as a `BigInt` otherwise, so
/// ordinary counters and times stay plain numbers and no value ever loses precision.
pub(crate) fn serialize_u64<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    if *value <= MAX_SAFE_INTEGER {
        serializer.serialize_u64(*value)
    } else {
        // serde-wasm-bindgen turns 128-bit integers into BigInt.
        serializer.serialize_u128(u128::from(*value))
    }
}

/// Serializes bytes as a `Uint8Array`.
pub(crate) fn serialize_bytes<S: Serializer>(
    value: &impl AsRef<[u8]>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(value.as_ref())
}
