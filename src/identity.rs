//! Agent identities: ed25519 key pairs (RFC 8032) and the agent id text form.
//!
//! An agent *is* its public key. Its text form, the **agent id**, is the 32-byte public key as 64
//! lowercase hexadecimal characters; every other spelling (upper case, prefixes, whitespace, other
//! lengths) is refused, so one agent has exactly one id. Only canonical encodings of curve points
//! that are not of small order are agent ids: such keys could make one signature valid for many
//! messages.
//!
//! Signatures are plain RFC 8032 Ed25519, so any standard library can check them. Verification here
//! is *strict* (`verify_strict`): it refuses small-order keys and `R` values and non-canonical `s`.

use core::fmt;
use core::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

mod batch;

/// Length of an ed25519 public key, in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an ed25519 seed (the secret key of RFC 8032), in bytes.
pub const SEED_LEN: usize = 32;
/// Length of an ed25519 signature, in bytes.
pub const SIGNATURE_LEN: usize = 64;

/// The public identity of an agent: a validated ed25519 public key.
///
/// Invariant: the bytes are the canonical compressed encoding of a curve point that is not of
/// small order. Only [`AgentId::from_bytes`] and [`Identity::agent_id`] construct one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentId([u8; PUBLIC_KEY_LEN]);

impl AgentId {
    /// Validates 32 bytes as an agent's public key.
    ///
    /// Errors: `BAD_LENGTH` for another length, `BAD_PUBLIC_KEY` when the bytes are not the
    /// canonical encoding of a point or the point is of small order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        validated_key(bytes).map(|key| AgentId(key.to_bytes()))
    }

    /// The 32 public-key bytes.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// The first 8 hex characters of the id, for display only (never for identification).
    pub fn short(&self) -> String {
        self.to_string()[..8].to_owned()
    }

    fn verifying_key(&self) -> Result<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| Error::BadPublicKey)
    }

    /// Verifies an RFC 8032 signature by this agent over `message`, strictly.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<()> {
        verify_with(&self.verifying_key()?, message, signature)
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&lower_hex(&self.0))
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({self})")
    }
}

impl FromStr for AgentId {
    type Err = Error;

    /// Parses the canonical text form: exactly 64 lowercase hex characters.
    fn from_str(text: &str) -> Result<Self> {
        let bytes = decode_lower_hex(text, PUBLIC_KEY_LEN)
            .ok_or_else(|| Error::BadAgentId("expected 64 lowercase hex characters".into()))?;
        AgentId::from_bytes(&bytes).map_err(|_| Error::BadAgentId("not a valid ed25519 key".into()))
    }
}

/// An agent's key pair. The secret never leaves except through [`Identity::export_seed`].
///
/// Invariant: the signing key is zeroized when the `Identity` is dropped (ed25519-dalek's
/// `SigningKey` implements `ZeroizeOnDrop`), and `Debug` prints only the agent id.
pub struct Identity {
    signing: SigningKey,
}

impl Identity {
    /// A new identity from the platform's secure randomness (the OS, or `crypto.getRandomValues`
    /// in JS). In Cloudflare Workers call it inside a request handler, not at global scope.
    pub fn generate() -> Result<Self> {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        getrandom::getrandom(seed.as_mut())
            .map_err(|e| Error::RandomnessUnavailable(e.to_string()))?;
        Ok(Self::from_seed_array(&seed))
    }

    /// The identity whose RFC 8032 secret key is `seed` (32 bytes).
    pub fn from_seed(seed: &[u8]) -> Result<Self> {
        let seed = Zeroizing::new(fixed::<SEED_LEN>("seed", seed)?);
        Ok(Self::from_seed_array(&seed))
    }

    fn from_seed_array(seed: &[u8; SEED_LEN]) -> Self {
        Identity {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// The 32-byte seed, in a buffer that is zeroized when dropped. Handle with care.
    pub fn export_seed(&self) -> Zeroizing<[u8; SEED_LEN]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// This identity's public agent id.
    pub fn agent_id(&self) -> AgentId {
        // A key derived from a seed is a prime-order point in canonical encoding.
        AgentId(self.signing.verifying_key().to_bytes())
    }

    /// A plain RFC 8032 Ed25519 signature over `message` (no prefix added).
    ///
    /// Protocol structures never sign raw bytes: they sign `domain || bytes` through
    /// [`Identity::sign_in_domain`], so a signature for one purpose is never valid for another.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(message).to_bytes()
    }

    /// Signs `domain || message`; `domain` is one of the protocol's domain-separation tags.
    pub fn sign_in_domain(&self, domain: &[u8], message: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut bytes = Vec::with_capacity(domain.len() + message.len());
        bytes.extend_from_slice(domain);
        bytes.extend_from_slice(message);
        self.sign(&bytes)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("agent_id", &self.agent_id())
            .finish_non_exhaustive()
    }
}

/// Strictly verifies one RFC 8032 signature.
///
/// Errors: `BAD_LENGTH` for a key or signature of the wrong size, `BAD_PUBLIC_KEY` for an
/// unusable key, `BAD_SIGNATURE` when the signature does not verify.
pub fn verify_signature(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<()> {
    verify_with(&validated_key(public_key)?, message, signature)
}

fn verify_with(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> Result<()> {
    let signature = Signature::from_bytes(&fixed::<SIGNATURE_LEN>("signature", signature)?);
    key.verify_strict(message, &signature)
        .map_err(|_| Error::BadSignature)
}

/// Decompresses a public key once, refusing non-canonical encodings and small-order points.
fn validated_key(bytes: &[u8]) -> Result<VerifyingKey> {
    let array = fixed::<PUBLIC_KEY_LEN>("public key", bytes)?;
    if !is_canonical_y(&array) {
        return Err(Error::BadPublicKey);
    }
    let key = VerifyingKey::from_bytes(&array).map_err(|_| Error::BadPublicKey)?;
    if key.is_weak() {
        return Err(Error::BadPublicKey);
    }
    Ok(key)
}

/// Whether a compressed Edwards point's `y` (the low 255 bits) is below p = 2^255 − 19.
///
/// Points with x = 0 and the sign bit set are also non-canonical, but they (y = ±1) are of small
/// order and refused by that check.
fn is_canonical_y(encoding: &[u8; 32]) -> bool {
    let top_is_max = encoding[31] & 0x7f == 0x7f && encoding[1..31].iter().all(|&b| b == 0xff);
    !(top_is_max && encoding[0] >= 0xed)
}

/// Whether a signature's `R` must be refused before batch verification: a non-canonical encoding
/// or one of the small-order points (the eight torsion points, each with either sign bit, and the
/// non-canonical y = p, p + 1). `verify_strict` refuses exactly these `R` values too.
fn r_is_refused(signature: &[u8; SIGNATURE_LEN]) -> bool {
    let mut r = [0u8; 32];
    r.copy_from_slice(&signature[..32]);
    !is_canonical_y(&r) || small_order_encodings().contains(&r)
}

fn small_order_encodings() -> &'static [[u8; 32]] {
    static SET: std::sync::OnceLock<Vec<[u8; 32]>> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        let mut set = Vec::with_capacity(16);
        for point in curve25519_dalek::constants::EIGHT_TORSION {
            let canonical = point.compress().to_bytes();
            let mut flipped = canonical;
            flipped[31] ^= 0x80;
            set.extend([canonical, flipped]);
        }
        set
    })
}

/// Verifies many signatures at once; `Ok(())` exactly when every one of them verifies strictly.
///
/// Uses the batch equation of ed25519-dalek's `verify_batch`, one multiscalar multiplication,
/// with the terms of each key's signatures merged (see `identity/batch.rs`): about twice as fast
/// as one-by-one for large batches, and faster still when few agents signed many of them. Keys
/// are validated as agent ids first, and signatures whose `R` is non-canonical or of small order
/// are refused, as `verify_strict` would. When the batch equation fails, each signature is
/// checked alone, so a `BAD_SIGNATURE` is exact. The batch and single equations can disagree only
/// for keys or `R` values with a torsion component, which no RFC 8032 signer produces (see
/// PROTOCOL.md section 1).
///
/// Errors: `BAD_INPUT` if the three slices differ in length, the per-item errors of
/// [`verify_signature`] otherwise.
pub fn verify_batch(public_keys: &[&[u8]], messages: &[&[u8]], signatures: &[&[u8]]) -> Result<()> {
    batch_with(validated_key, public_keys, messages, signatures)
}

/// Decompressed, validated public keys of agents seen before: [`verify_batch_cached`] then
/// skips the point decompression (about a third of the cost of a batched verification) for
/// keys it has seen. A cache, never state: bounded to [`KeyCache::CAPACITY`] keys, cleared when
/// full; answers are the same with or without it.
#[derive(Debug, Default)]
pub struct KeyCache(std::collections::HashMap<[u8; PUBLIC_KEY_LEN], VerifyingKey>);

impl KeyCache {
    /// Most keys kept.
    pub const CAPACITY: usize = 1 << 16;

    /// Validates `bytes` as an agent id, as [`AgentId::from_bytes`] does, from the cache when
    /// the key was seen before.
    pub fn agent(&mut self, bytes: &[u8]) -> Result<AgentId> {
        self.key(bytes).map(|key| AgentId(key.to_bytes()))
    }

    fn key(&mut self, bytes: &[u8]) -> Result<VerifyingKey> {
        let array = fixed::<PUBLIC_KEY_LEN>("public key", bytes)?;
        if let Some(key) = self.0.get(&array) {
            return Ok(*key);
        }
        let key = validated_key(&array)?;
        if self.0.len() >= Self::CAPACITY {
            self.0.clear();
        }
        self.0.insert(array, key);
        Ok(key)
    }
}

/// [`verify_batch`] with decompressed keys kept in `cache`: the same answer, faster for
/// repeated signers.
pub fn verify_batch_cached(
    cache: &mut KeyCache,
    public_keys: &[&[u8]],
    messages: &[&[u8]],
    signatures: &[&[u8]],
) -> Result<()> {
    batch_with(|key| cache.key(key), public_keys, messages, signatures)
}

fn batch_with(
    mut key_of: impl FnMut(&[u8]) -> Result<VerifyingKey>,
    public_keys: &[&[u8]],
    messages: &[&[u8]],
    signatures: &[&[u8]],
) -> Result<()> {
    if public_keys.len() != messages.len() || messages.len() != signatures.len() {
        return Err(Error::BadInput(format!(
            "batch needs equal counts, got {} keys, {} messages, {} signatures",
            public_keys.len(),
            messages.len(),
            signatures.len()
        )));
    }
    let mut keys = Vec::with_capacity(public_keys.len());
    let mut sigs = Vec::with_capacity(signatures.len());
    for (key, sig) in public_keys.iter().zip(signatures) {
        keys.push(key_of(key)?);
        let sig = fixed::<SIGNATURE_LEN>("signature", sig)?;
        if r_is_refused(&sig) {
            return Err(Error::BadSignature);
        }
        sigs.push(sig);
    }
    if batch::equation_holds(&keys, messages, &sigs) {
        return Ok(());
    }
    for ((key, message), sig) in keys.iter().zip(messages).zip(&sigs) {
        key.verify_strict(message, &Signature::from_bytes(sig))
            .map_err(|_| Error::BadSignature)?;
    }
    Ok(())
}

/// Reads exactly `N` bytes or fails with `BAD_LENGTH` naming `what`.
pub(crate) fn fixed<const N: usize>(what: &'static str, bytes: &[u8]) -> Result<[u8; N]> {
    bytes.try_into().map_err(|_| Error::BadLength {
        what,
        expected: N,
        got: bytes.len(),
    })
}

/// Decodes exactly `len` bytes from lowercase hex; `None` for any other spelling.
pub(crate) fn decode_lower_hex(text: &str, len: usize) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if digits.len() != len * 2 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    digits
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// Lowercase hex of `bytes`, the text form of every id in the protocol. By table, not through
/// `fmt`: ids are formatted for every event a client receives.
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_id_round_trips_and_refuses_other_spellings() {
        let id = Identity::from_seed(&[7; 32]).unwrap().agent_id();
        let text = id.to_string();
        assert_eq!(text.parse::<AgentId>().unwrap(), id);
        for bad in [
            text.to_uppercase(),
            format!(" {text}"),
            text[1..].to_owned(),
            format!("0x{text}"),
        ] {
            assert_eq!(
                bad.parse::<AgentId>().unwrap_err().code(),
                "BAD_AGENT_ID",
                "{bad}"
            );
        }
    }

    #[test]
    fn small_order_and_non_canonical_keys_are_refused() {
        // The identity point (small order) and y = p (non-canonical encoding of y = 0).
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        assert_eq!(
            AgentId::from_bytes(&identity_point),
            Err(Error::BadPublicKey)
        );
        let mut non_canonical = [0xff; 32];
        non_canonical[0] = 0xed;
        non_canonical[31] = 0x7f;
        assert_eq!(
            AgentId::from_bytes(&non_canonical),
            Err(Error::BadPublicKey)
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let identity = Identity::from_seed(&[0x42; 32]).unwrap();
        let printed = format!("{identity:?}");
        assert!(!printed.contains(&lower_hex(&[0x42; 32])));
        assert!(printed.contains(&identity.agent_id().to_string()));
    }

    #[test]
    fn batch_is_exact() {
        let ids: Vec<Identity> = (0..8u8)
            .map(|i| Identity::from_seed(&[i; 32]).unwrap())
            .collect();
        let keys: Vec<[u8; 32]> = ids.iter().map(|i| *i.agent_id().as_bytes()).collect();
        let msgs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; i as usize]).collect();
        let mut sigs: Vec<[u8; 64]> = ids.iter().zip(&msgs).map(|(i, m)| i.sign(m)).collect();
        let check = |sigs: &[[u8; 64]]| {
            verify_batch(
                &keys.iter().map(|k| &k[..]).collect::<Vec<_>>(),
                &msgs.iter().map(|m| &m[..]).collect::<Vec<_>>(),
                &sigs.iter().map(|s| &s[..]).collect::<Vec<_>>(),
            )
        };
        assert_eq!(check(&sigs), Ok(()));
        sigs[5][40] ^= 1;
        let bad = check(&sigs);
        assert_eq!(bad, Err(Error::BadSignature));
    }

    #[test]
    fn the_key_cache_changes_no_answer() {
        let ids: Vec<Identity> = (0..4u8)
            .map(|i| Identity::from_seed(&[i; 32]).unwrap())
            .collect();
        let mut keys: Vec<[u8; 32]> = ids.iter().map(|i| *i.agent_id().as_bytes()).collect();
        let msgs: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 3]).collect();
        let mut sigs: Vec<[u8; 64]> = ids.iter().zip(&msgs).map(|(i, m)| i.sign(m)).collect();
        let mut cache = KeyCache::default();
        let mut both = |keys: &[[u8; 32]], sigs: &[[u8; 64]]| {
            let k: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
            let m: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
            let s: Vec<&[u8]> = sigs.iter().map(|s| &s[..]).collect();
            let plain = verify_batch(&k, &m, &s);
            // Twice: the second time every valid key comes from the cache.
            assert_eq!(verify_batch_cached(&mut cache, &k, &m, &s), plain);
            assert_eq!(verify_batch_cached(&mut cache, &k, &m, &s), plain);
            plain
        };
        assert_eq!(both(&keys, &sigs), Ok(()));
        sigs[2][10] ^= 1;
        assert_eq!(both(&keys, &sigs), Err(Error::BadSignature));
        sigs[2][10] ^= 1;
        keys[1] = [0; 32];
        keys[1][0] = 1; // the identity point: small order
        assert_eq!(both(&keys, &sigs), Err(Error::BadPublicKey));
    }
}
