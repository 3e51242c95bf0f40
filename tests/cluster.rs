//! The relay as a cluster: two frontends (`--store nats://…`, one shared relay key) on a real
//! 3-node JetStream cluster on loopback are one logical relay. Entries published on one are
//! served by the other with the same bytes, proofs and checkpoints; a restarted frontend
//! rebuilds its mirror and serves the same log; two frontends sequencing one topic at once never
//! fork it; without NATS quorum a publish is refused `UNAVAILABLE` and `/healthz` says 503, and
//! publishing resumes with quorum; a NATS server SIGKILLed under load loses no receipted op.
//!
//! `cargo test --features nats --test cluster` (needs `nats-server`: scripts/setup.sh).
#![cfg(all(feature = "nats", not(target_arch = "wasm32")))]

mod common;

use std::collections::{HashMap, HashSet};

use ants_coord::log::{leaf_hash, ConsistencyProof, SignedCheckpoint};
use ants_coord::relay::RelayHandle;
use ants_coord::wire::Body;
use ants_coord::{Entry, OpId};
use common::cluster::{health_status, publish_retrying, read_log, start_frontend, wait_for_health};
use common::nats::NatsCluster;
use common::relay::{code_of, http_get, identity, op, temp_dir, Client};

/// The frontend's signed checkpoint of `topic`: `(tree size, root)`, its signature checked
/// against the relay key.
async fn checkpoint(frontend: &RelayHandle, topic: &str) -> (u64, [u8; 32]) {
    let mut client = Client::connect(&frontend.url()).await;
    client
        .request(Body::GetCheckpoint {
            topic: topic.into(),
        })
        .await;
    let Body::Checkpoint { checkpoint } = client.recv().await.body else {
        panic!("no checkpoint");
    };
    let signed = SignedCheckpoint::decode(&checkpoint, &frontend.relay_id()).unwrap();
    client.close().await;
    (signed.checkpoint().tree_size, signed.checkpoint().root)
}

/// Checks on `frontend` that every entry of `log` is included in the tree of `size` entries with
/// `root`, and that each prefix of the log is consistent with it.
async fn assert_proofs(frontend: &RelayHandle, topic: &str, log: &[Vec<u8>], root: &[u8; 32]) {
    let mut client = Client::connect(&frontend.url()).await;
    let size = log.len() as u64;
    for (seq, entry) in log.iter().enumerate() {
        client
            .inclusion_proof(topic, seq as u64, size)
            .await
            .verify(&leaf_hash(entry), root)
            .unwrap();
    }
    let leaves: Vec<&[u8]> = log.iter().map(Vec::as_slice).collect();
    for old_size in 1..size {
        client
            .request(Body::GetConsistencyProof {
                topic: topic.into(),
                old_size,
                new_size: size,
            })
            .await;
        let Body::ConsistencyProof { proof } = client.recv().await.body else {
            panic!("no consistency proof");
        };
        let old_root = ants_coord::log::merkle_root(&leaves[..old_size as usize]);
        ConsistencyProof::decode(&proof)
            .unwrap()
            .verify(&old_root, root)
            .unwrap();
    }
    client.close().await;
}

/// Checks that `log` is one contiguous, duplicate-free log holding every receipted op at its
/// receipted seq.
fn assert_receipts_hold(log: &[Vec<u8>], receipts: &HashMap<OpId, u64>) {
    let mut seen = HashSet::new();
    for (seq, bytes) in log.iter().enumerate() {
        let entry = Entry::decode(bytes).unwrap();
        assert_eq!(entry.seq(), seq as u64);
        assert!(seen.insert(entry.op().id()), "op twice in the log at {seq}");
    }
    for (op_id, seq) in receipts {
        let entry = Entry::decode(&log[*seq as usize]).unwrap();
        assert_eq!(
            entry.op().id(),
            *op_id,
            "a receipted op is not at its seq {seq}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_published_on_one_frontend_are_served_by_the_other() {
    let nats = NatsCluster::start("served").await;
    // Without forwarding, so that B appends to a topic A appended to (the fence is asserted).
    let url = format!("{}?forward=off", nats.url());
    let a = start_frontend(&url, temp_dir("served-a")).await;
    let b = start_frontend(&url, temp_dir("served-b")).await;
    assert_eq!(a.relay_id(), b.relay_id(), "one relay key");
    let mut live = Client::connect(&b.url()).await;
    assert_eq!(live.subscribe("chat", 0).await, 0);
    let alice = identity(1);
    let mut publisher = Client::connect_as(&a.url(), &alice).await;
    let mut receipts = HashMap::new();
    for counter in 0..12 {
        let op = op(
            &alice,
            "chat",
            counter,
            format!("hello {counter}").as_bytes(),
        );
        let seq = publisher.publish_ok(&op).await;
        assert_eq!(seq, counter);
        receipts.insert(op.id(), seq);
    }
    // B's live subscriber gets them in order; fresh readers of A and B get the same bytes.
    let mut from_live = Vec::new();
    for _ in 0..12 {
        from_live.push(live.next_entry().await.as_bytes().to_vec());
    }
    let from_a = read_log(&a.url(), "chat", 12).await;
    let from_b = read_log(&b.url(), "chat", 12).await;
    assert_eq!(from_live, from_a);
    assert_eq!(from_b, from_a);
    assert_receipts_hold(&from_a, &receipts);
    // One signed head, and proofs from either frontend verify against it.
    let head = checkpoint(&a, "chat").await;
    assert_eq!(head.0, 12);
    assert_eq!(checkpoint(&b, "chat").await, head);
    let leaves: Vec<&[u8]> = from_a.iter().map(Vec::as_slice).collect();
    assert_eq!(ants_coord::log::merkle_root(&leaves), head.1);
    assert_proofs(&a, "chat", &from_a, &head.1).await;
    assert_proofs(&b, "chat", &from_a, &head.1).await;
    // And the other way round: B sequences, A's subscribers see it. (B has not sequenced
    // "chat" yet: its first append there is fenced, and B decides it again after reloading
    // the topic, or refuses it `UNAVAILABLE` and the retry with the same bytes lands.)
    let bob = identity(2);
    let mut other = Client::connect_as(&b.url(), &bob).await;
    let (seq, _) = publish_retrying(&mut other, &op(&bob, "chat", 0, b"from b")).await;
    assert_eq!(seq, 12);
    // That first append was fenced (B's head of "chat" was empty), and counted so.
    let metrics = http_get(b.local_addr(), "/metrics").await;
    let conflicts = metrics
        .lines()
        .find_map(|line| line.strip_prefix("ants_relay_append_conflicts_total "))
        .and_then(|value| value.parse::<u64>().ok());
    assert!(conflicts.is_some_and(|n| n >= 1), "{metrics}");
    // A retry on B of an op A sequenced gets the original entry's receipt, not a second entry.
    let mut alice_on_b = Client::connect_as(&b.url(), &alice).await;
    let retried = op(&alice, "chat", 3, b"hello 3");
    assert_eq!(publish_retrying(&mut alice_on_b, &retried).await.0, 3);
    let metrics = http_get(a.local_addr(), "/metrics").await;
    assert!(metrics.contains("ants_relay_nats_connected 1"), "{metrics}");
    assert_eq!(read_log(&a.url(), "chat", 13).await[..12], from_a[..]);
    // A frontend with a key of its own is refused: it would sign the relay's log under it.
    let mut stranger = ants_coord::relay::Config::ephemeral(temp_dir("served-stranger"));
    stranger.store = Some(nats.url());
    let refused = ants_coord::relay::start(stranger).await.unwrap_err();
    assert_eq!(refused.code(), "BAD_INPUT", "{refused}");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// A restarted frontend resumes the read mirror it kept in its data directory, reading only what
/// was appended while it was down; without it (deleted) it builds it from the whole stream. Either
/// way it serves the same log as the other frontend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_frontend_resumes_its_mirror_and_serves_the_same_log() {
    let nats = NatsCluster::start("restart").await;
    let a = start_frontend(&nats.url(), temp_dir("restart-a")).await;
    let b_data = temp_dir("restart-b");
    let b = start_frontend(&nats.url(), b_data.clone()).await;
    let alice = identity(1);
    let bob = identity(2);
    let mut on_a = Client::connect_as(&a.url(), &alice).await;
    let mut on_b = Client::connect_as(&b.url(), &bob).await;
    for counter in 0..5 {
        publish_retrying(&mut on_a, &op(&alice, "one", counter, b"a")).await;
        publish_retrying(&mut on_b, &op(&bob, "two", counter, b"b")).await;
    }
    on_b.close().await;
    // B's mirror has applied every message so far before it stops (its receipts waited for it).
    let applied_before_stop = metric(&b, "ants_relay_mirror_applied_seq").await;
    assert!(applied_before_stop >= 10, "{applied_before_stop}");
    b.shutdown().await.unwrap();
    // Written while B is down.
    for counter in 5..8 {
        publish_retrying(&mut on_a, &op(&alice, "two", counter, b"a")).await;
    }
    let b = start_frontend(&nats.url(), b_data.clone()).await;
    let resumed_at = metric(&b, "ants_relay_mirror_started_at_seq").await;
    assert!(
        resumed_at > applied_before_stop,
        "B resumed at {resumed_at}, after {applied_before_stop} applied before it stopped"
    );
    let assert_same_log = |b: RelayHandle| {
        let a = &a;
        async move {
            for (topic, size) in [("one", 5), ("two", 8)] {
                let from_a = read_log(&a.url(), topic, size).await;
                assert_eq!(read_log(&b.url(), topic, size).await, from_a, "{topic}");
                assert_eq!(checkpoint(&b, topic).await, checkpoint(a, topic).await);
                assert_eq!(checkpoint(&b, topic).await.0, size);
            }
            b
        }
    };
    let b = assert_same_log(b).await;
    // A retry on the restarted frontend of an op sequenced before gets its original seq.
    let mut again = Client::connect_as(&b.url(), &alice).await;
    assert_eq!(again.publish_ok(&op(&alice, "one", 3, b"a")).await, 3);
    again.close().await;
    b.shutdown().await.unwrap();

    // Without its mirror, B builds it from the stream's first message.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(b_data.join(format!("mirror.sqlite3{suffix}")));
    }
    let b = start_frontend(&nats.url(), b_data).await;
    assert_eq!(metric(&b, "ants_relay_mirror_started_at_seq").await, 1);
    let b = assert_same_log(b).await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_frontends_sequencing_one_topic_at_once_never_fork_it() {
    let nats = NatsCluster::start("race").await;
    // Forced: without forwarding both frontends sequence the topic.
    let url = format!("{}?forward=off", nats.url());
    let a = start_frontend(&url, temp_dir("race-a")).await;
    let b = start_frontend(&url, temp_dir("race-b")).await;
    const PUBLISHERS: u8 = 4;
    const OPS: u64 = 15;
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let url = if p % 2 == 0 { a.url() } else { b.url() };
        tasks.push(tokio::spawn(async move {
            let author = identity(10 + p);
            let mut client = Client::connect_as(&url, &author).await;
            let mut receipts = Vec::new();
            let mut refusals = 0;
            for counter in 0..OPS {
                let op = op(&author, "race", counter, &[p, counter as u8]);
                let (seq, refused) = publish_retrying(&mut client, &op).await;
                refusals += refused;
                receipts.push((op.id(), seq));
            }
            (receipts, refusals)
        }));
    }
    let mut receipts = HashMap::new();
    let mut refusals = 0;
    for task in tasks {
        let (theirs, refused) = task.await.unwrap();
        refusals += refused;
        for (op_id, seq) in theirs {
            assert!(receipts.insert(op_id, seq).is_none());
        }
    }
    let total = u64::from(PUBLISHERS) * OPS;
    let seqs: HashSet<u64> = receipts.values().copied().collect();
    assert_eq!(seqs.len() as u64, total, "two receipts for one seq");
    let from_a = read_log(&a.url(), "race", total).await;
    let from_b = read_log(&b.url(), "race", total).await;
    assert_eq!(from_a, from_b);
    assert_receipts_hold(&from_a, &receipts);
    assert_eq!(checkpoint(&a, "race").await, checkpoint(&b, "race").await);
    assert_eq!(checkpoint(&a, "race").await.0, total);
    println!("{refusals} publishes refused UNAVAILABLE by a lost race and retried");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// The value of the metric `name` in a frontend's `/metrics` (0 when absent).
async fn metric(frontend: &RelayHandle, name: &str) -> u64 {
    let text = http_get(frontend.local_addr(), "/metrics").await;
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// With forwarding (the default), each frontend sequences the topics it owns: publishes made
/// on A for B's topics travel to B and come back as receipts, and both serve one log. When B
/// stops, A sequences everything itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_go_to_the_frontend_owning_their_topic() {
    let nats = NatsCluster::start("owners").await;
    let a = start_frontend(&nats.url(), temp_dir("owners-a")).await;
    let b = start_frontend(&nats.url(), temp_dir("owners-b")).await;
    // Both see both heartbeats (a condition, polled).
    let started = std::time::Instant::now();
    while metric(&a, "ants_relay_frontends_live").await < 2
        || metric(&b, "ants_relay_frontends_live").await < 2
    {
        assert!(
            started.elapsed() < common::cluster::CLUSTER_WAIT,
            "frontends never saw each other"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let alice = identity(1);
    let mut on_a = Client::connect_as(&a.url(), &alice).await;
    let topics: Vec<String> = (0..24).map(|i| format!("owned-by-someone-{i}")).collect();
    let mut receipts: HashMap<&str, HashMap<OpId, u64>> = HashMap::new();
    for topic in &topics {
        for counter in 0..3 {
            let op = op(&alice, topic, counter, &[counter as u8]);
            let (seq, _) = publish_retrying(&mut on_a, &op).await;
            assert_eq!(seq, counter, "{topic}");
            receipts.entry(topic).or_default().insert(op.id(), seq);
        }
    }
    // With 24 topics over two frontends, B owns some (the chance that A owns all 24 is 2^-24,
    // and then the assertion below names it): they went there and came back.
    let forwarded = metric(&a, "ants_relay_forwarded_total").await;
    let served = metric(&b, "ants_relay_forwards_served_total").await;
    assert!(forwarded >= 1, "A forwarded nothing");
    assert!(served >= 1, "B sequenced nothing A forwarded");
    for topic in &topics {
        let from_a = read_log(&a.url(), topic, 3).await;
        assert_eq!(read_log(&b.url(), topic, 3).await, from_a, "{topic}");
        assert_receipts_hold(&from_a, &receipts[topic.as_str()]);
        assert_eq!(checkpoint(&a, topic).await, checkpoint(&b, topic).await);
    }
    // B leaves: A takes its topics over (it sees B gone, or B does not answer and A falls back).
    b.shutdown().await.unwrap();
    for topic in &topics {
        let op = op(&alice, topic, 3, b"after b");
        assert_eq!(publish_retrying(&mut on_a, &op).await.0, 3, "{topic}");
    }
    println!(
        "forwarded {forwarded}, served {served}; after B left, {} sequenced on A instead",
        metric(&a, "ants_relay_forward_fallbacks_total").await
    );
    a.shutdown().await.unwrap();
}

/// A replica event pushed to an agent (a losing claimant's compensation, PROTOCOL.md 8.5)
/// reaches it on whichever frontend it is connected to, whichever frontend sequenced the op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_losing_claimant_on_either_frontend_gets_its_compensation() {
    use ants_coord::replica::ReplicaOp;
    use ants_coord::SignedOp;

    let nats = NatsCluster::start("pushes").await;
    let a = start_frontend(&nats.url(), temp_dir("pushes-a")).await;
    let b = start_frontend(&nats.url(), temp_dir("pushes-b")).await;
    let claim = |who: &ants_coord::Identity, topic: &str| {
        let mut draft = ReplicaOp::Claim {
            resource: "room-1".into(),
            lease_ms: 60_000,
            stake: 0,
            fence: None,
        }
        .draft(topic)
        .unwrap();
        draft.counter = 0;
        SignedOp::sign(who, draft).unwrap()
    };
    let alice = identity(1);
    let bob = identity(2);
    let mut on_a = Client::connect_as(&a.url(), &alice).await;
    let mut on_b = Client::connect_as(&b.url(), &bob).await;
    // Several topics, so that some are sequenced by A and some by B (forwarded or not).
    for i in 0..6 {
        let topic = format!("slots-{i}");
        assert_eq!(
            publish_retrying(&mut on_a, &claim(&alice, &topic)).await.0,
            0
        );
        let bob_claim = claim(&bob, &topic);
        // The event and the receipt may come in either order (the event travels between
        // frontends on its own); a refusal `UNAVAILABLE` (a lost race) is retried.
        let (mut receipt, mut event) = (None, None);
        let mut id = on_b
            .request(Body::Publish {
                op: bob_claim.as_bytes().to_vec(),
            })
            .await;
        while receipt.is_none() || event.is_none() {
            let frame = on_b.recv().await;
            match frame.body {
                Body::Event {
                    topic: t,
                    seq,
                    event: e,
                } if t == topic => event = Some((seq, e)),
                Body::Receipt { seq, .. } if frame.request_id == id => receipt = Some(seq),
                _ if frame.request_id == id => {
                    assert_eq!(code_of(&frame), "UNAVAILABLE", "{frame:?}");
                    id = on_b
                        .request(Body::Publish {
                            op: bob_claim.as_bytes().to_vec(),
                        })
                        .await;
                }
                _ => {}
            }
        }
        assert_eq!(receipt, Some(1), "{topic}");
        let event = event.unwrap();
        assert_eq!(event.0, 1, "{topic}");
        let text = String::from_utf8(event.1).unwrap().to_lowercase();
        assert!(text.contains("compensation"), "{text}");
        assert!(
            text.contains(&bob.agent_id().to_string().to_lowercase()),
            "{text}"
        );
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// A batch's entries of one topic are one stream message, which the servers bound (1 MiB by
/// default): publishes that would make a larger batch are sequenced over several batches, not
/// refused (they used to fail `UNAVAILABLE` on every retry). Several topics at once, too: a
/// batch's topics are appended concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_larger_together_than_one_message_are_all_sequenced() {
    let nats = NatsCluster::start("large").await;
    let a = start_frontend(&nats.url(), temp_dir("large-a")).await;
    let alice = identity(3);
    let mut client = Client::connect_as(&a.url(), &alice).await;
    const OPS: u64 = 12;
    let body = vec![7u8; 200 * 1024];
    let mut sent = HashMap::new();
    // All in flight at once, so that the sequencer finds them queued together.
    for counter in 0..OPS {
        let topic = if counter % 3 == 0 { "big-b" } else { "big-a" };
        let op = op(&alice, topic, counter, &body);
        let id = client
            .request(Body::Publish {
                op: op.as_bytes().to_vec(),
            })
            .await;
        sent.insert(id, op);
    }
    let mut receipts: HashMap<&str, HashMap<OpId, u64>> = HashMap::new();
    for _ in 0..OPS {
        let frame = client.recv().await;
        let op = &sent[&frame.request_id];
        let Body::Receipt { seq, .. } = frame.body else {
            panic!(
                "publish of {} bytes refused: {:?}",
                op.as_bytes().len(),
                frame.body
            );
        };
        receipts.entry(op.topic()).or_default().insert(op.id(), seq);
    }
    for (topic, receipts) in receipts {
        let log = read_log(&a.url(), topic, receipts.len() as u64).await;
        assert_receipts_hold(&log, &receipts);
    }
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_publishes_are_refused_and_health_says_so() {
    let mut nats = NatsCluster::start("quorum").await;
    let a = start_frontend(&nats.url(), temp_dir("quorum-a")).await;
    let alice = identity(1);
    let mut client = Client::connect_as(&a.url(), &alice).await;
    assert_eq!(client.publish_ok(&op(&alice, "q", 0, b"before")).await, 0);
    assert_eq!(health_status(a.local_addr()).await, 200);
    nats.kill(1);
    nats.kill(2);
    let body = wait_for_health(a.local_addr(), 503).await;
    assert!(body.contains("cluster unavailable"), "{body}");
    let refused = op(&alice, "q", 1, b"without quorum");
    let answer = client.publish(&refused).await;
    assert_eq!(
        code_of(&answer),
        "UNAVAILABLE",
        "never a receipt: {answer:?}"
    );
    nats.restart(1);
    nats.restart(2);
    for i in 0..3 {
        nats.wait_healthy(i).await;
    }
    wait_for_health(a.local_addr(), 200).await;
    // The same bytes again: one entry, whether or not the refused append landed after all.
    let (seq, _) = publish_retrying(&mut client, &refused).await;
    assert_eq!(seq, 1);
    let (seq, _) = publish_retrying(&mut client, &op(&alice, "q", 2, b"after")).await;
    assert_eq!(seq, 2);
    let log = read_log(&a.url(), "q", 3).await;
    assert_eq!(Entry::decode(&log[1]).unwrap().op().id(), refused.id());
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_killed_under_load_loses_no_receipted_op() {
    let mut nats = NatsCluster::start("kill").await;
    let a = start_frontend(&nats.url(), temp_dir("kill-a")).await;
    let b = start_frontend(&nats.url(), temp_dir("kill-b")).await;
    const PUBLISHERS: u8 = 4;
    const OPS: u64 = 40;
    let (kill_tx, mut kill_rx) = tokio::sync::mpsc::channel::<()>(PUBLISHERS as usize);
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let url = if p % 2 == 0 { a.url() } else { b.url() };
        let kill = kill_tx.clone();
        tasks.push(tokio::spawn(async move {
            let author = identity(20 + p);
            let topic = format!("load-{}", p % 2);
            let mut client = Client::connect_as(&url, &author).await;
            let mut receipts = Vec::new();
            for counter in 0..OPS {
                if counter == OPS / 4 {
                    let _ = kill.send(()).await;
                }
                let op = op(&author, &topic, counter, &[p, counter as u8]);
                let (seq, _) = publish_retrying(&mut client, &op).await;
                receipts.push((topic.clone(), op.id(), seq));
            }
            receipts
        }));
    }
    drop(kill_tx);
    // Once every publisher is a quarter through: SIGKILL a server, later bring it back.
    for _ in 0..PUBLISHERS {
        kill_rx.recv().await.unwrap();
    }
    nats.kill(0);
    let mut receipts: HashMap<String, HashMap<OpId, u64>> = HashMap::new();
    for task in tasks {
        for (topic, op_id, seq) in task.await.unwrap() {
            receipts.entry(topic).or_default().insert(op_id, seq);
        }
    }
    nats.restart(0);
    nats.wait_healthy(0).await;
    for (topic, receipted) in &receipts {
        let size = receipted.len() as u64;
        let from_a = read_log(&a.url(), topic, size).await;
        assert_eq!(read_log(&b.url(), topic, size).await, from_a);
        assert_receipts_hold(&from_a, receipted);
        assert_eq!(checkpoint(&a, topic).await.0, size, "nothing unreceipted");
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
