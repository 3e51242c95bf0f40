use super::*;
use crate::{Entry, Identity, OpDraft, SignedOp};

fn identity(seed: u8) -> Identity {
    Identity::from_seed(&[seed; 32]).unwrap()
}

fn op(author: &Identity, topic: &str, counter: u64) -> SignedOp {
    SignedOp::sign(
        author,
        OpDraft {
            topic: topic.into(),
            kind: "post".into(),
            counter,
            time_ms: 1_700_000_000_000,
            deps: vec![],
            body: b"hi".to_vec(),
        },
    )
    .unwrap()
}

fn every_body() -> Vec<Body> {
    let relay = identity(1);
    let agent = identity(2);
    let op = op(&agent, "t", 3);
    vec![
        sign_hello(&agent, &[7; 32], &relay.agent_id()),
        Body::Subscribe {
            topic: "t".into(),
            from_seq: 9,
        },
        Body::Unsubscribe { topic: "t".into() },
        Body::Publish {
            op: op.as_bytes().to_vec(),
        },
        Body::GetCheckpoint { topic: "t".into() },
        Body::GetInclusionProof {
            topic: "t".into(),
            seq: 1,
            tree_size: 2,
        },
        Body::GetConsistencyProof {
            topic: "t".into(),
            old_size: 1,
            new_size: 2,
        },
        Body::Challenge {
            relay: relay.agent_id(),
            nonce: [7; 32],
        },
        Body::Welcome {
            agent: agent.agent_id(),
        },
        Body::Subscribed {
            topic: "t".into(),
            from_seq: 0,
            head: 4,
        },
        Body::Unsubscribed { topic: "t".into() },
        Body::Receipt {
            seq: 4,
            op_id: op.id(),
            receipt: vec![1, 2, 3],
        },
        Body::Entry {
            entry: Entry::new(4, 5, op.clone()).as_bytes().to_vec(),
        },
        Body::Entries {
            entries: vec![
                Entry::new(4, 5, op.clone()).as_bytes().to_vec(),
                Entry::new(5, 6, op.clone()).as_bytes().to_vec(),
            ],
        },
        Body::Event {
            topic: "t".into(),
            seq: 4,
            event: vec![9],
        },
        Body::Checkpoint {
            checkpoint: vec![1],
        },
        Body::InclusionProof { proof: vec![] },
        Body::ConsistencyProof { proof: vec![2] },
        Body::Error {
            code: "BAD_SIGNATURE".into(),
            message: "bad signature".into(),
        },
    ]
}

#[test]
fn every_frame_round_trips_and_refuses_any_truncation_or_extension() {
    for (i, body) in every_body().into_iter().enumerate() {
        let frame = Frame::new(i as u32 + 1, body);
        let bytes = frame.encode().unwrap();
        assert_eq!(Frame::decode(&bytes).unwrap(), frame);
        for cut in 0..bytes.len() {
            assert!(Frame::decode(&bytes[..cut]).is_err(), "{frame:?} cut {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Frame::decode(&longer).unwrap_err().code(), "TRAILING_BYTES");
    }
}

#[test]
fn refuses_unknown_types_versions_and_oversize() {
    assert_eq!(
        Frame::decode(&[1, 0x3e, 0, 0, 0, 0]).unwrap_err().code(),
        "UNKNOWN_FRAME"
    );
    assert_eq!(
        Frame::decode(&[2, 0x01, 0, 0, 0, 0]).unwrap_err().code(),
        "UNSUPPORTED_VERSION"
    );
    let big = vec![1u8; MAX_FRAME_LEN + 1];
    assert_eq!(Frame::decode(&big).unwrap_err().code(), "LIMIT_EXCEEDED");
    let huge = Frame::new(
        0,
        Body::Entry {
            entry: vec![0; MAX_FRAME_LEN],
        },
    );
    assert_eq!(huge.encode().unwrap_err().code(), "LIMIT_EXCEEDED");
    let bad_code = Frame::new(
        0,
        Body::Error {
            code: "lower".into(),
            message: String::new(),
        },
    );
    assert_eq!(bad_code.encode().unwrap_err().code(), "BAD_INPUT");
}

#[test]
fn error_frames_cut_long_messages_at_a_char_boundary() {
    let frame = Frame::error(3, &Error::BadInput("é".repeat(2000)));
    let Body::Error { code, message } = &frame.body else {
        panic!("not an error frame");
    };
    assert_eq!(code, "BAD_INPUT");
    assert!(message.len() <= MAX_MESSAGE_LEN);
    let bytes = frame.encode().unwrap();
    assert_eq!(Frame::decode(&bytes).unwrap(), frame);
}

fn send_code(action: Action) -> String {
    match action {
        Action::Send(Frame {
            body: Body::Error { code, .. },
            ..
        }) => code,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

#[test]
fn publishing_needs_a_hello_signed_over_this_challenge() {
    let relay = identity(1);
    let alice = identity(2);
    let mut conn = RelayConnection::new(relay.agent_id(), [5; 32]);
    let publish = Frame::new(
        8,
        Body::Publish {
            op: op(&alice, "t", 0).as_bytes().to_vec(),
        },
    )
    .encode()
    .unwrap();
    assert_eq!(send_code(conn.receive(&publish)), "NOT_AUTHENTICATED");

    // A hello signed over another nonce is refused.
    let stale = Frame::new(1, sign_hello(&alice, &[6; 32], &relay.agent_id()));
    assert_eq!(
        send_code(conn.receive(&stale.encode().unwrap())),
        "BAD_SIGNATURE"
    );
    let hello = Frame::new(2, sign_hello(&alice, &[5; 32], &relay.agent_id()));
    assert_eq!(
        conn.receive(&hello.encode().unwrap()),
        Action::Send(Frame::new(
            2,
            Body::Welcome {
                agent: alice.agent_id()
            }
        ))
    );
    assert_eq!(conn.agent(), Some(&alice.agent_id()));
    match conn.receive(&publish) {
        Action::Publish { request_id, op } => {
            assert_eq!(request_id, 8);
            assert_eq!(op.counter(), 0);
        }
        other => panic!("{other:?}"),
    }
    // Someone else's op on alice's connection is refused.
    let bob_op = Frame::new(
        9,
        Body::Publish {
            op: op(&identity(3), "t", 0).as_bytes().to_vec(),
        },
    );
    assert_eq!(
        send_code(conn.receive(&bob_op.encode().unwrap())),
        "AUTHOR_MISMATCH"
    );
    // A tampered op is refused by its signature.
    let mut tampered = op(&alice, "t", 1).as_bytes().to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let frame = Frame::new(10, Body::Publish { op: tampered });
    assert_eq!(
        send_code(conn.receive(&frame.encode().unwrap())),
        "BAD_SIGNATURE"
    );
    // Relay-to-client frames are not requests.
    let welcome = Frame::new(
        11,
        Body::Welcome {
            agent: alice.agent_id(),
        },
    );
    assert_eq!(
        send_code(conn.receive(&welcome.encode().unwrap())),
        "UNEXPECTED_FRAME"
    );
    // By its type alone: a challenge with no payload, or an entry with garbage, is unexpected
    // before it is malformed; an unassigned type is still unknown.
    assert_eq!(
        send_code(conn.receive(&[1, 0x40, 0, 0, 0, 12])),
        "UNEXPECTED_FRAME"
    );
    assert_eq!(
        send_code(conn.receive(&[1, 0x45, 0, 0, 0, 13, 0xff])),
        "UNEXPECTED_FRAME"
    );
    assert_eq!(
        send_code(conn.receive(&[1, 0x50, 0, 0, 0, 14])),
        "UNKNOWN_FRAME"
    );
    // Garbage keeps the request id when the header is readable.
    match conn.receive(&[1, 0x04, 0, 0, 0, 42, 0xff]) {
        Action::Send(frame) => assert_eq!(frame.request_id, 42),
        other => panic!("{other:?}"),
    }
}

#[test]
fn deferred_signatures_leave_only_the_signature_to_the_caller() {
    let relay = identity(1);
    let alice = identity(2);
    let mut conn = RelayConnection::new(relay.agent_id(), [5; 32]);
    conn.defer_op_signatures();
    let hello = Frame::new(1, sign_hello(&alice, &[5; 32], &relay.agent_id()));
    assert!(matches!(
        conn.receive(&hello.encode().unwrap()),
        Action::Send(_)
    ));
    // A tampered op of the agent passes here, unverified: the caller's batch refuses it.
    let mut tampered = op(&alice, "t", 1).as_bytes().to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let frame = Frame::new(
        4,
        Body::Publish {
            op: tampered.clone(),
        },
    );
    match conn.receive(&frame.encode().unwrap()) {
        Action::PublishUnverified { request_id, op } => {
            assert_eq!(request_id, 4);
            assert_eq!(op.as_bytes(), &tampered[..]);
            assert_eq!(
                crate::op::verify_ops(&[op]).unwrap_err().code(),
                "BAD_SIGNATURE"
            );
        }
        other => panic!("{other:?}"),
    }
    // Another author's op: forged → BAD_SIGNATURE, genuine → AUTHOR_MISMATCH, as when verifying.
    let bob = identity(3);
    let mut forged = op(&bob, "t", 0).as_bytes().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let frame = Frame::new(5, Body::Publish { op: forged });
    assert_eq!(
        send_code(conn.receive(&frame.encode().unwrap())),
        "BAD_SIGNATURE"
    );
    let frame = Frame::new(
        6,
        Body::Publish {
            op: op(&bob, "t", 0).as_bytes().to_vec(),
        },
    );
    assert_eq!(
        send_code(conn.receive(&frame.encode().unwrap())),
        "AUTHOR_MISMATCH"
    );
}

#[test]
fn deliveries_are_exactly_the_owed_sequence() {
    let mut conn = RelayConnection::new(identity(1).agent_id(), [0; 32]);
    let subscribe = Frame::new(
        4,
        Body::Subscribe {
            topic: "t".into(),
            from_seq: 2,
        },
    );
    assert!(matches!(
        conn.receive(&subscribe.encode().unwrap()),
        Action::Subscribe { request_id: 4, .. }
    ));
    // Nothing is delivered before the subscription started.
    assert_eq!(conn.deliver("t", 2, b"x"), None);
    let started = conn.subscribed("t", 4, 5).unwrap();
    assert_eq!(
        started.body,
        Body::Subscribed {
            topic: "t".into(),
            from_seq: 2,
            head: 5
        }
    );
    assert_eq!(conn.deliver("t", 1, b"x"), None);
    assert_eq!(conn.deliver("t", 3, b"x"), None);
    assert!(conn.deliver("t", 2, b"x").is_some());
    assert_eq!(conn.deliver("t", 2, b"x"), None);
    assert_eq!(conn.cursor("t"), Some(3));
    assert_eq!(conn.deliver("other", 0, b"x"), None);
    let unsubscribe = Frame::new(5, Body::Unsubscribe { topic: "t".into() });
    conn.receive(&unsubscribe.encode().unwrap());
    assert_eq!(conn.cursor("t"), None);
    assert_eq!(conn.subscribed("t", 4, 5), None);
}

#[test]
fn a_cancelled_subscription_is_owed_nothing() {
    let mut conn = RelayConnection::new(identity(1).agent_id(), [0; 32]);
    let subscribe = |id: u32| {
        Frame::new(
            id,
            Body::Subscribe {
                topic: "t".into(),
                from_seq: 0,
            },
        )
        .encode()
        .unwrap()
    };
    let action = conn.receive(&subscribe(4));
    conn.cancel_subscription(&action);
    assert_eq!(conn.subscribed("t", 4, 1), None);
    assert_eq!(conn.cursors().count(), 0);
    // A started subscription, or one another request replaced, is left alone.
    let action = conn.receive(&subscribe(5));
    conn.subscribed("t", 5, 1).unwrap();
    conn.cancel_subscription(&action);
    assert_eq!(conn.cursor("t"), Some(0));
    let stale = conn.receive(&subscribe(6));
    conn.receive(&subscribe(7));
    conn.cancel_subscription(&stale);
    assert!(conn.subscribed("t", 7, 1).is_some());
}

#[test]
fn entries_frames_hold_one_to_256_entries_within_the_frame_bound() {
    let entries = |n: usize, len: usize| Body::Entries {
        entries: vec![vec![7; len]; n],
    };
    for n in [0, MAX_ENTRIES_PER_FRAME + 1] {
        assert_eq!(
            Frame::new(1, entries(n, 1)).encode().unwrap_err().code(),
            "LIMIT_EXCEEDED"
        );
    }
    let full = Frame::new(1, entries(MAX_ENTRIES_PER_FRAME, 1));
    assert_eq!(Frame::decode(&full.encode().unwrap()).unwrap(), full);
    // A count of 0 or above the bound is refused when decoding too.
    for count in [0u16, MAX_ENTRIES_PER_FRAME as u16 + 1] {
        let mut bytes = vec![WIRE_VERSION, frame_type::ENTRIES, 0, 0, 0, 1];
        bytes.extend(count.to_be_bytes());
        bytes.extend(std::iter::repeat_n([0, 0, 0, 1, 9], count as usize).flatten());
        assert_eq!(Frame::decode(&bytes).unwrap_err().code(), "LIMIT_EXCEEDED");
    }
    let half = MAX_FRAME_LEN / 2;
    assert_eq!(
        Frame::new(1, entries(2, half)).encode().unwrap_err().code(),
        "LIMIT_EXCEEDED"
    );
}

#[test]
fn encode_entries_makes_the_same_bytes_as_the_frame_it_stands_for() {
    let one = vec![b"a".to_vec()];
    let two = vec![b"a".to_vec(), b"bc".to_vec()];
    assert_eq!(
        encode_entries(9, &one).unwrap(),
        Frame::new(
            9,
            Body::Entry {
                entry: one[0].clone()
            }
        )
        .encode()
        .unwrap()
    );
    assert_eq!(
        encode_entries(9, &two).unwrap(),
        Frame::new(9, Body::Entries { entries: two })
            .encode()
            .unwrap()
    );
    assert_eq!(
        encode_entries::<Vec<u8>>(9, &[]).unwrap_err().code(),
        "LIMIT_EXCEEDED"
    );
}

#[test]
fn a_run_of_owed_entries_is_packed_into_bounded_frames() {
    let mut conn = RelayConnection::new(identity(1).agent_id(), [0; 32]);
    let subscribe = Frame::new(
        4,
        Body::Subscribe {
            topic: "t".into(),
            from_seq: 0,
        },
    );
    conn.receive(&subscribe.encode().unwrap());
    let small: Vec<(u64, Vec<u8>)> = (0..600).map(|seq| (seq, vec![seq as u8; 10])).collect();
    let run = |conn: &mut RelayConnection, entries: &[(u64, Vec<u8>)]| {
        conn.deliver_run("t", entries.iter().map(|(seq, e)| (*seq, &e[..])))
            .unwrap()
            .iter()
            .map(|bytes| Frame::decode(bytes).unwrap())
            .collect::<Vec<_>>()
    };
    // Not started yet: nothing.
    assert!(run(&mut conn, &small).is_empty());
    conn.subscribed("t", 4, 0).unwrap();
    // 600 owed entries: 256 + 256 + 88, in order, tagged with the subscribe's id.
    let frames = run(&mut conn, &small);
    let mut seen = Vec::new();
    for frame in &frames {
        assert_eq!(frame.request_id, 4);
        let Body::Entries { entries } = &frame.body else {
            panic!("not an entries frame: {frame:?}");
        };
        seen.extend(entries.iter().map(|e| e[0]));
    }
    assert_eq!(
        frames
            .iter()
            .map(|f| match &f.body {
                Body::Entries { entries } => entries.len(),
                _ => 0,
            })
            .collect::<Vec<_>>(),
        vec![256, 256, 88]
    );
    assert_eq!(seen, (0..600).map(|s| s as u8).collect::<Vec<_>>());
    assert_eq!(conn.cursor("t"), Some(600));
    // Duplicates and entries past a gap are skipped; a lone owed entry is an entry frame.
    let mixed = vec![(599, vec![1]), (600, vec![2]), (602, vec![3])];
    let frames = run(&mut conn, &mixed);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].body, Body::Entry { entry: vec![2] });
    assert_eq!(conn.cursor("t"), Some(601));
    // Large entries: as many per frame as fit under the frame bound.
    let big: Vec<(u64, Vec<u8>)> = (601..605)
        .map(|seq| (seq, vec![0; MAX_FRAME_LEN / 3]))
        .collect();
    let frames = run(&mut conn, &big);
    assert_eq!(frames.len(), 2);
    assert!(frames
        .iter()
        .all(|f| matches!(&f.body, Body::Entries { entries } if entries.len() == 2)));
    assert_eq!(conn.cursor("t"), Some(605));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Frame::decode(&bytes);
            let mut conn = RelayConnection::new(identity(1).agent_id(), [0; 32]);
            let _ = conn.receive(&bytes);
        }

        #[test]
        fn decoding_with_a_valid_header_never_panics(
            kind in 0u8..0x50,
            tail in proptest::collection::vec(any::<u8>(), 0..120),
        ) {
            let mut bytes = vec![WIRE_VERSION, kind, 0, 0, 0, 1];
            bytes.extend(tail);
            if let Ok(frame) = Frame::decode(&bytes) {
                prop_assert_eq!(frame.encode().unwrap(), bytes);
            }
        }
    }
}
