//! Identities and signatures: RFC 8032 vectors, agent id text form, strictness, batches.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use ants_coord::{verify_batch, verify_signature, AgentId, Identity};
use common::{hex, vectors};
use proptest::prelude::*;

#[test]
fn rfc8032_section_7_1_vectors() {
    let file = vectors("rfc8032.json");
    let cases = file["vectors"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let identity = Identity::from_seed(&hex(&case["secret_key"])).unwrap();
        let message = hex(&case["message"]);
        let signature = hex(&case["signature"]);
        assert_eq!(
            identity.agent_id().as_bytes().to_vec(),
            hex(&case["public_key"]),
            "{}",
            case["name"]
        );
        assert_eq!(
            identity.sign(&message).to_vec(),
            signature,
            "{}",
            case["name"]
        );
        verify_signature(&hex(&case["public_key"]), &message, &signature).unwrap();
        assert_eq!(*identity.export_seed(), hex(&case["secret_key"])[..]);
    }
}

#[test]
fn wrong_lengths_have_their_code() {
    let identity = Identity::from_seed(&[5; 32]).unwrap();
    let key = identity.agent_id();
    let sig = identity.sign(b"m");
    assert_eq!(
        Identity::from_seed(&[0; 31]).unwrap_err().code(),
        "BAD_LENGTH"
    );
    assert_eq!(
        verify_signature(&key.as_bytes()[..31], b"m", &sig)
            .unwrap_err()
            .code(),
        "BAD_LENGTH"
    );
    assert_eq!(
        verify_signature(key.as_bytes(), b"m", &sig[..63])
            .unwrap_err()
            .code(),
        "BAD_LENGTH"
    );
    assert_eq!(
        verify_signature(key.as_bytes(), b"n", &sig)
            .unwrap_err()
            .code(),
        "BAD_SIGNATURE"
    );
}

#[test]
fn non_canonical_s_is_refused() {
    // s + L (the group order) verifies under lax rules but must be refused.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let identity = Identity::from_seed(&[6; 32]).unwrap();
    let mut sig = identity.sign(b"m");
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = sig[32 + i] as u16 + L[i] as u16 + carry;
        sig[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    let key = identity.agent_id();
    assert_eq!(
        verify_signature(key.as_bytes(), b"m", &sig)
            .unwrap_err()
            .code(),
        "BAD_SIGNATURE"
    );
}

#[test]
fn generated_identities_differ_and_sign() {
    let a = Identity::generate().unwrap();
    let b = Identity::generate().unwrap();
    assert_ne!(a.agent_id(), b.agent_id());
    let sig = a.sign(b"hello");
    a.agent_id().verify(b"hello", &sig).unwrap();
    assert!(b.agent_id().verify(b"hello", &sig).is_err());
}

#[test]
fn batch_refuses_mismatched_counts() {
    let err = verify_batch(&[&[0u8; 32][..]], &[], &[]).unwrap_err();
    assert_eq!(err.code(), "BAD_INPUT");
}

proptest! {
    #[test]
    fn agent_id_text_round_trips(seed in any::<[u8; 32]>()) {
        let id = Identity::from_seed(&seed).unwrap().agent_id();
        let text = id.to_string();
        prop_assert_eq!(text.len(), 64);
        prop_assert_eq!(text.parse::<AgentId>().unwrap(), id);
    }

    #[test]
    fn any_flipped_bit_breaks_a_signature(seed in any::<[u8; 32]>(), msg in proptest::collection::vec(any::<u8>(), 0..64), bit in 0usize..(64 * 8)) {
        let identity = Identity::from_seed(&seed).unwrap();
        let mut sig = identity.sign(&msg);
        sig[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(identity.agent_id().verify(&msg, &sig).is_err());
    }

    #[test]
    fn batch_agrees_with_one_by_one(n in 1usize..12, signers in 1usize..5, bad in proptest::option::of(0usize..12), bit in 0usize..(64 * 8)) {
        // Few signers for many signatures too: the batch merges each key's terms.
        let ids: Vec<Identity> = (0..n).map(|i| Identity::from_seed(&[(i % signers) as u8 + 1; 32]).unwrap()).collect();
        let msgs: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; i]).collect();
        let mut sigs: Vec<[u8; 64]> = ids.iter().zip(&msgs).map(|(id, m)| id.sign(m)).collect();
        let bad = bad.filter(|&b| b < n);
        if let Some(b) = bad { sigs[b][bit / 8] ^= 1 << (bit % 8); }
        let keys: Vec<[u8; 32]> = ids.iter().map(|i| *i.agent_id().as_bytes()).collect();
        let result = verify_batch(
            &keys.iter().map(|k| &k[..]).collect::<Vec<_>>(),
            &msgs.iter().map(|m| &m[..]).collect::<Vec<_>>(),
            &sigs.iter().map(|s| &s[..]).collect::<Vec<_>>(),
        );
        prop_assert_eq!(result.is_ok(), bad.is_none());
    }
}

#[test]
fn small_order_or_non_canonical_r_is_refused_single_and_batch() {
    let identity = Identity::from_seed(&[8; 32]).unwrap();
    let key = *identity.agent_id().as_bytes();
    let mut identity_r = identity.sign(b"m");
    identity_r[..32].copy_from_slice(&{
        let mut r = [0u8; 32];
        r[0] = 1;
        r
    });
    let mut p_r = identity.sign(b"m");
    p_r[..32].copy_from_slice(&{
        let mut r = [0xff; 32];
        r[0] = 0xed;
        r[31] = 0x7f;
        r
    });
    for sig in [identity_r, p_r] {
        assert_eq!(
            verify_signature(&key, b"m", &sig).unwrap_err().code(),
            "BAD_SIGNATURE"
        );
        assert_eq!(
            verify_batch(&[&key[..]], &[&b"m"[..]], &[&sig[..]])
                .unwrap_err()
                .code(),
            "BAD_SIGNATURE"
        );
    }
}
