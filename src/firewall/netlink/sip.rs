//! The requests that build the kernel meter for SIP floods (see
//! [`crate::firewall::sip`]): its chain, its six sets, the trusted
//! sources, and its rules, each one what `nft` emits for the text
//! [`crate::firewall::render_ruleset`] prints (checked against a real
//! kernel in `netlink::tests`).

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, Hook as ChainHook, InetHookNumber, MetaKey, NfTablesMessage, RuleAttribute,
    RuleMessage, SetAttribute, SetDescription, SetElementList, SetElementMessage, SetFlags, SetMessage,
};

use super::abi::{
    IPPROTO_TCP, IPPROTO_UDP, NFPROTO_IPV4, NFPROTO_IPV6, NFT_PAYLOAD_NETWORK_HEADER, NFT_PAYLOAD_TRANSPORT_HEADER,
    NF_ACCEPT, NF_DROP, TCP_PSH, TCP_SYN,
};
use super::elements::{element_ops, timeout_ms, Change};
use super::expr::{self, DynsetOp, Expr, Stateful};
use super::messages::{describe_table, key_type};
use super::socket::Op;
use crate::firewall::sip::{sip_set_name, SipSet, SipSetKind, SipSpec, Transport, SIP_CHAIN};
use crate::firewall::{Family, Hook, PrefixSets};

/// The chain of the meter: prerouting at raw priority, before conntrack.
pub(super) fn new_chain(table: &str) -> Op {
    let msg = NfTablesMessage::NewChain(ChainMessage {
        attributes: vec![
            ChainAttribute::Table(table.into()),
            ChainAttribute::Name(SIP_CHAIN.into()),
            ChainAttribute::Hook(vec![
                ChainHook::Number(InetHookNumber::PreRouting.into()),
                ChainHook::Priority(Hook::Prerouting.priority() as u32),
            ]),
            ChainAttribute::Policy(NF_ACCEPT),
            ChainAttribute::Type("filter".into()),
        ],
    });
    Op::new(
        msg,
        NLM_F_CREATE,
        format!("create chain {SIP_CHAIN} in {}", describe_table(table)),
    )
}

/// The flags of a meter set: the trusted sources are an interval set
/// without timeouts; the meter and the caught sources are sets the packet
/// path adds to (`dynamic`), whose elements expire.
pub(super) fn set_flags(kind: SipSetKind) -> SetFlags {
    match kind {
        SipSetKind::Trusted => SetFlags::Interval,
        SipSetKind::Meter | SipSetKind::Caught => SetFlags::Eval | SetFlags::Timeout,
    }
}

/// The `size` of a meter set, `None` for the trusted sets (they hold what
/// the config says, no more).
pub(super) fn set_size(spec: &SipSpec, kind: SipSetKind) -> Option<u32> {
    (kind != SipSetKind::Trusted).then_some(spec.size)
}

/// Create one of the meter's sets unless it exists. Dynamic sets get an
/// explicit size: without one the kernel gives 65,535 slots and, once
/// they are full, the meter silently stops matching new sources.
pub(super) fn new_set(table: &str, spec: &SipSpec, set: &SipSet, id: u32) -> Op {
    let (key_type, key_len) = key_type(set.family);
    let mut attributes = vec![
        SetAttribute::Table(table.into()),
        SetAttribute::Name(set.name.clone()),
        SetAttribute::Flags(set_flags(set.kind)),
        SetAttribute::KeyType(key_type),
        SetAttribute::KeyLen(key_len),
        SetAttribute::Id(id),
    ];
    if let Some(size) = set_size(spec, set.kind) {
        attributes.push(SetAttribute::Description(vec![SetDescription::Size(size)]));
    }
    Op::new(
        NfTablesMessage::NewSet(SetMessage { attributes }),
        NLM_F_CREATE,
        format!("create set {} in {}", set.name, describe_table(table)),
    )
}

/// Remove every element of a set (DELSETELEM without an element list).
fn flush_set(table: &str, set: &str) -> Op {
    let msg = NfTablesMessage::DeleteSetElement(SetElementMessage {
        attributes: vec![SetElementList::Table(table.into()), SetElementList::Set(set.into())],
    });
    Op::new(msg, 0, format!("flush set {set} in {}", describe_table(table)))
}

/// The trusted sets filled anew with the config's sources.
pub(super) fn trusted_ops(table: &str, spec: &SipSpec) -> Vec<Op> {
    let mut ops = Vec::new();
    for family in [Family::V4, Family::V6] {
        let set = sip_set_name(SipSetKind::Trusted, family);
        ops.push(flush_set(table, &set));
        let items: Vec<(IpNet, u64)> = spec.trusted_of(family).into_iter().map(|n| (n, 0)).collect();
        ops.extend(element_ops(table, &set, true, Change::Insert, &items));
    }
    ops
}

/// How many rules the chain has: the trusted sources and the caught ones
/// per family, the jail's sets, then one meter rule per port and family.
pub(super) fn rule_count(spec: &SipSpec, prefix_sets: PrefixSets) -> usize {
    2 + prefix_sets.jail_sets(&spec.jail).len() + 2 + 2 * spec.ports().len()
}

/// `meta nfproto`, then the source address of `family` into register 1,
/// masked to the meter's IPv6 prefix if `masked`.
fn source(spec: &SipSpec, family: Family, masked: bool) -> Vec<Expr> {
    let (nfproto, offset, len) = match family {
        Family::V4 => (NFPROTO_IPV4, 12, 4),
        Family::V6 => (NFPROTO_IPV6, 8, 16),
    };
    let mut out = vec![expr::meta(MetaKey::Nfproto), expr::cmp_eq(&[nfproto])];
    out.extend(load_source(spec, family, masked, offset, len));
    out
}

/// The source address into register 1 (masked for IPv6 when asked).
fn load_source(spec: &SipSpec, family: Family, masked: bool, offset: u32, len: u32) -> Vec<Expr> {
    let mut out = vec![expr::payload(NFT_PAYLOAD_NETWORK_HEADER, offset, len)];
    if family == Family::V6 && masked {
        if let Some(m) = spec.v6_mask() {
            out.push(expr::mask(&m));
        }
    }
    out
}

/// Every rule of the chain, in order (see the module doc of
/// [`crate::firewall::sip`]).
pub(super) fn rules(table: &str, spec: &SipSpec, prefix_sets: PrefixSets) -> Vec<Op> {
    let mut rules: Vec<(String, Vec<Expr>)> = Vec::new();
    for family in [Family::V4, Family::V6] {
        let set = sip_set_name(SipSetKind::Trusted, family);
        let mut e = source(spec, family, false);
        e.extend([expr::lookup(&set), expr::verdict(NF_ACCEPT)]);
        rules.push((format!("accept set {set}"), e));
    }
    for d in prefix_sets.jail_sets(&spec.jail) {
        let mut e = source(spec, d.family, false);
        if let Some(mask) = d.mask() {
            e.push(expr::mask(&mask));
        }
        e.extend([expr::lookup(&d.name), expr::counter(), expr::verdict(NF_DROP)]);
        rules.push((format!("drop set {}", d.name), e));
    }
    for family in [Family::V4, Family::V6] {
        let set = sip_set_name(SipSetKind::Caught, family);
        let mut e = source(spec, family, true);
        e.extend([expr::lookup(&set), expr::counter(), expr::verdict(NF_DROP)]);
        rules.push((format!("drop set {set}"), e));
    }
    let limit = Stateful::LimitOver {
        rate: u64::from(spec.rate.count),
        unit_secs: spec.rate.unit.secs(),
        burst: spec.burst,
    };
    for family in [Family::V4, Family::V6] {
        let (offset, len) = match family {
            Family::V4 => (12, 4),
            Family::V6 => (8, 16),
        };
        let meter = sip_set_name(SipSetKind::Meter, family);
        let caught = sip_set_name(SipSetKind::Caught, family);
        for (transport, port) in spec.ports() {
            let mut e = match transport {
                Transport::Udp => vec![expr::meta(MetaKey::L4Proto), expr::cmp_eq(&[IPPROTO_UDP])],
                Transport::Tcp => vec![expr::meta(MetaKey::L4Proto), expr::cmp_eq(&[IPPROTO_TCP])],
            };
            e.push(expr::payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2));
            e.push(expr::cmp_eq(&port.to_be_bytes()));
            if transport == Transport::Tcp {
                e.extend(tcp_syn_or_psh());
            }
            e.extend(source(spec, family, true));
            e.push(expr::dynset(
                DynsetOp::Update,
                &meter,
                timeout_ms(spec.meter_timeout()),
                Some(limit),
            ));
            e.extend(load_source(spec, family, true, offset, len));
            e.push(expr::dynset(DynsetOp::Add, &caught, timeout_ms(spec.bantime), None));
            e.extend([expr::counter(), expr::verdict(NF_DROP)]);
            let proto = match transport {
                Transport::Udp => "udp",
                Transport::Tcp => "tcp",
            };
            rules.push((format!("meter {proto} port {port} into set {meter}"), e));
        }
    }
    rules
        .into_iter()
        .map(|(what, expressions)| {
            let msg = NfTablesMessage::NewRule(RuleMessage {
                attributes: vec![
                    RuleAttribute::Table(table.into()),
                    RuleAttribute::Chain(SIP_CHAIN.into()),
                    RuleAttribute::Expressions(expressions),
                ],
            });
            Op::new(
                msg,
                NLM_F_CREATE | NLM_F_APPEND,
                format!(
                    "add the rule to {what} to chain {SIP_CHAIN} in {}",
                    describe_table(table)
                ),
            )
        })
        .collect()
}

/// `tcp flags syn,psh` (`tcp flags & (syn | psh) != 0`): a new connection,
/// or a request written on one (the client's stack pushes the end of each
/// write); not a pure ACK. See [`Transport::Tcp`].
fn tcp_syn_or_psh() -> Vec<expr::Expr> {
    vec![
        expr::payload(NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1),
        expr::mask(&[TCP_SYN | TCP_PSH]),
        expr::cmp_neq(&[0]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared test spec, with trusted prefixes that merge.
    fn spec() -> SipSpec {
        SipSpec {
            trusted: ["127.0.0.1", "127.0.0.0/8", "10.0.0.0/9", "10.128.0.0/9", "::1"]
                .iter()
                .map(|s| crate::address::parse_net(s).unwrap())
                .collect(),
            ..crate::firewall::sip::tests::spec()
        }
    }

    /// The TCP match, as the kernel runs it: byte 13 of the TCP header,
    /// masked, compared. A flood over one connection (SIPp `-t t1`) sends
    /// no SYN after the first, so its requests (PSH) must count.
    #[test]
    fn tcp_meters_new_connections_and_each_request_not_pure_acks() {
        use super::super::abi::be_u32;
        use super::super::expr::tests::{get, wire};
        let e: Vec<_> = tcp_syn_or_psh().iter().map(wire).collect();
        let names: Vec<&str> = e.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["payload", "bitwise", "cmp"]);
        // payload: transport header (2), offset 13, 1 byte.
        assert_eq!(
            (
                be_u32(get(&e[0].1, 2)),
                be_u32(get(&e[0].1, 3)),
                be_u32(get(&e[0].1, 4))
            ),
            (Some(2), Some(13), Some(1))
        );
        let value = |d: &[u8]| d[4]; // NFTA_DATA_VALUE's one byte, after its header
        let mask = value(get(&e[1].1, 4));
        assert_eq!(be_u32(get(&e[2].1, 2)), Some(1), "cmp neq");
        let zero = value(get(&e[2].1, 3));
        let counted = |flags: u8| flags & mask != zero;
        assert!(counted(0x02), "SYN: a new connection");
        assert!(counted(0x18), "PSH ACK: a request written on a connection");
        assert!(counted(0x19), "FIN PSH ACK: a last request");
        assert!(!counted(0x10), "a pure ACK");
        assert!(!counted(0x11), "FIN ACK");
        assert!(!counted(0x14), "RST ACK");
    }

    #[test]
    fn trusted_prefixes_are_merged_per_family() {
        let s = spec();
        let v4: Vec<String> = s.trusted_of(Family::V4).iter().map(ToString::to_string).collect();
        assert_eq!(v4, ["10.0.0.0/8", "127.0.0.0/8"]);
        let v6: Vec<String> = s.trusted_of(Family::V6).iter().map(ToString::to_string).collect();
        assert_eq!(v6, ["::1/128"]);
    }

    #[test]
    fn one_rule_per_port_and_family_after_the_drops() {
        let s = spec();
        let ops = rules("nftban", &s, PrefixSets::default());
        assert_eq!(ops.len(), rule_count(&s, PrefixSets::default()));
        assert_eq!(ops.len(), 16);
        assert!(ops[0].what.contains("accept set sip_trusted_v4"));
        assert!(ops[2].what.contains("drop set asterisk_v4"));
        assert!(ops[3].what.contains("drop set asterisk_v4_24"));
        assert!(ops[9].what.contains("drop set sip_caught_v6"));
        assert!(
            ops[10].what.contains("meter udp port 5060 into set sip_meter_v4"),
            "{}",
            ops[10].what
        );
        assert!(ops[15].what.contains("meter tcp port 5061 into set sip_meter_v6"));
        // Two trusted sets, flushed then filled (one message each).
        assert_eq!(trusted_ops("nftban", &s).len(), 4);
    }
}
