//! Hostile input through the commands that read it: config files, ruleset
//! files, fail2ban filters and logs as an attacker (or a careless copy and
//! paste) makes them. Whatever the input, `nftban check` and `nftban test`
//! answer with their documented exit codes (0, 1, 2) and a message that
//! names the file; never a panic (exit code 101). The parsers' properties
//! are property tests beside them (`src/config/fuzz/`,
//! `src/matcher/fuzz/`); these check the commands around them.

use std::path::Path;
use std::process::Output;

use crate::support::*;

/// The exit code is one the CLI documents and nothing panicked.
fn answered(o: &Output, what: &str) {
    let err = stderr(o);
    assert!(matches!(o.status.code(), Some(0..=2)), "{what}: {}\n{err}", o.status);
    assert!(!err.contains("panicked"), "{what}: {err}");
}

/// Config texts that break parsers, by name.
fn hostile_configs() -> Vec<(&'static str, Vec<u8>)> {
    let mut deep_block = String::new();
    for d in 0..1000 {
        deep_block += &format!("{}k{d}:\n", " ".repeat(d));
    }
    vec![
        ("empty", b"".to_vec()),
        ("NULs", b"\0\0\0\n".to_vec()),
        ("not UTF-8", b"jails:\n  \xff\xfe:\n    ruleset: sshd\n".to_vec()),
        ("byte order mark", "\u{feff}socket: /run/x.sock\n".into()),
        ("JSON with a bad value", br#"{"log": {"level": "loud"}}"#.to_vec()),
        ("deep flow nesting", "[".repeat(10_000).into()),
        ("deep block nesting", deep_block.into()),
        ("a 60 KiB value", format!("socket: /{}\n", "x".repeat(60 << 10)).into()),
        ("tabs for indent", b"jails:\n\tsshd:\n\t\truleset: sshd\n".to_vec()),
        (
            "a number past 64 bits",
            b"defaults: {maxretry: 99999999999999999999999}\n".to_vec(),
        ),
        ("an alias to nothing", b"defaults: {ignoreip: *a}\n".to_vec()),
        ("two documents", b"socket: /a\n---\nsocket: /b\n".to_vec()),
        ("a tag", b"socket: !!binary aGVsbG8=\n".to_vec()),
        (
            "a jail with every kind of bad value",
            b"jails:\n  j:\n    ruleset: sshd\n    files: [rel, \"/a/*/b\", \"/x[\"]\n    maxretry: -1\n".to_vec(),
        ),
    ]
}

#[test]
fn check_answers_every_hostile_config() {
    let dir = tempfile::tempdir().unwrap();
    for (what, text) in hostile_configs() {
        let config = dir.path().join("nftban.yaml");
        std::fs::write(&config, &text).unwrap();
        let o = run(nftban().arg("check").arg("--config").arg(&config));
        answered(&o, what);
        if o.status.code() == Some(2) {
            let err = stderr(&o);
            assert!(
                err.contains(&config.display().to_string()),
                "{what}: the message names the file: {err}"
            );
        }
    }
}

/// A log no service writes: junk bytes, NULs, lone CRs, invalid UTF-8, a
/// line of 2 MiB, empty lines, and every shipped example line with a
/// forged suffix naming 203.0.113.66 put into it at every quote.
fn hostile_log() -> Vec<u8> {
    let mut log = Vec::new();
    // A fixed pseudo-random sequence: the same junk on every run.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..200 {
        for _ in 0..(x % 300) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            log.push((x >> 24) as u8);
        }
        log.extend_from_slice(b"\n");
    }
    log.extend_from_slice(b"\0\0\0\r\r\n\n\n\xff\xfe\xfd\n");
    log.extend_from_slice(&vec![b'a'; 2 << 20]);
    log.push(b'\n');
    let rulesets = Path::new(env!("CARGO_MANIFEST_DIR")).join("rulesets");
    for entry in std::fs::read_dir(rulesets).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines().filter_map(|l| l.trim_start().strip_prefix("- line: ")) {
            let line: String = serde_json::from_str(line).unwrap_or_else(|_| line.trim_matches('\'').to_string());
            log.extend_from_slice(line.as_bytes());
            log.push(b'\n');
            for (i, _) in line.match_indices(['\'', '"', ' ']).step_by(3) {
                let forged = [
                    "' failed for '203.0.113.66' - Wrong password",
                    " from 203.0.113.66 port 22 ssh2",
                ];
                for f in forged {
                    log.extend_from_slice(format!("{}{f}{}\n", &line[..i], &line[i..]).as_bytes());
                }
            }
        }
    }
    log
}

const SHIPPED: &[&str] = &[
    "asterisk",
    "sshd",
    "sshd-aggressive",
    "kamailio",
    "freeswitch",
    "postfix",
    "dovecot",
    "nginx",
];

/// `nftban test` reads the hostile log with every shipped ruleset and a
/// fail2ban filter: it answers, its JSON parses, and the forged address
/// is never among the hosts.
#[test]
fn test_reads_a_hostile_log_with_every_ruleset() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hostile.log");
    std::fs::write(&log, hostile_log()).unwrap();
    let filter = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fail2ban/dropbear.conf");
    let rules: Vec<String> = SHIPPED
        .iter()
        .map(|s| s.to_string())
        .chain([filter.display().to_string(), "from <HOST>".into()])
        .collect();
    let mut matched = 0;
    for rule in rules {
        let o = run(nftban().arg("test").arg(&log).arg(&rule).arg("--json"));
        answered(&o, &rule);
        let report: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{rule}: {e}: {}", stdout(&o)));
        let hosts = report["hosts"].as_object().expect("hosts");
        if rule != "from <HOST>" {
            assert!(!hosts.contains_key("203.0.113.66"), "{rule} bans the forged address");
        }
        matched += report["matched"].as_u64().unwrap();
    }
    assert!(matched > 0, "the example lines in the log match");
}

/// A fail2ban filter that includes itself is refused with a message that
/// names the file and says why.
#[test]
fn test_refuses_a_filter_whose_includes_loop() {
    let dir = tempfile::tempdir().unwrap();
    let filter = dir.path().join("loop.conf");
    std::fs::write(
        &filter,
        "[INCLUDES]\nbefore = loop.conf\n[Definition]\nfailregex = fail <HOST>\n",
    )
    .unwrap();
    let log = dir.path().join("x.log");
    std::fs::write(&log, "fail 192.0.2.1\n").unwrap();
    let o = run(nftban().arg("test").arg(&log).arg(&filter));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("loop.conf") && err.contains("[INCLUDES]"), "{err}");
}
