//! Replica throughput and election cost.
//!
//! `apply`: entries are built and signed beforehand (the relay verifies signatures once; a
//! replica folds already-verified entries), then a fresh replica folds them all. The target is
//! 200,000 entries/s; the run prints the measured rate and its ratio to that target.
//! `election`: ranking 10,000 candidates (plain and weighted), and the leader alone.

use std::time::{Duration, Instant};

use ants_coord::election::{self, ElectionMode, WeightedCandidate};
use ants_coord::replica::{ReplicaConfig, ReplicaOp};
use ants_coord::{Entry, Identity, OpDraft, Replica, SignedOp};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const TOPIC: &str = "bench";
const AGENTS: usize = 200;
const ENTRIES: usize = 20_000;

fn identities(n: usize) -> Vec<Identity> {
    (0..n)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
            Identity::from_seed(&seed).expect("seed")
        })
        .collect()
}

/// A mixed stream: mints, then claims, renewals, conflicts, releases, transfers, posts, tasks.
fn workload() -> (ReplicaConfig, Vec<Entry>) {
    let agents = identities(AGENTS);
    let issuer = &agents[0];
    let config = ReplicaConfig {
        issuers: vec![issuer.agent_id()],
        ..ReplicaConfig::default()
    };
    let mut counters = vec![0u64; AGENTS];
    let mut entries = Vec::with_capacity(ENTRIES);
    let mut now = 1_700_000_000_000u64;
    for i in 0..ENTRIES {
        now += 3;
        let (who, op) = if i < AGENTS {
            (
                0,
                ReplicaOp::Mint {
                    to: agents[i].agent_id(),
                    amount: 1_000_000,
                },
            )
        } else {
            let who = (i * 7919) % AGENTS;
            let resource = format!("slot-{}", (i * 31) % 500);
            let op = match i % 10 {
                0..=3 => ReplicaOp::Claim {
                    resource,
                    lease_ms: 0,
                    stake: (i % 13) as u64,
                    fence: None,
                },
                4 | 5 => ReplicaOp::Release { resource },
                6 => ReplicaOp::Transfer {
                    to: agents[(who + 1) % AGENTS].agent_id(),
                    amount: 3,
                },
                7 => ReplicaOp::Post {
                    text: "status: ok".into(),
                },
                8 => ReplicaOp::TaskPost {
                    task: format!("task-{i}"),
                    reward: 5,
                    deadline_ms: now + 20_000,
                },
                _ => ReplicaOp::Complete { resource },
            };
            (who, op)
        };
        let op = SignedOp::sign(
            &agents[who],
            OpDraft {
                topic: TOPIC.into(),
                kind: op.kind().into(),
                counter: counters[who],
                time_ms: now,
                deps: vec![],
                body: op.encode().expect("body"),
            },
        )
        .expect("sign");
        counters[who] += 1;
        entries.push(Entry::new(i as u64, now, op));
    }
    (config, entries)
}

fn apply(c: &mut Criterion) {
    let (config, entries) = workload();
    let mut group = c.benchmark_group("replica");
    group.throughput(Throughput::Elements(entries.len() as u64));
    group.sample_size(20);
    group.bench_function("apply_20k_mixed", |b| {
        b.iter_batched(
            || Replica::new(TOPIC, config.clone()).expect("replica"),
            |mut replica| {
                for entry in &entries {
                    replica.apply(entry).expect("apply");
                }
                replica
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();

    // The ratio against the target, from a plain timed run.
    let runs = 5;
    let start = Instant::now();
    for _ in 0..runs {
        let mut replica = Replica::new(TOPIC, config.clone()).expect("replica");
        for entry in &entries {
            replica.apply(entry).expect("apply");
        }
        std::hint::black_box(replica.state_hash());
    }
    let rate = (runs * entries.len()) as f64 / start.elapsed().as_secs_f64();
    println!(
        "replica apply: {rate:.0} entries/s = {:.2}x the 200,000 entries/s target",
        rate / 200_000.0
    );
}

fn elect(c: &mut Criterion) {
    let candidates: Vec<WeightedCandidate> = identities(10_000)
        .iter()
        .enumerate()
        .map(|(i, id)| WeightedCandidate {
            agent: id.agent_id(),
            weight: 1 + (i % 5) as u64,
        })
        .collect();
    let agents: Vec<_> = candidates.iter().map(|c| c.agent).collect();
    let mut group = c.benchmark_group("election");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("rank_10k_priority", |b| {
        b.iter(|| election::rank(TOPIC, &candidates, 12_345, ElectionMode::Priority, None))
    });
    group.bench_function("rank_10k_weighted", |b| {
        b.iter(|| election::rank(TOPIC, &candidates, 12_345, ElectionMode::Weighted, None))
    });
    group.bench_function("top3_10k_weighted", |b| {
        b.iter(|| election::rank(TOPIC, &candidates, 12_345, ElectionMode::Weighted, Some(3)))
    });
    group.bench_function("leader_10k", |b| {
        b.iter(|| election::leader_of(TOPIC, &agents, 12_345))
    });
    group.finish();
}

criterion_group!(benches, apply, elect);
criterion_main!(benches);
