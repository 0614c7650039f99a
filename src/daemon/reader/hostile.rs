//! Lines an attacker wrote, through the daemon's real reader: the file
//! tail cuts the file into lines and the reader matches them for a jail,
//! as `nftban run` does; what reaches the engine is compared with what the
//! matcher makes of each whole line.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::*;
use crate::matcher::{Matcher, Ruleset};
use crate::sources::file::{FileTail, StartAt};
use crate::sources::MAX_LINE;

/// What the daemon makes of a log holding `log`: the file read by the real
/// file tail, each line through the reader of one jail of `ruleset` (whose
/// findtime takes every line, dated or not). Returns the addresses of the
/// failures sent to the engine, in order, and the source's stats.
fn daemon_reads(ruleset: &str, log: &[u8]) -> (Vec<String>, Arc<SourceStats>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messages");
    std::fs::write(&path, log).unwrap();
    let m = Arc::new(Matcher::new(&Ruleset::shipped(ruleset).unwrap()).unwrap());
    let (tx, rx) = std::sync::mpsc::sync_channel(1024);
    let mut reader = Reader {
        matcher: SourceMatcher::new(vec![MatcherRef::Shared(m)], Zone::Local),
        jails: vec![JailRef {
            index: 0,
            name: ruleset.into(),
            findtime: Duration::from_secs(100 * 365 * 86_400),
            names: Arc::default(),
            resolve: None,
        }],
        outbox: Outbox::new(tx),
    };
    let stats = Arc::new(SourceStats::new(path.clone()));
    let mut tail = FileTail::new(&path, stats.clone());
    {
        let mut on_line = |l: &str| reader.line(&stats, l, None);
        tail.check(StartAt::Beginning, &mut on_line);
        tail.read_available(&mut on_line).unwrap();
    }
    reader.read_done(None);
    drop(reader);
    let mut out = Vec::new();
    for event in rx.try_iter() {
        if let Event::Lines { failures, .. } = event {
            out.extend(failures.iter().map(|f| crate::address::show(&f.net)));
        }
    }
    (out, stats)
}

/// Issue 13, item 1, as reported: a PJSIP From padded so that the old
/// 16 KiB cut fell right after a forged `' failed for '6.6.6.30:5060' ...
/// No matching endpoint found` banned 6.6.6.30, and the real source went
/// free; chan_sip's `Registration from` was open the same way.
#[test]
fn a_padded_sip_field_does_not_choose_the_ban() {
    let cases = [
        (
            "[2024-05-01 12:00:00] NOTICE[4242] res_pjsip/pjsip_distributor.c: Request 'INVITE' from '<sip:",
            "' failed for '6.6.6.30:5060' (callid: x) - No matching endpoint found",
            "@192.0.2.1>' failed for '198.51.100.40:5060' (callid: 1234) - No matching endpoint found",
            // The whole line has quotes in the From on both sides of an
            // address: ambiguous, so nobody.
            vec![],
        ),
        (
            "[2015-01-28 05:40:16] NOTICE[31015] chan_sip.c: Registration from '<sip:",
            "' failed for '6.6.6.31:5060' - Wrong password",
            "@example.com>' failed for '198.51.100.21:5060' - Wrong password",
            vec!["198.51.100.21".to_string()],
        ),
    ];
    for (head, forged, tail, want) in cases {
        let pad = "A".repeat(16 * 1024 - head.len() - forged.len());
        let line = format!("{head}{pad}{forged}{tail}\n");
        let (got, _) = daemon_reads("asterisk", line.as_bytes());
        assert_eq!(got, want, "{forged}");
    }
}

/// One attacker-controlled field of a shipped ruleset's line: the line is
/// `head`, the field, `tail`; the field is padding then `forged`, text
/// that would end the line naming another address if the line were cut
/// right after it.
struct Injection {
    ruleset: &'static str,
    head: &'static str,
    forged: &'static str,
    tail: &'static str,
    /// The source the service itself wrote.
    real: &'static str,
    /// What the line cut right after `forged` gives (the forged address
    /// where a cut lets the attacker choose; the real one where the address
    /// comes before any attacker text).
    cut_gives: &'static str,
}

/// One per shipped ruleset (two for asterisk, both reported); a test below
/// checks that none is missing.
const INJECTIONS: &[Injection] = &[
    Injection {
        ruleset: "asterisk",
        head: "[2024-05-01 12:00:00] NOTICE[4242] res_pjsip/pjsip_distributor.c: Request 'INVITE' from '<sip:",
        forged: "' failed for '6.6.6.30:5060' (callid: x) - No matching endpoint found",
        tail: "@192.0.2.1>' failed for '198.51.100.40:5060' (callid: 1234) - No matching endpoint found",
        real: "198.51.100.40",
        cut_gives: "6.6.6.30",
    },
    Injection {
        ruleset: "asterisk",
        head: "[2015-01-28 05:40:16] NOTICE[31015] chan_sip.c: Registration from '<sip:",
        forged: "' failed for '6.6.6.31:5060' - Wrong password",
        tail: "@example.com>' failed for '198.51.100.21:5060' - Wrong password",
        real: "198.51.100.21",
        cut_gives: "6.6.6.31",
    },
    Injection {
        ruleset: "sshd",
        head: "Nov 25 04:00:00 host sshd[1234]: Failed password for invalid user ",
        forged: " from 6.6.6.1 port 22 ssh2",
        tail: " from 198.51.100.1 port 4242 ssh2",
        real: "198.51.100.1",
        cut_gives: "6.6.6.1",
    },
    Injection {
        ruleset: "sshd-aggressive",
        head: "Nov 25 04:00:00 host sshd[1234]: Invalid user ",
        forged: " from 6.6.6.2 port 22",
        tail: " from 198.51.100.2 port 4242",
        real: "198.51.100.2",
        cut_gives: "6.6.6.2",
    },
    Injection {
        ruleset: "dovecot",
        head: "Nov 25 04:00:00 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<",
        forged: ">, method=PLAIN, rip=6.6.6.3, lip=192.0.2.1",
        tail: ">, method=PLAIN, rip=198.51.100.3, lip=192.0.2.1, mpid=0, TLS, session=<abc>",
        real: "198.51.100.3",
        cut_gives: "6.6.6.3",
    },
    Injection {
        ruleset: "freeswitch",
        head: "2026-11-25 04:00:00.123456 [WARNING] sofia_reg.c:1707 SIP auth failure (REGISTER) on sofia profile 'internal' for [",
        forged: "] from ip 6.6.6.4",
        tail: "@192.0.2.1] from ip 198.51.100.4",
        real: "198.51.100.4",
        cut_gives: "6.6.6.4",
    },
    Injection {
        ruleset: "kamailio",
        head: "Nov 25 04:00:00 sip /usr/sbin/kamailio[4242]: ALERT: <script>: ALERT: pike blocking REGISTER from sip:",
        forged: "@x (IP:6.6.6.5:5060)",
        tail: "@example.com (IP:198.51.100.5:5060)",
        real: "198.51.100.5",
        cut_gives: "6.6.6.5",
    },
    Injection {
        ruleset: "nginx",
        head: "2026/11/25 04:00:00 [error] 1234#1234: *5 user \"",
        forged: "\": password mismatch, client: 6.6.6.6, server: s, request: \"GET / HTTP/1.1\"",
        tail: "\": password mismatch, client: 198.51.100.6, server: example.com, request: \"GET /private/ HTTP/1.1\", host: \"example.com\"",
        real: "198.51.100.6",
        cut_gives: "6.6.6.6",
    },
    Injection {
        ruleset: "postfix",
        head: "Nov 25 04:00:00 mx postfix/smtpd[2001]: improper command pipelining after EHLO from unknown[198.51.100.7]: ",
        forged: "warning: unknown[6.6.6.7]: SASL LOGIN authentication failed: x",
        tail: " QUIT",
        real: "198.51.100.7",
        cut_gives: "198.51.100.7",
    },
];

impl Injection {
    /// The line with the field padded so that `forged` ends `cut` bytes
    /// into it.
    fn forged_ends_at(&self, cut: usize) -> String {
        let pad = "A".repeat(cut - self.head.len() - self.forged.len());
        format!("{}{pad}{}{}", self.head, self.forged, self.tail)
    }

    /// The line with the field padded to make it `len` bytes long.
    fn of_length(&self, len: usize) -> String {
        self.forged_ends_at(len - self.tail.len())
    }
}

/// What the matcher makes of `line` whole.
fn whole_line(m: &Matcher, line: &str) -> Option<String> {
    m.match_line(line).failure_net().map(|n| crate::address::show(&n))
}

/// Every shipped ruleset, its attacker's field carrying a forged end:
/// padded so a cut at the old 16 KiB limit, or at the new limit (less one,
/// at it, more one), falls right after the forgery; and padded to make the
/// whole line just under, at and just over the limit. Through the daemon's
/// reader the forged address is never the result: a line within the limit
/// gives what its whole gives (the real source, or nobody where the whole
/// is ambiguous), a longer one gives nothing and is counted.
#[test]
fn no_shipped_ruleset_takes_a_forged_end() {
    let old_cut = 16 * 1024;
    for inj in INJECTIONS {
        let m = Matcher::new(&Ruleset::shipped(inj.ruleset).unwrap()).unwrap();
        let cut = inj.forged_ends_at(old_cut);
        let cut = &cut[..old_cut];
        assert_eq!(
            whole_line(&m, cut).as_deref(),
            Some(inj.cut_gives),
            "{}: the cut line is not what the test means it to be: {}",
            inj.ruleset,
            &cut[cut.len() - 120..]
        );
        let lines = [
            inj.forged_ends_at(old_cut),
            inj.forged_ends_at(MAX_LINE - 1),
            inj.forged_ends_at(MAX_LINE),
            inj.forged_ends_at(MAX_LINE + 1),
            inj.of_length(MAX_LINE - 1),
            inj.of_length(MAX_LINE),
            inj.of_length(MAX_LINE + 1),
        ];
        let mut want = Vec::new();
        let mut over = 0;
        for line in &lines {
            if line.len() > MAX_LINE {
                over += 1;
                continue;
            }
            let got = whole_line(&m, line);
            assert!(
                got.is_none() || got.as_deref() == Some(inj.real),
                "{}: the whole line gives {got:?}",
                inj.ruleset
            );
            want.extend(got);
        }
        let log = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        let (got, stats) = daemon_reads(inj.ruleset, log.as_bytes());
        assert_eq!(got, want, "{}", inj.ruleset);
        assert!(got.iter().all(|a| a == inj.real), "{}: {got:?}", inj.ruleset);
        assert_eq!(stats.truncated.load(Ordering::Relaxed), over, "{}", inj.ruleset);
        assert_eq!(stats.lines.load(Ordering::Relaxed), lines.len() as u64);
    }
}

/// Every shipped ruleset has its injection case above.
#[test]
fn every_shipped_ruleset_has_an_injection_case() {
    for (name, _) in crate::matcher::ruleset::SHIPPED {
        assert!(
            INJECTIONS.iter().any(|i| i.ruleset == *name),
            "no injection case for the shipped ruleset {name}"
        );
    }
}

/// `nftban test` and the daemon never disagree on a line: the same padded
/// lines (the injection cases, and invalid UTF-8 inside and outside a line
/// over the limit) through the daemon's reader and through the scan give
/// the same lines, the same over-long lines skipped, the same matches and
/// the same failures of the same addresses.
#[test]
fn nftban_test_classifies_long_lines_as_the_daemon() {
    use std::collections::BTreeMap;
    for inj in INJECTIONS {
        let mut log = Vec::new();
        // With CRLF endings: the `\r` counts, so the second line is at
        // the limit and the third one byte over it.
        for line in [
            inj.forged_ends_at(16 * 1024),
            inj.of_length(MAX_LINE - 1),
            inj.of_length(MAX_LINE),
            inj.of_length(MAX_LINE + 1),
            inj.forged_ends_at(MAX_LINE),
        ] {
            log.extend_from_slice(line.as_bytes());
            log.extend_from_slice(b"\r\n");
        }
        let mut bad = inj.of_length(MAX_LINE + 5).into_bytes();
        bad[inj.head.len() + 3] = 0xff;
        log.extend_from_slice(&bad);
        log.extend_from_slice(b"\nbad \xfe line\n");
        let (failures, stats) = daemon_reads(inj.ruleset, &log);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, &log).unwrap();
        let m = Matcher::new(&Ruleset::shipped(inj.ruleset).unwrap()).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let report = crate::scan::scan_file(&m, &file, crate::scan::Keep::default(), &()).unwrap();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(report.lines, load(&stats.lines), "{}", inj.ruleset);
        assert_eq!(report.too_long, load(&stats.truncated), "{}", inj.ruleset);
        assert_eq!(report.too_long, 4, "{}", inj.ruleset);
        assert_eq!(report.invalid_utf8, load(&stats.invalid_utf8), "{}", inj.ruleset);
        assert_eq!(report.matched + report.ignored, load(&stats.matched), "{}", inj.ruleset);
        let mut daemon: BTreeMap<String, u64> = BTreeMap::new();
        for a in failures {
            *daemon.entry(a).or_default() += 1;
        }
        assert_eq!(report.hosts, daemon, "{}", inj.ruleset);
    }
}
