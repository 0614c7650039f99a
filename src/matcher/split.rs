//! Where a rule's `<HOST>` is in a line, without a capture engine.
//!
//! Why: on a candidate line, captures (regex-automata's bounded
//! backtracker over the rule) cost more instructions than the literal scan
//! of a hundred ordinary lines (docs/performance.md, "Detection"). A lazy
//! DFA step costs a few.
//!
//! How: a rule's regex is a concatenation `L (?P<host>H) R` (the host group
//! sits at its top level). In the match the regex crate reports, starting
//! at `s`, `L` matches `[s, p)`, `H` matches `[p, e)` (the host) and `R`
//! matches from `e` on. So `(p, e)` is one of the pairs with: `L` matches
//! `[s, p)`, `H` matches `[p, e)`, `R` matches at `e` (anchored, looking at
//! the whole text around). Three lazy DFAs that report every match end (not
//! only the preferred one) list these pairs: `L`'s ends from `s`, `H`'s
//! ends from each of those, and whether `R` matches at each of these. When
//! there is exactly one pair, it is the captured host, whichever parse the
//! regex prefers; with none, the regex does not match at `s`.
//!
//! With several pairs, the regex's priority order picks one. When they
//! share `p` (the host may end at several places, as in `<HOST>(?::\d+)?`
//! on `2001:db8::22`), every parse of the whole regex has `L` end at `p`;
//! parses compare by `L`'s choices first, then by those of `H R`, so the
//! host is that of the captures of `(?P<host>H) R` anchored at `p`: a
//! capture engine, but over the end of the line only. With different `p`s
//! (a line that splits more than one way, e.g. an attacker's text that
//! mimics the rest of the line) only captures over the whole regex know:
//! [`Split::host`] says [`Host::Unsure`] and the caller runs them. The rules
//! are written to split one way only (that is what keeps them
//! injection-proof), so that is rare.
//!
//! A ruleset's prefix (date, host, process: `^(?:PREFIX)RULE`) starts `L`
//! in every rule. Its ends are found once per line ([`Prefix`]); each rule's
//! `L` then runs from each of them, over the rule's own text only.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::util::captures::Captures;
use regex_automata::{meta, Anchored, Input, MatchKind};
use regex_syntax::hir::{Hir, HirKind, Look};
use std::sync::OnceLock;

use super::{HOST_GROUP, RULE_LIMIT};

/// Beyond this many ends of `L` the line is left to the capture engine
/// (each end costs a run of `H` and `R`).
const MAX_ENDS: usize = 16;

/// A rule split at its host group.
#[derive(Debug)]
pub(super) struct Split {
    /// `L`, after the shared prefix when [`Self::after_prefix`].
    before: Walker,
    host: Walker,
    after: Walker,
    /// `(?P<host>H) R`, for captures from the host's start (built when
    /// first needed: most rules never need it).
    rest: OnceLock<Option<meta::Regex>>,
    rest_hir: Hir,
    /// `L` starts where the ruleset's prefix ends ([`Prefix`]).
    pub after_prefix: bool,
    /// Every match starts at the text's start (`^`): no search for it.
    pub anchored: bool,
}

/// A [`Split`]'s mutable state, one per rule and thread.
#[derive(Debug, Clone)]
pub(super) struct SplitCache {
    before: Cache,
    host: Cache,
    after: Cache,
    rest: Option<(meta::Cache, Captures)>,
    ends: Vec<usize>,
}

/// What [`Split::host`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Host {
    /// The host group's span in the rule's match.
    At(usize, usize),
    /// The rule does not match at the given starts.
    NoMatch,
    /// Several ways to split the line, or the DFA gave up: ask captures.
    Unsure,
}

/// Parses a rule's regex as the regex crate does for it (bytes, no Unicode).
pub(super) fn parse(re: &str) -> Option<Hir> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(re)
        .ok()
}

/// The parts of a concatenation (a single part: itself).
fn parts(h: &Hir) -> &[Hir] {
    match h.kind() {
        HirKind::Concat(subs) => subs,
        _ => std::slice::from_ref(h),
    }
}

impl Split {
    /// `full`: a rule's whole regex; `prefix`: the ruleset's `^(?:PREFIX)`,
    /// which `full` starts with. `None` when the host group is not at the
    /// top level of a concatenation.
    pub fn new(full: &Hir, prefix: Option<&Hir>) -> Option<Split> {
        let HirKind::Concat(subs) = full.kind() else {
            return None;
        };
        let i = subs
            .iter()
            .position(|h| matches!(h.kind(), HirKind::Capture(c) if c.name.as_deref() == Some(HOST_GROUP)))?;
        // The prefix's parts begin `full`'s (unless the parser merged a
        // literal across the seam): `L` is then the rest of them.
        let skip = prefix.map_or(0, |p| {
            let p = parts(p);
            if p.len() <= i && subs[..p.len()] == *p {
                p.len()
            } else {
                0
            }
        });
        Some(Split {
            before: Walker::new(&Hir::concat(subs[skip..i].to_vec()))?,
            host: Walker::new(&subs[i])?,
            after: Walker::new(&Hir::concat(subs[i + 1..].to_vec()))?,
            rest: OnceLock::new(),
            rest_hir: Hir::concat(subs[i..].to_vec()),
            after_prefix: skip > 0,
            anchored: full.properties().look_set_prefix().contains(Look::Start),
        })
    }

    /// Whether trying the rule on a line that lacks its literals costs
    /// next to nothing: its `L` starts at a known place (the line start or
    /// the prefix's ends) with one of a few bytes, so on most lines the
    /// walk ends before it starts ([`Walker::may_start`]).
    pub fn cheap_to_try(&self) -> bool {
        (self.after_prefix || self.anchored)
            && self
                .before
                .first
                .is_some_and(|first| first.iter().filter(|&&b| b).count() <= 64)
    }

    /// Heap bytes its automata hold (the NFAs of its parts; `rest` is
    /// built only when needed, under [`RULE_LIMIT`] too).
    pub fn memory(&self) -> usize {
        [&self.before, &self.host, &self.after].iter().map(|w| w.memory()).sum()
    }

    pub fn cache(&self) -> SplitCache {
        SplitCache {
            before: self.before.cache(),
            host: self.host.cache(),
            after: self.after.cache(),
            rest: None,
            ends: Vec::with_capacity(MAX_ENDS),
        }
    }

    /// The host's span in the match of the rule, which starts at 0 or
    /// (when [`Self::anchored`] is not set) at the leftmost match's start;
    /// `starts`: where `L` may start (that start, or the prefix's ends).
    pub fn host(&self, text: &[u8], starts: &[usize], c: &mut SplitCache) -> Host {
        let SplitCache {
            before,
            host,
            after,
            rest,
            ends,
        } = c;
        if !starts.iter().any(|&q| self.before.may_start(text, q)) {
            return Host::NoMatch;
        }
        ends.clear();
        for &q in starts {
            let walked = each_end(&self.before, before, text, q, |p| {
                ends.push(p);
                Ok(ends.len() <= MAX_ENDS)
            });
            if walked.is_err() || ends.len() > MAX_ENDS {
                return Host::Unsure;
            }
        }
        if starts.len() > 1 {
            ends.sort_unstable();
            ends.dedup();
        }
        // The one `p` with a host after it, and that host's one end (`None`: several).
        let mut found: Option<(usize, Option<usize>)> = None;
        for &p in ends.iter() {
            let mut at_p = None;
            let walked = each_end(&self.host, host, text, p, |e| {
                let mut r = false;
                if !self.after.may_start(text, e) {
                    return Ok(true);
                }
                each_end(&self.after, after, text, e, |_| {
                    r = true;
                    Ok(false)
                })?;
                if r {
                    at_p = match at_p {
                        None => Some(Some(e)),
                        Some(_) => Some(None),
                    };
                }
                Ok(at_p != Some(None))
            });
            if walked.is_err() {
                return Host::Unsure;
            }
            if let Some(e) = at_p {
                if found.is_some() {
                    return Host::Unsure;
                }
                found = Some((p, e));
            }
        }
        match found {
            None => Host::NoMatch,
            Some((p, Some(e))) => Host::At(p, e),
            Some((p, None)) => {
                let Some(re) = self.rest.get_or_init(|| {
                    // As the regex crate builds a bytes regex.
                    meta::Regex::builder()
                        .configure(
                            meta::Config::new()
                                .utf8_empty(false)
                                .nfa_size_limit(Some(RULE_LIMIT))
                                .onepass_size_limit(Some(RULE_LIMIT)),
                        )
                        .build_from_hir(&self.rest_hir)
                        .ok()
                }) else {
                    return Host::Unsure;
                };
                let (cache, caps) = rest.get_or_insert_with(|| (re.create_cache(), re.create_captures()));
                let input = Input::new(text).range(p..).anchored(Anchored::Yes);
                re.search_captures_with(cache, &input, caps);
                match caps.get_group_by_name(HOST_GROUP) {
                    Some(span) => Host::At(span.start, span.end),
                    None => Host::Unsure,
                }
            }
        }
    }
}

/// A ruleset's `^(?:PREFIX)`, shared by its rules' splits.
#[derive(Debug)]
pub(super) struct Prefix {
    pub hir: Hir,
    dfa: Walker,
}

/// Where the prefix ends in the current line (per jail and thread).
#[derive(Debug, Clone)]
pub(super) struct PrefixEnds {
    cache: Cache,
    ends: Vec<usize>,
    /// `Some(false)`: too many ends or the DFA gave up.
    known: Option<bool>,
}

impl Prefix {
    pub fn new(re: &str) -> Option<Prefix> {
        let hir = parse(re)?;
        Some(Prefix {
            dfa: Walker::new(&hir)?,
            hir,
        })
    }

    pub fn cache(&self) -> PrefixEnds {
        PrefixEnds {
            cache: self.dfa.cache(),
            ends: Vec::with_capacity(MAX_ENDS),
            known: None,
        }
    }

    /// The ends of the prefix's matches in `text` (computed on the first
    /// call after [`PrefixEnds::forget`]); `None`: ask captures.
    pub fn ends<'c>(&self, text: &[u8], c: &'c mut PrefixEnds) -> Option<&'c [usize]> {
        if c.known.is_none() {
            c.ends.clear();
            let ends = &mut c.ends;
            let walked = each_end(&self.dfa, &mut c.cache, text, 0, |p| {
                ends.push(p);
                Ok(ends.len() <= MAX_ENDS)
            });
            c.known = Some(walked.is_ok() && c.ends.len() <= MAX_ENDS);
        }
        c.known.unwrap_or(false).then_some(&c.ends[..])
    }
}

impl PrefixEnds {
    /// A new text: its ends are not known yet.
    pub fn forget(&mut self) {
        self.known = None;
    }
}

/// A lazy DFA that reports every match end, not only the preferred one
/// (MatchKind::All: no thread is dropped after a match), and the bytes a
/// match can start with.
#[derive(Debug)]
struct Walker {
    dfa: DFA,
    /// `first[b]`: some match (maybe empty) starts at a byte `b` (not at the
    /// text's end). Most walks (the rule from each end of the prefix, what
    /// follows each possible end of the host) end at their first byte:
    /// this spares them the start-state look-up. `None`: the start state
    /// depends on the byte before (look-behind assertions).
    first: Option<[bool; 256]>,
}

impl Walker {
    fn new(hir: &Hir) -> Option<Walker> {
        let dfa = all_ends(hir)?;
        let looks = hir.properties().look_set();
        let ahead_only = looks
            .subtract(regex_syntax::hir::LookSet::empty().insert(Look::End))
            .is_empty();
        let first = ahead_only.then(|| {
            let mut cache = dfa.create_cache();
            let mut first = [true; 256];
            let input = Input::new(&b""[..]).anchored(Anchored::Yes);
            if let Ok(start) = dfa.start_state_forward(&mut cache, &input) {
                for (b, ok) in first.iter_mut().enumerate() {
                    *ok = dfa
                        .next_state(&mut cache, start, b as u8)
                        .map_or(true, |s| !s.is_dead());
                }
            }
            first
        });
        Some(Walker { dfa, first })
    }

    fn cache(&self) -> Cache {
        self.dfa.create_cache()
    }

    /// Heap bytes it holds: its NFA (the lazy DFA's states are in caches).
    fn memory(&self) -> usize {
        self.dfa.get_nfa().memory_usage()
    }

    /// Whether a match may start at `at` (`false`: surely none).
    #[inline(always)]
    fn may_start(&self, text: &[u8], at: usize) -> bool {
        match (&self.first, text.get(at)) {
            (Some(first), Some(&b)) => first[usize::from(b)],
            _ => true,
        }
    }
}

/// A lazy DFA that reports every match end, not only the preferred one
/// (MatchKind::All: no thread is dropped after a match). `None` also when
/// its NFA would pass [`RULE_LIMIT`] (captures then find the host).
fn all_ends(hir: &Hir) -> Option<DFA> {
    let nfa = thompson::Compiler::new()
        .configure(
            thompson::Config::new()
                .which_captures(WhichCaptures::None)
                .utf8(false)
                .nfa_size_limit(Some(RULE_LIMIT)),
        )
        .build_from_hir(hir)
        .ok()?;
    DFA::builder()
        .configure(DFA::config().match_kind(MatchKind::All))
        .build_from_nfa(nfa)
        .ok()
}

/// Calls `f` with the end of every match of `dfa` anchored at `from` in
/// `text`, in increasing order, while `f` says `Ok(true)`. Look-arounds see
/// all of `text`. `Err` when the DFA gives up (or `f` says so).
fn each_end(
    w: &Walker,
    cache: &mut Cache,
    text: &[u8],
    from: usize,
    mut f: impl FnMut(usize) -> Result<bool, ()>,
) -> Result<(), ()> {
    if !w.may_start(text, from) {
        return Ok(());
    }
    let dfa = &w.dfa;
    let input = Input::new(text).range(from..).anchored(Anchored::Yes);
    let mut sid = dfa.start_state_forward(cache, &input).map_err(|_| ())?;
    // Matches show one byte late: the state after the byte at `at` is a
    // match state when a match ends at `at`.
    let mut at = from;
    while at < text.len() {
        // The common case, as in regex-automata's own search loop: from a
        // plain state to a plain state, one table look-up per byte.
        if !sid.is_tagged() {
            // SAFETY: `sid` is an untagged state of this cache (from
            // `start_state_forward` or `next_state`, or this loop), and
            // nothing changes the cache until `next_state` below; `at` is
            // below `text.len()`.
            let step =
                |sid, at: usize| unsafe { dfa.next_state_untagged_unchecked(cache, sid, *text.get_unchecked(at)) };
            // Four bytes a round while they last: fewer tests per byte.
            while at + 4 <= text.len() {
                let s1 = step(sid, at);
                if s1.is_tagged() {
                    break;
                }
                let s2 = step(s1, at + 1);
                if s2.is_tagged() {
                    (sid, at) = (s1, at + 1);
                    break;
                }
                let s3 = step(s2, at + 2);
                if s3.is_tagged() {
                    (sid, at) = (s2, at + 2);
                    break;
                }
                let s4 = step(s3, at + 3);
                if s4.is_tagged() {
                    (sid, at) = (s3, at + 3);
                    break;
                }
                (sid, at) = (s4, at + 4);
            }
            while at < text.len() {
                let next = step(sid, at);
                if next.is_tagged() {
                    break;
                }
                sid = next;
                at += 1;
            }
            if at == text.len() {
                break;
            }
        }
        sid = dfa.next_state(cache, sid, text[at]).map_err(|_| ())?;
        if sid.is_tagged() {
            if sid.is_match() {
                if !f(at)? {
                    return Ok(());
                }
            } else if sid.is_dead() {
                return Ok(());
            } else if sid.is_quit() {
                return Err(());
            }
        }
        at += 1;
    }
    sid = dfa.next_eoi_state(cache, sid).map_err(|_| ())?;
    if sid.is_match() {
        f(text.len())?;
    }
    Ok(())
}
