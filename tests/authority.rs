//! Every replica enforces write in owned topics, and revocations and the owner's topic policy
//! take effect at their seq (PROTOCOL.md 10.7, 10.8, 10.10): one scenario of presentations,
//! writes, revocations and policies applied by two replicas (one restored from a snapshot midway), which agree on every decision; the
//! scenario is `tests/vectors/authority.json`, with each entry's bytes and the events it causes.
//!
//! `ANTS_BLESS=1` rewrites the file after a deliberate protocol change; any other difference
//! fails.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use ants_coord::capability::authority::{
    kind, Presentation, Revocation, MAX_PRESENTED_PER_AGENT, MAX_REVOKED_BY_DELEGATORS,
};
use ants_coord::capability::{Grant, ReadRule, TopicPolicy};
use ants_coord::replica::ReplicaOp;
use ants_coord::{
    Capability, Entry, Event, Identity, OpDraft, Replica, ReplicaConfig, Rights, Scope, SignedOp,
};
use common::{bless, hex, vectors, write_vectors};
use serde_json::{json, Value};

/// The agents of the scenario, by name and seed.
const AGENTS: [(&str, u8); 6] = [
    ("alice", 1),
    ("bob", 2),
    ("carol", 3),
    ("dave", 4),
    ("erin", 5),
    ("mallory", 6),
];

/// The relay time of entry 0; entry `i` is `T0 + 1000 i`.
const T0: u64 = 1_700_000_000_000;

fn agent(name: &str) -> Identity {
    let seed = AGENTS.iter().find(|(n, _)| *n == name).expect("agent").1;
    Identity::from_seed(&[seed; 32]).unwrap()
}

fn topic() -> String {
    format!("@{}/board", agent("alice").agent_id())
}

fn grant(issuer: &str, audience: &str, rights: Rights, expires_ms: u64) -> Capability {
    Capability::grant(
        &agent(issuer),
        agent(audience).agent_id(),
        Scope::Topic(topic()),
        rights,
        expires_ms,
    )
    .unwrap()
}

/// alice → carol (write, delegate).
fn carol_root() -> Capability {
    grant(
        "alice",
        "carol",
        Rights::WRITE | Rights::DELEGATE,
        T0 + 60_000,
    )
}

/// alice → carol (write, delegate) → dave (write).
fn dave_chain() -> Capability {
    carol_root()
        .delegate(
            &agent("carol"),
            Grant {
                audience: agent("dave").agent_id(),
                scope: Scope::Topic(topic()),
                rights: Rights::WRITE,
                not_before_ms: 0,
                expires_ms: T0 + 60_000,
            },
        )
        .unwrap()
}

/// One step of the scenario: who signs, what kind, which body, and what it demonstrates.
struct Step {
    who: &'static str,
    kind: &'static str,
    body: Vec<u8>,
    note: &'static str,
}

fn post(who: &'static str, text: &str, note: &'static str) -> Step {
    Step {
        who,
        kind: "post",
        body: ReplicaOp::Post { text: text.into() }.encode().unwrap(),
        note,
    }
}

fn present(who: &'static str, capability: &Capability, note: &'static str) -> Step {
    Step {
        who,
        kind: kind::PRESENT,
        body: Presentation::new(capability.clone()).encode(),
        note,
    }
}

fn revoke(who: &'static str, capability: &Capability, index: usize, note: &'static str) -> Step {
    Step {
        who,
        kind: kind::REVOKE,
        body: Revocation::new(capability.clone(), index).unwrap().encode(),
        note,
    }
}

fn policy(who: &'static str, read: ReadRule, note: &'static str) -> Step {
    Step {
        who,
        kind: kind::POLICY,
        body: TopicPolicy { read }.encode(),
        note,
    }
}

fn steps() -> Vec<Step> {
    let bob = grant("alice", "bob", Rights::WRITE, T0 + 60_000);
    let dave = dave_chain();
    // Presented at entry 13 (T0 + 13 s), expired by entry 14 (T0 + 14 s).
    let erin = grant("alice", "erin", Rights::WRITE, T0 + 13_500);
    let mut bad_version = Presentation::new(bob.clone()).encode();
    bad_version[0] = 2;
    vec![
        post("alice", "hello", "the owner writes without a capability"),
        post("bob", "hi", "no capability presented: NOT_AUTHORIZED"),
        present("bob", &bob, "bob presents alice's grant"),
        post("bob", "hi again", "now bob's post counts"),
        present("mallory", &bob, "a capability for bob is not mallory's"),
        present("dave", &dave, "a delegated chain rooted at alice"),
        post("dave", "hello from dave", "it counts"),
        revoke("mallory", &dave, 1, "mallory signed no link of it"),
        revoke("carol", &dave, 0, "carol did not sign the root link"),
        revoke("carol", &dave, 1, "carol revokes the link she signed"),
        post("dave", "still here?", "revoked: CAPABILITY_REVOKED"),
        revoke("alice", &bob, 0, "the owner revokes any link of her chains"),
        post("bob", "and me?", "revoked too"),
        present("erin", &erin, "valid for half a second more"),
        post("erin", "late", "expired at the entry's relay time"),
        present(
            "bob",
            &bob,
            "a revoked capability cannot be presented again",
        ),
        Step {
            who: "erin",
            kind: kind::PRESENT,
            body: bad_version,
            note: "a body of another version: MALFORMED_BODY",
        },
        post(
            "carol",
            "me too?",
            "carol holds a grant but never presented it",
        ),
        present(
            "alice",
            &carol_root(),
            "the owner presents carol's grant for her",
        ),
        post("carol", "thanks", "carol's post counts"),
        policy(
            "carol",
            ReadRule::Public,
            "a write capability does not let carol set the policy",
        ),
        policy("mallory", ReadRule::Public, "nor may a stranger"),
        policy(
            "alice",
            ReadRule::Public,
            "the owner makes the topic public",
        ),
        Step {
            who: "alice",
            kind: kind::POLICY,
            body: vec![1, 2],
            note: "a read rule other than 0 and 1: MALFORMED_BODY",
        },
        post("mallory", "can I write now?", "public is for reading only"),
        policy("alice", ReadRule::Private, "private again"),
        policy(
            "alice",
            ReadRule::Public,
            "and public: the snapshot ends with it",
        ),
    ]
}

/// The scenario's entries, signed and sequenced.
fn entries() -> Vec<(Entry, &'static str)> {
    let mut counters = std::collections::HashMap::new();
    steps()
        .into_iter()
        .enumerate()
        .map(|(seq, step)| {
            let counter = counters.entry(step.who).or_insert(0u64);
            let time = T0 + 1_000 * seq as u64;
            let op = SignedOp::sign(
                &agent(step.who),
                OpDraft {
                    topic: topic(),
                    kind: step.kind.into(),
                    counter: *counter,
                    time_ms: time,
                    deps: vec![],
                    body: step.body,
                },
            )
            .unwrap();
            *counter += 1;
            (Entry::new(seq as u64, time, op), step.note)
        })
        .collect()
}

/// An event's JSON view without the informative `reason`.
fn view(event: &Event) -> Value {
    let mut value = serde_json::to_value(event).unwrap();
    if let Some(object) = value.as_object_mut() {
        object.remove("reason");
    }
    value
}

fn derive_vectors() -> Value {
    let mut replica = Replica::new(&topic(), ReplicaConfig::default()).unwrap();
    let entries: Vec<Value> = entries()
        .into_iter()
        .map(|(entry, note)| {
            let events = replica.apply(&entry).unwrap();
            json!({
                "note": note,
                "entry": hex::encode(entry.as_bytes()),
                "events": events.iter().map(view).collect::<Vec<_>>(),
            })
        })
        .collect();
    let agents: Vec<Value> = AGENTS
        .iter()
        .map(|(name, seed)| {
            json!({ "name": name, "seed": hex::encode([*seed; 32]), "id": agent(name).agent_id().to_string() })
        })
        .collect();
    json!({
        "description": "An owned topic's authority (PROTOCOL.md 10.7, 10.8): entries applied in order to a replica of `topic` with the default configuration, and the events each causes (without the informative `reason`). `snapshot` is the replica's canonical state after the last entry (6.6, with the owned topic's authority section) and `state_hash` its SHA-256.",
        "agents": agents,
        "topic": topic(),
        "entries": entries,
        "snapshot": hex::encode(replica.snapshot()),
        "state_hash": hex::encode(replica.state_hash()),
    })
}

#[test]
fn vectors_are_rederived() {
    let derived = derive_vectors();
    if bless() {
        write_vectors("authority.json", &derived);
    }
    assert_eq!(
        vectors("authority.json"),
        derived,
        "run with ANTS_BLESS=1 only for a deliberate change"
    );
}

/// The codes of the vectors' rejections, in entry order (`-` for an entry that counts).
fn codes(file: &Value) -> Vec<String> {
    file["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["events"]
                .as_array()
                .unwrap()
                .iter()
                .find_map(|ev| ev["code"].as_str())
                .unwrap_or("-")
                .to_owned()
        })
        .collect()
}

#[test]
fn the_vectors_decide_as_the_rules_say() {
    let file = vectors("authority.json");
    assert_eq!(
        codes(&file),
        [
            "-",
            "NOT_AUTHORIZED",
            "-",
            "-",
            "NOT_AUTHORIZED",
            "-",
            "-",
            "NOT_AUTHORIZED",
            "NOT_AUTHORIZED",
            "-",
            "CAPABILITY_REVOKED",
            "-",
            "CAPABILITY_REVOKED",
            "-",
            "CAPABILITY_EXPIRED",
            "CAPABILITY_REVOKED",
            "MALFORMED_BODY",
            "NOT_AUTHORIZED",
            "-",
            "-",
            "NOT_AUTHORIZED",
            "NOT_AUTHORIZED",
            "-",
            "MALFORMED_BODY",
            "NOT_AUTHORIZED",
            "-",
            "-",
        ]
    );
    let types: Vec<&str> = file["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["events"][0]["type"].as_str())
        .collect();
    assert_eq!(
        types.iter().filter(|t| **t == "capabilityRevoked").count(),
        2
    );
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "capabilityPresented")
            .count(),
        4
    );
    let policies: Vec<&str> = file["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["events"][0]["type"] == "topicPolicySet")
        .map(|e| e["events"][0]["read"].as_str().unwrap())
        .collect();
    assert_eq!(policies, ["public", "private", "public"]);
}

/// A replica fed the vectors' bytes, and another restored from a snapshot half way and fed the
/// rest, produce the vectors' events and end in the vectors' state.
#[test]
fn replicas_agree_on_every_decision() {
    let file = vectors("authority.json");
    let topic = file["topic"].as_str().unwrap();
    let mut whole = Replica::new(topic, ReplicaConfig::default()).unwrap();
    let mut restored = Replica::new(topic, ReplicaConfig::default()).unwrap();
    for (i, case) in file["entries"].as_array().unwrap().iter().enumerate() {
        let entry = Entry::decode(&hex(&case["entry"])).unwrap();
        let events: Vec<Value> = whole.apply(&entry).unwrap().iter().map(view).collect();
        assert_eq!(&Value::from(events.clone()), &case["events"], "entry {i}");
        let again: Vec<Value> = restored.apply(&entry).unwrap().iter().map(view).collect();
        assert_eq!(again, events, "entry {i}, restored replica");
        // Through its snapshot after every entry: the authority survives it exactly.
        restored = Replica::restore(&restored.snapshot()).unwrap();
        assert_eq!(restored.state_hash(), whole.state_hash());
    }
    assert_eq!(hex::encode(whole.snapshot()), file["snapshot"]);
    assert_eq!(hex::encode(whole.state_hash()), file["state_hash"]);
    let authority = whole.authority().unwrap();
    assert_eq!(authority.revoked().len(), 2);
    // Four presented; erin's, expired, was forgotten when carol's was added.
    assert_eq!(authority.presented().count(), 3);
    assert_eq!(authority.read_rule(), ReadRule::Public);
}

/// A snapshot of version 1 (before topic policies, PROTOCOL.md 6.6) still restores, as a
/// private topic for an owned one, and the replica's own snapshots are version 2 from then on.
#[test]
fn version_1_snapshots_still_restore() {
    let mut owned = Replica::new(&topic(), ReplicaConfig::default()).unwrap();
    for (entry, _) in entries().into_iter().take(20) {
        owned.apply(&entry).unwrap();
    }
    let v2 = owned.snapshot();
    assert_eq!(
        (v2[0], v2.last()),
        (2, Some(&0)),
        "version, then read rule last"
    );
    // Version 1 spelled the same state without the read rule.
    let mut v1 = v2[..v2.len() - 1].to_vec();
    v1[0] = 1;
    let restored = Replica::restore(&v1).unwrap();
    assert_eq!(restored.state_hash(), owned.state_hash());
    assert_eq!(restored.authority().unwrap().read_rule(), ReadRule::Private);
    // A version-1 snapshot with a read rule is not one, nor a version-2 one without.
    let mut long = v2.clone();
    long[0] = 1;
    assert_eq!(
        Replica::restore(&long).unwrap_err().code(),
        "TRAILING_BYTES"
    );
    assert_eq!(
        Replica::restore(&v2[..v2.len() - 1]).unwrap_err().code(),
        "MALFORMED"
    );
    let mut unknown = v2.clone();
    *unknown.last_mut().unwrap() = 2;
    assert_eq!(Replica::restore(&unknown).unwrap_err().code(), "MALFORMED");
    // An open topic's snapshot is still version 1, as every earlier build wrote it (its state
    // hash is unchanged); the same state spelled as version 2 restores too.
    let open = Replica::new("open", ReplicaConfig::default()).unwrap();
    let v1 = open.snapshot();
    assert_eq!(v1[0], 1);
    let mut v2 = v1.clone();
    v2[0] = 2;
    assert_eq!(Replica::restore(&v2).unwrap().snapshot(), v1);
}

#[test]
fn open_topics_are_unchanged_and_snapshots_of_owned_ones_are_canonical() {
    // In an open topic the reserved kinds are ops like any other: recorded, no authority.
    let mut open = Replica::new("open", ReplicaConfig::default()).unwrap();
    assert!(open.authority().is_none());
    let bob = grant("alice", "bob", Rights::WRITE, T0 + 60_000);
    let op = SignedOp::sign(
        &agent("bob"),
        OpDraft {
            counter: 0,
            time_ms: T0,
            ..Presentation::new(bob).draft("open")
        },
    )
    .unwrap();
    let events = open.apply(&Entry::new(0, T0, op)).unwrap();
    assert!(matches!(events[..], [Event::Recorded { .. }]), "{events:?}");

    // A snapshot of an owned topic with bytes changed in its authority section is refused.
    let mut replica = Replica::new(&topic(), ReplicaConfig::default()).unwrap();
    for (entry, _) in entries() {
        replica.apply(&entry).unwrap();
    }
    let snapshot = replica.snapshot();
    let mut cut = snapshot.clone();
    cut.pop();
    assert!(Replica::restore(&cut).is_err());
    let mut flag = snapshot.clone();
    *flag.last_mut().unwrap() = 7;
    assert_eq!(Replica::restore(&flag).unwrap_err().code(), "MALFORMED");
    let mut longer = snapshot;
    longer.push(0);
    assert_eq!(
        Replica::restore(&longer).unwrap_err().code(),
        "TRAILING_BYTES"
    );
}

#[test]
fn the_tables_are_bounded_and_the_owner_keeps_room() {
    let topic = topic();
    let mut replica = Replica::new(&topic, ReplicaConfig::default()).unwrap();
    let mut seq = 0;
    let mut counters = std::collections::HashMap::new();
    let mut apply = |replica: &mut Replica, who: &Identity, step: (&str, Vec<u8>)| {
        let counter = counters.entry(who.agent_id()).or_insert(0u64);
        let op = SignedOp::sign(
            who,
            OpDraft {
                topic: topic.clone(),
                kind: step.0.into(),
                counter: *counter,
                time_ms: T0,
                deps: vec![],
                body: step.1,
            },
        )
        .unwrap();
        *counter += 1;
        let events = replica.apply(&Entry::new(seq, T0 + seq, op)).unwrap();
        seq += 1;
        events
    };
    // One agent keeps at most four presentations: a fifth replaces the one expiring first.
    let bob = agent("bob");
    for i in 0..=MAX_PRESENTED_PER_AGENT as u64 {
        let cap = grant("alice", "bob", Rights::WRITE, T0 + 60_000 + i);
        let body = Presentation::new(cap).encode();
        let events = apply(&mut replica, &bob, (kind::PRESENT, body));
        assert!(matches!(events[..], [Event::CapabilityPresented { .. }]));
    }
    let expiries: Vec<u64> = replica
        .authority()
        .unwrap()
        .presented()
        .map(Capability::expires_ms)
        .collect();
    assert_eq!(expiries.len(), MAX_PRESENTED_PER_AGENT);
    assert!(
        !expiries.contains(&(T0 + 60_000)),
        "the first to expire went"
    );

    // Carol, a delegator, fills her share of revocations; then hers are refused, not alice's.
    let carol = agent("carol");
    let root = grant(
        "alice",
        "carol",
        Rights::WRITE | Rights::DELEGATE,
        T0 + 60_000,
    );
    let chain = |i: u64| {
        root.delegate(
            &carol,
            Grant {
                audience: agent("dave").agent_id(),
                scope: Scope::Topic(topic.clone()),
                rights: Rights::WRITE,
                not_before_ms: 0,
                expires_ms: T0 + 30_000 + i,
            },
        )
        .unwrap()
    };
    for i in 0..MAX_REVOKED_BY_DELEGATORS as u64 {
        let body = Revocation::new(chain(i), 1).unwrap().encode();
        let events = apply(&mut replica, &carol, (kind::REVOKE, body));
        assert!(
            matches!(events[..], [Event::CapabilityRevoked { .. }]),
            "{events:?}"
        );
    }
    let body = Revocation::new(chain(10_000), 1).unwrap().encode();
    let events = apply(&mut replica, &carol, (kind::REVOKE, body));
    assert_eq!(
        events[0].reject_code().map(|c| c.as_str()),
        Some("AUTHORITY_FULL")
    );
    let body = Revocation::new(chain(10_000), 1).unwrap().encode();
    let events = apply(&mut replica, &agent("alice"), (kind::REVOKE, body));
    assert!(
        matches!(events[..], [Event::CapabilityRevoked { .. }]),
        "{events:?}"
    );
    // Still canonical through a snapshot.
    let restored = Replica::restore(&replica.snapshot()).unwrap();
    assert_eq!(restored.state_hash(), replica.state_hash());
}

#[test]
fn a_session_refuses_to_sign_an_authority_op_whose_body_does_not_decode() {
    let mut session = ants_coord::Session::new(agent("bob"));
    let topic = topic();
    for kind in [kind::PRESENT, kind::REVOKE, kind::POLICY] {
        let refused = session.publish(&topic, kind, b"not a capability", vec![], T0);
        assert_eq!(refused.unwrap_err().code(), "BAD_INPUT", "{kind}");
    }
    let bob = grant("alice", "bob", Rights::WRITE, T0 + 60_000);
    let body = Presentation::new(bob.clone()).encode();
    assert!(session
        .publish(&topic, kind::PRESENT, &body, vec![], T0)
        .is_ok());
    let body = Revocation::new(bob, 0).unwrap().encode();
    assert!(session
        .publish(&topic, kind::REVOKE, &body, vec![], T0)
        .is_ok());
    let body = TopicPolicy {
        read: ReadRule::Public,
    }
    .encode();
    assert!(session
        .publish(&topic, kind::POLICY, &body, vec![], T0)
        .is_ok());
}

/// Capabilities for the random steps: rooted at alice or not, delegated, short-lived.
fn pool() -> Vec<Capability> {
    vec![
        grant("alice", "bob", Rights::WRITE, T0 + 40_000),
        carol_root(),
        dave_chain(),
        grant("alice", "erin", Rights::WRITE, T0 + 5_000),
        grant("mallory", "bob", Rights::WRITE, T0 + 40_000),
        grant("alice", "mallory", Rights::READ, T0 + 40_000),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Each step: who signs; a post (0), a presentation (1), a revocation (2) or a topic
    /// policy (3, public when the link index is 1); of which capability of the pool; which
    /// link; how many ms after the step before.
    ///
    /// Whatever the ops, their order and their times: the relay's check before sequencing
    /// (`Replica::authorize`) refuses an op exactly when the replica then rejects it for want of
    /// authority, with the same code; and a replica restored from a snapshot at any point decides
    /// the rest alike.
    #[test]
    fn the_relay_refuses_exactly_what_every_replica_rejects(
        steps in proptest::collection::vec(
            (0usize..6, 0u8..4, 0usize..6, 0usize..2, 0u64..3_000),
            1..40,
        ),
        restore_at in 0usize..40,
    ) {
        let pool = pool();
        let topic = topic();
        let mut replica = Replica::new(&topic, ReplicaConfig::default()).unwrap();
        let mut counters = [0u64; 6];
        let mut time = T0;
        for (i, (who, what, which, index, gap)) in steps.into_iter().enumerate() {
            let (name, _) = AGENTS[who];
            let capability = &pool[which];
            let (kind, body) = match what {
                0 => ("post", ReplicaOp::Post { text: "x".into() }.encode().unwrap()),
                1 => (kind::PRESENT, Presentation::new(capability.clone()).encode()),
                3 => {
                    let read = if index == 1 { ReadRule::Public } else { ReadRule::Private };
                    (kind::POLICY, TopicPolicy { read }.encode())
                }
                _ => {
                    let index = index.min(capability.links().len() - 1);
                    (kind::REVOKE, Revocation::new(capability.clone(), index).unwrap().encode())
                }
            };
            time += gap;
            let op = SignedOp::sign(
                &agent(name),
                OpDraft {
                    topic: topic.clone(),
                    kind: kind.into(),
                    counter: counters[who],
                    time_ms: time,
                    deps: vec![],
                    body,
                },
            )
            .unwrap();
            counters[who] += 1;
            let decided = replica.authorize(&op, time).map_err(|e| match e.code() {
                "LIMIT_EXCEEDED" => "AUTHORITY_FULL",
                "NOT_AUTHORIZED" | "CAPABILITY_EXPIRED" | "CAPABILITY_REVOKED" => e.code(),
                _ => "MALFORMED_BODY",
            });
            let seq = replica.next_seq();
            let events = replica.apply(&Entry::new(seq, time, op)).unwrap();
            let rejected = events.iter().find_map(Event::reject_code).map(|c| c.as_str());
            proptest::prop_assert_eq!(decided.err(), rejected, "step {}", i);
            if i == restore_at {
                let restored = Replica::restore(&replica.snapshot()).unwrap();
                proptest::prop_assert_eq!(restored.state_hash(), replica.state_hash());
                replica = restored;
            }
        }
    }
}

#[test]
fn the_spec_states_the_bounds() {
    use ants_coord::capability::authority::{MAX_PRESENTED, MAX_REVOKED};
    let protocol = include_str!("../PROTOCOL.md");
    for (name, value) in [
        ("MAX_REVOKED", MAX_REVOKED),
        ("MAX_REVOKED_BY_DELEGATORS", MAX_REVOKED_BY_DELEGATORS),
        ("MAX_PRESENTED_PER_AGENT", MAX_PRESENTED_PER_AGENT),
        ("MAX_PRESENTED", MAX_PRESENTED),
    ] {
        let stated = format!("`{name}` =\n{value}");
        let stated_inline = format!("`{name}` = {value}");
        assert!(
            protocol.contains(&stated) || protocol.contains(&stated_inline),
            "PROTOCOL.md states {name} = {value}"
        );
    }
}
