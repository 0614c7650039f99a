//! Kernel tests for [`super::Netlink`]: each runs in a private network
//! namespace of its own (so the host's ruleset is never touched) and reads
//! the kernel state back with `nft`, which the test thread's children
//! inherit the namespace from. Skipped with a message when not root.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use ipnet::IpNet;

use super::Netlink;
use crate::firewall::{render_ruleset, Action, Ban, Counter, Error, Firewall, Hook, Notice, TableSpec};

/// Move this test's thread into a new network namespace and open the
/// firewall there; `None` (after saying so) when that needs root we lack.
fn private_netns() -> Option<Netlink> {
    // SAFETY: unshare(2) takes no pointers; CLONE_NEWNET only changes the
    // network namespace of the calling thread (libtest runs each test on a
    // thread of its own), which nothing else in the test relies on.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
            println!("skipped: needs root to create a private network namespace");
            return None;
        }
        panic!("unshare(CLONE_NEWNET): {e}");
    }
    Some(Netlink::open().expect("open nf_tables in the new namespace"))
}

fn nft_command() -> Command {
    Command::new(if std::path::Path::new("/usr/sbin/nft").exists() {
        "/usr/sbin/nft"
    } else {
        "nft"
    })
}

fn nft(args: &[&str]) -> String {
    let out = nft_command().args(args).output().expect("run nft");
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("nft prints UTF-8")
}

/// Run `nft -f -` on `script`, as another tool would change the table.
fn nft_script(script: &str) {
    use std::io::Write;
    let mut child = nft_command()
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run nft");
    child
        .stdin
        .take()
        .expect("nft's stdin")
        .write_all(script.as_bytes())
        .expect("write to nft");
    assert!(child.wait().expect("wait for nft").success(), "nft -f: {script}");
}

fn spec(jails: &[&str], action: Action) -> TableSpec {
    TableSpec {
        table: "nftban".into(),
        action,
        hooks: vec![Hook::Input],
        jails: jails.iter().map(|j| j.to_string()).collect(),
        prefix_sets: crate::firewall::PrefixSets::default(),
        sip: None,
    }
}

fn net(s: &str) -> IpNet {
    s.parse()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .expect("address or prefix")
}

fn ban(jail: &str, addr: &str, timeout: Duration) -> Ban {
    Ban {
        jail: jail.into(),
        net: net(addr),
        timeout,
    }
}

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// The elements of one set as nft lists them: element text → its timeout.
fn nft_elements(set: &str) -> BTreeMap<String, String> {
    let text = nft(&["list", "set", "inet", "nftban", set]);
    let Some(start) = text.find("elements = {") else {
        return BTreeMap::new();
    };
    let body = &text[start + "elements = {".len()..];
    let body = &body[..body.find('}').expect("closing brace")];
    body.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let words: Vec<&str> = item.split_whitespace().collect();
            let timeout = words
                .iter()
                .position(|w| *w == "timeout")
                .map(|i| words[i + 1].to_string())
                .unwrap_or_default();
            (words[0].to_string(), timeout)
        })
        .collect()
}

/// The elements of a jail's three sets of one family (`set` is the
/// addresses' set, `sshd_v4`): addresses, masked prefixes (nft lists their
/// network addresses; shown here with their length), other prefixes.
fn both(set: &str) -> BTreeMap<String, String> {
    let mut all = nft_elements(set);
    let len = if set.ends_with("_v4") { 24 } else { 64 };
    all.extend(
        nft_elements(&format!("{set}_{len}"))
            .into_iter()
            .map(|(k, v)| (format!("{k}/{len}"), v)),
    );
    all.extend(nft_elements(&format!("{set}_net")));
    all
}

fn rule_lines() -> Vec<String> {
    nft(&["list", "table", "inet", "nftban"])
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(" saddr ") && l.contains(" @"))
        .map(String::from)
        .collect()
}

fn set_names() -> Vec<String> {
    nft(&["list", "sets", "table", "inet", "nftban"])
        .lines()
        .filter_map(|l| l.trim().strip_prefix("set ")?.strip_suffix(" {").map(String::from))
        .collect()
}

fn golden(action: Action) {
    let Some(mut fw) = private_netns() else { return };
    let spec = spec(&["sshd", "manual"], action);
    fw.setup(&spec).unwrap();
    assert_eq!(nft(&["list", "table", "inet", "nftban"]), render_ruleset(&spec));
}

#[test]
fn setup_creates_what_render_ruleset_says_drop() {
    golden(Action::Drop);
}

#[test]
fn setup_creates_what_render_ruleset_says_reject() {
    golden(Action::Reject);
}

/// `nftables.prefix_sets` with more lengths: a masked set and a rule per
/// length, as `nftban ruleset` says (`ip saddr & 255.255.252.0 ==
/// @sshd_v4_22`).
#[test]
fn setup_creates_what_render_ruleset_says_with_more_prefix_sets() {
    let Some(mut fw) = private_netns() else { return };
    let spec = TableSpec {
        prefix_sets: crate::firewall::PrefixSets::new(&[16, 24, 22], &[48, 64]),
        ..spec(&["sshd"], Action::Drop)
    };
    fw.setup(&spec).unwrap();
    let listed = nft(&["list", "table", "inet", "nftban"]);
    assert_eq!(listed, render_ruleset(&spec));
    assert!(
        listed.contains("ip saddr & 255.255.252.0 == @sshd_v4_22 counter"),
        "{listed}"
    );
    assert!(
        listed.contains("ip6 saddr & ffff:ffff:ffff:: == @sshd_v6_48 counter"),
        "{listed}"
    );
}

/// A prefix goes to the set of its length; when the lengths change, setup
/// empties the interval set of the family whose lengths changed (a /22
/// banned before 22 had a set would hide there from an unban), keeps the
/// other sets' elements, and a re-add (the restore after setup) puts the
/// prefix where it now belongs; a second setup with the same lengths
/// empties nothing.
#[test]
fn changed_prefix_sets_move_prefixes_out_of_the_interval_set() {
    let Some(mut fw) = private_netns() else { return };
    fw.setup(&spec(&["sshd"], Action::Drop)).unwrap();
    let bans = [
        ban("sshd", "10.20.4.0/22", HOUR),
        ban("sshd", "198.51.100.0/24", HOUR),
        ban("sshd", "192.0.2.1", HOUR),
        ban("sshd", "2001:db8:1::/48", HOUR),
    ];
    fw.add(&bans).unwrap();
    assert!(nft_elements("sshd_v4_net").contains_key("10.20.4.0/22"));
    assert!(nft_elements("sshd_v6_net").contains_key("2001:db8:1::/48"));
    let listed = |fw: &mut Netlink| -> Vec<String> {
        let mut v: Vec<String> = fw.list("sshd").unwrap().iter().map(|e| e.net.to_string()).collect();
        v.sort();
        v
    };

    let wider = TableSpec {
        prefix_sets: crate::firewall::PrefixSets::new(&[24, 22], &[48]),
        ..spec(&["sshd"], Action::Drop)
    };
    fw.setup(&wider).unwrap();
    assert_eq!(listed(&mut fw), ["192.0.2.1/32", "198.51.100.0/24"]);
    fw.add(&bans).unwrap();
    assert_eq!(nft_elements("sshd_v4_22").keys().collect::<Vec<_>>(), ["10.20.4.0"]);
    assert_eq!(nft_elements("sshd_v6_48").keys().collect::<Vec<_>>(), ["2001:db8:1::"]);
    assert!(nft_elements("sshd_v4_net").is_empty());
    assert!(nft_elements("sshd_v6_net").is_empty());
    assert_eq!(
        listed(&mut fw),
        ["10.20.4.0/22", "192.0.2.1/32", "198.51.100.0/24", "2001:db8:1::/48"]
    );

    fw.setup(&wider).unwrap();
    fw.delete("sshd", &[net("10.20.4.0/22")]).unwrap();
    assert_eq!(listed(&mut fw), ["192.0.2.1/32", "198.51.100.0/24", "2001:db8:1::/48"]);
}

#[test]
fn elements_keep_their_own_timeouts() {
    let Some(mut fw) = private_netns() else { return };
    fw.setup(&spec(&["sshd"], Action::Drop)).unwrap();
    fw.add(&[
        ban("sshd", "192.0.2.1", MIN),
        ban("sshd", "192.0.2.2", HOUR),
        ban("sshd", "198.51.100.0/24", 5 * MIN),
        ban("sshd", "2001:db8::1", MIN),
        ban("sshd", "2001:db8::2", HOUR),
        ban("sshd", "2001:db8:1::/48", 2 * HOUR),
    ])
    .unwrap();
    let v4 = both("sshd_v4");
    let v6 = both("sshd_v6");
    let want = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    };
    assert_eq!(
        v4,
        want(&[("192.0.2.1", "1m"), ("192.0.2.2", "1h"), ("198.51.100.0/24", "5m")])
    );
    assert_eq!(
        v6,
        want(&[("2001:db8::1", "1m"), ("2001:db8::2", "1h"), ("2001:db8:1::/48", "2h")])
    );

    // Adding an element again refreshes its timeout (kernels from about
    // 6.10 on; older ones keep the old timeout, see docs/firewall.md).
    fw.add(&[ban("sshd", "192.0.2.1", 2 * HOUR)]).unwrap();
    assert_eq!(both("sshd_v4")["192.0.2.1"], "2h");
}

/// `holds` answers for one element of one set, present or not, without a
/// listing; the kernel answers ENOENT for a set that is not there too.
#[test]
fn holds_looks_up_one_element() {
    let Some(mut fw) = private_netns() else { return };
    fw.setup(&spec(&["sshd"], Action::Drop)).unwrap();
    fw.add(&[ban("sshd", "192.0.2.1", HOUR), ban("sshd", "2001:db8::2", HOUR)])
        .unwrap();
    assert!(fw.holds("sshd_v4", &net("192.0.2.1")).unwrap());
    assert!(!fw.holds("sshd_v4", &net("192.0.2.2")).unwrap());
    assert!(fw.holds("sshd_v6", &net("2001:db8::2")).unwrap());
    assert!(!fw.holds("sshd_v6", &net("2001:db8::1")).unwrap());
    fw.delete("sshd", &[net("192.0.2.1")]).unwrap();
    assert!(!fw.holds("sshd_v4", &net("192.0.2.1")).unwrap());
    assert!(!fw.holds("nosuch_v4", &net("192.0.2.1")).unwrap());
}

/// A /24 and a /64 go into the masked hash sets, one element each (their
/// network address), not into the interval sets; the masked lookup drops
/// every address of the /24 and nothing outside it; `list` gives them back
/// as prefixes; `delete` lifts them.
#[test]
fn masked_prefix_sets_hold_slash_24_and_slash_64() {
    let Some(mut fw) = private_netns() else { return };
    ip(&["link", "set", "lo", "up"]);
    fw.setup(&spec(&["sshd"], Action::Drop)).unwrap();
    fw.add(&[
        ban("sshd", "127.0.1.0/24", HOUR),
        ban("sshd", "2001:db8:5::/64", MIN),
        ban("sshd", "198.51.100.0/25", MIN),
    ])
    .unwrap();
    assert_eq!(nft_elements("sshd_v4_24").keys().collect::<Vec<_>>(), ["127.0.1.0"]);
    assert_eq!(nft_elements("sshd_v6_64").keys().collect::<Vec<_>>(), ["2001:db8:5::"]);
    assert!(nft_elements("sshd_v6_net").is_empty());
    assert_eq!(
        nft_elements("sshd_v4_net").keys().collect::<Vec<_>>(),
        ["198.51.100.0/25"]
    );
    assert_eq!(udp_probe("127.0.1.7", "127.0.0.1"), "dropped");
    assert_eq!(udp_probe("127.0.1.254", "127.0.0.1"), "dropped");
    assert_eq!(udp_probe("127.0.2.7", "127.0.0.1"), "passed");
    let mut listed: Vec<String> = fw.list("sshd").unwrap().iter().map(|e| e.net.to_string()).collect();
    listed.sort();
    assert_eq!(listed, ["127.0.1.0/24", "198.51.100.0/25", "2001:db8:5::/64"]);
    assert!(fw
        .missing(&spec(&["sshd"], Action::Drop), &[("sshd".into(), net("127.0.1.0/24"))])
        .unwrap()
        .is_empty());
    fw.delete("sshd", &[net("127.0.1.0/24"), net("2001:db8:5::/64")])
        .unwrap();
    assert!(nft_elements("sshd_v4_24").is_empty() && nft_elements("sshd_v6_64").is_empty());
    assert_eq!(udp_probe("127.0.1.7", "127.0.0.1"), "passed");
}

#[test]
fn setup_again_keeps_elements_and_replaces_rules() {
    let Some(mut fw) = private_netns() else { return };
    let two = spec(&["sshd", "manual"], Action::Drop);
    fw.setup(&two).unwrap();
    fw.setup(&two).unwrap();
    assert_eq!(rule_lines().len(), 12, "setup twice must not duplicate rules");
    fw.add(&[ban("sshd", "192.0.2.1", HOUR), ban("manual", "2001:db8::/64", HOUR)])
        .unwrap();
    fw.setup(&two).unwrap();
    assert_eq!(rule_lines().len(), 12);
    assert_eq!(both("sshd_v4").keys().collect::<Vec<_>>(), ["192.0.2.1"]);
    assert_eq!(both("manual_v6").keys().collect::<Vec<_>>(), ["2001:db8::/64"]);

    // The manual jail goes, and the action changes: its sets are deleted,
    // sshd's are kept with their elements, the rules follow the new spec.
    let one = spec(&["sshd"], Action::Reject);
    fw.setup(&one).unwrap();
    assert_eq!(
        set_names(),
        [
            "sshd_v4",
            "sshd_v4_24",
            "sshd_v4_net",
            "sshd_v6",
            "sshd_v6_64",
            "sshd_v6_net"
        ]
    );
    assert_eq!(
        rule_lines(),
        [
            "ip saddr @sshd_v4 counter packets 0 bytes 0 reject with icmp port-unreachable",
            "ip saddr & 255.255.255.0 == @sshd_v4_24 counter packets 0 bytes 0 reject with icmp port-unreachable",
            "ip saddr @sshd_v4_net counter packets 0 bytes 0 reject with icmp port-unreachable",
            "ip6 saddr @sshd_v6 counter packets 0 bytes 0 reject with icmpv6 port-unreachable",
            "ip6 saddr & ffff:ffff:ffff:ffff:: == @sshd_v6_64 counter packets 0 bytes 0 reject with icmpv6 port-unreachable",
            "ip6 saddr @sshd_v6_net counter packets 0 bytes 0 reject with icmpv6 port-unreachable",
        ]
    );
    assert_eq!(both("sshd_v4").keys().collect::<Vec<_>>(), ["192.0.2.1"]);

    // No jails at all: every set goes, the chain stays, empty.
    let none = spec(&[], Action::Drop);
    fw.setup(&none).unwrap();
    assert_eq!(nft(&["list", "table", "inet", "nftban"]), render_ruleset(&none));
}

#[test]
fn setup_adopts_a_table_of_another_shape() {
    let Some(mut fw) = private_netns() else { return };
    // What another tool (or an older nftban) might have left: the input
    // chain at another priority with a rule of its own that uses a set no
    // jail owns, sshd_v4 as a hash set without timeouts, and a well-formed sshd_v6
    // with a ban in it.
    nft_script(
        "table inet nftban {
            set stray { type ipv4_addr; }
            set sshd_v4 { type ipv4_addr; elements = { 192.0.2.1 } }
            set sshd_v6 { type ipv6_addr; flags timeout; elements = { 2001:db8::1 timeout 1h } }
            chain input {
                type filter hook input priority 0; policy drop;
                ip saddr @stray accept
            }
        }",
    );

    let spec = spec(&["sshd"], Action::Drop);
    fw.setup(&spec).unwrap();
    // (sshd_v4 is listed last now: nft lists sets in creation order.)
    let mut names = set_names();
    names.sort();
    assert_eq!(
        names,
        [
            "sshd_v4",
            "sshd_v4_24",
            "sshd_v4_net",
            "sshd_v6",
            "sshd_v6_64",
            "sshd_v6_net"
        ]
    );
    assert!(both("sshd_v4").is_empty(), "sshd_v4 was recreated with the right type");
    assert_eq!(both("sshd_v6").keys().collect::<Vec<_>>(), ["2001:db8::1"]);
    let rendered = render_ruleset(&spec);
    let chain = &rendered[rendered.find("\tchain").unwrap()..rendered.rfind('}').unwrap()];
    assert_eq!(
        nft(&["list", "chain", "inet", "nftban", "input"]),
        format!("table inet nftban {{\n{chain}}}\n")
    );
    // And from there, a second setup changes nothing (without the
    // element, whose expiry would tick between the two listings).
    fw.delete("sshd", &[net("2001:db8::1")]).unwrap();
    let before = nft(&["list", "table", "inet", "nftban"]);
    fw.setup(&spec).unwrap();
    assert_eq!(nft(&["list", "table", "inet", "nftban"]), before);
}

#[test]
fn delete_removes_elements_and_ignores_absent_ones() {
    let Some(mut fw) = private_netns() else { return };
    fw.setup(&spec(&["sshd"], Action::Drop)).unwrap();
    fw.add(&[
        ban("sshd", "192.0.2.1", HOUR),
        ban("sshd", "192.0.2.7", HOUR),
        ban("sshd", "198.51.100.0/24", HOUR),
        ban("sshd", "2001:db8::1", HOUR),
        ban("sshd", "2001:db8:1::/48", HOUR),
    ])
    .unwrap();
    fw.delete(
        "sshd",
        &[net("192.0.2.1"), net("198.51.100.0/24"), net("2001:db8:1::/48")],
    )
    .unwrap();
    assert_eq!(both("sshd_v4").keys().collect::<Vec<_>>(), ["192.0.2.7"]);
    assert_eq!(both("sshd_v6").keys().collect::<Vec<_>>(), ["2001:db8::1"]);

    // Absent elements (one never added, one just deleted) mixed with a
    // present one: Ok, and the present one is gone.
    fw.delete("sshd", &[net("203.0.113.9"), net("192.0.2.1"), net("192.0.2.7")])
        .unwrap();
    assert!(both("sshd_v4").is_empty());
    assert_eq!(both("sshd_v6").keys().collect::<Vec<_>>(), ["2001:db8::1"]);
    // A jail without sets has nothing to delete either.
    fw.delete("nosuchjail", &[net("192.0.2.1")]).unwrap();
}

#[test]
fn list_returns_what_was_added() {
    let Some(mut fw) = private_netns() else { return };
    fw.setup(&spec(&["sshd", "manual"], Action::Drop)).unwrap();
    let bans = [
        ban("sshd", "192.0.2.1", MIN),
        ban("sshd", "192.0.2.2", HOUR),
        ban("sshd", "198.51.100.0/24", HOUR),
        ban("sshd", "255.255.255.255", HOUR),
        ban("sshd", "2001:db8::1", MIN),
        ban("sshd", "2001:db8:1::/48", HOUR),
        ban("sshd", "ffff::/16", HOUR),
        ban("manual", "203.0.113.5", HOUR),
    ];
    fw.add(&bans).unwrap();
    let listed = fw.list("sshd").unwrap();
    let got: BTreeMap<IpNet, Duration> = listed
        .iter()
        .map(|e| (e.net, e.expires_in.expect("every element has a timeout")))
        .collect();
    let want: BTreeMap<IpNet, Duration> = bans
        .iter()
        .filter(|b| b.jail == "sshd")
        .map(|b| (b.net, b.timeout))
        .collect();
    assert_eq!(listed.len(), want.len(), "{listed:?}");
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (net, left) in &got {
        assert!(
            *left <= want[net] && *left > Duration::ZERO,
            "{net}: {left:?} left of {:?}",
            want[net]
        );
    }
    // nft sees the top-of-range elements as the same prefixes.
    assert!(both("sshd_v4").contains_key("255.255.255.255"));
    assert!(both("sshd_v6").contains_key("ffff::/16"));
    assert_eq!(
        fw.list("manual").unwrap().iter().map(|e| e.net).collect::<Vec<_>>(),
        [net("203.0.113.5")]
    );
    assert!(fw.list("nosuchjail").unwrap().is_empty());
}

#[test]
fn expired_element_is_gone() {
    let Some(mut fw) = private_netns() else { return };
    fw.setup(&spec(&["sshd"], Action::Drop)).unwrap();
    fw.add(&[
        ban("sshd", "192.0.2.1", Duration::from_secs(1)),
        ban("sshd", "192.0.2.2", HOUR),
    ])
    .unwrap();
    assert_eq!(fw.list("sshd").unwrap().len(), 2);
    std::thread::sleep(Duration::from_millis(2500));
    let nets: Vec<IpNet> = fw.list("sshd").unwrap().iter().map(|e| e.net).collect();
    assert_eq!(nets, [net("192.0.2.2")]);
    // Deleting the expired element is not an error.
    fw.delete("sshd", &[net("192.0.2.1")]).unwrap();
}

/// 7,000 prefixes: several NEWSETELEM messages in one batch (one holds at
/// most 64 KiB of elements) and a dump of many chunks.
#[test]
fn many_elements_span_messages_and_dump_chunks() {
    let Some(mut fw) = private_netns() else { return };
    fw.setup(&spec(&["sshd"], Action::Drop)).unwrap();
    let mut bans = Vec::new();
    for i in 0..5000u32 {
        // Every other address, so no two intervals touch.
        let v4 = std::net::Ipv4Addr::from(0x0a00_0000 + 2 * i);
        bans.push(Ban {
            jail: "sshd".into(),
            net: IpNet::from(std::net::IpAddr::V4(v4)),
            timeout: HOUR,
        });
        if i < 2000 {
            let v6 = std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | (2 * i as u128) << 64);
            bans.push(Ban {
                jail: "sshd".into(),
                net: IpNet::new(v6.into(), 64).unwrap(),
                timeout: HOUR,
            });
        }
    }
    fw.add(&bans).unwrap();
    // Again: re-adding existing elements is not an error.
    fw.add(&bans).unwrap();
    let listed = fw.list("sshd").unwrap();
    assert_eq!(listed.len(), 7000);
    let mut got: Vec<IpNet> = listed.iter().map(|e| e.net).collect();
    let mut want: Vec<IpNet> = bans.iter().map(|b| b.net).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    fw.delete("sshd", &want).unwrap();
    assert!(fw.list("sshd").unwrap().is_empty());
}

#[test]
fn small_send_buffer_splits_batches() {
    let Some(mut fw) = private_netns() else { return };
    fw.setup(&spec(&["sshd"], Action::Drop)).unwrap();
    // About 400 KB of socket buffer (the kernel doubles it) against a batch
    // of about 1 MB: the first send fails with EMSGSIZE and is retried in
    // smaller batches.
    fw.sock.set_send_buffer(200_000).unwrap();
    let bans: Vec<Ban> = (0..20_000u32)
        .map(|i| Ban {
            jail: "sshd".into(),
            net: IpNet::from(std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + 4 * i))),
            timeout: HOUR,
        })
        .collect();
    fw.add(&bans).unwrap();
    assert!(
        fw.sock.max_batch() < 400_000,
        "batches were split: {}",
        fw.sock.max_batch()
    );
    assert_eq!(fw.list("sshd").unwrap().len(), 20_000);
}

#[test]
fn kernel_errors_name_the_request() {
    let Some(mut fw) = private_netns() else { return };
    fw.setup(&spec(&["sshd"], Action::Drop)).unwrap();
    match fw.add(&[ban("nosuchjail", "192.0.2.1", MIN)]) {
        Err(Error::Kernel { what, error }) => {
            assert_eq!(what, "add 1 element to set nosuchjail_v4 in table inet nftban");
            assert_eq!(error.raw_os_error(), Some(libc::ENOENT));
        }
        other => panic!("expected a kernel error, got {other:?}"),
    }
    // A failing message first, a good one last: the error still names the
    // failing one, and the batch is all or nothing.
    match fw.add(&[ban("sshd", "192.0.2.1", MIN), ban("nosuchjail", "192.0.2.2", MIN)]) {
        Err(Error::Kernel { what, .. }) => {
            assert_eq!(what, "add 1 element to set nosuchjail_v4 in table inet nftban")
        }
        other => panic!("expected a kernel error, got {other:?}"),
    }
    assert!(fw.list("sshd").unwrap().is_empty());
    // A prefix inside one already banned overlaps: the kernel refuses that
    // element, the error says which set, and the others of the call go in.
    assert!(fw.add(&[ban("sshd", "198.51.100.0/23", MIN)]).unwrap().is_empty());
    let refused = fw
        .add(&[ban("sshd", "198.51.100.128/25", MIN), ban("sshd", "203.0.113.1", MIN)])
        .unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].ban.net, net("198.51.100.128/25"));
    let err = refused[0].error.to_string();
    assert!(err.contains("set sshd_v4_net in table inet nftban"), "{err}");
    assert!(nft_elements("sshd_v4").contains_key("203.0.113.1"));
}

/// Run `ip` (iproute2) with `args` in the test's namespace.
fn ip(args: &[&str]) {
    let ok = Command::new("ip").args(args).status().is_ok_and(|s| s.success());
    assert!(ok, "ip {args:?} failed (is iproute2 installed?)");
}

/// Send one datagram from `from` to `to` over loopback and say what
/// happened: "passed", "dropped" (nothing arrived) or "rejected" (the
/// sender got an ICMP port unreachable).
fn udp_probe(from: &str, to: &str) -> &'static str {
    use std::net::UdpSocket;
    let rx = UdpSocket::bind((to, 0)).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let tx = UdpSocket::bind((from, 0)).unwrap();
    tx.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    tx.send(b"ping").unwrap();
    let mut buf = [0; 16];
    if rx.recv(&mut buf).is_ok() {
        return "passed";
    }
    match tx.recv(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => "rejected",
        _ => "dropped",
    }
}

#[test]
fn packets_from_banned_sources_are_dropped_or_rejected() {
    let Some(mut fw) = private_netns() else { return };
    // Loopback with a second address of each family, so a reply to the
    // banned address comes from one that is not banned.
    ip(&["link", "set", "lo", "up"]);
    ip(&["addr", "add", "2001:db8::2/128", "dev", "lo", "nodad"]);
    ip(&["addr", "add", "c000::2/128", "dev", "lo", "nodad"]);

    fw.setup(&spec(&["sshd"], Action::Drop)).unwrap();
    assert_eq!(udp_probe("127.0.0.2", "127.0.0.1"), "passed");
    assert_eq!(udp_probe("2001:db8::2", "::1"), "passed");
    fw.add(&[ban("sshd", "127.0.0.2", HOUR), ban("sshd", "2001:db8::2", HOUR)])
        .unwrap();
    assert_eq!(udp_probe("127.0.0.2", "127.0.0.1"), "dropped");
    assert_eq!(udp_probe("2001:db8::2", "::1"), "dropped");
    assert_eq!(udp_probe("127.0.0.3", "127.0.0.1"), "passed", "only the banned address");
    // A prefix that reaches the top of the address space is stored as a
    // start element with no end: it still matches.
    assert_eq!(udp_probe("c000::2", "::1"), "passed");
    fw.add(&[ban("sshd", "8000::/1", HOUR)]).unwrap();
    assert_eq!(udp_probe("c000::2", "::1"), "dropped");

    fw.setup(&spec(&["sshd"], Action::Reject)).unwrap();
    assert_eq!(udp_probe("127.0.0.2", "127.0.0.1"), "rejected");
    assert_eq!(udp_probe("2001:db8::2", "::1"), "rejected");

    fw.delete("sshd", &[net("127.0.0.2"), net("2001:db8::2")]).unwrap();
    assert_eq!(udp_probe("127.0.0.2", "127.0.0.1"), "passed");
    assert_eq!(udp_probe("2001:db8::2", "::1"), "passed");
}

fn spec_hooks(jails: &[&str], action: Action, hooks: &[Hook]) -> TableSpec {
    TableSpec {
        hooks: hooks.to_vec(),
        ..spec(jails, action)
    }
}

#[test]
fn setup_with_every_hook_creates_what_render_ruleset_says() {
    let Some(mut fw) = private_netns() else { return };
    for action in [Action::Drop, Action::Reject] {
        // Reject is taken in every hook nftban offers, prerouting included
        // (kernels from 5.9 on).
        let spec = spec_hooks(&["sshd", "manual"], action, &Hook::ALL);
        fw.setup(&spec).unwrap();
        assert_eq!(nft(&["list", "table", "inet", "nftban"]), render_ruleset(&spec));
    }
}

#[test]
fn chains_follow_the_configured_hooks() {
    let Some(mut fw) = private_netns() else { return };
    let chains = || -> Vec<String> {
        nft(&["list", "chains", "inet"])
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("chain ")
                    .map(|c| c.trim_end_matches(" {").to_string())
            })
            .collect()
    };
    fw.setup(&spec_hooks(&["sshd"], Action::Drop, &[Hook::Input, Hook::Forward]))
        .unwrap();
    fw.add(&[ban("sshd", "192.0.2.1", HOUR)]).unwrap();
    fw.setup(&spec_hooks(&["sshd"], Action::Drop, &[Hook::Input, Hook::Forward]))
        .unwrap();
    assert_eq!(chains(), ["input", "forward"]);
    assert_eq!(rule_lines().len(), 12, "2 hooks x 6 sets, never duplicated");
    // Only prerouting now: the other chains go, the ban stays.
    let pre = spec_hooks(&["sshd"], Action::Drop, &[Hook::Prerouting]);
    fw.setup(&pre).unwrap();
    assert_eq!(chains(), ["prerouting"]);
    assert_eq!(rule_lines().len(), 6);
    assert_eq!(nft_elements("sshd_v4").keys().collect::<Vec<_>>(), ["192.0.2.1"]);
    fw.delete("sshd", &[net("192.0.2.1")]).unwrap();
    assert_eq!(nft(&["list", "table", "inet", "nftban"]), render_ruleset(&pre));
}

#[test]
fn a_full_set_refuses_only_the_elements_that_do_not_fit() {
    let Some(mut fw) = private_netns() else { return };
    // A set of the right type and flags but with room for 4 elements:
    // setup adopts it.
    nft_script("table inet nftban { set sshd_v4 { type ipv4_addr; flags timeout; size 4; }; }");
    fw.setup(&spec(&["sshd"], Action::Drop)).unwrap();
    assert!(nft(&["list", "set", "inet", "nftban", "sshd_v4"]).contains("size 4"));
    let bans: Vec<Ban> = (1..=10)
        .map(|i| ban("sshd", &format!("192.0.2.{}", 2 * i), HOUR))
        .chain([ban("sshd", "2001:db8::1", HOUR)])
        .collect();
    let refused = fw.add(&bans).unwrap();
    let stored = nft_elements("sshd_v4");
    assert!(!stored.is_empty() && !refused.is_empty(), "{stored:?} {refused:?}");
    assert_eq!(stored.len() + refused.len(), 10, "{stored:?} {refused:?}");
    for r in &refused {
        match &r.error {
            Error::Kernel { what, error } => {
                // ENFILE is what the kernel says for a set at its size.
                assert_eq!(error.raw_os_error(), Some(libc::ENFILE), "{what}: {error}");
                assert_eq!(
                    what,
                    "add 1 element to set sshd_v4 in table inet nftban (the set is full)"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(!stored.contains_key(&r.ban.net.addr().to_string()));
    }
    // The other set of the call was not held back by the full one.
    assert_eq!(nft_elements("sshd_v6").keys().collect::<Vec<_>>(), ["2001:db8::1"]);
    // Re-adding what is already there is no error, full set or not.
    let present: Vec<Ban> = stored.keys().map(|a| ban("sshd", a, HOUR)).collect();
    assert!(fw.add(&present).unwrap().is_empty());
}

#[test]
fn counters_sum_dropped_packets_per_set() {
    let Some(mut fw) = private_netns() else { return };
    ip(&["link", "set", "lo", "up"]);
    fw.setup(&spec_hooks(
        &["sshd", "manual"],
        Action::Drop,
        &[Hook::Input, Hook::Forward],
    ))
    .unwrap();
    assert!(fw.counters().unwrap().values().all(|c| c.packets == 0 && c.bytes == 0));
    fw.add(&[ban("sshd", "127.0.0.2", HOUR)]).unwrap();
    assert_eq!(udp_probe("127.0.0.2", "127.0.0.1"), "dropped");
    assert_eq!(udp_probe("127.0.0.2", "127.0.0.1"), "dropped");
    assert_eq!(udp_probe("127.0.0.3", "127.0.0.1"), "passed");
    let counters = fw.counters().unwrap();
    // Two datagrams of 20 (IP) + 8 (UDP) + 4 bytes, seen at input only.
    assert_eq!(counters["sshd_v4"], Counter { packets: 2, bytes: 64 });
    assert_eq!(counters["sshd_v6"], Counter::default());
    assert_eq!(counters["manual_v4"], Counter::default());
    assert_eq!(counters["sshd_v4_net"], Counter::default());
    assert_eq!(counters["sshd_v4_24"], Counter::default());
    assert_eq!(counters.len(), 12, "{counters:?}");
}

#[test]
fn prerouting_drops_and_rejects() {
    let Some(mut fw) = private_netns() else { return };
    ip(&["link", "set", "lo", "up"]);
    fw.setup(&spec_hooks(&["sshd"], Action::Drop, &[Hook::Prerouting]))
        .unwrap();
    fw.add(&[ban("sshd", "127.0.0.2", HOUR)]).unwrap();
    assert_eq!(udp_probe("127.0.0.2", "127.0.0.1"), "dropped");
    assert_eq!(udp_probe("127.0.0.3", "127.0.0.1"), "passed");
    fw.setup(&spec_hooks(&["sshd"], Action::Reject, &[Hook::Prerouting]))
        .unwrap();
    assert_eq!(udp_probe("127.0.0.2", "127.0.0.1"), "rejected");
    assert_eq!(fw.counters().unwrap()["sshd_v4"].packets, 1);
}

/// `conntrack -L` lines whose original source is `src` (the `conntrack`
/// tool only reads the state back; nftban never spawns it).
fn conntrack_entries(src: &str) -> Vec<String> {
    let family = if src.contains(':') { "ipv6" } else { "ipv4" };
    let out = Command::new("conntrack")
        .args(["-L", "-f", family, "-s", src])
        .output()
        .expect("run conntrack (apt-get install conntrack)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn forget_connections_removes_entries_of_banned_sources_only() {
    let Some(mut fw) = private_netns() else { return };
    ip(&["link", "set", "lo", "up"]);
    ip(&["addr", "add", "2001:db8::2/128", "dev", "lo", "nodad"]);
    ip(&["addr", "add", "2001:db8::3/128", "dev", "lo", "nodad"]);
    // Conntrack only tracks a namespace once a rule there uses it: a
    // table of the test's own with a `ct state` rule.
    nft(&[
        "add table inet t; add chain inet t c { type filter hook input priority 0; ct state new,established accept; }",
    ]);
    fw.setup(&spec(&["sshd"], Action::Drop)).unwrap();
    for (from, to) in [
        ("127.0.0.2", "127.0.0.1"),
        ("127.0.0.9", "127.0.0.1"),
        ("127.0.1.1", "127.0.0.1"),
        ("2001:db8::2", "::1"),
        ("2001:db8::3", "::1"),
    ] {
        assert_eq!(udp_probe(from, to), "passed");
        assert_eq!(
            conntrack_entries(from).len(),
            1,
            "{from}: {:?}",
            conntrack_entries(from)
        );
    }
    // The kernel filters a dump by original source (CTA_FILTER): asked
    // for 127.0.0.9 with every address wanted, it sends that entry only.
    let everything = super::conntrack::Ranges::new(&[net("0.0.0.0/0")], true);
    let one = super::conntrack::dump_request(Some("127.0.0.9".parse().unwrap()));
    let family = netlink_packet_netfilter::NetfilterProtoFamily::IPv4;
    let found = super::conntrack::matching(&mut fw.sock, &one, family, &everything).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let all = super::conntrack::dump_request(None);
    assert_eq!(
        super::conntrack::matching(&mut fw.sock, &all, family, &everything)
            .unwrap()
            .len(),
        3
    );
    // Prefixes (one dump of the family) and a single address (a filtered
    // dump) in one call.
    let n = fw
        .forget_connections(&[net("127.0.0.0/28"), net("2001:db8::2"), net("198.51.100.0/24")])
        .unwrap();
    assert_eq!(n, 3);
    for gone in ["127.0.0.2", "127.0.0.9", "2001:db8::2"] {
        assert!(
            conntrack_entries(gone).is_empty(),
            "{gone}: {:?}",
            conntrack_entries(gone)
        );
    }
    for kept in ["127.0.1.1", "2001:db8::3"] {
        assert_eq!(conntrack_entries(kept).len(), 1, "{kept}");
    }
    // Nothing left to remove is no error.
    assert_eq!(fw.forget_connections(&[net("127.0.0.2")]).unwrap(), 0);
}

/// The errnos a kernel without nf_tables gives (the real case cannot be
/// produced here: nf_tables is built into this kernel, so it cannot be
/// unloaded) map to one message that says what to do; permission errors
/// name the capability; anything else stays a plain kernel error.
#[test]
fn a_missing_nf_tables_is_named_with_what_to_do() {
    let want = "nf_tables is not available in this kernel: load the nf_tables module (modprobe nf_tables) or use a kernel with CONFIG_NF_TABLES";
    for errno in [
        libc::EPROTONOSUPPORT,
        libc::EAFNOSUPPORT,
        libc::EOPNOTSUPP,
        libc::EINVAL,
    ] {
        let e = super::open_error(errno, "read the nf_tables generation");
        assert!(matches!(e, Error::NotSupported(_)), "{errno}: {e:?}");
        assert!(e.to_string().starts_with(want), "{e}");
    }
    for errno in [libc::EPERM, libc::EACCES] {
        let e = super::open_error(errno, "read the nf_tables generation");
        assert!(e.to_string().contains("needs CAP_NET_ADMIN"), "{e}");
    }
    let e = super::open_error(libc::ENOBUFS, "read the nf_tables generation");
    assert!(
        e.to_string()
            .starts_with("kernel refused to read the nf_tables generation"),
        "{e}"
    );
}

/// The event monitor, told nftban's port, never receives the events of
/// nftban's own changes, while another process's deletion still arrives;
/// a monitor without the filter receives both.
#[test]
fn own_events_are_dropped_before_the_monitor_reads_them() {
    let Some(mut nl) = private_netns() else { return };
    let mut filtered = super::monitor::Monitor::open("nftban").unwrap();
    let mut plain = super::monitor::Monitor::open("nftban").unwrap();
    let port = nl.sock.port().expect("a netlink firewall has a port");
    filtered.ignore_port(port).unwrap();
    nl.setup(&spec(&["sshd"], Action::Drop)).unwrap();
    let bans: Vec<Ban> = (1..=20)
        .map(|i| ban("sshd", &format!("192.0.2.{i}"), Duration::from_secs(600)))
        .collect();
    assert!(nl.add(&bans).unwrap().is_empty());
    nl.delete("sshd", &[net("192.0.2.1/32")]).unwrap();
    // Own changes only: neither reports anything; only the plain one read them.
    assert!(filtered.wait().unwrap().is_none());
    assert!(plain.wait().unwrap().is_none());
    assert_eq!(filtered.received, 0);
    assert!(plain.received > 20, "{}", plain.received);
    nft(&["delete", "element", "inet", "nftban", "sshd_v4", "{ 192.0.2.2 }"]);
    for m in [&mut filtered, &mut plain] {
        match m.wait().unwrap() {
            Some(Notice::Changed { what, .. }) => {
                assert_eq!(what, vec!["1 element deleted from set sshd_v4".to_string()])
            }
            other => panic!("another process's deletion not reported: {other:?}"),
        }
    }
    assert!(filtered.received > 0);
}

/// A firewall that watches its table pauses the watcher during its own big
/// batches and says so once (`take_unwatched`), not after small ones; and
/// after the pause the watcher still reports another process's deletion.
/// The deletion is made by `nft`: a second socket of this process would not
/// do, since the watcher tells nftban's own changes apart by process id.
#[test]
fn watching_firewall_pauses_for_big_batches_and_still_sees_others() {
    let Some(mut nl) = private_netns() else { return };
    let mut watcher = nl.watch("nftban").unwrap().expect("the netlink firewall can watch");
    nl.setup(&spec(&["sshd"], Action::Drop)).unwrap();
    assert!(!nl.take_unwatched(), "setup is no batch of bans");

    let big: Vec<Ban> = (0..super::BIG_BATCH as u32)
        .map(|i| Ban {
            jail: "sshd".into(),
            net: IpNet::from(std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))),
            timeout: HOUR,
        })
        .collect();
    assert!(nl.add(&big).unwrap().is_empty());
    assert!(
        nl.take_unwatched(),
        "a batch of BIG_BATCH bans runs with the watcher paused"
    );
    assert!(!nl.take_unwatched(), "reset by the call");
    assert!(nl.add(&big[..3]).unwrap().is_empty());
    assert!(!nl.take_unwatched(), "a small batch runs watched");
    assert!(nl.add(&[]).unwrap().is_empty());
    assert!(!nl.take_unwatched());

    // Own changes are never reported; another process's deletion is.
    assert_eq!(watcher.wait().unwrap(), None);
    nft(&["delete", "element", "inet", "nftban", "sshd_v4", "{ 10.0.0.7 }"]);
    match watcher.wait().unwrap() {
        Some(Notice::Changed { what, pid, process }) => {
            assert_eq!(what, ["1 element deleted from set sshd_v4"]);
            assert_ne!(pid, std::process::id());
            assert!(process.starts_with("nft"), "{process}");
        }
        other => panic!("nft's deletion not reported: {other:?}"),
    }
}

/// A SIP meter of `jail` with the defaults but a slow rate, so that what
/// a quick flood gets through is the burst alone.
fn sip_spec(jail: &str) -> crate::firewall::sip::SipSpec {
    crate::firewall::sip::SipSpec {
        jail: jail.into(),
        udp: vec![5060],
        tcp: vec![5060],
        tls: vec![5061],
        rate: "1/minute".parse().unwrap(),
        burst: 10,
        bantime: HOUR,
        ipv6_prefix: 64,
        size: 4096,
        trusted: vec![net("10.0.0.0/8"), net("192.0.2.1"), net("10.1.0.0/16"), net("fd00::/8")],
    }
}

fn sip_table(jail: &str) -> TableSpec {
    TableSpec {
        sip: Some(sip_spec(jail)),
        ..spec(&[jail, "manual"], Action::Drop)
    }
}

#[test]
fn setup_creates_the_sip_meter_that_render_ruleset_says() {
    let Some(mut fw) = private_netns() else { return };
    let table = sip_table("asterisk");
    fw.setup(&table).unwrap();
    assert_eq!(nft(&["list", "table", "inet", "nftban"]), render_ruleset(&table));
    // Per address for IPv6, the defaults' rate (burst 5 is not printed).
    let mut other = sip_table("asterisk");
    let meter = other.sip.as_mut().unwrap();
    meter.ipv6_prefix = 128;
    meter.rate = "20/second".parse().unwrap();
    meter.burst = 5;
    meter.udp = vec![5060, 5080];
    meter.trusted = vec![net("127.0.0.0/8"), net("::1")];
    fw.setup(&other).unwrap();
    assert_eq!(nft(&["list", "table", "inet", "nftban"]), render_ruleset(&other));
    // Setup again: nothing doubles; off again: the chain and sets go.
    fw.setup(&other).unwrap();
    assert_eq!(nft(&["list", "table", "inet", "nftban"]), render_ruleset(&other));
    assert!(fw.missing(&other, &[]).unwrap().is_empty());
    let off = spec(&["asterisk", "manual"], Action::Drop);
    fw.setup(&off).unwrap();
    assert_eq!(nft(&["list", "table", "inet", "nftban"]), render_ruleset(&off));
    // `missing` notices a deleted meter chain.
    fw.setup(&other).unwrap();
    nft(&["delete", "chain", "inet", "nftban", "sip"]);
    assert_eq!(fw.missing(&other, &[]).unwrap(), ["chain sip is missing"]);
}

/// The objects read back as JSON, through the nftables schema's types.
#[test]
fn the_sip_meter_reads_back_as_nftables_json() {
    use nftables::schema::{NfListObject, NfObject};
    let Some(mut fw) = private_netns() else { return };
    fw.setup(&sip_table("asterisk")).unwrap();
    let json = nft(&["-j", "list", "table", "inet", "nftban"]);
    let parsed: nftables::schema::Nftables = serde_json::from_str(&json).expect("nft -j output");
    let mut sets = BTreeMap::new();
    let mut chain = None;
    let mut rules = 0;
    for o in parsed.objects.iter() {
        match o {
            NfObject::ListObject(NfListObject::Set(s)) => {
                sets.insert(s.name.to_string(), (s.size, s.flags.clone()));
            }
            NfObject::ListObject(NfListObject::Chain(c)) if c.name == "sip" => chain = Some(c.clone()),
            NfObject::ListObject(NfListObject::Rule(r)) if r.chain == "sip" => rules += 1,
            _ => {}
        }
    }
    let chain = chain.expect("chain sip");
    assert_eq!(chain.prio, Some(-300));
    assert_eq!(
        rules,
        super::sip::rule_count(&sip_spec("asterisk"), crate::firewall::PrefixSets::default())
    );
    for name in ["sip_meter_v4", "sip_meter_v6", "sip_caught_v4", "sip_caught_v6"] {
        let (size, flags) = &sets[name];
        assert_eq!(*size, Some(4096), "{name}");
        // (nft 1.0.6 leaves `dynamic` out of its JSON; the text golden
        // test checks it.)
        assert!(format!("{flags:?}").contains("Timeout"), "{name}: {flags:?}");
    }
    assert!(sets.contains_key("sip_trusted_v4") && sets.contains_key("sip_trusted_v6"));
}

/// Send `n` datagrams from `from` to `to`:5060 at once and count those
/// that arrive.
fn sip_flood(from: &str, to: &str, n: usize) -> usize {
    use std::net::UdpSocket;
    let rx = UdpSocket::bind((to, 5060)).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let tx = UdpSocket::bind((from, 0)).unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    for _ in 0..n {
        tx.send(b"OPTIONS sip:100@x SIP/2.0\r\n\r\n").unwrap();
    }
    let mut buf = [0; 64];
    let mut got = 0;
    while rx.recv(&mut buf).is_ok() {
        got += 1;
    }
    got
}

/// The packets a rule of chain sip containing `needle` counted.
fn sip_rule_packets(needle: &str) -> u64 {
    let text = nft(&["list", "chain", "inet", "nftban", "sip"]);
    let line = text
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no rule with {needle}:\n{text}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().rposition(|w| *w == "packets").expect("a counter");
    words[at + 1].parse().unwrap()
}

#[test]
fn a_udp_flood_is_caught_by_the_kernel_and_dropped() {
    let Some(mut fw) = private_netns() else { return };
    ip(&["link", "set", "lo", "up"]);
    ip(&["addr", "add", "2001:db8:0:1::2/128", "dev", "lo", "nodad"]);
    ip(&["addr", "add", "2001:db8:0:1::3/128", "dev", "lo", "nodad"]);
    ip(&["addr", "add", "2001:db8:0:2::2/128", "dev", "lo", "nodad"]);
    let table = sip_table("asterisk");
    fw.setup(&table).unwrap();
    // 127.0.0.0/8 is not trusted here: the flood comes from 127.0.0.2.
    let passed = sip_flood("127.0.0.2", "127.0.0.1", 100);
    // The burst (10) passes, the rate adds one a minute; the rest is
    // dropped, the first of it by the meter's rule, which catches the
    // source, and all after by the caught set's.
    assert!((10..=11).contains(&passed), "{passed} of 100 passed");
    assert_eq!(sip_rule_packets("udp dport 5060 update @sip_meter_v4"), 1);
    assert_eq!(sip_rule_packets("ip saddr @sip_caught_v4"), 99 - passed as u64);
    let caught = nft_elements("sip_caught_v4");
    assert_eq!(caught.keys().collect::<Vec<_>>(), ["127.0.0.2"]);
    assert!(caught["127.0.0.2"].starts_with("1h"), "{caught:?}");
    // Another source is metered on its own.
    assert!(sip_flood("127.0.0.3", "127.0.0.1", 5) == 5);
    // Not SIP: another port is never metered.
    assert_eq!(udp_probe("127.0.0.4", "127.0.0.1"), "passed");

    // IPv6: metered and caught per /64.
    let passed = sip_flood("2001:db8:0:1::2", "::1", 50);
    assert!((10..=11).contains(&passed), "{passed} of 50 passed");
    assert_eq!(
        nft_elements("sip_caught_v6").keys().collect::<Vec<_>>(),
        ["2001:db8:0:1::"]
    );
    assert_eq!(sip_flood("2001:db8:0:1::3", "::1", 3), 0, "the whole /64 is dropped");
    assert_eq!(sip_flood("2001:db8:0:2::2", "::1", 3), 3, "another /64 is not");

    // What the daemon's meter thread reads, with its own socket.
    let mut catches = fw.catches(&table).unwrap().expect("a reader");
    let mut found: Vec<String> = catches.caught().unwrap().iter().map(|e| e.net.to_string()).collect();
    found.sort();
    assert_eq!(found, ["127.0.0.2/32", "2001:db8:0:1::/64"]);
    assert!(catches.caught().unwrap().iter().all(|e| e.expires_in.unwrap() > MIN));
    catches.release(&[net("127.0.0.2"), net("127.0.0.9")]).unwrap();
    assert!(nft_elements("sip_caught_v4").is_empty());

    // Banned in the jail's set, the source is dropped before the meter.
    fw.add(&[ban("asterisk", "127.0.0.2", HOUR)]).unwrap();
    assert_eq!(sip_flood("127.0.0.2", "127.0.0.1", 5), 0);
    assert!(nft_elements("sip_caught_v4").is_empty(), "not caught again");
    // An unban lifts it from the jail's set, the caught set and the meter:
    // a fresh bucket, the burst passes again.
    fw.delete("asterisk", &[net("127.0.0.2"), net("2001:db8:0:1::/64")])
        .unwrap();
    assert!(nft_elements("sip_caught_v6").is_empty());
    assert!(!nft_elements("sip_meter_v4").contains_key("127.0.0.2"));
    assert_eq!(sip_flood("127.0.0.2", "127.0.0.1", 5), 5);
    assert_eq!(sip_flood("2001:db8:0:1::3", "::1", 3), 3);
}

#[test]
fn trusted_sources_are_never_metered() {
    let Some(mut fw) = private_netns() else { return };
    ip(&["link", "set", "lo", "up"]);
    let mut table = sip_table("asterisk");
    table.sip.as_mut().unwrap().trusted.push(net("127.0.0.2"));
    fw.setup(&table).unwrap();
    assert_eq!(sip_flood("127.0.0.2", "127.0.0.1", 60), 60);
    assert!(nft_elements("sip_caught_v4").is_empty());
    assert!(nft_elements("sip_meter_v4").is_empty());
}

/// A feed's prefix that widens, then splits, between two refreshes: an
/// interval set takes no prefix overlapping one it holds, so the old one
/// must leave before, in the same transaction. Before, the add came first
/// and every refresh after such a change failed with EEXIST.
#[test]
fn a_feeds_prefix_may_widen_narrow_or_split() {
    let Some(mut fw) = private_netns() else { return };
    fw.setup(&spec(&["feed_mine"], Action::Drop)).unwrap();
    let listed = |fw: &mut Netlink| -> Vec<String> {
        let mut all: Vec<String> = fw
            .list("feed_mine")
            .unwrap()
            .iter()
            .map(|e| crate::address::show(&e.net))
            .collect();
        all.sort();
        all
    };
    fw.apply_diff("feed_mine", &[net("45.9.0.0/22")], &[]).unwrap();
    fw.apply_diff(
        "feed_mine",
        &[net("45.9.0.0/21"), net("77.1.1.1")],
        &[net("45.9.0.0/22")],
    )
    .unwrap();
    assert_eq!(listed(&mut fw), ["45.9.0.0/21", "77.1.1.1"]);
    fw.apply_diff(
        "feed_mine",
        &[net("45.9.0.0/23"), net("45.9.2.0/23")],
        &[net("45.9.0.0/21")],
    )
    .unwrap();
    assert_eq!(listed(&mut fw), ["45.9.0.0/23", "45.9.2.0/23", "77.1.1.1"]);
    fw.apply_diff(
        "feed_mine",
        &[net("45.9.0.0/22")],
        &[net("45.9.0.0/23"), net("45.9.2.0/23")],
    )
    .unwrap();
    assert_eq!(listed(&mut fw), ["45.9.0.0/22", "77.1.1.1"]);
}
