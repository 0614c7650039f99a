use super::*;

fn shipped(name: &str) -> Matcher {
    Matcher::new(&Ruleset::shipped(name).unwrap()).unwrap()
}

/// Every example of every shipped ruleset yields its expected host, so a
/// ruleset cannot ship with a broken rule or without examples.
#[test]
fn every_shipped_example_holds() {
    for (name, _) in ruleset::SHIPPED {
        let rs = Ruleset::shipped(name).unwrap();
        assert!(rs.examples.len() >= 5, "{name}: too few examples");
        let mut modes: Vec<Option<&str>> = vec![None];
        modes.extend(rs.modes.keys().map(|k| Some(k.as_str())));
        for mode in modes {
            let m = Matcher::new(&rs.with_mode(mode).unwrap()).unwrap();
            for ex in &rs.examples {
                // An example holds in its own mode; one of the base rules
                // that names a host holds in every mode (modes add rules).
                let applies = ex.mode.as_deref() == mode || (ex.mode.is_none() && ex.host.is_some());
                if !applies {
                    continue;
                }
                let got = match m.match_line(&ex.line) {
                    LineMatch::Failure { addr, .. } => Some(addr),
                    _ => None,
                };
                let want = ex.host.as_deref().map(|h| h.parse::<IpAddr>().unwrap());
                assert_eq!(got, want, "{name} (mode {mode:?}): example line: {}", ex.line);
            }
        }
    }
}

/// Seed FAQ rows 3, 4 and 8, verbatim.
#[test]
fn seed_faq_lines_are_caught() {
    let m = shipped("asterisk");
    let cases = [
        ("Call from '' (195.154.134.116:5071) to extension '8011441295298642' rejected because extension not found in context 'public'.", "195.154.134.116"),
        ("[2015-01-28 05:40:16] NOTICE[-1] Ext. 9015448702956577: Incoming SIP connection from unknown peer failed for 31.3.244.234 - Unknown connection from peer", "31.3.244.234"),
    ];
    for (line, host) in cases {
        assert_eq!(
            m.match_line(line),
            LineMatch::Failure {
                rule: m.match_rule(line).unwrap(),
                addr: host.parse().unwrap()
            },
            "{line}"
        );
    }
}

/// Seed FAQ row 4: the regex given there works as a command-line rule.
#[test]
fn seed_faq_regex_works_on_the_command_line() {
    let rule =
        "NOTICE.* .*: Incoming SIP connection from unknown peer failed for <HOST> - Unknown connection from peer";
    let m = Matcher::new(&Ruleset::from_regex(rule)).unwrap();
    let line = "[2015-01-28 05:40:16] NOTICE[-1] Ext. 9015448702956577: Incoming SIP connection from unknown peer failed for 31.3.244.234 - Unknown connection from peer";
    assert_eq!(
        m.match_line(line),
        LineMatch::Failure {
            rule: 0,
            addr: "31.3.244.234".parse().unwrap()
        }
    );
}

#[test]
fn hostnames_are_not_addresses() {
    let m = Matcher::new(&Ruleset::from_regex("login failed from <HOST>$")).unwrap();
    assert_eq!(
        m.match_line("login failed from evil.example.com"),
        LineMatch::NotAnAddress {
            rule: 0,
            host: "evil.example.com".into()
        }
    );
    assert_eq!(m.match_line("login ok"), LineMatch::Missed);
}

#[test]
fn ignoreregex_wins() {
    let mut rs = Ruleset::from_regex("fail from <HOST>");
    rs.ignoreregex = vec!["from 192\\.0\\.2\\.".into()];
    let m = Matcher::new(&rs).unwrap();
    assert_eq!(m.match_line("fail from 192.0.2.1"), LineMatch::Ignored);
    assert!(matches!(
        m.match_line("fail from 198.51.100.1"),
        LineMatch::Failure { .. }
    ));
}

#[test]
fn bad_rules_are_named() {
    let err = Matcher::new(&Ruleset::from_regex("no tag here"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("failregex[0]") && err.contains("no <HOST>"), "{err}");
    let err = Matcher::new(&Ruleset::from_regex("(<HOST>")).unwrap_err().to_string();
    assert!(err.contains("failregex[0]"), "{err}");
}

/// A bad regex in a ruleset file is reported at its file, line and column.
#[test]
fn bad_rule_in_a_file_has_line_and_column() {
    let text = "name: t\nfailregex:\n  - \"ok <HOST>$\"\n  - \"bad (<HOST>\"\n";
    let rs = Ruleset::parse("t.yaml", text).unwrap();
    let err = Matcher::new(&rs).unwrap_err();
    assert_eq!((err.origin.as_str(), err.at), ("t.yaml", Some((4, 3))), "{err}");
    assert!(err.to_string().starts_with("t.yaml:4:3: failregex[1]: "), "{err}");
    let err = Ruleset::parse("t.yaml", "name: t\nfailregex: [a]\nfailregx: []\n").unwrap_err();
    assert!(err.at.is_some() && err.message.contains("unknown field"), "{err}");
}

/// Modes add rules; an unknown mode is an error naming the known ones.
#[test]
fn modes_add_rules() {
    let text = "name: t\nfailregex: [\"fail <HOST>$\"]\nmodes:\n  aggressive:\n    failregex: [\"probe <HOST>$\"]\n";
    let rs = Ruleset::parse("t.yaml", text).unwrap();
    let base = Matcher::new(&rs).unwrap();
    let aggr = Matcher::new(&rs.with_mode(Some("aggressive")).unwrap()).unwrap();
    assert_eq!(base.match_line("probe 192.0.2.1"), LineMatch::Missed);
    assert!(matches!(
        aggr.match_line("probe 192.0.2.1"),
        LineMatch::Failure { rule: 1, .. }
    ));
    assert!(matches!(
        aggr.match_line("fail 192.0.2.1"),
        LineMatch::Failure { rule: 0, .. }
    ));
    assert!(rs.with_mode(Some("normal")).is_ok());
    assert!(rs.with_mode(Some("nope")).unwrap_err().message.contains("aggressive"));
}

/// The prefilter dismisses lines without it before any regex.
#[test]
fn prefilter_gates_lines() {
    let mut rs = Ruleset::from_regex("fail (?:x|y) <HOST>$");
    rs.prefilter = Some("svc[".into());
    let m = Matcher::new(&rs).unwrap();
    assert_eq!(m.match_line("fail x 192.0.2.1"), LineMatch::Missed);
    assert!(matches!(
        m.match_line("svc[1] fail x 192.0.2.1"),
        LineMatch::Failure { .. }
    ));
}

/// Jails sharing a source get one answer each from one pass; a rule
/// without a literal is still tried.
#[test]
fn one_pass_for_several_jails() {
    let a = Matcher::new(&Ruleset::from_regex("Failed password for .* from <HOST> port \\d+$")).unwrap();
    let b = Matcher::new(&Ruleset::from_regex("(?i)FAILED PASSWORD.* (?i:from) <HOST> ")).unwrap();
    assert_eq!(b.literals(), vec![Vec::<Vec<String>>::new()]);
    assert_eq!(
        a.literals(),
        vec![vec![
            vec!["Failed password for ".to_string()],
            vec![" from ".to_string()],
            vec![" port ".to_string()]
        ]]
    );
    let mut sm = SourceMatcher::new(vec![MatcherRef::Borrowed(&a), MatcherRef::Borrowed(&b)], Zone::Utc);
    sm.match_line("Failed password for root from 192.0.2.9 port 22", SystemTime::now());
    let want = LineMatch::Failure {
        rule: 0,
        addr: "192.0.2.9".parse().unwrap(),
    };
    assert_eq!(sm.results(), &[want.clone(), want]);
    sm.match_line("nothing here", SystemTime::now());
    assert_eq!(sm.results(), &[LineMatch::Missed, LineMatch::Missed]);
    assert!(!sm.any_match());
}

/// A fail2ban filter with prefregex and common.conf, read from tests/data.
#[test]
fn fail2ban_conf_is_read() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fail2ban");
    let imp = fail2ban::load(&dir.join("dropbear.conf")).unwrap();
    assert_eq!(imp.ruleset.failregex.len(), 3);
    assert!(imp.skipped.is_empty(), "{:?}", imp.skipped);
    let m = Matcher::new(&imp.ruleset).unwrap();
    let line = "Mar 24 15:25:51 buffalo1 dropbear[4092]: bad password attempt for 'root' from 198.51.100.7:60123";
    assert_eq!(
        m.match_line(line),
        LineMatch::Failure {
            rule: 1,
            addr: "198.51.100.7".parse().unwrap()
        }
    );
}

/// Literals that could overlap are shortened or merged so one
/// non-overlapping scan sees them all; every rule stays reachable.
#[test]
fn literals_are_made_overlap_free() {
    let mut lits: Vec<Vec<u8>> = vec![
        b"Registration from '".to_vec(),
        b"' failed for '".to_vec(),
        b"failed for".to_vec(),
    ];
    let mut slots: Vec<Vec<usize>> = vec![vec![0], vec![1], vec![2]];
    assert!(super::make_overlap_free(&mut lits, &mut slots));
    for (i, a) in lits.iter().enumerate() {
        for (j, b) in lits.iter().enumerate() {
            assert!(i == j || super::overlap(a, b).is_none(), "{lits:?}");
        }
    }
    let mut all: Vec<usize> = slots.concat();
    all.sort();
    assert_eq!(all, vec![0, 1, 2]);
    // The asterisk ruleset still finds every example through the shortened literals.
    let m = shipped("asterisk");
    let line = "[2015-01-28 05:40:16] NOTICE[31015] chan_sip.c: Registration from '<sip:1005@example.com>' failed for '2001:db8::22' - Wrong password";
    assert!(matches!(m.match_line(line), LineMatch::Failure { .. }));
    // A line with the first string of a rule but not its others runs no regex
    // and is missed.
    assert_eq!(
        m.match_line(
            "[2015-01-28 05:40:16] NOTICE[2116] chan_sip.c: Registration from '<sip:100@192.0.2.1>' succeeded"
        ),
        LineMatch::Missed
    );
}

/// `sshd-aggressive` is `sshd` plus probe rules: the shared part must stay
/// identical, so a fix to `sshd` cannot be forgotten in the other.
#[test]
fn sshd_aggressive_extends_sshd() {
    let base = Ruleset::shipped("sshd").unwrap();
    let aggr = Ruleset::shipped("sshd-aggressive").unwrap();
    assert_eq!(aggr.prefix, base.prefix);
    assert_eq!(aggr.ignoreregex, base.ignoreregex);
    assert!(aggr.failregex.len() > base.failregex.len());
    assert_eq!(aggr.failregex[..base.failregex.len()], base.failregex[..]);
    let probe = "Jan 28 05:40:16 host sshd[1234]: banner exchange: Connection from 192.0.2.9 port 4444: invalid format";
    assert_eq!(shipped("sshd").match_line(probe), LineMatch::Missed);
    assert!(matches!(
        shipped("sshd-aggressive").match_line(probe),
        LineMatch::Failure { .. }
    ));
}

/// A ruleset's own strftime datepattern dates its lines (so the daemon's
/// findtime applies to a log no named format reads); a pattern nftban
/// cannot read is an error at its file, line and column.
#[test]
fn custom_datepattern_in_a_ruleset() {
    let text = "name: web\ndatepattern: [\"%d/%b/%Y:%H:%M:%S %z\"]\nprefix: '\\S+ \\S+ '\nfailregex: [\"<HOST> auth failed$\"]\n";
    let rs = Ruleset::parse("web.yaml", text).unwrap();
    let m = Matcher::new(&rs).unwrap();
    assert_eq!(m.dates, Some(vec![DateFormat::Custom]));
    let mut sm = SourceMatcher::new(vec![MatcherRef::Borrowed(&m)], Zone::Utc);
    let line = "25/Nov/2026:04:05:06 +0100 192.0.2.7 auth failed";
    let found = sm.parse_date(line, std::time::SystemTime::now()).expect("date read");
    assert_eq!(found.format, DateFormat::Custom);
    let want = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_575_906);
    assert_eq!(found.time, want);
    // Named formats are not tried when the list names only a pattern.
    assert!(sm
        .parse_date("[2026-11-25 04:05:06] x", std::time::SystemTime::now())
        .is_none());

    let bad = "name: web\nfailregex: [\"<HOST> x\"]\ndatepattern:\n  - asterisk\n  - \"%Y-%m-%d %Q\"\n";
    let err = Ruleset::parse("web.yaml", bad).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("web.yaml:4:3: datepattern: `%Y-%m-%d %Q`: "),
        "{err}"
    );
    assert!(err.message.contains("%Q is not supported"), "{err}");
    let err = Ruleset::parse("web.yaml", "name: w\nfailregex: [\"<HOST>\"]\ndatepattern: [apache]\n").unwrap_err();
    assert!(err.message.contains("unknown date format `apache`"), "{err}");
}

/// A log of every shipped ruleset's example lines, mixed with ordinary
/// lines, CRLF endings, empty lines and invalid UTF-8 (for scanning tests).
pub(crate) fn mixed_log() -> Vec<u8> {
    let mut examples = Vec::new();
    for (name, _) in crate::matcher::ruleset::SHIPPED {
        examples.extend(Ruleset::shipped(name).unwrap().examples.into_iter().map(|e| e.line));
    }
    let mut log = Vec::new();
    for i in 0..7 {
        for (j, e) in examples.iter().enumerate() {
            log.extend_from_slice(
                format!("Jan  1 00:00:{:02} host cron[{i}{j}]: ordinary line {j}\n", j % 60).as_bytes(),
            );
            log.extend_from_slice(e.as_bytes());
            log.extend_from_slice(match (i + j) % 5 {
                0 => b"\r\n" as &[u8],
                1 => b"\n\n",
                2 => b" \xff\n",
                _ => b"\n",
            });
        }
    }
    log.extend_from_slice(examples[0].as_bytes()); // a last line without `\n`
    log
}

/// Whole-buffer scanning: every line [`SourceMatcher::next_candidate`]
/// passes over is `Missed` for every jail of every shipped ruleset (and
/// for all of them on one source), so skipping it changes no answer.
#[test]
fn lines_between_candidates_are_missed() {
    let log = mixed_log();
    let all: Vec<Matcher> = crate::matcher::ruleset::SHIPPED
        .iter()
        .map(|(n, _)| shipped(n))
        .collect();
    let mut sources: Vec<SourceMatcher> = all.iter().map(SourceMatcher::single).collect();
    sources.push(SourceMatcher::new(
        all.iter().map(MatcherRef::Borrowed).collect(),
        Zone::Local,
    ));
    let now = std::time::SystemTime::now();
    let body = log.strip_suffix(b"\n").unwrap_or(&log);
    for sm in &mut sources {
        assert!(sm.skips_lines());
        let mut candidates = std::collections::HashSet::new();
        let mut from = 0;
        while let Some((s, e)) = sm.next_candidate(&log, from) {
            assert!(s >= from && e >= s && (e == log.len() || log[e] == b'\n'));
            assert!(s == 0 || log[s - 1] == b'\n');
            candidates.insert(s);
            from = e + 1;
        }
        let (mut start, mut matched, mut skipped) = (0, 0, 0);
        for line in body.split(|&b| b == b'\n') {
            let text = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)).into_owned();
            sm.match_line(&text, now);
            if candidates.contains(&start) {
                matched += usize::from(sm.any_match());
            } else {
                skipped += 1;
                assert!(!sm.any_match(), "skipped but matches: {text}");
            }
            start += line.len() + 1;
        }
        assert!(matched > 0 && skipped > matched, "{matched} matched, {skipped} skipped");
    }
}

/// Captures on the rule's tail after the prefix's first match give exactly
/// what the full `^(?:PREFIX)RULE` regex gives, on every line of every
/// shipped ruleset's examples (incl. the injection ones) and the mixed log.
#[test]
fn tail_captures_equal_full_regex_captures() {
    let log = mixed_log();
    let now = std::time::SystemTime::now();
    let mut tails = 0;
    for (name, _) in crate::matcher::ruleset::SHIPPED {
        let fast = shipped(name);
        let mut full = shipped(name);
        for r in &mut full.rules {
            tails += usize::from(r.tail.is_some());
            r.tail = None;
        }
        let (mut a, mut b) = (SourceMatcher::single(&fast), SourceMatcher::single(&full));
        for line in log.split(|&x| x == b'\n') {
            let text = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)).into_owned();
            a.match_line(&text, now);
            b.match_line(&text, now);
            assert_eq!(a.results(), b.results(), "{name}: {text}");
        }
    }
    assert!(tails > 20, "the shipped rulesets use tails ({tails})");
}
