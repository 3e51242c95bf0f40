//! Replica events the relay pushes (`event` frames, PROTOCOL.md 8.5): delivered to the caller at
//! once, and checked against the session's own replica when it keeps one of the topic.
//!
//! A version 1 relay pushes a losing claimant its `compensation` event right after the entry is
//! committed, so that a client that does not follow the topic still learns it lost. The push
//! and the entry travel separately (the entry with the subscription, if any), in either order:
//! a push for an entry the replica has not reached waits for it (at most
//! [`MAX_RECENT_EVENTS`] per topic); a push for one it passed is compared with the
//! compensations of ours it produced over the last [`MAX_RECENT_EVENTS`] entries. The
//! comparison needs the replica's JSON view, so it is made with the `doc` feature (on in the
//! npm package); without it pushes are delivered unchecked.

use super::{Fault, Session, SessionEvent};
use crate::replica::Event;

/// How far back (in entries) pushes are compared, and most pushes waiting for their entry, per
/// topic.
pub const MAX_RECENT_EVENTS: usize = 256;

/// Whether this build can compare events (see the module docs).
const COMPARES: bool = cfg!(feature = "doc");

impl Session {
    pub(super) fn on_pushed(&mut self, topic: String, seq: u64, event: Vec<u8>) {
        self.events.push_back(SessionEvent::Pushed {
            topic: topic.clone(),
            seq,
            event: event.clone(),
        });
        let Some(followed) = self.topics.get_mut(&topic) else {
            return;
        };
        if !COMPARES || followed.replica.is_none() {
            return;
        }
        if seq >= followed.cursor {
            if followed.pushed.len() < MAX_RECENT_EVENTS {
                followed.pushed.entry(seq).or_default().push(event);
            }
            return;
        }
        let remembered = followed.first_applied.is_some_and(|first| seq >= first)
            && seq.saturating_add(MAX_RECENT_EVENTS as u64) >= followed.cursor;
        let matches = followed
            .recent_ours
            .get(&seq)
            .is_some_and(|ours| ours.iter().any(|e| same_event(e, &event)));
        if matches || !remembered {
            return;
        }
        self.misbehaviour(
            &topic,
            Fault::EventMismatch {
                seq,
                reason: "the replica gave us no such compensation for that entry".into(),
            },
        );
    }

    /// After the replica applied entry `seq` of `name` with `events`: remembers our
    /// compensations and checks the pushes that waited for this entry.
    pub(super) fn check_pushed(&mut self, name: &str, seq: u64, events: &[Event]) {
        if !COMPARES {
            return;
        }
        let me = self.identity.agent_id();
        let Some(topic) = self.topics.get_mut(name) else {
            return;
        };
        topic.first_applied.get_or_insert(seq);
        let ours: Vec<Vec<u8>> = events
            .iter()
            .filter(|e| matches!(e, Event::Compensation { loser, .. } if *loser == me))
            .filter_map(to_json)
            .collect();
        if !ours.is_empty() {
            topic.recent_ours.insert(seq, ours);
        }
        let floor = seq.saturating_sub(MAX_RECENT_EVENTS as u64);
        topic.recent_ours = topic.recent_ours.split_off(&floor);
        let Some(pushed) = topic.pushed.remove(&seq) else {
            return;
        };
        let produced: Vec<Vec<u8>> = events.iter().filter_map(to_json).collect();
        for event in pushed {
            if !produced.iter().any(|e| same_event(e, &event)) {
                self.misbehaviour(
                    name,
                    Fault::EventMismatch {
                        seq,
                        reason: "the replica produced no such event for that entry".into(),
                    },
                );
            }
        }
    }
}

#[cfg(feature = "doc")]
fn to_json(event: &Event) -> Option<Vec<u8>> {
    serde_json::to_vec(event).ok()
}

#[cfg(feature = "doc")]
fn same_event(a: &[u8], b: &[u8]) -> bool {
    match (
        serde_json::from_slice::<serde_json::Value>(a),
        serde_json::from_slice::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

// Without the replica's JSON view nothing is compared (`COMPARES` is false).
#[cfg(not(feature = "doc"))]
fn to_json(_event: &Event) -> Option<Vec<u8>> {
    None
}

#[cfg(not(feature = "doc"))]
fn same_event(_a: &[u8], _b: &[u8]) -> bool {
    false
}
