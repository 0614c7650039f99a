//! The sources stage: where log lines come from.
//!
//! Each source runs on its own thread and hands complete lines to a
//! callback; what a source saw (lines, cuts, bad UTF-8, whether the file is
//! there at all) is kept in [`SourceStats`] so `nftban status` can say why a
//! jail sees nothing (seed FAQ row 6).

pub mod file;
pub mod glob;
pub mod journal;
pub mod stdin;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

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
