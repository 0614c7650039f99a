//! All rules of all jails that read one source, tried in one pass per
//! line: the daemon's readers and `nftban test` classify lines with a
//! [`SourceMatcher`]. See the module doc of [`crate::matcher`] for why a
//! line is first checked for the rules' literals, and only candidates are
//! tried.

use std::sync::Arc;
use std::time::SystemTime;

use super::{gate, literal, DateFormat, DateParser, Found, JailScratch, LineMatch, Matcher, Scratch, Zone};

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
    pub(super) gate: Option<gate::Gate>,
    /// The literals of the rules that are not cheap to try: which of them a
    /// line holds (overlapping). Used when they are many (see [`MAX_CHECKS`]).
    pub(super) literals: Option<gate::Literals>,
    /// The sets of the rules that are not cheap to try, when they are few:
    /// one SIMD search each (slot, bit, search), cheaper than a walk of the
    /// line through [`Self::literals`].
    pub(super) checks: Vec<(usize, u8, gate::Gate)>,
    /// Per slot: the rule is cheap to try on any line
    /// ([`split::Split::cheap_to_try`]), so on a line with a literal of the
    /// gate it is tried rather than checked for its literals (which costs a
    /// walk of the line).
    pub(super) cheap: Vec<bool>,
    /// Per slot, the bits of all its sets: a candidate once all are seen.
    need: Vec<u8>,
    /// Per slot, the bits seen on this line.
    seen: Vec<u8>,
    /// Jail → its first slot; slot = first + rule index.
    first: Vec<usize>,
    pub(super) cand: Vec<bool>,
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
                // A filter whose date is cut out before its rules run (an
                // imported fail2ban filter) may need literals that only the
                // cut line holds (`\[\]` where `[20/Jan/2015:...]` was): the
                // raw line cannot be judged by them, so its rules are
                // always tried (and lines are not skipped for this source).
                let sets = match m.strip_date {
                    true => &[][..],
                    false => &rule.literal[..rule.literal.len().min(8)],
                };
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
                    pref_locs: m.pref.as_ref().map(|p| p.locations()),
                    prefix: m.prefix.as_ref().map(|p| p.cache()),
                    pref_found: Default::default(),
                    cut: Vec::new(),
                    sessions: Default::default(),
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
        let date = if self.need_date {
            date_span(&mut self.dates, line, now)
        } else {
            None
        };
        for (j, m) in self.jails.iter().enumerate() {
            let n = m.rules.len();
            let first = self.first[j];
            let cand = &self.cand[first..first + n];
            // A filter whose date follows a regex of its own (rfc5424)
            // finds it there, and cuts both.
            let date = match &m.date_lead {
                Some((regex, lead)) => lead_date(regex, &mut self.dates, line, now)
                    .map(|(at, f)| (if lead.cut { 0 } else { at }, f.end))
                    .or(date.filter(|_| lead.or_else)),
                None => date,
            };
            let r = if !cand.iter().any(|&c| c)
                || m.prefilter.as_ref().is_some_and(|f| f.find(line.as_bytes()).is_none())
            {
                LineMatch::Missed
            } else {
                let js = &mut self.jail_scratch[j];
                let mut cut = std::mem::take(&mut js.cut);
                let r = match m.text(line.as_bytes(), date, js, &mut cut) {
                    Some(text) => m.classify(text, cand, &mut self.scratch[first..first + n], js),
                    None => LineMatch::Missed,
                };
                js.cut = cut;
                r
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
        self.dates.parse(line, now).or_else(|| {
            let dates = &mut self.dates;
            self.jails
                .iter()
                .filter_map(|m| m.date_lead.as_ref())
                .find_map(|(lead, _)| lead_date(lead, dates, line, now).map(|(_, f)| f))
        })
    }
}

/// The date right after `lead` at the line's start (fail2ban's
/// `datepattern = ^REGEX{DATE}`): where it starts, and what was found,
/// its end counted from the line's start.
fn lead_date(
    lead: &regex::bytes::Regex,
    dates: &mut DateParser,
    line: &str,
    now: SystemTime,
) -> Option<(usize, Found)> {
    let after = lead.find(line.as_bytes())?.end();
    let mut found = dates.parse(line.get(after..)?, now)?;
    found.end += after;
    found.wrapped = false;
    Some((after, found))
}

/// Where a line's date is, as fail2ban cuts it out before its rules run
/// (imported filters only): the date itself, without the brackets around
/// it unless its pattern writes them (fail2ban's filters expect `[]` there). At the line's
/// start, or else in the first `[...]` that holds a date (access logs:
/// `1.2.3.4 - - [20/Jan/2015:19:53:28 +0100] "GET ..."`), or right after a
/// `(` (audit records).
fn date_span(dates: &mut DateParser, line: &str, now: SystemTime) -> Option<(usize, usize)> {
    let b = line.as_bytes();
    let inner = |at: usize, found: Found| {
        let end = at + found.end;
        if found.wrapped {
            (at + 1, end - 1)
        } else {
            (at, end)
        }
    };
    if let Some(found) = dates.parse(line, now) {
        return Some(inner(0, found));
    }
    memchr::memchr_iter(b'[', b)
        .skip_while(|&at| at == 0)
        .take(8)
        .find_map(|at| dates.parse(&line[at..], now).map(|f| inner(at, f)))
        .or_else(|| {
            // In parentheses: audit records' `msg=audit(1373330717.000:4070)`.
            memchr::memchr_iter(b'(', b)
                .take(8)
                .find_map(|at| dates.parse(&line[at + 1..], now).map(|f| (at + 1, at + 1 + f.end)))
        })
}
