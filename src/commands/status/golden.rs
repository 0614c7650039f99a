//! Golden files of `status` for people, from one fixed [`Status`]: the
//! table on a terminal, the plain form on a pipe, one jail. A change of
//! layout shows in review as a change of these files. Written anew with
//! `NFTBAN_WRITE_GOLDEN=1 cargo test --lib commands::status::golden`.

use std::collections::BTreeMap;
use std::path::Path;

use super::{format_all, format_jail, table};
use crate::status::{Banned, JailStatus, Offender, SourceStatus, Status};

fn source(path: &str, state: &str, lines: u64, matched: u64, diagnosis: &str) -> SourceStatus {
    SourceStatus {
        path: path.into(),
        state: state.into(),
        error: None,
        lines,
        matched,
        too_old: 0,
        truncated: 0,
        invalid_utf8: 0,
        last_match_ago: (matched > 0).then_some(42),
        diagnosis: diagnosis.into(),
        files: vec![],
    }
}

fn jail(name: &str, ruleset: &str, sources: Vec<SourceStatus>) -> JailStatus {
    JailStatus {
        name: name.into(),
        ruleset: ruleset.into(),
        files: sources.iter().map(|s| s.path.clone()).collect(),
        journal: vec![],
        currently_failed: 0,
        total_failed: 0,
        not_counted: Default::default(),
        currently_banned: 0,
        total_banned: 0,
        bans_by_origin: BTreeMap::new(),
        total_unbanned: 0,
        banned: vec![],
        packets: 0,
        bytes: 0,
        kernel_errors: 0,
        findtime: 600,
        maxretry: 3,
        bantime: 3600,
        evicted: 0,
        sources,
        names: None,
    }
}

/// A busy host: a PBX jail at work, an SSH jail with one of its two logs
/// missing, a jail with a long name, a kernel meter's jail, manual and
/// recidive; offenders IPv4 and IPv6.
pub fn fixture() -> Status {
    let mut asterisk = jail(
        "asterisk",
        "asterisk",
        vec![source(
            "/var/log/asterisk/messages",
            "reading",
            48_211,
            1_377,
            "48211 lines read, 1377 matched",
        )],
    );
    asterisk.currently_failed = 3;
    asterisk.total_failed = 1_377;
    asterisk.currently_banned = 2;
    asterisk.total_banned = 412;
    asterisk.bans_by_origin = BTreeMap::from([("auto".into(), 411), ("escalated".into(), 1)]);
    asterisk.banned = vec![
        Banned {
            ip: "198.51.100.23".into(),
            expires_in: 3_112,
            reason: None,
        },
        Banned {
            ip: "2001:db8:1:2::/64".into(),
            expires_in: 86_000,
            reason: Some("escalated: 3 addresses in 2001:db8:1:2::/64".into()),
        },
    ];
    asterisk.packets = 1_254_331;
    asterisk.bytes = 562_000_000;
    let mut sshd = jail(
        "sshd",
        "sshd",
        vec![
            source("/var/log/auth.log", "reading", 9_000, 12, "9000 lines read, 12 matched"),
            source(
                "/var/log/secure",
                "missing",
                0,
                0,
                "missing: /var/log/secure does not exist (yet)",
            ),
        ],
    );
    sshd.currently_failed = 1;
    sshd.total_failed = 12;
    sshd.total_banned = 3;
    sshd.packets = 77;
    sshd.bytes = 4_620;
    let mut long = jail(
        "kamailio-edge-proxy-frankfurt",
        "kamailio",
        vec![source(
            "/var/log/kamailio/*.log",
            "no_match",
            0,
            0,
            "no file matches /var/log/kamailio/*.log yet",
        )],
    );
    long.total_failed = 0;
    let mut sip = jail("sip", "-", vec![]);
    sip.currently_banned = 14;
    sip.total_banned = 140_000;
    sip.bans_by_origin = BTreeMap::from([("kernel meter".into(), 140_000)]);
    sip.packets = 7_100_000_000;
    let mut manual = jail("manual", "-", vec![]);
    manual.currently_banned = 1;
    manual.total_banned = 1;
    manual.banned = vec![Banned {
        ip: "203.0.113.0/24".into(),
        expires_in: 600,
        reason: None,
    }];
    let recidive = jail("recidive", "-", vec![]);
    Status {
        jails: vec![asterisk, sshd, long, sip, manual, recidive],
        kernel_errors: 2,
        history_errors: 0,
        history_waiting: 0,
        history_dropped: 0,
        most_banned: vec![
            Offender {
                ip: "2001:db8:ffff:ffff:ffff:ffff:ffff:ff01".into(),
                bans: 9,
                failures: 0,
            },
            Offender {
                ip: "198.51.100.23".into(),
                bans: 4,
                failures: 0,
            },
            Offender {
                ip: "203.0.113.77".into(),
                bans: 2,
                failures: 2,
            },
        ],
        most_failed: vec![
            Offender {
                ip: "192.0.2.200".into(),
                bans: 0,
                failures: 2,
            },
            Offender {
                ip: "203.0.113.77".into(),
                bans: 2,
                failures: 2,
            },
        ],
        fleet: None,
        feeds: Vec::new(),
    }
}

/// Compare with the golden file `name`, or write it with
/// `NFTBAN_WRITE_GOLDEN=1`.
fn golden(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/commands/status/golden")
        .join(name);
    if std::env::var_os("NFTBAN_WRITE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        got == want,
        "{} differs (NFTBAN_WRITE_GOLDEN=1 writes it anew):\n--- want\n{want}--- got\n{got}---",
        path.display()
    );
}

#[test]
fn the_terminal_table() {
    let text = table::render(&fixture());
    for line in text.lines() {
        assert!(line.chars().count() <= table::WIDTH, "wider than 80 columns: `{line}`");
    }
    golden("overview-terminal.txt", &text);
}

#[test]
fn the_plain_form_on_a_pipe() {
    golden("overview-plain.txt", &format_all(&fixture()));
}

#[test]
fn one_jail() {
    golden("jail-asterisk.txt", &format_jail(&fixture().jails[0]));
}

/// A quiet host: no offender, nothing failing: no empty offender table.
#[test]
fn the_terminal_table_of_a_quiet_host() {
    let mut st = fixture();
    st.most_banned.clear();
    st.most_failed.clear();
    st.kernel_errors = 0;
    st.jails.truncate(1);
    golden("overview-quiet.txt", &table::render(&st));
}

/// A jail with sources in three states: its SOURCES cell is not cut
/// while the table has room (it was cut at 20 characters, "1 missing, 1
/// no mat~", in a table far narrower than 80 columns).
#[test]
fn the_sources_column_widens_while_there_is_room() {
    let mut st = fixture();
    st.jails.truncate(1);
    st.jails[0].name = "myapp".into();
    st.jails[0].sources = vec![
        source("/var/log/a.log", "missing", 0, 0, ""),
        source("/var/log/b*.log", "no_match", 0, 0, ""),
        source("/var/log/c.log", "reading", 10, 0, ""),
    ];
    let text = table::render(&st);
    assert!(text.contains("1 missing, 1 no match, 1 ok "), "{text}");
    for line in text.lines() {
        assert!(line.chars().count() <= table::WIDTH, "wider than 80 columns: `{line}`");
    }
}

/// docs/cli.md shows the table as it is: its example is the golden file.
#[test]
fn the_docs_show_the_table_as_it_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("docs/cli.md")).unwrap();
    let golden = std::fs::read_to_string(root.join("src/commands/status/golden/overview-terminal.txt")).unwrap();
    let first = golden.lines().next().unwrap();
    let start = docs
        .find(&format!("```\n{first}\n"))
        .expect("docs/cli.md shows the table of `status` for people")
        + 4;
    let end = start + docs[start..].find("```").unwrap();
    assert_eq!(
        docs[start..end],
        golden,
        "docs/cli.md's table differs from {}",
        "overview-terminal.txt"
    );
}
