//! Sequenced entries: what a relay makes of an accepted op.
//!
//! The relay wraps each accepted [`SignedOp`] with the topic's next sequence number (0, 1, 2…
//! without gaps) and its own timestamp. The entry's canonical bytes are the leaf data of the
//! topic's Merkle log (PROTOCOL.md, "Entries"); replicas fold entries in sequence order and use
//! only the entry's relay time as their clock.
//!
//! Layout (version 1), big-endian: `version (1) = 0x01 ‖ seq (8) ‖ relay_time_ms (8) ‖
//! op length (4) ‖ op bytes`. The topic is the op's topic.

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::identity::KeyCache;
use crate::op::{SignedOp, MAX_OP_LEN};

/// The protocol version of entries this build writes and reads.
pub const ENTRY_VERSION: u8 = 1;

/// One op as sequenced by a relay.
///
/// Invariant: `bytes` is the canonical encoding of `(seq, relay_time_ms, op)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    seq: u64,
    relay_time_ms: u64,
    op: SignedOp,
    bytes: Vec<u8>,
}

impl Entry {
    /// Wraps a verified op as entry `seq` of its topic, stamped `relay_time_ms`.
    pub fn new(seq: u64, relay_time_ms: u64, op: SignedOp) -> Self {
        let mut bytes = Vec::with_capacity(21 + op.as_bytes().len());
        bytes.put_u8(ENTRY_VERSION);
        bytes.put_u64(seq);
        bytes.put_u64(relay_time_ms);
        bytes.put_u32(op.as_bytes().len() as u32);
        bytes.put(op.as_bytes());
        Entry {
            seq,
            relay_time_ms,
            op,
            bytes,
        }
    }

    /// Decodes an entry and verifies its op's signature.
    ///
    /// Errors, in this order when several apply (PROTOCOL.md section 4): `MALFORMED`,
    /// `UNSUPPORTED_VERSION`, `LIMIT_EXCEEDED` (op length), `TRAILING_BYTES`, then the op's
    /// codes in section 3's order, `BAD_SIGNATURE` last.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        Self::decode_with(bytes, SignedOp::decode)
    }

    /// Decodes an entry without checking the op's signature (for batch verification).
    pub fn decode_unverified(bytes: &[u8]) -> Result<Self> {
        Self::decode_with(bytes, SignedOp::decode_unverified)
    }

    /// [`Entry::decode_unverified`] validating the op's author through `keys`: an author seen
    /// before costs no point decompression (a client decodes every entry it receives).
    pub fn decode_unverified_cached(bytes: &[u8], keys: &mut KeyCache) -> Result<Self> {
        Self::decode_with(bytes, |op| SignedOp::decode_unverified_cached(op, keys))
    }

    fn decode_with(
        bytes: &[u8],
        decode_op: impl FnOnce(&[u8]) -> Result<SignedOp>,
    ) -> Result<Self> {
        let mut r = Reader::new("entry", bytes);
        let version = r.u8("version")?;
        if version != ENTRY_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "entry",
                version,
            });
        }
        let seq = r.u64("seq")?;
        let relay_time_ms = r.u64("relay time")?;
        let op_len = r.u32("op length")? as usize;
        if op_len > MAX_OP_LEN {
            return Err(Error::LimitExceeded {
                what: "op size",
                limit: MAX_OP_LEN,
                got: op_len,
            });
        }
        let op = r.take(op_len, "op")?;
        // The entry's own structure first, then the op inside it (PROTOCOL.md section 4).
        r.finish()?;
        let op = decode_op(op)?;
        Ok(Entry {
            seq,
            relay_time_ms,
            op,
            bytes: bytes.to_vec(),
        })
    }

    /// The sequence number in the topic (0-based, no gaps).
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// The relay's timestamp, ms since the Unix epoch: the only clock replicas use.
    pub fn relay_time_ms(&self) -> u64 {
        self.relay_time_ms
    }
    /// The sequenced op.
    pub fn op(&self) -> &SignedOp {
        &self.op
    }
    /// The topic (the op's).
    pub fn topic(&self) -> &str {
        self.op.topic()
    }
    /// The canonical bytes: the Merkle leaf data.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Identity, OpDraft};

    #[test]
    fn round_trips_and_refuses_defects() {
        let identity = Identity::from_seed(&[3; 32]).unwrap();
        let op = SignedOp::sign(
            &identity,
            OpDraft {
                topic: "t".into(),
                kind: "post".into(),
                ..OpDraft::default()
            },
        )
        .unwrap();
        let entry = Entry::new(41, 1_700_000_000_123, op);
        assert_eq!(Entry::decode(entry.as_bytes()).unwrap(), entry);
        let mut trailing = entry.as_bytes().to_vec();
        trailing.push(1);
        assert_eq!(
            Entry::decode(&trailing).unwrap_err().code(),
            "TRAILING_BYTES"
        );
        let mut forged = entry.as_bytes().to_vec();
        *forged.last_mut().unwrap() ^= 1;
        assert_eq!(Entry::decode(&forged).unwrap_err().code(), "BAD_SIGNATURE");
        assert!(Entry::decode_unverified(&forged).is_ok());
    }
}
