//! The SQLite store's lookup tables, written a generation at a time ([`super::recent`]):
//! `op_index` (an op id's first 8 bytes → its entry), `counter_index` ((topic, author,
//! counter) → seq) and `index_marks` (each topic's first seq not yet in them). Their schema,
//! the migration from the per-row SQLite indexes that relays kept before, the writes of a
//! drain, the lookups, and reading back at startup what the tables do not hold yet.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::recent::{Drain, RecentOp};
use super::sql::{from_sql, storage, to_sql};
use crate::error::{Error, Result};
use crate::identity::AgentId;

/// The lookup tables. `op_index` keys an op by the first 8 bytes of its id (a smaller key packs
/// more rows a page, and a generation's rows then fall on fewer pages); a lookup compares the
/// whole id with the entry row it points to.
pub const INDEX_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS op_index (
    prefix BLOB    NOT NULL,
    topic  INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (prefix, topic, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counter_index (
    topic   INTEGER NOT NULL,
    author  BLOB    NOT NULL,
    counter INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (topic, author, counter)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_marks (
    topic   INTEGER PRIMARY KEY,
    indexed INTEGER NOT NULL
);
";

/// Replaces the SQLite indexes `entries_by_op` and `entries_by_author` of a database written
/// before the lookup tables (each insert into them rewrote a random page), in one transaction:
/// fills both tables from the entries, marks every topic indexed to its end and drops the old
/// indexes. A crash midway leaves the old indexes, and the next start migrates again. Nothing
/// to do on a newer database. (A relay from before this change, started on a newer database,
/// makes the old indexes again; this start then migrates again, so both keep working.)
pub fn migrate_row_indexes(conn: &Connection) -> Result<()> {
    let old: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' \
             AND name IN ('entries_by_op', 'entries_by_author')",
            [],
            |row| row.get(0),
        )
        .map_err(storage("look for the old indexes"))?;
    if old == 0 {
        return Ok(());
    }
    let tx = conn
        .unchecked_transaction()
        .map_err(storage("begin the index migration"))?;
    tx.execute_batch(
        "INSERT OR IGNORE INTO op_index (prefix, topic, seq)
             SELECT substr(op_id, 1, 8), topic, seq FROM entries;
         INSERT OR IGNORE INTO counter_index (topic, author, counter, seq)
             SELECT topic, author, counter, seq FROM entries;
         INSERT OR REPLACE INTO index_marks (topic, indexed)
             SELECT topic, MAX(seq) + 1 FROM entries GROUP BY topic;
         DROP INDEX IF EXISTS entries_by_op;
         DROP INDEX IF EXISTS entries_by_author;",
    )
    .map_err(storage("migrate the indexes"))?;
    tx.commit().map_err(storage("commit the index migration"))?;
    tracing::info!("op and counter indexes moved to the lookup tables");
    Ok(())
}

/// Writes a drain's rows (inside the caller's transaction). Rows already there are kept: after
/// a crash during a generation's drain, the generation is drained again from the start.
pub fn write_drain(conn: &Connection, drain: &Drain<'_>) -> Result<()> {
    if !drain.by_op.is_empty() {
        let mut stmt = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO op_index (prefix, topic, seq) VALUES (?1, ?2, ?3)",
            )
            .map_err(storage("index ops"))?;
        for op in drain.by_op {
            stmt.execute(params![&op.op_id[..8], op.topic, to_sql(op.seq)])
                .map_err(storage("index ops"))?;
        }
    }
    if !drain.by_counter.is_empty() {
        let mut stmt = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO counter_index (topic, author, counter, seq) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(storage("index counters"))?;
        for op in drain.by_counter {
            stmt.execute(params![
                op.topic,
                &op.author.as_bytes()[..],
                to_sql(op.counter),
                to_sql(op.seq)
            ])
            .map_err(storage("index counters"))?;
        }
    }
    if !drain.marks.is_empty() {
        let mut stmt = conn
            .prepare_cached("INSERT OR REPLACE INTO index_marks (topic, indexed) VALUES (?1, ?2)")
            .map_err(storage("mark indexed"))?;
        for (topic, next) in &drain.marks {
            stmt.execute(params![topic, to_sql(*next)])
                .map_err(storage("mark indexed"))?;
        }
    }
    Ok(())
}

/// Whether `op_index` holds an op with this id (compared whole against its entry row).
pub fn indexed_op(conn: &Connection, op_id: &[u8; 32]) -> Result<bool> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT 1 FROM op_index i JOIN entries e ON e.pos = (i.topic << 40) + i.seq \
             WHERE i.prefix = ?1 AND e.op_id = ?2 LIMIT 1",
        )
        .map_err(storage("lookup op"))?;
    stmt.exists(params![&op_id[..8], &op_id[..]])
        .map_err(storage("lookup op"))
}

/// The seq `counter_index` holds for `author`'s op at `counter` in topic `topic`.
pub fn indexed_counter(
    conn: &Connection,
    topic: i64,
    author: &AgentId,
    counter: u64,
) -> Result<Option<u64>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq FROM counter_index WHERE topic = ?1 AND author = ?2 AND counter = ?3",
        )
        .map_err(storage("lookup counter"))?;
    stmt.query_row(
        params![topic, &author.as_bytes()[..], to_sql(counter)],
        |row| row.get::<_, i64>(0),
    )
    .optional()
    .map(|seq| seq.map(from_sql))
    .map_err(storage("lookup counter"))
}

/// Each (topic, author)'s highest counter in `counter_index`. Counters are stored bit-cast to
/// i64: those at or above 2^63 are negative and, as u64, above all others.
pub fn indexed_counters(conn: &Connection) -> Result<HashMap<(i64, AgentId), u64>> {
    let mut stmt = conn
        .prepare(
            "SELECT topic, author, MAX(counter), MAX(CASE WHEN counter < 0 THEN counter END) \
             FROM counter_index GROUP BY topic, author",
        )
        .map_err(storage("recover counters"))?;
    let mut rows = stmt.query([]).map_err(storage("recover counters"))?;
    let mut counters = HashMap::new();
    while let Some(row) = rows.next().map_err(storage("recover counters"))? {
        let topic: i64 = row.get(0).map_err(storage("recover counters"))?;
        let author: Vec<u8> = row.get(1).map_err(storage("recover counters"))?;
        let max: i64 = row.get(2).map_err(storage("recover counters"))?;
        let max_high: Option<i64> = row.get(3).map_err(storage("recover counters"))?;
        counters.insert(
            (topic, AgentId::from_bytes(&author)?),
            from_sql(max_high.unwrap_or(max)),
        );
    }
    Ok(counters)
}

/// The rows of `counter_index` of topic `topic` before `mark` (one for each entry there).
pub fn indexed_count(conn: &Connection, topic: i64, mark: u64) -> Result<u64> {
    conn.query_row(
        "SELECT COUNT(*) FROM counter_index WHERE topic = ?1 AND seq < ?2",
        params![topic, to_sql(mark)],
        |row| row.get::<_, i64>(0),
    )
    .map(from_sql)
    .map_err(storage("count indexed entries"))
}

/// Topic `topic`'s mark, and the ops of its entries from the mark on (which the lookup tables
/// may not hold yet), in seq order.
pub fn unindexed(conn: &Connection, topic: i64) -> Result<(u64, Vec<RecentOp>)> {
    let mark: u64 = conn
        .query_row(
            "SELECT indexed FROM index_marks WHERE topic = ?1",
            params![topic],
            |row| row.get::<_, i64>(0),
        )
        .optional()
        .map_err(storage("read index mark"))?
        .map_or(0, from_sql);
    let mut stmt = conn
        .prepare(
            "SELECT seq, author, counter, op_id FROM entries \
             WHERE pos >= ?1 AND pos < ?2 ORDER BY pos",
        )
        .map_err(storage("read unindexed entries"))?;
    let (lo, hi) = super::position::range(topic, mark);
    let mut rows = stmt
        .query(params![lo, hi])
        .map_err(storage("read unindexed entries"))?;
    let mut ops = Vec::new();
    while let Some(row) = rows.next().map_err(storage("read unindexed entries"))? {
        let author: Vec<u8> = row.get(1).map_err(storage("read unindexed entries"))?;
        let op_id: Vec<u8> = row.get(3).map_err(storage("read unindexed entries"))?;
        ops.push(RecentOp {
            topic,
            seq: from_sql(row.get(0).map_err(storage("read unindexed entries"))?),
            author: AgentId::from_bytes(&author)?,
            counter: from_sql(row.get(2).map_err(storage("read unindexed entries"))?),
            op_id: op_id.try_into().map_err(|_| {
                Error::Unavailable(format!(
                    "storage: topic {topic} has an op id not 32 bytes long"
                ))
            })?,
        });
    }
    Ok((mark, ops))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::store::sql::{open_writer, recover, DB_FILE};

    /// The per-row indexes relays kept before the lookup tables.
    const OLD_INDEXES: &str = "
        CREATE UNIQUE INDEX IF NOT EXISTS entries_by_author ON entries (topic, author, counter);
        CREATE INDEX IF NOT EXISTS entries_by_op ON entries (op_id);";

    fn insert(conn: &Connection, topic: i64, seq: u64, author: &AgentId, counter: u64) {
        let mut entry = vec![1u8];
        entry.extend_from_slice(&seq.to_be_bytes());
        entry.extend_from_slice(&(100 + seq).to_be_bytes());
        conn.execute(
            "INSERT INTO entries (topic, seq, author, counter, op_id, entry, receipt) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, x'')",
            params![
                topic,
                to_sql(seq),
                &author.as_bytes()[..],
                to_sql(counter),
                &op_id(topic, seq)[..],
                entry
            ],
        )
        .unwrap();
    }

    fn op_id(topic: i64, seq: u64) -> [u8; 32] {
        let mut id = [0u8; 32];
        id[0] = topic as u8;
        id[24..].copy_from_slice(&seq.to_be_bytes());
        id
    }

    #[test]
    fn a_database_with_row_indexes_is_migrated_to_the_lookup_tables_and_again_after_an_old_relay() {
        let dir = std::env::temp_dir().join(format!("ants-index-migrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(DB_FILE);
        let alice = crate::Identity::from_seed(&[1; 32]).unwrap().agent_id();
        let bob = crate::Identity::from_seed(&[2; 32]).unwrap().agent_id();
        {
            // The layout before the lookup tables: the same tables, and the two indexes.
            let old = Connection::open(&path).unwrap();
            old.execute_batch(crate::relay::store::SCHEMA).unwrap();
            old.execute_batch(
                "CREATE TABLE entries (topic INTEGER NOT NULL REFERENCES topics(id),
                     seq INTEGER NOT NULL, author BLOB NOT NULL, counter INTEGER NOT NULL,
                     op_id BLOB NOT NULL, entry BLOB NOT NULL, receipt BLOB NOT NULL,
                     PRIMARY KEY (topic, seq)) WITHOUT ROWID;",
            )
            .unwrap();
            old.execute_batch(OLD_INDEXES).unwrap();
            old.execute_batch("INSERT INTO topics (id, name) VALUES (1, 'a'), (2, 'b')")
                .unwrap();
            for seq in 0..5 {
                insert(&old, 1, seq, &alice, 10 + seq);
            }
            insert(&old, 2, 0, &bob, 3);
        }
        let lookups_answer = |conn: &Connection, sizes: (u64, u64)| {
            for seq in 0..sizes.0 {
                assert!(indexed_op(conn, &op_id(1, seq)).unwrap(), "a/{seq}");
                assert_eq!(
                    indexed_counter(conn, 1, &alice, 10 + seq).unwrap(),
                    Some(seq)
                );
            }
            assert!(indexed_op(conn, &op_id(2, 0)).unwrap());
            assert!(!indexed_op(conn, &op_id(2, 1)).unwrap());
            assert_eq!(indexed_counter(conn, 1, &bob, 3).unwrap(), None);
            let topics = recover(conn).unwrap();
            assert_eq!((topics[0].size, topics[1].size), sizes);
            assert!(topics.iter().all(|t| t.unindexed.is_empty()), "all indexed");
            assert_eq!(topics[0].last_counters[&alice], 10 + sizes.0 - 1);
            assert_eq!(topics[1].last_counters[&bob], 3);
            let old_left: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name LIKE 'entries_by_%'",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            assert_eq!(old_left, 0);
        };
        for _ in 0..2 {
            lookups_answer(&open_writer(&path).unwrap(), (5, 1));
        }
        {
            // A relay from before the change runs on it: it makes its indexes again and
            // appends without the lookup tables.
            let old = Connection::open(&path).unwrap();
            old.execute_batch(OLD_INDEXES).unwrap();
            insert(&old, 1, 5, &alice, 15);
            insert(&old, 1, 6, &alice, 16);
        }
        lookups_answer(&open_writer(&path).unwrap(), (7, 1));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
