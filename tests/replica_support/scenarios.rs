//! The rule scenarios of `tests/vectors/replica.json` beyond `all-patterns` and the 5-of-7
//! recoveries: each pins one rule that a wrong implementation could otherwise pass (the timer-kind
//! order, the clock's `max()`, the threshold formula, the slash policies, fencing, key collisions
//! in recovery, malformed bodies).

use ants_coord::election::{self, ElectionMode, WeightedCandidate};
use ants_coord::replica::{ReplicaConfig, ReplicaOp, SlashPolicy};
use ants_coord::{AgentId, Identity};

use super::{agent, Log};

/// A named log of one topic under one configuration.
pub struct Scenario {
    pub name: &'static str,
    pub topic: String,
    pub config: ReplicaConfig,
    pub log: Log,
}

const T0: u64 = 1_700_000_000_000;
/// The recovery delay of these scenarios.
const DELAY: u64 = 10_000;

fn scenario(name: &'static str, config: ReplicaConfig) -> Scenario {
    let topic = format!("ants/vectors/{name}");
    Scenario {
        log: Log::new(&topic, T0),
        name,
        topic,
        config,
    }
}

fn config(policy: SlashPolicy) -> ReplicaConfig {
    ReplicaConfig {
        issuers: vec![agent(9).agent_id()],
        recovery_delay_ms: DELAY,
        slash_policy: policy,
        max_lease_ms: 600_000,
        ..ReplicaConfig::default()
    }
}

fn claim(resource: &str, lease_ms: u64, stake: u64) -> ReplicaOp {
    ReplicaOp::Claim {
        resource: resource.into(),
        lease_ms,
        stake,
        fence: None,
    }
}

fn fenced(resource: &str, window: u64) -> ReplicaOp {
    ReplicaOp::Claim {
        resource: resource.into(),
        lease_ms: 0,
        stake: 0,
        fence: Some(window),
    }
}

fn mint(to: &Identity, amount: u64) -> ReplicaOp {
    ReplicaOp::Mint {
        to: to.agent_id(),
        amount,
    }
}

fn post(text: &str) -> ReplicaOp {
    ReplicaOp::Post { text: text.into() }
}

fn guardians(ids: &[&Identity]) -> ReplicaOp {
    let mut guardians: Vec<AgentId> = ids.iter().map(|i| i.agent_id()).collect();
    guardians.sort();
    ReplicaOp::GuardiansSet { guardians }
}

fn request(agent: &Identity, new_key: &Identity) -> ReplicaOp {
    ReplicaOp::RecoveryRequest {
        agent: agent.agent_id(),
        new_key: new_key.agent_id(),
    }
}

fn approve(agent: &Identity, new_key: &Identity) -> ReplicaOp {
    ReplicaOp::RecoveryApprove {
        agent: agent.agent_id(),
        new_key: new_key.agent_id(),
    }
}

/// Every scenario, in the order the vector file lists them.
pub fn all() -> Vec<Scenario> {
    vec![
        recovery_same_key(false),
        recovery_same_key(true),
        recovery_key_retired(),
        recovery_key_busy(),
        guardian_thresholds(),
        timers_same_time(),
        clock_never_runs_back(),
        claims_lifecycle(),
        burn_policy(),
        fenced_claims(),
        no_candidates(),
        weighted_zero_weight(),
        malformed_bodies(),
    ]
}

/// Two agents' rotations to the same key: the first to fire rotates, the second is cancelled.
/// With `same_time`, both are scheduled at the same relay time and the agent id bytes decide.
fn recovery_same_key(same_time: bool) -> Scenario {
    let name = if same_time {
        "recovery-same-key-same-time"
    } else {
        "recovery-same-key"
    };
    let mut s = scenario(name, config(SlashPolicy::Burn));
    let (a, b, key, g) = (agent(21), agent(22), agent(30), agent(40));
    let log = &mut s.log;
    log.push(&a, &guardians(&[&g]));
    log.push(&b, &guardians(&[&g]));
    // Each request by the only guardian reaches the threshold (1 of 1) and is scheduled.
    log.wait(5).push(&g, &request(&a, &key));
    log.wait(if same_time { 0 } else { 5 });
    log.push(&g, &request(&b, &key));
    log.wait(DELAY + 5).push(&key, &post("whose key am I?"));
    log.wait(1).push(&a, &post("a"));
    log.wait(1).push(&b, &post("b"));
    // The key is now current for one agent: naming it again is refused.
    log.wait(1).push(&g, &request(&b, &key));
    s
}

/// A rotation whose key was retired by the key's own earlier-firing rotation.
fn recovery_key_retired() -> Scenario {
    let mut s = scenario("recovery-key-retired", config(SlashPolicy::Burn));
    let (a, key, key2) = (agent(21), agent(30), agent(31));
    let (g1, g2, g3, g4) = (agent(40), agent(41), agent(42), agent(43));
    let log = &mut s.log;
    log.push(&a, &guardians(&[&g1, &g2, &g3]));
    // 1 of 2 approvals: pending, not scheduled.
    log.wait(5).push(&g1, &request(&a, &key));
    // The key, still free, registers a guardian of its own, who rotates it (scheduled first).
    log.wait(5).push(&key, &guardians(&[&g4]));
    log.wait(5).push(&g4, &request(&key, &key2));
    log.wait(5).push(&g2, &approve(&a, &key));
    log.wait(DELAY + 5).push(&key, &post("retired?"));
    log.wait(1).push(&key2, &post("key2 speaks for key"));
    log.wait(1).push(&a, &post("a keeps its key"));
    s
}

/// Rotations whose keys acquired guardians, a claim or a task of their own before firing are
/// cancelled; a balance does not block (it is merged), else anyone could block a recovery.
fn recovery_key_busy() -> Scenario {
    let mut s = scenario("recovery-key-busy", config(SlashPolicy::Burn));
    let issuer = agent(9);
    let agents: Vec<Identity> = (21..25).map(agent).collect();
    let keys: Vec<Identity> = (30..34).map(agent).collect();
    let (g, other) = (agent(40), agent(41));
    let log = &mut s.log;
    for a in &agents {
        log.push(a, &guardians(&[&g]));
    }
    for (a, k) in agents.iter().zip(&keys) {
        log.wait(1).push(&g, &request(a, k));
    }
    log.wait(1).push(&keys[0], &guardians(&[&other]));
    log.wait(1).push(&keys[1], &claim("desk", 0, 0));
    log.wait(1).push(
        &keys[2],
        &ReplicaOp::TaskPost {
            task: "errand".into(),
            reward: 0,
            deadline_ms: T0 + 1_000_000,
        },
    );
    log.wait(1).push(&issuer, &mint(&keys[3], 7));
    log.wait(DELAY).push(&keys[3], &post("merged"));
    for k in &keys[..3] {
        log.wait(1).push(k, &post("still my own agent"));
    }
    // At request time too: a key holding a claim, or with a balance, is in use.
    log.wait(1).push(&g, &request(&agents[0], &keys[1]));
    log.wait(1).push(&issuer, &mint(&agent(35), 1));
    log.wait(1).push(&g, &request(&agents[0], &agent(35)));
    s
}

/// The threshold `(2n + 2) div 3` for n = 1, 2, 4, 5, 6, 8, 32; then a 3-of-4 recovery that a
/// floor(2n/3) formula would schedule one approval early; a repeated approval counts once.
fn guardian_thresholds() -> Scenario {
    let mut s = scenario("guardian-thresholds", config(SlashPolicy::Burn));
    let who = agent(60);
    let pool: Vec<Identity> = (100..132).map(agent).collect();
    let log = &mut s.log;
    for n in [1usize, 2, 5, 6, 8, 32, 4] {
        let set: Vec<&Identity> = pool[..n].iter().collect();
        log.wait(1).push(&who, &guardians(&set));
    }
    let key = agent(61);
    log.wait(1).push(&pool[0], &request(&who, &key));
    log.wait(1).push(&pool[1], &approve(&who, &key));
    log.wait(1).push(&pool[1], &approve(&who, &key));
    log.wait(1).push(&pool[2], &approve(&who, &key));
    s
}

/// A task deadline, three lease ends and a key rotation all due at the same ms: deadline, then
/// leases by resource bytes (`aa` < `b` < `c`), then the rotation, which goes through because
/// the lease of its key's claim ended first. A claim on the task at its deadline is a claim on a
/// plain resource (never `DEADLINE_PASSED`).
fn timers_same_time() -> Scenario {
    let mut s = scenario("timers-same-time", config(SlashPolicy::Burn));
    let (issuer, poster, h1, h2) = (agent(9), agent(72), agent(71), agent(73));
    let (a, g, key) = (agent(74), agent(75), agent(76));
    let due = T0 + 50_000;
    let log = &mut s.log;
    log.push(&issuer, &mint(&poster, 5));
    log.push(&issuer, &mint(&h1, 20));
    log.wait(1).push(
        &poster,
        &ReplicaOp::TaskPost {
            task: "aa".into(),
            reward: 3,
            deadline_ms: due,
        },
    );
    log.wait(1).push(&h1, &claim("aa", 0, 5));
    let until = |log: &Log| due - log.now_ms;
    log.wait(1);
    let lease = until(log);
    log.push(&h2, &claim("b", lease, 0));
    log.wait(1).push(&a, &guardians(&[&g]));
    log.now_ms = due - DELAY;
    log.push(&g, &request(&a, &key));
    // The new key claims after the request (it was free then), its lease ending at `due`.
    log.wait(1);
    let lease = until(log);
    log.push(&key, &claim("c", lease, 0));
    log.now_ms = due;
    log.push(&h2, &claim("aa", 0, 0));
    log.wait(1).push(&key, &post("rotated"));
    s
}

/// Relay times that go backwards: the clock keeps the largest, so a deadline between the two
/// times has passed, and a lease counts from the largest time.
fn clock_never_runs_back() -> Scenario {
    let mut s = scenario("clock-max", config(SlashPolicy::Burn));
    let (issuer, poster, h) = (agent(9), agent(72), agent(71));
    let log = &mut s.log;
    log.push(&issuer, &mint(&poster, 10));
    log.now_ms = T0 + 1_000;
    log.push(&h, &claim("r", 0, 0));
    log.now_ms = T0 + 500;
    log.push(
        &poster,
        &ReplicaOp::TaskPost {
            task: "late".into(),
            reward: 1,
            deadline_ms: T0 + 800,
        },
    );
    log.now_ms = T0 + 400;
    log.push(&h, &claim("s", 0, 0));
    s
}

/// Claims under the poster policy: renewals keep the longer lease and the stake, releases by
/// others and of free resources are refused, a slash on a plain resource burns, a task that
/// lapses unclaimed names the poster with nothing slashed.
fn claims_lifecycle() -> Scenario {
    let mut s = scenario("claims-lifecycle", config(SlashPolicy::Poster));
    let (issuer, poster, h1, h2) = (agent(9), agent(72), agent(71), agent(73));
    let release = |r: &str| ReplicaOp::Release { resource: r.into() };
    let log = &mut s.log;
    log.push(&issuer, &mint(&h1, 50));
    log.push(&issuer, &mint(&poster, 20));
    log.wait(1).push(&h1, &claim("r", 1_000, 5));
    log.wait(1).push(&h1, &claim("r", 5_000, 9));
    log.wait(1).push(&h1, &claim("r", 10, 0));
    log.wait(1).push(&h2, &release("r"));
    log.wait(1).push(&h1, &release("r"));
    log.wait(1).push(&h1, &release("r"));
    log.wait(1).push(&h1, &claim("s", 0, 4));
    log.wait(1).push(
        &h1,
        &ReplicaOp::Fail {
            resource: "s".into(),
        },
    );
    log.wait(1).push(&h2, &claim("u", 0, 0));
    log.wait(1).push(
        &h1,
        &ReplicaOp::Complete {
            resource: "u".into(),
        },
    );
    log.wait(1).push(
        &h2,
        &ReplicaOp::Complete {
            resource: "u".into(),
        },
    );
    let deadline = log.now_ms + 2_000;
    log.wait(1).push(
        &poster,
        &ReplicaOp::TaskPost {
            task: "t".into(),
            reward: 6,
            deadline_ms: deadline,
        },
    );
    log.now_ms = deadline;
    log.push(&h2, &post("after the deadline"));
    s
}

/// The burn policy: a failed task claim and a task lapsing with a holder burn the stake.
fn burn_policy() -> Scenario {
    let mut s = scenario("burn-policy", config(SlashPolicy::Burn));
    let (issuer, poster, h) = (agent(9), agent(72), agent(71));
    let log = &mut s.log;
    log.push(&issuer, &mint(&poster, 20));
    log.push(&issuer, &mint(&h, 20));
    let deadline = T0 + 100_000;
    log.wait(1).push(
        &poster,
        &ReplicaOp::TaskPost {
            task: "t".into(),
            reward: 5,
            deadline_ms: deadline,
        },
    );
    log.wait(1).push(&h, &claim("t", 0, 7));
    log.wait(1).push(
        &h,
        &ReplicaOp::Fail {
            resource: "t".into(),
        },
    );
    log.wait(1).push(&h, &claim("t", 0, 2));
    log.now_ms = deadline;
    log.push(&poster, &post("expired"));
    s
}

fn candidates_config(mode: ElectionMode, weights: &[(u8, u64)]) -> ReplicaConfig {
    ReplicaConfig {
        election_window_ms: 10_000,
        election_mode: mode,
        candidates: weights
            .iter()
            .map(|&(seed, weight)| WeightedCandidate {
                agent: agent(seed).agent_id(),
                weight,
            })
            .collect(),
        ..config(SlashPolicy::Burn)
    }
}

/// Fenced claims and leader acts in weighted mode: the leader with the current window wins, a
/// stale window, another candidate and a non-candidate are refused.
fn fenced_claims() -> Scenario {
    let weights = [(81u8, 1u64), (82, 3), (83, 0)];
    let mut s = scenario(
        "fenced",
        candidates_config(ElectionMode::Weighted, &weights),
    );
    let log = &mut s.log;
    log.wait(25_000);
    let won = election::elect(
        &s.topic,
        &s.config.candidates,
        log.now_ms,
        10_000,
        ElectionMode::Weighted,
        None,
    )
    .unwrap();
    let leader = weights
        .iter()
        .map(|&(seed, _)| agent(seed))
        .find(|i| i.agent_id() == won.leader)
        .unwrap();
    let other = if leader.agent_id() == agent(81).agent_id() {
        agent(82)
    } else {
        agent(81)
    };
    log.push(&leader, &fenced("lock", won.window));
    log.wait(1).push(&other, &fenced("lock-2", won.window));
    log.wait(1).push(&agent(84), &fenced("lock-3", won.window));
    log.wait(1).push(&leader, &fenced("lock-4", won.window - 1));
    log.wait(1).push(
        &leader,
        &ReplicaOp::LeaderAct {
            window: won.window,
            payload: b"go".to_vec(),
        },
    );
    s
}

/// No candidates: a fenced claim or leader act in the current window is `NO_CANDIDATES`; in a
/// stale window it is `STALE_FENCE` (the window is checked first).
fn no_candidates() -> Scenario {
    let mut s = scenario(
        "no-candidates",
        candidates_config(ElectionMode::Priority, &[]),
    );
    let who = agent(81);
    let log = &mut s.log;
    log.wait(25_000);
    let window = log.now_ms / 10_000;
    log.push(&who, &fenced("lock", window));
    log.wait(1).push(
        &who,
        &ReplicaOp::LeaderAct {
            window,
            payload: vec![],
        },
    );
    log.wait(1).push(&who, &fenced("lock", window + 1));
    s
}

/// Weighted mode where every candidate has weight 0: nobody leads (`NO_CANDIDATES`).
fn weighted_zero_weight() -> Scenario {
    let mut s = scenario(
        "no-candidates-weighted-zero",
        candidates_config(ElectionMode::Weighted, &[(81, 0)]),
    );
    let log = &mut s.log;
    log.wait(25_000);
    let window = log.now_ms / 10_000;
    log.push(&agent(81), &fenced("lock", window));
    s
}

/// One op for each way a body can fail to decode (PROTOCOL.md 6.2): each is `MALFORMED_BODY`.
fn malformed_bodies() -> Scenario {
    let mut s = scenario("malformed-bodies", config(SlashPolicy::Burn));
    let (issuer, who) = (agent(9), agent(71));
    let (x, y) = (agent(72).agent_id(), agent(73).agent_id());
    let (lo, hi) = if x < y { (x, y) } else { (y, x) };
    // The identity point: 32 bytes that are a curve point of small order, not a usable key.
    let mut small_order = [0u8; 32];
    small_order[0] = 1;
    let cat = |parts: &[&[u8]]| parts.concat();
    let eight = [0u8; 8];
    let amount_0 = cat(&[&[1], x.as_bytes(), &eight]);
    let bodies: Vec<(&Identity, &str, Vec<u8>)> = vec![
        (&who, "post", vec![]),
        (&who, "post", vec![2, 0, 0, 0, 0]),
        (&who, "post", vec![1, 0, 0, 0, 5, b'h', b'i']),
        (&who, "post", vec![1, 0, 0, 0, 1, b'a', 0]),
        (&who, "post", vec![1, 0, 0, 0, 1, 0xff]),
        (&who, "claim", cat(&[&[1, 0], &eight, &eight, &[0]])),
        (
            &who,
            "claim",
            cat(&[&[1, 129], &[b'r'; 129], &eight, &eight, &[0]]),
        ),
        (&who, "claim", cat(&[&[1, 1, b'r'], &eight, &eight, &[2]])),
        (&issuer, "mint", amount_0.clone()),
        (&who, "transfer", amount_0),
        (
            &who,
            "transfer",
            cat(&[&[1], &small_order, &[0, 0, 0, 0, 0, 0, 0, 1]]),
        ),
        (
            &who,
            "guardians.set",
            cat(&[&[1, 2], hi.as_bytes(), lo.as_bytes()]),
        ),
        (
            &who,
            "guardians.set",
            cat(&[&[1, 2], lo.as_bytes(), lo.as_bytes()]),
        ),
        (&who, "guardians.set", cat(&[&[1, 33], &[0u8; 33 * 32]])),
        (
            &who,
            "vouch",
            cat(&[&[1], x.as_bytes(), &[0x10, 0x01], &[b'v'; 4097]]),
        ),
        (&who, "recovery.veto", cat(&[&[1], &x.as_bytes()[..31]])),
        (
            &who,
            "leader.act",
            cat(&[&[1], &eight, &[0, 0, 0, 9], b"short"]),
        ),
    ];
    let log = &mut s.log;
    for (signer, kind, body) in bodies {
        log.wait(1).push_raw(signer, kind, body);
    }
    s
}
