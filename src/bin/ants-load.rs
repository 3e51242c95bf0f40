//! `ants-load`: a bounded, loopback-only load generator for the relay.
//!
//! It starts the sibling `ants-relay` binary on 127.0.0.1 over a fresh data directory, drives
//! it over WebSockets and prints one line of results per scenario:
//!
//! ```text
//! cargo build --release --features relay --bins
//! target/release/ants-load throughput --publishers 64 --subscribers 10 --seconds 10
//! target/release/ants-load latency --rate 5000 --subscribers 100 --seconds 10 --runs 5
//! target/release/ants-load idle --connections 1000
//! target/release/ants-load recovery --entries 1000000
//! target/release/ants-load flood --consumers 500 --idle 4500 --seconds 10
//! ```
//!
//! Every scenario is bounded in time (`--seconds`, at most 300) and talks only to the relay it
//! started on the loopback interface, or, with `--url` (repeatable: frontends of one cluster
//! relay, `scripts/cluster.sh`), to relays already running: `throughput` and `latency` then
//! spread their publishers and subscribers over the URLs in turn, and `latency` leaves out
//! the relay's own figures (it reads them from the one process it started).
//!
//! ```text
//! target/release/ants-load --url ws://127.0.0.1:8080/ws --url ws://127.0.0.1:8081/ws \
//!     throughput --publishers 64 --topics 64 --seconds 10
//! ```
//!
//! The load generator shares the machine with the relay it measures, so it does ahead of time
//! what real clients would do on machines of their own: `throughput` and `latency` sign every
//! op before the measured phase. `latency` clocks each publish from right before its frame is
//! sent to its receipt (publish→receipt) and to each subscriber's read of it
//! (publish→subscriber). Beside them it prints what the relay measured itself, from its
//! `/metrics` and `/proc/<pid>/io`: its publish→receipt histogram, its mean group commit and
//! the bytes it wrote to storage, and that figure's ratio to the entry bytes it stored
//! (`bytes written / bytes stored = N×`: the store's write amplification, issue 23 §5).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ants_coord::wire::{sign_hello, Body, Frame};
use ants_coord::{Identity, OpDraft, SignedOp};
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[path = "ants-load/flood.rs"]
mod flood;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Failure = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(name = "ants-load", about = "Loopback load generator for ants-relay")]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
    /// Data directory for the relay (a fresh temporary one by default; it is emptied first).
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    /// Longest run of the measured phase, in seconds (at most 300).
    #[arg(long, global = true, default_value_t = 10)]
    seconds: u64,
    /// A running relay's WebSocket URL (`ws://…/ws`) to load instead of starting one; repeat
    /// it for several frontends of one relay (`throughput` and `latency` only).
    #[arg(long = "url", global = true)]
    urls: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Sustained durable throughput: publishers as fast as receipts come back.
    Throughput {
        #[arg(long, default_value_t = 64)]
        publishers: usize,
        #[arg(long, default_value_t = 10)]
        subscribers: usize,
        #[arg(long, default_value_t = 8)]
        topics: usize,
        /// Publishes in flight per publisher.
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Ops signed up front per publisher (the run ends when they are all receipted).
        #[arg(long, default_value_t = 5_000)]
        ops_per_publisher: usize,
        /// After the run on open topics, run again (on a fresh relay when this one started it)
        /// with every publisher writing a topic it owns (`@<agent id>/…`, each checked by the
        /// relay's access rules), and print the ratio owned / open. Needs `--subscribers 0`
        /// (reading an owned topic takes a capability).
        #[arg(long)]
        owned: bool,
        /// With `--owned`: the open run's topics are `~<agent id>/load-<n>`, one per publisher
        /// and exactly as long as the owned ones, so that the ratio shows the access checks
        /// alone (not the longer topic carried in every op, entry and store key).
        #[arg(long)]
        long_open: bool,
        /// With `--owned`: run the owned topics first, then the open ones (alternate runs to
        /// see what the order costs: the second relay starts on a warmer box).
        #[arg(long)]
        owned_first: bool,
        /// With several `--url`s: every topic is written through every frontend (publisher
        /// `i` connects to frontend `(i / topics) % urls`, so the publishers of one topic are
        /// spread over the frontends) instead of each topic through one (`i % urls`).
        #[arg(long)]
        cross: bool,
    },
    /// Latency at a fixed publish rate.
    Latency {
        #[arg(long, default_value_t = 5_000)]
        rate: u64,
        #[arg(long, default_value_t = 100)]
        subscribers: usize,
        #[arg(long, default_value_t = 10)]
        publishers: usize,
        /// Runs, each on a relay of its own over a fresh data directory; with more than one,
        /// a last line gives the median and range of each p99 and the runs under 10 ms.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
        runs: u32,
    },
    /// Relay memory per idle connection.
    Idle {
        #[arg(long, default_value_t = 1_000)]
        connections: usize,
    },
    /// Recovery time after SIGKILL with this many entries stored.
    Recovery {
        #[arg(long, default_value_t = 1_000_000)]
        entries: usize,
    },
    /// An honest client's publish→receipt p99 alone, then while slow consumers replay a busy
    /// topic from seq 0 among idle connections, and the relay's RSS before, at the peak and
    /// 30 s after (issue 22 items 3 and 4). `--seconds` is each phase's length.
    Flood {
        /// Slow consumers subscribing to the busy topic from seq 0.
        #[arg(long, default_value_t = 500)]
        consumers: usize,
        /// Idle connections besides them.
        #[arg(long, default_value_t = 4_500)]
        idle: usize,
        /// Entries stored in the busy topic first.
        #[arg(long, default_value_t = 20_000)]
        entries: usize,
        /// Op body bytes of each stored entry.
        #[arg(long, default_value_t = 1_024)]
        entry_len: usize,
        /// The honest client's publishes per second.
        #[arg(long, default_value_t = 200)]
        rate: u64,
        /// Milliseconds a consumer waits between two reads of a message.
        #[arg(long, default_value_t = 100)]
        read_every_ms: u64,
        /// Seconds after the flood ends at which the relay's RSS is read (at most 300).
        #[arg(long, default_value_t = 30)]
        after_seconds: u64,
    },
}

struct Relay {
    child: Child,
    /// Its data directory.
    data: PathBuf,
    /// Its `host:port` on the loopback interface.
    addr: String,
    url: String,
    pid: u32,
}

async fn spawn_relay(data: &Path) -> Result<(Relay, Duration), Failure> {
    let exe = std::env::current_exe()?
        .parent()
        .ok_or("no binary directory")?
        .join("ants-relay");
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("ANTS_RELAY_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("relay exited")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut addr = None;
    while let Some(line) = lines.next_line().await? {
        if let Some(start) = line.find("addr=") {
            if line.contains("relay listening") {
                let rest = &line[start + 5..];
                addr = Some(rest[..rest.find(' ').unwrap_or(rest.len())].to_owned());
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    let addr = addr.ok_or("relay exited before listening")?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((
        Relay {
            child,
            data: data.to_owned(),
            url: format!("ws://{addr}/ws"),
            addr,
            pid,
        },
        elapsed,
    ))
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn connect(url: &str) -> Result<(Ws, ants_coord::AgentId, [u8; 32]), Failure> {
    // TCP_NODELAY, as browsers set it on WebSockets. A small read buffer: tungstenite zeroes
    // the free part of it before every read, and its 128 KiB default made that zeroing the
    // load generator's largest cost, taking CPU from the relay it measures.
    let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true).await?;
    while let Some(message) = ws.next().await {
        if let Message::Binary(bytes) = message? {
            if let Body::Challenge { relay, nonce } = Frame::decode(&bytes)?.body {
                return Ok((ws, relay, nonce));
            }
        }
    }
    Err("no challenge".into())
}

async fn connect_as(url: &str, me: &Identity) -> Result<Ws, Failure> {
    let (mut ws, relay, nonce) = connect(url).await?;
    let hello = Frame::new(0, sign_hello(me, &nonce, &relay)).encode()?;
    ws.send(Message::Binary(hello.into())).await?;
    while let Some(message) = ws.next().await {
        if let Message::Binary(bytes) = message? {
            return match Frame::decode(&bytes)?.body {
                Body::Welcome { .. } => Ok(ws),
                other => Err(format!("hello refused: {other:?}").into()),
            };
        }
    }
    Err("closed during hello".into())
}

async fn subscribe_all(url: &str, topics: &[String]) -> Result<Ws, Failure> {
    let (mut ws, _, _) = connect(url).await?;
    for (i, topic) in topics.iter().enumerate() {
        let frame = Frame::new(
            i as u32 + 1,
            Body::Subscribe {
                topic: topic.clone(),
                from_seq: 0,
            },
        );
        ws.send(Message::Binary(frame.encode()?.into())).await?;
    }
    Ok(ws)
}

fn sign(me: &Identity, topic: &str, counter: u64, body: Vec<u8>) -> Result<SignedOp, Failure> {
    Ok(SignedOp::sign(
        me,
        OpDraft {
            topic: topic.into(),
            kind: "load".into(),
            counter,
            time_ms: 0,
            deps: vec![],
            body,
        },
    )?)
}

/// The entries an `entry` or `entries` frame carries, read in place (nothing for any other
/// frame). A subscriber of the load test counts entries and reads their send time; it does not
/// decode them.
fn entry_slices(frame: &[u8]) -> Vec<&[u8]> {
    use ants_coord::wire::frame_type::{ENTRIES, ENTRY};
    let (count, mut rest) = match (frame.get(1), frame.get(6..)) {
        (Some(&ENTRY), Some(rest)) => (1, rest),
        (Some(&ENTRIES), Some([a, b, rest @ ..])) => (u16::from_be_bytes([*a, *b]), rest),
        _ => return Vec::new(),
    };
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            break;
        };
        let len = u32::from_be_bytes(*len) as usize;
        let Some((entry, tail)) = tail.split_at_checked(len) else {
            break;
        };
        entries.push(entry);
        rest = tail;
    }
    entries
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// One throughput run; returns the ops receipted and the durable ops per second. `owned`: each publisher writes a
/// topic of its own (`@<its agent id>/load-<n>`), so `topic_count` is the publishers'.
#[allow(clippy::too_many_arguments)]
async fn throughput(
    urls: &[String],
    publishers: usize,
    subscribers: usize,
    topic_count: usize,
    window: usize,
    per_publisher: usize,
    limit: Duration,
    owned: bool,
    long_open: bool,
    cross: bool,
) -> Result<(u64, f64), Failure> {
    let mut topics: Vec<String> = (0..topic_count.max(1))
        .map(|i| format!("load-{i}"))
        .collect();
    eprintln!("signing {} ops…", publishers * per_publisher);
    let mut prepared = Vec::new();
    let mut owned_topics = Vec::new();
    for p in 0..publishers {
        let me = Identity::generate()?;
        let topic = if owned || long_open {
            // `~` names no owner (PROTOCOL.md 10.5): an open topic of the owned one's length.
            let sigil = if owned { '@' } else { '~' };
            owned_topics.push(format!("{sigil}{}/load-{p}", me.agent_id()));
            owned_topics[p].clone()
        } else {
            topics[p % topics.len()].clone()
        };
        let ops: Vec<Vec<u8>> = (0..per_publisher as u64)
            .map(|c| sign(&me, &topic, c, vec![0; 64]).map(|op| op.as_bytes().to_vec()))
            .collect::<Result<_, _>>()?;
        prepared.push((me, ops));
    }
    if owned || long_open {
        topics = owned_topics;
    }
    let verify_only = verify_only_rate(&prepared)?;
    let received = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for i in 0..subscribers {
        let mut ws = subscribe_all(&urls[i % urls.len()], &topics).await?;
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            let mut count = 0u64;
            while let Some(Ok(message)) = ws.next().await {
                if let Message::Binary(bytes) = message {
                    let n = entry_slices(&bytes).len() as u64;
                    count += n;
                    received.fetch_add(n, Ordering::Relaxed);
                }
            }
            count
        }));
    }
    let mut connections = Vec::new();
    for (i, (me, ops)) in prepared.into_iter().enumerate() {
        let frontend = if cross { i / topics.len() } else { i };
        connections.push((connect_as(&urls[frontend % urls.len()], &me).await?, ops));
    }
    let receipted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (ws, ops) in connections {
        let receipted = receipted.clone();
        let refused = refused.clone();
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            let permits = Arc::new(tokio::sync::Semaphore::new(window.max(1)));
            let total = ops.len();
            let reader = {
                let permits = permits.clone();
                tokio::spawn(async move {
                    let mut answered = 0;
                    while answered < total {
                        let Some(Ok(message)) = stream.next().await else {
                            break;
                        };
                        let Message::Binary(bytes) = message else {
                            continue;
                        };
                        match bytes.get(1) {
                            Some(&ants_coord::wire::frame_type::RECEIPT) => {
                                receipted.fetch_add(1, Ordering::Relaxed);
                            }
                            Some(&ants_coord::wire::frame_type::ERROR) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => continue,
                        }
                        answered += 1;
                        permits.add_permits(1);
                    }
                    permits.close();
                })
            };
            for (i, op) in ops.into_iter().enumerate() {
                let Ok(permit) = permits.acquire().await else {
                    break;
                };
                permit.forget();
                let frame = Frame::new(i as u32 + 1, Body::Publish { op }).encode();
                let Ok(frame) = frame else { break };
                if sink.send(Message::Binary(frame.into())).await.is_err() {
                    break;
                }
            }
            let _ = reader.await;
        }));
    }
    let all = futures_util::future::join_all(tasks);
    let _ = tokio::time::timeout(limit, all).await;
    let elapsed = started.elapsed();
    let done = receipted.load(Ordering::Relaxed);
    // Let subscribers catch up (bounded), then count.
    let expected = done * subscribers as u64;
    let catch_up = Instant::now();
    while received.load(Ordering::Relaxed) < expected && catch_up.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fanned = received.load(Ordering::Relaxed);
    println!(
        "throughput: {publishers} publishers, {subscribers} subscribers, {} topics: {done} ops receipted in {:.2} s = {:.0} ops/s durable; {} refused; subscribers received {fanned} entries, {expected} owed for those receipts ({:.2} s after the last counted receipt; publishes still in flight add more)",
        topics.len(),
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64(),
        refused.load(Ordering::Relaxed),
        catch_up.elapsed().as_secs_f64(),
    );
    println!(
        "peer: ed25519 batch verification alone of the same ops (batches of 256, {} threads): {verify_only:.0} ops/s; ratio relay / verification alone = {:.2}x",
        verify_threads(),
        done as f64 / elapsed.as_secs_f64() / verify_only,
    );
    for reader in readers {
        reader.abort();
    }
    Ok((done, done as f64 / elapsed.as_secs_f64()))
}

fn verify_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The peer of the throughput scenario, measured in the same run: how fast this machine checks
/// the same ops' signatures and nothing else (batched, on every core) — the ceiling of any relay
/// that verifies what it sequences.
fn verify_only_rate(prepared: &[(Identity, Vec<Vec<u8>>)]) -> Result<f64, Failure> {
    let ops: Vec<SignedOp> = prepared
        .iter()
        .flat_map(|(_, ops)| ops.iter())
        .map(|bytes| SignedOp::decode_unverified(bytes))
        .collect::<Result<_, _>>()?;
    let threads = verify_threads();
    let chunk = ops.len().div_ceil(threads).max(1);
    let started = Instant::now();
    let verified = std::thread::scope(|scope| {
        let workers: Vec<_> = ops
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.chunks(256)
                        .all(|batch| ants_coord::op::verify_ops(batch).is_ok())
                })
            })
            .collect();
        workers.into_iter().all(|w| w.join().unwrap_or(false))
    });
    if !verified {
        return Err("the load generator's own ops did not verify".into());
    }
    Ok(ops.len() as f64 / started.elapsed().as_secs_f64())
}

/// Most latency samples reserved up front per kind (16 bytes each: 512 MiB).
const MAX_RESERVED_SAMPLES: usize = 32 << 20;

/// The two p99s of one latency run, in milliseconds, and the share of publishes the relay
/// answered within 10 ms by its own clock.
struct LatencyP99 {
    receipt: f64,
    subscriber: f64,
    relay_within: f64,
    /// Bytes the relay wrote per entry byte it stored (NaN when not measured).
    amplification: f64,
}

/// The median, range and count under `target` ms of one p99 over several runs.
fn summarize(mut p99s: Vec<f64>, target: f64) -> String {
    p99s.sort_by(f64::total_cmp);
    let n = p99s.len();
    let median = if n % 2 == 1 {
        p99s[n / 2]
    } else {
        (p99s[n / 2 - 1] + p99s[n / 2]) / 2.0
    };
    let under = p99s.iter().filter(|&&p| p < target).count();
    format!(
        "median {median:.2} ms ({:.2}–{:.2}), under {target} ms in {under} of {n}",
        p99s[0],
        p99s[n - 1]
    )
}

/// What the relay itself measured over a latency run, read from its `/metrics` and (on Linux)
/// `/proc/<pid>/io`. Next to the load generator's own p99 it shows how much of that is the
/// relay's work and how much the scheduling of both processes on shared cores.
struct RelaySide {
    /// Share of publishes answered within 10 ms by the relay's clock (from reading the frame
    /// to queueing the receipt: `ants_relay_publish_to_receipt_seconds`).
    within_10ms: f64,
    /// Receipts that histogram counts.
    counted: u64,
    /// Its mean publish→receipt time, ms.
    receipt_mean_ms: f64,
    /// Mean time of a group commit's `COMMIT` (the WAL write), ms.
    commit_mean_ms: f64,
    /// Bytes the relay process caused to be written to storage (WAL and checkpoints), MiB.
    written_mib: Option<f64>,
    /// The canonical bytes of the entries its store holds, MiB.
    stored_mib: Option<f64>,
}

/// The canonical bytes of every entry in the SQLite store under `data`, read through a
/// read-only connection while the relay runs (WAL lets it).
fn stored_entry_bytes(data: &Path) -> Result<u64, Failure> {
    let conn = rusqlite::Connection::open_with_flags(
        data.join(ants_coord::relay::store::DB_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let bytes: i64 = conn.query_row(
        "SELECT COALESCE(SUM(length(entry)), 0) FROM entries",
        [],
        |row| row.get(0),
    )?;
    Ok(u64::try_from(bytes)?)
}

async fn relay_side(relay: &Relay) -> Result<RelaySide, Failure> {
    let mut http = tokio::net::TcpStream::connect(&relay.addr).await?;
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n")
        .await?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(5), http.read_to_string(&mut text)).await??;
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .ok_or_else(|| format!("no {name} in the relay's /metrics"))
    };
    let mean_ms = |histogram: &str| -> Result<f64, String> {
        let count = value(&format!("{histogram}_count "))?;
        let sum = value(&format!("{histogram}_sum "))?;
        Ok(if count > 0.0 {
            sum / count * 1000.0
        } else {
            0.0
        })
    };
    let within = value("ants_relay_publish_to_receipt_seconds_bucket{le=\"0.01\"} ")?;
    let all = value("ants_relay_publish_to_receipt_seconds_count ")?;
    let written_mib = std::fs::read_to_string(format!("/proc/{}/io", relay.pid))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|line| line.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map(|bytes| bytes / (1024.0 * 1024.0));
    let stored_mib = stored_entry_bytes(&relay.data)
        .ok()
        .map(|bytes| bytes as f64 / (1024.0 * 1024.0));
    Ok(RelaySide {
        within_10ms: if all > 0.0 { within / all } else { 0.0 },
        counted: all as u64,
        receipt_mean_ms: mean_ms("ants_relay_publish_to_receipt_seconds")?,
        commit_mean_ms: mean_ms("ants_relay_commit_seconds")?,
        written_mib,
        stored_mib,
    })
}

/// The publishes of one latency run, signed and framed before it starts. Signing is the
/// clients' work: a load generator that signed at send time (about 6% of this 2-core machine
/// at 5,000 ops/s, measured with `perf`) would take that CPU from the relay it measures.
struct SignedAhead {
    /// Each publisher's identity and its publish frames, in counter order (request id =
    /// counter + 1).
    publishers: Vec<(Identity, Vec<Vec<u8>>)>,
    /// Frames per publisher: publisher `p`'s op at `counter` has slot `p * per_publisher +
    /// counter`, which is also its 8-byte body.
    per_publisher: usize,
    /// When each slot's publish was sent: µs since the run's epoch, plus one (0: not sent).
    sent_at: Arc<Vec<AtomicU64>>,
    /// Time between two publishes of one publisher.
    period: Duration,
}

/// Most ops one latency run signs ahead (about 170 B each in memory).
const MAX_SIGNED_AHEAD: usize = 2 << 20;

/// Signs every publish of a latency run (`rate` ops/s for `limit`, over `publishers`), each
/// publisher's on a blocking thread of its own.
async fn sign_ahead(
    topic: &str,
    rate: u64,
    publishers: usize,
    limit: Duration,
) -> Result<SignedAhead, Failure> {
    let publishers = publishers.max(1);
    let per_second = (rate / publishers as u64).max(1);
    // One tick per period, plus the first at once: never more than this many sends.
    let per_publisher = (per_second as f64 * limit.as_secs_f64()).ceil() as usize + 2;
    if per_publisher.saturating_mul(publishers) > MAX_SIGNED_AHEAD {
        return Err(format!(
            "--rate × --seconds is over {MAX_SIGNED_AHEAD} ops, more than a run signs ahead"
        )
        .into());
    }
    let mut signing = Vec::new();
    for publisher in 0..publishers {
        let topic = topic.to_owned();
        signing.push(tokio::task::spawn_blocking(move || {
            let me = Identity::generate()?;
            let first_slot = (publisher * per_publisher) as u64;
            let frames = (0..per_publisher as u64)
                .map(|counter| {
                    let body = (first_slot + counter).to_be_bytes().to_vec();
                    let op = sign(&me, &topic, counter, body)?;
                    let publish = Body::Publish {
                        op: op.as_bytes().to_vec(),
                    };
                    Ok(Frame::new(counter as u32 + 1, publish).encode()?)
                })
                .collect::<Result<Vec<_>, Failure>>()?;
            Ok::<_, Failure>((me, frames))
        }));
    }
    let mut signed = Vec::new();
    for task in signing {
        signed.push(task.await??);
    }
    Ok(SignedAhead {
        publishers: signed,
        per_publisher,
        sent_at: Arc::new(
            (0..per_publisher * publishers)
                .map(|_| AtomicU64::new(0))
                .collect(),
        ),
        period: Duration::from_secs_f64(1.0 / per_second as f64),
    })
}

/// The send time a `sent_at` slot holds, if its publish was sent.
fn sent_time(slot: &AtomicU64) -> Option<Duration> {
    match slot.load(Ordering::Acquire) {
        0 => None,
        micros => Some(Duration::from_micros(micros - 1)),
    }
}

async fn latency(
    urls: &[String],
    relay: Option<&Relay>,
    rate: u64,
    subscribers: usize,
    publishers: usize,
    limit: Duration,
) -> Result<LatencyP99, Failure> {
    let topic = "latency".to_owned();
    let plan = sign_ahead(&topic, rate, publishers, limit).await?;
    let epoch = Instant::now();
    // Every sample is kept, so percentiles are exact. Room for all of them is reserved up
    // front: a vector that grew while the run is measured would copy tens of MB under its
    // lock, and every task waiting on that lock would add the copy to the latencies it reads.
    let expected = (rate as usize).saturating_mul(limit.as_secs() as usize + 1);
    let sub_latencies: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::with_capacity(
        expected
            .saturating_mul(subscribers)
            .min(MAX_RESERVED_SAMPLES),
    )));
    let mut readers = Vec::new();
    // Told to stop once every publisher is done: a reader then hands over what it holds (an
    // aborted task would drop its last unsaved samples, the run's latest deliveries).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let delivered = Arc::new(AtomicU64::new(0));
    for i in 0..subscribers {
        let mut ws = subscribe_all(&urls[i % urls.len()], std::slice::from_ref(&topic)).await?;
        let sink = sub_latencies.clone();
        let mut stopped = stopped.clone();
        let delivered = delivered.clone();
        let sent_at = plan.sent_at.clone();
        readers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let message = tokio::select! {
                    message = ws.next() => message,
                    _ = stopped.changed() => break,
                };
                let Some(Ok(message)) = message else {
                    break;
                };
                let Message::Binary(bytes) = message else {
                    continue;
                };
                let now = epoch.elapsed();
                let before = mine.len();
                for entry in entry_slices(&bytes) {
                    // The op body (8 bytes: the op's slot in `sent_at`) sits right before the
                    // 64-byte signature at the end of the entry.
                    let n = entry.len();
                    let Some(slot) = n.checked_sub(72).and_then(|at| entry.get(at..n - 64)) else {
                        continue;
                    };
                    let slot = u64::from_be_bytes(slot.try_into().unwrap_or_default());
                    let sent = usize::try_from(slot)
                        .ok()
                        .and_then(|slot| sent_at.get(slot))
                        .and_then(sent_time);
                    if let Some(sent) = sent {
                        mine.push(now.saturating_sub(sent));
                    }
                }
                // One shared counter for all readers: counted per message, not per entry.
                delivered.fetch_add((mine.len() - before) as u64, Ordering::Relaxed);
                if mine.len() >= 256 {
                    if let Ok(mut all) = sink.lock() {
                        all.append(&mut mine);
                    }
                }
            }
            if let Ok(mut all) = sink.lock() {
                all.append(&mut mine);
            }
        }));
    }
    let receipt_latencies: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::with_capacity(
        expected.min(MAX_RESERVED_SAMPLES),
    )));
    // The longest time the whole run went without a receipt (a stall, e.g. while a NATS
    // server's loss elects new leaders): the previous receipt's time and the longest gap, in µs.
    let last_receipt = Arc::new(AtomicU64::new(0));
    let longest_pause = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (publisher, (me, frames)) in plan.publishers.into_iter().enumerate() {
        let ws = connect_as(&urls[publisher % urls.len()], &me).await?;
        let latencies = receipt_latencies.clone();
        let (last_receipt, longest_pause) = (last_receipt.clone(), longest_pause.clone());
        let sent_at = plan.sent_at.clone();
        let first_slot = publisher * plan.per_publisher;
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            let reader = {
                let sent_at = sent_at.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    while let Some(Ok(message)) = stream.next().await {
                        let Message::Binary(bytes) = message else {
                            continue;
                        };
                        let Ok(frame) = Frame::decode(&bytes) else {
                            continue;
                        };
                        // Request ids are counters + 1 (0 is the hello).
                        let slot = (frame.request_id as usize)
                            .checked_sub(1)
                            .map(|counter| first_slot + counter);
                        let sent = slot.and_then(|slot| sent_at.get(slot));
                        if let (Body::Receipt { .. }, Some(sent)) = (&frame.body, sent) {
                            let Some(sent) = sent_time(sent) else {
                                continue;
                            };
                            let now = epoch.elapsed();
                            let micros = now.as_micros() as u64;
                            let previous = last_receipt.fetch_max(micros, Ordering::AcqRel);
                            if previous > 0 {
                                longest_pause
                                    .fetch_max(micros.saturating_sub(previous), Ordering::AcqRel);
                            }
                            mine.push(now.saturating_sub(sent));
                            if mine.len() >= 256 {
                                if let Ok(mut all) = latencies.lock() {
                                    all.append(&mut mine);
                                }
                            }
                        }
                    }
                    if let Ok(mut all) = latencies.lock() {
                        all.append(&mut mine);
                    }
                })
            };
            let mut ticker = tokio::time::interval(plan.period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let started = Instant::now();
            let mut published = 0u64;
            for (counter, frame) in frames.into_iter().enumerate() {
                if started.elapsed() >= limit {
                    break;
                }
                ticker.tick().await;
                let now = epoch.elapsed().as_micros() as u64;
                sent_at[first_slot + counter].store(now + 1, Ordering::Release);
                if sink.send(Message::Binary(frame.into())).await.is_err() {
                    break;
                }
                published += 1;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = sink.close().await;
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
            published
        }));
    }
    let mut published = 0;
    for task in tasks {
        published += task.await.unwrap_or(0);
    }
    // Every subscriber gets every op; wait for that (at most 5 s) before stopping the readers.
    let all = published * subscribers as u64;
    let waited = Instant::now();
    while delivered.load(Ordering::Relaxed) < all && waited.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(true);
    for reader in readers {
        let _ = reader.await;
    }
    let mut receipts = receipt_latencies
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    let mut deliveries = sub_latencies.lock().map(|v| v.clone()).unwrap_or_default();
    receipts.sort_unstable();
    deliveries.sort_unstable();
    let clients = format!(
        "latency: {published} ops at {rate}/s target over {:.0} s ({publishers} publishers, {subscribers} subscribers, {} relay URL{}): publish→receipt p50 {:.2} ms p99 {:.2} ms ({} samples, longest pause between receipts {:.0} ms); publish→subscriber p50 {:.2} ms p99 {:.2} ms ({} samples)",
        limit.as_secs_f64(),
        urls.len(),
        if urls.len() == 1 { "" } else { "s" },
        percentile(&receipts, 0.50),
        percentile(&receipts, 0.99),
        receipts.len(),
        longest_pause.load(Ordering::Acquire) as f64 / 1000.0,
        percentile(&deliveries, 0.50),
        percentile(&deliveries, 0.99),
        deliveries.len(),
    );
    // Every receipt is queued by now: the relay's histogram covers the whole run.
    let Some(relay) = relay else {
        println!("{clients}; relays started elsewhere: their own figures are in their /metrics");
        return Ok(LatencyP99 {
            receipt: percentile(&receipts, 0.99),
            subscriber: percentile(&deliveries, 0.99),
            relay_within: f64::NAN,
            amplification: f64::NAN,
        });
    };
    let side = relay_side(relay).await?;
    let written = side
        .written_mib
        .map_or_else(|| "n/a".to_owned(), |mib| format!("{mib:.1} MiB"));
    let amplification = match (side.written_mib, side.stored_mib) {
        (Some(written), Some(stored)) if stored > 0.0 => written / stored,
        _ => f64::NAN,
    };
    let stored = side.stored_mib.map_or_else(
        || "n/a".to_owned(),
        |mib| format!("{mib:.2} MiB of entries stored: bytes written / bytes stored = {amplification:.1}×"),
    );
    println!(
        "{clients}; relay's own publish→receipt (frame read to receipt queued) within 10 ms for {:.2}% of {}, mean {:.2} ms; relay's mean commit {:.3} ms, {written} written to storage for {stored}",
        side.within_10ms * 100.0,
        side.counted,
        side.receipt_mean_ms,
        side.commit_mean_ms,
    );
    Ok(LatencyP99 {
        receipt: percentile(&receipts, 0.99),
        subscriber: percentile(&deliveries, 0.99),
        relay_within: side.within_10ms,
        amplification,
    })
}

async fn idle(relay: &Relay, connections: usize) -> Result<(), Failure> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(relay.pid);
    let mut open = Vec::new();
    for _ in 0..connections {
        open.push(connect(&relay.url).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(relay.pid);
    println!(
        "idle: {connections} connections (challenge answered, nothing subscribed): relay RSS {before} KiB → {after} KiB = {:.1} KiB per connection",
        (after.saturating_sub(before)) as f64 / connections.max(1) as f64
    );
    drop(open);
    Ok(())
}

async fn recovery(
    mut relay: Relay,
    data: &Path,
    entries: usize,
    limit: Duration,
) -> Result<(), Failure> {
    let publishers = 16usize;
    let per = entries.div_ceil(publishers);
    let (stored, _) = throughput(
        std::slice::from_ref(&relay.url),
        publishers,
        0,
        16,
        256,
        per,
        limit,
        false,
        false,
        false,
    )
    .await?;
    relay.child.start_kill()?;
    relay.child.wait().await?;
    let db = data.join("relay.sqlite3");
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    let wal = std::fs::metadata(data.join("relay.sqlite3-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    let (relay, elapsed) = spawn_relay(data).await?;
    println!(
        "recovery: after SIGKILL with {stored} receipted entries of {entries} asked (database {} MiB, WAL {} MiB): listening again after {:.2} s",
        size >> 20,
        wal >> 20,
        elapsed.as_secs_f64()
    );
    drop(relay);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args = Args::parse();
    let limit = Duration::from_secs(args.seconds.clamp(1, 300));
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("ants-load-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    match args.scenario {
        Scenario::Throughput {
            publishers,
            subscribers,
            topics,
            window,
            ops_per_publisher,
            owned,
            long_open,
            owned_first,
            cross,
        } => {
            if owned && subscribers > 0 {
                return Err(
                    "--owned needs --subscribers 0: reading an owned topic takes a capability"
                        .into(),
                );
            }
            let order = if owned && owned_first {
                [true, false]
            } else {
                [false, true]
            };
            let mut rates = Vec::new();
            for owned in order.into_iter().take(1 + usize::from(owned)) {
                // Held until the run ends: dropping it stops the relay it started.
                let mut started = None;
                let urls = if args.urls.is_empty() {
                    let dir = data.join(if owned { "owned" } else { "open" });
                    let (relay, _) = spawn_relay(&dir).await?;
                    let url = relay.url.clone();
                    started = Some(relay);
                    vec![url]
                } else {
                    args.urls.clone()
                };
                let (_, rate) = throughput(
                    &urls,
                    publishers,
                    subscribers,
                    topics,
                    window,
                    ops_per_publisher,
                    limit,
                    owned,
                    long_open,
                    cross,
                )
                .await?;
                rates.push((owned, rate));
                drop(started);
            }
            rates.sort_by_key(|(owned, _)| *owned);
            if let [(_, open), (_, owned)] = rates[..] {
                println!(
                    "owned topics: {owned:.0} ops/s against {open:.0} on open topics in the same run: ratio owned / open = {:.2}x",
                    owned / open
                );
            }
        }
        Scenario::Latency {
            rate,
            subscribers,
            publishers,
            runs,
        } => {
            let mut p99s = Vec::new();
            for run in 0..runs {
                if run > 0 {
                    std::fs::remove_dir_all(&data)?;
                    std::fs::create_dir_all(&data)?;
                }
                if !args.urls.is_empty() {
                    p99s.push(
                        latency(&args.urls, None, rate, subscribers, publishers, limit).await?,
                    );
                    continue;
                }
                let (relay, _) = spawn_relay(&data).await?;
                let urls = [relay.url.clone()];
                p99s.push(
                    latency(&urls, Some(&relay), rate, subscribers, publishers, limit).await?,
                );
            }
            if runs > 1 {
                let receipt = summarize(p99s.iter().map(|p| p.receipt).collect(), 10.0);
                let subscriber = summarize(p99s.iter().map(|p| p.subscriber).collect(), 10.0);
                let (low, high) = p99s.iter().fold((f64::MAX, 0.0f64), |(low, high), p| {
                    (low.min(p.relay_within), high.max(p.relay_within))
                });
                let own = if args.urls.is_empty() {
                    let mut ratios: Vec<f64> = p99s.iter().map(|p| p.amplification).collect();
                    ratios.sort_by(f64::total_cmp);
                    format!(
                        "; relay's own publish→receipt within 10 ms for {:.2}–{:.2}%; bytes written / bytes stored {:.1}× median ({:.1}–{:.1}×)",
                        low * 100.0,
                        high * 100.0,
                        ratios[ratios.len() / 2],
                        ratios[0],
                        ratios[ratios.len() - 1]
                    )
                } else {
                    String::new()
                };
                println!(
                    "latency over {runs} runs: publish→receipt p99 {receipt}; publish→subscriber p99 {subscriber}{own}"
                );
            }
        }
        Scenario::Idle { .. } | Scenario::Recovery { .. } | Scenario::Flood { .. }
            if !args.urls.is_empty() =>
        {
            return Err("--url applies to throughput and latency only: idle, recovery and flood measure a relay process they start".into());
        }
        Scenario::Idle { connections } => {
            let (relay, _) = spawn_relay(&data).await?;
            idle(&relay, connections).await?;
        }
        Scenario::Recovery { entries } => {
            let (relay, _) = spawn_relay(&data).await?;
            recovery(relay, &data, entries, limit).await?;
        }
        Scenario::Flood {
            consumers,
            idle,
            entries,
            entry_len,
            rate,
            read_every_ms,
            after_seconds,
        } => {
            let (relay, _) = spawn_relay(&data).await?;
            let plan = flood::Flood {
                consumers,
                idle,
                entries: entries.min(10_000_000),
                entry_len: entry_len.min(64 * 1024),
                rate,
                phase: limit,
                read_every: Duration::from_millis(read_every_ms),
                after: Duration::from_secs(after_seconds.min(300)),
            };
            flood::flood(&relay, &plan).await?;
        }
    }
    if args.data.is_none() {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(())
}
