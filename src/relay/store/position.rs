//! Where an entry sits in the SQLite store: its row id, `pos = topic << 40 | seq`.
//!
//! Why: `entries` was a `WITHOUT ROWID` table keyed `(topic, seq)`. SQLite keeps such a table
//! as an index B-tree, and appending to one rebalances the last leaves with their neighbours
//! whenever the last fills: a group commit of 8 entries (about 2 KiB) rewrote 5 pages of it
//! (3.6 leaves, 1.5 interior, measured with a replay of the relay's writes through
//! `scripts/wal-pages.py`). A rowid table appended at its end fills the last leaf and starts
//! the next (SQLite's `balance_quick`), 1.5 pages a commit. One topic's entries are one run of
//! row ids, in seq order, so a topic is read and written as before.
//!
//! Bounds: seqs below 2^40 (a trillion entries a topic) and topic row ids below 2^23 (8
//! million topics); beyond them an append is refused `UNAVAILABLE`, nothing stored.

use rusqlite::{params, Connection};

use super::sql::{storage, to_sql};
use crate::error::{Error, Result};

/// Bits of `pos` for the seq.
const SEQ_BITS: u32 = 40;

/// The row id of entry `seq` of topic `topic`.
///
/// Errors: `UNAVAILABLE` beyond the bounds in the module's documentation.
pub fn pos(topic: i64, seq: u64) -> Result<i64> {
    if !(0..1 << (63 - SEQ_BITS)).contains(&topic) || seq >= 1 << SEQ_BITS {
        return Err(Error::Unavailable(format!(
            "storage: entry {seq} of topic row {topic} is beyond the store's range"
        )));
    }
    Ok(topic << SEQ_BITS | to_sql(seq))
}

/// The row ids of topic `topic`'s entries from `from_seq` on: `lo..hi`.
pub fn range(topic: i64, from_seq: u64) -> (i64, i64) {
    let base = topic.saturating_mul(1 << SEQ_BITS);
    let lo = base.saturating_add(to_sql(from_seq.min(1 << SEQ_BITS)));
    (lo, base.saturating_add(1 << SEQ_BITS))
}

/// The `entries` table as rows at their position (the rest of the schema is
/// [`super::sql::SCHEMA`]).
pub const ENTRIES: &str = "
CREATE TABLE IF NOT EXISTS entries (
    pos     INTEGER PRIMARY KEY,
    topic   INTEGER NOT NULL REFERENCES topics(id),
    seq     INTEGER NOT NULL,
    author  BLOB    NOT NULL,
    counter INTEGER NOT NULL,
    op_id   BLOB    NOT NULL,
    entry   BLOB    NOT NULL,
    receipt BLOB    NOT NULL
);
";

/// Rewrites `entries` with every row at its position when it is not so: a database written
/// before positions (no `pos` column), or one a relay from before them appended to (SQLite
/// gave its rows the next free row id, so the last row is out of place). One transaction: a
/// crash midway leaves the old table whole, and the next start does it again. Takes a while
/// on a large log (every entry is copied once); nothing to do otherwise.
pub fn migrate_to_positions(conn: &Connection) -> Result<()> {
    let has_pos: bool = conn
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('entries') WHERE name = 'pos'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map_err(storage("read the entries table's columns"))?
        > 0;
    if has_pos {
        let out_of_place: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM (SELECT pos, topic, seq FROM entries ORDER BY pos DESC \
                 LIMIT 1) WHERE pos != (topic << 40) + seq",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map_err(storage("check the last entry's position"))?
            > 0;
        if !out_of_place {
            return Ok(());
        }
    }
    let tx = conn
        .unchecked_transaction()
        .map_err(storage("begin the positions migration"))?;
    tx.execute_batch(&format!(
        "ALTER TABLE entries RENAME TO entries_before_positions;
         {ENTRIES}
         INSERT INTO entries (pos, topic, seq, author, counter, op_id, entry, receipt)
             SELECT (topic << 40) + seq, topic, seq, author, counter, op_id, entry, receipt
             FROM entries_before_positions ORDER BY topic, seq;
         DROP TABLE entries_before_positions;"
    ))
    .map_err(storage("move entries to their positions"))?;
    tx.commit()
        .map_err(storage("commit the positions migration"))?;
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM entries", [], |row| row.get(0))
        .map_err(storage("count entries"))?;
    tracing::info!(entries = rows, "entries moved to their positions");
    Ok(())
}

/// Inserts an entry row at its position (inside the caller's transaction).
pub fn insert_entry(
    conn: &Connection,
    topic: i64,
    seq: u64,
    author: &[u8],
    counter: u64,
    op_id: &[u8],
    entry: &[u8],
) -> Result<()> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO entries (pos, topic, seq, author, counter, op_id, entry, receipt) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, x'')",
        )
        .map_err(storage("insert entry"))?;
    stmt.execute(params![
        pos(topic, seq)?,
        topic,
        to_sql(seq),
        author,
        to_sql(counter),
        op_id,
        entry
    ])
    .map_err(storage("insert entry"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_keep_each_topic_in_seq_order_and_refuse_what_does_not_fit() {
        assert_eq!(pos(1, 0).unwrap(), 1 << 40);
        assert!(pos(1, (1 << 40) - 1).unwrap() < pos(2, 0).unwrap());
        assert_eq!(pos(1, 1 << 40).unwrap_err().code(), "UNAVAILABLE");
        assert_eq!(pos(1 << 23, 0).unwrap_err().code(), "UNAVAILABLE");
        assert_eq!(pos(-1, 0).unwrap_err().code(), "UNAVAILABLE");
        assert_eq!(range(3, 5), (pos(3, 5).unwrap(), pos(4, 0).unwrap()));
        assert_eq!(range(3, u64::MAX).0, pos(4, 0).unwrap());
    }

    #[test]
    fn an_old_entries_table_and_rows_an_old_relay_appended_are_moved_to_their_positions() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE topics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
             INSERT INTO topics (id, name) VALUES (1, 'a'), (2, 'b');
             CREATE TABLE entries (topic INTEGER NOT NULL, seq INTEGER NOT NULL,
                 author BLOB NOT NULL, counter INTEGER NOT NULL, op_id BLOB NOT NULL,
                 entry BLOB NOT NULL, receipt BLOB NOT NULL, PRIMARY KEY (topic, seq))
                 WITHOUT ROWID;",
        )
        .unwrap();
        let insert = |topic: i64, seq: i64| {
            conn.execute(
                "INSERT INTO entries (topic, seq, author, counter, op_id, entry, receipt) \
                 VALUES (?1, ?2, x'aa', ?2, x'bb', ?3, x'')",
                params![topic, seq, format!("{topic}/{seq}").into_bytes()],
            )
            .unwrap();
        };
        for (topic, seq) in [(2, 0), (1, 0), (1, 1), (2, 1)] {
            insert(topic, seq);
        }
        let rows = |conn: &Connection| -> Vec<(i64, Vec<u8>)> {
            let mut stmt = conn
                .prepare("SELECT pos, entry FROM entries ORDER BY pos")
                .unwrap();
            let rows = stmt
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .unwrap();
            rows.map(Result::unwrap).collect()
        };
        let placed = |list: &[(i64, i64)]| -> Vec<(i64, Vec<u8>)> {
            list.iter()
                .map(|&(t, s)| (pos(t, s as u64).unwrap(), format!("{t}/{s}").into_bytes()))
                .collect()
        };
        migrate_to_positions(&conn).unwrap();
        assert_eq!(rows(&conn), placed(&[(1, 0), (1, 1), (2, 0), (2, 1)]));
        migrate_to_positions(&conn).unwrap();
        assert_eq!(rows(&conn), placed(&[(1, 0), (1, 1), (2, 0), (2, 1)]));
        // An old relay appends as it always did: SQLite picks the row ids.
        insert(1, 2);
        assert_ne!(rows(&conn)[4].0, pos(1, 2).unwrap());
        migrate_to_positions(&conn).unwrap();
        assert_eq!(
            rows(&conn),
            placed(&[(1, 0), (1, 1), (1, 2), (2, 0), (2, 1)])
        );
    }
}
