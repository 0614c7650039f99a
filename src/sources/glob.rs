//! Follow every file a glob pattern matches (`/var/log/asterisk/*.log`).
//!
//! Wildcards (`*`, `?`, `[...]`, as in the shell) are allowed in the file
//! name only: the folder is watched with inotify, as for a single file, and
//! read again on every event about a matching name (and on the one-second
//! tick), so a file created later is read from its start.
//!
//! The pitfall of fail2ban's globs is rotation: `messages*` also matches
//! `messages.1`, which is yesterday's `messages` under a new name. Reading
//! it from its start would count its lines twice. So when a tail leaves a
//! file (renamed, deleted, replaced or truncated), its last position and the
//! file's head are remembered; a file that shows up later with the same head
//! is that file again and is read on from where the tail stopped. A file
//! whose head is the start of a known one (a copy in progress, as
//! `copytruncate` makes) waits until the copy is complete. The same head
//! check against the saved positions covers rotations while nftban was
//! stopped. Heads shorter than [`HEAD`] (1 KiB) are too likely to be
//! equal by chance (two files that start with the same line) to prove
//! anything: such a file is recognised only by its inode, while nftban runs.
//! Compressed files (`.gz`, `.xz`, `.zst`, `.bz2`, ...) are
//! skipped: they hold old lines, in a form a tail cannot read. Folders are
//! not files of the pattern; anything else that is not a regular file (a
//! FIFO, a device, a socket) is listed with its files, unreadable, so that
//! status says why it is not read, and is read once a regular file takes
//! its place (see `sources::regular`: nothing else is ever opened).

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::file::{FileTail, Left, Position, StartAt, HEAD};
use super::watch::FolderWatch;
use super::{Checkpoint, Context, Sink, Source, SourceState, SourceStats};
use crate::regular;

/// File name endings of compressed (rotated) logs, never read.
const COMPRESSED: &[&str] = &[".gz", ".xz", ".zst", ".bz2", ".lz4", ".lzma", ".Z", ".zip"];

/// How long a new file whose head looks like a copy of a known file (or
/// that is still empty) may wait before it is read anyway.
const SETTLE: Duration = Duration::from_secs(5);

/// How many left files are remembered to recognise them under a new name.
const REMEMBERED: usize = 256;

/// Whether `path` is a pattern: its file name holds a wildcard.
pub fn is_pattern(path: &Path) -> bool {
    path.file_name().is_some_and(has_wildcard)
}

/// Whether a path component holds `*`, `?` or `[`.
pub fn has_wildcard(part: &OsStr) -> bool {
    part.as_bytes().iter().any(|b| matches!(b, b'*' | b'?' | b'['))
}

/// Whether a file name is that of a compressed file.
fn is_compressed(name: &OsStr) -> bool {
    let name = name.as_bytes();
    COMPRESSED.iter().any(|ext| name.ends_with(ext.as_bytes()))
}

/// Shell matching of one file name against the pattern's file name, by the
/// glob crate: `*`, `?`, `[...]`, `[!...]`, and a leading dot matched only
/// by a dot (as `fnmatch(3)` with `FNM_PERIOD`). `?` is one character, not
/// one byte; a backslash is no escape (`[*]` matches a `*`); a pattern the
/// crate rejects (an unclosed `[`, `**` within a name) matches nothing.
/// Bytes that are not UTF-8 are matched as U+FFFD, so `*` takes them.
fn name_matches(pattern: &OsStr, name: &OsStr) -> bool {
    const OPTIONS: ::glob::MatchOptions = ::glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    ::glob::Pattern::new(&pattern.to_string_lossy()).is_ok_and(|p| p.matches_with(&name.to_string_lossy(), OPTIONS))
}

/// Whether the file name of a pattern can be read as one (an unclosed `[`
/// cannot), with the reason if not.
pub fn check_pattern(pattern: &Path) -> Result<(), ::glob::PatternError> {
    let name = pattern.file_name().unwrap_or_default();
    ::glob::Pattern::new(&name.to_string_lossy()).map(|_| ())
}

/// Whether `path` is one `pattern` stands for (same folder, matching name),
/// compressed or not.
fn path_matches(pattern: &Path, path: &Path) -> bool {
    match (pattern.file_name(), path.file_name()) {
        (Some(p), Some(n)) => pattern.parent() == path.parent() && name_matches(p, n),
        _ => false,
    }
}

/// The files `pattern` matches now, sorted: every entry but folders (and
/// links to them) and broken links, compressed ones left out. A missing
/// folder matches nothing. What is not a regular file is in the list, to
/// be reported unreadable (never opened: `FileTail` checks).
pub fn expand(pattern: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return vec![];
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| name_matches(name, &e.file_name()) && !is_compressed(&e.file_name()))
        .map(|e| e.path())
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| !m.is_dir()))
        .collect();
    out.sort();
    out
}

/// The first bytes of a file (up to [`HEAD`]) and its length; `None` if
/// it cannot be read or is not a regular file (which is not opened: a FIFO
/// must not block the reader).
fn head_of(path: &Path) -> Option<(Vec<u8>, u64, (u64, u64))> {
    let (f, meta) = regular::open(path).ok()?;
    let mut buf = vec![0u8; meta.len().min(HEAD) as usize];
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => return None,
        }
    }
    buf.truncate(got);
    Some((buf, meta.len(), (meta.dev(), meta.ino())))
}

/// Where to start a file found at start-up: where an earlier run stopped
/// in it, under this name or another one of the pattern (it was rotated
/// meanwhile), recognised by its head; else at its start if this name was
/// read before (the file was replaced while nftban was stopped); else at
/// its end, as for a file nftban never saw.
fn start_at_startup(path: &Path, saved: &BTreeMap<PathBuf, Position>) -> StartAt {
    let Some((head, len, _)) = head_of(path) else {
        return StartAt::End;
    };
    let same = saved.get(path).into_iter();
    let others = saved.iter().filter(|(p, _)| p.as_path() != path).map(|(_, pos)| pos);
    for pos in same.chain(others) {
        let n = pos.head_len as usize;
        // Another name's position proves something only with a full head.
        let known = n as u64 == HEAD || saved.get(path) == Some(pos);
        if known && head.len() >= n && super::file::fnv1a(&head[..n]) == pos.head_hash && len >= pos.offset {
            return StartAt::Resume(*pos);
        }
    }
    if saved.contains_key(path) {
        StartAt::Beginning
    } else {
        StartAt::End
    }
}

/// One file of the pattern being followed.
struct Member {
    tail: FileTail,
    stats: Arc<SourceStats>,
    last: Option<Position>,
}

/// The reader of one pattern.
struct Glob {
    pattern: PathBuf,
    stats: Arc<SourceStats>,
    members: BTreeMap<PathBuf, Member>,
    /// Files left behind by tails, to recognise them under a new name.
    left: VecDeque<Left>,
    /// New files not read yet (a copy in progress, or still empty), and
    /// since when.
    waiting: BTreeMap<PathBuf, Instant>,
}

impl Glob {
    fn add(&mut self, path: PathBuf, start: StartAt, on_line: &mut dyn FnMut(&SourceStats, &str)) {
        let stats = Arc::new(SourceStats::member_of(path.clone(), &self.stats));
        let mut tail = FileTail::new(&path, stats.clone()).without_rotation();
        let member_stats = stats.clone();
        let mut emit = |l: &str| on_line(&member_stats, l);
        tail.check(start, &mut emit);
        let _ = tail.read_available(&mut emit);
        match start {
            StartAt::Resume(p) => {
                tracing::info!(pattern = %self.pattern.display(), file = %path.display(), offset = p.offset, "file matches the pattern; reading on from where nftban stopped in it")
            }
            StartAt::Beginning => {
                tracing::info!(pattern = %self.pattern.display(), file = %path.display(), "new file matches the pattern; reading it from its start")
            }
            StartAt::End => {
                tracing::info!(pattern = %self.pattern.display(), file = %path.display(), "file matches the pattern; reading what is written from now on")
            }
        }
        self.members.insert(
            path,
            Member {
                tail,
                stats,
                last: None,
            },
        );
        self.publish();
    }

    /// Where to start a file that appeared while running, or `None` to
    /// look again later.
    fn decide(&mut self, path: &Path) -> Option<StartAt> {
        // Unreadable: follow it anyway, so status says why.
        let Some((head, len, id)) = head_of(path) else {
            return Some(StartAt::Beginning);
        };
        // The same file as one being read (a rename not seen yet, or a hard link).
        if self.members.values().any(|m| m.tail.identity() == Some(id)) {
            return None;
        }
        // A file left under another name (rename rotation): on from where
        // reading stopped in it.
        if let Some(l) = self.left.iter().rev().find(|l| l.id == id) {
            self.waiting.remove(path);
            return Some(StartAt::Resume(l.pos));
        }
        let since = *self.waiting.entry(path.to_path_buf()).or_insert_with(Instant::now);
        let settled = since.elapsed() >= SETTLE;
        // The members as their tails read them, not as their paths hold
        // them now: a member truncated since its tail last looked
        // (copytruncate) would otherwise no longer own its copy.
        let live: Vec<Left> = self.members.values_mut().filter_map(|m| m.tail.reading()).collect();
        let left = self.left.iter().rev().map(|k| (k, true));
        for (k, gone) in left.chain(live.iter().map(|k| (k, false))) {
            // A short head may be equal by chance: only a full one tells a copy.
            if k.head.len() as u64 != HEAD {
                continue;
            }
            let n = k.head.len();
            let related = if head.len() >= n {
                head[..n] == k.head[..]
            } else {
                k.head.starts_with(&head)
            };
            if !related {
                continue;
            }
            let complete = head.len() >= n;
            if complete && (gone || settled) {
                // The same file under a new name (or a finished copy of
                // one being read): on from where reading stopped in it.
                let pos = Position {
                    offset: k.pos.offset.min(len),
                    head_len: n as u64,
                    head_hash: super::file::fnv1a(&k.head),
                };
                if len >= k.pos.offset || settled {
                    self.waiting.remove(path);
                    return Some(StartAt::Resume(pos));
                }
            }
            if !settled {
                return None;
            }
        }
        self.waiting.remove(path);
        Some(StartAt::Beginning)
    }

    /// One pass: read every member (each notices its own rotation), drop
    /// the ones whose name no longer names their file, then pick up new
    /// matching files.
    fn pass(&mut self, on_line: &mut dyn FnMut(&SourceStats, &str), on_position: &mut dyn FnMut(&Path, Position)) {
        let mut gone = Vec::new();
        for (path, m) in self.members.iter_mut() {
            let stats = m.stats.clone();
            let mut handed = false;
            let mut emit = |l: &str| {
                handed = true;
                on_line(&stats, l)
            };
            m.tail.check(StartAt::Beginning, &mut emit);
            let _ = m.tail.read_available(&mut emit);
            if let Some(l) = m.tail.take_left() {
                self.left.push_back(l);
                if self.left.len() > REMEMBERED {
                    self.left.pop_front();
                }
            }
            // After every read that handed out lines, even at the same
            // position: the caller may hold what they gave until then.
            if let Some(pos) = m.tail.position().filter(|p| Some(*p) != m.last || handed) {
                m.last = Some(pos);
                on_position(path, pos);
            }
            if !m.tail.is_open() && !matches!(m.stats.state(), SourceState::Unreadable(_)) {
                gone.push(path.clone());
            }
        }
        for path in &gone {
            tracing::info!(pattern = %self.pattern.display(), file = %path.display(), "file no longer under this name; stopped reading it");
            self.members.remove(path);
        }
        if !gone.is_empty() {
            self.publish();
        }
        let found = expand(&self.pattern);
        self.waiting.retain(|p, _| found.contains(p));
        for path in found {
            if self.members.contains_key(&path) {
                continue;
            }
            if let Some(start) = self.decide(&path) {
                self.add(path.clone(), start, on_line);
                if let Some(m) = self.members.get_mut(&path) {
                    if let Some(pos) = m.tail.position() {
                        m.last = Some(pos);
                        on_position(&path, pos);
                    }
                }
            }
        }
    }

    /// Tell status which files match now.
    fn publish(&self) {
        self.stats
            .set_members(self.members.values().map(|m| m.stats.clone()).collect());
        self.stats.set_state(if self.members.is_empty() {
            SourceState::NoMatch
        } else {
            SourceState::Reading
        });
    }
}

/// Every file a glob pattern matches (see the module doc).
pub struct GlobSource {
    pattern: PathBuf,
}

impl GlobSource {
    pub fn new(pattern: PathBuf) -> GlobSource {
        GlobSource { pattern }
    }
}

impl Source for GlobSource {
    fn label(&self) -> String {
        self.pattern.display().to_string()
    }

    fn follow(self: Box<Self>, ctx: Context, sink: &mut dyn Sink) {
        // The saved positions of the files this pattern stands for.
        let saved: BTreeMap<PathBuf, Position> = ctx
            .saved
            .positions
            .iter()
            .map(|(p, pos)| (PathBuf::from(p), *pos))
            .filter(|(p, _)| path_matches(&self.pattern, p))
            .collect();
        let sink = std::cell::RefCell::new(sink);
        follow(
            &self.pattern,
            ctx.stats,
            ctx.stop,
            &saved,
            |from: &SourceStats, line: &str| sink.borrow_mut().line(from, line, None),
            |file: &Path, position| {
                let path = file.display().to_string();
                sink.borrow_mut().read_done(Some(Checkpoint::File { path, position }))
            },
        );
    }
}

/// Follow every file `pattern` matches until `stop` is set. `saved` holds
/// the positions an earlier run stored for files of this pattern;
/// `on_line` gets each line with the stats of its file (to count matches),
/// `on_position` each file's reading position once its lines are handed out
/// (after every read that handed out a line).
fn follow(
    pattern: &Path,
    stats: Arc<SourceStats>,
    stop: Arc<AtomicBool>,
    saved: &BTreeMap<PathBuf, Position>,
    mut on_line: impl FnMut(&SourceStats, &str),
    mut on_position: impl FnMut(&Path, Position),
) {
    let mut glob = Glob {
        pattern: pattern.to_path_buf(),
        stats,
        members: BTreeMap::new(),
        left: VecDeque::new(),
        waiting: BTreeMap::new(),
    };
    let mut watch = FolderWatch::new(pattern);
    let found = expand(pattern);
    if found.is_empty() {
        tracing::info!(pattern = %pattern.display(), "no file matches {} yet", pattern.display());
    }
    for path in found {
        let start = start_at_startup(&path, saved);
        glob.add(path, start, &mut on_line);
    }
    glob.publish();
    glob.pass(&mut on_line, &mut on_position);
    let name = pattern.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    while !stop.load(Ordering::Relaxed) {
        let mut relevant = false;
        let woke = watch.wait(|ev_name, _| relevant |= ev_name.is_none_or(|n| name_matches(&name, n)));
        if relevant || !woke || !glob.waiting.is_empty() {
            watch.reading();
            glob.pass(&mut on_line, &mut on_position);
        }
    }
}

#[cfg(test)]
mod tests;
