//! The daemon against the real kernel, in a private namespace: restart
//! keeps bans, manual bans with prefixes and stdin, silent sources explained.

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;

use crate::support::*;

/// A second start finds the table and keeps its bans: in the kernel (no
/// flush), in status, and without duplicating rules.
#[test]
fn restart_keeps_bans_and_does_not_duplicate_rules() {
    kernel_test!();
    let ns = NetNs::create("restart").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(s.socket()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "control socket must be 0600");
    s.cli_ok(&[
        "ban",
        "203.0.113.5",
        "198.51.100.0/24",
        "2001:db8:bad::/48",
        "--bantime",
        "2h",
    ]);
    assert!(d.stop());
    // Stopped: the bans are still in the kernel.
    let elems = set_elements(&ns, "manual_v4");
    assert!(elems.contains(&("203.0.113.5".to_string(), Some(7200))), "{elems:?}");
    let nets = set_elements(&ns, "manual_v4_24");
    assert!(nets.iter().any(|(e, _)| e == "198.51.100.0/24"), "{nets:?}");

    let d = Daemon::start(&ns, &s);
    let st = s.jail_status("manual");
    let ips = banned_ips(&st);
    assert_eq!(ips.len(), 3, "{ips:?}");
    for want in ["203.0.113.5", "198.51.100.0/24", "2001:db8:bad::/48"] {
        assert!(ips.contains(&want), "{want} not restored after restart: {ips:?}");
    }
    assert_eq!(set_elements(&ns, "manual_v4").len(), 1);
    assert_eq!(set_elements(&ns, "manual_v4_24").len(), 1);
    // One rule per set: 2 jails (asterisk, manual) x 2 families x
    // (addresses, /24 or /64 prefixes, other prefixes).
    assert_eq!(rule_count(&ns), 12, "rules duplicated on restart");
    assert!(d.stop());

    // The history deleted: the next start keeps the kernel's elements as
    // they are, with their running timeouts, and never lists a set.
    let expires = || -> Vec<(String, u64)> {
        let elems = elements(&ns, "manual_v4").into_iter();
        elems.map(|e| (e.addr, e.expires.expect("a running timeout"))).collect()
    };
    let before = expires();
    assert_eq!(before.len(), 1, "{before:?}");
    for f in ["nftban.db", "nftban.db-wal", "nftban.db-shm", "nftban.db-pending"] {
        let _ = std::fs::remove_file(s.dir.path().join(f));
    }
    s.top("log: {target: stderr, level: debug}");
    let d = Daemon::start(&ns, &s);
    let after = expires();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].0, before[0].0);
    // Still counting down from the first ban (a re-add would reset it to 7200).
    assert!(after[0].1 <= before[0].1 && after[0].1 < 7200, "{before:?} {after:?}");
    let nets = set_elements(&ns, "manual_v4_24");
    assert!(nets.iter().any(|(e, _)| e == "198.51.100.0/24"), "{nets:?}");
    assert_eq!(set_elements(&ns, "manual_v6_net").len(), 1);
    let st = s.jail_status("manual");
    assert_eq!(st.currently_banned, 0, "{st:?}");
    let log = d.log();
    assert!(
        log.contains("bans already in the kernel's sets are kept as they are"),
        "{log}"
    );
    assert!(log.contains("DEBUG"), "debug lines are logged: {log}");
    assert!(
        !log.contains("listing the elements of set"),
        "start listed a set:\n{log}"
    );
    assert!(d.stop());
}

#[test]
fn ban_from_stdin_and_unban_inside_a_prefix_is_explained() {
    kernel_test!();
    let ns = NetNs::create("stdin").unwrap();
    let s = Setup::asterisk("");
    let _d = Daemon::start(&ns, &s);
    let list = "# a list\n198.51.100.1\n198.51.100.2\n\n198.51.100.128/25\n";
    let o = s.cli_stdin(&["ban", "-", "--jail", "asterisk"], list);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(set_addrs(&ns, "asterisk_v4"), ["198.51.100.1", "198.51.100.2"]);
    assert_eq!(set_addrs(&ns, "asterisk_v4_net"), ["198.51.100.128/25"]);
    let o = s.cli(&["unban", "198.51.100.200"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("inside banned prefix 198.51.100.128/25 in jail asterisk"),
        "{}",
        stderr(&o)
    );
}

/// Seed FAQ row 6: status says why a jail sees nothing.
#[test]
fn status_explains_missing_and_unreadable_sources() {
    kernel_test!();
    let ns = NetNs::create("silent").unwrap();
    let s = Setup::asterisk("");
    let missing = s.dir.path().join("not-yet.log");
    let unreadable = s.dir.path().join("a-directory");
    std::fs::create_dir(&unreadable).unwrap();
    s.jails(&asterisk_jail("asterisk", &[&missing, &unreadable, &s.log]));
    let mut d = Daemon::start(&ns, &s);
    // The reader starts at the end of the file: append once it reads.
    s.wait_jail("asterisk", "the log to be opened", |st| {
        st.sources[2].state == "reading"
    });
    s.append(&["a line that is no failure"]);
    let st = s.wait_jail("asterisk", "sources to be looked at", |st| {
        st.sources[2].lines == 1 && st.sources[1].state == "unreadable"
    });
    assert_eq!(st.sources[0].state, "missing");
    assert!(st.sources[0].diagnosis.contains("does not exist"), "{st:?}");
    assert!(st.sources[1].diagnosis.contains("directory"), "{st:?}");
    assert!(st.sources[2].diagnosis.contains("1 lines read, none matched"), "{st:?}");
    // The missing file appears: it is read from its start.
    std::fs::write(
        &missing,
        format!(
            "{} NOTICE[1] chan_sip.c: No registration for peer '1' (from 198.51.100.3)\n",
            asterisk_now()
        ),
    )
    .unwrap();
    s.wait_jail("asterisk", "the new file's line", |st| st.total_failed == 1);
    assert!(d.is_running());
}

/// After a reboot (the kernel's table gone), bans come back from the
/// history with their remaining time (one batch for a few); an address unbanned
/// by hand does not come back (seed FAQ row 7).
#[test]
fn history_restores_bans_but_not_unbanned_ones() {
    kernel_test!();
    let ns = NetNs::create("history").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    s.cli_ok(&["ban", "203.0.113.5", "203.0.113.6", "2001:db8::/64", "--bantime", "2h"]);
    s.cli_ok(&["unban", "203.0.113.6"]);
    assert!(d.stop());
    // A reboot: the kernel forgets everything.
    nft(&ns, &["delete", "table", "inet", "nftban"]);

    let d = Daemon::start(&ns, &s);
    assert_eq!(set_addrs(&ns, "manual_v4"), ["203.0.113.5"], "restored v4 bans");
    assert_eq!(set_addrs(&ns, "manual_v6_64"), ["2001:db8::/64"]);
    let left = s.jail_status("manual").banned[0].expires_in;
    assert!(left > 3600 && left <= 7200, "remaining time kept, not reset: {left}");
    assert!(d.log().contains("2 running ban(s) restored"), "{}", d.log());
    assert!(d.stop());
}

/// `Type=notify`: the daemon says READY=1 on $NOTIFY_SOCKET once it
/// serves and STOPPING=1 at SIGTERM, to a socket file and to an abstract
/// name (`@...`), both of which systemd may hand out.
#[test]
fn tells_systemd_when_ready() {
    kernel_test!();
    let ns = NetNs::create("notify").unwrap();
    let s = Setup::asterisk("");
    let sock = s.dir.path().join("notify.sock");
    let listener = UnixDatagram::bind(&sock).unwrap();
    notify_round(&ns, &s, sock.as_os_str(), &listener);

    // Abstract names belong to a network namespace: bind in the daemon's.
    let name = format!("nftban-test-notify-{}", std::process::id());
    let abstract_name = name.clone();
    let listener = in_netns(&ns, move || {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
        UnixDatagram::bind_addr(&addr).unwrap()
    });
    notify_round(&ns, &s, format!("@{name}").as_ref(), &listener);
}

/// `nftban run` with `NOTIFY_SOCKET=socket`.
fn notify_daemon(ns: &NetNs, s: &Setup, socket: &std::ffi::OsStr) -> Daemon {
    Daemon::spawn(ns, s, |c| {
        c.env("NOTIFY_SOCKET", socket);
    })
}

/// One daemon start with `NOTIFY_SOCKET=socket`: READY=1 with a status
/// once it serves, STOPPING=1 at SIGTERM, on `listener`.
fn notify_round(ns: &NetNs, s: &Setup, socket: &std::ffi::OsStr, listener: &UnixDatagram) {
    let d = notify_daemon(ns, s, socket);
    let mut buf = [0u8; 256];
    listener
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let recv = |buf: &mut [u8]| loop {
        match listener.recv(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other.expect("a notification within the deadline"),
        }
    };
    let n = recv(&mut buf);
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.starts_with("READY=1\nSTATUS=watching 1 jail(s)"), "{msg}");
    assert!(s.try_status().is_some(), "READY before the socket answers");
    d.terminate();
    let n = recv(&mut buf);
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(d.wait());
}

/// A $NOTIFY_SOCKET nobody listens on is warned about; the daemon serves
/// all the same and stops cleanly.
#[test]
fn a_notify_failure_is_only_a_warning() {
    kernel_test!();
    let ns = NetNs::create("notifyfail").unwrap();
    let s = Setup::asterisk("");
    let d = notify_daemon(&ns, &s, s.dir.path().join("nobody.sock").as_os_str());
    wait_for("the daemon to answer status", || s.try_status());
    // READY=1 is sent once the control socket serves: wait for its warning.
    wait_for("the warning", || {
        d.log().contains("cannot notify systemd").then_some(())
    });
    assert!(d.stop());
}

/// The Prometheus endpoint serves the same figures as status.
#[test]
fn metrics_endpoint_serves_ban_counters() {
    kernel_test!();
    let ns = NetNs::create("metrics").unwrap();
    let s = Setup::asterisk("");
    s.top("metrics: {listen: \"127.0.0.1:9477\"}");
    let _d = Daemon::start(&ns, &s);
    s.cli_ok(&["ban", "203.0.113.7"]);
    let body = in_netns(&ns, || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect("127.0.0.1:9477").unwrap();
        c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    });
    assert!(body.starts_with("HTTP/1.0 200 OK"), "{body}");
    assert!(body.contains("nftban_bans_total{jail=\"manual\"} 1\n"), "{body}");
    assert!(body.contains("nftban_banned{jail=\"asterisk\"} 0\n"), "{body}");
}

/// Lines written while the daemon was stopped are read after it starts,
/// each exactly once, and failures counted before the stop still count.
#[test]
fn lines_written_while_stopped_count_exactly_once() {
    kernel_test!();
    let ns = NetNs::create("gap").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    s.failures("198.51.100.1", 2);
    s.wait_jail("asterisk", "two failures", |st| st.total_failed == 2);
    assert!(d.stop());
    // While stopped: one more failure for .1 (its third), two for .2.
    s.failures("198.51.100.1", 1);
    s.failures("198.51.100.2", 2);
    let d = Daemon::start(&ns, &s);
    let st = s.wait_jail("asterisk", "the lines written while stopped", |st| st.total_failed == 3);
    // Nothing counted twice (the two lines before the stop are not read
    // again: 3 failures since start, not 5), nothing forgotten (.1's two
    // failures from before the stop were saved, so the third bans it).
    assert_eq!(st.currently_banned, 1, "{st:?}");
    assert_eq!(banned_ips(&st), ["198.51.100.1"], "{st:?}");
    assert_eq!(st.currently_failed, 1, ".2 has two failures: {st:?}");
    s.failures("198.51.100.2", 1);
    s.wait_jail("asterisk", "the ban of .2", |st| st.currently_banned == 2);
    assert!(
        d.log().contains("reading what was written while nftban was stopped"),
        "{}",
        d.log()
    );
    assert!(d.stop());
}

/// kill -9 in the middle of a burst loses no ban: after a restart, the
/// history, the kernel and status agree, and every attacker is banned.
#[test]
fn kill_9_during_a_burst_loses_no_ban() {
    kernel_test!();
    let ns = NetNs::create("kill9").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    let attackers: Vec<String> = (0..600u32)
        .map(|i| format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256))
        .collect();
    // All 1,800 lines at once: a burst.
    let lines: Vec<String> = attackers.iter().flat_map(|a| vec![failed_registration(a); 3]).collect();
    s.append(&lines);
    // Kill as soon as the first bans are in, while the rest is still coming.
    s.wait_jail("asterisk", "the first bans", |st| st.total_banned > 0);
    d.kill();

    let d = Daemon::start(&ns, &s);
    let st = s.wait_jail("asterisk", "all 600 attackers banned", |st| st.currently_banned == 600);
    let mut status_ips = banned_ips(&st);
    let mut kernel_ips = set_addrs(&ns, "asterisk_v4");
    let mut want = attackers.clone();
    status_ips.sort();
    kernel_ips.sort();
    want.sort();
    assert_eq!(status_ips, want, "status");
    assert_eq!(kernel_ips, want, "kernel");
    assert!(d.stop());
    // And the history agrees: a third start restores the same 600.
    nft(&ns, &["delete", "table", "inet", "nftban"]);
    let d = Daemon::start(&ns, &s);
    assert_eq!(set_elements(&ns, "asterisk_v4").len(), 600, "history restores all bans");
    assert!(d.stop());
}

/// Replaying an old log bans nobody: failures dated long ago are matched but
/// not counted; the same lines dated now ban. Two jails on the same file
/// share one reader and both see its lines.
#[test]
fn old_lines_ban_nobody_and_jails_share_a_file() {
    kernel_test!();
    let ns = NetNs::create("oldlog").unwrap();
    let s = Setup::asterisk("");
    s.jails(&(asterisk_jail("asterisk", &[&s.log]) + &asterisk_jail("second", &[&s.log])));
    let d = Daemon::start(&ns, &s);
    // The reader starts at the end of the file: append once it reads.
    s.wait_jail("asterisk", "the log to be opened", |st| {
        st.sources[0].state == "reading"
    });
    let old: Vec<String> = (0..5)
        .map(|i| {
            format!("[2015-01-28 05:40:1{i}] NOTICE[1] chan_sip.c: No registration for peer '1' (from 198.51.100.44)")
        })
        .collect();
    s.append(&old);
    let st = s.wait_jail("asterisk", "the old lines to be read", |st| st.sources[0].matched == 5);
    assert_eq!(st.total_failed, 0, "{st:?}");
    assert_eq!(st.banned, [], "{st:?}");
    let now = asterisk_now();
    let fresh: Vec<String> = (0..3)
        .map(|_| format!("{now} NOTICE[1] chan_sip.c: No registration for peer '1' (from 198.51.100.45)"))
        .collect();
    s.append(&fresh);
    for jail in ["asterisk", "second"] {
        let st = s.wait_jail(jail, "the fresh lines to ban", |st| !st.banned.is_empty());
        assert_eq!(banned_ips(&st), ["198.51.100.45"], "{jail}: {st:?}");
        assert_eq!(st.total_failed, 3, "{jail}: {st:?}");
    }
    assert!(d.stop());
}

/// `nftban reload`: a bad config is refused with its error and the running
/// one keeps banning; a good one is applied as a whole: a removed jail's
/// bans are lifted, a new jail bans, other bans stay, same process.
#[test]
fn reload_refuses_a_bad_config_and_applies_a_good_one() {
    kernel_test!();
    let ns = NetNs::create("reload").unwrap();
    let s = Setup::asterisk("");
    let mut d = Daemon::start(&ns, &s);
    let pid = d.child.id();
    s.cli_ok(&["ban", "203.0.113.5"]);
    s.failures("198.51.100.7", 3);
    s.wait_jail("asterisk", "the asterisk ban", |st| st.currently_banned == 1);

    s.jails(&format!("{}    maxretri: 3\n", asterisk_jail("asterisk", &[&s.log])));
    let o = s.cli(&["reload"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("reload refused, the running config stays"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("unknown field `maxretri`"), "{}", stderr(&o));
    assert!(d.is_running());
    s.failures("198.51.100.8", 3);
    s.wait_jail("asterisk", "a ban under the old config", |st| st.currently_banned == 2);

    s.jails(&asterisk_jail("sip", &[&s.log]));
    let o = s.cli_ok(&["reload"]);
    assert!(stdout(&o).contains("reloading"), "{}", stdout(&o));
    wait_for("the new jail", || s.try_jail_status("sip"));
    assert!(d.is_running());
    assert_eq!(d.child.id(), pid, "reloaded in place");
    assert!(s.try_jail_status("asterisk").is_none(), "the removed jail is gone");
    let o = run(ns.command("nft").args(["list", "set", "inet", "nftban", "asterisk_v4"]));
    assert!(!o.status.success(), "the removed jail's set (and bans) are gone");
    assert_eq!(set_addrs(&ns, "manual_v4"), ["203.0.113.5"]);
    s.failures("198.51.100.9", 3);
    s.wait_jail("sip", "a ban in the new jail", |st| st.currently_banned == 1);
    assert_eq!(set_addrs(&ns, "sip_v4"), ["198.51.100.9"]);
    assert!(
        d.log().contains("jail asterisk left the config: its bans are lifted"),
        "{}",
        d.log()
    );
    assert!(d.stop());
}

/// A SIGTERM while a reload restarts the daemon in place (`systemctl stop`
/// right after `systemctl reload`) stops it: it was lost between the old
/// image's signal thread and the new one's, and the daemon ran on.
#[test]
fn a_sigterm_during_a_reload_stops_the_daemon() {
    kernel_test!();
    let ns = NetNs::create("reloadterm").unwrap();
    let s = Setup::asterisk("");
    for round in 0..3 {
        let mut d = Daemon::start(&ns, &s);
        s.cli_ok(&["reload"]);
        // At once: the answer comes before the restart, so the signal
        // lands while the old image tears down or the new one starts.
        d.terminate();
        let stopped = wait_for("the daemon to stop on SIGTERM during a reload", || {
            d.child.try_wait().unwrap()
        });
        assert!(stopped.success(), "round {round}: {stopped:?}\n{}", d.log());
        assert!(!d.is_running());
    }
}

/// 100,000 bans come back after a reboot (the kernel's table gone) from
/// the history, one netlink batch per chunk of 32,768 read (the history is
/// streamed, never held whole): in the kernel, and in status.
#[test]
fn restores_100000_bans_a_batch_per_chunk() {
    kernel_test!();
    const N: u32 = 100_000;
    let ns = NetNs::create("restore100k").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    let list: String = (0..N)
        .map(|i| format!("10.{}.{}.{}\n", i >> 16, (i >> 8) & 255, i & 255))
        .collect();
    let o = s.cli_stdin(&["ban", "-", "--bantime", "2h"], &list);
    assert!(o.status.success(), "{}", stderr(&o));
    // One log line for the command, logged with its last request: not one
    // per address, nor one per request of the CLI (it sends 10,000
    // addresses a request).
    let ban = only_line(&d.log(), "Ban ");
    assert!(
        ban.contains("Ban 100000 addresses and prefixes for up to 2h (by hand): 10.0.0.0, 10.0.0.1, 10.0.0.2, ..."),
        "{ban}"
    );
    assert!(d.stop());
    // A reboot: the kernel forgets everything.
    nft(&ns, &["delete", "table", "inet", "nftban"]);

    let d = Daemon::start(&ns, &s);
    assert_eq!(
        set_elements(&ns, "manual_v4").len(),
        N as usize,
        "kernel set after restore"
    );
    let st = s.jail_status("manual");
    assert_eq!(st.currently_banned, u64::from(N), "status after restore");
    assert_eq!(st.banned.len(), N as usize);
    let log = d.log();
    assert!(
        log.contains(&format!("restored {N} bans in 4 netlink batches\n"))
            || log.contains(&format!("restored {N} bans in 4 netlink batches ")),
        "{}",
        log.lines()
            .filter(|l| l.contains("restored"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // `unban -` likewise: one line for its three requests.
    let some: String = list.lines().take(25_000).map(|l| format!("{l}\n")).collect();
    let o = s.cli_stdin(&["unban", "-"], &some);
    assert!(o.status.success(), "{}", stderr(&o));
    let unban = only_line(&d.log(), "Unban ");
    assert!(
        unban.contains("Unban 25000 addresses (by hand): 10.0.0.0, 10.0.0.1, 10.0.0.2, ..."),
        "{unban}"
    );
    assert!(d.stop());
}

/// The one line of `log` that holds `what`.
fn only_line(log: &str, what: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(what)).collect();
    assert_eq!(lines.len(), 1, "{:?}", &lines[..lines.len().min(3)]);
    lines[0].to_string()
}

/// A glob pattern in `files`: every matching file is read, one created
/// later too, a rotated copy that matches the pattern is not counted twice,
/// and status lists each file; a pattern matching nothing says so.
#[test]
fn glob_patterns_follow_new_files_and_skip_rotated_copies() {
    kernel_test!();
    let ns = NetNs::create("glob").unwrap();
    let s = Setup::asterisk("");
    let logs = s.dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let (a, b, c) = (logs.join("a.log"), logs.join("b.log"), logs.join("c.log"));
    std::fs::write(&a, "").unwrap();
    std::fs::write(&b, "").unwrap();
    s.jails(&asterisk_jail(
        "asterisk",
        &[&logs.join("*.log"), &logs.join("none-*.log")],
    ));
    let d = Daemon::start(&ns, &s);
    let st = s.wait_jail("asterisk", "both files read", |st| st.sources[0].files.len() == 2);
    assert_eq!(st.sources[0].files[0].path, path_str(&a));
    assert_eq!(st.sources[0].files[1].path, path_str(&b));
    assert_eq!(st.sources[1].state, "no_match");
    assert_eq!(
        st.sources[1].diagnosis,
        format!("no file matches {}/none-*.log yet", logs.display())
    );
    let add = |f: &std::path::Path, addr: &str| append_to(f, &[failed_registration(addr)]);
    add(&a, "198.51.100.1");
    add(&b, "198.51.100.1");
    s.wait_jail("asterisk", "a failure from each file", |st| st.total_failed == 2);
    // A file created later is read from its start: the third failure bans.
    add(&c, "198.51.100.1");
    s.wait_jail("asterisk", "the ban from the new file", |st| {
        st.currently_banned == 1 && st.total_failed == 3
    });
    // Rotation of a.log to a.log.1... which does not match `*.log`; rotate
    // b.log to b-old.log, which does, with a new b.log.
    std::fs::rename(&b, logs.join("b-old.log")).unwrap();
    add(&b, "198.51.100.2");
    let st = s.wait_jail("asterisk", "the rotated copy and the new file followed", |st| {
        st.total_failed == 4 && st.sources[0].files.len() == 4
    });
    let names: Vec<&str> = st.sources[0].files.iter().map(|f| f.path.as_str()).collect();
    assert!(names.contains(&path_str(&logs.join("b-old.log"))), "{names:?}");
    // One more line anywhere proves the reader went past the rotation
    // without re-reading b-old.log's failure.
    add(&a, "198.51.100.3");
    let st = s.wait_jail("asterisk", "the last failure", |st| st.total_failed >= 5);
    assert_eq!(st.total_failed, 5, "the rotated copy was counted twice: {st:?}");
    assert_eq!(st.sources[0].lines, 5, "{st:?}");
    let o = s.cli_ok(&["check"]);
    assert!(stdout(&o).contains("/*.log: matches 4 file(s) now"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("/none-*.log: no file matches yet"),
        "{}",
        stdout(&o)
    );
    assert!(d.stop());
}

/// `stdin: true`: a daemon fed through a pipe (`tail -F x | nftban run`)
/// bans; when the pipe closes, status says `stdin closed`, the daemon keeps
/// running and its file source keeps banning.
#[test]
fn stdin_source_bans_and_survives_its_end() {
    kernel_test!();
    let ns = NetNs::create("stdinsrc").unwrap();
    let s = Setup::asterisk("    stdin: true\n");
    let mut d = Daemon::spawn(&ns, &s, |c| {
        c.stdin(Stdio::piped());
    });
    let st = s.wait_jail("asterisk", "the daemon to answer status", |_| true);
    assert_eq!(st.sources[1].path, "stdin", "{st:?}");
    let mut pipe = d.child.stdin.take().unwrap();
    use std::io::Write;
    let line = failed_registration("198.51.100.20");
    for _ in 0..3 {
        writeln!(pipe, "{line}").unwrap();
    }
    pipe.flush().unwrap();
    let st = s.wait_jail("asterisk", "the ban from stdin", |st| st.currently_banned == 1);
    assert_eq!(banned_ips(&st), ["198.51.100.20"]);
    assert_eq!(st.sources[1].lines, 3, "{st:?}");
    assert_eq!(st.sources[0].lines, 0, "the file saw none of it: {st:?}");
    assert_eq!(set_addrs(&ns, "asterisk_v4"), ["198.51.100.20"]);
    // The end of input: the last line has no newline, and still counts.
    write!(pipe, "a last line without newline").unwrap();
    drop(pipe);
    let st = s.wait_jail("asterisk", "stdin closed", |st| st.sources[1].state == "closed");
    assert_eq!(st.sources[1].lines, 4, "{st:?}");
    assert!(st.sources[1].diagnosis.starts_with("stdin closed"), "{st:?}");
    assert!(d.is_running(), "the daemon stopped at the end of stdin");
    s.failures("198.51.100.21", 3);
    s.wait_jail("asterisk", "a ban from the file after stdin closed", |st| {
        st.currently_banned == 2
    });
    assert!(d.log().contains("stdin closed after 4 lines"), "{}", d.log());
    assert!(d.stop());
}
