//! Shared helpers of the replica tests: deterministic identities and a relay-like log builder.

#![allow(dead_code)]

pub mod scenarios;

use std::collections::HashMap;

use ants_coord::replica::ReplicaOp;
use ants_coord::{AgentId, Entry, Identity, OpDraft, SignedOp};

/// The identity with seed `[n; 32]`.
pub fn agent(n: u8) -> Identity {
    Identity::from_seed(&[n; 32]).unwrap()
}

/// Builds a topic's entries as a relay would: consecutive seqs, per-author counters.
pub struct Log {
    pub topic: String,
    pub now_ms: u64,
    pub entries: Vec<Entry>,
    counters: HashMap<AgentId, u64>,
}

impl Log {
    pub fn new(topic: &str, start_ms: u64) -> Self {
        Log {
            topic: topic.into(),
            now_ms: start_ms,
            entries: Vec::new(),
            counters: HashMap::new(),
        }
    }

    /// Moves the relay clock forward by `ms`.
    pub fn wait(&mut self, ms: u64) -> &mut Self {
        self.now_ms += ms;
        self
    }

    /// Signs `op` as `who` and sequences it.
    pub fn push(&mut self, who: &Identity, op: &ReplicaOp) -> Entry {
        self.push_raw(who, op.kind(), op.encode().unwrap())
    }

    /// Signs an op of any kind and body and sequences it.
    pub fn push_raw(&mut self, who: &Identity, kind: &str, body: Vec<u8>) -> Entry {
        let counter = self.counters.entry(who.agent_id()).or_insert(0);
        let op = SignedOp::sign(
            who,
            OpDraft {
                topic: self.topic.clone(),
                kind: kind.into(),
                counter: *counter,
                time_ms: self.now_ms,
                deps: vec![],
                body,
            },
        )
        .unwrap();
        *counter += 1;
        let entry = Entry::new(self.entries.len() as u64, self.now_ms, op);
        self.entries.push(entry.clone());
        entry
    }
}
