//! The JS `ReplicaOp` class: typed builders and a decoder for replica op bodies.
//!
//! `ReplicaOp.claim({ resource, stake })` gives the canonical body bytes for an op of kind
//! `claim` (PROTOCOL.md section 6.2); `ReplicaOp.encode({ kind: 'claim', ... })` does the same
//! for any kind, and `ReplicaOp.decode(kind, body)` reads a body back into that object.

use js_sys::{Object, Reflect};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::convert::{agent_arg, bytes_arg, serialize_u64, string_arg, to_js, Fields};
use super::error::bad_input;
use crate::identity::lower_hex;
use crate::replica::ReplicaOp;

/// The fields of a replica op body, by kind, as [`ReplicaOp::decode`] gives them to JS. In JS an
/// op is one plain object `{ kind, ...fields }` (TypeScript `ReplicaOpInput`); serde writes this
/// enum as `{ [kind]: fields }` (externally tagged) and [`untagged`] moves the kind. (serde's
/// `tag = "kind"` would buffer through its generic `Content`.) Input objects are read field by
/// field instead ([`read_op`]): a derived `Deserialize` cost the `.wasm` about a copy of
/// serde-wasm-bindgen's struct reader per kind (BENCHMARKS.md, "Package size").
#[derive(Serialize)]
enum OpObject {
    #[serde(rename = "post")]
    Post { text: String },
    #[serde(rename = "vouch")]
    Vouch { subject: String, statement: String },
    #[serde(rename = "claim", rename_all = "camelCase")]
    Claim {
        resource: String,
        #[serde(serialize_with = "serialize_u64")]
        lease_ms: u64,
        #[serde(serialize_with = "serialize_u64")]
        stake: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        fence: Option<u64>,
    },
    #[serde(rename = "claim.release")]
    Release { resource: String },
    #[serde(rename = "claim.complete")]
    Complete { resource: String },
    #[serde(rename = "claim.fail")]
    Fail { resource: String },
    #[serde(rename = "task.post", rename_all = "camelCase")]
    TaskPost {
        task: String,
        #[serde(serialize_with = "serialize_u64")]
        reward: u64,
        #[serde(serialize_with = "serialize_u64")]
        deadline_ms: u64,
    },
    #[serde(rename = "mint")]
    Mint {
        to: String,
        #[serde(serialize_with = "serialize_u64")]
        amount: u64,
    },
    #[serde(rename = "transfer")]
    Transfer {
        to: String,
        #[serde(serialize_with = "serialize_u64")]
        amount: u64,
    },
    #[serde(rename = "guardians.set")]
    GuardiansSet { guardians: Vec<String> },
    #[serde(rename = "recovery.request", rename_all = "camelCase")]
    RecoveryRequest { agent: String, new_key: String },
    #[serde(rename = "recovery.approve", rename_all = "camelCase")]
    RecoveryApprove { agent: String, new_key: String },
    #[serde(rename = "recovery.veto", rename_all = "camelCase")]
    RecoveryVeto { new_key: String },
    #[serde(rename = "leader.act")]
    LeaderAct {
        #[serde(serialize_with = "serialize_u64")]
        window: u64,
        #[serde(serialize_with = "super::convert::serialize_bytes")]
        payload: Vec<u8>,
    },
}

/// Reads `{ kind, ...fields }` into the op it describes, field by field ([`Fields`]): unknown
/// fields are refused, absent optional ones take their defaults (`leaseMs`, `stake`, `reward`
/// 0; `payload` empty), agent ids are checked.
fn read_op(op: &JsValue) -> Result<ReplicaOp, JsValue> {
    let kind = match op.is_object() {
        true => Reflect::get(op, &JsValue::from_str("kind"))?.as_string(),
        false => None,
    };
    let Some(kind) = kind else {
        return Err(bad_input("a replica op must be an object with a kind"));
    };
    let names = field_names(&kind);
    if names.is_empty() {
        return Err(bad_input(format!(
            "replica op: unknown kind {kind:?}, expected one of {KINDS:?}"
        )));
    }
    let mut allowed = vec!["kind"];
    allowed.extend_from_slice(names);
    let f = Fields::new("replica op", op, &allowed)?;
    let agent = |name: &str| agent_arg(&f.string(name)?);
    Ok(match kind.as_str() {
        "post" => ReplicaOp::Post {
            text: f.string("text")?,
        },
        "vouch" => ReplicaOp::Vouch {
            subject: agent("subject")?,
            statement: f.string("statement")?,
        },
        "claim" => ReplicaOp::Claim {
            resource: f.string("resource")?,
            lease_ms: f.u64_or_default("leaseMs", 0)?,
            stake: f.u64_or_default("stake", 0)?,
            fence: f.opt_u64("fence")?,
        },
        "claim.release" => ReplicaOp::Release {
            resource: f.string("resource")?,
        },
        "claim.complete" => ReplicaOp::Complete {
            resource: f.string("resource")?,
        },
        "claim.fail" => ReplicaOp::Fail {
            resource: f.string("resource")?,
        },
        "task.post" => ReplicaOp::TaskPost {
            task: f.string("task")?,
            reward: f.u64_or_default("reward", 0)?,
            deadline_ms: f.u64("deadlineMs")?,
        },
        "mint" => ReplicaOp::Mint {
            to: agent("to")?,
            amount: f.u64("amount")?,
        },
        "transfer" => ReplicaOp::Transfer {
            to: agent("to")?,
            amount: f.u64("amount")?,
        },
        "guardians.set" => {
            let mut ids = f
                .required_strings("guardians")?
                .iter()
                .map(|g| agent_arg(g))
                .collect::<Result<Vec<_>, _>>()?;
            // The builder accepts any order; the body is canonical (ascending, no repeats).
            ids.sort_unstable();
            ids.dedup();
            ReplicaOp::GuardiansSet { guardians: ids }
        }
        "recovery.request" => ReplicaOp::RecoveryRequest {
            agent: agent("agent")?,
            new_key: agent("newKey")?,
        },
        "recovery.approve" => ReplicaOp::RecoveryApprove {
            agent: agent("agent")?,
            new_key: agent("newKey")?,
        },
        "recovery.veto" => ReplicaOp::RecoveryVeto {
            new_key: agent("newKey")?,
        },
        // "leader.act", the only kind left with fields (see `field_names`).
        _ => ReplicaOp::LeaderAct {
            window: f.u64("window")?,
            payload: f.opt_bytes("payload")?.unwrap_or_default(),
        },
    })
}

fn from_core(op: ReplicaOp) -> OpObject {
    match op {
        ReplicaOp::Post { text } => OpObject::Post { text },
        ReplicaOp::Vouch { subject, statement } => OpObject::Vouch {
            subject: subject.to_string(),
            statement,
        },
        ReplicaOp::Claim {
            resource,
            lease_ms,
            stake,
            fence,
        } => OpObject::Claim {
            resource,
            lease_ms,
            stake,
            fence,
        },
        ReplicaOp::Release { resource } => OpObject::Release { resource },
        ReplicaOp::Complete { resource } => OpObject::Complete { resource },
        ReplicaOp::Fail { resource } => OpObject::Fail { resource },
        ReplicaOp::TaskPost {
            task,
            reward,
            deadline_ms,
        } => OpObject::TaskPost {
            task,
            reward,
            deadline_ms,
        },
        ReplicaOp::Mint { to, amount } => OpObject::Mint {
            to: to.to_string(),
            amount,
        },
        ReplicaOp::Transfer { to, amount } => OpObject::Transfer {
            to: to.to_string(),
            amount,
        },
        ReplicaOp::GuardiansSet { guardians } => OpObject::GuardiansSet {
            guardians: guardians.iter().map(ToString::to_string).collect(),
        },
        ReplicaOp::RecoveryRequest { agent, new_key } => OpObject::RecoveryRequest {
            agent: agent.to_string(),
            new_key: new_key.to_string(),
        },
        ReplicaOp::RecoveryApprove { agent, new_key } => OpObject::RecoveryApprove {
            agent: agent.to_string(),
            new_key: new_key.to_string(),
        },
        ReplicaOp::RecoveryVeto { new_key } => OpObject::RecoveryVeto {
            new_key: new_key.to_string(),
        },
        ReplicaOp::LeaderAct { window, payload } => OpObject::LeaderAct { window, payload },
    }
}

/// `{ [kind]: fields }`, the form serde writes [`OpObject`] in, as `{ kind, ...fields }`.
fn untagged(tagged: &JsValue) -> Result<JsValue, JsValue> {
    let kind = Object::keys(tagged.unchecked_ref::<Object>()).get(0);
    let op = Object::new();
    Reflect::set(&op, &JsValue::from_str("kind"), &kind)?;
    let fields = Reflect::get(tagged, &kind)?;
    Ok(Object::assign(&op, fields.unchecked_ref()).into())
}

/// The kinds [`read_op`] reads: every replica kind.
const KINDS: [&str; 14] = crate::replica::ops::kind::ALL;

/// The JS field names of each kind's op; none for a kind the replica does not interpret.
fn field_names(kind: &str) -> &'static [&'static str] {
    match kind {
        "post" => &["text"],
        "vouch" => &["subject", "statement"],
        "claim" => &["resource", "leaseMs", "stake", "fence"],
        "claim.release" | "claim.complete" | "claim.fail" => &["resource"],
        "task.post" => &["task", "reward", "deadlineMs"],
        "mint" | "transfer" => &["to", "amount"],
        "guardians.set" => &["guardians"],
        "recovery.request" | "recovery.approve" => &["agent", "newKey"],
        "recovery.veto" => &["newKey"],
        "leader.act" => &["window", "payload"],
        _ => &[],
    }
}

fn encode_object(op: &JsValue) -> Result<Vec<u8>, JsValue> {
    Ok(read_op(op)?.encode()?)
}

fn encode_kind(kind: &str, fields: &JsValue) -> Result<Vec<u8>, JsValue> {
    if !fields.is_object() {
        return Err(bad_input(format!("{kind} fields must be an object")));
    }
    let object = js_sys::Object::assign(&js_sys::Object::new(), fields.unchecked_ref());
    js_sys::Reflect::set(
        &object,
        &JsValue::from_str("kind"),
        &JsValue::from_str(kind),
    )?;
    encode_object(&object.into())
}

/// Builders and a decoder for the bodies of replica ops (static methods only).
#[wasm_bindgen(js_name = ReplicaOp)]
pub struct JsReplicaOp {}

// The builders' docs are written `#[doc = "..."]`: a `///` comment passed through a
// `macro_rules!` matcher reaches wasm-bindgen as a raw string, which it copies into the `.d.ts`
// with its `r"` prefix.
macro_rules! builders {
    ($( $(#[$doc:meta])* $js:literal => $name:ident = $kind:literal : $ty:literal ),* $(,)?) => {
        #[wasm_bindgen(js_class = ReplicaOp)]
        impl JsReplicaOp {
            /// The canonical body of `op` (`{ kind, ...fields }`, TypeScript `ReplicaOpInput`).
            pub fn encode(
                #[wasm_bindgen(unchecked_param_type = "ReplicaOpInput")] op: &JsValue,
            ) -> Result<Vec<u8>, JsValue> {
                encode_object(op)
            }

            /// Reads the body of an op of `kind` back into `{ kind, ...fields }`.
            /// Errors: `BAD_KIND` for a kind the replica does not interpret, `MALFORMED`,
            /// `TRAILING_BYTES`, `UNSUPPORTED_VERSION`, `NON_CANONICAL`, `BAD_PUBLIC_KEY`.
            #[wasm_bindgen(unchecked_return_type = "ReplicaOpInput")]
            pub fn decode(
                #[wasm_bindgen(unchecked_param_type = "string")] kind: &JsValue,
                #[wasm_bindgen(unchecked_param_type = "Uint8Array")] body: &JsValue,
            ) -> Result<JsValue, JsValue> {
                let kind = string_arg("kind", kind)?;
                let op = ReplicaOp::decode(&kind, &bytes_arg("body", body)?)?;
                untagged(&to_js(&from_core(op))?)
            }

            /// The hex of a body, for logs and tests.
            #[wasm_bindgen(js_name = toHex)]
            pub fn to_hex(
                #[wasm_bindgen(unchecked_param_type = "Uint8Array")] body: &JsValue,
            ) -> Result<String, JsValue> {
                Ok(lower_hex(&bytes_arg("body", body)?))
            }

            $(
                $(#[$doc])*
                #[wasm_bindgen(js_name = $js)]
                pub fn $name(
                    #[wasm_bindgen(unchecked_param_type = $ty)] fields: &JsValue,
                ) -> Result<Vec<u8>, JsValue> {
                    encode_kind($kind, fields)
                }
            )*
        }
    };
}

builders! {
    #[doc = "`post`: `{ text }`."]
    "post" => post = "post" : "{ text: string }",
    #[doc = "`vouch`: `{ subject, statement }`."]
    "vouch" => vouch = "vouch" : "{ subject: string; statement: string }",
    #[doc = "`claim`: `{ resource, leaseMs?, stake?, fence? }`."]
    "claim" => claim = "claim" : "{ resource: string; leaseMs?: number | bigint; stake?: number | bigint; fence?: number | bigint }",
    #[doc = "`claim.release`: `{ resource }`."]
    "release" => release = "claim.release" : "{ resource: string }",
    #[doc = "`claim.complete`: `{ resource }`."]
    "complete" => complete = "claim.complete" : "{ resource: string }",
    #[doc = "`claim.fail`: `{ resource }`."]
    "fail" => fail = "claim.fail" : "{ resource: string }",
    #[doc = "`task.post`: `{ task, reward?, deadlineMs }`."]
    "taskPost" => task_post = "task.post" : "{ task: string; reward?: number | bigint; deadlineMs: number | bigint }",
    #[doc = "`mint`: `{ to, amount }` (issuers only)."]
    "mint" => mint = "mint" : "{ to: string; amount: number | bigint }",
    #[doc = "`transfer`: `{ to, amount }`."]
    "transfer" => transfer = "transfer" : "{ to: string; amount: number | bigint }",
    #[doc = "`guardians.set`: `{ guardians }` (any order; the body sorts them)."]
    "guardiansSet" => guardians_set = "guardians.set" : "{ guardians: string[] }",
    #[doc = "`recovery.request`: `{ agent, newKey }`."]
    "recoveryRequest" => recovery_request = "recovery.request" : "{ agent: string; newKey: string }",
    #[doc = "`recovery.approve`: `{ agent, newKey }`."]
    "recoveryApprove" => recovery_approve = "recovery.approve" : "{ agent: string; newKey: string }",
    #[doc = "`recovery.veto`: `{ newKey }`."]
    "recoveryVeto" => recovery_veto = "recovery.veto" : "{ newKey: string }",
    #[doc = "`leader.act`: `{ window, payload? }`."]
    "leaderAct" => leader_act = "leader.act" : "{ window: number | bigint; payload?: Uint8Array }",
}
