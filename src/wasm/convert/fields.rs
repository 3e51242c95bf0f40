//! Input records read field by field: the plain objects the hot entry points take (an op draft,
//! a replica config), without a serde `Deserialize` derive.
//!
//! Why not serde-wasm-bindgen here: each derived struct brings its own copy of the deserializer's
//! struct and map-access code, field visitor and error formatting into the `.wasm` (about 3 KB
//! gzip for these two records, BENCHMARKS.md "Package size"). The convention is the same (see
//! the module above): unknown fields are refused, a field that is absent or `undefined` takes its
//! default, anything else of the wrong type is `BAD_INPUT` naming the record and the field.

use js_sys::{Array, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use super::super::error::bad_input;
use super::args::{bytes_arg, only_keys, u64_arg};

/// A plain object argument whose keys were checked against a list.
pub(crate) struct Fields<'a> {
    /// What the record is, for error messages (`op draft`, `config`).
    what: &'a str,
    object: &'a JsValue,
}

impl<'a> Fields<'a> {
    /// `object` as a record named `what` with no keys outside `allowed`; anything but a
    /// non-null object is `BAD_INPUT`.
    pub(crate) fn new(
        what: &'a str,
        object: &'a JsValue,
        allowed: &[&str],
    ) -> Result<Self, JsValue> {
        if !object.is_object() {
            return Err(bad_input(format!("{what} must be an object")));
        }
        only_keys(what, object, allowed)?;
        Ok(Fields { what, object })
    }

    /// The field's value, `None` when absent or `undefined`.
    fn get(&self, name: &str) -> Result<Option<JsValue>, JsValue> {
        let value = Reflect::get(self.object, &JsValue::from_str(name))
            .map_err(|_| bad_input(format!("{}: cannot read field `{name}`", self.what)))?;
        Ok((!value.is_undefined()).then_some(value))
    }

    fn missing(&self, name: &str) -> JsValue {
        bad_input(format!("{}: missing field `{name}`", self.what))
    }

    fn wrong(&self, name: &str, expected: &str) -> JsValue {
        bad_input(format!("{}: field `{name}` must be {expected}", self.what))
    }

    /// A string field, `None` when absent; `null` counts as absent only if `null_is_absent`.
    fn string_or(&self, name: &str, null_is_absent: bool) -> Result<Option<String>, JsValue> {
        match self.get(name)? {
            None => Ok(None),
            Some(value) if null_is_absent && value.is_null() => Ok(None),
            Some(value) => value
                .as_string()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "a string")),
        }
    }

    /// A required string field.
    pub(crate) fn string(&self, name: &str) -> Result<String, JsValue> {
        self.string_or(name, false)?
            .ok_or_else(|| self.missing(name))
    }

    /// An optional string field (`null` is absent).
    pub(crate) fn opt_string(&self, name: &str) -> Result<Option<String>, JsValue> {
        self.string_or(name, true)
    }

    /// A `u64` field when present (a safe non-negative integer number or a `BigInt`); `null`
    /// counts as absent only if `null_is_absent`.
    fn u64_or(&self, name: &str, null_is_absent: bool) -> Result<Option<u64>, JsValue> {
        match self.get(name)? {
            None => Ok(None),
            Some(value) if null_is_absent && value.is_null() => Ok(None),
            Some(value) => u64_arg(&format!("{}: field `{name}`", self.what), &value).map(Some),
        }
    }

    /// A required `u64` field.
    pub(crate) fn u64(&self, name: &str) -> Result<u64, JsValue> {
        self.u64_or(name, false)?.ok_or_else(|| self.missing(name))
    }

    /// A `u64` field that is `default` when absent (`null` is `BAD_INPUT`).
    pub(crate) fn u64_or_default(&self, name: &str, default: u64) -> Result<u64, JsValue> {
        Ok(self.u64_or(name, false)?.unwrap_or(default))
    }

    /// An optional `u64` field (`null` is absent).
    pub(crate) fn opt_u64(&self, name: &str) -> Result<Option<u64>, JsValue> {
        self.u64_or(name, true)
    }

    /// An optional `u32` field (`null` is absent): a non-negative integer number up to 2^32 − 1.
    pub(crate) fn opt_u32(&self, name: &str) -> Result<Option<u32>, JsValue> {
        match self.get(name)? {
            None => Ok(None),
            Some(value) if value.is_null() => Ok(None),
            Some(value) => match value.as_f64() {
                Some(n) if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) => {
                    Ok(Some(n as u32))
                }
                _ => Err(self.wrong(name, "an integer from 0 to 2^32 - 1")),
            },
        }
    }

    /// An optional boolean field (`null` is absent).
    #[cfg(feature = "doc")]
    pub(crate) fn opt_bool(&self, name: &str) -> Result<Option<bool>, JsValue> {
        match self.get(name)? {
            None => Ok(None),
            Some(value) if value.is_null() => Ok(None),
            Some(value) => value
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "a boolean")),
        }
    }

    /// A required bytes field: a `Uint8Array` or an `ArrayBuffer` (as serde-wasm-bindgen read
    /// them), copied.
    pub(crate) fn bytes(&self, name: &str) -> Result<Vec<u8>, JsValue> {
        self.opt_bytes(name)?.ok_or_else(|| self.missing(name))
    }

    /// A bytes field, `None` when absent (`null` is `BAD_INPUT`).
    pub(crate) fn opt_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, JsValue> {
        match self.get(name)? {
            None => Ok(None),
            Some(value) => match value.dyn_ref::<js_sys::ArrayBuffer>() {
                Some(buffer) => Ok(Some(js_sys::Uint8Array::new(buffer).to_vec())),
                None => bytes_arg(&format!("{}: field `{name}`", self.what), &value).map(Some),
            },
        }
    }

    /// An array field's elements, `None` when absent; anything but an array is `BAD_INPUT`.
    pub(crate) fn array(&self, name: &str) -> Result<Option<Array>, JsValue> {
        match self.get(name)? {
            None => Ok(None),
            Some(value) if Array::is_array(&value) => Ok(Some(value.unchecked_into())),
            Some(_) => Err(self.wrong(name, "an array")),
        }
    }

    /// An array-of-strings field, empty when absent.
    pub(crate) fn strings(&self, name: &str) -> Result<Vec<String>, JsValue> {
        self.strings_or(name, false)
    }

    /// A required array-of-strings field.
    pub(crate) fn required_strings(&self, name: &str) -> Result<Vec<String>, JsValue> {
        self.strings_or(name, true)
    }

    fn strings_or(&self, name: &str, required: bool) -> Result<Vec<String>, JsValue> {
        let Some(array) = self.array(name)? else {
            return match required {
                true => Err(self.missing(name)),
                false => Ok(Vec::new()),
            };
        };
        array
            .iter()
            .map(|item| {
                item.as_string()
                    .ok_or_else(|| self.wrong(name, "an array of strings"))
            })
            .collect()
    }
}
