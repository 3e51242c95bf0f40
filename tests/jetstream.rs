//! The JetStream store primitives against a real 3-node cluster on loopback: append and read,
//! the expected-sequence fence, `Nats-Msg-Id` retries, awkward topic names, the KV buckets,
//! heartbeats that expire, topic ownership, and server loss: one server down keeps appending,
//! two down refuses every append as `UNAVAILABLE` (never a success), and appends resume when
//! quorum returns, with no fork and no duplicate.
//!
//! `cargo test --features nats --test jetstream` (needs `nats-server`: scripts/setup.sh).
#![cfg(all(feature = "nats", not(target_arch = "wasm32")))]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ants_coord::relay::jetstream::{
    valid_chain, Appended, FrontendId, JetStreamConfig, JetStreamLog, LogMessage, OpLocation,
};
use ants_coord::Error;
use common::nats::{NatsCluster, CLUSTER_PATIENCE};

/// The documented setup's config for `cluster`, with a shorter timeout so that refusals come
/// quickly (a refusal is asserted by its kind, never by how long it took).
fn config(cluster: &NatsCluster) -> JetStreamConfig {
    JetStreamConfig {
        timeout: Duration::from_secs(2),
        ..JetStreamConfig::from_url(&cluster.url()).unwrap()
    }
}

/// Connects, retrying while the cluster's JetStream is still settling after start.
async fn connect(config: JetStreamConfig) -> JetStreamLog {
    let started = Instant::now();
    loop {
        match JetStreamLog::connect(config.clone()).await {
            Ok(log) => return log,
            Err(e) => {
                assert_eq!(e.code(), "UNAVAILABLE", "{e}");
                assert!(started.elapsed() < CLUSTER_PATIENCE, "never connected: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A payload that names the sequence it expects to follow, so the log can be checked for
/// forks: every message must expect exactly the sequence of the topic's previous message.
fn chained(expected_last: u64, tag: &str) -> Vec<u8> {
    let mut payload = expected_last.to_be_bytes().to_vec();
    payload.extend_from_slice(tag.as_bytes());
    payload
}

fn chained_tag(payload: &[u8]) -> (u64, String) {
    let (seq, tag) = payload.split_at(8);
    (
        u64::from_be_bytes(seq.try_into().unwrap()),
        String::from_utf8(tag.to_vec()).unwrap(),
    )
}

/// The valid chain of a whole topic (void messages skipped), checked: each valid message's
/// payload names the same predecessor as its header, so the chain has no fork, and no tag
/// appears twice in it. Returns the tags in order.
fn assert_one_chain(messages: &[LogMessage]) -> Vec<String> {
    let listing: Vec<(u64, Option<u64>, String)> = messages
        .iter()
        .map(|m| (m.seq, m.predecessor, chained_tag(&m.payload).1))
        .collect();
    let mut previous = 0;
    let mut tags = Vec::new();
    for message in valid_chain(messages) {
        let (expected, tag) = chained_tag(&message.payload);
        assert_eq!(
            expected, previous,
            "message {} forks the chain (seq, predecessor, tag): {listing:?}",
            message.seq
        );
        previous = message.seq;
        tags.push(tag);
    }
    let unique: HashSet<&String> = tags.iter().collect();
    assert_eq!(
        unique.len(),
        tags.len(),
        "a payload appears twice: {listing:?}"
    );
    tags
}

/// What a relay does to get one payload into a topic whatever happens: retry while the
/// cluster is unavailable, and after a conflict reload the topic (the earlier, unacknowledged
/// attempt may have been committed after all) before deciding again.
async fn append_until_acked(log: &JetStreamLog, topic: &str, tag: &str) -> u64 {
    let started = Instant::now();
    let (mut last, mut valid) = positions(log, topic).await;
    loop {
        assert!(
            started.elapsed() < CLUSTER_PATIENCE,
            "{tag} never acknowledged"
        );
        match log
            .append_after(topic, &chained(valid, tag), last, valid, tag)
            .await
        {
            Ok(Appended { seq, .. }) => return seq,
            Err(Error::SequenceConflict { .. }) | Err(Error::Unavailable(_)) => {
                let all = read_all(log, topic).await;
                if let Some(message) = valid_chain(&all).last() {
                    if chained_tag(&message.payload).1 == tag {
                        return message.seq;
                    }
                }
                (last, valid) = positions(log, topic).await;
            }
            Err(e) => panic!("{tag}: {e}"),
        }
    }
}

/// The whole topic, retrying while the cluster is unavailable.
async fn read_all(log: &JetStreamLog, topic: &str) -> Vec<LogMessage> {
    let started = Instant::now();
    loop {
        match log.read(topic, 1, usize::MAX).await {
            Ok(all) => return all,
            Err(e) => {
                assert_eq!(e.code(), "UNAVAILABLE", "{e}");
                assert!(started.elapsed() < CLUSTER_PATIENCE, "no leader: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The topic's last stream sequence (what the server's fence expects) and its last valid one
/// (what the next append claims).
async fn positions(log: &JetStreamLog, topic: &str) -> (u64, u64) {
    let all = read_all(log, topic).await;
    let last = all.last().map_or(0, |m| m.seq);
    let valid = valid_chain(&all).last().map_or(0, |m| m.seq);
    (last, valid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_read_back_in_order_per_topic() {
    let cluster = NatsCluster::start("order").await;
    let log = connect(config(&cluster)).await;
    assert_eq!(log.last("a").await.unwrap(), None);
    assert!(log.read("a", 1, 10).await.unwrap().is_empty());

    let mut seqs = Vec::new();
    let mut last_a = 0;
    let mut last_b = 0;
    for i in 0..6 {
        // Interleave two topics: stream sequences are shared, each topic's chain is its own.
        let (topic, last) = if i % 2 == 0 {
            ("a", &mut last_a)
        } else {
            ("b", &mut last_b)
        };
        let appended = log
            .append(
                topic,
                &chained(*last, &format!("{topic}{i}")),
                *last,
                &format!("m{i}"),
            )
            .await
            .unwrap();
        assert!(!appended.duplicate);
        assert!(appended.seq > *last);
        *last = appended.seq;
        seqs.push(appended.seq);
    }
    assert_eq!(seqs, (1..=6).collect::<Vec<u64>>());

    let a = log.read("a", 1, 100).await.unwrap();
    assert_eq!(assert_one_chain(&a), ["a0", "a2", "a4"]);
    assert_eq!(a.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 3, 5]);
    // From the middle, and bounded.
    let from_3 = log.read("a", 3, 100).await.unwrap();
    assert_eq!(from_3.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 5]);
    let one = log.read("a", 2, 1).await.unwrap();
    assert_eq!(one.iter().map(|m| m.seq).collect::<Vec<_>>(), [3]);
    assert!(log.read("a", 6, 100).await.unwrap().is_empty());
    assert_eq!(log.last("b").await.unwrap().unwrap().seq, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_page_through_long_topics() {
    let cluster = NatsCluster::start("paging").await;
    let log = connect(config(&cluster)).await;
    // More messages than one fetch batch (1,024) takes.
    let mut last = 0;
    for i in 0..1500 {
        last = log
            .append(
                "long",
                &chained(last, &i.to_string()),
                last,
                &format!("l{i}"),
            )
            .await
            .unwrap()
            .seq;
    }
    let all = log.read("long", 1, usize::MAX).await.unwrap();
    assert_eq!(all.len(), 1500);
    assert_eq!(assert_one_chain(&all).last().unwrap(), "1499");
    let tail = log.read("long", 1200, 1000).await.unwrap();
    assert_eq!(tail.len(), 301);
    assert_eq!(tail[0].seq, 1200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_expected_sequence_is_a_conflict_and_writes_nothing() {
    let cluster = NatsCluster::start("conflict").await;
    let log = connect(config(&cluster)).await;
    let first = log.append("t", &chained(0, "x"), 0, "x").await.unwrap();
    // Another writer that still believes the topic is empty.
    let err = log.append("t", &chained(0, "y"), 0, "y").await.unwrap_err();
    assert_eq!(err.code(), "SEQUENCE_CONFLICT");
    assert!(matches!(err, Error::SequenceConflict { expected: 0, .. }));
    // And one that expects a sequence the topic never had.
    let err = log
        .append("t", &chained(first.seq + 5, "z"), first.seq + 5, "z")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "SEQUENCE_CONFLICT");
    let all = log.read("t", 1, 100).await.unwrap();
    assert_eq!(assert_one_chain(&all), ["x"]);
    // Other topics are not fenced by this one.
    log.append("u", &chained(0, "u"), 0, "u").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_msg_id_never_stores_twice() {
    // What nats-server 2.9.10 answers to the retry of a publish whose ack was lost (same bytes,
    // same Nats-Msg-Id, the same expectation, which is stale now). Measured here; the relay
    // must not depend on which: it recognises retries by its op-id index.
    let cluster = NatsCluster::start("dedup").await;
    let log = connect(config(&cluster)).await;
    let x = log.append("t", &chained(0, "x"), 0, "op-x").await.unwrap();
    assert!(!x.duplicate);
    // Expectation 0 ("no message yet") is checked only when the message is applied, after the
    // dedup check: the retry is reported a duplicate of the original.
    let retry = log.append("t", &chained(0, "x"), 0, "op-x").await.unwrap();
    assert_eq!(
        retry,
        Appended {
            seq: x.seq,
            duplicate: true
        }
    );
    // With the current expectation: a duplicate too.
    let retry = log
        .append("t", &chained(x.seq, "x"), x.seq, "op-x")
        .await
        .unwrap();
    assert_eq!(
        retry,
        Appended {
            seq: x.seq,
            duplicate: true
        }
    );
    // A non-zero stale expectation is checked by the leader before dedup: 10071.
    let y = log
        .append("t", &chained(x.seq, "y"), x.seq, "op-y")
        .await
        .unwrap();
    let err = log
        .append("t", &chained(x.seq, "y"), x.seq, "op-y")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "SEQUENCE_CONFLICT");
    // In every case, nothing was stored twice.
    let all = log.read("t", 1, 100).await.unwrap();
    assert_eq!(assert_one_chain(&all), ["x", "y"]);
    assert_eq!(all[1].seq, y.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_with_any_characters_get_their_own_subjects() {
    let cluster = NatsCluster::start("topics").await;
    let log = connect(config(&cluster)).await;
    let longest = "é".repeat(64); // 128 bytes, every one escaped
    let topics = [
        "a.b",
        "a",
        "a_2Eb",
        "*",
        ">",
        "a.>",
        "with spaces",
        "日本語",
        "🐜.*.>",
        longest.as_str(),
    ];
    for topic in topics {
        log.append(topic, topic.as_bytes(), 0, &format!("first-{topic}"))
            .await
            .unwrap_or_else(|e| panic!("{topic:?}: {e}"));
    }
    // Each topic sees exactly its own message: no wildcard, separator or escape leaked.
    for topic in topics {
        let messages = log.read(topic, 1, 100).await.unwrap();
        assert_eq!(messages.len(), 1, "{topic:?}");
        assert_eq!(messages[0].payload, topic.as_bytes());
        assert_eq!(log.last(topic).await.unwrap().unwrap(), messages[0]);
    }
    let too_long = "x".repeat(129);
    for bad in ["", "new\nline", too_long.as_str()] {
        let err = log.append(bad, b"x", 0, "bad").await.unwrap_err();
        assert_eq!(err.code(), "BAD_TOPIC");
    }
    assert_eq!(
        log.append("t", b"x", 0, "").await.unwrap_err().code(),
        "BAD_INPUT"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_op_index_and_snapshots_live_in_buckets() {
    let cluster = NatsCluster::start("buckets").await;
    let log = connect(config(&cluster)).await;
    let buckets = log.buckets().await.unwrap();

    // Heads: compare-and-set on the revision.
    assert_eq!(buckets.head("a.b").await.unwrap(), None);
    let r1 = buckets.put_head("a.b", b"head-1", 0).await.unwrap();
    let err = buckets.put_head("a.b", b"head-x", 0).await.unwrap_err();
    assert_eq!(err.code(), "SEQUENCE_CONFLICT");
    let r2 = buckets.put_head("a.b", b"head-2", r1).await.unwrap();
    assert!(r2 > r1);
    let err = buckets.put_head("a.b", b"head-y", r1).await.unwrap_err();
    assert_eq!(err.code(), "SEQUENCE_CONFLICT");
    let head = buckets.head("a.b").await.unwrap().unwrap();
    assert_eq!((head.value.as_slice(), head.revision), (&b"head-2"[..], r2));
    // A second frontend (its own connection) reads what the first wrote.
    let other = connect(config(&cluster)).await.buckets().await.unwrap();
    assert_eq!(other.head("a.b").await.unwrap().unwrap(), head);

    // The op-id index: first location wins.
    let op = [7u8; 32];
    let here = OpLocation {
        topic: "a.b".into(),
        seq: 41,
    };
    assert_eq!(buckets.op(&op).await.unwrap(), None);
    assert_eq!(buckets.index_op(&op, &here).await.unwrap(), None);
    let elsewhere = OpLocation {
        topic: "c".into(),
        seq: 3,
    };
    assert_eq!(
        other.index_op(&op, &elsewhere).await.unwrap(),
        Some(here.clone())
    );
    assert_eq!(other.op(&op).await.unwrap(), Some(here));

    // Snapshots: last writer wins.
    assert_eq!(buckets.snapshot("a.b").await.unwrap(), None);
    buckets.put_snapshot("a.b", b"snap-1").await.unwrap();
    let r = other.put_snapshot("a.b", b"snap-2").await.unwrap();
    let snapshot = buckets.snapshot("a.b").await.unwrap().unwrap();
    assert_eq!(
        (snapshot.value.as_slice(), snapshot.revision),
        (&b"snap-2"[..], r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_expire_after_their_ttl() {
    let cluster = NatsCluster::start("ttl").await;
    let log = connect(JetStreamConfig {
        heartbeat_ttl: Duration::from_secs(2),
        ..config(&cluster)
    })
    .await;
    let frontends = log.frontends().await.unwrap();
    let a = FrontendId::random().unwrap();
    frontends.beat(&a, b"ws://a").await.unwrap();
    // The listing may come from a replica that has not applied the heartbeat yet: first see it
    // live (the read itself goes to the leader), then expire.
    let started = Instant::now();
    while frontends.live().await.unwrap().is_empty() {
        assert!(
            started.elapsed() < CLUSTER_PATIENCE,
            "heartbeat never listed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nobody renews it: the server drops it once it is older than the TTL. Poll for that.
    while !frontends.live().await.unwrap().is_empty() {
        assert!(
            started.elapsed() < CLUSTER_PATIENCE,
            "heartbeat never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        frontends.owner("t").await.unwrap_err().code(),
        "NO_CANDIDATES"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_follows_the_live_set_and_the_fence_keeps_one_chain() {
    let cluster = NatsCluster::start("owner").await;
    let config = JetStreamConfig {
        heartbeat_ttl: Duration::from_secs(300),
        ..config(&cluster)
    };
    let log = connect(config.clone()).await;
    let frontends = log.frontends().await.unwrap();
    let ids: Vec<FrontendId> = (1..=3).map(|n| FrontendId([n; 32])).collect();
    for id in &ids {
        frontends
            .beat(id, format!("ws://{}", id.0[0]).as_bytes())
            .await
            .unwrap();
    }
    let live = frontends.live().await.unwrap();
    assert_eq!(live.iter().map(|h| h.id).collect::<Vec<_>>(), ids);
    assert_eq!(live[1].address, b"ws://2");

    let topics: Vec<String> = (0..30).map(|i| format!("room.{i}")).collect();
    let mut owners = Vec::new();
    for topic in &topics {
        let owner = frontends.owner(topic).await.unwrap().id;
        assert_eq!(
            owner,
            ants_coord::relay::jetstream::owner_among(topic, &ids).unwrap()
        );
        owners.push(owner);
    }
    assert!(
        owners.iter().collect::<HashSet<_>>().len() > 1,
        "one frontend owns all"
    );

    // Frontend 3 leaves: only its topics move.
    frontends.leave(&ids[2]).await.unwrap();
    for (topic, before) in topics.iter().zip(&owners) {
        let after = frontends.owner(topic).await.unwrap().id;
        if *before == ids[2] {
            assert_ne!(after, ids[2]);
        } else {
            assert_eq!(after, *before, "{topic} moved");
        }
    }

    // Two frontends that both believe they own "room.0" append at once, each from its own
    // connection and its own view of the head: the fence lets exactly one through per round.
    let second = connect(config).await;
    for round in 0..20 {
        let (last, valid) = positions(&log, "room.0").await;
        let (x_tag, y_tag) = (format!("x{round}"), format!("y{round}"));
        let (x_payload, y_payload) = (chained(valid, &x_tag), chained(valid, &y_tag));
        let (x, y) = tokio::join!(
            log.append_after("room.0", &x_payload, last, valid, &x_tag),
            second.append_after("room.0", &y_payload, last, valid, &y_tag),
        );
        match (x, y) {
            (Ok(_), Err(lost)) | (Err(lost), Ok(_)) => {
                assert_eq!(lost.code(), "SEQUENCE_CONFLICT", "{lost}");
            }
            other => panic!("round {round}: both or neither appended: {other:?}"),
        }
    }
    let all = log.read("room.0", 1, 100).await.unwrap();
    assert_eq!(assert_one_chain(&all).len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_quorum_refuses_appends_and_recovery_resumes_them() {
    let mut cluster = NatsCluster::start("quorum").await;
    let log = connect(config(&cluster)).await;
    let mut acked: Vec<(u64, String)> = Vec::new();
    for i in 0..5 {
        let tag = format!("before-{i}");
        acked.push((append_until_acked(&log, "t", &tag).await, tag));
    }

    // SIGKILL the stream's leader: a new one is elected and appends go on.
    let leader = {
        let mut stream = log.context().get_stream("ANTS_LOG").await.unwrap();
        let info = stream.info().await.unwrap();
        info.cluster.as_ref().unwrap().leader.clone().unwrap()
    };
    let killed = cluster.index_of(&leader);
    cluster.kill(killed);
    for i in 0..5 {
        let tag = format!("one-down-{i}");
        acked.push((append_until_acked(&log, "t", &tag).await, tag));
    }

    // Kill a second server: no quorum. Every append is refused UNAVAILABLE, never acked.
    let second = (0..3).find(|&i| i != killed).unwrap();
    cluster.kill(second);
    let last = acked.last().unwrap().0;
    for i in 0..3 {
        let tag = format!("no-quorum-{i}");
        let err = log
            .append("t", &chained(last, &tag), last, &tag)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "UNAVAILABLE", "{err}");
    }

    // Quorum returns: appends resume.
    cluster.restart(killed);
    cluster.restart(second);
    for i in 0..3 {
        cluster.wait_healthy(i).await;
    }
    for i in 0..5 {
        let tag = format!("after-{i}");
        acked.push((append_until_acked(&log, "t", &tag).await, tag));
    }

    // Every acknowledged append is in the log at its sequence, in one chain, once. (An append
    // refused UNAVAILABLE may still have been committed when quorum returned; the chain check
    // shows it did not fork the log.)
    let all = log.read("t", 1, 1000).await.unwrap();
    let tags = assert_one_chain(&all);
    let valid = valid_chain(&all);
    for (seq, tag) in &acked {
        let message = valid
            .iter()
            .find(|m| m.seq == *seq)
            .unwrap_or_else(|| panic!("{tag} acked at {seq} is missing"));
        assert_eq!(&chained_tag(&message.payload).1, tag);
    }
    let unexpected: Vec<&String> = tags
        .iter()
        .filter(|t| !acked.iter().any(|(_, a)| a == *t) && !t.starts_with("no-quorum-"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
}

/// Acked appends per second, one 200-byte entry per message against group-committed batches
/// of entries per message, 16 concurrent appenders over 64 topics (each appender owns 4 topics
/// and waits for every ack, as a topic's sequencer does). A measurement, not a test:
///
/// `cargo test --features nats --test jetstream -- --ignored --nocapture entries_per_message`
/// (the dev profile builds dependencies at opt-level 3; this file's own code is not the cost)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_entries_per_message() {
    let cluster = NatsCluster::start("bench").await;
    let log = connect(JetStreamConfig {
        timeout: Duration::from_secs(10),
        ..config(&cluster)
    })
    .await;
    let seconds: u64 = std::env::var("ANTS_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let appenders = 16;
    let topics = 64;
    for batch in [1usize, 8, 64] {
        let payload = vec![0x61u8; 200 * batch];
        let end = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for a in 0..appenders {
            let log = log.clone();
            let payload = payload.clone();
            tasks.push(tokio::spawn(async move {
                let mine: Vec<String> = (a..topics)
                    .step_by(appenders)
                    .map(|t| format!("bench.{batch}.{t}"))
                    .collect();
                let mut last = vec![0u64; mine.len()];
                let mut messages = 0u64;
                while Instant::now() < end {
                    let i = messages as usize % mine.len();
                    let id = format!("{a}-{messages}-{batch}");
                    last[i] = log
                        .append(&mine[i], &payload, last[i], &id)
                        .await
                        .unwrap()
                        .seq;
                    messages += 1;
                }
                messages
            }));
        }
        let mut messages = 0;
        for task in tasks {
            messages += task.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "entries per message {batch:>3}: {:>7.0} acked messages/s, {:>8.0} acked entries/s \
             ({messages} messages in {elapsed:.2} s)",
            messages as f64 / elapsed,
            (messages * batch as u64) as f64 / elapsed,
        );
    }
}
