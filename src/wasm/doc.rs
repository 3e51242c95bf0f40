//! The JS `Doc` class: a shared document (text, map and array roots) compatible with Yjs.
//!
//! Every method runs and commits its own transaction. Indices count UTF-16 code units, as
//! JavaScript strings do. An index or length outside the sequence throws `OUT_OF_RANGE` (checked
//! before Yrs sees it: Yrs would panic). A call from inside an `observe` callback throws
//! `DOC_BUSY`.

use std::cell::RefCell;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::convert::{bytes_arg, string_arg, Fields};
use super::convert::{edits_arg, index_arg, to_js, value_arg, values_arg};
use super::error::bad_input;
use crate::doc::{Doc, DocOptions, RootKind, TextEdit, UndoHistory};
use crate::error::Error;

/// `new Doc(options?)`.
#[derive(Default)]
struct DocOptionsInput {
    client_id: Option<u32>,
    gc: Option<bool>,
    undo: Option<bool>,
}

/// A shared document. Call `free()` when done with it (its memory lives in wasm).
#[wasm_bindgen(js_name = Doc)]
pub struct JsDoc {
    pub(crate) doc: Doc,
    undo: Option<RefCell<UndoHistory>>,
}

impl JsDoc {
    /// Another handle on `doc`, without undo history.
    pub(crate) fn sharing(doc: &Doc) -> JsDoc {
        JsDoc {
            doc: doc.clone(),
            undo: None,
        }
    }

    /// Tracks `name` for undo before a local write to it.
    fn track(&self, name: &str, kind: RootKind) -> Result<(), JsValue> {
        if let Some(undo) = &self.undo {
            undo.try_borrow_mut()
                .map_err(|_| Error::DocBusy("undo history in use"))?
                .track(name, kind)?;
        }
        Ok(())
    }

    fn undo_history(&self) -> Result<std::cell::RefMut<'_, UndoHistory>, JsValue> {
        let undo = self
            .undo
            .as_ref()
            .ok_or_else(|| bad_input("undo needs a Doc created with { undo: true }"))?;
        Ok(undo
            .try_borrow_mut()
            .map_err(|_| Error::DocBusy("undo history in use"))?)
    }
}

#[wasm_bindgen(js_class = Doc)]
impl JsDoc {
    /// A new empty document. Options: `clientId` (uint32; random by default), `gc` (default
    /// true), `undo` (record local edits for `undo()`/`redo()`; default false: like
    /// `Y.UndoManager` it is opt-in, since it keeps deleted content alive and makes edit-heavy
    /// work several times slower).
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_optional_param_type = "DocOptions")] options: JsValue,
    ) -> Result<JsDoc, JsValue> {
        let options: DocOptionsInput = if options.is_undefined() || options.is_null() {
            DocOptionsInput::default()
        } else {
            let fields = Fields::new("Doc options", &options, &["clientId", "gc", "undo"])?;
            DocOptionsInput {
                client_id: fields.opt_u32("clientId")?,
                gc: fields.opt_bool("gc")?,
                undo: fields.opt_bool("undo")?,
            }
        };
        let doc = Doc::try_with_options(DocOptions {
            client_id: options.client_id,
            gc: options.gc.unwrap_or(true),
        })?;
        let undo = options
            .undo
            .unwrap_or(false)
            .then(|| RefCell::new(UndoHistory::new(&doc)));
        Ok(JsDoc { doc, undo })
    }

    /// The Yjs client id this document stamps its edits with.
    #[wasm_bindgen(getter, js_name = clientId)]
    pub fn client_id(&self) -> u32 {
        self.doc.client_id()
    }

    // ---- text ----

    /// Inserts `text` at UTF-16 offset `index` of the text root `name`.
    #[wasm_bindgen(js_name = insertText)]
    pub fn insert_text(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] index: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] text: &JsValue,
    ) -> Result<(), JsValue> {
        let name = string_arg("name", name)?;
        let index = index_arg("index", index)?;
        let text = string_arg("text", text)?;
        self.track(&name, RootKind::Text)?;
        Ok(self.doc.insert_text(&name, index, &text)?)
    }

    /// Deletes `length` UTF-16 units at `index` of the text root `name`.
    #[wasm_bindgen(js_name = deleteText)]
    pub fn delete_text(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] index: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] length: &JsValue,
    ) -> Result<(), JsValue> {
        let name = string_arg("name", name)?;
        let index = index_arg("index", index)?;
        let length = index_arg("length", length)?;
        self.track(&name, RootKind::Text)?;
        Ok(self.doc.delete_text(&name, index, length)?)
    }

    /// Applies many edits to the text root `name` in one transaction. `edits` is an array of
    /// `[index, deleteCount, insertText]` triples or `{ index, delete?, insert? }` objects.
    /// All are checked first: on `OUT_OF_RANGE` nothing changes.
    #[wasm_bindgen(js_name = applyEdits)]
    pub fn apply_edits(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "TextEditInput[]")] edits: JsValue,
    ) -> Result<(), JsValue> {
        let name = string_arg("name", name)?;
        let edits: Vec<TextEdit> = edits_arg(&edits)?;
        self.track(&name, RootKind::Text)?;
        Ok(self.doc.apply_text_edits(&name, &edits)?)
    }

    /// The content of the text root `name` ("" if absent).
    pub fn text(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
    ) -> Result<String, JsValue> {
        Ok(self.doc.text(&string_arg("name", name)?)?)
    }

    /// The length of the text root `name` in UTF-16 units.
    #[wasm_bindgen(js_name = textLength)]
    pub fn text_length(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
    ) -> Result<u32, JsValue> {
        Ok(self.doc.text_len(&string_arg("name", name)?)?)
    }

    // ---- map ----

    /// Sets `key` of the map root `name` to a JSON-like value (or a `Uint8Array`).
    #[wasm_bindgen(js_name = setMap)]
    pub fn set_map(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] key: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "DocValue")] value: JsValue,
    ) -> Result<(), JsValue> {
        let (name, key) = (string_arg("name", name)?, string_arg("key", key)?);
        let value = value_arg("value", value)?;
        self.track(&name, RootKind::Map)?;
        Ok(self.doc.set_map(&name, &key, &value)?)
    }

    /// Removes `key` from the map root `name`; returns whether it was there.
    #[wasm_bindgen(js_name = deleteMap)]
    pub fn delete_map(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] key: &JsValue,
    ) -> Result<bool, JsValue> {
        let (name, key) = (string_arg("name", name)?, string_arg("key", key)?);
        self.track(&name, RootKind::Map)?;
        Ok(self.doc.delete_map(&name, &key)?)
    }

    /// The map root `name` as a plain object (`{}` if absent).
    #[wasm_bindgen(js_name = getMap, unchecked_return_type = "Record<string, DocValue>")]
    pub fn get_map(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
    ) -> Result<JsValue, JsValue> {
        to_js(&self.doc.map(&string_arg("name", name)?)?)
    }

    /// One value of the map root `name` (`undefined` if absent).
    #[wasm_bindgen(js_name = getMapValue, unchecked_return_type = "DocValue | undefined")]
    pub fn get_map_value(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] key: &JsValue,
    ) -> Result<JsValue, JsValue> {
        let (name, key) = (string_arg("name", name)?, string_arg("key", key)?);
        match self.doc.map_value(&name, &key)? {
            Some(value) => to_js(&value),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    // ---- array ----

    /// Appends `values` (an array) to the array root `name`.
    #[wasm_bindgen(js_name = pushArray)]
    pub fn push_array(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "DocValue[]")] values: JsValue,
    ) -> Result<(), JsValue> {
        let name = string_arg("name", name)?;
        let values = values_arg("values", values)?;
        self.track(&name, RootKind::Array)?;
        Ok(self.doc.push_array(&name, &values)?)
    }

    /// Inserts `values` (an array) before position `index` of the array root `name`.
    #[wasm_bindgen(js_name = insertArray)]
    pub fn insert_array(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] index: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "DocValue[]")] values: JsValue,
    ) -> Result<(), JsValue> {
        let name = string_arg("name", name)?;
        let index = index_arg("index", index)?;
        let values = values_arg("values", values)?;
        self.track(&name, RootKind::Array)?;
        Ok(self.doc.insert_array(&name, index, &values)?)
    }

    /// Deletes `length` elements at `index` of the array root `name`.
    #[wasm_bindgen(js_name = deleteArray)]
    pub fn delete_array(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] index: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] length: &JsValue,
    ) -> Result<(), JsValue> {
        let name = string_arg("name", name)?;
        let index = index_arg("index", index)?;
        let length = index_arg("length", length)?;
        self.track(&name, RootKind::Array)?;
        Ok(self.doc.delete_array(&name, index, length)?)
    }

    /// The array root `name` as a plain array (`[]` if absent).
    #[wasm_bindgen(js_name = getArray, unchecked_return_type = "DocValue[]")]
    pub fn get_array(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
    ) -> Result<JsValue, JsValue> {
        to_js(&self.doc.array(&string_arg("name", name)?)?)
    }

    /// The number of elements of the array root `name`.
    #[wasm_bindgen(js_name = arrayLength)]
    pub fn array_length(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
    ) -> Result<u32, JsValue> {
        Ok(self.doc.array_len(&string_arg("name", name)?)?)
    }

    /// Fixes the kind of root `name` ("text", "map" or "array") before a peer's content for it is
    /// read, as `ydoc.getText(name)` does in Yjs.
    #[wasm_bindgen(js_name = defineRoot)]
    pub fn define_root(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] kind: &JsValue,
    ) -> Result<(), JsValue> {
        let name = string_arg("name", name)?;
        let kind = match string_arg("kind", kind)?.as_str() {
            "text" => RootKind::Text,
            "map" => RootKind::Map,
            "array" => RootKind::Array,
            other => return Err(bad_input(format!("unknown root kind {other:?}"))),
        };
        Ok(self.doc.define_root(&name, kind)?)
    }

    /// Every root whose kind is known, as a plain object (text as strings).
    #[wasm_bindgen(js_name = toJSON, unchecked_return_type = "Record<string, DocValue>")]
    pub fn to_json(&self) -> Result<JsValue, JsValue> {
        to_js(&self.doc.to_value()?)
    }

    /// The names of every root, sorted.
    #[wasm_bindgen(js_name = rootNames)]
    pub fn root_names(&self) -> Result<Vec<String>, JsValue> {
        Ok(self.doc.root_names()?)
    }

    // ---- exchange ----

    /// The state vector (`Y.encodeStateVector`).
    #[wasm_bindgen(js_name = stateVector)]
    pub fn state_vector(&self) -> Result<Vec<u8>, JsValue> {
        Ok(self.doc.state_vector()?)
    }

    /// What a peer with `stateVector` lacks, as a v1 update (`Y.encodeStateAsUpdate`); the whole
    /// document when `stateVector` is omitted.
    #[wasm_bindgen(js_name = encodeUpdate)]
    pub fn encode_update(
        &self,
        #[wasm_bindgen(js_name = stateVector, unchecked_optional_param_type = "Uint8Array")]
        state_vector: JsValue,
    ) -> Result<Vec<u8>, JsValue> {
        let sv = optional_bytes("stateVector", &state_vector)?;
        Ok(self.doc.encode_update(sv.as_deref())?)
    }

    /// Like `encodeUpdate` in update format v2 (`Y.encodeStateAsUpdateV2`).
    #[wasm_bindgen(js_name = encodeUpdateV2)]
    pub fn encode_update_v2(
        &self,
        #[wasm_bindgen(js_name = stateVector, unchecked_optional_param_type = "Uint8Array")]
        state_vector: JsValue,
    ) -> Result<Vec<u8>, JsValue> {
        let sv = optional_bytes("stateVector", &state_vector)?;
        Ok(self.doc.encode_update_v2(sv.as_deref())?)
    }

    /// Integrates a v1 update from a peer (`Y.applyUpdate`).
    #[wasm_bindgen(js_name = applyUpdate)]
    pub fn apply_update(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] update: &JsValue,
    ) -> Result<(), JsValue> {
        Ok(self.doc.apply_update(&bytes_arg("update", update)?)?)
    }

    /// Integrates a v2 update (`Y.applyUpdateV2`).
    #[wasm_bindgen(js_name = applyUpdateV2)]
    pub fn apply_update_v2(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] update: &JsValue,
    ) -> Result<(), JsValue> {
        Ok(self.doc.apply_update_v2(&bytes_arg("update", update)?)?)
    }

    // ---- observe ----

    /// Calls `callback({ local, roots: [{ name, kind }], update })` after every transaction that
    /// changed the document. Returns the function that unsubscribes (call it once; it releases
    /// the subscription's memory).
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn observe(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(change: DocChange) => void")] callback: JsValue,
    ) -> Result<JsValue, JsValue> {
        let callback: js_sys::Function = callback
            .dyn_into()
            .map_err(|_| bad_input("callback must be a function"))?;
        let subscription = self.doc.observe(move |change| {
            if let Ok(value) = to_js(change) {
                // An exception thrown by the callback cannot unwind a commit: it is dropped.
                let _ = callback.call1(&JsValue::NULL, &value);
            }
        })?;
        Ok(Closure::once_into_js(move || drop(subscription)))
    }

    /// How many observers are subscribed (for leak checks).
    #[wasm_bindgen(getter, js_name = observerCount)]
    pub fn observer_count(&self) -> f64 {
        self.doc.observer_count() as f64
    }

    // ---- undo ----

    /// Reverts the last local edit (one call = one transaction); `false` if there was none.
    pub fn undo(&self) -> Result<bool, JsValue> {
        Ok(self.undo_history()?.undo()?)
    }

    /// Re-applies the last undone edit; `false` if there was none.
    pub fn redo(&self) -> Result<bool, JsValue> {
        Ok(self.undo_history()?.redo()?)
    }

    /// Whether `undo()` would do something.
    #[wasm_bindgen(js_name = canUndo)]
    pub fn can_undo(&self) -> Result<bool, JsValue> {
        Ok(self.undo_history()?.can_undo())
    }

    /// Whether `redo()` would do something.
    #[wasm_bindgen(js_name = canRedo)]
    pub fn can_redo(&self) -> Result<bool, JsValue> {
        Ok(self.undo_history()?.can_redo())
    }

    /// Forgets the undo and redo stacks, releasing the deleted content they keep alive.
    #[wasm_bindgen(js_name = clearUndo)]
    pub fn clear_undo(&self) -> Result<(), JsValue> {
        Ok(self.undo_history()?.clear()?)
    }
}

fn optional_bytes(what: &str, value: &JsValue) -> Result<Option<Vec<u8>>, JsValue> {
    if value.is_undefined() || value.is_null() {
        Ok(None)
    } else {
        bytes_arg(what, value).map(Some)
    }
}
