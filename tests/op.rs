//! Signed operations: byte-exact vectors, canonical form, mutation and fuzz properties.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use ants_coord::op::{MAX_BODY_LEN, MAX_OP_LEN, OP_DOMAIN};
use ants_coord::{Identity, OpDraft, OpId, SignedOp};
use common::{bless, hex, vectors, write_vectors};
use proptest::prelude::*;
use serde_json::{json, Value};

/// The ops the vector file describes: (name, seed, draft).
fn vector_cases() -> Vec<(&'static str, [u8; 32], OpDraft)> {
    vec![
        (
            "minimal post",
            [1; 32],
            OpDraft {
                topic: "t".into(),
                kind: "post".into(),
                ..OpDraft::default()
            },
        ),
        (
            "claim with deps",
            [2; 32],
            OpDraft {
                topic: "tasks/room-42".into(),
                kind: "claim".into(),
                counter: 7,
                time_ms: 1_764_000_000_000,
                deps: vec![OpId([0xaa; 32]), OpId([0x11; 32])],
                body: b"slot:tuesday-10:00".to_vec(),
            },
        ),
        (
            "unicode topic, max counter",
            [3; 32],
            OpDraft {
                topic: "réunion ☕".into(),
                kind: "doc.update".into(),
                counter: u64::MAX,
                time_ms: 1,
                deps: vec![],
                body: (0u8..=255).collect(),
            },
        ),
    ]
}

/// Builds the unsigned bytes straight from PROTOCOL.md section 3, independently of the crate.
fn spec_unsigned_bytes(author: &[u8], d: &OpDraft) -> Vec<u8> {
    let mut deps = d.deps.clone();
    deps.sort();
    let mut out = vec![1u8];
    out.extend_from_slice(author);
    out.push(d.topic.len() as u8);
    out.extend_from_slice(d.topic.as_bytes());
    out.push(d.kind.len() as u8);
    out.extend_from_slice(d.kind.as_bytes());
    out.extend_from_slice(&d.counter.to_be_bytes());
    out.extend_from_slice(&d.time_ms.to_be_bytes());
    out.push(deps.len() as u8);
    for dep in &deps {
        out.extend_from_slice(&dep.0);
    }
    out.extend_from_slice(&(d.body.len() as u32).to_be_bytes());
    out.extend_from_slice(&d.body);
    out
}

fn derive_vectors() -> Value {
    let valid: Vec<Value> = vector_cases()
        .into_iter()
        .map(|(name, seed, draft)| {
            let identity = Identity::from_seed(&seed).unwrap();
            let op = SignedOp::sign(&identity, draft.clone()).unwrap();
            json!({
                "name": name,
                "seed": hex::encode(seed),
                "author": identity.agent_id().to_string(),
                "topic": draft.topic,
                "kind": draft.kind,
                "counter": draft.counter.to_string(),
                "time_ms": draft.time_ms.to_string(),
                "deps": op.deps().iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                "body": hex::encode(&draft.body),
                "signed_message": hex::encode(op.signed_message()),
                "signature": hex::encode(op.signature()),
                "op": hex::encode(op.as_bytes()),
                "id": op.id().to_string(),
            })
        })
        .collect();
    let base = SignedOp::sign(
        &Identity::from_seed(&[2; 32]).unwrap(),
        vector_cases()[1].2.clone(),
    )
    .unwrap();
    let bytes = base.as_bytes().to_vec();
    let mutate = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = bytes.clone();
        f(&mut b);
        hex::encode(b)
    };
    let topic_at = 1 + 32 + 1;
    let kind_at = topic_at + "tasks/room-42".len() + 1;
    let deps_count_at = kind_at + "claim".len() + 8 + 8;
    let deps_at = deps_count_at + 1;
    let body_len_at = deps_at + 2 * 32;
    let no_key = |b: &mut Vec<u8>| b[1..33].fill(0);
    let bad_utf8_topic = |b: &mut Vec<u8>| b[topic_at] = 0xff;
    let bad_utf8_kind = |b: &mut Vec<u8>| b[kind_at] = 0xc3;
    let flip_signature = |b: &mut Vec<u8>| {
        let n = b.len();
        b[n - 1] ^= 1
    };
    let invalid = json!([
        { "name": "trailing byte", "op": mutate(&|b| b.push(0)), "code": "TRAILING_BYTES" },
        { "name": "truncated signature", "op": mutate(&|b| { b.pop(); }), "code": "MALFORMED" },
        { "name": "empty", "op": "", "code": "MALFORMED" },
        { "name": "version 2", "op": mutate(&|b| b[0] = 2), "code": "UNSUPPORTED_VERSION" },
        { "name": "flipped signature bit", "op": mutate(&|b| { let n = b.len(); b[n - 1] ^= 1 }), "code": "BAD_SIGNATURE" },
        { "name": "flipped body bit", "op": mutate(&|b| { let n = b.len(); b[n - 65] ^= 1 }), "code": "BAD_SIGNATURE" },
        { "name": "upper-case kind", "op": mutate(&|b| b[kind_at] = b'C'), "code": "BAD_KIND" },
        { "name": "deps out of order", "op": mutate(&|b| { let (x, y) = b.split_at_mut(deps_at + 32); x[deps_at..].swap_with_slice(&mut y[..32]); }), "code": "NON_CANONICAL" },
        { "name": "author not a key", "op": mutate(&no_key), "code": "BAD_PUBLIC_KEY" },
        { "name": "topic not UTF-8", "op": mutate(&bad_utf8_topic), "code": "BAD_TOPIC" },
        { "name": "empty topic", "op": mutate(&|b| { b[topic_at - 1] = 0; b.drain(topic_at..kind_at - 1); }), "code": "BAD_TOPIC" },
        { "name": "control character in topic", "op": mutate(&|b| b[topic_at + 5] = b'\n'), "code": "BAD_TOPIC" },
        { "name": "kind not UTF-8", "op": mutate(&bad_utf8_kind), "code": "BAD_KIND" },
        // Several defects: the first in section 3's check order decides the code.
        { "name": "version 2 and author not a key", "op": mutate(&|b| { b[0] = 2; no_key(b) }), "code": "UNSUPPORTED_VERSION" },
        { "name": "author not a key and topic not UTF-8", "op": mutate(&|b| { no_key(b); bad_utf8_topic(b) }), "code": "BAD_PUBLIC_KEY" },
        { "name": "topic not UTF-8 and truncated signature", "op": mutate(&|b| { bad_utf8_topic(b); b.pop(); }), "code": "MALFORMED" },
        { "name": "kind not UTF-8 and trailing byte", "op": mutate(&|b| { bad_utf8_kind(b); b.push(0) }), "code": "TRAILING_BYTES" },
        { "name": "topic not UTF-8 and 17 deps", "op": mutate(&|b| { bad_utf8_topic(b); b[deps_count_at] = 17 }), "code": "LIMIT_EXCEEDED" },
        { "name": "deps out of order and body length over the limit", "op": mutate(&|b| { let (x, y) = b.split_at_mut(deps_at + 32); x[deps_at..].swap_with_slice(&mut y[..32]); b[body_len_at..body_len_at + 4].copy_from_slice(&((MAX_BODY_LEN + 1) as u32).to_be_bytes()); }), "code": "NON_CANONICAL" },
        { "name": "topic not UTF-8 and kind not UTF-8", "op": mutate(&|b| { bad_utf8_topic(b); bad_utf8_kind(b) }), "code": "BAD_TOPIC" },
        { "name": "upper-case kind and flipped signature bit", "op": mutate(&|b| { b[kind_at] = b'C'; flip_signature(b) }), "code": "BAD_KIND" },
    ]);
    let entry = ants_coord::Entry::new(41, 1_764_000_000_500, base.clone());
    let entries = json!([{
        "name": "entry 41 wrapping the 'claim with deps' op",
        "seq": "41",
        "relay_time_ms": "1764000000500",
        "op": hex::encode(base.as_bytes()),
        "entry": hex::encode(entry.as_bytes()),
    }]);
    let entry_bytes = entry.as_bytes().to_vec();
    let op_len_at = 1 + 8 + 8;
    let mutate_entry = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = entry_bytes.clone();
        f(&mut b);
        hex::encode(b)
    };
    let op_len_over = |b: &mut Vec<u8>| {
        b[op_len_at..op_len_at + 4].copy_from_slice(&((MAX_OP_LEN + 1) as u32).to_be_bytes())
    };
    let invalid_entries = json!([
        { "name": "version 2", "entry": mutate_entry(&|b| b[0] = 2), "code": "UNSUPPORTED_VERSION" },
        { "name": "op shorter than its length", "entry": mutate_entry(&|b| { b.pop(); }), "code": "MALFORMED" },
        { "name": "op length over the largest op", "entry": mutate_entry(&op_len_over), "code": "LIMIT_EXCEEDED" },
        { "name": "trailing byte", "entry": mutate_entry(&|b| b.push(0)), "code": "TRAILING_BYTES" },
        { "name": "op with a flipped signature bit", "entry": mutate_entry(&flip_signature), "code": "BAD_SIGNATURE" },
        // Several defects: the entry's own fields, then its trailing bytes, then the op.
        { "name": "version 2 and op length over the largest op", "entry": mutate_entry(&|b| { b[0] = 2; op_len_over(b) }), "code": "UNSUPPORTED_VERSION" },
        { "name": "trailing byte and op with a flipped signature bit", "entry": mutate_entry(&|b| { flip_signature(b); b.push(0) }), "code": "TRAILING_BYTES" },
    ]);
    json!({
        "max_op_len": MAX_OP_LEN,
        "entries": entries,
        "invalid_entries": invalid_entries,
        "description": "Signed ops (PROTOCOL.md section 3) and entries (section 4). `op` is the canonical signed op; `signed_message` = OP_DOMAIN || op without its signature; `id` = SHA-256(op). Integers are decimal strings.",
        "domain": hex::encode(OP_DOMAIN),
        "valid": valid,
        "invalid": invalid,
    })
}

#[test]
fn vectors_are_rederived() {
    let derived = derive_vectors();
    if bless() {
        write_vectors("ops.json", &derived);
    }
    assert_eq!(
        vectors("ops.json"),
        derived,
        "run with ANTS_BLESS=1 only for a deliberate change"
    );
}

#[test]
fn vectors_decode_to_their_fields_and_codes() {
    let file = vectors("ops.json");
    for case in file["valid"].as_array().unwrap() {
        let op = SignedOp::decode(&hex(&case["op"])).unwrap();
        assert_eq!(op.author().to_string(), case["author"].as_str().unwrap());
        assert_eq!(op.topic(), case["topic"].as_str().unwrap());
        assert_eq!(op.counter().to_string(), case["counter"].as_str().unwrap());
        assert_eq!(op.id().to_string(), case["id"].as_str().unwrap());
        assert_eq!(op.signed_message(), hex(&case["signed_message"]));
        let unsigned = spec_unsigned_bytes(
            op.author().as_bytes(),
            &OpDraft {
                topic: op.topic().into(),
                kind: op.kind().into(),
                counter: op.counter(),
                time_ms: op.time_ms(),
                deps: op.deps().to_vec(),
                body: op.body().to_vec(),
            },
        );
        assert_eq!(
            [OP_DOMAIN, &unsigned].concat(),
            op.signed_message(),
            "{}",
            case["name"]
        );
    }
    for case in file["entries"].as_array().unwrap() {
        let entry = ants_coord::Entry::decode(&hex(&case["entry"])).unwrap();
        assert_eq!(entry.seq().to_string(), case["seq"].as_str().unwrap());
        assert_eq!(
            entry.relay_time_ms().to_string(),
            case["relay_time_ms"].as_str().unwrap()
        );
        let mut spec = vec![1u8];
        spec.extend_from_slice(&entry.seq().to_be_bytes());
        spec.extend_from_slice(&entry.relay_time_ms().to_be_bytes());
        spec.extend_from_slice(&(entry.op().as_bytes().len() as u32).to_be_bytes());
        spec.extend_from_slice(&hex(&case["op"]));
        assert_eq!(spec, entry.as_bytes());
    }
    for case in file["invalid"].as_array().unwrap() {
        let err = SignedOp::decode(&hex(&case["op"])).unwrap_err();
        assert_eq!(
            err.code(),
            case["code"].as_str().unwrap(),
            "{}",
            case["name"]
        );
    }
    for case in file["invalid_entries"].as_array().unwrap() {
        let err = ants_coord::Entry::decode(&hex(&case["entry"])).unwrap_err();
        assert_eq!(
            err.code(),
            case["code"].as_str().unwrap(),
            "{}",
            case["name"]
        );
    }
}

/// The largest op is the sum of section 3's table with every field at its limit, and the spec
/// states that number (it once said 262,993); 5.6 and 8.1 state the limits derived from it.
#[test]
fn the_spec_states_the_largest_op_the_code_uses() {
    let table = 1 + 32 + 1 + 128 + 1 + 64 + 8 + 8 + 1 + 16 * 32 + 4 + MAX_BODY_LEN + 64;
    assert_eq!(MAX_OP_LEN, table);
    assert_eq!(vectors("ops.json")["max_op_len"], json!(MAX_OP_LEN));
    let spec = include_str!("../PROTOCOL.md");
    let grouped = |n: usize| {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    for (what, n) in [
        ("MAX_OP_LEN", MAX_OP_LEN),
        ("21 + MAX_OP_LEN", 21 + MAX_OP_LEN),
        ("MAX_OP_LEN + 4096", MAX_OP_LEN + 4096),
    ] {
        let stated = format!("`{what}` = {}", grouped(n));
        assert!(spec.contains(&stated), "PROTOCOL.md should say {stated}");
    }
    assert!(!spec.contains("262,993"), "the old, wrong sum");
}

fn arb_draft() -> impl Strategy<Value = OpDraft> {
    (
        "[a-zA-Z0-9 /é☕-]{1,40}",
        "[a-z][a-z0-9._-]{0,20}",
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec(any::<[u8; 32]>(), 0..5),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(topic, kind, counter, time_ms, deps, body)| OpDraft {
            topic,
            kind,
            counter,
            time_ms,
            deps: deps.into_iter().map(OpId).collect(),
            body,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn encode_decode_round_trip(seed in any::<[u8; 32]>(), draft in arb_draft()) {
        let op = SignedOp::sign(&Identity::from_seed(&seed).unwrap(), draft).unwrap();
        let decoded = SignedOp::decode(op.as_bytes()).unwrap();
        prop_assert_eq!(decoded.as_bytes(), op.as_bytes());
        prop_assert_eq!(decoded.id(), op.id());
    }

    #[test]
    fn any_mutation_is_refused(draft in arb_draft(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let op = SignedOp::sign(&Identity::from_seed(&[9; 32]).unwrap(), draft).unwrap();
        let mut bytes = op.as_bytes().to_vec();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        prop_assert!(SignedOp::decode(&bytes).is_err());
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = SignedOp::decode(&bytes);
    }

    #[test]
    fn random_bytes_with_a_valid_prefix_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..400), cut in any::<prop::sample::Index>()) {
        let op = SignedOp::sign(&Identity::from_seed(&[4; 32]).unwrap(), OpDraft { topic: "t".into(), kind: "k".into(), ..OpDraft::default() }).unwrap();
        let mut bytes = op.as_bytes()[..cut.index(op.as_bytes().len())].to_vec();
        bytes.extend(tail);
        prop_assert!(SignedOp::decode(&bytes).is_err() || bytes == op.as_bytes());
    }
}

#[test]
fn oversized_body_length_is_refused_before_reading() {
    let op = SignedOp::sign(
        &Identity::from_seed(&[4; 32]).unwrap(),
        OpDraft {
            topic: "t".into(),
            kind: "k".into(),
            ..OpDraft::default()
        },
    )
    .unwrap();
    let mut bytes = op.as_bytes().to_vec();
    let body_len_at = bytes.len() - 64 - 4;
    bytes[body_len_at..body_len_at + 4].copy_from_slice(&((MAX_BODY_LEN + 1) as u32).to_be_bytes());
    assert_eq!(
        SignedOp::decode(&bytes).unwrap_err().code(),
        "LIMIT_EXCEEDED"
    );
}
