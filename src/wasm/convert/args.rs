//! JS arguments into Rust values, checked: a value of the wrong type is `BAD_INPUT` naming the
//! argument, never a wasm-bindgen exception without a code.

use js_sys::{Array, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};

use super::super::error::bad_input;
use crate::identity::{decode_lower_hex, AgentId};

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

/// A size or index argument: a JS number that is a safe non-negative integer (up to
/// `Number.MAX_SAFE_INTEGER`); anything else is `BAD_INPUT`.
pub(crate) fn safe_u64(what: &str, value: &JsValue) -> Result<u64, JsValue> {
    let value = number_arg(what, value)?;
    if value.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(&value) {
        Ok(value as u64)
    } else {
        Err(bad_input(format!(
            "{what} must be a safe non-negative integer, got {value}"
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

/// A `u64` from a JS number (a non-negative safe integer) or a `BigInt`.
pub(crate) fn u64_arg(what: &str, value: &JsValue) -> Result<u64, JsValue> {
    let wrong = || bad_input(format!("{what} must be a non-negative integer below 2^64"));
    match value.as_f64() {
        Some(n) if n.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(&n) => Ok(n as u64),
        Some(_) => Err(wrong()),
        None if value.is_bigint() => u64::try_from(value.clone()).map_err(|_| wrong()),
        None => Err(wrong()),
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

/// An index or length argument: a JS number (anything else is `BAD_INPUT`), checked by
/// `index_number`.
#[cfg(feature = "doc")]
pub(crate) fn index_arg(what: &'static str, value: &JsValue) -> Result<u32, JsValue> {
    index_number(what, number_arg(what, value)?)
}

/// A JS number that must be a non-negative integer index or length. Fractions, NaN and negative
/// numbers are `BAD_INPUT`; integers past `u32::MAX` are `OUT_OF_RANGE` (no sequence is that long).
#[cfg(feature = "doc")]
pub(crate) fn index_number(what: &'static str, value: f64) -> Result<u32, JsValue> {
    if !value.is_finite() || value < 0.0 || value.fract() != 0.0 {
        return Err(bad_input(format!(
            "{what} must be a non-negative integer, got {value}"
        )));
    }
    if value > f64::from(u32::MAX) {
        return Err(crate::error::Error::OutOfRange {
            what,
            index: value as u64,
            length: 0,
            len: u64::from(u32::MAX),
        }
        .into());
    }
    Ok(value as u32)
}

/// A time in ms if given (`what` names it), else `Date.now()`: time enters the core only as an
/// argument. `undefined` and `null` mean "now"; anything but a non-negative number is `BAD_INPUT`.
#[cfg(feature = "doc")]
pub(crate) fn now_arg(what: &str, now_ms: &JsValue) -> Result<u64, JsValue> {
    match optional_number_arg(what, now_ms)? {
        Some(ms) if ms.is_finite() && ms >= 0.0 => Ok(ms as u64),
        Some(ms) => Err(bad_input(format!(
            "{what} must be a non-negative number, got {ms}"
        ))),
        None => Ok(js_sys::Date::now() as u64),
    }
}
