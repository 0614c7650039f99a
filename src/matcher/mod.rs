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
//!
//! Memory is bounded by what a ruleset says, whatever it says: each NFA
//! of a rule (its regex's, its split's parts') is at most [`RULE_LIMIT`],
//! all the rules of one compiled ruleset at most [`RULESET_BUDGET`]
//! (measured after compiling each), and each lazy DFA cache has a fixed
//! capacity. A ruleset past a bound is refused at the rule, with what to
//! write instead. A [`Matcher`] holds no per-jail state: the jails of a
//! config on the same ruleset and mode share one (`config`).

mod build;
pub mod date;
pub mod fail2ban;
mod gate;
mod host;
mod literal;
mod python;
pub mod ruleset;
mod source;
mod split;

use std::net::IpAddr;

use ipnet::IpNet;
use std::time::SystemTime;

use regex::bytes::{CaptureLocations, Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use regex_automata::util::captures::Captures;
use regex_automata::{meta, Input};

pub use date::{DateFormat, DateParser, Found, Zone};
pub use host::{CONTENT_GROUP, HOST_GROUP};
pub use ruleset::{Example, Ruleset, RulesetError};
pub use source::{MatcherRef, SourceMatcher};

/// The most memory one rule's compiled automata may take (each NFA of its
/// regex, and of its split's parts, up to this): a rule as the shipped
/// ones are takes some 100 KiB.
pub const RULE_LIMIT: usize = 2 << 20;

/// The most memory all the rules of one ruleset (one mode) may take
/// together, measured after compiling each.
pub const RULESET_BUDGET: usize = 16 << 20;

/// The lazy DFA cache of a rule's regex (forward and reverse, per thread).
const RULE_CACHE: usize = 8 << 20;

/// What to do about a rule too big to compile.
const TOO_BIG: &str = "Unicode classes and counted repetitions make automata big: use ASCII classes \
                       ((?-u:\\w), [0-9]), fewer repetitions ({1,20} rather than {1,200}), or split the rule";

/// One compiled failregex.
#[derive(Debug)]
struct Rule {
    /// The whole rule (prefix included), as the regex crate builds a bytes
    /// regex, but with its cache in [`Scratch`] (one per thread).
    regex: meta::Regex,
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
    /// A fail2ban rule the fast engine cannot run runs here instead; then
    /// `regex` is [`never`] and `literal` and `split` are empty.
    python: Option<python::Rule>,
    /// Its `<F-USER>` and `<F-ALT_USER>` groups: in a filter with sessions,
    /// the users a session tries count (read only from lines it matched).
    user: Option<usize>,
    alt_user: Option<usize>,
}

/// The fast regex of a rule that runs on the fallback engine: it matches
/// nothing and is never run, so that every rule has the same fields.
fn never() -> meta::Regex {
    compile_rule(&format!(r"(?P<{HOST_GROUP}>[^\x00-\xff])")).expect("an empty class compiles")
}

/// Per rule, what finding its host needs besides the rule (reused line
/// after line: no allocation per line).
#[derive(Debug)]
struct Scratch {
    cache: meta::Cache,
    caps: Captures,
    split: Option<split::SplitCache>,
    python: Option<pcre2::bytes::CaptureLocations>,
}

impl Rule {
    fn scratch(&self) -> Scratch {
        Scratch {
            cache: self.regex.create_cache(),
            caps: self.regex.create_captures(),
            split: self.split.as_ref().map(|s| s.cache()),
            python: self.python.as_ref().map(python::Rule::locations),
        }
    }

    /// Heap bytes the compiled rule holds (its automata; not the caches).
    fn memory(&self) -> usize {
        self.regex.memory_usage()
            + self.split.as_ref().map_or(0, split::Split::memory)
            + self.python.as_ref().map_or(0, python::Rule::memory)
    }
}

/// A rule's regex: bytes, ASCII classes unless the rule asks, its NFAs at
/// most [`RULE_LIMIT`] each.
fn compile_rule(re: &str) -> Result<meta::Regex, String> {
    meta::Regex::builder()
        .syntax(regex_automata::util::syntax::Config::new().unicode(false).utf8(false))
        .configure(
            meta::Config::new()
                .match_kind(regex_automata::MatchKind::LeftmostFirst)
                .utf8_empty(false)
                .nfa_size_limit(Some(RULE_LIMIT))
                .onepass_size_limit(Some(RULE_LIMIT))
                .hybrid_cache_capacity(RULE_CACHE),
        )
        .build(re)
        .map_err(|e| match (e.size_limit(), e.syntax_error()) {
            (Some(limit), _) => format!("compiles to more than {} MiB; {TOO_BIG}", limit >> 20),
            (None, Some(syntax)) => syntax_reason(&syntax.to_string()),
            (None, None) => e.to_string(),
        })
}

/// What is wrong with a regex, from the parser's message, which quotes
/// the whole pattern with a caret under the fault: the pattern is the
/// rule with its tags expanded (hundreds of characters for `<HOST>`), so
/// only the last line, the fault itself, is kept (`unclosed group`), and
/// what Rust's regex lacks is said as such.
fn syntax_reason(message: &str) -> String {
    if message.contains("look-around") {
        "look-around is not supported by Rust's regex".into()
    } else if message.contains("backreferences") {
        "backreferences are not supported by Rust's regex".into()
    } else {
        let last = message.lines().last().unwrap_or("").trim();
        last.strip_prefix("error: ").unwrap_or(last).to_string()
    }
}

/// Per jail, what its rules share on one line, and the jail's fail2ban
/// sessions (multi-line state, bounded).
#[derive(Debug)]
struct JailScratch {
    pref_locs: Option<PrefLocs>,
    prefix: Option<split::PrefixEnds>,
    /// What prefregex found on the current line besides its content
    /// (spans in the line without its date).
    pref_found: python::Found,
    sessions: python::Sessions,
    /// The line with its date cut out, when that is not a slice of it.
    cut: Vec<u8>,
}

/// Capture places of a prefregex, per engine.
#[derive(Debug)]
enum PrefLocs {
    Fast(CaptureLocations),
    Python(pcre2::bytes::CaptureLocations),
}

/// A prefregex: on the fast engine (its content group, and the groups of
/// an address and of a session, if it has them), or on the fallback one.
#[derive(Debug)]
enum Pref {
    Fast {
        regex: Regex,
        content: usize,
        host: Option<usize>,
        mlfid: Option<usize>,
    },
    Python(python::Pref),
}

impl Pref {
    fn locations(&self) -> PrefLocs {
        match self {
            Pref::Fast { regex, .. } => PrefLocs::Fast(regex.capture_locations()),
            Pref::Python(p) => PrefLocs::Python(p.locations()),
        }
    }
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
    /// prefregex and where its `<F-CONTENT>` group is.
    pref: Option<Pref>,
    /// Match on the line without its leading date (imported fail2ban filters).
    strip_date: bool,
    /// The regex the date follows ([`Ruleset::date_lead`]).
    date_lead: Option<(Regex, ruleset::DateLead)>,
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
        sm.results()[0].clone()
    }

    /// Index of the first failregex that matches, if any.
    #[cfg(test)]
    fn match_rule(&self, line: &str) -> Option<usize> {
        match self.match_line(line) {
            LineMatch::Failure { rule, .. } | LineMatch::NotAnAddress { rule, .. } => Some(rule),
            _ => None,
        }
    }

    /// The text rules run on: without the date (fail2ban filters: cut out
    /// as fail2ban does, into `cut` when it is not at the start) and
    /// inside prefregex's `<F-CONTENT>`; `None` when prefregex fails. Also
    /// the line without its date, where prefregex's other fields are
    /// (noted in `jail.pref_found`).
    fn text<'l>(
        &self,
        line: &'l [u8],
        date: Option<Span>,
        jail: &mut JailScratch,
        cut: &'l mut Vec<u8>,
    ) -> Option<(&'l [u8], &'l [u8])> {
        let mut text = line;
        if self.strip_date {
            match date {
                Some((0, end)) => text = &line[end..],
                Some((start, end)) => {
                    cut.clear();
                    cut.extend_from_slice(&line[..start]);
                    cut.extend_from_slice(&line[end..]);
                    let cut: &'l Vec<u8> = cut;
                    text = cut;
                }
                None => {}
            }
        }
        let whole = text;
        match (&self.pref, jail.pref_locs.as_mut()) {
            (
                Some(Pref::Fast {
                    regex,
                    content,
                    host,
                    mlfid,
                }),
                Some(PrefLocs::Fast(locs)),
            ) => {
                regex.captures_read(locs, text)?;
                let (s, e) = locs.get(*content)?;
                jail.pref_found = python::Found {
                    host: host.and_then(|g| locs.get(g)),
                    mlfid: mlfid.and_then(|g| locs.get(g)),
                    ..Default::default()
                };
                text = &text[s..e];
            }
            (Some(Pref::Python(p)), Some(PrefLocs::Python(locs))) => {
                let ((s, e), found) = p.find(text, locs)?;
                jail.pref_found = found;
                text = &text[s..e];
            }
            _ => jail.pref_found = python::Found::default(),
        }
        Some((whole, text))
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
        let caps = &mut scratch.caps;
        rule.regex
            .search_captures_with(&mut scratch.cache, &Input::new(text), caps);
        if !caps.is_match() {
            return None;
        }
        let span = |g| caps.get_group(g).map(|s| (s.start, s.end));
        let (s, e) = span(rule.host).unwrap_or((0, 0));
        Some((s, e, rule.cidr.and_then(span)))
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
            _ => match rule.regex.search_with(&mut scratch.cache, &Input::new(text)) {
                Some(m) => split.host(text, &[m.start()], cache),
                None => split::Host::NoMatch,
            },
        })
    }

    /// Classify `text` given which rules are candidates.
    fn classify(
        &self,
        (whole, text): (&[u8], &[u8]),
        cand: &[bool],
        scratch: &mut [Scratch],
        jail: &mut JailScratch,
    ) -> LineMatch {
        if let Some(p) = jail.prefix.as_mut() {
            p.forget();
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if !cand[i] {
                continue;
            }
            if let (Some(py), Some(locs)) = (&rule.python, scratch[i].python.as_mut()) {
                let Some(found) = py.find(text, locs) else {
                    continue;
                };
                if self.ignore.as_ref().is_some_and(|ig| ig.is_match(text)) {
                    return LineMatch::Ignored;
                }
                return self.fallback_outcome(i, &found, (whole, text), jail);
            }
            let Some((s, e, cidr)) = self.captures(rule, text, &mut jail.prefix, &mut scratch[i]) else {
                continue;
            };
            if self.ignore.as_ref().is_some_and(|ig| ig.is_match(text)) {
                return LineMatch::Ignored;
            }
            if let Some((is, ie)) = jail.pref_found.mlfid {
                // The line is a failure of its own address whatever its
                // session holds; the session learns the address and user.
                let line = python::Line {
                    host: Some(&text[s..e]),
                    user: Self::fast_user(rule, text, &mut scratch[i]).map(|(us, ue)| &text[us..ue]),
                    ..Default::default()
                };
                jail.sessions.merge(&whole[is..ie], line);
            }
            return Self::outcome(i, &text[s..e], cidr.map(|(cs, ce)| &text[cs..ce]));
        }
        LineMatch::Missed
    }

    /// What a match of a rule on the fallback engine comes to: fail2ban's
    /// `<F-NOFAIL>` (no failure), its sessions (`<F-MLFID>`: the address
    /// may come from an earlier line), an address from prefregex.
    fn fallback_outcome(
        &self,
        i: usize,
        found: &python::Found,
        (whole, text): (&[u8], &[u8]),
        jail: &mut JailScratch,
    ) -> LineMatch {
        let in_text = |span: Option<Span>| span.map(|(s, e)| &text[s..e]);
        let in_whole = |span: Option<Span>| span.map(|(s, e)| &whole[s..e]);
        let host = in_text(found.host).or(in_whole(jail.pref_found.host));
        let id = in_text(found.mlfid).or(in_whole(jail.pref_found.mlfid));
        match id {
            Some(id) => {
                let line = python::Line {
                    host,
                    user: in_text(found.user).or(in_whole(jail.pref_found.user)),
                    nofail: found.nofail,
                    gained: found.gained,
                    forget: found.forget,
                };
                match jail.sessions.merge(id, line) {
                    python::Outcome::Failure(h) => Self::outcome(i, &h, None),
                    python::Outcome::Nothing => LineMatch::Missed,
                }
            }
            None if found.nofail || found.gained => LineMatch::Missed,
            None => match host.or(in_text(found.fid)) {
                Some(h) => Self::outcome(i, h, None),
                None => LineMatch::Missed,
            },
        }
    }

    /// The user a fast rule's match names (`<F-USER>`, else a non-empty
    /// `<F-ALT_USER>`), for a session: the capture engine runs again, on a
    /// matched line of a filter with sessions only.
    fn fast_user(rule: &Rule, text: &[u8], scratch: &mut Scratch) -> Option<Span> {
        if rule.user.is_none() && rule.alt_user.is_none() {
            return None;
        }
        let caps = &mut scratch.caps;
        rule.regex
            .search_captures_with(&mut scratch.cache, &Input::new(text), caps);
        let span = |g: Option<usize>| {
            g.and_then(|g| caps.get_group(g))
                .map(|s| (s.start, s.end))
                .filter(|(s, e)| e > s)
        };
        span(rule.user).or_else(|| span(rule.alt_user))
    }

    /// The failure of rule `i`: an address (with the prefix length the
    /// rule captured), or a name nobody is banned for.
    fn outcome(i: usize, host: &[u8], cidr: Option<&[u8]>) -> LineMatch {
        let addr = std::str::from_utf8(host).ok().and_then(crate::address::parse_addr);
        let len = cidr.map(|c| std::str::from_utf8(c).ok().and_then(|l| l.parse::<u8>().ok()));
        match (addr, len) {
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
                host: match cidr {
                    Some(c) => format!("{}/{}", String::from_utf8_lossy(host), String::from_utf8_lossy(c)),
                    None => String::from_utf8_lossy(host).into_owned(),
                },
            },
        }
    }
}

/// Start and end of a capture group's text in a line.
type Span = (usize, usize);

/// A regex besides the rules (prefregex, an ignoreregex): bytes, ASCII
/// classes, as big as a rule may be.
fn compile(re: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(re)
        .unicode(false)
        .size_limit(RULE_LIMIT)
        .dfa_size_limit(RULE_CACHE)
        .build()
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
pub(crate) mod tests;
