//! Self-healing against the real kernel, in a private namespace: when
//! another process flushes the ruleset, deletes nftban's table or flushes
//! one of its sets, the daemon puts everything back from its own record and
//! logs who did it; its own changes never set off healing.

use crate::support::*;

const HEALED: &str = "was changed by another tool";

/// Elements of a set, or `None` while the set does not exist.
fn elements_if_set(ns: &NetNs, set: &str) -> Option<Vec<(String, Option<u32>)>> {
    let o = run(ns.command("nft").args(["list", "set", "inet", "nftban", set]));
    o.status.success().then(|| set_elements(ns, set))
}

fn heal_lines(d: &Daemon) -> Vec<String> {
    d.log()
        .lines()
        .filter(|l| l.contains(HEALED))
        .map(str::to_string)
        .collect()
}

/// Wait for heal warning number `n`, then for the three bans to be back
/// with their remaining time (not a fresh default), and return the warning.
fn healed(ns: &NetNs, d: &Daemon, n: usize) -> String {
    let line = wait_for(&format!("heal warning {n}"), || heal_lines(d).get(n - 1).cloned());
    let v4 = wait_for("the IPv4 address to be back", || {
        elements_if_set(ns, "manual_v4").filter(|e| e.len() == 1)
    });
    assert_eq!(v4[0].0, "203.0.113.5");
    let t = v4[0].1.expect("a timeout");
    assert!(t <= 7200 && t > 7000, "restored with its remaining time, got {t}s");
    let nets = wait_for("the IPv4 prefix to be back", || {
        elements_if_set(ns, "manual_v4_24").filter(|e| e.len() == 1)
    });
    assert_eq!(nets[0].0, "198.51.100.0/24");
    let v6 = wait_for("the IPv6 ban to be back", || {
        elements_if_set(ns, "manual_v6").filter(|e| e.len() == 1)
    });
    assert_eq!(v6[0].0, "2001:db8::1");
    line
}

#[test]
fn bans_come_back_after_flush_ruleset_delete_table_and_flush_set() {
    kernel_test!();
    let ns = NetNs::create("heal").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    s.cli_ok(&[
        "ban",
        "203.0.113.5",
        "198.51.100.0/24",
        "2001:db8::1",
        "--bantime",
        "2h",
    ]);
    // A table of another tool is never touched, before or after healing.
    nft(&ns, &["add table inet other; add chain inet other c"]);
    assert!(
        heal_lines(&d).is_empty(),
        "own setup and bans must not heal: {}",
        d.log()
    );

    nft(&ns, &["flush", "ruleset"]);
    let line = healed(&ns, &d, 1);
    assert!(line.contains("table inet nftban deleted"), "{line}");
    assert!(line.contains("by process nft (pid "), "{line}");
    assert!(line.contains("restored the table and 3 ban(s)"), "{line}");
    assert!(
        !run(ns.command("nft").args(["list", "table", "inet", "other"]))
            .status
            .success(),
        "nftban must not recreate another tool's table"
    );

    nft(&ns, &["delete", "table", "inet", "nftban"]);
    let line = healed(&ns, &d, 2);
    assert!(line.contains("table inet nftban deleted"), "{line}");
    assert!(line.contains("chain input deleted"), "the chain named: {line}");

    nft(&ns, &["flush", "set", "inet", "nftban", "manual_v4"]);
    let line = healed(&ns, &d, 3);
    assert!(line.contains("1 element deleted from set manual_v4"), "{line}");

    nft(&ns, &["flush", "chain", "inet", "nftban", "input"]);
    let line = wait_for("heal warning 4", || heal_lines(&d).get(3).cloned());
    assert!(line.contains("12 rules deleted from chain input"), "{line}");
    wait_for("the rules to be back", || (rule_count(&ns) == 12).then_some(()));

    // No loop: nftban's own changes (the healing, a new ban, an unban) are
    // seen as its own. Give a loop time to show, then count again.
    s.cli_ok(&["ban", "203.0.113.6"]);
    s.cli_ok(&["unban", "203.0.113.6"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(heal_lines(&d).len(), 4, "one heal per outside change: {}", d.log());
    assert_eq!(rule_count(&ns), 12, "rules duplicated by healing");
    assert!(d.stop());
}

/// A big set: nftban's own batch of 50,000 bans (run with the event
/// monitor paused, then checked) heals nothing; an outside `nft flush set`
/// of it (50,000 delete events, more than the receive buffer may hold:
/// either the events or the check after ENOBUFS find it) heals once.
#[test]
fn a_big_flushed_set_comes_back_and_own_big_batches_heal_nothing() {
    kernel_test!();
    const N: u32 = 50_000;
    let ns = NetNs::create("healbig").unwrap();
    let s = Setup::asterisk("");
    let d = Daemon::start(&ns, &s);
    let addr = |i: u32| format!("2001:db8:1::{:x}:{:x}", i >> 16, i & 0xffff);
    let list: String = (1..=N).map(|i| addr(i) + "\n").collect();
    let o = s.cli_stdin(&["ban", "-"], &list);
    assert!(o.status.success(), "{}", stderr(&o));
    let get = |addrs: &str| {
        run(ns.command("nft").args([
            "get",
            "element",
            "inet",
            "nftban",
            "manual_v6",
            &format!("{{ {addrs} }}"),
        ]))
        .status
        .success()
    };
    let both = format!("{}, {}", addr(1), addr(N));
    assert!(get(&both), "the bans are in the kernel");
    assert!(heal_lines(&d).is_empty(), "own big batch healed: {}", d.log());

    nft(&ns, &["flush", "set", "inet", "nftban", "manual_v6"]);
    let line = wait_for("a heal warning", || heal_lines(&d).first().cloned());
    assert!(line.contains(&format!("restored the table and {N} ban(s)")), "{line}");
    wait_for("the big set to be back", || get(&both).then_some(()));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(heal_lines(&d).len(), 1, "one heal for one outside change: {}", d.log());
    assert!(d.stop());
}
