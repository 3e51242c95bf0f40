//! An owned topic's policy, chosen by its owner with a signed op in the topic itself
//! (PROTOCOL.md 10.10): today one field, who may read.
//!
//! Owned topics are private until their owner says otherwise. A `topic.policy` op, body
//! `0x01 ‖ u8 read` ([`TopicPolicy`]), signed for the owner, sets the topic's [`ReadRule`] from
//! its entry on: `public` lets every agent read the topic's log (subscribe, replay, proofs and
//! checkpoints, with no hello) and join the Yjs rooms it guards; `private` takes that back.
//! Writing is never changed by a policy: it stays the owner's and its capability holders'
//! (10.8). Being an op of the topic, the rule takes effect at one seq for the relay and every
//! replica, as a revocation does (10.7), and the replica keeps it in its authority state.
//!
//! Room for later fields: a later policy is a new body version; a version-1 body is exactly two
//! bytes, and a read value other than `0` and `1` is refused, so no version-1 reader ever
//! silently misreads one.

use serde::Serialize;

use crate::codec::Reader;
use crate::error::{Error, Result};
use crate::op::OpDraft;

/// The version of [`TopicPolicy`] bodies this build writes and reads.
pub const TOPIC_POLICY_VERSION: u8 = 1;

/// Who may read an owned topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadRule {
    /// The owner and holders of its `read` capabilities (10.5): every owned topic until its
    /// owner makes it public.
    #[default]
    Private,
    /// Every agent, with or without a hello.
    Public,
}

impl ReadRule {
    /// Its byte in a policy body and in a replica snapshot: `0` private, `1` public.
    pub fn to_byte(self) -> u8 {
        match self {
            ReadRule::Private => 0,
            ReadRule::Public => 1,
        }
    }

    /// The rule of byte `byte`; `None` for any other value.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(ReadRule::Private),
            1 => Some(ReadRule::Public),
            _ => None,
        }
    }

    /// Its name: `"private"` or `"public"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadRule::Private => "private",
            ReadRule::Public => "public",
        }
    }
}

impl core::str::FromStr for ReadRule {
    type Err = Error;

    /// `"private"` or `"public"`; `BAD_INPUT` otherwise.
    fn from_str(name: &str) -> Result<Self> {
        match name {
            "private" => Ok(ReadRule::Private),
            "public" => Ok(ReadRule::Public),
            other => Err(Error::BadInput(format!(
                "a read rule is \"private\" or \"public\", not {other:?}"
            ))),
        }
    }
}

/// The body of a `topic.policy` op: `0x01 ‖ u8 read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicPolicy {
    /// Who may read the topic from the policy's entry on.
    pub read: ReadRule,
}

impl TopicPolicy {
    /// The canonical body bytes.
    pub fn encode(&self) -> Vec<u8> {
        vec![TOPIC_POLICY_VERSION, self.read.to_byte()]
    }

    /// Decodes a body: `MALFORMED` when cut short or for an unknown read value,
    /// `UNSUPPORTED_VERSION`, `TRAILING_BYTES` (a replica rejects each `MALFORMED_BODY`).
    pub fn decode(body: &[u8]) -> Result<Self> {
        let mut r = Reader::new("topic policy", body);
        let version = r.u8("version")?;
        if version != TOPIC_POLICY_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "topic policy",
                version,
            });
        }
        let byte = r.u8("read")?;
        let read = ReadRule::from_byte(byte).ok_or_else(|| {
            Error::malformed("topic policy", format!("read rule {byte} is not 0 or 1"))
        })?;
        r.finish()?;
        Ok(TopicPolicy { read })
    }

    /// An unsigned op draft (kind `topic.policy`) for `topic`; counter, time and deps are the
    /// caller's. It counts only signed for the topic's owner.
    pub fn draft(&self, topic: &str) -> OpDraft {
        OpDraft {
            topic: topic.to_owned(),
            kind: super::authority::kind::POLICY.to_owned(),
            body: self.encode(),
            ..OpDraft::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_two_bytes_and_nothing_else_decodes() {
        for read in [ReadRule::Private, ReadRule::Public] {
            let body = TopicPolicy { read }.encode();
            assert_eq!(body, [1, read.to_byte()]);
            assert_eq!(TopicPolicy::decode(&body).unwrap().read, read);
            assert_eq!(read.as_str().parse::<ReadRule>().unwrap(), read);
        }
        let code = |body: &[u8]| TopicPolicy::decode(body).unwrap_err().code();
        assert_eq!(code(&[]), "MALFORMED");
        assert_eq!(code(&[1]), "MALFORMED");
        assert_eq!(code(&[2, 1]), "UNSUPPORTED_VERSION");
        assert_eq!(code(&[1, 2]), "MALFORMED");
        assert_eq!(code(&[1, 1, 0]), "TRAILING_BYTES");
        assert_eq!("open".parse::<ReadRule>().unwrap_err().code(), "BAD_INPUT");
    }
}
