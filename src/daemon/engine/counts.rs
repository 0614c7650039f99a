//! How many times each address of a jail was banned since start: for
//! `status`'s most banned, and for the bantime increment when there is no
//! history to ask. Bounded, so that a daemon that bans a million distinct
//! scanners (a `ban -` of a blocklist, months of SIP scans) does not keep a
//! count for each of them forever: the counts were the largest thing in
//! the engine's memory after a `ban -` of a million (docs/performance.md).
//!
//! Past [`ROOM`] addresses, the least banned half is forgotten (those
//! banned as often as the median or less): the most banned, which
//! `status` shows, stay; the history, when there is one, keeps every count
//! for the increment.

use std::collections::hash_map::Entry;

use ipnet::IpNet;

use crate::address::AddrMap;

/// Addresses counted per jail, at most.
pub(super) const ROOM: usize = 65_536;

/// Bans per address since start, for at most [`ROOM`] addresses.
#[derive(Debug, Default)]
pub(super) struct BanCounts {
    map: AddrMap<IpNet, u32>,
}

impl BanCounts {
    /// One more ban of `net`.
    pub(super) fn add(&mut self, net: IpNet) {
        // One lookup for the usual case (a bulk ban counts every address
        // it bans), a second only when room is made.
        let full = self.map.len() >= ROOM;
        match self.map.entry(net) {
            Entry::Occupied(mut seen) => *seen.get_mut() += 1,
            Entry::Vacant(new) if !full => {
                new.insert(1);
            }
            Entry::Vacant(_) => {
                self.make_room();
                self.map.insert(net, 1);
            }
        }
    }

    /// Bans of `net` counted (0 if never, or forgotten).
    pub(super) fn get(&self, net: &IpNet) -> u32 {
        self.map.get(net).copied().unwrap_or(0)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&IpNet, &u32)> {
        self.map.iter()
    }

    /// Forget the least banned, those banned as often as the median or
    /// less: at least half the room is freed, in one pass whatever the
    /// counts are.
    fn make_room(&mut self) {
        let mut counts: Vec<u32> = self.map.values().copied().collect();
        let mid = counts.len() / 2;
        let (_, &mut floor, _) = counts.select_nth_unstable(mid);
        self.map.retain(|_, n| *n > floor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addr(i: u32) -> IpNet {
        IpNet::from(std::net::IpAddr::V4(Ipv4Addr::from(0x0100_0000 + i)))
    }

    #[test]
    fn counts_each_ban() {
        let mut c = BanCounts::default();
        c.add(addr(1));
        c.add(addr(1));
        c.add(addr(2));
        assert_eq!((c.get(&addr(1)), c.get(&addr(2)), c.get(&addr(3))), (2, 1, 0));
        assert_eq!(c.iter().count(), 2);
    }

    #[test]
    fn a_million_addresses_keep_the_most_banned_within_the_room() {
        let mut c = BanCounts::default();
        // Three repeat offenders, then a million banned once.
        let repeat = [addr(2_000_000), addr(2_000_001), addr(2_000_002)];
        for _ in 0..3 {
            repeat.iter().for_each(|r| c.add(*r));
        }
        for i in 0..1_000_000u32 {
            c.add(addr(i));
        }
        assert!(c.map.len() <= ROOM, "{} counted", c.map.len());
        for r in &repeat {
            assert_eq!(c.get(r), 3, "repeat offender {r}");
        }
        // The latest of those banned once are still counted.
        assert_eq!(c.get(&addr(999_999)), 1);
    }

    #[test]
    fn room_is_made_by_forgetting_the_least_banned_half() {
        let mut c = BanCounts::default();
        for i in 0..ROOM as u32 {
            for _ in 0..=(i % 8) {
                c.add(addr(i));
            }
        }
        assert_eq!(c.map.len(), ROOM);
        c.add(addr(ROOM as u32));
        assert!(c.map.len() <= ROOM / 2 + 1, "{} counted", c.map.len());
        assert_eq!(c.get(&addr(7)), 8, "among the most banned");
        assert_eq!(c.get(&addr(8)), 0, "among the least");
        assert_eq!(c.get(&addr(ROOM as u32)), 1);
    }
}
