//! The JS `Capability` class: statics that grant, delegate, decode and check capabilities
//! (PROTOCOL.md section 10). Capabilities cross as their canonical bytes (`Uint8Array`); a
//! decoded one is a plain `DecodedCapability` object.

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::convert::{bytes_arg, bytes_array_arg, ms_arg, serialize_u64, string_arg, to_js};
use super::error::bad_input;
use super::identity::JsIdentity;
use crate::capability::{
    self, Capability, Grant, Link, Presentation, ReadRule, Revocation, Right, Rights, Scope,
    TopicPolicy,
};
use crate::error::Error;
use crate::identity::{lower_hex, AgentId};

/// Most capabilities one `mayRead`/`mayWrite` call weighs (the relay's bound per connection).
const MAX_CHECKED: usize = 64;
/// Most capabilities a relay connection may bring on its URL (PROTOCOL.md 10.6).
const MAX_ON_URL: usize = 16;

/// Capabilities: signed, delegable grants of `read`, `write` and `delegate` on a topic or topic
/// prefix, until an expiry. Only statics; capabilities themselves are bytes.
#[wasm_bindgen(js_name = Capability)]
pub struct JsCapability(());

/// The JS `CapabilityGrant` object.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrantInput {
    audience: String,
    topic: String,
    #[serde(default)]
    prefix: bool,
    rights: Vec<String>,
    expires_ms: u64,
    #[serde(default)]
    not_before_ms: u64,
}

/// The fields of a `CapabilityGrant` object.
const GRANT_FIELDS: [&str; 6] = [
    "audience",
    "topic",
    "prefix",
    "rights",
    "expiresMs",
    "notBeforeMs",
];

/// Reads a `CapabilityGrant`; a wrong shape or an unknown field is `BAD_INPUT`.
fn grant_arg(value: &JsValue) -> Result<Grant, JsValue> {
    if !value.is_object() || js_sys::Array::is_array(value) {
        return Err(bad_input("grant must be an object"));
    }
    for key in js_sys::Object::keys(value.unchecked_ref::<js_sys::Object>()).iter() {
        let key = key.as_string().unwrap_or_default();
        if !GRANT_FIELDS.contains(&key.as_str()) {
            return Err(bad_input(format!(
                "grant has an unknown field `{key}`; fields are {}",
                GRANT_FIELDS.join(", ")
            )));
        }
    }
    let input: GrantInput = serde_wasm_bindgen::from_value(value.clone()).map_err(|e| {
        let message = e.to_string();
        bad_input(format!("grant: {}", message.trim_start_matches("Error: ")))
    })?;
    let rights = input
        .rights
        .iter()
        .map(|name| Right::from_name(name))
        .collect::<crate::Result<Rights>>()?;
    Ok(Grant {
        audience: input.audience.parse::<AgentId>()?,
        scope: if input.prefix {
            Scope::Prefix(input.topic)
        } else {
            Scope::Topic(input.topic)
        },
        rights,
        not_before_ms: input.not_before_ms,
        expires_ms: input.expires_ms,
    })
}

/// One link of a `DecodedCapability`'s chain.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LinkView {
    /// `H(link)`, what a revocation names (PROTOCOL.md 10.7).
    hash: String,
    issuer: String,
    audience: String,
    topic: String,
    prefix: bool,
    rights: Vec<&'static str>,
    #[serde(serialize_with = "serialize_u64")]
    not_before_ms: u64,
    #[serde(serialize_with = "serialize_u64")]
    expires_ms: u64,
}

impl LinkView {
    fn of(link: &Link) -> Self {
        let (issuer, grant) = (link.issuer(), link.grant());
        LinkView {
            hash: lower_hex(&link.hash()),
            issuer: issuer.to_string(),
            audience: grant.audience.to_string(),
            topic: grant.scope.name().to_owned(),
            prefix: matches!(grant.scope, Scope::Prefix(_)),
            rights: grant.rights.iter().map(Right::name).collect(),
            not_before_ms: grant.not_before_ms,
            expires_ms: grant.expires_ms,
        }
    }
}

/// The JS `DecodedCapability` object: the chain's root issuer and its leaf's grant, and every
/// link.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DecodedCapability {
    id: String,
    issuer: String,
    audience: String,
    topic: String,
    prefix: bool,
    rights: Vec<&'static str>,
    #[serde(serialize_with = "serialize_u64")]
    not_before_ms: u64,
    #[serde(serialize_with = "serialize_u64")]
    expires_ms: u64,
    chain: Vec<LinkView>,
}

/// A decoded capability as the plain object TypeScript calls `DecodedCapability`.
fn decoded_js(capability: &Capability) -> Result<JsValue, JsValue> {
    let scope = capability.scope();
    let decoded = DecodedCapability {
        id: lower_hex(&capability.id()),
        issuer: capability.issuer().to_string(),
        audience: capability.audience().to_string(),
        topic: scope.name().to_owned(),
        prefix: matches!(scope, Scope::Prefix(_)),
        rights: capability.rights().iter().map(Right::name).collect(),
        not_before_ms: capability.not_before_ms(),
        expires_ms: capability.expires_ms(),
        chain: capability.links().iter().map(LinkView::of).collect(),
    };
    to_js(&decoded)
}

/// Decodes each element of an array of capability bytes (at most [`MAX_CHECKED`]).
fn capabilities_arg(value: &JsValue) -> Result<Vec<Capability>, JsValue> {
    let all = bytes_array_arg("capabilities", value)?;
    if all.len() > MAX_CHECKED {
        return Err(Error::LimitExceeded {
            what: "capabilities",
            limit: MAX_CHECKED,
            got: all.len(),
        }
        .into());
    }
    Ok(all
        .iter()
        .map(|bytes| Capability::decode(bytes))
        .collect::<crate::Result<Vec<_>>>()?)
}

fn access_args(
    topic: &JsValue,
    agent: &JsValue,
    capabilities: &JsValue,
    now_ms: &JsValue,
) -> Result<(String, AgentId, Vec<Capability>, u64), JsValue> {
    Ok((
        string_arg("topic", topic)?,
        string_arg("agent", agent)?.parse::<AgentId>()?,
        capabilities_arg(capabilities)?,
        ms_arg("nowMs", now_ms)?,
    ))
}

#[wasm_bindgen(js_class = Capability)]
impl JsCapability {
    /// `issuer` grants `grant.audience` the `grant.rights` on `grant.topic` (every topic starting
    /// with it when `grant.prefix`) until `grant.expiresMs`: the capability's bytes.
    ///
    /// Errors: `BAD_INPUT` (shape, unknown field or right), `BAD_AGENT_ID`, `BAD_TOPIC`,
    /// `BAD_CAPABILITY` (no rights, an empty time window).
    pub fn grant(
        issuer: &JsIdentity,
        #[wasm_bindgen(unchecked_param_type = "CapabilityGrant")] grant: &JsValue,
    ) -> Result<Vec<u8>, JsValue> {
        let grant = grant_arg(grant)?;
        Ok(Capability::grant_with(&issuer.0, grant)?.encode())
    }

    /// `holder`, the audience of `parent` (capability bytes), passes on part of it: the bytes of
    /// a chain one link longer.
    ///
    /// Errors: those of `grant` and `decode`, `LIMIT_EXCEEDED` past four links, and
    /// `BAD_CAPABILITY` when `holder` is not `parent`'s audience, `parent` does not grant
    /// `delegate`, or the grant widens it.
    pub fn delegate(
        holder: &JsIdentity,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] parent: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "CapabilityGrant")] grant: &JsValue,
    ) -> Result<Vec<u8>, JsValue> {
        let parent = Capability::decode(&bytes_arg("parent", parent)?)?;
        let grant = grant_arg(grant)?;
        Ok(parent.delegate(&holder.0, grant)?.encode())
    }

    /// Decodes capability bytes, verifying every signature and chain rule.
    ///
    /// Errors: `BAD_INPUT`, `MALFORMED`, `TRAILING_BYTES`, `UNSUPPORTED_VERSION`,
    /// `LIMIT_EXCEEDED`, `BAD_PUBLIC_KEY`, `BAD_TOPIC`, `BAD_CAPABILITY`, `BAD_SIGNATURE`.
    #[wasm_bindgen(unchecked_return_type = "DecodedCapability")]
    pub fn decode(
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
    ) -> Result<JsValue, JsValue> {
        decoded_js(&Capability::decode(&bytes_arg("bytes", bytes)?)?)
    }

    /// The owner (agent id) of an owned topic `@<agent id>/…`, or `null` for an open topic.
    #[wasm_bindgen(js_name = topicOwner, unchecked_return_type = "string | null")]
    pub fn topic_owner(
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
    ) -> Result<JsValue, JsValue> {
        let topic = string_arg("topic", topic)?;
        Ok(capability::topic_owner(&topic).map_or(JsValue::NULL, |owner| owner.to_string().into()))
    }

    /// Returns when `agent` may read `topic` at `nowMs` holding `capabilities` (an array of
    /// capability bytes, at most 64); throws `NOT_AUTHORIZED` or `CAPABILITY_EXPIRED` otherwise.
    #[wasm_bindgen(js_name = mayRead)]
    pub fn may_read(
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] agent: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array[]")] capabilities: &JsValue,
        #[wasm_bindgen(js_name = nowMs, unchecked_param_type = "number")] now_ms: &JsValue,
    ) -> Result<(), JsValue> {
        let (topic, agent, caps, now) = access_args(topic, agent, capabilities, now_ms)?;
        Ok(capability::may_read(&topic, &agent, &caps, now)?)
    }

    /// The body of a `cap.present` op presenting `capability` (its bytes) to an owned topic:
    /// `client.publish(topic, "cap.present", body)` once, by the holder or by the topic's owner,
    /// before the holder's first write, so that every replica counts its writes (PROTOCOL.md
    /// 10.8).
    ///
    /// Errors: those of `decode`.
    pub fn presentation(
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] capability: &JsValue,
    ) -> Result<Vec<u8>, JsValue> {
        let capability = Capability::decode(&bytes_arg("capability", capability)?)?;
        Ok(Presentation::new(capability).encode())
    }

    /// The body of a `cap.revoke` op revoking link `index` (0, the root, by default) of
    /// `capability` (its bytes) in an owned topic: `client.publish(topic, "cap.revoke", body)`
    /// by the topic's owner, or by the link's signer (PROTOCOL.md 10.7).
    ///
    /// Errors: those of `decode`, and `BAD_INPUT` for an index past the chain's last link.
    pub fn revocation(
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] capability: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "number | undefined")] index: &JsValue,
    ) -> Result<Vec<u8>, JsValue> {
        let capability = Capability::decode(&bytes_arg("capability", capability)?)?;
        let index = match index.as_f64() {
            None if index.is_undefined() => 0,
            Some(n) if n.fract() == 0.0 && (0.0..=255.0).contains(&n) => n as usize,
            _ => return Err(bad_input("index must be a link index, 0 to 3")),
        };
        Ok(Revocation::new(capability, index)?.encode())
    }

    /// The body of a `topic.policy` op setting who may read an owned topic: `{ read: "public" }`
    /// lets every agent read it (no capability, no hello), `{ read: "private" }` takes that
    /// back. `client.publish(topic, "topic.policy", body)` by the topic's owner; anyone else's
    /// is refused `NOT_AUTHORIZED` (PROTOCOL.md 10.10). Writing is not changed.
    ///
    /// Errors: `BAD_INPUT` (not an object, an unknown field, a read rule other than "public" and
    /// "private").
    #[wasm_bindgen(js_name = topicPolicy)]
    pub fn topic_policy(
        #[wasm_bindgen(unchecked_param_type = "TopicPolicyInput")] policy: &JsValue,
    ) -> Result<Vec<u8>, JsValue> {
        if !policy.is_object() || js_sys::Array::is_array(policy) {
            return Err(bad_input("policy must be an object"));
        }
        for key in js_sys::Object::keys(policy.unchecked_ref::<js_sys::Object>()).iter() {
            if key.as_string().as_deref() != Some("read") {
                return Err(bad_input(format!("unknown policy field {key:?}")));
            }
        }
        let read = js_sys::Reflect::get(policy, &"read".into())?;
        let read: ReadRule = string_arg("read", &read)?.parse()?;
        Ok(TopicPolicy { read }.encode())
    }

    /// The `params` of a stock `y-websocket` provider for the private room guarded by the owned
    /// `topic` (the room named `topic`, or a room bridged to it): `{ cap, proof }`, the
    /// capabilities' lowercase hex joined by `,` (no `cap` when there are none: the owner) and
    /// a room proof by `holder` for `topic`, valid until `expiresMs` (PROTOCOL.md 8.7.1). The
    /// proof makes the URL a bearer token until then: keep it short and the URL on `wss://`.
    ///
    /// Errors: `BAD_INPUT`, `BAD_TOPIC`, `LIMIT_EXCEEDED` (more than 16), those of `decode`.
    #[wasm_bindgen(js_name = roomParams, unchecked_return_type = "RoomParams")]
    pub fn room_params(
        holder: &JsIdentity,
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array[]")] capabilities: &JsValue,
        #[wasm_bindgen(js_name = expiresMs, unchecked_param_type = "number")] expires_ms: &JsValue,
    ) -> Result<JsValue, JsValue> {
        let topic = string_arg("topic", topic)?;
        crate::op::validate_topic(&topic)?;
        let caps = capabilities_arg(capabilities)?;
        if caps.len() > MAX_ON_URL {
            return Err(Error::LimitExceeded {
                what: "capabilities on a URL",
                limit: MAX_ON_URL,
                got: caps.len(),
            }
            .into());
        }
        let proof =
            capability::RoomProof::sign(&holder.0, &topic, ms_arg("expiresMs", expires_ms)?);
        let params = js_sys::Object::new();
        if !caps.is_empty() {
            let hex: Vec<String> = caps.iter().map(|c| lower_hex(c.as_bytes())).collect();
            js_sys::Reflect::set(&params, &"cap".into(), &hex.join(",").into())?;
        }
        js_sys::Reflect::set(&params, &"proof".into(), &lower_hex(&proof.encode()).into())?;
        Ok(params.into())
    }

    /// As `mayRead`, for publishing.
    #[wasm_bindgen(js_name = mayWrite)]
    pub fn may_write(
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] agent: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array[]")] capabilities: &JsValue,
        #[wasm_bindgen(js_name = nowMs, unchecked_param_type = "number")] now_ms: &JsValue,
    ) -> Result<(), JsValue> {
        let (topic, agent, caps, now) = access_args(topic, agent, capabilities, now_ms)?;
        Ok(capability::may_write(&topic, &agent, &caps, now)?)
    }
}

#[wasm_bindgen(typescript_custom_section)]
const CAPABILITY_TYPES: &str = r#"
/** What `Capability.grant` and `Capability.delegate` sign. Unknown fields are refused. */
export interface CapabilityGrant {
  /** The agent id (64 lowercase hex) that receives the rights. */
  audience: string;
  /** A topic name, or a topic prefix when `prefix` is true. */
  topic: string;
  /** Cover every topic whose name starts with `topic` (byte for byte; end it with `/`). */
  prefix?: boolean;
  /** Any of "read", "write", "delegate"; not empty. */
  rights: ("read" | "write" | "delegate")[];
  /** The first millisecond (since the Unix epoch) at which the grant no longer holds. */
  expiresMs: number | bigint;
  /** The first millisecond at which it holds; 0 (the default) for no lower bound. */
  notBeforeMs?: number | bigint;
}

/** What `Capability.topicPolicy` encodes: who may read an owned topic. */
export interface TopicPolicyInput {
  /** "public": every agent, no capability or hello; "private": the owner and its capability
   * holders (every owned topic until its owner publishes a policy). */
  read: "public" | "private";
}

/** What `Capability.roomParams` returns: a stock y-websocket provider's `params`. */
export interface RoomParams {
  /** The capabilities, lowercase hex, joined by ","; absent when there are none. */
  cap?: string;
  /** The holder's room proof for the topic, lowercase hex. */
  proof: string;
}

/** One link of a capability chain, or the chain's effective grant. */
export interface CapabilityLink {
  issuer: string;
  audience: string;
  topic: string;
  prefix: boolean;
  rights: ("read" | "write" | "delegate")[];
  notBeforeMs: number | bigint;
  expiresMs: number | bigint;
}

/** A decoded, verified capability: the root's issuer, the last link's grant, every link. */
export interface DecodedCapability extends CapabilityLink {
  /** SHA-256 of the capability bytes, 64 lowercase hex. */
  id: string;
  /** The links, root first (1 to 4), each with its `hash` (`H(link)`, 64 lowercase hex): what
   * `Capability.revocation` revokes and a `capabilityRevoked` event names. */
  chain: (CapabilityLink & { hash: string })[];
}
"#;
