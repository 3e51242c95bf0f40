//! The client `Session` driven over real WebSockets against the in-process relay: publish and
//! subscribe, relay restart mid-stream with no loss and no duplicate, resume from exported state.
#![cfg(all(feature = "relay", not(target_arch = "wasm32")))]

mod common;

use ants_coord::session::{Session, SessionEvent};
use ants_coord::Identity;
use common::relay::*;
use common::session_driver::{entries_by, Driver, T0};

fn misbehaviour(events: &[SessionEvent]) -> Vec<&SessionEvent> {
    events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Misbehaviour { .. }))
        .collect()
}

fn acked(events: &[SessionEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Acknowledged { .. }))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_subscribe_through_the_real_relay() {
    let relay = start_relay(temp_dir("session-basic")).await;
    let mut alice = Session::new(Identity::from_seed(&[1; 32]).unwrap());
    let mut bob = Session::new(Identity::from_seed(&[2; 32]).unwrap());
    alice.subscribe("room", 0, true).unwrap();
    bob.subscribe("room", 0, true).unwrap();
    let mut a = Driver::connect(&relay.url(), &mut alice).await;
    let mut b = Driver::connect(&relay.url(), &mut bob).await;
    for i in 0..10u8 {
        alice.publish("room", "note", &[i], vec![], T0).unwrap();
    }
    a.until(&mut alice, |_, ev| {
        acked(ev) == 10 && entries_by(ev, "room").len() == 10
    })
    .await;
    b.until(&mut bob, |_, ev| entries_by(ev, "room").len() == 10)
        .await;
    assert_eq!(entries_by(&b.events, "room"), (0..10).collect::<Vec<_>>());
    assert!(misbehaviour(&a.events).is_empty(), "{:?}", a.events);
    assert!(misbehaviour(&b.events).is_empty(), "{:?}", b.events);
    assert_eq!(
        alice.replica("room").unwrap().state_hash(),
        bob.replica("room").unwrap().state_hash()
    );
    // A checkpoint (when the relay serves them) verifies against the session's own tree.
    alice.request_checkpoint("room").unwrap();
    a.flush(&mut alice).await;
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_restart_mid_stream_loses_nothing_and_duplicates_nothing() {
    let data = temp_dir("session-restart");
    let relay = start_relay(data.clone()).await;
    let mut alice = Session::new(Identity::from_seed(&[1; 32]).unwrap());
    let mut reader = Session::new(Identity::from_seed(&[3; 32]).unwrap());
    alice.subscribe("log", 0, false).unwrap();
    reader.subscribe("log", 0, true).unwrap();
    let mut a = Driver::connect(&relay.url(), &mut alice).await;
    let r = Driver::connect(&relay.url(), &mut reader).await;
    for i in 0..20u8 {
        alice.publish("log", "note", &[i], vec![], T0).unwrap();
    }
    // Only part of the stream is acknowledged before the relay goes away.
    a.until(&mut alice, |_, ev| acked(ev) >= 5).await;
    relay.shutdown().await.unwrap();
    alice.disconnected();
    reader.disconnected();
    let pending_before = alice.unacknowledged().len();
    // A page reload of the reader in the middle: resume from exported state.
    let state = reader.export_state();
    let mut reader = Session::restore(Identity::from_seed(&[3; 32]).unwrap(), &state).unwrap();
    let mut seen: Vec<u64> = entries_by(&r.events, "log");

    let relay = start_relay(data).await;
    let mut a2 = Driver::connect(&relay.url(), &mut alice).await;
    let mut r2 = Driver::connect(&relay.url(), &mut reader).await;
    a2.until(&mut alice, |s, _| s.unacknowledged().is_empty())
        .await;
    r2.until(&mut reader, |s, _| s.cursor("log") == Some(20))
        .await;
    seen.extend(entries_by(&r2.events, "log"));
    assert_eq!(seen, (0..20).collect::<Vec<_>>(), "no loss, no duplicate");
    let acks = acked(&a.events) + acked(&a2.events);
    assert!(acks >= 20 && pending_before + acked(&a.events) >= 20);
    // Every op of alice is in the log exactly once, in counter order.
    let ops: Vec<_> = r
        .events
        .iter()
        .chain(&r2.events)
        .filter_map(|e| match e {
            SessionEvent::Entry { entry, .. } => Some(entry.op().body().to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(ops, (0..20u8).map(|i| vec![i]).collect::<Vec<_>>());
    for events in [&a.events, &a2.events, &r.events, &r2.events] {
        assert!(misbehaviour(events).is_empty(), "{events:?}");
    }
    assert_eq!(reader.replica("log").map(|r| r.next_seq()), Some(20));
    relay.shutdown().await.unwrap();
}

/// A losing claimant that does not follow the topic hears of the loss: the relay's `event` frame
/// reaches the session as `SessionEvent::Pushed` (it was dropped before). A claimant that also
/// follows the topic with a replica gets the push and the same compensation from its replica,
/// with no `EVENT_MISMATCH`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_losing_claimant_gets_its_pushed_compensation_followed_or_not() {
    use ants_coord::replica::ReplicaOp;
    let relay = start_relay(temp_dir("session-pushed")).await;
    let claim = ReplicaOp::Claim {
        resource: "slot".into(),
        lease_ms: 0,
        stake: 0,
        fence: None,
    }
    .encode()
    .unwrap();
    let mut winner = Session::new(Identity::from_seed(&[1; 32]).unwrap());
    let mut w = Driver::connect(&relay.url(), &mut winner).await;
    winner.publish("jobs", "claim", &claim, vec![], T0).unwrap();
    w.until(&mut winner, |_, ev| acked(ev) == 1).await;
    for (seed, follows) in [(2u8, false), (3u8, true)] {
        let mut loser = Session::new(Identity::from_seed(&[seed; 32]).unwrap());
        if follows {
            loser.subscribe("jobs", 0, true).unwrap();
        }
        let mut l = Driver::connect(&relay.url(), &mut loser).await;
        loser.publish("jobs", "claim", &claim, vec![], T0).unwrap();
        let me = loser.agent().to_string();
        l.until(&mut loser, |_, ev| {
            let pushed = ev.iter().any(|e| matches!(e, SessionEvent::Pushed { .. }));
            let applied = ev.iter().any(|e| {
                matches!(e, SessionEvent::Replica { event, .. }
                    if matches!(event, ants_coord::replica::Event::Compensation { .. }))
            });
            acked(ev) == 1 && pushed && (applied || !follows)
        })
        .await;
        let pushed: Vec<serde_json::Value> = l
            .events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Pushed { topic, event, .. } if topic == "jobs" => {
                    Some(serde_json::from_slice(event).unwrap())
                }
                _ => None,
            })
            .collect();
        assert_eq!(pushed.len(), 1, "{:?}", l.events);
        assert_eq!(pushed[0]["type"], "compensation");
        assert_eq!(pushed[0]["loser"], me.as_str());
        assert_eq!(pushed[0]["resource"], "slot");
        assert!(misbehaviour(&l.events).is_empty(), "{:?}", l.events);
    }
    relay.shutdown().await.unwrap();
}

/// A publish-only client keeps its receipts and audits them against a checkpoint it asks for
/// (issue 21, item 3): against a relay that acknowledged an op, never logged it and put other
/// ops at its seq, it reports `RECEIPT_CONTRADICTED` with evidence that verifies under the
/// relay's key; against an honest relay the same traffic audits clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_only_client_catches_a_dropped_receipted_op_at_its_next_checkpoint() {
    use ants_coord::log::Violation;
    use ants_coord::session::Fault;
    use common::lying_relay::{Lie, LyingRelay};
    for lie in [Lie::DropAcknowledged, Lie::None] {
        let relay = LyingRelay::start(lie).await;
        let mut alice = Session::new(Identity::from_seed(&[1; 32]).unwrap());
        let mut bob = Session::new(Identity::from_seed(&[2; 32]).unwrap());
        let mut a = Driver::connect(&relay.url(), &mut alice).await;
        let mut b = Driver::connect(&relay.url(), &mut bob).await;
        alice.publish("t", "note", b"drop me", vec![], T0).unwrap();
        a.until(&mut alice, |_, ev| acked(ev) == 1).await;
        for body in [&b"one"[..], b"two"] {
            bob.publish("t", "note", body, vec![], T0).unwrap();
        }
        b.until(&mut bob, |_, ev| acked(ev) == 2).await;
        alice.request_checkpoint("t").unwrap();
        a.until(&mut alice, |_, ev| {
            ev.iter().any(|e| {
                matches!(
                    e,
                    SessionEvent::Misbehaviour { .. } | SessionEvent::ReceiptAudited { .. }
                )
            })
        })
        .await;
        let found: Vec<&Fault> = a
            .events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Misbehaviour { fault, .. } => Some(fault),
                _ => None,
            })
            .collect();
        if lie == Lie::None {
            assert!(found.is_empty(), "{:?}", a.events);
            assert_eq!(alice.held_receipts(), vec![("t".to_owned(), 0, 3)]);
        } else {
            let [Fault::Evidence(evidence)] = &found[..] else {
                panic!("{:?}", a.events);
            };
            assert_eq!(
                evidence.verify(&relay.id).unwrap(),
                Violation::ReceiptContradicted
            );
        }
        relay.stop();
    }
}
