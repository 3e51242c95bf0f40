//! The JS `Session` class: the core's sans-IO relay client session. `RelayClient`
//! (pkg-config/client.mjs) moves frames between a WebSocket and it.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::convert::{
    bool_arg, bytes_arg, bytes_array_arg, ms_arg, serialize_bytes, serialize_u64, string_arg, to_js,
};
use super::identity::JsIdentity;
use super::replica::config_arg;
use crate::identity::Identity;
use crate::op::SignedOp;
use crate::session::{Fault, Phase, Session, SessionEvent};

#[wasm_bindgen(typescript_custom_section)]
const SESSION_TYPES: &str = r#"
/** One event of `Session.takeEvents()`, tagged by `type` (64-bit integers: see `U64`). */
export type SessionEvent =
  | { type: "live"; relay: string }
  | { type: "subscribed"; topic: string; fromSeq: U64; head: U64 }
  | {
      type: "entry";
      topic: string;
      seq: U64;
      relayTimeMs: U64;
      opId: string;
      author: string;
      kind: string;
      counter: U64;
      body: Uint8Array;
      bytes: Uint8Array;
    }
  | { type: "replica"; topic: string; event: ReplicaEvent }
  | { type: "verified"; topic: string; treeSize: U64 }
  | { type: "acknowledged"; topic: string; opId: string; seq: U64; receipt: Uint8Array }
  | { type: "refused"; topic: string; opId: string; code: string; message: string }
  | {
      type: "retrying";
      topic: string;
      opId: string;
      code: string;
      message: string;
      attempt: number;
      retryAtMs: U64;
    }
  | { type: "timedOut"; topic: string; opId: string; code: string; message: string; op: Uint8Array }
  | { type: "receiptAudited"; topic: string; opId: string; seq: U64; treeSize: U64 }
  | { type: "pushed"; topic: string; seq: U64; event: ReplicaEvent }
  | { type: "misbehaviour"; topic: string; code: string; detail: string; evidence: Uint8Array | null }
  | { type: "relayError"; requestId: number; code: string; message: string }
  | { type: "subscriptionEnded"; topic: string; code: string; message: string };
"#;

/// A relay client session (sans-IO): feed it received frames, send what `takeOutgoing()`
/// returns, handle what `takeEvents()` returns.
#[wasm_bindgen(js_name = Session)]
pub struct JsSession(Session);

/// One event as a plain JS object, tagged by `type`.
#[derive(Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
enum JsEvent {
    Live {
        relay: String,
    },
    Subscribed {
        topic: String,
        #[serde(serialize_with = "serialize_u64")]
        from_seq: u64,
        #[serde(serialize_with = "serialize_u64")]
        head: u64,
    },
    Entry {
        topic: String,
        #[serde(serialize_with = "serialize_u64")]
        seq: u64,
        #[serde(serialize_with = "serialize_u64")]
        relay_time_ms: u64,
        op_id: String,
        author: String,
        kind: String,
        #[serde(serialize_with = "serialize_u64")]
        counter: u64,
        #[serde(serialize_with = "serialize_bytes")]
        body: Vec<u8>,
        #[serde(serialize_with = "serialize_bytes")]
        bytes: Vec<u8>,
    },
    Replica {
        topic: String,
        event: crate::replica::Event,
    },
    Verified {
        topic: String,
        #[serde(serialize_with = "serialize_u64")]
        tree_size: u64,
    },
    Acknowledged {
        topic: String,
        op_id: String,
        #[serde(serialize_with = "serialize_u64")]
        seq: u64,
        #[serde(serialize_with = "serialize_bytes")]
        receipt: Vec<u8>,
    },
    Refused {
        topic: String,
        op_id: String,
        code: String,
        message: String,
    },
    Retrying {
        topic: String,
        op_id: String,
        code: String,
        message: String,
        attempt: u32,
        #[serde(serialize_with = "serialize_u64")]
        retry_at_ms: u64,
    },
    TimedOut {
        topic: String,
        op_id: String,
        code: String,
        message: String,
        #[serde(serialize_with = "serialize_bytes")]
        op: Vec<u8>,
    },
    ReceiptAudited {
        topic: String,
        op_id: String,
        #[serde(serialize_with = "serialize_u64")]
        seq: u64,
        #[serde(serialize_with = "serialize_u64")]
        tree_size: u64,
    },
    Pushed {
        topic: String,
        #[serde(serialize_with = "serialize_u64")]
        seq: u64,
        #[serde(with = "serde_wasm_bindgen::preserve")]
        event: JsValue,
    },
    Misbehaviour {
        topic: String,
        code: String,
        detail: String,
        #[serde(serialize_with = "serialize_opt_bytes")]
        evidence: Option<Vec<u8>>,
    },
    RelayError {
        request_id: u32,
        code: String,
        message: String,
    },
    SubscriptionEnded {
        topic: String,
        code: String,
        message: String,
    },
}

/// A pushed event as a JS object: the relay sends the replica's JSON view (PROTOCOL.md 8.5),
/// which the JS engine parses (`JSON.parse`), so the core build (no `doc`, no serde_json) gives
/// the same objects as the full one; text that is not JSON stays a string.
fn pushed_event(bytes: &[u8]) -> JsValue {
    let text = String::from_utf8_lossy(bytes);
    js_sys::JSON::parse(&text).unwrap_or_else(|_| JsValue::from_str(&text))
}

fn serialize_opt_bytes<S: serde::Serializer>(
    value: &Option<Vec<u8>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(bytes) => serializer.serialize_bytes(bytes),
        None => serializer.serialize_none(),
    }
}

fn to_js_event(event: SessionEvent) -> JsEvent {
    match event {
        SessionEvent::Live { relay } => JsEvent::Live {
            relay: relay.to_string(),
        },
        SessionEvent::Subscribed {
            topic,
            from_seq,
            head,
        } => JsEvent::Subscribed {
            topic,
            from_seq,
            head,
        },
        SessionEvent::Entry { topic, entry } => JsEvent::Entry {
            topic,
            seq: entry.seq(),
            relay_time_ms: entry.relay_time_ms(),
            op_id: entry.op().id().to_string(),
            author: entry.op().author().to_string(),
            kind: entry.op().kind().to_owned(),
            counter: entry.op().counter(),
            body: entry.op().body().to_vec(),
            bytes: entry.as_bytes().to_vec(),
        },
        SessionEvent::Replica { topic, event } => JsEvent::Replica { topic, event },
        SessionEvent::Verified { topic, tree_size } => JsEvent::Verified { topic, tree_size },
        SessionEvent::Acknowledged {
            topic,
            op_id,
            seq,
            receipt,
        } => JsEvent::Acknowledged {
            topic,
            op_id: op_id.to_string(),
            seq,
            receipt,
        },
        SessionEvent::Refused {
            topic,
            op_id,
            code,
            message,
        } => JsEvent::Refused {
            topic,
            op_id: op_id.to_string(),
            code,
            message,
        },
        SessionEvent::Misbehaviour { topic, fault } => JsEvent::Misbehaviour {
            topic,
            code: fault.code().to_owned(),
            detail: fault.to_string(),
            evidence: match &fault {
                Fault::Evidence(evidence) => Some(evidence.encode()),
                _ => None,
            },
        },
        SessionEvent::Retrying {
            topic,
            op_id,
            code,
            message,
            attempt,
            retry_at_ms,
        } => JsEvent::Retrying {
            topic,
            op_id: op_id.to_string(),
            code,
            message,
            attempt,
            retry_at_ms,
        },
        SessionEvent::TimedOut {
            topic,
            op_id,
            code,
            message,
            op,
        } => JsEvent::TimedOut {
            topic,
            op_id: op_id.to_string(),
            code,
            message,
            op,
        },
        SessionEvent::ReceiptAudited {
            topic,
            op_id,
            seq,
            tree_size,
        } => JsEvent::ReceiptAudited {
            topic,
            op_id: op_id.to_string(),
            seq,
            tree_size,
        },
        SessionEvent::Pushed { topic, seq, event } => JsEvent::Pushed {
            topic,
            seq,
            event: pushed_event(&event),
        },
        SessionEvent::RelayError {
            request_id,
            code,
            message,
        } => JsEvent::RelayError {
            request_id,
            code,
            message,
        },
        SessionEvent::SubscriptionEnded {
            topic,
            code,
            message,
        } => JsEvent::SubscriptionEnded {
            topic,
            code,
            message,
        },
    }
}

fn copy_identity(identity: &JsIdentity) -> Result<Identity, JsValue> {
    let seed = identity.0.export_seed();
    Ok(Identity::from_seed(&seed[..])?)
}

#[wasm_bindgen(js_class = Session)]
impl JsSession {
    /// A fresh session for `identity` (a copy of the key is kept).
    #[wasm_bindgen(constructor)]
    pub fn new(identity: &JsIdentity) -> Result<JsSession, JsValue> {
        Ok(JsSession(Session::new(copy_identity(identity)?)))
    }

    /// A session resuming from `exportState()` bytes.
    pub fn restore(
        identity: &JsIdentity,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] state: &JsValue,
    ) -> Result<JsSession, JsValue> {
        let state = bytes_arg("state", state)?;
        Ok(JsSession(Session::restore(
            copy_identity(identity)?,
            &state,
        )?))
    }

    /// The persistable state (canonical bytes).
    #[wasm_bindgen(js_name = exportState)]
    pub fn export_state(&self) -> Vec<u8> {
        self.0.export_state()
    }

    /// `"disconnected" | "awaitingChallenge" | "awaitingWelcome" | "live" | "refused"`.
    #[wasm_bindgen(getter)]
    pub fn phase(&self) -> String {
        match self.0.phase() {
            Phase::Disconnected => "disconnected",
            Phase::AwaitingChallenge => "awaitingChallenge",
            Phase::AwaitingWelcome => "awaitingWelcome",
            Phase::Live => "live",
            Phase::Refused => "refused",
        }
        .into()
    }

    /// The pinned relay key (hex), once known.
    #[wasm_bindgen(getter, js_name = relayId)]
    pub fn relay_id(&self) -> Option<String> {
        self.0.relay().map(ToString::to_string)
    }

    /// Our agent id (hex).
    #[wasm_bindgen(getter, js_name = agentId)]
    pub fn agent_id(&self) -> String {
        self.0.agent().to_string()
    }

    /// A transport connected.
    pub fn connected(&mut self) {
        self.0.connected();
    }

    /// The transport dropped.
    pub fn disconnected(&mut self) {
        self.0.disconnected();
    }

    /// One received binary message.
    pub fn receive(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
        #[wasm_bindgen(js_name = nowMs, unchecked_param_type = "number")] now_ms: &JsValue,
    ) -> Result<(), JsValue> {
        Ok(self
            .0
            .receive(&bytes_arg("bytes", bytes)?, ms_arg("nowMs", now_ms)?)?)
    }

    /// Several received messages; entry signatures verified as one batch.
    #[wasm_bindgen(js_name = receiveBatch)]
    pub fn receive_batch(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array[]")] messages: &JsValue,
        #[wasm_bindgen(js_name = nowMs, unchecked_param_type = "number")] now_ms: &JsValue,
    ) -> Result<(), JsValue> {
        let messages = bytes_array_arg("messages", messages)?;
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        Ok(self.0.receive_batch(&refs, ms_arg("nowMs", now_ms)?)?)
    }

    /// Follows `topic` from seq `from`; with `replica`, from 0 with a replica built from
    /// `config` (a `ReplicaConfig` object, its canonical bytes, or undefined for the defaults).
    pub fn subscribe(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] from: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "boolean")] replica: &JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "ReplicaConfig | Uint8Array")]
        config: &JsValue,
    ) -> Result<(), JsValue> {
        let topic = string_arg("topic", topic)?;
        let from = ms_arg("from", from)?;
        let config = if bool_arg("replica", replica)? {
            Some(config_arg(config)?)
        } else {
            None
        };
        Ok(self.0.subscribe_with(&topic, from, config)?)
    }

    /// Stops following `topic`.
    pub fn unsubscribe(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
    ) -> Result<(), JsValue> {
        Ok(self.0.unsubscribe(&string_arg("topic", topic)?)?)
    }

    /// Stops the relay sending `topic`'s entries, keeping the topic's cursor, replica and tree
    /// (backpressure); `resume` asks again from the cursor, so nothing is lost.
    pub fn pause(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
    ) -> Result<(), JsValue> {
        Ok(self.0.pause(&string_arg("topic", topic)?)?)
    }

    /// Follows a paused topic again from its cursor.
    pub fn resume(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
    ) -> Result<(), JsValue> {
        Ok(self.0.resume(&string_arg("topic", topic)?)?)
    }

    /// Signs and queues an op; returns its id (hex). A replica kind (`post`, `claim`, …) needs a
    /// `ReplicaOp` body and `doc.update` a document update: another body is `BAD_INPUT`, and
    /// nothing is signed or queued.
    pub fn publish(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] kind: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] body: &JsValue,
        #[wasm_bindgen(js_name = nowMs, unchecked_param_type = "number")] now_ms: &JsValue,
    ) -> Result<String, JsValue> {
        let (topic, kind) = (string_arg("topic", topic)?, string_arg("kind", kind)?);
        let body = bytes_arg("body", body)?;
        Ok(self
            .0
            .publish(&topic, &kind, &body, vec![], ms_arg("nowMs", now_ms)?)?
            .id()
            .to_string())
    }

    /// Signs and queues an op like `publish`; returns the signed op's bytes, to be given to
    /// other relays' sessions with `publishSigned` (one op id on every relay).
    #[wasm_bindgen(js_name = publishOp)]
    pub fn publish_op(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] kind: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] body: &JsValue,
        #[wasm_bindgen(js_name = nowMs, unchecked_param_type = "number")] now_ms: &JsValue,
    ) -> Result<Vec<u8>, JsValue> {
        let (topic, kind) = (string_arg("topic", topic)?, string_arg("kind", kind)?);
        let body = bytes_arg("body", body)?;
        let op = self
            .0
            .publish(&topic, &kind, &body, vec![], ms_arg("nowMs", now_ms)?)?;
        Ok(op.as_bytes().to_vec())
    }

    /// Queues an op signed by this session's identity elsewhere (`publishOp` of another
    /// session); returns its id (hex).
    #[wasm_bindgen(js_name = publishSigned)]
    pub fn publish_signed(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] op: &JsValue,
    ) -> Result<String, JsValue> {
        let op = SignedOp::decode(&bytes_arg("op", op)?)?;
        Ok(self.0.publish_signed(op)?.to_string())
    }

    /// The gossip body of the latest head of `topic` this session verified, if any: publish it
    /// as an op of kind `"ants.checkpoint"` through other relays.
    pub fn gossip(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
    ) -> Result<Option<Vec<u8>>, JsValue> {
        Ok(self.0.gossip(&string_arg("topic", topic)?))
    }

    /// Takes a gossip body (the body of an `"ants.checkpoint"` op seen anywhere); true when it
    /// was about this session's relay and a followed topic. Faults come out as events.
    #[wasm_bindgen(js_name = receiveGossip)]
    pub fn receive_gossip(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
    ) -> Result<bool, JsValue> {
        Ok(self.0.receive_gossip(&bytes_arg("gossip", bytes)?)?)
    }

    /// Asks for the topic's signed checkpoint.
    #[wasm_bindgen(js_name = requestCheckpoint)]
    pub fn request_checkpoint(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
    ) -> Result<(), JsValue> {
        Ok(self.0.request_checkpoint(&string_arg("topic", topic)?)?)
    }

    /// How long an op may wait for its receipt before it is given up (a `timedOut` event), in
    /// ms (default 60,000).
    #[wasm_bindgen(js_name = setPublishTimeoutMs)]
    pub fn set_publish_timeout_ms(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "number")] ms: &JsValue,
    ) -> Result<(), JsValue> {
        self.0.set_publish_timeout_ms(ms_arg("ms", ms)?);
        Ok(())
    }

    /// When to call `tick` next (a retry due, a publish timeout), in ms on the caller's clock;
    /// undefined when nothing is scheduled.
    #[wasm_bindgen(js_name = nextWakeMs)]
    pub fn next_wake_ms(&self) -> Option<f64> {
        self.0.next_wake_ms().map(|ms| ms as f64)
    }

    /// Time passes: due retries, publish timeouts, acknowledged-op deadlines.
    pub fn tick(
        &mut self,
        #[wasm_bindgen(js_name = nowMs, unchecked_param_type = "number")] now_ms: &JsValue,
    ) -> Result<(), JsValue> {
        self.0.tick(ms_arg("nowMs", now_ms)?);
        Ok(())
    }

    /// The next seq owed on `topic`.
    pub fn cursor(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
    ) -> Result<Option<f64>, JsValue> {
        Ok(self
            .0
            .cursor(&string_arg("topic", topic)?)
            .map(|c| c as f64))
    }

    /// Frames to send (drained).
    #[wasm_bindgen(js_name = takeOutgoing, unchecked_return_type = "Uint8Array[]")]
    pub fn take_outgoing(&mut self) -> JsValue {
        let array = js_sys::Array::new();
        for frame in self.0.take_outgoing() {
            array.push(&js_sys::Uint8Array::from(frame.as_slice()));
        }
        array.into()
    }

    /// Events (drained), plain objects tagged by `type`: `null` where there is nothing, and
    /// replica events exactly as `Replica.apply` returns them.
    #[wasm_bindgen(js_name = takeEvents, unchecked_return_type = "SessionEvent[]")]
    pub fn take_events(&mut self) -> Result<JsValue, JsValue> {
        let events: Vec<JsEvent> = self.0.take_events().into_iter().map(to_js_event).collect();
        to_js(&events)
    }

    /// Who holds `resource` in the topic's replica (hex), if anyone.
    #[wasm_bindgen(js_name = claimHolder)]
    pub fn claim_holder(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] resource: &JsValue,
    ) -> Result<Option<String>, JsValue> {
        let (topic, resource) = (
            string_arg("topic", topic)?,
            string_arg("resource", resource)?,
        );
        Ok(self
            .0
            .replica(&topic)
            .and_then(|replica| replica.claim_holder(&resource))
            .map(|id| id.to_string()))
    }

    /// The elected leader of the topic's replica at `nowMs` (hex), if any.
    pub fn leader(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
        #[wasm_bindgen(js_name = nowMs, unchecked_param_type = "number")] now_ms: &JsValue,
    ) -> Result<Option<String>, JsValue> {
        let topic = string_arg("topic", topic)?;
        let now_ms = ms_arg("nowMs", now_ms)?;
        let Some(replica) = self.0.replica(&topic) else {
            return Ok(None);
        };
        Ok(replica.leader(now_ms).ok().map(|e| e.leader.to_string()))
    }
}
