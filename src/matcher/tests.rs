use super::*;

fn shipped(name: &str) -> Matcher {
    Matcher::new(&Ruleset::shipped(name).unwrap()).unwrap()
}

/// The matcher of a ruleset given as YAML text.
fn matcher_of(yaml: &str) -> Matcher {
    Matcher::new(&Ruleset::parse("t.yaml", yaml).unwrap()).unwrap()
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
                addr: host.parse().unwrap(),
                prefix: None,
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
            addr: "31.3.244.234".parse().unwrap(),
            prefix: None,
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

/// A rule that does not parse says what is wrong with it, not only that
/// it is wrong ("error parsing pattern 0"), and not by quoting the rule
/// with its tags expanded.
#[test]
fn a_bad_rule_says_what_is_wrong() {
    for (rule, want) in [
        ("Bad (thing from <HOST>", "failregex[0]: unclosed group"),
        (
            "Login (?!x)failed from <HOST>",
            "failregex[0]: look-around is not supported by Rust's regex",
        ),
        (
            r"(a)\1 from <HOST>",
            "failregex[0]: backreferences are not supported by Rust's regex",
        ),
        ("a{2,1} from <HOST>", "failregex[0]: invalid repetition count range"),
    ] {
        let err = Matcher::new(&Ruleset::from_regex(rule)).unwrap_err().to_string();
        assert!(err.contains(want), "{rule}: {err}");
        assert!(!err.contains('\n') && err.len() < 200, "{rule}: {err}");
    }
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

/// A rule whose automata would pass [`RULE_LIMIT`] is refused at its
/// file, line and column, with what to write instead; the same rule with
/// ASCII classes compiles small.
#[test]
fn a_rule_too_big_is_refused_with_what_to_do() {
    let text = "name: t\nfailregex:\n  - 'ok <HOST>$'\n  - '(?u:\\w){100}<HOST>$'\n";
    let err = Matcher::new(&Ruleset::parse("t.yaml", text).unwrap()).unwrap_err();
    let shown = err.to_string();
    assert!(shown.starts_with("t.yaml:4:3: failregex[1]: "), "{shown}");
    assert!(
        shown.contains("more than 2 MiB") && shown.contains("(?-u:\\w)"),
        "{shown}"
    );
    let m = matcher_of("name: t\nfailregex:\n  - '(?-u:\\w){100}<HOST>$'\n");
    assert!(m.rules[0].memory() < 256 << 10, "{}", m.rules[0].memory());
}

/// Rules each under [`RULE_LIMIT`] but together over [`RULESET_BUDGET`]:
/// the ruleset is refused at the rule that passes the budget.
#[test]
fn rules_together_over_the_budget_are_refused_at_the_rule_that_passes_it() {
    let one = matcher_of("name: t\nfailregex:\n  - '(?u:\\w){20}<HOST> 0$'\n");
    let each = one.rules[0].memory();
    assert!(each > 1 << 20 && each < RULE_LIMIT, "{each}");
    let rules: String = (0..32).map(|i| format!("\n  - '(?u:\\w){{20}}<HOST> {i}$'")).collect();
    let text = format!("name: t\nfailregex:{rules}\n");
    let err = Matcher::new(&Ruleset::parse("t.yaml", &text).unwrap()).unwrap_err();
    let over = RULESET_BUDGET / each; // index of the first rule past the budget
    assert_eq!(err.at, Some((3 + over, 3)), "{err}");
    assert!(err.message.starts_with(&format!("failregex[{over}]: ")), "{err}");
    assert!(err.message.contains("16 MiB a ruleset may take"), "{err}");
}

/// Every shipped ruleset is far below the bounds: each rule a small part
/// of [`RULE_LIMIT`], each ruleset of [`RULESET_BUDGET`].
#[test]
fn shipped_rulesets_are_far_below_the_memory_bounds() {
    for (name, _) in ruleset::SHIPPED {
        let m = shipped(name);
        let rules: Vec<usize> = m.rules.iter().map(Rule::memory).collect();
        let total: usize = rules.iter().sum();
        assert!(rules.iter().all(|&r| r < RULE_LIMIT / 16), "{name}: {rules:?}");
        assert!(total < RULESET_BUDGET / 8, "{name}: {total}");
    }
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
        prefix: None,
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
            addr: "198.51.100.7".parse().unwrap(),
            prefix: None,
        }
    );
}

/// Literals that overlap in a line (one inside another, or one's end the
/// other's start) are all seen, so every rule stays reachable; a line with
/// a rule's gate literal but not its other literals runs no regex.
#[test]
fn overlapping_literals_are_all_seen() {
    let m = matcher_of(
        "name: o\nfailregex:\n  - \"^Registration from '.*' failed for '<HOST>' - Wrong password$\"\n  - \"^Registration from 'x' failed for <HOST>$\"\n  - \"stration from 'x' failed for <HOST>$\"\n",
    );
    let mut sm = SourceMatcher::single(&m);
    let now = std::time::SystemTime::now();
    // Rule 1's literal holds rule 2's, which starts inside rule 0's.
    sm.match_line("Registration from 'x' failed for 192.0.2.1", now);
    assert_eq!(sm.cand, vec![false, true, true]);
    assert_eq!(
        sm.results()[0],
        LineMatch::Failure {
            rule: 1,
            addr: "192.0.2.1".parse().unwrap(),
            prefix: None,
        }
    );
    let m = shipped("asterisk");
    let line = "[2015-01-28 05:40:16] NOTICE[31015] chan_sip.c: Registration from '<sip:1005@example.com>' failed for '2001:db8::22' - Wrong password";
    assert!(matches!(m.match_line(line), LineMatch::Failure { .. }));
    let mut sm = SourceMatcher::single(&m);
    sm.match_line(
        "[2015-01-28 05:40:16] NOTICE[2116] chan_sip.c: Registration from '<sip:100@192.0.2.1>' succeeded",
        now,
    );
    assert_eq!(sm.results(), &[LineMatch::Missed]);
    // Only rules cheap to try are tried on it: the others lack their literals.
    assert!(sm.cand.iter().zip(&sm.cheap).all(|(c, cheap)| !c || *cheap));
    assert!(sm.cand.iter().any(|c| !c));
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

/// Without captures (the rules split at `<HOST>`, see [`split`]) every
/// shipped ruleset classifies every line of the mixed log as with captures
/// only.
#[test]
fn split_equals_captures_on_the_mixed_log() {
    let log = mixed_log();
    let now = std::time::SystemTime::now();
    let mut splits = 0;
    for (name, _) in crate::matcher::ruleset::SHIPPED {
        let fast = shipped(name);
        let mut slow = shipped(name);
        for r in &mut slow.rules {
            splits += usize::from(r.split.is_some());
            r.split = None;
        }
        let (mut a, mut b) = (SourceMatcher::single(&fast), SourceMatcher::single(&slow));
        for line in log.split(|&x| x == b'\n') {
            let text = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)).into_owned();
            a.match_line(&text, now);
            b.match_line(&text, now);
            assert_eq!(a.results(), b.results(), "{name}: {text}");
        }
    }
    assert!(splits > 50, "the shipped rulesets split ({splits})");
}

/// The shipped rulesets take all three ways to learn which rules to try on
/// a line holding a literal of the gate (so the tests over all of them cover
/// each): all rules, each cheap to try (sshd); the cheap ones plus a SIMD
/// search per literal set of the others (asterisk); a walk of the line
/// through the literal table when those sets are many.
#[test]
fn every_way_to_pick_candidates_is_used() {
    let mut ways = std::collections::BTreeMap::new();
    for (name, _) in crate::matcher::ruleset::SHIPPED {
        let m = shipped(name);
        let s = SourceMatcher::single(&m);
        assert!(s.gate.is_some(), "{name}: every shipped rule has literals");
        let way = match (s.literals.is_some(), s.checks.is_empty()) {
            (false, true) => "all cheap",
            (false, false) => "cheap and checks",
            (true, true) => "table",
            (true, false) => panic!("{name}: both a table and checks"),
        };
        ways.insert(*name, way);
    }
    assert_eq!(ways["sshd"], "all cheap");
    assert_eq!(ways["asterisk"], "cheap and checks");
    assert!(ways.values().any(|w| *w == "table"), "{ways:?}");
}

/// Text an attacker can put into a field (user name, SIP From display
/// name, extension, Call-ID, URI): addresses with the words that follow
/// the real one in some rule, quotes, ports, brackets.
const DECOYS: &[&str] = &[
    " from 203.0.113.9 port 22 ssh2",
    " from 203.0.113.9",
    " user x from [2001:db8::9] port 22",
    "' failed for '203.0.113.9' - Wrong password",
    "' failed for '203.0.113.9:5060' (callid: x) - Failed to authenticate",
    " (203.0.113.9:5060) to extension 'x' rejected because extension not found in context 'p'.",
    "[2001:db8::9]:5060",
    "2001:db8::9",
    "203.0.113.9",
    ",RemoteAddress=\"IPV4/UDP/203.0.113.9/5060\"",
    " port 22",
    " [preauth]",
    "'",
    "\"",
    " - Unknown connection from peer",
    "host.example.com",
    ":5060",
    " ",
];

/// Per shipped ruleset, a matcher for each of its modes and its example
/// lines; last, a few rules that are not anchored at the line start
/// (searched for their leftmost match), with every example.
fn rule_matchers() -> Vec<(Vec<Matcher>, Vec<String>)> {
    let mut out = Vec::new();
    let mut all = Vec::new();
    for (name, _) in ruleset::SHIPPED {
        let rs = Ruleset::shipped(name).unwrap();
        let mut ms = vec![Matcher::new(&rs).unwrap()];
        for mode in rs.modes.keys() {
            ms.push(Matcher::new(&rs.with_mode(Some(mode)).unwrap()).unwrap());
        }
        let lines: Vec<String> = rs.examples.into_iter().map(|e| e.line).collect();
        all.extend(lines.iter().cloned());
        out.push((ms, lines));
    }
    let unanchored = [
        "NOTICE.* .*: Incoming SIP connection from unknown peer failed for <HOST> - Unknown connection from peer",
        "from <HOST>",
        "user .* from <HOST>(?: port \\d+)?",
        "(?:failed|rejected) for '?<HOST>'?",
    ];
    out.push((
        unanchored
            .iter()
            .map(|re| Matcher::new(&Ruleset::from_regex(re)).unwrap())
            .collect(),
        all,
    ));
    out
}

/// Checks one line against every rule: [`Matcher::captures`] (the host
/// without captures when the line splits one way, else captures) gives
/// exactly the host group of the plain regex's captures. Counts in `seen`
/// what the split said: [At, NoMatch, Unsure].
fn check_host_span(ms: &[Matcher], caches: &mut [Vec<Scratch>], line: &[u8], seen: &mut [usize; 3]) {
    for (m, scratch) in ms.iter().zip(caches.iter_mut()) {
        let mut prefix = m.prefix.as_ref().map(|p| p.cache());
        for ((rule, scratch), source) in m.rules.iter().zip(scratch.iter_mut()).zip(&m.sources) {
            if let Some(p) = prefix.as_mut() {
                p.forget();
            }
            let mut caps = rule.regex.create_captures();
            rule.regex.captures(line, &mut caps);
            let want = caps
                .is_match()
                .then(|| caps.get_group_by_name(HOST_GROUP).map_or((0, 0), |g| (g.start, g.end)));
            let got = m.captures(rule, line, &mut prefix, scratch).map(|(s, e, _)| (s, e));
            assert_eq!(got, want, "{}: {}\n{}", m.name, source, String::from_utf8_lossy(line));
            if let Some(p) = prefix.as_mut() {
                p.forget();
            }
            match m.split_host(rule, line, &mut prefix, scratch) {
                Some(split::Host::At(s, e)) => {
                    assert_eq!(want, Some((s, e)));
                    seen[0] += 1;
                }
                Some(split::Host::NoMatch) => {
                    assert_eq!(want, None);
                    seen[1] += 1;
                }
                Some(split::Host::Unsure) => seen[2] += 1,
                None => {}
            }
        }
    }
}

/// The host found without captures is the host of the full regex's
/// captures, for every rule, on every example line with decoys put at
/// every space and quote, and with the rest of the line repeated there
/// (a field that mimics what follows it). Most lines take the fast path;
/// lines that split several ways go to captures.
#[test]
fn host_without_captures_equals_captures_on_decoyed_examples() {
    let groups = rule_matchers();
    let rules = groups.iter().flat_map(|(ms, _)| ms).flat_map(|m| &m.rules);
    let (split, all) = (rules.clone().filter(|r| r.split.is_some()).count(), rules.count());
    assert!(split * 10 >= all * 9, "the rules split at <HOST>: {split} of {all}");
    let mut seen = [0; 3];
    for (ms, lines) in &groups {
        let mut caches: Vec<Vec<Scratch>> = ms.iter().map(|m| m.rules.iter().map(Rule::scratch).collect()).collect();
        for ex in lines {
            let b = ex.as_bytes();
            check_host_span(ms, &mut caches, b, &mut seen);
            let cuts: Vec<usize> = (0..b.len()).filter(|&i| matches!(b[i], b' ' | b'\'' | b'"')).collect();
            for (c, &k) in cuts.iter().enumerate() {
                // Each decoy at every third cut (all of them would take long in debug builds).
                for d in DECOYS.iter().skip(c % 3).step_by(3) {
                    check_host_span(ms, &mut caches, &[&b[..k], d.as_bytes(), &b[k..]].concat(), &mut seen);
                }
                check_host_span(ms, &mut caches, &[&b[..k], &b[k..], &b[k..]].concat(), &mut seen);
            }
        }
    }
    let [at, no, unsure] = seen;
    assert!(at > 10_000 && no > 10_000, "{seen:?}");
    assert!(unsure > 0 && unsure * 20 < at, "captures decide few lines: {seen:?}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
    /// The same on example lines edited at random: decoys inserted, parts
    /// repeated, cut or dropped, in sequence.
    #[test]
    fn host_without_captures_equals_captures_on_edited_lines(
        group in proptest::prelude::any::<proptest::sample::Index>(),
        ex in proptest::prelude::any::<proptest::sample::Index>(),
        edits in proptest::collection::vec((0u8..4, proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<proptest::sample::Index>(), 0..DECOYS.len()), 1..5),
    ) {
        use std::sync::OnceLock;
        static GROUPS: OnceLock<Vec<(Vec<Matcher>, Vec<String>)>> = OnceLock::new();
        let groups = GROUPS.get_or_init(rule_matchers);
        let (ms, examples) = group.get(groups);
        let mut line = ex.get(examples).as_bytes().to_vec();
        for (op, i, j, d) in edits {
            let (i, j) = (i.index(line.len() + 1), j.index(line.len() + 1));
            let (lo, hi) = (i.min(j), i.max(j));
            line = match op {
                0 => [&line[..i], DECOYS[d].as_bytes(), &line[i..]].concat(),
                1 => [&line[..hi], &line[lo..]].concat(),
                2 => line[..hi].to_vec(),
                _ => [&line[..lo], &line[hi..]].concat(),
            };
        }
        let mut caches: Vec<Vec<Scratch>> = ms.iter().map(|m| m.rules.iter().map(Rule::scratch).collect()).collect();
        check_host_span(ms, &mut caches, &line, &mut [0; 3]);
    }
}

/// `<SUBNET>` and `<ADDR>/<CIDR>` give the prefix to ban; a length its
/// family cannot have is no address; without a length it is the address.
#[test]
fn captured_prefix_lengths_are_kept() {
    for rule in ["blocked <SUBNET> by policy$", "blocked <ADDR>/<CIDR> by policy$"] {
        let m = Matcher::new(&Ruleset::from_regex(rule)).unwrap();
        let got = |line: &str| m.match_line(line);
        let net = |line: &str| got(line).failure_net().map(|n| n.to_string());
        assert_eq!(
            got("blocked 192.0.2.77/24 by policy"),
            LineMatch::Failure {
                rule: 0,
                addr: "192.0.2.77".parse().unwrap(),
                prefix: Some(24),
            },
            "{rule}"
        );
        assert_eq!(net("blocked 192.0.2.77/24 by policy").as_deref(), Some("192.0.2.0/24"));
        assert_eq!(
            net("blocked 2001:db8:1:2::9/64 by policy").as_deref(),
            Some("2001:db8:1:2::/64")
        );
        assert_eq!(
            got("blocked 192.0.2.77/33 by policy"),
            LineMatch::NotAnAddress {
                rule: 0,
                host: "192.0.2.77/33".into()
            },
            "{rule}"
        );
    }
    let m = Matcher::new(&Ruleset::from_regex("blocked <SUBNET> by policy$")).unwrap();
    assert_eq!(
        m.match_line("blocked 192.0.2.77 by policy")
            .failure_net()
            .map(|n| n.to_string())
            .as_deref(),
        Some("192.0.2.77/32")
    );
}

/// A literal with a newline spans lines, so a buffer scan cannot pass over
/// lines by their literals: also when the rule holding it is cheap to try
/// (whose literals the matcher otherwise never looks at per line).
#[test]
fn a_newline_in_a_cheap_rule_keeps_every_line_a_candidate() {
    let m = matcher_of("name: n\nprefix: '[a-z]+: *'\nfailregex:\n  - \"Auth failed\\\\nfrom <HOST>$\"\n");
    let sm = SourceMatcher::single(&m);
    assert_eq!(sm.cheap, vec![true], "the rule is cheap to try");
    assert!(!sm.skips_lines());
}

/// A mode given twice in a ruleset file would silently replace the first:
/// it is an error at its second place, as in the config.
#[test]
fn a_mode_given_twice_is_an_error_at_its_second_place() {
    let text = "name: x\nfailregex: ['fail from <HOST>$']\nmodes:\n  strict:\n    failregex: ['a <HOST>$']\n  strict:\n    failregex: ['b <HOST>$']\n";
    let e = Ruleset::parse("/etc/nftban/rulesets/x.yaml", text).unwrap_err();
    assert_eq!(e.at.map(|(line, _)| line), Some(6), "{e}");
    assert!(
        e.to_string()
            .contains("modes.strict: given twice (first at line 4); the last would silently replace the others"),
        "{e}"
    );
}

/// Aliases that would make a ruleset file far larger than its text (one
/// list of rules named by hundreds of modes) are refused at the alias that
/// takes it over, before the file is read; a rule list named by a few
/// modes loads.
#[test]
fn aliases_that_multiply_a_ruleset_are_refused_at_the_alias() {
    let rules: Vec<String> = (0..500).map(|i| format!("'r{i} <HOST>$'")).collect();
    let modes = |n: usize| -> String { (0..n).map(|i| format!("  m{i}: {{failregex: *r}}\n")).collect() };
    let text = |n: usize| format!("name: x\nfailregex: &r [{}]\nmodes:\n{}", rules.join(", "), modes(n));
    let e = Ruleset::parse("/etc/nftban/rulesets/x.yaml", &text(300)).unwrap_err();
    let shown = e.to_string();
    let (line, column) = e.at.expect("a place");
    assert_eq!(
        column,
        text(300).lines().nth(line - 1).unwrap().find('*').unwrap() + 1,
        "{shown}"
    );
    let mode = line - 4; // modes start on line 4
    assert!(
        shown.starts_with(&format!(
            "/etc/nftban/rulesets/x.yaml:{line}:{column}: modes.m{mode}.failregex: this alias takes the file past "
        )),
        "{shown}"
    );
    assert!(shown.contains("aliases less often"), "{shown}");
    let r = Ruleset::parse("/etc/nftban/rulesets/x.yaml", &text(3)).unwrap();
    assert_eq!(r.with_mode(Some("m2")).unwrap().failregex.len(), 1000);
}
