//! The transparency log: each topic's entries in an RFC 6962 Merkle tree, the relay's signed
//! receipts and checkpoints, proofs, misbehaviour evidence and client-side verification.
//!
//! - [`merkle`]: the tree (RFC 6962 §2.1), its frontier and the [`HashStore`] trait the relay
//!   implements over its database;
//! - [`proof`]: inclusion and consistency proofs, verified per RFC 9162 §2.1.3.2 / §2.1.4.2;
//! - [`statement`]: receipts and checkpoints, the relay's signed tree heads;
//! - [`note`]: the C2SP signed-note text form of checkpoints;
//! - [`evidence`]: self-contained proofs that a relay broke a rule;
//! - [`follower`]: the sans-IO verifier a client runs per topic;
//! - [`sequencing`]: the relay's decisions for a batch of verified ops (number, retry, refuse).
//!
//! PROTOCOL.md section 5 is the normative description.
//!
//! ```
//! use ants_coord::log::{verify_consistency, Checkpoint, LogFollower, MerkleLog, SignedCheckpoint};
//! use ants_coord::{Entry, Identity, OpDraft, SignedOp};
//!
//! let relay = Identity::from_seed(&[1; 32])?;
//! let author = Identity::from_seed(&[2; 32])?;
//! let mut log = MerkleLog::new();
//! let mut follower = LogFollower::new(relay.agent_id(), "tasks")?;
//! for counter in 0..5 {
//!     let draft = OpDraft { topic: "tasks".into(), kind: "post".into(), counter, ..OpDraft::default() };
//!     let entry = Entry::new(log.size(), 1_700_000_000_000, SignedOp::sign(&author, draft)?);
//!     log.append(entry.as_bytes())?;
//!     follower.push_entry(entry.as_bytes())?;
//! }
//! // The relay signs a checkpoint; the follower checks it against the tree it recomputed.
//! let checkpoint = SignedCheckpoint::sign(&relay, Checkpoint {
//!     topic: "tasks".into(), tree_size: log.size(), root: log.root(), time_ms: 1_700_000_000_001,
//! })?;
//! let events = follower.push_head(checkpoint.into())?;
//! assert_eq!(follower.verified_head().map(|h| h.tree_size()), Some(5));
//! # assert_eq!(events.len(), 1);
//! // Proofs from the relay's log verify against roots alone.
//! let proof = log.consistency_proof(2, 5)?;
//! verify_consistency(2, &log.root_at(2)?, 5, &log.root(), &proof.hashes)?;
//! # Ok::<(), ants_coord::Error>(())
//! ```

pub mod evidence;
pub mod follower;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod sequencing;
pub mod statement;

pub use evidence::{Evidence, HeadLeaf, ProvenLeaf, Violation};
pub use follower::{FollowerEvent, LogFollower, MAX_HEADS};
pub use merkle::{
    empty_root, leaf_hash, merkle_root, node_hash, Frontier, Hash, HashStore, MemoryHashes,
    MerkleLog, MAX_PROOF_HASHES, MAX_TREE_SIZE,
};
pub use note::{checkpoint_note, verify_checkpoint_note, NoteCheckpoint};
pub use proof::{verify_consistency, verify_inclusion, ConsistencyProof, InclusionProof};
pub use statement::{
    Checkpoint, Receipt, SignedCheckpoint, SignedReceipt, SignedTreeHead, CHECKPOINT_DOMAIN,
    MAX_RECEIPT_BATCH, RECEIPT_BATCH_DOMAIN, RECEIPT_BATCH_VERSION, RECEIPT_DOMAIN,
};
