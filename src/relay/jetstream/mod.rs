//! The relay's log on a NATS JetStream cluster (feature `nats`): the storage primitives here,
//! the relay's [`JetStreamStore`] on them, and what makes a relay process one frontend of a
//! cluster (`ants-relay --store nats://…`): the [`follower`] that feeds each frontend's read
//! [`mirror`] and fan-out hub from the stream, composed in `frontend`.
//!
//! A [`JetStreamLog`] is one connection to a JetStream cluster and the stream that holds every
//! topic's log, plus the KV buckets a relay frontend needs to take over any topic after another
//! frontend died ([`Buckets`]) and to agree on who sequences a topic ([`Frontends`]). It decides
//! nothing about ops: it stores opaque payloads where it is told to, under the fence it is given.
//! `notes/jetstream.md` has the layout and the measurements behind it.
//!
//! # The stream
//!
//! One stream (`stream`, default `ANTS_LOG`) takes the subjects `<subject_prefix>.<token>`, one
//! subject per topic, the token given by [`subject::token_of_topic`] (injective, documented
//! there). File storage, `replicas` copies (3 in the documented setup), no limits, no deletes,
//! no purges: a topic's log only grows. Each [`JetStreamLog::append`] carries
//!
//! - `Nats-Expected-Last-Subject-Sequence`: the stream sequence of the topic's last message
//!   (0 for none). The stream leader refuses the append (JetStream error 10071,
//!   [`Error::SequenceConflict`]) if another message of the topic was applied since.
//! - `Ants-Predecessor` ([`PREDECESSOR_HEADER`]): the topic's last *valid* message, which the
//!   append follows. The server's fence alone does not keep the log from forking: measured on
//!   nats-server 2.9.10, two appends in flight at once with the same expectation are both
//!   acknowledged, and appends made without quorum that all expected the same sequence are all
//!   committed when quorum returns (the leader checks the fence against what it has applied,
//!   not against what it has proposed). So after the ack an append checks that no other message
//!   since its predecessor claims that predecessor; if one does, it is void and the writer gets
//!   `SEQUENCE_CONFLICT`. Readers skip void messages by [`valid_chain`], a pure function of the
//!   stream: the valid messages form one chain, and no writer was told a void one succeeded.
//! - `Nats-Msg-Id`: the stream's deduplication within its window (`duplicate_window`). Measured
//!   on nats-server 2.9.10: a repeat whose non-zero expected sequence is stale is refused 10071
//!   (the leader checks that before dedup), while a repeat expecting 0 or the current last
//!   sequence is answered as a duplicate with the original sequence. Either way nothing is
//!   stored twice, but a relay recognises retries of already-sequenced ops by its own op-id
//!   index ([`Buckets::index_op`]), not by this header.
//!
//! # What an acknowledged append promises
//!
//! [`JetStreamLog::append`] returns only with the stream leader's acknowledgement, which it sends
//! after the message is committed in the stream's Raft group: written by a quorum of the replicas
//! (2 of 3). Written means in the server's file store, i.e. at least in the OS page cache of each
//! of those machines; nats-server 2.9 then forces it to disk on its own periodic sync (2.9.10 has
//! no setting for this: it refuses `sync_interval`, measured; on 2.10 and later set it
//! deliberately, `always` for an fsync per write). So an acknowledged append survives the crash
//! or loss of any one machine of three, and of any number of server *processes*; it can be lost
//! only if a quorum of machines lose power (or their kernel) within one sync interval. That is
//! the documented setup's deliberate choice: replication across machines instead of an fsync per
//! write. No acknowledgement (timeout, no quorum, no leader) is always an error, never a success;
//! such an append may still be committed later, when quorum returns, so the caller reloads the
//! topic's last message before it decides again.

pub mod awareness;
mod buckets;
pub mod follower;
pub mod forward;
pub(crate) mod frontend;
mod frontends;
pub mod mirror;
pub mod pushes;
mod store;
pub mod subject;

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use futures_util::StreamExt;

pub use buckets::{Buckets, OpLocation, Stored};
pub use frontends::{owner_among, FrontendId, Frontends, Heartbeat, OWNERSHIP_WINDOW};
#[cfg(test)]
pub(crate) use store::encode_message;
pub use store::{decode_message, JetStreamAcks, JetStreamStore};

use crate::error::{Error, Result};

/// Where a [`JetStreamLog`] connects and how it lays out its stream and buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamConfig {
    /// Server addresses (`nats://host:port` or `host:port`); the client connects to one and
    /// fails over to the others, reconnecting without limit.
    pub servers: Vec<String>,
    /// The stream holding every topic's log.
    pub stream: String,
    /// The subjects of the stream are `<subject_prefix>.<topic token>`: dot-separated tokens of
    /// `[A-Za-z0-9_-]`.
    pub subject_prefix: String,
    /// KV buckets are named `<bucket_prefix>_heads`, `_ops`, `_snapshots`, `_frontends`.
    pub bucket_prefix: String,
    /// Copies of the stream and of every bucket (1..=5; 3 in the documented setup).
    pub replicas: usize,
    /// How long an append or a request waits for the cluster before it is `UNAVAILABLE`.
    pub timeout: Duration,
    /// The stream's `Nats-Msg-Id` deduplication window.
    pub duplicate_window: Duration,
    /// How long a frontend's heartbeat stays in the frontends bucket (its `max_age`).
    pub heartbeat_ttl: Duration,
    /// Whether a frontend forwards publishes to the frontend owning their topic
    /// ([`forward`]); off, every frontend sequences what it receives, fenced by the stream.
    pub forward: bool,
}

impl JetStreamConfig {
    /// The documented setup for the servers in `url`: `nats://a:4222,b:4222,c:4222` (each
    /// address may also carry its own `nats://`). Stream `ANTS_LOG`, subjects `ants.log.*`,
    /// buckets `ants_*`, 3 replicas, 5 s timeout, 2 min dedup window, 10 s heartbeat TTL.
    ///
    /// A query after the last address changes two of them:
    /// - `namespace=<name>` (1 to 32 bytes of `[A-Za-z0-9_-]`): stream `ANTS_LOG_<name>`,
    ///   subjects `ants.<name>.log.*`, buckets `ants_<name>_*`, so that several relays (each
    ///   with its own key) share one NATS cluster;
    /// - `replicas=<1..5>`: copies of the stream and buckets (1 for a single dev server);
    /// - `forward=on|off`: whether frontends forward publishes to their topic's owner (on by
    ///   default; off makes every frontend sequence what it receives, fenced by the stream).
    ///
    /// `BAD_INPUT` if no server address is given, or for another or a bad query parameter.
    pub fn from_url(url: &str) -> Result<Self> {
        let (servers, query) = match url.split_once('?') {
            Some((servers, query)) => (servers, Some(query)),
            None => (url, None),
        };
        let servers: Vec<String> = servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.contains("://") {
                    s.to_string()
                } else {
                    format!("nats://{s}")
                }
            })
            .collect();
        if servers.is_empty() || servers.iter().any(|s| s.ends_with("://")) {
            return Err(Error::BadInput(format!(
                "no NATS server address in {url:?}"
            )));
        }
        let mut config = JetStreamConfig {
            servers,
            stream: "ANTS_LOG".into(),
            subject_prefix: "ants.log".into(),
            bucket_prefix: "ants".into(),
            replicas: 3,
            timeout: Duration::from_secs(5),
            duplicate_window: Duration::from_secs(120),
            heartbeat_ttl: Duration::from_secs(10),
            forward: true,
        };
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "namespace" => {
                    let ok = (1..=32).contains(&value.len())
                        && value
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if !ok {
                        return Err(Error::BadInput(format!(
                            "namespace {value:?} must be 1 to 32 bytes of [A-Za-z0-9_-]"
                        )));
                    }
                    config.stream = format!("ANTS_LOG_{value}");
                    config.subject_prefix = format!("ants.{value}.log");
                    config.bucket_prefix = format!("ants_{value}");
                }
                "replicas" => {
                    config.replicas = value.parse().map_err(|_| {
                        Error::BadInput(format!("replicas {value:?} is not a number"))
                    })?;
                }
                "forward" => {
                    config.forward = match value {
                        "on" => true,
                        "off" => false,
                        _ => {
                            return Err(Error::BadInput(format!(
                                "forward {value:?} must be on or off"
                            )))
                        }
                    };
                }
                _ => {
                    return Err(Error::BadInput(format!(
                        "unknown store option {key:?} (known: namespace, replicas, forward)"
                    )))
                }
            }
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let name_ok = |name: &str| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !name_ok(&self.stream) || !name_ok(&self.bucket_prefix) {
            return Err(Error::BadInput(format!(
                "stream {:?} and bucket prefix {:?} must be [A-Za-z0-9_-]+",
                self.stream, self.bucket_prefix
            )));
        }
        if !self.subject_prefix.split('.').all(name_ok) {
            return Err(Error::BadInput(format!(
                "subject prefix {:?} must be dot-separated [A-Za-z0-9_-]+ tokens",
                self.subject_prefix
            )));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(Error::BadInput(format!(
                "replicas must be 1..=5, got {}",
                self.replicas
            )));
        }
        if self.timeout.is_zero() || self.heartbeat_ttl.is_zero() {
            return Err(Error::BadInput("timeouts must be above zero".into()));
        }
        Ok(())
    }
}

/// One message of a topic's log as the stream holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMessage {
    /// Its stream sequence (the value the next append of the topic must expect).
    pub seq: u64,
    /// The payload given to [`JetStreamLog::append`].
    pub payload: Vec<u8>,
    /// The stream sequence this message claimed to follow (its `Ants-Predecessor` header).
    pub predecessor: Option<u64>,
}

/// The header in which every append names the topic's message it follows.
pub const PREDECESSOR_HEADER: &str = "Ants-Predecessor";

/// Most messages [`JetStreamLog::read`] gets one by one (`STREAM.MSG.GET`) before it creates a
/// consumer for the rest.
const DIRECT_READS: usize = 16;

pub(crate) fn predecessor_of(headers: Option<&async_nats::HeaderMap>) -> Option<u64> {
    headers?.get(PREDECESSOR_HEADER)?.as_str().parse().ok()
}

/// The valid messages of a topic, given all of its messages from its first, in order: a
/// message is valid iff it claims ([`LogMessage::predecessor`]) the last valid message before
/// it (0 for none). A void message — one that claims a message another valid one already
/// follows, as two appends in flight at once can leave, or one appended without quorum and
/// committed later — is skipped; its writer was told `SEQUENCE_CONFLICT` or `UNAVAILABLE`,
/// never success. So the valid messages form one chain, a pure function of the stream.
pub fn valid_chain(messages: &[LogMessage]) -> Vec<&LogMessage> {
    let mut chain = ChainTip::default();
    messages
        .iter()
        .filter(|m| chain.accept(m.seq, m.predecessor))
        .collect()
}

/// [`valid_chain`]'s rule one message at a time, for a reader that sees a topic's messages as
/// they come (the follower): the topic's last valid message so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChainTip {
    last_valid: u64,
}

impl ChainTip {
    /// The tip of a chain whose last valid message is `last_valid` (0: none yet), to go on
    /// from a known prefix of a topic.
    pub fn after(last_valid: u64) -> Self {
        ChainTip { last_valid }
    }

    /// Whether the message at stream sequence `seq` claiming `predecessor` is valid, given every
    /// earlier message of its topic was offered here in order; if so it becomes the tip.
    pub fn accept(&mut self, seq: u64, predecessor: Option<u64>) -> bool {
        let valid = predecessor == Some(self.last_valid);
        if valid {
            self.last_valid = seq;
        }
        valid
    }

    /// The stream sequence of the last valid message (0: none).
    pub fn last_valid(&self) -> u64 {
        self.last_valid
    }
}

/// An acknowledged append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The message's stream sequence.
    pub seq: u64,
    /// The stream recognised the `Nats-Msg-Id` within its window and stored nothing new: `seq`
    /// is the original message's.
    pub duplicate: bool,
}

/// A connection to a JetStream cluster and the stream of every topic's log.
///
/// Cloning is cheap and shares the connection.
#[derive(Clone, Debug)]
pub struct JetStreamLog {
    config: JetStreamConfig,
    js: Context,
    stream: stream::Stream,
    /// Server's largest accepted message, checked before publishing.
    max_payload: usize,
}

/// An async-nats error as `UNAVAILABLE`, naming what failed.
pub(crate) fn unavailable(what: &str, err: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("jetstream {what}: {err}"))
}

/// A NATS connection to `config`'s servers for `what` (each part of a frontend has its own):
/// reconnecting without limit, connect and requests bounded by the cluster timeout.
pub(crate) async fn connect_client(
    config: &JetStreamConfig,
    what: &str,
) -> Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .connection_timeout(config.timeout)
        .request_timeout(Some(config.timeout))
        .max_reconnects(None)
        .connect(config.servers.as_slice())
        .await
        .map_err(|e| unavailable(&format!("connect ({what})"), e))
}

/// The subject (or subject prefix) `name` beside a stream whose subjects are
/// `<subject_prefix>.*`, outside them: `ants.log` → `ants.<name>`,
/// `ants.team-1.log` → `ants.team-1.<name>`, another prefix `p` → `p_<name>`.
pub(crate) fn sibling_subject(subject_prefix: &str, name: &str) -> String {
    match subject_prefix.strip_suffix(".log") {
        Some(base) => format!("{base}.{name}"),
        None => format!("{subject_prefix}_{name}"),
    }
}

impl JetStreamLog {
    /// Connects to the cluster and creates the stream if it does not exist. `BAD_INPUT` for a
    /// bad configuration or an existing stream laid out differently; `UNAVAILABLE` if the
    /// cluster does not answer within the timeout.
    pub async fn connect(config: JetStreamConfig) -> Result<Self> {
        config.validate()?;
        let client = connect_client(&config, "log").await?;
        let max_payload = client.server_info().max_payload;
        let js = jetstream::ContextBuilder::new()
            .timeout(config.timeout)
            .backpressure_on_inflight(true)
            .build(client);
        let stream = ensure_stream(&js, &config).await?;
        Ok(JetStreamLog {
            config,
            js,
            stream,
            max_payload,
        })
    }

    /// The largest payload one appended message may carry: the servers' `max_payload` less
    /// 1 KiB for headers and protocol overhead.
    pub fn max_message_payload(&self) -> usize {
        // Headers and protocol overhead count towards max_payload too; leave them 1 KiB.
        self.max_payload.saturating_sub(1024)
    }

    /// The configuration this log was opened with.
    pub fn config(&self) -> &JetStreamConfig {
        &self.config
    }

    /// The JetStream context (for the buckets and for tests).
    pub fn context(&self) -> &Context {
        &self.js
    }

    /// The subject of `topic`'s log. `BAD_TOPIC` for an invalid topic.
    pub fn subject_of(&self, topic: &str) -> Result<String> {
        Ok(format!(
            "{}.{}",
            self.config.subject_prefix,
            subject::token_of_topic(topic)?
        ))
    }

    /// Appends `payload` to `topic`'s log if the topic's last message is still stream sequence
    /// `expected_last` (0: the topic has no message yet), deduplicated by `msg_id`, claiming
    /// `expected_last` as its predecessor: [`JetStreamLog::append_after`] for a topic whose last
    /// message is valid (see [`valid_chain`]).
    pub async fn append(
        &self,
        topic: &str,
        payload: &[u8],
        expected_last: u64,
        msg_id: &str,
    ) -> Result<Appended> {
        self.append_after(topic, payload, expected_last, expected_last, msg_id)
            .await
    }

    /// Appends `payload` to `topic`'s log, fenced by the server on `expected_last` (the
    /// topic's last message, valid or void) and claiming `predecessor` (the topic's last valid
    /// message, [`valid_chain`]) in the `Ants-Predecessor` header.
    ///
    /// Returns only after the cluster acknowledged the append (see the module docs for what
    /// that promises) **and** the message is valid: no other message between `predecessor`
    /// and it claims `predecessor` (nats-server 2.9.10 acknowledges two appends in flight at
    /// once that expected the same last sequence, measured; the later one is void). Errors:
    /// `SEQUENCE_CONFLICT` (JetStream 10071, or our message is void: another writer appended
    /// first), `LIMIT_EXCEEDED` (payload over the server's `max_payload`), `BAD_TOPIC`,
    /// `BAD_INPUT` (an empty `msg_id`, or `predecessor` after `expected_last`), `UNAVAILABLE`
    /// (no quorum, no leader, timeout, connection lost: the append may or may not be committed
    /// later, so reload the topic before deciding again).
    pub async fn append_after(
        &self,
        topic: &str,
        payload: &[u8],
        expected_last: u64,
        predecessor: u64,
        msg_id: &str,
    ) -> Result<Appended> {
        let subject = self.subject_of(topic)?;
        if msg_id.is_empty() {
            return Err(Error::BadInput("empty Nats-Msg-Id".into()));
        }
        if predecessor > expected_last {
            return Err(Error::BadInput(format!(
                "predecessor {predecessor} after the expected last sequence {expected_last}"
            )));
        }
        let limit = self.max_message_payload();
        if payload.len() > limit {
            return Err(Error::LimitExceeded {
                what: "jetstream message payload",
                limit,
                got: payload.len(),
            });
        }
        let message = PublishMessage::build()
            .payload(payload.to_vec().into())
            .message_id(msg_id)
            .expected_last_subject_sequence(expected_last)
            .header(PREDECESSOR_HEADER, predecessor.to_string().as_str());
        let pending = self
            .js
            .send_publish(subject.clone(), message)
            .await
            .map_err(|e| unavailable("publish", e))?;
        let conflict = || Error::SequenceConflict {
            topic: topic.to_string(),
            expected: expected_last,
        };
        let ack = match pending.await {
            Ok(ack) => ack,
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                tracing::debug!(topic, expected_last, "append fenced by the server (10071)");
                return Err(conflict());
            }
            Err(e) => return Err(unavailable("append", e)),
        };
        if ack.duplicate {
            return Ok(Appended {
                seq: ack.sequence,
                duplicate: true,
            });
        }
        // Ours is valid iff no message between the predecessor and it claims the predecessor.
        let mut next = predecessor + 1;
        loop {
            let message = self.next_message(&subject, next, "check append").await?;
            if message.seq >= ack.sequence {
                return Ok(Appended {
                    seq: ack.sequence,
                    duplicate: false,
                });
            }
            if message.predecessor == Some(predecessor) {
                tracing::debug!(
                    topic,
                    ours = ack.sequence,
                    theirs = message.seq,
                    predecessor,
                    "append void: another message follows the same predecessor"
                );
                return Err(conflict());
            }
            next = message.seq + 1;
        }
    }

    /// The first message of `subject` at stream sequence `from` or later, from the stream
    /// leader (`STREAM.MSG.GET next_by_subj`). `UNAVAILABLE` (naming `what`) when none answers.
    async fn next_message(&self, subject: &str, from: u64, what: &str) -> Result<LogMessage> {
        let message = self
            .stream
            .raw_message_builder()
            .sequence(from)
            .next_by_subject(subject.to_owned())
            .send()
            .await
            .map_err(|e| unavailable(what, e))?;
        Ok(LogMessage {
            seq: message.sequence,
            predecessor: predecessor_of(Some(&message.headers)),
            payload: message.payload.to_vec(),
        })
    }

    /// The last message of `topic`, read from the stream leader (never a stale follower), or
    /// `None` if the topic has none. `UNAVAILABLE` without a leader. It may be void (see
    /// [`valid_chain`]): to recover a head, read the topic and take the valid chain's last.
    pub async fn last(&self, topic: &str) -> Result<Option<LogMessage>> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        let subject = self.subject_of(topic)?;
        match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => Ok(Some(LogMessage {
                seq: message.sequence,
                predecessor: predecessor_of(Some(&message.headers)),
                payload: message.payload.to_vec(),
            })),
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(None),
            Err(e) => Err(unavailable("last message", e)),
        }
    }

    /// Up to `max` messages of `topic` with stream sequence `from` or later, in order: for
    /// replay and head recovery. Reads what was committed when the call began (a message
    /// appended meanwhile may or may not be included). `UNAVAILABLE` without a leader.
    pub async fn read(&self, topic: &str, from: u64, max: usize) -> Result<Vec<LogMessage>> {
        let subject = self.subject_of(topic)?;
        let Some(last) = self.last(topic).await? else {
            return Ok(Vec::new());
        };
        if last.seq < from || max == 0 {
            return Ok(Vec::new());
        }
        // A short read (a catch-up after a lost race or a failed append) goes message by
        // message to the stream leader: no consumer to create, which also needs the cluster's
        // meta leader, elected again for seconds after a server's loss.
        let mut out: Vec<LogMessage> = Vec::new();
        let mut next = from.max(1);
        while out.len() < max.min(DIRECT_READS) {
            let message = self.next_message(&subject, next, "read message").await?;
            next = message.seq + 1;
            let reached = message.seq >= last.seq;
            out.push(message);
            if reached {
                return Ok(out);
            }
        }
        if out.len() >= max {
            return Ok(out);
        }
        // A longer one: an ephemeral, unacknowledged, in-memory pull consumer filtered to the
        // topic; the leader streams the messages in batches instead of one request per message.
        let consumer = self
            .stream
            .create_consumer(pull::Config {
                filter_subject: subject,
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: next,
                },
                ack_policy: AckPolicy::None,
                memory_storage: true,
                num_replicas: 1,
                inactive_threshold: self.config.timeout.max(Duration::from_secs(5)),
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable("read consumer", e))?;
        let mut empty_fetches = 0;
        while out.len() < max && !matches!(out.last(), Some(m) if m.seq >= last.seq) {
            let mut batch = consumer
                .fetch()
                .max_messages((max - out.len()).min(1024))
                .messages()
                .await
                .map_err(|e| unavailable("read", e))?;
            let before = out.len();
            while let Some(message) = batch.next().await {
                let message = message.map_err(|e| unavailable("read", e))?;
                let seq = message
                    .info()
                    .map_err(|e| unavailable("read message info", e))?
                    .stream_sequence;
                out.push(LogMessage {
                    seq,
                    predecessor: predecessor_of(message.headers.as_ref()),
                    payload: message.payload.to_vec(),
                });
            }
            if out.len() == before {
                empty_fetches += 1;
                if empty_fetches >= 3 {
                    return Err(Error::Unavailable(format!(
                        "jetstream read of {topic:?} stalled before seq {}",
                        last.seq
                    )));
                }
            }
        }
        // Best effort: an abandoned consumer also goes away after its inactive threshold.
        let _ = self
            .stream
            .delete_consumer(&consumer.cached_info().name)
            .await;
        out.truncate(max);
        Ok(out)
    }

    /// The KV buckets of topic heads, the op-id index and replica snapshots (created if
    /// missing, with this log's replicas).
    pub async fn buckets(&self) -> Result<Buckets> {
        Buckets::open(&self.js, &self.config).await
    }

    /// The frontends bucket: heartbeats with a TTL and topic ownership (created if missing).
    pub async fn frontends(&self) -> Result<Frontends> {
        Frontends::open(&self.js, &self.config).await
    }
}

/// Creates the log stream, or checks that the existing one has our subjects and replicas.
async fn ensure_stream(js: &Context, config: &JetStreamConfig) -> Result<stream::Stream> {
    let subjects = format!("{}.*", config.subject_prefix);
    let wanted = stream::Config {
        name: config.stream.clone(),
        subjects: vec![subjects.clone()],
        storage: StorageType::File,
        num_replicas: config.replicas,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::New,
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        duplicate_window: config.duplicate_window,
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        ..Default::default()
    };
    let mut stream = js
        .get_or_create_stream(wanted)
        .await
        .map_err(|e| unavailable("create stream", e))?;
    let info = stream
        .info()
        .await
        .map_err(|e| unavailable("stream info", e))?;
    if info.config.num_replicas != config.replicas || info.config.subjects != [subjects.clone()] {
        return Err(Error::BadInput(format!(
            "stream {} exists with subjects {:?} and {} replicas, not [{subjects:?}] and {}",
            config.stream, info.config.subjects, info.config.num_replicas, config.replicas
        )));
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lists_parse_with_or_without_scheme() {
        let config = JetStreamConfig::from_url("nats://a:1,b:2, nats://c:3").unwrap();
        assert_eq!(config.servers, ["nats://a:1", "nats://b:2", "nats://c:3"]);
        assert_eq!(config.replicas, 3);
        for bad in ["", ",", "nats://", " , "] {
            assert_eq!(
                JetStreamConfig::from_url(bad).unwrap_err().code(),
                "BAD_INPUT"
            );
        }
    }

    #[test]
    fn sibling_subjects_stay_outside_the_stream() {
        for name in ["awareness", "forward", "pushes"] {
            assert_eq!(sibling_subject("ants.log", name), format!("ants.{name}"));
            assert_eq!(
                sibling_subject("ants.team-1.log", name),
                format!("ants.team-1.{name}")
            );
            assert_eq!(sibling_subject("custom", name), format!("custom_{name}"));
        }
    }

    #[test]
    fn a_namespace_and_replicas_come_from_the_query() {
        let config =
            JetStreamConfig::from_url("nats://a:1,b:2?namespace=team-1&replicas=1").unwrap();
        assert_eq!(config.servers, ["nats://a:1", "nats://b:2"]);
        assert_eq!(config.stream, "ANTS_LOG_team-1");
        assert_eq!(config.subject_prefix, "ants.team-1.log");
        assert_eq!(config.bucket_prefix, "ants_team-1");
        assert_eq!(config.replicas, 1);
        assert!(config.forward, "publishes go to their owner by default");
        let fenced_only = JetStreamConfig::from_url("nats://a:1?forward=off").unwrap();
        assert!(!fenced_only.forward);
        assert!(
            JetStreamConfig::from_url("nats://a:1?forward=on")
                .unwrap()
                .forward
        );
        for bad in [
            "nats://a:1?forward=",
            "nats://a:1?forward=yes",
            "nats://a:1?namespace=",
            "nats://a:1?namespace=a.b",
            "nats://a:1?namespace=a*",
            "nats://a:1?replicas=0",
            "nats://a:1?replicas=6",
            "nats://a:1?replicas=three",
            "nats://a:1?stream=X",
            "nats://a:1?namespace=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(
                JetStreamConfig::from_url(bad).unwrap_err().code(),
                "BAD_INPUT",
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_names_are_refused_before_connecting() {
        let base = JetStreamConfig::from_url("nats://a:1").unwrap();
        let mut bad = vec![];
        for stream in ["", "a.b", "a b", "a*"] {
            bad.push(JetStreamConfig {
                stream: stream.into(),
                ..base.clone()
            });
        }
        for prefix in ["", "a..b", "a.>", ".a"] {
            bad.push(JetStreamConfig {
                subject_prefix: prefix.into(),
                ..base.clone()
            });
        }
        bad.push(JetStreamConfig {
            replicas: 0,
            ..base.clone()
        });
        bad.push(JetStreamConfig {
            replicas: 6,
            ..base.clone()
        });
        for config in bad {
            assert_eq!(
                config.validate().unwrap_err().code(),
                "BAD_INPUT",
                "{config:?}"
            );
        }
        base.validate().unwrap();
    }
}
