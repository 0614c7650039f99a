//! Hostile ruleset files: random YAML-ish text, the shipped rulesets
//! edited at random, and rulesets of the right shape with random rules
//! (regex syntax, tags, date patterns, modes, examples). Whatever the
//! text: [`Ruleset::parse`] and [`Matcher::new`] do not panic; an error
//! names the file and, when it is about a key, its line; what compiles
//! matches its own examples and hostile lines without panicking and gives
//! only addresses written in the line; and memory stays within a multiple
//! of the text plus what a few rules take. The memory is capped for real
//! (see [`crate::fuzz`]), so these tests run in a child process.

use std::cell::Cell;
use std::time::SystemTime;

use proptest::prelude::*;

use super::{appears, failure};
use crate::fuzz::{self, capped, test_path};
use crate::matcher::{Matcher, MatcherRef, Ruleset, RulesetError, SourceMatcher, Zone};

/// The file name errors must carry.
const ORIGIN: &str = "/etc/nftban/rulesets/fuzz.yaml";

/// Memory a ruleset may take besides a multiple of its size: compiling a
/// few rules near the regex library's size limit (10 MiB each).
const BASE: usize = 48 << 20;
/// Bytes of memory per byte of ruleset text.
const PER_BYTE: usize = 64;

/// The ruleset's keys, for random text.
const KEYS: &[&str] = &[
    "name",
    "description",
    "prefix",
    "prefregex",
    "failregex",
    "ignoreregex",
    "prefilter",
    "datepattern",
    "journalmatch",
    "modes",
    "aggressive",
    "examples",
    "line",
    "host",
    "mode",
];

/// What the YAML library says without a position.
const UNPLACED: &[&str] = &["repetition limit exceeded", "more than one document"];

/// Lines every compiled ruleset is also tried on.
const LINES: &[&str] = &[
    "",
    "Failed password for root from 192.0.2.1 port 22 ssh2",
    "fail 192.0.2.1' failed for '203.0.113.66' - Wrong password",
    "[2026-11-25 04:00:00] NOTICE[1] x.c: from [2001:db8::1]:5060 x",
    "Nov 25 04:00:00 host svc[1]: user \u{fffd}\0 from ::ffff:192.0.2.9",
    "25/Nov/2026:04:00:00 +0100 192.0.2.7 auth failed",
    "1700000000.123 198.51.100.1/24 by policy",
];

#[derive(Default)]
struct Tally {
    compiled: Cell<usize>,
    refused: Cell<usize>,
}

/// Parses and compiles `text` under the memory cap and checks what comes
/// out.
fn check(text: &str, tally: &Tally) -> Result<(), TestCaseError> {
    let cap = PER_BYTE * text.len() + BASE;
    let (result, peak) = capped(cap, || compile(text));
    prop_assert!(peak <= cap);
    match result {
        Ok(matchers) => {
            tally.compiled.set(tally.compiled.get() + 1);
            let rules = Ruleset::parse(ORIGIN, text).unwrap();
            let mut sm = SourceMatcher::new(matchers.iter().map(MatcherRef::Borrowed).collect(), Zone::Utc);
            let lines = rules
                .examples
                .iter()
                .map(|e| e.line.as_str())
                .chain(LINES.iter().copied());
            for line in lines {
                sm.match_line(line, SystemTime::now());
                for r in sm.results() {
                    if let Some(addr) = failure(r) {
                        prop_assert!(appears(line, addr), "{} is not in {:?}", addr, line);
                    }
                }
            }
        }
        Err(e) => {
            tally.refused.set(tally.refused.get() + 1);
            check_error(&e, text)?;
        }
    }
    Ok(())
}

/// The ruleset in `text` compiled as a jail would have it: the base rules
/// and each mode's.
fn compile(text: &str) -> Result<Vec<Matcher>, RulesetError> {
    let rules = Ruleset::parse(ORIGIN, text)?;
    let mut modes = vec![None];
    modes.extend(rules.modes.keys().map(|m| Some(m.as_str())));
    let mut out = Vec::new();
    for mode in modes {
        out.push(Matcher::new(&rules.with_mode(mode)?)?);
    }
    let unknown = rules.with_mode(Some("no such mode")).map(|_| ()).unwrap_err();
    assert!(unknown.message.contains("no mode `no such mode`"), "{unknown}");
    Ok(out)
}

/// An error names the file; when it is about a key, a line in the text.
fn check_error(e: &RulesetError, text: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(e.origin.as_str(), ORIGIN);
    let shown = e.to_string();
    prop_assert!(shown.starts_with(ORIGIN), "{}", shown);
    if !UNPLACED.iter().any(|u| e.message.contains(u)) {
        prop_assert!(e.at.is_some(), "no line in: {}\n--- text:\n{}", shown, text);
    }
    crate::yaml::fuzz::place_is_in(text, e.at, &shown)
}

/// Runs `check` on `cases` texts of `strategy` in a child process; both
/// compiled and refused texts must have come up.
fn check_all(test: &str, cases: u32, strategy: impl Strategy<Value = String>) {
    fuzz::in_child(&test_path(module_path!(), test), || {
        let tally = Tally::default();
        fuzz::run(cases, strategy, |text| check(&text, &tally));
        let (compiled, refused) = (tally.compiled.get(), tally.refused.get());
        assert!(compiled > 0 && refused > 0, "{compiled} compiled, {refused} refused");
    });
}

#[test]
fn random_text_is_refused_with_a_place() {
    let text = prop_oneof![
        fuzz::yamlish(KEYS, 60),
        // Most random text misses `failregex`: start from one.
        fuzz::yamlish(KEYS, 30).prop_map(|t| format!("name: x\nfailregex: ['<HOST>']\n{t}")),
    ];
    check_all("random_text_is_refused_with_a_place", 128, text);
}

/// The shipped rulesets edited at random.
#[test]
fn edited_rulesets_compile_or_are_refused_with_a_place() {
    let seeds: Vec<&str> = crate::matcher::ruleset::SHIPPED.iter().map(|(_, t)| *t).collect();
    let strategy = (proptest::sample::select(seeds), fuzz::edits(4)).prop_map(|(s, e)| fuzz::apply(s, &e));
    check_all("edited_rulesets_compile_or_are_refused_with_a_place", 48, strategy);
}

/// Pieces of rules that keep a regex valid: words logs hold, classes,
/// groups, repetitions, fail2ban field tags.
const GOOD: &[&str] = &[
    "Failed ",
    "from ",
    " port ",
    "'",
    "\\\"",
    "\\[",
    "\\]",
    "user ",
    "x",
    " ",
    ".*",
    ".*?",
    "[^']*",
    "\\S+",
    "\\d+",
    "[0-9]{1,3}",
    "(?:a|b)",
    "(?i:fail)",
    "a{20}",
    "[[:word:]]+",
    "\\b",
    "é",
    "\\x{10FFFF}",
    "(?::[0-9]+)?",
    "\\n",
];

/// Address tags: one makes a rule.
const TAGS: &[&str] = &[
    "<HOST>",
    "<ADDR>",
    "<IP4>",
    "<IP6>",
    "<SUBNET>",
    "<ADDR>/<CIDR>",
    "\\[<HOST>\\]",
];

/// Pieces that break a rule: unbalanced groups, look-around, back
/// references, a second address tag, unknown tags.
const BAD: &[&str] = &[
    "(",
    ")",
    "[",
    "{",
    "}",
    "(?=x)",
    "\\1",
    "(?<n>",
    "<HOST>",
    "<CIDR>",
    "<F-CONTENT>",
    "</F-CONTENT>",
    "<x>",
    "\\",
    "*",
    "+{2}",
    "(?P<host>",
    "\\p{Greek}",
    "\\Z",
    "(?P<f_user>\\S+)",
    "<F-USER>\\S+</F-USER>",
    "<F-ID/>",
];

/// A rule: good pieces around one tag, one time in eight a bad piece.
fn rule() -> impl Strategy<Value = String> {
    let pieces = || proptest::collection::vec(proptest::sample::select(GOOD), 0..6);
    let bad = proptest::option::weighted(0.125, (proptest::sample::select(BAD), any::<proptest::sample::Index>()));
    (pieces(), proptest::sample::select(TAGS), pieces(), any::<bool>(), bad).prop_map(|(a, tag, b, end, bad)| {
        let mut pieces = [a, vec![tag], b].concat();
        if end {
            pieces.push("$");
        }
        if let Some((piece, at)) = bad {
            pieces.insert(at.index(pieces.len() + 1), piece);
        }
        yaml_quoted(&pieces.concat())
    })
}

/// A regex without a tag (prefix, prefregex, ignoreregex).
fn regex() -> impl Strategy<Value = String> {
    let bad = proptest::option::weighted(0.125, proptest::sample::select(BAD));
    (proptest::collection::vec(proptest::sample::select(GOOD), 1..6), bad).prop_map(|(mut p, bad)| {
        p.extend(bad);
        yaml_quoted(&p.concat())
    })
}

/// `s` as a double-quoted YAML scalar.
fn yaml_quoted(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
    )
}

/// A block list of `n` items of `item`.
fn block_list(item: impl Strategy<Value = String>, n: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    proptest::collection::vec(item, n).prop_map(|r| r.iter().map(|r| format!("\n  - {r}")).collect())
}

const DATES: &[&str] = &[
    "asterisk",
    "syslog",
    "iso8601",
    "epoch",
    "\"%Y-%m-%d %H:%M:%S\"",
    "\"%d/%b/%Y:%H:%M:%S %z\"",
    "\"%s\"",
    "\"%Q\"",
    "\"%\"",
    "\"%%\"",
    "apache",
    "\"\"",
];

const HOSTS: &[&str] = &["192.0.2.1", "2001:db8::1", "null", "nope", "\"::ffff:192.0.2.1\""];

/// A ruleset of the right shape, in block style.
fn shaped() -> impl Strategy<Value = String> {
    let example = (
        proptest::collection::vec(
            proptest::sample::select(GOOD).prop_union(proptest::sample::select(TAGS)),
            0..10,
        ),
        proptest::sample::select(HOSTS),
        prop_oneof![6 => Just(""), 2 => Just("\n    mode: aggressive"), 1 => Just("\n    mode: nope")],
    )
        .prop_map(|(line, host, mode)| format!("\n  - line: {}\n    host: {host}{mode}", yaml_quoted(&line.concat())));
    (
        proptest::option::of(regex()),
        proptest::option::weighted(
            0.2,
            regex().prop_map(|r| format!("{}<F-CONTENT>.*</F-CONTENT>\"", &r[..r.len() - 1])),
        ),
        block_list(rule(), 1..5),
        block_list(regex(), 0..3),
        proptest::option::weighted(
            0.2,
            proptest::sample::select(&["x", "\"\"", "sshd[", "\"'\"", "fail"][..]),
        ),
        proptest::option::of(proptest::collection::vec(proptest::sample::select(DATES), 0..3)),
        proptest::option::of(block_list(rule(), 0..3)),
        proptest::collection::vec(example, 0..4),
    )
        .prop_map(|(prefix, prefregex, fail, ignore, prefilter, dates, mode, examples)| {
            let mut t = String::from("name: fuzz\n");
            if let Some(p) = prefix {
                t += &format!("prefix: {p}\n");
            }
            if let Some(p) = prefregex {
                t += &format!("prefregex: {p}\n");
            }
            t += &format!("failregex:{}\n", if fail.is_empty() { " []".into() } else { fail });
            if !ignore.is_empty() {
                t += &format!("ignoreregex:{ignore}\n");
            }
            if let Some(p) = prefilter {
                t += &format!("prefilter: {p}\n");
            }
            if let Some(d) = dates {
                t += &format!("datepattern: [{}]\n", d.join(", "));
            }
            if let Some(m) = mode {
                t += &format!(
                    "modes:\n  aggressive:\n    failregex:{}\n",
                    m.replace("\n  ", "\n      ")
                );
            }
            if !examples.is_empty() {
                t += &format!("examples:{}\n", examples.concat());
            }
            t
        })
}

#[test]
fn shaped_rulesets_compile_or_are_refused_with_a_place() {
    check_all("shaped_rulesets_compile_or_are_refused_with_a_place", 256, shaped());
}

/// Each rule holds what its automata take: `(?u:\w){100}<HOST>`, 18
/// bytes, once held some 19 MB, and 32 such rules (a 1 KiB file) some
/// 600 MB. A rule's automata are now bounded ([`crate::matcher::RULE_LIMIT`])
/// and so are a ruleset's ([`crate::matcher::RULESET_BUDGET`]).
#[test]
fn rules_take_memory_bounded_by_the_text() {
    fuzz::in_child(
        &test_path(module_path!(), "rules_take_memory_bounded_by_the_text"),
        || {
            let rules: String = (0..32)
                .map(|i| format!("\n  - \"(?u:\\\\w){{100}}<HOST> {i}$\""))
                .collect();
            let text = format!("name: heavy\nfailregex:{rules}\n");
            let cap = PER_BYTE * text.len() + BASE;
            let (result, peak) = capped(cap, || compile(&text).map(|m| m.len()));
            assert!(
                peak <= cap,
                "{peak} bytes for a ruleset of {} bytes: {result:?}",
                text.len()
            );
        },
    );
}
