//! The JS `RelayComparison` class: what several relays acknowledge and show of one topic.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::convert::{bool_arg, ms_arg, safe_u64, string_arg, to_js};
use super::error::bad_input;
use crate::op::OpId;
use crate::session::RelayComparison;

/// Compares several relays' feeds of one topic by op id (`RelayGroup` in `ants-coord/client`
/// uses it): an op one relay had must show on every other within the deadline.
#[wasm_bindgen(js_name = RelayComparison)]
pub struct JsRelayComparison(RelayComparison);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsDivergence {
    op_id: String,
    missing_on: usize,
    seen_on: usize,
    waited_ms: f64,
}

fn op_id(hex: &JsValue) -> Result<OpId, JsValue> {
    Ok(string_arg("opId", hex)?.parse::<OpId>()?)
}

/// A relay index or count: a safe non-negative integer (the core checks the range).
fn relay_arg(what: &str, value: &JsValue) -> Result<usize, JsValue> {
    usize::try_from(safe_u64(what, value)?).map_err(|_| bad_input(format!("{what} is too large")))
}

#[wasm_bindgen(js_class = RelayComparison)]
impl JsRelayComparison {
    /// Compares `relays` relays (2 to 16); an op is reported missing `deadlineMs` after another
    /// relay had it. With `expectAll`, every op is expected on every relay, not only ours.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "number")] relays: &JsValue,
        #[wasm_bindgen(js_name = deadlineMs, unchecked_param_type = "number")]
        deadline_ms: &JsValue,
        #[wasm_bindgen(js_name = expectAll, unchecked_param_type = "boolean")] expect_all: &JsValue,
    ) -> Result<JsRelayComparison, JsValue> {
        Ok(JsRelayComparison(RelayComparison::new(
            relay_arg("relays", relays)?,
            ms_arg("deadlineMs", deadline_ms)?,
            bool_arg("expectAll", expect_all)?,
        )?))
    }

    /// We published `opId` (hex) to every relay.
    pub fn published(
        &mut self,
        #[wasm_bindgen(js_name = opId, unchecked_param_type = "string")] op_id_hex: &JsValue,
    ) -> Result<(), JsValue> {
        self.0.published(op_id(op_id_hex)?);
        Ok(())
    }

    /// Relay `relay` acknowledged `opId` (hex).
    pub fn acknowledged(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "number")] relay: &JsValue,
        #[wasm_bindgen(js_name = opId, unchecked_param_type = "string")] op_id_hex: &JsValue,
        #[wasm_bindgen(js_name = nowMs, unchecked_param_type = "number")] now_ms: &JsValue,
    ) -> Result<(), JsValue> {
        Ok(self.0.acknowledged(
            relay_arg("relay", relay)?,
            op_id(op_id_hex)?,
            ms_arg("nowMs", now_ms)?,
        )?)
    }

    /// Relay `relay` showed `opId` (hex) in its verified feed.
    pub fn shown(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "number")] relay: &JsValue,
        #[wasm_bindgen(js_name = opId, unchecked_param_type = "string")] op_id_hex: &JsValue,
        #[wasm_bindgen(js_name = nowMs, unchecked_param_type = "number")] now_ms: &JsValue,
    ) -> Result<(), JsValue> {
        Ok(self.0.shown(
            relay_arg("relay", relay)?,
            op_id(op_id_hex)?,
            ms_arg("nowMs", now_ms)?,
        )?)
    }

    /// Divergences found by `nowMs`, each reported once:
    /// `{ opId, missingOn, seenOn, waitedMs }`.
    #[wasm_bindgen(
        unchecked_return_type = "{ opId: string; missingOn: number; seenOn: number; waitedMs: number }[]"
    )]
    pub fn tick(
        &mut self,
        #[wasm_bindgen(js_name = nowMs, unchecked_param_type = "number")] now_ms: &JsValue,
    ) -> Result<JsValue, JsValue> {
        let found: Vec<JsDivergence> = self
            .0
            .tick(ms_arg("nowMs", now_ms)?)
            .into_iter()
            .map(|d| JsDivergence {
                op_id: d.op_id.to_string(),
                missing_on: d.missing_on,
                seen_on: d.seen_on,
                waited_ms: d.waited_ms as f64,
            })
            .collect();
        to_js(&found)
    }

    /// How many ops are being followed.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> u32 {
        self.0.len() as u32
    }
}
