//! A cluster frontend's read mirror: the stream's valid entries in a local SQLite database with
//! the embedded store's schema, so that replay, inclusion and consistency proofs and
//! checkpoints ([`crate::relay::store::ReadPool`], the hub) work as they do on one relay.
//!
//! The mirror is a cache of the stream, never the truth. It is written only by the frontend's
//! follower ([`super::follower`]), in stream order, and only with the messages of each topic's
//! valid chain ([`super::ChainTip`], the same rule as [`super::valid_chain`]): a void message (a
//! lost race, or an append committed after its writer was told `UNAVAILABLE`) is skipped, so
//! every frontend's mirror holds the same entries at the same seqs.
//!
//! **It outlives the frontend.** With its entries, each transaction records how far it mirrored
//! the stream: the sequence of the last message applied (valid or void), each topic's chain tip,
//! and which stream it mirrors (name and creation time). A restarted frontend opens it
//! ([`Mirror::open`]) and reads the stream from the next message on ([`Mirror::resume`]): a start
//! costs what was appended while it was down, not a read of the whole stream. It starts over
//! from an empty mirror when the file is missing, unreadable, damaged (its tree disagrees with
//! its entries), bound to another relay key, or written for another stream (deleted and made
//! again: another creation time) or for messages the stream no longer holds.
//!
//! Its writes are not synced (nothing is promised from it): SQLite's WAL at `synchronous =
//! NORMAL` keeps it consistent after a crash, at worst some transactions shorter, and since the
//! position travels in the same transactions as the entries, the next start resumes from what
//! it really holds.
//!
//! Invariant: for every topic, the mirror holds entries `0..frontier.size()` with their
//! subtree hashes, `tip` is the stream sequence of the last valid message they came from, and
//! `applied` is the stream sequence of the last message applied (0: none), all as stored.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rusqlite::{params, OptionalExtension};

use super::{decode_message, ChainTip};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::identity::{AgentId, KeyCache};
use crate::log::sequencing::Sequenced;
use crate::log::{leaf_hash, Frontier, Hash, Receipt};
use crate::relay::hub::CachedEntry;
use crate::relay::metrics::Metrics;
use crate::relay::store::{storage, Append, SqliteStore, StorageHealth, Store};

/// The mirror's database file in the data directory.
pub const MIRROR_FILE: &str = "mirror.sqlite3";

/// The mirror's own bookkeeping, beside the embedded store's tables: per topic, the stream
/// sequence of its chain's tip and of its last message, valid or void.
const TIPS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mirror_tips (
    topic      TEXT    PRIMARY KEY,
    last_valid INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
) WITHOUT ROWID;
";
/// The `meta` row naming the stream mirrored (see [`StreamIdentity`]).
const STREAM_ROW: &str = "mirror_stream";
/// The `meta` row holding the stream sequence of the last message applied (8 bytes, big-endian).
const APPLIED_ROW: &str = "mirror_applied";

/// Which stream a mirror copies: its name and creation time. A stream deleted and made again
/// under the same name is another stream, whose sequences mean other messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamIdentity {
    /// The stream's name.
    pub name: String,
    /// Its creation time, in nanoseconds since the Unix epoch, as the cluster reports it.
    pub created_ns: i128,
}

impl StreamIdentity {
    fn encode(&self) -> Vec<u8> {
        format!("{} {}", self.created_ns, self.name).into_bytes()
    }
}

/// The stream's extent when the follower starts: what [`Mirror::resume`] checks against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamExtent {
    /// The sequence of its first message still stored (0 or 1 when empty).
    pub first: u64,
    /// The sequence of its last message (0: never had one).
    pub last: u64,
}

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
    /// The stream sequence of the topic's last message, valid or void (0: none).
    last_seen: u64,
}

/// The local read mirror of the stream. See the module docs.
#[derive(Debug)]
pub struct Mirror {
    store: SqliteStore,
    topics: HashMap<String, MirrorTopic>,
    /// The stream sequence of the last message applied, valid or void (0: none).
    applied: u64,
    /// The recorded identity of the stream this mirror copies ([`StreamIdentity::encode`]).
    stream: Option<Vec<u8>>,
    /// The authors' keys seen, decompressed.
    keys: KeyCache,
}

impl Mirror {
    /// Deletes the mirror database at `path` (and its WAL) if present and opens it empty,
    /// bound to the relay key `relay`. Writes are refused while `health` is under its reserve.
    ///
    /// Errors: `UNAVAILABLE` when the old files cannot be removed or the database not opened.
    pub fn rebuild(path: &Path, relay: &AgentId, health: Arc<StorageHealth>) -> Result<Self> {
        remove_files(path)?;
        let mut mirror = Self::opened(path, relay, health)?;
        mirror.load()?;
        Ok(mirror)
    }

    /// Opens the mirror database at `path` as a previous run of this frontend left it, to be
    /// resumed ([`Mirror::resume`]). It starts over empty when the file is missing, unreadable
    /// or bound to another relay key than `relay` (made anew), or damaged: its tree disagrees
    /// with its entries, or its bookkeeping with its topics (emptied).
    ///
    /// Errors: `UNAVAILABLE` when not even an empty mirror can be made.
    pub fn open(path: &Path, relay: &AgentId, health: Arc<StorageHealth>) -> Result<Self> {
        let mut mirror = match Self::opened(path, relay, health.clone()) {
            Ok(mirror) => mirror,
            // Nothing of it is open (the store's checkpoint thread starts last): safe to delete.
            Err(error) => {
                if path.exists() {
                    tracing::warn!(%error, "the read mirror cannot be opened; making it anew");
                }
                return Self::rebuild(path, relay, health);
            }
        };
        if let Err(error) = mirror.load() {
            tracing::warn!(%error, "the read mirror cannot be resumed; emptying it");
            mirror.clear()?;
        }
        Ok(mirror)
    }

    /// The store at `path`, opened; its topics not read yet ([`Mirror::load`]).
    fn opened(path: &Path, relay: &AgentId, health: Arc<StorageHealth>) -> Result<Self> {
        // Its own metrics: the mirror's writes are not the sequencer's commits.
        let metrics = Arc::new(Metrics::default());
        let store = SqliteStore::open(path, relay, metrics, health)?;
        Ok(Mirror {
            store,
            topics: HashMap::new(),
            applied: 0,
            stream: None,
            keys: KeyCache::default(),
        })
    }

    /// Reads the topics, chain tips and position as stored.
    fn load(&mut self) -> Result<()> {
        let conn = self.store.conn();
        conn.execute_batch(TIPS_SCHEMA)
            .map_err(storage("the mirror's tips"))?;
        let mut tips: HashMap<String, (u64, u64)> = HashMap::new();
        {
            let what = "read the mirror's tips";
            let mut rows = conn
                .prepare("SELECT topic, last_valid, last_seen FROM mirror_tips")
                .map_err(storage(what))?;
            let mut rows = rows.query([]).map_err(storage(what))?;
            while let Some(row) = rows.next().map_err(storage(what))? {
                let topic: String = row.get(0).map_err(storage(what))?;
                let last_valid: i64 = row.get(1).map_err(storage(what))?;
                let last_seen: i64 = row.get(2).map_err(storage(what))?;
                tips.insert(topic, (last_valid as u64, last_seen as u64));
            }
        }
        let applied =
            match meta(conn, APPLIED_ROW)? {
                Some(bytes) => u64::from_be_bytes(bytes.as_slice().try_into().map_err(|_| {
                    Error::Unavailable("the mirror's position is not 8 bytes".into())
                })?),
                None => 0,
            };
        let stream = meta(conn, STREAM_ROW)?;
        let mut topics = HashMap::new();
        for head in self.store.heads()? {
            let (tip, last_seen) = tips.get(&head.topic).copied().ok_or_else(|| {
                Error::Unavailable(format!("the mirror has no chain tip for {:?}", head.topic))
            })?;
            let state = MirrorTopic {
                frontier: head.head.frontier,
                tip: ChainTip::after(tip),
                last_seen,
            };
            topics.insert(head.topic, state);
        }
        if topics.len() != tips.len() || (applied == 0 && !topics.is_empty()) {
            return Err(Error::Unavailable(
                "the mirror's bookkeeping does not match its topics".into(),
            ));
        }
        self.topics = topics;
        self.applied = applied;
        self.stream = stream;
        Ok(())
    }

    /// Empties the mirror in place (every row of every table but the relay key's binding), for
    /// a start from the stream's first message. In place, not by deleting the files: the
    /// store's checkpoint thread may still have them open.
    fn clear(&mut self) -> Result<()> {
        let conn = self.store.conn();
        let what = "empty the mirror";
        let tables: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .and_then(|mut names| names.query_map([], |row| row.get(0))?.collect())
            .map_err(storage(what))?;
        let tx = conn.unchecked_transaction().map_err(storage(what))?;
        // Tables refer to `topics`: checked at the commit, when all of them are empty.
        tx.execute_batch("PRAGMA defer_foreign_keys = ON")
            .map_err(storage(what))?;
        for table in &tables {
            let sql = if table == "meta" {
                format!("DELETE FROM meta WHERE key IN ('{STREAM_ROW}', '{APPLIED_ROW}')")
            } else {
                format!("DELETE FROM \"{table}\"")
            };
            tx.execute(&sql, []).map_err(storage(what))?;
        }
        tx.execute_batch(TIPS_SCHEMA).map_err(storage(what))?;
        tx.commit().map_err(storage(what))?;
        self.store.heads()?;
        self.topics.clear();
        self.applied = 0;
        self.stream = None;
        Ok(())
    }

    /// Where the follower reads `stream` from: the message after the last one this mirror
    /// applied, when it mirrors that very stream and the stream still holds that message;
    /// otherwise the mirror is emptied and reading starts at the stream's first message.
    /// Records `stream` as the one mirrored.
    ///
    /// Errors: `UNAVAILABLE` when the mirror cannot be written.
    pub fn resume(&mut self, stream: &StreamIdentity, extent: StreamExtent) -> Result<u64> {
        let row = stream.encode();
        let same_stream = self.stream.as_deref() == Some(row.as_slice());
        let next = self.applied + 1;
        let resumable = same_stream && self.applied <= extent.last && extent.first <= next;
        if !resumable {
            if self.applied > 0 {
                tracing::warn!(
                    applied = self.applied,
                    first = extent.first,
                    last = extent.last,
                    same_stream,
                    "the read mirror does not continue the stream; emptying it"
                );
            }
            self.clear()?;
        }
        self.store
            .conn()
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![STREAM_ROW, row],
            )
            .map_err(storage("record the mirrored stream"))?;
        self.stream = Some(row);
        Ok(self.applied + 1)
    }

    /// The stream sequence of the last message applied (0: none).
    pub fn applied(&self) -> u64 {
        self.applied
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
            state.last_seen = message.seq;
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
                sequenced.push(mirrored(
                    topic,
                    &mut state.frontier,
                    bytes.clone(),
                    &mut self.keys,
                )?);
                runs[run].1.push(CachedEntry {
                    seq: state.frontier.size() - 1,
                    bytes,
                    committed_at: Some(applied_at),
                });
            }
            runs[run].2 = state.frontier.root();
        }
        let Some(last) = messages.last().map(|m| m.seq) else {
            return Ok(Vec::new());
        };
        // The position goes with the entries: a restart resumes from what is really stored.
        let record = |tx: &rusqlite::Transaction<'_>| -> Result<()> {
            let mut tip = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO mirror_tips (topic, last_valid, last_seen) \
                     VALUES (?1, ?2, ?3)",
                )
                .map_err(storage("record the mirror's tips"))?;
            // A topic with only void messages has no chain yet, and no row.
            for (topic, state) in moved.iter().filter(|(_, s)| s.tip.last_valid() > 0) {
                let (valid, seen) = (state.tip.last_valid(), state.last_seen);
                tip.execute(params![topic, valid as i64, seen as i64])
                    .map_err(storage("record the mirror's tips"))?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![APPLIED_ROW, last.to_be_bytes().to_vec()],
            )
            .map_err(storage("record the mirror's position"))?;
            Ok(())
        };
        self.store
            .append_with(
                Append {
                    entries: &sequenced,
                    snapshots: &[],
                },
                &record,
            )
            .map_err(Error::from)?;
        self.applied = last;
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

/// One topic as a read mirror holds it: what a frontend's sequencer store starts from
/// ([`super::JetStreamStore::seed`]) instead of reading the topic from the stream.
#[derive(Debug, Clone)]
pub struct MirroredTopic {
    /// The topic.
    pub topic: String,
    /// The stream sequence of its chain's tip, the message its last entry came from.
    pub last_valid: u64,
    /// The stream sequence of its last message, valid or void.
    pub last_seen: u64,
    /// Its entries from seq 0 on.
    pub entries: Vec<Arc<[u8]>>,
}

/// Calls `each` with every topic of the mirror at `path` and its entries, one topic at a time
/// (so at most one topic's entries are held at once), all read in one read transaction: a
/// consistent snapshot, a prefix of each topic's chain, while the follower goes on writing.
///
/// Errors: `UNAVAILABLE` when the mirror cannot be read.
pub fn read_mirrored(path: &Path, each: &mut dyn FnMut(MirroredTopic)) -> Result<()> {
    let what = "read the mirror's topics";
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(storage(what))?;
    let tx = conn.unchecked_transaction().map_err(storage(what))?;
    let mut topics = Vec::new();
    {
        let mut rows = tx
            .prepare(
                "SELECT t.id, t.name, m.last_valid, m.last_seen \
                 FROM mirror_tips m JOIN topics t ON t.name = m.topic",
            )
            .map_err(storage(what))?;
        let mut rows = rows.query([]).map_err(storage(what))?;
        while let Some(row) = rows.next().map_err(storage(what))? {
            let id: i64 = row.get(0).map_err(storage(what))?;
            let topic = MirroredTopic {
                topic: row.get(1).map_err(storage(what))?,
                last_valid: row.get::<_, i64>(2).map_err(storage(what))? as u64,
                last_seen: row.get::<_, i64>(3).map_err(storage(what))? as u64,
                entries: Vec::new(),
            };
            topics.push((id, topic));
        }
    }
    let mut entries = tx
        .prepare("SELECT entry FROM entries WHERE pos >= ?1 AND pos < ?2 ORDER BY pos")
        .map_err(storage(what))?;
    for (id, mut topic) in topics {
        let (lo, hi) = crate::relay::store::position::range(id, 0);
        let mut rows = entries.query(params![lo, hi]).map_err(storage(what))?;
        while let Some(row) = rows.next().map_err(storage(what))? {
            let bytes: Vec<u8> = row.get(0).map_err(storage(what))?;
            topic.entries.push(bytes.into());
        }
        each(topic);
    }
    Ok(())
}

/// Removes the database at `path` and its WAL files, if present.
fn remove_files(path: &Path) -> Result<()> {
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
    Ok(())
}

/// The `meta` row `key`, if stored.
fn meta(conn: &rusqlite::Connection, key: &str) -> Result<Option<Vec<u8>>> {
    conn.query_row(
        "SELECT value FROM meta WHERE key = ?1",
        params![key],
        |row| row.get(0),
    )
    .optional()
    .map_err(storage("read the mirror's position"))
}

/// `bytes`, the next entry of `topic`, as the embedded store takes it; moves `frontier` past it.
fn mirrored(
    topic: &str,
    frontier: &mut Frontier,
    bytes: Arc<[u8]>,
    keys: &mut KeyCache,
) -> Result<Sequenced> {
    // Verified by the frontend that sequenced it; the stream is the relay's own log. Its
    // authors' keys are decompressed once each (`keys`).
    let entry = Entry::decode_unverified_cached(&bytes, keys)?;
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

    fn reopen(path: &std::path::Path) -> Mirror {
        let relay = Identity::from_seed(&[9; 32]).unwrap().agent_id();
        let health = Arc::new(StorageHealth::new(path.parent().unwrap().to_owned(), 0));
        Mirror::open(path, &relay, health).unwrap()
    }

    fn stream(created_ns: i128) -> StreamIdentity {
        StreamIdentity {
            name: "ANTS_LOG".into(),
            created_ns,
        }
    }

    fn sorted_heads(mirror: &Mirror) -> Vec<(String, u64, Hash)> {
        let mut heads = mirror.heads();
        heads.sort();
        heads
    }

    #[test]
    fn a_reopened_mirror_resumes_after_the_last_message_it_applied() {
        let (mut mirror, path) = mirror("resume");
        let extent = |last| StreamExtent { first: 1, last };
        assert_eq!(mirror.resume(&stream(7), extent(0)).unwrap(), 1);
        let t: Vec<Vec<u8>> = (0..3).map(|seq| entry("t", seq)).collect();
        mirror
            .apply(&[
                message(1, "t", 0, &t[..2]),
                message(2, "u", 0, &[entry("u", 0)]),
                // Void: its topic's tip stays at 1, but the position moves past it.
                message(3, "t", 0, &[entry("t", 0)]),
            ])
            .unwrap();
        let before = sorted_heads(&mirror);
        drop(mirror);

        let mut mirror = reopen(&path);
        assert_eq!(mirror.applied(), 3);
        assert_eq!(sorted_heads(&mirror), before);
        assert_eq!(mirror.resume(&stream(7), extent(5)).unwrap(), 4);
        // The tip survived: a message naming the void one as predecessor is void, one naming
        // the valid tip continues the topic.
        let applied = mirror
            .apply(&[message(4, "t", 3, &t[2..]), message(5, "t", 1, &t[2..])])
            .unwrap();
        assert_eq!(applied.len(), 1);
        assert_eq!(applied[0].1.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
        let leaves: Vec<&[u8]> = t.iter().map(Vec::as_slice).collect();
        assert_eq!(applied[0].2, merkle_root(&leaves));
        drop(mirror);
        assert_eq!(reopen(&path).applied(), 5);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_mirror_of_another_stream_or_of_messages_the_stream_lost_starts_over() {
        let t: Vec<Vec<u8>> = (0..2).map(|seq| entry("t", seq)).collect();
        let cases = [
            // Deleted and made again: another creation time.
            (stream(8), StreamExtent { first: 1, last: 1 }),
            // The stream no longer holds the message after the mirror's position.
            (stream(7), StreamExtent { first: 3, last: 9 }),
            // The stream is shorter than what the mirror applied.
            (stream(7), StreamExtent { first: 1, last: 0 }),
        ];
        let mut dirs = Vec::new();
        for (i, (identity, extent)) in cases.into_iter().enumerate() {
            // A directory each: a dropped store's checkpoint thread may still hold its files.
            let (mut mirror, path) = mirror(&format!("over-{i}"));
            dirs.push(path.clone());
            mirror
                .resume(&stream(7), StreamExtent { first: 1, last: 0 })
                .unwrap();
            mirror.apply(&[message(1, "t", 0, &t)]).unwrap();
            drop(mirror);
            let mut mirror = reopen(&path);
            assert_eq!(mirror.applied(), 1, "{extent:?}");
            assert_eq!(mirror.resume(&identity, extent).unwrap(), 1, "{extent:?}");
            assert_eq!(mirror.applied(), 0);
            assert!(mirror.heads().is_empty());
            let reader = crate::relay::store::ReadPool::new(path.clone());
            assert!(reader.entries("t", 0, 10).unwrap().is_empty());
            // Refilled from the first message, as a new mirror.
            let applied = mirror.apply(&[message(1, "t", 0, &t)]).unwrap();
            assert_eq!(applied[0].1.len(), 2);
        }
        // The same stream, holding the next message: resumed.
        let mut mirror = reopen(&dirs[2]);
        assert_eq!(
            mirror
                .resume(&stream(7), StreamExtent { first: 2, last: 2 })
                .unwrap(),
            2
        );
        for path in dirs {
            std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
        }
    }

    #[test]
    fn a_mirror_whose_bookkeeping_disagrees_with_its_entries_is_emptied() {
        let (mut mirror, path) = mirror("damaged");
        mirror
            .resume(&stream(7), StreamExtent { first: 1, last: 0 })
            .unwrap();
        mirror
            .apply(&[message(1, "t", 0, &[entry("t", 0)])])
            .unwrap();
        mirror
            .store
            .conn()
            .execute("DELETE FROM mirror_tips", [])
            .unwrap();
        drop(mirror);
        let mut mirror = reopen(&path);
        assert_eq!(mirror.applied(), 0);
        assert!(mirror.heads().is_empty());
        assert_eq!(
            mirror
                .resume(&stream(7), StreamExtent { first: 1, last: 1 })
                .unwrap(),
            1
        );
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
