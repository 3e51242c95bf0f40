//! The causal gate in front of Yrs: an update is integrated only once, for every client it
//! carries, its blocks continue that client's blocks in the document, with no gap before them or
//! between them. An update that does not is held here until the updates that fill the gap arrive.
//!
//! Why: Yjs keeps such blocks pending until the missing clocks arrive, but Yrs 0.28 integrates
//! them at once behind a placeholder for the gap, and a block that later depends on the missing
//! clocks can then wait forever (see `notes/doc-convergence.md`): replicas that received the same
//! updates in different orders diverged. Behind this gate Yrs only ever sees updates in the
//! per-client order Yjs itself would integrate; dependencies across clients (an item whose left
//! or right neighbour is another client's missing item) are still held by Yrs, exactly as in Yjs.
//!
//! Held updates are released as soon as the document reaches them. Updates whose gaps only fill
//! each other (one carries clocks 0..3 and 5..8 of a client, another 3..5) are released merged.
//! The hold is bounded in count and bytes ([`MAX_HELD_UPDATES`], [`MAX_HELD_BYTES`]), and so is
//! the search for such sets.

use yrs::updates::decoder::Decode;
use yrs::{IdSet, StateVector, Update};

use crate::error::{Error, Result};

/// Most updates held for missing predecessors at once.
pub const MAX_HELD_UPDATES: usize = 1024;
/// Most rounds spent looking for held updates that continue the document only together: each
/// round merges the clock ranges of every candidate, so this bounds the work one update can
/// cause. Gaps that fill each other directly (the usual case) take one or two rounds.
const MAX_MERGED_RELEASE_ROUNDS: usize = 8;
/// Most bytes (v1 encoding) held for missing predecessors at once: 64 MiB.
pub const MAX_HELD_BYTES: usize = 64 * 1024 * 1024;

/// One update waiting for the clocks before it.
#[derive(Debug)]
struct Held {
    /// The update, v1 encoding.
    bytes: Vec<u8>,
    /// The clock ranges it inserts (items and garbage-collected runs), per client.
    insertions: IdSet,
}

/// The updates a document holds back from Yrs.
#[derive(Debug, Default)]
pub(crate) struct HeldUpdates {
    held: Vec<Held>,
    bytes: usize,
}

/// Whether an update inserting `insertions` continues, for every client, the blocks a document
/// with state vector `state` has: no clock range starts beyond what the document and the update's
/// own earlier ranges cover.
pub(crate) fn continues(insertions: &IdSet, state: &StateVector) -> bool {
    insertions
        .iter()
        .all(|(client, ranges)| continues_from(state.get(client), ranges))
}

/// The clients for which `insertions` does not continue `state`.
fn gaps(insertions: &IdSet, state: &StateVector) -> Vec<yrs::block::ClientID> {
    insertions
        .iter()
        .filter(|(client, ranges)| !continues_from(state.get(client), ranges.iter()))
        .map(|(client, _)| *client)
        .collect()
}

/// Whether the clock ranges of one client (ascending) continue from clock `covered` with no gap.
fn continues_from<'a>(
    mut covered: u32,
    ranges: impl IntoIterator<Item = &'a std::ops::Range<u32>>,
) -> bool {
    ranges.into_iter().all(|range| {
        let next = range.start <= covered;
        covered = covered.max(range.end);
        next
    })
}

fn bad(e: impl core::fmt::Display) -> Error {
    Error::BadUpdate(e.to_string())
}

impl HeldUpdates {
    /// Whether nothing is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The held updates, v1 encoding, oldest first.
    pub(crate) fn updates(&self) -> impl Iterator<Item = &[u8]> {
        self.held.iter().map(|h| h.bytes.as_slice())
    }

    /// Holds `update` (v1 encoding) until its predecessors arrive. An update already held is not
    /// held twice.
    ///
    /// Errors: `LIMIT_EXCEEDED` when holding it would pass [`MAX_HELD_UPDATES`] or
    /// [`MAX_HELD_BYTES`] (nothing is held then).
    pub(crate) fn hold(&mut self, bytes: Vec<u8>, insertions: IdSet) -> Result<()> {
        if self.held.iter().any(|h| h.bytes == bytes) {
            return Ok(());
        }
        if self.held.len() >= MAX_HELD_UPDATES {
            return Err(Error::LimitExceeded {
                what: "updates held for missing predecessors",
                limit: MAX_HELD_UPDATES,
                got: self.held.len() + 1,
            });
        }
        let total = self.bytes + bytes.len();
        if total > MAX_HELD_BYTES {
            return Err(Error::LimitExceeded {
                what: "bytes of updates held for missing predecessors",
                limit: MAX_HELD_BYTES,
                got: total,
            });
        }
        self.bytes = total;
        self.held.push(Held { bytes, insertions });
        Ok(())
    }

    /// Takes out what a document with state vector `state` can integrate now: the oldest held
    /// update that continues it, or else the merge of held updates that only continue it
    /// together. `None` when nothing can be released.
    ///
    /// Errors: `BAD_UPDATE` if held updates cannot be merged (they all decoded when held).
    pub(crate) fn release(&mut self, state: &StateVector) -> Result<Option<Update>> {
        if let Some(i) = self
            .held
            .iter()
            .position(|h| continues(&h.insertions, state))
        {
            let held = self.take(&[i]).pop().map(|h| h.bytes).unwrap_or_default();
            return Update::decode_v1(&held).map(Some).map_err(bad);
        }
        // Drop from the candidates every update that touches a client their union still leaves
        // a gap for, until the union continues the document or fewer than two remain. Only the
        // clock ranges are compared; the bytes are merged once, for a set that will be released.
        let mut candidates: Vec<usize> = (0..self.held.len()).collect();
        for _ in 0..MAX_MERGED_RELEASE_ROUNDS {
            if candidates.len() < 2 {
                break;
            }
            let union = candidates.iter().fold(IdSet::new(), |union, &i| {
                union.merge(&self.held[i].insertions)
            });
            let open = gaps(&union, state);
            if open.is_empty() {
                let merged =
                    yrs::merge_updates_v1(candidates.iter().map(|&i| &self.held[i].bytes[..]))
                        .map_err(bad)?;
                let update = Update::decode_v1(&merged).map_err(bad)?;
                self.take(&candidates);
                return Ok(Some(update));
            }
            let before = candidates.len();
            candidates.retain(|&i| {
                let insertions = &self.held[i].insertions;
                !open.iter().any(|client| insertions.get(client).is_some())
            });
            if candidates.len() == before {
                break;
            }
        }
        Ok(None)
    }

    /// Removes the held updates at `indices` (ascending) and returns them.
    fn take(&mut self, indices: &[usize]) -> Vec<Held> {
        let mut taken = Vec::with_capacity(indices.len());
        for &i in indices.iter().rev() {
            let held = self.held.remove(i);
            self.bytes -= held.bytes.len();
            taken.push(held);
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::block::ClientID;

    fn set(ranges: &[(u64, std::ops::Range<u32>)]) -> IdSet {
        let mut set = IdSet::new();
        for (client, range) in ranges {
            set.insert(
                yrs::ID::new(ClientID::new(*client), range.start),
                range.end - range.start,
            );
        }
        set
    }

    fn state(clocks: &[(u64, u32)]) -> StateVector {
        let mut sv = StateVector::default();
        for &(client, clock) in clocks {
            sv.set_max(ClientID::new(client), clock);
        }
        sv
    }

    #[test]
    fn continues_only_without_a_gap_before_or_inside() {
        assert!(continues(&set(&[(1, 0..3)]), &state(&[])));
        assert!(continues(&set(&[(1, 2..5)]), &state(&[(1, 2)])));
        assert!(
            continues(&set(&[(1, 0..5)]), &state(&[(1, 9)])),
            "already known"
        );
        assert!(!continues(&set(&[(1, 3..5)]), &state(&[(1, 2)])));
        assert!(!continues(&set(&[(1, 0..3), (1, 5..8)]), &state(&[])));
        assert!(continues(&set(&[(1, 0..3), (1, 5..8)]), &state(&[(1, 5)])));
        assert!(!continues(&set(&[(1, 0..1), (2, 4..5)]), &state(&[(2, 1)])));
        assert_eq!(
            gaps(&set(&[(1, 0..1), (2, 4..5)]), &state(&[(2, 1)])),
            vec![ClientID::new(2)]
        );
    }

    #[test]
    fn the_hold_is_bounded_and_keeps_one_copy() {
        let mut held = HeldUpdates::default();
        held.hold(vec![1, 2], IdSet::new()).unwrap();
        held.hold(vec![1, 2], IdSet::new()).unwrap();
        assert_eq!(held.updates().count(), 1);
        let err = held
            .hold(vec![0; MAX_HELD_BYTES], IdSet::new())
            .unwrap_err();
        assert_eq!(err.code(), "LIMIT_EXCEEDED");
        assert_eq!(held.updates().count(), 1);
        for i in 1..MAX_HELD_UPDATES as u32 {
            held.hold(i.to_be_bytes().to_vec(), IdSet::new()).unwrap();
        }
        let err = held.hold(vec![9; 9], IdSet::new()).unwrap_err();
        assert_eq!(err.code(), "LIMIT_EXCEEDED");
        assert_eq!(held.updates().count(), MAX_HELD_UPDATES);
    }
}
