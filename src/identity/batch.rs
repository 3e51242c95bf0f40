//! The Ed25519 batch equation with signatures by one key merged into one term.
//!
//! For signatures `(R_i, s_i)` by keys `A_i` over messages `M_i`, with `k_i = SHA-512(R_i ‖ A_i ‖
//! M_i) mod ℓ` and random 128-bit weights `z_i`, every signature verifies (up to torsion
//! components, as with any batch) when
//!
//! ```text
//! [−Σ z_i·s_i] B + Σ [z_i] R_i + Σ [z_i·k_i] A_i = 0
//! ```
//!
//! This is the equation of ed25519-dalek's `verify_batch` (and of Bernstein et al., "High-speed
//! high-security signatures", section 5). The one change is algebraic: the terms of signatures by
//! the same key are summed first, `Σ_{i: A_i = A} [z_i·k_i] A`, so a batch from a few agents — a
//! topic's usual traffic — costs one point per signature in the multiscalar multiplication instead
//! of two. The weights are derived from SHA-512 over every `k_i` and `s_i` (dalek derives them from
//! a transcript of the same values), so a forger cannot choose a signature after seeing them.

use std::collections::HashMap;

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};

use super::SIGNATURE_LEN;

/// Separates the weight derivation from every other use of SHA-512 in the protocol.
const WEIGHT_DOMAIN: &[u8] = b"ants-coord/batch-weights/v1\0";

/// Whether the batch equation holds for all signatures at once. `false` for a non-canonical `s`
/// or an `R` that is not a curve point too: the caller then checks each signature alone, so a
/// `false` never needs to say which one failed. The three slices have equal lengths.
pub(super) fn equation_holds(
    keys: &[VerifyingKey],
    messages: &[&[u8]],
    signatures: &[[u8; SIGNATURE_LEN]],
) -> bool {
    let n = signatures.len();
    let mut weights_seed = Sha512::new();
    weights_seed.update(WEIGHT_DOMAIN);
    weights_seed.update((n as u64).to_le_bytes());
    let mut s = Vec::with_capacity(n);
    let mut k = Vec::with_capacity(n);
    let mut r_points = Vec::with_capacity(n);
    for ((key, message), signature) in keys.iter().zip(messages).zip(signatures) {
        let (r_bytes, s_bytes) = signature.split_at(32);
        let s_bytes: [u8; 32] = s_bytes.try_into().expect("64 = 32 + 32");
        let Some(s_i) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let r_bytes: [u8; 32] = r_bytes.try_into().expect("64 = 32 + 32");
        let Some(r_i) = CompressedEdwardsY(r_bytes).decompress() else {
            return false;
        };
        let hram: [u8; 64] = Sha512::new()
            .chain_update(r_bytes)
            .chain_update(key.as_bytes())
            .chain_update(message)
            .finalize()
            .into();
        weights_seed.update(hram);
        weights_seed.update(s_bytes);
        s.push(s_i);
        k.push(Scalar::from_bytes_mod_order_wide(&hram));
        r_points.push(r_i);
    }
    let weights = weights(&weights_seed.finalize().into(), n);

    let mut basepoint_weight = Scalar::ZERO;
    let mut key_terms: Vec<(EdwardsPoint, Scalar)> = Vec::new();
    let mut key_index: HashMap<[u8; 32], usize> = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        basepoint_weight -= weights[i] * s[i];
        let weight = weights[i] * k[i];
        match key_index.get(key.as_bytes()) {
            Some(&at) => key_terms[at].1 += weight,
            None => {
                key_index.insert(*key.as_bytes(), key_terms.len());
                key_terms.push((key.to_edwards(), weight));
            }
        }
    }

    let scalars = std::iter::once(basepoint_weight)
        .chain(weights.iter().copied())
        .chain(key_terms.iter().map(|(_, weight)| *weight));
    let points = std::iter::once(curve25519_dalek::constants::ED25519_BASEPOINT_POINT)
        .chain(r_points)
        .chain(key_terms.iter().map(|(point, _)| *point));
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).is_identity()
}

/// `n` 128-bit weights, four from each SHA-512 block of `seed ‖ block number`.
fn weights(seed: &[u8; 64], n: usize) -> Vec<Scalar> {
    let mut out = Vec::with_capacity(n);
    for block in 0..n.div_ceil(4) as u64 {
        let bytes: [u8; 64] = Sha512::new()
            .chain_update(seed)
            .chain_update(block.to_le_bytes())
            .finalize()
            .into();
        for quarter in bytes.chunks_exact(16).take(n - out.len()) {
            let weight = u128::from_le_bytes(quarter.try_into().expect("16 bytes"));
            out.push(Scalar::from(weight));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn signed(n: usize, signers: usize) -> (Vec<VerifyingKey>, Vec<Vec<u8>>, Vec<[u8; 64]>) {
        let ids: Vec<Identity> = (0..signers)
            .map(|i| Identity::from_seed(&[i as u8 + 1; 32]).unwrap())
            .collect();
        let messages: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("message {i}").into_bytes())
            .collect();
        let keys = (0..n)
            .map(|i| VerifyingKey::from_bytes(ids[i % signers].agent_id().as_bytes()).unwrap())
            .collect();
        let sigs = (0..n)
            .map(|i| ids[i % signers].sign(&messages[i]))
            .collect();
        (keys, messages, sigs)
    }

    fn holds(keys: &[VerifyingKey], messages: &[Vec<u8>], sigs: &[[u8; 64]]) -> bool {
        let m: Vec<&[u8]> = messages.iter().map(|m| &m[..]).collect();
        equation_holds(keys, &m, sigs)
    }

    #[test]
    fn valid_batches_hold_for_any_mix_of_signers() {
        for (n, signers) in [(0, 1), (1, 1), (5, 1), (9, 3), (64, 64), (33, 4)] {
            let (keys, messages, sigs) = signed(n, signers);
            assert!(
                holds(&keys, &messages, &sigs),
                "{n} signatures by {signers}"
            );
        }
    }

    #[test]
    fn one_bad_signature_among_many_by_its_key_fails_the_batch() {
        let (keys, messages, mut sigs) = signed(40, 3);
        sigs[17][33] ^= 1;
        assert!(!holds(&keys, &messages, &sigs));
    }

    #[test]
    fn signatures_swapped_between_messages_of_one_key_fail() {
        // Merged key terms must still bind each signature to its own message.
        let (keys, messages, mut sigs) = signed(8, 2);
        sigs.swap(0, 2);
        assert!(!holds(&keys, &messages, &sigs));
    }

    #[test]
    fn a_signature_under_another_key_fails() {
        let (mut keys, messages, sigs) = signed(6, 3);
        keys.swap(1, 2);
        assert!(!holds(&keys, &messages, &sigs));
    }

    #[test]
    fn non_canonical_s_and_r_off_the_curve_fail() {
        let (keys, messages, sigs) = signed(4, 2);
        let mut high_s = sigs.clone();
        high_s[1][63] |= 0xf0;
        assert!(!holds(&keys, &messages, &high_s));
        let not_a_point = (2u8..)
            .map(|y| {
                let mut r = [0u8; 32];
                r[0] = y;
                r
            })
            .find(|r| CompressedEdwardsY(*r).decompress().is_none())
            .unwrap();
        let mut off_curve = sigs;
        off_curve[3][..32].copy_from_slice(&not_a_point);
        assert!(!holds(&keys, &messages, &off_curve));
    }
}
