//! Awareness (presence): who is here and where their cursor is, expiring when not renewed.
//!
//! Two stores with the same rules, and no clock inside either — every call takes the time:
//!
//! - [`AwarenessStates`]: the y-protocols awareness CRDT keyed by Yjs client id, as stock Yjs
//!   clients speak it (unsigned). A higher clock replaces a lower one; a `null` state at the same
//!   clock removes; a remote state not renewed within [`AWARENESS_TIMEOUT_MS`] is dropped.
//! - [`SignedAwareness`]: the same, keyed by agent id, fed with signed `doc.awareness` ops
//!   (PROTOCOL.md section 7) so presence cannot be forged, and subject to the writer set.

use std::collections::{BTreeMap, BTreeSet};

use super::protocol::{parse_state, AwarenessEntry, AwarenessUpdate, MAX_AWARENESS_STATE_LEN};
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::identity::{AgentId, Identity};
use crate::op::{OpDraft, SignedOp};

/// A state not renewed within this time is dropped (y-protocols `outdatedTimeout`).
pub const AWARENESS_TIMEOUT_MS: u64 = 30_000;
/// Op kind of a signed awareness state.
pub const AWARENESS_KIND: &str = "doc.awareness";
/// Version byte of a `doc.awareness` body.
pub const AWARENESS_BODY_VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Presence {
    clock: u64,
    state: Option<String>,
    updated_ms: u64,
}

/// Which clients an awareness update added, updated or removed.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct AwarenessChanges {
    /// Clients seen for the first time.
    pub added: Vec<u64>,
    /// Clients whose state changed or was renewed.
    pub updated: Vec<u64>,
    /// Clients that left or expired.
    pub removed: Vec<u64>,
}

impl AwarenessChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }
}

/// The y-protocols awareness states of every client of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwarenessStates {
    local_id: u64,
    entries: BTreeMap<u64, Presence>,
}

impl AwarenessStates {
    /// An empty set for the local client `local_id` (its Yjs client id).
    pub fn new(local_id: u64) -> Self {
        AwarenessStates {
            local_id,
            entries: BTreeMap::new(),
        }
    }

    /// The local client id.
    pub fn local_id(&self) -> u64 {
        self.local_id
    }

    /// Sets (JSON text) or clears (`None`) the local state; returns the update to broadcast.
    /// Errors: `MALFORMED` if not JSON, `LIMIT_EXCEEDED` over [`MAX_AWARENESS_STATE_LEN`].
    pub fn set_local_state(&mut self, state: Option<&str>, now_ms: u64) -> Result<AwarenessUpdate> {
        let state = match state {
            Some(json) => {
                if json.len() > MAX_AWARENESS_STATE_LEN {
                    return Err(Error::LimitExceeded {
                        what: "awareness state length",
                        limit: MAX_AWARENESS_STATE_LEN,
                        got: json.len(),
                    });
                }
                parse_state(json)?
            }
            None => None,
        };
        // Clocks start at 1: y-protocols ignores clock 0 from a client it has not seen.
        let clock = self.entries.get(&self.local_id).map_or(1, |p| p.clock + 1);
        self.entries.insert(
            self.local_id,
            Presence {
                clock,
                state: state.clone(),
                updated_ms: now_ms,
            },
        );
        Ok(AwarenessUpdate {
            entries: vec![AwarenessEntry {
                client_id: self.local_id,
                clock,
                state,
            }],
        })
    }

    /// The local state, if set.
    pub fn local_state(&self) -> Option<&str> {
        self.state(self.local_id)
    }

    /// The state of `client_id`, if present.
    pub fn state(&self, client_id: u64) -> Option<&str> {
        self.entries.get(&client_id)?.state.as_deref()
    }

    /// Every present state, by client id.
    pub fn states(&self) -> BTreeMap<u64, String> {
        self.entries
            .iter()
            .filter_map(|(id, p)| p.state.clone().map(|s| (*id, s)))
            .collect()
    }

    /// Integrates a peer's update by the y-protocols rule (`applyAwarenessUpdate`).
    pub fn apply(&mut self, update: &AwarenessUpdate, now_ms: u64) -> AwarenessChanges {
        let mut changes = AwarenessChanges::default();
        for entry in &update.entries {
            let current = self.entries.get(&entry.client_id);
            let current_clock = current.map_or(0, |p| p.clock);
            let had_state = current.is_some_and(|p| p.state.is_some());
            let newer = current_clock < entry.clock
                || (current_clock == entry.clock && entry.state.is_none() && had_state);
            if !newer {
                continue;
            }
            let mut clock = entry.clock;
            let mut state = entry.state.clone();
            if entry.client_id == self.local_id && state.is_none() && self.local_state().is_some() {
                // Someone says we left while we are here: override with a newer clock.
                clock += 1;
                state = self.local_state().map(str::to_owned);
            }
            let before = current.and_then(|p| p.state.clone());
            self.entries.insert(
                entry.client_id,
                Presence {
                    clock,
                    state: state.clone(),
                    updated_ms: now_ms,
                },
            );
            match (before, state) {
                (None, Some(_)) => changes.added.push(entry.client_id),
                (Some(_), None) => changes.removed.push(entry.client_id),
                (Some(_), Some(_)) => changes.updated.push(entry.client_id),
                (None, None) => {}
            }
        }
        changes
    }

    /// The update describing `clients` (all known clients when `None`), for a newcomer or an
    /// answer to a query.
    pub fn encode(&self, clients: Option<&[u64]>) -> AwarenessUpdate {
        let entry = |(id, p): (&u64, &Presence)| AwarenessEntry {
            client_id: *id,
            clock: p.clock,
            state: p.state.clone(),
        };
        AwarenessUpdate {
            entries: match clients {
                None => self.entries.iter().map(entry).collect(),
                Some(ids) => ids
                    .iter()
                    .filter_map(|id| self.entries.get_key_value(id).map(entry))
                    .collect(),
            },
        }
    }

    /// Drops remote states not renewed within [`AWARENESS_TIMEOUT_MS`] before `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> AwarenessChanges {
        let mut changes = AwarenessChanges::default();
        let local = self.local_id;
        for (id, p) in self.entries.iter_mut() {
            if *id != local
                && p.state.is_some()
                && now_ms.saturating_sub(p.updated_ms) >= AWARENESS_TIMEOUT_MS
            {
                p.state = None;
                changes.removed.push(*id);
            }
        }
        changes
    }

    /// If the local state is more than half the timeout old, renews it (same state, next clock)
    /// and returns the update to broadcast, as y-protocols does every 15 s.
    pub fn renew_local(&mut self, now_ms: u64) -> Option<AwarenessUpdate> {
        let presence = self.entries.get(&self.local_id)?;
        let state = presence.state.clone()?;
        if now_ms.saturating_sub(presence.updated_ms) < AWARENESS_TIMEOUT_MS / 2 {
            return None;
        }
        self.set_local_state(Some(&state), now_ms).ok()
    }
}

/// A decoded `doc.awareness` body: `version(1) ‖ client_id u64 ‖ clock u64 ‖ state`, where the
/// state is the rest of the body (JSON text; empty when the agent leaves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwarenessBody {
    /// The Yjs client id the agent edits with (ties the presence to its cursor), ≤ 2^53 − 1.
    pub client_id: u64,
    /// The agent's awareness clock: a higher clock replaces a lower one.
    pub clock: u64,
    /// The JSON state, `None` when leaving.
    pub state: Option<String>,
}

impl AwarenessBody {
    /// The canonical body bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_u8(AWARENESS_BODY_VERSION);
        out.put_u64(self.client_id);
        out.put_u64(self.clock);
        out.put(self.state.as_deref().unwrap_or("").as_bytes());
        out
    }

    /// Decodes and checks a body.
    pub fn decode(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new("doc.awareness body", body);
        let version = r.u8("version")?;
        if version != AWARENESS_BODY_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "doc.awareness body",
                version,
            });
        }
        let client_id = r.u64("client id")?;
        if client_id > super::lib0::MAX_SAFE_INTEGER {
            return Err(Error::malformed(
                "doc.awareness body",
                "client id over 2^53",
            ));
        }
        let clock = r.u64("clock")?;
        let rest = r.take(r.remaining(), "state")?;
        r.finish()?;
        if rest.len() > MAX_AWARENESS_STATE_LEN {
            return Err(Error::LimitExceeded {
                what: "awareness state length",
                limit: MAX_AWARENESS_STATE_LEN,
                got: rest.len(),
            });
        }
        let state = if rest.is_empty() {
            None
        } else {
            let json = std::str::from_utf8(rest)
                .map_err(|_| Error::malformed("doc.awareness body", "state is not UTF-8"))?;
            match parse_state(json)? {
                Some(json) => Some(json),
                None => {
                    return Err(Error::NonCanonical {
                        what: "doc.awareness body",
                        reason: "leaving is an empty state, not null".into(),
                    })
                }
            }
        };
        Ok(AwarenessBody {
            client_id,
            clock,
            state,
        })
    }
}

/// Signs an awareness state as `identity` for the document topic `topic`.
pub fn sign_awareness(
    identity: &Identity,
    topic: &str,
    counter: u64,
    time_ms: u64,
    body: &AwarenessBody,
) -> Result<SignedOp> {
    if let Some(json) = &body.state {
        parse_state(json)?;
    }
    SignedOp::sign(
        identity,
        OpDraft {
            topic: topic.to_owned(),
            kind: AWARENESS_KIND.into(),
            counter,
            time_ms,
            deps: vec![],
            body: body.encode(),
        },
    )
}

/// One agent's signed presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPresence {
    /// The decoded body.
    pub body: AwarenessBody,
    /// When it was last renewed (relay time, or the caller's time).
    pub updated_ms: u64,
}

/// Presence of the agents of one document topic, from signed `doc.awareness` ops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAwareness {
    topic: String,
    writers: Option<BTreeSet<AgentId>>,
    entries: BTreeMap<AgentId, SignedPresence>,
}

impl SignedAwareness {
    /// Presence for `topic`; when `writers` is given, only those agents may be present.
    pub fn new(topic: &str, writers: Option<BTreeSet<AgentId>>) -> Self {
        SignedAwareness {
            topic: topic.to_owned(),
            writers,
            entries: BTreeMap::new(),
        }
    }

    /// Checks a verified op without applying it: kind, topic, writer set, body.
    pub fn check(&self, op: &SignedOp) -> Result<AwarenessBody> {
        if op.kind() != AWARENESS_KIND {
            return Err(Error::BadKind(format!(
                "expected {AWARENESS_KIND}, got {}",
                op.kind()
            )));
        }
        if op.topic() != self.topic {
            return Err(Error::BadTopic(format!(
                "op for {:?} given to the presence of {:?}",
                op.topic(),
                self.topic
            )));
        }
        super::signed::check_writer(self.writers.as_ref(), op.author())?;
        AwarenessBody::decode(op.body())
    }

    /// Verifies signed op bytes and applies them at time `now_ms` (use the relay time of the
    /// entry that carried the op). Returns whether the agent's presence changed.
    pub fn apply_bytes(&mut self, op_bytes: &[u8], now_ms: u64) -> Result<bool> {
        let op = SignedOp::decode(op_bytes)?;
        self.apply(&op, now_ms)
    }

    /// Applies an op whose signature was verified ([`SignedOp`] guarantees it).
    pub fn apply(&mut self, op: &SignedOp, now_ms: u64) -> Result<bool> {
        let body = self.check(op)?;
        if let Some(current) = self.entries.get(op.author()) {
            if current.body.clock >= body.clock {
                return Ok(false);
            }
        }
        // A departure is kept (state None) so that its clock still outranks replays.
        self.entries.insert(
            *op.author(),
            SignedPresence {
                body,
                updated_ms: now_ms,
            },
        );
        Ok(true)
    }

    /// Drops presences not renewed within [`AWARENESS_TIMEOUT_MS`] before `now_ms`; returns who.
    pub fn expire(&mut self, now_ms: u64) -> Vec<AgentId> {
        let expired: Vec<AgentId> = self
            .entries
            .iter()
            .filter(|(_, p)| {
                p.body.state.is_some()
                    && now_ms.saturating_sub(p.updated_ms) >= AWARENESS_TIMEOUT_MS
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            if let Some(p) = self.entries.get_mut(id) {
                p.body.state = None;
            }
        }
        expired
    }

    /// The present agents (those with a state) and their presence.
    pub fn present(&self) -> BTreeMap<AgentId, SignedPresence> {
        self.entries
            .iter()
            .filter(|(_, p)| p.body.state.is_some())
            .map(|(id, p)| (*id, p.clone()))
            .collect()
    }
}
