//! `ants-load flood`: an honest client's publish→receipt latency, first alone, then while
//! slow consumers replay a busy topic from seq 0 among idle connections (issue 22 item 3), and
//! the relay's memory before, at the peak and after the flood (item 4).
//!
//! The honest client publishes to the busy topic at a fixed rate, each op's time taken from
//! right before its frame is sent to its receipt. A slow consumer subscribes from seq 0 and
//! reads one WebSocket message per `--read-every-ms`, so the relay keeps replaying history to
//! all of them for the whole measured phase. When it ends, every consumer and idle connection
//! closes, and the relay's RSS is read `--after-seconds` (30) later.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ants_coord::wire::{Body, Frame};
use ants_coord::Identity;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::{connect, connect_as, percentile, rss_kib, sign, Failure, Relay};

/// The flood's shape (`ants-load flood`'s arguments).
pub struct Flood {
    /// Slow consumers replaying the busy topic from seq 0.
    pub consumers: usize,
    /// Idle connections (challenge read, nothing else).
    pub idle: usize,
    /// Entries stored in the busy topic before the flood.
    pub entries: usize,
    /// Bytes of each stored entry's op body.
    pub entry_len: usize,
    /// The honest client's publishes per second.
    pub rate: u64,
    /// Length of each measured phase (alone, then under the flood).
    pub phase: Duration,
    /// Time a consumer waits between two reads.
    pub read_every: Duration,
    /// Time the relay's memory is watched after the flood ends before its RSS is read.
    pub after: Duration,
}

/// The topic the flood replays and the honest client publishes to.
const TOPIC: &str = "busy";
/// Publishes in flight while the topic is filled.
const FILL_WINDOW: usize = 256;
/// Ops one author publishes while filling (the per-agent rate limit's burst is 10,000).
const FILL_PER_AUTHOR: usize = 5_000;

/// Runs the flood against `relay` and prints one line of results.
pub async fn flood(relay: &Relay, flood: &Flood) -> Result<(), Failure> {
    fill(&relay.url, flood.entries, flood.entry_len).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_kib(relay.pid);
    let alone = honest(&relay.url, flood.rate, flood.phase).await?;

    // The flood: idle connections, then the consumers, all held until the phase ends.
    let watch = Watch::start(relay.pid, &relay.data);
    let mut idle = Vec::with_capacity(flood.idle);
    for _ in 0..flood.idle {
        idle.push(connect(&relay.url).await?.0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let read = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut consumers = Vec::with_capacity(flood.consumers);
    for _ in 0..flood.consumers {
        let (mut ws, _, _) = connect(&relay.url).await?;
        let subscribe = Frame::new(
            1,
            Body::Subscribe {
                topic: TOPIC.into(),
                from_seq: 0,
            },
        );
        ws.send(Message::Binary(subscribe.encode()?.into())).await?;
        let (stop, read, dropped) = (stop.clone(), read.clone(), dropped.clone());
        let every = flood.read_every;
        consumers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                match ws.next().await {
                    Some(Ok(message)) => {
                        read.fetch_add(message.len() as u64, Ordering::Relaxed);
                    }
                    _ => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                tokio::time::sleep(every).await;
            }
        }));
    }
    let under = honest(&relay.url, flood.rate, flood.phase).await?;
    stop.store(true, Ordering::Release);
    for consumer in &consumers {
        consumer.abort();
    }
    for consumer in consumers {
        let _ = consumer.await;
    }
    drop(idle);
    let ended = Instant::now();
    let peak = watch.peak_rss.load(Ordering::Relaxed);
    let peak_handles = watch.peak_handles.load(Ordering::Relaxed);
    tokio::time::sleep(flood.after.saturating_sub(ended.elapsed())).await;
    let rss_after = rss_kib(relay.pid);
    let handles_after = database_handles(relay.pid, &relay.data);
    watch.stop();

    let (p99_alone, p99_under) = (percentile(&alone, 0.99), percentile(&under, 0.99));
    println!(
        "flood: {} consumers replaying {} entries of {} B from seq 0 (one read per {} ms) + {} idle connections; honest client at {}/s for {} s each phase: publish→receipt p99 alone {p99_alone:.2} ms ({} receipts), under the flood {p99_under:.2} ms ({} receipts, max {:.2} ms): ratio {:.1}×; consumers dropped by the relay {}, {} MiB replayed to them; relay RSS before {} MiB, peak {} MiB, {} s after {} MiB ({:.2}× before); handles to the database peak {peak_handles}, after {handles_after}",
        flood.consumers,
        flood.entries,
        flood.entry_len,
        flood.read_every.as_millis(),
        flood.idle,
        flood.rate,
        flood.phase.as_secs(),
        alone.len(),
        under.len(),
        percentile(&under, 1.0),
        p99_under / p99_alone.max(f64::MIN_POSITIVE),
        dropped.load(Ordering::Relaxed),
        read.load(Ordering::Relaxed) >> 20,
        rss_before >> 10,
        peak >> 10,
        flood.after.as_secs(),
        rss_after >> 10,
        rss_after as f64 / rss_before.max(1) as f64,
    );
    Ok(())
}

/// Stores `entries` ops of `entry_len` bytes in [`TOPIC`], from several authors at once (each
/// signs on a blocking thread first).
async fn fill(url: &str, entries: usize, entry_len: usize) -> Result<(), Failure> {
    let mut authors = Vec::new();
    for first in (0..entries).step_by(FILL_PER_AUTHOR) {
        let count = (entries - first).min(FILL_PER_AUTHOR);
        let url = url.to_owned();
        authors.push(tokio::spawn(async move {
            let (me, frames) = signed_publishes(count, move |_| vec![b'h'; entry_len]).await?;
            let mut ws = connect_as(&url, &me).await?;
            for window in frames.chunks(FILL_WINDOW) {
                for frame in window {
                    ws.feed(Message::Binary(frame.clone().into())).await?;
                }
                ws.flush().await?;
                let mut receipts = 0;
                while receipts < window.len() {
                    let Some(message) = ws.next().await else {
                        return Err::<(), Failure>("relay closed while filling".into());
                    };
                    if let Message::Binary(bytes) = message? {
                        match Frame::decode(&bytes)?.body {
                            Body::Receipt { .. } => receipts += 1,
                            other => return Err(format!("fill refused: {other:?}").into()),
                        }
                    }
                }
            }
            Ok(())
        }));
    }
    for author in authors {
        author.await??;
    }
    Ok(())
}

/// A fresh identity and `count` encoded publish frames of its ops to [`TOPIC`] (counters and
/// request ids from 0 and 1), each op's body from `body(counter)`; signed off the runtime.
async fn signed_publishes(
    count: usize,
    body: impl Fn(u64) -> Vec<u8> + Send + 'static,
) -> Result<(Identity, Vec<Vec<u8>>), Failure> {
    tokio::task::spawn_blocking(move || {
        let me = Identity::generate()?;
        let frames = (0..count as u64)
            .map(|counter| {
                let op = sign(&me, TOPIC, counter, body(counter))?;
                let publish = Body::Publish {
                    op: op.as_bytes().to_vec(),
                };
                Ok(Frame::new(counter as u32 + 1, publish).encode()?)
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        Ok::<_, Failure>((me, frames))
    })
    .await?
}

/// An honest client's publish→receipt times over `phase`, publishing `rate` ops per second to
/// [`TOPIC`] (signed before the phase starts).
async fn honest(url: &str, rate: u64, phase: Duration) -> Result<Vec<Duration>, Failure> {
    let rate = rate.max(1);
    let count = (rate as f64 * phase.as_secs_f64()).ceil() as usize;
    let (me, frames) = signed_publishes(count, |counter| counter.to_be_bytes().to_vec()).await?;
    let ws = connect_as(url, &me).await?;
    let (mut sink, mut stream) = ws.split();
    // When each request id's publish was sent (index: request id - 1).
    let sent: Arc<Vec<Mutex<Option<Instant>>>> =
        Arc::new((0..count).map(|_| Mutex::new(None)).collect());
    let reader = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            while latencies.len() < count {
                let Ok(Some(Ok(message))) =
                    tokio::time::timeout(Duration::from_secs(10), stream.next()).await
                else {
                    break;
                };
                let Message::Binary(bytes) = message else {
                    continue;
                };
                let Ok(frame) = Frame::decode(&bytes) else {
                    continue;
                };
                let Body::Receipt { .. } = frame.body else {
                    continue;
                };
                let at = (frame.request_id as usize)
                    .checked_sub(1)
                    .and_then(|i| sent.get(i))
                    .and_then(|slot| *slot.lock().unwrap_or_else(|e| e.into_inner()));
                if let Some(at) = at {
                    latencies.push(at.elapsed());
                }
            }
            latencies
        })
    };
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for (i, frame) in frames.into_iter().enumerate() {
        ticker.tick().await;
        *sent[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        sink.send(Message::Binary(frame.into())).await?;
    }
    let mut latencies = reader.await?;
    let _ = sink.close().await;
    latencies.sort_unstable();
    Ok(latencies)
}

/// Open file descriptors of process `pid` to its op store (`relay.sqlite3` in `data`).
fn database_handles(pid: u32, data: &Path) -> usize {
    let db = data.join(ants_coord::relay::store::DB_FILE);
    let db = std::fs::canonicalize(&db).unwrap_or(db);
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| *target == db)
        .count()
}

/// A thread sampling the relay's RSS and database handles every 50 ms, keeping the peaks.
struct Watch {
    peak_rss: Arc<AtomicU64>,
    peak_handles: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Watch {
    fn start(pid: u32, data: &Path) -> Watch {
        let peak_rss = Arc::new(AtomicU64::new(rss_kib(pid)));
        let peak_handles = Arc::new(AtomicUsize::new(database_handles(pid, data)));
        let done = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (peak_rss, peak_handles, done) =
                (peak_rss.clone(), peak_handles.clone(), done.clone());
            let data = data.to_owned();
            move || {
                while !done.load(Ordering::Acquire) {
                    peak_rss.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    peak_handles.fetch_max(database_handles(pid, &data), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        Watch {
            peak_rss,
            peak_handles,
            done,
            thread,
        }
    }

    fn stop(self) {
        self.done.store(true, Ordering::Release);
        let _ = self.thread.join();
    }
}
