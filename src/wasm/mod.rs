//! WebAssembly bindings: the only module that knows about JavaScript.
//!
//! One JS class per file, each a newtype over a core type; free functions grouped by concern.
//! Every export returns `Result<_, JsValue>` whose error is a real JS `Error` carrying the core's
//! stable `code` (see [`error`]). Every conversion between JS and Rust values goes through
//! `convert`, which states the package's one JS value convention (plain objects, `Uint8Array`
//! bytes, 64-bit integers as numbers or `BigInt`s). Arguments arrive as `JsValue` and are checked
//! there, so a value of the wrong type is a `BAD_INPUT` error rather than a wasm-bindgen
//! exception without a code.

pub mod capability;
mod convert;
#[cfg(feature = "doc")]
pub mod doc;
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
pub mod replica_op;
mod replica_types;
pub mod session;
pub mod signature;
#[cfg(feature = "doc")]
pub mod signed_doc;
mod types;
