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
        alice.publish("room", "post", &[i], vec![], T0).unwrap();
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
        alice.publish("log", "post", &[i], vec![], T0).unwrap();
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
