//! The SQLite store's tables and the queries over them: schema and migration, the relay-key
//! binding, recovery of every topic's size, last time and counters, the subtree hashes (keyed
//! so that a commit appends them), replica snapshots and the op lookups of sequencing.
//! [`super::sqlite`] puts them together behind [`super::Store`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::index;
use super::position;
use super::recent::RecentOp;
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::log::{Hash, HashStore};

/// The database file name inside the data directory.
pub const DB_FILE: &str = "relay.sqlite3";

/// The tables besides `entries` (`position::ENTRIES`) and the lookup tables
/// (`index::INDEX_SCHEMA`). `entries.receipt` is empty: a receipt is a signature over what the row and the
/// topic's `node_hashes` already hold (seq, op id, the entry's relay time, the root at
/// `seq + 1`), so a retry is answered by signing the same statement again. (Relays before this
/// change stored the signed receipt there; a non-empty one is still sent as stored.) Not
/// storing it lets the sequencer sign a batch's receipts while the batch commits.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS topics (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS node_hashes (
    topic INTEGER NOT NULL REFERENCES topics(id),
    node  INTEGER NOT NULL,
    hash  BLOB    NOT NULL,
    PRIMARY KEY (topic, node)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS replica_snapshots (
    topic    INTEGER PRIMARY KEY REFERENCES topics(id),
    next_seq INTEGER NOT NULL,
    state    BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
";

/// Maps a storage failure to the relay's `UNAVAILABLE` code, with context.
pub(crate) fn storage(context: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Unavailable(format!("storage: {context}: {e}"))
}

/// SQLite stores signed 64-bit integers; counters and sequence numbers are stored bit-cast.
pub(crate) fn to_sql(value: u64) -> i64 {
    value as i64
}

pub(crate) fn from_sql(value: i64) -> u64 {
    value as u64
}

/// Opens (creating if needed) the database for writing, with the durability pragmas.
pub fn open_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(storage("open"))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(storage("journal_mode"))?;
    // The durability thread syncs the WAL before anything committed is announced.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(storage("synchronous"))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(storage("foreign_keys"))?;
    // 64 MiB of page cache (SQLite's default is 2 MiB): the lookup tables' B-trees, which a
    // generation's drain writes all over (`op_index` is keyed by random op ids), stay in
    // memory far longer.
    conn.pragma_update(None, "cache_size", -65_536)
        .map_err(storage("cache_size"))?;
    conn.execute_batch(SCHEMA).map_err(storage("schema"))?;
    conn.execute_batch(position::ENTRIES)
        .map_err(storage("entries"))?;
    conn.execute_batch(index::INDEX_SCHEMA)
        .map_err(storage("lookup tables"))?;
    migrate_level_keyed_hashes(&conn)?;
    // The lookup tables are filled from the old indexes' table, before it is rewritten.
    index::migrate_row_indexes(&conn)?;
    position::migrate_to_positions(&conn)?;
    Ok(conn)
}

/// Moves the subtree hashes of a database written before `node_hashes` (table `hashes`, keyed
/// by `(topic, level, idx)`) into `node_hashes`, and drops the old table, in one transaction: a
/// crash midway leaves the old table whole, and the next start migrates again. Nothing to do
/// on a newer database.
fn migrate_level_keyed_hashes(conn: &Connection) -> Result<()> {
    if !has_table(conn, "hashes")? {
        return Ok(());
    }
    let tx = conn
        .unchecked_transaction()
        .map_err(storage("begin the hashes migration"))?;
    let moved = {
        let mut read = tx
            .prepare("SELECT topic, level, idx, hash FROM hashes")
            .map_err(storage("read old hashes"))?;
        let mut write = tx
            .prepare("INSERT INTO node_hashes (topic, node, hash) VALUES (?1, ?2, ?3)")
            .map_err(storage("migrate hashes"))?;
        let mut rows = read.query([]).map_err(storage("read old hashes"))?;
        let mut moved = 0u64;
        while let Some(row) = rows.next().map_err(storage("read old hashes"))? {
            let topic: i64 = row.get(0).map_err(storage("read old hashes"))?;
            let level: u32 = row.get(1).map_err(storage("read old hashes"))?;
            let index = from_sql(row.get(2).map_err(storage("read old hashes"))?);
            let hash: Vec<u8> = row.get(3).map_err(storage("read old hashes"))?;
            let node = node_key(level, index).ok_or_else(|| {
                Error::Unavailable(format!("stored subtree ({level}, {index}) is out of range"))
            })?;
            write
                .execute(params![topic, node, hash])
                .map_err(storage("migrate hashes"))?;
            moved += 1;
        }
        moved
    };
    tx.execute("DROP TABLE hashes", [])
        .map_err(storage("drop old hashes"))?;
    tx.commit()
        .map_err(storage("commit the hashes migration"))?;
    tracing::info!(
        hashes = moved,
        "subtree hashes moved to the node-keyed table"
    );
    Ok(())
}

/// The `meta` row that names the relay key the database's log is signed with.
const RELAY_KEY: &str = "relay_key";

/// Binds the database to the key that signs its log: records `relay` the first time (also for a
/// database written before this record existed), and refuses any other key afterwards. The
/// receipts and checkpoints already given out name the recorded key; a relay that went on
/// under another would be reported `RELAY_KEY_CHANGED` by every client that pinned it.
///
/// Errors: `BAD_INPUT` naming both keys when the database belongs to another key;
/// `UNAVAILABLE` when storage fails.
pub fn bind_relay_key(conn: &Connection, relay: &AgentId) -> Result<()> {
    match relay_key_row(conn)? {
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                params![RELAY_KEY, &relay.as_bytes()[..]],
            )
            .map_err(storage("record the relay key"))?;
            Ok(())
        }
        Some(bytes) if bytes == relay.as_bytes() => Ok(()),
        Some(bytes) => Err(Error::BadInput(format!(
            "this data directory's log is signed by relay key {}, not {relay}: start with that \
             key file (--key), or with a new data directory",
            describe_key(&bytes)
        ))),
    }
}

/// The relay key recorded in the database at `path` by `bind_relay_key`, as text; `None`
/// when there is no database there or it has no record. Creates nothing: it lets a relay
/// whose key file is missing refuse before making a new key for an existing log.
///
/// Errors: `UNAVAILABLE` when the database cannot be read.
pub fn recorded_relay_key(path: &Path) -> Result<Option<String>> {
    if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(storage("open"))?;
    if !has_table(&conn, "meta")? {
        return Ok(None);
    }
    Ok(relay_key_row(&conn)?.map(|bytes| describe_key(&bytes)))
}

/// Whether the database has a table called `name`.
fn has_table(conn: &Connection, name: &str) -> Result<bool> {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        params![name],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
    .map_err(storage("read the schema"))
}

fn relay_key_row(conn: &Connection) -> Result<Option<Vec<u8>>> {
    conn.query_row(
        "SELECT value FROM meta WHERE key = ?1",
        params![RELAY_KEY],
        |row| row.get(0),
    )
    .optional()
    .map_err(storage("read the relay key"))
}

fn describe_key(bytes: &[u8]) -> String {
    AgentId::from_bytes(bytes).map_or_else(|_| "(unreadable)".to_owned(), |id| id.to_string())
}

/// WAL frames beyond which the writer checkpoints by itself. Under sustained writes the WAL
/// does reach it (measured: 200 MB after about 3 s at 5,000 ops/s): the [`spawn_checkpointer`]
/// thread copies committed frames into the database, but only a writer that finds every frame
/// copied can start the WAL over, and the writer commits while each copy runs. The writer's own
/// checkpoint then copies just the frames since the thread's last one and starts the WAL over;
/// those commits took 5–25 ms, two to six per 10 s run.
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 50_000;

/// How often the checkpointer thread copies committed WAL pages into the database file.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Moves WAL checkpoints off the writer: by default SQLite checkpoints inside the `COMMIT`
/// that crosses 1,000 WAL pages, which costs that commit (and every receipt waiting on it)
/// a database-file write and fsync. Here the writer `conn` only checkpoints past
/// `WRITER_AUTOCHECKPOINT_PAGES`, and a background thread runs `PASSIVE` checkpoints (which
/// never block the writer) every `CHECKPOINT_INTERVAL` through its own connection. The
/// thread ends once `alive`'s sender is dropped.
pub fn spawn_checkpointer(
    conn: &Connection,
    path: PathBuf,
    alive: std::sync::mpsc::Receiver<()>,
) -> Result<()> {
    conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)
        .map_err(storage("wal_autocheckpoint"))?;
    let checkpointer = Connection::open(&path).map_err(storage("open checkpointer"))?;
    checkpointer
        .busy_timeout(std::time::Duration::from_millis(50))
        .map_err(storage("busy_timeout"))?;
    std::thread::Builder::new()
        .name("ants-checkpoint".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                alive.recv_timeout(CHECKPOINT_INTERVAL)
            {
                let done = checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                    row.get::<_, i64>(0)
                });
                if let Err(error) = done {
                    tracing::warn!(%error, "WAL checkpoint failed");
                }
            }
        })
        .map_err(|e| Error::Unavailable(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(())
}

/// What a topic looked like in storage at startup.
#[derive(Debug, Clone, Default)]
pub struct RecoveredTopic {
    /// The topic's row id.
    pub id: i64,
    /// The topic name.
    pub name: String,
    /// The number of entries (the next sequence number).
    pub size: u64,
    /// The relay time of the last entry (0 when empty).
    pub last_time_ms: u64,
    /// Each author's highest sequenced counter.
    pub last_counters: HashMap<AgentId, u64>,
    /// The ops of the entries not yet in the lookup tables, in seq order.
    pub unindexed: Vec<RecentOp>,
}

/// Reads every topic's state back. Sequence numbers must be exactly `0..size` in each topic
/// (checked: a hole means a damaged database, and the relay refuses to start on one).
pub fn recover(conn: &Connection) -> Result<Vec<RecoveredTopic>> {
    let mut topics: Vec<RecoveredTopic> = Vec::new();
    let mut by_id = HashMap::new();
    {
        let mut stmt = conn
            .prepare("SELECT id, name FROM topics ORDER BY id")
            .map_err(storage("recover topics"))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(storage("recover topics"))?;
        for row in rows {
            let (id, name) = row.map_err(storage("recover topics"))?;
            by_id.insert(id, topics.len());
            topics.push(RecoveredTopic {
                id,
                name,
                ..RecoveredTopic::default()
            });
        }
    }
    // Sizes. `(topic, seq)` is the primary key, so MIN = 0 and COUNT = MAX + 1 mean the
    // sequence numbers are exactly `0..size`. COUNT is the rows of `counter_index` before the
    // topic's mark plus the entries from the mark on (read for the lookups anyway): counting
    // the entries themselves would read every entry blob. (So a hole before the mark, with its
    // `counter_index` row left, is not seen here; followers' proofs would expose it.)
    for state in topics.iter_mut() {
        let (lo, hi) = position::range(state.id, 0);
        let end = |order: &str| -> Result<Option<i64>> {
            conn.query_row(
                &format!(
                    "SELECT pos FROM entries WHERE pos >= ?1 AND pos < ?2 ORDER BY pos {order} \
                     LIMIT 1"
                ),
                params![lo, hi],
                |row| row.get::<_, i64>(0),
            )
            .optional()
            .map(|pos| pos.map(|pos| pos - lo))
            .map_err(storage("recover sizes"))
        };
        let (min, max) = (end("ASC")?, end("DESC")?);
        let (mark, unindexed) = index::unindexed(conn, state.id)?;
        let count =
            index::indexed_count(conn, state.id, mark)?.saturating_add(unindexed.len() as u64);
        state.unindexed = unindexed;
        let (Some(min), Some(max)) = (min, max) else {
            if count > 0 {
                return Err(Error::Unavailable(format!(
                    "storage: topic {:?} has no entries but {count} indexed",
                    state.name
                )));
            }
            continue;
        };
        if min != 0 || from_sql(max).checked_add(1) != Some(count) {
            return Err(Error::Unavailable(format!(
                "storage: topic {:?} has {count} entries numbered {min}..={max}",
                state.name
            )));
        }
        state.size = count;
    }
    // The relay time of each topic's last entry.
    for state in topics.iter_mut().filter(|t| t.size > 0) {
        let entry: Vec<u8> = conn
            .query_row(
                "SELECT entry FROM entries WHERE pos = ?1",
                params![position::pos(state.id, state.size - 1)?],
                |row| row.get(0),
            )
            .map_err(storage("recover last entry"))?;
        // Entry layout: version (1) ‖ seq (8) ‖ relay time (8) ‖ …
        if let Some(time) = entry.get(9..17) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(time);
            state.last_time_ms = u64::from_be_bytes(bytes);
        }
    }
    // Each author's highest counter: from `counter_index`, then from the entries not in it yet.
    for ((topic, author), counter) in index::indexed_counters(conn)? {
        let Some(&i) = by_id.get(&topic) else {
            return Err(Error::Unavailable(format!(
                "storage: counters of unknown topic {topic}"
            )));
        };
        topics[i].last_counters.insert(author, counter);
    }
    for state in topics.iter_mut() {
        for op in &state.unindexed {
            let last = state.last_counters.entry(op.author).or_insert(op.counter);
            *last = (*last).max(op.counter);
        }
    }
    Ok(topics)
}

/// A read view of one topic's complete-subtree hashes (table `node_hashes`), for rebuilding the
/// frontier at startup and serving proofs. The sequencer writes new subtrees itself, inside its
/// batch transaction, so `put_subtree` here is never used to store anything.
#[derive(Debug)]
pub struct SqlHashes<'c> {
    conn: &'c Connection,
    topic_id: i64,
}

impl<'c> SqlHashes<'c> {
    /// The hashes of topic `topic_id`.
    pub fn new(conn: &'c Connection, topic_id: i64) -> Self {
        SqlHashes { conn, topic_id }
    }
}

impl HashStore for SqlHashes<'_> {
    fn subtree(&self, level: u32, index: u64) -> Option<Hash> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT hash FROM node_hashes WHERE topic = ?1 AND node = ?2")
            .ok()?;
        let node = node_key(level, index)?;
        let bytes: Vec<u8> = stmt
            .query_row(params![self.topic_id, node], |row| row.get(0))
            .ok()?;
        bytes.try_into().ok()
    }

    fn put_subtree(&mut self, _level: u32, _index: u64, _hash: Hash) {
        // Read-only view: see the type's documentation.
    }
}

/// The `node_hashes` key of the complete subtree `index` at `level`: the last leaf it covers,
/// times 64, plus its level. Keys grow in the order subtrees complete, so a commit appends its
/// hashes at the end of the table's B-tree (one leaf page) instead of at the end of each level's
/// run (a page per level). `None` past 2^57 leaves.
pub(crate) fn node_key(level: u32, index: u64) -> Option<i64> {
    let last_leaf = index
        .checked_add(1)?
        .checked_mul(1u64.checked_shl(level)?)?
        .checked_sub(1)?;
    i64::try_from(last_leaf.checked_mul(64)?.checked_add(u64::from(level))?).ok()
}

/// Stores newly complete subtree hashes of a topic (inside the caller's transaction).
pub fn put_hashes(conn: &Connection, topic_id: i64, hashes: &[(u32, u64, Hash)]) -> Result<()> {
    let mut stmt = conn
        .prepare_cached("INSERT INTO node_hashes (topic, node, hash) VALUES (?1, ?2, ?3)")
        .map_err(storage("insert hash"))?;
    for (level, index, hash) in hashes {
        let node = node_key(*level, *index).ok_or_else(|| {
            Error::Unavailable(format!(
                "subtree ({level}, {index}) is beyond the store's range"
            ))
        })?;
        stmt.execute(params![topic_id, node, &hash[..]])
            .map_err(storage("insert hash"))?;
    }
    Ok(())
}

/// Replaces the stored replica snapshot of a topic: `state` is [`crate::replica::Replica::snapshot`]
/// after the entries `0..next_seq` (inside the caller's transaction, so it always matches the
/// stored entries).
pub fn put_replica_snapshot(
    conn: &Connection,
    topic_id: i64,
    next_seq: u64,
    state: &[u8],
) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO replica_snapshots (topic, next_seq, state) VALUES (?1, ?2, ?3)",
    )
    .and_then(|mut stmt| stmt.execute(params![topic_id, to_sql(next_seq), state]))
    .map(|_| ())
    .map_err(storage("store replica snapshot"))
}

/// The latest replica snapshot of a topic, as `(next_seq, state bytes)`.
pub fn replica_snapshot(conn: &Connection, topic_id: i64) -> Result<Option<(u64, Vec<u8>)>> {
    conn.query_row(
        "SELECT next_seq, state FROM replica_snapshots WHERE topic = ?1",
        params![topic_id],
        |row| Ok((from_sql(row.get(0)?), row.get(1)?)),
    )
    .optional()
    .map_err(storage("load replica snapshot"))
}

/// A stored op: what a retry is compared against.
#[derive(Debug, Clone)]
pub struct StoredOp {
    /// Its sequence number.
    pub seq: u64,
    /// Its op id.
    pub op_id: [u8; 32],
    /// The receipt sent when it was sequenced, as stored: empty when it was not stored (see
    /// [`SCHEMA`]'s `receipt` column) and must be signed again.
    pub receipt: Vec<u8>,
    /// The entry's canonical bytes.
    pub entry: Vec<u8>,
}

/// The stored op at `seq` in topic `topic_id`.
pub fn op_at_seq(conn: &Connection, topic_id: i64, seq: u64) -> Result<Option<StoredOp>> {
    let mut stmt = conn
        .prepare_cached("SELECT op_id, receipt, entry FROM entries WHERE pos = ?1")
        .map_err(storage("lookup counter"))?;
    stmt.query_row(params![position::pos(topic_id, seq)?], |row| {
        let op_id: Vec<u8> = row.get(0)?;
        let mut id = [0u8; 32];
        if op_id.len() == 32 {
            id.copy_from_slice(&op_id);
        }
        Ok(StoredOp {
            seq,
            op_id: id,
            receipt: row.get(1)?,
            entry: row.get(2)?,
        })
    })
    .optional()
    .map_err(storage("lookup counter"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_keys_grow_in_the_order_subtrees_complete() {
        let mut frontier = crate::log::Frontier::new();
        let mut keys = Vec::new();
        for leaf in 0..1000u64 {
            frontier
                .append_hash(
                    crate::log::leaf_hash(&leaf.to_be_bytes()),
                    |level, index, _| {
                        keys.push(node_key(level, index).unwrap());
                    },
                )
                .unwrap();
        }
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(node_key(0, 0), Some(0));
        assert_eq!(node_key(1, 0), Some(64 + 1));
        assert_eq!(node_key(0, (1 << 57) - 1), Some(((1 << 57) - 1) * 64));
        assert_eq!(node_key(0, 1 << 57), None);
        assert_eq!(node_key(63, 1), None);
        assert_eq!(node_key(64, 0), None);
    }

    #[test]
    fn a_database_with_level_keyed_hashes_is_migrated_once_and_reads_the_same() {
        let dir = std::env::temp_dir().join(format!("ants-store-migrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(DB_FILE);
        // The tree of 21 leaves as the old layout stored it: every complete subtree by level.
        let mut frontier = crate::log::Frontier::new();
        let mut complete = Vec::new();
        for leaf in 0..21u64 {
            frontier
                .append_hash(
                    crate::log::leaf_hash(&leaf.to_be_bytes()),
                    |level, index, hash| {
                        complete.push((level, index, *hash));
                    },
                )
                .unwrap();
        }
        assert_eq!(complete.len(), 21 + 10 + 5 + 2 + 1);
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE topics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
                 INSERT INTO topics (id, name) VALUES (1, 't');
                 CREATE TABLE hashes (topic INTEGER NOT NULL REFERENCES topics(id),
                     level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
                     PRIMARY KEY (topic, level, idx)) WITHOUT ROWID;",
            )
            .unwrap();
            for (level, index, hash) in &complete {
                old.execute(
                    "INSERT INTO hashes (topic, level, idx, hash) VALUES (1, ?1, ?2, ?3)",
                    params![level, to_sql(*index), &hash[..]],
                )
                .unwrap();
            }
        }
        for _ in 0..2 {
            let conn = open_writer(&path).unwrap();
            let hashes = SqlHashes::new(&conn, 1);
            for (level, index, hash) in &complete {
                assert_eq!(
                    hashes.subtree(*level, *index),
                    Some(*hash),
                    "({level}, {index})"
                );
            }
            let reopened = crate::log::MerkleLog::open(SqlHashes::new(&conn, 1), 21).unwrap();
            assert_eq!(reopened.root(), frontier.root());
            let old_left: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'hashes'",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            assert_eq!(old_left, 0);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn recovery_reads_sizes_times_and_counters_and_refuses_holes() {
        let dir = std::env::temp_dir().join(format!("ants-store-recover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conn = open_writer(&dir.join(DB_FILE)).unwrap();
        let alice = crate::Identity::from_seed(&[1; 32]).unwrap().agent_id();
        let bob = crate::Identity::from_seed(&[2; 32]).unwrap().agent_id();
        conn.execute_batch("INSERT INTO topics (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
            .unwrap();
        let rows = [
            (1, 0u64, alice, 5u64, 100u64),
            (1, 1, bob, 1, 90),
            (1, 2, alice, 7, 120),
            (2, 0, bob, u64::MAX - 1, 5),
            (2, 1, bob, 3, 6),
        ];
        for (topic, seq, author, counter, time) in rows {
            let mut entry = vec![1u8];
            entry.extend_from_slice(&seq.to_be_bytes());
            entry.extend_from_slice(&time.to_be_bytes());
            conn.execute(
                "INSERT INTO entries (pos, topic, seq, author, counter, op_id, entry, receipt) \
                 VALUES ((?1 << 40) + ?2, ?1, ?2, ?3, ?4, ?5, ?6, x'')",
                params![
                    topic,
                    to_sql(seq),
                    &author.as_bytes()[..],
                    to_sql(counter),
                    &[seq as u8; 32][..],
                    entry
                ],
            )
            .unwrap();
        }
        let topics = recover(&conn).unwrap();
        let a = &topics[0];
        assert_eq!((a.name.as_str(), a.size, a.last_time_ms), ("a", 3, 120));
        assert_eq!(a.last_counters[&alice], 7);
        assert_eq!(a.last_counters[&bob], 1);
        let b = &topics[1];
        assert_eq!((b.size, b.last_time_ms), (2, 6));
        assert_eq!(
            b.last_counters[&bob],
            u64::MAX - 1,
            "counters above 2^63 compare as u64"
        );
        assert_eq!((topics[2].size, topics[2].last_counters.len()), (0, 0));
        conn.execute("DELETE FROM entries WHERE topic = 1 AND seq = 1", [])
            .unwrap();
        assert_eq!(recover(&conn).unwrap_err().code(), "UNAVAILABLE");
        drop(conn);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
