//! Counters and latency histograms, rendered in the Prometheus text exposition format
//! (version 0.0.4) at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        self.observe_n(elapsed, 1);
    }

    /// Records `n` observations of the same value.
    pub fn observe_n(&self, elapsed: Duration, n: u64) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| seconds <= b) {
            self.counts[i].fetch_add(n, Ordering::Relaxed);
        }
        self.count.fetch_add(n, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64 * n, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Everything `/metrics` reports.
#[derive(Debug, Default)]
pub struct Metrics {
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
    http_connections: AtomicU64,
    http_evicted: AtomicU64,
    slow_consumers: AtomicU64,
    ops_accepted: AtomicU64,
    ops_retried: AtomicU64,
    append_conflicts: AtomicU64,
    ops_refused: Mutex<BTreeMap<String, u64>>,
    entries_restored: AtomicU64,
    batches: AtomicU64,
    batched_ops: AtomicU64,
    verify_batches: AtomicU64,
    /// Sequencer thread time per phase, in microseconds (see [`Phase`]).
    phases: [AtomicU64; Phase::ALL.len()],
    verified_ops: AtomicU64,
    commit: Histogram,
    fsync: Histogram,
    batch: Histogram,
    publish_to_receipt: Histogram,
    fanout_lag: Histogram,
    yjs_rooms_open: AtomicU64,
    cache_bytes: AtomicU64,
    yjs_updates: AtomicU64,
    yjs_bridged_replayed: AtomicU64,
    yjs_closed: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// A connection opened.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }
    /// A connection closed.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
    /// A connection was refused at the limit.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }
    /// A TCP connection is served HTTP (until it upgrades or closes).
    pub fn http_connection_opened(&self) {
        self.http_connections.fetch_add(1, Ordering::Relaxed);
    }
    /// A TCP connection served HTTP upgraded or closed.
    pub fn http_connection_closed(&self) {
        self.http_connections.fetch_sub(1, Ordering::Relaxed);
    }
    /// The oldest connection served before its upgrade was closed for a new one
    /// (`max_http_connections` were being served).
    pub fn http_evicted(&self) {
        self.http_evicted.fetch_add(1, Ordering::Relaxed);
    }
    /// A slow consumer was dropped.
    pub fn slow_consumer(&self) {
        self.slow_consumers.fetch_add(1, Ordering::Relaxed);
    }
    /// The number of open connections.
    pub fn open_connections(&self) -> u64 {
        self.connections_open.load(Ordering::Relaxed)
    }
    /// An op was newly stored and its receipt queued, `elapsed` after it arrived.
    pub fn accepted(&self, elapsed: Duration) {
        self.ops_accepted.fetch_add(1, Ordering::Relaxed);
        self.publish_to_receipt.observe(elapsed);
    }
    /// A retry of a stored op was answered with its receipt, `elapsed` after it arrived.
    pub fn retried(&self, elapsed: Duration) {
        self.ops_retried.fetch_add(1, Ordering::Relaxed);
        self.publish_to_receipt.observe(elapsed);
    }
    /// A batch's append was fenced because another frontend had appended to one of its topics
    /// (cluster mode): the batch is decided again on the reloaded heads.
    pub fn append_conflict(&self) {
        self.append_conflicts.fetch_add(1, Ordering::Relaxed);
    }
    /// A request was refused with `code`.
    pub fn refused(&self, code: &str) {
        count_by_code(&self.ops_refused, code);
    }
    /// The entry cache of every topic holds `bytes` bytes of entries.
    pub fn cache_bytes(&self, bytes: u64) {
        self.cache_bytes.store(bytes, Ordering::Relaxed);
    }
    /// A Yjs room was loaded.
    pub fn room_opened(&self) {
        self.yjs_rooms_open.fetch_add(1, Ordering::Relaxed);
    }
    /// A loaded Yjs room ended.
    pub fn room_closed(&self) {
        self.yjs_rooms_open.fetch_sub(1, Ordering::Relaxed);
    }
    /// A Yjs room stored (or, bridged, published) `count` updates.
    pub fn room_updates(&self, count: usize) {
        self.yjs_updates.fetch_add(count as u64, Ordering::Relaxed);
    }
    /// A bridged Yjs room opening replayed `count` entries of its topic.
    pub fn bridged_entries_replayed(&self, count: u64) {
        self.yjs_bridged_replayed
            .fetch_add(count, Ordering::Relaxed);
    }
    /// A Yjs connection was closed by the relay for the reason `code`.
    pub fn room_closed_connection(&self, code: &str) {
        count_by_code(&self.yjs_closed, code);
    }
    /// Entries found in storage at startup.
    pub fn entries_restored(&self, count: u64) {
        self.entries_restored.fetch_add(count, Ordering::Relaxed);
    }
    /// One sync of the WAL (making committed batches durable) took `elapsed`.
    pub fn fsync_latency(&self, elapsed: Duration) {
        self.fsync.observe(elapsed);
    }
    /// One `COMMIT` (writing a batch to the WAL, without its sync) took `elapsed`.
    pub fn commit_latency(&self, elapsed: Duration) {
        self.commit.observe(elapsed);
    }
    /// One batch of `ops` publishes was sequenced and committed in `elapsed`.
    pub fn batch(&self, ops: usize, elapsed: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batched_ops.fetch_add(ops as u64, Ordering::Relaxed);
        self.batch.observe(elapsed);
    }
    /// The sequencer thread spent `elapsed` in `phase`.
    pub fn phase(&self, phase: Phase, elapsed: Duration) {
        self.phases[phase as usize].fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }
    /// One batch of `ops` op signatures was checked with one batch equation.
    pub fn verify_batch(&self, ops: usize) {
        self.verify_batches.fetch_add(1, Ordering::Relaxed);
        self.verified_ops.fetch_add(ops as u64, Ordering::Relaxed);
    }
    /// `entries` entries left for a subscriber `elapsed` after their commit.
    pub fn fanout_lag(&self, elapsed: Duration, entries: u64) {
        self.fanout_lag.observe_n(elapsed, entries);
    }

    /// The Prometheus text rendering.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        gauge(
            &mut out,
            "ants_relay_connections",
            "Open WebSocket connections.",
            "gauge",
            load(&self.connections_open),
        );
        gauge(
            &mut out,
            "ants_relay_connections_total",
            "WebSocket connections accepted.",
            "counter",
            load(&self.connections_total),
        );
        gauge(
            &mut out,
            "ants_relay_connections_refused_total",
            "Connections refused at the connection limit.",
            "counter",
            load(&self.connections_refused),
        );
        gauge(
            &mut out,
            "ants_relay_http_connections",
            "TCP connections served HTTP, not (yet) upgraded to a WebSocket.",
            "gauge",
            load(&self.http_connections),
        );
        gauge(
            &mut out,
            "ants_relay_http_evicted_total",
            "Connections not yet upgraded closed to make room for a new one (max_http_connections).",
            "counter",
            load(&self.http_evicted),
        );
        gauge(
            &mut out,
            "ants_relay_slow_consumers_total",
            "Connections closed as slow consumers.",
            "counter",
            load(&self.slow_consumers),
        );
        gauge(
            &mut out,
            "ants_relay_ops_accepted_total",
            "Ops newly stored (publishes answered with a receipt, retries not counted).",
            "counter",
            load(&self.ops_accepted),
        );
        gauge(
            &mut out,
            "ants_relay_append_conflicts_total",
            "Batch appends fenced because another frontend appended to one of their topics first \
             (cluster mode; each batch is then decided again).",
            "counter",
            load(&self.append_conflicts),
        );
        gauge(
            &mut out,
            "ants_relay_ops_retried_total",
            "Retries of stored ops, answered with the original receipt (nothing stored).",
            "counter",
            load(&self.ops_retried),
        );
        gauge(
            &mut out,
            "ants_relay_cache_bytes",
            "Bytes of committed entries cached in memory for fan-out, over all topics.",
            "gauge",
            load(&self.cache_bytes),
        );
        gauge(
            &mut out,
            "ants_relay_entries_restored",
            "Entries found in storage at startup.",
            "gauge",
            load(&self.entries_restored),
        );
        gauge(
            &mut out,
            "ants_relay_commit_batches_total",
            "Group-commit transactions.",
            "counter",
            load(&self.batches),
        );
        gauge(
            &mut out,
            "ants_relay_commit_batch_ops_total",
            "Publishes sequenced in group-commit transactions (divide by the batches for the mean batch).",
            "counter",
            load(&self.batched_ops),
        );
        gauge(
            &mut out,
            "ants_relay_verify_batches_total",
            "Batch signature equations checked.",
            "counter",
            load(&self.verify_batches),
        );
        gauge(
            &mut out,
            "ants_relay_verify_batch_ops_total",
            "Op signatures checked in batch equations.",
            "counter",
            load(&self.verified_ops),
        );
        let _ = writeln!(
            out,
            "# HELP ants_relay_sequencer_seconds_total Sequencer thread time, by phase of a batch."
        );
        let _ = writeln!(out, "# TYPE ants_relay_sequencer_seconds_total counter");
        for phase in Phase::ALL {
            let micros = load(&self.phases[phase as usize]);
            let _ = writeln!(
                out,
                "ants_relay_sequencer_seconds_total{{phase=\"{}\"}} {}.{:06}",
                phase.name(),
                micros / 1_000_000,
                micros % 1_000_000
            );
        }
        render_by_code(
            &mut out,
            "ants_relay_refused_total",
            "Requests refused, by error code.",
            &self.ops_refused,
        );
        gauge(
            &mut out,
            "ants_relay_yjs_rooms",
            "Yjs rooms loaded.",
            "gauge",
            load(&self.yjs_rooms_open),
        );
        gauge(
            &mut out,
            "ants_relay_yjs_updates_total",
            "Updates Yjs rooms stored (or published to their bridged topic).",
            "counter",
            load(&self.yjs_updates),
        );
        gauge(
            &mut out,
            "ants_relay_yjs_bridged_entries_replayed_total",
            "Entries of their topics that bridged Yjs rooms read while opening (those after the \
             room's last checkpoint).",
            "counter",
            load(&self.yjs_bridged_replayed),
        );
        render_by_code(
            &mut out,
            "ants_relay_yjs_closed_total",
            "Yjs connections the relay closed, by reason code.",
            &self.yjs_closed,
        );
        self.commit.render(
            &mut out,
            "ants_relay_commit_seconds",
            "Time of one COMMIT: writing a batch to the WAL (its sync is counted apart).",
        );
        self.fsync.render(
            &mut out,
            "ants_relay_fsync_seconds",
            "Time of one WAL sync, which makes every batch committed before it durable.",
        );
        self.batch.render(
            &mut out,
            "ants_relay_batch_seconds",
            "From the start of a batch to its announcement: sequenced, committed, synced.",
        );
        self.publish_to_receipt.render(
            &mut out,
            "ants_relay_publish_to_receipt_seconds",
            "From a publish frame's arrival to its receipt being queued (after the sync).",
        );
        self.fanout_lag.render(
            &mut out,
            "ants_relay_fanout_lag_seconds",
            "From commit to an entry frame being written to a subscriber (live and cached entries; not those read back from storage for a replay).",
        );
        out
    }
}

/// The phases of one group-commit batch on the sequencer thread (for finding where its time
/// goes: `ants_relay_sequencer_seconds_total{phase=…}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Checks, numbering, Merkle frontier, replica.
    Sequence,
    /// Signing the batch's receipts: one signature for the batch, before Write.
    Sign,
    /// Writing rows (entries, hashes, snapshots).
    Write,
    /// `COMMIT`: writing the batch to the WAL (its sync runs on the durability thread).
    Commit,
    /// Building the batch's announcement and handing it to the durability thread.
    Answer,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 5] = [
        Phase::Sequence,
        Phase::Sign,
        Phase::Write,
        Phase::Commit,
        Phase::Answer,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Sequence => "sequence",
            Phase::Sign => "sign",
            Phase::Write => "write",
            Phase::Commit => "commit",
            Phase::Answer => "answer",
        }
    }
}

/// Writes the counter `name`, one sample per code.
fn render_by_code(out: &mut String, name: &str, help: &str, counts: &Mutex<BTreeMap<String, u64>>) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    if let Ok(counts) = counts.lock() {
        for (code, count) in counts.iter() {
            let _ = writeln!(out, "{name}{{code=\"{code}\"}} {count}");
        }
    }
}

/// Adds one to `code`'s count (codes are the crate's stable error codes: a small set).
fn count_by_code(counts: &Mutex<BTreeMap<String, u64>>, code: &str) {
    if let Ok(mut counts) = counts.lock() {
        *counts.entry(code.to_owned()).or_default() += 1;
    }
}
