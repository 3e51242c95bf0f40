//! A map kept as one sorted `Vec`: the ordered map of the client session, the log follower and
//! the replica's per-agent tables, at a fraction of `BTreeMap`'s code size.
//!
//! Why: the wasm build carries one copy of `BTreeMap`'s node code (search, insert, split, remove,
//! rebalance, iterate) for every key/value type, about 8 KB each; with 26 of them that was about a
//! quarter of the core `.wasm` (BENCHMARKS.md, "Package size"). A sorted `Vec` needs only a binary
//! search and `Vec::insert`/`Vec::remove` per type.
//!
//! The trade-off: lookups are O(log n) as in a B-tree, but inserting or removing a key moves the
//! entries after it, O(n). The maps that use it are bounded by a limit of their owner (a session's
//! in-flight publishes, a follower's [`MAX_HEADS`](crate::log::follower::MAX_HEADS), …) or hold
//! one entry per agent (balances, recovery keys and guardians), changed far less often than they
//! are read. Where every other op inserts or removes, it does not pay: the replica's claims and
//! tasks as sorted `Vec`s made `cargo bench --bench replica` 40-70 % slower, so they stay
//! `BTreeMap`s, as does a relay comparison's table of up to 100,000 ops. Iteration is in key
//! order, as `BTreeMap`'s, so everything encoded by iterating (snapshots, state hashes) is
//! unchanged.
//!
//! Invariant of [`SortedMap`]: `entries` is strictly increasing by key (so keys are unique).

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::ops::{Bound, RangeBounds};

/// An ordered map over a sorted `Vec` of `(key, value)`, with the subset of `BTreeMap`'s API the
/// crate uses (same names, same order of iteration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SortedMap<K, V> {
    /// Strictly increasing by key.
    entries: Vec<(K, V)>,
}

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        SortedMap {
            entries: Vec::new(),
        }
    }
}

impl<K: Ord, V> SortedMap<K, V> {
    /// An empty map.
    pub(crate) const fn new() -> Self {
        SortedMap {
            entries: Vec::new(),
        }
    }

    /// `Ok(index)` of `key`, or `Err(index)` where it would be inserted.
    fn find<Q>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The value of `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let index = self.find(key).ok()?;
        self.entries.get(index).map(|(_, v)| v)
    }

    /// The value of `key`, mutably.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let index = self.find(key).ok()?;
        self.entries.get_mut(index).map(|(_, v)| v)
    }

    /// Whether `key` has a value.
    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(index) => Some(std::mem::replace(&mut self.entries[index].1, value)),
            Err(index) => {
                self.entries.insert(index, (key, value));
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let index = self.find(key).ok()?;
        Some(self.entries.remove(index).1)
    }

    /// The entry of `key`, to read or insert in one search.
    pub(crate) fn entry(&mut self, key: K) -> Entry<'_, K, V> {
        let index = self.find(&key);
        Entry {
            map: self,
            key,
            index,
        }
    }

    /// Removes and returns the entry with the smallest key.
    pub(crate) fn pop_first(&mut self) -> Option<(K, V)> {
        if self.entries.is_empty() {
            None
        } else {
            Some(self.entries.remove(0))
        }
    }

    /// Splits off the entries with keys at or above `key` and returns them; `self` keeps the rest.
    pub(crate) fn split_off<Q>(&mut self, key: &Q) -> Self
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let index = self.find(key).unwrap_or_else(|index| index);
        SortedMap {
            entries: self.entries.split_off(index),
        }
    }

    /// The entries whose keys are in `range`, in key order.
    pub(crate) fn range<Q, R>(&self, range: R) -> impl DoubleEndedIterator<Item = (&K, &V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
        R: RangeBounds<Q>,
    {
        let start = match range.start_bound() {
            Bound::Included(key) => self.find(key).unwrap_or_else(|index| index),
            Bound::Excluded(key) => self.find(key).map_or_else(|index| index, |index| index + 1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(key) => self.find(key).map_or_else(|index| index, |index| index + 1),
            Bound::Excluded(key) => self.find(key).unwrap_or_else(|index| index),
            Bound::Unbounded => self.entries.len(),
        };
        // An empty or inverted range yields nothing rather than panicking on the slice.
        self.entries
            .get(start..end.max(start))
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| (k, v))
    }
}

impl<K, V> SortedMap<K, V> {
    /// Removes every entry.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// The entries in key order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + ExactSizeIterator {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The entries in key order, values mutable.
    pub(crate) fn iter_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = (&K, &mut V)> + ExactSizeIterator {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// The keys in order.
    pub(crate) fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The values in key order.
    pub(crate) fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The values in key order, mutable.
    pub(crate) fn values_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = &mut V> + ExactSizeIterator {
        self.entries.iter_mut().map(|(_, v)| v)
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for SortedMap<K, V> {
    /// Later pairs replace earlier ones with the same key, as `BTreeMap::from_iter` does.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut entries: Vec<(K, V)> = iter.into_iter().collect();
        // Stable: among equal keys the last one given is last, and is the one kept.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(K, V)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match out.last_mut() {
                Some(last) if last.0.cmp(&entry.0) == Ordering::Equal => *last = entry,
                _ => out.push(entry),
            }
        }
        SortedMap { entries: out }
    }
}

impl<K, V> IntoIterator for SortedMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a, K, V> IntoIterator for &'a SortedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl<'a, K, V> IntoIterator for &'a mut SortedMap<K, V> {
    type Item = (&'a K, &'a mut V);
    type IntoIter =
        std::iter::Map<std::slice::IterMut<'a, (K, V)>, fn(&'a mut (K, V)) -> (&'a K, &'a mut V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }
}

/// One key's place in a [`SortedMap`], from [`SortedMap::entry`].
pub(crate) struct Entry<'a, K, V> {
    map: &'a mut SortedMap<K, V>,
    key: K,
    /// The key's index if present, else where it goes.
    index: Result<usize, usize>,
}

impl<'a, K, V> Entry<'a, K, V> {
    /// The value, inserting `value` first if the key had none.
    pub(crate) fn or_insert(self, value: V) -> &'a mut V {
        self.or_insert_with(|| value)
    }

    /// The value, inserting `make()` first if the key had none.
    pub(crate) fn or_insert_with(self, make: impl FnOnce() -> V) -> &'a mut V {
        let index = match self.index {
            Ok(index) => index,
            Err(index) => {
                self.map.entries.insert(index, (self.key, make()));
                index
            }
        };
        &mut self.map.entries[index].1
    }

    /// The value, inserting `V::default()` first if the key had none.
    pub(crate) fn or_default(self) -> &'a mut V
    where
        V: Default,
    {
        self.or_insert_with(V::default)
    }
}

/// An ordered set over a sorted `Vec`: a [`SortedMap`] with no values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SortedSet<K>(SortedMap<K, ()>);

impl<K: Ord> SortedSet<K> {
    /// An empty set.
    pub(crate) const fn new() -> Self {
        SortedSet(SortedMap::new())
    }

    /// Whether the set has `key`.
    pub(crate) fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.contains_key(key)
    }

    /// Adds `key`; returns whether it was new.
    pub(crate) fn insert(&mut self, key: K) -> bool {
        self.0.insert(key, ()).is_none()
    }

    /// Removes `key`; returns whether it was there.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.remove(key).is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Every operation agrees with `BTreeMap` on a pseudo-random sequence of them.
    #[test]
    fn behaves_as_btree_map() {
        let mut ours: SortedMap<u16, u32> = SortedMap::new();
        let mut theirs: BTreeMap<u16, u32> = BTreeMap::new();
        let mut x: u32 = 12_345;
        for step in 0..20_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let key = ((x >> 16) % 512) as u16;
            match (x >> 8) % 7 {
                0 | 1 => assert_eq!(ours.insert(key, step), theirs.insert(key, step)),
                2 => assert_eq!(ours.remove(&key), theirs.remove(&key)),
                3 => *ours.entry(key).or_insert(7) += 1,
                4 => assert_eq!(ours.pop_first(), theirs.pop_first()),
                5 => {
                    let a: Vec<_> = ours.range(key..key.saturating_add(40)).collect();
                    let b: Vec<_> = theirs.range(key..key.saturating_add(40)).collect();
                    assert_eq!(a, b);
                }
                _ => assert_eq!(ours.get(&key), theirs.get(&key)),
            }
            if (x >> 8) % 7 == 3 {
                *theirs.entry(key).or_insert(7) += 1;
            }
            assert_eq!(ours.len(), theirs.len());
        }
        assert!(ours.iter().eq(theirs.iter()));
        let high_ours = ours.split_off(&256);
        let high_theirs = theirs.split_off(&256);
        assert!(ours.iter().eq(theirs.iter()));
        assert!(high_ours.iter().eq(high_theirs.iter()));
    }

    #[test]
    fn ranges_inclusive_exclusive_and_inverted() {
        let map: SortedMap<u8, ()> = (0..10u8).step_by(2).map(|k| (k, ())).collect();
        let keys = |r: Vec<(&u8, &())>| r.into_iter().map(|(k, _)| *k).collect::<Vec<_>>();
        assert_eq!(keys(map.range(2..=6).collect()), [2, 4, 6]);
        assert_eq!(keys(map.range(3..6).collect()), [4]);
        assert_eq!(
            keys(map.range((Bound::Excluded(2), Bound::Unbounded)).collect()),
            [4, 6, 8]
        );
        assert_eq!(
            keys(
                map.range((Bound::Excluded(5), Bound::Excluded(4)))
                    .collect()
            ),
            [] as [u8; 0]
        );
    }

    #[test]
    fn from_iter_keeps_the_last_value_of_a_key() {
        let ours: SortedMap<u8, u8> = [(3, 1), (1, 1), (3, 2)].into_iter().collect();
        let theirs: BTreeMap<u8, u8> = [(3, 1), (1, 1), (3, 2)].into_iter().collect();
        assert!(ours.iter().eq(theirs.iter()));
    }

    #[test]
    fn set_insert_remove_contains() {
        let mut set = SortedSet::new();
        assert!(set.insert("b".to_owned()));
        assert!(set.insert("a".to_owned()));
        assert!(!set.insert("a".to_owned()));
        assert!(set.contains("a"));
        assert!(set.remove("a"));
        assert!(!set.remove("a"));
        assert!(!set.contains("a"));
        assert!(set.contains("b"));
    }
}
