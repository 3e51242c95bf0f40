//! WebAssembly bindings: the only module that knows about JavaScript.
//!
//! One JS class per file, each a newtype over a core type; free functions grouped by concern.
//! Every export returns `Result<_, JsValue>` whose error is a real JS `Error` carrying the core's
//! stable `code` (see [`error`]). Plain JS objects cross with `serde-wasm-bindgen`, bytes as
//! `Uint8Array`.

pub mod error;
