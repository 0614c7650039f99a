//! Only regular files are read.
//!
//! A log path is configured once and then trusted for years, while what it
//! names can change: a FIFO put there (opening it for reading blocks until
//! a writer comes, and the reader thread with it, for good), a link to
//! `/dev/zero` (reads that never end: a core burnt for good), a device
//! whose open has side effects, a directory. So what a path names is
//! looked at before it is opened, and what was opened is looked at again
//! (the path may have changed in between): anything but a regular file is
//! refused with a reason in words for `status`. The open itself is
//! non-blocking and takes no controlling terminal, so even a FIFO or a tty
//! slipped in between the two looks cannot hold the reader.
//!
//! Links are followed wherever they lead (admins link logs in from other
//! folders); what they lead to must be a regular file.
//!
//! The same holds for the files of settings nftban reads (its config, a
//! ruleset, a fail2ban filter and what it includes): [`read_text`] refuses
//! anything but a regular file before reading it, and reads at most
//! [`MAX_TEXT`] bytes, so a path set to `/dev/zero` or a FIFO by mistake
//! (or by someone who can write the config) gets an error naming it, not
//! a process that grows until it dies or waits forever.

use std::fs::{File, FileType, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What a path names when it is not a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
    Directory,
    /// A kind std does not name (none on Linux today).
    Other,
}

impl Kind {
    /// `None` for a regular file.
    pub fn of(t: FileType) -> Option<Kind> {
        let kind = if t.is_file() {
            return None;
        } else if t.is_fifo() {
            Kind::Fifo
        } else if t.is_char_device() {
            Kind::CharDevice
        } else if t.is_block_device() {
            Kind::BlockDevice
        } else if t.is_socket() {
            Kind::Socket
        } else if t.is_dir() {
            Kind::Directory
        } else {
            Kind::Other
        };
        Some(kind)
    }

    fn words(self) -> &'static str {
        match self {
            Kind::Fifo => "a FIFO",
            Kind::CharDevice => "a character device",
            Kind::BlockDevice => "a block device",
            Kind::Socket => "a socket",
            Kind::Directory => "a directory",
            Kind::Other => "not a file of a known kind",
        }
    }
}

/// A path that names something other than a regular file, as `status`
/// says it: `is a FIFO, not a regular file`, `is a link to /dev/zero, a
/// character device, not a regular file`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct NotRegular {
    pub kind: Kind,
    /// Where the path leads, when it is a link.
    pub link: Option<PathBuf>,
}

impl NotRegular {
    fn describe(&self) -> String {
        match &self.link {
            Some(target) => format!(
                "is a link to {}, {}, not a regular file",
                target.display(),
                self.kind.words()
            ),
            None => format!("is {}, not a regular file", self.kind.words()),
        }
    }
}

/// Why a log file was not opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// It is not a regular file.
    #[error(transparent)]
    NotRegular(#[from] NotRegular),
    /// Opening or looking at it failed (permissions, gone meanwhile).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A file of settings larger than [`MAX_TEXT`].
    #[error("is larger than {} MiB, more than any file of settings needs", MAX_TEXT >> 20)]
    TooLarge,
}

/// The most [`read_text`] reads: far more than any config, ruleset or
/// filter needs (the largest shipped ruleset is a few KiB).
pub const MAX_TEXT: u64 = 16 << 20;

/// Read a file of settings as text: only a regular file (links followed),
/// at most [`MAX_TEXT`] bytes, UTF-8.
pub fn read_text(path: &Path) -> Result<String, OpenError> {
    use std::io::Read;
    let (file, meta) = open(path)?;
    if meta.len() > MAX_TEXT {
        return Err(OpenError::TooLarge);
    }
    let mut text = String::new();
    // The file may grow after the look at its size: read one byte more
    // than allowed to know.
    file.take(MAX_TEXT + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_TEXT {
        return Err(OpenError::TooLarge);
    }
    Ok(text)
}

/// Whether `meta` (the path's metadata, links followed) is a regular
/// file's; if not, what `path` names, and where it leads if it is a link.
pub fn check(path: &Path, meta: &Metadata) -> Result<(), NotRegular> {
    let Some(kind) = Kind::of(meta.file_type()) else {
        return Ok(());
    };
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let link = is_link.then(|| std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()));
    Err(NotRegular { kind, link })
}

/// Open `path` for reading if it is a regular file (links followed), with
/// what the open file is (its own metadata, not the path's: the path may
/// name another file by now). Never blocks: `O_NONBLOCK` (which regular
/// files ignore) and `O_NOCTTY`.
pub fn open(path: &Path) -> Result<(File, Metadata), OpenError> {
    let meta = std::fs::metadata(path)?;
    check(path, &meta)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    check(path, &meta)?;
    Ok((file, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    fn refusal(path: &Path) -> String {
        match open(path) {
            Err(OpenError::NotRegular(e)) => e.to_string(),
            Err(e) => panic!("{path:?}: {e}"),
            Ok(_) => panic!("{path:?} was opened"),
        }
    }

    /// Each kind of non-regular file is refused in words, without blocking
    /// (a FIFO with no writer) and without reading (a device); a regular
    /// file, and a link to one from another folder, are opened.
    #[test]
    fn only_regular_files_are_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        assert_eq!(refusal(&fifo), "is a FIFO, not a regular file");
        assert_eq!(
            refusal(Path::new("/dev/null")),
            "is a character device, not a regular file"
        );
        assert_eq!(refusal(dir.path()), "is a directory, not a regular file");
        let sock = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert_eq!(refusal(&sock), "is a socket, not a regular file");
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert_eq!(
            refusal(&zero),
            "is a link to /dev/zero, a character device, not a regular file"
        );
        let to_fifo = dir.path().join("to-fifo");
        std::os::unix::fs::symlink(&fifo, &to_fifo).unwrap();
        assert!(refusal(&to_fifo).ends_with("fifo, a FIFO, not a regular file"));

        let elsewhere = tempfile::tempdir().unwrap();
        let real = elsewhere.path().join("real.log");
        std::fs::write(&real, "x\n").unwrap();
        let link = dir.path().join("app.log");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        for path in [&real, &link] {
            let (_, meta) = open(path).unwrap();
            assert!(meta.is_file() && meta.len() == 2, "{path:?}");
        }
        assert!(matches!(open(&dir.path().join("none")), Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound));
    }

    /// Settings are read from regular files only, whole and bounded; what
    /// is refused is said in words that follow the path.
    #[test]
    fn settings_are_read_from_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let said = |p: &Path| read_text(p).unwrap_err().to_string();
        assert_eq!(said(&fifo), "is a FIFO, not a regular file");
        assert_eq!(
            said(Path::new("/dev/zero")),
            "is a character device, not a regular file"
        );
        let big = dir.path().join("big.yaml");
        std::fs::File::create(&big).unwrap().set_len(MAX_TEXT + 1).unwrap();
        assert_eq!(
            said(&big),
            "is larger than 16 MiB, more than any file of settings needs"
        );
        let fine = dir.path().join("fine.yaml");
        std::fs::write(&fine, "a: 1\n").unwrap();
        assert_eq!(read_text(&fine).unwrap(), "a: 1\n");
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, b"\xff\n").unwrap();
        assert!(said(&bad).contains("UTF-8"), "{}", said(&bad));
    }
}
