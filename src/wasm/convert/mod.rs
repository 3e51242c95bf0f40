//! Every conversion between JS values and Rust values, in one place, by one convention (written
//! down for users in pkg-config/README.md, "JS values"):
//!
//! - **Records are plain objects** (never `Map`s), with camelCase fields; a missing optional
//!   value is `null` in a result ([`to_js`]). Input objects are read with serde or field by
//!   field ([`Fields`]) and unknown fields are refused ([`only_keys`], `deny_unknown_fields`),
//!   so a misspelt option is an error.
//! - **Bytes are `Uint8Array`s**, in and out ([`bytes_arg`], [`serialize_bytes`],
//!   [`byte_arrays`]); a plain array of numbers is refused.
//! - **64-bit integers** (seqs, counters, amounts, times) are JS numbers up to
//!   `Number.MAX_SAFE_INTEGER` and `BigInt`s above, out ([`serialize_u64`], [`u64_value`]); in,
//!   either a safe non-negative integer number or a `BigInt` ([`u64_arg`]). TypeScript: `U64`.
//!   Times and sequence numbers the relay client takes are plain numbers ([`ms_arg`]).
//! - **Arguments arrive as `JsValue`** and are checked here: a value of the wrong type is
//!   `BAD_INPUT` naming the argument ([`args`]), never a wasm-bindgen exception without a code.
//!
//! [`args`] reads arguments, [`values`] makes results, [`doc`] reads document values and edits.

pub(crate) mod args;
#[cfg(feature = "doc")]
pub(crate) mod doc;
pub(crate) mod fields;
pub(crate) mod values;

pub(crate) use args::*;
#[cfg(feature = "doc")]
pub(crate) use doc::*;
pub(crate) use fields::Fields;
pub(crate) use values::*;
