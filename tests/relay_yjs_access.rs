//! Private Yjs rooms (PROTOCOL.md 8.7.1) over real sockets with raw frames: a room named by an
//! owned topic, or bridged to one, is refused without a room proof and a capability (with the
//! y-protocols permission-denied message, then close 4401 or 4403 and the code), joined and synced with
//! them; a reader's document updates are dropped; a capability that expires or is revoked while
//! connected, or a room proof that expires, closes the connection with its code; a room whose
//! owned topic its owner made public (10.10) is read by anyone, written as before, and closed
//! again to them when the owner makes it private. (A stock provider:
//! tests/js/yjs-access.test.mjs.)
#![cfg(all(feature = "relay", not(target_arch = "wasm32")))]

mod common;

use ants_coord::capability::authority::{Presentation, Revocation};
use ants_coord::capability::{ReadRule, Rights, RoomProof, Scope, TopicPolicy};
use ants_coord::doc::{sign_update, Doc, ProtocolMessage, SignedDoc};
use ants_coord::relay::yjs::cluster_private_room_topic;
use ants_coord::wire::Body;
use ants_coord::{Capability, Identity, OpDraft, SignedOp};
use common::capabilities::{cap_until, in_an_hour, owned};
use common::relay::{identity, on_nats, start_relay, start_relay_with, temp_dir, Client};
use common::yjs::{now_ms, YClient, TEXT};

/// `?cap=…&proof=…` for `holder` holding `caps` in the room guarded by `topic`.
fn params(holder: &Identity, topic: &str, caps: &[&Capability]) -> String {
    let caps: Vec<String> = caps.iter().map(|c| hex::encode(c.as_bytes())).collect();
    let proof = RoomProof::sign(holder, topic, in_an_hour());
    let proof = hex::encode(proof.encode());
    if caps.is_empty() {
        format!("proof={proof}")
    } else {
        // Several in one parameter, comma-separated, as a `params` object carries them.
        format!("cap={}&proof={proof}", caps.join("%2C"))
    }
}

fn cap(issuer: &Identity, audience: &Identity, topic: &str, rights: Rights) -> Capability {
    cap_until(issuer, audience, topic, rights, in_an_hour())
}

fn signed(author: &Identity, mut draft: OpDraft, counter: u64) -> SignedOp {
    draft.counter = counter;
    draft.time_ms = 1_700_000_000_000 + counter;
    SignedOp::sign(author, draft).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_room_is_refused_without_credentials_and_shared_with_them() {
    let relay = start_relay(temp_dir("yjs-private")).await;
    let base = relay.yjs_url();
    let (alice, bob, carol) = (identity(1), identity(2), identity(3));
    // The room's name is the owned topic that guards it.
    let room = owned(&alice, "notes");
    let bob_rw = cap(&alice, &bob, &room, Rights::READ | Rights::WRITE);

    let refused = |query: String, code: &'static str| {
        let url = format!("{room}?{query}");
        let base = base.clone();
        async move {
            YClient::connect(&base, &url)
                .await
                .expect_denied(code)
                .await;
        }
    };
    // No proof: nobody is authenticated. A proof but no capability. A capability but no proof.
    refused(String::new(), "NOT_AUTHENTICATED").await;
    refused(params(&carol, &room, &[]), "NOT_AUTHORIZED").await;
    refused(
        format!("cap={}", hex::encode(bob_rw.as_bytes())),
        "NOT_AUTHENTICATED",
    )
    .await;
    // Bob's capability with Carol's proof (a capability is no secret: the log shows it).
    refused(params(&carol, &room, &[&bob_rw]), "NOT_AUTHORIZED").await;
    // Expired; forged; a proof signed for another topic; a capability of someone else's topic.
    let expired = cap_until(&alice, &bob, &room, Rights::READ, now_ms() - 1);
    refused(params(&bob, &room, &[&expired]), "CAPABILITY_EXPIRED").await;
    let mut forged = bob_rw.as_bytes().to_vec();
    *forged.last_mut().unwrap() ^= 1;
    let forged = format!("cap={}&{}", hex::encode(forged), params(&bob, &room, &[]));
    refused(forged, "BAD_SIGNATURE").await;
    let elsewhere = owned(&alice, "other");
    let proof = hex::encode(RoomProof::sign(&bob, &elsewhere, in_an_hour()).encode());
    let wrong_topic = format!("cap={}&proof={proof}", hex::encode(bob_rw.as_bytes()));
    refused(wrong_topic, "BAD_SIGNATURE").await;
    let carols = cap(&carol, &bob, &owned(&carol, "notes"), Rights::READ);
    refused(params(&bob, &room, &[&carols]), "NOT_AUTHORIZED").await;
    // A name with `/` is a room name only after an owned topic's id.
    YClient::connect(&base, "notes/x?proof=00")
        .await
        .expect_closed_bad_input()
        .await;

    // The owner needs only its proof; Bob, holding a capability among others, joins and syncs.
    let mut owner = YClient::joined(&base, &format!("{room}?{}", params(&alice, &room, &[]))).await;
    owner.insert(0, "hello").await;
    let query = params(&bob, &room, &[&carols, &bob_rw]);
    let mut writer = YClient::joined(&base, &format!("{room}?{query}")).await;
    writer.until_text("hello").await;
    writer.insert(5, " bob").await;
    owner.until_text("hello bob").await;
    if on_nats() {
        // On a cluster the room's record is a topic of the log that the relay owns: no reader
        // of the log, not even the room's owner, may follow it or ask for its proofs.
        let record = cluster_private_room_topic(&relay.relay_id(), &room);
        let mut stranger = Client::connect_as(&relay.url(), &carol).await;
        let mut owner_on_ws = Client::connect_as(&relay.url(), &alice).await;
        for client in [&mut stranger, &mut owner_on_ws] {
            let id = client
                .request(Body::Subscribe {
                    topic: record.clone(),
                    from_seq: 0,
                })
                .await;
            let answer = client.recv().await;
            assert_eq!(answer.request_id, id);
            match answer.body {
                Body::Error { code, .. } => assert_eq!(code, "NOT_AUTHORIZED"),
                other => panic!("the record topic was served: {other:?}"),
            }
        }
    }
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_syncs_but_its_updates_are_dropped() {
    let relay = start_relay(temp_dir("yjs-reader")).await;
    let base = relay.yjs_url();
    let (alice, bob) = (identity(1), identity(2));
    let room = owned(&alice, "notes");
    let mut owner = YClient::joined(&base, &format!("{room}?{}", params(&alice, &room, &[]))).await;
    owner.insert(0, "hello").await;
    // Until the end of time: the relay's wake-up for its expiry must not overflow its clock.
    let read = cap_until(&alice, &bob, &room, Rights::READ, u64::MAX);
    let mut reader =
        YClient::joined(&base, &format!("{room}?{}", params(&bob, &room, &[&read]))).await;
    reader.until_text("hello").await;

    // The reader's edit is answered with permission-denied, once, and the connection stays.
    reader.insert(0, "bob: ").await;
    loop {
        let bytes = reader.next().await.unwrap();
        if let ProtocolMessage::PermissionDenied(reason) = ProtocolMessage::decode(&bytes).unwrap()
        {
            assert!(reason.starts_with("NOT_AUTHORIZED"), "{reason}");
            break;
        }
    }
    reader.insert(0, "again ").await;
    // It still hears the owner, and the room never took its edits.
    owner.insert(5, "!").await;
    while !reader.text().ends_with("hello!") {
        reader.step().await.unwrap();
    }
    let fresh = YClient::joined(&base, &format!("{room}?{}", params(&alice, &room, &[]))).await;
    assert_eq!(fresh.text(), "hello!");
    assert_eq!(owner.text(), "hello!");
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_revocation_close_a_live_connection_with_their_code() {
    let relay = start_relay(temp_dir("yjs-live")).await;
    let base = relay.yjs_url();
    let (alice, bob, carol) = (identity(1), identity(2), identity(3));
    let room = owned(&alice, "notes");

    // A capability that expires while connected: permission-denied, close CAPABILITY_EXPIRED.
    // (On a slow machine it may expire before the join completes: then again with a longer
    // one. No outcome depends on how long anything takes.)
    let mut lifetime = 1_500;
    let mut bob_client = loop {
        let soon = cap_until(&alice, &bob, &room, Rights::READ, now_ms() + lifetime);
        let query = params(&bob, &room, &[&soon]);
        if let Ok(joined) = YClient::try_joined(&base, &format!("{room}?{query}")).await {
            break joined;
        }
        lifetime *= 2;
        assert!(
            lifetime <= 10 * 60_000,
            "the capability expired before any join"
        );
    };
    bob_client.expect_denied("CAPABILITY_EXPIRED").await;

    // A capability revoked in the room's topic while connected: CAPABILITY_REVOKED, at once.
    let carols = cap(&alice, &carol, &room, Rights::READ | Rights::WRITE);
    let query = params(&carol, &room, &[&carols]);
    let mut carol_client = YClient::joined(&base, &format!("{room}?{query}")).await;
    let mut owner = Client::connect_as(&relay.url(), &alice).await;
    let revocation = Revocation::new(carols.clone(), 0).unwrap();
    owner
        .publish_ok(&signed(&alice, revocation.draft(&room), 1))
        .await;
    carol_client.expect_denied("CAPABILITY_REVOKED").await;
    // And a fresh connection with it is refused.
    YClient::connect(&base, &format!("{room}?{query}"))
        .await
        .expect_denied("CAPABILITY_REVOKED")
        .await;
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_bridged_to_an_owned_topic_is_guarded_by_it() {
    let relay = start_relay_with(temp_dir("yjs-bridge-private"), |config| {
        config.yjs_bridge = vec![String::new()];
    })
    .await;
    let base = relay.yjs_url();
    let (alice, bob, carol) = (identity(1), identity(2), identity(3));
    let topic = owned(&alice, "doc");
    let mut signer = Client::connect_as(&relay.url(), &alice).await;
    let alice_doc = Doc::new();
    alice_doc.insert_text(TEXT, 0, "signed").unwrap();
    let update = alice_doc.encode_update(None).unwrap();
    signer
        .publish_ok(&sign_update(&alice, &topic, 1, 1_700_000_000_000, &update).unwrap())
        .await;

    // Without a capability of the owner: refused; with read: synced.
    let room = |query: String| format!("any?topic={topic}&{query}");
    YClient::connect(&base, &room(params(&carol, &topic, &[])))
        .await
        .expect_denied("NOT_AUTHORIZED")
        .await;
    let bob_rw = cap(&alice, &bob, &topic, Rights::READ | Rights::WRITE);
    let mut bob_client = YClient::joined(&base, &room(params(&bob, &topic, &[&bob_rw]))).await;
    bob_client.until_text("signed").await;

    // The relay signs what the room writes: it counts only once the owner granted the relay's
    // key write and presented it in the topic (10.8), like any other writer. Before, an edit
    // ends the room with 4403 (which a stock provider does not retry: no loop of refused
    // edits), and the topic is unchanged.
    bob_client.insert(6, " (too early)").await;
    loop {
        match bob_client.next().await {
            Ok(_) => continue,
            Err(Some((4403, reason))) => {
                assert!(reason.starts_with("NOT_AUTHORIZED"), "{reason}");
                break;
            }
            Err(other) => panic!("expected close 4403 NOT_AUTHORIZED, got {other:?}"),
        }
    }
    let mut bob_client = YClient::joined(&base, &room(params(&bob, &topic, &[&bob_rw]))).await;
    bob_client.until_text("signed").await;
    let relay_cap = Capability::grant(
        &alice,
        relay.relay_id(),
        Scope::Topic(topic.clone()),
        Rights::WRITE,
        in_an_hour(),
    )
    .unwrap();
    let present = Presentation::new(relay_cap).draft(&topic);
    signer.publish_ok(&signed(&alice, present, 2)).await;
    bob_client.insert(6, " + bob").await;
    let mut reader = Client::connect_as(&relay.url(), &alice).await;
    reader.subscribe(&topic, 0).await;
    let mut doc = SignedDoc::new(&topic, None).unwrap();
    while doc.doc().text(TEXT).unwrap() != "signed + bob" {
        let entry = reader.next_entry().await;
        if entry.op().kind() == "doc.update" {
            assert!(doc.apply_entry(&entry).unwrap());
        }
    }
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_the_config_closes_admits_only_its_guard_and_holders_of_its_capabilities() {
    use ants_coord::relay::policy::{Openness, TopicAccessConfig};
    let (operator, bob, carol) = (identity(1), identity(2), identity(3));
    let relay = start_relay_with(temp_dir("yjs-policy"), |config| {
        config.access = vec![TopicAccessConfig {
            prefix: "ops-".into(),
            guard: operator.agent_id().to_string(),
            read: Openness::Closed,
            write: Openness::Closed,
        }];
    })
    .await;
    let base = relay.yjs_url();
    let room = "ops-runbook";
    YClient::connect(&base, room)
        .await
        .expect_denied("NOT_AUTHENTICATED")
        .await;
    let query = params(&carol, room, &[]);
    YClient::connect(&base, &format!("{room}?{query}"))
        .await
        .expect_denied("NOT_AUTHORIZED")
        .await;
    let mut guard =
        YClient::joined(&base, &format!("{room}?{}", params(&operator, room, &[]))).await;
    guard.insert(0, "step one").await;
    let bob_rw = Capability::grant(
        &operator,
        bob.agent_id(),
        Scope::Prefix("ops-".into()),
        Rights::READ | Rights::WRITE,
        in_an_hour(),
    )
    .unwrap();
    let query = params(&bob, room, &[&bob_rw]);
    let mut member = YClient::joined(&base, &format!("{room}?{query}")).await;
    member.until_text("step one").await;
    member.insert(8, ", two").await;
    guard.until_text("step one, two").await;
    // A room no policy covers stays open.
    YClient::joined(&base, "lobby").await;
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_proof_that_expires_while_connected_closes_the_connection() {
    let relay = start_relay(temp_dir("yjs-proof-expiry")).await;
    let base = relay.yjs_url();
    let (alice, bob) = (identity(1), identity(2));
    let room = owned(&alice, "notes");
    let read = cap(&alice, &bob, &room, Rights::READ);
    // The proof holds until its expiry, not for the connection's life: then permission-denied
    // and close 4401 NOT_AUTHENTICATED, as a connection without one gets. (On a slow machine
    // it may expire before the join completes: then again with a longer one. No outcome
    // depends on how long anything takes.)
    for (holder, caps) in [(&alice, vec![]), (&bob, vec![&read])] {
        let mut lifetime = 1_500;
        let mut client = loop {
            let proof = RoomProof::sign(holder, &room, now_ms() + lifetime);
            let mut query = format!("proof={}", hex::encode(proof.encode()));
            for cap in &caps {
                query.push_str(&format!("&cap={}", hex::encode(cap.as_bytes())));
            }
            if let Ok(joined) = YClient::try_joined(&base, &format!("{room}?{query}")).await {
                break joined;
            }
            lifetime *= 2;
            assert!(lifetime <= 10 * 60_000, "the proof expired before any join");
        };
        client.expect_denied("NOT_AUTHENTICATED").await;
    }
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owned_topic_made_public_opens_its_rooms_to_readers_until_it_is_private_again() {
    let relay = start_relay(temp_dir("yjs-public")).await;
    let base = relay.yjs_url();
    let (alice, bob) = (identity(1), identity(2));
    let room = owned(&alice, "notes");
    let mut owner = YClient::joined(&base, &format!("{room}?{}", params(&alice, &room, &[]))).await;
    owner.insert(0, "hello").await;
    YClient::connect(&base, &room)
        .await
        .expect_denied("NOT_AUTHENTICATED")
        .await;

    // The owner makes the room's topic public: anyone joins and reads, without a proof.
    let mut signer = Client::connect_as(&relay.url(), &alice).await;
    let public = TopicPolicy {
        read: ReadRule::Public,
    };
    signer
        .publish_ok(&signed(&alice, public.draft(&room), 0))
        .await;
    let mut anonymous = YClient::joined(&base, &room).await;
    anonymous.until_text("hello").await;
    let mut bob_client =
        YClient::joined(&base, &format!("{room}?{}", params(&bob, &room, &[]))).await;
    bob_client.until_text("hello").await;
    // Reading only: their edits are dropped, once told, and they keep hearing the owner.
    anonymous.insert(0, "anyone: ").await;
    loop {
        let bytes = anonymous.next().await.unwrap();
        if let ProtocolMessage::PermissionDenied(reason) = ProtocolMessage::decode(&bytes).unwrap()
        {
            assert!(reason.starts_with("NOT_AUTHORIZED"), "{reason}");
            break;
        }
    }
    owner.insert(5, "!").await;
    while !anonymous.text().ends_with("hello!") {
        anonymous.step().await.unwrap();
    }
    let fresh = YClient::joined(&base, &room).await;
    assert_eq!(fresh.text(), "hello!");

    // Private again: each reader without a read capability is closed at once, with the code
    // a fresh connection of it would get.
    let private = TopicPolicy {
        read: ReadRule::Private,
    };
    signer
        .publish_ok(&signed(&alice, private.draft(&room), 1))
        .await;
    anonymous.expect_denied("NOT_AUTHENTICATED").await;
    bob_client.expect_denied("NOT_AUTHORIZED").await;
    // The owner's own connection stays, and writes.
    owner.insert(6, " still mine").await;
    let again = params(&alice, &room, &[]);
    let mut check = YClient::joined(&base, &format!("{room}?{again}")).await;
    check.until_text("hello! still mine").await;
    YClient::connect(&base, &room)
        .await
        .expect_denied("NOT_AUTHENTICATED")
        .await;
    relay.shutdown().await.unwrap();
}
