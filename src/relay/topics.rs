//! What the sequencer holds of each topic: the head it appends to and the replica it feeds,
//! recovered from any [`Store`].
//!
//! Each topic's replica is snapshotted into the store with the batch that moved it far enough
//! (see [`TopicState::snapshot_due`]) and again when the sequencer stops. At startup a replica
//! is restored from its snapshot and fed only the entries after it, instead of every entry of
//! the topic. The store is the truth: this is a cache of it, rebuilt from it whenever a write
//! fails.

use std::collections::HashMap;

use super::config::ReplicaRules;
use super::store::{Snapshot, Store, StoredHead};
use crate::entry::Entry;
use crate::error::Result;
use crate::log::sequencing::TopicHead;
use crate::replica::{Replica, ReplicaConfig};

/// One topic as the sequencer holds it.
///
/// Invariant: `replica` has seen exactly the entries under `head` (`replica.next_seq() ==
/// head.size()`), and the store's latest snapshot of it is at `snapshot_seq` (0: none).
#[derive(Debug)]
pub(crate) struct TopicState {
    /// What the next entry is appended to.
    pub(crate) head: TopicHead,
    /// The topic's replica, fed every entry as it is sequenced.
    pub(crate) replica: Replica,
    /// The `next_seq` of the replica's latest stored snapshot (0: none).
    pub(crate) snapshot_seq: u64,
}

impl TopicState {
    /// A topic with no entries yet.
    pub(crate) fn new(name: &str, rules: &ReplicaRules) -> Result<Self> {
        Ok(TopicState {
            head: TopicHead::default(),
            replica: Replica::new(name, rules.for_topic(name))?,
            snapshot_seq: 0,
        })
    }

    /// A snapshot of the replica if it moved at least `min_advance` entries past the stored
    /// one (the caller moves `snapshot_seq` once it is stored).
    pub(crate) fn snapshot_due(&self, topic: &str, min_advance: u64) -> Option<Snapshot> {
        let next_seq = self.replica.next_seq();
        (next_seq >= self.snapshot_seq.saturating_add(min_advance.max(1))).then(|| Snapshot {
            topic: topic.to_owned(),
            next_seq,
            state: self.replica.snapshot(),
        })
    }
}

/// The replica of topic `name` rebuilt from `store`: its latest snapshot, if it is usable (same
/// topic and configuration, not past the stored entries), plus the entries after it; otherwise
/// every stored entry. Returns the replica and the snapshot's `next_seq` (0: none).
pub(crate) fn rebuild_replica(
    store: &impl Store,
    name: &str,
    config: &ReplicaConfig,
    size: u64,
) -> Result<(Replica, u64)> {
    let fresh = Replica::new(name, config.clone())?;
    let (mut replica, snapshot_seq) = match store.replica_snapshot(name)? {
        Some((next_seq, state)) => match Replica::restore(&state) {
            Ok(restored)
                if restored.topic() == name
                    && restored.config() == fresh.config()
                    && restored.next_seq() == next_seq
                    && next_seq <= size =>
            {
                (restored, next_seq)
            }
            Ok(_) => {
                tracing::warn!(topic = name, "replica snapshot does not match; replaying");
                (fresh, 0)
            }
            Err(error) => {
                tracing::warn!(topic = name, %error, "replica snapshot unreadable; replaying");
                (fresh, 0)
            }
        },
        None => (fresh, 0),
    };
    store.scan_entries(name, replica.next_seq(), &mut |bytes| {
        // Stored entries were verified when sequenced.
        let entry = Entry::decode_unverified(bytes)?;
        replica.apply(&entry).map(|_| ())
    })?;
    Ok((replica, snapshot_seq))
}

/// Every topic as stored: its head, and its replica (with the rules `rules` give it) from its
/// snapshot and the entries after it.
pub(crate) fn load_topics(
    store: &mut impl Store,
    rules: &ReplicaRules,
) -> Result<HashMap<String, TopicState>> {
    let mut topics = HashMap::new();
    for stored in store.heads()? {
        let state = topic_state(store, &stored, rules)?;
        topics.insert(stored.topic, state);
    }
    Ok(topics)
}

/// One topic as stored now (`None`: it holds no entries), as [`load_topics`] loads each.
pub(crate) fn load_topic(
    store: &mut impl Store,
    topic: &str,
    rules: &ReplicaRules,
) -> Result<Option<TopicState>> {
    match store.head(topic)? {
        Some(stored) => topic_state(store, &stored, rules).map(Some),
        None => Ok(None),
    }
}

fn topic_state(
    store: &mut impl Store,
    stored: &StoredHead,
    rules: &ReplicaRules,
) -> Result<TopicState> {
    let config = rules.for_topic(&stored.topic);
    let (replica, snapshot_seq) =
        rebuild_replica(store, &stored.topic, &config, stored.head.size())?;
    Ok(TopicState {
        head: stored.head.clone(),
        replica,
        snapshot_seq,
    })
}
