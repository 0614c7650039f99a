//! Waking a reader: its folder watched with inotify (the folder, not the
//! file, so a file that does not exist yet, or is renamed, deleted and
//! created again, is seen without special cases), a tick when nothing
//! happens, and reads of a busy file paced.

use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use inotify::{EventMask, Inotify, WatchMask};

/// How often the file is checked even without an inotify event.
pub(super) const TICK: Duration = Duration::from_secs(1);

/// Reads of one file are at least this far apart. A program that logs
/// line by line under a flood writes thousands of times a second, and each
/// write woke the reader and then the engine: under a steady flood the
/// wake-ups were most of nftban's CPU. Reading what the gap's writes
/// gathered at once divides them several times over, and adds at most the
/// gap to a ban under a flood; a line after a quiet spell is read at once.
/// The gap was chosen by measurement (docs/performance.md, "Daemon").
const READ_GAP: Duration = Duration::from_millis(5);

/// Keeps reads [`READ_GAP`] apart.
#[derive(Default)]
struct Pacer {
    last: Option<std::time::Instant>,
}

impl Pacer {
    /// Before waiting for the next event: if the last read was less than
    /// the gap ago, sleep out the rest, so writes meanwhile are read
    /// together.
    fn pause(&mut self) {
        if let Some(left) = self.last.take().and_then(|t| READ_GAP.checked_sub(t.elapsed())) {
            std::thread::sleep(left);
        }
    }

    /// A read happened now.
    fn read(&mut self) {
        self.last = Some(std::time::Instant::now());
    }
}

/// The folder of a file or pattern, watched; and the pace of its reads.
pub(super) struct FolderWatch {
    inotify: Option<Inotify>,
    buf: [u8; 4096],
    pacer: Pacer,
}

impl FolderWatch {
    /// Watch the folder of `path` (or tick only, if that cannot be done).
    pub(super) fn new(path: &Path) -> FolderWatch {
        FolderWatch {
            inotify: watch_dir(path),
            buf: [0; 4096],
            pacer: Pacer::default(),
        }
    }

    /// Wait for events about the folder, at most [`TICK`], after sleeping
    /// out what is left of [`READ_GAP`] since the last read. `event` gets
    /// each event's file name (`None`: the folder itself) and mask. Returns
    /// whether events came (`false`: a tick, or no inotify).
    pub(super) fn wait(&mut self, mut event: impl FnMut(Option<&OsStr>, EventMask)) -> bool {
        self.pacer.pause();
        let Some(ino) = self.inotify.as_mut() else {
            std::thread::sleep(TICK);
            return false;
        };
        if !readable(ino.as_raw_fd(), TICK) {
            return false;
        }
        if let Ok(events) = ino.read_events(&mut self.buf) {
            for ev in events {
                event(ev.name, ev.mask);
            }
        }
        true
    }

    /// The reader reads now: the next wait keeps [`READ_GAP`] after it.
    pub(super) fn reading(&mut self) {
        self.pacer.read();
    }
}

/// An inotify watch on the file's folder, or `None` (then ticks alone drive
/// reading) if the folder is missing or inotify is unavailable.
fn watch_dir(path: &Path) -> Option<Inotify> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let inotify = Inotify::init().ok()?;
    let mask = WatchMask::MODIFY
        | WatchMask::CREATE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::DELETE
        | WatchMask::CLOSE_WRITE
        | WatchMask::ATTRIB;
    match inotify.watches().add(dir, mask) {
        Ok(_) => Some(inotify),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch folder with inotify; checking every second instead");
            None
        }
    }
}

/// Waits at most `timeout` for `fd` to have something to read (inotify
/// events), so that a reader also wakes once per tick for its checks.
pub(super) fn readable(fd: std::os::fd::RawFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) > 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a read, the next wait first sleeps out the rest of the gap (a
    /// lower bound, which sleep guarantees); without a read since, it does not
    /// sleep again.
    #[test]
    fn reads_are_kept_a_gap_apart() {
        let mut p = Pacer::default();
        p.pause();
        assert!(p.last.is_none());
        p.read();
        let t = std::time::Instant::now();
        p.pause();
        assert!(t.elapsed() >= READ_GAP);
        assert!(p.last.is_none(), "one sleep per read");
    }
}
