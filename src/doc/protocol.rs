//! y-protocols messages, byte for byte as the `y-protocols` and `y-websocket` packages write them.
//!
//! One message per transport frame. Layout (lib0 encodings, see [`super::lib0`]):
//!
//! | message | bytes |
//! |---|---|
//! | sync step 1 | `varUint(0) varUint(0) varUint8Array(stateVector)` |
//! | sync step 2 | `varUint(0) varUint(1) varUint8Array(update)` |
//! | sync update | `varUint(0) varUint(2) varUint8Array(update)` |
//! | awareness | `varUint(1) varUint8Array(awarenessUpdate)` |
//! | auth: permission denied | `varUint(2) varUint(0) varString(reason)` |
//! | query awareness | `varUint(3)` |
//!
//! `awarenessUpdate` = `varUint(n)` then `n` times `varUint(clientID) varUint(clock)
//! varString(JSON.stringify(state))`, where the state `null` means "this client left".
//!
//! The state vector and update are the Yjs v1 encodings. Decoding refuses trailing bytes, unknown
//! message types, and any length over the limits below.

use super::document::{MAX_STATE_VECTOR_LEN, MAX_UPDATE_LEN};
use super::lib0::{write_var_bytes, write_var_uint, Lib0Reader};
use crate::error::{Error, Result};

/// Outer message type: document sync.
pub const MESSAGE_SYNC: u64 = 0;
/// Outer message type: awareness (presence).
pub const MESSAGE_AWARENESS: u64 = 1;
/// Outer message type: authorization.
pub const MESSAGE_AUTH: u64 = 2;
/// Outer message type: a request for every awareness state.
pub const MESSAGE_QUERY_AWARENESS: u64 = 3;
/// Sync message type: step 1 (state vector).
pub const SYNC_STEP_1: u64 = 0;
/// Sync message type: step 2 (the update the peer lacks).
pub const SYNC_STEP_2: u64 = 1;
/// Sync message type: an incremental update.
pub const SYNC_UPDATE: u64 = 2;
/// Auth message type: permission denied.
pub const AUTH_PERMISSION_DENIED: u64 = 0;

/// Largest message accepted: an update at its limit plus framing.
pub const MAX_MESSAGE_LEN: usize = MAX_UPDATE_LEN + 16;
/// Most client states in one awareness update.
pub const MAX_AWARENESS_CLIENTS: usize = 4096;
/// Largest JSON text of one awareness state, in bytes.
pub const MAX_AWARENESS_STATE_LEN: usize = 64 * 1024;
/// Largest encoded awareness update.
pub const MAX_AWARENESS_UPDATE_LEN: usize = 1024 * 1024;
/// Longest permission-denied reason.
pub const MAX_AUTH_REASON_LEN: usize = 1024;

/// The sync part of the protocol (y-protocols `sync.js`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMessage {
    /// "Here is my state vector; send me what I lack."
    Step1(Vec<u8>),
    /// "Here is what you lacked" (a v1 update).
    Step2(Vec<u8>),
    /// An incremental v1 update.
    Update(Vec<u8>),
}

/// One client's entry in an awareness update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwarenessEntry {
    /// The Yjs client id of the state's owner.
    pub client_id: u64,
    /// The owner's awareness clock; a higher clock replaces a lower one.
    pub clock: u64,
    /// The state as JSON text; `None` (JSON `null`) means the client left.
    pub state: Option<String>,
}

/// An awareness update (y-protocols `awareness.js`, `encodeAwarenessUpdate`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AwarenessUpdate {
    /// The entries, in message order.
    pub entries: Vec<AwarenessEntry>,
}

impl AwarenessUpdate {
    /// The lib0 bytes (the payload of an awareness message).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_var_uint(&mut out, self.entries.len() as u64);
        for entry in &self.entries {
            write_var_uint(&mut out, entry.client_id);
            write_var_uint(&mut out, entry.clock);
            write_var_bytes(
                &mut out,
                entry.state.as_deref().unwrap_or("null").as_bytes(),
            );
        }
        out
    }

    /// Decodes and checks an awareness update: bounded counts and lengths, every state valid JSON.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_AWARENESS_UPDATE_LEN {
            return Err(Error::LimitExceeded {
                what: "awareness update length",
                limit: MAX_AWARENESS_UPDATE_LEN,
                got: bytes.len(),
            });
        }
        let mut r = Lib0Reader::new("awareness update", bytes);
        let count = r.var_uint("client count")?;
        if count > MAX_AWARENESS_CLIENTS as u64 {
            return Err(Error::LimitExceeded {
                what: "awareness clients",
                limit: MAX_AWARENESS_CLIENTS,
                got: usize::try_from(count).unwrap_or(usize::MAX),
            });
        }
        let mut entries = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let client_id = r.var_uint("client id")?;
            let clock = r.var_uint("clock")?;
            let json = r.var_string("awareness state", MAX_AWARENESS_STATE_LEN)?;
            entries.push(AwarenessEntry {
                client_id,
                clock,
                state: parse_state(json)?,
            });
        }
        r.finish()?;
        Ok(AwarenessUpdate { entries })
    }
}

/// Checks awareness JSON; `null` becomes `None`.
pub(crate) fn parse_state(json: &str) -> Result<Option<String>> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| Error::malformed("awareness state", format!("not JSON: {e}")))?;
    Ok(if value.is_null() {
        None
    } else {
        Some(json.to_owned())
    })
}

/// One y-websocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolMessage {
    /// Document sync (type 0).
    Sync(SyncMessage),
    /// Awareness (type 1).
    Awareness(AwarenessUpdate),
    /// Permission denied (type 2, auth type 0), with the server's reason.
    PermissionDenied(String),
    /// A request for every awareness state (type 3).
    QueryAwareness,
}

impl ProtocolMessage {
    /// The message bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            ProtocolMessage::Sync(sync) => {
                write_var_uint(&mut out, MESSAGE_SYNC);
                let (kind, payload) = match sync {
                    SyncMessage::Step1(sv) => (SYNC_STEP_1, sv),
                    SyncMessage::Step2(update) => (SYNC_STEP_2, update),
                    SyncMessage::Update(update) => (SYNC_UPDATE, update),
                };
                write_var_uint(&mut out, kind);
                write_var_bytes(&mut out, payload);
            }
            ProtocolMessage::Awareness(update) => {
                write_var_uint(&mut out, MESSAGE_AWARENESS);
                write_var_bytes(&mut out, &update.encode());
            }
            ProtocolMessage::PermissionDenied(reason) => {
                write_var_uint(&mut out, MESSAGE_AUTH);
                write_var_uint(&mut out, AUTH_PERMISSION_DENIED);
                write_var_bytes(&mut out, reason.as_bytes());
            }
            ProtocolMessage::QueryAwareness => write_var_uint(&mut out, MESSAGE_QUERY_AWARENESS),
        }
        out
    }

    /// Decodes one message. Errors: `LIMIT_EXCEEDED`, `MALFORMED` (truncated, unknown type, bad
    /// UTF-8 or JSON), `TRAILING_BYTES`.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(Error::LimitExceeded {
                what: "message length",
                limit: MAX_MESSAGE_LEN,
                got: bytes.len(),
            });
        }
        let mut r = Lib0Reader::new("y-protocols message", bytes);
        let message = match r.var_uint("message type")? {
            MESSAGE_SYNC => ProtocolMessage::Sync(match r.var_uint("sync message type")? {
                SYNC_STEP_1 => SyncMessage::Step1(
                    r.var_bytes("state vector length", MAX_STATE_VECTOR_LEN)?
                        .to_vec(),
                ),
                SYNC_STEP_2 => {
                    SyncMessage::Step2(r.var_bytes("update length", MAX_UPDATE_LEN)?.to_vec())
                }
                SYNC_UPDATE => {
                    SyncMessage::Update(r.var_bytes("update length", MAX_UPDATE_LEN)?.to_vec())
                }
                other => {
                    return Err(Error::malformed(
                        "y-protocols message",
                        format!("unknown sync message type {other}"),
                    ))
                }
            }),
            MESSAGE_AWARENESS => ProtocolMessage::Awareness(AwarenessUpdate::decode(
                r.var_bytes("awareness update length", MAX_AWARENESS_UPDATE_LEN)?,
            )?),
            MESSAGE_AUTH => match r.var_uint("auth message type")? {
                AUTH_PERMISSION_DENIED => ProtocolMessage::PermissionDenied(
                    r.var_string("reason length", MAX_AUTH_REASON_LEN)?
                        .to_owned(),
                ),
                other => {
                    return Err(Error::malformed(
                        "y-protocols message",
                        format!("unknown auth message type {other}"),
                    ))
                }
            },
            MESSAGE_QUERY_AWARENESS => ProtocolMessage::QueryAwareness,
            other => {
                return Err(Error::malformed(
                    "y-protocols message",
                    format!("unknown message type {other}"),
                ))
            }
        };
        r.finish()?;
        Ok(message)
    }
}
