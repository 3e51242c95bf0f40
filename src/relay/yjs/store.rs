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

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::relay::store::storage;

/// The database file of Yjs rooms inside the data directory.
pub const YJS_DB_FILE: &str = "yjs.sqlite3";

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
";

/// A room as stored: its snapshot, then the updates appended since.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredRoom {
    /// The last compaction's snapshot (a v1 update), if the room was ever compacted.
    pub snapshot: Option<Vec<u8>>,
    /// The v1 updates appended after the snapshot, in order.
    pub updates: Vec<Vec<u8>>,
}

/// The Yjs room database. One connection behind a mutex: each call is one short transaction,
/// and every room batches its updates into one call (one fsync per batch).
#[derive(Debug)]
pub struct RoomStore {
    conn: Mutex<Connection>,
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
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| Error::Unavailable("storage: yjs room store poisoned".into()))?;
        f(&mut conn)
    }

    /// Reads room `room` back (empty if never stored).
    pub fn load(&self, room: &str) -> Result<StoredRoom> {
        self.with(|conn| {
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
        if updates.is_empty() {
            return Ok(());
        }
        self.with(|conn| {
            let tx = conn.transaction().map_err(storage("append room updates"))?;
            {
                let mut stmt = tx
                    .prepare_cached("INSERT INTO yjs_updates (room, bytes) VALUES (?1, ?2)")
                    .map_err(storage("append room update"))?;
                for update in updates {
                    stmt.execute(params![room, update])
                        .map_err(storage("append room update"))?;
                }
            }
            tx.commit().map_err(storage("commit room updates"))
        })
    }

    /// Replaces room `room`'s snapshot with `snapshot` and deletes its update rows, in one
    /// transaction. The caller guarantees `snapshot` contains every stored update of the room.
    pub fn compact(&self, room: &str, snapshot: &[u8]) -> Result<()> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(storage("compact room"))?;
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
            tx.commit().map_err(storage("commit room compaction"))
        })
    }

    /// The number of update rows stored for `room` (not counting its snapshot).
    pub fn update_rows(&self, room: &str) -> Result<u64> {
        self.with(|conn| {
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
}
