//! The sources stage: where log lines come from.
//!
//! Every kind of source (a file, a glob pattern, standard input, the
//! journal) implements [`Source`]: it runs on its own thread, hands each
//! complete line to a [`Sink`], and after each read says where reading
//! stands (a [`Checkpoint`]: a file position, a journal cursor) so that a
//! restart resumes there, reading each line once. What a source saw (lines,
//! cuts, bad UTF-8, whether the file is there at all) is kept in
//! [`SourceStats`], and [`SourceStats::status`] turns it into words, so
//! `nftban status` can say why a jail sees nothing (docs/faq.md row 6).
//!
//! A line is matched whole or not at all. The rules are anchored at the
//! line's end so that text an attacker put earlier in the line cannot take
//! the place of what the service wrote after it; a line cut short would
//! give that end to the attacker (a SIP From padded until the cut falls
//! right after a forged `failed for '6.6.6.6'`). So a line longer than
//! [`MAX_LINE`] is skipped, counted (`truncated` in status) and logged at
//! most once a minute per source ([`crate::throttle`]), never matched in part; and
//! `nftban test` skips the same lines (`crate::scan`).
//!
//! Adding a kind of source is one module here that implements [`Source`],
//! plus one line where the daemon lists a jail's sources
//! (`daemon::reader::sources_of`).

pub mod file;
pub mod glob;
pub mod journal;
mod status;
pub mod stdin;
mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use crate::throttle::Throttle;
use file::Position;

/// The longest line matched, in bytes (without its newline; a `\r` before
/// it counts): longer ones are skipped whole, unmatched (see the module
/// doc). No legitimate log line comes near it: a SIP message over UDP is at
/// most 64 KiB, so no field an attacker pads in one can reach it; and a
/// source never holds more than this of a line in memory. The same limit
/// for files, glob patterns, stdin, the journal and `nftban test`.
pub const MAX_LINE: usize = 1 << 20;

/// Where reading of a source stands: saved in the ban history together with
/// the bans and failures of the lines before it, so that a restart resumes
/// there without losing or repeating a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// A file's position (for a glob pattern, each of its files').
    File { path: String, position: Position },
    /// The journal's cursor after the last entry read, per set of matches.
    Journal { source: String, cursor: String },
}

/// The checkpoints an earlier run saved: file positions by path, journal
/// cursors by source label.
#[derive(Debug, Clone, Default)]
pub struct Saved {
    pub positions: HashMap<String, Position>,
    pub cursors: HashMap<String, String>,
}

/// Where a source hands what it reads.
pub trait Sink {
    /// One complete line, from the file whose stats are `from` (one file of
    /// a glob pattern, else the source's own), with the time the source
    /// knows it was written (a journal entry's), if it knows one.
    fn line(&mut self, from: &SourceStats, line: &str, at: Option<SystemTime>);

    /// The end of one read: every line before this has been handed out;
    /// `checkpoint` is where reading stands now (none for stdin, whose lines
    /// cannot be read again).
    fn read_done(&mut self, checkpoint: Option<Checkpoint>);
}

/// What a source runs with.
pub struct Context {
    /// Its figures and state, shared with `status`.
    pub stats: Arc<SourceStats>,
    /// Set when the daemon stops.
    pub stop: Arc<AtomicBool>,
    /// Where an earlier run stopped reading.
    pub saved: Arc<Saved>,
}

/// A source of log lines.
pub trait Source: Send {
    /// How status and logs name it; jails that name the same source share
    /// one reader.
    fn label(&self) -> String;

    /// Read until `ctx.stop` is set, handing lines and checkpoints to
    /// `sink`. Never returns an error: problems go to `ctx.stats` (for
    /// status) and the log, and reading is retried.
    fn follow(self: Box<Self>, ctx: Context, sink: &mut dyn Sink);
}

/// Whether a source can be read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", content = "error", rename_all = "snake_case")]
pub enum SourceState {
    /// Not looked at yet.
    Starting,
    /// The file does not exist (yet).
    Missing,
    /// The file exists but cannot be read; the reason.
    Unreadable(String),
    /// Open and followed.
    Reading,
    /// A glob pattern that matches no file (yet).
    NoMatch,
    /// Standard input reached its end: no more lines will come.
    Closed,
}

/// Counters and state of one source of one jail, shared with the daemon.
#[derive(Debug)]
pub struct SourceStats {
    pub path: PathBuf,
    state: Mutex<SourceState>,
    /// Complete lines read.
    pub lines: AtomicU64,
    /// Lines that matched a failregex (with an address or not).
    pub matched: AtomicU64,
    /// Matched lines dated before their jail's `findtime`: not counted.
    pub too_old: AtomicU64,
    /// Lines longer than [`MAX_LINE`], skipped unmatched (the name is the
    /// status field's, from when such lines were cut).
    pub truncated: AtomicU64,
    /// Lines with invalid UTF-8 (read lossily).
    pub invalid_utf8: AtomicU64,
    /// When to log the next over-long line, and the next invalid UTF-8
    /// (for a glob pattern's file: its pattern's, so once per source).
    too_long_log: Mutex<Throttle>,
    invalid_utf8_log: Mutex<Throttle>,
    /// When a line last matched.
    last_match: Mutex<Option<SystemTime>>,
    /// For a file a glob pattern matches: the pattern's stats, which count
    /// the lines of all its files.
    parent: Option<Arc<SourceStats>>,
    /// For a glob pattern: the files it matches now.
    members: Mutex<Vec<Arc<SourceStats>>>,
}

impl SourceStats {
    pub fn new(path: PathBuf) -> SourceStats {
        SourceStats {
            path,
            state: Mutex::new(SourceState::Starting),
            lines: AtomicU64::new(0),
            matched: AtomicU64::new(0),
            too_old: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            invalid_utf8: AtomicU64::new(0),
            too_long_log: Mutex::new(Throttle::default()),
            invalid_utf8_log: Mutex::new(Throttle::default()),
            last_match: Mutex::new(None),
            parent: None,
            members: Mutex::new(Vec::new()),
        }
    }

    /// Stats of one file of a glob pattern: its counts add up in `pattern`.
    pub fn member_of(path: PathBuf, pattern: &Arc<SourceStats>) -> SourceStats {
        SourceStats {
            parent: Some(pattern.clone()),
            ..SourceStats::new(path)
        }
    }

    /// The files a glob pattern matches now (empty for other sources).
    pub fn members(&self) -> Vec<Arc<SourceStats>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_members(&self, members: Vec<Arc<SourceStats>>) {
        *self.members.lock().unwrap_or_else(|e| e.into_inner()) = members;
    }

    /// Count one complete line read (here and in the pattern).
    pub fn count_line(&self) {
        self.lines.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.count_line();
        }
    }

    /// Count a line longer than [`MAX_LINE`], skipped (here and in the
    /// pattern). `Some(n)` when it is to be logged now, `n` such lines
    /// since the last message of this source (at most one a minute).
    pub fn count_too_long(&self, now: Instant) -> Option<u64> {
        self.truncated.fetch_add(1, Ordering::Relaxed);
        match &self.parent {
            Some(p) => p.count_too_long(now),
            None => lock(&self.too_long_log).note(now),
        }
    }

    /// Count a line with invalid UTF-8; `Some(n)` as for
    /// [`count_too_long`](Self::count_too_long).
    pub fn count_invalid_utf8(&self, now: Instant) -> Option<u64> {
        self.invalid_utf8.fetch_add(1, Ordering::Relaxed);
        match &self.parent {
            Some(p) => p.count_invalid_utf8(now),
            None => lock(&self.invalid_utf8_log).note(now),
        }
    }

    /// A line longer than `max_line` (which is [`MAX_LINE`] but in tests):
    /// counted as a line read and as skipped, and logged at most once a
    /// minute per source, so a flood of such lines floods no log.
    pub fn skip_too_long(&self, max_line: usize) {
        self.count_line();
        if let Some(n) = self.count_too_long(Instant::now()) {
            tracing::warn!(
                source = %self.path.display(),
                "line longer than {max_line} bytes skipped, not matched: a line is matched whole or not at all \
                 ({n} such line(s) since the last message; said at most once a minute)"
            );
        }
    }

    /// A line with invalid UTF-8, matched with the bad bytes replaced:
    /// counted, and logged at most once a minute per source.
    pub fn note_invalid_utf8(&self) {
        if let Some(n) = self.count_invalid_utf8(Instant::now()) {
            tracing::warn!(
                source = %self.path.display(),
                "line is not valid UTF-8; matched with the bad bytes replaced \
                 ({n} such line(s) since the last message; said at most once a minute)"
            );
        }
    }

    pub fn state(&self) -> SourceState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_state(&self, state: SourceState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    pub fn note_match(&self, at: SystemTime) {
        self.matched.fetch_add(1, Ordering::Relaxed);
        *self.last_match.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
        if let Some(p) = &self.parent {
            p.note_match(at);
        }
    }

    /// A matched line too old to count (once per line, whatever jails
    /// share the source).
    pub fn note_too_old(&self) {
        self.too_old.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.note_too_old();
        }
    }

    pub fn last_match(&self) -> Option<SystemTime> {
        *self.last_match.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A poisoned lock still holds good figures: a panic elsewhere must not
/// take a source's accounting down with it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Over-long lines and invalid UTF-8 are logged at most once a minute
    /// per source: the files of a glob pattern share their pattern's
    /// throttle, while each file and the pattern count every line.
    #[test]
    fn a_patterns_files_share_one_log_throttle() {
        let pattern = Arc::new(SourceStats::new("/var/log/*.log".into()));
        let a = SourceStats::member_of("/var/log/a.log".into(), &pattern);
        let b = SourceStats::member_of("/var/log/b.log".into(), &pattern);
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        assert_eq!(a.count_too_long(t0), Some(1));
        assert_eq!(b.count_too_long(s(1)), None, "the same source: held back");
        assert_eq!(a.count_too_long(s(60)), Some(2));
        assert_eq!(b.count_invalid_utf8(s(60)), Some(1), "another kind of warning");
        let n = |x: &AtomicU64| x.load(Ordering::Relaxed);
        assert_eq!((n(&a.truncated), n(&b.truncated), n(&pattern.truncated)), (2, 1, 3));
        assert_eq!(n(&pattern.invalid_utf8), 1);
    }
}
