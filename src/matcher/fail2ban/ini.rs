//! The INI format of fail2ban's files (Python's configparser, as fail2ban
//! uses it), read once for filters, jails and the paths files alike, so
//! that `nftban test FILTER.conf` and `nftban import-fail2ban` never
//! disagree on what a file says.

use std::collections::BTreeMap;

/// Sections by name, each its keys and values (multi-line values joined
/// with `\n`). Keys before any section header are in `DEFAULT`.
pub type Sections = BTreeMap<String, BTreeMap<String, String>>;

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
