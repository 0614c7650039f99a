//! Removing a banned source's conntrack entries over ctnetlink, so a flow
//! that began before the ban (a SIP registration flood over UDP, an open
//! TCP session) stops at once instead of riding its established entry.
//!
//! netlink-packet-netfilter 0.4 has typed ctnetlink messages (GET, DELETE,
//! tuples) but no dump reader and nothing that selects entries by prefix.
//! The kernel cannot do that either: an IPCTNL_MSG_CT_DELETE without a tuple
//! flushes by mark, status or zone only, and the dump filter (CTA_FILTER)
//! matches exact addresses, not prefixes. So, as `conntrack -D -s ADDR`
//! does, this module dumps the entries of each family concerned (GET with
//! NLM_F_DUMP, nfgenmsg family AF_INET or AF_INET6, which the kernel
//! filters on), keeps those whose original source lies in a banned prefix,
//! and deletes each by its original tuple (and zone), echoed back as the
//! kernel sent it. Deletes go out many to a datagram, each acked; ENOENT
//! (the entry timed out or was removed meanwhile) is not an error. No
//! `conntrack` process is ever spawned. For a few single IPv4 addresses
//! (the usual burst) the dump is filtered in the kernel by original source
//! (CTA_FILTER, Linux 5.8 and later; older kernels get the plain dump).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use netlink_packet_core::DefaultNla;
use netlink_packet_netfilter::conntrack::ConntrackMessage;
use netlink_packet_netfilter::{NetfilterMessageInner, NetfilterProtoFamily, NetfilterSubsystem};

use super::abi::{
    attr, attrs, nested, CTA_FILTER, CTA_FILTER_FLAG_CTA_IP_SRC, CTA_FILTER_ORIG_FLAGS, CTA_FILTER_REPLY_FLAGS,
    CTA_IP_V4_SRC, CTA_IP_V6_SRC, CTA_TUPLE_IP, CTA_TUPLE_ORIG, CTA_ZONE, IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_GET,
    NLA_F_NESTED,
};
use super::socket::{Failure, NfSocket, Result};

/// Up to this many single addresses get a filtered dump each; more, or any
/// prefix, get one dump of the whole family.
const MAX_FILTERED_DUMPS: usize = 16;

/// How often a dump interrupted by concurrent changes is started over
/// before going on with what it gave.
const DUMP_RETRIES: usize = 3;

/// One conntrack entry to delete: its original tuple and zone, as dumped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    source: IpAddr,
    tuple: Vec<u8>,
    zone: Option<Vec<u8>>,
}

/// Parse one conntrack message of a dump (attributes after nfgenmsg).
fn entry(payload: &[u8]) -> Option<Entry> {
    let mut tuple = None;
    let mut zone = None;
    for (kind, value) in attrs(payload) {
        match kind {
            CTA_TUPLE_ORIG => tuple = Some(value),
            CTA_ZONE => zone = Some(value.to_vec()),
            _ => {}
        }
    }
    let tuple = tuple?;
    let (_, ip) = attrs(tuple).find(|&(k, _)| k == CTA_TUPLE_IP)?;
    let source = attrs(ip).find_map(|(k, v)| match (k, v.len()) {
        (CTA_IP_V4_SRC, 4) => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(v).ok()?))),
        (CTA_IP_V6_SRC, 16) => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(v).ok()?))),
        _ => None,
    })?;
    Some(Entry {
        source,
        tuple: tuple.to_vec(),
        zone,
    })
}

/// A ctnetlink request with attributes the crate has no type for. Not
/// `ConntrackMessage` with `ConntrackAttribute::Other`: that one drops the
/// NLA_F_NESTED flag of attributes it does not know, and the kernel parses
/// CTA_FILTER strictly (EINVAL without the flag).
fn ctnetlink(message_type: u8, attributes: Vec<DefaultNla>) -> NetfilterMessageInner {
    NetfilterMessageInner::Other {
        subsys: NetfilterSubsystem::Conntrack,
        message_type,
        attributes,
    }
}

/// The IPCTNL_MSG_CT_DELETE request for one entry.
fn delete_message(e: &Entry) -> NetfilterMessageInner {
    let mut attributes = vec![DefaultNla::new(CTA_TUPLE_ORIG | NLA_F_NESTED, e.tuple.clone())];
    if let Some(zone) = &e.zone {
        attributes.push(DefaultNla::new(CTA_ZONE, zone.clone()));
    }
    ctnetlink(IPCTNL_MSG_CT_DELETE, attributes)
}

/// A GET dump request; with `source`, the kernel sends only the entries
/// whose original source is that address (CTA_FILTER with
/// CTA_FILTER_FLAG_CTA_IP_SRC, Linux 5.8 and later), which saves copying
/// the whole table to user space for a single address.
pub(super) fn dump_request(source: Option<IpAddr>) -> NetfilterMessageInner {
    let Some(addr) = source else {
        return ConntrackMessage::Get(vec![]).into();
    };
    let ip = match addr {
        IpAddr::V4(a) => attr(CTA_IP_V4_SRC, &a.octets()),
        IpAddr::V6(a) => attr(CTA_IP_V6_SRC, &a.octets()),
    };
    let mut filter = attr(CTA_FILTER_ORIG_FLAGS, &CTA_FILTER_FLAG_CTA_IP_SRC.to_ne_bytes());
    filter.extend(attr(CTA_FILTER_REPLY_FLAGS, &0u32.to_ne_bytes()));
    ctnetlink(
        IPCTNL_MSG_CT_GET,
        vec![
            DefaultNla::new(CTA_TUPLE_ORIG | NLA_F_NESTED, nested(CTA_TUPLE_IP, &ip)),
            DefaultNla::new(CTA_FILTER | NLA_F_NESTED, filter),
        ],
    )
}

/// Prefixes as sorted, merged ranges of addresses (IPv4 in the low 32
/// bits), so that each dumped entry is checked in O(log n) however many
/// bans a burst holds.
#[derive(Debug, Default)]
pub(super) struct Ranges(Vec<(u128, u128)>);

fn key(addr: IpAddr) -> (bool, u128) {
    match addr {
        IpAddr::V4(a) => (true, u32::from(a) as u128),
        IpAddr::V6(a) => (false, u128::from(a)),
    }
}

impl Ranges {
    /// The ranges of the prefixes of one family (`v4`) among `nets`.
    pub(super) fn new(nets: &[IpNet], v4: bool) -> Ranges {
        let mut r: Vec<(u128, u128)> = nets
            .iter()
            .filter_map(|n| {
                let (is_v4, first) = key(n.network());
                let (_, last) = key(n.broadcast());
                (is_v4 == v4).then_some((first, last))
            })
            .collect();
        r.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(r.len());
        for (first, last) in r {
            match merged.last_mut() {
                Some(prev) if first <= prev.1.saturating_add(1) => prev.1 = prev.1.max(last),
                _ => merged.push((first, last)),
            }
        }
        Ranges(merged)
    }

    pub(super) fn contains(&self, addr: IpAddr) -> bool {
        let (_, k) = key(addr);
        let i = self.0.partition_point(|&(first, _)| first <= k);
        i > 0 && self.0[i - 1].1 >= k
    }
}

/// The entries a dump request returns whose original source lies in
/// `wanted` (checked here too: an unfiltered dump returns them all).
pub(super) fn matching(
    sock: &mut NfSocket,
    request: &NetfilterMessageInner,
    family: NetfilterProtoFamily,
    wanted: &Ranges,
) -> Result<Vec<Entry>> {
    let v4 = family == NetfilterProtoFamily::IPv4;
    let mut found = Vec::new();
    for _ in 0..DUMP_RETRIES {
        found.clear();
        let intact = sock.dump_other(request.clone(), family, "list conntrack entries", |p| {
            if let Some(e) = entry(p).filter(|e| e.source.is_ipv4() == v4 && wanted.contains(e.source)) {
                found.push(e);
            }
        })?;
        if intact {
            break;
        }
    }
    Ok(found)
}

/// Delete every conntrack entry whose original source lies in one of
/// `nets`; returns how many went. A few single IPv4 addresses are looked
/// up with a filtered dump each; prefixes, many addresses and IPv6 with one
/// dump of the family's entries, filtered here.
/// `/proc/sys/net/netfilter/nf_conntrack_count` of the caller's network
/// namespace, opened once; `None` when conntrack is not loaded (or no /proc).
pub(super) fn count_file() -> Option<std::fs::File> {
    std::fs::File::open("/proc/sys/net/netfilter/nf_conntrack_count").ok()
}

/// How many connections the namespace of `file` (see [`count_file`])
/// tracks; `None` when it cannot be read.
pub(super) fn tracked(file: &std::fs::File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 32];
    let n = file.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

pub(super) fn forget(sock: &mut NfSocket, nets: &[IpNet]) -> Result<usize> {
    let mut deleted = 0;
    for (family, v4) in [(NetfilterProtoFamily::IPv4, true), (NetfilterProtoFamily::IPv6, false)] {
        let wanted: Vec<IpNet> = nets
            .iter()
            .filter(|n| matches!(n, IpNet::V4(_)) == v4)
            .map(IpNet::trunc)
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let hosts = wanted.iter().all(crate::address::is_host);
        let ranges = Ranges::new(&wanted, v4);
        let mut doomed = Vec::new();
        // IPv4 only: the kernel's IPv6 source filter is inverted (it skips
        // the entries of the address asked for: `!ipv6_addr_cmp(...)` in
        // ctnetlink_filter_match_tuple, seen on 6.18), so IPv6 always gets
        // the plain dump.
        let mut filtered = v4 && hosts && wanted.len() <= MAX_FILTERED_DUMPS;
        if filtered {
            for net in &wanted {
                match matching(sock, &dump_request(Some(net.addr())), family, &ranges) {
                    Ok(found) => doomed.extend(found),
                    // A kernel without dump filters: dump the family.
                    Err(Failure::Kernel {
                        errno: libc::EOPNOTSUPP | libc::EINVAL,
                        ..
                    }) => {
                        filtered = false;
                        doomed.clear();
                        break;
                    }
                    Err(f) => return Err(f),
                }
            }
        }
        if !filtered {
            doomed = matching(sock, &dump_request(None), family, &ranges)?;
        }
        let msgs: Vec<(NetfilterMessageInner, NetfilterProtoFamily)> =
            doomed.iter().map(|e| (delete_message(e), family)).collect();
        for (e, errno) in doomed.iter().zip(sock.each_acked(&msgs)?) {
            match errno {
                0 => deleted += 1,
                libc::ENOENT => {}
                errno => {
                    return Err(Failure::Kernel {
                        what: format!("delete a conntrack entry of {}", e.source),
                        errno,
                    })
                }
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn reads_the_original_source_and_keeps_tuple_and_zone() {
        let mut ip = attr(CTA_IP_V4_SRC, &[192, 0, 2, 7]);
        ip.extend(attr(2, &[192, 0, 2, 1]));
        let mut tuple = nested(CTA_TUPLE_IP, &ip);
        tuple.extend(nested(2, &attr(1, &[17])));
        // The reply tuple comes second and names the other side.
        let mut reply_ip = attr(CTA_IP_V4_SRC, &[192, 0, 2, 1]);
        reply_ip.extend(attr(2, &[192, 0, 2, 7]));
        let mut msg = nested(CTA_TUPLE_ORIG, &tuple);
        msg.extend(nested(2, &nested(CTA_TUPLE_IP, &reply_ip)));
        msg.extend(attr(CTA_ZONE, &5u16.to_be_bytes()));
        let e = entry(&msg).unwrap();
        assert_eq!(e.source, "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(e.tuple, tuple);
        assert_eq!(e.zone, Some(5u16.to_be_bytes().to_vec()));

        let v6 = attr(CTA_IP_V6_SRC, &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
        let msg = nested(CTA_TUPLE_ORIG, &nested(CTA_TUPLE_IP, &v6));
        let e = entry(&msg).unwrap();
        assert_eq!(e.source, "2001:db8::9".parse::<IpAddr>().unwrap());
        assert_eq!(e.zone, None);
        assert!(entry(&attr(CTA_ZONE, &[0, 1])).is_none(), "no tuple, no entry");
    }

    #[test]
    fn ranges_merge_and_find_addresses() {
        let nets: Vec<IpNet> = [
            "192.0.2.0/25",
            "192.0.2.128/25",
            "198.51.100.7/32",
            "10.0.0.0/8",
            "2001:db8::/64",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let v4 = Ranges::new(&nets, true);
        assert_eq!(v4.0.len(), 3, "the two /25s merge: {:?}", v4.0);
        for yes in ["192.0.2.0", "192.0.2.255", "198.51.100.7", "10.255.255.255"] {
            assert!(v4.contains(yes.parse().unwrap()), "{yes}");
        }
        for no in ["192.0.3.0", "198.51.100.6", "198.51.100.8", "9.255.255.255", "0.0.0.0"] {
            assert!(!v4.contains(no.parse().unwrap()), "{no}");
        }
        let v6 = Ranges::new(&nets, false);
        assert!(v6.contains("2001:db8::ffff".parse().unwrap()));
        assert!(!v6.contains("2001:db8:0:1::".parse().unwrap()));
        let all = Ranges::new(&["::/0".parse().unwrap()], false);
        assert!(all.contains("ffff::1".parse().unwrap()));
    }

    /// The sysctl's text is read from its start each time, so the file
    /// opened once follows the count; what is not a number is `None`
    /// (then the cleanup dumps as before).
    #[test]
    fn tracked_reads_the_count_again_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nf_conntrack_count");
        std::fs::write(&path, "0\n").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        assert_eq!(tracked(&file), Some(0));
        std::fs::write(&path, "1234\n").unwrap();
        assert_eq!(tracked(&file), Some(1234));
        std::fs::write(&path, "nonsense\n").unwrap();
        assert_eq!(tracked(&file), None);
    }
}
