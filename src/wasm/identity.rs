//! The JS `Identity` class: an agent's ed25519 key pair living in wasm memory.

use wasm_bindgen::prelude::*;

use super::convert::bytes_arg;
use super::op::{sign_draft, OpDraftInput};
use crate::identity::Identity;

/// An agent's key pair. The secret stays in wasm memory; call `free()` when done to zeroize it
/// at once (otherwise it is zeroized when the JS object is garbage-collected).
#[wasm_bindgen(js_name = Identity)]
pub struct JsIdentity(pub(crate) Identity);

#[wasm_bindgen(js_class = Identity)]
impl JsIdentity {
    /// A new identity from `crypto.getRandomValues`. In Cloudflare Workers call it inside a
    /// request handler: randomness is refused at global scope there.
    pub fn generate() -> Result<JsIdentity, JsValue> {
        Ok(JsIdentity(Identity::generate()?))
    }

    /// The identity whose RFC 8032 secret key is the 32-byte `seed`.
    #[wasm_bindgen(js_name = fromSeed)]
    pub fn from_seed(
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] seed: &JsValue,
    ) -> Result<JsIdentity, JsValue> {
        let seed = zeroize::Zeroizing::new(bytes_arg("seed", seed)?);
        Ok(JsIdentity(Identity::from_seed(&seed)?))
    }

    /// The agent id: the public key as 64 lowercase hex characters.
    #[wasm_bindgen(getter, js_name = agentId)]
    pub fn agent_id(&self) -> String {
        self.0.agent_id().to_string()
    }

    /// The 32-byte public key.
    #[wasm_bindgen(getter, js_name = publicKey)]
    pub fn public_key(&self) -> Vec<u8> {
        self.0.agent_id().as_bytes().to_vec()
    }

    /// The 32-byte seed. The returned copy lives in JS memory, which cannot be zeroized.
    #[wasm_bindgen(js_name = exportSeed)]
    pub fn export_seed(&self) -> Vec<u8> {
        self.0.export_seed().to_vec()
    }

    /// A plain RFC 8032 Ed25519 signature (64 bytes) over `message`.
    pub fn sign(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] message: &JsValue,
    ) -> Result<Vec<u8>, JsValue> {
        Ok(self.0.sign(&bytes_arg("message", message)?).to_vec())
    }

    /// Signs an op draft; the canonical signed op bytes. Same as `signOp(this, draft)`.
    #[wasm_bindgen(js_name = signOp)]
    pub fn sign_op(
        &self,
        #[wasm_bindgen(unchecked_param_type = "OpDraft")] draft: JsValue,
    ) -> Result<Vec<u8>, JsValue> {
        let draft: OpDraftInput = super::op::draft_from_js(draft)?;
        sign_draft(&self.0, draft)
    }

    /// `Identity(<agent id>)`: never the secret.
    #[wasm_bindgen(js_name = toString)]
    pub fn to_string_js(&self) -> String {
        format!("Identity({})", self.0.agent_id())
    }

    /// JSON form: `{ agentId }` only, so `JSON.stringify` never leaks the secret.
    #[wasm_bindgen(js_name = toJSON, unchecked_return_type = "{ agentId: string }")]
    pub fn to_json(&self) -> JsValue {
        let object = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&object, &"agentId".into(), &self.agent_id().into());
        object.into()
    }
}
