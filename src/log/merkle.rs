//! The RFC 6962 Merkle tree (section 2.1), kept as a frontier plus a store of complete subtrees.
//!
//! Hashing is exactly RFC 6962 §2.1 (= RFC 9162 §2.1.1) with SHA-256: the hash of the empty tree
//! is `H("")`, a leaf hashes as `H(0x00 ‖ leaf)`, an interior node as `H(0x01 ‖ left ‖ right)`,
//! and a tree of `n > 1` leaves splits at `k`, the largest power of two smaller than `n`.
//!
//! Every tree of size `n` is a left-to-right sequence of *complete* subtrees, one per set bit of
//! `n`, largest first (the **frontier**); its root is the right fold of those hashes. Appending a
//! leaf touches only the frontier (amortised O(1) hashes, O(log n) worst case), and every complete
//! subtree it finishes is handed to a [`HashStore`] under its `(level, index)` address. Because
//! every node of any earlier tree is either such a complete subtree or the right fold of at most
//! 64 of them, roots at earlier sizes and every proof come out of the store in O(log n) lookups.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A SHA-256 hash: a leaf hash, node hash or tree root.
pub type Hash = [u8; 32];

/// Largest tree size accepted anywhere (2^63 leaves): keeps every proof within
/// [`MAX_PROOF_HASHES`] and every index arithmetic free of overflow.
pub const MAX_TREE_SIZE: u64 = 1 << 63;

/// Most hashes in an inclusion or consistency proof (a decoder refuses longer ones).
pub const MAX_PROOF_HASHES: usize = 64;

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The hash of a leaf: `SHA-256(0x00 ‖ leaf)` (RFC 6962 §2.1).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(leaf);
    hasher.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)` (RFC 6962 §2.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut block = [0u8; 65];
    block[0] = 0x01;
    block[1..33].copy_from_slice(left);
    block[33..].copy_from_slice(right);
    Sha256::digest(block).into()
}

/// The root of the tree over `leaves`, by the recursive definition of RFC 6962 §2.1.
///
/// A direct reference implementation (O(n) memory for the leaf hashes): used for small inputs,
/// tests and the JS `merkleRoot`.
pub fn merkle_root(leaves: &[&[u8]]) -> Hash {
    let hashes: Vec<Hash> = leaves.iter().map(|leaf| leaf_hash(leaf)).collect();
    fold_range(&hashes)
}

fn fold_range(hashes: &[Hash]) -> Hash {
    match hashes.len() {
        0 => empty_root(),
        1 => hashes[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&fold_range(&hashes[..k]), &fold_range(&hashes[k..]))
        }
    }
}

/// The largest power of two strictly smaller than `n` (`n ≥ 2`): where RFC 6962 splits a tree.
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Where complete subtree hashes live: the in-memory [`MemoryHashes`], or the relay's database.
///
/// The subtree at `(level, index)` covers leaves `index·2^level .. (index+1)·2^level`; level 0
/// holds the leaf hashes. [`MerkleLog`] stores each one exactly once, when it becomes complete,
/// in increasing order of its last leaf, and never changes it. A store backed by a table keyed
/// by `(topic, level, index)` serves every proof in O(log n) point lookups.
pub trait HashStore {
    /// The hash of the complete subtree at `(level, index)`, or `None` if it was never stored.
    fn subtree(&self, level: u32, index: u64) -> Option<Hash>;
    /// Records the hash of a newly complete subtree.
    fn put_subtree(&mut self, level: u32, index: u64, hash: Hash);
}

/// Every complete subtree hash, in memory (about 64 bytes per leaf).
///
/// Each level is a run of consecutive indexes from the first one stored there: from 0 for a log
/// grown from empty, from the frontier's subtree for a log resumed from a frontier
/// ([`MerkleLog::resume`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryHashes {
    levels: Vec<Level>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Level {
    first: u64,
    hashes: Vec<Hash>,
}

impl HashStore for MemoryHashes {
    fn subtree(&self, level: u32, index: u64) -> Option<Hash> {
        let row = self.levels.get(level as usize)?;
        let offset = usize::try_from(index.checked_sub(row.first)?).ok()?;
        row.hashes.get(offset).copied()
    }

    fn put_subtree(&mut self, level: u32, index: u64, hash: Hash) {
        let level = level as usize;
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Level::default);
        }
        let row = &mut self.levels[level];
        if row.hashes.is_empty() {
            row.first = index;
        }
        // MerkleLog stores subtrees of one level in index order, so this is a push.
        let Some(offset) = index.checked_sub(row.first) else {
            return;
        };
        if offset == row.hashes.len() as u64 {
            row.hashes.push(hash);
        } else if let Some(slot) = usize::try_from(offset)
            .ok()
            .and_then(|i| row.hashes.get_mut(i))
        {
            *slot = hash;
        }
    }
}

/// The right edge of a tree: the hashes of its complete subtrees, largest first.
///
/// Invariant: `hashes.len() == size.count_ones()` and `hashes[i]` is the root of the complete
/// subtree for the i-th set bit of `size`, counted from the most significant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frontier from its parts, e.g. as persisted by a client: `hashes` are the complete
    /// subtrees of a tree of `size` leaves, largest first.
    ///
    /// Errors: `BAD_INPUT` over [`MAX_TREE_SIZE`] or when there is not one hash per set bit of
    /// `size`.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self> {
        check_size(size)?;
        if hashes.len() != size.count_ones() as usize {
            return Err(Error::BadInput(format!(
                "a frontier of {size} leaves has {} hashes, not {}",
                size.count_ones(),
                hashes.len()
            )));
        }
        Ok(Frontier { size, hashes })
    }

    /// Rebuilds the frontier of the tree of `size` leaves from a store.
    ///
    /// Errors: `BAD_INPUT` over [`MAX_TREE_SIZE`], `LOG_HASH_MISSING` if the store lacks one.
    pub fn from_store(store: &impl HashStore, size: u64) -> Result<Self> {
        check_size(size)?;
        let mut hashes = Vec::with_capacity(size.count_ones() as usize);
        for (level, index) in complete_subtrees(0, size) {
            hashes.push(lookup(store, level, index)?);
        }
        Ok(Frontier { size, hashes })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The complete subtree hashes, largest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The tree root: the right fold of the frontier (`H("")` when empty).
    pub fn root(&self) -> Hash {
        let mut rest = self.hashes.iter().rev();
        match rest.next() {
            None => empty_root(),
            Some(last) => rest.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }

    /// Appends a leaf by its hash; `completed(level, index, hash)` is called for every subtree
    /// this completes, the leaf itself (level 0) first. Returns the leaf's index.
    ///
    /// Errors: `BAD_INPUT` once the tree holds [`MAX_TREE_SIZE`] leaves.
    pub fn append_hash(
        &mut self,
        leaf: Hash,
        mut completed: impl FnMut(u32, u64, &Hash),
    ) -> Result<u64> {
        let index = self.size;
        check_size(index + 1)?;
        completed(0, index, &leaf);
        let mut node = leaf;
        let (mut level, mut position) = (0u32, index);
        while position & 1 == 1 {
            // The left sibling of a right child is always the last frontier entry.
            let left = self.hashes.pop().unwrap_or(node);
            node = node_hash(&left, &node);
            level += 1;
            position >>= 1;
            completed(level, position, &node);
        }
        self.hashes.push(node);
        self.size += 1;
        Ok(index)
    }
}

/// An append-only RFC 6962 log: a [`Frontier`] for the current root and a [`HashStore`] for
/// everything earlier.
///
/// Invariant: the store holds every complete subtree of the tree of `size()` leaves.
#[derive(Debug, Clone, Default)]
pub struct MerkleLog<S = MemoryHashes> {
    frontier: Frontier,
    store: S,
}

impl MerkleLog<MemoryHashes> {
    /// An empty log kept in memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// A log continuing from `frontier` without the leaves before it: it appends, computes
    /// roots at every size from `frontier.size()` on and inclusion proofs of the leaves appended
    /// after it exactly as the whole log would. Roots at smaller sizes and proofs of earlier
    /// leaves fail with `LOG_HASH_MISSING`.
    pub fn resume(frontier: &Frontier) -> Self {
        let mut store = MemoryHashes::default();
        for ((level, index), hash) in complete_subtrees(0, frontier.size).zip(&frontier.hashes) {
            store.put_subtree(level, index, *hash);
        }
        MerkleLog {
            frontier: frontier.clone(),
            store,
        }
    }
}

impl<S: HashStore> MerkleLog<S> {
    /// Reopens a log of `size` leaves whose subtrees are already in `store`.
    pub fn open(store: S, size: u64) -> Result<Self> {
        let frontier = Frontier::from_store(&store, size)?;
        Ok(MerkleLog { frontier, store })
    }

    /// Appends leaf data (an entry's canonical bytes); returns the leaf index.
    pub fn append(&mut self, leaf: &[u8]) -> Result<u64> {
        self.append_hash(leaf_hash(leaf))
    }

    /// Appends a leaf by its leaf hash; returns the leaf index.
    pub fn append_hash(&mut self, leaf: Hash) -> Result<u64> {
        let store = &mut self.store;
        self.frontier.append_hash(leaf, |level, index, hash| {
            store.put_subtree(level, index, *hash)
        })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The frontier (the current right edge).
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// The store of subtree hashes.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The hash of leaf `index`.
    pub fn leaf_hash_at(&self, index: u64) -> Result<Hash> {
        if index >= self.size() {
            return Err(Error::BadInput(format!(
                "leaf {index} is not in a log of {} leaves",
                self.size()
            )));
        }
        lookup(&self.store, 0, index)
    }

    /// The root the tree had when it held `size` leaves (`size ≤ self.size()`).
    pub fn root_at(&self, size: u64) -> Result<Hash> {
        self.check_known(size)?;
        if size == self.size() {
            return Ok(self.root());
        }
        self.range_hash(0, size)
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves: RFC 6962 §2.1.1
    /// `PATH(index, D[size])` (RFC 9162 §2.1.3.1), leaf-side sibling first.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<super::InclusionProof> {
        self.check_known(size)?;
        if index >= size {
            return Err(Error::BadInput(format!(
                "leaf {index} is not in a tree of {size} leaves"
            )));
        }
        let mut hashes = Vec::with_capacity(64);
        self.path(index, 0, size, &mut hashes)?;
        Ok(super::InclusionProof {
            leaf_index: index,
            tree_size: size,
            hashes,
        })
    }

    /// The consistency proof between the trees of `old_size` and `new_size` leaves: RFC 6962
    /// §2.1.2 `PROOF(old_size, D[new_size])` (RFC 9162 §2.1.4.1). Empty when `old_size` is 0 or
    /// equals `new_size`.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<super::ConsistencyProof> {
        self.check_known(new_size)?;
        if old_size > new_size {
            return Err(Error::BadInput(format!(
                "old size {old_size} is larger than new size {new_size}"
            )));
        }
        let mut hashes = Vec::with_capacity(64);
        if old_size > 0 && old_size < new_size {
            self.subproof(old_size, 0, new_size, true, &mut hashes)?;
        }
        Ok(super::ConsistencyProof {
            old_size,
            new_size,
            hashes,
        })
    }

    fn check_known(&self, size: u64) -> Result<()> {
        if size > self.size() {
            return Err(Error::BadInput(format!(
                "tree size {size} is beyond the log's {} leaves",
                self.size()
            )));
        }
        Ok(())
    }

    /// `PATH(m, D[start..start+n])` with `m` absolute.
    fn path(&self, m: u64, start: u64, n: u64, out: &mut Vec<Hash>) -> Result<()> {
        if n <= 1 {
            return Ok(());
        }
        let k = split_point(n);
        if m - start < k {
            self.path(m, start, k, out)?;
            out.push(self.range_hash(start + k, n - k)?);
        } else {
            self.path(m, start + k, n - k, out)?;
            out.push(self.range_hash(start, k)?);
        }
        Ok(())
    }

    /// `SUBPROOF(m, D[start..start+n], b)` of RFC 6962 §2.1.2, `m` relative to `start`.
    fn subproof(&self, m: u64, start: u64, n: u64, whole: bool, out: &mut Vec<Hash>) -> Result<()> {
        if m == n {
            if !whole {
                out.push(self.range_hash(start, n)?);
            }
            return Ok(());
        }
        let k = split_point(n);
        if m <= k {
            self.subproof(m, start, k, whole, out)?;
            out.push(self.range_hash(start + k, n - k)?);
        } else {
            self.subproof(m - k, start + k, n - k, false, out)?;
            out.push(self.range_hash(start, k)?);
        }
        Ok(())
    }

    /// `MTH(D[start..start+len])` for a node of some tree: `start` is a multiple of a power of
    /// two ≥ `len`, so the range is the right fold of complete stored subtrees.
    fn range_hash(&self, start: u64, len: u64) -> Result<Hash> {
        let mut acc: Option<Hash> = None;
        let pieces: Vec<(u32, u64)> = complete_subtrees(start, len).collect();
        for (level, index) in pieces.into_iter().rev() {
            let hash = lookup(&self.store, level, index)?;
            acc = Some(match acc {
                None => hash,
                Some(right) => node_hash(&hash, &right),
            });
        }
        Ok(acc.unwrap_or_else(empty_root))
    }
}

/// The `(level, index)` addresses of the complete subtrees making up `start..start+len`, largest
/// first, for a `start` aligned to a power of two ≥ `len`.
fn complete_subtrees(start: u64, len: u64) -> impl Iterator<Item = (u32, u64)> {
    let mut offset = start;
    (0..64u32).rev().filter_map(move |level| {
        if len & (1 << level) == 0 {
            return None;
        }
        let address = (level, offset >> level);
        offset += 1 << level;
        Some(address)
    })
}

fn lookup(store: &impl HashStore, level: u32, index: u64) -> Result<Hash> {
    store
        .subtree(level, index)
        .ok_or(Error::LogHashMissing { level, index })
}

pub(crate) fn check_size(size: u64) -> Result<()> {
    if size > MAX_TREE_SIZE {
        return Err(Error::BadInput(format!(
            "tree size {size} is over the limit of 2^63"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_is_the_largest_power_of_two_below() {
        for (n, k) in [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (1 << 40, 1 << 39),
        ] {
            assert_eq!(split_point(n), k, "{n}");
        }
    }

    #[test]
    fn append_stores_each_complete_subtree_once() {
        let mut log = MerkleLog::new();
        for i in 0u32..13 {
            log.append(&i.to_be_bytes()).unwrap();
        }
        // 13 leaves: levels 0..=3 hold 13, 6, 3, 1 complete subtrees.
        let counts: Vec<usize> = log.store().levels.iter().map(|l| l.hashes.len()).collect();
        assert_eq!(counts, vec![13, 6, 3, 1]);
        assert_eq!(log.frontier().hashes().len(), 3);
        let leaves: Vec<Vec<u8>> = (0u32..13).map(|i| i.to_be_bytes().to_vec()).collect();
        let refs: Vec<&[u8]> = leaves.iter().map(Vec::as_slice).collect();
        assert_eq!(log.root(), merkle_root(&refs));
        assert_eq!(log.root_at(5).unwrap(), merkle_root(&refs[..5]));
    }

    #[test]
    fn a_resumed_log_answers_like_the_whole_log_from_its_frontier_on() {
        let leaves: Vec<[u8; 4]> = (0u32..40).map(u32::to_be_bytes).collect();
        let mut whole = MerkleLog::new();
        for leaf in &leaves {
            whole.append(leaf).unwrap();
        }
        for start in 0..leaves.len() as u64 {
            let frontier = Frontier::from_store(whole.store(), start).unwrap();
            let mut resumed = MerkleLog::resume(&frontier);
            assert_eq!(resumed.root(), whole.root_at(start).unwrap(), "{start}");
            for leaf in &leaves[start as usize..] {
                resumed.append(leaf).unwrap();
            }
            let n = whole.size();
            for size in start..=n {
                assert_eq!(resumed.root_at(size), whole.root_at(size), "{start} {size}");
                for index in start..size {
                    assert_eq!(
                        resumed.inclusion_proof(index, size),
                        whole.inclusion_proof(index, size),
                        "{start}: leaf {index} in {size}"
                    );
                }
            }
            for old in start.max(1)..=n {
                assert_eq!(
                    resumed.consistency_proof(old, n),
                    whole.consistency_proof(old, n),
                    "{start}: {old} to {n}"
                );
            }
            if start > 1 {
                // Earlier leaves and sizes are not there to prove.
                assert_eq!(
                    resumed.leaf_hash_at(0).unwrap_err().code(),
                    "LOG_HASH_MISSING"
                );
            }
        }
    }

    #[test]
    fn a_frontier_needs_one_hash_per_set_bit() {
        assert!(Frontier::from_parts(5, vec![[1; 32], [2; 32]]).is_ok());
        for bad in [vec![], vec![[1; 32]], vec![[1; 32]; 3]] {
            assert_eq!(
                Frontier::from_parts(5, bad).unwrap_err().code(),
                "BAD_INPUT"
            );
        }
    }

    #[test]
    fn a_store_missing_hashes_is_reported() {
        let store = MemoryHashes::default();
        assert_eq!(
            Frontier::from_store(&store, 3).unwrap_err().code(),
            "LOG_HASH_MISSING"
        );
    }
}
