//! The JS `RelayComparison` class: what several relays acknowledge and show of one topic.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::error::Error;
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

fn op_id(hex: &str) -> Result<OpId, JsValue> {
    Ok(hex.parse::<OpId>()?)
}

fn ms(value: f64, what: &str) -> Result<u64, JsValue> {
    if value.is_finite() && value >= 0.0 && value <= 2f64.powi(53) {
        Ok(value as u64)
    } else {
        Err(Error::BadInput(format!(
            "{what} must be a non-negative number of ms, got {value}"
        ))
        .into())
    }
}

#[wasm_bindgen(js_class = RelayComparison)]
impl JsRelayComparison {
    /// Compares `relays` relays (2 to 16); an op is reported missing `deadlineMs` after another
    /// relay had it. With `expectAll`, every op is expected on every relay, not only ours.
    #[wasm_bindgen(constructor)]
    pub fn new(
        relays: u32,
        deadline_ms: f64,
        expect_all: bool,
    ) -> Result<JsRelayComparison, JsValue> {
        Ok(JsRelayComparison(RelayComparison::new(
            relays as usize,
            ms(deadline_ms, "deadlineMs")?,
            expect_all,
        )?))
    }

    /// We published `opId` (hex) to every relay.
    pub fn published(&mut self, op_id_hex: &str) -> Result<(), JsValue> {
        self.0.published(op_id(op_id_hex)?);
        Ok(())
    }

    /// Relay `relay` acknowledged `opId` (hex).
    pub fn acknowledged(
        &mut self,
        relay: u32,
        op_id_hex: &str,
        now_ms: f64,
    ) -> Result<(), JsValue> {
        Ok(self
            .0
            .acknowledged(relay as usize, op_id(op_id_hex)?, ms(now_ms, "nowMs")?)?)
    }

    /// Relay `relay` showed `opId` (hex) in its verified feed.
    pub fn shown(&mut self, relay: u32, op_id_hex: &str, now_ms: f64) -> Result<(), JsValue> {
        Ok(self
            .0
            .shown(relay as usize, op_id(op_id_hex)?, ms(now_ms, "nowMs")?)?)
    }

    /// Divergences found by `nowMs`, each reported once:
    /// `{ opId, missingOn, seenOn, waitedMs }`.
    #[wasm_bindgen(
        unchecked_return_type = "{ opId: string; missingOn: number; seenOn: number; waitedMs: number }[]"
    )]
    pub fn tick(&mut self, now_ms: f64) -> Result<JsValue, JsValue> {
        let found: Vec<JsDivergence> = self
            .0
            .tick(ms(now_ms, "nowMs")?)
            .into_iter()
            .map(|d| JsDivergence {
                op_id: d.op_id.to_string(),
                missing_on: d.missing_on,
                seen_on: d.seen_on,
                waited_ms: d.waited_ms as f64,
            })
            .collect();
        serde_wasm_bindgen::to_value(&found).map_err(|e| JsValue::from_str(&e.to_string()))
    }

    /// How many ops are being followed.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> u32 {
        self.0.len() as u32
    }
}
