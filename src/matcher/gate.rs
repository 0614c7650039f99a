//! Literal scans: which lines are worth a look, and which literals a line
//! holds.
//!
//! [`Gate`] finds lines holding one of a few selective literals, over a
//! whole buffer at SIMD speed (Teddy). [`Literals`] then walks one such
//! line to learn which of all the rules' literals it holds, overlapping ones
//! included, so that only rules with all their literals are tried.

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Anchored, MatchKind};

/// The literal scan: the packed SIMD searcher (Teddy) when the CPU has it,
/// else an Aho-Corasick automaton with its own prefilter.
#[derive(Debug)]
pub(super) enum Gate {
    Packed(aho_corasick::packed::Searcher),
    Automaton(AhoCorasick),
}

impl Gate {
    pub fn new(literals: &[Vec<u8>]) -> Option<Gate> {
        let packed = aho_corasick::packed::Config::new()
            .match_kind(aho_corasick::packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(literals)
            .build();
        match packed {
            Some(p) => Some(Gate::Packed(p)),
            None => AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostFirst)
                .build(literals)
                .ok()
                .map(Gate::Automaton),
        }
    }

    /// Start of the leftmost match at or after `from`.
    pub fn find_from(&self, hay: &[u8], from: usize) -> Option<usize> {
        match self {
            Gate::Packed(p) => p
                .find_in(hay, aho_corasick::Span::from(from..hay.len()))
                .map(|m| m.start()),
            Gate::Automaton(a) => a
                .find(aho_corasick::Input::new(hay).span(from..hay.len()))
                .map(|m| m.start()),
        }
    }

    pub fn is_match(&self, hay: &[u8]) -> bool {
        match self {
            Gate::Packed(p) => p.find(hay).is_some(),
            Gate::Automaton(a) => a.is_match(hay),
        }
    }
}

/// Which of a set of literals a line holds: an Aho-Corasick DFA (standard
/// semantics, so overlapping occurrences all count), copied from
/// aho-corasick's into a table of its own so that a step is one look-up
/// and one comparison: bytes that occur in no literal share one class,
/// match states come first, and each carries what it marks.
#[derive(Debug)]
pub(super) struct Literals {
    /// Byte → class; a state's row has one entry per class.
    class: [u32; 256],
    /// Premultiplied: a state is its row's offset.
    trans: Vec<u32>,
    start: u32,
    /// States below this one are match states.
    matches_below: u32,
    stride: usize,
    /// Per match state (row number), the marks of the literals ending there.
    marks: Vec<Vec<(usize, u8)>>,
}

/// More table entries than this (16 MB): no table (every rule is tried).
const MAX_ENTRIES: usize = 4 << 20;

impl Literals {
    /// `marks[i]`: what literal `i` marks (slot, bit of the set).
    pub fn new(literals: &[Vec<u8>], marks: &[Vec<(usize, u8)>]) -> Option<Literals> {
        let ac = aho_corasick::dfa::Builder::new()
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(literals)
            .ok()?;
        // Classes: one per byte that occurs in a literal, one for all others
        // (from any state they lead where a byte of no literal leads).
        let mut used = [false; 256];
        for b in literals.iter().flatten() {
            used[usize::from(*b)] = true;
        }
        let mut reps: Vec<u8> = (0..=255u8).filter(|&b| !used[usize::from(b)]).take(1).collect();
        let mut class = [0u32; 256];
        for b in 0..=255u8 {
            if used[usize::from(b)] {
                class[usize::from(b)] = reps.len() as u32;
                reps.push(b);
            }
        }
        let stride = reps.len();
        // Every state reachable from the start, match states first. State
        // ids are small (offsets into aho-corasick's own table): a vector
        // maps them.
        let start = ac.start_state(Anchored::No).ok()?;
        let mut states = vec![start];
        let mut seen = vec![false; start.as_usize() + 1];
        seen[start.as_usize()] = true;
        let mut i = 0;
        while i < states.len() {
            for &b in &reps {
                let next = ac.next_state(Anchored::No, states[i], b);
                let n = next.as_usize();
                if n >= seen.len() {
                    seen.resize(n + 1, false);
                }
                if !seen[n] {
                    seen[n] = true;
                    states.push(next);
                }
            }
            i += 1;
            if states.len() * stride > MAX_ENTRIES {
                return None;
            }
        }
        let is_match = |s: &StateID| ac.is_match(*s);
        let (mut order, rest): (Vec<StateID>, Vec<StateID>) = states.into_iter().partition(is_match);
        let matches = order.len();
        order.extend(rest);
        let mut row = vec![0u32; seen.len()];
        for (r, s) in order.iter().enumerate() {
            row[s.as_usize()] = (r * stride) as u32;
        }
        let mut trans = Vec::with_capacity(order.len() * stride);
        for s in &order {
            trans.extend(reps.iter().map(|&b| row[ac.next_state(Anchored::No, *s, b).as_usize()]));
        }
        let marks = order[..matches]
            .iter()
            .map(|&s| {
                let mut m: Vec<(usize, u8)> = (0..ac.match_len(s))
                    .flat_map(|k| marks[ac.match_pattern(s, k).as_usize()].iter().copied())
                    .collect();
                m.sort_unstable();
                m.dedup();
                m
            })
            .collect();
        Some(Literals {
            class,
            trans,
            start: row[start.as_usize()],
            matches_below: (matches * stride) as u32,
            stride,
            marks,
        })
    }

    /// Calls `mark` with what each literal that `line` holds marks (once
    /// per occurrence).
    #[inline]
    pub fn scan(&self, line: &[u8], mut mark: impl FnMut(usize, u8)) {
        let (trans, class, below) = (&self.trans[..], &self.class, self.matches_below);
        let mut sid = self.start;
        let mut step = |b: u8| {
            let at = (sid + class[usize::from(b)]) as usize;
            debug_assert!(at < trans.len());
            // SAFETY: `sid` is a row offset (start, or an entry of `trans`,
            // all `row * stride` with `row` < rows) and a class is below
            // `stride`, so `at` < rows * stride = `trans.len()`. This is the
            // hot loop of a candidate line; the bounds check cost a third.
            sid = unsafe { *trans.get_unchecked(at) };
            if sid < below {
                for &(slot, bit) in &self.marks[sid as usize / self.stride] {
                    mark(slot, bit);
                }
            }
        };
        // Four bytes a round: fewer loop tests per byte.
        let mut chunks = line.chunks_exact(4);
        for c in &mut chunks {
            step(c[0]);
            step(c[1]);
            step(c[2]);
            step(c[3]);
        }
        for &b in chunks.remainder() {
            step(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every occurrence of every literal is seen, overlapping or inside
    /// another, whatever the bytes around it (a naive search as the model).
    #[test]
    fn literals_table_finds_what_a_naive_search_finds() {
        let lits: Vec<Vec<u8>> = [
            &b"Registration from '"[..],
            b"ion from 'x",
            b"' failed for '",
            b"failed",
            b"d for",
            b"\xff\x00z",
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect();
        let marks: Vec<Vec<(usize, u8)>> = (0..lits.len()).map(|i| vec![(i, 1u8 << (i % 8))]).collect();
        let t = Literals::new(&lits, &marks).unwrap();
        let lines: [&[u8]; 4] = [
            b"Registration from 'x' failed for 'y' - failed",
            b"no literal here at all",
            b"ion from 'x' failed for 'd for \xff\x00z",
            b"",
        ];
        for line in lines {
            let mut got = vec![0usize; lits.len()];
            t.scan(line, |slot, _| got[slot] += 1);
            let want: Vec<usize> = lits
                .iter()
                .map(|l| line.windows(l.len()).filter(|w| w == &&l[..]).count())
                .collect();
            assert_eq!(got, want, "{}", String::from_utf8_lossy(line));
        }
    }
}
