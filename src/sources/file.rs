//! Follow a log file like `tail -F`, driven by inotify.
//!
//! The file's folder is watched, not the file: that way a file that does
//! not exist yet, one that is rotated by rename-and-create, deleted and
//! recreated, or truncated in place is picked up without special cases.
//! Every wake-up (an event, or a one-second tick so nothing depends on
//! inotify alone) does the same two steps: see whether the path now names
//! another file or a shorter one, then read what was appended.
//!
//! Bytes are cut into lines here. Invalid UTF-8 is read lossily, a line
//! longer than [`MAX_LINE`] is skipped whole, unmatched, and counted (see
//! `sources`: a line is matched whole or not at all), and a partial last
//! line waits for its newline. No more than [`MAX_LINE`] bytes of a line are
//! ever held: once a line is known to be longer, its bytes are dropped as
//! they come, up to its newline.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use inotify::EventMask;

use super::watch::FolderWatch;
use super::{Checkpoint, Context, Sink, Source, SourceState, SourceStats, MAX_LINE};
use crate::regular;

/// Where reading starts when the daemon first opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// At the end: only lines written from now on count.
    End,
    /// At the beginning (a file that appears, or a rotated-in file).
    Beginning,
    /// Where an earlier run stopped, if the file is still the same one (its
    /// head matches); else at the beginning: it was replaced meanwhile.
    Resume(Position),
}

/// How many bytes of a file's head make its fingerprint.
pub const HEAD: u64 = 1024;
/// Bytes asked for per `read`.
const READ_BUFFER: usize = 64 * 1024;

/// Where reading of a file stands: enough to resume after a restart
/// without losing or repeating a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Just after the last complete line handed out.
    pub offset: u64,
    /// Fingerprint: how many head bytes (up to [`HEAD`]) and their FNV-1a hash.
    pub head_len: u64,
    pub head_hash: u64,
}

/// FNV-1a, 64 bit: stable across runs and Rust versions, unlike std's hasher.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Fingerprint of the first `len` bytes of `file`, or `None` if it has fewer.
fn head_hash(file: &File, len: u64) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0).ok()?;
    Some(fnv1a(&buf))
}

/// A file a tail has left: where reading stopped, its head bytes (up to
/// [`HEAD`]) and (device, inode), to recognise it under another name.
#[derive(Debug, Clone)]
pub struct Left {
    pub pos: Position,
    pub head: Vec<u8>,
    pub id: (u64, u64),
}

/// The reading state of one followed file.
pub struct FileTail {
    path: PathBuf,
    file: Option<File>,
    /// (device, inode) of the open file, to notice rotation.
    id: (u64, u64),
    offset: u64,
    /// File offset just after the last newline consumed.
    committed: u64,
    /// Cached fingerprint once the file's head is complete.
    head: Option<(u64, u64)>,
    /// The head bytes (up to [`HEAD`]) as last read, to recognise this
    /// file under another name after it is left (see `sources::glob`).
    head_bytes: Vec<u8>,
    /// Reopen the path when it names another file (a single file source);
    /// a glob pattern's reader decides itself instead.
    reopen: bool,
    /// The file last left (rotated away, gone, or truncated), until taken.
    left: Option<Left>,
    /// The start of a line whose newline has not come yet (never more than
    /// `max_line` bytes, nor more capacity).
    pending: Vec<u8>,
    /// Inside a line over the limit (already counted): its bytes are
    /// dropped up to its newline.
    skipping: bool,
    max_line: usize,
    stats: Arc<SourceStats>,
    /// The read buffer, kept between calls: a busy log is read many times
    /// a second, and zeroing the buffer each time showed in profiles.
    buf: Vec<u8>,
}

impl FileTail {
    pub fn new(path: &Path, stats: Arc<SourceStats>) -> FileTail {
        FileTail {
            path: path.to_path_buf(),
            file: None,
            id: (0, 0),
            offset: 0,
            committed: 0,
            head: None,
            head_bytes: Vec::new(),
            reopen: true,
            left: None,
            pending: Vec::new(),
            skipping: false,
            max_line: MAX_LINE,
            stats,
            buf: Vec::new(),
        }
    }

    /// Do not reopen the path when it names another file: the tail just
    /// closes (a glob pattern's reader then decides where the new file
    /// starts).
    pub fn without_rotation(mut self) -> FileTail {
        self.reopen = false;
        self
    }

    /// Whether a file is open.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// (device, inode) of the open file.
    pub fn identity(&self) -> Option<(u64, u64)> {
        self.file.as_ref().map(|_| self.id)
    }

    /// Where reading of the open file stands, with its head as this tail
    /// read it and its identity: what a copy of it is recognised by. Not
    /// the head the path holds now: a copytruncate may already have
    /// emptied it, and the copy would then look like a stranger.
    pub fn reading(&mut self) -> Option<Left> {
        let pos = self.position()?;
        Some(Left {
            pos,
            head: self.head_bytes.clone(),
            id: self.id,
        })
    }

    /// The file last left, once.
    pub fn take_left(&mut self) -> Option<Left> {
        self.left.take()
    }

    /// Remember where reading of the open file stands before leaving it;
    /// `reread` takes the head from the file (not after a truncation,
    /// which already destroyed it).
    fn leave(&mut self, reread: bool) {
        if self.file.is_none() {
            return;
        }
        if reread {
            self.head = None;
            let _ = self.position();
        }
        self.left = Some(Left {
            pos: Position {
                offset: self.committed,
                head_len: self.head_bytes.len() as u64,
                head_hash: fnv1a(&self.head_bytes),
            },
            head: self.head_bytes.clone(),
            id: self.id,
        });
    }

    /// Where reading stands, for resuming after a restart; `None` while no
    /// file is open.
    pub fn position(&mut self) -> Option<Position> {
        let file = self.file.as_ref()?;
        let (head_len, head_hash) = match self.head {
            Some(h) => h,
            None => {
                use std::os::unix::fs::FileExt;
                let len = file.metadata().map(|m| m.len()).unwrap_or(0).min(HEAD);
                let mut buf = vec![0u8; len as usize];
                let (len, hash) = match file.read_exact_at(&mut buf, 0) {
                    Ok(()) => (len, fnv1a(&buf)),
                    Err(_) => {
                        buf.clear();
                        (0, fnv1a(&[]))
                    }
                };
                self.head_bytes = buf;
                if len == HEAD {
                    self.head = Some((len, hash));
                }
                (len, hash)
            }
        };
        Some(Position {
            offset: self.committed,
            head_len,
            head_hash,
        })
    }

    /// Set the line length limit (tests use a small one).
    #[cfg(test)]
    pub fn with_max_line(mut self, max: usize) -> FileTail {
        self.max_line = max;
        self
    }

    /// Open the file if it is not open, or reopen it if the path now names
    /// another file (rotation) or the file got shorter (truncation). Reading
    /// of the old file is finished first so its last lines are not lost.
    /// Only a regular file is opened (`sources::regular`): anything else at
    /// the path is reported unreadable, and looked at again next time.
    pub fn check(&mut self, start: StartAt, on_line: &mut dyn FnMut(&str)) {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) => {
                if self.file.is_some() {
                    // Deleted or renamed away: finish what was written.
                    let _ = self.read_available(on_line);
                    self.leave(true);
                    self.file = None;
                    tracing::info!(file = %self.path.display(), "log file is gone; waiting for it to come back");
                }
                if e.kind() == io::ErrorKind::NotFound {
                    self.set_state(SourceState::Missing);
                } else {
                    self.unreadable(e.to_string());
                }
                return;
            }
        };
        if let Err(e) = regular::check(&self.path, &meta) {
            if self.file.is_some() {
                // Replaced by what cannot be read: finish the old file.
                let _ = self.read_available(on_line);
                self.leave(true);
                self.file = None;
            }
            self.unreadable(e.to_string());
            return;
        }
        let id = (meta.dev(), meta.ino());
        if self.file.is_some() && id != self.id {
            let _ = self.read_available(on_line);
            self.leave(true);
            self.file = None;
            if !self.reopen {
                return;
            }
            tracing::info!(file = %self.path.display(), "log file was rotated; reading the new one from its start");
            return self.open(StartAt::Beginning);
        }
        if self.file.is_some() && meta.len() < self.offset {
            tracing::info!(file = %self.path.display(), "log file was truncated; reading from its start");
            self.leave(false);
            self.offset = 0;
            self.committed = 0;
            self.head = None;
            self.pending.clear();
            self.skipping = false;
            if let Some(f) = self.file.as_mut() {
                let _ = f.seek(SeekFrom::Start(0));
            }
        }
        if self.file.is_none() {
            self.open(start);
        }
    }

    /// Open the path, if it names a regular file, where `start` says; its
    /// length and identity are those of the file opened.
    fn open(&mut self, start: StartAt) {
        let (mut f, meta) = match regular::open(&self.path) {
            Ok(opened) => opened,
            Err(e) => return self.unreadable(e.to_string()),
        };
        let (len, id) = (meta.len(), (meta.dev(), meta.ino()));
        let offset = match start {
            StartAt::End => len,
            StartAt::Beginning => 0,
            StartAt::Resume(pos) if head_hash(&f, pos.head_len) == Some(pos.head_hash) => {
                if len < pos.offset {
                    tracing::info!(file = %self.path.display(), "log file is shorter than where nftban stopped (truncated meanwhile); reading from its start");
                    0
                } else {
                    if len > pos.offset {
                        tracing::info!(file = %self.path.display(), bytes = len - pos.offset, "reading what was written while nftban was stopped");
                    }
                    pos.offset
                }
            }
            StartAt::Resume(_) => {
                tracing::info!(file = %self.path.display(), "log file was replaced while nftban was stopped; reading the new one from its start");
                0
            }
        };
        if let Err(e) = f.seek(SeekFrom::Start(offset)) {
            return self.unreadable(e.to_string());
        }
        self.file = Some(f);
        self.id = id;
        self.offset = offset;
        self.committed = offset;
        self.head = None;
        self.pending.clear();
        self.skipping = false;
        self.set_state(SourceState::Reading);
        tracing::debug!(file = %self.path.display(), offset, "opened log file");
    }

    /// The path cannot be read, for `why`: said in status, and logged when
    /// the reason is new (not at every look: the path is looked at again
    /// every second).
    fn unreadable(&self, why: String) {
        let state = SourceState::Unreadable(why);
        if self.stats.state() != state {
            if let SourceState::Unreadable(why) = &state {
                tracing::warn!(file = %self.path.display(), "cannot read log file: {why}; looking again every second");
            }
        }
        self.set_state(state);
    }

    fn set_state(&self, state: SourceState) {
        self.stats.set_state(state);
    }

    /// Read everything appended since the last call and hand out complete lines.
    pub fn read_available(&mut self, on_line: &mut dyn FnMut(&str)) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(READ_BUFFER, 0);
        let result = loop {
            let Some(file) = self.file.as_mut() else { break Ok(()) };
            let n = match file.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Opened non-blocking: a file that has nothing now (not one
                // on a disk, which never says so) is read again next time.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) => {
                    tracing::warn!(file = %self.path.display(), error = %e, "read failed; will retry");
                    self.stats.set_state(SourceState::Unreadable(e.to_string()));
                    break Err(e);
                }
            };
            self.feed(&buf[..n], on_line);
            if n < buf.len() {
                // A short read of a regular file is its end for now (the
                // next write brings another inotify event): spare the read
                // that would return 0, one syscall of about four per wake-up.
                break Ok(());
            }
        };
        self.buf = buf;
        result
    }

    /// After an inotify event that only says the file was written to: read
    /// what was appended without looking the path up again. Returns false
    /// when nothing new was there (the write may have been a truncation,
    /// or the file is not open): the caller then runs the full [`check`](Self::check).
    pub fn read_appended(&mut self, on_line: &mut dyn FnMut(&str)) -> bool {
        let before = self.offset;
        self.file.is_some() && self.read_available(on_line).is_ok() && self.offset > before
    }

    /// Cut bytes read (from a file or a pipe) into lines and hand out the
    /// complete ones; a partial last line waits for the next bytes. A line
    /// longer than the limit is handed out in no part: it is counted when
    /// it is known to be too long, and its bytes dropped up to its newline.
    pub fn feed(&mut self, bytes: &[u8], on_line: &mut dyn FnMut(&str)) {
        let n = bytes.len();
        let start = self.offset;
        self.offset += n as u64;
        let mut chunk = bytes;
        while let Some(nl) = memchr::memchr(b'\n', chunk) {
            let (head, rest) = chunk.split_at(nl);
            chunk = &rest[1..];
            self.committed = start + (n - chunk.len()) as u64;
            if self.skipping {
                // The end of a line already counted as too long.
                self.skipping = false;
                continue;
            }
            if self.pending.len() + head.len() > self.max_line {
                self.pending = Vec::new();
                self.stats.skip_too_long(self.max_line);
            } else if self.pending.is_empty() {
                emit(head, &self.stats, on_line);
            } else {
                self.pending.extend_from_slice(head);
                let line = std::mem::take(&mut self.pending);
                emit(&line, &self.stats, on_line);
            }
        }
        if chunk.is_empty() || self.skipping {
            return;
        }
        if self.pending.len() + chunk.len() > self.max_line {
            // Too long whatever follows: counted now, the rest dropped.
            self.pending = Vec::new();
            self.stats.skip_too_long(self.max_line);
            self.skipping = true;
        } else {
            self.keep(chunk);
        }
    }

    /// Add the start of a line to `pending`, whose length stays within
    /// the limit; its capacity does too (a `Vec` left to grow by itself
    /// could double to twice the limit).
    fn keep(&mut self, part: &[u8]) {
        let need = self.pending.len() + part.len();
        debug_assert!(need <= self.max_line);
        if need > self.pending.capacity() {
            let want = (self.pending.capacity() * 2).clamp(need, self.max_line);
            self.pending.reserve_exact(want - self.pending.len());
        }
        self.pending.extend_from_slice(part);
    }

    /// The input ended (a pipe closed): a last line without its newline
    /// is complete now.
    pub fn finish(&mut self, on_line: &mut dyn FnMut(&str)) {
        if !self.pending.is_empty() && !self.skipping {
            let line = std::mem::take(&mut self.pending);
            emit(&line, &self.stats, on_line);
        }
    }
}

/// Hand out one line (within the limit), its `\r` before the newline
/// dropped, read lossily if it is not UTF-8.
fn emit(bytes: &[u8], stats: &SourceStats, on_line: &mut dyn FnMut(&str)) {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    stats.count_line();
    match std::str::from_utf8(bytes) {
        Ok(line) => on_line(line),
        Err(_) => {
            stats.note_invalid_utf8();
            on_line(&String::from_utf8_lossy(bytes));
        }
    }
}

/// Follow `path` until `stop` is set, calling `on_line` for each new line.
/// Runs on the caller's thread; never returns an error: problems are put in
/// `stats` (for `nftban status`) and logged, and reading is retried.
///
/// `start` says where the first open begins (the end of the file, or where
/// an earlier run stopped); `on_position` gets the reading position after
/// every batch of lines, to be saved once those lines are dealt with. It is
/// called after every read that handed out a line (even if the position
/// came out the same), so a caller may hold what the lines gave until then.
fn follow(
    path: &Path,
    stats: Arc<SourceStats>,
    stop: Arc<AtomicBool>,
    start: StartAt,
    mut on_line: impl FnMut(&str),
    mut on_position: impl FnMut(Position),
) {
    let mut tail = FileTail::new(path, stats);
    let mut last = None;
    let handed = std::cell::Cell::new(false);
    let mut on_line = |line: &str| {
        handed.set(true);
        on_line(line)
    };
    let mut report = |tail: &mut FileTail| {
        if let Some(pos) = tail.position().filter(|p| Some(*p) != last || handed.get()) {
            last = Some(pos);
            on_position(pos);
        }
        handed.set(false);
    };
    let mut watch = FolderWatch::new(path);
    tail.check(start, &mut on_line);
    let _ = tail.read_available(&mut on_line);
    report(&mut tail);
    let name = path.file_name().map(|n| n.to_os_string());
    while !stop.load(Ordering::Relaxed) {
        // Only writes to the file itself: no rename, create, delete or
        // attribute change that would need the path looked up again.
        let (mut relevant, mut only_written) = (false, true);
        let woke = watch.wait(|ev_name, mask| {
            if ev_name.is_none() || ev_name.map(|n| n.to_os_string()) == name {
                relevant = true;
                only_written &= ev_name.is_some() && mask == EventMask::MODIFY;
            }
        });
        // A tick with no event checks too: a folder created after start, or
        // a change inotify did not report, is caught within a second. A
        // plain write is read straight away; if it brought nothing new (a
        // truncation, as copytruncate does), the full check follows.
        if relevant || !woke {
            watch.reading();
            if !(woke && only_written && tail.read_appended(&mut on_line)) {
                tail.check(StartAt::Beginning, &mut on_line);
                let _ = tail.read_available(&mut on_line);
            }
            report(&mut tail);
        }
    }
}

/// A single file, followed like `tail -F` (see the module doc).
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    pub fn new(path: PathBuf) -> FileSource {
        FileSource { path }
    }
}

impl Source for FileSource {
    fn label(&self) -> String {
        self.path.display().to_string()
    }

    fn follow(self: Box<Self>, ctx: Context, sink: &mut dyn Sink) {
        let key = self.label();
        // Where an earlier run stopped, else the end: old lines are not replayed.
        let start = ctx
            .saved
            .positions
            .get(&key)
            .map_or(StartAt::End, |p| StartAt::Resume(*p));
        let stats = ctx.stats.clone();
        let sink = std::cell::RefCell::new(sink);
        follow(
            &self.path,
            ctx.stats,
            ctx.stop,
            start,
            |line| sink.borrow_mut().line(&stats, line, None),
            |position| {
                let path = key.clone();
                sink.borrow_mut().read_done(Some(Checkpoint::File { path, position }))
            },
        );
    }
}

#[cfg(test)]
mod tests;
