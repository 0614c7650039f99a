//! The daemon against the real kernel, in a private namespace: restart
//! keeps bans, manual bans with prefixes and stdin, silent sources explained.

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;

use crate::support::*;

/// A second start finds the table and keeps its bans: in the kernel (no
/// flush), in status, and without duplicating rules.
#[test]
fn restart_keeps_bans_and_does_not_duplicate_rules() {
    if !kernel_tests_possible("restart_keeps_bans_and_does_not_duplicate_rules") {
        return;
    }
    let ns = NetNs::create("restart").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(s.dir.path().join("nftban.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "control socket must be 0600");
    let o = s.cli(&[
        "ban",
        "203.0.113.5",
        "198.51.100.0/24",
        "2001:db8:bad::/48",
        "--bantime",
        "2h",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.stop());
    // Stopped: the bans are still in the kernel.
    let elems = set_elements(&ns, "manual_v4");
    assert!(elems.contains(&("203.0.113.5".to_string(), Some(7200))), "{elems:?}");
    let nets = set_elements(&ns, "manual_v4_net");
    assert!(nets.iter().any(|(e, _)| e == "198.51.100.0/24"), "{nets:?}");

    let d = Daemon::start(&ns, &s);
    let st = s.status("manual").unwrap();
    let ips: Vec<&str> = st["banned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["ip"].as_str().unwrap())
        .collect();
    assert_eq!(ips.len(), 3, "{ips:?}");
    for want in ["203.0.113.5", "198.51.100.0/24", "2001:db8:bad::/48"] {
        assert!(ips.contains(&want), "{want} not restored after restart: {ips:?}");
    }
    assert_eq!(set_elements(&ns, "manual_v4").len(), 1);
    assert_eq!(set_elements(&ns, "manual_v4_net").len(), 1);
    // One rule per set: 2 jails (asterisk, manual) x 2 families x
    // (addresses, prefixes).
    let table = nft_table(&ns);
    let rules = table
        .objects
        .iter()
        .filter(|o| {
            matches!(
                o,
                nftables::schema::NfObject::ListObject(nftables::schema::NfListObject::Rule(_))
            )
        })
        .count();
    assert_eq!(rules, 8, "rules duplicated on restart");
    assert!(d.stop());

    // The history deleted: the next start keeps the kernel's elements as
    // they are, with their running timeouts, and never lists a set.
    let expires = || -> Vec<(String, u64)> {
        let o = run(ns
            .command("nft")
            .args(["-j", "list", "set", "inet", "nftban", "manual_v4"]));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["set"]["elem"].as_array())
            .flatten()
            .map(|e| (e["elem"]["val"].to_string(), e["elem"]["expires"].as_u64().unwrap()))
            .collect()
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
    let nets = set_elements(&ns, "manual_v4_net");
    assert!(nets.iter().any(|(e, _)| e == "198.51.100.0/24"), "{nets:?}");
    assert_eq!(set_elements(&ns, "manual_v6_net").len(), 1);
    let st = s.status("manual").unwrap();
    assert_eq!(st["currently_banned"], 0, "{st}");
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
    if !kernel_tests_possible("ban_from_stdin_and_unban_inside_a_prefix_is_explained") {
        return;
    }
    let ns = NetNs::create("stdin").unwrap();
    let s = Setup::asterisk("");
    let _d = Daemon::start(&ns, &s);
    let mut child = nftban()
        .args(["ban", "-", "--jail", "asterisk", "--config"])
        .arg(&s.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"# a list\n198.51.100.1\n198.51.100.2\n\n198.51.100.128/25\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let elems: Vec<String> = set_elements(&ns, "asterisk_v4").into_iter().map(|e| e.0).collect();
    assert_eq!(elems, ["198.51.100.1", "198.51.100.2"]);
    let nets: Vec<String> = set_elements(&ns, "asterisk_v4_net").into_iter().map(|e| e.0).collect();
    assert_eq!(nets, ["198.51.100.128/25"]);
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
    if !kernel_tests_possible("status_explains_missing_and_unreadable_sources") {
        return;
    }
    let ns = NetNs::create("silent").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-yet.log");
    let unreadable = dir.path().join("a-directory");
    std::fs::create_dir(&unreadable).unwrap();
    let s = Setup::asterisk("");
    std::fs::write(
        &s.config,
        format!(
            "socket: {0}/nftban.sock\ndatabase: {0}/nftban.db\njails:\n  asterisk:\n    ruleset: asterisk\n    files: [{1}, {2}, {3}]\n",
            s.dir.path().display(),
            missing.display(),
            unreadable.display(),
            s.log.display()
        ),
    )
    .unwrap();
    let mut d = Daemon::start(&ns, &s);
    // The reader starts at the end of the file: append once it reads.
    wait_for("the log to be opened", || {
        s.status("asterisk").filter(|st| st["sources"][2]["state"] == "reading")
    });
    s.append(&["a line that is no failure"]);
    let st = wait_for("sources to be looked at", || {
        s.status("asterisk")
            .filter(|st| st["sources"][2]["lines"] == 1 && st["sources"][1]["state"] == "unreadable")
    });
    assert_eq!(st["sources"][0]["state"], "missing");
    assert!(st["sources"][0]["diagnosis"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    assert!(st["sources"][1]["diagnosis"].as_str().unwrap().contains("directory"));
    assert!(st["sources"][2]["diagnosis"]
        .as_str()
        .unwrap()
        .contains("1 lines read, none matched"));
    // The missing file appears: it is read from its start.
    std::fs::write(
        &missing,
        format!(
            "{} NOTICE[1] chan_sip.c: No registration for peer '1' (from 198.51.100.3)\n",
            asterisk_now()
        ),
    )
    .unwrap();
    wait_for("the new file's line", || {
        s.status("asterisk").filter(|st| st["total_failed"] == 1)
    });
    assert!(d.is_running());
}

/// After a reboot (the kernel's table gone), bans come back from the
/// history with their remaining time, all in one batch; an address unbanned
/// by hand does not come back (seed FAQ row 7).
#[test]
fn history_restores_bans_but_not_unbanned_ones() {
    if !kernel_tests_possible("history_restores_bans_but_not_unbanned_ones") {
        return;
    }
    let ns = NetNs::create("history").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    let o = s.cli(&["ban", "203.0.113.5", "203.0.113.6", "2001:db8::/64", "--bantime", "2h"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s.cli(&["unban", "203.0.113.6"]).status.success());
    assert!(d.stop());
    // A reboot: the kernel forgets everything.
    let o = run(ns.command("nft").args(["delete", "table", "inet", "nftban"]));
    assert!(o.status.success(), "{}", stderr(&o));

    let d = Daemon::start(&ns, &s);
    let v4: Vec<String> = set_elements(&ns, "manual_v4").into_iter().map(|e| e.0).collect();
    assert_eq!(v4, ["203.0.113.5"], "restored v4 bans");
    let v6: Vec<String> = set_elements(&ns, "manual_v6_net").into_iter().map(|e| e.0).collect();
    assert_eq!(v6, ["2001:db8::/64"]);
    let st = s.status("manual").unwrap();
    let left = st["banned"][0]["expires_in"].as_u64().unwrap();
    assert!(left > 3600 && left <= 7200, "remaining time kept, not reset: {left}");
    assert!(d.log().contains("2 running ban(s) restored"), "{}", d.log());
    assert!(d.stop());
}

/// `Type=notify`: the daemon says READY=1 on $NOTIFY_SOCKET once it
/// serves and STOPPING=1 at SIGTERM, to a socket file and to an abstract
/// name (`@...`), both of which systemd may hand out.
#[test]
fn tells_systemd_when_ready() {
    if !kernel_tests_possible("tells_systemd_when_ready") {
        return;
    }
    let ns = NetNs::create("notify").unwrap();
    let s = Setup::asterisk("");
    let sock = s.dir.path().join("notify.sock");
    let listener = UnixDatagram::bind(&sock).unwrap();
    notify_round(&ns, &s, sock.as_os_str(), &listener);

    // Abstract names belong to a network namespace: bind in the daemon's.
    let name = format!("nftban-test-notify-{}", std::process::id());
    let ns_name = ns.name.clone();
    let abstract_name = name.clone();
    let listener = std::thread::spawn(move || {
        let ns = NetNs { name: ns_name };
        ns.enter().unwrap();
        std::mem::forget(ns);
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
        UnixDatagram::bind_addr(&addr).unwrap()
    })
    .join()
    .unwrap();
    notify_round(&ns, &s, format!("@{name}").as_ref(), &listener);
}

/// `nftban run` with `NOTIFY_SOCKET=socket`, not waited for.
fn notify_daemon(ns: &NetNs, s: &Setup, socket: &std::ffi::OsStr) -> Daemon {
    let stderr = s.dir.path().join("daemon-notify.log");
    let child = ns
        .command(env!("CARGO_BIN_EXE_nftban"))
        .args(["run", "--config"])
        .arg(&s.config)
        .env("NOTIFY_SOCKET", socket)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    Daemon { child, stderr }
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
            other => break other.unwrap(),
        }
    };
    let n = recv(&mut buf);
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.starts_with("READY=1\nSTATUS=watching 1 jail(s)"), "{msg}");
    assert!(s.status("asterisk").is_some(), "READY before the socket answers");
    assert!(d.stop());
    let n = recv(&mut buf);
    assert_eq!(&buf[..n], b"STOPPING=1");
}

/// A $NOTIFY_SOCKET nobody listens on is warned about; the daemon serves
/// all the same and stops cleanly.
#[test]
fn a_notify_failure_is_only_a_warning() {
    if !kernel_tests_possible("a_notify_failure_is_only_a_warning") {
        return;
    }
    let ns = NetNs::create("notifyfail").unwrap();
    let s = Setup::asterisk("");
    let d = notify_daemon(&ns, &s, s.dir.path().join("nobody.sock").as_os_str());
    wait_for("the daemon to answer status", || s.status("asterisk"));
    // READY=1 is sent once the control socket serves: wait for its warning.
    wait_for("the warning", || {
        d.log().contains("cannot notify systemd").then_some(())
    });
    assert!(d.stop());
}

/// The Prometheus endpoint serves the same figures as status.
#[test]
fn metrics_endpoint_serves_ban_counters() {
    if !kernel_tests_possible("metrics_endpoint_serves_ban_counters") {
        return;
    }
    let ns = NetNs::create("metrics").unwrap();
    let s = Setup::asterisk("");
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, format!("metrics: {{listen: \"127.0.0.1:9477\"}}\n{text}")).unwrap();
    let _d = Daemon::start(&ns, &s);
    assert!(s.cli(&["ban", "203.0.113.7"]).status.success());
    let name = ns.name.clone();
    let body = std::thread::spawn(move || {
        let ns = NetNs { name };
        ns.enter().unwrap();
        std::mem::forget(ns);
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect("127.0.0.1:9477").unwrap();
        c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    })
    .join()
    .unwrap();
    assert!(body.starts_with("HTTP/1.0 200 OK"), "{body}");
    assert!(body.contains("nftban_bans_total{jail=\"manual\"} 1\n"), "{body}");
    assert!(body.contains("nftban_banned{jail=\"asterisk\"} 0\n"), "{body}");
}

fn attack(addr: &str) -> String {
    format!(
        "{} NOTICE[1] chan_sip.c: Registration from '<sip:1@192.0.2.1>' failed for '{addr}:5060' - Wrong password",
        asterisk_now()
    )
}

/// Lines written while the daemon was stopped are read after it starts,
/// each exactly once, and failures counted before the stop still count.
#[test]
fn lines_written_while_stopped_count_exactly_once() {
    if !kernel_tests_possible("lines_written_while_stopped_count_exactly_once") {
        return;
    }
    let ns = NetNs::create("gap").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    s.append(&[&attack("198.51.100.1"), &attack("198.51.100.1")]);
    wait_for("two failures", || {
        s.status("asterisk").filter(|st| st["total_failed"] == 2)
    });
    assert!(d.stop());
    // While stopped: one more failure for .1 (its third), two for .2.
    s.append(&[
        &attack("198.51.100.1"),
        &attack("198.51.100.2"),
        &attack("198.51.100.2"),
    ]);
    let d = Daemon::start(&ns, &s);
    let st = wait_for("the lines written while stopped", || {
        s.status("asterisk").filter(|st| st["total_failed"] == 3)
    });
    // Nothing counted twice (the two lines before the stop are not read
    // again: 3 failures since start, not 5), nothing forgotten (.1's two
    // failures from before the stop were saved, so the third bans it).
    assert_eq!(st["currently_banned"], 1, "{st}");
    assert_eq!(st["banned"][0]["ip"], "198.51.100.1", "{st}");
    assert_eq!(st["currently_failed"], 1, ".2 has two failures: {st}");
    s.append(&[&attack("198.51.100.2")]);
    wait_for("the ban of .2", || {
        s.status("asterisk").filter(|st| st["currently_banned"] == 2)
    });
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
    if !kernel_tests_possible("kill_9_during_a_burst_loses_no_ban") {
        return;
    }
    let ns = NetNs::create("kill9").unwrap();
    let s = Setup::asterisk("");
    let mut d = Daemon::start(&ns, &s);
    let attackers: Vec<String> = (0..600u32)
        .map(|i| format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256))
        .collect();
    let mut lines = Vec::new();
    for a in &attackers {
        for _ in 0..3 {
            lines.push(attack(a));
        }
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    s.append(&refs);
    // Kill as soon as the first bans are in, while the rest is still coming.
    wait_for("the first bans", || {
        s.status("asterisk").filter(|st| st["total_banned"].as_u64() > Some(0))
    });
    unsafe { libc::kill(d.child.id() as i32, libc::SIGKILL) };
    let _ = d.child.wait();
    std::mem::forget(d);

    let d = Daemon::start(&ns, &s);
    let st = wait_for("all 600 attackers banned", || {
        s.status("asterisk").filter(|st| st["currently_banned"] == 600)
    });
    let mut status_ips: Vec<String> = st["banned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["ip"].as_str().unwrap().to_string())
        .collect();
    let mut kernel_ips: Vec<String> = set_elements(&ns, "asterisk_v4").into_iter().map(|e| e.0).collect();
    let mut want = attackers.clone();
    status_ips.sort();
    kernel_ips.sort();
    want.sort();
    assert_eq!(status_ips, want, "status");
    assert_eq!(kernel_ips, want, "kernel");
    assert!(d.stop());
    // And the history agrees: a third start restores the same 600.
    let o = run(ns.command("nft").args(["delete", "table", "inet", "nftban"]));
    assert!(o.status.success());
    let d = Daemon::start(&ns, &s);
    assert_eq!(set_elements(&ns, "asterisk_v4").len(), 600, "history restores all bans");
    assert!(d.stop());
}

/// Replaying an old log bans nobody: failures dated long ago are matched but
/// not counted; the same lines dated now ban. Two jails on the same file
/// share one reader and both see its lines.
#[test]
fn old_lines_ban_nobody_and_jails_share_a_file() {
    if !kernel_tests_possible("old_lines_ban_nobody_and_jails_share_a_file") {
        return;
    }
    let ns = NetNs::create("oldlog").unwrap();
    let s = Setup::asterisk("");
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        format!(
            "{text}  second:\n    ruleset: asterisk\n    files: [{}]\n",
            s.log.display()
        ),
    )
    .unwrap();
    let d = Daemon::start(&ns, &s);
    // The reader starts at the end of the file: append once it reads.
    wait_for("the log to be opened", || {
        s.status("asterisk").filter(|st| st["sources"][0]["state"] == "reading")
    });
    let old: Vec<String> = (0..5)
        .map(|i| {
            format!("[2015-01-28 05:40:1{i}] NOTICE[1] chan_sip.c: No registration for peer '1' (from 198.51.100.44)")
        })
        .collect();
    s.append(&old.iter().map(|l| l.as_str()).collect::<Vec<_>>());
    let st = wait_for("the old lines to be read", || {
        s.status("asterisk").filter(|st| st["sources"][0]["matched"] == 5)
    });
    assert_eq!(st["total_failed"], 0, "{st}");
    assert_eq!(st["banned"].as_array().unwrap().len(), 0, "{st}");
    let now = asterisk_now();
    let fresh: Vec<String> = (0..3)
        .map(|_| format!("{now} NOTICE[1] chan_sip.c: No registration for peer '1' (from 198.51.100.45)"))
        .collect();
    s.append(&fresh.iter().map(|l| l.as_str()).collect::<Vec<_>>());
    for jail in ["asterisk", "second"] {
        let st = wait_for("the fresh lines to ban", || {
            s.status(jail)
                .filter(|st| st["banned"].as_array().is_some_and(|b| !b.is_empty()))
        });
        assert_eq!(st["banned"][0]["ip"], "198.51.100.45", "{jail}: {st}");
        assert_eq!(st["total_failed"], 3, "{jail}: {st}");
    }
    assert!(d.stop());
}

/// `nftban reload`: a bad config is refused with its error and the running
/// one keeps banning; a good one is applied as a whole: a removed jail's
/// bans are lifted, a new jail bans, other bans stay, same process.
#[test]
fn reload_refuses_a_bad_config_and_applies_a_good_one() {
    if !kernel_tests_possible("reload_refuses_a_bad_config_and_applies_a_good_one") {
        return;
    }
    let ns = NetNs::create("reload").unwrap();
    let s = Setup::asterisk("");
    let mut d = Daemon::start(&ns, &s);
    let pid = d.child.id();
    assert!(s.cli(&["ban", "203.0.113.5"]).status.success());
    let a = attack("198.51.100.7");
    s.append(&[&a, &a, &a]);
    wait_for("the asterisk ban", || {
        s.status("asterisk").filter(|st| st["currently_banned"] == 1)
    });

    let good = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        good.replace("    ruleset: asterisk\n", "    ruleset: asterisk\n    maxretri: 3\n"),
    )
    .unwrap();
    let o = s.cli(&["reload"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("reload refused, the running config stays"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("unknown field `maxretri`"), "{}", stderr(&o));
    assert!(d.is_running());
    let b = attack("198.51.100.8");
    s.append(&[&b, &b, &b]);
    wait_for("a ban under the old config", || {
        s.status("asterisk").filter(|st| st["currently_banned"] == 2)
    });

    std::fs::write(&s.config, good.replace("  asterisk:\n", "  sip:\n")).unwrap();
    let o = s.cli(&["reload"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("reloading"), "{}", stdout(&o));
    wait_for("the new jail", || s.status("sip"));
    assert!(d.is_running());
    assert_eq!(d.child.id(), pid, "reloaded in place");
    assert!(s.status("asterisk").is_none(), "the removed jail is gone");
    let o = run(ns.command("nft").args(["list", "set", "inet", "nftban", "asterisk_v4"]));
    assert!(!o.status.success(), "the removed jail's set (and bans) are gone");
    assert_eq!(
        set_elements(&ns, "manual_v4")
            .into_iter()
            .map(|e| e.0)
            .collect::<Vec<_>>(),
        ["203.0.113.5"]
    );
    let c = attack("198.51.100.9");
    s.append(&[&c, &c, &c]);
    wait_for("a ban in the new jail", || {
        s.status("sip").filter(|st| st["currently_banned"] == 1)
    });
    assert_eq!(
        set_elements(&ns, "sip_v4").into_iter().map(|e| e.0).collect::<Vec<_>>(),
        ["198.51.100.9"]
    );
    assert!(
        d.log().contains("jail asterisk left the config: its bans are lifted"),
        "{}",
        d.log()
    );
    assert!(d.stop());
}

/// 100,000 bans come back after a reboot (the kernel's table gone) from
/// the history, all in one netlink batch: in the kernel, and in status.
#[test]
fn restores_100000_bans_in_one_batch() {
    if !kernel_tests_possible("restores_100000_bans_in_one_batch") {
        return;
    }
    const N: u32 = 100_000;
    let ns = NetNs::create("restore100k").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    let list: String = (0..N)
        .map(|i| format!("10.{}.{}.{}\n", i >> 16, (i >> 8) & 255, i & 255))
        .collect();
    let mut child = nftban()
        .args(["ban", "-", "--bantime", "2h", "--config"])
        .arg(&s.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(list.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.stop());
    // A reboot: the kernel forgets everything.
    let o = run(ns.command("nft").args(["delete", "table", "inet", "nftban"]));
    assert!(o.status.success(), "{}", stderr(&o));

    let d = Daemon::start(&ns, &s);
    assert_eq!(
        set_elements(&ns, "manual_v4").len(),
        N as usize,
        "kernel set after restore"
    );
    let st = s.status("manual").unwrap();
    assert_eq!(st["currently_banned"], N, "status after restore");
    assert_eq!(st["banned"].as_array().unwrap().len(), N as usize);
    let log = d.log();
    assert!(
        log.contains(&format!("restored {N} bans in 1 netlink batch\n"))
            || log.contains(&format!("restored {N} bans in 1 netlink batch ")),
        "{}",
        log.lines()
            .filter(|l| l.contains("restored"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(d.stop());
}

/// A glob pattern in `files`: every matching file is read, one created
/// later too, a rotated copy that matches the pattern is not counted twice,
/// and status lists each file; a pattern matching nothing says so.
#[test]
fn glob_patterns_follow_new_files_and_skip_rotated_copies() {
    if !kernel_tests_possible("glob_patterns_follow_new_files_and_skip_rotated_copies") {
        return;
    }
    let ns = NetNs::create("glob").unwrap();
    let s = Setup::asterisk("");
    let logs = s.dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let (a, b, c) = (logs.join("a.log"), logs.join("b.log"), logs.join("c.log"));
    std::fs::write(&a, "").unwrap();
    std::fs::write(&b, "").unwrap();
    let text = std::fs::read_to_string(&s.config).unwrap();
    let files = format!("files: [\"{0}/*.log\", \"{0}/none-*.log\"]", logs.display());
    std::fs::write(
        &s.config,
        text.replace(&format!("files: [{}]", s.log.display()), &files),
    )
    .unwrap();
    let d = Daemon::start(&ns, &s);
    let st = wait_for("both files read", || {
        s.status("asterisk")
            .filter(|st| st["sources"][0]["files"].as_array().is_some_and(|f| f.len() == 2))
    });
    assert_eq!(st["sources"][0]["files"][0]["path"], path_str(&a));
    assert_eq!(st["sources"][0]["files"][1]["path"], path_str(&b));
    assert_eq!(st["sources"][1]["state"], "no_match");
    assert_eq!(
        st["sources"][1]["diagnosis"],
        format!("no file matches {}/none-*.log yet", logs.display())
    );
    let add = |f: &std::path::Path, addr: &str| {
        use std::io::Write;
        let mut h = std::fs::OpenOptions::new().create(true).append(true).open(f).unwrap();
        writeln!(h, "{}", attack(addr)).unwrap();
    };
    add(&a, "198.51.100.1");
    add(&b, "198.51.100.1");
    wait_for("a failure from each file", || {
        s.status("asterisk").filter(|st| st["total_failed"] == 2)
    });
    // A file created later is read from its start: the third failure bans.
    add(&c, "198.51.100.1");
    wait_for("the ban from the new file", || {
        s.status("asterisk")
            .filter(|st| st["currently_banned"] == 1 && st["total_failed"] == 3)
    });
    // Rotation of a.log to a.log.1... which does not match `*.log`; rotate
    // b.log to b-old.log, which does, with a new b.log.
    std::fs::rename(&b, logs.join("b-old.log")).unwrap();
    add(&b, "198.51.100.2");
    let st = wait_for("the rotated copy and the new file followed", || {
        s.status("asterisk")
            .filter(|st| st["total_failed"] == 4 && st["sources"][0]["files"].as_array().is_some_and(|f| f.len() == 4))
    });
    let names: Vec<&str> = st["sources"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(names.contains(&path_str(&logs.join("b-old.log"))), "{names:?}");
    // One more line anywhere proves the reader went past the rotation
    // without re-reading b-old.log's failure.
    add(&a, "198.51.100.3");
    let st = wait_for("the last failure", || {
        s.status("asterisk").filter(|st| st["total_failed"].as_u64() >= Some(5))
    });
    assert_eq!(st["total_failed"], 5, "the rotated copy was counted twice: {st}");
    assert_eq!(st["sources"][0]["lines"], 5, "{st}");
    let o = s.cli(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
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
    if !kernel_tests_possible("stdin_source_bans_and_survives_its_end") {
        return;
    }
    let ns = NetNs::create("stdinsrc").unwrap();
    let s = Setup::asterisk("    stdin: true\n");
    let stderr_path = s.dir.path().join("daemon-stdin.log");
    let child = ns
        .command(env!("CARGO_BIN_EXE_nftban"))
        .args(["run", "--config"])
        .arg(&s.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut d = Daemon {
        child,
        stderr: stderr_path,
    };
    let st = wait_for("the daemon to answer status", || s.status("asterisk"));
    assert_eq!(st["sources"][1]["path"], "stdin", "{st}");
    let mut pipe = d.child.stdin.take().unwrap();
    use std::io::Write;
    for _ in 0..3 {
        writeln!(pipe, "{}", attack("198.51.100.20")).unwrap();
    }
    pipe.flush().unwrap();
    let st = wait_for("the ban from stdin", || {
        s.status("asterisk").filter(|st| st["currently_banned"] == 1)
    });
    assert_eq!(st["banned"][0]["ip"], "198.51.100.20");
    assert_eq!(st["sources"][1]["lines"], 3, "{st}");
    assert_eq!(st["sources"][0]["lines"], 0, "the file saw none of it: {st}");
    let elems: Vec<String> = set_elements(&ns, "asterisk_v4").into_iter().map(|e| e.0).collect();
    assert_eq!(elems, ["198.51.100.20"]);
    // The end of input: the last line has no newline, and still counts.
    write!(pipe, "a last line without newline").unwrap();
    drop(pipe);
    let st = wait_for("stdin closed", || {
        s.status("asterisk").filter(|st| st["sources"][1]["state"] == "closed")
    });
    assert_eq!(st["sources"][1]["lines"], 4, "{st}");
    assert!(
        st["sources"][1]["diagnosis"]
            .as_str()
            .unwrap()
            .starts_with("stdin closed"),
        "{st}"
    );
    assert!(d.is_running(), "the daemon stopped at the end of stdin");
    let b = attack("198.51.100.21");
    s.append(&[&b, &b, &b]);
    wait_for("a ban from the file after stdin closed", || {
        s.status("asterisk").filter(|st| st["currently_banned"] == 2)
    });
    assert!(d.log().contains("stdin closed after 4 lines"), "{}", d.log());
    assert!(d.stop());
}
