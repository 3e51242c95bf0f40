//! Transparency-log benchmarks: append throughput, proof generation and verification at one
//! million leaves.
//!
//! Run: `cargo bench --bench log`. There is no crate peer for an RFC 6962 log with a subtree
//! store in this run; the peer is the direct recursive definition (`merkle_root`, the way a naive
//! implementation recomputes a root over all leaves), measured side by side, and the ratio is
//! printed. Everything else is reported as absolute numbers.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ants_coord::log::{leaf_hash, merkle_root, verify_consistency, verify_inclusion, MerkleLog};
use criterion::{BatchSize, Criterion, Throughput};

#[path = "support/ratio.rs"]
mod ratio;

const LEAVES: u64 = 1_000_000;
/// A realistic small entry: ~200 bytes (an entry header around a short signed op).
const LEAF_LEN: usize = 200;

fn leaf(i: u64) -> [u8; LEAF_LEN] {
    let mut bytes = [0u8; LEAF_LEN];
    bytes[..8].copy_from_slice(&i.to_be_bytes());
    bytes
}

fn filled_log() -> MerkleLog {
    let mut log = MerkleLog::new();
    for i in 0..LEAVES {
        log.append(&leaf(i)).expect("append");
    }
    log
}

/// A deterministic spread of indices (no RNG dependency).
fn index(i: u64, below: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % below
}

fn append(c: &mut Criterion) {
    let leaves: Vec<[u8; LEAF_LEN]> = (0..LEAVES).map(leaf).collect();
    let mut group = c.benchmark_group("log_append");
    group.sample_size(10);
    group.throughput(Throughput::Elements(LEAVES));
    group.bench_function("merkle_log_1M_leaves", |b| {
        b.iter(|| {
            let mut log = MerkleLog::new();
            for l in &leaves {
                log.append(l).expect("append");
            }
            black_box(log.root())
        })
    });
    let refs: Vec<&[u8]> = leaves.iter().map(|l| &l[..]).collect();
    group.bench_function("peer_recursive_root_1M_leaves", |b| {
        b.iter(|| black_box(merkle_root(black_box(&refs))))
    });
    group.finish();

    // The ratio, measured here in one run (criterion's own report has the distributions). On a
    // shared machine wall time includes waiting for a core, so the thread's CPU time is printed
    // too (Linux: /proc/thread-self/schedstat).
    let time = |f: &mut dyn FnMut()| {
        let (start, cpu_start) = (Instant::now(), thread_cpu());
        f();
        (
            start.elapsed(),
            thread_cpu().zip(cpu_start).map(|(b, a)| b - a),
        )
    };
    let (ours, ours_cpu) = time(&mut || {
        let mut log = MerkleLog::new();
        for l in &leaves {
            log.append(l).expect("append");
        }
        black_box(log.root());
    });
    let (peer, peer_cpu) = time(&mut || {
        black_box(merkle_root(&refs));
    });
    let rate = |d: Duration| LEAVES as f64 / d.as_secs_f64() / 1e6;
    println!(
        "append {LEAF_LEN}-byte leaves: MerkleLog {:.2} M leaves/s wall ({} CPU) vs peer recursive root {:.2} M leaves/s wall ({} CPU): ratio {:.2}",
        rate(ours),
        ours_cpu.map_or("n/a".into(), |d| format!("{:.2} M leaves/s", rate(d))),
        rate(peer),
        peer_cpu.map_or("n/a".into(), |d| format!("{:.2} M leaves/s", rate(d))),
        peer.as_secs_f64() / ours.as_secs_f64(),
    );
}

/// CPU time of this thread so far, where the OS reports it.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn proofs(c: &mut Criterion) {
    let log = filled_log();
    let root = log.root();
    let mut group = c.benchmark_group("log_proofs_at_1M");
    group.measurement_time(Duration::from_secs(3));
    let mut i = 0u64;
    group.bench_function("inclusion_proof_generate", |b| {
        b.iter(|| {
            i += 1;
            black_box(
                log.inclusion_proof(index(i, LEAVES), LEAVES)
                    .expect("proof"),
            )
        })
    });
    group.bench_function("consistency_proof_generate", |b| {
        b.iter(|| {
            i += 1;
            black_box(
                log.consistency_proof(index(i, LEAVES) + 1, LEAVES)
                    .expect("proof"),
            )
        })
    });
    group.bench_function("inclusion_proof_verify", |b| {
        b.iter_batched(
            || {
                i += 1;
                let at = index(i, LEAVES);
                (at, log.inclusion_proof(at, LEAVES).expect("proof"))
            },
            |(at, proof)| {
                verify_inclusion(&leaf_hash(&leaf(at)), at, LEAVES, &proof.hashes, &root)
                    .expect("verifies")
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("consistency_proof_verify", |b| {
        b.iter_batched(
            || {
                i += 1;
                let old = index(i, LEAVES) + 1;
                let old_root = log.root_at(old).expect("root");
                (
                    old,
                    old_root,
                    log.consistency_proof(old, LEAVES).expect("proof"),
                )
            },
            |(old, old_root, proof)| {
                verify_consistency(old, &old_root, LEAVES, &root, &proof.hashes).expect("verifies")
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("root_at_earlier_size", |b| {
        b.iter(|| {
            i += 1;
            black_box(log.root_at(index(i, LEAVES)).expect("root"))
        })
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    append(&mut criterion);
    proofs(&mut criterion);
    criterion.final_summary();
    ratio::print(&[(
        "append 1M leaves",
        "log_append/merkle_log_1M_leaves",
        "log_append/peer_recursive_root_1M_leaves",
    )]);
}
