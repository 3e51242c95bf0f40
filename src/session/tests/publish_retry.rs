//! Publishing through refusals: retryable codes are retried with backoff and the same bytes,
//! ops of one topic never overtake each other, and every publish settles.

use std::collections::VecDeque;

use super::*;

/// Carries frames both ways like [`TestRelay::pump`], but answers publishes itself: the next
/// ones are refused with the codes in `refusals`, and a counter at or below the author's last
/// one in the topic that is not a retry is `COUNTER_STALE` (PROTOCOL.md 8.3). Returns the
/// publish frames' ops in arrival order.
fn exchange(
    relay: &mut TestRelay,
    conn: &mut RelayConnection,
    session: &mut Session,
    refusals: &mut VecDeque<&str>,
    now: u64,
) -> Vec<SignedOp> {
    let mut arrived = Vec::new();
    for _ in 0..100 {
        let outgoing = session.take_outgoing();
        if outgoing.is_empty() {
            return arrived;
        }
        let mut answers = Vec::new();
        for bytes in outgoing {
            match conn.receive(&bytes) {
                Action::Send(frame) => answers.push(frame),
                Action::Publish { request_id, op } => {
                    arrived.push(op.clone());
                    let key = (op.topic().to_owned(), *op.author(), op.counter());
                    let last = relay
                        .by_author
                        .keys()
                        .filter(|(t, a, _)| t == op.topic() && a == op.author())
                        .map(|(_, _, c)| *c)
                        .max();
                    let refusal = refusals.pop_front().or_else(|| {
                        let stale = last.is_some_and(|last| op.counter() <= last);
                        (stale && !relay.by_author.contains_key(&key)).then_some("COUNTER_STALE")
                    });
                    answers.push(match refusal {
                        Some(code) => Frame::new(
                            request_id,
                            Body::Error {
                                code: code.into(),
                                message: format!("refused: {code}"),
                            },
                        ),
                        None => {
                            let (seq, receipt) = relay.append(op.clone());
                            Frame::new(
                                request_id,
                                Body::Receipt {
                                    seq,
                                    op_id: op.id(),
                                    receipt,
                                },
                            )
                        }
                    });
                }
                _ => {}
            }
        }
        for frame in answers {
            session.receive(&frame.encode().unwrap(), now).unwrap();
        }
    }
    panic!("no quiescence");
}

/// A new connection of `session` to `relay`, with the handshake left to [`exchange`] (so that
/// what the session sends once live goes through it too).
fn reconnect(relay: &TestRelay, session: &mut Session) -> RelayConnection {
    session.disconnected();
    let conn = relay.connect();
    session.connected();
    session
        .receive(&conn.challenge().encode().unwrap(), relay.time)
        .unwrap();
    conn
}

fn acknowledged(events: &[SessionEvent]) -> Vec<OpId> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Acknowledged { op_id, .. } => Some(*op_id),
            _ => None,
        })
        .collect()
}

fn retry_at(events: &[SessionEvent]) -> Vec<(String, u32, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Retrying {
                code,
                attempt,
                retry_at_ms,
                ..
            } => Some((code.clone(), *attempt, *retry_at_ms)),
            _ => None,
        })
        .collect()
}

fn live_alice() -> (TestRelay, RelayConnection, Session) {
    let mut relay = TestRelay::new(Lie::None);
    let mut session = Session::new(alice());
    let conn = relay.handshake(&mut session);
    session.take_events();
    (relay, conn, session)
}

#[test]
fn a_retryable_refusal_is_retried_after_a_backoff_with_the_same_bytes() {
    for code in RETRYABLE_CODES {
        let (mut relay, mut conn, mut session) = live_alice();
        let op = session.publish("t", "note", b"a", vec![], T0).unwrap();
        let mut refusals = VecDeque::from([code]);
        let sent = exchange(&mut relay, &mut conn, &mut session, &mut refusals, T0);
        assert_eq!(sent, vec![op.clone()]);
        let events = session.take_events();
        let retries = retry_at(&events);
        assert_eq!(retries.len(), 1, "{events:?}");
        let (got, attempt, at) = retries[0].clone();
        assert_eq!((got.as_str(), attempt), (code, 1));
        assert!(at >= T0 + RETRY_MIN_DELAY_MS, "{at}");
        // Not settled, not sent again before its time, and nothing else goes to the caller.
        assert!(!events.iter().any(|e| matches!(
            e,
            SessionEvent::Refused { .. } | SessionEvent::RelayError { .. }
        )));
        assert_eq!(session.unacknowledged(), vec![op.id()]);
        assert_eq!(session.next_wake_ms(), Some(at));
        session.tick(at - 1);
        assert!(session.take_outgoing().is_empty());
        // Due: the identical bytes again, and this time the receipt.
        session.tick(at);
        let sent = exchange(
            &mut relay,
            &mut conn,
            &mut session,
            &mut VecDeque::new(),
            at,
        );
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].as_bytes(), op.as_bytes());
        assert_eq!(acknowledged(&session.take_events()), vec![op.id()]);
        assert!(session.unacknowledged().is_empty());
        assert_eq!(session.next_wake_ms(), None);
    }
}

#[test]
fn the_backoff_grows_with_each_refusal_up_to_its_bound() {
    let (mut relay, mut conn, mut session) = live_alice();
    session.publish("t", "note", b"a", vec![], T0).unwrap();
    let mut now = T0;
    let mut waits = Vec::new();
    for _ in 0..10 {
        let mut refusals = VecDeque::from(["RATE_LIMITED"]);
        exchange(&mut relay, &mut conn, &mut session, &mut refusals, now);
        let (_, _, at) = retry_at(&session.take_events())[0].clone();
        waits.push(at - now);
        now = at;
        session.tick(now);
    }
    assert!(waits.windows(2).all(|w| w[1] >= w[0]), "{waits:?}");
    assert!(waits[0] >= RETRY_MIN_DELAY_MS);
    assert!(
        waits.iter().all(|w| *w <= RETRY_MAX_DELAY_MS * 3 / 2),
        "{waits:?}"
    );
}

/// The issue-21 loss: an op refused `UNAVAILABLE` was parked until the next connection while a
/// later op of its topic went through; sent again after the reconnect it was `COUNTER_STALE`
/// and gone. Now the later op waits for it, and both land, in counter order.
#[test]
fn a_later_op_never_overtakes_a_refused_one_so_a_reconnect_loses_nothing() {
    let (mut relay, mut conn, mut session) = live_alice();
    let first = session.publish("t", "note", b"first", vec![], T0).unwrap();
    let mut refusals = VecDeque::from(["UNAVAILABLE"]);
    exchange(&mut relay, &mut conn, &mut session, &mut refusals, T0);
    let second = session
        .publish("t", "note", b"second", vec![], T0 + 10)
        .unwrap();
    let other = session
        .publish("u", "note", b"other", vec![], T0 + 10)
        .unwrap();
    // Only the other topic's op goes out while the first waits for its retry.
    let sent = exchange(
        &mut relay,
        &mut conn,
        &mut session,
        &mut VecDeque::new(),
        T0 + 10,
    );
    assert_eq!(sent, vec![other.clone()]);
    // The connection drops and comes back before the retry is due.
    let mut conn = reconnect(&relay, &mut session);
    let sent = exchange(
        &mut relay,
        &mut conn,
        &mut session,
        &mut VecDeque::new(),
        T0 + 20,
    );
    assert_eq!(
        sent,
        vec![first.clone(), second.clone()],
        "in counter order"
    );
    let events = session.take_events();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, SessionEvent::Refused { .. })),
        "{events:?}"
    );
    let acked = acknowledged(&events);
    assert!(acked.contains(&first.id()) && acked.contains(&second.id()));
    assert!(session.unacknowledged().is_empty());
    let logged: Vec<u64> = relay.logs["t"]
        .0
        .iter()
        .map(|bytes| Entry::decode(bytes).unwrap().op().counter())
        .collect();
    assert_eq!(logged, vec![first.counter(), second.counter()], "each once");
}

#[test]
fn after_a_refusal_a_topic_sends_one_op_at_a_time_until_a_receipt() {
    let (mut relay, mut conn, mut session) = live_alice();
    let ops: Vec<SignedOp> = (0..3u8)
        .map(|i| session.publish("t", "note", &[i], vec![], T0).unwrap())
        .collect();
    // The first is refused, the two behind it were already on the wire and are refused too.
    let mut refusals = VecDeque::from(["UNAVAILABLE"; 3]);
    let sent = exchange(&mut relay, &mut conn, &mut session, &mut refusals, T0);
    assert_eq!(sent, ops);
    let at = session.next_wake_ms().unwrap();
    session.tick(at + RETRY_MAX_DELAY_MS * 2);
    // One frame: the first op alone. (Lost with the connection: sent again on the next one.)
    assert_eq!(session.take_outgoing().len(), 1);
    let mut conn = reconnect(&relay, &mut session);
    let sent = exchange(
        &mut relay,
        &mut conn,
        &mut session,
        &mut VecDeque::new(),
        at,
    );
    assert_eq!(sent, ops);
    assert_eq!(acknowledged(&session.take_events()).len(), 3);
}

#[test]
fn every_publish_settles_within_the_publish_timeout() {
    let (mut relay, mut conn, mut session) = live_alice();
    session.set_publish_timeout_ms(5_000);
    let op = session.publish("t", "note", b"a", vec![], T0).unwrap();
    let mut now = T0;
    let mut timed_out = Vec::new();
    // The relay refuses it every time.
    while now <= T0 + 5_000 {
        let mut refusals = VecDeque::from(["RATE_LIMITED"; 4]);
        exchange(&mut relay, &mut conn, &mut session, &mut refusals, now);
        now = session
            .next_wake_ms()
            .expect("a retry or the timeout is scheduled");
        session.tick(now);
        timed_out.extend(session.take_events().into_iter().filter_map(|e| match e {
            SessionEvent::TimedOut {
                op_id, code, op, ..
            } => Some((op_id, code, op)),
            _ => None,
        }));
        if !timed_out.is_empty() {
            break;
        }
    }
    assert_eq!(now, T0 + 5_000, "settled exactly at the timeout");
    assert_eq!(
        timed_out,
        vec![(op.id(), "RATE_LIMITED".to_owned(), op.as_bytes().to_vec())]
    );
    assert!(session.unacknowledged().is_empty());
    assert_eq!(session.next_wake_ms(), None);
    // With no relay at all it settles too, as UNAVAILABLE.
    session.disconnected();
    let lonely = session.publish("t", "note", b"b", vec![], now).unwrap();
    session.tick(now + 4_999);
    assert!(session.take_events().is_empty());
    session.tick(now + 5_000);
    match &session.take_events()[..] {
        [SessionEvent::TimedOut { op_id, code, .. }] => {
            assert_eq!((op_id, code.as_str()), (&lonely.id(), "UNAVAILABLE"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_final_refusal_settles_at_once_and_releases_the_topic() {
    let (mut relay, mut conn, mut session) = live_alice();
    let bad = session.publish("t", "note", b"a", vec![], T0).unwrap();
    let mut refusals = VecDeque::from(["DEPS_MISSING"]);
    exchange(&mut relay, &mut conn, &mut session, &mut refusals, T0);
    let events = session.take_events();
    assert!(
        matches!(&events[..], [SessionEvent::Refused { op_id, code, .. }]
        if *op_id == bad.id() && code == "DEPS_MISSING")
    );
    let next = session.publish("t", "note", b"b", vec![], T0).unwrap();
    let sent = exchange(
        &mut relay,
        &mut conn,
        &mut session,
        &mut VecDeque::new(),
        T0,
    );
    assert_eq!(sent, vec![next]);
}

#[test]
fn a_receipt_for_an_op_given_up_on_the_wire_is_still_reported() {
    let (mut relay, mut conn, mut session) = live_alice();
    session.set_publish_timeout_ms(1_000);
    let op = session.publish("t", "note", b"a", vec![], T0).unwrap();
    let frames = session.take_outgoing();
    session.tick(T0 + 1_000);
    assert!(matches!(
        &session.take_events()[..],
        [SessionEvent::TimedOut { .. }]
    ));
    // The relay sequenced it after all.
    let Action::Publish {
        request_id,
        op: got,
    } = conn.receive(&frames[0])
    else {
        panic!("expected a publish");
    };
    let (seq, receipt) = relay.append(got);
    let frame = Frame::new(
        request_id,
        Body::Receipt {
            seq,
            op_id: op.id(),
            receipt,
        },
    );
    session
        .receive(&frame.encode().unwrap(), T0 + 1_001)
        .unwrap();
    assert_eq!(acknowledged(&session.take_events()), vec![op.id()]);
}
