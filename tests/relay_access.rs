//! Owned topics on a real relay (PROTOCOL.md 10.5): every path of an owned topic is refused
//! without a capability, with an expired one, with a forged one and with a widening chain, and
//! allowed with a valid one; a reader without rights never receives an entry of the topic.
#![cfg(all(feature = "relay", not(target_arch = "wasm32")))]

mod common;

use ants_coord::capability::{Grant, Presentation, Rights, Scope};
use ants_coord::wire::Body;
use ants_coord::{Capability, Identity};
use common::capabilities::{cap_until as cap, in_an_hour, owned, url_with};
use common::relay::*;

/// The four read requests of an owned topic whose log has at least two entries.
fn read_requests(topic: &str) -> Vec<Body> {
    vec![
        Body::Subscribe {
            topic: topic.into(),
            from_seq: 0,
        },
        Body::GetCheckpoint {
            topic: topic.into(),
        },
        Body::GetInclusionProof {
            topic: topic.into(),
            seq: 0,
            tree_size: 2,
        },
        Body::GetConsistencyProof {
            topic: topic.into(),
            old_size: 1,
            new_size: 2,
        },
    ]
}

/// Sends each read request and returns the code of each answer (`OK` for a proper answer).
async fn read_codes(client: &mut Client, topic: &str) -> Vec<String> {
    let mut codes = Vec::new();
    for body in read_requests(topic) {
        let id = client.request(body).await;
        let answer = client.recv().await;
        assert_eq!(answer.request_id, id, "{answer:?}");
        codes.push(match answer.body {
            Body::Error { code, .. } => code,
            Body::Subscribed { head, from_seq, .. } => {
                // A granted subscription replays the topic's entries: take them.
                for _ in from_seq..head {
                    assert_eq!(client.next_entry().await.op().topic(), topic);
                }
                "OK".into()
            }
            Body::Checkpoint { .. }
            | Body::InclusionProof { .. }
            | Body::ConsistencyProof { .. } => "OK".into(),
            other => panic!("unexpected answer {other:?}"),
        });
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_an_owned_topic_needs_the_owner_or_a_read_capability() {
    let relay = start_relay(temp_dir("access-read")).await;
    let url = relay.url();
    let (alice, bob, mallory) = (identity(1), identity(2), identity(3));
    let topic = owned(&alice, "diary");
    let mut owner = Client::connect_as(&url, &alice).await;
    owner
        .publish_ok(&op(&alice, &topic, 0, b"dear diary"))
        .await;
    owner.publish_ok(&op(&alice, &topic, 1, b"again")).await;
    let ok = vec!["OK"; 4];
    assert_eq!(read_codes(&mut owner, &topic).await, ok);

    // No hello: every read path needs one for an owned topic.
    let mut anonymous = Client::connect(&url).await;
    assert_eq!(
        read_codes(&mut anonymous, &topic).await,
        vec!["NOT_AUTHENTICATED"; 4]
    );
    // Another key without a capability, with an expired one, with one from the wrong issuer,
    // with a write-only one.
    let expired = cap(&alice, &bob, &topic, Rights::READ, 1_000);
    let wrong_issuer = cap(&mallory, &bob, &topic, Rights::READ, in_an_hour());
    let write_only = cap(&alice, &bob, &topic, Rights::WRITE, in_an_hour());
    for (caps, code) in [
        (vec![], "NOT_AUTHORIZED"),
        (vec![&expired], "CAPABILITY_EXPIRED"),
        (vec![&wrong_issuer], "NOT_AUTHORIZED"),
        (vec![&write_only], "NOT_AUTHORIZED"),
    ] {
        let mut reader = Client::connect_as(&url_with(&url, &caps), &bob).await;
        assert_eq!(
            read_codes(&mut reader, &topic).await,
            vec![code; 4],
            "{caps:?}"
        );
        reader.close().await;
    }
    // A capability for bob, used by mallory.
    let for_bob = cap(&alice, &bob, &topic, Rights::READ, in_an_hour());
    let mut thief = Client::connect_as(&url_with(&url, &[&for_bob]), &mallory).await;
    assert_eq!(
        read_codes(&mut thief, &topic).await,
        vec!["NOT_AUTHORIZED"; 4]
    );
    // Valid: bob reads every path.
    let mut reader = Client::connect_as(&url_with(&url, &[&for_bob]), &bob).await;
    assert_eq!(read_codes(&mut reader, &topic).await, ok);
    // An open topic stays open to anyone, without a hello.
    owner.publish_ok(&op(&alice, "open", 0, b"hi")).await;
    owner.publish_ok(&op(&alice, "open", 1, b"hi")).await;
    assert_eq!(read_codes(&mut anonymous, "open").await, ok);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_an_owned_topic_needs_the_owner_or_a_write_capability() {
    let relay = start_relay(temp_dir("access-write")).await;
    let url = relay.url();
    let (alice, bob, carol) = (identity(1), identity(2), identity(3));
    let topic = owned(&alice, "inbox");
    let expired = cap(&alice, &bob, &topic, Rights::WRITE, 1_000);
    let read_only = cap(&alice, &bob, &topic, Rights::READ, in_an_hour());
    let from_carol = cap(&carol, &bob, &topic, Rights::WRITE, in_an_hour());
    for (caps, code) in [
        (vec![], "NOT_AUTHORIZED"),
        (vec![&expired], "CAPABILITY_EXPIRED"),
        (vec![&read_only], "NOT_AUTHORIZED"),
        (vec![&from_carol], "NOT_AUTHORIZED"),
    ] {
        let mut writer = Client::connect_as(&url_with(&url, &caps), &bob).await;
        let answer = writer.publish(&op(&bob, &topic, 0, b"let me in")).await;
        assert_eq!(code_of(&answer), code, "{caps:?}");
        writer.close().await;
    }
    // Nothing was stored: the owner sees an empty log.
    let mut owner = Client::connect_as(&url, &alice).await;
    assert_eq!(owner.subscribe(&topic, 0).await, 0);
    // With a valid capability (through a delegation), and the owner itself.
    let root = cap(
        &alice,
        &carol,
        &topic,
        Rights::WRITE | Rights::DELEGATE,
        in_an_hour(),
    );
    let chain = root
        .delegate(
            &carol,
            Grant {
                audience: bob.agent_id(),
                scope: Scope::Topic(topic.clone()),
                rights: Rights::WRITE,
                not_before_ms: 0,
                expires_ms: in_an_hour(),
            },
        )
        .unwrap();
    let mut writer = Client::connect_as(&url_with(&url, &[&expired, &chain]), &bob).await;
    // Replicas decide by the topic's log alone (10.8): bob presents the chain there once.
    let mut present = Presentation::new(chain.clone()).draft(&topic);
    present.time_ms = 1_700_000_000_000;
    let present = ants_coord::SignedOp::sign(&bob, present).unwrap();
    assert_eq!(writer.publish_ok(&present).await, 0);
    assert_eq!(
        writer
            .publish_ok(&op(&bob, &topic, 1, b"hello alice"))
            .await,
        1
    );
    for _ in 0..2 {
        assert_eq!(owner.next_entry().await.op().author(), &bob.agent_id());
    }
    // The owner writes without a capability (on another connection: this one is subscribed).
    let mut owner_writer = Client::connect_as(&url, &alice).await;
    assert_eq!(
        owner_writer
            .publish_ok(&op(&alice, &topic, 0, b"hello bob"))
            .await,
        2
    );
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_widening_capability_refuses_the_connection() {
    let relay = start_relay(temp_dir("access-bad")).await;
    let url = relay.url();
    let (alice, bob, carol) = (identity(1), identity(2), identity(3));
    let topic = owned(&alice, "inbox");
    let valid = cap(
        &alice,
        &bob,
        &topic,
        Rights::READ | Rights::DELEGATE,
        in_an_hour(),
    );
    let mut forged = valid.as_bytes().to_vec();
    *forged.last_mut().unwrap() ^= 1;
    // Bob widens read into write for carol: a chain no signer should make, built by hand
    // (Capability::delegate refuses it).
    let widening = widen(&valid, &bob, &carol, &topic);
    let not_hex = "zz".to_string();
    for (param, code) in [
        (hex::encode(&forged), "BAD_SIGNATURE"),
        (hex::encode(&widening), "BAD_CAPABILITY"),
        (not_hex, "BAD_INPUT"),
        (hex::encode(vec![0u8; 2_000]), "LIMIT_EXCEEDED"),
    ] {
        let refused = tokio_tungstenite::connect_async(format!("{url}?cap={param}")).await;
        let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = refused else {
            panic!("the upgrade with {code} was not refused");
        };
        assert_eq!(response.status(), 400);
        let body = response.body().clone().unwrap_or_default();
        assert_eq!(String::from_utf8_lossy(&body).trim(), code);
    }
    // The relay is still up and serves a valid one.
    let mut reader = Client::connect_as(&url_with(&url, &[&valid]), &bob).await;
    assert_eq!(reader.subscribe(&topic, 0).await, 0);
    relay.shutdown().await.unwrap();
}

/// `parent` (held by `holder`) extended with a link to `audience` granting read and write on
/// `topic`: signed as PROTOCOL.md 10.1 says, though it widens the parent.
fn widen(parent: &Capability, holder: &Identity, audience: &Identity, topic: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let parent_link = &parent.as_bytes()[2..];
    let mut link = holder.agent_id().as_bytes().to_vec();
    link.extend_from_slice(audience.agent_id().as_bytes());
    link.push(0);
    link.push(topic.len() as u8);
    link.extend_from_slice(topic.as_bytes());
    link.push(0x03);
    link.extend_from_slice(&0u64.to_be_bytes());
    link.extend_from_slice(&parent.expires_ms().to_be_bytes());
    let digest: [u8; 32] = Sha256::digest(parent_link).into();
    let message = [ants_coord::capability::CAPABILITY_DOMAIN, &digest, &link].concat();
    let signature = holder.sign(&message);
    let mut out = vec![1, 2];
    out.extend_from_slice(parent_link);
    out.extend_from_slice(&link);
    out.extend_from_slice(&signature);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_without_rights_never_receives_a_private_entry() {
    let relay = start_relay(temp_dir("access-leak")).await;
    let url = relay.url();
    let (alice, bob) = (identity(1), identity(2));
    let topic = owned(&alice, "secrets");
    let mut owner = Client::connect_as(&url, &alice).await;
    owner.publish_ok(&op(&alice, &topic, 0, b"before")).await;
    // Bob asks for the topic (refused), then for an open topic whose entries mark the end.
    let mut bob_client = Client::connect_as(&url, &bob).await;
    let refused = bob_client
        .request(Body::Subscribe {
            topic: topic.clone(),
            from_seq: 0,
        })
        .await;
    let answer = bob_client.recv().await;
    assert_eq!(
        (answer.request_id, code_of(&answer)),
        (refused, "NOT_AUTHORIZED")
    );
    assert_eq!(bob_client.subscribe("marker", 0).await, 0);
    // Alice writes more to her topic, then the marker: had the relay kept bob's subscription,
    // its entries would reach him before the marker's.
    for counter in 1..=5 {
        owner
            .publish_ok(&op(&alice, &topic, counter, b"private"))
            .await;
    }
    owner.publish_ok(&op(&alice, "marker", 0, b"end")).await;
    let entry = bob_client.next_entry().await;
    assert_eq!(
        entry.op().topic(),
        "marker",
        "bob received {:?}",
        entry.op().topic()
    );
    // A later request on the same connection changes nothing either.
    let again = bob_client
        .request(Body::Subscribe {
            topic: topic.clone(),
            from_seq: 3,
        })
        .await;
    let answer = bob_client.recv().await;
    assert_eq!(
        (answer.request_id, code_of(&answer)),
        (again, "NOT_AUTHORIZED")
    );
    owner.publish_ok(&op(&alice, "marker", 1, b"end")).await;
    assert_eq!(bob_client.next_entry().await.op().topic(), "marker");
    relay.shutdown().await.unwrap();
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_ends_when_the_capability_that_opened_it_expires() {
    let relay = start_relay(temp_dir("access-expiry")).await;
    let url = relay.url();
    let (alice, bob) = (identity(1), identity(2));
    let topic = owned(&alice, "until-noon");
    let mut owner = Client::connect_as(&url, &alice).await;
    owner
        .publish_ok(&op(&alice, &topic, 0, b"while valid"))
        .await;
    // Bob subscribes with a capability that expires soon and gets the entry while it is valid.
    // (On a slow machine the capability may expire first: then again with a longer one. No
    // outcome depends on how long anything takes.)
    let mut lifetime = 2_000;
    let (mut reader, subscription, expires) = loop {
        let expires = now_ms() + lifetime;
        let grant = cap(&alice, &bob, &topic, Rights::READ, expires);
        let mut reader = Client::connect_as(&url_with(&url, &[&grant]), &bob).await;
        let subscription = reader
            .request(Body::Subscribe {
                topic: topic.clone(),
                from_seq: 0,
            })
            .await;
        let delivered = loop {
            match reader.recv().await.body {
                Body::Entry { .. } | Body::Entries { .. } => break true,
                Body::Error { .. } => break false,
                _ => {}
            }
        };
        if delivered {
            break (reader, subscription, expires);
        }
        lifetime *= 2;
        assert!(
            lifetime <= 10 * 60_000,
            "the capability expired before any delivery"
        );
    };
    while now_ms() <= expires {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Expired: the next entry is not delivered; the subscription ends with the reason.
    owner.publish_ok(&op(&alice, &topic, 1, b"after")).await;
    let ended = reader.recv().await;
    assert_eq!(
        (ended.request_id, code_of(&ended)),
        (subscription, "CAPABILITY_EXPIRED"),
        "{ended:?}"
    );
    // Nothing of the topic follows: an open topic's entry is the next thing bob receives.
    owner.publish_ok(&op(&alice, &topic, 2, b"later")).await;
    assert_eq!(reader.subscribe("marker", 0).await, 0);
    owner.publish_ok(&op(&alice, "marker", 0, b"end")).await;
    assert_eq!(reader.next_entry().await.op().topic(), "marker");
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_the_config_closes_needs_its_guard_or_a_capability_rooted_at_it() {
    use ants_coord::relay::policy::{Openness, TopicAccessConfig};
    let (operator, bob, mallory) = (identity(1), identity(2), identity(3));
    let relay = start_relay_with(temp_dir("access-policy"), |config| {
        config.access = vec![TopicAccessConfig {
            prefix: "ops/".into(),
            guard: operator.agent_id().to_string(),
            read: Openness::Closed,
            write: Openness::Closed,
        }];
    })
    .await;
    let url = relay.url();
    let topic = "ops/alerts";
    let mut guard = Client::connect_as(&url, &operator).await;
    guard.publish_ok(&op(&operator, topic, 0, b"first")).await;
    guard.publish_ok(&op(&operator, topic, 1, b"second")).await;
    assert_eq!(read_codes(&mut guard, topic).await, vec!["OK"; 4]);

    // No hello, no capability, a capability of another key, an expired one: refused.
    let mut anonymous = Client::connect(&url).await;
    assert_eq!(
        read_codes(&mut anonymous, topic).await,
        vec!["NOT_AUTHENTICATED"; 4]
    );
    let both = Rights::READ | Rights::WRITE;
    let foreign = cap(&mallory, &bob, topic, both, in_an_hour());
    let expired = cap(&operator, &bob, topic, both, 1_000);
    for (caps, code) in [
        (vec![], "NOT_AUTHORIZED"),
        (vec![&foreign], "NOT_AUTHORIZED"),
        (vec![&expired], "CAPABILITY_EXPIRED"),
    ] {
        let mut refused = Client::connect_as(&url_with(&url, &caps), &bob).await;
        assert_eq!(read_codes(&mut refused, topic).await, vec![code; 4]);
        let answer = refused.publish(&op(&bob, topic, 0, b"let me in")).await;
        assert_eq!(code_of(&answer), code);
    }

    // The guard's capability over the prefix: bob reads and writes, and a subscriber sees it.
    let member_cap = Capability::grant(
        &operator,
        bob.agent_id(),
        Scope::Prefix("ops/".into()),
        both,
        in_an_hour(),
    )
    .unwrap();
    let mut member = Client::connect_as(&url_with(&url, &[&member_cap]), &bob).await;
    assert_eq!(read_codes(&mut member, topic).await, vec!["OK"; 4]);
    // It writes on a connection that follows nothing (where a subscription is live, the entry
    // and the receipt of one op may come in either order), and its subscription sees it.
    let mut writer = Client::connect_as(&url_with(&url, &[&member_cap]), &bob).await;
    assert_eq!(writer.publish_ok(&op(&bob, topic, 0, b"ack")).await, 2);
    assert_eq!(member.next_entry().await.seq(), 2);

    // Every other topic is as open as before.
    let mut stranger = Client::connect_as(&url, &mallory).await;
    assert_eq!(
        stranger.publish_ok(&op(&mallory, "chat", 0, b"hi")).await,
        0
    );
    let mut reader = Client::connect(&url).await;
    assert_eq!(reader.subscribe("chat", 0).await, 1);
    relay.shutdown().await.unwrap();
}
