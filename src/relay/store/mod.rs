//! Where the sequencer persists what it decided: the [`Store`] interface, and SQLite behind it
//! ([`sqlite`], the embedded default).
//!
//! The sequencer decides ([`crate::log::sequencing`]): which ops become which entries, which
//! are retries, which are refused. A store never decides; it keeps the decisions, answers the
//! lookups sequencing needs ([`SequencedOps`]) and says when what it keeps is durable. Everything
//! a frontend needs to sequence a topic is readable from the store (the topic's head, its
//! per-author counters, the op-id index, its replica snapshot and entries), so that with a
//! replicated store any frontend can take a topic over from another.
//!
//! # The contract
//!
//! **Appended.** [`Store::append`] returns `Ok` once the store holds the batch for this
//! frontend's reads: every later lookup ([`SequencedOps`], [`Store::heads`], …) sees it. It is
//! *not yet durable*: nothing of it may be announced (no receipt, no entry to a subscriber, no
//! pushed event). Appends are applied in the order they are made.
//!
//! **Durable.** [`Store::append`] returns a ticket; [`Acks::wait`] on that ticket returns `Ok`
//! once the batch survives the loss of this process and of this machine as far as the store can
//! promise: for SQLite, the WAL is synced to the local disk (`fdatasync`); for a replicated store
//! (NATS JetStream), the server acknowledged the append, i.e. a quorum of replicas holds it (on
//! disk or in their page cache, as the servers' sync settings say). The relay signs and sends a
//! receipt only after that, so a receipt promises exactly what the store's `Ok` promises.
//! Tickets are waited for in the order their appends were made; a store may make one wait cover
//! many earlier tickets (SQLite syncs once for every batch written before the sync began).
//!
//! **Atomicity.** A batch's entries *of one topic* are stored all or none, and with the hashes
//! and replica snapshot that go with them. Across topics a store may keep some topics' parts
//! and not others (JetStream has no multi-subject transaction); SQLite stores a whole batch in
//! one transaction, which satisfies the weaker promise.
//!
//! **Failures** ([`AppendError`], from `append` or from `wait`):
//! - [`AppendError::Conflict`]: another writer appended to that topic since this frontend read
//!   its head (an expected-sequence check failed). Nothing of this batch is stored for that
//!   topic. The caller refuses the batch's publishes `UNAVAILABLE` (retrying is safe), reloads
//!   the topic's head from the store ([`Store::head`]) and goes on. SQLite never returns it (one
//!   writer per database file, held by its lock).
//! - [`AppendError::Unavailable`]: the store cannot take the write now (a full disk, no quorum,
//!   a timeout). Whether any of the batch was stored is unknown; the caller refuses the batch
//!   `UNAVAILABLE` and reloads every head it holds before it sequences again. Retrying later is
//!   safe: a retried op is recognised through the op index ([`SequencedOps::op_at_counter`]).
//! - [`AppendError::Broken`]: the store cannot promise durability any more until the relay
//!   restarts (a failed `fdatasync`: the kernel may have dropped the unwritten pages, so a
//!   later sync could succeed without them). Every later publish is refused.
//!
//! **Invariants the caller may rely on**: `heads()` describes exactly the entries the store
//! holds (sequence numbers `0..size` with no hole, the frontier of their Merkle tree, the relay
//! time of the last one); a store refuses to recover a topic whose stored tree disagrees with
//! its entries, naming the topic, rather than let every later append to it fail.

mod check;
mod health;
mod index;
pub(crate) mod position;
mod reader;
mod recent;
pub(crate) mod sql;
pub mod sqlite;

pub use check::CHECKED_TAIL;
pub use health::StorageHealth;
pub use reader::{ReadPool, DEFAULT_READERS, READER_CACHE_KIB};
pub(crate) use sql::storage;
pub use sql::{open_writer, recorded_relay_key, SqlHashes, DB_FILE, SCHEMA};
pub use sqlite::{SqliteStore, WalAcks, WalSyncer};

use crate::error::{Error, Result};
use crate::log::sequencing::{Sequenced, SequencedOps, TopicHead};

/// One topic's head as a store holds it.
#[derive(Debug, Clone)]
pub struct StoredHead {
    /// The topic.
    pub topic: String,
    /// Its size, Merkle frontier and last entry time.
    pub head: TopicHead,
}

/// A replica snapshot to store with a batch.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The topic.
    pub topic: String,
    /// The sequence number after the last entry the replica has seen.
    pub next_seq: u64,
    /// [`crate::replica::Replica::snapshot`].
    pub state: Vec<u8>,
}

/// What one append stores.
#[derive(Debug, Clone, Copy)]
pub struct Append<'a> {
    /// New entries in the order decided (per topic, consecutive sequence numbers continuing
    /// the topic's stored head).
    pub entries: &'a [Sequenced],
    /// Replica snapshots, each matching the entries stored with this append.
    pub snapshots: &'a [Snapshot],
}

/// Why an append is not (or not known to be) stored. See the module's contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendError {
    /// Another writer appended to `topic` since its head was read.
    Conflict {
        /// The topic.
        topic: String,
    },
    /// The store cannot take the write now; retrying later is safe.
    Unavailable(String),
    /// The store cannot promise durability until the relay restarts.
    Broken(String),
}

impl From<AppendError> for Error {
    fn from(error: AppendError) -> Self {
        match error {
            AppendError::Conflict { topic } => {
                Error::Unavailable(format!("topic {topic:?} was appended to elsewhere; retry"))
            }
            AppendError::Unavailable(reason) => Error::Unavailable(reason),
            AppendError::Broken(reason) => Error::Unavailable(format!(
                "the relay could not make its storage durable ({reason}); restart it"
            )),
        }
    }
}

/// Waits for appends to become durable; moved to the durability thread.
pub trait Acks: Send + 'static {
    /// What [`Store::append`] returns to wait for.
    type Ticket: Send + std::fmt::Debug + 'static;

    /// Returns once the append that returned `ticket`, and every append before it, is durable.
    fn wait(&mut self, ticket: &Self::Ticket) -> std::result::Result<(), AppendError>;
}

/// Where the sequencer persists its decisions. See the module's contract.
pub trait Store: SequencedOps + Send + 'static {
    /// The durability side of this store.
    type Acks: Acks;

    /// Every stored topic's head (at startup, and to reload after a failed append).
    ///
    /// Errors: `UNAVAILABLE` when storage fails or a topic's stored log is damaged (holes in its
    /// sequence numbers, a tree that disagrees with its entries), naming the topic.
    fn heads(&mut self) -> Result<Vec<StoredHead>>;

    /// One topic's head as stored now (`None`: no entries), e.g. after a conflict.
    ///
    /// Errors: as [`Store::heads`].
    fn head(&mut self, topic: &str) -> Result<Option<StoredHead>>;

    /// The topic's latest replica snapshot, as `(next_seq, state)`.
    fn replica_snapshot(&self, topic: &str) -> Result<Option<(u64, Vec<u8>)>>;

    /// Calls `each` with the canonical bytes of every stored entry of `topic` from `from_seq`
    /// on, in order (to rebuild a replica).
    fn scan_entries(
        &self,
        topic: &str,
        from_seq: u64,
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()>;

    /// Stores a batch; see the module's contract for what `Ok` means and what it does not.
    fn append(
        &mut self,
        append: Append<'_>,
    ) -> std::result::Result<<Self::Acks as Acks>::Ticket, AppendError>;

    /// The durability side, for the durability thread (called once, before the first append).
    ///
    /// Errors: `UNAVAILABLE` when it cannot be set up.
    fn acks(&mut self) -> Result<Self::Acks>;

    /// The most bytes of entries one batch may hold, counting each entry as its op's length
    /// plus [`BATCH_ENTRY_OVERHEAD`] (`None`: no bound but the batch's op count). A store whose
    /// batches go into messages of bounded size says so, and the sequencer cuts batches to fit.
    fn max_batch_bytes(&self) -> Option<usize> {
        None
    }

    /// Gives back memory kept only for speed (caches), when the sequencer has been idle for a
    /// while (`[limits] idle_release_s`). Nothing stored changes; the next append may be
    /// slower. By default, nothing.
    fn release_memory(&mut self) {}
}

/// What one entry adds to a batch beyond its op's bytes, for [`Store::max_batch_bytes`]: the
/// entry's header (21 bytes) and a store's framing of it, rounded up.
pub const BATCH_ENTRY_OVERHEAD: usize = 64;
