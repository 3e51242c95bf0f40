//! How a [`Session`] handles what the relay sends: subscriptions, entries, receipts, signed
//! heads and refusals.

use super::{Awaited, Fault, Session, SessionEvent};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::log::{FollowerEvent, SignedReceipt, SignedTreeHead};
use crate::op::OpId;

impl Session {
    pub(super) fn on_subscribed(
        &mut self,
        request_id: u32,
        name: String,
        from_seq: u64,
        head: u64,
    ) {
        let Some(topic) = self.topics.get(&name) else {
            return;
        };
        if topic.request_id != request_id {
            return;
        }
        let cursor = topic.cursor;
        if from_seq != cursor || head < cursor {
            self.misbehaviour(
                &name,
                Fault::BadSubscription {
                    reason: format!(
                        "asked from seq {cursor}, relay starts at {from_seq} with {head} entries"
                    ),
                },
            );
        }
        self.events.push_back(SessionEvent::Subscribed {
            topic: name,
            from_seq,
            head,
        });
    }

    /// An entry frame's bytes; `verified` is the entry already decoded with its signature
    /// verified (in a batch), else it is decoded and verified here.
    pub(super) fn on_entry(
        &mut self,
        request_id: u32,
        bytes: &[u8],
        verified: Option<Entry>,
    ) -> Result<()> {
        let Some(name) = self
            .topics
            .iter()
            .find(|(_, t)| t.request_id == request_id && request_id != 0)
            .map(|(name, _)| name.clone())
        else {
            return Ok(());
        };
        let decoded = match verified {
            Some(entry) => Ok(entry),
            None => Entry::decode(bytes),
        };
        let Some(topic) = self.topics.get_mut(&name) else {
            return Ok(());
        };
        let cursor = topic.cursor;
        let entry = match decoded {
            Ok(entry) if entry.topic() == name => entry,
            Ok(entry) => {
                let seq = entry.seq();
                self.misbehaviour(&name, Fault::InvalidEntry { seq });
                return self.gap_retry(&name);
            }
            Err(_) => {
                let seq = Entry::decode_unverified(bytes).map_or(cursor, |e| e.seq());
                if seq != cursor {
                    self.misbehaviour(&name, Fault::InvalidEntry { seq });
                    return self.gap_retry(&name);
                }
                // Still part of the relay's log: it takes the entry's place (never delivered),
                // the follower proves it once a signed head covers it, and the replica, which
                // cannot skip an entry, stops.
                topic.cursor += 1;
                topic.gap_retries = 0;
                topic.replica = None;
                let events = match topic.follower.as_mut() {
                    Some(follower) => follower.push_entry(bytes).unwrap_or_default(),
                    None => Vec::new(),
                };
                self.misbehaviour(&name, Fault::InvalidEntry { seq });
                return self.follower_events(&name, events);
            }
        };
        let seq = entry.seq();
        if seq < cursor {
            self.misbehaviour(&name, Fault::Duplicate { seq });
            return Ok(());
        }
        if seq > cursor {
            self.misbehaviour(
                &name,
                Fault::Gap {
                    expected: cursor,
                    got: seq,
                },
            );
            return self.gap_retry(&name);
        }
        topic.cursor += 1;
        topic.gap_retries = 0;
        let mut faults = Vec::new();
        let op = entry.op();
        if let Some(previous) = topic.last_counter.get(op.author()) {
            if *previous >= op.counter() {
                faults.push(Fault::AuthorOrder {
                    author: *op.author(),
                    previous: *previous,
                    counter: op.counter(),
                });
            }
        }
        let last = topic.last_counter.entry(*op.author()).or_insert(0);
        *last = (*last).max(op.counter());
        if let Some(awaited) = topic.awaited.remove(&seq) {
            if awaited.op_id != op.id() {
                faults.push(Fault::AcknowledgedOpMissing {
                    op_id: awaited.op_id,
                    seq,
                });
            }
        }
        if op.author() == &self.identity.agent_id() {
            let next = self.counters.entry(name.clone()).or_insert(0);
            *next = (*next).max(op.counter() + 1);
        }
        let follower_events = match topic.follower.as_mut() {
            // `entry` came from `Entry::decode` or a batch that verified: its signature holds.
            Some(follower) => follower.push_verified(&entry)?,
            None => Vec::new(),
        };
        let mut replica_events = Vec::new();
        if let Some(replica) = topic.replica.as_mut() {
            replica_events = replica.apply(&entry)?;
        }
        for fault in faults {
            self.misbehaviour(&name, fault);
        }
        self.events.push_back(SessionEvent::Entry {
            topic: name.clone(),
            entry,
        });
        for event in replica_events {
            self.events.push_back(SessionEvent::Replica {
                topic: name.clone(),
                event,
            });
        }
        // The follower's own `Entry` events duplicate ours; keep its verdicts.
        let verdicts = follower_events
            .into_iter()
            .filter(|e| !matches!(e, FollowerEvent::Entry(_)))
            .collect();
        self.follower_events(&name, verdicts)
    }

    pub(super) fn on_receipt(
        &mut self,
        request_id: u32,
        seq: u64,
        op_id: OpId,
        receipt: Vec<u8>,
        now_ms: u64,
    ) -> Result<()> {
        let Some(index) = self
            .unacked
            .iter()
            .position(|u| u.request_id == request_id && request_id != 0)
        else {
            return Ok(());
        };
        let op = self.unacked[index].op.clone();
        let topic = op.topic().to_owned();
        if op_id != op.id() {
            self.misbehaviour(
                &topic,
                Fault::BadReceipt {
                    reason: format!("receipt names op {op_id:?}, not {:?}", op.id()),
                },
            );
            return Ok(());
        }
        // Every receipt is signed (PROTOCOL.md 5.3, 8.8 rule 4): an empty one is refused too.
        let checked = self
            .relay
            .ok_or_else(|| Error::BadInput("receipt before the relay key is known".into()));
        let signed = match checked.and_then(|relay| SignedReceipt::decode(&receipt, &relay)) {
            Ok(r) if r.receipt().op_id == op_id && r.receipt().seq == seq => r,
            Ok(_) => {
                self.misbehaviour(
                    &topic,
                    Fault::BadReceipt {
                        reason: "signed receipt names another op or seq".into(),
                    },
                );
                return Ok(());
            }
            Err(error) => {
                self.misbehaviour(
                    &topic,
                    Fault::BadReceipt {
                        reason: format!("signed receipt: {error}"),
                    },
                );
                return Ok(());
            }
        };
        self.unacked.remove(index);
        if let Some(t) = self.topics.get_mut(&topic) {
            if seq >= t.cursor {
                t.awaited.insert(
                    seq,
                    Awaited {
                        op_id,
                        overdue_since_ms: 0,
                    },
                );
            }
        }
        let _ = now_ms;
        if self.topics.contains_key(&topic) {
            self.on_head(&topic, signed.into())?;
        }
        self.events.push_back(SessionEvent::Acknowledged {
            topic,
            op_id,
            seq,
            receipt,
        });
        Ok(())
    }

    pub(super) fn on_head(&mut self, name: &str, head: SignedTreeHead) -> Result<()> {
        let Some(topic) = self.topics.get_mut(name) else {
            return Ok(());
        };
        let events = match topic.follower.as_mut() {
            Some(follower) => follower.push_head(head)?,
            None => Vec::new(),
        };
        self.follower_events(name, events)
    }

    pub(super) fn follower_events(&mut self, name: &str, events: Vec<FollowerEvent>) -> Result<()> {
        for event in events {
            match event {
                FollowerEvent::Verified { tree_size } => {
                    if let Some(topic) = self.topics.get_mut(name) {
                        topic.verified_head = topic
                            .follower
                            .as_ref()
                            .and_then(|f| f.verified_head().cloned());
                    }
                    self.events.push_back(SessionEvent::Verified {
                        topic: name.to_owned(),
                        tree_size,
                    });
                }
                FollowerEvent::Mismatch { tree_size } => {
                    self.misbehaviour(name, Fault::HeadMismatch { tree_size })
                }
                FollowerEvent::Evidence(evidence) => {
                    self.misbehaviour(name, Fault::Evidence(Box::new(evidence)))
                }
                // Entries are delivered by the session; gaps to a head size are filled by the
                // live subscription; invalid entries were reported already.
                FollowerEvent::Entry(_)
                | FollowerEvent::Gap { .. }
                | FollowerEvent::InvalidEntry { .. } => {}
            }
        }
        Ok(())
    }

    pub(super) fn on_error(&mut self, request_id: u32, code: String, message: String) {
        if self.checkpoint_requests.remove(&request_id).is_some() {
            return;
        }
        if request_id != 0 {
            if let Some(index) = self.unacked.iter().position(|u| u.request_id == request_id) {
                if matches!(code.as_str(), "RATE_LIMITED" | "UNAVAILABLE") {
                    // Transient: the op is sent again on the next connection.
                    self.unacked[index].request_id = 0;
                } else {
                    let unacked = self.unacked.remove(index);
                    self.events.push_back(SessionEvent::Refused {
                        topic: unacked.op.topic().to_owned(),
                        op_id: unacked.op.id(),
                        code,
                        message,
                    });
                    return;
                }
            }
        }
        self.events.push_back(SessionEvent::RelayError {
            request_id,
            code,
            message,
        });
    }
}
