//! Finds where a key sits in a YAML text, so that errors found after
//! parsing (a jail naming an unknown ruleset, a top-level typo that the YAML
//! library reports without a position) can still name a line and column.
//!
//! It understands block-style YAML, which is how configs are written; for
//! anything else it returns `None` and the error goes out without a line.

use super::Position;

/// Line and column (both 1-based) of the key at `path`, e.g.
/// `["jails", "sshd", "ruleset"]`.
pub(crate) fn locate(text: &str, path: &[&str]) -> Option<Position> {
    let mut start = 0;
    let mut parent_indent: Option<usize> = None;
    let mut found = None;
    for key in path {
        let (i, indent) = content_lines(text, start)
            .take_while(|&(_, indent, _)| parent_indent.is_none_or(|p| indent > p)) // the parent's block
            .find(|&(_, _, line)| key_of(line) == Some(key))
            .map(|(i, indent, _)| (i, indent))?;
        found = Some((i + 1, indent + 1));
        start = i + 1;
        parent_indent = Some(indent);
    }
    found
}

/// Like [`locate`], but when the full path is not found (a key inside a
/// flow mapping such as `{maxretry: 1}`), the nearest enclosing key that is.
pub(crate) fn locate_nearest(text: &str, path: &[&str]) -> Option<Position> {
    (1..=path.len()).rev().find_map(|n| locate(text, &path[..n]))
}

/// Line and column of item `index` (0-based) of the block list under the
/// key at `path` (`failregex:` then `- ...` lines). Falls back to the key.
pub(crate) fn locate_item(text: &str, path: &[&str], index: usize) -> Option<Position> {
    let (key_line, key_col) = locate(text, path)?;
    let mut n = 0;
    let mut item_indent = None;
    for (i, indent, line) in content_lines(text, key_line) {
        if indent + 1 < key_col || (indent + 1 == key_col && !line.starts_with("- ")) {
            break; // left the key's block
        }
        if line.starts_with("- ") || line == "-" {
            if *item_indent.get_or_insert(indent) != indent {
                continue; // a nested list
            }
            if n == index {
                return Some((i + 1, indent + 1));
            }
            n += 1;
        }
    }
    Some((key_line, key_col))
}

/// The lines from index `start` on that are neither blank nor comments:
/// index, indent, and the line without its indent.
fn content_lines(text: &str, start: usize) -> impl Iterator<Item = (usize, usize, &str)> {
    text.lines().enumerate().skip(start).filter_map(|(i, line)| {
        let trimmed = line.trim_start();
        let content = !trimmed.is_empty() && !trimmed.starts_with('#');
        content.then(|| (i, line.len() - trimmed.len(), trimmed))
    })
}

/// The key of a `key: value` line, unquoted.
fn key_of(line: &str) -> Option<&str> {
    let line = line.strip_prefix("- ").unwrap_or(line);
    let colon = line.find(':')?;
    let key = line[..colon].trim();
    Some(key.trim_matches(|c| c == '"' || c == '\''))
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "socket: /run/x\n# comment\njails:\n  sshd:\n    ruleset: sshd\n  asterisk:\n    files: [a]\n    ruleset: astrisk\n";

    #[test]
    fn finds_nested_keys() {
        assert_eq!(locate(YAML, &["socket"]), Some((1, 1)));
        assert_eq!(locate(YAML, &["jails", "asterisk", "ruleset"]), Some((8, 5)));
        assert_eq!(locate(YAML, &["jails", "sshd", "ruleset"]), Some((5, 5)));
    }

    #[test]
    fn nearest_falls_back_to_the_enclosing_key() {
        let yaml = "jails:\n  sshd: {ruleset: sshd, maxretry: 0}\n";
        assert_eq!(locate(yaml, &["jails", "sshd", "maxretry"]), None);
        assert_eq!(locate_nearest(yaml, &["jails", "sshd", "maxretry"]), Some((2, 3)));
    }

    #[test]
    fn finds_list_items() {
        let t = "name: x\nfailregex:\n  - a\n  # c\n  - b\nmodes:\n  aggressive:\n    failregex:\n    - c\n    - d\n";
        assert_eq!(locate_item(t, &["failregex"], 1), Some((5, 3)));
        assert_eq!(locate_item(t, &["modes", "aggressive", "failregex"], 1), Some((10, 5)));
        assert_eq!(locate_item(t, &["failregex"], 7), Some((2, 1)), "falls back to the key");
    }

    #[test]
    fn does_not_leave_the_parent_block() {
        assert_eq!(locate(YAML, &["jails", "sshd", "files"]), None);
        assert_eq!(locate(YAML, &["nope"]), None);
    }
}
