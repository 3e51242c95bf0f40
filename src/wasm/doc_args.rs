//! Argument and result conversions shared by the document bindings.

use wasm_bindgen::prelude::*;

use super::convert::{number_arg, optional_number_arg};
use super::error::bad_input;
use crate::doc::DocValue;
use crate::error::Error;

/// An index or length argument: a JS number (anything else is `BAD_INPUT`), checked by
/// `index_number`.
pub(crate) fn index_arg(what: &'static str, value: &JsValue) -> Result<u32, JsValue> {
    index_number(what, number_arg(what, value)?)
}

/// A JS number that must be a non-negative integer index or length. Fractions, NaN and negative
/// numbers are `BAD_INPUT`; integers past `u32::MAX` are `OUT_OF_RANGE` (no sequence is that long).
fn index_number(what: &'static str, value: f64) -> Result<u32, JsValue> {
    if !value.is_finite() || value < 0.0 || value.fract() != 0.0 {
        return Err(bad_input(format!(
            "{what} must be a non-negative integer, got {value}"
        )));
    }
    if value > f64::from(u32::MAX) {
        return Err(Error::OutOfRange {
            what,
            index: value as u64,
            length: 0,
            len: u64::from(u32::MAX),
        }
        .into());
    }
    Ok(value as u32)
}

/// A JS value stored in a document: JSON values and `Uint8Array`s (undefined reads as null).
pub(crate) fn value_arg(what: &str, value: JsValue) -> Result<DocValue, JsValue> {
    if value.is_function() || value.is_symbol() || value.is_bigint() {
        return Err(bad_input(format!(
            "{what} must be JSON-like (null, boolean, number, string, Uint8Array, array, object)"
        )));
    }
    serde_wasm_bindgen::from_value(value).map_err(|e| {
        bad_input(format!(
            "{what}: {}",
            e.to_string().trim_start_matches("Error: ")
        ))
    })
}

/// Values of an array argument.
pub(crate) fn values_arg(what: &str, value: JsValue) -> Result<Vec<DocValue>, JsValue> {
    if !js_sys::Array::is_array(&value) {
        return Err(bad_input(format!("{what} must be an array")));
    }
    match value_arg(what, value)? {
        DocValue::Array(items) => Ok(items),
        _ => Err(bad_input(format!("{what} must be an array"))),
    }
}

/// A Rust value as a plain JS value: objects (not `Map`s), `Uint8Array` for bytes.
pub(crate) fn to_js<T: serde::Serialize + ?Sized>(value: &T) -> Result<JsValue, JsValue> {
    let serializer = serde_wasm_bindgen::Serializer::new()
        .serialize_maps_as_objects(true)
        .serialize_missing_as_null(true);
    value
        .serialize(&serializer)
        .map_err(|e| Error::BadInput(format!("cannot convert to JS: {e}")).into())
}

/// An array of `Uint8Array`s.
pub(crate) fn byte_arrays(items: &[Vec<u8>]) -> js_sys::Array {
    items
        .iter()
        .map(|bytes| JsValue::from(js_sys::Uint8Array::from(bytes.as_slice())))
        .collect()
}

/// A time in ms if given (`what` names it), else `Date.now()`: time enters the core only as an
/// argument. `undefined` and `null` mean "now"; anything but a non-negative number is `BAD_INPUT`.
pub(crate) fn now_arg(what: &str, now_ms: &JsValue) -> Result<u64, JsValue> {
    match optional_number_arg(what, now_ms)? {
        Some(ms) if ms.is_finite() && ms >= 0.0 => Ok(ms as u64),
        Some(ms) => Err(bad_input(format!(
            "{what} must be a non-negative number, got {ms}"
        ))),
        None => Ok(js_sys::Date::now() as u64),
    }
}

/// Reads `doc.applyEdits` edits: `[index, deleteCount, insert?]` triples or
/// `{ index, delete?, insert? }` objects. Read by hand, not through serde: a trace has hundreds of
/// thousands of them.
pub(crate) fn edits_arg(edits: &JsValue) -> Result<Vec<crate::doc::TextEdit>, JsValue> {
    use wasm_bindgen::JsCast;
    if !js_sys::Array::is_array(edits) {
        return Err(bad_input("edits must be an array"));
    }
    let edits: &js_sys::Array = edits.unchecked_ref();
    let number = |what: &'static str, v: JsValue| -> Result<u32, JsValue> {
        match v.as_f64() {
            Some(n) => index_number(what, n),
            None if v.is_undefined() && what == "delete" => Ok(0),
            None => Err(bad_input(format!("edit {what} must be a number"))),
        }
    };
    let text = |v: JsValue| -> Result<String, JsValue> {
        match v.as_string() {
            Some(s) => Ok(s),
            None if v.is_undefined() || v.is_null() => Ok(String::new()),
            None => Err(bad_input("edit insert must be a string")),
        }
    };
    let mut out = Vec::with_capacity(edits.length() as usize);
    for item in edits.iter() {
        let edit = if js_sys::Array::is_array(&item) {
            let triple: &js_sys::Array = item.unchecked_ref();
            crate::doc::TextEdit {
                index: number("index", triple.get(0))?,
                delete: number("delete", triple.get(1))?,
                insert: text(triple.get(2))?,
            }
        } else if item.is_object() {
            let get = |key: &str| js_sys::Reflect::get(&item, &JsValue::from_str(key));
            crate::doc::TextEdit {
                index: number("index", get("index")?)?,
                delete: number("delete", get("delete")?)?,
                insert: text(get("insert")?)?,
            }
        } else {
            return Err(bad_input("each edit must be an array or an object"));
        };
        out.push(edit);
    }
    Ok(out)
}
