//! Fan-out of committed entries to subscribers, pull-style.
//!
//! The durability thread appends each batch here once it is durable (synced) and wakes the
//! connections watching the topic; the head never passes what is durable, and reads from
//! storage stay below it. A woken connection *pulls* the entries it still owes its peer from
//! the recent-entry cache (or, when it has fallen further behind, from storage), so a slow
//! subscriber costs nothing but its own cursor: the hub never queues entries per subscriber,
//! never waits for one, and its memory is bounded by the cache.
//!
//! The cache is bounded in entries and in bytes per topic (`[limits] cache_per_topic`,
//! `cache_bytes_per_topic`) and in bytes over all topics (`cache_bytes`): past the total, the
//! topics holding the most bytes give up their oldest entries first (down to 7/8 of the total,
//! so that a cache under steady pressure is not searched on every append). An evicted entry
//! costs a subscriber that still owes it a read from storage, nothing else.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::metrics::Metrics;
use crate::capability::authority::kind;
use crate::capability::owned::OWNED_TOPIC_SIGIL;
use crate::capability::{
    topic_owner, ReadRule, Revocation, RevokedLink, RevokedLinks, TopicPolicy,
};
use crate::entry::Entry;
use crate::log::{empty_root, Hash};

/// One committed entry as the hub keeps it.
#[derive(Debug, Clone)]
pub struct CachedEntry {
    /// The sequence number.
    pub seq: u64,
    /// The canonical entry bytes.
    pub bytes: Arc<[u8]>,
    /// When the sequencer committed it, for the fan-out lag metric (`None` for an entry read
    /// back from storage for a replay: its lag is not the live path's).
    pub committed_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct TopicFeed {
    /// The number of committed entries.
    head: u64,
    /// The most recent entries, ending at `head - 1`.
    recent: VecDeque<CachedEntry>,
    /// The bytes of the entries in `recent`.
    recent_bytes: usize,
    /// Connections to wake on new entries.
    watchers: Vec<Weak<Notify>>,
    /// The Merkle root over the `head` committed entries (`None` until known: empty tree).
    root: Option<Hash>,
    /// When entries were last appended (`None`: never since the relay started).
    appended_at: Option<Instant>,
}

/// The fan-out hub shared by the sequencer and every connection.
#[derive(Debug)]
pub struct Hub {
    topics: Mutex<HashMap<String, TopicFeed>>,
    /// Signalled on every append, for [`Hub::wait_for`].
    grown: Condvar,
    cache_per_topic: usize,
    cache_bytes_per_topic: usize,
    cache_bytes: usize,
    /// The bytes of every cached entry (changed under the `topics` lock; read without it).
    cached_bytes: AtomicU64,
    /// Where `cached_bytes` is reported (`ants_relay_cache_bytes`).
    metrics: Option<Arc<Metrics>>,
    /// The links revoked in each owned topic that has any (PROTOCOL.md 10.7): who may no longer
    /// be fanned out to. Restored from the replicas at start, then kept by [`Hub::append`] from
    /// the `cap.revoke` entries it is given, with the replica's pruning, so it holds what the
    /// topic's replica holds: at most [`crate::capability::authority::MAX_REVOKED`] per topic.
    revoked: RwLock<HashMap<String, Arc<RevokedLinks>>>,
    /// The owned topics whose owner made them public, or public and then private again
    /// (PROTOCOL.md 10.10): one value per such topic. Restored from the replicas at start, then
    /// kept by [`Hub::append`] from the `topic.policy` entries it is given.
    read_rules: RwLock<HashMap<String, ReadState>>,
}

/// An owned topic's read rule as the relay follows it in the log (PROTOCOL.md 10.10). A topic
/// the hub holds none for is private, and has been so for every reader it has now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadState {
    /// Every agent may read it.
    Public,
    /// Private again from this seq on: the seq of the first `private` policy after a `public`
    /// one. A reader that subscribed while it was public is owed the entries below it, then its
    /// subscription ends, as a revocation ends one (10.6).
    PrivateSince(u64),
}

/// What the entry cache may hold (`[limits] cache_per_topic`, `cache_bytes_per_topic`,
/// `cache_bytes`).
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Entries per topic.
    pub entries_per_topic: usize,
    /// Bytes of entries per topic.
    pub bytes_per_topic: usize,
    /// Bytes of entries over all topics.
    pub bytes: usize,
}

impl Hub {
    /// A hub keeping the last `cache_per_topic` entries of each topic in memory (bounded in
    /// entries only; see [`Hub::with_limits`]).
    pub fn new(cache_per_topic: usize) -> Self {
        Hub::with_limits(
            CacheLimits {
                entries_per_topic: cache_per_topic,
                bytes_per_topic: usize::MAX,
                bytes: usize::MAX,
            },
            None,
        )
    }

    /// A hub whose entry cache stays within `limits`, reporting its size to `metrics`.
    pub fn with_limits(limits: CacheLimits, metrics: Option<Arc<Metrics>>) -> Self {
        Hub {
            topics: Mutex::new(HashMap::new()),
            grown: Condvar::new(),
            cache_per_topic: limits.entries_per_topic.max(1),
            cache_bytes_per_topic: limits.bytes_per_topic,
            cache_bytes: limits.bytes,
            cached_bytes: AtomicU64::new(0),
            metrics,
            revoked: RwLock::default(),
            read_rules: RwLock::default(),
        }
    }

    /// Records `topic`'s read rule at start, from the topic's replica (PROTOCOL.md 10.10); later
    /// `topic.policy` entries are noted by [`Hub::append`]. No reader is subscribed yet, so a
    /// private topic needs no record. A rule the hub noted already wins: on a cluster a
    /// follower may have fed it entries before the replicas were loaded, and what it noted is
    /// the rule at the head it serves.
    pub fn set_read_rule(&self, topic: &str, rule: ReadRule) {
        if rule == ReadRule::Public {
            self.read_rules
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(topic.to_owned())
                .or_insert(ReadState::Public);
        }
    }

    /// The read rule of the owned `topic` as the log set it (`None`: private, and never public
    /// for any reader it has now).
    pub fn read_state(&self, topic: &str) -> Option<ReadState> {
        self.read_rules
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(topic)
            .copied()
    }

    /// Records the read rules that the `topic.policy` entries among `entries` set. As for
    /// revocations, the log is the relay's own (the sequencer admitted each policy by the
    /// topic's rules); a policy is only taken from an op its owner's key signed, so that none
    /// a replica would not count (a rotated-away key's, 6.4.5) ever opens the topic here.
    fn note_policies(&self, topic: &str, entries: &[CachedEntry]) {
        let found: Vec<(u64, ReadRule)> = entries
            .iter()
            .filter(|entry| kind_of(&entry.bytes) == Some(kind::POLICY.as_bytes()))
            .filter_map(|entry| policy_in(topic, entry))
            .collect();
        if found.is_empty() {
            return;
        }
        let mut rules = self
            .read_rules
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (seq, read) in found {
            let now = rules.get(topic).copied();
            let next = match (read, now) {
                (ReadRule::Public, _) => Some(ReadState::Public),
                (ReadRule::Private, Some(ReadState::Public)) => Some(ReadState::PrivateSince(seq)),
                // Private again while private: the seq it became so stays.
                (ReadRule::Private, kept) => kept,
            };
            if let Some(next) = next {
                rules.insert(topic.to_owned(), next);
            }
        }
    }

    /// Adds the links revoked in `topic` so far (PROTOCOL.md 10.7) to what the hub recorded: at
    /// start, from the topic's replica; later entries are noted by [`Hub::append`]. Nothing the
    /// hub noted is dropped: on a cluster a follower may have fed the hub entries past the
    /// replica's before the replicas were loaded, and a revocation is never undone.
    pub fn set_revoked(&self, topic: &str, links: &RevokedLinks) {
        if links.is_empty() {
            return;
        }
        let mut revoked = self
            .revoked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::make_mut(revoked.entry(topic.to_owned()).or_default()).absorb(links);
    }

    /// Records the links that the `cap.revoke` entries among `entries` revoke. The log is the
    /// relay's own (its sequencer, or one of its cluster's, admitted each revocation by the
    /// topic's rules), so each is recorded as the replica records it; one that does not decode
    /// (never in an honest log) is skipped.
    fn note_revocations(&self, topic: &str, entries: &[CachedEntry]) {
        if !topic.starts_with(OWNED_TOPIC_SIGIL) {
            return;
        }
        let found: Vec<_> = entries
            .iter()
            .filter(|entry| kind_of(&entry.bytes) == Some(kind::REVOKE.as_bytes()))
            .filter_map(|entry| revocation_in(topic, entry))
            .collect();
        if found.is_empty() {
            return;
        }
        let mut revoked = self
            .revoked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let links = revoked.entry(topic.to_owned()).or_default();
        for (hash, link, now_ms) in found {
            Arc::make_mut(links).record(hash, link, now_ms);
        }
    }

    /// The links revoked in `topic` (`None`: none).
    pub fn revoked(&self, topic: &str) -> Option<Arc<RevokedLinks>> {
        self.revoked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(topic)
            .cloned()
    }

    /// The bytes of the entries cached over all topics (`ants_relay_cache_bytes`).
    pub fn cached_bytes(&self) -> u64 {
        self.cached_bytes.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TopicFeed>> {
        // A poisoned lock only means another thread panicked mid-update of plain data; the
        // map stays usable.
        self.topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets a topic's size and root at startup (nothing cached).
    pub fn restore(&self, topic: &str, head: u64, root: Hash) {
        let mut topics = self.lock();
        let feed = topics.entry(topic.to_owned()).or_default();
        feed.head = head;
        feed.root = Some(root);
    }

    /// The number of committed entries of `topic` and the Merkle root over them.
    pub fn tree_head(&self, topic: &str) -> (u64, Hash) {
        self.lock()
            .get(topic)
            .and_then(|feed| feed.root.map(|root| (feed.head, root)))
            .unwrap_or((0, empty_root()))
    }

    /// The number of committed entries of `topic`.
    pub fn head(&self, topic: &str) -> u64 {
        self.lock().get(topic).map_or(0, |feed| feed.head)
    }

    /// Appends committed entries of `topic` (consecutive, starting at its head), after which
    /// the tree's root is `root`, and wakes its watchers.
    ///
    /// The revocations and policies among them (`cap.revoke`, `topic.policy` in an owned topic)
    /// are recorded first, so a connection that reads one of these entries already finds its
    /// effect ([`Hub::revoked`], [`Hub::read_state`]).
    pub fn append(&self, topic: &str, entries: Vec<CachedEntry>, root: Hash) {
        if topic.starts_with(OWNED_TOPIC_SIGIL) {
            self.note_revocations(topic, &entries);
            self.note_policies(topic, &entries);
        }
        let mut topics = self.lock();
        let feed = topics.entry(topic.to_owned()).or_default();
        feed.root = Some(root);
        feed.appended_at = Some(Instant::now());
        let mut added = 0;
        for entry in entries {
            debug_assert_eq!(entry.seq, feed.head);
            feed.head = entry.seq + 1;
            added += entry.bytes.len();
            feed.recent.push_back(entry);
        }
        feed.recent_bytes += added;
        let mut evicted = 0;
        while feed.recent.len() > self.cache_per_topic
            || (feed.recent_bytes > self.cache_bytes_per_topic && !feed.recent.is_empty())
        {
            evicted += feed.evict_oldest();
        }
        feed.watchers.retain(|watcher| match watcher.upgrade() {
            Some(notify) => {
                notify.notify_one();
                true
            }
            None => false,
        });
        let total = self.cached_bytes.load(Ordering::Relaxed) as usize + added - evicted;
        let total = if total > self.cache_bytes {
            total - evict_largest(&mut topics, total - self.cache_bytes / 8 * 7)
        } else {
            total
        };
        self.cached_bytes.store(total as u64, Ordering::Relaxed);
        if let Some(metrics) = &self.metrics {
            metrics.cache_bytes(total as u64);
        }
        drop(topics);
        self.grown.notify_all();
    }

    /// Drops the cached entries of every topic that had no new entry for `idle` (a subscriber
    /// still owed them reads them from storage); returns how many bytes went. Called
    /// periodically (`[limits] idle_release_s`), so that a burst of large entries does not stay
    /// resident in an idle relay.
    pub fn release_idle(&self, idle: Duration) -> usize {
        let now = Instant::now();
        let mut topics = self.lock();
        let mut released = 0;
        for feed in topics.values_mut() {
            let quiet = feed
                .appended_at
                .map_or(true, |at| now.saturating_duration_since(at) >= idle);
            if quiet && !feed.recent.is_empty() {
                released += feed.recent_bytes;
                feed.recent = VecDeque::new();
                feed.recent_bytes = 0;
            }
        }
        if released > 0 {
            let total =
                (self.cached_bytes.load(Ordering::Relaxed) as usize).saturating_sub(released);
            self.cached_bytes.store(total as u64, Ordering::Relaxed);
            if let Some(metrics) = &self.metrics {
                metrics.cache_bytes(total as u64);
            }
        }
        released
    }

    /// Blocks until `topic` holds at least `size` entries or `timeout` passed; returns whether
    /// it does. (A cluster frontend's receipt waits here until its follower applied the entry.)
    pub fn wait_for(&self, topic: &str, size: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut topics = self.lock();
        loop {
            if topics.get(topic).map_or(0, |feed| feed.head) >= size {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            topics = match self.grown.wait_timeout(topics, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Registers `notify` to be woken on new entries of `topic`; returns the topic's head at
    /// that instant (entries below it are stored, later ones will wake the watcher).
    pub fn watch(&self, topic: &str, notify: &Arc<Notify>) -> u64 {
        let mut topics = self.lock();
        let feed = topics.entry(topic.to_owned()).or_default();
        if !feed
            .watchers
            .iter()
            .any(|w| w.upgrade().is_some_and(|n| Arc::ptr_eq(&n, notify)))
        {
            feed.watchers.push(Arc::downgrade(notify));
        }
        feed.head
    }

    /// Stops waking `notify` for `topic`.
    pub fn unwatch(&self, topic: &str, notify: &Arc<Notify>) {
        if let Some(feed) = self.lock().get_mut(topic) {
            feed.watchers
                .retain(|w| w.upgrade().is_some_and(|n| !Arc::ptr_eq(&n, notify)));
        }
    }

    /// Up to `limit` cached entries of `topic` from `from_seq` on, with the topic's head.
    /// `Err(head)` when `from_seq` is older than the cache (read storage instead).
    pub fn read(
        &self,
        topic: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<(Vec<CachedEntry>, u64), u64> {
        let topics = self.lock();
        let Some(feed) = topics.get(topic) else {
            return Ok((Vec::new(), 0));
        };
        if from_seq >= feed.head {
            return Ok((Vec::new(), feed.head));
        }
        let base = feed.head - feed.recent.len() as u64;
        if from_seq < base {
            return Err(feed.head);
        }
        let skip = (from_seq - base) as usize;
        let out = feed.recent.iter().skip(skip).take(limit).cloned().collect();
        Ok((out, feed.head))
    }
}

impl TopicFeed {
    /// Drops the oldest cached entry; returns its length.
    fn evict_oldest(&mut self) -> usize {
        let len = self.recent.pop_front().map_or(0, |entry| entry.bytes.len());
        self.recent_bytes -= len;
        len
    }
}

/// Evicts at least `bytes` bytes of cached entries (or every one), oldest first from the topic
/// caching the most bytes each time; returns how many bytes went.
fn evict_largest(topics: &mut HashMap<String, TopicFeed>, bytes: usize) -> usize {
    let mut evicted = 0;
    while evicted < bytes {
        let Some(largest) = topics
            .values_mut()
            .filter(|feed| !feed.recent.is_empty())
            .max_by_key(|feed| feed.recent_bytes)
        else {
            break;
        };
        // Halve it (at least one entry), so that one scan frees a run of entries.
        let target = largest.recent_bytes / 2;
        while largest.recent_bytes > target && evicted < bytes && !largest.recent.is_empty() {
            evicted += largest.evict_oldest();
        }
    }
    evicted
}

/// The op kind of canonical entry bytes, read in place (PROTOCOL.md sections 3 and 4: the op
/// starts after 21 bytes of entry header; its kind follows the version, the author and the
/// topic). `None` when the bytes end first.
fn kind_of(entry: &[u8]) -> Option<&[u8]> {
    const TOPIC_LEN_AT: usize = 21 + 1 + 32;
    let topic_len = usize::from(*entry.get(TOPIC_LEN_AT)?);
    let kind_len_at = TOPIC_LEN_AT + 1 + topic_len;
    let kind_len = usize::from(*entry.get(kind_len_at)?);
    entry.get(kind_len_at + 1..kind_len_at + 1 + kind_len)
}

/// The link a `cap.revoke` entry of `topic` revokes: its hash, its record, and the entry's
/// relay time (the replica's clock at it).
fn revocation_in(topic: &str, entry: &CachedEntry) -> Option<([u8; 32], RevokedLink, u64)> {
    let entry = Entry::decode_unverified(&entry.bytes).ok()?;
    let revocation = Revocation::decode(entry.op().body()).ok()?;
    let link = revocation.link();
    let by_owner = topic_owner(topic).is_some_and(|owner| &owner == entry.op().author());
    let record = RevokedLink {
        seq: entry.seq(),
        expires_ms: link.grant().expires_ms,
        by_owner,
    };
    Some((revocation.link_hash(), record, entry.relay_time_ms()))
}

/// The read rule a `topic.policy` entry of `topic` sets, with the entry's seq: `None` unless
/// its body decodes and its author is the topic's owner.
fn policy_in(topic: &str, entry: &CachedEntry) -> Option<(u64, ReadRule)> {
    let entry = Entry::decode_unverified(&entry.bytes).ok()?;
    let policy = TopicPolicy::decode(entry.op().body()).ok()?;
    let owner = topic_owner(topic)?;
    (&owner == entry.op().author()).then_some((entry.seq(), policy.read))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_is_read_in_place_from_entry_bytes() {
        let author = crate::identity::Identity::from_seed(&[3; 32]).unwrap();
        let draft = crate::op::OpDraft {
            topic: "@a/some topic".into(),
            kind: "cap.revoke".into(),
            body: vec![1, 2, 3],
            ..Default::default()
        };
        let op = crate::op::SignedOp::sign(&author, draft).unwrap();
        let bytes = Entry::new(4, 5, op).as_bytes().to_vec();
        assert_eq!(kind_of(&bytes), Some(&b"cap.revoke"[..]));
        for cut in [0, 54, 55, 70] {
            assert_eq!(kind_of(&bytes[..cut]), None, "{cut} bytes");
        }
    }

    #[test]
    fn the_read_rule_follows_the_owners_policies_and_keeps_where_it_became_private() {
        use crate::identity::Identity;
        let (alice, mallory) = (
            Identity::from_seed(&[1; 32]).unwrap(),
            Identity::from_seed(&[5; 32]).unwrap(),
        );
        let topic = format!("@{}/news", alice.agent_id());
        let policy = |author: &Identity, seq: u64, read: ReadRule| {
            let mut draft = TopicPolicy { read }.draft(&topic);
            draft.counter = seq;
            let op = crate::op::SignedOp::sign(author, draft).unwrap();
            CachedEntry {
                seq,
                bytes: Arc::from(Entry::new(seq, 5, op).as_bytes()),
                committed_at: None,
            }
        };
        let hub = Hub::new(8);
        assert_eq!(hub.read_state(&topic), None);
        // Private while private: nothing to remember. Another key's policy: never counted.
        hub.append(&topic, vec![policy(&alice, 0, ReadRule::Private)], [0; 32]);
        hub.append(&topic, vec![policy(&mallory, 1, ReadRule::Public)], [0; 32]);
        assert_eq!(hub.read_state(&topic), None);
        let batch = vec![
            policy(&alice, 2, ReadRule::Public),
            policy(&alice, 3, ReadRule::Private),
            policy(&alice, 4, ReadRule::Private),
        ];
        hub.append(&topic, batch, [0; 32]);
        assert_eq!(hub.read_state(&topic), Some(ReadState::PrivateSince(3)));
        // What the replica says at start does not undo what the hub noted since.
        hub.set_read_rule(&topic, ReadRule::Public);
        assert_eq!(hub.read_state(&topic), Some(ReadState::PrivateSince(3)));
        hub.append(&topic, vec![policy(&alice, 5, ReadRule::Public)], [0; 32]);
        assert_eq!(hub.read_state(&topic), Some(ReadState::Public));
        hub.set_read_rule(&topic, ReadRule::Private);
        assert_eq!(hub.read_state(&topic), Some(ReadState::Public));
        let fresh = Hub::new(8);
        fresh.set_read_rule(&topic, ReadRule::Public);
        assert_eq!(fresh.read_state(&topic), Some(ReadState::Public));
    }

    fn entry(seq: u64) -> CachedEntry {
        CachedEntry {
            seq,
            bytes: Arc::from(vec![seq as u8]),
            committed_at: Some(Instant::now()),
        }
    }

    #[test]
    fn reads_come_from_the_cache_until_it_is_evicted() {
        let hub = Hub::new(2);
        hub.restore("t", 3, [1; 32]);
        let notify = Arc::new(Notify::new());
        assert_eq!(hub.watch("t", &notify), 3);
        hub.append("t", vec![entry(3), entry(4), entry(5)], [2; 32]);
        assert_eq!(hub.head("t"), 6);
        assert_eq!(hub.tree_head("t"), (6, [2; 32]));
        assert_eq!(hub.tree_head("none"), (0, empty_root()));
        assert_eq!(hub.read("t", 3, 10).unwrap_err(), 6);
        let (got, head) = hub.read("t", 4, 10).unwrap();
        assert_eq!(head, 6);
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert!(hub.read("t", 6, 10).unwrap().0.is_empty());
        assert!(hub.read("nothing", 0, 10).unwrap().0.is_empty());
        hub.unwatch("t", &notify);
    }

    #[test]
    fn revocations_restored_at_start_add_to_those_the_hub_noted_and_drop_none() {
        use crate::capability::RevokedLink;
        let link = |seq| RevokedLink {
            seq,
            expires_ms: u64::MAX,
            by_owner: true,
        };
        let set = |links: &[([u8; 32], u64)]| {
            let mut set = RevokedLinks::default();
            for (hash, seq) in links {
                set.record(*hash, link(*seq), 0);
            }
            set
        };
        let hub = Hub::new(4);
        // What a cluster's follower noted before the replicas were loaded...
        hub.set_revoked("@t", &set(&[([1; 32], 9), ([2; 32], 4)]));
        // ...and the replica, which had not read as far (link 1 not yet, link 2 earlier).
        hub.set_revoked("@t", &set(&[([2; 32], 3), ([3; 32], 5)]));
        hub.set_revoked("@t", &RevokedLinks::default());
        let revoked = hub.revoked("@t").unwrap();
        let seqs: Vec<(u8, u64)> = revoked.iter().map(|(h, r)| (h[0], r.seq)).collect();
        assert_eq!(seqs, [(1, 9), (2, 3), (3, 5)]);
    }

    #[test]
    fn idle_topics_give_back_their_cached_entries_and_keep_their_heads() {
        let hub = Hub::new(100);
        hub.append("a", (0..3).map(|s| sized(s, 100)).collect(), [1; 32]);
        hub.append("b", (0..2).map(|s| sized(s, 50)).collect(), [2; 32]);
        assert_eq!(hub.cached_bytes(), 400);
        assert_eq!(
            hub.release_idle(Duration::from_secs(3600)),
            0,
            "nothing is idle yet"
        );
        assert_eq!(hub.read("a", 0, 10).unwrap().0.len(), 3);
        assert_eq!(hub.release_idle(Duration::ZERO), 400);
        assert_eq!(hub.cached_bytes(), 0);
        // Heads and roots stay; reads of what went are sent to storage.
        assert_eq!(hub.tree_head("a"), (3, [1; 32]));
        assert_eq!(hub.tree_head("b"), (2, [2; 32]));
        assert_eq!(hub.read("a", 0, 10).unwrap_err(), 3);
        assert!(hub.read("a", 3, 10).unwrap().0.is_empty());
        // New entries are cached again.
        hub.append("a", vec![sized(3, 70)], [3; 32]);
        assert_eq!(hub.cached_bytes(), 70);
        assert_eq!(hub.read("a", 3, 10).unwrap().0.len(), 1);
    }

    fn sized(seq: u64, len: usize) -> CachedEntry {
        CachedEntry {
            seq,
            bytes: Arc::from(vec![0; len]),
            committed_at: None,
        }
    }

    #[test]
    fn the_cache_is_bounded_in_bytes_per_topic_and_in_total() {
        let hub = Hub::with_limits(
            CacheLimits {
                entries_per_topic: 100,
                bytes_per_topic: 1_000,
                bytes: 2_500,
            },
            None,
        );
        // Per topic: 4 entries of 300 bytes keep the last 3.
        hub.append("a", (0..4).map(|s| sized(s, 300)).collect(), [0; 32]);
        assert_eq!(hub.cached_bytes(), 900);
        assert_eq!(hub.read("a", 0, 10).unwrap_err(), 4);
        assert_eq!(hub.read("a", 1, 10).unwrap().0.len(), 3);
        // One entry over the per-topic bound is not kept at all.
        hub.append("big", vec![sized(0, 1_001)], [0; 32]);
        assert_eq!(hub.cached_bytes(), 900);
        assert_eq!(hub.read("big", 0, 10).unwrap_err(), 1);
        // In total: topics b and c add 1,800; past 2,500 the largest give up their oldest
        // entries until the cache is within 7/8 of the total.
        hub.append("b", (0..3).map(|s| sized(s, 300)).collect(), [0; 32]);
        assert_eq!(hub.cached_bytes(), 1_800);
        hub.append("c", (0..3).map(|s| sized(s, 300)).collect(), [0; 32]);
        assert!(
            hub.cached_bytes() <= 2_500 / 8 * 7,
            "{}",
            hub.cached_bytes()
        );
        let cached = |topic: &str, head: u64| {
            (0..head)
                .find_map(|from| hub.read(topic, from, 10).ok().map(|(e, _)| e.len()))
                .unwrap_or(0)
        };
        let total: usize = [("a", 4), ("b", 3), ("c", 3)]
            .iter()
            .map(|(t, head)| cached(t, *head) * 300)
            .sum();
        assert_eq!(
            total as u64,
            hub.cached_bytes(),
            "the count matches the entries"
        );
        // The newest entries stay: every topic still serves its last one from memory.
        for (topic, head) in [("a", 4), ("b", 3), ("c", 3)] {
            assert!(hub.read(topic, head - 1, 1).is_ok(), "{topic}");
        }
    }

    #[test]
    fn a_waiter_returns_once_the_topic_grew_or_its_time_is_up() {
        let hub = Arc::new(Hub::new(4));
        assert!(!hub.wait_for("t", 1, Duration::from_millis(10)));
        assert!(hub.wait_for("t", 0, Duration::ZERO));
        let appender = hub.clone();
        let waiter = std::thread::spawn(move || hub.wait_for("t", 2, Duration::from_secs(60)));
        appender.append("t", vec![entry(0)], [1; 32]);
        appender.append("t", vec![entry(1)], [2; 32]);
        assert!(waiter.join().unwrap());
    }
}
