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
