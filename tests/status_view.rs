//! `status` for people (a table on a terminal, the plain form on a pipe),
//! `--watch` refreshing on a terminal and on a pipe, and `--json` of the
//! commands scripts use (ban, unban, reload), against a real daemon.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use crate::support::*;
use nftban::control::protocol::{BanResult, UnbanResult};

const CLEAR: &str = "\x1b[H\x1b[2J";

/// `nftban ARGS --config CONFIG`, not yet started.
fn command(s: &Setup, args: &[&str]) -> Command {
    let mut cmd = nftban();
    cmd.args(args).arg("--config").arg(&s.config).stdin(Stdio::null());
    cmd
}

/// A daemon with a ban by hand (203.0.113.5) and two failures of
/// 198.51.100.7 in `asterisk` (maxretry 3: no ban yet).
fn busy_daemon(tag: &str) -> (NetNs, Setup, Daemon) {
    let ns = NetNs::create(tag).unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    s.cli_ok(&["ban", "203.0.113.5"]);
    s.failures("198.51.100.7", 2);
    s.wait_jail("asterisk", "two failures counted", |j| j.currently_failed == 1);
    (ns, s, d)
}

#[test]
fn status_is_a_table_on_a_terminal_and_the_plain_form_on_a_pipe() {
    kernel_test!();
    let (_ns, s, _d) = busy_daemon("table");
    let mut on_tty = Pty::open().spawn_on_stdout(&mut command(&s, &["status"]));
    let text = on_tty.wait_until("the table", |t| {
        t.contains("TOP OFFENDERS") && t.contains("198.51.100.7")
    });
    assert!(on_tty.child.wait().unwrap().success());
    assert!(!text.contains('\x1b'), "no escape codes without --watch: {text:?}");
    for line in text.lines() {
        assert!(
            line.trim_end_matches('\r').chars().count() <= 80,
            "wider than 80: `{line}`"
        );
    }
    let row = |name: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"));
        line.split_whitespace().map(str::to_string).collect()
    };
    // JAIL SOURCES FAILED BANNED BANS DROPPED
    assert_eq!(row("asterisk")[1..], ["ok", "1", "0", "0", "0"], "{text}");
    assert_eq!(row("manual")[1..], ["-", "0", "1", "1", "0"], "{text}");
    let offender = |ip: &str| {
        text.lines()
            .find(|l| l.starts_with(ip))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
    };
    assert_eq!(offender("203.0.113.5").unwrap()[1..], ["1", "0"], "{text}");
    assert_eq!(offender("198.51.100.7").unwrap()[1..], ["0", "2"], "{text}");

    let piped = s.cli_ok(&["status"]);
    let plain = stdout(&piped);
    assert!(plain.starts_with("Status\n|- Number of jail:      2\n"), "{plain}");
    assert!(
        plain.ends_with("Most banned:   203.0.113.5 (1)\nMost failed:   198.51.100.7 (2)\n"),
        "{plain}"
    );
}

/// `--watch` on a terminal: cleared and drawn again in place, a change
/// shows at a later refresh, until Ctrl-C.
#[test]
fn status_watch_refreshes_in_place_on_a_terminal_until_interrupted() {
    kernel_test!();
    let (_ns, s, _d) = busy_daemon("watch");
    let mut watch =
        Pty::open().spawn_on_stdout(&mut command(&s, &["status", "asterisk", "--watch", "--interval", "1s"]));
    watch.wait_until("a first refresh", |t| t.contains("Currently banned: 0"));
    s.failures("198.51.100.7", 1);
    let text = watch.wait_until("the ban at a later refresh", |t| {
        t.rsplit(CLEAR)
            .next()
            .is_some_and(|last| last.contains("Currently banned: 1"))
    });
    let blocks: Vec<&str> = text.split(CLEAR).skip(1).collect();
    assert!(blocks.len() >= 2, "{text:?}");
    for block in &blocks {
        assert!(block.contains("nftban status asterisk (Ctrl-C to stop)"), "{block:?}");
    }
    assert!(blocks.first().unwrap().contains("Currently banned: 0"), "{text:?}");
    assert!(text.starts_with(CLEAR), "each refresh clears first: {text:?}");
    let status = watch.interrupt();
    assert_eq!(
        status.signal(),
        Some(libc::SIGINT),
        "runs until interrupted: {status:?}"
    );
}

/// Read `child`'s stdout until `done` holds; then kill it. Waits for
/// output, measures nothing.
fn read_until(mut child: std::process::Child, what: &str, done: impl Fn(&str) -> bool) -> String {
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(&String::from_utf8_lossy(&seen)) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            String::from_utf8_lossy(&seen)
        );
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.extend_from_slice(&chunk);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    String::from_utf8_lossy(&seen).into_owned()
}

/// `--watch` on a pipe: one block per refresh, no escape codes; with
/// `--json`, one JSON document per line.
#[test]
fn status_watch_on_a_pipe_prints_one_block_per_refresh() {
    kernel_test!();
    let (_ns, s, _d) = busy_daemon("watchpipe");
    let child = command(&s, &["status", "asterisk", "--watch", "--interval", "1s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let text = read_until(child, "three blocks", |t| {
        t.matches("Status for the jail: asterisk").count() >= 3
    });
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(text.starts_with("Status for the jail: asterisk\n"), "{text}");
    assert!(text.contains("Sources\n   `- "), "{text}");
    assert!(
        text.contains("\n\nStatus for the jail: asterisk\n"),
        "a blank line between blocks: {text}"
    );

    let child = command(&s, &["status", "--watch", "--json", "--interval", "1s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let text = read_until(child, "two JSON lines", |t| t.matches('\n').count() >= 2);
    for line in text.lines().take(2) {
        let st: Status = parse("status --watch --json", line);
        assert_eq!(st.most_banned[0].ip, "203.0.113.5");
    }
}

/// `ban`, `unban` and `reload` with `--json`: one line of the daemon's
/// answer per request; exit codes as without it.
#[test]
fn ban_unban_and_reload_speak_json() {
    kernel_test!();
    let ns = NetNs::create("json").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    let o = s.cli_ok(&["ban", "203.0.113.5", "198.51.100.0/24", "--json"]);
    let lines: Vec<&str> = std::str::from_utf8(&o.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let r: BanResult = parse("ban --json", lines[0]);
    assert_eq!(r.jail, "manual");
    let mut ips: Vec<&str> = r.banned.iter().map(|b| b.ip.as_str()).collect();
    ips.sort();
    assert_eq!(ips, ["198.51.100.0/24", "203.0.113.5"]);
    // Nothing new: exit 1, still one JSON line.
    let o = s.cli(&["ban", "203.0.113.5", "--bantime", "10m", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let r: BanResult = parse("ban --json", stdout(&o).trim_end());
    assert_eq!(r.already_covered.len(), 1, "{r:?}");
    let o = s.cli_ok(&["unban", "203.0.113.5", "--json"]);
    let r: UnbanResult = parse("unban --json", stdout(&o).trim_end());
    assert_eq!(r.unbanned, [("203.0.113.5".to_string(), "manual".to_string())]);
    let o = s.cli_ok(&["reload", "--json"]);
    let v: serde_json::Value = parse("reload --json", stdout(&o).trim_end());
    assert!(v["message"].is_string(), "{v}");
    // The answer comes before the restart in place: the restarted daemon
    // answers too.
    wait_for("the daemon to restart", || {
        (d.log().matches("nftban running").count() >= 2).then_some(())
    });
    wait_for("the restarted daemon to answer", || s.try_status());
}
