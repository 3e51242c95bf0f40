//! Capabilities and owned topics: `tests/vectors/capabilities.json` derived from an encoder
//! written from PROTOCOL.md section 10 alone, and the crate checked against it.
//!
//! `ANTS_BLESS=1` rewrites the file after a deliberate protocol change; any other difference
//! fails.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use ants_coord::capability::{
    may_read, may_write, topic_owner, Grant, CAPABILITY_DOMAIN, MAX_CAPABILITY_LEN, MAX_CHAIN_LINKS,
};
use ants_coord::{AgentId, Capability, Identity, Right, Rights, Scope};
use common::{bless, hex, vectors, write_vectors};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The agents of the vectors, by name and seed.
const AGENTS: [(&str, u8); 6] = [
    ("alice", 1),
    ("bob", 2),
    ("carol", 3),
    ("dana", 4),
    ("erin", 5),
    ("mallory", 9),
];

fn agent(name: &str) -> Identity {
    let seed = AGENTS.iter().find(|(n, _)| *n == name).expect("agent").1;
    Identity::from_seed(&[seed; 32]).unwrap()
}

fn agent_id(name: &str) -> AgentId {
    agent(name).agent_id()
}

/// `@<alice's id>/<rest>`.
fn alice_topic(rest: &str) -> String {
    format!("@{}/{rest}", agent_id("alice"))
}

const NOW: u64 = 1_800_000_000_000;
const DAY: u64 = 86_400_000;

/// One link as the spec lays it out, unsigned (PROTOCOL.md 10.1).
#[derive(Clone)]
struct SpecLink {
    issuer: &'static str,
    audience: [u8; 32],
    scope_kind: u8,
    scope: Vec<u8>,
    rights: u8,
    not_before_ms: u64,
    expires_ms: u64,
}

impl SpecLink {
    fn new(issuer: &'static str, audience: &str, kind: u8, scope: &str, rights: u8) -> Self {
        SpecLink {
            issuer,
            audience: *agent_id(audience).as_bytes(),
            scope_kind: kind,
            scope: scope.as_bytes().to_vec(),
            rights,
            not_before_ms: 0,
            expires_ms: NOW + DAY,
        }
    }

    fn unsigned(&self) -> Vec<u8> {
        let mut out = agent_id(self.issuer).as_bytes().to_vec();
        out.extend_from_slice(&self.audience);
        out.push(self.scope_kind);
        out.push(self.scope.len() as u8);
        out.extend_from_slice(&self.scope);
        out.push(self.rights);
        out.extend_from_slice(&self.not_before_ms.to_be_bytes());
        out.extend_from_slice(&self.expires_ms.to_be_bytes());
        out
    }
}

/// Signs the links of a chain as the spec says: `domain ‖ H(parent link) ‖ link`, the zero hash
/// for the root. Returns (signed messages, the capability's bytes).
fn spec_chain(links: &[SpecLink]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut out = vec![1u8, links.len() as u8];
    let mut parent = [0u8; 32];
    let mut messages = Vec::new();
    for link in links {
        let unsigned = link.unsigned();
        let message = [CAPABILITY_DOMAIN, &parent, &unsigned].concat();
        let signature = agent(link.issuer).sign(&message);
        let encoded = [&unsigned[..], &signature].concat();
        parent = Sha256::digest(&encoded).into();
        out.extend_from_slice(&encoded);
        messages.push(message);
    }
    (messages, out)
}

fn right_names(bits: u8) -> Vec<&'static str> {
    Right::ALL
        .into_iter()
        .filter(|r| bits & r.bit() != 0)
        .map(Right::name)
        .collect()
}

/// The valid chains: (name, links).
fn valid_cases() -> Vec<(&'static str, Vec<SpecLink>)> {
    let docs = alice_topic("docs/");
    let plan = alice_topic("docs/plan");
    let mut with_start = SpecLink::new("alice", "bob", 1, &docs, 0x07);
    with_start.not_before_ms = NOW - DAY;
    with_start.expires_ms = NOW + 30 * DAY;
    let mut carol_link = SpecLink::new("bob", "carol", 0, &plan, 0x05);
    carol_link.not_before_ms = NOW - DAY;
    let mut dana_link = SpecLink::new("carol", "dana", 0, &plan, 0x01);
    dana_link.not_before_ms = NOW;
    dana_link.expires_ms = NOW + 1;
    let mut four = vec![with_start.clone(), carol_link.clone()];
    let mut carol_delegates = carol_link.clone();
    carol_delegates.rights = 0x07;
    four[1] = carol_delegates;
    let mut dana_delegates = SpecLink::new("carol", "dana", 0, &plan, 0x06);
    dana_delegates.not_before_ms = NOW - DAY;
    four.push(dana_delegates);
    let mut erin_link = SpecLink::new("dana", "erin", 0, &plan, 0x02);
    erin_link.not_before_ms = NOW - DAY;
    four.push(erin_link);
    vec![
        (
            "bob may read and write alice's notes",
            vec![SpecLink::new(
                "alice",
                "bob",
                0,
                &alice_topic("notes"),
                0x03,
            )],
        ),
        (
            "bob holds everything under alice's docs/",
            vec![with_start.clone()],
        ),
        (
            "bob passes carol read of one doc, carol passes dana one millisecond of it",
            vec![with_start.clone(), carol_link, dana_link],
        ),
        ("a chain of four links, erin writes", four),
        (
            "mallory grants bob alice's notes (valid, but not rooted at the owner)",
            vec![SpecLink::new(
                "mallory",
                "bob",
                0,
                &alice_topic("notes"),
                0x03,
            )],
        ),
    ]
}

fn derive_valid() -> Vec<Value> {
    valid_cases()
        .into_iter()
        .map(|(name, links)| {
            let (messages, bytes) = spec_chain(&links);
            let leaf = links.last().unwrap();
            let link_views: Vec<Value> = links
                .iter()
                .zip(&messages)
                .map(|(link, message)| {
                    json!({
                        "issuer": agent_id(link.issuer).to_string(),
                        "audience": hex::encode(link.audience),
                        "scope_kind": if link.scope_kind == 0 { "topic" } else { "prefix" },
                        "scope": String::from_utf8(link.scope.clone()).unwrap(),
                        "rights": right_names(link.rights),
                        "not_before_ms": link.not_before_ms.to_string(),
                        "expires_ms": link.expires_ms.to_string(),
                        "signed_message": hex::encode(message),
                    })
                })
                .collect();
            json!({
                "name": name,
                "capability": hex::encode(&bytes),
                "id": hex::encode(Sha256::digest(&bytes)),
                "issuer": agent_id(links[0].issuer).to_string(),
                "audience": hex::encode(leaf.audience),
                "scope_kind": if leaf.scope_kind == 0 { "topic" } else { "prefix" },
                "scope": String::from_utf8(leaf.scope.clone()).unwrap(),
                "rights": right_names(leaf.rights),
                "not_before_ms": leaf.not_before_ms.to_string(),
                "expires_ms": leaf.expires_ms.to_string(),
                "links": link_views,
            })
        })
        .collect()
}

fn derive_invalid() -> Vec<Value> {
    let notes = alice_topic("notes");
    let docs = alice_topic("docs/");
    let plan = alice_topic("docs/plan");
    let root = SpecLink::new("alice", "bob", 1, &docs, 0x07);
    let child = SpecLink::new("bob", "carol", 0, &plan, 0x01);
    let chain = |links: Vec<SpecLink>| spec_chain(&links).1;
    let with = |base: &SpecLink, f: &dyn Fn(&mut SpecLink)| {
        let mut link = base.clone();
        f(&mut link);
        link
    };
    let good = chain(vec![root.clone(), child.clone()]);
    let mutate = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    let mut five = vec![with(&root, &|l| l.scope = b"@".to_vec())];
    for (from, to) in [("bob", "carol"), ("carol", "dana"), ("dana", "erin")] {
        five.push(SpecLink::new(from, to, 1, "@", 0x07));
    }
    five.push(SpecLink::new("erin", "alice", 1, "@", 0x01));
    let mut small_order = [0u8; 32];
    small_order[0] = 1;
    // The second link of `good`, signed under another parent: a link moved between chains.
    let other_root = with(&root, &|l| l.expires_ms -= 1);
    let (_, other) = spec_chain(&[other_root.clone(), child.clone()]);
    let root_len = 2 + root.unsigned().len() + 64;
    let mut spliced = chain(vec![root.clone()]);
    spliced[1] = 2;
    spliced.extend_from_slice(&other[2 + other_root.unsigned().len() + 64..]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "forged signature (one bit of the leaf's signature)",
            mutate(&|b| {
                let n = b.len();
                b[n - 1] ^= 1
            }),
            "BAD_SIGNATURE",
        ),
        (
            "a field changed after signing (the root's expiry, one millisecond later)",
            mutate(&|b| b[2 + 32 + 32 + 1 + 1 + docs.len() + 1 + 8 + 7] ^= 1),
            "BAD_SIGNATURE",
        ),
        ("a link moved onto another parent", spliced, "BAD_SIGNATURE"),
        (
            "widened rights: a read-only child grants write",
            chain(vec![
                with(&root, &|l| l.rights = 0x05),
                with(&child, &|l| l.rights = 0x03),
            ]),
            "BAD_CAPABILITY",
        ),
        (
            "widened scope: a topic outside the parent's prefix",
            chain(vec![
                root.clone(),
                with(&child, &|l| l.scope = notes.as_bytes().to_vec()),
            ]),
            "BAD_CAPABILITY",
        ),
        (
            "widened scope: a prefix under a single topic",
            chain(vec![
                with(&root, &|l| {
                    l.scope_kind = 0;
                    l.scope = plan.as_bytes().to_vec()
                }),
                with(&child, &|l| l.scope_kind = 1),
            ]),
            "BAD_CAPABILITY",
        ),
        (
            "longer expiry than the parent",
            chain(vec![
                root.clone(),
                with(&child, &|l| l.expires_ms = root.expires_ms + 1),
            ]),
            "BAD_CAPABILITY",
        ),
        (
            "earlier start than the parent",
            chain(vec![
                with(&root, &|l| l.not_before_ms = NOW),
                with(&child, &|l| l.not_before_ms = NOW - 1),
            ]),
            "BAD_CAPABILITY",
        ),
        (
            "the parent does not grant delegate",
            chain(vec![with(&root, &|l| l.rights = 0x03), child.clone()]),
            "BAD_CAPABILITY",
        ),
        (
            "a link not signed by its parent's audience",
            chain(vec![root.clone(), with(&child, &|l| l.issuer = "mallory")]),
            "BAD_CAPABILITY",
        ),
        ("depth 5", chain(five), "LIMIT_EXCEEDED"),
        (
            "no rights",
            chain(vec![with(&root, &|l| l.rights = 0)]),
            "BAD_CAPABILITY",
        ),
        (
            "a rights bit that names no right",
            chain(vec![with(&root, &|l| l.rights = 0x0f)]),
            "BAD_CAPABILITY",
        ),
        (
            "scope kind 2",
            chain(vec![with(&root, &|l| l.scope_kind = 2)]),
            "BAD_CAPABILITY",
        ),
        (
            "an empty window (expires = not before)",
            chain(vec![with(&root, &|l| l.not_before_ms = l.expires_ms)]),
            "BAD_CAPABILITY",
        ),
        (
            "a scope with a control character",
            chain(vec![with(&root, &|l| l.scope = b"a\nb".to_vec())]),
            "BAD_TOPIC",
        ),
        (
            "an empty scope",
            chain(vec![with(&root, &|l| l.scope.clear())]),
            "BAD_TOPIC",
        ),
        (
            "a scope that is not UTF-8",
            chain(vec![with(&root, &|l| l.scope = vec![0xff])]),
            "BAD_TOPIC",
        ),
        (
            "a small-order audience key",
            chain(vec![with(&root, &|l| l.audience = small_order)]),
            "BAD_PUBLIC_KEY",
        ),
        ("version 2", mutate(&|b| b[0] = 2), "UNSUPPORTED_VERSION"),
        ("zero links", vec![1, 0], "MALFORMED"),
        (
            "a chain that says two links and holds one",
            mutate(&|b| b.truncate(root_len)),
            "MALFORMED",
        ),
        ("a trailing byte", mutate(&|b| b.push(0)), "TRAILING_BYTES"),
        (
            "two defects: a widened scope and a forged signature (the rule comes first)",
            {
                let mut b = chain(vec![
                    root.clone(),
                    with(&child, &|l| l.scope = notes.as_bytes().to_vec()),
                ]);
                let n = b.len();
                b[n - 1] ^= 1;
                b
            },
            "BAD_CAPABILITY",
        ),
        (
            "two defects: a trailing byte and a widened scope (trailing bytes come first)",
            {
                let mut b = chain(vec![
                    root.clone(),
                    with(&child, &|l| l.scope = notes.as_bytes().to_vec()),
                ]);
                b.push(0);
                b
            },
            "TRAILING_BYTES",
        ),
        (
            "over the size limit",
            vec![1; MAX_CAPABILITY_LEN + 1],
            "LIMIT_EXCEEDED",
        ),
    ];
    cases
        .into_iter()
        .map(|(name, bytes, code)| {
            json!({ "name": name, "capability": hex::encode(bytes), "code": code })
        })
        .collect()
}

/// A decision row: name, check, topic, agent, chains held (by name), time, result.
type Decision<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Vec<&'a str>,
    u64,
    &'a str,
);

/// Authorization decisions over the valid chains (by name): what every replica and relay must
/// answer.
fn derive_decisions() -> Vec<Value> {
    let notes = alice_topic("notes");
    let plan = alice_topic("docs/plan");
    let bob = agent_id("bob").to_string();
    let carol = agent_id("carol").to_string();
    let dana = agent_id("dana").to_string();
    let alice = agent_id("alice").to_string();
    let valid = valid_cases();
    let name = |i: usize| valid[i].0;
    let (notes, plan) = (notes.as_str(), plan.as_str());
    let (alice, bob, carol, dana) = (alice.as_str(), bob.as_str(), carol.as_str(), dana.as_str());
    let erin = agent_id("erin").to_string();
    let rows: Vec<Decision> = vec![
        (
            "the owner needs no capability",
            "may_write",
            notes,
            alice,
            vec![],
            NOW,
            "OK",
        ),
        (
            "an open topic needs none",
            "may_write",
            "tasks",
            bob,
            vec![],
            NOW,
            "OK",
        ),
        (
            "another key without one may not read",
            "may_read",
            notes,
            bob,
            vec![],
            NOW,
            "NOT_AUTHORIZED",
        ),
        (
            "another key without one may not write",
            "may_write",
            notes,
            bob,
            vec![],
            NOW,
            "NOT_AUTHORIZED",
        ),
        (
            "bob writes alice's notes",
            "may_write",
            notes,
            bob,
            vec![name(0)],
            NOW,
            "OK",
        ),
        (
            "bob's grant ends at its expiry",
            "may_write",
            notes,
            bob,
            vec![name(0)],
            NOW + DAY,
            "CAPABILITY_EXPIRED",
        ),
        (
            "bob's grant is for bob only",
            "may_read",
            notes,
            carol,
            vec![name(0)],
            NOW,
            "NOT_AUTHORIZED",
        ),
        (
            "bob's grant covers notes, not docs",
            "may_read",
            plan,
            bob,
            vec![name(0)],
            NOW,
            "NOT_AUTHORIZED",
        ),
        (
            "wrong issuer: mallory's grant for alice's topic",
            "may_write",
            notes,
            bob,
            vec![name(4)],
            NOW,
            "NOT_AUTHORIZED",
        ),
        (
            "an expired grant and one of the wrong issuer",
            "may_write",
            notes,
            bob,
            vec![name(4), name(0)],
            NOW + DAY,
            "CAPABILITY_EXPIRED",
        ),
        (
            "bob writes under the prefix",
            "may_write",
            plan,
            bob,
            vec![name(1)],
            NOW,
            "OK",
        ),
        (
            "the prefix grant has not started",
            "may_write",
            plan,
            bob,
            vec![name(1)],
            NOW - DAY - 1,
            "NOT_AUTHORIZED",
        ),
        (
            "dana reads in her millisecond",
            "may_read",
            plan,
            dana,
            vec![name(2)],
            NOW,
            "OK",
        ),
        (
            "dana's millisecond is over",
            "may_read",
            plan,
            dana,
            vec![name(2)],
            NOW + 1,
            "CAPABILITY_EXPIRED",
        ),
        (
            "dana was given read only",
            "may_write",
            plan,
            dana,
            vec![name(2)],
            NOW,
            "NOT_AUTHORIZED",
        ),
        (
            "erin writes at the end of four links",
            "may_write",
            plan,
            erin.as_str(),
            vec![name(3)],
            NOW,
            "OK",
        ),
    ];
    rows.into_iter()
        .map(|(label, check, topic, agent, caps, now, result)| {
            json!({
                "name": label,
                "check": check,
                "topic": topic,
                "agent": agent,
                "capabilities": caps,
                "now_ms": now.to_string(),
                "result": result,
            })
        })
        .collect()
}

fn derive_vectors() -> Value {
    let agents: Vec<Value> = AGENTS
        .iter()
        .map(|(name, seed)| {
            json!({ "name": name, "seed": hex::encode([*seed; 32]), "id": agent_id(name).to_string() })
        })
        .collect();
    json!({
        "description": "Capabilities and owned topics (PROTOCOL.md section 10). `capability` is the canonical chain; each link's `signed_message` = CAPABILITY_DOMAIN || H(parent link) (32 zero bytes for the root) || the link without its signature; `id` = SHA-256(capability). Integers are decimal strings. `decisions` name the valid chains they hold.",
        "domain": hex::encode(CAPABILITY_DOMAIN),
        "max_capability_len": MAX_CAPABILITY_LEN,
        "max_links": MAX_CHAIN_LINKS,
        "agents": agents,
        "valid": derive_valid(),
        "invalid": derive_invalid(),
        "decisions": derive_decisions(),
    })
}

#[test]
fn vectors_are_rederived() {
    let derived = derive_vectors();
    if bless() {
        write_vectors("capabilities.json", &derived);
    }
    assert_eq!(
        vectors("capabilities.json"),
        derived,
        "run with ANTS_BLESS=1 only for a deliberate change"
    );
}

fn scope_of(case: &Value) -> Scope {
    let name = case["scope"].as_str().unwrap().to_owned();
    match case["scope_kind"].as_str().unwrap() {
        "topic" => Scope::Topic(name),
        _ => Scope::Prefix(name),
    }
}

fn rights_of(case: &Value) -> Rights {
    case["rights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Right::from_name(r.as_str().unwrap()).unwrap())
        .collect()
}

fn ms(value: &Value) -> u64 {
    value.as_str().unwrap().parse().unwrap()
}

/// The crate decodes every valid chain to its fields, and its own `grant`/`delegate` produce
/// the same bytes from those fields (signatures are deterministic).
#[test]
fn valid_chains_decode_and_re_encode() {
    let file = vectors("capabilities.json");
    let by_id = |id: &str| {
        AGENTS
            .iter()
            .map(|(n, _)| agent(n))
            .find(|a| a.agent_id().to_string() == id)
            .unwrap()
    };
    for case in file["valid"].as_array().unwrap() {
        let bytes = hex(&case["capability"]);
        let cap = Capability::decode(&bytes).unwrap();
        assert_eq!(cap.issuer().to_string(), case["issuer"].as_str().unwrap());
        assert_eq!(
            cap.audience().to_string(),
            case["audience"].as_str().unwrap()
        );
        assert_eq!(cap.scope(), &scope_of(case));
        assert_eq!(cap.rights(), rights_of(case));
        assert_eq!(cap.expires_ms(), ms(&case["expires_ms"]));
        assert_eq!(cap.not_before_ms(), ms(&case["not_before_ms"]));
        assert_eq!(hex::encode(cap.id()), case["id"].as_str().unwrap());
        let mut rebuilt: Option<Capability> = None;
        for link in case["links"].as_array().unwrap() {
            let issuer = by_id(link["issuer"].as_str().unwrap());
            let grant = Grant {
                audience: link["audience"].as_str().unwrap().parse().unwrap(),
                scope: scope_of(link),
                rights: rights_of(link),
                not_before_ms: ms(&link["not_before_ms"]),
                expires_ms: ms(&link["expires_ms"]),
            };
            rebuilt = Some(match rebuilt {
                None => Capability::grant_with(&issuer, grant).unwrap(),
                Some(parent) => parent.delegate(&issuer, grant).unwrap(),
            });
        }
        assert_eq!(rebuilt.unwrap().as_bytes(), &bytes[..], "{}", case["name"]);
    }
}

#[test]
fn invalid_chains_get_their_codes() {
    let file = vectors("capabilities.json");
    for case in file["invalid"].as_array().unwrap() {
        let error = Capability::decode(&hex(&case["capability"])).unwrap_err();
        assert_eq!(
            error.code(),
            case["code"].as_str().unwrap(),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn decisions_are_the_vectors() {
    let file = vectors("capabilities.json");
    let valid = file["valid"].as_array().unwrap();
    for case in file["decisions"].as_array().unwrap() {
        let caps: Vec<Capability> = case["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| {
                let found = valid.iter().find(|v| v["name"] == *name).unwrap();
                Capability::decode(&hex(&found["capability"])).unwrap()
            })
            .collect();
        let topic = case["topic"].as_str().unwrap();
        let agent: AgentId = case["agent"].as_str().unwrap().parse().unwrap();
        let now = ms(&case["now_ms"]);
        let result = match case["check"].as_str().unwrap() {
            "may_read" => may_read(topic, &agent, &caps, now),
            _ => may_write(topic, &agent, &caps, now),
        };
        let code = result.err().map_or("OK", |e| e.code());
        assert_eq!(code, case["result"].as_str().unwrap(), "{}", case["name"]);
    }
    assert_eq!(topic_owner(&alice_topic("x")), Some(agent_id("alice")));
}

/// PROTOCOL.md states the limits the code uses and names the signing domain.
#[test]
fn the_spec_states_the_limits_and_domain() {
    let protocol =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md")).unwrap();
    let section = protocol
        .split("\n## 10. Capabilities and owned topics\n")
        .nth(1)
        .expect("PROTOCOL.md section 10");
    assert!(section.contains(&format!(
        "`MAX_CAPABILITY_LEN` = {}",
        separated(MAX_CAPABILITY_LEN)
    )));
    assert!(section.contains("ants-coord/capability/v1\\0"));
    assert!(protocol.contains("| `ants-coord/capability/v1\\0` |"));
}

fn separated(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

proptest::proptest! {
    /// Any bytes decode or fail with a code; none panics, and what decodes re-encodes to itself.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1200)) {
        if let Ok(cap) = Capability::decode(&bytes) {
            proptest::prop_assert_eq!(cap.as_bytes(), &bytes[..]);
        }
    }

    /// Any single bit flipped in a valid chain is refused (every byte is signed or checked).
    #[test]
    fn any_flipped_bit_is_refused(index in proptest::prelude::any::<proptest::sample::Index>(), bit in 0u8..8) {
        let file = vectors("capabilities.json");
        let valid = file["valid"].as_array().unwrap();
        let mut bytes = hex(&valid[3]["capability"]);
        let at = index.index(bytes.len());
        bytes[at] ^= 1 << bit;
        proptest::prop_assert!(Capability::decode(&bytes).is_err());
    }
}
