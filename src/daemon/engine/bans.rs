//! A jail's running bans: address or prefix → when its kernel timeout ends.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::hosts::Hosts;
use crate::address::is_host;

/// The bans, and how many of them are prefixes: with none (the usual case),
/// "is this address already covered" is one lookup instead of one per
/// prefix length (33 for IPv4, 129 for IPv6), which showed in the engine's
/// profile under a steady stream of bans.
///
/// And with prefixes, it is one lookup per prefix length the jail holds
/// (per family), not per possible length: a jail of 100,000 /24s checks
/// two lengths for an IPv4 address, not 33.
///
/// IPv4 addresses, the bulk of a jail's bans, are kept in a hash table
/// apart from the rest (prefixes and IPv6 addresses, in address order; the
/// table is [`Hosts`], made to spend little room per entry): each ban
/// looks its address up twice (is it banned, record it), and in an ordered
/// map of a million those two searches led the engine's profile of a
/// `ban -` of a million (docs/performance.md). No query needs IPv4
/// addresses in order: a prefix ban leaves the addresses inside it alone,
/// and escalation counts IPv6 addresses; [`Bans::inside`] of an IPv4
/// prefix probes its addresses or walks the map, whichever is fewer, and
/// `status` sorts what it lists.
#[derive(Debug)]
pub struct Bans {
    /// IPv4 addresses → their end (see [`End`]: 12 bytes an entry, not
    /// a `SystemTime`'s 20 or a `u64`'s 16 with its padding: the table is
    /// the engine's largest).
    v4: Hosts<End>,
    /// Prefixes and IPv6 addresses.
    map: BTreeMap<IpNet, SystemTime>,
    prefixes: usize,
    /// Prefixes (not single addresses) per family and length.
    lens: Box<[[u32; 129]; 2]>,
    /// No ban ends before this (a lower bound: removals leave it as it
    /// was). `expire` runs every second and was a walk over every ban,
    /// which showed in the engine's profile while `ban -` filled a jail
    /// towards a million (docs/performance.md); now it walks only when one
    /// is due.
    first_end: Option<SystemTime>,
}

impl Default for Bans {
    fn default() -> Bans {
        Bans {
            v4: Hosts::default(),
            map: BTreeMap::new(),
            prefixes: 0,
            lens: Box::new([[0; 129]; 2]),
            first_end: None,
        }
    }
}

/// Index of `net`'s family in [`Bans::lens`].
fn fam(net: &IpNet) -> usize {
    usize::from(matches!(net, IpNet::V6(_)))
}

/// `net`'s address if it is a single IPv4 address.
fn v4_host(net: &IpNet) -> Option<Ipv4Addr> {
    match net {
        IpNet::V4(n) if n.prefix_len() == 32 => Some(n.addr()),
        _ => None,
    }
}

/// A ban's end in nanoseconds since the epoch, as two halves: a `u64`
/// beside a 4-byte address would be aligned to 8 and padded to 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct End([u32; 2]);

impl End {
    fn of(t: SystemTime) -> End {
        let n = t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        End([(n >> 32) as u32, n as u32])
    }

    fn time(self) -> SystemTime {
        let [high, low] = self.0;
        UNIX_EPOCH + Duration::from_nanos(u64::from(high) << 32 | u64::from(low))
    }
}

fn host(addr: Ipv4Addr) -> IpNet {
    IpNet::V4(Ipv4Net::from(addr))
}

impl Bans {
    pub fn insert(&mut self, net: IpNet, until: SystemTime) -> Option<SystemTime> {
        self.first_end = Some(self.first_end.map_or(until, |t| t.min(until)));
        if let Some(addr) = v4_host(&net) {
            return self.v4.insert(addr, End::of(until)).map(End::time);
        }
        let old = self.map.insert(net, until);
        if old.is_none() && !is_host(&net) {
            self.prefixes += 1;
            self.lens[fam(&net)][usize::from(net.prefix_len())] += 1;
        }
        old
    }

    pub fn remove(&mut self, net: &IpNet) -> Option<SystemTime> {
        if let Some(addr) = v4_host(net) {
            return self.v4.remove(&addr).map(End::time);
        }
        let old = self.map.remove(net);
        if old.is_some() && !is_host(net) {
            self.prefixes -= 1;
            self.lens[fam(net)][usize::from(net.prefix_len())] -= 1;
        }
        old
    }

    /// When the ban of exactly `net` ends, if there is one.
    pub fn get(&self, net: &IpNet) -> Option<SystemTime> {
        match v4_host(net) {
            Some(addr) => self.v4.get(&addr).copied().map(End::time),
            None => self.map.get(net).copied(),
        }
    }

    pub fn contains_key(&self, net: &IpNet) -> bool {
        match v4_host(net) {
            Some(addr) => self.v4.contains_key(&addr),
            None => self.map.contains_key(net),
        }
    }

    /// How many bans, running or ended and not yet forgotten.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.v4.len() + self.map.len()
    }

    /// Every ban with its end, IPv4 addresses in no particular order
    /// ([`Bans::sorted`] for address order).
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, SystemTime)> + '_ {
        let v4 = self.v4.iter().map(|(a, &t)| (host(a), t.time()));
        v4.chain(self.map.iter().map(|(n, &t)| (*n, t)))
    }

    /// The bans that pass `keep`, in address order.
    pub fn sorted(&self, keep: impl Fn(SystemTime) -> bool) -> Vec<(IpNet, SystemTime)> {
        let mut out: Vec<(IpNet, SystemTime)> = self.iter().filter(|(_, t)| keep(*t)).collect();
        out.sort_unstable_by_key(|(n, _)| *n);
        out
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&IpNet, SystemTime) -> bool) {
        let mut first: Option<SystemTime> = None;
        let mut kept = |net: &IpNet, until: SystemTime| {
            let kept = keep(net, until);
            if kept {
                first = Some(first.map_or(until, |t| t.min(until)));
            }
            kept
        };
        self.v4.retain(|a, t| kept(&host(a), t.time()));
        self.map.retain(|net, until| kept(net, *until));
        self.first_end = first;
        self.prefixes = 0;
        *self.lens = [[0; 129]; 2];
        for net in self.map.keys().filter(|n| !is_host(n)) {
            self.prefixes += 1;
            self.lens[fam(net)][usize::from(net.prefix_len())] += 1;
        }
    }

    /// Whether any ban is a prefix (not a single address).
    pub fn has_prefixes(&self) -> bool {
        self.prefixes > 0
    }

    /// Whether a ban may have ended by `now` (never a false "no").
    pub fn any_ended(&self, now: SystemTime) -> bool {
        self.first_end.is_some_and(|t| t <= now)
    }

    /// The running ban that holds `net` at `now`: itself, or the longest
    /// banned prefix around it.
    pub fn covering(&self, net: &IpNet, now: SystemTime) -> Option<IpNet> {
        self.holding(net, |t| t > now)
    }

    /// A ban that holds `net` (itself, or a prefix around it) and runs
    /// until `until` or later: a new ban of `net` ending at `until` would
    /// add nothing.
    pub fn outlasting(&self, net: &IpNet, until: SystemTime) -> Option<IpNet> {
        self.holding(net, |t| t >= until)
    }

    /// `net` itself or the longest prefix around it whose expiry passes
    /// `keep`: one lookup per prefix length, or one in all without prefixes.
    fn holding(&self, net: &IpNet, keep: impl Fn(SystemTime) -> bool) -> Option<IpNet> {
        let held = |n: &IpNet| self.get(n).is_some_and(&keep);
        if self.prefixes == 0 {
            return held(net).then_some(*net);
        }
        let lens = &self.lens[fam(net)];
        let own = net.prefix_len();
        (0..=own)
            .rev()
            .filter(|&l| l == own || lens[usize::from(l)] > 0)
            .find_map(|len| {
                let wider = IpNet::new(net.addr(), len).ok()?.trunc();
                held(&wider).then_some(wider)
            })
    }

    /// The running prefix strictly around `net` at `now`, with its expiry.
    /// The interval set holds no prefix inside another, so there is at
    /// most one; should there be more, the widest.
    pub fn wider_prefix(&self, net: &IpNet, now: SystemTime) -> Option<(IpNet, SystemTime)> {
        if self.prefixes == 0 {
            return None;
        }
        let lens = &self.lens[fam(net)];
        (0..net.prefix_len())
            .filter(|&l| lens[usize::from(l)] > 0)
            .find_map(|len| {
                let wider = IpNet::new(net.addr(), len).ok()?.trunc();
                let &t = self.map.get(&wider).filter(|&&t| t > now)?;
                Some((wider, t))
            })
    }

    /// The running bans strictly inside the prefix `net` at `now`, in
    /// address order: a range walk over the ordered bans between its first
    /// and its last address, not a walk over all bans; for an IPv4 prefix,
    /// its addresses probed one by one, or the IPv4 addresses walked if
    /// they are fewer.
    pub fn inside(&self, net: &IpNet, now: SystemTime) -> Vec<(IpNet, SystemTime)> {
        let mut inside = self.ordered_inside(net, now);
        // An address holds no other; IPv6 addresses are in the ordered map.
        let IpNet::V4(n) = net.trunc() else { return inside };
        if n.prefix_len() == 32 {
            return inside;
        }
        let running = |a: Ipv4Addr, t: End| Some((host(a), t.time())).filter(|(_, t)| *t > now);
        let size = 1u64 << (32 - u32::from(n.prefix_len()));
        if size <= self.v4.len() as u64 {
            let first = u32::from(n.network());
            inside.extend((0..size).filter_map(|i| {
                let a = Ipv4Addr::from(first + i as u32);
                running(a, *self.v4.get(&a)?)
            }));
        } else {
            let within = self.v4.iter().filter(|(a, _)| n.contains(a));
            inside.extend(within.filter_map(|(a, &t)| running(a, t)));
        }
        inside.sort_unstable_by_key(|(n, _)| *n);
        inside
    }

    /// The running bans of the ordered map strictly inside `net` at `now`.
    fn ordered_inside(&self, net: &IpNet, now: SystemTime) -> Vec<(IpNet, SystemTime)> {
        let (first, last) = span(net);
        self.map
            .range(first..=last)
            .filter(|(n, &t)| t > now && *n != net && net.contains(*n))
            .map(|(n, t)| (*n, *t))
            .collect()
    }

    /// The running prefixes strictly inside `net` at `now`.
    pub fn prefixes_inside(&self, net: &IpNet, now: SystemTime) -> Vec<(IpNet, SystemTime)> {
        if self.prefixes == 0 || is_host(net) {
            return Vec::new();
        }
        let mut inside = self.ordered_inside(net, now);
        inside.retain(|(n, _)| !is_host(n));
        inside
    }
}

/// The bounds of a range walk over nets in address order that meets every
/// net inside `net`: each sorts between `net`'s first address with length
/// 0 and its last address with the full length.
pub(super) fn span(net: &IpNet) -> (IpNet, IpNet) {
    match net.trunc() {
        IpNet::V4(n) => (
            IpNet::V4(Ipv4Net::new(n.network(), 0).expect("0 is a length")),
            IpNet::V4(Ipv4Net::new(n.broadcast(), 32).expect("32 is a length")),
        ),
        IpNet::V6(n) => (
            IpNet::V6(Ipv6Net::new(n.network(), 0).expect("0 is a length")),
            IpNet::V6(Ipv6Net::new(n.broadcast(), 128).expect("128 is a length")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn a_walk_for_ended_bans_is_wanted_only_once_one_may_have_ended() {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let mut b = Bans::default();
        assert!(!b.any_ended(t(5000)), "no bans, nothing ended");
        b.insert(net("192.0.2.1/32"), t(2000));
        b.insert(net("192.0.2.2/32"), t(1500));
        b.insert(net("192.0.2.3/32"), t(3000));
        assert!(!b.any_ended(t(1499)));
        assert!(b.any_ended(t(1500)), "the earliest end counts, not the last inserted");
        // A later end for the same address: the bound stays low (a
        // lower bound never misses an end).
        b.insert(net("192.0.2.2/32"), t(4000));
        assert!(b.any_ended(t(1500)));
        // The walk at 1600 finds none ended and tightens the bound.
        b.retain(|_, until| until > t(1600));
        assert_eq!(b.len(), 3);
        assert!(!b.any_ended(t(1999)));
        assert!(b.any_ended(t(2000)));
        b.retain(|_, until| until > t(2500));
        assert_eq!(b.len(), 2);
        assert!(!b.any_ended(t(2999)));
        b.retain(|_, _| false);
        assert!(!b.any_ended(t(9999)), "nothing left to end");
    }

    #[test]
    fn ipv4_addresses_apart_are_found_inside_a_prefix_by_probe_or_by_walk() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let at = |s: u64| now + Duration::from_nanos(s * 1_000_000_007);
        let mut b = Bans::default();
        // 300 addresses in 10.0.0.0/23 (a /24 has fewer addresses than the
        // map: probed; a /16 more: walked), one ended, one outside.
        for i in 0..300u32 {
            b.insert(host(Ipv4Addr::from(0x0a00_0000 + i * 2)), at(u64::from(i) + 1));
        }
        b.insert(net("10.0.0.4/32"), now);
        b.insert(net("10.9.0.1/32"), at(5));
        b.insert(net("10.0.0.0/28"), at(7));
        let inside = |p: &str| b.inside(&net(p), now);
        let in24 = inside("10.0.0.0/24");
        assert_eq!(in24.len(), 128 - 1 + 1, "127 running addresses and the /28");
        assert!(in24.windows(2).all(|w| w[0].0 < w[1].0), "in address order");
        assert_eq!(in24[0], (net("10.0.0.0/28"), at(7)));
        assert!(in24.contains(&(net("10.0.0.2/32"), at(2))), "exact end kept");
        assert!(!in24.iter().any(|(n, _)| *n == net("10.0.0.4/32")), "ended");
        let in16 = inside("10.0.0.0/16");
        assert_eq!(in16.len(), 300 - 1 + 1);
        assert_eq!(inside("10.0.0.0/8").len(), 300 - 1 + 1 + 1);
        assert_eq!(inside("10.0.0.2/32"), [], "an address holds nothing");
        // Apart or not, one set of bans to the rest of the engine.
        assert_eq!(b.len(), 302);
        assert_eq!(b.get(&net("10.0.0.2/32")), Some(at(2)));
        assert_eq!(b.sorted(|t| t > now).len(), 301);
        assert_eq!(b.iter().count(), 302);
        assert_eq!(b.remove(&net("10.0.0.2/32")), Some(at(2)));
        assert!(!b.contains_key(&net("10.0.0.2/32")));
        assert_eq!(b.covering(&net("10.0.0.6/32"), now), Some(net("10.0.0.6/32")));
        assert_eq!(b.covering(&net("10.0.0.7/32"), now), Some(net("10.0.0.0/28")));
    }

    #[test]
    fn covering_finds_the_address_or_a_prefix_around_it() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let later = now + Duration::from_secs(60);
        let mut b = Bans::default();
        b.insert(net("192.0.2.1/32"), later);
        b.insert(net("192.0.2.9/32"), now); // expired
        assert_eq!(b.covering(&net("192.0.2.1/32"), now), Some(net("192.0.2.1/32")));
        assert_eq!(b.covering(&net("192.0.2.2/32"), now), None);
        assert_eq!(b.covering(&net("192.0.2.9/32"), now), None);
        b.insert(net("2001:db8:1:2::/64"), later);
        b.insert(net("198.51.100.0/24"), later);
        assert_eq!(b.prefixes, 2);
        assert_eq!(
            b.covering(&net("2001:db8:1:2::5/128"), now),
            Some(net("2001:db8:1:2::/64"))
        );
        assert_eq!(b.covering(&net("198.51.100.7/32"), now), Some(net("198.51.100.0/24")));
        assert_eq!(b.covering(&net("192.0.2.1/32"), now), Some(net("192.0.2.1/32")));
        // Removing and re-inserting keeps the count right.
        b.insert(net("198.51.100.0/24"), later);
        assert_eq!(b.prefixes, 2);
        b.remove(&net("198.51.100.0/24"));
        b.remove(&net("198.51.100.0/24"));
        assert_eq!(b.prefixes, 1);
        assert_eq!(b.covering(&net("198.51.100.7/32"), now), None);
        b.retain(|n, _| n.prefix_len() == 32);
        assert_eq!(b.prefixes, 0);
        assert_eq!(b.covering(&net("2001:db8:1:2::5/128"), now), None);
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn outlasting_wider_and_inside_look_at_expiry_and_nesting() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let at = |s: u64| now + Duration::from_secs(s);
        let mut b = Bans::default();
        b.insert(net("198.51.100.0/24"), at(60));
        b.insert(net("198.51.100.7/32"), at(3600));
        b.insert(net("198.51.100.9/32"), now); // expired
        b.insert(net("198.51.101.0/25"), at(10));
        b.insert(net("2001:db8::/64"), at(60));
        b.insert(net("2001:db8::/80"), at(600));
        // An address running longer holds itself; one not banned is held
        // by the prefix only until the prefix ends.
        assert_eq!(
            b.outlasting(&net("198.51.100.7/32"), at(3600)),
            Some(net("198.51.100.7/32"))
        );
        assert_eq!(b.outlasting(&net("198.51.100.7/32"), at(3601)), None);
        assert_eq!(
            b.outlasting(&net("198.51.100.8/32"), at(60)),
            Some(net("198.51.100.0/24"))
        );
        assert_eq!(b.outlasting(&net("198.51.100.8/32"), at(61)), None);
        assert_eq!(
            b.outlasting(&net("198.51.100.0/25"), at(30)),
            Some(net("198.51.100.0/24"))
        );
        // The prefix strictly around, running.
        assert_eq!(
            b.wider_prefix(&net("198.51.100.128/25"), now),
            Some((net("198.51.100.0/24"), at(60)))
        );
        assert_eq!(b.wider_prefix(&net("198.51.100.0/24"), now), None, "not itself");
        assert_eq!(b.wider_prefix(&net("198.51.100.0/24"), at(60)), None, "ended");
        assert_eq!(
            b.wider_prefix(&net("2001:db8::1:0/112"), now),
            Some((net("2001:db8::/64"), at(60)))
        );
        // What lies inside: running bans only, not the prefix itself, not
        // its neighbours.
        assert_eq!(
            b.inside(&net("198.51.100.0/23"), now),
            [
                (net("198.51.100.0/24"), at(60)),
                (net("198.51.100.7/32"), at(3600)),
                (net("198.51.101.0/25"), at(10))
            ]
        );
        assert_eq!(
            b.inside(&net("198.51.100.0/24"), now),
            [(net("198.51.100.7/32"), at(3600))]
        );
        assert_eq!(
            b.prefixes_inside(&net("198.51.100.0/22"), now),
            [(net("198.51.100.0/24"), at(60)), (net("198.51.101.0/25"), at(10))]
        );
        assert_eq!(
            b.prefixes_inside(&net("2001:db8::/48"), now),
            [(net("2001:db8::/64"), at(60)), (net("2001:db8::/80"), at(600))]
        );
        assert!(b.prefixes_inside(&net("198.51.100.0/24"), now).is_empty());
    }

    #[test]
    fn the_ipv4_map_gives_its_room_back_once_mostly_empty() {
        let now = SystemTime::now() + Duration::from_secs(3600);
        let mut bans = Bans::default();
        let addrs: Vec<IpNet> = (0..100_000u32).map(|i| host(Ipv4Addr::from(0x0a00_0000 + i))).collect();
        for a in &addrs {
            bans.insert(*a, now);
        }
        let full = bans.v4.capacity();
        assert!(full >= 100_000);
        for a in &addrs[10..] {
            assert_eq!(bans.remove(a), Some(now));
        }
        assert!(bans.v4.capacity() <= 16_384, "{} of {full}", bans.v4.capacity());
        assert_eq!(bans.len(), 10);
        assert_eq!(bans.get(&addrs[3]), Some(now));
        for a in &addrs {
            bans.insert(*a, now);
        }
        bans.retain(|n, _| *n == addrs[0]);
        assert!(bans.v4.capacity() <= 16_384);
        assert_eq!(bans.sorted(|_| true), [(addrs[0], now)]);
    }
}
