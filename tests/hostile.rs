//! Hostile input at the daemon, end to end (issue 13): lines an attacker
//! pads to steer the match, and log paths that name no regular file. Each
//! runs the real daemon in a private namespace and reads what it says in
//! `status --json`; `nftban test` on the same log must say the same.

use std::io::Write;
use std::path::Path;

use crate::support::*;

/// The line limit of the daemon and `nftban test` (`sources::MAX_LINE`).
const MAX_LINE: usize = 1 << 20;

/// A line `head`, attacker text (padding then `forged`), `tail`, with the
/// padding set so that `forged` ends `cut` bytes into the line.
fn padded(head: &str, forged: &str, tail: &str, cut: usize) -> String {
    format!("{head}{}{forged}{tail}", "A".repeat(cut - head.len() - forged.len()))
}

/// Asterisk lines, dated now, whose SIP From carries a forged end naming
/// 6.6.6.x: cut at the old 16 KiB limit (whole: the PJSIP one names
/// nobody, its From holding quotes on both sides of the address; the
/// chan_sip one names its real source 198.51.100.21), or at the limit
/// (whole, over it: skipped). Returns the lines and how many are over the
/// limit.
fn padded_sip_lines() -> (Vec<String>, u64) {
    let now = asterisk_now();
    let pjsip = format!("{now} NOTICE[4242] res_pjsip/pjsip_distributor.c: Request 'INVITE' from '<sip:");
    let pjsip_forged = "' failed for '6.6.6.30:5060' (callid: x) - No matching endpoint found";
    let pjsip_tail = "@192.0.2.1>' failed for '198.51.100.40:5060' (callid: 1234) - No matching endpoint found";
    let chan_sip = format!("{now} NOTICE[31015] chan_sip.c: Registration from '<sip:");
    let chan_sip_forged = "' failed for '6.6.6.31:5060' - Wrong password";
    let chan_sip_tail = "@example.com>' failed for '198.51.100.21:5060' - Wrong password";
    let mut lines = Vec::new();
    for cut in [16 * 1024, MAX_LINE] {
        lines.push(padded(&pjsip, pjsip_forged, pjsip_tail, cut));
        lines.push(padded(&chan_sip, chan_sip_forged, chan_sip_tail, cut));
    }
    (lines, 2)
}

/// Padded SIP lines (three of each, as an attacker repeats them to reach
/// maxretry) ban the real source or nobody, never the forged address; the
/// lines over the limit are counted in `truncated` and logged once, not
/// once each; and `nftban test` on the same log counts the same lines,
/// skips the same ones and finds the same addresses.
#[test]
fn padded_sip_lines_never_ban_the_forged_address_and_nftban_test_agrees() {
    kernel_test!();
    let ns = NetNs::create("hostile-pad").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    let (lines, over) = padded_sip_lines();
    for _ in 0..3 {
        s.append(&lines);
    }
    s.failures("192.0.2.50", 3);
    // Written last: once it is banned, every line before it was dealt with.
    let st = s.wait_jail("asterisk", "192.0.2.50 banned", |st| {
        banned_ips(st).contains(&"192.0.2.50")
    });
    let mut ips = banned_ips(&st);
    ips.sort();
    assert_eq!(ips, ["192.0.2.50", "198.51.100.21"], "the real sources, never 6.6.6.x");
    let src = &st.sources[0];
    let total = 3 * lines.len() as u64 + 3;
    assert_eq!((src.lines, src.truncated), (total, 3 * over), "{src:?}");
    let log = d.log();
    assert_eq!(
        log.matches("line longer than").count(),
        1,
        "over-long lines are logged once a minute, not once each:\n{log}"
    );

    let o = run(nftban().args(["test", path_str(&s.log), "asterisk", "--json"]));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["lines"], src.lines, "{report}");
    assert_eq!(report["too_long"], src.truncated, "{report}");
    assert_eq!(
        report["hosts"],
        serde_json::json!({"198.51.100.21": 3, "192.0.2.50": 3}),
        "the same addresses as the daemon's failures"
    );
    let o = run(nftban().args(["test", path_str(&s.log), "asterisk"]));
    let text = stdout(&o);
    assert!(
        text.contains("(6 lines longer than 1048576 bytes, skipped unmatched, as the daemon skips them)"),
        "{text}"
    );
}

/// Without a daemon or root: `nftban test` skips and counts the lines over
/// the limit (`too_long`), and never reports the forged address, whether
/// the log is a file or comes on stdin.
#[test]
fn nftban_test_skips_lines_over_the_limit() {
    let s = Setup::asterisk("");
    let (lines, over) = padded_sip_lines();
    s.append(&lines);
    let mut log = std::fs::read_to_string(&s.log).unwrap();
    let o = run(nftban().args(["test", path_str(&s.log), "asterisk", "--json"]));
    let from_stdin = {
        let mut child = nftban()
            .args(["test", "-", "asterisk", "--json"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = log.as_bytes();
        std::thread::scope(|sc| {
            sc.spawn(move || stdin.write_all(input).unwrap());
            child.wait_with_output().unwrap()
        })
    };
    for o in [o, from_stdin] {
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["lines"], lines.len(), "{report}");
        assert_eq!(report["too_long"], over, "{report}");
        assert_eq!(report["hosts"], serde_json::json!({"198.51.100.21": 1}), "{report}");
    }
    // Without its newline, at the end of the input, too.
    log.pop();
    std::fs::write(&s.log, &log).unwrap();
    let o = run(nftban().args(["test", path_str(&s.log), "asterisk", "--json"]));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["too_long"], over, "{report}");
}

/// Replace what `path` names with a regular file holding `lines`.
fn becomes_a_file(path: &Path, lines: &[String]) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir(path).unwrap(),
        Ok(_) => std::fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
    // Written whole, then renamed in: the reader sees the file complete.
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    drop(f);
    std::fs::rename(&tmp, path).unwrap();
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {path:?}");
}

/// Log paths that name a FIFO (it hung the reader for good), a link to
/// /dev/zero (it burnt a core for good), a directory, and a FIFO matching
/// a glob pattern: each jail's status says `unreadable` with what it is
/// (logged once, though looked at every second), nothing is read from
/// them, the daemon answers; once each path names a regular file, its
/// lines are read and its jail bans.
#[test]
fn non_regular_log_paths_are_reported_then_read_once_regular() {
    kernel_test!();
    let ns = NetNs::create("hostile-paths").unwrap();
    let s = Setup::asterisk("");
    let dir = s.dir.path();
    let fifo = dir.join("fifo.log");
    mkfifo(&fifo);
    let zero = dir.join("zero.log");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let folder = dir.join("folder.log");
    std::fs::create_dir(&folder).unwrap();
    let globbed = dir.join("g");
    std::fs::create_dir(&globbed).unwrap();
    let glob_fifo = globbed.join("x.log");
    mkfifo(&glob_fifo);
    let pattern = globbed.join("*.log");
    s.jails(
        &[
            asterisk_jail("fifo", &[&fifo]),
            asterisk_jail("zero", &[&zero]),
            asterisk_jail("folder", &[&folder]),
            asterisk_jail("globbed", &[&pattern]),
        ]
        .concat(),
    );
    let d = Daemon::start(&ns, &s);
    let unreadable = |jail: &str, error: &str| {
        let st = s.wait_jail(jail, &format!("{jail} unreadable"), |st| {
            let src = st.sources[0].files.first().unwrap_or(&st.sources[0]);
            src.state == "unreadable"
        });
        let src = st.sources[0].files.first().unwrap_or(&st.sources[0]);
        assert_eq!(src.error.as_deref(), Some(error), "{jail}: {src:?}");
        assert_eq!((src.lines, src.truncated), (0, 0), "{jail}: nothing read: {src:?}");
    };
    unreadable("fifo", "is a FIFO, not a regular file");
    unreadable("zero", "is a link to /dev/zero, a character device, not a regular file");
    unreadable("folder", "is a directory, not a regular file");
    unreadable("globbed", "is a FIFO, not a regular file");
    assert!(
        s.jail_status("fifo").sources[0]
            .diagnosis
            .contains("is a FIFO, not a regular file"),
        "status says why in words"
    );
    for (path, addr) in [
        (&fifo, "192.0.2.61"),
        (&zero, "192.0.2.62"),
        (&folder, "192.0.2.63"),
        (&glob_fifo, "192.0.2.64"),
    ] {
        becomes_a_file(path, &vec![failed_registration(addr); 3]);
    }
    for (jail, addr) in [
        ("fifo", "192.0.2.61"),
        ("zero", "192.0.2.62"),
        ("folder", "192.0.2.63"),
        ("globbed", "192.0.2.64"),
    ] {
        let st = s.wait_jail(jail, &format!("{addr} banned in {jail}"), |st| {
            banned_ips(st).contains(&addr)
        });
        assert_eq!(st.sources[0].state, "reading", "{jail}: {:?}", st.sources[0]);
    }
    // The paths were looked at every second all along; each was said once.
    let log = d.log();
    for (words, paths) in [
        ("is a FIFO, not a regular file", 2),
        ("is a link to /dev/zero", 1),
        ("is a directory, not a regular file", 1),
    ] {
        assert_eq!(
            log.matches(words).count(),
            paths,
            "`{words}` said once per path:\n{log}"
        );
    }
    assert!(d.stop(), "the daemon stops cleanly");
}

/// The journal source applies the same limit: messages over it (their
/// whole would name a source) are skipped and counted, never matched; the
/// ordinary ones after them ban. Against a real journald in a private
/// mount namespace, fed through its native protocol (`logger --journald`,
/// which takes messages of any length).
#[test]
fn journal_messages_over_the_limit_are_skipped() {
    kernel_test!(JOURNALD);
    let ns = NetNs::create("hostile-jrnl").unwrap();
    let s = Setup::asterisk("");
    s.jails("  sshd:\n    ruleset: sshd\n    journal: [SYSLOG_IDENTIFIER=sshd-hostile]\n");
    let entry = |message: &str| format!("SYSLOG_IDENTIFIER=sshd-hostile\nMESSAGE={message}\n");
    let head = "Failed password for invalid user ";
    let tail = " from 198.51.100.70 port 4242 ssh2";
    let long = format!("{head}{}{tail}", "A".repeat(MAX_LINE + 1 - head.len() - tail.len()));
    assert_eq!(long.len(), MAX_LINE + 1);
    let dir = s.dir.path();
    std::fs::write(dir.join("long.entry"), entry(&long)).unwrap();
    std::fs::write(
        dir.join("short.entry"),
        entry("Failed password for root from 198.51.100.71 port 4242 ssh2"),
    )
    .unwrap();
    let script = format!(
        r#"set -e
mount -t tmpfs tmpfs /run/systemd
mount -t tmpfs tmpfs /run/log
/lib/systemd/systemd-journald >/dev/null 2>&1 &
J=$!
D=
trap 'x=$?; set +e; kill $D $J 2>/dev/null; exit $x' EXIT
for i in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
ip netns exec {ns} {exe} run --config {config} >/dev/null 2>>{dir}/daemon.log &
D=$!
for i in $(seq 200); do {exe} status sshd --json --config {config} | grep -q '"state": "reading"' && break; sleep 0.05; done
for i in 1 2 3; do logger --journald={dir}/long.entry; done
for i in 1 2 3; do logger --journald={dir}/short.entry; done
for i in $(seq 400); do {exe} status sshd --json --config {config} | grep -q '"ip": "198.51.100.71"' && break; sleep 0.05; done
{exe} status sshd --json --config {config}
kill -TERM $D; wait $D || true"#,
        ns = ns.name,
        exe = env!("CARGO_BIN_EXE_nftban"),
        config = s.config.display(),
        dir = dir.display(),
    );
    let o = run(std::process::Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]));
    assert!(o.status.success(), "script failed: {}\n{}", stderr(&o), stdout(&o));
    let out = stdout(&o);
    let st: JailStatus = parse("nftban status sshd --json", &out[out.find('{').expect("status JSON")..]);
    assert_eq!(banned_ips(&st), ["198.51.100.71"], "{st:?}");
    let src = &st.sources[0];
    assert_eq!((src.lines, src.truncated, src.matched), (6, 3, 3), "{src:?}");
}
