//! The relay side of one connection as a sans-IO state machine.
//!
//! The socket loop feeds every received binary message to [`RelayConnection::receive`] and
//! carries out the [`Action`]s it returns; it asks [`RelayConnection::deliver`] (one entry) or
//! [`RelayConnection::deliver_run`] (several, packed into `entries` frames) before sending any
//! entry of a subscribed topic. The state machine keeps, per subscription, the next sequence
//! number owed to the peer, and refuses to emit anything else: this is what makes the seam
//! between replay from storage and live fan-out free of gaps and duplicates, whatever order the
//! relay's sources produce entries in.

use crate::sorted_map::SortedMap;

use super::{
    encode_entries, frame_type, Body, Frame, HEADER_LEN, HELLO_DOMAIN, MAX_ENTRIES_PER_FRAME,
    MAX_FRAME_LEN, NONCE_LEN, WIRE_VERSION,
};
use crate::error::{Error, Result};
use crate::identity::{AgentId, Identity, SIGNATURE_LEN};
use crate::op::SignedOp;

/// Most topics one connection may be subscribed to at once.
pub const MAX_SUBSCRIPTIONS: usize = 256;

/// The bytes a hello signature covers, after [`HELLO_DOMAIN`]: `nonce (32) ‖ relay id (32)`.
pub fn hello_message(nonce: &[u8; NONCE_LEN], relay: &AgentId) -> Vec<u8> {
    [&nonce[..], &relay.as_bytes()[..]].concat()
}

/// The hello frame body answering a relay's challenge, signed by `identity`.
pub fn sign_hello(identity: &Identity, nonce: &[u8; NONCE_LEN], relay: &AgentId) -> Body {
    Body::Hello {
        agent: identity.agent_id(),
        signature: identity.sign_in_domain(HELLO_DOMAIN, &hello_message(nonce, relay)),
    }
}

/// What the relay must do after a frame was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this frame to the peer (an answer decided by the state machine alone, including
    /// every refusal).
    Send(Frame),
    /// Sequence this verified op (its author is the connection's agent) and answer with a
    /// receipt or an error frame.
    Publish {
        /// The request to answer.
        request_id: u32,
        /// The op, signature verified.
        op: SignedOp,
    },
    /// Like [`Action::Publish`], but the op's signature is **not yet checked** (only emitted
    /// after [`RelayConnection::defer_op_signatures`]): the caller must verify it (for instance
    /// together with other connections' ops through [`crate::op::verify_ops`]) before
    /// sequencing it, and refuse it with `BAD_SIGNATURE` otherwise. Its author is the
    /// connection's agent.
    PublishUnverified {
        /// The request to answer.
        request_id: u32,
        /// The op, decoded and bounded, signature unchecked.
        op: SignedOp,
    },
    /// Start a subscription: learn the topic's head, call [`RelayConnection::subscribed`] and
    /// send the frame it returns, then deliver entries from the cursor on.
    Subscribe {
        /// The request to answer (and to tag entries with).
        request_id: u32,
        /// The topic.
        topic: String,
        /// The first sequence number wanted.
        from_seq: u64,
    },
    /// Answer with the topic's latest signed checkpoint.
    Checkpoint {
        /// The request to answer.
        request_id: u32,
        /// The topic.
        topic: String,
    },
    /// Answer with an inclusion proof.
    InclusionProof {
        /// The request to answer.
        request_id: u32,
        /// The topic.
        topic: String,
        /// The leaf.
        seq: u64,
        /// The tree size.
        tree_size: u64,
    },
    /// Answer with a consistency proof.
    ConsistencyProof {
        /// The request to answer.
        request_id: u32,
        /// The topic.
        topic: String,
        /// The smaller size.
        old_size: u64,
        /// The larger size.
        new_size: u64,
    },
}

/// One subscription: the request that opened it and the next sequence number owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Subscription {
    request_id: u32,
    next_seq: u64,
    started: bool,
}

/// The relay side of one connection.
///
/// Invariants: `agent` is set only after a hello whose signature over this connection's nonce
/// and the relay id verified; for every subscription, the entries emitted through
/// [`RelayConnection::deliver`] are exactly `from_seq, from_seq + 1, …` in order.
#[derive(Debug)]
pub struct RelayConnection {
    relay: AgentId,
    nonce: [u8; NONCE_LEN],
    agent: Option<AgentId>,
    subscriptions: SortedMap<String, Subscription>,
    /// Whether publish signatures are left to the caller ([`Action::PublishUnverified`]).
    defer_op_signatures: bool,
}

impl RelayConnection {
    /// A fresh connection to the relay `relay`, challenged with `nonce` (fresh randomness the
    /// caller draws: the state machine itself has none).
    pub fn new(relay: AgentId, nonce: [u8; NONCE_LEN]) -> Self {
        RelayConnection {
            relay,
            nonce,
            agent: None,
            subscriptions: SortedMap::new(),
            defer_op_signatures: false,
        }
    }

    /// From now on, publishes come out as [`Action::PublishUnverified`]: the caller checks the
    /// op signatures, in batches across connections. Every other check (decoding, bounds, the
    /// author being this connection's agent) stays here, and a publish whose author is not the
    /// agent is still refused with the code a verifying connection would give (`BAD_SIGNATURE`
    /// for a forged op, `AUTHOR_MISMATCH` otherwise).
    pub fn defer_op_signatures(&mut self) {
        self.defer_op_signatures = true;
    }

    /// The challenge frame, to send first.
    pub fn challenge(&self) -> Frame {
        Frame::new(
            0,
            Body::Challenge {
                relay: self.relay,
                nonce: self.nonce,
            },
        )
    }

    /// The authenticated agent, once the hello verified.
    pub fn agent(&self) -> Option<&AgentId> {
        self.agent.as_ref()
    }

    /// Handles one received binary message. Every refusal comes back as an [`Action::Send`] of
    /// an error frame (request id 0 when the frame was too broken to read one); nothing else
    /// changes.
    pub fn receive(&mut self, bytes: &[u8]) -> Action {
        // A relay → client type is refused by its type, whatever its payload (PROTOCOL 8.1).
        if let [WIRE_VERSION, kind, ..] = bytes {
            if frame_type::is_relay_to_client(*kind) {
                let error = Error::UnexpectedFrame(*kind);
                return Action::Send(Frame::error(request_id_of(bytes), &error));
            }
        }
        let frame = match Frame::decode(bytes) {
            Ok(frame) => frame,
            Err(error) => return Action::Send(Frame::error(request_id_of(bytes), &error)),
        };
        let request_id = frame.request_id;
        match self.handle(frame) {
            Ok(action) => action,
            Err(error) => Action::Send(Frame::error(request_id, &error)),
        }
    }

    fn handle(&mut self, frame: Frame) -> Result<Action> {
        let request_id = frame.request_id;
        let type_byte = frame.type_byte();
        Ok(match frame.body {
            Body::Hello { agent, signature } => {
                self.hello(agent, &signature)?;
                Action::Send(Frame::new(request_id, Body::Welcome { agent }))
            }
            Body::Publish { op } => {
                let agent = self.agent.ok_or(Error::NotAuthenticated)?;
                let decoded = if self.defer_op_signatures {
                    SignedOp::decode_unverified_from(&op, &agent)?
                } else {
                    SignedOp::decode(&op)?
                };
                if decoded.author() != &agent {
                    if self.defer_op_signatures {
                        // Same answer as a verifying connection: a forged op is BAD_SIGNATURE.
                        SignedOp::decode(&op)?;
                    }
                    return Err(Error::AuthorMismatch {
                        author: decoded.author().to_string(),
                        agent: agent.to_string(),
                    });
                }
                if self.defer_op_signatures {
                    Action::PublishUnverified {
                        request_id,
                        op: decoded,
                    }
                } else {
                    Action::Publish {
                        request_id,
                        op: decoded,
                    }
                }
            }
            Body::Subscribe { topic, from_seq } => {
                if !self.subscriptions.contains_key(&topic)
                    && self.subscriptions.len() >= MAX_SUBSCRIPTIONS
                {
                    return Err(Error::LimitExceeded {
                        what: "subscriptions per connection",
                        limit: MAX_SUBSCRIPTIONS,
                        got: self.subscriptions.len() + 1,
                    });
                }
                // Not started until the relay reports the head: nothing is delivered before the
                // Subscribed frame.
                self.subscriptions.insert(
                    topic.clone(),
                    Subscription {
                        request_id,
                        next_seq: from_seq,
                        started: false,
                    },
                );
                Action::Subscribe {
                    request_id,
                    topic,
                    from_seq,
                }
            }
            Body::Unsubscribe { topic } => {
                self.subscriptions.remove(&topic);
                Action::Send(Frame::new(request_id, Body::Unsubscribed { topic }))
            }
            Body::GetCheckpoint { topic } => Action::Checkpoint { request_id, topic },
            Body::GetInclusionProof {
                topic,
                seq,
                tree_size,
            } => Action::InclusionProof {
                request_id,
                topic,
                seq,
                tree_size,
            },
            Body::GetConsistencyProof {
                topic,
                old_size,
                new_size,
            } => Action::ConsistencyProof {
                request_id,
                topic,
                old_size,
                new_size,
            },
            _ => return Err(Error::UnexpectedFrame(type_byte)),
        })
    }

    fn hello(&mut self, agent: AgentId, signature: &[u8; SIGNATURE_LEN]) -> Result<()> {
        if self.agent.is_some() {
            return Err(Error::BadInput("hello already completed".into()));
        }
        let message = [HELLO_DOMAIN, &hello_message(&self.nonce, &self.relay)].concat();
        agent.verify(&message, signature)?;
        self.agent = Some(agent);
        Ok(())
    }

    /// Records that subscription `topic` (opened by `request_id`) starts now, with the topic at
    /// size `head`, and returns the `Subscribed` frame to send. `None` if that subscription was
    /// since replaced or ended (send nothing then).
    pub fn subscribed(&mut self, topic: &str, request_id: u32, head: u64) -> Option<Frame> {
        let subscription = self.subscriptions.get_mut(topic)?;
        if subscription.request_id != request_id {
            return None;
        }
        subscription.started = true;
        Some(Frame::new(
            request_id,
            Body::Subscribed {
                topic: topic.to_owned(),
                from_seq: subscription.next_seq,
                head,
            },
        ))
    }

    /// Forgets the subscription an [`Action::Subscribe`] opened, when the relay refuses it
    /// (an owned topic the agent may not read): nothing is owed on it. Any other action, or a
    /// subscription since replaced or started, is left alone.
    pub fn cancel_subscription(&mut self, action: &Action) {
        let Action::Subscribe {
            request_id, topic, ..
        } = action
        else {
            return;
        };
        if self
            .subscriptions
            .get(topic)
            .is_some_and(|s| s.request_id == *request_id && !s.started)
        {
            self.subscriptions.remove(topic);
        }
    }

    /// The next sequence number owed on a started subscription to `topic`.
    pub fn cursor(&self, topic: &str) -> Option<u64> {
        self.subscriptions
            .get(topic)
            .filter(|s| s.started)
            .map(|s| s.next_seq)
    }

    /// Ends the subscription to `topic` without being asked (the relay no longer serves it to
    /// this connection, e.g. a capability expired); returns the request id that opened it.
    pub fn end_subscription(&mut self, topic: &str) -> Option<u32> {
        self.subscriptions.remove(topic).map(|s| s.request_id)
    }

    /// The started subscriptions and their cursors.
    pub fn cursors(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.subscriptions
            .iter()
            .filter(|(_, s)| s.started)
            .map(|(topic, s)| (topic.as_str(), s.next_seq))
    }

    /// The entry frame for entry `seq` of `topic` (canonical bytes `entry`), if and only if it
    /// is the one owed next on a started subscription; the cursor then advances. Anything else
    /// (a duplicate, an entry past a gap, an unsubscribed topic) returns `None`.
    pub fn deliver(&mut self, topic: &str, seq: u64, entry: &[u8]) -> Option<Frame> {
        let subscription = self.subscriptions.get_mut(topic)?;
        if !subscription.started || subscription.next_seq != seq {
            return None;
        }
        subscription.next_seq += 1;
        Some(Frame::new(
            subscription.request_id,
            Body::Entry {
                entry: entry.to_vec(),
            },
        ))
    }

    /// The encoded frames carrying the entries of `topic` among `entries` (`(seq, canonical
    /// bytes)`, in sequence order) that are owed next on a started subscription: several per
    /// `entries` frame, as many as [`MAX_ENTRIES_PER_FRAME`] and [`MAX_FRAME_LEN`] allow, and an
    /// `entry` frame for one left alone. The cursor advances past every entry framed. Entries
    /// that are not owed (duplicates, entries past a gap) are skipped, as by
    /// [`RelayConnection::deliver`]; so is everything on a topic not subscribed.
    ///
    /// Errors: `LIMIT_EXCEEDED` for an entry too large for any frame, which no stored entry is
    /// (ops are bounded well below [`MAX_FRAME_LEN`]); the cursor has then moved past it, so
    /// the caller should end the connection.
    pub fn deliver_run<'a>(
        &mut self,
        topic: &str,
        entries: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) -> Result<Vec<Vec<u8>>> {
        let Some(subscription) = self.subscriptions.get_mut(topic).filter(|s| s.started) else {
            return Ok(Vec::new());
        };
        let mut frames = Vec::new();
        let mut group: Vec<&[u8]> = Vec::new();
        // An entries frame: header, count, then each entry with its length.
        let empty_len = HEADER_LEN + 2;
        let mut group_len = empty_len;
        for (seq, entry) in entries {
            if seq != subscription.next_seq {
                continue;
            }
            let cost = 4 + entry.len();
            if !group.is_empty()
                && (group.len() == MAX_ENTRIES_PER_FRAME || group_len + cost > MAX_FRAME_LEN)
            {
                frames.push(encode_entries(subscription.request_id, &group)?);
                group.clear();
                group_len = empty_len;
            }
            group.push(entry);
            group_len += cost;
            subscription.next_seq += 1;
        }
        if !group.is_empty() {
            frames.push(encode_entries(subscription.request_id, &group)?);
        }
        Ok(frames)
    }
}

/// The request id of a frame too broken to decode, when its header is readable (0 otherwise),
/// so even a refusal of a malformed request can be correlated.
fn request_id_of(bytes: &[u8]) -> u32 {
    match bytes {
        [_, _, a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}
