//! Shared documents: Yrs (the Rust port of Yjs) documents, wire-compatible with Yjs and
//! y-protocols, with signed updates. Feature `doc` (on by default).
//!
//! - [`Doc`]: text, map and array roots edited without transactions in the API; observe changes
//!   ([`Doc::observe`]); exchange in the Yjs update formats v1 and v2.
//! - [`UndoHistory`]: undo/redo of local edits.
//! - [`merge_updates`], [`diff_update`], [`compact_updates`]: updates as bytes, no document.
//! - [`ProtocolMessage`] and [`DocSync`]: y-protocols sync and awareness, sans-IO.
//! - [`SignedDoc`], [`sign_update`]: `doc.update` ops; [`SignedAwareness`]: `doc.awareness` ops.
//!
//! Normative formats: PROTOCOL.md section 7.
//!
//! ```
//! use ants_coord::doc::{Doc, DocSync};
//!
//! let alice = Doc::new();
//! alice.insert_text("body", 0, "hello")?;
//! let bob = Doc::new();
//! bob.apply_update(&alice.encode_update(Some(&bob.state_vector()?))?)?;
//! assert_eq!(bob.text("body")?, "hello");
//! # Ok::<(), ants_coord::Error>(())
//! ```

mod awareness;
mod causal;
mod coalesce;
mod document;
pub mod lib0;
mod observe;
mod protocol;
mod signed;
mod sync;
mod undo;
mod updates;
mod value;

pub use awareness::{
    sign_awareness, AwarenessBody, AwarenessChanges, AwarenessStates, SignedAwareness,
    SignedPresence, AWARENESS_BODY_VERSION, AWARENESS_KIND, AWARENESS_TIMEOUT_MS,
};
pub use causal::{MAX_HELD_BYTES, MAX_HELD_UPDATES};
pub use document::{
    Doc, DocOptions, RootKind, TextEdit, MAX_BATCH_EDITS, MAX_STATE_VECTOR_LEN, MAX_UPDATE_LEN,
};
pub use observe::{ChangedRoot, DocChange, DocSubscription};
pub use protocol::{
    AwarenessEntry, AwarenessUpdate, ProtocolMessage, SyncMessage, MAX_AWARENESS_CLIENTS,
    MAX_AWARENESS_STATE_LEN, MAX_MESSAGE_LEN, MESSAGE_AUTH, MESSAGE_AWARENESS,
    MESSAGE_QUERY_AWARENESS, MESSAGE_SYNC, SYNC_STEP_1, SYNC_STEP_2, SYNC_UPDATE,
};
pub use signed::{
    decode_update_body, encode_update_body, sign_update, SignedDoc, MAX_SIGNED_UPDATE_LEN,
    MAX_WRITERS, UPDATE_BODY_VERSION, UPDATE_KIND,
};
pub use sync::{DocSync, SyncOutcome};
pub use undo::UndoHistory;
pub use updates::{
    compact_updates, diff_update, diff_update_v2, merge_updates, merge_updates_v2,
    state_vector_from_update, MAX_MERGE_UPDATES,
};
pub use value::{DocValue, MAX_VALUE_DEPTH};
