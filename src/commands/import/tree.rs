//! A fail2ban jail tree read as fail2ban reads it, so that what the import
//! writes is what fail2ban would run: the files in fail2ban's order
//! (`jail.conf`, `jail.d/*.conf` by name, `jail.local`, `jail.d/*.local` by
//! name; each with its `[INCLUDES] before`/`after` around it), later
//! values replacing earlier ones, and Python configparser's `%(name)s`
//! interpolation as fail2ban extends it (`%(__name__)s`, `%(default/x)s`,
//! `%(known/x)s`, `%(section/x)s`), done lazily in the context of the jail
//! asking, as configparser does.
//!
//! The INI syntax itself is `matcher::fail2ban::ini`'s, the filter
//! reader's; on top of it come the two things configparser does that
//! filters never need: keys are case-insensitive, and `;` after a space
//! starts a comment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::matcher::fail2ban::ini::{parse_ini_checked, IniFault};

/// One section's keys (lower case) and raw values.
type Keys = BTreeMap<String, String>;

/// What reading or interpolating the tree can run into; each names the
/// file (or section and key) at fault.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The folder has no `jail.conf` nor `jail.local`.
    #[error("{0}: no jail.conf nor jail.local here: not a fail2ban configuration folder")]
    NoJails(PathBuf),
    /// A file cannot be read.
    #[error("{path}: {why}")]
    Read { path: PathBuf, why: String },
    /// A line fail2ban refuses too (a key without `=`, a header without
    /// `]`, a key given twice in a section).
    #[error("{}: {}; fail2ban refuses this file too (`fail2ban-client -t`)", .path.display(), crate::matcher::fail2ban::ini::show_faults(.faults))]
    Syntax { path: PathBuf, faults: Vec<IniFault> },
    /// `%(name)s` names nothing, loops, or nests too deep.
    #[error("[{section}] {key}: {why}")]
    Interpolation { section: String, key: String, why: String },
}

/// The merged tree: `[DEFAULT]`, the other sections, the values each
/// section had before a later file replaced them (`known/`), and where
/// each section's keys were last set.
#[derive(Debug, Default)]
pub struct Tree {
    pub defaults: Keys,
    pub sections: BTreeMap<String, Keys>,
    known: BTreeMap<String, Keys>,
    /// `(section, key)` → the file that set it last (for the report).
    origin: BTreeMap<(String, String), PathBuf>,
    /// Every file read, in order.
    pub files: Vec<PathBuf>,
}

/// Includes nest at most this deep (fail2ban's own trees use two).
const MAX_DEPTH: usize = 8;
/// `%(x)s` inside `%(x)s` at most this deep (configparser's own limit).
const MAX_INTERPOLATION: usize = 10;
/// The most a value may grow to as it is interpolated: far more than any
/// real jail's (a few lines of paths and actions), far less than values
/// that name the next one many times over would take at ten levels.
const MAX_VALUE: usize = 1 << 20;

impl Tree {
    /// Read `dir`'s jail files in fail2ban's order.
    pub fn read(dir: &Path) -> Result<Tree, TreeError> {
        let mut tree = Tree::default();
        let main = [dir.join("jail.conf"), dir.join("jail.local")];
        if !main.iter().any(|p| p.is_file()) {
            return Err(TreeError::NoJails(dir.to_path_buf()));
        }
        let listed = |ext: &str| -> Vec<PathBuf> {
            let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("jail.d"))
                .map(|rd| {
                    rd.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|e| e == ext))
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        let mut order = vec![main[0].clone()];
        order.extend(listed("conf"));
        order.push(main[1].clone());
        order.extend(listed("local"));
        for file in order.into_iter().filter(|p| p.is_file()) {
            tree.read_file(&file, 0, &mut Vec::new())?;
        }
        // What fail2ban's jail reader adds to `[DEFAULT]` before it
        // interpolates (`ignorecommand = %(fail2ban_confpath)s/...`).
        tree.defaults
            .insert("fail2ban_confpath".into(), dir.display().to_string());
        tree.defaults
            .entry("fail2ban_version".into())
            .or_insert_with(|| "1.0".into());
        Ok(tree)
    }

    /// One file with its includes around it (and its `.local`, as
    /// fail2ban adds the `.local` of every included `.conf`).
    fn read_file(&mut self, path: &Path, depth: usize, seen: &mut Vec<PathBuf>) -> Result<(), TreeError> {
        if depth > MAX_DEPTH || seen.contains(&path.to_path_buf()) {
            return Ok(());
        }
        let text = crate::regular::read_text(path).map_err(|e| TreeError::Read {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        let (parsed, faults) = parse_ini_checked(&text);
        if !faults.is_empty() {
            return Err(TreeError::Syntax {
                path: path.to_path_buf(),
                faults,
            });
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let includes = |key: &str| -> Vec<PathBuf> {
            parsed
                .get("INCLUDES")
                .and_then(|s| s.get(key))
                .map(|v| v.split_whitespace().map(|f| dir.join(f)).collect())
                .unwrap_or_default()
        };
        let (before, after) = (includes("before"), includes("after"));
        seen.push(path.to_path_buf());
        for before in before {
            if before.is_file() {
                self.read_file(&before, depth + 1, seen)?;
            }
        }
        self.files.push(path.to_path_buf());
        for (name, keys) in parsed {
            if name == "INCLUDES" {
                continue;
            }
            let keys: Keys = keys
                .into_iter()
                .map(|(k, v)| (k.to_lowercase(), strip_comments(&v)))
                .collect();
            for k in keys.keys() {
                self.origin.insert((name.clone(), k.clone()), path.to_path_buf());
            }
            if name == "DEFAULT" {
                self.defaults.extend(keys);
                continue;
            }
            let section = self.sections.entry(name.clone()).or_default();
            let before: Keys = keys
                .keys()
                .filter_map(|k| section.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            section.extend(keys);
            self.known.entry(name).or_default().extend(before);
        }
        let local = path.with_extension("local");
        let mut after = after;
        if path.extension().is_some_and(|e| e == "conf") && !after.contains(&local) && depth > 0 {
            after.push(local);
        }
        for file in after {
            if file.is_file() {
                self.read_file(&file, depth + 1, seen)?;
            }
        }
        seen.pop();
        Ok(())
    }

    /// The file that last set `key` for `section` (its own, else `[DEFAULT]`'s).
    pub fn origin(&self, section: &str, key: &str) -> Option<&Path> {
        let own = self.origin.get(&(section.to_string(), key.to_string()));
        own.filter(|_| self.sections.get(section).is_some_and(|s| s.contains_key(key)))
            .or_else(|| self.origin.get(&("DEFAULT".to_string(), key.to_string())))
            .map(PathBuf::as_path)
    }

    /// Whether `section` sets `key` itself (not through `[DEFAULT]`).
    pub fn sets(&self, section: &str, key: &str) -> bool {
        self.sections.get(section).is_some_and(|s| s.contains_key(key))
    }

    /// The raw value of `key` as `section` sees it.
    fn raw(&self, section: &str, key: &str) -> Option<&String> {
        self.sections
            .get(section)
            .and_then(|s| s.get(key))
            .or_else(|| self.defaults.get(key))
    }

    /// `key`'s value in `section`, interpolated; `None` if neither the
    /// section nor `[DEFAULT]` sets it.
    pub fn get(&self, section: &str, key: &str) -> Result<Option<String>, TreeError> {
        let Some(raw) = self.raw(section, key) else {
            return Ok(None);
        };
        self.interpolate(section, raw, 0)
            .map(Some)
            .map_err(|why| TreeError::Interpolation {
                section: section.to_string(),
                key: key.to_string(),
                why,
            })
    }

    /// configparser's basic interpolation with fail2ban's section names.
    fn interpolate(&self, section: &str, value: &str, depth: usize) -> Result<String, String> {
        if depth > MAX_INTERPOLATION {
            return Err(format!(
                "`{value}`: references nest deeper than {MAX_INTERPOLATION} (a loop?)"
            ));
        }
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(i) = rest.find('%') {
            out.push_str(&rest[..i]);
            let tail = &rest[i + 1..];
            if let Some(after) = tail.strip_prefix('%') {
                out.push('%');
                rest = after;
                continue;
            }
            let Some(inner) = tail.strip_prefix('(') else {
                return Err(format!("a `%` must be `%%` or start `%(name)s`, in `{value}`"));
            };
            let end = inner
                .find(")s")
                .ok_or_else(|| format!("`%(` without its `)s`, in `{value}`"))?;
            let name = inner[..end].to_lowercase();
            let found = self
                .lookup(section, &name)
                .ok_or_else(|| format!("`%({name})s` is not set (neither in [{section}] nor in [DEFAULT])"))?;
            out.push_str(&self.interpolate(section, &found, depth + 1)?);
            if out.len() > MAX_VALUE {
                return Err(format!(
                    "grows past {} KiB as its references are expanded",
                    MAX_VALUE >> 10
                ));
            }
            rest = &inner[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// What `%(name)s` stands for in `section`.
    fn lookup(&self, section: &str, name: &str) -> Option<String> {
        if name == "__name__" {
            return Some(section.to_string());
        }
        if let Some((sec, key)) = name.split_once('/') {
            return match sec {
                "default" => self.defaults.get(key).cloned(),
                "known" => self
                    .known
                    .get(section)
                    .and_then(|k| k.get(key))
                    .or_else(|| self.defaults.get(key))
                    .cloned(),
                other => self
                    .sections
                    .iter()
                    .find(|(s, _)| s.eq_ignore_ascii_case(other))
                    .and_then(|(_, keys)| keys.get(key))
                    .or_else(|| self.defaults.get(key))
                    .cloned(),
            };
        }
        self.raw(section, name).cloned()
    }

    /// The jails: sections other than `[DEFAULT]`, `[INCLUDES]`, and
    /// fail2ban's conditional sections (`[name?key=value]`).
    pub fn jails(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(String::as_str).filter(|s| !s.contains('?'))
    }
}

/// configparser's inline comments: `;` after whitespace ends the line's
/// value (fail2ban turns them on), on each line of a multi-line value.
fn strip_comments(value: &str) -> String {
    value
        .lines()
        .map(|line| {
            let cut = line
                .char_indices()
                .find(|&(i, c)| c == ';' && i > 0 && line[..i].ends_with([' ', '\t']))
                .map(|(i, _)| i)
                .unwrap_or(line.len());
            line[..cut].trim_end()
        })
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}
