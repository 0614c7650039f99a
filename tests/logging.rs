//! Log targets against real receivers: a real systemd-journald started in a
//! private mount namespace (so the host's /run is untouched).

use crate::support::*;

#[test]
fn journald_target_reaches_a_real_journal() {
    if !kernel_tests_possible("journald_target_reaches_a_real_journal") {
        return;
    }
    if !std::path::Path::new("/lib/systemd/systemd-journald").exists() {
        eprintln!("skipped journald_target_reaches_a_real_journal: systemd-journald is not installed");
        return;
    }
    let ns = NetNs::create("journal").unwrap();
    let s = Setup::asterisk("");
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, format!("log: {{target: journald, level: info}}\n{text}")).unwrap();
    let script = format!(
        r#"set -e
mount -t tmpfs tmpfs /run/systemd
mount -t tmpfs tmpfs /run/log
/lib/systemd/systemd-journald >/dev/null 2>&1 &
J=$!
for i in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
ip netns exec {ns} {exe} run --config {config} &
D=$!
for i in $(seq 200); do [ -S {sock} ] && break; sleep 0.05; done
kill -TERM $D; wait $D || true
journalctl --sync >/dev/null 2>&1 || true
journalctl -D /run/log/journal -t nftban -o cat --no-pager
kill $J"#,
        ns = ns.name,
        exe = env!("CARGO_BIN_EXE_nftban"),
        config = s.config.display(),
        sock = s.dir.path().join("nftban.sock").display(),
    );
    let o = run(std::process::Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]));
    let out = stdout(&o);
    assert!(o.status.success(), "script failed: {}\n{out}", stderr(&o));
    assert!(
        out.contains("control socket"),
        "the daemon's start-up lines are not in the journal:\n{out}\n{}",
        stderr(&o)
    );
    assert!(out.contains("stopped; bans stay in the kernel"), "{out}");
}
