//! The JS `Replica` class: one topic's coordination state, folded from verified entries.

use std::cell::{Ref, RefCell};

use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::convert::{agent_arg, serialize_u64, to_js, u64_arg, u64_value, Fields};
use super::convert::{bytes_arg, string_arg};
use super::error::bad_input;
use crate::election::{ElectionMode, WeightedCandidate};
use crate::entry::Entry;
use crate::identity::lower_hex;
use crate::replica::{FeedContent, Replica, ReplicaConfig, SlashPolicy};

/// The fields of a JS `ReplicaConfig` object; every one optional (defaults as in the core).
const CONFIG_FIELDS: [&str; 9] = [
    "issuers",
    "defaultLeaseMs",
    "maxLeaseMs",
    "recoveryDelayMs",
    "slashPolicy",
    "electionWindowMs",
    "electionMode",
    "candidates",
    "feedCapacity",
];

/// Reads one `{ agentId, weight? }` of `config.candidates`.
fn candidate_arg(index: usize, value: &JsValue) -> Result<WeightedCandidate, JsValue> {
    let what = format!("config: candidates[{index}]");
    let fields = Fields::new(&what, value, &["agentId", "weight"])?;
    Ok(WeightedCandidate {
        agent: agent_arg(&fields.string("agentId")?)?,
        weight: fields.opt_u64("weight")?.unwrap_or(1),
    })
}

/// Reads a config: canonical bytes (`Uint8Array`), a plain object, or `undefined` for defaults.
pub(crate) fn config_arg(config: &JsValue) -> Result<ReplicaConfig, JsValue> {
    if config.is_undefined() || config.is_null() {
        return Ok(ReplicaConfig::default());
    }
    if config.is_instance_of::<js_sys::Uint8Array>() {
        return Ok(ReplicaConfig::decode(&bytes_arg("config", config)?)?);
    }
    if !config.is_object() {
        return Err(bad_input(
            "config must be an object or canonical config bytes",
        ));
    }
    let fields = Fields::new("config", config, &CONFIG_FIELDS)?;
    let defaults = ReplicaConfig::default();
    let config = ReplicaConfig {
        issuers: fields
            .strings("issuers")?
            .iter()
            .map(|id| agent_arg(id))
            .collect::<Result<_, _>>()?,
        default_lease_ms: fields
            .opt_u64("defaultLeaseMs")?
            .unwrap_or(defaults.default_lease_ms),
        max_lease_ms: fields
            .opt_u64("maxLeaseMs")?
            .unwrap_or(defaults.max_lease_ms),
        recovery_delay_ms: fields
            .opt_u64("recoveryDelayMs")?
            .unwrap_or(defaults.recovery_delay_ms),
        slash_policy: match fields.opt_string("slashPolicy")?.as_deref() {
            None | Some("burn") => SlashPolicy::Burn,
            Some("poster") => SlashPolicy::Poster,
            Some(other) => {
                return Err(bad_input(format!(
                    "slashPolicy {other:?}: 'burn' or 'poster'"
                )))
            }
        },
        election_window_ms: fields
            .opt_u64("electionWindowMs")?
            .unwrap_or(defaults.election_window_ms),
        election_mode: match fields.opt_string("electionMode")?.as_deref() {
            None | Some("priority") => ElectionMode::Priority,
            Some("weighted") => ElectionMode::Weighted,
            Some(other) => {
                return Err(bad_input(format!(
                    "electionMode {other:?}: 'priority' or 'weighted'"
                )))
            }
        },
        candidates: match fields.array("candidates")? {
            Some(candidates) => candidates
                .iter()
                .enumerate()
                .map(|(index, value)| candidate_arg(index, &value))
                .collect::<Result<_, JsValue>>()?,
            None => Vec::new(),
        },
        feed_capacity: fields
            .opt_u32("feedCapacity")?
            .unwrap_or(defaults.feed_capacity),
    };
    Ok(config.canonical()?)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClaimView {
    resource: String,
    holder: String,
    #[serde(serialize_with = "serialize_u64")]
    stake: u64,
    #[serde(serialize_with = "serialize_u64")]
    seq: u64,
    #[serde(serialize_with = "serialize_u64")]
    lease_until_ms: u64,
}

/// `ReplicaSupply`: the core's totals, each a number or a `BigInt` past 2^53.
#[derive(Serialize)]
struct SupplyView {
    #[serde(serialize_with = "serialize_u64")]
    minted: u64,
    #[serde(serialize_with = "serialize_u64")]
    burned: u64,
    #[serde(serialize_with = "serialize_u64")]
    circulating: u64,
    #[serde(serialize_with = "serialize_u64")]
    escrowed: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FeedView {
    #[serde(serialize_with = "serialize_u64")]
    seq: u64,
    author: String,
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    op_id: Option<String>,
}

/// One topic's replica. Feed it the topic's entries in sequence order with `apply`; every
/// replica that applied the same entries has the same `stateHash()`.
///
/// Every method takes `&self`, and the state is borrowed only inside one call into the core,
/// never while a compensation handler runs: a handler may read the replica, apply the next
/// entry to it and register handlers. (With `&mut self`, wasm-bindgen would hold the object
/// for the whole of `apply`, and any call on it from a handler would throw.)
#[wasm_bindgen(js_name = Replica)]
pub struct JsReplica {
    replica: RefCell<Replica>,
    /// Compensation handlers by op kind (`onCompensation`).
    handlers: RefCell<Vec<(String, js_sys::Function)>>,
}

impl JsReplica {
    fn wrap(replica: Replica) -> Self {
        JsReplica {
            replica: RefCell::new(replica),
            handlers: RefCell::new(Vec::new()),
        }
    }

    /// The state, to read. Never fails: the only mutable borrow lasts one core call, which
    /// runs no JS.
    fn state(&self) -> Ref<'_, Replica> {
        self.replica.borrow()
    }
}

#[wasm_bindgen(js_class = Replica)]
impl JsReplica {
    /// An empty replica of `topic`. `config`: a `ReplicaConfig` object, its canonical bytes, or
    /// `undefined` for the defaults.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "string")] topic: &JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "ReplicaConfig | Uint8Array")]
        config: &JsValue,
    ) -> Result<JsReplica, JsValue> {
        let topic = string_arg("topic", topic)?;
        Ok(JsReplica::wrap(Replica::new(&topic, config_arg(config)?)?))
    }

    /// The canonical bytes of a config object (what a state hash covers).
    #[wasm_bindgen(js_name = encodeConfig)]
    pub fn encode_config(
        #[wasm_bindgen(unchecked_param_type = "ReplicaConfig")] config: &JsValue,
    ) -> Result<Vec<u8>, JsValue> {
        Ok(config_arg(config)?.encode()?)
    }

    /// Verifies and folds the next entry (its canonical bytes); the events it caused, as plain
    /// objects (`ReplicaEvent[]`). Throws `WRONG_TOPIC` / `OUT_OF_ORDER` (nothing changed) or a
    /// decoding / signature error.
    #[wasm_bindgen(unchecked_return_type = "ReplicaEvent[]")]
    pub fn apply(
        &self,
        #[wasm_bindgen(js_name = entryBytes, unchecked_param_type = "Uint8Array")]
        entry_bytes: &JsValue,
    ) -> Result<JsValue, JsValue> {
        let entry = Entry::decode(&bytes_arg("entryBytes", entry_bytes)?)?;
        let events = self
            .replica
            .try_borrow_mut()
            .map_err(|_| bad_input("the replica is busy: apply was called while it was read"))?
            .apply(&entry)?;
        let objects = to_js(&events)?;
        if self.handlers.borrow().is_empty() {
            return Ok(objects);
        }
        let array: &js_sys::Array = objects.unchecked_ref();
        for (event, object) in events.iter().zip(array.iter()) {
            let crate::replica::Event::Compensation { kind, .. } = event else {
                continue;
            };
            // The handlers of this moment, called with nothing borrowed: one registered by a
            // handler is called from the next compensation on.
            let handlers: Vec<js_sys::Function> = self
                .handlers
                .borrow()
                .iter()
                .filter(|(k, _)| k == kind)
                .map(|(_, handler)| handler.clone())
                .collect();
            for handler in handlers {
                handler.call1(&JsValue::UNDEFINED, &object)?;
            }
        }
        Ok(objects)
    }

    /// Registers `handler(event)` for `compensation` events of op `kind` (e.g. `claim`): called
    /// by `apply`, after the entry is applied, once per compensation in entry order. The loser's
    /// application undoes there what it did optimistically. A handler may use the replica: read
    /// it, apply the next entry, register or remove handlers (from the next compensation on).
    /// A handler that throws makes `apply` throw after the state has changed (the entry stays
    /// applied).
    #[wasm_bindgen(js_name = onCompensation)]
    pub fn on_compensation(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] kind: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "(event: CompensationEvent) => void")]
        handler: JsValue,
    ) -> Result<(), JsValue> {
        let kind = string_arg("kind", kind)?;
        let handler: js_sys::Function = handler
            .dyn_into()
            .map_err(|_| bad_input("handler must be a function"))?;
        self.handlers.borrow_mut().push((kind, handler));
        Ok(())
    }

    /// Removes every compensation handler of `kind`.
    #[wasm_bindgen(js_name = offCompensation)]
    pub fn off_compensation(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] kind: &JsValue,
    ) -> Result<(), JsValue> {
        let kind = string_arg("kind", kind)?;
        self.handlers.borrow_mut().retain(|(k, _)| *k != kind);
        Ok(())
    }

    /// The election among the configured candidates at `nowMs`:
    /// `{ leader, window, startsAtMs, endsAtMs, ranking }`. Throws `NO_CANDIDATES` if none.
    #[wasm_bindgen(unchecked_return_type = "LeaderElection")]
    pub fn leader(
        &self,
        #[wasm_bindgen(js_name = nowMs, unchecked_param_type = "number | bigint")] now_ms: &JsValue,
    ) -> Result<JsValue, JsValue> {
        let election = self.state().leader(u64_arg("nowMs", now_ms)?)?;
        let out = js_sys::Object::new();
        let set = |k: &str, v: JsValue| js_sys::Reflect::set(&out, &JsValue::from_str(k), &v);
        set("leader", JsValue::from_str(&election.leader.to_string()))?;
        set("window", u64_value(election.window))?;
        set("startsAtMs", u64_value(election.starts_at_ms))?;
        set("endsAtMs", u64_value(election.ends_at_ms))?;
        let ranking: js_sys::Array = election
            .ranking
            .iter()
            .map(|s| JsValue::from_str(&s.agent.to_string()))
            .collect();
        set("ranking", ranking.into())?;
        Ok(out.into())
    }

    /// The agent holding `resource`, or `undefined`.
    #[wasm_bindgen(js_name = claimHolder)]
    pub fn claim_holder(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] resource: &JsValue,
    ) -> Result<Option<String>, JsValue> {
        let resource = string_arg("resource", resource)?;
        Ok(self.state().claim_holder(&resource).map(|a| a.to_string()))
    }

    /// The claim on `resource` (`{ resource, holder, stake, seq, leaseUntilMs }`) or `undefined`.
    #[wasm_bindgen(unchecked_return_type = "ReplicaClaim | undefined")]
    pub fn claim(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] resource: &JsValue,
    ) -> Result<JsValue, JsValue> {
        let resource = string_arg("resource", resource)?;
        match self.state().claim(&resource) {
            None => Ok(JsValue::UNDEFINED),
            Some(c) => to_js(&ClaimView {
                resource: resource.clone(),
                holder: c.holder.to_string(),
                stake: c.stake,
                seq: c.seq,
                lease_until_ms: c.lease_until_ms,
            }),
        }
    }

    /// The free balance of the agent `agentId` names (its id, or a current or retired key).
    #[wasm_bindgen(unchecked_return_type = "number | bigint")]
    pub fn balance(
        &self,
        #[wasm_bindgen(js_name = agentId, unchecked_param_type = "string")] agent_id: &JsValue,
    ) -> Result<JsValue, JsValue> {
        let agent = agent_arg(&string_arg("agentId", agent_id)?)?;
        Ok(u64_value(self.state().balance(&agent)))
    }

    /// `{ minted, burned, circulating, escrowed }`.
    #[wasm_bindgen(unchecked_return_type = "ReplicaSupply")]
    pub fn supply(&self) -> Result<JsValue, JsValue> {
        let supply = self.state().supply();
        to_js(&SupplyView {
            minted: supply.minted,
            burned: supply.burned,
            circulating: supply.circulating,
            escrowed: supply.escrowed,
        })
    }

    /// The guardians of the agent `agentId` names.
    pub fn guardians(
        &self,
        #[wasm_bindgen(js_name = agentId, unchecked_param_type = "string")] agent_id: &JsValue,
    ) -> Result<Vec<String>, JsValue> {
        let agent = agent_arg(&string_arg("agentId", agent_id)?)?;
        Ok(self
            .state()
            .guardians(&agent)
            .iter()
            .map(ToString::to_string)
            .collect())
    }

    /// The key that signs for the agent `agentId` names now.
    #[wasm_bindgen(js_name = currentKey)]
    pub fn current_key(
        &self,
        #[wasm_bindgen(js_name = agentId, unchecked_param_type = "string")] agent_id: &JsValue,
    ) -> Result<String, JsValue> {
        let agent = agent_arg(&string_arg("agentId", agent_id)?)?;
        Ok(self.state().current_key(&agent).to_string())
    }

    /// The feed: posts, vouches and ops of unknown kinds, oldest first.
    #[wasm_bindgen(unchecked_return_type = "ReplicaFeedItem[]")]
    pub fn feed(&self) -> Result<JsValue, JsValue> {
        let items: Vec<FeedView> = self
            .state()
            .feed()
            .map(|item| {
                let base = FeedView {
                    seq: item.seq,
                    author: item.author.to_string(),
                    kind: String::new(),
                    text: None,
                    subject: None,
                    op_id: None,
                };
                match &item.content {
                    FeedContent::Post { text } => FeedView {
                        kind: "post".into(),
                        text: Some(text.clone()),
                        ..base
                    },
                    FeedContent::Vouch { subject, statement } => FeedView {
                        kind: "vouch".into(),
                        text: Some(statement.clone()),
                        subject: Some(subject.to_string()),
                        ..base
                    },
                    FeedContent::Other { kind, op_id } => FeedView {
                        kind: kind.clone(),
                        op_id: Some(op_id.to_string()),
                        ..base
                    },
                }
            })
            .collect();
        to_js(&items)
    }

    /// The seq of the next entry to apply.
    #[wasm_bindgen(getter, js_name = nextSeq, unchecked_return_type = "U64")]
    pub fn next_seq(&self) -> JsValue {
        u64_value(self.state().next_seq())
    }

    /// The replica's clock: the largest relay time applied.
    #[wasm_bindgen(getter, js_name = nowMs, unchecked_return_type = "U64")]
    pub fn now_ms(&self) -> JsValue {
        u64_value(self.state().now_ms())
    }

    /// The topic.
    #[wasm_bindgen(getter)]
    pub fn topic(&self) -> String {
        self.state().topic().to_owned()
    }

    /// SHA-256 of the snapshot, 64 lowercase hex characters.
    #[wasm_bindgen(js_name = stateHash)]
    pub fn state_hash(&self) -> String {
        lower_hex(&self.state().state_hash())
    }

    /// The canonical state bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        self.state().snapshot()
    }

    /// A replica rebuilt from `snapshot()` bytes (refuses any other spelling).
    pub fn restore(
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] snapshot: &JsValue,
    ) -> Result<JsReplica, JsValue> {
        Ok(JsReplica::wrap(Replica::restore(&bytes_arg(
            "snapshot", snapshot,
        )?)?))
    }
}
