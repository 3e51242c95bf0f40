//! Crash safety: the real `ants-relay` binary is SIGKILLed while clients publish at full speed;
//! after a restart every op whose receipt was received is present at its original sequence
//! number, and sequence numbers neither repeat nor skip.
#![cfg(all(feature = "relay", unix, not(target_arch = "wasm32")))]

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ants_coord::log::{merkle_root, SignedCheckpoint};
use ants_coord::wire::{Body, Frame};
use ants_coord::OpId;
use common::relay::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

/// Starts the binary over `data` on a free port; returns the child and its WebSocket URL (read
/// from the "relay listening" log line).
async fn spawn_relay(data: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ants-relay"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("ANTS_RELAY_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("relay listening") {
                let start = line.find("addr=").unwrap() + 5;
                let rest = &line[start..];
                let end = rest.find(' ').unwrap_or(rest.len());
                return rest[..end].to_owned();
            }
        }
        panic!("relay exited before listening");
    })
    .await
    .unwrap();
    // Keep draining the log so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("ws://{addr}/ws"))
}

type Receipts = Arc<Mutex<Vec<(String, u64, OpId)>>>;

/// Publishes as fast as the relay answers (up to 128 in flight) until the connection dies.
async fn publish_until_killed(url: String, seed: u8, topic: String, receipts: Receipts) {
    let me = identity(seed);
    let client = Client::connect_as(&url, &me).await;
    let (mut sink, mut stream) = client.into_inner().split();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(128));
    let ids: Arc<Mutex<HashMap<u32, OpId>>> = Arc::default();
    let reader = {
        let in_flight = in_flight.clone();
        let ids = ids.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Binary(bytes) = message else {
                    continue;
                };
                let frame = Frame::decode(&bytes).unwrap();
                if let Body::Receipt { seq, op_id, .. } = frame.body {
                    let sent = ids.lock().unwrap().remove(&frame.request_id);
                    assert_eq!(sent, Some(op_id));
                    receipts.lock().unwrap().push((topic.clone(), seq, op_id));
                    in_flight.add_permits(1);
                }
            }
            // The relay is gone: release the writer waiting for permits.
            in_flight.close();
        })
    };
    for counter in 0u64.. {
        let Ok(permit) = in_flight.acquire().await else {
            break;
        };
        permit.forget();
        let op = op(&me, &topic, counter, &counter.to_be_bytes());
        let request_id = counter as u32 + 1;
        ids.lock().unwrap().insert(request_id, op.id());
        let frame = Frame::new(
            request_id,
            Body::Publish {
                op: op.as_bytes().to_vec(),
            },
        );
        let sent = sink
            .send(Message::Binary(frame.encode().unwrap().into()))
            .await;
        if sent.is_err() || reader.is_finished() {
            break;
        }
    }
    let _ = reader.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_received_receipt_survives_sigkill() {
    let data = temp_dir("crash");
    for round in 0..2u8 {
        let (mut child, url) = spawn_relay(&data).await;
        let receipts: Receipts = Arc::default();
        let mut publishers = Vec::new();
        for i in 0..4u8 {
            // Two publishers share a topic, two have their own; a fresh author set per round.
            let topic = format!("crash-{}", i % 3);
            publishers.push(tokio::spawn(publish_until_killed(
                url.clone(),
                10 + round * 10 + i,
                topic,
                receipts.clone(),
            )));
        }
        // Let them run until a good number of receipts has arrived, then kill -9.
        tokio::time::timeout(PATIENCE, async {
            while receipts.lock().unwrap().len() < 2_000 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        for publisher in publishers {
            publisher.await.unwrap();
        }
        let receipts = receipts.lock().unwrap().clone();

        let (_child, url) = spawn_relay(&data).await;
        let mut reader = Client::connect(&url).await;
        let relay_id = reader.challenge.unwrap().0;
        let mut stored: HashMap<String, Vec<OpId>> = HashMap::new();
        for topic in ["crash-0", "crash-1", "crash-2"] {
            let head = reader.subscribe(topic, 0).await;
            let mut ids = Vec::new();
            let mut leaves = Vec::new();
            for seq in 0..head {
                let entry = reader.next_entry().await;
                assert_eq!(entry.seq(), seq, "sequence numbers neither repeat nor skip");
                ids.push(entry.op().id());
                leaves.push(entry.as_bytes().to_vec());
            }
            // The log verifies: the signed checkpoint's root is the Merkle root of the entries.
            reader
                .request(Body::GetCheckpoint {
                    topic: topic.into(),
                })
                .await;
            let Body::Checkpoint { checkpoint } = reader.recv().await.body else {
                panic!("no checkpoint");
            };
            let checkpoint = SignedCheckpoint::decode(&checkpoint, &relay_id).unwrap();
            let leaves: Vec<&[u8]> = leaves.iter().map(Vec::as_slice).collect();
            assert_eq!(checkpoint.checkpoint().tree_size, head);
            assert_eq!(checkpoint.checkpoint().root, merkle_root(&leaves));
            let unique: HashSet<_> = ids.iter().collect();
            assert_eq!(unique.len(), ids.len(), "an op stored twice in {topic}");
            stored.insert(topic.to_owned(), ids);
        }
        for (topic, seq, op_id) in &receipts {
            assert_eq!(
                stored[topic].get(*seq as usize),
                Some(op_id),
                "round {round}: receipted op missing at {topic}#{seq}"
            );
        }
        assert!(receipts.len() >= 2_000);
        drop(reader);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully_and_keeps_the_key_private() {
    use std::os::unix::fs::PermissionsExt;
    let data = temp_dir("sigterm");
    let (mut child, url) = spawn_relay(&data).await;
    let alice = identity(1);
    let mut client = Client::connect_as(&url, &alice).await;
    assert_eq!(client.publish_ok(&op(&alice, "t", 0, b"kept")).await, 0);
    let mode = std::fs::metadata(data.join("relay.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the relay key is private");
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    // The connection is closed with "going away", and the process exits cleanly.
    assert_eq!(
        client.try_recv().await.unwrap_err().as_deref(),
        Some("SHUTTING_DOWN")
    );
    let exit = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let (_child, url) = spawn_relay(&data).await;
    let mut reader = Client::connect(&url).await;
    assert_eq!(reader.subscribe("t", 0).await, 1);
}
