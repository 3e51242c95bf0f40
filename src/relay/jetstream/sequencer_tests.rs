//! The real sequencer over [`JetStreamStore`] on a real 3-node cluster (feature `nats`; needs
//! `nats-server` on PATH or in /usr/sbin). A child of `relay::sequencer`, to drive it as its
//! own tests do.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::op::{OpDraft, OpId};
use crate::relay::hub::Hub;
use crate::relay::jetstream::{JetStreamConfig, JetStreamStore};
use crate::relay::reply::{next_frame, reply_channel};
use crate::relay::store::AppendError;

/// Three nats-server processes forming one JetStream cluster on loopback.
struct Cluster {
    dir: PathBuf,
    servers: Vec<Option<Child>>,
    client_ports: Vec<u16>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn nats_server() -> PathBuf {
    for candidate in ["/usr/sbin/nats-server", "/usr/bin/nats-server"] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    "nats-server".into()
}

impl Cluster {
    fn start(name: &str) -> Cluster {
        let dir = std::env::temp_dir().join(format!("ants-js-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = route_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        for i in 0..3 {
            let conf = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{}\nlog_file: \"{dir}/n{i}.log\"\n\
                 jetstream {{\n  store_dir: \"{dir}/n{i}\"\n}}\n\
                 cluster {{\n  name: ants\n  listen: 127.0.0.1:{}\n  routes: [{routes}]\n}}\n",
                client_ports[i],
                route_ports[i],
                dir = dir.display(),
            );
            std::fs::write(dir.join(format!("n{i}.conf")), conf).unwrap();
        }
        let mut cluster = Cluster {
            dir,
            servers: vec![None, None, None],
            client_ports,
        };
        for i in 0..3 {
            cluster.run(i);
        }
        cluster
    }

    fn run(&mut self, i: usize) {
        let child = Command::new(nats_server())
            .arg("-c")
            .arg(self.dir.join(format!("n{i}.conf")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs");
        self.servers[i] = Some(child);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn config(&self, timeout: Duration) -> JetStreamConfig {
        let url = self
            .client_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        JetStreamConfig {
            timeout,
            ..JetStreamConfig::from_url(&url).unwrap()
        }
    }

    /// A store connected once the cluster has a JetStream leader (a condition, polled).
    fn store(&self, timeout: Duration) -> JetStreamStore {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match JetStreamStore::connect(self.config(timeout)) {
                Ok(store) => return store,
                Err(error) => {
                    assert!(Instant::now() < deadline, "no cluster: {error}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sequencer(mut store: JetStreamStore) -> Sequencer<JetStreamStore> {
    let rules = ReplicaRules::default();
    // A request may time out on a loaded box (the cluster shares it with the tests): loading is
    // a read, so it is tried again until it succeeds (a hang guard, not a timing assertion).
    let deadline = Instant::now() + Duration::from_secs(90);
    let topics = loop {
        match load_topics(&mut store, &rules) {
            Ok(topics) => break topics,
            Err(error) => {
                assert!(Instant::now() < deadline, "cannot load the topics: {error}");
                assert_eq!(error.code(), "UNAVAILABLE", "{error}");
            }
        }
    };
    // As a cluster frontend runs it: its hub is a follower's to feed (none here), so the
    // sequencer appends nothing to it, and answers do not wait for one.
    let hub = Arc::new(Hub::new(16));
    Sequencer {
        durability: Durability::start(
            store.acks().unwrap(),
            Audience {
                fan_out: crate::relay::durable::FanOut::Followed {
                    patience: Duration::ZERO,
                },
                hub,
                agents: Arc::default(),
                pushes: None,
                metrics: Arc::default(),
            },
        )
        .unwrap(),
        store,
        topics,
        metrics: Arc::default(),
        identity: Arc::new(Identity::from_seed(&[1; 32]).unwrap()),
        snapshot_every: 2,
        rules,
    }
}

fn op(author: &Identity, counter: u64, deps: Vec<OpId>, body: &[u8]) -> SignedOp {
    let draft = OpDraft {
        topic: "t".into(),
        kind: "post".into(),
        counter,
        time_ms: 0,
        deps,
        body: body.to_vec(),
    };
    SignedOp::sign(author, draft).unwrap()
}

/// Publishes `ops` as one batch with request ids from `first_id`.
fn publish(
    sequencer: &mut Sequencer<JetStreamStore>,
    reply: &ReplyTo,
    ops: &[SignedOp],
    first_id: u32,
) {
    let batch = (first_id..)
        .zip(ops)
        .map(|(request_id, op)| PublishRequest {
            op: op.clone(),
            request_id,
            reply: reply.clone(),
            received_at: Instant::now(),
        })
        .collect();
    sequencer.commit_batch(batch);
}

/// The answer to `request_id`: `Ok((seq, receipt bytes))` or `Err(code)`.
fn answer(
    answers: &mut tokio::sync::mpsc::Receiver<Vec<u8>>,
    request_id: u32,
) -> std::result::Result<(u64, Vec<u8>), String> {
    let frame = next_frame(answers);
    assert_eq!(frame.request_id, request_id);
    match frame.body {
        Body::Receipt { seq, receipt, .. } => Ok((seq, receipt)),
        Body::Error { code, .. } => Err(code),
        other => panic!("{other:?}"),
    }
}

/// The statement a receipt signs (a retry's receipt is signed anew, so compare statements).
fn statement(bytes: &[u8]) -> crate::log::Receipt {
    let relay = Identity::from_seed(&[1; 32]).unwrap().agent_id();
    SignedReceipt::decode(bytes, &relay)
        .unwrap()
        .receipt()
        .clone()
}

#[test]
fn sequencing_retries_takeover_and_fencing_on_a_three_node_cluster() {
    let cluster = Cluster::start("seq");
    let (reply, mut answers) = reply_channel(1024);
    let alice = Identity::from_seed(&[7; 32]).unwrap();
    let first = op(&alice, 0, vec![], b"a");
    let ops = vec![
        first.clone(),
        first.clone(),
        op(&alice, 0, vec![], b"other"),
        op(&alice, 1, vec![first.id()], b"c"),
        op(&alice, 2, vec![OpId([9; 32])], b"d"),
        op(&alice, 3, vec![], b"e"),
    ];
    let mut a = sequencer(cluster.store(Duration::from_secs(5)));
    publish(&mut a, &reply, &ops, 0);
    // Answers come from the durability thread, after the store's append was acknowledged.
    let original = answer(&mut answers, 0).unwrap();
    assert_eq!(original.0, 0);
    assert_eq!(
        statement(&answer(&mut answers, 1).unwrap().1),
        statement(&original.1)
    );
    assert_eq!(answer(&mut answers, 2).unwrap_err(), "COUNTER_REUSED");
    assert_eq!(
        answer(&mut answers, 3).unwrap().0,
        1,
        "its dep is in the batch"
    );
    assert_eq!(answer(&mut answers, 4).unwrap_err(), "DEPS_MISSING");
    let last = answer(&mut answers, 5).unwrap();
    assert_eq!(last.0, 2);
    // Acknowledged means in the stream: a fresh connection reads the entries back.
    let mut reader = cluster.store(Duration::from_secs(5));
    let heads = reader.heads().unwrap();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].head.size(), 3);
    assert_eq!(
        heads[0].head.frontier.root(),
        statement(&last.1).root,
        "the stored tree is the one the last receipt signs"
    );

    // A retry in a later batch gets the original receipt; a stale counter is refused.
    publish(
        &mut a,
        &reply,
        &[ops[0].clone(), op(&alice, 1, vec![], b"z")],
        10,
    );
    assert_eq!(
        statement(&answer(&mut answers, 10).unwrap().1),
        statement(&original.1)
    );
    assert_eq!(answer(&mut answers, 11).unwrap_err(), "COUNTER_REUSED");

    // Another frontend takes the topic over: same heads, the retry's receipt, and it continues.
    let mut b = sequencer(cluster.store(Duration::from_secs(5)));
    assert_eq!(b.topics["t"].head, a.topics["t"].head);
    assert_eq!(
        b.topics["t"].replica.state_hash(),
        a.topics["t"].replica.state_hash(),
        "replica rebuilt from the snapshot bucket and the log"
    );
    publish(
        &mut b,
        &reply,
        &[ops[3].clone(), op(&alice, 4, vec![], b"f")],
        20,
    );
    assert_eq!(answer(&mut answers, 20).unwrap().0, 1, "a retry of seq 1");
    assert_eq!(
        answer(&mut answers, 21).unwrap().0,
        3,
        "continues the topic"
    );

    // A is stale now: its append is fenced (nothing written), so it reloads the topic and
    // decides the batch once more, after B's entries.
    let g = op(&alice, 5, vec![], b"g");
    publish(&mut a, &reply, std::slice::from_ref(&g), 30);
    assert_eq!(answer(&mut answers, 30).unwrap().0, 4);
    assert_eq!(
        a.topics["t"].head.size(),
        5,
        "A caught up with B's entry, then appended"
    );
    // Restarted, A answers the same op as a retry.
    drop(a);
    let mut a = sequencer(cluster.store(Duration::from_secs(5)));
    publish(&mut a, &reply, std::slice::from_ref(&g), 31);
    assert_eq!(answer(&mut answers, 31).unwrap().0, 4);
    let heads = reader.heads().unwrap();
    assert_eq!(heads[0].head.size(), 5);
    let mut seqs = Vec::new();
    reader
        .scan_entries("t", 0, &mut |bytes| {
            seqs.push(crate::entry::Entry::decode(bytes)?.seq());
            Ok(())
        })
        .unwrap();
    assert_eq!(seqs, [0, 1, 2, 3, 4], "one log, no fork, no hole");
}

#[test]
fn two_stores_racing_on_one_topic_never_fork_it() {
    let cluster = Cluster::start("race");
    let alice = Identity::from_seed(&[7; 32]).unwrap();
    let mut a = sequencer(cluster.store(Duration::from_secs(5)));
    let mut b = sequencer(cluster.store(Duration::from_secs(5)));
    // Both decide seq 0 of topic t from the same (empty) head; both append at once.
    let decide = |s: &mut Sequencer<JetStreamStore>, body: &[u8]| {
        let mut log = Batch::new();
        let request = PublishRequest {
            op: op(&alice, 0, vec![], body),
            request_id: 0,
            reply: reply_channel(4).0,
            received_at: Instant::now(),
        };
        s.decide(std::slice::from_ref(&request), &mut log)
            .unwrap()
            .remove(0)
            .unwrap();
        log
    };
    let (log_a, log_b) = (decide(&mut a, b"from a"), decide(&mut b, b"from b"));
    let (store_a, store_b) = (&mut a.store, &mut b.store);
    let (ra, rb) = std::thread::scope(|scope| {
        let ta = scope.spawn(|| {
            store_a.append(Append {
                entries: log_a.entries(),
                snapshots: &[],
            })
        });
        let tb = scope.spawn(|| {
            store_b.append(Append {
                entries: log_b.entries(),
                snapshots: &[],
            })
        });
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let conflict = AppendError::Conflict { topic: "t".into() };
    assert!(
        (ra.is_ok() && rb == Err(conflict.clone())) || (rb.is_ok() && ra == Err(conflict)),
        "exactly one wins: {ra:?} {rb:?}"
    );
    let mut reader = cluster.store(Duration::from_secs(5));
    assert_eq!(reader.heads().unwrap()[0].head.size(), 1);
}

#[test]
fn without_quorum_appends_are_unavailable_and_resume_after_restart() {
    let mut cluster = Cluster::start("quorum");
    let (reply, mut answers) = reply_channel(1024);
    let alice = Identity::from_seed(&[7; 32]).unwrap();
    let mut s = sequencer(cluster.store(Duration::from_secs(2)));
    publish(&mut s, &reply, &[op(&alice, 0, vec![], b"a")], 0);
    assert_eq!(answer(&mut answers, 0).unwrap().0, 0);
    cluster.kill(1);
    cluster.kill(2);
    let b = op(&alice, 1, vec![], b"b");
    for request_id in 1..4 {
        publish(&mut s, &reply, std::slice::from_ref(&b), request_id);
        assert_eq!(
            answer(&mut answers, request_id).unwrap_err(),
            "UNAVAILABLE",
            "no receipt without quorum"
        );
    }
    cluster.run(1);
    cluster.run(2);
    // Wait for the condition (a receipt), retrying the same op as a client would.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut request_id = 10;
    let seq = loop {
        publish(&mut s, &reply, std::slice::from_ref(&b), request_id);
        match answer(&mut answers, request_id) {
            Ok((seq, _)) => break seq,
            Err(code) => {
                assert_eq!(code, "UNAVAILABLE");
                assert!(Instant::now() < deadline, "the cluster never came back");
            }
        }
        request_id += 1;
    };
    // One of the refused appends may have been committed once quorum returned: then this is
    // its retry. Either way the op is seq 1, exactly once.
    assert_eq!(seq, 1);
    let mut reader = cluster.store(Duration::from_secs(5));
    assert_eq!(reader.heads().unwrap()[0].head.size(), 2);
}

/// A store seeded with a prefix of a topic as a read mirror holds it, then caught up from the
/// stream, ends where a store that read the whole topic does; a damaged mirrored topic is read
/// from the stream instead.
#[test]
fn a_store_seeded_from_a_mirror_agrees_with_one_that_read_the_whole_stream() {
    use crate::log::sequencing::SequencedOps as _;
    let cluster = Cluster::start("seed");
    let (reply, mut answers) = reply_channel(1024);
    let alice = Identity::from_seed(&[7; 32]).unwrap();
    let ops: Vec<SignedOp> = (0..6)
        .map(|counter| op(&alice, counter, vec![], &[counter as u8]))
        .collect();
    let mut writer = sequencer(cluster.store(Duration::from_secs(5)));
    for (i, pair) in ops.chunks(2).enumerate() {
        publish(&mut writer, &reply, pair, 2 * i as u32);
        for id in 0..2 {
            answer(&mut answers, 2 * i as u32 + id).unwrap();
        }
    }
    // The topic's first message (entries 0 and 1), as a mirror that stopped there holds it.
    let store = cluster.store(Duration::from_secs(5));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let messages = runtime
        .block_on(store.log().read("t", 1, usize::MAX))
        .unwrap();
    assert_eq!(messages.len(), 3, "one message per batch");
    let (first_seq, entries) =
        crate::relay::jetstream::decode_message(&messages[0].payload).unwrap();
    assert_eq!((first_seq, entries.len()), (0, 2));
    let mirrored = |entries: Vec<Arc<[u8]>>| crate::relay::jetstream::mirror::MirroredTopic {
        topic: "t".into(),
        last_valid: messages[0].seq,
        last_seen: messages[0].seq,
        entries,
    };
    let mut full = cluster.store(Duration::from_secs(5));
    let expected = full.heads().unwrap();
    assert_eq!(expected[0].head.size(), 6);
    // A damaged one (its entries do not start at seq 0) is left out.
    for seed in [entries.clone(), entries[1..].to_vec()] {
        let mut seeded = cluster.store(Duration::from_secs(5));
        seeded.seed(mirrored(seed));
        let heads = seeded.heads().unwrap();
        assert_eq!(heads.len(), 1);
        assert_eq!(heads[0].head.size(), 6);
        assert_eq!(
            heads[0].head.frontier.root(),
            expected[0].head.frontier.root()
        );
        assert_eq!(heads[0].head.last_time_ms, expected[0].head.last_time_ms);
        for (counter, op) in ops.iter().enumerate() {
            let at = seeded
                .op_at_counter("t", op.author(), counter as u64)
                .unwrap();
            assert_eq!(
                at,
                full.op_at_counter("t", op.author(), counter as u64)
                    .unwrap()
            );
            assert_eq!(at.unwrap().op_id, op.id());
            assert!(seeded.is_sequenced(&op.id()).unwrap());
        }
        assert_eq!(
            seeded.root_at("t", 2).unwrap(),
            full.root_at("t", 2).unwrap()
        );
    }
}

/// A topic keeps only its newest entries in memory; a replica rebuilt from an older seq gets
/// the older ones back, the same bytes, from a read mirror that holds them, from the stream when
/// the mirror holds only part, and from the stream without a mirror.
#[test]
fn entries_older_than_the_in_memory_tail_are_read_back_from_the_mirror_or_the_stream() {
    use crate::relay::jetstream::mirror::{Mirror, StreamMessage};
    let cluster = Cluster::start("tail");
    let (reply, mut answers) = reply_channel(1024);
    let alice = Identity::from_seed(&[7; 32]).unwrap();
    // 2 KiB bodies: the 256 KiB tail holds about 128 of the 200 entries.
    let ops: Vec<SignedOp> = (0..200)
        .map(|counter| op(&alice, counter, vec![], &[counter as u8; 2048]))
        .collect();
    let mut writer = sequencer(cluster.store(Duration::from_secs(5)));
    for (i, batch) in ops.chunks(40).enumerate() {
        let first_id = 40 * i as u32;
        publish(&mut writer, &reply, batch, first_id);
        for id in 0..batch.len() as u32 {
            answer(&mut answers, first_id + id).unwrap();
        }
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let reader = cluster.store(Duration::from_secs(5));
    let messages = runtime
        .block_on(reader.log().read("t", 1, usize::MAX))
        .unwrap();
    let mut log: Vec<Vec<u8>> = Vec::new();
    for message in &messages {
        let (_, entries) = crate::relay::jetstream::decode_message(&message.payload).unwrap();
        log.extend(entries.iter().map(|e| e.to_vec()));
    }
    assert_eq!(log.len(), 200);
    let scan = |store: &JetStreamStore, from: u64| {
        let mut out = Vec::new();
        store
            .scan_entries("t", from, &mut |bytes| {
                out.push(bytes.to_vec());
                Ok(())
            })
            .unwrap();
        out
    };
    let stream_messages: Vec<StreamMessage> = messages
        .iter()
        .map(|m| StreamMessage {
            seq: m.seq,
            topic: "t".into(),
            predecessor: m.predecessor,
            payload: m.payload.clone(),
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("ants-tail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for mirrored in [None, Some(messages.len()), Some(2)] {
        let mut store = cluster.store(Duration::from_secs(5));
        if let Some(count) = mirrored {
            let path = dir.join(format!("mirror-{count}.sqlite3"));
            let relay = Identity::from_seed(&[1; 32]).unwrap().agent_id();
            let health = Arc::new(crate::relay::store::StorageHealth::new(dir.clone(), 0));
            let mut mirror = Mirror::rebuild(&path, &relay, health).unwrap();
            mirror.apply(&stream_messages[..count]).unwrap();
            store.read_older_entries_from(crate::relay::store::ReadPool::new(path));
        }
        assert_eq!(store.heads().unwrap()[0].head.size(), 200);
        for from in [0, 5, 150, 199, 200] {
            assert_eq!(
                scan(&store, from),
                log[from as usize..],
                "{mirrored:?} from {from}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
