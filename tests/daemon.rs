//! The daemon against the real kernel, in a private namespace: restart
//! keeps bans, manual bans with prefixes and stdin, silent sources explained.

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
    assert!(elems.iter().any(|(e, _)| e == "198.51.100.0/24"), "{elems:?}");

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
        assert!(ips.contains(&want), "{want} not adopted after restart: {ips:?}");
    }
    assert_eq!(set_elements(&ns, "manual_v4").len(), 2);
    // One rule per set: 2 jails (asterisk, manual) x 2 families.
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
    assert_eq!(rules, 4, "rules duplicated on restart");
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
    assert_eq!(elems, ["198.51.100.1", "198.51.100.2", "198.51.100.128/25"]);
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
            "socket: {}/nftban.sock\njails:\n  asterisk:\n    ruleset: asterisk\n    files: [{}, {}, {}]\n",
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
