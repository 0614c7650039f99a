//! Reading a fail2ban filter `.conf` as a ruleset, so that `nftban test`
//! can try the filters people already have (Debian's
//! /etc/fail2ban/filter.d/*.conf). `[Definition]`'s prefregex, failregex,
//! ignoreregex and journalmatch are taken, and the datepattern (of
//! `[Definition]` or `[Init]`) where it is plain strftime directives; a full
//! import (jails, actions) comes later.
//!
//! Handled: `[INCLUDES] before/after` (relative to the file, `after` files
//! may be missing), the `.local` next to the file, multi-line values,
//! `%(name)s` and fail2ban's `<name>` / `<section/name>` substitution (also
//! nested, as in common.conf's `<lt_<logtype>/__prefix_line>`). As fail2ban
//! does, rules run on the line with its leading date removed. Rules Rust's
//! regex cannot run (look-around, backreferences, conditionals) are skipped
//! and listed, and so are rules that mark no failure (`<F-NOFAIL>`,
//! `<F-MLFGAINED>`: fail2ban's multi-line state, which nftban lacks).

use std::collections::BTreeMap;
use std::path::Path;

use super::date::{CustomDate, DateFormat};
use super::host::TagError;
use super::ruleset::{DatePattern, RuleKey, Ruleset, RulesetError};

pub mod ini;

use ini::{parse_ini, Sections};

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

/// Read the filter at `path`.
pub fn load(path: &Path) -> Result<Imported, RulesetError> {
    load_with(path, &BTreeMap::new())
}

/// A filter as a jail names it: its name or path, and the options in
/// brackets (`sshd[mode=aggressive]`, `filter.d/sshd.conf[mode="ddos", x=1]`).
/// Values may be quoted with `"` or `'`; commas inside quotes belong to
/// the value.
pub fn parse_spec(spec: &str) -> Result<(String, BTreeMap<String, String>), String> {
    let spec = spec.trim();
    let Some(open) = spec.find('[') else {
        return Ok((spec.to_string(), BTreeMap::new()));
    };
    let name = spec[..open].trim().to_string();
    let inner = spec[open + 1..]
        .strip_suffix(']')
        .ok_or_else(|| format!("`{spec}`: the options' `[` is not closed by a `]` at the end"))?;
    let mut options = BTreeMap::new();
    let mut parts = Vec::new();
    let (mut current, mut quote) = (String::new(), None);
    for c in inner.chars() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            (',', None) => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if quote.is_some() {
        return Err(format!("`{spec}`: a quote in the options is not closed"));
    }
    parts.push(current);
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("`{spec}`: option `{part}` is not `name=value`"))?;
        options.insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok((name, options))
}

/// Read the filter at `path` with a jail's options (`mode=aggressive`):
/// as in fail2ban, they take the place of the filter's own values of the
/// same names (its `[Init]` and `[Definition]` defaults).
pub fn load_with(path: &Path, options: &BTreeMap<String, String>) -> Result<Imported, RulesetError> {
    let mut sections = Sections::new();
    read_with_includes(path, &mut sections, 0)?;
    let local = path.with_extension("local");
    if local.exists() {
        read_with_includes(&local, &mut sections, 0)?;
    }
    for section in ["Init", "Definition"] {
        sections.entry(section.into()).or_default().extend(options.clone());
    }
    let def = sections
        .get("Definition")
        .ok_or_else(|| error(path, "no [Definition] section".into()))?;
    let get = |key: &str| -> Result<Option<String>, RulesetError> {
        def.get(key)
            .map(|v| substitute(&sections, v).map_err(|e| error(path, format!("{key}: {e}"))))
            .transpose()
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
    for (index, re) in lines(get("failregex")?).into_iter().enumerate() {
        let re = python_to_rust(&re);
        if re.contains("<F-NOFAIL>") || re.contains("<F-MLFGAINED>") {
            // fail2ban matches these to track multi-line state; they are no failure.
            skipped.push((
                re,
                "marks no failure (<F-NOFAIL>/<F-MLFGAINED>); multi-line state is not supported".into(),
            ));
            continue;
        }
        match check(&re, true) {
            Ok(()) => {
                failregex.push(re);
                rule_keys.push(RuleKey {
                    path: vec!["failregex".into()],
                    index,
                });
            }
            Err(why) => skipped.push((re, why.to_string())),
        }
    }
    if failregex.is_empty() {
        return Err(error(path, "no failregex that nftban can run".into()));
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
    let prefregex = get("prefregex")?
        .map(|p| python_to_rust(p.trim()))
        .filter(|p| !p.is_empty());
    let datepattern = def
        .get("datepattern")
        .or_else(|| sections.get("Init").and_then(|i| i.get("datepattern")))
        .map(|v| substitute(&sections, v).map_err(|e| error(path, format!("datepattern: {e}"))))
        .transpose()?
        .and_then(|v| import_datepattern(&v, &mut skipped));
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
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
        rule_keys,
        datepattern,
        ..Default::default()
    };
    Ok(Imported { ruleset, skipped })
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
    let s = e.to_string();
    if s.contains("look-around") {
        "look-around is not supported by Rust's regex".into()
    } else if s.contains("backreferences") {
        "backreferences are not supported by Rust's regex".into()
    } else {
        s.lines().last().unwrap_or("").trim().to_string()
    }
}

/// The few spellings of Python's `re` that Rust writes differently.
fn python_to_rust(re: &str) -> String {
    re.replace("\\Z", "$")
}

fn read_with_includes(path: &Path, sections: &mut Sections, depth: usize) -> Result<(), RulesetError> {
    if depth > 8 {
        return Err(error(path, "[INCLUDES] nest too deep".into()));
    }
    let text = crate::regular::read_text(path).map_err(|e| error(path, format!("cannot read fail2ban filter: {e}")))?;
    let own = parse_ini(&text);
    let dir = path.parent().unwrap_or(Path::new("."));
    let includes = own.get("INCLUDES").cloned().unwrap_or_default();
    let list = |key: &str| -> Vec<String> {
        includes
            .get(key)
            .map(|v| v.split_whitespace().map(String::from).collect())
            .unwrap_or_default()
    };
    for before in list("before") {
        read_with_includes(&dir.join(&before), sections, depth + 1)?;
    }
    for (name, keys) in own {
        sections.entry(name).or_default().extend(keys);
    }
    for after in list("after") {
        let p = dir.join(&after);
        if p.exists() {
            read_with_includes(&p, sections, depth + 1)?;
        }
    }
    Ok(())
}

/// Look `name` (or `section/name`) up for the `[Definition]` context.
fn lookup<'s>(sections: &'s Sections, name: &str) -> Option<&'s String> {
    let default = sections.get("DEFAULT");
    if let Some((sec, key)) = name.split_once('/') {
        return sections
            .get(sec)
            .and_then(|s| s.get(key))
            .or_else(|| default.and_then(|d| d.get(key)));
    }
    sections
        .get("Definition")
        .and_then(|s| s.get(name))
        .or_else(|| default.and_then(|d| d.get(name)))
}

/// The most a value may grow to as it is expanded: far more than any
/// filter's regex (Debian's largest are a few KiB), far less than what a
/// value that doubles at each step would take.
const MAX_EXPANDED: usize = 1 << 20;

/// Replace `%(name)s` and known `<name>` until nothing changes. A value
/// that refers back to itself, directly or through others, is refused (as
/// fail2ban refuses it) rather than expanded round after round; so is one
/// that grows past [`MAX_EXPANDED`] (values that each name the one before
/// twice double at each step without any cycle).
fn substitute(sections: &Sections, value: &str) -> Result<String, String> {
    if let Some(cycle) = find_cycle(sections, value) {
        return Err(format!(
            "`{}` refers back to itself{}; a value cannot contain itself",
            cycle[0],
            match &cycle[1..] {
                [] => String::new(),
                via => format!(
                    " through {}",
                    via.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ),
            }
        ));
    }
    let mut v = value.to_string();
    // Without a cycle, each round expands one more level of references.
    loop {
        let next = substitute_once(sections, &v);
        if next.len() > MAX_EXPANDED {
            return Err(format!(
                "grows past {} KiB as its references are expanded",
                MAX_EXPANDED >> 10
            ));
        }
        if next == v {
            return Ok(v);
        }
        v = next;
    }
}

/// The names `value` refers to that have a value: `%(name)s` and plain
/// `<name>` tags, as [`substitute_once`] reads them.
fn references<'s>(sections: &'s Sections, value: &'s str) -> impl Iterator<Item = &'s str> + 's {
    let percent = value
        .split("%(")
        .skip(1)
        .filter_map(|t| t.find(")s").map(|end| &t[..end]));
    let tags = value.split('<').skip(1).filter_map(|t| {
        let name = &t[..t.find('>')?];
        let plain = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || "_/-".contains(c));
        plain.then_some(name)
    });
    percent.chain(tags).filter(|name| lookup(sections, name).is_some())
}

/// A chain of names from `value`'s references that leads back to its
/// start (`[x]` for `x = a%(x)s`, `[x, y]` for `x = <y>`, `y = <x>`), if
/// any. Depth-first, each name explored once.
fn find_cycle(sections: &Sections, value: &str) -> Option<Vec<String>> {
    fn visit<'s>(
        sections: &'s Sections,
        name: &'s str,
        path: &mut Vec<&'s str>,
        done: &mut std::collections::HashSet<&'s str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| *n == name) {
            return Some(path[at..].iter().map(|n| n.to_string()).collect());
        }
        if !done.insert(name) {
            return None;
        }
        path.push(name);
        let value = lookup(sections, name)?;
        for next in references(sections, value) {
            if let Some(cycle) = visit(sections, next, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = std::collections::HashSet::new();
    references(sections, value).find_map(|name| visit(sections, name, &mut Vec::new(), &mut done))
}

fn substitute_once(sections: &Sections, v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    loop {
        let pct = rest.find("%(");
        let lt = rest.find('<');
        let i = match (pct, lt) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => break,
        };
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(inner) = tail.strip_prefix("%(") {
            if let Some(end) = inner.find(")s") {
                let name = &inner[..end];
                if let Some(val) = lookup(sections, name) {
                    out.push_str(val);
                    rest = &inner[end + 2..];
                    continue;
                }
            }
            out.push_str("%(");
            rest = inner;
        } else {
            let inner = &tail[1..];
            // Innermost `<name>` only: no `<` before the `>`.
            let end = inner.find('>');
            let nested = inner.find('<');
            if let Some(end) = end.filter(|e| nested.is_none_or(|n| n > *e)) {
                let name = &inner[..end];
                let plain = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || "_/-".contains(c));
                if plain {
                    if let Some(val) = lookup(sections, name) {
                        out.push_str(val);
                        rest = &inner[end + 1..];
                        continue;
                    }
                }
            }
            out.push('<');
            rest = inner;
        }
    }
    out.push_str(rest);
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

    /// Options in brackets, quoted or not, and a mode picked by them.
    #[test]
    fn specs_and_options() {
        let (name, opts) = parse_spec("filter.d/sshd.conf[mode=aggressive, x=\"a, b\"]").unwrap();
        assert_eq!(name, "filter.d/sshd.conf");
        assert_eq!(opts["mode"], "aggressive");
        assert_eq!(opts["x"], "a, b");
        assert_eq!(parse_spec("sshd").unwrap(), ("sshd".to_string(), BTreeMap::new()));
        assert!(parse_spec("sshd[mode=x").unwrap_err().contains("not closed"));
        assert!(parse_spec("sshd[mode]")
            .unwrap_err()
            .contains("`mode` is not `name=value`"));

        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("m.conf");
        std::fs::write(
            &conf,
            "[Definition]\nmode = normal\nm_normal = ^a <HOST>$\nm_extra = ^b <HOST>$\nfailregex = <m_<mode>>\n",
        )
        .unwrap();
        assert_eq!(load(&conf).unwrap().ruleset.failregex, ["^a <HOST>$"]);
        let (_, opts) = parse_spec("m.conf[mode=extra]").unwrap();
        assert_eq!(load_with(&conf, &opts).unwrap().ruleset.failregex, ["^b <HOST>$"]);
    }

    #[test]
    fn no_failure_rules_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("x.conf");
        std::fs::write(
            &conf,
            "[Definition]\nfailregex = ^<F-NOFAIL>Connection from</F-NOFAIL> <HOST>\n  ^<F-MLFGAINED>Accepted</F-MLFGAINED> <HOST>\n  ^fail <HOST>$\n",
        )
        .unwrap();
        let imp = load(&conf).unwrap();
        assert_eq!(imp.ruleset.failregex, vec!["^fail <HOST>$".to_string()]);
        assert_eq!(imp.skipped.len(), 2);
    }

    #[test]
    fn ini_and_substitution() {
        let text = "[INCLUDES]\nbefore = x.conf\n[DEFAULT]\nlogtype = file\n_daemon = \\S*\np = <lt_<logtype>/pl>\n\
                    [lt_file]\npl = D<_daemon>:\n[Definition]\n_daemon = sshd\n# c\nfailregex = ^%(p)s a <HOST>$\n    ^b <HOST>$\n";
        let s = parse_ini(text);
        assert_eq!(s["INCLUDES"]["before"], "x.conf");
        let fr = substitute(&s, &s["Definition"]["failregex"]).unwrap();
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
        assert_eq!(with("{^LN-BEG}").ruleset.datepattern, None);
        assert_eq!(with("{NONE}").ruleset.datepattern, Some(vec![]));
        assert_eq!(
            with("{^LN-BEG}Epoch").ruleset.datepattern,
            Some(vec![DatePattern::Named(DateFormat::Epoch)])
        );
        for regex in ["^(?:%%Y-)?%%m-%%d %%H:%%M:%%S", "%%m-%%d[ T]%%H:%%M:%%S"] {
            let imp = with(regex);
            assert_eq!(imp.ruleset.datepattern, None, "{regex}");
            assert!(imp.skipped[0].0.starts_with("datepattern = ") && imp.skipped[0].1.contains("regex construct"));
        }
        let imp = with("^\\[%%d/%%b/%%Y:%%H:%%M:%%S %%z\\]");
        assert!(matches!(
            imp.ruleset.datepattern.as_deref(),
            Some([DatePattern::Custom(_)])
        ));
    }
}
