//! Re-derives `tests/vectors/election.json` and `tests/vectors/replica.json`.
//!
//! Run with `ANTS_UPDATE_VECTORS=1` to rewrite the files after an intended protocol change; any
//! other difference fails. The JS tests read the same files and must reach the same hashes.
#![cfg(not(target_arch = "wasm32"))]

mod replica_support;

use std::path::PathBuf;

use ants_coord::election::{self, ElectionMode, WeightedCandidate};
use ants_coord::replica::{ReplicaConfig, ReplicaOp, SlashPolicy};
use ants_coord::{AgentId, Identity, Replica};
use replica_support::{agent, scenarios, Log};
use serde_json::{json, Value};

fn check(name: &str, derived: Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    let text = serde_json::to_string_pretty(&derived).unwrap() + "\n";
    if std::env::var_os("ANTS_UPDATE_VECTORS").is_some() || !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        stored == derived,
        "{name} differs from what the code derives; rerun with ANTS_UPDATE_VECTORS=1 only if \
         the protocol changed on purpose"
    );
}

#[test]
fn election_vectors() {
    let topic = "ants/election-vectors";
    let seeds: Vec<u8> = (1..=6).collect();
    let ids: Vec<Identity> = seeds.iter().map(|&s| agent(s)).collect();
    let weights = [1u64, 2, 1, 5, 0, 3];
    let candidates: Vec<WeightedCandidate> = ids
        .iter()
        .zip(weights)
        .map(|(i, weight)| WeightedCandidate {
            agent: i.agent_id(),
            weight,
        })
        .collect();
    let window_ms = 30_000u64;
    let mut windows = Vec::new();
    for now_ms in [0u64, 29_999, 30_000, 1_700_000_000_000, 1_700_000_017_345] {
        let window = election::window_of(now_ms, window_ms).unwrap();
        let plain = election::elect(
            topic,
            &candidates,
            now_ms,
            window_ms,
            ElectionMode::Priority,
            None,
        )
        .unwrap();
        let weighted = election::elect(
            topic,
            &candidates,
            now_ms,
            window_ms,
            ElectionMode::Weighted,
            None,
        )
        .unwrap();
        let standings: Vec<Value> = candidates
            .iter()
            .map(|c| {
                let p = election::priority(topic, &c.agent, window).unwrap();
                json!({
                    "agentId": c.agent.to_string(),
                    "priority": hex::encode(p),
                    "prefix": hex::encode(election::PriorityHasher::prefix_bytes(topic)),
                    "negLog2UQ32": election::neg_log2_q32(&p).to_string(),
                    "weight": c.weight,
                    "weightedKey": election::weighted_key(c.weight, election::neg_log2_q32(&p)).to_string(),
                })
            })
            .collect();
        windows.push(json!({
            "nowMs": now_ms,
            "window": window,
            "endsAtMs": plain.ends_at_ms,
            "standings": standings,
            "ranking": plain.ranking.iter().map(|s| s.agent.to_string()).collect::<Vec<_>>(),
            "weightedRanking": weighted.ranking.iter().map(|s| s.agent.to_string()).collect::<Vec<_>>(),
            "leader": plain.leader.to_string(),
            "weightedLeader": weighted.leader.to_string(),
        }));
    }
    // The zero padding of the prefix: none when `24 + len` is already a multiple of 64.
    let prefix_cases: Vec<Value> = [1usize, 39, 40, 41, 104]
        .iter()
        .map(|&len| {
            let topic = "p".repeat(len);
            let prefix = election::PriorityHasher::prefix_bytes(&topic);
            let c = &candidates[0].agent;
            json!({
                "topic": topic,
                "prefix": hex::encode(&prefix),
                "agentId": c.to_string(),
                "window": 7,
                "priority": hex::encode(election::priority(&topic, c, 7).unwrap()),
            })
        })
        .collect();
    let mut log2_cases = Vec::new();
    for h in [
        0u64,
        1,
        2,
        3,
        1 << 32,
        (1 << 63) - 1,
        1 << 63,
        u64::MAX - 1,
        u64::MAX,
    ] {
        let mut p = [0u8; 32];
        p[..8].copy_from_slice(&h.to_be_bytes());
        log2_cases.push(
            json!({ "h": h.to_string(), "negLog2UQ32": election::neg_log2_q32(&p).to_string() }),
        );
    }
    check(
        "election.json",
        json!({
            "description": "PROTOCOL.md section 6.3. priority = SHA-256(prefix ‖ agent ‖ u64 window), prefix = domain ‖ u8 len ‖ topic zero-padded to a multiple of 64 bytes; weighted key = floor(w·2^64 / L) with L = negLog2UQ32 (decimal strings: they exceed 2^53).",
            "domain": String::from_utf8_lossy(election::ELECTION_DOMAIN).replace('\0', "\\0"),
            "topic": topic,
            "windowMs": window_ms,
            "candidates": ids.iter().zip(seeds).zip(weights).map(|((i, s), w)| json!({
                "seed": hex::encode([s; 32]),
                "agentId": i.agent_id().to_string(),
                "weight": w,
            })).collect::<Vec<_>>(),
            "windows": windows,
            "prefixCases": prefix_cases,
            "negLog2UQ32Cases": log2_cases,
        }),
    );
}

/// One scenario touching every op kind and every pattern, as the relay would sequence it.
fn scenario() -> (String, ReplicaConfig, Log, Vec<(&'static str, u8)>) {
    let topic = "ants/replica-vectors".to_string();
    let cast = [
        ("issuer", 9u8),
        ("poster", 8),
        ("alice", 1),
        ("bob", 2),
        ("aliceNewKey", 50),
        ("g1", 11),
        ("g2", 12),
        ("g3", 13),
    ];
    let id = |name: &str| {
        let seed = cast.iter().find(|(n, _)| *n == name).unwrap().1;
        agent(seed)
    };
    let t0 = 1_700_000_000_000u64;
    let config = ReplicaConfig {
        issuers: vec![id("issuer").agent_id()],
        default_lease_ms: 60_000,
        max_lease_ms: 600_000,
        recovery_delay_ms: 30_000,
        slash_policy: SlashPolicy::Poster,
        election_window_ms: 10_000,
        election_mode: ElectionMode::Weighted,
        candidates: vec![
            WeightedCandidate {
                agent: id("alice").agent_id(),
                weight: 1,
            },
            WeightedCandidate {
                agent: id("bob").agent_id(),
                weight: 2,
            },
        ],
        feed_capacity: 3,
    };
    let mut log = Log::new(&topic, t0);
    let a = |n: &str| id(n).agent_id();
    let claim = |r: &str, stake| ReplicaOp::Claim {
        resource: r.into(),
        lease_ms: 0,
        stake,
        fence: None,
    };
    let mut sorted_guardians: Vec<AgentId> = vec![a("g1"), a("g2"), a("g3")];
    sorted_guardians.sort();
    let steps: Vec<(&str, ReplicaOp, u64)> = vec![
        (
            "issuer",
            ReplicaOp::Mint {
                to: a("poster"),
                amount: 100,
            },
            0,
        ),
        (
            "issuer",
            ReplicaOp::Mint {
                to: a("alice"),
                amount: 50,
            },
            10,
        ),
        (
            "issuer",
            ReplicaOp::Mint {
                to: a("bob"),
                amount: 50,
            },
            10,
        ),
        (
            "alice",
            ReplicaOp::Mint {
                to: a("alice"),
                amount: 1,
            },
            10,
        ),
        (
            "poster",
            ReplicaOp::TaskPost {
                task: "task-1".into(),
                reward: 40,
                deadline_ms: t0 + 200_000,
            },
            10,
        ),
        ("alice", claim("task-1", 10), 10),
        ("bob", claim("task-1", 15), 5),
        ("alice", claim("task-1", 15), 5),
        ("alice", claim("room-4@10:00", 0), 10),
        ("bob", claim("room-4@10:00", 0), 1),
        (
            "poster",
            ReplicaOp::Complete {
                resource: "task-1".into(),
            },
            10,
        ),
        (
            "poster",
            ReplicaOp::TaskPost {
                task: "task-2".into(),
                reward: 5,
                deadline_ms: t0 + 300_000,
            },
            10,
        ),
        ("alice", claim("task-2", 7), 10),
        (
            "alice",
            ReplicaOp::Fail {
                resource: "task-2".into(),
            },
            10,
        ),
        (
            "bob",
            ReplicaOp::Transfer {
                to: a("alice"),
                amount: 500,
            },
            10,
        ),
        (
            "bob",
            ReplicaOp::Transfer {
                to: a("alice"),
                amount: 5,
            },
            10,
        ),
        (
            "bob",
            ReplicaOp::Vouch {
                subject: a("alice"),
                statement: "delivers on time".into(),
            },
            10,
        ),
        (
            "alice",
            ReplicaOp::GuardiansSet {
                guardians: sorted_guardians,
            },
            10,
        ),
        (
            "g1",
            ReplicaOp::RecoveryRequest {
                agent: a("alice"),
                new_key: a("aliceNewKey"),
            },
            10,
        ),
        (
            "bob",
            ReplicaOp::RecoveryApprove {
                agent: a("alice"),
                new_key: a("aliceNewKey"),
            },
            10,
        ),
        (
            "g2",
            ReplicaOp::RecoveryApprove {
                agent: a("alice"),
                new_key: a("aliceNewKey"),
            },
            10,
        ),
        (
            "alice",
            ReplicaOp::Post {
                text: "still mine for now".into(),
            },
            10,
        ),
        (
            "alice",
            ReplicaOp::Post {
                text: "too late".into(),
            },
            30_000,
        ),
        (
            "aliceNewKey",
            ReplicaOp::Transfer {
                to: a("bob"),
                amount: 1,
            },
            10,
        ),
        (
            "bob",
            ReplicaOp::LeaderAct {
                window: 0,
                payload: vec![1],
            },
            10,
        ),
    ];
    for (who, op, wait) in steps {
        log.wait(wait);
        log.push(&id(who), &op);
    }
    // The current leader acts with the right fencing token (alice signs with her new key).
    let election = election::elect(
        &topic,
        &config.candidates,
        log.now_ms,
        config.election_window_ms,
        config.election_mode,
        None,
    )
    .unwrap();
    let leader = if election.leader == a("alice") {
        id("aliceNewKey")
    } else {
        id("bob")
    };
    log.push(
        &leader,
        &ReplicaOp::LeaderAct {
            window: election.window,
            payload: b"rebalance".to_vec(),
        },
    );
    log.wait(300_000);
    log.push(
        &id("poster"),
        &ReplicaOp::Post {
            text: "idle".into(),
        },
    );
    log.wait(10);
    log.push_raw(&id("bob"), "doc.update", vec![0xde, 0xad]);
    log.push_raw(&id("bob"), "claim", vec![1, 0]);
    (topic, config, log, cast.to_vec())
}

/// Guardians 7 of alice; `approvers` of them approve a rotation to a new key; with `veto`, alice's
/// old key vetoes inside the delay; then the delay passes and alice's old key tries to spend.
fn recovery_scenario(approvers: usize, veto: bool) -> (String, ReplicaConfig, Log) {
    let topic = "ants/recovery-vectors".to_string();
    let (issuer, alice, new_key) = (agent(9), agent(1), agent(50));
    let guardians: Vec<Identity> = (10..17).map(agent).collect();
    let config = ReplicaConfig {
        issuers: vec![issuer.agent_id()],
        recovery_delay_ms: 60_000,
        ..ReplicaConfig::default()
    };
    let mut log = Log::new(&topic, 1_700_000_000_000);
    log.push(
        &issuer,
        &ReplicaOp::Mint {
            to: alice.agent_id(),
            amount: 30,
        },
    );
    let mut ids: Vec<AgentId> = guardians.iter().map(Identity::agent_id).collect();
    ids.sort();
    log.wait(5)
        .push(&alice, &ReplicaOp::GuardiansSet { guardians: ids });
    let (a, k) = (alice.agent_id(), new_key.agent_id());
    log.wait(5).push(
        &guardians[0],
        &ReplicaOp::RecoveryRequest {
            agent: a,
            new_key: k,
        },
    );
    for g in &guardians[1..approvers] {
        log.wait(5).push(
            g,
            &ReplicaOp::RecoveryApprove {
                agent: a,
                new_key: k,
            },
        );
    }
    if veto {
        log.wait(5)
            .push(&alice, &ReplicaOp::RecoveryVeto { new_key: k });
    }
    log.wait(60_000);
    log.push(
        &alice,
        &ReplicaOp::Transfer {
            to: issuer.agent_id(),
            amount: 1,
        },
    );
    log.wait(5).push(
        &new_key,
        &ReplicaOp::Transfer {
            to: issuer.agent_id(),
            amount: 2,
        },
    );
    (topic, config, log)
}

fn replay(name: &str, topic: &str, config: &ReplicaConfig, log: &Log) -> (Value, Replica) {
    let mut replica = Replica::new(topic, config.clone()).unwrap();
    let mut restored_midway: Option<Replica> = None;
    let mut entries = Vec::new();
    for (i, entry) in log.entries.iter().enumerate() {
        let events = replica.apply(entry).unwrap();
        replica.audit().unwrap();
        if let Some(copy) = restored_midway.as_mut() {
            assert_eq!(copy.apply(entry).unwrap(), events);
        }
        if i == log.entries.len() / 2 {
            restored_midway = Some(Replica::restore(&replica.snapshot()).unwrap());
        }
        entries.push(json!({
            "seq": entry.seq(),
            "relayTimeMs": entry.relay_time_ms(),
            "kind": entry.op().kind(),
            "author": entry.op().author().to_string(),
            "entry": hex::encode(entry.as_bytes()),
            "events": serde_json::to_value(&events).unwrap(),
            "stateHash": hex::encode(replica.state_hash()),
        }));
    }
    assert_eq!(restored_midway.unwrap().state_hash(), replica.state_hash());
    let balances: serde_json::Map<String, Value> = replica
        .balances()
        .map(|(a, b)| (a.to_string(), json!(b)))
        .collect();
    let value = json!({
        "name": name,
        "topic": topic,
        "config": hex::encode(config.encode().unwrap()),
        "entries": entries,
        "final": {
            "stateHash": hex::encode(replica.state_hash()),
            "snapshot": hex::encode(replica.snapshot()),
            "balances": balances,
            "supply": serde_json::to_value(replica.supply()).unwrap(),
        },
    });
    (value, replica)
}

#[test]
fn replica_vectors() {
    let (topic, config, log, cast) = scenario();
    let (all, replica) = replay("all-patterns", &topic, &config, &log);
    assert_eq!(
        replica.current_key(&agent(1).agent_id()),
        agent(50).agent_id()
    );
    let mut scenarios = vec![all];
    for (name, approvers, veto, rotated) in [
        ("recovery-5-of-7", 5, false, true),
        ("recovery-4-of-7", 4, false, false),
        ("recovery-veto", 5, true, false),
    ] {
        let (topic, config, log) = recovery_scenario(approvers, veto);
        let (value, replica) = replay(name, &topic, &config, &log);
        let alice = agent(1).agent_id();
        let expected_key = if rotated { agent(50).agent_id() } else { alice };
        assert_eq!(replica.current_key(&alice), expected_key, "{name}");
        // Exactly one of the two transfers spends alice's units: the old key's or the new one's.
        assert_eq!(
            replica.balance(&alice),
            if rotated { 28 } else { 29 },
            "{name}"
        );
        scenarios.push(value);
    }
    for s in scenarios::all() {
        let (value, _) = replay(s.name, &s.topic, &s.config, &s.log);
        scenarios.push(value);
    }
    let cast: Vec<Value> = cast
        .iter()
        .map(|(n, s)| json!({ "name": n, "seed": hex::encode([*s; 32]), "agentId": agent(*s).agent_id().to_string() }))
        .collect();
    check(
        "replica.json",
        json!({
            "description": "PROTOCOL.md section 6. For each scenario: apply each `entry` (hex) in order to a replica of `topic` with `config` (canonical bytes, hex); after each, the events (JSON view) and the state hash must match; at the end the snapshot too. `invalidConfigs`: config bytes a decoder must refuse, with the code (6.1: the first defect in layout order decides).",
            "cast": cast,
            "scenarios": scenarios,
            "invalidConfigs": invalid_configs(),
        }),
    );
}

/// Config bytes with one or more defects, each refused with the code of the first one in layout
/// order (PROTOCOL.md 6.1). Offsets into the base config: issuers at 2 and 34, default lease 66,
/// max lease 74, slash policy 90, window 91, mode 99, candidate count 100, candidates 102 and 142.
fn invalid_configs() -> Vec<Value> {
    let ids = [agent(1).agent_id(), agent(2).agent_id()];
    let base = ReplicaConfig {
        issuers: ids.to_vec(),
        candidates: ids
            .iter()
            .map(|&agent| WeightedCandidate { agent, weight: 1 })
            .collect(),
        ..ReplicaConfig::default()
    }
    .encode()
    .unwrap();
    assert_eq!(base.len(), 186);
    assert!(ReplicaConfig::decode(&base).is_ok());
    let with = |edits: &[(usize, &[u8])]| {
        let mut bytes = base.clone();
        for (at, new) in edits {
            bytes[*at..*at + new.len()].copy_from_slice(new);
        }
        bytes
    };
    let swap = |bytes: &mut Vec<u8>, a: usize, b: usize, len: usize| {
        let first = bytes[a..a + len].to_vec();
        bytes.copy_within(b..b + len, a);
        bytes[b..b + len].copy_from_slice(&first);
    };
    let mut small_order = [0u8; 32];
    small_order[0] = 1;
    let zero = 0u64.to_be_bytes();
    let mut unsorted_issuers = base.clone();
    swap(&mut unsorted_issuers, 2, 34, 32);
    let mut unsorted_candidates = base.clone();
    swap(&mut unsorted_candidates, 102, 142, 40);
    let repeated_issuer = with(&[(34, &base[2..34])]);
    let mut trailing = base.clone();
    trailing.push(0);
    let mut unsorted_and_lease_0 = unsorted_issuers.clone();
    unsorted_and_lease_0[66..74].copy_from_slice(&zero);
    let mut trailing_and_window_0 = with(&[(91, &zero)]);
    trailing_and_window_0.push(0);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("version 2", with(&[(0, &[2])])),
        ("empty", vec![]),
        ("cut inside default_lease_ms", base[..70].to_vec()),
        ("issuer not a public key", with(&[(2, &small_order)])),
        ("issuers unsorted", unsorted_issuers),
        ("issuer repeated", repeated_issuer),
        ("default_lease_ms 0", with(&[(66, &zero)])),
        (
            "max_lease_ms below default_lease_ms",
            with(&[(74, &59_999u64.to_be_bytes())]),
        ),
        ("election_window_ms 0", with(&[(91, &zero)])),
        ("slash policy 2", with(&[(90, &[2])])),
        ("election mode 2", with(&[(99, &[2])])),
        (
            "candidate count 4097",
            with(&[(100, &4097u16.to_be_bytes())]),
        ),
        ("candidates unsorted", unsorted_candidates),
        ("trailing byte", trailing),
        (
            "slash policy 2 before election_window_ms 0",
            with(&[(90, &[2]), (91, &zero)]),
        ),
        (
            "issuers unsorted before default_lease_ms 0",
            unsorted_and_lease_0,
        ),
        (
            "election_window_ms 0 before a trailing byte",
            trailing_and_window_0,
        ),
    ];
    cases
        .into_iter()
        .map(|(name, bytes)| {
            let code = ReplicaConfig::decode(&bytes).unwrap_err().code();
            json!({ "name": name, "config": hex::encode(&bytes), "code": code })
        })
        .collect()
}
