//! The matcher stage: decides, for one log line, whether it is a failure
//! and of which address.
//!
//! Speed comes from doing little per line. Every rule gets the fixed
//! strings it cannot match without (up to three sets, one string of each
//! needed; derived from its regex, see [`literal`]). A [`SourceMatcher`]
//! gates the lines of a source with one SIMD scan for one set per rule (the
//! most selective one, see [`gate`]), so an ordinary line costs that scan
//! and no regex at all. On a line that passes, the rules whose sets are all
//! met are tried (or all rules, when each is cheap to try, see
//! [`split::Split::cheap_to_try`]); the host is found by lazy DFAs over the
//! rule split at `<HOST>` ([`split`]), with captures only for lines that
//! split more than one way. `ignoreregex` runs only on lines a rule
//! matched. Nothing is allocated per line. Regexes are compiled without
//! Unicode classes (`\w`, `\d`, `\s` are ASCII), which keeps their
//! automata small: logs put addresses and keywords in ASCII.

pub mod date;
pub mod fail2ban;
mod gate;
mod host;
mod literal;
pub mod ruleset;
mod split;

use std::net::IpAddr;

use ipnet::IpNet;
use std::sync::Arc;
use std::time::SystemTime;

use regex::bytes::{CaptureLocations, Regex, RegexBuilder, RegexSet, RegexSetBuilder};

pub use date::{DateFormat, DateParser, Found, Zone};
pub use host::{CONTENT_GROUP, HOST_GROUP};
pub use ruleset::{Example, Ruleset, RulesetError};

/// One compiled failregex.
#[derive(Debug)]
struct Rule {
    regex: Regex,
    /// Index of the `host` group.
    host: usize,
    /// Sets of strings: every line the rule matches contains one string of
    /// each set. Empty: the regex runs on every line.
    literal: Vec<Vec<Vec<u8>>>,
    /// The full regex split at its host group: the host without captures.
    /// `None` also for rules that capture a prefix length.
    split: Option<split::Split>,
    /// Index of the `cidr` group (`<SUBNET>`, `<CIDR>`): the rule bans the
    /// prefix it captures, found with the capture engine.
    cidr: Option<usize>,
}

/// Per rule, what finding its host needs besides the rule (reused line
/// after line: no allocation per line).
#[derive(Debug, Clone)]
struct Scratch {
    locs: CaptureLocations,
    split: Option<split::SplitCache>,
}

impl Rule {
    fn scratch(&self) -> Scratch {
        Scratch {
            locs: self.regex.capture_locations(),
            split: self.split.as_ref().map(|s| s.cache()),
        }
    }
}

/// Per jail, what its rules share on one line.
#[derive(Debug, Clone)]
struct JailScratch {
    pref_locs: Option<CaptureLocations>,
    prefix: Option<split::PrefixEnds>,
}

/// A compiled ruleset.
#[derive(Debug)]
pub struct Matcher {
    pub name: String,
    rules: Vec<Rule>,
    /// The failregexes as written, for reports.
    pub sources: Vec<String>,
    ignore: Option<RegexSet>,
    prefilter: Option<memchr::memmem::Finder<'static>>,
    /// prefregex and the index of its `<F-CONTENT>` group.
    pref: Option<(Regex, usize)>,
    /// Match on the line without its leading date (imported fail2ban filters).
    strip_date: bool,
    /// `^(?:PREFIX)`, whose ends the rules' splits start from.
    prefix: Option<split::Prefix>,
    /// Date formats of the ruleset (`None`: all).
    pub dates: Option<Vec<DateFormat>>,
    /// The ruleset's own strftime-style datepatterns.
    pub custom_dates: Vec<date::CustomDate>,
}

/// What a line is to a ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineMatch {
    /// No failregex matches.
    Missed,
    /// A failregex matches but an ignoreregex too.
    Ignored,
    /// A failure: rule index and the address, with the prefix length the
    /// rule captured (`<SUBNET>`, `<ADDR>/<CIDR>`), if any.
    Failure {
        rule: usize,
        addr: IpAddr,
        prefix: Option<u8>,
    },
    /// A failregex matches but what it captured is no address (a hostname);
    /// nftban never resolves names, so nobody is banned.
    NotAnAddress { rule: usize, host: String },
}

impl LineMatch {
    /// What a failure bans: the address (as a /32 or /128), or the prefix
    /// the rule captured, host bits cleared.
    pub fn failure_net(&self) -> Option<IpNet> {
        match *self {
            LineMatch::Failure { addr, prefix, .. } => Some(
                prefix
                    .and_then(|len| IpNet::new(addr, len).ok())
                    .unwrap_or(IpNet::from(addr))
                    .trunc(),
            ),
            _ => None,
        }
    }
}

impl Matcher {
    /// Compile a ruleset; errors name the file, line and column of the rule.
    pub fn new(ruleset: &Ruleset) -> Result<Matcher, RulesetError> {
        let prefix = if ruleset.prefix.is_empty() {
            None
        } else {
            split::Prefix::new(&format!("^(?:{})", ruleset.prefix))
        };
        let mut rules = Vec::new();
        for (i, rule) in ruleset.failregex.iter().enumerate() {
            let expanded =
                host::expand_tags(rule, true).map_err(|e| ruleset.rule_error(i, format!("`{rule}`: {e}")))?;
            let full = if ruleset.prefix.is_empty() {
                expanded.clone()
            } else {
                format!("^(?:{}){}", ruleset.prefix, expanded.trim_start_matches('^'))
            };
            let regex = compile(&full).map_err(|e| ruleset.rule_error(i, e.to_string()))?;
            let host = regex
                .capture_names()
                .position(|n| n == Some(HOST_GROUP))
                .ok_or_else(|| ruleset.rule_error(i, "no <HOST> group".into()))?;
            let cidr = regex.capture_names().position(|n| n == Some(host::CIDR_GROUP));
            let split = match cidr {
                Some(_) => None,
                None => split::parse(&full).and_then(|h| split::Split::new(&h, prefix.as_ref().map(|p| &p.hir))),
            };
            rules.push(Rule {
                regex,
                host,
                literal: literal::required(&expanded),
                split,
                cidr,
            });
        }
        let ignore = if ruleset.ignoreregex.is_empty() {
            None
        } else {
            let mut expanded = Vec::new();
            for (i, r) in ruleset.ignoreregex.iter().enumerate() {
                let at = |m: String| ruleset.error_at(&["ignoreregex"], Some(i), format!("ignoreregex[{i}]: {m}"));
                let e = host::expand_tags(r, false).map_err(|e| at(e.to_string()))?;
                compile(&e).map_err(|e| at(e.to_string()))?;
                expanded.push(e);
            }
            Some(
                RegexSetBuilder::new(&expanded)
                    .unicode(false)
                    .build()
                    .map_err(|e| ruleset.error_at(&["ignoreregex"], None, e.to_string()))?,
            )
        };
        let pref = match &ruleset.prefregex {
            None => None,
            Some(p) => {
                let at = |m: String| ruleset.error_at(&["prefregex"], None, format!("prefregex: {m}"));
                let e = host::expand_tags(p, false).map_err(|e| at(e.to_string()))?;
                let re = compile(&e).map_err(|e| at(e.to_string()))?;
                let content = re
                    .capture_names()
                    .position(|n| n == Some(CONTENT_GROUP))
                    .ok_or_else(|| at("no <F-CONTENT>...</F-CONTENT> in it".into()))?;
                Some((re, content))
            }
        };
        Ok(Matcher {
            name: ruleset.name.clone(),
            rules,
            sources: ruleset.failregex.clone(),
            ignore,
            prefilter: ruleset
                .prefilter
                .as_ref()
                .map(|p| memchr::memmem::Finder::new(p.as_bytes()).into_owned()),
            pref,
            strip_date: ruleset.strip_date,
            dates: ruleset.datepattern.as_deref().map(|l| ruleset::DatePattern::split(l).0),
            custom_dates: ruleset
                .datepattern
                .as_deref()
                .map(|l| ruleset::DatePattern::split(l).1)
                .unwrap_or_default(),
            prefix,
        })
    }

    /// Per rule, the sets of strings a line needs one of each of before the
    /// rule's regex runs (for `nftban test` and tests).
    pub fn literals(&self) -> Vec<Vec<Vec<String>>> {
        self.rules
            .iter()
            .map(|r| {
                r.literal
                    .iter()
                    .map(|set| set.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect())
                    .collect()
            })
            .collect()
    }

    /// Classify one line. Allocates; the hot paths use [`SourceMatcher`].
    pub fn match_line(&self, line: &str) -> LineMatch {
        let mut sm = SourceMatcher::single(self);
        sm.match_line(line, SystemTime::now());
        sm.results[0].clone()
    }

    /// Index of the first failregex that matches, if any.
    #[cfg(test)]
    fn match_rule(&self, line: &str) -> Option<usize> {
        match self.match_line(line) {
            LineMatch::Failure { rule, .. } | LineMatch::NotAnAddress { rule, .. } => Some(rule),
            _ => None,
        }
    }

    /// The text rules run on: without the date (fail2ban filters) and
    /// inside prefregex's `<F-CONTENT>`; `None` when prefregex fails.
    fn text<'l>(
        &self,
        line: &'l [u8],
        date_end: Option<usize>,
        pref_locs: &mut Option<CaptureLocations>,
    ) -> Option<&'l [u8]> {
        let mut text = line;
        if self.strip_date {
            if let Some(end) = date_end {
                text = &line[end..];
            }
        }
        if let (Some((re, content)), Some(locs)) = (&self.pref, pref_locs.as_mut()) {
            re.captures_read(locs, text)?;
            let (s, e) = locs.get(*content)?;
            text = &text[s..e];
        }
        Some(text)
    }

    /// Where rule `rule`'s `host` group is in `text`, if the rule matches,
    /// and where its prefix length is when the rule captures one.
    ///
    /// Without captures (see [`split`]) when the line splits one way around
    /// the host, which is what the rules are written for; otherwise the
    /// capture engine decides.
    fn captures(
        &self,
        rule: &Rule,
        text: &[u8],
        prefix: &mut Option<split::PrefixEnds>,
        scratch: &mut Scratch,
    ) -> Option<(usize, usize, Option<Span>)> {
        match self.split_host(rule, text, prefix, scratch) {
            Some(split::Host::At(s, e)) => return Some((s, e, None)),
            Some(split::Host::NoMatch) => return None,
            Some(split::Host::Unsure) | None => {}
        }
        rule.regex.captures_read(&mut scratch.locs, text)?;
        let (s, e) = scratch.locs.get(rule.host).unwrap_or((0, 0));
        Some((s, e, rule.cidr.and_then(|c| scratch.locs.get(c))))
    }

    /// What the rule's split says about `text` (`None`: the rule has none).
    fn split_host(
        &self,
        rule: &Rule,
        text: &[u8],
        prefix: &mut Option<split::PrefixEnds>,
        scratch: &mut Scratch,
    ) -> Option<split::Host> {
        let (split, cache) = (rule.split.as_ref()?, scratch.split.as_mut()?);
        Some(match (&self.prefix, prefix.as_mut()) {
            (Some(p), Some(ends)) if split.after_prefix => match p.ends(text, ends) {
                Some(starts) => split.host(text, starts, cache),
                None => split::Host::Unsure,
            },
            _ if split.anchored => split.host(text, &[0], cache),
            _ => match rule.regex.find(text) {
                Some(m) => split.host(text, &[m.start()], cache),
                None => split::Host::NoMatch,
            },
        })
    }

    /// Classify `text` given which rules are candidates.
    fn classify(&self, text: &[u8], cand: &[bool], scratch: &mut [Scratch], jail: &mut JailScratch) -> LineMatch {
        if let Some(p) = jail.prefix.as_mut() {
            p.forget();
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if !cand[i] {
                continue;
            }
            let Some((s, e, cidr)) = self.captures(rule, text, &mut jail.prefix, &mut scratch[i]) else {
                continue;
            };
            if self.ignore.as_ref().is_some_and(|ig| ig.is_match(text)) {
                return LineMatch::Ignored;
            }
            let host = &text[s..e];
            let addr = std::str::from_utf8(host).ok().and_then(crate::address::parse_addr);
            let len = cidr.map(|(cs, ce)| {
                std::str::from_utf8(&text[cs..ce])
                    .ok()
                    .and_then(|l| l.parse::<u8>().ok())
            });
            return match (addr, len) {
                (Some(addr), None) => LineMatch::Failure {
                    rule: i,
                    addr,
                    prefix: None,
                },
                (Some(addr), Some(Some(len))) if IpNet::new(addr, len).is_ok() => LineMatch::Failure {
                    rule: i,
                    addr,
                    prefix: Some(len),
                },
                // A hostname, or a prefix length its family cannot have.
                _ => LineMatch::NotAnAddress {
                    rule: i,
                    host: String::from_utf8_lossy(&text[s..cidr.map_or(e, |c| c.1)]).into_owned(),
                },
            };
        }
        LineMatch::Missed
    }
}

/// Start and end of a capture group's text in a line.
type Span = (usize, usize);

/// Up to this many literal sets of rules that are not cheap to try are each
/// searched on their own (SIMD) on a candidate line; more are learnt in one
/// walk of the line through a table, whose cost does not grow with them.
const MAX_CHECKS: usize = 4;

/// The table of the literals of `sets` (slot, bit, literals): each distinct
/// literal once, with what it marks.
fn literal_table(sets: &[(usize, u8, Vec<Vec<u8>>)]) -> Option<gate::Literals> {
    let mut literals: Vec<Vec<u8>> = Vec::new();
    let mut by_pattern: Vec<Vec<(usize, u8)>> = Vec::new();
    for (slot, bit, set) in sets {
        for lit in set {
            match literals.iter().position(|l| l == lit) {
                Some(p) => by_pattern[p].push((*slot, *bit)),
                None => {
                    literals.push(lit.clone());
                    by_pattern.push(vec![(*slot, *bit)]);
                }
            }
        }
    }
    gate::Literals::new(&literals, &by_pattern)
}

/// All rules of all jails that read one source, tried in one pass per line.
#[derive(Debug)]
pub struct SourceMatcher<'m> {
    jails: Vec<MatcherRef<'m>>,
    /// SIMD (Teddy) search of one set of literals per rule (its most
    /// selective): a line without any is missed by every rule.
    gate: Option<gate::Gate>,
    /// The literals of the rules that are not cheap to try: which of them a
    /// line holds (overlapping). Used when they are many (see [`MAX_CHECKS`]).
    literals: Option<gate::Literals>,
    /// The sets of the rules that are not cheap to try, when they are few:
    /// one SIMD search each (slot, bit, search), cheaper than a walk of the
    /// line through [`Self::literals`].
    checks: Vec<(usize, u8, gate::Gate)>,
    /// Per slot: the rule is cheap to try on any line
    /// ([`split::Split::cheap_to_try`]), so on a line with a literal of the
    /// gate it is tried rather than checked for its literals (which costs a
    /// walk of the line).
    cheap: Vec<bool>,
    /// Per slot, the bits of all its sets: a candidate once all are seen.
    need: Vec<u8>,
    /// Per slot, the bits seen on this line.
    seen: Vec<u8>,
    /// Jail → its first slot; slot = first + rule index.
    first: Vec<usize>,
    cand: Vec<bool>,
    /// Per slot.
    scratch: Vec<Scratch>,
    /// Per jail.
    jail_scratch: Vec<JailScratch>,
    results: Vec<LineMatch>,
    dates: DateParser,
    need_date: bool,
    /// Some literal holds a `\n`: lines cannot be skipped by a buffer scan.
    has_newline: bool,
}

/// A matcher owned by the daemon (`Arc`) or borrowed (tests, `nftban test`).
#[derive(Debug, Clone)]
pub enum MatcherRef<'m> {
    Shared(Arc<Matcher>),
    Borrowed(&'m Matcher),
}

impl std::ops::Deref for MatcherRef<'_> {
    type Target = Matcher;
    fn deref(&self) -> &Matcher {
        match self {
            MatcherRef::Shared(a) => a,
            MatcherRef::Borrowed(m) => m,
        }
    }
}

impl<'m> SourceMatcher<'m> {
    /// One matcher, borrowed.
    pub fn single(m: &'m Matcher) -> SourceMatcher<'m> {
        SourceMatcher::new(vec![MatcherRef::Borrowed(m)], Zone::Local)
    }

    /// The matchers of the jails on one source; results come in this order.
    pub fn new(jails: Vec<MatcherRef<'m>>, zone: Zone) -> SourceMatcher<'m> {
        let mut selective: Vec<Vec<u8>> = Vec::new();
        let mut need = Vec::new();
        let mut first = Vec::new();
        let mut cheap = Vec::new();
        let mut sets_to_check: Vec<(usize, u8, Vec<Vec<u8>>)> = Vec::new();
        let mut scratch = Vec::new();
        let mut slot = 0;
        for m in &jails {
            first.push(slot);
            for rule in &m.rules {
                let mut mask = 0u8;
                let sets = &rule.literal[..rule.literal.len().min(8)];
                let is_cheap = rule.split.as_ref().is_some_and(|s| s.cheap_to_try());
                cheap.push(is_cheap);
                for (g, set) in sets.iter().enumerate() {
                    let bit = 1u8 << g;
                    mask |= bit;
                    if is_cheap {
                        continue;
                    }
                    sets_to_check.push((slot, bit, set.clone()));
                }
                if let Some(set) = sets.iter().max_by_key(|set| literal::selectivity(set)) {
                    for lit in set {
                        if !selective.contains(lit) {
                            selective.push(lit.clone());
                        }
                    }
                }
                need.push(mask);
                scratch.push(rule.scratch());
                slot += 1;
            }
        }
        // Over every rule's literals (the gate holds cheap rules' too).
        let has_newline = jails
            .iter()
            .flat_map(|m| &m.rules)
            .flat_map(|r| r.literal.iter().flatten())
            .any(|l| l.contains(&b'\n'));
        // How a line's literals are learnt for the rules that are not cheap
        // to try: a search per set when they are few, else one walk.
        let checks: Option<Vec<(usize, u8, gate::Gate)>> = if sets_to_check.len() <= MAX_CHECKS {
            sets_to_check
                .iter()
                .map(|(slot, bit, set)| gate::Gate::new(set).map(|g| (*slot, *bit, g)))
                .collect()
        } else {
            None
        };
        let (table, checks, learnt) = match checks {
            Some(checks) => (None, checks, true),
            // Literals are short and few; building cannot fail for them.
            None => {
                let table = literal_table(&sets_to_check);
                let learnt = table.is_some();
                (table, Vec::new(), learnt)
            }
        };
        let gate = if selective.is_empty() || !learnt {
            None
        } else {
            gate::Gate::new(&selective)
        };
        if gate.is_none() {
            // Without the automata every rule is a candidate.
            need = vec![0; slot];
        }
        // Formats of all jails (any jail without a list: all formats).
        let formats: Option<Vec<DateFormat>> = jails.iter().try_fold(Vec::new(), |mut acc, m| {
            acc.extend(m.dates.as_ref()?.iter().copied());
            Some(acc)
        });
        let custom_dates = jails.iter().flat_map(|m| m.custom_dates.iter().cloned()).collect();
        SourceMatcher {
            need_date: jails.iter().any(|m| m.strip_date),
            jail_scratch: jails
                .iter()
                .map(|m| JailScratch {
                    pref_locs: m.pref.as_ref().map(|(re, _)| re.capture_locations()),
                    prefix: m.prefix.as_ref().map(|p| p.cache()),
                })
                .collect(),
            results: Vec::with_capacity(jails.len()),
            cand: vec![false; slot],
            jails,
            literals: if gate.is_some() { table } else { None },
            checks: if gate.is_some() { checks } else { Vec::new() },
            cheap,
            gate,
            seen: vec![0; slot],
            need,
            first,
            scratch,
            dates: DateParser::new(formats.as_deref(), zone).with_custom(custom_dates),
            has_newline,
        }
    }

    /// Classify `line` for every jail; read the answers with [`Self::results`].
    pub fn match_line(&mut self, line: &str, now: SystemTime) {
        // The gate dismisses most lines fast; only lines with a selective
        // literal pay for learning which literals they hold.
        let gated = self.gate.as_ref().is_some_and(|g| g.is_match(line.as_bytes()));
        self.classify_line(line, now, gated);
    }

    /// [`Self::match_line`] for a line that [`Self::next_candidate`]
    /// returned (so holding a literal of the gate).
    pub fn match_candidate(&mut self, line: &str, now: SystemTime) {
        if self.skips_lines() {
            self.classify_line(line, now, true);
        } else {
            self.match_line(line, now);
        }
    }

    /// `gated`: the line holds a literal of the gate.
    fn classify_line(&mut self, line: &str, now: SystemTime, gated: bool) {
        self.results.clear();
        let mut any = false;
        self.seen.fill(0);
        if gated {
            let seen = &mut self.seen;
            if let Some(literals) = &self.literals {
                literals.scan(line.as_bytes(), |slot, bit| seen[slot] |= bit);
            }
            for (slot, bit, search) in &self.checks {
                if search.is_match(line.as_bytes()) {
                    seen[*slot] |= bit;
                }
            }
        }
        for (i, c) in self.cand.iter_mut().enumerate() {
            *c = (gated && self.cheap[i]) || self.seen[i] == self.need[i];
            any |= *c;
        }
        if !any {
            self.results.resize(self.jails.len(), LineMatch::Missed);
            return;
        }
        let date_end = if self.need_date {
            self.dates.parse(line, now).map(|f| f.end)
        } else {
            None
        };
        for (j, m) in self.jails.iter().enumerate() {
            let n = m.rules.len();
            let first = self.first[j];
            let cand = &self.cand[first..first + n];
            let r = if !cand.iter().any(|&c| c)
                || m.prefilter.as_ref().is_some_and(|f| f.find(line.as_bytes()).is_none())
            {
                LineMatch::Missed
            } else {
                let js = &mut self.jail_scratch[j];
                match m.text(line.as_bytes(), date_end, &mut js.pref_locs) {
                    Some(text) => m.classify(text, cand, &mut self.scratch[first..first + n], js),
                    None => LineMatch::Missed,
                }
            };
            self.results.push(r);
        }
    }

    /// What the last line was to each jail, in the order given to [`Self::new`].
    pub fn results(&self) -> &[LineMatch] {
        &self.results
    }

    /// Whether the last line matched a rule of any jail.
    pub fn any_match(&self) -> bool {
        self.results.iter().any(|r| !matches!(r, LineMatch::Missed))
    }

    /// Whether [`Self::next_candidate`] can pass over lines: every rule
    /// needs a literal, the gate finds them, and no literal holds a newline
    /// (so every occurrence lies inside one line).
    pub fn skips_lines(&self) -> bool {
        self.gate.is_some() && !self.need.is_empty() && !self.need.contains(&0) && !self.has_newline
    }

    /// Whole-buffer scanning (ripgrep's way): the first line of `block`
    /// starting at or after `from` (a line start) that holds a literal of
    /// the gate, as `(start, end)` without its `\n`. Lines before it are
    /// `Missed` for every jail: [`Self::match_line`] would say so, since it
    /// dismisses lines without such literals. So one SIMD literal scan passes over the
    /// ordinary lines without even finding where they end. Without
    /// [`Self::skips_lines`], every line is a candidate.
    pub fn next_candidate(&self, block: &[u8], from: usize) -> Option<(usize, usize)> {
        if from >= block.len() {
            return None;
        }
        let hit = match &self.gate {
            Some(gate) if self.skips_lines() => gate.find_from(block, from)?,
            _ => from,
        };
        let start = memchr::memrchr(b'\n', &block[from..hit]).map_or(from, |i| from + i + 1);
        let end = memchr::memchr(b'\n', &block[hit..]).map_or(block.len(), |i| hit + i);
        Some((start, end))
    }

    /// The date at the start of `line`, in the formats of this source's rulesets.
    pub fn parse_date(&mut self, line: &str, now: SystemTime) -> Option<Found> {
        self.dates.parse(line, now)
    }
}

/// A rule's regex: bytes, ASCII classes, a bigger lazy-DFA cache.
fn compile(re: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(re).unicode(false).dfa_size_limit(8 << 20).build()
}

#[cfg(test)]
pub(crate) mod tests;
