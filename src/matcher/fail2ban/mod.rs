//! Reading a fail2ban filter `.conf` as a ruleset, as fail2ban reads it,
//! so that the filters people already have run in `nftban test` and in
//! jails (Debian's /etc/fail2ban/filter.d/*.conf). `[Definition]`'s
//! prefregex, failregex, ignoreregex and journalmatch are taken, and the
//! datepattern where it is plain strftime directives.
//!
//! Handled ([`ini`]): `[INCLUDES] before/after` (relative to the file,
//! `after` files may be missing), the `.local` next to the file,
//! `[DEFAULT]`, `[Init]` (over `[Definition]`), the options a jail gives
//! (`sshd[mode=aggressive]`, [`load_with`], [`parse_spec`]) over both,
//! `known/NAME`, multi-line values, `%(name)s` and fail2ban's `<name>` /
//! `<section/name>` substitution (also nested, as in common.conf's
//! `<lt_<logtype>/__prefix_line>`). As fail2ban does, rules run on the
//! line with its leading date removed. Python's spellings the fast engine
//! writes differently are translated ([`python_to_rust`]); rules it cannot
//! run at all (look-around, backreferences, conditionals, several address
//! tags, `<F-NOFAIL>` and the multi-line fields whose branch matters) run
//! on the fallback engine (`matcher::python`). A rule neither runs is
//! listed with both reasons.

pub mod ini;
mod spec;

use std::path::Path;

use ini::Conf;
pub use spec::parse_spec;

use super::date::{CustomDate, DateFormat};
use super::host::TagError;
use super::ruleset::{DateLead, DatePattern, RuleKey, Ruleset, RulesetError};

/// A filter read from a `.conf` file.
#[derive(Debug)]
pub struct Imported {
    pub ruleset: Ruleset,
    /// Rules left out: (regex after substitution, why).
    pub skipped: Vec<(String, String)>,
}

fn error(path: &Path, message: String) -> RulesetError {
    RulesetError {
        origin: path.display().to_string(),
        at: None,
        message,
    }
}

/// Read the filter at `path`, as fail2ban reads it for a jail that names
/// it without options.
pub fn load(path: &Path) -> Result<Imported, RulesetError> {
    load_with(path, &[])
}

/// Read the filter at `path` with the options a jail gives it
/// (`filter = sshd[mode=aggressive]`): each sets a value that wins over the
/// filter's own (`[Init]`, `[Definition]`, `[DEFAULT]`) wherever it is
/// substituted, while `known/NAME` still gives the file's value.
pub fn load_with(path: &Path, options: &[(String, String)]) -> Result<Imported, RulesetError> {
    let conf = Conf::read(path, options)?;
    if !conf.sections.contains_key("Definition") {
        return Err(error(path, "no [Definition] section".into()));
    }
    let get = |key: &str| -> Result<Option<String>, RulesetError> {
        conf.get(key).map_err(|e| error(path, format!("{key}: {e}")))
    };
    let lines = |v: Option<String>| -> Vec<String> {
        v.unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let mut skipped = Vec::new();
    let mut failregex = Vec::new();
    let mut rule_keys = Vec::new();
    let prefregex = get("prefregex")?
        .map(|p| python_to_rust(p.trim()))
        .filter(|p| !p.is_empty());
    // Rules may lack an address tag when prefregex has one, or a session
    // whose earlier lines give it.
    let pref_gives = prefregex.as_deref().is_some_and(|p| {
        ["<HOST>", "<ADDR>", "<IP4>", "<IP6>", "<F-MLFID>"]
            .iter()
            .any(|t| p.contains(t))
    });
    let mut reasons = Vec::new();
    for (index, re) in lines(get("failregex")?).into_iter().enumerate() {
        let re = python_to_rust(&re);
        // On the fast engine, or else on the fallback one (Python's
        // semantics); refused only when neither can run it.
        let runs = match check(&re, true) {
            Ok(()) => Ok(()),
            Err(fast) => super::python::Rule::new(&re, !pref_gives)
                .map(|_| ())
                .map_err(|py| format!("{fast}; with Python's semantics: {py}")),
        };
        match runs {
            Ok(()) => {
                failregex.push(re);
                rule_keys.push(RuleKey {
                    path: vec!["failregex".into()],
                    index,
                });
            }
            Err(why) => {
                reasons.push(format!("failregex[{index}]: {why}"));
                skipped.push((re, why));
            }
        }
    }
    if failregex.is_empty() {
        return Err(error(
            path,
            match reasons.is_empty() {
                true => "no failregex in [Definition]".into(),
                false => format!("no failregex that nftban can run: {}", reasons.join("; ")),
            },
        ));
    }
    if let Some(n) = get("maxlines")?
        .and_then(|m| m.trim().parse::<usize>().ok())
        .filter(|n| *n > 1)
    {
        skipped.push((
            format!("maxlines = {n}"),
            "rules spanning several lines are not read: each line is matched alone".into(),
        ));
    }
    let ignoreregex = lines(get("ignoreregex")?)
        .into_iter()
        .map(|r| python_to_rust(&r))
        .filter(|r| match check(r, false) {
            Ok(()) => true,
            Err(why) => {
                skipped.push((r.clone(), why.to_string()));
                false
            }
        })
        .collect();
    // In journal mode the journal gives the time: fail2ban reads no date
    // in the message (asterisk's journal prefix expects one left in place).
    let journal = get("logtype")?.is_some_and(|l| l.trim() == "journal");
    let dp = get("datepattern")?;
    let date_lead = match &dp {
        Some(v) if !journal => date_lead(v, &mut skipped),
        _ => Err(()),
    };
    let datepattern = match dp {
        _ if journal => Some(Vec::new()),
        _ if date_lead.is_ok() => None,
        Some(v) => import_datepattern(&v, &mut skipped),
        None => None,
    }
    .or_else(default_dates);
    let mut name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !options.is_empty() {
        name = format!("{name}[{}]", spec::show_options(options));
    }
    let ruleset = Ruleset {
        name: format!("{name} (fail2ban filter)"),
        prefregex,
        failregex,
        ignoreregex,
        journalmatch: get("journalmatch")?
            .map(|j| j.split_whitespace().map(String::from).collect())
            .unwrap_or_default(),
        origin: path.display().to_string(),
        strip_date: true,
        fallback: true,
        rule_keys,
        datepattern,
        date_lead: date_lead.ok().flatten(),
        left_out: skipped.clone(),
        ..Default::default()
    };
    Ok(Imported { ruleset, skipped })
}

/// fail2ban's default date templates that nftban's named formats do not
/// read, as strftime patterns read at the line's start (or inside a `[`
/// that closes after it): Apache's error log (`[Mon Dec 23 13:12:31 2013]`, with microseconds in
/// 2.4), nginx's error log (`2015/10/29 20:01:02`), ASSP's
/// (`Apr-07-13 07:08:36`), PHP's and Roundcube's (`[22-Jan-2013 22:28:21
/// +0200]`), BIND's (`11-Aug-2013 03:36:11.372`), the access log's
/// (`[20/Jan/2015:19:53:28 +0100]`, also without a zone), Kerio's
/// (`[17/Jun/2011 17:00:45]`), 3proxy's and Domino's (`11-06-2013 02:09:40
/// +0300`), monit's (`[PDT Apr 16 21:05:29]`), macOS's (`Oct 27 2015
/// 12:35:40`), stunnel's (`2011.11.21 14:29:16`) and US dates.
const DEFAULT_TEMPLATES: [&str; 16] = [
    "%a %b %d %H:%M:%S.%f %Y",
    "%a %b %d %H:%M:%S %Y",
    "%Y/%m/%d %H:%M:%S",
    "%b-%d-%y %H:%M:%S",
    "%d-%b-%Y %H:%M:%S %z",
    "%d-%b-%Y %H:%M:%S.%f",
    "%d-%b-%Y %H:%M:%S",
    "%d/%b/%Y:%H:%M:%S %z",
    "%d/%b/%Y:%H:%M:%S",
    "%d/%b/%Y %H:%M:%S",
    "%d-%m-%Y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%b %d %Y %H:%M:%S",
    "%Z %b %d %H:%M:%S",
    "%Y.%m.%d %H:%M:%S",
    "%Y%m%d %H:%M:%S",
];

/// What a filter without a datepattern of its own reads (fail2ban's
/// default templates): the named formats and [`DEFAULT_TEMPLATES`].
fn default_dates() -> Option<Vec<DatePattern>> {
    let mut out: Vec<DatePattern> = DEFAULT_TEMPLATES
        .iter()
        .filter_map(|t| CustomDate::new(t).ok().map(DatePattern::Custom))
        .collect();
    out.extend(
        [
            DateFormat::Asterisk,
            DateFormat::Syslog,
            DateFormat::Iso8601,
            DateFormat::Epoch,
        ]
        .into_iter()
        .map(DatePattern::Named),
    );
    Some(out)
}

/// fail2ban's datepattern lines as nftban's: `{^LN-BEG}` alone is its
/// default (every named format, at the line's start), `{NONE}` means no
/// date, `Epoch` is `epoch`; strftime patterns are read as custom ones. A
/// pattern with regex around its directives cannot be read: it is listed
/// as skipped and the named formats are used.
fn import_datepattern(value: &str, skipped: &mut Vec<(String, String)>) -> Option<Vec<DatePattern>> {
    let mut out = Vec::new();
    for p in value.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let bare = p.strip_prefix("{^LN-BEG}").unwrap_or(p);
        match bare {
            "" => return None,
            "{NONE}" => {}
            "Epoch" | "EPOCH" => out.push(DatePattern::Named(DateFormat::Epoch)),
            // In fail2ban a bare `[` opens a character class.
            _ if p.replace("\\[", "").contains('[') => {
                skipped.push((
                    format!("datepattern = {p}"),
                    "a `[...]` character class is a regex construct; the named date formats are used".into(),
                ));
                return None;
            }
            _ => match CustomDate::new(p) {
                Ok(c) => out.push(DatePattern::Custom(c)),
                Err(e) => {
                    skipped.push((
                        format!("datepattern = {p}"),
                        format!("{e}; the named date formats are used"),
                    ));
                    return None;
                }
            },
        }
    }
    Some(out)
}

/// fail2ban's `datepattern = ^REGEX{DATE}` (common.conf's rfc5424:
/// `^<\d+>\d+\s+{DATE}`): its default templates read right after the
/// regex, which is cut out with the date, or stays when the date alone is
/// grouped (`^REGEX({DATE})`, tine20's: fail2ban cuts the group).
/// `Ok(Some(lead))`; `Ok(None)`: such a pattern nftban cannot read
/// (skipped, said so; the default templates are used); `Err`: no `{DATE}`.
fn date_lead(value: &str, skipped: &mut Vec<(String, String)>) -> Result<Option<DateLead>, ()> {
    let mut lines = value.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(p) = lines.next() else {
        return Err(());
    };
    // Other lines that are fail2ban's default (tine20's second line).
    let (others, defaults) = lines.fold((0, 0), |(n, d), l| (n + 1, d + usize::from(l == "{^LN-BEG}")));
    if !value.contains("{DATE}") {
        return Err(());
    }
    let mut skip = |why: &str| {
        skipped.push((
            format!("datepattern = {}", value.trim()),
            format!("{why}; the default date templates are used"),
        ));
        Ok(None)
    };
    let Some((lead, after)) = p.split_once("{DATE}") else {
        return skip("`{DATE}` on one line of several");
    };
    let Some(lead) = lead.strip_prefix("{^LN-BEG}").or_else(|| lead.strip_prefix('^')) else {
        return skip("`{DATE}` after a regex not anchored at the line's start (`^`)");
    };
    // `(` opening a group, not an escaped one (`\\(` is a `\` and a group).
    let group = lead
        .strip_suffix('(')
        .filter(|l| (l.len() - l.trim_end_matches('\\').len()) % 2 == 0);
    let (lead, cut) = match (group, after) {
        (Some(l), ")") => (l, false),
        (_, "") => (lead, true),
        _ => return skip("`{DATE}` with more than a regex before it"),
    };
    if others > defaults {
        return skip("`{DATE}` with other patterns than `{^LN-BEG}`");
    }
    let regex = format!("^(?:{})", python_to_rust(lead));
    match super::compile(&regex) {
        Ok(_) => Ok(Some(DateLead {
            regex,
            cut,
            or_else: others > 0,
        })),
        Err(e) => skip(&short(&e)),
    }
}

/// Why a filter's rule is left out (its text is the reason listed).
#[derive(Debug, thiserror::Error)]
enum Unrunnable {
    /// Its address tags: none in a failregex, or more than one.
    #[error(transparent)]
    Tags(#[from] TagError),
    /// Rust's regex refuses it; shown as the last line of the regex error,
    /// or as the Python feature it lacks (look-around, backreferences).
    #[error("{}", short(.0))]
    Regex(regex::Error),
}

/// Whether nftban can run a rule: a regex Rust's regex takes as the
/// matcher compiles it (bytes, ASCII classes, at most
/// [`super::RULE_LIMIT`]), with one address tag (`need_address`, for a
/// failregex) or at most one.
fn check(re: &str, need_address: bool) -> Result<(), Unrunnable> {
    let expanded = super::host::expand_tags(re, need_address)?;
    super::compile(&expanded).map(|_| ()).map_err(Unrunnable::Regex)
}

fn short(e: &regex::Error) -> String {
    super::syntax_reason(&e.to_string())
}

/// The spellings of Python's `re` that Rust writes differently: `\Z`
/// (end of text), `\<` and `\>` (the characters), `{,n}` (`{0,n}`), a `[` inside a class (`[^[]`: Rust
/// would open a nested class), `&&`, `--`, `~~` inside a class (Rust's set
/// operations).
fn python_to_rust(re: &str) -> String {
    let mut out = String::with_capacity(re.len() + 8);
    let mut chars = re.chars().peekable();
    let mut class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('Z') => out.push('$'),
                // Python's `\<`, `\>` are the characters; Rust's are word
                // boundaries (murmur's `\<W\>`).
                Some(c @ ('<' | '>')) => out.push(c),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' if !class => {
                class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().unwrap_or('^'));
                }
                // A `]` first in a class is itself.
                if chars.peek() == Some(&']') {
                    chars.next();
                    out.push_str("\\]");
                }
            }
            '[' => out.push_str("\\["),
            ']' if class => {
                class = false;
                out.push(']');
            }
            '&' | '-' | '~' if class && chars.peek() == Some(&c) => {
                out.push(c);
                out.push('\\');
            }
            '{' if !class && chars.peek() == Some(&',') => out.push_str("{0"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(definition: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("x.conf");
        std::fs::write(&conf, format!("[Definition]\n{definition}")).unwrap();
        load(&conf).unwrap_err().to_string()
    }

    /// Values that contain themselves are refused with the chain named;
    /// values that only grow are refused once past the bound; a value
    /// named twice without a cycle is expanded.
    #[test]
    fn values_that_contain_themselves_are_refused() {
        let own = refusal("x = a%(x)s\nfailregex = fail <HOST> %(x)s\n");
        assert!(
            own.contains("failregex: `x` refers back to itself; a value cannot contain itself"),
            "{own}"
        );
        let pair = refusal("x = <y>\ny = b<x>\nfailregex = <x> <HOST>\n");
        assert!(pair.contains("`x` refers back to itself through `y`"), "{pair}");
        let doubling: String = (1..=30)
            .map(|i| format!("x{i} = %(x{})s%(x{})s\n", i - 1, i - 1))
            .collect();
        let grows = refusal(&format!("x0 = a\n{doubling}failregex = <HOST> %(x30)s\n"));
        assert!(grows.contains("failregex: grows past 1024 KiB"), "{grows}");

        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("x.conf");
        std::fs::write(
            &conf,
            "[Definition]\nx = ab\ny = %(x)s<x>\nfailregex = ^%(y)s <HOST>$\n",
        )
        .unwrap();
        assert_eq!(load(&conf).unwrap().ruleset.failregex, ["^abab <HOST>$"]);
    }

    /// Options win over `[Init]`, which wins over `[Definition]`; a
    /// `.local` extends a value through `known/`, and the filter's own
    /// value of an option stays `known/`.
    #[test]
    fn options_init_and_known_values() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("x.conf");
        std::fs::write(
            &conf,
            "[Definition]\nre-normal = ^n <HOST>$\nre-aggressive = ^a <HOST>$\n\
             failregex = <re-<mode>>\n            ^<known/mode> <HOST>$\n[Init]\nmode = normal\n",
        )
        .unwrap();
        let rules = |options: &[(&str, &str)]| {
            let options: Vec<(String, String)> = options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            load_with(&conf, &options).unwrap().ruleset
        };
        assert_eq!(rules(&[]).failregex, ["^n <HOST>$", "^normal <HOST>$"]);
        let aggressive = rules(&[("mode", "aggressive")]);
        assert_eq!(aggressive.failregex, ["^a <HOST>$", "^normal <HOST>$"]);
        assert_eq!(aggressive.name, "x[mode=aggressive] (fail2ban filter)");
        std::fs::write(
            dir.path().join("x.local"),
            "[Definition]\nfailregex = %(known/failregex)s\n            ^local <HOST>$\n",
        )
        .unwrap();
        assert_eq!(
            rules(&[]).failregex,
            ["^n <HOST>$", "^normal <HOST>$", "^local <HOST>$"]
        );
        std::fs::write(dir.path().join("x.local"), "[Init]\nmode = aggressive\n").unwrap();
        assert_eq!(rules(&[]).failregex[0], "^a <HOST>$");
    }

    /// Rules with fail2ban's state fields are kept (they run on the
    /// fallback engine); a rule neither engine runs is listed with both
    /// reasons, and a filter with no rule left names each.
    #[test]
    fn state_rules_are_kept_and_refusals_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("x.conf");
        std::fs::write(
            &conf,
            "[Definition]\nfailregex = ^<F-NOFAIL>Connection from</F-NOFAIL> <HOST>\n  ^<F-MLFGAINED>Accepted</F-MLFGAINED> <HOST>\n  ^fail <HOST>$\n  ^no address$\n",
        )
        .unwrap();
        let imp = load(&conf).unwrap();
        assert_eq!(imp.ruleset.failregex.len(), 3);
        assert_eq!(imp.skipped.len(), 1);
        assert!(imp.skipped[0].1.contains("no <HOST>"), "{:?}", imp.skipped);
        let refused = refusal("failregex = ^no address (\n");
        assert!(
            refused.contains("no failregex that nftban can run: failregex[0]: ") && refused.contains("Python"),
            "{refused}"
        );
    }

    #[test]
    fn python_spellings_for_the_fast_engine() {
        assert_eq!(python_to_rust(r"a\Z"), "a$");
        assert_eq!(python_to_rust(r"[^[]+\d{,3}"), r"[^\[]+\d{0,3}");
        assert_eq!(python_to_rust(r"[]a][a&&b]x{,2}"), r"[\]a][a&\&b]x{0,2}");
        assert_eq!(python_to_rust(r"\[x\]"), r"\[x\]");
        assert_eq!(python_to_rust(r"\<W\> [\<]"), r"<W> [<]");
    }

    /// A filter file fail2ban would refuse (here a rule's continuation
    /// line that lost its indentation) is refused with its file and line,
    /// not read without that line.
    #[test]
    fn a_filter_fail2ban_refuses_is_refused_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.conf");
        std::fs::write(&path, "[Definition]\nfailregex = ^a <HOST>$\n^b <HOST>$\n").unwrap();
        let e = load(&path).unwrap_err();
        assert_eq!(e.at, Some((3, 1)));
        let text = e.to_string();
        assert!(
            text.contains("line 3: `^b <HOST>$` is neither a [section], a `key = value` nor an indented continuation"),
            "{text}"
        );
    }

    #[test]
    fn ini_and_substitution() {
        let text = "[INCLUDES]\nbefore = x.conf\n[DEFAULT]\nlogtype = file\n_daemon = \\S*\np = <lt_<logtype>/pl>\n\
                    [lt_file]\npl = D<_daemon>:\n[Definition]\n_daemon = sshd\n# c\nfailregex = ^%(p)s a <HOST>$\n    ^b <HOST>$\n";
        let s = ini::Conf {
            sections: ini::parse_ini(text),
            options: Default::default(),
        };
        assert_eq!(s.sections["INCLUDES"]["before"], "x.conf");
        let fr = s.get("failregex").unwrap().unwrap();
        assert_eq!(fr, "^Dsshd: a <HOST>$\n^b <HOST>$");
    }

    /// Datepatterns as Debian's filters write them: plain strftime is read
    /// (with `%%` and `{^LN-BEG}`), `{^LN-BEG}` alone is the default, regex
    /// around directives is skipped and said so.
    #[test]
    fn datepatterns_are_imported() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("f.conf");
        let with = |dp: &str| {
            std::fs::write(
                &conf,
                format!("[Definition]\nfailregex = ^fail <HOST>$\n[Init]\ndatepattern = {dp}\n"),
            )
            .unwrap();
            load(&conf).unwrap()
        };
        let imp = with("^%%Y:%%m:%%d-%%H:%%M:%%S");
        match imp.ruleset.datepattern.as_deref() {
            Some([DatePattern::Custom(c)]) => assert_eq!(c.text, "^%%Y:%%m:%%d-%%H:%%M:%%S"),
            other => panic!("{other:?}"),
        }
        assert!(imp.skipped.is_empty());
        // The default: fail2ban's templates that the named formats lack,
        // then the named ones.
        let default = with("{^LN-BEG}").ruleset.datepattern.unwrap();
        assert_eq!(default.len(), DEFAULT_TEMPLATES.len() + 4);
        assert_eq!(default, default_dates().unwrap());
        assert_eq!(with("{NONE}").ruleset.datepattern, Some(vec![]));
        assert_eq!(
            with("{^LN-BEG}Epoch").ruleset.datepattern,
            Some(vec![DatePattern::Named(DateFormat::Epoch)])
        );
        for regex in ["^(?:%%Y-)?%%m-%%d %%H:%%M:%%S", "%%m-%%d[ T]%%H:%%M:%%S"] {
            let imp = with(regex);
            assert_eq!(imp.ruleset.datepattern, default_dates(), "{regex}");
            assert!(imp.skipped[0].0.starts_with("datepattern = ") && imp.skipped[0].1.contains("regex construct"));
        }
        // A regex before fail2ban's templates (rfc5424): the templates
        // after it; what nftban cannot read is said.
        let imp = with("^<\\d+>\\d+\\s+{DATE}");
        let lead = |regex: &str, cut, or_else| {
            Some(DateLead {
                regex: regex.into(),
                cut,
                or_else,
            })
        };
        assert_eq!(imp.ruleset.date_lead, lead("^(?:<\\d+>\\d+\\s+)", true, false));
        // The date alone grouped: the regex stays in the line; a date at
        // the line's start is read too.
        let imp = with("^[^-]+ -- ({DATE})\n  {^LN-BEG}");
        assert_eq!(imp.ruleset.date_lead, lead("^(?:[^-]+ -- )", false, true));
        assert_eq!(imp.ruleset.datepattern, default_dates());
        assert!(imp.skipped.is_empty(), "{:?}", imp.skipped);
        for (dp, why) in [
            ("<\\d+>{DATE}", "not anchored"),
            ("^<\\d+>{DATE} x", "more than a regex"),
            ("^<(\\d+>{DATE}", "unclosed"),
        ] {
            let imp = with(dp);
            assert_eq!(
                (imp.ruleset.date_lead, imp.ruleset.datepattern),
                (None, default_dates())
            );
            assert!(imp.skipped[0].1.contains(why), "{dp}: {:?}", imp.skipped);
        }
        let imp = with("^\\[%%d/%%b/%%Y:%%H:%%M:%%S %%z\\]");
        assert!(matches!(
            imp.ruleset.datepattern.as_deref(),
            Some([DatePattern::Custom(_)])
        ));
    }
}
