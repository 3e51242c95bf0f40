//! Durable storage of Yjs rooms: their own SQLite database in the data directory
//! ([`YJS_DB_FILE`]), WAL mode with `synchronous = FULL` like the op store (see
//! [`crate::relay::store`] for why FULL).
//!
//! A separate file, not tables in the op database: SQLite has one writer per database, and the
//! op sequencer owns that writer for its group commits (its connection does not wait on a busy
//! lock). Room writes on the same file would stall op sequencing behind document fsyncs, or make
//! the sequencer's `BEGIN` fail. Two files, two independent writers.
//!
//! Tables:
//!
//! - `yjs_updates (id, room, bytes)`: every Yjs v1 update a room accepted, appended in the order
//!   the room applied them (`id` increases);
//! - `yjs_snapshots (room, snapshot, updates)`: the room's state as one v1 update
//!   (`Y.encodeStateAsUpdate`), written by compaction, which deletes the room's update rows in
//!   the same transaction. `updates` counts the update rows folded in, for information.
//!
//! A room is the snapshot (if any) followed by its update rows in `id` order.
//!
//! Connections: one writer (appends and compactions; SQLite has one writer per database) and up
//! to [`ROOM_READERS`] read connections for loading rooms, opened when first needed and closed
//! by [`RoomStore::close_idle_readers`]. In WAL mode readers never wait for the writer nor the
//! writer for them, so rooms that are being opened do not hold up the commits of rooms that
//! are open (they used to share one connection behind one mutex).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::relay::store::storage;

/// The database file of Yjs rooms inside the data directory.
pub const YJS_DB_FILE: &str = "yjs.sqlite3";
/// Most read connections a room store opens (rooms loading at once).
pub const ROOM_READERS: usize = 4;
/// Page cache of one read connection, in KiB (SQLite's default is 2,000 KiB per connection).
const READER_CACHE_KIB: i64 = 512;
/// Longest a read connection waits for a lock before its load fails `UNAVAILABLE`.
const READER_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS yjs_updates (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    room  TEXT    NOT NULL,
    bytes BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS yjs_updates_by_room ON yjs_updates (room, id);
CREATE TABLE IF NOT EXISTS yjs_snapshots (
    room     TEXT    PRIMARY KEY,
    snapshot BLOB    NOT NULL,
    updates  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS yjs_bridged (
    topic    TEXT    PRIMARY KEY,
    next_seq INTEGER NOT NULL,
    root     BLOB    NOT NULL,
    counter  INTEGER NOT NULL,
    snapshot BLOB    NOT NULL
) WITHOUT ROWID;
";

/// A bridged room's document as of a point of its topic's log: a cache that spares a room
/// opening again the replay of every entry before `next_seq` (PROTOCOL.md 8.10). Never the
/// truth: a room uses it only when the log's Merkle root at `next_seq` is still `root` (the
/// same log), and replays the entries from `next_seq` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgedCheckpoint {
    /// The topic's entries `0..next_seq` are folded into `snapshot`.
    pub next_seq: u64,
    /// The topic's Merkle root over those entries.
    pub root: [u8; 32],
    /// The highest counter of the relay's own ops among them.
    pub counter: u64,
    /// The document as one v1 update (`Y.encodeStateAsUpdate`).
    pub snapshot: Vec<u8>,
}

/// A room as stored: its snapshot, then the updates appended since.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredRoom {
    /// The last compaction's snapshot (a v1 update), if the room was ever compacted.
    pub snapshot: Option<Vec<u8>>,
    /// The v1 updates appended after the snapshot, in order.
    pub updates: Vec<Vec<u8>>,
}

/// The Yjs room database: one writer connection, and a small pool of read connections for
/// loading rooms. Each call is one short transaction; every room batches its updates into one
/// call (one fsync per batch).
#[derive(Debug)]
pub struct RoomStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    /// Read connections, `None` until needed or after [`RoomStore::close_idle_readers`].
    readers: Vec<Mutex<Option<Connection>>>,
    next_reader: AtomicUsize,
}

impl RoomStore {
    /// Opens (creating if needed) the database at `path` with the durability pragmas.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(storage("open yjs rooms"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(storage("journal_mode"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(storage("synchronous"))?;
        conn.execute_batch(SCHEMA).map_err(storage("yjs schema"))?;
        Ok(RoomStore {
            path: path.to_owned(),
            writer: Mutex::new(conn),
            readers: (0..ROOM_READERS).map(|_| Mutex::new(None)).collect(),
            next_reader: AtomicUsize::new(0),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self
            .writer
            .lock()
            .map_err(|_| Error::Unavailable("storage: yjs room store poisoned".into()))?;
        f(&mut conn)
    }

    /// Runs `f` on a read connection: a free one if any, else waits for one (in turn).
    fn read<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let poisoned = || Error::Unavailable("storage: yjs room reader poisoned".into());
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let free = (0..self.readers.len())
            .map(|i| &self.readers[(start + i) % self.readers.len()])
            .find_map(|reader| reader.try_lock().ok());
        let mut slot: MutexGuard<'_, Option<Connection>> = match free {
            Some(slot) => slot,
            None => self.readers[start % self.readers.len()]
                .lock()
                .map_err(|_| poisoned())?,
        };
        let conn = match slot.as_mut() {
            Some(conn) => conn,
            None => {
                let conn = Connection::open(&self.path).map_err(storage("open yjs reader"))?;
                // A reader can meet a brief lock while the writer checkpoints the WAL.
                conn.busy_timeout(READER_BUSY_TIMEOUT)
                    .map_err(storage("reader busy_timeout"))?;
                conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)
                    .map_err(storage("reader cache_size"))?;
                slot.insert(conn)
            }
        };
        f(conn)
    }

    /// Closes the read connections nobody is using (they reopen when a room loads again): with
    /// no room open, their page caches are memory held for nothing.
    pub fn close_idle_readers(&self) {
        for reader in &self.readers {
            if let Ok(mut slot) = reader.try_lock() {
                *slot = None;
            }
        }
    }

    /// How many read connections are open (for tests and metrics).
    pub fn open_readers(&self) -> usize {
        self.readers
            .iter()
            .filter(|reader| reader.lock().map(|slot| slot.is_some()).unwrap_or(false))
            .count()
    }

    /// Reads room `room` back (empty if never stored).
    pub fn load(&self, room: &str) -> Result<StoredRoom> {
        self.read(|conn| {
            let tx = conn.transaction().map_err(storage("load room"))?;
            let snapshot = tx
                .query_row(
                    "SELECT snapshot FROM yjs_snapshots WHERE room = ?1",
                    params![room],
                    |row| row.get::<_, Vec<u8>>(0),
                )
                .optional()
                .map_err(storage("load room snapshot"))?;
            let updates = {
                let mut stmt = tx
                    .prepare_cached("SELECT bytes FROM yjs_updates WHERE room = ?1 ORDER BY id")
                    .map_err(storage("load room updates"))?;
                let rows = stmt
                    .query_map(params![room], |row| row.get::<_, Vec<u8>>(0))
                    .map_err(storage("load room updates"))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(storage("load room updates"))?
            };
            tx.commit().map_err(storage("load room"))?;
            Ok(StoredRoom { snapshot, updates })
        })
    }

    /// Appends `updates` to room `room` in one transaction; durable when this returns `Ok`.
    pub fn append(&self, room: &str, updates: &[Vec<u8>]) -> Result<()> {
        self.write_all(&[(room.to_owned(), RoomWrite::Append(updates.to_vec()))])
    }

    /// Replaces room `room`'s snapshot with `snapshot` and deletes its update rows, in one
    /// transaction. The caller guarantees `snapshot` contains every stored update of the room.
    pub fn compact(&self, room: &str, snapshot: &[u8]) -> Result<()> {
        self.write_all(&[(room.to_owned(), RoomWrite::Compact(snapshot.to_vec()))])
    }

    /// Makes the writes of several rooms in one transaction (group commit: one fsync for all),
    /// in order; durable when this returns `Ok`, none made on an error.
    pub fn write_all(&self, writes: &[(String, RoomWrite)]) -> Result<()> {
        if writes
            .iter()
            .all(|(_, w)| matches!(w, RoomWrite::Append(u) if u.is_empty()))
        {
            return Ok(());
        }
        self.with(|conn| {
            let tx = conn.transaction().map_err(storage("write rooms"))?;
            for (room, write) in writes {
                match write {
                    RoomWrite::Append(updates) => append_in(&tx, room, updates)?,
                    RoomWrite::Compact(snapshot) => compact_in(&tx, room, snapshot)?,
                    RoomWrite::Checkpoint(checkpoint) => {
                        tx.execute(
                            "INSERT OR REPLACE INTO yjs_bridged \
                             (topic, next_seq, root, counter, snapshot) VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![
                                room,
                                checkpoint.next_seq as i64,
                                &checkpoint.root[..],
                                checkpoint.counter as i64,
                                checkpoint.snapshot
                            ],
                        )
                        .map_err(storage("write bridged room checkpoint"))?;
                    }
                }
            }
            tx.commit().map_err(storage("commit room writes"))
        })
    }

    /// The checkpoint of the room bridged to `topic`, if one was written.
    pub fn bridged(&self, topic: &str) -> Result<Option<BridgedCheckpoint>> {
        self.read(|conn| {
            conn.query_row(
                "SELECT next_seq, root, counter, snapshot FROM yjs_bridged WHERE topic = ?1",
                params![topic],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, Vec<u8>>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, Vec<u8>>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(storage("load bridged room checkpoint"))?
            .map(|(next_seq, root, counter, snapshot)| {
                let root = root.try_into().map_err(|_| {
                    Error::Unavailable(
                        "storage: a bridged room checkpoint's root is not 32 bytes".into(),
                    )
                })?;
                Ok(BridgedCheckpoint {
                    next_seq: next_seq as u64,
                    root,
                    counter: counter as u64,
                    snapshot,
                })
            })
            .transpose()
        })
    }

    /// The number of update rows stored for `room` (not counting its snapshot).
    pub fn update_rows(&self, room: &str) -> Result<u64> {
        self.read(|conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM yjs_updates WHERE room = ?1",
                params![room],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(storage("count room updates"))
        })
    }
}

/// One room's write, for [`RoomStore::write_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomWrite {
    /// Append these v1 updates to the room (as [`RoomStore::append`]).
    Append(Vec<Vec<u8>>),
    /// Replace the room's snapshot and delete its update rows (as [`RoomStore::compact`]).
    Compact(Vec<u8>),
    /// Replace the checkpoint of the room bridged to the topic named in the room's place
    /// ([`RoomStore::bridged`]).
    Checkpoint(BridgedCheckpoint),
}

fn append_in(tx: &rusqlite::Transaction<'_>, room: &str, updates: &[Vec<u8>]) -> Result<()> {
    let mut stmt = tx
        .prepare_cached("INSERT INTO yjs_updates (room, bytes) VALUES (?1, ?2)")
        .map_err(storage("append room update"))?;
    for update in updates {
        stmt.execute(params![room, update])
            .map_err(storage("append room update"))?;
    }
    Ok(())
}

fn compact_in(tx: &rusqlite::Transaction<'_>, room: &str, snapshot: &[u8]) -> Result<()> {
    let folded = tx
        .execute("DELETE FROM yjs_updates WHERE room = ?1", params![room])
        .map_err(storage("compact room"))?;
    let before: i64 = tx
        .query_row(
            "SELECT updates FROM yjs_snapshots WHERE room = ?1",
            params![room],
            |row| row.get(0),
        )
        .optional()
        .map_err(storage("compact room"))?
        .unwrap_or(0);
    tx.execute(
        "INSERT INTO yjs_snapshots (room, snapshot, updates) VALUES (?1, ?2, ?3) \
         ON CONFLICT (room) DO UPDATE SET snapshot = excluded.snapshot, \
         updates = excluded.updates",
        params![room, snapshot, before.saturating_add(folded as i64)],
    )
    .map_err(storage("compact room"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store(name: &str) -> (RoomStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "ants-yjs-store-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        (RoomStore::open(&dir.join(YJS_DB_FILE)).unwrap(), dir)
    }

    #[test]
    fn append_compact_and_reload() {
        let (store, dir) = temp_store("roundtrip");
        assert_eq!(store.load("a").unwrap(), StoredRoom::default());
        store.append("a", &[vec![1], vec![2]]).unwrap();
        store.append("b", &[vec![9]]).unwrap();
        store.append("a", &[vec![3]]).unwrap();
        assert_eq!(
            store.load("a").unwrap(),
            StoredRoom {
                snapshot: None,
                updates: vec![vec![1], vec![2], vec![3]]
            }
        );
        store.compact("a", &[7, 7]).unwrap();
        store.append("a", &[vec![4]]).unwrap();
        drop(store);
        let store = RoomStore::open(&dir.join(YJS_DB_FILE)).unwrap();
        assert_eq!(
            store.load("a").unwrap(),
            StoredRoom {
                snapshot: Some(vec![7, 7]),
                updates: vec![vec![4]]
            }
        );
        assert_eq!(store.update_rows("a").unwrap(), 1);
        assert_eq!(store.load("b").unwrap().updates, vec![vec![9]]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn several_rooms_write_in_one_transaction_in_order() {
        let (store, dir) = temp_store("group");
        store
            .write_all(&[
                ("a".into(), RoomWrite::Append(vec![vec![1]])),
                ("b".into(), RoomWrite::Append(vec![vec![2], vec![3]])),
                ("a".into(), RoomWrite::Compact(vec![5, 5])),
                ("a".into(), RoomWrite::Append(vec![vec![6]])),
            ])
            .unwrap();
        assert_eq!(
            store.load("a").unwrap(),
            StoredRoom {
                snapshot: Some(vec![5, 5]),
                updates: vec![vec![6]]
            }
        );
        assert_eq!(store.load("b").unwrap().updates, vec![vec![2], vec![3]]);
        // Loads opened read connections; closing the idle ones leaves the store usable.
        assert!(store.open_readers() >= 1);
        store.close_idle_readers();
        assert_eq!(store.open_readers(), 0);
        assert_eq!(store.update_rows("a").unwrap(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
