//! Which bans may be made, against the real kernel in private namespaces:
//! a new ban never shortens a running one (address bans stay beside a
//! prefix, nested prefixes become the wider one running as long), an
//! unban of a prefix lifts that prefix only, never-ban addresses and
//! `ignoreip` are refused with the reason, `--force` passes `ignoreip`
//! only. Each test reads the kernel's sets back with `nft -j`, asks
//! `status`, and checks the history by restarting on an emptied kernel.

use crate::support::*;
use nftban::netns::udp_echo;

/// The elements of a set as (address or prefix, timeout in minutes,
/// rounded up), sorted.
fn minutes(ns: &NetNs, set: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = elements(ns, set)
        .into_iter()
        .map(|e| (e.addr, u64::from(e.timeout.unwrap_or(0)).div_ceil(60)))
        .collect();
    out.sort();
    out
}

/// What status shows banned in `jail`, with minutes left (rounded up).
fn status_minutes(s: &Setup, jail: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = s
        .jail_status(jail)
        .banned
        .iter()
        .map(|b| (b.ip.clone(), b.expires_in.div_ceil(60)))
        .collect();
    out.sort();
    out
}

fn pairs(items: &[(&str, u64)]) -> Vec<(String, u64)> {
    items.iter().map(|(a, m)| (a.to_string(), *m)).collect()
}

/// Stop the daemon, empty the kernel (a reboot) and start again: what it
/// restores is what the history holds.
fn restart_on_an_empty_kernel(ns: &NetNs, s: &Setup, d: Daemon) -> Daemon {
    assert!(d.stop());
    nft(ns, &["delete", "table", "inet", "nftban"]);
    Daemon::start(ns, s)
}

/// Issue 13, item 6: `ban ADDR` for an hour then `ban PREFIX --bantime 5s`
/// around it: once the prefix has expired in the kernel, the address ban
/// is still there, in the kernel, in status and in the history.
#[test]
fn a_short_prefix_ban_leaves_a_longer_address_ban_running() {
    kernel_test!();
    let ns = NetNs::create("pol-short").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    s.cli_ok(&["ban", "198.51.100.10", "2001:db8::10", "--bantime", "1h"]);
    s.cli_ok(&["ban", "198.51.100.0/24", "2001:db8::/64", "--bantime", "5s"]);
    assert_eq!(minutes(&ns, "manual_v4"), pairs(&[("198.51.100.10", 60)]));
    assert_eq!(minutes(&ns, "manual_v4_24"), pairs(&[("198.51.100.0/24", 1)]));
    assert_eq!(minutes(&ns, "manual_v6"), pairs(&[("2001:db8::10", 60)]));
    // The prefixes end in the kernel; the address bans do not.
    wait_for("the 5 s prefixes to expire in the kernel", || {
        (set_addrs(&ns, "manual_v4_24").is_empty() && set_addrs(&ns, "manual_v6_64").is_empty()).then_some(())
    });
    let left = pairs(&[("198.51.100.10", 60), ("2001:db8::10", 60)]);
    assert_eq!([minutes(&ns, "manual_v4"), minutes(&ns, "manual_v6")].concat(), left);
    assert_eq!(status_minutes(&s, "manual"), left);
    let _d = restart_on_an_empty_kernel(&ns, &s, d);
    assert_eq!([minutes(&ns, "manual_v4"), minutes(&ns, "manual_v6")].concat(), left);
    assert_eq!(status_minutes(&s, "manual"), left);
}

/// An automatic ban inside a prefix banned and then unbanned by hand stays
/// (kernel, status, history); nested prefixes never reach the kernel's
/// interval set: the wider one runs as long as the longest it meets.
#[test]
fn prefixes_never_cut_other_bans_short_in_the_kernel() {
    kernel_test!();
    let ns = NetNs::create("pol-nest").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    s.failures("198.51.100.7", 3);
    s.wait_jail("asterisk", "the automatic ban", |st| st.currently_banned == 1);
    s.cli_ok(&["ban", "--jail", "asterisk", "198.51.100.0/24"]);
    assert_eq!(set_addrs(&ns, "asterisk_v4"), ["198.51.100.7"]);
    let o = s.cli_ok(&["unban", "198.51.100.0/24"]);
    assert_eq!(stdout(&o), "unbanned 198.51.100.0/24 from jail asterisk\n");
    assert_eq!(minutes(&ns, "asterisk_v4"), pairs(&[("198.51.100.7", 60)]));
    assert!(set_addrs(&ns, "asterisk_v4_24").is_empty());

    // A wider prefix over a narrower one that runs longer: it replaces it
    // and runs as long.
    s.cli_ok(&["ban", "--jail", "asterisk", "203.0.113.128/25", "--bantime", "2h"]);
    let o = s.cli_ok(&["ban", "--jail", "asterisk", "203.0.113.0/24", "--bantime", "5s"]);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    // For what is left of the /25's two hours (a second may have passed).
    assert!(
        lines[0].starts_with("banned 203.0.113.0/24 in jail asterisk for 1h59m") || lines[0].ends_with("for 2h"),
        "{out}"
    );
    assert_eq!(
        lines[1],
        "already banned: 203.0.113.128/25 (banned for longer: 203.0.113.0/24 now runs as long)"
    );
    // A narrower prefix inside a wider one that ends sooner: the wider one
    // runs as long.
    s.cli_ok(&["ban", "--jail", "asterisk", "2001:db8::/48", "--bantime", "5s"]);
    let o = s.cli_ok(&["ban", "--jail", "asterisk", "2001:db8:0:1::/64", "--bantime", "3h"]);
    assert_eq!(
        stdout(&o),
        "banned 2001:db8::/48 in jail asterisk for 3h\n\
         already banned: 2001:db8:0:1::/64 (inside banned 2001:db8::/48, which now runs as long)\n"
    );
    let all = pairs(&[("198.51.100.7", 60), ("2001:db8::/48", 180), ("203.0.113.0/24", 120)]);
    let kernel = |ns: &NetNs| {
        let mut k = [
            minutes(ns, "asterisk_v4"),
            minutes(ns, "asterisk_v4_24"),
            minutes(ns, "asterisk_v4_net"),
            minutes(ns, "asterisk_v6"),
            minutes(ns, "asterisk_v6_64"),
            minutes(ns, "asterisk_v6_net"),
        ]
        .concat();
        k.sort();
        k
    };
    assert_eq!(kernel(&ns), all);
    assert_eq!(status_minutes(&s, "asterisk"), all);
    let st = s.jail_status("asterisk");
    assert_eq!(st.kernel_errors, 0);
    let d = restart_on_an_empty_kernel(&ns, &s, d);
    assert_eq!(kernel(&ns), all);
    assert_eq!(status_minutes(&s, "asterisk"), all);
    assert!(!d.log().contains("ERROR"), "{}", d.log());
}

/// Issue 13, item 9: log lines naming addresses no ban may touch ban
/// nothing and count as no failure; `ban` of them, or of a prefix that
/// swallows one, is refused with the reason for each (exit code 1), the
/// other addresses of the request still banned.
#[test]
fn never_ban_addresses_are_never_banned() {
    kernel_test!();
    let ns = NetNs::create("pol-never").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    s.wait_jail("asterisk", "the log to be opened", |st| {
        st.sources[0].state == "reading"
    });
    for addr in ["0.0.0.0", "255.255.255.255", "224.0.0.1", "[::]", "[ff02::1]"] {
        s.failures(addr, 3);
    }
    s.failures("198.51.100.3", 3);
    // The lines are read in order: once the last address is banned, the
    // others have been dealt with.
    let st = s.wait_jail("asterisk", "the lines to be read", |st| {
        st.banned.iter().any(|b| b.ip == "198.51.100.3")
    });
    assert_eq!(st.sources[0].matched, 18);
    assert_eq!(st.total_failed, 3, "the never-ban lines count as no failure");
    assert_eq!(banned_ips(&st), ["198.51.100.3"]);
    assert_eq!(set_addrs(&ns, "asterisk_v4"), ["198.51.100.3"]);
    assert!(set_addrs(&ns, "asterisk_v6").is_empty());

    let o = s.cli(&["ban", "0.0.0.0/0", "::1", "239.1.2.3", "128.0.0.0/1", "203.0.113.9"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "banned 203.0.113.9 in jail manual for 1h\n");
    assert_eq!(
        stderr(&o),
        "nftban: not banned: 0.0.0.0/0: never banned: a ban of the whole address space would cut the host off\n\
         nftban: not banned: ::1: never banned: loopback is this host itself\n\
         nftban: not banned: 239.1.2.3: never banned: multicast is not a source address\n\
         nftban: not banned: 128.0.0.0/1: never banned: multicast is not a source address\n"
    );
    assert_eq!(set_addrs(&ns, "manual_v4"), ["203.0.113.9"]);
    assert!(set_addrs(&ns, "manual_v4_net").is_empty());
    assert!(set_addrs(&ns, "manual_v6").is_empty());
    assert!(!d.log().contains("ERROR"), "{}", d.log());
}

/// Issue 13, item 9: a ban by hand respects the jail's `ignoreip` (the
/// `manual` jail's is `defaults.ignoreip`) and says why it refused, unless
/// `--force`; `--force` never passes the never-ban list.
#[test]
fn bans_by_hand_respect_ignoreip_unless_forced() {
    kernel_test!();
    let ns = NetNs::create("pol-force").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    // Setup's defaults: ignoreip [127.0.0.0/8, "::1", 192.0.2.99].
    let o = s.cli(&["ban", "192.0.2.99", "192.0.2.98"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "banned 192.0.2.98 in jail manual for 1h\n");
    assert_eq!(
        stderr(&o),
        "nftban: not banned: 192.0.2.99: overlaps ignoreip of jail manual (--force bans it anyway)\n"
    );
    let o = s.cli(&["ban", "--jail", "asterisk", "192.0.2.0/24"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "nftban: not banned: 192.0.2.0/24: overlaps ignoreip of jail asterisk (--force bans it anyway)\n"
    );
    assert!(set_addrs(&ns, "asterisk_v4_24").is_empty());

    let o = s.cli_ok(&["ban", "--force", "192.0.2.99"]);
    assert_eq!(stdout(&o), "banned 192.0.2.99 in jail manual for 1h\n");
    let o = s.cli(&["ban", "--force", "--jail", "asterisk", "192.0.2.0/24", "127.0.0.1"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "banned 192.0.2.0/24 in jail asterisk for 1h\n");
    assert_eq!(
        stderr(&o),
        "nftban: not banned: 127.0.0.1: never banned: loopback is this host itself\n"
    );
    assert_eq!(set_addrs(&ns, "manual_v4"), ["192.0.2.98", "192.0.2.99"]);
    assert_eq!(set_addrs(&ns, "asterisk_v4_24"), ["192.0.2.0/24"]);
    assert_eq!(banned_ips(&s.jail_status("asterisk")), ["192.0.2.0/24"]);
    assert!(
        d.log().contains("Ban 192.0.2.99 for 1h (by hand, forced)"),
        "{}",
        d.log()
    );
}

/// Issue 13, item 9: a jail given twice is an error naming the file and
/// the line of its second occurrence, for `check` (no root needed) and for
/// a reload, which is refused while the running config keeps its jails.
/// (serde_yaml_ng lets the last of two equal map keys win silently.)
#[test]
fn a_jail_given_twice_is_refused_by_check_and_reload() {
    let s = Setup::asterisk("");
    let good = std::fs::read_to_string(&s.config).unwrap();
    let twice = format!(
        "{good}{}",
        asterisk_jail("asterisk", &[&s.log]).replace("asterisk\n", "sshd\n")
    );
    std::fs::write(&s.config, &twice).unwrap();
    // The same jail name again, with another ruleset.
    let lines: Vec<&str> = twice.lines().collect();
    let line = lines.iter().position(|l| *l == "  asterisk:").unwrap() + 1;
    let second = lines.iter().rposition(|l| *l == "  asterisk:").unwrap() + 1;
    assert!(second > line, "{twice}");
    let o = s.cli(&["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "nftban: error: {}:{second}:3: jails.asterisk: given twice (first at line {line}); \
             the last would silently replace the others\n",
            s.config.display()
        )
    );

    kernel_test!();
    std::fs::write(&s.config, &good).unwrap();
    let ns = NetNs::create("pol-dup").unwrap();
    let mut d = Daemon::start(&ns, &s);
    std::fs::write(&s.config, &twice).unwrap();
    let o = s.cli(&["reload"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!(
            "{second}:3: jails.asterisk: given twice (first at line {line})"
        )),
        "{}",
        stderr(&o)
    );
    assert!(d.is_running());
    s.failures("198.51.100.8", 3);
    s.wait_jail("asterisk", "a ban under the running config", |st| {
        st.currently_banned == 1
    });
}

/// `nftables.prefix_sets` changed by a reload: a /27 and a /48 banned
/// while their lengths had no set of their own (in the interval sets) are
/// moved by the reload into their new masked sets, running as long as
/// before, and the /27 keeps dropping the attacker's packets over the
/// veth pair; the other bans are untouched; an unban then lifts both from
/// the kernel, and the attacker passes.
#[test]
fn a_reload_with_new_prefix_sets_moves_running_prefixes() {
    kernel_test!();
    let (pbx, attacker) = pbx_and_attacker("pol-lengths");
    let sip: std::net::SocketAddr = "192.0.2.1:5060".parse().unwrap();
    udp_echo(&pbx, sip).unwrap();
    wait_passes(&attacker, sip);
    let s = Setup::asterisk("");
    let d = Daemon::start(&pbx, &s);
    let pid = d.child.id();
    s.cli_ok(&[
        "ban",
        "192.0.2.64/27",
        "2001:db8:1::/48",
        "198.51.100.0/24",
        "203.0.113.7",
        "--bantime",
        "2h",
    ]);
    assert_eq!(minutes(&pbx, "manual_v4_net"), pairs(&[("192.0.2.64/27", 120)]));
    assert_eq!(minutes(&pbx, "manual_v6_net"), pairs(&[("2001:db8:1::/48", 120)]));
    assert!(!passes(&attacker, sip), "the /27 drops 192.0.2.66");

    s.top("nftables: {prefix_sets: {ipv4: [24, 27], ipv6: [48]}}");
    let o = s.cli_ok(&["reload"]);
    assert!(stdout(&o).contains("reloading"), "{}", stdout(&o));
    let exists = |set: &str| {
        run(pbx.command("nft").args(["list", "set", "inet", "nftban", set]))
            .status
            .success()
    };
    wait_for("the /27 in its own set after the reload", || {
        (exists("manual_v4_27") && !set_addrs(&pbx, "manual_v4_27").is_empty()).then_some(())
    });
    wait_for("the daemon to answer again", || s.try_jail_status("manual"));
    assert_eq!(d.child.id(), pid, "reloaded in place");
    assert_eq!(minutes(&pbx, "manual_v4_27"), pairs(&[("192.0.2.64/27", 120)]));
    assert_eq!(minutes(&pbx, "manual_v6_48"), pairs(&[("2001:db8:1::/48", 120)]));
    assert!(set_addrs(&pbx, "manual_v4_net").is_empty());
    assert!(set_addrs(&pbx, "manual_v6_net").is_empty());
    assert!(!exists("manual_v6_64"), "/64 is no longer configured");
    assert_eq!(set_addrs(&pbx, "manual_v4_24"), ["198.51.100.0/24"]);
    assert_eq!(set_addrs(&pbx, "manual_v4"), ["203.0.113.7"]);
    assert!(
        !passes(&attacker, sip),
        "the /27 still drops 192.0.2.66 from its masked set"
    );
    assert!(
        d.log()
            .contains("the prefix lengths with a set of their own changed: emptied asterisk_v4_net, asterisk_v6_net, manual_v4_net, manual_v6_net;"),
        "{}",
        d.log()
    );

    let o = s.cli_ok(&["unban", "192.0.2.64/27", "2001:db8:1::/48"]);
    assert_eq!(
        stdout(&o),
        "unbanned 192.0.2.64/27 from jail manual\nunbanned 2001:db8:1::/48 from jail manual\n"
    );
    assert!(set_addrs(&pbx, "manual_v4_27").is_empty());
    assert!(set_addrs(&pbx, "manual_v6_48").is_empty());
    assert!(set_addrs(&pbx, "manual_v4_net").is_empty());
    wait_passes(&attacker, sip);
    assert_eq!(
        status_minutes(&s, "manual"),
        pairs(&[("198.51.100.0/24", 120), ("203.0.113.7", 120)])
    );
    assert!(d.stop());
}
