//! Address tags in rules and what they capture.
//!
//! `<HOST>` (and fail2ban's `<ADDR>`, `<IP4>`, `<IP6>`) become one named
//! group, `host`, that matches an IPv4 address, an IPv6 address (optionally
//! in brackets) or a hostname. A hostname is captured only so that
//! `nftban test` can report it as "not an address": nftban never looks
//! names up (seed FAQ row 1), so such a line bans nobody.

use std::net::IpAddr;

use ipnet::IpNet;

const IPV4: &str = r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}";
const IPV6: &str = r"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*[0-9A-Fa-f]|::";
const HOSTNAME: &str = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*";

/// Name of the capture group that holds the offender.
pub const HOST_GROUP: &str = "host";

/// Replace the address tag of a rule by the `host` group. Errors if the rule
/// has no tag or more than one.
pub fn expand_tags(rule: &str) -> Result<String, String> {
    let tags = [
        ("<HOST>", format!(r"\[?(?P<{HOST_GROUP}>{IPV4}|{IPV6}|{HOSTNAME})\]?")),
        ("<ADDR>", format!(r"\[?(?P<{HOST_GROUP}>{IPV4}|{IPV6})\]?")),
        ("<IP4>", format!(r"(?P<{HOST_GROUP}>{IPV4})")),
        ("<IP6>", format!(r"\[?(?P<{HOST_GROUP}>{IPV6})\]?")),
    ];
    let count: usize = tags.iter().map(|(t, _)| rule.matches(t).count()).sum();
    if count == 0 {
        return Err("no <HOST> (or <ADDR>, <IP4>, <IP6>) in the rule: nothing to ban".into());
    }
    if count > 1 {
        return Err("more than one address tag in the rule; use exactly one <HOST>".into());
    }
    let mut out = rule.to_string();
    for (tag, re) in &tags {
        out = out.replace(tag, re);
    }
    Ok(out)
}

/// The address in a captured host, if it is one. IPv4-mapped IPv6
/// (`::ffff:192.0.2.1`) becomes plain IPv4 so it lands in the IPv4 set.
pub fn parse_addr(text: &str) -> Option<IpAddr> {
    let text = text.trim_start_matches('[').trim_end_matches(']');
    match text.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => Some(v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6))),
        v4 => Some(v4),
    }
}

/// Parse `ADDR` or `ADDR/PREFIX` into a network with its host bits cleared.
/// Host bits set (`192.0.2.1/24`) are an error, not silently widened.
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Some((addr, len)) = text.split_once('/') {
        let addr = parse_addr(addr).ok_or_else(|| format!("`{addr}` is not an IP address"))?;
        let len: u8 = len.parse().map_err(|_| format!("`{len}` is not a prefix length"))?;
        let net = IpNet::new(addr, len).map_err(|_| format!("prefix length /{len} is too long for {addr}"))?;
        if net.trunc() != net {
            return Err(format!("{text} has host bits set; did you mean {}?", net.trunc()));
        }
        Ok(net)
    } else {
        parse_addr(text)
            .map(IpNet::from)
            .ok_or_else(|| "not an IP address".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_expand_to_one_group() {
        assert!(expand_tags("from <HOST> port").unwrap().contains("(?P<host>"));
        assert!(expand_tags("no tag").is_err());
        assert!(expand_tags("<HOST> and <ADDR>").unwrap_err().contains("more than one"));
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
            .contains("did you mean 192.0.2.0/24"));
        assert!(parse_net("192.0.2.0/33").is_err());
        assert!(parse_net("host.example").is_err());
    }
}
