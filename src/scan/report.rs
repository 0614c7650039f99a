//! What a scan found: the [`Report`] (`nftban test --json` prints it) and
//! the [`Tally`] it is made from.
//!
//! Two shapes because of the threads: each part of a file is counted into
//! its own `Tally`, keyed by address and by date format index so that no
//! line allocates, and the tallies are merged in input order. Only the
//! merged tally becomes a `Report`, with addresses as text and the rules
//! and date formats by name; so whatever the number of threads, the report
//! is the one a single pass gives.

use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;
use serde::Serialize;

use crate::address::show as show_net;
use crate::matcher::{DateFormat, Matcher};

/// One failregex and how many lines it matched.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct RuleHits {
    pub(crate) regex: String,
    pub(crate) hits: u64,
    /// Sets of fixed strings: a line must contain one string of each set
    /// before the regex runs (empty: the regex runs on every line).
    pub(crate) literals: Vec<Vec<String>>,
}

/// The result of a test run (`--json` prints it).
#[derive(Debug, Serialize, Default, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) ruleset: String,
    pub(crate) lines: u64,
    pub(crate) matched: u64,
    pub(crate) ignored: u64,
    pub(crate) missed: u64,
    /// Matched lines whose host is no address (never resolved, never banned).
    pub(crate) not_an_address: u64,
    pub(crate) invalid_utf8: u64,
    /// Lines longer than the limit (1 MiB), skipped unmatched as the daemon
    /// skips them (what `status` counts as `truncated`); among `lines`, not
    /// among `matched`, `ignored` or `missed`.
    pub(crate) too_long: u64,
    pub(crate) rules: Vec<RuleHits>,
    /// Address → number of matching lines.
    pub(crate) hosts: BTreeMap<String, u64>,
    /// Date format → matched lines starting with it (the lines whose time the daemon uses).
    pub(crate) date_formats: BTreeMap<String, u64>,
    /// Matched lines with no date nftban recognises (the daemon uses the time it reads them).
    pub(crate) no_date: u64,
    /// Rules of a fail2ban filter that nftban cannot run, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) skipped_rules: Vec<SkippedRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) missed_lines: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) matched_lines: Vec<String>,
}

/// A rule left out of an imported fail2ban filter.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct SkippedRule {
    pub(crate) regex: String,
    pub(crate) reason: String,
}

/// What one part of the input holds; parts are merged in input order.
#[derive(Debug)]
pub(super) struct Tally {
    pub(super) lines: u64,
    pub(super) matched: u64,
    pub(super) ignored: u64,
    pub(super) missed: u64,
    pub(super) not_an_address: u64,
    pub(super) invalid_utf8: u64,
    pub(super) too_long: u64,
    pub(super) hits: Vec<u64>,
    /// Keyed by address while scanning (no allocation per line), by text at the end.
    /// Addresses, and the prefixes of rules that capture one.
    pub(super) hosts: HashMap<IpNet, u64>,
    /// Indexed like [`DateFormat::ALL`].
    pub(super) formats: [u64; DateFormat::ALL.len()],
    pub(super) no_date: u64,
    pub(super) missed_lines: Vec<String>,
    pub(super) matched_lines: Vec<String>,
}

impl Tally {
    pub(super) fn new(rules: usize) -> Tally {
        Tally {
            lines: 0,
            matched: 0,
            ignored: 0,
            missed: 0,
            not_an_address: 0,
            invalid_utf8: 0,
            too_long: 0,
            hits: vec![0; rules],
            hosts: HashMap::new(),
            formats: [0; DateFormat::ALL.len()],
            no_date: 0,
            missed_lines: vec![],
            matched_lines: vec![],
        }
    }

    /// Adds `o`, the part of the input that comes after this one.
    pub(super) fn merge(&mut self, o: Tally) {
        self.lines += o.lines;
        self.matched += o.matched;
        self.ignored += o.ignored;
        self.missed += o.missed;
        self.not_an_address += o.not_an_address;
        self.invalid_utf8 += o.invalid_utf8;
        self.too_long += o.too_long;
        for (a, b) in self.hits.iter_mut().zip(o.hits) {
            *a += b;
        }
        for (h, n) in o.hosts {
            *self.hosts.entry(h).or_default() += n;
        }
        for (a, b) in self.formats.iter_mut().zip(o.formats) {
            *a += b;
        }
        self.no_date += o.no_date;
        self.missed_lines.extend(o.missed_lines);
        self.matched_lines.extend(o.matched_lines);
    }

    /// The report of `matcher` over the whole input (no skipped rules: the
    /// caller, who loaded the rule, knows them).
    pub(super) fn into_report(self, matcher: &Matcher) -> Report {
        Report {
            ruleset: matcher.name.clone(),
            lines: self.lines,
            matched: self.matched,
            ignored: self.ignored,
            missed: self.missed,
            not_an_address: self.not_an_address,
            invalid_utf8: self.invalid_utf8,
            too_long: self.too_long,
            rules: matcher
                .sources
                .iter()
                .zip(matcher.literals())
                .zip(self.hits)
                .map(|((r, literals), hits)| RuleHits {
                    regex: r.clone(),
                    hits,
                    literals,
                })
                .collect(),
            hosts: self.hosts.into_iter().map(|(a, n)| (show_net(&a), n)).collect(),
            date_formats: DateFormat::ALL
                .iter()
                .zip(self.formats)
                .filter(|&(_, n)| n > 0)
                .map(|(f, n)| (f.describe().to_string(), n))
                .collect(),
            no_date: self.no_date,
            skipped_rules: vec![],
            missed_lines: self.missed_lines,
            matched_lines: self.matched_lines,
        }
    }
}
