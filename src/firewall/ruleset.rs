//! `nft` syntax for the objects [`super::Firewall::setup`] creates. Used by
//! `nftban ruleset` and kept in step with the netlink code by a test
//! (firewall::netlink::tests) that compares it, character for character,
//! with what `nft list table` prints after a real setup in a private
//! network namespace. So it is written the way nft prints, not the way one
//! would type it: the priority relative to `filter`, the counters with their
//! (zero) values, and `reject` with the ICMP code it compiles to.

use std::fmt::Write;

use super::{jail_sets, Action, Family, TableSpec, INPUT_CHAIN, INPUT_PRIORITY};

/// The ruleset nftban creates for `spec`, exactly as `nft list table`
/// prints it right after setup (it is valid `nft -f` input as well).
pub fn render_ruleset(spec: &TableSpec) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "table inet {} {{", spec.table);
    for set in spec.jails.iter().flat_map(|jail| jail_sets(jail)) {
        let ty = match set.family {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        };
        let flags = if set.interval { "interval,timeout" } else { "timeout" };
        let _ = writeln!(out, "\tset {} {{", set.name);
        let _ = writeln!(out, "\t\ttype {ty}");
        let _ = writeln!(out, "\t\tflags {flags}");
        let _ = writeln!(out, "\t}}\n");
    }
    let _ = writeln!(out, "\tchain {INPUT_CHAIN} {{");
    let _ = writeln!(
        out,
        "\t\ttype filter hook input priority {}; policy accept;",
        priority_text(INPUT_PRIORITY)
    );
    for set in spec.jails.iter().flat_map(|jail| jail_sets(jail)) {
        {
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
                "\t\t{proto} saddr @{} counter packets 0 bytes 0 {verdict}",
                set.name
            );
        }
    }
    let _ = writeln!(out, "\t}}");
    let _ = writeln!(out, "}}");
    out
}

/// A chain priority at the input hook as nft prints it: relative to the
/// standard priority within 10 of it (`filter - 10`), numeric otherwise,
/// or when the nearest standard priority does not apply to the input hook
/// (nft's `prio2str`).
fn priority_text(prio: i32) -> String {
    const STANDARD: [(&str, i64, bool); 6] = [
        ("raw", -300, true),
        ("mangle", -150, true),
        ("dstnat", -100, false),
        ("filter", 0, true),
        ("security", 50, true),
        ("srcnat", 100, true),
    ];
    for (name, value, at_input) in STANDARD {
        let offset = prio as i64 - value;
        if offset.abs() <= 10 {
            if !at_input {
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
            jails: vec!["sshd".into(), "manual".into()],
        };
        let text = render_ruleset(&spec);
        assert!(text.starts_with("table inet nftban {\n"));
        assert!(text.contains("\tset sshd_v6 {\n\t\ttype ipv6_addr\n\t\tflags timeout\n"));
        assert!(text.contains("\tset sshd_v6_net {\n\t\ttype ipv6_addr\n\t\tflags interval,timeout\n"));
        assert!(text.contains("\t\tip saddr @manual_v4_net counter packets 0 bytes 0 drop\n"));
        assert!(text.contains("\t\tip saddr @manual_v4 counter packets 0 bytes 0 drop\n"));
        assert!(text.contains("type filter hook input priority filter - 10; policy accept;"));
        assert_eq!(text.matches("bytes 0 drop").count(), 8);
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
    fn priorities_print_like_nft() {
        assert_eq!(priority_text(-10), "filter - 10");
        assert_eq!(priority_text(0), "filter");
        assert_eq!(priority_text(5), "filter + 5");
        assert_eq!(priority_text(-300), "raw");
        assert_eq!(priority_text(-95), "-95");
        assert_eq!(priority_text(-20), "-20");
    }
}
