//! Positions in YAML files, for error messages that name the file, line,
//! column and key of a problem.
//!
//! The config file and ruleset files both report problems this way, so
//! the helpers live here, below the modules that read them: this module
//! uses no other module of nftban. `locate` finds a key's line and column
//! for problems found after parsing (a jail naming an unknown ruleset),
//! `parse_error` gives the YAML library's own errors a position where it
//! has none, and [`Located`] is an error at such a place. `expansion`
//! refuses a file whose aliases would make it far larger than its text,
//! before it is read.

pub(crate) mod expansion;
#[cfg(test)]
pub(crate) mod fuzz;
mod locate;
mod unique;

use std::fmt;

pub(crate) use expansion::expansion;
pub use expansion::TooLarge;
pub(crate) use locate::{locate, locate_item, locate_nearest};
pub(crate) use unique::duplicate_key;

/// Line and column in a file, both 1-based.
pub type Position = (usize, usize);

/// A YAML library error as message and position. The library appends
/// " at line L column C" to its message; that is cut off and returned as
/// the position. For an unknown key at the top level the library gives no
/// position: the key is looked up in `text`.
pub(crate) fn parse_error(text: &str, e: &serde_yaml_ng::Error) -> (String, Option<Position>) {
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full.clone(),
    };
    let message = plain_type(&message);
    let mut at = e.location().map(|l| (l.line(), l.column()));
    if at.is_none() {
        if let Some(key) = unknown_field(&message) {
            let mut keys: Vec<&str> = match message.split_once(": unknown field") {
                Some((prefix, _)) => prefix.split('.').collect(),
                None => vec![],
            };
            keys.push(key);
            at = locate(text, &keys);
        }
    }
    (message, at)
}

/// serde names the Rust type it wanted (`expected struct JailConfig`),
/// which means nothing to whoever wrote the file: said as what the key
/// wants, with the usual cause, a value where a mapping should be (a key
/// indented one level too little, as `maxretry: 3` right under `jails:`).
fn plain_type(message: &str) -> String {
    let Some(i) = message.find("expected struct ") else {
        return message.to_string();
    };
    let name = &message[i + "expected struct ".len()..];
    let name: String = name.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    let what = name.strip_suffix("Config").unwrap_or(&name).to_ascii_lowercase();
    format!(
        "{}expected the keys of a {what} (a mapping) here, not a single value: is this line indented one level too little?",
        &message[..i]
    )
}

fn unknown_field(message: &str) -> Option<&str> {
    let i = message.find("unknown field `")? + "unknown field `".len();
    let rest = &message[i..];
    Some(&rest[..rest.find('`')?])
}

/// `file:line:column: key`, leaving out what is not known (no file: the
/// key alone; no key: the place alone).
pub(crate) struct Place<'a> {
    pub file: &'a str,
    pub at: Option<Position>,
    pub key: Option<&'a str>,
}

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file)?;
        if let (Some((line, column)), false) = (self.at, self.file.is_empty()) {
            write!(f, ":{line}:{column}")?;
        }
        match self.key {
            Some(key) if self.file.is_empty() => f.write_str(key),
            Some(key) => write!(f, ": {key}"),
            None => Ok(()),
        }
    }
}

/// A problem at a key of a YAML file. It shows as `file:line:column: key`
/// and the problem is its [`source`](std::error::Error::source), so the
/// whole chain (`{:#}` of an `anyhow::Error`, as the CLI prints errors)
/// reads `file:line:column: key: problem`.
#[derive(Debug, thiserror::Error)]
#[error("{}", Place { file: &self.file, at: self.at, key: self.key.as_deref() })]
pub struct Located<E: std::error::Error + 'static> {
    /// The file, as it is named in messages.
    pub file: String,
    /// Where in it, when known.
    pub at: Option<Position>,
    /// The key in dotted form (`jails.sshd.maxretry`), when the problem is
    /// about one.
    pub key: Option<String>,
    /// What is wrong.
    #[source]
    pub error: E,
}

/// An error and its sources as the CLI prints them (`a: b: c`), for
/// messages that leave the process another way (the answer to a reload).
pub(crate) fn report(e: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(e), |e| e.source())
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("must be at least 1")]
    struct Zero;

    #[test]
    fn located_shows_what_is_known() {
        let e = |file: &str, at, key: Option<&str>| Located {
            file: file.into(),
            at,
            key: key.map(String::from),
            error: Zero,
        };
        assert_eq!(
            report(&e("/etc/x.yaml", Some((3, 5)), Some("jails.a.maxretry"))),
            "/etc/x.yaml:3:5: jails.a.maxretry: must be at least 1"
        );
        assert_eq!(report(&e("/etc/x.yaml", None, None)), "/etc/x.yaml: must be at least 1");
        assert_eq!(e("", Some((1, 1)), Some("k")).to_string(), "k");
    }

    #[test]
    fn parse_errors_get_a_position() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Top {
            a: Option<u32>,
        }
        let text = "a: 1\n# c\nb: 2\n";
        let e = serde_yaml_ng::from_str::<Top>(text).unwrap_err();
        let (message, at) = parse_error(text, &e);
        assert!(message.starts_with("unknown field `b`"), "{message}");
        assert_eq!(at, Some((3, 1)));
    }
}
