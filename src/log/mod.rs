//! The transparency log: each topic's entries in an RFC 6962 Merkle tree, the relay's signed
//! receipts and checkpoints, proofs, misbehaviour evidence and client-side verification.
//!
//! - [`merkle`]: the tree (RFC 6962 §2.1), its frontier and the [`HashStore`] trait the relay
//!   implements over its database;
//! - [`proof`]: inclusion and consistency proofs, verified per RFC 9162 §2.1.3.2 / §2.1.4.2;
//! - [`statement`]: receipts and checkpoints, the relay's signed tree heads;
//! - [`evidence`]: self-contained proofs that a relay broke a rule;
//! - [`follower`]: the sans-IO verifier a client runs per topic.
//!
//! PROTOCOL.md section 5 is the normative description.

pub mod evidence;
pub mod follower;
pub mod merkle;
pub mod proof;
pub mod statement;

pub use evidence::{Evidence, HeadLeaf, ProvenLeaf, Violation};
pub use follower::{FollowerEvent, LogFollower};
pub use merkle::{
    empty_root, leaf_hash, merkle_root, node_hash, Frontier, Hash, HashStore, MemoryHashes,
    MerkleLog, MAX_PROOF_HASHES, MAX_TREE_SIZE,
};
pub use proof::{verify_consistency, verify_inclusion, ConsistencyProof, InclusionProof};
pub use statement::{
    Checkpoint, Receipt, SignedCheckpoint, SignedReceipt, SignedTreeHead, CHECKPOINT_DOMAIN,
    RECEIPT_DOMAIN,
};
