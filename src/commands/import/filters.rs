//! The filters the imported jails use, copied with everything they
//! include (`[INCLUDES] before`/`after`, each file's `.local`), so the
//! output folder is self-contained: it loads the same on a host with no
//! fail2ban, and a later fail2ban upgrade does not change nftban's rules
//! under it.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use crate::matcher::fail2ban::ini::parse_ini;

/// The files under `dir` that `filter` needs, relative to `dir`, in a
/// stable order; includes that leave `dir` are returned apart, to be
/// reported.
pub fn needed(dir: &Path, filter: &Path) -> (BTreeSet<PathBuf>, Vec<PathBuf>) {
    let (mut inside, mut outside) = (BTreeSet::new(), Vec::new());
    let mut todo = vec![filter.to_path_buf()];
    while let Some(file) = todo.pop() {
        let Some(rel) = relative(dir, &file) else {
            outside.push(file);
            continue;
        };
        if !file.is_file() || !inside.insert(rel) {
            continue;
        }
        let local = file.with_extension("local");
        if local != file {
            todo.push(local);
        }
        let Ok(text) = crate::regular::read_text(&file) else {
            continue;
        };
        let sections = parse_ini(&text);
        let folder = file.parent().unwrap_or(dir);
        if let Some(inc) = sections.get("INCLUDES") {
            for key in ["before", "after"] {
                for name in inc
                    .get(key)
                    .map(|v| v.split_whitespace().collect::<Vec<_>>())
                    .unwrap_or_default()
                {
                    todo.push(folder.join(name));
                }
            }
        }
    }
    (inside, outside)
}

/// `file` relative to `dir`, if it stays inside it (no `..` out).
fn relative(dir: &Path, file: &Path) -> Option<PathBuf> {
    let rel = file.strip_prefix(dir).ok()?;
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir if out.pop() => {}
            _ => return None,
        }
    }
    Some(out)
}
