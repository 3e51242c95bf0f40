//! The embedded default store: one SQLite database in WAL mode, every commit synced before it is
//! told.
//!
//! In WAL mode a commit appends the transaction's pages and a commit record to the WAL file.
//! With `synchronous = FULL` SQLite would sync the WAL inside `COMMIT`; the writer here uses
//! `NORMAL`, under which `COMMIT` only writes ([`Store::append`] returns then: appended, not
//! durable), and [`WalAcks`] syncs the WAL itself on the durability thread
//! ([`crate::relay::durable`]) before anything the commit holds is announced. So a receipt still
//! never precedes durability, and a committed transaction that was announced survives a crash
//! or power loss; meanwhile the sequencer writes its next batch. (`NORMAL` in WAL mode never
//! corrupts the database; what it alone would risk is losing the last commits, and those are the
//! ones not yet synced, so not yet announced.) The cost, one sync, is paid once per group of
//! batches: the sequencer groups many publishes into one transaction (group commit) and one sync
//! covers every batch committed before it began.
//!
//! Only the sequencer thread writes, through this store; replay reads use a small pool of
//! read-only connections ([`super::ReadPool`]), which WAL lets run concurrently with the writer.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rusqlite::{params, Connection};

use super::check::checked_frontier;
use super::health::StorageHealth;
use super::index;
use super::position;
use super::recent::{RecentOp, RecentOps};
use super::sql::{self, open_writer, storage, RecoveredTopic, SqlHashes};
use super::{Acks, Append, AppendError, Store, StoredHead};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::identity::AgentId;
use crate::log::sequencing::{SequencedOps, StoredOp, TopicHead};
use crate::log::{Frontier, Hash};
use crate::op::OpId;
use crate::relay::metrics::{Metrics, Phase};

/// What the store keeps in memory of a stored topic: every publish asks for its counters.
#[derive(Debug)]
struct SqlTopic {
    /// The topic's row id.
    id: i64,
    /// Each author's highest stored counter.
    last_counters: HashMap<AgentId, u64>,
}

/// What one committed transaction of [`SqliteStore::append`] wrote besides the entries.
#[derive(Debug)]
struct Written {
    /// The topics it created, with their row ids.
    created: Vec<(String, i64)>,
    /// Keys it wrote to `op_index` and to `counter_index` ([`RecentOps::next_drain`]).
    by_op: usize,
    by_counter: usize,
}

/// The SQLite store: the writer connection, the checkpoint thread, and the topics' counters.
///
/// Invariant: `topics` holds exactly the topics and counters of committed transactions (it is
/// updated after a commit, never before), `recent` every committed op the lookup tables do not
/// hold yet (the `recent` module), and `appended` counts the commits of [`Store::append`].
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    topics: HashMap<String, SqlTopic>,
    /// The ops not yet in the lookup tables.
    recent: RecentOps,
    metrics: Arc<Metrics>,
    /// Free space in reserve and the last write's fate.
    health: Arc<StorageHealth>,
    appended: Arc<AtomicU64>,
    /// Keeps the checkpoint thread running while the store lives.
    _checkpointer: std::sync::mpsc::Sender<()>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` for writing, binds it to the relay key
    /// `relay` (`sql::bind_relay_key`), syncs what a crashed relay left in the WAL and starts
    /// the checkpoint thread. Call [`Store::heads`] next to recover the topics.
    ///
    /// Appends are refused while `health` says less than its reserve is free.
    ///
    /// Errors: `BAD_INPUT` when the database belongs to another relay key; `UNAVAILABLE` when
    /// storage fails.
    pub fn open(
        path: &Path,
        relay: &AgentId,
        metrics: Arc<Metrics>,
        health: Arc<StorageHealth>,
    ) -> Result<Self> {
        let conn = open_writer(path)?;
        sql::bind_relay_key(&conn, relay)?;
        // Entries a crashed relay committed without syncing them survive in the page cache and
        // are about to be recovered; sync them before any is served, or a power loss could
        // still take back what subscribers were shown. (No WAL file: everything is in the
        // database file, which SQLite syncs when it checkpoints.)
        match WalSyncer::new(path).sync() {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Unavailable(format!("cannot sync the WAL: {error}")));
            }
            _ => {}
        }
        let (checkpointer, alive) = std::sync::mpsc::channel();
        sql::spawn_checkpointer(&conn, path.to_owned(), alive)?;
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
            topics: HashMap::new(),
            recent: RecentOps::new(),
            metrics,
            health,
            appended: Arc::default(),
            _checkpointer: checkpointer,
        })
    }

    /// The writer connection (tests fill the disk through it; a cluster frontend's read
    /// mirror reads its own bookkeeping through it).
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    fn topic_id(&self, topic: &str) -> Option<i64> {
        self.topics.get(topic).map(|t| t.id)
    }

    /// [`Store::append`], with `extra` writing more rows in the same transaction (a cluster
    /// frontend's read mirror records how far it mirrored the stream with its entries). An
    /// error from `extra` rolls the whole transaction back.
    pub(crate) fn append_with(
        &mut self,
        append: Append<'_>,
        extra: &dyn Fn(&rusqlite::Transaction<'_>) -> Result<()>,
    ) -> std::result::Result<u64, AppendError> {
        if !append.entries.is_empty() || !append.snapshots.is_empty() {
            // Keep the reserve: a checkpoint, a restart and the next batches need room.
            self.health
                .check_space()
                .map_err(AppendError::Unavailable)?;
        }
        let Written {
            created,
            by_op,
            by_counter,
        } = match self.write(append, extra) {
            Ok(written) => written,
            Err(error) => {
                let reason = match error {
                    Error::Unavailable(reason) => reason,
                    other => other.to_string(),
                };
                self.health.write_failed(&reason);
                return Err(AppendError::Unavailable(reason));
            }
        };
        self.health.write_succeeded();
        for (name, id) in created {
            self.topics.insert(
                name,
                SqlTopic {
                    id,
                    last_counters: HashMap::new(),
                },
            );
        }
        self.recent.drained(by_op, by_counter);
        for entry in append.entries {
            if let Some(topic) = self.topics.get_mut(&entry.topic) {
                topic.last_counters.insert(entry.author, entry.counter);
                self.recent.push(RecentOp {
                    topic: topic.id,
                    seq: entry.seq(),
                    author: entry.author,
                    counter: entry.counter,
                    op_id: entry.op_id.0,
                });
            }
        }
        Ok(self.appended.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// Writes `append`, the next slice of the lookup tables' keys and what `extra` writes, in
    /// one transaction and commits it.
    fn write(
        &mut self,
        append: Append<'_>,
        extra: &dyn Fn(&rusqlite::Transaction<'_>) -> Result<()>,
    ) -> Result<Written> {
        let write_started = Instant::now();
        let tx = self
            .conn
            .transaction()
            .map_err(storage("begin transaction"))?;
        let mut created: Vec<(String, i64)> = Vec::new();
        let topics = &self.topics;
        let mut id_of = |tx: &rusqlite::Transaction<'_>, name: &str| -> Result<i64> {
            if let Some(topic) = topics.get(name) {
                return Ok(topic.id);
            }
            if let Some((_, id)) = created.iter().find(|(n, _)| n == name) {
                return Ok(*id);
            }
            tx.execute("INSERT INTO topics (name) VALUES (?1)", params![name])
                .map_err(storage("create topic"))?;
            let id = tx.last_insert_rowid();
            created.push((name.to_owned(), id));
            Ok(id)
        };
        {
            for entry in append.entries {
                let id = id_of(&tx, &entry.topic)?;
                sql::put_hashes(&tx, id, &entry.hashes)?;
                position::insert_entry(
                    &tx,
                    id,
                    entry.seq(),
                    &entry.author.as_bytes()[..],
                    entry.counter,
                    &entry.op_id.0[..],
                    &entry.entry[..],
                )?;
            }
            // In the same transaction: a stored snapshot always matches the stored entries.
            for snapshot in append.snapshots {
                let id = id_of(&tx, &snapshot.topic)?;
                sql::put_replica_snapshot(&tx, id, snapshot.next_seq, &snapshot.state)?;
            }
        }
        extra(&tx)?;
        let drain = self.recent.next_drain(append.entries.len());
        index::write_drain(&tx, &drain)?;
        let (by_op, by_counter) = (drain.by_op.len(), drain.by_counter.len());
        self.metrics.phase(Phase::Write, write_started.elapsed());
        let commit_started = Instant::now();
        tx.commit().map_err(storage("commit"))?;
        self.metrics.commit_latency(commit_started.elapsed());
        self.metrics.phase(Phase::Commit, commit_started.elapsed());
        Ok(Written {
            created,
            by_op,
            by_counter,
        })
    }
}

impl SequencedOps for SqliteStore {
    fn last_counter(&self, topic: &str, author: &AgentId) -> Result<Option<u64>> {
        Ok(self
            .topics
            .get(topic)
            .and_then(|t| t.last_counters.get(author))
            .copied())
    }

    fn op_at_counter(
        &self,
        topic: &str,
        author: &AgentId,
        counter: u64,
    ) -> Result<Option<StoredOp>> {
        let Some(id) = self.topic_id(topic) else {
            return Ok(None);
        };
        let seq = match self.recent.at_counter(id, author, counter) {
            Some(seq) => Some(seq),
            None => index::indexed_counter(&self.conn, id, author, counter)?,
        };
        let Some(seq) = seq else {
            return Ok(None);
        };
        let Some(stored) = sql::op_at_seq(&self.conn, id, seq)? else {
            return Ok(None);
        };
        Ok(Some(StoredOp {
            seq: stored.seq,
            op_id: OpId(stored.op_id),
            // Stored entries were verified when sequenced.
            relay_time_ms: Entry::decode_unverified(&stored.entry)?.relay_time_ms(),
            signed_receipt: (!stored.receipt.is_empty()).then_some(stored.receipt),
        }))
    }

    fn is_sequenced(&self, op_id: &OpId) -> Result<bool> {
        if self.recent.op(&op_id.0).is_some() {
            return Ok(true);
        }
        index::indexed_op(&self.conn, &op_id.0)
    }

    fn root_at(&self, topic: &str, tree_size: u64) -> Result<Hash> {
        let id = self
            .topic_id(topic)
            .ok_or_else(|| Error::Unavailable(format!("storage: no topic {topic:?}")))?;
        Ok(Frontier::from_store(&SqlHashes::new(&self.conn, id), tree_size)?.root())
    }
}

impl Store for SqliteStore {
    type Acks = WalAcks;

    /// Empties the writer's page cache (`PRAGMA shrink_memory`; up to 64 MiB of it, which a
    /// burst of large entries fills and an idle relay would keep). The allocator then hands
    /// the pages back to the system (`ants-relay` trims it periodically).
    fn release_memory(&mut self) {
        if let Err(error) = self.conn.execute_batch("PRAGMA shrink_memory") {
            tracing::warn!(%error, "could not release the writer's page cache");
        }
    }

    fn heads(&mut self) -> Result<Vec<StoredHead>> {
        let mut heads = Vec::new();
        let mut topics = HashMap::new();
        let mut recent = RecentOps::new();
        for recovered in sql::recover(&self.conn)? {
            let RecoveredTopic {
                id,
                name,
                size,
                last_time_ms,
                last_counters,
                unindexed,
            } = recovered;
            for op in unindexed {
                recent.push(op);
            }
            let frontier = checked_frontier(&self.conn, id, &name, size)?;
            heads.push(StoredHead {
                topic: name.clone(),
                head: TopicHead {
                    frontier,
                    last_time_ms,
                },
            });
            topics.insert(name, SqlTopic { id, last_counters });
        }
        self.topics = topics;
        self.recent = recent;
        Ok(heads)
    }

    fn head(&mut self, topic: &str) -> Result<Option<StoredHead>> {
        Ok(self.heads()?.into_iter().find(|head| head.topic == topic))
    }

    fn replica_snapshot(&self, topic: &str) -> Result<Option<(u64, Vec<u8>)>> {
        match self.topic_id(topic) {
            Some(id) => sql::replica_snapshot(&self.conn, id),
            None => Ok(None),
        }
    }

    fn scan_entries(
        &self,
        topic: &str,
        from_seq: u64,
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let Some(id) = self.topic_id(topic) else {
            return Ok(());
        };
        let mut stmt = self
            .conn
            .prepare("SELECT entry FROM entries WHERE pos >= ?1 AND pos < ?2 ORDER BY pos")
            .map_err(storage("scan entries"))?;
        let (lo, hi) = position::range(id, from_seq);
        let mut rows = stmt
            .query(params![lo, hi])
            .map_err(storage("scan entries"))?;
        while let Some(row) = rows.next().map_err(storage("scan entries"))? {
            let bytes: Vec<u8> = row.get(0).map_err(storage("scan entries"))?;
            each(&bytes)?;
        }
        Ok(())
    }

    fn append(&mut self, append: Append<'_>) -> std::result::Result<u64, AppendError> {
        self.append_with(append, &|_| Ok(()))
    }

    fn acks(&mut self) -> Result<WalAcks> {
        Ok(WalAcks {
            syncer: WalSyncer::new(&self.path),
            appended: self.appended.clone(),
            synced: 0,
        })
    }
}

/// The SQLite store's durability: a sync of the WAL covers every commit made before it began.
/// A ticket is the number of its append; one sync answers every ticket up to the number of
/// appends made when it began.
#[derive(Debug)]
pub struct WalAcks {
    syncer: WalSyncer,
    appended: Arc<AtomicU64>,
    synced: u64,
}

impl Acks for WalAcks {
    type Ticket = u64;

    fn wait(&mut self, ticket: &u64) -> std::result::Result<(), AppendError> {
        if *ticket <= self.synced {
            return Ok(());
        }
        // Every append counted here committed before the sync begins.
        let through = self.appended.load(Ordering::Acquire);
        self.syncer
            .sync()
            .map_err(|error| AppendError::Broken(format!("WAL sync failed: {error}")))?;
        self.synced = through.max(*ticket);
        Ok(())
    }
}

/// Syncs a SQLite database's WAL file through a handle of its own.
#[derive(Debug)]
pub struct WalSyncer {
    path: PathBuf,
    /// The open WAL file and its inode number.
    file: Option<(File, u64)>,
}

impl WalSyncer {
    /// The syncer of the WAL of the database at `db_path` (`<db_path>-wal`).
    pub fn new(db_path: &Path) -> Self {
        let mut path = db_path.as_os_str().to_owned();
        path.push("-wal");
        WalSyncer {
            path: PathBuf::from(path),
            file: None,
        }
    }

    /// Returns once everything written to the WAL before the call is on disk.
    ///
    /// Errors: any I/O error (a missing WAL file is `NotFound`).
    pub fn sync(&mut self) -> std::io::Result<()> {
        // SQLite keeps its WAL file while the database is open, but should it ever make a new
        // one (a new inode), sync that: the old one's content was checkpointed before it went.
        let inode = std::fs::metadata(&self.path)?.ino();
        if self.file.as_ref().map(|(_, known)| *known) != Some(inode) {
            let file = OpenOptions::new().read(true).write(true).open(&self.path)?;
            let inode = file.metadata()?.ino();
            // A new file's directory entry must be durable too (SQLite syncs it on the first
            // sync of a new WAL when it syncs the WAL itself).
            if let Some(dir) = self.path.parent() {
                File::open(if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                })?
                .sync_all()?;
            }
            self.file = Some((file, inode));
        }
        match &self.file {
            Some((file, _)) => file.sync_data(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wal_syncer_syncs_the_file_sqlite_writes() {
        let dir = std::env::temp_dir().join(format!("ants-durable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("x.sqlite3");
        let mut syncer = WalSyncer::new(&db);
        // No WAL yet: an error, not a silent success.
        assert!(syncer.sync().is_err());
        std::fs::write(dir.join("x.sqlite3-wal"), b"frames").unwrap();
        syncer.sync().unwrap();
        // A replaced file (new inode) is opened and synced in its turn.
        std::fs::remove_file(dir.join("x.sqlite3-wal")).unwrap();
        std::fs::write(dir.join("x.sqlite3-wal"), b"new").unwrap();
        syncer.sync().unwrap();
        let inode = std::fs::metadata(dir.join("x.sqlite3-wal")).unwrap().ino();
        assert_eq!(syncer.file.as_ref().map(|(_, i)| *i), Some(inode));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Publishes `ops` as one batch of topic "t" through the sequencing rules, appends what
    /// they decide, and returns the decisions.
    fn publish(
        store: &mut SqliteStore,
        head: &mut TopicHead,
        replica: &mut crate::replica::Replica,
        ops: &[crate::op::SignedOp],
    ) -> Vec<Result<crate::log::sequencing::Decision>> {
        let mut batch = crate::log::sequencing::Batch::new();
        let decisions = ops
            .iter()
            .map(|op| batch.decide(head, replica, op, 1, &*store))
            .collect();
        let append = Append {
            entries: batch.entries(),
            snapshots: &[],
        };
        store.append(append).unwrap();
        decisions
    }

    #[test]
    fn ops_are_found_by_id_and_counter_before_during_and_after_their_keys_move_to_the_tables() {
        use crate::log::sequencing::Decision;
        use crate::op::{OpDraft, OpId, SignedOp};
        use crate::relay::store::recent::{DRAIN_OPS, GENERATION_OPS};
        let dir = std::env::temp_dir().join(format!("ants-store-lookups-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(sql::DB_FILE);
        let relay = crate::Identity::from_seed(&[1; 32]).unwrap().agent_id();
        let open = || {
            let health = Arc::new(StorageHealth::new(dir.clone(), 0));
            let mut store = SqliteStore::open(&path, &relay, Arc::default(), health).unwrap();
            let head = store
                .heads()
                .unwrap()
                .into_iter()
                .next()
                .map(|h| h.head)
                .unwrap_or_default();
            (store, head)
        };
        let alice = crate::Identity::from_seed(&[7; 32]).unwrap();
        let sign = |counter: u64, deps: Vec<OpId>| {
            let draft = OpDraft {
                topic: "t".into(),
                kind: "post".into(),
                counter,
                time_ms: 0,
                deps,
                body: counter.to_be_bytes().to_vec(),
            };
            SignedOp::sign(&alice, draft).unwrap()
        };
        let (mut store, mut head) = open();
        let mut replica =
            crate::replica::Replica::new("t", crate::replica::ReplicaConfig::default()).unwrap();
        // A whole generation and then enough single commits for its keys to be written.
        let first: Vec<SignedOp> = (0..GENERATION_OPS as u64)
            .map(|c| sign(c, vec![]))
            .collect();
        for chunk in first.chunks(512) {
            publish(&mut store, &mut head, &mut replica, chunk);
        }
        let drain_commits = GENERATION_OPS.div_ceil(DRAIN_OPS) as u64;
        let mut counter = GENERATION_OPS as u64;
        let mut later = Vec::new();
        let check =
            |store: &mut SqliteStore, head: &mut TopicHead, replica: &mut _, counter: &mut u64| {
                // A retry of the first op and of a late one, a dep on an early op, a missing dep.
                let next = sign(*counter, vec![first[5].id()]);
                let missing = sign(*counter + 1, vec![OpId([9; 32])]);
                let decisions = publish(
                    store,
                    head,
                    replica,
                    &[first[0].clone(), first[4000].clone(), next, missing],
                );
                assert!(
                    matches!(decisions[0], Ok(Decision::Retry { seq: 0, .. })),
                    "{:?}",
                    decisions[0]
                );
                assert!(
                    matches!(decisions[1], Ok(Decision::Retry { seq: 4000, .. })),
                    "{:?}",
                    decisions[1]
                );
                assert!(
                    matches!(decisions[2], Ok(Decision::Append(0))),
                    "{:?}",
                    decisions[2]
                );
                assert_eq!(decisions[3].as_ref().unwrap_err().code(), "DEPS_MISSING");
                *counter += 2;
            };
        // A restart midway through the drain (as after a crash): the generation is read back
        // from the entries after the mark (none yet) and written again, keys already there
        // kept.
        let rounds = 2 * (drain_commits + 1);
        for round in 0..rounds {
            if round == 5 {
                drop(store);
                (store, head) = open();
            }
            check(&mut store, &mut head, &mut replica, &mut counter);
            later.push(sign(counter, vec![]));
            publish(
                &mut store,
                &mut head,
                &mut replica,
                &[later.last().unwrap().clone()],
            );
            counter += 1;
        }
        // A generation is in the tables, marked (the first one and the 5 rounds' 10 entries
        // that joined it at the restart); the ops after it are not yet.
        let indexed: (i64, i64, i64) = store
            .conn()
            .query_row(
                "SELECT (SELECT COUNT(*) FROM op_index), (SELECT COUNT(*) FROM counter_index), \
                 (SELECT indexed FROM index_marks WHERE topic = 1)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        let generation = GENERATION_OPS as i64 + 10;
        assert_eq!(indexed, (generation, generation, generation));
        assert!(store.recent.len() > 0, "the ops after the generation");
        // After a restart, from the tables and from the entries after the mark alike.
        drop(store);
        let (mut store, mut head) = open();
        assert_eq!(head.size(), counter - rounds);
        check(&mut store, &mut head, &mut replica, &mut counter);
        let decisions = publish(&mut store, &mut head, &mut replica, &[later[3].clone()]);
        assert!(
            matches!(decisions[0], Ok(Decision::Retry { .. })),
            "{:?}",
            decisions[0]
        );
        assert_eq!(
            store.last_counter("t", &alice.agent_id()).unwrap(),
            Some(counter - 2)
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
