//! Rule expressions, one builder each, as `nft` emits them (checked with
//! `nft --debug=netlink`): the typed ones of netlink-packet-netfilter
//! (meta, cmp, payload, bitwise, lookup, immediate) and, written here over
//! the attribute helpers of [`super::abi`], those it has no type for
//! (counter, limit, dynset with a nested expression). All values go in
//! register 1, the 16-byte one `nft` uses, so an IPv6 address fits.

use netlink_packet_core::DefaultNla;
use netlink_packet_netfilter::nftables::{
    Bitwise, Cmp, DataAttribute, ExpressionAttribute, Expressions, Immediate, ListAttribute, Lookup, Meta, MetaKey,
    Operator, Payload, Register, Verdict, VerdictAttribute,
};

use super::abi::{
    nested, put_attr, put_string, NFTA_COUNTER_BYTES, NFTA_COUNTER_PACKETS, NFTA_DYNSET_EXPR, NFTA_DYNSET_OP,
    NFTA_DYNSET_SET_NAME, NFTA_DYNSET_SREG_KEY, NFTA_DYNSET_TIMEOUT, NFTA_EXPR_DATA, NFTA_EXPR_NAME, NFTA_LIMIT_BURST,
    NFTA_LIMIT_FLAGS, NFTA_LIMIT_RATE, NFTA_LIMIT_TYPE, NFTA_LIMIT_UNIT, NFT_DYNSET_OP_ADD, NFT_DYNSET_OP_UPDATE,
    NFT_LIMIT_F_INV, NFT_LIMIT_PKTS, NFT_REG_1, NLA_F_NESTED,
};

/// One expression of a rule.
pub(super) type Expr = ListAttribute<ExpressionAttribute>;

/// `meta load KEY => reg 1`.
pub(super) fn meta(key: MetaKey) -> Expr {
    Expressions::Meta(vec![Meta::Key(key), Meta::DestinationRegister(Register::Reg1)]).into()
}

/// `cmp eq reg 1 VALUE`.
pub(super) fn cmp_eq(value: &[u8]) -> Expr {
    Expressions::Cmp(vec![
        Cmp::SourceRegister(Register::Reg1),
        Cmp::Op(Operator::Equal),
        Cmp::Data(DataAttribute::Value(value.to_vec())),
    ])
    .into()
}

/// `cmp neq reg 1 VALUE`.
pub(super) fn cmp_neq(value: &[u8]) -> Expr {
    Expressions::Cmp(vec![
        Cmp::SourceRegister(Register::Reg1),
        Cmp::Op(Operator::NotEqual),
        Cmp::Data(DataAttribute::Value(value.to_vec())),
    ])
    .into()
}

/// `payload load LEN b @ BASE header + OFFSET => reg 1`.
pub(super) fn payload(base: u32, offset: u32, len: u32) -> Expr {
    Expressions::Payload(vec![
        Payload::DestinationRegister(Register::Reg1),
        Payload::Base(base),
        Payload::Offset(offset),
        Payload::Len(len),
    ])
    .into()
}

/// `bitwise reg 1 = (reg 1 & MASK) ^ 0`: keeps the bits of `mask` (the
/// network part of an IPv6 address, the flags a TCP match looks at).
pub(super) fn mask(mask: &[u8]) -> Expr {
    Expressions::Bitwise(vec![
        Bitwise::SourceRegister(Register::Reg1),
        Bitwise::DestinationRegister(Register::Reg1),
        Bitwise::Length(mask.len() as u32),
        Bitwise::Mask(DataAttribute::Value(mask.to_vec())),
        Bitwise::Xor(DataAttribute::Value(vec![0; mask.len()])),
    ])
    .into()
}

/// `lookup reg 1 set SET`.
pub(super) fn lookup(set: &str) -> Expr {
    Expressions::Lookup(vec![Lookup::Set(set.into()), Lookup::SourceRegister(Register::Reg1)]).into()
}

/// `counter pkts 0 bytes 0`.
pub(super) fn counter() -> Expr {
    Expressions::Other {
        expression_type: "counter".into(),
        attributes: vec![
            DefaultNla::new(NFTA_COUNTER_BYTES, 0u64.to_be_bytes().to_vec()),
            DefaultNla::new(NFTA_COUNTER_PACKETS, 0u64.to_be_bytes().to_vec()),
        ],
    }
    .into()
}

/// `immediate reg 0 VERDICT` (`NF_DROP`, `NF_ACCEPT`).
pub(super) fn verdict(code: u32) -> Expr {
    Expressions::Immediate(vec![
        Immediate::DestinationRegister(Register::Verdict),
        Immediate::Data(DataAttribute::Verdict(vec![VerdictAttribute::Code(Verdict::Other(
            code,
        ))])),
    ])
    .into()
}

/// The attributes of `limit rate over RATE/UNIT burst BURST packets`:
/// `rate` packets per `unit_secs` seconds.
fn limit_over_attrs(rate: u64, unit_secs: u64, burst: u32) -> Vec<DefaultNla> {
    vec![
        DefaultNla::new(NFTA_LIMIT_RATE, rate.to_be_bytes().to_vec()),
        DefaultNla::new(NFTA_LIMIT_UNIT, unit_secs.to_be_bytes().to_vec()),
        DefaultNla::new(NFTA_LIMIT_BURST, burst.to_be_bytes().to_vec()),
        DefaultNla::new(NFTA_LIMIT_TYPE, NFT_LIMIT_PKTS.to_be_bytes().to_vec()),
        DefaultNla::new(NFTA_LIMIT_FLAGS, NFT_LIMIT_F_INV.to_be_bytes().to_vec()),
    ]
}

/// A `limit rate over` expression on its own, as an `NFTA_LIST_ELEM`'s
/// value would hold it: its name, then its data (nested). What a dynset
/// carries in `NFTA_DYNSET_EXPR`.
fn limit_over_bytes(rate: u64, unit_secs: u64, burst: u32) -> Vec<u8> {
    let mut data = Vec::new();
    for a in limit_over_attrs(rate, unit_secs, burst) {
        use netlink_packet_core::Nla;
        let mut v = vec![0; a.value_len()];
        a.emit_value(&mut v);
        put_attr(&mut data, a.kind(), &v);
    }
    let mut out = Vec::new();
    put_string(&mut out, NFTA_EXPR_NAME, "limit");
    out.extend(nested(NFTA_EXPR_DATA, &data));
    out
}

/// What a dynset does with the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DynsetOp {
    /// `add @set { key timeout T }`: adds the key unless it is there.
    Add,
    /// `update @set { key timeout T ... }`: adds it, or refreshes its
    /// timeout, and runs the nested expression on its element.
    Update,
}

/// A nested stateful expression of a dynset (its state lives in each
/// element).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stateful {
    /// `limit rate over RATE/UNIT burst BURST packets`.
    LimitOver { rate: u64, unit_secs: u64, burst: u32 },
}

/// `dynset OP reg_key 1 set SET timeout MS [expr [ ... ]]`: the key in
/// register 1 added to (or updated in) `set`, from the packet path. With a
/// nested expression, the rule goes on only if that expression matches
/// (for `limit rate over`: once the element's rate is exceeded).
pub(super) fn dynset(op: DynsetOp, set: &str, timeout_ms: u64, expr: Option<Stateful>) -> Expr {
    let op = match op {
        DynsetOp::Add => NFT_DYNSET_OP_ADD,
        DynsetOp::Update => NFT_DYNSET_OP_UPDATE,
    };
    let mut name = set.as_bytes().to_vec();
    name.push(0);
    let mut attributes = vec![
        DefaultNla::new(NFTA_DYNSET_SET_NAME, name),
        DefaultNla::new(NFTA_DYNSET_OP, op.to_be_bytes().to_vec()),
        DefaultNla::new(NFTA_DYNSET_SREG_KEY, NFT_REG_1.to_be_bytes().to_vec()),
        DefaultNla::new(NFTA_DYNSET_TIMEOUT, timeout_ms.to_be_bytes().to_vec()),
    ];
    if let Some(Stateful::LimitOver { rate, unit_secs, burst }) = expr {
        attributes.push(DefaultNla::new(
            NFTA_DYNSET_EXPR | NLA_F_NESTED,
            limit_over_bytes(rate, unit_secs, burst),
        ));
    }
    Expressions::Other {
        expression_type: "dynset".into(),
        attributes,
    }
    .into()
}

#[cfg(test)]
pub(super) mod tests {
    use netlink_packet_core::Emitable;

    use super::super::abi::{attrs, be_u32, be_u64, c_string, NFTA_DATA_VALUE, NFTA_LIST_ELEM};
    use super::*;

    /// The value bytes of a cmp's or bitwise's data: `NFTA_DATA_VALUE` inside.
    pub(in crate::firewall::netlink) fn data_value(v: &[u8]) -> Vec<u8> {
        super::super::abi::attr(NFTA_DATA_VALUE, v)
    }

    /// An expression as it goes on the wire: (name, data attributes).
    pub(in crate::firewall::netlink) fn wire(e: &Expr) -> (String, Vec<(u16, Vec<u8>)>) {
        let mut buf = vec![0; e.buffer_len()];
        e.emit(&mut buf);
        let (kind, value) = attrs(&buf).next().unwrap();
        assert_eq!(kind, NFTA_LIST_ELEM);
        let mut name = String::new();
        let mut data = Vec::new();
        for (k, v) in attrs(value) {
            match k {
                NFTA_EXPR_NAME => name = c_string(v),
                NFTA_EXPR_DATA => data = attrs(v).map(|(k, v)| (k, v.to_vec())).collect(),
                _ => panic!("unexpected attribute {k}"),
            }
        }
        (name, data)
    }

    pub(in crate::firewall::netlink) fn get(data: &[(u16, Vec<u8>)], kind: u16) -> &[u8] {
        &data
            .iter()
            .find(|(k, _)| *k == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
            .1
    }

    #[test]
    fn dynset_update_nests_a_limit_over() {
        let e = dynset(
            DynsetOp::Update,
            "sip_meter_v4",
            60_000,
            Some(Stateful::LimitOver {
                rate: 20,
                unit_secs: 1,
                burst: 40,
            }),
        );
        let (name, data) = wire(&e);
        assert_eq!(name, "dynset");
        assert_eq!(c_string(get(&data, NFTA_DYNSET_SET_NAME)), "sip_meter_v4");
        assert_eq!(be_u32(get(&data, NFTA_DYNSET_OP)), Some(NFT_DYNSET_OP_UPDATE));
        assert_eq!(be_u32(get(&data, NFTA_DYNSET_SREG_KEY)), Some(1));
        assert_eq!(be_u64(get(&data, NFTA_DYNSET_TIMEOUT)), Some(60_000));
        // The nested expression: its name, then its data.
        let inner: Vec<(u16, Vec<u8>)> = attrs(get(&data, NFTA_DYNSET_EXPR))
            .map(|(k, v)| (k, v.to_vec()))
            .collect();
        assert_eq!(c_string(get(&inner, NFTA_EXPR_NAME)), "limit");
        let limit: Vec<(u16, Vec<u8>)> = attrs(get(&inner, NFTA_EXPR_DATA))
            .map(|(k, v)| (k, v.to_vec()))
            .collect();
        assert_eq!(be_u64(get(&limit, NFTA_LIMIT_RATE)), Some(20));
        assert_eq!(be_u64(get(&limit, NFTA_LIMIT_UNIT)), Some(1));
        assert_eq!(be_u32(get(&limit, NFTA_LIMIT_BURST)), Some(40));
        assert_eq!(be_u32(get(&limit, NFTA_LIMIT_TYPE)), Some(NFT_LIMIT_PKTS));
        assert_eq!(be_u32(get(&limit, NFTA_LIMIT_FLAGS)), Some(NFT_LIMIT_F_INV));
        // Nested attributes carry the flag the kernel's strict parser wants.
        let mut buf = vec![0; e.buffer_len()];
        e.emit(&mut buf);
        let pos = buf
            .windows(2)
            .position(|w| u16::from_ne_bytes([w[0], w[1]]) == NFTA_DYNSET_EXPR | NLA_F_NESTED)
            .unwrap();
        assert!(pos > 0);
    }

    #[test]
    fn dynset_add_has_no_nested_expression() {
        let (name, data) = wire(&dynset(DynsetOp::Add, "sip_caught_v6", 3_600_000, None));
        assert_eq!(name, "dynset");
        assert_eq!(be_u32(get(&data, NFTA_DYNSET_OP)), Some(NFT_DYNSET_OP_ADD));
        assert_eq!(be_u64(get(&data, NFTA_DYNSET_TIMEOUT)), Some(3_600_000));
        assert!(!data.iter().any(|(k, _)| *k == NFTA_DYNSET_EXPR));
    }

    #[test]
    fn mask_keeps_a_slash_64_and_tcp_flags() {
        let mut m = [0u8; 16];
        m[..8].fill(0xff);
        let (name, data) = wire(&mask(&m));
        assert_eq!(name, "bitwise");
        // sreg 1, dreg 1, len 16, mask, xor 0 (NFTA_BITWISE_*: 1..=5).
        assert_eq!(be_u32(get(&data, 1)), Some(1));
        assert_eq!(be_u32(get(&data, 2)), Some(1));
        assert_eq!(be_u32(get(&data, 3)), Some(16));
        assert_eq!(get(&data, 4), data_value(&m));
        assert_eq!(get(&data, 5), data_value(&[0; 16]));
        let (_, flags) = wire(&mask(&[0x17]));
        assert_eq!(be_u32(get(&flags, 3)), Some(1));
        assert_eq!(get(&flags, 4), data_value(&[0x17]));
    }

    #[test]
    fn meta_l4proto_payload_and_cmp() {
        let (name, data) = wire(&meta(MetaKey::L4Proto));
        assert_eq!(name, "meta");
        // NFTA_META_DREG 1, NFTA_META_KEY 2 = NFT_META_L4PROTO (16).
        assert_eq!(be_u32(get(&data, 2)), Some(16));
        assert_eq!(be_u32(get(&data, 1)), Some(1));
        let (name, data) = wire(&payload(2, 13, 1));
        assert_eq!(name, "payload");
        // NFTA_PAYLOAD_BASE 2, OFFSET 3, LEN 4.
        assert_eq!(
            (be_u32(get(&data, 2)), be_u32(get(&data, 3)), be_u32(get(&data, 4))),
            (Some(2), Some(13), Some(1))
        );
        let (name, data) = wire(&cmp_eq(&5060u16.to_be_bytes()));
        assert_eq!(name, "cmp");
        // NFTA_CMP_DATA 3, the port in network order.
        assert_eq!(get(&data, 3), data_value(&[0x13, 0xc4]));
        let (name, data) = wire(&cmp_neq(&[0]));
        assert_eq!(name, "cmp");
        // NFTA_CMP_OP 2: NFT_CMP_NEQ is 1.
        assert_eq!(be_u32(get(&data, 2)), Some(1));
        assert_eq!(get(&data, 3), data_value(&[0]));
        let (name, data) = wire(&counter());
        assert_eq!(name, "counter");
        assert_eq!(be_u64(get(&data, NFTA_COUNTER_PACKETS)), Some(0));
    }
}
