//! A jail's IPv4 address bans: a hash table that grows by an eighth at a
//! time, in [`SHARDS`] parts, instead of a standard hash map.
//!
//! This table is what a daemon holding a million bans holds; everything
//! else it keeps is bounded (docs/performance.md, "what a million bans
//! cost the daemon"). The standard map (hashbrown) spends room on it: its
//! room is a power of two, at most seven-eighths full, so just past a
//! doubling half of it is empty, and each slot has a control byte: an
//! entry of twelve bytes took 13 to 26. Here each part is a plain open
//! addressing table (linear probing) whose room is any size: it grows by
//! an eighth once four-fifths full, so an entry takes 15 to 17 bytes. A
//! lookup stays one hash and a short run of neighbouring slots (sorted
//! arrays, tried first, took less room, but their binary search is a
//! chain of dependent loads, which slowed a `ban -` of a million:
//! docs/performance.md, "what a million bans cost the daemon").
//!
//! The parts are there so that a growth copies one part, not the table:
//! the moment of holding both old and new is a part's worth. The address
//! is hashed with foldhash, seeded at random per process (as
//! [`crate::address::AddrMap`]): which slots a list of addresses fills
//! cannot be chosen by whoever chooses the addresses.

use std::hash::BuildHasher;
use std::net::Ipv4Addr;

/// How many parts, a power of two.
const SHARD_BITS: u32 = 8;
const SHARDS: usize = 1 << SHARD_BITS;

/// The mark of an empty slot: 255.255.255.255, which is kept apart
/// ([`Hosts::broadcast`]) should it ever be banned.
const EMPTY: u32 = u32::MAX;

/// A part is grown when more than `FULL_NUM / FULL_DEN` of its slots
/// would be taken: linear probing stays a run of a few slots below that.
const FULL_NUM: usize = 4;
const FULL_DEN: usize = 5;

/// The least room of a part that holds anything.
const LEAST: usize = 8;

/// IPv4 address → `V`.
#[derive(Debug)]
pub(super) struct Hosts<V> {
    hasher: foldhash::fast::RandomState,
    shards: Vec<Table<V>>,
    /// The entry of 255.255.255.255, which is [`EMPTY`] in a table.
    broadcast: Option<V>,
    len: usize,
}

impl<V> Default for Hosts<V> {
    fn default() -> Hosts<V> {
        Hosts {
            hasher: foldhash::fast::RandomState::default(),
            shards: Vec::new(),
            broadcast: None,
            len: 0,
        }
    }
}

/// One part: slots of `(address, value)`, [`EMPTY`] where free.
#[derive(Debug)]
struct Table<V> {
    slots: Box<[(u32, V)]>,
    len: usize,
}

/// The part of `a` and the 32 bits that place it in the part: the top
/// bits of its hash, then the next 32.
fn hash(hasher: &foldhash::fast::RandomState, a: u32) -> (usize, u32) {
    let h = hasher.hash_one(a);
    ((h >> (64 - SHARD_BITS)) as usize, (h >> (32 - SHARD_BITS)) as u32)
}

impl<V: Copy + Default> Hosts<V> {
    pub(super) fn insert(&mut self, a: Ipv4Addr, v: V) -> Option<V> {
        let a = u32::from(a);
        let old = if a == EMPTY {
            self.broadcast.replace(v)
        } else {
            if self.shards.is_empty() {
                self.shards = (0..SHARDS).map(|_| Table::default()).collect();
            }
            let hasher = &self.hasher;
            let (s, h) = hash(hasher, a);
            self.shards[s].insert(a, h, v, |k| hash(hasher, k).1)
        };
        self.len += usize::from(old.is_none());
        old
    }

    pub(super) fn remove(&mut self, a: &Ipv4Addr) -> Option<V> {
        let a = u32::from(*a);
        let old = if a == EMPTY {
            self.broadcast.take()
        } else {
            let hasher = &self.hasher;
            let (s, h) = hash(hasher, a);
            self.shards.get_mut(s)?.remove(a, h, |k| hash(hasher, k).1)
        };
        self.len -= usize::from(old.is_some());
        old
    }

    pub(super) fn get(&self, a: &Ipv4Addr) -> Option<&V> {
        let a = u32::from(*a);
        if a == EMPTY {
            return self.broadcast.as_ref();
        }
        let (s, h) = hash(&self.hasher, a);
        let t = self.shards.get(s)?;
        let i = t.find(a, h).ok()?;
        Some(&t.slots[i].1)
    }

    pub(super) fn contains_key(&self, a: &Ipv4Addr) -> bool {
        self.get(a).is_some()
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Every entry, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Ipv4Addr, &V)> {
        let held = self
            .shards
            .iter()
            .flat_map(|t| t.slots.iter())
            .filter(|(a, _)| *a != EMPTY);
        let held = held.map(|(a, v)| (*a, v));
        let broadcast = self.broadcast.iter().map(|v| (EMPTY, v));
        held.chain(broadcast).map(|(a, v)| (Ipv4Addr::from(a), v))
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(Ipv4Addr, &mut V) -> bool) {
        let hasher = &self.hasher;
        for t in self.shards.iter_mut() {
            t.retain(&mut keep, |k| hash(hasher, k).1);
        }
        if let Some(v) = self.broadcast.as_mut() {
            if !keep(Ipv4Addr::BROADCAST, v) {
                self.broadcast = None;
            }
        }
        self.len = self.shards.iter().map(|t| t.len).sum::<usize>() + usize::from(self.broadcast.is_some());
    }

    /// The room of all the parts together, in entries.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.shards.iter().map(|t| t.slots.len()).sum()
    }
}

impl<V> Default for Table<V> {
    fn default() -> Table<V> {
        Table {
            slots: Box::new([]),
            len: 0,
        }
    }
}

/// The slot where an entry whose placing bits are `h` is looked for
/// first, in a table of `room` slots (a multiply and a shift: any room
/// will do, not only powers of two).
fn home(h: u32, room: usize) -> usize {
    ((u64::from(h) * room as u64) >> 32) as usize
}

/// The room for `len` entries: the least that keeps them within
/// [`FULL_NUM`]/[`FULL_DEN`], and an eighth more.
fn room_for(len: usize) -> usize {
    let least = len * FULL_DEN / FULL_NUM + 1;
    (least + least / 8).max(LEAST)
}

impl<V: Copy + Default> Table<V> {
    /// `Ok(slot)` of `a`, or `Err(slot)`: the free slot where it would go
    /// (`Err(0)` with no room at all).
    fn find(&self, a: u32, h: u32) -> Result<usize, usize> {
        let room = self.slots.len();
        if room == 0 {
            return Err(0);
        }
        let mut i = home(h, room);
        // Ends: the table always has a free slot.
        loop {
            match self.slots[i].0 {
                k if k == a => return Ok(i),
                EMPTY => return Err(i),
                _ => i = if i + 1 == room { 0 } else { i + 1 },
            }
        }
    }

    fn insert(&mut self, a: u32, h: u32, v: V, hash: impl Fn(u32) -> u32) -> Option<V> {
        let mut i = match self.find(a, h) {
            Ok(i) => return Some(std::mem::replace(&mut self.slots[i].1, v)),
            Err(i) => i,
        };
        if (self.len + 1) * FULL_DEN > self.slots.len() * FULL_NUM {
            self.rebuild(room_for(self.len + 1), &hash);
            i = self.find(a, h).unwrap_err();
        }
        self.slots[i] = (a, v);
        self.len += 1;
        None
    }

    /// Remove `a`: the entries after it in its run that may move back
    /// into the gap are moved (backward shift deletion, no tombstones).
    fn remove(&mut self, a: u32, h: u32, hash: impl Fn(u32) -> u32) -> Option<V> {
        let i = self.find(a, h).ok()?;
        let old = self.slots[i].1;
        self.take_out(i, &hash);
        self.len -= 1;
        self.shrink_if_sparse(&hash);
        Some(old)
    }

    /// Empty slot `gap`, moving back the entries of its run that would
    /// not be found past a free slot otherwise.
    fn take_out(&mut self, mut gap: usize, hash: &impl Fn(u32) -> u32) {
        let room = self.slots.len();
        let mut j = gap;
        loop {
            j = if j + 1 == room { 0 } else { j + 1 };
            let (k, _) = self.slots[j];
            if k == EMPTY {
                break;
            }
            let want = home(hash(k), room);
            // The entry at `j` may stay if its home lies after the gap
            // (cyclically, in `gap+1..=j`).
            let stays = if gap <= j {
                gap < want && want <= j
            } else {
                gap < want || want <= j
            };
            if !stays {
                self.slots[gap] = self.slots[j];
                gap = j;
            }
        }
        self.slots[gap] = (EMPTY, V::default());
    }

    /// Keep the entries `keep` says to. The walk starts after a free slot
    /// so that a moved-back entry always lands on the slot being looked
    /// at, which is looked at again: each entry is seen once.
    fn retain(&mut self, keep: &mut impl FnMut(Ipv4Addr, &mut V) -> bool, hash: impl Fn(u32) -> u32) {
        let room = self.slots.len();
        let Some(free) = self.slots.iter().position(|(k, _)| *k == EMPTY) else {
            return;
        };
        let mut step = 1;
        while step < room {
            let i = (free + step) % room;
            let (k, v) = &mut self.slots[i];
            if *k == EMPTY || keep(Ipv4Addr::from(*k), v) {
                step += 1;
                continue;
            }
            self.take_out(i, &hash);
            self.len -= 1;
        }
        self.shrink_if_sparse(&hash);
    }

    /// Once less than a quarter of what it may hold, the part is rebuilt
    /// to fit (after the `unban -` or the expiry of a million, their room
    /// goes back); empty, it holds nothing.
    fn shrink_if_sparse(&mut self, hash: &impl Fn(u32) -> u32) {
        let room = self.slots.len();
        if self.len == 0 {
            self.slots = Box::new([]);
        } else if room > LEAST && self.len * FULL_DEN * 4 < room * FULL_NUM {
            self.rebuild(room_for(self.len), hash);
        }
    }

    /// Move every entry into a table of `room` slots.
    fn rebuild(&mut self, room: usize, hash: &impl Fn(u32) -> u32) {
        let old = std::mem::replace(&mut self.slots, vec![(EMPTY, V::default()); room].into_boxed_slice());
        for (k, v) in old.iter().filter(|(k, _)| *k != EMPTY) {
            let i = self.find(*k, hash(*k)).unwrap_err();
            self.slots[i] = (*k, *v);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// What goes in comes out; addresses that differ only in their low
    /// bits, or only in their high bits, spread over every part; the room
    /// stays within the bound of [`room_for`].
    #[test]
    fn entries_spread_over_every_part_and_come_back() {
        let mut h = Hosts::default();
        let count = 64 * SHARDS as u32;
        let low: Vec<Ipv4Addr> = (0..count).map(|i| Ipv4Addr::from(0x0a00_0000 + 2 * i)).collect();
        let high: Vec<Ipv4Addr> = (0..count).map(|i| Ipv4Addr::from((i << 16) | 0xffff)).collect();
        for (n, a) in low.iter().chain(&high).enumerate() {
            assert_eq!(h.insert(*a, n), None);
        }
        assert_eq!(h.len(), 2 * count as usize);
        for (n, a) in low.iter().chain(&high).enumerate() {
            assert_eq!(h.get(a), Some(&n));
        }
        assert!(h.capacity() * 2 < h.len() * 3, "room {} for {}", h.capacity(), h.len());
        assert!(h.shards.iter().all(|t| t.len > 0), "every part used");
        let most = h.shards.iter().map(|t| t.len).max().unwrap_or(0);
        assert!(most <= 2 * 2 * count as usize / SHARDS, "evenly: {most}");
        assert_eq!(h.insert(low[0], 7), Some(0));
        assert_eq!(h.remove(&low[0]), Some(7));
        assert_eq!(h.remove(&low[0]), None);
        assert!(!h.contains_key(&low[0]));
        assert_eq!(h.iter().count(), 2 * count as usize - 1);
        h.retain(|a, _| u32::from(a) & 0xffff == 0xffff);
        assert_eq!(h.len(), count as usize);
        assert!(h.iter().all(|(a, _)| high.contains(&a)));
        h.retain(|_, _| false);
        assert_eq!((h.len(), h.capacity()), (0, 0));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32, u16),
        Remove(u32),
        Retain(u32),
    }

    /// Addresses from a small range, so that runs collide, wrap around
    /// the end of a part, and removals hit held entries.
    fn op() -> impl Strategy<Value = Op> {
        let a = prop_oneof![0u32..600, Just(u32::MAX), (0u32..600).prop_map(|a| a << 23)];
        prop_oneof![
            4 => (a.clone(), any::<u16>()).prop_map(|(a, v)| Op::Insert(a, v)),
            2 => a.prop_map(Op::Remove),
            1 => (2u32..7).prop_map(Op::Retain),
        ]
    }

    /// A poor hash, on purpose: four homes, so runs are long and wrap
    /// around the end of the table.
    fn clustered(k: u32) -> u32 {
        (k % 4) << 30
    }

    proptest! {
        /// The table answers as a standard map given the same operations,
        /// and sees each entry once in a `retain`.
        #[test]
        fn the_table_answers_as_a_standard_map(ops in proptest::collection::vec(op(), 1..1000)) {
            let mut h: Hosts<u16> = Hosts::default();
            let mut m: HashMap<u32, u16> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(a, v) => prop_assert_eq!(h.insert(Ipv4Addr::from(a), v), m.insert(a, v)),
                    Op::Remove(a) => prop_assert_eq!(h.remove(&Ipv4Addr::from(a)), m.remove(&a)),
                    Op::Retain(n) => {
                        let mut seen = Vec::new();
                        h.retain(|a, v| { seen.push(u32::from(a)); *v % n as u16 != 0 });
                        m.retain(|_, v| *v % n as u16 != 0);
                        prop_assert!(once_each(seen));
                    }
                }
                prop_assert_eq!(h.len(), m.len());
            }
            for (a, v) in &m {
                prop_assert_eq!(h.get(&Ipv4Addr::from(*a)), Some(v));
            }
            let all: Vec<(u32, u16)> = h.iter().map(|(a, v)| (u32::from(a), *v)).collect();
            prop_assert_eq!(sorted(all), sorted(m.into_iter().collect()));
        }

        /// The same of one part under a hash that piles entries up: moves
        /// back on removal keep every entry reachable from its home.
        #[test]
        fn a_part_with_long_runs_answers_as_a_standard_map(ops in proptest::collection::vec(op(), 1..1000)) {
            let mut t: Table<u16> = Table::default();
            let mut m: HashMap<u32, u16> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(a, v) if a != EMPTY => {
                        prop_assert_eq!(t.insert(a, clustered(a), v, clustered), m.insert(a, v));
                    }
                    Op::Remove(a) if a != EMPTY => prop_assert_eq!(t.remove(a, clustered(a), clustered), m.remove(&a)),
                    Op::Retain(n) => {
                        let mut seen = Vec::new();
                        t.retain(&mut |a, v| { seen.push(u32::from(a)); *v % n as u16 != 0 }, clustered);
                        m.retain(|_, v| *v % n as u16 != 0);
                        prop_assert!(once_each(seen));
                    }
                    _ => {}
                }
                prop_assert_eq!(t.len, m.len());
                prop_assert!(t.len * FULL_DEN <= t.slots.len() * FULL_NUM);
            }
            for (a, v) in &m {
                prop_assert_eq!(t.find(*a, clustered(*a)).map(|i| t.slots[i].1), Ok(*v));
            }
            let all: Vec<(u32, u16)> = t.slots.iter().copied().filter(|(a, _)| *a != EMPTY).collect();
            prop_assert_eq!(sorted(all), sorted(m.into_iter().collect()));
        }
    }

    fn once_each(mut seen: Vec<u32>) -> bool {
        let before = seen.len();
        seen.sort_unstable();
        seen.dedup();
        seen.len() == before
    }

    fn sorted(mut v: Vec<(u32, u16)>) -> Vec<(u32, u16)> {
        v.sort_unstable();
        v
    }
}
