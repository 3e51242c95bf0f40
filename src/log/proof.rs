//! Inclusion and consistency proofs: their canonical encoding and their verification by the
//! algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 (which verify the proofs RFC 6962 §2.1.1 and
//! §2.1.2 define).
//!
//! Encoding (both kinds): `first (8) ‖ second (8) ‖ count (1) ‖ count × 32-byte hash`, where
//! `first, second` are `leaf_index, tree_size` for an inclusion proof and `old_size, new_size` for
//! a consistency proof. `count ≤ 64`.

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};

use super::merkle::{check_size, empty_root, node_hash, Hash, MAX_PROOF_HASHES};

/// Proof that a leaf is at `leaf_index` in the tree of `tree_size` leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The leaf's index (0-based; the entry's sequence number).
    pub leaf_index: u64,
    /// The size of the tree the proof is for.
    pub tree_size: u64,
    /// The audit path, leaf-side sibling first (RFC 9162 §2.1.3.1).
    pub hashes: Vec<Hash>,
}

/// Proof that the tree of `old_size` leaves is a prefix of the tree of `new_size` leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The size of the older tree.
    pub old_size: u64,
    /// The size of the newer tree.
    pub new_size: u64,
    /// The proof hashes (RFC 9162 §2.1.4.1).
    pub hashes: Vec<Hash>,
}

fn proof_failed(what: &'static str) -> Error {
    Error::ProofFailed { what }
}

/// Verifies that `leaf_hash` is leaf `index` of the tree of `size` leaves with root `root`,
/// by RFC 9162 §2.1.3.2.
///
/// Errors: `BAD_PROOF` when it does not (including `index ≥ size` and proofs of the wrong
/// length), `BAD_INPUT` for sizes over 2^63.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<()> {
    if inclusion_root(leaf_hash, index, size, proof)? == *root {
        Ok(())
    } else {
        Err(proof_failed("inclusion proof"))
    }
}

/// The root that `proof` leads to from `leaf_hash` as leaf `index` of a tree of `size` leaves
/// (RFC 9162 §2.1.3.2 without the final comparison).
///
/// Errors: `BAD_PROOF` for `index ≥ size` or a proof of the wrong length, `BAD_INPUT` for sizes
/// over 2^63.
pub(crate) fn inclusion_root(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash> {
    check_size(size)?;
    if index >= size || proof.len() > MAX_PROOF_HASHES {
        return Err(proof_failed("inclusion proof"));
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if s == 0 {
            return Err(proof_failed("inclusion proof"));
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s == 0 {
        Ok(r)
    } else {
        Err(proof_failed("inclusion proof"))
    }
}

/// Verifies that the tree of `old_size` leaves with root `old_root` is a prefix of the tree of
/// `new_size` leaves with root `new_root`, by RFC 9162 §2.1.4.2.
///
/// The two cases RFC 9162 leaves to the caller are fixed here: when `old_size == new_size` the
/// proof must be empty and the roots equal; when `old_size == 0` the proof must be empty and
/// `old_root` must be the empty-tree root `H("")`.
///
/// Errors: `BAD_PROOF` when the proof does not link the two trees, `BAD_INPUT` for sizes over
/// 2^63.
pub fn verify_consistency(
    old_size: u64,
    old_root: &Hash,
    new_size: u64,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<()> {
    check_size(new_size)?;
    let fail = || Err(proof_failed("consistency proof"));
    if old_size > new_size || proof.len() > MAX_PROOF_HASHES {
        return fail();
    }
    if old_size == 0 {
        return if proof.is_empty() && *old_root == empty_root() {
            Ok(())
        } else {
            fail()
        };
    }
    if old_size == new_size {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            fail()
        };
    }
    // Step 1: a power-of-two old tree is itself a node of the new tree; its root starts the path.
    let mut path = proof.iter();
    let first = if old_size.is_power_of_two() {
        old_root
    } else {
        match path.next() {
            Some(hash) => hash,
            None => return fail(),
        }
    };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in path {
        if s == 0 {
            return fail();
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s == 0 && fr == *old_root && sr == *new_root {
        Ok(())
    } else {
        fail()
    }
}

impl InclusionProof {
    /// Verifies the proof for `leaf_hash` against `root` (see [`verify_inclusion`]).
    pub fn verify(&self, leaf_hash: &Hash, root: &Hash) -> Result<()> {
        verify_inclusion(
            leaf_hash,
            self.leaf_index,
            self.tree_size,
            &self.hashes,
            root,
        )
    }

    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17 + 32 * self.hashes.len());
        self.write(&mut out);
        out
    }

    /// Decodes canonical bytes (`MALFORMED`, `TRAILING_BYTES`, `LIMIT_EXCEEDED`).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new("inclusion proof", bytes);
        let proof = Self::read(&mut r)?;
        r.finish()?;
        Ok(proof)
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        write_proof(out, self.leaf_index, self.tree_size, &self.hashes);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let (leaf_index, tree_size, hashes) = read_proof(r)?;
        Ok(InclusionProof {
            leaf_index,
            tree_size,
            hashes,
        })
    }
}

impl ConsistencyProof {
    /// Verifies the proof between two roots (see [`verify_consistency`]).
    pub fn verify(&self, old_root: &Hash, new_root: &Hash) -> Result<()> {
        verify_consistency(
            self.old_size,
            old_root,
            self.new_size,
            new_root,
            &self.hashes,
        )
    }

    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17 + 32 * self.hashes.len());
        write_proof(&mut out, self.old_size, self.new_size, &self.hashes);
        out
    }

    /// Decodes canonical bytes (`MALFORMED`, `TRAILING_BYTES`, `LIMIT_EXCEEDED`).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new("consistency proof", bytes);
        let (old_size, new_size, hashes) = read_proof(&mut r)?;
        r.finish()?;
        Ok(ConsistencyProof {
            old_size,
            new_size,
            hashes,
        })
    }
}

/// Writes at most [`MAX_PROOF_HASHES`] hashes (a longer proof never verifies and cannot be
/// encoded; [`super::MerkleLog`] never makes one), so every encoding decodes. Whatever is written is
/// judged on its own when decoded and verified.
fn write_proof(out: &mut Vec<u8>, first: u64, second: u64, hashes: &[Hash]) {
    let hashes = &hashes[..hashes.len().min(MAX_PROOF_HASHES)];
    out.put_u64(first);
    out.put_u64(second);
    out.put_u8(hashes.len() as u8);
    for hash in hashes {
        out.put(hash);
    }
}

fn read_proof(r: &mut Reader<'_>) -> Result<(u64, u64, Vec<Hash>)> {
    let first = r.u64("first size")?;
    let second = r.u64("second size")?;
    let count = r.u8("hash count")? as usize;
    if count > MAX_PROOF_HASHES {
        return Err(Error::LimitExceeded {
            what: "proof hashes",
            limit: MAX_PROOF_HASHES,
            got: count,
        });
    }
    let mut hashes = Vec::with_capacity(count);
    for _ in 0..count {
        hashes.push(r.array("proof hash")?);
    }
    Ok((first, second, hashes))
}
