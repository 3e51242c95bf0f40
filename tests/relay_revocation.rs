//! Revocation on a real relay (PROTOCOL.md 10.7, 10.8): a `cap.revoke` op of the owner or of a
//! link's signer ends, at once, the live subscriptions that read by the revoked capability
//! (`CAPABILITY_REVOKED`, and nothing of the topic after the revocation reaches them); the next
//! publish by a revoked writer, and every request of a fresh connection holding the revoked
//! capability, is refused; the relay rebuilds its revocations from the log when it restarts; and
//! it never sequences a write the topic's own log does not authorize (a capability must be
//! presented first), so what it logs counts on every replica.
#![cfg(all(feature = "relay", not(target_arch = "wasm32")))]

mod common;

use ants_coord::capability::authority::{kind, Presentation, Revocation};
use ants_coord::capability::{Grant, Rights, Scope};
use ants_coord::wire::Body;
use ants_coord::{Capability, Identity, OpDraft, SignedOp};
use common::capabilities::{cap_until, in_an_hour, owned, url_with};
use common::relay::*;

fn cap(issuer: &Identity, audience: &Identity, topic: &str, rights: Rights) -> Capability {
    cap_until(issuer, audience, topic, rights, in_an_hour())
}

fn signed(author: &Identity, mut draft: OpDraft, counter: u64) -> SignedOp {
    draft.counter = counter;
    draft.time_ms = 1_700_000_000_000 + counter;
    SignedOp::sign(author, draft).unwrap()
}

fn presentation(author: &Identity, topic: &str, capability: &Capability, counter: u64) -> SignedOp {
    signed(
        author,
        Presentation::new(capability.clone()).draft(topic),
        counter,
    )
}

fn revocation(
    author: &Identity,
    topic: &str,
    capability: &Capability,
    index: usize,
    counter: u64,
) -> SignedOp {
    let revocation = Revocation::new(capability.clone(), index).unwrap();
    signed(author, revocation.draft(topic), counter)
}

/// Subscribes and takes the `head` entries the subscription replays; returns its request id.
async fn follow(client: &mut Client, topic: &str) -> u32 {
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
    for _ in 0..head {
        client.next_entry().await;
    }
    id
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

/// The codes of a subscribe and a checkpoint request of `topic`.
async fn read_codes(mut client: Client, topic: &str) -> Vec<String> {
    let mut codes = Vec::new();
    for body in [
        Body::Subscribe {
            topic: topic.into(),
            from_seq: 0,
        },
        Body::GetCheckpoint {
            topic: topic.into(),
        },
    ] {
        codes.push(answer_code(&mut client, body).await);
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_takes_effect_at_once_for_readers_and_writers_and_survives_a_restart() {
    let dir = temp_dir("revoke");
    let relay = start_relay(dir.clone()).await;
    let url = relay.url();
    let (alice, bob, carol) = (identity(1), identity(2), identity(3));
    let topic = owned(&alice, "board");
    let read = cap(&alice, &bob, &topic, Rights::READ);
    let write = cap(&alice, &carol, &topic, Rights::WRITE);
    let mut owner = Client::connect_as(&url, &alice).await;
    owner.publish_ok(&op(&alice, &topic, 0, b"first")).await;

    // Bob reads live; carol presents her capability, then writes.
    let mut reader = Client::connect_as(&url_with(&url, &[&read]), &bob).await;
    let subscription = follow(&mut reader, &topic).await;
    let mut writer = Client::connect_as(&url_with(&url, &[&write]), &carol).await;
    assert_eq!(
        writer
            .publish_ok(&presentation(&carol, &topic, &write, 0))
            .await,
        1
    );
    assert_eq!(writer.publish_ok(&op(&carol, &topic, 1, b"hi")).await, 2);
    for seq in 1..=2 {
        assert_eq!(reader.next_entry().await.seq(), seq);
    }

    // Alice revokes bob's capability: his subscription ends, the revocation's entry unseen.
    let revoked_at = owner
        .publish_ok(&revocation(&alice, &topic, &read, 0, 1))
        .await;
    assert_eq!(revoked_at, 3);
    let ended = reader.recv().await;
    assert_eq!(
        (ended.request_id, code_of(&ended)),
        (subscription, "CAPABILITY_REVOKED"),
        "{ended:?}"
    );
    // ... and carol's: her next publish is refused, nothing stored.
    owner
        .publish_ok(&revocation(&alice, &topic, &write, 0, 2))
        .await;
    let refused = writer.publish(&op(&carol, &topic, 2, b"again")).await;
    assert_eq!(code_of(&refused), "CAPABILITY_REVOKED");

    // Nothing more of the topic reaches bob: an open topic's entry is his next frame.
    assert_eq!(reader.subscribe("marker", 0).await, 0);
    owner.publish_ok(&op(&alice, &topic, 3, b"later")).await;
    owner.publish_ok(&op(&alice, "marker", 0, b"end")).await;
    assert_eq!(reader.next_entry().await.op().topic(), "marker");

    // Fresh connections with the revoked capabilities are refused every request.
    let fresh = Client::connect_as(&url_with(&url, &[&read]), &bob).await;
    assert_eq!(read_codes(fresh, &topic).await, ["CAPABILITY_REVOKED"; 2]);
    let mut fresh = Client::connect_as(&url_with(&url, &[&write]), &carol).await;
    let refused = fresh.publish(&op(&carol, &topic, 2, b"again")).await;
    assert_eq!(code_of(&refused), "CAPABILITY_REVOKED");

    // The relay restarts: the revocations come back from the log.
    drop((owner, reader, writer, fresh));
    relay.shutdown().await.unwrap();
    let relay = start_relay(dir).await;
    let url = relay.url();
    let fresh = Client::connect_as(&url_with(&url, &[&read]), &bob).await;
    assert_eq!(read_codes(fresh, &topic).await, ["CAPABILITY_REVOKED"; 2]);
    let mut fresh = Client::connect_as(&url_with(&url, &[&write]), &carol).await;
    let refused = fresh.publish(&op(&carol, &topic, 2, b"again")).await;
    assert_eq!(code_of(&refused), "CAPABILITY_REVOKED");
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegator_revokes_the_link_it_signed_without_a_write_right() {
    let relay = start_relay(temp_dir("revoke-delegator")).await;
    let url = relay.url();
    let (alice, carol, dave, mallory) = (identity(1), identity(3), identity(4), identity(5));
    let topic = owned(&alice, "shared");
    // Carol may read and delegate, not write; she lets dave read.
    let root = cap(&alice, &carol, &topic, Rights::READ | Rights::DELEGATE);
    let chain = root
        .delegate(
            &carol,
            Grant {
                audience: dave.agent_id(),
                scope: Scope::Topic(topic.clone()),
                rights: Rights::READ,
                not_before_ms: 0,
                expires_ms: in_an_hour(),
            },
        )
        .unwrap();
    let mut owner = Client::connect_as(&url, &alice).await;
    owner.publish_ok(&op(&alice, &topic, 0, b"news")).await;
    let mut reader = Client::connect_as(&url_with(&url, &[&chain]), &dave).await;
    let subscription = follow(&mut reader, &topic).await;

    // Mallory signed no link of the chain, and the root link is alice's, not carol's to revoke:
    // both refused by the relay, nothing logged.
    let mut stranger = Client::connect_as(&url, &mallory).await;
    let refused = stranger
        .publish(&revocation(&mallory, &topic, &chain, 1, 0))
        .await;
    assert_eq!(code_of(&refused), "NOT_AUTHORIZED");
    let mut delegator = Client::connect_as(&url_with(&url, &[&root]), &carol).await;
    let refused = delegator
        .publish(&revocation(&carol, &topic, &chain, 0, 0))
        .await;
    assert_eq!(code_of(&refused), "NOT_AUTHORIZED");
    // Her own link: accepted, though she holds no write right; dave's subscription ends.
    assert_eq!(
        delegator
            .publish_ok(&revocation(&carol, &topic, &chain, 1, 1))
            .await,
        1
    );
    let ended = reader.recv().await;
    assert_eq!(
        (ended.request_id, code_of(&ended)),
        (subscription, "CAPABILITY_REVOKED"),
        "{ended:?}"
    );
    // Carol still reads: only her link to dave was revoked.
    let mut carol_reader = Client::connect_as(&url_with(&url, &[&root]), &carol).await;
    follow(&mut carol_reader, &topic).await;
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_counts_only_once_its_capability_is_in_the_log() {
    let relay = start_relay(temp_dir("revoke-present")).await;
    let url = relay.url();
    let (alice, bob, carol) = (identity(1), identity(2), identity(3));
    let topic = owned(&alice, "inbox");
    let write = cap(&alice, &bob, &topic, Rights::WRITE);
    let mut writer = Client::connect_as(&url_with(&url, &[&write]), &bob).await;
    // The URL lets bob write, but replicas decide by the log alone: the relay refuses an op
    // they would reject.
    let refused = writer.publish(&op(&bob, &topic, 0, b"too early")).await;
    assert_eq!(code_of(&refused), "NOT_AUTHORIZED");
    // A capability for bob is not carol's to present.
    let mut other = Client::connect_as(&url_with(&url, &[&write]), &carol).await;
    let refused = other
        .publish(&presentation(&carol, &topic, &write, 0))
        .await;
    assert_eq!(code_of(&refused), "NOT_AUTHORIZED");
    assert_eq!(
        writer
            .publish_ok(&presentation(&bob, &topic, &write, 0))
            .await,
        0
    );
    assert_eq!(writer.publish_ok(&op(&bob, &topic, 1, b"now")).await, 1);
    // The relay's replica counted both.
    let kinds = {
        let mut owner = Client::connect_as(&url, &alice).await;
        assert_eq!(owner.subscribe(&topic, 0).await, 2);
        let mut kinds = Vec::new();
        for _ in 0..2 {
            kinds.push(owner.next_entry().await.op().kind().to_owned());
        }
        kinds
    };
    assert_eq!(kinds, [kind::PRESENT, "post"]);
    // The owner grants carol and presents the grant for her: her first write counts.
    let for_carol = cap(&alice, &carol, &topic, Rights::WRITE);
    let mut owner = Client::connect_as(&url, &alice).await;
    assert_eq!(
        owner
            .publish_ok(&presentation(&alice, &topic, &for_carol, 0))
            .await,
        2
    );
    let mut carol_writer = Client::connect_as(&url_with(&url, &[&for_carol]), &carol).await;
    assert_eq!(
        carol_writer
            .publish_ok(&op(&carol, &topic, 1, b"hello"))
            .await,
        3
    );
    relay.shutdown().await.unwrap();
}

/// Two frontends of one relay (a JetStream cluster): a revocation sequenced through one ends a
/// live subscription on the other, whose hub learns it from the replicated log, and the other
/// refuses a fresh connection holding the revoked capability.
#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_frontend_ends_a_reader_on_another() {
    use common::cluster::{publish_retrying, start_frontend};
    use common::nats::NatsCluster;
    let nats = NatsCluster::start("revoke").await;
    let a = start_frontend(&nats.url(), temp_dir("revoke-a")).await;
    let b = start_frontend(&nats.url(), temp_dir("revoke-b")).await;
    let (alice, bob) = (identity(1), identity(2));
    let topic = owned(&alice, "cluster");
    let read = cap(&alice, &bob, &topic, Rights::READ);
    let mut owner = Client::connect_as(&a.url(), &alice).await;
    publish_retrying(&mut owner, &op(&alice, &topic, 0, b"first")).await;
    // Bob reads on B once B serves the first entry.
    let mut reader = Client::connect_as(&url_with(&b.url(), &[&read]), &bob).await;
    let subscription = reader
        .request(Body::Subscribe {
            topic: topic.clone(),
            from_seq: 0,
        })
        .await;
    let answer = reader.recv().await;
    assert!(matches!(answer.body, Body::Subscribed { .. }), "{answer:?}");
    assert_eq!(reader.next_entry().await.seq(), 0);

    let (seq, _) = publish_retrying(&mut owner, &revocation(&alice, &topic, &read, 0, 1)).await;
    assert_eq!(seq, 1);
    let ended = reader.recv().await;
    assert_eq!(
        (ended.request_id, code_of(&ended)),
        (subscription, "CAPABILITY_REVOKED"),
        "{ended:?}"
    );
    let fresh = Client::connect_as(&url_with(&b.url(), &[&read]), &bob).await;
    assert_eq!(read_codes(fresh, &topic).await, ["CAPABILITY_REVOKED"; 2]);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
