//! Lines an attacker writes, fed to every shipped ruleset: random bytes
//! (read as lossy UTF-8, as the readers do), random printable text, and
//! lines spliced from the rulesets' own example lines with quotes,
//! brackets, decoy phrases, addresses, newlines, NULs and long runs put
//! in, up to 1 MiB (the longest line the readers pass on). Whatever the
//! line: no panic; an address given is written in the line; every jail on
//! one source answers as it does alone; the buffer scan passes over no
//! line a rule matches; and matching a line allocates nothing once the
//! matcher's caches are warm.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::SystemTime;

use proptest::prelude::*;
use proptest::sample::Index;

use super::{all_matchers, appears, example_lines, failure};
use crate::fuzz::{self, measure};
use crate::matcher::{MatcherRef, SourceMatcher, Zone};

/// Text put into lines: what the rules look for around an address, and
/// what breaks parsers of lines.
const HOSTILE: &[&str] = &[
    "' failed for '",
    "' - Wrong password",
    "' (callid: x) - No matching endpoint found",
    " from ",
    " port 22 ssh2",
    " [preauth]",
    ", client: ",
    ", server: x, request: \"GET / HTTP/1.1\"",
    " rip=",
    ", lip=192.0.2.1",
    "(IP:",
    ":5060)",
    "RemoteAddress=\"IPV4/UDP/",
    "] from ip ",
    "]: SASL LOGIN authentication failed: x",
    "203.0.113.66",
    "2001:db8:bad::66",
    "[2001:db8:bad::66]:5060",
    "::ffff:203.0.113.66",
    "256.1.1.1",
    "1.2.3.4.5",
    "0.0.0.0",
    "255.255.255.255",
    "::",
    "example.com",
    "'",
    "\"",
    "\\\"",
    "[",
    "]",
    "(",
    ")",
    "<",
    ">",
    "\n",
    "\0",
    "\r",
    "\t",
    " ",
    "\u{fffd}",
    "\u{202e}",
    "\u{2028}",
];

/// The example lines cut at every space, quote, bracket and separator.
fn fragments() -> &'static [String] {
    static PIECES: OnceLock<Vec<String>> = OnceLock::new();
    PIECES.get_or_init(|| {
        let mut out = Vec::new();
        for line in example_lines() {
            let mut start = 0;
            for (i, c) in line.char_indices() {
                if " '\"[]()<>:,=".contains(c) && i > start {
                    out.push(line[start..i].to_string());
                    start = i;
                }
            }
            out.push(line[start..].to_string());
        }
        out
    })
}

/// A piece of a spliced line.
fn piece() -> impl Strategy<Value = String> {
    let cut = |line: &String, i: &Index| fuzz::floor_char(line, i.index(line.len() + 1));
    prop_oneof![
        4 => any::<Index>().prop_map(|i| i.get(fragments()).clone()),
        3 => proptest::sample::select(HOSTILE).prop_map(String::from),
        1 => any::<Index>().prop_map(move |i| i.get(example_lines()).clone()),
        1 => (any::<Index>(), any::<Index>()).prop_map(move |(l, i)| {
            let line = l.get(example_lines());
            line[..cut(line, &i)].to_string()
        }),
        1 => (any::<Index>(), any::<Index>()).prop_map(move |(l, i)| {
            let line = l.get(example_lines());
            line[cut(line, &i)..].to_string()
        }),
        1 => (proptest::sample::select(&["a", " ", "'", "\"", "[", "1", ".", ":", "\u{e9}"][..]), 1usize..3000)
            .prop_map(|(c, n)| c.repeat(n)),
        1 => any::<String>(),
    ]
}

/// A line spliced from pieces.
fn spliced() -> impl Strategy<Value = String> {
    proptest::collection::vec(piece(), 1..24).prop_map(|p| p.concat())
}

/// An example line edited: pieces put in, parts repeated, cut or dropped,
/// in sequence (most stay close enough to the example to match a rule).
fn edited() -> impl Strategy<Value = String> {
    let op = prop_oneof![3 => Just(0u8), 1 => 1u8..4];
    let edit = (op, any::<Index>(), any::<Index>(), piece());
    (any::<Index>(), proptest::collection::vec(edit, 1..4)).prop_map(|(l, edits)| {
        let mut line = l.get(example_lines()).clone();
        for (op, i, j, piece) in edits {
            let i = fuzz::floor_char(&line, i.index(line.len() + 1));
            let j = fuzz::floor_char(&line, j.index(line.len() + 1));
            let (lo, hi) = (i.min(j), i.max(j));
            line = match op {
                0 => format!("{}{piece}{}", &line[..i], &line[i..]),
                1 => format!("{}{}", &line[..hi], &line[lo..]),
                2 => line[..hi].to_string(),
                _ => format!("{}{}", &line[..lo], &line[hi..]),
            };
        }
        line
    })
}

/// A line of 64 KiB to 1 MiB: a spliced or edited line repeated, or with
/// a long run put into it.
fn long() -> impl Strategy<Value = String> {
    (
        prop_oneof![spliced(), edited()],
        64usize << 10..=1 << 20,
        any::<bool>(),
        any::<Index>(),
        any::<Index>(),
    )
        .prop_map(|(base, len, repeat, at, c)| {
            let base = if base.is_empty() { "x".to_string() } else { base };
            let mut line = if repeat {
                base.repeat(len / base.len() + 1)
            } else {
                let at = fuzz::floor_char(&base, at.index(base.len() + 1));
                let run = ["a", " ", "'", "1.", "\u{fffd}"][c.index(5)];
                format!("{}{}{}", &base[..at], run.repeat(len / run.len()), &base[at..])
            };
            line.truncate(fuzz::floor_char(&line, len));
            line
        })
}

/// Every shipped matcher alone, and all of them on one source.
struct Jails {
    alone: Vec<SourceMatcher<'static>>,
    together: SourceMatcher<'static>,
    /// Failures found, so a run shows it checked some addresses.
    failures: usize,
}

impl Jails {
    fn new() -> Jails {
        let all = all_matchers();
        Jails {
            alone: all.iter().map(|m| SourceMatcher::single(m)).collect(),
            together: SourceMatcher::new(all.into_iter().map(MatcherRef::Borrowed).collect(), Zone::Utc),
            failures: 0,
        }
    }

    /// Matches `line` and checks the answers.
    fn check(&mut self, line: &str) -> Result<(), TestCaseError> {
        prop_assume!(!past_u32_epoch(line), "epoch_seconds_past_u32_are_read");
        let now = SystemTime::now();
        self.together.match_line(line, now);
        // The lazy DFAs' caches grow on a line's first match (up to their
        // limits) and are kept; matched again, the line costs nothing: the
        // matcher allocates nothing per line and never copies it.
        let ((), again) = measure(|| self.together.match_line(line, now));
        prop_assert_eq!(again, 0, "bytes allocated matching a line of {} again", line.len());
        for (k, alone) in self.alone.iter_mut().enumerate() {
            alone.match_line(line, now);
            let got = &alone.results()[0];
            prop_assert_eq!(&self.together.results()[k], got, "jail {} on one source and alone", k);
            if let Some(addr) = failure(got) {
                prop_assert!(appears(line, addr), "{} is not in {:?}", addr, short(line));
                self.failures += 1;
            }
        }
        Ok(())
    }
}

/// Whether the line starts with ten digits past 2^32, which the epoch
/// date reader cannot take yet (see [`epoch_seconds_past_u32_are_read`]).
fn past_u32_epoch(line: &str) -> bool {
    let head = line.as_bytes().get(..10).unwrap_or(b"");
    head.len() == 10 && head.iter().all(u8::is_ascii_digit) && line[..10].parse::<u64>().unwrap() > u64::from(u32::MAX)
}

/// A long line shortened for messages.
fn short(line: &str) -> String {
    if line.len() <= 400 {
        return line.to_string();
    }
    let (a, b) = (fuzz::floor_char(line, 200), fuzz::floor_char(line, line.len() - 200));
    format!("{} ... ({} bytes) ... {}", &line[..a], line.len(), &line[b..])
}

/// Runs the checks on `cases` lines of `strategy`; returns how many
/// failures the jails found.
fn check_lines(cases: u32, strategy: impl Strategy<Value = String>) -> usize {
    let jails = RefCell::new(Jails::new());
    fuzz::run(cases, strategy, |line| jails.borrow_mut().check(&line));
    let failures = jails.borrow().failures;
    failures
}

#[test]
fn random_bytes() {
    let lossy = proptest::collection::vec(any::<u8>(), 0..4096).prop_map(|b| String::from_utf8_lossy(&b).into_owned());
    check_lines(256, lossy);
}

#[test]
fn random_printable_lines() {
    check_lines(256, "[ -~]{0,512}");
}

#[test]
fn lines_spliced_from_examples() {
    assert!(check_lines(384, spliced()) > 0, "some spliced lines are failures");
}

#[test]
fn example_lines_edited() {
    assert!(check_lines(384, edited()) > 0, "some edited lines are failures");
}

#[test]
fn long_lines_up_to_a_mebibyte() {
    check_lines(6, long());
}

/// A block of hostile lines scanned as `nftban test` and the readers scan
/// files: a line the literal scan passes over is one no rule matches.
#[test]
fn the_buffer_scan_passes_over_no_failure() {
    let block = proptest::collection::vec(prop_oneof![spliced(), edited(), "[ -~]{0,80}"], 1..40);
    let jails = RefCell::new(Jails::new());
    fuzz::run(96, block, |lines| {
        let jails = &mut *jails.borrow_mut();
        let lines: Vec<String> = lines.iter().flat_map(|l| l.split('\n').map(String::from)).collect();
        let block = lines.join("\n");
        let sm = &mut jails.together;
        let mut candidates = std::collections::HashSet::new();
        let mut from = 0;
        while let Some((s, e)) = sm.next_candidate(block.as_bytes(), from) {
            candidates.insert(s);
            from = e + 1;
        }
        let mut start = 0;
        for line in &lines {
            prop_assume!(!past_u32_epoch(line), "epoch_seconds_past_u32_are_read");
            sm.match_line(line, SystemTime::now());
            if !candidates.contains(&start) {
                prop_assert!(!sm.any_match(), "passed over, but a rule matches: {:?}", short(line));
            }
            start += line.len() + 1;
        }
        Ok(())
    });
}

/// A date at the start of a line, of every format nftban reads, with
/// digits out of range; then anything.
fn dated() -> impl Strategy<Value = String> {
    let date = prop_oneof![
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:?[0-9]{2})?",
        "(Jan|Feb|Mar|Dec|Xyz) [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}",
        "\\[[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?\\]",
        // Ten digits past 2^32 panic: `epoch_seconds_past_u32_are_read`.
        "([0-3][0-9]{9,19}|42[0-8][0-9]{7,17}|[0-9]{1,9})(\\.[0-9]{1,12})?",
        "@[0-9a-f]{24}",
        "[0-9]{2}/(Jan|Nov|Xyz)/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}",
    ];
    (date, prop_oneof![piece(), Just(String::new())]).prop_map(|(d, rest)| format!("{d} {rest}"))
}

/// Dates out of range, of every format, read by every parser a source
/// can have: no panic, and the date read ends inside the line.
#[test]
fn dates_out_of_range() {
    use crate::matcher::date::CustomDate;
    use crate::matcher::{DateFormat, DateParser};
    let custom = [
        "%d/%b/%Y:%H:%M:%S %z",
        "%s",
        "%Y-%m-%d %H:%M:%S.%f",
        "%b %d %H:%M:%S",
        "%y%m%d %k:%M:%S",
    ];
    let custom: Vec<CustomDate> = custom.iter().map(|c| CustomDate::new(c).unwrap()).collect();
    let all = [
        DateFormat::Asterisk,
        DateFormat::Syslog,
        DateFormat::Iso8601,
        DateFormat::Epoch,
        DateFormat::Custom,
    ];
    let parsers = RefCell::new(vec![
        DateParser::new(None, Zone::Local),
        DateParser::new(None, Zone::Utc),
        DateParser::new(Some(&all), Zone::Local).with_custom(custom.clone()),
        DateParser::new(Some(&[DateFormat::Custom]), Zone::Utc).with_custom(custom),
    ]);
    let read = std::cell::Cell::new(0);
    fuzz::run(512, dated(), |line| {
        for p in parsers.borrow_mut().iter_mut() {
            for now in [SystemTime::now(), SystemTime::UNIX_EPOCH] {
                if let Some(found) = p.parse(&line, now) {
                    prop_assert!(found.end <= line.len(), "{:?} on {:?}", found, line);
                    read.set(read.get() + 1);
                }
            }
        }
        Ok(())
    });
    assert!(read.get() > 0, "some dates are read");
}

/// Ten digits at a line's start are read as epoch seconds (every shipped
/// ruleset tries every date format), also from 4294967296 (2^32, in 2106)
/// on, as the time they are: a `u32` accumulator once overflowed there,
/// which panicked in a debug build (`nftban test`, the test suite) and
/// wrapped in a release build (the line dated 1970, outside any findtime).
#[test]
fn epoch_seconds_past_u32_are_read() {
    let sshd = super::shipped().iter().find(|s| s.name == "sshd").unwrap();
    let mut sm = SourceMatcher::single(&sshd.matchers[0].1);
    let line = "4300000000 host sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2";
    let found = sm.parse_date(line, SystemTime::now()).expect("an epoch date");
    let want = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(4_300_000_000);
    assert_eq!(found.time, want);
    sm.match_line(line, SystemTime::now());
}
