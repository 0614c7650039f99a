//! The history's tables, and how an older file is brought forward: one
//! step per schema version, applied in order, each in its own transaction
//! with the version it reaches (`PRAGMA user_version`). A file written by a
//! newer nftban is refused rather than guessed at.

use std::time::Duration;

use rusqlite::Connection;

/// Step N brings a file from version N to N + 1.
const STEPS: &[&str] = &[
    // 1: bans.
    "CREATE TABLE IF NOT EXISTS bans (
         id INTEGER PRIMARY KEY,
         jail TEXT NOT NULL,
         net TEXT NOT NULL,
         banned_at INTEGER NOT NULL,
         expires_at INTEGER NOT NULL,
         origin TEXT NOT NULL,
         unbanned_at INTEGER
     );
     CREATE INDEX IF NOT EXISTS bans_live ON bans (expires_at) WHERE unbanned_at IS NULL;
     CREATE INDEX IF NOT EXISTS bans_net ON bans (net, jail);",
    // 2: file positions.
    "CREATE TABLE IF NOT EXISTS positions (
         path TEXT PRIMARY KEY,
         offset INTEGER NOT NULL,
         head_len INTEGER NOT NULL,
         head_hash INTEGER NOT NULL,
         updated_at INTEGER NOT NULL
     );",
    // 3: journal cursors.
    "CREATE TABLE IF NOT EXISTS cursors (
         source TEXT PRIMARY KEY,
         cursor TEXT NOT NULL,
         updated_at INTEGER NOT NULL
     );",
    // 4: a ban's reason (IPv6 escalation).
    "ALTER TABLE bans ADD COLUMN reason TEXT;",
    // 5: failure windows not yet at `maxretry`.
    "CREATE TABLE IF NOT EXISTS failures (
         jail TEXT NOT NULL,
         net TEXT NOT NULL,
         times TEXT NOT NULL,
         PRIMARY KEY (jail, net)
     ) WITHOUT ROWID;",
];

/// SQLite's page cache, in KiB (a negative `cache_size`), per connection
/// that writes (the engine's and the mover's): room for the hot pages of a
/// bulk ban's random inserts into `bans_net`, so fewer spill to the WAL in
/// the middle of its transaction (SQLite's default is 2 MiB; the cache
/// grows only as pages are used). Not room for the whole index of a
/// million bans: that was the largest part of the daemon's memory after a
/// `ban -` of a million, for a history that catches up a little sooner
/// (docs/performance.md).
const CACHE_KIB: i64 = -16_384;

/// The schema version this build writes.
pub(super) const VERSION: i64 = STEPS.len() as i64;

/// Why a file cannot be brought to [`VERSION`].
pub(super) enum Failure {
    /// Written by a newer nftban: its version.
    TooNew(i64),
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Failure {
        Failure::Sql(e)
    }
}

/// What each connection that writes the history sets for itself (the
/// engine's and the mover's): `synchronous=NORMAL` (WAL's own durability:
/// a commit survives a crash of the process), the page cache, and
/// checkpoints left to their thread up to the backstop.
pub(super) fn settle_in(c: &Connection) -> rusqlite::Result<()> {
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.pragma_update(None, "cache_size", CACHE_KIB)?;
    c.pragma_update(None, "wal_autocheckpoint", super::checkpoint::BACKSTOP_PAGES)
}

/// Give back what a connection's work held: its page cache, filled up to
/// its bound ([`CACHE_KIB`]) by a bulk's inserts or a restore's reads, and
/// the freed heap under it, which the allocator would otherwise keep.
/// For when a connection is done with a big piece of work (the mover once
/// idle; the engine after the restore, the purge, or a big move of its
/// own), not after each write.
pub(super) fn give_back(c: &Connection) {
    if let Err(e) = c.release_memory() {
        tracing::debug!(error = %e, "a connection's page cache was not released");
    }
    // SAFETY: malloc_trim only returns free memory of the allocator's
    // arenas to the kernel; it touches no memory in use.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Set the connection up (WAL, `synchronous=NORMAL`, a busy timeout) and
/// bring its file to [`VERSION`].
pub(super) fn migrate(c: &Connection) -> Result<(), Failure> {
    c.busy_timeout(Duration::from_secs(5))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    settle_in(c)?;
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > VERSION {
        return Err(Failure::TooNew(version));
    }
    for (from, step) in STEPS.iter().enumerate().skip(version.max(0) as usize) {
        c.execute_batch(&format!("BEGIN; {step} PRAGMA user_version = {}; COMMIT;", from + 1))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes of page cache `c` holds, as SQLite counts them.
    fn cache_used(c: &Connection) -> i32 {
        let (mut used, mut most) = (0, 0);
        // SAFETY: a status read through the handle of an open connection.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_db_status(
                c.handle(),
                rusqlite::ffi::SQLITE_DBSTATUS_CACHE_USED,
                &mut used,
                &mut most,
                0,
            )
        };
        assert_eq!(rc, rusqlite::ffi::SQLITE_OK);
        used
    }

    /// The pages a big write and read filled the cache with go back; the
    /// connection goes on as before.
    #[test]
    fn a_connection_gives_its_page_cache_back() {
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(dir.path().join("t.db")).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        settle_in(&c).unwrap();
        c.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT); BEGIN;")
            .unwrap();
        for x in 0..20_000 {
            c.execute("INSERT INTO t VALUES (?1, printf('%.100c', 'y'))", [x])
                .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
        let read: i64 = c.query_row("SELECT sum(length(y)) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(read, 2_000_000);
        let before = cache_used(&c);
        assert!(before > 2_000_000, "{before} bytes of cache");
        give_back(&c);
        let after = cache_used(&c);
        assert!(after < before / 10, "{after} of {before} bytes kept");
        let rows: i64 = c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 20_000);
    }
}
