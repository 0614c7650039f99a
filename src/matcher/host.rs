//! Address tags in rules and what they capture.
//!
//! `<HOST>` (and fail2ban's `<ADDR>`, `<IP4>`, `<IP6>`, `<SUBNET>`) become
//! one named group, `host`, that matches an IPv4 address, an IPv6 address
//! (optionally in brackets) or, for `<HOST>` only, a hostname. A hostname is
//! captured only so that `nftban test` can report it as "not an address":
//! nftban never looks names up (docs/faq.md row 1), so such a line bans nobody.
//! A port is never part of the tag: a rule that allows one says so
//! (`<HOST>(?::\d+)?`). `<CIDR>` is a prefix length (`<ADDR>/<CIDR>`), and
//! `<F-NAME>...</F-NAME>` a named field (group `f_name`), as in fail2ban.

const IPV4: &str = r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}";
const IPV6: &str = r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{1,4})?";
const HOSTNAME: &str = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*";

/// Name of the capture group that holds the offender.
pub const HOST_GROUP: &str = "host";

/// The regex group of a captured prefix length (`<SUBNET>`'s `/len`, `<CIDR>`).
pub const CIDR_GROUP: &str = "cidr";
/// Name of the group of fail2ban's `<F-CONTENT>` (in a `prefregex`).
pub const CONTENT_GROUP: &str = "f_content";

/// The regex of an address tag, or `None` if `tag` is not one.
fn address_tag(tag: &str) -> Option<String> {
    let h = HOST_GROUP;
    Some(match tag {
        "HOST" => format!(r"\[?(?P<{h}>{IPV4}|{IPV6}|{HOSTNAME})\]?"),
        "ADDR" | "F-ADDR/" => format!(r"\[?(?P<{h}>{IPV4}|{IPV6})\]?"),
        "IP4" | "F-IP4/" => format!(r"(?P<{h}>{IPV4})"),
        "IP6" | "F-IP6/" => format!(r"\[?(?P<{h}>{IPV6})\]?"),
        "SUBNET" | "F-SUBNET/" => format!(r"\[?(?P<{h}>{IPV4}|{IPV6})(?:/(?P<{CIDR_GROUP}>[0-9]{{1,3}}))?\]?"),
        _ => return None,
    })
}

/// The regex of any other tag (fields), or `None`.
fn field_tag(tag: &str) -> Option<String> {
    Some(match tag {
        "CIDR" | "F-CIDR/" => format!(r"(?P<{CIDR_GROUP}>[0-9]{{1,3}})"),
        "F-ID/" => r"(?P<fid>\S+)".to_string(),
        "F-PORT/" => r"(?P<fport>\w+)".to_string(),
        "DNS" | "F-DNS/" => format!("(?:{HOSTNAME})"),
        _ => {
            if let Some(name) = tag.strip_prefix("/F-") {
                valid_field(name)?;
                ")".to_string()
            } else if let Some(name) = tag.strip_prefix("F-") {
                format!("(?P<f_{}>", valid_field(name)?)
            } else {
                return None;
            }
        }
    })
}

fn valid_field(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-');
    ok.then(|| name.to_ascii_lowercase().replace('-', "_"))
}

/// Why a rule's tags do not give one address to ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// No address tag where one is needed (a failregex).
    #[error("no <HOST> (or <ADDR>, <IP4>, <IP6>, <SUBNET>) in the rule: nothing to ban")]
    NoAddress,
    /// Two or more address tags: which one is the offender is unclear.
    #[error("more than one address tag in the rule; use exactly one <HOST>")]
    TooManyAddresses,
}

/// Replace the tags of a rule by regex groups. With `need_address`, the rule
/// must hold exactly one address tag (the `host` group).
pub fn expand_tags(rule: &str, need_address: bool) -> Result<String, TagError> {
    expand(rule, need_address, false)
}

/// [`expand_tags`] for the fallback engine ([`super::python`]): any number
/// of address tags, the N-th one's group named `hN` (and its prefix length
/// `cN`), so that each branch of `(?:IPv6:<IP6>|<IP4>)` has its own.
pub(super) fn expand_tags_numbered(rule: &str, need_address: bool) -> Result<String, TagError> {
    expand(rule, need_address, true)
}

fn expand(rule: &str, need_address: bool, numbered: bool) -> Result<String, TagError> {
    let mut out = String::with_capacity(rule.len() + 200);
    let mut rest = rule;
    let mut addresses = 0;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let tag = after.find('>').map(|j| &after[..j]);
        // `(?P<name>` is regex syntax, not a tag.
        let is_group_name = out.ends_with("(?P") || out.ends_with("(?");
        let expanded = match tag {
            Some(t) if !is_group_name => match address_tag(t) {
                Some(re) if numbered => {
                    let n = addresses;
                    addresses += 1;
                    Some(
                        re.replace(&format!("(?P<{HOST_GROUP}>"), &format!("(?P<h{n}>"))
                            .replace(&format!("(?P<{CIDR_GROUP}>"), &format!("(?P<c{n}>")),
                    )
                }
                Some(re) => {
                    addresses += 1;
                    Some(re)
                }
                None => field_tag(t),
            },
            _ => None,
        };
        match (expanded, tag) {
            (Some(re), Some(t)) => {
                out.push_str(&re);
                rest = &after[t.len() + 1..];
            }
            _ => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    if need_address && addresses == 0 {
        return Err(TagError::NoAddress);
    }
    if addresses > 1 && !numbered {
        return Err(TagError::TooManyAddresses);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::parse_addr;
    use proptest::prelude::*;
    use std::net::IpAddr;

    proptest! {
        /// Any generated address, in any of the forms logs write it, comes
        /// back out of `<HOST>` unchanged; a port is not part of it.
        #[test]
        fn host_round_trip(v4 in any::<[u8; 4]>(), v6 in any::<[u16; 8]>(), port in 1u16.., pick in 0u8..4) {
            let re = regex::Regex::new(&expand_tags(r"^from <HOST>(?::\d+)? end$", true).unwrap()).unwrap();
            let a4 = IpAddr::from(v4);
            let a6 = IpAddr::from(std::net::Ipv6Addr::from(v6));
            let (text, want) = match pick {
                0 => (format!("from {a4} end"), a4),
                1 => (format!("from {a4}:{port} end"), a4),
                2 => (format!("from {a6} end"), parse_addr(&a6.to_string()).unwrap()),
                _ => (format!("from [{a6}]:{port} end"), parse_addr(&a6.to_string()).unwrap()),
            };
            let caps = re.captures(&text);
            prop_assert!(caps.is_some(), "{}", text);
            let host = caps.unwrap().name("host").unwrap().as_str().to_string();
            prop_assert_eq!(parse_addr(&host), Some(want), "{}", text);
        }

        /// Arbitrary text never panics the tag expander or the capture.
        #[test]
        fn no_panic(rule in "\\PC{0,30}", line in "\\PC{0,60}") {
            if let Ok(re) = expand_tags(&rule, false) {
                if let Ok(re) = regex::Regex::new(&re) {
                    let _ = re.captures(&line).and_then(|c| c.name("host").map(|m| parse_addr(m.as_str())));
                }
            }
        }
    }

    #[test]
    fn tags_expand_to_one_group() {
        assert!(expand_tags("from <HOST> port", true).unwrap().contains("(?P<host>"));
        assert!(expand_tags("no tag", true).is_err());
        assert_eq!(expand_tags("no tag", true), Err(TagError::NoAddress));
        assert!(expand_tags("<HOST> and <ADDR>", true)
            .unwrap_err()
            .to_string()
            .contains("more than one"));
        let re = expand_tags("user <F-USER>\\S+</F-USER> from <SUBNET>", true).unwrap();
        assert!(re.contains("(?P<f_user>\\S+)") && re.contains("(?P<cidr>"), "{re}");
        assert_eq!(expand_tags("(?P<x>a)<b>", false).unwrap(), "(?P<x>a)<b>");
    }

    /// `<SUBNET>`, `<ADDR>/<CIDR>`, `<IP4>`, `<IP6>` capture what fail2ban's do.
    #[test]
    fn fail2ban_tags_capture() {
        let cases = [
            ("net <SUBNET>$", "net 192.0.2.0/24", Some("192.0.2.0"), Some("24")),
            ("net <SUBNET>$", "net [2001:db8::1]", Some("2001:db8::1"), None),
            (
                "net <ADDR>/<CIDR>$",
                "net 198.51.100.0/25",
                Some("198.51.100.0"),
                Some("25"),
            ),
            ("v4 <IP4>$", "v4 2001:db8::1", None, None),
            ("v6 <IP6>$", "v6 2001:db8::1", Some("2001:db8::1"), None),
            ("a <ADDR>$", "a host.example", None, None),
        ];
        for (rule, line, host, cidr) in cases {
            let re = regex::Regex::new(&expand_tags(rule, true).unwrap()).unwrap();
            let caps = re.captures(line);
            assert_eq!(
                caps.as_ref().and_then(|c| c.name("host")).map(|m| m.as_str()),
                host,
                "{rule}"
            );
            assert_eq!(
                caps.as_ref().and_then(|c| c.name("cidr")).map(|m| m.as_str()),
                cidr,
                "{rule}"
            );
        }
    }
}
