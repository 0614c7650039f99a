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

/// Python configparser's format, as far as filters use it.
pub fn parse_ini(text: &str) -> Sections {
    let mut out = Sections::new();
    let mut section = String::from("DEFAULT");
    let mut key: Option<String> = None;
    for raw in text.lines() {
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
            }
            continue;
        }
        if trimmed.starts_with('[') && trimmed.ends_with(']') {
            section = trimmed[1..trimmed.len() - 1].trim().to_string();
            key = None;
            continue;
        }
        let split = trimmed.find(['=', ':']);
        if let Some(i) = split {
            let k = trimmed[..i].trim().to_string();
            let v = trimmed[i + 1..].trim().to_string();
            out.entry(section.clone()).or_default().insert(k.clone(), v);
            key = Some(k);
        }
    }
    out
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
