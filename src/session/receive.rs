//! How a [`Session`] handles what the relay sends: the handshake, subscriptions, entries,
//! receipts and signed heads (refusals: [`super::publish`]; pushed events: [`super::pushed`];
//! audit answers: [`super::audit`]).

use super::{Awaited, Fault, Phase, Session, SessionEvent};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::log::{FollowerEvent, LogFollower, SignedCheckpoint, SignedReceipt, SignedTreeHead};
use crate::op::{self, OpId};
use crate::replica::{Event, RejectCode};
use crate::wire::{sign_hello, Body, Frame};

impl Session {
    /// Handles one received binary message.
    ///
    /// Errors: the decoding codes of [`Frame::decode`] for a message that is not a frame (the
    /// caller should drop the connection). Misbehaviour is an event, not an error.
    pub fn receive(&mut self, bytes: &[u8], now_ms: u64) -> Result<()> {
        self.receive_batch(&[bytes], now_ms)
    }

    /// Handles several received messages at once; the signatures of the entries among them (in
    /// `entry` and `entries` frames) are verified as one batch.
    ///
    /// Errors: as [`Session::receive`]; frames before a broken one are handled.
    pub fn receive_batch(&mut self, messages: &[&[u8]], now_ms: u64) -> Result<()> {
        self.advance_clock(now_ms);
        // An `entries` frame is handled as that many `entry` frames in a row.
        let mut frames = Vec::with_capacity(messages.len());
        for bytes in messages {
            match Frame::decode(bytes) {
                Ok(Frame {
                    request_id,
                    body: Body::Entries { entries },
                }) => frames.extend(
                    entries
                        .into_iter()
                        .map(|entry| Ok(Frame::new(request_id, Body::Entry { entry }))),
                ),
                other => frames.push(other),
            }
        }
        // Entries are decoded once, here, and their op signatures checked in one batch; an entry
        // goes on decoded only when the batch held, else it is decoded and verified alone.
        let mut entries: Vec<Option<Entry>> = frames
            .iter()
            .map(|frame| match frame {
                Ok(Frame {
                    body: Body::Entry { entry },
                    ..
                }) => Entry::decode_unverified_cached(entry, &mut self.author_keys).ok(),
                _ => None,
            })
            .collect();
        let decoded = entries.iter().flatten().count();
        let batch_ok = decoded > 1
            && op::verify_ops_cached(
                &mut self.author_keys,
                entries.iter().flatten().map(Entry::op),
            )
            .is_ok();
        if !batch_ok {
            entries.iter_mut().for_each(|entry| *entry = None);
        }
        for (frame, verified) in frames.into_iter().zip(entries) {
            self.handle(frame?, verified, now_ms)?;
        }
        self.tick(now_ms);
        Ok(())
    }

    /// `verified`: the frame's entry, already decoded and its signature verified, if it is one.
    fn handle(&mut self, frame: Frame, verified: Option<Entry>, now_ms: u64) -> Result<()> {
        let request_id = frame.request_id;
        match frame.body {
            Body::Challenge { relay, nonce } => {
                if self.phase != Phase::AwaitingChallenge {
                    return Ok(());
                }
                match self.relay {
                    Some(pinned) if pinned != relay => {
                        self.phase = Phase::Refused;
                        self.misbehaviour("", Fault::RelayKeyChanged { presented: relay });
                        return Ok(());
                    }
                    Some(_) => {}
                    None => {
                        self.relay = Some(relay);
                        // Topics followed from 0 before the key was known get their follower now.
                        for (name, topic) in &mut self.topics {
                            if topic.cursor == 0 && topic.follower.is_none() {
                                topic.follower = Some(LogFollower::new(relay, name)?);
                            }
                        }
                    }
                }
                self.phase = Phase::AwaitingWelcome;
                let id = self.request_id();
                self.send(Frame::new(id, sign_hello(&self.identity, &nonce, &relay)))?;
            }
            Body::Welcome { .. } => {
                if self.phase != Phase::AwaitingWelcome {
                    return Ok(());
                }
                self.phase = Phase::Live;
                if let Some(relay) = self.relay {
                    self.events.push_back(SessionEvent::Live { relay });
                }
                // A new connection is a natural point to try again: waits from the last one end.
                for unacked in &mut self.unacked {
                    unacked.retry_at_ms = None;
                }
                let topics: Vec<String> = self
                    .topics
                    .iter()
                    .filter(|(_, topic)| !topic.paused)
                    .map(|(name, _)| name.clone())
                    .collect();
                for topic in topics {
                    self.send_subscribe(&topic)?;
                }
                self.send_due()?;
            }
            Body::Subscribed { head, .. } if self.is_audit_fetch(request_id) => {
                self.on_audit_subscribed(request_id, head)?
            }
            Body::Subscribed {
                topic,
                from_seq,
                head,
            } => self.on_subscribed(request_id, topic, from_seq, head),
            Body::Entry { entry } if self.is_audit_fetch(request_id) => {
                self.on_audit_entry(request_id, &entry)?
            }
            Body::Entry { entry } => self.on_entry(request_id, &entry, verified)?,
            Body::Receipt {
                seq,
                op_id,
                receipt,
            } => self.on_receipt(request_id, seq, op_id, receipt, now_ms)?,
            Body::Checkpoint { checkpoint } => {
                let Some(topic) = self.checkpoint_requests.remove(&request_id) else {
                    return Ok(());
                };
                let Some(relay) = self.relay else {
                    return Ok(());
                };
                match SignedCheckpoint::decode(&checkpoint, &relay) {
                    Ok(checkpoint) if checkpoint.checkpoint().topic == topic => {
                        let head = SignedTreeHead::from(checkpoint);
                        self.on_head(&topic, head.clone())?;
                        self.audit(&head)?;
                    }
                    Ok(_) => self.misbehaviour(
                        &topic,
                        Fault::BadReceipt {
                            reason: "checkpoint of another topic".into(),
                        },
                    ),
                    Err(error) => self.misbehaviour(
                        &topic,
                        Fault::BadReceipt {
                            reason: format!("checkpoint: {error}"),
                        },
                    ),
                }
            }
            Body::Error { code, message } => self.on_error(request_id, code, message, now_ms)?,
            Body::Event { topic, seq, event } => self.on_pushed(topic, seq, event),
            Body::InclusionProof { proof } => self.on_inclusion_proof(request_id, &proof)?,
            // Consistency proofs (never asked for) and unsubscribe confirmations carry nothing
            // the session does not compute or check itself.
            _ => {}
        }
        Ok(())
    }

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
        let applied = match topic.replica.as_mut() {
            Some(replica) => {
                replica_events = replica.apply(&entry)?;
                faults.extend(unauthorized(seq, op.author(), &replica_events));
                true
            }
            None => false,
        };
        if applied {
            self.check_pushed(&name, seq, &replica_events);
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
            if let Some((topic, abandoned)) = self.take_abandoned(request_id) {
                // Given up after the publish timeout while on the wire, and sequenced after all.
                if abandoned == op_id {
                    self.events.push_back(SessionEvent::Acknowledged {
                        topic,
                        op_id,
                        seq,
                        receipt,
                    });
                }
            }
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
        // The topic's ops get through again: back to sending them all.
        self.careful.remove(&topic);
        self.held.hold(&op, signed.clone());
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
        self.send_due()?;
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
}

/// The fault of an entry the replica rejected for want of authority in an owned topic
/// (PROTOCOL.md 10.8): an honest relay would have refused the op.
fn unauthorized(seq: u64, author: &AgentId, events: &[Event]) -> Option<Fault> {
    events.iter().find_map(|event| match event.reject_code()? {
        code @ (RejectCode::NotAuthorized
        | RejectCode::CapabilityExpired
        | RejectCode::CapabilityRevoked
        | RejectCode::AuthorityFull) => Some(Fault::UnauthorizedEntry {
            seq,
            author: *author,
            code: code.as_str(),
        }),
        _ => None,
    })
}
