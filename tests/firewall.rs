//! The daemon's kernel side against the real kernel, in private
//! namespaces: bans that bite in the forward and prerouting hooks of a
//! namespace acting as router, conntrack entries of a banned source
//! removed, overlapping bans of one jail, rule counters in status, and the
//! start-up error without CAP_NET_ADMIN.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use nftban::netns::{udp_echo, udp_probe};

use crate::support::*;

const WAIT: Duration = Duration::from_millis(800);

fn registration(addr: &str) -> String {
    format!("{} NOTICE[31015]: chan_sip.c:25824 in handle_request_register: Registration from '<sip:100@192.0.2.1>' failed for '{addr}:5060' - Wrong password", asterisk_now())
}

fn sh(ns: &NetNs, script: &str) {
    let o = run(ns.command("sh").args(["-c", script]));
    assert!(o.status.success(), "{script}: {}", stderr(&o));
}

/// The chain names of nftban's table.
fn chains(ns: &NetNs) -> Vec<String> {
    let o = run(ns.command("nft").args(["list", "table", "inet", "nftban"]));
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("chain ")?.strip_suffix(" {").map(String::from))
        .collect()
}

/// client (198.51.100.2, 2001:db8:1::2) ── router ── server (203.0.113.2,
/// 2001:db8:2::2), the router forwarding, a UDP echo on the server and
/// on the router.
struct Routed {
    client: NetNs,
    router: NetNs,
    _server: NetNs,
    server_v4: SocketAddr,
    server_v6: SocketAddr,
    router_v4: SocketAddr,
}

fn routed() -> Routed {
    let client = NetNs::create("fwd-cli").unwrap();
    let router = NetNs::create("fwd-rtr").unwrap();
    let server = NetNs::create("fwd-srv").unwrap();
    NetNs::link_named(&router, "toc", "198.51.100.1/24", &client, "eth0", "198.51.100.2/24").unwrap();
    NetNs::link_named(&router, "tos", "203.0.113.1/24", &server, "eth0", "203.0.113.2/24").unwrap();
    for (ns, dev, addr) in [
        (&router, "toc", "2001:db8:1::1/64"),
        (&client, "eth0", "2001:db8:1::2/64"),
        (&router, "tos", "2001:db8:2::1/64"),
        (&server, "eth0", "2001:db8:2::2/64"),
    ] {
        ns.ip(&["addr", "add", addr, "dev", dev, "nodad"]).unwrap();
    }
    client.ip(&["route", "add", "default", "via", "198.51.100.1"]).unwrap();
    client
        .ip(&["-6", "route", "add", "default", "via", "2001:db8:1::1"])
        .unwrap();
    server.ip(&["route", "add", "default", "via", "203.0.113.1"]).unwrap();
    server
        .ip(&["-6", "route", "add", "default", "via", "2001:db8:2::1"])
        .unwrap();
    sh(
        &router,
        "echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/ipv6/conf/all/forwarding",
    );
    let r = Routed {
        server_v4: "203.0.113.2:5060".parse().unwrap(),
        server_v6: "[2001:db8:2::2]:5060".parse().unwrap(),
        router_v4: "198.51.100.1:5060".parse().unwrap(),
        client,
        router,
        _server: server,
    };
    udp_echo(&r._server, r.server_v4).unwrap();
    udp_echo(&r._server, r.server_v6).unwrap();
    udp_echo(&r.router, r.router_v4).unwrap();
    for to in [r.server_v4, r.server_v6, r.router_v4] {
        wait_for(&format!("{to} to answer through the router"), || {
            udp_probe(&r.client, to, WAIT).unwrap().then_some(())
        });
    }
    r
}

/// `forward` makes bans bite for routed traffic (what containers get);
/// `prerouting` drops before routing; chains of hooks no longer
/// configured go at the next start.
#[test]
fn bans_drop_forwarded_packets_in_forward_and_prerouting() {
    kernel_test!();
    let r = routed();
    let s = Setup::asterisk("");
    s.top("nftables: {hooks: [forward]}");
    let d = Daemon::start(&r.router, &s);
    assert_eq!(chains(&r.router), ["forward"]);

    let o = s.cli(&["ban", "198.51.100.2", "2001:db8:1::/64"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !udp_probe(&r.client, r.server_v4, WAIT).unwrap(),
        "forwarded IPv4 passes while banned"
    );
    assert!(
        !udp_probe(&r.client, r.server_v6, WAIT).unwrap(),
        "forwarded IPv6 passes while banned"
    );
    // No input chain: traffic to the router itself is not this config's job.
    assert!(udp_probe(&r.client, r.router_v4, WAIT).unwrap());
    let st = s.status("manual").unwrap();
    assert!(st["packets"].as_u64().unwrap() >= 2, "{st}");
    assert!(st["bytes"].as_u64().unwrap() >= 2 * 28, "{st}");
    assert_eq!(st["kernel_errors"], 0);

    let o = s.cli(&["unban", "198.51.100.2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        udp_probe(&r.client, r.server_v4, WAIT).unwrap(),
        "still dropped after unban"
    );
    assert!(
        !udp_probe(&r.client, r.server_v6, WAIT).unwrap(),
        "the IPv6 prefix ban stays"
    );
    assert!(d.stop());

    // Prerouting instead: the forward chain goes, the bans stay and bite
    // before routing, for forwarded and local traffic alike.
    s.top("nftables: {hooks: [prerouting]}");
    let d = Daemon::start(&r.router, &s);
    assert_eq!(chains(&r.router), ["prerouting"]);
    assert!(!udp_probe(&r.client, r.server_v6, WAIT).unwrap());
    assert!(udp_probe(&r.client, r.server_v4, WAIT).unwrap());
    let o = s.cli(&["ban", "198.51.100.2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !udp_probe(&r.client, r.server_v4, WAIT).unwrap(),
        "prerouting does not drop"
    );
    assert!(!udp_probe(&r.client, r.router_v4, WAIT).unwrap());
    let o = s.cli(&["status"]);
    assert!(stdout(&o).contains("Kernel errors:       0"), "{}", stdout(&o));
    assert!(d.stop());
}

/// `conntrack -L -s SRC` inside `ns` (the tool only reads state back).
fn conntrack(ns: &NetNs, src: &str) -> Vec<String> {
    let o = run(ns.command("conntrack").args(["-L", "-s", src]));
    assert!(
        o.status.success(),
        "conntrack -L (apt-get install conntrack): {}",
        stderr(&o)
    );
    stdout(&o).lines().map(String::from).collect()
}

/// Send `n` datagrams on `sock` (one flow: the same addresses and ports),
/// each waiting for its echo; returns how many came back.
fn exchange(sock: &UdpSocket, n: usize) -> usize {
    let mut buf = [0u8; 512];
    (0..n)
        .filter(|_| {
            sock.send(b"REGISTER sip:100@nftban SIP/2.0\r\n\r\n").unwrap();
            sock.recv(&mut buf).is_ok()
        })
        .count()
}

/// An ongoing UDP flow has a conntrack entry; once its source is banned
/// (automatically, from log lines) the entry is gone and the flow stops.
#[test]
fn ban_removes_the_conntrack_entries_of_an_ongoing_flow() {
    kernel_test!();
    let pbx = NetNs::create("ct-pbx").unwrap();
    let attacker = NetNs::create("ct-atk").unwrap();
    NetNs::link(&pbx, "192.0.2.1/24", &attacker, "192.0.2.66/24").unwrap();
    // Conntrack tracks a namespace once a rule there uses it: a table of
    // the test's own, nothing to do with nftban's.
    let o = run(pbx.command("nft").args([
        "add table inet t; add chain inet t c { type filter hook input priority 0; ct state new,established accept; }",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let sip: SocketAddr = "192.0.2.1:5060".parse().unwrap();
    udp_echo(&pbx, sip).unwrap();
    // A socket keeps the namespace it was made in.
    let sock = std::thread::scope(|sc| {
        sc.spawn(|| {
            attacker.enter().unwrap();
            UdpSocket::bind("192.0.2.66:40000").unwrap()
        })
        .join()
        .unwrap()
    });
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    sock.connect(sip).unwrap();
    wait_for("the flow to carry packets", || (exchange(&sock, 1) == 1).then_some(()));

    let s = Setup::asterisk("");
    let _d = Daemon::start(&pbx, &s);
    assert_eq!(exchange(&sock, 3), 3);
    let entries = conntrack(&pbx, "192.0.2.66");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].contains("sport=40000 dport=5060"), "{entries:?}");

    let a = registration("192.0.2.66");
    s.append(&[&a, &a, &a]);
    wait_for("192.0.2.66 banned", || {
        s.status("asterisk").filter(|st| st["currently_banned"] == 1)
    });
    assert_eq!(conntrack(&pbx, "192.0.2.66"), Vec::<String>::new(), "entry not removed");
    assert_eq!(exchange(&sock, 3), 0, "the flow goes on after the ban");
    assert_eq!(
        conntrack(&pbx, "192.0.2.66"),
        Vec::<String>::new(),
        "dropped packets made an entry"
    );
    assert_eq!(s.status("asterisk").unwrap()["kernel_errors"], 0);
}

/// Overlaps are handled, not errors: a prefix over banned hosts replaces
/// them (manual and automatic bans alike), failures inside a banned prefix
/// add nothing, unbanning inside a prefix says which prefix holds it.
#[test]
fn overlapping_bans_of_a_jail_agree_with_the_kernel() {
    kernel_test!();
    let ns = NetNs::create("overlap").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    // A family's bans: its hash set (addresses) then its interval set (prefixes).
    let elems = |set: &str| -> Vec<String> {
        let mut all: Vec<String> = set_elements(&ns, set).into_iter().map(|e| e.0).collect();
        all.extend(set_elements(&ns, &format!("{set}_net")).into_iter().map(|e| e.0));
        all
    };
    let a = registration("198.51.100.7");
    s.append(&[&a, &a, &a]);
    wait_for("the automatic ban", || {
        s.status("asterisk").filter(|st| st["currently_banned"] == 1)
    });
    let o = s.cli(&["ban", "--jail", "asterisk", "198.51.100.5", "2001:db8::5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(elems("asterisk_v4"), ["198.51.100.5", "198.51.100.7"]);

    let o = s.cli(&["ban", "--jail", "asterisk", "198.51.100.0/24", "2001:db8::/64"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(elems("asterisk_v4"), ["198.51.100.0/24"]);
    assert_eq!(elems("asterisk_v6"), ["2001:db8::/64"]);

    // Failures of an address inside the prefix: counted, no new element.
    let b = registration("198.51.100.9");
    s.append(&[&b, &b, &b]);
    wait_for("the failures inside the prefix", || {
        s.status("asterisk").filter(|st| st["total_failed"] == 6)
    });
    assert_eq!(elems("asterisk_v4"), ["198.51.100.0/24"]);
    let o = s.cli(&["ban", "--jail", "asterisk", "198.51.100.10"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("already banned: 198.51.100.10 (inside banned 198.51.100.0/24)"),
        "{}",
        stdout(&o)
    );
    let o = s.cli(&["unban", "198.51.100.7"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("198.51.100.7 is inside banned prefix 198.51.100.0/24 in jail asterisk"),
        "{}",
        stderr(&o)
    );
    // A wider prefix replaces the narrower one.
    let o = s.cli(&["ban", "--jail", "asterisk", "198.51.100.0/23"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(elems("asterisk_v4"), ["198.51.100.0/23"]);
    let st = s.status("asterisk").unwrap();
    let ips: Vec<&str> = st["banned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["ip"].as_str().unwrap())
        .collect();
    assert_eq!(ips, ["198.51.100.0/23", "2001:db8::/64"]);
    assert_eq!(st["kernel_errors"], 0);
    assert!(!d.log().contains("ERROR"), "{}", d.log());

    // A host and its prefix in one request, host first: only the prefix.
    let o = s.cli(&["ban", "--jail", "asterisk", "203.0.113.5", "203.0.113.0/24"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(elems("asterisk_v4"), ["198.51.100.0/23", "203.0.113.0/24"]);

    // A prefix the kernel refuses (it overlaps an element another tool
    // added behind nftban's back): the bans it was to replace come back.
    let o = s.cli(&["ban", "--jail", "asterisk", "192.0.2.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(ns
        .command("nft")
        .args(["add element inet nftban asterisk_v4_net { 192.0.2.64/26 timeout 1h }"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = s.cli(&["ban", "--jail", "asterisk", "192.0.2.0/24"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("nftban: not banned: 192.0.2.0/24: kernel refused"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        elems("asterisk_v4"),
        ["192.0.2.5", "192.0.2.64/26", "198.51.100.0/23", "203.0.113.0/24"]
    );
    let st = s.status("asterisk").unwrap();
    assert_eq!(st["kernel_errors"], 1);
    assert!(
        st["banned"].as_array().unwrap().iter().any(|b| b["ip"] == "192.0.2.5"),
        "{st}"
    );
}

/// IPv6 escalation against the real kernel: three addresses of
/// 2001:db8:5::/64 banned from log lines ban the /64, and packets from a
/// fourth address of it, never seen in the log, are dropped over a veth
/// pair; the three address elements are gone from the hash set.
#[test]
fn escalated_prefix_drops_a_fourth_address() {
    kernel_test!();
    let pbx = NetNs::create("esc-pbx").unwrap();
    let attacker = NetNs::create("esc-atk").unwrap();
    NetNs::link(&pbx, "192.0.2.1/24", &attacker, "192.0.2.66/24").unwrap();
    pbx.ip(&["addr", "add", "2001:db8:5::1/64", "dev", "veth0", "nodad"])
        .unwrap();
    // The fourth address: the only global one of the attacker.
    attacker
        .ip(&["addr", "add", "2001:db8:5::d/64", "dev", "veth1", "nodad"])
        .unwrap();
    let to: SocketAddr = "[2001:db8:5::1]:5060".parse().unwrap();
    udp_echo(&pbx, to).unwrap();
    wait_for("IPv6 on the veth pair", || {
        udp_probe(&attacker, to, WAIT).unwrap().then_some(())
    });

    let s = Setup::asterisk("    ipv6_escalation: {prefix: 64, threshold: 3}\n");
    let d = Daemon::start(&pbx, &s);
    let lines: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|h| std::iter::repeat_n(registration(&format!("[2001:db8:5::{h}]")), 3))
        .collect();
    s.append(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    wait_for("two address bans", || {
        s.status("asterisk").filter(|st| st["currently_banned"] == 2)
    });
    assert!(udp_probe(&attacker, to, WAIT).unwrap(), "no escalation yet: ::d passes");
    let c = registration("[2001:db8:5::c]");
    s.append(&[&c, &c, &c]);
    let st = wait_for("the escalated /64", || {
        s.status("asterisk")
            .filter(|st| st["banned"][0]["ip"] == "2001:db8:5::/64")
    });
    assert_eq!(
        st["banned"][0]["reason"], "escalated: 3 addresses in 2001:db8:5::/64",
        "{st}"
    );
    assert_eq!(st["currently_banned"], 1, "{st}");
    assert!(set_elements(&pbx, "asterisk_v6").is_empty());
    let net = set_elements(&pbx, "asterisk_v6_net");
    assert_eq!(net.len(), 1, "{net:?}");
    assert_eq!(net[0].0, "2001:db8:5::/64");
    assert!(
        !udp_probe(&attacker, to, WAIT).unwrap(),
        "packets from a fourth address of the escalated /64 pass"
    );
    assert!(
        d.log()
            .contains("Ban 2001:db8:5::/64 for 1h (escalated: 3 addresses in 2001:db8:5::/64)"),
        "{}",
        d.log()
    );
    let o = s.cli(&["unban", "2001:db8:5::/64"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(udp_probe(&attacker, to, WAIT).unwrap(), "unbanned prefix still drops");
}

/// Seed FAQ row 2: without CAP_NET_ADMIN, `nftban run` stops at once with
/// a message that names the capability.
#[test]
fn run_without_cap_net_admin_says_so() {
    kernel_test!();
    let ns = NetNs::create("nocap").unwrap();
    let s = Setup::asterisk("");
    use std::os::unix::fs::PermissionsExt;
    // The unprivileged user must be able to read the config.
    for (p, mode) in [
        (s.dir.path(), 0o755),
        (s.config.as_path(), 0o644),
        (s.log.as_path(), 0o644),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let o = run(ns
        .command("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(env!("CARGO_BIN_EXE_nftban"))
        .args(["run", "--config"])
        .arg(&s.config));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("nftban: error: permission denied talking to nf_tables: nftban needs CAP_NET_ADMIN"),
        "{err}"
    );
}
