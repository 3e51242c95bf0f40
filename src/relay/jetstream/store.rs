//! [`JetStreamStore`]: the relay's [`Store`] on a JetStream cluster, so that any frontend can
//! sequence any topic after another one died.
//!
//! # Layout: one message per topic per batch
//!
//! An append stores, for each topic it touches, **one** stream message holding that topic's
//! entries of the batch (`u64 first seq ‖ (u32 length ‖ entry bytes)*`, big-endian). One
//! message per entry would let a batch's entries of one topic be stored in part (JetStream has
//! no multi-message transaction), which the store contract forbids; one message per topic is
//! all or none by construction. It is also what `notes/jetstream.md` measured: an acked message
//! costs about the same up to tens of KB, so 8 entries per message gave ×5.8 the acked entries
//! per second of one, 64 entries ×23 (the sequencer's group commit fills the batches).
//!
//! Each message goes through [`JetStreamLog::append_after`]: fenced by the server on the
//! topic's raw last message (`Nats-Expected-Last-Subject-Sequence`) and claiming the topic's
//! last *valid* message as its predecessor ([`super::valid_chain`]), so a racing frontend, or an
//! append refused `UNAVAILABLE` and committed when quorum returned, leaves a void message,
//! never a fork. A lost race is [`AppendError::Conflict`]; no acknowledgement is
//! [`AppendError::Unavailable`]; a `Nats-Msg-Id` duplicate (the topic token, the first seq and
//! a hash of the payload: only byte-identical bytes) is `Unavailable` too, since only a reload
//! can say whether the earlier message is valid. Stream sequences are global to the stream, so
//! the next append of a topic cannot be fenced before the previous one is acknowledged:
//! [`Store::append`] therefore returns only after the acknowledgement and the predecessor
//! check, and [`JetStreamAcks::wait`] has nothing left to do. A batch's topics are appended
//! concurrently (each on its own subject, fenced on its own): a batch over 64 topics costs
//! about one append's round trips, not 64.
//!
//! # What is read from where
//!
//! The stream is the truth. [`Store::heads`] lists the stream's topic subjects and reads each
//! topic's messages after the last one this store holds, checking that their seqs have no hole,
//! and keeps in memory the Merkle tree, the per-author counters and the op ids of every entry
//! (for `root_at`, `op_at_counter` and `is_sequenced`) and only each topic's newest entries
//! ([`TAIL_ENTRIES`], [`TAIL_BYTES`]); `scan_entries` reads older ones back from the frontend's
//! read mirror ([`JetStreamStore::read_older_entries_from`]) or the stream. A frontend seeds the
//! store from its read mirror first ([`JetStreamStore::seed`]), so that a start reads from the
//! stream only what the mirror does not hold yet. After an acknowledged append the store
//! records each op's location in the op-id bucket ([`Buckets::index_op`], so that a dep on an
//! op another frontend sequenced in a topic this one never loaded is found) and the batch's
//! replica snapshots in the snapshot bucket (`u64 next seq ‖ state`). Heads are not read from
//! (nor written to) the heads bucket: the mirror is this frontend's stored head. After a failed
//! append ([`Store::heads`] again) each topic is caught up from the last message this store
//! holds, reading only what was appended since.
//!
//! The store owns a small tokio runtime and blocks the (synchronous) sequencer thread on it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use futures_util::StreamExt;

use super::{Buckets, JetStreamConfig, JetStreamLog, OpLocation};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::identity::{AgentId, KeyCache};
use crate::log::sequencing::{SequencedOps, StoredOp, TopicHead};
use crate::log::{leaf_hash, Hash, MerkleLog};
use crate::op::OpId;
use crate::relay::store::{Acks, Append, AppendError, ReadPool, Store, StoredHead};

/// What the store holds of one topic, rebuilt from the stream.
#[derive(Debug, Default)]
struct JsTopic {
    tree: MerkleLog,
    last_time_ms: u64,
    /// The stream sequence of the topic's last message, valid or void (the server's fence for
    /// the next append), 0 if none.
    last_stream_seq: u64,
    /// The stream sequence of the topic's last valid message (the next append's
    /// predecessor, [`super::valid_chain`]), 0 if none.
    last_valid_seq: u64,
    /// Per author, the stored ops by counter.
    by_author: HashMap<AgentId, BTreeMap<u64, StoredOp>>,
    /// The newest entries (at most [`TAIL_ENTRIES`] and about [`TAIL_BYTES`]), the first of them
    /// at seq `tree.size() - tail.len()`; older ones are read back when a replica is rebuilt
    /// ([`Store::scan_entries`]), from the read mirror or the stream.
    tail: VecDeque<Arc<[u8]>>,
    tail_bytes: usize,
}

/// Most entries a topic keeps in memory for [`Store::scan_entries`].
const TAIL_ENTRIES: usize = 256;
/// Most bytes of entries a topic keeps in memory (one larger entry is kept alone).
const TAIL_BYTES: usize = 256 * 1024;

impl JsTopic {
    /// Adds one stored entry read back from the stream or the mirror (its seq must be the next
    /// one). `keys` spares the authors' point decompression after the first entry of each (the
    /// stream is the relay's own log).
    fn push(
        &mut self,
        topic: &str,
        bytes: Arc<[u8]>,
        op_ids: &mut HashSet<OpId>,
        keys: &mut KeyCache,
    ) -> Result<()> {
        let entry = Entry::decode_unverified_cached(&bytes, keys)?;
        if entry.topic() != topic {
            return Err(Error::Unavailable(format!(
                "jetstream: topic {topic:?} holds an entry of {:?}",
                entry.topic()
            )));
        }
        let op = entry.op();
        let stored = StoredOp {
            seq: entry.seq(),
            op_id: op.id(),
            relay_time_ms: entry.relay_time_ms(),
            signed_receipt: None,
        };
        self.add(topic, bytes, stored, *op.author(), op.counter(), op_ids)
    }

    /// Adds the entry `bytes`, the op `stored` of `author` at `counter` (its seq must be the
    /// next one).
    fn add(
        &mut self,
        topic: &str,
        bytes: Arc<[u8]>,
        stored: StoredOp,
        author: AgentId,
        counter: u64,
        op_ids: &mut HashSet<OpId>,
    ) -> Result<()> {
        if stored.seq != self.tree.size() {
            return Err(Error::Unavailable(format!(
                "jetstream: topic {topic:?} holds entry {} where seq {} belongs",
                stored.seq,
                self.tree.size()
            )));
        }
        self.tree.append_hash(leaf_hash(&bytes))?;
        self.last_time_ms = stored.relay_time_ms;
        op_ids.insert(stored.op_id);
        self.by_author
            .entry(author)
            .or_default()
            .insert(counter, stored);
        self.tail_bytes += bytes.len();
        self.tail.push_back(bytes);
        while self.tail.len() > TAIL_ENTRIES
            || (self.tail_bytes > TAIL_BYTES && self.tail.len() > 1)
        {
            if let Some(old) = self.tail.pop_front() {
                self.tail_bytes -= old.len();
            }
        }
        Ok(())
    }

    fn head(&self) -> TopicHead {
        TopicHead {
            frontier: self.tree.frontier().clone(),
            last_time_ms: self.last_time_ms,
        }
    }
}

/// The relay's store on a JetStream cluster. See the module docs.
#[derive(Debug)]
pub struct JetStreamStore {
    runtime: tokio::runtime::Runtime,
    log: JetStreamLog,
    buckets: Buckets,
    topics: HashMap<String, JsTopic>,
    op_ids: HashSet<OpId>,
    appended: u64,
    /// Where entries older than a topic's in-memory tail are read first (a frontend's mirror).
    mirror: Option<ReadPool>,
    /// The authors' keys seen while seeding, decompressed once each.
    keys: KeyCache,
}

/// The durability side of [`JetStreamStore`]: its appends return acknowledged, so a wait
/// returns at once.
#[derive(Debug)]
pub struct JetStreamAcks;

impl Acks for JetStreamAcks {
    type Ticket = u64;

    fn wait(&mut self, _ticket: &u64) -> std::result::Result<(), AppendError> {
        Ok(())
    }
}

/// Encodes one topic's entries of a batch as one message.
pub(crate) fn encode_message(first_seq: u64, entries: &[&[u8]]) -> Vec<u8> {
    let len = 8 + entries.iter().map(|e| 4 + e.len()).sum::<usize>();
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(&first_seq.to_be_bytes());
    for entry in entries {
        bytes.extend_from_slice(&(entry.len() as u32).to_be_bytes());
        bytes.extend_from_slice(entry);
    }
    bytes
}

/// Reads one topic's message of the log (`u64 first seq ‖ (u32 length ‖ entry bytes)*`,
/// big-endian): the first entry's seq and the entries' bytes. `MALFORMED` for anything else.
pub fn decode_message(bytes: &[u8]) -> Result<(u64, Vec<Arc<[u8]>>)> {
    let malformed = |reason: &str| Error::Malformed {
        what: "jetstream log message",
        reason: reason.into(),
    };
    let (first, mut rest) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| malformed("shorter than 8 bytes"))?;
    let mut entries = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| malformed("truncated entry length"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(malformed("truncated entry"));
        }
        entries.push(Arc::from(&tail[..len]));
        rest = &tail[len..];
    }
    Ok((u64::from_be_bytes(*first), entries))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl JetStreamStore {
    /// Connects to the cluster described by `config` (creating the stream and buckets if
    /// missing). Call [`Store::heads`] next to recover the topics.
    ///
    /// Errors: `BAD_INPUT` for a bad configuration; `UNAVAILABLE` when the cluster does not
    /// answer or the runtime cannot start.
    pub fn connect(config: JetStreamConfig) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ants-jetstream")
            .enable_all()
            .build()
            .map_err(|e| Error::Unavailable(format!("cannot start the jetstream runtime: {e}")))?;
        let (log, buckets) = runtime.block_on(async {
            let log = JetStreamLog::connect(config).await?;
            let buckets = log.buckets().await?;
            Ok::<_, Error>((log, buckets))
        })?;
        Ok(JetStreamStore {
            runtime,
            log,
            buckets,
            topics: HashMap::new(),
            op_ids: HashSet::new(),
            appended: 0,
            mirror: None,
            keys: KeyCache::default(),
        })
    }

    /// The log this store appends to.
    pub fn log(&self) -> &JetStreamLog {
        &self.log
    }

    /// The relay key the cluster's log is bound to, if any yet
    /// ([`Buckets::recorded_relay_key`]).
    pub fn recorded_relay_key(&self) -> Result<Option<AgentId>> {
        self.runtime.block_on(self.buckets.recorded_relay_key())
    }

    /// Binds the cluster to the relay key `relay` ([`Buckets::bind_relay_key`]). `BAD_INPUT`
    /// when the cluster's log belongs to another relay key.
    pub fn bind_relay_key(&self, relay: &AgentId) -> Result<()> {
        self.runtime.block_on(self.buckets.bind_relay_key(relay))
    }

    /// Starts `topic` from what a frontend's read mirror holds of it (a prefix of its chain,
    /// [`super::mirror::read_mirrored`] calls this once per topic): [`Store::heads`] then reads
    /// from the stream only the messages after its last, instead of the whole topic. A topic
    /// whose entries do not form a log (damage) is left out, and read from the stream in full.
    /// Call it before the first [`Store::heads`]; a topic already held is left as it is.
    pub fn seed(&mut self, topic: super::mirror::MirroredTopic) {
        if self.topics.contains_key(&topic.topic) || topic.last_valid == 0 {
            return;
        }
        let mut state = JsTopic::default();
        let mut op_ids = HashSet::new();
        let keys = &mut self.keys;
        let pushed = topic
            .entries
            .into_iter()
            .try_for_each(|entry| state.push(&topic.topic, entry, &mut op_ids, keys));
        if let Err(error) = pushed {
            tracing::warn!(%error, topic = topic.topic, "mirrored topic not used; reading it from the stream");
            return;
        }
        state.last_valid_seq = topic.last_valid;
        state.last_stream_seq = topic.last_seen.max(topic.last_valid);
        self.op_ids.extend(op_ids);
        self.topics.insert(topic.topic, state);
    }

    /// Reads entries older than the ones topics keep in memory from `mirror` (a frontend's
    /// read mirror, which holds every topic's chain up to where its follower is) rather than
    /// from the stream.
    pub fn read_older_entries_from(&mut self, mirror: ReadPool) {
        self.mirror = Some(mirror);
    }

    /// `topic`'s entries `from..until` (below its in-memory tail): from the read mirror when it
    /// holds them all, else from the stream (its whole valid chain, as [`Self::load_topic`]
    /// reads it: rare, the tail covers a replica's usual catch-up from its snapshot).
    fn older_entries(&self, topic: &str, from: u64, until: u64) -> Result<Vec<Arc<[u8]>>> {
        if let Some(mirror) = &self.mirror {
            let mut found: Vec<Arc<[u8]>> = Vec::new();
            let mut next = from;
            while next < until {
                let want = usize::try_from(until - next).unwrap_or(usize::MAX).min(256);
                let page = mirror.entries(topic, next, want)?;
                let continues = page
                    .iter()
                    .enumerate()
                    .all(|(i, (seq, _))| *seq == next + i as u64);
                if page.is_empty() || !continues {
                    break;
                }
                next += page.len() as u64;
                found.extend(page.into_iter().map(|(_, bytes)| Arc::from(bytes)));
            }
            if next >= until {
                found.truncate(usize::try_from(until - from).unwrap_or(usize::MAX));
                return Ok(found);
            }
        }
        let messages = self.runtime.block_on(self.log.read(topic, 1, usize::MAX))?;
        let mut chain = super::ChainTip::default();
        let mut found = Vec::new();
        for message in &messages {
            if !chain.accept(message.seq, message.predecessor) {
                continue;
            }
            let (first_seq, entries) = decode_message(&message.payload)?;
            for (seq, entry) in (first_seq..).zip(entries) {
                if (from..until).contains(&seq) {
                    found.push(entry);
                }
            }
        }
        if found.len() as u64 != until - from {
            return Err(Error::Unavailable(format!(
                "jetstream: topic {topic:?} has {} of its entries {from}..{until} in the stream",
                found.len()
            )));
        }
        Ok(found)
    }

    /// Every topic with a message in the stream.
    fn stored_topics(&self) -> Result<Vec<String>> {
        let prefix = format!("{}.", self.log.config().subject_prefix);
        let subjects = self.runtime.block_on(async {
            let stream = self
                .log
                .context()
                .get_stream(&self.log.config().stream)
                .await
                .map_err(|e| super::unavailable("stream", e))?;
            let mut info = stream
                .info_with_subjects(format!("{prefix}*"))
                .await
                .map_err(|e| super::unavailable("stream subjects", e))?;
            let mut subjects = Vec::new();
            while let Some(subject) = info.next().await {
                subjects.push(
                    subject
                        .map_err(|e| super::unavailable("stream subjects", e))?
                        .0,
                );
            }
            Ok::<_, Error>(subjects)
        })?;
        let mut topics = subjects
            .iter()
            .filter_map(|s| s.strip_prefix(&prefix))
            .map(super::subject::topic_of_token)
            .collect::<Result<Vec<_>>>()?;
        topics.sort();
        Ok(topics)
    }

    /// `topic` as stored: `loaded` (what this store holds of it already: a prefix of its valid
    /// chain, or nothing) followed by the topic's messages after `loaded.last_stream_seq`, read
    /// from the stream; adds their op ids to `op_ids`. So a reload after a conflict reads only
    /// what other frontends appended since, not the whole topic. On an error `loaded` is lost
    /// (the caller loads the topic from scratch next time).
    /// Catches `loaded` up with the messages of `topic` after the last one it holds. A failed
    /// read leaves it as it was (still a true prefix of the topic); a stored message that does
    /// not continue it (damage) empties it, so that the next load starts from scratch.
    fn load_topic(
        &self,
        topic: &str,
        loaded: &mut JsTopic,
        op_ids: &mut HashSet<OpId>,
    ) -> Result<()> {
        let from = loaded.last_stream_seq + 1;
        let messages = self
            .runtime
            .block_on(self.log.read(topic, from, usize::MAX))?;
        let applied = (|| {
            let mut chain = super::ChainTip::after(loaded.last_valid_seq);
            let mut keys = KeyCache::default();
            for message in &messages {
                loaded.last_stream_seq = message.seq;
                // Void messages (a racing writer's, or one committed after its writer gave
                // up) are skipped: their writers were never told success (`valid_chain`).
                if !chain.accept(message.seq, message.predecessor) {
                    continue;
                }
                let (first_seq, entries) = decode_message(&message.payload)?;
                if first_seq != loaded.tree.size() {
                    return Err(Error::Unavailable(format!(
                        "jetstream: topic {topic:?} has a message from seq {first_seq} after {} \
                         entries",
                        loaded.tree.size()
                    )));
                }
                for entry in entries {
                    loaded.push(topic, entry, op_ids, &mut keys)?;
                }
                loaded.last_valid_seq = message.seq;
            }
            Ok(())
        })();
        if applied.is_err() {
            *loaded = JsTopic::default();
        }
        applied
    }

    /// The fence, predecessor, payload and message id of one topic's message of a batch.
    fn prepare(
        &self,
        topic: &str,
        first_seq: u64,
        entries: &[&[u8]],
    ) -> std::result::Result<PreparedMessage, AppendError> {
        let (expected, predecessor) = self
            .topics
            .get(topic)
            .map_or((0, 0), |t| (t.last_stream_seq, t.last_valid_seq));
        let payload = encode_message(first_seq, entries);
        let msg_id = format!(
            "{}.{first_seq}.{}",
            super::subject::token_of_topic(topic)
                .map_err(|e| AppendError::Unavailable(e.to_string()))?,
            hex(&leaf_hash(&payload)[..16])
        );
        Ok(PreparedMessage {
            expected,
            predecessor,
            payload,
            msg_id,
        })
    }
}

/// One topic's message of a batch, ready to append.
struct PreparedMessage {
    expected: u64,
    predecessor: u64,
    payload: Vec<u8>,
    msg_id: String,
}

/// Appends one topic's message, fenced, then records its ops in the op bucket; returns the
/// stream sequence.
async fn append_topic(
    log: &JetStreamLog,
    buckets: &Buckets,
    topic: &str,
    message: PreparedMessage,
    op_ids: Vec<(OpId, OpLocation)>,
) -> std::result::Result<u64, AppendError> {
    let appended = log
        .append_after(
            topic,
            &message.payload,
            message.expected,
            message.predecessor,
            &message.msg_id,
        )
        .await;
    let seq = match appended {
        // The same bytes were appended before (by an append that was refused UNAVAILABLE and
        // committed later): whether that message is valid is for a reload to say.
        Ok(appended) if appended.duplicate => {
            return Err(AppendError::Unavailable(format!(
                "topic {topic:?}: an earlier attempt of this append was stored; reload"
            )))
        }
        Ok(appended) => appended.seq,
        Err(Error::SequenceConflict { .. }) => {
            return Err(AppendError::Conflict {
                topic: topic.to_string(),
            })
        }
        Err(error) => return Err(AppendError::Unavailable(error.to_string())),
    };
    // The op index lets other frontends find these ops as deps; the log is the truth, so a
    // failure here does not undo the append (a reload replays the log). The puts are
    // independent: all in flight at once (one round trip to the bucket's quorum for the lot).
    let puts = op_ids
        .iter()
        .map(|(op_id, location)| buckets.index_op(&op_id.0, location));
    for result in futures_util::future::join_all(puts).await {
        if let Err(error) = result {
            tracing::warn!(%error, topic, "op not indexed in the op bucket");
        }
    }
    Ok(seq)
}

impl SequencedOps for JetStreamStore {
    fn last_counter(&self, topic: &str, author: &AgentId) -> Result<Option<u64>> {
        Ok(self
            .topics
            .get(topic)
            .and_then(|t| t.by_author.get(author))
            .and_then(|ops| ops.keys().next_back().copied()))
    }

    fn op_at_counter(
        &self,
        topic: &str,
        author: &AgentId,
        counter: u64,
    ) -> Result<Option<StoredOp>> {
        Ok(self
            .topics
            .get(topic)
            .and_then(|t| t.by_author.get(author))
            .and_then(|ops| ops.get(&counter))
            .cloned())
    }

    fn is_sequenced(&self, op_id: &OpId) -> Result<bool> {
        if self.op_ids.contains(op_id) {
            return Ok(true);
        }
        // Sequenced by another frontend in a topic this one has not loaded?
        Ok(self.runtime.block_on(self.buckets.op(&op_id.0))?.is_some())
    }

    fn root_at(&self, topic: &str, tree_size: u64) -> Result<Hash> {
        self.topics
            .get(topic)
            .ok_or_else(|| Error::Unavailable(format!("jetstream: no topic {topic:?}")))?
            .tree
            .root_at(tree_size)
    }
}

impl Store for JetStreamStore {
    type Acks = JetStreamAcks;

    fn heads(&mut self) -> Result<Vec<StoredHead>> {
        // Topics held already are caught up from where they are. A failed read keeps what is
        // held (a true prefix of each topic), so a later call goes on from there instead of
        // leaving this store with nothing while the cluster settles.
        let names = self.stored_topics()?;
        let mut topics = std::mem::take(&mut self.topics);
        let mut op_ids = std::mem::take(&mut self.op_ids);
        let mut loaded = Ok(());
        for topic in &names {
            let state = topics.entry(topic.clone()).or_default();
            loaded = self.load_topic(topic, state, &mut op_ids);
            if loaded.is_err() {
                break;
            }
        }
        topics.retain(|_, t| t.last_stream_seq > 0);
        self.topics = topics;
        self.op_ids = op_ids;
        loaded?;
        let mut heads: Vec<StoredHead> = self
            .topics
            .iter()
            .map(|(topic, t)| StoredHead {
                topic: topic.clone(),
                head: t.head(),
            })
            .collect();
        heads.sort_by(|a, b| a.topic.cmp(&b.topic));
        Ok(heads)
    }

    fn head(&mut self, topic: &str) -> Result<Option<StoredHead>> {
        let mut op_ids = std::mem::take(&mut self.op_ids);
        let mut state = self.topics.remove(topic).unwrap_or_default();
        let loaded = self.load_topic(topic, &mut state, &mut op_ids);
        self.op_ids = op_ids;
        let head = (state.tree.size() > 0).then(|| StoredHead {
            topic: topic.to_string(),
            head: state.head(),
        });
        if state.last_stream_seq > 0 {
            self.topics.insert(topic.to_string(), state);
        }
        loaded?;
        Ok(head)
    }

    fn replica_snapshot(&self, topic: &str) -> Result<Option<(u64, Vec<u8>)>> {
        let Some(stored) = self.runtime.block_on(self.buckets.snapshot(topic))? else {
            return Ok(None);
        };
        let (next_seq, state) =
            stored
                .value
                .split_first_chunk::<8>()
                .ok_or_else(|| Error::Malformed {
                    what: "jetstream replica snapshot",
                    reason: "shorter than 8 bytes".into(),
                })?;
        Ok(Some((u64::from_be_bytes(*next_seq), state.to_vec())))
    }

    fn scan_entries(
        &self,
        topic: &str,
        from_seq: u64,
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let Some(stored) = self.topics.get(topic) else {
            return Ok(());
        };
        let tail_start = stored.tree.size() - stored.tail.len() as u64;
        let mut next = from_seq;
        if next < tail_start {
            for entry in self.older_entries(topic, next, tail_start)? {
                each(&entry)?;
            }
            next = tail_start;
        }
        let skip = usize::try_from(next - tail_start).unwrap_or(usize::MAX);
        for entry in stored.tail.iter().skip(skip) {
            each(entry)?;
        }
        Ok(())
    }

    fn append(&mut self, append: Append<'_>) -> std::result::Result<u64, AppendError> {
        // The batch's entries by topic, in the order the topics first appear.
        let mut order: Vec<&str> = Vec::new();
        let mut by_topic: HashMap<&str, Vec<&crate::log::sequencing::Sequenced>> = HashMap::new();
        for entry in append.entries {
            let list = by_topic.entry(entry.topic.as_str()).or_default();
            if list.is_empty() {
                order.push(entry.topic.as_str());
            }
            list.push(entry);
        }
        // Every topic's message is prepared before any is sent: a head that is not the stored
        // one (a failed reload) fails the batch with nothing appended, never leaving a hole.
        let mut prepared = Vec::with_capacity(order.len());
        for &topic in &order {
            let entries = &by_topic[topic];
            let first_seq = entries.first().map_or(0, |e| e.seq());
            let size = self.topics.get(topic).map_or(0, |t| t.tree.size());
            if first_seq != size {
                return Err(AppendError::Unavailable(format!(
                    "topic {topic:?} holds {size} entries, not {first_seq}: reload its head"
                )));
            }
            let bytes: Vec<&[u8]> = entries.iter().map(|e| &e.entry[..]).collect();
            let message = self.prepare(topic, first_seq, &bytes)?;
            let op_ids = entries
                .iter()
                .map(|entry| {
                    let location = OpLocation {
                        topic: topic.to_string(),
                        seq: entry.seq(),
                    };
                    (entry.op_id, location)
                })
                .collect::<Vec<_>>();
            prepared.push((topic, message, op_ids));
        }
        // The topics' messages are independent (each fenced on its own subject): all in flight
        // at once, so a batch over many topics costs one append's round trips, not one per
        // topic. Each topic's outcome is its own: the appended ones are recorded below even when
        // another failed, so that the reload after a failure finds them.
        let (log, buckets) = (&self.log, &self.buckets);
        let appends = prepared
            .into_iter()
            .map(|(topic, message, op_ids)| append_topic(log, buckets, topic, message, op_ids));
        let outcomes = self
            .runtime
            .block_on(futures_util::future::join_all(appends));
        let mut stored_topics: HashSet<&str> = HashSet::new();
        let mut failure: Option<AppendError> = None;
        for (&topic, outcome) in order.iter().zip(outcomes) {
            let stream_seq = match outcome {
                Ok(seq) => seq,
                Err(error) => {
                    // An unavailable store outranks a conflict: it needs every head reloaded.
                    if !matches!(failure, Some(AppendError::Unavailable(_))) {
                        failure = Some(error);
                    }
                    continue;
                }
            };
            let mut op_ids = std::mem::take(&mut self.op_ids);
            let state = self.topics.entry(topic.to_string()).or_default();
            // Decided here: what the entry holds is known without decoding it.
            for entry in &by_topic[topic] {
                let stored = StoredOp {
                    seq: entry.seq(),
                    op_id: entry.op_id,
                    relay_time_ms: entry.receipt.relay_time_ms,
                    signed_receipt: None,
                };
                let (bytes, author) = (entry.entry.clone(), entry.author);
                let added = state.add(topic, bytes, stored, author, entry.counter, &mut op_ids);
                if let Err(error) = added {
                    self.op_ids = op_ids;
                    return Err(AppendError::Unavailable(error.to_string()));
                }
            }
            state.last_stream_seq = stream_seq;
            state.last_valid_seq = stream_seq;
            self.op_ids = op_ids;
            stored_topics.insert(topic);
        }
        if let Some(error) = failure {
            return Err(error);
        }
        for snapshot in append.snapshots {
            // A snapshot must match stored entries: only for topics stored now or before.
            let matches = stored_topics.contains(snapshot.topic.as_str())
                || self
                    .topics
                    .get(&snapshot.topic)
                    .is_some_and(|t| t.tree.size() >= snapshot.next_seq);
            if !matches {
                continue;
            }
            let mut value = snapshot.next_seq.to_be_bytes().to_vec();
            value.extend_from_slice(&snapshot.state);
            self.runtime
                .block_on(self.buckets.put_snapshot(&snapshot.topic, &value))
                .map_err(|e| AppendError::Unavailable(e.to_string()))?;
        }
        self.appended += 1;
        Ok(self.appended)
    }

    fn acks(&mut self) -> Result<JetStreamAcks> {
        Ok(JetStreamAcks)
    }

    /// A topic's entries of a batch are one message: the batch must fit one message's payload
    /// (its 8-byte header aside), or an append of it would be refused every time.
    fn max_batch_bytes(&self) -> Option<usize> {
        Some(self.log.max_message_payload().saturating_sub(8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_refuse_bad_bytes() {
        let bytes = encode_message(7, &[b"ab", b"", b"xyz"]);
        let (first, entries) = decode_message(&bytes).unwrap();
        assert_eq!(first, 7);
        let entries: Vec<&[u8]> = entries.iter().map(|e| &e[..]).collect();
        assert_eq!(entries, [&b"ab"[..], b"", b"xyz"]);
        for bad in [&bytes[..7], &bytes[..10], &bytes[..bytes.len() - 1]] {
            assert_eq!(decode_message(bad).unwrap_err().code(), "MALFORMED");
        }
    }
}
