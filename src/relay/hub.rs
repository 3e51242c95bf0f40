//! Fan-out of committed entries to subscribers, pull-style.
//!
//! The durability thread appends each batch here once it is durable (synced) and wakes the
//! connections watching the topic; the head never passes what is durable, and reads from
//! storage stay below it. A woken connection *pulls* the entries it still owes its peer from
//! the recent-entry cache (or, when it has fallen further behind, from storage), so a slow
//! subscriber costs nothing but its own cursor: the hub never queues entries per subscriber,
//! never waits for one, and its memory is bounded by the cache size per topic.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

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
    /// Connections to wake on new entries.
    watchers: Vec<Weak<Notify>>,
    /// The Merkle root over the `head` committed entries (`None` until known: empty tree).
    root: Option<Hash>,
}

/// The fan-out hub shared by the sequencer and every connection.
#[derive(Debug)]
pub struct Hub {
    topics: Mutex<HashMap<String, TopicFeed>>,
    /// Signalled on every append, for [`Hub::wait_for`].
    grown: Condvar,
    cache_per_topic: usize,
}

impl Hub {
    /// A hub keeping the last `cache_per_topic` entries of each topic in memory.
    pub fn new(cache_per_topic: usize) -> Self {
        Hub {
            topics: Mutex::new(HashMap::new()),
            grown: Condvar::new(),
            cache_per_topic: cache_per_topic.max(1),
        }
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
    pub fn append(&self, topic: &str, entries: Vec<CachedEntry>, root: Hash) {
        let mut topics = self.lock();
        let feed = topics.entry(topic.to_owned()).or_default();
        feed.root = Some(root);
        for entry in entries {
            debug_assert_eq!(entry.seq, feed.head);
            feed.head = entry.seq + 1;
            feed.recent.push_back(entry);
        }
        while feed.recent.len() > self.cache_per_topic {
            feed.recent.pop_front();
        }
        feed.watchers.retain(|watcher| match watcher.upgrade() {
            Some(notify) => {
                notify.notify_one();
                true
            }
            None => false,
        });
        drop(topics);
        self.grown.notify_all();
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

#[cfg(test)]
mod tests {
    use super::*;

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
