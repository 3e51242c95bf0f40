//! A body replicas cannot read is refused at publish (`BAD_INPUT`), before it is signed: a raw
//! body under a replica kind, a `doc.update` that is not an update (issue 25).

use super::*;
use crate::op::OpDraft;
use crate::replica::ReplicaOp;

/// Every kind a replica reads, with a raw body that is not its encoding.
const REPLICA_KINDS: [&str; 14] = crate::replica::ops::kind::ALL;

#[test]
fn a_raw_body_under_a_replica_kind_is_refused_and_nothing_is_queued() {
    let mut session = Session::new(alice());
    for kind in REPLICA_KINDS {
        assert!(ReplicaOp::is_known_kind(kind), "{kind}");
        let err = session
            .publish("t", kind, b"hello", vec![], T0)
            .unwrap_err();
        assert_eq!(err.code(), "BAD_INPUT", "{kind}: {err}");
        assert!(err.to_string().contains(kind), "{err}");
    }
    assert!(session.unacknowledged().is_empty());
    assert!(session.take_outgoing().is_empty());
    // The refusals used no counter: the first op published takes the one it would have.
    let mut fresh = Session::new(alice());
    let body = ReplicaOp::Post {
        text: "hello".into(),
    }
    .encode()
    .unwrap();
    let op = session.publish("t", "post", &body, vec![], T0).unwrap();
    let same = fresh.publish("t", "post", &body, vec![], T0).unwrap();
    assert_eq!(op.id(), same.id());
}

#[test]
fn replica_op_bodies_and_other_kinds_are_published() {
    let mut session = Session::new(alice());
    let claim = ReplicaOp::Claim {
        resource: "job".into(),
        lease_ms: 0,
        stake: 0,
        fence: None,
    };
    session
        .publish("t", "claim", &claim.encode().unwrap(), vec![], T0)
        .unwrap();
    // Not a replica kind: any body, also one that happens to look like nothing.
    session.publish("t", "note", b"hello", vec![], T0).unwrap();
    session.publish("t", "chat.msg", &[], vec![], T0).unwrap();
    assert_eq!(session.unacknowledged().len(), 3);
}

#[test]
fn an_op_signed_elsewhere_with_a_raw_replica_body_is_refused() {
    let mut session = Session::new(alice());
    let raw = SignedOp::sign(
        &alice(),
        OpDraft {
            topic: "t".into(),
            kind: "post".into(),
            counter: 1,
            body: b"hello".to_vec(),
            ..OpDraft::default()
        },
    )
    .unwrap();
    assert_eq!(session.publish_signed(raw).unwrap_err().code(), "BAD_INPUT");
    assert!(session.unacknowledged().is_empty());
}

#[cfg(feature = "doc")]
#[test]
fn a_doc_update_must_carry_an_update() {
    use crate::doc::{encode_update_body, Doc};

    let mut session = Session::new(alice());
    let doc = Doc::new();
    doc.insert_text("text", 0, "hi").unwrap();
    let update = doc.encode_update(None).unwrap();
    for (body, what) in [
        (b"hello".to_vec(), "text"),
        (Vec::new(), "nothing"),
        ([&[2u8][..], &update].concat(), "another version"),
    ] {
        let err = session
            .publish("notes", "doc.update", &body, vec![], T0)
            .unwrap_err();
        assert_eq!(err.code(), "BAD_INPUT", "{what}: {err}");
    }
    assert!(session.unacknowledged().is_empty());
    let body = encode_update_body(&update).unwrap();
    session
        .publish("notes", "doc.update", &body, vec![], T0)
        .unwrap();
    assert_eq!(session.unacknowledged().len(), 1);
}
