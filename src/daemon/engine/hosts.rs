//! A jail's IPv4 address bans, in [`SHARDS`] hash maps instead of one.
//!
//! A hash map grows by doubling: the new table is made, the entries moved,
//! the old one freed, so for a moment it holds both. At a million bans
//! that moment was the largest part of the daemon's peak memory in a
//! `ban -` (docs/performance.md, "the IPv4 bans in 64 maps"). Split by
//! address over many small maps, each grows on its own: the moment costs a
//! sixty-fourth of that. The memory held is the same, and so is the work
//! per ban (one map chosen by a multiply and a shift, then one lookup in
//! it).

use std::net::Ipv4Addr;

use crate::address::AddrMap;

/// How many maps, a power of two.
const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;

/// Below this room (per map) a map never shrinks: a few hundred KB in all.
const SHRINK_FROM: usize = 16_384 / SHARDS;

/// IPv4 address → `V`, in [`SHARDS`] maps.
#[derive(Debug)]
pub(super) struct Hosts<V> {
    shards: Box<[AddrMap<Ipv4Addr, V>]>,
}

impl<V> Default for Hosts<V> {
    fn default() -> Hosts<V> {
        Hosts {
            shards: (0..SHARDS).map(|_| AddrMap::default()).collect(),
        }
    }
}

/// Which map holds `a`: the top bits of a multiplicative hash (Fibonacci
/// hashing), so that addresses alike in any of their bits (a scanned
/// range, every `.1` of a network) spread over all maps.
fn shard(a: &Ipv4Addr) -> usize {
    (u32::from(*a).wrapping_mul(0x9E37_79B9) >> (32 - SHARD_BITS)) as usize
}

impl<V> Hosts<V> {
    pub(super) fn insert(&mut self, a: Ipv4Addr, v: V) -> Option<V> {
        self.shards[shard(&a)].insert(a, v)
    }

    pub(super) fn remove(&mut self, a: &Ipv4Addr) -> Option<V> {
        let i = shard(a);
        let old = self.shards[i].remove(a);
        shrink_if_sparse(&mut self.shards[i]);
        old
    }

    pub(super) fn get(&self, a: &Ipv4Addr) -> Option<&V> {
        self.shards[shard(a)].get(a)
    }

    pub(super) fn contains_key(&self, a: &Ipv4Addr) -> bool {
        self.shards[shard(a)].contains_key(a)
    }

    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|m| m.len()).sum()
    }

    /// Every entry, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Ipv4Addr, &V)> {
        self.shards.iter().flat_map(|m| m.iter())
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Ipv4Addr, &mut V) -> bool) {
        for m in self.shards.iter_mut() {
            m.retain(&mut keep);
            shrink_if_sparse(m);
        }
    }

    /// The room of all the maps together.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.shards.iter().map(|m| m.capacity()).sum()
    }
}

/// A hash map keeps its room when emptied: after the `unban -` or the
/// expiry of a million addresses, the room of a million for nothing. Once
/// a map is an eighth full it shrinks to twice what it holds (each shrink
/// a rehash of what is left, at most a quarter of the last: cheap overall).
fn shrink_if_sparse<V>(m: &mut AddrMap<Ipv4Addr, V>) {
    let room = m.capacity();
    if room > SHRINK_FROM && m.len() < room / 8 {
        m.shrink_to(m.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What goes in comes out, whichever map holds it; addresses that
    /// differ only in their low bits, or only in their high bits, spread
    /// over every map.
    #[test]
    fn entries_spread_over_every_map_and_come_back() {
        let mut h = Hosts::default();
        let low: Vec<Ipv4Addr> = (0..4096u32).map(|i| Ipv4Addr::from(0x0a00_0000 + i)).collect();
        let high: Vec<Ipv4Addr> = (0..4096u32).map(|i| Ipv4Addr::from((i << 20) | 0xf_ffff)).collect();
        for (n, a) in low.iter().chain(&high).enumerate() {
            assert_eq!(h.insert(*a, n), None);
        }
        assert_eq!(h.len(), 8192);
        for (n, a) in low.iter().chain(&high).enumerate() {
            assert_eq!(h.get(a), Some(&n));
        }
        for list in [&low, &high] {
            let mut used = [0usize; SHARDS];
            list.iter().for_each(|a| used[shard(a)] += 1);
            assert!(used.iter().all(|&n| n > 0), "every map used: {used:?}");
            let most = used.iter().max().copied().unwrap_or(0);
            assert!(most <= 2 * 4096 / SHARDS, "evenly: {used:?}");
        }
        assert_eq!(h.insert(low[0], 7), Some(0));
        assert_eq!(h.remove(&low[0]), Some(7));
        assert!(!h.contains_key(&low[0]));
        assert_eq!(h.iter().count(), 8191);
        h.retain(|a, _| high.contains(a));
        assert_eq!(h.len(), 4096);
    }
}
