//! Finds where a key or a list item sits in a YAML text, so that errors
//! found after parsing (a jail naming an unknown ruleset, a top-level typo
//! that the YAML library reports without a position) can still name a
//! line and column.
//!
//! The text is walked as the events of a YAML parser that gives each
//! event its place (saphyr-parser), not scanned line by line: a config may
//! be written in block style, in flow style (`{log: {level: loud}}`, which
//! is what JSON is), or in a mix of both, and only a parser knows where a
//! key of a flow mapping is, or which `- ` line is the third item of a
//! list that holds lists. serde_yaml_ng, which reads the file into its
//! types, keeps its events to itself; its error positions stay its own
//! ([`super::parse_error`]). The same events, with their places, let
//! [`super::expansion`] count what aliases make of a file before it is read.
//!
//! Positions are 1-based lines (counted at `\n`, as [`str::lines`] does) and
//! columns in bytes. A text the parser cannot read is walked up to its
//! first error; a key after that is not found and the error goes out
//! without a line.

use saphyr_parser::{Event, Parser, StrInput};

use super::Position;

/// Line and column of the key at `path`, e.g. `["jails", "sshd",
/// "ruleset"]`. The first such key of the first document; `None` when
/// there is none, or the path goes through a value that is no mapping
/// (an alias included).
pub(crate) fn locate(text: &str, path: &[&str]) -> Option<Position> {
    let found = |text: &str| Events::new(text).find(path);
    let at = found(text).or_else(|| found(&untabbed(text)?))?;
    position(text, at)
}

/// `text` with its tabs as spaces, if it has any and the parser stops at
/// an error in it: the YAML library nftban reads configs with takes a tab
/// where saphyr-parser stops (`history_keep:<TAB>30d`), and a key after
/// that would have no place. A tab and a space are one byte each, so every
/// place found in the copy is the same in the text; only positions are
/// read from it, never values.
fn untabbed(text: &str) -> Option<String> {
    if !text.contains('\t') {
        return None;
    }
    let mut events = Events::new(text);
    while events.next().is_some() {}
    events.failed().then(|| text.replace('\t', " "))
}

/// Like [`locate`], but when the full path is not found (a key set
/// through an alias, a key the parser cannot reach), the nearest
/// enclosing key that is.
pub(crate) fn locate_nearest(text: &str, path: &[&str]) -> Option<Position> {
    (1..=path.len()).rev().find_map(|n| locate(text, &path[..n]))
}

/// Line and column of item `index` (0-based) of the list under the key at
/// `path`: the `-` of a block list item, the item itself in a flow list
/// (`[a, b]`). Falls back to the key.
pub(crate) fn locate_item(text: &str, path: &[&str], index: usize) -> Option<Position> {
    let copy = untabbed(text);
    let text = match (&copy, Events::new(text).find(path)) {
        (Some(copy), None) => copy.as_str(),
        _ => text,
    };
    let mut events = Events::new(text);
    let key = events.find(path)?;
    let fallback = position(text, key);
    let Some((Event::SequenceStart(..), start)) = events.next() else {
        return fallback;
    };
    let flow = text.as_bytes().get(start) == Some(&b'[');
    let mut n = 0;
    loop {
        let (event, at) = events.next()?;
        if matches!(event, Event::SequenceEnd) {
            return fallback;
        }
        if n == index {
            let at = if flow { at } else { dash_before(text, at).unwrap_or(at) };
            return position(text, at).or(fallback);
        }
        events.skip(&event)?;
        n += 1;
    }
}

/// The `-` that starts a block list item whose node starts at byte `at`:
/// the last character before it on its line that is not a space or tab.
fn dash_before(text: &str, at: usize) -> Option<usize> {
    let before = text.get(..at)?;
    let i = before.trim_end_matches([' ', '\t']).len().checked_sub(1)?;
    (text.as_bytes()[i] == b'-').then_some(i)
}

/// Line (counted at `\n`) and column (in bytes), both 1-based, of byte
/// `at`; `None` at the end of the text, where nothing is written.
pub(super) fn position(text: &str, at: usize) -> Option<Position> {
    if at >= text.len() || !text.is_char_boundary(at) {
        return None;
    }
    let before = &text.as_bytes()[..at];
    let line = 1 + memchr::memchr_iter(b'\n', before).count();
    let start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
    Some((line, at - start + 1))
}

/// The parser's events of one text, each with the byte where it starts.
/// Ends at the parser's first error.
pub(super) struct Events<'a> {
    parser: Parser<'a, StrInput<'a>>,
    bytes: Bytes<'a>,
    failed: bool,
    /// The byte where the last event read ends.
    end: usize,
}

impl<'a> Events<'a> {
    pub(super) fn new(text: &'a str) -> Events<'a> {
        Events {
            parser: Parser::new_from_str(text),
            bytes: Bytes::new(text),
            failed: false,
            end: 0,
        }
    }

    /// Whether the parser stopped at an error (and not at the end).
    pub(super) fn failed(&self) -> bool {
        self.failed
    }

    /// The next event and the byte it starts at.
    pub(super) fn next(&mut self) -> Option<(Event<'a>, usize)> {
        match self.parser.next_event()? {
            Ok((event, span)) => {
                let start = self.bytes.at(span.start.index());
                self.end = self.bytes.at(span.end.index());
                Some((event, start))
            }
            Err(_) => {
                self.failed = true;
                None
            }
        }
    }

    /// Reads on to the end of the node that `first` starts: nothing more
    /// for a scalar or an alias, up to the matching end for a collection.
    pub(super) fn skip(&mut self, first: &Event) -> Option<()> {
        let mut depth = usize::from(is_start(first));
        while depth > 0 {
            match self.next()?.0 {
                ref e if is_start(e) => depth += 1,
                Event::SequenceEnd | Event::MappingEnd => depth -= 1,
                _ => {}
            }
        }
        Some(())
    }

    /// From the start of the text, the key at `path` in the first
    /// document: the byte it starts at, with the events read up to its
    /// value (the next event is the value's first).
    fn find(&mut self, path: &[&str]) -> Option<usize> {
        // The stream's and the document's start.
        loop {
            match self.next()?.0 {
                Event::StreamStart | Event::Nothing => {}
                Event::DocumentStart(_) => break,
                _ => return None,
            }
        }
        let mut found = None;
        for key in path {
            let (Event::MappingStart(..), _) = self.next()? else {
                return None;
            };
            found = Some(self.key(key)?);
        }
        found
    }

    /// In a mapping whose start was just read: the byte of `key` (a
    /// scalar written in the text), with the events read up to its value.
    fn key(&mut self, key: &str) -> Option<usize> {
        loop {
            let (event, at) = self.next()?;
            match &event {
                Event::MappingEnd => return None,
                // An empty key (`: v`) is not written: the parser puts it
                // at the next token.
                Event::Scalar(value, ..) if value == key && self.end > at => return Some(at),
                _ => {}
            }
            self.skip(&event)?; // the key
            let (value, _) = self.next()?;
            self.skip(&value)?;
        }
    }
}

fn is_start(event: &Event) -> bool {
    matches!(event, Event::SequenceStart(..) | Event::MappingStart(..))
}

/// The parser's places are character indexes; the byte offset of one,
/// found by walking from the last one asked for (events come in text
/// order but for short steps back, so the walks add up to about the
/// text's length).
struct Bytes<'a> {
    text: &'a str,
    ascii: bool,
    char_index: usize,
    byte: usize,
}

impl<'a> Bytes<'a> {
    fn new(text: &'a str) -> Bytes<'a> {
        Bytes {
            text,
            ascii: text.is_ascii(),
            char_index: 0,
            byte: 0,
        }
    }

    fn at(&mut self, index: usize) -> usize {
        if self.ascii {
            return index.min(self.text.len());
        }
        let mut back = self.text[..self.byte].chars();
        while self.char_index > index {
            let Some(c) = back.next_back() else { break };
            self.char_index -= 1;
            self.byte -= c.len_utf8();
        }
        let mut chars = self.text[self.byte..].chars();
        while self.char_index < index {
            let Some(c) = chars.next() else { break };
            self.char_index += 1;
            self.byte += c.len_utf8();
        }
        self.byte
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tab after a key's colon (which the config's YAML library takes)
    /// does not hide the keys after it.
    #[test]
    fn keys_after_a_tab_are_found() {
        let text = "a:\t30d\nb:\n  c: [x,\ty]\n";
        assert!(untabbed(text).is_some(), "saphyr-parser stops at the tab");
        assert_eq!(locate(text, &["b", "c"]), Some((3, 3)));
        assert_eq!(locate_item(text, &["b", "c"], 1), Some((3, 10)));
    }

    const YAML: &str = "socket: /run/x\n# comment\njails:\n  sshd:\n    ruleset: sshd\n  asterisk:\n    files: [a]\n    ruleset: astrisk\n";

    #[test]
    fn finds_nested_keys() {
        assert_eq!(locate(YAML, &["socket"]), Some((1, 1)));
        assert_eq!(locate(YAML, &["jails", "asterisk", "ruleset"]), Some((8, 5)));
        assert_eq!(locate(YAML, &["jails", "sshd", "ruleset"]), Some((5, 5)));
    }

    #[test]
    fn finds_keys_of_flow_mappings() {
        let yaml = "jails:\n  sshd: {ruleset: sshd, maxretry: 0}\n";
        assert_eq!(locate(yaml, &["jails", "sshd", "maxretry"]), Some((2, 25)));
        assert_eq!(locate_nearest(yaml, &["jails", "sshd", "maxretry"]), Some((2, 25)));
        assert_eq!(locate_nearest(yaml, &["jails", "sshd", "bantime"]), Some((2, 3)));
        // JSON, on one line and on many; quoted keys are found by their value.
        let json = r#"{"log": {"level": "loud"}, "jails": {"a b": {"files": []}}}"#;
        assert_eq!(locate(json, &["log", "level"]), Some((1, 10)));
        assert_eq!(locate(json, &["jails", "a b", "files"]), Some((1, 46)));
        let json = "{\n  \"log\": {\n    \"level\": \"loud\"\n  }\n}\n";
        assert_eq!(locate(json, &["log", "level"]), Some((3, 5)));
        // A flow mapping over several lines, inside a block one.
        let mixed = "defaults: {bantime: 1h,\n  bantime_increment: {factor: 0,\n    max: 1d}}\n";
        assert_eq!(locate(mixed, &["defaults", "bantime_increment", "max"]), Some((3, 5)));
    }

    #[test]
    fn columns_are_bytes_and_lines_end_at_newlines() {
        let yaml = "é: {ü: 1, k: 2}\n";
        assert_eq!(locate(yaml, &["é", "k"]), Some((1, 13)));
        assert_eq!(&yaml[12..13], "k");
        // The parser also breaks lines at a lone `\r`; positions do not.
        assert_eq!(locate("a: 1\rb: 2\n", &["b"]), Some((1, 6)));
    }

    #[test]
    fn finds_list_items() {
        let t = "name: x\nfailregex:\n  - a\n  # c\n  - b\nmodes:\n  aggressive:\n    failregex:\n    - c\n    - d\n";
        assert_eq!(locate_item(t, &["failregex"], 1), Some((5, 3)));
        assert_eq!(locate_item(t, &["modes", "aggressive", "failregex"], 1), Some((10, 5)));
        assert_eq!(locate_item(t, &["failregex"], 7), Some((2, 1)), "falls back to the key");
        // Flow lists, lists of lists and of mappings.
        let t =
            "failregex: [a, 'b, c', d]\nexamples:\n  - - x\n    - y\n  - line: z\n    host: ~\nl: [\n  [1, 2],\n  3]\n";
        assert_eq!(locate_item(t, &["failregex"], 1), Some((1, 16)));
        assert_eq!(locate_item(t, &["failregex"], 2), Some((1, 24)));
        assert_eq!(locate_item(t, &["examples"], 0), Some((3, 3)));
        assert_eq!(locate_item(t, &["examples"], 1), Some((5, 3)));
        assert_eq!(locate_item(t, &["l"], 1), Some((9, 3)));
        // An empty item at the end of the text is at its `-`.
        assert_eq!(locate_item("l:\n-", &["l"], 0), Some((2, 1)));
        // Not a list: the key.
        assert_eq!(locate_item("l: {a: 1}\n", &["l"], 0), Some((1, 1)));
    }

    #[test]
    fn does_not_leave_the_parent_mapping() {
        assert_eq!(locate(YAML, &["jails", "sshd", "files"]), None);
        assert_eq!(locate(YAML, &["nope"]), None);
        assert_eq!(locate("a: {b: {c: 1}}\nc: 2\n", &["a", "c"]), None);
        // A key as a value, or in a list, is no key of the mapping.
        assert_eq!(locate("a: b\nx: [b]\n", &["b"]), None);
        assert_eq!(locate("- a: 1\n", &["a"]), None);
    }

    #[test]
    fn what_the_parser_cannot_read_is_walked_up_to_its_error() {
        assert_eq!(locate("a: 1\nb: [\n", &["a"]), Some((1, 1)));
        assert_eq!(locate("a: [\nb: 1\n", &["b"]), None);
        assert_eq!(locate("", &["a"]), None);
        assert_eq!(locate(": v\n", &[""]), None, "an empty key is not written");
        assert_eq!(locate("a: 1\n---\nb: 2\n", &["b"]), None, "first document only");
    }

    #[test]
    fn an_alias_is_not_followed() {
        let t = "a: &x {k: 1}\nb: *x\n";
        assert_eq!(locate(t, &["a", "k"]), Some((1, 8)));
        assert_eq!(locate(t, &["b", "k"]), None);
        assert_eq!(locate_nearest(t, &["b", "k"]), Some((2, 1)));
    }
}
