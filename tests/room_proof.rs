//! Room proofs (PROTOCOL.md 8.7.1): `tests/vectors/room_proofs.json` derived from an encoder
//! written from the section's table alone, and the crate's `RoomProof` checked against it —
//! encoding, and the decision (agent, or the code) for a topic at a time.
//!
//! `ANTS_BLESS=1` rewrites the file after a deliberate protocol change; any other difference
//! fails.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use ants_coord::capability::room_proof::{ROOM_PROOF_DOMAIN, ROOM_PROOF_LEN};
use ants_coord::capability::RoomProof;
use ants_coord::Identity;
use common::{bless, vectors, write_vectors};
use serde_json::{json, Value};

const EXPIRES: u64 = 1_800_000_000_000;

/// The proof as the table lays it out: version, key, expiry (big-endian), signature over
/// `"ants-coord/yjs-room/v1\0" ‖ key ‖ expiry ‖ topic`.
fn spec_proof(seed: u8, topic: &str, expires_ms: u64) -> (Vec<u8>, Vec<u8>) {
    let identity = Identity::from_seed(&[seed; 32]).unwrap();
    let key = identity.agent_id().as_bytes().to_vec();
    let message = [
        b"ants-coord/yjs-room/v1\0".as_slice(),
        &key,
        &expires_ms.to_be_bytes(),
        topic.as_bytes(),
    ]
    .concat();
    let proof = [
        [1u8].as_slice(),
        &key,
        &expires_ms.to_be_bytes(),
        &identity.sign(&message),
    ]
    .concat();
    (message, proof)
}

/// The crate's decision: the agent id, or the error code.
fn decide(proof: &[u8], topic: &str, now_ms: u64) -> String {
    match RoomProof::decode(proof).and_then(|p| p.verify(topic, now_ms).map(|a| a.to_string())) {
        Ok(agent) => agent,
        Err(error) => error.code().to_owned(),
    }
}

fn derive_vectors() -> Value {
    let alice_topic = format!(
        "@{}/notes",
        Identity::from_seed(&[1; 32]).unwrap().agent_id()
    );
    let mut proofs = Vec::new();
    let mut checks = Vec::new();
    for (name, seed, topic) in [
        ("alice, her own room", 1u8, alice_topic.as_str()),
        ("bob, alice's room", 2, alice_topic.as_str()),
        ("bob, a bridged topic", 2, "@0000/x"),
    ] {
        let (message, proof) = spec_proof(seed, topic, EXPIRES);
        // The crate writes the same bytes.
        let identity = Identity::from_seed(&[seed; 32]).unwrap();
        assert_eq!(RoomProof::sign(&identity, topic, EXPIRES).encode(), proof);
        assert_eq!(proof.len(), ROOM_PROOF_LEN);
        proofs.push(json!({
            "name": name,
            "seed": hex::encode([seed; 32]),
            "topic": topic,
            "expires_ms": EXPIRES.to_string(),
            "signed_message": hex::encode(&message),
            "proof": hex::encode(&proof),
        }));
    }
    let (_, bob) = spec_proof(2, &alice_topic, EXPIRES);
    let bob_id = Identity::from_seed(&[2; 32])
        .unwrap()
        .agent_id()
        .to_string();
    let mut version = bob.clone();
    version[0] = 2;
    let mut no_key = bob.clone();
    no_key[1..33].copy_from_slice(&[0; 32]);
    let mut later = bob.clone();
    later[40] ^= 1; // the expiry's last byte: the signature no longer covers it
    let cases: Vec<(&str, Vec<u8>, &str, u64, &str)> = vec![
        ("valid", bob.clone(), &alice_topic, EXPIRES - 1, &bob_id),
        (
            "expired",
            bob.clone(),
            &alice_topic,
            EXPIRES,
            "NOT_AUTHENTICATED",
        ),
        ("another topic", bob.clone(), "@0000/x", 0, "BAD_SIGNATURE"),
        ("expiry moved", later, &alice_topic, 0, "BAD_SIGNATURE"),
        (
            "truncated",
            bob[..ROOM_PROOF_LEN - 1].to_vec(),
            &alice_topic,
            0,
            "MALFORMED",
        ),
        (
            "a byte too many",
            [bob.clone(), vec![0]].concat(),
            &alice_topic,
            0,
            "LIMIT_EXCEEDED",
        ),
        ("version 2", version, &alice_topic, 0, "UNSUPPORTED_VERSION"),
        ("not a key", no_key, &alice_topic, 0, "BAD_PUBLIC_KEY"),
    ];
    for (name, proof, topic, now, expected) in cases {
        assert_eq!(decide(&proof, topic, now), expected, "{name}");
        checks.push(json!({
            "name": name,
            "proof": hex::encode(&proof),
            "topic": topic,
            "now_ms": now.to_string(),
            "result": expected,
        }));
    }
    json!({
        "description": "Room proofs (PROTOCOL.md 8.7.1): `proof` = 0x01 || agent key || expires_ms (u64 big-endian) || Ed25519 signature over `signed_message` = domain || agent key || expires_ms || topic (UTF-8). `checks`: what a relay decides for a proof, a guarding topic and its clock: the agent id, or the error code. Integers are decimal strings.",
        "domain": hex::encode(ROOM_PROOF_DOMAIN),
        "proof_len": ROOM_PROOF_LEN,
        "proofs": proofs,
        "checks": checks,
    })
}

#[test]
fn vectors_are_rederived() {
    let derived = derive_vectors();
    if bless() {
        write_vectors("room_proofs.json", &derived);
    }
    assert_eq!(
        vectors("room_proofs.json"),
        derived,
        "run with ANTS_BLESS=1 only for a deliberate change"
    );
}
