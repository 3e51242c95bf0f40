//! Read-only connections for replay and proofs, beside the writer (WAL lets them run while it
//! writes).

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::sql::{from_sql, storage, to_sql, SqlHashes};
use crate::error::Result;

/// Read-only connections for replaying stored entries, reused between requests.
#[derive(Debug)]
pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    /// A pool over the database at `path` (which the writer has created).
    pub fn new(path: PathBuf) -> Self {
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(storage("open reader"))?,
        };
        let out = f(&conn);
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < 8 {
                idle.push(conn);
            }
        }
        out
    }

    /// Up to `limit` entries of `topic` from `from_seq` on, in order, as `(seq, entry bytes)`.
    pub fn entries(&self, topic: &str, from_seq: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, entry FROM entries \
                     WHERE pos >= ((SELECT id FROM topics WHERE name = ?1) << 40) + ?2 \
                     AND pos < ((SELECT id FROM topics WHERE name = ?1) + 1) << 40 \
                     ORDER BY pos LIMIT ?3",
                )
                .map_err(storage("replay"))?;
            // Positions hold seqs below 2^40 (`super::position`).
            let from_seq = from_seq.min(1 << 40);
            let rows = stmt
                .query_map(params![topic, to_sql(from_seq), limit as i64], |row| {
                    Ok((from_sql(row.get(0)?), row.get::<_, Vec<u8>>(1)?))
                })
                .map_err(storage("replay"))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(storage("replay"))
        })
    }

    /// Runs `f` over the stored subtree hashes of `topic` (`None` if the topic is unknown).
    pub fn with_hashes<T>(
        &self,
        topic: &str,
        f: impl FnOnce(SqlHashes<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        self.with(|conn| {
            let id: Option<i64> = conn
                .query_row(
                    "SELECT id FROM topics WHERE name = ?1",
                    params![topic],
                    |row| row.get(0),
                )
                .optional()
                .map_err(storage("lookup topic"))?;
            match id {
                Some(id) => f(SqlHashes::new(conn, id)).map(Some),
                None => Ok(None),
            }
        })
    }

    /// The entry at `seq` of `topic`, if stored.
    pub fn entry(&self, topic: &str, seq: u64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .entries(topic, seq, 1)?
            .into_iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, entry)| entry))
    }
}
