//! Log targets against real receivers: a real systemd-journald started in a
//! private mount namespace (so the host's /run is untouched).

use crate::support::*;

/// Run `body`, a `sh` script, beside a real systemd-journald of its own: in
/// a private mount namespace with fresh /run/systemd and /run/log. `$J` is
/// the journal's pid; the script may set `$D` to a daemon's pid; both are
/// killed when the script ends, whatever its exit.
fn with_private_journal(body: &str) -> std::process::Output {
    let script = format!(
        r#"set -e
mount -t tmpfs tmpfs /run/systemd
mount -t tmpfs tmpfs /run/log
/lib/systemd/systemd-journald >/dev/null 2>&1 &
J=$!
D=
trap 'x=$?; set +e; kill $D $J 2>/dev/null; exit $x' EXIT
for i in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
{body}"#
    );
    let o = run(std::process::Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]));
    assert!(o.status.success(), "script failed: {}\n{}", stderr(&o), stdout(&o));
    o
}

#[test]
fn journald_target_reaches_a_real_journal() {
    kernel_test!(JOURNALD);
    let ns = NetNs::create("journal").unwrap();
    let s = Setup::asterisk("");
    s.top("log: {target: journald, level: info}");
    let o = with_private_journal(&format!(
        r#"ip netns exec {ns} {exe} run --config {config} >/dev/null 2>&1 &
D=$!
for i in $(seq 200); do [ -S {sock} ] && break; sleep 0.05; done
kill -TERM $D; wait $D || true
journalctl --sync >/dev/null 2>&1 || true
journalctl -D /run/log/journal -t nftban -o cat --no-pager"#,
        ns = ns.name,
        exe = env!("CARGO_BIN_EXE_nftban"),
        config = s.config.display(),
        sock = s.socket().display(),
    ));
    let out = stdout(&o);
    assert!(
        out.contains("control socket"),
        "the daemon's start-up lines are not in the journal:\n{out}\n{}",
        stderr(&o)
    );
    assert!(out.contains("stopped; bans stay in the kernel"), "{out}");
}

/// The journal source, against a real journald: failures logged under a
/// syslog identifier are matched and banned; entries written while nftban
/// was stopped are read after it starts (its cursor was saved), each once.
#[test]
fn journal_source_bans_and_resumes_after_its_cursor() {
    kernel_test!(JOURNALD);
    let ns = NetNs::create("jsrc").unwrap();
    let s = Setup::asterisk("");
    s.jails("  sshd:\n    ruleset: sshd\n    journal: [SYSLOG_IDENTIFIER=sshd-nftban-test]\n");
    let o = with_private_journal(&format!(
        r#"fail() {{ systemd-cat -t sshd-nftban-test echo "Failed password for root from $1 port 4242 ssh2"; }}
start() {{
  ip netns exec {ns} {exe} run --config {config} >/dev/null 2>>{dir}/daemon.log &
  D=$!
  for i in $(seq 200); do {exe} status --config {config} >/dev/null 2>&1 && break; sleep 0.05; done
}}
wait_for() {{
  for i in $(seq 200); do {exe} status sshd --json --config {config} | grep -q "$1" && return 0; sleep 0.05; done
  echo "timed out waiting for $1"; {exe} status sshd --config {config}; cat {dir}/daemon.log; return 1
}}
start
fail 198.51.100.1; fail 198.51.100.1; fail 198.51.100.1
wait_for '"ip": "198.51.100.1"'
kill -TERM $D; wait $D || true
fail 198.51.100.2; fail 198.51.100.2; fail 198.51.100.2
start
wait_for '"ip": "198.51.100.2"'
{exe} status sshd --json --config {config}
kill -TERM $D; wait $D || true"#,
        ns = ns.name,
        exe = env!("CARGO_BIN_EXE_nftban"),
        config = s.config.display(),
        dir = s.dir.path().display(),
    ));
    let out = stdout(&o);
    let json_start = out.find('{').expect("status JSON");
    let st: JailStatus = parse("nftban status sshd --json", &out[json_start..]);
    assert_eq!(st.journal, ["SYSLOG_IDENTIFIER=sshd-nftban-test"]);
    assert_eq!(st.sources[0].path, "journal:SYSLOG_IDENTIFIER=sshd-nftban-test");
    assert_eq!(
        st.total_failed, 3,
        "the second run reads exactly the 3 entries written while stopped"
    );
    let ips = banned_ips(&st);
    assert!(
        ips.contains(&"198.51.100.1") && ips.contains(&"198.51.100.2"),
        "{ips:?}"
    );
}

/// The default `stderr` target under systemd: when stderr is the stream
/// `JOURNAL_STREAM` names, the daemon speaks the journal's native protocol
/// (its lines reach the journal with their priority, none go to stderr);
/// when `JOURNAL_STREAM` names another stream (a child whose stderr was
/// redirected), stderr is used, without colour codes (not a terminal).
#[test]
fn stderr_under_systemd_is_the_journal_and_never_coloured() {
    kernel_test!(JOURNALD);
    let ns = NetNs::create("jstream").unwrap();
    let s = Setup::asterisk("");
    let err = s.dir.path().join("stderr.log");
    let other = s.dir.path().join("other.log");
    let o = with_private_journal(&format!(
        r#"run_daemon() {{
  ip netns exec {ns} env JOURNAL_STREAM="$1" {exe} run --config {config} >/dev/null 2>>{err} &
  D=$!
  for i in $(seq 200); do [ -S {sock} ] && break; sleep 0.05; done
  kill -TERM $D; wait $D || true
  D=
}}
: > {err}
: > {other}
run_daemon "$(stat -c '%d:%i' {err})"
echo "stderr lines under the journal: $(wc -l < {err})"
run_daemon "$(stat -c '%d:%i' {other})"
journalctl --sync >/dev/null 2>&1 || true
journalctl -D /run/log/journal -t nftban -o verbose --no-pager | grep -E '^ *(PRIORITY|MESSAGE)=' || true"#,
        ns = ns.name,
        exe = env!("CARGO_BIN_EXE_nftban"),
        config = s.config.display(),
        sock = s.socket().display(),
        err = err.display(),
        other = other.display(),
    ));
    let out = stdout(&o);
    assert!(
        out.contains("stderr lines under the journal: 0"),
        "{out}\n{}",
        stderr(&o)
    );
    assert!(out.contains("MESSAGE=control socket"), "{out}");
    // tracing-journald writes INFO as notice (5).
    assert!(out.contains("PRIORITY=5"), "info lines keep a priority: {out}");
    // The second daemon wrote to its stderr, plainly.
    let log = std::fs::read_to_string(&err).unwrap();
    assert!(log.contains("control socket"), "{log}");
    assert!(!log.contains('\x1b'), "colour codes in a log file: {log:?}");
}
