//! Working on Yjs updates as bytes, without a document: merge, diff, compaction.
//!
//! These are the counterparts of `Y.mergeUpdates`, `Y.diffUpdate` and
//! `Y.encodeStateVectorFromUpdate`, byte-compatible with them.
//!
//! # Compaction and garbage collection, and their limits
//!
//! - [`merge_updates`] joins many updates into one that is equivalent to applying them all; it
//!   keeps everything, including the content of deleted items (it cannot know whether a peer
//!   still needs it).
//! - [`compact_updates`] goes further: it integrates the updates into a fresh document with
//!   garbage collection on and encodes that document's snapshot. The content of deleted items is
//!   replaced by tombstones that record only their ids and lengths; runs of tombstones collapse.
//! - What can never be reclaimed: the ids of deleted items (every peer may still send an edit
//!   positioned relative to them, so a tombstone per deleted run stays forever), each client's
//!   entry in the state vector, and deletions in a text whose items are still referenced by a
//!   live item. Compaction also drops nothing a peer has not seen: a peer holding an old update
//!   can still send it and it integrates (as a no-op for what is already known).
//! - Updates whose dependencies are missing are carried along as "pending" and are kept by
//!   both functions until the missing updates arrive.

use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::Update;

use super::document::{decode_state_vector, Doc, DocOptions, MAX_UPDATE_LEN};
use crate::error::{Error, Result};

/// Most updates one merge takes.
pub const MAX_MERGE_UPDATES: usize = 1 << 20;

fn check_inputs<B: AsRef<[u8]>>(updates: &[B]) -> Result<()> {
    if updates.len() > MAX_MERGE_UPDATES {
        return Err(Error::LimitExceeded {
            what: "updates in one merge",
            limit: MAX_MERGE_UPDATES,
            got: updates.len(),
        });
    }
    let total: usize = updates.iter().map(|u| u.as_ref().len()).sum();
    if total > MAX_UPDATE_LEN {
        return Err(Error::LimitExceeded {
            what: "total update length",
            limit: MAX_UPDATE_LEN,
            got: total,
        });
    }
    Ok(())
}

fn bad(e: impl core::fmt::Display) -> Error {
    Error::BadUpdate(e.to_string())
}

/// Merges v1 updates into one v1 update (`Y.mergeUpdates`).
pub fn merge_updates<B: AsRef<[u8]>>(updates: &[B]) -> Result<Vec<u8>> {
    check_inputs(updates)?;
    yrs::merge_updates_v1(updates.iter().map(AsRef::as_ref)).map_err(bad)
}

/// Merges v2 updates into one v2 update (`Y.mergeUpdatesV2`).
pub fn merge_updates_v2<B: AsRef<[u8]>>(updates: &[B]) -> Result<Vec<u8>> {
    check_inputs(updates)?;
    yrs::merge_updates_v2(updates.iter().map(AsRef::as_ref)).map_err(bad)
}

/// The part of a v1 update that a peer with `state_vector` (v1) lacks (`Y.diffUpdate`).
pub fn diff_update(update: &[u8], state_vector: &[u8]) -> Result<Vec<u8>> {
    check_inputs(&[update])?;
    decode_state_vector(state_vector)?;
    yrs::diff_updates_v1(update, state_vector).map_err(bad)
}

/// The part of a v2 update that a peer with `state_vector` (v1) lacks (`Y.diffUpdateV2`).
pub fn diff_update_v2(update: &[u8], state_vector: &[u8]) -> Result<Vec<u8>> {
    check_inputs(&[update])?;
    // yrs' v2 diff reads the state vector with the v2 decoder; Yjs' is v1: re-encode it.
    let sv = decode_state_vector(state_vector)?;
    yrs::diff_updates_v2(update, &sv.encode_v2()).map_err(bad)
}

/// The state vector (v1) of what a v1 update contains (`Y.encodeStateVectorFromUpdate`).
pub fn state_vector_from_update(update: &[u8]) -> Result<Vec<u8>> {
    check_inputs(&[update])?;
    yrs::encode_state_vector_from_update_v1(update).map_err(bad)
}

/// Compaction: integrates v1 updates into a fresh garbage-collected document and returns its
/// snapshot (one v1 update). See the module documentation for what is and is not reclaimed.
pub fn compact_updates<B: AsRef<[u8]>>(updates: &[B]) -> Result<Vec<u8>> {
    check_inputs(updates)?;
    let doc = Doc::with_options(DocOptions {
        client_id: Some(0),
        gc: true,
    });
    for update in updates {
        let update = Update::decode_v1(update.as_ref()).map_err(bad)?;
        doc.apply_decoded(update)?;
    }
    doc.encode_update(None)
}
