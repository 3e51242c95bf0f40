//! Document arguments: values stored in a document (JSON plus `Uint8Array`) and text edits.

use wasm_bindgen::prelude::*;

use super::super::error::bad_input;
use super::args::index_number;
use crate::doc::DocValue;

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
