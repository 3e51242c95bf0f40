//! Free functions that check plain RFC 8032 Ed25519 signatures.
//!
//! A well-formed signature that does not verify gives `false`; arguments that are not well formed
//! (not `Uint8Array`, wrong lengths, a key that is not a usable curve point, arrays of different
//! lengths) throw, with `BAD_INPUT`, `BAD_LENGTH` or `BAD_PUBLIC_KEY`.

use wasm_bindgen::prelude::*;

use super::convert::{bytes_arg, bytes_array_arg};
use crate::error::Error;
use crate::identity::{verify_batch, verify_signature};

fn slices(items: &[Vec<u8>]) -> Vec<&[u8]> {
    items.iter().map(Vec::as_slice).collect()
}

/// Maps a verification result to `true`/`false`, keeping every other error as a throw.
fn verdict(result: crate::Result<()>) -> Result<bool, JsValue> {
    match result {
        Ok(()) => Ok(true),
        Err(Error::BadSignature) => Ok(false),
        Err(other) => Err(other.into()),
    }
}

/// Strictly verifies one Ed25519 signature (64 bytes) by `publicKey` (32 bytes) over `message`.
#[wasm_bindgen(js_name = verifySignature)]
pub fn verify_signature_js(
    #[wasm_bindgen(js_name = publicKey, unchecked_param_type = "Uint8Array")] public_key: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] message: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] signature: &JsValue,
) -> Result<bool, JsValue> {
    let public_key = bytes_arg("publicKey", public_key)?;
    let message = bytes_arg("message", message)?;
    let signature = bytes_arg("signature", signature)?;
    verdict(verify_signature(&public_key, &message, &signature))
}

/// `true` exactly when every `signatures[i]` verifies for `publicKeys[i]` over `messages[i]`
/// (batch equation, then one-by-one on failure, so the answer is exact).
#[wasm_bindgen(js_name = verifyBatch)]
pub fn verify_batch_js(
    #[wasm_bindgen(js_name = publicKeys, unchecked_param_type = "Uint8Array[]")]
    public_keys: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "Uint8Array[]")] messages: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "Uint8Array[]")] signatures: &JsValue,
) -> Result<bool, JsValue> {
    let public_keys = bytes_array_arg("publicKeys", public_keys)?;
    let messages = bytes_array_arg("messages", messages)?;
    let signatures = bytes_array_arg("signatures", signatures)?;
    verdict(verify_batch(
        &slices(&public_keys),
        &slices(&messages),
        &slices(&signatures),
    ))
}
