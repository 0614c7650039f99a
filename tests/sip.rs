//! SIP servers under attack, from their logs (issue 11, the log side): a
//! real Kamailio (tests/support/sip.rs) logs with the example snippet
//! deploy/examples/kamailio-nftban.cfg, real attack tools (sipvicious's
//! svmap and svwar, SIPp with a wrong password) run from namespaces of
//! their own, `nftban run` bans them from Kamailio's log, and Kamailio's
//! own counters show their requests no longer reach it. Every run of a
//! tool is bounded in requests and time; nothing is timed.
//!
//! Also, without root: the example nftban configs load and their rulesets'
//! examples hold.

use std::path::{Path, PathBuf};

use nftban::config::Config;
use nftban::matcher::{LineMatch, Matcher, Ruleset};

use crate::support::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples")
}

/// The jails of the bed's tests on Kamailio's log: the shipped `kamailio`
/// ruleset (maxretry 3) and the example scanner ruleset (maxretry 1).
pub(crate) fn kamailio_jails(s: &Setup, log: &Path) {
    s.jails(&format!(
        "  kamailio:\n    ruleset: kamailio\n    files: [{log}]\n    maxretry: 3\n  sip-scanners:\n    ruleset: {rules}\n    files: [{log}]\n    maxretry: 1\n",
        log = log.display(),
        rules = examples().join("kamailio-scanners.yaml").display(),
    ));
}

/// sipvicious's svmap finds Kamailio and is logged as a scanner; nftban
/// bans it from that line; afterwards neither svmap nor svwar from that
/// address reaches Kamailio (its per-source request count stays put), and
/// another client still does.
#[test]
fn sipvicious_scanner_is_banned_from_kamailio_log() {
    kernel_test!(KAMAILIO, SVMAP);
    let bed = sip_bed();
    let scanner = bed.client("svmap");
    let other = bed.client("other");
    let s = Setup::asterisk("");
    kamailio_jails(&s, &bed.log);
    let mut daemon = Daemon::start(&bed.ns, &s);

    // One OPTIONS per host; svmap waits ~3 s for answers (Kamailio drops
    // scanners without one).
    let o = run(scanner.bounded(30, s.dir.path(), "svmap").arg(&scanner.server));
    assert!(o.status.code() != Some(124), "svmap did not finish in 30 s");
    let st = s.wait_jail("sip-scanners", "the scanner banned", |st| {
        banned_ips(st).contains(&scanner.addr.as_str())
    });
    assert!(daemon.is_running(), "daemon died:\n{}", daemon.log());
    assert_eq!(banned_ips(&st), vec![scanner.addr.as_str()], "{st:?}");
    assert!(
        bed.log_text().contains(&format!(
            "scanner blocked: friendly-scanner from sip:100@1.1.1.1 (IP:{}:",
            scanner.addr
        )),
        "Kamailio did not log the scanner as the ruleset reads it:\n{}",
        bed.log_text()
    );
    let before = bed.requests_from(&scanner.addr);
    assert!(before >= 1, "svmap never reached Kamailio");

    // Banned: svmap and svwar (REGISTER to extensions 100-109) again; not
    // one request reaches Kamailio.
    let o = run(scanner.bounded(30, s.dir.path(), "svmap").arg(&scanner.server));
    assert!(o.status.code() != Some(124), "svmap did not finish in 30 s");
    let o = run(scanner
        .bounded(40, s.dir.path(), "svwar")
        .args(["-e100-109", &scanner.server]));
    assert!(o.status.code() != Some(124), "svwar did not finish in 40 s");
    assert_eq!(
        bed.requests_from(&scanner.addr),
        before,
        "requests from the banned scanner reached Kamailio"
    );

    // Another address is not affected: its svmap still reaches Kamailio
    // (and is banned in turn).
    let o = run(other.bounded(30, s.dir.path(), "svmap").arg(&other.server));
    assert!(o.status.code() != Some(124), "svmap did not finish in 30 s");
    assert!(
        bed.requests_from(&other.addr) >= 1,
        "the other client never reached Kamailio"
    );
    s.wait_jail("sip-scanners", "the second scanner banned", |st| {
        banned_ips(st).contains(&other.addr.as_str())
    });
    let st = s.jail_status("kamailio");
    assert_eq!(
        st.currently_banned, 0,
        "one scanner line is no ban in the kamailio jail: {st:?}"
    );
    assert!(daemon.stop(), "daemon did not exit cleanly on SIGTERM");
}

/// SIPp registering with a wrong password is banned after maxretry (3)
/// failures, from the `auth failed:` lines of the example snippet; a SIPp
/// client with the right password registers before, during and after,
/// every time; once banned, the bad client's requests no longer reach
/// Kamailio.
#[test]
fn sipp_wrong_password_is_banned_while_good_client_registers() {
    kernel_test!(KAMAILIO, SIPP);
    let bed = sip_bed();
    let good = bed.client("good");
    let bad = bed.client("bad");
    let s = Setup::asterisk("");
    kamailio_jails(&s, &bed.log);
    let mut daemon = Daemon::start(&bed.ns, &s);
    let dir = s.dir.path();
    let right = Client::register_scenario(dir, PASSWORD, 200);
    let wrong = Client::register_scenario(dir, "wrong-password", 401);

    assert!(
        good.sipp(dir, &right, 5070, 3, 3, 20),
        "the good client cannot register"
    );
    let good_before = bed.requests_from(&good.addr);
    assert!(good_before >= 6, "3 registrations, 2 requests each");

    // The bad client: 6 registrations with a wrong password, 2 a second,
    // while the good one registers 10 times beside it. Each is one
    // `auth failed:` line (the first, unauthenticated request of each is
    // answered 401 and not logged).
    std::thread::scope(|sc| {
        let g = sc.spawn(|| good.sipp(dir, &right, 5071, 10, 2, 30));
        bad.sipp(dir, &wrong, 5072, 6, 2, 30);
        assert!(
            g.join().unwrap(),
            "the good client failed to register during the attack"
        );
    });
    let st = s.wait_jail("kamailio", "the bad client banned", |st| {
        banned_ips(st).contains(&bad.addr.as_str())
    });
    assert!(daemon.is_running(), "daemon died:\n{}", daemon.log());
    assert_eq!(banned_ips(&st), vec![bad.addr.as_str()], "{st:?}");
    assert!(st.total_failed >= 3, "banned after maxretry failures, at least: {st:?}");
    let log = bed.log_text();
    assert!(
        log.contains(&format!(
            "auth failed: REGISTER from sip:{USER}@{} (IP:{}:5072)",
            bad.server, bad.addr
        )),
        "Kamailio did not log the failure as the ruleset reads it:\n{log}"
    );
    assert!(
        !log.contains(&format!("(IP:{}:", good.addr)),
        "the good client was logged as failing:\n{log}"
    );

    // Banned: nothing of the bad client reaches Kamailio; the good client
    // still registers, every time.
    let bad_before = bed.requests_from(&bad.addr);
    assert!(
        !bad.sipp(dir, &wrong, 5073, 3, 3, 10),
        "the banned client's registrations got answers"
    );
    assert_eq!(
        bed.requests_from(&bad.addr),
        bad_before,
        "the banned client reached Kamailio"
    );
    assert!(
        good.sipp(dir, &right, 5074, 3, 3, 20),
        "the good client cannot register after the ban"
    );
    // 10 + 3 more registrations, 2 requests each (more only if SIPp had
    // to retransmit).
    assert!(
        bed.requests_from(&good.addr) >= good_before + 20 + 6,
        "every registration of the good client reached Kamailio"
    );
    assert_eq!(
        s.jail_status("kamailio").currently_failed,
        0,
        "{:?}",
        s.jail_status("kamailio")
    );
    assert!(daemon.stop(), "daemon did not exit cleanly on SIGTERM");
}

/// deploy/examples: the nftban configs load as `nftban run` would load
/// them (the relative `kamailio-scanners.yaml` included), and the example
/// ruleset's examples hold.
#[test]
fn example_sip_configs_load() {
    for name in ["nftban-kamailio.yaml", "nftban-asterisk.yaml"] {
        let path = examples().join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let config = Config::from_text(&path, &text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let sip = config
            .sip
            .unwrap_or_else(|| panic!("{name} turns the kernel meters on"));
        assert!(
            !config.sip_implicit_jail,
            "{name}: the meters' bans go to a jail of its own"
        );
        assert!(config.jails.iter().any(|j| j.name == sip.jail), "{name}");
    }
    let path = examples().join("kamailio-scanners.yaml");
    let rules = Ruleset::parse("kamailio-scanners.yaml", &std::fs::read_to_string(&path).unwrap()).unwrap();
    let m = Matcher::new(&rules).unwrap();
    assert!(rules.examples.len() >= 5);
    for ex in &rules.examples {
        let got = match m.match_line(&ex.line) {
            LineMatch::Failure { addr, .. } => Some(addr.to_string()),
            _ => None,
        };
        assert_eq!(got, ex.host, "{}", ex.line);
    }
    // Its prefix is the shipped ruleset's: the same log forms, no other.
    let shipped = Ruleset::shipped("kamailio").unwrap();
    assert_eq!(rules.prefix, shipped.prefix);
}

/// The Kamailio snippet is what the bed includes, and `kamailio -c`
/// takes the bed's config (when Kamailio is installed).
#[test]
fn kamailio_example_config_parses() {
    let snippet = std::fs::read_to_string(examples().join("kamailio-nftban.cfg")).unwrap();
    for ua in ["friendly-scanner", "sipvicious", "sipcli", "VaxSIPUserAgent", "pplsip"] {
        assert!(snippet.contains(ua), "the snippet does not name {ua}");
    }
    if !installed("kamailio") {
        eprintln!("skipped kamailio -c: `kamailio` is not installed (apt-get install kamailio)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kamailio.cfg");
    std::fs::write(&cfg, kamailio_cfg(&dir.path().join("ctl"))).unwrap();
    let o = run(std::process::Command::new("kamailio").arg("-c").arg("-f").arg(&cfg));
    assert!(o.status.success(), "kamailio -c:\n{}", stderr(&o));
}
