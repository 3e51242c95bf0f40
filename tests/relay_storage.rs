//! Storage faults the relay must surface: a full disk (publishes refused, `/healthz` and
//! `/metrics` say why, publishing resumes once the reserve is free again, also after a restart
//! on the full disk), and a database whose subtree hashes disagree with its entries (the relay
//! refuses to start, naming the topic).
#![cfg(all(feature = "relay", unix, not(target_arch = "wasm32")))]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use ants_coord::relay::{self, Config};
use ants_coord::wire::Body;
use common::relay::*;

const MIB: u64 = 1024 * 1024;

/// A small tmpfs mounted over a fresh directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(name: &str, size_mib: u64) -> Tmpfs {
        let dir = temp_dir(name);
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `path` until the file system is full; returns its length.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5a; 64 * 1024];
    let mut len = 0u64;
    while file.write_all(&chunk).is_ok() {
        len += chunk.len() as u64;
    }
    let _ = file.sync_all();
    std::fs::metadata(path).unwrap().len().max(len)
}

/// Shrinks the filler so that about `free` bytes more are free.
fn free_up(path: &Path, free: u64) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len.saturating_sub(free)).unwrap();
}

async fn health(relay: &relay::RelayHandle) -> String {
    http_get_any(relay.local_addr(), "/healthz").await
}

fn with_reserve(config: &mut Config) {
    config.limits.storage_reserve_mib = 4;
}

#[tokio::test]
async fn a_full_disk_refuses_publishes_says_so_and_recovers_once_the_reserve_is_free() {
    if Command::new("id").arg("-u").output().ok().map(|o| o.stdout) != Some(b"0\n".to_vec()) {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let fs = Tmpfs::mount("storage-full", 32);
    let data = fs.0.join("data");
    let filler = fs.0.join("filler");
    let alice = identity(7);
    let ops: Vec<_> = (0..4)
        .map(|c| op(&alice, "full", c, &[c as u8; 2_000]))
        .collect();

    let relay = start_relay_with(data.clone(), with_reserve).await;
    let mut client = Client::connect_as(&relay.url(), &alice).await;
    assert_eq!(client.publish_ok(&ops[0]).await, 0);
    assert!(health(&relay).await.starts_with("HTTP/1.1 200"));

    // Full: the publish is refused, and the relay says why.
    fill(&filler);
    let refused = client.publish(&ops[1]).await;
    assert_eq!(code_of(&refused), "UNAVAILABLE");
    let said = health(&relay).await;
    assert!(said.starts_with("HTTP/1.1 503"), "{said}");
    assert!(said.contains("storage"), "{said}");
    let metrics = http_get(relay.local_addr(), "/metrics").await;
    assert!(
        metrics.contains("ants_relay_storage_degraded 1"),
        "{metrics}"
    );

    // Freed: the same op is taken at the next seq.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(client.publish_ok(&ops[1]).await, 1);
    assert!(health(&relay).await.starts_with("HTTP/1.1 200"));
    let metrics = http_get(relay.local_addr(), "/metrics").await;
    assert!(
        metrics.contains("ants_relay_storage_degraded 0"),
        "{metrics}"
    );

    // Full again, under the reserve with a little room left, across a restart.
    fill(&filler);
    free_up(&filler, MIB);
    client.close().await;
    relay.shutdown().await.unwrap();
    let relay = start_relay_with(data.clone(), with_reserve).await;
    let mut client = Client::connect_as(&relay.url(), &alice).await;
    let refused = client.publish(&ops[2]).await;
    assert_eq!(code_of(&refused), "UNAVAILABLE");
    assert!(health(&relay).await.starts_with("HTTP/1.1 503"));

    // Freeing the reserve and a few MiB is enough: the checkpoint cannot eat it.
    free_up(&filler, 4 * MIB + 3 * MIB);
    assert_eq!(client.publish_ok(&ops[2]).await, 2);
    assert_eq!(client.publish_ok(&ops[3]).await, 3);
    let said = health(&relay).await;
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
    client.close().await;
    relay.shutdown().await.unwrap();
}

/// The `node_hashes` key of the leaf at `seq`: its last leaf times 64, plus level 0.
fn leaf_node(seq: i64) -> i64 {
    seq * 64
}

#[tokio::test]
async fn a_tree_that_disagrees_with_its_entries_stops_the_relay_naming_the_topic() {
    let data = temp_dir("storage-damaged");
    let alice = identity(7);
    let relay = start_relay(data.clone()).await;
    let mut client = Client::connect_as(&relay.url(), &alice).await;
    for counter in 0..6 {
        client
            .publish_ok(&op(&alice, "damaged/t", counter, b"x"))
            .await;
        client.publish_ok(&op(&alice, "sound", counter, b"y")).await;
    }
    client.close().await;
    relay.shutdown().await.unwrap();
    let db = data.join(relay::store::DB_FILE);
    let sql = |statement: &str| {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute(statement, []).unwrap();
    };
    let topic = "(SELECT id FROM topics WHERE name = 'damaged/t')";
    let start = |data: PathBuf| async move { relay::start(Config::ephemeral(data)).await };

    // An altered leaf hash.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let leaf: Vec<u8> = conn
        .query_row(
            &format!("SELECT hash FROM node_hashes WHERE topic = {topic} AND node = ?1"),
            [leaf_node(5)],
            |row| row.get(0),
        )
        .unwrap();
    drop(conn);
    sql(&format!(
        "UPDATE node_hashes SET hash = zeroblob(32) WHERE topic = {topic} AND node = {}",
        leaf_node(5)
    ));
    let error = start(data.clone()).await.unwrap_err();
    assert_eq!(error.code(), "UNAVAILABLE");
    assert!(error.to_string().contains("\"damaged/t\""), "{error}");

    // Put back, the relay starts and the topic takes publishes.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        &format!("UPDATE node_hashes SET hash = ?1 WHERE topic = {topic} AND node = ?2"),
        rusqlite::params![leaf, leaf_node(5)],
    )
    .unwrap();
    drop(conn);
    let relay = start(data.clone()).await.unwrap();
    let mut client = Client::connect_as(&relay.url(), &alice).await;
    let frame = client.publish(&op(&alice, "damaged/t", 6, b"x")).await;
    assert!(
        matches!(frame.body, Body::Receipt { seq: 6, .. }),
        "{frame:?}"
    );
    client.close().await;
    relay.shutdown().await.unwrap();

    // The last entry deleted: its hashes stay in the way of the next append.
    sql(&format!(
        "DELETE FROM entries WHERE topic = {topic} AND seq = 6"
    ));
    let error = start(data.clone()).await.unwrap_err();
    assert!(error.to_string().contains("\"damaged/t\""), "{error}");
    assert!(error.to_string().contains("last stored subtree"), "{error}");
    std::fs::remove_dir_all(&data).unwrap();
}
