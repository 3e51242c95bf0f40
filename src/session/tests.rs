//! Session tests against an in-memory relay built from the core's wire and log code, honest or
//! with one deliberate fault.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::entry::Entry;
use crate::log::{Checkpoint, MerkleLog, Receipt, SignedCheckpoint, SignedReceipt, Violation};
use crate::wire::{Action, RelayConnection};

const T0: u64 = 1_700_000_000_000;

/// A deliberate fault of the test relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lie {
    None,
    /// Acknowledges ops from this seq on but never logs them.
    DropAcknowledged,
    /// Sends the entry at this index with a forged op (signature broken).
    Forge(u64),
    /// Skips entry at this seq when serving.
    Skip(u64),
}

/// (topic, author, counter): what the relay deduplicates retries by.
type AuthorCounter = (String, AgentId, u64);

struct TestRelay {
    identity: Identity,
    logs: BTreeMap<String, (Vec<Vec<u8>>, MerkleLog)>,
    by_author: BTreeMap<AuthorCounter, (u64, OpId, Vec<u8>)>,
    lie: Lie,
    time: u64,
    /// Sends the entries owed at once in `entries` frames, as the real relay does.
    packed: bool,
    /// How many `entries` frames it sent.
    entries_frames: std::cell::Cell<usize>,
}

impl TestRelay {
    fn new(lie: Lie) -> Self {
        TestRelay {
            identity: Identity::from_seed(&[200; 32]).unwrap(),
            logs: BTreeMap::new(),
            by_author: BTreeMap::new(),
            lie,
            time: T0,
            packed: false,
            entries_frames: std::cell::Cell::new(0),
        }
    }

    fn connect(&self) -> RelayConnection {
        RelayConnection::new(self.identity.agent_id(), [9; 32])
    }

    fn append(&mut self, op: SignedOp) -> (u64, Vec<u8>) {
        let key = (op.topic().to_owned(), *op.author(), op.counter());
        if let Some((seq, _, receipt)) = self.by_author.get(&key) {
            return (*seq, receipt.clone());
        }
        self.time += 1;
        let topic = op.topic().to_owned();
        let (entries, log) = self.logs.entry(topic.clone()).or_default();
        let seq = entries.len() as u64;
        let entry = Entry::new(seq, self.time, op.clone());
        let drop = self.lie == Lie::DropAcknowledged;
        let (tree_size, root) = if drop {
            // Signs a receipt for a tree that never contains the op.
            let mut fake = log.clone();
            fake.append(entry.as_bytes()).unwrap();
            (fake.size(), fake.root())
        } else {
            entries.push(entry.as_bytes().to_vec());
            log.append(entry.as_bytes()).unwrap();
            (log.size(), log.root())
        };
        let receipt = SignedReceipt::sign(
            &self.identity,
            Receipt {
                topic,
                seq,
                op_id: op.id(),
                relay_time_ms: self.time,
                tree_size,
                root,
            },
        )
        .unwrap()
        .as_bytes()
        .to_vec();
        self.by_author.insert(key, (seq, op.id(), receipt.clone()));
        (seq, receipt)
    }

    fn checkpoint(&self, topic: &str) -> Vec<u8> {
        let (_, log) = &self.logs[topic];
        SignedCheckpoint::sign(
            &self.identity,
            Checkpoint {
                topic: topic.into(),
                tree_size: log.size(),
                root: log.root(),
                time_ms: self.time,
            },
        )
        .unwrap()
        .as_bytes()
        .to_vec()
    }

    /// Carries frames both ways until both sides are quiet.
    fn pump(&mut self, conn: &mut RelayConnection, session: &mut Session) {
        for _ in 0..100 {
            let outgoing = session.take_outgoing();
            if outgoing.is_empty() {
                return;
            }
            let mut answers = Vec::new();
            for bytes in outgoing {
                match conn.receive(&bytes) {
                    Action::Send(frame) => answers.push(frame),
                    Action::Publish { request_id, op } => {
                        let topic = op.topic().to_owned();
                        let (seq, receipt) = self.append(op.clone());
                        answers.push(Frame::new(
                            request_id,
                            Body::Receipt {
                                seq,
                                op_id: op.id(),
                                receipt,
                            },
                        ));
                        answers.extend(self.deliver(conn, &topic));
                    }
                    Action::Subscribe {
                        request_id, topic, ..
                    } => {
                        let head = self.logs.get(&topic).map_or(0, |(e, _)| e.len() as u64);
                        answers.extend(conn.subscribed(&topic, request_id, head));
                        answers.extend(self.deliver(conn, &topic));
                    }
                    Action::Checkpoint { request_id, topic } => answers.push(Frame::new(
                        request_id,
                        Body::Checkpoint {
                            checkpoint: self.checkpoint(&topic),
                        },
                    )),
                    Action::InclusionProof {
                        request_id,
                        topic,
                        seq,
                        tree_size,
                    } => answers.push(self.inclusion_proof(request_id, &topic, seq, tree_size)),
                    _ => {}
                }
            }
            let bytes: Vec<Vec<u8>> = answers.iter().map(|f| f.encode().unwrap()).collect();
            let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
            session.receive_batch(&refs, self.time).unwrap();
        }
        panic!("no quiescence");
    }

    fn inclusion_proof(&self, request_id: u32, topic: &str, seq: u64, size: u64) -> Frame {
        let proof = self
            .logs
            .get(topic)
            .map(|(_, log)| log.inclusion_proof(seq, size));
        match proof {
            Some(Ok(proof)) => Frame::new(
                request_id,
                Body::InclusionProof {
                    proof: proof.encode(),
                },
            ),
            _ => Frame::new(
                request_id,
                Body::Error {
                    code: "BAD_INPUT".into(),
                    message: "no such proof".into(),
                },
            ),
        }
    }

    fn deliver(&self, conn: &mut RelayConnection, topic: &str) -> Vec<Frame> {
        let mut frames = Vec::new();
        let Some((entries, _)) = self.logs.get(topic) else {
            return frames;
        };
        let served = |seq: u64, bytes: &[u8]| {
            let mut bytes = bytes.to_vec();
            if self.lie == Lie::Forge(seq) {
                let last = bytes.len() - 1;
                bytes[last] ^= 1; // breaks the op signature
            }
            bytes
        };
        if self.packed {
            let from = conn.cursor(topic).unwrap_or(u64::MAX);
            let run: Vec<(u64, Vec<u8>)> = (from..entries.len() as u64)
                .map(|seq| (seq, served(seq, &entries[seq as usize])))
                .collect();
            let encoded = conn
                .deliver_run(topic, run.iter().map(|(seq, bytes)| (*seq, &bytes[..])))
                .unwrap();
            let frames: Vec<Frame> = encoded.iter().map(|b| Frame::decode(b).unwrap()).collect();
            let packs = frames
                .iter()
                .filter(|f| matches!(f.body, Body::Entries { .. }));
            self.entries_frames
                .set(self.entries_frames.get() + packs.count());
            return frames;
        }
        while let Some(cursor) = conn.cursor(topic) {
            let Some(bytes) = entries.get(cursor as usize) else {
                break;
            };
            let bytes = served(cursor, bytes);
            if self.lie == Lie::Skip(cursor) {
                // Advance the relay-side cursor without sending the entry.
                conn.deliver(topic, cursor, &bytes);
                continue;
            }
            frames.extend(conn.deliver(topic, cursor, &bytes));
        }
        frames
    }

    fn handshake(&mut self, session: &mut Session) -> RelayConnection {
        let mut conn = self.connect();
        session.connected();
        let challenge = conn.challenge().encode().unwrap();
        session.receive(&challenge, self.time).unwrap();
        self.pump(&mut conn, session);
        conn
    }
}

fn alice() -> Identity {
    Identity::from_seed(&[1; 32]).unwrap()
}

/// Alice, following "t" from 0 (with a replica when asked), has published three ops through a
/// test relay telling `lie`, and the frames have been carried both ways.
fn alice_published_three(lie: Lie, replica: bool) -> (TestRelay, RelayConnection, Session) {
    let mut relay = TestRelay::new(lie);
    let mut session = Session::new(alice());
    session.subscribe("t", 0, replica).unwrap();
    let mut conn = relay.handshake(&mut session);
    for i in 0..3u8 {
        session.publish("t", "note", &[i], vec![], T0).unwrap();
    }
    relay.pump(&mut conn, &mut session);
    (relay, conn, session)
}

fn faults(events: &[SessionEvent]) -> Vec<&Fault> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Misbehaviour { fault, .. } => Some(fault),
            _ => None,
        })
        .collect()
}

fn delivered(events: &[SessionEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Entry { entry, .. } => Some(entry.seq()),
            _ => None,
        })
        .collect()
}

#[test]
fn publish_subscribe_verify_against_an_honest_relay() {
    let mut relay = TestRelay::new(Lie::None);
    let mut session = Session::new(alice());
    session.subscribe("t", 0, true).unwrap();
    let mut conn = relay.handshake(&mut session);
    assert_eq!(session.phase(), Phase::Live);
    for i in 0..5u8 {
        session.publish("t", "note", &[i], vec![], T0).unwrap();
    }
    relay.pump(&mut conn, &mut session);
    session.request_checkpoint("t").unwrap();
    relay.pump(&mut conn, &mut session);
    let events = session.take_events();
    assert!(faults(&events).is_empty(), "{events:?}");
    assert_eq!(delivered(&events), vec![0, 1, 2, 3, 4]);
    let acks = events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Acknowledged { .. }))
        .count();
    assert_eq!(acks, 5);
    assert!(events
        .iter()
        .any(|e| matches!(e, SessionEvent::Verified { tree_size: 5, .. })));
    assert!(events
        .iter()
        .any(|e| matches!(e, SessionEvent::Replica { .. })));
    assert_eq!(session.cursor("t"), Some(5));
    assert!(session.unacknowledged().is_empty());
    assert_eq!(session.replica("t").unwrap().next_seq(), 5);
}

#[test]
fn an_entries_frame_is_handled_as_the_entry_frames_it_stands_for() {
    // A reader joining after six posts is served them at once: in six `entry` frames, or in
    // one `entries` frame. Honest or forging the fourth, the reader sees exactly the same.
    let reader_events = |lie: Lie, packed: bool| {
        let mut relay = TestRelay::new(lie);
        let mut session = Session::new(alice());
        let mut conn = relay.handshake(&mut session);
        for i in 0..6u8 {
            session.publish("t", "note", &[i], vec![], T0).unwrap();
        }
        relay.pump(&mut conn, &mut session);
        relay.packed = packed;
        let mut reader = Session::new(Identity::from_seed(&[2; 32]).unwrap());
        reader.subscribe("t", 0, true).unwrap();
        relay.handshake(&mut reader);
        let state = reader.replica("t").map(|r| r.state_hash());
        (
            reader.take_events(),
            reader.cursor("t"),
            state,
            relay.entries_frames.get(),
        )
    };
    for lie in [Lie::None, Lie::Forge(3)] {
        let (one_by_one, cursor, state, none) = reader_events(lie, false);
        let (packed, packed_cursor, packed_state, frames) = reader_events(lie, true);
        assert_eq!((none, frames), (0, 1), "{lie:?}");
        assert_eq!(format!("{packed:?}"), format!("{one_by_one:?}"), "{lie:?}");
        assert_eq!((packed_cursor, packed_state), (cursor, state), "{lie:?}");
        if lie == Lie::None {
            assert!(faults(&packed).is_empty(), "{packed:?}");
            assert_eq!(delivered(&packed), vec![0, 1, 2, 3, 4, 5]);
            assert!(packed_state.is_some());
        } else {
            assert!(!delivered(&packed).contains(&3));
            assert!(faults(&packed).iter().any(|f| f.code() == "INVALID_ENTRY"));
        }
    }
}

#[test]
fn unacknowledged_ops_are_resent_with_the_same_bytes_and_never_duplicated() {
    let mut relay = TestRelay::new(Lie::None);
    let mut session = Session::new(alice());
    session.subscribe("t", 0, false).unwrap();
    let mut conn = relay.handshake(&mut session);
    let op = session.publish("t", "note", b"x", vec![], T0).unwrap();
    // The relay sequences it but the connection drops before the receipt arrives.
    let frames = session.take_outgoing();
    let Action::Publish { op: received, .. } = conn.receive(&frames[0]) else {
        panic!("expected a publish");
    };
    assert_eq!(received, op);
    relay.append(received);
    session.disconnected();
    assert_eq!(session.unacknowledged(), vec![op.id()]);
    // A reload in between: state survives.
    let state = session.export_state();
    let mut session = Session::restore(alice(), &state).unwrap();
    let mut conn2 = relay.handshake(&mut session);
    relay.pump(&mut conn2, &mut session);
    let events = session.take_events();
    assert!(faults(&events).is_empty(), "{events:?}");
    assert!(session.unacknowledged().is_empty());
    assert_eq!(relay.logs["t"].0.len(), 1, "sequenced once");
    assert_eq!(delivered(&events), vec![0]);
    let _ = conn;
}

#[test]
fn state_round_trips_canonically_and_refuses_another_agent() {
    let (_relay, _conn, mut session) = alice_published_three(Lie::None, true);
    session.disconnected();
    session.publish("t", "note", b"later", vec![], T0).unwrap();
    let state = session.export_state();
    let restored = Session::restore(alice(), &state).unwrap();
    assert_eq!(restored.export_state(), state);
    assert_eq!(restored.cursor("t"), Some(3));
    assert_eq!(restored.unacknowledged().len(), 1);
    assert_eq!(
        restored.replica("t").unwrap().state_hash(),
        session.replica("t").unwrap().state_hash()
    );
    let bob = Identity::from_seed(&[2; 32]).unwrap();
    assert_eq!(
        Session::restore(bob, &state).unwrap_err().code(),
        "BAD_INPUT"
    );
    let mut longer = state.clone();
    longer.push(0);
    assert_eq!(
        Session::restore(alice(), &longer).unwrap_err().code(),
        "TRAILING_BYTES"
    );
}

#[test]
fn a_resumed_session_continues_from_its_cursor_without_duplicates() {
    let (mut relay, _conn, mut session) = alice_published_three(Lie::None, true);
    session.take_events();
    let state = session.export_state();
    // Someone else publishes meanwhile.
    let bob = Identity::from_seed(&[2; 32]).unwrap();
    let mut other = Session::new(bob);
    let mut conn_b = relay.handshake(&mut other);
    other.publish("t", "note", b"b", vec![], T0).unwrap();
    relay.pump(&mut conn_b, &mut other);
    let mut session = Session::restore(alice(), &state).unwrap();
    let mut conn = relay.handshake(&mut session);
    relay.pump(&mut conn, &mut session);
    let events = session.take_events();
    assert!(faults(&events).is_empty(), "{events:?}");
    assert_eq!(delivered(&events), vec![3]);
    assert_eq!(session.replica("t").unwrap().next_seq(), 4);
}

/// Alice's three posts, her state exported, then bob's post (seq 3) on the relay.
fn exported_then_bob_posted(lie: Lie) -> (TestRelay, Vec<u8>) {
    let (mut relay, _conn, mut session) = alice_published_three(lie, true);
    session.take_events();
    let state = session.export_state();
    let mut bob = Session::new(Identity::from_seed(&[2; 32]).unwrap());
    let mut conn_b = relay.handshake(&mut bob);
    bob.publish("t", "note", b"b", vec![], T0).unwrap();
    relay.pump(&mut conn_b, &mut bob);
    (relay, state)
}

fn resume_and_check(relay: &mut TestRelay, state: &[u8]) -> Vec<SessionEvent> {
    let mut session = Session::restore(alice(), state).unwrap();
    let mut conn = relay.handshake(&mut session);
    relay.pump(&mut conn, &mut session);
    session.request_checkpoint("t").unwrap();
    relay.pump(&mut conn, &mut session);
    session.take_events()
}

#[test]
fn a_resumed_session_checks_signed_heads_against_its_own_tree() {
    let (mut relay, state) = exported_then_bob_posted(Lie::None);
    let events = resume_and_check(&mut relay, &state);
    assert!(faults(&events).is_empty(), "{events:?}");
    assert_eq!(delivered(&events), vec![3]);
    assert!(events
        .iter()
        .any(|e| matches!(e, SessionEvent::Verified { tree_size: 4, .. })));

    // Same state, but the relay rewrote entry 1 (already verified before the reload) and signs
    // heads over its new history: the resumed tree does not match them.
    let (mut relay, state) = exported_then_bob_posted(Lie::None);
    let (entries, _) = relay.logs.get_mut("t").unwrap();
    let other = SignedOp::sign(
        &Identity::from_seed(&[3; 32]).unwrap(),
        OpDraft {
            topic: "t".into(),
            kind: "post".into(),
            ..OpDraft::default()
        },
    )
    .unwrap();
    entries[1] = Entry::new(1, T0, other).as_bytes().to_vec();
    let mut log = MerkleLog::new();
    for entry in entries.iter() {
        log.append(entry).unwrap();
    }
    relay.logs.get_mut("t").unwrap().1 = log;
    let events = resume_and_check(&mut relay, &state);
    assert_eq!(delivered(&events), vec![3]);
    let found = faults(&events);
    assert!(
        found.iter().any(|f| f.code() == "HEAD_MISMATCH"),
        "{found:?}"
    );
}

#[test]
fn version_1_state_is_still_read() {
    let (_relay, state) = exported_then_bob_posted(Lie::None);
    // Version 2 is version 3 without the kept receipts at the end (here none: a zero count).
    let mut restored = Session::restore(alice(), &state).unwrap();
    restored.held = Default::default();
    let v3 = restored.export_state();
    let mut state = v3[..v3.len() - 4].to_vec();
    state[0] = 2;
    let restored = Session::restore(alice(), &state).unwrap();
    assert_eq!(restored.export_state(), v3, "version 2 is still read");
    // Version 1 is version 2 without the frontier field at the end of each topic.
    let frontier_len = 1 + 1 + 32 * 3usize.count_ones() as usize;
    let mut v1 = state[..state.len() - frontier_len].to_vec();
    v1[0] = 1;
    let old = Session::restore(alice(), &v1).unwrap();
    assert_eq!(old.cursor("t"), restored.cursor("t"));
    // Re-exported as version 2, without a frontier (it had no follower to take one from).
    let again = old.export_state();
    assert_eq!(again[0], STATE_VERSION);
    assert_eq!(again.len(), v1.len() + 1 + 4);
}

#[test]
fn another_relay_key_is_refused() {
    let mut relay = TestRelay::new(Lie::None);
    let mut session = Session::with_relay(alice(), alice().agent_id());
    let mut conn = relay.connect();
    session.connected();
    session
        .receive(&conn.challenge().encode().unwrap(), T0)
        .unwrap();
    assert_eq!(session.phase(), Phase::Refused);
    assert!(session.take_outgoing().is_empty());
    let events = session.take_events();
    assert_eq!(faults(&events)[0].code(), "RELAY_KEY_CHANGED");
    relay.pump(&mut conn, &mut session);
}

#[test]
fn a_forged_op_is_caught_with_evidence_that_verifies() {
    let (mut relay, mut conn, mut session) = alice_published_three(Lie::Forge(1), false);
    // The forged bytes are what this relay committed to: sign a checkpoint over them.
    let (entries, _) = relay.logs.get_mut("t").unwrap();
    let last = entries[1].len() - 1;
    entries[1][last] ^= 1;
    let mut log = MerkleLog::new();
    for e in entries.iter() {
        log.append(e).unwrap();
    }
    relay.logs.get_mut("t").unwrap().1 = log;
    session.request_checkpoint("t").unwrap();
    relay.pump(&mut conn, &mut session);
    let events = session.take_events();
    assert!(!delivered(&events).contains(&1));
    let found = faults(&events);
    assert!(
        found.iter().any(|f| f.code() == "INVALID_ENTRY"),
        "{found:?}"
    );
    // Every piece of evidence verifies; one proves the invalid entry (the honest receipts and
    // the checkpoint over the forged bytes also conflict with each other).
    let violations: Vec<Violation> = found
        .iter()
        .filter_map(|f| match f {
            Fault::Evidence(e) => Some(e.verify(&relay.identity.agent_id()).unwrap()),
            _ => None,
        })
        .collect();
    assert!(
        violations.contains(&Violation::InvalidEntry),
        "{violations:?}"
    );
}

#[test]
fn a_dropped_acknowledged_op_is_caught_with_evidence() {
    let mut relay = TestRelay::new(Lie::None);
    let mut session = Session::new(alice());
    session.subscribe("t", 0, false).unwrap();
    let mut conn = relay.handshake(&mut session);
    session.publish("t", "note", b"kept", vec![], T0).unwrap();
    relay.pump(&mut conn, &mut session);
    relay.lie = Lie::DropAcknowledged;
    session
        .publish("t", "note", b"dropped", vec![], T0)
        .unwrap();
    relay.pump(&mut conn, &mut session);
    // Another op takes the dropped op's seq.
    relay.lie = Lie::None;
    let bob = Identity::from_seed(&[2; 32]).unwrap();
    let mut other = Session::new(bob);
    let mut conn_b = relay.handshake(&mut other);
    other.publish("t", "note", b"b", vec![], T0).unwrap();
    relay.pump(&mut conn_b, &mut other);
    relay.pump(&mut conn, &mut session);
    // Alice's subscription receives what took the dropped op's place.
    for frame in relay.deliver(&mut conn, "t") {
        session.receive(&frame.encode().unwrap(), T0).unwrap();
    }
    session.request_checkpoint("t").unwrap();
    relay.pump(&mut conn, &mut session);
    let events = session.take_events();
    let found = faults(&events);
    assert!(
        found.iter().any(|f| f.code() == "ACKNOWLEDGED_OP_MISSING"),
        "{found:?}"
    );
    let evidence = found
        .iter()
        .find_map(|f| match f {
            Fault::Evidence(e) => Some(e.clone()),
            _ => None,
        })
        .expect("the signed receipt contradicts the verified log");
    assert!(evidence.verify(&relay.identity.agent_id()).is_ok());
}

#[test]
fn a_skipped_entry_is_a_gap_and_the_subscription_restarts_from_the_cursor() {
    let (mut relay, _conn, mut session) = alice_published_three(Lie::Skip(1), false);
    let events = session.take_events();
    assert!(faults(&events).iter().any(|f| f.code() == "GAP"));
    assert_eq!(delivered(&events), vec![0]);
    // Once the relay serves honestly again, the restarted subscription fills in.
    relay.lie = Lie::None;
    session.disconnected();
    let mut conn = relay.handshake(&mut session);
    relay.pump(&mut conn, &mut session);
    assert_eq!(delivered(&session.take_events()), vec![1, 2]);
}

#[test]
fn a_paused_topic_gets_nothing_until_resumed_and_then_misses_nothing() {
    let (mut relay, mut conn, mut session) = alice_published_three(Lie::None, true);
    assert_eq!(delivered(&session.take_events()), vec![0, 1, 2]);
    // Paused right after publishing: the relay sequences the op and serves its entry before it
    // reads the unsubscribe, so the entry is in flight when the session already paused.
    session.publish("t", "note", &[3], vec![], T0).unwrap();
    session.pause("t").unwrap();
    assert!(session.is_paused("t"));
    relay.pump(&mut conn, &mut session);
    session.publish("t", "note", &[4], vec![], T0).unwrap();
    relay.pump(&mut conn, &mut session);
    let events = session.take_events();
    let acks = events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Acknowledged { .. }))
        .count();
    assert_eq!((delivered(&events), acks), (vec![], 2), "{events:?}");
    assert_eq!(session.cursor("t"), Some(3));
    assert_eq!(session.replica("t").unwrap().next_seq(), 3);
    // Still paused after a reconnection: the new connection subscribes to nothing.
    session.disconnected();
    let mut conn = relay.handshake(&mut session);
    assert!(delivered(&session.take_events()).is_empty());
    assert_eq!(conn.cursor("t"), None);
    // Resumed: from the cursor, every entry once, verified, and the replica catches up.
    session.resume("t").unwrap();
    assert!(!session.is_paused("t"));
    relay.pump(&mut conn, &mut session);
    session.request_checkpoint("t").unwrap();
    relay.pump(&mut conn, &mut session);
    let events = session.take_events();
    assert!(faults(&events).is_empty(), "{events:?}");
    assert_eq!(delivered(&events), vec![3, 4]);
    assert!(events
        .iter()
        .any(|e| matches!(e, SessionEvent::Verified { tree_size: 5, .. })));
    assert_eq!(session.replica("t").unwrap().next_seq(), 5);
    // Pausing and resuming an unknown topic changes nothing; `subscribe` also resumes.
    session.pause("other").unwrap();
    session.resume("other").unwrap();
    assert!(session.take_outgoing().is_empty());
    session.pause("t").unwrap();
    session.subscribe("t", 0, true).unwrap();
    assert!(!session.is_paused("t"));
    assert!(session.pause("").is_err_and(|e| e.code() == "BAD_TOPIC"));
}

#[test]
fn reordered_author_counters_are_reported() {
    let mut relay = TestRelay::new(Lie::None);
    let bob = Identity::from_seed(&[2; 32]).unwrap();
    let op = |counter| {
        SignedOp::sign(
            &bob,
            OpDraft {
                topic: "t".into(),
                kind: "post".into(),
                counter,
                time_ms: T0,
                deps: vec![],
                body: vec![],
            },
        )
        .unwrap()
    };
    // The relay sequences bob's counter 5 before counter 4.
    relay.append(op(5));
    relay.append(op(4));
    let mut session = Session::new(alice());
    session.subscribe("t", 0, false).unwrap();
    let mut conn = relay.handshake(&mut session);
    session.request_checkpoint("t").unwrap();
    relay.pump(&mut conn, &mut session);
    let events = session.take_events();
    let found = faults(&events);
    assert!(found.iter().any(|f| f.code() == "AUTHOR_ORDER"));
    let evidence = found
        .iter()
        .find_map(|f| match f {
            Fault::Evidence(e) => Some(e.clone()),
            _ => None,
        })
        .expect("counter-order evidence");
    assert_eq!(
        evidence.verify(&relay.identity.agent_id()).unwrap(),
        Violation::CounterOrder
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the disconnects, every op published is sequenced exactly once, delivered once
    /// in seq order, and an honest relay never triggers a report.
    #[test]
    fn honest_relay_with_disconnects_never_loses_or_duplicates(
        steps in proptest::collection::vec(0u8..4, 1..30)
    ) {
        let mut relay = TestRelay::new(Lie::None);
        let mut session = Session::new(alice());
        session.subscribe("t", 0, true).unwrap();
        let mut conn = relay.handshake(&mut session);
        let mut published = 0u64;
        let mut events = Vec::new();
        for step in steps {
            match step {
                0 | 1 => {
                    session.publish("t", "note", &[step], vec![], T0).unwrap();
                    published += 1;
                }
                2 => {
                    events.extend(session.take_events());
                    let state = session.export_state();
                    session.disconnected();
                    session = Session::restore(alice(), &state).unwrap();
                    conn = relay.handshake(&mut session);
                }
                _ => relay.pump(&mut conn, &mut session),
            }
        }
        relay.pump(&mut conn, &mut session);
        events.extend(session.take_events());
        prop_assert!(faults(&events).is_empty());
        prop_assert_eq!(relay.logs.get("t").map_or(0, |l| l.0.len() as u64), published);
        let seqs = delivered(&events);
        prop_assert_eq!(seqs, (0..published).collect::<Vec<_>>());
        prop_assert!(session.unacknowledged().is_empty());
    }
}

#[test]
fn checkpoint_gossip_catches_a_relay_that_shows_two_histories() {
    // One relay key, two histories of "t": what it shows alice and what it shows bob.
    let (mut shown_to_alice, mut shown_to_bob) =
        (TestRelay::new(Lie::None), TestRelay::new(Lie::None));
    let mut alice_s = Session::new(alice());
    let mut bob_s = Session::new(Identity::from_seed(&[2; 32]).unwrap());
    for s in [&mut alice_s, &mut bob_s] {
        s.subscribe("t", 0, true).unwrap();
    }
    let mut a = shown_to_alice.handshake(&mut alice_s);
    let mut b = shown_to_bob.handshake(&mut bob_s);
    let first = alice_s.publish("t", "note", b"one", vec![], T0).unwrap();
    let second = bob_s.publish("t", "note", b"two", vec![], T0).unwrap();
    // The same two ops in opposite orders: each history is valid on its own.
    shown_to_alice.append(first.clone());
    shown_to_alice.append(second.clone());
    shown_to_bob.append(second);
    shown_to_bob.append(first);
    shown_to_alice.pump(&mut a, &mut alice_s);
    shown_to_bob.pump(&mut b, &mut bob_s);
    for (relay, conn, s) in [
        (&mut shown_to_alice, &mut a, &mut alice_s),
        (&mut shown_to_bob, &mut b, &mut bob_s),
    ] {
        s.request_checkpoint("t").unwrap();
        relay.pump(conn, s);
        let events = s.take_events();
        assert!(
            faults(&events).is_empty(),
            "alone, neither sees a fault: {events:?}"
        );
    }
    let gossip = alice_s.gossip("t").expect("alice verified a head");
    // Gossip about another relay, or garbage, proves nothing and changes nothing.
    let mut stranger = Session::new(Identity::from_seed(&[5; 32]).unwrap());
    assert!(!stranger.receive_gossip(&gossip).unwrap());
    assert_eq!(
        bob_s
            .receive_gossip(&gossip[..gossip.len() - 1])
            .unwrap_err()
            .code(),
        "MALFORMED"
    );
    let mut forged = gossip.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        bob_s.receive_gossip(&forged).unwrap_err().code(),
        "BAD_SIGNATURE"
    );
    assert!(bob_s.take_events().is_empty());

    assert!(bob_s.receive_gossip(&gossip).unwrap());
    let events = bob_s.take_events();
    let found = faults(&events);
    // Two reports: the gossiped head does not match bob's tree, and, with bob's own head of the
    // same size, the two signed heads are evidence anyone can check.
    assert!(
        found.contains(&&Fault::HeadMismatch { tree_size: 2 }),
        "{found:?}"
    );
    let evidence = found
        .iter()
        .find_map(|f| match f {
            Fault::Evidence(evidence) => Some(evidence),
            _ => None,
        })
        .expect("evidence of the fork");
    assert_eq!(evidence.claimed_violation(), Violation::ConflictingHeads);
    let relay_id = shown_to_alice.identity.agent_id();
    assert_eq!(
        evidence.verify(&relay_id).unwrap(),
        Violation::ConflictingHeads
    );
}

#[test]
fn publish_signed_queues_the_same_op_and_refuses_another_author() {
    let mut relay = TestRelay::new(Lie::None);
    let mut signer = Session::new(alice());
    let op = signer.publish("t", "note", b"x", vec![], T0).unwrap();
    let mut session = Session::new(alice());
    session.subscribe("t", 0, false).unwrap();
    let mut conn = relay.handshake(&mut session);
    assert_eq!(session.publish_signed(op.clone()).unwrap(), op.id());
    assert_eq!(
        session.publish_signed(op.clone()).unwrap(),
        op.id(),
        "queued once"
    );
    relay.pump(&mut conn, &mut session);
    assert_eq!(relay.logs["t"].0.len(), 1);
    // The next own op takes a counter after the adopted one.
    let next = session.publish("t", "note", b"y", vec![], 0).unwrap();
    assert!(next.counter() > op.counter());
    let mut bob_s = Session::new(Identity::from_seed(&[2; 32]).unwrap());
    assert_eq!(bob_s.publish_signed(op).unwrap_err().code(), "BAD_INPUT");
    assert!(bob_s.unacknowledged().is_empty());
}

mod audit;
mod bodies;
mod publish_retry;

#[test]
fn a_refused_subscription_is_reported_for_its_topic_and_asked_again_next_connection() {
    let (mut relay, _conn, mut session) = alice_published_three(Lie::None, false);
    session.take_events();
    session.take_outgoing();
    session.subscribe("private", 0, false).unwrap();
    let sent: Vec<Frame> = session
        .take_outgoing()
        .iter()
        .map(|bytes| Frame::decode(bytes).unwrap())
        .collect();
    let [Frame {
        request_id,
        body: Body::Subscribe { .. },
    }] = &sent[..]
    else {
        panic!("expected one subscribe, got {sent:?}");
    };
    // The relay refuses it (as it ends one whose capability expired): the session says which
    // topic, not an anonymous relay error.
    let refusal = Error::CapabilityExpired {
        expires_ms: 1,
        now_ms: 2,
    };
    let frame = Frame::error(*request_id, &refusal).encode().unwrap();
    session.receive(&frame, T0).unwrap();
    let events = session.take_events();
    assert!(
        matches!(
            &events[..],
            [SessionEvent::SubscriptionEnded { topic, code, .. }]
                if topic == "private" && code == "CAPABILITY_EXPIRED"
        ),
        "{events:?}"
    );
    // The topic stays followed: the next connection asks again, from the cursor.
    session.disconnected();
    let mut conn = relay.handshake(&mut session);
    relay.pump(&mut conn, &mut session);
    assert_eq!(conn.cursor("private"), Some(0));
}
