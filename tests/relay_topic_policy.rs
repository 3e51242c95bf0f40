//! The owner's topic policy on a real relay (PROTOCOL.md 10.10): an owned topic its owner made
//! public is read by anyone — subscribe, replay, proofs, checkpoints, no hello needed — and
//! written only as before; a policy by anyone but the owner is refused `NOT_AUTHORIZED`, a
//! capability holder's too; back to private, a live reader without a read capability gets the
//! entries below the policy's seq, none at or after it, then an error frame `NOT_AUTHORIZED`
//! answering its subscribe, while a reader with a capability reads on; and the relay rebuilds
//! the rule from the log when it restarts.
#![cfg(all(feature = "relay", not(target_arch = "wasm32")))]

mod common;

use ants_coord::capability::authority::{kind, Presentation};
use ants_coord::capability::{ReadRule, Rights, TopicPolicy};
use ants_coord::wire::Body;
use ants_coord::{Capability, Identity, OpDraft, SignedOp};
use common::capabilities::{cap_until, in_an_hour, owned, url_with};
use common::relay::*;

fn signed(author: &Identity, mut draft: OpDraft, counter: u64) -> SignedOp {
    draft.counter = counter;
    draft.time_ms = 1_700_000_000_000 + counter;
    SignedOp::sign(author, draft).unwrap()
}

fn policy(author: &Identity, topic: &str, read: ReadRule, counter: u64) -> SignedOp {
    signed(author, TopicPolicy { read }.draft(topic), counter)
}

fn cap(issuer: &Identity, audience: &Identity, topic: &str, rights: Rights) -> Capability {
    cap_until(issuer, audience, topic, rights, in_an_hour())
}

/// The code a request's answer carries (`OK` for a proper answer).
async fn answer_code(client: &mut Client, body: Body) -> String {
    let id = client.request(body).await;
    let answer = client.recv().await;
    assert_eq!(answer.request_id, id, "{answer:?}");
    match answer.body {
        Body::Error { code, .. } => code,
        _ => "OK".into(),
    }
}

/// The codes of every read request of `topic` (10.6): subscribe, checkpoint, inclusion and
/// consistency proofs of its first `size` entries. A subscription that succeeds is left open.
async fn read_codes(client: &mut Client, topic: &str, size: u64) -> Vec<String> {
    let mut codes = Vec::new();
    for body in [
        Body::GetCheckpoint {
            topic: topic.into(),
        },
        Body::GetInclusionProof {
            topic: topic.into(),
            seq: 0,
            tree_size: size,
        },
        Body::GetConsistencyProof {
            topic: topic.into(),
            old_size: 1,
            new_size: size,
        },
        Body::Subscribe {
            topic: topic.into(),
            from_seq: 0,
        },
    ] {
        codes.push(answer_code(client, body).await);
    }
    codes
}

/// Subscribes from 0 and takes the `head` entries replayed; returns the request id.
async fn follow(client: &mut Client, topic: &str) -> (u32, u64) {
    let id = client
        .request(Body::Subscribe {
            topic: topic.into(),
            from_seq: 0,
        })
        .await;
    let answer = client.recv().await;
    assert_eq!(answer.request_id, id, "{answer:?}");
    let Body::Subscribed { head, .. } = answer.body else {
        panic!("not subscribed: {answer:?}");
    };
    for seq in 0..head {
        assert_eq!(client.next_entry().await.seq(), seq);
    }
    (id, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_opens_reading_to_everyone_and_closes_it_at_a_seq() {
    let dir = temp_dir("topic-policy");
    let relay = start_relay(dir.clone()).await;
    let url = relay.url();
    let (alice, bob, carol, mallory) = (identity(1), identity(2), identity(3), identity(5));
    let topic = owned(&alice, "news");
    let read = cap(&alice, &bob, &topic, Rights::READ);
    let write = cap(&alice, &carol, &topic, Rights::WRITE);
    let mut owner = Client::connect_as(&url, &alice).await;
    assert_eq!(owner.publish_ok(&op(&alice, &topic, 0, b"first")).await, 0);

    // Private, as every owned topic starts: no hello, no capability, nothing read.
    let mut anonymous = Client::connect(&url).await;
    assert_eq!(
        read_codes(&mut anonymous, &topic, 1).await,
        ["NOT_AUTHENTICATED"; 4]
    );
    let mut stranger = Client::connect_as(&url, &mallory).await;
    assert_eq!(
        read_codes(&mut stranger, &topic, 1).await,
        ["NOT_AUTHORIZED"; 4]
    );

    // Nobody but the owner sets the policy: not a stranger (refused by the connection's
    // rights), not a holder of a presented write capability (refused by the topic's rule).
    let refused = stranger
        .publish(&policy(&mallory, &topic, ReadRule::Public, 0))
        .await;
    assert_eq!(code_of(&refused), "NOT_AUTHORIZED");
    let mut writer = Client::connect_as(&url_with(&url, &[&write]), &carol).await;
    let present = signed(&carol, Presentation::new(write.clone()).draft(&topic), 0);
    assert_eq!(writer.publish_ok(&present).await, 1);
    let refused = writer
        .publish(&policy(&carol, &topic, ReadRule::Public, 1))
        .await;
    assert_eq!(code_of(&refused), "NOT_AUTHORIZED");

    // The owner makes it public: everyone reads every entry, with or without a hello.
    assert_eq!(
        owner
            .publish_ok(&policy(&alice, &topic, ReadRule::Public, 1))
            .await,
        2
    );
    let mut anonymous = Client::connect(&url).await;
    assert_eq!(read_codes(&mut anonymous, &topic, 3).await, ["OK"; 4]);
    for seq in 0..3 {
        assert_eq!(anonymous.next_entry().await.seq(), seq);
    }
    let mut stranger = Client::connect_as(&url, &mallory).await;
    let (subscription, head) = follow(&mut stranger, &topic).await;
    assert_eq!(head, 3);
    let mut reader = Client::connect_as(&url_with(&url, &[&read]), &bob).await;
    follow(&mut reader, &topic).await;
    // Reading only: a stranger's write is refused as before.
    let refused = stranger.publish(&op(&mallory, &topic, 1, b"me?")).await;
    assert_eq!(code_of(&refused), "NOT_AUTHORIZED");

    // Live, then private again at seq 4: the stranger gets entry 3, then the end of its
    // subscription; bob, who holds a read capability, reads on.
    owner
        .publish_ok(&op(&alice, &topic, 2, b"last public"))
        .await;
    let private_at = owner
        .publish_ok(&policy(&alice, &topic, ReadRule::Private, 3))
        .await;
    assert_eq!(private_at, 4);
    owner.publish_ok(&op(&alice, &topic, 4, b"secret")).await;
    assert_eq!(stranger.next_entry().await.seq(), 3);
    let ended = stranger.recv().await;
    assert_eq!(
        (ended.request_id, code_of(&ended)),
        (subscription, "NOT_AUTHORIZED"),
        "{ended:?}"
    );
    assert_eq!(anonymous.next_entry().await.seq(), 3);
    assert_eq!(code_of(&anonymous.recv().await), "NOT_AUTHORIZED");
    for seq in 3..=5 {
        assert_eq!(reader.next_entry().await.seq(), seq);
    }
    // Nothing more of the topic reaches the stranger: an open topic's entry is its next frame.
    assert_eq!(stranger.subscribe("marker", 0).await, 0);
    owner.publish_ok(&op(&alice, "marker", 0, b"end")).await;
    assert_eq!(stranger.next_entry().await.op().topic(), "marker");
    assert_eq!(
        read_codes(&mut stranger, &topic, 6).await,
        ["NOT_AUTHORIZED"; 4]
    );

    // Public again, and the relay restarts: the rule comes back from the log.
    owner
        .publish_ok(&policy(&alice, &topic, ReadRule::Public, 5))
        .await;
    drop((owner, anonymous, stranger, reader, writer));
    relay.shutdown().await.unwrap();
    let relay = start_relay(dir.clone()).await;
    let url = relay.url();
    let mut anonymous = Client::connect(&url).await;
    assert_eq!(read_codes(&mut anonymous, &topic, 7).await, ["OK"; 4]);
    let mut owner = Client::connect_as(&url, &alice).await;
    owner
        .publish_ok(&policy(&alice, &topic, ReadRule::Private, 6))
        .await;
    assert_eq!(
        read_codes(&mut Client::connect(&url).await, &topic, 8).await,
        ["NOT_AUTHENTICATED"; 4]
    );
    drop((owner, anonymous));
    relay.shutdown().await.unwrap();
    // And private survives a restart too.
    let relay = start_relay(dir).await;
    let url = relay.url();
    assert_eq!(
        read_codes(&mut Client::connect(&url).await, &topic, 8).await,
        ["NOT_AUTHENTICATED"; 4]
    );
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_does_not_decode_is_refused_and_logs_nothing() {
    let relay = start_relay(temp_dir("topic-policy-bad")).await;
    let url = relay.url();
    let alice = identity(1);
    let topic = owned(&alice, "news");
    let mut owner = Client::connect_as(&url, &alice).await;
    for (counter, body) in [vec![1, 2], vec![2, 1], vec![1, 1, 0], vec![]]
        .into_iter()
        .enumerate()
    {
        let draft = OpDraft {
            topic: topic.clone(),
            kind: kind::POLICY.into(),
            body,
            ..OpDraft::default()
        };
        let refused = owner.publish(&signed(&alice, draft, counter as u64)).await;
        assert!(
            matches!(
                code_of(&refused),
                "MALFORMED" | "UNSUPPORTED_VERSION" | "TRAILING_BYTES"
            ),
            "{refused:?}"
        );
    }
    // Nothing was logged: the topic is still empty and private.
    assert_eq!(owner.subscribe(&topic, 0).await, 0);
    let mut anonymous = Client::connect(&url).await;
    let code = answer_code(
        &mut anonymous,
        Body::GetCheckpoint {
            topic: topic.clone(),
        },
    )
    .await;
    assert_eq!(code, "NOT_AUTHENTICATED");
    relay.shutdown().await.unwrap();
}
