//! Which relay frontends are alive, and which of them sequences a topic.
//!
//! Every frontend writes a heartbeat (its id → its address) into the `<prefix>_frontends` bucket
//! more often than the bucket's `max_age` (`heartbeat_ttl`); the server drops a heartbeat that
//! is older than that, so the bucket's keys are the live frontends. A stopping frontend deletes
//! its heartbeat at once ([`Frontends::leave`]).
//!
//! A topic's **owner** is elected among the live frontends with the project's hash priority
//! ([`crate::election::rank_ids`], PROTOCOL.md section 6.3) in the fixed window 0: rendezvous
//! hashing, so a topic's owner changes only when the live set changes, and then only the topics
//! of a frontend that left, or the ones a newcomer wins, move. Frontends that see different live
//! sets for a moment may both believe they own a topic; that is safe, because every append is
//! fenced ([`super::JetStreamLog::append_after`]: the server's expected-sequence check, then the
//! predecessor check): of two appends that follow the same message, one is refused
//! `SEQUENCE_CONFLICT`, and the valid chain never forks. Ownership only keeps such collisions
//! rare (each costs the loser a retry, and may leave a void message in the stream).

use std::time::Duration;

use async_nats::jetstream::kv::Store;
use async_nats::jetstream::Context;
use futures_util::StreamExt;

use super::buckets::{open_bucket, read_latest};
use super::{unavailable, JetStreamConfig};
use crate::election::rank_ids;
use crate::error::{Error, Result};

/// The window every ownership election uses: ownership moves with the live set, never with time.
pub const OWNERSHIP_WINDOW: u64 = 0;

/// A relay frontend's id: 32 bytes, hashed by the election like an agent id. Frontends of one
/// relay share its signing key, so this is not a key: a random id per process, or any fixed
/// 32 bytes an operator assigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FrontendId(pub [u8; 32]);

impl FrontendId {
    /// A fresh random id. `RANDOMNESS_UNAVAILABLE` if the platform has no secure randomness.
    pub fn random() -> Result<Self> {
        let mut id = [0u8; 32];
        getrandom::getrandom(&mut id).map_err(|e| Error::RandomnessUnavailable(e.to_string()))?;
        Ok(FrontendId(id))
    }

    /// The id as its bucket key: 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads [`FrontendId::to_hex`]. `MALFORMED` for anything else.
    pub fn from_hex(text: &str) -> Result<Self> {
        let malformed = || Error::Malformed {
            what: "frontend id",
            reason: format!("{text:?} is not 64 lower-case hex digits"),
        };
        if text.len() != 64 {
            return Err(malformed());
        }
        let mut id = [0u8; 32];
        for (byte, pair) in id.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let digit = |d: u8| match d {
                b'0'..=b'9' => Some(d - b'0'),
                b'a'..=b'f' => Some(d - b'a' + 10),
                _ => None,
            };
            let (Some(high), Some(low)) = (digit(pair[0]), digit(pair[1])) else {
                return Err(malformed());
            };
            *byte = (high << 4) | low;
        }
        Ok(FrontendId(id))
    }
}

/// A live frontend as its heartbeat says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// Who.
    pub id: FrontendId,
    /// Where other frontends forward to it (opaque bytes, e.g. its internal URL).
    pub address: Vec<u8>,
}

/// The frontends bucket: heartbeats with a TTL, and topic ownership.
#[derive(Debug, Clone)]
pub struct Frontends {
    store: Store,
    ttl: Duration,
}

impl Frontends {
    pub(crate) async fn open(js: &Context, config: &JetStreamConfig) -> Result<Self> {
        let name = format!("{}_frontends", config.bucket_prefix);
        let store = open_bucket(js, config, &name, config.heartbeat_ttl).await?;
        Ok(Frontends {
            store,
            ttl: config.heartbeat_ttl,
        })
    }

    /// How long a heartbeat lives: beat at least twice per TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Writes (or renews) `id`'s heartbeat.
    pub async fn beat(&self, id: &FrontendId, address: &[u8]) -> Result<()> {
        self.store
            .put(id.to_hex(), address.to_vec().into())
            .await
            .map(drop)
            .map_err(|e| unavailable("heartbeat", e))
    }

    /// Removes `id`'s heartbeat now (a clean shutdown), so its topics move without waiting for
    /// the TTL.
    pub async fn leave(&self, id: &FrontendId) -> Result<()> {
        self.store
            .delete(id.to_hex())
            .await
            .map_err(|e| unavailable("leave", e))
    }

    /// The live frontends, ordered by id. Keys that are no frontend id are ignored.
    ///
    /// The keys are listed with `STREAM.INFO`'s subject filter (paged requests, each bounded by
    /// the client's request timeout), not with the KV "keys" listing: that one is an ordered
    /// consumer which counts the pending heartbeats when it is created and then waits for the
    /// last of them, so a heartbeat that expires in between makes it wait forever.
    pub async fn live(&self) -> Result<Vec<Heartbeat>> {
        let mut subjects = self
            .store
            .stream
            .info_with_subjects(format!("{}>", self.store.prefix))
            .await
            .map_err(|e| unavailable("list frontends", e))?;
        let mut keys = Vec::new();
        while let Some(subject) = subjects.next().await {
            let (subject, _count) = subject.map_err(|e| unavailable("list frontends", e))?;
            if let Some(key) = subject.strip_prefix(self.store.prefix.as_str()) {
                keys.push(key.to_string());
            }
        }
        let mut live = Vec::new();
        for key in keys {
            let Ok(id) = FrontendId::from_hex(&key) else {
                continue;
            };
            // Gone between the listing and the read: expired or left, so not live.
            if let Some(stored) = read_latest(&self.store, &key).await? {
                live.push(Heartbeat {
                    id,
                    address: stored.value,
                });
            }
        }
        live.sort_by_key(|h| h.id);
        Ok(live)
    }

    /// The owner of `topic` among the live frontends. `NO_CANDIDATES` if none is live.
    pub async fn owner(&self, topic: &str) -> Result<Heartbeat> {
        let live = self.live().await?;
        let ids: Vec<FrontendId> = live.iter().map(|h| h.id).collect();
        let owner = owner_among(topic, &ids)?;
        live.into_iter()
            .find(|h| h.id == owner)
            .ok_or(Error::NoCandidates)
    }
}

/// The owner of `topic` among `candidates` (pure: every frontend that sees the same live set
/// computes the same owner). `NO_CANDIDATES` for an empty set, `BAD_TOPIC` for a bad topic.
pub fn owner_among(topic: &str, candidates: &[FrontendId]) -> Result<FrontendId> {
    let ids: Vec<[u8; 32]> = candidates.iter().map(|c| c.0).collect();
    let ranking = rank_ids(topic, &ids, None, OWNERSHIP_WINDOW, Some(1))?;
    let first = ranking.first().ok_or(Error::NoCandidates)?;
    Ok(candidates[first.agent])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> FrontendId {
        FrontendId([n; 32])
    }

    #[test]
    fn ids_round_trip_as_hex() {
        let id = FrontendId::random().unwrap();
        assert_eq!(FrontendId::from_hex(&id.to_hex()).unwrap(), id);
        for bad in ["", "ab", &"g".repeat(64), &"A".repeat(64), &"0".repeat(63)] {
            assert_eq!(FrontendId::from_hex(bad).unwrap_err().code(), "MALFORMED");
        }
    }

    #[test]
    fn the_owner_is_the_highest_priority_and_ignores_order() {
        let set = [id(1), id(2), id(3)];
        for topic in ["a", "b", "chat.room", "é"] {
            let owner = owner_among(topic, &set).unwrap();
            let mut reversed = set;
            reversed.reverse();
            assert_eq!(owner_among(topic, &reversed).unwrap(), owner);
            let best = set
                .iter()
                .max_by_key(|c| {
                    crate::election::PriorityHasher::new(topic)
                        .unwrap()
                        .priority_of_bytes(&c.0, OWNERSHIP_WINDOW)
                })
                .unwrap();
            assert_eq!(&owner, best);
        }
        assert_eq!(owner_among("a", &[]).unwrap_err().code(), "NO_CANDIDATES");
    }

    #[test]
    fn a_leaving_frontend_moves_only_its_own_topics() {
        let set: Vec<FrontendId> = (1..=4).map(id).collect();
        let topics: Vec<String> = (0..200).map(|i| format!("topic-{i}")).collect();
        let mut moved = 0;
        for topic in &topics {
            let before = owner_among(topic, &set).unwrap();
            let after = owner_among(topic, &set[..3]).unwrap();
            if before == id(4) {
                moved += 1;
                assert_ne!(after, id(4));
            } else {
                assert_eq!(after, before, "{topic} moved though its owner stayed");
            }
        }
        // Each frontend owns some topics (rendezvous spreads them).
        assert!(moved > 0 && moved < topics.len());
    }
}
