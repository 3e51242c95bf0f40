//! Room proofs: how a plain Yjs client shows which agent it is (PROTOCOL.md 8.7.1).
//!
//! A capability names its audience, and on `/ws` the relay knows the connection's agent from
//! the hello's challenge. A stock `y-websocket` provider speaks no hello: all it can send is
//! its URL. Capabilities alone cannot stand in for it, because they are not secret — every
//! `cap.present` op shows one to every reader of the topic — so a reader could otherwise copy a
//! writer's capability out of the log and write through a room.
//!
//! So a Yjs client also puts a **room proof** on the URL: its agent key's signature over
//! [`ROOM_PROOF_DOMAIN`], its key, an expiry and the topic that guards the room. It proves, like a
//! pre-signed URL, that whoever made the URL held the key, for that topic, until that time.
//! It is a bearer token until it expires (anyone who sees the URL may use it), so keep it short
//! lived and the URL on `wss://`; the relay checks it when a connection joins.
//!
//! Layout, integers big-endian (105 bytes):
//!
//! | field | size | rule |
//! |---|---|---|
//! | version | 1 | `0x01` (`UNSUPPORTED_VERSION`) |
//! | agent | 32 | the signer's public key (`BAD_PUBLIC_KEY`) |
//! | expires | 8 | first millisecond at which the proof no longer holds |
//! | signature | 64 | Ed25519 by `agent` over `ROOM_PROOF_DOMAIN ‖ agent ‖ expires ‖ topic` |
//!
//! The signed message is plain bytes, so a client can sign it with any Ed25519 signer (the JS
//! package's `identity.sign(message)` included).

use crate::codec::Reader;
use crate::error::{Error, Result};
use crate::identity::{AgentId, Identity, PUBLIC_KEY_LEN, SIGNATURE_LEN};

/// The domain-separation prefix of a room proof's signature.
pub const ROOM_PROOF_DOMAIN: &[u8] = b"ants-coord/yjs-room/v1\x00";
/// The version of room proofs this build writes and reads.
pub const ROOM_PROOF_VERSION: u8 = 1;
/// Length of an encoded room proof.
pub const ROOM_PROOF_LEN: usize = 1 + PUBLIC_KEY_LEN + 8 + SIGNATURE_LEN;

/// A decoded room proof: `agent` claims to have signed for `topic` until `expires_ms`.
///
/// Invariant: `agent` is a valid key. The signature is not checked by decoding (it covers the
/// topic, which the proof does not carry): [`RoomProof::verify`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomProof {
    agent: AgentId,
    expires_ms: u64,
    signature: [u8; SIGNATURE_LEN],
}

impl RoomProof {
    /// `identity` proves it holds its key, for `topic`, until `expires_ms` (exclusive).
    pub fn sign(identity: &Identity, topic: &str, expires_ms: u64) -> Self {
        let agent = identity.agent_id();
        let signature = identity.sign(&signed_message(&agent, expires_ms, topic));
        RoomProof {
            agent,
            expires_ms,
            signature,
        }
    }

    /// The agent that signed.
    pub fn agent(&self) -> &AgentId {
        &self.agent
    }

    /// The first millisecond at which the proof no longer holds.
    pub fn expires_ms(&self) -> u64 {
        self.expires_ms
    }

    /// The [`ROOM_PROOF_LEN`] bytes of the proof.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ROOM_PROOF_LEN);
        out.push(ROOM_PROOF_VERSION);
        out.extend_from_slice(self.agent.as_bytes());
        out.extend_from_slice(&self.expires_ms.to_be_bytes());
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes a proof's bytes. Errors: `LIMIT_EXCEEDED` (longer than [`ROOM_PROOF_LEN`]),
    /// `MALFORMED` (shorter), `UNSUPPORTED_VERSION`, `BAD_PUBLIC_KEY`.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > ROOM_PROOF_LEN {
            return Err(Error::LimitExceeded {
                what: "room proof length",
                limit: ROOM_PROOF_LEN,
                got: bytes.len(),
            });
        }
        let mut r = Reader::new("room proof", bytes);
        let version = r.u8("version")?;
        if version != ROOM_PROOF_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "room proof",
                version,
            });
        }
        let agent = AgentId::from_bytes(&r.array::<PUBLIC_KEY_LEN>("agent")?)
            .map_err(|_| Error::BadPublicKey)?;
        let expires_ms = r.u64("expires")?;
        let signature = r.array::<SIGNATURE_LEN>("signature")?;
        r.finish()?;
        Ok(RoomProof {
            agent,
            expires_ms,
            signature,
        })
    }

    /// The agent the proof authenticates for `topic` at `now_ms`. Errors: `BAD_SIGNATURE` (not
    /// signed by its agent for this topic and expiry), `NOT_AUTHENTICATED` (expired).
    pub fn verify(&self, topic: &str, now_ms: u64) -> Result<&AgentId> {
        let message = signed_message(&self.agent, self.expires_ms, topic);
        self.agent.verify(&message, &self.signature)?;
        if now_ms >= self.expires_ms {
            return Err(Error::NotAuthenticated);
        }
        Ok(&self.agent)
    }
}

/// `ROOM_PROOF_DOMAIN ‖ agent ‖ expires_ms ‖ topic`: what the agent signs.
pub fn signed_message(agent: &AgentId, expires_ms: u64, topic: &str) -> Vec<u8> {
    let mut message =
        Vec::with_capacity(ROOM_PROOF_DOMAIN.len() + PUBLIC_KEY_LEN + 8 + topic.len());
    message.extend_from_slice(ROOM_PROOF_DOMAIN);
    message.extend_from_slice(agent.as_bytes());
    message.extend_from_slice(&expires_ms.to_be_bytes());
    message.extend_from_slice(topic.as_bytes());
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_holds_for_its_topic_until_it_expires() {
        let alice = Identity::from_seed(&[1; 32]).unwrap();
        let topic = format!("@{}/notes", alice.agent_id());
        let proof = RoomProof::sign(&alice, &topic, 1_000);
        let bytes = proof.encode();
        assert_eq!(bytes.len(), ROOM_PROOF_LEN);
        let decoded = RoomProof::decode(&bytes).unwrap();
        assert_eq!(decoded, proof);
        assert_eq!(decoded.verify(&topic, 999).unwrap(), &alice.agent_id());
        let code = |r: Result<&AgentId>| r.unwrap_err().code();
        assert_eq!(code(decoded.verify(&topic, 1_000)), "NOT_AUTHENTICATED");
        assert_eq!(code(decoded.verify("other", 0)), "BAD_SIGNATURE");
        // Moving the expiry breaks the signature.
        let mut later = bytes.clone();
        later[1 + 32 + 7] ^= 1;
        let later = RoomProof::decode(&later).unwrap();
        assert_eq!(code(later.verify(&topic, 0)), "BAD_SIGNATURE");
    }

    #[test]
    fn decoding_checks_shape() {
        let alice = Identity::from_seed(&[1; 32]).unwrap();
        let bytes = RoomProof::sign(&alice, "t", 1).encode();
        let code = |b: &[u8]| RoomProof::decode(b).unwrap_err().code();
        assert_eq!(code(&bytes[..ROOM_PROOF_LEN - 1]), "MALFORMED");
        assert_eq!(code(&[bytes.clone(), vec![0]].concat()), "LIMIT_EXCEEDED");
        let mut version = bytes.clone();
        version[0] = 2;
        assert_eq!(code(&version), "UNSUPPORTED_VERSION");
        let mut key = bytes;
        key[1..33].copy_from_slice(&[0; 32]);
        assert_eq!(code(&key), "BAD_PUBLIC_KEY");
    }
}
