//! Follow the systemd journal through its own API (sd-journal, via the
//! `systemd` crate), with per-jail matches such as
//! `_SYSTEMD_UNIT=ssh.service`.
//!
//! Matches on the same field are alternatives, matches on different fields
//! must all hold (the journal's own rules, as in `journalctl`). Each entry's
//! `MESSAGE` is one line, and the entry's own timestamp comes with it, so
//! entries read late (after a restart) are judged by when they happened.
//! The cursor after each batch is handed out to be saved; the next start
//! resumes after it, so entries written while nftban was stopped are read,
//! each once.
//!
//! A message is matched whole or not at all, as a file's line: one longer
//! than [`MAX_LINE`] is skipped and counted. sd-journal may return a field
//! cut at its "data threshold" (a hint, 64 KiB by default), which would
//! hand the matcher the head of a long message; the threshold is set just
//! above the limit, so a message over the limit is seen to be over it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use systemd::journal::{Journal, JournalWaitResult, OpenOptions};

fn usec(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros() as u64
}

use super::{Checkpoint, Context, Sink, Source, SourceState, SourceStats, MAX_LINE};

/// Where reading starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum JournalStart {
    /// After the newest entry: only what comes from now on.
    End,
    /// After this cursor (saved by an earlier run).
    After(String),
}

/// Why a journal match cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// No `=` in it (the match as written).
    #[error("`{0}` is not FIELD=value")]
    NotFieldValue(String),
    /// The part before the `=` is not a field name the journal takes.
    #[error("`{0}` is not a journal field name (upper-case letters, digits, `_`)")]
    FieldName(String),
}

/// Check a match: `FIELD=value` with an upper-case field name, as the
/// journal requires. Returns the field and the value.
pub fn parse_match(m: &str) -> Result<(&str, &str), MatchError> {
    let (field, value) = m.split_once('=').ok_or_else(|| MatchError::NotFieldValue(m.into()))?;
    let ok = !field.is_empty()
        && !field.starts_with(|c: char| c.is_ascii_digit())
        && field
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(MatchError::FieldName(field.into()));
    }
    Ok((field, value))
}

/// The socket systemd-journald takes entries on: where it is missing, no
/// journald runs and no entry will come.
pub const JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";

/// Why a `journal:` source will read nothing on this host, if it will not.
pub fn no_journal() -> Option<String> {
    match std::path::Path::new(JOURNALD_SOCKET).exists() {
        true => None,
        false => Some(format!(
            "no systemd journal on this host ({JOURNALD_SOCKET} is missing): no entry will come; read the service's log file instead"
        )),
    }
}

/// A label for status and logs: `journal:FIELD=value,...`.
pub fn label(matches: &[String]) -> String {
    format!("journal:{}", matches.join(","))
}

/// The journal entries that fit a jail's `journal:` matches.
pub struct JournalSource {
    matches: Vec<String>,
}

impl JournalSource {
    pub fn new(matches: Vec<String>) -> JournalSource {
        JournalSource { matches }
    }
}

impl Source for JournalSource {
    fn label(&self) -> String {
        label(&self.matches)
    }

    fn follow(self: Box<Self>, ctx: Context, sink: &mut dyn Sink) {
        let key = self.label();
        let start = match ctx.saved.cursors.get(&key) {
            Some(c) => JournalStart::After(c.clone()),
            None => JournalStart::End,
        };
        let stats = ctx.stats.clone();
        let sink = std::cell::RefCell::new(sink);
        follow(
            &self.matches,
            ctx.stats,
            ctx.stop,
            start,
            // The entry's own time: entries read late are judged by when they happened.
            |line: &str, at: SystemTime| sink.borrow_mut().line(&stats, line, Some(at)),
            |cursor: Option<String>| {
                let checkpoint = cursor.map(|cursor| Checkpoint::Journal {
                    source: key.clone(),
                    cursor,
                });
                sink.borrow_mut().read_done(checkpoint)
            },
        );
    }
}

/// The data threshold: `MESSAGE=` and one byte more than the limit, so a
/// field sd-journal cuts there is still seen to be over the limit.
const DATA_THRESHOLD: usize = "MESSAGE=".len() + MAX_LINE + 1;

/// What one entry's `MESSAGE` value gives the matcher.
#[derive(Debug, PartialEq, Eq)]
enum Message<'a> {
    /// The line (its trailing newlines dropped), and whether it was valid
    /// UTF-8 (if not, it is read with the bad bytes replaced).
    Line(std::borrow::Cow<'a, str>, bool),
    /// Longer than [`MAX_LINE`]: skipped, not matched.
    TooLong,
}

fn message(value: &[u8]) -> Message<'_> {
    let mut end = value.len();
    while end > 0 && value[end - 1] == b'\n' {
        end -= 1;
    }
    let value = &value[..end];
    if value.len() > MAX_LINE {
        return Message::TooLong;
    }
    let valid = std::str::from_utf8(value).is_ok();
    Message::Line(String::from_utf8_lossy(value), valid)
}

fn open(matches: &[String], start: &JournalStart) -> systemd::Result<Journal> {
    let mut j = OpenOptions::default().system(true).local_only(true).open()?;
    j.set_data_threshold(DATA_THRESHOLD)?;
    // Same field: OR (the journal does it); different fields: AND.
    for m in matches {
        if let Ok((field, value)) = parse_match(m) {
            j.match_add(field, value)?;
        }
    }
    match start {
        JournalStart::After(cursor) => {
            j.seek_cursor(cursor.as_str())?;
            // Step onto the saved entry; the loop's next() moves past it.
            if j.next()? == 0 {
                j.seek_tail()?;
                j.previous()?;
            }
        }
        JournalStart::End => {
            // Not seek_tail: on an empty journal sd-journal loses that
            // place when the first file appears, and skips new entries.
            // Seeking to "now" returns every entry from now on.
            j.seek_realtime_usec(usec(SystemTime::now()))?;
        }
    }
    Ok(j)
}

/// Follow the journal until `stop` is set. `on_line` gets each entry's
/// message and time; `on_cursor` the cursor after each batch (`None` if
/// the journal cannot say it). Never returns
/// an error: problems go to `stats` and the log, and opening is retried.
fn follow(
    matches: &[String],
    stats: Arc<SourceStats>,
    stop: Arc<AtomicBool>,
    start: JournalStart,
    mut on_line: impl FnMut(&str, SystemTime),
    mut on_cursor: impl FnMut(Option<String>),
) {
    let mut start = start;
    while !stop.load(Ordering::Relaxed) {
        let mut j = match open(matches, &start) {
            Ok(j) => j,
            Err(e) => {
                let state = SourceState::Unreadable(format!("cannot open the journal: {e}"));
                if stats.state() != state {
                    tracing::warn!(source = %label(matches), error = %e, "cannot open the journal; will retry");
                }
                stats.set_state(state);
                std::thread::sleep(Duration::from_secs(2));
                continue;
            }
        };
        stats.set_state(SourceState::Reading);
        let resume = match &start {
            JournalStart::After(c) => Some(c.clone()),
            JournalStart::End => None,
        };
        match read(&mut j, resume, &stats, &stop, &mut on_line, &mut on_cursor) {
            Ok(()) => return,
            Err((e, cursor)) => {
                tracing::warn!(source = %label(matches), error = %e, "journal read failed; reopening");
                stats.set_state(SourceState::Unreadable(e.to_string()));
                if let Some(c) = cursor {
                    start = JournalStart::After(c);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

type ReadError = (systemd::Error, Option<String>);

fn read(
    j: &mut Journal,
    resume: Option<String>,
    stats: &SourceStats,
    stop: &AtomicBool,
    on_line: &mut impl FnMut(&str, SystemTime),
    on_cursor: &mut impl FnMut(Option<String>),
) -> Result<(), ReadError> {
    let mut cursor: Option<String> = resume;
    let since = usec(SystemTime::now());
    while !stop.load(Ordering::Relaxed) {
        let mut batch = 0;
        loop {
            match j.next() {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err((e, cursor)),
            }
            let at = j.timestamp().unwrap_or_else(|_| SystemTime::now());
            match j.get_data("MESSAGE") {
                Ok(Some(field)) => match field.value().map(message) {
                    Some(Message::Line(line, valid)) => {
                        stats.count_line();
                        if !valid {
                            stats.note_invalid_utf8();
                        }
                        on_line(&line, at);
                    }
                    Some(Message::TooLong) => stats.skip_too_long(MAX_LINE),
                    None => {}
                },
                Ok(None) => {}
                Err(e) => return Err((e, cursor)),
            }
            batch += 1;
            if batch >= 1024 {
                break;
            }
        }
        if batch > 0 {
            let now = j.cursor().ok();
            if now.is_some() {
                cursor.clone_from(&now);
            }
            on_cursor(now);
            continue;
        }
        match j.wait(Some(Duration::from_secs(1))) {
            // Journal files were added or removed (journald started, or
            // rotated): sd-journal may have lost its place, so seek again,
            // past the last entry read, or from when reading began.
            Ok(JournalWaitResult::Invalidate) => {
                let seek = match &cursor {
                    Some(c) => j.seek_cursor(c.as_str()).and_then(|_| j.next().map(|_| ())),
                    None => j.seek_realtime_usec(since),
                };
                if let Err(e) = seek {
                    return Err((e, cursor));
                }
            }
            Ok(_) => {}
            Err(e) => return Err((e, cursor)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_are_checked() {
        assert_eq!(
            parse_match("_SYSTEMD_UNIT=ssh.service"),
            Ok(("_SYSTEMD_UNIT", "ssh.service"))
        );
        assert_eq!(parse_match("SYSLOG_IDENTIFIER=a=b"), Ok(("SYSLOG_IDENTIFIER", "a=b")));
        assert!(parse_match("ssh.service")
            .unwrap_err()
            .to_string()
            .contains("FIELD=value"));
        assert!(parse_match("_systemd_unit=x")
            .unwrap_err()
            .to_string()
            .contains("field name"));
        assert!(parse_match("=x").is_err());
    }

    /// A message is matched whole or not at all: at the limit (trailing
    /// newlines aside) it is a line, one byte over it is skipped; what
    /// sd-journal may cut at its data threshold is still over the limit.
    #[test]
    fn messages_over_the_limit_are_skipped() {
        let at = "x".repeat(MAX_LINE);
        assert_eq!(
            message(format!("{at}\n\n").as_bytes()),
            Message::Line(at.as_str().into(), true)
        );
        assert_eq!(message(format!("{at}y").as_bytes()), Message::TooLong);
        let cut_by_the_threshold = "x".repeat(DATA_THRESHOLD - "MESSAGE=".len());
        assert_eq!(message(cut_by_the_threshold.as_bytes()), Message::TooLong);
        assert_eq!(message(b"bad \xff"), Message::Line("bad \u{fffd}".into(), false));
    }
}
