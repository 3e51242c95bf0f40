//! The JS `DocSync` class: y-protocols sync and awareness over any transport (sans-IO).
//!
//! ```js
//! const sync = new DocSync(doc);
//! for (const m of sync.start()) ws.send(m);
//! ws.onmessage = (e) => {
//!   const out = sync.receive(new Uint8Array(e.data));
//!   for (const m of out.replies) ws.send(m);
//! };
//! doc.observe((c) => { if (c.local) ws.send(sync.updateMessage(c.update)); });
//! ```

use wasm_bindgen::prelude::*;

use super::convert::bytes_arg;
use super::convert::{byte_arrays, now_arg, to_js};
use super::doc::JsDoc;
use super::error::bad_input;
use crate::doc::DocSync;

/// The sync state of one connection to one document.
#[wasm_bindgen(js_name = DocSync)]
pub struct JsDocSync(DocSync);

#[wasm_bindgen(js_class = DocSync)]
impl JsDocSync {
    /// Syncs `doc` over one connection (the DocSync keeps the document alive).
    #[wasm_bindgen(constructor)]
    pub fn new(doc: &JsDoc) -> JsDocSync {
        JsDocSync(DocSync::new(&doc.doc))
    }

    /// The messages that open the connection: sync step 1 and the known awareness states.
    #[wasm_bindgen(unchecked_return_type = "Uint8Array[]")]
    pub fn start(&self) -> Result<js_sys::Array, JsValue> {
        Ok(byte_arrays(&self.0.start()?))
    }

    /// Handles one incoming message. Returns `{ replies, broadcast, update?, awareness:
    /// { added, updated, removed }, permissionDenied? }`: send `replies` back to the sender,
    /// `broadcast` to the document's other peers. `nowMs` defaults to `Date.now()`.
    #[wasm_bindgen(unchecked_return_type = "SyncOutcome")]
    pub fn receive(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] message: &JsValue,
        #[wasm_bindgen(js_name = nowMs, unchecked_optional_param_type = "number | null")]
        now_ms: &JsValue,
    ) -> Result<JsValue, JsValue> {
        let message = bytes_arg("message", message)?;
        let outcome = self.0.receive(&message, now_arg("nowMs", now_ms)?)?;
        let result = js_sys::Object::new();
        let set = |key: &str, value: &JsValue| {
            // Defining a property on a fresh plain object cannot fail.
            let _ = js_sys::Reflect::set(&result, &JsValue::from_str(key), value);
        };
        set("replies", &byte_arrays(&outcome.replies));
        set("broadcast", &byte_arrays(&outcome.broadcast));
        if let Some(update) = &outcome.applied_update {
            set("update", &js_sys::Uint8Array::from(update.as_slice()));
        }
        set("awareness", &to_js(&outcome.awareness)?);
        if let Some(reason) = &outcome.permission_denied {
            set("permissionDenied", &JsValue::from_str(reason));
        }
        Ok(result.into())
    }

    /// Wraps a local v1 update (from `doc.observe`) as the sync message for peers.
    #[wasm_bindgen(js_name = updateMessage)]
    pub fn update_message(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] update: &JsValue,
    ) -> Result<Vec<u8>, JsValue> {
        Ok(DocSync::update_message(&bytes_arg("update", update)?))
    }

    /// Sets this side's awareness state (any JSON value; `null` to leave) and returns the
    /// awareness message to send.
    #[wasm_bindgen(js_name = setLocalAwareness)]
    pub fn set_local_awareness(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "unknown")] state: JsValue,
        #[wasm_bindgen(js_name = nowMs, unchecked_optional_param_type = "number | null")]
        now_ms: &JsValue,
    ) -> Result<Vec<u8>, JsValue> {
        let json = if state.is_null() || state.is_undefined() {
            None
        } else {
            let text = js_sys::JSON::stringify(&state)
                .map_err(|_| bad_input("awareness state must be JSON-serializable"))?;
            Some(String::from(text))
        };
        Ok(self
            .0
            .set_local_awareness(json.as_deref(), now_arg("nowMs", now_ms)?)?)
    }

    /// Expires silent peers and renews the local state when due (call every few seconds).
    /// Returns `{ removed, messages }`: send `messages` to peers.
    #[wasm_bindgen(unchecked_return_type = "{ removed: number[]; messages: Uint8Array[] }")]
    pub fn tick(
        &mut self,
        #[wasm_bindgen(js_name = nowMs, unchecked_optional_param_type = "number | null")]
        now_ms: &JsValue,
    ) -> Result<JsValue, JsValue> {
        let (changes, messages) = self.0.tick(now_arg("nowMs", now_ms)?);
        let result = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&result, &"removed".into(), &to_js(&changes.removed)?);
        let _ = js_sys::Reflect::set(&result, &"messages".into(), &byte_arrays(&messages));
        Ok(result.into())
    }

    /// Every present awareness state: `{ [clientId]: state }`.
    #[wasm_bindgen(js_name = awarenessStates, unchecked_return_type = "Record<number, unknown>")]
    pub fn awareness_states(&self) -> Result<JsValue, JsValue> {
        let result = js_sys::Object::new();
        for (client, json) in self.0.awareness().states() {
            let value = js_sys::JSON::parse(&json)?;
            let _ = js_sys::Reflect::set(&result, &JsValue::from_f64(client as f64), &value);
        }
        Ok(result.into())
    }

    /// The awareness message describing every known client.
    #[wasm_bindgen(js_name = awarenessMessage)]
    pub fn awareness_message(&self) -> Vec<u8> {
        self.0.awareness_message()
    }

    /// Whether the peer's sync step 2 has arrived.
    #[wasm_bindgen(getter)]
    pub fn synced(&self) -> bool {
        self.0.is_synced()
    }
}
