//! Checking a recovered topic's stored Merkle tree against its entries.
//!
//! `node_hashes` and `entries` are written in one transaction, so they agree unless someone
//! edited the database or the disk lost or changed pages. When they disagree, appending to the
//! topic fails forever (a subtree hash stored beyond the last entry is in the way of the next
//! one: `UNIQUE constraint failed: node_hashes.topic, node_hashes.node`), or worse, the relay
//! signs roots that are not the roots of its entries. So at recovery each topic's tree is
//! checked where the next appends meet it, and the relay refuses to start, naming the topic,
//! instead of running with it. What is checked:
//!
//! - the last stored subtree is the one the last entry completed (nothing stored beyond);
//! - every subtree of the frontier is stored;
//! - each of the last [`CHECKED_TAIL`] entries is numbered as its row and hashes to its stored
//!   leaf, and every subtree it completed is the hash of its two stored halves.
//!
//! A damaged entry further back is not found here; a follower's inclusion and consistency
//! proofs would expose it.

use rusqlite::{params, Connection};

use super::sql::{from_sql, node_key, storage, SqlHashes};
use crate::error::{Error, Result};
use crate::log::{leaf_hash, node_hash, Frontier, HashStore};

/// Entries at the end of each topic whose hashes are checked at recovery.
pub const CHECKED_TAIL: u64 = 16;

/// Checks topic `name` (row `topic_id`, `size` entries) as the module says and returns its
/// frontier.
///
/// Errors: `UNAVAILABLE` naming the topic and what disagrees, or when storage fails.
pub(crate) fn checked_frontier(
    conn: &Connection,
    topic_id: i64,
    name: &str,
    size: u64,
) -> Result<Frontier> {
    let damaged = |what: String| {
        Error::Unavailable(format!(
            "storage: topic {name:?} is damaged: {what}. The relay does not start on it; \
             restore the database from a backup (README, \"Storage faults\")"
        ))
    };
    let last_stored: Option<i64> = conn
        .query_row(
            "SELECT MAX(node) FROM node_hashes WHERE topic = ?1",
            params![topic_id],
            |row| row.get(0),
        )
        .map_err(storage("check tree"))?;
    let expected = size.checked_sub(1).and_then(|last| {
        let level = last.trailing_ones();
        node_key(level, last >> level)
    });
    if last_stored != expected {
        return Err(damaged(format!(
            "its last stored subtree hash is {} where its {size} entries end at {}",
            describe_node(last_stored),
            describe_node(expected)
        )));
    }
    let hashes = SqlHashes::new(conn, topic_id);
    let frontier = Frontier::from_store(&hashes, size)
        .map_err(|error| damaged(format!("its frontier is incomplete ({error})")))?;
    let mut stmt = conn
        .prepare("SELECT seq, entry FROM entries WHERE pos >= ?1 AND pos < ?2 ORDER BY pos")
        .map_err(storage("check tree"))?;
    let (lo, hi) = super::position::range(topic_id, size.saturating_sub(CHECKED_TAIL));
    let mut rows = stmt.query(params![lo, hi]).map_err(storage("check tree"))?;
    while let Some(row) = rows.next().map_err(storage("check tree"))? {
        let seq = from_sql(row.get(0).map_err(storage("check tree"))?);
        let entry: Vec<u8> = row.get(1).map_err(storage("check tree"))?;
        // Entry layout: version (1) ‖ seq (8) ‖ …
        let numbered = entry
            .get(1..9)
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map(u64::from_be_bytes);
        if numbered != Some(seq) {
            return Err(damaged(format!(
                "the entry in row {seq} is not entry {seq}"
            )));
        }
        if hashes.subtree(0, seq) != Some(leaf_hash(&entry)) {
            return Err(damaged(format!(
                "entry {seq} does not hash to its stored leaf"
            )));
        }
        let (mut level, mut index) = (0u32, seq);
        while index & 1 == 1 {
            let halves = hashes
                .subtree(level, index - 1)
                .zip(hashes.subtree(level, index));
            let parent = hashes.subtree(level + 1, index >> 1);
            if halves.map(|(left, right)| node_hash(&left, &right)) != parent {
                return Err(damaged(format!(
                    "the subtree ({}, {}) that entry {seq} completed is not the hash of its halves",
                    level + 1,
                    index >> 1
                )));
            }
            level += 1;
            index >>= 1;
        }
    }
    Ok(frontier)
}

fn describe_node(node: Option<i64>) -> String {
    match node {
        None => "none".into(),
        Some(key) => {
            let key = from_sql(key);
            format!("(level {}, last leaf {})", key % 64, key / 64)
        }
    }
}
