//! Readers for the dumps nftban asks for: the sets of its table (GETSET),
//! the elements of one set (GETSETELEM), the chains (GETCHAIN) and the
//! rules' counters (GETRULE). A direct walk over the attributes
//! ([`super::abi::attrs`]), not netlink-packet-netfilter's generic parser,
//! which allocates for every attribute and is far slower on big sets
//! (docs/firewall.md, section "Netlink stack: netlink-packet-netfilter").
//! Also turns the start/end elements of an interval set back into prefixes.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::abi::{
    attrs, be_u32, be_u64, c_string, NFTA_CHAIN_HOOK, NFTA_CHAIN_TYPE, NFTA_COUNTER_BYTES, NFTA_COUNTER_PACKETS,
    NFTA_DATA_VALUE, NFTA_EXPR_DATA, NFTA_EXPR_NAME, NFTA_HOOK_HOOKNUM, NFTA_HOOK_PRIORITY, NFTA_LIST_ELEM,
    NFTA_LOOKUP_SET, NFTA_RULE_CHAIN, NFTA_RULE_EXPRESSIONS, NFTA_SET_DESC, NFTA_SET_DESC_SIZE,
    NFTA_SET_ELEM_EXPIRATION, NFTA_SET_ELEM_FLAGS, NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_LIST_ELEMENTS, NFTA_SET_FLAGS,
    NFTA_SET_KEY_LEN, NFTA_SET_KEY_TYPE, NFTA_SET_NAME, NFT_SET_ELEM_INTERVAL_END,
};
use crate::firewall::{Counter, Element, Family};

/// What a GETSET dump says about one set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct SetInfo {
    pub name: String,
    pub flags: u32,
    pub key_type: u32,
    pub key_len: u32,
    /// The set's `size`, if it has one.
    pub size: Option<u32>,
}

/// Parse one NEWSET message of a GETSET dump.
pub(super) fn set_info(payload: &[u8]) -> Option<SetInfo> {
    let mut info = SetInfo::default();
    for (kind, value) in attrs(payload) {
        match kind {
            NFTA_SET_NAME => info.name = c_string(value),
            NFTA_SET_FLAGS => info.flags = be_u32(value)?,
            NFTA_SET_KEY_TYPE => info.key_type = be_u32(value)?,
            NFTA_SET_KEY_LEN => info.key_len = be_u32(value)?,
            NFTA_SET_DESC => {
                info.size = attrs(value)
                    .find(|&(k, _)| k == NFTA_SET_DESC_SIZE)
                    .and_then(|(_, v)| be_u32(v));
            }
            _ => {}
        }
    }
    (!info.name.is_empty()).then_some(info)
}

/// What a GETCHAIN answer says about a chain's hook.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct ChainInfo {
    /// `None` for a regular (non-base) chain.
    pub hook: Option<u32>,
    pub priority: Option<i32>,
    pub kind: String,
}

/// Parse a NEWCHAIN message.
pub(super) fn chain_info(payload: &[u8]) -> ChainInfo {
    let mut info = ChainInfo::default();
    for (kind, value) in attrs(payload) {
        match kind {
            NFTA_CHAIN_HOOK => {
                for (kind, value) in attrs(value) {
                    match kind {
                        NFTA_HOOK_HOOKNUM => info.hook = be_u32(value),
                        NFTA_HOOK_PRIORITY => info.priority = be_u32(value).map(|p| p as i32),
                        _ => {}
                    }
                }
            }
            NFTA_CHAIN_TYPE => info.kind = c_string(value),
            _ => {}
        }
    }
    info
}

/// What a GETRULE dump says about one rule: its chain, the set it looks
/// up and its counter, if it has them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct RuleInfo {
    pub chain: String,
    pub set: Option<String>,
    pub counter: Option<Counter>,
}

/// Parse one NEWRULE message of a GETRULE dump.
pub(super) fn rule_info(payload: &[u8]) -> RuleInfo {
    let mut info = RuleInfo::default();
    for (kind, value) in attrs(payload) {
        match kind {
            NFTA_RULE_CHAIN => info.chain = c_string(value),
            NFTA_RULE_EXPRESSIONS => {
                for (kind, expr) in attrs(value) {
                    if kind != NFTA_LIST_ELEM {
                        continue;
                    }
                    let mut name = String::new();
                    let mut data: &[u8] = &[];
                    for (kind, value) in attrs(expr) {
                        match kind {
                            NFTA_EXPR_NAME => name = c_string(value),
                            NFTA_EXPR_DATA => data = value,
                            _ => {}
                        }
                    }
                    match name.as_str() {
                        "lookup" => {
                            info.set = attrs(data)
                                .find(|&(k, _)| k == NFTA_LOOKUP_SET)
                                .map(|(_, v)| c_string(v));
                        }
                        "counter" => {
                            let mut c = Counter::default();
                            for (kind, value) in attrs(data) {
                                match kind {
                                    NFTA_COUNTER_BYTES => c.bytes = be_u64(value).unwrap_or(0),
                                    NFTA_COUNTER_PACKETS => c.packets = be_u64(value).unwrap_or(0),
                                    _ => {}
                                }
                            }
                            info.counter = Some(c);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    info
}

/// One element as the kernel lists it: a start or end key of an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RawElement {
    /// The key as a number (an IPv4 address fits in the low 32 bits).
    pub key: u128,
    pub end: bool,
    /// Milliseconds left, for elements with a timeout.
    pub expiration: Option<u64>,
}

/// Parse the elements of one NEWSETELEM message of a GETSETELEM dump,
/// appending them to `out`. Keys of another length than `family`'s are
/// skipped.
pub(super) fn elements(payload: &[u8], family: Family, out: &mut Vec<RawElement>) {
    let key_len = match family {
        Family::V4 => 4,
        Family::V6 => 16,
    };
    for (kind, list) in attrs(payload) {
        if kind != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for (kind, elem) in attrs(list) {
            if kind != NFTA_LIST_ELEM {
                continue;
            }
            let mut key = None;
            let mut end = false;
            let mut expiration = None;
            for (kind, value) in attrs(elem) {
                match kind {
                    NFTA_SET_ELEM_KEY => {
                        key = attrs(value)
                            .find(|&(k, v)| k == NFTA_DATA_VALUE && v.len() == key_len)
                            .map(|(_, v)| v.iter().fold(0u128, |acc, &b| acc << 8 | b as u128));
                    }
                    NFTA_SET_ELEM_FLAGS => end = be_u32(value).is_some_and(|f| f & NFT_SET_ELEM_INTERVAL_END != 0),
                    NFTA_SET_ELEM_EXPIRATION => expiration = be_u64(value),
                    _ => {}
                }
            }
            if let Some(key) = key {
                out.push(RawElement { key, end, expiration });
            }
        }
    }
}

/// The elements of a hash set: each key is one address, or the network
/// address of a prefix of `len` (a masked set).
pub(super) fn hosts(family: Family, raw: Vec<RawElement>, len: Option<u8>) -> Vec<Element> {
    let bits = len.unwrap_or(match family {
        Family::V4 => 32,
        Family::V6 => 128,
    });
    raw.into_iter()
        .filter(|e| !e.end)
        .map(|e| Element {
            net: make_net(family, e.key, bits),
            expires_in: e.expiration.map(Duration::from_millis),
        })
        .collect()
}

/// Pair start and end elements back into prefixes. The kernel lists an
/// interval set's elements in any order; sorted by key (an end before a
/// start at the same key, since an interval may begin where the previous
/// one ends), each start runs up to the next end key, exclusive. A start
/// with no end after it runs to the top of the address space (that is how
/// nft and nftban store a prefix that reaches it). An end with no start
/// before it (nft adds one at address 0) is skipped. An interval that is no
/// single prefix (added by another tool) comes back as the prefixes that
/// cover it exactly.
pub(super) fn pair(family: Family, mut raw: Vec<RawElement>) -> Vec<Element> {
    let bits = match family {
        Family::V4 => 32,
        Family::V6 => 128,
    };
    let top = if bits == 32 { u32::MAX as u128 } else { u128::MAX };
    raw.sort_by_key(|e| (e.key, !e.end));
    let mut out = Vec::new();
    let mut open: Option<&RawElement> = None;
    let mut emit = |start: &RawElement, last: u128| {
        let expires_in = start.expiration.map(Duration::from_millis);
        for (addr, len) in range_to_prefixes(start.key, last, bits) {
            out.push(Element {
                net: make_net(family, addr, len),
                expires_in,
            });
        }
    };
    for e in &raw {
        match (open.take(), e.end) {
            (Some(start), _) if e.key > start.key => emit(start, e.key - 1),
            (Some(start), false) => open = Some(start),
            _ => {}
        }
        if !e.end && open.is_none() {
            open = Some(e);
        }
    }
    if let Some(start) = open {
        emit(start, top);
    }
    out
}

fn make_net(family: Family, addr: u128, len: u8) -> IpNet {
    match family {
        Family::V4 => IpNet::V4(Ipv4Net::new(Ipv4Addr::from(addr as u32), len).expect("len <= 32")),
        Family::V6 => IpNet::V6(Ipv6Net::new(Ipv6Addr::from(addr), len).expect("len <= 128")),
    }
}

/// The fewest prefixes (address, length) that cover `first..=last` exactly
/// in a `bits`-bit address space.
pub(super) fn range_to_prefixes(first: u128, last: u128, bits: u32) -> Vec<(u128, u8)> {
    let mask = |k: u32| if k >= 128 { u128::MAX } else { (1u128 << k) - 1 };
    let mut out = Vec::new();
    let mut lo = first;
    loop {
        let mut k = if lo == 0 { bits } else { lo.trailing_zeros().min(bits) };
        while k > 0 && last - lo < mask(k) {
            k -= 1;
        }
        out.push((lo, (bits - k) as u8));
        let end = lo + mask(k);
        if end >= last {
            return out;
        }
        lo = end + 1;
    }
}

#[cfg(test)]
mod unit {
    use super::super::abi::{attr, nested, NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_TIMEOUT, NFTA_SET_TABLE};
    use super::*;

    fn start(key: u128, ms: u64) -> RawElement {
        RawElement {
            key,
            end: false,
            expiration: Some(ms),
        }
    }
    fn end(key: u128) -> RawElement {
        RawElement {
            key,
            end: true,
            expiration: None,
        }
    }
    fn nets(els: &[Element]) -> Vec<String> {
        els.iter().map(|e| e.net.to_string()).collect()
    }

    #[test]
    fn ranges_become_prefixes() {
        assert_eq!(range_to_prefixes(0, u32::MAX as u128, 32), [(0, 0)]);
        assert_eq!(range_to_prefixes(0, u128::MAX, 128), [(0, 0)]);
        assert_eq!(range_to_prefixes(5, 5, 32), [(5, 32)]);
        assert_eq!(range_to_prefixes(0x0a00_0000, 0x0aff_ffff, 32), [(0x0a00_0000, 8)]);
        // 10.0.0.1 - 10.0.0.6 = .1/32 .2/31 .4/31 .6/32
        assert_eq!(
            range_to_prefixes(0x0a00_0001, 0x0a00_0006, 32),
            [
                (0x0a00_0001, 32),
                (0x0a00_0002, 31),
                (0x0a00_0004, 31),
                (0x0a00_0006, 32)
            ]
        );
        assert_eq!(range_to_prefixes(u128::MAX, u128::MAX, 128), [(u128::MAX, 128)]);
    }

    #[test]
    fn pairs_in_any_order_with_open_top_and_orphan_end() {
        // What the kernel lists (descending) for 10.0.0.0/8 timeout 1h,
        // 255.255.255.255 timeout 1m, plus nft's end element at 0.
        let raw = vec![
            start(0xffff_ffff, 60_000),
            end(0x0b00_0000),
            start(0x0a00_0000, 3_600_000),
            end(0),
        ];
        let els = pair(Family::V4, raw);
        assert_eq!(nets(&els), ["10.0.0.0/8", "255.255.255.255/32"]);
        assert_eq!(els[0].expires_in, Some(Duration::from_secs(3600)));
        assert_eq!(els[1].expires_in, Some(Duration::from_secs(60)));
    }

    #[test]
    fn adjacent_intervals_and_whole_space() {
        // 198.51.100.0/24 and 198.51.101.0/24: the end of one is the start
        // of the other.
        let a = 0xc633_6400u128;
        let raw = vec![start(a + 256, 1), end(a + 256), start(a, 2), end(a + 512)];
        assert_eq!(nets(&pair(Family::V4, raw)), ["198.51.100.0/24", "198.51.101.0/24"]);
        let raw = vec![RawElement {
            key: 0,
            end: false,
            expiration: None,
        }];
        let els = pair(Family::V6, raw);
        assert_eq!(nets(&els), ["::/0"]);
        assert_eq!(els[0].expires_in, None);
    }

    #[test]
    fn parses_set_and_element_attributes() {
        let mut set = attr(NFTA_SET_TABLE, b"nftban\0");
        set.extend(attr(NFTA_SET_NAME, b"sshd_v4\0"));
        set.extend(attr(NFTA_SET_FLAGS, &0x14u32.to_be_bytes()));
        set.extend(attr(NFTA_SET_KEY_TYPE, &7u32.to_be_bytes()));
        set.extend(attr(NFTA_SET_KEY_LEN, &4u32.to_be_bytes()));
        let info = set_info(&set).unwrap();
        assert_eq!(
            info,
            SetInfo {
                name: "sshd_v4".into(),
                flags: 0x14,
                key_type: 7,
                key_len: 4,
                size: None,
            }
        );

        let key = |a: [u8; 4]| nested(NFTA_SET_ELEM_KEY, &attr(NFTA_DATA_VALUE, &a));
        let mut e1 = key([192, 0, 2, 1]);
        e1.extend(attr(NFTA_SET_ELEM_TIMEOUT, &60_000u64.to_be_bytes()));
        e1.extend(attr(NFTA_SET_ELEM_EXPIRATION, &59_000u64.to_be_bytes()));
        let mut e2 = key([192, 0, 2, 2]);
        e2.extend(attr(NFTA_SET_ELEM_FLAGS, &NFT_SET_ELEM_INTERVAL_END.to_be_bytes()));
        let mut list = nested(NFTA_LIST_ELEM, &e1);
        list.extend(nested(NFTA_LIST_ELEM, &e2));
        let mut msg = attr(NFTA_SET_ELEM_LIST_TABLE, b"nftban\0");
        msg.extend(nested(NFTA_SET_ELEM_LIST_ELEMENTS, &list));
        let mut raw = Vec::new();
        elements(&msg, Family::V4, &mut raw);
        assert_eq!(
            raw,
            [
                RawElement {
                    key: 0xc000_0201,
                    end: false,
                    expiration: Some(59_000)
                },
                RawElement {
                    key: 0xc000_0202,
                    end: true,
                    expiration: None
                },
            ]
        );
        let els = pair(Family::V4, raw);
        assert_eq!(nets(&els), ["192.0.2.1/32"]);
        assert_eq!(els[0].expires_in, Some(Duration::from_secs(59)));
    }
}
