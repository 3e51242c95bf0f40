//! Turning core errors into real JS `Error`s with a stable `code` property.

use wasm_bindgen::JsValue;

use crate::error::Error;

impl From<Error> for JsValue {
    /// A `js_sys::Error` whose `name` is `AntsCoordError`, `message` the core message and `code`
    /// the stable code. Never a bare string: it keeps the stack and passes `instanceof Error`.
    fn from(error: Error) -> JsValue {
        let js_error = js_sys::Error::new(&error.to_string());
        js_error.set_name("AntsCoordError");
        // Setting a property on a fresh Error object cannot fail.
        let _ = js_sys::Reflect::set(
            &js_error,
            &JsValue::from_str("code"),
            &JsValue::from_str(error.code()),
        );
        js_error.into()
    }
}

/// A `BAD_INPUT` error for a JS argument of the wrong type or shape.
pub(crate) fn bad_input(message: impl Into<String>) -> JsValue {
    Error::BadInput(message.into()).into()
}
