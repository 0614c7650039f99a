//! The fixed strings (one of which) a regex cannot match without, so that lines
//! lacking it are dismissed by one literal scan instead of a regex.
//!
//! Walks the regex's syntax tree: a concatenation's runs of literals are
//! required, and so is anything inside a group or a repetition of at least
//! one; an alternation requires one of its branches' literals (a set);
//! optional parts and classes (incl. case-insensitive letters) give nothing. What comes out is a necessary condition only:
//! the regex still decides.

use regex_syntax::hir::{Hir, HirKind};

/// Shorter literals filter too little to be worth a scan.
const MIN_LEN: usize = 3;

/// At most this many literals for one rule (one of them must occur).
const MAX_SET: usize = 8;

/// A set of literals of which every match contains at least one.
type Set = Vec<Vec<u8>>;

/// At most this many sets per rule (each must be satisfied).
const MAX_GROUPS: usize = 3;

/// Sets of literals such that every match of `regex` contains one literal
/// of each set: the best few (longest shortest literal first), each with
/// literals of at least [`MIN_LEN`] bytes. Empty: none found.
pub fn required(regex: &str) -> Vec<Set> {
    let Ok(hir) = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(regex)
    else {
        return vec![];
    };
    let mut all = Vec::new();
    if let Some(whole) = walk(&hir, &mut all) {
        all.push(vec![whole]);
    }
    all.retain(usable);
    all.sort_by_key(|set| std::cmp::Reverse(score(set)));
    let mut out: Vec<Set> = Vec::new();
    for set in all {
        if out.len() < MAX_GROUPS && !out.contains(&set) {
            out.push(set);
        }
    }
    out
}

fn score(set: &Set) -> (usize, std::cmp::Reverse<usize>) {
    (
        set.iter().map(|l| l.len()).min().unwrap_or(0),
        std::cmp::Reverse(set.len()),
    )
}

/// How rarely a line holds a literal of `set`, roughly: for the literal
/// most likely to occur, the sum of its bytes' weights, where bytes common
/// in log text (spaces, lowercase letters, digits) weigh less than capitals
/// and punctuation. Only a guess (no log at hand when rules are compiled):
/// it picks which set the line gate searches, never what matches.
pub fn selectivity(set: &Set) -> usize {
    let weight = |b: &u8| match b {
        b' ' => 1,
        b'a'..=b'z' | b'0'..=b'9' => 2,
        b'A'..=b'Z' => 4,
        _ => 5,
    };
    set.iter().map(|l| l.iter().map(weight).sum()).min().unwrap_or(0)
}

fn usable(set: &Set) -> bool {
    !set.is_empty() && set.len() <= MAX_SET && score(set).0 >= MIN_LEN
}

fn consider(set: Set, found: &mut Vec<Set>) {
    if usable(&set) {
        found.push(set);
    }
}

fn best_set(h: &Hir) -> Option<Set> {
    let mut found = Vec::new();
    if let Some(whole) = walk(h, &mut found) {
        consider(vec![whole], &mut found);
    }
    found.into_iter().max_by_key(score)
}

/// If `h` always matches exactly one string, that string; records the
/// required sets found inside in `best` either way.
fn walk(h: &Hir, best: &mut Vec<Set>) -> Option<Vec<u8>> {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => Some(Vec::new()),
        HirKind::Literal(l) => Some(l.0.to_vec()),
        HirKind::Capture(c) => walk(&c.sub, best),
        HirKind::Concat(subs) => {
            let mut run = Vec::new();
            let mut whole = true;
            for s in subs {
                match walk(s, best) {
                    Some(lit) => run.extend_from_slice(&lit),
                    None => {
                        consider(vec![std::mem::take(&mut run)], best);
                        whole = false;
                    }
                }
            }
            if whole {
                Some(run)
            } else {
                consider(vec![run], best);
                None
            }
        }
        HirKind::Repetition(r) if r.min >= 1 => {
            let inner = walk(&r.sub, best);
            if r.min == 1 && r.max == Some(1) {
                inner
            } else {
                if let Some(lit) = inner {
                    consider(vec![lit], best);
                }
                None
            }
        }
        HirKind::Alternation(branches) => {
            // One of the branches matches: the union of their sets is required.
            let mut union = Vec::new();
            for b in branches {
                match best_set(b) {
                    Some(set) => union.extend(set),
                    None => return None,
                }
            }
            consider(union, best);
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_best_required_set() {
        // The best set only.
        let r = |re: &str| {
            required(re).into_iter().next().map(|set| {
                set.into_iter()
                    .map(|l| String::from_utf8(l).unwrap())
                    .collect::<Vec<_>>()
            })
        };
        let v = |xs: &[&str]| Some(xs.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(
            r("Failed (?:password|publickey) for .* from (?P<host>\\S+) port"),
            v(&["password", "publickey"])
        );
        assert_eq!(
            r("(?:Host|Call) x (?:failed (?:to authenticate|MD5 authentication)|tried to authenticate)"),
            v(&["to authenticate", "MD5 authentication", "tried to authenticate"])
        );
        assert_eq!(
            r("^(?:a|b)?Registration from '[^']*' failed"),
            v(&["Registration from '"])
        );
        assert_eq!(r("(?:abc)+xy"), v(&["abc"]));
        assert_eq!(r("(?:abcdef)?xy"), None, "optional parts are not required");
        assert_eq!(r("(?i)failed password"), None, "case-insensitive letters are classes");
        assert_eq!(r("foo|barbaz"), v(&["foo", "barbaz"]));
        assert_eq!(r("fo|barbaz"), None, "too short");
        assert_eq!(r("x(?P<g>hostname)y"), v(&["xhostnamey"]));
    }

    #[test]
    fn rarer_bytes_are_more_selective() {
        let set = |xs: &[&str]| xs.iter().map(|x| x.as_bytes().to_vec()).collect::<Set>();
        assert!(selectivity(&set(&["nvalid"])) > selectivity(&set(&[" user "])));
        assert!(selectivity(&set(&["' (callid: "])) > selectivity(&set(&[" to callid "])));
        // The least selective literal of a set counts.
        assert_eq!(selectivity(&set(&["Invalid", "abc"])), selectivity(&set(&["abc"])));
    }

    /// The literal is a necessary condition: every match contains it.
    #[test]
    fn literal_is_in_every_match() {
        let lines = [
            "Jan 1 00:00:00 h sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2",
            "Registration from '<sip:1@x>' failed for '192.0.2.1' - Wrong password",
        ];
        for re in [
            "Failed (?:password|publickey) for .* from \\S+ port \\d+",
            "Registration from '[^']*' failed for '[^']*' - (?:Wrong password|No match)",
        ] {
            let sets = required(re);
            assert!(sets.len() >= 2, "{re}: {sets:?}");
            let compiled = regex::Regex::new(re).unwrap();
            let mut matched = 0;
            for l in lines {
                if compiled.is_match(l) {
                    matched += 1;
                    for set in &sets {
                        assert!(
                            set.iter().any(|lit| memchr::memmem::find(l.as_bytes(), lit).is_some()),
                            "{re} / {l}"
                        );
                    }
                }
            }
            assert_eq!(matched, 1, "{re}");
        }
    }
}
