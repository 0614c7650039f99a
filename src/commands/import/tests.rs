//! The import on small fail2ban trees written here: fail2ban's file
//! precedence, interpolation, value syntaxes, and the report of what is
//! not carried over.

use std::path::Path;

use super::*;

/// A filter every tree below uses.
const FILTER: &str = "[Definition]\nmode = normal\nfailregex = ^fail from <HOST>$\n  ^<mode> from <HOST>$\n";

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let f = dir.path().join("filter.d/svc.conf");
    if !f.exists() {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, FILTER).unwrap();
    }
    dir
}

fn run_import(dir: &Path) -> (Imported, String, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let i = import(dir, out.path(), false).unwrap();
    let yaml = std::fs::read_to_string(out.path().join("nftban.yaml")).unwrap();
    (i, yaml, out)
}

fn note<'a>(i: &'a Imported, jail: &str, key: &str) -> &'a Note {
    i.not_carried
        .iter()
        .find(|n| n.jail == jail && n.key == key)
        .unwrap_or_else(|| panic!("no note on [{jail}] {key}: {:#?}", i.not_carried))
}

/// fail2ban's order: jail.conf, jail.d/*.conf by name, jail.local,
/// jail.d/*.local by name; each later file wins, `[DEFAULT]` included.
#[test]
fn later_files_win_in_fail2bans_order() {
    let dir = tree(&[
        (
            "jail.conf",
            "[DEFAULT]\nmaxretry = 5\nbantime = 10m\nfindtime = 10m\n[svc]\nfilter = svc\nlogpath = /var/log/a.log\nbantime = 1h\n",
        ),
        ("jail.d/b.conf", "[svc]\nenabled = true\nbantime = 2h\nfindtime = 1m\n"),
        ("jail.d/a.conf", "[svc]\nbantime = 3h\nmaxretry = 9\n"),
        (
            "jail.local",
            "[DEFAULT]\nmaxretry = 4\n[svc]\nbantime = 4h\nfindtime = 2m\n",
        ),
        ("jail.d/z.local", "[svc]\nbantime = 5h\n"),
    ]);
    let (i, yaml, _out) = run_import(dir.path());
    assert_eq!(i.jails, ["svc"]);
    // bantime: z.local last; findtime: jail.local after jail.d/*.conf;
    // maxretry: jail.d/a.conf's own value beats jail.local's [DEFAULT].
    assert!(
        yaml.contains("defaults:\n  findtime: 10m\n  maxretry: 4\n  bantime: 10m\n"),
        "{yaml}"
    );
    assert!(
        yaml.contains("    findtime: 2m\n    maxretry: 9\n    bantime: 5h\n"),
        "{yaml}"
    );
}

/// `%(name)s` from the jail or `[DEFAULT]`, `%(__name__)s`,
/// `%(default/x)s`, `%(known/x)s`, `%%`, includes with `before`; and the
/// filter options of `filter = NAME[mode=...]` reach the ruleset.
#[test]
fn interpolation_as_configparser_with_fail2bans_names() {
    let dir = tree(&[
        ("paths.conf", "[DEFAULT]\nbase = /var/log\nsvc_log = %(base)s/%(__name__)s.log\n"),
        (
            "jail.conf",
            "[INCLUDES]\nbefore = paths.conf\n[DEFAULT]\nmode = normal\nfilter = %(__name__)s[mode=%(mode)s]\nbackend = auto\nbantime = 1h\n\
             [svc]\nenabled = true\nlogpath = %(svc_log)s\n  /srv/100%%/x.log\nbackend = %(default/backend)s\nbantime = 2h\n",
        ),
        ("jail.local", "[svc]\nbantime = %(known/bantime)s30m  ; a comment\nmode = extra\n"),
    ]);
    std::fs::copy(
        dir.path().join("filter.d/svc.conf"),
        dir.path().join("filter.d/svc2.conf"),
    )
    .unwrap();
    let (i, yaml, out) = run_import(dir.path());
    assert_eq!(i.jails, ["svc"]);
    assert!(
        yaml.contains("    ruleset: 'filter.d/svc.conf[mode=extra]'\n"),
        "{yaml}"
    );
    assert!(
        yaml.contains("    files: ['/var/log/svc.log', '/srv/100%/x.log']\n"),
        "{yaml}"
    );
    assert!(yaml.contains("    bantime: 2h30m\n"), "{yaml}");
    assert_eq!(i.filters, [Path::new("filter.d/svc.conf")]);
    // The config loads, and its jail runs the filter in the mode asked.
    let c = crate::config::Config::load(&out.path().join("nftban.yaml")).unwrap();
    assert_eq!(
        c.jails[0].rules.failregex,
        ["^fail from <HOST>$", "^extra from <HOST>$"]
    );
}

/// A reference to nothing leaves the jail out, its section and key named;
/// a folder without jail files is an error.
#[test]
fn undefined_references_name_section_and_key() {
    let dir = tree(&[(
        "jail.conf",
        "[svc]\nenabled = true\nfilter = svc\nlogpath = %(nowhere)s\n",
    )]);
    let i = import(dir.path(), &dir.path().join("out"), false).unwrap();
    assert!(i.jails.is_empty());
    let r = &note(&i, "svc", "enabled").reason;
    assert!(
        r.contains("jail left out: [svc] logpath: `%(nowhere)s` is not set"),
        "{r}"
    );
    let e = import(&dir.path().join("filter.d"), &dir.path().join("out2"), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no jail.conf nor jail.local"), "{e}");
}

/// Values that name themselves, or grow tenfold at each of ten levels,
/// are refused with the section and key, not expanded for ever.
/// A jail.local line fail2ban refuses (a key without `=`, a header
/// without `]`, a key given twice) is refused with its file and line,
/// as `fail2ban-client -t` refuses it: before, `maxretry 4` was passed
/// over and the jail kept jail.conf's value.
#[test]
fn lines_fail2ban_refuses_are_refused_with_their_line() {
    let jail = "[svc]\nenabled = true\nfilter = svc\nlogpath = /var/log/a.log\nmaxretry = 3\n";
    for (local, want) in [
        (
            "[svc]\nmaxretry 4\n",
            "jail.local: line 2: `maxretry 4` is neither a [section], a `key = value` nor an indented continuation",
        ),
        ("[svc\nmaxretry = 4\n", "jail.local: line 1: `[svc` is neither"),
        (
            "[svc]\nmaxretry = 4\nmaxretry = 5\n",
            "jail.local: line 3: `maxretry` given twice in [svc] (first on line 2)",
        ),
        (
            "[svc]\nmaxretry = 4\n[svc]\n",
            "jail.local: line 3: section [svc] given twice in this file (first on line 1)",
        ),
    ] {
        let dir = tree(&[("jail.conf", jail), ("jail.local", local)]);
        let e = import(dir.path(), &dir.path().join("out"), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(want) && e.contains("fail2ban refuses this file too"),
            "{local:?}: {e}"
        );
    }
    // Indented lines continue the key above; comments and blank lines
    // are no faults.
    let local = "# mine\n[svc]\n\nlogpath = /var/log/a.log\n  /var/log/b.log\n; end\n";
    let dir = tree(&[("jail.conf", jail), ("jail.local", local)]);
    assert!(import(dir.path(), &dir.path().join("out"), false).is_ok());
}

#[test]
fn loops_and_growth_are_refused() {
    let dir = tree(&[("jail.conf", "[DEFAULT]\nbantime = %(bantime)s\n")]);
    let e = import(dir.path(), &dir.path().join("out"), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[DEFAULT] bantime:") && e.contains("nest deeper than 10"),
        "{e}"
    );
    let mut growing = String::from("[DEFAULT]\nv0 = xxxxxxxxxx\n");
    for i in 1..=9 {
        growing.push_str(&format!("v{i} = {}\n", format!("%(v{})s", i - 1).repeat(10)));
    }
    growing.push_str("findtime = /%(v9)s\n");
    let dir = tree(&[("jail.conf", &growing)]);
    let e = import(dir.path(), &dir.path().join("out"), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[DEFAULT] findtime: grows past 1024 KiB"), "{e}");
}

/// fail2ban's times, booleans and increment in nftban's terms.
#[test]
fn values_in_nftbans_terms() {
    use values::{increment, parse_time, Time};
    assert_eq!(parse_time("600"), Ok(Time::Secs(600)));
    assert_eq!(parse_time("10m"), Ok(Time::Secs(600)));
    assert_eq!(parse_time("1h 30m"), Ok(Time::Secs(5400)));
    assert_eq!(parse_time("2days"), Ok(Time::Secs(172_800)));
    assert_eq!(parse_time("1w"), Ok(Time::Secs(604_800)));
    assert_eq!(parse_time("-1"), Ok(Time::Forever));
    assert!(parse_time("soon").is_err());
    assert_eq!(values::nftban_time(Time::Forever).0, "3650d");
    assert_eq!(increment(None, None, None), (2.0, None));
    assert_eq!(increment(Some("1"), None, Some("1 3 9 27")), (3.0, None));
    assert!(increment(Some("3"), None, None)
        .1
        .unwrap()
        .contains("bantime.factor = 3"));
    assert!(increment(None, Some("ban.Time * math.exp(ban.Count)"), None)
        .1
        .unwrap()
        .contains("is Python"));
    assert!(increment(None, None, Some("1 2 5 60")).1.is_some());
}

/// Every setting nftban does not carry is reported with its reason:
/// mail and other actions, ports, usedns, ignorecommand, ignoreself,
/// names in ignoreip, increment parts, journalmatch alternatives; the
/// recidive jail becomes `recidive:`; disabled jails are not imported.
#[test]
fn report_lists_what_is_not_carried() {
    let dir = tree(&[
        (
            "jail.conf",
            "[DEFAULT]\nusedns = warn\nignoreip = 127.0.0.1/8 ::1, 192.0.2.0/24 trusted.example.org\nport = 0:65535\nprotocol = tcp\n\
             banaction = iptables-multiport\naction_ = %(banaction)s[port=\"%(port)s\", protocol=\"%(protocol)s\"]\n\
             action_mw = %(action_)s\n            sendmail-whois[dest=root]\naction = %(action_)s\n\
             bantime.increment = true\nbantime.rndtime = 5m\nignorecommand = /usr/bin/check <ip>\n\
             [svc]\nenabled = true\nfilter = svc\nlogpath = /var/log/svc.log\nport = ssh\naction = %(action_mw)s\n           cloudflare[token=x]\n\
             [jrn]\nenabled = true\nfilter = svc\nbackend = systemd\njournalmatch = _SYSTEMD_UNIT=svc.service + _COMM=svc\n\
             [off]\nfilter = svc\nlogpath = /var/log/off.log\n\
             [recidive]\nenabled = true\nfilter = svc\nlogpath = /var/log/fail2ban.log\nbantime = 1w\nfindtime = 1d\nmaxretry = 3\n",
        ),
    ]);
    let (i, yaml, out) = run_import(dir.path());
    assert_eq!(i.jails, ["jrn", "svc"]);
    assert!(i.recidive);
    assert!(
        yaml.contains("recidive: {findtime: 1d, maxretry: 3, bantime: 7d}"),
        "{yaml}"
    );
    assert!(
        yaml.contains("  ignoreip: ['127.0.0.0/8', '::1', '192.0.2.0/24']\n"),
        "{yaml}"
    );
    assert!(
        yaml.contains("  bantime_increment: {factor: 2, max: 3650d}\n"),
        "{yaml}"
    );
    assert!(yaml.contains("    journal: ['_COMM=svc']\n"), "{yaml}");
    assert!(note(&i, "DEFAULT", "usedns")
        .reason
        .contains("only in a jail with `usedns: yes`"));
    assert!(!yaml.contains("usedns"), "warn resolves nothing here: {yaml}");
    assert!(note(&i, "DEFAULT", "ignoreip").value == "trusted.example.org");
    assert!(note(&i, "DEFAULT", "ignorecommand").reason.contains("no command"));
    assert!(note(&i, "DEFAULT", "ignoreself").reason.contains("ignoreip"));
    assert!(note(&i, "DEFAULT", "bantime.rndtime").reason.contains("random"));
    assert!(note(&i, "DEFAULT", "bantime.maxtime").reason.contains("3650d"));
    assert!(note(&i, "svc", "port").value.starts_with("ssh (tcp)"));
    assert!(i
        .not_carried
        .iter()
        .any(|n| n.jail == "svc" && n.value.starts_with("sendmail-whois") && n.reason.contains("mail is not sent")));
    assert!(i
        .not_carried
        .iter()
        .any(|n| n.jail == "svc" && n.value.starts_with("cloudflare") && n.reason.contains("other than banning")));
    assert!(note(&i, "jrn", "journalmatch")
        .reason
        .contains("left out: `_SYSTEMD_UNIT=svc.service`"));
    assert!(note(&i, "DEFAULT", "usedns").file.as_deref() == Some(dir.path().join("jail.conf").as_path()));
    // The report is also beside the config, and the config loads.
    let report = std::fs::read_to_string(out.path().join("import-report.txt")).unwrap();
    assert!(report.contains("[DEFAULT] usedns = warn ("), "{report}");
    crate::config::Config::load(&out.path().join("nftban.yaml")).unwrap();
}

/// A non-empty output folder is refused without `--force`; with it the
/// import writes over its own files.
#[test]
fn non_empty_output_needs_force() {
    let dir = tree(&[(
        "jail.conf",
        "[svc]\nenabled = true\nfilter = svc\nlogpath = /var/log/svc.log\n",
    )]);
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("keep.txt"), "x").unwrap();
    let e = import(dir.path(), out.path(), false).unwrap_err().to_string();
    assert!(e.contains("not empty; give --force"), "{e}");
    assert_eq!(import(dir.path(), out.path(), true).unwrap().jails, ["svc"]);
    assert!(out.path().join("keep.txt").exists());
}

/// A jail whose filter nftban cannot use, or with no log it can follow,
/// is left out and said so; the others are imported.
#[test]
fn jails_that_cannot_be_imported_are_reported() {
    let dir = tree(&[
        ("filter.d/nohost.conf", "[Definition]\nfailregex = ^nothing here$\n"),
        (
            "jail.conf",
            "[DEFAULT]\nenabled = true\n[svc]\nfilter = svc\nlogpath = /var/log/svc.log\n\
             [bad]\nfilter = nohost\nlogpath = /var/log/x.log\n[missing]\nfilter = nowhere\nlogpath = /var/log/x.log\n\
             [wild]\nfilter = svc\nlogpath = /var/log/tomcat*/catalina.out\n",
        ),
    ]);
    let (i, _, _out) = run_import(dir.path());
    assert_eq!(i.jails, ["svc"]);
    assert!(note(&i, "bad", "filter")
        .reason
        .starts_with("jail left out: nftban cannot use its filter"));
    assert!(note(&i, "missing", "filter").reason.contains("nowhere.conf"));
    assert!(i
        .not_carried
        .iter()
        .any(|n| n.jail == "wild" && n.key == "logpath" && n.reason.contains("wildcard in a folder")));
}

/// An explicit `usedns = yes` is carried (in `defaults:` from `[DEFAULT]`,
/// in a jail from the jail); `warn` and `raw` are not (noted), and a jail
/// that says `warn` under a `[DEFAULT]` of `yes` gets `usedns: no`; `no`
/// is nftban's default, neither written nor noted.
#[test]
fn an_explicit_usedns_yes_is_carried() {
    let dir = tree(&[(
        "jail.conf",
        "[DEFAULT]\nusedns = warn\n\
         [a]\nenabled = true\nfilter = svc\nlogpath = /var/log/a.log\nusedns = yes\n\
         [b]\nenabled = true\nfilter = svc\nlogpath = /var/log/b.log\nusedns = no\n\
         [c]\nenabled = true\nfilter = svc\nlogpath = /var/log/c.log\n",
    )]);
    let (i, yaml, out) = run_import(dir.path());
    assert!(
        yaml.contains("  a:\n    ruleset: 'filter.d/svc.conf'\n    files: ['/var/log/a.log']\n    usedns: yes\n"),
        "{yaml}"
    );
    assert_eq!(yaml.matches("usedns").count(), 1, "{yaml}");
    assert!(note(&i, "DEFAULT", "usedns").value == "warn");
    assert!(!i.not_carried.iter().any(|n| n.key == "usedns" && n.jail != "DEFAULT"));
    let config = crate::config::Config::load(&out.path().join("nftban.yaml")).unwrap();
    let resolves: Vec<bool> = config.jails.iter().map(|j| j.usedns.resolves()).collect();
    assert_eq!(resolves, [true, false, false]);

    let dir = tree(&[(
        "jail.conf",
        "[DEFAULT]\nusedns = yes\n\
         [a]\nenabled = true\nfilter = svc\nlogpath = /var/log/a.log\n\
         [b]\nenabled = true\nfilter = svc\nlogpath = /var/log/b.log\nusedns = raw\n",
    )]);
    let (i, yaml, out) = run_import(dir.path());
    assert!(yaml.contains("defaults:\n  usedns: yes\n"), "{yaml}");
    assert!(yaml.contains("/var/log/b.log']\n    usedns: no\n"), "{yaml}");
    assert!(note(&i, "b", "usedns").value == "raw");
    let config = crate::config::Config::load(&out.path().join("nftban.yaml")).unwrap();
    let resolves: Vec<bool> = config.jails.iter().map(|j| j.usedns.resolves()).collect();
    assert_eq!(resolves, [true, false]);
}

/// `bantime.increment = false` in a jail under `[DEFAULT]`'s `true` gives
/// that jail no increment (nftban's jails inherit `defaults:`' one and
/// cannot turn it off, so it is written in the jails that have it); a
/// jail that sets its own factor keeps it.
#[test]
fn a_jail_can_turn_the_increment_off() {
    let dir = tree(&[
        (
            "jail.conf",
            "[DEFAULT]\nbantime.increment = true\nbantime.maxtime = 1w\nlogpath = /var/log/svc.log\nfilter = svc\n\
             [grows]\nenabled = true\n[fixed]\nenabled = true\n[faster]\nenabled = true\nbantime.factor = 2\n\
             bantime.multipliers = 1 3 9 27\n",
        ),
        ("jail.local", "[fixed]\nbantime.increment = false\n"),
    ]);
    let (_, yaml, out) = run_import(dir.path());
    let defaults = yaml.split("jails:").next().unwrap();
    assert!(!defaults.contains("bantime_increment"), "{yaml}");
    let config = crate::config::Config::load(&out.path().join("nftban.yaml")).unwrap();
    let increment = |name: &str| {
        let j = config.jails.iter().find(|j| j.name == name).unwrap();
        j.increment.map(|i| (i.factor, i.max.0.as_secs()))
    };
    assert_eq!(increment("grows"), Some((2.0, 7 * 86400)), "{yaml}");
    assert_eq!(increment("fixed"), None, "{yaml}");
    assert_eq!(increment("faster"), Some((3.0, 7 * 86400)), "{yaml}");

    // With every jail growing, the increment stays in `defaults:`.
    let dir = tree(&[(
        "jail.conf",
        "[DEFAULT]\nbantime.increment = true\nbantime.maxtime = 1w\n[svc]\nenabled = true\nlogpath = /var/log/svc.log\n",
    )]);
    let (_, yaml, _out) = run_import(dir.path());
    assert!(
        yaml.contains("defaults:\n  bantime_increment: {factor: 2, max: 7d}\n"),
        "{yaml}"
    );
    assert!(
        !yaml.split("jails:").nth(1).unwrap().contains("bantime_increment"),
        "{yaml}"
    );
}
