//! What the docs say the daemon does, where a page had it wrong before:
//! checked against the real daemon in a private network namespace.

use crate::support::*;

/// docs/cli.md (`reload`) and docs/config.md: failure counts below
/// `maxretry` survive a reload (docs/cli.md once said they start afresh).
/// Two failures before the reload and one after ban the address at
/// maxretry 3; had the reload forgotten the two, the one would not.
#[test]
fn failure_counts_survive_a_reload() {
    kernel_test!();
    let ns = NetNs::create("docs-reload").unwrap();
    let s = Setup::asterisk("");
    let mut d = Daemon::start(&ns, &s);
    let pid = d.child.id();
    s.failures("198.51.100.77", 2);
    s.wait_jail("asterisk", "two failures counted", |st| st.currently_failed == 1);
    s.cli_ok(&["reload"]);
    // The reloaded process has started (its own start-up line), so the
    // next line is read by it, not by the process before the reload.
    wait_for("the reloaded daemon", || {
        (d.log().matches("nftban running").count() >= 2).then_some(())
    });
    wait_for("status after the reload", || s.try_jail_status("asterisk"));
    assert_eq!(s.jail_status("asterisk").currently_banned, 0);
    s.failures("198.51.100.77", 1);
    s.wait_jail("asterisk", "the third failure, after the reload, bans", |st| {
        st.currently_banned == 1
    });
    assert_eq!(set_addrs(&ns, "asterisk_v4"), ["198.51.100.77"]);
    assert_eq!(d.child.id(), pid, "reloaded in place");
    assert!(d.is_running());
    assert!(d.stop());
}

/// docs/config.md, docs/faq.md row 5 and the default config: `log.target`
/// an absolute file path writes the daemon's log to that file, without
/// colour codes.
#[test]
fn log_target_file_writes_the_log_to_the_file() {
    kernel_test!();
    let ns = NetNs::create("docs-logfile").unwrap();
    let s = Setup::asterisk("");
    let file = s.dir.path().join("nftban.log");
    s.top(&format!("log: {{target: {}, level: info}}", file.display()));
    let d = Daemon::start(&ns, &s);
    s.failures("198.51.100.78", 3);
    s.wait_jail("asterisk", "the ban", |st| st.currently_banned == 1);
    assert!(d.stop());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("control socket"), "{text}");
    assert!(text.contains("Ban 198.51.100.78 for 1h"), "{text}");
    assert!(!text.contains('\x1b'), "colour codes in the file:\n{text}");
}

/// `log.target: syslog`: RFC 3164 lines to /dev/log, here a real
/// journald's syslog socket (its `dev-log`), in a private mount namespace
/// where /dev is an overlay holding the /dev/log link (the host's /dev is
/// untouched); the journal files them under the identifier `nftban`.
#[test]
fn log_target_syslog_reaches_dev_log() {
    kernel_test!(JOURNALD);
    let ns = NetNs::create("docs-syslog").unwrap();
    let s = Setup::asterisk("");
    s.top("log: {target: syslog, level: info}");
    let work = s.dir.path().join("dev");
    std::fs::create_dir(&work).unwrap();
    let script = format!(
        r#"set -e
mount -t tmpfs tmpfs {w}
mkdir {w}/up {w}/work
mount -t overlay overlay -o lowerdir=/dev,upperdir={w}/up,workdir={w}/work /dev
ln -s /run/systemd/journal/dev-log /dev/log
mount -t tmpfs tmpfs /run/systemd
mount -t tmpfs tmpfs /run/log
/lib/systemd/systemd-journald >/dev/null 2>&1 &
J=$!
D=
trap 'x=$?; set +e; kill $D $J 2>/dev/null; exit $x' EXIT
for i in $(seq 100); do [ -S /run/systemd/journal/dev-log ] && break; sleep 0.05; done
ip netns exec {ns} {exe} run --config {config} >{w}/stderr 2>&1 &
D=$!
for i in $(seq 200); do [ -S {sock} ] && break; sleep 0.05; done
kill -TERM $D; wait $D || true
D=
journalctl --sync >/dev/null 2>&1 || true
journalctl -D /run/log/journal -t nftban -o cat --no-pager
echo '--- stderr'; cat {w}/stderr"#,
        w = work.display(),
        ns = ns.name,
        exe = env!("CARGO_BIN_EXE_nftban"),
        config = s.config.display(),
        sock = s.socket().display(),
    );
    let o = run(std::process::Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]));
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    let (journal, daemon_stderr) = out.split_once("--- stderr").unwrap();
    assert!(
        journal.contains("control socket"),
        "the start-up lines are not in the journal:\n{out}"
    );
    assert!(journal.contains("stopped; bans stay in the kernel"), "{out}");
    assert!(!journal.contains('\x1b'), "colour codes in syslog:\n{journal}");
    assert!(
        !daemon_stderr.contains("control socket"),
        "logged to stderr too:\n{daemon_stderr}"
    );
}
