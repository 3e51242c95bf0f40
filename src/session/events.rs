//! What a [`super::Session`] reports: events for its caller and the faults of a relay.

use crate::entry::Entry;
use crate::identity::AgentId;
use crate::log::Evidence;
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
