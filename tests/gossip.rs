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
        "description": "Checkpoint gossip bodies (PROTOCOL.md 8.8): version 1 ‖ relay id ‖ head kind (1 receipt, 2 checkpoint) ‖ u32 length ‖ the relay-signed statement. The relay key is the Ed25519 seed 0x42 × 32.",
        "cases": cases,
    })
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
}
