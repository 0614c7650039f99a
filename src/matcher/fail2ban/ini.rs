//! fail2ban's configuration files as its readers take them: Python
//! configparser's format, `[INCLUDES] before/after`, the `.local` beside a
//! file, `known/NAME` (the value a later file replaced), and the two kinds
//! of substitution, `%(name)s` and `<name>` / `<section/name>`, with the
//! options a jail gives a filter (`sshd[mode=aggressive]`) and the
//! filter's `[Init]` taking precedence over `[Definition]`, as fail2ban's
//! `DefinitionInitConfigReader` has it.

use std::collections::BTreeMap;
use std::path::Path;

use super::error;
use crate::matcher::ruleset::RulesetError;

/// Section name to its keys and values.
pub type Sections = BTreeMap<String, BTreeMap<String, String>>;

/// A filter's files read together, and the options it was given.
#[derive(Debug, Default)]
pub(super) struct Conf {
    pub(super) sections: Sections,
    /// Given with the filter's name (`sshd[mode=aggressive]`): they win
    /// over every value of the files.
    pub(super) options: BTreeMap<String, String>,
}

impl Conf {
    /// `path`, its includes and the `.local` beside it.
    pub(super) fn read(path: &Path, options: &[(String, String)]) -> Result<Conf, RulesetError> {
        let mut sections = Sections::new();
        read_with_includes(path, &mut sections, 0)?;
        let local = path.with_extension("local");
        if local.exists() && local != path {
            read_with_includes(&local, &mut sections, 0)?;
        }
        resolve_local(&mut sections);
        Ok(Conf {
            sections,
            options: options.iter().cloned().collect(),
        })
    }

    /// A value of `[Definition]` (or `[Init]`, which wins), not expanded;
    /// else `[DEFAULT]`'s, which configparser gives every section
    /// (common.conf's `datepattern = <lt_<logtype>/datepattern>`).
    pub(super) fn raw(&self, key: &str) -> Option<&String> {
        self.options
            .get(key)
            .or_else(|| self.sections.get("Init").and_then(|s| s.get(key)))
            .or_else(|| self.sections.get("Definition").and_then(|s| s.get(key)))
            .or_else(|| self.sections.get("DEFAULT").and_then(|s| s.get(key)))
    }

    /// A value of `[Definition]` (or `[Init]`, or an option), expanded.
    pub(super) fn get(&self, key: &str) -> Result<Option<String>, String> {
        self.raw(key).map(|v| substitute(self, v)).transpose()
    }
}

/// Later values of a key replace earlier ones; the earlier one stays
/// reachable as `known/KEY` (fail2ban's way of extending a value in a
/// `.local` or a later file: `failregex = %(known/failregex)s` and more).
/// The reference is put in place at once, in the section that holds it,
/// as configparser resolves it there (asterisk.conf's `[lt_journal]`
/// extends common.conf's `[lt_journal]`, not `[Definition]`'s value).
fn merge(into: &mut BTreeMap<String, String>, keys: BTreeMap<String, String>) {
    for (k, mut v) in keys {
        if let Some(old) = into.get(&k) {
            if !k.starts_with("known/") {
                let known = format!("known/{k}");
                v = v
                    .replace(&format!("%({known})s"), old)
                    .replace(&format!("<{known}>"), old);
                into.insert(known, old.clone());
            }
        }
        into.insert(k, v);
    }
}

/// In sections other than `[Definition]` and `[DEFAULT]`, `%(name)s` of a
/// key of the same section is that section's value (configparser reads
/// `%(...)s` in the section of the value; `<section/name>` then brings the
/// value to `[Definition]`, where the section's own keys are unknown).
fn resolve_local(sections: &mut Sections) {
    for (name, keys) in sections.iter_mut() {
        if name == "Definition" || name == "DEFAULT" || name == "INCLUDES" {
            continue;
        }
        let own = keys.clone();
        for v in keys.values_mut() {
            for (k, local) in &own {
                let reference = format!("%({k})s");
                if v.contains(&reference) && !local.contains(&reference) {
                    *v = v.replace(&reference, local);
                }
            }
        }
    }
}

fn read_with_includes(path: &Path, sections: &mut Sections, depth: usize) -> Result<(), RulesetError> {
    if depth > 8 {
        return Err(error(path, "[INCLUDES] nest too deep".into()));
    }
    let text = crate::regular::read_text(path).map_err(|e| error(path, format!("cannot read fail2ban filter: {e}")))?;
    let (own, faults) = parse_ini_checked(&text);
    if let Some(first) = faults.first() {
        return Err(RulesetError {
            origin: path.display().to_string(),
            at: Some((first.line, 1)),
            message: format!(
                "not a fail2ban filter file fail2ban would read: {}",
                show_faults(&faults)
            ),
        });
    }
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
        merge(sections.entry(name).or_default(), keys);
    }
    for after in list("after") {
        let p = dir.join(&after);
        if p.exists() {
            read_with_includes(&p, sections, depth + 1)?;
        }
    }
    Ok(())
}

/// Python configparser's format, as far as filters use it; what it would
/// refuse is passed over (see [`parse_ini_checked`]).
pub fn parse_ini(text: &str) -> Sections {
    parse_ini_checked(text).0
}

/// A line Python's configparser refuses (fail2ban refuses the file): its
/// number (from 1) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniFault {
    pub line: usize,
    pub why: String,
}

impl std::fmt::Display for IniFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

/// The faults' text, for an error naming their file: `line 4: ...; line 9: ...`.
pub fn show_faults(faults: &[IniFault]) -> String {
    let all: Vec<String> = faults.iter().map(ToString::to_string).collect();
    all.join("; ")
}

/// Python configparser's format, and the lines it would refuse: a line
/// that is neither a `[section]`, a `key = value` (or `key: value`) nor an
/// indented continuation of the key above (a key without its `=`, a header
/// without its `]`), and a key or section given twice in the same file.
/// Without this, `maxretry 4` in a jail.local was passed over in silence
/// and the jail kept jail.conf's value.
pub fn parse_ini_checked(text: &str) -> (Sections, Vec<IniFault>) {
    let mut out = Sections::new();
    let mut faults = Vec::new();
    let mut section = String::from("DEFAULT");
    let mut key: Option<String> = None;
    // Where each section and key was first given in this text.
    let mut headers: BTreeMap<String, usize> = BTreeMap::new();
    let mut keys: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(k) = &key {
                let v = out.entry(section.clone()).or_default().entry(k.clone()).or_default();
                v.push('\n');
                v.push_str(trimmed);
                continue;
            }
        }
        // configparser's header: `[`, then anything up to the last `]`.
        if let Some(end) = trimmed.strip_prefix('[').and_then(|r| r.rfind(']')) {
            section = trimmed[1..end + 1].trim().to_string();
            key = None;
            if let Some(first) = headers.insert(section.clone(), n + 1) {
                faults.push(IniFault {
                    line: n + 1,
                    why: format!("section [{section}] given twice in this file (first on line {first})"),
                });
            }
            continue;
        }
        let Some(i) = trimmed.find(['=', ':']) else {
            faults.push(IniFault {
                line: n + 1,
                why: format!(
                    "`{}` is neither a [section], a `key = value` nor an indented continuation",
                    shorten(trimmed)
                ),
            });
            key = None;
            continue;
        };
        let k = trimmed[..i].trim().to_string();
        let v = trimmed[i + 1..].trim().to_string();
        if let Some(first) = keys.insert((section.clone(), k.clone()), n + 1) {
            faults.push(IniFault {
                line: n + 1,
                why: format!("`{k}` given twice in [{section}] (first on line {first})"),
            });
        }
        out.entry(section.clone()).or_default().insert(k.clone(), v);
        key = Some(k);
    }
    (out, faults)
}

/// At most 60 characters of a line, for a message.
fn shorten(line: &str) -> String {
    match line.char_indices().nth(60) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line.to_string(),
    }
}

/// Look `name` (or `section/name`, or `known/name`) up for the
/// `[Definition]` context: the filter's options first, then `[Init]`,
/// `[Definition]`, `[DEFAULT]`.
fn lookup<'s>(conf: &'s Conf, name: &str) -> Option<&'s String> {
    let sections = &conf.sections;
    let default = sections.get("DEFAULT");
    if let Some(v) = conf.options.get(name) {
        return Some(v);
    }
    if let Some(key) = name.strip_prefix("known/") {
        // The value a later file replaced (kept at the merge); for an option
        // given to the filter or an `[Init]` value, the files' own; for a
        // `[Definition]` value, the `[DEFAULT]` one it hides (sendmail's
        // `__prefix_line = %(known/__prefix_line)s...` over common.conf's).
        let stored = ["Init", "Definition"]
            .iter()
            .find_map(|s| sections.get(*s).and_then(|s| s.get(name)))
            .or_else(|| default.and_then(|d| d.get(name)));
        let init = sections.get("Init").and_then(|s| s.get(key));
        let own = match conf.options.contains_key(key) {
            true => init.or_else(|| sections.get("Definition").and_then(|s| s.get(key))),
            false => init,
        };
        return stored.or(own).or_else(|| default.and_then(|d| d.get(key)));
    }
    if let Some((sec, key)) = name.split_once('/') {
        return sections
            .get(sec)
            .and_then(|s| s.get(key))
            .or_else(|| default.and_then(|d| d.get(key)));
    }
    sections
        .get("Init")
        .and_then(|s| s.get(name))
        .or_else(|| sections.get("Definition").and_then(|s| s.get(name)))
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
pub(super) fn substitute(sections: &Conf, value: &str) -> Result<String, String> {
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
fn references<'s>(sections: &'s Conf, value: &'s str) -> impl Iterator<Item = &'s str> + 's {
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
fn find_cycle(sections: &Conf, value: &str) -> Option<Vec<String>> {
    fn visit<'s>(
        sections: &'s Conf,
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

fn substitute_once(sections: &Conf, v: &str) -> String {
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
