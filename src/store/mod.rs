//! The store stage: ban history in SQLite.
//!
//! Every ban and unban is a row. What is still running when the daemon
//! starts is read back from here and put into the kernel in one batch, so a
//! restart never depends on listing the kernel's sets (listing a set of a
//! million elements takes over a minute in the kernel) and an address that
//! was unbanned by hand is not restored (docs/faq.md row 7).
//!
//! Bans are written *before* they are sent to the kernel: if the process
//! dies in between, the next start puts them in; the other order could leave
//! bans in the kernel that nftban does not know about. The database runs in
//! WAL mode with `synchronous=NORMAL`: a crash of the process loses nothing
//! committed; a power cut may lose the last transactions, whose bans are
//! still in the kernel until they expire.
//!
//! Ban writes go first to an append-only file beside the database and
//! reach SQLite about once a second, or once [`PENDING_MOST`] wait, many in
//! one transaction: see [`pending`]. Every read of the history moves them
//! in first. The WAL is copied into the database file by a thread of its
//! own: see [`checkpoint`].
//!
//! The schema version is kept in `PRAGMA user_version`; [`Store::open`]
//! migrates older files forward and refuses newer ones.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use crate::sources::file::Position;
use rusqlite::config::DbConfig;
use rusqlite::{params, Connection};

/// Errors of the ban history.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database file cannot be opened or created.
    #[error("cannot open the ban database {path}: {error}")]
    Open { path: PathBuf, error: rusqlite::Error },
    /// The database's folder cannot be created or written, or the
    /// database file cannot be created (see [`files`]).
    #[error(transparent)]
    Files(#[from] files::FilesError),
    /// The file was written by a newer nftban.
    #[error("the ban database {path} has schema version {found}, newer than this nftban understands ({VERSION}); upgrade nftban or move the file away")]
    TooNew { path: PathBuf, found: i64 },
    /// A read or write failed (disk full, I/O error, corruption).
    #[error("ban database {path}: {error}")]
    Sql { path: PathBuf, error: rusqlite::Error },
    /// The file is not a sound ban history (see [`damage`]).
    #[error("the ban database {} is damaged: {damage} (`nftban run` moves a damaged history aside, to {}.corrupt-YYYYMMDDTHHMMSS, and starts an empty one)", .path.display(), .path.display())]
    Damaged { path: PathBuf, damage: Damage },
    /// The pending file beside the database (see [`pending`]) cannot be
    /// opened or locked.
    #[error(transparent)]
    Pending(#[from] pending::Error),
    /// The pending file cannot be written or emptied.
    #[error("{path}: {source}")]
    PendingWrite { path: PathBuf, source: std::io::Error },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether SQLite said the file is damaged (`database disk image is
    /// malformed`, `file is not a database`): it will not heal by itself,
    /// unlike a lock or a full disk, so it is replaced (at open, or by the
    /// engine's next save with [`Store::replace_damaged`]).
    pub fn is_damage(&self) -> bool {
        match self {
            Error::Sql { error, .. } | Error::Open { error, .. } => damage::is_damage(error),
            Error::Damaged { .. } => true,
            _ => false,
        }
    }
}

mod record;
pub use record::{valid_node, ActiveBan, BanRecord, FailureWindow, LiftedBan, Origin, Peer};

mod checkpoint;
mod damage;
mod files;
mod left;
mod lift;
mod mover;
mod pending;
mod read;
mod waiting;
mod write;

use left::{move_left, set_held};
pub use read::RunningBan;
use waiting::Waiting;
mod schema;
pub use damage::Damage;
pub use files::check_writable;
use schema::VERSION;

/// A ban's row.
const INSERT: &str =
    "INSERT INTO bans (jail, net, banned_at, expires_at, origin, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// An unban: the running bans of `net` (?2) in a jail (?3) lifted at ?1.
const LIFT: &str = "UPDATE bans SET unbanned_at = ?1 WHERE net = ?2 AND jail = ?3 AND unbanned_at IS NULL";

/// An unban in every jail.
const LIFT_ALL: &str = "UPDATE bans SET unbanned_at = ?1 WHERE net = ?2 AND unbanned_at IS NULL";

/// Bans wait in the pending file until the next save (about once a
/// second) or until this many wait, then go into SQLite in one
/// transaction. A transaction's cost per ban falls with its size: every
/// ban adds a key at a random place of the `bans_net` index, and each
/// commit writes every index page it touched to the WAL, so ten commits of
/// 10,000 bans write most of the index ten times where one of 100,000
/// writes it once. The bound keeps each move, and the file it reads back,
/// small enough that the engine does not stop long for it.
const PENDING_MOST: usize = 131_072;

/// Pending bans from which the engine's save hands their move to the
/// mover thread (see [`mover`]) rather than doing it itself: fewer are
/// quicker to move here than to hand over and wait for.
const HAND_OFF_LEAST: usize = 16_384;

/// The pending file's size past which a save moves what waits itself
/// (waiting for a move in flight): the file is emptied only by such a
/// save, and moves by the mover alone never empty it.
const FILE_MOST: u64 = 256 << 20;

/// How long opening the history waits for another process's lock on it
/// (an admin's `sqlite3` in a transaction, a backup): the daemon is not
/// running yet, and a restore waits for what it reads.
const OPEN_WAIT: Duration = Duration::from_secs(5);

/// How long a read or write waits for another process's lock once the
/// store is open: long enough for another process's one-statement write,
/// short enough not to stall the engine, whose thread also puts bans into
/// the kernel. What cannot be written meanwhile is kept (the pending file,
/// the engine's backlog) and written at a later save. With SQLite's usual
/// five seconds, every save while another process held the lock stopped
/// the engine for five seconds, and bans waited that long.
const BUSY_WAIT: Duration = Duration::from_millis(100);

/// What opening a database found.
enum Opened {
    Sound(Connection),
    Damaged(Damage),
}

/// Open the database at `path`, check it ([`damage`]) and bring it to the
/// current schema. `Err` when it cannot be opened, read or migrated for
/// another reason than damage (locked, I/O, too new).
fn connect(path: &Path) -> Result<Opened> {
    let sql = |error| Error::Sql {
        path: path.to_path_buf(),
        error,
    };
    let conn = Connection::open(path).map_err(|error| Error::Open {
        path: path.to_path_buf(),
        error,
    })?;
    conn.busy_timeout(OPEN_WAIT).map_err(sql)?;
    // Closing the last connection would otherwise copy the WAL's pages into
    // the file: a damaged one is to be moved aside as it was found.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(sql)?;
    if let Some(damage) = damage::diagnose(&conn).map_err(sql)? {
        return Ok(Opened::Damaged(damage));
    }
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)
        .map_err(sql)?;
    match schema::migrate(&conn) {
        Ok(()) => Ok(Opened::Sound(conn)),
        Err(schema::Failure::TooNew(found)) => Err(Error::TooNew {
            path: path.to_path_buf(),
            found,
        }),
        Err(schema::Failure::Sql(e)) if damage::is_damage(&e) => Ok(Opened::Damaged(Damage::Unreadable(e))),
        Err(schema::Failure::Sql(e)) => Err(sql(e)),
    }
}

/// Whether the history at `db` is sound, without changing anything: what
/// `nftban check` runs. A database that does not exist yet is fine (the
/// daemon creates it).
pub fn check_intact(db: &Path) -> Result<()> {
    if !db.exists() {
        return Ok(());
    }
    let sql = |error| Error::Sql {
        path: db.to_path_buf(),
        error,
    };
    let conn =
        Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|error| Error::Open {
            path: db.to_path_buf(),
            error,
        })?;
    conn.busy_timeout(OPEN_WAIT).map_err(sql)?;
    match damage::diagnose(&conn).map_err(sql)? {
        None => Ok(()),
        Some(damage) => Err(Error::Damaged {
            path: db.to_path_buf(),
            damage,
        }),
    }
}

/// The ban history database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    pending: pending::Pending,
    /// Whether the last append to the pending file failed (logged once).
    pending_failing: bool,
    /// Bans and unbans an earlier run left in the pending file that could
    /// not be moved into SQLite when the store opened (another process
    /// held the lock, a full disk): still in that file, moved with the next
    /// save that works, each ban unless SQLite holds it already.
    left: Vec<pending::Entry>,
    /// [`PENDING_MOST`] (smaller in tests).
    pending_most: usize,
    /// [`HAND_OFF_LEAST`] (smaller in tests).
    hand_off_least: usize,
    /// Whether moving the pending bans into SQLite at the bound failed,
    /// and no save has worked since: the bound then waits for the save.
    stalled: bool,
    /// The thread that copies the WAL into the file after commits.
    checkpoints: checkpoint::Checkpoints,
    /// The thread that moves many pending bans into SQLite.
    mover: mover::Mover,
}

/// Seconds since the epoch as SQLite keeps them; a time before the epoch
/// is 0, one past `i64` seconds is `i64::MAX` (never a wrap).
fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A ban's columns: jail, net, banned_at, expires_at, origin, reason.
fn row(b: &BanRecord) -> (&str, String, i64, i64, &'static str, Option<&str>) {
    (
        &b.jail,
        b.net.to_string(),
        secs(b.at),
        secs(b.expires),
        b.origin.as_str(),
        b.reason.as_deref(),
    )
}

/// Move the pending file's lines of `text` (from `path`) into SQLite with
/// `c`, in a transaction the caller opened: bans inserted, unbans applied,
/// in the file's order.
fn move_lines(c: &Connection, text: &[u8], path: &Path, before: usize) -> rusqlite::Result<()> {
    let mut insert = c.prepare_cached(INSERT)?;
    // Once per move, not per line (each is a lookup in the cache).
    let (mut lift, mut lift_all) = (c.prepare_cached(LIFT)?, c.prepare_cached(LIFT_ALL)?);
    for r in pending::rows(text, path, before) {
        match r {
            pending::Row::Ban {
                jail,
                net,
                at,
                expires,
                origin,
                reason,
            } => insert.execute(params![jail, net, whole(at), whole(expires), origin, reason])?,
            pending::Row::Lift {
                jail: Some(jail),
                net,
                at,
            } => lift.execute(params![whole(at), net, jail])?,
            pending::Row::Lift { jail: None, net, at } => lift_all.execute(params![whole(at), net])?,
        };
    }
    Ok(())
}

/// Why a move failed: reading the pending file back, or SQLite.
enum Failed {
    Read(std::io::Error),
    Sql(rusqlite::Error),
}

impl From<std::io::Error> for Failed {
    fn from(e: std::io::Error) -> Failed {
        Failed::Read(e)
    }
}

impl From<rusqlite::Error> for Failed {
    fn from(e: rusqlite::Error) -> Failed {
        Failed::Sql(e)
    }
}

/// Seconds of the pending file as SQLite keeps them (as [`secs`]).
fn whole(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX)
}

/// The time of a row's seconds. Negative, or past what the clock can hold,
/// is the epoch: long over, so harmless (a ban that ended, a failure too old
/// to count), never a panic. A far but representable future is the
/// engine's to judge (`engine::start` refuses to restore it).
fn time(s: i64) -> SystemTime {
    let secs = Duration::from_secs(u64::try_from(s).unwrap_or(0));
    UNIX_EPOCH.checked_add(secs).unwrap_or(UNIX_EPOCH)
}

impl Store {
    /// Open (or create, with its folder) the database at `path`; its files
    /// and the folders created for it are private (see [`files`]). A
    /// damaged database ([`damage`]) is moved aside and an empty one takes
    /// its place: the daemon protects with an empty history rather than
    /// not at all. The error says so loudly, with what that loses.
    pub fn open(path: &Path) -> Result<Store> {
        files::prepare(path)?;
        // The pending file's lock first: once it is held, no other daemon
        // uses this database, so a damaged one is this process's to move.
        let (pending, left) = pending::Pending::open(path)?;
        let kept = match left {
            0 => String::new(),
            _ => format!(
                "; the bans of the last run still in {} go into the new one",
                pending.path().display()
            ),
        };
        let conn = match connect(path)? {
            Opened::Sound(conn) => conn,
            Opened::Damaged(damage) => {
                let aside = files::move_aside(path, SystemTime::now())?;
                tracing::error!(
                    "the ban database {} is damaged ({damage}): moved aside to {} and started an empty history{kept}. Lost with it: the running bans it held are not restored and not shown by `nftban status` (those still in the kernel drop packets until they expire), files are read from their end (lines written while nftban was stopped are not read), failure counts, bantime increments and recidive start afresh",
                    path.display(),
                    aside.display()
                );
                files::prepare(path)?;
                match connect(path)? {
                    Opened::Sound(conn) => conn,
                    Opened::Damaged(damage) => {
                        return Err(Error::Damaged {
                            path: path.to_path_buf(),
                            damage,
                        })
                    }
                }
            }
        };
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            pending,
            pending_failing: false,
            pending_most: PENDING_MOST,
            hand_off_least: HAND_OFF_LEAST,
            stalled: false,
            left: Vec::new(),
            checkpoints: checkpoint::Checkpoints::start(path),
            mover: mover::Mover::none(),
        };
        store.mover = store.start_mover();
        store.conn.busy_timeout(BUSY_WAIT).map_err(|e| store.sql(e))?;
        if left > 0 {
            // Not worth refusing to start over (a reload while an admin's
            // `sqlite3` holds a transaction used to stop the daemon): the
            // bans are safe in the file, and reads add them meanwhile.
            match store.replay(left) {
                Ok(n) => tracing::info!(
                    "moved {n} ban(s) and unban(s) left in {} by an earlier run into the history",
                    store.pending.path().display()
                ),
                Err(e) => {
                    let entries = store.pending.left(left).map_err(|e| store.pending_err(e))?;
                    tracing::warn!(
                        "cannot move the {} ban(s) and unban(s) left in {} by an earlier run into the history now ({e}): they stay in that file, are restored from it, and are moved at a later save",
                        entries.len(),
                        store.pending.path().display()
                    );
                    store.left = entries;
                }
            }
        }
        Ok(store)
    }

    /// Replace a database found damaged while the daemon runs: moved aside
    /// as at open (see [`files::move_aside`]) and an empty one put in its
    /// place. The pending file is emptied too: its bans are running ones,
    /// and the caller writes every running ban into the new history
    /// anyway. Returns where the damaged file went.
    pub fn replace_damaged(&mut self) -> Result<PathBuf> {
        let path = self.path.clone();
        let placeholder = Connection::open_in_memory().map_err(|e| self.sql(e))?;
        // What it moved is lost with the file; the caller writes every
        // running ban anew.
        self.mover.stop();
        self.checkpoints.stop();
        let damaged = std::mem::replace(&mut self.conn, placeholder);
        // Closed as it is: no checkpoint copies WAL pages into the file.
        let _ = damaged.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
        drop(damaged);
        let aside = files::move_aside(&path, SystemTime::now())?;
        files::prepare(&path)?;
        let conn = match connect(&path)? {
            Opened::Sound(conn) => conn,
            Opened::Damaged(damage) => return Err(Error::Damaged { path, damage }),
        };
        conn.busy_timeout(BUSY_WAIT).map_err(|e| self.sql(e))?;
        self.conn = conn;
        self.checkpoints = checkpoint::Checkpoints::start(&path);
        self.left.clear();
        self.pending.clear().map_err(|e| self.pending_err(e))?;
        self.mover = self.start_mover();
        Ok(aside)
    }

    fn pending_err(&self, e: std::io::Error) -> Error {
        Error::PendingWrite {
            path: self.pending.path().to_path_buf(),
            source: e,
        }
    }

    /// Move the pending bans into SQLite now (a read of the history
    /// follows, or the daemon stops).
    pub fn sync(&mut self) -> Result<()> {
        self.save(&[], &[], &[], &[])
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Give back the memory a big piece of work on this connection held
    /// (a restore's reads, a purge's walk): its page cache and the
    /// allocator's free heap.
    pub fn give_back(&self) {
        schema::give_back(&self.conn);
    }

    /// Whether bans wait in the pending file.
    pub fn has_pending(&self) -> bool {
        self.pending.holds_any() || !self.left.is_empty()
    }

    /// Whether SQLite holds the ban record `b` (same jail, net and times).
    fn holds(&self, b: &BanRecord) -> Result<bool> {
        let (jail, net, at, expires, _, _) = row(b);
        self.conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM bans WHERE net = ?2 AND jail = ?1 AND banned_at = ?3 AND expires_at = ?4)",
            )
            .and_then(|mut s| s.query_row(params![jail, net, at, expires], |r| r.get::<_, bool>(0)))
            .map_err(|e| self.sql(e))
    }

    /// Move the pending bans into SQLite before a read; if that cannot be
    /// done now (another process holds the lock), the read goes on with
    /// what waits in the pending file, for the reader to add its bans and
    /// leave out what its unbans lifted (a restart during the lock must
    /// still restore the one and not the other). `Err` only for damage.
    fn sync_for_read(&mut self) -> Result<Waiting> {
        match self.sync() {
            Ok(()) => Ok(Waiting::default()),
            Err(e) if e.is_damage() => Err(e),
            Err(_) => {
                let mut entries = Vec::with_capacity(self.left.len());
                for e in &self.left {
                    match e {
                        pending::Entry::Ban(b) if self.holds(b)? => {}
                        e => entries.push(e.clone()),
                    }
                }
                entries.extend(self.pending.waiting().map_err(|e| self.pending_err(e))?);
                Ok(Waiting::of(entries))
            }
        }
    }

    /// The error of a move that `failed`: the pending file's, or SQLite's.
    fn move_err(&self, failed: Failed) -> Error {
        match failed {
            Failed::Read(e) => self.pending_err(e),
            Failed::Sql(e) => self.sql(e),
        }
    }

    fn sql(&self, source: rusqlite::Error) -> Error {
        Error::Sql {
            path: self.path.clone(),
            error: source,
        }
    }
}

impl Drop for Store {
    /// A clean stop leaves the pending file empty.
    fn drop(&mut self) {
        if self.has_pending() {
            if let Err(e) = self.sync() {
                tracing::warn!("{e}; the pending bans are moved into the history at the next start");
            }
        }
        // Before the connection closes: it is then the last, and copies
        // what the WAL still holds into the file.
        self.mover.stop();
        self.checkpoints.stop();
    }
}

#[cfg(test)]
pub(crate) mod testfs;
#[cfg(test)]
mod tests;
