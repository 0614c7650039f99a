//! The kernel's numbers and the netlink attribute format, in one place.
//!
//! netlink-packet-netfilter types most of what nftban sends, but the hot
//! paths (element messages written straight into bytes, dumps walked
//! without the crate's generic parser, events read by the monitor, ctnetlink
//! requests with attributes the crate has no type for) speak the wire
//! format themselves. They all take their numbers from here, so a number is
//! written down once, next to the header it comes from, and the few helpers
//! that read and write attributes exist once.
//!
//! The numbers are the Linux UAPI headers' (stable kernel ABI):
//! - `linux/netlink.h`: message header, flags, attribute header;
//! - `linux/netfilter/nfnetlink.h`: subsystems and multicast groups;
//! - `linux/netfilter.h`: protocol families (`NFPROTO_*`) and verdicts;
//! - `linux/netfilter/nf_tables.h`: message types (`NFT_MSG_*`) and
//!   attributes (`NFTA_*`, `NFT_*`);
//! - `linux/netfilter/nfnetlink_conntrack.h`: ctnetlink (`IPCTNL_MSG_*`,
//!   `CTA_*`);
//! - `linux/icmp.h`, `linux/icmpv6.h`: the port-unreachable codes;
//!
//! plus two set key types of the `nft` tool (`include/datatype.h` in
//! nftables): the kernel stores them without reading them, but `nft` needs
//! them to print a set's elements.
//!
//! Each kind of object has its own attribute enum in the kernel, and many of
//! them start at the same values (`NFTA_SET_NAME` and `NFTA_CHAIN_NAME` are
//! both 2): they stay separate constants here, named as in the header, so
//! each use says which enum it means.
//!
//! The daemon benchmark (`examples/daemon_bench`) reads nf_tables events
//! with the same numbers and walker: what it uses is public, the rest is
//! the crate's own.

use std::io;

// linux/netlink.h

/// Size of `struct nlmsghdr`.
pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
/// Set on dump answers when a concurrent change interrupted the dump.
pub(crate) const NLM_F_DUMP_INTR: u16 = 16;
/// Size of `struct nlattr`.
pub(crate) const NLA_HDRLEN: usize = 4;
/// Flag on the type of an attribute whose value is itself attributes.
pub(crate) const NLA_F_NESTED: u16 = 1 << 15;
/// The type bits of an attribute (without `NLA_F_NESTED` and
/// `NLA_F_NET_BYTEORDER`).
pub(crate) const NLA_TYPE_MASK: u16 = 0x3fff;

// linux/netfilter/nfnetlink.h

/// nf_tables' subsystem: the high byte of its message types, and the
/// `res_id` of batch messages.
pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// The multicast group of nf_tables events.
pub(crate) const NFNLGRP_NFTABLES: u32 = 7;

/// The full netlink message type of nf_tables message `msg` (`NFT_MSG_*`).
pub const fn nft_msg_type(msg: u8) -> u16 {
    NFNL_SUBSYS_NFTABLES << 8 | msg as u16
}

// linux/netfilter.h

/// `NFPROTO_*`: the family in the nfgenmsg header, and what `meta nfproto`
/// loads.
pub(crate) const NFPROTO_INET: u8 = 1;
pub(crate) const NFPROTO_IPV4: u8 = 2;
pub(crate) const NFPROTO_IPV6: u8 = 10;
pub(crate) const NF_DROP: u32 = 0;
pub(crate) const NF_ACCEPT: u32 = 1;

// linux/netfilter/nf_tables.h: message types (`enum nf_tables_msg_types`)

pub(crate) const NFT_MSG_DELTABLE: u8 = 2;
pub(crate) const NFT_MSG_DELCHAIN: u8 = 5;
pub(crate) const NFT_MSG_DELRULE: u8 = 8;
pub(crate) const NFT_MSG_DELSET: u8 = 11;
pub const NFT_MSG_NEWSETELEM: u8 = 12;
pub(crate) const NFT_MSG_DELSETELEM: u8 = 14;
pub(crate) const NFT_MSG_NEWGEN: u8 = 15;
pub(crate) const NFT_MSG_GETGEN: u8 = 16;
pub(crate) const NFT_MSG_DESTROYTABLE: u8 = 26;
pub(crate) const NFT_MSG_DESTROYCHAIN: u8 = 27;
pub(crate) const NFT_MSG_DESTROYRULE: u8 = 28;
pub(crate) const NFT_MSG_DESTROYSET: u8 = 29;
pub(crate) const NFT_MSG_DESTROYSETELEM: u8 = 30;

// linux/netfilter/nf_tables.h: attributes, one enum per object

/// `enum nft_table_attributes`.
pub(crate) const NFTA_TABLE_NAME: u16 = 1;
/// `enum nft_chain_attributes`.
pub(crate) const NFTA_CHAIN_TABLE: u16 = 1;
pub(crate) const NFTA_CHAIN_NAME: u16 = 3;
pub(crate) const NFTA_CHAIN_HOOK: u16 = 4;
pub(crate) const NFTA_CHAIN_TYPE: u16 = 7;
/// `enum nft_hook_attributes`.
pub(crate) const NFTA_HOOK_HOOKNUM: u16 = 1;
pub(crate) const NFTA_HOOK_PRIORITY: u16 = 2;
/// `enum nft_rule_attributes`.
pub(crate) const NFTA_RULE_TABLE: u16 = 1;
pub(crate) const NFTA_RULE_CHAIN: u16 = 2;
pub(crate) const NFTA_RULE_EXPRESSIONS: u16 = 4;
/// `enum nft_list_attributes`: each item of a list (elements, expressions).
pub const NFTA_LIST_ELEM: u16 = 1;
/// `enum nft_expr_attributes`.
pub(crate) const NFTA_EXPR_NAME: u16 = 1;
pub(crate) const NFTA_EXPR_DATA: u16 = 2;
/// `enum nft_lookup_attributes`.
pub(crate) const NFTA_LOOKUP_SET: u16 = 1;
/// `enum nft_counter_attributes`.
pub(crate) const NFTA_COUNTER_BYTES: u16 = 1;
pub(crate) const NFTA_COUNTER_PACKETS: u16 = 2;
/// `enum nft_reject_attributes` and `enum nft_reject_types`.
pub(crate) const NFTA_REJECT_TYPE: u16 = 1;
pub(crate) const NFTA_REJECT_ICMP_CODE: u16 = 2;
pub(crate) const NFT_REJECT_ICMP_UNREACH: u32 = 0;
/// `enum nft_payload_bases`.
pub(crate) const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
pub(crate) const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
/// `enum nft_dynset_attributes` and `enum nft_dynset_ops`.
pub(crate) const NFTA_DYNSET_SET_NAME: u16 = 1;
pub(crate) const NFTA_DYNSET_OP: u16 = 3;
pub(crate) const NFTA_DYNSET_SREG_KEY: u16 = 4;
pub(crate) const NFTA_DYNSET_TIMEOUT: u16 = 6;
pub(crate) const NFTA_DYNSET_EXPR: u16 = 7;
pub(crate) const NFT_DYNSET_OP_ADD: u32 = 0;
pub(crate) const NFT_DYNSET_OP_UPDATE: u32 = 1;
/// `enum nft_limit_attributes`, `enum nft_limit_type`, `enum nft_limit_flags`.
pub(crate) const NFTA_LIMIT_RATE: u16 = 1;
pub(crate) const NFTA_LIMIT_UNIT: u16 = 2;
pub(crate) const NFTA_LIMIT_BURST: u16 = 3;
pub(crate) const NFTA_LIMIT_TYPE: u16 = 4;
pub(crate) const NFTA_LIMIT_FLAGS: u16 = 5;
pub(crate) const NFT_LIMIT_PKTS: u32 = 0;
/// `limit rate over`: the expression matches once the rate is exceeded.
pub(crate) const NFT_LIMIT_F_INV: u32 = 1;
/// `enum nft_registers`: the 16-byte register 1 (what `nft` uses).
pub(crate) const NFT_REG_1: u32 = 1;
/// `enum nft_set_desc_attributes`, nested in `NFTA_SET_DESC`.
pub(crate) const NFTA_SET_DESC: u16 = 9;
pub(crate) const NFTA_SET_DESC_SIZE: u16 = 1;
/// `enum nft_set_attributes`.
pub(crate) const NFTA_SET_TABLE: u16 = 1;
pub(crate) const NFTA_SET_NAME: u16 = 2;
pub(crate) const NFTA_SET_FLAGS: u16 = 3;
pub(crate) const NFTA_SET_KEY_TYPE: u16 = 4;
pub(crate) const NFTA_SET_KEY_LEN: u16 = 5;
/// `enum nft_set_flags`: a set owned by a rule, never nftban's to delete.
pub(crate) const NFT_SET_ANONYMOUS: u32 = 1;
/// `enum nft_set_elem_list_attributes`.
pub const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
/// `enum nft_set_elem_attributes`.
pub const NFTA_SET_ELEM_KEY: u16 = 1;
pub const NFTA_SET_ELEM_FLAGS: u16 = 3;
pub(crate) const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
pub(crate) const NFTA_SET_ELEM_EXPIRATION: u16 = 5;
/// `enum nft_set_elem_flags`: the element ends an interval.
pub const NFT_SET_ELEM_INTERVAL_END: u32 = 1;
/// `enum nft_data_attributes`.
pub const NFTA_DATA_VALUE: u16 = 1;
/// `enum nft_gen_attributes`: who made the transaction a NEWGEN ends.
pub(crate) const NFTA_GEN_PROC_PID: u16 = 2;
pub(crate) const NFTA_GEN_PROC_NAME: u16 = 3;

// linux/in.h: transport protocol numbers (what `meta l4proto` loads).

pub(crate) const IPPROTO_TCP: u8 = 6;
pub(crate) const IPPROTO_UDP: u8 = 17;

// linux/tcp.h: TCP header flags (byte 13 of the header).

pub(crate) const TCP_SYN: u8 = 0x02;
pub(crate) const TCP_PSH: u8 = 0x08;

// linux/netfilter/nfnetlink_conntrack.h

/// `enum cntl_msg_types`.
pub(crate) const IPCTNL_MSG_CT_GET: u8 = 1;
pub(crate) const IPCTNL_MSG_CT_DELETE: u8 = 2;
/// `enum ctattr_type`.
pub(crate) const CTA_TUPLE_ORIG: u16 = 1;
pub(crate) const CTA_ZONE: u16 = 18;
pub(crate) const CTA_FILTER: u16 = 25;
/// `enum ctattr_tuple`.
pub(crate) const CTA_TUPLE_IP: u16 = 1;
/// `enum ctattr_ip`.
pub(crate) const CTA_IP_V4_SRC: u16 = 1;
pub(crate) const CTA_IP_V6_SRC: u16 = 3;
/// `enum ctattr_filter` and its flag for the original source address.
pub(crate) const CTA_FILTER_ORIG_FLAGS: u16 = 1;
pub(crate) const CTA_FILTER_REPLY_FLAGS: u16 = 2;
pub(crate) const CTA_FILTER_FLAG_CTA_IP_SRC: u32 = 1;

// linux/icmp.h, linux/icmpv6.h: what plain `reject` sends once the rule
// has matched the network protocol.

pub(crate) const ICMP_PORT_UNREACH: u8 = 3;
pub(crate) const ICMPV6_PORT_UNREACH: u8 = 4;

// nftables (user space), include/datatype.h: set key types.

pub(crate) const TYPE_IPADDR: u32 = 7;
pub(crate) const TYPE_IP6ADDR: u32 = 8;

/// `n` rounded up to netlink's 4-byte alignment.
pub(crate) const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One netlink message inside a datagram.
#[derive(Debug, Clone, Copy)]
pub struct Msg<'a> {
    /// `nlmsg_type`: for nf_tables, [`nft_msg_type`].
    pub kind: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
    /// What follows the netlink header (for nfnetlink: the nfgenmsg, then
    /// the attributes).
    pub payload: &'a [u8],
}

impl Msg<'_> {
    /// For NLMSG_ERROR: the positive errno, 0 for an ack.
    pub(crate) fn errno(&self) -> Option<i32> {
        let code = i32::from_ne_bytes(self.payload.get(..4)?.try_into().ok()?);
        Some(-code)
    }
}

/// The netlink messages of one datagram; a malformed length ends the walk
/// with an error.
pub fn messages(mut buf: &[u8]) -> impl Iterator<Item = io::Result<Msg<'_>>> {
    std::iter::from_fn(move || {
        if buf.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            buf = &[];
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed netlink message",
            )));
        }
        let m = Msg {
            kind: u16::from_ne_bytes(buf[4..6].try_into().unwrap()),
            flags: u16::from_ne_bytes(buf[6..8].try_into().unwrap()),
            seq: u32::from_ne_bytes(buf[8..12].try_into().unwrap()),
            payload: &buf[NLMSG_HDRLEN..len],
        };
        buf = &buf[align4(len).min(buf.len())..];
        Some(Ok(m))
    })
}

/// The attributes (type without flag bits, value) of a netlink payload; a
/// malformed length ends the walk.
pub fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < NLA_HDRLEN {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > buf.len() {
            buf = &[];
            return None;
        }
        let value = &buf[NLA_HDRLEN..len];
        buf = &buf[align4(len).min(buf.len())..];
        Some((kind, value))
    })
}

/// A NUL-terminated string attribute's text (up to the first NUL).
pub fn c_string(v: &[u8]) -> String {
    String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or_default()).into_owned()
}

/// A big-endian u32 attribute (netfilter sends numbers in network order).
pub fn be_u32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

/// A big-endian u64 attribute.
pub(crate) fn be_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

/// Append an attribute header: `len` covers the header and the value
/// (without padding).
pub(crate) fn put_header(buf: &mut Vec<u8>, len: usize, kind: u16) {
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
}

/// Append a whole attribute, padded to 4 bytes.
pub(crate) fn put_attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    put_header(buf, NLA_HDRLEN + value.len(), kind);
    buf.extend_from_slice(value);
    buf.resize(align4(buf.len()), 0);
}

/// Append a NUL-terminated string attribute, padded to 4 bytes.
pub(crate) fn put_string(buf: &mut Vec<u8>, kind: u16, s: &str) {
    put_header(buf, NLA_HDRLEN + s.len() + 1, kind);
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
    buf.resize(align4(buf.len()), 0);
}

/// One attribute: length, type, value, padded to 4 bytes.
pub fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(NLA_HDRLEN + align4(value.len()));
    put_attr(&mut v, kind, value);
    v
}

/// A nested attribute (its value is attributes): [`attr`] with
/// `NLA_F_NESTED`, which the kernel's strict parsers (ctnetlink's
/// CTA_FILTER, for one) insist on.
pub fn nested(kind: u16, value: &[u8]) -> Vec<u8> {
    attr(kind | NLA_F_NESTED, value)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn attributes_round_trip_with_padding_and_flags() {
        let mut buf = attr(NFTA_SET_NAME, b"sshd_v4\0");
        assert_eq!(buf.len(), 12, "4 + 8, already aligned");
        put_string(&mut buf, NFTA_SET_TABLE, "nftban");
        assert_eq!(buf.len(), 24, "4 + 7 padded to 12");
        buf.extend(nested(NFTA_SET_ELEM_KEY, &attr(NFTA_DATA_VALUE, &[192, 0, 2, 1])));
        let got: Vec<(u16, Vec<u8>)> = attrs(&buf).map(|(k, v)| (k, v.to_vec())).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(c_string(&got[0].1), "sshd_v4");
        assert_eq!((got[1].0, c_string(&got[1].1)), (NFTA_SET_TABLE, "nftban".into()));
        assert_eq!(got[2].0, NFTA_SET_ELEM_KEY, "the nested flag is masked off");
        let inner: Vec<_> = attrs(&got[2].1).collect();
        assert_eq!(inner, [(NFTA_DATA_VALUE, &[192u8, 0, 2, 1][..])]);
        // A length past the end stops the walk.
        assert_eq!(attrs(&[200, 0, 1, 0, 0, 0]).count(), 0);
        assert_eq!(be_u32(&7u32.to_be_bytes()), Some(7));
        assert_eq!(be_u32(&[1, 2]), None);
        assert_eq!(nft_msg_type(NFT_MSG_NEWSETELEM), 0x0a0c);
    }
}
