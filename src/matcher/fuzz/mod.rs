//! Hostile input for the matcher and for what reads rules: lines an
//! attacker writes ([`lines`], [`injection`]), ruleset files ([`ruleset`])
//! and fail2ban filters ([`fail2ban`]) as they come from the internet.
//!
//! What this module shares: every shipped ruleset compiled once per mode,
//! their example lines, and the check that an address the matcher gives is
//! written in the line.

mod fail2ban;
mod injection;
mod lines;
mod ruleset;

use std::net::IpAddr;
use std::sync::OnceLock;

use super::{LineMatch, Matcher, Ruleset};

/// A shipped ruleset: its rules, and a matcher per mode (`None`: the base
/// rules).
pub(super) struct Shipped {
    pub name: &'static str,
    pub rules: Ruleset,
    pub matchers: Vec<(Option<String>, Matcher)>,
}

/// Every shipped ruleset, compiled once for all tests.
pub(super) fn shipped() -> &'static [Shipped] {
    static ALL: OnceLock<Vec<Shipped>> = OnceLock::new();
    ALL.get_or_init(|| {
        super::ruleset::SHIPPED
            .iter()
            .map(|(name, _)| {
                let rules = Ruleset::shipped(name).unwrap();
                let mut modes = vec![None];
                modes.extend(rules.modes.keys().cloned().map(Some));
                let matchers = modes
                    .into_iter()
                    .map(|mode| {
                        let m = Matcher::new(&rules.with_mode(mode.as_deref()).unwrap()).unwrap();
                        (mode, m)
                    })
                    .collect();
                Shipped { name, rules, matchers }
            })
            .collect()
    })
}

/// Every shipped matcher (all modes), in [`shipped`] order.
pub(super) fn all_matchers() -> Vec<&'static Matcher> {
    shipped()
        .iter()
        .flat_map(|s| s.matchers.iter().map(|(_, m)| m))
        .collect()
}

/// The example lines of every shipped ruleset.
pub(super) fn example_lines() -> &'static [String] {
    static LINES: OnceLock<Vec<String>> = OnceLock::new();
    LINES.get_or_init(|| {
        shipped()
            .iter()
            .flat_map(|s| s.rules.examples.iter().map(|e| e.line.clone()))
            .collect()
    })
}

/// Whether `addr` is written in `line`: some run of address characters in
/// it reads as `addr` (as the matcher reads a captured host, brackets and
/// IPv4-mapped IPv6 included).
pub(super) fn appears(line: &str, addr: IpAddr) -> bool {
    if line.contains(&addr.to_string()) {
        return true;
    }
    let b = line.as_bytes();
    let is_addr = |c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.';
    // An address is at most 45 characters (`ffff:...:255.255.255.255`).
    (0..b.len()).filter(|&i| is_addr(b[i])).any(|i| {
        (i + 1..=b.len().min(i + 45))
            .take_while(|&j| is_addr(b[j - 1]))
            .any(|j| crate::address::parse_addr(&line[i..j]) == Some(addr))
    })
}

/// The address of a failure, if the result is one.
pub(super) fn failure(r: &LineMatch) -> Option<IpAddr> {
    match r {
        LineMatch::Failure { addr, .. } => Some(*addr),
        _ => None,
    }
}

#[test]
fn appears_reads_addresses_as_the_matcher_does() {
    let a: IpAddr = "192.0.2.1".parse().unwrap();
    assert!(appears("from 192.0.2.1 port 22", a));
    assert!(appears("from ::ffff:192.0.2.1 port 22", a));
    assert!(!appears("from 192.0.2.10 port 22", "192.0.2.100".parse().unwrap()));
    assert!(appears("[2001:DB8::1]:5060", "2001:db8::1".parse().unwrap()));
    assert!(!appears("2001:db8::1", "2001:db8::2".parse().unwrap()));
}
