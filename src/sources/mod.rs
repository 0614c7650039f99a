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
use std::time::SystemTime;

use file::Position;

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
    /// Lines cut at the length limit.
    pub truncated: AtomicU64,
    /// Lines with invalid UTF-8 (read lossily).
    pub invalid_utf8: AtomicU64,
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
            truncated: AtomicU64::new(0),
            invalid_utf8: AtomicU64::new(0),
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

    /// Count a line cut at the length limit.
    pub fn count_truncated(&self) {
        self.truncated.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.count_truncated();
        }
    }

    /// Count a line with invalid UTF-8.
    pub fn count_invalid_utf8(&self) {
        self.invalid_utf8.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.count_invalid_utf8();
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

    pub fn last_match(&self) -> Option<SystemTime> {
        *self.last_match.lock().unwrap_or_else(|e| e.into_inner())
    }
}
