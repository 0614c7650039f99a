use super::*;
use crate::address::show as show_net;
use crate::firewall::memory::Memory;
use crate::firewall::{Ban, Firewall};
use crate::sources::SourceState;
use crate::status::{BanResult, JailStatus, Status, UnbanResult};
use crate::store::Origin;
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const CONFIG: &str = "\
defaults: {findtime: 10m, maxretry: 3, bantime: 1h, ignoreip: [192.0.2.0/24]}
jails:
  asterisk:
    ruleset: asterisk
    files: [/var/log/asterisk/messages]
";

fn engine() -> Engine {
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let mut e = Engine::new(&config, Box::new(Memory::new()));
    e.start(&config).unwrap();
    e
}

/// An engine on an empty in-memory kernel with the history in `db`
/// (not started).
fn with_history(config: &Config, db: &Path) -> Engine {
    Engine::new(config, Box::new(Memory::new())).with_store(crate::store::Store::open(db).unwrap())
}

fn kernel(e: &mut Engine, jail: &str) -> Vec<String> {
    e.firewall
        .list(jail)
        .unwrap()
        .iter()
        .map(|el| show_net(&el.net))
        .collect()
}

#[test]
fn maxretry_failures_ban_once_in_one_flush() {
    let mut e = engine();
    let now = SystemTime::now();
    let a: IpAddr = "198.51.100.7".parse().unwrap();
    e.failure(0, a, now);
    e.failure(0, a, now);
    e.flush(SystemTime::now());
    assert!(kernel(&mut e, "asterisk").is_empty());
    e.failure(0, a, now);
    e.flush(SystemTime::now());
    assert_eq!(kernel(&mut e, "asterisk"), ["198.51.100.7"]);
    let st: JailStatus = e.jail_status("asterisk", now, false).unwrap();
    assert_eq!((st.total_failed, st.currently_banned, st.total_banned), (3, 1, 1));
    assert_eq!(st.banned[0].ip, "198.51.100.7");
    assert!(st.banned[0].expires_in > 3500 && st.banned[0].expires_in <= 3600);
}

#[test]
fn ignoreip_and_few_failures_never_ban() {
    let mut e = engine();
    let now = SystemTime::now();
    for _ in 0..10 {
        e.failure(0, "192.0.2.9".parse().unwrap(), now);
    }
    e.failure(0, "198.51.100.8".parse().unwrap(), now);
    e.failure(0, "198.51.100.8".parse().unwrap(), now);
    e.flush(SystemTime::now());
    assert!(kernel(&mut e, "asterisk").is_empty());
    let st: JailStatus = e.jail_status("asterisk", now, false).unwrap();
    assert_eq!((st.currently_failed, st.total_failed, st.currently_banned), (1, 2, 0));
}

/// `nftban ban -` and `unban -` of many addresses and prefixes: one kernel
/// batch for the bans, one delete per jail for the unbans, one history
/// transaction for the unbans; not one per address (issue 16: the bulk
/// path at kernel speed).
#[test]
fn a_bulk_ban_and_unban_are_one_batch_each() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let fw = Memory::new();
    let deletes = Arc::clone(&fw.deletes);
    let mut e = Engine::new(&config, Box::new(fw))
        .with_store(crate::store::Store::open(&dir.path().join("nftban.db")).unwrap());
    e.start(&config).unwrap();
    let now = SystemTime::now();
    let mut addrs: Vec<String> = (0..3000u32)
        .map(|i| std::net::Ipv4Addr::from(0x0b00_0000 + i * 7).to_string())
        .collect();
    addrs.extend((0..2000u32).map(|i| format!("{}/24", std::net::Ipv4Addr::from(0x0c00_0000 + (i << 8)))));
    let before = e.firewall.batches();
    let r = e.ban(&addrs, None, None, now).unwrap();
    assert_eq!(r.banned.len(), 5000, "{:?}", r.failed);
    assert_eq!(e.firewall.batches() - before, 1, "one batch for the request");
    assert_eq!(kernel(&mut e, "manual").len(), 5000);
    // The overview counts them without listing them; the whole status
    // lists them.
    let manual = |st: crate::control::protocol::Status| st.jails.into_iter().find(|j| j.name == "manual").unwrap();
    let brief = manual(e.status(now, true));
    assert_eq!((brief.currently_banned, brief.banned.len()), (5000, 0));
    let whole = manual(e.status(now, false));
    assert_eq!((whole.currently_banned, whole.banned.len()), (5000, 5000));
    // An address inside a prefix of the same request, and a prefix over
    // earlier ones of it: the widest alone, once.
    let r = e
        .ban(
            &[
                "13.0.0.1".into(),
                "13.0.0.0/24".into(),
                "13.0.1.0/24".into(),
                "13.0.0.0/23".into(),
            ],
            None,
            None,
            now,
        )
        .unwrap();
    let banned: Vec<&str> = r.banned.iter().map(|b| b.ip.as_str()).collect();
    assert_eq!(banned, ["13.0.0.0/23"]);

    let r = e.unban(&addrs, None, now).unwrap();
    assert_eq!(r.unbanned.len(), 5000, "{:?}", r.not_banned);
    assert_eq!(
        deletes.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one delete for the jail"
    );
    assert_eq!(e.history.unban_batches, 1, "one history transaction");
    assert_eq!(kernel(&mut e, "manual"), ["13.0.0.0/23"]);
    // Restarted on the same history: only what was not lifted comes back.
    drop(e);
    let mut e = with_history(&config, &dir.path().join("nftban.db"));
    e.start(&config).unwrap();
    assert_eq!(kernel(&mut e, "manual"), ["13.0.0.0/23"]);
}

#[test]
fn manual_ban_and_unban_from_all_jails() {
    let mut e = engine();
    let now = SystemTime::now();
    let r: BanResult = e
        .ban(
            &["203.0.113.5".into(), "2001:db8::/48".into()],
            None,
            Some(Duration::from_secs(60)),
            now,
        )
        .unwrap();
    assert_eq!(r.jail, "manual");
    assert_eq!(kernel(&mut e, "manual"), ["203.0.113.5", "2001:db8::/48"]);
    let r: UnbanResult = e.unban(&["203.0.113.5".into()], None, now).unwrap();
    assert_eq!(r.unbanned, [("203.0.113.5".to_string(), "manual".to_string())]);
    assert_eq!(kernel(&mut e, "manual"), ["2001:db8::/48"]);
    let r: UnbanResult = e.unban(&["203.0.113.5".into()], None, now).unwrap();
    assert_eq!(r.not_banned, ["203.0.113.5 is not banned in any jail"]);
}

/// (Until the fix of issue 13 item 6, the prefix replaced the address; it
/// now stays, in the hash set beside the prefix in the interval set.)
#[test]
fn prefix_ban_keeps_contained_addresses_and_unban_inside_is_explained() {
    let mut e = engine();
    let now = SystemTime::now();
    e.ban(&["198.51.100.7".into()], None, None, now).unwrap();
    e.ban(&["198.51.100.0/24".into()], None, None, now).unwrap();
    assert_eq!(kernel(&mut e, "manual"), ["198.51.100.0/24", "198.51.100.7"]);
    let r: BanResult = e.ban(&["198.51.100.9".into()], None, None, now).unwrap();
    assert_eq!(r.already_covered, ["198.51.100.9 (inside banned 198.51.100.0/24)"]);
    let r: UnbanResult = e.unban(&["198.51.100.9".into()], None, now).unwrap();
    assert!(
        r.not_banned[0].contains("inside banned prefix 198.51.100.0/24 in jail manual"),
        "{:?}",
        r.not_banned
    );
}

#[test]
fn bad_requests_name_the_fault() {
    let mut e = engine();
    let now = SystemTime::now();
    let r = e.ban(&["300.1.1.1".into()], None, None, now).unwrap_err();
    assert!(matches!(r, RequestError::BadAddress { .. }));
    assert!(r.to_string().contains("`300.1.1.1`"), "{r}");
    let r = e.ban(&["192.0.2.1".into()], Some("nope"), None, now).unwrap_err();
    assert_eq!(r.to_string(), "no jail named `nope` (jails: asterisk, manual)");
    assert!(matches!(
        e.jail_status("nope", now, false),
        Err(RequestError::UnknownJail { .. })
    ));
    assert!(matches!(e.ban(&[], None, None, now), Err(RequestError::NoAddress)));
    assert!(matches!(
        e.ban(&["192.0.2.1".into()], None, Some(Duration::ZERO), now),
        Err(RequestError::ZeroBantime)
    ));
}

/// A start with no history neither lists the kernel's sets nor touches
/// their elements: a ban an earlier run left keeps its element and its
/// timeout, and is simply not in the record.
#[test]
fn start_without_history_keeps_the_kernels_bans_without_listing_them() {
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let mut fw = Memory::new();
    fw.add(&[Ban {
        jail: "asterisk".into(),
        net: "198.51.100.1/32".parse().unwrap(),
        timeout: Duration::from_secs(100),
    }])
    .unwrap();
    let lists = Arc::clone(&fw.lists);
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(&dir.path().join("nftban.db")).unwrap();
    let mut e = Engine::new(&config, Box::new(fw)).with_store(store);
    assert_eq!(e.start(&config).unwrap(), 0);
    let st: JailStatus = e.jail_status("asterisk", SystemTime::now(), false).unwrap();
    assert!(st.banned.is_empty());
    assert_eq!(
        lists.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "start listed a set"
    );
    // The same element with its own timeout still running down.
    let kept = e.firewall.list("asterisk").unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(show_net(&kept[0].net), "198.51.100.1");
    let left = kept[0].expires_in.unwrap();
    assert!(
        left <= Duration::from_secs(100) && left > Duration::from_secs(50),
        "{left:?}"
    );
}

#[test]
fn silent_source_is_diagnosed() {
    let mut e = engine();
    let source = Arc::new(crate::sources::SourceStats::new("/var/log/asterisk/messages".into()));
    e.attach_source(0, source.clone());
    let st: JailStatus = e.jail_status("asterisk", SystemTime::now(), false).unwrap();
    assert_eq!(st.sources[0].state, "starting");
    source.set_state(SourceState::Missing);
    let st: JailStatus = e.jail_status("asterisk", SystemTime::now(), false).unwrap();
    assert!(st.sources[0].diagnosis.contains("does not exist"));
    source.set_state(SourceState::Reading);
    source.lines.store(5, std::sync::atomic::Ordering::Relaxed);
    let st: JailStatus = e.jail_status("asterisk", SystemTime::now(), false).unwrap();
    assert!(
        st.sources[0].diagnosis.contains("5 lines read, none matched"),
        "{}",
        st.sources[0].diagnosis
    );
}

/// Failures that matched but were not counted say why in `status`: from
/// `ignoreip`, from an address never banned, on lines older than
/// `findtime` (the source's count); before, only a debug log said so.
#[test]
fn failures_not_counted_are_counted_by_why() {
    let mut e = engine();
    let source = Arc::new(crate::sources::SourceStats::new("/var/log/asterisk/messages".into()));
    e.attach_source(0, source.clone());
    let now = SystemTime::now();
    for _ in 0..3 {
        e.failure(0, "192.0.2.50".parse().unwrap(), now);
    }
    e.failure(0, "127.0.0.1".parse().unwrap(), now);
    for _ in 0..2 {
        source.note_too_old();
    }
    let st: JailStatus = e.jail_status("asterisk", now, false).unwrap();
    assert_eq!(
        st.not_counted,
        crate::status::NotCounted {
            ignoreip: 3,
            never_banned: 1,
            too_old: 2
        }
    );
    assert_eq!(st.currently_failed, 0);
    let shown = crate::commands::status::plain::format_jail(&st);
    assert!(
        shown.contains(
            "|  |- Not counted:      3 from ignoreip, 1 never banned (loopback, ...), 2 older than findtime\n"
        ),
        "{shown}"
    );
}

/// A journal source that read nothing says why in a journal's words:
/// on a host without journald, that no entry will ever come (before, it
/// asked whether anything was written to "the file" and showed `reading`).
#[test]
fn a_silent_journal_source_says_whether_a_journal_runs() {
    let mut e = engine();
    let source = Arc::new(crate::sources::SourceStats::new("journal:_COMM=sshd".into()));
    e.attach_source(0, source.clone());
    source.set_state(SourceState::Reading);
    let st: JailStatus = e.jail_status("asterisk", SystemTime::now(), false).unwrap();
    let said = &st.sources[0].diagnosis;
    assert!(!said.contains("nothing written to the file"), "{said}");
    match std::path::Path::new(crate::sources::journal::JOURNALD_SOCKET).exists() {
        true => assert!(said.starts_with("no journal entry matching"), "{said}"),
        false => assert!(said.starts_with("no systemd journal on this host"), "{said}"),
    }
}

#[test]
fn history_is_written_before_the_kernel_and_restored_in_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nftban.db");
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let mut e = with_history(&config, &db);
    e.start(&config).unwrap();
    let now = SystemTime::now();
    for _ in 0..3 {
        e.failure(0, "198.51.100.7".parse().unwrap(), now);
    }
    e.flush(SystemTime::now());
    e.ban(&["203.0.113.1".into(), "203.0.113.2".into()], None, None, now)
        .unwrap();
    e.unban(&["203.0.113.2".into()], None, now).unwrap();
    drop(e);

    // A new engine on an empty kernel (a reboot): the history refills it.
    let mut e = with_history(&config, &db);
    assert_eq!(e.start(&config).unwrap(), 2);
    assert_eq!(kernel(&mut e, "asterisk"), ["198.51.100.7"]);
    assert_eq!(kernel(&mut e, "manual"), ["203.0.113.1"]);
    assert_eq!(e.history.errors, 0);
}

const TWO_JAILS: &str = "\
defaults: {findtime: 10m, maxretry: 2, bantime: 1h, bantime_increment: {factor: 2, max: 5h}}
recidive: {findtime: 1d, maxretry: 3, bantime: 1w}
jails:
  asterisk:
    ruleset: asterisk
    files: [/var/log/asterisk/messages]
  sshd:
    ruleset: sshd
    files: [/var/log/auth.log]
";

fn expires_in(e: &mut Engine, jail: &str, ip: &str) -> Option<u64> {
    let st: JailStatus = e.jail_status(jail, SystemTime::now(), false).unwrap();
    st.banned.iter().find(|b| b.ip == ip).map(|b| b.expires_in)
}

#[test]
fn repeat_offenders_get_longer_bans_up_to_the_max() {
    let config = Config::from_text(Path::new("/x/nftban.yaml"), TWO_JAILS).unwrap();
    let mut e = Engine::new(&config, Box::new(Memory::new()));
    e.start(&config).unwrap();
    let a: IpAddr = "198.51.100.7".parse().unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let now = SystemTime::now();
        e.failure(0, a, now);
        e.failure(0, a, now);
        e.flush(SystemTime::now());
        seen.push(expires_in(&mut e, "asterisk", "198.51.100.7").unwrap());
        e.unban(&[a.to_string()], Some("asterisk"), now).unwrap();
    }
    // 1h, 2h, 4h, then capped at 5h.
    let hours: Vec<u64> = seen.iter().map(|s| (s + 60) / 3600).collect();
    assert_eq!(hours, [1, 2, 4, 5], "{seen:?}");
}

#[test]
fn recidive_bans_an_address_banned_again_and_again_across_jails() {
    let config = Config::from_text(Path::new("/x/nftban.yaml"), TWO_JAILS).unwrap();
    assert_eq!(config.table_spec().jails, ["asterisk", "sshd", "recidive", "manual"]);
    let mut e = Engine::new(&config, Box::new(Memory::new()));
    e.start(&config).unwrap();
    let a: IpAddr = "203.0.113.9".parse().unwrap();
    let now = SystemTime::now();
    // Banned in asterisk, then in sshd: two bans, no recidive yet.
    for jail in [0, 1] {
        e.failure(jail, a, now);
        e.failure(jail, a, now);
    }
    e.flush(SystemTime::now());
    assert!(kernel(&mut e, "recidive").is_empty());
    // Unbanned from asterisk and banned there again: the third ban.
    e.unban(&[a.to_string()], Some("asterisk"), now).unwrap();
    e.failure(0, a, now);
    e.failure(0, a, now);
    e.flush(SystemTime::now());
    assert_eq!(kernel(&mut e, "recidive"), ["203.0.113.9"]);
    let left = expires_in(&mut e, "recidive", "203.0.113.9").unwrap();
    assert!(left > 6 * 86_400, "a week: {left}");
}

/// docs/cli.md: `currently_failed` counts addresses with failures within
/// findtime and no ban yet. A banned address whose late lines still count
/// (the lines an attacker sent before the kernel dropped it), and one a
/// recidive ban holds, are banned, not "currently failed"; in recidive
/// itself, an address it bans that another jail bans again is not either.
#[test]
fn banned_addresses_are_not_currently_failed() {
    let config = Config::from_text(Path::new("/x/nftban.yaml"), TWO_JAILS).unwrap();
    let mut e = Engine::new(&config, Box::new(Memory::new()));
    e.start(&config).unwrap();
    let now = SystemTime::now();
    let failed = |e: &mut Engine, jail: &str| e.jail_status(jail, now, false).unwrap().currently_failed;
    let a: IpAddr = "203.0.113.9".parse().unwrap();
    e.failure(0, a, now);
    e.failure(0, a, now);
    // A late line of the banned address, and one failure of another.
    e.failure(0, a, now);
    e.failure(0, "203.0.113.10".parse().unwrap(), now);
    e.flush(now);
    assert_eq!(kernel(&mut e, "asterisk"), ["203.0.113.9"]);
    assert_eq!(failed(&mut e, "asterisk"), 1, "only 203.0.113.10 waits for its ban");
    // Banned in sshd and again in asterisk (after an unban): recidive's third ban.
    e.failure(1, a, now);
    e.failure(1, a, now);
    e.unban(&[a.to_string()], Some("asterisk"), now).unwrap();
    e.failure(0, a, now);
    e.failure(0, a, now);
    e.flush(now);
    assert_eq!(kernel(&mut e, "recidive"), ["203.0.113.9"]);
    // Lifted from sshd and asterisk, held by recidive: a failure in
    // asterisk is not "currently failed" there.
    e.unban(&[a.to_string()], Some("sshd"), now).unwrap();
    e.unban(&[a.to_string()], Some("asterisk"), now).unwrap();
    e.failure(0, a, now);
    assert_eq!(failed(&mut e, "asterisk"), 1, "203.0.113.10 only");
    // sshd bans it again: one more "failure" for recidive, which holds it.
    e.failure(1, a, now);
    e.failure(1, a, now);
    e.flush(now);
    assert_eq!(failed(&mut e, "recidive"), 0);
    assert_eq!(failed(&mut e, "sshd"), 0);
}

/// `status` names the addresses banned most often since start and those
/// with the most failures and no ban, across jails; a banned address's
/// late failures do not make it "failing".
#[test]
fn status_lists_the_top_offenders() {
    let config = Config::from_text(Path::new("/x/nftban.yaml"), TWO_JAILS).unwrap();
    let mut e = Engine::new(&config, Box::new(Memory::new()));
    e.start(&config).unwrap();
    let now = SystemTime::now();
    let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
        "203.0.113.1".parse().unwrap(),
        "203.0.113.2".parse().unwrap(),
        "203.0.113.3".parse().unwrap(),
    );
    // a: banned in asterisk and in sshd; b: in sshd, plus a late line.
    for jail in [0, 1] {
        e.failure(jail, a, now);
        e.failure(jail, a, now);
    }
    e.failure(1, b, now);
    e.failure(1, b, now);
    e.failure(1, b, now);
    // c: one failure in each jail, no ban.
    e.failure(0, c, now);
    e.failure(1, c, now);
    e.flush(now);
    let st = e.status(now, false);
    let listed = |top: &[crate::status::Offender]| -> Vec<(String, u64, u64)> {
        top.iter().map(|t| (t.ip.clone(), t.bans, t.failures)).collect()
    };
    assert_eq!(
        listed(&st.most_banned),
        [
            ("203.0.113.1".into(), 2, 0),
            ("203.0.113.2".into(), 1, 0),
            ("203.0.113.3".into(), 0, 0)
        ][..2]
    );
    assert_eq!(listed(&st.most_failed), [("203.0.113.3".to_string(), 0, 2)]);
}

#[test]
fn eviction_is_counted_in_status() {
    let text = CONFIG.replace(
        "ignoreip: [192.0.2.0/24]}",
        "ignoreip: [192.0.2.0/24], max_tracked: 10}",
    );
    let config = Config::from_text(Path::new("/x/nftban.yaml"), &text).unwrap();
    let mut e = Engine::new(&config, Box::new(Memory::new()));
    e.start(&config).unwrap();
    let now = SystemTime::now();
    for i in 0..50u8 {
        e.failure(0, IpAddr::from([198, 51, 100, i]), now);
    }
    let st: JailStatus = e.jail_status("asterisk", now, false).unwrap();
    assert!(st.evicted >= 40, "{}", st.evicted);
    assert!(st.currently_failed <= 11);
}

/// One ban the kernel refuses (a full set) is logged and counted; the
/// others of its batch are kept, in the kernel and in the record.
#[test]
fn a_refused_ban_is_counted_and_the_others_kept() {
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let mut fw = Memory::new();
    fw.capacity = Some(2);
    let forgotten = fw.forgotten.clone();
    let mut e = Engine::new(&config, Box::new(fw));
    e.start(&config).unwrap();
    let now = SystemTime::now();
    let r: BanResult = e
        .ban(
            &["198.51.100.1".into(), "198.51.100.2".into(), "198.51.100.3".into()],
            Some("asterisk"),
            None,
            now,
        )
        .unwrap();
    let ips: Vec<&str> = r.banned.iter().map(|b| b.ip.as_str()).collect();
    assert_eq!(ips, ["198.51.100.1", "198.51.100.2"]);
    assert_eq!(r.failed.len(), 1);
    assert!(
        r.failed[0]
            .starts_with("198.51.100.3: kernel refused to add 1 element to the set of jail asterisk (the set is full)"),
        "{:?}",
        r.failed
    );
    // An automatic ban that does not fit either.
    for _ in 0..3 {
        e.failure(0, "203.0.113.9".parse().unwrap(), now);
    }
    e.flush(SystemTime::now());
    assert_eq!(kernel(&mut e, "asterisk"), ["198.51.100.1", "198.51.100.2"]);
    let st: Status = e.status(now, false);
    assert_eq!(st.kernel_errors, 2);
    let a = &st.jails[0];
    assert_eq!((a.name.as_str(), a.kernel_errors), ("asterisk", 2));
    assert_eq!((a.currently_banned, a.total_banned), (2, 2));
    assert_eq!(st.jails[1].kernel_errors, 0);
    // Conntrack entries are removed for the bans that went in only.
    let nets: Vec<String> = forgotten.lock().unwrap().iter().map(show_net).collect();
    assert_eq!(nets, ["198.51.100.1", "198.51.100.2"]);
}

/// Bans since start are counted per jail and per origin, as the history
/// names them: one from the jail's rules, one by hand, one an origin
/// decided; a ban the kernel refuses is taken out of its origin's count
/// as out of `total_banned`, and an origin left at 0 is not listed.
#[test]
fn bans_are_counted_by_origin_and_a_refusal_undoes_its_count() {
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let mut fw = Memory::new();
    fw.capacity = Some(3);
    let mut e = Engine::new(&config, Box::new(fw));
    e.start(&config).unwrap();
    let now = SystemTime::now();
    let decision = |ip: &str, origin| Decision {
        jail: "asterisk".into(),
        nets: vec![ip.parse().unwrap()],
        bantime: None,
        origin,
        reason: Some(format!("{}: test", origin.as_str())),
    };
    for _ in 0..3 {
        e.failure(0, "203.0.113.9".parse().unwrap(), now);
    }
    e.flush(now);
    e.ban(&["198.51.100.1".into()], Some("asterisk"), None, now).unwrap();
    let r = e
        .decided(decision("198.51.100.2/32", Origin::KernelMeter), now)
        .unwrap();
    assert_eq!(r.banned.len(), 1, "{r:?}");
    let counts = |e: &mut Engine, jail: &str| -> Vec<(String, u64)> {
        let st = e.jail_status(jail, now, false).unwrap();
        assert_eq!(st.bans_by_origin.values().sum::<u64>(), st.total_banned, "{st:?}");
        st.bans_by_origin.into_iter().collect()
    };
    let three = pairs(&[("auto", 1), ("kernel meter", 1), ("manual", 1)]);
    assert_eq!(counts(&mut e, "asterisk"), three);
    assert!(counts(&mut e, "manual").is_empty());

    // The set is full: a refused ban of each kind leaves the counts as
    // they were, with no `escalated` at 0.
    let r = e.decided(decision("198.51.100.3/32", Origin::Escalated), now).unwrap();
    assert_eq!(r.failed.len(), 1, "{r:?}");
    let r = e
        .decided(decision("198.51.100.4/32", Origin::KernelMeter), now)
        .unwrap();
    assert_eq!(r.failed.len(), 1, "{r:?}");
    e.ban(&["198.51.100.5".into()], Some("asterisk"), None, now).unwrap();
    for _ in 0..3 {
        e.failure(0, "203.0.113.10".parse().unwrap(), now);
    }
    e.flush(now);
    assert_eq!(counts(&mut e, "asterisk"), three);
    let st = e.jail_status("asterisk", now, false).unwrap();
    assert_eq!((st.total_banned, st.kernel_errors), (3, 4));
}

/// Every ban that reaches the kernel, automatic or by hand, address or
/// prefix, has its conntrack entries removed, once, after it went in.
#[test]
fn bans_remove_conntrack_entries_of_what_they_ban() {
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let fw = Memory::new();
    let forgotten = fw.forgotten.clone();
    let mut e = Engine::new(&config, Box::new(fw));
    e.start(&config).unwrap();
    let now = SystemTime::now();
    for _ in 0..3 {
        e.failure(0, "203.0.113.9".parse().unwrap(), now);
        e.failure(0, "2001:db8::9".parse().unwrap(), now);
    }
    assert!(forgotten.lock().unwrap().is_empty(), "not before the flush");
    e.flush(SystemTime::now());
    let r: BanResult = e
        .ban(&["198.51.100.0/24".into(), "203.0.113.9".into()], None, None, now)
        .unwrap();
    assert_eq!(r.banned.len(), 2);
    let nets: Vec<String> = forgotten.lock().unwrap().iter().map(show_net).collect();
    assert_eq!(nets, ["203.0.113.9", "2001:db8::9", "198.51.100.0/24", "203.0.113.9"]);
}

/// A ban list with repeats and a prefix over earlier addresses: each
/// address once, the prefix replacing what it contains, later addresses
/// inside it reported as covered.
#[test]
fn a_ban_list_with_repeats_and_a_covering_prefix_is_planned_once() {
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let mut e = Engine::new(&config, Box::new(Memory::new()));
    e.start(&config).unwrap();
    let addrs = [
        "203.0.113.1",
        "198.51.100.7",
        "203.0.113.1",
        "203.0.113.0/24",
        "203.0.113.9",
        "198.51.100.7",
    ];
    let r: BanResult = e
        .ban(
            &addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            None,
            None,
            SystemTime::now(),
        )
        .unwrap();
    let banned: Vec<&str> = r.banned.iter().map(|b| b.ip.as_str()).collect();
    assert_eq!(banned, ["198.51.100.7", "203.0.113.0/24"]);
    assert_eq!(r.already_covered, ["203.0.113.9 (inside banned 203.0.113.0/24)"]);
}

/// A stream of bans does not walk the conntrack table once per ban: the
/// first is cleaned at once, those within the interval after it wait and go
/// together; a request (a ban by hand) does what waits at once.
#[test]
fn conntrack_removals_of_a_stream_of_bans_are_grouped() {
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let fw = Memory::new();
    let forgotten = fw.forgotten.clone();
    let mut e = Engine::new(&config, Box::new(fw));
    e.forget.interval = Duration::from_secs(3600);
    e.start(&config).unwrap();
    let now = SystemTime::now();
    let ban = |e: &mut Engine, a: &str| {
        for _ in 0..3 {
            e.failure(0, a.parse().unwrap(), now);
        }
        e.flush(SystemTime::now());
    };
    ban(&mut e, "203.0.113.1");
    assert_eq!(forgotten.lock().unwrap().len(), 1, "a lone ban is cleaned at once");
    assert!(!e.forget.waiting());
    ban(&mut e, "203.0.113.2");
    ban(&mut e, "203.0.113.3");
    e.forget_connections(false);
    assert_eq!(forgotten.lock().unwrap().len(), 1, "within the interval: waiting");
    assert!(e.forget.waiting());
    let _ = e.status(now, false);
    let nets: Vec<String> = forgotten.lock().unwrap().iter().map(show_net).collect();
    assert_eq!(nets, ["203.0.113.1", "203.0.113.2", "203.0.113.3"]);
    assert!(!e.forget.waiting());
}

/// `packets` and `bytes` of a jail are its two sets' counters summed.
#[test]
fn status_sums_the_counters_of_a_jails_sets() {
    use crate::firewall::Counter;
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let mut fw = Memory::new();
    fw.counters
        .insert("asterisk_v4".into(), Counter { packets: 3, bytes: 180 });
    fw.counters
        .insert("asterisk_v6".into(), Counter { packets: 1, bytes: 80 });
    fw.counters
        .insert("asterisk_v4_net".into(), Counter { packets: 2, bytes: 20 });
    fw.counters.insert("manual_v4".into(), Counter { packets: 7, bytes: 7 });
    let mut e = Engine::new(&config, Box::new(fw));
    e.start(&config).unwrap();
    let st: Status = e.status(SystemTime::now(), false);
    assert_eq!((st.jails[0].packets, st.jails[0].bytes), (6, 280));
    assert_eq!(
        (st.jails[1].name.as_str(), st.jails[1].packets, st.jails[1].bytes),
        ("manual", 7, 7)
    );
}

const ESCALATING: &str = "\
defaults: {findtime: 10m, maxretry: 1, bantime: 1h}
jails:
  asterisk:
    ruleset: asterisk
    files: [/var/log/asterisk/messages]
    ipv6_escalation: {prefix: 64, threshold: 3}
  sshd:
    ruleset: sshd
    files: [/var/log/auth.log]
";

/// Three banned addresses of one /64 ban the /64 (recorded with its
/// reason, shown by status, restored after a restart); the addresses stay
/// (until issue 13 item 6 they went: an unban of the prefix then lifted
/// them too), a fourth address of the /64 is covered, an unban of one
/// inside names the prefix, and an unban of the prefix lifts it alone.
/// Jails without the option and addresses of other /64s never escalate.
#[test]
fn three_addresses_of_a_slash_64_escalate_to_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nftban.db");
    let config = Config::from_text(Path::new("/x/nftban.yaml"), ESCALATING).unwrap();
    let mut e = with_history(&config, &db);
    e.start(&config).unwrap();
    let now = SystemTime::now();
    for a in ["2001:db8:1:2::a", "2001:db8:1:3::b", "2001:db8:1:2::b"] {
        e.failure(0, a.parse().unwrap(), now);
        e.failure(1, a.parse().unwrap(), now);
    }
    e.flush(SystemTime::now());
    // Two in 2001:db8:1:2::/64, one in another /64: no escalation yet.
    assert_eq!(
        kernel(&mut e, "asterisk"),
        ["2001:db8:1:2::a", "2001:db8:1:2::b", "2001:db8:1:3::b"]
    );
    e.failure(0, "2001:db8:1:2::c".parse().unwrap(), now);
    e.failure(1, "2001:db8:1:2::c".parse().unwrap(), now);
    e.flush(SystemTime::now());
    let why = "escalated: 3 addresses in 2001:db8:1:2::/64";
    let hosts = [
        "2001:db8:1:2::a",
        "2001:db8:1:2::b",
        "2001:db8:1:2::c",
        "2001:db8:1:3::b",
    ];
    let escalated = [&["2001:db8:1:2::/64"][..], &hosts].concat();
    assert_eq!(kernel(&mut e, "asterisk"), escalated);
    assert_eq!(kernel(&mut e, "sshd").len(), 4, "sshd has no escalation");
    let st: JailStatus = e.jail_status("asterisk", now, false).unwrap();
    let prefix = st.banned.iter().find(|b| b.ip == "2001:db8:1:2::/64").unwrap();
    assert_eq!(prefix.reason.as_deref(), Some(why));
    assert!(prefix.expires_in > 3500 && prefix.expires_in <= 3600);
    assert_eq!(st.total_banned, 5);
    let by_origin: Vec<(String, u64)> = st.bans_by_origin.clone().into_iter().collect();
    assert_eq!(by_origin, pairs(&[("auto", 4), ("escalated", 1)]));

    // A fourth address of the /64 is already covered: nothing new.
    e.failure(0, "2001:db8:1:2::d".parse().unwrap(), now);
    e.flush(SystemTime::now());
    assert_eq!(kernel(&mut e, "asterisk"), escalated);
    let r: UnbanResult = e.unban(&["2001:db8:1:2::d".into()], Some("asterisk"), now).unwrap();
    assert_eq!(
        r.not_banned,
        ["2001:db8:1:2::d is inside banned prefix 2001:db8:1:2::/64 in jail asterisk; unban the prefix to lift it"]
    );

    // The history holds the prefix with its reason, and the addresses.
    drop(e);
    let mut e = with_history(&config, &db);
    e.start(&config).unwrap();
    assert_eq!(kernel(&mut e, "asterisk"), escalated);
    let st: JailStatus = e.jail_status("asterisk", now, false).unwrap();
    assert_eq!(st.banned[0].reason.as_deref(), Some(why));
    let r: UnbanResult = e.unban(&["2001:db8:1:2::/64".into()], None, now).unwrap();
    assert_eq!(r.unbanned, [("2001:db8:1:2::/64".to_string(), "asterisk".to_string())]);
    assert_eq!(kernel(&mut e, "asterisk"), hosts);
    assert_eq!(e.history.errors + e.kernel_errors, 0);
}

#[test]
fn escalation_values_are_checked() {
    for (bad, says) in [
        (
            "{prefix: 128, threshold: 3}",
            "prefix: must be between 1 and 127 (got 128)",
        ),
        ("{prefix: 0, threshold: 3}", "prefix: must be between 1 and 127 (got 0)"),
        ("{prefix: 64, threshold: 1}", "threshold: must be at least 2"),
    ] {
        let text = ESCALATING.replace("{prefix: 64, threshold: 3}", bad);
        // The place and key, then the problem (the error's source).
        let err = Config::from_text(Path::new("/x/nftban.yaml"), &text).unwrap_err();
        let err = format!("{:#}", anyhow::Error::new(err));
        // The line of the flow mapping that holds the bad value.
        assert!(err.starts_with("/x/nftban.yaml:6:"), "{err}");
        assert!(err.contains(&format!("jails.asterisk.ipv6_escalation.{says}")), "{err}");
    }
}

/// Failures not yet at `maxretry` survive a restart when they were saved
/// with the positions: two failures before the stop and one after ban. A
/// window that led to a ban is not brought back.
#[test]
fn failure_counts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nftban.db");
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let open = || with_history(&config, &db);
    let mut e = open();
    e.start(&config).unwrap();
    let now = SystemTime::now();
    let (a, b, old) = (
        "198.51.100.7".parse().unwrap(),
        "198.51.100.8".parse().unwrap(),
        "198.51.100.9".parse().unwrap(),
    );
    e.failure(0, a, now);
    e.failure(0, a, now);
    for _ in 0..3 {
        e.failure(0, b, now);
    }
    e.failure(0, old, now - Duration::from_secs(590));
    e.flush(SystemTime::now());
    e.finish(SystemTime::now());
    drop(e);

    let mut e = open();
    e.start(&config).unwrap();
    assert_eq!(e.jails[0].tracker.tracked(), 2, "a and old; b was banned");
    // b's ban is restored from the history; a is banned by its third failure.
    e.failure(0, a, SystemTime::now());
    e.flush(SystemTime::now());
    assert_eq!(kernel(&mut e, "asterisk"), ["198.51.100.7", "198.51.100.8"]);
    // After a's ban its saved window goes at the next save.
    e.finish(SystemTime::now());
    drop(e);
    let mut e = open();
    e.start(&config).unwrap();
    assert_eq!(e.jails[0].tracker.tracked(), 1, "only old");
    assert_eq!(e.history.errors, 0);
}

/// A rule's captured prefix is counted and banned as a prefix; a host
/// inside it is then already banned; a prefix holding an ignoreip address
/// is never counted.
#[test]
fn captured_prefixes_are_banned_whole() {
    let mut e = engine();
    let now = SystemTime::now();
    let net = |s: &str| s.parse::<IpNet>().unwrap();
    for host in ["198.51.100.1/24", "198.51.100.2/24", "198.51.100.3/24"] {
        e.failure_of(0, net(host), now, now);
    }
    e.flush(SystemTime::now());
    assert_eq!(kernel(&mut e, "asterisk"), ["198.51.100.0/24"]);
    for _ in 0..3 {
        e.failure(0, "198.51.100.9".parse().unwrap(), now);
    }
    e.flush(SystemTime::now());
    assert_eq!(kernel(&mut e, "asterisk"), ["198.51.100.0/24"], "already covered");
    // CONFIG's ignoreip is 192.0.2.0/24: a /16 around it never counts.
    for _ in 0..3 {
        e.failure_of(0, net("192.0.0.0/16"), now, now);
    }
    e.flush(SystemTime::now());
    assert_eq!(kernel(&mut e, "asterisk"), ["198.51.100.0/24"]);
    assert_eq!(e.jails[0].total_banned, 1);
}

/// Bans of another origin (a kernel meter, a fleet peer, a feed) take the
/// same path as bans by hand, with their reason shown and recorded, and
/// never override the jail's ignoreip.
#[test]
fn another_origins_decisions_are_banned_but_never_in_ignoreip() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nftban.db");
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let mut e = with_history(&config, &db);
    e.start(&config).unwrap();
    let now = SystemTime::now();
    let decision = Decision {
        jail: "asterisk".into(),
        nets: vec!["198.51.100.0/24".parse().unwrap(), "192.0.2.9/32".parse().unwrap()],
        bantime: Some(Duration::from_secs(600)),
        origin: crate::store::Origin::Escalated,
        reason: Some("test origin".into()),
    };
    let r = e.decided(decision, now).unwrap();
    assert_eq!(r.banned.len(), 1);
    assert_eq!(r.banned[0].ip, "198.51.100.0/24");
    assert_eq!(r.failed, ["192.0.2.9: overlaps ignoreip of jail asterisk"]);
    assert_eq!(kernel(&mut e, "asterisk"), ["198.51.100.0/24"]);
    let st = e.jail_status("asterisk", now, false).unwrap();
    assert_eq!(st.banned[0].reason.as_deref(), Some("test origin"));
    assert!(matches!(
        e.decided(
            Decision {
                jail: "nope".into(),
                nets: vec![],
                bantime: None,
                origin: crate::store::Origin::Manual,
                reason: None
            },
            now
        ),
        Err(RequestError::UnknownJail { .. })
    ));
    // Restored after a restart, with its reason.
    drop(e);
    let mut e = with_history(&config, &db);
    assert_eq!(e.start(&config).unwrap(), 1);
    let st = e.jail_status("asterisk", SystemTime::now(), false).unwrap();
    assert_eq!(st.banned[0].reason.as_deref(), Some("test origin"));
}

// ---- Which bans may be made: a new ban never shortens a running one ----

/// Each live element of a jail's sets with its seconds left, rounded up to
/// the minute so that the test's own run time does not show.
fn kernel_minutes(e: &mut Engine, jail: &str) -> Vec<(String, u64)> {
    e.firewall
        .list(jail)
        .unwrap()
        .iter()
        .map(|el| (show_net(&el.net), el.expires_in.unwrap().as_secs().div_ceil(60)))
        .collect()
}

/// What status shows running at `at`, with minutes left (rounded up).
fn status_minutes(e: &mut Engine, jail: &str, at: SystemTime) -> Vec<(String, u64)> {
    let st: JailStatus = e.jail_status(jail, at, false).unwrap();
    st.banned
        .iter()
        .map(|b| (b.ip.clone(), b.expires_in.div_ceil(60)))
        .collect()
}

/// What the history would restore at `at`, with minutes left from `now`.
fn history_minutes(e: &mut Engine, jail: &str, now: SystemTime, at: SystemTime) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = e
        .history
        .active(at)
        .into_iter()
        .filter(|b| b.jail == jail)
        .map(|b| {
            let left = b.expires.duration_since(now).unwrap_or_default();
            (show_net(&b.net), left.as_secs().div_ceil(60))
        })
        .collect();
    out.sort();
    out
}

fn pairs(items: &[(&str, u64)]) -> Vec<(String, u64)> {
    items.iter().map(|(s, m)| (s.to_string(), *m)).collect()
}

/// The interval set of a jail never holds one prefix inside another (the
/// kernel refuses that): what the memory double does not check, the
/// tests do.
fn assert_no_nested_prefixes(e: &mut Engine, jail: &str) {
    let nets: Vec<IpNet> = e
        .firewall
        .list(jail)
        .unwrap()
        .iter()
        .map(|el| el.net)
        .filter(|n| !crate::address::is_host(n))
        .collect();
    for a in &nets {
        for b in nets.iter().filter(|b| *b != a) {
            assert!(!a.contains(b), "{a} holds {b} in the kernel's interval set of {jail}");
        }
    }
}

const SECS_5: Option<Duration> = Some(Duration::from_secs(5));
const HOUR: Option<Duration> = Some(Duration::from_secs(3600));

/// `ban 198.51.100.10` for an hour, then `ban 198.51.100.0/24` for 5 s:
/// the address ban stays in the kernel, in status and in the history, and
/// goes on after the prefix ends.
#[test]
fn a_short_prefix_ban_never_shortens_the_address_bans_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let mut e = with_history(&config, &dir.path().join("nftban.db"));
    e.start(&config).unwrap();
    let now = SystemTime::now();
    e.ban(&["198.51.100.10".into()], None, HOUR, now).unwrap();
    let r: BanResult = e.ban(&["198.51.100.0/24".into()], None, SECS_5, now).unwrap();
    assert_eq!(r.banned.len(), 1);
    assert_eq!(
        (r.banned[0].ip.as_str(), r.banned[0].expires_in),
        ("198.51.100.0/24", 5)
    );
    let both = pairs(&[("198.51.100.0/24", 1), ("198.51.100.10", 60)]);
    assert_eq!(kernel_minutes(&mut e, "manual"), both);
    assert_eq!(status_minutes(&mut e, "manual", now), both);
    // Seven seconds later: the prefix is over, the address ban is not.
    let later = now + Duration::from_secs(7);
    assert_eq!(status_minutes(&mut e, "manual", later), pairs(&[("198.51.100.10", 60)]));
    assert_eq!(
        history_minutes(&mut e, "manual", now, later),
        pairs(&[("198.51.100.10", 60)])
    );
}

/// An automatic ban inside a prefix banned and then unbanned by hand is
/// still there: the unban lifts the prefix only.
#[test]
fn unbanning_a_prefix_leaves_the_address_bans_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let mut e = with_history(&config, &dir.path().join("nftban.db"));
    e.start(&config).unwrap();
    let now = SystemTime::now();
    for _ in 0..3 {
        e.failure(0, "198.51.100.7".parse().unwrap(), now);
    }
    e.flush(now);
    e.ban(&["198.51.100.0/24".into()], Some("asterisk"), None, now).unwrap();
    let r: UnbanResult = e.unban(&["198.51.100.0/24".into()], None, now).unwrap();
    assert_eq!(r.unbanned, [("198.51.100.0/24".to_string(), "asterisk".to_string())]);
    let auto = pairs(&[("198.51.100.7", 60)]);
    assert_eq!(kernel_minutes(&mut e, "asterisk"), auto);
    assert_eq!(status_minutes(&mut e, "asterisk", now), auto);
    assert_eq!(history_minutes(&mut e, "asterisk", now, now), auto);
}

/// A prefix over a narrower prefix that runs longer: the kernel cannot
/// hold both, so the wider one replaces it and runs at least as long; the
/// request's answer says why it runs longer than asked.
#[test]
fn a_wider_prefix_runs_at_least_as_long_as_the_prefixes_it_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let mut e = with_history(&config, &dir.path().join("nftban.db"));
    e.start(&config).unwrap();
    let now = SystemTime::now();
    e.ban(&["198.51.100.128/25".into()], None, HOUR, now).unwrap();
    let r: BanResult = e.ban(&["198.51.100.0/24".into()], None, SECS_5, now).unwrap();
    assert_eq!(
        (r.banned[0].ip.as_str(), r.banned[0].expires_in),
        ("198.51.100.0/24", 3600)
    );
    assert_eq!(
        r.already_covered,
        ["198.51.100.128/25 (banned for longer: 198.51.100.0/24 now runs as long)"]
    );
    let wide = pairs(&[("198.51.100.0/24", 60)]);
    assert_eq!(kernel_minutes(&mut e, "manual"), wide);
    assert_no_nested_prefixes(&mut e, "manual");
    let later = now + Duration::from_secs(7);
    assert_eq!(status_minutes(&mut e, "manual", later), wide);
    assert_eq!(history_minutes(&mut e, "manual", now, later), wide);
}

/// A prefix inside a wider one that ends sooner: the wider one is made to
/// run as long (the kernel cannot hold both); an address inside a prefix
/// that ends sooner gets its own ban.
#[test]
fn a_longer_ban_inside_a_shorter_prefix_is_not_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let mut e = with_history(&config, &dir.path().join("nftban.db"));
    e.start(&config).unwrap();
    let now = SystemTime::now();
    e.ban(&["198.51.100.0/24".into()], None, SECS_5, now).unwrap();
    let r: BanResult = e.ban(&["198.51.100.10".into()], None, HOUR, now).unwrap();
    assert_eq!(r.banned.len(), 1, "{r:?}");
    assert!(r.already_covered.is_empty(), "{r:?}");
    let r: BanResult = e.ban(&["198.51.100.128/25".into()], None, HOUR, now).unwrap();
    assert_eq!(
        (r.banned[0].ip.as_str(), r.banned[0].expires_in),
        ("198.51.100.0/24", 3600)
    );
    assert_eq!(
        r.already_covered,
        ["198.51.100.128/25 (inside banned 198.51.100.0/24, which now runs as long)"]
    );
    let all = pairs(&[("198.51.100.0/24", 60), ("198.51.100.10", 60)]);
    assert_eq!(kernel_minutes(&mut e, "manual"), all);
    assert_no_nested_prefixes(&mut e, "manual");
    let later = now + Duration::from_secs(7);
    assert_eq!(status_minutes(&mut e, "manual", later), all);
    assert_eq!(history_minutes(&mut e, "manual", now, later), all);
}

/// Banning again what runs longer changes nothing and says so; banning it
/// for longer lengthens it.
#[test]
fn a_shorter_ban_of_the_same_address_keeps_the_longer_one() {
    let mut e = engine();
    let now = SystemTime::now();
    e.ban(&["198.51.100.10".into(), "2001:db8::/64".into()], None, HOUR, now)
        .unwrap();
    let r: BanResult = e
        .ban(&["198.51.100.10".into(), "2001:db8::/64".into()], None, SECS_5, now)
        .unwrap();
    assert!(r.banned.is_empty(), "{r:?}");
    assert_eq!(
        r.already_covered,
        [
            "198.51.100.10 (already banned, 1h left)",
            "2001:db8::/64 (already banned, 1h left)"
        ]
    );
    let both = pairs(&[("198.51.100.10", 60), ("2001:db8::/64", 60)]);
    assert_eq!(kernel_minutes(&mut e, "manual"), both);
    assert_eq!(status_minutes(&mut e, "manual", now + Duration::from_secs(7)), both);
    let r: BanResult = e
        .ban(&["198.51.100.10".into()], None, Some(Duration::from_secs(7200)), now)
        .unwrap();
    assert_eq!(r.banned.len(), 1);
    assert_eq!(
        kernel_minutes(&mut e, "manual"),
        pairs(&[("198.51.100.10", 120), ("2001:db8::/64", 60)])
    );
}

/// Automatic bans follow the same rule: failures of an address inside a
/// prefix that ends sooner ban the address; a captured prefix over a
/// narrower one that runs longer replaces it and runs as long.
#[test]
fn automatic_bans_are_planned_against_running_prefixes_too() {
    let mut e = engine();
    let now = SystemTime::now();
    let net = |s: &str| s.parse::<IpNet>().unwrap();
    e.ban(&["198.51.100.0/24".into()], Some("asterisk"), SECS_5, now)
        .unwrap();
    e.ban(
        &["203.0.113.128/25".into()],
        Some("asterisk"),
        Some(Duration::from_secs(7200)),
        now,
    )
    .unwrap();
    for _ in 0..3 {
        e.failure(0, "198.51.100.7".parse().unwrap(), now);
        e.failure_of(0, net("203.0.113.0/24"), now, now);
    }
    e.flush(now);
    let all = pairs(&[("198.51.100.0/24", 1), ("198.51.100.7", 60), ("203.0.113.0/24", 120)]);
    assert_eq!(kernel_minutes(&mut e, "asterisk"), all);
    assert_no_nested_prefixes(&mut e, "asterisk");
    assert_eq!(status_minutes(&mut e, "asterisk", now), all);
    assert_eq!(e.kernel_errors, 0);
}

// ---- Never-ban addresses ----

/// Log lines naming addresses no ban may touch (unspecified, limited
/// broadcast, multicast, loopback) ban nothing and count as no failure;
/// bans by hand and of other origins of them are refused, each with why.
#[test]
fn never_ban_addresses_are_banned_by_no_one() {
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let mut e = Engine::new(&config, Box::new(Memory::new()));
    e.start(&config).unwrap();
    let now = SystemTime::now();
    let net = |s: &str| s.parse::<IpNet>().unwrap();
    let never = ["0.0.0.0", "255.255.255.255", "224.0.0.1", "::", "ff02::1", "127.0.0.1"];
    for a in never {
        for _ in 0..3 {
            e.failure(0, a.parse().unwrap(), now);
        }
    }
    for _ in 0..3 {
        e.failure_of(0, net("0.0.0.0/0"), now, now);
        e.failure_of(0, net("::/0"), now, now);
    }
    e.flush(now);
    assert!(
        kernel(&mut e, "asterisk").is_empty(),
        "{:?}",
        kernel(&mut e, "asterisk")
    );
    assert_eq!(e.jails[0].tracker.total_failed, 0);

    let r: BanResult = e
        .ban(
            &[
                "0.0.0.0/0".into(),
                "127.0.0.1".into(),
                "::".into(),
                "198.51.100.1".into(),
            ],
            None,
            None,
            now,
        )
        .unwrap();
    assert_eq!(r.banned.len(), 1);
    assert_eq!(
        r.failed,
        [
            "0.0.0.0/0: never banned: a ban of the whole address space would cut the host off",
            "127.0.0.1: never banned: loopback is this host itself",
            "::: never banned: the unspecified address is not a source address",
        ]
    );
    let r = e
        .decided(
            Decision {
                jail: "asterisk".into(),
                nets: vec![net("224.0.0.0/3"), net("203.0.113.1/32")],
                bantime: None,
                origin: crate::store::Origin::Manual,
                reason: Some("feed".into()),
            },
            now,
        )
        .unwrap();
    assert_eq!(r.banned.len(), 1);
    assert_eq!(
        r.failed,
        ["224.0.0.0/3: never banned: multicast is not a source address"]
    );
    assert_eq!(kernel(&mut e, "manual"), ["198.51.100.1"]);
    assert_eq!(kernel(&mut e, "asterisk"), ["203.0.113.1"]);
}

/// The bans of one request with a reason (a feed's load, a fleet peer's
/// batch) share one text in memory, and each still shows it.
#[test]
fn a_requests_reason_is_one_text_shared_by_its_bans() {
    let net = |s: &str| s.parse::<IpNet>().unwrap();
    let mut e = engine();
    let now = SystemTime::now();
    let r = e
        .decided(
            Decision {
                jail: "asterisk".into(),
                nets: vec![net("203.0.113.1/32"), net("203.0.113.2/32"), net("198.51.100.0/24")],
                bantime: None,
                origin: crate::store::Origin::Manual,
                reason: Some("feed firehol".into()),
            },
            now,
        )
        .unwrap();
    assert_eq!(r.banned.len(), 3);
    let i = e.jail_index("asterisk").unwrap();
    let reasons = &e.jails[i].reasons;
    let one = &reasons[&net("203.0.113.1/32")];
    assert_eq!(&**one, "feed firehol");
    for other in ["203.0.113.2/32", "198.51.100.0/24"] {
        assert!(std::sync::Arc::ptr_eq(one, &reasons[&net(other)]), "{other} has a copy");
    }
}

// ---- Bans by hand and ignoreip ----

/// A ban by hand of what overlaps the jail's `ignoreip` is refused, with
/// why, unless forced; the `manual` jail's `ignoreip` is the defaults'.
/// `--force` never passes the never-ban list.
#[test]
fn manual_bans_respect_ignoreip_unless_forced() {
    let mut e = engine();
    let now = SystemTime::now();
    let r: BanResult = e
        .ban(&["192.0.2.9".into(), "198.51.100.1".into()], None, None, now)
        .unwrap();
    assert_eq!(r.banned.len(), 1);
    assert_eq!(
        r.failed,
        ["192.0.2.9: overlaps ignoreip of jail manual (--force bans it anyway)"]
    );
    let r: BanResult = e.ban(&["192.0.0.0/16".into()], Some("asterisk"), None, now).unwrap();
    assert!(r.banned.is_empty());
    assert_eq!(
        r.failed,
        ["192.0.0.0/16: overlaps ignoreip of jail asterisk (--force bans it anyway)"]
    );
    assert_eq!(kernel(&mut e, "manual"), ["198.51.100.1"]);
    assert!(kernel(&mut e, "asterisk").is_empty());
    // Forced: ignoreip is passed, the never-ban list is not.
    let r: BanResult = e
        .ban_with(
            &["192.0.0.0/16".into(), "127.0.0.1".into(), "0.0.0.0/0".into()],
            Some("asterisk"),
            None,
            true,
            Chunk::Last,
            now,
        )
        .unwrap();
    let banned: Vec<&str> = r.banned.iter().map(|b| b.ip.as_str()).collect();
    assert_eq!(banned, ["192.0.0.0/16"]);
    assert_eq!(
        r.failed,
        [
            "127.0.0.1: never banned: loopback is this host itself",
            "0.0.0.0/0: never banned: a ban of the whole address space would cut the host off"
        ]
    );
    assert_eq!(kernel(&mut e, "asterisk"), ["192.0.0.0/16"]);
    // recidive takes the defaults' ignoreip too.
    let config = Config::from_text(
        Path::new("/x/nftban.yaml"),
        &format!("recidive: {{findtime: 1d, maxretry: 3, bantime: 1w}}\n{CONFIG}"),
    )
    .unwrap();
    let mut e = Engine::new(&config, Box::new(Memory::new()));
    e.start(&config).unwrap();
    let r: BanResult = e.ban(&["192.0.2.1".into()], Some("recidive"), None, now).unwrap();
    assert_eq!(
        r.failed,
        ["192.0.2.1: overlaps ignoreip of jail recidive (--force bans it anyway)"]
    );
}

// ---- IPv6 escalation and the same rules ----

/// An escalated prefix leaves the address bans inside it alone (an unban
/// of the prefix lifts the prefix only), takes the place of narrower
/// prefixes for at least as long, and is never made over an address of
/// `ignoreip` nor over one no ban may touch.
#[test]
fn escalation_never_shortens_nor_swallows_other_bans() {
    let dir = tempfile::tempdir().unwrap();
    let text = ESCALATING.replace("bantime: 1h}", "bantime: 1h, ignoreip: [\"2001:db8:9::99\"]}");
    let config = Config::from_text(Path::new("/x/nftban.yaml"), &text).unwrap();
    let mut e = with_history(&config, &dir.path().join("nftban.db"));
    e.start(&config).unwrap();
    let now = SystemTime::now();
    e.ban(
        &["2001:db8:1:2::a".into()],
        Some("asterisk"),
        Some(Duration::from_secs(86_400)),
        now,
    )
    .unwrap();
    e.ban(
        &["2001:db8:1:2:0:1::/96".into()],
        Some("asterisk"),
        Some(Duration::from_secs(7200)),
        now,
    )
    .unwrap();
    for a in ["2001:db8:1:2::b", "2001:db8:1:2::c"] {
        e.failure(0, a.parse().unwrap(), now);
    }
    e.flush(now);
    let escalated = pairs(&[
        ("2001:db8:1:2::/64", 120),
        ("2001:db8:1:2::a", 1440),
        ("2001:db8:1:2::b", 60),
        ("2001:db8:1:2::c", 60),
    ]);
    assert_eq!(kernel_minutes(&mut e, "asterisk"), escalated);
    assert_no_nested_prefixes(&mut e, "asterisk");
    assert_eq!(status_minutes(&mut e, "asterisk", now), escalated);
    assert_eq!(history_minutes(&mut e, "asterisk", now, now), escalated);
    let st: JailStatus = e.jail_status("asterisk", now, false).unwrap();
    let prefix = st.banned.iter().find(|b| b.ip == "2001:db8:1:2::/64").unwrap();
    assert_eq!(
        prefix.reason.as_deref(),
        Some("escalated: 3 addresses in 2001:db8:1:2::/64")
    );
    // The unban of the prefix lifts the prefix only.
    e.unban(&["2001:db8:1:2::/64".into()], None, now).unwrap();
    let left = pairs(&[
        ("2001:db8:1:2::a", 1440),
        ("2001:db8:1:2::b", 60),
        ("2001:db8:1:2::c", 60),
    ]);
    assert_eq!(kernel_minutes(&mut e, "asterisk"), left);
    assert_eq!(status_minutes(&mut e, "asterisk", now), left);
    assert_eq!(history_minutes(&mut e, "asterisk", now, now), left);

    // Three addresses of a /64 that holds an ignoreip address: no escalation.
    for a in ["2001:db8:9::1", "2001:db8:9::2", "2001:db8:9::3"] {
        e.failure(0, a.parse().unwrap(), now);
    }
    e.flush(now);
    let st: JailStatus = e.jail_status("asterisk", now, false).unwrap();
    assert!(!banned_has(&st, "2001:db8:9::/64"), "{:?}", st.banned);
    assert_eq!(st.currently_banned, 6);
    assert_eq!(e.kernel_errors, 0);
}

fn banned_has(st: &JailStatus, ip: &str) -> bool {
    st.banned.iter().any(|b| b.ip == ip)
}

/// An escalation prefix short enough to hold `::1` or `::` (`prefix: 1`)
/// never bans it.
#[test]
fn escalation_never_bans_a_prefix_holding_a_never_ban_address() {
    let text = ESCALATING.replace("{prefix: 64, threshold: 3}", "{prefix: 1, threshold: 2}");
    let config = Config::from_text(Path::new("/x/nftban.yaml"), &text).unwrap();
    let mut e = Engine::new(&config, Box::new(Memory::new()));
    e.start(&config).unwrap();
    let now = SystemTime::now();
    for a in ["2001:db8::1", "2001:db8::2", "2001:db8::3"] {
        e.failure(0, a.parse().unwrap(), now);
    }
    e.flush(now);
    assert_eq!(
        kernel(&mut e, "asterisk"),
        ["2001:db8::1", "2001:db8::2", "2001:db8::3"]
    );
}

/// An address with a ban of its own inside a banned prefix: its unban
/// lifts its own ban and says that the prefix still holds it.
#[test]
fn unbanning_an_address_inside_a_banned_prefix_says_the_prefix_still_holds_it() {
    let mut e = engine();
    let now = SystemTime::now();
    e.ban(&["198.51.100.7".into()], None, None, now).unwrap();
    e.ban(&["198.51.100.0/24".into()], None, HOUR, now + Duration::from_secs(1))
        .unwrap();
    let r: UnbanResult = e.unban(&["198.51.100.7".into()], None, now).unwrap();
    assert_eq!(r.unbanned, [("198.51.100.7".to_string(), "manual".to_string())]);
    assert_eq!(
        r.not_banned,
        ["198.51.100.7 is still inside banned prefix 198.51.100.0/24 in jail manual; unban the prefix to lift it"]
    );
    assert_eq!(kernel(&mut e, "manual"), ["198.51.100.0/24"]);
}

/// The memory firewall, refusing to add the prefixes in `refuse` (as the
/// kernel refuses an element that overlaps one another tool added).
struct Refusing {
    inner: Memory,
    refuse: Arc<std::sync::Mutex<Vec<IpNet>>>,
}

impl Firewall for Refusing {
    fn setup(&mut self, spec: &crate::firewall::TableSpec) -> crate::firewall::Result<()> {
        self.inner.setup(spec)
    }
    fn add(&mut self, bans: &[Ban]) -> crate::firewall::Result<Vec<crate::firewall::Refused>> {
        let refuse = self.refuse.lock().unwrap().clone();
        let (no, yes): (Vec<Ban>, Vec<Ban>) = bans.iter().cloned().partition(|b| refuse.contains(&b.net));
        let mut refused = self.inner.add(&yes)?;
        refused.extend(no.into_iter().map(|ban| crate::firewall::Refused {
            ban,
            error: crate::firewall::Error::Kernel {
                what: "add 1 element".into(),
                error: std::io::Error::from_raw_os_error(libc::EEXIST),
            },
        }));
        Ok(refused)
    }
    fn delete(&mut self, jail: &str, nets: &[IpNet]) -> crate::firewall::Result<()> {
        self.inner.delete(jail, nets)
    }
    fn list(&mut self, jail: &str) -> crate::firewall::Result<Vec<crate::firewall::Element>> {
        self.inner.list(jail)
    }
    fn forget_connections(&mut self, nets: &[IpNet]) -> crate::firewall::Result<usize> {
        self.inner.forget_connections(nets)
    }
    fn counters(&mut self) -> crate::firewall::Result<std::collections::BTreeMap<String, crate::firewall::Counter>> {
        self.inner.counters()
    }
    fn missing(
        &mut self,
        spec: &crate::firewall::TableSpec,
        probes: &[(String, IpNet)],
    ) -> crate::firewall::Result<Vec<String>> {
        self.inner.missing(spec, probes)
    }
}

/// A prefix the kernel refuses leaves things as they were: the narrower
/// prefix it was to replace comes back with its own expiry, and a prefix it
/// was to lengthen keeps its old one, in the kernel, the record and the
/// history alike.
#[test]
fn a_refused_prefix_leaves_what_it_was_to_replace_or_lengthen() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let refuse = Arc::new(std::sync::Mutex::new(Vec::new()));
    let fw = Refusing {
        inner: Memory::new(),
        refuse: Arc::clone(&refuse),
    };
    let mut e = Engine::new(&config, Box::new(fw))
        .with_store(crate::store::Store::open(&dir.path().join("nftban.db")).unwrap());
    e.start(&config).unwrap();
    let now = SystemTime::now();
    let net = |s: &str| s.parse::<IpNet>().unwrap();
    e.ban(
        &["198.51.100.128/25".into()],
        None,
        Some(Duration::from_secs(7200)),
        now,
    )
    .unwrap();
    e.ban(&["203.0.113.0/24".into()], None, HOUR, now).unwrap();
    *refuse.lock().unwrap() = vec![net("198.51.100.0/24"), net("203.0.113.0/24")];
    let r: BanResult = e
        .ban(
            &["198.51.100.0/24".into(), "203.0.113.0/25".into()],
            None,
            Some(Duration::from_secs(10_800)),
            now,
        )
        .unwrap();
    assert!(r.banned.is_empty(), "{r:?}");
    assert_eq!(r.failed.len(), 2, "{r:?}");
    let before = pairs(&[("198.51.100.128/25", 120), ("203.0.113.0/24", 60)]);
    assert_eq!(kernel_minutes(&mut e, "manual"), before);
    assert_eq!(status_minutes(&mut e, "manual", now), before);
    assert_eq!(history_minutes(&mut e, "manual", now, now), before);
}

/// Nested prefixes within one request, over a narrower running one that
/// runs longer: one element, the widest, running as long as the longest;
/// each replaced prefix named once.
#[test]
fn nested_prefixes_in_one_request_become_the_widest() {
    let mut e = engine();
    let now = SystemTime::now();
    e.ban(
        &["198.51.100.128/26".into()],
        None,
        Some(Duration::from_secs(7200)),
        now,
    )
    .unwrap();
    let r: BanResult = e
        .ban(
            &[
                "198.51.100.128/25".into(),
                "198.51.100.0/24".into(),
                "198.51.100.7".into(),
            ],
            None,
            SECS_5,
            now,
        )
        .unwrap();
    let banned: Vec<(&str, u64)> = r.banned.iter().map(|b| (b.ip.as_str(), b.expires_in)).collect();
    assert_eq!(banned, [("198.51.100.0/24", 7200)]);
    assert_eq!(
        r.already_covered,
        [
            "198.51.100.7 (inside banned 198.51.100.0/24)",
            "198.51.100.128/26 (banned for longer: 198.51.100.0/24 now runs as long)"
        ]
    );
    assert_eq!(kernel_minutes(&mut e, "manual"), pairs(&[("198.51.100.0/24", 120)]));
    assert_no_nested_prefixes(&mut e, "manual");
}

/// A bantime past the 10-year maximum, as the control socket can carry it
/// (the CLI refuses it before sending), is refused with the limit named,
/// by hand and from other origins: it used to overflow the clock.
#[test]
fn a_bantime_past_the_maximum_is_refused() {
    let mut e = engine();
    let now = SystemTime::now();
    for secs in [315_360_001, 10_000_000_000_000_000_000, u64::MAX] {
        let bantime = Some(Duration::from_secs(secs));
        let err = e.ban(&["203.0.113.5".into()], None, bantime, now).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("bantime {secs}s is longer than the maximum of 10 years (3650d)")
        );
        let decision = Decision {
            jail: "asterisk".into(),
            nets: vec!["198.51.100.0/24".parse().unwrap()],
            bantime,
            origin: crate::store::Origin::Escalated,
            reason: None,
        };
        let err = e.decided(decision, now).unwrap_err();
        assert!(err.to_string().contains("longer than the maximum"), "{err}");
    }
    assert!(kernel(&mut e, "manual").is_empty());
    assert!(kernel(&mut e, "asterisk").is_empty());
    let ten_years = Some(Duration::from_secs(3650 * 86_400));
    let r = e.ban(&["203.0.113.5".into()], None, ten_years, now).unwrap();
    assert_eq!(r.banned[0].expires_in, 3650 * 86_400);
    assert_eq!(kernel(&mut e, "manual"), ["203.0.113.5"]);
}

/// What [`Failing`] does to the next `add`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// The table was deleted by another tool: every `add` says ENOENT
    /// (and the sets are empty) until `setup` runs again.
    Gone,
    /// The netlink socket fails: nothing goes in.
    Broken,
}

/// The memory firewall with a [`Fault`] a test switches on.
struct Failing {
    inner: Memory,
    fault: Arc<std::sync::Mutex<Fault>>,
}

impl Firewall for Failing {
    fn setup(&mut self, spec: &crate::firewall::TableSpec) -> crate::firewall::Result<()> {
        let mut fault = self.fault.lock().unwrap();
        if *fault == Fault::Gone {
            *fault = Fault::None;
        }
        self.inner.setup(spec)
    }
    fn add(&mut self, bans: &[Ban]) -> crate::firewall::Result<Vec<crate::firewall::Refused>> {
        match *self.fault.lock().unwrap() {
            Fault::None => self.inner.add(bans),
            Fault::Gone => {
                for set in self.inner.sets.values_mut() {
                    set.clear();
                }
                Err(crate::firewall::Error::Kernel {
                    what: format!("add {} elements", bans.len()),
                    error: std::io::Error::from_raw_os_error(libc::ENOENT),
                })
            }
            Fault::Broken => Err(crate::firewall::Error::Io(std::io::Error::from_raw_os_error(
                libc::ENOBUFS,
            ))),
        }
    }
    fn delete(&mut self, jail: &str, nets: &[IpNet]) -> crate::firewall::Result<()> {
        self.inner.delete(jail, nets)
    }
    fn list(&mut self, jail: &str) -> crate::firewall::Result<Vec<crate::firewall::Element>> {
        self.inner.list(jail)
    }
    fn forget_connections(&mut self, nets: &[IpNet]) -> crate::firewall::Result<usize> {
        self.inner.forget_connections(nets)
    }
    fn counters(&mut self) -> crate::firewall::Result<std::collections::BTreeMap<String, crate::firewall::Counter>> {
        self.inner.counters()
    }
    fn missing(
        &mut self,
        spec: &crate::firewall::TableSpec,
        probes: &[(String, IpNet)],
    ) -> crate::firewall::Result<Vec<String>> {
        self.inner.missing(spec, probes)
    }
}

fn failing(dir: &Path) -> (Config, Engine, Arc<std::sync::Mutex<Fault>>) {
    let config = Config::from_text(Path::new("/x/nftban.yaml"), CONFIG).unwrap();
    let fault = Arc::new(std::sync::Mutex::new(Fault::None));
    let fw = Failing {
        inner: Memory::new(),
        fault: Arc::clone(&fault),
    };
    let mut e =
        Engine::new(&config, Box::new(fw)).with_store(crate::store::Store::open(&dir.join("nftban.db")).unwrap());
    e.start(&config).unwrap();
    (config, e, fault)
}

/// The table deleted by another tool just before (or in the middle of) a
/// ban: the ban used to be refused, although the watcher's notice put the
/// table back a moment later, and the history kept it all the same, so a
/// restart brought back a ban `ban` had said was not made. Now the table
/// goes back at once with every ban of the record, and the ban with them.
#[test]
fn a_ban_into_a_deleted_table_puts_the_table_back() {
    let dir = tempfile::tempdir().unwrap();
    let (config, mut e, fault) = failing(dir.path());
    let now = SystemTime::now();
    e.ban(&["198.51.100.1".into()], None, None, now).unwrap();
    *fault.lock().unwrap() = Fault::Gone;
    let r: BanResult = e.ban(&["198.51.100.2".into()], None, None, now).unwrap();
    assert_eq!(r.failed, Vec::<String>::new());
    assert_eq!(r.banned.len(), 1);
    assert_eq!(kernel(&mut e, "manual"), ["198.51.100.1", "198.51.100.2"]);
    assert_eq!(banned(&mut e, "manual"), ["198.51.100.1", "198.51.100.2"]);
    drop(e);
    let mut e = with_history(&config, &dir.path().join("nftban.db"));
    e.start(&config).unwrap();
    assert_eq!(kernel(&mut e, "manual"), ["198.51.100.1", "198.51.100.2"]);
}

/// A ban that does not go in at all (the netlink socket fails) is said
/// refused, and it is refused everywhere: not in status, and not brought
/// back by a restart (before, the history kept it).
#[test]
fn a_ban_refused_whole_is_not_restored_later() {
    let dir = tempfile::tempdir().unwrap();
    let (config, mut e, fault) = failing(dir.path());
    let now = SystemTime::now();
    e.ban(&["198.51.100.1".into()], None, None, now).unwrap();
    *fault.lock().unwrap() = Fault::Broken;
    let r: BanResult = e.ban(&["198.51.100.2".into()], None, None, now).unwrap();
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert!(r.banned.is_empty(), "{r:?}");
    assert_eq!(banned(&mut e, "manual"), ["198.51.100.1"]);
    drop(e);
    let mut e = with_history(&config, &dir.path().join("nftban.db"));
    e.start(&config).unwrap();
    assert_eq!(kernel(&mut e, "manual"), ["198.51.100.1"]);
}

/// The addresses status shows banned in `jail`, sorted.
fn banned(e: &mut Engine, jail: &str) -> Vec<String> {
    let mut v: Vec<String> = e
        .jail_status(jail, SystemTime::now(), false)
        .unwrap()
        .banned
        .into_iter()
        .map(|b| b.ip)
        .collect();
    v.sort();
    v
}

/// `n` addresses `10.0.B.C` from `from` on.
fn ten(from: u32, n: u32) -> Vec<String> {
    (from..from + n)
        .map(|i| std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string())
        .collect()
}

/// One `nftban ban -` sent as four requests, the first three saying more
/// follow, is logged as one command (issue 16): one summary line per kind
/// with the whole count, its first addresses and its longest bantime.
/// Likewise `unban -`, in each jail it lifted bans from, though its last
/// request lifted none there.
#[test]
fn the_requests_of_one_bulk_command_are_logged_as_one() {
    let mut e = engine();
    let now = SystemTime::now();
    let hours = |h: u64| Some(Duration::from_secs(h * 3600));
    let chunks = [(Chunk::More, 1), (Chunk::More, 2), (Chunk::More, 1), (Chunk::Last, 1)];
    for (k, (chunk, h)) in (0u32..).zip(chunks) {
        // 15 bans and 3 addresses in ignoreip each.
        let mut addrs = ten(k * 15, 15);
        addrs.extend((0..3).map(|i| format!("192.0.2.{}", k * 3 + i)));
        let r = e.ban_with(&addrs, None, hours(h), false, chunk, now).unwrap();
        assert_eq!((r.banned.len(), r.failed.len()), (15, 3));
        if chunk == Chunk::More {
            assert_eq!(e.held.logged, Vec::<String>::new(), "chunk {k}");
        }
    }
    assert_eq!(
        e.held.logged,
        [
            "12 addresses not banned (by hand): 192.0.2.0, 192.0.2.1, 192.0.2.2, ...; the request's answer says why for each",
            "Ban 60 addresses and prefixes for up to 2h (by hand): 10.0.0.0, 10.0.0.1, 10.0.0.2, ...; `nftban status manual` lists them",
        ]
    );

    e.held.logged.clear();
    e.ban(&ten(100, 20), Some("asterisk"), None, now).unwrap();
    e.held.logged.clear();
    let lifts = [
        (Chunk::More, ten(0, 30)),
        (Chunk::More, ten(100, 20)),
        (Chunk::More, ten(30, 20)),
        (Chunk::Last, ten(50, 10)),
    ];
    for (chunk, addrs) in lifts {
        e.unban_with(&addrs, None, chunk, now).unwrap();
    }
    assert_eq!(
        e.held.logged,
        [
            "Unban 20 addresses (by hand): 10.0.0.100, 10.0.0.101, 10.0.0.102, ...",
            "Unban 60 addresses (by hand): 10.0.0.0, 10.0.0.1, 10.0.0.2, ...",
        ]
    );
}

/// A command whose last request never comes (its client killed, an
/// invalid address read after some went) is still logged: by the tick
/// once it has been quiet for [`held::QUIET`], at the latest at a stop.
#[test]
fn a_bulk_command_cut_short_is_logged_when_quiet_or_at_a_stop() {
    let mut e = engine();
    let now = SystemTime::now();
    e.ban_with(&ten(0, 20), None, None, false, Chunk::More, now).unwrap();
    e.tick(now + Duration::from_secs(1));
    assert_eq!(e.held.logged, Vec::<String>::new());
    e.ban_with(
        &ten(20, 20),
        None,
        None,
        false,
        Chunk::More,
        now + Duration::from_secs(2),
    )
    .unwrap();
    e.tick(now + held::QUIET);
    assert_eq!(
        e.held.logged,
        Vec::<String>::new(),
        "quiet since the second request only"
    );
    e.tick(now + Duration::from_secs(2) + held::QUIET);
    assert_eq!(
        e.held.logged,
        ["Ban 40 addresses and prefixes for up to 1h (by hand): 10.0.0.0, 10.0.0.1, 10.0.0.2, ...; `nftban status manual` lists them"]
    );

    e.held.logged.clear();
    e.unban_with(&ten(0, 40), Some("manual"), Chunk::More, now).unwrap();
    assert_eq!(e.held.logged, Vec::<String>::new());
    e.finish(now);
    assert_eq!(
        e.held.logged,
        ["Unban 40 addresses (by hand): 10.0.0.0, 10.0.0.1, 10.0.0.2, ..."]
    );
}
