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

const PATH: &str = "/etc/nftban/nftban.yaml";

/// Memory a config may take besides a multiple of its size: compiling the
/// rulesets of a few jails.
const BASE: usize = 16 << 20;
/// Bytes of memory per byte of config text.
const PER_BYTE: usize = 64;

/// The shipped config, with its jails on.
fn deploy() -> String {
    include_str!("../../deploy/nftban.yaml").replace("enabled: false", "enabled: true")
}

/// The configs of `tests.rs` (its `GOOD` and the variants its tests load).
const SEEDS: &[&str] = &[
    "\
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
",
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

/// A YAML value to render in block or flow style.
#[derive(Debug, Clone)]
enum Node {
    Scalar(String),
    List(Vec<Node>),
    /// Keys and values; flow style (`{k: v}`) when true.
    Map(Vec<(String, Node)>, bool),
}

impl Node {
    /// The node as the value of a key at `indent`: a block map on lines of
    /// its own, anything else on the key's line. Inside a flow collection
    /// everything is flow.
    fn render(&self, indent: usize, flow: bool, out: &mut String) {
        match self {
            Node::Scalar(s) => out.push_str(s),
            Node::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.render(indent, true, out);
                }
                out.push(']');
            }
            Node::Map(entries, as_flow) if *as_flow || flow => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(k);
                    out.push_str(": ");
                    v.render(indent, true, out);
                }
                out.push('}');
            }
            Node::Map(entries, _) => {
                for (k, v) in entries {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent));
                    out.push_str(k);
                    out.push(':');
                    if !matches!(v, Node::Map(_, false)) {
                        out.push(' ');
                    }
                    v.render(indent + 2, false, out);
                }
            }
        }
    }
}

/// A value: one of `good` three times in four, else one of `bad`.
fn scalar(good: &'static [&'static str], bad: &'static [&'static str]) -> BoxedStrategy<Node> {
    prop_oneof![3 => proptest::sample::select(good), 1 => proptest::sample::select(bad)]
        .prop_map(|s| Node::Scalar(s.to_string()))
        .boxed()
}

fn list(good: &'static [&'static str], bad: &'static [&'static str]) -> BoxedStrategy<Node> {
    proptest::collection::vec(scalar(good, bad), 0..3)
        .prop_map(Node::List)
        .boxed()
}

/// A mapping of some of `fields` (key, value), each there with
/// probability `p`, in block or flow style.
fn map(p: f64, fields: Vec<(&'static str, BoxedStrategy<Node>)>) -> BoxedStrategy<Node> {
    let entries: Vec<BoxedStrategy<Option<(String, Node)>>> = fields
        .into_iter()
        .map(|(k, v)| proptest::option::weighted(p, v.prop_map(move |v| (k.to_string(), v))).boxed())
        .collect();
    (entries, any::<bool>())
        .prop_map(|(entries, flow)| Node::Map(entries.into_iter().flatten().collect(), flow))
        .boxed()
}

/// Good and bad values per kind of key.
const DURATIONS: (&[&str], &[&str]) = (
    &["10m", "1h30m", "90", "1w", "1d"],
    &[
        "0",
        "0s",
        "-5",
        "1h30",
        "10x",
        "1.5h",
        "\"\"",
        "99999999999999999999",
        "18446744073709551615",
        "18446744073709551615w",
        "~",
        "[1h]",
    ],
);
const COUNTS: (&[&str], &[&str]) = (
    &["1", "3", "5", "2"],
    &["0", "-1", "4294967296", "1.5", "x", "99999999999999999999999"],
);
const FACTORS: (&[&str], &[&str]) = (
    &["1", "2", "100", "1.5"],
    &["0.5", "101", ".nan", ".inf", "-0", "1e308"],
);
const ADDRESSES: (&[&str], &[&str]) = (
    &[
        "127.0.0.0/8",
        "\"::1\"",
        "192.0.2.1",
        "2001:db8::/32",
        "::ffff:192.0.2.0/120",
    ],
    &[
        "192.0.2.1/24",
        "10.0.0.0/33",
        "2001:db8::/129",
        "nope",
        "\"\"",
        "0.0.0.0/0",
    ],
);
const RULESETS: (&[&str], &[&str]) = (
    &["sshd", "postfix", "dovecot", "kamailio", "freeswitch", "nginx"],
    &[
        "astrisk",
        "/nonexistent/x.yaml",
        "mine.yaml",
        "../x.yml",
        "\"\"",
        "[sshd]",
    ],
);
const MODES: (&[&str], &[&str]) = (&["normal", "aggressive"], &["turbo", "\"\"", "~"]);
const FILES: (&[&str], &[&str]) = (
    &["/var/log/auth.log", "/var/log/*.log", "/var/log/x"],
    &["auth.log", "/var/*/x.log", "\"/var/log/[\"", "\"\"", "/", "~"],
);
const JOURNAL: (&[&str], &[&str]) = (&["_SYSTEMD_UNIT=ssh.service"], &["ssh.service", "=x", "\"\"", "A=b=c"]);
const BOOLS: (&[&str], &[&str]) = (&["true", "false"], &["yes", "1", "~"]);
const NAMES: &[&str] = &[
    "sshd", "asterisk", "web", "manual", "recidive", "9bad", "a b", "x-y_z", "\"\"", "ä",
];
const TABLES: (&[&str], &[&str]) = (&["nftban", "nft-ban"], &["1x", "\"\"", "a.b"]);
const ACTIONS: (&[&str], &[&str]) = (&["drop", "reject"], &["explode", "~"]);
const HOOKS: (&[&str], &[&str]) = (&["input", "forward", "prerouting"], &["output", "input"]);
const TARGETS: (&[&str], &[&str]) = (
    &["stderr", "journald", "syslog", "/var/log/nftban.log"],
    &["file", "\"\""],
);
const LEVELS: (&[&str], &[&str]) = (&["info", "debug"], &["loud", "\"\""]);
const PATHS: (&[&str], &[&str]) = (&["/run/x.sock", "/var/lib/x.db"], &["relative", "\"\"", "/"]);
const PREFIXES: (&[&str], &[&str]) = (&["64", "48", "56"], &["0", "128", "300"]);
const LISTEN: (&[&str], &[&str]) = (&["127.0.0.1:9100", "\"[::1]:9100\""], &["nowhere", "\"\""]);

fn value((good, bad): (&'static [&'static str], &'static [&'static str])) -> BoxedStrategy<Node> {
    scalar(good, bad)
}

fn values((good, bad): (&'static [&'static str], &'static [&'static str])) -> BoxedStrategy<Node> {
    list(good, bad)
}

fn jail() -> BoxedStrategy<Node> {
    let required = (value(RULESETS), values(FILES), any::<bool>());
    let optional = map(
        0.3,
        vec![
            ("mode", value(MODES)),
            ("journal", values(JOURNAL)),
            ("stdin", value(BOOLS)),
            ("enabled", value(BOOLS)),
            ("findtime", value(DURATIONS)),
            ("maxretry", value(COUNTS)),
            ("bantime", value(DURATIONS)),
            ("ignoreip", values(ADDRESSES)),
            ("max_tracked", value(COUNTS)),
            ("bantime_increment", increment()),
            ("ipv6_escalation", escalation()),
        ],
    );
    (required, optional, proptest::bool::weighted(0.05))
        .prop_map(|((ruleset, files, flow), optional, typo)| {
            let mut entries = vec![("ruleset".to_string(), ruleset), ("files".to_string(), files)];
            if let Node::Map(more, _) = optional {
                entries.extend(more);
            }
            if typo {
                entries.push(("frobnicate".into(), Node::Scalar("1".into())));
            }
            Node::Map(entries, flow)
        })
        .boxed()
}

fn increment() -> BoxedStrategy<Node> {
    map(0.8, vec![("factor", value(FACTORS)), ("max", value(DURATIONS))])
}

fn escalation() -> BoxedStrategy<Node> {
    map(0.8, vec![("prefix", value(PREFIXES)), ("threshold", value(COUNTS))])
}

/// A whole config of the right shape; its top level in flow style
/// (`{jails: ...}`, as JSON is) with probability `flow`.
fn shaped(flow: f64) -> impl Strategy<Value = String> {
    let jails = proptest::collection::vec((proptest::sample::select(NAMES), jail()), 0..3)
        .prop_map(|j| Node::Map(j.into_iter().map(|(n, j)| (n.to_string(), j)).collect(), false))
        .boxed();
    let top = map(
        0.5,
        vec![
            ("socket", value(PATHS)),
            ("database", value(PATHS)),
            ("history_keep", value(DURATIONS)),
            (
                "log",
                map(0.5, vec![("target", value(TARGETS)), ("level", value(LEVELS))]),
            ),
            (
                "nftables",
                map(
                    0.5,
                    vec![
                        ("table", value(TABLES)),
                        ("action", value(ACTIONS)),
                        ("hooks", values(HOOKS)),
                    ],
                ),
            ),
            (
                "defaults",
                map(
                    0.3,
                    vec![
                        ("findtime", value(DURATIONS)),
                        ("maxretry", value(COUNTS)),
                        ("bantime", value(DURATIONS)),
                        ("ignoreip", values(ADDRESSES)),
                        ("max_tracked", value(COUNTS)),
                        ("bantime_increment", increment()),
                        ("ipv6_escalation", escalation()),
                    ],
                ),
            ),
            ("jails", jails),
            (
                "recidive",
                map(
                    0.8,
                    vec![
                        ("findtime", value(DURATIONS)),
                        ("maxretry", value(COUNTS)),
                        ("bantime", value(DURATIONS)),
                    ],
                ),
            ),
            ("metrics", map(0.9, vec![("listen", value(LISTEN))])),
        ],
    );
    (top, proptest::bool::weighted(flow)).prop_map(|(node, flow)| {
        let mut out = String::new();
        match node {
            Node::Map(entries, _) => Node::Map(entries, flow).render(0, false, &mut out),
            other => other.render(0, false, &mut out),
        }
        out.trim_start().to_string() + "\n"
    })
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
