//! A jail's running bans: address or prefix → when its kernel timeout ends.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::time::SystemTime;

use ipnet::IpNet;

use crate::address::is_host;

/// The bans, and how many of them are prefixes: with none (the usual case),
/// "is this address already covered" is one lookup instead of one per
/// prefix length (33 for IPv4, 129 for IPv6), which showed in the engine's
/// profile under a steady stream of bans.
#[derive(Debug, Default)]
pub struct Bans {
    map: BTreeMap<IpNet, SystemTime>,
    prefixes: usize,
}

impl Deref for Bans {
    type Target = BTreeMap<IpNet, SystemTime>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl Bans {
    pub fn insert(&mut self, net: IpNet, until: SystemTime) -> Option<SystemTime> {
        let old = self.map.insert(net, until);
        if old.is_none() && !is_host(&net) {
            self.prefixes += 1;
        }
        old
    }

    pub fn remove(&mut self, net: &IpNet) -> Option<SystemTime> {
        let old = self.map.remove(net);
        if old.is_some() && !is_host(net) {
            self.prefixes -= 1;
        }
        old
    }

    pub fn retain(&mut self, keep: impl FnMut(&IpNet, &mut SystemTime) -> bool) {
        self.map.retain(keep);
        self.prefixes = self.map.keys().filter(|n| !is_host(n)).count();
    }

    /// The running ban that holds `net` at `now`: itself, or the longest
    /// banned prefix around it.
    pub fn covering(&self, net: &IpNet, now: SystemTime) -> Option<IpNet> {
        let live = |n: &IpNet| self.map.get(n).is_some_and(|&t| t > now);
        if self.prefixes == 0 {
            return live(net).then_some(*net);
        }
        (0..=net.prefix_len()).rev().find_map(|len| {
            let wider = IpNet::new(net.addr(), len).ok()?.trunc();
            live(&wider).then_some(wider)
        })
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
}
