//! The history's files on disk: the database, the files SQLite keeps
//! beside it (`-wal`, `-shm`, `-journal`), the pending file, and their
//! folder.
//!
//! They hold who was banned and when, and what the next start puts back
//! into the kernel, so they are the daemon's alone: files 0600, folders
//! nftban creates 0700, whatever the umask it was started with. Under
//! umask 000 the pending file used to be 0666, and a local user who
//! appended `{"net":"0.0.0.0/0",...}` to it banned the world at the next
//! start. The modes are set here explicitly (SQLite gives `-wal`, `-shm`
//! and `-journal` the database file's own mode, so creating that file 0600
//! first is enough for them); `nftban run` also sets its umask to 077.
//! Files an older nftban left looser are tightened when the store opens,
//! and the log says so.

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The mode of every file of the history.
pub(super) const FILE_MODE: u32 = 0o600;
/// The mode of a folder nftban creates for the history.
const FOLDER_MODE: u32 = 0o700;

/// Why the history's folder or files cannot be prepared. Each names the
/// database and says what is wrong in words an admin acts on; the I/O
/// error is kept (`error`) but not chained as a source, since the message
/// already says it.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The folder cannot be created (or a file is in its place).
    #[error("cannot create the folder {} for the ban database {}: {}", .folder.display(), .db.display(), plainly(.error))]
    Folder {
        db: PathBuf,
        folder: PathBuf,
        error: io::Error,
    },
    /// The database file cannot be created.
    #[error("cannot create the ban database {}: {}", .db.display(), plainly(.error))]
    Create { db: PathBuf, error: io::Error },
    /// nftban cannot create files in the folder (checked by creating and
    /// removing one, as the daemon will create its own there).
    #[error("cannot write the ban database {} in {}: {}", .db.display(), .folder.display(), plainly(.error))]
    Unwritable {
        db: PathBuf,
        folder: PathBuf,
        error: io::Error,
    },
    /// An existing file of the history cannot be opened for writing.
    #[error("cannot write the ban database file {}: {}", .file.display(), plainly(.error))]
    FileUnwritable { file: PathBuf, error: io::Error },
    /// A damaged database (or one of SQLite's files beside it) cannot be
    /// moved aside.
    #[error("cannot move the damaged ban database file {} aside to {}: {}", .file.display(), .aside.display(), plainly(.error))]
    MoveAside {
        file: PathBuf,
        aside: PathBuf,
        error: io::Error,
    },
}

/// An I/O error in words an admin acts on: "read-only file system" and
/// "permission denied" said plainly, with what to do.
fn plainly(e: &io::Error) -> String {
    match (e.raw_os_error(), e.kind()) {
        (Some(libc::EROFS), _) | (_, io::ErrorKind::ReadOnlyFilesystem) => {
            "read-only file system (nftban writes its ban history there: remount it read-write, or set `database:` to a writable path)".into()
        }
        (Some(libc::EACCES | libc::EPERM), _) | (_, io::ErrorKind::PermissionDenied) => {
            "permission denied (run nftban as root, or give it a folder it owns in `database:`)".into()
        }
        _ => e.to_string(),
    }
}

/// `path` with `suffix` appended to its name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// The suffixes of the files SQLite keeps beside a database.
const SQLITE_FILES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// The files SQLite keeps beside `db`, and the pending file.
fn companions(db: &Path) -> [PathBuf; 4] {
    let with = |suffix: &str| with_suffix(db, suffix);
    [with("-wal"), with("-shm"), with("-journal"), with("-pending")]
}

/// Move the damaged database `db` out of the way, with the files SQLite
/// keeps beside it, to `DB.corrupt-YYYYMMDDTHHMMSS` (UTC, of `now`; `-2`,
/// `-3`... added if that name is taken): its `-wal` beside the new name as
/// `DB.corrupt-...-wal`, so that `sqlite3` opens the copy as it was. Never
/// deleted, never left where SQLite would pair it with a new database (a
/// WAL applied to another file damages it). The copy is 0600 like every
/// file of the history. The pending file stays: its lines are whole records
/// of their own, still to be moved into the new history. Returns the new
/// name of the database.
pub(super) fn move_aside(db: &Path, now: std::time::SystemTime) -> Result<PathBuf, FilesError> {
    let stamp = format!("{}.corrupt-{}", db.display(), utc_stamp(now));
    let aside = (1..)
        .map(|n| PathBuf::from(if n == 1 { stamp.clone() } else { format!("{stamp}-{n}") }))
        .find(|p| !p.exists() && SQLITE_FILES.iter().all(|s| !with_suffix(p, s).exists()))
        .unwrap_or_else(|| PathBuf::from(stamp));
    let moves = std::iter::once((db.to_path_buf(), aside.clone())).chain(
        SQLITE_FILES
            .iter()
            .map(|s| (with_suffix(db, s), with_suffix(&aside, s)))
            .filter(|(from, _)| from.exists()),
    );
    for (from, to) in moves {
        std::fs::rename(&from, &to).map_err(|error| FilesError::MoveAside {
            file: from.clone(),
            aside: to.clone(),
            error,
        })?;
        let _ = std::fs::set_permissions(&to, std::fs::Permissions::from_mode(FILE_MODE));
    }
    Ok(aside)
}

/// `now` as `YYYYMMDDTHHMMSS` in UTC.
fn utc_stamp(now: std::time::SystemTime) -> String {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The calendar date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The folder `db` lives in (`.` for a bare file name).
fn folder_of(db: &Path) -> &Path {
    db.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Make the history's place ready before SQLite opens it: the folder
/// (created 0700 with its missing parents, or one others may write to made
/// safe), checked writable, the database file created 0600 if missing, and
/// every existing file of the history made 0600.
pub(super) fn prepare(db: &Path) -> Result<(), FilesError> {
    let folder = folder_of(db);
    let folder_err = |error| FilesError::Folder {
        db: db.to_path_buf(),
        folder: folder.to_path_buf(),
        error,
    };
    match std::fs::metadata(folder) {
        Ok(meta) if meta.is_dir() => private_folder(folder),
        Ok(_) => return Err(folder_err(io::Error::from_raw_os_error(libc::ENOTDIR))),
        Err(_) => DirBuilder::new()
            .recursive(true)
            .mode(FOLDER_MODE)
            .create(folder)
            .map_err(folder_err)?,
    }
    check_writable(db)?;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(db)
        .map_err(|error| FilesError::Create {
            db: db.to_path_buf(),
            error,
        })?;
    private_file(db);
    for file in companions(db).iter().filter(|f| f.exists()) {
        private_file(file);
    }
    Ok(())
}

/// Whether the daemon can write its history at `db`: a file created and
/// removed in its folder (or, when the folder does not exist yet, in the
/// nearest existing folder above it, where it would be created), and the
/// database and pending files, if they exist, opened for writing (nothing
/// written). What `nftban check` runs, and the daemon before it opens.
pub fn check_writable(db: &Path) -> Result<(), FilesError> {
    static PROBES: AtomicUsize = AtomicUsize::new(0);
    let folder = folder_of(db);
    let existing = folder.ancestors().find(|d| d.is_dir()).unwrap_or(Path::new("/"));
    let probe = existing.join(format!(
        ".nftban-write-test-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    ));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&probe)
        .map_err(|error| FilesError::Unwritable {
            db: db.to_path_buf(),
            folder: existing.to_path_buf(),
            error,
        })?;
    let _ = std::fs::remove_file(&probe);
    let pending = &companions(db)[3];
    for file in [db, pending.as_path()].into_iter().filter(|f| f.exists()) {
        OpenOptions::new()
            .append(true)
            .open(file)
            .map_err(|error| FilesError::FileUnwritable {
                file: file.to_path_buf(),
                error,
            })?;
    }
    Ok(())
}

/// Make `file` 0600 if others may read or write it, and say so: an older
/// nftban (or a copy, a restore from backup) may have left it looser.
fn private_file(file: &Path) {
    let Ok(meta) = std::fs::metadata(file) else { return };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return;
    }
    match std::fs::set_permissions(file, std::fs::Permissions::from_mode(FILE_MODE)) {
        Ok(()) => tracing::warn!(
            "{} was open to other users (mode {mode:04o}); made {FILE_MODE:04o}",
            file.display()
        ),
        Err(e) => tracing::warn!(
            "{} is open to other users (mode {mode:04o}) and cannot be made {FILE_MODE:04o}: {e}",
            file.display()
        ),
    }
}

/// A folder others may write to lets them replace the history's files: it
/// loses that right, and the log says so. A sticky one (as /tmp) protects
/// existing files and is not nftban's to change: a warning only.
fn private_folder(folder: &Path) {
    let Ok(meta) = std::fs::metadata(folder) else { return };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 == 0 {
        return;
    }
    if mode & 0o1000 != 0 {
        tracing::warn!(
            "the folder {} of the ban database is shared (mode {mode:04o}): others may create files there before nftban does; give `database:` a folder of its own",
            folder.display()
        );
        return;
    }
    let tight = mode & !0o022;
    match std::fs::set_permissions(folder, std::fs::Permissions::from_mode(tight)) {
        Ok(()) => tracing::warn!(
            "the folder {} of the ban database was writable by other users (mode {mode:04o}); made {tight:04o}",
            folder.display()
        ),
        Err(e) => tracing::warn!(
            "the folder {} of the ban database is writable by other users (mode {mode:04o}) and cannot be changed: {e}",
            folder.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn the_stamp_is_the_utc_date_and_time() {
        let at = |s: u64| utc_stamp(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "19700101T000000");
        // 2024-02-29 23:59:59, a leap day.
        assert_eq!(at(1_709_251_199), "20240229T235959");
        assert_eq!(at(1_709_251_200), "20240301T000000");
        // 2100 is not a leap year.
        assert_eq!(at(4_107_542_400), "21000301T000000");
    }

    #[test]
    fn a_damaged_database_moves_aside_with_its_wal_and_nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nftban.db");
        let now = UNIX_EPOCH + Duration::from_secs(1_709_251_199);
        for (name, text) in [
            ("nftban.db", "db"),
            ("nftban.db-wal", "wal"),
            ("nftban.db-pending", "pending"),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let aside = move_aside(&db, now).unwrap();
        assert_eq!(aside, dir.path().join("nftban.db.corrupt-20240229T235959"));
        assert_eq!(std::fs::read_to_string(&aside).unwrap(), "db");
        assert_eq!(std::fs::read_to_string(with_suffix(&aside, "-wal")).unwrap(), "wal");
        assert_eq!(std::fs::metadata(&aside).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!db.exists() && !with_suffix(&db, "-wal").exists());
        assert!(with_suffix(&db, "-pending").exists(), "the pending file stays");

        std::fs::write(&db, "second").unwrap();
        let again = move_aside(&db, now).unwrap();
        assert_eq!(again, dir.path().join("nftban.db.corrupt-20240229T235959-2"));
        assert_eq!(std::fs::read_to_string(&aside).unwrap(), "db", "the first copy is kept");
        assert_eq!(std::fs::read_to_string(&again).unwrap(), "second");
    }
}
