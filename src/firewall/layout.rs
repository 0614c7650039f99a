//! Which sets a jail has, and which of them holds an address or prefix.
//!
//! Per family a jail has a hash set of single addresses (`<jail>_v4`), one
//! masked hash set per configured prefix length (`<jail>_v4_24`: a prefix
//! of that length is one element, its network address, looked up with the
//! source masked to the length: `ip saddr & 255.255.255.0 @sshd_v4_24`)
//! and an interval set for prefixes of every other length
//! (`<jail>_v4_net`). Why: a hash insert costs the same whatever the set
//! holds, where the interval set's rbtree insert walks for overlaps (a
//! prefix into an interval set of 100,000 is milliseconds, into a masked
//! set microseconds: docs/performance.md, "Prefix sets"). Each masked set
//! costs one more rule, one hash lookup per packet, so only the lengths
//! configured get one (`nftables.prefix_sets`, default /24 and /64: the
//! lengths block lists and nftban's own escalation use most).

use ipnet::IpNet;

use super::Family;

/// The default masked length for IPv4 prefixes.
pub(crate) const MASKED_V4: u8 = 24;
/// The default masked length for IPv6 prefixes.
pub(crate) const MASKED_V6: u8 = 64;

/// The prefix lengths that get a masked hash set of their own, per family:
/// bit `n` set for length `n`. IPv4 lengths 1 to 31, IPv6 1 to 127 (a
/// full-length prefix is an address, in the hosts set; `/0` is the world,
/// which nftban never bans).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixSets {
    v4: u32,
    v6: u128,
}

impl Default for PrefixSets {
    /// /24 and /64.
    fn default() -> Self {
        PrefixSets::new(&[MASKED_V4], &[MASKED_V6])
    }
}

/// What a set of a jail holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SetKind {
    /// Single addresses, a hash set looked up with the source address.
    Hosts,
    /// Prefixes of one length, a hash set of their network addresses
    /// looked up with the source masked to that length.
    Masked(u8),
    /// Prefixes of any other length, an interval set (start and end
    /// element per prefix).
    Interval,
}

impl PrefixSets {
    /// The lengths `v4` and `v6` (out of range ones are left out: the
    /// config refuses them with their key).
    pub fn new(v4: &[u8], v6: &[u8]) -> PrefixSets {
        let mut out = PrefixSets { v4: 0, v6: 0 };
        for &len in v4.iter().filter(|&&l| (1..32).contains(&l)) {
            out.v4 |= 1 << len;
        }
        for &len in v6.iter().filter(|&&l| (1..128).contains(&l)) {
            out.v6 |= 1 << len;
        }
        out
    }

    /// The masked lengths of `family`, longest first (the order of their
    /// sets and rules: the common /24 before wider ones).
    pub(crate) fn lengths(&self, family: Family) -> Vec<u8> {
        let (bits, max) = match family {
            Family::V4 => (u128::from(self.v4), 32u8),
            Family::V6 => (self.v6, 128u8),
        };
        (1..max).rev().filter(|&l| bits & (1 << l) != 0).collect()
    }

    /// The kind of set a jail holds `net` in.
    pub(crate) fn kind_of(&self, net: &IpNet) -> SetKind {
        let len = net.prefix_len();
        let masked = match net {
            _ if crate::address::is_host(net) => return SetKind::Hosts,
            IpNet::V4(_) => len > 0 && self.v4 & (1 << len) != 0,
            IpNet::V6(_) => len > 0 && self.v6 & (1 << len) != 0,
        };
        if masked {
            SetKind::Masked(len)
        } else {
            SetKind::Interval
        }
    }

    /// Whether `net` goes into an interval set (a start and an end element).
    pub(crate) fn is_interval(&self, net: &IpNet) -> bool {
        self.kind_of(net) == SetKind::Interval
    }

    /// The set of a jail that holds `net`: the hash set for a single
    /// address, the masked hash set for a prefix of its length, the
    /// interval set for other prefixes.
    pub(crate) fn set_of(&self, jail: &str, net: &IpNet) -> String {
        set_name(jail, Family::of(net), self.kind_of(net))
    }

    /// A jail's sets, in the order setup creates them and adds their
    /// rules: per family (IPv4, then IPv6) addresses, the masked lengths
    /// longest first, other prefixes. By default six: `<jail>_v4`,
    /// `<jail>_v4_24`, `<jail>_v4_net`, `<jail>_v6`, `<jail>_v6_64`,
    /// `<jail>_v6_net`.
    pub(crate) fn jail_sets(&self, jail: &str) -> Vec<SetDef> {
        let mut out = Vec::with_capacity(6);
        for family in [Family::V4, Family::V6] {
            let masked = self.lengths(family).into_iter().map(SetKind::Masked);
            let kinds = std::iter::once(SetKind::Hosts).chain(masked).chain([SetKind::Interval]);
            out.extend(kinds.map(|kind| SetDef {
                name: set_name(jail, family, kind),
                family,
                kind,
            }));
        }
        out
    }
}

/// Name of a jail's set of one family and kind: `<jail>_v4` (addresses),
/// `<jail>_v4_24` (/24 prefixes), `<jail>_v4_net` (other prefixes).
pub(crate) fn set_name(jail: &str, family: Family, kind: SetKind) -> String {
    match kind {
        SetKind::Hosts => format!("{jail}_{}", family.suffix()),
        SetKind::Masked(len) => format!("{jail}_{}_{len}", family.suffix()),
        SetKind::Interval => format!("{jail}_{}_net", family.suffix()),
    }
}

/// The masked length of `set` if it is a masked set of `jail` in `family`
/// (`sshd_v4_22` → 22): how setup finds the lengths an earlier run used.
pub(crate) fn masked_length(jail: &str, family: Family, set: &str) -> Option<u8> {
    let rest = set
        .strip_prefix(jail)?
        .strip_prefix('_')?
        .strip_prefix(family.suffix())?;
    let digits = rest.strip_prefix('_')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One of a jail's sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetDef {
    pub(crate) name: String,
    pub(crate) family: Family,
    pub(crate) kind: SetKind,
}

impl SetDef {
    /// An interval set (prefixes as start and end elements).
    pub(crate) fn interval(&self) -> bool {
        self.kind == SetKind::Interval
    }

    /// The mask its rule applies to the source address before the lookup
    /// (a masked hash set's), as bytes in network order.
    pub(crate) fn mask(&self) -> Option<Vec<u8>> {
        let SetKind::Masked(len) = self.kind else { return None };
        Some(match self.family {
            Family::V4 => (u32::MAX << (32 - u32::from(len))).to_be_bytes().to_vec(),
            Family::V6 => (u128::MAX << (128 - u32::from(len))).to_be_bytes().to_vec(),
        })
    }

    /// The mask as nft prints it: `255.255.255.0`, `ffff:ffff:ffff:ffff::`.
    pub(crate) fn mask_text(&self) -> Option<String> {
        let m = self.mask()?;
        Some(match self.family {
            Family::V4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(m).ok()?).to_string(),
            Family::V6 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(m).ok()?).to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_layout_is_six_sets_with_24_and_64_masked() {
        let names: Vec<String> = PrefixSets::default()
            .jail_sets("sshd")
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(
            names,
            [
                "sshd_v4",
                "sshd_v4_24",
                "sshd_v4_net",
                "sshd_v6",
                "sshd_v6_64",
                "sshd_v6_net"
            ]
        );
    }

    #[test]
    fn each_configured_length_gets_its_set_longest_first() {
        let p = PrefixSets::new(&[16, 24, 22], &[48, 64]);
        assert_eq!(p.lengths(Family::V4), [24, 22, 16]);
        assert_eq!(p.lengths(Family::V6), [64, 48]);
        let names: Vec<String> = p.jail_sets("j").into_iter().map(|d| d.name).collect();
        assert_eq!(
            names,
            ["j_v4", "j_v4_24", "j_v4_22", "j_v4_16", "j_v4_net", "j_v6", "j_v6_64", "j_v6_48", "j_v6_net"]
        );
        assert_eq!(p.set_of("j", &net("10.1.0.0/16")), "j_v4_16");
        assert_eq!(p.set_of("j", &net("10.1.4.0/22")), "j_v4_22");
        assert_eq!(p.set_of("j", &net("10.1.4.0/23")), "j_v4_net");
        assert_eq!(p.set_of("j", &net("10.1.4.7/32")), "j_v4");
        assert_eq!(p.set_of("j", &net("2001:db8::/48")), "j_v6_48");
        assert_eq!(p.set_of("j", &net("2001:db8::/56")), "j_v6_net");
        assert!(p.is_interval(&net("10.0.0.0/8")));
        assert!(!p.is_interval(&net("10.0.0.0/16")));
    }

    #[test]
    fn no_masked_length_puts_every_prefix_in_the_interval_set() {
        let p = PrefixSets::new(&[], &[]);
        assert_eq!(p.jail_sets("j").len(), 4);
        assert_eq!(p.kind_of(&net("10.1.2.0/24")), SetKind::Interval);
        assert_eq!(p.kind_of(&net("10.1.2.3/32")), SetKind::Hosts);
    }

    #[test]
    fn out_of_range_lengths_are_left_out() {
        assert_eq!(PrefixSets::new(&[0, 32, 40], &[0, 128]), PrefixSets::new(&[], &[]));
    }

    #[test]
    fn masks_are_the_prefix_length_in_bits() {
        let p = PrefixSets::new(&[22], &[48]);
        let sets = p.jail_sets("j");
        let masks: Vec<Option<String>> = sets.iter().map(SetDef::mask_text).collect();
        assert_eq!(masks[1].as_deref(), Some("255.255.252.0"));
        assert_eq!(masks[4].as_deref(), Some("ffff:ffff:ffff::"));
        assert_eq!(masks[0], None);
        assert_eq!(masks[2], None);
    }

    #[test]
    fn masked_lengths_are_read_back_from_set_names_of_that_jail_only() {
        assert_eq!(masked_length("sshd", Family::V4, "sshd_v4_22"), Some(22));
        assert_eq!(masked_length("sshd", Family::V6, "sshd_v6_64"), Some(64));
        assert_eq!(masked_length("sshd", Family::V6, "sshd_v4_22"), None);
        assert_eq!(masked_length("sshd", Family::V4, "sshd_v4"), None);
        assert_eq!(masked_length("sshd", Family::V4, "sshd_v4_net"), None);
        assert_eq!(masked_length("ssh", Family::V4, "sshd_v4_22"), None);
        assert_eq!(masked_length("a", Family::V4, "a_v4_v4_24"), None);
    }
}
