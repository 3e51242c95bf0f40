//! Signed operations: the envelope every coordination message travels in.
//!
//! An op is signed by its author and has exactly one canonical byte string (PROTOCOL.md,
//! "Signed operations"). Decoding refuses every other spelling, so the op id — the SHA-256 of the
//! signed bytes — names one op and nothing else. The signature covers [`OP_DOMAIN`] followed by
//! every byte of the op before the signature.
//!
//! Layout (version 1), all integers big-endian:
//!
//! | field | size | rule |
//! |---|---|---|
//! | version | 1 | `0x01` |
//! | author | 32 | a valid agent public key |
//! | topic length, topic | 1 + T | 1..=[`MAX_TOPIC_LEN`] bytes of UTF-8, no control characters |
//! | kind length, kind | 1 + K | 1..=[`MAX_KIND_LEN`] bytes of `[a-z0-9._-]`, starting with a letter |
//! | counter | 8 | the author's own counter in this topic |
//! | time | 8 | the author's claimed time, ms since the Unix epoch |
//! | deps count, deps | 1 + 32·D | at most [`MAX_DEPS`] op ids, strictly ascending |
//! | body length, body | 4 + B | at most [`MAX_BODY_LEN`] bytes, meaning set by the kind |
//! | signature | 64 | Ed25519 over `OP_DOMAIN ‖ everything above` |

use core::fmt;
use core::str::FromStr;

use sha2::{Digest, Sha256};

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::identity::{decode_lower_hex, lower_hex, AgentId, Identity, KeyCache, SIGNATURE_LEN};

/// The protocol version of ops this build writes and reads.
pub const OP_VERSION: u8 = 1;
/// Domain-separation prefix of every op signature.
pub const OP_DOMAIN: &[u8] = b"ants-coord/op/v1\x00";
/// Longest topic name, in bytes of UTF-8.
pub const MAX_TOPIC_LEN: usize = 128;
/// Longest op kind, in bytes.
pub const MAX_KIND_LEN: usize = 64;
/// Most op ids one op may list in `deps`.
pub const MAX_DEPS: usize = 16;
/// Largest op body, in bytes (256 KiB).
pub const MAX_BODY_LEN: usize = 256 * 1024;
/// Largest encoded op, in bytes: every field at its limit.
pub const MAX_OP_LEN: usize = 1
    + 32
    + 1
    + MAX_TOPIC_LEN
    + 1
    + MAX_KIND_LEN
    + 8
    + 8
    + 1
    + 32 * MAX_DEPS
    + 4
    + MAX_BODY_LEN
    + 64;

/// The id of an op: SHA-256 of its canonical signed bytes. Text form: 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub [u8; 32]);

impl OpId {
    /// The id of the op whose canonical bytes are `bytes` (no validation).
    pub fn of_bytes(bytes: &[u8]) -> Self {
        OpId(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&lower_hex(&self.0))
    }
}

impl fmt::Debug for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpId({self})")
    }
}

impl FromStr for OpId {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        let bytes = decode_lower_hex(text, 32)
            .ok_or_else(|| Error::BadInput("an op id is 64 lowercase hex characters".into()))?;
        let mut id = [0u8; 32];
        id.copy_from_slice(&bytes);
        Ok(OpId(id))
    }
}

/// What an author wants to say, before it is signed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpDraft {
    /// The topic (the log) the op is published to.
    pub topic: String,
    /// What kind of op this is; decides how `body` is read (e.g. `post`, `claim`, `doc.update`).
    pub kind: String,
    /// The author's own counter in this topic: the relay refuses to sequence an author's ops out of
    /// counter order, and a repeated counter is a retry of the same op.
    pub counter: u64,
    /// The author's claimed time (ms since the Unix epoch). Informative only: replicas use the
    /// relay's time.
    pub time_ms: u64,
    /// Ids of ops the author has seen and that must be sequenced before this one.
    pub deps: Vec<OpId>,
    /// The kind-specific payload.
    pub body: Vec<u8>,
}

/// A signed operation whose signature and encoding have been checked.
///
/// Invariant: `bytes` is the one canonical encoding of the fields, the signature verifies, and
/// `id` is the SHA-256 of `bytes`. Only [`SignedOp::sign`] and [`SignedOp::decode`] build one.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedOp {
    author: AgentId,
    draft: OpDraft,
    signature: [u8; SIGNATURE_LEN],
    bytes: Vec<u8>,
    id: OpId,
}

impl SignedOp {
    /// Signs `draft` as `identity`. Deps are sorted and de-duplicated (their canonical order).
    ///
    /// Errors: `BAD_TOPIC`, `BAD_KIND`, `LIMIT_EXCEEDED` when a field breaks its rule.
    pub fn sign(identity: &Identity, mut draft: OpDraft) -> Result<Self> {
        draft.deps.sort_unstable();
        draft.deps.dedup();
        let author = identity.agent_id();
        let mut bytes = encode_unsigned(&author, &draft)?;
        let signature = identity.sign_in_domain(OP_DOMAIN, &bytes);
        bytes.put(&signature);
        let id = OpId::of_bytes(&bytes);
        Ok(SignedOp {
            author,
            draft,
            signature,
            bytes,
            id,
        })
    }

    /// Decodes and verifies canonical op bytes.
    ///
    /// Errors: `MALFORMED` (truncated or invalid field), `TRAILING_BYTES`, `UNSUPPORTED_VERSION`,
    /// `BAD_TOPIC`, `BAD_KIND`, `LIMIT_EXCEEDED`, `NON_CANONICAL` (unsorted or repeated deps),
    /// `BAD_PUBLIC_KEY`, and `BAD_SIGNATURE`. With several defects the first in PROTOCOL.md
    /// section 3's check order is reported: the op's size; then the fields as they are read
    /// (version, author, lengths and limits, deps order); then trailing bytes; then the topic's
    /// and the kind's rules; then the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let op = Self::decode_unverified(bytes)?;
        op.author.verify(&op.signed_message(), &op.signature)?;
        Ok(op)
    }

    /// Decodes canonical op bytes without checking the signature, for callers that verify many
    /// ops at once with [`verify_ops`]. Never hand an unverified op to a replica.
    pub fn decode_unverified(bytes: &[u8]) -> Result<Self> {
        Self::decode_unverified_inner(bytes, |author| AgentId::from_bytes(&author))
    }

    /// [`SignedOp::decode_unverified`] for an op expected from `known`: when the author bytes
    /// are `known`'s, the author is not validated as a curve point again (a `AgentId` is valid
    /// by construction), which saves a point decompression per op on a connection whose agent
    /// is authenticated. Any other author is validated as usual.
    pub fn decode_unverified_from(bytes: &[u8], known: &AgentId) -> Result<Self> {
        Self::decode_unverified_inner(bytes, |author| {
            if known.as_bytes() == &author {
                Ok(*known)
            } else {
                AgentId::from_bytes(&author)
            }
        })
    }

    /// [`SignedOp::decode_unverified`] validating the author through `keys`, which remembers
    /// the agents already validated (same answers, no point decompression for a known author).
    pub fn decode_unverified_cached(bytes: &[u8], keys: &mut KeyCache) -> Result<Self> {
        Self::decode_unverified_inner(bytes, |author| keys.agent(&author))
    }

    /// Decodes, validating the author bytes with `author`.
    fn decode_unverified_inner(
        bytes: &[u8],
        author: impl FnOnce([u8; 32]) -> Result<AgentId>,
    ) -> Result<Self> {
        if bytes.len() > MAX_OP_LEN {
            return Err(Error::LimitExceeded {
                what: "op size",
                limit: MAX_OP_LEN,
                got: bytes.len(),
            });
        }
        let mut r = Reader::new("op", bytes);
        let version = r.u8("version")?;
        if version != OP_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "op",
                version,
            });
        }
        let author_bytes = r.array::<32>("author")?;
        let author = author(author_bytes)?;
        // The topic and kind are only read here; their rules are checked once the whole op has
        // been read (PROTOCOL.md section 3, check order).
        let topic_len = r.u8("topic length")? as usize;
        let topic = r.take(topic_len, "topic")?;
        let kind_len = r.u8("kind length")? as usize;
        let kind = r.take(kind_len, "kind")?;
        let counter = r.u64("counter")?;
        let time_ms = r.u64("time")?;
        let dep_count = r.u8("deps count")? as usize;
        check_limit("deps count", MAX_DEPS, dep_count)?;
        let mut deps = Vec::with_capacity(dep_count);
        for _ in 0..dep_count {
            deps.push(OpId(r.array("dep")?));
        }
        if deps.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(Error::NonCanonical {
                what: "op",
                reason: "deps must be strictly ascending".into(),
            });
        }
        let body_len = r.u32("body length")? as usize;
        check_limit("body length", MAX_BODY_LEN, body_len)?;
        let body = r.take(body_len, "body")?.to_vec();
        let signature = r.array::<SIGNATURE_LEN>("signature")?;
        r.finish()?;
        let topic = std::str::from_utf8(topic).map_err(|_| Error::BadTopic("not UTF-8".into()))?;
        validate_topic(topic)?;
        let kind = std::str::from_utf8(kind).map_err(|_| Error::BadKind("not ASCII".into()))?;
        validate_kind(kind)?;
        let draft = OpDraft {
            topic: topic.to_owned(),
            kind: kind.to_owned(),
            counter,
            time_ms,
            deps,
            body,
        };
        Ok(SignedOp {
            author,
            draft,
            signature,
            bytes: bytes.to_vec(),
            id: OpId::of_bytes(bytes),
        })
    }

    /// The bytes the signature covers: [`OP_DOMAIN`] followed by the op without its signature.
    pub fn signed_message(&self) -> Vec<u8> {
        let unsigned = &self.bytes[..self.bytes.len() - SIGNATURE_LEN];
        [OP_DOMAIN, unsigned].concat()
    }

    /// The author.
    pub fn author(&self) -> &AgentId {
        &self.author
    }
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.draft.topic
    }
    /// The kind.
    pub fn kind(&self) -> &str {
        &self.draft.kind
    }
    /// The author's counter.
    pub fn counter(&self) -> u64 {
        self.draft.counter
    }
    /// The author's claimed time, ms since the Unix epoch.
    pub fn time_ms(&self) -> u64 {
        self.draft.time_ms
    }
    /// The ops this one depends on, ascending.
    pub fn deps(&self) -> &[OpId] {
        &self.draft.deps
    }
    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.draft.body
    }
    /// The 64-byte signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }
    /// The canonical signed bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The op id.
    pub fn id(&self) -> OpId {
        self.id
    }
}

impl fmt::Debug for SignedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedOp")
            .field("id", &self.id)
            .field("author", &self.author)
            .field("topic", &self.draft.topic)
            .field("kind", &self.draft.kind)
            .field("counter", &self.draft.counter)
            .field("body_len", &self.draft.body.len())
            .finish_non_exhaustive()
    }
}

/// Verifies the signatures of many decoded ops at once (batch equation, exact answer). Takes
/// any iterator of references (`&[SignedOp]`, or ops borrowed from where they are held).
pub fn verify_ops<'a>(ops: impl IntoIterator<Item = &'a SignedOp>) -> Result<()> {
    let ops: Vec<&SignedOp> = ops.into_iter().collect();
    let messages: Vec<Vec<u8>> = ops.iter().map(|op| op.signed_message()).collect();
    let keys: Vec<&[u8]> = ops.iter().map(|op| &op.author.as_bytes()[..]).collect();
    let msgs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let sigs: Vec<&[u8]> = ops.iter().map(|op| &op.signature[..]).collect();
    crate::identity::verify_batch(&keys, &msgs, &sigs)
}

/// [`verify_ops`] with the authors' decompressed keys kept in `cache` (the relay's verifier
/// sees the same agents again and again). Same answer as [`verify_ops`].
pub fn verify_ops_cached<'a>(
    cache: &mut crate::identity::KeyCache,
    ops: impl IntoIterator<Item = &'a SignedOp>,
) -> Result<()> {
    let ops: Vec<&SignedOp> = ops.into_iter().collect();
    let messages: Vec<Vec<u8>> = ops.iter().map(|op| op.signed_message()).collect();
    let keys: Vec<&[u8]> = ops.iter().map(|op| &op.author.as_bytes()[..]).collect();
    let msgs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let sigs: Vec<&[u8]> = ops.iter().map(|op| &op.signature[..]).collect();
    crate::identity::verify_batch_cached(cache, &keys, &msgs, &sigs)
}

fn check_limit(what: &'static str, limit: usize, got: usize) -> Result<()> {
    if got > limit {
        return Err(Error::LimitExceeded { what, limit, got });
    }
    Ok(())
}

/// Checks a topic name: 1..=128 bytes of UTF-8 without control characters.
pub fn validate_topic(topic: &str) -> Result<()> {
    if topic.is_empty() {
        return Err(Error::BadTopic("empty".into()));
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(Error::BadTopic(format!(
            "{} bytes, over {MAX_TOPIC_LEN}",
            topic.len()
        )));
    }
    if topic.chars().any(char::is_control) {
        return Err(Error::BadTopic("contains a control character".into()));
    }
    Ok(())
}

/// Checks an op kind: 1..=64 bytes of `[a-z0-9._-]`, starting with a lowercase letter.
pub fn validate_kind(kind: &str) -> Result<()> {
    let ok_char =
        |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-');
    match kind.as_bytes() {
        [] => Err(Error::BadKind("empty".into())),
        bytes if bytes.len() > MAX_KIND_LEN => Err(Error::BadKind(format!(
            "{} bytes, over {MAX_KIND_LEN}",
            bytes.len()
        ))),
        [first, ..] if !first.is_ascii_lowercase() => {
            Err(Error::BadKind("must start with a-z".into()))
        }
        bytes if !bytes.iter().all(|&c| ok_char(c)) => {
            Err(Error::BadKind("only a-z 0-9 . _ - allowed".into()))
        }
        _ => Ok(()),
    }
}

fn validate(draft: &OpDraft) -> Result<()> {
    validate_topic(&draft.topic)?;
    validate_kind(&draft.kind)?;
    check_limit("deps count", MAX_DEPS, draft.deps.len())?;
    check_limit("body length", MAX_BODY_LEN, draft.body.len())
}

fn encode_unsigned(author: &AgentId, draft: &OpDraft) -> Result<Vec<u8>> {
    validate(draft)?;
    let mut out = Vec::with_capacity(128 + draft.body.len() + 32 * draft.deps.len());
    out.put_u8(OP_VERSION);
    out.put(author.as_bytes());
    out.put_u8(draft.topic.len() as u8);
    out.put(draft.topic.as_bytes());
    out.put_u8(draft.kind.len() as u8);
    out.put(draft.kind.as_bytes());
    out.put_u64(draft.counter);
    out.put_u64(draft.time_ms);
    out.put_u8(draft.deps.len() as u8);
    for dep in &draft.deps {
        out.put(&dep.0);
    }
    out.put_u32(draft.body.len() as u32);
    out.put(&draft.body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> OpDraft {
        OpDraft {
            topic: "tasks".into(),
            kind: "claim".into(),
            counter: 3,
            time_ms: 1_700_000_000_000,
            deps: vec![OpId([9; 32]), OpId([1; 32])],
            body: b"task-17".to_vec(),
        }
    }

    #[test]
    fn sign_then_decode_round_trips() {
        let identity = Identity::from_seed(&[1; 32]).unwrap();
        let op = SignedOp::sign(&identity, draft()).unwrap();
        assert_eq!(op.deps(), &[OpId([1; 32]), OpId([9; 32])]);
        let decoded = SignedOp::decode(op.as_bytes()).unwrap();
        assert_eq!(decoded, op);
        assert_eq!(decoded.id(), OpId::of_bytes(op.as_bytes()));
        let other = Identity::from_seed(&[2; 32]).unwrap().agent_id();
        for known in [identity.agent_id(), other] {
            let from = SignedOp::decode_unverified_from(op.as_bytes(), &known).unwrap();
            assert_eq!(from, op);
        }
        // An author that is no valid key (the small-order identity point) is refused whatever
        // is known.
        let mut bad = op.as_bytes().to_vec();
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        bad[1..33].copy_from_slice(&identity_point);
        let error = SignedOp::decode_unverified_from(&bad, &other).unwrap_err();
        assert_eq!(
            error.code(),
            SignedOp::decode_unverified(&bad).unwrap_err().code()
        );
        // Through a key cache: the same answers, the first time and once the author is known,
        // and a bad author is refused however often it comes.
        let mut keys = KeyCache::default();
        for _ in 0..2 {
            assert_eq!(
                SignedOp::decode_unverified_cached(op.as_bytes(), &mut keys).unwrap(),
                op
            );
            assert_eq!(
                SignedOp::decode_unverified_cached(&bad, &mut keys)
                    .unwrap_err()
                    .code(),
                error.code()
            );
        }
    }

    #[test]
    fn each_defect_has_its_code() {
        let identity = Identity::from_seed(&[1; 32]).unwrap();
        let bytes = SignedOp::sign(&identity, draft())
            .unwrap()
            .as_bytes()
            .to_vec();
        let code = |b: &[u8]| SignedOp::decode(b).unwrap_err().code();
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(code(&trailing), "TRAILING_BYTES");
        assert_eq!(code(&bytes[..bytes.len() - 1]), "MALFORMED");
        let mut version = bytes.clone();
        version[0] = 2;
        assert_eq!(code(&version), "UNSUPPORTED_VERSION");
        let mut sig = bytes.clone();
        *sig.last_mut().unwrap() ^= 1;
        assert_eq!(code(&sig), "BAD_SIGNATURE");
        let mut kind = bytes;
        kind[1 + 32 + 1 + 5 + 1] = b'C';
        assert_eq!(code(&kind), "BAD_KIND");
    }

    #[test]
    fn field_rules_are_enforced_when_signing() {
        let identity = Identity::from_seed(&[1; 32]).unwrap();
        let with = |f: fn(&mut OpDraft)| {
            let mut d = draft();
            f(&mut d);
            SignedOp::sign(&identity, d).unwrap_err().code()
        };
        assert_eq!(with(|d| d.topic.clear()), "BAD_TOPIC");
        assert_eq!(with(|d| d.topic = "a\nb".into()), "BAD_TOPIC");
        assert_eq!(with(|d| d.topic = "t".repeat(129)), "BAD_TOPIC");
        assert_eq!(with(|d| d.kind = "9lives".into()), "BAD_KIND");
        assert_eq!(
            with(|d| d.body = vec![0; MAX_BODY_LEN + 1]),
            "LIMIT_EXCEEDED"
        );
        assert_eq!(
            with(|d| d.deps = (0..17u8).map(|i| OpId([i; 32])).collect()),
            "LIMIT_EXCEEDED"
        );
    }
}
