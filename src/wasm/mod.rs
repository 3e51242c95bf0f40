//! WebAssembly bindings: the only module that knows about JavaScript.
//!
//! One JS class per file, each a newtype over a core type; free functions grouped by concern.
//! Every export returns `Result<_, JsValue>` whose error is a real JS `Error` carrying the core's
//! stable `code` (see [`error`]). Plain JS objects cross with `serde-wasm-bindgen`, bytes as
//! `Uint8Array`. Arguments arrive as `JsValue` and are checked here, so a value of the wrong type
//! is a `BAD_INPUT` error rather than a wasm-bindgen exception without a code.

pub mod capability;
mod convert;
#[cfg(feature = "doc")]
pub mod doc;
#[cfg(feature = "doc")]
mod doc_args;
#[cfg(feature = "doc")]
pub mod doc_sync;
#[cfg(feature = "doc")]
mod doc_types;
#[cfg(feature = "doc")]
pub mod doc_updates;
pub mod election;
pub mod error;
pub mod identity;
pub mod log;
pub mod merkle_log;
pub mod op;
pub mod relay_comparison;
pub mod replica;
mod replica_convert;
pub mod replica_op;
mod replica_types;
pub mod session;
pub mod signature;
#[cfg(feature = "doc")]
pub mod signed_doc;
mod types;
