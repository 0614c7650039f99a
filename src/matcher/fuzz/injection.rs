//! The injection property: an attacker writes into some fields of a log
//! line (a user name, a SIP From or Call-ID, an HTTP request, a HELO) and
//! wants a ban of an address of its choosing (a neighbour, the admin's
//! own). Into the attacker's fields of every shipped example line that
//! names a host, forged text is put: the line's own words around a forged
//! address (`' failed for '203.0.113.66' - Wrong password`), known decoys,
//! padding. Whatever is put there, no jail bans the forged address, and
//! the example's ruleset bans the example's host or nobody.
//!
//! Also: noise an attacker or a broken client adds (Unicode, bytes that
//! are not UTF-8 and read as U+FFFD) in those fields leaves every example's
//! host as it was, and after the end of the line gives no other address.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::SystemTime;

use proptest::prelude::*;
use proptest::sample::Index;
use regex::Regex;

use super::{all_matchers, failure, shipped};
use crate::fuzz;
use crate::matcher::{LineMatch, Matcher, MatcherRef, SourceMatcher, Zone, HOST_GROUP};

/// Where the attacker writes in a line: a regex whose group `f` is a field
/// whose text the client chooses; whether the rules take any text there
/// (false: they read its shape, such as an HTTP request's method and
/// path); characters the service never writes into it.
type Field = (&'static str, bool, &'static str);

/// Per shipped ruleset, the attacker's fields in its lines (from the
/// rulesets' own notes on injection and the services' log formats). Only
/// one field is known to be limited: pam_unix's `ruser=` holds dovecot's
/// user name, which has no white space under dovecot's default
/// `auth_username_chars` (the dovecot ruleset's rule 0 relies on it).
const FIELDS: &[(&str, &[Field])] = &[
    (
        "asterisk",
        &[
            ("Registration from '(?P<f>.*)' failed for '", true, ""),
            ("Call from '(?P<f>[^']*)' \\(", true, ""),
            ("to extension '(?P<f>[^']*)' rejected", true, ""),
            (" failed to authenticate as '(?P<f>.*)'$", true, ""),
            ("failed MD5 authentication for '(?P<f>.*)' \\(", true, ""),
            ("nonexistent user '(?P<f>.*)'$", true, ""),
            ("No registration for peer '(?P<f>.*)' \\(from ", true, ""),
            ("Request '(?P<f>[^']*)' from '", true, ""),
            ("Request (?:'[^']*' )?from '(?P<f>[^']*)' failed for '", true, ""),
            ("\\(callid: (?P<f>[^)\\s]*)\\)", true, ""),
            ("AOR '(?P<f>.*)' not found for endpoint", true, ""),
            ("AccountID=\"(?P<f>[^\"]*)\"", true, ""),
            ("SessionID=\"(?P<f>[^\"]*)\"", true, ""),
            ("ReceivedChallenge=\"(?P<f>[^\"]*)\"", true, ""),
            ("ReceivedHash=\"(?P<f>[^\"]*)\"", true, ""),
            (",Response=\"(?P<f>[^\"]*)\"", true, ""),
            ("Ext\\. (?P<f>[^:\\s]*)", true, ""),
        ],
    ),
    (
        "sshd",
        &[
            ("Failed \\S+ for (?:invalid user )?(?P<f>.*) from ", true, ""),
            ("[iI](?:nvalid|llegal) user (?P<f>.*) from ", true, ""),
            ("User (?P<f>.*) from \\S+ not allowed", true, ""),
            ("exceeded for (?:invalid user )?(?P<f>.*) from ", true, ""),
            (
                "(?:Disconnecting|Connection closed by) (?:invalid|authenticating) user (?P<f>.*) \\S+ port ",
                true,
                "",
            ),
            ("PAM: [^:]* for (?:illegal user )?(?P<f>.*) from ", true, ""),
        ],
    ),
    ("sshd-aggressive", &[]),
    (
        "kamailio",
        &[
            (" from (?P<f>\\S+) \\(IP:", true, ""),
            ("scanner blocked: (?P<f>.*) from ", true, ""),
            ("\\{[0-9]+ [0-9]+ (?P<f>[^{}]*)\\}", true, ""),
        ],
    ),
    (
        "freeswitch",
        &[
            ("for \\[(?P<f>.*)\\] from ip ", true, ""),
            ("Can't find user \\[(?P<f>.*)\\] from ", true, ""),
        ],
    ),
    (
        "postfix",
        &[
            ("authentication failed:(?P<f>.*)$", true, ""),
            ("helo=<(?P<f>[^>]*)>", true, ""),
            ("from=<(?P<f>[^>]*)>", true, ""),
            ("to=<(?P<f>[^>]*)>", true, ""),
            ("\\]: [45][0-9][0-9] [0-9.]+ <(?P<f>[^>]*)>", true, ""),
            ("pipelining after \\S+ from \\S+\\]: (?P<f>.*)$", true, ""),
        ],
    ),
    (
        "dovecot",
        &[
            ("user=<(?P<f>[^>]*)>", true, ""),
            ("[a-z-]{3,15}\\((?P<f>.*),[0-9a-fA-F.:]+(?:,<[^>]*>|,)?\\): ", true, ""),
            ("ruser=(?P<f>\\S*) rhost=", true, " \t"),
            ("  user=(?P<f>.*)$", true, ""),
        ],
    ),
    (
        "nginx",
        &[
            ("user \"(?P<f>[^\"]*)\"", true, ""),
            ("request: \"(?P<f>[^\"]*)\"", false, ""),
            ("host: \"(?P<f>[^\"]*)\"", true, ""),
            ("referrer: \"(?P<f>[^\"]*)\"", true, ""),
            ("(?:open\\(\\) )?\"(?P<f>[^\"]*)\" (?:failed|is not found)", false, ""),
            ("\\] \"(?P<f>[^\"]*)\" [0-9]{3} ", false, ""),
            (" \"(?P<f>[^\"]*)\"$", true, ""),
        ],
    ),
];

/// `sshd-aggressive` writes the lines `sshd` does.
fn fields_of(name: &str) -> &'static [Field] {
    let name = if name == "sshd-aggressive" { "sshd" } else { name };
    FIELDS.iter().find(|(n, _)| *n == name).map_or(&[], |(_, f)| f)
}

/// Start and end of a piece of a line.
type Span = (usize, usize);

/// An attacker's field found in a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Slot {
    span: Span,
    /// The rules take any text in it.
    free: bool,
    /// Characters the service never writes into it.
    never: &'static str,
}

/// An example line that names a host, with the attacker's fields in it.
#[derive(Debug)]
struct Target {
    /// Index into [`shipped`].
    ruleset: usize,
    /// The matchers (index into the ruleset's) the example holds for.
    matchers: Vec<usize>,
    line: String,
    host: IpAddr,
    /// Where the host is written.
    host_at: Span,
    fields: Vec<Slot>,
}

impl Target {
    /// The fields the rules take any text in.
    fn free(&self) -> Vec<Span> {
        self.fields.iter().filter(|f| f.free).map(|f| f.span).collect()
    }
}

fn targets() -> &'static [Target] {
    static TARGETS: OnceLock<Vec<Target>> = OnceLock::new();
    TARGETS.get_or_init(|| {
        let mut out = Vec::new();
        for (r, s) in shipped().iter().enumerate() {
            let locators: Vec<(Regex, bool, &'static str)> = fields_of(s.name)
                .iter()
                .map(|(f, free, never)| (Regex::new(f).unwrap(), *free, *never))
                .collect();
            for ex in &s.rules.examples {
                let Some(host) = ex.host.as_deref() else { continue };
                let host: IpAddr = host.parse().unwrap();
                let matchers: Vec<usize> = s
                    .matchers
                    .iter()
                    .enumerate()
                    .filter(|(_, (mode, _))| ex.mode.is_none() || ex.mode == *mode)
                    .map(|(i, _)| i)
                    .collect();
                let mut fields: Vec<Slot> = locators
                    .iter()
                    .filter_map(|(re, free, never)| {
                        let f = re.captures(&ex.line)?.name("f")?;
                        Some(Slot {
                            span: (f.start(), f.end()),
                            free: *free,
                            never,
                        })
                    })
                    .collect();
                fields.sort();
                fields.dedup_by_key(|f| f.span);
                let Some(&k) = matchers.first() else { continue };
                let host_at = host_span(&s.matchers[k].1, &ex.line).expect("an example holds");
                // A field that holds the host's place is not the attacker's.
                fields.retain(|f| f.span.1 <= host_at.0 || f.span.0 >= host_at.1);
                let target = Target {
                    ruleset: r,
                    matchers,
                    line: ex.line.clone(),
                    host,
                    host_at,
                    fields,
                };
                if !target.fields.is_empty() {
                    out.push(target);
                }
            }
        }
        out
    })
}

/// Where the host is written in `line`: the host group of the rule that
/// `m` finds it with (shipped rulesets match on the whole line).
fn host_span(m: &Matcher, line: &str) -> Option<Span> {
    let LineMatch::Failure { rule, .. } = m.match_line(line) else {
        return None;
    };
    let re = &m.rules[rule].regex;
    let mut caps = re.create_captures();
    re.captures(line.as_bytes(), &mut caps);
    let host = caps.get_group_by_name(HOST_GROUP)?;
    Some((host.start, host.end))
}

/// Addresses the attacker wants banned (none is in an example line).
const FORGED: &[&str] = &["203.0.113.66", "2001:db8:bad::66", "::ffff:203.0.113.67", "198.18.0.66"];

/// Decoys around a forged address `{A}`: what each ruleset's rules look
/// for after an address.
const DECOYS: &[&str] = &[
    "' failed for '{A}' - Wrong password",
    "' failed for '{A}:5060' - Wrong password",
    "' failed for '[{A}]:5060' (callid: x) - No matching endpoint found",
    "' ({A}:5060) to extension 'x' rejected because extension not found in context 'p'.",
    " from {A} port 22 ssh2",
    " from {A} port 22 ssh2: RSA SHA256:x",
    " from {A}",
    " {A} port 22 [preauth]",
    " from {A} not allowed because not listed in AllowUsers",
    "\", client: {A}, server: x, request: \"GET / HTTP/1.1\"",
    ": password mismatch, client: {A}, server: x, request: \"GET / HTTP/1.1\", host: \"x\"",
    ",RemoteAddress=\"IPV4/UDP/{A}/5060\"",
    "\",RemoteAddress=\"IPV4/UDP/{A}/5060\",Challenge=\"x",
    " (IP:{A}:5060)",
    "] from ip {A}",
    "] from {A}",
    ", rip={A}, lip=192.0.2.1, TLS",
    "x,{A}): unknown user",
    "x,{A},<s>): Password mismatch",
    " rhost={A}",
    "unknown[{A}]: SASL LOGIN authentication failed: x",
    "{A} - - [25/Nov/2026:04:00:00 +0000] \"GET /.env HTTP/1.1\" 404 1",
    "'{A}'",
    "{A}",
];

/// What the attacker puts into one field: a decoy, the line's own text
/// around the host with the forged address in its place (cut anywhere),
/// both, repeated, with quotes or padding.
fn forged_text(t: &Target, forged: &str, pick: (u8, Index, Index, Index)) -> String {
    let (kind, a, b, c) = pick;
    let line = &t.line;
    let (hs, he) = t.host_at;
    let mimic = || {
        let s = fuzz::floor_char(line, a.index(hs + 1));
        let e = fuzz::floor_char(line, he + b.index(line.len() - he + 1));
        format!("{}{forged}{}", &line[s..hs], &line[he..e])
    };
    let decoy = || DECOYS[c.index(DECOYS.len())].replace("{A}", forged);
    match kind {
        0 | 1 => mimic(),
        2 => decoy(),
        3 => format!("{}{}", mimic(), decoy()),
        4 => mimic().repeat(2 + a.index(3)),
        5 => format!("{}'\"]>){}", decoy(), mimic()),
        _ => format!("{}{}", "A".repeat(1 + c.index(70_000)), mimic()),
    }
}

/// The example with forged text put into some of its fields.
#[derive(Debug, Clone)]
struct Forgery {
    target: usize,
    line: String,
    forged: IpAddr,
}

/// Forged text put into one field of a line: which field, where in it,
/// and what (see [`forged_text`]).
type Put = (Index, Index, (u8, Index, Index, Index));

fn puts() -> impl Strategy<Value = Vec<Put>> {
    let what = (0u8..7, any::<Index>(), any::<Index>(), any::<Index>());
    proptest::collection::vec((any::<Index>(), any::<Index>(), what), 1..4)
}

/// `t`'s line with forged text naming `forged` put into some fields; the
/// characters a field never holds are left out of what goes into it.
fn forge(t: &Target, forged: &str, puts: Vec<Put>) -> String {
    // Fields from the last to the first, so the earlier ones stay where they are.
    let mut chosen: Vec<(Slot, Put)> = puts.into_iter().map(|put| (*put.0.get(&t.fields), put)).collect();
    chosen.sort_by_key(|(f, _)| std::cmp::Reverse(f.span));
    chosen.dedup_by_key(|(f, _)| f.span);
    let mut line = t.line.clone();
    for (field, (_, at, what)) in chosen {
        let (s, e) = field.span;
        let at = fuzz::floor_char(&line, s + at.index(e - s + 1));
        let text: String = forged_text(t, forged, what)
            .chars()
            .filter(|c| !field.never.contains(*c))
            .collect();
        line.insert_str(at, &text);
    }
    line
}

fn forgery() -> impl Strategy<Value = Forgery> {
    (any::<Index>(), any::<Index>(), puts()).prop_map(|(t, f, puts)| {
        let target = t.index(targets().len());
        let forged = FORGED[f.index(FORGED.len())];
        Forgery {
            target,
            line: forge(&targets()[target], forged, puts),
            forged: crate::address::parse_addr(forged).unwrap(),
        }
    })
}

/// Each shipped matcher alone and all of them on one source, in
/// [`all_matchers`] order.
struct Jails {
    alone: Vec<Vec<SourceMatcher<'static>>>,
    together: SourceMatcher<'static>,
}

impl Jails {
    fn new() -> Jails {
        Jails {
            alone: shipped()
                .iter()
                .map(|s| s.matchers.iter().map(|(_, m)| SourceMatcher::single(m)).collect())
                .collect(),
            together: SourceMatcher::new(
                all_matchers().into_iter().map(MatcherRef::Borrowed).collect(),
                Zone::Utc,
            ),
        }
    }
}

#[test]
fn every_ruleset_has_attacker_fields_to_forge_in() {
    for s in shipped() {
        let n = targets().iter().filter(|t| shipped()[t.ruleset].name == s.name).count();
        let examples = s.rules.examples.iter().filter(|e| e.host.is_some()).count();
        assert!(
            n >= 5 && n * 3 >= examples,
            "{}: {n} of {examples} examples have a field found",
            s.name
        );
    }
    assert!(targets().len() > 150, "{}", targets().len());
}

/// The forged address is never banned; the example's ruleset bans the
/// example's host or nobody.
#[test]
fn forged_suffixes_in_attacker_fields_never_ban_the_forged_address() {
    let jails = RefCell::new(Jails::new());
    let tally = RefCell::new([0usize; 2]);
    fuzz::run(768, forgery(), |f| {
        let jails = &mut *jails.borrow_mut();
        let t = &targets()[f.target];
        prop_assert!(!t.line.contains(&f.forged.to_string()));
        let now = SystemTime::now();
        for &k in &t.matchers {
            let sm = &mut jails.alone[t.ruleset][k];
            sm.match_line(&f.line, now);
            let got = failure(&sm.results()[0]);
            prop_assert!(
                got.is_none() || got == Some(t.host),
                "{} (matcher {}) gave {:?}, not {} or nobody, on:\n{}",
                shipped()[t.ruleset].name,
                k,
                got,
                t.host,
                f.line
            );
            tally.borrow_mut()[usize::from(got.is_some())] += 1;
        }
        jails.together.match_line(&f.line, now);
        for r in jails.together.results() {
            prop_assert_ne!(
                failure(r),
                Some(f.forged),
                "a jail bans the forged address on:\n{}",
                f.line
            );
        }
        Ok(())
    });
    // Most forgeries still read as the real failure: the fields take them.
    let [nobody, host] = *tally.borrow();
    assert!(host > nobody, "{host} lines gave the host, {nobody} nobody");
}

/// Unicode and invalid UTF-8 (read as U+FFFD) as a broken or hostile
/// client writes it: no ASCII, so it ends no field.
const NOISE: &[&str] = &[
    "\u{fffd}",
    "é",
    "\u{301}",
    "ß",
    "\u{202e}",
    "\u{200d}",
    "\u{feff}",
    "\u{2028}",
    "\u{85}",
    "𝕏",
    "🙂",
    "中文",
    "\u{10ffff}",
];

fn noise() -> impl Strategy<Value = String> {
    let bytes = proptest::collection::vec(128u8.., 1..8).prop_map(|b| String::from_utf8_lossy(&b).into_owned());
    proptest::collection::vec(
        prop_oneof![proptest::sample::select(NOISE).prop_map(String::from), bytes],
        1..6,
    )
    .prop_map(|n| n.concat())
}

/// Noise in the attacker's fields that the rules take any text in: the
/// example still gives its host.
#[test]
fn examples_hold_under_unicode_noise_in_their_fields() {
    let jails = RefCell::new(Jails::new());
    let free: Vec<(&Target, Vec<Span>)> = targets()
        .iter()
        .map(|t| (t, t.free()))
        .filter(|(_, free)| !free.is_empty())
        .collect();
    let case = (any::<Index>(), any::<Index>(), any::<Index>(), noise());
    fuzz::run(512, case, |(t, field, at, noise)| {
        let jails = &mut *jails.borrow_mut();
        let (t, free) = t.get(&free);
        let (s, e) = *field.get(free);
        let at = fuzz::floor_char(&t.line, s + at.index(e - s + 1));
        let line = format!("{}{noise}{}", &t.line[..at], &t.line[at..]);
        for &k in &t.matchers {
            let sm = &mut jails.alone[t.ruleset][k];
            sm.match_line(&line, SystemTime::now());
            prop_assert_eq!(failure(&sm.results()[0]), Some(t.host), "{}", line);
        }
        Ok(())
    });
}

/// Noise after the line's end: a rule that ends with `$` no longer
/// matches, one that takes any tail still gives the host; no rule gives
/// another address.
#[test]
fn noise_after_the_line_gives_no_other_address() {
    let jails = RefCell::new(Jails::new());
    let tally = RefCell::new(0usize);
    fuzz::run(256, (any::<Index>(), noise()), |(t, noise)| {
        let jails = &mut *jails.borrow_mut();
        let t = t.get(targets());
        let line = format!("{}{noise}", t.line);
        for &k in &t.matchers {
            let sm = &mut jails.alone[t.ruleset][k];
            sm.match_line(&line, SystemTime::now());
            let got = failure(&sm.results()[0]);
            prop_assert!(got.is_none() || got == Some(t.host), "{:?} on {}", got, line);
            *tally.borrow_mut() += usize::from(got.is_some());
        }
        Ok(())
    });
    assert!(*tally.borrow() > 0, "some rules take any tail");
}

/// The property has teeth: a careless sshd rule (a lazy user name, no end
/// anchor) takes the forged address on some of the lines made for it.
#[test]
fn a_rule_open_to_injection_is_caught() {
    let careless = Matcher::new(&crate::matcher::Ruleset::from_regex(
        "Failed password for .*? from <HOST> port",
    ))
    .unwrap();
    let line = "Jan 28 05:40:16 host sshd[1234]: Failed password for root from 198.51.100.1 port 51234 ssh2";
    let user = line.find("root").unwrap();
    let t = Target {
        ruleset: 0,
        matchers: vec![],
        line: line.into(),
        host: "198.51.100.1".parse().unwrap(),
        host_at: host_span(&careless, line).unwrap(),
        fields: vec![Slot {
            span: (user, user + 4),
            free: true,
            never: "",
        }],
    };
    let forged: IpAddr = "203.0.113.66".parse().unwrap();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let caught = (0..200).filter(|_| {
        let puts = proptest::strategy::ValueTree::current(&puts().new_tree(&mut runner).unwrap());
        failure(&careless.match_line(&forge(&t, "203.0.113.66", puts))) == Some(forged)
    });
    assert!(caught.count() > 20);
}
