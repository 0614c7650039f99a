//! `usedns:` against the real system resolver: the daemon runs in a
//! private network namespace and a private mount namespace whose
//! /etc/hosts (and nsswitch.conf: files only) are the test's, bind-mounted
//! there only, so getaddrinfo answers from the test's file and nothing of
//! the host's resolver setup is touched or asked.

use std::process::Stdio;

use crate::support::*;

const UNSHARE: Need = Need {
    program: "unshare",
    package: "util-linux",
};

/// `nftban run` in `ns`, in a mount namespace of its own where /etc/hosts
/// is `hosts` and name lookups read files only.
fn daemon_with_hosts(ns: &NetNs, s: &Setup, hosts: &str) -> Daemon {
    let hosts_file = s.dir.path().join("hosts");
    let nsswitch = s.dir.path().join("nsswitch.conf");
    std::fs::write(&hosts_file, hosts).unwrap();
    std::fs::write(&nsswitch, "hosts: files\n").unwrap();
    let stderr = s.dir.path().join("daemon.log");
    let mut cmd = ns.command("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/nsswitch.conf && shift 2 && exec "$@""#)
        .arg("sh")
        .arg(&hosts_file)
        .arg(&nsswitch)
        .arg(env!("CARGO_BIN_EXE_nftban"))
        .args(["run", "--config"])
        .arg(&s.config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let d = Daemon {
        child: cmd.spawn().unwrap(),
        stderr,
    };
    wait_for("the daemon to answer status", || s.try_status());
    d
}

/// A log line naming `attacker.test` bans the addresses /etc/hosts gives it
/// (IPv4 and IPv6) in the kernel sets of the jail with `usedns: yes`; the
/// same lines in a jail without it ban nothing and are counted as names; a
/// name that points into `ignoreip` bans nobody.
#[test]
fn a_name_bans_its_addresses_only_in_the_jail_that_asks() {
    kernel_test!(UNSHARE);
    let ns = NetNs::create("usedns").unwrap();
    let s = Setup::asterisk("");
    s.jails(&format!(
        "{}    usedns: yes\n{}",
        asterisk_jail("named", &[&s.log]),
        asterisk_jail("plain", &[&s.log])
    ));
    let d = daemon_with_hosts(
        &ns,
        &s,
        "127.0.0.1 localhost\n198.51.100.77 attacker.test\n2001:db8::77 attacker.test\n192.0.2.99 friend.test\n",
    );
    s.failures("attacker.test", 3);
    s.failures("friend.test", 3);
    s.failures("nowhere.test", 3);
    let named = s.wait_jail("named", "the resolved name's ban", |j| j.currently_banned >= 2);
    let mut banned: Vec<&str> = named.banned.iter().map(|b| b.ip.as_str()).collect();
    banned.sort();
    assert_eq!(banned, ["198.51.100.77", "2001:db8::77"]);
    assert_eq!(set_addrs(&ns, "named_v4"), ["198.51.100.77"]);
    assert_eq!(set_addrs(&ns, "named_v6"), ["2001:db8::77"]);
    let names = s
        .wait_jail("named", "every name line answered", |j| {
            j.names.as_ref().is_some_and(|n| n.resolved + n.unresolved == 9)
        })
        .names
        .unwrap();
    assert!(names.usedns);
    assert_eq!((names.names, names.resolved, names.unresolved), (9, 6, 3), "{names:?}");
    assert_eq!((names.timeouts, names.dropped), (0, 0), "{names:?}");
    assert_eq!(names.lookups, 3, "one lookup per name: {names:?}");

    let plain = s.jail_status("plain");
    assert_eq!((plain.currently_banned, plain.total_failed), (0, 0));
    let plain_names = plain.names.expect("a jail that met names says so");
    assert!(!plain_names.usedns);
    assert_eq!((plain_names.names, plain_names.lookups), (9, 0));
    assert!(set_addrs(&ns, "plain_v4").is_empty() && set_addrs(&ns, "plain_v6").is_empty());
    assert!(d.log().contains("resolved attacker.test to ["), "{}", d.log());
    assert!(d.stop());
}
