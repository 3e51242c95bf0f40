//! Identities and signatures: RFC 8032 vectors, agent id text form, strictness, batches.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use ants_coord::{verify_batch, verify_signature, AgentId, Identity};
use common::{bless, hex, vectors, write_vectors};
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use proptest::prelude::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha512};

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

// ---------- strict verification (PROTOCOL.md section 1), pinned by vectors ----------

/// The group order L, little-endian.
const ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The encoding of the neutral point (x = 0, y = 1): of small order (order 1).
fn neutral() -> [u8; 32] {
    let mut e = [0u8; 32];
    e[0] = 1;
    e
}

/// RFC 8032 5.1.5: the secret scalar `a` of a seed.
fn secret_scalar(seed: &[u8; 32]) -> Scalar {
    let h = Sha512::digest(seed);
    let mut a = [0u8; 32];
    a.copy_from_slice(&h[..32]);
    a[0] &= 248;
    a[31] &= 127;
    a[31] |= 64;
    Scalar::from_bytes_mod_order(a)
}

/// `k = SHA-512(R ‖ A ‖ M) mod L` (RFC 8032 5.1.7 step 2).
fn challenge(r: &[u8], a: &[u8], message: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(message);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// Whether `[S mod L]B − [k]A` encodes to `R` (the cofactorless equation and no other check):
/// what a lax verifier accepts.
fn cofactorless_equation_holds(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let a = CompressedEdwardsY(public_key.try_into().unwrap())
        .decompress()
        .unwrap();
    let mut s = [0u8; 32];
    s.copy_from_slice(&signature[32..]);
    // A lax verifier reduces S instead of refusing S ≥ L.
    let s = Scalar::from_bytes_mod_order(s);
    let k = challenge(&signature[..32], public_key, message);
    let r = curve25519_dalek::EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &-a, &s);
    r.compress().to_bytes()[..] == signature[..32]
}

fn strict_vectors() -> Value {
    let message = b"ants-coord strict".to_vec();
    let seed = [6u8; 32];
    let identity = Identity::from_seed(&seed).unwrap();
    let key = *identity.agent_id().as_bytes();
    let good = identity.sign(&message);
    // s + L: the same point equation, an unreduced scalar.
    let mut s_plus_l = good;
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s_plus_l[32 + i]) + u16::from(ORDER[i]) + carry;
        s_plus_l[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    // R = the neutral point and S = k·a: [S]B − [k]A = 0 = R, so the cofactorless equation holds;
    // only the small-order check on R refuses it.
    let k = challenge(&neutral(), &key, &message);
    let s = k * secret_scalar(&seed);
    let mut small_r = [0u8; 64];
    small_r[..32].copy_from_slice(&neutral());
    small_r[32..].copy_from_slice(s.as_bytes());
    // A = the neutral point, R = the neutral point, S = 0: every message "verifies" laxly.
    let mut small_a_sig = [0u8; 64];
    small_a_sig[..32].copy_from_slice(&neutral());
    // A non-canonical encoding: y = p + c for the smallest c whose point is on the curve and not
    // of small order (a lax decoder reduces y mod p and accepts it).
    let (c, non_canonical_a) = (2u8..19)
        .map(|c| {
            let mut e = [0xffu8; 32];
            e[0] = 0xed + c;
            e[31] = 0x7f;
            (c, e)
        })
        .find(|(_, e)| {
            CompressedEdwardsY(*e)
                .decompress()
                .is_some_and(|point| !point.is_small_order())
        })
        .expect("some y = p + c is a point");
    let case = |name: &str, public_key: &[u8], signature: &[u8], code: &str, note: &str| {
        json!({
            "name": name,
            "public_key": hex::encode(public_key),
            "message": hex::encode(&message),
            "signature": hex::encode(signature),
            "code": code,
            "note": note,
        })
    };
    json!({
        "description": "Strict Ed25519 verification (PROTOCOL.md section 1). Each case is answered with `code` (empty: it verifies). Cases whose note starts with `verifies_cofactorless` satisfy the plain equation [S mod L]B - [k]A = R, k = SHA-512(R || A || M) mod L, and are refused only by the strict rule the note names.",
        "message": hex::encode(&message),
        "cases": [
            case("valid", &key, &good, "", "seed 06 repeated 32 times"),
            case("S not reduced (S + L)", &key, &s_plus_l, "BAD_SIGNATURE", "verifies_cofactorless: S ≥ L is refused"),
            case("R of small order (the neutral point), S = k·a", &key, &small_r, "BAD_SIGNATURE", "verifies_cofactorless: R of small order is refused"),
            case("A of small order (the neutral point), R neutral, S = 0", &neutral(), &small_a_sig, "BAD_PUBLIC_KEY", "verifies_cofactorless: A of small order is refused"),
            case(&format!("A not canonically encoded (y = p + {c})"), &non_canonical_a, &good, "BAD_PUBLIC_KEY", "a point of large order, but y ≥ p is refused"),
        ],
    })
}

#[test]
fn strict_verification_vectors() {
    let derived = strict_vectors();
    if bless() {
        write_vectors("ed25519-strict.json", &derived);
    }
    let file = vectors("ed25519-strict.json");
    assert_eq!(file, derived, "run with ANTS_BLESS=1 to rewrite");
    let message = hex(&file["message"]);
    for case in file["cases"].as_array().unwrap() {
        let (key, sig) = (hex(&case["public_key"]), hex(&case["signature"]));
        let got = verify_signature(&key, &message, &sig)
            .err()
            .map(|e| e.code())
            .unwrap_or("");
        assert_eq!(got, case["code"].as_str().unwrap(), "{}", case["name"]);
        if case["note"]
            .as_str()
            .unwrap()
            .starts_with("verifies_cofactorless")
        {
            assert!(
                cofactorless_equation_holds(&key, &message, &sig),
                "{}: the vector must pass the plain equation",
                case["name"]
            );
        }
        if got == "BAD_SIGNATURE" {
            // The batch path refuses what the single path refuses.
            assert!(verify_batch(&[&key[..]], &[&message[..]], &[&sig[..]]).is_err());
        }
    }
    // The secret scalar used above is the one behind the key.
    let a = secret_scalar(&[6; 32]);
    assert_eq!(
        (ED25519_BASEPOINT_POINT * a).compress().to_bytes(),
        *Identity::from_seed(&[6; 32]).unwrap().agent_id().as_bytes()
    );
}
