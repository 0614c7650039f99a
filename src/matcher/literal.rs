//! The longest fixed string a regex cannot match without, so that lines
//! lacking it are dismissed by one literal scan instead of a regex.
//!
//! Walks the regex's syntax tree: a concatenation's runs of literals are
//! required, and so is anything inside a group or a repetition of at least
//! one; alternations, optional parts and classes (incl. case-insensitive
//! letters) give nothing. What comes out is a necessary condition only:
//! the regex still decides.

use regex_syntax::hir::{Hir, HirKind};

/// Shorter literals filter too little to be worth a scan.
const MIN_LEN: usize = 3;

/// The longest literal every match of `regex` contains, if one of at least
/// [`MIN_LEN`] bytes exists.
pub fn required(regex: &str) -> Option<Vec<u8>> {
    let hir = regex_syntax::Parser::new().parse(regex).ok()?;
    let mut best = Vec::new();
    if let Some(whole) = walk(&hir, &mut best) {
        consider(&whole, &mut best);
    }
    (best.len() >= MIN_LEN).then_some(best)
}

fn consider(run: &[u8], best: &mut Vec<u8>) {
    if run.len() > best.len() {
        *best = run.to_vec();
    }
}

/// If `h` always matches exactly one string, that string; records the
/// longest required literal found inside in `best` either way.
fn walk(h: &Hir, best: &mut Vec<u8>) -> Option<Vec<u8>> {
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
                        consider(&run, best);
                        run.clear();
                        whole = false;
                    }
                }
            }
            if whole {
                Some(run)
            } else {
                consider(&run, best);
                None
            }
        }
        HirKind::Repetition(r) if r.min >= 1 => {
            let inner = walk(&r.sub, best);
            if r.min == 1 && r.max == Some(1) {
                inner
            } else {
                if let Some(lit) = inner {
                    consider(&lit, best);
                }
                None
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_longest_required_run() {
        let r = |re: &str| required(re).map(|l| String::from_utf8(l).unwrap());
        assert_eq!(
            r("Failed (?:password|publickey) for .* from (?P<host>\\S+) port"),
            Some("Failed ".into())
        );
        assert_eq!(
            r("^(?:a|b)?Registration from '[^']*' failed"),
            Some("Registration from '".into())
        );
        assert_eq!(r("(?:abc)+xy"), Some("abc".into()));
        assert_eq!(r("(?:abcdef)?xy"), None, "optional parts are not required");
        assert_eq!(r("(?i)failed password"), None, "case-insensitive letters are classes");
        assert_eq!(r("foo|barbaz"), None);
        assert_eq!(r("x(?P<g>hostname)y"), Some("xhostnamey".into()));
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
            let lit = required(re).unwrap();
            let compiled = regex::Regex::new(re).unwrap();
            for l in lines {
                if compiled.is_match(l) {
                    assert!(memchr::memmem::find(l.as_bytes(), &lit).is_some(), "{re} / {l}");
                }
            }
        }
    }
}
