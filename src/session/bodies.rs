//! The bodies a [`Session`](super::Session) refuses to publish: an op of a kind that every
//! replica (or every document replica) reads, with a body those replicas cannot read.
//!
//! Such an op is not refused by the relay, which numbers any well-signed op: it is sequenced and
//! then rejected by every replica that applies it (`MALFORMED_BODY`), or dropped by every
//! `SignedDoc`, long after the call that published it returned. The typical cause is a raw body
//! under a replica kind, `publish("tasks", "post", "hello")` where `ReplicaOp::Post` (in JS
//! `ReplicaOp.post({ text })`) was meant. Refusing it before it is signed turns a silent,
//! permanent entry into an error at the call (issue 25). An op signed elsewhere and published
//! with [`Session::publish_signed`](super::Session::publish_signed) is checked the same way;
//! [`SignedOp::sign`](crate::op::SignedOp::sign) itself stays unchecked, the primitive that test
//! vectors use to build malformed ops on purpose.

use crate::capability::authority::{self, Presentation, Revocation};
use crate::capability::TopicPolicy;
use crate::error::{Error, Result};
use crate::replica::ReplicaOp;

/// Checks that an op of `kind` may carry `body`: a replica kind ([`ReplicaOp::is_known_kind`])
/// needs a body [`ReplicaOp::decode`] reads, and `doc.update` (with the `doc` feature) a
/// version byte and a Yjs v1 update that decodes, `cap.present`, `cap.revoke` and
/// `topic.policy` a body that decodes as a [`Presentation`], a [`Revocation`] (a capability
/// whose signatures verify) or a [`TopicPolicy`].
/// Any other kind takes any body.
///
/// Errors: `BAD_INPUT`, naming the kind and what is wrong with the body.
pub fn check_publish_body(kind: &str, body: &[u8]) -> Result<()> {
    if ReplicaOp::is_known_kind(kind) {
        return ReplicaOp::decode(kind, body).map(drop).map_err(|e| {
            Error::BadInput(format!(
                "{kind} is a replica op kind: its body must be an encoded ReplicaOp (in JS \
                 ReplicaOp.encode or a ReplicaOp builder), not raw bytes ({}: {e}); publish \
                 other data under a kind of your own",
                e.code()
            ))
        });
    }
    let authority = match kind {
        authority::kind::PRESENT => Some(Presentation::decode(body).map(drop)),
        authority::kind::REVOKE => Some(Revocation::decode(body).map(drop)),
        authority::kind::POLICY => Some(TopicPolicy::decode(body).map(drop)),
        _ => None,
    };
    if let Some(decoded) = authority {
        return decoded.map_err(|e| {
            Error::BadInput(format!(
                "{kind} is an owned topic's authority op: its body must be Capability.presentation, \
                 Capability.revocation or Capability.topicPolicy bytes (PROTOCOL.md 10.7, 10.8, \
                 10.10) ({}: {e})",
                e.code()
            ))
        });
    }
    #[cfg(feature = "doc")]
    if kind == crate::doc::UPDATE_KIND {
        return crate::doc::decode_update_body(body).map(drop).map_err(|e| {
            Error::BadInput(format!(
                "{kind} is a document update: its body must be the version byte 1 and a Yjs v1 \
                 update (in JS signDocUpdate, or 1 followed by Doc.encodeUpdate's bytes) ({}: {e})",
                e.code()
            ))
        });
    }
    Ok(())
}
