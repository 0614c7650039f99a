//! A SIP flood against a real Kamailio, stopped by the kernel meter (issue
//! 11): the bed's Kamailio (tests/support/sip.rs) serves, `nftban run`
//! runs in its namespace with a `sip:` section, SIPp floods it with OPTIONS
//! from one namespace while another SIPp registers with the right
//! password from another. The flood is banned by the kernel within its
//! burst, the good client registers every time, and Kamailio's own
//! counters show what reached it. Every flood is bounded in count (`-m`)
//! and time (`timeout`); nothing is timed.

use crate::sip::kamailio_jails;
use crate::support::*;

/// The meter's rate and burst: small, so that a test flood is well over
/// them and a registering client well under (2 registrations a second, 2
/// requests each).
const RATE: &str = "10/second";
const BURST: u64 = 20;
/// Requests of a flood that may reach Kamailio beyond the burst: tokens
/// the bucket regains while the first packets arrive.
const SLACK: u64 = 3;
/// Packets per flood, and their rate.
const FLOOD: u32 = 2_000;
const FLOOD_RATE: u32 = 1_000;

/// Packets the meter's chain dropped so far: every counter of chain `sip`
/// (its only counted rules drop), and those of the meter's rules alone.
fn dropped(bed: &Lease) -> (u64, u64) {
    let counters = rule_counters(&bed.ns, "sip");
    let all = counters.iter().map(|(_, p)| p).sum();
    let meter = counters
        .iter()
        .filter(|(rule, _)| rule.contains("sip_meter_v4"))
        .map(|(_, p)| p)
        .sum();
    (all, meter)
}

#[test]
fn sipp_flood_is_banned_by_the_kernel_meter_while_a_client_registers() {
    kernel_test!(KAMAILIO, SIPP);
    let bed = sip_bed();
    let flooder = bed.client("flood");
    let good = bed.client("good");
    let s = Setup::asterisk("");
    kamailio_jails(&s, &bed.log);
    s.top(&format!("sip: {{jail: kamailio, rate: {RATE}, burst: {BURST}}}"));
    let daemon = Daemon::start(&bed.ns, &s);
    let dir = s.dir.path();
    let right = Client::register_scenario(dir, PASSWORD, 200);
    let flood = Client::options_scenario(dir);
    let addr = flooder.addr.as_str();

    // The flood, while the good client registers 10 times (2 a second).
    let flood_before = bed.requests_from(addr);
    let good_before = bed.requests_from(&good.addr);
    std::thread::scope(|sc| {
        let g = sc.spawn(|| good.sipp(dir, &right, 5070, 10, 2, 30));
        assert!(
            flooder.sipp(dir, &flood, 5080, FLOOD, FLOOD_RATE, 20),
            "the flood did not run to its end"
        );
        assert!(g.join().unwrap(), "the good client failed to register during the flood");
    });
    let through = bed.requests_from(addr) - flood_before;
    let (all, meter) = dropped(&bed);
    eprintln!("flood 1: {through} of {FLOOD} reached Kamailio; the kernel dropped {all} ({meter} at the meter's rule)");
    assert!(
        (1..=BURST + SLACK).contains(&through),
        "{through} of the flood's {FLOOD} requests reached Kamailio (burst {BURST})"
    );
    assert!(meter >= 1, "the meter's rule dropped nothing");
    assert_eq!(
        all + through,
        u64::from(FLOOD),
        "every packet of the flood either reached Kamailio or was dropped by the meter's chain"
    );
    let good_during = bed.requests_from(&good.addr) - good_before;
    assert!(good_during >= 20, "10 registrations, 2 requests each: {good_during}");

    // No log line names it: status learns the ban from the kernel.
    let st = s.wait_jail("kamailio", "the kernel meter's ban in status", |st| {
        banned_ips(st).contains(&addr)
    });
    assert_eq!(banned_ips(&st), [addr], "only the flooder is banned: {st:?}");
    assert_eq!(st.banned[0].reason.as_deref(), Some("kernel meter: over 10/second"));
    let json = s.status_json(&["status", "kamailio"]);
    assert_eq!(json["banned"][0]["ip"], addr, "{json}");
    assert_eq!(json["banned"][0]["reason"], "kernel meter: over 10/second", "{json}");

    // Banned: a second flood, and the good client registering beside it;
    // Kamailio receives the good client's requests and nothing else.
    let flood_banned = bed.requests_from(addr);
    let good_banned = bed.requests_from(&good.addr);
    let rcv_banned = bed.rcv_requests();
    let (all_banned, _) = dropped(&bed);
    std::thread::scope(|sc| {
        let g = sc.spawn(|| good.sipp(dir, &right, 5071, 5, 2, 30));
        assert!(
            flooder.sipp(dir, &flood, 5081, FLOOD, FLOOD_RATE, 20),
            "the flood did not run to its end"
        );
        assert!(
            g.join().unwrap(),
            "the good client failed to register while the flooder was banned"
        );
    });
    let good_delta = bed.requests_from(&good.addr) - good_banned;
    let rcv_delta = bed.rcv_requests() - rcv_banned;
    let (all, _) = dropped(&bed);
    eprintln!("flood 2 (banned): Kamailio received {rcv_delta} requests, {good_delta} of the good client; the kernel dropped {}", all - all_banned);
    assert_eq!(
        bed.requests_from(addr),
        flood_banned,
        "the banned flooder reached Kamailio"
    );
    assert!(good_delta >= 10, "5 registrations, 2 requests each: {good_delta}");
    assert_eq!(
        rcv_delta, good_delta,
        "Kamailio received requests other than the good client's"
    );
    assert_eq!(all - all_banned, u64::from(FLOOD), "the kernel dropped the whole flood");

    // A restart: the ban is still listed, and still holds.
    assert!(daemon.stop(), "daemon did not exit cleanly on SIGTERM");
    let daemon = Daemon::start(&bed.ns, &s);
    let st = s.jail_status("kamailio");
    assert_eq!(banned_ips(&st), [addr], "restored: {st:?}");
    assert_eq!(st.banned[0].reason.as_deref(), Some("kernel meter: over 10/second"));
    assert!(flooder.sipp(dir, &flood, 5082, 200, FLOOD_RATE, 10));
    assert_eq!(
        bed.requests_from(addr),
        flood_banned,
        "the flooder reached Kamailio after the restart"
    );

    // Unban: its requests reach Kamailio again, under the rate.
    let o = s.cli_ok(&["unban", addr]);
    assert!(stdout(&o).contains(addr), "{}", stdout(&o));
    assert!(!banned_ips(&s.jail_status("kamailio")).contains(&addr));
    assert!(flooder.sipp(dir, &flood, 5083, 5, 5, 10));
    assert_eq!(
        bed.requests_from(addr),
        flood_banned + 5,
        "the unbanned source's requests did not all reach Kamailio"
    );
    assert!(daemon.stop(), "daemon did not exit cleanly on SIGTERM");
}

/// SIPp over TCP: a flood of OPTIONS on one connection (`-t t1`, one SYN
/// for all of it) is metered by its requests, not its connections, and
/// banned within the burst, while a client registering over UDP is not
/// touched. Kamailio also listens on TCP 5060 in the bed.
#[test]
fn sipp_flood_over_one_tcp_connection_is_banned_within_its_burst() {
    kernel_test!(KAMAILIO, SIPP);
    let bed = sip_bed();
    let flooder = bed.client("tcpflood");
    let good = bed.client("tcpgood");
    let s = Setup::asterisk("");
    kamailio_jails(&s, &bed.log);
    s.top(&format!("sip: {{jail: kamailio, rate: {RATE}, burst: {BURST}}}"));
    let _daemon = Daemon::start(&bed.ns, &s);
    let dir = s.dir.path();
    let right = Client::register_scenario(dir, PASSWORD, 200);
    let flood = Client::options_scenario(dir);
    let addr = flooder.addr.as_str();

    let before = bed.requests_from(addr);
    std::thread::scope(|sc| {
        let g = sc.spawn(|| good.sipp(dir, &right, 5070, 6, 2, 30));
        // Its connection is cut by the ban: SIPp may report failure.
        flooder.sipp_with(dir, &flood, 5080, 500, 500, 20, &["-t", "t1"]);
        assert!(g.join().unwrap(), "the good client failed to register during the flood");
    });
    let through = bed.requests_from(addr) - before;
    eprintln!("TCP flood: {through} of 500 reached Kamailio");
    // The SYN and the handshake's last ACK aside, each request is a PSH.
    assert!(
        (1..=BURST + SLACK).contains(&through),
        "{through} of the TCP flood's 500 requests reached Kamailio (burst {BURST})"
    );
    let st = s.wait_jail("kamailio", "the TCP flooder's kernel meter ban", |st| {
        banned_ips(st).contains(&addr)
    });
    assert_eq!(banned_ips(&st), [addr], "only the flooder is banned: {st:?}");
    assert_eq!(st.banned[0].reason.as_deref(), Some("kernel meter: over 10/second"));
}
