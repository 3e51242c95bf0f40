//! A cluster frontend's read mirror: the stream's valid entries in a local SQLite database with
//! the embedded store's schema, so that replay, inclusion and consistency proofs and
//! checkpoints ([`crate::relay::store::ReadPool`], the hub) work as they do on one relay.
//!
//! The mirror is a cache of the stream, never the truth: it is deleted and refilled from the
//! stream's first message at every start ([`Mirror::rebuild`]), which costs one read of the
//! whole stream (and the SQLite writes of every entry) before the frontend serves. It is written
//! only by the frontend's follower ([`super::follower`]), in stream order, and only with the
//! messages of each topic's valid chain ([`super::ChainTip`], the same rule as
//! [`super::valid_chain`]): a void message (a lost race, or an append committed after its writer
//! was told `UNAVAILABLE`) is skipped, so every frontend's mirror holds the same entries at the
//! same seqs. Its writes are not synced (nothing is promised from it; a crash rebuilds it).
//!
//! Invariant: for every topic, the mirror holds entries `0..frontier.size()` with their
//! subtree hashes, and `tip` is the stream sequence of the last valid message they came from.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::{decode_message, ChainTip};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::log::sequencing::Sequenced;
use crate::log::{leaf_hash, Frontier, Hash, Receipt};
use crate::relay::hub::CachedEntry;
use crate::relay::metrics::Metrics;
use crate::relay::store::{Append, SqliteStore, StorageHealth, Store};

/// The mirror's database file in the data directory.
pub const MIRROR_FILE: &str = "mirror.sqlite3";

/// One message of the log stream as the follower received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMessage {
    /// Its stream sequence.
    pub seq: u64,
    /// The topic its subject names.
    pub topic: String,
    /// The message it claims to follow (`Ants-Predecessor`).
    pub predecessor: Option<u64>,
    /// One topic's entries of one batch ([`decode_message`]).
    pub payload: Vec<u8>,
}

/// What one [`Mirror::apply`] added, per topic in first-seen order: the new entries and the
/// topic's Merkle root after them (what [`crate::relay::hub::Hub::append`] takes).
pub type Applied = Vec<(String, Vec<CachedEntry>, Hash)>;

#[derive(Debug, Clone, Default)]
struct MirrorTopic {
    frontier: Frontier,
    tip: ChainTip,
}

/// The local read mirror of the stream. See the module docs.
#[derive(Debug)]
pub struct Mirror {
    store: SqliteStore,
    topics: HashMap<String, MirrorTopic>,
}

impl Mirror {
    /// Deletes the mirror database at `path` (and its WAL) if present and opens it empty,
    /// bound to the relay key `relay`. Writes are refused while `health` is under its reserve.
    ///
    /// Errors: `UNAVAILABLE` when the old files cannot be removed or the database not opened.
    pub fn rebuild(path: &Path, relay: &AgentId, health: Arc<StorageHealth>) -> Result<Self> {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            match std::fs::remove_file(&name) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Unavailable(format!(
                        "cannot remove the old mirror {}: {error}",
                        Path::new(&name).display()
                    )))
                }
                _ => {}
            }
        }
        // Its own metrics: the mirror's writes are not the sequencer's commits.
        let store = SqliteStore::open(path, relay, Arc::new(Metrics::default()), health)?;
        Ok(Mirror {
            store,
            topics: HashMap::new(),
        })
    }

    /// Writes the valid entries of `messages` (consecutive stream messages, in stream order) in
    /// one transaction and returns them for the hub. Nothing changes on an error, so the same
    /// messages may be applied again.
    ///
    /// Errors: `MALFORMED` for a valid message that is not a log message or holds a bad entry;
    /// `UNAVAILABLE` for a valid message whose entries do not continue its topic (a hole) or
    /// when the database cannot be written.
    pub fn apply(&mut self, messages: &[StreamMessage]) -> Result<Applied> {
        let applied_at = Instant::now();
        let mut moved: HashMap<&str, MirrorTopic> = HashMap::new();
        let mut sequenced = Vec::new();
        let mut runs: Applied = Vec::new();
        for message in messages {
            let topic = message.topic.as_str();
            let state = moved
                .entry(topic)
                .or_insert_with(|| self.topics.get(topic).cloned().unwrap_or_default());
            if !state.tip.accept(message.seq, message.predecessor) {
                tracing::debug!(topic, seq = message.seq, "void stream message skipped");
                continue;
            }
            let (first_seq, entries) = decode_message(&message.payload)?;
            if first_seq != state.frontier.size() {
                return Err(Error::Unavailable(format!(
                    "mirror: topic {topic:?} holds {} entries, stream message {} starts at {first_seq}",
                    state.frontier.size(),
                    message.seq
                )));
            }
            let run = match runs.iter().position(|(t, _, _)| t == topic) {
                Some(i) => i,
                None => {
                    runs.push((topic.to_owned(), Vec::new(), Hash::default()));
                    runs.len() - 1
                }
            };
            for bytes in entries {
                sequenced.push(mirrored(topic, &mut state.frontier, bytes.clone())?);
                runs[run].1.push(CachedEntry {
                    seq: state.frontier.size() - 1,
                    bytes,
                    committed_at: Some(applied_at),
                });
            }
            runs[run].2 = state.frontier.root();
        }
        if !sequenced.is_empty() {
            self.store
                .append(Append {
                    entries: &sequenced,
                    snapshots: &[],
                })
                .map_err(Error::from)?;
        }
        for (topic, state) in moved {
            self.topics.insert(topic.to_owned(), state);
        }
        runs.retain(|(_, entries, _)| !entries.is_empty());
        Ok(runs)
    }

    /// Every mirrored topic with its size and root.
    pub fn heads(&self) -> Vec<(String, u64, Hash)> {
        self.topics
            .iter()
            .map(|(topic, state)| (topic.clone(), state.frontier.size(), state.frontier.root()))
            .collect()
    }
}

/// `bytes`, the next entry of `topic`, as the embedded store takes it; moves `frontier` past it.
fn mirrored(topic: &str, frontier: &mut Frontier, bytes: Arc<[u8]>) -> Result<Sequenced> {
    // Verified by the frontend that sequenced it; the stream is the relay's own log.
    let entry = Entry::decode_unverified(&bytes)?;
    if entry.seq() != frontier.size() || entry.topic() != topic {
        return Err(Error::Unavailable(format!(
            "mirror: topic {topic:?} has entry {} of {:?} where seq {} belongs",
            entry.seq(),
            entry.topic(),
            frontier.size()
        )));
    }
    let mut hashes = Vec::with_capacity(4);
    frontier.append_hash(leaf_hash(&bytes), |level, index, hash| {
        hashes.push((level, index, *hash));
    })?;
    let op = entry.op();
    Ok(Sequenced {
        topic: topic.to_owned(),
        author: *op.author(),
        counter: op.counter(),
        op_id: op.id(),
        receipt: Receipt {
            topic: topic.to_owned(),
            seq: entry.seq(),
            op_id: op.id(),
            relay_time_ms: entry.relay_time_ms(),
            tree_size: entry.seq() + 1,
            root: frontier.root(),
        },
        entry: bytes,
        hashes,
        events: Ok(Vec::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::log::merkle_root;
    use crate::op::{OpDraft, SignedOp};
    use crate::relay::jetstream::encode_message;

    fn entry(topic: &str, seq: u64) -> Vec<u8> {
        let author = Identity::from_seed(&[seq as u8 + 1; 32]).unwrap();
        let op = SignedOp::sign(
            &author,
            OpDraft {
                topic: topic.into(),
                kind: "post".into(),
                counter: 0,
                time_ms: seq,
                deps: vec![],
                body: vec![seq as u8],
            },
        )
        .unwrap();
        Entry::new(seq, 1_000 + seq, op).as_bytes().to_vec()
    }

    fn message(seq: u64, topic: &str, predecessor: u64, entries: &[Vec<u8>]) -> StreamMessage {
        let first = Entry::decode_unverified(&entries[0]).unwrap().seq();
        let entries: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        StreamMessage {
            seq,
            topic: topic.into(),
            predecessor: Some(predecessor),
            payload: encode_message(first, &entries),
        }
    }

    fn mirror(name: &str) -> (Mirror, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("ants-mirror-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let relay = Identity::from_seed(&[9; 32]).unwrap().agent_id();
        let health = Arc::new(StorageHealth::new(dir.clone(), 0));
        let path = dir.join(MIRROR_FILE);
        (Mirror::rebuild(&path, &relay, health).unwrap(), path)
    }

    #[test]
    fn only_the_valid_chain_reaches_the_mirror_and_the_hub() {
        let (mut mirror, path) = mirror("chain");
        let t: Vec<Vec<u8>> = (0..3).map(|seq| entry("t", seq)).collect();
        let u = entry("u", 0);
        let applied = mirror
            .apply(&[
                message(1, "t", 0, &t[..2]),
                // A racing writer's message that also follows nothing: void, skipped.
                message(2, "t", 0, &[entry("t", 0)]),
                message(3, "u", 0, std::slice::from_ref(&u)),
                message(4, "t", 1, &t[2..]),
            ])
            .unwrap();
        let seqs = |topic: &str| -> Vec<u64> {
            let run = applied.iter().find(|(name, _, _)| name == topic).unwrap();
            run.1.iter().map(|e| e.seq).collect()
        };
        assert_eq!(seqs("t"), [0, 1, 2]);
        assert_eq!(seqs("u"), [0]);
        let leaves: Vec<&[u8]> = t.iter().map(Vec::as_slice).collect();
        let root_t = applied.iter().find(|(n, _, _)| n == "t").unwrap().2;
        assert_eq!(root_t, merkle_root(&leaves));
        let mut heads = mirror.heads();
        heads.sort();
        assert_eq!(heads[0], ("t".to_string(), 3, merkle_root(&leaves)));
        // The database holds what the embedded store would: readable by the read pool.
        let reader = crate::relay::store::ReadPool::new(path.clone());
        let stored = reader.entries("t", 0, 10).unwrap();
        assert_eq!(stored.len(), 3);
        assert_eq!(stored[2].1, t[2]);
        // A rebuild starts empty.
        drop(mirror);
        let (mirror, _) = self::mirror("chain");
        assert!(mirror.heads().is_empty());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_hole_or_bad_bytes_change_nothing() {
        let (mut mirror, path) = mirror("hole");
        let t: Vec<Vec<u8>> = (0..3).map(|seq| entry("t", seq)).collect();
        // A valid message that skips seq 1.
        let hole = mirror.apply(&[message(1, "t", 0, &t[..1]), message(2, "t", 1, &t[2..])]);
        assert_eq!(hole.unwrap_err().code(), "UNAVAILABLE");
        let bad = StreamMessage {
            payload: vec![1, 2, 3],
            ..message(1, "t", 0, &t[..1])
        };
        assert_eq!(mirror.apply(&[bad]).unwrap_err().code(), "MALFORMED");
        assert!(mirror.heads().is_empty(), "nothing applied");
        let applied = mirror.apply(&[message(1, "t", 0, &t)]).unwrap();
        assert_eq!(applied[0].1.len(), 3);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
