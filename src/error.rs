//! The one error type of ants-coord.
//!
//! Every variant has a stable machine-readable [`Error::code`] (`UPPER_SNAKE`), used unchanged in
//! JS `Error.code` properties and in relay error frames. Messages are lowercase, carry context and
//! may change between versions; codes never do. Crypto failures stay opaque on purpose: a bad
//! signature is `BAD_SIGNATURE`, never an explanation of which check failed.

/// Everything that can go wrong in the ants-coord core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument has the wrong shape or type (a JS value that is not what the API takes).
    #[error("bad input: {0}")]
    BadInput(String),

    /// A fixed-size byte string (key, seed, signature, hash) has the wrong length.
    #[error("{what} must be {expected} bytes, got {got}")]
    BadLength {
        /// What was being read.
        what: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it had.
        got: usize,
    },

    /// An agent id text is not the one canonical spelling of an ed25519 public key.
    #[error("bad agent id: {0}")]
    BadAgentId(String),

    /// 32 bytes that are not a usable ed25519 public key (not a curve point, or of small order).
    #[error("bad public key")]
    BadPublicKey,

    /// A signature does not verify. Deliberately says nothing about why.
    #[error("bad signature")]
    BadSignature,

    /// Bytes that do not decode as the structure they claim to be.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The structure being decoded.
        what: &'static str,
        /// What was wrong, for people.
        reason: String,
    },

    /// A structure decoded completely but bytes were left over.
    #[error("{count} trailing bytes after {what}")]
    TrailingBytes {
        /// The structure that was decoded.
        what: &'static str,
        /// How many bytes were left.
        count: usize,
    },

    /// A structure carries a protocol version this build does not speak.
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion {
        /// The structure that carried it.
        what: &'static str,
        /// The version byte found.
        version: u8,
    },

    /// A replica configuration breaks a value rule of PROTOCOL.md 6.1 (a lease or the election
    /// window of 0 ms, a longest lease below the default one).
    #[error("replica config: {0}")]
    BadConfig(String),

    /// A length or count is over its protocol limit.
    #[error("{what} is {got}, over the limit of {limit}")]
    LimitExceeded {
        /// What was measured.
        what: &'static str,
        /// The largest value allowed.
        limit: usize,
        /// The value found.
        got: usize,
    },

    /// A topic name is empty, too long, not UTF-8 or contains control characters.
    #[error("bad topic: {0}")]
    BadTopic(String),

    /// An op kind is empty, too long or uses characters outside `[a-z0-9._-]`.
    #[error("bad kind: {0}")]
    BadKind(String),

    /// Bytes that decode but are not in the one canonical form (e.g. unsorted or repeated deps).
    #[error("non-canonical {what}: {reason}")]
    NonCanonical {
        /// The structure being decoded.
        what: &'static str,
        /// What was not canonical.
        reason: String,
    },

    /// A Merkle inclusion or consistency proof does not verify.
    #[error("{what} does not verify")]
    ProofFailed {
        /// Which kind of proof.
        what: &'static str,
    },

    /// A hash store lacks a subtree hash the log needs (a storage defect, never an input one).
    #[error("log hash store has no subtree at level {level}, index {index}")]
    LogHashMissing {
        /// The subtree's level (0 = leaves).
        level: u32,
        /// The subtree's index within its level.
        index: u64,
    },

    /// Statements and proofs that all verify but show no broken rule: not misbehaviour evidence.
    #[error("not evidence of misbehaviour: {0}")]
    NotEvidence(String),

    /// A relay's signed tree head disagrees with the entries it served, in a way the client
    /// cannot prove to others (the entries are not signed by the relay).
    #[error("log mismatch: {0}")]
    LogMismatch(String),

    /// The platform could not provide secure randomness.
    #[error("secure randomness unavailable: {0}")]
    RandomnessUnavailable(String),

    /// An entry handed to a replica belongs to another topic; the replica changed nothing.
    #[error("entry of topic {got:?} given to the replica of topic {expected:?}")]
    WrongTopic {
        /// The replica's topic.
        expected: String,
        /// The entry's topic.
        got: String,
    },

    /// An entry handed to a replica is not the next in sequence; the replica changed nothing.
    #[error("entry seq {got} out of order: the replica expects seq {expected}")]
    OutOfOrder {
        /// The sequence number the replica needs next.
        expected: u64,
        /// The sequence number it was given.
        got: u64,
    },

    /// An election was asked of an empty candidate set (or one where no candidate can lead).
    #[error("no candidates to elect from")]
    NoCandidates,
    /// A wire frame carries a type byte the protocol does not assign.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownFrame(u8),

    /// A wire frame of a known type was sent in the wrong direction or at the wrong time.
    #[error("unexpected frame type 0x{0:02x}")]
    UnexpectedFrame(u8),

    /// Publishing, and reading an owned topic, need a completed hello (challenge answered) on
    /// the connection.
    #[error("not authenticated: answer the challenge with a hello before publishing or reading an owned topic")]
    NotAuthenticated,

    /// An op's author is not the agent authenticated on the connection.
    #[error("op author {author} is not the connection's agent {agent}")]
    AuthorMismatch {
        /// The op's author (64 hex characters).
        author: String,
        /// The authenticated agent (64 hex characters).
        agent: String,
    },

    /// The author already has a different op sequenced at this counter in this topic.
    #[error("counter {counter} in topic {topic:?} is already used by another op of this author")]
    CounterReused {
        /// The topic.
        topic: String,
        /// The counter.
        counter: u64,
    },

    /// The counter is below the author's last sequenced counter in this topic (counters must
    /// increase) and no op of this author was sequenced at it.
    #[error("counter {counter} in topic {topic:?} is not above the author's last counter {last}")]
    CounterStale {
        /// The topic.
        topic: String,
        /// The counter offered.
        counter: u64,
        /// The author's last sequenced counter in this topic.
        last: u64,
    },

    /// An op lists a dep that is not sequenced yet; publish the dep first.
    #[error("dep {dep} is not sequenced yet")]
    DepsMissing {
        /// The missing op id (64 hex characters).
        dep: String,
    },

    /// A rate limit refused the request; retrying later is safe.
    #[error("rate limited: {0}")]
    RateLimited(&'static str),

    /// The service cannot answer now (storage failure, shutting down, feature not present).
    #[error("unavailable: {0}")]
    Unavailable(String),

    /// A store refused an append because the topic's last sequence is no longer the one the
    /// writer expected: another writer (another relay frontend) appended first. Nothing was
    /// written; reload the topic's head and decide again.
    #[error(
        "topic {topic:?} moved past the expected sequence {expected}: another writer appended"
    )]
    SequenceConflict {
        /// The topic appended to.
        topic: String,
        /// The last sequence the writer expected.
        expected: u64,
    },

    /// An index or range is outside the sequence it addresses (text, array, batch of edits).
    #[error("{what}: index {index} (+{length}) out of range for length {len}")]
    OutOfRange {
        /// What was addressed.
        what: &'static str,
        /// The index asked for.
        index: u64,
        /// How many units from the index (0 for an insertion point).
        length: u64,
        /// The length of the sequence.
        len: u64,
    },

    /// Bytes that are not a Yjs update (or state vector) this document can decode and integrate.
    #[error("bad document update: {0}")]
    BadUpdate(String),

    /// A document call made while the document is inside a transaction (from an observer
    /// callback): retry after the callback returns.
    #[error("document busy: {0}")]
    DocBusy(&'static str),

    /// A root name already holds a shared type of another kind (e.g. a map read as text).
    #[error("root {name:?} is a {found}, not a {expected}")]
    RootTypeMismatch {
        /// The root's name.
        name: String,
        /// The kind the call needs.
        expected: &'static str,
        /// The kind the root already has.
        found: &'static str,
    },

    /// A signed document update or awareness state from an author outside the document's
    /// writer set.
    #[error("{0} is not a writer of this document")]
    NotAWriter(String),

    /// A plain Yjs room asked to be bridged to a topic the relay's configuration does not
    /// allow (`yjs_bridge`): the relay signs bridged edits with its own key, so only the topics
    /// its operator chose may be bridged.
    #[error("bridging a Yjs room to topic {0:?} is not allowed by this relay")]
    BridgeNotAllowed(String),

    /// The agent holds no capability that grants the right it used on this topic (an owned
    /// topic written or read by another key without a capability chain rooted at the owner).
    #[error("not authorized: {0}")]
    NotAuthorized(String),

    /// The only capability that would grant the right has expired (its `expires_ms` is not
    /// after the time of the check).
    #[error("capability expired at {expires_ms} ms (checked at {now_ms} ms)")]
    CapabilityExpired {
        /// When the capability stopped being valid, ms since the Unix epoch.
        expires_ms: u64,
        /// The time of the check.
        now_ms: u64,
    },

    /// A capability chain breaks a rule of PROTOCOL.md section 10: a link that widens its parent
    /// (rights, scope, time), a link not issued by its parent's audience or whose parent cannot
    /// delegate, no rights, an unknown scope kind or rights bit, an empty time window.
    #[error("bad capability: {0}")]
    BadCapability(String),

    /// A link of the only capability that would grant the right was revoked in this topic by a
    /// sequenced `cap.revoke` op of its issuer or of the topic's owner (PROTOCOL.md 10.7).
    #[error("capability revoked: {0}")]
    CapabilityRevoked(String),
}

impl Error {
    /// The stable code of this error: never changes once released, safe to match on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadInput(_) => "BAD_INPUT",
            Error::BadLength { .. } => "BAD_LENGTH",
            Error::BadAgentId(_) => "BAD_AGENT_ID",
            Error::BadPublicKey => "BAD_PUBLIC_KEY",
            Error::BadSignature => "BAD_SIGNATURE",
            Error::Malformed { .. } => "MALFORMED",
            Error::TrailingBytes { .. } => "TRAILING_BYTES",
            Error::UnsupportedVersion { .. } => "UNSUPPORTED_VERSION",
            Error::BadConfig(_) => "BAD_CONFIG",
            Error::LimitExceeded { .. } => "LIMIT_EXCEEDED",
            Error::BadTopic(_) => "BAD_TOPIC",
            Error::BadKind(_) => "BAD_KIND",
            Error::NonCanonical { .. } => "NON_CANONICAL",
            Error::RandomnessUnavailable(_) => "RANDOMNESS_UNAVAILABLE",
            Error::ProofFailed { .. } => "BAD_PROOF",
            Error::LogHashMissing { .. } => "LOG_HASH_MISSING",
            Error::NotEvidence(_) => "NOT_EVIDENCE",
            Error::LogMismatch(_) => "LOG_MISMATCH",
            Error::WrongTopic { .. } => "WRONG_TOPIC",
            Error::OutOfOrder { .. } => "OUT_OF_ORDER",
            Error::NoCandidates => "NO_CANDIDATES",
            Error::UnknownFrame(_) => "UNKNOWN_FRAME",
            Error::UnexpectedFrame(_) => "UNEXPECTED_FRAME",
            Error::NotAuthenticated => "NOT_AUTHENTICATED",
            Error::AuthorMismatch { .. } => "AUTHOR_MISMATCH",
            Error::CounterReused { .. } => "COUNTER_REUSED",
            Error::CounterStale { .. } => "COUNTER_STALE",
            Error::DepsMissing { .. } => "DEPS_MISSING",
            Error::RateLimited(_) => "RATE_LIMITED",
            Error::Unavailable(_) => "UNAVAILABLE",
            Error::SequenceConflict { .. } => "SEQUENCE_CONFLICT",

            Error::OutOfRange { .. } => "OUT_OF_RANGE",
            Error::BadUpdate(_) => "BAD_UPDATE",
            Error::DocBusy(_) => "DOC_BUSY",
            Error::RootTypeMismatch { .. } => "ROOT_TYPE_MISMATCH",
            Error::NotAWriter(_) => "NOT_A_WRITER",
            Error::BridgeNotAllowed(_) => "BRIDGE_NOT_ALLOWED",
            Error::NotAuthorized(_) => "NOT_AUTHORIZED",
            Error::CapabilityExpired { .. } => "CAPABILITY_EXPIRED",
            Error::BadCapability(_) => "BAD_CAPABILITY",
            Error::CapabilityRevoked(_) => "CAPABILITY_REVOKED",
        }
    }

    /// Shorthand for [`Error::Malformed`].
    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> Self {
        Error::Malformed {
            what,
            reason: reason.into(),
        }
    }
}

/// The result type of every fallible ants-coord call.
pub type Result<T, E = Error> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// One value of every variant (`every_variant_covers_every_code` checks that none is missing;
    /// the match in `code()` forces every variant to have a code).
    pub(crate) fn every_variant() -> Vec<Error> {
        vec![
            Error::BadInput(String::new()),
            Error::BadLength {
                what: "",
                expected: 0,
                got: 0,
            },
            Error::BadAgentId(String::new()),
            Error::BadPublicKey,
            Error::BadSignature,
            Error::malformed("", ""),
            Error::TrailingBytes { what: "", count: 0 },
            Error::UnsupportedVersion {
                what: "",
                version: 0,
            },
            Error::BadConfig(String::new()),
            Error::LimitExceeded {
                what: "",
                limit: 0,
                got: 0,
            },
            Error::BadTopic(String::new()),
            Error::BadKind(String::new()),
            Error::NonCanonical {
                what: "",
                reason: String::new(),
            },
            Error::RandomnessUnavailable(String::new()),
            Error::ProofFailed { what: "" },
            Error::LogHashMissing { level: 0, index: 0 },
            Error::NotEvidence(String::new()),
            Error::LogMismatch(String::new()),
            Error::WrongTopic {
                expected: String::new(),
                got: String::new(),
            },
            Error::OutOfOrder {
                expected: 0,
                got: 0,
            },
            Error::NoCandidates,
            Error::UnknownFrame(0),
            Error::UnexpectedFrame(0),
            Error::NotAuthenticated,
            Error::AuthorMismatch {
                author: String::new(),
                agent: String::new(),
            },
            Error::CounterReused {
                topic: String::new(),
                counter: 0,
            },
            Error::CounterStale {
                topic: String::new(),
                counter: 0,
                last: 0,
            },
            Error::DepsMissing { dep: String::new() },
            Error::RateLimited(""),
            Error::Unavailable(String::new()),
            Error::SequenceConflict {
                topic: String::new(),
                expected: 0,
            },
            Error::OutOfRange {
                what: "",
                index: 0,
                length: 0,
                len: 0,
            },
            Error::BadUpdate(String::new()),
            Error::DocBusy(""),
            Error::RootTypeMismatch {
                name: String::new(),
                expected: "",
                found: "",
            },
            Error::NotAWriter(String::new()),
            Error::BridgeNotAllowed(String::new()),
            Error::NotAuthorized(String::new()),
            Error::CapabilityExpired {
                expires_ms: 0,
                now_ms: 0,
            },
            Error::BadCapability(String::new()),
            Error::CapabilityRevoked(String::new()),
        ]
    }

    #[test]
    fn codes_are_unique_and_upper_snake() {
        let all = every_variant();
        let mut codes: Vec<&str> = all.iter().map(Error::code).collect();
        for code in &codes {
            assert!(
                code.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{code}"
            );
        }
        codes.sort_unstable();
        let before = codes.len();
        codes.dedup();
        assert_eq!(before, codes.len(), "two variants share a code");
    }

    /// `every_variant` has every variant: its codes are the string literals of `code()`'s
    /// exhaustive match, read from this file.
    #[test]
    fn every_variant_covers_every_code() {
        let source = include_str!("error.rs");
        let body = source
            .split("pub fn code(&self) -> &'static str {")
            .nth(1)
            .and_then(|rest| rest.split("\n    }\n").next())
            .expect("code() in error.rs");
        let mut in_match: Vec<&str> = body
            .split("=> \"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        in_match.sort_unstable();
        let mut codes: Vec<&str> = every_variant().iter().map(Error::code).collect();
        codes.sort_unstable();
        assert_eq!(codes, in_match);
    }

    /// The codes of a markdown table's rows (`| `CODE` | meaning |`) under `heading`.
    fn codes_listed<'a>(markdown: &'a str, heading: &str) -> Vec<&'a str> {
        let section = markdown
            .split(&format!("\n{heading}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no section {heading}"));
        // Up to the next heading of any level: section 9's subsections have tables of their own.
        let section = section.split("\n#").next().unwrap_or(section);
        let mut listed: Vec<&str> = section
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split('`').next())
            .collect();
        listed.sort_unstable();
        listed
    }

    /// The `=> "CODE"` string literals of the `match` arms in `source` that start with `arm`
    /// (e.g. `RejectCode::`), in order.
    fn match_codes<'a>(source: &'a str, arm: &str) -> Vec<&'a str> {
        source
            .lines()
            .map(str::trim_start)
            .filter(|line| line.starts_with(arm))
            .filter_map(|line| line.split("=> \"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .collect()
    }

    /// PROTOCOL.md section 9's other lists name exactly the replica's rejection codes, the
    /// client's fault codes and the violations, and no code has two meanings: a code is in one
    /// list only (`NO_CANDIDATES` and the owned-topic codes, errors and rejections, mean the same
    /// in both).
    #[test]
    fn protocol_section_9_lists_every_other_code_once() {
        let protocol = include_str!("../PROTOCOL.md");
        let sorted = |mut v: Vec<&'static str>| {
            v.sort_unstable();
            v
        };
        let rejections = sorted(match_codes(
            include_str!("replica/events.rs"),
            "RejectCode::",
        ));
        assert!(rejections.len() >= 19, "{rejections:?}");
        let mut faults = match_codes(include_str!("session/events.rs"), "Fault::");
        // The JS `RelayGroup`'s own code (pkg-config/relay-group.mjs).
        faults.push("NOT_ON_ALL_RELAYS");
        let faults = sorted(faults);
        let violations = sorted(
            crate::log::Violation::ALL
                .iter()
                .map(crate::log::Violation::code)
                .collect(),
        );
        for (heading, codes) in [
            ("### 9.1 Replica rejection codes (6.4)", &rejections),
            ("### 9.2 Client fault codes (8.8)", &faults),
            ("### 9.3 Violations (5.6)", &violations),
        ] {
            assert_eq!(&codes_listed(protocol, heading), codes, "{heading}");
        }
        let mut all: Vec<&str> = every_variant().iter().map(Error::code).collect();
        all.extend(rejections.iter().chain(&faults).chain(&violations));
        all.sort_unstable();
        let mut twice: Vec<&str> = all
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        twice.dedup();
        // The owned-topic codes are errors of the relay and rejections of a replica alike
        // (PROTOCOL.md 10.8): one meaning each, in both lists.
        assert_eq!(
            twice,
            [
                "CAPABILITY_EXPIRED",
                "CAPABILITY_REVOKED",
                "NOT_AUTHORIZED",
                "NO_CANDIDATES"
            ],
            "codes in two lists"
        );
    }

    /// The error-code tables of the README and PROTOCOL.md list exactly the codes of [`Error`].
    #[test]
    fn the_docs_list_every_code_and_no_other() {
        let mut codes: Vec<&str> = every_variant().iter().map(Error::code).collect();
        codes.sort_unstable();
        let readme = include_str!("../README.md");
        assert_eq!(codes_listed(readme, "## Error codes"), codes, "README.md");
        let protocol = include_str!("../PROTOCOL.md");
        assert_eq!(
            codes_listed(protocol, "## 9. Error codes"),
            codes,
            "PROTOCOL.md"
        );
    }
}
