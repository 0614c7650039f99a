//! Builders for the nf_tables requests nftban sends for its table, chains,
//! sets and rules, in the typed messages of netlink-packet-netfilter (the
//! element requests are in `elements.rs`). Each builder returns an encoded
//! [`Op`] that says in words what it does, so a kernel error names the
//! request that failed. The rule expressions are the ones `nft` emits for
//! `ip saddr @set counter drop` in an inet table (checked with
//! `nft --debug=netlink`), so `nft list` prints the rules back as written.

use netlink_packet_core::{DefaultNla, NLM_F_APPEND, NLM_F_CREATE};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, Cmp, DataAttribute, ExpressionAttribute, Expressions, Hook as ChainHook, Immediate,
    InetHookNumber, ListAttribute, Lookup, Meta, MetaKey, NfTablesMessage, Operator, Payload, Register, RuleAttribute,
    RuleMessage, SetAttribute, SetFlags, SetMessage, TableAttribute, TableFlags, TableMessage, Verdict,
    VerdictAttribute,
};

use super::abi::{
    ICMPV6_PORT_UNREACH, ICMP_PORT_UNREACH, NFPROTO_IPV4, NFPROTO_IPV6, NFTA_COUNTER_BYTES, NFTA_COUNTER_PACKETS,
    NFTA_REJECT_ICMP_CODE, NFTA_REJECT_TYPE, NFT_PAYLOAD_NETWORK_HEADER, NFT_REJECT_ICMP_UNREACH, NF_ACCEPT, NF_DROP,
    TYPE_IP6ADDR, TYPE_IPADDR,
};
use super::socket::Op;
use crate::firewall::{Action, Family, Hook, SetDef};

pub(super) fn describe_table(table: &str) -> String {
    format!("table inet {table}")
}

pub(super) fn new_table(table: &str) -> Op {
    let msg = NfTablesMessage::NewTable(TableMessage {
        attributes: vec![
            TableAttribute::Name(table.into()),
            TableAttribute::Flags(TableFlags::default()),
        ],
    });
    Op::new(msg, NLM_F_CREATE, format!("create {}", describe_table(table)))
}

/// Delete the table and everything in it (`nftban teardown`).
pub(super) fn del_table(table: &str) -> Op {
    let msg = NfTablesMessage::DeleteTable(TableMessage {
        attributes: vec![TableAttribute::Name(table.into())],
    });
    Op::new(msg, 0, format!("delete {}", describe_table(table)))
}

/// Create the set unless it exists (no `NLM_F_EXCL`: an existing set keeps
/// its elements). `id` names the set within the batch; the kernel wants one
/// (EINVAL without it), unique in the batch.
pub(super) fn new_set(table: &str, set: &str, family: Family, interval: bool, id: u32) -> Op {
    let (key_type, key_len) = key_type(family);
    let msg = NfTablesMessage::NewSet(SetMessage {
        attributes: vec![
            SetAttribute::Table(table.into()),
            SetAttribute::Name(set.into()),
            SetAttribute::Flags(set_flags(interval)),
            SetAttribute::KeyType(key_type),
            SetAttribute::KeyLen(key_len),
            SetAttribute::Id(id),
        ],
    });
    Op::new(
        msg,
        NLM_F_CREATE,
        format!("create set {set} in {}", describe_table(table)),
    )
}

/// The flags of nftban's sets: `interval,timeout` for prefixes, `timeout`
/// (a hash set) for single addresses.
pub(super) fn set_flags(interval: bool) -> SetFlags {
    if interval {
        SetFlags::Interval | SetFlags::Timeout
    } else {
        SetFlags::Timeout
    }
}

/// Key type and length of a family's sets.
pub(super) fn key_type(family: Family) -> (u32, u32) {
    match family {
        Family::V4 => (TYPE_IPADDR, 4),
        Family::V6 => (TYPE_IP6ADDR, 16),
    }
}

pub(super) fn del_set(table: &str, set: &str) -> Op {
    let msg = NfTablesMessage::DeleteSet(SetMessage {
        attributes: vec![SetAttribute::Table(table.into()), SetAttribute::Name(set.into())],
    });
    Op::new(msg, 0, format!("delete set {set} from {}", describe_table(table)))
}

fn inet_hook(hook: Hook) -> InetHookNumber {
    match hook {
        Hook::Prerouting => InetHookNumber::PreRouting,
        Hook::Input => InetHookNumber::LocalIn,
        Hook::Forward => InetHookNumber::Forward,
    }
}

/// The kernel's number for a hook (`NF_INET_*`), as GETCHAIN reports it.
pub(super) fn hook_number(hook: Hook) -> u32 {
    inet_hook(hook).into()
}

/// The base chain of `hook`; without `NLM_F_EXCL` an existing one is adopted.
pub(super) fn new_chain(table: &str, hook: Hook) -> Op {
    let msg = NfTablesMessage::NewChain(ChainMessage {
        attributes: vec![
            ChainAttribute::Table(table.into()),
            ChainAttribute::Name(hook.chain().into()),
            ChainAttribute::Hook(vec![
                ChainHook::Number(inet_hook(hook).into()),
                ChainHook::Priority(hook.priority() as u32),
            ]),
            ChainAttribute::Policy(NF_ACCEPT),
            ChainAttribute::Type("filter".into()),
        ],
    });
    Op::new(
        msg,
        NLM_F_CREATE,
        format!("create chain {} in {}", hook.chain(), describe_table(table)),
    )
}

/// Delete a chain with its rules.
pub(super) fn del_chain(table: &str, chain: &str) -> Op {
    let msg = NfTablesMessage::DeleteChain(ChainMessage {
        attributes: vec![ChainAttribute::Table(table.into()), ChainAttribute::Name(chain.into())],
    });
    Op::new(msg, 0, format!("delete chain {chain} from {}", describe_table(table)))
}

/// GETCHAIN request for one chain.
pub(super) fn get_chain(table: &str, chain: &str) -> NfTablesMessage {
    NfTablesMessage::GetChain(ChainMessage {
        attributes: vec![ChainAttribute::Table(table.into()), ChainAttribute::Name(chain.into())],
    })
}

/// Delete every rule of a chain (DELRULE with no handle).
pub(super) fn flush_chain(table: &str, chain: &str) -> Op {
    let msg = NfTablesMessage::DeleteRule(RuleMessage {
        attributes: vec![RuleAttribute::Table(table.into()), RuleAttribute::Chain(chain.into())],
    });
    Op::new(msg, 0, format!("flush chain {chain} in {}", describe_table(table)))
}

/// GETRULE dump request for every rule of one table (for the counters).
pub(super) fn get_rules(table: &str) -> NfTablesMessage {
    NfTablesMessage::GetRule(RuleMessage {
        attributes: vec![RuleAttribute::Table(table.into())],
    })
}

/// `ip saddr @set counter drop` (or `ip6 saddr`, or `reject`), appended to
/// the chain of `hook`. In an inet table nft first checks `meta nfproto`.
/// `ip saddr @set counter drop` (or the rule of a masked set: `ip saddr &
/// MASK == @set ...`, the address masked by a bitwise before the lookup).
pub(super) fn new_rule(table: &str, hook: Hook, set: &SetDef, action: Action) -> Op {
    let family = set.family;
    let (nfproto, offset, len) = match family {
        Family::V4 => (NFPROTO_IPV4, 12, 4),
        Family::V6 => (NFPROTO_IPV6, 8, 16),
    };
    let be64 = |v: u64| v.to_be_bytes().to_vec();
    let verdict: ListAttribute<ExpressionAttribute> = match action {
        Action::Drop => Expressions::Immediate(vec![
            Immediate::DestinationRegister(Register::Verdict),
            Immediate::Data(DataAttribute::Verdict(vec![VerdictAttribute::Code(Verdict::Other(
                NF_DROP,
            ))])),
        ])
        .into(),
        Action::Reject => Expressions::Other {
            expression_type: "reject".into(),
            attributes: vec![
                DefaultNla::new(NFTA_REJECT_TYPE, NFT_REJECT_ICMP_UNREACH.to_be_bytes().to_vec()),
                DefaultNla::new(
                    NFTA_REJECT_ICMP_CODE,
                    vec![match family {
                        Family::V4 => ICMP_PORT_UNREACH,
                        Family::V6 => ICMPV6_PORT_UNREACH,
                    }],
                ),
            ],
        }
        .into(),
    };
    let mut expressions = vec![
        Expressions::Meta(vec![
            Meta::Key(MetaKey::Nfproto),
            Meta::DestinationRegister(Register::Reg1),
        ])
        .into(),
        Expressions::Cmp(vec![
            Cmp::SourceRegister(Register::Reg1),
            Cmp::Op(Operator::Equal),
            Cmp::Data(DataAttribute::Value(vec![nfproto])),
        ])
        .into(),
        Expressions::Payload(vec![
            Payload::DestinationRegister(Register::Reg1),
            Payload::Base(NFT_PAYLOAD_NETWORK_HEADER),
            Payload::Offset(offset),
            Payload::Len(len),
        ])
        .into(),
    ];
    if let Some(mask) = set.mask() {
        expressions.push(super::expr::mask(&mask));
    }
    expressions.extend([
        Expressions::Lookup(vec![
            Lookup::Set(set.name.as_str().into()),
            Lookup::SourceRegister(Register::Reg1),
        ])
        .into(),
        Expressions::Other {
            expression_type: "counter".into(),
            attributes: vec![
                DefaultNla::new(NFTA_COUNTER_BYTES, be64(0)),
                DefaultNla::new(NFTA_COUNTER_PACKETS, be64(0)),
            ],
        }
        .into(),
        verdict,
    ]);
    let msg = NfTablesMessage::NewRule(RuleMessage {
        attributes: vec![
            RuleAttribute::Table(table.into()),
            RuleAttribute::Chain(hook.chain().into()),
            RuleAttribute::Expressions(expressions),
        ],
    });
    Op::new(
        msg,
        NLM_F_CREATE | NLM_F_APPEND,
        format!(
            "add the rule for set {} to chain {} in {}",
            set.name,
            hook.chain(),
            describe_table(table)
        ),
    )
}

/// GETSET dump request for the sets of one table.
pub(super) fn get_sets(table: &str) -> NfTablesMessage {
    NfTablesMessage::GetSet(SetMessage {
        attributes: vec![SetAttribute::Table(table.into())],
    })
}

/// GETRULE dump request for the rules of one chain.
pub(super) fn get_chain_rules(table: &str, chain: &str) -> NfTablesMessage {
    NfTablesMessage::GetRule(RuleMessage {
        attributes: vec![RuleAttribute::Table(table.into()), RuleAttribute::Chain(chain.into())],
    })
}
