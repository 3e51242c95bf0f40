//! Receipt auditing for a client that does not follow the topic, relay-pushed events, and the
//! readable text of faults.

use super::*;
use crate::log::{Evidence, SignedCheckpoint};
use crate::replica::ReplicaOp;

fn bob() -> Identity {
    Identity::from_seed(&[2; 32]).unwrap()
}

fn op_of(who: &Identity, kind: &str, counter: u64, body: &[u8]) -> SignedOp {
    SignedOp::sign(
        who,
        OpDraft {
            topic: "t".into(),
            kind: kind.into(),
            counter,
            time_ms: T0,
            deps: vec![],
            body: body.to_vec(),
        },
    )
    .unwrap()
}

/// Alice, who does not follow "t", publishes one op through `relay` and gets its receipt.
fn alice_published_unfollowed(relay: &mut TestRelay) -> (RelayConnection, Session, OpId) {
    let mut session = Session::new(alice());
    let mut conn = relay.handshake(&mut session);
    let op = session.publish("t", "note", b"mine", vec![], T0).unwrap();
    relay.pump(&mut conn, &mut session);
    let events = session.take_events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::Acknowledged { .. })),
        "{events:?}"
    );
    (conn, session, op.id())
}

fn audited(events: &[SessionEvent]) -> Vec<(u64, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::ReceiptAudited { seq, tree_size, .. } => Some((*seq, *tree_size)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_publish_only_client_audits_its_receipts_against_a_later_checkpoint() {
    let mut relay = TestRelay::new(Lie::None);
    let (mut conn, mut session, _) = alice_published_unfollowed(&mut relay);
    for i in 0..3 {
        relay.append(op_of(&bob(), "post", i + 1, &[i as u8]));
    }
    assert_eq!(session.held_receipts(), vec![("t".to_owned(), 0, 0)]);
    session.request_checkpoint("t").unwrap();
    relay.pump(&mut conn, &mut session);
    let events = session.take_events();
    assert!(faults(&events).is_empty(), "{events:?}");
    assert_eq!(audited(&events), vec![(0, 4)]);
    assert_eq!(session.held_receipts(), vec![("t".to_owned(), 0, 4)]);
    // Kept, with its audit, in the exported state; audited again after a restore.
    let state = session.export_state();
    let mut restored = Session::restore(alice(), &state).unwrap();
    assert_eq!(restored.held_receipts(), vec![("t".to_owned(), 0, 4)]);
    assert_eq!(restored.export_state(), state);
    relay.append(op_of(&bob(), "post", 9, b"more"));
    let mut conn = relay.handshake(&mut restored);
    restored.request_checkpoint("t").unwrap();
    relay.pump(&mut conn, &mut restored);
    assert_eq!(audited(&restored.take_events()), vec![(0, 5)]);
}

#[test]
fn a_receipted_op_replaced_by_another_is_receipt_contradicted_with_evidence() {
    let mut relay = TestRelay::new(Lie::DropAcknowledged);
    let (mut conn, mut session, op_id) = alice_published_unfollowed(&mut relay);
    // Never logged; seq 0 and 1 go to bob's ops instead.
    relay.lie = Lie::None;
    relay.append(op_of(&bob(), "post", 1, b"b1"));
    relay.append(op_of(&bob(), "post", 2, b"b2"));
    session.request_checkpoint("t").unwrap();
    relay.pump(&mut conn, &mut session);
    let events = session.take_events();
    let found = faults(&events);
    assert_eq!(found.len(), 1, "{events:?}");
    let Fault::Evidence(evidence) = found[0] else {
        panic!("expected evidence, got {found:?}");
    };
    let relay_id = relay.identity.agent_id();
    assert_eq!(
        evidence.verify(&relay_id).unwrap(),
        Violation::ReceiptContradicted
    );
    let Evidence::ReceiptContradicted { receipt, .. } = &**evidence else {
        panic!("{evidence:?}");
    };
    assert_eq!(receipt.receipt().op_id, op_id);
    // Reported once: the receipt is no longer kept.
    assert!(session.held_receipts().is_empty());
    // The detail is a sentence, not debug text.
    let detail = found[0].to_string();
    assert!(
        detail.starts_with(&format!(
            "the relay receipted op {op_id} at seq 0 of topic \"t\""
        )),
        "{detail}"
    );
    assert!(
        !detail.contains('{') && !detail.contains("Signed"),
        "{detail}"
    );
}

#[test]
fn a_receipted_last_entry_dropped_while_the_log_never_grows_is_reported() {
    let mut relay = TestRelay::new(Lie::DropAcknowledged);
    let (mut conn, mut session, op_id) = alice_published_unfollowed(&mut relay);
    session.request_checkpoint("t").unwrap();
    relay.pump(&mut conn, &mut session);
    let events = session.take_events();
    let found = faults(&events);
    assert_eq!(
        found,
        vec![&Fault::AcknowledgedOpMissing { op_id, seq: 0 }],
        "{events:?}"
    );
    assert_eq!(
        found[0].to_string(),
        format!("the relay acknowledged op {op_id} at seq 0 but does not show it there")
    );
}

#[test]
fn a_receipt_contradicted_by_a_head_of_its_own_size_is_conflicting_heads() {
    let mut relay = TestRelay::new(Lie::DropAcknowledged);
    let (mut conn, mut session, _) = alice_published_unfollowed(&mut relay);
    relay.lie = Lie::None;
    relay.append(op_of(&bob(), "post", 1, b"b1"));
    // The checkpoint arrives as gossip from someone else, not from the relay itself.
    let relay_id = relay.identity.agent_id();
    let checkpoint = SignedCheckpoint::decode(&relay.checkpoint("t"), &relay_id).unwrap();
    let gossip = Gossip::encode(&relay_id, &SignedTreeHead::from(checkpoint));
    assert!(session.receive_gossip(&gossip).unwrap());
    relay.pump(&mut conn, &mut session);
    let events = session.take_events();
    let found = faults(&events);
    assert_eq!(found.len(), 1, "{events:?}");
    assert_eq!(found[0].code(), "CONFLICTING_HEADS");
    let Fault::Evidence(evidence) = found[0] else {
        panic!("{found:?}");
    };
    evidence.verify(&relay_id).unwrap();
    let detail = found[0].to_string();
    assert!(
        detail.starts_with(
            "the relay signed two heads of topic \"t\" for the same 1 entry with different roots"
        ),
        "{detail}"
    );
    assert!(
        detail.contains("a checkpoint") && detail.contains("a receipt of seq 0"),
        "{detail}"
    );
}

#[test]
fn held_receipts_are_bounded() {
    let mut relay = TestRelay::new(Lie::None);
    let mut session = Session::new(alice());
    let mut conn = relay.handshake(&mut session);
    for i in 0..(MAX_HELD_RECEIPTS as u64 + 3) {
        session
            .publish("t", "note", &i.to_be_bytes(), vec![], T0)
            .unwrap();
        if i % 512 == 0 {
            relay.pump(&mut conn, &mut session);
        }
    }
    relay.pump(&mut conn, &mut session);
    let held = session.held_receipts();
    assert_eq!(held.len(), MAX_HELD_RECEIPTS);
    assert_eq!(held[0].1, 3, "the oldest went first");
}

fn claim(who: &Identity, counter: u64) -> SignedOp {
    let body = ReplicaOp::Claim {
        resource: "slot".into(),
        lease_ms: 0,
        stake: 0,
        fence: None,
    }
    .encode()
    .unwrap();
    op_of(who, "claim", counter, &body)
}

fn push(seq: u64, event: &[u8]) -> Vec<u8> {
    Frame::new(
        0,
        Body::Event {
            topic: "t".into(),
            seq,
            event: event.to_vec(),
        },
    )
    .encode()
    .unwrap()
}

/// Bob claims "slot", then alice does and loses: the relay's replica and ours give alice a
/// compensation at seq 1. Returns it as the relay pushes it (the replica's JSON view).
fn alice_lost_a_claim(relay: &mut TestRelay) -> Vec<u8> {
    let ops = [claim(&bob(), 1), claim(&alice(), 1)];
    let mut replica = Replica::new("t", ReplicaConfig::default()).unwrap();
    let mut pushed = Vec::new();
    for op in ops {
        let (seq, _) = relay.append(op);
        let bytes = &relay.logs["t"].0[seq as usize];
        for event in replica.apply(&Entry::decode(bytes).unwrap()).unwrap() {
            if matches!(&event, crate::replica::Event::Compensation { loser, .. } if *loser == alice().agent_id())
            {
                pushed = serde_json::to_vec(&event).unwrap();
            }
        }
    }
    assert!(!pushed.is_empty(), "alice lost");
    pushed
}

fn pushed_events(events: &[SessionEvent]) -> Vec<(u64, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Pushed { seq, event, .. } => Some((*seq, event.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_pushed_event_reaches_a_client_that_does_not_follow_the_topic() {
    let mut relay = TestRelay::new(Lie::None);
    let event = alice_lost_a_claim(&mut relay);
    let mut session = Session::new(alice());
    relay.handshake(&mut session);
    session.take_events();
    session.receive(&push(1, &event), T0).unwrap();
    let events = session.take_events();
    assert_eq!(pushed_events(&events), vec![(1, event)]);
    assert!(faults(&events).is_empty());
}

#[test]
fn a_pushed_event_is_checked_against_the_replica_in_either_order() {
    let mut relay = TestRelay::new(Lie::None);
    let event = alice_lost_a_claim(&mut relay);
    // Pushed before the entry arrives: checked once the replica applies it.
    let mut early = Session::new(alice());
    early.subscribe("t", 0, true).unwrap();
    early.receive(&push(1, &event), T0).unwrap();
    let mut conn = relay.handshake(&mut early);
    relay.pump(&mut conn, &mut early);
    let events = early.take_events();
    assert_eq!(early.cursor("t"), Some(2));
    assert!(faults(&events).is_empty(), "{events:?}");
    // Pushed after: compared with what the replica remembers.
    early.receive(&push(1, &event), T0).unwrap();
    assert!(faults(&early.take_events()).is_empty());
    // A push the replica does not produce, before or after its entry, is EVENT_MISMATCH.
    let forged = String::from_utf8(event.clone())
        .unwrap()
        .replace("\"refunded\":0", "\"refunded\":7")
        .into_bytes();
    assert_ne!(forged, event);
    early.receive(&push(1, &forged), T0).unwrap();
    early.receive(&push(0, &event), T0).unwrap();
    let found: Vec<String> = faults(&early.take_events())
        .iter()
        .map(|f| format!("{} {f}", f.code()))
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found
        .iter()
        .all(|f| f.starts_with("EVENT_MISMATCH the relay pushed an event for seq")));
    let mut late = Session::new(alice());
    late.subscribe("t", 0, true).unwrap();
    late.receive(&push(1, &forged), T0).unwrap();
    let mut conn = relay.handshake(&mut late);
    relay.pump(&mut conn, &mut late);
    let events = late.take_events();
    let codes: Vec<&str> = faults(&events).iter().map(|f| f.code()).collect();
    assert_eq!(codes, vec!["EVENT_MISMATCH"], "{events:?}");
}
