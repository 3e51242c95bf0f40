//! Deadlines that fall due by relay time (lease ends, task deadlines, recovery activations).
//!
//! The index is derived state: it is never serialized and is rebuilt from claims, tasks and
//! pending recoveries on restore. Entries may be stale (a lease renewed or released): whoever
//! fires a timer checks that the state still carries that exact due time, so stale entries never
//! change the outcome. Timers due at or before an entry's relay time fire before its op, in the
//! order `(due, kind, key bytes)`.

use std::collections::BTreeSet;

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

/// The timer index.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    set: BTreeSet<(u64, TimerKind, Vec<u8>)>,
}

impl Timers {
    /// Schedules `kind` for `key` at `due`.
    pub(crate) fn schedule(&mut self, due: u64, kind: TimerKind, key: &[u8]) {
        self.set.insert((due, kind, key.to_vec()));
    }

    /// Takes the earliest timer due at or before `now`, if any.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<(u64, TimerKind, Vec<u8>)> {
        match self.set.first() {
            Some((due, _, _)) if *due <= now => self.set.pop_first(),
            _ => None,
        }
    }
}
