//! The fallback engine: fail2ban's rules that the fast engine cannot run,
//! run with Python `re` semantics through PCRE2 (with its JIT).
//!
//! fail2ban writes its filters for Python's `re`: look-around,
//! backreferences (`(?P=name)`), conditionals (`(?(name)yes|no)`), several
//! address tags in one rule, and fields whose *branch* matters
//! (`Failed (?:<F-NOFAIL>publickey</F-NOFAIL>|\S+) for`: a failure unless
//! the `publickey` branch matched). Rust's regex refuses the first three and
//! cannot say which branch matched without captures. PCRE2 takes Python's
//! spellings as they are (`(?P<n>`, `(?P=n)`, `(?(n)`), backtracks as
//! Python does, and its JIT keeps such a rule near the fast engine's cost
//! on short lines (docs/fail2ban-conformance.md has the measurement against
//! fancy-regex). It runs only rules of imported fail2ban filters that need
//! it ([`needs_fallback`]); shipped rulesets never reach it.
//!
//! A backtracking engine can take long on a hostile line: PCRE2's match
//! limit stops it, and a stopped match counts as no match, so a line can
//! cost a bounded time and never stop the reader.

use pcre2::bytes::{CaptureLocations, Regex, RegexBuilder};

use super::host::{self, TagError};

/// The fields of fail2ban that change what a match means. `f_` is how
/// [`host::expand_tags`] names `<F-NAME>` groups.
const NOFAIL: &str = "f_nofail";
/// The user a line names (`<F-USER>`), or else its alternative
/// (`<F-ALT_USER>`, also numbered `<F-ALT_USER_1>`): fail2ban counts the
/// users a session tried.
pub(super) const USER: &str = "f_user";
pub(super) const ALT_USER: &str = "f_alt_user";
const MLFGAINED: &str = "f_mlfgained";
const MLFFORGET: &str = "f_mlfforget";
const MLFID: &str = "f_mlfid";

/// Whether a rule of a fail2ban filter must run on this engine even though
/// the fast one could compile it: its meaning depends on which of its
/// groups took part (`<F-NOFAIL>`, multi-line fields).
pub(super) fn has_state_fields(rule: &str) -> bool {
    ["<F-NOFAIL>", "<F-MLFGAINED>", "<F-MLFFORGET>", "<F-MLFID>"]
        .iter()
        .any(|t| rule.contains(t))
}

/// Whether the fast engine refused this rule for something this engine
/// has: Python regex syntax, or more than one address tag.
pub(super) fn needs_fallback(fast_error: &str) -> bool {
    !fast_error.contains("compiles to more than")
}

/// Python's `re` spellings that PCRE2 writes differently: `\Z` (PCRE2's
/// `\z`), `{,n}` (PCRE2 before 10.43 reads it as text).
pub(super) fn translate(re: &str) -> String {
    let mut out = String::with_capacity(re.len() + 8);
    let mut chars = re.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                match chars.next() {
                    Some('Z') => out.push('z'),
                    Some(n) => out.push(n),
                    None => {}
                }
            }
            '{' if chars.peek() == Some(&',') => out.push_str("{0"),
            _ => out.push(c),
        }
    }
    out
}

/// A rule compiled for this engine.
#[derive(Debug)]
pub(super) struct Rule {
    regex: Regex,
    /// The groups of its address tags, in order (`h0`, `h1`, ...).
    hosts: Vec<usize>,
    nofail: Vec<usize>,
    gained: Vec<usize>,
    forget: Vec<usize>,
    /// `<F-USER>` groups, then `<F-ALT_USER>` ones.
    users: Vec<usize>,
    alt_users: Vec<usize>,
    mlfid: Option<usize>,
    fid: Option<usize>,
}

/// What a rule found in a text.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Found {
    /// Where the address (or host name) is, if any address tag took part.
    pub(super) host: Option<(usize, usize)>,
    /// `<F-NOFAIL>` took part: no failure.
    pub(super) nofail: bool,
    /// `<F-MLFGAINED>` took part: the session logged in (no failure, and
    /// its pending failures are dropped).
    pub(super) gained: bool,
    /// The user the line names: `<F-USER>`, or `<F-ALT_USER>` when that
    /// is absent or empty (fail2ban's `alt_` fields).
    pub(super) user: Option<(usize, usize)>,
    /// `<F-MLFFORGET>` took part: the session ends.
    pub(super) forget: bool,
    /// The session the line belongs to (`<F-MLFID>`).
    pub(super) mlfid: Option<(usize, usize)>,
    /// `<F-ID>`: what fail2ban bans when there is no address.
    pub(super) fid: Option<(usize, usize)>,
}

/// Compile a Python regex (tags expanded, as this engine names them).
pub(super) fn compile(re: &str) -> Result<Regex, String> {
    RegexBuilder::new()
        .jit_if_available(true)
        .utf(false)
        .ucp(false)
        .build(&translate(re))
        .map_err(|e| e.to_string())
}

/// `rule` with its tags expanded for this engine: each address tag gets a
/// group of its own (`h0`, `h1`, ...), since one rule may have several
/// (`(?:IPv6:<IP6>|<IP4>)`); names may repeat across branches.
pub(super) fn expand(rule: &str, need_address: bool) -> Result<String, TagError> {
    let mut expanded = host::expand_tags_numbered(rule, need_address)?;
    // fail2ban names `<F-USER>`'s group `user`, and rules refer to it so
    // (roundcube's `user=(?P=user)`); nftban names it `f_user`.
    let fields: Vec<String> = expanded
        .split("(?P<f_")
        .skip(1)
        .filter_map(|t| t.find('>').map(|end| t[..end].to_string()))
        .collect();
    for name in fields {
        for (python, ours) in [("(?P={})", "(?P=f_{})"), ("(?({})", "(?(f_{})")] {
            expanded = expanded.replace(&python.replace("{}", &name), &ours.replace("{}", &name));
        }
    }
    Ok(format!("(?J){expanded}"))
}

impl Rule {
    /// The rule (tags not expanded), or why this engine cannot run it.
    pub(super) fn new(rule: &str, need_address: bool) -> Result<Rule, String> {
        let expanded = expand(rule, need_address).map_err(|e| e.to_string())?;
        let regex = compile(&expanded)?;
        let names = regex.capture_names().to_vec();
        let groups = |pred: &dyn Fn(&str) -> bool| -> Vec<usize> {
            names
                .iter()
                .enumerate()
                .filter(|(_, n)| n.as_deref().is_some_and(pred))
                .map(|(i, _)| i)
                .collect()
        };
        let hosts = groups(&|n| n.starts_with('h') && n[1..].bytes().all(|b| b.is_ascii_digit()) && n.len() > 1);
        Ok(Rule {
            nofail: groups(&|n| n == NOFAIL),
            gained: groups(&|n| n == MLFGAINED),
            forget: groups(&|n| n == MLFFORGET),
            users: groups(&|n| n == USER),
            alt_users: groups(&|n| is_alt_user(n)),
            mlfid: groups(&|n| n == MLFID).first().copied(),
            fid: groups(&|n| n == "f_id" || n == "fid").first().copied(),
            hosts,
            regex,
        })
    }

    pub(super) fn locations(&self) -> CaptureLocations {
        self.regex.capture_locations()
    }

    /// Heap bytes of the compiled rule, roughly (PCRE2 does not say): its
    /// pattern's size is what it grows with.
    pub(super) fn memory(&self) -> usize {
        self.regex.as_str().len() * 16
    }

    /// Match `text`; `None`: no match (or PCRE2 gave up at its limits).
    pub(super) fn find(&self, text: &[u8], locs: &mut CaptureLocations) -> Option<Found> {
        self.regex.captures_read(locs, text).ok()??;
        let took_part = |groups: &[usize]| groups.iter().any(|&g| locs.get(g).is_some());
        let non_empty = |groups: &[usize]| groups.iter().find_map(|&g| locs.get(g).filter(|(s, e)| e > s));
        Some(Found {
            host: self.hosts.iter().find_map(|&g| locs.get(g)),
            nofail: took_part(&self.nofail),
            gained: took_part(&self.gained),
            user: non_empty(&self.users).or_else(|| non_empty(&self.alt_users)),
            forget: took_part(&self.forget),
            mlfid: self.mlfid.and_then(|g| locs.get(g)),
            fid: self.fid.and_then(|g| locs.get(g)),
        })
    }
}

/// Whether a group is an `<F-ALT_USER>` field (`f_alt_user`,
/// `f_alt_user_2`), as fail2ban's `alt_NAME(_N)` names alternatives.
pub(super) fn is_alt_user(name: &str) -> bool {
    name.strip_prefix(ALT_USER).is_some_and(|rest| {
        rest.is_empty()
            || rest
                .strip_prefix('_')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// A prefregex on this engine: the content, and the fields the rules may
/// take from it (address, session).
#[derive(Debug)]
pub(super) struct Pref {
    rule: Rule,
    content: usize,
}

impl Pref {
    pub(super) fn new(re: &str) -> Result<Pref, String> {
        let rule = Rule::new(re, false)?;
        let content = rule
            .regex
            .capture_names()
            .iter()
            .position(|n| n.as_deref() == Some(host::CONTENT_GROUP))
            .ok_or("no <F-CONTENT>...</F-CONTENT> in it")?;
        Ok(Pref { rule, content })
    }

    pub(super) fn locations(&self) -> CaptureLocations {
        self.rule.locations()
    }

    /// The content's span and what else the prefregex found, or `None`.
    pub(super) fn find(&self, text: &[u8], locs: &mut CaptureLocations) -> Option<((usize, usize), Found)> {
        let found = self.rule.find(text, locs)?;
        Some((locs.get(self.content)?, found))
    }

    /// Whether it has an address tag or a session (rules may then lack one).
    pub(super) fn gives_address(&self) -> bool {
        !self.rule.hosts.is_empty() || self.rule.mlfid.is_some()
    }
}

/// fail2ban's multi-line sessions (`<F-MLFID>`) of one jail, as its
/// `_mergeFailure` keeps them: the address a session's earlier line gave,
/// whether a failure waits for one, and the users it tried. Bounded as
/// fail2ban bounds its own: at most [`SESSIONS`] sessions, the oldest
/// dropped first.
#[derive(Debug, Default, Clone)]
pub(super) struct Sessions {
    entries: std::collections::VecDeque<(Vec<u8>, Session)>,
}

/// fail2ban keeps 100 sessions (`Utils.Cache(maxCount=100)`).
const SESSIONS: usize = 100;

#[derive(Debug, Default, Clone)]
struct Session {
    host: Option<Vec<u8>>,
    /// A failure matched without an address: the next address is failed.
    pending: bool,
    /// The first user the session named, and whether it named another
    /// since: fail2ban only asks whether its set of users holds more than
    /// one, so this is all of it that counts (and stays small).
    user: Option<Vec<u8>>,
    other_users: bool,
}

impl Session {
    fn add_user(&mut self, user: Option<&[u8]>) {
        match (&self.user, user) {
            (None, Some(u)) => self.user = Some(u.to_vec()),
            (Some(first), Some(u)) if first != u => self.other_users = true,
            _ => {}
        }
    }
}

/// What a matched line tells its session.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Line<'a> {
    /// The address (or name) the line or its prefregex gave.
    pub(super) host: Option<&'a [u8]>,
    /// The user it names (`<F-USER>`, else `<F-ALT_USER>`), not empty.
    pub(super) user: Option<&'a [u8]>,
    /// `<F-NOFAIL>`: no failure by itself.
    pub(super) nofail: bool,
    /// `<F-MLFGAINED>`: logged in; no failure, pending failures dropped.
    pub(super) gained: bool,
    /// `<F-MLFFORGET>`: the session ends with this line.
    pub(super) forget: bool,
}

/// What a line of a session comes to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// A failure of this host (the line's, or the session's).
    Failure(Vec<u8>),
    /// Not a failure (yet).
    Nothing,
}

impl Sessions {
    /// Merge a match of session `id`, as fail2ban's `_mergeFailure` and
    /// `findFailure` do: the host from the line or the session; a success
    /// (`gained`) drops the failures pending; a line that is no failure by
    /// itself (`nofail`, `gained`) is one when a failure of the session is
    /// pending, or when the session has tried more than one user (an
    /// intruder trying names, then logging in to make fail2ban forget: its
    /// gh-2070); a failure without any host waits for one. A session
    /// forgotten at its first line keeps nothing, users included.
    pub(super) fn merge(&mut self, id: &[u8], line: Line) -> Outcome {
        let at = self.entries.iter().position(|(k, _)| k == id);
        let known = at.and_then(|i| self.entries.remove(i)).map(|(_, s)| s);
        let cached = known.is_some() || !line.forget;
        let mut session = known.unwrap_or_default();
        if cached {
            session.add_user(line.user);
        }
        if line.gained {
            session.pending = false;
        }
        if let Some(h) = line.host {
            session.host = Some(h.to_vec());
        }
        let mut nofail = line.nofail || line.gained;
        if std::mem::take(&mut session.pending) || session.other_users {
            nofail = false;
        }
        let outcome = match (&session.host, nofail) {
            (_, true) => Outcome::Nothing,
            (Some(h), false) => Outcome::Failure(h.clone()),
            (None, false) => {
                session.pending = true;
                Outcome::Nothing
            }
        };
        if !line.forget {
            if self.entries.len() >= SESSIONS {
                self.entries.pop_front();
            }
            self.entries.push_back((id.to_vec(), session));
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_spellings() {
        assert_eq!(translate(r"a\Z"), r"a\z");
        assert_eq!(translate(r"\d{,3}x{2,}"), r"\d{0,3}x{2,}");
        assert_eq!(translate(r"\\Z"), r"\\Z");
    }

    /// Look-around, backreferences, conditionals and two address tags,
    /// as fail2ban's filters write them.
    #[test]
    fn python_regexes_run() {
        let find = |rule: &str, text: &str| {
            let r = Rule::new(rule, true).unwrap();
            let mut locs = r.locations();
            r.find(text.as_bytes(), &mut locs)
                .map(|f| f.host.map(|(s, e)| text[s..e].to_string()))
        };
        assert_eq!(
            find(r"^(?:IPv6:<IP6>|<IP4>) x", "IPv6:2001:db8::1 x"),
            Some(Some("2001:db8::1".into()))
        );
        assert_eq!(
            find(r"^(?:IPv6:<IP6>|<IP4>) x", "192.0.2.1 x"),
            Some(Some("192.0.2.1".into()))
        );
        assert_eq!(find(r"^(?!bad)\w+ from <HOST>$", "bad from 192.0.2.1"), None);
        assert_eq!(
            find(r"^(?P<q>['x])u(?P=q) from <HOST>\Z", "'u' from 192.0.2.1"),
            Some(Some("192.0.2.1".into()))
        );
        assert_eq!(
            find(r"^(?P<c>a)?b(?(c)c|d) <ADDR>", "bd 192.0.2.9"),
            Some(Some("192.0.2.9".into()))
        );
        assert_eq!(find(r"^\d{,3} <HOST>$", "12 192.0.2.1"), Some(Some("192.0.2.1".into())));
        // A field referred to by fail2ban's name for it.
        let rule = r"^Login failed for <F-USER>\S+</F-USER> from <HOST>(?: user=(?P=user))?$";
        assert_eq!(
            find(rule, "Login failed for bob from 192.0.2.4 user=bob"),
            Some(Some("192.0.2.4".into()))
        );
        assert_eq!(find(rule, "Login failed for bob from 192.0.2.4 user=eve"), None);
    }

    /// `<F-NOFAIL>` covers its branch only.
    #[test]
    fn nofail_is_per_branch() {
        let r = Rule::new(
            r"^Failed (?:<F-NOFAIL>publickey</F-NOFAIL>|\S+) for \S+ from <HOST>",
            true,
        )
        .unwrap();
        let mut locs = r.locations();
        assert!(
            r.find(b"Failed publickey for x from 192.0.2.1", &mut locs)
                .unwrap()
                .nofail
        );
        assert!(
            !r.find(b"Failed password for x from 192.0.2.1", &mut locs)
                .unwrap()
                .nofail
        );
    }

    /// A line as the sessions see it.
    fn line<'a>(host: Option<&'a str>, user: Option<&'a str>, flags: &str) -> Line<'a> {
        Line {
            host: host.map(str::as_bytes),
            user: user.map(str::as_bytes),
            nofail: flags.contains("nofail"),
            gained: flags.contains("gained"),
            forget: flags.contains("forget"),
        }
    }

    /// A session's address comes from an earlier line; a failure without
    /// one waits for it; forgetting ends the session; the cache is bounded.
    #[test]
    fn sessions_carry_the_address() {
        let mut s = Sessions::default();
        let ip = |a: &str| Outcome::Failure(a.as_bytes().to_vec());
        assert_eq!(s.merge(b"a", line(Some("192.0.2.1"), None, "nofail")), Outcome::Nothing);
        assert_eq!(s.merge(b"a", line(None, None, "")), ip("192.0.2.1"));
        assert_eq!(s.merge(b"b", line(None, None, "")), Outcome::Nothing);
        assert_eq!(
            s.merge(b"b", line(Some("192.0.2.2"), None, "nofail forget")),
            ip("192.0.2.2")
        );
        assert_eq!(s.merge(b"b", line(None, None, "")), Outcome::Nothing, "forgotten");
        for i in 0..(SESSIONS * 2) {
            s.merge(format!("s{i}").as_bytes(), line(Some("192.0.2.3"), None, "nofail"));
        }
        assert!(s.entries.len() <= SESSIONS);
    }

    /// fail2ban's gh-2070, as its sshd samples have it: a success drops the
    /// failures pending; a session that tried several users fails on its
    /// lines that are no failure by themselves, its success included.
    #[test]
    fn sessions_count_users() {
        let mut s = Sessions::default();
        let ip = |a: &str| Outcome::Failure(a.as_bytes().to_vec());
        // One user, two PAM methods, then in: never a failure.
        let h = Some("192.0.2.113");
        assert_eq!(s.merge(b"1", line(h, Some("rda"), "nofail")), Outcome::Nothing);
        assert_eq!(s.merge(b"1", line(h, Some("rda"), "nofail")), Outcome::Nothing);
        assert_eq!(s.merge(b"1", line(h, Some("rda"), "gained forget")), Outcome::Nothing);
        assert_eq!(s.merge(b"1", line(h, None, "nofail forget")), Outcome::Nothing);
        // A second user fails, and so does the success that follows.
        let h = Some("192.0.2.114");
        assert_eq!(s.merge(b"2", line(h, Some("root"), "nofail")), Outcome::Nothing);
        assert_eq!(s.merge(b"2", line(h, Some("sudoer"), "nofail")), ip("192.0.2.114"));
        assert_eq!(
            s.merge(b"2", line(h, Some("known"), "gained forget")),
            ip("192.0.2.114")
        );
        // The same user twice is one user; the success as another fails.
        let h = Some("192.0.2.116");
        assert_eq!(s.merge(b"3", line(h, Some("root"), "nofail")), Outcome::Nothing);
        assert_eq!(s.merge(b"3", line(h, Some("root"), "nofail")), Outcome::Nothing);
        assert_eq!(
            s.merge(b"3", line(h, Some("known"), "gained forget")),
            ip("192.0.2.116")
        );
        assert_eq!(
            s.merge(b"3", line(h, None, "nofail forget")),
            Outcome::Nothing,
            "forgotten"
        );
        // A success drops a failure waiting for its address.
        assert_eq!(s.merge(b"4", line(None, None, "")), Outcome::Nothing);
        assert_eq!(
            s.merge(b"4", line(Some("192.0.2.5"), Some("u"), "gained")),
            Outcome::Nothing
        );
        assert_eq!(s.merge(b"4", line(None, Some("u"), "nofail")), Outcome::Nothing);
        // A session forgotten at its first line keeps no users.
        assert_eq!(s.merge(b"5", line(h, Some("a"), "nofail forget")), Outcome::Nothing);
        assert_eq!(s.merge(b"5", line(h, Some("b"), "nofail")), Outcome::Nothing);
    }

    #[test]
    fn alt_user_names() {
        assert!(is_alt_user("f_alt_user") && is_alt_user("f_alt_user_2"));
        assert!(!is_alt_user("f_alt_users") && !is_alt_user("f_alt_user_") && !is_alt_user("f_user"));
    }
}
