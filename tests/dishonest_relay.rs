//! Client sessions over real WebSockets against a relay that lies (tests/common/lying_relay.rs):
//! it drops an acknowledged op, reorders an author's ops, forks its log between two clients, or
//! forges an op. Each lie is caught with evidence that verifies under the relay's key; the same
//! traffic against an honest relay raises nothing.
#![cfg(all(feature = "relay", not(target_arch = "wasm32")))]

mod common;

use ants_coord::log::{Evidence, Violation};
use ants_coord::session::{Fault, Session, SessionEvent, GOSSIP_KIND};
use ants_coord::Identity;
use common::lying_relay::{Lie, LyingRelay};
use common::relay::{start_relay, temp_dir};
use common::session_driver::{entries_by, fault_codes, Driver, T0};

fn session(seed: u8, topic: &str) -> Session {
    let mut s = Session::new(Identity::from_seed(&[seed; 32]).unwrap());
    s.subscribe(topic, 0, true).unwrap();
    s
}

fn evidence(events: &[SessionEvent]) -> Vec<&Evidence> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Misbehaviour {
                fault: Fault::Evidence(evidence),
                ..
            } => Some(evidence.as_ref()),
            _ => None,
        })
        .collect()
}

/// Every piece of evidence verifies under `relay`'s key and proves what it claims; returns the
/// violations proven.
fn proven(events: &[SessionEvent], relay: &LyingRelay) -> Vec<Violation> {
    evidence(events)
        .into_iter()
        .map(|e| {
            let proven = e.verify(&relay.id).expect("evidence verifies");
            assert_eq!(proven, e.claimed_violation());
            proven
        })
        .collect()
}

/// A writer publishes `bodies` on "t" (pipelined), a reader follows; both then ask for a signed
/// checkpoint. Waits for conditions, never for a quiet period: every op acknowledged, both
/// cursors at `logged` (the entries the relay logs), each checkpoint answered. Returns (writer
/// events, reader events).
async fn publish_and_read(
    relay: &LyingRelay,
    bodies: &[&[u8]],
    logged: u64,
) -> (Vec<SessionEvent>, Vec<SessionEvent>) {
    let (mut alice, mut bob) = (session(1, "t"), session(2, "t"));
    let mut a = Driver::connect(&relay.url(), &mut alice).await;
    let mut b = Driver::connect(&relay.url(), &mut bob).await;
    for body in bodies {
        alice.publish("t", "note", body, vec![], T0).unwrap();
    }
    a.until(&mut alice, |s, _| {
        s.unacknowledged().is_empty() && s.cursor("t") == Some(logged)
    })
    .await;
    b.until(&mut bob, |s, _| s.cursor("t") == Some(logged))
        .await;
    for (driver, s) in [(&mut a, &mut alice), (&mut b, &mut bob)] {
        s.request_checkpoint("t").unwrap();
        driver.until_answered(s, |_, _| true).await;
    }
    (a.events, b.events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_relay_never_triggers_a_report() {
    let relay = LyingRelay::start(Lie::None).await;
    let bodies: [&[u8]; 7] = [
        b"drop me",
        b"first",
        b"second",
        b"pair 1",
        b"pair 2",
        b"forge me",
        b"after",
    ];
    let (alice, bob) = publish_and_read(&relay, &bodies, 7).await;
    assert_eq!(entries_by(&bob, "t"), (0..7).collect::<Vec<_>>());
    assert!(fault_codes(&alice).is_empty(), "{alice:?}");
    assert!(fault_codes(&bob).is_empty(), "{bob:?}");
    assert!(bob
        .iter()
        .any(|e| matches!(e, SessionEvent::Verified { tree_size: 7, .. })));
    relay.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_acknowledged_op_is_caught_by_its_author() {
    let relay = LyingRelay::start(Lie::DropAcknowledged).await;
    let (alice, bob) = publish_and_read(&relay, &[b"drop me", b"after"], 1).await;
    // Its receipt and the relay's later heads cannot both hold.
    let violations = proven(&alice, &relay);
    assert!(
        violations.contains(&Violation::ReceiptContradicted)
            || violations.contains(&Violation::ConflictingHeads),
        "{violations:?}"
    );
    // The reader sees a consistent log of one entry: nothing it could know.
    assert_eq!(entries_by(&bob, "t"), vec![0]);
    relay.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_author_ops_are_caught_with_evidence() {
    let relay = LyingRelay::start(Lie::ReorderAuthor).await;
    let (alice, bob) = publish_and_read(&relay, &[b"first", b"second"], 2).await;
    for events in [&alice, &bob] {
        assert!(fault_codes(events).contains(&"AUTHOR_ORDER"), "{events:?}");
        assert!(proven(events, &relay).contains(&Violation::CounterOrder));
    }
    relay.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_op_is_caught_with_evidence() {
    let relay = LyingRelay::start(Lie::Forge).await;
    let (alice, bob) = publish_and_read(&relay, &[b"forge me"], 1).await;
    assert!(fault_codes(&bob).contains(&"INVALID_ENTRY"), "{bob:?}");
    assert!(
        entries_by(&bob, "t").is_empty(),
        "a forgery is never delivered"
    );
    assert!(proven(&bob, &relay).contains(&Violation::InvalidEntry));
    // Its author holds a receipt for an op that is not the entry at its seq.
    assert!(proven(&alice, &relay).contains(&Violation::ReceiptContradicted));
    relay.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forked_log_is_caught_by_checkpoint_gossip_through_another_relay() {
    let liar = LyingRelay::start(Lie::Fork).await;
    // Connection 0 writes; connection 1 is shown one history, connection 2 the other.
    let mut writer = session(1, "t");
    let mut w = Driver::connect(&liar.url(), &mut writer).await;
    let (mut carol, mut dave) = (session(3, "t"), session(4, "t"));
    let mut c = Driver::connect(&liar.url(), &mut carol).await;
    let mut d = Driver::connect(&liar.url(), &mut dave).await;
    writer.publish("t", "note", b"pair 1", vec![], T0).unwrap();
    writer.publish("t", "note", b"pair 2", vec![], T0).unwrap();
    w.until(&mut writer, |s, _| s.unacknowledged().is_empty())
        .await;
    for (driver, s) in [(&mut c, &mut carol), (&mut d, &mut dave)] {
        driver.until(s, |s, _| s.cursor("t") == Some(2)).await;
        s.request_checkpoint("t").unwrap();
        driver.until_answered(s, |_, _| true).await;
        assert!(
            fault_codes(&driver.events).is_empty(),
            "alone, no client can tell: {:?}",
            fault_codes(&driver.events)
        );
        assert_eq!(entries_by(&driver.events, "t"), vec![0, 1]);
    }

    // Carol gossips the head she verified through an honest relay; dave follows it there.
    let honest = start_relay(temp_dir("gossip")).await;
    let (mut carol_out, mut dave_in) = (session(3, "gossip"), session(4, "gossip"));
    let mut co = Driver::connect(&honest.url(), &mut carol_out).await;
    let mut di = Driver::connect(&honest.url(), &mut dave_in).await;
    let gossip = carol.gossip("t").expect("carol verified a head");
    carol_out
        .publish("gossip", GOSSIP_KIND, &gossip, vec![], T0)
        .unwrap();
    co.until(&mut carol_out, |s, _| s.unacknowledged().is_empty())
        .await;
    di.until(&mut dave_in, |_, ev| !entries_by(ev, "gossip").is_empty())
        .await;
    let received: Vec<Vec<u8>> = di
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Entry { entry, .. } if entry.op().kind() == GOSSIP_KIND => {
                Some(entry.op().body().to_vec())
            }
            _ => None,
        })
        .collect();
    assert_eq!(received, vec![gossip]);
    assert!(dave.receive_gossip(&received[0]).unwrap());
    let events = dave.take_events();
    assert!(
        proven(&events, &liar).contains(&Violation::ConflictingHeads),
        "{events:?}"
    );
    liar.stop();
    honest.shutdown().await.unwrap();
}

/// A relay that checks no capability sequences a stranger's op in alice's owned topic: alice's
/// replica counts it nowhere (`NOT_AUTHORIZED`, PROTOCOL.md 10.8) and her session reports the
/// relay (`UNAUTHORIZED_ENTRY`); an honest relay would have refused the op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthorized_write_counts_nowhere_and_is_reported() {
    use ants_coord::replica::{FeedContent, RejectCode};
    let relay = LyingRelay::start(Lie::None).await;
    let topic = format!(
        "@{}/notes",
        Identity::from_seed(&[1; 32]).unwrap().agent_id()
    );
    let (mut alice, mut mallory) = (session(1, &topic), session(6, &topic));
    let mut a = Driver::connect(&relay.url(), &mut alice).await;
    let mut m = Driver::connect(&relay.url(), &mut mallory).await;
    mallory
        .publish(&topic, "note", b"i write here too", vec![], T0)
        .unwrap();
    m.until(&mut mallory, |s, _| s.unacknowledged().is_empty())
        .await;
    alice.publish(&topic, "note", b"mine", vec![], T0).unwrap();
    a.until(&mut alice, |s, _| {
        s.unacknowledged().is_empty() && s.cursor(&topic) == Some(2)
    })
    .await;
    let rejected: Vec<(u64, RejectCode)> = a
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Replica { event, .. } => Some((event.seq(), event.reject_code()?)),
            _ => None,
        })
        .collect();
    assert_eq!(rejected, [(0, RejectCode::NotAuthorized)]);
    assert_eq!(fault_codes(&a.events), ["UNAUTHORIZED_ENTRY"]);
    // Only alice's op is in her replica's feed.
    let feed: Vec<u64> = alice
        .replica(&topic)
        .unwrap()
        .feed()
        .filter(|item| matches!(item.content, FeedContent::Other { .. }))
        .map(|item| item.seq)
        .collect();
    assert_eq!(feed, [1]);
    relay.stop();
}
