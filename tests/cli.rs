//! Commands that need no daemon and no root.

use crate::support::*;
use std::process::Stdio;

const FAQ_LINE: &str = "[2015-01-28 05:40:16] NOTICE[-1] Ext. 9015448702956577: Incoming SIP connection from unknown peer failed for 31.3.244.234 - Unknown connection from peer";
const FAQ_RULE: &str =
    "NOTICE.* .*: Incoming SIP connection from unknown peer failed for <HOST> - Unknown connection from peer";

fn faq_log(dir: &std::path::Path) -> std::path::PathBuf {
    let log = dir.join("messages");
    std::fs::write(&log, format!("{FAQ_LINE}\n[2015-01-28 05:40:17] NOTICE[2116] chan_sip.c: Registration from '<sip:100@10.0.0.2>' succeeded\n{FAQ_LINE}\n")).unwrap();
    log
}

/// docs/faq.md row 4: verify a rule with `nftban test <log> <regex>`.
#[test]
fn test_with_the_faq_regex() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(nftban().arg("test").arg(faq_log(dir.path())).arg(FAQ_RULE));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Lines: 3 lines, 0 ignored, 2 matched, 1 missed"), "{out}");
    assert!(out.contains("31.3.244.234: 2"), "{out}");
}

#[test]
fn test_json_with_a_shipped_ruleset_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::read(faq_log(dir.path())).unwrap();
    let mut child = nftban()
        .args(["test", "-", "asterisk", "--json", "--print-missed"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&log).unwrap();
    let o = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (
            v["lines"].as_u64(),
            v["matched"].as_u64(),
            v["ignored"].as_u64(),
            v["missed"].as_u64()
        ),
        (Some(3), Some(2), Some(0), Some(1))
    );
    assert_eq!(v["hosts"]["31.3.244.234"], 2);
    assert_eq!(v["missed_lines"].as_array().unwrap().len(), 1);
}

#[test]
fn test_with_a_ruleset_file_and_nothing_found_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let rs = dir.path().join("mine.yaml");
    std::fs::write(&rs, "name: mine\nfailregex: ['nothing like this from <HOST>$']\n").unwrap();
    let o = run(nftban().arg("test").arg(faq_log(dir.path())).arg(&rs));
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("0 matched"));
}

#[test]
fn test_with_a_bad_rule_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(nftban().arg("test").arg(faq_log(dir.path())).arg("failed for <HOST> ("));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("failregex[0]"), "{}", stderr(&o));
}

#[test]
fn check_accepts_a_good_config_and_says_where_logs_go() {
    let s = Setup::asterisk("");
    let o = s.cli(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("logs go to: stderr (under systemd: the journal)"));
    assert!(stdout(&o).contains("jail asterisk: ruleset asterisk"));
}

/// A typo is an error that names the file, line, column and key; `run`
/// refuses to start with the same message.
#[test]
fn a_bad_config_names_file_line_and_key() {
    let s = Setup::asterisk("    maxretri: 3\n");
    for cmd in ["check", "run"] {
        let o = s.cli(&[cmd]);
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "{}:8:5: jails.asterisk: unknown field `maxretri`",
                s.config.display()
            )),
            "{cmd}: {err}"
        );
    }
}

#[test]
fn ruleset_prints_the_nft_ruleset() {
    let s = Setup::asterisk("");
    let o = s.cli(&["ruleset"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.starts_with("table inet nftban {"), "{out}");
    for want in [
        "set asterisk_v4 {",
        "set manual_v6 {",
        "ip saddr @asterisk_v4 counter packets 0 bytes 0 drop",
        "ip6 saddr @manual_v6 counter packets 0 bytes 0 drop",
    ] {
        assert!(out.contains(want), "missing `{want}` in:\n{out}");
    }
}

#[test]
fn client_without_daemon_explains() {
    let s = Setup::asterisk("");
    let o = s.cli(&["status"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is `nftban run` running?"), "{}", stderr(&o));
    let o = s.cli(&["ban", "not-an-ip"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("`not-an-ip`"), "{}", stderr(&o));
}

#[test]
fn help_lists_the_commands() {
    let o = run(nftban().arg("--help"));
    let out = stdout(&o);
    for cmd in [
        "run", "status", "ban", "unban", "events", "test", "check", "ruleset", "demo",
    ] {
        assert!(out.contains(&format!("  {cmd} ")), "--help lacks {cmd}:\n{out}");
    }
}

/// `nftban ruleset` prints a chain per configured hook (needs no root; the
/// firewall tests check the same text against `nft list table`).
#[test]
fn ruleset_prints_a_chain_per_configured_hook() {
    let s = Setup::asterisk("");
    let o = s.cli(&["ruleset"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("\tchain input {\n\t\ttype filter hook input priority filter - 10;"),
        "{text}"
    );
    assert!(
        !text.contains("chain forward") && !text.contains("chain prerouting"),
        "{text}"
    );

    s.top("nftables: {action: reject, hooks: [forward, prerouting]}");
    let text = stdout(&s.cli(&["ruleset"]));
    assert!(!text.contains("chain input"), "{text}");
    let pre = text
        .find("\tchain prerouting {\n\t\ttype filter hook prerouting priority raw;")
        .unwrap();
    let fwd = text
        .find("\tchain forward {\n\t\ttype filter hook forward priority filter - 10;")
        .unwrap();
    assert!(pre < fwd, "{text}");
    assert_eq!(
        text.matches("ip saddr @asterisk_v4 counter packets 0 bytes 0 reject")
            .count(),
        2
    );

    s.top("nftables: {hooks: [forward, forward]}");
    let o = s.cli(&["ruleset"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("nftables.hooks: `forward` is listed twice"),
        "{}",
        stderr(&o)
    );
}

/// `check` follows a jail to its ruleset file and names the file, line and
/// column of a bad rule, and of an example that does not hold.
#[test]
fn check_names_the_ruleset_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let rs = dir.path().join("mine.yaml");
    let config = dir.path().join("nftban.yaml");
    std::fs::write(
        &config,
        "jails:\n  mine:\n    ruleset: mine.yaml\n    files: [/var/log/mine.log]\n",
    )
    .unwrap();
    std::fs::write(
        &rs,
        "name: mine\nfailregex:\n  - 'ok from <HOST>$'\n  - 'bad (from <HOST>$'\n",
    )
    .unwrap();
    let o = run(nftban().arg("check").arg("--config").arg(&config));
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains(&format!("{}:4:3: failregex[1]: ", rs.display())), "{err}");

    std::fs::write(
        &rs,
        "name: mine\nfailregex: ['ok from <HOST>$']\nexamples:\n  - line: ok from 192.0.2.1\n    host: 192.0.2.1\n  - line: ok from 192.0.2.2 x\n    host: 192.0.2.2\n",
    )
    .unwrap();
    let o = run(nftban().arg("check").arg("--config").arg(&config));
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{}:6:3: examples[1]: expected 192.0.2.2, got no match",
            rs.display()
        )),
        "{err}"
    );
}

/// `test` reads a fail2ban filter and gzip'd logs.
#[test]
fn test_reads_a_fail2ban_filter_and_gzip() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fail2ban");
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("dropbear.log.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    use std::io::Write;
    enc.write_all(&std::fs::read(data.join("dropbear.log")).unwrap())
        .unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let o = run(nftban()
        .arg("test")
        .arg(&gz)
        .arg(data.join("dropbear.conf"))
        .arg("--json"));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["lines"].as_u64(), v["matched"].as_u64()), (Some(9), Some(6)));
    assert_eq!(
        v["date_formats"]["syslog Mon DD HH:MM:SS"], 6,
        "the matched lines' dates"
    );
}

/// A log over the size from which `test` shows progress (32 MiB), in a
/// temporary directory: 300,000 lines, one in ten the line of docs/faq.md row 4.
fn big_log(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let log = dir.join("big.log");
    let mut chunk = String::new();
    for i in 0..1000 {
        if i % 10 == 0 {
            chunk.push_str(FAQ_LINE);
        } else {
            chunk.push_str(&format!(
                "[2015-01-28 05:40:16] VERBOSE[2116] pbx.c: Executing [{i}@default:1] Dial(\"SIP/100-0000{i}\", \"SIP/200,30\") in new stack"
            ));
        }
        chunk.push('\n');
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
    for _ in 0..300 {
        f.write_all(chunk.as_bytes()).unwrap();
    }
    f.flush().unwrap();
    assert!(std::fs::metadata(&log).unwrap().len() >= 32 << 20);
    log
}

/// The bar as `test` draws it: `[###   ]  12.3% 45678 lines`.
fn progress_bar() -> regex::bytes::Regex {
    regex::bytes::Regex::new(r"\[[# ]{30}\] +[0-9]+\.[0-9]% [0-9]+ lines").unwrap()
}

fn has_progress_bar(text: &[u8]) -> bool {
    progress_bar().is_match(text)
}

/// `nftban test LOG asterisk` with stderr on a terminal of type `term`,
/// stdout piped: its output and all the terminal showed.
fn test_on_a_terminal(log: &std::path::Path, term: &str, json: bool) -> (std::process::Output, Vec<u8>) {
    let mut cmd = nftban();
    cmd.arg("test").arg(log).arg("asterisk").env("TERM", term);
    if json {
        cmd.arg("--json");
    }
    Pty::open().run_on_stderr(cmd.stdout(Stdio::piped()))
}

/// `nftban test` on a big file shows a progress bar on the terminal (its
/// stderr), redrawn in place and wiped at the end, and only there: the
/// report on stdout has none.
#[test]
fn test_shows_progress_on_a_terminal_for_big_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = big_log(dir.path());
    let (o, term) = test_on_a_terminal(&log, "xterm", false);
    assert!(o.status.success());
    let shown = String::from_utf8_lossy(&term);
    let last = progress_bar().find_iter(&term).last().expect(&shown);
    assert!(
        term[..last.start()].contains(&b'\r'),
        "redrawn from the line's start: {shown:?}"
    );
    assert!(
        term[last.end()..].windows(2).any(|w| w == b"\r\x1b"),
        "wiped at the end: {shown:?}"
    );
    let out = stdout(&o);
    assert!(
        out.contains("Lines: 300000 lines, 0 ignored, 30000 matched, 270000 missed"),
        "{out}"
    );
    assert!(!has_progress_bar(&o.stdout) && !out.contains('\r'), "{out}");
}

/// Without a terminal there is no bar; with `--json` (stderr on a terminal)
/// there is none either and stdout is the JSON report alone; nor on a
/// terminal that cannot move the cursor (`TERM=dumb`).
#[test]
fn test_shows_no_progress_without_a_terminal_or_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let log = big_log(dir.path());
    let o = run(nftban().arg("test").arg(&log).arg("asterisk"));
    assert!(o.status.success());
    assert!(!has_progress_bar(&o.stderr) && o.stderr.is_empty(), "{}", stderr(&o));
    assert!(stdout(&o).contains("30000 matched"));
    let (o, term) = test_on_a_terminal(&log, "xterm", true);
    assert!(o.status.success());
    assert!(!has_progress_bar(&term), "{}", String::from_utf8_lossy(&term));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is the JSON report alone");
    assert_eq!(
        (v["lines"].as_u64(), v["matched"].as_u64()),
        (Some(300000), Some(30000))
    );
    let (o, term) = test_on_a_terminal(&log, "dumb", false);
    assert!(o.status.success() && stdout(&o).contains("30000 matched"));
    assert!(term.is_empty(), "{}", String::from_utf8_lossy(&term));
}

/// The lines of `nftban: warning: ...` on stderr, but those about the
/// test's database and socket: outside the folders the shipped unit lets
/// the daemon write, they are always warned about (see the next test).
fn warnings(o: &std::process::Output) -> Vec<String> {
    for w in stderr(o).lines().filter(|l| l.starts_with("nftban: warning: ")) {
        assert!(!w.contains("  "), "a run of spaces from a wrapped literal: {w}");
    }
    stderr(o)
        .lines()
        .filter_map(|l| l.strip_prefix("nftban: warning: "))
        .filter(|w| !w.starts_with("database: ") && !w.starts_with("socket: "))
        .map(str::to_string)
        .collect()
}

/// A good config outside /tmp: no warning but where the test keeps its
/// database and socket, and every section it accepted is summarised.
#[test]
fn check_summarises_every_section_and_warns_of_nothing_when_all_is_well() {
    let Some(s) = Setup::asterisk_outside_tmp("") else {
        return;
    };
    s.top("recidive: {findtime: 1d, maxretry: 3, bantime: 1w}");
    s.top("metrics: {listen: \"127.0.0.1:9477\"}");
    s.top("sip: {}");
    s.top("events: {file: /var/log/nftban/events.jsonl}");
    s.top("nftables: {prefix_sets: {ipv4: [24, 16], ipv6: []}}");
    std::fs::write(
        &s.config,
        std::fs::read_to_string(&s.config).unwrap()
            + "  sshd:\n    ruleset: sshd\n    journal: [_SYSTEMD_UNIT=ssh.service, _COMM=sshd]\n    usedns: yes\n",
    )
    .unwrap();
    let o = s.cli(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // On a host without journald (a container, this test's machine
    // perhaps), the journal jail is warned of: it would read nothing.
    let journald = std::path::Path::new("/run/systemd/journal/socket").exists();
    let journal_warning = "jails.sshd.journal: journal:_SYSTEMD_UNIT=ssh.service,_COMM=sshd: no systemd journal on this host (/run/systemd/journal/socket is missing): no entry will come; read the service's log file instead";
    let want: Vec<String> = match journald {
        true => Vec::new(),
        false => vec![journal_warning.to_string()],
    };
    assert_eq!(warnings(&o), want, "{}", stderr(&o));
    // The test's database and socket are not where the unit lets the
    // daemon write (/var/lib/nftban, /run/nftban): warned about, by key.
    let keys: Vec<String> = stderr(&o)
        .lines()
        .map(|l| l.split(": ").take(4).collect::<Vec<_>>().join(": "))
        .filter(|l| !l.starts_with("nftban: warning: jails.sshd.journal"))
        .collect();
    let dir = s.dir.path().display();
    assert_eq!(
        keys,
        [
            format!("nftban: warning: database: {dir}/nftban.db"),
            format!("nftban: warning: socket: {dir}/nftban.sock")
        ]
    );
    assert!(stderr(&o).contains("ProtectSystem=strict"), "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        &format!("{}: OK\n", s.config.display()),
        "\nlogs go to: stderr (under systemd: the journal)\n",
        "\nnftables: table inet nftban, drop banned sources on hook(s) input\n",
        "\nprefix sets: IPv4 /24 /16, IPv6 none (each a hash set per jail; other lengths in its interval set)\n",
        "\nmetrics: http://127.0.0.1:9477/metrics (Prometheus)\n",
        "\nrecidive: an address banned 3 times within 1d (in any jail) is banned in jail recidive for 7d\n",
        "\njail asterisk: ruleset asterisk, 1 file(s), ban after 3 failures within 10m for 1h\n",
        "\njail sshd: ruleset sshd, 0 file(s), 2 journal match(es), ban after 3 failures within 10m for 1h; host names in <HOST> resolved (usedns: yes)\n  journal: _SYSTEMD_UNIT=ssh.service _COMM=sshd\n",
        "\nsip kernel meter: UDP 5060",
        "\nban events: JSON lines to the file /var/log/nftban/events.jsonl\n",
    ] {
        assert!(out.contains(want), "missing `{want}` in:\n{out}");
    }
    let count = if journald { 2 } else { 3 };
    assert!(
        out.ends_with(&format!("warnings: {count} (on stderr; the daemon starts anyway)\n")),
        "{out}"
    );
}

/// A log file that does not exist, a glob with no match, a log under
/// /tmp (hidden by the unit's PrivateTmp) and a FIFO: each a warning that
/// names the jail's key and the path; the exit code stays 0, as the unit's
/// ExecStartPre must let the daemon start (it waits for the files).
#[test]
fn check_warns_about_log_files_the_daemon_would_not_read_and_exits_0() {
    let Some(s) = Setup::asterisk_outside_tmp("") else {
        return;
    };
    let dir = s.dir.path();
    let missing = dir.join("nothing-here.log");
    let pattern = dir.join("kam-*.log");
    let fifo = dir.join("fifo.log");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let tmp = tempfile::tempdir().unwrap();
    let in_tmp = tmp.path().join("messages");
    std::fs::write(&in_tmp, "").unwrap();
    s.jails(&format!(
        "{}{}",
        asterisk_jail("asterisk", &[&s.log, &missing, &pattern]),
        asterisk_jail("pbx2", &[&in_tmp, &fifo]),
    ));
    let o = s.cli(&["check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let w = warnings(&o);
    assert_eq!(w.len(), 4, "{w:#?}");
    let starts = |i: usize, key: &str, path: &std::path::Path, says: &str| {
        let head = format!("{key}: {}: ", path.display());
        assert!(w[i].starts_with(&head), "warning {i} should start `{head}`: {}", w[i]);
        assert!(w[i].contains(says), "warning {i} should say `{says}`: {}", w[i]);
    };
    starts(
        0,
        "jails.asterisk.files",
        &missing,
        "does not exist: the daemon starts anyway",
    );
    starts(1, "jails.asterisk.files", &pattern, "no file matches it yet");
    starts(2, "jails.pbx2.files", &in_tmp, "PrivateTmp=yes");
    starts(3, "jails.pbx2.files", &fifo, "is a FIFO, not a regular file");
    assert!(
        stdout(&o).ends_with("warnings: 6 (on stderr; the daemon starts anyway)\n"),
        "{}",
        stdout(&o)
    );
    // Once the file exists and the pattern matches, those two are gone.
    std::fs::write(&missing, "").unwrap();
    std::fs::write(dir.join("kam-1.log"), "").unwrap();
    let w = warnings(&s.cli(&["check"]));
    assert_eq!(w.len(), 2, "{w:#?}");
}

/// `log.target: syslog` with no syslog socket at /dev/log: the daemon
/// would exit at start; check says so, naming the key and the path.
#[test]
fn check_warns_about_syslog_without_dev_log() {
    let Some(s) = Setup::asterisk_outside_tmp("") else {
        return;
    };
    s.top("log: {target: syslog}");
    let o = s.cli(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let reachable = std::os::unix::net::UnixDatagram::unbound()
        .and_then(|u| u.connect("/dev/log"))
        .is_ok();
    let w = warnings(&o);
    if reachable {
        assert_eq!(w, Vec::<String>::new(), "/dev/log is reachable here");
    } else {
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(
            w[0].starts_with("log.target: /dev/log: log.target syslog: cannot reach /dev/log ("),
            "{}",
            w[0]
        );
        assert!(w[0].contains("the daemon would exit at start"), "{}", w[0]);
    }
}

/// A metrics address the shipped unit's sandbox refuses (a privileged
/// port: no CAP_NET_BIND_SERVICE) and one that is not this host's.
#[test]
fn check_warns_about_metrics_addresses_the_daemon_cannot_listen_on() {
    let Some(s) = Setup::asterisk_outside_tmp("") else {
        return;
    };
    s.top("metrics: {listen: \"127.0.0.1:80\"}");
    let o = s.cli(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let w = warnings(&o);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].starts_with("metrics.listen: 127.0.0.1:80: port 80 is privileged"),
        "{}",
        w[0]
    );
    assert!(w[0].contains("no CAP_NET_BIND_SERVICE"), "{}", w[0]);
    // 192.0.2.1 (TEST-NET-1) is no address of this host.
    s.top("metrics: {listen: \"192.0.2.1:9477\"}");
    let w = warnings(&s.cli(&["check"]));
    assert_eq!(
        w,
        ["metrics.listen: 192.0.2.1:9477: cannot listen on it: 192.0.2.1 is not an address of this host: the daemon would exit at start"]
    );
}

/// `check --json`: the warnings with their key and path, and the summary.
#[test]
fn check_json_has_warnings_and_summary() {
    let Some(s) = Setup::asterisk_outside_tmp("") else {
        return;
    };
    let missing = s.dir.path().join("gone.log");
    s.jails(&asterisk_jail("asterisk", &[&missing]));
    let o = s.cli(&["check", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "warnings are in the JSON, not on stderr");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["config"], s.config.display().to_string());
    let w = v["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 3, "the database, the socket, the log file: {w:?}");
    assert_eq!(w[0]["key"], "database");
    assert_eq!(w[2]["key"], "jails.asterisk.files");
    assert_eq!(w[2]["path"], missing.display().to_string());
    assert!(w[2]["message"].as_str().unwrap().starts_with("does not exist"), "{w:?}");
    let summary: Vec<&str> = v["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        summary.iter().any(|l| l.starts_with("jail asterisk: ruleset asterisk")),
        "{summary:?}"
    );
}

/// `nftban test LOG RULE --print-matched | head -1`: the reader goes away
/// after one line; the command ends quietly with 0, never a panic.
#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("messages");
    std::fs::write(&log, format!("{FAQ_LINE}\n").repeat(200_000)).unwrap();
    let mut child = nftban()
        .arg("test")
        .arg(&log)
        .arg(FAQ_RULE)
        .arg("--print-matched")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe: the rest of the 200,000 lines
    // (far past any pipe buffer) meet a reader that is gone.
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    drop(out);
    let o = child.wait_with_output().unwrap();
    assert!(!first.is_empty());
    assert!(o.status.success(), "{:?}: {}", o.status, stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}
