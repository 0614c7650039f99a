//! The SIP kernel meter with the daemon, against the real kernel, in
//! private namespaces joined by a veth pair: a UDP flood to port 5060 is
//! caught by the kernel itself; the daemon learns of it and makes it a ban
//! of its jail (status with origin `kernel meter`, the history, a restart),
//! and `nftban unban` lets the source's packets through again.

use std::net::{SocketAddr, UdpSocket};

use nftban::netns::udp_echo;

use crate::support::*;

/// `n` datagrams from the namespace `from` to `to`, at once.
fn flood(from: &NetNs, to: SocketAddr, n: usize) {
    in_netns(from, || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..n {
            s.send_to(b"REGISTER sip:pbx SIP/2.0\r\n\r\n", to).unwrap();
        }
    });
}

/// (origin, reason) of the history's running bans of the IPv4 `addr`
/// (kept as `addr/32`).
fn history_of(s: &Setup, addr: &str) -> Vec<(String, Option<String>)> {
    let db = rusqlite::Connection::open(s.dir.path().join("nftban.db")).unwrap();
    let mut q = db
        .prepare("SELECT origin, reason FROM bans WHERE net = ?1 AND unbanned_at IS NULL")
        .unwrap();
    q.query_map([format!("{addr}/32")], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_sip_flood_banned_by_the_kernel_is_an_nftban_ban() {
    kernel_test!();
    let (pbx, attacker) = pbx_and_attacker("sip");
    let v4: SocketAddr = "192.0.2.1:5060".parse().unwrap();
    udp_echo(&pbx, v4).unwrap();
    wait_passes(&attacker, v4);

    let s = Setup::asterisk("");
    // A slow rate: what the flood gets through is the burst.
    s.top("sip: {jail: asterisk, rate: 1/minute, burst: 10}");
    let daemon = Daemon::start(&pbx, &s);
    assert_eq!(set_addrs(&pbx, "sip_caught_v4"), Vec::<String>::new());

    flood(&attacker, v4, 100);
    // No log line names it: the kernel caught it, the daemon learned it.
    let st = s.wait_jail("asterisk", "the kernel meter's ban in status", |st| {
        banned_ips(st).contains(&"192.0.2.66")
    });
    let ban = st.banned.iter().find(|b| b.ip == "192.0.2.66").unwrap();
    assert_eq!(ban.reason.as_deref(), Some("kernel meter: over 1/minute"));
    assert!((3590..=3600).contains(&ban.expires_in), "{ban:?}");
    assert_eq!((st.total_banned, st.total_failed), (1, 0));
    // Counted under its origin, as the history names it.
    let raw = s.status_json(&["status", "asterisk"]);
    assert_eq!(raw["bans_by_origin"], serde_json::json!({"kernel meter": 1}), "{raw}");
    let text = stdout(&s.cli_ok(&["status", "asterisk"]));
    assert!(
        text.contains("192.0.2.66 (") && text.contains("left; kernel meter: over 1/minute)"),
        "{text}"
    );
    assert!(text.contains("|- Total by origin:  kernel meter 1\n"), "{text}");
    // In the jail's set; out of the caught set, which stays small.
    wait_for("the caught set emptied", || {
        set_addrs(&pbx, "sip_caught_v4").is_empty().then_some(())
    });
    assert_eq!(set_addrs(&pbx, "asterisk_v4"), ["192.0.2.66"]);
    assert!(!passes(&attacker, v4), "dropped while banned");
    // The metrics' totals come from the same status.
    let total: u64 = s.status_json(&["status"])["jails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["total_banned"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 1);

    // In the history, and listed again after a restart.
    assert!(daemon.stop());
    assert_eq!(
        history_of(&s, "192.0.2.66"),
        [(
            "kernel meter".to_string(),
            Some("kernel meter: over 1/minute".to_string())
        )]
    );
    let _daemon = Daemon::start(&pbx, &s);
    let st = s.jail_status("asterisk");
    let ban = st.banned.iter().find(|b| b.ip == "192.0.2.66").expect("restored");
    assert_eq!(ban.reason.as_deref(), Some("kernel meter: over 1/minute"));
    assert!(!passes(&attacker, v4), "still dropped after the restart");

    // Unban: out of the jail's set, the caught set and the meter (a fresh
    // bucket), so its packets pass again.
    let o = s.cli_ok(&["unban", "192.0.2.66"]);
    assert!(stdout(&o).contains("192.0.2.66"), "{}", stdout(&o));
    assert!(set_addrs(&pbx, "asterisk_v4").is_empty());
    assert!(set_addrs(&pbx, "sip_meter_v4").is_empty());
    assert!(passes(&attacker, v4), "passes after the unban");
    assert!(!banned_ips(&s.jail_status("asterisk")).contains(&"192.0.2.66"));
    // The unban waits in the pending file until the next save (about a
    // second), as bans do.
    wait_for("the unban lifted in the history", || {
        history_of(&s, "192.0.2.66").is_empty().then_some(())
    });
}

/// `sip: {}` with no jail named `sip`: the daemon makes that jail, and
/// `nftban ruleset` shows the meter.
#[test]
fn a_bare_sip_section_has_a_jail_of_its_own() {
    kernel_test!();
    let ns = NetNs::create("sip-bare").unwrap();
    let s = Setup::asterisk("");
    s.top("sip: {}");
    let check = stdout(&s.cli_ok(&["check"]));
    assert!(
        check.contains("sip kernel meter: UDP 5060, TCP 5060, TLS 5061; a source over 20/second (burst 40) is dropped and banned in jail sip (made for it) for "),
        "{check}"
    );
    let text = stdout(&s.cli_ok(&["ruleset"]));
    assert!(text.contains("\tchain sip {\n\t\ttype filter hook prerouting priority raw; policy accept;\n"));
    assert!(text.contains("udp dport 5060 update @sip_meter_v4 { ip saddr timeout 1m limit rate over 20/second burst 40 packets } add @sip_caught_v4 { ip saddr timeout 1h }"), "{text}");
    assert!(
        text.contains("\t\tip saddr @sip_v4 counter packets 0 bytes 0 drop\n"),
        "{text}"
    );
    let _daemon = Daemon::start(&ns, &s);
    let st = s.jail_status("sip");
    assert_eq!(st.currently_banned, 0);
    assert_eq!(stdout(&nft(&ns, &["list", "table", "inet", "nftban"])), text);
}

/// A flood while the daemon is stopped: the table stays, so the kernel
/// still meters, catches and drops; the next daemon learns of the ban at
/// its start, as a ban of the jail with origin `kernel meter`.
#[test]
fn a_flood_while_the_daemon_is_stopped_is_learned_at_its_start() {
    kernel_test!();
    let (pbx, attacker) = pbx_and_attacker("sip-off");
    let v4: SocketAddr = "192.0.2.1:5060".parse().unwrap();
    udp_echo(&pbx, v4).unwrap();
    wait_passes(&attacker, v4);

    let s = Setup::asterisk("");
    s.top("sip: {jail: asterisk, rate: 1/minute, burst: 10}");
    assert!(Daemon::start(&pbx, &s).stop());
    flood(&attacker, v4, 100);
    assert_eq!(
        set_addrs(&pbx, "sip_caught_v4"),
        ["192.0.2.66"],
        "caught with no daemon"
    );
    assert!(!passes(&attacker, v4), "dropped with no daemon");

    let _daemon = Daemon::start(&pbx, &s);
    let st = s.wait_jail("asterisk", "the ban made while stopped", |st| {
        banned_ips(st).contains(&"192.0.2.66")
    });
    let ban = st.banned.iter().find(|b| b.ip == "192.0.2.66").unwrap();
    assert_eq!(ban.reason.as_deref(), Some("kernel meter: over 1/minute"));
    wait_for("the caught set emptied", || {
        set_addrs(&pbx, "sip_caught_v4").is_empty().then_some(())
    });
    assert_eq!(set_addrs(&pbx, "asterisk_v4"), ["192.0.2.66"]);
    // The history is written beside the kernel, not before `status` shows the ban.
    let history = wait_for("the ban in the history", || {
        let h = history_of(&s, "192.0.2.66");
        (!h.is_empty()).then_some(h)
    });
    assert_eq!(
        history,
        [(
            "kernel meter".to_string(),
            Some("kernel meter: over 1/minute".to_string())
        )]
    );
}
