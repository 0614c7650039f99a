//! Where a rule's `<HOST>` is in a line, without a capture engine.
//!
//! Why: on a candidate line, captures (regex-automata's bounded
//! backtracker over the rule) cost about 17,000 instructions, more than the
//! literal scan of a hundred ordinary lines. A lazy DFA step costs a few.
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

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::util::captures::Captures;
use regex_automata::{meta, Anchored, Input, MatchKind};
use regex_syntax::hir::{Hir, HirKind, Look};

use super::HOST_GROUP;

/// Beyond this many ends of `L` the line is left to the capture engine
/// (each end costs a run of `H` and `R`).
const MAX_ENDS: usize = 16;

/// A rule split at its host group.
#[derive(Debug)]
pub(super) struct Split {
    before: DFA,
    host: DFA,
    after: DFA,
    /// `(?P<host>H) R`, for captures from the host's start.
    rest: meta::Regex,
    /// Every match starts at the text's start (`^`): no search for `s`.
    pub anchored: bool,
}

/// A [`Split`]'s mutable state, one per rule and thread.
#[derive(Debug, Clone)]
pub(super) struct SplitCache {
    before: Cache,
    host: Cache,
    after: Cache,
    rest: meta::Cache,
    rest_caps: Captures,
    ends: Vec<usize>,
}

/// What [`Split::host`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Host {
    /// The host group's span in the rule's match.
    At(usize, usize),
    /// The rule does not match at the given start.
    NoMatch,
    /// Several ways to split the line, or the DFA gave up: ask captures.
    Unsure,
}

impl Split {
    /// `re` as the regex crate compiles it for a rule (bytes, no Unicode);
    /// `None` when the host group is not at the top level of a concatenation.
    pub fn new(re: &str) -> Option<Split> {
        let hir = regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(false)
            .build()
            .parse(re)
            .ok()?;
        let HirKind::Concat(subs) = hir.kind() else {
            return None;
        };
        let i = subs
            .iter()
            .position(|h| matches!(h.kind(), HirKind::Capture(c) if c.name.as_deref() == Some(HOST_GROUP)))?;
        Some(Split {
            before: all_ends(&Hir::concat(subs[..i].to_vec()))?,
            host: all_ends(&subs[i])?,
            after: all_ends(&Hir::concat(subs[i + 1..].to_vec()))?,
            rest: meta::Regex::builder()
                .build_from_hir(&Hir::concat(subs[i..].to_vec()))
                .ok()?,
            anchored: hir.properties().look_set_prefix().contains(Look::Start),
        })
    }

    pub fn cache(&self) -> SplitCache {
        SplitCache {
            before: self.before.create_cache(),
            host: self.host.create_cache(),
            after: self.after.create_cache(),
            rest: self.rest.create_cache(),
            rest_caps: self.rest.create_captures(),
            ends: Vec::with_capacity(MAX_ENDS),
        }
    }

    /// The host's span in the match of the rule that starts at `start`.
    pub fn host(&self, text: &[u8], start: usize, c: &mut SplitCache) -> Host {
        let SplitCache {
            before,
            host,
            after,
            rest,
            rest_caps,
            ends,
        } = c;
        ends.clear();
        let mut over = false;
        let walked = each_end(&self.before, before, text, start, |p| {
            ends.push(p);
            over = ends.len() > MAX_ENDS;
            Ok(!over)
        });
        if walked.is_err() || over {
            return Host::Unsure;
        }
        // The one `p` with a host after it, and that host's one end (`None`: several).
        let mut found: Option<(usize, Option<usize>)> = None;
        for &p in ends.iter() {
            let mut at_p = None;
            let walked = each_end(&self.host, host, text, p, |e| {
                let mut r = false;
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
                let input = Input::new(text).range(p..).anchored(Anchored::Yes);
                self.rest.search_captures_with(rest, &input, rest_caps);
                match rest_caps.get_group_by_name(HOST_GROUP) {
                    Some(span) => Host::At(span.start, span.end),
                    None => Host::Unsure,
                }
            }
        }
    }
}

/// A lazy DFA that reports every match end, not only the preferred one
/// (MatchKind::All: no thread is dropped after a match).
fn all_ends(hir: &Hir) -> Option<DFA> {
    let nfa = thompson::Compiler::new()
        .configure(thompson::Config::new().which_captures(WhichCaptures::None).utf8(false))
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
#[inline(never)]
fn each_end(
    dfa: &DFA,
    cache: &mut Cache,
    text: &[u8],
    from: usize,
    mut f: impl FnMut(usize) -> Result<bool, ()>,
) -> Result<(), ()> {
    let input = Input::new(text).range(from..).anchored(Anchored::Yes);
    let mut sid = dfa.start_state_forward(cache, &input).map_err(|_| ())?;
    // Matches show one byte late: the state after the byte at `at` is a
    // match state when a match ends at `at`.
    for (at, &b) in text.iter().enumerate().skip(from) {
        sid = dfa.next_state(cache, sid, b).map_err(|_| ())?;
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
    }
    sid = dfa.next_eoi_state(cache, sid).map_err(|_| ())?;
    if sid.is_match() {
        f(text.len())?;
    }
    Ok(())
}
