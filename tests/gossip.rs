//! Checkpoint gossip bodies (PROTOCOL.md 8.8): the vectors in tests/vectors/gossip.json are
//! re-derived from fixed keys, decode to what they say, and every defect is refused.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use ants_coord::log::{Checkpoint, Receipt, SignedCheckpoint, SignedReceipt, SignedTreeHead};
use ants_coord::session::Gossip;
use ants_coord::{Identity, OpId};
use common::{bless, hex, vectors, write_vectors};
use serde_json::json;

fn relay() -> Identity {
    Identity::from_seed(&[0x42; 32]).unwrap()
}

fn heads() -> Vec<(&'static str, SignedTreeHead)> {
    let relay = relay();
    let checkpoint = SignedCheckpoint::sign(
        &relay,
        Checkpoint {
            topic: "tasks".into(),
            tree_size: 3,
            root: [0xab; 32],
            time_ms: 1_700_000_000_000,
        },
    )
    .unwrap();
    let receipt = SignedReceipt::sign(
        &relay,
        Receipt {
            topic: "tasks".into(),
            seq: 2,
            op_id: OpId([0x11; 32]),
            relay_time_ms: 1_700_000_000_000,
            tree_size: 3,
            root: [0xab; 32],
        },
    )
    .unwrap();
    vec![
        ("checkpoint", checkpoint.into()),
        ("receipt", receipt.into()),
    ]
}

fn derive() -> serde_json::Value {
    let relay = relay().agent_id();
    let cases: Vec<_> = heads()
        .into_iter()
        .map(|(name, head)| {
            json!({
                "name": name,
                "relay": relay.to_string(),
                "statement": hex::encode(head.as_bytes()),
                "gossip": hex::encode(Gossip::encode(&relay, &head)),
            })
        })
        .collect();
    json!({
        "description": "Checkpoint gossip bodies (PROTOCOL.md 8.8): version 1 ‖ relay id ‖ head kind (1 receipt, 2 checkpoint) ‖ u32 length ‖ the relay-signed statement. The relay key is the Ed25519 seed 0x42 × 32. `refused`: bodies a receiver MUST refuse, with the code; those with several defects pin the check order (the body's fields, trailing bytes, the head kind, then the statement as in PROTOCOL.md 5.3/5.4, its signature last).",
        "cases": cases,
        "refused": refused(),
    })
}

/// Defective gossip bodies, made from the checkpoint's body, with the code a receiver gives.
fn refused() -> serde_json::Value {
    let relay = relay().agent_id();
    let (_, head) = &heads()[0];
    let body = Gossip::encode(&relay, head);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = body.clone();
        f(&mut b);
        hex::encode(b)
    };
    const KIND_AT: usize = 33;
    let no_key = |b: &mut Vec<u8>| b[1..33].fill(0);
    let flip_last = |b: &mut Vec<u8>| {
        let n = b.len();
        b[n - 1] ^= 1
    };
    let other = Identity::from_seed(&[7; 32]).unwrap().agent_id();
    // The statement one byte longer inside the body (its length field says so too).
    let long_statement = |b: &mut Vec<u8>| {
        b.push(0);
        let len = (b.len() - KIND_AT - 5) as u32;
        b[KIND_AT + 1..KIND_AT + 5].copy_from_slice(&len.to_be_bytes());
    };
    json!([
        { "name": "version 2", "gossip": with(&|b| b[0] = 2), "code": "UNSUPPORTED_VERSION" },
        { "name": "relay id not a key", "gossip": with(&no_key), "code": "BAD_PUBLIC_KEY" },
        { "name": "head kind 9", "gossip": with(&|b| b[KIND_AT] = 9), "code": "BAD_INPUT" },
        { "name": "truncated", "gossip": with(&|b| { b.pop(); }), "code": "MALFORMED" },
        { "name": "trailing byte", "gossip": with(&|b| b.push(0)), "code": "TRAILING_BYTES" },
        { "name": "statement with a trailing byte", "gossip": with(&long_statement), "code": "TRAILING_BYTES" },
        { "name": "checkpoint read as a receipt", "gossip": with(&|b| b[KIND_AT] = 1), "code": "MALFORMED" },
        { "name": "flipped signature bit", "gossip": with(&flip_last), "code": "BAD_SIGNATURE" },
        { "name": "another relay's id", "gossip": with(&|b| b[1..33].copy_from_slice(other.as_bytes())), "code": "BAD_SIGNATURE" },
        // Several defects.
        { "name": "version 2 and relay id not a key", "gossip": with(&|b| { b[0] = 2; no_key(b) }), "code": "UNSUPPORTED_VERSION" },
        { "name": "relay id not a key and head kind 9", "gossip": with(&|b| { no_key(b); b[KIND_AT] = 9 }), "code": "BAD_PUBLIC_KEY" },
        { "name": "head kind 9 and trailing byte", "gossip": with(&|b| { b[KIND_AT] = 9; b.push(0) }), "code": "TRAILING_BYTES" },
        { "name": "head kind 9 and flipped signature bit", "gossip": with(&|b| { b[KIND_AT] = 9; flip_last(b) }), "code": "BAD_INPUT" },
    ])
}

#[test]
fn vectors_match_the_code() {
    let derived = derive();
    if bless() {
        write_vectors("gossip.json", &derived);
    }
    assert_eq!(
        vectors("gossip.json"),
        derived,
        "run with ANTS_BLESS=1 to rewrite"
    );
}

#[test]
fn vector_bodies_decode_to_their_statement_and_defects_are_refused() {
    let file = vectors("gossip.json");
    for case in file["cases"].as_array().unwrap() {
        let body = hex(&case["gossip"]);
        let gossip = Gossip::decode(&body).unwrap();
        assert_eq!(gossip.relay.to_string(), case["relay"].as_str().unwrap());
        assert_eq!(gossip.head.as_bytes(), &hex(&case["statement"])[..]);
        assert_eq!(body[0], 1, "version first");
        let refused = |bytes: &[u8]| Gossip::decode(bytes).unwrap_err().code();
        let mut version = body.clone();
        version[0] = 2;
        assert_eq!(refused(&version), "UNSUPPORTED_VERSION");
        let mut kind = body.clone();
        kind[33] = 9;
        assert_eq!(refused(&kind), "BAD_INPUT");
        let mut longer = body.clone();
        longer.push(0);
        assert_eq!(refused(&longer), "TRAILING_BYTES");
        assert_eq!(refused(&body[..body.len() - 1]), "MALFORMED");
        let mut forged = body.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(refused(&forged), "BAD_SIGNATURE");
        let mut other_relay = body.clone();
        other_relay[1..33]
            .copy_from_slice(Identity::from_seed(&[7; 32]).unwrap().agent_id().as_bytes());
        assert_eq!(refused(&other_relay), "BAD_SIGNATURE");
    }
    for case in file["refused"].as_array().unwrap() {
        assert_eq!(
            Gossip::decode(&hex(&case["gossip"])).unwrap_err().code(),
            case["code"].as_str().unwrap(),
            "{}",
            case["name"]
        );
    }
}
