//! wasm-bindgen-test: thin checks of the JS boundary, run in Node and in headless Chromium
//! (`scripts/test.sh`). Behaviour is tested natively and the built package from JS
//! (`tests/js/`); here only what the bindings add: argument checks, coded errors, plain objects.
#![cfg(target_arch = "wasm32")]

use ants_coord::wasm::identity::JsIdentity;
use ants_coord::wasm::op::{decode_op, op_id, sign_op, IdentityArg};
use ants_coord::wasm::signature::{verify_batch_js, verify_signature_js};
use js_sys::{Array, BigInt, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

fn bytes(data: &[u8]) -> JsValue {
    Uint8Array::from(data).into()
}

fn code_of(error: JsValue) -> String {
    assert!(
        error.is_instance_of::<js_sys::Error>(),
        "not an Error: {error:?}"
    );
    Reflect::get(&error, &"code".into())
        .ok()
        .and_then(|code| code.as_string())
        .unwrap_or_default()
}

fn draft(counter: JsValue) -> JsValue {
    let object = Object::new();
    let set = |key: &str, value: JsValue| Reflect::set(&object, &key.into(), &value).unwrap();
    set("topic", "wasm".into());
    set("kind", "post".into());
    set("counter", counter);
    set("timeMs", 1_700_000_000_000u64.into());
    set("body", bytes(b"body"));
    object.into()
}

fn get(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &key.into()).unwrap()
}

#[wasm_bindgen_test]
fn identity_signs_and_verifies_across_the_boundary() {
    let identity = JsIdentity::from_seed(&bytes(&[7; 32])).unwrap();
    assert_eq!(identity.agent_id().len(), 64);
    assert_eq!(identity.export_seed(), vec![7; 32]);
    let signature = identity.sign(&bytes(b"hi")).unwrap();
    let key = bytes(&identity.public_key());
    assert_eq!(
        verify_signature_js(&key, &bytes(b"hi"), &bytes(&signature)),
        Ok(true)
    );
    assert_eq!(
        verify_signature_js(&key, &bytes(b"ho"), &bytes(&signature)),
        Ok(false)
    );
    let one = |value: JsValue| JsValue::from(Array::of1(&value));
    assert_eq!(
        verify_batch_js(
            &one(key.clone()),
            &one(bytes(b"hi")),
            &one(bytes(&signature))
        ),
        Ok(true)
    );
    assert_eq!(JsIdentity::generate().unwrap().agent_id().len(), 64);
}

#[wasm_bindgen_test]
fn bad_arguments_are_coded_errors() {
    assert_eq!(
        code_of(JsIdentity::from_seed(&"seed".into()).err().unwrap()),
        "BAD_INPUT"
    );
    assert_eq!(
        code_of(JsIdentity::from_seed(&bytes(&[1; 31])).err().unwrap()),
        "BAD_LENGTH"
    );
    let key = bytes(&[0; 31]);
    let verdict = verify_signature_js(&key, &bytes(b""), &bytes(&[0; 64]));
    assert_eq!(code_of(verdict.unwrap_err()), "BAD_LENGTH");
    let verdict = verify_batch_js(&JsValue::NULL, &Array::new().into(), &Array::new().into());
    assert_eq!(code_of(verdict.unwrap_err()), "BAD_INPUT");
    assert_eq!(code_of(decode_op(&bytes(&[1])).unwrap_err()), "MALFORMED");
    assert_eq!(
        code_of(op_id(&JsValue::UNDEFINED).unwrap_err()),
        "BAD_INPUT"
    );
    let not_identity: IdentityArg = Object::new().unchecked_into();
    assert_eq!(
        code_of(sign_op(&not_identity, draft(1.into())).unwrap_err()),
        "BAD_INPUT"
    );
}

#[wasm_bindgen_test]
fn ops_cross_as_plain_objects_with_safe_numbers_and_bigints() {
    let identity: IdentityArg =
        JsValue::from(JsIdentity::from_seed(&bytes(&[9; 32])).unwrap()).unchecked_into();
    let small = sign_op(&identity, draft(5.into())).unwrap();
    let decoded = decode_op(&bytes(&small)).unwrap();
    assert_eq!(get(&decoded, "counter").as_f64(), Some(5.0));
    assert_eq!(get(&decoded, "timeMs").as_f64(), Some(1_700_000_000_000.0));
    assert!(get(&decoded, "body").is_instance_of::<Uint8Array>());
    assert_eq!(
        get(&decoded, "id").as_string(),
        Some(op_id(&bytes(&small)).unwrap())
    );

    let huge = BigInt::from(u64::MAX);
    let big = sign_op(&identity, draft(huge.clone().into())).unwrap();
    let decoded = decode_op(&bytes(&big)).unwrap();
    assert!(get(&decoded, "counter").is_bigint());
    assert_eq!(get(&decoded, "counter"), JsValue::from(huge));
}
