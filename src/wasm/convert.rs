//! Checked conversions of JS arguments, shared by every binding.

use js_sys::{Array, Uint8Array};
use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use wasm_bindgen::{JsCast, JsValue};

use super::error::bad_input;

/// The bytes of a `Uint8Array` argument (a Node `Buffer` is one), copied into wasm memory.
/// Anything else is `BAD_INPUT` naming the argument.
pub(crate) fn bytes_arg(what: &str, value: &JsValue) -> Result<Vec<u8>, JsValue> {
    match value.dyn_ref::<Uint8Array>() {
        Some(array) => Ok(array.to_vec()),
        None => Err(bad_input(format!("{what} must be a Uint8Array"))),
    }
}

/// A string argument. wasm-bindgen does not check the type of a `&str` parameter in a release
/// build: `null` throws a `TypeError` without a code, and a number or a plain object makes its
/// allocator trap (a `RuntimeError` that may poison the instance). So string parameters arrive
/// as `JsValue` and come through here: anything but a string is `BAD_INPUT` naming the argument.
pub(crate) fn string_arg(what: &str, value: &JsValue) -> Result<String, JsValue> {
    value
        .as_string()
        .ok_or_else(|| bad_input(format!("{what} must be a string")))
}

/// A number argument, for the same reason: wasm-bindgen converts an `f64` or `u32` parameter
/// with unary `+` (a `BigInt` throws a `TypeError` without a code) or not at all. Anything but a
/// JS number is `BAD_INPUT`; the caller checks the range.
pub(crate) fn number_arg(what: &str, value: &JsValue) -> Result<f64, JsValue> {
    value
        .as_f64()
        .ok_or_else(|| bad_input(format!("{what} must be a number")))
}

/// An optional number argument: `undefined` and `null` are `None`, anything but a number is
/// `BAD_INPUT`. (Only the document bindings take one.)
#[cfg(feature = "doc")]
pub(crate) fn optional_number_arg(what: &str, value: &JsValue) -> Result<Option<f64>, JsValue> {
    if value.is_undefined() || value.is_null() {
        Ok(None)
    } else {
        number_arg(what, value).map(Some)
    }
}

/// A boolean argument: `true` or `false`; anything else is `BAD_INPUT`.
pub(crate) fn bool_arg(what: &str, value: &JsValue) -> Result<bool, JsValue> {
    value
        .as_bool()
        .ok_or_else(|| bad_input(format!("{what} must be a boolean")))
}

/// A time in milliseconds or a sequence number from a JS number: finite, not negative, at most
/// 2^53 (fractions are dropped); anything else is `BAD_INPUT`.
pub(crate) fn ms_arg(what: &str, value: &JsValue) -> Result<u64, JsValue> {
    let value = number_arg(what, value)?;
    if value.is_finite() && (0.0..=9_007_199_254_740_992.0).contains(&value) {
        Ok(value as u64)
    } else {
        Err(bad_input(format!(
            "{what} must be a finite number from 0 to 2^53, got {value}"
        )))
    }
}

/// The elements of an array argument, each converted by [`bytes_arg`].
pub(crate) fn bytes_array_arg(what: &str, value: &JsValue) -> Result<Vec<Vec<u8>>, JsValue> {
    if !Array::is_array(value) {
        return Err(bad_input(format!("{what} must be an array of Uint8Array")));
    }
    let array: &Array = value.unchecked_ref();
    array
        .iter()
        .enumerate()
        .map(|(index, item)| bytes_arg(&format!("{what}[{index}]"), &item))
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

/// Deserializes bytes from a `Uint8Array` (or `ArrayBuffer`) only, refusing plain arrays so one
/// type is accepted everywhere bytes are.
pub(crate) fn deserialize_bytes<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<u8>, D::Error> {
    struct BytesVisitor;
    impl Visitor<'_> for BytesVisitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("a Uint8Array")
        }
        fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }
        fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }
    }
    deserializer.deserialize_byte_buf(BytesVisitor)
}
