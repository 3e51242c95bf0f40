//! The relay's core path over real sockets: publish → verify → sequence → durable → receipt →
//! fan-out, replay seams, idempotent retries, ordering, restart, the relay key a log keeps.
#![cfg(all(feature = "relay", not(target_arch = "wasm32")))]

mod common;

use std::collections::HashMap;

use common::relay::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_then_subscribe_replays_then_goes_live() {
    let relay = start_relay(temp_dir("basic")).await;
    let alice = identity(1);
    let mut publisher = Client::connect_as(&relay.url(), &alice).await;
    for counter in 0..3 {
        let seq = publisher
            .publish_ok(&op(&alice, "room", counter, b"x"))
            .await;
        assert_eq!(seq, counter);
    }
    let mut reader = Client::connect(&relay.url()).await;
    assert_eq!(reader.subscribe("room", 1).await, 3);
    for seq in 1..3 {
        let entry = reader.next_entry().await;
        assert_eq!(entry.seq(), seq);
        assert_eq!(entry.op().counter(), seq);
    }
    // Live from here on.
    let seq = publisher.publish_ok(&op(&alice, "room", 3, b"y")).await;
    let entry = reader.next_entry().await;
    assert_eq!((entry.seq(), entry.op().body()), (seq, &b"y"[..]));
    // The two replayed entries were owed at once: they came in one `entries` frame; the live
    // one alone, in an `entry` frame.
    assert_eq!(reader.entries_frames, 1);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_live_seam_has_no_gap_and_no_duplicate() {
    let relay = start_relay(temp_dir("seam")).await;
    let url = relay.url();
    let alice = identity(1);
    // Publish continuously while subscribers join at different points.
    let writer = tokio::spawn({
        let url = url.clone();
        async move {
            let alice = identity(1);
            let mut client = Client::connect_as(&url, &alice).await;
            for counter in 0..300 {
                client.publish_ok(&op(&alice, "seam", counter, b"s")).await;
            }
        }
    });
    let mut readers = Vec::new();
    for from in [0u64, 5, 50] {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let url = url.clone();
        readers.push(tokio::spawn(async move {
            let mut client = Client::connect(&url).await;
            client.subscribe("seam", from).await;
            let mut expected = from;
            while expected < 300 {
                let entry = client.next_entry().await;
                assert_eq!(entry.seq(), expected, "gap or duplicate at the seam");
                expected += 1;
            }
        }));
    }
    writer.await.unwrap();
    for reader in readers {
        reader.await.unwrap();
    }
    let _ = alice;
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_gets_the_original_receipt_and_no_second_entry() {
    use ants_coord::log::SignedReceipt;
    use ants_coord::wire::Body;
    let relay = start_relay(temp_dir("retry")).await;
    let alice = identity(1);
    let mut client = Client::connect_as(&relay.url(), &alice).await;
    let first = op(&alice, "t", 10, b"a");
    let receipt = client.publish(&first).await;
    client.publish_ok(&op(&alice, "t", 11, b"b")).await;
    // The same op again, even after later ones: a receipt of the same entry, the same statement
    // (signed alone now, where the first was signed in its batch).
    let statement = |body: Body| match body {
        Body::Receipt { seq, receipt, .. } => {
            let signed = SignedReceipt::decode(&receipt, &relay.relay_id()).unwrap();
            (seq, signed.receipt().clone())
        }
        other => panic!("no receipt: {other:?}"),
    };
    assert_eq!(
        statement(client.publish(&first).await.body),
        statement(receipt.body)
    );
    // The same counter with another op is refused; a skipped counter below the last is stale.
    let reused = client.publish(&op(&alice, "t", 10, b"other")).await;
    assert_eq!(code_of(&reused), "COUNTER_REUSED");
    let stale = client.publish(&op(&alice, "t", 5, b"late")).await;
    assert_eq!(code_of(&stale), "COUNTER_STALE");
    // Gaps going forward are allowed.
    assert_eq!(client.publish_ok(&op(&alice, "t", 20, b"c")).await, 2);
    let mut reader = Client::connect(&relay.url()).await;
    assert_eq!(reader.subscribe("t", 0).await, 3);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_get_one_gapless_order_that_keeps_each_authors_order() {
    let relay = start_relay(temp_dir("order")).await;
    let url = relay.url();
    let mut reader = Client::connect(&url).await;
    reader.subscribe("busy", 0).await;
    let mut tasks = Vec::new();
    for author in 1..=8u8 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let me = identity(author);
            let mut client = Client::connect_as(&url, &me).await;
            let mut seqs = Vec::new();
            for counter in 0..40 {
                seqs.push(
                    client
                        .publish_ok(&op(&me, "busy", counter, &[author]))
                        .await,
                );
            }
            seqs
        }));
    }
    let mut receipts = HashMap::new();
    for (i, task) in tasks.into_iter().enumerate() {
        receipts.insert(i as u8 + 1, task.await.unwrap());
    }
    let mut last_counter: HashMap<u8, u64> = HashMap::new();
    for seq in 0..320 {
        let entry = reader.next_entry().await;
        assert_eq!(entry.seq(), seq);
        let author = entry.op().body()[0];
        let counter = entry.op().counter();
        if let Some(last) = last_counter.insert(author, counter) {
            assert!(counter > last, "author {author} reordered");
        }
        assert_eq!(receipts[&author][counter as usize], seq);
    }
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_restores_every_topic_exactly() {
    let data = temp_dir("restart");
    let alice = identity(1);
    let bob = identity(2);
    let mut before = Vec::new();
    let first_op = op(&alice, "a", 0, b"first");
    let relay = start_relay(data.clone()).await;
    let relay_id = relay.relay_id();
    {
        let mut a = Client::connect_as(&relay.url(), &alice).await;
        let mut b = Client::connect_as(&relay.url(), &bob).await;
        a.publish_ok(&first_op).await;
        for counter in 1..5 {
            a.publish_ok(&op(&alice, "a", counter, b"x")).await;
            b.publish_ok(&op(&bob, "b", counter, b"y")).await;
        }
        let mut reader = Client::connect(&relay.url()).await;
        reader.subscribe("a", 0).await;
        for _ in 0..5 {
            before.push(reader.next_entry().await);
        }
    }
    relay.shutdown().await.unwrap();

    let relay = start_relay(data).await;
    assert_eq!(relay.relay_id(), relay_id, "the relay key persists");
    let mut reader = Client::connect(&relay.url()).await;
    assert_eq!(reader.subscribe("a", 0).await, 5);
    for expected in &before {
        assert_eq!(&reader.next_entry().await, expected);
    }
    assert_eq!(reader.subscribe("b", 0).await, 4);
    let mut a = Client::connect_as(&relay.url(), &alice).await;
    assert_eq!(a.publish_ok(&first_op).await, 0, "retry after restart");
    assert_eq!(a.publish_ok(&op(&alice, "a", 5, b"z")).await, 5);
    let stale = a.publish(&op(&alice, "a", 4, b"again")).await;
    assert_eq!(code_of(&stale), "COUNTER_REUSED");
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_keeps_the_relay_key_its_log_is_signed_with() {
    let data = temp_dir("other-key");
    let relay = start_relay(data.clone()).await;
    let relay_id = relay.relay_id();
    let alice = identity(1);
    let mut a = Client::connect_as(&relay.url(), &alice).await;
    a.publish_ok(&op(&alice, "t", 0, b"under the first key"))
        .await;
    relay.shutdown().await.unwrap();

    // Another key file over the same log is refused before anything is served.
    let other_key = data.join("other.key");
    std::fs::write(&other_key, format!("{}\n", "07".repeat(32))).unwrap();
    let mut config = test_config(data.clone());
    config.key = Some(other_key);
    let Err(error) = ants_coord::relay::start(config).await else {
        panic!("a relay started over another key's log");
    };
    assert_eq!(error.code(), "BAD_INPUT");
    let message = error.to_string();
    assert!(message.contains(&relay_id.to_string()), "{message}");
    assert!(
        message.contains(&identity(7).agent_id().to_string()),
        "{message}"
    );

    // A missing key file is not replaced by a new key: refused, and nothing is created.
    let lost_key = data.join("lost.key");
    let mut config = test_config(data.clone());
    config.key = Some(lost_key.clone());
    let Err(error) = ants_coord::relay::start(config).await else {
        panic!("a relay made a new key for an existing log");
    };
    assert_eq!(error.code(), "BAD_INPUT");
    assert!(error.to_string().contains(&relay_id.to_string()), "{error}");
    assert!(!lost_key.exists(), "no key file is left behind");

    // The log's own key still opens it, with its entry in place.
    let relay = start_relay(data).await;
    assert_eq!(relay.relay_id(), relay_id);
    let mut reader = Client::connect(&relay.url()).await;
    assert_eq!(reader.subscribe("t", 0).await, 1);
    assert_eq!(
        reader.next_entry().await.op().body(),
        b"under the first key"
    );
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_answer_over_http() {
    let relay = start_relay(temp_dir("http")).await;
    let alice = identity(1);
    let mut client = Client::connect_as(&relay.url(), &alice).await;
    client.publish_ok(&op(&alice, "m", 0, b"")).await;
    let bad = client.publish(&op(&alice, "m", 0, b"other")).await;
    assert_eq!(code_of(&bad), "COUNTER_REUSED");
    let metrics = http_get(relay.local_addr(), "/metrics").await;
    assert!(
        metrics.contains("ants_relay_ops_accepted_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ants_relay_refused_total{code=\"COUNTER_REUSED\"} 1"));
    assert!(metrics.contains("ants_relay_connections 1"));
    // The process's resident memory, to set against the budget (the test runs the relay
    // in-process: at least a few MiB).
    let resident: u64 = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix("process_resident_memory_bytes ")?
                .parse()
                .ok()
        })
        .expect("process_resident_memory_bytes");
    assert!(resident > 1024 * 1024, "{resident}");
    assert!(http_get(relay.local_addr(), "/healthz")
        .await
        .ends_with("ok\n"));
    client.close().await;
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_wal_stops_acknowledgements_and_fails_the_health_check() {
    let data = temp_dir("lost-wal");
    let relay = start_relay(data.clone()).await;
    let alice = identity(1);
    let mut client = Client::connect_as(&relay.url(), &alice).await;
    client.publish_ok(&op(&alice, "w", 0, b"durable")).await;
    assert!(http_get(relay.local_addr(), "/metrics")
        .await
        .contains("ants_relay_write_path_failed 0"));

    // The WAL file vanishes under the running relay (a disk or an operator gone wrong): the
    // next commit cannot be made durable, so it and every later publish are refused.
    let mut wal = data
        .join(ants_coord::relay::store::DB_FILE)
        .into_os_string();
    wal.push("-wal");
    std::fs::remove_file(&wal).unwrap();
    for counter in 1..3 {
        let refused = client.publish(&op(&alice, "w", counter, b"lost")).await;
        assert_eq!(code_of(&refused), "UNAVAILABLE");
    }
    let health = http_get_any(relay.local_addr(), "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
    assert!(health.contains("write path failed"), "{health}");
    assert!(http_get(relay.local_addr(), "/metrics")
        .await
        .contains("ants_relay_write_path_failed 1"));
    client.close().await;
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_checkpoints_and_proofs_verify_against_each_other() {
    use ants_coord::log::{SignedCheckpoint, SignedReceipt};
    use ants_coord::wire::Body;

    let data = temp_dir("proofs");
    let relay = start_relay(data.clone()).await;
    let relay_id = relay.relay_id();
    let alice = identity(1);
    let mut client = Client::connect_as(&relay.url(), &alice).await;
    let mut receipts = Vec::new();
    for counter in 0..13 {
        let op = op(&alice, "p", counter, &[counter as u8]);
        let Body::Receipt { seq, receipt, .. } = client.publish(&op).await.body else {
            panic!("no receipt");
        };
        let receipt = SignedReceipt::decode(&receipt, &relay_id).unwrap();
        assert_eq!(receipt.receipt().seq, seq);
        assert_eq!(receipt.receipt().op_id, op.id());
        receipts.push(receipt);
    }
    // The original receipt's statement again for a retry.
    let retry = client.publish(&op(&alice, "p", 4, &[4])).await;
    let Body::Receipt { receipt, .. } = retry.body else {
        panic!("no receipt");
    };
    let retried = SignedReceipt::decode(&receipt, &relay_id).unwrap();
    assert_eq!(retried.receipt(), receipts[4].receipt());

    let mut reader = Client::connect(&relay.url()).await;
    reader.subscribe("p", 0).await;
    let mut entries = Vec::new();
    for _ in 0..13 {
        entries.push(reader.next_entry().await);
    }
    client
        .request(ants_coord::wire::Body::GetCheckpoint { topic: "p".into() })
        .await;
    let Body::Checkpoint { checkpoint } = client.recv().await.body else {
        panic!("no checkpoint");
    };
    let checkpoint = SignedCheckpoint::decode(&checkpoint, &relay_id).unwrap();
    let head = checkpoint.checkpoint().clone();
    assert_eq!(head.tree_size, 13);

    for (receipt, entry) in receipts.iter().zip(&entries) {
        let r = receipt.receipt();
        assert_eq!(r.relay_time_ms, entry.relay_time_ms());
        assert_proofs(&mut client, r, entry, head.tree_size, &head.root).await;
    }
    // Beyond the log: a coded refusal.
    client
        .request(ants_coord::wire::Body::GetInclusionProof {
            topic: "p".into(),
            seq: 0,
            tree_size: 99,
        })
        .await;
    assert_eq!(code_of(&client.recv().await), "BAD_INPUT");
    relay.shutdown().await.unwrap();

    // After a restart the same checkpoint root comes back.
    let relay = start_relay(data).await;
    let mut client = Client::connect(&relay.url()).await;
    client
        .request(ants_coord::wire::Body::GetCheckpoint { topic: "p".into() })
        .await;
    let Body::Checkpoint { checkpoint } = client.recv().await.body else {
        panic!("no checkpoint");
    };
    let again = SignedCheckpoint::decode(&checkpoint, &relay_id).unwrap();
    assert_eq!(again.checkpoint().root, head.root);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_op_waits_for_its_deps() {
    use ants_coord::OpDraft;
    let relay = start_relay(temp_dir("deps")).await;
    let alice = identity(1);
    let mut client = Client::connect_as(&relay.url(), &alice).await;
    let first = op(&alice, "d", 0, b"first");
    let dependent = ants_coord::SignedOp::sign(
        &alice,
        OpDraft {
            topic: "d".into(),
            kind: "post".into(),
            counter: 1,
            deps: vec![first.id()],
            ..OpDraft::default()
        },
    )
    .unwrap();
    assert_eq!(code_of(&client.publish(&dependent).await), "DEPS_MISSING");
    assert_eq!(client.publish_ok(&first).await, 0);
    assert_eq!(client.publish_ok(&dependent).await, 1);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_losing_claimant_gets_its_compensation_pushed_at_once() {
    use ants_coord::replica::ReplicaOp;
    use ants_coord::wire::Body;
    use ants_coord::SignedOp;

    let relay = start_relay(temp_dir("compensation")).await;
    let alice = identity(1);
    let bob = identity(2);
    let claim = |who: &ants_coord::Identity| {
        let mut draft = ReplicaOp::Claim {
            resource: "room-1".into(),
            lease_ms: 60_000,
            stake: 0,
            fence: None,
        }
        .draft("slots")
        .unwrap();
        draft.counter = 0;
        SignedOp::sign(who, draft).unwrap()
    };
    let mut a = Client::connect_as(&relay.url(), &alice).await;
    let mut b = Client::connect_as(&relay.url(), &bob).await;
    assert_eq!(a.publish_ok(&claim(&alice)).await, 0);
    // Bob's receipt and his compensation arrive together: no polling, one round trip.
    assert_eq!(b.publish_ok(&claim(&bob)).await, 1);
    let pushed = b.recv().await;
    let Body::Event { topic, seq, event } = pushed.body else {
        panic!("expected an event, got {pushed:?}");
    };
    assert_eq!((topic.as_str(), seq), ("slots", 1));
    let event: serde_json::Value = serde_json::from_slice(&event).unwrap();
    let text = event.to_string();
    assert!(text.contains(&bob.agent_id().to_string()), "{text}");
    assert!(text.contains(&alice.agent_id().to_string()), "{text}");
    assert!(text.to_lowercase().contains("compensation"), "{text}");
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_relay_restores_its_replicas_to_the_full_replay() {
    use ants_coord::{Replica, ReplicaConfig};
    let data = temp_dir("snapshots");
    let every = |c: &mut ants_coord::relay::Config| c.limits.replica_snapshot_every = 10;
    let alice = identity(1);
    let relay = start_relay_with(data.clone(), every).await;
    let mut a = Client::connect_as(&relay.url(), &alice).await;
    for counter in 0..25 {
        a.publish_ok(&op(&alice, "snap", counter, b"p")).await;
    }
    let live = relay.replica_state_hash("snap").await.unwrap().unwrap();
    assert_eq!(relay.replica_state_hash("none").await.unwrap(), None);
    a.close().await;
    relay.shutdown().await.unwrap();

    // Restored from the snapshot stored at shutdown.
    let relay = start_relay_with(data.clone(), every).await;
    assert_eq!(relay.replica_state_hash("snap").await.unwrap(), Some(live));
    let mut a = Client::connect_as(&relay.url(), &alice).await;
    for counter in 25..38 {
        a.publish_ok(&op(&alice, "snap", counter, b"q")).await;
    }
    let hash = relay.replica_state_hash("snap").await.unwrap().unwrap();
    // The same state as a replica fed every entry from the start.
    let mut reader = Client::connect(&relay.url()).await;
    assert_eq!(reader.subscribe("snap", 0).await, 38);
    let mut full = Replica::new("snap", ReplicaConfig::default()).unwrap();
    for _ in 0..38 {
        full.apply(&reader.next_entry().await).unwrap();
    }
    assert_eq!(full.state_hash(), hash);
    a.close().await;
    relay.shutdown().await.unwrap();
    let relay = start_relay_with(data, every).await;
    assert_eq!(relay.replica_state_hash("snap").await.unwrap(), Some(hash));
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_with_level_keyed_hashes_is_migrated_and_its_proofs_verify() {
    use ants_coord::log::SignedReceipt;
    use ants_coord::wire::Body;

    let data = temp_dir("migrate");
    let alice = identity(1);
    let relay = start_relay(data.clone()).await;
    let relay_id = relay.relay_id();
    let mut receipts = Vec::new();
    {
        let mut client = Client::connect_as(&relay.url(), &alice).await;
        for counter in 0..13 {
            let Body::Receipt { receipt, .. } =
                client.publish(&op(&alice, "p", counter, b"m")).await.body
            else {
                panic!("no receipt");
            };
            receipts.push(SignedReceipt::decode(&receipt, &relay_id).unwrap());
        }
    }
    relay.shutdown().await.unwrap();

    // Rewrite the store into the layout relays had before `node_hashes`: subtree hashes keyed
    // by (topic, level, idx). The node key is the subtree's last leaf times 64 plus its level.
    {
        let conn = rusqlite::Connection::open(data.join("relay.sqlite3")).unwrap();
        conn.execute_batch(
            "CREATE TABLE hashes (topic INTEGER NOT NULL REFERENCES topics(id),
                 level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
                 PRIMARY KEY (topic, level, idx)) WITHOUT ROWID;
             INSERT INTO hashes (topic, level, idx, hash)
                 SELECT topic, node & 63, (((node >> 6) + 1) >> (node & 63)) - 1, hash
                 FROM node_hashes;
             DROP TABLE node_hashes;",
        )
        .unwrap();
        let moved: i64 = conn
            .query_row("SELECT count(*) FROM hashes", [], |row| row.get(0))
            .unwrap();
        assert_eq!(moved, 13 + 6 + 3 + 1, "every complete subtree of 13 leaves");
    }

    let relay = start_relay(data).await;
    let mut client = Client::connect_as(&relay.url(), &alice).await;
    let mut reader = Client::connect(&relay.url()).await;
    assert_eq!(reader.subscribe("p", 0).await, 13);
    let mut entries = Vec::new();
    for _ in 0..13 {
        entries.push(reader.next_entry().await);
    }
    // The log goes on from the migrated hashes: the next receipt's tree extends the old one.
    let Body::Receipt { seq, receipt, .. } = client.publish(&op(&alice, "p", 13, b"m")).await.body
    else {
        panic!("no receipt");
    };
    assert_eq!(seq, 13);
    let head = SignedReceipt::decode(&receipt, &relay_id)
        .unwrap()
        .receipt()
        .clone();
    for (old, entry) in receipts.iter().zip(&entries) {
        assert_proofs(
            &mut client,
            old.receipt(),
            entry,
            head.tree_size,
            &head.root,
        )
        .await;
    }
    relay.shutdown().await.unwrap();
}

/// Asks the relay for the inclusion proof of `entry` in the tree its receipt `r` names, and
/// for the consistency proof from that tree to the one of `new_size` entries with `new_root`;
/// both must verify.
async fn assert_proofs(
    client: &mut Client,
    r: &ants_coord::log::Receipt,
    entry: &ants_coord::Entry,
    new_size: u64,
    new_root: &ants_coord::log::Hash,
) {
    use ants_coord::log::{leaf_hash, ConsistencyProof, InclusionProof};
    use ants_coord::wire::Body;

    client
        .request(ants_coord::wire::Body::GetInclusionProof {
            topic: r.topic.clone(),
            seq: r.seq,
            tree_size: r.tree_size,
        })
        .await;
    let Body::InclusionProof { proof } = client.recv().await.body else {
        panic!("no inclusion proof");
    };
    InclusionProof::decode(&proof)
        .unwrap()
        .verify(&leaf_hash(entry.as_bytes()), &r.root)
        .unwrap();
    client
        .request(ants_coord::wire::Body::GetConsistencyProof {
            topic: r.topic.clone(),
            old_size: r.tree_size,
            new_size,
        })
        .await;
    let Body::ConsistencyProof { proof } = client.recv().await.body else {
        panic!("no consistency proof");
    };
    ConsistencyProof::decode(&proof)
        .unwrap()
        .verify(&r.root, new_root)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_proof_requests_are_each_answered_and_a_publish_behind_them_is_receipted() {
    // A connection keeps a bounded number of proofs waiting for storage and goes on serving
    // while they wait: 40 requests at once (more than it keeps in flight), one of them refused,
    // then a publish. Every answer comes back under its own request id.
    let relay = start_relay(temp_dir("proofs")).await;
    let alice = identity(1);
    let mut client = Client::connect_as(&relay.url(), &alice).await;
    for counter in 0..8 {
        client.publish_ok(&op(&alice, "p", counter, b"x")).await;
    }
    let mut asked = HashMap::new();
    for i in 0..40u64 {
        let id = client
            .request(ants_coord::wire::Body::GetInclusionProof {
                topic: "p".into(),
                seq: i % 8,
                tree_size: 8,
            })
            .await;
        asked.insert(id, i % 8);
    }
    let beyond = client
        .request(ants_coord::wire::Body::GetInclusionProof {
            topic: "p".into(),
            seq: 0,
            tree_size: 9,
        })
        .await;
    let publish = client
        .request(ants_coord::wire::Body::Publish {
            op: op(&alice, "p", 8, b"y").as_bytes().to_vec(),
        })
        .await;
    let (mut refused, mut receipted) = (false, false);
    while !asked.is_empty() || !refused || !receipted {
        let frame = client.recv().await;
        match &frame.body {
            ants_coord::wire::Body::InclusionProof { proof } => {
                let seq = asked
                    .remove(&frame.request_id)
                    .expect("one answer per proof request");
                let proof = ants_coord::log::InclusionProof::decode(proof).unwrap();
                assert_eq!((proof.leaf_index, proof.tree_size), (seq, 8));
            }
            ants_coord::wire::Body::Error { .. } => {
                assert_eq!(frame.request_id, beyond);
                assert_eq!(code_of(&frame), "BAD_INPUT");
                refused = true;
            }
            ants_coord::wire::Body::Receipt { .. } => {
                assert_eq!(frame.request_id, publish);
                receipted = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    relay.shutdown().await.unwrap();
}
