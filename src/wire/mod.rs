//! The relay wire protocol: canonical binary frames exchanged over a WebSocket (PROTOCOL.md
//! section 8), and the sans-IO connection state both ends share.
//!
//! A frame is one binary WebSocket message:
//! `version (1) = 0x01 ‖ type (1) ‖ request id (4) ‖ payload`. The request id is chosen by the
//! client; every answer to a request carries the same id, so a client may pipeline requests.
//! Frames the relay sends on its own (the challenge) carry request id 0; entries carry the id of
//! the subscribe request that asked for them. Every frame has exactly one encoding: fixed-width
//! big-endian integers, length-prefixed strings, no trailing bytes, and a hard size bound
//! ([`MAX_FRAME_LEN`]).
//!
//! This module does no I/O: [`Frame::encode`] and [`Frame::decode`] are pure, and
//! [`RelayConnection`] is the relay side of one connection as a state machine (bytes in,
//! [`Action`]s out), so the socket loop in the relay only moves bytes.

mod connection;

pub use connection::{hello_message, sign_hello, Action, RelayConnection};

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::identity::{AgentId, SIGNATURE_LEN};
use crate::op::{validate_topic, OpId, MAX_OP_LEN};

/// The wire protocol version this build speaks.
pub const WIRE_VERSION: u8 = 1;
/// Domain-separation prefix of the signature that answers a relay's challenge.
pub const HELLO_DOMAIN: &[u8] = b"ants-coord/hello/v1\x00";
/// Largest frame, in bytes: an entry frame around the largest op, with room to spare.
pub const MAX_FRAME_LEN: usize = MAX_OP_LEN + 4096;
/// Longest error code in an error frame, in bytes.
pub const MAX_CODE_LEN: usize = 64;
/// Longest error message in an error frame, in bytes (longer messages are cut when encoding).
pub const MAX_MESSAGE_LEN: usize = 1024;
/// Length of the relay's challenge nonce.
pub const NONCE_LEN: usize = 32;

/// Frame type bytes. Client → relay frames are below `0x40`, relay → client frames from `0x40`.
pub mod frame_type {
    /// Answer to the challenge: agent id and signature.
    pub const HELLO: u8 = 0x01;
    /// Subscribe to a topic from a sequence number.
    pub const SUBSCRIBE: u8 = 0x02;
    /// Stop a subscription.
    pub const UNSUBSCRIBE: u8 = 0x03;
    /// Publish a signed op.
    pub const PUBLISH: u8 = 0x04;
    /// Ask for a topic's latest signed checkpoint.
    pub const GET_CHECKPOINT: u8 = 0x05;
    /// Ask for an inclusion proof.
    pub const GET_INCLUSION_PROOF: u8 = 0x06;
    /// Ask for a consistency proof.
    pub const GET_CONSISTENCY_PROOF: u8 = 0x07;
    /// The relay's challenge, sent first on every connection.
    pub const CHALLENGE: u8 = 0x40;
    /// The hello was accepted.
    pub const WELCOME: u8 = 0x41;
    /// A subscription started.
    pub const SUBSCRIBED: u8 = 0x42;
    /// A subscription ended.
    pub const UNSUBSCRIBED: u8 = 0x43;
    /// A published op is durably sequenced.
    pub const RECEIPT: u8 = 0x44;
    /// One sequenced entry of a subscribed topic.
    pub const ENTRY: u8 = 0x45;
    /// A replica event for this agent (e.g. a compensation after a lost claim).
    pub const EVENT: u8 = 0x46;
    /// A signed checkpoint.
    pub const CHECKPOINT: u8 = 0x47;
    /// An inclusion proof.
    pub const INCLUSION_PROOF: u8 = 0x48;
    /// A consistency proof.
    pub const CONSISTENCY_PROOF: u8 = 0x49;
    /// A run of consecutive entries of one subscribed topic.
    pub const ENTRIES: u8 = 0x4a;
    /// A refusal with a stable error code.
    pub const ERROR: u8 = 0x4f;

    /// Whether `kind` is an assigned relay → client type (a client never sends one).
    pub fn is_relay_to_client(kind: u8) -> bool {
        matches!(kind, CHALLENGE..=ENTRIES | ERROR)
    }
}

/// Most entries one `entries` frame may carry.
pub const MAX_ENTRIES_PER_FRAME: usize = 256;

/// What a frame says. Field order is the encoding order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `agent (32) ‖ signature (64)`: the signature is over
    /// `HELLO_DOMAIN ‖ nonce (32) ‖ relay id (32)` of the challenge being answered.
    Hello {
        /// The agent proving it holds its key.
        agent: AgentId,
        /// Ed25519 signature over [`hello_message`].
        signature: [u8; SIGNATURE_LEN],
    },
    /// `topic ‖ from_seq (8)`: replay stored entries from `from_seq`, then live ones.
    Subscribe {
        /// The topic.
        topic: String,
        /// The first sequence number wanted.
        from_seq: u64,
    },
    /// `topic`.
    Unsubscribe {
        /// The topic.
        topic: String,
    },
    /// `op length (4) ‖ op`: a signed op (PROTOCOL.md section 3).
    Publish {
        /// The canonical signed op bytes.
        op: Vec<u8>,
    },
    /// `topic`.
    GetCheckpoint {
        /// The topic.
        topic: String,
    },
    /// `topic ‖ seq (8) ‖ tree size (8)`: prove entry `seq` is in the tree of `tree_size`.
    GetInclusionProof {
        /// The topic.
        topic: String,
        /// The entry's sequence number (leaf index).
        seq: u64,
        /// The tree size the proof is against.
        tree_size: u64,
    },
    /// `topic ‖ old size (8) ‖ new size (8)`.
    GetConsistencyProof {
        /// The topic.
        topic: String,
        /// The smaller tree size.
        old_size: u64,
        /// The larger tree size.
        new_size: u64,
    },
    /// `relay id (32) ‖ nonce (32)`.
    Challenge {
        /// The relay's public key.
        relay: AgentId,
        /// Fresh random bytes for this connection.
        nonce: [u8; NONCE_LEN],
    },
    /// `agent (32)`: the hello was accepted; this connection may publish as `agent`.
    Welcome {
        /// The authenticated agent.
        agent: AgentId,
    },
    /// `topic ‖ from_seq (8) ‖ head (8)`: entries `from_seq..head` are replayed from storage,
    /// then every later entry follows live, each exactly once and in order.
    Subscribed {
        /// The topic.
        topic: String,
        /// The first sequence number that will be sent.
        from_seq: u64,
        /// The topic's size when the subscription started.
        head: u64,
    },
    /// `topic`.
    Unsubscribed {
        /// The topic.
        topic: String,
    },
    /// `seq (8) ‖ op id (32) ‖ receipt length (4) ‖ receipt`: the op is durably sequenced at
    /// `seq`; `receipt` is the relay's signed receipt (PROTOCOL.md section 5).
    Receipt {
        /// The op's sequence number in its topic.
        seq: u64,
        /// The op's id.
        op_id: OpId,
        /// The signed receipt's canonical bytes.
        receipt: Vec<u8>,
    },
    /// `entry length (4) ‖ entry`: an entry's canonical bytes (PROTOCOL.md section 4).
    Entry {
        /// The entry bytes.
        entry: Vec<u8>,
    },
    /// `count (2) ‖ { entry length (4) ‖ entry } × count`: consecutive entries of one
    /// subscription, oldest first, exactly as that many [`Body::Entry`] frames in a row would
    /// carry them. `count` is 1 to [`MAX_ENTRIES_PER_FRAME`].
    Entries {
        /// The entries' bytes.
        entries: Vec<Vec<u8>>,
    },
    /// `topic ‖ seq (8) ‖ event length (4) ‖ event`: a replica event caused by entry `seq`.
    Event {
        /// The topic.
        topic: String,
        /// The entry that caused it.
        seq: u64,
        /// The event's canonical bytes (PROTOCOL.md section 6).
        event: Vec<u8>,
    },
    /// `length (4) ‖ checkpoint`.
    Checkpoint {
        /// The signed checkpoint's canonical bytes.
        checkpoint: Vec<u8>,
    },
    /// `length (4) ‖ proof`.
    InclusionProof {
        /// The proof's canonical bytes.
        proof: Vec<u8>,
    },
    /// `length (4) ‖ proof`.
    ConsistencyProof {
        /// The proof's canonical bytes.
        proof: Vec<u8>,
    },
    /// `code length (1) ‖ code ‖ message length (2) ‖ message`: a refusal. `code` is one of the
    /// stable codes of PROTOCOL.md section 9 (ASCII `A-Z` and `_`); the message is for people.
    Error {
        /// The stable error code.
        code: String,
        /// A human-readable explanation.
        message: String,
    },
}

/// One frame: a request id and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Correlates answers with requests (0 for frames nobody asked for).
    pub request_id: u32,
    /// What the frame says.
    pub body: Body,
}

impl Frame {
    /// A frame answering request `request_id`.
    pub fn new(request_id: u32, body: Body) -> Self {
        Frame { request_id, body }
    }

    /// The error frame for `error` answering request `request_id`.
    pub fn error(request_id: u32, error: &Error) -> Self {
        let mut message = error.to_string();
        truncate_utf8(&mut message, MAX_MESSAGE_LEN);
        Frame::new(
            request_id,
            Body::Error {
                code: error.code().to_owned(),
                message,
            },
        )
    }

    /// The frame's type byte.
    pub fn type_byte(&self) -> u8 {
        use frame_type::*;
        match &self.body {
            Body::Hello { .. } => HELLO,
            Body::Subscribe { .. } => SUBSCRIBE,
            Body::Unsubscribe { .. } => UNSUBSCRIBE,
            Body::Publish { .. } => PUBLISH,
            Body::GetCheckpoint { .. } => GET_CHECKPOINT,
            Body::GetInclusionProof { .. } => GET_INCLUSION_PROOF,
            Body::GetConsistencyProof { .. } => GET_CONSISTENCY_PROOF,
            Body::Challenge { .. } => CHALLENGE,
            Body::Welcome { .. } => WELCOME,
            Body::Subscribed { .. } => SUBSCRIBED,
            Body::Unsubscribed { .. } => UNSUBSCRIBED,
            Body::Receipt { .. } => RECEIPT,
            Body::Entry { .. } => ENTRY,
            Body::Entries { .. } => ENTRIES,
            Body::Event { .. } => EVENT,
            Body::Checkpoint { .. } => CHECKPOINT,
            Body::InclusionProof { .. } => INCLUSION_PROOF,
            Body::ConsistencyProof { .. } => CONSISTENCY_PROOF,
            Body::Error { .. } => ERROR,
        }
    }

    /// The canonical bytes of this frame.
    ///
    /// Errors: `BAD_TOPIC` for an invalid topic, `LIMIT_EXCEEDED` when a field or the whole
    /// frame is over its bound, `BAD_INPUT` for an error code that is not `A-Z`/`_`.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64);
        out.put_u8(WIRE_VERSION);
        out.put_u8(self.type_byte());
        out.put_u32(self.request_id);
        match &self.body {
            Body::Hello { agent, signature } => {
                out.put(agent.as_bytes());
                out.put(signature);
            }
            Body::Subscribe { topic, from_seq } => {
                put_topic(&mut out, topic)?;
                out.put_u64(*from_seq);
            }
            Body::Unsubscribe { topic }
            | Body::GetCheckpoint { topic }
            | Body::Unsubscribed { topic } => put_topic(&mut out, topic)?,
            Body::GetInclusionProof {
                topic,
                seq,
                tree_size,
            } => {
                put_topic(&mut out, topic)?;
                out.put_u64(*seq);
                out.put_u64(*tree_size);
            }
            Body::GetConsistencyProof {
                topic,
                old_size,
                new_size,
            } => {
                put_topic(&mut out, topic)?;
                out.put_u64(*old_size);
                out.put_u64(*new_size);
            }
            Body::Challenge { relay, nonce } => {
                out.put(relay.as_bytes());
                out.put(nonce);
            }
            Body::Welcome { agent } => out.put(agent.as_bytes()),
            Body::Subscribed {
                topic,
                from_seq,
                head,
            } => {
                put_topic(&mut out, topic)?;
                out.put_u64(*from_seq);
                out.put_u64(*head);
            }
            Body::Receipt {
                seq,
                op_id,
                receipt,
            } => {
                out.put_u64(*seq);
                out.put(&op_id.0);
                put_blob(&mut out, receipt)?;
            }
            Body::Entries { entries } => put_entries(&mut out, entries)?,
            Body::Event { topic, seq, event } => {
                put_topic(&mut out, topic)?;
                out.put_u64(*seq);
                put_blob(&mut out, event)?;
            }
            Body::Publish { op: blob }
            | Body::Entry { entry: blob }
            | Body::Checkpoint { checkpoint: blob }
            | Body::InclusionProof { proof: blob }
            | Body::ConsistencyProof { proof: blob } => put_blob(&mut out, blob)?,
            Body::Error { code, message } => {
                check_code(code)?;
                out.put_u8(code.len() as u8);
                out.put(code.as_bytes());
                let mut message = message.clone();
                truncate_utf8(&mut message, MAX_MESSAGE_LEN);
                out.put_u16(message.len() as u16);
                out.put(message.as_bytes());
            }
        }
        check_frame_len(out.len())?;
        Ok(out)
    }

    /// Decodes one frame, refusing every non-canonical or oversized input.
    ///
    /// Errors: `LIMIT_EXCEEDED` (frame or field too large), `UNSUPPORTED_VERSION`,
    /// `UNKNOWN_FRAME` (type byte not assigned), `MALFORMED`, `TRAILING_BYTES`, `BAD_TOPIC`,
    /// `BAD_PUBLIC_KEY`, `BAD_INPUT` (bad error code or message text).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        check_frame_len(bytes.len())?;
        let mut r = Reader::new("frame", bytes);
        let version = r.u8("version")?;
        if version != WIRE_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "frame",
                version,
            });
        }
        let kind = r.u8("type")?;
        let request_id = r.u32("request id")?;
        use frame_type::*;
        let body = match kind {
            HELLO => Body::Hello {
                agent: AgentId::from_bytes(&r.array::<32>("agent")?)?,
                signature: r.array("signature")?,
            },
            SUBSCRIBE => Body::Subscribe {
                topic: take_topic(&mut r)?,
                from_seq: r.u64("from seq")?,
            },
            UNSUBSCRIBE => Body::Unsubscribe {
                topic: take_topic(&mut r)?,
            },
            PUBLISH => Body::Publish {
                op: take_blob(&mut r, "op")?,
            },
            GET_CHECKPOINT => Body::GetCheckpoint {
                topic: take_topic(&mut r)?,
            },
            GET_INCLUSION_PROOF => Body::GetInclusionProof {
                topic: take_topic(&mut r)?,
                seq: r.u64("seq")?,
                tree_size: r.u64("tree size")?,
            },
            GET_CONSISTENCY_PROOF => Body::GetConsistencyProof {
                topic: take_topic(&mut r)?,
                old_size: r.u64("old size")?,
                new_size: r.u64("new size")?,
            },
            CHALLENGE => Body::Challenge {
                relay: AgentId::from_bytes(&r.array::<32>("relay")?)?,
                nonce: r.array("nonce")?,
            },
            WELCOME => Body::Welcome {
                agent: AgentId::from_bytes(&r.array::<32>("agent")?)?,
            },
            SUBSCRIBED => Body::Subscribed {
                topic: take_topic(&mut r)?,
                from_seq: r.u64("from seq")?,
                head: r.u64("head")?,
            },
            UNSUBSCRIBED => Body::Unsubscribed {
                topic: take_topic(&mut r)?,
            },
            RECEIPT => Body::Receipt {
                seq: r.u64("seq")?,
                op_id: OpId(r.array("op id")?),
                receipt: take_blob(&mut r, "receipt")?,
            },
            ENTRY => Body::Entry {
                entry: take_blob(&mut r, "entry")?,
            },
            ENTRIES => {
                let count = r.u16("entry count")? as usize;
                check_entry_count(count)?;
                let entries = (0..count)
                    .map(|_| take_blob(&mut r, "entry"))
                    .collect::<Result<_>>()?;
                Body::Entries { entries }
            }
            EVENT => Body::Event {
                topic: take_topic(&mut r)?,
                seq: r.u64("seq")?,
                event: take_blob(&mut r, "event")?,
            },
            CHECKPOINT => Body::Checkpoint {
                checkpoint: take_blob(&mut r, "checkpoint")?,
            },
            INCLUSION_PROOF => Body::InclusionProof {
                proof: take_blob(&mut r, "proof")?,
            },
            CONSISTENCY_PROOF => Body::ConsistencyProof {
                proof: take_blob(&mut r, "proof")?,
            },
            ERROR => {
                let code_len = r.u8("code length")? as usize;
                let code = String::from_utf8(r.take(code_len, "code")?.to_vec())
                    .map_err(|_| Error::BadInput("error code is not ASCII".into()))?;
                check_code(&code)?;
                let message_len = r.u16("message length")? as usize;
                if message_len > MAX_MESSAGE_LEN {
                    return Err(Error::LimitExceeded {
                        what: "error message length",
                        limit: MAX_MESSAGE_LEN,
                        got: message_len,
                    });
                }
                let message = String::from_utf8(r.take(message_len, "message")?.to_vec())
                    .map_err(|_| Error::BadInput("error message is not UTF-8".into()))?;
                Body::Error { code, message }
            }
            other => return Err(Error::UnknownFrame(other)),
        };
        r.finish()?;
        Ok(Frame { request_id, body })
    }
}

fn put_topic(out: &mut Vec<u8>, topic: &str) -> Result<()> {
    validate_topic(topic)?;
    out.put_u8(topic.len() as u8);
    out.put(topic.as_bytes());
    Ok(())
}

/// Reads a topic written by [`put_topic`] (`BAD_TOPIC` when it is not a valid topic).
pub(crate) fn take_topic(r: &mut Reader<'_>) -> Result<String> {
    let len = r.u8("topic length")? as usize;
    let topic = std::str::from_utf8(r.take(len, "topic")?)
        .map_err(|_| Error::BadTopic("not UTF-8".into()))?
        .to_owned();
    validate_topic(&topic)?;
    Ok(topic)
}

fn put_blob(out: &mut Vec<u8>, blob: &[u8]) -> Result<()> {
    if blob.len() > MAX_FRAME_LEN {
        return Err(Error::LimitExceeded {
            what: "frame field",
            limit: MAX_FRAME_LEN,
            got: blob.len(),
        });
    }
    out.put_u32(blob.len() as u32);
    out.put(blob);
    Ok(())
}

/// Writes the payload of an `entries` frame.
fn put_entries<E: AsRef<[u8]>>(out: &mut Vec<u8>, entries: &[E]) -> Result<()> {
    check_entry_count(entries.len())?;
    out.put_u16(entries.len() as u16);
    for entry in entries {
        put_blob(out, entry.as_ref())?;
    }
    Ok(())
}

fn check_entry_count(count: usize) -> Result<()> {
    if count == 0 || count > MAX_ENTRIES_PER_FRAME {
        return Err(Error::LimitExceeded {
            what: "entries per frame",
            limit: MAX_ENTRIES_PER_FRAME,
            got: count,
        });
    }
    Ok(())
}

/// The canonical frame carrying `entries` (consecutive entries of the subscription opened by
/// `request_id`): an `entry` frame for one, an `entries` frame for several. The same bytes as
/// [`Frame::encode`] of that frame, without copying the entries twice.
///
/// Errors: `LIMIT_EXCEEDED` for no entries, more than [`MAX_ENTRIES_PER_FRAME`], or a frame
/// over [`MAX_FRAME_LEN`].
pub fn encode_entries<E: AsRef<[u8]>>(request_id: u32, entries: &[E]) -> Result<Vec<u8>> {
    let payload: usize = entries.iter().map(|e| 4 + e.as_ref().len()).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + 2 + payload);
    out.put_u8(WIRE_VERSION);
    match entries {
        [entry] => {
            out.put_u8(frame_type::ENTRY);
            out.put_u32(request_id);
            put_blob(&mut out, entry.as_ref())?;
        }
        _ => {
            out.put_u8(frame_type::ENTRIES);
            out.put_u32(request_id);
            put_entries(&mut out, entries)?;
        }
    }
    check_frame_len(out.len())?;
    Ok(out)
}

/// Bytes of a frame before its payload: version, type, request id.
const HEADER_LEN: usize = 6;

fn check_frame_len(len: usize) -> Result<()> {
    if len > MAX_FRAME_LEN {
        return Err(Error::LimitExceeded {
            what: "frame size",
            limit: MAX_FRAME_LEN,
            got: len,
        });
    }
    Ok(())
}

fn take_blob(r: &mut Reader<'_>, field: &str) -> Result<Vec<u8>> {
    let len = r.u32(field)? as usize;
    Ok(r.take(len, field)?.to_vec())
}

fn check_code(code: &str) -> Result<()> {
    if code.is_empty()
        || code.len() > MAX_CODE_LEN
        || !code.bytes().all(|c| c.is_ascii_uppercase() || c == b'_')
    {
        return Err(Error::BadInput(
            "an error code is 1..=64 characters of A-Z and _".into(),
        ));
    }
    Ok(())
}

fn truncate_utf8(text: &mut String, max: usize) {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

#[cfg(test)]
mod tests;
