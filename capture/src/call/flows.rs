//! The flow map's table: open addressing with linear probing, one cache line per slot, so
//! that where a key would be is known from its hash alone and can be loaded ahead of the
//! lookup ([`FlowTable::prefetch`]). With thousands of calls the table outgrows the caches
//! and its lookup waits on memory for most packets; a general-purpose map offers no way to
//! ask for a key's slot before looking it up.
//!
//! Deletion shifts the entries of the run behind the freed slot back (no tombstones), so a
//! lookup ends at the first empty slot and the table never needs rebuilding to stay fast.

use std::hash::{Hash, Hasher};

use rustc_hash::FxHasher;

/// Slots filled at most, in eighths: above that the table doubles.
const MAX_LOAD_EIGHTHS: usize = 5;
/// The first table's slots.
const MIN_SLOTS: usize = 64;

/// A key and its value, or an empty slot; aligned so that it is one cache line.
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct Slot<K, V> {
    key: K,
    value: Option<V>,
}

/// A map from `K` to `V` whose slot for a key can be loaded ahead of a lookup.
#[derive(Debug)]
pub(crate) struct FlowTable<K, V> {
    slots: Box<[Slot<K, V>]>,
    len: usize,
    /// Slots less one (a power of two less one).
    mask: usize,
}

impl<K: Copy + Eq + Hash + Default, V: Copy> FlowTable<K, V> {
    /// An empty table.
    pub(crate) fn new() -> FlowTable<K, V> {
        FlowTable { slots: Self::empty_slots(MIN_SLOTS), len: 0, mask: MIN_SLOTS - 1 }
    }

    /// `n` empty slots (their keys are never looked at: `value` says a slot is empty).
    fn empty_slots(n: usize) -> Box<[Slot<K, V>]> {
        vec![Slot { key: K::default(), value: None }; n].into_boxed_slice()
    }

    /// Bytes of a slot.
    #[cfg(test)]
    pub(crate) fn slot_bytes() -> usize {
        std::mem::size_of::<Slot<K, V>>()
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Where `key` is looked for first.
    #[inline]
    fn home(&self, key: &K) -> usize {
        let mut h = FxHasher::default();
        key.hash(&mut h);
        let h = h.finish();
        (h ^ (h >> 29)) as usize & self.mask
    }

    /// Starts loading the slot `key` is looked for first (a prefetch: reads nothing).
    #[inline]
    pub(crate) fn prefetch(&self, key: &K) {
        crate::prefetch::line(&self.slots[self.home(key)]);
    }

    /// The slot holding `key`, if any.
    #[inline]
    fn find(&self, key: &K) -> Option<usize> {
        let mut i = self.home(key);
        loop {
            let slot = &self.slots[i];
            slot.value.as_ref()?;
            if slot.key == *key {
                return Some(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The value of `key`.
    #[inline]
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.find(key).and_then(|i| self.slots[i].value.as_ref())
    }

    /// The value of `key`, to change.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.find(key).and_then(|i| self.slots[i].value.as_mut())
    }

    /// Sets the value of `key`; returns the one it replaced.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some(i) = self.find(&key) {
            return self.slots[i].value.replace(value);
        }
        if (self.len + 1) * 8 > self.slots.len() * MAX_LOAD_EIGHTHS {
            self.grow();
        }
        self.place(key, value);
        self.len += 1;
        None
    }

    /// Puts a key known to be absent into the first empty slot of its run.
    fn place(&mut self, key: K, value: V) {
        let mut i = self.home(&key);
        while self.slots[i].value.is_some() {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = Slot { key, value: Some(value) };
    }

    fn grow(&mut self) {
        let n = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, Self::empty_slots(n));
        self.mask = n - 1;
        for slot in old.iter() {
            if let Some(value) = slot.value {
                self.place(slot.key, value);
            }
        }
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let mut hole = self.find(key)?;
        let removed = self.slots[hole].value.take();
        self.len -= 1;
        // Entries after the hole, up to the run's end, move back into it unless that would
        // put them before the slot they are looked for from.
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            if self.slots[j].value.is_none() {
                break;
            }
            let home = self.home(&self.slots[j].key);
            let stays = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if !stays {
                self.slots[hole] = self.slots[j];
                self.slots[j].value = None;
                hole = j;
            }
        }
        removed
    }

    /// Keeps only the entries whose value `keep` accepts.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        let kept: Vec<(K, V)> =
            self.slots.iter().filter_map(|s| s.value.filter(|v| keep(v)).map(|v| (s.key, v))).collect();
        self.slots.iter_mut().for_each(|s| s.value = None);
        self.len = kept.len();
        for (key, value) in kept {
            self.place(key, value);
        }
    }

    /// The values held.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().filter_map(|s| s.value.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn slots_start_on_cache_lines() {
        assert_eq!(std::mem::align_of::<Slot<u32, u32>>(), 64);
        let t = FlowTable::<u32, u32>::new();
        assert_eq!(t.slots.as_ptr() as usize % 64, 0);
    }

    #[test]
    fn grows_and_finds_every_key() {
        let mut t = FlowTable::<u64, u64>::new();
        for k in 1..=10_000u64 {
            assert_eq!(t.insert(k * 7919, k), None);
        }
        assert_eq!(t.len(), 10_000);
        for k in 1..=10_000u64 {
            assert_eq!(t.get(&(k * 7919)), Some(&k));
        }
        assert_eq!(t.get(&3), None);
        for k in (1..=10_000u64).step_by(2) {
            assert_eq!(t.remove(&(k * 7919)), Some(k));
        }
        for k in 1..=10_000u64 {
            assert_eq!(t.get(&(k * 7919)), (k % 2 == 0).then_some(&k), "key {k}");
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
        Retain(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few distinct keys (collisions and long runs in a small table), values to filter on.
        prop_oneof![
            4 => (0u16..300, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => (0u16..300).prop_map(Op::Remove),
            1 => (2u32..5).prop_map(Op::Retain),
        ]
    }

    proptest! {
        /// Any sequence of inserts, removals and retains leaves the table holding what a
        /// `HashMap` given the same sequence holds, and every lookup agrees with it.
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec(op(), 1..600)) {
            let mut t = FlowTable::<u16, u32>::new();
            let mut m = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(t.insert(k, v), m.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(t.remove(&k), m.remove(&k)),
                    Op::Retain(d) => {
                        t.retain(|v| v % d != 0);
                        m.retain(|_, v| *v % d != 0);
                    }
                }
                prop_assert_eq!(t.len(), m.len());
            }
            for k in 0..300u16 {
                prop_assert_eq!(t.get(&k), m.get(&k));
            }
            let mut values: Vec<u32> = t.values().copied().collect();
            let mut expected: Vec<u32> = m.values().copied().collect();
            values.sort_unstable();
            expected.sort_unstable();
            prop_assert_eq!(values, expected);
        }
    }
}
