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
        let m = Matcher::new(&rs).unwrap();
        for ex in &rs.examples {
            let got = match m.match_line(&ex.line) {
                LineMatch::Failure { addr, .. } => Some(addr),
                _ => None,
            };
            let want = ex.host.as_deref().map(|h| h.parse::<IpAddr>().unwrap());
            assert_eq!(got, want, "{name}: example line: {}", ex.line);
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
    let err = Matcher::new(&Ruleset::from_regex("no tag here")).unwrap_err();
    assert!(err.contains("failregex[0]") && err.contains("no <HOST>"), "{err}");
    let err = Matcher::new(&Ruleset::from_regex("(<HOST>")).unwrap_err();
    assert!(err.contains("failregex[0]"), "{err}");
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
