//! The JS `MerkleLog` class: an RFC 6962 log kept in wasm memory.
//!
//! Sizes and indices cross as JS numbers: safe integers (`0 ≤ n ≤ Number.MAX_SAFE_INTEGER`);
//! anything else is `BAD_INPUT`. Proofs cross as arrays of 32-byte `Uint8Array`s.

use js_sys::Array;
use wasm_bindgen::prelude::*;

use super::convert::bytes_arg;
use super::convert::{byte_arrays, safe_u64};
use crate::log::MerkleLog;

/// An append-only RFC 6962 Merkle log (SHA-256; leaf `H(0x00‖d)`, node `H(0x01‖l‖r)`), keeping
/// every complete subtree hash (about 64 bytes per leaf) so roots at earlier sizes and proofs are
/// O(log n).
#[wasm_bindgen(js_name = MerkleLog)]
pub struct JsMerkleLog(pub(crate) MerkleLog);

impl Default for JsMerkleLog {
    fn default() -> Self {
        Self::new()
    }
}

#[wasm_bindgen(js_class = MerkleLog)]
impl JsMerkleLog {
    /// An empty log.
    #[wasm_bindgen(constructor)]
    pub fn new() -> JsMerkleLog {
        JsMerkleLog(MerkleLog::new())
    }

    /// Appends leaf data (e.g. an entry's bytes); returns the leaf's index (a number: a log
    /// in wasm memory never reaches 2^53 leaves).
    pub fn append(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] leaf: &JsValue,
    ) -> Result<f64, JsValue> {
        let leaf = bytes_arg("leaf", leaf)?;
        Ok(self.0.append(&leaf)? as f64)
    }

    /// Number of leaves.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> f64 {
        self.0.size() as f64
    }

    /// The current root (32 bytes; `SHA-256("")` when empty).
    pub fn root(&self) -> Vec<u8> {
        self.0.root().to_vec()
    }

    /// The root the log had at `size` leaves.
    #[wasm_bindgen(js_name = rootAt)]
    pub fn root_at(
        &self,
        #[wasm_bindgen(unchecked_param_type = "number")] size: &JsValue,
    ) -> Result<Vec<u8>, JsValue> {
        Ok(self.0.root_at(safe_u64("size", size)?)?.to_vec())
    }

    /// The leaf hash at `index`.
    #[wasm_bindgen(js_name = leafHash)]
    pub fn leaf_hash(
        &self,
        #[wasm_bindgen(unchecked_param_type = "number")] index: &JsValue,
    ) -> Result<Vec<u8>, JsValue> {
        Ok(self.0.leaf_hash_at(safe_u64("index", index)?)?.to_vec())
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 6962 §2.1.1).
    #[wasm_bindgen(js_name = inclusionProof, unchecked_return_type = "Uint8Array[]")]
    pub fn inclusion_proof(
        &self,
        #[wasm_bindgen(unchecked_param_type = "number")] index: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] size: &JsValue,
    ) -> Result<Array, JsValue> {
        let proof = self
            .0
            .inclusion_proof(safe_u64("index", index)?, safe_u64("size", size)?)?;
        Ok(byte_arrays(&proof.hashes))
    }

    /// The consistency proof from `oldSize` to `newSize` leaves (RFC 6962 §2.1.2).
    #[wasm_bindgen(js_name = consistencyProof, unchecked_return_type = "Uint8Array[]")]
    pub fn consistency_proof(
        &self,
        #[wasm_bindgen(js_name = oldSize, unchecked_param_type = "number")] old_size: &JsValue,
        #[wasm_bindgen(js_name = newSize, unchecked_param_type = "number")] new_size: &JsValue,
    ) -> Result<Array, JsValue> {
        let proof = self.0.consistency_proof(
            safe_u64("oldSize", old_size)?,
            safe_u64("newSize", new_size)?,
        )?;
        Ok(byte_arrays(&proof.hashes))
    }
}
