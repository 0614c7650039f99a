//! Addresses and prefixes as nftban reads and prints them.
//!
//! Every ban is an [`IpNet`]: a single address is a /32 or /128, a prefix
//! keeps its length with the host bits cleared. The same three rules hold
//! wherever an address enters (a log line, `nftban ban`, a config's
//! `ignoreip`) or leaves (`status`, logs, `nftban test`):
//! - IPv4-mapped IPv6 (`::ffff:192.0.2.1`) is plain IPv4, so it lands in the
//!   IPv4 set and matches IPv4 `ignoreip` entries;
//! - a prefix with host bits set (`192.0.2.1/24`) is an error that says
//!   what was meant, never silently widened;
//! - an address prints without `/32` or `/128`, a prefix with its length.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A hash map keyed by addresses or prefixes, for the maps the engine
/// touches once or more per ban (a jail's bans, their counts and reasons, a
/// request's plan, the history's counts): hashed with foldhash instead of
/// the standard SipHash, which showed in the engine's profile of a bulk
/// ban (docs/performance.md). Seeded at random per process, as the
/// standard one is; foldhash is "minimally DoS-resistant" (its authors'
/// words): enough here, where the keys are addresses seen or listed, not
/// arbitrary strings, and the program's hash state is never shown.
pub type AddrMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Why a text is not an address or prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Neither an IPv4 nor an IPv6 address.
    #[error("not an IP address")]
    NotAnAddress,
    /// The part before the `/` is not an address.
    #[error("`{0}` is not an IP address")]
    BadPrefixAddress(String),
    /// The part after the `/` is not a number.
    #[error("`{0}` is not a prefix length")]
    BadPrefixLength(String),
    /// Longer than the family allows (/33 for IPv4).
    #[error("prefix length /{len} is too long for {addr}")]
    PrefixTooLong { addr: IpAddr, len: u8 },
    /// Bits set after the prefix length: probably a typo.
    #[error("{given} has host bits set; did you mean {meant}?")]
    HostBitsSet { given: String, meant: IpNet },
    /// An IPv4-mapped prefix (`::ffff:a.b.c.d/len`) shorter than /96: it
    /// reaches past the mapped range.
    #[error("{given}: an IPv4-mapped prefix is /96 to /128 (the IPv4 prefix length plus 96)")]
    MappedTooShort { given: String },
}

/// The address in a captured host, if it is one (brackets allowed).
/// IPv4-mapped IPv6 (`::ffff:192.0.2.1`) becomes plain IPv4.
pub fn parse_addr(text: &str) -> Option<IpAddr> {
    let text = text.trim_start_matches('[').trim_end_matches(']');
    match text.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => Some(v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6))),
        v4 => Some(v4),
    }
}

/// Parse `ADDR` or `ADDR/PREFIX` into a network with its host bits cleared.
/// Host bits set (`192.0.2.1/24`) are an error, not silently widened.
pub fn parse_net(text: &str) -> Result<IpNet, AddressError> {
    let text = text.trim();
    let Some((addr, len)) = text.split_once('/') else {
        return parse_addr(text).map(IpNet::from).ok_or(AddressError::NotAnAddress);
    };
    let mapped = addr
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::Ipv6Addr>()
        .is_ok_and(|v6| v6.to_ipv4_mapped().is_some());
    let addr = parse_addr(addr).ok_or_else(|| AddressError::BadPrefixAddress(addr.into()))?;
    let len: u8 = len.parse().map_err(|_| AddressError::BadPrefixLength(len.into()))?;
    // `::ffff:203.0.113.0/120` is 203.0.113.0/24, as the address alone is
    // plain IPv4 (parse_addr).
    let len = match mapped {
        true => len
            .checked_sub(96)
            .ok_or_else(|| AddressError::MappedTooShort { given: text.into() })?,
        false => len,
    };
    let net = IpNet::new(addr, len).map_err(|_| AddressError::PrefixTooLong { addr, len })?;
    if net.trunc() != net {
        return Err(AddressError::HostBitsSet {
            given: text.into(),
            meant: net.trunc(),
        });
    }
    Ok(net)
}

/// Whether `net` is a single address (/32 or /128).
pub fn is_host(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

/// Ranges no ban may touch, whoever asks (a log line, `nftban ban
/// --force`, another origin of bans, an IPv6 escalation, a record in the
/// history), with why: none of them is the source address of an attacker,
/// and banning them can cut the host off. A ban that overlaps one
/// (contains it or lies in it) is refused, so a wide prefix that would
/// swallow one (`0.0.0.0/1`, `::/64`) is refused too. Not listed, on
/// purpose: private and link-local ranges (an attacker may sit there) and
/// the host's own addresses (they change; `ignoreip` is the place).
const NEVER_BANNED: &[(IpNet, &str)] = &[
    (
        v4(0, 0, 0, 0, 8),
        "\"this network\" (0.0.0.0/8) is not a source address",
    ),
    (v4(127, 0, 0, 0, 8), "loopback is this host itself"),
    (v4(224, 0, 0, 0, 4), "multicast is not a source address"),
    (
        v4(255, 255, 255, 255, 32),
        "the broadcast address is not a source address",
    ),
    (v6(0, 128), "the unspecified address is not a source address"),
    (v6(1, 128), "loopback is this host itself"),
    (v6(0xff00 << 112, 8), "multicast is not a source address"),
];

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len))
}

const fn v6(bits: u128, len: u8) -> IpNet {
    IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::from_bits(bits), len))
}

/// Why `net` may never be banned, or `None` if it may. The one place that
/// says so: every path to a ban asks it.
pub fn never_banned(net: &IpNet) -> Option<&'static str> {
    // IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is IPv4 here as everywhere,
    // even from an origin that did not go through `parse_net`.
    let net = match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => match n.network().to_ipv4_mapped() {
            Some(v4) => IpNet::V4(Ipv4Net::new(v4, n.prefix_len() - 96).ok()?),
            None => *net,
        },
        _ => *net,
    };
    if net.prefix_len() == 0 {
        return Some("a ban of the whole address space would cut the host off");
    }
    NEVER_BANNED
        .iter()
        .find(|(range, _)| overlap(range, &net))
        .map(|(_, why)| *why)
}

/// Whether one of `a` and `b` holds the other: their addresses agree on
/// the shorter one's prefix. Asked of every ban (once per list entry) on
/// the way in: integer masks, where `contains` both ways showed in the
/// engine's profile of a `ban -` of 100,000.
fn overlap(a: &IpNet, b: &IpNet) -> bool {
    /// Whether `x` and `y` agree on their first `len` bits.
    fn agree(x: u128, y: u128, len: u8) -> bool {
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        (x ^ y) & mask == 0
    }
    match (a, b) {
        // IPv4's 32 bits as the first 32 of 128.
        (IpNet::V4(a), IpNet::V4(b)) => agree(
            u128::from(a.addr().to_bits()) << 96,
            u128::from(b.addr().to_bits()) << 96,
            a.prefix_len().min(b.prefix_len()),
        ),
        (IpNet::V6(a), IpNet::V6(b)) => agree(
            a.addr().to_bits(),
            b.addr().to_bits(),
            a.prefix_len().min(b.prefix_len()),
        ),
        _ => false,
    }
}

/// An address prints without `/32` or `/128`, a prefix with its length.
pub fn show(net: &IpNet) -> String {
    match net {
        // Every ban's address is shown (the answer to `ban`, the log):
        // four numbers written directly, where `Display` went through the
        // formatter, which showed in the engine's profile of a bulk ban.
        IpNet::V4(n) if n.prefix_len() == 32 => {
            let mut s = String::with_capacity(15);
            for (k, octet) in n.addr().octets().into_iter().enumerate() {
                if k > 0 {
                    s.push('.');
                }
                s.push_str(itoa::Buffer::new().format(octet));
            }
            s
        }
        _ if is_host(net) => net.addr().to_string(),
        _ => net.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4-mapped prefix is its IPv4 prefix, as a mapped address is its
    /// IPv4 address: `::ffff:203.0.113.0/120` is 203.0.113.0/24 (it was
    /// "prefix length /120 is too long for 203.0.113.0").
    #[test]
    fn a_mapped_prefix_is_its_ipv4_prefix() {
        assert_eq!(
            parse_net("::ffff:203.0.113.0/120"),
            Ok("203.0.113.0/24".parse().unwrap())
        );
        assert_eq!(
            parse_net("[::ffff:203.0.113.7]/128"),
            Ok("203.0.113.7/32".parse().unwrap())
        );
        assert_eq!(
            parse_net("::ffff:203.0.113.0/64"),
            Err(AddressError::MappedTooShort {
                given: "::ffff:203.0.113.0/64".into()
            })
        );
        assert!(matches!(
            parse_net("::ffff:203.0.113.1/120"),
            Err(AddressError::HostBitsSet { .. })
        ));
        assert_eq!(parse_net("2001:db8::/120"), Ok("2001:db8::/120".parse().unwrap()));
    }

    #[test]
    fn addresses_parse_and_mapped_v4_is_v4() {
        assert_eq!(parse_addr("192.0.2.7"), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(parse_addr("[2001:db8::1]"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(parse_addr("::ffff:192.0.2.7"), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(parse_addr("example.com"), None);
        assert_eq!(parse_addr("999.1.1.1"), None);
    }

    #[test]
    fn nets_parse_strictly() {
        assert_eq!(parse_net("192.0.2.1").unwrap().to_string(), "192.0.2.1/32");
        assert_eq!(parse_net("2001:db8::/32").unwrap().to_string(), "2001:db8::/32");
        assert!(parse_net("192.0.2.1/24")
            .unwrap_err()
            .to_string()
            .contains("did you mean 192.0.2.0/24"));
        assert_eq!(
            parse_net("192.0.2.0/33"),
            Err(AddressError::PrefixTooLong {
                addr: "192.0.2.0".parse().unwrap(),
                len: 33
            })
        );
        assert_eq!(parse_net("host.example"), Err(AddressError::NotAnAddress));
        assert_eq!(parse_net("192.0.2.0/x"), Err(AddressError::BadPrefixLength("x".into())));
    }

    #[test]
    fn some_ranges_are_never_banned() {
        for text in [
            "0.0.0.0",
            "0.0.0.0/0",
            "::/0",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "ff02::1",
            "::",
            "::1",
            "127.0.0.1",
            "0.0.0.0/1",
            "128.0.0.0/1",
            "192.0.0.0/2",
            "::ffff:127.0.0.1",
            "::/64",
        ] {
            assert!(never_banned(&parse_net(text).unwrap()).is_some(), "{text}");
        }
        let why = |text: &str| never_banned(&parse_net(text).unwrap());
        assert_eq!(why("239.255.255.250"), Some("multicast is not a source address"));
        assert_eq!(why("::1"), Some("loopback is this host itself"));
        assert_eq!(
            why("0.0.0.0/0"),
            Some("a ban of the whole address space would cut the host off")
        );
        // Mapped IPv6 that did not go through parse_net (another origin).
        let mapped = |text: &str| never_banned(&text.parse::<IpNet>().unwrap());
        assert_eq!(mapped("::ffff:127.0.0.1/128"), Some("loopback is this host itself"));
        assert_eq!(
            mapped("::ffff:224.0.0.0/100"),
            Some("multicast is not a source address")
        );
        assert_eq!(
            mapped("::ffff:0.0.0.0/96"),
            Some("a ban of the whole address space would cut the host off")
        );
        assert_eq!(mapped("::ffff:192.0.2.9/128"), None);
        for text in [
            "192.0.2.1",
            "198.51.100.0/24",
            "2001:db8::/32",
            "1.0.0.0/8",
            "::ffff:192.0.2.9",
        ] {
            assert_eq!(never_banned(&parse_net(text).unwrap()), None, "{text}");
        }
    }

    #[test]
    fn hosts_print_bare_and_prefixes_with_length() {
        for (text, shown, host) in [
            ("192.0.2.1", "192.0.2.1", true),
            ("2001:db8::1", "2001:db8::1", true),
            ("198.51.100.0/24", "198.51.100.0/24", false),
            ("2001:db8::/64", "2001:db8::/64", false),
            ("::ffff:192.0.2.9", "192.0.2.9", true),
        ] {
            let net = parse_net(text).unwrap();
            assert_eq!(show(&net), shown, "{text}");
            assert_eq!(is_host(&net), host, "{text}");
        }
    }

    proptest::proptest! {
        /// The masks agree with `contains` both ways, for either family
        /// and any length, and with no overlap across families; and an
        /// IPv4 address shows as its `Display`.
        #[test]
        fn overlap_is_contains_either_way(
            a in proptest::prelude::any::<u128>(),
            b in proptest::prelude::any::<u128>(),
            la in 0u8..=128,
            lb in 0u8..=128,
            v4 in proptest::prelude::any::<(bool, bool)>(),
        ) {
            let net = |bits: u128, len: u8, v4: bool| -> IpNet {
                if v4 {
                    IpNet::V4(Ipv4Net::new(Ipv4Addr::from_bits(bits as u32), len % 33).unwrap())
                } else {
                    IpNet::V6(Ipv6Net::new(Ipv6Addr::from_bits(bits), len).unwrap())
                }
            };
            // Addresses that share a prefix of some length, often.
            let b = if lb % 2 == 0 { a ^ (b >> (lb / 2)) } else { b };
            let (x, y) = (net(a, la, v4.0), net(b, lb, v4.1));
            proptest::prop_assert_eq!(overlap(&x, &y), x.contains(&y) || y.contains(&x), "{} {}", x, y);
            if let IpNet::V4(n) = x {
                let host = IpNet::V4(Ipv4Net::from(n.addr()));
                proptest::prop_assert_eq!(show(&host), n.addr().to_string());
            }
        }
    }
}
