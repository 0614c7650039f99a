//! Blocklist feeds against the kernel (docs/feeds.md): a list served over
//! HTTP from another namespace, loaded, refreshed with additions and
//! removals as one transaction (kept entries never deleted, checked with
//! `nft monitor`), failed fetches and a bad line that keep the old list,
//! a restart that puts the list back without a fetch, a prefix that drops
//! packets over a veth pair; `ignoreip`, loopback, the host's own and
//! private ranges skipped; APIBAN from a recorded sample.

use std::net::SocketAddr;
use std::process::Stdio;

use nftban::control::protocol::FeedStatus;
use nftban::netns::udp_echo;

use crate::support::*;

/// The feed `name` in status, once `until` holds.
fn wait_feed(setup: &Setup, name: &str, what: &str, until: impl Fn(&FeedStatus) -> bool) -> FeedStatus {
    wait_for(what, || {
        setup
            .try_status()
            .and_then(|st| st.feeds.into_iter().find(|f| f.name == name))
            .filter(&until)
    })
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The feed's entries in the kernel, all four sets, sorted; each without
/// a timeout (an entry lasts while the feed lists it).
fn feed_elements(ns: &NetNs, feed: &str) -> Vec<String> {
    let mut out = Vec::new();
    for suffix in ["v4", "v4_24", "v4_net", "v6", "v6_64", "v6_net"] {
        for e in elements(ns, &format!("feed_{feed}_{suffix}")) {
            assert_eq!((e.timeout, e.expires), (None, None), "{} has a timeout", e.addr);
            out.push(e.addr);
        }
    }
    sorted(out)
}

fn list(items: &[&str]) -> Vec<String> {
    sorted(items.iter().map(|s| s.to_string()).collect())
}

#[test]
fn a_feed_over_http_is_refreshed_as_one_diff_and_keeps_its_list_through_failures() {
    kernel_test!(PYTHON3);
    let web = shared_web();
    let (pbx, attacker) = pbx_and_attacker("feed");
    let url = web.link(&pbx, "level1");
    let sip: SocketAddr = "192.0.2.1:5060".parse().unwrap();
    udp_echo(&pbx, sip).unwrap();
    wait_passes(&attacker, sip);
    web.write(
        "level1/list.netset",
        "# FireHOL-like\n0.0.0.0/8\n10.0.0.0/8\n198.51.100.1\n198.51.100.2\n203.0.113.0/24\n192.0.2.64/27\n192.0.2.99\n2001:db8::/48\n",
    );
    let setup = Setup::asterisk("");
    setup.top(&format!(
        "feeds: {{level1: {{url: '{url}/list.netset', format: netset, refresh: 1s}}}}"
    ));
    let daemon = Daemon::start(&pbx, &setup);
    let st = wait_feed(&setup, "level1", "the first list", |f| f.entries == 5);
    assert_eq!(
        (st.state.as_str(), st.origin.as_str(), st.jail.as_str()),
        ("ok", "feed:level1", "manual")
    );
    // 0.0.0.0/8 is reserved; 10.0.0.0/8 holds this host's own 10.78.N.2.
    assert_eq!(st.skipped.get("private"), Some(&1), "{st:?}");
    assert_eq!(st.skipped.get("own address"), Some(&1), "{st:?}");
    assert_eq!(st.skipped.get("ignoreip"), Some(&1), "{st:?}");
    let first = list(&[
        "198.51.100.1",
        "198.51.100.2",
        "203.0.113.0/24",
        "192.0.2.64/27",
        "2001:db8::/48",
    ]);
    assert_eq!(feed_elements(&pbx, "level1"), first);
    // The attacker (192.0.2.66) is inside a listed prefix.
    assert!(!passes(&attacker, sip), "the feed's prefix drops the attacker");

    // Watch every element deletion while the list is refreshed.
    let monitor_out = setup.dir.path().join("monitor.txt");
    let mut monitor = pbx
        .command("nft")
        .args(["monitor", "destroy", "elements"])
        .stdout(std::fs::File::create(&monitor_out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    web.write(
        "level1/list.netset",
        "198.51.100.1\n198.51.100.3\n203.0.113.0/24\n2001:db8::/48\n2001:db8:ff::7\n",
    );
    let second = list(&[
        "198.51.100.1",
        "198.51.100.3",
        "203.0.113.0/24",
        "2001:db8::/48",
        "2001:db8:ff::7",
    ]);
    wait_feed(&setup, "level1", "the refreshed list", |f| {
        f.refreshes.get("ok") == Some(&2) && f.entries == 5
    });
    assert_eq!(feed_elements(&pbx, "level1"), second);
    wait_passes(&attacker, sip);
    let _ = monitor.kill();
    let _ = monitor.wait();
    let deleted = std::fs::read_to_string(&monitor_out).unwrap();
    assert!(
        deleted.contains("198.51.100.2"),
        "the dropped entry is lifted:\n{deleted}"
    );
    assert!(
        deleted.contains("192.0.2.64/27"),
        "the dropped prefix is lifted:\n{deleted}"
    );
    for kept in ["198.51.100.1 ", "198.51.100.1}", "203.0.113.0/24", "2001:db8::/48"] {
        assert!(
            !deleted.contains(kept),
            "kept entry {kept} was deleted during the refresh:\n{deleted}"
        );
    }

    // The list gone from the server: HTTP 404, the old list stays.
    std::fs::remove_file(web.path("level1/list.netset")).unwrap();
    let st = wait_feed(&setup, "level1", "the 404", |f| f.state == "failing");
    assert!(st.last_error.as_deref().unwrap().contains("HTTP 404"), "{st:?}");
    assert_eq!(feed_elements(&pbx, "level1"), second);
    // The server unreachable.
    pbx.ip(&["link", "set", "web0", "down"]).unwrap();
    let st = wait_feed(&setup, "level1", "the unreachable server", |f| {
        f.last_error.as_deref().is_some_and(|e| !e.contains("HTTP 404"))
    });
    assert!(
        st.last_error.as_deref().unwrap().contains(&url),
        "the error names the URL: {st:?}"
    );
    assert_eq!(feed_elements(&pbx, "level1"), second);
    pbx.ip(&["link", "set", "web0", "up"]).unwrap();
    // A bad line: named with the feed and the line, the old list stays.
    web.write("level1/list.netset", "198.51.100.1\n198.51.100.300\n");
    let st = wait_feed(&setup, "level1", "the bad line", |f| {
        f.last_error.as_deref().is_some_and(|e| e.contains("line 2"))
    });
    let e = st.last_error.unwrap();
    assert!(e.starts_with("feed level1: line 2: `198.51.100.300`"), "{e}");
    assert_eq!(feed_elements(&pbx, "level1"), second);
    assert!(
        daemon
            .log()
            .contains("feed level1: refresh failed, the previous list stays"),
        "{}",
        daemon.log()
    );
    let text = stdout(&setup.cli_ok(&["status"]));
    assert!(
        text.contains("level1") && text.contains("line 2"),
        "status says why:\n{text}"
    );

    // A restart with the server unreachable puts the last good list back.
    assert!(daemon.stop());
    pbx.ip(&["link", "set", "web0", "down"]).unwrap();
    let _daemon = Daemon::start(&pbx, &setup);
    let st = wait_feed(&setup, "level1", "the list put back", |f| f.entries == 5);
    assert_eq!(feed_elements(&pbx, "level1"), second);
    assert!(setup.dir.path().join("feeds/level1").exists());
    let _ = st;
}

#[test]
fn ignoreip_loopback_own_and_private_ranges_are_skipped_unless_trusted() {
    kernel_test!();
    let (pbx, _attacker) = pbx_and_attacker("feedskip");
    let setup = Setup::asterisk("");
    let plain = setup.dir.path().join("mine.txt");
    let trusted = setup.dir.path().join("trusted.txt");
    let entries = "127.0.0.1\n192.0.2.1\n192.0.2.99\n10.0.0.0/8\n172.16.5.0/24\nfd00::/8\n198.51.100.7\n";
    std::fs::write(&plain, entries).unwrap();
    std::fs::write(&trusted, entries).unwrap();
    setup.top(&format!(
        "feeds: {{mine: {{file: {}, format: plain, jail: asterisk}}, trusted: {{file: {}, format: plain, trusted_private: true}}}}",
        plain.display(),
        trusted.display()
    ));
    let _daemon = Daemon::start(&pbx, &setup);
    let mine = wait_feed(&setup, "mine", "the list", |f| f.state == "ok");
    assert_eq!(feed_elements(&pbx, "mine"), list(&["198.51.100.7"]));
    assert_eq!(mine.skipped.get("loopback"), Some(&1));
    assert_eq!(
        mine.skipped.get("own address"),
        Some(&1),
        "192.0.2.1 is the host's: {mine:?}"
    );
    assert_eq!(mine.skipped.get("ignoreip"), Some(&1));
    assert_eq!(mine.skipped.get("private"), Some(&3));
    let trusted = wait_feed(&setup, "trusted", "the trusted list", |f| f.state == "ok");
    assert_eq!(
        feed_elements(&pbx, "trusted"),
        list(&["198.51.100.7", "10.0.0.0/8", "172.16.5.0/24", "fd00::/8"])
    );
    assert_eq!(trusted.skipped.get("private"), None);
    assert_eq!(trusted.skipped.get("ignoreip"), Some(&1));

    // The file edited, then a reload: read again at once (its kept list
    // is an hour younger than its refresh, which a URL would wait out).
    std::fs::write(&plain, "198.51.100.7\n198.51.100.8\n203.0.113.0/24\n").unwrap();
    setup.cli_ok(&["reload"]);
    wait_for("the edited list after the reload", || {
        (feed_elements(&pbx, "mine") == list(&["198.51.100.7", "198.51.100.8", "203.0.113.0/24"])).then_some(())
    });
}

#[test]
fn apiban_is_read_from_its_cursor() {
    kernel_test!(PYTHON3);
    let web = shared_web();
    let (pbx, _attacker) = pbx_and_attacker("apiban");
    let url = web.link(&pbx, "apiban");
    // APIBAN's paths: /api/KEY/banned/ID, answered from recorded samples.
    let dir = web.path("apiban/api/SECRET/banned");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy("tests/data/apiban-banned.json", dir.join("100")).unwrap();
    std::fs::copy("tests/data/apiban-none.json", dir.join("1701890000")).unwrap();
    let setup = Setup::asterisk("");
    let key = setup.dir.path().join("apiban.key");
    std::fs::write(&key, "SECRET\n").unwrap();
    setup.top(&format!(
        "feeds: {{apiban: {{url: '{url}/api/{{key}}/banned', key_file: {}, format: apiban}}}}",
        key.display()
    ));
    let _daemon = Daemon::start(&pbx, &setup);
    let st = wait_feed(&setup, "apiban", "APIBAN's list", |f| f.entries == 4);
    assert!(!st.source.contains("SECRET"), "{st:?}");
    assert_eq!(st.refresh, 600);
    assert_eq!(
        feed_elements(&pbx, "apiban"),
        list(&["198.51.100.23", "203.0.113.45", "192.0.2.200", "2001:db8:5::9"])
    );
    let saved = std::fs::read_to_string(setup.dir.path().join("feeds/apiban")).unwrap();
    assert!(saved.contains("#cursor 1701890000"), "{saved}");
}

/// `n` distinct public /24 prefixes from 20.0.0.0/24 upwards, skipping
/// the first `skip`.
fn prefixes(skip: u32, n: u32) -> Vec<String> {
    (skip..skip + n)
        .map(|i| format!("{}.{}.{}.0/24", 20 + i / 65_536, (i / 256) % 256, i % 256))
        .collect()
}

/// How many elements nftban's set `set` holds (one `nft -j` listing).
fn count(ns: &NetNs, set: &str) -> usize {
    elements(ns, set).len()
}

#[test]
fn a_large_list_loads_in_one_go_and_a_small_change_is_a_small_diff() {
    kernel_test!();
    let (pbx, _attacker) = pbx_and_attacker("feedbig");
    let setup = Setup::asterisk("");
    let file = setup.dir.path().join("big.txt");
    let addrs: Vec<String> = (0..10_000u32)
        .map(|i| format!("30.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256))
        .collect();
    let first = [prefixes(0, 100_000), addrs.clone()].concat();
    std::fs::write(&file, first.join("\n")).unwrap();
    setup.top(&format!(
        "feeds: {{big: {{file: {}, format: plain, refresh: 1s}}}}",
        file.display()
    ));
    let daemon = Daemon::start(&pbx, &setup);
    wait_feed(&setup, "big", "110,000 entries", |f| f.entries == 110_000);
    assert_eq!(count(&pbx, "feed_big_v4_24"), 100_000);
    assert_eq!(count(&pbx, "feed_big_v4"), 10_000);

    let monitor_out = setup.dir.path().join("monitor.txt");
    let mut monitor = pbx
        .command("nft")
        .args(["monitor", "destroy", "elements"])
        .stdout(std::fs::File::create(&monitor_out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // 100 prefixes dropped at the start, 100 new ones at the end.
    let second = [prefixes(100, 100_000), addrs].concat();
    std::fs::write(&file, second.join("\n")).unwrap();
    wait_feed(&setup, "big", "the refresh", |f| f.refreshes.get("ok") == Some(&2));
    let _ = monitor.kill();
    let _ = monitor.wait();
    let deleted = std::fs::read_to_string(&monitor_out).unwrap();
    // A /24 lives in the masked set, keyed (and named by the monitor) by
    // its network address: `feed_big_v4_24 { 20.0.0.0 }`.
    let named_in = |p: &str| format!("feed_big_v4_24 {{ {} }}", p.trim_end_matches("/24"));
    for gone in prefixes(0, 100) {
        assert!(deleted.contains(&named_in(&gone)), "{gone} was not lifted:\n{deleted}");
    }
    // Kept entries were never deleted: only the 100 dropped ones are named.
    let named = prefixes(0, 100_100)
        .iter()
        .filter(|p| deleted.contains(&named_in(p)))
        .count();
    assert_eq!(named, 100, "{deleted}");
    assert!(
        daemon
            .log()
            .contains("feed big: 110000 entries (+100, -100) in one transaction"),
        "{}",
        daemon.log()
    );
}
