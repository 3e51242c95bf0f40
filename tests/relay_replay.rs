//! History replay under a crowd (issue 22 items 3 and 4, scaled to seconds): many subscribers
//! replaying a topic from seq 0 at once each get every entry in order, the relay holds at most
//! `[limits] storage_readers` read connections to its database while they do and after, and a
//! publisher and a live subscriber of another topic are served meanwhile. No timing is
//! asserted: the relay's figures under such a flood are `ants-load flood`'s (BENCHMARKS.md).
#![cfg(all(feature = "relay", target_os = "linux", not(target_arch = "wasm32")))]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ants_coord::wire::{Body, Frame};
use common::relay::*;

/// Entries of the replayed topic: far more than the relay caches for it.
const ENTRIES: u64 = 1_000;
/// Subscribers replaying it from seq 0 at once.
const SUBSCRIBERS: usize = 200;
/// Entries the relay caches per topic in this test, so replay reads storage.
const CACHED: usize = 64;
/// The relay's storage readers in this test.
const READERS: usize = 2;
/// Ops the honest publisher publishes to another topic during the replay.
const LIVE_OPS: u64 = 20;

/// Open file descriptors of this process (the relay runs in it) to SQLite databases in `data`,
/// the Yjs rooms' excepted: the op store's (or a cluster frontend's mirror's) connections.
fn database_handles(data: &Path) -> usize {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| {
            target.starts_with(data)
                && target
                    .file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.ends_with(".sqlite3") && !name.starts_with("yjs"))
        })
        .count()
}

/// Publishes `count` ops of `topic` from counter 0, pipelined a window at a time; every one
/// must be receipted.
async fn fill(client: &mut Client, author: &ants_coord::Identity, topic: &str, count: u64) {
    let body = vec![7u8; 2_048];
    let mut counter = 0;
    while counter < count {
        let window = (count - counter).min(256);
        for c in counter..counter + window {
            let frame = Frame::new(
                c as u32 + 1_000,
                Body::Publish {
                    op: op(author, topic, c, &body).as_bytes().to_vec(),
                },
            );
            client.send_frame(&frame).await;
        }
        for _ in 0..window {
            let answer = client.recv().await;
            assert!(
                matches!(answer.body, Body::Receipt { .. }),
                "expected a receipt, got {answer:?}"
            );
        }
        counter += window;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_replaying_from_zero_gets_everything_through_a_bounded_number_of_readers() {
    let data = temp_dir("replay-crowd");
    let relay = start_relay_with(data.clone(), |config| {
        config.limits.cache_per_topic = CACHED;
        config.limits.storage_readers = READERS;
    })
    .await;
    let url = relay.url();
    let alice = identity(1);
    let mut publisher = Client::connect_as(&url, &alice).await;
    fill(&mut publisher, &alice, "history", ENTRIES).await;

    // The store's own connections (its writer and the like), before any read.
    let baseline = database_handles(&data);
    let bound = baseline + READERS;
    let most = Arc::new(AtomicUsize::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let (data, most, done) = (data.clone(), most.clone(), done.clone());
        move || {
            while !done.load(Ordering::Acquire) {
                most.fetch_max(database_handles(&data), Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });

    let mut live_reader = Client::connect(&url).await;
    assert_eq!(live_reader.subscribe("live", 0).await, 0);
    let mut crowd = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut client = Client::connect(&url).await;
        assert_eq!(client.subscribe("history", 0).await, ENTRIES);
        crowd.push(tokio::spawn(async move {
            for seq in 0..ENTRIES {
                assert_eq!(client.next_entry().await.seq(), seq, "in order, no gap");
            }
            client.close().await;
        }));
    }
    // While the crowd replays: an honest publisher's ops are receipted, and a live
    // subscriber of their topic gets them.
    for counter in 0..LIVE_OPS {
        let seq = publisher
            .publish_ok(&op(&alice, "live", counter, b"now"))
            .await;
        assert_eq!(seq, counter);
        assert_eq!(live_reader.next_entry().await.seq(), seq);
    }
    for subscriber in crowd {
        subscriber.await.unwrap();
    }
    done.store(true, Ordering::Release);
    sampler.join().unwrap();
    let during = most.load(Ordering::Acquire);
    let after = database_handles(&data);
    assert!(
        during <= bound,
        "{during} handles to the database during the replay, {baseline} before: at most \
         {READERS} readers"
    );
    assert!(
        after <= bound,
        "{after} handles to the database after the replay, {baseline} before"
    );
    // The pool's own count agrees, and nothing is left waiting.
    let metrics = http_get(relay.local_addr(), "/metrics").await;
    let gauge = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(gauge("ants_relay_storage_readers_open") <= READERS as u64);
    assert_eq!(gauge("ants_relay_storage_reads_waiting"), 0);
    assert!(gauge("ants_relay_storage_reads_total") >= SUBSCRIBERS as u64);
    relay.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_topic_gives_back_its_cached_entries_and_replays_them_from_storage() {
    // Issue 22 item 2: a burst of entries used to stay cached (and resident) in an idle relay.
    let data = temp_dir("replay-idle");
    let relay = start_relay_with(data.clone(), |config| {
        config.limits.idle_release_s = 1;
    })
    .await;
    let url = relay.url();
    let alice = identity(1);
    let mut publisher = Client::connect_as(&url, &alice).await;
    let mut live = Client::connect(&url).await;
    assert_eq!(live.subscribe("quiet", 0).await, 0);
    fill(&mut publisher, &alice, "quiet", 100).await;
    for seq in 0..100 {
        assert_eq!(live.next_entry().await.seq(), seq);
    }
    let cached = || {
        relay
            .metrics()
            .lines()
            .find_map(|line| {
                line.strip_prefix("ants_relay_cache_bytes ")?
                    .parse::<u64>()
                    .ok()
            })
            .expect("ants_relay_cache_bytes")
    };
    // Waits for the relay to find the topic idle; no time bound is asserted.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while cached() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle topic still caches {} bytes",
            cached()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Everything is still served: a new subscriber from seq 0 (read from storage), and new
    // entries to both subscribers.
    let mut late = Client::connect(&url).await;
    assert_eq!(late.subscribe("quiet", 0).await, 100);
    for seq in 0..100 {
        assert_eq!(late.next_entry().await.seq(), seq, "in order, no gap");
    }
    let seq = publisher
        .publish_ok(&op(&alice, "quiet", 100, b"again"))
        .await;
    assert_eq!(seq, 100);
    assert_eq!(live.next_entry().await.seq(), 100);
    assert_eq!(late.next_entry().await.seq(), 100);
    assert!(cached() > 0, "the new entry is cached again");
    relay.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&data);
}
