//! [`DocSync`]: the y-protocols sync and awareness exchange as a sans-IO state machine.
//!
//! Feed it every message that arrives on a connection; it answers with the messages to send back
//! on that connection (`replies`) and the messages to forward to every other connection of the
//! same document (`broadcast`). It does no I/O and reads no clock: the transport (a WebSocket, the
//! relay's socket loop, a `MessagePort`) moves the bytes and passes the time.
//!
//! This is what a `y-websocket` server does: on connect it sends sync step 1 (and the awareness
//! states it knows); it answers step 1 with step 2; it applies step 2 and updates and broadcasts
//! them; it forwards awareness and answers awareness queries. The same machine works on the client
//! side.

use super::awareness::{AwarenessChanges, AwarenessStates};
use super::document::Doc;
use super::protocol::{AwarenessUpdate, ProtocolMessage, SyncMessage};
use crate::error::Result;

/// What to do after receiving one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncOutcome {
    /// Messages to send back to the peer the message came from.
    pub replies: Vec<Vec<u8>>,
    /// Messages to send to every other peer of the document.
    pub broadcast: Vec<Vec<u8>>,
    /// The v1 update that was applied to the document, if any.
    pub applied_update: Option<Vec<u8>>,
    /// Awareness clients that changed.
    pub awareness: AwarenessChanges,
    /// The peer refused us (auth message type 0), with its reason.
    pub permission_denied: Option<String>,
}

/// The sync state of one connection to one document.
#[derive(Debug, Clone)]
pub struct DocSync {
    doc: Doc,
    awareness: AwarenessStates,
    synced: bool,
}

impl DocSync {
    /// Syncs `doc` (a handle sharing the document) over one connection. Awareness uses the
    /// document's client id as the local id.
    pub fn new(doc: &Doc) -> Self {
        DocSync {
            doc: doc.clone(),
            awareness: AwarenessStates::new(u64::from(doc.client_id())),
            synced: false,
        }
    }

    /// The document.
    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    /// Whether step 2 has been received from the peer (the peer's state is all here).
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// The awareness states known on this connection.
    pub fn awareness(&self) -> &AwarenessStates {
        &self.awareness
    }

    /// The messages that open a connection: sync step 1, then the known awareness states (if any).
    pub fn start(&self) -> Result<Vec<Vec<u8>>> {
        let mut out =
            vec![ProtocolMessage::Sync(SyncMessage::Step1(self.doc.state_vector()?)).encode()];
        let states = self.awareness.encode(None);
        if !states.entries.is_empty() {
            out.push(ProtocolMessage::Awareness(states).encode());
        }
        Ok(out)
    }

    /// Handles one incoming message received at `now_ms` (used only for awareness expiry).
    ///
    /// Errors: those of [`ProtocolMessage::decode`] and of applying the update (`BAD_UPDATE`,
    /// `TRAILING_BYTES` when bytes follow the update inside its length prefix, `DOC_BUSY`);
    /// nothing is applied on error.
    pub fn receive(&mut self, message: &[u8], now_ms: u64) -> Result<SyncOutcome> {
        let mut outcome = SyncOutcome::default();
        match ProtocolMessage::decode(message)? {
            ProtocolMessage::Sync(SyncMessage::Step1(state_vector)) => {
                let update = self.doc.encode_update(Some(&state_vector))?;
                outcome
                    .replies
                    .push(ProtocolMessage::Sync(SyncMessage::Step2(update)).encode());
            }
            ProtocolMessage::Sync(SyncMessage::Step2(update)) => {
                self.doc.apply_update_exact(&update)?;
                self.synced = true;
                outcome
                    .broadcast
                    .push(ProtocolMessage::Sync(SyncMessage::Update(update.clone())).encode());
                outcome.applied_update = Some(update);
            }
            ProtocolMessage::Sync(SyncMessage::Update(update)) => {
                self.doc.apply_update_exact(&update)?;
                outcome.broadcast.push(message.to_vec());
                outcome.applied_update = Some(update);
            }
            ProtocolMessage::Awareness(update) => {
                outcome.awareness = self.awareness.apply(&update, now_ms);
                outcome.broadcast.push(message.to_vec());
            }
            ProtocolMessage::QueryAwareness => {
                outcome
                    .replies
                    .push(ProtocolMessage::Awareness(self.awareness.encode(None)).encode());
            }
            ProtocolMessage::PermissionDenied(reason) => {
                outcome.permission_denied = Some(reason);
            }
        }
        Ok(outcome)
    }

    /// Wraps a local v1 update (from an observer) as the message to send to peers.
    pub fn update_message(update: &[u8]) -> Vec<u8> {
        ProtocolMessage::Sync(SyncMessage::Update(update.to_vec())).encode()
    }

    /// Sets or clears this side's awareness state (JSON text); returns the message to send.
    pub fn set_local_awareness(&mut self, state: Option<&str>, now_ms: u64) -> Result<Vec<u8>> {
        let update = self.awareness.set_local_state(state, now_ms)?;
        Ok(ProtocolMessage::Awareness(update).encode())
    }

    /// Expires silent peers and renews the local state when due; returns the messages to send
    /// (call every few seconds).
    pub fn tick(&mut self, now_ms: u64) -> (AwarenessChanges, Vec<Vec<u8>>) {
        let changes = self.awareness.expire(now_ms);
        let mut out = Vec::new();
        if let Some(update) = self.awareness.renew_local(now_ms) {
            out.push(ProtocolMessage::Awareness(update).encode());
        }
        (changes, out)
    }

    /// The awareness message describing every known client (for a newcomer).
    pub fn awareness_message(&self) -> Vec<u8> {
        ProtocolMessage::Awareness(self.awareness.encode(None)).encode()
    }

    /// Integrates an awareness update learnt elsewhere (e.g. from another connection).
    pub fn apply_awareness(&mut self, update: &AwarenessUpdate, now_ms: u64) -> AwarenessChanges {
        self.awareness.apply(update, now_ms)
    }
}
