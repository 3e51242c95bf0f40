//! The KV buckets that let any frontend take over any topic: topic heads, the op-id index and
//! replica snapshots. Values are opaque bytes to this layer (the relay encodes them), except
//! the op-id index's [`OpLocation`].
//!
//! Every read goes to the bucket stream's leader (`STREAM.MSG.GET`, never a direct get that a
//! lagging follower may answer), so a read made after a write's acknowledgement sees it.

use async_nats::jetstream::kv::{CreateErrorKind, Store, UpdateErrorKind};
use async_nats::jetstream::stream::{self, DiscardPolicy, LastRawMessageErrorKind, StorageType};
use async_nats::jetstream::Context;

use super::subject::token_of_topic;
use super::{unavailable, JetStreamConfig};
use crate::error::{Error, Result};

/// The heads bucket's key of the relay key record (no topic token has a `.`).
const RELAY_KEY_RECORD: &str = "relay.key";

/// A value read from a bucket with its revision (the bucket stream's sequence of the write):
/// pass the revision back to a compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The value as written.
    pub value: Vec<u8>,
    /// Its revision.
    pub revision: u64,
}

/// Where an op was sequenced: the op-id index's value.
///
/// Bytes: `u64 seq (big-endian) ‖ topic (UTF-8)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpLocation {
    /// The topic the op is in.
    pub topic: String,
    /// Its entry sequence number in that topic.
    pub seq: u64,
}

impl OpLocation {
    /// The bytes stored in the index.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(8 + self.topic.len());
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        bytes.extend_from_slice(self.topic.as_bytes());
        bytes
    }

    /// Reads [`OpLocation::encode`]'s bytes. `MALFORMED` for anything else.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let malformed = |reason: &str| Error::Malformed {
            what: "op location",
            reason: reason.into(),
        };
        let (seq, topic) = bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| malformed("shorter than 8 bytes"))?;
        let topic = std::str::from_utf8(topic).map_err(|_| malformed("topic is not UTF-8"))?;
        crate::op::validate_topic(topic).map_err(|e| malformed(&e.to_string()))?;
        Ok(OpLocation {
            topic: topic.to_string(),
            seq: u64::from_be_bytes(*seq),
        })
    }
}

/// The KV buckets `<prefix>_heads`, `<prefix>_ops` and `<prefix>_snapshots`.
#[derive(Debug, Clone)]
pub struct Buckets {
    heads: Store,
    ops: Store,
    snapshots: Store,
}

/// Opens bucket `name`, creating it (file storage, `replicas` copies, one value per key) if it
/// does not exist; `max_age` 0 keeps values forever.
///
/// The bucket's stream is created here with the KV layout (`KV_<name>`, subjects
/// `$KV.<name>.>`, rollups allowed, deletes denied) rather than by async-nats'
/// `create_key_value`, which first reads the account info in a shape nats-server 2.9.10 does
/// not answer with (measured: "data did not match any variant").
pub(crate) async fn open_bucket(
    js: &Context,
    config: &JetStreamConfig,
    name: &str,
    max_age: std::time::Duration,
) -> Result<Store> {
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: StorageType::File,
        num_replicas: config.replicas,
        discard: DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        ..Default::default()
    })
    .await
    .map_err(|e| unavailable(&format!("create bucket {name}"), e))?;
    js.get_key_value(name)
        .await
        .map_err(|e| unavailable(&format!("open bucket {name}"), e))
}

/// The current value of `key` read from the bucket stream's leader, `None` if absent, deleted
/// or expired.
pub(crate) async fn read_latest(store: &Store, key: &str) -> Result<Option<Stored>> {
    let subject = format!("{}{key}", store.prefix);
    match store.stream.get_last_raw_message_by_subject(&subject).await {
        Ok(message) => {
            let removed = message
                .headers
                .get("KV-Operation")
                .is_some_and(|op| matches!(op.as_str(), "DEL" | "PURGE"));
            Ok((!removed).then(|| Stored {
                value: message.payload.to_vec(),
                revision: message.sequence,
            }))
        }
        Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(None),
        Err(e) => Err(unavailable(&format!("read {subject}"), e)),
    }
}

/// The index key of an op id: its 64 lower-case hex digits.
fn op_key(op_id: &[u8; 32]) -> String {
    op_id.iter().map(|b| format!("{b:02x}")).collect()
}

impl Buckets {
    pub(crate) async fn open(js: &Context, config: &JetStreamConfig) -> Result<Self> {
        let name = |suffix: &str| format!("{}_{suffix}", config.bucket_prefix);
        let forever = std::time::Duration::ZERO;
        Ok(Buckets {
            heads: open_bucket(js, config, &name("heads"), forever).await?,
            ops: open_bucket(js, config, &name("ops"), forever).await?,
            snapshots: open_bucket(js, config, &name("snapshots"), forever).await?,
        })
    }

    /// `topic`'s head (size, Merkle frontier, last stream sequence: opaque here), if stored.
    pub async fn head(&self, topic: &str) -> Result<Option<Stored>> {
        read_latest(&self.heads, &token_of_topic(topic)?).await
    }

    /// Stores `topic`'s head if its revision is still `expected_revision` (0: no head stored
    /// yet); returns the new revision. `SEQUENCE_CONFLICT` (with `expected` the revision given)
    /// if another writer stored a head since; `UNAVAILABLE` without quorum.
    pub async fn put_head(&self, topic: &str, head: &[u8], expected_revision: u64) -> Result<u64> {
        let key = token_of_topic(topic)?;
        let conflict = || Error::SequenceConflict {
            topic: topic.to_string(),
            expected: expected_revision,
        };
        if expected_revision == 0 {
            return match self.heads.create(&key, head.to_vec().into()).await {
                Ok(revision) => Ok(revision),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Err(conflict()),
                Err(e) => Err(unavailable("create head", e)),
            };
        }
        match self
            .heads
            .update(&key, head.to_vec().into(), expected_revision)
            .await
        {
            Ok(revision) => Ok(revision),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Err(conflict()),
            Err(e) => Err(unavailable("update head", e)),
        }
    }

    /// Records that op `op_id` was sequenced at `location`, unless the index already holds the
    /// op: then returns where it was recorded first (which wins; the caller answers the retry
    /// with that entry's receipt). `None`: recorded now.
    pub async fn index_op(
        &self,
        op_id: &[u8; 32],
        location: &OpLocation,
    ) -> Result<Option<OpLocation>> {
        let key = op_key(op_id);
        match self.ops.create(&key, location.encode().into()).await {
            Ok(_) => Ok(None),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => match self.op(op_id).await? {
                Some(first) => Ok(Some(first)),
                None => Err(Error::Unavailable(format!(
                    "op index: {key} exists but cannot be read"
                ))),
            },
            Err(e) => Err(unavailable("index op", e)),
        }
    }

    /// Where op `op_id` was sequenced, if the index has it.
    pub async fn op(&self, op_id: &[u8; 32]) -> Result<Option<OpLocation>> {
        read_latest(&self.ops, &op_key(op_id))
            .await?
            .map(|stored| OpLocation::decode(&stored.value))
            .transpose()
    }

    /// The relay key the cluster's log is bound to ([`Buckets::bind_relay_key`]), if any yet.
    /// `UNAVAILABLE` without quorum or for a record that is not an agent id.
    pub async fn recorded_relay_key(&self) -> Result<Option<crate::identity::AgentId>> {
        read_latest(&self.heads, RELAY_KEY_RECORD)
            .await?
            .map(|stored| {
                crate::identity::AgentId::from_bytes(&stored.value).map_err(|_| {
                    Error::Unavailable(format!(
                        "the cluster's relay key record is not an agent id: {:?}",
                        stored.value
                    ))
                })
            })
            .transpose()
    }

    /// Binds the cluster to the relay key `relay`: the first frontend records it (in the heads
    /// bucket under `relay.key`, a key no topic token can be: tokens have no `.`), every later
    /// one must bring the same key. `BAD_INPUT` naming the recorded key otherwise: a frontend
    /// with another key would sign the relay's log under a key its clients have not pinned.
    /// `UNAVAILABLE` without quorum.
    pub async fn bind_relay_key(&self, relay: &crate::identity::AgentId) -> Result<()> {
        let mine = relay.as_bytes().to_vec();
        let recorded = match self
            .heads
            .create(RELAY_KEY_RECORD, mine.clone().into())
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                read_latest(&self.heads, RELAY_KEY_RECORD)
                    .await?
                    .ok_or_else(|| {
                        Error::Unavailable("relay key record exists but cannot be read".into())
                    })?
            }
            Err(e) => return Err(unavailable("bind relay key", e)),
        };
        if recorded.value == mine {
            return Ok(());
        }
        let recorded = crate::identity::AgentId::from_bytes(&recorded.value)
            .map_or_else(|_| format!("{:?}", recorded.value), |id| id.to_string());
        Err(Error::BadInput(format!(
            "this cluster's log is signed by relay key {recorded}, not {relay}: copy that \
             relay's key file to this frontend (every frontend of a cluster shares one key)"
        )))
    }

    /// `topic`'s latest replica snapshot (opaque bytes), if stored.
    pub async fn snapshot(&self, topic: &str) -> Result<Option<Stored>> {
        read_latest(&self.snapshots, &token_of_topic(topic)?).await
    }

    /// Stores `topic`'s replica snapshot, replacing the previous one; returns its revision.
    /// Snapshots are rebuilt from the log, so the last writer wins. `LIMIT_EXCEEDED` over the
    /// server's message size is reported by the server as `UNAVAILABLE`.
    pub async fn put_snapshot(&self, topic: &str, snapshot: &[u8]) -> Result<u64> {
        self.snapshots
            .put(token_of_topic(topic)?, snapshot.to_vec().into())
            .await
            .map_err(|e| unavailable("put snapshot", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_locations_round_trip_and_refuse_bad_bytes() {
        let location = OpLocation {
            topic: "a.b c".into(),
            seq: 0x0102_0304_0506_0708,
        };
        let bytes = location.encode();
        assert_eq!(&bytes[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(OpLocation::decode(&bytes).unwrap(), location);
        for bad in [&[][..], &[0; 7], &[0; 8], &[0, 0, 0, 0, 0, 0, 0, 0, 0xff]] {
            assert_eq!(OpLocation::decode(bad).unwrap_err().code(), "MALFORMED");
        }
    }

    #[test]
    fn op_keys_are_lower_hex() {
        let mut id = [0u8; 32];
        id[0] = 0xab;
        id[31] = 0x01;
        let key = op_key(&id);
        assert_eq!(key.len(), 64);
        assert!(key.starts_with("ab00") && key.ends_with("01"));
    }
}
