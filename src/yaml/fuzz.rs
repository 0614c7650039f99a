//! Hostile YAML text for the position finders: whatever the text and the
//! key path, [`locate`], [`locate_item`] and [`parse_error`] do not panic,
//! and a position they give is in the text, on the key asked for; nor
//! does [`expansion`], which refuses no text without aliases and names a
//! place in the text, at an alias.

use proptest::prelude::*;

use super::*;
use crate::fuzz::{self, NASTY};

/// Lines of `text` as the YAML library counts them: it breaks lines at
/// `\r\n`, `\r`, `\n`, and at NEL, LS and PS (U+0085, U+2028, U+2029).
pub(crate) fn yaml_lines(text: &str) -> usize {
    let breaks = text.replace("\r\n", "\n");
    1 + breaks
        .chars()
        .filter(|c| matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}'))
        .count()
}

/// An error's place, if it has one, is in `text`: a line of it (the YAML
/// library puts an error at the end of the text on the line after it)
/// and a column from 1.
pub(crate) fn place_is_in(text: &str, at: Option<(usize, usize)>, shown: &str) -> Result<(), TestCaseError> {
    if let Some((line, column)) = at {
        let lines = yaml_lines(text);
        prop_assert!(
            line >= 1 && line <= lines + 1 && column >= 1,
            "{}:{} in {} lines: {}",
            line,
            column,
            lines,
            shown
        );
    }
    Ok(())
}

const KEYS: &[&str] = &[
    "a",
    "jails",
    "sshd",
    "failregex",
    "- a",
    "\"a\"",
    "'b'",
    "k:x",
    "",
    "{a",
    "[b, *c]",
    "&c",
];

/// Text of keys at random indents, lists, comments and hostile pieces.
fn text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        (0usize..8, proptest::sample::select(KEYS), "[ -~]{0,8}")
            .prop_map(|(d, k, v)| format!("{}{k}: {v}", " ".repeat(d))),
        (0usize..8, "[ -~]{0,8}").prop_map(|(d, v)| format!("{}- {v}", " ".repeat(d))),
        proptest::sample::select(NASTY).prop_map(String::from),
        any::<String>(),
    ];
    proptest::collection::vec(line, 0..30).prop_map(|l| l.join("\n"))
}

fn path() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::collection::vec(proptest::sample::select(KEYS), 1..4)
}

/// A position is on a line of `text`, at a column within it, and the key
/// (unquoted, after a `- `) starts there.
fn on_key(text: &str, (line, column): Position, key: &str) -> Result<(), TestCaseError> {
    let lines: Vec<&str> = text.lines().collect();
    prop_assert!(line >= 1 && line <= lines.len(), "line {} of {}", line, lines.len());
    let l = lines[line - 1];
    prop_assert!(column >= 1 && column <= l.len() + 1, "column {} of {:?}", column, l);
    let rest = &l[column - 1..];
    let rest = rest.strip_prefix("- ").unwrap_or(rest);
    let rest = rest.trim_start_matches(['"', '\'']);
    prop_assert!(
        rest.starts_with(key.trim_matches(['"', '\''])),
        "{:?} at {}:{} is not key {:?}",
        l,
        line,
        column,
        key
    );
    Ok(())
}

proptest! {
    #![proptest_config(fuzz::config(512))]

    #[test]
    fn locate_finds_keys_or_nothing(text in text(), path in path()) {
        if let Some(at) = locate(&text, &path) {
            on_key(&text, at, path.last().unwrap())?;
        }
        if let Some((line, _)) = locate_nearest(&text, &path) {
            prop_assert!(line <= text.lines().count());
        }
    }

    #[test]
    fn locate_item_stays_in_the_text(text in text(), path in path(), index in 0usize..5) {
        if let Some((line, column)) = locate_item(&text, &path, index) {
            let lines: Vec<&str> = text.lines().collect();
            prop_assert!(line >= 1 && line <= lines.len());
            prop_assert!(column >= 1 && column <= lines[line - 1].len() + 1);
        }
    }

    /// Text with anchors and aliases, repeated so that some of it
    /// expands past the limit.
    #[test]
    fn expansion_names_an_alias_in_the_text(text in text(), copies in 1usize..400) {
        let text = text.repeat(copies);
        match expansion(&text) {
            None => {}
            Some(e) => {
                prop_assert!(text.contains('*'), "refused without an alias: {:?}", e);
                if let Some((line, column)) = e.at {
                    let lines: Vec<&str> = text.lines().collect();
                    prop_assert!(line >= 1 && line <= lines.len(), "line {} of {}", line, lines.len());
                    let l = lines[line - 1];
                    prop_assert!(column >= 1 && column <= l.len(), "column {} of {:?}", column, l);
                }
            }
        }
    }

    /// The YAML library's errors on random text get a position in the text.
    #[test]
    fn parse_errors_point_into_the_text(text in text()) {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Top {
            a: Option<Vec<String>>,
            jails: Option<std::collections::BTreeMap<String, u32>>,
        }
        if let Err(e) = serde_yaml_ng::from_str::<Top>(&text) {
            let (message, at) = parse_error(&text, &e);
            prop_assert!(!message.is_empty());
            // At the end of a text without a final line break, the library
            // names the line after the last.
            if let Some((line, column)) = at {
                prop_assert!(line >= 1 && line <= yaml_lines(&text) + 1 && column >= 1, "{}:{}: {}", line, column, message);
            }
        }
    }
}

#[test]
fn yaml_lines_counts_every_break() {
    assert_eq!(yaml_lines(""), 1);
    assert_eq!(yaml_lines("a\r\nb\rc\nd\u{2028}e"), 5);
}
