//! Free functions for leader election by hash priority: `electLeader`, `priority`.
//!
//! Candidates are agent ids as 64 lowercase hex strings, or one `Uint8Array` of concatenated
//! 32-byte ids (the fast path for large sets). Only their bytes are hashed: they are not checked
//! to be public keys. The ranking names candidates exactly as they were given.

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::convert::string_arg;
use super::convert::{id_bytes, u64_arg, u64_value};
use super::error::bad_input;
use crate::election::{rank_ids, window_of, PriorityHasher};
use crate::error::Error;
use crate::identity::lower_hex;

fn set(object: &Object, key: &str, value: &JsValue) -> Result<(), JsValue> {
    Reflect::set(object, &JsValue::from_str(key), value).map(|_| ())
}

/// Reads the candidate set: the ids and how to name each one in the answer.
fn candidate_ids(candidates: &JsValue) -> Result<(Vec<[u8; 32]>, Option<Array>), JsValue> {
    if let Some(bytes) = candidates.dyn_ref::<Uint8Array>() {
        let bytes = bytes.to_vec();
        if bytes.len() % 32 != 0 {
            return Err(bad_input(
                "candidates as bytes must be a whole number of 32-byte ids",
            ));
        }
        let ids = bytes
            .chunks_exact(32)
            .map(|chunk| {
                let mut id = [0u8; 32];
                id.copy_from_slice(chunk);
                id
            })
            .collect();
        return Ok((ids, None));
    }
    if !Array::is_array(candidates) {
        return Err(bad_input(
            "candidates must be an array of agent ids or a Uint8Array of 32-byte ids",
        ));
    }
    let array: Array = candidates.clone().unchecked_into();
    // Fast path: one crossing of the boundary for the whole set (a string per candidate costs a
    // crossing and a UTF-8 conversion each); on any doubt, the checked path below names the item.
    let joined: String = array.join(",").into();
    let fast: Option<Vec<[u8; 32]>> = joined
        .split(',')
        .map(|text| id_bytes("candidate", text).ok())
        .collect();
    if let Some(ids) = fast.filter(|ids| ids.len() == array.length() as usize) {
        return Ok((ids, Some(array)));
    }
    let mut ids = Vec::with_capacity(array.length() as usize);
    for (index, item) in array.iter().enumerate() {
        let text = item
            .as_string()
            .ok_or_else(|| bad_input(format!("candidates[{index}] must be a string")))?;
        ids.push(id_bytes(&format!("candidates[{index}]"), &text)?);
    }
    Ok((ids, Some(array)))
}

fn counted(weights: Vec<u64>, count: usize) -> Result<Vec<u64>, JsValue> {
    if weights.len() != count {
        return Err(bad_input(format!(
            "{} weights for {count} candidates",
            weights.len()
        )));
    }
    Ok(weights)
}

fn weights_arg(weights: &JsValue, count: usize) -> Result<Option<Vec<u64>>, JsValue> {
    if weights.is_undefined() || weights.is_null() {
        return Ok(None);
    }
    // Typed arrays cross in one copy.
    if let Some(typed) = weights.dyn_ref::<js_sys::BigUint64Array>() {
        return counted(typed.to_vec(), count).map(Some);
    }
    if let Some(typed) = weights.dyn_ref::<js_sys::Uint32Array>() {
        return counted(typed.to_vec().into_iter().map(u64::from).collect(), count).map(Some);
    }
    if !Array::is_array(weights) {
        return Err(bad_input(
            "weights must be an array of non-negative integers",
        ));
    }
    let array: Array = weights.clone().unchecked_into();
    if array.length() as usize != count {
        return Err(bad_input(format!(
            "{} weights for {count} candidates",
            array.length()
        )));
    }
    array
        .iter()
        .enumerate()
        .map(|(i, w)| match w.as_f64() {
            // The common case without serde: a safe non-negative integer number.
            Some(n) if (0.0..=9_007_199_254_740_991.0).contains(&n) && n.fract() == 0.0 => {
                Ok(n as u64)
            }
            _ => u64_arg(&format!("weights[{i}]"), &w),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Elects a leader among `candidates` in `topic` at `nowMs` with windows of `windowMs`:
/// `{ leader, window, startsAtMs, endsAtMs, ranking }`, ranking best first (all candidates, or the
/// top `topK`). With `weights` (one per candidate), the stake-weighted variant.
/// Errors: `BAD_INPUT`, `BAD_TOPIC`, `NO_CANDIDATES`.
#[wasm_bindgen(js_name = electLeader, unchecked_return_type = "LeaderElection")]
pub fn elect_leader(
    #[wasm_bindgen(unchecked_param_type = "string[] | Uint8Array")] candidates: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
    #[wasm_bindgen(js_name = nowMs, unchecked_param_type = "number | bigint")] now_ms: &JsValue,
    #[wasm_bindgen(js_name = windowMs, unchecked_param_type = "number | bigint")]
    window_ms: &JsValue,
    #[wasm_bindgen(
        unchecked_optional_param_type = "Array<number | bigint> | Uint32Array | BigUint64Array | null"
    )]
    weights: &JsValue,
    #[wasm_bindgen(js_name = topK, unchecked_optional_param_type = "number")] top_k: &JsValue,
) -> Result<JsValue, JsValue> {
    let topic = string_arg("topic", topic)?;
    let now_ms = u64_arg("nowMs", now_ms)?;
    let window_ms = u64_arg("windowMs", window_ms)?;
    let (ids, names) = candidate_ids(candidates)?;
    let weights = weights_arg(weights, ids.len())?;
    let k = if top_k.is_undefined() || top_k.is_null() {
        None
    } else {
        Some((u64_arg("topK", top_k)? as usize).max(1))
    };
    let window = window_of(now_ms, window_ms)?;
    let ranking = rank_ids(&topic, &ids, weights.as_deref(), window, k)?;
    match ranking.first() {
        Some(first) if first.weight > 0 => {}
        _ => return Err(Error::NoCandidates.into()),
    }
    let name = |index: usize| match &names {
        Some(array) => array.get(index as u32),
        None => JsValue::from_str(&lower_hex(&ids[index])),
    };
    let out = Object::new();
    let list = Array::new_with_length(ranking.len() as u32);
    for (i, standing) in ranking.iter().enumerate() {
        list.set(i as u32, name(standing.agent));
    }
    set(&out, "leader", &list.get(0))?;
    set(&out, "window", &u64_value(window))?;
    set(
        &out,
        "startsAtMs",
        &u64_value(window.saturating_mul(window_ms)),
    )?;
    set(
        &out,
        "endsAtMs",
        &u64_value(window.saturating_add(1).saturating_mul(window_ms)),
    )?;
    set(&out, "ranking", &list)?;
    Ok(out.into())
}

/// The priority of `agentId` in `window` of `topic`: 64 lowercase hex characters (PROTOCOL.md
/// section 6.3).
#[wasm_bindgen]
pub fn priority(
    #[wasm_bindgen(js_name = agentId, unchecked_param_type = "string")] agent_id: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "number | bigint")] window: &JsValue,
) -> Result<String, JsValue> {
    let id = id_bytes("agentId", &string_arg("agentId", agent_id)?)?;
    let topic = string_arg("topic", topic)?;
    let window = u64_arg("window", window)?;
    Ok(lower_hex(
        &PriorityHasher::new(&topic)?.priority_of_bytes(&id, window),
    ))
}
