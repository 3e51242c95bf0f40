//! Read-only connections for replay and proofs, beside the writer (WAL lets them run while it
//! writes), bounded so that history cannot crowd out live traffic (issue 22 items 3 and 4).
//!
//! **Invariants** ([`ReadPool`]): at most `readers` SQLite connections are ever open at once
//! (opened lazily, reused, never more), so the file handles and page caches (each at most
//! [`READER_CACHE_KIB`]) the pool holds are bounded whatever the number of subscribers; and at
//! most `readers` reads of the async API ([`ReadPool::read`]) run at once, each on one blocking
//! thread, the others waiting their turn in FIFO order (a tokio [`Semaphore`] is fair), so
//! hundreds of replaying subscribers take turns on a few threads instead of each taking a
//! thread and a connection of its own. One read is one bounded slice (the socket loop asks at
//! most a slice of entries; a proof reads O(log n) hashes), so a turn is short and a
//! connection that wants more queues again behind the others.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::Semaphore;

use super::sql::{from_sql, storage, to_sql, SqlHashes};
use crate::error::{Error, Result};

/// Page cache of one read connection, in KiB (SQLite's default is about 2 MiB too, but say it:
/// it is a term of the memory budget). Replay reads entries in order, once; the OS page cache
/// serves what is read again.
pub const READER_CACHE_KIB: i64 = 2048;

/// Read connections (and concurrent reads) of a pool made by [`ReadPool::new`]; the relay uses
/// `[limits] storage_readers`.
pub const DEFAULT_READERS: usize = 2;

/// Read-only connections for replaying stored entries and answering proofs, at most `readers`
/// open and at most `readers` reads at once (see the module's invariants).
#[derive(Debug)]
pub struct ReadPool {
    path: PathBuf,
    /// Most connections open, and most async reads at once (at least 1).
    readers: usize,
    /// Turns for async reads, handed out first come first served.
    turns: Arc<Semaphore>,
    connections: Mutex<Connections>,
    /// Signalled when a connection goes back idle.
    returned: Condvar,
    /// Async reads waiting for their turn now.
    waiting: AtomicUsize,
    /// Async reads run so far.
    reads: AtomicU64,
}

/// Counts one waiting read for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection taken from the pool, put back when dropped (also if the read panics, so the
/// pool never loses a slot).
struct Lease<'a> {
    pool: &'a ReadPool,
    conn: Option<Connection>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.lock().idle.push(conn);
            self.pool.returned.notify_one();
        }
    }
}

/// The pool's connections: those idle, and how many exist (idle or in use).
#[derive(Debug, Default)]
struct Connections {
    idle: Vec<Connection>,
    open: usize,
}

impl ReadPool {
    /// A pool over the database at `path` (which the writer has created), with
    /// [`DEFAULT_READERS`] readers.
    pub fn new(path: PathBuf) -> Self {
        Self::with_readers(path, DEFAULT_READERS)
    }

    /// A pool over the database at `path` with at most `readers` connections and concurrent
    /// reads (0 counts as 1).
    pub fn with_readers(path: PathBuf, readers: usize) -> Self {
        let readers = readers.max(1);
        ReadPool {
            path,
            readers,
            turns: Arc::new(Semaphore::new(readers)),
            connections: Mutex::new(Connections::default()),
            returned: Condvar::new(),
            waiting: AtomicUsize::new(0),
            reads: AtomicU64::new(0),
        }
    }

    /// The database this pool reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Most connections open (and async reads running) at once.
    pub fn readers(&self) -> usize {
        self.readers
    }

    /// How many connections are open now (idle or in use).
    pub fn open_connections(&self) -> usize {
        self.lock().open
    }

    /// Appends the pool's gauges in Prometheus text: connections open, reads waiting for their
    /// turn, reads run.
    pub fn render(&self, out: &mut String) {
        let open = self.open_connections();
        let waiting = self.waiting.load(Ordering::Relaxed);
        let reads = self.reads.load(Ordering::Relaxed);
        let _ = write!(
            out,
            "# HELP ants_relay_storage_readers_open Read connections open to the database (at most storage_readers).\n\
             # TYPE ants_relay_storage_readers_open gauge\nants_relay_storage_readers_open {open}\n\
             # HELP ants_relay_storage_reads_waiting Storage reads (replay, proofs) waiting for their turn.\n\
             # TYPE ants_relay_storage_reads_waiting gauge\nants_relay_storage_reads_waiting {waiting}\n\
             # HELP ants_relay_storage_reads_total Storage reads (replay slices, proofs) run.\n\
             # TYPE ants_relay_storage_reads_total counter\nants_relay_storage_reads_total {reads}\n"
        );
    }

    fn lock(&self) -> MutexGuard<'_, Connections> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `read` on this pool on a blocking thread once it is this caller's turn: at most
    /// [`ReadPool::readers`] such reads run at once, and waiting callers are served in the
    /// order they asked. Dropping the returned future while it waits gives up the turn.
    /// `UNAVAILABLE` when the read fails or its thread panics.
    pub async fn read<T, F>(self: &Arc<Self>, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&ReadPool) -> Result<T> + Send + 'static,
    {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let waiting = Waiting(&self.waiting);
        let turn = self
            .turns
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Unavailable("storage readers closed".into()))?;
        drop(waiting);
        self.reads.fetch_add(1, Ordering::Relaxed);
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let out = read(&pool);
            drop(turn);
            out
        })
        .await
        .map_err(|e| Error::Unavailable(format!("storage read task: {e}")))?
    }

    /// Runs `f` with a connection: an idle one, a new one while fewer than `readers` are open,
    /// else the next one returned (this thread waits for it).
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = {
            let mut connections = self.lock();
            loop {
                if let Some(conn) = connections.idle.pop() {
                    break Some(conn);
                }
                if connections.open < self.readers {
                    // Counted before it is opened (outside the lock), so no other caller opens
                    // one past the bound meanwhile.
                    connections.open += 1;
                    break None;
                }
                connections = self
                    .returned
                    .wait(connections)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let conn = match conn {
            Some(conn) => conn,
            None => match self.open() {
                Ok(conn) => conn,
                Err(error) => {
                    self.lock().open -= 1;
                    self.returned.notify_one();
                    return Err(error);
                }
            },
        };
        let lease = Lease {
            pool: self,
            conn: Some(conn),
        };
        match &lease.conn {
            Some(conn) => f(conn),
            None => Err(Error::Unavailable("storage reader lost".into())),
        }
    }

    fn open(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(storage("open reader"))?;
        conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)
            .map_err(storage("reader cache_size"))?;
        Ok(conn)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn database(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ants-reader-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE IF NOT EXISTS topics (id INTEGER PRIMARY KEY, name TEXT)")
            .unwrap();
        path
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_reads_share_a_bounded_number_of_connections_and_threads() {
        let pool = Arc::new(ReadPool::with_readers(database("bounded"), 3));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut reads = Vec::new();
        for _ in 0..40 {
            let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
            reads.push(tokio::spawn(async move {
                pool.read(move |pool| {
                    let now = running.fetch_add(1, Ordering::AcqRel) + 1;
                    most.fetch_max(now.max(pool.open_connections()), Ordering::AcqRel);
                    std::thread::sleep(Duration::from_millis(5));
                    let found = pool.with_hashes("nothing", |_| Ok(()));
                    running.fetch_sub(1, Ordering::AcqRel);
                    found
                })
                .await
            }));
        }
        for read in reads {
            assert_eq!(read.await.unwrap().unwrap(), None);
        }
        assert!(most.load(Ordering::Acquire) <= 3);
        assert!(pool.open_connections() <= 3);
        // Synchronous callers are held to the same connections.
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let pool = pool.clone();
                std::thread::spawn(move || pool.with_hashes("nothing", |_| Ok(())).unwrap())
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), None);
        }
        assert!(pool.open_connections() <= 3);
    }
}
