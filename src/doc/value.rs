//! The plain value tree documents read out and take in: JSON plus byte strings.
//!
//! Yjs stores map entries and array elements as "any" values (lib0's `writeAny`): null, booleans,
//! numbers, strings, byte arrays, arrays and string-keyed objects. [`DocValue`] is that set, owned
//! by this crate so the yrs types never leak into the public API. Nested shared types (a `Y.Map`
//! inside a `Y.Array`, made by a Yjs peer) are read as their JSON view.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use yrs::any::Number;
use yrs::Any;

use crate::error::{Error, Result};

/// Deepest nesting of arrays and objects accepted in a value written to a document.
pub const MAX_VALUE_DEPTH: usize = 64;

/// A JSON-like value stored in a document map or array, or read out of one.
///
/// Serializes as the obvious JSON (bytes as a byte string: a `Uint8Array` through
/// serde-wasm-bindgen). Numbers are `f64`, as in JavaScript.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum DocValue {
    /// `null` (Yjs `undefined` reads as `null` too).
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A number (JavaScript semantics: `f64`).
    Number(f64),
    /// A string.
    String(String),
    /// A byte string (a `Uint8Array` in JS).
    Bytes(Vec<u8>),
    /// An array.
    Array(Vec<DocValue>),
    /// An object with string keys (sorted, so reads are deterministic).
    Map(BTreeMap<String, DocValue>),
}

impl DocValue {
    /// Checks the nesting depth (at most [`MAX_VALUE_DEPTH`]) so that writing and reading the
    /// value cannot overflow the stack.
    pub fn check_depth(&self) -> Result<()> {
        fn depth(value: &DocValue, at: usize) -> Result<()> {
            if at > MAX_VALUE_DEPTH {
                return Err(Error::LimitExceeded {
                    what: "value nesting depth",
                    limit: MAX_VALUE_DEPTH,
                    got: at,
                });
            }
            match value {
                DocValue::Array(items) => items.iter().try_for_each(|v| depth(v, at + 1)),
                DocValue::Map(entries) => entries.values().try_for_each(|v| depth(v, at + 1)),
                _ => Ok(()),
            }
        }
        depth(self, 0)
    }

    /// The text, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            DocValue::String(text) => Some(text),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            DocValue::Number(n) => Some(*n),
            _ => None,
        }
    }
}

impl From<&str> for DocValue {
    fn from(text: &str) -> Self {
        DocValue::String(text.to_owned())
    }
}
impl From<String> for DocValue {
    fn from(text: String) -> Self {
        DocValue::String(text)
    }
}
impl From<f64> for DocValue {
    fn from(n: f64) -> Self {
        DocValue::Number(n)
    }
}
impl From<bool> for DocValue {
    fn from(b: bool) -> Self {
        DocValue::Bool(b)
    }
}

impl From<&DocValue> for Any {
    fn from(value: &DocValue) -> Any {
        match value {
            DocValue::Null => Any::Null,
            DocValue::Bool(b) => Any::Bool(*b),
            // Integers in the safe range travel as lib0 integers, as Yjs writes them.
            DocValue::Number(n) => Any::Number(Number::try_i64(*n)),
            DocValue::String(s) => Any::String(Arc::from(s.as_str())),
            DocValue::Bytes(b) => Any::Buffer(Arc::from(b.as_slice())),
            DocValue::Array(items) => Any::Array(items.iter().map(Any::from).collect()),
            DocValue::Map(entries) => Any::Map(Arc::new(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), Any::from(v)))
                    .collect::<HashMap<_, _>>(),
            )),
        }
    }
}

impl From<&Any> for DocValue {
    fn from(any: &Any) -> DocValue {
        match any {
            Any::Null | Any::Undefined => DocValue::Null,
            Any::Bool(b) => DocValue::Bool(*b),
            Any::Number(Number::Int(i)) => DocValue::Number(*i as f64),
            Any::Number(Number::Float(f)) => DocValue::Number(*f),
            Any::String(s) => DocValue::String(s.to_string()),
            Any::Buffer(b) => DocValue::Bytes(b.to_vec()),
            Any::Array(items) => DocValue::Array(items.iter().map(DocValue::from).collect()),
            Any::Map(entries) => DocValue::Map(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), DocValue::from(v)))
                    .collect(),
            ),
        }
    }
}

impl Serialize for DocValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> core::result::Result<S::Ok, S::Error> {
        match self {
            DocValue::Null => serializer.serialize_unit(),
            DocValue::Bool(b) => serializer.serialize_bool(*b),
            DocValue::Number(n) => serializer.serialize_f64(*n),
            DocValue::String(s) => serializer.serialize_str(s),
            DocValue::Bytes(b) => serializer.serialize_bytes(b),
            DocValue::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            DocValue::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

struct DocValueVisitor;

impl<'de> Visitor<'de> for DocValueVisitor {
    type Value = DocValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null, a boolean, number, string, byte array, array or object")
    }
    fn visit_unit<E: de::Error>(self) -> core::result::Result<DocValue, E> {
        Ok(DocValue::Null)
    }
    fn visit_none<E: de::Error>(self) -> core::result::Result<DocValue, E> {
        Ok(DocValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> core::result::Result<DocValue, D::Error> {
        DocValue::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> core::result::Result<DocValue, E> {
        Ok(DocValue::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> core::result::Result<DocValue, E> {
        Ok(DocValue::Number(n as f64))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> core::result::Result<DocValue, E> {
        Ok(DocValue::Number(n as f64))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> core::result::Result<DocValue, E> {
        Ok(DocValue::Number(n))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> core::result::Result<DocValue, E> {
        Ok(DocValue::String(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> core::result::Result<DocValue, E> {
        Ok(DocValue::String(s))
    }
    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> core::result::Result<DocValue, E> {
        Ok(DocValue::Bytes(b.to_vec()))
    }
    fn visit_byte_buf<E: de::Error>(self, b: Vec<u8>) -> core::result::Result<DocValue, E> {
        Ok(DocValue::Bytes(b))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> core::result::Result<DocValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(DocValue::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> core::result::Result<DocValue, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<String, DocValue>()? {
            entries.insert(k, v);
        }
        Ok(DocValue::Map(entries))
    }
}

impl<'de> Deserialize<'de> for DocValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> core::result::Result<DocValue, D::Error> {
        d.deserialize_any(DocValueVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_round_trip_and_json() {
        let value: DocValue =
            serde_json::from_str(r#"{"a":[1,2.5,"x",null,true],"b":{"c":-3}}"#).unwrap();
        let back = DocValue::from(&Any::from(&value));
        assert_eq!(back, value);
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            r#"{"a":[1.0,2.5,"x",null,true],"b":{"c":-3.0}}"#
        );
    }

    #[test]
    fn depth_is_bounded() {
        let mut value = DocValue::Null;
        for _ in 0..=MAX_VALUE_DEPTH {
            value = DocValue::Array(vec![value]);
        }
        assert_eq!(value.check_depth().unwrap_err().code(), "LIMIT_EXCEEDED");
    }
}
