//! Hostile config text: random YAML-ish text, and the shipped config and
//! the configs of `tests.rs` edited at random (lines deleted, duplicated,
//! swapped, cut; huge numbers, long strings, deep nesting, tabs, bytes
//! that are not UTF-8 read lossily). Whatever the text, [`Config::from_text`]
//! does not panic, its error names the file (and a line when it is about a
//! key), and it takes no more memory than a small multiple of the text
//! plus what compiling a few rulesets takes. The memory is capped for real
//! (see [`crate::fuzz`]), so these tests run in a child process.

use std::cell::Cell;

use proptest::prelude::*;

use super::*;
use crate::fuzz::{self, capped, test_path};
use crate::yaml::report;

mod shaped;
use shaped::shaped;

const PATH: &str = "/etc/nftban/nftban.yaml";

/// Memory a config may take besides a multiple of its size: compiling the
/// rulesets of a few jails.
const BASE: usize = 16 << 20;
/// Bytes of memory per byte of config text.
const PER_BYTE: usize = 64;

/// The shipped config, with its jails on.
fn deploy() -> String {
    include_str!("../../../deploy/nftban.yaml").replace("enabled: false", "enabled: true")
}

/// The configs of `tests.rs` (its `GOOD` and the variants its tests load).
const SEEDS: &[&str] = &[
    super::tests::GOOD,
    "\
nftables: {table: nftban, action: reject, hooks: [forward, prerouting, input]}
defaults: {bantime: 1h, bantime_increment: {factor: 2, max: 1d}, ipv6_escalation: {prefix: 64, threshold: 3}}
jails:
  sshd:
    ruleset: sshd
    mode: normal
    journal: [_SYSTEMD_UNIT=ssh.service]
    files: [\"/var/log/auth*.log\"]
    enabled: true
recidive: {findtime: 1d, maxretry: 3, bantime: 1w}
metrics: {listen: 127.0.0.1:9100}
",
    "jails:\n  mine:\n    ruleset: mine.yaml\n    files: [/var/log/x]\n    stdin: true\n    max_tracked: 10\n",
];

/// The config's keys, for random text.
const KEYS: &[&str] = &[
    "socket",
    "database",
    "history_keep",
    "log",
    "target",
    "level",
    "nftables",
    "table",
    "action",
    "hooks",
    "defaults",
    "findtime",
    "maxretry",
    "bantime",
    "ignoreip",
    "bantime_increment",
    "factor",
    "max",
    "ipv6_escalation",
    "prefix",
    "threshold",
    "max_tracked",
    "jails",
    "sshd",
    "ruleset",
    "mode",
    "files",
    "journal",
    "stdin",
    "enabled",
    "recidive",
    "metrics",
    "listen",
];

/// What the YAML library says without a position: problems of the whole
/// document, not of a key.
const UNPLACED: &[&str] = &["repetition limit exceeded", "more than one document"];

/// How the texts of a run fared, so a run shows it tried both ways.
#[derive(Default)]
struct Tally {
    loaded: Cell<usize>,
    refused: Cell<usize>,
}

/// Loads `text` under the memory cap and checks what comes out.
fn check(text: &str, tally: &Tally) -> Result<(), TestCaseError> {
    let cap = PER_BYTE * text.len() + BASE;
    let (result, peak) = capped(cap, || Config::from_text(Path::new(PATH), text));
    prop_assert!(peak <= cap);
    match result {
        Ok(config) => {
            tally.loaded.set(tally.loaded.get() + 1);
            let spec = config.table_spec();
            prop_assert_eq!(spec.jails.last().map(String::as_str), Some(MANUAL_JAIL));
            prop_assert!(config.jails.iter().all(|j| valid_jail_name(&j.name)));
        }
        Err(e) => {
            tally.refused.set(tally.refused.get() + 1);
            check_error(&e, text)?
        }
    }
    Ok(())
}

/// A config error names the file; when it is about a key (a key path, or
/// the YAML library's message about a field or a value), a line in the
/// text too.
fn check_error(e: &ConfigError, text: &str) -> Result<(), TestCaseError> {
    let shown = report(e);
    prop_assert_eq!(e.file.as_str(), PATH);
    prop_assert!(shown.starts_with(PATH), "{}", shown);
    let about_a_key = match &e.error {
        Problem::Yaml(m) => !UNPLACED.iter().any(|u| m.contains(u)),
        _ => e.key.is_some(),
    };
    if about_a_key {
        prop_assert!(e.at.is_some(), "no line in: {}\n--- text:\n{}", shown, text);
    }
    crate::yaml::fuzz::place_is_in(text, e.at, &shown)
}

/// Runs `check` on `cases` texts of `strategy` in a child process, under
/// the memory cap; both loaded and refused texts must have come up.
fn check_all(test: &str, cases: u32, strategy: impl Strategy<Value = String>) {
    fuzz::in_child(&test_path(module_path!(), test), || {
        let tally = Tally::default();
        fuzz::run(cases, strategy, |text| check(&text, &tally));
        let (loaded, refused) = (tally.loaded.get(), tally.refused.get());
        assert!(loaded > 0 && refused > 0, "{loaded} loaded, {refused} refused");
    });
}

/// Random text made of YAML's tokens and the config's keys.
#[test]
fn random_text_is_refused_with_a_place() {
    check_all("random_text_is_refused_with_a_place", 128, fuzz::yamlish(KEYS, 60));
}

/// The configs of `tests.rs` and the shipped one, edited at random.
#[test]
fn edited_configs_load_or_are_refused_with_a_place() {
    let mut seeds: Vec<String> = SEEDS.iter().map(|s| s.to_string()).collect();
    seeds.push(deploy());
    let strategy = (proptest::sample::select(seeds), fuzz::edits(6)).prop_map(|(seed, e)| fuzz::apply(&seed, &e));
    check_all("edited_configs_load_or_are_refused_with_a_place", 96, strategy);
}

/// Configs of the right shape with values good and bad, each mapping in
/// block or flow style at random: the checks after parsing (durations,
/// counts, names, paths, addresses) meet every kind of value and still
/// name the key and its line.
#[test]
fn shaped_configs_load_or_are_refused_with_a_place() {
    check_all("shaped_configs_load_or_are_refused_with_a_place", 160, shaped(0.0));
}

/// The same written in flow style, as JSON is (which is YAML too):
/// `{log: {level: loud}}` is refused as `log.level: ... must be one of`
/// at the line of `level`.
#[test]
fn flow_style_configs_are_refused_with_a_place() {
    check_all("flow_style_configs_are_refused_with_a_place", 160, shaped(1.0));
}

/// How long loading a small hostile config may take: a stand-in for "it
/// never finishes" (a sound parser answers in well under a second).
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Loads `text` from a config file in `dir` on a thread capped like
/// [`check`], within [`DEADLINE`]: the answer (jails loaded, or the error
/// as shown) and the memory taken. Call in a child process.
fn load_bounded(dir: &Path, text: &str) -> Option<(Result<usize, String>, usize)> {
    let path = dir.join("nftban.yaml");
    let text = text.to_string();
    let cap = PER_BYTE * text.len() + BASE;
    fuzz::bounded(DEADLINE, cap, move || {
        Config::from_text(&path, &text)
            .map(|c| c.jails.len())
            .map_err(|e| report(&e))
    })
}

/// A compiled ruleset takes about 0.7 MB (`asterisk`). When each jail
/// compiled its own copy, memory grew with the number of jails, not with
/// the text: 50 jails on one ruleset (a 2 KiB config) took some 33 MB, and
/// a 64 KiB config of 1,600 jails about 1 GB. Jails on the same ruleset
/// and mode now share one matcher.
#[test]
fn jails_on_one_ruleset_take_memory_bounded_by_the_text() {
    fuzz::in_child(
        &test_path(module_path!(), "jails_on_one_ruleset_take_memory_bounded_by_the_text"),
        || {
            let jails: String = (0..50)
                .map(|i| format!("  j{i}: {{ruleset: asterisk, files: [/x]}}\n"))
                .collect();
            let text = format!("jails:\n{jails}");
            let dir = tempfile::tempdir().unwrap();
            let (result, memory) = load_bounded(dir.path(), &text).expect("an answer");
            assert_eq!(result, Ok(50));
            let cap = PER_BYTE * text.len() + BASE;
            assert!(memory <= cap, "{memory} bytes for a config of {} bytes", text.len());
        },
    );
}

/// YAML aliases repeat a list wherever they are used: one `ignoreip` list
/// of 1,500 addresses named by 850 disabled jails (a 61 KiB config)
/// would become 1.3 million strings, some 50 MB; the memory would grow
/// with the square of the text. serde_yaml_ng's repetition limit (100
/// alias uses per event) does not stop it; `yaml::expansion` refuses it.
#[test]
fn aliases_take_memory_bounded_by_the_text() {
    fuzz::in_child(
        &test_path(module_path!(), "aliases_take_memory_bounded_by_the_text"),
        || {
            let list: Vec<String> = (0..1500).map(|i| format!("10.0.{}.{}", i / 250, i % 250)).collect();
            let mut text = format!("defaults: {{ignoreip: &a [{}]}}\njails:\n", list.join(", "));
            for i in 0..850 {
                text.push_str(&format!("  j{i}: {{enabled: false, ruleset: x, ignoreip: *a}}\n"));
            }
            assert!(text.len() < 64 << 10, "{}", text.len());
            let dir = tempfile::tempdir().unwrap();
            let (result, memory) = load_bounded(dir.path(), &text).expect("an answer");
            let cap = PER_BYTE * text.len() + BASE;
            assert!(
                memory <= cap,
                "{memory} bytes for a config of {} bytes: {result:?}",
                text.len()
            );
        },
    );
}

/// A config whose aliases expand it to just under the limit loads, and
/// within the memory cap: the limit is one the memory bound holds at.
/// One `ignoreip` list named by as many disabled jails as the limit lets
/// through (their lists are built all the same).
#[test]
fn aliases_up_to_the_limit_load_within_the_cap() {
    fuzz::in_child(
        &test_path(module_path!(), "aliases_up_to_the_limit_load_within_the_cap"),
        || {
            let list: Vec<String> = (0..200).map(|i| format!("2001:db8::{i:x}")).collect();
            let text = |jails: usize| {
                let mut text = format!("defaults: {{ignoreip: &a [{}]}}\njails:\n", list.join(", "));
                for i in 0..jails {
                    text.push_str(&format!("  j{i}: {{enabled: false, ruleset: x, ignoreip: *a}}\n"));
                }
                text
            };
            let jails = (1..1000)
                .take_while(|&n| crate::yaml::expansion(&text(n)).is_none())
                .last()
                .unwrap();
            assert!((50..999).contains(&jails), "{jails}");
            let text = text(jails);
            let dir = tempfile::tempdir().unwrap();
            let (result, memory) = load_bounded(dir.path(), &text).expect("an answer");
            assert_eq!(result, Ok(0));
            let cap = PER_BYTE * text.len() + BASE;
            assert!(memory <= cap, "{memory} bytes for a config of {} bytes", text.len());
        },
    );
}

/// A jail's `ruleset:` path is read to its end whatever it is: `/dev/zero`
/// grows memory until the process dies (here, until the cap makes the
/// read fail with "out of memory"), and a FIFO blocks `check`, `run` and
/// `reload` for as long as no one writes to it. A ruleset path that is
/// not a regular file must be refused, naming it, without reading it.
#[test]
fn a_ruleset_path_that_is_no_file_is_refused() {
    fuzz::in_child(
        &test_path(module_path!(), "a_ruleset_path_that_is_no_file_is_refused"),
        || {
            let dir = tempfile::tempdir().unwrap();
            let fifo = dir.path().join("fifo.yaml");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            let mut wrong = Vec::new();
            for path in ["/dev/zero", "fifo.yaml"] {
                let text = format!("jails:\n  j:\n    ruleset: {path}\n    files: [/x]\n");
                match load_bounded(dir.path(), &text) {
                    None => wrong.push(format!("{path}: no answer within {DEADLINE:?}")),
                    Some((Ok(_), _)) => wrong.push(format!("{path}: loaded")),
                    Some((Err(e), memory)) if memory >= 1 << 20 || !e.contains(path) || !e.contains(":3:") => {
                        wrong.push(format!("{path}: {memory} bytes taken to refuse it: {e}"))
                    }
                    Some(_) => {}
                }
            }
            assert!(wrong.is_empty(), "{wrong:#?}");
        },
    );
}

/// A duration of the wrong type (`bantime: -5`, `[1h]`, `~`) is refused
/// with serde's "data did not match any variant of untagged enum Raw",
/// which names a type inside nftban and not what a duration is.
#[test]
fn a_duration_of_the_wrong_type_says_what_a_duration_is() {
    for value in ["-5", "[1h]", "{h: 1}", "1.5"] {
        let text = format!("defaults: {{bantime: {value}}}\n");
        let e = Config::from_text(Path::new(PATH), &text).unwrap_err();
        let shown = report(&e);
        assert!(!shown.contains("Raw") && shown.contains("duration"), "{value}: {shown}");
    }
}
