//! The cluster's fault test (issue 23 §4): two real `ants-relay` frontends (one shared key) on
//! a 3-node NATS JetStream cluster, under continuous load from 16 publishers over 4 topics,
//! each topic's publishers on both frontends (so both sequence every topic at once). Under that
//! load the stream leader's NATS server is SIGKILLed and restarted, then one frontend is
//! SIGKILLed and restarted. Each publisher retries a refused or unanswered op with the same
//! signed bytes on the other frontend (on the same one while the other is down), and goes back
//! to its own frontend for its next op once that is up. Afterwards: every receipted op is in the log at its receipted seq, seqs are
//! contiguous, no op appears twice, nothing unreceipted is in the log, both frontends serve the
//! same bytes, and every signed receipt and checkpoint seen during the run is consistent with
//! the final log.
//!
//! `cargo test --features nats --test cluster_faults` (needs `nats-server`: scripts/setup.sh).
#![cfg(all(feature = "nats", unix, not(target_arch = "wasm32")))]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ants_coord::log::{MerkleLog, SignedCheckpoint, SignedReceipt};
use ants_coord::relay::jetstream::{JetStreamConfig, JetStreamLog};
use ants_coord::wire::{Body, Frame};
use ants_coord::{AgentId, Entry, Identity, OpId};
use common::cluster::{read_log, wait_for_health, CLUSTER_WAIT, SHARED_KEY};
use common::frontend_process::FrontendProcess;
use common::nats::NatsCluster;
use common::relay::{identity, op, temp_dir, Client};

const PUBLISHERS: usize = 16;
const TOPICS: usize = 4;
/// Each publisher's pace: at most one new op this often (16 publishers: at most 80 ops/s).
const PACE: Duration = Duration::from_millis(200);
/// The load's bound: no publisher signs more ops than this, whatever the scenario's length.
const MAX_OPS_PER_PUBLISHER: u64 = 400;
/// How long a publisher waits for an answer before it counts the op unanswered, drops the
/// connection and retries the same bytes on the other frontend.
const ANSWER_WAIT: Duration = Duration::from_secs(15);
/// The hang guard of a phase, and of one op's retries: generous, since a frontend may stall for
/// tens of seconds after a NATS server's loss (its reloads time out until the cluster settles).
const FAULT_WAIT: Duration = Duration::from_secs(300);
/// Receipts each phase waits for before it goes on: the load visibly flows (or resumed).
const PHASE_RECEIPTS: u64 = 48;

fn topic_of(publisher: usize) -> String {
    format!("faults-{}", publisher % TOPICS)
}

/// A receipt a publisher received: what it published and the relay's signed answer.
struct Receipted {
    topic: String,
    author: usize,
    counter: u64,
    op_id: OpId,
    seq: u64,
    receipt: Vec<u8>,
}

/// What the publishers and the test share while the load runs.
#[derive(Default)]
struct Load {
    /// The frontends' current WebSocket URLs (`None` while one is down).
    doors: RwLock<[Option<String>; 2]>,
    stop: AtomicBool,
    /// Receipts received from each frontend.
    via: [AtomicU64; 2],
    /// Receipts received by each publisher.
    by_publisher: [AtomicU64; PUBLISHERS],
    /// Every signed checkpoint fetched during the run.
    checkpoints: Mutex<Vec<Vec<u8>>>,
    refusals: AtomicU64,
    failovers: AtomicU64,
    /// When the load started (for the phases' progress lines).
    started: std::sync::OnceLock<Instant>,
}

impl Load {
    fn door(&self, i: usize) -> Option<String> {
        self.doors.read().unwrap()[i].clone()
    }

    fn set_door(&self, i: usize, url: Option<String>) {
        self.doors.write().unwrap()[i] = url;
    }

    fn per_publisher(&self) -> Vec<u64> {
        self.by_publisher
            .iter()
            .map(|n| n.load(Ordering::SeqCst))
            .collect()
    }

    /// Waits (within [`FAULT_WAIT`]) until `holds` is true of the load.
    async fn wait_until(&self, what: &str, holds: impl Fn(&Load) -> bool) {
        let started = Instant::now();
        while !holds(self) {
            assert!(
                started.elapsed() < FAULT_WAIT,
                "{what}: not within {FAULT_WAIT:?} (receipts via A, B: {:?}, per publisher: {:?})",
                self.via,
                self.per_publisher()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "{:>6.1} s  {what}: receipts via A, B {:?}, {} refusals, {} failovers",
            self.started
                .get_or_init(Instant::now)
                .elapsed()
                .as_secs_f64(),
            self.via,
            self.refusals.load(Ordering::SeqCst),
            self.failovers.load(Ordering::SeqCst)
        );
    }

    /// Waits until every publisher received a receipt after `before` (a [`Load::per_publisher`])
    /// and the load as a whole got [`PHASE_RECEIPTS`] more.
    async fn wait_for_every_publisher(&self, what: &str, before: &[u64]) {
        let total: u64 = before.iter().sum();
        self.wait_until(what, |load| {
            let now = load.per_publisher();
            now.iter().zip(before).all(|(n, b)| n > b)
                && now.iter().sum::<u64>() >= total + PHASE_RECEIPTS
        })
        .await;
    }
}

/// Connects as `author` to frontend `door`; `None` while it is down or does not answer.
async fn connect_to(load: &Load, door: usize, author: &Identity) -> Option<Client> {
    let url = load.door(door)?;
    match tokio::time::timeout(ANSWER_WAIT, Client::try_connect_as(&url, author)).await {
        Ok(Ok(client)) => Some(client),
        _ => None,
    }
}

/// Connects as `author` to frontend `door`, or to the other one when `door` is down or does
/// not answer; `None` when neither does right now.
async fn connect(load: &Load, door: usize, author: &Identity) -> Option<(usize, Client)> {
    for door in [door, 1 - door] {
        if let Some(client) = connect_to(load, door, author).await {
            return Some((door, client));
        }
    }
    None
}

/// One publisher: a new op every [`PACE`] until the load stops; each op is retried with the
/// same bytes until it has a receipt, on the other frontend when this one refused it
/// `UNAVAILABLE`, did not answer or went away (on the same one while the other is down). Its
/// home frontend is taken back for the next op when it is up.
async fn publish_until_stopped(load: Arc<Load>, me: usize) -> Vec<Receipted> {
    let author = identity(40 + me as u8);
    let topic = topic_of(me);
    // Every topic has publishers on both frontends: both sequence it at once.
    let home = (me / TOPICS) % 2;
    let mut connection: Option<(usize, Client)> = None;
    let mut receipted = Vec::new();
    let mut pace = tokio::time::interval(PACE);
    // After a stall, go on at the pace: no burst of the ticks missed.
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for counter in 0..MAX_OPS_PER_PUBLISHER {
        pace.tick().await;
        if load.stop.load(Ordering::SeqCst) {
            break;
        }
        let op = op(
            &author,
            &topic,
            counter,
            format!("{me}/{counter}").as_bytes(),
        );
        if !matches!(connection, Some((door, _)) if door == home) {
            if let Some(client) = connect_to(&load, home, &author).await {
                connection = Some((home, client));
            }
        }
        let started = Instant::now();
        let mut door = connection.as_ref().map_or(home, |c| c.0);
        loop {
            assert!(
                started.elapsed() < FAULT_WAIT,
                "publisher {me}: op {counter} without a receipt for {FAULT_WAIT:?}"
            );
            if connection.is_none() {
                connection = connect(&load, door, &author).await;
                if connection.is_none() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
            let (at, client) = connection.as_mut().unwrap();
            door = *at;
            let answer = tokio::time::timeout(ANSWER_WAIT, client.try_publish(&op)).await;
            match answer {
                Ok(Some(Frame {
                    body:
                        Body::Receipt {
                            seq,
                            op_id,
                            receipt,
                        },
                    ..
                })) => {
                    assert_eq!(op_id, op.id(), "publisher {me}: a receipt for another op");
                    receipted.push(Receipted {
                        topic: topic.clone(),
                        author: me,
                        counter,
                        op_id,
                        seq,
                        receipt,
                    });
                    load.via[door].fetch_add(1, Ordering::SeqCst);
                    load.by_publisher[me].fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Ok(Some(Frame {
                    body: Body::Error { code, message },
                    ..
                })) => {
                    assert_eq!(code, "UNAVAILABLE", "publisher {me}: {message}");
                    load.refusals.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    // Try the other frontend: this one may be cut off from the cluster.
                    if let Some(client) = connect_to(&load, 1 - door, &author).await {
                        connection = Some((1 - door, client));
                    }
                }
                Ok(Some(other)) => panic!("publisher {me}: unexpected answer {other:?}"),
                Ok(None) | Err(_) => {
                    load.failovers.fetch_add(1, Ordering::SeqCst);
                    connection = None;
                    door = 1 - door;
                }
            }
        }
    }
    if let Some((_, client)) = connection {
        client.close().await;
    }
    receipted
}

/// Fetches every topic's signed checkpoint from each running frontend, over and over, until
/// the load stops: the heads a gossiping client would have seen during the run.
async fn watch_checkpoints(load: Arc<Load>) {
    let watcher = identity(99);
    while !load.stop.load(Ordering::SeqCst) {
        for door in 0..2 {
            let Some((_, mut client)) = connect(&load, door, &watcher).await else {
                continue;
            };
            for topic in 0..TOPICS {
                let request = Frame::new(
                    topic as u32 + 100,
                    Body::GetCheckpoint {
                        topic: format!("faults-{topic}"),
                    },
                );
                if client
                    .try_send_raw(request.encode().unwrap())
                    .await
                    .is_err()
                {
                    break;
                }
                match tokio::time::timeout(ANSWER_WAIT, client.try_recv()).await {
                    Ok(Ok(Frame {
                        body: Body::Checkpoint { checkpoint },
                        ..
                    })) => load.checkpoints.lock().unwrap().push(checkpoint),
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) | Err(_) => break,
                }
            }
            client.close().await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The NATS server that leads the log stream `ANTS_LOG` (the one whose loss hurts most).
async fn stream_leader(nats: &NatsCluster) -> usize {
    let config = JetStreamConfig::from_url(&nats.url()).unwrap();
    let log = JetStreamLog::connect(config).await.unwrap();
    let mut stream = log.context().get_stream("ANTS_LOG").await.unwrap();
    let info = stream.info().await.unwrap();
    nats.index_of(&info.cluster.as_ref().unwrap().leader.clone().unwrap())
}

/// Polls frontend `url`'s signed checkpoint of `topic` until it covers `size` entries; returns
/// it (signature checked).
async fn final_checkpoint(url: &str, relay: &AgentId, topic: &str, size: u64) -> SignedCheckpoint {
    let started = Instant::now();
    let mut client = Client::connect(url).await;
    loop {
        client
            .request(Body::GetCheckpoint {
                topic: topic.into(),
            })
            .await;
        let Body::Checkpoint { checkpoint } = client.recv().await.body else {
            panic!("no checkpoint of {topic}");
        };
        let signed = SignedCheckpoint::decode(&checkpoint, relay).unwrap();
        if signed.checkpoint().tree_size >= size {
            client.close().await;
            return signed;
        }
        assert!(
            started.elapsed() < CLUSTER_WAIT,
            "{url} never reached {size} in {topic}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks one topic's final log against everything the run saw of it.
async fn check_topic(
    topic: &str,
    urls: [&str; 2],
    relay: &AgentId,
    receipts: &[&Receipted],
    checkpoints: &[SignedCheckpoint],
) {
    let size = receipts.len() as u64;
    let log = read_log(urls[0], topic, size).await;
    assert_eq!(
        read_log(urls[1], topic, size).await,
        log,
        "{topic}: the frontends differ"
    );
    // Contiguous seqs, no op twice, every receipted op at its receipted seq.
    let mut seen = HashSet::new();
    for (seq, bytes) in log.iter().enumerate() {
        let entry = Entry::decode(bytes).unwrap();
        assert_eq!(entry.seq(), seq as u64);
        assert!(seen.insert(entry.op().id()), "{topic}: op twice, at {seq}");
    }
    for r in receipts {
        let entry = Entry::decode(&log[r.seq as usize]).unwrap();
        assert_eq!(
            entry.op().id(),
            r.op_id,
            "{topic}: receipted op not at {}",
            r.seq
        );
    }
    // Nothing unreceipted: every publisher finished its last op, so the log is exactly the
    // receipted ops, and both frontends sign that head.
    let mut roots = MerkleLog::new();
    let mut root_at = vec![roots.root()];
    for bytes in &log {
        roots.append(bytes).unwrap();
        root_at.push(roots.root());
    }
    for url in urls {
        let head = final_checkpoint(url, relay, topic, size).await;
        assert_eq!(
            head.checkpoint().tree_size,
            size,
            "{topic}: unreceipted entries"
        );
        assert_eq!(
            head.checkpoint().root,
            root_at[log.len()],
            "{topic} on {url}"
        );
    }
    // Every signed head seen during the run is a prefix of the final log.
    for head in checkpoints.iter().map(SignedCheckpoint::checkpoint) {
        assert!(
            head.tree_size <= size,
            "{topic}: a head beyond the final log"
        );
        assert_eq!(
            head.root, root_at[head.tree_size as usize],
            "{topic}: forked head"
        );
    }
    // Every receipt: signed by the relay, of this op at this seq, its head a prefix of the
    // final log, and the entry included under the final root (proofs from both frontends).
    let mut prover = [
        Client::connect(urls[0]).await,
        Client::connect(urls[1]).await,
    ];
    for (i, r) in receipts.iter().enumerate() {
        let signed = SignedReceipt::decode(&r.receipt, relay).unwrap();
        let receipt = signed.receipt();
        assert_eq!((receipt.topic.as_str(), receipt.seq), (topic, r.seq));
        assert_eq!(receipt.op_id, r.op_id);
        assert!(receipt.seq < receipt.tree_size && receipt.tree_size <= size);
        assert_eq!(
            receipt.root, root_at[receipt.tree_size as usize],
            "{topic}: forked receipt"
        );
        let client = &mut prover[i % 2];
        client
            .inclusion_proof(topic, r.seq, size)
            .await
            .verify(
                &ants_coord::log::leaf_hash(&log[r.seq as usize]),
                &root_at[log.len()],
            )
            .unwrap();
    }
    for client in prover {
        client.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_nats_server_and_frontend_under_load_lose_and_fork_nothing() {
    let mut nats = NatsCluster::start("faults").await;
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_ants-relay"));
    let mut frontends = [
        FrontendProcess::start(binary.clone(), nats.url(), temp_dir("faults-a")).await,
        FrontendProcess::start(binary, nats.url(), temp_dir("faults-b")).await,
    ];
    let relay = Identity::from_seed(&hex::decode(SHARED_KEY).unwrap())
        .unwrap()
        .agent_id();
    let load = Arc::new(Load::default());
    load.started.get_or_init(Instant::now);
    load.set_door(0, frontends[0].url());
    load.set_door(1, frontends[1].url());
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|me| tokio::spawn(publish_until_stopped(load.clone(), me)))
        .collect();
    let watcher = tokio::spawn(watch_checkpoints(load.clone()));
    load.wait_for_every_publisher("load flowing", &[0; PUBLISHERS])
        .await;

    // SIGKILL the log stream's leader: a new one is elected, receipts go on; then restart it.
    let leader = stream_leader(&nats).await;
    nats.kill(leader);
    let before = load.per_publisher();
    load.wait_for_every_publisher("receipts with a NATS server down", &before)
        .await;
    nats.restart(leader);
    for i in 0..3 {
        nats.wait_healthy(i).await;
    }
    let before = load.per_publisher();
    load.wait_for_every_publisher("receipts after the NATS restart", &before)
        .await;

    // SIGKILL frontend B: its publishers fail over to A by themselves; then restart B.
    load.set_door(1, None);
    frontends[1].kill().await;
    let before = load.per_publisher();
    load.wait_for_every_publisher("receipts with frontend B down", &before)
        .await;
    frontends[1].restart().await;
    wait_for_health(frontends[1].addr().unwrap(), 200).await;
    let via_b = load.via[1].load(Ordering::SeqCst);
    load.set_door(1, frontends[1].url());
    let before = load.per_publisher();
    load.wait_for_every_publisher("receipts after the frontend restart", &before)
        .await;
    load.wait_until("receipts from the restarted frontend", |load| {
        load.via[1].load(Ordering::SeqCst) >= via_b + PHASE_RECEIPTS
    })
    .await;

    // Stop the load (each publisher finishes its op in flight) and check everything.
    load.stop.store(true, Ordering::SeqCst);
    let mut receipts = Vec::new();
    for publisher in publishers {
        receipts.extend(publisher.await.unwrap());
    }
    watcher.await.unwrap();
    let mut by_author: HashMap<usize, Vec<&Receipted>> = HashMap::new();
    for r in &receipts {
        by_author.entry(r.author).or_default().push(r);
    }
    for (author, theirs) in &by_author {
        // Each author's counters 0.. all receipted, in its own order in the log.
        for (counter, r) in theirs.iter().enumerate() {
            assert_eq!(
                r.counter, counter as u64,
                "publisher {author}: a counter skipped"
            );
        }
        for pair in theirs.windows(2) {
            assert!(
                pair[0].seq < pair[1].seq,
                "publisher {author}: out of order"
            );
        }
    }
    let checkpoints: Vec<SignedCheckpoint> = load
        .checkpoints
        .lock()
        .unwrap()
        .iter()
        .map(|bytes| SignedCheckpoint::decode(bytes, &relay).unwrap())
        .collect();
    let urls = [frontends[0].url().unwrap(), frontends[1].url().unwrap()];
    for topic in (0..TOPICS).map(topic_of) {
        let theirs: Vec<&Receipted> = receipts.iter().filter(|r| r.topic == topic).collect();
        let heads: Vec<SignedCheckpoint> = checkpoints
            .iter()
            .filter(|c| c.checkpoint().topic == topic)
            .cloned()
            .collect();
        check_topic(&topic, [&urls[0], &urls[1]], &relay, &theirs, &heads).await;
    }
    println!(
        "{} ops receipted ({:?} via A, B), {} checkpoints checked, {} refusals retried, {} failovers",
        receipts.len(),
        load.via,
        checkpoints.len(),
        load.refusals.load(Ordering::SeqCst),
        load.failovers.load(Ordering::SeqCst)
    );
    for frontend in &mut frontends {
        frontend.kill().await;
        let _ = std::fs::remove_dir_all(frontend.data());
    }
}
