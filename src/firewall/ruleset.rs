//! `nft` syntax for the objects [`super::Firewall::setup`] creates. Used by
//! `nftban ruleset` and kept in step with the netlink code by a test
//! (firewall::netlink::tests) that compares it, character for character,
//! with what `nft list table` prints after a real setup in a private
//! network namespace. So it is written the way nft prints, not the way one
//! would type it: the priority relative to `filter`, the counters with their
//! (zero) values, and `reject` with the ICMP code it compiles to.

use std::fmt::Write;

use super::sip::{sip_set_name, SipSetKind, SipSpec, Transport, SIP_CHAIN};
use super::{Action, Family, Hook, PrefixSets, SetDef, TableSpec};

/// The ruleset nftban creates for `spec`, exactly as `nft list table`
/// prints it right after setup (it is valid `nft -f` input as well).
pub fn render_ruleset(spec: &TableSpec) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "table inet {} {{", spec.table);
    for set in spec.jails.iter().flat_map(|jail| spec.prefix_sets.jail_sets(jail)) {
        let ty = match set.family {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        };
        let flags = if set.interval() { "interval,timeout" } else { "timeout" };
        let _ = writeln!(out, "\tset {} {{", set.name);
        let _ = writeln!(out, "\t\ttype {ty}");
        let _ = writeln!(out, "\t\tflags {flags}");
        let _ = writeln!(out, "\t}}\n");
    }
    if let Some(sip) = &spec.sip {
        render_sip_sets(&mut out, sip);
    }
    for (i, &hook) in spec.hooks.iter().enumerate() {
        if i > 0 {
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "\tchain {} {{", hook.chain());
        let _ = writeln!(
            out,
            "\t\ttype filter hook {hook} priority {}; policy accept;",
            priority_text(hook, hook.priority())
        );
        for set in spec.jails.iter().flat_map(|jail| spec.prefix_sets.jail_sets(jail)) {
            // A plain `reject` after `ip saddr` compiles to an ICMP port
            // unreachable of the packet's family, and nft prints it so.
            let (proto, verdict) = match (set.family, spec.action) {
                (Family::V4, Action::Drop) => ("ip", "drop"),
                (Family::V6, Action::Drop) => ("ip6", "drop"),
                (Family::V4, Action::Reject) => ("ip", "reject with icmp port-unreachable"),
                (Family::V6, Action::Reject) => ("ip6", "reject with icmpv6 port-unreachable"),
            };
            let _ = writeln!(
                out,
                "\t\t{proto} saddr {}@{} counter packets 0 bytes 0 {verdict}",
                masked(&set),
                set.name
            );
        }
        let _ = writeln!(out, "\t}}");
    }
    if let Some(sip) = &spec.sip {
        if !spec.hooks.is_empty() {
            let _ = writeln!(out);
        }
        render_sip_chain(&mut out, sip, spec.prefix_sets);
    }
    let _ = writeln!(out, "}}");
    out
}

/// The SIP meter's six sets, as nft lists them: the trusted sources' (with
/// their elements, as many per line as nft puts), then the meters and the
/// caught sources' (empty right after setup).
fn render_sip_sets(out: &mut String, sip: &SipSpec) {
    for set in sip.sets() {
        let ty = match set.family {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        };
        let _ = writeln!(out, "\tset {} {{", set.name);
        let _ = writeln!(out, "\t\ttype {ty}");
        match set.kind {
            SipSetKind::Trusted => {
                let _ = writeln!(out, "\t\tflags interval");
                let elements = sip.trusted_of(set.family);
                if !elements.is_empty() {
                    // nft puts two IPv4 elements per line, one IPv6.
                    let per_line = if set.family == Family::V4 { 2 } else { 1 };
                    let _ = write!(out, "\t\telements = {{ ");
                    for (i, net) in elements.iter().enumerate() {
                        if i > 0 {
                            out.push_str(if i % per_line == 0 { ",\n\t\t\t     " } else { ", " });
                        }
                        out.push_str(&crate::address::show(net));
                    }
                    let _ = writeln!(out, " }}");
                }
            }
            SipSetKind::Meter | SipSetKind::Caught => {
                let _ = writeln!(out, "\t\tsize {}", sip.size);
                let _ = writeln!(out, "\t\tflags dynamic,timeout");
            }
        }
        let _ = writeln!(out, "\t}}\n");
    }
}

/// The SIP meter's chain (see [`super::sip`]).
fn render_sip_chain(out: &mut String, sip: &SipSpec, prefix_sets: PrefixSets) {
    let _ = writeln!(out, "\tchain {SIP_CHAIN} {{");
    let _ = writeln!(
        out,
        "\t\ttype filter hook prerouting priority {}; policy accept;",
        priority_text(Hook::Prerouting, Hook::Prerouting.priority())
    );
    let proto = |f: Family| if f == Family::V4 { "ip" } else { "ip6" };
    // The source as the meter keys it: IPv6 masked to the meter's prefix.
    let mask = sip.v6_mask().map(|m| std::net::Ipv6Addr::from(m).to_string());
    let key = |f: Family| match (f, &mask) {
        (Family::V6, Some(m)) => format!("ip6 saddr & {m}"),
        _ => format!("{} saddr", proto(f)),
    };
    for f in [Family::V4, Family::V6] {
        let set = sip_set_name(SipSetKind::Trusted, f);
        let _ = writeln!(out, "\t\t{} saddr @{set} accept", proto(f));
    }
    for d in prefix_sets.jail_sets(&sip.jail) {
        let _ = writeln!(
            out,
            "\t\t{} saddr {}@{} counter packets 0 bytes 0 drop",
            proto(d.family),
            masked(&d),
            d.name
        );
    }
    for f in [Family::V4, Family::V6] {
        let set = sip_set_name(SipSetKind::Caught, f);
        // nft writes `==` before a set lookup of a masked value.
        let op = if f == Family::V6 && mask.is_some() { "== " } else { "" };
        let _ = writeln!(out, "\t\t{} {op}@{set} counter packets 0 bytes 0 drop", key(f));
    }
    let limit = if sip.burst == 5 {
        format!("limit rate over {}", sip.rate)
    } else {
        format!("limit rate over {} burst {} packets", sip.rate, sip.burst)
    };
    for f in [Family::V4, Family::V6] {
        let meter = sip_set_name(SipSetKind::Meter, f);
        let caught = sip_set_name(SipSetKind::Caught, f);
        for (transport, port) in sip.ports() {
            let matched = match transport {
                Transport::Udp => format!("udp dport {port}"),
                Transport::Tcp => format!("tcp dport {port} tcp flags syn,psh"),
            };
            let _ = writeln!(
                out,
                "\t\t{matched} update @{meter} {{ {k} timeout {} {limit} }} add @{caught} {{ {k} timeout {} }} counter packets 0 bytes 0 drop",
                nft_time(sip.meter_timeout()),
                nft_time(sip.bantime),
                k = key(f),
            );
        }
    }
    let _ = writeln!(out, "\t}}");
}

/// What comes between `saddr ` and the set name: the mask of a masked set
/// and the `== ` nft writes before the lookup of a masked value, or nothing.
fn masked(set: &SetDef) -> String {
    set.mask_text().map(|m| format!("& {m} == ")).unwrap_or_default()
}

/// A time as nft prints it: `1h`, `1m30s`, `1d`, `0s`.
fn nft_time(d: std::time::Duration) -> String {
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= len {
            let _ = write!(out, "{}{unit}", secs / len);
            secs %= len;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// A chain priority as nft prints it for an inet chain at `hook`: relative
/// to the standard priority within 10 of it (`filter - 10`, `raw`), numeric
/// otherwise, or when the nearest standard priority does not apply to the
/// hook (`dstnat` is for prerouting only, `srcnat` for postrouting only;
/// nft's `prio2str`).
fn priority_text(hook: Hook, prio: i32) -> String {
    const ALL: &[Hook] = &Hook::ALL;
    // (name, value, the hooks of nftban's where nft uses the name)
    const STANDARD: [(&str, i64, &[Hook]); 6] = [
        ("raw", -300, ALL),
        ("mangle", -150, ALL),
        ("dstnat", -100, &[Hook::Prerouting]),
        ("filter", 0, ALL),
        ("security", 50, ALL),
        // For postrouting, which nftban never hooks.
        ("srcnat", 100, &[]),
    ];
    for (name, value, hooks) in STANDARD {
        let offset = prio as i64 - value;
        if offset.abs() <= 10 {
            if !hooks.contains(&hook) {
                break;
            }
            return match offset {
                0 => name.to_string(),
                o if o > 0 => format!("{name} + {o}"),
                o => format!("{name} - {}", -o),
            };
        }
    }
    prio.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sets_and_rules_for_each_jail() {
        let spec = TableSpec {
            table: "nftban".into(),
            action: Action::Drop,
            hooks: vec![Hook::Input],
            jails: vec!["sshd".into(), "manual".into()],
            prefix_sets: crate::firewall::PrefixSets::default(),
            sip: None,
        };
        let text = render_ruleset(&spec);
        assert!(text.starts_with("table inet nftban {\n"));
        assert!(text.contains("\tset sshd_v6 {\n\t\ttype ipv6_addr\n\t\tflags timeout\n"));
        assert!(text.contains("\tset sshd_v6_net {\n\t\ttype ipv6_addr\n\t\tflags interval,timeout\n"));
        assert!(text.contains("\t\tip saddr @manual_v4_net counter packets 0 bytes 0 drop\n"));
        assert!(text.contains("\t\tip saddr @manual_v4 counter packets 0 bytes 0 drop\n"));
        assert!(text.contains("\t\tip saddr & 255.255.255.0 == @manual_v4_24 counter packets 0 bytes 0 drop\n"));
        assert!(
            text.contains("\t\tip6 saddr & ffff:ffff:ffff:ffff:: == @manual_v6_64 counter packets 0 bytes 0 drop\n")
        );
        assert!(text.contains("\tset sshd_v4_24 {\n\t\ttype ipv4_addr\n\t\tflags timeout\n"));
        assert!(text.contains("type filter hook input priority filter - 10; policy accept;"));
        assert_eq!(text.matches("bytes 0 drop").count(), 12);
        let reject = render_ruleset(&TableSpec {
            action: Action::Reject,
            ..spec
        });
        assert!(
            reject.contains("\t\tip6 saddr @sshd_v6 counter packets 0 bytes 0 reject with icmpv6 port-unreachable\n")
        );
        assert!(reject.contains("\t\tip saddr @sshd_v4 counter packets 0 bytes 0 reject with icmp port-unreachable\n"));
    }

    #[test]
    fn one_chain_per_hook_with_every_rule() {
        let spec = TableSpec {
            table: "nftban".into(),
            action: Action::Drop,
            hooks: vec![Hook::Prerouting, Hook::Input, Hook::Forward],
            jails: vec!["sshd".into()],
            prefix_sets: crate::firewall::PrefixSets::default(),
            sip: None,
        };
        let text = render_ruleset(&spec);
        assert!(text.contains("\tchain prerouting {\n\t\ttype filter hook prerouting priority raw; policy accept;\n"));
        assert!(text.contains("\t}\n\n\tchain input {\n\t\ttype filter hook input priority filter - 10;"));
        assert!(text.contains("\tchain forward {\n\t\ttype filter hook forward priority filter - 10;"));
        assert_eq!(
            text.matches("ip saddr @sshd_v4 counter packets 0 bytes 0 drop\n")
                .count(),
            3
        );
        let forward_only = render_ruleset(&TableSpec {
            hooks: vec![Hook::Forward],
            ..spec
        });
        assert!(!forward_only.contains("chain input"));
        assert_eq!(forward_only.matches("bytes 0 drop").count(), 6);
    }

    #[test]
    fn priorities_print_like_nft() {
        assert_eq!(priority_text(Hook::Input, -10), "filter - 10");
        assert_eq!(priority_text(Hook::Input, 0), "filter");
        assert_eq!(priority_text(Hook::Forward, 5), "filter + 5");
        assert_eq!(priority_text(Hook::Prerouting, -300), "raw");
        assert_eq!(priority_text(Hook::Input, -95), "-95");
        assert_eq!(priority_text(Hook::Prerouting, -95), "dstnat + 5");
        assert_eq!(priority_text(Hook::Input, -20), "-20");
        assert_eq!(priority_text(Hook::Forward, 100), "100");
    }
}
