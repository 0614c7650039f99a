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

use std::net::IpAddr;

use ipnet::IpNet;

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
    let addr = parse_addr(addr).ok_or_else(|| AddressError::BadPrefixAddress(addr.into()))?;
    let len: u8 = len.parse().map_err(|_| AddressError::BadPrefixLength(len.into()))?;
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
/// --force`, a peer, a feed, a record in the history), with why: banning
/// them never stops an attacker and can cut the host off. A ban that
/// overlaps one (contains it or lies in it) is refused, so a wide prefix
/// that would swallow one is refused too.
const NEVER_BANNED: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\" (0.0.0.0/8) is not a source address"),
    ("127.0.0.0/8", "loopback is this host itself"),
    ("224.0.0.0/4", "multicast is not a source address"),
    ("255.255.255.255/32", "the broadcast address is not a source address"),
    ("::/128", "the unspecified address is not a source address"),
    ("::1/128", "loopback is this host itself"),
    ("ff00::/8", "multicast is not a source address"),
];

/// Why `net` may never be banned, or `None` if it may.
#[cfg_attr(not(test), expect(dead_code, reason = "the ban paths use it next"))]
pub fn never_banned(net: &IpNet) -> Option<&'static str> {
    if net.prefix_len() == 0 {
        return Some("a ban of the whole address space would cut the host off");
    }
    NEVER_BANNED.iter().find_map(|(range, why)| {
        let range: IpNet = range.parse().ok()?;
        (range.contains(net) || net.contains(&range)).then_some(*why)
    })
}

/// An address prints without `/32` or `/128`, a prefix with its length.
pub fn show(net: &IpNet) -> String {
    if is_host(net) {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            assert!(never_banned(&parse_net(text).unwrap()).is_some(), "{text}");
        }
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
}
