//! The set element requests: NEWSETELEM and DELSETELEM messages for
//! batches of bans, written straight into the message bytes, and the
//! GETSETELEM requests that read elements back. Like the builders in
//! `messages.rs`, each says in words what it does, so a kernel error names
//! the request that failed.

use ipnet::IpNet;
use netlink_packet_core::NLM_F_CREATE;
use netlink_packet_netfilter::nftables::{
    DataAttribute, ListAttribute, NfTablesMessage, SetElementAttribute, SetElementList, SetElementMessage,
};

use super::abi::{
    align4, nft_msg_type, put_header, put_string, NFPROTO_INET, NFTA_DATA_VALUE, NFTA_LIST_ELEM, NFTA_SET_ELEM_FLAGS,
    NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_LIST_ELEMENTS, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_TABLE,
    NFTA_SET_ELEM_TIMEOUT, NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM, NFT_SET_ELEM_INTERVAL_END, NLA_F_NESTED, NLA_HDRLEN,
};
use super::messages::describe_table;
use super::socket::Op;

/// The element list of one message is a nested attribute with a 16-bit
/// length: stay well below 64 KiB (about 1,100 IPv4 or 800 IPv6 prefixes).
const MAX_ELEMENTS_BYTES: usize = 60_000;

/// Longest timeout the kernel takes (it converts milliseconds to
/// nanoseconds in a u64 and refuses larger values with ERANGE).
const MAX_TIMEOUT_MS: u64 = u64::MAX / 1_000_000 - 1;

/// The two keys of a prefix in an interval set: its first address, and
/// the address after its last one, which ends the interval. A prefix that
/// reaches the top of the address space (255.255.255.255/32, ::/0,
/// ffff::/16) has no such address: like nft, send the start alone, which
/// the kernel reads as an interval open to the top.
pub(super) fn interval_keys(net: &IpNet) -> (Vec<u8>, Option<Vec<u8>>) {
    match net.trunc() {
        IpNet::V4(n) => {
            let end = u32::from(n.broadcast()).checked_add(1);
            (n.network().octets().to_vec(), end.map(|e| e.to_be_bytes().to_vec()))
        }
        IpNet::V6(n) => {
            let end = u128::from(n.broadcast()).checked_add(1);
            (n.network().octets().to_vec(), end.map(|e| e.to_be_bytes().to_vec()))
        }
    }
}

/// Whether [`element_ops`] adds or deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    Add,
    Delete,
    /// Add without a timeout, for a set that has none (the SIP meter's
    /// trusted sources).
    Insert,
}

/// Milliseconds for an element timeout: at least 1 (0 would mean "never
/// expires"), at most what the kernel accepts.
pub(super) fn timeout_ms(d: std::time::Duration) -> u64 {
    (d.as_millis().min(MAX_TIMEOUT_MS as u128) as u64).max(1)
}

/// NEWSETELEM or DELSETELEM messages for `items` (prefix, timeout in ms),
/// as many elements per message as fit. In a hash set (`interval` false)
/// each item is one element, its address. In an interval set each prefix
/// is a start element (with its timeout when adding) and, unless it
/// reaches the top of the address space, an end element flagged
/// INTERVAL_END that never carries a timeout (the kernel refuses one with
/// EINVAL).
///
/// Written straight into the message bytes rather than through
/// netlink-packet-netfilter's typed attributes: those cost several
/// allocations per element and recompute nested lengths at every level,
/// which showed in the time a restore takes (docs/performance.md, section
/// "Branch `issue5-cpu`"). The bytes are the same (a test compares them
/// with the typed encoder's).
pub(super) fn element_ops(table: &str, set: &str, interval: bool, change: Change, items: &[(IpNet, u64)]) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut msg = ElementMessage::new(table, set, change);
    for (net, ms) in items {
        let (start, end) = interval_keys_raw(net);
        let timeout = (change == Change::Add).then_some(*ms);
        let end = end.filter(|_| interval);
        let pair_size =
            element_len(start.len(), timeout.is_some(), false) + end.map_or(0, |e| element_len(e.len(), false, true));
        if msg.elements_len() + pair_size > MAX_ELEMENTS_BYTES && msg.count > 0 {
            ops.push(std::mem::replace(&mut msg, ElementMessage::new(table, set, change)).finish());
        }
        msg.element(start.as_slice(), timeout, false);
        if let Some(end) = end {
            msg.element(end.as_slice(), None, true);
        }
        msg.count += 1;
    }
    if msg.count > 0 {
        ops.push(msg.finish());
    }
    ops
}

/// `interval_keys` without allocating: the start key and the optional end
/// key, each as up to 16 bytes.
fn interval_keys_raw(net: &IpNet) -> (Key, Option<Key>) {
    match net.trunc() {
        IpNet::V4(n) => {
            let end = u32::from(n.broadcast()).checked_add(1);
            (Key::new(&n.network().octets()), end.map(|e| Key::new(&e.to_be_bytes())))
        }
        IpNet::V6(n) => {
            let end = u128::from(n.broadcast()).checked_add(1);
            (Key::new(&n.network().octets()), end.map(|e| Key::new(&e.to_be_bytes())))
        }
    }
}

/// A set key of 4 or 16 bytes, on the stack.
#[derive(Clone, Copy)]
struct Key {
    bytes: [u8; 16],
    len: usize,
}

impl Key {
    fn new(b: &[u8]) -> Key {
        let mut bytes = [0; 16];
        bytes[..b.len()].copy_from_slice(b);
        Key { bytes, len: b.len() }
    }
    fn len(&self) -> usize {
        self.len
    }
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Bytes of one `NFTA_LIST_ELEM` with a key of `key_len` bytes, and a
/// timeout and/or the interval-end flag.
fn element_len(key_len: usize, timeout: bool, end: bool) -> usize {
    let key = NLA_HDRLEN + NLA_HDRLEN + align4(key_len);
    NLA_HDRLEN + key + if timeout { NLA_HDRLEN + 8 } else { 0 } + if end { NLA_HDRLEN + 4 } else { 0 }
}

/// One NEWSETELEM/DELSETELEM message being written.
struct ElementMessage {
    buf: Vec<u8>,
    /// Where the `NFTA_SET_ELEM_LIST_ELEMENTS` attribute starts.
    list: usize,
    count: usize,
    change: Change,
    set: String,
    table: String,
}

impl ElementMessage {
    fn new(table: &str, set: &str, change: Change) -> ElementMessage {
        let kind = match change {
            Change::Add | Change::Insert => NFT_MSG_NEWSETELEM,
            Change::Delete => NFT_MSG_DELSETELEM,
        };
        let flags = netlink_packet_core::NLM_F_REQUEST
            | match change {
                Change::Add | Change::Insert => NLM_F_CREATE,
                Change::Delete => 0,
            };
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set in `finish`
        buf.extend_from_slice(&nft_msg_type(kind).to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence, set per batch
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id
        buf.extend_from_slice(&[NFPROTO_INET, 0, 0, 0]); // nfgenmsg: family, version, res_id
        put_string(&mut buf, NFTA_SET_ELEM_LIST_TABLE, table);
        put_string(&mut buf, NFTA_SET_ELEM_LIST_SET, set);
        let list = buf.len();
        put_header(&mut buf, 0, NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED);
        ElementMessage {
            buf,
            list,
            count: 0,
            change,
            set: set.to_string(),
            table: table.to_string(),
        }
    }

    fn elements_len(&self) -> usize {
        self.buf.len() - self.list - NLA_HDRLEN
    }

    fn element(&mut self, key: &[u8], timeout: Option<u64>, end: bool) {
        let b = &mut self.buf;
        put_header(
            b,
            element_len(key.len(), timeout.is_some(), end),
            NFTA_LIST_ELEM | NLA_F_NESTED,
        );
        put_header(b, NLA_HDRLEN + NLA_HDRLEN + key.len(), NFTA_SET_ELEM_KEY | NLA_F_NESTED);
        put_header(b, NLA_HDRLEN + key.len(), NFTA_DATA_VALUE);
        b.extend_from_slice(key);
        b.resize(align4(b.len()), 0);
        if let Some(ms) = timeout {
            put_header(b, NLA_HDRLEN + 8, NFTA_SET_ELEM_TIMEOUT);
            b.extend_from_slice(&ms.to_be_bytes());
        }
        if end {
            put_header(b, NLA_HDRLEN + 4, NFTA_SET_ELEM_FLAGS);
            b.extend_from_slice(&NFT_SET_ELEM_INTERVAL_END.to_be_bytes());
        }
    }

    fn finish(mut self) -> Op {
        let list_len = self.buf.len() - self.list;
        self.buf[self.list..self.list + 2].copy_from_slice(&(list_len as u16).to_ne_bytes());
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        let (count, set) = (self.count, &self.set);
        let s = if count == 1 { "" } else { "s" };
        let table = describe_table(&self.table);
        let what = match self.change {
            Change::Add | Change::Insert => format!("add {count} element{s} to set {set} in {table}"),
            Change::Delete => format!("delete {count} element{s} from set {set} in {table}"),
        };
        Op::raw(self.buf, what)
    }
}

/// GETSETELEM dump request for one set.
pub(super) fn get_elements(table: &str, set: &str) -> NfTablesMessage {
    NfTablesMessage::GetSetElement(SetElementMessage {
        attributes: vec![SetElementList::Table(table.into()), SetElementList::Set(set.into())],
    })
}

/// GETSETELEM request (not a dump) for the one element with key `key`:
/// answered with the element, or ENOENT.
pub(super) fn get_element(table: &str, set: &str, key: Vec<u8>) -> NfTablesMessage {
    NfTablesMessage::GetSetElement(SetElementMessage {
        attributes: vec![
            SetElementList::Table(table.into()),
            SetElementList::Set(set.into()),
            SetElementList::Elements(vec![ListAttribute::Element(vec![SetElementAttribute::Key(
                DataAttribute::Value(key),
            )])]),
        ],
    })
}

#[cfg(test)]
mod unit {
    use std::time::Duration;

    use super::*;
    use netlink_packet_netfilter::nftables::SetElementFlags;

    fn keys(net: &str) -> (Vec<u8>, Option<Vec<u8>>) {
        interval_keys(&net.parse().unwrap())
    }

    #[test]
    fn interval_ends_one_past_the_prefix_and_none_at_the_top() {
        assert_eq!(keys("10.0.0.0/8"), (vec![10, 0, 0, 0], Some(vec![11, 0, 0, 0])));
        assert_eq!(keys("192.0.2.1/32"), (vec![192, 0, 2, 1], Some(vec![192, 0, 2, 2])));
        assert_eq!(keys("10.1.2.3/8").0, vec![10, 0, 0, 0], "host bits are dropped");
        assert_eq!(keys("255.255.255.255/32"), (vec![255; 4], None));
        assert_eq!(keys("0.0.0.0/0"), (vec![0; 4], None));
        assert_eq!(keys("::/0"), (vec![0; 16], None));
        assert_eq!(keys("ffff::/16").1, None);
        let mut two = vec![0; 16];
        two[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        two[15] = 2;
        assert_eq!(keys("2001:db8::1/128").1, Some(two));
    }

    #[test]
    fn timeouts_are_milliseconds_never_zero() {
        assert_eq!(timeout_ms(Duration::from_secs(60)), 60_000);
        assert_eq!(timeout_ms(Duration::ZERO), 1);
        assert_eq!(timeout_ms(Duration::from_micros(10)), 1);
        assert_eq!(timeout_ms(Duration::MAX), MAX_TIMEOUT_MS);
    }

    #[test]
    fn element_lists_stay_under_64_kib() {
        let items: Vec<(IpNet, u64)> = (0..3000u128)
            .map(|i| (IpNet::new(std::net::Ipv6Addr::from(i << 64).into(), 64).unwrap(), 1000))
            .collect();
        let ops = element_ops("nftban", "sshd_v6_net", true, Change::Add, &items);
        assert!(ops.len() >= 3, "{} messages", ops.len());
        let mut total = 0;
        for op in &ops {
            // netlink header 16 + nfgenmsg 4 + table and set names 24 +
            // the element list, whose own length field is 16 bits.
            assert!(op.len() < 65_535 + 64, "{} bytes", op.len());
            total += op.what.split(' ').nth(1).unwrap().parse::<usize>().unwrap();
        }
        assert_eq!(total, 3000);
        assert!(
            ops[0].what.starts_with("add ")
                && ops[0]
                    .what
                    .ends_with(" elements to set sshd_v6_net in table inet nftban")
        );
        let del = element_ops("nftban", "sshd_v6_net", true, Change::Delete, &items[..1]);
        assert_eq!(
            del[0].what,
            "delete 1 element from set sshd_v6_net in table inet nftban"
        );
        // A hash set gets one element per address, an interval set two.
        let host = [("192.0.2.1/32".parse().unwrap(), 1000)];
        let hash = element_ops("nftban", "sshd_v4", false, Change::Add, &host);
        let interval = element_ops("nftban", "sshd_v4_net", true, Change::Add, &host);
        assert!(
            hash[0].len() < interval[0].len(),
            "{} vs {}",
            hash[0].len(),
            interval[0].len()
        );
    }
    /// The typed encoder `element_ops` replaced, kept to check its bytes.
    fn element_ops_typed(table: &str, set: &str, interval: bool, change: Change, items: &[(IpNet, u64)]) -> Vec<Op> {
        let mut ops = Vec::new();
        let mut elements: Vec<ListAttribute<SetElementAttribute>> = Vec::new();
        let mut size = 0;
        let mut count = 0;
        for (net, ms) in items {
            let (start, end) = interval_keys(net);
            let mut pair = Vec::with_capacity(2);
            let mut first = vec![SetElementAttribute::Key(DataAttribute::Value(start))];
            if change == Change::Add {
                first.push(SetElementAttribute::Timeout(*ms));
            }
            pair.push(ListAttribute::Element(first));
            if let Some(end) = end.filter(|_| interval) {
                pair.push(ListAttribute::Element(vec![
                    SetElementAttribute::Key(DataAttribute::Value(end)),
                    SetElementAttribute::Flags(SetElementFlags::IntervalEnd),
                ]));
            }
            let pair_size: usize = pair.iter().map(netlink_packet_core::Emitable::buffer_len).sum();
            if size + pair_size > MAX_ELEMENTS_BYTES && !elements.is_empty() {
                ops.push(element_op(table, set, change, std::mem::take(&mut elements), count));
                size = 0;
                count = 0;
            }
            size += pair_size;
            count += 1;
            elements.extend(pair);
        }
        if !elements.is_empty() {
            ops.push(element_op(table, set, change, elements, count));
        }
        ops
    }

    fn element_op(
        table: &str,
        set: &str,
        change: Change,
        elements: Vec<ListAttribute<SetElementAttribute>>,
        count: usize,
    ) -> Op {
        let body = SetElementMessage {
            attributes: vec![
                SetElementList::Table(table.into()),
                SetElementList::Set(set.into()),
                SetElementList::Elements(elements),
            ],
        };
        let s = if count == 1 { "" } else { "s" };
        let table = describe_table(table);
        match change {
            Change::Add | Change::Insert => Op::new(
                NfTablesMessage::NewSetElement(body),
                NLM_F_CREATE,
                format!("add {count} element{s} to set {set} in {table}"),
            ),
            Change::Delete => Op::new(
                NfTablesMessage::DeleteSetElement(body),
                0,
                format!("delete {count} element{s} from set {set} in {table}"),
            ),
        }
    }

    #[test]
    fn element_messages_are_byte_for_byte_the_typed_encoders() {
        let v4: Vec<(IpNet, u64)> = [
            "192.0.2.1/32",
            "10.0.0.0/8",
            "255.255.255.255/32",
            "0.0.0.0/0",
            "198.51.100.0/24",
        ]
        .iter()
        .enumerate()
        .map(|(i, s)| (s.parse().unwrap(), 1000 + i as u64 * 7_777_777))
        .collect();
        let v6: Vec<(IpNet, u64)> = ["2001:db8::1/128", "2001:db8::/32", "::/0", "ffff::/16", "fe80::/10"]
            .iter()
            .map(|s| (s.parse().unwrap(), u64::MAX / 1_000_000 - 1))
            .collect();
        // Enough to need several messages, to check where they split.
        let many: Vec<(IpNet, u64)> = (0..5000u128)
            .map(|i| {
                (
                    IpNet::new(std::net::Ipv6Addr::from(i << 64).into(), 64).unwrap(),
                    i as u64 + 1,
                )
            })
            .collect();
        let many4: Vec<(IpNet, u64)> = (0..5000u32)
            .map(|i| {
                (
                    IpNet::new(std::net::Ipv4Addr::from(0x6440_0000 + i).into(), 32).unwrap(),
                    3_600_000,
                )
            })
            .collect();
        for items in [&v4[..], &v6[..], &many[..], &many4[..], &v4[..1]] {
            for interval in [false, true] {
                for change in [Change::Add, Change::Delete] {
                    let fast = element_ops("nftban", "asterisk_v4", interval, change, items);
                    let typed = element_ops_typed("nftban", "asterisk_v4", interval, change, items);
                    assert_eq!(fast.len(), typed.len(), "{interval} {change:?}");
                    for (a, b) in fast.iter().zip(&typed) {
                        assert_eq!(a.what, b.what);
                        assert!(a.bytes() == b.bytes(), "{interval} {change:?} {}", a.what);
                    }
                }
            }
        }
    }
}
