//! What a [`super::Session`] reports: events for its caller and the faults of a relay.

use core::fmt;

use crate::entry::Entry;
use crate::identity::AgentId;
use crate::log::{Evidence, SignedTreeHead};
use crate::op::OpId;
use crate::replica::Event;

/// What the relay did wrong, as far as the session can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Evidence checkable by anyone holding the relay's key.
    Evidence(Box<Evidence>),
    /// An entry whose op signature does not verify, or of another topic or seq.
    InvalidEntry {
        /// The seq the entry claimed.
        seq: u64,
    },
    /// Entries were skipped: `expected` was owed, `got` came.
    Gap {
        /// The seq owed.
        expected: u64,
        /// The seq received.
        got: u64,
    },
    /// An entry already delivered was sent again.
    Duplicate {
        /// Its seq.
        seq: u64,
    },
    /// An author's counters went backwards or repeated within the topic.
    AuthorOrder {
        /// The author.
        author: AgentId,
        /// The counter seen before.
        previous: u64,
        /// The counter seen after it.
        counter: u64,
    },
    /// The relay acknowledged `op_id` at `seq` but served another entry there, or none past the
    /// deadline.
    AcknowledgedOpMissing {
        /// The op.
        op_id: OpId,
        /// Where the receipt put it.
        seq: u64,
    },
    /// A signed head disagrees with the entries served (unprovable without a second signature).
    HeadMismatch {
        /// The head's size.
        tree_size: u64,
    },
    /// A receipt that does not verify or does not match the op it answers.
    BadReceipt {
        /// Why.
        reason: String,
    },
    /// The relay's subscription answer contradicts the session's cursor (e.g. the log shrank).
    BadSubscription {
        /// Why.
        reason: String,
    },
    /// The relay presented a key other than the pinned one.
    RelayKeyChanged {
        /// The key it presented.
        presented: AgentId,
    },
    /// An event the relay pushed (an `event` frame) that the session's own replica of the topic
    /// does not produce for that entry.
    EventMismatch {
        /// The entry the relay said caused it.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The relay served, in an owned topic, an op the session's own replica rejects for want
    /// of authority (`NOT_AUTHORIZED`, `CAPABILITY_EXPIRED`, `CAPABILITY_REVOKED`,
    /// `AUTHORITY_FULL`, PROTOCOL.md 10.8): an honest relay refuses it before sequencing it.
    /// The op counts nowhere; this reports that the relay sequenced it anyway.
    UnauthorizedEntry {
        /// The entry.
        seq: u64,
        /// The op's author.
        author: AgentId,
        /// The replica's rejection code.
        code: &'static str,
    },
}

impl Fault {
    /// A stable UPPER_SNAKE name for the fault.
    pub fn code(&self) -> &'static str {
        match self {
            Fault::Evidence(evidence) => evidence.claimed_violation().code(),
            Fault::InvalidEntry { .. } => "INVALID_ENTRY",
            Fault::Gap { .. } => "GAP",
            Fault::Duplicate { .. } => "DUPLICATE",
            Fault::AuthorOrder { .. } => "AUTHOR_ORDER",
            Fault::AcknowledgedOpMissing { .. } => "ACKNOWLEDGED_OP_MISSING",
            Fault::HeadMismatch { .. } => "HEAD_MISMATCH",
            Fault::BadReceipt { .. } => "BAD_RECEIPT",
            Fault::BadSubscription { .. } => "BAD_SUBSCRIPTION",
            Fault::RelayKeyChanged { .. } => "RELAY_KEY_CHANGED",
            Fault::EventMismatch { .. } => "EVENT_MISMATCH",
            Fault::UnauthorizedEntry { .. } => "UNAUTHORIZED_ENTRY",
        }
    }
}

/// What a head is, for people: "receipt of seq 4" or "checkpoint".
fn head_name(head: &SignedTreeHead) -> String {
    match head {
        SignedTreeHead::Receipt(r) => format!("receipt of seq {}", r.receipt().seq),
        SignedTreeHead::Checkpoint(_) => "checkpoint".into(),
    }
}

/// "1 entry", "3 entries".
fn entries(n: u64) -> String {
    if n == 1 {
        "1 entry".into()
    } else {
        format!("{n} entries")
    }
}

fn describe_evidence(f: &mut fmt::Formatter<'_>, evidence: &Evidence) -> fmt::Result {
    let topic = evidence.topic();
    match evidence {
        Evidence::ConflictingHeads { a, b } => write!(
            f,
            "the relay signed two heads of topic {topic:?} for the same {} with different roots \
             (a {} and a {})",
            entries(a.tree_size()),
            head_name(a),
            head_name(b)
        ),
        Evidence::SplitView { a, b } => write!(
            f,
            "the relay signed heads of topic {topic:?} for {} and {} whose logs hold different \
             entries at seq {}: it shows two histories",
            entries(a.head.tree_size()),
            entries(b.head.tree_size()),
            a.proof.leaf_index
        ),
        Evidence::ReceiptContradicted { receipt, head, .. } => {
            let r = receipt.receipt();
            write!(
                f,
                "the relay receipted op {} at seq {} of topic {topic:?}, but its {} for {} holds \
                 another entry at that seq",
                r.op_id,
                r.seq,
                head_name(head),
                entries(head.tree_size())
            )
        }
        Evidence::CounterOrder { earlier, later, .. } => write!(
            f,
            "the relay sequenced an author's ops of topic {topic:?} out of counter order: seq {} \
             does not have a lower counter than seq {}",
            earlier.proof.leaf_index, later.proof.leaf_index
        ),
        Evidence::DepsOrder { earlier, later, .. } => write!(
            f,
            "the relay sequenced the op at seq {} of topic {topic:?} before the op it depends on, \
             at seq {}",
            earlier.proof.leaf_index, later.proof.leaf_index
        ),
        Evidence::InvalidEntry { entry, head } => write!(
            f,
            "the relay logged an invalid entry at seq {} of topic {topic:?} under its {} for {}",
            entry.proof.leaf_index,
            head_name(head),
            entries(head.tree_size())
        ),
    }
}

/// A sentence for people (what the JS `misbehaviour` event carries as `detail`); the stable
/// name is [`Fault::code`].
impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Evidence(evidence) => describe_evidence(f, evidence),
            Fault::InvalidEntry { seq } => write!(
                f,
                "the entry served at seq {seq} is not valid (it does not decode, its op \
                 signature fails, or it is of another topic or seq)"
            ),
            Fault::Gap { expected, got } => write!(
                f,
                "the relay skipped entries: seq {expected} was owed and seq {got} came"
            ),
            Fault::Duplicate { seq } => write!(f, "the relay sent seq {seq} a second time"),
            Fault::AuthorOrder {
                author,
                previous,
                counter,
            } => write!(
                f,
                "an op of {author} with counter {counter} came after one with counter \
                 {previous}: an author's counters must increase"
            ),
            Fault::AcknowledgedOpMissing { op_id, seq } => write!(
                f,
                "the relay acknowledged op {op_id} at seq {seq} but does not show it there"
            ),
            Fault::HeadMismatch { tree_size } => write!(
                f,
                "a head the relay signed for {} disagrees with the entries it served",
                entries(*tree_size)
            ),
            Fault::BadReceipt { reason } => {
                write!(f, "a receipt or checkpoint did not verify: {reason}")
            }
            Fault::BadSubscription { reason } => {
                write!(f, "the relay answered a subscription wrongly: {reason}")
            }
            Fault::RelayKeyChanged { presented } => write!(
                f,
                "the relay presented the key {presented}, not the one pinned on first contact"
            ),
            Fault::EventMismatch { seq, reason } => write!(
                f,
                "the relay pushed an event for seq {seq} that the topic's replica does not \
                 produce: {reason}"
            ),
            Fault::UnauthorizedEntry { seq, author, code } => write!(
                f,
                "the relay sequenced at seq {seq} an op by {author} that the owned topic's \
                 rules reject ({code}): an honest relay refuses it"
            ),
        }
    }
}

/// What the session tells its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The relay accepted the hello: the connection is live.
    Live {
        /// The relay's key.
        relay: AgentId,
    },
    /// A subscription (re)started at `from_seq`; the topic had `head` entries then.
    Subscribed {
        /// The topic.
        topic: String,
        /// The first seq that will come.
        from_seq: u64,
        /// The relay's size of the topic.
        head: u64,
    },
    /// The relay refused a subscription, or ended it (PROTOCOL.md 10.6: the capability that let
    /// this agent read an owned topic expired). The topic stays followed: the next connection
    /// (e.g. one that carries a fresh capability) subscribes again from the cursor.
    SubscriptionEnded {
        /// The topic.
        topic: String,
        /// The relay's error code (`NOT_AUTHORIZED`, `CAPABILITY_EXPIRED`, …).
        code: String,
        /// The relay's explanation.
        message: String,
    },
    /// A verified entry, next in sequence.
    Entry {
        /// The topic.
        topic: String,
        /// The entry.
        entry: Entry,
    },
    /// An event of the topic's replica, caused by entry `seq`.
    Replica {
        /// The topic.
        topic: String,
        /// The replica event.
        event: Event,
    },
    /// A signed head matched the session's own tree of the topic.
    Verified {
        /// The topic.
        topic: String,
        /// The verified size.
        tree_size: u64,
    },
    /// One of our ops is durably sequenced.
    Acknowledged {
        /// The topic.
        topic: String,
        /// The op.
        op_id: OpId,
        /// Its seq.
        seq: u64,
        /// The relay's signed receipt (never empty: every receipt is signed, PROTOCOL.md 5.3).
        receipt: Vec<u8>,
    },
    /// A kept receipt of ours was proven included in a later signed head of its topic
    /// (receipt auditing, [`super::Session::request_checkpoint`]).
    ReceiptAudited {
        /// The topic.
        topic: String,
        /// The op.
        op_id: OpId,
        /// Its seq.
        seq: u64,
        /// The size of the head it was proven under.
        tree_size: u64,
    },
    /// The relay refused one of our ops for good (it will not be retried).
    Refused {
        /// The topic.
        topic: String,
        /// The op.
        op_id: OpId,
        /// The stable error code.
        code: String,
        /// The relay's explanation.
        message: String,
    },
    /// The relay broke a rule.
    Misbehaviour {
        /// The topic concerned (empty for connection-level faults).
        topic: String,
        /// What it did.
        fault: Fault,
    },
    /// The relay refused one of our ops with a retryable code (`RATE_LIMITED`, `UNAVAILABLE`):
    /// the same bytes are sent again at `retry_at_ms` (or on the next connection, if later).
    Retrying {
        /// The topic.
        topic: String,
        /// The op.
        op_id: OpId,
        /// The relay's code.
        code: String,
        /// The relay's explanation.
        message: String,
        /// How many retryable refusals the op has had.
        attempt: u32,
        /// When it is sent again (the session's clock).
        retry_at_ms: u64,
    },
    /// One of our ops got no receipt within the publish timeout
    /// ([`super::Session::set_publish_timeout_ms`]): the session stops sending it. `code` is the
    /// relay's last retryable refusal of it, or `UNAVAILABLE` when it never answered. If the op
    /// was on the wire when time ran out the relay may still have sequenced it: publishing `op`
    /// again ([`super::Session::publish_signed`]) is safe and is answered with the original
    /// receipt if so.
    TimedOut {
        /// The topic.
        topic: String,
        /// The op.
        op_id: OpId,
        /// The stable code.
        code: String,
        /// What happened, for people.
        message: String,
        /// The signed op's bytes.
        op: Vec<u8>,
    },
    /// A replica event the relay pushed to us (an `event` frame: a compensation for a claim we
    /// lost), delivered at once. When the session keeps a replica of the topic it checks the
    /// event against its own once the entry `seq` is applied ([`Fault::EventMismatch`]).
    Pushed {
        /// The topic.
        topic: String,
        /// The entry that caused it.
        seq: u64,
        /// The event as the relay sent it: the replica's JSON view (PROTOCOL.md 8.5).
        event: Vec<u8>,
    },
    /// An error frame not tied to a publish.
    RelayError {
        /// The request it answered.
        request_id: u32,
        /// The stable code.
        code: String,
        /// The explanation.
        message: String,
    },
}
