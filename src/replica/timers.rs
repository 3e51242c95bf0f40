//! Deadlines that fall due by relay time (lease ends, task deadlines, recovery activations).
//!
//! The index is derived state: it is never serialized and is rebuilt from claims, tasks and
//! pending recoveries on restore. Entries may be stale (a lease renewed or released): whoever
//! fires a timer checks that the state still carries that exact due time, so stale entries never
//! change the outcome. Timers due at or before an entry's relay time fire before its op, in the
//! order `(due, kind, key bytes)`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What falls due. The discriminant order is the firing order among equal due times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    /// A task's deadline passes (key: task name). First, so that a claim held until the
    /// deadline is slashed with the task rather than lapsing with a refund.
    Deadline = 0,
    /// A claim's lease ends (key: resource name).
    Lease = 1,
    /// A scheduled recovery takes effect (key: agent id).
    Recovery = 2,
}

/// The timer index: a min-heap by `(due, kind, key bytes)`.
///
/// A heap rather than an ordered set for code size (one `BTreeSet` type costs the wasm build
/// about 8 KB). It pops in the same order; unlike a set it keeps a timer scheduled twice twice,
/// and the second one is stale by the time it pops (the first already fired), so it changes
/// nothing, as any stale entry.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(u64, TimerKind, Vec<u8>)>>,
}

impl Timers {
    /// Schedules `kind` for `key` at `due`.
    pub(crate) fn schedule(&mut self, due: u64, kind: TimerKind, key: &[u8]) {
        self.heap.push(Reverse((due, kind, key.to_vec())));
    }

    /// Takes the earliest timer due at or before `now`, if any.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<(u64, TimerKind, Vec<u8>)> {
        match self.heap.peek() {
            Some(Reverse((due, _, _))) if *due <= now => {
                self.heap.pop().map(|Reverse(timer)| timer)
            }
            _ => None,
        }
    }
}
