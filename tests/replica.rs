//! The replica's patterns as scenarios, and the invariants every op stream keeps.
#![cfg(not(target_arch = "wasm32"))]

mod replica_support;

use ants_coord::election::{ElectionMode, WeightedCandidate};
use ants_coord::replica::{
    Event, LossReason, RejectCode, ReplicaConfig, ReplicaOp, SlashPolicy, SlashedTo,
};
use ants_coord::{AgentId, Entry, Identity, Replica};
use proptest::prelude::*;
use replica_support::{agent, Log};

const T0: u64 = 1_700_000_000_000;
/// The recovery delay of the scenarios (shorter than their leases).
const DELAY: u64 = 30_000;

fn config(issuers: &[&Identity]) -> ReplicaConfig {
    ReplicaConfig {
        issuers: issuers.iter().map(|i| i.agent_id()).collect(),
        default_lease_ms: 60_000,
        max_lease_ms: 600_000,
        recovery_delay_ms: DELAY,
        ..ReplicaConfig::default()
    }
}

fn claim(resource: &str, stake: u64) -> ReplicaOp {
    ReplicaOp::Claim {
        resource: resource.into(),
        lease_ms: 0,
        stake,
        fence: None,
    }
}

fn mint(to: &Identity, amount: u64) -> ReplicaOp {
    ReplicaOp::Mint {
        to: to.agent_id(),
        amount,
    }
}

fn apply(replica: &mut Replica, entry: &Entry) -> Vec<Event> {
    let events = replica.apply(entry).unwrap();
    replica.audit().unwrap();
    events
}

fn rejected(events: &[Event]) -> Option<RejectCode> {
    events.iter().find_map(Event::reject_code)
}

#[test]
fn double_booked_meeting_slot_compensates_the_later_claim() {
    let (alice, bob) = (agent(1), agent(2));
    let mut log = Log::new("meetings", T0);
    let mut replica = Replica::new("meetings", config(&[])).unwrap();
    let first = log.push(&alice, &claim("room-4/2026-11-24T10:00", 0));
    let events = apply(&mut replica, &first);
    assert!(matches!(&events[..], [Event::Claimed { holder, .. }] if *holder == alice.agent_id()));
    let second = log.wait(5).push(&bob, &claim("room-4/2026-11-24T10:00", 0));
    let events = apply(&mut replica, &second);
    assert_eq!(
        events,
        vec![Event::Compensation {
            seq: 1,
            kind: "claim".into(),
            resource: "room-4/2026-11-24T10:00".into(),
            loser: bob.agent_id(),
            winner: alice.agent_id(),
            winning_seq: 0,
            losing_seq: 1,
            reason: LossReason::Conflict,
            refunded: 0,
        }]
    );
    assert_eq!(
        replica.claim_holder("room-4/2026-11-24T10:00"),
        Some(alice.agent_id())
    );
    // A retry-like second claim by the holder is not a conflict: it renews the lease.
    let again = log
        .wait(10)
        .push(&alice, &claim("room-4/2026-11-24T10:00", 0));
    let events = apply(&mut replica, &again);
    assert!(matches!(&events[..], [Event::ClaimRenewed { .. }]));
    // The lease runs out by relay time, evaluated at the next entry.
    let later = log
        .wait(60_001)
        .push(&bob, &claim("room-4/2026-11-24T10:00", 0));
    let events = apply(&mut replica, &later);
    assert!(
        matches!(&events[0], Event::LeaseExpired { holder, .. } if *holder == alice.agent_id())
    );
    assert!(matches!(&events[1], Event::Claimed { holder, .. } if *holder == bob.agent_id()));
}

fn funded(log: &mut Log, replica: &mut Replica, issuer: &Identity, who: &[(&Identity, u64)]) {
    for (agent, amount) in who {
        let entry = log.push(issuer, &mint(agent, *amount));
        let events = apply(replica, &entry);
        assert!(matches!(&events[..], [Event::Minted { .. }]), "{events:?}");
    }
}

#[test]
fn stakes_10_and_15_race_the_higher_overrides_and_the_lower_is_refunded() {
    let (issuer, poster, alice, bob) = (agent(9), agent(8), agent(1), agent(2));
    let mut log = Log::new("tasks", T0);
    let mut replica = Replica::new("tasks", config(&[&issuer])).unwrap();
    funded(
        &mut log,
        &mut replica,
        &issuer,
        &[(&poster, 100), (&alice, 50), (&bob, 50)],
    );
    let post = ReplicaOp::TaskPost {
        task: "translate-doc-7".into(),
        reward: 40,
        deadline_ms: T0 + 3_600_000,
    };
    apply(&mut replica, &log.push(&poster, &post));
    assert_eq!(replica.balance(&poster.agent_id()), 60);

    let a = log.push(&alice, &claim("translate-doc-7", 10));
    apply(&mut replica, &a);
    assert_eq!(replica.balance(&alice.agent_id()), 40);
    let b = log.push(&bob, &claim("translate-doc-7", 15));
    let events = apply(&mut replica, &b);
    assert!(events.contains(&Event::Compensation {
        seq: b.seq(),
        kind: "claim".into(),
        resource: "translate-doc-7".into(),
        loser: alice.agent_id(),
        winner: bob.agent_id(),
        winning_seq: b.seq(),
        losing_seq: a.seq(),
        reason: LossReason::Outbid,
        refunded: 10,
    }));
    assert_eq!(replica.balance(&alice.agent_id()), 50, "stake refunded");
    assert_eq!(replica.balance(&bob.agent_id()), 35);
    // An equal stake does not override.
    let c = log.push(&alice, &claim("translate-doc-7", 15));
    let events = apply(&mut replica, &c);
    assert!(matches!(
        &events[..],
        [Event::Compensation {
            reason: LossReason::Conflict,
            ..
        }]
    ));
    assert_eq!(
        replica.balance(&alice.agent_id()),
        50,
        "a losing stake is never taken"
    );
    // Only the poster completes a task; the holder gets stake + reward.
    let wrong = log.push(
        &bob,
        &ReplicaOp::Complete {
            resource: "translate-doc-7".into(),
        },
    );
    assert_eq!(
        rejected(&apply(&mut replica, &wrong)),
        Some(RejectCode::NotPoster)
    );
    let done = log.push(
        &poster,
        &ReplicaOp::Complete {
            resource: "translate-doc-7".into(),
        },
    );
    let events = apply(&mut replica, &done);
    assert!(matches!(
        &events[..],
        [Event::Completed {
            refunded: 15,
            reward: 40,
            ..
        }]
    ));
    assert_eq!(replica.balance(&bob.agent_id()), 50 + 40);
    assert!(replica.task("translate-doc-7").is_none());
    assert_eq!(replica.supply().minted, 200);
    assert_eq!(replica.supply().escrowed, 0);
}

#[test]
fn a_failed_task_is_slashed_and_a_lapsed_one_too() {
    for policy in [SlashPolicy::Burn, SlashPolicy::Poster] {
        let (issuer, poster, worker) = (agent(9), agent(8), agent(1));
        let mut log = Log::new("tasks", T0);
        let mut cfg = config(&[&issuer]);
        cfg.slash_policy = policy;
        let mut replica = Replica::new("tasks", cfg).unwrap();
        funded(
            &mut log,
            &mut replica,
            &issuer,
            &[(&poster, 100), (&worker, 30)],
        );
        let post = ReplicaOp::TaskPost {
            task: "t1".into(),
            reward: 20,
            deadline_ms: T0 + 100_000,
        };
        apply(&mut replica, &log.push(&poster, &post));
        apply(&mut replica, &log.push(&worker, &claim("t1", 12)));
        let fail = log.push(
            &poster,
            &ReplicaOp::Fail {
                resource: "t1".into(),
            },
        );
        let events = apply(&mut replica, &fail);
        let (expect_to, poster_balance, burned) = match policy {
            SlashPolicy::Burn => (SlashedTo::Burned, 80, 12),
            SlashPolicy::Poster => (SlashedTo::Poster, 92, 0),
        };
        assert!(
            matches!(&events[..], [Event::Failed { slashed: 12, slashed_to, .. }] if *slashed_to == expect_to)
        );
        assert_eq!(replica.balance(&worker.agent_id()), 18);
        assert_eq!(replica.balance(&poster.agent_id()), poster_balance);
        assert_eq!(replica.supply().burned, burned);
        // The task stays open; a second claim lapses with the deadline and is slashed too.
        apply(&mut replica, &log.push(&worker, &claim("t1", 5)));
        let late = log.wait(100_000).push(
            &worker,
            &ReplicaOp::Post {
                text: "late".into(),
            },
        );
        let events = apply(&mut replica, &late);
        assert!(
            matches!(&events[0], Event::TaskExpired { slashed: 5, refunded: 20, holder: Some(h), .. } if *h == worker.agent_id()),
            "{events:?}"
        );
        assert_eq!(replica.balance(&worker.agent_id()), 13);
        assert!(replica.task("t1").is_none() && replica.claim("t1").is_none());
        let s = replica.supply();
        assert_eq!(s.circulating + s.escrowed, s.minted - s.burned);
    }
}

struct Recovery {
    log: Log,
    replica: Replica,
    alice: Identity,
    guardians: Vec<Identity>,
    new_key: Identity,
    issuer: Identity,
}

fn recovery_setup() -> Recovery {
    let (issuer, alice, new_key) = (agent(9), agent(1), agent(50));
    let guardians: Vec<Identity> = (10..17).map(agent).collect();
    let mut log = Log::new("agents", T0);
    let mut replica = Replica::new("agents", config(&[&issuer])).unwrap();
    funded(&mut log, &mut replica, &issuer, &[(&alice, 70)]);
    apply(&mut replica, &log.push(&alice, &claim("desk-3", 20)));
    let mut ids: Vec<AgentId> = guardians.iter().map(Identity::agent_id).collect();
    ids.sort();
    let events = apply(
        &mut replica,
        &log.push(&alice, &ReplicaOp::GuardiansSet { guardians: ids }),
    );
    assert!(matches!(
        &events[..],
        [Event::GuardiansSet { threshold: 5, .. }]
    ));
    Recovery {
        log,
        replica,
        alice,
        guardians,
        new_key,
        issuer,
    }
}

fn approve_by(r: &mut Recovery, count: usize) -> Vec<Event> {
    let (agent_id, new_key) = (r.alice.agent_id(), r.new_key.agent_id());
    let request = r.log.push(
        &r.guardians[0],
        &ReplicaOp::RecoveryRequest {
            agent: agent_id,
            new_key,
        },
    );
    let mut events = apply(&mut r.replica, &request);
    for g in &r.guardians[1..count] {
        let entry = r.log.push(
            g,
            &ReplicaOp::RecoveryApprove {
                agent: agent_id,
                new_key,
            },
        );
        events.extend(apply(&mut r.replica, &entry));
    }
    events
}

#[test]
fn five_of_seven_guardians_rotate_a_lost_key() {
    let mut r = recovery_setup();
    let events = approve_by(&mut r, 5);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::RecoveryScheduled { .. })));
    // An outsider cannot approve.
    let outsider = r.log.push(
        &r.issuer,
        &ReplicaOp::RecoveryApprove {
            agent: r.alice.agent_id(),
            new_key: r.new_key.agent_id(),
        },
    );
    assert_eq!(
        rejected(&apply(&mut r.replica, &outsider)),
        Some(RejectCode::NotGuardian)
    );
    // Still the old key during the delay.
    assert_eq!(
        r.replica.current_key(&r.alice.agent_id()),
        r.alice.agent_id()
    );
    let after = r
        .log
        .wait(DELAY)
        .push(&r.alice, &ReplicaOp::Post { text: "me?".into() });
    let events = apply(&mut r.replica, &after);
    assert!(
        matches!(&events[0], Event::KeyRotated { new_key, .. } if *new_key == r.new_key.agent_id())
    );
    assert!(matches!(
        &events[1],
        Event::Rejected {
            code: RejectCode::KeyRotated,
            ..
        }
    ));
    assert_eq!(
        r.replica.current_key(&r.alice.agent_id()),
        r.new_key.agent_id()
    );
    // The new key owns alice's balance and claims.
    assert_eq!(r.replica.balance(&r.new_key.agent_id()), 50);
    let release = r.log.push(
        &r.new_key,
        &ReplicaOp::Release {
            resource: "desk-3".into(),
        },
    );
    let events = apply(&mut r.replica, &release);
    assert!(
        matches!(&events[..], [Event::Released { refunded: 20, holder, .. }] if *holder == r.alice.agent_id())
    );
    let pay = r.log.push(
        &r.new_key,
        &ReplicaOp::Transfer {
            to: r.issuer.agent_id(),
            amount: 70,
        },
    );
    assert!(matches!(
        &apply(&mut r.replica, &pay)[..],
        [Event::Transferred { .. }]
    ));
    let old = r.log.push(
        &r.alice,
        &ReplicaOp::Transfer {
            to: r.issuer.agent_id(),
            amount: 1,
        },
    );
    assert_eq!(
        rejected(&apply(&mut r.replica, &old)),
        Some(RejectCode::KeyRotated)
    );
}

#[test]
fn four_of_seven_guardians_do_not() {
    let mut r = recovery_setup();
    let events = approve_by(&mut r, 4);
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::RecoveryScheduled { .. })));
    assert!(matches!(
        events.last(),
        Some(Event::RecoveryApproved {
            approvals: 4,
            threshold: 5,
            ..
        })
    ));
    let after = r.log.wait(DELAY).push(
        &r.alice,
        &ReplicaOp::Post {
            text: "still me".into(),
        },
    );
    let events = apply(&mut r.replica, &after);
    assert!(matches!(&events[..], [Event::Posted { .. }]));
    assert_eq!(
        r.replica.current_key(&r.alice.agent_id()),
        r.alice.agent_id()
    );
}

#[test]
fn the_old_key_vetoes_inside_the_delay() {
    let mut r = recovery_setup();
    approve_by(&mut r, 6);
    let veto = r.log.wait(1_000).push(
        &r.alice,
        &ReplicaOp::RecoveryVeto {
            new_key: r.new_key.agent_id(),
        },
    );
    assert!(matches!(
        &apply(&mut r.replica, &veto)[..],
        [Event::RecoveryVetoed { .. }]
    ));
    let after = r.log.wait(DELAY).push(
        &r.alice,
        &ReplicaOp::Post {
            text: "mine".into(),
        },
    );
    assert!(matches!(
        &apply(&mut r.replica, &after)[..],
        [Event::Posted { .. }]
    ));
    assert_eq!(
        r.replica.current_key(&r.alice.agent_id()),
        r.alice.agent_id()
    );
    assert!(r.replica.pending_recovery(&r.alice.agent_id()).is_none());
}

#[test]
fn entries_of_another_topic_or_out_of_order_change_nothing() {
    let alice = agent(1);
    let mut replica = Replica::new("a", config(&[])).unwrap();
    let mut other = Log::new("b", T0);
    let wrong = other.push(&alice, &ReplicaOp::Post { text: "x".into() });
    let before = replica.state_hash();
    assert_eq!(replica.apply(&wrong).unwrap_err().code(), "WRONG_TOPIC");
    let mut log = Log::new("a", T0);
    log.push(&alice, &ReplicaOp::Post { text: "0".into() });
    let skipped = log.push(&alice, &ReplicaOp::Post { text: "1".into() });
    assert_eq!(replica.apply(&skipped).unwrap_err().code(), "OUT_OF_ORDER");
    assert_eq!(replica.state_hash(), before);
}

#[test]
fn unknown_kinds_pass_through_and_bad_bodies_are_recorded_no_ops() {
    let alice = agent(1);
    let mut log = Log::new("a", T0);
    let mut replica = Replica::new("a", config(&[])).unwrap();
    let doc = log.push_raw(&alice, "doc.update", vec![1, 2, 3]);
    assert!(
        matches!(&apply(&mut replica, &doc)[..], [Event::Recorded { kind, .. }] if kind == "doc.update")
    );
    let bad = log.push_raw(&alice, "claim", vec![1, 0]);
    assert_eq!(
        rejected(&apply(&mut replica, &bad)),
        Some(RejectCode::MalformedBody)
    );
    let mint = log.push(&alice, &mint(&alice, 5));
    assert_eq!(
        rejected(&apply(&mut replica, &mint)),
        Some(RejectCode::NotIssuer)
    );
    let broke = log.push(&alice, &claim("r", 1));
    assert_eq!(
        rejected(&apply(&mut replica, &broke)),
        Some(RejectCode::InsufficientBalance)
    );
    assert_eq!(replica.feed().count(), 1);
    assert_eq!(replica.claim_holder("r"), None);
}

#[test]
fn fenced_claims_and_leader_ops_need_the_current_leader() {
    let agents: Vec<Identity> = (1..=4).map(agent).collect();
    let mut cfg = config(&[]);
    cfg.election_window_ms = 10_000;
    cfg.candidates = agents
        .iter()
        .map(|a| WeightedCandidate {
            agent: a.agent_id(),
            weight: 1,
        })
        .collect();
    let mut replica = Replica::new("lead", cfg).unwrap();
    let mut log = Log::new("lead", T0);
    let election = replica.leader(T0).unwrap();
    let leader = agents
        .iter()
        .find(|a| a.agent_id() == election.leader)
        .unwrap();
    let follower = agents
        .iter()
        .find(|a| a.agent_id() != election.leader)
        .unwrap();
    let act = |window| ReplicaOp::LeaderAct {
        window,
        payload: b"rebalance".to_vec(),
    };
    let e = log.push(follower, &act(election.window));
    assert_eq!(
        rejected(&apply(&mut replica, &e)),
        Some(RejectCode::NotLeader)
    );
    let e = log.push(leader, &act(election.window - 1));
    assert_eq!(
        rejected(&apply(&mut replica, &e)),
        Some(RejectCode::StaleFence)
    );
    let e = log.push(leader, &act(election.window));
    assert!(matches!(
        &apply(&mut replica, &e)[..],
        [Event::LeaderActed { .. }]
    ));
    let fenced = ReplicaOp::Claim {
        resource: "shard-1".into(),
        lease_ms: 0,
        stake: 0,
        fence: Some(election.window),
    };
    let e = log.push(follower, &fenced);
    assert_eq!(
        rejected(&apply(&mut replica, &e)),
        Some(RejectCode::NotLeader)
    );
    let e = log.push(leader, &fenced);
    assert!(matches!(
        &apply(&mut replica, &e)[..],
        [Event::Claimed { .. }]
    ));
    // Once the window is over the token is stale.
    let e = log
        .wait(election.ends_at_ms - T0)
        .push(leader, &act(election.window));
    assert_eq!(
        rejected(&apply(&mut replica, &e)),
        Some(RejectCode::StaleFence)
    );
}

#[test]
fn snapshot_restores_to_the_same_state_and_refuses_other_spellings() {
    let mut r = recovery_setup();
    approve_by(&mut r, 5);
    let snapshot = r.replica.snapshot();
    let restored = Replica::restore(&snapshot).unwrap();
    assert_eq!(restored.state_hash(), r.replica.state_hash());
    // The restored replica fires the scheduled rotation like the original.
    let mut original = r.replica;
    let mut copy = restored;
    let next = r
        .log
        .wait(DELAY)
        .push(&r.guardians[0], &ReplicaOp::Post { text: "x".into() });
    assert_eq!(original.apply(&next).unwrap(), copy.apply(&next).unwrap());
    assert_eq!(original.state_hash(), copy.state_hash());
    let mut trailing = snapshot.clone();
    trailing.push(0);
    assert_eq!(
        Replica::restore(&trailing).unwrap_err().code(),
        "TRAILING_BYTES"
    );
    assert!(Replica::restore(&snapshot[..snapshot.len() - 1]).is_err());
}

// ---- properties ----

#[derive(Debug, Clone)]
enum Action {
    Mint(u8, u64),
    Transfer(u8, u8, u64),
    Claim(u8, u8, u64),
    Release(u8, u8),
    Complete(u8, u8),
    Fail(u8, u8),
    Task(u8, u8, u64, u64),
    Guardians(u8, Vec<u8>),
    Request(u8, u8, u8),
    Approve(u8, u8, u8),
    Veto(u8, u8),
    Post(u8),
    Wait(u64),
}

const PEOPLE: u8 = 5;
const RESOURCES: u8 = 3;

fn action() -> impl Strategy<Value = Action> {
    let p = 0..PEOPLE;
    let r = 0..RESOURCES;
    prop_oneof![
        (p.clone(), 1..200u64).prop_map(|(a, n)| Action::Mint(a, n)),
        (p.clone(), p.clone(), 1..80u64).prop_map(|(a, b, n)| Action::Transfer(a, b, n)),
        (p.clone(), r.clone(), 0..40u64).prop_map(|(a, r, s)| Action::Claim(a, r, s)),
        (p.clone(), r.clone(), 0..40u64).prop_map(|(a, r, s)| Action::Claim(a, r, s)),
        (p.clone(), r.clone()).prop_map(|(a, r)| Action::Release(a, r)),
        (p.clone(), r.clone()).prop_map(|(a, r)| Action::Complete(a, r)),
        (p.clone(), r.clone()).prop_map(|(a, r)| Action::Fail(a, r)),
        (p.clone(), r.clone(), 0..60u64, 1..200_000u64)
            .prop_map(|(a, r, w, d)| Action::Task(a, r, w, d)),
        (p.clone(), proptest::collection::vec(0..PEOPLE + 2, 0..5))
            .prop_map(|(a, g)| Action::Guardians(a, g)),
        (p.clone(), p.clone(), PEOPLE..PEOPLE + 3).prop_map(|(a, b, k)| Action::Request(a, b, k)),
        (p.clone(), p.clone(), PEOPLE..PEOPLE + 3).prop_map(|(a, b, k)| Action::Approve(a, b, k)),
        (p.clone(), PEOPLE..PEOPLE + 3).prop_map(|(a, k)| Action::Veto(a, k)),
        p.prop_map(Action::Post),
        (0..120_000u64).prop_map(Action::Wait),
    ]
}

/// People 0..PEOPLE, spare keys PEOPLE..PEOPLE+3, the issuer last.
fn cast() -> Vec<Identity> {
    (0..PEOPLE + 4).map(|i| agent(100 + i)).collect()
}

fn entries_for(actions: &[Action]) -> (ReplicaConfig, Vec<Entry>) {
    let ids = cast();
    let issuer = &ids[(PEOPLE + 3) as usize];
    let mut cfg = config(&[issuer]);
    cfg.slash_policy = SlashPolicy::Poster;
    cfg.default_lease_ms = 50_000;
    cfg.recovery_delay_ms = 30_000;
    cfg.feed_capacity = 4;
    let mut log = Log::new("prop", T0);
    let id = |i: u8| ids[i as usize].agent_id();
    let res = |r: u8| format!("res-{r}");
    for action in actions {
        let (who, op) = match action {
            Action::Mint(a, n) => (issuer, mint(&ids[*a as usize], *n)),
            Action::Transfer(a, b, n) => (
                &ids[*a as usize],
                ReplicaOp::Transfer {
                    to: id(*b),
                    amount: *n,
                },
            ),
            Action::Claim(a, r, s) => (&ids[*a as usize], claim(&res(*r), *s)),
            Action::Release(a, r) => (&ids[*a as usize], ReplicaOp::Release { resource: res(*r) }),
            Action::Complete(a, r) => {
                (&ids[*a as usize], ReplicaOp::Complete { resource: res(*r) })
            }
            Action::Fail(a, r) => (&ids[*a as usize], ReplicaOp::Fail { resource: res(*r) }),
            Action::Task(a, r, w, d) => (
                &ids[*a as usize],
                ReplicaOp::TaskPost {
                    task: res(*r),
                    reward: *w,
                    deadline_ms: log.now_ms + d,
                },
            ),
            Action::Guardians(a, g) => {
                let mut guardians: Vec<AgentId> = g.iter().map(|&i| id(i)).collect();
                guardians.sort();
                guardians.dedup();
                (&ids[*a as usize], ReplicaOp::GuardiansSet { guardians })
            }
            Action::Request(a, b, k) => (
                &ids[*a as usize],
                ReplicaOp::RecoveryRequest {
                    agent: id(*b),
                    new_key: id(*k),
                },
            ),
            Action::Approve(a, b, k) => (
                &ids[*a as usize],
                ReplicaOp::RecoveryApprove {
                    agent: id(*b),
                    new_key: id(*k),
                },
            ),
            Action::Veto(a, k) => (
                &ids[*a as usize],
                ReplicaOp::RecoveryVeto { new_key: id(*k) },
            ),
            Action::Post(a) => (&ids[*a as usize], ReplicaOp::Post { text: "hi".into() }),
            Action::Wait(ms) => {
                log.wait(*ms);
                continue;
            }
        };
        log.push(who, &op);
    }
    (cfg, log.entries)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn same_entries_same_state_and_the_ledger_always_balances(
        actions in proptest::collection::vec(action(), 1..120),
        cut in 0usize..120,
    ) {
        let (cfg, entries) = entries_for(&actions);
        let mut a = Replica::new("prop", cfg.clone()).unwrap();
        let mut b = Replica::new("prop", cfg).unwrap();
        let cut = cut.min(entries.len());
        for entry in &entries[..cut] {
            let ea = a.apply(entry).unwrap();
            let eb = b.apply(entry).unwrap();
            prop_assert_eq!(ea, eb);
            prop_assert!(a.audit().is_ok(), "{:?}", a.audit());
        }
        // Midway, b is replaced by a restore of its own snapshot.
        let mut b = Replica::restore(&b.snapshot()).unwrap();
        prop_assert_eq!(a.state_hash(), b.state_hash());
        for entry in &entries[cut..] {
            let ea = a.apply(entry).unwrap();
            let eb = b.apply(entry).unwrap();
            prop_assert_eq!(ea, eb);
            prop_assert!(a.audit().is_ok(), "{:?}", a.audit());
        }
        prop_assert_eq!(a.state_hash(), b.state_hash());
        let s = a.supply();
        prop_assert_eq!(s.circulating + s.escrowed, s.minted - s.burned);
    }

    #[test]
    fn exactly_one_winner_per_contested_resource(
        claims in proptest::collection::vec((0..PEOPLE, 0..RESOURCES, 0..30u64), 1..60),
    ) {
        let ids = cast();
        let issuer = &ids[(PEOPLE + 3) as usize];
        let mut log = Log::new("prop", T0);
        let mut replica = Replica::new("prop", config(&[issuer])).unwrap();
        for p in &ids[..PEOPLE as usize] {
            replica.apply(&log.push(issuer, &mint(p, 100))).unwrap();
        }
        // The holder each resource must have, tracked from the events alone.
        let mut holders: std::collections::HashMap<String, AgentId> = Default::default();
        for (who, r, stake) in claims {
            let resource = format!("res-{r}");
            let claimant = ids[who as usize].agent_id();
            let events = replica.apply(&log.push(&ids[who as usize], &claim(&resource, stake))).unwrap();
            let decisive: Vec<&Event> = events.iter().filter(|e| !matches!(e, Event::Compensation { reason: LossReason::Outbid, .. })).collect();
            prop_assert_eq!(decisive.len(), 1, "{:?}", events);
            match decisive[0] {
                Event::Claimed { holder, .. } => {
                    if let Some(previous) = holders.insert(resource.clone(), *holder) {
                        let compensated = events.iter().any(|e| matches!(e,
                            Event::Compensation { loser, winner, reason: LossReason::Outbid, .. }
                            if *loser == previous && *winner == claimant));
                        prop_assert!(compensated, "{:?}", events);
                    }
                }
                Event::ClaimRenewed { holder, .. } => prop_assert_eq!(holders.get(&resource), Some(holder)),
                Event::Compensation { loser, winner, .. } => {
                    prop_assert_eq!(*loser, claimant);
                    prop_assert_eq!(holders.get(&resource), Some(winner));
                }
                Event::Rejected { code, .. } => prop_assert_eq!(*code, RejectCode::InsufficientBalance),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
            prop_assert_eq!(replica.claim_holder(&resource), holders.get(&resource).copied());
        }
        prop_assert!(replica.audit().is_ok());
    }
}

// ---- one key, one agent (issue 21 item 1) ----

/// Ops that move keys around: guardian sets, requests, approvals, vetoes, and ops by would-be
/// new keys acting as agents of their own (claims, tasks, guardians, balances).
#[derive(Debug, Clone)]
enum KeyAction {
    Guardians(u8, Vec<u8>),
    Request(u8, u8, u8),
    Approve(u8, u8, u8),
    Veto(u8, u8),
    Claim(u8, u8),
    Release(u8, u8),
    Task(u8, u8),
    Mint(u8),
    Post(u8),
    Wait(u64),
}

const KEY_CAST: u8 = 7;

fn key_action() -> impl Strategy<Value = KeyAction> {
    let p = 0..KEY_CAST;
    prop_oneof![
        2 => (p.clone(), proptest::collection::vec(0..KEY_CAST, 1..3))
            .prop_map(|(a, g)| KeyAction::Guardians(a, g)),
        2 => (p.clone(), p.clone(), p.clone()).prop_map(|(a, b, k)| KeyAction::Request(a, b, k)),
        // By the guardian every agent starts with: 1 of 1, scheduled at once.
        6 => (p.clone(), p.clone()).prop_map(|(b, k)| KeyAction::Request(0, b, k)),
        2 => (p.clone(), p.clone(), p.clone()).prop_map(|(a, b, k)| KeyAction::Approve(a, b, k)),
        1 => (p.clone(), p.clone()).prop_map(|(a, k)| KeyAction::Veto(a, k)),
        1 => (p.clone(), 0..2u8).prop_map(|(a, r)| KeyAction::Claim(a, r)),
        1 => (p.clone(), 0..2u8).prop_map(|(a, r)| KeyAction::Release(a, r)),
        1 => (p.clone(), 0..2u8).prop_map(|(a, r)| KeyAction::Task(a, r)),
        1 => p.clone().prop_map(KeyAction::Mint),
        1 => p.prop_map(KeyAction::Post),
        3 => (0..12_000u64).prop_map(KeyAction::Wait),
    ]
}

fn key_entries(actions: &[KeyAction]) -> (ReplicaConfig, Vec<Identity>, Vec<Entry>) {
    let ids: Vec<Identity> = (0..=KEY_CAST).map(|i| agent(150 + i)).collect();
    let issuer = &ids[KEY_CAST as usize];
    let mut cfg = config(&[issuer]);
    cfg.recovery_delay_ms = 10_000;
    let mut log = Log::new("keys", T0);
    let id = |i: u8| ids[i as usize].agent_id();
    let by = |i: u8| &ids[i as usize];
    // Agents 1..=4 start with agent 0 as their only guardian; 5 and 6 are spare keys.
    for a in 1..=4 {
        log.push(
            by(a),
            &ReplicaOp::GuardiansSet {
                guardians: vec![id(0)],
            },
        );
    }
    for action in actions {
        let (who, op) = match action {
            KeyAction::Guardians(a, g) => {
                let mut guardians: Vec<AgentId> = g.iter().map(|&i| id(i)).collect();
                guardians.sort();
                guardians.dedup();
                (by(*a), ReplicaOp::GuardiansSet { guardians })
            }
            KeyAction::Request(a, b, k) => (
                by(*a),
                ReplicaOp::RecoveryRequest {
                    agent: id(*b),
                    new_key: id(*k),
                },
            ),
            KeyAction::Approve(a, b, k) => (
                by(*a),
                ReplicaOp::RecoveryApprove {
                    agent: id(*b),
                    new_key: id(*k),
                },
            ),
            KeyAction::Veto(a, k) => (by(*a), ReplicaOp::RecoveryVeto { new_key: id(*k) }),
            KeyAction::Claim(a, r) => (by(*a), claim(&format!("r{r}"), 0)),
            KeyAction::Release(a, r) => (
                by(*a),
                ReplicaOp::Release {
                    resource: format!("r{r}"),
                },
            ),
            KeyAction::Task(a, r) => (
                by(*a),
                ReplicaOp::TaskPost {
                    task: format!("r{r}"),
                    reward: 0,
                    deadline_ms: log.now_ms + 15_000,
                },
            ),
            KeyAction::Mint(to) => (issuer, mint(by(*to), 3)),
            KeyAction::Post(a) => (by(*a), ReplicaOp::Post { text: "hi".into() }),
            KeyAction::Wait(ms) => {
                log.wait(*ms);
                continue;
            }
        };
        log.push(who, &op);
    }
    (cfg, ids, log.entries)
}

/// Every id resolves to one agent whose current key resolves back to it.
fn keys_resolve_to_one_agent(replica: &Replica, ids: &[Identity]) -> Result<(), String> {
    replica.audit()?;
    for i in ids {
        let agent = replica.agent_of(&i.agent_id());
        let key = replica.current_key(&agent);
        if replica.agent_of(&key) != agent {
            return Err(format!(
                "{agent} signs with {key}, which names {}",
                replica.agent_of(&key)
            ));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Issue 21 item 1: however rotations, their keys and those keys' own ops interleave, no key
    /// ever signs for two agents, and two replicas (one restored midway) agree on every event.
    #[test]
    fn one_key_never_acts_as_two_agents(
        actions in proptest::collection::vec(key_action(), 1..80),
        cut in 0usize..80,
    ) {
        let (cfg, ids, entries) = key_entries(&actions);
        let mut a = Replica::new("keys", cfg.clone()).unwrap();
        let mut b = Replica::new("keys", cfg).unwrap();
        let cut = cut.min(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            if i == cut {
                let restored = Replica::restore(&b.snapshot());
                prop_assert!(restored.is_ok(), "{:?}", restored.err());
                b = restored.unwrap();
            }
            let ea = a.apply(entry).unwrap();
            let eb = b.apply(entry).unwrap();
            prop_assert_eq!(&ea, &eb);
            let check = keys_resolve_to_one_agent(&a, &ids);
            prop_assert!(check.is_ok(), "after seq {}: {:?}; events {:?}", i, check, ea);
        }
        prop_assert_eq!(a.state_hash(), b.state_hash());
    }
}

#[test]
fn election_is_fair_across_windows() {
    use ants_coord::election::{self, rank};
    let n = 5usize;
    let agents: Vec<AgentId> = (0..n as u8).map(|i| agent(i + 1).agent_id()).collect();
    let windows = 20_000u64;
    let mut wins = vec![0u64; n];
    for w in 0..windows {
        let leader = election::leader_of("fair", &agents, w).unwrap();
        wins[agents.iter().position(|a| *a == leader).unwrap()] += 1;
    }
    let expected = windows / n as u64;
    for count in &wins {
        // 4,000 expected, standard deviation ≈ 57: ±6σ.
        assert!(count.abs_diff(expected) < 350, "{wins:?}");
    }
    let weighted = [
        WeightedCandidate {
            agent: agents[0],
            weight: 2,
        },
        WeightedCandidate {
            agent: agents[1],
            weight: 1,
        },
        WeightedCandidate {
            agent: agents[2],
            weight: 1,
        },
    ];
    let mut heavy = 0u64;
    for w in 0..windows {
        let top = rank("fair", &weighted, w, ElectionMode::Weighted, Some(1)).unwrap();
        heavy += u64::from(top[0].agent == agents[0]);
    }
    // Weight 2 of a total 4: half the windows, i.e. twice each weight-1 candidate's quarter.
    assert!(heavy.abs_diff(windows / 2) < 450, "{heavy}");
}
