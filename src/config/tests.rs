use super::*;
use crate::yaml::report;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_text(Path::new("/etc/nftban/nftban.yaml"), text)
}

/// The error of a config that does not load, as the CLI prints it.
fn error(text: &str) -> String {
    report(&load(text).unwrap_err())
}

pub(super) const GOOD: &str = "\
socket: /tmp/nftban.sock
nftables: {table: nftban, action: drop}
defaults: {findtime: 10m, maxretry: 5, bantime: 1h, ignoreip: [127.0.0.0/8, \"::1\"]}
jails:
  asterisk:
    ruleset: asterisk
    files: [/var/log/asterisk/messages]
    maxretry: 3
  sshd:
    ruleset: sshd
    files: [/var/log/auth.log]
    bantime: 10m
";

#[test]
fn good_config_loads_with_inherited_values() {
    let c = load(GOOD).unwrap();
    assert_eq!(c.socket, PathBuf::from("/tmp/nftban.sock"));
    let a = &c.jails[0];
    assert_eq!(
        (a.name.as_str(), a.maxretry, a.bantime.as_secs(), a.findtime.as_secs()),
        ("asterisk", 3, 3600, 600)
    );
    let s = &c.jails[1];
    assert_eq!((s.maxretry, s.bantime.as_secs()), (5, 600));
    assert_eq!(s.ignoreip.len(), 2);
    assert_eq!(c.table_spec().jails, vec!["asterisk", "sshd", "manual"]);
}

#[test]
fn unknown_nested_key_names_key_and_line() {
    let text = GOOD.replace("    maxretry: 3", "    maxretr: 3");
    let e = load(&text).unwrap_err();
    assert_eq!(e.at.map(|a| a.0), Some(8), "{e}");
    assert!(report(&e).contains("jails.asterisk: unknown field `maxretr`"), "{e}");
}

#[test]
fn unknown_top_level_key_names_key_and_line() {
    let text = format!("{GOOD}sockett: /x\n");
    let e = load(&text).unwrap_err();
    assert!(report(&e).contains("unknown field `sockett`"), "{e}");
    assert_eq!(e.at, Some((13, 1)), "{e}");
}

#[test]
fn unknown_ruleset_is_located() {
    let text = GOOD.replace("ruleset: asterisk", "ruleset: astrisk");
    let e = error(&text);
    assert!(
        e.starts_with("/etc/nftban/nftban.yaml:6:5: jails.asterisk.ruleset: unknown ruleset `astrisk`"),
        "{e}"
    );
}

#[test]
fn bad_values_are_refused_with_reason() {
    let cases = [
        (GOOD.replace("bantime: 10m", "bantime: 10x"), "unknown unit `x`"),
        (GOOD.replace("127.0.0.0/8", "127.0.0.1/8"), "did you mean 127.0.0.0/8"),
        (GOOD.replace("maxretry: 3", "maxretry: 0"), "at least 1"),
        (
            GOOD.replace("action: drop", "action: explode"),
            "unknown variant `explode`",
        ),
        (
            GOOD.replace("files: [/var/log/auth.log]", "files: [auth.log]"),
            "absolute path",
        ),
        (
            GOOD.replace("files: [/var/log/auth.log]", "files: [\"/var/log/*/auth.log\"]"),
            "wildcards (`*`, `?`, `[`) are allowed in the file name only",
        ),
        (
            GOOD.replace("files: [/var/log/auth.log]", "files: [\"/var/log/auth[.log\"]"),
            "`/var/log/auth[.log`: not a valid pattern",
        ),
        (GOOD.replace("  sshd:", "  manual:"), "reserved"),
        (
            GOOD.replace("files: [/var/log/auth.log]", "journal: [ssh.service]"),
            "is not FIELD=value",
        ),
    ];
    for (text, want) in cases {
        let e = error(&text);
        assert!(e.contains(want), "want `{want}` in: {e}");
    }
}

#[test]
fn increment_and_recidive_are_checked() {
    let inc = GOOD.replace(
        "bantime: 1h,",
        "bantime: 1h, bantime_increment: {factor: 0.5, max: 1d},",
    );
    assert!(error(&inc).contains("defaults.bantime_increment.factor: must be between 1 and 100"));
    let rec = format!("{GOOD}recidive: {{findtime: 1d, maxretry: 1, bantime: 1w}}\n");
    let e = load(&rec).unwrap_err();
    assert!(report(&e).contains("recidive.maxretry: must be at least 2"), "{e}");
    assert_eq!(e.at, Some((13, 26)), "points at `maxretry` in the flow mapping");
    let clash = format!(
        "{}recidive: {{findtime: 1d, maxretry: 3, bantime: 1w}}\n",
        GOOD.replace("  sshd:", "  recidive:")
    );
    assert!(error(&clash).contains("rename this jail"));
    let ok = format!("{GOOD}recidive: {{findtime: 1d, maxretry: 3, bantime: 1w}}\n");
    let c = load(&ok).unwrap();
    assert_eq!(c.recidive.unwrap().maxretry, 3);
    assert!(c.table_spec().jails.contains(&"recidive".to_string()));
}

#[test]
fn disabled_jail_is_skipped() {
    let text = GOOD.replace("    bantime: 10m", "    bantime: 10m\n    enabled: false");
    assert_eq!(load(&text).unwrap().jails.len(), 1);
}

#[test]
fn ruleset_path_is_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mine.yaml"),
        "name: mine\nfailregex: ['bad from <HOST>$']\n",
    )
    .unwrap();
    let text = "jails:\n  mine:\n    ruleset: mine.yaml\n    files: [/var/log/x]\n";
    let c = Config::from_text(&dir.path().join("nftban.yaml"), text).unwrap();
    assert_eq!(c.jails[0].ruleset, "mine");
}

#[test]
fn hooks_default_to_input_and_come_in_chain_order() {
    use crate::firewall::Hook;
    assert_eq!(load(GOOD).unwrap().table_spec().hooks, [Hook::Input]);
    let text = GOOD.replace("action: drop}", "action: reject, hooks: [forward, prerouting, input]}");
    let c = load(&text).unwrap();
    assert_eq!(c.hooks, [Hook::Prerouting, Hook::Input, Hook::Forward]);
    assert_eq!(c.table_spec().hooks, c.hooks);
}

#[test]
fn bad_hooks_are_refused_with_the_key() {
    let twice = GOOD.replace("action: drop}", "action: drop, hooks: [input, forward, input]}");
    let e = error(&twice);
    assert!(
        e.starts_with("/etc/nftban/nftban.yaml:2:") && e.contains("nftables.hooks: `input` is listed twice"),
        "{e}"
    );
    let none = GOOD.replace("action: drop}", "action: drop, hooks: []}");
    let e = error(&none);
    assert!(
        e.contains("nftables.hooks: give at least one of input, forward, prerouting"),
        "{e}"
    );
    let typo = GOOD.replace("action: drop}", "action: drop, hooks: [input, output]}");
    let e = load(&typo).unwrap_err();
    assert!(report(&e).contains("unknown variant `output`"), "{e}");
    assert_eq!(e.at.map(|a| a.0), Some(2), "{e}");
}

/// `nftables.prefix_sets`: /24 and /64 by default, the lengths given
/// otherwise (an empty list: every prefix in the interval set); a length
/// out of range, given twice, or too many are refused at the key.
#[test]
fn prefix_sets_default_to_24_and_64_and_are_checked_at_their_key() {
    use crate::firewall::PrefixSets;
    assert_eq!(load(GOOD).unwrap().table_spec().prefix_sets, PrefixSets::default());
    let more = GOOD.replace(
        "action: drop}",
        "action: drop, prefix_sets: {ipv4: [16, 22, 24], ipv6: []}}",
    );
    assert_eq!(
        load(&more).unwrap().table_spec().prefix_sets,
        PrefixSets::new(&[16, 22, 24], &[])
    );
    let only_v6 = GOOD.replace("action: drop}", "action: drop, prefix_sets: {ipv6: [48, 64]}}");
    assert_eq!(load(&only_v6).unwrap().prefix_sets, PrefixSets::new(&[24], &[48, 64]));
    for (lengths, want) in [
        ("{ipv4: [32]}", "nftables.prefix_sets.ipv4: 32 is no prefix length with a set of its own: give 1 to 31 (a /32 is an address"),
        ("{ipv4: [0]}", "nftables.prefix_sets.ipv4: 0 is no prefix length"),
        ("{ipv6: [64, 128]}", "nftables.prefix_sets.ipv6: 128 is no prefix length with a set of its own: give 1 to 127"),
        ("{ipv4: [24, 16, 24]}", "nftables.prefix_sets.ipv4: /24 is listed twice"),
        ("{ipv4: [8, 9, 10, 11, 12, 13, 14, 15, 16]}", "nftables.prefix_sets.ipv4: 9 lengths: give at most 8"),
        ("{ipv4: [24], ipv5: [1]}", "unknown field `ipv5`"),
        ("{ipv4: [300]}", "nftables.prefix_sets.ipv4"),
    ] {
        let text = GOOD.replace("action: drop}", &format!("action: drop, prefix_sets: {lengths}}}"));
        let e = error(&text);
        assert!(e.starts_with("/etc/nftban/nftban.yaml:2:") && e.contains(want), "{lengths}: {e}");
    }
}

/// `mode:` picks a ruleset mode; an unknown one is located at its key.
#[test]
fn jail_mode_is_checked_and_located() {
    let text = GOOD.replace("    bantime: 10m\n", "    bantime: 10m\n    mode: normal\n");
    let c = load(&text).unwrap();
    assert_eq!(
        c.jails[1].rules.mode, None,
        "normal is the base when no such mode exists"
    );
    let text = GOOD.replace("    bantime: 10m\n", "    bantime: 10m\n    mode: turbo\n");
    let e = error(&text);
    assert!(
        e.starts_with("/etc/nftban/nftban.yaml:13:5: jails.sshd.mode: no mode `turbo` in ruleset sshd"),
        "{e}"
    );
}

/// A key given twice anywhere (a jail, a jail's setting, a top-level
/// section) is an error at the line of its second occurrence, saying where
/// the first is: the YAML library would let the last one win silently.
#[test]
fn a_key_given_twice_is_an_error_at_its_second_place() {
    let twice = format!("{GOOD}  sshd:\n    ruleset: sshd\n    files: [/var/log/secure]\n");
    assert_eq!(
        error(&twice),
        "/etc/nftban/nftban.yaml:13:3: jails.sshd: given twice (first at line 9); \
         the last would silently replace the others"
    );
    let setting = GOOD.replace("    bantime: 10m\n", "    bantime: 10m\n    bantime: 1w\n");
    assert_eq!(
        error(&setting),
        "/etc/nftban/nftban.yaml:13:5: jails.sshd.bantime: given twice (first at line 12); \
         the last would silently replace the others"
    );
    let flow = GOOD.replace("maxretry: 5,", "maxretry: 5, maxretry: 50,");
    assert_eq!(
        error(&flow),
        "/etc/nftban/nftban.yaml:3:40: defaults.maxretry: given twice (first at line 3); \
         the last would silently replace the others"
    );
    let top = format!("{GOOD}socket: /run/other.sock\n");
    assert!(error(&top).starts_with("/etc/nftban/nftban.yaml:13:1: socket: given twice (first at line 1)"));
}

/// A duration past the 10-year maximum used to load, then crash the daemon
/// at its first ban: each duration key is refused at its own line, with
/// the key and the limit named.
#[test]
fn durations_past_the_maximum_are_refused_at_their_key() {
    let max = "longer than the maximum of 10 years (3650d)";
    let cases = [
        (
            GOOD.replace("    bantime: 10m", "    bantime: 10000000000000000000"),
            "/etc/nftban/nftban.yaml:12:14: jails.sshd.bantime: `10000000000000000000` is",
        ),
        (
            GOOD.replace("    bantime: 10m", "    bantime: 3651d"),
            "/etc/nftban/nftban.yaml:12:14: jails.sshd.bantime: `3651d` is",
        ),
        (
            GOOD.replace("    bantime: 10m", "    findtime: 315360001"),
            "/etc/nftban/nftban.yaml:12:15: jails.sshd.findtime: `315360001` is",
        ),
        (
            format!("{GOOD}history_keep: 99999999999999999999\n"),
            "/etc/nftban/nftban.yaml:13:15: history_keep: `99999999999999999999` is",
        ),
        (
            format!("{GOOD}recidive:\n  findtime: 1d\n  maxretry: 3\n  bantime: 600w\n"),
            "/etc/nftban/nftban.yaml:16:12: recidive.bantime: `600w` is",
        ),
        (
            GOOD.replace(
                "    bantime: 10m",
                "    bantime_increment:\n      factor: 2\n      max: 5000d",
            ),
            "/etc/nftban/nftban.yaml:14:12: jails.sshd.bantime_increment.max: `5000d` is",
        ),
    ];
    for (text, want) in cases {
        let e = error(&text);
        assert!(
            e.starts_with(want) && e.contains(max),
            "want `{want} ... {max}` in: {e}"
        );
    }
    // The maximum itself is accepted.
    let c = load(&GOOD.replace("    bantime: 10m", "    bantime: 3650d")).unwrap();
    assert_eq!(c.jails[1].bantime, crate::config::duration::MAX_DURATION);
}

/// Numbers that are no duration say why, at the value's own line.
#[test]
fn negative_and_fractional_durations_say_why() {
    for (value, want) in [
        ("-5", "jails.sshd.bantime: `-5`: a duration cannot be negative"),
        (
            "1.5",
            "jails.sshd.bantime: `1.5` is not a duration: not a whole number of seconds",
        ),
        (
            "1e30",
            "jails.sshd.bantime: `1000000000000000000000000000000` is not a duration: not a whole number of seconds",
        ),
    ] {
        let e = error(&GOOD.replace("    bantime: 10m", &format!("    bantime: {value}")));
        assert!(
            e.starts_with("/etc/nftban/nftban.yaml:12:14: ") && e.contains(want),
            "want `{want}` in: {e}"
        );
    }
}

/// Jails on the same ruleset and mode share one compiled matcher (and the
/// ruleset as read); another mode or another ruleset gets its own; a new
/// load (what a reload does) reads the ruleset file again.
#[test]
fn jails_on_one_ruleset_and_mode_share_its_matcher() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yaml");
    let rules = |extra: &str| {
        format!(
            "name: web\nfailregex:\n  - 'denied <HOST>$'{extra}\nmodes:\n  strict:\n    failregex: ['refused <HOST>$']\n"
        )
    };
    std::fs::write(&file, rules("")).unwrap();
    let f = file.display();
    let text = format!(
        "jails:\n  a: {{ruleset: {f}, files: [/x]}}\n  b: {{ruleset: {f}, files: [/y]}}\n  \
         c: {{ruleset: {f}, mode: strict, files: [/x]}}\n  d: {{ruleset: {f}, mode: strict, files: [/z]}}\n  \
         e: {{ruleset: sshd, files: [/x]}}\n  f: {{ruleset: sshd, files: [/y], maxretry: 2}}\n"
    );
    let c = load(&text).unwrap();
    let by_name = |n: &str| c.jails.iter().find(|j| j.name == n).unwrap();
    let same = |x: &str, y: &str| Arc::ptr_eq(&by_name(x).matcher, &by_name(y).matcher);
    assert!(same("a", "b") && same("c", "d") && same("e", "f"));
    assert!(!same("a", "c") && !same("a", "e"));
    assert!(Arc::ptr_eq(&by_name("a").rules, &by_name("b").rules));
    assert_eq!(
        (by_name("a").matcher.sources.len(), by_name("c").matcher.sources.len()),
        (1, 2)
    );
    assert_eq!(by_name("f").maxretry, 2);
    // The file changes; the next load compiles what it says now.
    std::fs::write(&file, rules("\n  - 'blocked <HOST>$'")).unwrap();
    let again = load(&text).unwrap();
    let a = again.jails.iter().find(|j| j.name == "a").unwrap();
    assert_eq!(a.matcher.sources.len(), 2);
    assert!(!Arc::ptr_eq(&a.matcher, &by_name("a").matcher));
}

/// Anchors used as they are meant to be, a jail's settings and a list of
/// trusted addresses named by a dozen jails, load like the text written
/// out.
#[test]
fn anchors_named_by_a_dozen_jails_load() {
    let mut text = "defaults: {ignoreip: &trusted [127.0.0.0/8, \"::1\", 192.0.2.0/24]}\njails:\n  j0: &jail\n    ruleset: sshd\n    files: [/var/log/auth.log]\n    maxretry: 3\n    ignoreip: *trusted\n".to_string();
    for i in 1..12 {
        text.push_str(&format!("  j{i}: *jail\n"));
    }
    let c = load(&text).unwrap();
    assert_eq!(c.jails.len(), 12);
    assert!(c
        .jails
        .iter()
        .all(|j| j.maxretry == 3 && j.ignoreip.len() == 3 && j.ruleset == "sshd"));
}

/// Aliases that would expand a config far past its text (a long list
/// named by hundreds of jails) are refused at the alias that takes it
/// over, with what to do.
#[test]
fn aliases_that_multiply_a_config_are_refused_at_the_alias() {
    let list: Vec<String> = (0..1000).map(|i| format!("10.0.{}.{}", i / 250, i % 250)).collect();
    let mut text = format!("defaults: {{ignoreip: &a [{}]}}\njails:\n", list.join(", "));
    for i in 0..200 {
        text.push_str(&format!(
            "  j{i}:\n    enabled: false\n    ruleset: x\n    ignoreip: *a\n"
        ));
    }
    let e = load(&text).unwrap_err();
    let key = e.key.clone().unwrap();
    let jail: usize = key
        .strip_prefix("jails.j")
        .and_then(|k| k.strip_suffix(".ignoreip"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(e.at, Some((2 + 4 * jail + 4, 15)), "the jail's `ignoreip: *a`");
    let limit = crate::yaml::expansion::limit(text.len());
    assert_eq!(
        report(&e),
        format!(
            "/etc/nftban/nftban.yaml:{}:15: {key}: this alias takes the file past {limit} values once aliases \
             are expanded (the most a file of {} bytes may hold: 50000 plus one per byte); name long lists \
             and mappings through aliases less often; a jail without `ignoreip` takes `defaults.ignoreip`",
            2 + 4 * jail + 4,
            text.len()
        )
    );
}

const SIP_BASE: &str = "\
defaults: {bantime: 2h, ignoreip: [127.0.0.0/8]}
jails:
  asterisk:
    ruleset: asterisk
    files: [/var/log/asterisk/messages]
    bantime: 30m
    ignoreip: [10.0.0.0/8]
";

#[test]
fn a_bare_sip_section_makes_its_jail_with_the_defaults() {
    let c = load(&format!("{SIP_BASE}sip: {{}}\n")).unwrap();
    let s = c.sip.as_ref().unwrap();
    assert_eq!(s.jail, "sip");
    assert!(c.sip_implicit_jail);
    assert_eq!(
        (s.udp.clone(), s.tcp.clone(), s.tls.clone()),
        (vec![5060], vec![5060], vec![5061])
    );
    assert_eq!((s.rate.to_string(), s.burst), ("20/second".into(), 40));
    assert_eq!((s.bantime.as_secs(), s.ipv6_prefix, s.size), (7200, 64, 65536));
    assert_eq!(s.trusted, vec!["127.0.0.0/8".parse::<IpNet>().unwrap()]);
    assert_eq!(c.table_spec().jails, vec!["asterisk", "sip", "manual"]);
    assert_eq!(c.table_spec().sip.as_ref(), Some(s));
}

#[test]
fn sip_takes_its_jails_bantime_and_ignoreip() {
    let text = format!(
        "{SIP_BASE}sip:\n  jail: asterisk\n  rate: 5/minute\n  ports: {{udp: [5070], tls: []}}\n  ipv6_prefix: 128\n  size: 1000\n"
    );
    let c = load(&text).unwrap();
    let s = c.sip.as_ref().unwrap();
    assert!(!c.sip_implicit_jail);
    assert_eq!((s.jail.as_str(), s.bantime.as_secs(), s.burst), ("asterisk", 1800, 10));
    assert_eq!(
        (s.udp.clone(), s.tcp.clone(), s.tls.clone()),
        (vec![5070], vec![5060], vec![])
    );
    assert_eq!((s.ipv6_prefix, s.size), (128, 1000));
    assert_eq!(s.trusted, vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]);
    assert_eq!(c.table_spec().jails, vec!["asterisk", "manual"]);
    // The same inside the jail.
    let inside = SIP_BASE.replace(
        "    bantime: 30m\n",
        "    bantime: 30m\n    sip: {rate: 5/minute, burst: 7}\n",
    );
    let c = load(&inside).unwrap();
    let s = c.sip.unwrap();
    assert_eq!((s.jail.as_str(), s.burst), ("asterisk", 7));
}

#[test]
fn sip_errors_name_the_key_and_line() {
    let cases = [
        ("sip: {jail: nope}\n", "sip.jail", "`nope` is no enabled jail"),
        ("sip: {rate: 20/hour}\n", "sip.rate", "N/second or N/minute"),
        ("sip: {rate: 0/second}\n", "sip.rate", "not a rate"),
        ("sip: {burst: 0}\n", "sip.burst", "at least 1"),
        ("sip: {bantime: 0}\n", "sip.bantime", "longer than 0s"),
        ("sip: {ipv6_prefix: 0}\n", "sip.ipv6_prefix", "between 1 and 128"),
        ("sip: {size: 0}\n", "sip.size", "between 1 and"),
        ("sip: {ports: {udp: [0]}}\n", "sip.ports.udp", "port 0"),
        (
            "sip: {ports: {udp: [], tcp: [], tls: []}}\n",
            "sip.ports",
            "meters no port",
        ),
    ];
    for (section, key, words) in cases {
        let text = format!("{SIP_BASE}{section}");
        let e = error(&text);
        assert!(e.contains("nftban.yaml:8:"), "{section}: {e}");
        assert!(e.contains(key) && e.contains(words), "{section}: {e}");
    }
    let unknown = error(&format!("{SIP_BASE}sip: {{rates: 1}}\n"));
    assert!(unknown.contains("unknown field `rates`"), "{unknown}");
    let twice = SIP_BASE.replace("    bantime: 30m\n", "    bantime: 30m\n    sip: {}\n");
    let e = error(&format!("{twice}sip: {{}}\n"));
    assert!(
        e.contains("jails.asterisk.sip") && e.contains("given at sip already"),
        "{e}"
    );
    let jail_key = SIP_BASE.replace("    bantime: 30m\n", "    bantime: 30m\n    sip: {jail: asterisk}\n");
    let e = error(&jail_key);
    assert!(e.contains("jails.asterisk.sip.jail") && e.contains("top-level"), "{e}");
    let clash = format!("{SIP_BASE}  sip_meter:\n    ruleset: asterisk\n    stdin: true\nsip: {{jail: asterisk}}\n");
    let e = error(&clash);
    assert!(e.contains("jails.sip_meter") && e.contains("rename it"), "{e}");
}

#[test]
fn a_fleet_takes_its_defaults_from_the_jails() {
    let c = load(&format!(
        "{SIP_BASE}fleet: {{servers: [nats://10.0.0.1:4222], node: pbx-a}}\n"
    ))
    .unwrap();
    let f = c.fleet.expect("a fleet");
    assert_eq!(
        (f.node.as_str(), f.stream.as_str(), f.subject_prefix.as_str()),
        ("pbx-a", "NFTBAN", "nftban")
    );
    assert_eq!(f.publish, ["asterisk", "manual"]);
    // Each accepting jail with the ignoreip that binds it.
    assert_eq!(f.accept["asterisk"], ["10.0.0.0/8".parse::<IpNet>().unwrap()]);
    assert_eq!(f.accept["manual"], ["127.0.0.0/8".parse::<IpNet>().unwrap()]);
    // The longest bantime: `defaults` (2h) beats the jail's 30m.
    assert_eq!(f.retention, Duration::from_secs(7200));
    assert_eq!((f.ipv4_prefix, f.ipv6_prefix, f.burst, f.replicas), (24, 48, 10_000, 1));
    assert_eq!(f.credentials, Credentials::None);
}

/// A key indented one level too little (`maxretry: 3` right under
/// `jails:`) is said as such, not as the Rust type serde wanted.
#[test]
fn a_value_where_a_jail_should_be_says_to_look_at_the_indentation() {
    let e = error("jails:\n  sshd: {ruleset: sshd, files: [/var/log/auth.log]}\n  maxretry: 3\n");
    assert!(e.contains(":3:13: jails.maxretry: invalid type: integer `3`, expected the keys of a jail (a mapping) here, not a single value: is this line indented one level too little?"), "{e}");
    assert!(!e.contains("JailConfig"), "{e}");
}

#[test]
fn fleet_errors_name_the_key_and_line() {
    let cases = [
        ("fleet: {servers: []}\n", "fleet.servers", "at least one NATS server"),
        ("fleet: {servers: [a], node: 'a.b'}\n", "fleet.node", "not a node name"),
        (
            "fleet: {servers: [a], publish: [nope]}\n",
            "fleet.publish",
            "`nope` is no jail",
        ),
        (
            "fleet: {servers: [a], accept: [sshd]}\n",
            "fleet.accept",
            "jails: asterisk, manual",
        ),
        (
            "fleet: {servers: [a], auth: {user: u}}\n",
            "fleet.auth",
            "both `user` and `password`",
        ),
        (
            "fleet: {servers: [a], auth: {token: t, creds_file: /x}}\n",
            "fleet.auth",
            "one kind",
        ),
        (
            "fleet: {servers: [a], tls: {cert_file: /c}}\n",
            "fleet.tls",
            "both `cert_file`",
        ),
        (
            "fleet: {servers: [a], limits: {rate: 5/hour}}\n",
            "fleet.limits.rate",
            "not a rate",
        ),
        (
            "fleet: {servers: [a], limits: {ipv4_prefix: 33}}\n",
            "fleet.limits.ipv4_prefix",
            "between 1 and 32",
        ),
        (
            "fleet: {servers: [a], replicas: 7}\n",
            "fleet.replicas",
            "between 1 and 5",
        ),
        (
            "fleet: {servers: [a], subject_prefix: 'a..b'}\n",
            "fleet.subject_prefix",
            "subject prefix",
        ),
        // As the daemon's NATS client reads them (it connected forever).
        (
            "fleet: {servers: ['http://10.77.0.1:4222']}\n",
            "fleet.servers",
            "`http://10.77.0.1:4222` is not a NATS server address: invalid scheme",
        ),
        (
            "fleet: {servers: ['nats://10.77.0.1:99999']}\n",
            "fleet.servers",
            "is not a NATS server address",
        ),
        ("fleet: {servers: ['']}\n", "fleet.servers", "it is empty"),
    ];
    for (section, key, words) in cases {
        let text = format!("{SIP_BASE}{section}");
        let e = error(&text);
        assert!(e.contains("nftban.yaml:8:"), "{section}: {e}");
        assert!(e.contains(key) && e.contains(words), "{section}: {e}");
    }
}

/// A jail's ruleset may be a fail2ban filter `.conf` beside the config,
/// with jail.conf's options (what `nftban import-fail2ban` writes); a
/// filter nftban cannot use is an error naming the filter's file.
#[test]
fn fail2ban_filter_rulesets_load_with_options() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("filter.d")).unwrap();
    std::fs::write(
        dir.path().join("filter.d/m.conf"),
        "[Definition]\nmode = normal\nm_normal = ^a <HOST>$\nm_extra = ^b <HOST>$\nfailregex = <m_<mode>>\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("filter.d/bad.conf"),
        "[Definition]\nfailregex = ^no host$\n",
    )
    .unwrap();
    let config = dir.path().join("nftban.yaml");
    let text = |ruleset: &str| format!("jails:\n  j:\n    ruleset: {ruleset}\n    files: [/var/log/x.log]\n");
    let c = Config::from_text(&config, &text("'filter.d/m.conf[mode=extra]'")).unwrap();
    assert_eq!(c.jails[0].rules.failregex, ["^b <HOST>$"]);
    let c = Config::from_text(&config, &text("filter.d/m.conf")).unwrap();
    assert_eq!(c.jails[0].rules.failregex, ["^a <HOST>$"]);
    let e = report(&Config::from_text(&config, &text("filter.d/bad.conf")).unwrap_err());
    assert!(e.contains("jails.j.ruleset") && e.contains("filter.d/bad.conf"), "{e}");
}
