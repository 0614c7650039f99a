//! The daemon's kernel side against the real kernel, in private
//! namespaces: bans that bite in the forward and prerouting hooks of a
//! namespace acting as router, conntrack entries of a banned source
//! removed, overlapping bans of one jail, rule counters in status, and the
//! start-up error without CAP_NET_ADMIN.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use nftban::netns::udp_echo;

use crate::support::*;

fn sh(ns: &NetNs, script: &str) {
    let o = run(ns.command("sh").args(["-c", script]));
    assert!(o.status.success(), "{script}: {}", stderr(&o));
}

/// The chain names of nftban's table.
fn chains(ns: &NetNs) -> Vec<String> {
    stdout(&nft(ns, &["list", "table", "inet", "nftban"]))
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
        wait_passes(&r.client, to);
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

    s.cli_ok(&["ban", "198.51.100.2", "2001:db8:1::/64"]);
    assert!(!passes(&r.client, r.server_v4), "forwarded IPv4 passes while banned");
    assert!(!passes(&r.client, r.server_v6), "forwarded IPv6 passes while banned");
    // No input chain: traffic to the router itself is not this config's job.
    assert!(passes(&r.client, r.router_v4));
    let st = s.jail_status("manual");
    assert!(st.packets >= 2, "{st:?}");
    assert!(st.bytes >= 2 * 28, "{st:?}");
    assert_eq!(st.kernel_errors, 0);

    s.cli_ok(&["unban", "198.51.100.2"]);
    assert!(passes(&r.client, r.server_v4), "still dropped after unban");
    assert!(!passes(&r.client, r.server_v6), "the IPv6 prefix ban stays");
    assert!(d.stop());

    // Prerouting instead: the forward chain goes, the bans stay and bite
    // before routing, for forwarded and local traffic alike.
    s.top("nftables: {hooks: [prerouting]}");
    let d = Daemon::start(&r.router, &s);
    assert_eq!(chains(&r.router), ["prerouting"]);
    assert!(!passes(&r.client, r.server_v6));
    assert!(passes(&r.client, r.server_v4));
    s.cli_ok(&["ban", "198.51.100.2"]);
    assert!(!passes(&r.client, r.server_v4), "prerouting does not drop");
    assert!(!passes(&r.client, r.router_v4));
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
    let (pbx, attacker) = pbx_and_attacker("ct");
    // Conntrack tracks a namespace once a rule there uses it: a table of
    // the test's own, nothing to do with nftban's.
    nft(
        &pbx,
        &["add table inet t; add chain inet t c { type filter hook input priority 0; ct state new,established accept; }"],
    );
    let sip: SocketAddr = "192.0.2.1:5060".parse().unwrap();
    udp_echo(&pbx, sip).unwrap();
    // A socket keeps the namespace it was made in.
    let sock = in_netns(&attacker, || UdpSocket::bind("192.0.2.66:40000").unwrap());
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    sock.connect(sip).unwrap();
    wait_for("the flow to carry packets", || (exchange(&sock, 1) == 1).then_some(()));

    let s = Setup::asterisk("");
    let _d = Daemon::start(&pbx, &s);
    assert_eq!(exchange(&sock, 3), 3);
    let entries = conntrack(&pbx, "192.0.2.66");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].contains("sport=40000 dport=5060"), "{entries:?}");

    s.failures("192.0.2.66", 3);
    s.wait_jail("asterisk", "192.0.2.66 banned", |st| st.currently_banned == 1);
    assert_eq!(conntrack(&pbx, "192.0.2.66"), Vec::<String>::new(), "entry not removed");
    assert_eq!(exchange(&sock, 3), 0, "the flow goes on after the ban");
    assert_eq!(
        conntrack(&pbx, "192.0.2.66"),
        Vec::<String>::new(),
        "dropped packets made an entry"
    );
    assert_eq!(s.jail_status("asterisk").kernel_errors, 0);
}

/// Overlaps are handled, not errors: a prefix over banned hosts leaves
/// them in the hash set (manual and automatic bans alike; a new ban never
/// shortens a running one, tests/policy.rs), failures inside a banned
/// prefix that ends sooner ban the address too, unbanning inside a prefix
/// says which prefix holds it, a wider prefix replaces a narrower one in
/// the interval set.
#[test]
fn overlapping_bans_of_a_jail_agree_with_the_kernel() {
    kernel_test!();
    let ns = NetNs::create("overlap").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    // A family's bans: its hash set (addresses), its masked set (/24s or
    // /64s), then its interval set (other prefixes).
    let elems = |set: &str| -> Vec<String> {
        let len = if set.ends_with("_v4") { 24 } else { 64 };
        [
            set_addrs(&ns, set),
            set_addrs(&ns, &format!("{set}_{len}")),
            set_addrs(&ns, &format!("{set}_net")),
        ]
        .concat()
    };
    s.failures("198.51.100.7", 3);
    s.wait_jail("asterisk", "the automatic ban", |st| st.currently_banned == 1);
    s.cli_ok(&["ban", "--jail", "asterisk", "198.51.100.5", "2001:db8::5"]);
    assert_eq!(elems("asterisk_v4"), ["198.51.100.5", "198.51.100.7"]);

    s.cli_ok(&["ban", "--jail", "asterisk", "198.51.100.0/24", "2001:db8::/64"]);
    assert_eq!(
        elems("asterisk_v4"),
        ["198.51.100.5", "198.51.100.7", "198.51.100.0/24"]
    );
    assert_eq!(elems("asterisk_v6"), ["2001:db8::5", "2001:db8::/64"]);

    // Failures of an address inside the prefix: a ban of its own, as the
    // prefix (banned a moment before, for as long) ends a moment sooner.
    s.failures("198.51.100.9", 3);
    s.wait_jail("asterisk", "the failures inside the prefix", |st| st.total_failed == 6);
    let hosts = ["198.51.100.5", "198.51.100.7", "198.51.100.9"];
    assert_eq!(elems("asterisk_v4"), [&hosts[..], &["198.51.100.0/24"]].concat());
    // Banned by hand for less time than the prefix has left: covered.
    let o = s.cli(&["ban", "--jail", "asterisk", "198.51.100.10", "--bantime", "10m"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("already banned: 198.51.100.10 (inside banned 198.51.100.0/24)"),
        "{}",
        stdout(&o)
    );
    let o = s.cli(&["unban", "198.51.100.11"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("198.51.100.11 is inside banned prefix 198.51.100.0/24 in jail asterisk"),
        "{}",
        stderr(&o)
    );
    // A wider prefix replaces the narrower one.
    s.cli_ok(&["ban", "--jail", "asterisk", "198.51.100.0/23"]);
    assert_eq!(elems("asterisk_v4"), [&hosts[..], &["198.51.100.0/23"]].concat());
    let st = s.jail_status("asterisk");
    assert_eq!(
        banned_ips(&st),
        [&["198.51.100.0/23"][..], &hosts, &["2001:db8::/64", "2001:db8::5"]].concat()
    );
    assert_eq!(st.kernel_errors, 0);
    assert!(!d.log().contains("ERROR"), "{}", d.log());

    // A host and its prefix in one request, host first: only the prefix.
    s.cli_ok(&["ban", "--jail", "asterisk", "203.0.113.5", "203.0.113.0/24"]);
    assert_eq!(
        elems("asterisk_v4"),
        [&hosts[..], &["203.0.113.0/24", "198.51.100.0/23"]].concat()
    );

    // A prefix the kernel refuses (it overlaps an element another tool
    // added behind nftban's back): the address inside it stays.
    s.cli_ok(&["ban", "--jail", "asterisk", "192.0.2.5"]);
    nft(
        &ns,
        &["add element inet nftban asterisk_v4_net { 192.0.2.64/26 timeout 1h }"],
    );
    // (Forced: the prefix overlaps Setup's ignoreip 192.0.2.99. A /23: a
    // /24 would go to the masked set, which overlaps nothing.)
    let o = s.cli(&["ban", "--force", "--jail", "asterisk", "192.0.2.0/23"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("nftban: not banned: 192.0.2.0/23: kernel refused"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        elems("asterisk_v4"),
        [
            &["192.0.2.5"][..],
            &hosts,
            &["203.0.113.0/24", "192.0.2.64/26", "198.51.100.0/23"]
        ]
        .concat()
    );
    let st = s.jail_status("asterisk");
    assert_eq!(st.kernel_errors, 1);
    assert!(banned_ips(&st).contains(&"192.0.2.5"), "{st:?}");
}

/// IPv6 escalation against the real kernel: three addresses of
/// 2001:db8:5::/64 banned from log lines ban the /64, and packets from a
/// fourth address of it, never seen in the log, are dropped over a veth
/// pair; the three address elements stay in the hash set (an escalation,
/// like any ban, never shortens a running one), and the unban of the /64
/// lifts the prefix alone.
#[test]
fn escalated_prefix_drops_a_fourth_address() {
    kernel_test!();
    let (pbx, attacker) = pbx_and_attacker("esc");
    pbx.ip(&["addr", "add", "2001:db8:5::1/64", "dev", "veth0", "nodad"])
        .unwrap();
    // The fourth address: the only global one of the attacker.
    attacker
        .ip(&["addr", "add", "2001:db8:5::d/64", "dev", "veth1", "nodad"])
        .unwrap();
    let to: SocketAddr = "[2001:db8:5::1]:5060".parse().unwrap();
    udp_echo(&pbx, to).unwrap();
    wait_passes(&attacker, to);

    let s = Setup::asterisk("    ipv6_escalation: {prefix: 64, threshold: 3}\n");
    let d = Daemon::start(&pbx, &s);
    s.failures("[2001:db8:5::a]", 3);
    s.failures("[2001:db8:5::b]", 3);
    s.wait_jail("asterisk", "two address bans", |st| st.currently_banned == 2);
    assert!(passes(&attacker, to), "no escalation yet: ::d passes");
    s.failures("[2001:db8:5::c]", 3);
    let st = s.wait_jail("asterisk", "the escalated /64", |st| {
        banned_ips(st).first() == Some(&"2001:db8:5::/64")
    });
    assert_eq!(
        st.banned[0].reason.as_deref(),
        Some("escalated: 3 addresses in 2001:db8:5::/64"),
        "{st:?}"
    );
    assert_eq!(st.currently_banned, 4, "{st:?}");
    assert_eq!(
        set_addrs(&pbx, "asterisk_v6"),
        ["2001:db8:5::a", "2001:db8:5::b", "2001:db8:5::c"]
    );
    let net = set_elements(&pbx, "asterisk_v6_64");
    assert_eq!(net.len(), 1, "{net:?}");
    assert_eq!(net[0].0, "2001:db8:5::/64");
    assert!(
        !passes(&attacker, to),
        "packets from a fourth address of the escalated /64 pass"
    );
    assert!(
        d.log()
            .contains("Ban 2001:db8:5::/64 for 1h (escalated: 3 addresses in 2001:db8:5::/64)"),
        "{}",
        d.log()
    );
    s.cli_ok(&["unban", "2001:db8:5::/64"]);
    assert!(passes(&attacker, to), "unbanned prefix still drops");
    assert_eq!(s.jail_status("asterisk").currently_banned, 3);
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
