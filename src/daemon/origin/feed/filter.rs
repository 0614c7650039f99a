//! What of a feed may be blocked: entries overlapping loopback, the
//! host's own addresses, the jail's `ignoreip`, what nftban never bans,
//! and (unless the feed is trusted for them) private and reserved ranges
//! are skipped and counted by reason; duplicates and entries inside
//! another entry are merged into it (an interval set holds no prefix
//! inside another, and one element is cheaper than two).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::address::never_banned;

/// Private and reserved ranges, skipped unless `trusted_private`: public
/// lists carry them (FireHOL level1 lists 10.0.0.0/8 and 0.0.0.0/8), and
/// blocking them would cut a host off its own network. The documentation
/// ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32)
/// are not here: no real list carries them, and examples and tests use
/// them as the outside world.
const PRIVATE: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "240.0.0.0/4",
    "64:ff9b:1::/48",
    "100::/64",
    "fc00::/7",
    "fe80::/10",
];

const LOOPBACK: &[&str] = &["127.0.0.0/8", "::1/128"];

/// The rules one feed's entries are judged by.
#[derive(Debug, Clone)]
pub struct Filter {
    pub ignoreip: Vec<IpNet>,
    pub trusted_private: bool,
    /// The host's own addresses, read at each refresh.
    pub own: Vec<IpAddr>,
}

/// A feed's entries after the filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judged {
    /// What goes into the sets: each once, none inside another, sorted.
    pub kept: Vec<IpNet>,
    /// Skipped entries by reason ([`REASONS`]).
    pub skipped: BTreeMap<String, u64>,
    /// Entries merged into another (the same twice, or inside a prefix).
    pub merged: u64,
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().expect("a valid range")).collect()
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

impl Filter {
    /// Why `net` is skipped, if it is.
    fn skip(&self, net: &IpNet, loopback: &[IpNet], private: &[IpNet]) -> Option<&'static str> {
        // The whole address space holds loopback too, but is the world.
        if net.prefix_len() == 0 {
            return Some("never banned");
        }
        if loopback.iter().any(|l| overlaps(l, net)) {
            return Some("loopback");
        }
        if self.own.iter().any(|a| net.contains(a)) {
            return Some("own address");
        }
        if self.ignoreip.iter().any(|i| overlaps(i, net)) {
            return Some("ignoreip");
        }
        if !self.trusted_private && private.iter().any(|p| overlaps(p, net)) {
            return Some("private");
        }
        if never_banned(net).is_some() {
            return Some("never banned");
        }
        None
    }

    /// Judge a feed's entries.
    pub fn judge(&self, entries: Vec<IpNet>) -> Judged {
        let (loopback, private) = (nets(LOOPBACK), nets(PRIVATE));
        let mut out = Judged::default();
        let mut candidates: Vec<IpNet> = Vec::with_capacity(entries.len());
        for net in entries {
            let net = net.trunc();
            match self.skip(&net, &loopback, &private) {
                Some(why) => *out.skipped.entry(why.to_string()).or_default() += 1,
                None => candidates.push(net),
            }
        }
        // Widest first, so an entry meets every prefix that could hold it
        // before it is judged: one lookup per prefix length kept so far.
        candidates.sort_by_key(|n| (n.prefix_len(), *n));
        let mut kept: HashSet<IpNet> = HashSet::with_capacity(candidates.len());
        let mut lens: BTreeSet<(bool, u8)> = BTreeSet::new();
        for net in candidates {
            let v6 = matches!(net, IpNet::V6(_));
            let inside = lens
                .range((v6, 0)..=(v6, net.prefix_len()))
                .any(|&(_, len)| IpNet::new(net.addr(), len).is_ok_and(|w| kept.contains(&w.trunc())));
            if inside {
                out.merged += 1;
                continue;
            }
            kept.insert(net);
            lens.insert((v6, net.prefix_len()));
        }
        out.kept = kept.into_iter().collect();
        out.kept.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn filter() -> Filter {
        Filter {
            ignoreip: vec![n("198.51.100.0/28")],
            trusted_private: false,
            own: vec!["203.0.113.1".parse().unwrap()],
        }
    }

    #[test]
    fn skipped_by_reason() {
        let entries = [
            "127.0.0.1/32",
            "10.0.0.0/8",
            "0.0.0.0/8",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "192.0.2.1/32",
            "::1/128",
            "fe80::/64",
            "224.0.0.0/4",
            "2001:db8::/32",
            "0.0.0.0/0",
            "::/0",
        ];
        let j = filter().judge(entries.iter().map(|s| n(s)).collect());
        assert_eq!(j.kept, vec![n("192.0.2.1/32"), n("2001:db8::/32")]);
        // The world is "never banned", not loopback (it holds that too).
        let want: BTreeMap<String, u64> = [
            ("loopback", 2),
            ("private", 3),
            ("ignoreip", 1),
            ("own address", 1),
            ("never banned", 3),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
        assert_eq!(j.skipped, want);
    }

    #[test]
    fn trusted_feeds_keep_private_ranges_but_never_loopback() {
        let mut f = filter();
        f.trusted_private = true;
        let j = f.judge(vec![n("10.0.0.0/8"), n("127.0.0.0/8"), n("0.0.0.0/8")]);
        assert_eq!(j.kept, vec![n("10.0.0.0/8")]);
        assert_eq!(j.skipped.get("never banned"), Some(&1));
        assert_eq!(j.skipped.get("loopback"), Some(&1));
    }

    #[test]
    fn nested_and_repeated_entries_merge_into_the_widest() {
        let j = filter().judge(vec![
            n("192.0.2.7/32"),
            n("192.0.2.0/24"),
            n("192.0.2.128/25"),
            n("192.0.2.0/24"),
            n("2001:db8:1::1/128"),
            n("2001:db8::/32"),
            n("203.0.114.9/32"),
        ]);
        assert_eq!(j.kept, vec![n("192.0.2.0/24"), n("203.0.114.9/32"), n("2001:db8::/32")]);
        assert_eq!(j.merged, 4);
    }
}
