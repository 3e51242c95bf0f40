//! # ants-coord
//!
//! Coordination for agents, web apps and edge functions **without a consensus protocol**.
//!
//! Agents sign operations ([`op`]) with ed25519 identities ([`identity`]); a relay numbers them
//! per topic (an owned topic `@<agent id>/…` only from its owner and holders of its
//! [`capability`]s); every replica folds the same ordered log through the same deterministic reducer and
//! so reaches the same state. The core does no I/O and knows nothing of JavaScript: the same code
//! runs natively (in the relay) and as WebAssembly (in browsers, Node, Deno and edge workers,
//! through the bindings in `src/wasm/`).
//!
//! ```
//! use ants_coord::{Identity, OpDraft, SignedOp};
//!
//! let alice = Identity::from_seed(&[7; 32])?;
//! let op = SignedOp::sign(&alice, OpDraft {
//!     topic: "tasks".into(),
//!     kind: "post".into(),
//!     counter: 0,
//!     time_ms: 1_700_000_000_000,
//!     deps: vec![],
//!     body: b"hello".to_vec(),
//! })?;
//! let received = SignedOp::decode(op.as_bytes())?; // verifies the signature
//! assert_eq!(received.author(), &alice.agent_id());
//! # Ok::<(), ants_coord::Error>(())
//! ```
//!
//! # Features
//!
//! - `doc` (**on by default**): shared documents ([`doc`]) — Yrs, the Rust port of Yjs, with
//!   the Yjs update formats, y-protocols sync/awareness messages and signed `doc.update` ops.
//!   Turn it off (`--no-default-features`) for the small identity/op core without yrs.
//! - `relay`: the native relay server ([`relay`], binaries `ants-relay` and `ants-load`):
//!   tokio, axum, SQLite (bundled). Never compiled for `wasm32`.
//! - `nats`: the relay's JetStream store primitives (`relay::jetstream`, async-nats): topic
//!   logs on one replicated NATS JetStream stream, heads, op-id index, snapshots and frontend
//!   heartbeats in KV buckets. Turns `relay` on.

#![deny(missing_docs)]
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![forbid(unsafe_code)]

pub mod capability;
pub mod codec;
#[cfg(feature = "doc")]
pub mod doc;
pub mod election;
pub mod entry;
pub mod error;
pub mod identity;
pub mod log;
pub mod op;
pub mod replica;
pub mod session;
mod sorted_map;
pub mod wire;

#[cfg(all(feature = "relay", not(target_arch = "wasm32")))]
pub mod relay;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use capability::{Capability, Right, Rights, Scope};
pub use entry::Entry;
pub use error::{Error, Result};
pub use identity::{verify_batch, verify_signature, AgentId, Identity};
pub use log::{
    ConsistencyProof, Evidence, InclusionProof, LogFollower, MerkleLog, SignedCheckpoint,
    SignedReceipt, SignedTreeHead, Violation,
};
pub use op::{OpDraft, OpId, SignedOp};
pub use replica::{Event, Replica, ReplicaConfig, ReplicaOp};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use session::{Fault, Session, SessionEvent};
